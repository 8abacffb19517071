/*
 * check_hostile — hostile clients against the real sluiced: lines with no
 * newline, a 1 GiB line, 100,000-deep nesting, huge numbers, invalid UTF-8
 * and NUL bytes, slowloris clients, 10,000 simultaneous connections, a
 * connect/close storm, a UDP flood far over capacity and datagrams larger
 * than any line.
 *
 * Each test states the outcome the daemon promises (docs/security.md):
 * memory and descriptors stay bounded, the offending input is counted in
 * /metrics and dropped (or the connection closed and counted), every other
 * client is unaffected, and /healthz answers.  Waits poll with deadlines
 * (harness.h); every load loop is bounded in count.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_hostile
 * (CK_RUN_CASE=<tcase> runs one; CK_TIMEOUT_MULTIPLIER scales the deadlines).
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

#define MIB (1024L * 1024L)
/* The daemon's resident memory may not pass this in any test here (the
 * plain build peaks at about 17 MiB, with 10,000 connections).  Under
 * ThreadSanitizer, whose shadow memory and sync metadata cost 5-10x by its
 * documentation, the same daemon peaked at 97-107 MiB: four times the
 * limit there. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) /* clang */
#define HOSTILE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(HOSTILE_TSAN) /* gcc, clang */
#define RSS_LIMIT_KIB (4 * 96L * 1024)
#else
#define RSS_LIMIT_KIB (96L * 1024)
#endif

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

/* A sample of /metrics, failing the test when it is absent. */
static double
metric(const char *name_labels)
{
    double v = -1;

    HARNESS_REQUIRE(&H, harness_metric_get(S.admin_port, name_labels, &v) == 0,
                    "no sample %s in /metrics", name_labels);
    return v;
}

#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"}"
#define M_INVALID "sluice_source_dropped_events_total{source=\"app\",reason=\"invalid\"}"
#define M_OVERSIZE "sluice_source_dropped_events_total{source=\"app\",reason=\"oversize\"}"
#define M_QFULL "sluice_source_dropped_events_total{source=\"app\",reason=\"queue_full\"}"
#define M_TRUNC "sluice_source_dropped_events_total{source=\"app\",reason=\"truncated\"}"
#define M_KDROPS "sluice_source_kernel_dropped_datagrams_total{source=\"app\"}"
#define M_CONNS "sluice_source_connections{source=\"app\"}"
#define M_REJECTED "sluice_source_connections_rejected_total{source=\"app\"}"
#define M_WRITTEN "sluice_sink_written_events_total{sink=\"archive\"}"

/* Polls until the metric equals want. */
static void
require_metric(const char *name, double want, int timeout_ms)
{
    harness_require_metric(&H, S.admin_port, name, want, false, timeout_ms);
}

static void
require_healthy(const char *when)
{
    HARNESS_REQUIRE(&H, harness_healthz_ok(S.admin_port, 5000), "/healthz not 200 %s", when);
}

static void
require_rss_bounded(const char *when)
{
    long hwm = harness_vmhwm_kib(H.pid);

    fprintf(stderr, "check_hostile: daemon peak RSS %ld KiB %s\n", hwm, when);
    HARNESS_REQUIRE(&H, hwm > 0 && hwm < RSS_LIMIT_KIB,
                    "daemon peak RSS %ld KiB %s (limit %ld KiB)", hwm, when, RSS_LIMIT_KIB);
}

/* The daemon's descriptors now, plus the output file if it is not open yet
 * (the sink opens it at its first write): what it may hold when idle. */
static int
fds_baseline(void)
{
    return harness_fd_count(H.pid) + (harness_exists(S.out_path) ? 0 : 1);
}

static void
start(const char *const *env)
{
    harness_std_require_start(&H, &S, env);
}

struct fds_wait {
    int max;
    int last;
};

static bool
fds_at_most_cb(void *arg)
{
    struct fds_wait *f = arg;

    f->last = harness_fd_count(H.pid);
    return f->last >= 0 && f->last <= f->max;
}

/* Polls until the daemon holds at most max descriptors (a closing admin
 * or client connection may still hold one for a moment). */
static void
require_fds_at_most(int max, const char *when)
{
    struct fds_wait f = {.max = max, .last = -1};

    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, fds_at_most_cb, &f) == HARNESS_WAIT_OK,
                    "daemon holds %d descriptors %s (at most %d)", f.last, when, max);
}

static void
require_lines(uint64_t n, int timeout_ms)
{
    harness_require_lines(&H, S.out_path, n, timeout_ms);
}

static void
require_exactly_once(uint64_t n)
{
    const char *paths[1] = {S.out_path};

    harness_require_exactly_once(&H, paths, 1, n);
}

/* Sends n bytes of c on fd (blocking, in 64 KiB pieces).  0 / -1. */
static int
send_fill(int fd, char c, uint64_t n)
{
    static __thread char buf[65536];

    memset(buf, c, sizeof(buf));
    while (n > 0) {
        size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);

        if (harness_send_all(fd, buf, k) == -1) {
            return -1;
        }
        n -= k;
    }
    return 0;
}

static int
send_str(int fd, const char *s)
{
    return harness_send_all(fd, s, strlen(s));
}

/* --- a line with no newline at all ----------------------------------------------- */

START_TEST(test_hostile_no_newline)
{
    int a, b;

    start(NULL);
    a = harness_tcp_connect(S.port, 30000);
    b = harness_tcp_connect(S.port, 30000);
    ck_assert_msg(a >= 0 && b >= 0, "connect: %s", strerror(errno));
    /* 16 MiB and no newline: discarded as it arrives, never buffered. */
    ck_assert_msg(send_fill(a, 'x', 16 * MIB) == 0, "send: %s", strerror(errno));
    require_metric(M_OVERSIZE, 1, 10000);
    /* Another client is served meanwhile, and so is /healthz. */
    ck_assert_int_eq(harness_send_events(b, 0, 1000), 0);
    require_lines(1000, 10000);
    require_healthy("while a client sends a line with no end");
    require_rss_bounded("after 16 MiB without a newline");
    /* The newline ends the discarded line; the connection goes on. */
    ck_assert_int_eq(send_str(a, "\n"), 0);
    ck_assert_int_eq(harness_send_events(a, 1000, 1), 0);
    require_lines(1001, 10000);
    /* A last unterminated line at EOF that is too long is dropped too. */
    ck_assert_msg(send_fill(a, 'y', MIB) == 0, "send: %s", strerror(errno));
    close(a);
    close(b);
    require_metric(M_OVERSIZE, 2, 10000);
    harness_require_stop_ok(&H);
    require_exactly_once(1001);
}
END_TEST

/* --- a 1 GiB line -------------------------------------------------------------------- */

#define GIANT_BYTES (1024L * MIB)

struct giant {
    pthread_t thread;
    int fd;
    int err;
    volatile int done;
};

static void *
giant_main(void *arg)
{
    struct giant *g = arg;

    if (send_str(g->fd, "{\"giant\":\"") == -1 || send_fill(g->fd, 'g', GIANT_BYTES) == -1 ||
        send_str(g->fd, "\"}\n") == -1 || harness_send_events(g->fd, 0, 1) == -1) {
        g->err = errno;
    }
    __atomic_store_n(&g->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

START_TEST(test_hostile_giant_line)
{
    struct giant g = {0};
    int other, polls = 0;

    start(NULL);
    g.fd = harness_tcp_connect(S.port, 120000);
    other = harness_tcp_connect(S.port, 30000);
    ck_assert_msg(g.fd >= 0 && other >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(pthread_create(&g.thread, NULL, giant_main, &g), 0);
    /* While the gigabyte streams in, /healthz answers and other clients
     * are served (bounded: the sender finishes or its send timeout fails). */
    for (uint64_t seq = 1; !__atomic_load_n(&g.done, __ATOMIC_ACQUIRE) && seq < 100000; seq++) {
        ck_assert_int_eq(harness_send_events(other, seq, 1), 0);
        require_lines(seq, 10000);
        if (seq % 20 == 0) {
            require_healthy("while a 1 GiB line arrives");
            polls++;
        }
    }
    pthread_join(g.thread, NULL);
    HARNESS_REQUIRE(&H, g.err == 0, "sending the giant line: %s", strerror(g.err));
    close(g.fd);
    close(other);
    require_metric(M_OVERSIZE, 1, 10000);
    require_rss_bounded("after a 1 GiB line");
    require_healthy("after a 1 GiB line");
    harness_require_stop_ok(&H);
    /* The event right after the giant line is kept, so is every other. */
    {
        struct harness_seqs s;
        char msg[1024];
        uint64_t n = (uint64_t)harness_file_lines(S.out_path);

        ck_assert_int_eq(harness_seqs_init(&s, n), 0);
        ck_assert_int_eq(harness_seqs_add_file(&s, S.out_path, true), 0);
        HARNESS_REQUIRE(&H, harness_seqs_exactly_once(&s, msg, sizeof(msg)), "%s", msg);
        harness_seqs_fini(&s);
    }
    fprintf(stderr, "giant_line: /healthz polled %d times during the 1 GiB line\n", polls);
}
END_TEST

/* --- deep nesting, huge numbers, invalid UTF-8, NUL bytes ---------------------------- */

/* Appends s, times times, to the growing buffer. */
static void
buf_rep(struct harness_buf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++) {
        harness_buf_add(b, s, strlen(s));
    }
}

#define DEEP 100000

START_TEST(test_hostile_nasty_lines)
{
    /* Each entry is one line the json codec must refuse (counted invalid). */
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
#define B(x) {x, sizeof(x) - 1}
        B("{\"a\":\"\xc3\x28\"}"),         /* invalid 2-byte sequence */
        B("{\"a\":\"\xed\xa0\x80\"}"),     /* encoded surrogate */
        B("{\"a\":\"\xf4\x90\x80\x80\"}"), /* above U+10FFFF */
        B("{\"a\":\"\xc0\xaf\"}"),         /* overlong '/' */
        B("{\"a\":\"\xff\xfe\"}"),         /* never valid */
        B("{\"a\":\"x\0y\"}"),             /* raw NUL in a string */
        B("\0{\"a\":1}"),                  /* NUL first */
        B("{\"a\":\"\\u0000\"}"),          /* escaped NUL */
        B("{\"a\":\"\\ud800\"}"),          /* unpaired surrogate */
        B("{\"n\":1e999999999999999999}"), /* overflows a double */
        B("{\"n\":-9223372036854775809}"), /* overflows int64 */
#undef B
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);
    struct harness_buf in = {0}, want = {0};
    size_t ngood = 0, ninvalid = 0;
    char good[128];
    int fd, n;

    S.source_extra = "max_line_bytes = 4MiB\n";
    S.queue_extra = "chunk_size = 8MiB\ncapacity = 32MiB\n";
#define GOOD()                                                                                     \
    do {                                                                                           \
        n = snprintf(good, sizeof(good), "{\"seq\":%zu}\n", ngood++);                              \
        harness_buf_add(&in, good, (size_t)n);                                                             \
        harness_buf_add(&want, good, (size_t)n);                                                           \
    } while (0)
    GOOD();
    for (size_t i = 0; i < nbad; i++) {
        harness_buf_add(&in, bad[i].s, bad[i].n);
        harness_buf_add(&in, "\n", 1);
        ninvalid++;
        GOOD();
    }
    /* 100,000 nested arrays and objects: refused at depth 2048, no recursion. */
    harness_buf_add(&in, "{\"a\":", 5);
    buf_rep(&in, "[", DEEP);
    buf_rep(&in, "]", DEEP);
    harness_buf_add(&in, "}\n", 2);
    ninvalid++;
    GOOD();
    buf_rep(&in, "{\"a\":", DEEP);
    harness_buf_add(&in, "1", 1);
    buf_rep(&in, "}", DEEP);
    harness_buf_add(&in, "\n", 1);
    ninvalid++;
    GOOD();
    /* A 100,000-digit integer (out of range) and real (overflows). */
    harness_buf_add(&in, "{\"n\":", 5);
    buf_rep(&in, "9", DEEP);
    harness_buf_add(&in, "}\n", 2);
    ninvalid++;
    GOOD();
    harness_buf_add(&in, "{\"n\":", 5);
    buf_rep(&in, "9", DEEP);
    harness_buf_add(&in, ".5}\n", 4);
    ninvalid++;
    GOOD();
    /* Valid ones that look dangerous: kept byte for byte. */
    {
        struct harness_buf v = {0};

        harness_buf_add(&v, "{\"tiny\":0.", 10);
        buf_rep(&v, "0", DEEP);
        harness_buf_add(&v, "1e-999999999,\"deep\":", 20);
        buf_rep(&v, "[", 2000);
        buf_rep(&v, "]", 2000);
        harness_buf_add(&v, "}\n", 2);
        harness_buf_add(&in, v.p, v.len);
        harness_buf_add(&want, v.p, v.len);
        free(v.p);
        ngood++;
    }
    GOOD();

    start(NULL);
    fd = harness_tcp_connect(S.port, 30000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_msg(harness_send_all(fd, in.p, in.len) == 0, "send: %s", strerror(errno));
    close(fd);
    require_lines(ngood, 10000);
    require_metric(M_INVALID, (double)ninvalid, 10000);
    require_healthy("after hostile lines");
    harness_require_stop_ok(&H);
    {
        size_t gotlen = 0;
        char *got = harness_read_file(S.out_path, &gotlen);

        ck_assert(got != NULL);
        HARNESS_REQUIRE(&H, gotlen == want.len && memcmp(got, want.p, want.len) == 0,
                        "output is not exactly the %zu good lines (%zu bytes, want %zu)", ngood,
                        gotlen, want.len);
        free(got);
    }
    free(in.p);
    free(want.p);
#undef GOOD
}
END_TEST

/* --- slowloris: clients that send one byte at a time ------------------------------- */

#define SLOW_CONNS 100
#define SLOW_STEP_MS 40
#define FAST_EVENTS 20000

struct slow {
    pthread_t thread;
    int fds[SLOW_CONNS];
    int err;
    volatile int done;
};

/* Every SLOW_STEP_MS, one more byte on every connection: each sends its
 * standard event (seq FAST_EVENTS + i) over about 8 s. */
static void *
slow_main(void *arg)
{
    struct slow *s = arg;
    char line[SLOW_CONNS][HARNESS_EVENT_BYTES];

    for (int i = 0; i < SLOW_CONNS; i++) {
        harness_event_line(line[i], FAST_EVENTS + (uint64_t)i);
    }
    for (size_t k = 0; k < HARNESS_EVENT_BYTES && s->err == 0; k++) {
        for (int i = 0; i < SLOW_CONNS; i++) {
            if (harness_send_all(s->fds[i], &line[i][k], 1) == -1) {
                s->err = errno;
                break;
            }
        }
        harness_poll_step(SLOW_STEP_MS);
    }
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

START_TEST(test_hostile_slowloris)
{
    struct slow s = {0};
    int fast;

    start(NULL);
    require_metric(M_CONNS, 0, 10000); /* the listen probe is gone */
    for (int i = 0; i < SLOW_CONNS; i++) {
        s.fds[i] = harness_tcp_connect(S.port, 30000);
        ck_assert_msg(s.fds[i] >= 0, "connect: %s", strerror(errno));
    }
    fast = harness_tcp_connect(S.port, 30000);
    ck_assert_msg(fast >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(pthread_create(&s.thread, NULL, slow_main, &s), 0);
    /* The fast client is served in full while the slow ones dribble. */
    ck_assert_int_eq(harness_send_events(fast, 0, FAST_EVENTS), 0);
    require_lines(FAST_EVENTS, 60000);
    HARNESS_REQUIRE(&H, !__atomic_load_n(&s.done, __ATOMIC_ACQUIRE),
                    "the fast client's events were written only after the slow clients finished");
    require_metric(M_CONNS, SLOW_CONNS + 1, 10000);
    require_healthy("with slowloris clients connected");
    close(fast);
    pthread_join(s.thread, NULL);
    HARNESS_REQUIRE(&H, s.err == 0, "slow sender: %s", strerror(s.err));
    for (int i = 0; i < SLOW_CONNS; i++) {
        close(s.fds[i]);
    }
    require_lines(FAST_EVENTS + SLOW_CONNS, 10000);
    require_rss_bounded("with slowloris clients");
    harness_require_stop_ok(&H);
    require_exactly_once(FAST_EVENTS + SLOW_CONNS);
}
END_TEST

/* --- 10,000 simultaneous connections (the max_connections default) ------------------ */

#define MANY 10000

START_TEST(test_hostile_10k_connections)
{
    static int fds[MANY];
    int extra, base_fds, n;

    /* Room for 10,000 descriptors and some in this process and in the
     * daemon, which inherits the limit.  Above the hard limit this needs
     * root (CI runs as root). */
    if (harness_set_nofile(MANY + 2048) == -1) {
        fprintf(stderr, "10k_connections: cannot raise RLIMIT_NOFILE (%s): not root? skipped\n",
                strerror(errno));
        return;
    }
    start(NULL);
    require_metric(M_CONNS, 0, 10000);
    base_fds = fds_baseline();
    for (int i = 0; i < MANY; i++) {
        fds[i] = harness_tcp_connect(S.port, 30000);
        HARNESS_REQUIRE(&H, fds[i] >= 0, "connection %d: %s", i, strerror(errno));
    }
    require_metric(M_CONNS, MANY, 60000);
    require_healthy("with 10,000 connections open");
    /* One more is over max_connections (default 10000): closed, counted. */
    extra = harness_tcp_connect(S.port, 5000);
    ck_assert_int_ge(extra, 0);
    {
        char b;
        struct pollfd pfd = {.fd = extra, .events = POLLIN};
        HARNESS_REQUIRE(&H, poll(&pfd, 1, harness_ms(10000)) == 1 && recv(extra, &b, 1, 0) <= 0,
                        "connection 10,001 was not closed");
    }
    close(extra);
    require_metric(M_REJECTED, 1, 10000);
    /* Every connection still works: one event each. */
    for (int i = 0; i < MANY; i++) {
        ck_assert_int_eq(harness_send_events(fds[i], (uint64_t)i, 1), 0);
    }
    require_lines(MANY, 60000);
    n = harness_fd_count(H.pid);
    require_rss_bounded("with 10,000 connections");
    for (int i = 0; i < MANY; i++) {
        close(fds[i]);
    }
    require_metric(M_CONNS, 0, 60000);
    fprintf(stderr, "10k_connections: %d descriptors at the peak, %d before\n", n, base_fds);
    require_fds_at_most(base_fds, "after all 10,000 closed");
    harness_require_stop_ok(&H);
    require_exactly_once(MANY);
}
END_TEST

/* --- a connect/close storm beside a steady client -------------------------------- */

#define STORM_CYCLES 5000
#define STEADY_EVENTS 20000

struct storm {
    pthread_t thread;
    int err;
};

static void *
storm_main(void *arg)
{
    struct storm *st = arg;

    for (int i = 0; i < STORM_CYCLES && st->err == 0; i++) {
        int fd = harness_tcp_connect(S.port, 5000);

        if (fd == -1) {
            st->err = errno;
            break;
        }
        switch (i % 3) {
        case 0: /* connect, close */
            break;
        case 1: /* half a line, then FIN: the tail becomes an (invalid) event */
            (void)send_str(fd, "{\"half\":");
            break;
        case 2: { /* half a line, then RST */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            (void)send_str(fd, "{\"reset\":");
            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            break;
        }
        }
        close(fd);
    }
    return NULL;
}

START_TEST(test_hostile_connect_storm)
{
    struct storm st = {0};
    int steady, base_fds;

    start(NULL);
    require_metric(M_CONNS, 0, 10000);
    base_fds = fds_baseline();
    steady = harness_tcp_connect(S.port, 30000);
    ck_assert_msg(steady >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(pthread_create(&st.thread, NULL, storm_main, &st), 0);
    for (uint64_t seq = 0; seq < STEADY_EVENTS; seq += 100) {
        ck_assert_int_eq(harness_send_events(steady, seq, 100), 0);
    }
    require_lines(STEADY_EVENTS, 60000);
    require_healthy("during a connect/close storm");
    pthread_join(st.thread, NULL);
    HARNESS_REQUIRE(&H, st.err == 0, "storm connect: %s", strerror(st.err));
    close(steady);
    require_metric(M_CONNS, 0, 30000);
    /* The FIN-closed halves are events at EOF and are refused; an RST may
     * drop its half in the kernel before sluiced reads it. */
    {
        double inv = metric(M_INVALID);
        HARNESS_REQUIRE(&H, inv >= STORM_CYCLES / 3 && inv <= 2 * (STORM_CYCLES / 3) + 2,
                        "invalid=%.0f after %d half lines", inv, 2 * (STORM_CYCLES / 3));
    }
    require_fds_at_most(base_fds, "after the storm");
    require_rss_bounded("after a connect/close storm");
    harness_require_stop_ok(&H);
    require_exactly_once(STEADY_EVENTS);
}
END_TEST

/*
 * Regression (found by make asan on connect_storm): a producer whose lane
 * held an empty chunk (every line it framed was refused) released it when
 * it was freed at exit, and the release woke the other producers, already
 * freed: a heap use after free at every such stop.  Many connections with
 * one refused line each, then SIGTERM: the stop must be clean.
 */
START_TEST(test_hostile_refused_only_then_stop)
{
    for (int i = 0; i < 64; i++) {
        int fd;

        if (i == 0) {
            start(NULL);
        }
        fd = harness_tcp_connect(S.port, 5000);
        ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
        ck_assert_int_eq(send_str(fd, "not json\n"), 0);
        close(fd);
    }
    require_metric(M_INVALID, 64, 10000);
    harness_require_stop_ok(&H);
}
END_TEST

/* --- a UDP flood far over capacity ---------------------------------------------------- */

#define FLOOD_DATAGRAMS 200000

/* Datagrams the kernel dropped before any socket (loopback backlog full):
 * the sum of the second column of /proc/net/softnet_stat. */
static uint64_t
softnet_drops(void)
{
    FILE *f = fopen("/proc/net/softnet_stat", "re");
    unsigned long long total = 0;
    char line[512];

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long processed, dropped;
        if (sscanf(line, "%llx %llx", &processed, &dropped) == 2) {
            total += dropped;
        }
    }
    fclose(f);
    return total;
}

/*
 * The flood's backlog is read and written: every socket bound to the
 * source's port has an empty receive queue (/proc/net/udp's rx_queue) and
 * the daemon has written all it received.  Read once, "written ==
 * received" can hold while the daemon is still reading its socket (the
 * count moves on after): that made this test fail as "written 631, want
 * 312" under load.
 */
static bool
udp_settled_cb(void *arg)
{
    FILE *f = fopen("/proc/net/udp", "re");
    char line[512];
    bool queued = false, bound = false;
    (void)arg;
    if (f == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned addr, port, rx;
        /* "  12: 0100007F:1F90 00000000:0000 07 00000000:00000000 ..." */
        if (sscanf(line, " %*u: %x:%x %*x:%*x %*x %*x:%x", &addr, &port, &rx) == 3 &&
            (int)port == S.port) {
            bound = true;
            queued = queued || rx != 0;
        }
    }
    fclose(f);
    return bound && !queued && metric(M_WRITTEN) == metric(M_RECEIVED);
}

struct udp_account {
    double sent;
    double got;
};

static bool
udp_accounted_cb(void *arg)
{
    struct udp_account *a = arg;
    double r = -1, q = -1, k = -1, o = -1;
    char *body = NULL;

    if (harness_http_get(S.admin_port, "/metrics", 5000, &body) != 200) {
        free(body);
        return false;
    }
    harness_metric(body, M_RECEIVED, &r);
    harness_metric(body, M_QFULL, &q);
    harness_metric(body, M_KDROPS, &k);
    harness_metric(body, M_OVERSIZE, &o);
    free(body);
    a->got = r + q + k + o;
    return a->got >= a->sent;
}

START_TEST(test_hostile_udp_flood)
{
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    const char *env[] = {env_stall, NULL};
    struct udp_account acc;
    char line[HARNESS_EVENT_BYTES];
    uint64_t drops0, drops1;
    int fd;
    enum harness_wait w;

    S.type = "udp";
    S.source_extra = "max_line_bytes = 1KiB\nrecv_buffer = 256KiB\n";
    S.queue_extra = "capacity = 64KiB\nchunk_size = 8KiB\n";
    harness_path(&H, "stall", stall, sizeof(stall));
    snprintf(env_stall, sizeof(env_stall), "SLUICE_TEST_STALL_FILE=%s", stall);
    ck_assert_int_eq(harness_write_file(stall, "stalled\n"), 0);
    start(env);
    fd = harness_udp_connect(S.port);
    ck_assert_msg(fd >= 0, "udp: %s", strerror(errno));
    /* A stalled sink, a 64 KiB queue and 40 MB sent as fast as possible. */
    drops0 = softnet_drops();
    for (uint64_t i = 0; i < FLOOD_DATAGRAMS; i++) {
        size_t len = harness_event_line(line, i);
        if (harness_udp_send(fd, line, len - 1) == -1 && errno != ENOBUFS) {
            ck_abort_msg("udp send %" PRIu64 ": %s", i, strerror(errno));
        }
    }
    require_healthy("during a UDP flood");
    require_rss_bounded("during a UDP flood");
    /* Unstalled, everything received is written, and a paced sender after
     * the flood loses nothing. */
    ck_assert_int_eq(unlink(stall), 0);
    {
        struct harness_seqs seqs;
        w = harness_poll(&H, 30000, udp_settled_cb, NULL);
        HARNESS_REQUIRE(&H, w == HARNESS_WAIT_OK,
                        "the flood's backlog is not read and written after 30 s");
        for (uint64_t i = 0; i < 100; i++) {
            double before = metric(M_WRITTEN);
            size_t len = harness_event_line(line, FLOOD_DATAGRAMS + i);
            ck_assert_int_eq(harness_udp_send(fd, line, len), 0);
            harness_require_metric(&H, S.admin_port, M_WRITTEN, before + 1, true, 10000);
        }
        /* The paced ones by their sequence numbers: each in the file once. */
        ck_assert_int_eq(harness_seqs_init(&seqs, FLOOD_DATAGRAMS + 100), 0);
        ck_assert_int_eq(harness_seqs_add_file(&seqs, S.out_path, false), 0);
        HARNESS_REQUIRE(
            &H,
            harness_seqs_count_range(&seqs, FLOOD_DATAGRAMS, FLOOD_DATAGRAMS + 100) == 100 &&
                seqs.dups == 0 && seqs.bad == 0,
            "paced datagrams: %" PRIu64 " of 100 written; %" PRIu64 " dup, %" PRIu64 " bad: %s",
            harness_seqs_count_range(&seqs, FLOOD_DATAGRAMS, FLOOD_DATAGRAMS + 100), seqs.dups,
            seqs.bad, seqs.first_error);
        harness_seqs_fini(&seqs);
    }
    /* Every datagram is accounted for: received, dropped for want of queue
     * space, or dropped by the kernel at the socket (SO_RXQ_OVFL: the count
     * arrives with the next datagram read, hence after the paced ones) or
     * before it (softnet backlog, not the daemon's to see). */
    drops1 = softnet_drops();
    acc.sent = (double)(FLOOD_DATAGRAMS + 100 - (drops1 - drops0));
    w = harness_poll(&H, 30000, udp_accounted_cb, &acc);
    HARNESS_REQUIRE(&H, w == HARNESS_WAIT_OK,
                    "received + queue_full + kernel drops = %.0f of %.0f datagrams", acc.got,
                    acc.sent);
    HARNESS_REQUIRE(&H, acc.got <= FLOOD_DATAGRAMS + 100, "%.0f accounted for, %d sent", acc.got,
                    FLOOD_DATAGRAMS + 100);
    HARNESS_REQUIRE(&H, metric(M_QFULL) > 0 && metric(M_TRUNC) == 0,
                    "queue_full %.0f, truncated %.0f", metric(M_QFULL), metric(M_TRUNC));
    close(fd);
    require_healthy("after a UDP flood");
    harness_require_stop_ok(&H);
}
END_TEST

/* --- datagrams larger than any line ------------------------------------------------ */

START_TEST(test_hostile_udp_big_datagrams)
{
    static char dgram[65507]; /* the largest UDP payload over IPv4 */
    uint64_t seq = 0;
    size_t len;
    int fd;

    S.type = "udp";
    S.source_extra = "max_line_bytes = 1KiB\n";
    start(NULL);
    fd = harness_udp_connect(S.port);
    ck_assert_msg(fd >= 0, "udp: %s", strerror(errno));
    /* One line of 64 KiB: over max_line_bytes, dropped, counted. */
    memset(dgram, 'z', sizeof(dgram));
    ck_assert_int_eq(harness_udp_send(fd, dgram, sizeof(dgram)), 0);
    require_metric(M_OVERSIZE, 1, 10000);
    /* The largest datagram full of events: every whole one is kept (the
     * last, cut by the datagram's end, is not JSON and is refused). */
    for (len = 0; len + HARNESS_EVENT_BYTES <= sizeof(dgram); len += HARNESS_EVENT_BYTES) {
        harness_event_line(dgram + len, seq++);
    }
    memset(dgram + len, 'w', sizeof(dgram) - len);
    ck_assert_int_eq(harness_udp_send(fd, dgram, sizeof(dgram)), 0);
    require_lines(seq, 10000);
    require_metric(M_INVALID, 1, 10000);
    require_metric(M_TRUNC, 0, 1000);
    require_healthy("after 64 KiB datagrams");
    close(fd);
    harness_require_stop_ok(&H);
    require_exactly_once(seq);
}
END_TEST

/* --- the suite ------------------------------------------------------------------------ */

static TCase *
hostile_tcase(Suite *s, const char *name, double timeout)
{
    return harness_tcase(s, name, timeout, setup, teardown);
}

int
main(void)
{
    Suite *s = suite_create("hostile");
    SRunner *sr;
    int failed;

    tcase_add_test(hostile_tcase(s, "no_newline", 60), test_hostile_no_newline);
    tcase_add_test(hostile_tcase(s, "giant_line", 240), test_hostile_giant_line);
    tcase_add_test(hostile_tcase(s, "nasty_lines", 60), test_hostile_nasty_lines);
    tcase_add_test(hostile_tcase(s, "slowloris", 120), test_hostile_slowloris);
    tcase_add_test(hostile_tcase(s, "10k_connections", 240), test_hostile_10k_connections);
    tcase_add_test(hostile_tcase(s, "connect_storm", 120), test_hostile_connect_storm);
    tcase_add_test(hostile_tcase(s, "refused_only_stop", 60), test_hostile_refused_only_then_stop);
    tcase_add_test(hostile_tcase(s, "udp_flood", 120), test_hostile_udp_flood);
    tcase_add_test(hostile_tcase(s, "udp_big_datagrams", 60), test_hostile_udp_big_datagrams);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
