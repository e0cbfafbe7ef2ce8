/*
 * The C API as a C program uses it: compiled against include/bottle.h,
 * linked to the built library, run against the stand-in smolvm named by
 * BOTTLE_SMOLVM. Prints "N passed, M failed" and exits non-zero on failure.
 *
 * With BOTTLE_TEST_ENDPOINT set (tests/with-serve sets it, and
 * BOTTLE_TEST_TLS_DIR, holding ca.pem, client.pem and client.key, for an
 * https:// one), the bottles are opened and launched at that smolvm serve
 * instead of through the CLI; the machines are still made and looked at
 * with the CLI, whose machines the serve shares.
 */
#define _GNU_SOURCE
#include <bottle.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int passed, failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            passed++;                                                      \
        } else {                                                           \
            failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* A failed call's status and message, checked together. */
static void expect_fail(bottle_status got, bottle_status want, const char *needle, int line) {
    const char *msg = bottle_last_error();
    if (got == want && msg != NULL && strstr(msg, needle) != NULL) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL line %d: want %s containing \"%s\", got %s: %s\n", line,
            bottle_status_str(want), needle, bottle_status_str(got), msg ? msg : "(null)");
}
#define EXPECT_FAIL(call, want, needle) expect_fail((call), (want), (needle), __LINE__)

/* Runs the stand-in smolvm directly, for setup the library does not do. */
static int smolvm(const char *a1, const char *a2, const char *a3, const char *a4,
                  const char *a5) {
    const char *argv[] = {getenv("BOTTLE_SMOLVM"), a1, a2, a3, a4, a5, NULL};
    pid_t pid;
    int status, spawned;
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    spawned = posix_spawn(&pid, argv[0], &quiet, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (spawned != 0) return -1;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The endpoint under test, or NULL: the CLI. */
static bottle_endpoint *ep;

/* Where launches at the endpoint record their machines (XDG_STATE_HOME). */
static char state_dir[] = "/tmp/bottle-c-state-XXXXXX";

static void endpoint_up(void) {
    const char *url = getenv("BOTTLE_TEST_ENDPOINT");
    if (url == NULL || url[0] == '\0') return;
    const char *tls = getenv("BOTTLE_TEST_TLS_DIR");
    if (bottle_endpoint_new(url, &ep) != BOTTLE_OK) {
        fprintf(stderr, "BOTTLE_TEST_ENDPOINT: %s\n", bottle_last_error());
        exit(2);
    }
    if (tls != NULL && tls[0] != '\0') {
        char ca[4096], cert[4096], key[4096];
        snprintf(ca, sizeof ca, "%s/ca.pem", tls);
        snprintf(cert, sizeof cert, "%s/client.pem", tls);
        snprintf(key, sizeof key, "%s/client.key", tls);
        if (bottle_endpoint_set_tls(ep, ca, cert, key) != BOTTLE_OK) {
            fprintf(stderr, "BOTTLE_TEST_TLS_DIR: %s\n", bottle_last_error());
            exit(2);
        }
    }
    if (mkdtemp(state_dir) == NULL || setenv("XDG_STATE_HOME", state_dir, 1) != 0) {
        fprintf(stderr, "%s: %s\n", state_dir, strerror(errno));
        exit(2);
    }
    printf("# bottles at %s\n", url);
}

/* Removes the state directory, which reaped launches leave empty. */
static void endpoint_down(void) {
    if (ep == NULL) return;
    char dir[sizeof state_dir + 32];
    snprintf(dir, sizeof dir, "%s/libbottle/serve", state_dir);
    CHECK(rmdir(dir) == 0 || errno == ENOENT, "%s is left with records: %s", dir,
          strerror(errno));
    snprintf(dir, sizeof dir, "%s/libbottle", state_dir);
    rmdir(dir);
    rmdir(state_dir);
    bottle_endpoint_free(ep);
    ep = NULL;
}

/* bottle_open, or bottle_open_at the endpoint under test. */
static bottle_status open_bottle(const char *name, const char *prompt, bottle **out) {
    return ep != NULL ? bottle_open_at(ep, name, prompt, out) : bottle_open(name, prompt, out);
}

static char machine[64];

static void machine_up(void) {
    snprintf(machine, sizeof machine, "c-test-%d", (int)getpid());
    if (smolvm("machine", "create", "--name", machine, NULL) != 0 ||
        smolvm("machine", "start", "--name", machine, NULL) != 0) {
        fprintf(stderr, "cannot create the test machine with the stand-in smolvm %s\n",
                getenv("BOTTLE_SMOLVM"));
        exit(2);
    }
}

static void machine_down(void) { smolvm("machine", "delete", "--name", machine, "-f"); }

/* exec that must succeed; the caller frees the result. */
static bottle_exec_result run(const bottle *b, const char *script, const char *user) {
    bottle_exec_result r;
    bottle_status s = bottle_exec(b, script, user, &r);
    CHECK(s == BOTTLE_OK, "exec %s: %s", script, bottle_last_error());
    return r;
}

/* The strings that break naive quoting, from tests/data/tricky-strings.txt
 * (its README says the format); the Rust and Go tests read the same file. */
#define TRICKY_MAX 256
static const char *tricky[TRICKY_MAX];
static size_t NTRICKY;

/* Reads the tricky strings, undoing the file's four escapes in place. The
 * test runs from the top of the tree; BOTTLE_TEST_DATA names the folder
 * otherwise. */
static void load_tricky(void) {
    const char *dir = getenv("BOTTLE_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/tricky-strings.txt", dir ? dir : "tests/data");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (char *line = text, *end; *line != '\0' && NTRICKY < TRICKY_MAX; line = end + 1) {
        end = strchr(line, '\n');
        if (end == NULL) break;
        char *out = line;
        for (char *in = line; in < end; in++) {
            if (*in != '\\') {
                *out++ = *in;
            } else if (in[1] == 'n' || in[1] == 't' || in[1] == '\\') {
                *out++ = in[1] == 'n' ? '\n' : in[1] == 't' ? '\t' : '\\';
                in++;
            } else {
                char hex[3] = {in[2], in[3], '\0'};
                *out++ = (char)strtol(hex, NULL, 16);
                in += 3;
            }
        }
        *out = '\0';
        tricky[NTRICKY++] = line;
    }
}

static void test_exec(const bottle *b) {
    bottle_exec_result r = run(b, "id -un; echo \"$HOME\"; pwd", NULL);
    CHECK(strcmp((char *)r.stdout_data, "node\n/home/node\n/home/node\n") == 0, "%s",
          (char *)r.stdout_data);
    bottle_exec_result_free(&r);
    CHECK(r.stdout_data == NULL && r.stderr_data == NULL && r.stdout_len == 0, "free zeroes");
    bottle_exec_result_free(&r);

    r = run(b, "id -u", "root");
    CHECK(strcmp((char *)r.stdout_data, "0\n") == 0, "%s", (char *)r.stdout_data);
    bottle_exec_result_free(&r);

    static const struct { const char *script; int code; } codes[] = {
        {"true", 0}, {"exit 1", 1}, {"exit 255", 255}, {"kill -9 $$", 137},
        {"echo 'Error: vm not found: x' >&2; exit 1", 1},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        r = run(b, codes[i].script, NULL);
        CHECK(r.exit_code == codes[i].code, "%s: exit %d", codes[i].script, r.exit_code);
        bottle_exec_result_free(&r);
    }

    for (size_t i = 0; i < NTRICKY; i++) {
        char script[4096];
        snprintf(script, sizeof script, "cat <<'END'\n%s\nEND", tricky[i]);
        r = run(b, script, NULL);
        CHECK(r.stdout_len == strlen(tricky[i]) + 1 &&
                  memcmp(r.stdout_data, tricky[i], strlen(tricky[i])) == 0,
              "script text %zu changed: %s", i, (char *)r.stdout_data);
        bottle_exec_result_free(&r);
    }

    r = run(b, "printf 'a\\000b\\377'; printf 'e\\000' >&2", NULL);
    CHECK(r.stdout_len == 4 && memcmp(r.stdout_data, "a\0b\377", 4) == 0, "binary stdout");
    CHECK(r.stderr_len == 2 && memcmp(r.stderr_data, "e\0", 2) == 0, "binary stderr");
    bottle_exec_result_free(&r);

    /* 1 MiB to each stream in turn: both pipes must be read at once. */
    r = run(b,
            "for i in $(seq 64); do head -c 1048576 /dev/zero; "
            "head -c 1048576 /dev/zero | tr '\\0' e >&2; done",
            NULL);
    CHECK(r.stdout_len == 67108864 && r.stderr_len == 67108864, "64 MiB each: %zu %zu",
          r.stdout_len, r.stderr_len);
    CHECK(r.stdout_data[67108863] == 0 && r.stderr_data[0] == 'e' &&
              r.stderr_data[67108863] == 'e',
          "64 MiB contents");
    bottle_exec_result_free(&r);
}

static void *exec_thread(void *arg) {
    const bottle *b = arg;
    for (int i = 0; i < 8; i++) {
        bottle_exec_result r = run(b, "echo $((6 * 7))", NULL);
        CHECK(strcmp((char *)r.stdout_data, "42\n") == 0, "thread exec");
        bottle_exec_result_free(&r);
    }
    return NULL;
}

static void test_threads(const bottle *b) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, exec_thread, (void *)b);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
}

static void test_claude(const bottle *b) {
    int32_t code = -1;
    bottle_status s;
    bottle_exec_result r;
    /* Without and with a terminal (at an endpoint, serve's WebSocket). */
    for (int tty = 0; tty <= 1; tty++) {
        code = -1;
        s = bottle_exec_claude(b, tricky, NTRICKY, tty, &code);
        CHECK(s == BOTTLE_OK && code == 0, "exec_claude (tty %d): %s", tty, bottle_last_error());
        r = run(b, "cat ~/.claude-standin/argv", NULL);
        size_t off = 0;
        for (size_t i = 0; i < NTRICKY; i++) {
            size_t n = strlen(tricky[i]) + 1; /* with its NUL separator */
            CHECK(off + n <= r.stdout_len && memcmp(r.stdout_data + off, tricky[i], n) == 0,
                  "claude argv[%zu] differs (tty %d)", i, tty);
            off += n;
        }
        CHECK(off == r.stdout_len, "claude got %zu bytes of argv, expected %zu (tty %d)",
              r.stdout_len, off, tty);
        bottle_exec_result_free(&r);
    }

    r = run(b, "echo 7 > /tmp/claude-exit", "root");
    bottle_exec_result_free(&r);
    s = bottle_exec_claude(b, NULL, 0, false, &code);
    CHECK(s == BOTTLE_OK && code == 7, "claude exit code %d", code);
}

static void test_cp_in(const bottle *b) {
    char host[] = "/tmp/bottle-c-test:XXXXXX";
    int fd = mkstemp(host);
    CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
    CHECK(write(fd, "copied\0bytes", 12) == 12, "write");
    close(fd);
    CHECK(bottle_cp_in(b, host, "/home/node/in.bin") == BOTTLE_OK, "cp_in: %s",
          bottle_last_error());
    bottle_exec_result r = run(b, "cat /home/node/in.bin", NULL);
    CHECK(r.stdout_len == 12 && memcmp(r.stdout_data, "copied\0bytes", 12) == 0, "copied bytes");
    bottle_exec_result_free(&r);
    /* smolvm creates missing guest directories, but not under a file: the
     * CLI and a copy through serve word it differently. */
    EXPECT_FAIL(bottle_cp_in(b, host, "/etc/passwd/x"), BOTTLE_ERR_SMOLVM,
                ep != NULL ? "cannot create directory '/etc/passwd'" : "write file");
    EXPECT_FAIL(bottle_cp_in(b, "/tmp", "/tmp/x"), BOTTLE_ERR_INVALID_ARGUMENT, "is a directory");
    unlink(host);
    EXPECT_FAIL(bottle_cp_in(b, host, "/tmp/x"), BOTTLE_ERR_IO, "host_path");
}

static void test_bad_input(const bottle *b) {
    bottle *nb = (bottle *)1;
    bottle_exec_result r;
    int32_t code;
    const char *bad_utf8 = "\xff\xfe";
    EXPECT_FAIL(open_bottle(NULL, NULL, &nb), BOTTLE_ERR_INVALID_ARGUMENT, "machine_name");
    CHECK(nb == NULL, "out is NULL after a failed open");
    EXPECT_FAIL(open_bottle("ok", NULL, NULL), BOTTLE_ERR_INVALID_ARGUMENT, "out");
    EXPECT_FAIL(open_bottle("-rf", NULL, &nb), BOTTLE_ERR_INVALID_ARGUMENT, "machine_name");
    EXPECT_FAIL(open_bottle("a:b", NULL, &nb), BOTTLE_ERR_INVALID_ARGUMENT, "machine_name");
    EXPECT_FAIL(open_bottle(bad_utf8, NULL, &nb), BOTTLE_ERR_INVALID_ARGUMENT, "UTF-8");
    EXPECT_FAIL(open_bottle("ok", "rel", &nb), BOTTLE_ERR_INVALID_ARGUMENT, "prompt_path");
    EXPECT_FAIL(bottle_exec(NULL, "true", NULL, &r), BOTTLE_ERR_INVALID_ARGUMENT, "b:");
    EXPECT_FAIL(bottle_exec(b, NULL, NULL, &r), BOTTLE_ERR_INVALID_ARGUMENT, "script");
    EXPECT_FAIL(bottle_exec(b, "true", "-c", &r), BOTTLE_ERR_INVALID_ARGUMENT, "user");
    EXPECT_FAIL(bottle_exec(b, "true", "a b", &r), BOTTLE_ERR_INVALID_ARGUMENT, "user");
    EXPECT_FAIL(bottle_exec(b, "true", NULL, NULL), BOTTLE_ERR_INVALID_ARGUMENT, "out");
    EXPECT_FAIL(bottle_exec_claude(b, NULL, 1, false, &code), BOTTLE_ERR_INVALID_ARGUMENT,
                "argv");
    const char *with_null[] = {"x", NULL};
    EXPECT_FAIL(bottle_exec_claude(b, with_null, 2, false, &code), BOTTLE_ERR_INVALID_ARGUMENT,
                "argv[1]");
    EXPECT_FAIL(bottle_exec_claude(b, NULL, 0, false, NULL), BOTTLE_ERR_INVALID_ARGUMENT,
                "exit_code");
    EXPECT_FAIL(bottle_cp_in(b, NULL, "/x"), BOTTLE_ERR_INVALID_ARGUMENT, "host_path");
    EXPECT_FAIL(bottle_cp_in(b, "/etc/hostname", "x"), BOTTLE_ERR_INVALID_ARGUMENT,
                "guest_path");
    bottle_close(NULL);
    bottle_exec_result_free(NULL);
}

/* A C program keeps the default SIGPIPE disposition: a guest command that
 * exits without reading its stdin must not kill it. */
static void test_stdin_and_sigpipe(const bottle *b) {
    size_t len = 16u << 20;
    unsigned char *data = malloc(len);
    for (size_t i = 0; i < len; i++) data[i] = (unsigned char)(i * 31u);
    bottle_exec_options *o = NULL;
    CHECK(bottle_exec_options_new(&o) == BOTTLE_OK, "options");
    CHECK(bottle_exec_options_set_stdin(o, data, len) == BOTTLE_OK, "stdin");
    bottle_exec_result r;
    CHECK(bottle_exec_with(b, "exit 0", o, &r) == BOTTLE_OK, "unread stdin: %s",
          bottle_last_error());
    bottle_exec_result_free(&r);
    CHECK(bottle_exec_with(b, "cat", o, &r) == BOTTLE_OK, "cat: %s", bottle_last_error());
    CHECK(r.stdout_len == len && memcmp(r.stdout_data, data, len) == 0, "16 MiB through cat");
    bottle_exec_result_free(&r);
    bottle_exec_options_free(o);
    free(data);
}

static int count_chunk(void *user_data, const uint8_t *data, size_t len) {
    (void)data;
    *(size_t *)user_data += len;
    return 0;
}

static void test_timeout_and_stream(const bottle *b) {
    bottle_exec_options *o = NULL;
    size_t streamed = 0;
    bottle_exec_options_new(&o);
    bottle_exec_options_set_timeout_ms(o, 300);
    bottle_exec_options_set_stdout_fn(o, count_chunk, &streamed, false);
    bottle_exec_result r;
    EXPECT_FAIL(bottle_exec_with(b, "echo before; sleep 60", o, &r), BOTTLE_ERR_TIMEOUT,
                "timed out");
    CHECK(streamed == strlen("before\n"), "streamed %zu bytes before the timeout", streamed);
    bottle_exec_options_free(o);
}

/* A process that launched a bottle and was killed: its machine is found and
 * deleted by bottle_reap in another process (at an endpoint, where serve
 * keeps no labels, by bottle_reap_at, and not by bottle_reap). */
static void test_reap_after_kill(void) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        bottle *leaked = NULL;
        bottle_launch_options *o = NULL;
        if (ep != NULL && (bottle_launch_options_new(&o) != BOTTLE_OK ||
                           bottle_launch_options_set_endpoint(o, ep) != BOTTLE_OK))
            _exit(1);
        if (bottle_launch(o, &leaked) != BOTTLE_OK) _exit(1);
        bottle_launch_options_free(o);
        const char *name = bottle_machine_name(leaked);
        if (write(fds[1], name, strlen(name)) < 0) _exit(1);
        close(fds[1]);
        pause();
        _exit(0);
    }
    close(fds[1]);
    char name[160] = {0};
    ssize_t n = read(fds[0], name, sizeof name - 1);
    close(fds[0]);
    CHECK(n > 0, "the child launched a bottle");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(smolvm("machine", "status", "--name", name, NULL) == 0, "%s outlived its owner", name);

    bottle_names removed = {0};
    int found = 0;
    if (ep != NULL) {
        CHECK(bottle_reap(&removed) == BOTTLE_OK, "reap: %s", bottle_last_error());
        for (size_t i = 0; i < removed.count; i++) found |= strcmp(removed.names[i], name) == 0;
        CHECK(!found, "bottle_reap removed %s, launched at an endpoint", name);
        bottle_names_free(&removed);
        CHECK(bottle_reap_at(ep, NULL, &removed) == BOTTLE_OK, "reap_at: %s",
              bottle_last_error());
    } else {
        CHECK(bottle_reap(&removed) == BOTTLE_OK, "reap: %s", bottle_last_error());
    }
    found = 0;
    for (size_t i = 0; i < removed.count; i++) found |= strcmp(removed.names[i], name) == 0;
    CHECK(found, "reap removed %s", name);
    bottle_names_free(&removed);
    bottle_names_free(&removed);
    CHECK(smolvm("machine", "status", "--name", name, NULL) == 1, "%s is gone", name);
}

/* A file holding `text`, at a new temporary path in `path`. */
static void temp_file(char *path, const char *text) {
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "%s: %s", path,
          strerror(errno));
    if (fd >= 0) close(fd);
}

/* The endpoint functions themselves; they need no serve. */
static void test_endpoint_api(void) {
    bottle_endpoint *e = (bottle_endpoint *)1;
    EXPECT_FAIL(bottle_endpoint_new(NULL, &e), BOTTLE_ERR_INVALID_ARGUMENT, "url");
    CHECK(e == NULL, "out is NULL after a failed bottle_endpoint_new");
    EXPECT_FAIL(bottle_endpoint_new("unix:/s.sock", NULL), BOTTLE_ERR_INVALID_ARGUMENT, "out");
    static const struct { const char *url, *why; } bad[] = {
        {"", "is not an endpoint"},
        {"/run/smolvm.sock", "is not an endpoint"},
        {"unix:relative.sock", "absolute path"},
        {"http://10.0.0.1:8080", "loopback"},
        {"https://h:0", "port"},
        {"https://h:99999", "port"},
        {"https://h:1/api", "no path, query or user"},
        {"https://h:1?x=1", "no path, query or user"},
        {"https://", "host"},
        {"\xff\xfe", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e = (bottle_endpoint *)1;
        EXPECT_FAIL(bottle_endpoint_new(bad[i].url, &e), BOTTLE_ERR_INVALID_ARGUMENT, bad[i].why);
        CHECK(e == NULL, "%s: out is NULL", bad[i].url);
    }
    static const char *good[] = {"unix:/run/smolvm.sock", "unix:///run/smolvm.sock",
                                 "https://vm-host:8443", "http://127.0.0.1:8080",
                                 "http://[::1]:8080"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK(bottle_endpoint_new(good[i], &e) == BOTTLE_OK && e != NULL, "%s: %s", good[i],
              bottle_last_error());
        bottle_endpoint_free(e);
    }
    bottle_endpoint_free(NULL);

    char no_pem[] = "/tmp/bottle-c-no-pem-XXXXXX";
    temp_file(no_pem, "no PEM here\n");
    bottle_endpoint *unix_ep = NULL, *https = NULL;
    CHECK(bottle_endpoint_new("unix:/nonexistent/smolvm.sock", &unix_ep) == BOTTLE_OK, "%s",
          bottle_last_error());
    CHECK(bottle_endpoint_new("https://localhost:1", &https) == BOTTLE_OK, "%s",
          bottle_last_error());
    EXPECT_FAIL(bottle_endpoint_set_tls(NULL, no_pem, no_pem, no_pem), BOTTLE_ERR_INVALID_ARGUMENT,
                "ep");
    EXPECT_FAIL(bottle_endpoint_set_tls(unix_ep, no_pem, no_pem, no_pem),
                BOTTLE_ERR_INVALID_ARGUMENT, "TLS is set only on an https:// endpoint");
    EXPECT_FAIL(bottle_endpoint_set_tls(https, NULL, no_pem, no_pem), BOTTLE_ERR_INVALID_ARGUMENT,
                "ca_file");
    EXPECT_FAIL(bottle_endpoint_set_tls(https, no_pem, NULL, no_pem), BOTTLE_ERR_INVALID_ARGUMENT,
                "cert_file");
    EXPECT_FAIL(bottle_endpoint_set_tls(https, no_pem, no_pem, NULL), BOTTLE_ERR_INVALID_ARGUMENT,
                "key_file");
    EXPECT_FAIL(bottle_endpoint_set_tls(https, "/nonexistent/ca.pem", no_pem, no_pem),
                BOTTLE_ERR_IO, "ca_file /nonexistent/ca.pem: cannot read");
    EXPECT_FAIL(bottle_endpoint_set_tls(https, no_pem, no_pem, no_pem),
                BOTTLE_ERR_INVALID_ARGUMENT, "ca_file");

    /* Without its certificates an https endpoint is refused by name. */
    bottle *b = (bottle *)1;
    EXPECT_FAIL(bottle_open_at(https, "m", NULL, &b), BOTTLE_ERR_INVALID_ARGUMENT,
                "needs its certificates");
    CHECK(b == NULL, "out is NULL after a failed bottle_open_at");
    bottle_launch_options *o = NULL;
    CHECK(bottle_launch_options_new(&o) == BOTTLE_OK, "launch options");
    EXPECT_FAIL(bottle_launch_options_set_endpoint(o, https), BOTTLE_ERR_INVALID_ARGUMENT, "ep");
    EXPECT_FAIL(bottle_launch_options_set_endpoint(NULL, unix_ep), BOTTLE_ERR_INVALID_ARGUMENT,
                "opts");
    CHECK(bottle_launch_options_set_endpoint(o, unix_ep) == BOTTLE_OK, "%s", bottle_last_error());
    CHECK(bottle_launch_options_set_endpoint(o, NULL) == BOTTLE_OK, "%s", bottle_last_error());
    bottle_launch_options_free(o);
    bottle_names removed = {0};
    EXPECT_FAIL(bottle_reap_at(https, NULL, &removed), BOTTLE_ERR_INVALID_ARGUMENT,
                "needs its certificates");
    CHECK(removed.count == 0, "nothing reaped");
    bottle_names_free(&removed);
    EXPECT_FAIL(bottle_reap_at(NULL, NULL, &removed), BOTTLE_ERR_INVALID_ARGUMENT, "ep");
    EXPECT_FAIL(bottle_reap_at(unix_ep, NULL, NULL), BOTTLE_ERR_INVALID_ARGUMENT, "removed");

    /* With certificates (from tests/with-serve --tls), one refused call
     * leaves them as they were. */
    const char *tls = getenv("BOTTLE_TEST_TLS_DIR");
    if (tls != NULL && tls[0] != '\0') {
        char ca[4096], cert[4096], key[4096];
        snprintf(ca, sizeof ca, "%s/ca.pem", tls);
        snprintf(cert, sizeof cert, "%s/client.pem", tls);
        snprintf(key, sizeof key, "%s/client.key", tls);
        CHECK(bottle_endpoint_set_tls(https, ca, cert, key) == BOTTLE_OK, "%s",
              bottle_last_error());
        EXPECT_FAIL(bottle_endpoint_set_tls(https, ca, no_pem, key), BOTTLE_ERR_INVALID_ARGUMENT,
                    "cert_file");
        EXPECT_FAIL(bottle_endpoint_set_tls(https, ca, cert, cert), BOTTLE_ERR_INVALID_ARGUMENT,
                    "key_file");
        EXPECT_FAIL(bottle_endpoint_set_tls(https, key, cert, key), BOTTLE_ERR_INVALID_ARGUMENT,
                    "ca_file");
        CHECK(bottle_open_at(https, "m", NULL, &b) == BOTTLE_OK, "%s", bottle_last_error());
        bottle_close(b);
    }

    EXPECT_FAIL(bottle_open_at(NULL, "m", NULL, &b), BOTTLE_ERR_INVALID_ARGUMENT, "ep");
    EXPECT_FAIL(bottle_open_at(unix_ep, "m", NULL, NULL), BOTTLE_ERR_INVALID_ARGUMENT, "out");
    EXPECT_FAIL(bottle_open_at(unix_ep, "-rf", NULL, &b), BOTTLE_ERR_INVALID_ARGUMENT,
                "machine_name");
    EXPECT_FAIL(bottle_open_at(unix_ep, "m", "rel", &b), BOTTLE_ERR_INVALID_ARGUMENT,
                "prompt_path");

    /* A bottle outlives its endpoint; a serve that is not there is an I/O
     * error when the bottle is used. */
    CHECK(bottle_open_at(unix_ep, "m", NULL, &b) == BOTTLE_OK, "%s", bottle_last_error());
    bottle_endpoint_free(unix_ep);
    bottle_exec_result r = {0};
    EXPECT_FAIL(bottle_exec(b, "true", NULL, &r), BOTTLE_ERR_IO, "/nonexistent/smolvm.sock");
    CHECK(r.stdout_data == NULL && r.exit_code == 0, "result is zeroed");
    bottle_close(b);
    bottle_endpoint_free(https);
    unlink(no_pem);
    CHECK(strcmp(bottle_status_str(BOTTLE_ERR_UNSUPPORTED), "unknown status") != 0, "%s",
          bottle_status_str(BOTTLE_ERR_UNSUPPORTED));
}

static void test_machine_states(void) {
    bottle *b = NULL;
    bottle_exec_result r;
    CHECK(open_bottle("c-test-no-such-machine", NULL, &b) == BOTTLE_OK, "open");
    /* How smolvm says so: the CLI's words, or serve's. */
    EXPECT_FAIL(bottle_exec(b, "true", NULL, &r), BOTTLE_ERR_SMOLVM,
                ep != NULL ? "machine 'c-test-no-such-machine' not found"
                           : "vm not found: c-test-no-such-machine");
    bottle_close(b);

    CHECK(open_bottle(machine, NULL, &b) == BOTTLE_OK, "open");
    smolvm("machine", "stop", "--name", machine, NULL);
    EXPECT_FAIL(bottle_exec(b, "true", NULL, &r), BOTTLE_ERR_SMOLVM, "is not running");
    int32_t code;
    EXPECT_FAIL(bottle_exec_claude(b, NULL, 0, false, &code), BOTTLE_ERR_SMOLVM,
                "is not running");
    smolvm("machine", "start", "--name", machine, NULL);
    bottle_close(b);
}

static void test_missing_smolvm(void) {
    char *saved = strdup(getenv("BOTTLE_SMOLVM"));
    bottle *b = (bottle *)1;
    setenv("BOTTLE_SMOLVM", "/nonexistent/smolvm", 1);
    EXPECT_FAIL(bottle_open(machine, NULL, &b), BOTTLE_ERR_SMOLVM_NOT_FOUND, "BOTTLE_SMOLVM");
    CHECK(b == NULL, "out is NULL");
    /* A bottle at an endpoint needs no smolvm on this host. */
    bottle_endpoint *local = NULL;
    CHECK(bottle_endpoint_new("unix:/nonexistent/smolvm.sock", &local) == BOTTLE_OK, "%s",
          bottle_last_error());
    CHECK(bottle_open_at(local, machine, NULL, &b) == BOTTLE_OK, "open_at without smolvm: %s",
          bottle_last_error());
    bottle_close(b);
    bottle_endpoint_free(local);
    setenv("BOTTLE_SMOLVM", saved, 1);
    free(saved);
}

int main(void) {
    if (getenv("BOTTLE_SMOLVM") == NULL) {
        fprintf(stderr, "BOTTLE_SMOLVM must name the stand-in smolvm (make test sets it)\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "the stand-in smolvm needs root; this test cannot run as a user\n");
        return 2;
    }
    CHECK(strcmp(bottle_status_str(BOTTLE_ERR_SMOLVM), "smolvm failed") == 0, "status_str");
    CHECK(strcmp(bottle_status_str((bottle_status)99), "unknown status") == 0, "status_str");
    CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR, "SIGPIPE keeps its default disposition");
    CHECK(bottle_version() != NULL && bottle_version()[0] != '\0', "version");

    load_tricky();
    endpoint_up();
    test_endpoint_api();
    machine_up();
    bottle *b = NULL;
    bottle_status s = open_bottle(machine, NULL, &b);
    CHECK(s == BOTTLE_OK && b != NULL, "open: %s", bottle_last_error());
    if (b != NULL) {
        test_exec(b);
        test_threads(b);
        test_claude(b);
        test_cp_in(b);
        test_bad_input(b);
        test_stdin_and_sigpipe(b);
        test_timeout_and_stream(b);
        bottle_close(b);
    }
    test_machine_states();
    test_reap_after_kill();
    test_missing_smolvm();
    machine_down();
    endpoint_down();

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
