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
 * DESIGN: backpressure.  When no chunk can be had, the connection that
 * needs one is paused (EV_READ off, so the kernel window closes and the
 * sender blocks) and put on the paused list; the thread then announces on
 * its sl_wake and re-checks the queue (wake.h).  The writer signals the
 * wake when enough chunks are free again; wake_cb then resumes paused
 * connections in the order they were paused.  The same wake carries the
 * stop request from the main thread.
 *
 * Stop: producer_stop_begin() accepts each listener's backlog and closes
 * the listeners, reads every connection until EAGAIN (what the kernel
 * already holds), drains the UDP sockets, pushes the last chunks and
 * leaves the loop once no connection is left.
 */
#include "sluice/producer.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec/escape.h"

#define READ_BUF_BYTES (128 * 1024)
#define DEFER_MS 10
#define BUSY_DEFER_MS 1

static void producer_wake_cb(evutil_socket_t fd, short what, void *arg);
static void producer_flush_cb(evutil_socket_t fd, short what, void *arg);
static void producer_defer_cb(evutil_socket_t fd, short what, void *arg);

int
sl_source_bind(const struct sl_source_config *src)
{
    int type = src->type == SL_SOURCE_TCP ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(src->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        goto err;
    }
    if (src->addr.ss_family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (src->recv_buffer_bytes > 0) {
        int sz =
            src->recv_buffer_bytes > (size_t)INT32_MAX ? INT32_MAX : (int)src->recv_buffer_bytes;
        /* SO_RCVBUFFORCE may exceed rmem_max when privileged; else cap. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0) {
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
    }
    if (type == SOCK_DGRAM) {
        (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *)&src->addr, src->addrlen) < 0) {
        goto err;
    }
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) {
        goto err;
    }
    return fd;
err:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

struct sl_producer *
sl_producer_new(int id, const struct sl_config *cfg, int *fds, struct sl_source_stats *stats,
                struct sl_source_shared *shared, struct sl_queue **queues)
{
    struct sl_producer *p = calloc(1, sizeof(*p));
    struct event_config *ec = NULL;
    if (p == NULL) {
        return NULL;
    }
    p->id = id;
    p->cfg = cfg;
    p->wake.fd = -1;
    atomic_init(&p->stop, 0);
    TAILQ_INIT(&p->conns);
    TAILQ_INIT(&p->paused);
    if (sl_wake_init(&p->wake) < 0) {
        goto err;
    }
    ec = event_config_new();
    if (ec == NULL) {
        goto err;
    }
    /* One thread owns this base: no locking needed. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    p->base = event_base_new_with_config(ec);
    event_config_free(ec);
    ec = NULL;
    if (p->base == NULL) {
        goto err;
    }
    p->wake_ev = event_new(p->base, p->wake.fd, EV_READ | EV_PERSIST, producer_wake_cb, p);
    p->flush_ev = event_new(p->base, -1, 0, producer_flush_cb, p);
    p->defer_ev = evtimer_new(p->base, producer_defer_cb, p);
    if (p->wake_ev == NULL || p->flush_ev == NULL || p->defer_ev == NULL ||
        event_add(p->wake_ev, NULL) < 0) {
        goto err;
    }
    /* A connection's pending partial line (up to max_line_bytes + 1) is
     * copied in front of each read. */
    size_t longest = 0;
    for (size_t i = 0; i < cfg->nsources; i++) {
        if (cfg->sources[i].max_line_bytes > longest) {
            longest = cfg->sources[i].max_line_bytes;
        }
    }
    p->rbuf_cap = READ_BUF_BYTES + longest + 2;
    p->rbuf = malloc(p->rbuf_cap);
    p->nlanes = cfg->nqueues;
    p->lanes = calloc(p->nlanes, sizeof(*p->lanes));
    p->nsrcs = cfg->nsources;
    if (p->nlanes == 0 || p->nsrcs == 0) {
        goto err; /* a loaded config has both: nothing to run otherwise */
    }
    p->srcs = calloc(p->nsrcs, sizeof(*p->srcs));
    if (p->rbuf == NULL || p->lanes == NULL || p->srcs == NULL) {
        goto err;
    }
    size_t max_line = 0;
    for (size_t i = 0; i < p->nlanes; i++) {
        p->lanes[i].queue = queues[i];
        if (sl_queue_add_producer(queues[i], &p->wake) < 0) {
            goto err;
        }
    }
    for (size_t i = 0; i < p->nsrcs; i++) {
        struct sl_source_inst *s = &p->srcs[i];
        s->p = p;
        s->cfg = &cfg->sources[i];
        s->shared = &shared[i];
        s->stats = &stats[i];
        s->fd = fds[i];
        fds[i] = -1;
        s->warn_rl.interval_ms = 10000;
        if (s->cfg->codec == SL_CODEC_RAW && s->cfg->max_line_bytes > max_line) {
            max_line = s->cfg->max_line_bytes;
        }
        int r = s->cfg->type == SL_SOURCE_TCP ? sl_tcp_inst_init(s) : sl_udp_inst_init(s);
        if (r < 0) {
            goto err;
        }
    }
    if (max_line > 0) {
        p->scratch_cap = SL_ESCAPE_MAX(max_line);
        p->scratch = malloc(p->scratch_cap);
        if (p->scratch == NULL) {
            goto err;
        }
    }
    return p;
err:
    if (ec != NULL) {
        event_config_free(ec);
    }
    sl_producer_free(p);
    return NULL;
}

void
sl_producer_free(struct sl_producer *p)
{
    if (p == NULL) {
        return;
    }
    sl_tcp_close_all(p);
    for (size_t i = 0; p->srcs != NULL && i < p->nsrcs; i++) {
        struct sl_source_inst *s = &p->srcs[i];
        if (s->cfg == NULL) {
            continue;
        }
        if (s->cfg->type == SL_SOURCE_TCP) {
            sl_tcp_inst_fini(s);
        } else {
            sl_udp_inst_fini(s);
        }
        if (s->fd >= 0) {
            close(s->fd);
        }
    }
    for (size_t i = 0; p->lanes != NULL && i < p->nlanes; i++) {
        if (p->lanes[i].chunk != NULL) {
            sl_queue_release(p->lanes[i].queue, p->lanes[i].chunk);
        }
    }
    if (p->wake_ev != NULL) {
        event_free(p->wake_ev);
    }
    if (p->flush_ev != NULL) {
        event_free(p->flush_ev);
    }
    if (p->defer_ev != NULL) {
        event_free(p->defer_ev);
    }
    if (p->base != NULL) {
        event_base_free(p->base);
    }
    sl_wake_fini(&p->wake);
    free(p->srcs);
    free(p->lanes);
    free(p->rbuf);
    free(p->scratch);
    free(p);
}

static void *
producer_main(void *arg)
{
    struct sl_producer *p = arg;
    event_base_dispatch(p->base);
    return NULL;
}

int
sl_producer_start(struct sl_producer *p)
{
    int r = pthread_create(&p->thread, NULL, producer_main, p);
    if (r != 0) {
        errno = r;
        return -1;
    }
    p->started = true;
    return 0;
}

void
sl_producer_stop(struct sl_producer *p, bool force)
{
    int want = force ? 2 : 1;
    int cur = atomic_load(&p->stop);
    while (cur < want && !atomic_compare_exchange_weak(&p->stop, &cur, want)) {
    }
    /* Unconditional write: the thread may not be in a sleep announcement. */
    uint64_t one = 1;
    ssize_t w;
    do {
        w = write(p->wake.fd, &one, sizeof(one));
    } while (w < 0 && errno == EINTR);
}

void
sl_producer_join(struct sl_producer *p)
{
    if (p->started) {
        pthread_join(p->thread, NULL);
        p->started = false;
    }
}

void
sl_producer_clock(struct sl_producer *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t
sl_producer_fields(struct sl_producer *p, const struct sl_source_inst *src, const char *peer,
                   size_t peerlen, char *buf)
{
    unsigned f = src->cfg->add_fields;
    size_t len = 0;
    if (f == 0) {
        return 0;
    }
    if (f & SL_FIELD_TIME) {
        char t[SL_TIME_TEXT_MAX];
        size_t tl = sl_encode_time(p->now_ns, t);
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "received_at", t, tl);
    }
    if (f & SL_FIELD_SOURCE) {
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "source", src->cfg->name,
                              strlen(src->cfg->name));
    }
    if (f & SL_FIELD_PEER) {
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "peer", peer, peerlen);
    }
    if (f & SL_FIELD_HOST) {
        const char *h = p->cfg->daemon.hostname != NULL ? p->cfg->daemon.hostname : "";
        (void)sl_encode_field(buf, SL_FIELDS_MAX, &len, "host", h, strlen(h));
    }
    return len;
}

void
sl_producer_schedule_flush(struct sl_producer *p)
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
        struct sl_lane *l = &p->lanes[i];
        if (l->chunk != NULL && l->chunk->len > 0) {
            sl_queue_push(l->queue, l->chunk);
            l->chunk = NULL;
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
        struct sl_lane *l = &p->lanes[i];
        if (l->chunk == NULL || l->chunk->len == 0) {
            continue;
        }
        size_t nchunks = sl_queue_nchunks(l->queue);
        size_t in_use = sl_queue_in_use(l->queue);
        uint64_t ms = 0;
        if (!p->stopping && l->chunk->len < l->chunk->cap / 2) {
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
        sl_queue_push(l->queue, l->chunk);
        l->chunk = NULL;
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

bool
sl_producer_has_space(struct sl_producer *p, struct sl_source_inst *src)
{
    struct sl_lane *l = &p->lanes[src->cfg->queue_index];
    if (l->chunk != NULL &&
        l->chunk->cap - l->chunk->len > src->cfg->max_line_bytes + SL_FIELDS_MAX) {
        return true;
    }
    return sl_queue_can_acquire(l->queue, SL_ACQUIRE_TCP);
}

void
sl_producer_wait_space(struct sl_producer *p, struct sl_source_inst *src)
{
    struct sl_lane *l = &p->lanes[src->cfg->queue_index];
    /* Push what we have so the writer can make progress and recycle. */
    producer_push_lanes(p);
    sl_wake_announce(&p->wake);
    if (sl_queue_can_acquire(l->queue, SL_ACQUIRE_TCP)) {
        /* Space appeared between the failure and the announcement: make
         * the wake callback run now instead of waiting for a signal. */
        sl_wake_cancel(&p->wake);
        event_active(p->wake_ev, EV_READ, 0);
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
sl_producer_emit(struct sl_producer *p, struct sl_source_inst *src, const char *line, size_t len,
                 const char *fields, size_t flen, enum sl_acquire_class cls, struct sl_tally *t)
{
    const struct sl_source_config *c = src->cfg;
    struct sl_lane *l = &p->lanes[c->queue_index];
    size_t chunk_cap = sl_queue_chunk_bytes(l->queue);

    for (int attempt = 0; attempt < 2; attempt++) {
        if (l->chunk == NULL) {
            l->chunk = sl_queue_acquire(l->queue, cls);
            if (l->chunk == NULL) {
                return SL_EMIT_NO_SPACE;
            }
        }
        struct sl_chunk *ch = l->chunk;
        size_t room = ch->cap - ch->len;
        size_t out = 0;
        enum sl_encode_result r;
        enum sl_validate_result why = SL_VALID;
        if (c->codec == SL_CODEC_JSON) {
            if (len + flen + 2 > chunk_cap) {
                r = SL_ENCODE_TOO_LARGE;
            } else {
                r = sl_encode_json(line, len, fields, flen, ch->data + ch->len, room, &out, &why);
            }
        } else {
            r = sl_encode_raw(line, len, fields, flen, p->scratch, ch->data + ch->len, room,
                              chunk_cap, &out);
        }
        switch (r) {
        case SL_ENCODE_OK:
            if (ch->nevents == 0) {
                ch->first_ns = p->now_ns;
                sl_producer_schedule_flush(p);
            }
            ch->len += out;
            ch->nevents++;
            t->events++;
            return SL_EMIT_OK;
        case SL_ENCODE_INVALID:
            if (t->invalid == 0) {
                t->first_reason = why;
            }
            t->invalid++;
            producer_drop_empty(l);
            return SL_EMIT_DROPPED;
        case SL_ENCODE_TOO_LARGE:
            t->too_large++;
            producer_drop_empty(l);
            return SL_EMIT_DROPPED;
        case SL_ENCODE_NO_ROOM:
            /* Full: hand it on and try once more with an empty chunk. */
            sl_queue_push(l->queue, ch);
            l->chunk = NULL;
            break;
        }
    }
    return SL_EMIT_NO_SPACE; /* not reached: an empty chunk always has room */
}

static bool
producer_done(struct sl_producer *p)
{
    return p->nconns == 0;
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
        struct sl_lane *l = &p->lanes[i];
        if (l->chunk != NULL) {
            sl_queue_release(l->queue, l->chunk);
            l->chunk = NULL;
        }
    }
    event_base_loopbreak(p->base);
}

static void
producer_stop_begin(struct sl_producer *p)
{
    p->stopping = true;
    p->drain_until_ms = sl_now_ms() + SL_DRAIN_GRACE_MS;
    sl_producer_clock(p);
    for (size_t i = 0; i < p->nsrcs; i++) {
        struct sl_source_inst *s = &p->srcs[i];
        if (s->cfg->type == SL_SOURCE_TCP) {
            sl_tcp_begin_stop(s);
        } else {
            sl_udp_drain(s);
        }
    }
}

static void
producer_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_producer *p = arg;
    sl_wake_drain(&p->wake);
    int stop = atomic_load(&p->stop);
    if (stop == 2) {
        sl_tcp_close_all(p);
        producer_finish(p);
        return;
    }
    if (stop == 1 && !p->stopping) {
        producer_stop_begin(p);
    }
    sl_tcp_resume_paused(p);
    if (p->stopping && producer_done(p)) {
        producer_finish(p);
    }
}

void
sl_producer_conn_gone(struct sl_producer *p)
{
    if (p->stopping && producer_done(p)) {
        producer_finish(p);
    }
}

void
sl_producer_report(struct sl_source_inst *src, const char *peer, const struct sl_tally *t,
                   uint64_t oversize)
{
    uint64_t suppressed = 0;
    char msg[256];
    size_t n = 0;
    if (t->invalid == 0 && t->too_large == 0 && oversize == 0) {
        return;
    }
    if (!sl_ratelimit_ok(&src->warn_rl, sl_now_ms(), &suppressed)) {
        return;
    }
    if (t->invalid > 0) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, ", %llu invalid (first: %s)",
                              (unsigned long long)t->invalid, sl_validate_reason(t->first_reason));
    }
    if (oversize > 0 && n < sizeof(msg)) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, ", %llu over max_line_bytes",
                              (unsigned long long)oversize);
    }
    if (t->too_large > 0 && n < sizeof(msg)) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, ", %llu too large for a chunk",
                              (unsigned long long)t->too_large);
    }
    if (suppressed > 0 && n < sizeof(msg)) {
        snprintf(msg + n, sizeof(msg) - n, " (%llu similar reports suppressed before)",
                 (unsigned long long)suppressed);
    }
    log_warnx("source \"%s\" peer %s: dropped lines%s", src->cfg->name, peer, msg);
}
