/*
 * stats — counters and histograms kept by the thread that does the work and
 * read by any thread (the exit summary, the /metrics endpoint).
 *
 * Each counter has exactly one writer thread, which adds with a relaxed
 * load + store (a plain move on x86, no locked instruction), usually once
 * per read callback rather than per event.  Readers use relaxed loads.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "sluice/tap.h"

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

static inline void
sl_counter_set(sl_counter *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

#define SL_HIST_MAX_BOUNDS 20

/*
 * A histogram with fixed upper bounds (raw units: ns or bytes), one writer
 * thread.  buckets[i] counts observations <= bounds[i] (not cumulative);
 * buckets[nbounds] counts the rest.  The exposition derives the count from
 * the buckets, so a reader never sees a count that disagrees with them.
 */
struct sl_hist {
    const uint64_t *bounds;
    size_t nbounds;
    sl_counter buckets[SL_HIST_MAX_BOUNDS + 1];
    sl_counter sum;
};

static inline void
sl_hist_observe(struct sl_hist *h, uint64_t v, uint64_t n)
{
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i]) {
        i++;
    }
    sl_counter_add(&h->buckets[i], n);
    sl_counter_add(&h->sum, v * n);
}

/* Per source and producer thread. */
struct sl_source_stats {
    sl_counter events_in;    /* events accepted into a chunk */
    sl_counter bytes_in;     /* bytes read from the network */
    sl_counter invalid;      /* lines rejected by the codec */
    sl_counter unparsed;     /* lines the codec kept whole, unparsed (codec syslog) */
    sl_counter oversize;     /* lines over max_line_bytes (or too large to encode) */
    /* Malformed octet-counting headers and cut-off frames (stream sources). */
    sl_counter framing_errors;
    sl_counter dropped_full; /* udp events dropped: no queue space */
    sl_counter kernel_drops; /* udp datagrams dropped by the kernel (SO_RXQ_OVFL) */
    sl_counter truncated;    /* udp datagrams larger than the receive buffer */
    sl_counter conn_accepted;
    sl_counter conn_rejected; /* over max_connections */
    /* Refused by the allow list: tcp connections closed before any read,
     * udp datagrams dropped. */
    sl_counter refused_addr;
    sl_counter conn_closed;
    sl_counter conn_idle_closed;
    sl_counter accept_errors;  /* accept() failures (EMFILE...: the listener backs off) */
    /* tcp connections handed to / taken from another producer thread
     * (source_tcp.c, THE SPREAD); this thread's open connections are
     * conn_accepted - conn_closed + conn_moved_in - conn_moved_out. */
    sl_counter conn_moved_in;
    sl_counter conn_moved_out;
    sl_counter pauses;    /* times a connection was paused for queue space */
    sl_counter resumes;   /* pauses that ended (pauses - resumes = paused now) */
    sl_counter paused_ns; /* time connections spent paused, summed */
    /* sluice source */
    sl_counter batches_in;      /* batches accepted */
    sl_counter dup_batches;     /* resent batches dropped: already received from that sender */
    sl_counter protocol_errors; /* connections closed for a protocol error */
    sl_counter acks_out;        /* ACK frames sent */
    /* tcp events dropped for want of room under when_full = drop_newest,
     * and their bytes as received (line end not counted) */
    sl_counter dropped_newest;
    sl_counter dropped_newest_bytes;
    /* relp sources (the server's thread, in the owning instance's counters). */
    sl_counter relp_acks;           /* "syslog" frames answered "200 OK" */
    sl_counter relp_session_errors; /* sessions broken, frames refused (librelp's errors) */
};

/* Per sink (writer thread). */
struct sl_sink_stats {
    sl_counter events_out;
    sl_counter bytes_out;
    sl_counter batches;
    sl_counter errors;
    sl_counter fsyncs;
    sl_counter reopens;
    sl_counter retries;          /* write attempts that will be retried */
    sl_counter failing_since_ms; /* CLOCK_REALTIME ms of the first failure; 0 = ok */
    sl_counter last_errno;       /* errno of the last failure */
    struct sl_hist latency_ns;   /* received -> written, per chunk (see metrics.h) */
    struct sl_hist batch_bytes;  /* bytes per write */
    struct sl_hist fsync_ns;     /* fdatasync duration */
    /* NATS sink: publish -> its positive PubAck, per message (libnats'
     * threads, one at a time: under the sink's mutex). */
    struct sl_hist ack_ns;
    /* File sinks: rotations (writer); the rest by the sink's housekeeping thread. */
    sl_counter rotations;
    sl_counter compressed;        /* rotated files compressed */
    sl_counter compress_failures; /* compressions that failed (retried later) */
    sl_counter retention_deleted; /* rotated files deleted by max_files / max_age */
    /* TCP sinks (writer). */
    sl_counter connects;    /* connections established */
    sl_counter disconnects; /* connections lost or dropped (closed while idle: not counted) */
    /* sluice sink */
    sl_counter acks;           /* ACK frames received */
    sl_counter keepalives;     /* KEEPALIVE frames received */
    sl_counter resent_batches; /* batches sent again after a reconnect */
    sl_counter ack_timeouts;   /* connections given up: no ack or keepalive for ack_timeout */
    sl_counter dropped_lines;  /* lines longer than the receiver's max batch */
    sl_counter renumbered;     /* numbering jumps past batches the receiver holds and the
                                  restarted queue lost (sink_sluice.c sluice_renumber) */
    /* NATS sinks (writer and libnats threads). */
    sl_counter rejected;   /* events refused as larger than the server or stream takes */
    sl_counter duplicates; /* publishes the server acknowledged as duplicates (resends) */
};

/* Admin endpoint (admin_http.c, main thread): a plain copy for /metrics. */
struct sl_admin_stats {
    unsigned connections;     /* open now */
    unsigned max_connections; /* the limit in force */
    uint64_t accepted;        /* connections taken */
    uint64_t limit_reached;   /* times the limit stopped the listener */
    uint64_t deadline_closed; /* connections closed at a request's deadline */
    uint64_t accept_errors;   /* accept() failures (EMFILE ...) */
    uint64_t reloads;         /* POST /reload requests carried out */
    uint64_t reloads_refused; /* POST /reload refused (not loopback, or from a browser) */
    uint64_t unauthorized;    /* requests refused with 401 (no or wrong token) */
    uint64_t token_reloads;         /* SIGHUP: admin_token_file read again and taken */
    uint64_t token_reload_failures; /* SIGHUP: a bad token file, the old token kept */
    uint64_t taps_refused;    /* GET /tap refused (403: off, or a browser; 503: too many) */
    struct sl_tap_stats tap;  /* the live taps' counters (sluice/tap.h) */
};

/* Per disk queue (backlog_disk.c writes them on the writer thread, or the
 * main thread while it opens the queue; /metrics reads them). */
struct sl_queue_disk_stats {
    atomic_bool on;              /* a disk queue: the rest is meaningful */
    sl_counter bytes;            /* gauge: segment bytes on disk */
    sl_counter max_bytes;        /* gauge: max_size */
    sl_counter segments;         /* gauge: segment files */
    sl_counter written_bytes;    /* record bytes appended */
    sl_counter fsyncs;           /* fdatasync calls on segments and the state file */
    sl_counter refusing;         /* gauge: 1 while the queue takes no chunks (full) */
    sl_counter full_total;       /* times it started refusing */
    sl_counter write_errors;     /* failed appends (ENOSPC, EDQUOT, EIO...) */
    sl_counter failing_since_ms; /* CLOCK_REALTIME ms the current write error began; 0 = none */
    sl_counter last_errno;
    sl_counter torn_bytes;       /* cut from a torn last segment at start */
    sl_counter bad_records;      /* damaged spans skipped while reading */
    sl_counter lost_records;     /* records lost to damage or missing segments */
    sl_counter lost_bytes;       /* bytes skipped while reading */
    sl_counter set_aside;        /* segment files renamed *.corrupt (unreadable, damaged header) */
    sl_counter future;           /* segment files of a newer version, set aside */
    sl_counter state_resets;     /* state file missing, empty or damaged: replay from the oldest */
};

#endif
