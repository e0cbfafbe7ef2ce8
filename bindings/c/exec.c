/*
 * Open a bottle and run a script in it as node, printing what it did.
 *
 *   usage: exec MACHINE [SCRIPT]
 */
#include <bottle.h>

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MACHINE [SCRIPT]\n", argv[0]);
        return 2;
    }
    const char *script = argc == 3 ? argv[2] : "echo \"$(id -un) in $HOME\"; echo oops >&2; exit 3";

    bottle *b = NULL;
    bottle_exec_result r = {0};
    bottle_status s = bottle_open(argv[1], NULL, &b);
    if (s == BOTTLE_OK) s = bottle_exec(b, script, NULL, &r);
    if (s != BOTTLE_OK) {
        fprintf(stderr, "exec: %s: %s\n", bottle_status_str(s), bottle_last_error());
        bottle_close(b);
        return 1;
    }
    /* The buffers may hold any bytes; fwrite with the length is exact. */
    printf("exit code: %d\n", r.exit_code);
    printf("stdout (%zu bytes): ", r.stdout_len);
    fwrite(r.stdout_data, 1, r.stdout_len, stdout);
    printf("stderr (%zu bytes): ", r.stderr_len);
    fwrite(r.stderr_data, 1, r.stderr_len, stdout);

    bottle_exec_result_free(&r);
    bottle_close(b);
    return 0;
}
