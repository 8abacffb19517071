/*
 * producer — the producer threads, as the main thread sees them.
 *
 * One producer thread owns one event_base, its instance of every source
 * (sluice/source.h: sockets and connections) and, for every queue, the
 * chunk it is filling (its lane, src/source/lane.h).  The struct is
 * private to src/source/producer.c.
 *
 * Life: sl_producer_new() (main, sockets already bound) → _start() →
 * ... → _stop() (any thread: asks the thread to drain and exit; returns at
 * once) → _join() or _join_until() → _free() (main).
 */
#ifndef SLUICE_PRODUCER_H
#define SLUICE_PRODUCER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "sluice/config.h"
#include "sluice/queue.h"
#include "sluice/stats.h"

struct sl_producer;

/* Shared by every thread's instance of one source (in its sl_source_obj). */
struct sl_tls;

struct sl_source_shared {
    atomic_uint conns; /* open stream connections, all threads */
    bool activated;    /* the socket came from systemd (fixed before start) */
    /* A type's state for the source as a whole, not per thread (relp: its
     * server thread), set by the first instance's start() (main thread),
     * freed by that instance's fini(). */
    void *type_state;
    /* unix sources: the socket file bind() created, removed by unbind()
     * if it is still that file.  Main thread only. */
    bool path_made;
    /* A reload binds beside a path a running source holds (path_beside,
     * set by main before bind()): at "<path>.reload" until the type's
     * publish() renames it over the path (path_pending until then). */
    bool path_beside;
    bool path_pending;
    dev_t path_dev;
    ino_t path_ino;
    /* Stream sources with tls = on: the TLS context every thread's
     * connections use (util/tls.h).  Made and freed by main, reloaded by
     * main on SIGHUP; threads only call its thread-safe functions. */
    struct sl_tls *tls;
};

/*
 * One configured source, owned by main (the object graph: see
 * docs/architecture.md).  Every producer thread runs an instance of it
 * (struct sl_source) that points at its shared state and at its own
 * counters here.  Nothing indexes sources by their place in the config:
 * a reload can add or drop one source object and keep the others.
 */
struct sl_source_obj {
    const struct sl_source_config *cfg; /* borrowed from the loaded config */
    struct sl_queue *queue;             /* the queue it feeds (borrowed) */
    struct sl_source_shared shared;
    unsigned nthreads;             /* producer threads: entries in stats and fds */
    struct sl_source_stats *stats; /* [thread id]: each thread's counters, owned */
    int *fds; /* [thread id]: bound sockets, owned until that thread's producer takes its own */
};

/*
 * Creates thread id's state: an instance of every source in sources
 * (borrowed, outliving it), with its socket taken from sources[i]->fds[id]
 * and its counters in sources[i]->stats[id], and a lane for every queue
 * the sources feed.  daemon is the daemon section (hostname), borrowed.
 */
struct sl_producer *sl_producer_new(int id, const struct sl_daemon_config *daemon,
                                    struct sl_source_obj *const *sources, size_t nsources);
int sl_producer_start(struct sl_producer *p);
/* Asks the thread to stop: force=false drains what the kernel already has,
 * force=true gives up at once.  Any thread. */
void sl_producer_stop(struct sl_producer *p, bool force);
void sl_producer_join(struct sl_producer *p);
/* Joins the thread unless it is still running at deadline (CLOCK_REALTIME).
 * Returns 0 when joined (or never started), -1 on timeout. */
int sl_producer_join_until(struct sl_producer *p, const struct timespec *deadline);
/*
 * A config reload (main thread; the producer thread runs).  add: starts an
 * instance of o on the thread's event_base with the socket main bound for
 * it in o->fds[thread id] (taken; on failure closed).  remove: o's instance
 * stops as at an orderly stop (its listener closed after accepting the
 * backlog, what the kernel holds read, each connection closed at EOF or
 * after the drain grace), what it read is pushed into the queue, and it is
 * freed; o is the caller's again once every thread has answered.  Both
 * wait at most timeout_ms.  Returns 0, -1 (cannot start / no such
 * instance), or -2 (no answer in time: the request is withdrawn, though a
 * removal may still finish on the thread; o must then not be freed).
 */
int sl_producer_add_source(struct sl_producer *p, struct sl_source_obj *o, uint64_t timeout_ms);
int sl_producer_remove_source(struct sl_producer *p, struct sl_source_obj *o, uint64_t timeout_ms);
/* Bytes a forced stop gave up.  Main, after the thread was joined. */
uint64_t sl_producer_lost(const struct sl_producer *p);
void sl_producer_free(struct sl_producer *p);

#endif
