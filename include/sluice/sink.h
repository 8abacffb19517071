/*
 * sink — the interface every output implements (file now; tcp forward and
 * others later).  The writer owns batching, retries and chunk hand-back;
 * a sink only moves bytes and applies its durability policy.
 *
 * Results: SL_SINK_OK (done, *written may still be short of the total: the
 * writer continues from there), SL_SINK_RETRY (nothing more can be written
 * now: the writer keeps the bytes and retries with backoff), SL_SINK_ERROR
 * (a set-up error; only from open).
 *
 * Thread: the writer thread only, except open (main, before the threads
 * start, so errors are fatal with a clear message) and close (main, after
 * the writer has stopped).
 */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sluice/config.h"
#include "sluice/stats.h"

enum sl_sink_result { SL_SINK_OK, SL_SINK_RETRY, SL_SINK_ERROR };

struct sl_sink;

struct sl_sink_ops {
    const char *type;
    int (*open)(struct sl_sink *s);
    enum sl_sink_result (*write)(struct sl_sink *s, const struct iovec *iov, int iovcnt,
                                 size_t *written);
    /* After each completed batch; final = the daemon is stopping. */
    enum sl_sink_result (*flush)(struct sl_sink *s, bool final);
    /* SIGHUP: reopen outputs (logrotate "create" style). */
    void (*reopen)(struct sl_sink *s);
    /* About once a second: notice a renamed or deleted file, interval fsync. */
    void (*tick)(struct sl_sink *s, uint64_t now_ms);
    void (*close)(struct sl_sink *s);
};

struct sl_sink {
    const struct sl_sink_ops *ops;
    const struct sl_sink_config *cfg; /* borrowed */
    struct sl_sink_stats *stats;      /* borrowed, written by the writer */
    void *priv;                       /* the sink type's state, owned */
};

extern const struct sl_sink_ops sl_sink_file_ops;

/* The ops for a configured sink type. */
const struct sl_sink_ops *sl_sink_ops_for(enum sl_sink_type type);

#endif
