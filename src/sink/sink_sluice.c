/*
 * sink_sluice — forwards the queue to another sluiced over the sluice
 * protocol (docs/protocol.md), committing a chunk only once the receiver
 * acknowledged it (writer thread, inside the writer's event_base).
 *
 * DESIGN
 * One connection at a time (balance = failover over the targets, the tcp
 * sink's connection keys and backoff: fwd.c):
 *
 *   DOWN ─connect─▶ CONNECTING ─ok─▶ GREETING ─WELCOME─▶ UP
 *     ▲   (backoff)      │ refused/timeout   │ ERROR, timeout   │ EOF, ERROR, ack_timeout
 *     └──────────────────┴───────────────────┴──────────────────┘
 *
 * write() cuts the writer's bytes into batches of whole lines (at most the
 * receiver's max batch, announced in WELCOME), numbers them (per sender,
 * monotonic across connections) and keeps each in the in-flight list (the
 * resend buffer, bounded by window and window_bytes): its header, and a
 * reference to its payload in the writer's chunk when the queue pins sent
 * chunks until they are committed (a memory queue: sink.h link->pinned),
 * else a copy (a disk queue's iovecs point into a read buffer the next
 * peek refills).  Header and payload go on the connection as references
 * (no copy; a resend after a reconnect references them again).  A
 * cumulative ACK n pops the batches <= n and commits their bytes through
 * the writer's commit callback (sink.h): the writer gives the chunks back
 * only then.  While the window is full write() answers SL_SINK_WAIT and an
 * ACK wakes the writer.
 *
 * Reconnect: every batch in flight is still in the list.  WELCOME carries
 * the highest batch the receiver already holds from this sender id; the
 * batches above it are sent again in order (counted as resent), those at
 * or below it wait for their ACK.  A sender that starts fresh (nothing in
 * flight) numbers on from there, so a restarted edge is never taken for a
 * duplicate of its former self.
 *
 * Dead or busy.  While batches are out, the receiver answers with ACKs or,
 * when it has nothing new to acknowledge (its queue is slow to commit),
 * with KEEPALIVEs at the period the HELLO asked for (ack_timeout / 4).
 * Nothing of either for ack_timeout means the receiver is dead (stopped,
 * wedged, or the path is gone): the connection is closed and the next
 * attempt resends.
 *
 * Reload (sluice_handover): a sink replaced while it has batches in flight
 * on a connection moves its state into its successor as a draining
 * predecessor: no new batch, its ACKs still committed, until ack_timeout
 * after it last heard from the receiver (at most 3 x ack_timeout after the
 * reload); then the successor
 * takes what is unacknowledged and connects, so a live old receiver keeps
 * what it acknowledged and a new one gets only the rest.
 *
 * A line longer than the receiver's max batch cannot be sent: it is
 * counted (sluice_sink_dropped_lines_total), logged and committed in its
 * place, so the stream does not stop behind it.
 *
 * TLS (tls = on): after the TCP connect a HANDSHAKE state runs the client
 * handshake on the same socket and events (tls_handshake_timeout; the
 * server's certificate verified against tls_ca_file and tls_server_name,
 * or the target's host).  A failed handshake is counted per reason
 * (util/tls.h), makes the sink fail (health op TLS) and is retried with
 * the backoff like a refused connect: the batches stay queued.  Then the
 * evbuffers are sent and read through the SSL (util/tls_io.h); a write that
 * OpenSSL wants a read for waits for the read event, which is always on.
 */
#include <errno.h>
#include <inttypes.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/sluice_proto.h"
#include "sink/fwd.h"
#include "sink/sink_sluice.h"
#include "sluice/log.h"
#include "sluice/sink.h"
#include "util/le.h"
#include "util/tls.h"
#include "util/tls_io.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#define SLUICE_LOG_MS 10000
#define BACKOFF_RESET_MS 2000
#define SLUICE_CHECK_MIN_MS 5

enum sluice_state { ST_DOWN, ST_BACKOFF, ST_CONNECTING, ST_HANDSHAKE, ST_GREETING, ST_UP };

struct sl_batch {
    struct sl_batch *next;
    uint64_t seq;   /* 0: a line dropped as too large, committed in order */
    size_t bytes;   /* stream bytes it carries (its payload) */
    uint64_t ckpt;  /* the checkpoint once it is committed: the number the
                       first batch of the record its end is in takes */
    const uint8_t *payload; /* frame + SL_PROTO_HEADER (a copy), or the
                               writer's chunk (pinned until committed) */
    uint64_t out_end; /* out_queued when it was queued on this connection */
    size_t cap;     /* bytes of frame[] */
    uint8_t frame[];
};

struct sluice_sink {
    struct sl_sink *s;
    const struct sl_sink_sluice_config *cfg;
    struct event_base *base;
    sl_sink_wake_fn wake;
    sl_sink_commit_fn commit;
    void *arg;
    enum sluice_state state;
    int fd;
    struct sl_tls *tls; /* tls = on: the client context, owned */
    SSL *ssl;           /* tls = on: the connection's, owned while fd >= 0 */
    size_t active;      /* target in use */
    uint64_t backoff_ms;
    uint64_t rng;
    uint64_t up_since_ms;
    struct event *rd_ev, *wr_ev, *timer;
    struct evbuffer *in, *out;
    struct sl_batch *head, *tail; /* in flight, in seq order */
    struct sl_batch *spare;       /* acknowledged batches kept for reuse */
    size_t nspare;
    size_t nbatches, nbytes;
    uint64_t next_seq; /* the next batch's number */
    uint64_t acked;    /* highest batch acknowledged */
    /* Bytes queued on out on this connection: a batch whose out_end is past
     * out_queued - evbuffer_get_length(out) is still referenced by out.  An
     * ACK for it (the receiver had it from an earlier connection) pops it
     * only once out let go of it (ack_held), or its memory (and the chunk
     * the commit gives back) could be reused under the pending send. */
    uint64_t out_queued;
    uint64_t ack_held;
    /* Numbering persisted with the queue position (checkpoint): batches
     * never span two chunks (records), so a replay from a record start
     * cuts and numbers them as the first run did. */
    uint64_t rec_next; /* next_seq when the chunk being sent started */
    bool in_rec;       /* the send position is inside a chunk */
    uint64_t ckpt;     /* the checkpoint of everything committed */
    bool restored;     /* numbering from the queue's state: the replay never renumbered */
    bool replayed;     /* the writer gives data queued after start (sink.h replayed) */
    uint64_t peer_held; /* the last WELCOME's: the receiver holds batches <= it */
    uint64_t last_heard_ms;
    uint32_t max_batch; /* the receiver's, from WELCOME */
    bool want;          /* the writer waits for us */
    bool pinned;        /* the writer's iovecs live until committed (link->pinned) */
    char id[SL_PROTO_ID_MAX + 1];
    struct sl_ratelimit rl;
    /* A reload's hand-over from a live connection (sluice_handover): the
     * old sink's state, moved out of it, goes on draining inside its
     * successor.  pred: the successor's draining predecessor (it sends
     * nothing until that one is done); succ: the predecessor's successor,
     * which gets the batches still unacknowledged once it has not heard
     * from its receiver for drain_ack_ms (the old config's ack_timeout:
     * every ACK or keepalive moves that on), at the latest at
     * drain_until_ms (3 x ack_timeout after the reload: a receiver alive
     * but stuck, its own queue full, does not hold the change for ever),
     * or when the connection is seen dead; done: it has handed them over
     * and waits to be freed by the successor's timer. */
    struct sluice_sink *pred, *succ;
    uint64_t drain_ack_ms, drain_until_ms;
    bool done;
    char *drain_target; /* the predecessor's target (its config may be gone) */
};

static void sluice_connect(struct sluice_sink *k);
static void sluice_pred_end(struct sluice_sink *p, const char *why);
static void sluice_pred_free(struct sluice_sink *p);
static void sluice_read_cb(evutil_socket_t fd, short what, void *arg);
static void sluice_write_cb(evutil_socket_t fd, short what, void *arg);
static void sluice_timer_cb(evutil_socket_t fd, short what, void *arg);

static const char *
sluice_target(const struct sluice_sink *k)
{
    return k->drain_target != NULL ? k->drain_target : k->cfg->tcp.targets[k->active].text;
}

static void
sluice_arm(struct sluice_sink *k, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(k->timer, &tv);
}

static void
sluice_wake(struct sluice_sink *k)
{
    if (k->want) {
        k->want = false;
        k->wake(k->arg);
    }
}

/* The liveness period: ack_timeout / 4 (the receiver's keepalive period). */
static uint64_t
sluice_check_ms(const struct sluice_sink *k)
{
    uint64_t ms = k->cfg->ack_timeout_ms / 4;
    return ms < SLUICE_CHECK_MIN_MS ? SLUICE_CHECK_MIN_MS : ms;
}

static void
sluice_close(struct sluice_sink *k)
{
    if (k->fd >= 0) {
        event_del(k->rd_ev);
        event_del(k->wr_ev);
        if (k->ssl != NULL) {
            if (k->state == ST_GREETING || k->state == ST_UP) {
                (void)SSL_shutdown(k->ssl); /* one non-blocking try at close_notify */
            }
            SSL_free(k->ssl);
            k->ssl = NULL;
            ERR_clear_error();
        }
        close(k->fd);
        k->fd = -1;
    }
    if (k->timer != NULL) {
        event_del(k->timer);
    }
    evbuffer_drain(k->in, evbuffer_get_length(k->in));
    evbuffer_drain(k->out, evbuffer_get_length(k->out));
    k->out_queued = 0;
    for (struct sl_batch *b = k->head; b != NULL; b = b->next) {
        b->out_end = 0; /* out holds nothing of it now */
    }
    k->state = ST_DOWN;
}

/* The connection failed or broke: close, count, back off (after a whole
 * round over the targets) and try again. */
static void
sluice_fail(struct sluice_sink *k, enum sl_sink_op op, int err, const char *why)
{
    struct sl_sink *s = k->s;
    uint64_t now = sl_now_ms(), sup = 0;
    bool was_up = k->state == ST_UP;

    if (k->succ != NULL) {
        sluice_pred_end(k, why); /* a draining predecessor never reconnects */
        return;
    }
    if (was_up) {
        sl_counter_add(&s->stats->disconnects, 1);
    }
    if (sl_ratelimit_ok(&k->rl, now, &sup)) {
        log_warnx("sink \"%s\": %s %s: %s; %zu batch(es) unacknowledged, kept to resend",
                  s->cfg->name, was_up ? "connection to" : "cannot connect to",
                  sluice_target(k), why, k->nbatches);
    }
    if (was_up && now - k->up_since_ms >= BACKOFF_RESET_MS) {
        k->backoff_ms = 0;
    }
    sl_sink_health_fail(s, op, err, (int)k->active);
    sluice_close(k);
    k->state = ST_BACKOFF;
    if (k->active + 1 < k->cfg->tcp.ntargets) {
        k->active++;
        sluice_arm(k, 0); /* fail over at once */
    } else {
        k->active = 0;
        sluice_arm(k, sl_fwd_next_delay(&k->cfg->tcp, &k->rng, &k->backoff_ms));
    }
}

static void
sluice_fail_errno(struct sluice_sink *k, enum sl_sink_op op, int err)
{
    char ebuf[128];
    sluice_fail(k, op, err, strerror_r(err, ebuf, sizeof(ebuf)));
}

static void sluice_acked(struct sluice_sink *k, uint64_t seq);

/* out sent more: an ACK held for a batch it still referenced applies now. */
static void
sluice_sent_more(struct sluice_sink *k)
{
    if (k->ack_held != 0) {
        uint64_t seq = k->ack_held;
        k->ack_held = 0;
        sluice_acked(k, seq);
    }
}

/* Sends what out holds; arms EV_WRITE for the rest.  False when the
 * connection failed. */
static bool
sluice_flush_out(struct sluice_sink *k)
{
    if (k->ssl != NULL) {
        switch (sl_tls_io_write(k->ssl, k->out)) {
        case SL_TLS_IO_OK:
            sluice_sent_more(k);
            return true;
        case SL_TLS_IO_WANT_WRITE:
            event_add(k->wr_ev, NULL);
            sluice_sent_more(k);
            return true;
        case SL_TLS_IO_WANT_READ:
            sluice_sent_more(k);
            return true; /* the read event is on: sluice_read_cb flushes again */
        default:
            ERR_clear_error();
            sluice_fail_errno(k, SL_SINK_OP_SEND, EPIPE);
            return false;
        }
    }
    while (evbuffer_get_length(k->out) > 0) {
        int n = evbuffer_write(k->out, k->fd);
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            event_add(k->wr_ev, NULL);
            sluice_sent_more(k);
            return true;
        }
        sluice_fail_errno(k, SL_SINK_OP_SEND, n == 0 ? EPIPE : errno);
        return false;
    }
    sluice_sent_more(k);
    return true;
}

/* The connection (TCP, and TLS when on) is up: HELLO. */
static void
sluice_greet(struct sluice_sink *k)
{
    uint8_t hello[SL_PROTO_HEADER + SL_PROTO_HELLO_FIXED + SL_PROTO_ID_MAX];
    size_t n = sl_proto_hello(hello, k->id, (uint32_t)sluice_check_ms(k));
    evbuffer_add(k->out, hello, n);
    k->state = ST_GREETING;
    k->last_heard_ms = sl_now_ms();
    sluice_arm(k, k->cfg->ack_timeout_ms);
    (void)sluice_flush_out(k);
}

/* One step of the TLS handshake (ST_HANDSHAKE): greets when it is done,
 * fails (counted per reason) when it is refused. */
static void
sluice_handshake(struct sluice_sink *k)
{
    int ssl_err = 0;
    switch (sl_tls_io_handshake(k->ssl, &ssl_err)) {
    case SL_TLS_IO_OK:
        (void)sl_tls_handshake_done(k->tls, k->ssl);
        event_del(k->timer);
        sluice_greet(k);
        return;
    case SL_TLS_IO_WANT_WRITE:
        event_add(k->wr_ev, NULL);
        return;
    case SL_TLS_IO_WANT_READ:
        return; /* the read event is on */
    default:
        break;
    }
    char detail[160], why[256];
    sl_tls_failure_detail(k->ssl, detail, sizeof(detail));
    enum sl_tls_reason r = sl_tls_handshake_failed(k->tls, k->ssl, ssl_err, -1);
    snprintf(why, sizeof(why), "TLS refused (%s)%s%s", sl_tls_reason_names[r],
             detail[0] != '\0' ? ": " : "", detail);
    sluice_fail(k, SL_SINK_OP_TLS, EPROTO, why);
}

/* TCP is connected: the TLS handshake, or HELLO at once. */
static void
sluice_up_now(struct sluice_sink *k)
{
    event_assign(k->rd_ev, k->base, k->fd, EV_READ | EV_PERSIST, sluice_read_cb, k);
    event_assign(k->wr_ev, k->base, k->fd, EV_WRITE, sluice_write_cb, k);
    event_add(k->rd_ev, NULL);
    if (k->tls == NULL) {
        sluice_greet(k);
        return;
    }
    k->ssl = sl_fwd_tls_ssl(k->tls, &k->cfg->tcp.targets[k->active], k->fd);
    if (k->ssl == NULL) {
        sluice_fail(k, SL_SINK_OP_TLS, ENOMEM, "TLS: out of memory");
        return;
    }
    k->state = ST_HANDSHAKE;
    sluice_arm(k, k->cfg->tcp.tls.handshake_timeout_ms);
    sluice_handshake(k);
}

static void
sluice_connect(struct sluice_sink *k)
{
    int r = sl_fwd_connect(&k->cfg->tcp.targets[k->active], &k->cfg->tcp, &k->fd);

    k->state = ST_CONNECTING;
    if (r < 0) {
        sluice_fail_errno(k, SL_SINK_OP_CONNECT, errno);
        return;
    }
    if (r == 0) {
        sluice_up_now(k);
        return;
    }
    event_assign(k->wr_ev, k->base, k->fd, EV_WRITE, sluice_write_cb, k);
    event_add(k->wr_ev, NULL);
    sluice_arm(k, k->cfg->tcp.connect_timeout_ms);
}

/*
 * Batch buffers are reused: a batch is up to max_batch (256 KiB by
 * default), above malloc's mmap threshold, so a fresh one per batch would
 * cost an mmap, a page fault per page on the copy, and an munmap.  At most
 * window batches are kept aside (their memory is bounded by the window).
 */
static struct sl_batch *
sluice_batch_get(struct sluice_sink *k, size_t framed)
{
    struct sl_batch *b = k->spare;
    if (framed <= SL_PROTO_HEADER) {
        /* A header only (the payload is referenced, or a skipped line):
         * small, from malloc's free lists. */
        b = malloc(sizeof(*b) + SL_PROTO_HEADER);
        if (b != NULL) {
            b->cap = SL_PROTO_HEADER;
        }
        return b;
    }
    if (b != NULL && b->cap >= framed) {
        k->spare = b->next;
        k->nspare--;
        return b;
    }
    size_t cap = framed > SL_PROTO_HEADER + k->max_batch ? framed : SL_PROTO_HEADER + k->max_batch;
    b = malloc(sizeof(*b) + cap);
    if (b != NULL) {
        b->cap = cap;
    }
    return b;
}

static void
sluice_batch_put(struct sluice_sink *k, struct sl_batch *b)
{
    if (k->nspare < k->cfg->window_batches && b->cap >= SL_PROTO_HEADER + k->max_batch) {
        b->next = k->spare;
        k->spare = b;
        k->nspare++;
    } else {
        free(b);
    }
}

/* Queues a batch on the connection: header and payload by reference (both
 * live until its ACK pops it). */
static void
sluice_batch_out(struct sluice_sink *k, struct sl_batch *b)
{
    evbuffer_add_reference(k->out, b->frame, SL_PROTO_HEADER, NULL, NULL);
    evbuffer_add_reference(k->out, b->payload, b->bytes, NULL, NULL);
    k->out_queued += SL_PROTO_HEADER + b->bytes;
    b->out_end = k->out_queued;
}

/* Pops the batches <= seq and commits their bytes.  Recursion, bounded: a
 * draining predecessor's last ACK ends it (sluice_pred_end), whose
 * sluice_let_go applies an ACK held back, with the connection closed
 * (fd < 0), so that one ends nothing again. */
static void
sluice_acked(struct sluice_sink *k, uint64_t seq) // NOLINT(misc-no-recursion): see above
{
    size_t bytes = 0;
    uint64_t let_go = k->out_queued - evbuffer_get_length(k->out);
    while (k->head != NULL && k->head->seq <= seq) {
        struct sl_batch *b = k->head;
        if (b->out_end > let_go) {
            k->ack_held = seq; /* out still sends it: sluice_sent_more */
            break;
        }
        k->head = b->next;
        if (k->head == NULL) {
            k->tail = NULL;
        }
        if (b->seq != 0) {
            k->acked = b->seq;
        }
        k->ckpt = b->ckpt;
        bytes += b->bytes;
        k->nbatches--;
        k->nbytes -= b->bytes;
        sluice_batch_put(k, b);
    }
    if (seq > k->acked) {
        k->acked = seq;
    }
    if (bytes > 0) {
        k->commit(k->arg, bytes);
        sluice_wake(k); /* the window opened */
    }
    if (k->succ != NULL && k->head == NULL && k->fd >= 0) {
        sluice_pred_end(k, "acknowledged every batch in flight");
    }
}

/* WELCOME: the receiver holds every batch <= w->acked already. */
static void
sluice_welcome(struct sluice_sink *k, const struct sl_proto_welcome *w)
{
    struct sl_sink *s = k->s;
    uint64_t resent = 0;

    k->max_batch = w->max_batch;
    k->peer_held = w->acked;
    if (k->head == NULL && k->next_seq <= w->acked && !k->restored) {
        /* A fresh start (no numbering in the queue's state): number on
         * after the receiver.  Restored numbering is replayed as it was:
         * the batches <= w->acked are the receiver's already, dropped there
         * and acknowledged (data queued after start: sluice_renumber). */
        k->next_seq = w->acked + 1;
        if (!k->in_rec) {
            k->rec_next = k->next_seq;
        }
    }
    for (struct sl_batch *b = k->head; b != NULL; b = b->next) {
        if (b->seq > w->acked) {
            sluice_batch_out(k, b);
            resent++;
        }
    }
    sl_counter_add(&s->stats->resent_batches, resent);
    k->state = ST_UP;
    k->up_since_ms = sl_now_ms();
    k->last_heard_ms = k->up_since_ms;
    sl_counter_add(&s->stats->connects, 1);
    log_info("sink \"%s\": connected to %s as \"%s\"%s", s->cfg->name, sluice_target(k), k->id,
             resent > 0 ? ", resending unacknowledged batches" : "");
    sl_sink_health_ok(s);
    sluice_arm(k, sluice_check_ms(k));
    if (sluice_flush_out(k)) {
        sluice_wake(k);
    }
}

/* One frame from the receiver.  False when the connection was closed. */
static bool
sluice_frame(struct sluice_sink *k, const struct sl_proto_frame *f)
{
    struct sl_proto_welcome w;
    uint16_t code;
    const char *text;
    size_t tl;
    char msg[SL_PROTO_ERROR_TEXT_MAX + 64];

    k->last_heard_ms = sl_now_ms();
    switch (f->type) {
    case SL_PROTO_WELCOME:
        if (k->state != ST_GREETING) {
            break;
        }
        int r = sl_proto_parse_welcome(f, &w);
        if (r < 0) {
            sluice_fail(k, SL_SINK_OP_SEND, EPROTO, sl_proto_strerror(r));
            return false;
        }
        sluice_welcome(k, &w);
        return k->state == ST_UP;
    case SL_PROTO_ACK:
    case SL_PROTO_KEEPALIVE:
        if (k->state != ST_UP) {
            break;
        }
        sl_counter_add(f->type == SL_PROTO_ACK ? &k->s->stats->acks : &k->s->stats->keepalives,
                       1);
        sluice_acked(k, f->seq);
        return k->fd >= 0; /* a draining predecessor closes at its last ACK */
    case SL_PROTO_ERROR:
        (void)sl_proto_parse_error(f, &code, &text, &tl);
        snprintf(msg, sizeof(msg), "the receiver refused: %s (%.*s)", sl_proto_strerror(code),
                 (int)tl, text);
        sluice_fail(k, SL_SINK_OP_PEER_CLOSED, EPROTO, msg);
        return false;
    default:
        break;
    }
    sluice_fail(k, SL_SINK_OP_SEND, EPROTO, "unexpected frame from the receiver");
    return false;
}

static void
sluice_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sluice_sink *k = arg;
    int n;

    if (k->state == ST_HANDSHAKE) {
        sluice_handshake(k);
        return;
    }
    if (k->ssl != NULL) {
        size_t got = 0;
        enum sl_tls_io io = sl_tls_io_read(k->ssl, k->in, 64 * 1024, &got);
        if (io == SL_TLS_IO_OK || io == SL_TLS_IO_WANT_READ || io == SL_TLS_IO_WANT_WRITE) {
            if (io == SL_TLS_IO_OK) {
                event_active(k->rd_ev, EV_READ, 0); /* more may wait in OpenSSL */
            } else if (io == SL_TLS_IO_WANT_WRITE) {
                event_add(k->wr_ev, NULL);
            }
            if (evbuffer_get_length(k->out) > 0 && (!sluice_flush_out(k) || k->fd < 0)) {
                return; /* failed, or a draining predecessor's last batch was acknowledged */
            }
            n = got > 0 ? (int)got : -1;
            errno = EAGAIN;
        } else {
            ERR_clear_error();
            errno = io == SL_TLS_IO_EOF ? ECONNRESET : EPROTO;
            if (got > 0) {
                /* Bytes came before the end: handle them; the end shows
                 * again on the next read. */
                n = (int)got;
                event_active(k->rd_ev, EV_READ, 0);
            } else {
                n = io == SL_TLS_IO_EOF ? 0 : -1;
            }
        }
    } else {
        n = evbuffer_read(k->in, k->fd, 64 * 1024);
    }

    if (n == 0 && k->state == ST_UP && k->nbatches == 0) {
        /* Nothing in flight: the receiver closed an idle connection (its
         * idle_timeout).  No failure: the next write connects again. */
        log_debug("sink \"%s\": %s closed the idle connection", k->s->cfg->name,
                  sluice_target(k));
        sluice_close(k);
        return;
    }
    if (n == 0) {
        sluice_fail(k, SL_SINK_OP_PEER_CLOSED, 0, "closed by the receiver");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            sluice_fail_errno(k, SL_SINK_OP_SEND, errno);
        }
        return;
    }
    for (;;) {
        size_t have = evbuffer_get_length(k->in);
        if (have < SL_PROTO_HEADER) {
            return;
        }
        /* Frames from a receiver are small (at most a header + 258). */
        size_t want = have < 4096 ? have : 4096;
        const uint8_t *p = evbuffer_pullup(k->in, (ssize_t)want);
        struct sl_proto_frame f;
        long r = sl_proto_decode(p, want, 0, &f);
        if (r == 0) {
            return;
        }
        if (r < 0) {
            sluice_fail(k, SL_SINK_OP_SEND, EPROTO, sl_proto_strerror((int)r));
            return;
        }
        bool alive = sluice_frame(k, &f);
        if (!alive) {
            return;
        }
        evbuffer_drain(k->in, (size_t)r);
    }
}

static void
sluice_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sluice_sink *k = arg;

    if (k->state == ST_CONNECTING) {
        int err = sl_fwd_connect_result(k->fd);
        if (err != 0) {
            sluice_fail_errno(k, SL_SINK_OP_CONNECT, err);
        } else {
            sluice_up_now(k);
        }
        return;
    }
    if (k->state == ST_HANDSHAKE) {
        sluice_handshake(k);
        return;
    }
    if (k->fd >= 0 && sluice_flush_out(k) && evbuffer_get_length(k->out) == 0) {
        sluice_wake(k);
    }
}

static void
sluice_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sluice_sink *k = arg;
    uint64_t now = sl_now_ms();
    char why[96];

    if (k->pred != NULL) {
        /* A successor: its predecessor handed its batches over
         * (sluice_pred_end), now it connects and resends them. */
        if (k->pred->done) {
            sluice_pred_free(k->pred);
            k->pred = NULL;
            if (k->state == ST_DOWN) {
                sluice_connect(k);
            }
        }
        return;
    }
    if (k->succ != NULL) {
        /* A draining predecessor: until it has not heard from its
         * receiver for drain_ack_ms, at most until drain_until_ms. */
        uint64_t until = k->last_heard_ms + k->drain_ack_ms;
        if (now >= until) {
            snprintf(why, sizeof(why), "no acknowledgement for %llu ms (ack_timeout)",
                     (unsigned long long)(now - k->last_heard_ms));
            sluice_pred_end(k, why);
        } else if (now >= k->drain_until_ms) {
            snprintf(why, sizeof(why),
                     "in flight for %llu ms since the reload (3 x ack_timeout), still heard from",
                     3ULL * k->drain_ack_ms);
            sluice_pred_end(k, why);
        } else {
            sluice_arm(k, (until < k->drain_until_ms ? until : k->drain_until_ms) - now);
        }
        return;
    }
    switch (k->state) {
    case ST_BACKOFF:
        sluice_connect(k);
        return;
    case ST_CONNECTING:
        sluice_fail(k, SL_SINK_OP_CONNECT_TIMEOUT, ETIMEDOUT, "timeout");
        return;
    case ST_HANDSHAKE:
        sl_tls_count(k->tls, SL_TLS_R_TIMEOUT);
        sluice_fail(k, SL_SINK_OP_TLS, ETIMEDOUT,
                    "TLS refused (timeout): no handshake within tls_handshake_timeout");
        return;
    case ST_GREETING:
        sluice_fail(k, SL_SINK_OP_WRITE_TIMEOUT, ETIMEDOUT, "no answer to the greeting");
        return;
    case ST_UP:
        if (k->nbatches > 0 && now - k->last_heard_ms >= k->cfg->ack_timeout_ms) {
            sl_counter_add(&k->s->stats->ack_timeouts, 1);
            snprintf(why, sizeof(why), "no ack or keepalive for %llu ms (ack_timeout)",
                     (unsigned long long)(now - k->last_heard_ms));
            sluice_fail(k, SL_SINK_OP_WRITE_TIMEOUT, ETIMEDOUT, why);
            return;
        }
        sluice_arm(k, sluice_check_ms(k));
        return;
    case ST_DOWN:
        return;
    }
}

/* Appends a batch of stream bytes [off, off + len) of iov (seq 0: skipped);
 * ends_rec: it ends its chunk. */
static int
sluice_add_batch(struct sluice_sink *k, const struct iovec *iov, int iovcnt, size_t off,
                 size_t len, bool skip, bool ends_rec)
{
    struct iovec sub[SL_SINK_IOV_MAX];
    int n = skip ? 0 : sl_iov_slice(iov, iovcnt, off, len, sub, SL_SINK_IOV_MAX);
    /* A batch never spans two chunks, so with pinned chunks its payload is
     * one piece of one: referenced, not copied. */
    bool ref = k->pinned && n == 1;
    size_t framed = skip ? 0 : SL_PROTO_HEADER + len;
    struct sl_batch *b = sluice_batch_get(k, ref ? SL_PROTO_HEADER : framed);
    if (b == NULL) {
        return -1;
    }
    b->next = NULL;
    b->out_end = 0;
    b->bytes = len;
    b->seq = skip ? 0 : k->next_seq++;
    if (ends_rec) {
        k->in_rec = false;
        k->rec_next = k->next_seq;
    } else {
        k->in_rec = true;
    }
    b->ckpt = k->rec_next;
    if (!skip) {
        if (ref) {
            b->payload = sub[0].iov_base;
        } else {
            uint8_t *p = b->frame + SL_PROTO_HEADER;
            b->payload = p;
            for (int i = 0; i < n; i++) {
                memcpy(p, sub[i].iov_base, sub[i].iov_len);
                p += sub[i].iov_len;
            }
        }
        sl_proto_header(b->frame, SL_PROTO_BATCH, b->seq, b->payload, (uint32_t)len);
        sluice_batch_out(k, b);
    }
    if (k->head == NULL) {
        k->head = b;
        k->last_heard_ms = sl_now_ms(); /* the silence counts from the first batch out */
    } else {
        k->tail->next = b;
    }
    k->tail = b;
    k->nbatches++;
    k->nbytes += len;
    return 0;
}

/*
 * Restored numbering, the replay done, and the receiver holds batches up
 * to peer_held >= next_seq: the queue lost records it had sent (a power
 * cut before they were synced; a kill -9 never loses them, so the replay
 * numbers past peer_held).  Data queued after start must not take those
 * numbers (the receiver would drop it as duplicates): numbering on from
 * peer_held + 1, at a chunk start (docs/protocol.md, "Numbering persisted
 * with a disk queue").
 */
static void
sluice_renumber(struct sluice_sink *k)
{
    struct sl_sink *s = k->s;
    sl_counter_add(&s->stats->renumbered, 1);
    log_warnx("sink \"%s\": %s holds batches up to %" PRIu64 " this queue no longer has (lost "
              "in a power cut here?); numbering on from %" PRIu64 " (was %" PRIu64 ")",
              s->cfg->name, sluice_target(k), k->peer_held, k->peer_held + 1, k->next_seq);
    k->next_seq = k->peer_held + 1;
    k->rec_next = k->next_seq;
}

static void
sluice_replayed(struct sl_sink *s)
{
    struct sluice_sink *k = s->priv;
    k->replayed = true;
}

static enum sl_sink_result
sluice_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    struct sluice_sink *k = s->priv;
    size_t total = sl_iov_total(iov, iovcnt);
    size_t off = 0;

    *written = 0;
    if (k->pred != NULL) {
        /* Nothing before the predecessor's unacknowledged batches: a
         * receiver drops a batch numbered at or below one it holds. */
        k->want = true;
        return SL_SINK_WAIT;
    }
    if (k->state != ST_UP) {
        if (k->state == ST_DOWN) {
            sluice_connect(k);
        }
        if (k->state != ST_UP) {
            k->want = true;
            return SL_SINK_WAIT;
        }
    }
    size_t ci = 0, cend = iovcnt > 0 ? iov[0].iov_len : 0; /* the chunk off is in, its end */
    while (off < total) {
        if (k->nbatches >= k->cfg->window_batches || k->nbytes >= k->cfg->window_bytes) {
            break;
        }
        while (off >= cend && ci + 1 < (size_t)iovcnt) {
            cend += iov[++ci].iov_len;
        }
        size_t upto = cend - off > k->max_batch ? off + k->max_batch : cend;
        size_t end = sl_iov_last_line_end(iov, iovcnt, off, upto);
        bool skip = false;
        if (end == off) {
            /* A line longer than the receiver's max batch. */
            end = sl_iov_line_end(iov, iovcnt, off);
            skip = true;
            sl_counter_add(&s->stats->dropped_lines, 1);
            uint64_t sup = 0;
            if (sl_ratelimit_ok(&k->rl, sl_now_ms(), &sup)) {
                log_warnx("sink \"%s\": dropped a %zu-byte line: larger than %s's max batch "
                          "(%u bytes)",
                          s->cfg->name, end - off, sluice_target(k), k->max_batch);
            }
        }
        if (!skip && k->restored && k->replayed && !k->in_rec && k->next_seq <= k->peer_held) {
            sluice_renumber(k);
        }
        if (sluice_add_batch(k, iov, iovcnt, off, end - off, skip, end == cend) < 0) {
            break; /* out of memory: try again later */
        }
        off = end;
    }
    *written = off;
    if (!sluice_flush_out(k)) {
        /* The batches stay in flight and are resent after the reconnect. */
        k->want = true;
        return *written > 0 ? SL_SINK_OK : SL_SINK_WAIT;
    }
    if (k->head != NULL && k->head->seq == 0 && k->head == k->tail) {
        sluice_acked(k, k->acked); /* only skipped lines: commit them now */
    }
    if (off < total) {
        k->want = true;
        return off > 0 ? SL_SINK_OK : SL_SINK_WAIT;
    }
    return SL_SINK_OK;
}

static int
sluice_open(struct sl_sink *s)
{
    struct sluice_sink *k = calloc(1, sizeof(*k));

    if (k == NULL) {
        return -1;
    }
    s->priv = k;
    k->s = s;
    k->cfg = sl_sink_sluice_config(s->cfg);
    k->fd = -1;
    k->next_seq = 1;
    k->rec_next = 1;
    k->ckpt = 1;
    k->rl.interval_ms = SLUICE_LOG_MS;
    sl_fwd_seed(&k->rng, k);
    if (k->cfg->sender_id != NULL) {
        snprintf(k->id, sizeof(k->id), "%s", k->cfg->sender_id);
    } else {
        char host[256] = "";
        (void)gethostname(host, sizeof(host) - 1);
        /* At most 32 + 1 + 31 = SL_PROTO_ID_MAX bytes. */
        snprintf(k->id, sizeof(k->id), "%.32s.%.31s", host, s->cfg->name);
        for (char *c = k->id; *c != '\0'; c++) {
            if (!sl_proto_id_ok(c, 1)) {
                *c = '_';
            }
        }
    }
    k->in = evbuffer_new();
    k->out = evbuffer_new();
    if (k->in == NULL || k->out == NULL || k->cfg->tcp.ntargets == 0) {
        return -1;
    }
    return sl_fwd_tls_new(&k->cfg->tcp, s->cfg->name, &k->tls);
}

static int
sluice_attach(struct sl_sink *s, const struct sl_sink_link *link)
{
    struct sluice_sink *k = s->priv;

    k->base = link->base;
    k->wake = link->wake;
    k->commit = link->commit;
    k->arg = link->arg;
    k->pinned = link->pinned;
    k->rd_ev = event_new(k->base, -1, 0, sluice_read_cb, k);
    k->wr_ev = event_new(k->base, -1, 0, sluice_write_cb, k);
    k->timer = evtimer_new(k->base, sluice_timer_cb, k);
    if (k->rd_ev == NULL || k->wr_ev == NULL || k->timer == NULL) {
        return -1;
    }
    if (k->pred == NULL) {
        sluice_connect(k); /* at start: health shows a missing receiver at once */
    }
    return 0;
}

static void
sluice_detach(struct sl_sink *s)
{
    struct sluice_sink *k = s->priv;

    if (k != NULL && k->pred != NULL) {
        if (!k->pred->done) {
            sluice_pred_end(k->pred, "its new config stops");
        }
        sluice_pred_free(k->pred);
        k->pred = NULL;
    }
    if (k == NULL || k->timer == NULL) {
        return;
    }
    sluice_close(k);
    event_free(k->rd_ev);
    event_free(k->wr_ev);
    event_free(k->timer);
    k->rd_ev = k->wr_ev = k->timer = NULL;
}

static enum sl_sink_result
sluice_flush(struct sl_sink *s, bool final)
{
    return SL_SINK_OK; /* commits come with the ACKs */
}

/* SIGHUP: the TLS files are read again (established connections keep
 * the context they started with). */
static void
sluice_reopen(struct sl_sink *s)
{
    struct sluice_sink *k = s->priv;
    if (k->tls != NULL) {
        (void)sl_tls_reload(k->tls); /* logs and counts either way */
    }
}

static struct sl_tls *
sluice_tls(const struct sl_sink *s)
{
    const struct sluice_sink *k = s->priv;
    return k != NULL ? k->tls : NULL;
}

/* Connects, keepalives, timeouts and reconnection backoff run on the
 * sink's own timers on the writer's event_base: nothing for the tick. */
static uint64_t
sluice_tick(struct sl_sink *s, uint64_t now_ms)
{
    return SL_SINK_TICK_NONE;
}

/* Frees k's connection, TLS context, batches and buffers, and k. */
static void
sluice_free(struct sluice_sink *k)
{
    if (k->ssl != NULL) {
        SSL_free(k->ssl);
    }
    if (k->fd >= 0) {
        close(k->fd);
    }
    sl_tls_free(k->tls);
    while (k->head != NULL) {
        struct sl_batch *b = k->head;
        k->head = b->next;
        free(b);
    }
    while (k->spare != NULL) {
        struct sl_batch *b = k->spare;
        k->spare = b->next;
        free(b);
    }
    if (k->in != NULL) {
        evbuffer_free(k->in);
    }
    if (k->out != NULL) {
        evbuffer_free(k->out);
    }
    free(k->drain_target);
    free(k);
}

static void
sluice_close_sink(struct sl_sink *s)
{
    struct sluice_sink *k = s->priv;

    if (k == NULL) {
        return;
    }
    sluice_free(k);
    s->priv = NULL;
}

static const char *
sluice_object(const struct sl_sink *s, int target)
{
    const struct sl_sink_tcp_config *tc = &sl_sink_sluice_config(s->cfg)->tcp;
    return target >= 0 && (size_t)target < tc->ntargets ? tc->targets[target].text : NULL;
}

/* The checkpoint: "SLS1" and the number the first batch of the record the
 * committed position is in takes (u64, little endian). */
#define SLUICE_CKPT_LEN 12

static size_t
sluice_checkpoint(struct sl_sink *s, uint8_t *buf, size_t cap)
{
    struct sluice_sink *k = s->priv;
    if (cap < SLUICE_CKPT_LEN) {
        return 0;
    }
    memcpy(buf, "SLS1", 4);
    /* While a predecessor drains, its ACKs commit the queue's bytes. */
    sl_put_le64(buf + 4, k->pred != NULL ? k->pred->ckpt : k->ckpt);
    return SLUICE_CKPT_LEN;
}

static void
sluice_restore(struct sl_sink *s, const uint8_t *blob, size_t len)
{
    struct sluice_sink *k = s->priv;
    uint64_t next = 0;
    if (blob == NULL) {
        return; /* nothing from a last run: numbering from the receiver's WELCOME */
    }
    if (len != SLUICE_CKPT_LEN || memcmp(blob, "SLS1", 4) != 0) {
        log_warnx("sink \"%s\": the queue's state holds no batch numbering of this version; "
                  "numbering on from the receiver's (duplicates possible for what it resends)",
                  s->cfg->name);
        return;
    }
    next = sl_get_le64(blob + 4);
    if (next == 0) {
        return;
    }
    k->next_seq = next;
    k->rec_next = next;
    k->ckpt = next;
    k->acked = next - 1;
    k->restored = true;
    log_info("sink \"%s\": batch numbering from the queue's state: the next batch is %" PRIu64,
             s->cfg->name, next);
}

/* A hand-over keeps the receiver's duplicate filter right only under the
 * same sender id (the default one is made of the host and the sink's name,
 * which a reload does not change). */
static bool
sluice_handover_ok(const struct sl_sink_config *from, const struct sl_sink_config *to)
{
    const char *a = sl_sink_sluice_config(from)->sender_id;
    const char *b = sl_sink_sluice_config(to)->sender_id;
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The numbering and send position go with the hand-over: k sends on from
 * where o stopped. */
static void
sluice_take_numbering(struct sluice_sink *k, const struct sluice_sink *o)
{
    k->next_seq = o->next_seq;
    k->acked = o->acked;
    k->rec_next = o->rec_next;
    k->in_rec = o->in_rec;
    k->ckpt = o->ckpt;
    k->restored = o->restored;
}

/* Closes k's connection for good (a hand-over): out references no batch
 * now, so an ACK held back for one applies. */
static void
sluice_let_go(struct sluice_sink *k) // NOLINT(misc-no-recursion): sluice_acked, bounded
{
    sluice_close(k);
    if (k->ack_held != 0) {
        uint64_t seq = k->ack_held;
        k->ack_held = 0;
        sluice_acked(k, seq); /* commits through the same writer state */
    }
}

/* Moves o's batches in flight (none on a connection now) and its
 * committed position to k, which has none. */
static void
sluice_take_batches(struct sluice_sink *k, struct sluice_sink *o)
{
    k->head = o->head;
    k->tail = o->tail;
    k->nbatches = o->nbatches;
    k->nbytes = o->nbytes;
    k->acked = o->acked;
    k->ckpt = o->ckpt;
    o->head = o->tail = NULL;
    o->nbatches = o->nbytes = 0;
}

/*
 * A draining predecessor is done (every batch in flight acknowledged, its
 * time is up, or the connection broke): it closes its connection and hands
 * what is still unacknowledged to its successor, which connects and resends
 * it (its timer, activated here, also frees p: p may be on its own call
 * stack now).
 */
static void
sluice_pred_end(struct sluice_sink *p, const char *why) // NOLINT(misc-no-recursion): sluice_acked
{
    struct sluice_sink *k = p->succ;
    const char *name = k->s->cfg->name;

    sluice_let_go(p);
    if (p->nbatches > 0) {
        log_info("sink \"%s\": %s: %s; hands %zu unacknowledged batch(es) (%zu bytes, from batch "
                 "%" PRIu64 ") over to its new config, which resends them",
                 name, sluice_target(p), why, p->nbatches, p->nbytes, p->head->seq);
    } else {
        log_info("sink \"%s\": %s %s; nothing to hand over, its new config goes on", name,
                 sluice_target(p), why);
    }
    sluice_take_batches(k, p);
    p->done = true;
    event_active(k->timer, EV_TIMEOUT, 0);
}

/* Frees a predecessor (writer thread: its events are the writer's). */
static void
sluice_pred_free(struct sluice_sink *p)
{
    sluice_close(p);
    event_free(p->rd_ev);
    event_free(p->wr_ev);
    event_free(p->timer);
    sluice_free(p);
}

/*
 * A config reload replaces the sink (a new target, window, ...).
 *
 * Connected with batches in flight: the old sink's state (connection, TLS,
 * batches) moves out of it into its successor as a draining predecessor,
 * which sends nothing new and waits in the writer's event loop (the reload
 * answer and the other sinks do not wait) for the receiver's ACKs of what
 * it sent, until ack_timeout after it last heard from the receiver (at most
 * 3 x ack_timeout after the reload), or until the connection is seen dead;
 * then it hands the batches still
 * unacknowledged, with their numbers, to the successor (sluice_pred_end).
 * The successor connects only then: it sends nothing before them, as a
 * receiver drops a batch numbered at or below one it holds.  So a live old
 * receiver's batches are acknowledged and committed there, and only what it
 * did not acknowledge goes to the new one.
 *
 * Otherwise (not connected, or nothing in flight) the batches move at once
 * and the new sink resends them after WELCOME (sluice_welcome), exactly as
 * after a reconnect.  The same receiver drops what it already accepted
 * (same id, same numbers); another receiver has never seen them.
 *
 * A successor replaced while its predecessor still drains passes the
 * predecessor on.  wsink_swap undoes a hand-over whose successor cannot
 * attach by calling this the other way round (to->priv NULL: its state is
 * the draining predecessor, which goes on as before).
 */
static void
sluice_handover(struct sl_sink *from, struct sl_sink *to)
{
    struct sluice_sink *o = from->priv, *k = to->priv;

    if (k == NULL || (o->pred != NULL && !o->pred->done)) {
        struct sluice_sink *p = o->pred;
        if (p == NULL) {
            return; /* not a hand-over this sink made: nothing to undo */
        }
        o->pred = NULL;
        p->s = to;
        if (k == NULL) { /* undone: p is to's own sink again */
            to->priv = p;
            p->cfg = sl_sink_sluice_config(to->cfg);
            p->succ = NULL;
            free(p->drain_target);
            p->drain_target = NULL;
            sluice_arm(p, sluice_check_ms(p));
            return;
        }
        p->succ = k; /* o never sent: p drains for k now */
        p->cfg = k->cfg;
        k->pred = p;
        sluice_take_numbering(k, o);
        return;
    }
    if (o->pred != NULL) { /* it handed over already: the batches are o's */
        sluice_pred_free(o->pred);
        o->pred = NULL;
    }
    if (o->state == ST_UP && o->nbatches > 0 && o->timer != NULL &&
        (o->drain_target = strdup(sluice_target(o))) != NULL) {
        uint64_t now = sl_now_ms();
        uint64_t until = o->last_heard_ms + o->cfg->ack_timeout_ms;
        o->drain_ack_ms = o->cfg->ack_timeout_ms;
        o->drain_until_ms = now + 3 * o->cfg->ack_timeout_ms;
        log_info("sink \"%s\": hands over to its new config: waits for %s to acknowledge %zu "
                 "batch(es) in flight (from batch %" PRIu64 "), sends nothing new; gives up after "
                 "%llu ms without hearing from it, at most %llu ms",
                 from->cfg->name, o->drain_target, o->nbatches, o->head->seq,
                 (unsigned long long)o->drain_ack_ms, 3ULL * o->drain_ack_ms);
        from->priv = NULL;
        o->s = to;
        o->cfg = k->cfg; /* from's config may be freed after the reload */
        o->succ = k;
        o->want = false;
        k->pred = o;
        sluice_take_numbering(k, o);
        sluice_arm(o, until > now ? until - now : 0);
        return;
    }
    sluice_let_go(o);
    if (o->nbatches > 0) {
        log_info("sink \"%s\": hands %zu unacknowledged batch(es) (%zu bytes, from batch %" PRIu64
                 ") over to its new config, which resends them",
                 from->cfg->name, o->nbatches, o->nbytes, o->head->seq);
    }
    sluice_take_numbering(k, o);
    sluice_take_batches(k, o);
    if (k->timer != NULL && k->state == ST_DOWN) {
        /* The way back (writer.c: the new sink could not attach): `to` is
         * the old one, attached, its connection closed above (a successor
         * is not attached yet: it connects at attach).  It connects again
         * now and resends after WELCOME; waiting for its next write would
         * hold the batches (and their chunks) for as long as the queue
         * stays idle.  Not in sluice_take_batches: a successor taking a
         * draining predecessor's batches connects from its timer. */
        sluice_connect(k);
    }
}

const struct sl_sink_ops sl_sink_sluice_ops = {
    .handover_ok = sluice_handover_ok,
    .handover = sluice_handover,
    .handover_disk = true,
    .checkpoint = sluice_checkpoint,
    .restore = sluice_restore,
    .replayed = sluice_replayed,
    .type = "sluice",
    .acks = true,
    .object = sluice_object,
    .open = sluice_open,
    .attach = sluice_attach,
    .detach = sluice_detach,
    .write = sluice_write,
    .flush = sluice_flush,
    .reopen = sluice_reopen,
    .tick = sluice_tick,
    .close = sluice_close_sink,
    .tls = sluice_tls,
};
