/*
 * check_tap — `sluice tap` and GET /tap (docs/sluice.1, docs/protocol.md
 * "Tap") against a real sluiced under load: -n prints exactly that many
 * valid events and exits 0; --grep (filtered by the daemon); -q QUEUE; the
 * token (none, wrong, right, from -c FILE; never a public path) and
 * browsers refused; the SL_TAP_MAX limit; and a SIGSTOPped tap client under
 * full load: the writer's heartbeat and /healthz stay fine, sluiced's RSS
 * stays bounded, the drops are counted in /metrics, and every event still
 * lands in the file exactly once (sequence numbers).
 *
 * The stalled client is stopped for STALL_MS (30 s) under a steady load of
 * FEED_RATE events/s (a fifth in the sanitizer runs): the daemon's side is
 * in steady state (client's buffers full, every sample dropped) after
 * about 3 s of it; the rest shows it stays there.
 *
 * build/sluice is found beside the daemon binary (harness_sluiced_path).
 * Waits poll with deadlines (harness.h).
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_tap
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#define TOKEN "tap-test-token-0123456789abcdef"
#define STALL_MS 30000
#define FEED_MS 34000   /* the stalled test's load: long enough to cover the stall */
#define FEED_RATE 20000 /* events/s of that load (200 bytes each; harness_events) */
#define RSS_GROWTH_KIB (8L * 1024)
#define TAP_MAX 4 /* SL_TAP_MAX */
/* Under ASan freed memory sits in its quarantine, under TSan every
 * allocation has shadow memory: the RSS bound is checked in plain builds
 * only. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHECK_RSS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHECK_RSS 0
#endif
#endif
#ifndef CHECK_RSS
#define CHECK_RSS 1
#endif

static struct harness H;
static struct harness_std S;

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

/* A `sluice` child with its stdout and stderr in files of the test's dir. */
struct child {
    pid_t pid;
    bool exited;
    int status; /* exit status, -1 if killed by a signal */
    char out[PATH_MAX];
    char err[PATH_MAX];
};

static void
child_spawn(struct child *c, const char *tag, const char *const *args)
{
    char name[64];
    char *argv[24];
    size_t n = 0;
    memset(c, 0, sizeof(*c));
    snprintf(name, sizeof(name), "%s.out", tag);
    harness_path(&H, name, c->out, sizeof(c->out));
    snprintf(name, sizeof(name), "%s.err", tag);
    harness_path(&H, name, c->err, sizeof(c->err));
    argv[n++] = (char *)harness_sluice_path();
    for (size_t i = 0; args[i] != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    c->pid = fork();
    ck_assert_msg(c->pid >= 0, "fork: %s", strerror(errno));
    if (c->pid == 0) {
        int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(argv[0], argv);
        _exit(127);
    }
}

static bool
child_exited(struct child *c)
{
    int st;
    if (!c->exited && waitpid(c->pid, &st, WNOHANG) == c->pid) {
        c->exited = true;
        c->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    return c->exited;
}

/* Waits for c to exit within timeout_ms (scaled); kills it if it does not. */
static bool
child_wait(struct child *c, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
    while (!child_exited(c)) {
        if (harness_now_ms() >= deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->exited = true;
            c->status = -1;
            return false;
        }
        harness_poll_step(10);
    }
    return true;
}

static char *
child_text(const char *path)
{
    size_t len;
    char *s = harness_read_file(path, &len);
    return s != NULL ? s : strdup("");
}

/*
 * Sends standard events (harness_event_line) from seq *next on, 50 at a
 * time, to the TCP source at port until c exits or timeout_ms (scaled)
 * passes.  Returns true if c exited.
 */
static bool
feed_until_exit(int port, uint64_t *next, struct child *c, int timeout_ms)
{
    int fd = harness_tcp_connect(port, 5000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
    while (!child_exited(c) && harness_now_ms() < deadline) {
        ck_assert_int_eq(harness_send_events(fd, *next, 50), 0);
        *next += 50;
        harness_poll_step(5);
    }
    close(fd);
    return child_wait(c, 1000);
}

/*
 * Checks that text is exactly n lines, each a standard event (so a valid
 * JSON object with an integer "seq"), each containing must (if not NULL),
 * each seq at least seq_min.
 */
static void
require_events(const char *text, int n, const char *must, uint64_t seq_min)
{
    int lines = 0;
    for (const char *p = text; *p != '\0'; lines++) {
        const char *nl = strchr(p, '\n');
        HARNESS_REQUIRE(&H, nl != NULL, "line %d has no newline: %s", lines + 1, p);
        size_t len = (size_t)(nl - p);
        json_error_t jerr;
        json_t *j = json_loadb(p, len, 0, &jerr);
        HARNESS_REQUIRE(&H, j != NULL && json_is_object(j), "line %d is not a JSON object: %.*s",
                        lines + 1, (int)len, p);
        json_t *seq = json_object_get(j, "seq");
        HARNESS_REQUIRE(&H, json_is_integer(seq), "line %d has no integer seq", lines + 1);
        uint64_t v = (uint64_t)json_integer_value(seq);
        json_decref(j);
        char want[HARNESS_EVENT_BYTES];
        harness_event_line(want, v);
        HARNESS_REQUIRE(&H, len + 1 == HARNESS_EVENT_BYTES && memcmp(p, want, len + 1) == 0,
                        "line %d is not event %" PRIu64 " as sent: %.*s", lines + 1, v, (int)len,
                        p);
        HARNESS_REQUIRE(&H, v >= seq_min, "line %d: seq %" PRIu64 " below %" PRIu64, lines + 1, v,
                        seq_min);
        HARNESS_REQUIRE(&H, must == NULL || memmem(p, len, must, strlen(must)) != NULL,
                        "line %d lacks %s: %.*s", lines + 1, must, (int)len, p);
        p = nl + 1;
    }
    HARNESS_REQUIRE(&H, lines == n, "%d lines, want %d:\n%s", lines, n, text);
}

static double
metric(const char *name_labels, const char *auth)
{
    char *body = NULL;
    double v = -1;
    int code = harness_http_get_hdr(S.admin_port, "/metrics", auth, 5000, &body);
    if (code != 200 || harness_metric(body, name_labels, &v) < 0) {
        v = -1;
    }
    free(body);
    return v;
}

static void
admin_arg(char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", S.admin_port);
}

/* Runs `sluice ARGS` while feeding the source events from *next on; it must
 * exit 0 having printed n events as require_events says. */
static void
tap_require_events(const char *tag, const char *const *args, uint64_t *next, int n,
                   const char *must, uint64_t seq_min)
{
    struct child c;
    child_spawn(&c, tag, args);
    HARNESS_REQUIRE(&H, feed_until_exit(S.port, next, &c, 20000), "%s: did not exit", tag);
    char *out = child_text(c.out), *err = child_text(c.err);
    HARNESS_REQUIRE(&H, c.status == 0, "%s: exit %d, stderr: %s", tag, c.status, err);
    require_events(out, n, must, seq_min);
    free(out);
    free(err);
}

/* Runs `sluice ARGS`: it must exit 1 with want (and also, if not NULL) in
 * its stderr. */
static void
tap_require_refused(const char *tag, const char *const *args, const char *want, const char *also)
{
    struct child c;
    child_spawn(&c, tag, args);
    HARNESS_REQUIRE(&H, child_wait(&c, 10000), "%s: did not exit", tag);
    char *err = child_text(c.err);
    HARNESS_REQUIRE(&H,
                    c.status == 1 && strstr(err, want) != NULL &&
                        (also == NULL || strstr(err, also) != NULL),
                    "%s: exit %d, stderr: %s", tag, c.status, err);
    free(err);
}

START_TEST(test_tap_count)
{
    char admin[64];
    uint64_t next = 0;
    harness_std_require_start(&H, &S, NULL);
    admin_arg(admin, sizeof(admin));
    const char *args[] = {"-a", admin, "tap", "-n", "10", NULL};
    tap_require_events("tap", args, &next, 10, NULL, 0);
    /* The tap is detached once its client went; nothing was lost. */
    harness_require_metric(&H, S.admin_port, "sluice_tap_clients", 0, false, 10000);
    harness_require_metric(&H, S.admin_port, "sluice_tap_attached_total", 1, false, 10000);
    harness_require_lines(&H, S.out_path, next, 20000);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, next);
}
END_TEST

START_TEST(test_tap_grep)
{
    char admin[64];
    uint64_t next = 0;
    harness_std_require_start(&H, &S, NULL);
    admin_arg(admin, sizeof(admin));
    /* Matches seq 12, 120..129, 1200..1299, ...: a few in a hundred. */
    const char *args[] = {"-a", admin, "tap", "-n", "5", "--grep", "{\"seq\":12", NULL};
    tap_require_events("tap", args, &next, 5, "{\"seq\":12", 0);
}
END_TEST

START_TEST(test_tap_queue)
{
    char admin[64], extra[PATH_MAX + 256], other_out[PATH_MAX];
    struct child c;
    int port_b = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(port_b, 0);
    harness_path(&H, "other.ndjson", other_out, sizeof(other_out));
    snprintf(extra, sizeof(extra),
             "\n[queue other]\n"
             "\n[source b]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = other\n"
             "\n[sink o]\ntype = file\nqueue = other\npath = %s\n",
             port_b, other_out);
    S.sink_extra = extra;
    harness_std_require_start(&H, &S, NULL);
    ck_assert_int_eq(harness_wait_tcp(&H, port_b, 10000), HARNESS_WAIT_OK);
    admin_arg(admin, sizeof(admin));

    /* Queue "main" gets seq 0.., "other" 1000000..: the tap of "other"
     * sees only the latter, whichever comes first. */
    const char *args[] = {"-a", admin, "tap", "-q", "other", "-n", "20", NULL};
    child_spawn(&c, "tap", args);
    int fa = harness_tcp_connect(S.port, 5000), fb = harness_tcp_connect(port_b, 5000);
    ck_assert(fa >= 0 && fb >= 0);
    uint64_t na = 0, nb = 1000000;
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (!child_exited(&c) && harness_now_ms() < deadline) {
        ck_assert_int_eq(harness_send_events(fa, na, 50), 0);
        na += 50;
        if (na % 500 == 0) { /* "other" carries a tenth of the traffic */
            ck_assert_int_eq(harness_send_events(fb, nb, 50), 0);
            nb += 50;
        }
        harness_poll_step(5);
    }
    close(fa);
    close(fb);
    HARNESS_REQUIRE(&H, child_wait(&c, 1000), "sluice tap -q other did not exit");
    char *out = child_text(c.out), *err = child_text(c.err);
    HARNESS_REQUIRE(&H, c.status == 0, "exit %d, stderr: %s", c.status, err);
    require_events(out, 20, NULL, 1000000);
    free(out);
    free(err);

    /* A queue that does not exist: 404, exit 1. */
    const char *bad[] = {"-a", admin, "tap", "-q", "nope", "-n", "1", NULL};
    tap_require_refused("tap-nope", bad, "404", "no queue named \"nope\"");
}
END_TEST

/* Writes TOKEN (or text) to name in the test's dir, mode 0600. */
static const char *
token_file(const char *name, const char *text, char *buf, size_t len)
{
    harness_path(&H, name, buf, len);
    ck_assert_int_eq(harness_write_file(buf, "%s\n", text), 0);
    ck_assert_int_eq(chmod(buf, 0600), 0);
    return buf;
}

/* The status line's code of GET path with headers, or -1. */
static int
get(const char *path, const char *headers)
{
    char *body = NULL;
    int code = harness_http_get_hdr(S.admin_port, path, headers, 5000, &body);
    free(body);
    return code;
}

#define AUTH "Authorization: Bearer " TOKEN "\r\n"

START_TEST(test_tap_auth)
{
    char admin[64], extra[2 * PATH_MAX], right[PATH_MAX], wrong[PATH_MAX];
    uint64_t next = 0;
    snprintf(extra, sizeof(extra), "admin_token_file = %s\nadmin_public = metrics\n",
             token_file("admin.token", TOKEN, right, sizeof(right)));
    token_file("wrong.token", "not-the-token-0123456789", wrong, sizeof(wrong));
    S.daemon_extra = extra;
    harness_std_require_start(&H, &S, NULL);
    admin_arg(admin, sizeof(admin));

    /* No token, a wrong one: 401, exit 1, nothing attached.  /metrics is
     * public here, /tap never is. */
    ck_assert_int_eq(get("/tap", ""), 401);
    ck_assert_int_eq(get("/tap", "Authorization: Bearer " TOKEN "x\r\n"), 401);
    const char *none[] = {"-a", admin, "tap", "-n", "1", NULL};
    tap_require_refused("tap-none", none, "401", NULL);
    const char *bad[] = {"-a", admin, "--token-file", wrong, "tap", "-n", "1", NULL};
    tap_require_refused("tap-wrong", bad, "401", NULL);

    /* A browser (Origin) is refused even with the token. */
    ck_assert_int_eq(get("/tap", AUTH "Origin: http://example.invalid\r\n"), 403);
    ck_assert(metric("sluice_tap_attached_total", "") == 0);
    ck_assert(metric("sluice_tap_refused_total", "") == 1);

    /* The right token, from --token-file and from -c FILE. */
    const char *good[] = {"-a", admin, "--token-file", right, "tap", "-n", "10", NULL};
    tap_require_events("tap-good", good, &next, 10, NULL, 0);
    const char *conf[] = {"-c", H.conf_path, "tap", "-n", "3", NULL};
    tap_require_events("tap-conf", conf, &next, 3, NULL, 0);
    ck_assert(metric("sluice_tap_attached_total", "") == 2);
}
END_TEST

/* Opens a GET /tap on a raw socket; returns the fd and the status code in
 * *code (read from the first bytes of the answer). */
static int
raw_tap(int *code)
{
    static const char req[] = "GET /tap HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[64] = "";
    int fd = harness_tcp_connect(S.admin_port, 5000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_all(fd, req, sizeof(req) - 1), 0);
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t n = 0;
    while (n < 12) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    *code = strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : -1;
    return fd;
}

START_TEST(test_tap_limit)
{
    int fds[TAP_MAX], code;
    harness_std_require_start(&H, &S, NULL);
    for (int i = 0; i < TAP_MAX; i++) {
        fds[i] = raw_tap(&code);
        ck_assert_int_eq(code, 200);
    }
    harness_require_metric(&H, S.admin_port, "sluice_tap_clients", TAP_MAX, false, 10000);
    int fd = raw_tap(&code);
    ck_assert_int_eq(code, 503);
    close(fd);
    /* Closing one frees its place. */
    close(fds[0]);
    harness_require_metric(&H, S.admin_port, "sluice_tap_clients", TAP_MAX - 1, false, 10000);
    fds[0] = raw_tap(&code);
    ck_assert_int_eq(code, 200);
    for (int i = 0; i < TAP_MAX; i++) {
        close(fds[i]);
    }
    harness_require_metric(&H, S.admin_port, "sluice_tap_clients", 0, false, 10000);
    ck_assert(metric("sluice_tap_refused_total", "") == 1);
    harness_require_stop_ok(&H);
}
END_TEST

/* The stalled test's load: a child that sends events 0.. at FEED_RATE for
 * FEED_MS (at most: slower if sluiced pushes back), then writes how many to
 * path and exits. */
static pid_t
feeder_spawn(int port, const char *path)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = harness_tcp_connect(port, 30000);
        uint64_t n = 0;
        int64_t start = harness_now_ms(), end = start + FEED_MS;
        while (fd >= 0 && harness_now_ms() < end) {
            if (harness_send_events(fd, n, 1000) < 0) {
                _exit(1);
            }
            n += 1000;
            int64_t due = start + (int64_t)(n * 1000 / (uint64_t)harness_events(FEED_RATE));
            while (harness_now_ms() < due) {
                harness_poll_step(1);
            }
        }
        close(fd);
        _exit(harness_write_file(path, "%" PRIu64 "\n", n) == 0 ? 0 : 1);
    }
    return pid;
}

START_TEST(test_tap_stalled_client)
{
    char admin[64], countp[PATH_MAX];
    struct child c;
    S.queue_extra = "capacity = 4MiB\n"; /* the queue's share of RSS stays small */
    harness_std_require_start(&H, &S, NULL);
    admin_arg(admin, sizeof(admin));
    const char *args[] = {"-a", admin, "tap", "-r", "10000", NULL};
    child_spawn(&c, "tap", args);
    harness_path(&H, "fed", countp, sizeof(countp));
    pid_t feeder = feeder_spawn(S.port, countp);

    /* The tap flows, under load. */
    int64_t deadline = harness_now_ms() + harness_ms(15000);
    while (harness_file_lines(c.out) < 2000 && harness_now_ms() < deadline) {
        harness_poll_step(20);
    }
    HARNESS_REQUIRE(&H, harness_file_lines(c.out) >= 2000, "the tap did not flow: %" PRIu64,
                    harness_file_lines(c.out));
    long rss0 = harness_vmrss_kib(H.pid), rss_max = rss0;
    double dropped0 = metric("sluice_tap_dropped_total{reason=\"slow_client\"}", "");

    /* Stopped: the daemon goes on; what the tap cannot send is dropped. */
    ck_assert_int_eq(kill(c.pid, SIGSTOP), 0);
    uint64_t lines_stopped = harness_file_lines(c.out);
    int64_t end = harness_now_ms() + STALL_MS;
    double age_max = 0;
    while (harness_now_ms() < end) {
        double age = metric("sluice_writer_heartbeat_age_seconds", "");
        HARNESS_REQUIRE(&H, age >= 0 && age < 2.0, "writer heartbeat age %.3f s", age);
        age_max = age > age_max ? age : age_max;
        HARNESS_REQUIRE(&H, harness_healthz_ok(S.admin_port, 5000), "/healthz not ok");
        long rss = harness_vmrss_kib(H.pid);
        rss_max = rss > rss_max ? rss : rss_max;
        harness_poll_step(250);
    }
    double dropped = metric("sluice_tap_dropped_total{reason=\"slow_client\"}", "");
    double busy = metric("sluice_tap_dropped_total{reason=\"busy\"}", "");
    double full = metric("sluice_tap_dropped_total{reason=\"buffer_full\"}", "");
    fprintf(stderr,
            "check_tap stalled: rss %ld -> max %ld KiB, heartbeat age max %.3f s, dropped "
            "slow_client %.0f (+%.0f while stopped), busy %.0f, buffer_full %.0f\n",
            rss0, rss_max, age_max, dropped, dropped - dropped0, busy, full);
    HARNESS_REQUIRE(&H, dropped > dropped0, "no slow_client drops counted while stopped");
    HARNESS_REQUIRE(&H, !CHECK_RSS || rss_max - rss0 <= RSS_GROWTH_KIB,
                    "RSS grew %ld KiB while the tap stalled", rss_max - rss0);

    /* Resumed: the same connection flows again; ^C ends it with 0. */
    ck_assert_int_eq(kill(c.pid, SIGCONT), 0);
    deadline = harness_now_ms() + harness_ms(15000);
    while (harness_file_lines(c.out) <= lines_stopped + 100 && harness_now_ms() < deadline &&
           !child_exited(&c)) {
        harness_poll_step(20);
    }
    HARNESS_REQUIRE(&H, !child_exited(&c), "the tap exited: %d", c.status);
    int st;
    HARNESS_REQUIRE(&H, waitpid(feeder, &st, 0) == feeder && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                    "the feeder failed");
    HARNESS_REQUIRE(&H, harness_file_lines(c.out) > lines_stopped + 100,
                    "the tap did not flow again after SIGCONT");
    ck_assert_int_eq(kill(c.pid, SIGINT), 0);
    HARNESS_REQUIRE(&H, child_wait(&c, 10000) && c.status == 0, "tap after ^C: exit %d", c.status);

    /* Every event landed exactly once. */
    size_t len;
    char *fed = harness_read_file(countp, &len);
    ck_assert_ptr_nonnull(fed);
    uint64_t n = strtoull(fed, NULL, 10);
    free(fed);
    ck_assert_uint_gt(n, 0);
    harness_require_lines(&H, S.out_path, n, 60000);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, n);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("tap");
    tcase_add_test(harness_tcase(s, "count", 60, setup, teardown), test_tap_count);
    tcase_add_test(harness_tcase(s, "grep", 60, setup, teardown), test_tap_grep);
    tcase_add_test(harness_tcase(s, "queue", 60, setup, teardown), test_tap_queue);
    tcase_add_test(harness_tcase(s, "auth", 60, setup, teardown), test_tap_auth);
    tcase_add_test(harness_tcase(s, "limit", 60, setup, teardown), test_tap_limit);
    tcase_add_test(harness_tcase(s, "stalled_client", 120, setup, teardown),
                   test_tap_stalled_client);
    return harness_run_suite(s);
}
