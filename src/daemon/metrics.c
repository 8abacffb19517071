/*
 * metrics — Prometheus exposition and health verdict (main thread).
 *
 * Names follow the Prometheus conventions: sluice_<area>_<what>_<unit>,
 * counters end in _total, times in seconds, sizes in bytes.  Per-thread
 * source counters are summed per source; queue figures that come from
 * sources (pauses) are summed over the sources feeding the queue.  The
 * latency histogram is observed once per chunk with the chunk's event
 * count as weight and the receive time of its first event, so it is an
 * upper bound for the chunk's other events.  docs/monitoring.md lists
 * every metric.
 */
#include "daemon/metrics.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/producer.h"
#include "sluice/sink.h"
#include "source/relp_guard.h"
#include "util/tls.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

#define MS 1000000ull
#define US 1000ull

static const uint64_t latency_bounds[] = {
    100 * US, 250 * US, 500 * US, 1 * MS,   2 * MS,    5 * MS,    10 * MS,   25 * MS,
    50 * MS,  100 * MS, 250 * MS, 500 * MS, 1000 * MS, 2500 * MS, 5000 * MS, 10000 * MS,
};
static const uint64_t fsync_bounds[] = {
    100 * US, 250 * US, 500 * US, 1 * MS,   2500 * US, 5 * MS,    10 * MS,
    25 * MS,  50 * MS,  100 * MS, 250 * MS, 500 * MS,  1000 * MS, 5000 * MS,
};
static const uint64_t batch_bounds[] = {
    1024, 4096, 16384, 65536, 262144, 1024 * 1024, 4096 * 1024, 16384 * 1024, 65536ull * 1024,
};

#define NBOUNDS(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(NBOUNDS(latency_bounds) <= SL_HIST_MAX_BOUNDS, "too many latency buckets");
_Static_assert(NBOUNDS(fsync_bounds) <= SL_HIST_MAX_BOUNDS, "too many fsync buckets");
_Static_assert(NBOUNDS(batch_bounds) <= SL_HIST_MAX_BOUNDS, "too many batch buckets");

void
sl_metrics_init_sink(struct sl_sink_stats *st)
{
    st->latency_ns.bounds = latency_bounds;
    st->latency_ns.nbounds = NBOUNDS(latency_bounds);
    st->fsync_ns.bounds = fsync_bounds;
    st->fsync_ns.nbounds = NBOUNDS(fsync_bounds);
    st->ack_ns.bounds = latency_bounds;
    st->ack_ns.nbounds = NBOUNDS(latency_bounds);
    st->batch_bytes.bounds = batch_bounds;
    st->batch_bytes.nbounds = NBOUNDS(batch_bounds);
}

static void
metric_head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One value of a per-source counter, summed over the producer threads. */
static uint64_t
source_sum(const struct sl_metrics_view *v, size_t s, size_t field_offset)
{
    uint64_t total = 0;
    const struct sl_source_obj *o = v->sources[s];
    for (unsigned t = 0; t < o->nthreads; t++) {
        const struct sl_source_stats *st = &o->stats[t];
        total += sl_counter_get((const sl_counter *)((const char *)st + field_offset));
    }
    return total;
}

#define SRC(v, s, f) source_sum((v), (s), offsetof(struct sl_source_stats, f))

static void
render_source_counter(FILE *out, const struct sl_metrics_view *v, const char *name,
                      const char *type, const char *help, size_t off)
{
    metric_head(out, name, type, help);
    for (size_t s = 0; s < v->nsources; s++) {
        fprintf(out, "%s{source=\"%s\"} %" PRIu64 "\n", name, v->sources[s]->cfg->name,
                source_sum(v, s, off));
    }
}

/* The TLS context of end i: sources first, then sinks, then the admin
 * endpoint (i == nsources + nsinks); NULL when that end has TLS off.
 * *kind is the label name ("source", "sink" or "endpoint"). */
static struct sl_tls *
tls_end(const struct sl_metrics_view *v, size_t i, const char **kind, const char **name)
{
    if (i < v->nsources) {
        *kind = "source";
        *name = v->sources[i]->cfg->name;
        return v->sources[i]->shared.tls;
    }
    if (i == v->nsources + v->nsinks) {
        *kind = "endpoint";
        *name = "admin";
        return v->admin_tls;
    }
    const struct sl_sink *k = v->sinks[i - v->nsources];
    *kind = "sink";
    *name = k->cfg->name;
    return k->ops != NULL && k->ops->tls != NULL ? k->ops->tls(k) : NULL;
}

/* TLS of the sources and sinks with tls = on (util/tls.h): handshakes,
 * failures per reason (every reason, zeros included, so alerts can rate()
 * them), reloads.  A source's series carry source="name", a sink's
 * sink="name", the admin endpoint's endpoint="admin". */
static void
render_tls(FILE *out, const struct sl_metrics_view *v)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } rows[] = {
        {"sluice_tls_handshakes_total", "TLS handshakes completed and accepted.",
         offsetof(struct sl_tls_stats, handshakes)},
        {"sluice_tls_reloads_total", "SIGHUP reloads that took new certificates.",
         offsetof(struct sl_tls_stats, reloads)},
        {"sluice_tls_reload_failures_total",
         "SIGHUP reloads that failed and kept the certificates in use.",
         offsetof(struct sl_tls_stats, reload_failures)},
    };
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        metric_head(out, rows[r].name, "counter", rows[r].help);
        for (size_t s = 0; s <= v->nsources + v->nsinks; s++) {
            const char *kind, *name;
            struct sl_tls *t = tls_end(v, s, &kind, &name);
            if (t != NULL) {
                const atomic_uint_fast64_t *c =
                    (const atomic_uint_fast64_t *)(const void *)((const char *)sl_tls_stats(t) +
                                                                 rows[r].off);
                fprintf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", rows[r].name, kind, name,
                        (uint64_t)atomic_load_explicit(c, memory_order_relaxed));
            }
        }
    }
    metric_head(out, "sluice_tls_handshake_failures_total", "counter",
                "TLS connections refused, by reason (plaintext, untrusted, expired, no_cert, "
                "name, version, timeout, renegotiation, other).");
    for (size_t s = 0; s <= v->nsources + v->nsinks; s++) {
        const char *kind, *name;
        struct sl_tls *t = tls_end(v, s, &kind, &name);
        for (int r = 0; t != NULL && r < SL_TLS_NREASONS; r++) {
            fprintf(out, "sluice_tls_handshake_failures_total{%s=\"%s\",reason=\"%s\"} %" PRIu64
                         "\n",
                    kind, name, sl_tls_reason_names[r],
                    (uint64_t)atomic_load_explicit(&sl_tls_stats(t)->failures[r],
                                                   memory_order_relaxed));
        }
    }
}

static void
render_sources(FILE *out, const struct sl_metrics_view *v)
{
    static const struct {
        const char *reason;
        size_t off;
    } drops[] = {
        {"invalid", offsetof(struct sl_source_stats, invalid)},
        {"oversize", offsetof(struct sl_source_stats, oversize)},
        {"queue_full", offsetof(struct sl_source_stats, dropped_full)},
        {"drop_newest", offsetof(struct sl_source_stats, dropped_newest)},
        {"truncated", offsetof(struct sl_source_stats, truncated)},
    };

    render_source_counter(out, v, "sluice_source_received_events_total", "counter",
                          "Events accepted into a queue.",
                          offsetof(struct sl_source_stats, events_in));
    render_source_counter(out, v, "sluice_source_received_bytes_total", "counter",
                          "Bytes read from the network.",
                          offsetof(struct sl_source_stats, bytes_in));
    metric_head(out, "sluice_source_dropped_events_total", "counter",
                "Lines or datagrams dropped, by reason.");
    for (size_t s = 0; s < v->nsources; s++) {
        for (size_t r = 0; r < sizeof(drops) / sizeof(drops[0]); r++) {
            fprintf(out,
                    "sluice_source_dropped_events_total{source=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                    v->sources[s]->cfg->name, drops[r].reason, source_sum(v, s, drops[r].off));
        }
    }
    render_source_counter(out, v, "sluice_source_framing_errors_total", "counter",
                          "Stream framing errors: malformed octet-counting headers (the "
                          "connection falls back to newline framing) and frames cut off by EOF.",
                          offsetof(struct sl_source_stats, framing_errors));
    render_source_counter(out, v, "sluice_source_unparsed_events_total", "counter",
                          "Events the codec could not parse, kept whole as {\"message\":...}.",
                          offsetof(struct sl_source_stats, unparsed));
    render_source_counter(out, v, "sluice_source_kernel_dropped_datagrams_total", "counter",
                          "UDP datagrams the kernel dropped (receive buffer full).",
                          offsetof(struct sl_source_stats, kernel_drops));
    metric_head(out, "sluice_source_connections", "gauge", "Open TCP connections.");
    for (size_t s = 0; s < v->nsources; s++) {
        fprintf(out, "sluice_source_connections{source=\"%s\"} %u\n", v->sources[s]->cfg->name,
                atomic_load_explicit((atomic_uint *)&v->sources[s]->shared.conns,
                                     memory_order_relaxed));
    }
    /* Per producer thread: where THE SPREAD (source_tcp.c) put them. */
    metric_head(out, "sluice_source_thread_connections", "gauge",
                "Open TCP connections read by each producer thread.");
    for (size_t s = 0; s < v->nsources; s++) {
        const struct sl_source_obj *o = v->sources[s];
        for (unsigned t = 0; t < o->nthreads; t++) {
            const struct sl_source_stats *st = &o->stats[t];
            uint64_t n = sl_counter_get(&st->conn_accepted) - sl_counter_get(&st->conn_closed) +
                         sl_counter_get(&st->conn_moved_in) - sl_counter_get(&st->conn_moved_out);
            fprintf(out,
                    "sluice_source_thread_connections{source=\"%s\",thread=\"%u\"} %" PRId64 "\n",
                    o->cfg->name, t, (int64_t)n);
        }
    }
    render_source_counter(out, v, "sluice_source_connections_moved_total", "counter",
                          "TCP connections handed from one producer thread to another.",
                          offsetof(struct sl_source_stats, conn_moved_out));
    render_source_counter(out, v, "sluice_source_connections_accepted_total", "counter",
                          "TCP connections accepted.",
                          offsetof(struct sl_source_stats, conn_accepted));
    render_source_counter(out, v, "sluice_source_connections_rejected_total", "counter",
                          "TCP connections refused over max_connections.",
                          offsetof(struct sl_source_stats, conn_rejected));
    render_source_counter(out, v, "sluice_source_refused_total", "counter",
                          "TCP connections and UDP datagrams refused: the peer is not in allow.",
                          offsetof(struct sl_source_stats, refused_addr));
    render_tls(out, v);
    render_source_counter(
        out, v, "sluice_source_accept_errors_total", "counter",
        "accept() failures, e.g. out of descriptors (the listener backs off 1 s).",
        offsetof(struct sl_source_stats, accept_errors));
    render_source_counter(out, v, "sluice_source_connections_idle_closed_total", "counter",
                          "TCP connections closed after idle_timeout.",
                          offsetof(struct sl_source_stats, conn_idle_closed));
    render_source_counter(out, v, "sluice_source_batches_total", "counter",
                          "sluice source: batches accepted into the queue.",
                          offsetof(struct sl_source_stats, batches_in));
    render_source_counter(out, v, "sluice_source_duplicate_batches_total", "counter",
                          "sluice source: resent batches dropped (already received from that "
                          "sender).",
                          offsetof(struct sl_source_stats, dup_batches));
    render_source_counter(out, v, "sluice_source_protocol_errors_total", "counter",
                          "sluice source: connections closed for a protocol error.",
                          offsetof(struct sl_source_stats, protocol_errors));
    render_source_counter(out, v, "sluice_source_acks_total", "counter",
                          "sluice source: ACK frames sent.",
                          offsetof(struct sl_source_stats, acks_out));
    metric_head(out, "sluice_source_paused_connections", "gauge",
                "TCP connections paused now, waiting for queue space.");
    for (size_t s = 0; s < v->nsources; s++) {
        fprintf(out, "sluice_source_paused_connections{source=\"%s\"} %" PRIu64 "\n",
                v->sources[s]->cfg->name, SRC(v, s, pauses) - SRC(v, s, resumes));
    }
    render_source_counter(out, v, "sluice_source_pauses_total", "counter",
                          "Times a TCP connection was paused for queue space.",
                          offsetof(struct sl_source_stats, pauses));
    render_source_counter(out, v, "sluice_source_relp_acks_total", "counter",
                          "RELP messages acknowledged (200 OK), each once the queue's sinks committed it.",
                          offsetof(struct sl_source_stats, relp_acks));
    render_source_counter(out, v, "sluice_source_relp_session_errors_total", "counter",
                          "RELP session errors reported by librelp (broken sessions, bad frames).",
                          offsetof(struct sl_source_stats, relp_session_errors));
    metric_head(out, "sluice_source_paused_seconds_total", "counter",
                "Time TCP connections spent paused (ended pauses), summed.");
    for (size_t s = 0; s < v->nsources; s++) {
        fprintf(out, "sluice_source_paused_seconds_total{source=\"%s\"} %.6f\n",
                v->sources[s]->cfg->name, (double)SRC(v, s, paused_ns) / 1e9);
    }
}

/* A per-source counter summed over the sources that feed queue q. */
static uint64_t
queue_sum(const struct sl_metrics_view *v, size_t q, size_t field_offset)
{
    uint64_t total = 0;
    for (size_t s = 0; s < v->nsources; s++) {
        if (v->sources[s]->queue == v->queues[q]) {
            total += source_sum(v, s, field_offset);
        }
    }
    return total;
}

/* One counter of the overflow policy per queue and reason: drop_newest
 * summed from the queue's sources (newest_off), drop_oldest the queue's. */
static void
render_queue_drops(FILE *out, const struct sl_metrics_view *v, const char *name, const char *help,
                   size_t newest_off, uint64_t (*oldest)(const struct sl_queue *))
{
    metric_head(out, name, "counter", help);
    for (size_t q = 0; q < v->nqueues; q++) {
        const char *qn = sl_queue_name(v->queues[q]);
        fprintf(out, "%s{queue=\"%s\",reason=\"drop_newest\"} %" PRIu64 "\n", name, qn,
                queue_sum(v, q, newest_off));
        fprintf(out, "%s{queue=\"%s\",reason=\"drop_oldest\"} %" PRIu64 "\n", name, qn,
                oldest(v->queues[q]));
    }
}

static void
render_queues(FILE *out, const struct sl_metrics_view *v)
{
    metric_head(out, "sluice_queue_capacity_bytes", "gauge", "Configured queue capacity.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_capacity_bytes{queue=\"%s\"} %zu\n", sl_queue_name(v->queues[q]),
                sl_queue_nchunks(v->queues[q]) * sl_queue_chunk_bytes(v->queues[q]));
    }
    metric_head(out, "sluice_queue_capacity_chunks", "gauge", "Chunks the queue may hold.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_capacity_chunks{queue=\"%s\"} %zu\n",
                sl_queue_name(v->queues[q]), sl_queue_nchunks(v->queues[q]));
    }
    metric_head(out, "sluice_queue_chunks", "gauge",
                "Chunks in use: being filled, queued, or being written.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_chunks{queue=\"%s\"} %zu\n", sl_queue_name(v->queues[q]),
                sl_queue_in_use(v->queues[q]));
    }
    metric_head(out, "sluice_queue_allocated_bytes", "gauge",
                "Memory of the queue's chunks: allocated as the queue first fills, kept for "
                "reuse, freed when a reload lowers its capacity.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_allocated_bytes{queue=\"%s\"} %zu\n",
                sl_queue_name(v->queues[q]),
                sl_queue_allocated(v->queues[q]) * sl_queue_chunk_bytes(v->queues[q]));
    }
    metric_head(out, "sluice_queue_queued_bytes", "gauge",
                "Event bytes handed to the writer and not yet written by every sink.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_queued_bytes{queue=\"%s\"} %zu\n", sl_queue_name(v->queues[q]),
                sl_queue_queued_bytes(v->queues[q]));
    }
    metric_head(out, "sluice_queue_paused_connections", "gauge",
                "TCP connections of the queue's sources paused now for its space.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_paused_connections{queue=\"%s\"} %" PRIu64 "\n",
                sl_queue_name(v->queues[q]),
                queue_sum(v, q, offsetof(struct sl_source_stats, pauses)) -
                    queue_sum(v, q, offsetof(struct sl_source_stats, resumes)));
    }
    render_queue_drops(out, v, "sluice_queue_dropped_events_total",
                       "Events the queue's overflow policy (when_full) dropped, by reason.",
                       offsetof(struct sl_source_stats, dropped_newest), sl_queue_evicted_events);
    render_queue_drops(out, v, "sluice_queue_dropped_bytes_total",
                       "Bytes of those events: drop_newest as received, drop_oldest as encoded.",
                       offsetof(struct sl_source_stats, dropped_newest_bytes),
                       sl_queue_evicted_bytes);
    metric_head(out, "sluice_queue_pauses_total", "counter",
                "Times a TCP connection paused because the queue was full.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_pauses_total{queue=\"%s\"} %" PRIu64 "\n",
                sl_queue_name(v->queues[q]),
                queue_sum(v, q, offsetof(struct sl_source_stats, pauses)));
    }
    metric_head(out, "sluice_queue_paused_seconds_total", "counter",
                "Time TCP connections spent paused on the queue (ended pauses), summed.");
    for (size_t q = 0; q < v->nqueues; q++) {
        fprintf(out, "sluice_queue_paused_seconds_total{queue=\"%s\"} %.6f\n",
                sl_queue_name(v->queues[q]),
                (double)queue_sum(v, q, offsetof(struct sl_source_stats, paused_ns)) / 1e9);
    }
}

/* The disk queues' figures (queues with type = disk only). */
static void
render_disk_queues(FILE *out, const struct sl_metrics_view *v)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } m[] = {
#define D(n, t, h, f) {"sluice_queue_disk_" n, t, h, offsetof(struct sl_queue_disk_stats, f)}
        D("bytes", "gauge", "Bytes of segment files on disk.", bytes),
        D("max_bytes", "gauge", "Configured max_size.", max_bytes),
        D("segments", "gauge", "Segment files.", segments),
        D("written_bytes_total", "counter", "Record bytes appended to segments.", written_bytes),
        D("fsyncs_total", "counter", "fdatasync/fsync calls of segments and the state file.",
          fsyncs),
        D("refusing", "gauge", "1 while the queue takes no events (max_size or a write error).",
          refusing),
        D("full_total", "counter", "Times the queue started refusing events.", full_total),
        D("write_errors_total", "counter", "Appends that failed (ENOSPC, EDQUOT, EIO...).",
          write_errors),
        D("torn_bytes_total", "counter", "Bytes cut from a torn segment end at start.",
          torn_bytes),
        D("bad_records_total", "counter", "Damaged spans skipped while reading.", bad_records),
        D("lost_records_total", "counter",
          "Records not delivered: damaged, or in a missing segment.", lost_records),
        D("lost_bytes_total", "counter", "Bytes not delivered: skipped or set aside.",
          lost_bytes),
        D("set_aside_total", "counter", "Segment files renamed *.corrupt (unreadable, damaged).",
          set_aside),
        D("future_segments_total", "counter",
          "Segment files of a newer format version, renamed *.corrupt.", future),
        D("state_resets_total", "counter",
          "Times the state file was missing, empty or damaged (replay from the oldest).",
          state_resets),
#undef D
    };
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        bool head = false;
        for (size_t q = 0; q < v->nqueues; q++) {
            struct sl_queue_disk_stats *st = sl_queue_disk_stats(v->queues[q]);
            if (!atomic_load(&st->on)) {
                continue;
            }
            if (!head) {
                metric_head(out, m[k].name, m[k].type, m[k].help);
                head = true;
            }
            fprintf(out, "%s{queue=\"%s\"} %" PRIu64 "\n", m[k].name, sl_queue_name(v->queues[q]),
                    sl_counter_get((const sl_counter *)((const char *)st + m[k].off)));
        }
    }
    bool head = false;
    for (size_t q = 0; q < v->nqueues; q++) {
        if (!atomic_load(&sl_queue_disk_stats(v->queues[q])->on)) {
            continue;
        }
        if (!head) {
            metric_head(out, "sluice_queue_durable_seq", "gauge",
                        "Chunks up to this number are as durable as the queue makes them.");
            head = true;
        }
        fprintf(out, "sluice_queue_durable_seq{queue=\"%s\"} %" PRIu64 "\n",
                sl_queue_name(v->queues[q]), sl_queue_durable_seq(v->queues[q]));
    }
}

static void
render_sink_counter(FILE *out, const struct sl_metrics_view *v, const char *name, const char *help,
                    size_t off)
{
    metric_head(out, name, "counter", help);
    for (size_t j = 0; j < v->nsinks; j++) {
        const sl_counter *c = (const sl_counter *)((const char *)v->sinks[j]->stats + off);
        fprintf(out, "%s{sink=\"%s\"} %" PRIu64 "\n", name, v->sinks[j]->cfg->name,
                sl_counter_get(c));
    }
}

/* scale: divide raw values (ns, bytes) by this for the base unit. */
static void
render_hist(FILE *out, const struct sl_metrics_view *v, const char *name, const char *help,
            size_t off, double scale)
{
    metric_head(out, name, "histogram", help);
    for (size_t j = 0; j < v->nsinks; j++) {
        const struct sl_hist *h = (const struct sl_hist *)((const char *)v->sinks[j]->stats + off);
        const char *sink = v->sinks[j]->cfg->name;
        uint64_t cum = 0;
        for (size_t i = 0; i < h->nbounds; i++) {
            cum += sl_counter_get(&h->buckets[i]);
            fprintf(out, "%s_bucket{sink=\"%s\",le=\"%g\"} %" PRIu64 "\n", name, sink,
                    (double)h->bounds[i] / scale, cum);
        }
        cum += sl_counter_get(&h->buckets[h->nbounds]);
        fprintf(out, "%s_bucket{sink=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, sink, cum);
        fprintf(out, "%s_sum{sink=\"%s\"} %.9g\n", name, sink,
                (double)sl_counter_get(&h->sum) / scale);
        fprintf(out, "%s_count{sink=\"%s\"} %" PRIu64 "\n", name, sink, cum);
    }
}

static void
render_sinks(FILE *out, const struct sl_metrics_view *v)
{
#define SOFF(f) offsetof(struct sl_sink_stats, f)
    render_sink_counter(out, v, "sluice_sink_written_events_total", "Events written.",
                        SOFF(events_out));
    render_sink_counter(out, v, "sluice_sink_written_bytes_total", "Bytes written.",
                        SOFF(bytes_out));
    render_sink_counter(out, v, "sluice_sink_batches_total", "Batches written whole.",
                        SOFF(batches));
    render_sink_counter(out, v, "sluice_sink_errors_total", "Failed writes or syncs.",
                        SOFF(errors));
    render_sink_counter(out, v, "sluice_sink_retries_total",
                        "Writes put off to a retry after a failure.", SOFF(retries));
    render_sink_counter(out, v, "sluice_sink_fsyncs_total", "fdatasync calls.", SOFF(fsyncs));
    render_sink_counter(out, v, "sluice_sink_reopens_total", "Output files reopened.",
                        SOFF(reopens));
    render_sink_counter(out, v, "sluice_sink_rotations_total", "File sink: files rotated.",
                        SOFF(rotations));
    render_sink_counter(out, v, "sluice_sink_compressed_files_total",
                        "File sink: rotated files compressed.", SOFF(compressed));
    render_sink_counter(out, v, "sluice_sink_compress_failures_total",
                        "File sink: compressions that failed (retried later).",
                        SOFF(compress_failures));
    render_sink_counter(out, v, "sluice_sink_retention_deleted_files_total",
                        "File sink: rotated files deleted by max_files or max_age.",
                        SOFF(retention_deleted));
    render_sink_counter(out, v, "sluice_sink_connects_total", "TCP sink: connections established.",
                        SOFF(connects));
    render_sink_counter(out, v, "sluice_sink_disconnects_total",
                        "TCP sink: connections lost or dropped (idle closes not counted).",
                        SOFF(disconnects));
    render_sink_counter(out, v, "sluice_sink_acks_total", "sluice sink: ACK frames received.",
                        SOFF(acks));
    render_sink_counter(out, v, "sluice_sink_keepalives_total",
                        "sluice sink: KEEPALIVE frames received.", SOFF(keepalives));
    render_sink_counter(out, v, "sluice_sink_resent_batches_total",
                        "sluice sink: batches sent again after a reconnect.",
                        SOFF(resent_batches));
    render_sink_counter(out, v, "sluice_sink_ack_timeouts_total",
                        "sluice sink: connections given up after ack_timeout without an ack.",
                        SOFF(ack_timeouts));
    render_sink_counter(out, v, "sluice_sink_dropped_lines_total",
                        "sluice sink: lines longer than the receiver's max batch, dropped.",
                        SOFF(dropped_lines));
    render_sink_counter(out, v, "sluice_sink_renumbered_total",
                        "sluice sink: numbering jumps past batches the receiver holds and this "
                        "restarted queue lost (a power cut).",
                        SOFF(renumbered));
    render_sink_counter(out, v, "sluice_sink_rejected_events_total",
                        "NATS sink: events larger than the server or stream takes, rejected.",
                        SOFF(rejected));
    render_sink_counter(out, v, "sluice_sink_duplicate_publishes_total",
                        "NATS sink: resends the server recognised as duplicates.",
                        SOFF(duplicates));
    metric_head(out, "sluice_sink_up", "gauge", "1 while the sink writes, 0 while it fails.");
    for (size_t j = 0; j < v->nsinks; j++) {
        fprintf(out, "sluice_sink_up{sink=\"%s\"} %d\n", v->sinks[j]->cfg->name,
                sl_counter_get(&v->sinks[j]->stats->failing_since_ms) == 0);
    }
    render_hist(out, v, "sluice_event_latency_seconds",
                "Time from receipt to write (per chunk, first event's receipt).", SOFF(latency_ns),
                1e9);
    render_hist(out, v, "sluice_sink_batch_bytes", "Bytes per write.", SOFF(batch_bytes), 1.0);
    render_hist(out, v, "sluice_sink_fsync_duration_seconds", "fdatasync duration.", SOFF(fsync_ns),
                1e9);
    render_hist(out, v, "sluice_sink_publish_ack_seconds",
                "NATS sink: time from a publish to its positive PubAck.", SOFF(ack_ns), 1e9);
#undef SOFF
}

static void
render_admin(FILE *out, const struct sl_admin_stats *a)
{
    const struct {
        const char *name, *type, *help;
        uint64_t value;
    } rows[] = {
        {"sluice_admin_connections", "gauge", "Open admin connections.", a->connections},
        {"sluice_admin_connections_max", "gauge", "The admin connection limit.",
         a->max_connections},
        {"sluice_admin_connections_accepted_total", "counter", "Admin connections accepted.",
         a->accepted},
        {"sluice_admin_connection_limit_reached_total", "counter",
         "Times the connection limit paused the admin listener.", a->limit_reached},
        {"sluice_admin_deadline_closed_total", "counter",
         "Admin connections closed because a request overran its deadline.", a->deadline_closed},
        {"sluice_admin_accept_errors_total", "counter",
         "Admin accept() failures (EMFILE, ENFILE, ...).", a->accept_errors},
        {"sluice_admin_reloads_total", "counter",
         "POST /reload requests carried out (outputs reopened, as SIGHUP).", a->reloads},
        {"sluice_admin_reloads_refused_total", "counter",
         "POST /reload requests refused (peer not on loopback, or an Origin header).",
         a->reloads_refused},
        {"sluice_admin_unauthorized_total", "counter",
         "Admin requests refused with 401 (no or wrong bearer token).", a->unauthorized},
        {"sluice_admin_token_reloads_total", "counter",
         "SIGHUP: admin_token_file read again and its token taken.", a->token_reloads},
        {"sluice_admin_token_reload_failures_total", "counter",
         "SIGHUP: admin_token_file unusable; the token in use was kept.",
         a->token_reload_failures},
        {"sluice_tap_clients", "gauge", "Live taps (GET /tap, sluice tap) attached now.",
         a->tap.clients},
        {"sluice_tap_attached_total", "counter", "Live taps attached since start.",
         a->tap.attached},
        {"sluice_tap_refused_total", "counter",
         "GET /tap requests refused (tap off on this endpoint, a browser, or too many taps).",
         a->taps_refused},
        {"sluice_tap_lines_total", "counter", "Event lines sampled into live taps.", a->tap.lines},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        metric_head(out, rows[i].name, rows[i].type, rows[i].help);
        fprintf(out, "%s %" PRIu64 "\n", rows[i].name, rows[i].value);
    }
    metric_head(out, "sluice_tap_dropped_total", "counter",
                "Sampled event lines a live tap dropped, by reason (the pipeline never waits "
                "for a tap).");
    for (int r = 0; r < SL_TAP_DROP_NREASONS; r++) {
        fprintf(out, "sluice_tap_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
                sl_tap_drop_name((enum sl_tap_drop)r), a->tap.dropped[r]);
    }
}

static void
render_reload(FILE *out, const struct sl_reload_status *r)
{
    metric_head(out, "sluice_config_reloads_total", "counter",
                "Config reloads by result: ok (applied) or failed (refused, the old config runs).");
    fprintf(out, "sluice_config_reloads_total{result=\"ok\"} %" PRIu64 "\n", r->ok);
    fprintf(out, "sluice_config_reloads_total{result=\"failed\"} %" PRIu64 "\n", r->failed);
    metric_head(out, "sluice_config_generation", "gauge",
                "Generation of the config in force: 1 at start, +1 per applied reload.");
    fprintf(out, "sluice_config_generation %" PRIu64 "\n", r->generation);
    metric_head(out, "sluice_config_last_reload_successful", "gauge",
                "0 when the last reload was refused (the old config runs), else 1.");
    fprintf(out, "sluice_config_last_reload_successful %d\n", r->last_failed ? 0 : 1);
    metric_head(out, "sluice_config_last_reload_success_timestamp_seconds", "gauge",
                "When the config in force was applied (start or reload), Unix seconds.");
    fprintf(out, "sluice_config_last_reload_success_timestamp_seconds %.3f\n",
            (double)r->last_ok_realtime_ms / 1000.0);
    metric_head(out, "sluice_reload_sink_given_up_events_total", "counter",
                "Events that sinks removed by a reload had not written when their drain "
                "ran out of shutdown_timeout (a disk queue's are counted in bytes only).");
    fprintf(out, "sluice_reload_sink_given_up_events_total %" PRIu64 "\n", r->sink_gave_up_events);
    metric_head(out, "sluice_reload_sink_given_up_bytes_total", "counter",
                "Bytes that sinks removed by a reload had not written (or had not had "
                "acknowledged) when their drain ran out of shutdown_timeout.");
    fprintf(out, "sluice_reload_sink_given_up_bytes_total %" PRIu64 "\n", r->sink_gave_up_bytes);
}

int
sl_metrics_render(FILE *out, const struct sl_metrics_view *v)
{
    metric_head(out, "sluice_build_info", "gauge", "Version of the running sluiced.");
    fprintf(out, "sluice_build_info{version=\"%s\"} 1\n", SLUICE_VERSION);
    metric_head(out, "sluice_start_time_seconds", "gauge", "Start time, Unix seconds.");
    fprintf(out, "sluice_start_time_seconds %.3f\n", (double)v->start_realtime_ms / 1000.0);
    metric_head(out, "sluice_uptime_seconds", "gauge", "Seconds since start.");
    fprintf(out, "sluice_uptime_seconds %.3f\n",
            (double)(v->now_realtime_ms - v->start_realtime_ms) / 1000.0);
    metric_head(out, "sluice_relp_closes_skipped_total", "counter",
                "Second closes of a descriptor by librelp < 1.13 that sluiced skipped "
                "(RELP over TLS; docs/security.md).");
    fprintf(out, "sluice_relp_closes_skipped_total %" PRIu64 "\n", sl_relp_guard_skipped());
    metric_head(out, "sluice_writer_heartbeat_age_seconds", "gauge",
                "Seconds since the writer's loop last turned (it turns at least every second).");
    fprintf(out, "sluice_writer_heartbeat_age_seconds %.3f\n",
            (double)(v->now_mono_ms - v->writer_heartbeat_ms) / 1000.0);
    metric_head(out, "sluice_writer_inline_passes_total", "counter",
                "Writer passes with work that a producer thread ran right after its push, in "
                "the writer thread's place (up to 4 per push).");
    fprintf(out, "sluice_writer_inline_passes_total %" PRIu64 "\n", v->writer_inline_passes);
    if (v->admin_on) {
        render_admin(out, &v->admin);
    }
    if (v->reload != NULL) {
        render_reload(out, v->reload);
    }
    render_sources(out, v);
    render_queues(out, v);
    render_disk_queues(out, v);
    render_sinks(out, v);
    return ferror(out) ? -1 : 0;
}

static void
health_time(uint64_t realtime_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(realtime_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The config members of /healthz: generation, and a refused last reload
 * with its first error (the old config runs, so the status stays ok). */
static void
health_reload(FILE *out, const struct sl_reload_status *r)
{
    if (r == NULL) {
        return;
    }
    fprintf(out, ",\"config_generation\":%" PRIu64 ",\"last_reload\":\"%s\"", r->generation,
            r->last_failed ? "failed"
            : r->ok > 0    ? "ok"
                           : "none");
    if (r->last_failed) {
        json_t *e = json_string(r->last_error);
        char *txt = e != NULL ? json_dumps(e, JSON_ENCODE_ANY) : NULL;
        fprintf(out, ",\"reload_errors\":%u,\"reload_error\":%s", r->last_nerrors,
                txt != NULL ? txt : "\"(not UTF-8)\"");
        free(txt);
        json_decref(e);
    }
}

int
sl_metrics_health(FILE *out, const struct sl_metrics_view *v)
{
    uint64_t age = v->now_mono_ms - v->writer_heartbeat_ms;
    if (v->writer_heartbeat_ms != 0 && age > SL_WRITER_STALL_MS) {
        fprintf(out, "{\"status\":\"failing\",\"reason\":\"writer stalled\",\"seconds\":%.1f}\n",
                (double)age / 1000.0);
        return 503;
    }
    for (size_t q = 0; q < v->nqueues; q++) {
        struct sl_queue_disk_stats *dq = sl_queue_disk_stats(v->queues[q]);
        uint64_t since = sl_counter_get(&dq->failing_since_ms);
        if (atomic_load(&dq->on) && since != 0) {
            char when[32];
            health_time(since, when, sizeof(when));
            fprintf(out,
                    "{\"status\":\"failing\",\"reason\":\"queue cannot write to disk\","
                    "\"queue\":\"%s\",\"error\":\"%s\",\"since\":\"%s\"}\n",
                    sl_queue_name(v->queues[q]), strerror((int)sl_counter_get(&dq->last_errno)),
                    when);
            return 503;
        }
    }
    for (size_t j = 0; j < v->nsinks; j++) {
        const struct sl_sink_stats *st = v->sinks[j]->stats;
        uint64_t since = sl_counter_get(&st->failing_since_ms);
        struct sl_sink_health h;
        /* An acknowledging sink (nats) may write fine and still fail: its
         * health state says so, and why ("stream X full"). */
        sl_sink_health(v->sinks[j], &h);
        if (since != 0 || !h.ok) {
            char when[32], detail[sizeof(h.reason)];
            size_t o = 0;
            for (const char *p = h.reason; *p != '\0' && o + 1 < sizeof(detail); p++) {
                detail[o++] = *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p;
            }
            detail[o] = '\0';
            health_time(since != 0 ? since : (uint64_t)h.since_ms, when, sizeof(when));
            fprintf(out,
                    "{\"status\":\"failing\",\"reason\":\"sink failing\",\"sink\":\"%s\","
                    "\"error\":\"%s\",\"detail\":\"%s\",\"since\":\"%s\"}\n",
                    v->sinks[j]->cfg->name, strerror((int)sl_counter_get(&st->last_errno)),
                    detail, when);
            return 503;
        }
    }
    fprintf(out, "{\"status\":\"ok\",\"uptime_seconds\":%.0f",
            (double)(v->now_realtime_ms - v->start_realtime_ms) / 1000.0);
    health_reload(out, v->reload);
    fputs("}\n", out);
    return 200;
}
