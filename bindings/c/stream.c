/*
 * Run a script with its output streamed as it is produced, a timeout, and
 * Ctrl-C wired to a cancel token, so an interrupted run stops the guest
 * command instead of leaving it behind.
 *
 *   usage: stream MACHINE SCRIPT [TIMEOUT_MS]
 */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <bottle.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static bottle_cancel *cancel;

/* bottle_cancel_trip is async-signal-safe: it only sets a flag and writes
 * to an eventfd. */
static void on_interrupt(int sig) {
    (void)sig;
    bottle_cancel_trip(cancel);
}

/* Output as it arrives, tagged by stream; returning non-zero would stop the
 * command. */
static int relay(void *user_data, const uint8_t *data, size_t len) {
    int fd = *(const int *)user_data;
    return write(fd, data, len) == (ssize_t)len ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MACHINE SCRIPT [TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    static const int out_fd = STDOUT_FILENO, err_fd = STDERR_FILENO;
    bottle *b = NULL;
    bottle_exec_options *o = NULL;
    bottle_exec_result r = {0};
    bottle_status s = bottle_open(argv[1], NULL, &b);
    if (s == BOTTLE_OK) s = bottle_cancel_new(&cancel);
    if (s == BOTTLE_OK) s = bottle_exec_options_new(&o);
    if (s == BOTTLE_OK) s = bottle_exec_options_set_stdout_fn(o, relay, (void *)&out_fd, false);
    if (s == BOTTLE_OK) s = bottle_exec_options_set_stderr_fn(o, relay, (void *)&err_fd, false);
    if (s == BOTTLE_OK) s = bottle_exec_options_set_cancel(o, cancel);
    if (s == BOTTLE_OK && argc == 4)
        s = bottle_exec_options_set_timeout_ms(o, strtoull(argv[3], NULL, 10));
    if (s == BOTTLE_OK) {
        struct sigaction sa = {0};
        sa.sa_handler = on_interrupt;
        sigaction(SIGINT, &sa, NULL);
        s = bottle_exec_with(b, argv[2], o, &r);
    }

    int code = 0;
    if (s == BOTTLE_OK) {
        code = r.exit_code;
        fprintf(stderr, "stream: exit %d\n", code);
    } else {
        fprintf(stderr, "stream: %s: %s\n", bottle_status_str(s), bottle_last_error());
        code = s == BOTTLE_ERR_TIMEOUT ? 124 : s == BOTTLE_ERR_CANCELLED ? 130 : 1;
    }
    bottle_exec_result_free(&r);
    bottle_exec_options_free(o);
    bottle_cancel_free(cancel);
    bottle_close(b);
    return code;
}
