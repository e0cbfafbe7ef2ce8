/*
 * libbottle's benchmarks: bottle_exec, as a C program gets it from
 * libbottle.so, against the floor, with bench/null-smolvm as smolvm.
 *
 * The floor is the least work any capture must do: the same smolvm argv
 * spawned directly with posix_spawn (stdin from /dev/null, as bottle_exec
 * gives it), both pipes read with poll into heap buffers that double as
 * they fill, the buffers freed, then waitpid. Whatever bottle_exec costs
 * beyond that is the library's own.
 *
 *   bench percall CALLS          per-call time of an exec with no output
 *   bench large MIB RUNS         one capture of MIB MiB on stdout and MIB MiB
 *                                on stderr at once: time and peak RSS, each
 *                                run in a fresh child process
 *   bench scaling CALLS          CALLS execs shared by 1, 2, 4, 8, 16 threads:
 *                                wall time, median of three runs
 *   bench lib CALLS              the library alone: mean time per call, for
 *                                the Go binding's benchmark to be set against
 *   bench rejected CALLS         bottle_exec refusing its user: the
 *                                library's fixed cost, with no process
 *   bench spawn CALLS MIB        per-call time with MIB MiB resident in the
 *                                caller: the library against the floor and
 *                                against the other ways to start smolvm
 *                                (posix_spawn with a process group, default
 *                                signals and closed descriptors; fork)
 *
 * BOTTLE_SMOLVM names null-smolvm (scripts/bench.sh builds and sets it).
 * Results are Markdown table rows on stdout. With BENCH_VALUES=FILE, the
 * numbers other steps need are appended to FILE as KEY=VALUE lines.
 */
#define _GNU_SOURCE
#include <bottle.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MACHINE "bench"
#define CHUNK (64 * 1024)

static const char *smolvm;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static double clock_s(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double now(void) {
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this process (not of smolvm, its child): what the caller
   itself spent, whatever else the machine was doing meanwhile. */
static double cpu_now(void) {
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void record(const char *key, double value) {
    const char *path = getenv("BENCH_VALUES");
    if (path == NULL) return;
    FILE *f = fopen(path, "a");
    if (f == NULL) die(path);
    fprintf(f, "%s=%.3f\n", key, value);
    fclose(f);
}

/* The guest command null-smolvm reads its output sizes from. */
static void sizes(char *script, size_t n, size_t out, size_t err) {
    snprintf(script, n, "%zu %zu", out, err);
}

/* ---- the floor ---- */

struct buf {
    char *data;
    size_t len, cap;
};

static void reserve_chunk(struct buf *b) {
    if (b->cap - b->len >= CHUNK) return;
    size_t cap = b->cap ? b->cap : CHUNK;
    while (cap - b->len < CHUNK) cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) die("realloc");
    b->data = p;
    b->cap = cap;
}

/* How the floor starts smolvm: plain posix_spawn; posix_spawn that also
   gives smolvm its own process group, every signal at its default and no
   descriptor beyond stdio (what posix_spawn can do of the library's
   guarantees); or fork and exec, which is what a `pre_exec` closure makes
   Rust's Command do. */
enum spawn_method { SPAWN_PLAIN, SPAWN_HYGIENE, SPAWN_FORK };

static enum spawn_method floor_method = SPAWN_PLAIN;

static pid_t floor_spawn(char **argv, int out, int err) {
    pid_t pid;
    if (floor_method == SPAWN_FORK) {
        pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            int in = open("/dev/null", O_RDONLY);
            if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
            execve(smolvm, argv, environ);
            _exit(127);
        }
        return pid;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (floor_method == SPAWN_HYGIENE) {
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                            POSIX_SPAWN_SETSIGMASK);
    }
    int rc = posix_spawn(&pid, smolvm, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        die("posix_spawn");
    }
    return pid;
}

/* Runs smolvm as bottle_exec would, for `script` as node. bottle_exec also
 * passes its guest guard (`/bin/sh -c GUARD sh`, under 1 KiB) before
 * runuser; null-smolvm reads no argument, and copying those bytes into the
 * new program costs nothing measurable, so the floor leaves it out. */
static void floor_exec(const char *script, size_t want_out, size_t want_err) {
    char *argv[] = {"smolvm", "machine", "exec", "--name", MACHINE, "-i", "--",   "runuser",
                    "-l",     "--session-command", "--", "--",   "node",   (char *)script, NULL};
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) die("pipe2");
    pid_t pid = floor_spawn(argv, out[1], err[1]);
    close(out[1]);
    close(err[1]);
    struct buf bufs[2] = {{0}, {0}};
    struct pollfd fds[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
    int open = 2;
    while (open > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            reserve_chunk(&bufs[i]);
            ssize_t n = read(fds[i].fd, bufs[i].data + bufs[i].len, bufs[i].cap - bufs[i].len);
            if (n > 0) {
                bufs[i].len += (size_t)n;
            } else if (n == 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open--;
            } else if (errno != EINTR) {
                die("read");
            }
        }
    }
    if (bufs[0].len != want_out || bufs[1].len != want_err) {
        fprintf(stderr, "floor: got %zu and %zu bytes\n", bufs[0].len, bufs[1].len);
        exit(2);
    }
    free(bufs[0].data);
    free(bufs[1].data);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor: smolvm status %d\n", status);
        exit(2);
    }
}

/* ---- the library ---- */

static bottle *open_bottle(void) {
    bottle *b = NULL;
    if (bottle_open(MACHINE, NULL, &b) != BOTTLE_OK) {
        fprintf(stderr, "bottle_open: %s\n", bottle_last_error());
        exit(2);
    }
    return b;
}

static void lib_exec(const bottle *b, const char *script, size_t want_out, size_t want_err) {
    bottle_exec_result r;
    if (bottle_exec(b, script, NULL, &r) != BOTTLE_OK) {
        fprintf(stderr, "bottle_exec: %s\n", bottle_last_error());
        exit(2);
    }
    if (r.exit_code != 0 || r.stdout_len != want_out || r.stderr_len != want_err) {
        fprintf(stderr, "bottle_exec: exit %d, %zu and %zu bytes\n", r.exit_code, r.stdout_len,
                r.stderr_len);
        exit(2);
    }
    bottle_exec_result_free(&r);
}

/* One exec of `script`, by the library when `b` is set, else by the floor. */
static void one_exec(const bottle *b, const char *script, size_t out, size_t err) {
    if (b != NULL)
        lib_exec(b, script, out, err);
    else
        floor_exec(script, out, err);
}

/* ---- percall ---- */

static double mean(const double *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    return sum / n;
}

/* One call: its wall time in `wall`, the caller's CPU time in `cpu` (µs). */
static void timed_call(const bottle *b, const char *script, double *wall, double *cpu) {
    double t = now(), c = cpu_now();
    one_exec(b, script, 0, 0);
    *cpu = (cpu_now() - c) * 1e6;
    *wall = (now() - t) * 1e6;
}

static void percall(int calls) {
    bottle *b = open_bottle();
    char script[64];
    sizes(script, sizeof script, 0, 0);
    size_t n = (size_t)calls;
    double *wall[2] = {calloc(n, sizeof(double)), calloc(n, sizeof(double))};
    double *cpu[2] = {calloc(n, sizeof(double)), calloc(n, sizeof(double))};
    for (int i = 0; i < calls / 10; i++) {
        timed_call(b, script, &wall[1][0], &cpu[1][0]);
        timed_call(NULL, script, &wall[0][0], &cpu[0][0]);
    }
    /* Call by call, in alternating order, so that any drift of the machine
       hits both sides alike. */
    for (int i = 0; i < calls; i++) {
        for (int k = 0; k < 2; k++) {
            int lib = (i + k) % 2;
            timed_call(lib ? b : NULL, script, &wall[lib][i], &cpu[lib][i]);
        }
    }
    double lm = mean(wall[1], calls), fm = mean(wall[0], calls);
    double lc = mean(cpu[1], calls), fc = mean(cpu[0], calls);
    double l = median(wall[1], calls), f = median(wall[0], calls);
    printf("| per call, no output: median | %.1f µs | %.1f µs | %.3f | ≤ 1.05 | %s |\n", l, f,
           l / f, l / f <= 1.05 ? "met" : "missed");
    printf("| per call, no output: mean | %.1f µs | %.1f µs | %.3f | ≤ 1.05 | %s |\n", lm, fm,
           lm / fm, lm / fm <= 1.05 ? "met" : "missed");
    printf("| per call, no output: caller's CPU | %.1f µs | %.1f µs | %.3f | | |\n", lc, fc,
           lc / fc);
    record("lib_percall_us", l);
    record("floor_percall_us", f);
    for (int k = 0; k < 2; k++) {
        free(wall[k]);
        free(cpu[k]);
    }
    bottle_close(b);
}

/* ---- spawn ---- */

/* The median wall time of `calls` execs (µs), by the library when `b` is
   set, else by the floor with `method`. */
static double spawn_median(const bottle *b, enum spawn_method method, int calls) {
    char script[64];
    sizes(script, sizeof script, 0, 0);
    double *wall = calloc((size_t)calls, sizeof(double));
    double cpu;
    floor_method = method;
    for (int i = 0; i < calls / 10; i++) timed_call(b, script, &wall[0], &cpu);
    for (int i = 0; i < calls; i++) timed_call(b, script, &wall[i], &cpu);
    double m = median(wall, calls);
    free(wall);
    floor_method = SPAWN_PLAIN;
    return m;
}

static void spawn_costs(int calls, size_t mib) {
    /* A caller that holds `mib` MiB, every page touched: a fork copies the
       page tables of all of it. */
    size_t bytes = mib << 20;
    char *held = malloc(bytes);
    if (held == NULL) die("malloc");
    for (size_t i = 0; i < bytes; i += 4096) held[i] = (char)i;
    bottle *b = open_bottle();
    double floor = spawn_median(NULL, SPAWN_PLAIN, calls);
    double hygiene = spawn_median(NULL, SPAWN_HYGIENE, calls);
    double forked = spawn_median(NULL, SPAWN_FORK, calls);
    double lib = spawn_median(b, SPAWN_PLAIN, calls);
    printf("| %zu MiB | posix_spawn (the floor) | %.1f µs | 1.000 |\n", mib, floor);
    printf("| %zu MiB | posix_spawn + process group, default signals, closefrom | %.1f µs | "
           "%.3f |\n",
           mib, hygiene, hygiene / floor);
    printf("| %zu MiB | fork + exec (a `pre_exec` closure) | %.1f µs | %.3f |\n", mib, forked,
           forked / floor);
    printf("| %zu MiB | bottle_exec | %.1f µs | %.3f |\n", mib, lib, lib / floor);
    bottle_close(b);
    free(held);
}

/* ---- large ---- */

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    if (f != NULL) fclose(f);
    return kib;
}

struct large_run {
    double seconds, cpu_seconds;
    long start_kib, peak_kib;
};

/* One capture in a fresh child, so that its peak RSS is this capture's. */
static struct large_run large_once(int lib, size_t bytes) {
    int p[2];
    if (pipe(p)) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(p[0]);
        bottle *b = lib ? open_bottle() : NULL;
        char script[64];
        sizes(script, sizeof script, bytes, bytes);
        struct large_run run = {.start_kib = rss_kib()};
        double t = now(), c = cpu_now();
        one_exec(b, script, bytes, bytes);
        run.seconds = now() - t;
        run.cpu_seconds = cpu_now() - c;
        if (write(p[1], &run, sizeof run) != sizeof run) _exit(2);
        _exit(0);
    }
    close(p[1]);
    struct large_run run;
    if (read(p[0], &run, sizeof run) != sizeof run) {
        fprintf(stderr, "large: the child failed\n");
        exit(2);
    }
    close(p[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || status != 0) die("wait4");
    run.peak_kib = ru.ru_maxrss;
    return run;
}

static void large(size_t mib, int runs) {
    size_t bytes = mib << 20, n = (size_t)runs;
    double *wall[2] = {calloc(n, sizeof(double)), calloc(n, sizeof(double))};
    double *cpu[2] = {calloc(n, sizeof(double)), calloc(n, sizeof(double))};
    long peak[2] = {0, 0}, start[2] = {0, 0};
    for (int i = 0; i < runs; i++) {
        for (int k = 0; k < 2; k++) {
            int lib = (i + k) % 2;
            struct large_run run = large_once(lib, bytes);
            wall[lib][i] = run.seconds;
            cpu[lib][i] = run.cpu_seconds;
            if (run.peak_kib > peak[lib]) peak[lib] = run.peak_kib;
            start[lib] = run.start_kib;
        }
    }
    double l = median(wall[1], runs), f = median(wall[0], runs);
    double lc = median(cpu[1], runs), fc = median(cpu[0], runs);
    printf("| %zu MiB + %zu MiB: time, median of %d | %.3f s | %.3f s | %.3f | ≤ 1.25 | %s |\n",
           mib, mib, runs, l, f, l / f, l / f <= 1.25 ? "met" : "missed");
    /* median() sorted the times: the first is the fastest. */
    printf("| %zu MiB + %zu MiB: time, fastest | %.3f s | %.3f s | %.3f | | |\n", mib, mib,
           wall[1][0], wall[0][0], wall[1][0] / wall[0][0]);
    printf("| %zu MiB + %zu MiB: caller's CPU, median | %.3f s | %.3f s | %.3f | | |\n", mib, mib,
           lc, fc, lc / fc);
    double captured = 2.0 * (double)mib, limit = 1.1 * captured + 16;
    double pl = peak[1] / 1024.0, pf = peak[0] / 1024.0;
    printf("| %zu MiB + %zu MiB: peak RSS, largest | %.0f MiB | %.0f MiB | %.3f | ≤ %.0f MiB "
           "(1.1 × %.0f + 16) | %s |\n",
           mib, mib, pl, pf, pl / pf, limit, captured, pl <= limit ? "met" : "missed");
    printf("| %zu MiB + %zu MiB: RSS before the call | %.1f MiB | %.1f MiB | | | |\n", mib, mib,
           start[1] / 1024.0, start[0] / 1024.0);
    for (int k = 0; k < 2; k++) {
        free(wall[k]);
        free(cpu[k]);
    }
}

/* ---- scaling ---- */

struct worker {
    const bottle *b;
    int calls;
};

static void *work(void *arg) {
    struct worker *w = arg;
    char script[64];
    sizes(script, sizeof script, 0, 0);
    for (int i = 0; i < w->calls; i++) one_exec(w->b, script, 0, 0);
    return NULL;
}

/* Wall time of `calls` execs shared by `threads` threads. */
static double threaded_wall(const bottle *b, int threads, int calls) {
    pthread_t tid[16];
    struct worker w = {b, calls / threads};
    double t = now();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[i], NULL, work, &w)) die("pthread_create");
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    return now() - t;
}

static void scaling(int calls) {
    bottle *b = open_bottle();
    double base[2] = {0, 0};
    threaded_wall(b, 2, calls / 4);
    threaded_wall(NULL, 2, calls / 4);
    for (int threads = 1; threads <= 16; threads *= 2) {
        /* The median of three alternating runs of each. */
        double runs[2][3], t[2];
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 2; k++) {
                int lib = (i + k) % 2;
                runs[lib][i] = threaded_wall(lib ? b : NULL, threads, calls);
            }
        for (int lib = 0; lib < 2; lib++) t[lib] = median(runs[lib], 3);
        if (threads == 1) {
            base[0] = t[0];
            base[1] = t[1];
        }
        printf("| %d | %.0f ms | %.0f /s | %.2f× | %.0f ms | %.0f /s | %.2f× | %.3f |\n", threads,
               t[1] * 1e3, calls / t[1], base[1] / t[1], t[0] * 1e3, calls / t[0], base[0] / t[0],
               t[1] / t[0]);
    }
    bottle_close(b);
}

/* ---- lib ---- */

/* The library alone, for the Go binding's benchmark to be set against. */
static void lib_only(int calls) {
    bottle *b = open_bottle();
    char script[64];
    sizes(script, sizeof script, 0, 0);
    for (int i = 0; i < calls / 10; i++) one_exec(b, script, 0, 0);
    double t = now();
    for (int i = 0; i < calls; i++) one_exec(b, script, 0, 0);
    record("lib_call_us", (now() - t) / calls * 1e6);
    bottle_close(b);
}

/* ---- rejected ---- */

static void rejected(int calls) {
    bottle *b = open_bottle();
    bottle_exec_result r;
    double t = now();
    for (int i = 0; i < calls; i++)
        if (bottle_exec(b, "0 0", "-bad", &r) != BOTTLE_ERR_INVALID_ARGUMENT) {
            fprintf(stderr, "rejected: the user was accepted\n");
            exit(2);
        }
    double ns = (now() - t) / calls * 1e9;
    printf("| bottle_exec, user rejected (no process) | %.0f ns |\n", ns);
    record("lib_rejected_ns", ns);
    bottle_close(b);
}

int main(int argc, char **argv) {
    smolvm = getenv("BOTTLE_SMOLVM");
    if (smolvm == NULL || *smolvm != '/') {
        fputs("bench: set BOTTLE_SMOLVM to the absolute path of null-smolvm\n", stderr);
        return 2;
    }
    if (argc == 3 && strcmp(argv[1], "percall") == 0)
        percall(atoi(argv[2]));
    else if (argc == 4 && strcmp(argv[1], "large") == 0)
        large((size_t)atol(argv[2]), atoi(argv[3]));
    else if (argc == 3 && strcmp(argv[1], "scaling") == 0)
        scaling(atoi(argv[2]));
    else if (argc == 3 && strcmp(argv[1], "lib") == 0)
        lib_only(atoi(argv[2]));
    else if (argc == 3 && strcmp(argv[1], "rejected") == 0)
        rejected(atoi(argv[2]));
    else if (argc == 4 && strcmp(argv[1], "spawn") == 0)
        spawn_costs(atoi(argv[2]), (size_t)atol(argv[3]));
    else {
        fputs("usage: bench percall CALLS | large MIB RUNS | scaling CALLS | lib CALLS | "
              "rejected CALLS | spawn CALLS MIB\n",
              stderr);
        return 2;
    }
    return 0;
}
