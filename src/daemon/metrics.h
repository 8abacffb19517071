/*
 * metrics — the Prometheus text exposition (GET /metrics) and the health
 * verdict (GET /healthz), computed from the counters every thread keeps.
 *
 * Reads only atomics (relaxed) and immutable config, so it may run on the
 * main thread while the producers and the writer work.  No libevent here:
 * the output goes to a FILE (open_memstream) and is tested alone.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/config.h"
#include "sluice/queue.h"
#include "sluice/stats.h"

struct sl_sink;
struct sl_source_obj;

/* The config reloads (src/daemon/reload.c; main thread only, as the
 * exposition is). */
struct sl_reload_status {
    uint64_t generation; /* 1 at start, +1 per applied reload */
    uint64_t ok;         /* reloads applied */
    uint64_t failed;     /* reloads refused: a broken config or a change not applied live */
    uint64_t last_ok_realtime_ms; /* when the config in force was applied (start or reload) */
    bool last_failed;             /* the last reload was refused: the old config runs */
    unsigned last_nerrors;        /* its errors */
    char last_error[256];         /* its first error ("FILE:LINE: message") */
    /* What sinks removed (or succeeded) by reloads gave up when their
     * drain ran out of shutdown_timeout, summed; events of a disk queue's
     * sinks are not counted (only their bytes) */
    uint64_t sink_gave_up_events;
    uint64_t sink_gave_up_bytes;
};

/* What the daemon exposes: its runtime objects, listed in the order the
 * exposition shows them (every pointer borrowed). */
struct sl_metrics_view {
    struct sl_source_obj *const *sources; /* each with its per-thread counters */
    size_t nsources;
    struct sl_queue *const *queues;
    size_t nqueues;
    struct sl_sink *const *sinks; /* each with its cfg (name) and stats */
    size_t nsinks;
    uint64_t start_realtime_ms;
    /* CLOCK_MONOTONIC ms of the writer's last loop turn (sl_writer_heartbeat_ms) */
    uint64_t writer_heartbeat_ms;
    uint64_t writer_inline_passes; /* sl_writer_inline_passes */
    uint64_t now_mono_ms;
    uint64_t now_realtime_ms;
    bool admin_on;                /* the admin endpoint runs (always, when serving) */
    struct sl_admin_stats admin;  /* its counters, copied when the view was taken */
    struct sl_tls *admin_tls;     /* its TLS (admin_tls = on), or NULL */
    const struct sl_reload_status *reload; /* NULL: not shown */
};

/* The writer counts as stalled when its loop has not turned for this long. */
#define SL_WRITER_STALL_MS 5000

/* Sets the histogram bounds of a sink's stats (before any thread runs). */
void sl_metrics_init_sink(struct sl_sink_stats *st);

/* Writes the whole exposition (text format 0.0.4).  Returns 0 or -1. */
int sl_metrics_render(FILE *out, const struct sl_metrics_view *v);

/*
 * Writes a small JSON health document to out and returns the HTTP status:
 * 200 when the writer's loop runs and every sink writes; 503 naming the
 * stalled writer or the first failing sink (with its error and since when).
 */
int sl_metrics_health(FILE *out, const struct sl_metrics_view *v);

#endif
