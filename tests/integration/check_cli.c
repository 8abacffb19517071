/*
 * check_cli — the `sluice` command (src/cli/sluice.c, docs/sluice.1) against
 * a real sluiced: `status` (its lines, drops by reason, a failing sink and
 * its exit status, --watch with a count, -c FILE finding the endpoint),
 * `check -c FILE` (the same output and exit status as `sluiced -n`, good and
 * bad configs), `reload` (POST /reload: the outputs are reopened, as with
 * SIGHUP: a file moved away is written anew) and an unreachable daemon.
 *
 * build/sluice is found beside the daemon binary (harness_sluiced_path).
 * Waits poll with deadlines (harness.h).
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_cli
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;

struct cli_run {
    int status; /* exit status, or -1 if it did not exit */
    char *out;  /* its stdout, NUL-terminated */
    char *err;  /* its stderr */
};

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&S, 0, sizeof(S));
}

static void
teardown(void)
{
    harness_fini(&H);
}

static void
cli_free(struct cli_run *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/*
 * Runs prog ARGS (NULL-terminated) to completion within timeout_ms (scaled),
 * stdout and stderr to files in the test's dir, read back into *r.
 */
static void
run_prog(const char *prog, const char *const *args, int timeout_ms, struct cli_run *r)
{
    char outp[PATH_MAX], errp[PATH_MAX];
    char *argv[24];
    size_t n = 0;
    harness_path(&H, "cli.out", outp, sizeof(outp));
    harness_path(&H, "cli.err", errp, sizeof(errp));
    argv[n++] = (char *)prog;
    for (size_t i = 0; args[i] != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    memset(r, 0, sizeof(*r));
    r->status = -1;
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(prog, argv);
        _exit(127);
    }
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        if (harness_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        harness_poll_step(10);
    }
    size_t len;
    r->out = harness_read_file(outp, &len);
    r->err = harness_read_file(errp, &len);
    if (r->out == NULL) {
        r->out = strdup("");
    }
    if (r->err == NULL) {
        r->err = strdup("");
    }
}

static void
run_cli(const char *const *args, int timeout_ms, struct cli_run *r)
{
    run_prog(harness_sluice_path(), args, timeout_ms, r);
}

/* True if text has a line starting with prefix and containing every word of also. */
static bool
has_line(const char *text, const char *prefix, const char *also)
{
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        if (strncmp(line, prefix, strlen(prefix)) == 0 &&
            (also == NULL || strstr(line, also) != NULL)) {
            return true;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return false;
}

static int
count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void
admin_arg(char *buf, size_t len, int port)
{
    snprintf(buf, len, "127.0.0.1:%d", port);
}

/* Sends raw bytes to the TCP source and closes. */
static void
send_raw(int port, const char *s)
{
    int fd = harness_tcp_connect(port, 5000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_all(fd, s, strlen(s)), 0);
    close(fd);
}

START_TEST(test_cli_status)
{
    char admin[64];
    struct cli_run r;
    harness_std_require_start(&H, &S, NULL);
    admin_arg(admin, sizeof(admin), S.admin_port);
    int fd = harness_tcp_connect(S.port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, 500), 0);
    close(fd);
    harness_require_lines(&H, S.out_path, 500, 20000);
    send_raw(S.port, "not json\nnot json either\n");
    harness_require_metric(&H, S.admin_port,
                           "sluice_source_dropped_events_total{source=\"app\",reason=\"invalid\"}",
                           2, false, 10000);

    const char *args[] = {"-a", admin, "status", NULL};
    run_cli(args, 20000, &r);
    HARNESS_REQUIRE(&H, r.status == 0, "sluice status: exit %d, stderr %s", r.status, r.err);
    HARNESS_REQUIRE(&H, has_line(r.out, "sluiced ", "healthy"), "no header line:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "SOURCE ", "EVENTS/S"), "no source table:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "app ", NULL), "no line for source app:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "QUEUE ", "FILL"), "no queue table:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "main ", "%"), "no fill for queue main:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "archive ", " yes "), "sink archive not up:\n%s", r.out);
    HARNESS_REQUIRE(&H,
                    has_line(r.out,
                             "  sluice_source_dropped_events_total{source=\"app\",reason=\"invalid\"}",
                             " 2"),
                    "drops by reason not shown:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "FAILING SINKS: none", NULL), "failing sinks:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "HEALTH: 200 ", "\"ok\""), "health:\n%s", r.out);
    cli_free(&r);

    /* -c FILE finds the endpoint through admin_listen. */
    const char *args_c[] = {"-c", H.conf_path, "status", NULL};
    run_cli(args_c, 20000, &r);
    HARNESS_REQUIRE(&H, r.status == 0 && has_line(r.out, "archive ", " yes "),
                    "sluice -c status: exit %d\n%s%s", r.status, r.out, r.err);
    cli_free(&r);

    /* --watch refreshes; -n bounds it. */
    const char *args_w[] = {"-a", admin, "status", "--watch", "1", "-n", "2", NULL};
    run_cli(args_w, 30000, &r);
    HARNESS_REQUIRE(&H, r.status == 0 && count_of(r.out, "\nHEALTH: 200 ") == 2,
                    "status --watch 1 -n 2: exit %d, want 2 screens:\n%s%s", r.status, r.out,
                    r.err);
    cli_free(&r);
    harness_require_stop_ok(&H);
}
END_TEST

/* A forward sink to a closed port: /healthz 503, the sink listed failing, exit 1. */
START_TEST(test_cli_status_failing)
{
    char admin[64];
    struct cli_run r;
    int port = harness_free_port(SOCK_STREAM);
    int dead = harness_free_port(SOCK_STREAM);
    int aport = harness_free_port(SOCK_STREAM);
    ck_assert(port > 0 && dead > 0 && aport > 0);
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\nproducer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\ntype = tcp\nlisten = 127.0.0.1:%d\n"
                                          "queue = main\n[queue main]\n"
                                          "[sink fwd]\ntype = tcp\ntarget = 127.0.0.1:%d\n"
                                          "queue = main\n",
                                          aport, port, dead),
                     0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, port, 10000) == HARNESS_WAIT_OK, "not listening");
    send_raw(port, "{\"a\":1}\n");
    harness_require_metric(&H, aport, "sluice_sink_up{sink=\"fwd\"}", 0, false, 20000);
    admin_arg(admin, sizeof(admin), aport);
    const char *args[] = {"-a", admin, "status", NULL};
    run_cli(args, 20000, &r);
    HARNESS_REQUIRE(&H, r.status == 1, "status with a failing sink: exit %d (want 1)", r.status);
    HARNESS_REQUIRE(&H, has_line(r.out, "sluiced ", "FAILING"), "header:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "fwd ", " NO "), "sink line:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "FAILING SINKS: fwd", NULL), "failing:\n%s", r.out);
    HARNESS_REQUIRE(&H, has_line(r.out, "HEALTH: 503 ", "\"sink\":\"fwd\""), "health:\n%s",
                    r.out);
    cli_free(&r);
    harness_require_stop_ok(&H);
}
END_TEST

/* sluice check -c prints what sluiced -n prints, with the same exit status. */
START_TEST(test_cli_check)
{
    struct cli_run r, d;
    char good[PATH_MAX], bad[PATH_MAX], out[PATH_MAX];
    harness_path(&H, "good.conf", good, sizeof(good));
    harness_path(&H, "bad.conf", bad, sizeof(bad));
    harness_path(&H, "o.ndjson", out, sizeof(out));
    ck_assert_int_eq(harness_write_file(good,
                                        "[source app]\ntype = tcp\nlisten = 127.0.0.1:%d\n"
                                        "queue = main\n[queue main]\n[sink archive]\n"
                                        "type = file\nqueue = main\npath = %s\n",
                                        harness_free_port(SOCK_STREAM), out),
                     0);
    ck_assert_int_eq(harness_write_file(bad,
                                        "[source app]\ntype = tcp\nlisten = 127.0.0.1:99999\n"
                                        "queue = nowhere\nbogus_key = 1\n[queue main]\n"
                                        "[sink archive]\ntype = file\nqueue = main\npath = %s\n",
                                        out),
                     0);

    const char *cg[] = {"check", "-c", good, NULL};
    const char *dg[] = {"-n", "-c", good, NULL};
    run_cli(cg, 10000, &r);
    run_prog(harness_sluiced_path(), dg, 10000, &d);
    HARNESS_REQUIRE(&H, r.status == 0 && strncmp(r.out, "ok: 1 source (app tcp", 21) == 0,
                    "check good: exit %d, out %s err %s", r.status, r.out, r.err);
    HARNESS_REQUIRE(&H, d.status == 0 && strcmp(r.out, d.out) == 0,
                    "sluice check and sluiced -n differ:\n%s\n%s", r.out, d.out);
    cli_free(&r);
    cli_free(&d);

    const char *cb[] = {"check", "-c", bad, NULL};
    const char *db[] = {"-n", "-c", bad, NULL};
    run_cli(cb, 10000, &r);
    run_prog(harness_sluiced_path(), db, 10000, &d);
    HARNESS_REQUIRE(&H, r.status == 1 && d.status == 1, "check bad: exit %d / sluiced -n %d",
                    r.status, d.status);
    HARNESS_REQUIRE(&H, r.out[0] == '\0', "check bad printed on stdout: %s", r.out);
    char want[PATH_MAX + 16];
    snprintf(want, sizeof(want), "%s:3: ", bad);
    HARNESS_REQUIRE(&H, strstr(r.err, want) != NULL, "no %s error:\n%s", want, r.err);
    snprintf(want, sizeof(want), "%s:5: ", bad);
    HARNESS_REQUIRE(&H, strstr(r.err, want) != NULL, "no %s error:\n%s", want, r.err);
    HARNESS_REQUIRE(&H, strstr(r.err, "sluice: ") != NULL && strstr(r.err, " error(s) in ") != NULL,
                    "no summary line:\n%s", r.err);
    /* The FILE:LINE lines are the daemon's, word for word (the last line
     * names the program). */
    const char *last = strstr(r.err, "sluice: ");
    HARNESS_REQUIRE(&H, strncmp(r.err, d.err, (size_t)(last - r.err)) == 0,
                    "errors differ from sluiced -n:\n%s\n--\n%s", r.err, d.err);
    cli_free(&r);
    cli_free(&d);

    const char *cn[] = {"check", NULL};
    run_cli(cn, 10000, &r);
    HARNESS_REQUIRE(&H, r.status == 2, "check without -c: exit %d (want 2)", r.status);
    cli_free(&r);
}
END_TEST

/* sluice reload: outputs reopen (a file moved away is written anew), counted. */
START_TEST(test_cli_reload)
{
    char admin[64], moved[PATH_MAX];
    struct cli_run r;
    harness_std_require_start(&H, &S, NULL);
    admin_arg(admin, sizeof(admin), S.admin_port);
    int fd = harness_tcp_connect(S.port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, 100), 0);
    harness_require_lines(&H, S.out_path, 100, 20000);
    harness_path(&H, "out.ndjson.1", moved, sizeof(moved));
    ck_assert_int_eq(rename(S.out_path, moved), 0);

    const char *args[] = {"-a", admin, "reload", NULL};
    run_cli(args, 10000, &r);
    HARNESS_REQUIRE(&H, r.status == 0 && strncmp(r.out, "ok: reopening outputs", 21) == 0,
                    "sluice reload: exit %d, out %s err %s", r.status, r.out, r.err);
    cli_free(&r);
    harness_require_metric(&H, S.admin_port, "sluice_admin_reloads_total", 1, false, 5000);
    harness_require_metric(&H, S.admin_port, "sluice_sink_reopens_total{sink=\"archive\"}", 1, true,
                           10000);
    ck_assert_int_eq(harness_send_events(fd, 100, 100), 0);
    close(fd);
    harness_require_lines(&H, S.out_path, 100, 20000);
    HARNESS_REQUIRE(&H, harness_file_lines(moved) == 100, "the moved file grew: %llu lines",
                    (unsigned long long)harness_file_lines(moved));
    HARNESS_REQUIRE(&H, harness_log_has(&H, "POST /reload: reopening outputs"), "no log line");

    /* A browser's request (Origin header) is refused and counted; GET is 405. */
    int c = harness_tcp_connect(S.admin_port, 5000);
    ck_assert_int_ge(c, 0);
    const char *req = "POST /reload HTTP/1.0\r\nHost: 127.0.0.1\r\nOrigin: http://example.org\r\n"
                      "Content-Length: 0\r\n\r\n";
    ck_assert_int_eq(harness_send_all(c, req, strlen(req)), 0);
    char head[256] = "";
    size_t got = 0;
    int64_t deadline = harness_now_ms() + harness_ms(5000);
    while (got < 12 && harness_now_ms() < deadline) {
        ssize_t k = recv(c, head + got, sizeof(head) - 1 - got, MSG_DONTWAIT);
        if (k > 0) {
            got += (size_t)k;
        } else if (k == 0) {
            break;
        } else {
            harness_poll_step(10);
        }
    }
    close(c);
    HARNESS_REQUIRE(&H, strncmp(head, "HTTP/1.0 403", 12) == 0 || strncmp(head, "HTTP/1.1 403", 12) == 0,
                    "POST /reload with Origin: %.40s (want 403)", head);
    harness_require_metric(&H, S.admin_port, "sluice_admin_reloads_refused_total", 1, false, 5000);
    harness_require_metric(&H, S.admin_port, "sluice_admin_reloads_total", 1, false, 5000);
    char *body = NULL;
    int code = harness_http_get(S.admin_port, "/reload", 5000, &body);
    free(body);
    HARNESS_REQUIRE(&H, code == 405, "GET /reload: %d (want 405)", code);
    harness_require_stop_ok(&H);
}
END_TEST

/* Nothing listening: exit 3 and a message naming the address. */
START_TEST(test_cli_unreachable)
{
    char admin[64];
    struct cli_run r;
    admin_arg(admin, sizeof(admin), harness_free_port(SOCK_STREAM));
    const char *args[] = {"-a", admin, "status", NULL};
    run_cli(args, 10000, &r);
    HARNESS_REQUIRE(&H, r.status == 3 && strstr(r.err, admin) != NULL,
                    "unreachable: exit %d, err %s", r.status, r.err);
    cli_free(&r);
    const char *args2[] = {"-a", admin, "reload", NULL};
    run_cli(args2, 10000, &r);
    HARNESS_REQUIRE(&H, r.status == 3, "reload unreachable: exit %d", r.status);
    cli_free(&r);
    const char *args3[] = {"-a", "nonsense", "status", NULL};
    run_cli(args3, 10000, &r);
    HARNESS_REQUIRE(&H, r.status == 2, "-a nonsense: exit %d (want 2)", r.status);
    cli_free(&r);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("cli");
    SRunner *sr;
    int failed;

    tcase_add_test(harness_tcase(s, "status", 90, setup, teardown), test_cli_status);
    tcase_add_test(harness_tcase(s, "status_failing", 60, setup, teardown),
                   test_cli_status_failing);
    tcase_add_test(harness_tcase(s, "check", 30, setup, teardown), test_cli_check);
    tcase_add_test(harness_tcase(s, "reload", 60, setup, teardown), test_cli_reload);
    tcase_add_test(harness_tcase(s, "unreachable", 30, setup, teardown), test_cli_unreachable);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
