/*
 * config — the daemon's configuration, loaded once from one INI file.
 *
 * sl_config_load() parses the file with inih, applies defaults, checks every
 * value and every cross-reference (a source or sink naming a missing queue,
 * two sources on one address, ...) and returns an immutable struct.  It
 * records *every* error as "FILE:LINE: message" and keeps going, so one run
 * reports every mistake.
 *
 * Ownership: the returned config is owned by the caller and freed with
 * sl_config_free().  After loading, threads only borrow it (const) until the
 * daemon exits.  Thread: main only (sl_config_load resolves host names and
 * reads the file; the value parsers and sl_config_key_info are safe anywhere).
 *
 * Every value below has been range-checked and every default applied: a
 * loaded config needs no further validation.  The key reference (syntax,
 * defaults, meaning) is docs/configuration.md.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Until the registry names them: struct sl_source_type (sluice/source.h) is the type. */
enum sl_source_kind { SL_SOURCE_TCP, SL_SOURCE_UDP };
enum sl_codec { SL_CODEC_JSON, SL_CODEC_RAW };
enum sl_sink_type { SL_SINK_FILE, SL_SINK_TCP };
enum sl_fsync { SL_FSYNC_NONE, SL_FSYNC_BATCH, SL_FSYNC_INTERVAL };
enum sl_compress { SL_COMPRESS_NONE, SL_COMPRESS_GZIP, SL_COMPRESS_ZSTD };
enum sl_balance { SL_BALANCE_FAILOVER, SL_BALANCE_ROUND_ROBIN };

/* Bits of sl_source_config.add_fields. */
#define SL_FIELD_TIME 0x1u   /* "received_at": RFC 3339, microseconds, UTC */
#define SL_FIELD_SOURCE 0x2u /* "source": the source's name */
#define SL_FIELD_PEER 0x4u   /* "peer": "addr:port" of the sender */
#define SL_FIELD_HOST 0x8u   /* "host": this machine's host name */

struct sl_daemon_config {
    unsigned producer_threads;    /* default: number of online CPUs */
    int log_level;                /* LOG_ERR .. LOG_DEBUG (syslog.h), default LOG_INFO */
    uint64_t shutdown_timeout_ms; /* drain bound at SIGTERM, default 30 s */
    char *hostname;               /* for add_fields host; default gethostname().  Always
                                     matches [A-Za-z0-9_.-]{1,253}, so it needs no
                                     JSON escaping. */
    char *admin_listen;           /* as written; "off" disables the admin endpoint */
    bool admin_enabled;           /* false when admin_listen = off */
    struct sockaddr_storage admin_addr;
    socklen_t admin_addrlen;
};

struct sl_source_config {
    char *name; /* [A-Za-z0-9_.-]{1,64}, unique among sources */
    int line;   /* line of the [source NAME] header */
    enum sl_source_kind type;
    char *listen;                 /* as written: "127.0.0.1:5170", "[::1]:5170" */
    struct sockaddr_storage addr; /* resolved once at load (first getaddrinfo answer) */
    socklen_t addrlen;
    enum sl_codec codec;
    char *queue;              /* queue name as written */
    size_t queue_index;       /* index into sl_config.queues (always valid) */
    size_t max_line_bytes;    /* default 64 KiB, range 16 B .. 64 MiB */
    unsigned max_connections; /* tcp: per source (all threads), default 10000 */
    uint64_t idle_timeout_ms; /* tcp: 0 = never; default 5 min, at most 24 h */
    unsigned add_fields;      /* SL_FIELD_* bits, default 0 */
    size_t recv_buffer_bytes; /* SO_RCVBUF; 0 = kernel default (udp default 4 MiB);
                                 at most 1 GiB */
};

/* Room a chunk keeps beyond max_line_bytes: the newline and added fields. */
#define SL_CONFIG_CHUNK_HEADROOM 4096

struct sl_queue_config {
    char *name; /* unique among queues; at least one sink drains every queue */
    int line;
    size_t capacity;    /* bytes; default 16 MiB, at least 2 * chunk_bytes */
    size_t chunk_bytes; /* default 256 KiB, range 4 KiB .. 16 MiB, ≥ max_line_bytes + 4 KiB */
};

/* tcp sinks: one forwarding target, resolved once at load. */
struct sl_sink_target {
    char *text; /* as written: "10.0.0.2:5170", "[::1]:5170", "agg:5170" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

#define SL_SINK_MAX_TARGETS 16

struct sl_sink_config {
    char *name;
    int line;
    enum sl_sink_type type;
    char *queue;
    size_t queue_index; /* index into sl_config.queues (always valid) */

    /* type = file */
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

    /* type = tcp */
    char *target;                   /* as written */
    struct sl_sink_target *targets; /* 1 .. SL_SINK_MAX_TARGETS, in order */
    size_t ntargets;
    enum sl_balance balance;     /* default failover */
    uint64_t retry_initial_ms;   /* reconnect backoff: first delay (default 100 ms) */
    uint64_t retry_max_ms;       /* ... longest delay (default 30 s) */
    uint64_t connect_timeout_ms; /* default 5 s */
    uint64_t write_timeout_ms;   /* nothing acknowledged this long: peer gone (30 s) */
    uint64_t keepalive_ms;       /* TCP keepalive idle time; 0 = off (default 30 s) */
    uint64_t idle_timeout_ms;    /* close an idle connection; 0 = never (1 min) */

    size_t batch_max_bytes;    /* default 1 MiB, range 4 KiB .. 1 GiB; at most half
                                  the queue's capacity (a default above is lowered) */
    uint64_t batch_timeout_ms; /* default 0: write as soon as the queue is drained;
                                  at most 24 h */
};

struct sl_config {
    char *path; /* the file it was loaded from */
    struct sl_daemon_config daemon;
    struct sl_source_config *sources;
    size_t nsources;
    struct sl_queue_config *queues;
    size_t nqueues;
    struct sl_sink_config *sinks;
    size_t nsinks;
};

/* Errors collected while loading; caller-owned, first error first. */
struct sl_config_errors {
    char **msgs; /* "FILE:LINE: message" (LINE 0 when no line applies) */
    size_t count;
    size_t cap;
};

/*
 * Loads and checks PATH.  Returns a new config (caller frees with
 * sl_config_free) or NULL when there was any error; then every error is
 * appended to errs: errors of single lines in file order (a missing key
 * carries its section header's line but follows the section's other
 * errors), then cross-reference errors, then errors about the whole file
 * (LINE 0: cannot open, no source/queue/sink).  PATH may be any readable
 * file (a FIFO, /dev/stdin, a process substitution): at most 1 MiB + 1 bytes
 * are read, and a larger file is refused.  PATH appears in the messages
 * exactly as given.  errs must be zero-initialised by the caller
 * (or hold earlier errors) and released with sl_config_errors_fini(); errs
 * may be NULL to discard the messages.
 */
struct sl_config *sl_config_load(const char *path, struct sl_config_errors *errs);

/*
 * Frees cfg and everything it owns; sl_config_free(NULL) is a no-op.
 * sl_config_errors_fini() frees the messages and zeroes *errs so it can be
 * reused.
 */
void sl_config_free(struct sl_config *cfg);
void sl_config_errors_fini(struct sl_config_errors *errs);

/*
 * One line describing the topology, printed by `sluiced -n`:
 *   ok: 1 source (app tcp 127.0.0.1:5170 json -> main), 1 queue (main 16MiB),
 *   1 sink (archive file /x -> main)
 * (one line, no newline).  Writes at most len bytes including the NUL; a
 * longer summary is cut short and always NUL-terminated when len > 0.
 */
void sl_config_summary(const struct sl_config *cfg, char *buf, size_t len);

/*
 * Value parsers, exposed for tests and reuse.  Each returns 0 and stores the
 * value, or -1 for a malformed input or one that overflows its type (the
 * output is then untouched).  They check syntax only; per-key ranges are
 * checked by sl_config_load().
 *   sizes:      "4096" (bytes), "64KiB", "16MiB", "1GiB"; decimal digits,
 *               then optionally one space and the unit; no sign, no fraction
 *   durations:  "250ms", "5s", "2min" (same syntax); a unit is required
 *               except for "0"
 *   addresses:  "127.0.0.1:5170", "[::1]:5170", "localhost:5170"; port
 *               1..65535; a name is resolved with getaddrinfo (may block)
 *               and the first answer is used
 */
int sl_config_parse_size(const char *s, size_t *out);
int sl_config_parse_duration_ms(const char *s, uint64_t *out);
int sl_config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/*
 * The key tables, for the docs test and tooling.  Fills *info with the i-th
 * key of all sections (daemon, source, queue, sink order, then table order)
 * and returns 0, or returns -1 when i is past the last key.  All strings are
 * static.  Thread: any.
 */
struct sl_config_key_info {
    const char *section; /* "daemon", "source", "queue" or "sink" */
    const char *name;    /* key name as written in the file */
    const char *def;     /* default as written, "" when required or none */
    const char *only;    /* "tcp", "udp", "file": valid for that type only; NULL: all */
    bool required;
    const char *doc; /* one line */
};
int sl_config_key_info(size_t i, struct sl_config_key_info *info);

#endif
