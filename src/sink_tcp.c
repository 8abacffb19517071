/*
 * sink_tcp — forwards the NDJSON stream to one or more TCP targets
 * (writer thread, inside the writer's event_base).
 *
 * DESIGN
 * Every target has a connection slot with a small state machine:
 *
 *   DOWN ──connect()──▶ CONNECTING ──ok──▶ UP ──error, peer close, ──▶ BACKOFF ──timer──▶ ...
 *     ▲                     │ refused/timeout        write timeout          (or the next target)
 *     └── idle_timeout ─────┴───────────────────────────────────────────────┘
 *
 * Sockets are non-blocking and watched with events on the writer's base
 * (attach): EV_WRITE for connect completion and for room in a full send
 * buffer, EV_READ for the peer closing or resetting (a sluiced peer never
 * sends anything), one timer for backoff, connect timeout, write timeout and
 * idle close.  write() never blocks: with no usable connection or a full
 * socket it answers SL_SINK_WAIT, the writer keeps the batch (its queue
 * fills, TCP sources pause: nothing is dropped because a peer is down), and
 * the sink wakes the writer when a connection comes up or has room.
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
 * Whole lines (sink.h): when a send takes part of a line, the rest of that
 * line goes to the same connection; if that connection fails first, the
 * line is sent whole on the next one (the receiver sees the torn head as an
 * incomplete last line at EOF, which a json source rejects and counts).
 *
 * What can be lost (docs/protocol.md): bytes the kernel accepted from
 * send() but the peer never processed: those in our send buffer not yet
 * acknowledged when the connection breaks (logged from SIOCOUTQ), and those
 * the peer's kernel acknowledged but its application never read.  A
 * connection dropped for write_timeout is closed gracefully, so a peer that
 * was only slow still receives what was queued.
 */
#include <errno.h>
#include <event2/event.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/sink.h"

#define BACKOFF_RESET_MS 2000 /* up this long: the next failure starts at retry_initial */
#define TCP_LOG_MS 10000
#define TCP_DRAIN_READS 4

enum conn_state { CONN_DOWN, CONN_BACKOFF, CONN_CONNECTING, CONN_UP };

struct tcp_sink;

struct tcp_conn {
    struct tcp_sink *t;
    int idx; /* into cfg->targets */
    int fd;
    enum conn_state state;
    struct event *rd_ev; /* EV_READ | EV_PERSIST while up */
    struct event *wr_ev; /* EV_WRITE: connect done, or room to send */
    struct event *timer;
    size_t partial;            /* head of a torn line sent on this connection */
    uint64_t up_since_ms;      /* monotonic */
    uint64_t last_send_ms;     /* monotonic: the last byte accepted */
    uint64_t blocked_since_ms; /* monotonic; 0 = not waiting for room */
    uint64_t backoff_ms;       /* round robin: this connection's delay */
};

struct tcp_sink {
    struct sl_sink *s;
    struct event_base *base;
    sl_sink_wake_fn wake;
    void *wake_arg;
    struct tcp_conn conns[SL_SINK_MAX_TARGETS];
    size_t n;
    size_t active;       /* failover: the target in use or being tried */
    size_t rr;           /* round robin: the next connection to use */
    int sticky;          /* connection holding a torn line, or -1 */
    bool want;           /* the writer is waiting for us */
    uint64_t backoff_ms; /* failover: the delay before the next round */
    uint64_t rng;
    struct sl_ratelimit rl;
};

static void conn_connect(struct tcp_conn *c);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

static const char *
conn_name(const struct tcp_conn *c)
{
    return c->t->s->cfg->targets[c->idx].text;
}

static uint64_t
tcp_random(struct tcp_sink *t)
{
    /* xorshift64*: jitter only, not security. */
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return t->rng * 2685821657736338717ull;
}

/* The next delay after *backoff (retry_initial doubling up to retry_max),
 * with jitter: a value in [d/2, d]. */
static uint64_t
tcp_next_delay(struct tcp_sink *t, uint64_t *backoff)
{
    const struct sl_sink_config *c = t->s->cfg;
    uint64_t d = *backoff == 0 ? c->retry_initial_ms : *backoff * 2;

    if (d > c->retry_max_ms) {
        d = c->retry_max_ms;
    }
    *backoff = d;
    return d / 2 + tcp_random(t) % (d - d / 2 + 1);
}

static void
conn_arm(struct tcp_conn *c, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    event_add(c->timer, &tv);
}

/* While up: the earliest of the write-timeout and idle deadlines. */
static void
conn_arm_up(struct tcp_conn *c, uint64_t now)
{
    const struct sl_sink_config *cfg = c->t->s->cfg;
    uint64_t wait = UINT64_MAX;

    if (c->blocked_since_ms != 0) {
        uint64_t due = c->blocked_since_ms + cfg->write_timeout_ms;
        wait = due > now ? due - now : 0;
    }
    if (cfg->idle_timeout_ms > 0) {
        uint64_t due = c->last_send_ms + cfg->idle_timeout_ms;
        uint64_t w2 = due > now ? due - now : 0;
        wait = w2 < wait ? w2 : wait;
    }
    if (wait == UINT64_MAX) {
        event_del(c->timer);
    } else {
        conn_arm(c, wait);
    }
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
conn_close(struct tcp_conn *c)
{
    if (c->fd >= 0) {
        event_del(c->rd_ev);
        event_del(c->wr_ev);
        event_assign(c->rd_ev, c->t->base, -1, 0, conn_read_cb, c);
        event_assign(c->wr_ev, c->t->base, -1, 0, conn_write_cb, c);
        /* Graceful: what is queued is still sent, for as long as the
         * kernel's orphan rules allow, not only for write_timeout. */
        unsigned zero = 0;
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &zero, sizeof(zero));
        close(c->fd);
        c->fd = -1;
    }
    event_del(c->timer);
    if (c->t->sticky == c->idx) {
        c->t->sticky = -1; /* the torn line is sent whole elsewhere */
    }
    c->partial = 0;
    c->blocked_since_ms = 0;
    c->state = CONN_DOWN;
}

/* Schedules this connection's next attempt after a backoff delay. */
static void
conn_backoff(struct tcp_conn *c, uint64_t *backoff)
{
    uint64_t d = tcp_next_delay(c->t, backoff);

    c->state = CONN_BACKOFF;
    conn_arm(c, d);
}

/*
 * A connection attempt failed, or an established connection broke: log,
 * update health, close, and decide what to try next.
 */
static void
conn_fail(struct tcp_conn *c, enum sl_sink_op op, int err)
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
                      s->cfg->name, conn_name(c), unacked);
        } else if (sl_ratelimit_ok(&t->rl, now, &sup)) {
            log_info("sink \"%s\": connection to %s lost", s->cfg->name, conn_name(c));
        }
    } else if (sl_ratelimit_ok(&t->rl, now, &sup)) {
        char ebuf[128];
        log_info("sink \"%s\": cannot connect to %s: %s", s->cfg->name, conn_name(c),
                 op == SL_SINK_OP_CONNECT_TIMEOUT ? "timeout"
                                                  : strerror_r(err, ebuf, sizeof(ebuf)));
    }
    bool long_up = was_up && now - c->up_since_ms >= BACKOFF_RESET_MS;
    conn_close(c);
    if (!tcp_any_up(t)) {
        sl_sink_health_fail(s, op, err, c->idx);
    }
    if (s->cfg->balance == SL_BALANCE_ROUND_ROBIN) {
        if (long_up) {
            c->backoff_ms = 0;
        }
        conn_backoff(c, &c->backoff_ms);
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
        conn_arm(&t->conns[t->active], 0);
    } else {
        t->active = 0;
        conn_backoff(&t->conns[0], &t->backoff_ms); /* a round failed: wait */
    }
}

static void
conn_up(struct tcp_conn *c)
{
    struct tcp_sink *t = c->t;
    uint64_t now = sl_now_ms();

    c->state = CONN_UP;
    c->up_since_ms = now;
    c->last_send_ms = now;
    c->blocked_since_ms = 0;
    c->partial = 0;
    event_del(c->wr_ev);
    event_assign(c->rd_ev, t->base, c->fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    event_assign(c->wr_ev, t->base, c->fd, EV_WRITE, conn_write_cb, c);
    event_add(c->rd_ev, NULL);
    conn_arm_up(c, now);
    sl_counter_add(&t->s->stats->connects, 1);
    log_info("sink \"%s\": connected to %s", t->s->cfg->name, conn_name(c));
    sl_sink_health_ok(t->s);
    tcp_wake(t);
}

static void
conn_sockopts(struct tcp_conn *c)
{
    const struct sl_sink_config *cfg = c->t->s->cfg;
    int one = 1;

    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->keepalive_ms > 0) {
        int idle = (int)(cfg->keepalive_ms / 1000), intvl, cnt = 3;
        idle = idle < 1 ? 1 : idle;
        intvl = idle / 3 < 1 ? 1 : idle / 3;
        (void)setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    }
    /* Sent data unacknowledged this long: the kernel gives up (RFC 5482). */
    unsigned ut = cfg->write_timeout_ms > UINT32_MAX ? UINT32_MAX : (unsigned)cfg->write_timeout_ms;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
}

static void
conn_connect(struct tcp_conn *c)
{
    struct tcp_sink *t = c->t;
    const struct sl_sink_target *tg = &t->s->cfg->targets[c->idx];

    c->fd = socket(tg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        int err = errno;
        c->state = CONN_CONNECTING; /* so conn_fail treats it as an attempt */
        conn_fail(c, SL_SINK_OP_CONNECT, err);
        return;
    }
    conn_sockopts(c);
    c->state = CONN_CONNECTING;
    if (connect(c->fd, (const struct sockaddr *)&tg->addr, tg->addrlen) == 0) {
        conn_up(c);
        return;
    }
    if (errno != EINPROGRESS) {
        conn_fail(c, SL_SINK_OP_CONNECT, errno);
        return;
    }
    event_assign(c->wr_ev, t->base, c->fd, EV_WRITE, conn_write_cb, c);
    event_add(c->wr_ev, NULL);
    conn_arm(c, t->s->cfg->connect_timeout_ms);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_conn *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    if (c->state == CONN_CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
            err = errno;
        }
        if (err != 0) {
            conn_fail(c, SL_SINK_OP_CONNECT, err);
        } else {
            conn_up(c);
        }
        return;
    }
    if (c->state == CONN_UP) {
        tcp_wake(c->t); /* room in the send buffer */
    }
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_conn *c = arg;
    char buf[4096];

    for (int i = 0; i < TCP_DRAIN_READS && c->state == CONN_UP; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            continue; /* a peer has nothing to say; whatever it sends is dropped */
        }
        if (n == 0) {
            conn_fail(c, SL_SINK_OP_PEER_CLOSED, 0);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_fail(c, SL_SINK_OP_SEND, errno);
        }
        return;
    }
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_conn *c = arg;
    struct tcp_sink *t = c->t;
    const struct sl_sink_config *cfg = t->s->cfg;
    uint64_t now = sl_now_ms();

    switch (c->state) {
    case CONN_BACKOFF:
        conn_connect(c);
        return;
    case CONN_CONNECTING:
        conn_fail(c, SL_SINK_OP_CONNECT_TIMEOUT, ETIMEDOUT);
        return;
    case CONN_UP:
        if (c->blocked_since_ms != 0 && now - c->blocked_since_ms >= cfg->write_timeout_ms) {
            log_warnx("sink \"%s\": %s accepted no data for %llu ms; dropping the connection",
                      cfg->name, conn_name(c), (unsigned long long)cfg->write_timeout_ms);
            conn_fail(c, SL_SINK_OP_WRITE_TIMEOUT, ETIMEDOUT);
            tcp_wake(t);
            return;
        }
        if (cfg->idle_timeout_ms > 0 && c->blocked_since_ms == 0 && c->partial == 0 && !t->want &&
            now - c->last_send_ms >= cfg->idle_timeout_ms) {
            log_debug("sink \"%s\": closing the idle connection to %s", cfg->name, conn_name(c));
            conn_close(c);
            if (cfg->balance == SL_BALANCE_FAILOVER) {
                t->active = 0; /* the next connection tries the first target first */
            }
            return;
        }
        conn_arm_up(c, now);
        return;
    case CONN_DOWN:
        return;
    }
}

/* Starts connections that are neither up nor on their way. */
static void
tcp_connect_down(struct tcp_sink *t)
{
    if (t->s->cfg->balance == SL_BALANCE_FAILOVER) {
        if (t->conns[t->active].state == CONN_DOWN) {
            conn_connect(&t->conns[t->active]);
        }
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (t->conns[i].state == CONN_DOWN) {
            conn_connect(&t->conns[i]);
        }
    }
}

/*
 * True (and the connection failed) when the peer has already closed or
 * reset it, though its EV_READ has not run yet: a batch sent now would be
 * accepted by our kernel and then lost.  One recv(MSG_PEEK) per batch.
 */
static bool
conn_gone(struct tcp_conn *c)
{
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    if (r == 0) {
        conn_fail(c, SL_SINK_OP_PEER_CLOSED, 0);
        return true;
    }
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_fail(c, SL_SINK_OP_SEND, errno);
        return true;
    }
    return false;
}

/* The connection the next bytes go to, or NULL. */
static struct tcp_conn *
tcp_pick(struct tcp_sink *t)
{
    if (t->sticky >= 0) {
        return &t->conns[t->sticky];
    }
    if (t->s->cfg->balance == SL_BALANCE_FAILOVER) {
        struct tcp_conn *c = &t->conns[t->active];
        return c->state == CONN_UP ? c : NULL;
    }
    for (size_t k = 0; k < t->n; k++) {
        struct tcp_conn *c = &t->conns[(t->rr + k) % t->n];
        if (c->state == CONN_UP) {
            t->rr = (t->rr + k) % t->n;
            return c;
        }
    }
    return NULL;
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
        struct tcp_conn *c = tcp_pick(t);
        if (c == NULL) {
            tcp_connect_down(t);
            c = tcp_pick(t);
        }
        if (c == NULL) {
            t->want = true;
            return SL_SINK_WAIT;
        }
        if (conn_gone(c)) {
            continue; /* closed by the peer before we sent: nothing lost */
        }
        size_t start = c->partial;
        struct msghdr mh = {0};
        mh.msg_iov = sub;
        mh.msg_iovlen =
            (size_t)sl_iov_slice(iov, iovcnt, start, total - start, sub, SL_SINK_IOV_MAX);
        ssize_t n;
        do {
            n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        uint64_t now = sl_now_ms();
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->blocked_since_ms == 0) {
                c->blocked_since_ms = now;
                conn_arm_up(c, now);
            }
            event_add(c->wr_ev, NULL);
            t->want = true;
            return SL_SINK_WAIT;
        }
        if (n < 0) {
            conn_fail(c, SL_SINK_OP_SEND, errno);
            continue;
        }
        c->last_send_ms = now;
        c->blocked_since_ms = 0;
        *written = sl_sink_account(iov, iovcnt, total, start + (size_t)n, &c->partial);
        t->sticky = c->partial > 0 ? c->idx : -1;
        if (start + (size_t)n < total) {
            /* The socket is full: wait for room (write_timeout runs). */
            c->blocked_since_ms = now;
            conn_arm_up(c, now);
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
    t->n = s->cfg->ntargets;
    t->sticky = -1;
    t->rl.interval_ms = TCP_LOG_MS;
    if (getrandom(&t->rng, sizeof(t->rng), GRND_NONBLOCK) != sizeof(t->rng) || t->rng == 0) {
        t->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)t;
    }
    if (t->n == 0) {
        log_warnx("sink \"%s\": no target", s->cfg->name);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        t->conns[i].t = t;
        t->conns[i].idx = (int)i;
        t->conns[i].fd = -1;
    }
    return 0;
}

static int
tcp_attach(struct sl_sink *s, struct event_base *base, sl_sink_wake_fn wake, void *arg)
{
    struct tcp_sink *t = s->priv;

    t->base = base;
    t->wake = wake;
    t->wake_arg = arg;
    for (size_t i = 0; i < t->n; i++) {
        struct tcp_conn *c = &t->conns[i];
        c->rd_ev = event_new(base, -1, 0, conn_read_cb, c);
        c->wr_ev = event_new(base, -1, 0, conn_write_cb, c);
        c->timer = evtimer_new(base, conn_timer_cb, c);
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
        struct tcp_conn *c = &t->conns[i];
        if (c->rd_ev != NULL && c->wr_ev != NULL && c->timer != NULL) {
            conn_close(c);
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

static void
tcp_reopen(struct sl_sink *s)
{
}

static void
tcp_tick(struct sl_sink *s, uint64_t now_ms)
{
}

static void
tcp_close(struct sl_sink *s)
{
    struct tcp_sink *t = s->priv;

    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (t->conns[i].fd >= 0) {
            close(t->conns[i].fd);
        }
    }
    free(t);
    s->priv = NULL;
}

const struct sl_sink_ops sl_sink_tcp_ops = {
    .type = "tcp",
    .open = tcp_open,
    .attach = tcp_attach,
    .detach = tcp_detach,
    .write = tcp_write,
    .flush = tcp_flush,
    .reopen = tcp_reopen,
    .tick = tcp_tick,
    .close = tcp_close,
};
