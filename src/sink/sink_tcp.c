/*
 * sink_tcp — forwards the NDJSON stream to one or more TCP targets
 * (writer thread, inside the writer's event_base).
 *
 * DESIGN
 * Every target has a connection slot with a small state machine:
 *
 *   DOWN ──connect()──▶ CONNECTING ──ok──▶ UP ──error, peer close, ──▶ BACKOFF ──timer──▶ ...
 *     ▲                     │ refused/timeout        peer gone              (or the next target)
 *     └── idle_timeout ─────┴───────────────────────────────────────────────┘
 *
 * Sockets are non-blocking and watched with events on the writer's base
 * (attach): EV_WRITE for connect completion and for room in a full send
 * buffer, EV_READ for the peer closing or resetting (a sluiced peer never
 * sends anything), one timer for backoff, connect timeout, the liveness
 * check and idle close.  write() never blocks: with no usable connection or
 * a full socket it answers SL_SINK_WAIT, the writer keeps the batch (its
 * queue fills, TCP sources pause: nothing is dropped because a peer is down
 * or slow), and the sink wakes the writer when a connection comes up or has
 * room.
 *
 * balance = failover: one connection at a time, to the first target in
 * list order that works; when it fails the next target is tried at once,
 * and after a round in which every target failed, the first again after a
 * backoff (retry_initial doubling up to retry_max, each delay drawn in
 * [d/2, d] so that many edges do not reconnect in step).  round_robin: a
 * connection to every target, each with its own backoff, and each batch to
 * the next connection that is up.  A connection that stayed up for
 * BACKOFF_RESET_MS resets the backoff.
 *
 * Gone or only slow.  A receiver that stops reading (its own disk is full
 * and its sources pause, or it is stopped) closes its TCP window; its
 * kernel still acknowledges every zero-window probe.  Such a peer is held
 * for as long as it takes: the events stay queued and nothing is closed.
 * Only a peer that stopped acknowledging is gone.  The kernel cannot tell
 * the two apart for us: with TCP_USER_TIMEOUT set, Linux aborts a
 * connection whose window stayed closed that long even though every probe
 * was answered (the probe clock, icsk_probes_tstamp, is reset only by an
 * opening window), and the abort purges the send buffer.  So no user
 * timeout is set, and while a connection holds unacknowledged bytes the
 * timer reads TCP_INFO every quarter of write_timeout (10 ms .. 1 s) and
 * applies sl_sink_tcp_peer_gone() (the rule and its races are explained
 * there).  A verdict of "gone" is acted on only when a second sample,
 * taken at least one retransmission timeout later, still says so and shows
 * that no ACK arrived in between: an ACK in flight at the first sample has
 * landed by then.  A gone peer's connection is closed (gracefully: it
 * still gets what was queued if it comes back) and the next target is
 * tried.  The liveness check also keeps an idle close from orphaning bytes
 * a stalled peer has not acknowledged: only a connection with everything
 * acknowledged counts as idle.
 *
 * Whole lines (sink.h): when a send takes part of a line, the rest of that
 * line goes to the same connection; if that connection fails first, the
 * line is sent whole on the next one (the receiver sees the torn head as an
 * incomplete last line at EOF, which a json source rejects and counts).
 *
 * TLS (tls = on): after the TCP connect the slot is HANDSHAKE until the
 * client handshake is done (tls_handshake_timeout; the server verified
 * against tls_ca_file and tls_server_name, or the target's host); a refused
 * handshake is counted per reason (util/tls.h), logged and handled as a
 * failed connect (next target, backoff: nothing is sent, nothing lost).
 * Once up, write() goes through SSL_write, one record at a time from the
 * batch; when the socket is full OpenSSL keeps the record it started and
 * the next write() starts at the same byte (the batch is kept by the
 * writer), as SSL_write's retry rule wants.  Whatever the peer sends is
 * read through SSL_read and dropped.  The liveness rule is unchanged: it
 * reads the socket (TCP_INFO, SIOCOUTQ), under the TLS layer.
 *
 * DESIGN: a client certificate caps the connection at TLS 1.2.  The tcp
 * sink counts bytes as delivered when the kernel took them (there is no
 * acknowledgement), so it must not send before the receiver has accepted
 * its certificate.  In TLS 1.3 the client's handshake ends before the
 * server has judged the client certificate (the refusal comes as an
 * alert after it, when events are already written); in TLS 1.2 the
 * client's handshake ends with the server's Finished, which the server
 * sends only after it verified the certificate (sluiced's sources check
 * tls_allowed_names there too: util/tls.c).  So with tls_cert_file the
 * sink offers TLS 1.2 at most, and tls_min_version = 1.3 with a
 * certificate is a load error (sink_tcp_conf.c).  The other way, waiting
 * for a first record from the server, is not sound: TLS 1.3 servers need
 * not send one (sluiced's send no session tickets).
 *
 * What can be lost (docs/protocol.md): only when a connection breaks (the
 * peer closed or reset it, or was judged gone), the bytes the kernel
 * accepted from send() but the peer never processed: those in our send
 * buffer not yet acknowledged (logged from SIOCOUTQ), and those the peer's
 * kernel acknowledged but its application never read.  A slow peer loses
 * nothing: its connection is never given up.
 */
#include <errno.h>
#include <event2/event.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sink/fwd.h"
#include "sink/sink_tcp.h"
#include "sluice/log.h"
#include "sluice/sink.h"
#include "util/tls.h"
#include "util/tls_io.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BACKOFF_RESET_MS 2000 /* up this long: the next failure starts at retry_initial */
#define TCP_LOG_MS 10000
#define TCP_DRAIN_READS 4
#define TCP_CHECK_MIN_MS 10     /* liveness checks: at most this often ... */
#define TCP_CHECK_MAX_MS 1000   /* ... and at least this often (write_timeout / 4 between) */
#define TCP_CONFIRM_MIN_MS 200  /* the second sample: at least Linux's minimum RTO later ... */
#define TCP_CONFIRM_MAX_MS 5000 /* ... and at most this (a sane bound on srtt + 4 rttvar) */
#define TCP_TLS_RECORD 16384    /* plaintext bytes per SSL_write: one record */

enum fwd_conn_state { CONN_DOWN, CONN_BACKOFF, CONN_CONNECTING, CONN_HANDSHAKE, CONN_UP };

struct tcp_sink;

struct fwd_conn {
    struct tcp_sink *t;
    int idx; /* into cfg->targets */
    int fd;
    SSL *ssl; /* tls = on: owned while fd >= 0 */
    enum fwd_conn_state state;
    struct event *rd_ev; /* EV_READ | EV_PERSIST while up */
    struct event *wr_ev; /* EV_WRITE: connect done, or room to send */
    struct event *timer;
    size_t partial;            /* head of a torn line sent on this connection */
    uint64_t up_since_ms;      /* monotonic */
    uint64_t last_send_ms;     /* monotonic: the last byte accepted */
    uint64_t sent_bytes;       /* stream bytes accepted on this connection */
    uint64_t blocked_since_ms; /* monotonic; 0 = not waiting for room */
    uint64_t backoff_ms;       /* round robin: this connection's delay */
    bool outstanding;          /* the socket may hold unacknowledged bytes: check the peer */
    uint64_t check_ms;         /* monotonic: the next liveness check while outstanding */
    uint64_t suspect_ms;       /* monotonic: the first sample that said "gone"; 0 = none */
    bool stall_logged;         /* the "holding" line was logged for this stall */
};

struct tcp_sink {
    struct sl_sink *s;
    struct event_base *base;
    sl_sink_wake_fn wake;
    void *wake_arg;
    struct fwd_conn conns[SL_SINK_MAX_TARGETS];
    size_t n;
    size_t active;       /* failover: the target in use or being tried */
    size_t rr;           /* round robin: the next connection to use */
    int sticky;          /* connection holding a torn line, or -1 */
    bool want;           /* the writer is waiting for us */
    uint64_t backoff_ms; /* failover: the delay before the next round */
    uint64_t rng;
    struct sl_tls *tls;           /* tls = on: the client context, owned */
    struct sl_ratelimit rl;       /* connection lost / cannot connect lines */
    struct sl_ratelimit stall_rl; /* "the peer takes no data, holding" lines */
};

static void fwd_conn_connect(struct fwd_conn *c);
static void fwd_conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void fwd_conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void fwd_conn_write_cb(evutil_socket_t fd, short what, void *arg);

static const char *
fwd_conn_name(const struct fwd_conn *c)
{
    return sl_sink_tcp_config(c->t->s->cfg)->targets[c->idx].text;
}

/* The next delay after *backoff (fwd.h: doubling, jitter in [d/2, d]). */
static uint64_t
tcp_next_delay(struct tcp_sink *t, uint64_t *backoff)
{
    return sl_fwd_next_delay(sl_sink_tcp_config(t->s->cfg), &t->rng, backoff);
}

/*
 * The rule that tells a gone peer from a slow one, from one TCP_INFO
 * sample of a connection whose socket holds unacknowledged bytes:
 *
 *   gone = tcpi_last_ack_recv >= silence_ms
 *          && (tcpi_probes >= 2
 *              || (tcpi_unacked > 0 && tcpi_last_data_sent < tcpi_last_ack_recv))
 *
 * tcpi_last_ack_recv is the time since the peer's TCP last acknowledged
 * anything.  Every ACK counts, the answer to a zero-window probe too (a
 * duplicate ACK announcing a zero window): a peer that stopped reading but
 * is alive answers whatever is asked of it.  Silence alone proves nothing:
 * while the window is closed the kernel probes at growing intervals (the
 * RTO doubling up to 120 s), so a live peer can be silent for minutes.
 * The peer is gone only if something was asked since its last ACK and
 * stayed unanswered:
 *
 * - tcpi_probes counts the zero-window probes sent since the last ACK
 *   (every ACK resets it).  One is not enough: just after a probe goes
 *   out, its answer is on its way.  Two means the first went unanswered
 *   for a whole probe interval, which is at least an RTO and so longer
 *   than a round trip; one lost answer does not condemn a live peer either.
 * - tcpi_unacked counts segments in flight.  They ask for an answer only
 *   if one of them was (re)sent after the last ACK: tcpi_last_data_sent,
 *   which retransmissions update too, is younger than tcpi_last_ack_recv.
 *   Without that, a live peer that answers each retransmission with a
 *   duplicate ACK but drops the data (no receive memory) would look gone
 *   between two retransmissions spaced wider than silence_ms.
 *
 * One race is left: a probe or segment that went out just before the
 * sample, after a silence longer than silence_ms (new data after an idle
 * spell), with its ACK still on the way.  One sample cannot rule that out,
 * so the caller acts only on a second sample at least an RTO later, with
 * silence_ms raised to the time since the first: an ACK in between makes
 * tcpi_last_ack_recv smaller than that.  Times in TCP_INFO are in jiffies
 * turned into ms, so a segment and its ACK in the same jiffy compare equal
 * and count as answered.
 *
 * Declared in sink_tcp.h for tests/check_sink_tcp.c (no other module has
 * any use for it).  Pure; any thread.
 */
bool
sl_sink_tcp_peer_gone(const struct tcp_info *ti, uint64_t silence_ms)
{
    if (ti->tcpi_last_ack_recv < silence_ms) {
        return false;
    }
    if (ti->tcpi_probes >= 2) {
        return true;
    }
    return ti->tcpi_unacked > 0 && ti->tcpi_last_data_sent < ti->tcpi_last_ack_recv;
}

static void
fwd_conn_arm(struct fwd_conn *c, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    event_add(c->timer, &tv);
}

/*
 * While up: the next liveness check while the socket holds bytes (a
 * connection that is blocked always does), else the idle deadline.
 */
static void
fwd_conn_arm_up(struct fwd_conn *c, uint64_t now)
{
    const struct sl_sink_tcp_config *cfg = sl_sink_tcp_config(c->t->s->cfg);

    if (c->outstanding) {
        fwd_conn_arm(c, c->check_ms > now ? c->check_ms - now : 0);
    } else if (cfg->idle_timeout_ms > 0) {
        uint64_t due = c->last_send_ms + cfg->idle_timeout_ms;
        fwd_conn_arm(c, due > now ? due - now : 0);
    } else {
        event_del(c->timer);
    }
}

/* The time between two liveness checks: write_timeout / 4, so a gone peer
 * is noticed at most a quarter of write_timeout late (plus the confirming
 * sample), within [TCP_CHECK_MIN_MS, TCP_CHECK_MAX_MS]. */
static uint64_t
fwd_conn_check_interval(const struct fwd_conn *c)
{
    uint64_t ms = sl_sink_tcp_config(c->t->s->cfg)->write_timeout_ms / 4;

    if (ms < TCP_CHECK_MIN_MS) {
        return TCP_CHECK_MIN_MS;
    }
    return ms > TCP_CHECK_MAX_MS ? TCP_CHECK_MAX_MS : ms;
}

/* The socket took bytes the peer must acknowledge: liveness checks run
 * (and the timer is re-armed for them) until it has acknowledged all. */
static void
fwd_conn_outstanding(struct fwd_conn *c, uint64_t now)
{
    if (!c->outstanding) {
        c->outstanding = true;
        c->suspect_ms = 0;
        c->check_ms = now + fwd_conn_check_interval(c);
        fwd_conn_arm_up(c, now);
    }
}

/* True (and the checks stop) when the peer has acknowledged every byte
 * sent on the connection and we are not waiting for room. */
static bool
fwd_conn_all_acked(struct fwd_conn *c)
{
    int queued = 0;

    if (c->blocked_since_ms == 0 && ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued == 0) {
        c->outstanding = false;
        c->suspect_ms = 0;
        return true;
    }
    return false;
}

static bool
tcp_any_up(const struct tcp_sink *t)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->conns[i].state == CONN_UP) {
            return true;
        }
    }
    return false;
}

static void
tcp_wake(struct tcp_sink *t)
{
    if (t->want) {
        t->want = false;
        t->wake(t->wake_arg);
    }
}

/* Closes the socket and its events; the slot is DOWN afterwards. */
static void
fwd_conn_close(struct fwd_conn *c)
{
    if (c->fd >= 0) {
        event_del(c->rd_ev);
        event_del(c->wr_ev);
        event_assign(c->rd_ev, c->t->base, -1, 0, fwd_conn_read_cb, c);
        event_assign(c->wr_ev, c->t->base, -1, 0, fwd_conn_write_cb, c);
        if (c->ssl != NULL) {
            if (c->state == CONN_UP) {
                (void)SSL_shutdown(c->ssl); /* one non-blocking try at close_notify */
            }
            SSL_free(c->ssl);
            c->ssl = NULL;
            ERR_clear_error();
        }
        /* Graceful: what is queued is still sent, for as long as the
         * kernel's orphan rules allow (no TCP_USER_TIMEOUT is set). */
        close(c->fd);
        c->fd = -1;
    }
    event_del(c->timer);
    if (c->t->sticky == c->idx) {
        c->t->sticky = -1; /* the torn line is sent whole elsewhere */
    }
    c->partial = 0;
    c->blocked_since_ms = 0;
    c->outstanding = false;
    c->suspect_ms = 0;
    c->stall_logged = false;
    c->state = CONN_DOWN;
}

/* Schedules this connection's next attempt after a backoff delay. */
static void
fwd_conn_backoff(struct fwd_conn *c, uint64_t *backoff)
{
    uint64_t d = tcp_next_delay(c->t, backoff);

    c->state = CONN_BACKOFF;
    fwd_conn_arm(c, d);
}

/*
 * A connection attempt failed, or an established connection broke: log,
 * update health, close, and decide what to try next.
 */
static void
fwd_conn_fail(struct fwd_conn *c, enum sl_sink_op op, int err)
{
    struct tcp_sink *t = c->t;
    struct sl_sink *s = t->s;
    bool was_up = c->state == CONN_UP;
    uint64_t now = sl_now_ms(), sup = 0;
    int unacked = 0;

    if (was_up) {
        if (ioctl(c->fd, SIOCOUTQ, &unacked) < 0) {
            unacked = 0;
        }
        sl_counter_add(&s->stats->disconnects, 1);
        if (unacked > 0) {
            log_warnx("sink \"%s\": connection to %s lost; %d byte(s) sent on it were not "
                      "acknowledged by the peer and may be lost",
                      s->cfg->name, fwd_conn_name(c), unacked);
        } else if (sl_ratelimit_ok(&t->rl, now, &sup)) {
            log_info("sink \"%s\": connection to %s lost", s->cfg->name, fwd_conn_name(c));
        }
    } else if (sl_ratelimit_ok(&t->rl, now, &sup)) {
        char ebuf[128];
        log_info("sink \"%s\": cannot connect to %s: %s", s->cfg->name, fwd_conn_name(c),
                 op == SL_SINK_OP_CONNECT_TIMEOUT ? "timeout"
                                                  : strerror_r(err, ebuf, sizeof(ebuf)));
    }
    bool long_up = was_up && now - c->up_since_ms >= BACKOFF_RESET_MS;
    fwd_conn_close(c);
    if (!tcp_any_up(t)) {
        sl_sink_health_fail(s, op, err, c->idx);
    }
    if (sl_sink_tcp_config(s->cfg)->balance == SL_BALANCE_ROUND_ROBIN) {
        if (long_up) {
            c->backoff_ms = 0;
        }
        fwd_conn_backoff(c, &c->backoff_ms);
        return;
    }
    if ((size_t)c->idx != t->active) {
        return;
    }
    if (long_up) {
        t->backoff_ms = 0;
    }
    if (t->active + 1 < t->n) {
        /* Fail over at once: the next target, from the next loop turn. */
        t->active++;
        t->conns[t->active].state = CONN_BACKOFF;
        fwd_conn_arm(&t->conns[t->active], 0);
    } else {
        t->active = 0;
        fwd_conn_backoff(&t->conns[0], &t->backoff_ms); /* a round failed: wait */
    }
}

static void
fwd_conn_up(struct fwd_conn *c)
{
    struct tcp_sink *t = c->t;
    uint64_t now = sl_now_ms();

    c->state = CONN_UP;
    c->up_since_ms = now;
    c->last_send_ms = now;
    c->sent_bytes = 0;
    c->blocked_since_ms = 0;
    c->outstanding = false;
    c->suspect_ms = 0;
    c->stall_logged = false;
    c->partial = 0;
    event_del(c->wr_ev);
    event_assign(c->rd_ev, t->base, c->fd, EV_READ | EV_PERSIST, fwd_conn_read_cb, c);
    event_assign(c->wr_ev, t->base, c->fd, EV_WRITE, fwd_conn_write_cb, c);
    event_add(c->rd_ev, NULL);
    fwd_conn_arm_up(c, now);
    sl_counter_add(&t->s->stats->connects, 1);
    log_info("sink \"%s\": connected to %s", t->s->cfg->name, fwd_conn_name(c));
    sl_sink_health_ok(t->s);
    tcp_wake(t);
}

/*
 * After an SSL_read error on an established connection: true (counted,
 * logged, the connection failed) when it is the receiver refusing this
 * sink's client certificate.  With TLS 1.2 (DESIGN above) a receiver
 * that verifies in its handshake never gets here; one that judges the
 * certificate after it (its application's own check) may have received
 * events already, which it drops: they are lost, and said so with their
 * count.
 */
static bool
fwd_conn_cert_refused(struct fwd_conn *c, int ssl_err)
{
    struct tcp_sink *t = c->t;
    switch (ERR_GET_REASON(ERR_peek_error())) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        break;
    default:
        return false;
    }
    char detail[160];
    sl_tls_failure_detail(c->ssl, detail, sizeof(detail));
    enum sl_tls_reason r = sl_tls_handshake_failed(t->tls, c->ssl, ssl_err, -1);
    log_warnx("sink \"%s\": %s refused this sink's client certificate after the handshake "
              "(%s: %s); %llu byte(s) sent on the connection before the refusal are lost (a "
              "receiver that judges the certificate after its handshake; the sluice sink loses "
              "nothing this way)",
              t->s->cfg->name, fwd_conn_name(c), sl_tls_reason_names[r], detail,
              (unsigned long long)c->sent_bytes);
    fwd_conn_fail(c, SL_SINK_OP_TLS, EPROTO);
    return true;
}

/* One step of the TLS handshake (CONN_HANDSHAKE): up when it is done; a
 * refusal is counted per reason and fails the attempt. */
static void
fwd_conn_handshake(struct fwd_conn *c)
{
    struct tcp_sink *t = c->t;
    int ssl_err = 0;
    uint64_t sup = 0;

    switch (sl_tls_io_handshake(c->ssl, &ssl_err)) {
    case SL_TLS_IO_OK:
        (void)sl_tls_handshake_done(t->tls, c->ssl);
        event_del(c->timer);
        event_del(c->rd_ev); /* fwd_conn_up assigns it again */
        fwd_conn_up(c);
        return;
    case SL_TLS_IO_WANT_READ:
        event_del(c->rd_ev);
        event_assign(c->rd_ev, t->base, c->fd, EV_READ, fwd_conn_read_cb, c);
        event_add(c->rd_ev, NULL);
        return;
    case SL_TLS_IO_WANT_WRITE:
        event_add(c->wr_ev, NULL);
        return;
    default:
        break;
    }
    char detail[160];
    sl_tls_failure_detail(c->ssl, detail, sizeof(detail));
    enum sl_tls_reason r = sl_tls_handshake_failed(t->tls, c->ssl, ssl_err, -1);
    if (sl_ratelimit_ok(&t->rl, sl_now_ms(), &sup)) {
        log_warnx("sink \"%s\": cannot connect to %s: TLS refused (%s)%s%s", t->s->cfg->name,
                  fwd_conn_name(c), sl_tls_reason_names[r], detail[0] != '\0' ? ": " : "",
                  detail);
    }
    fwd_conn_fail(c, SL_SINK_OP_TLS, EPROTO);
}

/* TCP is connected: the TLS handshake, or up at once. */
static void
fwd_conn_connected(struct fwd_conn *c)
{
    struct tcp_sink *t = c->t;
    const struct sl_sink_tcp_config *cfg = sl_sink_tcp_config(t->s->cfg);

    if (t->tls == NULL) {
        fwd_conn_up(c);
        return;
    }
    c->ssl = sl_fwd_tls_ssl(t->tls, &cfg->targets[c->idx], c->fd);
    if (c->ssl == NULL) {
        fwd_conn_fail(c, SL_SINK_OP_TLS, ENOMEM);
        return;
    }
    if (cfg->tls.cert_file != NULL) {
        (void)SSL_set_max_proto_version(c->ssl, TLS1_2_VERSION); /* see DESIGN above */
    }
    c->state = CONN_HANDSHAKE;
    event_del(c->wr_ev);
    event_assign(c->wr_ev, t->base, c->fd, EV_WRITE, fwd_conn_write_cb, c);
    fwd_conn_arm(c, cfg->tls.handshake_timeout_ms);
    fwd_conn_handshake(c);
}

static void
fwd_conn_connect(struct fwd_conn *c)
{
    struct tcp_sink *t = c->t;
    const struct sl_sink_tcp_config *cfg = sl_sink_tcp_config(t->s->cfg);
    int r = sl_fwd_connect(&cfg->targets[c->idx], cfg, &c->fd);

    c->state = CONN_CONNECTING; /* so fwd_conn_fail treats a failure as an attempt */
    if (r == 0) {
        fwd_conn_connected(c);
        return;
    }
    if (r < 0) {
        fwd_conn_fail(c, SL_SINK_OP_CONNECT, errno);
        return;
    }
    event_assign(c->wr_ev, t->base, c->fd, EV_WRITE, fwd_conn_write_cb, c);
    event_add(c->wr_ev, NULL);
    fwd_conn_arm(c, cfg->connect_timeout_ms);
}

static void
fwd_conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_conn *c = arg;

    if (c->state == CONN_CONNECTING) {
        int err = sl_fwd_connect_result(c->fd);
        if (err != 0) {
            fwd_conn_fail(c, SL_SINK_OP_CONNECT, err);
        } else {
            fwd_conn_connected(c);
        }
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        fwd_conn_handshake(c);
        return;
    }
    if (c->state == CONN_UP) {
        tcp_wake(c->t); /* room in the send buffer */
    }
}

static void
fwd_conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_conn *c = arg;
    char buf[4096];

    if (c->state == CONN_HANDSHAKE) {
        fwd_conn_handshake(c);
        return;
    }
    if (c->ssl != NULL) {
        /* Through OpenSSL: a record may be a close_notify; what the peer
         * says otherwise is dropped. */
        for (int i = 0; i < TCP_DRAIN_READS && c->state == CONN_UP; i++) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, buf, sizeof(buf));
            if (n > 0) {
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ) {
                break;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                event_add(c->wr_ev, NULL);
                break;
            }
            bool closed = e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL;
            if (!closed && fwd_conn_cert_refused(c, e)) {
                return;
            }
            ERR_clear_error();
            fwd_conn_fail(c, closed ? SL_SINK_OP_PEER_CLOSED : SL_SINK_OP_SEND,
                          closed ? 0 : EPROTO);
            return;
        }
        tcp_wake(c->t); /* a write that waited for a read may go on */
        return;
    }
    for (int i = 0; i < TCP_DRAIN_READS && c->state == CONN_UP; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            continue; /* a peer has nothing to say; whatever it sends is dropped */
        }
        if (n == 0) {
            fwd_conn_fail(c, SL_SINK_OP_PEER_CLOSED, 0);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fwd_conn_fail(c, SL_SINK_OP_SEND, errno);
        }
        return;
    }
}

/*
 * The liveness check, from the timer while the socket holds bytes the peer
 * has not acknowledged.  A first sample by which the peer looks gone
 * (sl_sink_tcp_peer_gone) only schedules a second one an RTO later
 * (srtt + 4 rttvar, within [TCP_CONFIRM_MIN_MS, TCP_CONFIRM_MAX_MS]); the
 * connection is given up only if that one agrees and saw no ACK since the
 * first.  A peer that answers is held however long its window stays
 * closed; the log says so once per stall.  Returns true when the
 * connection was given up (failed: the next target is tried).
 */
static bool
fwd_conn_check(struct fwd_conn *c, uint64_t now)
{
    struct tcp_sink *t = c->t;
    const struct sl_sink_tcp_config *cfg = sl_sink_tcp_config(t->s->cfg);
    uint64_t wt = cfg->write_timeout_ms, sup = 0;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (fwd_conn_all_acked(c)) {
        return false;
    }
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) {
        c->suspect_ms = 0; /* cannot tell: alive until a sample says otherwise */
        c->check_ms = now + fwd_conn_check_interval(c);
        return false;
    }
    if (c->suspect_ms == 0 && sl_sink_tcp_peer_gone(&ti, wt)) {
        uint64_t gap = ((uint64_t)ti.tcpi_rtt + 4 * (uint64_t)ti.tcpi_rttvar) / 1000;
        gap = gap < TCP_CONFIRM_MIN_MS ? TCP_CONFIRM_MIN_MS : gap;
        gap = gap > TCP_CONFIRM_MAX_MS ? TCP_CONFIRM_MAX_MS : gap;
        c->suspect_ms = now;
        c->check_ms = now + gap;
        return false;
    }
    if (c->suspect_ms != 0) {
        uint64_t since = now - c->suspect_ms;
        if (sl_sink_tcp_peer_gone(&ti, since > wt ? since : wt)) {
            log_warnx("sink \"%s\": %s acknowledged nothing for %u ms (%s); giving the "
                      "connection up",
                      t->s->cfg->name, fwd_conn_name(c), ti.tcpi_last_ack_recv,
                      ti.tcpi_probes >= 2 ? "window probes unanswered" : "data unacknowledged");
            fwd_conn_fail(c, SL_SINK_OP_WRITE_TIMEOUT, ETIMEDOUT);
            tcp_wake(t);
            return true;
        }
        c->suspect_ms = 0; /* it answered after all */
    }
    if (c->blocked_since_ms != 0 && !c->stall_logged && now - c->blocked_since_ms >= wt &&
        sl_ratelimit_ok(&t->stall_rl, now, &sup)) {
        log_warnx("sink \"%s\": %s has taken no data for %llu ms but still acknowledges: "
                  "holding the events (backpressure)",
                  t->s->cfg->name, fwd_conn_name(c),
                  (unsigned long long)(now - c->blocked_since_ms));
        c->stall_logged = true;
    }
    c->check_ms = now + fwd_conn_check_interval(c);
    return false;
}

static void
fwd_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_conn *c = arg;
    struct tcp_sink *t = c->t;
    const struct sl_sink_tcp_config *cfg = sl_sink_tcp_config(t->s->cfg);
    uint64_t now = sl_now_ms();

    switch (c->state) {
    case CONN_BACKOFF:
        fwd_conn_connect(c);
        return;
    case CONN_CONNECTING:
        fwd_conn_fail(c, SL_SINK_OP_CONNECT_TIMEOUT, ETIMEDOUT);
        return;
    case CONN_HANDSHAKE:
        sl_tls_count(t->tls, SL_TLS_R_TIMEOUT);
        log_warnx("sink \"%s\": cannot connect to %s: TLS refused (timeout): no handshake "
                  "within tls_handshake_timeout",
                  t->s->cfg->name, fwd_conn_name(c));
        fwd_conn_fail(c, SL_SINK_OP_TLS, ETIMEDOUT);
        return;
    case CONN_UP:
        if (c->outstanding && now >= c->check_ms && fwd_conn_check(c, now)) {
            return;
        }
        /* Idle: nothing sent for idle_timeout and everything acknowledged
         * (closing with bytes queued to a stalled peer could lose them). */
        if (!c->outstanding && cfg->idle_timeout_ms > 0 &&
            now - c->last_send_ms >= cfg->idle_timeout_ms) {
            if (c->partial != 0 || t->want) {
                fwd_conn_arm(c, TCP_CHECK_MAX_MS); /* in use after all: look again later */
                return;
            }
            log_debug("sink \"%s\": closing the idle connection to %s", t->s->cfg->name,
                      fwd_conn_name(c));
            fwd_conn_close(c);
            if (cfg->balance == SL_BALANCE_FAILOVER) {
                t->active = 0; /* the next connection tries the first target first */
            }
            return;
        }
        fwd_conn_arm_up(c, now);
        return;
    case CONN_DOWN:
        return;
    }
}

/* Starts connections that are neither up nor on their way. */
static void
tcp_connect_down(struct tcp_sink *t)
{
    if (sl_sink_tcp_config(t->s->cfg)->balance == SL_BALANCE_FAILOVER) {
        if (t->conns[t->active].state == CONN_DOWN) {
            fwd_conn_connect(&t->conns[t->active]);
        }
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (t->conns[i].state == CONN_DOWN) {
            fwd_conn_connect(&t->conns[i]);
        }
    }
}

/*
 * True (and the connection failed) when the peer has already closed or
 * reset it, though its EV_READ has not run yet: a batch sent now would be
 * accepted by our kernel and then lost.  One recv(MSG_PEEK) per batch.
 */
static bool
fwd_conn_gone(struct fwd_conn *c)
{
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    if (r == 0) {
        fwd_conn_fail(c, SL_SINK_OP_PEER_CLOSED, 0);
        return true;
    }
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fwd_conn_fail(c, SL_SINK_OP_SEND, errno);
        return true;
    }
    return false;
}

/* The connection the next bytes go to, or NULL. */
static struct fwd_conn *
tcp_pick(struct tcp_sink *t)
{
    if (t->sticky >= 0) {
        return &t->conns[t->sticky];
    }
    if (sl_sink_tcp_config(t->s->cfg)->balance == SL_BALANCE_FAILOVER) {
        struct fwd_conn *c = &t->conns[t->active];
        return c->state == CONN_UP ? c : NULL;
    }
    for (size_t k = 0; k < t->n; k++) {
        struct fwd_conn *c = &t->conns[(t->rr + k) % t->n];
        if (c->state == CONN_UP) {
            t->rr = (t->rr + k) % t->n;
            return c;
        }
    }
    return NULL;
}

/*
 * sendmsg() for a TLS connection: SSL_write of the iovecs in order, one
 * record (TCP_TLS_RECORD) per call, until all went or OpenSSL waits.
 * Returns the bytes taken, or -1 with errno: EAGAIN when nothing went and
 * OpenSSL waits for the socket (it keeps a record it started: the next
 * call starts at the same byte, so it passes the same bytes again), EPIPE
 * when the connection broke.
 */
static ssize_t
tcp_tls_send(struct fwd_conn *c, const struct iovec *iov, int iovcnt)
{
    size_t sent = 0;

    for (int i = 0; i < iovcnt; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len) {
            size_t len = iov[i].iov_len - off;
            int want = len > TCP_TLS_RECORD ? TCP_TLS_RECORD : (int)len;
            ERR_clear_error();
            int n = SSL_write(c->ssl, (const char *)iov[i].iov_base + off, want);
            if (n > 0) {
                off += (size_t)n;
                sent += (size_t)n;
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                if (sent > 0) {
                    return (ssize_t)sent;
                }
                errno = EAGAIN;
                return -1;
            }
            ERR_clear_error();
            if (sent > 0) {
                return (ssize_t)sent; /* the failure shows again on the next call */
            }
            errno = EPIPE;
            return -1;
        }
    }
    return (ssize_t)sent;
}

static enum sl_sink_result
tcp_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    struct tcp_sink *t = s->priv;
    struct iovec sub[SL_SINK_IOV_MAX];
    size_t total = sl_iov_total(iov, iovcnt);

    *written = 0;
    /* Each pass either sends or loses a connection: bounded by the targets. */
    for (size_t attempt = 0; attempt <= t->n; attempt++) {
        struct fwd_conn *c = tcp_pick(t);
        if (c == NULL) {
            tcp_connect_down(t);
            c = tcp_pick(t);
        }
        if (c == NULL) {
            t->want = true;
            return SL_SINK_WAIT;
        }
        if (fwd_conn_gone(c)) {
            continue; /* closed by the peer before we sent: nothing lost */
        }
        size_t start = c->partial;
        struct msghdr mh = {0};
        mh.msg_iov = sub;
        mh.msg_iovlen =
            (size_t)sl_iov_slice(iov, iovcnt, start, total - start, sub, SL_SINK_IOV_MAX);
        ssize_t n;
        if (c->ssl != NULL) {
            n = tcp_tls_send(c, sub, (int)mh.msg_iovlen);
        } else {
            do {
                n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            } while (n < 0 && errno == EINTR);
        }
        uint64_t now = sl_now_ms();
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->blocked_since_ms == 0) {
                c->blocked_since_ms = now;
                fwd_conn_outstanding(c, now);
            }
            event_add(c->wr_ev, NULL);
            t->want = true;
            return SL_SINK_WAIT;
        }
        if (n < 0) {
            fwd_conn_fail(c, SL_SINK_OP_SEND, errno);
            continue;
        }
        if (c->stall_logged) {
            log_info("sink \"%s\": %s takes data again after %llu ms", s->cfg->name,
                     fwd_conn_name(c), (unsigned long long)(now - c->blocked_since_ms));
            c->stall_logged = false;
        }
        c->last_send_ms = now;
        c->sent_bytes += (uint64_t)n;
        c->blocked_since_ms = 0;
        fwd_conn_outstanding(c, now);
        *written = sl_sink_account(iov, iovcnt, total, start + (size_t)n, &c->partial);
        t->sticky = c->partial > 0 ? c->idx : -1;
        if (start + (size_t)n < total) {
            /* The socket is full: wait for room (the liveness checks run). */
            c->blocked_since_ms = now;
            event_add(c->wr_ev, NULL);
            t->want = true;
            return SL_SINK_WAIT;
        }
        t->want = false;
        t->rr = (t->rr + 1) % t->n;
        return SL_SINK_OK;
    }
    t->want = true;
    return SL_SINK_WAIT;
}

static int
tcp_open(struct sl_sink *s)
{
    struct tcp_sink *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return -1;
    }
    s->priv = t;
    t->s = s;
    t->n = sl_sink_tcp_config(s->cfg)->ntargets;
    t->sticky = -1;
    t->rl.interval_ms = TCP_LOG_MS;
    t->stall_rl.interval_ms = TCP_LOG_MS;
    sl_fwd_seed(&t->rng, t);
    if (t->n == 0) {
        log_warnx("sink \"%s\": no target", s->cfg->name);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        t->conns[i].t = t;
        t->conns[i].idx = (int)i;
        t->conns[i].fd = -1;
    }
    return sl_fwd_tls_new(sl_sink_tcp_config(s->cfg), s->cfg->name, &t->tls);
}

static int
tcp_attach(struct sl_sink *s, const struct sl_sink_link *link)
{
    struct tcp_sink *t = s->priv;
    struct event_base *base = link->base;

    t->base = base;
    t->wake = link->wake;
    t->wake_arg = link->arg;
    for (size_t i = 0; i < t->n; i++) {
        struct fwd_conn *c = &t->conns[i];
        c->rd_ev = event_new(base, -1, 0, fwd_conn_read_cb, c);
        c->wr_ev = event_new(base, -1, 0, fwd_conn_write_cb, c);
        c->timer = evtimer_new(base, fwd_conn_timer_cb, c);
        if (c->rd_ev == NULL || c->wr_ev == NULL || c->timer == NULL) {
            return -1;
        }
    }
    tcp_connect_down(t); /* connect at start: health shows a missing peer at once */
    return 0;
}

static void
tcp_detach(struct sl_sink *s)
{
    struct tcp_sink *t = s->priv;

    for (size_t i = 0; t != NULL && i < t->n; i++) {
        struct fwd_conn *c = &t->conns[i];
        if (c->rd_ev != NULL && c->wr_ev != NULL && c->timer != NULL) {
            fwd_conn_close(c);
        }
        if (c->rd_ev != NULL) {
            event_free(c->rd_ev);
            c->rd_ev = NULL;
        }
        if (c->wr_ev != NULL) {
            event_free(c->wr_ev);
            c->wr_ev = NULL;
        }
        if (c->timer != NULL) {
            event_free(c->timer);
            c->timer = NULL;
        }
    }
}

static enum sl_sink_result
tcp_flush(struct sl_sink *s, bool final)
{
    return SL_SINK_OK; /* what send() took, the kernel sends, even after close() */
}

/* SIGHUP: the TLS files are read again (established connections keep
 * the context they started with). */
static void
tcp_reopen(struct sl_sink *s)
{
    struct tcp_sink *t = s->priv;
    if (t->tls != NULL) {
        (void)sl_tls_reload(t->tls); /* logs and counts either way */
    }
}

static struct sl_tls *
tcp_tls(const struct sl_sink *s)
{
    const struct tcp_sink *t = s->priv;
    return t != NULL ? t->tls : NULL;
}

/* Connects, keepalives, timeouts and reconnection backoff run on the
 * sink's own timers on the writer's event_base: nothing for the tick. */
static uint64_t
tcp_tick(struct sl_sink *s, uint64_t now_ms)
{
    return SL_SINK_TICK_NONE;
}

static void
tcp_close(struct sl_sink *s)
{
    struct tcp_sink *t = s->priv;

    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (t->conns[i].ssl != NULL) {
            SSL_free(t->conns[i].ssl);
        }
        if (t->conns[i].fd >= 0) {
            close(t->conns[i].fd);
        }
    }
    sl_tls_free(t->tls);
    free(t);
    s->priv = NULL;
}

/* sl_sink_ops.object: health reasons name the target as written. */
static const char *
tcp_object(const struct sl_sink *s, int target)
{
    const struct sl_sink_tcp_config *tc = sl_sink_tcp_config(s->cfg);
    return target >= 0 && (size_t)target < tc->ntargets ? tc->targets[target].text : NULL;
}

const struct sl_sink_ops sl_sink_tcp_ops = {
    .type = "tcp",
    .object = tcp_object,
    .open = tcp_open,
    .attach = tcp_attach,
    .detach = tcp_detach,
    .write = tcp_write,
    .flush = tcp_flush,
    .reopen = tcp_reopen,
    .tick = tcp_tick,
    .close = tcp_close,
    .tls = tcp_tls,
};
