/*
 * Unit tests for queue and wake: bounds, order, and the pause/resume
 * protocol under concurrency (N producer threads × many chunks, a tiny
 * queue so producers pause constantly, random yields in both wake paths).
 * A lost wake-up shows as a thread waiting past its deadline: the test
 * fails instead of hanging.  The same with the consumer asleep in an
 * event_base on its edge-triggered wake event, which never reads the
 * eventfd, as the writer does (sl_wake_event_new).  And the overflow policy's parts that live
 * here: the drop_oldest request flag, the room threshold, and the memory
 * backlog's evict_oldest (what it may and may not take).
 */
#include <check.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/backlog.h"
#include "sluice/queue.h"
#include "sluice/wake.h"

#define WAIT_DEADLINE_MS 5000

START_TEST(test_queue_bounds_and_reserve)
{
    /* 16 chunks: TCP may take 14 (reserve 16/8 = 2), UDP the rest. */
    struct sl_queue *q = sl_queue_new("q", 16 * 4096, 4096);
    struct sl_chunk *held[17];
    int n = 0;
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(sl_queue_nchunks(q), 16);
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        ck_assert_uint_eq(held[n]->len, 0);
        ck_assert_uint_eq(held[n]->cap, 4096);
        n++;
    }
    ck_assert_int_eq(n, 14);
    ck_assert(!sl_queue_can_acquire(q, SL_ACQUIRE_TCP));
    ck_assert(sl_queue_can_acquire(q, SL_ACQUIRE_UDP));
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_UDP)) != NULL) {
        n++;
    }
    ck_assert_int_eq(n, 16);
    ck_assert_uint_eq(sl_queue_in_use(q), 16);
    for (int i = 0; i < n; i++) {
        sl_queue_release(q, held[i]);
    }
    ck_assert_uint_eq(sl_queue_in_use(q), 0);
    sl_queue_free(q);
}
END_TEST

/* Every chunk of a multi-MiB queue is writable over its whole cap, and no
 * two overlap: each chunk filled with its own byte keeps it while all the
 * others are filled too, and again after they all went round the free
 * ring (a guard for any change to how chunks are carved; the 2 MiB-arena
 * variant in bench/results/analysis.md, session 6, was checked with it). */
START_TEST(test_queue_chunks_whole_and_disjoint)
{
    /* 40 chunks of 100,000 bytes (not a power of two, ~4 MB in all). */
    enum { N = 40, CB = 100000 };
    struct sl_queue *q = sl_queue_new("q", (size_t)N * CB, CB);
    struct sl_chunk *held[N + 1];
    ck_assert_ptr_nonnull(q);
    for (int round = 0; round < 2; round++) {
        int n = 0;
        while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_UDP)) != NULL) {
            ck_assert_uint_eq(held[n]->cap, CB);
            ck_assert_ptr_eq(held[n]->queue, q);
            memset(held[n]->data, 'A' + (n + round) % 50, held[n]->cap);
            held[n]->len = held[n]->cap;
            n++;
        }
        ck_assert_int_eq(n, N);
        for (int i = 0; i < n; i++) {
            const char want = (char)('A' + (i + round) % 50);
            size_t bad = 0;
            for (size_t k = 0; k < CB; k++) {
                bad += held[i]->data[k] != want;
            }
            ck_assert_uint_eq(bad, 0);
            ck_assert_uint_eq(held[i]->len, CB);
        }
        for (int i = 0; i < n; i++) {
            sl_queue_push(q, held[i]);
        }
        struct sl_chunk *c;
        while ((c = sl_queue_pop(q)) != NULL) {
            sl_queue_release(q, c);
        }
        ck_assert_uint_eq(sl_queue_in_use(q), 0);
    }
    sl_queue_free(q);
}
END_TEST

START_TEST(test_queue_fifo_and_recycle)
{
    struct sl_queue *q = sl_queue_new("q", 8 * 4096, 4096);
    ck_assert_ptr_nonnull(q);
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 5; i++) {
            struct sl_chunk *c = sl_queue_acquire(q, SL_ACQUIRE_TCP);
            ck_assert_ptr_nonnull(c);
            c->len = (size_t)snprintf(c->data, c->cap, "%d-%d\n", round, i);
            sl_queue_push(q, c);
        }
        for (int i = 0; i < 5; i++) {
            char want[32];
            snprintf(want, sizeof(want), "%d-%d\n", round, i);
            struct sl_chunk *c = sl_queue_pop(q);
            ck_assert_ptr_nonnull(c);
            ck_assert(memcmp(c->data, want, strlen(want)) == 0);
            sl_queue_release(q, c);
        }
        ck_assert_ptr_null(sl_queue_pop(q));
        ck_assert(!sl_queue_has_chunks(q));
    }
    sl_queue_free(q);
}
END_TEST

START_TEST(test_queue_empty_push_recycles)
{
    struct sl_queue *q = sl_queue_new("q", 2 * 4096, 4096);
    struct sl_chunk *c = sl_queue_acquire(q, SL_ACQUIRE_TCP);
    ck_assert_ptr_nonnull(c);
    sl_queue_push(q, c); /* len 0: recycled, not queued */
    ck_assert(!sl_queue_has_chunks(q));
    ck_assert_uint_eq(sl_queue_in_use(q), 0);
    sl_queue_free(q);
}
END_TEST

START_TEST(test_wake_signal_only_when_sleeping)
{
    struct sl_wake w;
    ck_assert_int_eq(sl_wake_init(&w), 0);
    ck_assert(!sl_wake_signal(&w)); /* awake: no eventfd write */
    sl_wake_announce(&w);
    ck_assert(sl_wake_signal(&w));
    ck_assert(!sl_wake_signal(&w)); /* one write per sleep */
    struct pollfd pfd = {.fd = w.fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    sl_wake_drain(&w);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    sl_wake_fini(&w);
}
END_TEST

/* The edge-triggered wake event (sl_wake_event_new, as the writer's): a
 * sleep ended by N pushes costs one eventfd write and one callback that
 * finds all N; the eventfd is never read, yet the event does not fire again
 * by itself (no busy loop), and the next sleep is woken by the next push
 * although the counter is not zero. */
static struct sl_chunk *filled(struct sl_queue *q, const char *text);

struct edge_count {
    struct sl_wake *w;
    int calls;
};

static void
count_cb(evutil_socket_t fd, short what, void *arg)
{
    struct edge_count *ec = arg;
    sl_wake_consume(ec->w);
    ec->calls++;
}

START_TEST(test_wake_edge_one_event_per_sleep)
{
    struct sl_queue *q = sl_queue_new("edge", 8 * 4096, 4096);
    struct sl_wake w;
    ck_assert_int_eq(sl_wake_init(&w), 0);
    sl_queue_set_consumer(q, &w);
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    struct edge_count ec = {.w = &w};
    struct event *ev = sl_wake_event_new(&w, base, count_cb, &ec);
    ck_assert_ptr_nonnull(ev);
    ck_assert_int_eq(event_add(ev, NULL), 0);
    if (!w.edge) {
        /* Not epoll (EVENT_NOEPOLL set): level-triggered with the read. */
        fprintf(stderr, "check_queue: no edge-triggered backend, edge case not tested\n");
    }
    for (int round = 1; round <= 3; round++) {
        sl_wake_announce(&w); /* asleep: nothing queued */
        ck_assert(!sl_queue_has_chunks(q));
        for (int i = 0; i < 5; i++) {
            sl_queue_push(q, filled(q, "x\n"));
        }
        /* One eventfd write for the five pushes, one callback. */
        ck_assert_uint_eq(atomic_load(&w.signals), (unsigned long)round);
        ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
        ck_assert_int_eq(ec.calls, round);
        int n = 0;
        struct sl_chunk *c;
        while ((c = sl_queue_pop(q)) != NULL) {
            sl_queue_release(q, c);
            n++;
        }
        ck_assert_int_eq(n, 5); /* the one wake-up sees all five */
        /* No new write: the event stays quiet although the eventfd was
         * never read (edge) or was read (level). */
        ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
        ck_assert_int_eq(ec.calls, round);
    }
    event_free(ev);
    event_base_free(base);
    sl_wake_fini(&w);
    sl_queue_free(q);
}
END_TEST

/* ---- the durable position (chunk seq, sl_queue_durable_seq) ---- */

static struct sl_chunk *
filled(struct sl_queue *q, const char *text)
{
    struct sl_chunk *c = sl_queue_acquire(q, SL_ACQUIRE_TCP);
    ck_assert_ptr_nonnull(c);
    c->len = strlen(text);
    memcpy(c->data, text, c->len);
    c->nevents = 1;
    return c;
}

START_TEST(test_queue_seq_in_push_order)
{
    struct sl_queue *q = sl_queue_new("q", 4 * 4096, 4096);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(sl_queue_durable_seq(q), 0);
    for (uint64_t i = 1; i <= 20; i++) {
        struct sl_chunk *c = filled(q, "x\n");
        ck_assert_uint_eq(sl_queue_push(q, c), i);
        if (i % 3 == 0) {
            /* An empty chunk is recycled: no number, no gap. */
            ck_assert_uint_eq(sl_queue_push(q, sl_queue_acquire(q, SL_ACQUIRE_TCP)), 0);
        }
        struct sl_chunk *p = sl_queue_pop(q);
        ck_assert_ptr_eq(p, c);
        ck_assert_uint_eq(p->seq, i);
        sl_queue_release(q, p);
    }
    /* Releasing is not durability: only a backlog (or the owner) says so. */
    ck_assert_uint_eq(sl_queue_durable_seq(q), 0);
    sl_queue_set_durable(q, 7);
    sl_queue_set_durable(q, 5); /* never backwards */
    ck_assert_uint_eq(sl_queue_durable_seq(q), 7);
    sl_queue_free(q);
}
END_TEST

/* Two sinks drain one memory queue, one of them acknowledging: a chunk is
 * durable only once both have committed it, and the position moves over a
 * contiguous prefix. */
START_TEST(test_queue_durable_by_memory_backlog)
{
    struct sl_queue *q = sl_queue_new("q", 8 * 4096, 4096);
    struct sl_backlog *b = sl_backlog_memory_new(q);
    ck_assert_ptr_nonnull(b);
    struct sl_backlog_reader *plain = b->ops->add_reader(b, "plain", false);
    struct sl_backlog_reader *acker = b->ops->add_reader(b, "acker", true);
    struct sl_hist h;
    struct iovec iov[8];
    size_t bytes = 0;
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < 3; i++) {
        sl_queue_push(q, filled(q, "0123456789\n")); /* 11 bytes each, seq 1..3 */
    }
    ck_assert_uint_eq(b->ops->append(b, 8, 0), 3);
    ck_assert_int_eq(b->ops->peek(b, plain, iov, 8, 1 << 20, &bytes), 3);
    b->ops->sent(b, plain, bytes, 0, &h); /* plain: sent is committed */
    ck_assert_uint_eq(sl_queue_durable_seq(q), 0);
    ck_assert_int_eq(b->ops->peek(b, acker, iov, 8, 1 << 20, &bytes), 3);
    b->ops->sent(b, acker, bytes, 0, &h);
    ck_assert_uint_eq(sl_queue_durable_seq(q), 0); /* sent, not acknowledged */
    b->ops->commit(b, acker, 5);
    ck_assert_uint_eq(sl_queue_durable_seq(q), 0); /* half a chunk */
    b->ops->commit(b, acker, 6 + 11);
    ck_assert_uint_eq(sl_queue_durable_seq(q), 2);
    b->ops->commit(b, acker, 11);
    ck_assert_uint_eq(sl_queue_durable_seq(q), 3);
    /* A forced free gives chunks back without making them durable. */
    sl_queue_push(q, filled(q, "y\n"));
    ck_assert_uint_eq(b->ops->append(b, 8, 0), 1);
    b->ops->free(b);
    ck_assert_uint_eq(sl_queue_durable_seq(q), 3);
    ck_assert_uint_eq(sl_queue_in_use(q), 0);
    sl_queue_free(q);
}
END_TEST

/* The wake: a producer watching the position is signalled when it moves
 * (announce / re-check), and nobody is signalled when nobody watches. */
START_TEST(test_queue_durable_wakes_watchers)
{
    struct sl_queue *q = sl_queue_new("q", 4 * 4096, 4096);
    struct sl_wake w;
    struct pollfd pfd;
    ck_assert_int_eq(sl_wake_init(&w), 0);
    ck_assert_int_ge(sl_queue_add_producer(q, &w), 0);
    pfd.fd = w.fd;
    pfd.events = POLLIN;

    sl_wake_announce(&w); /* asleep for another reason, not watching */
    sl_queue_set_durable(q, 1);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_uint_eq(atomic_load(&w.signals), 0);

    sl_queue_watch_durable(q, 1);
    sl_wake_announce(&w);
    ck_assert_uint_lt(sl_queue_durable_seq(q), 2); /* the re-check: still waiting */
    sl_queue_set_durable(q, 2);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_uint_eq(atomic_load(&w.signals), 1);
    sl_wake_drain(&w);
    sl_queue_set_durable(q, 2); /* no move: no signal */
    ck_assert_uint_eq(atomic_load(&w.signals), 1);

    sl_queue_watch_durable(q, -1);
    sl_wake_announce(&w);
    sl_queue_set_durable(q, 3);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    sl_wake_fini(&w);
    sl_queue_free(q);
}
END_TEST

/* ---- concurrent stress ---- */

#define NPROD_MAX 4
#define CHUNKS_PER_PRODUCER 20000

struct stress {
    struct sl_queue *q;
    struct sl_wake consumer;
    struct sl_wake producers[NPROD_MAX];
    int nprod;
    unsigned seed;
    _Atomic int failed;
    bool live;                 /* a thread changes capacity and when_full meanwhile */
    _Atomic uint64_t popped;   /* chunks the consumer took so far */
    _Atomic bool done;         /* the consumer finished */
    _Atomic unsigned nchanges; /* live: changes made */
};

struct prod_arg {
    struct stress *s;
    int id;
};

static void
maybe_yield(unsigned *seed)
{
    if (rand_r(seed) % 8 == 0) {
        sched_yield();
    }
}

/* Waits for a wake-up; the deadline is scaled like Check's timeouts. */
static bool
wait_fd(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    int mult = m != NULL && atoi(m) > 0 ? atoi(m) : 1;
    return poll(&pfd, 1, WAIT_DEADLINE_MS * mult) == 1;
}

static void *
stress_producer(void *arg)
{
    struct prod_arg *a = arg;
    struct stress *s = a->s;
    struct sl_wake *me = &s->producers[a->id];
    unsigned seed = s->seed + (unsigned)a->id * 7919u;
    for (uint32_t seq = 0; seq < CHUNKS_PER_PRODUCER; seq++) {
        struct sl_chunk *c;
        while ((c = sl_queue_acquire(s->q, SL_ACQUIRE_TCP)) == NULL) {
            /* The producer side of announce / fence / re-check. */
            maybe_yield(&seed);
            sl_wake_announce(me);
            maybe_yield(&seed);
            if (sl_queue_can_acquire(s->q, SL_ACQUIRE_TCP)) {
                sl_wake_cancel(me);
                continue;
            }
            if (!wait_fd(me->fd)) {
                atomic_store(&s->failed, 1); /* lost wake-up */
                return NULL;
            }
            sl_wake_drain(me);
        }
        uint32_t rec[2] = {(uint32_t)a->id, seq};
        memcpy(c->data, rec, sizeof(rec));
        c->len = sizeof(rec);
        c->nevents = 1;
        maybe_yield(&seed);
        sl_queue_push(s->q, c);
    }
    return NULL;
}

/* The consumer asleep in an event_base on its edge-triggered wake event
 * (as the writer): returns false when no wake-up came by the deadline. */
struct edge_sleep {
    struct event_base *base;
    struct event *wake_ev;
    struct event *deadline_ev;
    bool woke;
};

static void
edge_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct edge_sleep *e = arg;
    e->woke = true;
}

static void
edge_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
}

static bool
edge_wait(struct edge_sleep *e, struct sl_wake *w)
{
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    int mult = m != NULL && atoi(m) > 0 ? atoi(m) : 1;
    struct timeval tv = {.tv_sec = WAIT_DEADLINE_MS / 1000 * mult, .tv_usec = 0};
    e->woke = false;
    event_add(e->deadline_ev, &tv);
    event_base_loop(e->base, EVLOOP_ONCE);
    event_del(e->deadline_ev);
    if (e->woke) {
        sl_wake_consume(w); /* no read when edge-triggered */
    }
    return e->woke;
}

/*
 * A reload's thread (live stress): every 50 chunks the consumer takes, a
 * new capacity (from 2 chunks to SL_QUEUE_GROWTH x the first, below and
 * above what the queue holds) and, every other time, a new when_full
 * (block and drop_oldest differ in when paused producers are woken), while
 * producers and the consumer run.  In the daemon's order
 * (daemon_change_queue): when_full first, then capacity, so that every
 * other change is a capacity alone and the last call of a change is the
 * capacity's: a when_full change after it would wake every paused producer
 * and hide a capacity change that leaves one asleep beside free room.
 * Stops when the consumer is done.
 */
static void *
stress_changer(void *arg)
{
    struct stress *s = arg;
    size_t first = sl_queue_nchunks(s->q);
    const size_t caps[] = {2, first * SL_QUEUE_GROWTH, first / 2 + 2, 3, first, first * 3};
    const enum sl_when_full pols[] = {SL_WHEN_FULL_BLOCK, SL_WHEN_FULL_DROP_OLDEST,
                                      SL_WHEN_FULL_DROP_NEWEST};
    uint64_t at = 0;
    unsigned i = 0;
    while (!atomic_load(&s->done) && !atomic_load(&s->failed)) {
        if (atomic_load(&s->popped) < at + 50) {
            sched_yield();
            continue;
        }
        at = atomic_load(&s->popped);
        if (i % 2 == 0) {
            sl_queue_set_when_full(s->q, pols[i / 2 % 3]);
        }
        ck_assert_int_eq(sl_queue_set_capacity(s->q, caps[i % 6] * 4096), 0);
        i++;
        atomic_store(&s->nchanges, i);
    }
    return NULL;
}

static void run_stress_opts(int nprod, size_t nchunks, unsigned seed, bool edge, bool live);

static void
run_stress(int nprod, size_t nchunks, unsigned seed, bool edge)
{
    run_stress_opts(nprod, nchunks, seed, edge, false);
}

static void
run_stress_opts(int nprod, size_t nchunks, unsigned seed, bool edge, bool live)
{
    struct stress s = {.nprod = nprod, .seed = seed, .live = live};
    pthread_t changer;
    struct edge_sleep es = {0};
    pthread_t th[NPROD_MAX];
    struct prod_arg args[NPROD_MAX];
    uint32_t next[NPROD_MAX] = {0};
    uint64_t total = 0, want = (uint64_t)nprod * CHUNKS_PER_PRODUCER;

    s.q = sl_queue_new("stress", nchunks * 4096, 4096);
    ck_assert_ptr_nonnull(s.q);
    ck_assert_int_eq(sl_wake_init(&s.consumer), 0);
    sl_queue_set_consumer(s.q, &s.consumer);
    if (edge) {
        es.base = event_base_new();
        ck_assert_ptr_nonnull(es.base);
        es.wake_ev = sl_wake_event_new(&s.consumer, es.base, edge_wake_cb, &es);
        es.deadline_ev = evtimer_new(es.base, edge_deadline_cb, &es);
        ck_assert(es.wake_ev != NULL && es.deadline_ev != NULL);
        ck_assert_int_eq(event_add(es.wake_ev, NULL), 0);
        ck_assert(s.consumer.edge); /* epoll: the writer's case */
    }
    for (int i = 0; i < nprod; i++) {
        ck_assert_int_eq(sl_wake_init(&s.producers[i]), 0);
        ck_assert_int_ge(sl_queue_add_producer(s.q, &s.producers[i]), 0);
    }
    for (int i = 0; i < nprod; i++) {
        args[i] = (struct prod_arg){.s = &s, .id = i};
        pthread_create(&th[i], NULL, stress_producer, &args[i]);
    }
    if (live) {
        pthread_create(&changer, NULL, stress_changer, &s);
    }
    unsigned cseed = seed ^ 0x5a5a5a5au;
    while (total < want && !atomic_load(&s.failed)) {
        struct sl_chunk *c = sl_queue_pop(s.q);
        if (c == NULL) {
            /* The consumer side: announce, re-check, sleep. */
            maybe_yield(&cseed);
            sl_wake_announce(&s.consumer);
            maybe_yield(&cseed);
            if (sl_queue_has_chunks(s.q)) {
                sl_wake_cancel(&s.consumer);
                continue;
            }
            if (edge) {
                ck_assert_msg(edge_wait(&es, &s.consumer),
                              "consumer (edge) lost a wake-up (%llu of %llu)",
                              (unsigned long long)total, (unsigned long long)want);
                continue;
            }
            ck_assert_msg(wait_fd(s.consumer.fd), "consumer lost a wake-up (%llu of %llu)",
                          (unsigned long long)total, (unsigned long long)want);
            sl_wake_drain(&s.consumer);
            continue;
        }
        uint32_t rec[2];
        memcpy(rec, c->data, sizeof(rec));
        ck_assert_uint_lt(rec[0], (uint32_t)nprod);
        /* Per-producer order, nothing lost, nothing duplicated. */
        ck_assert_uint_eq(rec[1], next[rec[0]]);
        next[rec[0]]++;
        total++;
        atomic_store(&s.popped, total);
        maybe_yield(&cseed);
        sl_queue_release(s.q, c);
    }
    atomic_store(&s.done, true);
    for (int i = 0; i < nprod; i++) {
        pthread_join(th[i], NULL);
    }
    if (live) {
        pthread_join(changer, NULL);
        /* Bounded: the changes ran all along; memory follows the bound. */
        ck_assert_uint_ge(atomic_load(&s.nchanges), 100);
        ck_assert_uint_le(sl_queue_allocated(s.q), sl_queue_nchunks(s.q));
    }
    ck_assert_msg(!atomic_load(&s.failed), "a producer lost a wake-up");
    ck_assert_uint_eq(total, want);
    for (int i = 0; i < nprod; i++) {
        ck_assert_uint_eq(next[i], CHUNKS_PER_PRODUCER);
        sl_wake_fini(&s.producers[i]);
    }
    ck_assert_ptr_null(sl_queue_pop(s.q));
    ck_assert_uint_eq(sl_queue_in_use(s.q), 0);
    if (edge) {
        event_free(es.wake_ev);
        event_free(es.deadline_ev);
        event_base_free(es.base);
    }
    sl_wake_fini(&s.consumer);
    sl_queue_free(s.q);
}

START_TEST(test_queue_stress_one_producer)
{
    run_stress(1, 4, 1, false);
}
END_TEST

START_TEST(test_queue_stress_four_producers_tiny_queue)
{
    run_stress(4, 3, 2, false);
}
END_TEST

START_TEST(test_queue_stress_four_producers)
{
    run_stress(4, 64, 3, false);
}
END_TEST

/* The writer's way of sleeping: an edge-triggered event, no eventfd read.
 * One producer on a 4-chunk queue, four on 64 chunks, four on 3 (pausing
 * constantly). */
static const struct {
    int nprod;
    size_t nchunks;
} edge_cases[] = {{1, 4}, {4, 64}, {4, 3}};

START_TEST(test_queue_stress_edge)
{
    run_stress(edge_cases[_i].nprod, edge_cases[_i].nchunks, 4u + (unsigned)_i, true);
}
END_TEST

/* capacity and when_full changed live (a reload's thread) while four
 * producers push and the consumer pops, both ways of sleeping: every chunk
 * once, in order per producer, no wake-up lost, whatever the bound. */
START_TEST(test_queue_stress_live_changes)
{
    run_stress_opts(4, 8, 11u + (unsigned)_i, _i == 1, true);
}
END_TEST

/* --- live settings (a reload) ---------------------------------------------- */

/* capacity lowered below what the queue holds: it keeps every chunk (they
 * are popped in order), producers take none until the writer has released
 * enough, and chunks released meanwhile are freed, so memory follows the
 * bound down; raised, it gives that many more; out of range, -1. */
START_TEST(test_queue_capacity_live)
{
    struct sl_queue *q = sl_queue_new("q", 16 * 4096, 4096); /* reserve 2 */
    struct sl_chunk *held[64];
    int n = 0;
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(sl_queue_max_chunks(q), 16 * SL_QUEUE_GROWTH);
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        n++;
    }
    ck_assert_int_eq(n, 14);
    for (int i = 0; i < n; i++) {
        held[i]->data[0] = (char)('a' + i);
        held[i]->len = 1;
        ck_assert_uint_eq(sl_queue_push(q, held[i]), (uint64_t)i + 1);
    }

    ck_assert_int_eq(sl_queue_set_capacity(q, 8 * 4096), 0); /* reserve 1 */
    ck_assert_uint_eq(sl_queue_nchunks(q), 8);
    ck_assert(!sl_queue_can_acquire(q, SL_ACQUIRE_TCP));
    ck_assert(!sl_queue_can_acquire(q, SL_ACQUIRE_UDP));
    ck_assert_ptr_null(sl_queue_acquire(q, SL_ACQUIRE_UDP));
    ck_assert_uint_eq(sl_queue_in_use(q), 14);
    ck_assert_uint_eq(sl_queue_allocated(q), 14);
    for (int i = 0; i < 14; i++) {
        struct sl_chunk *c = sl_queue_pop(q);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->data[0], 'a' + i); /* kept, in order */
        sl_queue_release(q, c);
        /* free = 8 - (13 - i): TCP again once more than the reserve (1). */
        ck_assert(sl_queue_can_acquire(q, SL_ACQUIRE_TCP) == (8 - (13 - i) > 1));
        ck_assert_uint_eq(sl_queue_allocated(q), i < 6 ? 13 - (size_t)i : 8);
    }
    ck_assert_ptr_null(sl_queue_pop(q));
    n = 0;
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        n++;
    }
    ck_assert_int_eq(n, 7);
    ck_assert_ptr_nonnull(held[n++] = sl_queue_acquire(q, SL_ACQUIRE_UDP));
    ck_assert_ptr_null(sl_queue_acquire(q, SL_ACQUIRE_UDP));
    while (n > 0) {
        sl_queue_release(q, held[--n]);
    }

    /* Lowered with the chunks in the free ring: freed at once. */
    ck_assert_int_eq(sl_queue_set_capacity(q, 4 * 4096), 0);
    ck_assert_uint_eq(sl_queue_allocated(q), 4);

    /* Raised to the most (4 x 16): 64 - 8 for TCP. */
    ck_assert_int_eq(sl_queue_set_capacity(q, 64 * 4096), 0);
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        n++;
    }
    ck_assert_int_eq(n, 56);
    while (n > 0) {
        sl_queue_release(q, held[--n]);
    }
    ck_assert_int_eq(sl_queue_set_capacity(q, 65 * 4096), -1);
    ck_assert_int_eq(sl_queue_set_capacity(q, 1 * 4096), -1);
    ck_assert_uint_eq(sl_queue_nchunks(q), 64);
    ck_assert_uint_eq(sl_queue_in_use(q), 0);
    sl_queue_free(q);
}
END_TEST

/* A producer paused on a full queue under block: changing when_full to a
 * drop policy wakes it (it reads on and drops, or has the writer evict),
 * and wakes the writer; raising capacity wakes it too; the same policy
 * again wakes nobody.  drop_oldest set live takes its resume_at (the first
 * release that gives TCP a chunk wakes). */
START_TEST(test_queue_when_full_live_wakes)
{
    struct sl_queue *q = sl_queue_new("q", 16 * 4096, 4096); /* reserve 2 */
    struct sl_wake producer, writer;
    struct sl_chunk *held[16];
    struct pollfd pfd = {.events = POLLIN};
    int n = 0;
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(sl_wake_init(&producer), 0);
    ck_assert_int_eq(sl_wake_init(&writer), 0);
    ck_assert_int_ge(sl_queue_add_producer(q, &producer), 0);
    sl_queue_set_consumer(q, &writer);
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        n++;
    }
    ck_assert_int_eq(n, 14);
    pfd.fd = producer.fd;

    sl_wake_announce(&producer); /* paused under block */
    sl_wake_announce(&writer);
    ck_assert(!sl_queue_can_acquire(q, SL_ACQUIRE_TCP));
    sl_queue_set_when_full(q, SL_WHEN_FULL_DROP_NEWEST);
    ck_assert_int_eq(sl_queue_when_full(q), SL_WHEN_FULL_DROP_NEWEST);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert_uint_eq(atomic_load(&producer.signals), 1);
    ck_assert_uint_eq(atomic_load(&writer.signals), 1);
    sl_wake_drain(&producer);
    sl_wake_drain(&writer);

    sl_wake_announce(&producer);
    sl_queue_set_when_full(q, SL_WHEN_FULL_DROP_NEWEST); /* no change */
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    sl_queue_set_when_full(q, SL_WHEN_FULL_DROP_OLDEST);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    sl_wake_drain(&producer);

    /* drop_oldest live: woken by the first release that gives TCP a chunk
     * (3 free), not at a quarter of the queue. */
    sl_wake_announce(&producer);
    sl_queue_release(q, held[--n]); /* 3 free */
    ck_assert_uint_eq(atomic_load(&producer.signals), 3);
    sl_wake_drain(&producer);
    held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP);
    ck_assert_ptr_nonnull(held[n++]);

    /* Back to block: hysteresis again (woken at 2 + 4 free). */
    sl_queue_set_when_full(q, SL_WHEN_FULL_BLOCK);
    sl_wake_announce(&producer);
    int released = 0;
    while (atomic_load(&producer.signals) == 3 && n > 0) {
        sl_queue_release(q, held[--n]);
        released++;
    }
    ck_assert_int_eq(released, 4);
    sl_wake_drain(&producer);

    /* Raised capacity: room, so a paused producer is woken. */
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        n++;
    }
    sl_wake_announce(&producer);
    ck_assert_int_eq(sl_queue_set_capacity(q, 32 * 4096), 0);
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);
    ck_assert(sl_queue_can_acquire(q, SL_ACQUIRE_TCP));
    sl_wake_drain(&producer);
    while (n > 0) {
        sl_queue_release(q, held[--n]);
    }
    sl_wake_fini(&producer);
    sl_wake_fini(&writer);
    sl_queue_free(q);
}
END_TEST

/* --- overflow: when_full --------------------------------------------------- */

START_TEST(test_queue_when_full_ask_and_room)
{
    /* 16 chunks, reserve 2: drop_oldest wants room once TCP could take at
     * most one more chunk (3 or fewer free). */
    struct sl_queue *q = sl_queue_new("q", 16 * 4096, 4096);
    struct sl_wake writer;
    struct sl_chunk *held[16];
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(sl_wake_init(&writer), 0);
    sl_queue_set_consumer(q, &writer);
    ck_assert_int_eq(sl_queue_when_full(q), SL_WHEN_FULL_BLOCK);

    /* block: asking does nothing. */
    sl_wake_announce(&writer);
    sl_queue_ask_eviction(q);
    ck_assert(!sl_queue_eviction_asked(q));
    ck_assert_uint_eq(atomic_load(&writer.signals), 0);

    /* drop_oldest: the change itself wakes the sleeping writer (a reload:
     * its eviction duty changed); then the flag is set and the sleeping
     * writer woken, once. */
    sl_queue_set_when_full(q, SL_WHEN_FULL_DROP_OLDEST);
    ck_assert_uint_eq(atomic_load(&writer.signals), 1);
    sl_wake_drain(&writer);
    sl_wake_announce(&writer);
    sl_queue_ask_eviction(q);
    sl_queue_ask_eviction(q);
    ck_assert(sl_queue_eviction_asked(q));
    ck_assert_uint_eq(atomic_load(&writer.signals), 2);
    ck_assert(sl_queue_take_eviction_ask(q));
    ck_assert(!sl_queue_take_eviction_ask(q));
    ck_assert(!sl_queue_eviction_asked(q));

    for (int i = 0; i < 12; i++) {
        held[i] = sl_queue_acquire(q, SL_ACQUIRE_TCP);
        ck_assert_ptr_nonnull(held[i]);
        ck_assert(!sl_queue_wants_room(q));
    }
    held[12] = sl_queue_acquire(q, SL_ACQUIRE_TCP); /* 3 free: one more for TCP */
    ck_assert(sl_queue_wants_room(q));
    for (int i = 0; i < 13; i++) {
        sl_queue_release(q, held[i]);
    }
    ck_assert(!sl_queue_wants_room(q));
    sl_wake_fini(&writer);
    sl_queue_free(q);
}
END_TEST

/* A producer paused on a full queue: under block it is woken once a
 * quarter of the queue is free again (hysteresis); under drop_oldest by
 * the first release that gives it a chunk, since nothing else may come
 * (the writer evicts only while producers are short of room). */
static void
paused_then_released(enum sl_when_full policy, int *woken_after)
{
    struct sl_queue *q = sl_queue_new("q", 16 * 4096, 4096); /* reserve 2 */
    struct sl_wake producer;
    struct sl_chunk *held[16];
    int n = 0;
    ck_assert_ptr_nonnull(q);
    sl_queue_set_when_full(q, policy);
    ck_assert_int_eq(sl_wake_init(&producer), 0);
    ck_assert_int_ge(sl_queue_add_producer(q, &producer), 0);
    while ((held[n] = sl_queue_acquire(q, SL_ACQUIRE_TCP)) != NULL) {
        n++;
    }
    ck_assert_int_eq(n, 14);
    sl_wake_announce(&producer); /* paused */
    *woken_after = 0;
    while (atomic_load(&producer.signals) == 0 && *woken_after < n) {
        sl_queue_release(q, held[--n]);
        ++*woken_after;
    }
    ck_assert(sl_queue_can_acquire(q, SL_ACQUIRE_TCP));
    while (n > 0) {
        sl_queue_release(q, held[--n]);
    }
    sl_wake_fini(&producer);
    sl_queue_free(q);
}

START_TEST(test_queue_drop_oldest_resumes_without_hysteresis)
{
    int block = 0, oldest = 0;
    paused_then_released(SL_WHEN_FULL_BLOCK, &block);
    paused_then_released(SL_WHEN_FULL_DROP_OLDEST, &oldest);
    ck_assert_int_eq(block, 4);  /* 2 reserve + 4 (a quarter of 16) free */
    ck_assert_int_eq(oldest, 1); /* 3 free: one for TCP */
}
END_TEST

/* Pushes a chunk of one event: len bytes of fill (the last a newline). */
static void
push_one(struct sl_queue *q, size_t len, char fill)
{
    struct sl_chunk *c = sl_queue_acquire(q, SL_ACQUIRE_UDP);
    ck_assert_ptr_nonnull(c);
    memset(c->data, fill, len - 1);
    c->data[len - 1] = '\n';
    c->len = len;
    c->nevents = 1;
    sl_queue_push(q, c);
}

/* The fill bytes of the chunks reader r has not sent, in order ("" when
 * none); the first may be cut (sent in part). */
static void
unsent_fills(struct sl_backlog *b, struct sl_backlog_reader *r, char *out)
{
    struct iovec iov[16];
    size_t bytes = 0;
    int n = b->ops->peek(b, r, iov, 16, (size_t)1 << 30, &bytes);
    for (int i = 0; i < n; i++) {
        out[i] = ((const char *)iov[i].iov_base)[0];
    }
    out[n] = '\0';
}

/*
 * The memory backlog's evict_oldest: never a chunk a reader has sent part
 * of, nor the first chunk it has not fully sent, nor one an acking reader
 * sent and has not had committed; otherwise the oldest, from every reader
 * at once, with its events and bytes.
 */
START_TEST(test_backlog_evict_oldest_memory)
{
    /* 8 chunks; lengths differ so the counts say which chunk went. */
    static const size_t lens[] = {100, 200, 300, 400, 500, 600};
    struct sl_queue *q = sl_queue_new("q", 8 * 4096, 4096);
    struct sl_backlog *b;
    struct sl_backlog_reader *a, *k;
    struct sl_hist lat = {0};
    uint64_t events = 0, bytes = 0;
    size_t total = 0;
    char fills[17];

    ck_assert_ptr_nonnull(q);
    b = sl_backlog_memory_new(q);
    ck_assert_ptr_nonnull(b);
    a = b->ops->add_reader(b, "a", false); /* a file sink */
    k = b->ops->add_reader(b, "k", true);  /* an acknowledging sink */
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(k);
    for (int i = 0; i < 6; i++) {
        push_one(q, lens[i], (char)('A' + i));
        total += lens[i];
    }
    ck_assert_uint_eq(b->ops->append(b, 16, 1), 6);

    /* Nothing sent yet: each reader's first chunk (A) is the one its sink
     * writes next, so B goes first. */
    ck_assert(b->ops->evict_oldest(b, &events, &bytes));
    ck_assert_uint_eq(events, 1);
    ck_assert_uint_eq(bytes, lens[1]);
    unsent_fills(b, a, fills);
    ck_assert_str_eq(fills, "ACDEF");
    unsent_fills(b, k, fills);
    ck_assert_str_eq(fills, "ACDEF");
    ck_assert_uint_eq(a->unsent, total - lens[1]);
    ck_assert_uint_eq(sl_queue_in_use(q), 5);

    /* a: 10 bytes of A sent (a line's head may be in its file).  k: A and
     * C sent, not committed, and part of D. */
    ck_assert_uint_eq(b->ops->sent(b, a, 10, 0, &lat), 0);
    ck_assert_uint_eq(b->ops->sent(b, k, lens[0] + lens[2] + 7, 0, &lat), 2);
    ck_assert_uint_eq(k->uncommitted, lens[0] + lens[2] + 7);

    /* A, C, D are pinned by k: E goes, then F, then nothing. */
    events = bytes = 0;
    ck_assert(b->ops->evict_oldest(b, &events, &bytes));
    ck_assert_uint_eq(bytes, lens[4]);
    ck_assert(b->ops->evict_oldest(b, &events, &bytes));
    ck_assert_uint_eq(bytes, lens[4] + lens[5]);
    ck_assert_uint_eq(events, 2);
    ck_assert(!b->ops->evict_oldest(b, &events, &bytes));
    ck_assert_uint_eq(bytes, lens[4] + lens[5]);
    unsent_fills(b, a, fills);
    ck_assert_str_eq(fills, "ACD");
    unsent_fills(b, k, fills);
    ck_assert_str_eq(fills, "D");
    ck_assert_uint_eq(a->unsent, lens[0] + lens[2] + lens[3] - 10);
    ck_assert_uint_eq(k->unsent, lens[3] - 7);
    ck_assert_uint_eq(sl_queue_in_use(q), 3);

    /* k's peer commits A and C: C is now only a's, behind a's pinned A. */
    b->ops->commit(b, k, lens[0] + lens[2]);
    ck_assert_uint_eq(sl_queue_in_use(q), 3); /* a still holds A and C */
    events = bytes = 0;
    ck_assert(b->ops->evict_oldest(b, &events, &bytes));
    ck_assert_uint_eq(bytes, lens[2]);
    ck_assert_uint_eq(sl_queue_in_use(q), 2);
    ck_assert(!b->ops->evict_oldest(b, &events, &bytes)); /* A: a's; D: k's */

    /* What is left still flows: a finishes A and sends D, k finishes D. */
    ck_assert_uint_eq(b->ops->sent(b, a, lens[0] - 10 + lens[3], 0, &lat), 2);
    ck_assert_uint_eq(b->ops->sent(b, k, lens[3] - 7, 0, &lat), 1);
    b->ops->commit(b, k, 7 + lens[3] - 7);
    ck_assert_uint_eq(a->unsent, 0);
    ck_assert_uint_eq(k->unsent + k->uncommitted, 0);
    ck_assert_uint_eq(sl_queue_in_use(q), 0);
    ck_assert_uint_eq(sl_queue_queued_bytes(q), 0);
    b->ops->free(b);
    sl_queue_free(q);
}
END_TEST

/* A memory backlog's reader made before a capacity raise holds every chunk
 * of the raised bound (its ring is sized by sl_queue_max_chunks). */
START_TEST(test_queue_capacity_raised_backlog_holds)
{
    struct sl_queue *q = sl_queue_new("q", 4 * 4096, 4096);
    struct sl_backlog *b = sl_backlog_memory_new(q);
    ck_assert_ptr_nonnull(b);
    struct sl_backlog_reader *r = b->ops->add_reader(b, "r", false);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(sl_queue_set_capacity(q, 16 * 4096), 0);
    for (int i = 0; i < 16; i++) {
        push_one(q, 10, (char)('A' + i));
    }
    ck_assert_uint_eq(b->ops->append(b, 32, 0), 16);
    char fills[17];
    unsent_fills(b, r, fills);
    ck_assert_str_eq(fills, "ABCDEFGHIJKLMNOP");
    ck_assert_uint_eq(sl_queue_in_use(q), 16);
    b->ops->free(b);
    ck_assert_uint_eq(sl_queue_in_use(q), 0);
    sl_queue_free(q);
}
END_TEST

static Suite *
queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *basic = tcase_create("basic");
    tcase_add_test(basic, test_queue_bounds_and_reserve);
    tcase_add_test(basic, test_queue_fifo_and_recycle);
    tcase_add_test(basic, test_queue_chunks_whole_and_disjoint);
    tcase_add_test(basic, test_queue_empty_push_recycles);
    tcase_add_test(basic, test_wake_signal_only_when_sleeping);
    tcase_add_test(basic, test_wake_edge_one_event_per_sleep);
    tcase_add_test(basic, test_queue_seq_in_push_order);
    tcase_add_test(basic, test_queue_durable_by_memory_backlog);
    tcase_add_test(basic, test_queue_durable_wakes_watchers);
    tcase_add_test(basic, test_queue_when_full_ask_and_room);
    tcase_add_test(basic, test_queue_drop_oldest_resumes_without_hysteresis);
    tcase_add_test(basic, test_backlog_evict_oldest_memory);
    tcase_add_test(basic, test_queue_capacity_live);
    tcase_add_test(basic, test_queue_when_full_live_wakes);
    tcase_add_test(basic, test_queue_capacity_raised_backlog_holds);
    suite_add_tcase(s, basic);
    TCase *stress = tcase_create("stress");
    tcase_set_timeout(stress, 120);
    tcase_add_test(stress, test_queue_stress_one_producer);
    tcase_add_test(stress, test_queue_stress_four_producers_tiny_queue);
    tcase_add_test(stress, test_queue_stress_four_producers);
    tcase_add_loop_test(stress, test_queue_stress_edge, 0,
                        (int)(sizeof(edge_cases) / sizeof(edge_cases[0])));
    tcase_add_loop_test(stress, test_queue_stress_live_changes, 0, 2);
    suite_add_tcase(s, stress);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
