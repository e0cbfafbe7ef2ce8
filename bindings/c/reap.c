/*
 * Delete the machines that libbottle launched for processes that no longer
 * exist (killed before they could close their bottles).
 *
 *   usage: reap
 */
#include <bottle.h>

#include <stdio.h>

int main(void) {
    bottle_names removed = {0};
    bottle_status s = bottle_reap(&removed);
    for (size_t i = 0; i < removed.count; i++) printf("removed %s\n", removed.names[i]);
    if (s != BOTTLE_OK) fprintf(stderr, "reap: %s: %s\n", bottle_status_str(s), bottle_last_error());
    else if (removed.count == 0) printf("nothing to reap\n");
    bottle_names_free(&removed);
    return s != BOTTLE_OK;
}
