/*
 * source_tcp — the tcp source type: listeners and connections of one
 * producer thread (struct sl_source_type sl_source_tcp).  unix_stream
 * (source_unix.c) runs on the same connection code: it binds its own
 * socket and starts through sl_source_tcp_start with its peer function.
 *
 * Each producer thread has its own SO_REUSEPORT listening socket per TCP
 * source (the kernel spreads connections), accepts with libevent's
 * evconnlistener, and reads its connections ("clients") itself: one read
 * of up to the read buffer per callback (level-triggered, so a busy
 * connection is called again next turn and connections share the thread
 * fairly).
 *
 * Buffers: bytes are read into the thread's read buffer behind the
 * connection's pending partial line, framed by the source's codec and
 * encoded straight into the lane's chunk; only the tail that is not a
 * whole event yet is copied back to the connection (c->pend, freed when
 * empty, so an idle connection costs its struct and its struct event).
 * When the queue has no space the rest of the read stays in c->pend and
 * the connection is paused (its waiter goes on the thread's list,
 * lane.h); a connection found paused-worthy *before* reading is not read
 * at all, so at most one read's worth is held per connection.
 *
 * TLS (tls = on): the connection's SSL runs on its non-blocking fd in this
 * same event loop and never blocks the thread.  Until the handshake is done
 * the connection's event waits for what OpenSSL wants (read or write) with
 * tls_handshake_timeout as its timeout; then client_recv() replaces read():
 * SSL_read into the same buffer, and when OpenSSL holds decrypted bytes
 * beyond one read (SSL_pending) the event is made active again so they do
 * not wait for the socket.  Failures are counted per reason (util/tls.h)
 * and logged rate-limited.
 *
 * allow: a connection from an address not in the source's allow list is
 * closed in the accept callback, before any read, and counted.
 *
 * Owns: per instance (s->priv, struct tcp_source) the listener, the
 * accept back-off timer and the instance's connections.
 * Thread: the owning producer thread only (start/fini: main, while that
 * thread is not running).
 */
#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/encode.h"
#include "codec/framing.h"
#include "sluice/codec.h"
#include "sluice/config.h"
#include "sluice/producer.h"
#include "sluice/stats.h"
#include "source/lane.h"
#include "source/source_tcp.h"
#include "source/stream.h"
#include "util/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

struct tcp_client {
    TAILQ_ENTRY(tcp_client) link; /* tcp_source.clients */
    struct sl_stream_pause pause; /* its waiter on the thread's list while paused */
    struct sl_source *src;
    int fd;
    struct event *ev;
    char *pend; /* unconsumed bytes: a partial line, or lines refused for space */
    size_t pend_len;
    size_t pend_cap;
    struct sl_frame_state fs;
    bool eof;            /* the peer closed; finish once pend is consumed */
    bool draining;       /* stopping: read until EAGAIN, then close */
    struct sl_peer peer; /* peer.cert: cert below once the handshake is done */
    SSL *ssl;            /* tls = on: owned */
    bool handshaking;    /* the TLS handshake is not done yet */
    int first_byte;      /* the peer's first byte (TLS: 0x16), -1 before it came */
    short watching;      /* EV_READ or EV_WRITE: what c->ev waits for */
    char cert[256];      /* the client certificate's subject (add_fields = peer_cert) */
};

TAILQ_HEAD(tcp_client_list, tcp_client);

/* One tcp source in one producer thread (s->priv). */
struct tcp_source {
    sl_stream_peer_fn peer_fn; /* names a new connection's peer */
    struct evconnlistener *listener;
    struct event *backoff_ev; /* re-enables the listener after EMFILE */
    struct tcp_client_list clients;
    size_t nclients;
};

static struct tcp_source *
tcp_of(const struct sl_source *s)
{
    return s->priv;
}

static void client_read(struct tcp_client *c);

static void
client_close(struct tcp_client *c)
{
    struct sl_source *s = c->src;
    struct tcp_source *t = tcp_of(s);
    if (c->pause.paused) {
        sl_stream_unpause(s, &c->pause);
    }
    TAILQ_REMOVE(&t->clients, c, link);
    t->nclients--;
    sl_stream_leave(s);
    sl_counter_add(&s->stats->conn_closed, 1);
    event_free(c->ev);
    if (c->ssl != NULL) {
        if (!c->handshaking) {
            SSL_shutdown(c->ssl); /* one non-blocking try at close_notify */
        }
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    close(c->fd);
    free(c->pend);
    log_debug("source \"%s\": connection from %s closed", s->cfg->name, c->peer.text);
    free(c);
    sl_lane_idle(s);
}

static void
client_pause(struct tcp_client *c)
{
    sl_stream_pause(c->src, &c->pause, c->ev);
}

static int
client_keep(struct tcp_client *c, const char *buf, size_t len)
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
client_release_pend(struct tcp_client *c)
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
client_consume(struct tcp_client *c, char *buf, size_t len)
{
    struct sl_source *s = c->src;
    struct sl_stream_emit x;
    bool stopped = false;

    sl_stream_emit_begin(&x, s, &c->fs, &c->peer);
    sl_stream_emit_buffer(&x, buf, len);
    size_t used = sl_frame(&c->fs, buf, len, s->cfg->max_line_bytes, sl_stream_line_cb, &x,
                           &stopped);
    if (c->eof && !stopped && (used < len || sl_frame_inside(&c->fs))) {
        /* The peer closed: the bytes after the last event are one, or a
         * cut-off octet-counted frame. */
        if (sl_frame_end(&c->fs, buf + used, len - used, s->cfg->max_line_bytes,
                         sl_stream_line_cb, &x) != 0) {
            stopped = true;
        } else {
            used = len;
        }
    }
    sl_stream_emit_end(&x, &c->fs, c->peer.text);
    if (client_keep(c, buf + used, len - used) < 0) {
        log_warnx("source \"%s\" peer %s: out of memory, closing", s->cfg->name, c->peer.text);
        c->pend_len = 0;
        c->eof = true;
        return true;
    }
    if (stopped) {
        client_pause(c);
        return false;
    }
    client_release_pend(c);
    return true;
}

static int client_arm(struct tcp_client *c);

/* Makes c->ev wait for what (EV_READ or EV_WRITE); -1 when it cannot. */
static int
client_watch(struct tcp_client *c, short what)
{
    if (c->watching == what) {
        return 0;
    }
    event_del(c->ev);
    if (event_assign(c->ev, event_get_base(c->ev), c->fd, what | EV_PERSIST,
                     event_get_callback(c->ev), c) < 0) {
        return -1;
    }
    c->watching = what;
    return client_arm(c);
}

static void
client_tls_failed(struct tcp_client *c, enum sl_tls_reason r, const char *detail)
{
    sl_stream_tls_refused(c->src, c->peer.text, (int)r, detail);
}

/*
 * One step of the server handshake.  Returns 1 when it is done and the
 * peer accepted, 0 when it waits for the socket (c->ev then waits for what
 * OpenSSL wants), -1 when it failed (counted, logged; the caller closes).
 */
static int
client_handshake(struct tcp_client *c)
{
    struct sl_tls *tls = c->src->shared->tls;
    unsigned char b;
    if (c->first_byte < 0 && recv(c->fd, &b, 1, MSG_PEEK) == 1) {
        c->first_byte = b;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaking = false;
        if (!sl_tls_handshake_done(tls, c->ssl)) {
            client_tls_failed(c, SL_TLS_R_NAME, "certificate name not in tls_allowed_names");
            return -1;
        }
        if (c->src->cfg->add_fields & SL_FIELD_PEER_CERT) {
            c->peer.cert = c->cert;
            c->peer.cert_len = sl_tls_peer_subject(c->ssl, c->cert, sizeof(c->cert));
        }
        /* From now on the event waits for reads with idle_timeout. */
        return client_watch(c, EV_READ) < 0 || client_arm(c) < 0 ? -1 : 1;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return client_watch(c, err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) < 0 ? -1 : 0;
    }
    char detail[160];
    sl_tls_failure_detail(c->ssl, detail, sizeof(detail));
    client_tls_failed(c, sl_tls_handshake_failed(tls, c->ssl, err, c->first_byte), detail);
    return -1;
}

/*
 * read(2) for this connection: the peer's bytes (decrypted under TLS).
 * Returns n > 0, 0 at the end (or after a failed handshake), or -1 with
 * errno (EAGAIN: nothing now).
 */
static ssize_t
client_recv(struct tcp_client *c, char *buf, size_t len)
{
    if (c->ssl == NULL) {
        return read(c->fd, buf, len);
    }
    if (c->handshaking) {
        int h = client_handshake(c);
        if (h <= 0) {
            errno = EAGAIN;
            return h < 0 ? 0 : -1;
        }
    }
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0) {
        if (SSL_pending(c->ssl) > 0) {
            event_active(c->ev, EV_READ, 0); /* decrypted bytes wait in OpenSSL */
        }
        if (c->watching != EV_READ && client_watch(c, EV_READ) < 0) {
            c->eof = true;
        }
        return n;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (client_watch(c, err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) < 0) {
            return 0;
        }
        errno = EAGAIN;
        return -1;
    }
    if (err != SSL_ERROR_ZERO_RETURN && err != SSL_ERROR_SYSCALL) {
        char detail[160] = "";
        ERR_error_string_n(ERR_peek_error(), detail, sizeof(detail));
        log_debug("source \"%s\" peer %s: TLS: %s", c->src->cfg->name, c->peer.text, detail);
    }
    ERR_clear_error();
    return 0;
}

static void
client_read(struct tcp_client *c)
{
    struct sl_source *s = c->src;
    struct sl_lane_thread *p = sl_lane_thread(s);

    for (;;) {
        if (c->draining && sl_lane_forced(s)) {
            /* Forced stop: a sender that keeps sending must not hold the
             * thread in this loop; sl_source_tcp_close_all() ends the connection. */
            return;
        }
        if (c->eof) {
            if ((c->pend_len == 0 && !sl_frame_inside(&c->fs)) ||
                client_consume(c, c->pend, c->pend_len)) {
                client_close(c);
            }
            return;
        }
        if (!sl_lane_has_space(s)) {
            client_pause(c);
            return;
        }
        size_t have = c->pend_len;
        if (have > 0) {
            memcpy(p->rbuf, c->pend, have);
        }
        ssize_t n = client_recv(c, p->rbuf + have, p->rbuf_cap - have);
        if (n > 0) {
            sl_counter_add(&s->stats->bytes_in, (uint64_t)n);
            sl_lane_clock(s);
            c->pend_len = 0;
            if (!client_consume(c, p->rbuf, have + (size_t)n)) {
                return;
            }
            if (!c->draining) {
                return;
            }
            continue;
        }
        if (n == 0) {
            c->eof = true;
            sl_lane_clock(s);
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
                if (now < s->drain_until_ms) {
                    uint64_t ms = s->drain_until_ms - now;
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
        log_debug("source \"%s\" peer %s: read: %s", s->cfg->name, c->peer.text,
                  strerror_r(errno, ebuf, sizeof(ebuf)));
        c->eof = true;
    }
}

static void
client_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_client *c = arg;
    if ((what & EV_TIMEOUT) && c->handshaking) {
        sl_tls_count(c->src->shared->tls, SL_TLS_R_TIMEOUT);
        client_tls_failed(c, SL_TLS_R_TIMEOUT, "no handshake within tls_handshake_timeout");
        c->eof = true;
    } else if ((what & EV_TIMEOUT) && c->draining) {
        c->eof = true; /* the drain grace is over */
    } else if (what & EV_TIMEOUT) {
        sl_counter_add(&c->src->stats->conn_idle_closed, 1);
        log_debug("source \"%s\" peer %s: idle, closing", c->src->cfg->name, c->peer.text);
        c->eof = true;
    }
    client_read(c);
}

static int
client_arm(struct tcp_client *c)
{
    const struct sl_source_tcp_config *tc = sl_source_tcp_config(c->src->cfg);
    return sl_stream_arm(c->ev, c->handshaking ? tc->tls.handshake_timeout_ms : tc->idle_timeout_ms);
}

/* The queue has room again (the producer took c off the waiters). */
static void
client_resume_cb(struct sl_waiter *w)
{
    struct tcp_client *c =
        (struct tcp_client *)(void *)((char *)w - offsetof(struct tcp_client, pause.wait));
    sl_stream_unpause(c->src, &c->pause);
    if (c->pend_len > 0 && !c->eof) {
        sl_lane_clock(c->src);
        if (!client_consume(c, c->pend, c->pend_len)) {
            return; /* paused again, now at the tail */
        }
    }
    if (c->eof || c->draining) {
        client_read(c); /* may close c */
    } else if (client_arm(c) < 0) {
        c->eof = true;
        client_read(c);
    }
}

static void
client_new(struct sl_source *s, int fd, const struct sockaddr *sa)
{
    struct tcp_source *t = tcp_of(s);
    struct sl_lane_thread *p = sl_lane_thread(s);
    if (!sl_stream_allowed(s, sa)) {
        close(fd);
        return;
    }
    if (!sl_stream_admit(s, sl_source_tcp_config(s->cfg)->max_connections)) {
        close(fd);
        return;
    }
    struct tcp_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto err;
    }
    c->src = s;
    c->fd = fd;
    c->pause.wait.resume_cb = client_resume_cb;
    c->first_byte = -1;
    c->watching = EV_READ;
    sl_frame_init(&c->fs, sl_source_tcp_config(s->cfg)->framing, s->codec);
    tcp_of(s)->peer_fn(fd, sa, &c->peer);
    if (s->shared->tls != NULL) {
        c->ssl = sl_tls_ssl_new(s->shared->tls, NULL);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
            goto err;
        }
        c->handshaking = true;
    }
    c->ev = event_new(p->base, fd, EV_READ | EV_PERSIST, client_event_cb, c);
    if (c->ev == NULL || client_arm(c) < 0) {
        goto err;
    }
    TAILQ_INSERT_TAIL(&t->clients, c, link);
    t->nclients++;
    sl_counter_add(&s->stats->conn_accepted, 1);
    log_debug("source \"%s\": connection from %s", s->cfg->name, c->peer.text);
    if (s->stopping) {
        c->draining = true;
        client_read(c);
    }
    return;
err:
    log_warnx("source \"%s\": out of memory accepting a connection", s->cfg->name);
    sl_stream_leave(s);
    if (c != NULL && c->ev != NULL) {
        event_free(c->ev);
    }
    if (c != NULL && c->ssl != NULL) {
        SSL_free(c->ssl);
    }
    free(c);
    close(fd);
}

static void
tcp_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    client_new(arg, fd, sa);
}

static void
tcp_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_source *s = arg;
    struct tcp_source *t = tcp_of(s);
    if (t->listener != NULL && !s->stopping) {
        evconnlistener_enable(t->listener);
    }
}

static void
tcp_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct sl_source *s = arg;
    int err = errno;
    uint64_t sup = 0;
    sl_counter_add(&s->stats->accept_errors, 1);
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment instead of
         * spinning on a listener that stays readable. */
        evconnlistener_disable(l);
        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
        event_add(tcp_of(s)->backoff_ev, &tv);
    }
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        errno = err;
        log_warn("source \"%s\": accept", s->cfg->name);
    }
}

static int
tcp_bind(const struct sl_source_config *cfg, struct sl_source_shared *shared)
{
    return sl_source_bind_inet(cfg, SOCK_STREAM);
}

static void
tcp_peer(int fd, const struct sockaddr *sa, struct sl_peer *peer)
{
    sl_peer_from_addr(peer, sa);
}

int
sl_source_tcp_start(struct sl_source *s, sl_stream_peer_fn peer_fn)
{
    struct event_base *base = sl_lane_thread(s)->base;
    struct tcp_source *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -1;
    }
    TAILQ_INIT(&t->clients);
    t->peer_fn = peer_fn;
    s->priv = t;
    t->backoff_ev = evtimer_new(base, tcp_backoff_cb, s);
    /* backlog 0: the socket is already listening (the type's bind). */
    t->listener = evconnlistener_new(base, tcp_accept_cb, s, LEV_OPT_CLOSE_ON_EXEC, 0, s->fd);
    if (t->backoff_ev == NULL || t->listener == NULL) {
        return -1;
    }
    evconnlistener_set_error_cb(t->listener, tcp_accept_error_cb);
    return 0;
}

static void
tcp_listener_close(struct tcp_source *t)
{
    if (t->listener != NULL) {
        evconnlistener_free(t->listener);
        t->listener = NULL;
    }
    if (t->backoff_ev != NULL) {
        event_free(t->backoff_ev);
        t->backoff_ev = NULL;
    }
}

/* Stop: accept the backlog, then read every connection until EAGAIN. */
void
sl_source_tcp_stop_begin(struct sl_source *s)
{
    struct tcp_source *t = tcp_of(s);
    /* Accept what is already in the backlog: those clients may have sent
     * everything and closed already.  Not for a socket from systemd: it
     * outlives us, and its backlog is for the next instance (accepting it
     * now would close connections whose data has not arrived yet). */
    if (t->listener != NULL) {
        evconnlistener_disable(t->listener);
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
            client_new(s, fd, (struct sockaddr *)&ss);
        }
        tcp_listener_close(t);
        close(s->fd);
        s->fd = -1;
    }
    /* Read every connection until EAGAIN, then close it. */
    struct tcp_client *c = TAILQ_FIRST(&t->clients);
    while (c != NULL) {
        struct tcp_client *next = TAILQ_NEXT(c, link);
        if (!c->draining) {
            c->draining = true;
            if (!c->pause.paused) {
                client_read(c);
            }
        }
        c = next;
    }
}

bool
sl_source_tcp_idle(const struct sl_source *s)
{
    return tcp_of(s) == NULL || tcp_of(s)->nclients == 0;
}

uint64_t
sl_source_tcp_close_all(struct sl_source *s)
{
    struct tcp_source *t = tcp_of(s);
    struct tcp_client *c;
    struct tcp_client *next;
    uint64_t lost = 0;
    /* client_close() unlinks and frees only c. */
    for (c = TAILQ_FIRST(&t->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        lost += c->pend_len;
        client_close(c);
    }
    return lost;
}

void
sl_source_tcp_fini(struct sl_source *s)
{
    struct tcp_source *t = tcp_of(s);
    if (t == NULL) {
        return;
    }
    (void)sl_source_tcp_close_all(s);
    tcp_listener_close(t);
    free(t);
    s->priv = NULL;
}

static int
tcp_start(struct sl_source *s)
{
    return sl_source_tcp_start(s, tcp_peer);
}

const struct sl_source_type sl_source_tcp = {
    .name = "tcp",
    .label = "TCP",
    .socktype = SOCK_STREAM,
    .bind = tcp_bind,
    .start = tcp_start,
    .stop_begin = sl_source_tcp_stop_begin,
    .idle = sl_source_tcp_idle,
    .close_all = sl_source_tcp_close_all,
    .fini = sl_source_tcp_fini,
};
