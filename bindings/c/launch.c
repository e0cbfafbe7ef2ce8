/*
 * Launch a bottle that owns its machine, work in it with exec options and
 * file copies both ways, and tear it down, reporting every failure.
 *
 *   usage: launch HOST_DIR [IMAGE]
 *
 * HOST_DIR is copied into the guest as /home/node/work, owned by node; the
 * script writes a report there, which is copied back out as
 * HOST_DIR.report.
 */
#include <bottle.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show_progress(void *user_data, const bottle_progress *p) {
    (void)user_data;
    printf("  copied %llu/%llu files, %llu/%llu bytes\n", (unsigned long long)p->files_done,
           (unsigned long long)p->files_total, (unsigned long long)p->bytes_done,
           (unsigned long long)p->bytes_total);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s HOST_DIR [IMAGE]\n", argv[0]);
        return 2;
    }
    const char *failed = NULL;
    bottle_status s = BOTTLE_OK;
    bottle_launch_options *lo = NULL;
    bottle_exec_options *eo = NULL;
    bottle_copy_options *co = NULL;
    bottle *b = NULL;
    bottle_exec_result r = {0};
    const char input[] = "three\nlines\nof input\n";

/* Runs one step; on failure remembers which and skips the rest. */
#define STEP(what, call) \
    if (s == BOTTLE_OK && (s = (call)) != BOTTLE_OK) failed = (what)

    STEP("launch options", bottle_launch_options_new(&lo));
    if (argc == 3) STEP("image", bottle_launch_options_set_image(lo, argv[2]));
    STEP("cpus", bottle_launch_options_set_cpus(lo, 2));
    STEP("memory", bottle_launch_options_set_memory_mib(lo, 2048));
    STEP("env", bottle_launch_options_add_env(lo, "AGENT_MODE", "demo"));
    STEP("launch", bottle_launch(lo, &b));
    if (b != NULL) printf("launched %s\n", bottle_machine_name(b));

    STEP("copy options", bottle_copy_options_new(&co));
    STEP("owner", bottle_copy_options_set_owner_user(co, "node"));
    STEP("progress", bottle_copy_options_set_progress_fn(co, show_progress, NULL));
    STEP("copy in", bottle_cp_in_with(b, argv[1], "/home/node/work", co));

    STEP("exec options", bottle_exec_options_new(&eo));
    STEP("workdir", bottle_exec_options_set_workdir(eo, "/home/node/work"));
    STEP("secret", bottle_exec_options_add_secret_env(eo, "API_TOKEN", "not-in-any-argv"));
    STEP("stdin", bottle_exec_options_set_stdin(eo, (const uint8_t *)input, strlen(input)));
    STEP("timeout", bottle_exec_options_set_timeout_ms(eo, 30000));
    STEP("exec",
         bottle_exec_with(b,
                          "{ echo \"mode $AGENT_MODE, token ${#API_TOKEN} chars\"; "
                          "echo \"stdin: $(wc -l) lines\"; ls -R; } | tee report.txt",
                          eo, &r));
    if (s == BOTTLE_OK) printf("exec: exit %d\n%s", r.exit_code, (const char *)r.stdout_data);
    bottle_exec_result_free(&r);

    char report[4096];
    snprintf(report, sizeof report, "%s.report", argv[1]);
    STEP("copy out", bottle_cp_out(b, "/home/node/work/report.txt", report));
    if (s == BOTTLE_OK) printf("report copied to %s\n", report);
#undef STEP

    if (failed != NULL) {
        fprintf(stderr, "launch: %s: %s: %s\n", failed, bottle_status_str(s), bottle_last_error());
    }
    bottle_exec_options_free(eo);
    bottle_copy_options_free(co);
    bottle_launch_options_free(lo);
    /* Stops and deletes the machine, and says so if it could not. */
    bottle_status closed = b != NULL ? bottle_close_checked(b) : BOTTLE_OK;
    if (closed != BOTTLE_OK) fprintf(stderr, "launch: teardown: %s\n", bottle_last_error());
    return failed != NULL || closed != BOTTLE_OK;
}
