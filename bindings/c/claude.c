/*
 * Start claude-code in a bottle on this terminal, passing our arguments
 * through unchanged, and exit with claude's exit status.
 *
 *   usage: claude MACHINE PROMPT_PATH|- [CLAUDE_ARG...]
 */
#include <bottle.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MACHINE PROMPT_PATH|- [CLAUDE_ARG...]\n", argv[0]);
        return 2;
    }
    const char *prompt = strcmp(argv[2], "-") == 0 ? NULL : argv[2];

    bottle *b = NULL;
    bottle_status s = bottle_open(argv[1], prompt, &b);
    int32_t code = 0;
    if (s == BOTTLE_OK) {
        /* A terminal on stdin means an interactive session: ask for a guest tty. */
        bool tty = isatty(STDIN_FILENO);
        s = bottle_exec_claude(b, (const char *const *)argv + 3, (size_t)(argc - 3), tty, &code);
    }
    if (s != BOTTLE_OK) {
        fprintf(stderr, "claude: %s: %s\n", bottle_status_str(s), bottle_last_error());
        bottle_close(b);
        return 1;
    }
    bottle_close(b);
    return code;
}
