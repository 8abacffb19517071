/*
 * stream — what the stream sources (tcp, unix_stream, sluice) share on top of the lane
 * API: pausing a connection for queue space, the framing callback with its
 * per-read tally and accounting, admission under max_connections, and the
 * idle timer.  Private to src/source/.  Thread: the producer thread that
 * owns the source.
 */
#ifndef SLUICE_SOURCE_STREAM_H
#define SLUICE_SOURCE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/codec.h"
#include "source/lane.h"

struct event;
struct sockaddr;

/* A connection's pause for queue space (embed it; wait.resume_cb is the
 * type's, which finds its connection from &pause.wait). */
struct sl_stream_pause {
    struct sl_waiter wait;
    bool paused;
    uint64_t paused_at_ms; /* CLOCK_MONOTONIC, while paused */
};

/* Stops reading ev (once), counts the pause and waits for room. */
void sl_stream_pause(struct sl_source *s, struct sl_stream_pause *p, struct event *ev);
/* Ends a pause: off the waiters, the time accounted. */
void sl_stream_unpause(struct sl_source *s, struct sl_stream_pause *p);

/* One read's emission context: the frame callback's argument. */
struct sl_stream_emit {
    struct sl_source *src;
    struct sl_tally tally;
    char fields[SL_FIELDS_MAX];
    size_t flen;
    uint64_t over0; /* the framing state's oversize count before the read */
    uint64_t ferr0; /* ... and its framing errors */
    /* The verbatim-run fast path (stream.c, sl_stream_line_cb): */
    const struct sl_frame_state *fs;
    const char *buf_end; /* end of the bytes being framed; NULL: path off */
    const char *run;     /* validated lines not yet copied, '\n' included */
    size_t run_len;
    uint32_t run_events;
    size_t run_room;  /* while run_len > 0: the lane's room when the run began */
    size_t chunk_max; /* the queue's chunk size (json_encode()'s limit) */
    bool direct;      /* the bytes lie in the lane's chunk (sl_stream_emit_direct) */
    bool cut;         /* direct: framing stopped at a line the run path did not take */
};

/* Prepares x for a read of s from peer (add_fields built once). */
void sl_stream_emit_begin(struct sl_stream_emit *x, struct sl_source *s,
                          const struct sl_frame_state *fs, const struct sl_peer *peer);
/*
 * Tells x that the lines come from buf[0..len), which stays as it is until
 * sl_stream_emit_end(): lines of the json codec without add_fields are
 * then copied into the chunk in runs (stream.c).  Optional.
 */
void sl_stream_emit_buffer(struct sl_stream_emit *x, const char *buf, size_t len);
/*
 * Whether s's events are verbatim lines (the json codec without
 * add_fields): the condition of the run path, and of reading straight into
 * the lane's chunk (source_tcp.c, THE DIRECT READ).
 */
bool sl_stream_verbatim(const struct sl_source *s);
/*
 * As sl_stream_emit_buffer(), for bytes read straight into the free room
 * of the lane's chunk (sl_lane_direct): valid lines are then taken into
 * the chunk where they are, and framing stops (x->cut) at the first line
 * the run path does not take, which must not be emitted there (its
 * encoding would overwrite bytes not yet framed): the caller moves the
 * rest to the read buffer and frames it the ordinary way.  False (nothing
 * may be framed in place) unless the lines are verbatim under newline
 * framing.
 */
bool sl_stream_emit_direct(struct sl_stream_emit *x, const char *buf, size_t len);
/* sl_frame_fn: emits one line into the lane; non-zero when there is no room
 * (or, direct, at a cut). */
int sl_stream_line_cb(void *arg, const char *line, size_t len);
/* Adds the read's tally to s's counters and logs bad input (rate-limited). */
void sl_stream_emit_end(struct sl_stream_emit *x, const struct sl_frame_state *fs,
                        const char *peer);

/* The source's allow list lets sa in: true, or false when the connection
 * is refused (counted in refused_addr and logged, rate-limited; the caller
 * closes the socket before any read).  tcp and sluice. */
bool sl_stream_allowed(struct sl_source *s, const struct sockaddr *sa);

/* Takes a connection under max (s->shared->conns): true, or false when it
 * is refused (counted and logged; the caller closes the socket). */
bool sl_stream_admit(struct sl_source *s, unsigned max);
/* Gives the connection's place back (after sl_stream_admit). */
void sl_stream_leave(struct sl_source *s);

/* (Re)arms a connection's read event with the idle timeout (0: none). */
int sl_stream_arm(struct event *ev, uint64_t idle_ms);

/* The log line (rate-limited by the source's warn_rl) for a TLS peer
 * refused with reason r (enum sl_tls_reason) and OpenSSL's detail. */
void sl_stream_tls_refused(struct sl_source *s, const char *peer, int r, const char *detail);

/* Names the peer of a connection just accepted on fd from sa: its address
 * (tcp) or its credentials (unix_stream, SO_PEERCRED). */
typedef void (*sl_stream_peer_fn)(int fd, const struct sockaddr *sa, struct sl_peer *peer);

#endif
