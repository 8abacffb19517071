/*
 * Unit tests for the writer with a fake sink (a small ops struct): sent is
 * not committed (an acknowledging sink's chunks are held until it commits
 * them, released in order, and the queue's backpressure engages while
 * commits lag), and a sink's wake and commit called from a thread of its
 * own (as client libraries do), which TSan checks in `make tsan`.  And the
 * overflow policies the writer carries out: drop_oldest evicts the oldest
 * chunks behind a stalled sink (keeping its first chunk and the newest),
 * never what an acking sink sent and has not had committed; block evicts
 * nothing.  And the producers' pushes racing with the writer going to
 * sleep: every byte written once.
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/config.h"
#include "sluice/queue.h"
#include "sluice/sink.h"
#include "sluice/wake.h"
#include "sluice/writer.h"
#include "writer/breaker.h"

#define CHUNK 4096
#define NCHUNKS 8 /* reserve 1: TCP producers may take 7; resume at 3 free */
#define DEADLINE_MS 10000

struct fake {
    struct sl_sink sink;
    struct sl_sink_config scfg;
    struct sl_sink_stats stats;
    struct sl_sink_link link;
    atomic_size_t got; /* bytes write took (writer thread), read anywhere */
    atomic_int allow;  /* 0: write answers SL_SINK_WAIT */
    atomic_int writes; /* write calls */
    atomic_int waits;  /* of them, answered SL_SINK_WAIT */
    char order[512];   /* first byte of every whole chunk written, in order */
    size_t norder;     /* writer thread; read once got says it is done */
};

struct fx {
    struct sl_queue *q;
    struct fake f;
    struct sl_writer *w;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int
fake_attach(struct sl_sink *s, const struct sl_sink_link *link)
{
    struct fake *f = (struct fake *)s;
    f->link = *link;
    return 0;
}

static enum sl_sink_result
fake_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    struct fake *f = (struct fake *)s;
    atomic_fetch_add(&f->writes, 1);
    if (!atomic_load(&f->allow)) {
        atomic_fetch_add(&f->waits, 1);
        *written = 0;
        return SL_SINK_WAIT;
    }
    *written = sl_iov_total(iov, iovcnt);
    for (int i = 0; i < iovcnt && f->norder < sizeof(f->order) - 1; i++) {
        f->order[f->norder++] = ((const char *)iov[i].iov_base)[0];
    }
    atomic_fetch_add(&f->got, *written); /* after order: a reader of got sees it */
    return SL_SINK_OK;
}

static enum sl_sink_result
fake_flush(struct sl_sink *s, bool final)
{
    return SL_SINK_OK;
}

static void
fake_reopen(struct sl_sink *s)
{
}

static uint64_t
fake_tick(struct sl_sink *s, uint64_t now)
{
    return SL_SINK_TICK_NONE;
}

static void
fake_close(struct sl_sink *s)
{
}

static const struct sl_sink_ops fake_ops = {
    .type = "fake",
    .acks = true,
    .attach = fake_attach,
    .write = fake_write,
    .flush = fake_flush,
    .reopen = fake_reopen,
    .tick = fake_tick,
    .close = fake_close,
};

static void
fx_start_with(struct fx *x, int allow, const struct sl_sink_ops *ops, enum sl_when_full policy)
{
    memset(x, 0, sizeof(*x));
    x->q = sl_queue_new("q", NCHUNKS * CHUNK, CHUNK);
    ck_assert_ptr_nonnull(x->q);
    sl_queue_set_when_full(x->q, policy);
    x->f.scfg.name = "fake";
    x->f.scfg.batch_max_bytes = 1 << 20;
    x->f.scfg.batch_timeout_ms = 0;
    x->f.sink.ops = ops;
    x->f.sink.cfg = &x->f.scfg;
    x->f.sink.stats = &x->f.stats;
    x->f.sink.queue = x->q;
    atomic_store(&x->f.allow, allow);
    struct sl_sink *sinks[] = {&x->f.sink};
    x->w = sl_writer_new(&x->q, NULL, 1, sinks, 1);
    ck_assert_ptr_nonnull(x->w);
    ck_assert(ops->acks == (x->f.link.commit != NULL)); /* only an acking sink gets one */
    ck_assert_int_eq(sl_writer_start(x->w), 0);
}

static void
fx_start(struct fx *x, int allow)
{
    fx_start_with(x, allow, &fake_ops, SL_WHEN_FULL_BLOCK);
}

static void
fx_stop(struct fx *x)
{
    sl_writer_stop(x->w, false); /* graceful: returns once all is committed */
    sl_writer_join(x->w);
    ck_assert_uint_eq(sl_writer_lost(x->w), 0);
    sl_writer_free(x->w);
    ck_assert_uint_eq(sl_queue_in_use(x->q), 0);
    sl_queue_free(x->q);
}

/* Pushes one chunk of len bytes (one event); false when none may be taken. */
static bool
push(struct sl_queue *q, size_t len, char fill)
{
    struct sl_chunk *c = sl_queue_acquire(q, SL_ACQUIRE_TCP);
    if (c == NULL) {
        return false;
    }
    memset(c->data, fill, len - 1);
    c->data[len - 1] = '\n';
    c->len = len;
    c->nevents = 1;
    sl_queue_push(q, c);
    return true;
}

static void
wait_queued(struct sl_queue *q, size_t bytes)
{
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (sl_queue_queued_bytes(q) != bytes) {
        ck_assert_msg(now_ms() < deadline, "queued %zu bytes, want %zu", sl_queue_queued_bytes(q),
                      bytes);
        usleep(1000);
    }
}

/* A release lowers the queued bytes before it frees the chunk and wakes
 * producers: wait for those too. */
static void
wait_in_use(struct sl_queue *q, size_t chunks)
{
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (sl_queue_in_use(q) != chunks) {
        ck_assert_msg(now_ms() < deadline, "%zu chunks in use, want %zu", sl_queue_in_use(q),
                      chunks);
        usleep(1000);
    }
}

static void
wait_got(struct fake *f, size_t bytes)
{
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (atomic_load(&f->got) != bytes) {
        ck_assert_msg(now_ms() < deadline, "sink took %zu bytes, want %zu", atomic_load(&f->got),
                      bytes);
        usleep(1000);
    }
}

/* The "client library": commits n bytes from a thread of its own. */
struct commit_job {
    struct fake *f;
    size_t n;
};

static void *
commit_thread(void *arg)
{
    struct commit_job *j = arg;
    j->f->link.commit(j->f->link.arg, j->n);
    return NULL;
}

static void
commit_from_thread(struct fake *f, size_t n)
{
    pthread_t t;
    struct commit_job j = {f, n};
    ck_assert_int_eq(pthread_create(&t, NULL, commit_thread, &j), 0);
    pthread_join(t, NULL);
}

/* An acking sink without attach could never commit: refused at set-up. */
START_TEST(test_writer_acks_need_attach)
{
    struct sl_sink_ops ops = fake_ops;
    struct fx x;

    memset(&x, 0, sizeof(x));
    ops.attach = NULL;
    x.q = sl_queue_new("q", NCHUNKS * CHUNK, CHUNK);
    ck_assert_ptr_nonnull(x.q);
    x.f.scfg.name = "fake";
    x.f.scfg.batch_max_bytes = 1 << 20;
    x.f.sink.ops = &ops;
    x.f.sink.cfg = &x.f.scfg;
    x.f.sink.stats = &x.f.stats;
    x.f.sink.queue = x.q;
    struct sl_sink *sinks[] = {&x.f.sink};
    ck_assert_ptr_null(sl_writer_new(&x.q, NULL, 1, sinks, 1));
    sl_queue_free(x.q);
}
END_TEST

START_TEST(test_writer_acks_hold_until_commit)
{
    static const size_t lens[] = {1000, 1100, 1200, 1300, 1400, 1500, 1600};
    const size_t n = sizeof(lens) / sizeof(lens[0]);
    struct fx x;
    struct sl_wake producer;
    size_t total = 0;

    fx_start(&x, 1);
    ck_assert_int_eq(sl_wake_init(&producer), 0);
    ck_assert_int_ge(sl_queue_add_producer(x.q, &producer), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert(push(x.q, lens[i], (char)('a' + i)));
        total += lens[i];
    }
    /* Everything is sent, nothing committed: every chunk is still held,
     * the queue is full and a TCP producer must pause. */
    wait_got(&x.f, total);
    ck_assert_uint_eq(sl_queue_queued_bytes(x.q), total);
    ck_assert_uint_eq(sl_queue_in_use(x.q), n);
    ck_assert(sl_queue_full(x.q));
    ck_assert(!sl_queue_can_acquire(x.q, SL_ACQUIRE_TCP));
    ck_assert_uint_eq(sl_counter_get(&x.f.stats.bytes_out), total);
    ck_assert_uint_eq(sl_counter_get(&x.f.stats.events_out), n);
    sl_wake_announce(&producer); /* paused, waiting for room */

    /* The first chunk and all but one byte of the second: only the first
     * is released (the lengths differ, so the bytes say which). */
    commit_from_thread(&x.f, lens[0] + lens[1] - 1);
    wait_queued(x.q, total - lens[0]);
    usleep(100 * 1000);
    ck_assert_uint_eq(sl_queue_queued_bytes(x.q), total - lens[0]);
    ck_assert_uint_eq(sl_queue_in_use(x.q), n - 1);
    ck_assert_uint_eq(atomic_load(&producer.signals), 0); /* 2 free < resume_at 3 */

    /* The last byte of the second: released, and the paused producer is
     * woken (3 chunks free). */
    commit_from_thread(&x.f, 1);
    wait_queued(x.q, total - lens[0] - lens[1]);
    wait_in_use(x.q, n - 2);
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (atomic_load(&producer.signals) == 0) {
        ck_assert(now_ms() < deadline);
        usleep(1000);
    }
    ck_assert_uint_eq(atomic_load(&producer.signals), 1);
    ck_assert(sl_queue_can_acquire(x.q, SL_ACQUIRE_TCP));

    commit_from_thread(&x.f, total - lens[0] - lens[1]);
    wait_queued(x.q, 0);
    wait_in_use(x.q, 0);
    ck_assert(!sl_queue_full(x.q));
    fx_stop(&x);
    sl_wake_fini(&producer);
}
END_TEST

/* The sink's library thread: lets writes through, wakes the writer, then
 * commits what the sink sent, a little at a time, until want. */
struct lib_job {
    struct fake *f;
    size_t want;
};

static void *
lib_thread(void *arg)
{
    struct lib_job *j = arg;
    size_t committed = 0;
    uint64_t deadline = now_ms() + 2 * DEADLINE_MS;
    atomic_store(&j->f->allow, 1);
    j->f->link.wake(j->f->link.arg);
    while (committed < j->want && now_ms() < deadline) {
        size_t got = atomic_load(&j->f->got);
        if (got > committed) {
            size_t n = got - committed > 1000 ? 1000 : got - committed;
            j->f->link.commit(j->f->link.arg, n);
            committed += n;
        } else {
            sched_yield();
        }
    }
    return NULL;
}

START_TEST(test_writer_wake_and_commit_from_thread)
{
    struct fx x;
    pthread_t t;
    const size_t len = 3000;
    const int first = 3, more = 300;
    size_t total = (size_t)(first + more) * len;

    fx_start(&x, 0);
    for (int i = 0; i < first; i++) {
        ck_assert(push(x.q, len, 'x'));
    }
    /* The sink answers WAIT and is not called again until it wakes us. */
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (atomic_load(&x.f.waits) == 0) {
        ck_assert(now_ms() < deadline);
        usleep(1000);
    }
    usleep(100 * 1000);
    ck_assert_int_eq(atomic_load(&x.f.writes), 1);
    ck_assert_uint_eq(atomic_load(&x.f.got), 0);

    /* Its library thread wakes the writer and commits while more chunks
     * come in (the producer pauses whenever commits lag). */
    struct lib_job j = {&x.f, total};
    ck_assert_int_eq(pthread_create(&t, NULL, lib_thread, &j), 0);
    for (int i = 0; i < more; i++) {
        deadline = now_ms() + DEADLINE_MS;
        while (!push(x.q, len, (char)('a' + i % 26))) {
            ck_assert_msg(now_ms() < deadline, "no room after chunk %d", i);
            sched_yield();
        }
    }
    pthread_join(t, NULL);
    ck_assert_uint_eq(atomic_load(&x.f.got), total);
    wait_queued(x.q, 0);
    wait_in_use(x.q, 0);
    ck_assert_uint_eq(sl_counter_get(&x.f.stats.events_out), (uint64_t)(first + more));
    fx_stop(&x);
}
END_TEST

/* --- overflow policies ------------------------------------------------------- */

#define OVF_CHUNKS 60

/* Pushes chunk i of the overflow tests: 1000 + i bytes of '0' + i, one
 * event.  A producer that finds no chunk asks for an eviction and retries
 * until the deadline; false if it never got one. */
static bool
ovf_push(struct sl_queue *q, int i, int deadline_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)deadline_ms;
    while (!push(q, 1000 + (size_t)i, (char)('0' + i))) {
        sl_queue_ask_eviction(q); /* what a pausing TCP producer does */
        if (now_ms() >= deadline) {
            return false;
        }
        sched_yield();
    }
    return true;
}

static size_t
ovf_bytes(int from, int to)
{
    size_t n = 0;
    for (int i = from; i < to; i++) {
        n += 1000 + (size_t)i;
    }
    return n;
}

/* A stalled sink (WAIT, nothing written): under drop_oldest the producer
 * always gets a chunk; what the sink writes once it goes on is its first
 * chunk (pinned: it may hold part of it) and then the newest, in order, and
 * the drop counters are exactly what it did not get. */
START_TEST(test_writer_drop_oldest_behind_stalled_sink)
{
    struct sl_sink_ops ops = fake_ops;
    struct fx x;
    ops.acks = false;
    fx_start_with(&x, 0, &ops, SL_WHEN_FULL_DROP_OLDEST);
    for (int i = 0; i < OVF_CHUNKS; i++) {
        ck_assert_msg(ovf_push(x.q, i, DEADLINE_MS), "chunk %d: no room made", i);
    }
    uint64_t evicted = sl_queue_evicted_events(x.q);
    ck_assert_uint_gt(evicted, 0);
    ck_assert_uint_eq(atomic_load(&x.f.got), 0);

    atomic_store(&x.f.allow, 1);
    x.f.link.wake(x.f.link.arg); /* from this thread: any thread may */
    /* The last ovf_push may have left an eviction request the writer takes
     * only now (asked again between the writer's eviction and the push that
     * used it): one more chunk can go after this point, so what the sink
     * must get is re-read until everything is accounted for. */
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (atomic_load(&x.f.got) + sl_queue_evicted_bytes(x.q) != ovf_bytes(0, OVF_CHUNKS) ||
           sl_queue_in_use(x.q) != 0) {
        ck_assert_msg(now_ms() < deadline, "sink took %zu bytes, evicted %zu, want %zu in all",
                      atomic_load(&x.f.got), (size_t)sl_queue_evicted_bytes(x.q),
                      ovf_bytes(0, OVF_CHUNKS));
        usleep(1000);
    }
    evicted = sl_queue_evicted_events(x.q);
    ck_assert_uint_eq(sl_counter_get(&x.f.stats.events_out) + evicted, OVF_CHUNKS);
    /* order: chunk 0, then OVF_CHUNKS - 1 - evicted + 1 .. OVF_CHUNKS - 1 */
    ck_assert_uint_eq(x.f.norder, OVF_CHUNKS - evicted);
    ck_assert_int_eq(x.f.order[0], '0');
    for (size_t k = 1; k < x.f.norder; k++) {
        ck_assert_int_eq(x.f.order[k], '0' + (int)(evicted + k));
    }
    ck_assert_uint_eq(sl_queue_evicted_bytes(x.q), ovf_bytes(1, 1 + (int)evicted));
    fx_stop(&x);
}
END_TEST

/* An acking sink that sent everything and had nothing committed: nothing
 * may be evicted, so the producer waits as under block; commits make room. */
START_TEST(test_writer_drop_oldest_keeps_unacknowledged)
{
    struct fx x;
    fx_start_with(&x, 1, &fake_ops, SL_WHEN_FULL_DROP_OLDEST);
    for (int i = 0; i < NCHUNKS - 1; i++) {
        ck_assert(ovf_push(x.q, i, DEADLINE_MS));
    }
    wait_got(&x.f, ovf_bytes(0, NCHUNKS - 1));
    ck_assert(!push(x.q, 1000, 'x'));
    sl_queue_ask_eviction(x.q);
    /* The writer takes the request in the pass that evicts: once it is
     * gone, the writer has looked and found nothing it may drop. */
    uint64_t deadline = now_ms() + DEADLINE_MS;
    while (sl_queue_eviction_asked(x.q)) {
        ck_assert(now_ms() < deadline);
        usleep(1000);
    }
    ck_assert_uint_eq(sl_queue_evicted_events(x.q), 0);
    ck_assert(!sl_queue_can_acquire(x.q, SL_ACQUIRE_TCP));
    commit_from_thread(&x.f, ovf_bytes(0, NCHUNKS - 1));
    ck_assert(ovf_push(x.q, NCHUNKS - 1, DEADLINE_MS));
    wait_got(&x.f, ovf_bytes(0, NCHUNKS));
    commit_from_thread(&x.f, 1000 + NCHUNKS - 1);
    wait_in_use(x.q, 0);
    ck_assert_uint_eq(sl_queue_evicted_events(x.q), 0);
    fx_stop(&x);
}
END_TEST

/* block: a stalled sink stops the producer; nothing is evicted, and all of
 * it is written in order once the sink goes on. */
START_TEST(test_writer_block_evicts_nothing)
{
    struct sl_sink_ops ops = fake_ops;
    struct fx x;
    int i = 0;
    ops.acks = false;
    fx_start_with(&x, 0, &ops, SL_WHEN_FULL_BLOCK);
    while (push(x.q, 1000 + (size_t)i, (char)('0' + i))) {
        i++;
    }
    ck_assert_int_eq(i, NCHUNKS - 1); /* TCP leaves the reserve */
    sl_queue_ask_eviction(x.q);       /* no-op under block */
    ck_assert(!sl_queue_eviction_asked(x.q));
    atomic_store(&x.f.allow, 1);
    x.f.link.wake(x.f.link.arg);
    wait_got(&x.f, ovf_bytes(0, i));
    wait_in_use(x.q, 0);
    ck_assert_uint_eq(sl_queue_evicted_events(x.q), 0);
    ck_assert_uint_eq(x.f.norder, (size_t)i);
    for (int k = 0; k < i; k++) {
        ck_assert_int_eq(x.f.order[k], '0' + k);
    }
    fx_stop(&x);
}
END_TEST

/* ---- the hand-off: producers' pushes racing with the writer's sleep ---- */

#define HANDOFF_THREADS 3
#define HANDOFF_PUSHES 3000

struct handoff {
    struct sl_queue *q;
    unsigned seed;
    atomic_int failed;
    atomic_size_t pushed; /* bytes */
};

static void *
handoff_producer(void *arg)
{
    struct handoff *h = arg;
    unsigned seed = h->seed;
    for (int i = 0; i < HANDOFF_PUSHES; i++) {
        size_t len = 16 + (size_t)(rand_r(&seed) % 200);
        uint64_t deadline = now_ms() + DEADLINE_MS;
        if (rand_r(&seed) % 16 == 0) {
            /* Wait for the writer to empty the queue, so that this push
             * lands while it announces its sleep or sleeps. */
            while (sl_queue_has_chunks(h->q) && now_ms() < deadline) {
                sched_yield();
            }
        }
        while (!push(h->q, len, 'a')) { /* queue full: backpressure */
            if (now_ms() >= deadline) {
                atomic_store(&h->failed, 1);
                return NULL;
            }
            sched_yield();
        }
        atomic_fetch_add(&h->pushed, len);
        if (rand_r(&seed) % 4 == 0) {
            sched_yield();
        }
    }
    return NULL;
}

/* Three threads push chunks of random size into a small queue, now in
 * bursts, now one at a time just as the writer runs dry; the writer (its
 * edge-triggered wake: sl_wake_event_new) writes every byte, none twice.  A
 * lost wake-up would leave a chunk until the one-second tick; the protocol
 * itself is checked without a tick in check_queue's stress cases. */
START_TEST(test_writer_handoff_racing_pushes)
{
    struct sl_sink_ops ops = fake_ops;
    struct fx x;
    ops.acks = false;
    fx_start_with(&x, 1, &ops, SL_WHEN_FULL_BLOCK);
    struct handoff h[HANDOFF_THREADS];
    pthread_t th[HANDOFF_THREADS];
    size_t total = 0;
    for (int i = 0; i < HANDOFF_THREADS; i++) {
        h[i] = (struct handoff){.q = x.q, .seed = 7u + (unsigned)i};
        atomic_init(&h[i].failed, 0);
        atomic_init(&h[i].pushed, 0);
        ck_assert_int_eq(pthread_create(&th[i], NULL, handoff_producer, &h[i]), 0);
    }
    for (int i = 0; i < HANDOFF_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(!atomic_load(&h[i].failed), "producer %d got no chunk by the deadline", i);
        total += atomic_load(&h[i].pushed);
    }
    wait_got(&x.f, total);
    wait_in_use(x.q, 0);
    ck_assert_int_eq(atomic_load(&x.f.waits), 0);
    fx_stop(&x);
    ck_assert_uint_eq(atomic_load(&x.f.got), total); /* nothing written twice */
}
END_TEST

/* ---- the linger: a steady stream of small pushes ------------------------------------------ */

#define LINGER_WARMUP_MS 200 /* the writer judges the rate over 100 ms windows */
#define LINGER_STREAM_MS 700

/*
 * A stream of one small chunk every ~100 us (several thousand events a
 * second, as at 10 k events/s spread over reads): once the writer has seen
 * a rate window of it, it stops being woken per push and looks at the
 * queue once per linger (writer.c, THE LINGER), so after the warm-up it
 * writes far fewer batches than there are pushes; every byte still
 * arrives, the last soon after it was pushed.  Without the linger every
 * push into a sleeping writer wakes it and is written alone: writes ==
 * pushes, less the few that land while it writes (measured: 1 write per
 * 1.0-1.1 pushes here).
 */
static uint64_t
linger_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The stream's pace, not a synchronisation: one push per step_ns slot on
 * the clock, a push that fell behind (a loaded machine, where usleep(50)
 * took milliseconds and the stream fell below the linger's rate) catches
 * up at once. */
static void
linger_pace(uint64_t *next_ns, uint64_t step_ns)
{
    *next_ns += step_ns;
    while (linger_now_ns() < *next_ns) {
        sched_yield();
    }
}

START_TEST(test_writer_linger_batches_a_stream)
{
    struct sl_sink_ops ops = fake_ops;
    struct fx x;
    ops.acks = false;
    fx_start_with(&x, 1, &ops, SL_WHEN_FULL_BLOCK);
    uint64_t start = now_ms();
    size_t pushed = 0;
    int pushes = 0, pushes0 = -1, writes0 = 0;
    uint64_t next_ns = linger_now_ns();
    while (now_ms() < start + LINGER_STREAM_MS) {
        if (pushes0 < 0 && now_ms() >= start + LINGER_WARMUP_MS) {
            pushes0 = pushes;
            writes0 = atomic_load(&x.f.writes);
        }
        uint64_t t0 = now_ms();
        while (!push(x.q, 200, 'l')) { /* a slow sanitizer build: wait for room */
            ck_assert_msg(now_ms() < t0 + DEADLINE_MS, "no chunk by the deadline");
            usleep(100);
        }
        pushed += 200;
        pushes++;
        linger_pace(&next_ns, 100000);
    }
    /* The last push is written after one linger, not held for the stream
     * (the bound leaves room for a sanitizer build on a loaded machine). */
    uint64_t last = now_ms();
    wait_got(&x.f, pushed);
    uint64_t lag = now_ms() - last;
    int writes = atomic_load(&x.f.writes) - writes0;
    pushes -= pushes0;
    ck_assert_msg(writes * 2 < pushes, "%d writes for %d pushes: the writer did not linger", writes,
                  pushes);
    ck_assert_msg(lag < 500, "the last push waited %" PRIu64 " ms", lag);
    wait_in_use(x.q, 0);
    fx_stop(&x);
    ck_assert_uint_eq(atomic_load(&x.f.got), pushed);
}
END_TEST

/* ---- a replacement that cannot attach (wsink_swap's failure branch) ---------------------- */

/* A fake acknowledging sink with a hand-over: write holds what it sent
 * (held) until the test commits it; handover moves held; attach fails when
 * fail_attach.  The first member is a struct fake, so the fake ops apply. */
struct hfake {
    struct fake f;
    bool fail_attach;
    bool attached;      /* writer thread */
    atomic_size_t held; /* sent, not committed */
    atomic_int rearmed; /* handovers into it while attached: it reconnects */
    atomic_int opened;
};

static int
hfake_open(struct sl_sink *s)
{
    atomic_fetch_add(&((struct hfake *)s)->opened, 1);
    return 0;
}

static int
hfake_attach(struct sl_sink *s, const struct sl_sink_link *link)
{
    struct hfake *h = (struct hfake *)s;
    if (h->fail_attach) {
        return -1;
    }
    h->attached = true;
    return fake_attach(s, link);
}

static enum sl_sink_result
hfake_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    enum sl_sink_result r = fake_write(s, iov, iovcnt, written);
    atomic_fetch_add(&((struct hfake *)s)->held, *written);
    return r;
}

static void
hfake_handover(struct sl_sink *from, struct sl_sink *to)
{
    struct hfake *a = (struct hfake *)from, *b = (struct hfake *)to;
    atomic_fetch_add(&b->held, atomic_exchange(&a->held, 0));
    if (b->attached) {
        atomic_fetch_add(&b->rearmed, 1); /* the way back: it must go on by itself */
    }
}

static const struct sl_sink_ops hfake_ops = {
    .type = "hfake",
    .acks = true,
    .open = hfake_open,
    .attach = hfake_attach,
    .write = hfake_write,
    .flush = fake_flush,
    .reopen = fake_reopen,
    .tick = fake_tick,
    .close = fake_close,
    .handover = hfake_handover,
};

/*
 * A replacement whose attach fails (as when its event_new fails): the
 * replace is refused, what the old sink had in flight comes back to it
 * while it is attached (a sluice sink connects again then, a nats sink
 * starts its publishing thread: their handover), the old sink's commits of
 * it release the chunks with no further write (an idle queue), and what is
 * pushed later is written by the old sink.
 */
START_TEST(test_writer_replace_attach_fails)
{
    struct hfake *h = calloc(1, sizeof(*h)), *g = calloc(1, sizeof(*g));
    struct sl_queue *q = sl_queue_new("q", NCHUNKS * CHUNK, CHUNK);
    ck_assert(h != NULL && g != NULL && q != NULL);
    struct hfake *both[] = {h, g};
    for (int i = 0; i < 2; i++) {
        struct fake *f = &both[i]->f;
        f->scfg.name = "fake";
        f->scfg.batch_max_bytes = 1 << 20;
        f->sink.ops = &hfake_ops;
        f->sink.cfg = &f->scfg;
        f->sink.stats = &f->stats;
        f->sink.queue = q;
        atomic_store(&f->allow, 1);
    }
    g->fail_attach = true;
    struct sl_sink *sinks[] = {&h->f.sink};
    struct sl_writer *w = sl_writer_new(&q, NULL, 1, sinks, 1);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(sl_writer_start(w), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(push(q, 1000, (char)('a' + i)));
    }
    wait_got(&h->f, 3000);
    ck_assert_uint_eq(atomic_load(&h->held), 3000);

    ck_assert_int_eq(sl_writer_replace_sink(w, &h->f.sink, &g->f.sink, DEADLINE_MS), -1);
    ck_assert_int_eq(atomic_load(&g->opened), 1);
    ck_assert_uint_eq(atomic_load(&g->held), 0);
    ck_assert_uint_eq(atomic_load(&h->held), 3000); /* back with the old one */
    ck_assert_int_eq(atomic_load(&h->rearmed), 1);
    ck_assert_uint_eq(sl_queue_in_use(q), 3);

    /* The old one's peer acknowledges what it resent: released, though
     * nothing new is written. */
    int writes = atomic_load(&h->f.writes);
    commit_from_thread(&h->f, 3000);
    wait_queued(q, 0);
    wait_in_use(q, 0);
    ck_assert_int_eq(atomic_load(&h->f.writes), writes);
    /* It goes on writing. */
    ck_assert(push(q, 500, 'z'));
    wait_got(&h->f, 3500);
    ck_assert_uint_eq(atomic_load(&g->f.got), 0);
    commit_from_thread(&h->f, 500);
    wait_in_use(q, 0);
    sl_writer_stop(w, false);
    sl_writer_join(w);
    ck_assert_uint_eq(sl_writer_lost(w), 0);
    sl_writer_free(w);
    sl_queue_free(q);
    free(h);
    free(g);
}
END_TEST

/* ---- the tick (writer.c THE TICK) ---------------------------------------------- */

/* A sink without acks whose tick counts its calls and asks for the next
 * one in tick_want ms; write notes how many ticks came before it. */
static atomic_int ticks;
static atomic_uint_least64_t tick_want;
static atomic_int ticks_at_write;

static uint64_t
tfake_tick(struct sl_sink *s, uint64_t now)
{
    atomic_fetch_add(&ticks, 1);
    return atomic_load(&tick_want);
}

static enum sl_sink_result
tfake_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    atomic_store(&ticks_at_write, atomic_load(&ticks));
    return fake_write(s, iov, iovcnt, written);
}

static const struct sl_sink_ops tfake_ops = {
    .type = "tfake",
    .write = tfake_write,
    .flush = fake_flush,
    .reopen = fake_reopen,
    .tick = tfake_tick,
    .close = fake_close,
};

/* The ticks over a window of ms (the absence of ticks is what is measured,
 * so this is a window, not a wait for something to happen). */
static int
ticks_over(int ms)
{
    int t0 = atomic_load(&ticks);
    usleep((useconds_t)ms * 1000);
    return atomic_load(&ticks) - t0;
}

/*
 * Nothing pending, nothing pushed: the tick stops (the writer rests) two
 * seconds after the last work at most; a push in the rest gets the tick's
 * work before it is written (a renamed file is reopened first), and a
 * resting writer asked for a tick (/healthz) runs one and answers.  The
 * same when the sink names a far deadline (_i = 1: a watchdog ping or an
 * hourly rotation ahead): the writer rests until then all the same.
 */
START_TEST(test_writer_tick_rests)
{
    struct fx x;
    atomic_store(&ticks, 0);
    atomic_store(&tick_want, _i == 0 ? SL_SINK_TICK_NONE : 30000);
    fx_start_with(&x, 1, &tfake_ops, SL_WHEN_FULL_BLOCK);
    ck_assert(push(x.q, 100, 'a'));
    wait_got(&x.f, 100);
    usleep(3500 * 1000); /* the tick at +1 s sees the write, the one at +2 s rests */
    int n = ticks_over(3000);
    ck_assert_msg(n == 0, "%d tick(s) in 3 s of rest", n);
    int before = atomic_load(&ticks);
    ck_assert(push(x.q, 100, 'b'));
    wait_got(&x.f, 200);
    ck_assert_msg(atomic_load(&ticks_at_write) == before + 1,
                  "the write after the rest came after %d tick(s), want 1",
                  atomic_load(&ticks_at_write) - before);
    usleep(3500 * 1000);
    before = atomic_load(&ticks);
    ck_assert_int_eq(sl_writer_tick_resting(x.w, DEADLINE_MS), 0);
    ck_assert_int_eq(atomic_load(&ticks), before + 1);
    n = ticks_over(2500);
    ck_assert_msg(n == 0, "%d tick(s) after the tick asked for", n);
    fx_stop(&x);
}
END_TEST

/* A sink that names a deadline gets its tick then, and one that needs a
 * tick now (a failed open to retry) gets it once a second, not faster. */
START_TEST(test_writer_tick_deadline)
{
    struct fx x;
    atomic_store(&ticks, 0);
    atomic_store(&tick_want, 1500);
    fx_start_with(&x, 1, &tfake_ops, SL_WHEN_FULL_BLOCK);
    usleep(2500 * 1000);
    int n = ticks_over(4600);
    ck_assert_msg(n >= 2 && n <= 4, "%d tick(s) in 4.6 s at 1.5 s each", n);
    atomic_store(&tick_want, 0);
    usleep(1600 * 1000);
    n = ticks_over(4500);
    ck_assert_msg(n >= 3 && n <= 5, "%d tick(s) in 4.5 s at once a second", n);
    fx_stop(&x);
}
END_TEST

/* THE INLINE TURN's breaker (writer/breaker.h): a lone slow turn closes it
 * briefly; an output that stays slow (tripping at the first turn after each
 * closure) backs off to the old 500 ms; a quiet spell starts over; a stuck
 * sink gets the longest at once. */
START_TEST(test_writer_inline_breaker)
{
    /* The first trip, and one long after the last closure. */
    ck_assert_uint_eq(sl_breaker_close_ms(0, 123456, false), SL_BREAKER_MIN_MS);
    ck_assert_uint_eq(sl_breaker_close_ms(SL_BREAKER_MAX_MS, 2 * SL_BREAKER_MAX_MS, false),
                      SL_BREAKER_MIN_MS);
    /* A slow output trips again as soon as each closure ends. */
    uint64_t want[] = {50, 100, 200, 400, 500, 500, 500};
    uint64_t last = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        last = sl_breaker_close_ms(last, last + 1, false);
        ck_assert_uint_eq(last, want[i]);
    }
    /* Just inside and just outside the window that counts as "again". */
    ck_assert_uint_eq(sl_breaker_close_ms(100, 100 + SL_BREAKER_MAX_MS - 1, false), 200);
    ck_assert_uint_eq(sl_breaker_close_ms(100, 100 + SL_BREAKER_MAX_MS, false), SL_BREAKER_MIN_MS);
    /* A failing or waiting sink: the longest closure, whatever came before. */
    ck_assert_uint_eq(sl_breaker_close_ms(0, 123456, true), SL_BREAKER_MAX_MS);
    ck_assert_uint_eq(sl_breaker_close_ms(50, 10, true), SL_BREAKER_MAX_MS);
}
END_TEST

static Suite *
writer_suite(void)
{
    Suite *s = suite_create("writer");
    TCase *acks = tcase_create("acks");
    tcase_set_timeout(acks, 60);
    tcase_add_test(acks, test_writer_acks_need_attach);
    tcase_add_test(acks, test_writer_acks_hold_until_commit);
    tcase_add_test(acks, test_writer_wake_and_commit_from_thread);
    suite_add_tcase(s, acks);
    TCase *ovf = tcase_create("overflow");
    tcase_set_timeout(ovf, 60);
    tcase_add_test(ovf, test_writer_drop_oldest_behind_stalled_sink);
    tcase_add_test(ovf, test_writer_drop_oldest_keeps_unacknowledged);
    tcase_add_test(ovf, test_writer_block_evicts_nothing);
    suite_add_tcase(s, ovf);
    TCase *handoff = tcase_create("handoff");
    tcase_set_timeout(handoff, 60);
    tcase_add_test(handoff, test_writer_handoff_racing_pushes);
    tcase_add_test(handoff, test_writer_linger_batches_a_stream);
    suite_add_tcase(s, handoff);
    TCase *swap = tcase_create("replace");
    tcase_set_timeout(swap, 60);
    tcase_add_test(swap, test_writer_replace_attach_fails);
    suite_add_tcase(s, swap);
    TCase *tick = tcase_create("tick");
    tcase_set_timeout(tick, 60);
    tcase_add_loop_test(tick, test_writer_tick_rests, 0, 2);
    tcase_add_test(tick, test_writer_tick_deadline);
    suite_add_tcase(s, tick);
    TCase *breaker = tcase_create("breaker");
    tcase_add_test(breaker, test_writer_inline_breaker);
    suite_add_tcase(s, breaker);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(writer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
