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
 *   peer_paused  the aggregator is stopped (SIGSTOP: its kernel still
 *                acknowledges, its window stays closed, as when its own disk
 *                is full) for five times the edge's write_timeout while the
 *                edge's send buffer is full: the edge holds the connection
 *                and the events, and after SIGCONT every event arrives
 *                exactly once (issue 18: the kernel used to abort such a
 *                connection and purge its send buffer);
 *   failover     two targets: the first down, all goes to the second; then
 *                the second goes away and the first comes up: the rest goes
 *                there; every event exactly once over both files;
 *   slow_reader  the first of two targets accepts and does not read for five
 *                times write_timeout: it is alive (its kernel acknowledges),
 *                so the edge neither drops it nor fails over; when it reads,
 *                it gets every event exactly once and the second nothing.
 *
 * A peer that is really gone (stopped acknowledging) is covered here only
 * by peer_killed (a reset); a black hole cannot be made on loopback without
 * privileges, so the rule that recognises one is unit-tested with TCP_INFO
 * samples in tests/check_sink_tcp.c.
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
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
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

/* The edge: defaults, a tcp source and a tcp sink to targets; the extra
 * strings are more lines for the queue and the sink sections. */
static void
edge_start_with(const char *targets, const char *queue_extra, const char *extra)
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
                                          "%s"
                                          "[sink forward]\n"
                                          "type = tcp\n"
                                          "queue = main\n"
                                          "target = %s\n"
                                          "retry_initial = 50ms\n"
                                          "retry_max = 500ms\n"
                                          "%s",
                                          edge_admin, edge_port, queue_extra, targets, extra),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK,
                    "edge not listening");
}

static void
edge_start(const char *targets, const char *extra)
{
    edge_start_with(targets, "", extra);
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

#define CHAIN_EVENTS harness_events(100000)

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

/*
 * Sends events [base, n) to the edge from a thread of its own: the first
 * paced of them at rate events per second (a steady producer, as in the
 * field), the rest as fast as the edge takes them.
 */
struct streamer {
    pthread_t thread;
    uint64_t base, n;
    uint64_t paced, rate;
    int err;
};

#define STREAM_SLICE 50 /* paced events are sent in slices this big */

/* Sends events [from, to) at rate per second (pacing: load shaping, not
 * synchronisation).  0 / -1. */
static int
send_paced(int fd, uint64_t from, uint64_t to, uint64_t rate)
{
    struct timespec t0, due;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t seq = from; seq < to; seq += STREAM_SLICE) {
        uint64_t k = to - seq < STREAM_SLICE ? to - seq : STREAM_SLICE;
        uint64_t ns = (seq - from) * 1000000000ull / rate;
        due.tv_sec = t0.tv_sec + (time_t)(ns / 1000000000ull);
        due.tv_nsec = t0.tv_nsec + (long)(ns % 1000000000ull);
        if (due.tv_nsec >= 1000000000L) {
            due.tv_sec++;
            due.tv_nsec -= 1000000000L;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
        }
        if (harness_send_events(fd, seq, k) < 0) {
            return -1;
        }
    }
    return 0;
}

static void *
streamer_main(void *arg)
{
    struct streamer *s = arg;
    int fd = harness_tcp_connect(edge_port, 120000);
    uint64_t fast = s->base + s->paced;

    if (fd < 0 || (s->paced > 0 && send_paced(fd, s->base, fast, s->rate) < 0) ||
        harness_send_events(fd, fast, s->n - fast) < 0) {
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

/* --- a paused peer: slow, not gone ------------------------------------------------- */

#define STALL_WRITE_TIMEOUT "write_timeout = 1s\n"
#define STALL_MS 5000 /* five times that write_timeout */
/* A small edge queue, so that a few MB fill it and the source pauses. */
#define STALL_QUEUE "capacity = 2MiB\n"
/* 20 MB: more than the edge's queue, its send buffer (at most tcp_wmem[2],
 * 4 MiB by default) and the paused peer's receive buffer together. */
#define STALL_EVENTS 100000
/* The first events trickle in at 500 kB/s for 4 s, as from a steady
 * producer: the peer's window closes long before the edge's send buffer
 * (1 MB or more on loopback) is full, so the edge's kernel probes a closed
 * window for more than write_timeout while sluiced can still send.  That
 * is the case the old TCP_USER_TIMEOUT = write_timeout lost: the kernel
 * aborted the connection and purged its send buffer. */
#define STALL_PACED 10000
#define STALL_RATE 2500

/* A sample from the edge's /metrics, or -1 when it cannot be read. */
static double
edge_metric(const char *name_labels)
{
    double v = -1;

    if (harness_metric_get(edge_admin, name_labels, &v) < 0) {
        return -1;
    }
    return v;
}

static bool
edge_blocked_cb(void *arg)
{
    return edge_metric("sluice_source_paused_connections{source=\"app\"}") >= 1;
}

/*
 * Waits until the edge is blocked by its peer: its source has paused a
 * connection, which happens only once its queue is full, i.e. once the tcp
 * sink's send buffer is full and the peer's window closed.
 */
static void
wait_edge_blocked(void)
{
    HARNESS_REQUIRE(&E, harness_poll(&E, 60000, edge_blocked_cb, NULL) == HARNESS_WAIT_OK,
                    "the edge never blocked (no paused connection)");
}

/*
 * Keeps the edge blocked for ms and returns the most connections its sink
 * dropped meanwhile.  What is tested is that nothing happens for several
 * write_timeouts, so the duration itself is the condition: this is a poll
 * with a fixed end (not scaled: it is the scenario, not a deadline), which
 * watches the edge's disconnect counter and that the edge stays alive.
 */
static double
hold_stall(int ms)
{
    int64_t end = harness_now_ms() + ms;
    double most = 0;

    while (harness_now_ms() < end) {
        double d = edge_metric("sluice_sink_disconnects_total{sink=\"forward\"}");
        most = d > most ? d : most;
        HARNESS_REQUIRE(&E, harness_alive(&E), "the edge died during the stall");
        harness_poll_step(100);
    }
    return most;
}

START_TEST(test_forward_peer_paused)
{
    char t[64];
    struct streamer st = {
        .base = 1000, .n = STALL_EVENTS, .paced = STALL_PACED, .rate = STALL_RATE};
    const char *paths[] = {agg_out[0]};
    uint64_t got = 0;

    agg_start(0);
    edge_start_with(target(0, t, sizeof(t)), STALL_QUEUE, STALL_WRITE_TIMEOUT);
    send_to_edge(0, 1000); /* the aggregator has accepted the edge's connection */
    require_lines(&A[0], agg_out[0], 1000, 30000);
    HARNESS_REQUIRE(&A[0], harness_pause(&A[0], 10000) == 0, "the peer did not stop");
    ck_assert_int_eq(pthread_create(&st.thread, NULL, streamer_main, &st), 0);
    wait_edge_blocked();
    double dropped = hold_stall(STALL_MS);
    ck_assert_int_eq(harness_signal(&A[0], SIGCONT), 0);
    pthread_join(st.thread, NULL);
    ck_assert_msg(st.err == 0, "sender: %s", strerror(st.err));
    /* One connection: the events arrive in order, the last one last.  If
     * some were lost the count is never reached: then stop both (the edge
     * delivers what it holds, the aggregator takes what its kernel holds)
     * and let the exactly-once check say what is missing. */
    harness_wait_lines(&A[0], agg_out[0], STALL_EVENTS, 30000, &got);
    stop_ok(&E);
    stop_ok(&A[0]);
    require_once(&A[0], paths, 1, STALL_EVENTS);
    HARNESS_REQUIRE(&E, dropped == 0, "the edge dropped the paused peer's connection %g time(s)",
                    dropped);
    HARNESS_REQUIRE(&E, log_has(&E, "still acknowledges: holding the events"),
                    "the edge's log does not say it holds the events");
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

/* --- a slow reader: held, not failed over -------------------------------------------- */

START_TEST(test_forward_slow_reader)
{
    const uint64_t n = STALL_EVENTS;
    char t1[64], targets[160], slow_out[PATH_MAX];
    struct streamer st = {.base = 0, .n = n};

    /* The slow reader: a listener of this test that accepts and does not
     * read (yet); its kernel acknowledges what fits its 4 KiB window and
     * answers the window probes. */
    int slow_port = 0;
    int lfd = harness_tcp_listen(4096, &slow_port);
    ck_assert_int_ge(lfd, 0);
    snprintf(targets, sizeof(targets), "127.0.0.1:%d, %s", slow_port, target(1, t1, sizeof(t1)));
    agg_start(1);
    edge_start_with(targets, STALL_QUEUE, STALL_WRITE_TIMEOUT);
    int slow = accept(lfd, NULL, NULL); /* the edge connects at start */
    ck_assert_int_ge(slow, 0);
    ck_assert_int_eq(pthread_create(&st.thread, NULL, streamer_main, &st), 0);
    wait_edge_blocked();
    double dropped = hold_stall(STALL_MS);
    HARNESS_REQUIRE(&E, dropped == 0, "the edge dropped the slow reader %g time(s)", dropped);
    HARNESS_REQUIRE(&A[1], harness_file_lines(agg_out[1]) == 0,
                    "the edge failed over to the second target");
    /* The reader reads at last: every event arrives on its connection. */
    harness_path(&E, "slow.ndjson", slow_out, sizeof(slow_out));
    int out = open(slow_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(out, 0);
    static char buf[65536];
    uint64_t got = 0;
    int64_t deadline = harness_now_ms() + harness_ms(60000);
    struct timeval tv = {.tv_sec = 1}; /* so the deadline is checked while nothing comes */
    ck_assert_int_eq(setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    while (got < n * HARNESS_EVENT_BYTES) {
        HARNESS_REQUIRE(&E, harness_now_ms() < deadline,
                        "the slow reader got %" PRIu64 " of %" PRIu64 " bytes", got,
                        n * HARNESS_EVENT_BYTES);
        ssize_t r = read(slow, buf, sizeof(buf));
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        HARNESS_REQUIRE(&E, r > 0, "the slow reader's connection ended: %zd", r);
        ck_assert_int_eq(write(out, buf, (size_t)r), r);
        got += (uint64_t)r;
    }
    close(out);
    pthread_join(st.thread, NULL);
    ck_assert_msg(st.err == 0, "sender: %s", strerror(st.err));
    stop_ok(&E);
    close(slow);
    close(lfd);
    stop_ok(&A[1]);
    ck_assert_uint_eq(harness_file_lines(agg_out[1]), 0);
    const char *paths[] = {slow_out};
    require_once(&E, paths, 1, n);
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
        {"peer_paused", test_forward_peer_paused, 180},
        {"failover", test_forward_failover, 120},
        {"slow_reader", test_forward_slow_reader, 180},
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
