/*
 * Copy a host file into a bottle and show it from inside the guest.
 *
 *   usage: cp_in MACHINE HOST_FILE GUEST_PATH
 */
#include <bottle.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `s` in single quotes for a POSIX shell, each ' written as '\''. The caller
 * frees the result. Anything put into a script must be quoted like this. */
static char *shell_quote(const char *s) {
    size_t n = 3;
    for (const char *p = s; *p; p++) n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *o = q;
    if (q == NULL) return NULL;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

static int fail(const char *what, bottle_status s, bottle *b) {
    fprintf(stderr, "cp_in: %s: %s: %s\n", what, bottle_status_str(s), bottle_last_error());
    bottle_close(b);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MACHINE HOST_FILE GUEST_PATH\n", argv[0]);
        return 2;
    }
    bottle *b = NULL;
    bottle_status s = bottle_open(argv[1], NULL, &b);
    if (s != BOTTLE_OK) return fail("open", s, b);
    s = bottle_cp_in(b, argv[2], argv[3]);
    if (s != BOTTLE_OK) return fail("copy", s, b);

    /* Show the copy from the guest's side. */
    char *path = shell_quote(argv[3]);
    char *script = path ? malloc(2 * strlen(path) + 32) : NULL;
    if (script == NULL) {
        free(path);
        bottle_close(b);
        return 1;
    }
    sprintf(script, "ls -l -- %s && sha256sum -- %s", path, path);
    bottle_exec_result r = {0};
    s = bottle_exec(b, script, NULL, &r);
    free(script);
    free(path);
    if (s != BOTTLE_OK) return fail("exec", s, b);
    fwrite(r.stdout_data, 1, r.stdout_len, stdout);
    fwrite(r.stderr_data, 1, r.stderr_len, stderr);
    int code = r.exit_code;
    bottle_exec_result_free(&r);
    bottle_close(b);
    return code;
}
