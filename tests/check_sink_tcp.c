/*
 * Unit tests for the tcp forward sink, driven the way the writer drives it:
 * the sink's events run on a test-owned event_base, write() is called again
 * from the reported byte, and after SL_SINK_WAIT only once the sink's wake
 * callback ran.  Peers are sockets of the test on 127.0.0.1.
 *
 * Behaviours: delivery byte for byte; holding while no target is up and
 * delivering once one comes (with health failing, then ok); failover to a
 * second target and back; a peer that stops reading (accepts, reads
 * nothing for several write_timeouts, its kernel acknowledging) held, not
 * dropped or failed over, and every line delivered to it once it reads; the
 * rule that tells a gone peer from a slow one, fed with TCP_INFO samples (a
 * peer that stops acknowledging cannot be made on loopback without
 * privileges); a line torn by a reset connection sent whole on the next
 * one; idle close and reconnection on demand; round robin; reconnection
 * backoff.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/sink.h"

#include "daemon/registry.h"
#include "sink/sink_tcp.h"

#define LINE 100
#define MAXT 4

struct tfx {
    struct sl_sink_config cfg;
    struct sl_sink_tcp_config tcfg;
    struct sl_sink_target targets[MAXT];
    char names[MAXT][32];
    struct sl_sink_stats stats;
    struct sl_sink sink;
    struct event_base *base;
    int woken;
    int port[MAXT];
    int lfd[MAXT]; /* listeners, -1 when down */
};

static struct tfx F;

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Deadlines scale like the integration harness's (sanitizer builds). */
static uint64_t
scaled(uint64_t ms)
{
    const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
    double m = s != NULL ? strtod(s, NULL) : 1;
    return (uint64_t)((double)ms * (m >= 1 ? m : 1));
}

static void
wake_cb(void *arg)
{
    ((struct tfx *)arg)->woken++;
}

/* A listening socket on 127.0.0.1:port (0: any); its port in *port. */
static int
listen_on(int *port, int rcvbuf)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    ck_assert_int_ge(fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rcvbuf > 0) {
        /* Inherited by accepted sockets: a small window fills quickly. */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    ck_assert_msg(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "bind: %s", strerror(errno));
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* A port nobody listens on (connections are refused). */
static int
dead_port(void)
{
    int port = 0, fd = listen_on(&port, 0);
    close(fd);
    return port;
}

static void
fx_setup(int ntargets, enum sl_balance balance)
{
    memset(&F, 0, sizeof(F));
    F.cfg.name = "fwd";
    F.cfg.type = &sl_sink_tcp_conf;
    F.cfg.type_conf = &F.tcfg;
    F.tcfg.balance = balance;
    F.tcfg.retry_initial_ms = 20;
    F.tcfg.retry_max_ms = 100;
    F.tcfg.connect_timeout_ms = 1000;
    F.tcfg.write_timeout_ms = 5000;
    F.tcfg.keepalive_ms = 30000;
    F.tcfg.idle_timeout_ms = 0;
    F.cfg.batch_max_bytes = 1 << 20;
    F.tcfg.targets = F.targets;
    F.tcfg.ntargets = (size_t)ntargets;
    for (int i = 0; i < MAXT; i++) {
        F.lfd[i] = -1;
    }
    F.base = event_base_new();
    ck_assert_ptr_nonnull(F.base);
    F.sink.cfg = &F.cfg;
    F.sink.stats = &F.stats;
    F.sink.ops = sl_sink_tcp_conf.impl.sink;
    ck_assert_ptr_nonnull(F.sink.ops);
}

/* Target i at 127.0.0.1:port. */
static void
fx_target(int i, int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&F.targets[i].addr;

    F.port[i] = port;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    F.targets[i].addrlen = sizeof(*sin);
    snprintf(F.names[i], sizeof(F.names[i]), "127.0.0.1:%d", port);
    F.targets[i].text = F.names[i];
}

static void
fx_start(void)
{
    ck_assert_int_eq(F.sink.ops->open(&F.sink), 0);
    struct sl_sink_link link = {.base = F.base, .wake = wake_cb, .arg = &F};
    ck_assert_int_eq(F.sink.ops->attach(&F.sink, &link), 0);
}

static void
fx_teardown(void)
{
    if (F.base == NULL) {
        return;
    }
    F.sink.ops->detach(&F.sink);
    F.sink.ops->close(&F.sink);
    for (int i = 0; i < MAXT; i++) {
        if (F.lfd[i] >= 0) {
            close(F.lfd[i]);
        }
    }
    event_base_free(F.base);
    F.base = NULL;
}

/* Runs the sink's events for a moment. */
static void
spin(void)
{
    event_base_loop(F.base, EVLOOP_NONBLOCK);
    poll(NULL, 0, 1);
}

/* Accepts a connection on listener i if one is waiting; -1 otherwise. */
static int
try_accept(int i)
{
    return accept4(F.lfd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/* Event line n: LINE bytes, a JSON object ending in '\n'. */
static void
line_at(char *buf, uint64_t n)
{
    int k = snprintf(buf, LINE + 1, "{\"n\":%llu,\"pad\":\"", (unsigned long long)n);
    memset(buf + k, 'a' + (int)(n % 26), (size_t)(LINE - k - 3));
    memcpy(buf + LINE - 3, "\"}\n", 3);
}

/* A peer's side of one connection: everything read from it. */
struct peer {
    int fd;
    char *buf;
    size_t len, cap;
    bool eof;
};

static void
peer_init(struct peer *p, int fd)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->cap = 1 << 24;
    p->buf = malloc(p->cap);
    ck_assert_ptr_nonnull(p->buf);
}

/* Reads what is there (non-blocking).  Returns bytes read. */
static size_t
peer_read(struct peer *p)
{
    size_t got = 0;
    while (p->fd >= 0 && !p->eof && p->len < p->cap) {
        ssize_t r = read(p->fd, p->buf + p->len, p->cap - p->len);
        if (r > 0) {
            p->len += (size_t)r;
            got += (size_t)r;
        } else if (r == 0) {
            p->eof = true;
        } else {
            if (errno != EAGAIN) {
                p->eof = true;
            }
            break;
        }
    }
    return got;
}

static void
peer_fini(struct peer *p)
{
    if (p->fd >= 0) {
        close(p->fd);
    }
    free(p->buf);
}

/*
 * Writes lines [from, to) in batches of per lines, as the writer does: the
 * sink's events run while it waits; peer_cb (may be NULL) runs every spin.
 * Fails if a batch cannot be written within timeout_ms.
 */
static void
send_lines(uint64_t from, uint64_t to, uint64_t per, uint64_t timeout_ms, void (*peer_cb)(void))
{
    static char data[LINE * 2000];
    uint64_t deadline = now_ms() + scaled(timeout_ms);

    ck_assert_uint_le(per, 2000);
    for (uint64_t b = from; b < to; b += per) {
        uint64_t n = to - b < per ? to - b : per;
        size_t len = (size_t)n * LINE, off = 0;
        for (uint64_t i = 0; i < n; i++) {
            line_at(data + i * LINE, b + i);
        }
        while (off < len) {
            /* Two iovecs, split mid-line. */
            size_t rest = len - off, a = rest / 2;
            struct iovec iov[2] = {{data + off, a}, {data + off + a, rest - a}};
            size_t written = 0;
            F.woken = 0;
            enum sl_sink_result r = F.sink.ops->write(&F.sink, iov, a > 0 ? 2 : 1, &written);
            if (a == 0) {
                ck_abort_msg("empty iovec");
            }
            ck_assert_msg(written % LINE == 0, "%zu bytes reported: not whole lines", written);
            off += written;
            ck_assert_int_ne(r, SL_SINK_RETRY);
            ck_assert(r == SL_SINK_OK || r == SL_SINK_WAIT);
            while (r == SL_SINK_WAIT && F.woken == 0) {
                ck_assert_msg(now_ms() < deadline, "no progress at line %llu",
                              (unsigned long long)(b + off / LINE));
                spin();
                if (peer_cb != NULL) {
                    peer_cb();
                }
            }
        }
    }
}

/*
 * Checks that the peers' streams, concatenated in order, are exactly the
 * lines [0, n), each whole: a stream may end in a torn head of a line that
 * the next stream starts again (a broken connection).
 */
static void
check_streams(struct peer *ps, int np, uint64_t n)
{
    char want[LINE + 1];
    uint64_t next = 0;

    for (int k = 0; k < np; k++) {
        size_t whole = ps[k].len - ps[k].len % LINE;
        for (size_t off = 0; off < whole; off += LINE) {
            line_at(want, next);
            ck_assert_msg(memcmp(ps[k].buf + off, want, LINE) == 0,
                          "stream %d at byte %zu: not line %llu", k, off, (unsigned long long)next);
            next++;
        }
        if (whole < ps[k].len) {
            line_at(want, next); /* a torn head of the next line, resent whole */
            ck_assert(memcmp(ps[k].buf + whole, want, ps[k].len - whole) == 0);
        }
    }
    ck_assert_msg(next == n, "got %llu whole lines, want %llu", (unsigned long long)next,
                  (unsigned long long)n);
}

/* Waits until pred() holds, spinning the sink's events. */
static void
spin_until(bool (*pred)(void), uint64_t timeout_ms, const char *what)
{
    uint64_t deadline = now_ms() + scaled(timeout_ms);
    while (!pred()) {
        ck_assert_msg(now_ms() < deadline, "timeout: %s", what);
        spin();
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static struct peer P[4];
static int np;

static void
accept_all(void)
{
    for (int i = 0; i < MAXT; i++) {
        int fd;
        while (F.lfd[i] >= 0 && np < 4 && (fd = try_accept(i)) >= 0) {
            peer_init(&P[np++], fd);
        }
    }
    for (int k = 0; k < np; k++) {
        peer_read(&P[k]);
    }
}

static bool
sink_connected(void)
{
    return sl_counter_get(&F.stats.connects) > 0;
}

static bool
sink_up(void)
{
    struct sl_sink_health h;
    sl_sink_health(&F.sink, &h);
    accept_all();
    return h.ok && sl_counter_get(&F.stats.connects) > 0;
}

START_TEST(test_sink_tcp_delivers)
{
    fx_setup(1, SL_BALANCE_FAILOVER);
    fx_target(0, 0);
    F.lfd[0] = listen_on(&F.port[0], 0);
    fx_target(0, F.port[0]);
    np = 0;
    fx_start();
    send_lines(0, 20000, 700, 10000, accept_all);
    uint64_t deadline = now_ms() + scaled(10000);
    while (np < 1 || P[0].len < 20000 * LINE) {
        ck_assert(now_ms() < deadline);
        spin();
        accept_all();
    }
    check_streams(P, 1, 20000);
    ck_assert_uint_eq(sl_counter_get(&F.stats.connects), 1);
    peer_fini(&P[0]);
    fx_teardown();
}
END_TEST

START_TEST(test_sink_tcp_holds_until_a_target_comes)
{
    struct sl_sink_health h;
    char data[LINE * 10];
    size_t written = 0;

    fx_setup(1, SL_BALANCE_FAILOVER);
    fx_target(0, dead_port());
    np = 0;
    fx_start();
    for (int i = 0; i < 10; i++) {
        line_at(data + i * LINE, (uint64_t)i);
    }
    struct iovec iov = {data, sizeof(data)};
    /* Nothing to connect to: WAIT, the batch stays with the writer. */
    for (int i = 0; i < 100; i++) {
        F.woken = 0;
        ck_assert_int_eq(F.sink.ops->write(&F.sink, &iov, 1, &written), SL_SINK_WAIT);
        ck_assert_uint_eq(written, 0);
        spin();
    }
    sl_sink_health(&F.sink, &h);
    ck_assert(!h.ok);
    ck_assert_msg(strstr(h.reason, "connect 127.0.0.1:") != NULL &&
                      strstr(h.reason, "refused") != NULL,
                  "reason: %s", h.reason);
    ck_assert_int_gt(h.since_ms, 0);
    /* The target comes up on its port: reconnection (backoff <= 100 ms). */
    F.lfd[0] = listen_on(&F.port[0], 0);
    spin_until(sink_up, 5000, "reconnection");
    send_lines(0, 500, 50, 10000, accept_all);
    uint64_t deadline = now_ms() + scaled(5000);
    while (np < 1 || P[0].len < 500 * LINE) {
        ck_assert(now_ms() < deadline);
        spin();
        accept_all();
    }
    check_streams(P, 1, 500);
    sl_sink_health(&F.sink, &h);
    ck_assert(h.ok);
    ck_assert_uint_ge(h.failures, 1);
    peer_fini(&P[0]);
    fx_teardown();
}
END_TEST

static size_t want_total;

/* All peers together have read want_total bytes. */
static bool
got_total(void)
{
    size_t total = 0;
    accept_all();
    for (int k = 0; k < np; k++) {
        total += P[k].len;
    }
    return total >= want_total;
}

START_TEST(test_sink_tcp_failover_and_back)
{
    fx_setup(2, SL_BALANCE_FAILOVER);
    fx_target(0, dead_port());
    F.lfd[1] = listen_on(&F.port[1], 0);
    fx_target(1, F.port[1]);
    np = 0;
    fx_start();
    /* The first target refuses: everything goes to the second. */
    send_lines(0, 500, 50, 10000, accept_all);
    want_total = 500 * LINE;
    spin_until(got_total, 5000, "500 lines at the second target");
    ck_assert_int_eq(np, 1);
    /* The second goes away (listener and connection); the first comes up. */
    close(F.lfd[1]);
    F.lfd[1] = -1;
    close(P[0].fd);
    P[0].fd = -1;
    F.lfd[0] = listen_on(&F.port[0], 0);
    send_lines(500, 1000, 50, 10000, accept_all);
    want_total = 1000 * LINE;
    spin_until(got_total, 5000, "the rest at the first target");
    ck_assert_int_eq(np, 2);
    check_streams(P, 2, 1000);
    ck_assert_uint_ge(sl_counter_get(&F.stats.disconnects), 1);
    peer_fini(&P[0]);
    peer_fini(&P[1]);
    fx_teardown();
}
END_TEST

/* The slow peer accepts and reads nothing until slow_from; only then is
 * it read.  The other target (listener 1) is served as a good peer. */
static int slow_fd = -1;
static struct peer slow;
static uint64_t slow_from;
static bool slow_stalled;             /* the sink waited on it past slow_from */
static uint64_t slow_disconnects = 1; /* disconnects counted at slow_from */

static void
serve_slow(void)
{
    int fd;
    if (slow_fd < 0 && (fd = try_accept(0)) >= 0) {
        slow_fd = fd;
        peer_init(&slow, fd);
    }
    while (F.lfd[1] >= 0 && np < 4 && (fd = try_accept(1)) >= 0) {
        peer_init(&P[np++], fd);
    }
    for (int k = 0; k < np; k++) {
        peer_read(&P[k]);
    }
    if (now_ms() >= slow_from) {
        if (!slow_stalled) {
            /* Called from send_lines' wait: the sink is still blocked. */
            slow_stalled = true;
            slow_disconnects = sl_counter_get(&F.stats.disconnects);
        }
        peer_read(&slow);
    }
}

static bool
slow_has_all(void)
{
    serve_slow();
    return slow.len >= want_total;
}

/*
 * A peer that stops reading is alive: its kernel acknowledges what it
 * takes and answers the window probes.  It is held for five times
 * write_timeout (and would be for ever): no disconnect, no failover to the
 * second target, health ok; once it reads, it gets every line.
 */
START_TEST(test_sink_tcp_stalled_reader_held)
{
    struct sl_sink_health h;
    const uint64_t n = 60000; /* 6 MB: more than both socket buffers of the peer */

    fx_setup(2, SL_BALANCE_FAILOVER);
    F.tcfg.write_timeout_ms = 300;
    F.lfd[0] = listen_on(&F.port[0], 4096);
    fx_target(0, F.port[0]);
    F.lfd[1] = listen_on(&F.port[1], 0);
    fx_target(1, F.port[1]);
    np = 0;
    slow_fd = -1;
    slow_stalled = false;
    slow_from = now_ms() + 5 * F.tcfg.write_timeout_ms;
    fx_start();
    send_lines(0, n, 1000, 30000, serve_slow);
    ck_assert_msg(slow_stalled, "the sink was never blocked by the slow peer");
    ck_assert_uint_eq(slow_disconnects, 0);
    want_total = n * LINE;
    spin_until(slow_has_all, 20000, "every line at the slow peer");
    ck_assert_uint_eq(sl_counter_get(&F.stats.disconnects), 0);
    ck_assert_uint_eq(sl_counter_get(&F.stats.connects), 1);
    ck_assert_int_eq(np, 0); /* the second target was never used */
    sl_sink_health(&F.sink, &h);
    ck_assert(h.ok);
    ck_assert_uint_eq(h.failures, 0);
    check_streams(&slow, 1, n);
    peer_fini(&slow);
    fx_teardown();
}
END_TEST

/*
 * The gone-or-slow rule, sample by sample (times in ms as TCP_INFO gives
 * them; silence is write_timeout, or the time since the first sample when
 * the caller confirms).
 */
START_TEST(test_sink_tcp_peer_gone_rule)
{
    static const struct {
        const char *what;
        uint32_t last_ack_recv, last_data_sent, unacked;
        uint8_t probes;
        uint64_t silence;
        bool gone;
    } cases[] = {
        /* A live peer with its window closed: the kernel probes at growing
         * intervals and every answer resets the probe count. */
        {"window closed, probes answered, long gaps", 90000, 95000, 0, 0, 1000, false},
        {"window closed, a probe just sent", 90000, 95000, 0, 1, 1000, false},
        /* The peer stopped answering probes. */
        {"two window probes unanswered", 1500, 5000, 0, 2, 1000, true},
        {"many window probes unanswered", 200000, 300000, 0, 9, 30000, true},
        {"two probes, but an ACK came recently", 900, 5000, 0, 2, 1000, false},
        /* Data in flight. */
        {"data sent after the last ACK, none since", 1500, 200, 3, 0, 1000, true},
        {"data outstanding, but ACKs keep coming", 5, 0, 40, 0, 1000, false},
        {"retransmission answered by a duplicate ACK", 1990, 2000, 3, 0, 1000, false},
        {"segment and its ACK in the same jiffy", 2000, 2000, 3, 0, 1000, false},
        {"new data after an idle spell, ACK in flight", 60000, 0, 1, 0, 1000, true},
        /* The confirming sample: silence is raised to the time since the
         * first sample, so an ACK that came in between clears the peer. */
        {"confirmation: the ACK that was in flight came", 150, 210, 1, 0, 1000, false},
        {"confirmation: still nothing", 60210, 210, 1, 0, 1000, true},
        {"confirmation after a long gap, ACK in between", 1200, 1300, 1, 0, 1500, false},
        {"confirmation after a long gap, nothing", 2700, 1300, 1, 0, 1500, true},
        /* Nothing asked: idle, or everything acknowledged. */
        {"idle", 600000, 600000, 0, 0, 1000, false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tcp_info ti;
        memset(&ti, 0, sizeof(ti));
        ti.tcpi_state = TCP_ESTABLISHED;
        ti.tcpi_last_ack_recv = cases[i].last_ack_recv;
        ti.tcpi_last_data_sent = cases[i].last_data_sent;
        ti.tcpi_unacked = cases[i].unacked;
        ti.tcpi_probes = cases[i].probes;
        ck_assert_msg(sl_sink_tcp_peer_gone(&ti, cases[i].silence) == cases[i].gone, "%s: want %s",
                      cases[i].what, cases[i].gone ? "gone" : "alive");
    }
}
END_TEST

/*
 * A connection reset while a line is half sent: the next connection starts
 * with that line, whole.  The line is 6 MB, more than the socket buffers
 * can take, so the first connection always holds a torn head of it.
 */
START_TEST(test_sink_tcp_torn_line_resent_whole)
{
    const size_t big = 6u << 20, tail = 100 * LINE, total = big + tail;
    char *data = malloc(total);
    struct iovec iov;
    size_t written = 0, off = 0;
    int fd;

    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < big - 1; i++) {
        data[i] = (char)('a' + i % 26);
    }
    data[big - 1] = '\n';
    for (uint64_t i = 0; i < 100; i++) {
        line_at(data + big + i * LINE, i);
    }
    fx_setup(1, SL_BALANCE_FAILOVER);
    F.lfd[0] = listen_on(&F.port[0], 4096);
    fx_target(0, F.port[0]);
    fx_start();
    spin_until(sink_connected, 5000, "connection");
    /* The kernel takes a head of the big line: nothing whole yet. */
    iov.iov_base = data;
    iov.iov_len = total;
    ck_assert_int_eq(F.sink.ops->write(&F.sink, &iov, 1, &written), SL_SINK_WAIT);
    ck_assert_uint_eq(written, 0);
    uint64_t deadline = now_ms() + scaled(5000);
    while ((fd = try_accept(0)) < 0) {
        ck_assert(now_ms() < deadline);
        spin();
    }
    /* Reset it: close with unread data. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    close(F.lfd[0]);
    F.lfd[0] = listen_on(&F.port[0], 0); /* a fresh peer that reads */
    /* The writer calls again with the same bytes (none was reported). */
    struct peer p = {.fd = -1};
    deadline = now_ms() + scaled(20000);
    while (off < total || p.len < total) {
        ck_assert_msg(now_ms() < deadline, "sent %zu, received %zu of %zu", off, p.len, total);
        if (p.fd < 0 && (fd = try_accept(0)) >= 0) {
            peer_init(&p, fd);
        }
        if (off < total) {
            iov.iov_base = data + off;
            iov.iov_len = total - off;
            F.woken = 0;
            ck_assert_int_ne(F.sink.ops->write(&F.sink, &iov, 1, &written), SL_SINK_RETRY);
            off += written;
        }
        if (p.fd >= 0) {
            peer_read(&p);
        }
        spin();
    }
    /* The new connection carries the big line whole, then the rest. */
    ck_assert_uint_eq(p.len, total);
    ck_assert(memcmp(p.buf, data, total) == 0);
    ck_assert_uint_eq(sl_counter_get(&F.stats.connects), 2);
    peer_fini(&p);
    free(data);
    fx_teardown();
}
END_TEST

static bool
peer0_eof(void)
{
    accept_all();
    return np > 0 && P[0].eof;
}

START_TEST(test_sink_tcp_idle_close_and_reconnect)
{
    fx_setup(1, SL_BALANCE_FAILOVER);
    F.tcfg.idle_timeout_ms = 100;
    F.lfd[0] = listen_on(&F.port[0], 0);
    fx_target(0, F.port[0]);
    np = 0;
    fx_start();
    send_lines(0, 10, 10, 5000, accept_all);
    /* Idle: the sink closes its connection (the peer sees EOF after the data). */
    spin_until(peer0_eof, 5000, "idle close");
    ck_assert_uint_eq(P[0].len, 10 * LINE);
    struct sl_sink_health h;
    sl_sink_health(&F.sink, &h);
    ck_assert(h.ok); /* an idle close is no failure */
    ck_assert_uint_eq(sl_counter_get(&F.stats.disconnects), 0);
    /* Data again: a new connection. */
    send_lines(10, 20, 10, 5000, accept_all);
    want_total = 20 * LINE;
    spin_until(got_total, 5000, "data on the new connection");
    ck_assert_int_eq(np, 2);
    check_streams(P, 2, 20);
    peer_fini(&P[0]);
    peer_fini(&P[1]);
    fx_teardown();
}
END_TEST

START_TEST(test_sink_tcp_round_robin)
{
    fx_setup(2, SL_BALANCE_ROUND_ROBIN);
    for (int i = 0; i < 2; i++) {
        F.lfd[i] = listen_on(&F.port[i], 0);
        fx_target(i, F.port[i]);
    }
    np = 0;
    fx_start();
    spin_until(sink_up, 5000, "connections");
    want_total = 0;
    /* Wait for both connections before sending. */
    uint64_t deadline = now_ms() + scaled(5000);
    while (sl_counter_get(&F.stats.connects) < 2) {
        ck_assert(now_ms() < deadline);
        spin();
        accept_all();
    }
    send_lines(0, 1000, 100, 10000, accept_all); /* 10 batches */
    want_total = 1000 * LINE;
    spin_until(got_total, 5000, "all lines");
    ck_assert_int_eq(np, 2);
    /* Alternating batches of 100 lines: each peer has 5 of them. */
    ck_assert_uint_eq(P[0].len, 500 * LINE);
    ck_assert_uint_eq(P[1].len, 500 * LINE);
    for (int k = 0; k < 2; k++) {
        for (size_t b = 0; b < 5; b++) {
            int n0;
            ck_assert_int_eq(sscanf(P[k].buf + b * 100 * LINE, "{\"n\":%d", &n0), 1);
            ck_assert_int_eq(n0 % 100, 0);
        }
    }
    peer_fini(&P[0]);
    peer_fini(&P[1]);
    fx_teardown();
}
END_TEST

/* A peer that accepts and closes at once: attempts must back off. */
START_TEST(test_sink_tcp_backoff)
{
    uint64_t times[200];
    int n = 0;

    fx_setup(1, SL_BALANCE_FAILOVER);
    F.tcfg.retry_initial_ms = 20;
    F.tcfg.retry_max_ms = 160;
    F.lfd[0] = listen_on(&F.port[0], 0);
    fx_target(0, F.port[0]);
    fx_start();
    uint64_t end = now_ms() + 1500;
    while (now_ms() < end && n < 200) {
        int fd = try_accept(0);
        if (fd >= 0) {
            times[n++] = now_ms();
            close(fd);
        }
        spin();
    }
    /* 20, 40, 80, 160, 160, ... ms with jitter in [d/2, d]: at most ~1500/80
     * + 4 attempts; without backoff there would be hundreds. */
    ck_assert_msg(n >= 5 && n <= 25, "%d attempts in 1.5 s", n);
    for (int i = 5; i < n; i++) {
        ck_assert_msg(times[i] - times[i - 1] >= 70, "attempt %d after %llu ms", i,
                      (unsigned long long)(times[i] - times[i - 1]));
    }
    fx_teardown();
}
END_TEST

static Suite *
sink_tcp_suite(void)
{
    Suite *s = suite_create("sink_tcp");
    TCase *tc = tcase_create("tcp");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sink_tcp_delivers);
    tcase_add_test(tc, test_sink_tcp_holds_until_a_target_comes);
    tcase_add_test(tc, test_sink_tcp_failover_and_back);
    tcase_add_test(tc, test_sink_tcp_stalled_reader_held);
    tcase_add_test(tc, test_sink_tcp_peer_gone_rule);
    tcase_add_test(tc, test_sink_tcp_torn_line_resent_whole);
    tcase_add_test(tc, test_sink_tcp_idle_close_and_reconnect);
    tcase_add_test(tc, test_sink_tcp_round_robin);
    tcase_add_test(tc, test_sink_tcp_backoff);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    sl_log_init(getenv("SINK_TCP_DEBUG") != NULL ? LOG_DEBUG : LOG_ERR);
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(sink_tcp_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
