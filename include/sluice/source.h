/*
 * source — the contract between the producer threads and a source type
 * (tcp, udp, unix_stream, unix_dgram; later relp, ...).
 *
 * A source type is a const table of functions (struct sl_source_type),
 * listed once, as the impl of its registry entry (src/daemon/registry.c),
 * which a loaded source config points at (sl_source_config.type).  A configured
 * source runs as one instance (struct sl_source) in every producer
 * thread.  The producer reaches a source only through its type's table;
 * the source reaches the producer only through the lane API
 * (src/source/lane.h: emit, fields, clock, back-pressure, report, idle).
 *
 * Life of an instance, all on one producer thread's behalf:
 *   bind()        main thread, before any thread starts: opens this
 *                 thread's socket (or the socket came from systemd; or,
 *                 for a one_socket type, a duplicate of the first
 *                 thread's);
 *   start()       main thread, before the producer thread runs: sets up
 *                 the type's state (s->priv) and arms its events on the
 *                 thread's event_base;
 *   ... events run on the producer thread ...
 *   stop_begin()  producer thread, at a stop: stop taking new work and
 *                 drain what the kernel holds (tcp: accept the backlog,
 *                 read connections until EOF or the drain grace; udp:
 *                 read the socket empty);
 *   idle()        producer thread: nothing left in flight (the thread's
 *                 stop ends once every source is idle);
 *   close_all()   producer thread, forced stop: drop everything at once;
 *   fini()        main thread, after the producer thread is joined (or
 *                 start() failed): free everything, s->fd excepted;
 *   unbind()      main thread, once per source (not per thread), last.
 * A source a reload adds is bound (on main), started on each running
 * thread (start() on that thread), then published (publish(), main).
 * Back-pressure is not a type operation: a source that finds no room
 * pauses itself and registers a waiter (sl_lane_wait, lane.h) whose
 * callback the producer calls, in pause order across all of the thread's
 * sources, when its queue has room again.
 *
 * Adding a source type: src/source/source_NAME.c defining a struct
 * sl_source_type, source_NAME_conf.c with its keys and a struct
 * sl_conf_type whose impl.source points at it, one line in
 * src/daemon/registry.c (and its extern in registry.h), its docs
 * (docs/architecture.md, "Adding a source type").
 */
#ifndef SLUICE_SOURCE_H
#define SLUICE_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/log.h"

struct sl_codec_type;
struct sl_lane;
struct sl_producer;
struct sl_source_config;
struct sl_source_shared;
struct sl_source_stats;

/* One source in one producer thread.  Filled by the producer; sources
 * read it and own only priv. */
struct sl_source {
    const struct sl_source_type *type;
    const struct sl_codec_type *codec;
    const struct sl_source_config *cfg; /* borrowed */
    struct sl_producer *p;              /* the thread: only for the lane API */
    struct sl_lane *lane;               /* its queue's lane in this thread */
    struct sl_source_shared *shared;    /* every thread's instances share it */
    struct sl_source_stats *stats;      /* this thread's counters for the source */
    int fd;                             /* from bind() or systemd, owned; -1 when closed */
    void *priv;                         /* the type's state, owned by the type */
    struct sl_ratelimit warn_rl;        /* for the type's and the lane's warnings */
    /* Set by the producer before stop_begin (the thread stops, or a reload
     * removes this source alone): types read these, not the thread's. */
    bool stopping;           /* a stop began: take no new work, drain */
    uint64_t drain_until_ms; /* stopping: connections may still deliver until then */
};

struct sl_source_type {
    const char *name;  /* the config's type value: "tcp", "udp" */
    const char *label; /* in messages: "TCP", "UDP" */
    int socktype;      /* SOCK_STREAM (listening) or SOCK_DGRAM: what bind() returns
                          and what an inherited systemd socket must be */
    int family;        /* AF_UNIX: listen is a path; 0: an inet host:port */
    bool one_socket;   /* bind() runs once, every producer thread gets a duplicate
                          of that socket (no SO_REUSEPORT for unix sockets) */
    bool reuseport;    /* bind() is sl_source_bind_inet: each thread's socket joins
                          one SO_REUSEPORT group, so main probes the address
                          first (sl_source_probe_inet) unless it holds it */
    /* Binds one producer thread's socket.  shared is the source's state of
     * every thread (the type may record what it created there).  Returns
     * the fd or -1, errno set (the type may log a clearer reason first).
     * NULL: the type opens its own listener in start() (s->fd stays -1)
     * and cannot take a socket from systemd. */
    int (*bind)(const struct sl_source_config *cfg, struct sl_source_shared *shared);
    /* Optional: adjusts a socket passed by systemd (already non-blocking). */
    void (*adopt)(int fd);
    /* Sets up s->priv and arms its events.  Returns 0 or -1; fini() then
     * cleans up whatever was set up. */
    int (*start)(struct sl_source *s);
    void (*stop_begin)(struct sl_source *s);
    /* Optional (NULL: always idle). */
    bool (*idle)(const struct sl_source *s);
    /* Optional: closes everything at once; returns the bytes given up. */
    uint64_t (*close_all)(struct sl_source *s);
    void (*fini)(struct sl_source *s);
    /* Optional: a reload started the source on every thread: makes what
     * bind() prepared reachable (a unix source bound beside the path of
     * the source it replaces renames its socket over that path).  Main
     * thread.  Returns 0, or -1 with errno set (logged). */
    int (*publish)(const struct sl_source_config *cfg, struct sl_source_shared *shared);
    /* Optional: undoes what bind() left outside the process (a unix socket
     * file).  Main thread, once per source, after every thread's fini (or
     * when the start failed after binding); not for a socket from systemd. */
    void (*unbind)(const struct sl_source_config *cfg, struct sl_source_shared *shared);
};

/* The type of a configured source: cfg->type->impl.source (never NULL in
 * a loaded config; its codec is cfg->codec).  Thread: any. */
const struct sl_source_type *sl_source_type_of(const struct sl_source_config *cfg);

/*
 * A new socket of cfg's address family and type (non-blocking,
 * close-on-exec) with recv_buffer_bytes applied.  Returns the fd or -1
 * with errno set.
 */
int sl_source_socket(const struct sl_source_config *cfg, int socktype);

/*
 * Binds fd to cfg's address and, when listening, listens.  Returns fd, or
 * -1 with errno set after closing fd.
 */
int sl_source_bind_fd(int fd, const struct sl_source_config *cfg, bool listening);

/*
 * Binds an inet socket for cfg (SO_REUSEPORT, SO_REUSEADDR on TCP only,
 * non-blocking, close-on-exec, recv_buffer_bytes, listening when socktype
 * is SOCK_STREAM): the bind() of the tcp, udp and sluice types.  Returns
 * the fd or -1 with errno set.
 */
int sl_source_bind_inet(const struct sl_source_config *cfg, int socktype);

/*
 * Whether another socket holds cfg's address: binds a probe socket of
 * socktype there without SO_REUSEPORT and closes it (source.c, "the
 * probe"), so that the SO_REUSEPORT group sl_source_bind_inet makes does
 * not silently join another process's.  Run it only for an address this
 * process holds no socket on (its own would count).  Returns 0 (nobody
 * else: bind the group now), or -1 with errno set (EADDRINUSE: taken).
 * Thread: main.
 */
int sl_source_probe_inet(const struct sl_source_config *cfg, int socktype);

/*
 * True when a and b (sources of reuseport types) bind sockets the kernel
 * would put in one port space: the same protocol (socktype), family and
 * port, and the same host or either a wildcard (0.0.0.0, ::).  Thread: any.
 */
bool sl_source_inet_overlap(const struct sl_source_config *a, const struct sl_source_config *b);

#endif
