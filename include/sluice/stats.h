/*
 * stats — counters kept by the thread that does the work and read by any
 * thread (the main thread's summaries now, the metrics endpoint later).
 *
 * Each counter has exactly one writer thread, which adds with a relaxed
 * load + store (a plain move on x86, no locked instruction), usually once
 * per read callback rather than per event.  Readers use relaxed loads.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t sl_counter;

static inline void
sl_counter_add(sl_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t
sl_counter_get(const sl_counter *c)
{
    return atomic_load_explicit((sl_counter *)c, memory_order_relaxed);
}

/* Per source and producer thread. */
struct sl_source_stats {
    sl_counter events_in;    /* events accepted into a chunk */
    sl_counter bytes_in;     /* bytes read from the network */
    sl_counter invalid;      /* lines rejected by the codec */
    sl_counter oversize;     /* lines over max_line_bytes (or too large to encode) */
    sl_counter dropped_full; /* udp events dropped: no queue space */
    sl_counter kernel_drops; /* udp datagrams dropped by the kernel (SO_RXQ_OVFL) */
    sl_counter truncated;    /* udp datagrams larger than the receive buffer */
    sl_counter conn_accepted;
    sl_counter conn_rejected; /* over max_connections */
    sl_counter conn_closed;
    sl_counter conn_idle_closed;
    sl_counter pauses; /* times a connection was paused for queue space */
};

/* Per sink (writer thread). */
struct sl_sink_stats {
    sl_counter events_out;
    sl_counter bytes_out;
    sl_counter batches;
    sl_counter errors;
    sl_counter fsyncs;
    sl_counter reopens;
};

#endif
