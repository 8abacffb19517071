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
 * at all, so at most one read's worth is held per connection.  Verbatim
 * json reads straight into the lane's chunk instead of the read buffer
 * (THE DIRECT READ below).
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
 * Connections move between producer threads ("THE SPREAD" below): while
 * the source is slow they are gathered on thread 0, so one wake-up reads
 * several connections' sends; a thread that reads much more than another
 * hands one connection over.
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/encode.h"
#include "codec/framing.h"
#include "sluice/clock.h"
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
    unsigned direct_skip; /* reads to make the ordinary way (THE DIRECT READ) */
    bool draining;       /* stopping: read until EAGAIN, then close */
    struct sl_peer peer; /* peer.cert: cert below once the handshake is done */
    SSL *ssl;            /* tls = on: owned */
    bool handshaking;    /* the TLS handshake is not done yet */
    int first_byte;      /* the peer's first byte (TLS: 0x16), -1 before it came */
    short watching;      /* EV_READ or EV_WRITE: what c->ev waits for */
    uint64_t win_bytes;  /* read in the spread window win_epoch (THE SPREAD) */
    uint64_t win_epoch;
    char cert[256]; /* the client certificate's subject (add_fields = peer_cert) */
};

TAILQ_HEAD(tcp_client_list, tcp_client);

/* One tcp source in one producer thread (s->priv). */
struct tcp_source {
    sl_stream_peer_fn peer_fn; /* names a new connection's peer */
    struct evconnlistener *listener;
    struct event *backoff_ev; /* re-enables the listener after EMFILE */
    struct tcp_client_list clients;
    size_t nclients;
    struct tcp_spread *spread; /* the source's, shared with every thread (THE SPREAD) */
    unsigned id;               /* this thread's slot in it */
    int inbox_fd;              /* eventfd: connections handed to this thread */
    struct event *inbox_ev;
    uint64_t win_start_ns; /* the spread window: since when, bytes read, which one */
    uint64_t win_bytes;
    uint64_t win_epoch;
    bool split_asked; /* the last window would have split */
};

static struct tcp_source *
tcp_of(const struct sl_source *s)
{
    return s->priv;
}

static void client_read(struct tcp_client *c);
static void tcp_spread_note(struct tcp_client *c, size_t n);

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

/* Keeps rest[0..n), what a read left unconsumed, in c->pend, and pauses
 * c when framing stopped for space.  Returns false when it paused c. */
static bool
client_keep_rest(struct tcp_client *c, const char *rest, size_t n, bool stopped)
{
    if (client_keep(c, rest, n) < 0) {
        log_warnx("source \"%s\" peer %s: out of memory, closing", c->src->cfg->name,
                  c->peer.text);
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
    return client_keep_rest(c, buf + used, len - used, stopped);
}

/*
 * THE DIRECT READ.  For verbatim events (sl_stream_verbatim: the json
 * codec without add_fields, the default) under newline framing on a plain
 * connection, a read goes straight into the free room of the lane's chunk
 * (behind the connection's partial line, copied there as it would be into
 * the read buffer) and is framed and validated there: a run of valid
 * lines is then already where the chunk wants it, and sl_lane_append()
 * only advances the chunk's length over it.  What it saves is the run's
 * copy from the read buffer into the chunk (64 of ~680 producer
 * instructions per 64-byte event; bench/results/analysis.md, "direct").
 * The first line the run path does not take (invalid, or ended by "\r\n";
 * in a direct read every line offered has its '\n' and fits the chunk)
 * stops the framing there (the run before it is in the chunk); the rest
 * of the read is copied to the read buffer and framed the ordinary way
 * (client_consume), so such a line is counted, logged, refused for space
 * and paused on exactly as before.  The partial line at the end goes to
 * c->pend as it does from the read buffer.  Only when the chunk has
 * DIRECT_MIN_ROOM free (a chunk at least half full with less is pushed
 * first when another can be had): a smaller read would cost a read(2)
 * more per chunk.  TLS (SSL_read) and octet counting read the ordinary
 * way; unix_stream connections share this code and read directly too.
 */
#define DIRECT_MIN_ROOM (32 * 1024)
/* A read cut before its middle (a stream of '\r\n' lines, say, or one with
 * an invalid line every few dozen) paid a copy more than the ordinary read
 * for most of its bytes: the connection's next DIRECT_SKIP reads go the
 * ordinary way, so such a stream pays it on one read in 17. */
#define DIRECT_SKIP 16

/* The free room of the lane's chunk to read into, *cap bytes at most (the
 * read buffer's size), or NULL: read the ordinary way.  have: the partial
 * line copied in first. */
static char *
client_direct_buf(struct tcp_client *c, size_t have, size_t *cap)
{
    struct sl_source *s = c->src;
    size_t room = 0;
    if (c->ssl != NULL || c->fs.mode != SL_FRAMING_LF || !sl_stream_verbatim(s)) {
        return NULL;
    }
    if (c->direct_skip > 0) {
        c->direct_skip--;
        return NULL;
    }
    char *buf = sl_lane_direct(s, have + DIRECT_MIN_ROOM, &room);
    if (buf != NULL && room < *cap) {
        *cap = room;
    }
    return buf;
}

/*
 * client_consume() for buf[0..len) in the lane's chunk (THE DIRECT READ):
 * the valid runs go into the chunk in place; from the first line they
 * cannot, the rest goes through the read buffer.
 */
static bool
client_consume_direct(struct tcp_client *c, char *buf, size_t len)
{
    struct sl_source *s = c->src;
    struct sl_lane_thread *p = sl_lane_thread(s);
    struct sl_stream_emit x;
    bool stopped = false;
    size_t used = 0;

    sl_stream_emit_begin(&x, s, &c->fs, &c->peer);
    if (sl_stream_emit_direct(&x, buf, len)) {
        used = sl_frame(&c->fs, buf, len, s->cfg->max_line_bytes, sl_stream_line_cb, &x,
                        &stopped);
    }
    sl_stream_emit_end(&x, &c->fs, c->peer.text);
    if (!x.direct || x.cut || c->eof) {
        if (used < len / 2) {
            /* Most of the read is copied again below: the next reads go
             * the ordinary way (DIRECT_SKIP). */
            c->direct_skip = DIRECT_SKIP;
        }
        memcpy(p->rbuf, buf + used, len - used); /* before the chunk may go back */
        sl_lane_direct_done(s);
        return client_consume(c, p->rbuf, len - used);
    }
    /* The partial line is copied out before an empty chunk goes back to
     * the queue (another thread may take it at once). */
    bool go = client_keep_rest(c, buf + used, len - used, false);
    sl_lane_direct_done(s);
    return go;
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
        size_t cap = p->rbuf_cap;
        char *buf = client_direct_buf(c, have, &cap);
        bool direct = buf != NULL;
        if (!direct) {
            buf = p->rbuf;
        }
        if (have > 0) {
            memcpy(buf, c->pend, have);
        }
        ssize_t n = client_recv(c, buf + have, cap - have);
        if (n > 0) {
            sl_counter_add(&s->stats->bytes_in, (uint64_t)n);
            sl_lane_clock(s);
            c->pend_len = 0;
            if (!(direct ? client_consume_direct(c, buf, have + (size_t)n)
                         : client_consume(c, buf, have + (size_t)n))) {
                return;
            }
            if (!c->draining) {
                tcp_spread_note(c, (size_t)n); /* may hand c over: not touched after */
                return;
            }
            continue;
        }
        if (direct) {
            sl_lane_direct_done(s); /* nothing read into it */
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

/*
 * THE SPREAD: which producer thread reads which connection.
 *
 * The kernel spreads new connections over the threads' SO_REUSEPORT
 * listeners by address hash.  At a low rate that costs wake-ups: every
 * send wakes the thread its connection landed on, so two threads holding
 * two busy connections each both wake for one round of sends, where one
 * thread would wake once and read all four (on the 2-vCPU test VM a
 * sleep/wake costs ~30-60 us of CPU; validating a 230-byte event < 0.1
 * us).  At full speed one thread cannot read everything, so there the
 * connections must be spread.
 *
 * Each thread counts the bytes it reads in windows of about
 * SPREAD_WINDOW_MS (ended by a read: an idle thread has no timer) and
 * publishes its rate in the source's struct tcp_spread.  At the end of a
 * window:
 *   - gather: a thread other than 0, while the whole source (every
 *     thread's rate of the last 3 windows, summed) reads less than
 *     SPREAD_GATHER_BPS, hands all its connections to thread 0;
 *   - split: a thread reading more than SPREAD_SPLIT_BPS hands its least
 *     active connection (of those read in the window) to the thread
 *     reading the least, if that one reads less than half as much, the
 *     move at least halves the difference and the window before asked for
 *     it too: 4+0 connections at equal rates become 3+1, then 2+2, and
 *     stay there (without the last two rules the noisy rates of a shared
 *     machine flipped 2+2 to 3+1 and back).
 * GATHER < SPLIT: a thread that gathered a source never splits it again at
 * the rate that gathered it.  Measured (bench/results/analysis.md,
 * "connections gathered on one producer thread", session 6; interleaved
 * runs at load 8-10): at 100 k events/s of 230 B on 4 connections the
 * wake-ups per event halved (0.21-0.26 -> 0.09-0.12) and the CPU per event
 * fell to 0.58-0.83x of before; at 10 k/s the CPU per event 0.59-0.86x.
 *
 * A hand-over (tcp_spread_move, on the giving thread): the lane's chunk is
 * pushed first (sl_lane_seal), so every event read from the connection so
 * far is in the queue before the taker can read more: the connection's
 * order holds.  Under mu the connection leaves the giver's list and
 * event_base, goes on the taker's inbox, and the taker's eventfd is
 * written; the taker adopts it (tcp_inbox_cb): its event on the taker's
 * base, the idle timeout re-armed.  Only a connection between reads
 * moves: not paused, not in its TLS handshake, not at EOF, not draining;
 * its partial line (pend), framing state and TLS session go with it.  An
 * instance closes its slot before it stops (stop_begin, close_all, fini:
 * tcp_spread_close takes what its inbox holds; from then on no one hands
 * it more).
 *
 * SLUICE_TEST_SPREAD="GATHER_BPS,SPLIT_BPS,WINDOW_MS" replaces the three
 * constants (tests only: tests/integration/check_spread.c).
 */
#define SPREAD_WINDOW_MS 100
#define SPREAD_GATHER_BPS (32ull << 20)
#define SPREAD_SPLIT_BPS (64ull << 20)

struct tcp_spread_slot {
    struct tcp_source *t;         /* under mu: the thread's instance; NULL: closed */
    struct tcp_client_list inbox; /* under mu: handed to it, not adopted yet */
    _Atomic uint64_t rate;        /* bytes/s read in its last window */
    _Atomic uint64_t rate_at_ns;  /* when that window ended (monotonic); 0: never */
};

/* A tcp source's state for all its threads (s->shared->type_state). */
struct tcp_spread {
    pthread_mutex_t mu;
    unsigned refs; /* instances that use it: under spread_mu */
    uint64_t gather_bps;
    uint64_t split_bps;
    uint64_t window_ns;
    unsigned nslots; /* producer threads */
    struct tcp_spread_slot slot[];
};

/* Guards the creation of a source's tcp_spread and its refs. */
static pthread_mutex_t spread_mu = PTHREAD_MUTEX_INITIALIZER;

static void tcp_inbox_cb(evutil_socket_t fd, short what, void *arg);

/* Whether c may move now (THE SPREAD): between reads, nothing pending. */
static bool
client_movable(const struct tcp_client *c)
{
    return !c->pause.paused && !c->eof && !c->draining && !c->handshaking &&
           c->watching == EV_READ && !c->src->stopping;
}

/* Takes c (from another thread's instance) into s; s's thread. */
static void
tcp_adopt(struct sl_source *s, struct tcp_client *c)
{
    struct tcp_source *t = tcp_of(s);
    c->src = s;
    TAILQ_INSERT_TAIL(&t->clients, c, link);
    t->nclients++;
    sl_counter_add(&s->stats->conn_moved_in, 1);
    if (event_assign(c->ev, sl_lane_thread(s)->base, c->fd, EV_READ | EV_PERSIST, client_event_cb,
                     c) < 0 ||
        client_arm(c) < 0) {
        c->eof = true;
        client_read(c); /* may close c */
        return;
    }
    if (s->stopping) {
        c->draining = true;
        client_read(c);
    } else if (c->ssl != NULL && SSL_pending(c->ssl) > 0) {
        event_active(c->ev, EV_READ, 0); /* decrypted bytes wait in OpenSSL */
    }
}

/* The connections other threads handed to this one: adopt them. */
static void
tcp_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_source *s = arg;
    struct tcp_source *t = tcp_of(s);
    struct tcp_client_list got = TAILQ_HEAD_INITIALIZER(got);
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
    pthread_mutex_lock(&t->spread->mu);
    TAILQ_CONCAT(&got, &t->spread->slot[t->id].inbox, link);
    pthread_mutex_unlock(&t->spread->mu);
    struct tcp_client *c;
    while ((c = TAILQ_FIRST(&got)) != NULL) {
        TAILQ_REMOVE(&got, c, link);
        tcp_adopt(s, c);
    }
}

/*
 * Hands c to thread to (THE SPREAD); s's thread.  Returns whether it went:
 * not when c is not movable or that thread's slot is closed.  c is the
 * other thread's from then on: not to be touched.
 */
static bool
tcp_spread_move(struct sl_source *s, struct tcp_client *c, unsigned to)
{
    struct tcp_source *t = tcp_of(s);
    struct tcp_spread *sp = t->spread;
    struct tcp_spread_slot *dst = &sp->slot[to];
    uint64_t one = 1;
    if (!client_movable(c)) {
        return false;
    }
    sl_lane_seal(s); /* c's events read so far enter the queue first */
    pthread_mutex_lock(&sp->mu);
    if (dst->t == NULL) {
        pthread_mutex_unlock(&sp->mu);
        return false;
    }
    event_del(c->ev);
    TAILQ_REMOVE(&t->clients, c, link);
    t->nclients--;
    TAILQ_INSERT_TAIL(&dst->inbox, c, link);
    /* Under mu: the taker closes its eventfd only after its slot. */
    (void)!write(dst->t->inbox_fd, &one, sizeof(one));
    pthread_mutex_unlock(&sp->mu);
    sl_counter_add(&s->stats->conn_moved_out, 1);
    return true;
}

/* The end of this thread's window: publish its rate, gather or split. */
static void
tcp_spread_tick(struct sl_source *s, uint64_t now)
{
    struct tcp_source *t = tcp_of(s);
    struct tcp_spread *sp = t->spread;
    uint64_t rate = (uint64_t)((double)t->win_bytes * 1e9 / (double)(now - t->win_start_ns));
    uint64_t total = 0;
    uint64_t low = UINT64_MAX;
    unsigned low_id = t->id;
    atomic_store_explicit(&sp->slot[t->id].rate, rate, memory_order_relaxed);
    atomic_store_explicit(&sp->slot[t->id].rate_at_ns, now, memory_order_relaxed);
    for (unsigned i = 0; i < sp->nslots; i++) {
        uint64_t at = atomic_load_explicit(&sp->slot[i].rate_at_ns, memory_order_relaxed);
        uint64_t r = atomic_load_explicit(&sp->slot[i].rate, memory_order_relaxed);
        if (at == 0 || (now > at && now - at > 3 * sp->window_ns)) {
            r = 0; /* nothing read for 3 windows */
        }
        total += r;
        if (i != t->id && r < low) {
            low = r;
            low_id = i;
        }
    }
    struct tcp_client *c;
    struct tcp_client *next;
    if (t->id != 0 && total < sp->gather_bps) {
        for (c = TAILQ_FIRST(&t->clients); c != NULL; c = next) {
            next = TAILQ_NEXT(c, link);
            (void)tcp_spread_move(s, c, 0);
        }
    } else if (rate > sp->split_bps && low_id != t->id && low < rate / 2) {
        struct tcp_client *pick = NULL;
        for (c = TAILQ_FIRST(&t->clients); c != NULL; c = TAILQ_NEXT(c, link)) {
            bool active = c->win_epoch == t->win_epoch && c->win_bytes > 0;
            if (active && client_movable(c) && (pick == NULL || c->win_bytes < pick->win_bytes)) {
                pick = c;
            }
        }
        /* Only a move that at least halves the difference, and only when
         * the previous window asked for it too: the rates of two busy
         * threads on a shared machine swing 2-3x between windows, and
         * without both rules 2+2 connections flip to 3+1 and back. */
        uint64_t pick_rate =
            pick != NULL
                ? (uint64_t)((double)pick->win_bytes * 1e9 / (double)(now - t->win_start_ns))
                : 0;
        bool ask = pick != NULL && 2 * pick_rate <= rate - low;
        if (ask && t->split_asked) {
            (void)tcp_spread_move(s, pick, low_id);
            ask = false;
        }
        t->split_asked = ask;
    } else {
        t->split_asked = false;
    }
    t->win_start_ns = now;
    t->win_bytes = 0;
    t->win_epoch++;
}

/* n bytes were read from c (THE SPREAD); may hand c to another thread. */
static void
tcp_spread_note(struct tcp_client *c, size_t n)
{
    struct tcp_source *t = tcp_of(c->src);
    if (t->spread == NULL) {
        return;
    }
    if (c->win_epoch != t->win_epoch) {
        c->win_epoch = t->win_epoch;
        c->win_bytes = 0;
    }
    c->win_bytes += n;
    t->win_bytes += n;
    uint64_t now = sl_now_ns();
    if (t->win_start_ns == 0) {
        t->win_start_ns = now;
    } else if (now - t->win_start_ns >= t->spread->window_ns) {
        tcp_spread_tick(c->src, now);
    }
}

/* Joins s's source's tcp_spread (made by the first instance).  Returns 0 or -1. */
static int
tcp_spread_open(struct sl_source *s)
{
    struct tcp_source *t = tcp_of(s);
    const struct sl_lane_thread *p = sl_lane_thread(s);
    unsigned n = p->nthreads > p->id ? p->nthreads : p->id + 1;
    if (n < 2) {
        return 0; /* one thread: nothing to spread */
    }
    pthread_mutex_lock(&spread_mu);
    struct tcp_spread *sp = s->shared->type_state;
    if (sp == NULL) {
        sp = calloc(1, sizeof(*sp) + n * sizeof(sp->slot[0]));
        if (sp == NULL) {
            pthread_mutex_unlock(&spread_mu);
            return -1;
        }
        pthread_mutex_init(&sp->mu, NULL);
        sp->nslots = n;
        sp->gather_bps = SPREAD_GATHER_BPS;
        sp->split_bps = SPREAD_SPLIT_BPS;
        sp->window_ns = SPREAD_WINDOW_MS * 1000000ull;
        /* Tests only: "GATHER,SPLIT,WINDOW_MS" (sluiced never sets the
         * environment, so reading it beside running threads is safe). */
        const char *knob = getenv("SLUICE_TEST_SPREAD"); // NOLINT(concurrency-mt-unsafe)
        unsigned long long v[3] = {0};
        char *end = (char *)knob;
        int got = 0;
        while (knob != NULL && got < 3) {
            errno = 0;
            v[got++] = strtoull(end, &end, 10);
            if (errno != 0 || (*end != ',' && *end != '\0') || (*end == '\0' && got < 3)) {
                got = 0;
                break;
            }
            end += *end == ',';
        }
        if (got == 3 && v[2] > 0) {
            sp->gather_bps = v[0];
            sp->split_bps = v[1];
            sp->window_ns = v[2] * 1000000ull;
        }
        for (unsigned i = 0; i < n; i++) {
            TAILQ_INIT(&sp->slot[i].inbox);
        }
        s->shared->type_state = sp;
    }
    if (p->id >= sp->nslots) {
        pthread_mutex_unlock(&spread_mu);
        return 0; /* a thread the first instance did not count: it keeps its own */
    }
    sp->refs++;
    pthread_mutex_unlock(&spread_mu);
    t->spread = sp;
    t->id = p->id;
    t->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->inbox_fd < 0) {
        return -1;
    }
    t->inbox_ev = event_new(p->base, t->inbox_fd, EV_READ | EV_PERSIST, tcp_inbox_cb, s);
    if (t->inbox_ev == NULL || event_add(t->inbox_ev, NULL) < 0) {
        return -1;
    }
    pthread_mutex_lock(&sp->mu);
    sp->slot[t->id].t = t;
    pthread_mutex_unlock(&sp->mu);
    return 0;
}

/*
 * Closes this instance's slot: no thread hands it connections from now on;
 * those already handed over join its list (adopted when adopt, else only
 * listed for close_all: fini, no event loop).
 */
static void
tcp_spread_close(struct sl_source *s, bool adopt)
{
    struct tcp_source *t = tcp_of(s);
    struct tcp_client_list got = TAILQ_HEAD_INITIALIZER(got);
    if (t == NULL || t->spread == NULL) {
        return;
    }
    pthread_mutex_lock(&t->spread->mu);
    if (t->spread->slot[t->id].t == t) {
        t->spread->slot[t->id].t = NULL;
    }
    TAILQ_CONCAT(&got, &t->spread->slot[t->id].inbox, link);
    pthread_mutex_unlock(&t->spread->mu);
    struct tcp_client *c;
    while ((c = TAILQ_FIRST(&got)) != NULL) {
        TAILQ_REMOVE(&got, c, link);
        if (adopt) {
            tcp_adopt(s, c);
        } else {
            c->src = s;
            /* Own base, not armed: client_close's event_free then
             * touches no other thread's base. */
            (void)event_assign(c->ev, sl_lane_thread(s)->base, c->fd, EV_READ | EV_PERSIST,
                               client_event_cb, c);
            TAILQ_INSERT_TAIL(&t->clients, c, link);
            t->nclients++;
            sl_counter_add(&s->stats->conn_moved_in, 1);
        }
    }
}

/* Leaves the tcp_spread (fini); the last instance frees it. */
static void
tcp_spread_leave(struct sl_source *s)
{
    struct tcp_source *t = tcp_of(s);
    if (t->inbox_ev != NULL) {
        event_free(t->inbox_ev);
        t->inbox_ev = NULL;
    }
    if (t->spread == NULL) {
        if (t->inbox_fd >= 0) {
            close(t->inbox_fd);
        }
        return;
    }
    tcp_spread_close(s, false);
    if (t->inbox_fd >= 0) {
        close(t->inbox_fd); /* after the slot: no one writes it now */
    }
    pthread_mutex_lock(&spread_mu);
    if (--t->spread->refs == 0) {
        pthread_mutex_destroy(&t->spread->mu);
        free(t->spread);
        s->shared->type_state = NULL;
    }
    pthread_mutex_unlock(&spread_mu);
    t->spread = NULL;
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
    t->inbox_fd = -1;
    s->priv = t;
    if (tcp_spread_open(s) < 0) {
        return -1;
    }
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
    tcp_spread_close(s, true); /* no more hand-overs; adopt what came */
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
    tcp_spread_close(s, false); /* what was handed over is closed with the rest */
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
    tcp_spread_leave(s);
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
    .reuseport = true,
    .bind = tcp_bind,
    .start = tcp_start,
    .stop_begin = sl_source_tcp_stop_begin,
    .idle = sl_source_tcp_idle,
    .close_all = sl_source_tcp_close_all,
    .fini = sl_source_tcp_fini,
};
