/*
 * A smolvm that runs nothing, for the benchmarks: what is left of a smolvm
 * call once the VM is gone is one process that writes its output and exits,
 * so what the benchmarks measure is the caller's own cost.
 *
 *   null-smolvm machine exec --name N [OPTION]... -- CMD... "OUT ERR"
 *
 * writes OUT bytes to stdout and ERR bytes to stderr (the two numbers are
 * the guest command's last argument, which is the script for bottle_exec),
 * 64 KiB to each in turn so that a reader must drain both pipes at once,
 * and exits 0. `machine status --name N --json` says the machine is running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static char chunk[CHUNK];

/* Writes up to one chunk of what is left; returns what is still left. */
static size_t write_chunk(int fd, size_t left) {
    size_t n = left < CHUNK ? left : CHUNK;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, chunk + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) exit(3);
        done += (size_t)w;
    }
    return left - n;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "machine") == 0 && strcmp(argv[2], "status") == 0) {
        puts("{\"name\":\"bench\",\"state\":\"running\"}");
        return 0;
    }
    int dashes = 3;
    while (dashes < argc && strcmp(argv[dashes], "--") != 0) dashes++;
    if (argc < 3 || strcmp(argv[1], "machine") != 0 || strcmp(argv[2], "exec") != 0 ||
        dashes >= argc - 1) {
        fputs("Error: null-smolvm only answers `machine exec ... -- CMD... \"OUT ERR\"`\n", stderr);
        return 1;
    }
    size_t out = 0, err = 0;
    if (sscanf(argv[argc - 1], "%zu %zu", &out, &err) != 2) out = err = 0;
    memset(chunk, 'x', sizeof chunk);
    while (out > 0 || err > 0) {
        out = write_chunk(STDOUT_FILENO, out);
        err = write_chunk(STDERR_FILENO, err);
    }
    return 0;
}
