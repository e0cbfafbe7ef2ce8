/*
 * libbottle demo: open a bottle on a running machine, run a script in it,
 * copy a file in, and start claude.
 *
 *   usage: demo MACHINE
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <bottle.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, bottle_status s) {
    fprintf(stderr, "demo: %s: %s: %s\n", what, bottle_status_str(s), bottle_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MACHINE\n", argv[0]);
        return 2;
    }
    printf("libbottle %s\n", bottle_version());

    bottle *b;
    bottle_status s = bottle_open(argv[1], NULL, &b);
    if (s != BOTTLE_OK) return fail("open", s);

    /* 1. A script, run as node in its login shell, output captured. It
     * ends with `exit 3` to show that a script's exit status is a result
     * (BOTTLE_OK with exit_code 3), not a failure of the call. */
    static const char script[] = "echo \"hello from $(id -un) in $HOME\"; uname -sm; exit 3";
    bottle_exec_result r;
    s = bottle_exec(b, script, NULL, &r);
    if (s != BOTTLE_OK) return fail("exec", s);
    printf("exec: ran the script '%s'\n"
           "exec: bottle_exec succeeded; the script's exit status is %d (it ends with `exit 3`)\n"
           "--- its stdout ---\n%s--- its stderr (%zu bytes) ---\n%s",
           script, r.exit_code, (const char *)r.stdout_data, r.stderr_len,
           (const char *)r.stderr_data);
    bottle_exec_result_free(&r);

    /* 2. A host file copied in, then read back in the guest. */
    char host[] = "/tmp/bottle-demo-XXXXXX";
    int fd = mkstemp(host);
    const char note[] = "this file came from the host\n";
    if (fd < 0 || write(fd, note, strlen(note)) != (ssize_t)strlen(note)) {
        perror("demo: temporary file");
        return 1;
    }
    close(fd);
    s = bottle_cp_in(b, host, "/tmp/note.txt");
    unlink(host);
    if (s != BOTTLE_OK) return fail("cp_in", s);
    s = bottle_exec(b, "cat /tmp/note.txt", NULL, &r);
    if (s != BOTTLE_OK) return fail("exec", s);
    printf("cp_in: copied a host file to /tmp/note.txt; `cat` in the guest reads: %s",
           (const char *)r.stdout_data);
    bottle_exec_result_free(&r);

    /* 3. claude, on this terminal, with exactly these arguments. It writes
     * to the same descriptors as we do, so flush what stdio holds first. */
    printf("exec_claude: starting claude --version on this terminal:\n");
    fflush(NULL);
    const char *args[] = {"--version"};
    int32_t code;
    s = bottle_exec_claude(b, args, 1, isatty(STDIN_FILENO), &code);
    if (s != BOTTLE_OK) return fail("exec_claude", s);
    printf("exec_claude: claude exited with status %d\n", code);

    bottle_close(b);
    printf("done: the bottle is closed; the machine is left running for its owner\n");
    return 0;
}
