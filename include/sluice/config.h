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
 *
 * Sources and sinks have a type (a module listed in src/daemon/registry.c):
 * the common struct below holds the keys of the kind, type_conf the type's
 * own struct, defined in the module's private header (e.g.
 * src/sink/sink_file.h).  The key tables are in sluice/conf.h's terms.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sluice/codec.h" /* struct sl_codec_opts */
#include "util/allow.h"   /* struct sl_allow */
#include "util/tls.h"     /* struct sl_tls_config */

struct sl_codec_type; /* sluice/codec.h: a codec, listed in src/daemon/registry.c */
struct sl_conf_type;  /* sluice/conf.h: a module type, listed in src/daemon/registry.c */

/* Bits of sl_source_config.add_fields. */
#define SL_FIELD_TIME 0x1u   /* "received_at": RFC 3339, microseconds, UTC */
#define SL_FIELD_SOURCE 0x2u /* "source": the source's name */
#define SL_FIELD_PEER 0x4u   /* "peer": "addr:port" of the sender */
#define SL_FIELD_HOST 0x8u   /* "host": this machine's host name */
#define SL_FIELD_PEER_CERT 0x10u /* "peer_cert": the TLS client certificate's subject */

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
    char *admin_token_file;    /* NULL: no token (allowed on loopback only) */
    bool admin_token_set;      /* the file was read: requests need "Bearer <token>" */
    uint8_t admin_token_sha256[32]; /* SHA-256 of the token; the token itself is not kept */
    unsigned admin_public;     /* SL_ADMIN_PUBLIC_* paths served without the token */
    /* admin_tls*: TLS on the admin endpoint (a server; client_auth is set at
     * load: required when admin_tls_ca_file is set, else none) */
    struct sl_tls_config admin_tls;
};

#define SL_ADMIN_PUBLIC_METRICS 0x1u /* GET /metrics */
#define SL_ADMIN_PUBLIC_HEALTHZ 0x2u /* GET /healthz */

struct sl_source_config {
    char *name;                      /* [A-Za-z0-9_.-]{1,64}, unique among sources */
    int line;                        /* line of the [source NAME] header */
    const struct sl_conf_type *type; /* &sl_source_tcp_conf, ... (daemon/registry.h) */
    void *type_conf;                 /* owned, the type's own struct (NULL if it has none);
                                        read-only once loaded */
    char *listen;                    /* as written: "127.0.0.1:5170", "[::1]:5170" */
    struct sockaddr_storage addr;    /* resolved once at load (first getaddrinfo answer) */
    socklen_t addrlen;
    const struct sl_codec_type *codec; /* the registry's codec: &sl_codec_json, ... */
    struct sl_codec_opts codec_opts;   /* the codec's keys (syslog_format, syslog_timezone) */
    char *queue;              /* queue name as written */
    size_t queue_index;       /* index into sl_config.queues (always valid) */
    size_t max_line_bytes;    /* default 64 KiB, range 16 B .. 64 MiB */
    unsigned add_fields;      /* SL_FIELD_* bits, default 0 */
    struct sl_allow allow;    /* `allow`: addresses served; n == 0: every address */
    size_t recv_buffer_bytes; /* SO_RCVBUF; 0 = kernel default (udp default 4 MiB);
                                 at most 1 GiB */
};

/* Room a chunk keeps beyond max_line_bytes: the newline and added fields. */
#define SL_CONFIG_CHUNK_HEADROOM 4096

enum sl_queue_type { SL_QUEUE_MEMORY, SL_QUEUE_DISK };
enum sl_queue_fsync { SL_QUEUE_FSYNC_NONE, SL_QUEUE_FSYNC_INTERVAL, SL_QUEUE_FSYNC_BATCH };

struct sl_queue_config {
    char *name; /* unique among queues; at least one sink drains every queue */
    int line;
    size_t capacity;    /* bytes; default 16 MiB, at least 2 * chunk_bytes */
    size_t chunk_bytes; /* default 256 KiB, range 4 KiB .. 16 MiB, ≥ max_line_bytes + 4 KiB */
    enum sl_queue_type type;    /* default memory */
    /* type = disk only (docs/configuration.md): */
    char *path;                 /* NULL: $STATE_DIRECTORY/queues/NAME or var/lib/queues/NAME */
    uint64_t max_size;          /* bytes of segment files; default 1 GiB */
    enum sl_queue_fsync fsync;  /* default interval */
    uint64_t fsync_interval_ms; /* default 500 ms */
    int when_full;      /* enum sl_when_full (sluice/queue.h), default block */
};

struct sl_sink_config {
    char *name;
    int line;
    const struct sl_conf_type *type; /* &sl_sink_file_conf, ... (daemon/registry.h) */
    void *type_conf;                 /* owned: struct sl_sink_file_config, ... */
    char *queue;
    size_t queue_index; /* index into sl_config.queues (always valid) */

    size_t batch_max_bytes;    /* default 1 MiB, range 4 KiB .. 1 GiB; at most half
                                  the queue's capacity (a default above is lowered) */
    uint64_t batch_timeout_ms; /* default 0: write as soon as the queue is drained;
                                  at most 24 h */
};

/*
 * What the file said, section by section, for a reload's comparison
 * (src/daemon/reload.c): the keys as written (values after inih's trimming,
 * before parsing), sorted by name, each with its table's SL_CONF_RELOAD
 * flag.  A section is "the same" when its kind, name and every key and value
 * are.  Values a key refers to outside the file (a certificate's content, a
 * token file's) are not part of it.
 */
struct sl_config_key_value {
    char *name;
    char *value;
    int line;
    bool reload; /* SL_CONF_RELOAD: may change without rebuilding the object */
};

struct sl_config_section {
    int kind;                         /* enum sl_conf_section (sluice/conf.h) */
    char *name;                       /* NULL for [daemon] */
    int line;                         /* of the header */
    struct sl_config_key_value *keys; /* sorted by name */
    size_t nkeys;
    bool stale; /* adopted by a reload but its object did not start: the next
                 * reload compares it as changed, so it is tried again */
};

struct sl_config {
    char *path;                         /* the file it was loaded from */
    struct sl_config_section *sections; /* in file order; [daemon] only when written */
    size_t nsections;
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
 * sl_config_load for a command line: on failure prints every error, one a
 * line, then "PROG: N error(s) in PATH" on stderr, and returns NULL.
 * (src/conf/config_report.c; used by sluiced and sluice.)
 */
struct sl_config *sl_config_load_report(const char *path, const char *prog);

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
 * The key tables of the registry, for the docs test and tooling.  Fills
 * *info with the i-th key of all sections (daemon, source, queue, sink order;
 * in each, the kind's common keys, then each type's keys in registry order)
 * and returns 0, or returns -1 when i is past the last key.  All strings are
 * static.  Thread: any.
 */
struct sl_config_key_info {
    const char *section; /* "daemon", "source", "queue" or "sink" */
    const char *name;    /* key name as written in the file */
    const char *def;     /* default as written, "" when required or none */
    const char *only;    /* "tcp", "udp", "file": valid for that type (and any later
                            type of the kind with a key of that name) only; NULL: all */
    bool required;
    bool reload;     /* may change on a config reload */
    const char *doc; /* one line */
};
int sl_config_key_info(size_t i, struct sl_config_key_info *info);

#endif
