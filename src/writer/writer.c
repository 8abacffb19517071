/*
 * writer — the writer thread: queues → sinks.
 *
 * DESIGN
 * The writer sleeps in its event_base until a producer signals its wake
 * (only on the asleep → awake transition), a timer fires (batch timeout,
 * retry backoff) or the tick comes (sinks notice renamed files, interval
 * fsync; the daemon's watchdog pings).  The tick runs once a second while
 * the writer works and stops when nothing needs it (THE TICK, below), so an
 * idle daemon does not wake at all unless a timer of its own is due.
 *
 * A turn: append chunks from the queues to their backlogs round-robin (a
 * bounded number per queue per pass, so one busy queue cannot starve
 * another; backlog.h), where every sink draining the queue sees them as
 * unsent; then each sink writes its unsent bytes (peek) with one writev per
 * batch (up to batch_max_bytes and IOV_MAX chunks) when the batch is full,
 * or as soon as the queue is drained (batch_timeout = 0), or when its
 * oldest byte is batch_timeout old, or when the queue is full (producers
 * paused: the batch cannot grow), and tells the backlog what was sent.  A
 * chunk committed by every sink holding it goes back to its queue
 * (sl_queue_release), which may wake paused producers: for a sink without
 * acks that is when it is sent, for one with acks when its commit arrives.
 * When every queue is empty and no sink has kicked, the writer announces,
 * re-checks and sleeps (wake.h).
 *
 * A queue with when_full = drop_oldest is kept from filling here, after
 * the writes of each pass: the writer evicts the oldest chunks no sink is
 * writing (backlog.h evict_oldest; writer_evict).
 *
 * A sink's wake and commit callbacks may come from any thread: they set
 * atomics (woken, acked, kicked) and wake the writer (event_active on its
 * own thread, the sl_wake eventfd from others); the next pass applies them
 * (writer_take_kicks).
 *
 * A sink that answers RETRY keeps its unsent chunks and is retried with
 * exponential backoff (50 ms .. 5 s); one that answers WAIT (a full socket,
 * a reconnection: no failure) is left alone until it calls the wake
 * function it got from attach().  Either way its
 * queue fills up and producers pause: nothing is dropped because a sink is
 * slow, failing or disconnected.
 *
 * The passes may also run on a producer thread, right after its push,
 * instead of waking the writer (THE INLINE TURN, writer_inline): only for
 * configurations whose every queue is in memory and every sink may write
 * from another thread (sink.h may_inline), only between the linger's rate
 * and INLINE_RATE, and only under turn_mu, which the writer thread holds
 * for each of its own callbacks.  Everything else (timers, the tick,
 * reloads, stop) stays on the writer thread and its event_base, which no
 * other thread touches.
 *
 * Thread: the writer thread, except new/start/stop/reopen/join/free and
 * THE INLINE TURN (a pushing thread holding turn_mu).
 */
#include "sluice/writer.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sluice/backlog.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "sluice/wake.h"
#include "util/crashpoint.h"
#include "util/thread.h"
#include "writer/breaker.h"

#define POP_PER_PASS 64
#define RETRY_MIN_MS 50
#define RETRY_MAX_MS 5000
#define WRITER_IOV_MAX 1024
#define WRITER_CALLS_MAX 1024 /* sink calls per wsink_write before yielding */
#define EVICT_LOG_MS 10000    /* at most one eviction summary per queue this often */
#define TICK_MS 1000          /* the tick while the writer works */
#define TICK_MAX_MS 60000     /* the longest rest before a deadline (a wall clock may step) */
#define TICK_SLACK_MS 20      /* libevent's timers run on a coarse clock: up to a jiffy early */
#define TICK_MIN_MS 50        /* the shortest deadline armed (a short watchdog's) */

struct wsink {
    struct sl_writer *w;
    struct sl_sink *sink;
    struct sl_backlog *bl;        /* its queue's backlog */
    struct sl_backlog_reader *rd; /* its place in it: unsent bytes, when they came */
    uint64_t retry_at_ms;         /* 0 = not failing */
    uint64_t backoff_ms;
    bool waiting;                /* answered SL_SINK_WAIT: not called until it wakes us */
    bool replay_told;            /* sink.h replayed called */
    bool attached;               /* ops->attach succeeded: detach before the base goes */
    bool retiring;               /* removed by a reload: drains, then goes (writer_retire) */
    uint64_t retire_until_ms;    /* when it gives up what it still holds */
    uint64_t retire_id;          /* the request that waits for it to go (writer_swap.id) */
    struct wsink *successor;     /* retiring: the sink that takes over once it is gone */
    struct sl_sink *heir;        /* retiring on a disk queue: the sink (opened, not attached)
                                    that takes its reader over once its drain is done
                                    (writer_hand_over, writer_pass_on) */
    bool held;                   /* a successor: its reader collects, it writes (and is
                                    attached: a forwarding sink connects) only once its
                                    predecessor is gone */
    uint64_t committed;          /* of acked, bytes given to the backlog's commit */
    atomic_bool woken;           /* any thread: the sink called its wake */
    atomic_uint_least64_t acked; /* any thread: bytes the sink committed, summed */
};

struct wqueue {
    struct sl_queue *q;
    struct sl_backlog *bl; /* owned */
    struct wsink **sinks;
    size_t nsinks;
    struct sl_ratelimit evict_rl; /* the eviction summary in the log */
    uint64_t evicted_events;      /* not yet in a log line */
    uint64_t evicted_bytes;
    bool removing;            /* removed by a reload: its sinks drain it, then it goes */
    uint64_t remove_until_ms; /* when what is left is given up (memory) or left on disk */
};

struct sl_writer {
    struct sl_thread thread;
    struct event_base *base;
    struct sl_wake wake;
    struct event *wake_ev;
    struct event *kick_ev; /* a sink woke us (sl_sink_wake_fn) */
    atomic_bool kicked;    /* a sink's wake or commit is waiting (any thread) */
    struct event *tick_ev;
    bool rests;          /* no tick within the second: the writer rests (THE TICK) */
    bool turned;         /* writer_run ran since the last tick */
    atomic_bool resting; /* rests, for any thread (sl_writer_tick_resting) */
    struct event *timer_ev;
    /* THE LINGER (writer_linger): */
    int linger_fd; /* a timerfd: the next look at the queues */
    struct event *linger_ev;
    bool linger_armed;     /* linger_fd will fire */
    bool linger_et;        /* linger_ev is edge-triggered: the timerfd is never read */
    bool lingering;        /* the last rate window said so */
    uint64_t win_start_ms; /* the rate window */
    uint64_t win_bytes;    /* written in it */
    uint64_t win_runs;     /* runs that had work in it */
    uint64_t win_chunks;   /* chunks pulled in it */
    size_t busy_queues;    /* queues that had chunks in the last pass (writer_pull) */
    /* THE INLINE TURN (writer_inline): */
    pthread_mutex_t turn_mu;     /* held by whichever thread turns the writer's state */
    struct sl_queue_drain drain; /* every queue's push offer (sl_queue_set_drain) */
    bool inline_ok;              /* the config allows it (writer_inline_possible) */
    bool fast;                   /* the last rate window wrote INLINE_RATE or more */
    bool need_writer;            /* an inline pass left work for the writer thread */
    uint64_t inline_shut_ms;     /* the breaker: no inline turn before this (0: none) */
    uint64_t inline_trip_ms;     /* when it last tripped (0: never) */
    uint64_t inline_close_ms;    /* the closure it then started (breaker.h) */
    atomic_bool inline_open;     /* the last turn allowed one: the push's cheap look first */
    atomic_bool turn_wanted;     /* the writer thread waits for turn_mu: no trylock */
    sl_counter inline_passes;    /* passes a pushing thread ran (sl_writer_inline_passes) */
    struct wqueue *queues;
    size_t nqueues;
    struct wsink **sinks; /* each allocated alone: a reload adds and removes them */
    size_t nsinks;
    size_t rr; /* round-robin start */
    atomic_int stop;
    atomic_int reopen;
    /* A config reload's sink replacement (sl_writer_replace_sink): asked by
     * the main thread under swap_mu, carried out by the writer thread. */
    pthread_mutex_t swap_mu;
    pthread_cond_t swap_cv;
    struct writer_swap *swap_req; /* under swap_mu; NULL: none */
    /* Under swap_mu: the SWAP_CHANGE request waiting for a sink to retire
     * (only one: the main thread asks one at a time), and its id; the
     * asker clears it when it gives up waiting. */
    struct writer_swap *retire_wait;
    uint64_t retire_wait_id, swap_ids;
    atomic_bool swap_asked;
    bool draining;
    const char *stall_path;    /* test hook: no writes while this path exists */
    const char *wedge_path;    /* test hook: the thread blocks while this path exists */
    atomic_ulong heartbeat_ms; /* CLOCK_MONOTONIC ms of the last loop turn */
    uint64_t (*tick_hook)(void *arg, uint64_t now_ms);
    void *tick_arg;
    uint64_t lost;
};

/*
 * One change of the writer's sinks by a reload, on the asking thread's
 * stack (under swap_mu):
 *   SWAP_REPLACE  new_sink takes old's place and its reader position;
 *   SWAP_CHANGE   new_sink (if any) is added with a reader of its own that
 *                 starts at the next chunk, and old (if any) retires in the
 *                 same step: it gets no new chunk, drains what it holds
 *                 until drain_ms has passed, then goes, giving up the rest
 *                 (gave_bytes, gave_events).  Adding and removing a sink
 *                 are its two halves; doing both at once is how a sink that
 *                 cannot be replaced in place changes without a gap.
 */
enum writer_swap_op {
    SWAP_REPLACE,
    SWAP_CHANGE,
    SWAP_ADD_QUEUE,
    SWAP_REMOVE_QUEUE,
    SWAP_CALL,
    SWAP_TICK /* nothing: writer_run ticked a resting writer before it answers */
};

struct writer_swap {
    enum writer_swap_op op;
    uint64_t id; /* set under swap_mu when asked */
    struct sl_sink *old, *new_sink;
    uint64_t drain_ms;
    bool done;      /* the writer has answered (rc) */
    bool withdrawn; /* the asker gave up waiting: the writer must not touch it */
    int rc;
    uint64_t gave_bytes, gave_events; /* SWAP_CHANGE: what old gave up */
    uint64_t resent_bytes;            /* SWAP_CHANGE handed over on a disk queue: what goes again */
    /* SWAP_ADD_QUEUE, SWAP_REMOVE_QUEUE (writer_add_queue,
     * writer_remove_queue), SWAP_CALL (fn on queue's backlog): */
    struct sl_queue *queue;
    struct sl_backlog *bl; /* added: the writer's on success; removed: handed back */
    struct sl_sink *const *sinks;
    size_t nsinks;
    uint64_t kept_bytes; /* removed disk queue: unsent bytes left in its directory */
    void (*fn)(struct sl_backlog *bl, void *arg);
    void *arg;
};

static void writer_wake_cb(evutil_socket_t fd, short what, void *arg);
static void writer_tick_cb(evutil_socket_t fd, short what, void *arg);
static void writer_tick(struct sl_writer *w, bool woken);
static void writer_tick_arm(struct sl_writer *w, uint64_t ms);
static void writer_timer_cb(evutil_socket_t fd, short what, void *arg);
static void writer_kick_cb(evutil_socket_t fd, short what, void *arg);
static void writer_linger_cb(evutil_socket_t fd, short what, void *arg);
static void writer_sink_wake(void *arg);
static void writer_sink_commit(void *arg, size_t n);
static void writer_take_swap(struct sl_writer *w);
static void writer_retire_queues(struct sl_writer *w, uint64_t now_ms);
static bool writer_drain_cb(struct sl_queue_drain *d);
static bool writer_inline_possible(const struct sl_writer *w);

/* The writer whose thread this is (NULL on every other thread). */
static _Thread_local struct sl_writer *writer_self;
static _Thread_local bool writer_inline_now; /* inside writer_inline (sl_sink_inline) */

bool
sl_sink_inline(void)
{
    return writer_inline_now;
}

/* The writer's state for every queue, each with its backlog; the writer
 * becomes every queue's consumer. */
static int
writer_new_queues(struct sl_writer *w, struct sl_queue *const *queues,
                  struct sl_backlog *const *backlogs, size_t nqueues)
{
    w->queues = calloc(nqueues, sizeof(*w->queues));
    if (w->queues == NULL) {
        for (size_t i = 0; backlogs != NULL && i < nqueues; i++) {
            if (backlogs[i] != NULL) {
                backlogs[i]->ops->free(backlogs[i]);
            }
        }
        return -1;
    }
    w->nqueues = nqueues;
    for (size_t i = 0; i < nqueues; i++) {
        w->queues[i].bl = backlogs != NULL ? backlogs[i] : NULL; /* owned from here */
    }
    for (size_t i = 0; i < nqueues; i++) {
        struct wqueue *wq = &w->queues[i];
        wq->q = queues[i];
        if (wq->bl == NULL) {
            wq->bl = sl_backlog_memory_new(queues[i]);
        }
        if (wq->bl == NULL) {
            return -1;
        }
        sl_queue_set_consumer(queues[i], &w->wake);
        wq->evict_rl.interval_ms = EVICT_LOG_MS;
        if (sl_queue_when_full(queues[i]) == SL_WHEN_FULL_DROP_OLDEST &&
            wq->bl->ops->evict_oldest == NULL) {
            log_warnx("queue \"%s\": a %s backlog cannot drop its oldest events",
                      sl_queue_name(wq->q), wq->bl->ops->kind);
            return -1;
        }
    }
    return 0;
}

/* The writer's state for queue q (a sink's queue pointer), or NULL.
 * Set-up only: the hot path keeps the pointers it found here. */
static struct wqueue *
writer_queue_of(struct sl_writer *w, const struct sl_queue *q)
{
    for (size_t i = 0; i < w->nqueues; i++) {
        if (w->queues[i].q == q) {
            return &w->queues[i];
        }
    }
    return NULL;
}

/* Appends ws to wq's sinks (grown one at a time: set-up only). */
static int
wqueue_add_sink(struct wqueue *wq, struct wsink *ws)
{
    struct wsink **v = realloc(wq->sinks, (wq->nsinks + 1) * sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    wq->sinks = v;
    wq->sinks[wq->nsinks++] = ws;
    return 0;
}

static void writer_checkpoint(struct wsink *ws);

struct sl_writer *
sl_writer_new(struct sl_queue *const *queues, struct sl_backlog *const *backlogs, size_t nqueues,
              struct sl_sink *const *sinks, size_t nsinks)
{
    struct sl_writer *w = calloc(1, sizeof(*w));
    struct event_config *ec = NULL;
    if (w == NULL) {
        for (size_t i = 0; backlogs != NULL && i < nqueues; i++) {
            if (backlogs[i] != NULL) {
                backlogs[i]->ops->free(backlogs[i]);
            }
        }
        return NULL;
    }
    w->wake.fd = -1; /* before any goto err: sl_writer_free closes them */
    w->linger_fd = -1;
    /* The backlogs first: from here on sl_writer_free frees them. */
    if (writer_new_queues(w, queues, backlogs, nqueues) < 0) {
        goto err;
    }
    atomic_init(&w->stop, 0);
    atomic_init(&w->reopen, 0);
    atomic_init(&w->kicked, false);
    atomic_init(&w->swap_asked, false);
    atomic_init(&w->resting, false);
    pthread_mutex_init(&w->swap_mu, NULL);
    pthread_cond_init(&w->swap_cv, NULL);
    pthread_mutex_init(&w->turn_mu, NULL);
    w->drain.fn = writer_drain_cb;
    w->fast = true; /* no inline turn before a rate window said so */
    atomic_init(&w->inline_open, false);
    atomic_init(&w->turn_wanted, false);
    w->stall_path = getenv("SLUICE_TEST_STALL_FILE");
    w->wedge_path = getenv("SLUICE_TEST_WEDGE_FILE");
    atomic_init(&w->heartbeat_ms, sl_now_ms());
    if (sl_wake_init(&w->wake) < 0) {
        goto err;
    }
    ec = event_config_new();
    if (ec == NULL) {
        goto err;
    }
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL) {
        goto err;
    }
    w->wake_ev = sl_wake_event_new(&w->wake, w->base, writer_wake_cb, w);
    w->tick_ev = evtimer_new(w->base, writer_tick_cb, w);
    w->timer_ev = evtimer_new(w->base, writer_timer_cb, w);
    w->kick_ev = event_new(w->base, -1, 0, writer_kick_cb, w);
    w->linger_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    w->linger_et = (event_base_get_features(w->base) & EV_FEATURE_ET) != 0;
    w->linger_ev = w->linger_fd < 0 ? NULL
                                    : event_new(w->base, w->linger_fd,
                                                EV_READ | EV_PERSIST | (w->linger_et ? EV_ET : 0),
                                                writer_linger_cb, w);
    struct timeval sec = {.tv_sec = TICK_MS / 1000, .tv_usec = 0};
    if (w->wake_ev == NULL || w->tick_ev == NULL || w->timer_ev == NULL || w->kick_ev == NULL ||
        event_add(w->wake_ev, NULL) < 0 || event_add(w->tick_ev, &sec) < 0) {
        goto err;
    }
    if (w->linger_ev != NULL && event_add(w->linger_ev, NULL) < 0) {
        event_free(w->linger_ev); /* no timerfd, no linger: woken by every push as before */
        w->linger_ev = NULL;
    }
    w->sinks = calloc(nsinks, sizeof(*w->sinks));
    if (w->sinks == NULL) {
        goto err;
    }
    for (size_t j = 0; j < nsinks; j++) {
        struct wsink *ws = calloc(1, sizeof(*ws));
        if (ws == NULL) {
            goto err;
        }
        w->sinks[w->nsinks++] = ws;
        struct wqueue *wq = writer_queue_of(w, sinks[j]->queue);
        ws->w = w;
        ws->sink = sinks[j];
        if (wq == NULL) {
            log_warnx("sink \"%s\": its queue is not the writer's", ws->sink->cfg->name);
            goto err;
        }
        ws->bl = wq->bl;
        ws->rd = wq->bl->ops->add_reader(wq->bl, ws->sink->cfg->name, ws->sink->ops->acks);
        if (ws->rd == NULL) {
            goto err;
        }
        atomic_init(&ws->woken, false);
        atomic_init(&ws->acked, 0);
        if (ws->sink->ops->restore != NULL && ws->bl->ops->get_blob != NULL) {
            size_t blen = 0;
            const void *blob = ws->bl->ops->get_blob(ws->bl, ws->rd, &blen);
            ws->sink->ops->restore(ws->sink, blob, blob != NULL ? blen : 0);
            writer_checkpoint(ws); /* on disk below, before the sink writes */
        }
        if (wqueue_add_sink(wq, ws) < 0) {
            goto err;
        }
        if (ws->sink->ops->acks && ws->sink->ops->attach == NULL) {
            /* Its commits could never arrive: the queue would fill and
             * every producer pause for good.  A module bug, caught here. */
            log_warnx("sink \"%s\": type %s acknowledges but has no attach", ws->sink->cfg->name,
                      ws->sink->ops->type);
            goto err;
        }
        if (ws->sink->ops->attach != NULL) {
            struct sl_sink_link link = {
                .base = w->base,
                .wake = writer_sink_wake,
                .commit = ws->sink->ops->acks ? writer_sink_commit : NULL,
                .arg = ws,
                .pinned = ws->bl->ops->pinned,
            };
            if (ws->sink->ops->attach(ws->sink, &link) < 0) {
                log_warnx("sink \"%s\": cannot set up", ws->sink->cfg->name);
                goto err;
            }
            ws->attached = true;
        }
    }
    for (size_t i = 0; i < w->nqueues; i++) {
        struct sl_backlog *bl = w->queues[i].bl;
        if (bl->ops->save != NULL && bl->ops->save(bl) < 0) {
            log_warnx("queue \"%s\": cannot put its sinks' starting positions on disk",
                      sl_queue_name(w->queues[i].q));
            goto err;
        }
    }
    w->inline_ok = writer_inline_possible(w);
    for (size_t i = 0; i < w->nqueues; i++) {
        sl_queue_set_drain(w->queues[i].q, &w->drain); /* THE INLINE TURN */
    }
    return w;
err:
    sl_writer_free(w);
    return NULL;
}

void
sl_writer_free(struct sl_writer *w)
{
    if (w == NULL) {
        return;
    }
    for (size_t j = 0; w->sinks != NULL && j < w->nsinks; j++) {
        struct wsink *ws = w->sinks[j];
        if (ws->attached && ws->sink->ops->detach != NULL) {
            ws->sink->ops->detach(ws->sink);
        }
    }
    for (size_t i = 0; w->queues != NULL && i < w->nqueues; i++) {
        if (w->queues[i].q != NULL) {
            sl_queue_set_drain(w->queues[i].q, NULL);
        }
        /* Chunks still held (forced stop) go back to their queue. */
        if (w->queues[i].bl != NULL) {
            w->queues[i].bl->ops->free(w->queues[i].bl);
        }
        free(w->queues[i].sinks);
    }
    free(w->queues);
    for (size_t j = 0; w->sinks != NULL && j < w->nsinks; j++) {
        free(w->sinks[j]);
    }
    free(w->sinks);
    if (w->wake_ev != NULL) {
        event_free(w->wake_ev);
    }
    if (w->tick_ev != NULL) {
        event_free(w->tick_ev);
    }
    if (w->timer_ev != NULL) {
        event_free(w->timer_ev);
    }
    if (w->kick_ev != NULL) {
        event_free(w->kick_ev);
    }
    if (w->linger_ev != NULL) {
        event_free(w->linger_ev);
    }
    if (w->linger_fd >= 0) {
        close(w->linger_fd);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    sl_wake_fini(&w->wake);
    pthread_mutex_destroy(&w->swap_mu);
    pthread_cond_destroy(&w->swap_cv);
    pthread_mutex_destroy(&w->turn_mu);
    free(w);
}

static bool
writer_stalled(struct sl_writer *w)
{
    return w->stall_path != NULL && access(w->stall_path, F_OK) == 0;
}

static void
writer_arm_timer(struct sl_writer *w, uint64_t delay_ms)
{
    if (writer_self != w) {
        w->need_writer = true; /* an inline pass: the writer arms it (THE INLINE TURN) */
        return;
    }
    struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000),
                         .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000};
    /* Keep an earlier deadline if one is armed. */
    struct timeval cur;
    if (event_pending(w->timer_ev, EV_TIMEOUT, &cur)) {
        struct timeval now, want;
        event_base_gettimeofday_cached(w->base, &now);
        timeradd(&now, &tv, &want);
        if (timercmp(&cur, &want, <=)) {
            return;
        }
    }
    event_add(w->timer_ev, &tv);
}

/* The sink took n more bytes at now_ns: the backlog moves its send
 * position (and, for a sink that does not ack, gives back the chunks). */
static void
wsink_consume(struct wsink *ws, size_t n, uint64_t now_ns)
{
    struct sl_sink_stats *st = ws->sink->stats;
    ws->w->win_bytes += n;
    sl_counter_add(&st->bytes_out, n);
    sl_counter_add(&st->events_out, ws->bl->ops->sent(ws->bl, ws->rd, n, now_ns, &st->latency_ns));
    if (!ws->rd->acks) {
        writer_checkpoint(ws); /* sent is committed */
    }
}

/*
 * Writes the sink's pending chunks.  Returns true when everything pending
 * was written, false when the sink asked to retry (backoff armed).
 */
static bool
wsink_write(struct sl_writer *w, struct wsink *ws, uint64_t now_ms)
{
    struct sl_sink *s = ws->sink;
    struct iovec iov[WRITER_IOV_MAX];
    for (int calls = 0; ws->rd->unsent > 0; calls++) {
        if (calls == WRITER_CALLS_MAX) {
            /* Many short writes in a row: let the loop breathe, then go on
             * (an inline pass leaves the rest to the writer thread). */
            if (writer_self == w) {
                event_active(w->kick_ev, EV_TIMEOUT, 0);
            } else {
                w->need_writer = true;
            }
            return false;
        }
        /* Whole chunks, up to batch_max_bytes (one chunk always goes, even
         * when it alone is larger). */
        size_t total = 0;
        int n =
            ws->bl->ops->peek(ws->bl, ws->rd, iov, WRITER_IOV_MAX, s->cfg->batch_max_bytes, &total);
        if (n == 0) {
            break; /* a disk backlog found nothing readable (it recounted unsent) */
        }
        if (!ws->replay_told && s->ops->replayed != NULL &&
            (ws->bl->ops->replaying == NULL || !ws->bl->ops->replaying(ws->bl, ws->rd))) {
            ws->replay_told = true;
            s->ops->replayed(s);
        }
        size_t written = 0;
        errno = 0;
        enum sl_sink_result r = s->ops->write(s, iov, n, &written);
        int err = errno;
        if (written > 0) {
            sl_hist_observe(&s->stats->batch_bytes, written, 1);
            wsink_consume(ws, written, sl_realtime_ns());
        }
        if (r == SL_SINK_YIELD) {
            /* An inline pass met a file to open, reopen or rotate: the
             * writer thread does that (sl_sink_inline). */
            w->need_writer = true;
            return false;
        }
        if (r == SL_SINK_WAIT) {
            /* Not a failure (a full socket, a reconnection): the sink calls
             * writer_sink_wake when it can go on. */
            ws->waiting = true;
            return false;
        }
        if (r != SL_SINK_OK) {
            sl_counter_add(&s->stats->errors, 1);
            sl_counter_add(&s->stats->retries, 1);
            sl_sink_note_failure(s, err);
            ws->backoff_ms = ws->backoff_ms == 0 ? RETRY_MIN_MS : ws->backoff_ms * 2;
            if (ws->backoff_ms > RETRY_MAX_MS) {
                ws->backoff_ms = RETRY_MAX_MS;
            }
            ws->retry_at_ms = now_ms + ws->backoff_ms;
            writer_arm_timer(w, ws->backoff_ms);
            return false;
        }
        if (written == total) {
            sl_counter_add(&s->stats->batches, 1);
        }
    }
    ws->retry_at_ms = 0;
    ws->backoff_ms = 0;
    sl_sink_note_success(s);
    if (s->ops->flush(s, false) != SL_SINK_OK) {
        sl_counter_add(&s->stats->errors, 1);
    }
    return true;
}

/*
 * Decides whether the sink writes now; arms the batch timer if not.  A
 * batch is due when it is full, when it is batch_timeout old and nothing
 * more is queued, or when its queue is full: then the producers are
 * paused and the batch cannot grow, so waiting for the timer would only
 * hold every sender still.
 */
static void
wsink_maybe_write(struct sl_writer *w, struct wsink *ws, bool queue_empty, bool queue_full,
                  uint64_t now_ms)
{
    const struct sl_sink_config *sc = ws->sink->cfg;
    if (ws->rd->unsent == 0 || ws->waiting || ws->held || ws->heir != NULL) {
        return; /* heir: it sends nothing new, its reader is the heir's */
    }
    if (ws->retry_at_ms != 0 && now_ms < ws->retry_at_ms) {
        /* Backing off.  Arm (again) for the rest: the timer may fire a
         * millisecond early by our clock, and nothing else would retry. */
        writer_arm_timer(w, ws->retry_at_ms - now_ms);
        return;
    }
    uint64_t oldest_ms = ws->rd->oldest_ms;
    bool due =
        w->draining || ws->retiring || queue_full || ws->rd->unsent >= sc->batch_max_bytes ||
        (queue_empty && (sc->batch_timeout_ms == 0 || now_ms - oldest_ms >= sc->batch_timeout_ms));
    if (!due) {
        if (queue_empty) {
            writer_arm_timer(w, sc->batch_timeout_ms - (now_ms - oldest_ms));
        }
        return;
    }
    (void)wsink_write(w, ws, now_ms);
}

/* Background work of the backlogs that have some (a disk queue's syncs,
 * state file, retries while full).  Returns the ms until the earliest is
 * due again, 0 for none. */
static uint64_t
writer_poll_backlogs(struct sl_writer *w, uint64_t now_ms)
{
    uint64_t due = 0;
    for (size_t i = 0; i < w->nqueues; i++) {
        struct sl_backlog *bl = w->queues[i].bl;
        if (bl->ops->poll != NULL) {
            uint64_t d = bl->ops->poll(bl, now_ms);
            if (d > 0 && (due == 0 || d < due)) {
                due = d;
            }
        }
    }
    return due;
}

/* Bytes the backlogs hold for their sinks and the sinks did not send. */
static uint64_t
writer_unsent(const struct sl_writer *w)
{
    uint64_t n = 0;
    for (size_t j = 0; j < w->nsinks; j++) {
        n += w->sinks[j]->rd->unsent;
    }
    return n;
}

/*
 * Moves up to POP_PER_PASS chunks from the queue into its backlog.  A disk
 * queue appends a small group per call (backlog_disk.c disk_append: its
 * sinks read it back while it is in the CPU's cache), which is right while
 * it is the writer's only busy queue; beside other busy queues it goes on
 * to POP_PER_PASS, so a memory queue taking 64 chunks a pass cannot
 * starve it.
 */
static bool
writer_pull(struct sl_writer *w, struct wqueue *wq, uint64_t now_ms)
{
    size_t n = wq->bl->ops->append(wq->bl, POP_PER_PASS, now_ms);
    if (n > 0 && w->busy_queues > 1) {
        size_t m;
        while (n < POP_PER_PASS && (m = wq->bl->ops->append(wq->bl, POP_PER_PASS - n, now_ms)) > 0) {
            n += m;
        }
    }
    w->win_chunks += n;
    return n > 0;
}

/* The rate-limited log line for what drop_oldest dropped since the last. */
static void
writer_report_evictions(struct wqueue *wq, uint64_t now_ms)
{
    uint64_t suppressed = 0;
    if (wq->evicted_events == 0 || !sl_ratelimit_ok(&wq->evict_rl, now_ms, &suppressed)) {
        return;
    }
    log_warnx("queue \"%s\" full: dropped the oldest %" PRIu64 " event(s), %" PRIu64
              " bytes (when_full = drop_oldest)",
              sl_queue_name(wq->q), wq->evicted_events, wq->evicted_bytes);
    wq->evicted_events = 0;
    wq->evicted_bytes = 0;
}

/*
 * when_full = drop_oldest, on the writer (which owns the backlog, so no
 * producer ever touches a chunk being evicted): while TCP producers have
 * fewer than two chunks to take, or a paused one asked, drop the oldest
 * chunk no sink is writing (backlog.h evict_oldest).  Each eviction is a
 * release, which wakes paused producers (resume_at is reserve + 1 under
 * drop_oldest).  Runs after the pass's writes, so what a sink can take now
 * is written, not dropped.
 */
static void
writer_evict(struct wqueue *wq, uint64_t now_ms)
{
    bool asked = sl_queue_take_eviction_ask(wq->q);
    uint64_t events = 0, bytes = 0;
    size_t n = 0;

    if (!asked && !sl_queue_wants_room(wq->q)) {
        return;
    }
    while (sl_queue_wants_room(wq->q) && wq->bl->ops->evict_oldest(wq->bl, &events, &bytes)) {
        n++;
    }
    if (n == 0) {
        return; /* all pinned (being written): producers wait as under block */
    }
    sl_queue_count_evicted(wq->q, events, bytes);
    wq->evicted_events += events;
    wq->evicted_bytes += bytes;
    writer_report_evictions(wq, now_ms);
}

/* The queue's when_full is drop_oldest (read at each pass: a reload may
 * change it, sl_queue_set_when_full) and its backlog can evict (a disk one
 * cannot: the config refuses that pair). */
static bool
wqueue_drop_oldest(const struct wqueue *wq)
{
    return sl_queue_when_full(wq->q) == SL_WHEN_FULL_DROP_OLDEST &&
           wq->bl->ops->evict_oldest != NULL;
}

static bool
writer_evict_asked(struct sl_writer *w)
{
    for (size_t i = 0; i < w->nqueues; i++) {
        if (wqueue_drop_oldest(&w->queues[i]) && sl_queue_eviction_asked(w->queues[i].q)) {
            return true;
        }
    }
    return false;
}

/* A source began to wait on a queue's durable position since the writer
 * last looked: one more pass, whose backlog poll starts the early sync a
 * disk queue does for it (sl_queue_durable_watched). */
static bool
writer_durable_kicked(struct sl_writer *w)
{
    bool any = false;
    for (size_t i = 0; i < w->nqueues; i++) {
        any |= sl_queue_take_durable_kick(w->queues[i].q);
    }
    return any;
}

/* No chunk waits that a backlog would take now (one that refuses, a full
 * disk queue, takes none until its poll says so). */
static bool
writer_queues_empty(struct sl_writer *w)
{
    for (size_t i = 0; i < w->nqueues; i++) {
        if (!w->queues[i].bl->refusing && sl_queue_has_chunks(w->queues[i].q)) {
            return false;
        }
    }
    return true;
}

/* Draining is done when every memory backlog's sinks have written and
 * committed everything and every disk queue has its chunks on disk (what
 * its sinks did not send waits there for the next start). */
static bool
writer_pending(struct sl_writer *w)
{
    for (size_t i = 0; i < w->nqueues; i++) {
        if (w->queues[i].bl->ops->persistent && sl_queue_has_chunks(w->queues[i].q)) {
            return true;
        }
    }
    for (size_t j = 0; j < w->nsinks; j++) {
        if (w->sinks[j]->bl->ops->persistent) {
            continue;
        }
        if (w->sinks[j]->rd->unsent > 0 || w->sinks[j]->rd->uncommitted > 0) {
            return true;
        }
    }
    return false;
}

static void
writer_finish(struct sl_writer *w)
{
    for (size_t j = 0; j < w->nsinks; j++) {
        struct sl_sink *s = w->sinks[j]->sink;
        if (s->ops->flush(s, true) != SL_SINK_OK) {
            sl_counter_add(&s->stats->errors, 1);
        }
    }
    event_base_loopbreak(w->base);
}

/* The sink's bookkeeping for its committed position, persisted with it. */
static void
writer_checkpoint(struct wsink *ws)
{
    uint8_t buf[SL_BACKLOG_BLOB_MAX];
    if (ws->sink->ops->checkpoint == NULL || ws->bl->ops->set_blob == NULL || ws->heir != NULL) {
        return; /* heir: no sink's bookkeeping in the state until it has the reader */
    }
    size_t len = ws->sink->ops->checkpoint(ws->sink, buf, sizeof(buf));
    if (len > 0 && len <= sizeof(buf)) {
        ws->bl->ops->set_blob(ws->bl, ws->rd, buf, len);
    }
}

/* Applies what an acknowledging sink committed (its commit callback, any
 * thread) since the last time. */
static void
wsink_take_commits(struct wsink *ws)
{
    if (!ws->rd->acks) {
        return;
    }
    /* A commit is applied on a pass after the write that sent its bytes,
     * so it never runs ahead of sent; the bound is for a sink that breaks
     * that contract (its excess waits). */
    uint64_t acked = atomic_load_explicit(&ws->acked, memory_order_acquire);
    uint64_t n = acked - ws->committed;
    if (n > ws->rd->uncommitted) {
        n = ws->rd->uncommitted;
    }
    if (n > 0) {
        ws->bl->ops->commit(ws->bl, ws->rd, (size_t)n);
        ws->committed += n;
        if (ws->committed == acked) {
            writer_checkpoint(ws);
        }
    }
}

/* Applies what sinks reported through their wake and commit callbacks
 * (from any thread) since the last pass. */
static void
writer_take_kicks(struct sl_writer *w)
{
    for (size_t j = 0; j < w->nsinks; j++) {
        struct wsink *ws = w->sinks[j];
        if (atomic_load_explicit(&ws->woken, memory_order_relaxed) &&
            atomic_exchange_explicit(&ws->woken, false, memory_order_acquire)) {
            ws->waiting = false;
        }
        wsink_take_commits(ws);
    }
}

/* The writer's state for sink s, or NULL. */
static struct wsink *
writer_wsink_of(struct sl_writer *w, const struct sl_sink *s)
{
    for (size_t j = 0; j < w->nsinks; j++) {
        if (w->sinks[j]->sink == s) {
            return w->sinks[j];
        }
    }
    return NULL;
}

/*
 * Puts new_sink where old was (writer thread).  new_sink is opened here,
 * between two of the writer's writes: a file sink that opens the file old
 * writes (the same path) must not look at it while old's writev is under
 * way (its open cuts what looks like a torn last line).  Then old is flushed
 * as at a stop and detached; its place in the backlog (what it has not sent)
 * becomes new's, so nothing is written twice or skipped.  An acknowledging
 * sink (its type has handover) also hands what it sent and has not had
 * committed to new_sink, which resends it: the reader's uncommitted bytes
 * stay held and are committed by new_sink's acknowledgements, in order.
 * Returns 0, or -1 when old is not one of the writer's sinks or new cannot
 * open or attach (old stays; a half-open new_sink is the caller's to close).
 */
static int
wsink_swap(struct sl_writer *w, struct sl_sink *old, struct sl_sink *new_sink)
{
    struct wsink *ws = writer_wsink_of(w, old);
    bool handover = old->ops->acks || new_sink->ops->acks;
    if (ws == NULL || ws->retiring || ws->held ||
        (handover && (old->ops != new_sink->ops || old->ops->handover == NULL))) {
        return -1; /* main.c asks only for sinks without acks or with handover */
    }
    if (old->ops->flush(old, true) != SL_SINK_OK) {
        sl_counter_add(&old->stats->errors, 1);
    }
    if (new_sink->ops->open(new_sink) < 0) {
        log_warnx("sink \"%s\": its replacement cannot open; the old one stays", old->cfg->name);
        return -1;
    }
    if (handover) {
        old->ops->handover(old, new_sink);
    }
    if (new_sink->ops->attach != NULL) {
        struct sl_sink_link link = {
            .base = w->base,
            .wake = writer_sink_wake,
            .commit = new_sink->ops->acks ? writer_sink_commit : NULL,
            .arg = ws,
            .pinned = ws->bl->ops->pinned,
        };
        if (new_sink->ops->attach(new_sink, &link) < 0) {
            log_warnx("sink \"%s\": cannot set up its replacement; the old one stays",
                      old->cfg->name);
            if (handover) {
                new_sink->ops->handover(new_sink, old); /* old resends it after reconnecting */
                ws->waiting = false;
                event_active(w->kick_ev, EV_TIMEOUT, 0);
            }
            return -1;
        }
    }
    if (ws->attached && old->ops->detach != NULL) {
        old->ops->detach(old);
    }
    ws->sink = new_sink;
    ws->attached = new_sink->ops->attach != NULL;
    ws->waiting = false;
    ws->replay_told = false; /* told at its next write if the reader is past the replay */
    ws->retry_at_ms = 0;
    ws->backoff_ms = 0;
    atomic_store(&ws->woken, false);
    event_active(w->kick_ev, EV_TIMEOUT, 0); /* the new sink writes what is pending */
    return 0;
}

/* Attaches ws's sink to the writer's event_base with its wake (and commit)
 * callbacks, if its type attaches.  Returns 0 or -1. */
static int
wsink_attach(struct sl_writer *w, struct wsink *ws)
{
    struct sl_sink *s = ws->sink;
    if (s->ops->attach == NULL) {
        return 0;
    }
    struct sl_sink_link link = {
        .base = w->base,
        .wake = writer_sink_wake,
        .commit = s->ops->acks ? writer_sink_commit : NULL,
        .arg = ws,
        .pinned = ws->bl->ops->pinned,
    };
    if (s->ops->attach(s, &link) < 0) {
        return -1;
    }
    ws->attached = true;
    return 0;
}

/* Removes ws from a pointer list (order kept: round-robin fairness). */
static void
wsink_list_remove(struct wsink **v, size_t *n, const struct wsink *ws)
{
    for (size_t j = 0; j < *n; j++) {
        if (v[j] == ws) {
            memmove(v + j, v + j + 1, (*n - j - 1) * sizeof(*v));
            (*n)--;
            return;
        }
    }
}

/*
 * A sink added while the writer runs (SWAP_CHANGE): opened here, for the
 * same reason as in wsink_swap, with a reader of its own that starts at the
 * next chunk its queue's backlog takes.  held: a successor, attached (and
 * written) only once its predecessor is gone (writer_retire).  Returns its
 * state, or NULL (nothing changed; a half-open s is the caller's to close).
 */
static struct wsink *
writer_add_sink(struct sl_writer *w, struct sl_sink *s, bool held, bool live)
{
    struct wqueue *wq = writer_queue_of(w, s->queue);
    struct wsink **grown = realloc(w->sinks, (w->nsinks + 1) * sizeof(*grown));
    if (grown != NULL) {
        w->sinks = grown;
    }
    struct wsink *ws = calloc(1, sizeof(*ws));
    if (wq == NULL || grown == NULL || ws == NULL ||
        (live && wq->bl->ops->add_reader_live == NULL)) {
        log_warnx("sink \"%s\": cannot be added (%s)", s->cfg->name,
                  wq == NULL ? "its queue is not the writer's" : "out of memory");
        free(ws);
        return NULL;
    }
    ws->w = w;
    ws->sink = s;
    ws->bl = wq->bl;
    atomic_init(&ws->woken, false);
    atomic_init(&ws->acked, 0);
    if (s->ops->acks && s->ops->attach == NULL) {
        log_warnx("sink \"%s\": type %s acknowledges but has no attach", s->cfg->name,
                  s->ops->type);
        free(ws);
        return NULL;
    }
    if (s->ops->open(s) < 0) {
        log_warnx("sink \"%s\": cannot open; not added", s->cfg->name);
        free(ws);
        return NULL;
    }
    if (!held && wsink_attach(w, ws) < 0) {
        log_warnx("sink \"%s\": cannot set up; not added", s->cfg->name);
        free(ws);
        return NULL;
    }
    /* live: the sink joins a queue that runs (from its next chunk on);
     * else the queue is new (writer_add_queue): its reader takes up the
     * position its name left in a disk queue's state, as at start. */
    ws->rd = live ? wq->bl->ops->add_reader_live(wq->bl, s->cfg->name, s->ops->acks)
                  : wq->bl->ops->add_reader(wq->bl, s->cfg->name, s->ops->acks);
    if (ws->rd != NULL && s->ops->restore != NULL && ws->bl->ops->get_blob != NULL) {
        /* As at set-up: its starting checkpoint on disk before it writes. */
        size_t blen = 0;
        const void *blob = ws->bl->ops->get_blob(ws->bl, ws->rd, &blen);
        s->ops->restore(s, blob, blob != NULL ? blen : 0);
        writer_checkpoint(ws);
        if (ws->bl->ops->save != NULL && ws->bl->ops->save(ws->bl) < 0) {
            log_warnx("sink \"%s\": cannot put its starting position on disk (the queue's "
                      "next state write will)",
                      s->cfg->name);
        }
    }
    if (ws->rd == NULL || wqueue_add_sink(wq, ws) < 0) {
        if (ws->rd != NULL) {
            uint64_t b, e;
            wq->bl->ops->remove_reader(wq->bl, ws->rd, &b, &e);
        }
        if (ws->attached && s->ops->detach != NULL) {
            s->ops->detach(s);
        }
        log_warnx("sink \"%s\": cannot be added (out of memory)", s->cfg->name);
        free(ws);
        return NULL;
    }
    ws->held = held;
    w->sinks[w->nsinks++] = ws;
    return ws;
}

/* The predecessor of ws is gone: ws attaches (a forwarding sink connects
 * now, so two sessions of one sender never overlap) and writes what its
 * reader collected meanwhile. */
static void
writer_release_successor(struct sl_writer *w, struct wsink *ws)
{
    if (ws == NULL) {
        return;
    }
    if (wsink_attach(w, ws) < 0) {
        /* Out of memory: it stays held (its queue fills and the producers
         * pause, nothing is dropped); say so loudly. */
        log_warnx("sink \"%s\": cannot set up after its predecessor went; it does not write "
                  "(restart sluiced)",
                  ws->sink->cfg->name);
        return;
    }
    ws->held = false;
    event_active(w->kick_ev, EV_TIMEOUT, 0);
}

/* Answers the SWAP_CHANGE request id, if its asker still waits. */
static void
writer_answer_change(struct sl_writer *w, uint64_t id, uint64_t bytes, uint64_t events,
                     uint64_t resent)
{
    pthread_mutex_lock(&w->swap_mu);
    struct writer_swap *r = w->retire_wait;
    if (r != NULL && r->op == SWAP_CHANGE && w->retire_wait_id == id && !r->withdrawn) {
        r->gave_bytes = bytes;
        r->gave_events = events;
        r->resent_bytes = resent;
        r->rc = 0;
        r->done = true;
        w->retire_wait = NULL;
        pthread_cond_broadcast(&w->swap_cv);
    }
    pthread_mutex_unlock(&w->swap_mu);
}

/*
 * The end of writer_hand_over: ws's sink has had everything it sent
 * committed, or its time is up.  It is flushed as at a stop and detached,
 * the commits it made until then applied; its reader goes back to the
 * committed position (backlog.h rewind: what it sent and did not have
 * committed goes again, the only part that can be sent twice) and becomes
 * the heir's, whose bookkeeping starts there (restore with nothing: a new
 * sender, a file at its current length), with its first checkpoint on
 * disk before it writes, as for a sink added.  Then the heir is attached
 * (a forwarding sink connects only now: one session of a sender at a time)
 * and writes.  The committed position never moves here, so a kill at any
 * point leaves a state the next start resumes from: before the rewind the
 * old sink's commits, after it the same position.  Returns the bytes that
 * go again.
 */
static uint64_t
writer_pass_on(struct sl_writer *w, struct wsink *ws)
{
    struct sl_sink *old = ws->sink, *s = ws->heir;
    if (old->ops->flush(old, true) != SL_SINK_OK) {
        sl_counter_add(&old->stats->errors, 1);
    }
    if (ws->attached && old->ops->detach != NULL) {
        old->ops->detach(old);
    }
    wsink_take_commits(ws); /* the last ones: it commits nothing after detach */
    uint64_t held = ws->rd->uncommitted;
    uint64_t again = ws->bl->ops->rewind(ws->bl, ws->rd, s->ops->acks);
    sl_crash_point("handover-rewound");
    ws->sink = s;
    ws->heir = NULL;
    ws->retiring = false;
    ws->attached = false;
    ws->committed = 0;
    atomic_store(&ws->acked, 0);
    atomic_store(&ws->woken, false);
    ws->waiting = false;
    ws->replay_told = false; /* told at its next write if the reader is past the replay */
    ws->retry_at_ms = 0;
    ws->backoff_ms = 0;
    if (s->ops->restore != NULL) {
        s->ops->restore(s, NULL, 0);
        writer_checkpoint(ws);
    }
    if (ws->bl->ops->save != NULL && ws->bl->ops->save(ws->bl) < 0) {
        log_warnx("sink \"%s\": cannot put its new config's starting position on disk (the "
                  "queue's next state write will)",
                  s->cfg->name);
    }
    if (again > 0) {
        log_warnx("sink \"%s\": hands its place in queue \"%s\" to its new config (%s) at the "
                  "committed position; %" PRIu64 " byte(s) it had sent and not had acknowledged "
                  "by then go again (at least once)",
                  s->cfg->name, sl_queue_name(s->queue), s->ops->type, again);
    } else {
        log_info("sink \"%s\": hands its place in queue \"%s\" to its new config (%s) at the "
                 "committed position; nothing is sent twice%s",
                 s->cfg->name, sl_queue_name(s->queue), s->ops->type,
                 held > 0 ? "" : " (everything it sent was committed)");
    }
    if (wsink_attach(w, ws) < 0) {
        /* Out of memory: it writes nothing (its queue keeps the events on
         * disk); say so loudly. */
        ws->held = true;
        log_warnx("sink \"%s\": cannot set up its new config; it does not write (restart "
                  "sluiced)",
                  s->cfg->name);
    }
    event_active(w->kick_ev, EV_TIMEOUT, 0);
    return again;
}

/*
 * Retiring sinks whose drain is over (nothing unsent or uncommitted) or
 * whose time is up: flushed as at a stop, detached, their reader removed
 * (what it still held is given up), answered, and gone from the writer.
 * Runs at the start and end of every writer_run.
 */
static void
writer_retire(struct sl_writer *w, uint64_t now_ms)
{
    for (size_t j = 0; j < w->nsinks;) {
        struct wsink *ws = w->sinks[j];
        if (!ws->retiring) {
            j++;
            continue;
        }
        /* An heir's predecessor sends nothing new: only its commits count. */
        bool drained = (ws->heir != NULL || ws->rd->unsent == 0) && ws->rd->uncommitted == 0;
        if (!drained && now_ms < ws->retire_until_ms) {
            writer_arm_timer(w, ws->retire_until_ms - now_ms);
            j++;
            continue;
        }
        if (ws->heir != NULL) {
            uint64_t again = writer_pass_on(w, ws);
            writer_answer_change(w, ws->retire_id, 0, 0, again);
            j++;
            continue;
        }
        struct sl_sink *s = ws->sink;
        if (s->ops->flush(s, true) != SL_SINK_OK) {
            sl_counter_add(&s->stats->errors, 1);
        }
        if (ws->attached && s->ops->detach != NULL) {
            s->ops->detach(s);
        }
        uint64_t bytes = 0, events = 0;
        ws->bl->ops->remove_reader(ws->bl, ws->rd, &bytes, &events);
        struct wqueue *wq = writer_queue_of(w, s->queue);
        if (wq != NULL) {
            wsink_list_remove(wq->sinks, &wq->nsinks, ws);
        }
        wsink_list_remove(w->sinks, &w->nsinks, ws);
        writer_release_successor(w, ws->successor);
        writer_answer_change(w, ws->retire_id, bytes, events, UINT64_MAX);
        free(ws);
    }
    writer_retire_queues(w, now_ms);
}

/*
 * SWAP_CHANGE of a sink that stays on a queue whose readers persist by name
 * (a disk queue): its reader is its place in the queue's state, so the new
 * sink does not get one of its own beside it (the old one would read on to
 * the end: everything twice) but takes it over.  r->new_sink is opened now,
 * between two writes (as in wsink_swap), and waits; old sends nothing new
 * from now on and waits for the commits of what it sent (an acknowledging
 * sink; one without acks has none to wait for), at most r->drain_ms; then
 * writer_pass_on.  Meanwhile the queue's state keeps no sink's bookkeeping
 * (it is on disk before this returns): a restart under the new config does
 * not restore the old type's, and one without acks has its position on
 * disk where it stopped.  Returns 0 (*answered false: writer_retire
 * answers) or -1 (r->new_sink cannot open: nothing changed).  Under swap_mu.
 */
static int
writer_hand_over(struct sl_writer *w, struct wsink *old, struct writer_swap *r, bool *answered)
{
    struct sl_sink *s = r->new_sink;
    if (s->ops->acks && s->ops->attach == NULL) {
        log_warnx("sink \"%s\": type %s acknowledges but has no attach", s->cfg->name,
                  s->ops->type);
        return -1;
    }
    if (s->ops->open(s) < 0) {
        log_warnx("sink \"%s\": its new config cannot open; the old one runs on", s->cfg->name);
        return -1;
    }
    old->heir = s;
    old->retiring = true;
    old->retire_until_ms = sl_now_ms() + r->drain_ms;
    old->retire_id = r->id;
    w->retire_wait = r; /* under swap_mu (writer_take_swap) */
    w->retire_wait_id = r->id;
    if (old->bl->ops->set_blob != NULL) {
        old->bl->ops->set_blob(old->bl, old->rd, NULL, 0);
    }
    if (old->bl->ops->save != NULL && old->bl->ops->save(old->bl) < 0) {
        log_warnx("sink \"%s\": cannot put its position on disk at the hand-over (the queue's "
                  "next state write will)",
                  s->cfg->name);
    }
    if (old->rd->uncommitted > 0) {
        log_info("sink \"%s\": hands its place in queue \"%s\" to its new config: sends nothing "
                 "new and waits for the acknowledgement of %zu byte(s) in flight first (at most "
                 "%" PRIu64 " ms)",
                 s->cfg->name, sl_queue_name(s->queue), old->rd->uncommitted, r->drain_ms);
    }
    *answered = false;
    event_active(w->kick_ev, EV_TIMEOUT, 0);
    return 0;
}

/* SWAP_CHANGE: adds new_sink, retires old (either may be NULL).  Returns
 * the rc; *answered false when the answer waits for old to go
 * (writer_retire).  Under swap_mu. */
static int
writer_change(struct sl_writer *w, struct writer_swap *r, bool *answered)
{
    struct wsink *old = r->old != NULL ? writer_wsink_of(w, r->old) : NULL;
    *answered = true;
    if (r->old != NULL && (old == NULL || old->retiring)) {
        return -1;
    }
    if (old != NULL && r->new_sink != NULL && r->new_sink->queue == old->sink->queue &&
        old->bl->ops->rewind != NULL) {
        return writer_hand_over(w, old, r, answered);
    }
    struct wsink *fresh = NULL;
    if (r->new_sink != NULL &&
        (fresh = writer_add_sink(w, r->new_sink, old != NULL, true)) == NULL) {
        return -1;
    }
    if (old == NULL) {
        return 0;
    }
    old->successor = fresh;
    /* In the same step as the add: every chunk goes to exactly one of the two. */
    old->retiring = true;
    old->rd->retired = true;
    old->retire_until_ms = sl_now_ms() + r->drain_ms;
    old->retire_id = r->id;
    w->retire_wait = r; /* under swap_mu (writer_take_swap) */
    w->retire_wait_id = r->id;
    old->waiting = false; /* a wait may end in the drain: try again */
    *answered = false;
    event_active(w->kick_ev, EV_TIMEOUT, 0);
    return 0;
}

/*
 * SWAP_ADD_QUEUE: r->queue (new, no producer yet) with its backlog r->bl
 * (a disk queue's opened and restored by the caller) joins the writer, and
 * r->sinks (made, not opened) with it: each opened here, its reader added
 * as at start (a disk queue: the position its name left in the state
 * file), its first checkpoint taken and the state on disk before it
 * writes (sink.h restore).  Returns 0, or -1 with nothing of it left in
 * the writer (the queue, its backlog and half-open sinks are the caller's).
 */
static int
writer_add_queue(struct sl_writer *w, struct writer_swap *r)
{
    if (writer_queue_of(w, r->queue) != NULL) {
        return -1;
    }
    struct wqueue *grown = realloc(w->queues, (w->nqueues + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    w->queues = grown;
    struct wqueue *wq = &w->queues[w->nqueues];
    memset(wq, 0, sizeof(*wq));
    wq->q = r->queue;
    wq->bl = r->bl;
    wq->evict_rl.interval_ms = EVICT_LOG_MS;
    if (sl_queue_when_full(r->queue) == SL_WHEN_FULL_DROP_OLDEST &&
        wq->bl->ops->evict_oldest == NULL) {
        log_warnx("queue \"%s\": a %s backlog cannot drop its oldest events", sl_queue_name(wq->q),
                  wq->bl->ops->kind);
        return -1;
    }
    w->nqueues++;
    sl_queue_set_consumer(r->queue, &w->wake);
    size_t k = 0;
    while (k < r->nsinks && writer_add_sink(w, r->sinks[k], false, false) != NULL) {
        k++;
    }
    wq = &w->queues[w->nqueues - 1];
    if (k == r->nsinks && (wq->bl->ops->save == NULL || wq->bl->ops->save(wq->bl) == 0)) {
        sl_queue_set_drain(r->queue, &w->drain); /* THE INLINE TURN */
        event_active(w->kick_ev, EV_TIMEOUT, 0);
        return 0;
    }
    /* Undone: its sinks leave (their readers go with the backlog), then it. */
    for (size_t j = 0; j < wq->nsinks; j++) {
        struct wsink *ws = wq->sinks[j];
        if (ws->attached && ws->sink->ops->detach != NULL) {
            ws->sink->ops->detach(ws->sink);
        }
        wsink_list_remove(w->sinks, &w->nsinks, ws);
        free(ws);
    }
    free(wq->sinks);
    w->nqueues--;
    return -1;
}

/* SWAP_REMOVE_QUEUE: r->queue (whose producers have stopped) is drained by
 * its sinks until r->drain_ms has passed; writer_retire_queues ends it.
 * Returns 0 (the answer waits: *answered false) or -1. */
static int
writer_remove_queue(struct sl_writer *w, struct writer_swap *r, bool *answered)
{
    struct wqueue *wq = writer_queue_of(w, r->queue);
    *answered = true;
    if (wq == NULL || wq->removing || w->retire_wait != NULL) {
        return -1;
    }
    for (size_t j = 0; j < wq->nsinks; j++) {
        if (wq->sinks[j]->retiring || wq->sinks[j]->held) {
            return -1; /* main.c removes a queue's sinks with it, never apart */
        }
        wq->sinks[j]->waiting = false; /* a wait may end in the drain: try again */
    }
    wq->removing = true;
    wq->remove_until_ms = sl_now_ms() + r->drain_ms;
    w->retire_wait = r; /* under swap_mu (writer_take_swap) */
    w->retire_wait_id = r->id;
    *answered = false;
    event_active(w->kick_ev, EV_TIMEOUT, 0);
    return 0;
}

/*
 * Removed queues whose sinks have written (and had committed) everything
 * and whose producers' chunks are all taken, or whose time is up: each
 * sink is flushed as at a stop and detached; a memory queue's readers are
 * removed (what they held is given up, counted), a disk queue's chunks go
 * to its files and its readers' positions stay in its state (the backlog,
 * handed back, saves them when freed: an operator may add the queue
 * again); chunks no backlog took are given up.  Answers the request and
 * takes the queue out of the writer.  Runs in writer_retire.
 */
static void
writer_retire_queues(struct sl_writer *w, uint64_t now_ms)
{
    for (size_t i = 0; i < w->nqueues;) {
        struct wqueue *wq = &w->queues[i];
        if (!wq->removing) {
            i++;
            continue;
        }
        bool drained = !sl_queue_has_chunks(wq->q);
        for (size_t j = 0; drained && j < wq->nsinks; j++) {
            drained = wq->sinks[j]->rd->unsent == 0 && wq->sinks[j]->rd->uncommitted == 0;
        }
        if (!drained && now_ms < wq->remove_until_ms) {
            writer_arm_timer(w, wq->remove_until_ms - now_ms);
            i++;
            continue;
        }
        bool persistent = wq->bl->ops->persistent;
        uint64_t bytes = 0, events = 0, kept = 0;
        while (persistent && !wq->bl->refusing && sl_queue_has_chunks(wq->q) &&
               wq->bl->ops->append(wq->bl, POP_PER_PASS, now_ms) > 0) {
        }
        for (size_t j = 0; j < wq->nsinks; j++) {
            struct wsink *ws = wq->sinks[j];
            struct sl_sink *s = ws->sink;
            if (s->ops->flush(s, true) != SL_SINK_OK) {
                sl_counter_add(&s->stats->errors, 1);
            }
            if (ws->attached && s->ops->detach != NULL) {
                s->ops->detach(s);
            }
            if (persistent) {
                kept += ws->rd->unsent + ws->rd->uncommitted;
            } else {
                uint64_t b = 0, e = 0;
                wq->bl->ops->remove_reader(wq->bl, ws->rd, &b, &e);
                bytes += b;
                events += e;
            }
            wsink_list_remove(w->sinks, &w->nsinks, ws);
            free(ws);
        }
        struct sl_chunk *c;
        while ((c = sl_queue_pop(wq->q)) != NULL) {
            bytes += c->len;
            events += c->nevents;
            sl_queue_release(wq->q, c);
        }
        struct sl_backlog *bl = wq->bl;
        struct sl_queue *q = wq->q;
        sl_queue_set_drain(q, NULL);
        free(wq->sinks);
        memmove(w->queues + i, w->queues + i + 1, (w->nqueues - i - 1) * sizeof(*w->queues));
        w->nqueues--;
        pthread_mutex_lock(&w->swap_mu);
        struct writer_swap *r = w->retire_wait;
        if (r != NULL && r->op == SWAP_REMOVE_QUEUE && r->queue == q && !r->withdrawn) {
            r->bl = bl;
            r->gave_bytes = bytes;
            r->gave_events = events;
            r->kept_bytes = kept;
            r->rc = 0;
            r->done = true;
            w->retire_wait = NULL;
            pthread_cond_broadcast(&w->swap_cv);
            bl = NULL;
        }
        pthread_mutex_unlock(&w->swap_mu);
        if (bl != NULL) {
            bl->ops->free(bl); /* nobody waits for it any more */
        }
    }
}

/* SWAP_CALL: r->fn on r->queue's backlog, on this thread. */
static int
writer_call(struct sl_writer *w, struct writer_swap *r)
{
    struct wqueue *wq = writer_queue_of(w, r->queue);
    if (wq == NULL || wq->removing) {
        return -1;
    }
    r->fn(wq->bl, r->arg);
    return 0;
}

static void
writer_take_swap(struct sl_writer *w)
{
    pthread_mutex_lock(&w->swap_mu);
    struct writer_swap *r = w->swap_req;
    if (r != NULL && !r->withdrawn) {
        bool answered = true;
        switch (r->op) {
        case SWAP_REPLACE:
            r->rc = wsink_swap(w, r->old, r->new_sink);
            break;
        case SWAP_CHANGE:
            r->rc = writer_change(w, r, &answered);
            break;
        case SWAP_ADD_QUEUE:
            r->rc = writer_add_queue(w, r);
            break;
        case SWAP_REMOVE_QUEUE:
            r->rc = writer_remove_queue(w, r, &answered);
            break;
        case SWAP_CALL:
            r->rc = writer_call(w, r);
            break;
        case SWAP_TICK:
            r->rc = 0;
            break;
        }
        r->done = answered;
        w->swap_req = NULL;
        pthread_cond_broadcast(&w->swap_cv);
    }
    pthread_mutex_unlock(&w->swap_mu);
}

/* Hands r to the writer thread and waits for its answer until timeout_ms.
 * Returns r's rc, or -2 when withdrawn unanswered. */
static int
writer_ask(struct sl_writer *w, struct writer_swap *r, uint64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline = sl_timespec_add_ms(deadline, timeout_ms);
    pthread_mutex_lock(&w->swap_mu);
    r->id = ++w->swap_ids;
    w->swap_req = r;
    atomic_store(&w->swap_asked, true);
    sl_wake_kick(&w->wake);
    while (!r->done) {
        if (pthread_cond_timedwait(&w->swap_cv, &w->swap_mu, &deadline) == ETIMEDOUT && !r->done) {
            r->withdrawn = true;
            if (w->swap_req == r) {
                w->swap_req = NULL;
            }
            if (w->retire_wait == r) {
                w->retire_wait = NULL; /* the sink still retires; nobody hears of it */
            }
            break;
        }
    }
    pthread_mutex_unlock(&w->swap_mu);
    return r->done ? r->rc : -2;
}

int
sl_writer_change_sinks(struct sl_writer *w, struct sl_sink *old, struct sl_sink *new_sink,
                       uint64_t drain_ms, uint64_t timeout_ms, uint64_t *gave_bytes,
                       uint64_t *gave_events, uint64_t *resent_bytes)
{
    struct writer_swap r = {.op = SWAP_CHANGE,
                            .old = old,
                            .new_sink = new_sink,
                            .drain_ms = drain_ms,
                            .rc = -1,
                            .resent_bytes = UINT64_MAX};
    int rc = writer_ask(w, &r, timeout_ms);
    *gave_bytes = r.gave_bytes;
    *gave_events = r.gave_events;
    *resent_bytes = r.resent_bytes;
    return rc;
}

int
sl_writer_replace_sink(struct sl_writer *w, struct sl_sink *old, struct sl_sink *new_sink,
                       uint64_t timeout_ms)
{
    struct writer_swap r = {.op = SWAP_REPLACE, .old = old, .new_sink = new_sink, .rc = -1};
    return writer_ask(w, &r, timeout_ms);
}

int
sl_writer_add_queue(struct sl_writer *w, struct sl_queue *q, struct sl_backlog *bl,
                    struct sl_sink *const *sinks, size_t nsinks, uint64_t timeout_ms)
{
    struct writer_swap r = {
        .op = SWAP_ADD_QUEUE, .queue = q, .bl = bl, .sinks = sinks, .nsinks = nsinks, .rc = -1};
    return writer_ask(w, &r, timeout_ms);
}

int
sl_writer_remove_queue(struct sl_writer *w, struct sl_queue *q, uint64_t drain_ms,
                       uint64_t timeout_ms, struct sl_backlog **bl, uint64_t *gave_bytes,
                       uint64_t *gave_events, uint64_t *kept_bytes)
{
    struct writer_swap r = {.op = SWAP_REMOVE_QUEUE, .queue = q, .drain_ms = drain_ms, .rc = -1};
    int rc = writer_ask(w, &r, timeout_ms);
    *bl = rc == 0 ? r.bl : NULL;
    *gave_bytes = r.gave_bytes;
    *gave_events = r.gave_events;
    *kept_bytes = r.kept_bytes;
    return rc;
}

int
sl_writer_tick_resting(struct sl_writer *w, uint64_t timeout_ms)
{
    if (!atomic_load_explicit(&w->resting, memory_order_relaxed)) {
        return 0; /* it ticks by itself */
    }
    struct writer_swap r = {.op = SWAP_TICK, .rc = -1};
    return writer_ask(w, &r, timeout_ms);
}

int
sl_writer_call_backlog(struct sl_writer *w, struct sl_queue *q,
                       void (*fn)(struct sl_backlog *bl, void *arg), void *arg, uint64_t timeout_ms)
{
    struct writer_swap r = {.op = SWAP_CALL, .queue = q, .fn = fn, .arg = arg, .rc = -1};
    return writer_ask(w, &r, timeout_ms);
}

/*
 * THE LINGER.  At a few thousand events a second every read of a producer
 * pushes a chunk of one or two events into a writer that has gone to
 * sleep, so each costs a writer wake-up (the producer's eventfd write, the
 * writer's epoll_wait, an idle vCPU kicked) and a writev + fstat of its
 * own, which wakes every inotify reader of the file (tail -F) once more:
 * on the bench VM at 10 k events/s that was ~40 % of sluiced's CPU and
 * most of its excess over the bare receive->write loop
 * (bench/results/analysis.md, 2026-12-06 cpu10k).  So, while the writer
 * writes less than LINGER_RATE, a run that had work does not announce
 * sleep: the writer looks at the queues again LINGER_US later, and pushes
 * meanwhile write no eventfd.  An event waits at most one linger more.
 * Judged over the previous LINGER_WINDOW_MS: the writer starts lingering
 * when it had work at least twice per linger, and goes on while a linger
 * finds at least two chunks on average; below that (a trickle, where the
 * linger's timer would replace each wake-up rather than save some) and
 * above the rate (the latency at 100 k events/s is a target: no linger
 * there) nothing changes.  A run that finds no work ends the linger, so an
 * idle writer sleeps as before.  The timer is a timerfd armed only while
 * lingering: libevent's timers run on CLOCK_MONOTONIC_COARSE (4 ms steps
 * here), which made a 1 ms linger 2-3 ms.
 */
#define LINGER_US 1000
#define LINGER_WINDOW_MS 100
#define LINGER_RATE (4u << 20)  /* bytes per second, ~18 k events/s of 230 B */
#define INLINE_RATE (32u << 20) /* bytes per second: THE INLINE TURN's bound */
/* THE INLINE TURN's breaker: a turn that took longer than INLINE_SLOW_NS,
 * or a sink failing or waiting, closes the turn for 50-500 ms
 * (writer/breaker.h), so the writer thread writes and the queue absorbs. */
#define INLINE_SLOW_NS 1000000u

/* The rate window (LINGER_WINDOW_MS), at the end of a run (the writer's
 * or an inline one; busy: it had work): whether the writer lingers, and
 * whether it writes too fast for THE INLINE TURN. */
static void
writer_window(struct sl_writer *w, bool busy, uint64_t now)
{
    if (busy) {
        w->win_runs++;
    }
    if (now - w->win_start_ms < LINGER_WINDOW_MS) {
        return;
    }
    uint64_t span = now - w->win_start_ms;
    bool slow = w->win_bytes * 1000 < (uint64_t)LINGER_RATE * span;
    /* A window that spans an idle stretch says nothing of the rate now:
     * THE INLINE TURN waits for a whole window of moderate rate, so a burst
     * after a rest (a full-speed sender) is not written inline meanwhile. */
    w->fast = span > 2 * LINGER_WINDOW_MS || w->win_bytes * 1000 >= (uint64_t)INLINE_RATE * span;
    if (w->linger_ev == NULL) {
        w->lingering = false;
    } else if (w->lingering) {
        w->lingering = slow && w->win_chunks >= 2 * w->win_runs;
    } else {
        w->lingering = slow && w->win_runs * LINGER_US >= 2 * span * 1000;
    }
    w->win_start_ms = now;
    w->win_bytes = 0;
    w->win_runs = 0;
    w->win_chunks = 0;
}

/* True when the writer, having had work (busy) in this run, is to look
 * again in LINGER_US instead of sleeping until woken. */
static bool
writer_linger(struct sl_writer *w, bool busy, uint64_t now)
{
    if (w->draining) {
        return false;
    }
    writer_window(w, busy, now);
    if (!busy || !w->lingering) {
        return false;
    }
    sl_wake_cancel(&w->wake); /* so pushes meanwhile write no eventfd */
    if (!w->linger_armed) {
        struct itimerspec its = {.it_value = {.tv_sec = 0, .tv_nsec = LINGER_US * 1000}};
        if (timerfd_settime(w->linger_fd, 0, &its, NULL) < 0) {
            return false;
        }
        w->linger_armed = true;
    }
    return true;
}

/* One pass: chunks from the queues to their backlogs, the sinks' writes
 * that are due, drop_oldest's evictions.  Returns true when a chunk was
 * pulled. */
static bool
writer_pass(struct sl_writer *w, bool stalled, uint64_t now)
{
    size_t nbusy = 0;
    for (size_t k = 0; k < w->nqueues; k++) {
        struct wqueue *wq = &w->queues[(w->rr + k) % w->nqueues];
        if (writer_pull(w, wq, now)) {
            nbusy++;
        }
    }
    w->busy_queues = nbusy; /* writer_pull's share in the next pass */
    w->rr++;
    if (stalled) {
        writer_arm_timer(w, 10);
    } else {
        for (size_t k = 0; k < w->nqueues; k++) {
            struct wqueue *wq = &w->queues[k];
            bool empty = !sl_queue_has_chunks(wq->q);
            bool full = sl_queue_full(wq->q);
            for (size_t j = 0; j < wq->nsinks; j++) {
                wsink_maybe_write(w, wq->sinks[j], empty, full, now);
            }
        }
    }
    for (size_t k = 0; k < w->nqueues; k++) {
        if (wqueue_drop_oldest(&w->queues[k])) {
            writer_evict(&w->queues[k], now);
        }
    }
    return nbusy > 0;
}

static void
writer_run(struct sl_writer *w)
{
    /* From here a stuck writer must show in its heartbeat (writer_tick). */
    atomic_store_explicit(&w->resting, false, memory_order_relaxed);
    if (w->wedge_path != NULL) {
        /* Test hook: a wedged writer (as if stuck in a syscall), so the
         * heartbeat stops and the systemd watchdog must act. */
        while (access(w->wedge_path, F_OK) == 0) {
            usleep(10000);
        }
    }
    atomic_store_explicit(&w->heartbeat_ms, sl_now_ms(), memory_order_relaxed);
    if (atomic_exchange(&w->reopen, 0)) {
        for (size_t j = 0; j < w->nsinks; j++) {
            if (!w->sinks[j]->held) { /* not attached yet: it opened just now */
                w->sinks[j]->sink->ops->reopen(w->sinks[j]->sink);
            }
        }
    }
    if (w->rests) {
        /* Back from a rest: the tick's work before any write (THE TICK),
         * and the tick armed again for a second if chunks came. */
        writer_tick(w, !writer_queues_empty(w));
    }
    if (atomic_exchange(&w->swap_asked, false)) {
        writer_take_swap(w);
    }
    writer_retire(w, sl_now_ms());
    int stop = atomic_load(&w->stop);
    if (stop == 2) {
        for (size_t j = 0; j < w->nsinks; j++) {
            if (!w->sinks[j]->bl->ops->persistent) {
                w->lost += w->sinks[j]->rd->unsent + w->sinks[j]->rd->uncommitted;
            }
        }
        writer_finish(w);
        return;
    }
    if (stop == 1) {
        w->draining = true;
    }
    bool busy = false;
    for (int pass = 0;; pass++) {
        if (pass == 256) {
            /* Sustained load: let timers and the tick run, then go on. */
            event_active(w->wake_ev, EV_READ, 0);
            w->turned = true;
            return;
        }
        bool stalled = writer_stalled(w);
        uint64_t now = sl_now_ms();
        bool pulled = false;
        if (atomic_load_explicit(&w->kicked, memory_order_relaxed) &&
            atomic_exchange_explicit(&w->kicked, false, memory_order_acq_rel)) {
            writer_take_kicks(w);
            w->turned = true; /* a sink's wake or commit: the tick goes on */
        }
        /* Every pass is progress: a long busy stretch is not a wedge. */
        atomic_store_explicit(&w->heartbeat_ms, now, memory_order_relaxed);
        pulled |= writer_pass(w, stalled, now);
        /* After the writes: what they moved (a disk queue's positions) is
         * in what poll decides and when it wants to run again.  Poll can
         * itself give the sinks work (a disk queue's retry after a write
         * error writes the chunks it held and publishes them): that is a
         * pull like any other, else the writer could sleep with events for
         * its sinks and nothing to wake it (no push: they were popped
         * already). */
        uint64_t unsent = writer_unsent(w);
        uint64_t due = writer_poll_backlogs(w, now);
        if (pulled || writer_unsent(w) > unsent) {
            busy = true;
            continue;
        }
        if (due > 0) {
            writer_arm_timer(w, due);
        }
        if (writer_linger(w, busy, now)) {
            break; /* THE LINGER: back in LINGER_US, not announced */
        }
        /* Nothing new: announce, re-check, sleep (wake.h).  A sink's wake
         * or commit from another thread is work like a pushed chunk, and so
         * are a producer's request to evict and a new durable watcher. */
        sl_wake_announce(&w->wake);
        if (!writer_queues_empty(w) || atomic_load(&w->kicked) || writer_evict_asked(w) ||
            writer_durable_kicked(w)) {
            sl_wake_cancel(&w->wake);
            continue;
        }
        break;
    }
    w->turned |= busy; /* events flow: the tick goes on (THE TICK) */
    if (w->rests && w->turned) {
        /* Work found after this run's catch-up tick (chunks pushed while a
         * kick or an ask woke the writer, whose push then woke no one): the
         * tick goes on once a second, as it would have from that tick. */
        writer_tick_arm(w, TICK_MS);
    }
    writer_retire(w, sl_now_ms());
    if (w->draining && !writer_pending(w)) {
        writer_finish(w);
    }
}

/*
 * THE INLINE TURN.  At a moderate rate the hop from producer to writer is
 * the whole of sluiced's CPU above a bare receive → write loop: ~3,500
 * writer sleeps and wake-ups a second at 100 k events/s, and the
 * producer's eventfd write for each (bench/results/analysis.md, "(h100)"
 * and "(inline)").  So a thread that has just pushed a chunk (the queue
 * offers it: sl_queue_set_drain) takes the writer's turn itself when it
 * can: it try-locks turn_mu, which the writer thread holds for each of its
 * callbacks, and runs the writer's passes (writer_pass: the same pulls,
 * writes and evictions) while it still has its chunk in its cache.  It
 * takes the turn only when the writer thread has nothing else to do first:
 *   - the config allows it (writer_inline_possible): memory queues only (a
 *     disk queue has its own syncs and timers), sinks that neither attach
 *     to the writer's event_base nor acknowledge and say they may write
 *     from another thread (sink.h may_inline: a file without fsync), no
 *     sink being replaced or retired, no test hook;
 *   - the writer is not resting (its tick runs, so a renamed file is
 *     noticed; the inline pass counts as work, so the tick goes on), not
 *     stopping, not lingering (below LINGER_RATE the linger batches
 *     better), not above INLINE_RATE (at full speed the two threads
 *     overlap reading and writing; the same rate window judges both) and
 *     has no reload, reopen or sink's kick waiting.
 * The breaker: a slow output must not stall a producer's input (without
 * the turn the queue absorbs it first).  A turn whose passes took longer
 * than INLINE_SLOW_NS (1 ms: a page-cache write of a few hundred KiB takes
 * far less), or after which a sink is failing (retrying after a backoff)
 * or waiting for its wake, closes the turn: a slow turn for 50 ms, one
 * slow again soon after for twice the last closure, up to 500 ms, which a
 * stuck sink gets at once (writer/breaker.h: on this VM a slow pass is as
 * often the vCPU stalled as the output slow); the writer thread's next
 * turn after that opens it again (while events
 * flow, every push signals the writer then).  And the writer thread does
 * not starve: it announces that it waits for turn_mu (turn_wanted) and a
 * push does not try the lock meanwhile.
 * Whatever the pass cannot do off the writer thread (arm a timer: a batch
 * not yet due, a sink backing off; yield after many writes) it leaves to
 * the writer: the push then signals the writer as without the turn, as it
 * does when the lock is taken.  The writer's event_base is never touched
 * from the pushing thread.  Order is the queue's: one pass at a time, in
 * push order, whichever thread runs it.
 */
/* True when every sink still says it may be written from a pushing thread
 * (sink.h may_inline): asked before each inline pass, since what a sink
 * writes to may change within a pass (a file sink's rotation or reopen). */
static bool
writer_sinks_inline(const struct sl_writer *w)
{
    for (size_t j = 0; j < w->nsinks; j++) {
        const struct sl_sink *sink = w->sinks[j]->sink;
        if (!sink->ops->may_inline(sink)) {
            return false;
        }
    }
    return true;
}

/* True when a sink is failing (retrying after a backoff) or waiting for
 * its wake: the breaker's other cause (THE INLINE TURN). */
static bool
writer_sinks_stalled(const struct sl_writer *w)
{
    for (size_t j = 0; j < w->nsinks; j++) {
        const struct wsink *ws = w->sinks[j];
        if (ws->retry_at_ms != 0 || ws->waiting) {
            return true;
        }
    }
    return false;
}

static bool
writer_inline(struct sl_writer *w)
{
    if (!w->inline_ok || w->rests || w->lingering || w->fast || w->draining ||
        atomic_load_explicit(&w->stop, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&w->reopen, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&w->swap_asked, memory_order_relaxed) ||
        atomic_load_explicit(&w->kicked, memory_order_relaxed)) {
        return false;
    }
    uint64_t t0 = sl_now_ns();
    uint64_t now = t0 / 1000000u;
    if (now < w->inline_shut_ms) {
        return false;
    }
    atomic_store_explicit(&w->heartbeat_ms, now, memory_order_relaxed);
    w->need_writer = false;
    bool busy = false;
    unsigned passes = 0;
    writer_inline_now = true;
    for (int pass = 0; pass < 4; pass++) {
        if (!writer_sinks_inline(w)) {
            /* A sink's output changed under the last pass (a rotation or a
             * reopen onto a FIFO, say): the writer thread takes over. */
            w->inline_ok = false;
            w->need_writer = true;
            break;
        }
        if (!writer_pass(w, false, now)) {
            break;
        }
        busy = true;
        passes++;
    }
    writer_inline_now = false;
    /* The turn's end, not its start: a pass that took longer than the
     * breaker's window must still close the turn (the review of 4469f02). */
    uint64_t t1 = sl_now_ns();
    uint64_t end = t1 / 1000000u;
    writer_window(w, busy, end);
    if (busy) {
        w->turned = true; /* events flow: the tick goes on (THE TICK) */
        sl_counter_add(&w->inline_passes, passes);
    }
    bool stalled = writer_sinks_stalled(w);
    if (t1 - t0 > INLINE_SLOW_NS || stalled) {
        /* the breaker */
        w->inline_close_ms =
            sl_breaker_close_ms(w->inline_close_ms, end - w->inline_trip_ms, stalled);
        w->inline_trip_ms = end;
        w->inline_shut_ms = end + w->inline_close_ms;
    }
    return !w->need_writer && !w->lingering && !w->fast && writer_queues_empty(w) &&
           writer_unsent(w) == 0;
}

/* Under turn_mu, after whatever changed what writer_inline looks at: its
 * answer for the push's look before it tries the lock (a trylock that
 * succeeds while the writer thread wants the lock makes the writer sleep on
 * it: at full speed that cost more than the turn saves). */
static void
writer_inline_publish(struct sl_writer *w)
{
    if (w->inline_shut_ms != 0 && sl_now_ms() >= w->inline_shut_ms) {
        w->inline_shut_ms = 0;
    }
    atomic_store_explicit(&w->inline_open,
                          w->inline_ok && !w->rests && !w->lingering && !w->fast && !w->draining &&
                              w->inline_shut_ms == 0,
                          memory_order_relaxed);
}

/* sl_queue_drain fn: a push on any thread but the writer's.  True when the
 * pushing thread took everything there was (no wake-up needed). */
static bool
writer_drain_cb(struct sl_queue_drain *d)
{
    struct sl_writer *w = (struct sl_writer *)((char *)d - offsetof(struct sl_writer, drain));
    if (writer_self == w || !atomic_load_explicit(&w->inline_open, memory_order_relaxed) ||
        atomic_load_explicit(&w->turn_wanted, memory_order_relaxed) ||
        pthread_mutex_trylock(&w->turn_mu) != 0) {
        return false;
    }
    bool done = writer_inline(w);
    writer_inline_publish(w);
    pthread_mutex_unlock(&w->turn_mu);
    return done;
}

/* True when the config allows THE INLINE TURN (writer_inline). */
static bool
writer_inline_possible(const struct sl_writer *w)
{
    if (w->stall_path != NULL || w->wedge_path != NULL || w->nsinks == 0) {
        return false;
    }
    for (size_t i = 0; i < w->nqueues; i++) {
        const struct wqueue *wq = &w->queues[i];
        if (wq->bl->ops->persistent || wq->bl->ops->poll != NULL || wq->removing) {
            return false;
        }
    }
    for (size_t j = 0; j < w->nsinks; j++) {
        const struct wsink *ws = w->sinks[j];
        const struct sl_sink_ops *ops = ws->sink->ops;
        if (ops->acks || ops->attach != NULL || ops->may_inline == NULL ||
            !ops->may_inline(ws->sink) || ws->retiring || ws->held || ws->heir != NULL) {
            return false;
        }
    }
    return true;
}

/* Each callback of the writer thread takes the writer's turn (THE INLINE
 * TURN): a pushing thread may hold it for a pass. */
static void
writer_turn_lock(struct sl_writer *w)
{
    if (pthread_mutex_trylock(&w->turn_mu) != 0) {
        /* A producer holds the turn: no other takes it before the writer. */
        atomic_store_explicit(&w->turn_wanted, true, memory_order_relaxed);
        pthread_mutex_lock(&w->turn_mu);
        atomic_store_explicit(&w->turn_wanted, false, memory_order_relaxed);
    }
}

static void
writer_turn(struct sl_writer *w)
{
    writer_turn_lock(w);
    writer_run(w);
    w->inline_ok = writer_inline_possible(w); /* a reload may have changed it */
    writer_inline_publish(w);
    pthread_mutex_unlock(&w->turn_mu);
}

static void
writer_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_writer *w = arg;
    sl_wake_consume(&w->wake); /* no read(2) when edge-triggered (wake.c) */
    writer_turn(w);
}

static void
writer_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    writer_turn(arg);
}

static void
writer_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    writer_turn(arg);
}

/* THE LINGER's timer. */
static void
writer_linger_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_writer *w = arg;
    if (!w->linger_et) {
        uint64_t ticks;
        (void)!read(fd, &ticks, sizeof(ticks));
    }
    w->linger_armed = false;
    writer_turn(w);
}

/*
 * A sink's wake or commit is waiting: the next pass applies it.  On the
 * writer thread (a sink's libevent callback) that pass runs from
 * writer_kick_cb, outside the sink's call stack, as before; from any other
 * thread the flag is the work and sl_wake_signal the announce / fence /
 * re-check wake-up (wake.h): either the writer's re-check sees the flag or
 * the signal sees the writer asleep and writes its eventfd.  No lock, and
 * no locking event_base (which would tax every event operation of the
 * writer thread to serve a rare call).
 */
static void
writer_kick_any(struct sl_writer *w)
{
    atomic_store_explicit(&w->kicked, true, memory_order_release);
    if (writer_self == w) {
        event_active(w->kick_ev, EV_TIMEOUT, 0);
    } else {
        (void)sl_wake_signal(&w->wake);
    }
}

/* sl_sink_wake_fn: a sink that answered SL_SINK_WAIT can go on.  Any
 * thread. */
static void
writer_sink_wake(void *arg)
{
    struct wsink *ws = arg;

    atomic_store_explicit(&ws->woken, true, memory_order_release);
    writer_kick_any(ws->w);
}

/* sl_sink_commit_fn: an acknowledging sink's peer committed n more bytes.
 * Any thread. */
static void
writer_sink_commit(void *arg, size_t n)
{
    struct wsink *ws = arg;

    atomic_fetch_add_explicit(&ws->acked, n, memory_order_release);
    writer_kick_any(ws->w);
}

/*
 * THE TICK.  Periodic work of the sinks (sink.h tick: a renamed file, time
 * rotation, interval fsync, a failed open retried), of the writer (a
 * failing sink found healthy again is retried at once, the last eviction
 * summary of a burst) and of the daemon (its hook: the systemd watchdog,
 * STATUS=).  It runs once a second while the writer works: while
 * writer_run has run since the last tick, while a sink holds data (unsent,
 * uncommitted, backing off) and while the wedge hook is on.  Otherwise the
 * writer rests: the tick is armed only for the earliest deadline a sink or
 * the hook names (an hourly rotation, the watchdog's next ping; capped at
 * TICK_MAX_MS), if any, and the first writer_run in a rest (a push, a
 * sink's kick, a reload, SIGHUP) runs the tick before anything else, so a
 * file renamed meanwhile is reopened before the next event is written to
 * it, and the tick goes on once a second while events flow.  /healthz and /metrics ask a resting writer for a tick and wait
 * for it (sl_writer_tick_resting), so a folder removed meanwhile shows in
 * the answer and the heartbeat they report is the writer's answer, not
 * the age of its rest.  What it buys: the tick was the one wake-up of an
 * idle daemon, once a second (idle_run in bench/lib.sh: 1.00-1.13
 * wake-ups/s); resting, an idle sluiced with the default config makes
 * none (bench/results/analysis.md, "Idle wake-ups").  woken: chunks came
 * (a catch-up at the end of a rest), so the tick goes on.
 */
static void
writer_tick(struct sl_writer *w, bool woken)
{
    uint64_t now = sl_now_ms();
    atomic_store_explicit(&w->heartbeat_ms, now, memory_order_relaxed);
    bool retry_now = false;
    uint64_t next = woken || w->turned || w->wedge_path != NULL ? TICK_MS : SL_SINK_TICK_NONE;
    w->turned = false;
    for (size_t j = 0; j < w->nsinks; j++) {
        struct wsink *ws = w->sinks[j];
        struct sl_sink *s = ws->sink;
        if (ws->held) {
            continue; /* not attached yet */
        }
        uint64_t d = s->ops->tick(s, now);
        if (d < next) {
            next = d;
        }
        if (ws->rd->unsent > 0 || ws->rd->uncommitted > 0 || ws->retry_at_ms != 0) {
            next = 0; /* it holds data: once a second */
        }
        /* A failing sink that its tick found healthy again (an output
         * folder is back) is retried now, not at the end of its backoff. */
        if (ws->retry_at_ms > now && !atomic_load(&s->health.failing)) {
            ws->retry_at_ms = now;
            retry_now = true;
        }
    }
    if (retry_now) {
        event_active(w->kick_ev, EV_TIMEOUT, 0);
    }
    for (size_t i = 0; i < w->nqueues; i++) {
        writer_report_evictions(&w->queues[i], now); /* the last summary of a burst */
        if (w->queues[i].evicted_events > 0) {
            next = 0; /* a summary is still due */
        }
    }
    if (w->tick_hook != NULL) {
        uint64_t d = w->tick_hook(w->tick_arg, now);
        if (d < next) {
            next = d;
        }
    }
    if (next == SL_SINK_TICK_NONE) {
        w->rests = true;
        atomic_store_explicit(&w->resting, true, memory_order_relaxed);
        event_del(w->tick_ev);
    } else {
        /* "Now" (0) is once a second; a deadline under a second is kept
         * (a watchdog of WatchdogSec <= 2 s asks for one). */
        writer_tick_arm(w, next == 0 ? TICK_MS : next);
    }
}

/* Arms the tick in ms (at least TICK_MIN_MS, at most TICK_MAX_MS, plus the
 * slack so a deadline named has passed when it runs); over a second away,
 * the writer rests (THE TICK). */
static void
writer_tick_arm(struct sl_writer *w, uint64_t ms)
{
    w->rests = ms > TICK_MS;
    atomic_store_explicit(&w->resting, w->rests, memory_order_relaxed);
    ms = ms < TICK_MIN_MS ? TICK_MIN_MS : ms > TICK_MAX_MS ? TICK_MAX_MS : ms;
    ms += TICK_SLACK_MS;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    /* event_add counts from the loop's cached time, which a long turn
     * (sink reopens before this) leaves behind: refresh it first. */
    event_base_update_cache_time(w->base);
    event_add(w->tick_ev, &tv); /* a deadline armed before is replaced */
}

static void
writer_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_writer *w = arg;
    writer_turn_lock(w);
    writer_tick(w, false);
    writer_inline_publish(w);
    pthread_mutex_unlock(&w->turn_mu);
    if (w->wedge_path != NULL) {
        writer_turn(w); /* the wedge hook is checked at least once a second */
    }
}

void
sl_writer_set_tick_hook(struct sl_writer *w, uint64_t (*fn)(void *arg, uint64_t now_ms), void *arg)
{
    w->tick_hook = fn;
    w->tick_arg = arg;
}

static void *
writer_main(void *arg)
{
    struct sl_writer *w = arg;
    writer_self = w;
    writer_turn(w); /* first announcement: from now on producers wake us */
    event_base_dispatch(w->base);
    return NULL;
}

int
sl_writer_start(struct sl_writer *w)
{
    return sl_thread_start(&w->thread, writer_main, w);
}

void
sl_writer_stop(struct sl_writer *w, bool force)
{
    sl_thread_stop_request(&w->stop, force);
    sl_wake_kick(&w->wake);
}

void
sl_writer_reopen(struct sl_writer *w)
{
    atomic_store(&w->reopen, 1);
    sl_wake_kick(&w->wake);
}

void
sl_writer_join(struct sl_writer *w)
{
    sl_thread_join(&w->thread);
}

int
sl_writer_join_until(struct sl_writer *w, const struct timespec *deadline)
{
    return sl_thread_join_until(&w->thread, deadline);
}

uint64_t
sl_writer_heartbeat_ms(const struct sl_writer *w)
{
    return atomic_load_explicit(&((struct sl_writer *)w)->heartbeat_ms, memory_order_relaxed);
}

uint64_t
sl_writer_inline_passes(const struct sl_writer *w)
{
    return sl_counter_get(&w->inline_passes);
}

uint64_t
sl_writer_lost(const struct sl_writer *w)
{
    return w->lost;
}
