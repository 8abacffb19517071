/*
 * producer — one producer thread: its event_base, its share of every
 * source's sockets (one SO_REUSEPORT socket per source per thread), its
 * connections, and its current chunk for every queue (a "lane").
 *
 * Life: sl_producer_new() (main, sockets already bound) → _start() →
 * ... → _stop() (main: asks the thread to drain and exit; returns at once)
 * → _join() → _free().
 *
 * Internal to the producer side: source_tcp.c and source_udp.c use the
 * struct directly; nothing else does.
 */
#ifndef SLUICE_PRODUCER_H
#define SLUICE_PRODUCER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "sluice/config.h"
#include "codec/encode.h"
#include "sluice/log.h"
#include "sluice/queue.h"
#include "sluice/stats.h"
#include "sluice/wake.h"

struct event_base;
struct event;
struct evconnlistener;
struct tcp_conn;
struct udp_batch;

/* Shared by every thread's instance of one source (main owns it). */
struct sl_source_shared {
    atomic_uint conns; /* open TCP connections, all threads */
    bool activated;    /* the socket came from systemd (fixed before start) */
};

/* One source in one producer thread. */
struct sl_source_inst {
    struct sl_producer *p;
    const struct sl_source_config *cfg;
    struct sl_source_shared *shared;
    struct sl_source_stats *stats; /* this thread's counters for the source */
    int fd;                        /* listening (tcp) or bound (udp) socket, owned */
    /* tcp */
    struct evconnlistener *listener;
    struct event *backoff_ev; /* re-enables the listener after EMFILE */
    /* udp */
    struct event *udp_ev;
    struct udp_batch *udp;
    uint32_t ovfl_last; /* last SO_RXQ_OVFL value seen */
    bool ovfl_seen;
    struct sl_ratelimit warn_rl;
};

/*
 * At a stop, a connection is read until EOF or until it has had nothing
 * more to read this long after the stop began: bytes a client sent just
 * before the signal, still in flight, are not cut off by the close.
 */
#define SL_DRAIN_GRACE_MS 250

/* Room for the add_fields members of one event. */
#define SL_FIELDS_MAX 2048

struct sl_lane {
    struct sl_queue *queue; /* borrowed */
    struct sl_chunk *chunk; /* held until pushed; NULL when none */
};

TAILQ_HEAD(sl_conn_list, tcp_conn);

struct sl_producer {
    int id;
    const struct sl_config *cfg; /* borrowed */
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct sl_wake wake; /* waiting for queue space, or told to stop */
    struct event *wake_ev;
    struct event *flush_ev;
    bool flush_pending;
    struct event *defer_ev; /* pushes partial chunks held back under backlog */
    bool defer_pending;
    struct sl_lane *lanes; /* one per configured queue */
    size_t nlanes;
    struct sl_source_inst *srcs; /* one per configured source */
    size_t nsrcs;
    struct sl_conn_list conns;  /* every open connection */
    struct sl_conn_list paused; /* waiting for a chunk, in pause order */
    size_t nconns;
    char *rbuf; /* read buffer for connections with nothing pending */
    size_t rbuf_cap;
    char *scratch; /* raw codec escaping */
    size_t scratch_cap;
    atomic_int stop; /* 0 run, 1 drain and exit, 2 exit now */
    bool stopping;
    uint64_t lost_at_stop; /* bytes thrown away by a forced stop */
    uint64_t drain_until_ms; /* stopping: connections may still deliver until then */
    uint64_t now_ns;       /* CLOCK_REALTIME of the current read */
};

/*
 * Creates thread id's state.  fds[i] is this thread's bound socket for
 * cfg->sources[i] (ownership moves to the producer).  stats[i] are this
 * thread's counters for source i; shared[i] is the shared per-source state;
 * queues[j] is the queue for cfg->queues[j] (all borrowed, outliving it).
 */
struct sl_producer *sl_producer_new(int id, const struct sl_config *cfg, int *fds,
                                    struct sl_source_stats *stats, struct sl_source_shared *shared,
                                    struct sl_queue **queues);
int sl_producer_start(struct sl_producer *p);
/* Asks the thread to stop: force=false drains what the kernel already has,
 * force=true gives up at once.  Any thread. */
void sl_producer_stop(struct sl_producer *p, bool force);
void sl_producer_join(struct sl_producer *p);
void sl_producer_free(struct sl_producer *p);

/* Binds a socket for src (SO_REUSEPORT, non-blocking, listening if tcp).
 * Returns the fd or -1 with errno set. */
int sl_source_bind(const struct sl_source_config *src);

/* --- used by source_tcp.c / source_udp.c (producer thread only) --- */

enum sl_emit {
    SL_EMIT_OK,      /* in the chunk */
    SL_EMIT_DROPPED, /* counted in the tally (invalid or too large) */
    SL_EMIT_NO_SPACE /* no chunk could be had: pause (tcp) or drop (udp) */
};

/* What one read produced, added to the counters once per read. */
struct sl_tally {
    uint64_t events;
    uint64_t invalid;
    uint64_t too_large;
    enum sl_validate_result first_reason;
};

/* Encodes one line of src into its queue's lane. */
enum sl_emit sl_producer_emit(struct sl_producer *p, struct sl_source_inst *src, const char *line,
                              size_t len, const char *fields, size_t flen,
                              enum sl_acquire_class cls, struct sl_tally *t);
/* Makes sure the lane's chunk is pushed at the end of this loop turn. */
void sl_producer_schedule_flush(struct sl_producer *p);
/* Refreshes p->now_ns and the "received_at" text. */
void sl_producer_clock(struct sl_producer *p);
/* Writes src's add_fields members for an event from peer (text) received
 * at p->now_ns into buf (SL_FIELDS_MAX bytes).  Returns the length (0 when
 * the source adds no fields). */
size_t sl_producer_fields(struct sl_producer *p, const struct sl_source_inst *src, const char *peer,
                          size_t peerlen, char *buf);
/* True when src's lane has room or a chunk can be taken now. */
bool sl_producer_has_space(struct sl_producer *p, struct sl_source_inst *src);
/* Called when a paused TCP connection needs a wake: announce / re-check. */
void sl_producer_wait_space(struct sl_producer *p, struct sl_source_inst *src);

/* A connection closed: ends the thread's stop once none is left. */
void sl_producer_conn_gone(struct sl_producer *p);
/* Logs a rate-limited summary of bad input from peer, if the tally has any. */
void sl_producer_report(struct sl_source_inst *src, const char *peer, const struct sl_tally *t,
                        uint64_t oversize);

/* source_tcp.c */
int sl_tcp_inst_init(struct sl_source_inst *s);
void sl_tcp_inst_fini(struct sl_source_inst *s);
void sl_tcp_resume_paused(struct sl_producer *p);
/* Stop: accept the backlog, then read every connection until EAGAIN. */
void sl_tcp_begin_stop(struct sl_source_inst *s);
void sl_tcp_close_all(struct sl_producer *p);

/* source_udp.c */
int sl_udp_inst_init(struct sl_source_inst *s);
void sl_udp_inst_fini(struct sl_source_inst *s);
void sl_udp_drain(struct sl_source_inst *s);

#endif
