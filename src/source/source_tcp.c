/*
 * source_tcp — TCP listeners and connections of one producer thread.
 *
 * Each producer thread has its own SO_REUSEPORT listening socket per TCP
 * source (the kernel spreads connections), accepts with libevent's
 * evconnlistener, and reads its connections itself: one read of up to
 * the read buffer per callback (level-triggered, so a busy connection is
 * called again next turn and connections share the thread fairly).
 *
 * Buffers: bytes are read into the thread's read buffer behind the
 * connection's pending partial line, framed and encoded straight into the
 * lane's chunk; only the tail that is not a whole line yet is copied back
 * to the connection (c->pend, freed when empty, so an idle connection
 * costs its struct and its struct event).  When the queue has no space the
 * rest of the read stays in c->pend and the connection is paused; a
 * connection found paused-worthy *before* reading is not read at all, so
 * at most one read's worth is held per connection.
 *
 * Thread: the owning producer thread only.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/framing.h"
#include "sluice/producer.h"

struct tcp_conn {
    TAILQ_ENTRY(tcp_conn) link;  /* p->conns */
    TAILQ_ENTRY(tcp_conn) plink; /* p->paused, when paused */
    struct sl_source_inst *src;
    int fd;
    struct event *ev;
    char *pend; /* unconsumed bytes: a partial line, or lines refused for space */
    size_t pend_len;
    size_t pend_cap;
    struct sl_frame_state fs;
    bool paused;
    uint64_t paused_at_ms; /* CLOCK_MONOTONIC, while paused */
    bool eof;      /* the peer closed; finish once pend is consumed */
    bool draining; /* stopping: read until EAGAIN, then close */
    char peer[64];
    size_t peer_len;
};

struct conn_ctx {
    struct tcp_conn *c;
    struct sl_tally tally;
    const char *fields;
    size_t flen;
};

static void conn_read(struct tcp_conn *c);

/* Ends a pause: takes c off the paused list and accounts the time. */
static void
conn_unpause(struct tcp_conn *c)
{
    struct sl_source_inst *s = c->src;
    TAILQ_REMOVE(&s->p->paused, c, plink);
    c->paused = false;
    sl_counter_add(&s->stats->resumes, 1);
    sl_counter_add(&s->stats->paused_ns, (sl_now_ms() - c->paused_at_ms) * 1000000u);
}

static void
conn_close(struct tcp_conn *c)
{
    struct sl_source_inst *s = c->src;
    struct sl_producer *p = s->p;
    if (c->paused) {
        conn_unpause(c);
    }
    TAILQ_REMOVE(&p->conns, c, link);
    p->nconns--;
    atomic_fetch_sub_explicit(&s->shared->conns, 1, memory_order_relaxed);
    sl_counter_add(&s->stats->conn_closed, 1);
    event_free(c->ev);
    close(c->fd);
    free(c->pend);
    log_debug("source \"%s\": connection from %s closed", s->cfg->name, c->peer);
    free(c);
    sl_producer_conn_gone(p);
}

static int
conn_line_cb(void *arg, const char *line, size_t len)
{
    struct conn_ctx *x = arg;
    struct sl_source_inst *s = x->c->src;
    enum sl_emit e =
        sl_producer_emit(s->p, s, line, len, x->fields, x->flen, SL_ACQUIRE_TCP, &x->tally);
    return e == SL_EMIT_NO_SPACE;
}

static void
conn_pause(struct tcp_conn *c)
{
    struct sl_producer *p = c->src->p;
    if (!c->paused) {
        c->paused = true;
        c->paused_at_ms = sl_now_ms();
        event_del(c->ev);
        TAILQ_INSERT_TAIL(&p->paused, c, plink);
        sl_counter_add(&c->src->stats->pauses, 1);
    }
    sl_producer_wait_space(p, c->src);
}

static int
conn_keep(struct tcp_conn *c, const char *buf, size_t len)
{
    if (len == 0) {
        c->pend_len = 0;
        return 0;
    }
    if (c->pend != NULL && buf >= c->pend && buf <= c->pend + c->pend_cap) {
        memmove(c->pend, buf, len);
        c->pend_len = len;
        return 0;
    }
    if (c->pend == NULL || len > c->pend_cap) {
        size_t cap = len > c->pend_cap ? len : c->pend_cap;
        char *n = realloc(c->pend, cap);
        if (n == NULL) {
            return -1;
        }
        c->pend = n;
        c->pend_cap = cap;
    }
    memcpy(c->pend, buf, len);
    c->pend_len = len;
    return 0;
}

static void
conn_release_pend(struct tcp_conn *c)
{
    /* Keep small buffers for the next partial line; give big ones back. */
    if (c->pend_len == 0 && c->pend_cap > 4096) {
        free(c->pend);
        c->pend = NULL;
        c->pend_cap = 0;
    }
}

/*
 * Frames and encodes buf[0..len) (which may be c->pend itself); keeps the
 * rest in c->pend.  Returns false when it paused the connection.
 */
static bool
conn_consume(struct tcp_conn *c, const char *buf, size_t len)
{
    struct sl_source_inst *s = c->src;
    struct sl_producer *p = s->p;
    char fields[SL_FIELDS_MAX];
    struct conn_ctx x = {.c = c, .fields = fields};
    bool stopped = false;
    uint64_t over0 = c->fs.oversize;

    x.flen = sl_producer_fields(p, s, c->peer, c->peer_len, fields);
    size_t used =
        sl_frame_lines(&c->fs, buf, len, s->cfg->max_line_bytes, conn_line_cb, &x, &stopped);
    if (c->eof && !stopped && used < len) {
        /* The peer closed: the bytes after the last newline are an event. */
        if (sl_frame_finish(&c->fs, buf + used, len - used, s->cfg->max_line_bytes, conn_line_cb,
                            &x) != 0) {
            stopped = true;
        } else {
            used = len;
        }
    }
    sl_counter_add(&s->stats->events_in, x.tally.events);
    sl_counter_add(&s->stats->invalid, x.tally.invalid);
    sl_counter_add(&s->stats->oversize, x.tally.too_large + (c->fs.oversize - over0));
    sl_producer_report(s, c->peer, &x.tally, c->fs.oversize - over0);
    if (conn_keep(c, buf + used, len - used) < 0) {
        log_warnx("source \"%s\" peer %s: out of memory, closing", s->cfg->name, c->peer);
        c->pend_len = 0;
        c->eof = true;
        return true;
    }
    if (stopped) {
        conn_pause(c);
        return false;
    }
    conn_release_pend(c);
    return true;
}

static void
conn_read(struct tcp_conn *c)
{
    struct sl_source_inst *s = c->src;
    struct sl_producer *p = s->p;

    for (;;) {
        if (c->draining && atomic_load_explicit(&p->stop, memory_order_relaxed) == 2) {
            /* Forced stop: a sender that keeps sending must not hold the
             * thread in this loop; sl_tcp_close_all() ends the connection. */
            return;
        }
        if (c->eof) {
            if (c->pend_len == 0 || conn_consume(c, c->pend, c->pend_len)) {
                conn_close(c);
            }
            return;
        }
        if (!sl_producer_has_space(p, s)) {
            conn_pause(c);
            return;
        }
        size_t have = c->pend_len;
        if (have > 0) {
            memcpy(p->rbuf, c->pend, have);
        }
        ssize_t n = read(c->fd, p->rbuf + have, p->rbuf_cap - have);
        if (n > 0) {
            sl_counter_add(&s->stats->bytes_in, (uint64_t)n);
            sl_producer_clock(p);
            c->pend_len = 0;
            if (!conn_consume(c, p->rbuf, have + (size_t)n)) {
                return;
            }
            if (!c->draining) {
                return;
            }
            continue;
        }
        if (n == 0) {
            c->eof = true;
            sl_producer_clock(p);
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->draining) {
                /* Stopping: what the kernel had is read.  Wait for more
                 * (or EOF) until the drain grace ends, then end the tail
                 * after the last newline as at EOF. */
                uint64_t now = sl_now_ms();
                if (now < p->drain_until_ms) {
                    uint64_t ms = p->drain_until_ms - now;
                    struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)ms * 1000};
                    if (event_add(c->ev, &tv) == 0) {
                        return;
                    }
                }
                c->eof = true;
                continue;
            }
            return;
        }
        char ebuf[128];
        log_debug("source \"%s\" peer %s: read: %s", s->cfg->name, c->peer,
                  strerror_r(errno, ebuf, sizeof(ebuf)));
        c->eof = true;
    }
}

static void
conn_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_conn *c = arg;
    if ((what & EV_TIMEOUT) && c->draining) {
        c->eof = true; /* the drain grace is over */
    } else if (what & EV_TIMEOUT) {
        sl_counter_add(&c->src->stats->conn_idle_closed, 1);
        log_debug("source \"%s\" peer %s: idle, closing", c->src->cfg->name, c->peer);
        c->eof = true;
    }
    conn_read(c);
}

static int
conn_arm(struct tcp_conn *c)
{
    uint64_t ms = c->src->cfg->idle_timeout_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return event_add(c->ev, ms > 0 ? &tv : NULL);
}

static void
conn_new(struct sl_source_inst *s, int fd, const struct sockaddr *sa)
{
    struct sl_producer *p = s->p;
    unsigned n = atomic_fetch_add_explicit(&s->shared->conns, 1, memory_order_relaxed);
    if (n >= s->cfg->max_connections) {
        atomic_fetch_sub_explicit(&s->shared->conns, 1, memory_order_relaxed);
        sl_counter_add(&s->stats->conn_rejected, 1);
        uint64_t sup = 0;
        if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
            log_warnx("source \"%s\": max_connections (%u) reached, refusing connections",
                      s->cfg->name, s->cfg->max_connections);
        }
        close(fd);
        return;
    }
    struct tcp_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto err;
    }
    c->src = s;
    c->fd = fd;
    c->peer_len = sl_encode_sockaddr(sa, c->peer, sizeof(c->peer));
    c->ev = event_new(p->base, fd, EV_READ | EV_PERSIST, conn_event_cb, c);
    if (c->ev == NULL || conn_arm(c) < 0) {
        goto err;
    }
    TAILQ_INSERT_TAIL(&p->conns, c, link);
    p->nconns++;
    sl_counter_add(&s->stats->conn_accepted, 1);
    log_debug("source \"%s\": connection from %s", s->cfg->name, c->peer);
    if (p->stopping) {
        c->draining = true;
        conn_read(c);
    }
    return;
err:
    log_warnx("source \"%s\": out of memory accepting a connection", s->cfg->name);
    atomic_fetch_sub_explicit(&s->shared->conns, 1, memory_order_relaxed);
    if (c != NULL && c->ev != NULL) {
        event_free(c->ev);
    }
    free(c);
    close(fd);
}

static void
tcp_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    conn_new(arg, fd, sa);
}

static void
tcp_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_source_inst *s = arg;
    if (s->listener != NULL && !s->p->stopping) {
        evconnlistener_enable(s->listener);
    }
}

static void
tcp_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct sl_source_inst *s = arg;
    int err = errno;
    uint64_t sup = 0;
    sl_counter_add(&s->stats->accept_errors, 1);
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment instead of
         * spinning on a listener that stays readable. */
        evconnlistener_disable(l);
        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
        event_add(s->backoff_ev, &tv);
    }
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        errno = err;
        log_warn("source \"%s\": accept", s->cfg->name);
    }
}

int
sl_tcp_inst_init(struct sl_source_inst *s)
{
    struct sl_producer *p = s->p;
    s->backoff_ev = evtimer_new(p->base, tcp_backoff_cb, s);
    /* backlog 0: the socket is already listening (sl_source_bind). */
    s->listener = evconnlistener_new(p->base, tcp_accept_cb, s, LEV_OPT_CLOSE_ON_EXEC, 0, s->fd);
    if (s->backoff_ev == NULL || s->listener == NULL) {
        return -1;
    }
    evconnlistener_set_error_cb(s->listener, tcp_accept_error_cb);
    return 0;
}

void
sl_tcp_inst_fini(struct sl_source_inst *s)
{
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    if (s->backoff_ev != NULL) {
        event_free(s->backoff_ev);
        s->backoff_ev = NULL;
    }
}

void
sl_tcp_begin_stop(struct sl_source_inst *s)
{
    struct sl_producer *p = s->p;
    /* Accept what is already in the backlog: those clients may have sent
     * everything and closed already.  Not for a socket from systemd: it
     * outlives us, and its backlog is for the next instance (accepting it
     * now would close connections whose data has not arrived yet). */
    if (s->listener != NULL) {
        evconnlistener_disable(s->listener);
        for (; !s->shared->activated;) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) {
                    continue;
                }
                break;
            }
            conn_new(s, fd, (struct sockaddr *)&ss);
        }
        sl_tcp_inst_fini(s);
        close(s->fd);
        s->fd = -1;
    }
    /* Read every connection of this source until EAGAIN, then close it. */
    struct tcp_conn *c = TAILQ_FIRST(&p->conns);
    while (c != NULL) {
        struct tcp_conn *next = TAILQ_NEXT(c, link);
        if (c->src == s && !c->draining) {
            c->draining = true;
            if (!c->paused) {
                conn_read(c);
            }
        }
        c = next;
    }
}

void
sl_tcp_resume_paused(struct sl_producer *p)
{
    /* Walk the whole list once: a connection whose queue is still full must
     * not hold back one whose queue has room (one queue cannot starve
     * another).  Order is kept within each queue: a connection is skipped
     * only when its own queue has no space.  One that pauses again goes to
     * the tail and is not revisited in this walk. */
    size_t n = 0;
    struct tcp_conn *c;
    TAILQ_FOREACH (c, &p->paused, plink) {
        n++;
    }
    struct tcp_conn *blocked = NULL;
    c = TAILQ_FIRST(&p->paused);
    for (size_t i = 0; i < n && c != NULL; i++) {
        struct tcp_conn *next = TAILQ_NEXT(c, plink);
        if (!sl_producer_has_space(p, c->src)) {
            if (blocked == NULL) {
                blocked = c;
            }
            c = next;
            continue;
        }
        conn_unpause(c);
        if (c->pend_len > 0 && !c->eof) {
            sl_producer_clock(p);
            if (!conn_consume(c, c->pend, c->pend_len)) {
                c = next; /* paused again, now at the tail */
                continue;
            }
        }
        if (c->eof || c->draining) {
            conn_read(c); /* may close c; next is still linked */
        } else if (conn_arm(c) < 0) {
            c->eof = true;
            conn_read(c);
        }
        c = next;
    }
    if (blocked != NULL) {
        /* Announce and re-check (wake.h); the re-check covers every queue
         * a paused connection still waits for. */
        sl_producer_wait_space(p, blocked->src);
        TAILQ_FOREACH (c, &p->paused, plink) {
            if (sl_producer_has_space(p, c->src)) {
                sl_wake_cancel(&p->wake);
                event_active(p->wake_ev, EV_READ, 0);
                break;
            }
        }
    }
}

void
sl_tcp_close_all(struct sl_producer *p)
{
    struct tcp_conn *c;
    struct tcp_conn *next;
    /* conn_close() unlinks and frees only c. */
    for (c = TAILQ_FIRST(&p->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        p->lost_at_stop += c->pend_len;
        conn_close(c);
    }
}
