/*
 * source_sluice — receives batches from other sluiceds' sluice sinks
 * (docs/protocol.md) and acknowledges each only once its queue holds it as
 * durably as the queue makes it (producer thread).
 *
 * DESIGN
 * A connection: HELLO → WELCOME (+ ACK of what is already durable) → any
 * number of BATCH frames.  A batch's payload is framed and validated line
 * by line with the source's codec exactly as the tcp source does (invalid
 * lines counted and dropped), emitted into the lane, and the lane's chunk
 * sealed (sl_lane_seal): the batch is then pending with the seq of the
 * chunk that ends it.  Acks: the connection waits (sl_lane_wait_durable)
 * for the queue's durable position to reach the oldest pending chunk; the
 * writer's wake runs the callback, which pops every pending batch now
 * durable and sends one cumulative ACK.  A KEEPALIVE (the current
 * cumulative ack) goes out every period the sender asked for in its HELLO
 * when nothing else was sent, so a receiver that is slow to commit is not
 * taken for a dead one.
 *
 * Duplicates: per sender id (process-wide, under one mutex: a sender's
 * reconnection may land on another producer thread) the receiver keeps the
 * highest batch accepted and the highest acknowledged, and the pending
 * list.  A batch numbered at or below the highest accepted is dropped and
 * counted (dup_batches); one at or below the highest acknowledged gets its
 * ACK again at once.  WELCOME tells the sender the highest accepted, so it
 * resends only what came after.  Persistence: with a disk queue, the
 * chunk that ends a batch carries the sender's key ("source\0id") and the
 * batch number as its tag (sl_lane_seal_tag), which the queue writes in
 * that chunk's own record; at start the queue rebuilds the highest number
 * per key from its records and its state file (sl_queue_tag_recovered) and
 * HELLO takes it as accepted and acknowledged: the filter is on disk
 * exactly when the batches it covers are, whatever moment a kill -9 hit.
 * With a memory queue and state_path, the highest acknowledged per sender
 * is written (write + rename) before each ACK goes out and read at start:
 * a restarted receiver still drops what it acknowledged before (with a
 * disk queue the file is read at start but no longer written).
 *
 * Back-pressure: a batch whose lines find no room is paused in the middle
 * (the read event off, the rest of the batch kept) and resumed by the
 * lane's waiter; once a batch has started it is always emitted whole, even
 * if the connection closes meanwhile, so a partly emitted batch never
 * comes back as a resend.
 *
 * Bad input: a malformed frame, a checksum mismatch, a batch over the max
 * batch (the queue's chunk size) or a frame out of order is counted
 * (protocol_errors), logged (rate-limited), answered with an ERROR frame
 * and the connection closed; other connections are not affected.
 *
 * TLS (tls = on, the tcp source's tls keys): the server handshake runs
 * first on the connection's own events, within tls_handshake_timeout, with
 * the client certificate verified as tls_client_auth and tls_allowed_names
 * say; a refused peer is counted per reason (util/tls.h), logged
 * (rate-limited) and closed before any frame is read.  Then the evbuffers
 * are read and sent through the SSL (util/tls_io.h).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/encode.h"
#include "proto/sluice_proto.h"
#include "sluice/codec.h"
#include "sluice/conf.h"
#include "sluice/config.h"
#include "sluice/producer.h"
#include "sluice/stats.h"
#include "source/lane.h"
#include "source/source_sluice.h"
#include "source/stream.h"
#include "util/tls.h"
#include "util/tls_io.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#define KEEPALIVE_MIN_MS 10
#define KEEPALIVE_MAX_MS 60000
#define READ_BYTES (256 * 1024)
#define READS_PER_WAKE 4
#define SMALL_FRAME (64 * 1024) /* read greedily below: a pullup of one is cheap */

/* ---- per sender state, process-wide -------------------------------------------------- */

struct pend {
    uint64_t batch; /* batch number */
    uint64_t chunk; /* seq of the chunk that ends it in the queue */
};

struct sender {
    struct sender *next;
    char source[SL_CONF_NAME_MAX + 1];
    char id[SL_PROTO_ID_MAX + 1];
    char key[SL_CHUNK_TAG_MAX]; /* "source\0id": the tag of its batches' chunks */
    size_t klen;
    uint64_t accepted; /* highest batch taken into the queue (or being emitted) */
    uint64_t acked;    /* highest batch acknowledged (durable) */
    struct pend *pend; /* accepted, not yet durable, in order */
    size_t phead, pcount, pcap;
    /* Batches being emitted, not yet pushed (one per connection at most: a
     * reconnection may take later batches in on another thread while an
     * old connection still emits), and the highest pushed: what a tag may
     * vouch for (sender_tag). */
    uint64_t *emitting;
    size_t nemit, emitcap;
    uint64_t pushed;
};

static pthread_mutex_t senders_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sender *senders;
static bool state_loaded;

/* ---- a connection --------------------------------------------------------------------- */

struct sconn {
    TAILQ_ENTRY(sconn) link;
    struct sl_source *src;
    int fd;
    struct event *ev;  /* EV_READ | EV_PERSIST, idle timeout */
    struct event *wev; /* EV_WRITE while out holds bytes */
    struct event *ka;  /* keepalive period */
    struct evbuffer *in, *out;
    struct sl_stream_pause pause; /* waiting for queue space */
    struct sl_durable_waiter dw;  /* the oldest pending chunk */
    struct sender *snd;           /* after HELLO */
    bool closing; /* EOF, error or stop: close once the batch being emitted is done */
    bool in_batch;
    uint64_t batch_seq;
    size_t batch_len, batch_off, frame_len;
    struct sl_frame_state fs;
    uint64_t sent_ack;
    bool sent_since_tick;
    uint64_t ka_ms;
    struct sl_peer peer;
    SSL *ssl;         /* tls = on: owned */
    bool handshaking; /* the TLS handshake is not done yet */
    int first_byte;   /* the peer's first byte (TLS: 0x16), -1 before it came */
    char cert[256];   /* the client certificate's subject (add_fields = peer_cert) */
};

TAILQ_HEAD(sconn_list, sconn);

struct sluice_source {
    struct evconnlistener *listener;
    struct sconn_list conns;
    size_t nconns;
};

static struct sluice_source *
src_of(const struct sl_source *s)
{
    return s->priv;
}

/* ---- the duplicate filter's file ------------------------------------------------------ */

/* Writes every sender of source to path (temp file + rename).  Under senders_mu. */
static void
state_save(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f, "# sluice source duplicate filter v1: source sender_id acked\n");
    for (struct sender *x = senders; x != NULL; x = x->next) {
        fprintf(f, "%s %s %llu\n", x->source, x->id, (unsigned long long)x->acked);
    }
    if (fflush(f) == 0 && fclose(f) == 0) {
        (void)rename(tmp, path);
    }
}

static struct sender *sender_find(const char *source, const char *id, bool create);

/* Reads path once per process (every source's entries). */
static void
state_load(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char src[SL_CONF_NAME_MAX + 1], id[SL_PROTO_ID_MAX + 1];
        unsigned long long acked;
        int off = 0;
        char *end = NULL;
        if (line[0] == '#' || sscanf(line, "%64s %64s %n", src, id, &off) != 2 || off == 0) {
            continue;
        }
        errno = 0;
        acked = strtoull(line + off, &end, 10);
        if (errno != 0 || end == line + off || (*end != '\n' && *end != '\0')) {
            continue;
        }
        struct sender *x = sender_find(src, id, true);
        if (x != NULL && acked > x->acked) {
            x->acked = x->accepted = acked;
        }
    }
    fclose(f);
}

/* Under senders_mu. */
static struct sender *
sender_find(const char *source, const char *id, bool create)
{
    for (struct sender *x = senders; x != NULL; x = x->next) {
        if (strcmp(x->id, id) == 0 && strcmp(x->source, source) == 0) {
            return x;
        }
    }
    if (!create) {
        return NULL;
    }
    struct sender *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return NULL;
    }
    snprintf(x->source, sizeof(x->source), "%s", source);
    snprintf(x->id, sizeof(x->id), "%s", id);
    size_t sl = strlen(x->source), il = strlen(x->id);
    memcpy(x->key, x->source, sl + 1);
    memcpy(x->key + sl + 1, x->id, il);
    x->klen = sl + 1 + il;
    x->next = senders;
    senders = x;
    return x;
}

/* Under senders_mu. */
static int
sender_pend(struct sender *x, uint64_t batch, uint64_t chunk)
{
    if (x->pcount == x->pcap || x->phead + x->pcount == x->pcap) {
        if (x->phead > 0) {
            memmove(x->pend, x->pend + x->phead, x->pcount * sizeof(*x->pend));
            x->phead = 0;
        }
        if (x->pcount == x->pcap) {
            size_t cap = x->pcap == 0 ? 64 : x->pcap * 2;
            struct pend *n = realloc(x->pend, cap * sizeof(*n));
            if (n == NULL) {
                return -1;
            }
            x->pend = n;
            x->pcap = cap;
        }
    }
    x->pend[x->phead + x->pcount].batch = batch;
    x->pend[x->phead + x->pcount].chunk = chunk;
    x->pcount++;
    return 0;
}

/* A disk queue writes each batch's number in the record of the chunk that
 * ends it and rebuilds the filter from them at start. */
static bool
queue_keeps_tags(const struct sl_source *s)
{
    return atomic_load_explicit(&sl_queue_disk_stats(sl_lane_queue(s))->on, memory_order_relaxed);
}

/*
 * The tag for the chunk that ends batch b (about to be pushed): the highest
 * number n such that every batch <= n this process took in is in a chunk
 * pushed before this one, or is b.  A batch with a lower number still being
 * emitted by another connection (its chunk pushed later, so possibly lost
 * with a crash that keeps this one) caps it below that batch: a restart
 * then takes a resend of what the cap excludes (duplicates), never skips a
 * batch the queue does not hold.  Under senders_mu.
 */
static uint64_t
sender_tag(const struct sender *x, uint64_t b)
{
    uint64_t tag = x->pushed > b ? x->pushed : b;
    for (size_t i = 0; i < x->nemit; i++) {
        if (x->emitting[i] != b && x->emitting[i] <= tag) {
            tag = x->emitting[i] - 1;
        }
    }
    return tag;
}

/* Batch b starts (add) or has been pushed (remove).  Under senders_mu.
 * Returns 0, or -1 out of memory (add). */
static int
sender_emitting(struct sender *x, uint64_t b, bool add)
{
    if (add) {
        if (x->nemit == x->emitcap) {
            size_t cap = x->emitcap == 0 ? 4 : x->emitcap * 2;
            uint64_t *v = realloc(x->emitting, cap * sizeof(*v));
            if (v == NULL) {
                return -1;
            }
            x->emitting = v;
            x->emitcap = cap;
        }
        x->emitting[x->nemit++] = b;
        return 0;
    }
    for (size_t i = 0; i < x->nemit; i++) {
        if (x->emitting[i] == b) {
            x->emitting[i] = x->emitting[--x->nemit];
            break;
        }
    }
    return 0;
}

/* ---- sending -------------------------------------------------------------------------- */

static void conn_close(struct sconn *c);

static void
conn_flush(struct sconn *c)
{
    if (c->ssl != NULL) {
        if (c->handshaking) {
            return; /* nothing is sent before the handshake */
        }
        switch (sl_tls_io_write(c->ssl, c->out)) {
        case SL_TLS_IO_OK:
        case SL_TLS_IO_WANT_READ: /* the read event is on */
            return;
        case SL_TLS_IO_WANT_WRITE:
            event_add(c->wev, NULL);
            return;
        default:
            ERR_clear_error();
            evbuffer_drain(c->out, evbuffer_get_length(c->out));
            c->closing = true;
            return;
        }
    }
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            event_add(c->wev, NULL);
            return;
        }
        /* The peer is gone: drop what it would have got; reading ends too. */
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
        c->closing = true;
        return;
    }
}

static void
conn_send(struct sconn *c, const uint8_t *frame, size_t len)
{
    evbuffer_add(c->out, frame, len);
    c->sent_since_tick = true;
    conn_flush(c);
}

static void conn_durable_cb(struct sl_durable_waiter *w);

/*
 * Pops the sender's pending batches that are durable now, sends the
 * cumulative ACK if it advanced past what this connection sent, and waits
 * for the next pending chunk.
 */
static void
conn_ack_progress(struct sconn *c)
{
    struct sl_source *s = c->src;
    struct sender *x = c->snd;
    uint64_t durable = sl_queue_durable_seq(sl_lane_queue(s));
    uint64_t next = 0, acked;
    bool moved = false;
    const char *path = sl_source_sluice_config(s->cfg)->state_path;

    if (x == NULL) {
        return;
    }
    if (queue_keeps_tags(s)) {
        path = NULL; /* the queue's records are the filter: no file to rewrite per ACK */
    }
    pthread_mutex_lock(&senders_mu);
    while (x->pcount > 0 && x->pend[x->phead].chunk <= durable) {
        if (x->pend[x->phead].batch > x->acked) {
            x->acked = x->pend[x->phead].batch;
            moved = true;
        }
        x->phead++;
        x->pcount--;
    }
    if (x->pcount == 0) {
        x->phead = 0;
    } else {
        next = x->pend[x->phead].chunk;
    }
    acked = x->acked;
    if (moved && path != NULL) {
        state_save(path); /* before the ACK: what we acknowledge, we remember */
    }
    pthread_mutex_unlock(&senders_mu);
    if (acked > c->sent_ack) {
        uint8_t f[SL_PROTO_HEADER];
        c->sent_ack = acked;
        conn_send(c, f, sl_proto_ack(f, SL_PROTO_ACK, acked));
        sl_counter_add(&s->stats->acks_out, 1);
    }
    if (next != 0) {
        sl_lane_wait_durable(s, &c->dw, next);
    }
}

static void
conn_durable_cb(struct sl_durable_waiter *w)
{
    struct sconn *c = (struct sconn *)(void *)((char *)w - offsetof(struct sconn, dw));
    conn_ack_progress(c);
    if (c->closing && !c->in_batch) {
        conn_close(c);
    }
}

static void
conn_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *c = arg;
    conn_ack_progress(c);
    if (!c->sent_since_tick && c->snd != NULL && !c->closing) {
        uint8_t f[SL_PROTO_HEADER];
        conn_send(c, f, sl_proto_ack(f, SL_PROTO_KEEPALIVE, c->sent_ack));
    }
    c->sent_since_tick = false;
    if (c->closing && !c->in_batch) {
        conn_close(c);
    }
}

/* ---- receiving ------------------------------------------------------------------------ */

static void
conn_close(struct sconn *c)
{
    struct sl_source *s = c->src;
    struct sluice_source *t = src_of(s);
    if (c->pause.paused) {
        sl_stream_unpause(s, &c->pause);
    }
    sl_lane_unwait_durable(&c->dw);
    TAILQ_REMOVE(&t->conns, c, link);
    t->nconns--;
    sl_stream_leave(s);
    sl_counter_add(&s->stats->conn_closed, 1);
    event_free(c->ev);
    event_free(c->wev);
    event_free(c->ka);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    if (c->ssl != NULL) {
        if (!c->handshaking) {
            (void)SSL_shutdown(c->ssl); /* one non-blocking try at close_notify */
        }
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    close(c->fd);
    log_debug("source \"%s\": connection from %s closed", s->cfg->name, c->peer.text);
    free(c);
    sl_lane_idle(s);
}

/* A protocol error: counted, logged, answered, and the connection closed. */
static void
conn_error(struct sconn *c, int err)
{
    struct sl_source *s = c->src;
    uint64_t sup = 0;
    uint8_t f[SL_PROTO_HEADER + 2 + SL_PROTO_ERROR_TEXT_MAX];
    sl_counter_add(&s->stats->protocol_errors, 1);
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        log_warnx("source \"%s\" peer %s: protocol error: %s; closing the connection%s",
                  s->cfg->name, c->peer.text, sl_proto_strerror(err),
                  sup > 0 ? " (similar reports suppressed before)" : "");
    }
    conn_send(c, f,
              sl_proto_error(f, (enum sl_proto_err)(err < 0 ? -err : err), sl_proto_strerror(err)));
    c->closing = true;
    event_del(c->ev);
}

/* Emits the rest of the current batch.  False when paused for space. */
static bool
conn_emit(struct sconn *c)
{
    struct sl_source *s = c->src;
    struct sl_stream_emit x;
    bool stopped = false;
    const char *p = (const char *)evbuffer_pullup(c->in, (ssize_t)c->frame_len);

    sl_stream_emit_begin(&x, s, &c->fs, &c->peer);
    p += SL_PROTO_HEADER + c->batch_off;
    size_t used = s->codec->frame(&c->fs, p, c->batch_len - c->batch_off, s->cfg->max_line_bytes,
                                  sl_stream_line_cb, &x, &stopped);
    c->batch_off += used;
    sl_stream_emit_end(&x, &c->fs, c->peer.text);
    if (stopped) {
        sl_stream_pause(s, &c->pause, c->ev);
        return false;
    }
    /* The payload ends with '\n' (decoder): every line was offered. */
    evbuffer_drain(c->in, c->frame_len);
    c->in_batch = false;
    memset(&c->fs, 0, sizeof(c->fs));
    /* The batch's number goes in the record of the chunk that ends it: a
     * restart finds it on disk exactly when the batch's events are (and
     * every earlier batch's, sender_tag). */
    pthread_mutex_lock(&senders_mu);
    uint64_t tag = sender_tag(c->snd, c->batch_seq);
    pthread_mutex_unlock(&senders_mu);
    uint64_t chunk = sl_lane_seal_tag(s, c->snd->key, c->snd->klen, tag);
    pthread_mutex_lock(&senders_mu);
    (void)sender_emitting(c->snd, c->batch_seq, false); /* after the push: see sender_tag */
    if (c->batch_seq > c->snd->pushed) {
        c->snd->pushed = c->batch_seq;
    }
    int r = sender_pend(c->snd, c->batch_seq, chunk);
    pthread_mutex_unlock(&senders_mu);
    if (r < 0) {
        log_warnx("source \"%s\" peer %s: out of memory; closing", s->cfg->name, c->peer.text);
        c->closing = true; /* never acknowledged: the sender resends */
    }
    sl_counter_add(&s->stats->batches_in, 1);
    conn_ack_progress(c);
    return true;
}

static int
conn_hello(struct sconn *c, const struct sl_proto_frame *f)
{
    struct sl_source *s = c->src;
    struct sl_proto_hello h;
    int r = sl_proto_parse_hello(f, &h);
    if (r < 0) {
        return r;
    }
    if (h.vmin > SL_PROTO_VERSION || h.vmax < SL_PROTO_VERSION) {
        return -SL_PROTO_E_VERSION;
    }
    pthread_mutex_lock(&senders_mu);
    c->snd = sender_find(s->cfg->name, h.id, true);
    uint64_t accepted = 0;
    if (c->snd != NULL) {
        /* A disk queue's records name the batches they hold (rebuilt at
         * start): those are the receiver's, whatever the state file says. */
        uint64_t rec = sl_queue_tag_recovered(sl_lane_queue(s), c->snd->key, c->snd->klen);
        if (rec > c->snd->accepted) {
            c->snd->accepted = rec;
        }
        if (rec > c->snd->acked) {
            c->snd->acked = rec;
        }
        accepted = c->snd->accepted;
    }
    pthread_mutex_unlock(&senders_mu);
    if (c->snd == NULL) {
        return -SL_PROTO_E_SHUTDOWN; /* out of memory */
    }
    uint8_t w[SL_PROTO_HEADER + SL_PROTO_WELCOME_LEN];
    conn_send(c, w,
              sl_proto_welcome(w, accepted, (uint32_t)sl_queue_chunk_bytes(sl_lane_queue(s))));
    c->ka_ms = h.keepalive_ms < KEEPALIVE_MIN_MS   ? KEEPALIVE_MIN_MS
               : h.keepalive_ms > KEEPALIVE_MAX_MS ? KEEPALIVE_MAX_MS
                                                   : h.keepalive_ms;
    struct timeval tv = {.tv_sec = (time_t)(c->ka_ms / 1000),
                         .tv_usec = (suseconds_t)(c->ka_ms % 1000) * 1000};
    event_add(c->ka, &tv);
    log_debug("source \"%s\": sender \"%s\" from %s, resuming after batch %llu", s->cfg->name, h.id,
              c->peer.text, (unsigned long long)accepted);
    conn_ack_progress(c);
    return 0;
}

/* A BATCH frame at the head of c->in.  Returns 0 (take it or drop it as a
 * duplicate) or a protocol error. */
static int
conn_batch(struct sconn *c, const struct sl_proto_frame *f, size_t framelen)
{
    struct sl_source *s = c->src;
    struct sender *x = c->snd;
    bool dup;
    uint64_t acked;

    if (x == NULL) {
        return -SL_PROTO_E_STATE;
    }
    pthread_mutex_lock(&senders_mu);
    dup = f->seq <= x->accepted;
    if (!dup && sender_emitting(x, f->seq, true) < 0) {
        pthread_mutex_unlock(&senders_mu);
        return -SL_PROTO_E_SHUTDOWN; /* out of memory: not taken, the sender resends */
    }
    if (!dup) {
        x->accepted = f->seq;
    }
    acked = x->acked;
    pthread_mutex_unlock(&senders_mu);
    if (dup) {
        sl_counter_add(&s->stats->dup_batches, 1);
        evbuffer_drain(c->in, framelen);
        if (f->seq <= acked && acked > 0) {
            uint8_t a[SL_PROTO_HEADER];
            c->sent_ack = acked;
            conn_send(c, a, sl_proto_ack(a, SL_PROTO_ACK, acked));
            sl_counter_add(&s->stats->acks_out, 1);
        }
        return 0;
    }
    c->in_batch = true;
    c->batch_seq = f->seq;
    c->batch_len = f->len;
    c->batch_off = 0;
    c->frame_len = framelen;
    sl_lane_clock(s);
    (void)conn_emit(c);
    return 0;
}

/* Handles every complete frame in c->in; stops when paused. */
static void
conn_process(struct sconn *c)
{
    struct sl_source *s = c->src;
    uint32_t max_batch = (uint32_t)sl_queue_chunk_bytes(sl_lane_queue(s));

    for (;;) {
        if (c->in_batch) {
            if (!conn_emit(c)) {
                return; /* paused: resumed by conn_resume_cb */
            }
            continue;
        }
        if (c->closing && c->snd == NULL) {
            break;
        }
        size_t have = evbuffer_get_length(c->in);
        if (have == 0) {
            break;
        }
        size_t look = have < SL_PROTO_HEADER ? have : SL_PROTO_HEADER;
        const uint8_t *p = evbuffer_pullup(c->in, (ssize_t)look);
        struct sl_proto_frame f;
        long r = sl_proto_decode(p, look, max_batch, &f);
        if (r == 0 && look == SL_PROTO_HEADER) {
            /* The header is good: wait for, then decode, the whole frame. */
            size_t need = SL_PROTO_HEADER + ((size_t)p[4] << 24 | (size_t)p[5] << 16 |
                                             (size_t)p[6] << 8 | (size_t)p[7]);
            if (have < need) {
                break;
            }
            p = evbuffer_pullup(c->in, (ssize_t)need);
            r = sl_proto_decode(p, need, max_batch, &f);
        }
        if (r == 0) {
            break;
        }
        if (r < 0) {
            conn_error(c, (int)r);
            break;
        }
        int e = 0;
        if (f.type == SL_PROTO_HELLO && c->snd == NULL) {
            e = conn_hello(c, &f);
            evbuffer_drain(c->in, (size_t)r);
        } else if (f.type == SL_PROTO_BATCH) {
            e = conn_batch(c, &f, (size_t)r);
        } else {
            e = -SL_PROTO_E_STATE;
        }
        if (e < 0) {
            conn_error(c, e);
            break;
        }
        if (c->closing && !c->in_batch) {
            break;
        }
    }
    if (c->closing && !c->in_batch && !c->pause.paused) {
        conn_close(c);
    }
}

static int conn_arm(struct sconn *c);

static void
conn_tls_refused(struct sconn *c, enum sl_tls_reason r, const char *detail)
{
    sl_stream_tls_refused(c->src, c->peer.text, (int)r, detail);
    c->closing = true;
    event_del(c->ev);
}

/* One step of the server handshake: true once it is done and the peer
 * accepted (the connection then reads frames), false while it waits or
 * after it failed (counted, logged, c->closing set). */
static bool
conn_handshake(struct sconn *c)
{
    struct sl_tls *tls = c->src->shared->tls;
    unsigned char b;
    int ssl_err = 0;
    if (c->first_byte < 0 && recv(c->fd, &b, 1, MSG_PEEK) == 1) {
        c->first_byte = b;
    }
    switch (sl_tls_io_handshake(c->ssl, &ssl_err)) {
    case SL_TLS_IO_OK:
        c->handshaking = false;
        if (!sl_tls_handshake_done(tls, c->ssl)) {
            conn_tls_refused(c, SL_TLS_R_NAME, "certificate name not in tls_allowed_names");
            return false;
        }
        if (c->src->cfg->add_fields & SL_FIELD_PEER_CERT) {
            c->peer.cert = c->cert;
            c->peer.cert_len = sl_tls_peer_subject(c->ssl, c->cert, sizeof(c->cert));
        }
        if (conn_arm(c) < 0) { /* from now on: idle_timeout */
            c->closing = true;
            return false;
        }
        conn_flush(c);
        return true;
    case SL_TLS_IO_WANT_WRITE:
        event_add(c->wev, NULL);
        return false;
    case SL_TLS_IO_WANT_READ:
        return false;
    default:
        break;
    }
    char detail[160];
    sl_tls_failure_detail(c->ssl, detail, sizeof(detail));
    conn_tls_refused(c, sl_tls_handshake_failed(tls, c->ssl, ssl_err, c->first_byte), detail);
    return false;
}

/*
 * How many bytes the next read asks for.  conn_emit needs a batch's payload
 * in one piece; a frame split over two of c->in's chains is pulled up, a
 * copy of the whole frame.  So a large frame whose header is buffered is
 * read exactly: its rest and the next frame's header, into one chain (the
 * reserve realigns the few bytes already there, or the chain reserved for
 * the whole frame has the room), and once it is whole it is handled before
 * anything more is read; the next frame then starts a chain of its own
 * with its header.  Otherwise (no header yet, small frames) a greedy read
 * with room for a whole frame.  0: a whole frame (or a header the decoder
 * refuses) is buffered: handle it first.
 */
static size_t
conn_read_want(struct sconn *c, uint32_t max_batch)
{
    size_t have = evbuffer_get_length(c->in);
    size_t greedy = (size_t)max_batch + 2 * SL_PROTO_HEADER;
    if (greedy < READ_BYTES) {
        greedy = READ_BYTES;
    }
    if (have < SL_PROTO_HEADER) {
        return greedy - have;
    }
    uint8_t h[SL_PROTO_HEADER];
    if (evbuffer_copyout(c->in, h, SL_PROTO_HEADER) != SL_PROTO_HEADER) {
        return 0;
    }
    size_t plen = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | (size_t)h[7];
    if (plen > max_batch || have >= SL_PROTO_HEADER + plen) {
        return 0; /* whole, or refused by the decoder as soon as it looks */
    }
    if (SL_PROTO_HEADER + plen < SMALL_FRAME) {
        return have < READ_BYTES ? READ_BYTES - have : 0;
    }
    return SL_PROTO_HEADER + plen - have + SL_PROTO_HEADER;
}

/* Reads what the socket holds, up to a whole frame beyond what is
 * buffered (a few reads per wake-up rather than one small one). */
static void
conn_read(struct sconn *c)
{
    struct sl_source *s = c->src;
    if (c->ssl != NULL) {
        if (c->handshaking && !conn_handshake(c)) {
            if (c->closing) {
                conn_process(c); /* nothing was read: closes c */
            }
            return;
        }
        size_t got = 0;
        enum sl_tls_io io = SL_TLS_IO_OK;
        if (evbuffer_get_length(c->in) < READ_BYTES) {
            io = sl_tls_io_read(c->ssl, c->in, READ_BYTES, &got);
        }
        sl_counter_add(&s->stats->bytes_in, (uint64_t)got);
        if (io == SL_TLS_IO_OK && (got > 0 || SSL_pending(c->ssl) > 0)) {
            event_active(c->ev, EV_READ, 0); /* OpenSSL may hold more already */
        } else if (io == SL_TLS_IO_WANT_WRITE) {
            event_add(c->wev, NULL);
        } else if (io == SL_TLS_IO_EOF || io == SL_TLS_IO_ERROR) {
            ERR_clear_error();
            c->closing = true;
            event_del(c->ev);
        }
        if (evbuffer_get_length(c->out) > 0) {
            conn_flush(c); /* a write that waited for a read */
        }
        conn_process(c);
        return;
    }
    uint32_t max_batch = (uint32_t)sl_queue_chunk_bytes(sl_lane_queue(s));
    for (int i = 0; i < READS_PER_WAKE; i++) {
        size_t want = conn_read_want(c, max_batch);
        if (want == 0) {
            break;
        }
        /* read() into reserved space: evbuffer_read would add an
         * ioctl(FIONREAD) to every read. */
        struct evbuffer_iovec v;
        ssize_t n = -1;
        if (evbuffer_reserve_space(c->in, (ev_ssize_t)want, &v, 1) == 1) {
            n = read(c->fd, v.iov_base, want);
            v.iov_len = n > 0 ? (size_t)n : 0;
            int err = errno;
            evbuffer_commit_space(c->in, &v, 1);
            errno = err;
        } else {
            errno = ENOMEM;
        }
        if (n > 0) {
            sl_counter_add(&s->stats->bytes_in, (uint64_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            c->closing = true;
            event_del(c->ev);
            /* A frame cut by the close is dropped: the sender resends it. */
        }
        break;
    }
    conn_process(c);
}

static void
conn_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *c = arg;
    if ((what & EV_TIMEOUT) && c->handshaking) {
        sl_tls_count(c->src->shared->tls, SL_TLS_R_TIMEOUT);
        conn_tls_refused(c, SL_TLS_R_TIMEOUT, "no handshake within tls_handshake_timeout");
        conn_process(c);
        return;
    }
    if (what & EV_TIMEOUT) {
        sl_counter_add(&c->src->stats->conn_idle_closed, 1);
        c->closing = true;
        event_del(c->ev);
        conn_process(c);
        return;
    }
    conn_read(c);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *c = arg;
    if (c->handshaking) {
        conn_read(c); /* the handshake wanted to write */
        return;
    }
    conn_flush(c);
}

static int
conn_arm(struct sconn *c)
{
    const struct sl_source_tcp_config *tc = &sl_source_sluice_config(c->src->cfg)->tcp;
    return sl_stream_arm(c->ev,
                         c->handshaking ? tc->tls.handshake_timeout_ms : tc->idle_timeout_ms);
}

static void
conn_resume_cb(struct sl_waiter *w)
{
    struct sconn *c = (struct sconn *)(void *)((char *)w - offsetof(struct sconn, pause.wait));
    sl_stream_unpause(c->src, &c->pause);
    if (!c->closing && conn_arm(c) < 0) {
        c->closing = true;
    }
    if (!c->closing && c->ssl != NULL && SSL_pending(c->ssl) > 0) {
        event_active(c->ev, EV_READ, 0); /* decrypted bytes wait in OpenSSL, not in the socket */
    }
    conn_process(c); /* may pause again, or close c */
}

static void
conn_new(struct sl_source *s, int fd, const struct sockaddr *sa)
{
    struct sluice_source *t = src_of(s);
    struct sl_lane_thread *p = sl_lane_thread(s);
    if (s->stopping || !sl_stream_allowed(s, sa) ||
        !sl_stream_admit(s, sl_source_sluice_config(s->cfg)->tcp.max_connections)) {
        close(fd);
        return;
    }
    struct sconn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto err;
    }
    c->src = s;
    c->fd = fd;
    /* ACKs are small writes answered by no reply: without TCP_NODELAY,
     * Nagle holds each behind the previous one's delayed ACK (40 ms). */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->pause.wait.resume_cb = conn_resume_cb;
    c->dw.durable_cb = conn_durable_cb;
    sl_peer_from_addr(&c->peer, sa);
    c->first_byte = -1;
    if (s->shared->tls != NULL) {
        c->ssl = sl_tls_ssl_new(s->shared->tls, NULL);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
            goto err;
        }
        c->handshaking = true;
    }
    c->ev = event_new(p->base, fd, EV_READ | EV_PERSIST, conn_event_cb, c);
    c->wev = event_new(p->base, fd, EV_WRITE, conn_write_cb, c);
    c->ka = event_new(p->base, -1, EV_PERSIST, conn_keepalive_cb, c);
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->ev == NULL || c->wev == NULL || c->ka == NULL || c->in == NULL || c->out == NULL ||
        conn_arm(c) < 0) {
        goto err;
    }
    TAILQ_INSERT_TAIL(&t->conns, c, link);
    t->nconns++;
    sl_counter_add(&s->stats->conn_accepted, 1);
    return;
err:
    log_warnx("source \"%s\": out of memory accepting a connection", s->cfg->name);
    sl_stream_leave(s);
    if (c != NULL) {
        if (c->ev != NULL) {
            event_free(c->ev);
        }
        if (c->wev != NULL) {
            event_free(c->wev);
        }
        if (c->ka != NULL) {
            event_free(c->ka);
        }
        if (c->in != NULL) {
            evbuffer_free(c->in);
        }
        if (c->out != NULL) {
            evbuffer_free(c->out);
        }
        if (c->ssl != NULL) {
            SSL_free(c->ssl);
        }
    }
    free(c);
    close(fd);
}

static void
sluice_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                 void *arg)
{
    conn_new(arg, fd, sa);
}

static void
sluice_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct sl_source *s = arg;
    sl_counter_add(&s->stats->accept_errors, 1);
}

static int
sluice_bind(const struct sl_source_config *cfg, struct sl_source_shared *shared)
{
    return sl_source_bind_inet(cfg, SOCK_STREAM);
}

static int
sluice_start(struct sl_source *s)
{
    struct event_base *base = sl_lane_thread(s)->base;
    struct sluice_source *t = calloc(1, sizeof(*t));
    const char *path = sl_source_sluice_config(s->cfg)->state_path;
    if (t == NULL) {
        return -1;
    }
    TAILQ_INIT(&t->conns);
    s->priv = t;
    pthread_mutex_lock(&senders_mu);
    if (path != NULL && !state_loaded) {
        state_load(path);
        state_loaded = true;
    }
    pthread_mutex_unlock(&senders_mu);
    t->listener = evconnlistener_new(base, sluice_accept_cb, s, LEV_OPT_CLOSE_ON_EXEC, 0, s->fd);
    if (t->listener == NULL) {
        return -1;
    }
    evconnlistener_set_error_cb(t->listener, sluice_accept_error_cb);
    return 0;
}

/* Stop: no new connections; every connection finishes the batch it is
 * emitting and closes (what it did not acknowledge, the sender resends). */
static void
sluice_stop_begin(struct sl_source *s)
{
    struct sluice_source *t = src_of(s);
    if (t->listener != NULL) {
        evconnlistener_free(t->listener);
        t->listener = NULL;
        close(s->fd);
        s->fd = -1;
    }
    struct sconn *c = TAILQ_FIRST(&t->conns);
    while (c != NULL) {
        struct sconn *next = TAILQ_NEXT(c, link);
        c->closing = true;
        event_del(c->ev);
        if (!c->in_batch && !c->pause.paused) {
            conn_close(c);
        }
        c = next;
    }
}

static bool
sluice_idle(const struct sl_source *s)
{
    return src_of(s) == NULL || src_of(s)->nconns == 0;
}

static uint64_t
sluice_close_all(struct sl_source *s)
{
    struct sluice_source *t = src_of(s);
    struct sconn *c, *next;
    uint64_t lost = 0;
    for (c = TAILQ_FIRST(&t->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        lost += evbuffer_get_length(c->in);
        c->in_batch = false;
        conn_close(c);
    }
    return lost;
}

static void
sluice_fini(struct sl_source *s)
{
    struct sluice_source *t = src_of(s);
    if (t == NULL) {
        return;
    }
    (void)sluice_close_all(s);
    if (t->listener != NULL) {
        evconnlistener_free(t->listener);
    }
    free(t);
    s->priv = NULL;
}

/* The duplicate filter outlives every instance (a reload may remove a
 * sluice source and add it back, or replace it: its senders must find what
 * was accepted and is still pending): freed at the end of the process. */
void
sl_source_sluice_free_senders(void)
{
    pthread_mutex_lock(&senders_mu);
    while (senders != NULL) {
        struct sender *x = senders;
        senders = x->next;
        free(x->pend);
        free(x->emitting);
        free(x);
    }
    state_loaded = false;
    pthread_mutex_unlock(&senders_mu);
}

const struct sl_source_type sl_source_sluice = {
    .name = "sluice",
    .label = "sluice",
    .socktype = SOCK_STREAM,
    .reuseport = true,
    .bind = sluice_bind,
    .start = sluice_start,
    .stop_begin = sluice_stop_begin,
    .idle = sluice_idle,
    .close_all = sluice_close_all,
    .fini = sluice_fini,
};
