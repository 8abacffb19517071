/*
 * queue — bounded MPSC channel of chunks (producers → writer).
 *
 * DESIGN
 * Two bounded rings of chunk pointers (Dmitry Vyukov's bounded MPMC ring: a
 * sequence number per cell, one CAS per operation, no locks):
 *   full:  producers push filled chunks, the writer pops them (FIFO, so each
 *          producer's chunks stay in order);
 *   free:  the writer pushes recycled chunks, producers pop them.
 * Both rings have room for every chunk, so a push never fails.  How many
 * chunks may still be taken is the credit counter `nfree` (chunks in the
 * free ring plus chunks never allocated): a producer takes a credit with a
 * CAS before popping the free ring (or allocating a new chunk when the ring
 * is empty: chunks are allocated lazily, so an idle queue costs nothing),
 * and the writer returns the credit after pushing the chunk back.  TCP
 * producers need nfree > reserve; UDP only nfree > 0.
 *
 * Wake-ups: the writer sleeps on its sl_wake when every queue is empty and
 * is signalled by a push; a paused producer sleeps on its own sl_wake and
 * is signalled by a release that leaves at least resume_at chunks free.
 * Both use announce / fence / re-check (wake.h).  Pushes and releases are
 * per chunk (hundreds of events), never per event.
 *
 * Overflow (when_full): the queue only carries the policy and the pieces
 * both sides need: drop_newest is the producers' lane's business; for
 * drop_oldest a pausing producer raises evict_asked and signals the writer
 * (the flag is the work its re-check looks at), the writer counts what it
 * evicts, and resume_at drops to reserve + 1, so every release that gives
 * a TCP producer a chunk (an eviction or a write) wakes paused producers.
 *
 * Live settings (a config reload: sl_queue_set_capacity, sl_queue_set_when_full).
 * The rings and the list of chunks are sized when the queue is made for
 * SL_QUEUE_GROWTH times its chunks (max_chunks), so capacity can change
 * without moving them: the bound is the credit counter, and a change adds
 * or takes the difference (nfree may go below zero: a queue holding more
 * than its new capacity keeps it, producers take no chunk until the
 * writer's releases bring nfree back above the floor).  A chunk released
 * while more are allocated than the bound allows is freed instead of
 * recycled (and so is any chunk in the free ring at the change): memory
 * follows the new capacity down as the writer drains.  That keeps the
 * invariant nfree = chunks in the free ring + (nchunks - allocated) at
 * every step.  nchunks, reserve, resume_at and when_full are atomics the
 * hot paths read relaxed; cfg_mu orders two reloads' writes.  A change
 * stores them one by one, so a release or a re-check in between may mix
 * old and new values: every change that moves something signals the
 * producers and the writer after its last store (sl_queue_set_capacity).
 *
 * Threads: any producer and the one writer.  Lock order: cfg_mu, then
 * all_mu (chunk allocation and freeing, off the hot path); prod_mu alone.
 */
#include "sluice/queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "sluice/tap.h"

#define CACHELINE 64

struct ring_cell {
    atomic_size_t seq;
    struct sl_chunk *chunk;
};

struct ring {
    struct ring_cell *cells;
    size_t mask;
    _Alignas(CACHELINE) atomic_size_t head; /* next position to push */
    _Alignas(CACHELINE) atomic_size_t tail; /* next position to pop */
};

struct sl_queue {
    char *name;
    size_t chunk_bytes;
    size_t max_chunks;      /* the rings' and all's room (SL_QUEUE_GROWTH x the first bound) */
    atomic_size_t nchunks;  /* the bound (capacity / chunk_bytes); a reload changes it */
    atomic_long reserve;    /* chunks TCP producers leave for UDP */
    atomic_long resume_at;  /* free chunks at which paused producers are woken */
    pthread_mutex_t cfg_mu; /* the live setters */
    pthread_mutex_t all_mu; /* all, nall: allocating and freeing a chunk */
    struct sl_wake *consumer;
    _Atomic(struct sl_queue_drain *) drain; /* sl_queue_set_drain */
    /* The wakes signalled when room comes back or the durable position
     * advances.  prod_mu: a source a reload removes takes its own wake out
     * (a relp source's thread, sl_queue_remove_producer) while the writer
     * signals them, and frees it once the call returns. */
    pthread_mutex_t prod_mu;
    struct sl_wake *producers[SL_QUEUE_MAX_PRODUCERS];
    atomic_int nproducers;
    struct ring full;
    struct ring free;
    struct sl_chunk **all;       /* every chunk allocated (nall), for sl_queue_free */
    size_t nall;                 /* all_mu */
    atomic_int when_full;        /* enum sl_when_full; a reload changes it */
    atomic_bool evict_asked;     /* drop_oldest: a producer is pausing for room */
    sl_counter evicted_events;   /* drop_oldest, by the writer */
    sl_counter evicted_bytes;
    _Alignas(CACHELINE) atomic_size_t queued_bytes; /* pushed, not yet released */
    atomic_ulong last_release_ms;                   /* CLOCK_MONOTONIC, by the writer */
    _Alignas(CACHELINE) atomic_uint_least64_t durable; /* sl_queue_durable_seq */
    atomic_int durable_watchers;                       /* producers waiting on it */
    atomic_bool durable_kick; /* a watcher came: the writer polls its backlog (early sync) */
    _Alignas(CACHELINE) atomic_long nfree;
    _Alignas(CACHELINE) atomic_size_t allocated; /* chunk slots taken (all_mu writes) */
    struct sl_queue_disk_stats disk; /* a disk queue's backlog writes them */
    struct qtag *tags;               /* recovered tags, set-up only */
    size_t ntags;
};

struct qtag {
    uint16_t len;
    uint64_t seq;
    char key[SL_CHUNK_TAG_MAX];
};

static int
ring_init(struct ring *r, size_t min)
{
    size_t n = 2;
    while (n < min) {
        n <<= 1;
    }
    r->cells = calloc(n, sizeof(*r->cells));
    if (r->cells == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        atomic_init(&r->cells[i].seq, i);
    }
    r->mask = n - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

/* Pushes c; returns its position + 1, which, when stamp, becomes c->seq
 * before c is visible to the popper (the full ring's positions are the
 * queue's chunk sequence numbers: FIFO order is seq order). */
static uint64_t
ring_push(struct ring *r, struct sl_chunk *c, bool stamp)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        struct ring_cell *cell = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                if (stamp) {
                    c->seq = (uint64_t)pos + 1;
                }
                cell->chunk = c;
                atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
                return (uint64_t)pos + 1;
            }
        } else if (dif < 0) {
            return 0; /* full: cannot happen, rings hold every chunk */
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

static struct sl_chunk *
ring_pop(struct ring *r)
{
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        struct ring_cell *cell = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                struct sl_chunk *c = cell->chunk;
                atomic_store_explicit(&cell->seq, pos + r->mask + 1, memory_order_release);
                return c;
            }
        } else if (dif < 0) {
            return NULL; /* empty */
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

static bool
ring_empty(struct ring *r)
{
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t seq = atomic_load_explicit(&r->cells[pos & r->mask].seq, memory_order_acquire);
    return seq != pos + 1;
}

/* Free chunks at which paused producers are woken: the reserve plus a
 * quarter of the queue (hysteresis, so they do not flap). */
static long
queue_resume_at(const struct sl_queue *q)
{
    long n = (long)atomic_load_explicit(&q->nchunks, memory_order_relaxed);
    long at = atomic_load_explicit(&q->reserve, memory_order_relaxed) + (n + 3) / 4;
    return at > n ? n : at;
}

/* reserve and resume_at for the bound and policy in force (cfg_mu held, or
 * set-up). */
static void
queue_derive_locked(struct sl_queue *q)
{
    size_t n = atomic_load_explicit(&q->nchunks, memory_order_relaxed);
    atomic_store_explicit(&q->reserve, (long)(n / 8), memory_order_relaxed);
    long at = queue_resume_at(q);
    if (atomic_load_explicit(&q->when_full, memory_order_relaxed) == SL_WHEN_FULL_DROP_OLDEST) {
        /* No hysteresis: the writer frees room by evicting as well as by
         * writing, and a paused producer must be woken by whichever
         * release gives it a chunk (a release that stopped short of a
         * higher resume_at would leave it paused beside free room, with
         * nothing left to evict). */
        at = atomic_load_explicit(&q->reserve, memory_order_relaxed) + 1;
    }
    atomic_store_explicit(&q->resume_at, at, memory_order_relaxed);
}

struct sl_queue *
sl_queue_new(const char *name, size_t capacity, size_t chunk_bytes)
{
    struct sl_queue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    pthread_mutex_init(&q->prod_mu, NULL); /* first: sl_queue_free destroys them */
    pthread_mutex_init(&q->cfg_mu, NULL);
    pthread_mutex_init(&q->all_mu, NULL);
    if (chunk_bytes < 64 || capacity / chunk_bytes < 2) {
        goto err;
    }
    size_t n = capacity / chunk_bytes;
    q->name = strdup(name);
    q->chunk_bytes = chunk_bytes;
    q->max_chunks = n <= SIZE_MAX / SL_QUEUE_GROWTH ? n * SL_QUEUE_GROWTH : n;
    atomic_init(&q->nchunks, n);
    atomic_init(&q->when_full, SL_WHEN_FULL_BLOCK);
    atomic_init(&q->reserve, 0);
    atomic_init(&q->resume_at, 0);
    queue_derive_locked(q);
    atomic_init(&q->nfree, (long)n);
    atomic_init(&q->drain, NULL);
    atomic_init(&q->allocated, 0);
    atomic_init(&q->queued_bytes, 0);
    atomic_init(&q->last_release_ms, 0);
    atomic_init(&q->nproducers, 0);
    atomic_init(&q->durable, 0);
    atomic_init(&q->durable_watchers, 0);
    atomic_init(&q->durable_kick, false);
    atomic_init(&q->evict_asked, false);
    atomic_init(&q->evicted_events, 0);
    atomic_init(&q->evicted_bytes, 0);
    q->all = calloc(q->max_chunks, sizeof(*q->all));
    if (q->name == NULL || q->all == NULL || ring_init(&q->full, q->max_chunks) < 0 ||
        ring_init(&q->free, q->max_chunks) < 0) {
        goto err;
    }
    return q;
err:
    sl_queue_free(q);
    return NULL;
}

void
sl_queue_free(struct sl_queue *q)
{
    if (q == NULL) {
        return;
    }
    for (size_t i = 0; q->all != NULL && i < q->nall; i++) {
        free(q->all[i]);
    }
    free(q->all);
    free(q->tags);
    free(q->full.cells);
    free(q->free.cells);
    free(q->name);
    pthread_mutex_destroy(&q->prod_mu);
    pthread_mutex_destroy(&q->cfg_mu);
    pthread_mutex_destroy(&q->all_mu);
    free(q);
}

void
sl_queue_set_consumer(struct sl_queue *q, struct sl_wake *writer)
{
    q->consumer = writer;
}

void
sl_queue_set_drain(struct sl_queue *q, struct sl_queue_drain *d)
{
    atomic_store_explicit(&q->drain, d, memory_order_release);
}

int
sl_queue_add_producer(struct sl_queue *q, struct sl_wake *producer)
{
    pthread_mutex_lock(&q->prod_mu);
    int n = atomic_load(&q->nproducers);
    for (int i = 0; i < n; i++) {
        if (q->producers[i] == producer) {
            pthread_mutex_unlock(&q->prod_mu);
            return i;
        }
    }
    if (n >= SL_QUEUE_MAX_PRODUCERS) {
        pthread_mutex_unlock(&q->prod_mu);
        return -1;
    }
    q->producers[n] = producer;
    atomic_store(&q->nproducers, n + 1);
    pthread_mutex_unlock(&q->prod_mu);
    return n;
}

void
sl_queue_remove_producer(struct sl_queue *q, struct sl_wake *producer)
{
    pthread_mutex_lock(&q->prod_mu);
    int n = atomic_load(&q->nproducers);
    for (int i = 0; i < n; i++) {
        if (q->producers[i] == producer) {
            q->producers[i] = q->producers[n - 1];
            atomic_store(&q->nproducers, n - 1);
            break;
        }
    }
    pthread_mutex_unlock(&q->prod_mu);
}

static void queue_wake_producers(struct sl_queue *q);

void
sl_queue_set_when_full(struct sl_queue *q, enum sl_when_full policy)
{
    pthread_mutex_lock(&q->cfg_mu);
    int was = atomic_exchange_explicit(&q->when_full, (int)policy, memory_order_seq_cst);
    queue_derive_locked(q);
    pthread_mutex_unlock(&q->cfg_mu);
    if (was == (int)policy) {
        return;
    }
    /* A reload: producers paused under block re-look (a drop policy lets
     * them read on, or has the writer evict for them), and the writer
     * re-looks at its eviction duty.  The store above is before each
     * signal's fence (wake.h). */
    queue_wake_producers(q);
    if (q->consumer != NULL) {
        sl_wake_signal(q->consumer);
    }
}

enum sl_when_full
sl_queue_when_full(const struct sl_queue *q)
{
    return (enum sl_when_full)atomic_load_explicit(&((struct sl_queue *)q)->when_full,
                                                   memory_order_relaxed);
}

/* Frees chunks from the free ring while more are allocated than the bound
 * allows (a capacity lowered).  Each one freed leaves nfree as it was:
 * one chunk less in the ring, one slot less taken.  Any thread (a reload:
 * the main thread). */
static void queue_trim_free(struct sl_queue *q);

int
sl_queue_set_capacity(struct sl_queue *q, size_t capacity)
{
    size_t n = capacity / q->chunk_bytes;
    if (n < 2 || n > q->max_chunks) {
        return -1;
    }
    pthread_mutex_lock(&q->cfg_mu);
    size_t was = atomic_load_explicit(&q->nchunks, memory_order_relaxed);
    if (n > was) {
        /* The bound first, then the credits: a producer holding a new
         * credit finds room to allocate. */
        atomic_store_explicit(&q->nchunks, n, memory_order_seq_cst);
        atomic_fetch_add_explicit(&q->nfree, (long)(n - was), memory_order_acq_rel);
    } else if (n < was) {
        atomic_fetch_sub_explicit(&q->nfree, (long)(was - n), memory_order_acq_rel);
        atomic_store_explicit(&q->nchunks, n, memory_order_seq_cst);
    }
    queue_derive_locked(q);
    pthread_mutex_unlock(&q->cfg_mu);
    if (n == was) {
        return 0;
    }
    if (n < was) {
        queue_trim_free(q);
    }
    /*
     * Every change, a lowered bound too: paused producers re-look, and so
     * does the writer (its eviction duty, sl_queue_wants_room, follows the
     * bound).  nfree, reserve and resume_at change in separate steps above,
     * and the other threads read them in between:
     *   - a release between the credits taken away and the new resume_at
     *     compares the lowered nfree with the old, higher resume_at (24
     *     chunks -> 2: resume_at 9, nfree at most 2) and wakes no one, even
     *     as the last chunk comes back; the new resume_at (1) comes after
     *     every release is done;
     *   - a producer's re-check (sl_queue_can_acquire) reads the lowered
     *     nfree with the old, higher reserve and sleeps with the queue
     *     empty.
     * Either leaves producers asleep beside free room, with nothing queued
     * that would wake them: the writer waits for pushes, they for releases.
     * These signals come after the last store of the change, so a sleeper
     * whose re-check read an old value sees its flag taken and is woken
     * (wake.h).
     */
    queue_wake_producers(q);
    if (q->consumer != NULL) {
        sl_wake_signal(q->consumer);
    }
    return 0;
}

size_t
sl_queue_max_chunks(const struct sl_queue *q)
{
    return q->max_chunks;
}

size_t
sl_queue_allocated(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->allocated, memory_order_relaxed);
}

static long
acquire_floor(const struct sl_queue *q, enum sl_acquire_class cls)
{
    return cls == SL_ACQUIRE_TCP ? atomic_load_explicit(&q->reserve, memory_order_relaxed) : 0;
}

bool
sl_queue_can_acquire(struct sl_queue *q, enum sl_acquire_class cls)
{
    return atomic_load(&q->nfree) > acquire_floor(q, cls);
}

bool
sl_queue_full(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->nfree, memory_order_acquire) <=
           atomic_load_explicit(&((struct sl_queue *)q)->reserve, memory_order_relaxed);
}

static struct sl_chunk *
queue_alloc_chunk(struct sl_queue *q, bool *oom)
{
    pthread_mutex_lock(&q->all_mu);
    size_t i = atomic_load_explicit(&q->allocated, memory_order_relaxed);
    if (i >= atomic_load_explicit(&q->nchunks, memory_order_relaxed) || q->nall >= q->max_chunks) {
        pthread_mutex_unlock(&q->all_mu);
        return NULL;
    }
    atomic_store_explicit(&q->allocated, i + 1, memory_order_relaxed);
    struct sl_chunk *c = malloc(sizeof(*c) + q->chunk_bytes);
    if (c == NULL) {
        /* Keep the slot taken: the caller keeps the credit, so the queue
         * counts one chunk less instead of promising one that does not
         * exist. */
        pthread_mutex_unlock(&q->all_mu);
        *oom = true;
        return NULL;
    }
    c->queue = q;
    c->cap = q->chunk_bytes;
    c->slot = q->nall;
    q->all[q->nall++] = c;
    pthread_mutex_unlock(&q->all_mu);
    return c;
}

/* Frees c if more chunks are allocated than the bound allows (true), with
 * its slot.  Thread: whoever holds c (it is in no ring). */
static bool
queue_free_surplus(struct sl_queue *q, struct sl_chunk *c)
{
    pthread_mutex_lock(&q->all_mu);
    size_t a = atomic_load_explicit(&q->allocated, memory_order_relaxed);
    if (a <= atomic_load_explicit(&q->nchunks, memory_order_relaxed)) {
        pthread_mutex_unlock(&q->all_mu);
        return false;
    }
    struct sl_chunk *last = q->all[--q->nall];
    last->slot = c->slot;
    q->all[c->slot] = last;
    atomic_store_explicit(&q->allocated, a - 1, memory_order_relaxed);
    pthread_mutex_unlock(&q->all_mu);
    free(c);
    return true;
}

static void
queue_trim_free(struct sl_queue *q)
{
    /* Under all_mu: a producer holding a credit that finds the ring empty
     * because of this pop allocates instead, and its allocation waits for
     * the lock, so it sees the slot given back with the chunk (nfree's
     * invariant holds across the step: one less in the ring, one less
     * allocated). */
    pthread_mutex_lock(&q->all_mu);
    while (atomic_load_explicit(&q->allocated, memory_order_relaxed) >
           atomic_load_explicit(&q->nchunks, memory_order_relaxed)) {
        struct sl_chunk *c = ring_pop(&q->free);
        if (c == NULL) {
            break; /* the rest are held: freed as they come back */
        }
        struct sl_chunk *last = q->all[--q->nall];
        last->slot = c->slot;
        q->all[c->slot] = last;
        atomic_fetch_sub_explicit(&q->allocated, 1, memory_order_relaxed);
        free(c);
    }
    pthread_mutex_unlock(&q->all_mu);
}

struct sl_chunk *
sl_queue_acquire(struct sl_queue *q, enum sl_acquire_class cls)
{
    bool oom = false;
    long floor = acquire_floor(q, cls);
    long avail = atomic_load_explicit(&q->nfree, memory_order_acquire);
    do {
        if (avail <= floor) {
            return NULL;
        }
    } while (!atomic_compare_exchange_weak_explicit(&q->nfree, &avail, avail - 1,
                                                    memory_order_acq_rel, memory_order_acquire));
    /* We hold a credit: a chunk is in the free ring or not yet allocated. */
    struct sl_chunk *c = ring_pop(&q->free);
    if (c == NULL) {
        c = queue_alloc_chunk(q, &oom);
    }
    if (c == NULL) {
        /* A credit whose chunk is not yet visible in the ring: give it back
         * and let the caller pause and retry.  Out of memory: the credit
         * stays taken (see queue_alloc_chunk). */
        if (!oom) {
            atomic_fetch_add(&q->nfree, 1);
        }
        return NULL;
    }
    c->len = 0;
    c->nevents = 0;
    c->refs = 0;
    c->queued = false;
    c->first_ns = 0;
    c->tag_len = 0;
    return c;
}

uint64_t
sl_queue_push(struct sl_queue *q, struct sl_chunk *chunk)
{
    if (chunk->len == 0) {
        sl_queue_release(q, chunk);
        return 0;
    }
    chunk->queued = true;
    atomic_fetch_add_explicit(&q->queued_bytes, chunk->len, memory_order_relaxed);
    uint64_t seq = ring_push(&q->full, chunk, true);
    if (q->consumer != NULL) {
        /* The consumer may take it on this thread (sl_queue_set_drain);
         * if it did not take everything, it is woken as always. */
        struct sl_queue_drain *d = atomic_load_explicit(&q->drain, memory_order_acquire);
        if (d == NULL || !d->fn(d)) {
            sl_wake_signal(q->consumer);
        }
    }
    return seq;
}

struct sl_chunk *
sl_queue_pop(struct sl_queue *q)
{
    struct sl_chunk *c = ring_pop(&q->full);
    if (c != NULL) {
        /* Every chunk passes here once, on the consumer: live taps sample
         * it (one relaxed load when none is attached; tap.h). */
        sl_tap_offer(q->name, c->data, c->len, c->nevents);
    }
    return c;
}

bool
sl_queue_has_chunks(struct sl_queue *q)
{
    return !ring_empty(&q->full);
}

/* Signals every registered producer's wake (each writes its eventfd only
 * if that producer sleeps). */
static void
queue_wake_producers(struct sl_queue *q)
{
    pthread_mutex_lock(&q->prod_mu);
    int n = atomic_load_explicit(&q->nproducers, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        sl_wake_signal(q->producers[i]);
    }
    pthread_mutex_unlock(&q->prod_mu);
}

void
sl_queue_release(struct sl_queue *q, struct sl_chunk *chunk)
{
    if (chunk->queued) {
        atomic_fetch_sub_explicit(&q->queued_bytes, chunk->len, memory_order_relaxed);
        atomic_store_explicit(&q->last_release_ms, sl_now_ms(), memory_order_relaxed);
        chunk->queued = false;
    }
    /* More allocated than the bound (a capacity lowered live): free it.
     * Either way nfree gains one (the invariant, see DESIGN). */
    if (atomic_load_explicit(&q->allocated, memory_order_relaxed) <=
            atomic_load_explicit(&q->nchunks, memory_order_relaxed) ||
        !queue_free_surplus(q, chunk)) {
        ring_push(&q->free, chunk, false);
    }
    long now_free = atomic_fetch_add_explicit(&q->nfree, 1, memory_order_acq_rel) + 1;
    if (now_free >= atomic_load_explicit(&q->resume_at, memory_order_relaxed)) {
        queue_wake_producers(q);
    }
}

void
sl_queue_ask_eviction(struct sl_queue *q)
{
    if (sl_queue_when_full(q) != SL_WHEN_FULL_DROP_OLDEST) {
        return;
    }
    /* The flag is the work; sl_wake_signal's fence orders it before the
     * look at the writer's sleeping flag (wake.h). */
    atomic_store_explicit(&q->evict_asked, true, memory_order_release);
    if (q->consumer != NULL) {
        sl_wake_signal(q->consumer);
    }
}

bool
sl_queue_eviction_asked(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->evict_asked, memory_order_acquire);
}

bool
sl_queue_take_eviction_ask(struct sl_queue *q)
{
    return atomic_load_explicit(&q->evict_asked, memory_order_relaxed) &&
           atomic_exchange_explicit(&q->evict_asked, false, memory_order_acq_rel);
}

bool
sl_queue_wants_room(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->nfree, memory_order_acquire) <=
           atomic_load_explicit(&((struct sl_queue *)q)->reserve, memory_order_relaxed) + 1;
}

uint64_t
sl_queue_durable_seq(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->durable, memory_order_acquire);
}

/*
 * Store, fence, load watchers, signal (whose own fence precedes its load of
 * the sleeping flag); the watcher does: watchers++, announce (fence),
 * re-check the position.  One of the two sees the other (wake.h).
 */
void
sl_queue_set_durable(struct sl_queue *q, uint64_t seq)
{
    if (seq <= atomic_load_explicit(&q->durable, memory_order_relaxed)) {
        return;
    }
    atomic_store_explicit(&q->durable, seq, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&q->durable_watchers, memory_order_relaxed) == 0) {
        return;
    }
    queue_wake_producers(q);
}

void
sl_queue_watch_durable(struct sl_queue *q, int delta)
{
    atomic_fetch_add_explicit(&q->durable_watchers, delta, memory_order_seq_cst);
    if (delta > 0) {
        /* A disk backlog syncs early for a watcher (group commit): the
         * writer must poll it even if it went to sleep after the append.
         * The flag is the work; the signal's fence orders it before the
         * look at the writer's sleeping flag (wake.h). */
        atomic_store_explicit(&q->durable_kick, true, memory_order_release);
        if (q->consumer != NULL) {
            sl_wake_signal(q->consumer);
        }
    }
}

bool
sl_queue_take_durable_kick(struct sl_queue *q)
{
    return atomic_load_explicit(&q->durable_kick, memory_order_acquire) &&
           atomic_exchange_explicit(&q->durable_kick, false, memory_order_acq_rel);
}

bool
sl_queue_durable_watched(const struct sl_queue *q)
{
    return atomic_load_explicit(&q->durable_watchers, memory_order_relaxed) > 0;
}

void
sl_queue_count_evicted(struct sl_queue *q, uint64_t events, uint64_t bytes)
{
    sl_counter_add(&q->evicted_events, events);
    sl_counter_add(&q->evicted_bytes, bytes);
}

uint64_t
sl_queue_evicted_events(const struct sl_queue *q)
{
    return sl_counter_get(&q->evicted_events);
}

uint64_t
sl_queue_evicted_bytes(const struct sl_queue *q)
{
    return sl_counter_get(&q->evicted_bytes);
}

int
sl_queue_tag_recover(struct sl_queue *q, const void *key, size_t len, uint64_t seq)
{
    if (len == 0 || len > SL_CHUNK_TAG_MAX) {
        return 0;
    }
    for (size_t i = 0; i < q->ntags; i++) {
        if (q->tags[i].len == len && memcmp(q->tags[i].key, key, len) == 0) {
            if (seq > q->tags[i].seq) {
                q->tags[i].seq = seq;
            }
            return 0;
        }
    }
    struct qtag *n = realloc(q->tags, (q->ntags + 1) * sizeof(*n));
    if (n == NULL) {
        return -1;
    }
    q->tags = n;
    n[q->ntags].len = (uint16_t)len;
    n[q->ntags].seq = seq;
    memcpy(n[q->ntags].key, key, len);
    q->ntags++;
    return 0;
}

uint64_t
sl_queue_tag_recovered(const struct sl_queue *q, const void *key, size_t len)
{
    for (size_t i = 0; i < q->ntags; i++) {
        if (q->tags[i].len == len && memcmp(q->tags[i].key, key, len) == 0) {
            return q->tags[i].seq;
        }
    }
    return 0;
}

const char *
sl_queue_name(const struct sl_queue *q)
{
    return q->name;
}

size_t
sl_queue_chunk_bytes(const struct sl_queue *q)
{
    return q->chunk_bytes;
}

size_t
sl_queue_nchunks(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->nchunks, memory_order_relaxed);
}

uint64_t
sl_queue_last_release_ms(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->last_release_ms, memory_order_relaxed);
}

size_t
sl_queue_queued_bytes(const struct sl_queue *q)
{
    return atomic_load_explicit(&((struct sl_queue *)q)->queued_bytes, memory_order_relaxed);
}

size_t
sl_queue_in_use(const struct sl_queue *q)
{
    long f = atomic_load_explicit(&((struct sl_queue *)q)->nfree, memory_order_relaxed);
    long n = (long)sl_queue_nchunks(q);
    return f >= n ? 0 : (size_t)(n - f); /* f < 0: more held than a lowered bound */
}

struct sl_queue_disk_stats *
sl_queue_disk_stats(struct sl_queue *q)
{
    return &q->disk;
}
