/*
 * The header's compile-time version macros must match the library's
 * bottle_version(): prints both, exits 1 if they differ.
 */
#include <bottle.h>

#include <stdio.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

#if BOTTLE_VERSION_NUMBER != \
    BOTTLE_VERSION_MAJOR * 1000000 + BOTTLE_VERSION_MINOR * 1000 + BOTTLE_VERSION_PATCH
#error "BOTTLE_VERSION_NUMBER does not match its parts"
#endif

int main(void) {
    const char *parts = STR(BOTTLE_VERSION_MAJOR) "." STR(BOTTLE_VERSION_MINOR) "." STR(
        BOTTLE_VERSION_PATCH);
    const char *library = bottle_version();
    printf("header %s (%s, %d), library %s\n", BOTTLE_VERSION_STRING, parts, BOTTLE_VERSION_NUMBER,
           library);
    return strcmp(parts, library) == 0 && strcmp(BOTTLE_VERSION_STRING, library) == 0 ? 0 : 1;
}
