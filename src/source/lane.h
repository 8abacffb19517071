/*
 * lane — what a source type may ask of its producer thread (private to
 * src/source/; implemented in producer.c).
 *
 * The producer thread owns the event_base, the read buffer and, for every
 * queue, the chunk it is filling (the lane).  A source owns its sockets
 * and connections and, per read or datagram: refreshes the clock
 * (sl_lane_clock), builds the add_fields members once (sl_lane_fields),
 * frames the bytes with its codec (s->codec->frame) and hands each event
 * to sl_lane_emit(), which encodes it into the lane's chunk and makes sure
 * the chunk is pushed at the end of the loop turn.  Then it adds its tally
 * to its counters and calls sl_lane_report().
 *
 * Back-pressure: a stream source checks sl_lane_has_space() before it
 * reads; when there is none (or an emit answers SL_EMIT_NO_SPACE) it stops
 * reading and calls sl_lane_wait() with a waiter.  When the queue has room
 * again the producer unlinks the waiter and calls its resume callback, in
 * pause order over all the thread's sources (one queue's waiter never
 * holds back another's).  A datagram source cannot pause: it drops and
 * counts.  On a queue with when_full = drop_newest a stream source never
 * pauses: sl_lane_has_space() is always true and an event that finds no
 * chunk is dropped whole and counted (SL_EMIT_DROPPED, tally->dropped, the
 * source's dropped_newest counters), so the reader reads on and holds no
 * more than its partial line.  On drop_oldest a pausing reader also asks
 * the writer to evict (sl_queue_ask_eviction).
 *
 * Thread: the producer thread that owns s, except where noted.
 */
#ifndef SLUICE_LANE_H
#define SLUICE_LANE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "sluice/queue.h"
#include "sluice/source.h"

/*
 * At a stop, a connection is read until EOF or until it has had nothing
 * more to read this long after the stop began: bytes a client sent just
 * before the signal, still in flight, are not cut off by the close.
 */
#define SL_DRAIN_GRACE_MS 250

/* Room for the add_fields members of one event. */
#define SL_FIELDS_MAX 2048

/* What a source may read (and, for now_ns, set through sl_lane_clock) of
 * its producer thread: the first member of struct sl_producer. */
struct sl_lane_thread {
    struct event_base *base; /* the thread's; sources add their events to it */
    char *rbuf;              /* read buffer, shared by the thread's stream sources */
    size_t rbuf_cap;         /* READ_BUF_BYTES + the longest max_line_bytes + 2 */
    bool stopping;           /* a stop began (stop_begin was called) */
    uint64_t drain_until_ms; /* stopping: connections may still deliver until then */
    uint64_t now_ns;         /* CLOCK_REALTIME of the current read */
    atomic_int stop;         /* 0 run, 1 drain and exit, 2 exit now (any thread writes) */
    unsigned id;             /* this thread's index, 0 .. nthreads - 1 */
    unsigned nthreads;       /* producer threads in the daemon */
};

static inline struct sl_lane_thread *
sl_lane_thread(const struct sl_source *s)
{
    return (struct sl_lane_thread *)(void *)s->p;
}

/* True once a forced stop was asked for: a drain loop must give up. */
static inline bool
sl_lane_forced(const struct sl_source *s)
{
    return atomic_load_explicit(&sl_lane_thread(s)->stop, memory_order_relaxed) == 2;
}

enum sl_emit {
    SL_EMIT_OK,      /* in the chunk */
    SL_EMIT_DROPPED, /* counted in the tally (invalid, too large, or no room
                        under when_full = drop_newest) */
    SL_EMIT_NO_SPACE /* no chunk could be had: pause (stream) or drop (datagram) */
};

/* What one read produced, added to the counters once per read. */
struct sl_tally {
    uint64_t events;
    uint64_t invalid;
    uint64_t too_large;
    uint64_t unparsed;        /* kept whole: the codec could not parse them (o->unparsed) */
    uint64_t dropped;         /* no room, when_full = drop_newest (also in the source's stats) */
    const char *first_reason; /* the codec's reason for the first invalid event */
    uint64_t framing_errors;  /* stream framing errors (sl_frame_state.errors) */
    const char *framing_error; /* the last one's reason, when framing_errors > 0 */
};

/*
 * The verbatim-run fast path (stream.c): bytes free in the lane's current
 * chunk (0 when it has none), and appending n bytes that are nevents
 * whole, already validated output lines (each ending in '\n') with one
 * memcpy, counted in t as sl_lane_emit() would count them one by one.  The
 * caller checked n <= sl_lane_room(s).  bytes may lie in the chunk's own
 * free room (sl_lane_direct): then they are moved down, or left where they
 * are when they start at the chunk's end.
 */
size_t sl_lane_room(const struct sl_source *s);
void sl_lane_append(struct sl_source *s, const char *bytes, size_t n, uint32_t nevents,
                    struct sl_tally *t);

/*
 * Reading straight into the lane's chunk (source_tcp.c, THE DIRECT READ):
 * the free room of the lane's current chunk, at least min_room bytes, its
 * size in *room; a chunk is taken (SL_ACQUIRE_TCP) when the lane has none,
 * and one with less room than min_room is pushed first when another can be
 * had.  NULL when none can be had: read the ordinary way.  Bytes written
 * there are not in the chunk until sl_lane_append() takes them (in place:
 * bytes == the room's start, no copy), and nothing else may write into the
 * chunk meanwhile.  sl_lane_direct_done() gives back a chunk still empty
 * after the read (a chunk must not sit empty in a lane).
 */
char *sl_lane_direct(struct sl_source *s, size_t min_room, size_t *room);
void sl_lane_direct_done(struct sl_source *s);

/* Encodes one event of s into its queue's lane (s->codec->encode). */
enum sl_emit sl_lane_emit(struct sl_source *s, const char *line, size_t len, const char *fields,
                          size_t flen, enum sl_acquire_class cls, struct sl_tally *t);
/*
 * Encodes one event into *chunk with cfg's codec and codec options
 * (recv_ns: the receive time the codec may use), taking an empty chunk of q
 * (class cls) when *chunk is NULL and pushing a full one to take another
 * (its seq then goes to *last_seq unless last_seq is NULL):
 * the part of sl_lane_emit that does not depend on a producer thread, for
 * a source that runs its own thread (relp).  *chunk is held by the caller
 * before and after; scratch is codec->scratch_bytes(max_line) bytes.
 * Returns as sl_lane_emit (a dropped event may leave *chunk empty).
 * Thread: the one holding *chunk.
 */
enum sl_emit sl_chunk_encode(struct sl_queue *q, struct sl_chunk **chunk, uint64_t *last_seq,
                             const struct sl_source_config *cfg, char *scratch, uint64_t recv_ns,
                             const char *line, size_t len, const char *fields, size_t flen,
                             enum sl_acquire_class cls, struct sl_tally *t);
/* Refreshes the thread's now_ns (the "received_at" time of this read). */
void sl_lane_clock(struct sl_source *s);

/*
 * The sender of an event, for add_fields = peer and for messages.  A
 * network sender is its address ("peer":"127.0.0.1:5170"); a local one
 * (unix sockets) is its credentials, added as three numbers
 * ("peer_pid":1234,"peer_uid":0,"peer_gid":0), since a unix socket's
 * sender has no address worth the name.
 */
struct sl_peer {
    char text[64]; /* for messages and the "peer" member: "127.0.0.1:5170",
                      "pid 1234 uid 0 gid 0" */
    size_t len;
    bool cred; /* local: the numbers below are the peer's */
    int64_t pid;
    uint32_t uid;
    uint32_t gid;
    /* TLS: the client certificate's subject (add_fields = peer_cert),
     * borrowed from the connection that owns it; NULL/0 otherwise (the
     * sl_peer_from_* functions clear it). */
    const char *cert;
    size_t cert_len;
};

/* A peer from an inet address (anything else: "unknown"). */
void sl_peer_from_addr(struct sl_peer *peer, const struct sockaddr *sa);
/* A peer from its credentials (SO_PEERCRED, SCM_CREDENTIALS). */
void sl_peer_from_cred(struct sl_peer *peer, const struct ucred *uc);

/* A peer from a text already made (relp: librelp's address string). */
void sl_peer_from_text(struct sl_peer *peer, const char *text);

/* Writes s's add_fields members for an event from peer received at now_ns
 * into buf (SL_FIELDS_MAX bytes).  Returns the length (0 when the source
 * adds no fields). */
size_t sl_lane_fields(const struct sl_source *s, const struct sl_peer *peer, char *buf);
/* The same for any thread: cfg's add_fields with host and now_ns given. */
size_t sl_source_fields(const struct sl_source_config *cfg, const char *host, uint64_t now_ns,
                        const struct sl_peer *peer, char *buf);
/* The daemon's hostname (add_fields = host; may be NULL): fixed for the
 * daemon's life, any thread.  (The queue s feeds: sl_lane_queue below.) */
const char *sl_lane_hostname(const struct sl_source *s);
/* True when s's lane has room for a longest event or a chunk can be taken
 * now (with the TCP reserve); always true on a drop_newest queue (the
 * source reads on and the lane drops what finds no room). */
bool sl_lane_has_space(struct sl_source *s);

/* A paused reader waiting for room in its source's queue. */
struct sl_waiter {
    TAILQ_ENTRY(sl_waiter) link; /* the thread's waiters, in pause order */
    struct sl_source *src;
    /* Called once the queue has room, after w is unlinked; may wait again. */
    void (*resume_cb)(struct sl_waiter *w);
    bool waiting;
};

/* Puts w at the tail of the waiters (unless already waiting), pushes the
 * thread's partial chunks so the writer can recycle, and announces the
 * wait on the thread's wake (announce / re-check, sluice/wake.h). */
void sl_lane_wait(struct sl_source *s, struct sl_waiter *w);
/* Takes w off the waiters without resuming it (its reader is closing). */
void sl_lane_unwait(struct sl_waiter *w);

/*
 * The durable position (sluice/queue.h).  A source that acknowledges what
 * it received (sluice, relp) ends the chunk it is filling and learns the
 * chunk's number, then waits until its queue's durable position reaches it.
 */

/* The queue s feeds (its chunk size bounds what s may accept at once). */
struct sl_queue *sl_lane_queue(const struct sl_source *s);

/* Pushes s's lane's partial chunk now and returns its seq.  With nothing
 * pending, returns the seq of the last chunk the lane pushed (every event
 * s emitted so far is in a chunk numbered no higher), or 0 when the lane
 * never pushed one. */
uint64_t sl_lane_seal(struct sl_source *s);
/* The same, with a tag (sl_chunk.tag: key of klen <= SL_CHUNK_TAG_MAX
 * bytes, copied, and seq) on the chunk it pushes, so that a disk queue
 * writes the tag in that chunk's record.  Nothing pending: nothing is
 * pushed and no tag is written (the caller emitted no event since the last
 * push, so there is nothing the tag would vouch for). */
uint64_t sl_lane_seal_tag(struct sl_source *s, const void *key, size_t klen, uint64_t seq);

/* A reader waiting until its queue's durable position reaches seq. */
struct sl_durable_waiter {
    TAILQ_ENTRY(sl_durable_waiter) link; /* the thread's durable waiters */
    struct sl_source *src;
    uint64_t seq;
    /* Called once sl_queue_durable_seq() >= seq, after w is unlinked; may
     * wait again. */
    void (*durable_cb)(struct sl_durable_waiter *w);
    bool waiting;
};

/* Waits (without blocking: the callback runs from the thread's loop) until
 * s's queue is durable up to seq; a waiting w just gets the new seq.  The
 * writer wakes the thread when the position advances while any thread
 * waits on the queue (sl_queue_watch_durable): no polling. */
void sl_lane_wait_durable(struct sl_source *s, struct sl_durable_waiter *w, uint64_t seq);
/* Takes w off the durable waiters without calling it back. */
void sl_lane_unwait_durable(struct sl_durable_waiter *w);

/* Logs a rate-limited summary of bad input from peer, if the tally has any. */
void sl_lane_report(struct sl_source *s, const char *peer, const struct sl_tally *t,
                    uint64_t oversize);
/* s may have become idle (a connection closed): ends the thread's stop
 * once every source is idle. */
void sl_lane_idle(struct sl_source *s);

#endif
