/*
 * micro_handoff — the two per-chunk and per-byte mechanisms of the hot path,
 * each timed next to a baseline in the same run.
 *
 * 1. Chunk hand-off: P producer threads (1..4) each take an empty chunk
 *    (sl_queue_acquire), fill in its length, and hand it over
 *    (sl_queue_push); one consumer thread pops and recycles it
 *    (sl_queue_pop + sl_queue_release).  The same loop over a mutex-guarded
 *    free list and FIFO is the baseline.  No wake-ups are involved: both
 *    sides spin with sched_yield() when they find nothing, as a busy
 *    daemon does.  Reported: hand-offs per second and ns per hand-off, and
 *    what that is per event with 256 KiB chunks of 230-byte events.
 * 2. Framing: sl_frame_lines() over a 64 KiB buffer of 230-byte lines,
 *    counting events, against a bare memchr() loop that does the same
 *    count, the floor for any framing; sl_frame() (what stream sources
 *    call) with framing lf over the same buffer, and with octet_counted
 *    over 230-byte frames ("226 " + 226 bytes).  Reported in MB/s and ns
 *    per event.
 *
 * A hand-off row is the median of three ~0.3 s runs, interleaved with the
 * baseline's; a framing row is the median pass.
 * The machine has 2 cores: with 3 or 4 producers the threads share them.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/framing.h"
#include "sluice/queue.h"
#include "sluice/wake.h"

#define MH_CHUNK (256 * 1024)
#define MH_CAPACITY (16 * 1024 * 1024)
#define MH_EVENT 230
#define MH_SECONDS 0.3
#define MH_MAX_PROD 4

static double
mh_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mh_cmp(const void *a, const void *b);

/* ---- the mutex baseline: a free stack and a FIFO under one lock ---- */

struct mh_node {
    struct mh_node *next;
    size_t len;
};

struct mh_locked {
    pthread_mutex_t mu;
    struct mh_node *free;
    struct mh_node *head, *tail;
};

static struct mh_node *
mh_locked_acquire(struct mh_locked *q)
{
    struct mh_node *n;

    pthread_mutex_lock(&q->mu);
    n = q->free;
    if (n != NULL) {
        q->free = n->next;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void
mh_locked_push(struct mh_locked *q, struct mh_node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL) {
        q->tail->next = n;
    } else {
        q->head = n;
    }
    q->tail = n;
    pthread_mutex_unlock(&q->mu);
}

static struct mh_node *
mh_locked_pop(struct mh_locked *q)
{
    struct mh_node *n;

    pthread_mutex_lock(&q->mu);
    n = q->head;
    if (n != NULL) {
        q->head = n->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void
mh_locked_release(struct mh_locked *q, struct mh_node *n)
{
    pthread_mutex_lock(&q->mu);
    n->next = q->free;
    q->free = n;
    pthread_mutex_unlock(&q->mu);
}

/* ---- the hand-off run ---- */

struct mh_run {
    int locked; /* 0: sl_queue, 1: mutex baseline */
    struct sl_queue *q;
    struct mh_locked *lq;
    atomic_int stop;
    atomic_uint_fast64_t consumed;
};

static void *
mh_producer(void *arg)
{
    struct mh_run *r = arg;

    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (r->locked) {
            struct mh_node *n = mh_locked_acquire(r->lq);

            if (n == NULL) {
                sched_yield();
                continue;
            }
            n->len = MH_CHUNK;
            mh_locked_push(r->lq, n);
        } else {
            struct sl_chunk *c = sl_queue_acquire(r->q, SL_ACQUIRE_UDP);

            if (c == NULL) {
                sched_yield();
                continue;
            }
            c->len = 1; /* non-empty, so push hands it over */
            c->nevents = 1;
            sl_queue_push(r->q, c);
        }
    }
    return NULL;
}

static void *
mh_consumer(void *arg)
{
    struct mh_run *r = arg;
    uint64_t n = 0;

    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (r->locked) {
            struct mh_node *node = mh_locked_pop(r->lq);

            if (node == NULL) {
                sched_yield();
                continue;
            }
            mh_locked_release(r->lq, node);
        } else {
            struct sl_chunk *c = sl_queue_pop(r->q);

            if (c == NULL) {
                sched_yield();
                continue;
            }
            c->len = 0;
            c->nevents = 0;
            sl_queue_release(r->q, c);
        }
        n++;
    }
    atomic_store(&r->consumed, n);
    return NULL;
}

/* Hand-offs per second with nprod producers; -1 on set-up failure. */
static double
mh_handoff(int locked, int nprod)
{
    static struct sl_wake writer, prod[MH_MAX_PROD];
    struct mh_run r = {.locked = locked};
    struct mh_locked lq = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct mh_node *nodes = NULL;
    pthread_t tp[MH_MAX_PROD], tc;
    double t0, t1;

    if (locked) {
        size_t nn = MH_CAPACITY / MH_CHUNK;

        nodes = calloc(nn, sizeof(*nodes));
        if (nodes == NULL) {
            return -1;
        }
        for (size_t i = 0; i < nn; i++) {
            nodes[i].next = lq.free;
            lq.free = &nodes[i];
        }
        r.lq = &lq;
    } else {
        r.q = sl_queue_new("bench", MH_CAPACITY, MH_CHUNK);
        if (r.q == NULL || sl_wake_init(&writer) < 0) {
            return -1;
        }
        sl_queue_set_consumer(r.q, &writer);
        for (int i = 0; i < nprod; i++) {
            if (sl_wake_init(&prod[i]) < 0 || sl_queue_add_producer(r.q, &prod[i]) < 0) {
                return -1;
            }
        }
    }
    pthread_create(&tc, NULL, mh_consumer, &r);
    for (int i = 0; i < nprod; i++) {
        pthread_create(&tp[i], NULL, mh_producer, &r);
    }
    t0 = mh_now();
    {
        struct timespec ts = {0, (long)(MH_SECONDS * 1e9)};

        nanosleep(&ts, NULL);
    }
    atomic_store(&r.stop, 1);
    for (int i = 0; i < nprod; i++) {
        pthread_join(tp[i], NULL);
    }
    pthread_join(tc, NULL);
    t1 = mh_now();
    if (locked) {
        free(nodes);
    } else {
        /* Give back what the stopped threads still hold in the full ring. */
        struct sl_chunk *c;

        while ((c = sl_queue_pop(r.q)) != NULL) {
            c->len = 0;
            sl_queue_release(r.q, c);
        }
        sl_queue_free(r.q);
        sl_wake_fini(&writer);
        for (int i = 0; i < nprod; i++) {
            sl_wake_fini(&prod[i]);
        }
    }
    return (double)atomic_load(&r.consumed) / (t1 - t0);
}

/* ---- framing ---- */

static int
mh_count_cb(void *arg, const char *line, size_t len)
{
    (void)line;
    (void)len;
    (*(uint64_t *)arg)++;
    return 0;
}

static int
mh_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

enum mh_how { MH_LINES, MH_MEMCHR, MH_FRAME_LF, MH_FRAME_OCTET };

/* Median seconds per pass over buf with sl_frame_lines, memchr, or sl_frame. */
static double
mh_frame(char *buf, size_t len, enum mh_how how, uint64_t *events)
{
    static double t[2001];
    int passes = 0;
    double start = mh_now();

    while (passes < 2001 && (passes < 21 || mh_now() - start < 0.25)) {
        double t0 = mh_now();
        uint64_t n = 0;

        for (int rep = 0; rep < 16; rep++) {
            if (how == MH_FRAME_LF || how == MH_FRAME_OCTET) {
                struct sl_frame_state st;
                bool stopped = false;

                sl_frame_init(&st, how == MH_FRAME_LF ? SL_FRAMING_LF : SL_FRAMING_OCTET, NULL);
                sl_frame(&st, buf, len, 65536, mh_count_cb, &n, &stopped);
            } else if (how == MH_MEMCHR) {
                const char *p = buf, *end = buf + len, *nl;

                while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                    if (nl > p) {
                        n++;
                    }
                    p = nl + 1;
                }
            } else {
                struct sl_frame_state st = {0};
                bool stopped = false;

                sl_frame_lines(&st, buf, len, 65536, mh_count_cb, &n, &stopped);
            }
        }
        t[passes++] = (mh_now() - t0) / 16;
        *events = n / 16;
    }
    qsort(t, (size_t)passes, sizeof(t[0]), mh_cmp);
    return t[passes / 2];
}

int
main(void)
{
    static char buf[64 * 1024];
    static char obuf[64 * 1024];
    size_t len = 0, olen = 0;
    uint64_t ev_f = 0, ev_b = 0;
    double per_chunk_events = (double)MH_CHUNK / MH_EVENT;

    printf("micro_handoff: chunk hand-off, %d KiB chunks, %d MiB queue, ~%.0f events of %d B per "
           "chunk\n",
           MH_CHUNK / 1024, MH_CAPACITY / (1024 * 1024), per_chunk_events, MH_EVENT);
    printf("%-30s %14s %12s %14s %10s\n", "what", "hand-offs/s", "ns/hand-off", "ns/event",
           "vs mutex");
    for (int p = 1; p <= MH_MAX_PROD; p++) {
        double qs[3], ms[3], q, m;
        char name[64];

        /* Median of three interleaved runs each: threads share 2 cores. */
        for (int i = 0; i < 3; i++) {
            qs[i] = mh_handoff(0, p);
            ms[i] = mh_handoff(1, p);
        }
        qsort(qs, 3, sizeof(qs[0]), mh_cmp);
        qsort(ms, 3, sizeof(ms[0]), mh_cmp);
        q = qs[1];
        m = ms[1];
        if (qs[0] < 0 || ms[0] < 0) {
            fprintf(stderr, "micro_handoff: set-up failed\n");
            return 1;
        }
        snprintf(name, sizeof(name), "sl_queue, %d producer%s", p, p > 1 ? "s" : "");
        printf("%-30s %14.0f %12.1f %14.3f %9.2fx\n", name, q, 1e9 / q, 1e9 / q / per_chunk_events,
               q / m);
        snprintf(name, sizeof(name), "mutex list, %d producer%s", p, p > 1 ? "s" : "");
        printf("%-30s %14.0f %12.1f %14.3f %10s\n", name, m, 1e9 / m, 1e9 / m / per_chunk_events,
               "1.00x");
    }

    /* 64 KiB of 230-byte lines, the last one cut where the buffer ends. */
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (i % MH_EVENT == MH_EVENT - 1) ? '\n' : (char)('a' + i % 26);
    }
    len = sizeof(buf);
    /* The same events octet-counted: "226 " + 226 bytes, whole frames only. */
    while (olen + MH_EVENT <= sizeof(obuf)) {
        int h = snprintf(obuf + olen, 8, "%d ", MH_EVENT - 4);
        memset(obuf + olen + h, 'o', (size_t)(MH_EVENT - h));
        olen += MH_EVENT;
    }
    {
        uint64_t ev_l = 0, ev_o = 0;
        double f = mh_frame(buf, len, MH_LINES, &ev_f);
        double b = mh_frame(buf, len, MH_MEMCHR, &ev_b);
        double l = mh_frame(buf, len, MH_FRAME_LF, &ev_l);
        double o = mh_frame(obuf, olen, MH_FRAME_OCTET, &ev_o);

        printf("\nframing: 64 KiB reads of %d-byte lines (%llu events per read)\n", MH_EVENT,
               (unsigned long long)ev_b);
        printf("%-30s %14s %12s %14s\n", "what", "MB/s", "ns/event", "vs memchr");
        printf("%-30s %14.0f %12.2f %13.2fx\n", "sl_frame_lines", (double)len / f / 1e6,
               f * 1e9 / (double)ev_f, f / b);
        printf("%-30s %14.0f %12.2f %13.2fx\n", "sl_frame, framing = lf", (double)len / l / 1e6,
               l * 1e9 / (double)ev_l, l / b);
        printf("%-30s %14.0f %12.2f %13.2fx\n", "sl_frame, octet_counted", (double)olen / o / 1e6,
               o * 1e9 / (double)ev_o, o / b);
        printf("%-30s %14.0f %12.2f %14s\n", "bare memchr loop", (double)len / b / 1e6,
               b * 1e9 / (double)ev_b, "1.00x");
        if (ev_f != ev_b || ev_l != ev_b || ev_o != olen / MH_EVENT) {
            fprintf(stderr, "micro_handoff: framing counted %llu events, memchr %llu\n",
                    (unsigned long long)ev_f, (unsigned long long)ev_b);
            return 1;
        }
    }
    return 0;
}
