/*
 * sink_file — the file sink's own config (its keys: sink_file_conf.c).
 *
 * Hung off struct sl_sink_config's type_conf when type = file; owned by the
 * config, read-only once loaded.  Thread: any (borrowed from the config).
 */
#ifndef SLUICE_SINK_FILE_H
#define SLUICE_SINK_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/config.h"
#include "sluice/sink.h"

/* The file sink type (sink_file.c); its registry entry (sink_file_conf.c)
 * points at it. */
extern const struct sl_sink_ops sl_sink_file_ops;

enum sl_fsync { SL_FSYNC_NONE, SL_FSYNC_BATCH, SL_FSYNC_INTERVAL };
enum sl_compress { SL_COMPRESS_NONE, SL_COMPRESS_GZIP, SL_COMPRESS_ZSTD };

struct sl_sink_file_config {
    char *path;                  /* path template as written (required; no two sinks
                                    share one): strftime fields and %{source}, see
                                    pathtmpl.h */
    const char *source_name;     /* borrowed from sl_config.sources: the one source feeding
                                    the queue when path uses %{source}, else NULL */
    mode_t file_mode;            /* default 0640 */
    mode_t dir_mode;             /* default 0750, for create_dirs */
    bool create_dirs;            /* default no */
    enum sl_fsync fsync;         /* default none */
    uint64_t fsync_interval_ms;  /* default 1 s, range 1 ms .. 24 h; used by fsync = interval */
    uint64_t rotate_bytes;       /* 0 = no size rotation (default) */
    uint64_t rotate_interval_ms; /* 0 = no time rotation (default); divides 24 h */
    unsigned max_files;          /* rotated files kept at most; 0 = no limit (default) */
    uint64_t max_age_ms;         /* rotated files older than this are deleted; 0 = keep */
    enum sl_compress compress;   /* rotated files; default none */
};

/* The file config of a sink of type file. */
static inline const struct sl_sink_file_config *
sl_sink_file_config(const struct sl_sink_config *cfg)
{
    return cfg->type_conf;
}

#endif
