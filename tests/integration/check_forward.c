/*
 * check_forward — the tcp forward sink against real sluiced processes: an
 * edge sluiced (tcp source -> tcp sink) forwarding to aggregator sluiceds
 * (tcp source -> file sink), both with default settings apart from ports
 * and short reconnection delays.
 *
 *   chain        every event sent to the edge arrives in the aggregator's
 *                file, byte for byte, exactly once;
 *   peer_down    the aggregator stops (after taking what was in flight) and
 *                comes back later: the edge holds what arrives meanwhile
 *                (its /healthz says why), and delivers all of it, once;
 *   peer_killed  the aggregator is killed (-9) while events stream: what is
 *                missing afterwards is one contiguous run (the documented
 *                window: bytes accepted by a kernel but never processed),
 *                nothing is duplicated or damaged, and everything after it
 *                arrives;
 *   failover     two targets: the first down, all goes to the second; then
 *                the second goes away and the first comes up: the rest goes
 *                there; every event exactly once over both files;
 *   black_hole   the first target accepts connections and never reads: the
 *                edge drops it after write_timeout and fails over; what the
 *                hole's kernel took is still delivered when it reads (the
 *                edge closed gracefully), so both streams together hold every
 *                event exactly once.
 *
 * Run: SLUICED=build/sluiced build/tests/integration/check_forward
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static struct harness E;    /* the edge */
static struct harness A[2]; /* aggregators */
static int edge_port, edge_admin, agg_port[2];
static char agg_out[2][PATH_MAX];

static void
setup(void)
{
    ck_assert_msg(harness_init(&E) == 0, "mkdtemp: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(harness_init(&A[i]) == 0, "mkdtemp: %s", strerror(errno));
        harness_path(&A[i], "out.ndjson", agg_out[i], sizeof(agg_out[i]));
        agg_port[i] = harness_free_port(SOCK_STREAM);
        ck_assert_int_gt(agg_port[i], 0);
    }
    edge_port = harness_free_port(SOCK_STREAM);
    edge_admin = harness_free_port(SOCK_STREAM);
}

static void
teardown(void)
{
    harness_fini(&E);
    harness_fini(&A[0]);
    harness_fini(&A[1]);
}

/* An aggregator: defaults, a tcp source and a file sink. */
static void
agg_start(int i)
{
    ck_assert_int_eq(harness_write_config(&A[i],
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = off\n"
                                          "[source edges]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n",
                                          agg_port[i], agg_out[i]),
                     0);
    ck_assert_int_eq(harness_start(&A[i], NULL), 0);
    HARNESS_REQUIRE(&A[i], harness_wait_tcp(&A[i], agg_port[i], 10000) == HARNESS_WAIT_OK,
                    "aggregator %d not listening", i);
}

/* The edge: defaults, a tcp source and a tcp sink to targets. */
static void
edge_start(const char *targets, const char *extra)
{
    ck_assert_int_eq(harness_write_config(&E,
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink forward]\n"
                                          "type = tcp\n"
                                          "queue = main\n"
                                          "target = %s\n"
                                          "retry_initial = 50ms\n"
                                          "retry_max = 500ms\n"
                                          "%s",
                                          edge_admin, edge_port, targets, extra),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK,
                    "edge not listening");
}

static void
stop_ok(struct harness *h)
{
    int status = 0;
    enum harness_wait w = harness_stop(h, SIGTERM, 60000, &status);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "no exit within 60 s of SIGTERM");
    HARNESS_REQUIRE(h, WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
}

/* Sends events [base, base + n) to the edge on a new connection, and waits
 * until the edge's kernel has taken them all. */
static void
send_to_edge(uint64_t base, uint64_t n)
{
    int fd = harness_tcp_connect(edge_port, 60000);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, base, n), 0);
    HARNESS_REQUIRE(&E, harness_wait_sent(fd, 60000) == HARNESS_WAIT_OK, "edge did not read");
    close(fd);
}

static void
require_lines(struct harness *h, const char *path, uint64_t n, int timeout_ms)
{
    uint64_t got = 0;
    enum harness_wait w = harness_wait_lines(h, path, n, timeout_ms, &got);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "%s: %" PRIu64 " of %" PRIu64 " lines", path, got, n);
}

static void
require_once(struct harness *h, const char *const *paths, size_t np, uint64_t n)
{
    struct harness_seqs s;
    char msg[1024];

    ck_assert_int_eq(harness_seqs_init(&s, n), 0);
    for (size_t i = 0; i < np; i++) {
        ck_assert_int_eq(harness_seqs_add_file(&s, paths[i], true), 0);
    }
    if (!harness_seqs_exactly_once(&s, msg, sizeof(msg))) {
        harness_report(h, __FILE__, __LINE__, "exactly once");
        ck_abort_msg("%s", msg);
    }
    harness_seqs_fini(&s);
}

static bool
log_has(struct harness *h, const char *text)
{
    char *log = harness_read_file(h->log_path, NULL);
    bool found = log != NULL && strstr(log, text) != NULL;

    free(log);
    return found;
}

static char *
target(int i, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", agg_port[i]);
    return buf;
}

/* --- chain --------------------------------------------------------------------------- */

#define CHAIN_EVENTS 100000

START_TEST(test_forward_chain)
{
    char t[64];
    const char *paths[] = {agg_out[0]};

    agg_start(0);
    edge_start(target(0, t, sizeof(t)), "");
    send_to_edge(0, CHAIN_EVENTS);
    require_lines(&A[0], agg_out[0], CHAIN_EVENTS, 60000);
    stop_ok(&E);
    stop_ok(&A[0]);
    require_once(&A[0], paths, 1, CHAIN_EVENTS);
}
END_TEST

/* --- the peer goes down and comes back -------------------------------------------- */

START_TEST(test_forward_peer_down)
{
    char t[64], *body = NULL;
    const char *paths[] = {agg_out[0]};

    agg_start(0);
    edge_start(target(0, t, sizeof(t)), "");
    send_to_edge(0, 10000);
    require_lines(&A[0], agg_out[0], 10000, 30000);
    /* Down: an orderly stop takes what its kernel already held. */
    stop_ok(&A[0]);
    send_to_edge(10000, 20000);
    /* The edge holds the events and says why. */
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    int code = 0;
    while (harness_now_ms() < deadline) {
        free(body);
        body = NULL;
        code = harness_http_get(edge_admin, "/healthz", 5000, &body);
        if (code == 503) {
            break;
        }
        harness_poll_step(20);
    }
    HARNESS_REQUIRE(&E, code == 503 && body != NULL && strstr(body, "forward") != NULL,
                    "edge /healthz: %d %s", code, body != NULL ? body : "");
    free(body);
    HARNESS_REQUIRE(&E, log_has(&E, "sink \"forward\": failing: "),
                    "the edge's log does not say why");
    HARNESS_REQUIRE(&A[0], harness_file_lines(agg_out[0]) == 10000, "lines while down");
    /* Back: everything held is delivered, once. */
    agg_start(0);
    require_lines(&A[0], agg_out[0], 30000, 30000);
    code = harness_http_get(edge_admin, "/healthz", 5000, &body);
    HARNESS_REQUIRE(&E, code == 200, "edge /healthz after recovery: %d", code);
    free(body);
    stop_ok(&E);
    stop_ok(&A[0]);
    require_once(&A[0], paths, 1, 30000);
}
END_TEST

/* --- the peer is killed mid-stream -------------------------------------------------- */

struct streamer {
    pthread_t thread;
    uint64_t n;
    int err;
};

static void *
streamer_main(void *arg)
{
    struct streamer *s = arg;
    int fd = harness_tcp_connect(edge_port, 120000);

    if (fd < 0 || harness_send_events(fd, 0, s->n) < 0) {
        s->err = errno;
    }
    if (fd >= 0) {
        harness_wait_sent(fd, 120000);
        close(fd);
    }
    return NULL;
}

struct last_line {
    const char *path;
    uint64_t seq;
};

/* The file's last line is the event seq. */
static bool
last_line_cb(void *arg)
{
    struct last_line *l = arg;
    char buf[2 * HARNESS_EVENT_BYTES + 1], want[HARNESS_EVENT_BYTES];
    int fd = open(l->path, O_RDONLY | O_CLOEXEC);
    off_t size;
    bool ok = false;

    if (fd < 0) {
        return false;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size >= HARNESS_EVENT_BYTES &&
        pread(fd, buf, HARNESS_EVENT_BYTES, size - HARNESS_EVENT_BYTES) == HARNESS_EVENT_BYTES) {
        harness_event_line(want, l->seq);
        ok = memcmp(buf, want, HARNESS_EVENT_BYTES) == 0;
    }
    close(fd);
    return ok;
}

START_TEST(test_forward_peer_killed)
{
    const uint64_t n = 200000;
    char t[64];
    struct streamer st = {.n = n};
    int status;

    agg_start(0);
    edge_start(target(0, t, sizeof(t)), "");
    ck_assert_int_eq(pthread_create(&st.thread, NULL, streamer_main, &st), 0);
    require_lines(&A[0], agg_out[0], 20000, 30000);
    /* Crash the aggregator while events stream through the edge. */
    ck_assert_int_eq(harness_signal(&A[0], SIGKILL), 0);
    ck_assert_int_eq(harness_wait_exit(&A[0], 10000, &status), HARNESS_WAIT_OK);
    uint64_t before = harness_file_lines(agg_out[0]);
    agg_start(0); /* the same file: appends after what the first one wrote */
    pthread_join(st.thread, NULL);
    ck_assert_msg(st.err == 0, "sender: %s", strerror(st.err));

    /* Wait until the last event has arrived (one connection: in order). */
    struct last_line ll = {.path = agg_out[0], .seq = n - 1};
    HARNESS_REQUIRE(&A[0], harness_poll(&A[0], 60000, last_line_cb, &ll) == HARNESS_WAIT_OK,
                    "the end of the stream never arrived");
    stop_ok(&E);
    stop_ok(&A[0]);
    struct harness_seqs s;
    ck_assert_int_eq(harness_seqs_init(&s, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, agg_out[0], true), 0);
    /* No damaged line, no duplicate; what is missing is one run. */
    HARNESS_REQUIRE(&A[0], s.bad == 0 && s.dups == 0, "bad %" PRIu64 ", dups %" PRIu64 ": %s",
                    s.bad, s.dups, s.first_error);
    uint64_t first = n, last = 0, missing = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (s.seen[i] == 0) {
            first = i < first ? i : first;
            last = i;
            missing++;
        }
    }
    HARNESS_REQUIRE(&A[0], missing == 0 || last - first + 1 == missing,
                    "missing events are not one run: %" PRIu64 " missing in [%" PRIu64 ", %" PRIu64
                    "]",
                    missing, first, last);
    HARNESS_REQUIRE(&A[0], missing == 0 || first >= before,
                    "events written before the crash are missing (first %" PRIu64 ", %" PRIu64
                    " written)",
                    first, before);
    fprintf(stderr,
            "check_forward peer_killed: %" PRIu64 " of %" PRIu64
            " events lost in the window (seq %" PRIu64 "..%" PRIu64 ")\n",
            missing, n, first, last);
    harness_seqs_fini(&s);
}
END_TEST

/* --- failover ------------------------------------------------------------------------- */

START_TEST(test_forward_failover)
{
    char t0[64], t1[64], targets[160];
    const char *paths[] = {agg_out[0], agg_out[1]};

    snprintf(targets, sizeof(targets), "%s, %s", target(0, t0, sizeof(t0)),
             target(1, t1, sizeof(t1)));
    agg_start(1); /* the first target is down */
    edge_start(targets, "");
    send_to_edge(0, 10000);
    require_lines(&A[1], agg_out[1], 10000, 30000);
    HARNESS_REQUIRE(&A[0], !harness_exists(agg_out[0]), "the first target got events");
    /* The first comes up, the second goes away: the rest goes to the first. */
    agg_start(0);
    stop_ok(&A[1]);
    send_to_edge(10000, 10000);
    require_lines(&A[0], agg_out[0], 10000, 30000);
    stop_ok(&E);
    stop_ok(&A[0]);
    require_once(&A[0], paths, 2, 20000);
}
END_TEST

/* --- a black-holed peer ---------------------------------------------------------------- */

START_TEST(test_forward_black_hole)
{
    const uint64_t n = 100000; /* 20 MB: more than the hole's buffers */
    char t1[64], targets[160], hole_out[PATH_MAX];
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int rcv = 4096, one = 1;

    /* The hole: a listener of this test that accepts and does not read. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    snprintf(targets, sizeof(targets), "127.0.0.1:%d, %s", ntohs(sin.sin_port),
             target(1, t1, sizeof(t1)));
    agg_start(1);
    edge_start(targets, "write_timeout = 1s\n");
    int hole = accept(lfd, NULL, NULL); /* the edge connects at start */
    ck_assert_int_ge(hole, 0);
    send_to_edge(0, n);
    /* The edge gives up on the hole and the rest goes to the second target. */
    int64_t deadline = harness_now_ms() + harness_ms(60000);
    while (!log_has(&E, "accepted no data for")) {
        HARNESS_REQUIRE(&E, harness_now_ms() < deadline, "the black hole was never detected");
        harness_poll_step(20);
    }
    /* The hole reads at last: what the edge had sent it still arrives (the
     * edge closed the connection gracefully), then EOF. */
    harness_path(&E, "hole.ndjson", hole_out, sizeof(hole_out));
    int out = open(hole_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(out, 0);
    static char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(hole, buf, sizeof(buf));
        if (r <= 0) {
            ck_assert_int_eq(r, 0);
            break;
        }
        ck_assert_int_eq(write(out, buf, (size_t)r), r);
        got += (size_t)r;
    }
    /* A torn head of a line at the end was sent whole to the other target. */
    ck_assert_int_eq(ftruncate(out, (off_t)(got - got % HARNESS_EVENT_BYTES)), 0);
    close(out);
    close(hole);
    close(lfd);
    uint64_t in_hole = got / HARNESS_EVENT_BYTES;
    HARNESS_REQUIRE(&E, in_hole > 0, "the hole got nothing");
    require_lines(&A[1], agg_out[1], n - in_hole, 60000);
    stop_ok(&E);
    stop_ok(&A[1]);
    const char *paths[] = {hole_out, agg_out[1]};
    require_once(&A[1], paths, 2, n);
}
END_TEST

static Suite *
forward_suite(void)
{
    Suite *s = suite_create("forward");
    struct {
        const char *name;
        const TTest *test;
        int timeout;
    } cases[] = {
        {"chain", test_forward_chain, 120},
        {"peer_down", test_forward_peer_down, 120},
        {"peer_killed", test_forward_peer_killed, 180},
        {"failover", test_forward_failover, 120},
        {"black_hole", test_forward_black_hole, 180},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(forward_suite());
    int failed;

    signal(SIGPIPE, SIG_IGN);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
