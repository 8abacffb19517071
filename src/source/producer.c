/*
 * producer — the producer threads (one event_base each).
 *
 * A producer thread owns its share of every source's sockets, its
 * connections and, for every queue, the chunk it is filling (its lane).
 * Encoded events are appended to the lane's chunk; the chunk is pushed to
 * the queue when it is full or at the end of the loop turn in which it got
 * its first bytes (flush_ev, activated once per turn and run after the read
 * callbacks of that turn), so a trickle is never held back and a flood
 * costs one push per chunk.  Exception: while the queue is stuck (a
 * quarter or more of its chunks in use and no chunk given back by the
 * writer for DEFER_MS: its sink is stalled or failing), a chunk less than
 * half full is kept for up to DEFER_MS to fill further, so a backlog is
 * made of full chunks and the queue's capacity holds about capacity bytes
 * of events rather than many part-empty chunks.  And while half the chunks
 * are in flight (a busy writer, many small pushes: a UDP flood of small
 * reads would otherwise exhaust the chunk count long before the bytes and
 * drop datagrams), the chunk is held for BUSY_DEFER_MS (1 ms) to fill.  A
 * writer that is merely a little behind triggers neither, so neither adds
 * latency in normal operation.
 *
 * DESIGN: backpressure.  When no chunk can be had, the source pauses the
 * reader that needs one (a TCP connection: EV_READ off, so the kernel
 * window closes and the sender blocks) and puts its waiter on the thread's
 * list (sl_lane_wait); the thread then announces on its sl_wake and
 * re-checks the queue (wake.h).  The writer signals the wake when enough
 * chunks are free again; wake_cb then resumes the waiters in the order
 * they paused.  The same wake carries the stop request from the main
 * thread.
 *
 * The producer reaches its sources only through their type's table
 * (sluice/source.h) and the events through the source's codec
 * (sluice/codec.h); sources reach it only through the lane API (lane.h).
 *
 * Stop: producer_stop_begin() calls every source's stop_begin (tcp:
 * accept the backlog, close the listener, read every connection until
 * EAGAIN; udp: read the socket empty), and the thread pushes its last
 * chunks and leaves the loop once every source is idle.
 */
#include "sluice/producer.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/encode.h"
#include "sluice/clock.h"
#include "sluice/codec.h"
#include "sluice/log.h"
#include "sluice/source.h"
#include "sluice/wake.h"
#include "source/lane.h"
#include "util/thread.h"

#define READ_BUF_BYTES (128 * 1024)
#define DEFER_MS 10
#define BUSY_DEFER_MS 1

static void producer_wake_cb(evutil_socket_t fd, short what, void *arg);
static void producer_retire_cb(evutil_socket_t fd, short what, void *arg);

/* A config reload's change of this thread's sources, on the asking
 * thread's stack (under req_mu). */
struct producer_req {
    bool remove;               /* else add */
    struct sl_source_obj *obj; /* borrowed */
    bool done;                 /* the thread has answered (rc) */
    bool withdrawn;            /* the asker gave up waiting: not to be touched */
    int rc;
};
static void producer_flush_cb(evutil_socket_t fd, short what, void *arg);
static void producer_defer_cb(evutil_socket_t fd, short what, void *arg);

struct sl_lane {
    struct sl_queue *queue; /* borrowed */
    struct sl_chunk *chunk; /* held until pushed; NULL when none */
    uint64_t last_seq;      /* of the last chunk pushed from this lane; 0 = none */
};

TAILQ_HEAD(sl_waiter_list, sl_waiter);
TAILQ_HEAD(sl_durable_list, sl_durable_waiter);

struct sl_producer {
    struct sl_lane_thread t; /* first: what sources read (sl_lane_thread) */
    int id;
    const struct sl_daemon_config *daemon; /* borrowed */
    struct sl_thread thread;
    struct sl_wake wake; /* waiting for queue space, or told to stop */
    struct event *wake_ev;
    struct event *flush_ev;
    bool flush_pending;
    struct event *defer_ev; /* pushes partial chunks held back under backlog */
    bool defer_pending;
    struct sl_lane **lanes; /* one per queue its sources feed, each allocated alone */
    size_t nlanes;
    struct sl_source **srcs; /* one instance per source object, each allocated alone
                                (a reload adds and removes them: they never move) */
    size_t nsrcs;
    /* A config reload's request (sl_producer_add_source, _remove_source):
     * asked by main under req_mu, carried out on this thread. */
    pthread_mutex_t req_mu;
    pthread_cond_t req_cv;
    struct producer_req *req; /* under req_mu; NULL: none */
    atomic_bool req_asked;
    struct producer_req *retire;   /* under req_mu: the removal waiting for its source */
    struct sl_source *retiring;    /* this thread: the source being removed, or NULL */
    struct event *retire_ev;       /* runs producer_retire_cb: finish the removal */
    struct sl_waiter_list waiters; /* paused readers, in pause order */
    struct sl_durable_list durable_waiters; /* readers waiting for a durable seq */
    char *scratch;                 /* the codecs' scratch space */
    size_t scratch_cap;
    uint64_t lost_at_stop;         /* bytes thrown away by a forced stop */
};

/* The thread's event_base and its own events (wake, flush, defer). */
static int
producer_new_base(struct sl_producer *p)
{
    struct event_config *ec = event_config_new();
    if (ec == NULL) {
        return -1;
    }
    /* One thread owns this base: no locking needed. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    p->t.base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (p->t.base == NULL) {
        return -1;
    }
    p->wake_ev = event_new(p->t.base, p->wake.fd, EV_READ | EV_PERSIST, producer_wake_cb, p);
    p->flush_ev = event_new(p->t.base, -1, 0, producer_flush_cb, p);
    p->defer_ev = evtimer_new(p->t.base, producer_defer_cb, p);
    p->retire_ev = event_new(p->t.base, -1, 0, producer_retire_cb, p);
    if (p->wake_ev == NULL || p->flush_ev == NULL || p->defer_ev == NULL || p->retire_ev == NULL ||
        event_add(p->wake_ev, NULL) < 0) {
        return -1;
    }
    return 0;
}

/* The read buffer (a connection's pending partial line, up to
 * max_line_bytes + 1, is copied in front of each read) and the codecs'
 * scratch space, both sized for the longest line of any source. */
static int
producer_new_buffers(struct sl_producer *p, struct sl_source_obj *const *sources, size_t n)
{
    size_t longest = 0;
    size_t scratch = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sl_source_config *c = sources[i]->cfg;
        size_t need = c->codec->scratch_bytes(c->max_line_bytes);
        if (c->max_line_bytes > longest) {
            longest = c->max_line_bytes;
        }
        if (need > scratch) {
            scratch = need;
        }
    }
    p->t.rbuf_cap = READ_BUF_BYTES + longest + 2;
    p->t.rbuf = malloc(p->t.rbuf_cap);
    if (p->t.rbuf == NULL) {
        return -1;
    }
    if (scratch > 0) {
        p->scratch = malloc(scratch);
        p->scratch_cap = scratch;
        if (p->scratch == NULL) {
            return -1;
        }
    }
    return 0;
}

/* This thread's lane into queue q: found, or added (and the thread
 * registered as one of q's producers).  NULL on failure.  Set-up, or this
 * thread (a reload adds a source: main asks one thread at a time, so two
 * never register with one queue at once). */
static struct sl_lane *
producer_lane_for(struct sl_producer *p, struct sl_queue *q)
{
    for (size_t i = 0; i < p->nlanes; i++) {
        if (p->lanes[i]->queue == q) {
            return p->lanes[i];
        }
    }
    struct sl_lane **grown = realloc(p->lanes, (p->nlanes + 1) * sizeof(*grown));
    if (grown == NULL) {
        return NULL;
    }
    p->lanes = grown;
    struct sl_lane *l = calloc(1, sizeof(*l));
    if (l == NULL || sl_queue_add_producer(q, &p->wake) < 0) {
        free(l);
        return NULL;
    }
    l->queue = q;
    p->lanes[p->nlanes++] = l;
    return l;
}

/* One lane per queue the sources feed, in the order the sources name them
 * (at most one per source: allocated up front, so lanes never move), and
 * one instance per source object, started (its events armed). */
static int producer_add_source(struct sl_producer *p, struct sl_source_obj *o);

static int
producer_new_sources(struct sl_producer *p, struct sl_source_obj *const *sources, size_t n)
{
    p->srcs = calloc(n, sizeof(*p->srcs));
    if (p->srcs == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (producer_add_source(p, sources[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* One instance of source object o on this thread, started, appended to
 * srcs (which has room).  Returns 0, or -1 (the instance, if made, is in
 * srcs: sl_producer_free cleans it up). */
static int
producer_add_source(struct sl_producer *p, struct sl_source_obj *o)
{
    size_t thread = (size_t)p->id;
    struct sl_source *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    p->srcs[p->nsrcs++] = s;
    s->fd = -1;
    s->lane = producer_lane_for(p, o->queue);
    if (s->lane == NULL) {
        return -1;
    }
    s->cfg = o->cfg;
    s->type = sl_source_type_of(s->cfg);
    s->codec = s->cfg->codec;
    s->p = p;
    s->shared = &o->shared;
    s->stats = &o->stats[thread];
    s->fd = o->fds[thread];
    o->fds[thread] = -1;
    s->warn_rl.interval_ms = 10000;
    if (s->type->start(s) < 0) {
        return -1;
    }
    return 0;
}

struct sl_producer *
sl_producer_new(int id, const struct sl_daemon_config *daemon, struct sl_source_obj *const *sources,
                size_t nsources)
{
    if (nsources == 0) {
        return NULL; /* a loaded config has sources: nothing to run otherwise */
    }
    struct sl_producer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->id = id;
    p->daemon = daemon;
    p->t.id = (unsigned)id;
    p->t.nthreads = daemon->producer_threads;
    p->wake.fd = -1;
    atomic_init(&p->t.stop, 0);
    atomic_init(&p->req_asked, false);
    pthread_mutex_init(&p->req_mu, NULL);
    pthread_cond_init(&p->req_cv, NULL);
    TAILQ_INIT(&p->waiters);
    TAILQ_INIT(&p->durable_waiters);
    if (sl_wake_init(&p->wake) < 0 || producer_new_base(p) < 0 ||
        producer_new_buffers(p, sources, nsources) < 0 ||
        producer_new_sources(p, sources, nsources) < 0) {
        sl_producer_free(p);
        return NULL;
    }
    return p;
}

void
sl_producer_free(struct sl_producer *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; p->srcs != NULL && i < p->nsrcs; i++) {
        struct sl_source *s = p->srcs[i];
        if (s == NULL) {
            continue;
        }
        if (s->type != NULL) { /* else never set up */
            s->type->fini(s);
        }
        if (s->fd >= 0) {
            close(s->fd);
        }
        free(s);
    }
    for (size_t i = 0; p->lanes != NULL && i < p->nlanes; i++) {
        if (p->lanes[i]->chunk != NULL) {
            sl_queue_release(p->lanes[i]->queue, p->lanes[i]->chunk);
        }
        free(p->lanes[i]);
    }
    if (p->retire_ev != NULL) {
        event_free(p->retire_ev);
    }
    pthread_mutex_destroy(&p->req_mu);
    pthread_cond_destroy(&p->req_cv);
    if (p->wake_ev != NULL) {
        event_free(p->wake_ev);
    }
    if (p->flush_ev != NULL) {
        event_free(p->flush_ev);
    }
    if (p->defer_ev != NULL) {
        event_free(p->defer_ev);
    }
    if (p->t.base != NULL) {
        event_base_free(p->t.base);
    }
    sl_wake_fini(&p->wake);
    free(p->srcs);
    free(p->lanes);
    free(p->t.rbuf);
    free(p->scratch);
    free(p);
}

static void *
producer_main(void *arg)
{
    struct sl_producer *p = arg;
    event_base_dispatch(p->t.base);
    return NULL;
}

int
sl_producer_start(struct sl_producer *p)
{
    return sl_thread_start(&p->thread, producer_main, p);
}

void
sl_producer_stop(struct sl_producer *p, bool force)
{
    sl_thread_stop_request(&p->t.stop, force);
    /* Unconditional write: the thread may not be in a sleep announcement. */
    sl_wake_kick(&p->wake);
}

void
sl_producer_join(struct sl_producer *p)
{
    sl_thread_join(&p->thread);
}

int
sl_producer_join_until(struct sl_producer *p, const struct timespec *deadline)
{
    return sl_thread_join_until(&p->thread, deadline);
}

uint64_t
sl_producer_lost(const struct sl_producer *p)
{
    return p->lost_at_stop;
}

static void
producer_clock(struct sl_producer *p)
{
    p->t.now_ns = sl_realtime_ns();
}

void
sl_lane_clock(struct sl_source *s)
{
    producer_clock(s->p);
}

size_t
sl_source_fields(const struct sl_source_config *cfg, const char *host, uint64_t now_ns,
                 const struct sl_peer *peer, char *buf)
{
    unsigned f = cfg->add_fields;
    size_t len = 0;
    if (f == 0) {
        return 0;
    }
    if (f & SL_FIELD_TIME) {
        char t[SL_TIME_TEXT_MAX];
        size_t tl = sl_encode_time(now_ns, t);
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "received_at", t, tl);
    }
    if (f & SL_FIELD_SOURCE) {
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "source", cfg->name, strlen(cfg->name));
    }
    if (f & SL_FIELD_PEER) {
        if (peer->cred) {
            (void)sl_encode_cred(buf, SL_FIELDS_MAX, &len, peer->pid, peer->uid, peer->gid);
        } else {
            (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "peer", peer->text, peer->len);
        }
    }
    if (f & SL_FIELD_HOST) {
        const char *h = host != NULL ? host : "";
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "host", h, strlen(h));
    }
    if ((f & SL_FIELD_PEER_CERT) && peer->cert_len > 0) {
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "peer_cert", peer->cert, peer->cert_len);
    }
    return len;
}

void
sl_peer_from_addr(struct sl_peer *peer, const struct sockaddr *sa)
{
    peer->cert = NULL;
    peer->cert_len = 0;
    peer->cred = false;
    peer->len = sl_encode_sockaddr(sa, peer->text, sizeof(peer->text));
}

void
sl_peer_from_text(struct sl_peer *peer, const char *text)
{
    peer->cert = NULL;
    peer->cert_len = 0;
    size_t n = strlen(text);
    peer->cred = false;
    peer->len = n < sizeof(peer->text) ? n : sizeof(peer->text) - 1;
    memcpy(peer->text, text, peer->len);
    peer->text[peer->len] = '\0';
}

void
sl_peer_from_cred(struct sl_peer *peer, const struct ucred *uc)
{
    peer->cert = NULL;
    peer->cert_len = 0;
    int r = snprintf(peer->text, sizeof(peer->text), "pid %lld uid %u gid %u", (long long)uc->pid,
                     (unsigned)uc->uid, (unsigned)uc->gid);
    peer->len = r > 0 && (size_t)r < sizeof(peer->text) ? (size_t)r : 0;
    peer->cred = true;
    peer->pid = uc->pid;
    peer->uid = uc->uid;
    peer->gid = uc->gid;
}

/* Pushes the lane's chunk (holding bytes) and remembers its seq. */
static void
lane_push(struct sl_lane *l)
{
    uint64_t seq = sl_queue_push(l->queue, l->chunk);
    l->chunk = NULL;
    if (seq != 0) {
        l->last_seq = seq;
    }
}

size_t
sl_lane_fields(const struct sl_source *s, const struct sl_peer *peer, char *buf)
{
    return sl_source_fields(s->cfg, s->p->daemon->hostname, s->p->t.now_ns, peer, buf);
}

const char *
sl_lane_hostname(const struct sl_source *s)
{
    return s->p->daemon->hostname;
}

/* Makes sure the lanes' chunks are pushed at the end of this loop turn. */
static void
producer_schedule_flush(struct sl_producer *p)
{
    if (!p->flush_pending) {
        p->flush_pending = true;
        event_active(p->flush_ev, EV_TIMEOUT, 0);
    }
}

static void
producer_push_lanes(struct sl_producer *p)
{
    for (size_t i = 0; i < p->nlanes; i++) {
        struct sl_lane *l = p->lanes[i];
        if (l->chunk != NULL && l->chunk->len > 0) {
            lane_push(l);
        }
    }
}

static void
producer_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_producer *p = arg;
    uint64_t defer_ms = 0;
    p->flush_pending = false;
    for (size_t i = 0; i < p->nlanes; i++) {
        struct sl_lane *l = p->lanes[i];
        if (l->chunk == NULL || l->chunk->len == 0) {
            continue;
        }
        size_t nchunks = sl_queue_nchunks(l->queue);
        size_t in_use = sl_queue_in_use(l->queue);
        uint64_t ms = 0;
        if (!p->t.stopping && l->chunk->len < l->chunk->cap / 2) {
            if (in_use * 4 >= nchunks &&
                sl_now_ms() - sl_queue_last_release_ms(l->queue) >= DEFER_MS) {
                ms = DEFER_MS; /* the sink is stuck: make the backlog of full chunks */
            } else if (in_use * 2 >= nchunks) {
                ms = BUSY_DEFER_MS; /* half the chunks in flight: pack them */
            }
        }
        if (ms > 0) {
            defer_ms = defer_ms == 0 || ms < defer_ms ? ms : defer_ms;
            continue;
        }
        lane_push(l);
    }
    if (defer_ms > 0 && !p->defer_pending) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)defer_ms * 1000};
        p->defer_pending = true;
        event_add(p->defer_ev, &tv);
    }
}

static void
producer_defer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_producer *p = arg;
    p->defer_pending = false;
    producer_push_lanes(p);
}

/* The queue's when_full is drop_newest: TCP drops instead of pausing.
 * Read at each use (a reload may change it: sl_queue_set_when_full). */
static bool
lane_drop_newest(const struct sl_lane *l)
{
    return sl_queue_when_full(l->queue) == SL_WHEN_FULL_DROP_NEWEST;
}

bool
sl_lane_has_space(struct sl_source *s)
{
    struct sl_lane *l = s->lane;
    if (lane_drop_newest(l)) {
        return true;
    }
    if (l->chunk != NULL &&
        l->chunk->cap - l->chunk->len > s->cfg->max_line_bytes + SL_FIELDS_MAX) {
        return true;
    }
    return sl_queue_can_acquire(l->queue, SL_ACQUIRE_TCP);
}

/* Announce and re-check (wake.h) for a waiter of s. */
static void
producer_wait_space(struct sl_producer *p, struct sl_source *s)
{
    /* Push what we have so the writer can make progress and recycle; on a
     * drop_oldest queue, ask it to evict (it may have nothing new to pop). */
    producer_push_lanes(p);
    sl_queue_ask_eviction(s->lane->queue);
    sl_wake_announce(&p->wake);
    if (sl_queue_can_acquire(s->lane->queue, SL_ACQUIRE_TCP)) {
        /* Space appeared between the failure and the announcement: make
         * the wake callback run now instead of waiting for a signal. */
        sl_wake_cancel(&p->wake);
        event_active(p->wake_ev, EV_READ, 0);
    }
}

void
sl_lane_wait(struct sl_source *s, struct sl_waiter *w)
{
    struct sl_producer *p = s->p;
    if (!w->waiting) {
        w->waiting = true;
        w->src = s;
        TAILQ_INSERT_TAIL(&p->waiters, w, link);
    }
    producer_wait_space(p, s);
}

void
sl_lane_unwait(struct sl_waiter *w)
{
    if (w->waiting) {
        TAILQ_REMOVE(&w->src->p->waiters, w, link);
        w->waiting = false;
    }
}

/*
 * Resumes the waiters whose queue has room.  Walks the whole list once: a
 * waiter whose queue is still full must not hold back one whose queue has
 * room (one queue cannot starve another).  Order is kept within each
 * queue: a waiter is skipped only when its own queue has no space.  One
 * that waits again goes to the tail and is not revisited in this walk.
 */
static void
producer_resume_waiters(struct sl_producer *p)
{
    size_t n = 0;
    struct sl_waiter *w;
    TAILQ_FOREACH (w, &p->waiters, link) {
        n++;
    }
    struct sl_waiter *blocked = NULL;
    w = TAILQ_FIRST(&p->waiters);
    for (size_t i = 0; i < n && w != NULL; i++) {
        struct sl_waiter *next = TAILQ_NEXT(w, link);
        if (!sl_lane_has_space(w->src)) {
            if (blocked == NULL) {
                blocked = w;
            }
            w = next;
            continue;
        }
        sl_lane_unwait(w);
        w->resume_cb(w); /* may close w's reader; next is still linked */
        w = next;
    }
    if (blocked != NULL) {
        /* Announce and re-check (wake.h); the re-check covers every queue
         * a waiter still waits for. */
        producer_wait_space(p, blocked->src);
        TAILQ_FOREACH (w, &p->waiters, link) {
            if (sl_lane_has_space(w->src)) {
                sl_wake_cancel(&p->wake);
                event_active(p->wake_ev, EV_READ, 0);
                break;
            }
        }
    }
}

/*
 * A chunk taken for a line that was then dropped must not stay in the lane
 * empty: no flush is scheduled for an empty chunk, so it would be held out
 * of the queue for good (enough of them and paused producers are never
 * woken).  Give it back at once.
 */
static void
producer_drop_empty(struct sl_lane *l)
{
    if (l->chunk != NULL && l->chunk->len == 0) {
        sl_queue_release(l->queue, l->chunk);
        l->chunk = NULL;
    }
}

enum sl_emit
sl_chunk_encode(struct sl_queue *q, struct sl_chunk **chunk, uint64_t *last_seq,
                const struct sl_source_config *cfg, char *scratch, uint64_t recv_ns,
                const char *line, size_t len, const char *fields, size_t flen,
                enum sl_acquire_class cls, struct sl_tally *t)
{
    size_t chunk_cap = sl_queue_chunk_bytes(q);
    uint64_t seq;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (*chunk == NULL) {
            *chunk = sl_queue_acquire(q, cls);
            if (*chunk == NULL) {
                return SL_EMIT_NO_SPACE;
            }
        }
        struct sl_chunk *ch = *chunk;
        struct sl_codec_out o = {
            .data = ch->data + ch->len,
            .room = ch->cap - ch->len,
            .max_out = chunk_cap,
            .scratch = scratch,
            .opts = &cfg->codec_opts,
            .recv_ns = recv_ns,
        };
        switch (cfg->codec->encode(line, len, fields, flen, &o)) {
        case SL_ENCODE_OK:
            ch->len += o.len;
            ch->nevents++;
            t->events++;
            t->unparsed += o.unparsed;
            return SL_EMIT_OK;
        case SL_ENCODE_INVALID:
            if (t->invalid == 0) {
                t->first_reason = o.reason;
            }
            t->invalid++;
            return SL_EMIT_DROPPED;
        case SL_ENCODE_TOO_LARGE:
            t->too_large++;
            return SL_EMIT_DROPPED;
        case SL_ENCODE_NO_ROOM:
            /* Full: hand it on and try once more with an empty chunk. */
            seq = sl_queue_push(q, ch);
            *chunk = NULL;
            if (seq != 0 && last_seq != NULL) {
                *last_seq = seq;
            }
            break;
        }
    }
    return SL_EMIT_NO_SPACE; /* not reached: an empty chunk always has room */
}

struct sl_queue *
sl_lane_queue(const struct sl_source *s)
{
    return s->lane->queue;
}

enum sl_emit
sl_lane_emit(struct sl_source *s, const char *line, size_t len, const char *fields, size_t flen,
             enum sl_acquire_class cls, struct sl_tally *t)
{
    struct sl_producer *p = s->p;
    struct sl_lane *l = s->lane;
    enum sl_emit e = sl_chunk_encode(l->queue, &l->chunk, &l->last_seq, s->cfg, p->scratch,
                                     p->t.now_ns, line, len, fields, flen, cls, t);
    if (e == SL_EMIT_NO_SPACE && lane_drop_newest(l) && cls == SL_ACQUIRE_TCP) {
        /* when_full = drop_newest: no chunk to be had, so the whole event
         * goes, counted; the reader reads on.  Bytes as received. */
        t->dropped++;
        sl_counter_add(&s->stats->dropped_newest, 1);
        sl_counter_add(&s->stats->dropped_newest_bytes, len);
        return SL_EMIT_DROPPED;
    }
    if (e == SL_EMIT_OK && l->chunk->nevents == 1) {
        l->chunk->first_ns = p->t.now_ns;
        producer_schedule_flush(p);
    } else if (e == SL_EMIT_DROPPED) {
        producer_drop_empty(l);
    }
    return e;
}

size_t
sl_lane_room(const struct sl_source *s)
{
    const struct sl_chunk *ch = s->lane->chunk;
    return ch != NULL ? ch->cap - ch->len : 0;
}

void
sl_lane_append(struct sl_source *s, const char *bytes, size_t n, uint32_t nevents,
               struct sl_tally *t)
{
    struct sl_producer *p = s->p;
    struct sl_chunk *ch = s->lane->chunk;
    char *to = ch->data + ch->len;
    /* Read straight into the chunk (sl_lane_direct): a run is already in
     * place, or lies further on in the chunk's free room (after an empty
     * or over-long line the framing skipped); memmove for that overlap,
     * which only moves bytes down, behind the line being framed. */
    if (bytes != to) {
        memmove(to, bytes, n);
    }
    ch->len += n;
    t->events += nevents;
    if (ch->nevents == 0) {
        ch->first_ns = p->t.now_ns;
        producer_schedule_flush(p);
    }
    ch->nevents += nevents;
}

char *
sl_lane_direct(struct sl_source *s, size_t min_room, size_t *room)
{
    struct sl_lane *l = s->lane;
    if (sl_queue_chunk_bytes(l->queue) < min_room) {
        return NULL; /* small chunks: never (not a chunk taken for nothing) */
    }
    if (l->chunk != NULL && l->chunk->cap - l->chunk->len < min_room) {
        /* Nearly full: hand it on now, as the next event would, but only
         * when it is at least half full (a chunk of 32-64 KiB would
         * otherwise go part-filled, against the producer's deferral that
         * makes a backlog of full chunks) and another chunk can be had
         * (else the ordinary path fills what is left and pauses as it
         * does today). */
        if (l->chunk->len < l->chunk->cap / 2 || !sl_queue_can_acquire(l->queue, SL_ACQUIRE_TCP)) {
            return NULL;
        }
        lane_push(l);
    }
    if (l->chunk == NULL) {
        l->chunk = sl_queue_acquire(l->queue, SL_ACQUIRE_TCP);
        if (l->chunk == NULL) {
            return NULL;
        }
    }
    struct sl_chunk *ch = l->chunk;
    if (ch->cap - ch->len < min_room) {
        producer_drop_empty(l);
        return NULL;
    }
    *room = ch->cap - ch->len;
    return ch->data + ch->len;
}

void
sl_lane_direct_done(struct sl_source *s)
{
    producer_drop_empty(s->lane);
}

uint64_t
sl_lane_seal(struct sl_source *s)
{
    struct sl_lane *l = s->lane;
    if (l->chunk != NULL && l->chunk->len > 0) {
        lane_push(l);
    }
    return l->last_seq;
}

uint64_t
sl_lane_seal_tag(struct sl_source *s, const void *key, size_t klen, uint64_t seq)
{
    struct sl_lane *l = s->lane;
    if (l->chunk != NULL && l->chunk->len > 0 && klen > 0 && klen <= SL_CHUNK_TAG_MAX) {
        memcpy(l->chunk->tag, key, klen);
        l->chunk->tag_len = (uint16_t)klen;
        l->chunk->tag_seq = seq;
    }
    return sl_lane_seal(s);
}

void
sl_lane_wait_durable(struct sl_source *s, struct sl_durable_waiter *w, uint64_t seq)
{
    struct sl_producer *p = s->p;
    struct sl_queue *q = s->lane->queue;
    w->seq = seq;
    if (!w->waiting) {
        w->waiting = true;
        w->src = s;
        TAILQ_INSERT_TAIL(&p->durable_waiters, w, link);
        sl_queue_watch_durable(q, 1);
    }
    /* Announce and re-check (wake.h; the writer's side: sl_queue_set_durable). */
    sl_wake_announce(&p->wake);
    if (sl_queue_durable_seq(q) >= seq) {
        sl_wake_cancel(&p->wake);
        event_active(p->wake_ev, EV_READ, 0);
    }
}

void
sl_lane_unwait_durable(struct sl_durable_waiter *w)
{
    if (w->waiting) {
        TAILQ_REMOVE(&w->src->p->durable_waiters, w, link);
        sl_queue_watch_durable(w->src->lane->queue, -1);
        w->waiting = false;
    }
}

/* Calls back the durable waiters whose position was reached; announces
 * and re-checks for the others (a waiter that waits again in its callback
 * goes to the tail and is not revisited in this walk). */
static void
producer_resume_durable(struct sl_producer *p)
{
    size_t n = 0;
    struct sl_durable_waiter *w;
    TAILQ_FOREACH (w, &p->durable_waiters, link) {
        n++;
    }
    w = TAILQ_FIRST(&p->durable_waiters);
    for (size_t i = 0; i < n && w != NULL; i++) {
        struct sl_durable_waiter *next = TAILQ_NEXT(w, link);
        if (sl_queue_durable_seq(w->src->lane->queue) >= w->seq) {
            sl_lane_unwait_durable(w);
            w->durable_cb(w); /* may close w's reader; next is still linked */
        }
        w = next;
    }
    if (TAILQ_EMPTY(&p->durable_waiters)) {
        return;
    }
    sl_wake_announce(&p->wake);
    TAILQ_FOREACH (w, &p->durable_waiters, link) {
        if (sl_queue_durable_seq(w->src->lane->queue) >= w->seq) {
            sl_wake_cancel(&p->wake);
            event_active(p->wake_ev, EV_READ, 0);
            break;
        }
    }
}

/* Every source has nothing left in flight (no connection open). */
static bool
producer_done(struct sl_producer *p)
{
    for (size_t i = 0; i < p->nsrcs; i++) {
        const struct sl_source *s = p->srcs[i];
        if (s->type != NULL && s->type->idle != NULL && !s->type->idle(s)) {
            return false;
        }
    }
    return true;
}

static void
producer_finish(struct sl_producer *p)
{
    producer_push_lanes(p);
    /* A lane may still hold an empty chunk (taken for lines that were all
     * refused).  Give it back now, while every producer is alive: a release
     * wakes the queue's producers, and at sl_producer_free() time the
     * others may already be freed. */
    for (size_t i = 0; i < p->nlanes; i++) {
        struct sl_lane *l = p->lanes[i];
        if (l->chunk != NULL) {
            sl_queue_release(l->queue, l->chunk);
            l->chunk = NULL;
        }
    }
    event_base_loopbreak(p->t.base);
}

static void
producer_stop_begin(struct sl_producer *p)
{
    p->t.stopping = true;
    p->t.drain_until_ms = sl_now_ms() + SL_DRAIN_GRACE_MS;
    producer_clock(p);
    for (size_t i = 0; i < p->nsrcs; i++) {
        struct sl_source *s = p->srcs[i];
        if (!s->stopping) { /* else a reload's removal stops it already */
            s->stopping = true;
            s->drain_until_ms = p->t.drain_until_ms;
            s->type->stop_begin(s);
        }
    }
}

/* Forced stop: every source closes everything at once. */
static void
producer_close_all(struct sl_producer *p)
{
    for (size_t i = 0; i < p->nsrcs; i++) {
        struct sl_source *s = p->srcs[i];
        if (s->type->close_all != NULL) {
            p->lost_at_stop += s->type->close_all(s);
        }
    }
}

/* ---- a config reload adds or removes a source on this thread --------------------------- */

/* Answers r (under req_mu) unless its asker gave up. */
static void
producer_answer_locked(struct sl_producer *p, struct producer_req *r, int rc)
{
    if (r != NULL && !r->withdrawn) {
        r->rc = rc;
        r->done = true;
        pthread_cond_broadcast(&p->req_cv);
    }
}

/* Takes instance s out of srcs and frees it: fini (its events, its
 * connections), its socket.  This thread, outside s's own callbacks. */
static void
producer_drop_source(struct sl_producer *p, struct sl_source *s)
{
    for (size_t i = 0; i < p->nsrcs; i++) {
        if (p->srcs[i] == s) {
            memmove(p->srcs + i, p->srcs + i + 1, (p->nsrcs - i - 1) * sizeof(*p->srcs));
            p->nsrcs--;
            break;
        }
    }
    if (s->type != NULL) {
        s->type->fini(s);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    free(s);
}

/* An instance of r->obj on this thread, started on its event_base (the
 * socket main bound for it is in obj->fds).  The read buffer and the
 * codecs' scratch grow first if its lines may be longer. */
static int
producer_req_add(struct sl_producer *p, struct producer_req *r)
{
    const struct sl_source_config *c = r->obj->cfg;
    size_t need = c->codec->scratch_bytes(c->max_line_bytes);
    size_t rcap = READ_BUF_BYTES + c->max_line_bytes + 2;
    if (rcap > p->t.rbuf_cap) {
        char *nb = realloc(p->t.rbuf, rcap);
        if (nb == NULL) {
            return -1;
        }
        p->t.rbuf = nb;
        p->t.rbuf_cap = rcap;
    }
    if (need > p->scratch_cap) {
        char *ns = realloc(p->scratch, need);
        if (ns == NULL) {
            return -1;
        }
        p->scratch = ns;
        p->scratch_cap = need;
    }
    struct sl_source **grown = realloc(p->srcs, (p->nsrcs + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    p->srcs = grown;
    if (producer_add_source(p, r->obj) < 0) {
        producer_drop_source(p, p->srcs[p->nsrcs - 1]);
        return -1;
    }
    return 0;
}

/* Begins removing r->obj's instance: it stops as at a stop (no new
 * connection; what the kernel holds is read, connections closed at EOF or
 * after the drain grace); producer_retire_cb ends it once idle.  Returns
 * 1 (the answer waits for that) or -1 (no such instance). */
static int
producer_req_remove(struct sl_producer *p, struct producer_req *r)
{
    struct sl_source *s = NULL;
    for (size_t i = 0; i < p->nsrcs; i++) {
        if (p->srcs[i]->shared == &r->obj->shared) {
            s = p->srcs[i];
        }
    }
    if (s == NULL || p->retiring != NULL || s->stopping) {
        return -1;
    }
    p->retiring = s;
    p->retire = r;
    s->stopping = true;
    s->drain_until_ms = sl_now_ms() + SL_DRAIN_GRACE_MS;
    producer_clock(p);
    s->type->stop_begin(s);
    event_active(p->retire_ev, EV_TIMEOUT, 0);
    return 1;
}

static void
producer_take_req(struct sl_producer *p)
{
    pthread_mutex_lock(&p->req_mu);
    struct producer_req *r = p->req;
    p->req = NULL;
    if (r != NULL && !r->withdrawn) {
        int rc = r->remove ? producer_req_remove(p, r) : producer_req_add(p, r);
        if (rc <= 0) {
            producer_answer_locked(p, r, rc);
        }
    }
    pthread_mutex_unlock(&p->req_mu);
}

/* Frees lane l (pushed already) once no source on this thread feeds its
 * queue: a reload that removes the queue frees it after this answer, so no
 * lane may point at it (a source added later makes a lane again). */
static void
producer_drop_lane(struct sl_producer *p, struct sl_lane *l)
{
    for (size_t i = 0; l == NULL || i < p->nsrcs; i++) {
        if (l == NULL || p->srcs[i]->lane == l) {
            return;
        }
    }
    for (size_t i = 0; i < p->nlanes; i++) {
        if (p->lanes[i] == l) {
            memmove(p->lanes + i, p->lanes + i + 1, (p->nlanes - i - 1) * sizeof(*p->lanes));
            p->nlanes--;
            break;
        }
    }
    if (l->chunk != NULL) {
        sl_queue_release(l->queue, l->chunk); /* empty: producer_push_lanes pushed the rest */
    }
    free(l);
}

/*
 * The source being removed is idle (its connections closed, its socket
 * read): what it read is pushed into the queue, then it is freed and its
 * removal answered.  Runs from the loop (retire_ev), never inside one of
 * the source's callbacks.
 */
static void
producer_retire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_producer *p = arg;
    struct sl_source *s = p->retiring;
    (void)fd;
    (void)what;
    if (s == NULL || (s->type->idle != NULL && !s->type->idle(s))) {
        return; /* sl_lane_idle or a resumed waiter brings us back */
    }
    producer_push_lanes(p);
    p->retiring = NULL;
    struct sl_lane *lane = s->lane;
    producer_drop_source(p, s);
    producer_drop_lane(p, lane);
    pthread_mutex_lock(&p->req_mu);
    producer_answer_locked(p, p->retire, 0);
    p->retire = NULL;
    pthread_mutex_unlock(&p->req_mu);
}

/* Hands r to the thread and waits for its answer until timeout_ms. */
static int
producer_ask(struct sl_producer *p, struct producer_req *r, uint64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline = sl_timespec_add_ms(deadline, timeout_ms);
    pthread_mutex_lock(&p->req_mu);
    p->req = r;
    atomic_store(&p->req_asked, true);
    sl_wake_kick(&p->wake);
    while (!r->done) {
        if (pthread_cond_timedwait(&p->req_cv, &p->req_mu, &deadline) == ETIMEDOUT && !r->done) {
            r->withdrawn = true;
            if (p->req == r) {
                p->req = NULL;
            }
            if (p->retire == r) {
                p->retire = NULL;
            }
            break;
        }
    }
    pthread_mutex_unlock(&p->req_mu);
    return r->done ? r->rc : -2;
}

int
sl_producer_add_source(struct sl_producer *p, struct sl_source_obj *o, uint64_t timeout_ms)
{
    struct producer_req r = {.remove = false, .obj = o, .rc = -1};
    return producer_ask(p, &r, timeout_ms);
}

int
sl_producer_remove_source(struct sl_producer *p, struct sl_source_obj *o, uint64_t timeout_ms)
{
    struct producer_req r = {.remove = true, .obj = o, .rc = -1};
    return producer_ask(p, &r, timeout_ms);
}

static void
producer_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_producer *p = arg;
    sl_wake_drain(&p->wake);
    if (atomic_load(&p->req_asked) && atomic_exchange(&p->req_asked, false)) {
        producer_take_req(p);
    }
    int stop = atomic_load(&p->t.stop);
    if (stop == 2) {
        producer_close_all(p);
        producer_finish(p);
        return;
    }
    if (stop == 1 && !p->t.stopping) {
        producer_stop_begin(p);
    }
    producer_resume_waiters(p);
    producer_resume_durable(p);
    if (p->retiring != NULL) {
        event_active(p->retire_ev, EV_TIMEOUT, 0); /* a resumed reader may have finished */
    }
    if (p->t.stopping && producer_done(p)) {
        producer_finish(p);
    }
}

void
sl_lane_idle(struct sl_source *s)
{
    struct sl_producer *p = s->p;
    if (p->retiring == s) {
        event_active(p->retire_ev, EV_TIMEOUT, 0);
    }
    if (p->t.stopping && producer_done(p)) {
        producer_finish(p);
    }
}

void
sl_lane_report(struct sl_source *s, const char *peer, const struct sl_tally *t,
               uint64_t oversize)
{
    uint64_t suppressed = 0;
    char msg[384];
    size_t n = 0;
    if (t->invalid == 0 && t->too_large == 0 && oversize == 0 && t->framing_errors == 0 &&
        t->unparsed == 0 && t->dropped == 0) {
        return;
    }
    if (!sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &suppressed)) {
        return;
    }
    if (t->framing_errors > 0) {
        log_warnx("source \"%s\" peer %s: framing error: %s", s->cfg->name, peer,
                  t->framing_error != NULL ? t->framing_error : "?");
    }
    if (t->invalid == 0 && t->too_large == 0 && oversize == 0 && t->dropped == 0) {
        if (t->unparsed > 0) {
            log_warnx("source \"%s\" peer %s: %llu line(s) not parsed by codec %s, kept as "
                      "{\"message\":...}%s",
                      s->cfg->name, peer, (unsigned long long)t->unparsed, s->codec->name,
                      suppressed > 0 ? " (similar reports suppressed before)" : "");
        }
        return;
    }
    if (t->unparsed > 0) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, " (and kept %llu unparsed)",
                              (unsigned long long)t->unparsed);
    }
    if (t->invalid > 0 && n < sizeof(msg)) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, ", %llu invalid (first: %s)",
                              (unsigned long long)t->invalid, t->first_reason);
    }
    if (oversize > 0 && n < sizeof(msg)) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, ", %llu over max_line_bytes",
                              (unsigned long long)oversize);
    }
    if (t->too_large > 0 && n < sizeof(msg)) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, ", %llu too large for a chunk",
                              (unsigned long long)t->too_large);
    }
    if (t->dropped > 0 && n < sizeof(msg)) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n,
                              ", %llu for want of room in queue \"%s\" (when_full = drop_newest)",
                              (unsigned long long)t->dropped, sl_queue_name(s->lane->queue));
    }
    if (suppressed > 0 && n < sizeof(msg)) {
        snprintf(msg + n, sizeof(msg) - n, " (%llu similar reports suppressed before)",
                 (unsigned long long)suppressed);
    }
    log_warnx("source \"%s\" peer %s: dropped lines%s", s->cfg->name, peer, msg);
}
