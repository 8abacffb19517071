/*
 * queue — a bounded MPSC channel of chunks between producer threads and the
 * writer thread.
 *
 * A chunk is a buffer of whole output lines (NDJSON).  The queue owns every
 * chunk's memory for its whole life; threads only *hold* chunks, one holder
 * at a time (several sinks may share the writer's hold, counted in refs):
 *   producer: sl_queue_acquire() → fills it → sl_queue_push()   (gives it up)
 *   writer:   sl_queue_pop()     → writes it → sl_queue_release() (gives it up)
 * The bound is capacity / chunk_bytes chunks, allocated lazily, so memory is
 * bounded in bytes whatever the event size.  TCP producers may not take the
 * last `reserve` chunks (1/8 of the queue) so UDP keeps headroom; when a
 * producer cannot get a chunk it pauses its input and waits on its sl_wake,
 * which the writer signals once at least `resume_at` chunks are free again
 * (hysteresis, so producers do not flap between paused and running).
 * That is when_full = block; drop_newest makes a TCP producer drop what
 * finds no chunk instead of pausing, drop_oldest makes the writer evict
 * its oldest chunks (backlog.h) to keep room.
 *
 * No libevent here: the module is tested alone.
 */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/stats.h"
#include "sluice/wake.h"

#define SL_QUEUE_MAX_PRODUCERS 64

struct sl_queue;

/* Bytes of a chunk's tag key (sl_chunk.tag): room for a source name, a NUL
 * and a sender id (SL_CONF_NAME_MAX, SL_PROTO_ID_MAX: 64 each). */
#define SL_CHUNK_TAG_MAX 160

struct sl_chunk {
    struct sl_queue *queue; /* owner, fixed */
    size_t len;             /* bytes used in data */
    size_t cap;             /* bytes available in data */
    uint32_t nevents;       /* lines in data */
    uint32_t refs;          /* writer only: sinks still holding it */
    size_t slot;            /* the queue's only: its place in the queue's list of chunks */
    bool queued;            /* pushed and not yet released (its bytes count as queued) */
    uint64_t seq;           /* set by sl_queue_push: the queue's chunk number (from 1) */
    uint64_t first_ns;      /* CLOCK_REALTIME of the first event's receipt */
    /* An optional tag the producer sets before the push (cleared by
     * acquire): an opaque key and a number that a disk queue writes in the
     * chunk's own record, so that what the chunk completes is on disk
     * exactly when the chunk is (source_sluice: "source\0sender id" and
     * the batch the chunk ends; the duplicate filter rebuilt at start,
     * sl_queue_tag_recovered).  A memory queue ignores it. */
    uint16_t tag_len; /* 0: no tag */
    uint64_t tag_seq;
    char tag[SL_CHUNK_TAG_MAX];
    char data[];
};

/* What a queue does when it is full (`when_full`, docs/configuration.md). */
enum sl_when_full {
    SL_WHEN_FULL_BLOCK,       /* TCP sources pause until the writer frees chunks */
    SL_WHEN_FULL_DROP_NEWEST, /* TCP sources read on; events with no room are dropped */
    SL_WHEN_FULL_DROP_OLDEST, /* the writer evicts the oldest chunk no sink is writing */
};

enum sl_acquire_class {
    SL_ACQUIRE_TCP, /* may not use the reserve; may wait */
    SL_ACQUIRE_UDP, /* may use everything; never waits */
};

/* Creates a queue of capacity bytes in chunks of chunk_bytes (capacity ≥ 2
 * chunks).  name is copied.  Returns NULL on allocation failure. */
struct sl_queue *sl_queue_new(const char *name, size_t capacity, size_t chunk_bytes);
/* Frees the queue and every chunk it allocated; no thread may hold one. */
void sl_queue_free(struct sl_queue *q);

/* Set-up (main thread, before the threads start): the writer's wake, and
 * each producer's wake (returns its lane number, or -1 if too many). */
void sl_queue_set_consumer(struct sl_queue *q, struct sl_wake *writer);
/*
 * The consumer's offer to take a pushed chunk on the pushing thread (the
 * writer's inline turn, writer.c): sl_queue_push calls fn(d) after the
 * chunk is in the queue, and signals the consumer's wake only when fn
 * returns false (it did not take everything there is).  fn must not block.
 * d NULL: none (every push signals, as without).  Any thread.  d is
 * borrowed until it is set to NULL again and, beyond that, until every
 * push that may have loaded it has returned: a push that loaded d before
 * the set to NULL may still be inside fn after it (the writer frees d with
 * itself, after every producer thread is joined).
 */
struct sl_queue_drain {
    bool (*fn)(struct sl_queue_drain *d);
};
void sl_queue_set_drain(struct sl_queue *q, struct sl_queue_drain *d);
int sl_queue_add_producer(struct sl_queue *q, struct sl_wake *producer);
/* Takes producer's wake out (a source a reload removes, whose own thread
 * waited on it); once this returns no thread signals it, and the caller
 * may free it.  Any thread. */
void sl_queue_remove_producer(struct sl_queue *q, struct sl_wake *producer);
/* The overflow policy (default SL_WHEN_FULL_BLOCK).  drop_oldest also
 * lowers resume_at to reserve + 1 (no hysteresis: every release that gives
 * TCP producers room wakes them).  Set at set-up, or live by a reload (any
 * thread): a change wakes every paused producer (one paused under block
 * reads on under a drop policy) and the writer (its eviction duty).
 * Producers and the writer read it at each use (relaxed), never cached. */
void sl_queue_set_when_full(struct sl_queue *q, enum sl_when_full policy);
enum sl_when_full sl_queue_when_full(const struct sl_queue *q);

/*
 * A queue's rings and chunk list have room for SL_QUEUE_GROWTH times the
 * chunks of the capacity it was made with (sl_queue_max_chunks): a reload
 * may raise its capacity that far live.
 */
#define SL_QUEUE_GROWTH 4
/*
 * Changes the bound live to capacity / chunk_size chunks (a reload; any
 * thread, while producers and the writer run).  Nothing queued is dropped
 * by the change itself: lowered below what the queue holds, producers take
 * no chunk until the writer has released enough (the queue keeps what it
 * holds; but under drop_oldest the writer, which keeps room for producers
 * whether or not one asked, evicts down to the new bound on its next
 * pass: writer_evict), and chunks
 * released while more are allocated than the bound are freed (memory
 * follows the bound down).  Raised, paused producers are woken.  Returns 0,
 * or -1 (nothing changed) when the bound would be under 2 chunks or over
 * sl_queue_max_chunks.
 */
int sl_queue_set_capacity(struct sl_queue *q, size_t capacity);
/* The most chunks the queue can ever be bounded to (fixed at _new).  A
 * structure holding one entry per queued chunk (a backlog reader's ring)
 * is sized by it, not by sl_queue_nchunks, which a reload changes. */
size_t sl_queue_max_chunks(const struct sl_queue *q);
/* Chunks allocated now (memory: that many x chunk_size); relaxed, any thread. */
size_t sl_queue_allocated(const struct sl_queue *q);

/*
 * Takes an empty chunk (len 0).  Never blocks.  Returns NULL when none may
 * be taken now; a TCP producer then announces on its wake, calls
 * sl_queue_can_acquire() again (re-check), and pauses if it is still false.
 * Thread: producers.
 */
struct sl_chunk *sl_queue_acquire(struct sl_queue *q, enum sl_acquire_class cls);
bool sl_queue_can_acquire(struct sl_queue *q, enum sl_acquire_class cls);

/* Gives up a filled chunk to the writer and wakes the writer if it sleeps.
 * The queue can always take it (the chunk count is bounded).  Returns the
 * chunk's sequence number: monotonic per queue from 1, in the order the
 * writer pops chunks (it is the chunk's place in the queue's FIFO).  An
 * empty chunk is recycled instead and 0 returned.  Thread: the producer
 * holding chunk. */
uint64_t sl_queue_push(struct sl_queue *q, struct sl_chunk *chunk);

/* Takes the oldest pushed chunk or NULL.  Thread: the writer only. */
struct sl_chunk *sl_queue_pop(struct sl_queue *q);
/* True when a chunk is waiting to be popped.  Thread: the writer only. */
bool sl_queue_has_chunks(struct sl_queue *q);

/* Returns a chunk to the free pool and wakes paused producers when enough
 * chunks are free.  Thread: the writer (or a producer giving back an empty
 * chunk it acquired). */
void sl_queue_release(struct sl_queue *q, struct sl_chunk *chunk);

/*
 * The durable position (docs/architecture.md, "The durable position").
 * Every chunk with seq <= sl_queue_durable_seq() is as durable as the
 * queue makes it: memory queue, committed by every sink draining it (the
 * memory backlog advances it when a chunk's last reader commits it); disk
 * queue, written and synced per its fsync policy (its backlog advances
 * it).  Acquire load; any thread.
 */
uint64_t sl_queue_durable_seq(const struct sl_queue *q);
/* Advances the durable position to seq (never backwards) and, while a
 * producer watches it, signals the producers' wakes.  Thread: the writer
 * (whoever owns the queue's backlog). */
void sl_queue_set_durable(struct sl_queue *q, uint64_t seq);
/* A producer thread starts (+1) or stops (-1) watching the durable
 * position: while any does, sl_queue_set_durable signals the producers'
 * wakes.  Call it before announcing on the wake and re-checking the
 * position (announce / fence / re-check, wake.h).  Thread: producers. */
void sl_queue_watch_durable(struct sl_queue *q, int delta);
/* Whether anyone waits on the durable position now (a relp or sluice
 * source holding an acknowledgement): a disk queue with fsync = interval
 * then syncs at once instead of at the interval (group commit).  Relaxed
 * load; any thread. */
bool sl_queue_durable_watched(const struct sl_queue *q);
/* Whether a watcher started since the last call (and clears it): the
 * writer's re-check before it sleeps, so that it polls its backlogs once
 * more.  Thread: the writer. */
bool sl_queue_take_durable_kick(struct sl_queue *q);
/*
 * drop_oldest: a TCP producer found no chunk and is pausing.  Asks the
 * writer to evict (a flag, then the writer's wake): the flag is the work,
 * so the writer's re-check before it sleeps must look at it
 * (sl_queue_eviction_asked).  No-op for the other policies.  Producers.
 */
void sl_queue_ask_eviction(struct sl_queue *q);
/* True when a producer asked since the last sl_queue_take_eviction_ask. */
bool sl_queue_eviction_asked(const struct sl_queue *q);
/* Clears the request; true when there was one.  Thread: the writer. */
bool sl_queue_take_eviction_ask(struct sl_queue *q);
/* drop_oldest: true while TCP producers have fewer than two chunks left to
 * take, so the writer should evict (it keeps that much room so a producer
 * moving on to its next chunk need not pause).  Any thread. */
bool sl_queue_wants_room(const struct sl_queue *q);
/* Counts chunks evicted under drop_oldest (the writer is the one writer);
 * any thread reads the sums. */
void sl_queue_count_evicted(struct sl_queue *q, uint64_t events, uint64_t bytes);
uint64_t sl_queue_evicted_events(const struct sl_queue *q);
uint64_t sl_queue_evicted_bytes(const struct sl_queue *q);

/* The disk queue's counters (stats.h), kept in the queue so /metrics can
 * read them for the queue's whole life; a memory queue leaves them off.
 * Borrowed, valid until sl_queue_free. */
struct sl_queue_disk_stats *sl_queue_disk_stats(struct sl_queue *q);

/*
 * Tags found in a disk queue's records at open (sl_chunk.tag): the backlog
 * records each with sl_queue_tag_recover (main thread, set-up, before any
 * producer starts; keeps the highest seq per key); sl_queue_tag_recovered
 * answers the highest seq recovered for key, 0 when none (any thread after
 * set-up: the table no longer changes).  sl_queue_tag_recover returns 0 or
 * -1 (out of memory: that key is not recorded).
 */
int sl_queue_tag_recover(struct sl_queue *q, const void *key, size_t len, uint64_t seq);
uint64_t sl_queue_tag_recovered(const struct sl_queue *q, const void *key, size_t len);

const char *sl_queue_name(const struct sl_queue *q);
size_t sl_queue_chunk_bytes(const struct sl_queue *q);
/* The bound in chunks now (a reload may change it: sl_queue_set_capacity). */
size_t sl_queue_nchunks(const struct sl_queue *q);
/* CLOCK_MONOTONIC ms when the writer last gave back a written chunk (0 =
 * never); any thread. */
uint64_t sl_queue_last_release_ms(const struct sl_queue *q);
/* Bytes of pushed chunks not yet released by the writer; any thread. */
size_t sl_queue_queued_bytes(const struct sl_queue *q);
/* True when TCP producers cannot take a chunk now (only the UDP reserve
 * is left): they pause until the writer gives chunks back, so a batch
 * waiting to grow would wait for nothing.  Any thread. */
bool sl_queue_full(const struct sl_queue *q);
/* Chunks not free right now (held or queued); approximate, any thread. */
size_t sl_queue_in_use(const struct sl_queue *q);

#endif
