/*
 * config — loads one INI file into an immutable struct sl_config.
 *
 * Runs on the main thread, once at start-up (and for `sluiced -n`).  Owns
 * nothing once sl_config_load() returns: the config belongs to the caller,
 * the error strings to the caller's struct sl_config_errors.  This is the
 * only file that knows inih.
 *
 * DESIGN
 * Four steps, each with one job:
 *
 *  1. config_read_file() reads the whole file into memory, refusing more
 *     than CONFIG_FILE_MAX bytes while it reads: a FIFO, a device such as
 *     /dev/zero or a shell's process substitution has no size to check
 *     first, and a config needs no more.
 *  2. config_read_line_cb(), the inih reader, hands out whole physical lines
 *     of that text and counts them, so c->lineno is the line inih is
 *     working on whenever the handler runs.  It also handles what Debian's
 *     inih build (no INI_HANDLER_LINENO, no handler call for a new section,
 *     200-byte stack line buffer) cannot report line by line:
 *       - section headers: inih never calls the handler for a section that
 *         has no keys and silently cuts names at 49 bytes, so the reader
 *         parses headers itself and hands inih an empty line instead;
 *       - lines that are neither a header nor "key = value": inih only
 *         returns the number of the first one, we report each;
 *       - lines longer than inih's buffer: fgets-style reading would split
 *         them and inih would parse the pieces as separate lines, so they
 *         are reported and skipped whole;
 *       - leading whitespace is stripped, so an indented key is an ordinary
 *         key and never a multi-line continuation of the previous value.
 *  3. config_key_cb(), the inih handler, looks the key up in the table of
 *     the current section, rejects unknown and duplicate keys, and parses
 *     the value into the section's struct.  inih's strings live only for
 *     the call: parsers copy what they keep.  It always returns 1 so inih
 *     keeps going.
 *  4. After the file: per-section checks (required keys, keys that belong
 *     to another type, ranges between keys) and defaults, then the
 *     cross-references between sections.
 *
 * One table per section kind lists each key's name, parser, field, range,
 * default (as it would be written in the file, parsed by the same parser)
 * and a one-line doc; the tables drive parsing, defaults and the docs test.
 *
 * Every error is recorded with its line and the messages are sorted at the
 * end: per-line errors in file order, then cross-references, then errors
 * that concern the whole file (line 0).
 */
#include "sluice/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <ini.h>

#include "sink/pathtmpl.h"

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define MS_PER_S ((uint64_t)1000)
#define MS_PER_MIN (60 * MS_PER_S)
#define MS_PER_HOUR (60 * MS_PER_MIN)
#define MS_PER_DAY (24 * MS_PER_HOUR)

#define CONFIG_NAME_MAX 64            /* section names: bytes */
#define CONFIG_HOSTNAME_MAX 253       /* RFC 1035 text form */
#define CONFIG_MAX_KEYS 32            /* per section kind (bits of config_meta.bad) */
#define CONFIG_SHOW_MAX 80            /* user text quoted in a message */
#define CONFIG_FILE_MAX (1024 * 1024) /* bytes; a config is a few KiB */
#define CONFIG_READ_MIN 4096          /* first read buffer, bytes */

/* Enum fields are written through int *; make sure that is their size. */
_Static_assert(sizeof(enum sl_source_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sl_codec) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sl_sink_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sl_fsync) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sl_compress) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sl_balance) == sizeof(int), "enum size");

enum config_kind { CONFIG_DAEMON, CONFIG_SOURCE, CONFIG_QUEUE, CONFIG_SINK, CONFIG_NKINDS };

/* Error phases: sort order of the messages. */
enum config_phase { PHASE_LINE, PHASE_XREF, PHASE_FILE };

struct config_choice {
    const char *name;
    int value;
};

struct config_key;

/*
 * Parses value into obj (the section's struct) at key->offset.  Returns 0,
 * or -1 with the reason, e.g. "expected tcp or udp, got \"x\"", in why.
 * Copies what it keeps: value is borrowed for the call only.
 */
typedef int (*config_parse_fn)(const struct config_key *key, const char *value, void *obj,
                               char *why, size_t whylen);

#define KEY_REQUIRED 0x1u

struct config_key {
    const char *name;
    config_parse_fn parse;
    size_t offset;
    uint64_t min, max;                   /* numbers, sizes, durations */
    const struct config_choice *choices; /* enums: NULL-terminated */
    const char *def;                     /* default as written; NULL: none or computed */
    const char *def_udp;                 /* sources: default for type udp, if different */
    const char *def_doc;                 /* default as documented, if def does not say it */
    unsigned flags;                      /* KEY_* */
    unsigned types;                      /* 1u << type for each type it applies to; 0: all */
    const char *doc;
};

struct config_kind_desc {
    const char *name;
    const struct config_key *keys;
    size_t nkeys;
    const struct config_choice *types; /* values of the "type" key; NULL for daemon */
};

/* One per accepted section of the file, in file order. */
struct config_meta {
    enum config_kind kind;
    size_t index; /* into cfg->sources, queues or sinks */
    int line;
    int end_line;                  /* last line of the section (before the next header) */
    int key_line[CONFIG_MAX_KEYS]; /* line where each key was set; 0: not set */
    unsigned bad;                  /* bit per key: set, but the value was rejected */
    int type;                      /* value of "type", or -1 when unknown */
};

struct config_error {
    char *msg;
    int sort_line; /* position in the sorted list; usually the line in msg */
    enum config_phase phase;
    size_t seq;
};

enum { CUR_NONE = -1, CUR_SKIP = -2 }; /* config_ctx.cur when not a section index */

struct config_ctx {
    const char *path;
    char *text; /* the whole file, NUL after its last byte; lines are cut in place */
    size_t len; /* bytes in text */
    size_t pos; /* start of the next line in text */
    int lineno;
    struct sl_config *cfg;
    struct config_meta *metas;
    size_t nmetas, capmetas;
    long cur;         /* index into metas, CUR_NONE before any section, CUR_SKIP in a bad one */
    long daemon_meta; /* index of the [daemon] meta, or -1 */
    size_t cap[CONFIG_NKINDS]; /* allocated entries of cfg->sources, queues, sinks */
    struct config_error *errs;
    size_t nerrs, caperrs;
    bool oom;
};

/* ---- key tables ---------------------------------------------------------------------- */

static int key_enum(const struct config_key *, const char *, void *, char *, size_t);
static int key_uint(const struct config_key *, const char *, void *, char *, size_t);
static int key_size(const struct config_key *, const char *, void *, char *, size_t);
static int key_duration(const struct config_key *, const char *, void *, char *, size_t);
static int key_name(const struct config_key *, const char *, void *, char *, size_t);
static int key_path(const struct config_key *, const char *, void *, char *, size_t);
static int key_hostname(const struct config_key *, const char *, void *, char *, size_t);
static int key_listen(const struct config_key *, const char *, void *, char *, size_t);
static int key_admin(const struct config_key *, const char *, void *, char *, size_t);
static int key_fields(const struct config_key *, const char *, void *, char *, size_t);
static int key_mode(const struct config_key *, const char *, void *, char *, size_t);
static int key_bool(const struct config_key *, const char *, void *, char *, size_t);
static int key_template(const struct config_key *, const char *, void *, char *, size_t);
static int key_targets(const struct config_key *, const char *, void *, char *, size_t);

static const struct config_choice log_levels[] = {
    {"err", LOG_ERR},   {"warning", LOG_WARNING}, {"notice", LOG_NOTICE},
    {"info", LOG_INFO}, {"debug", LOG_DEBUG},     {NULL, 0},
};
static const struct config_choice source_types[] = {
    {"tcp", SL_SOURCE_TCP},
    {"udp", SL_SOURCE_UDP},
    {NULL, 0},
};
static const struct config_choice codecs[] = {
    {"json", SL_CODEC_JSON},
    {"raw", SL_CODEC_RAW},
    {NULL, 0},
};
static const struct config_choice sink_types[] = {
    {"file", SL_SINK_FILE},
    {"tcp", SL_SINK_TCP},
    {NULL, 0},
};
static const struct config_choice compressions[] = {
    {"none", SL_COMPRESS_NONE},
    {"gzip", SL_COMPRESS_GZIP},
    {"zstd", SL_COMPRESS_ZSTD},
    {NULL, 0},
};
static const struct config_choice balances[] = {
    {"failover", SL_BALANCE_FAILOVER},
    {"round_robin", SL_BALANCE_ROUND_ROBIN},
    {NULL, 0},
};
static const struct config_choice fsyncs[] = {
    {"none", SL_FSYNC_NONE},
    {"batch", SL_FSYNC_BATCH},
    {"interval", SL_FSYNC_INTERVAL},
    {NULL, 0},
};
static const struct config_choice field_names[] = {
    {"time", SL_FIELD_TIME},
    {"source", SL_FIELD_SOURCE},
    {"peer", SL_FIELD_PEER},
    {"host", SL_FIELD_HOST},
    {NULL, 0},
};

#define TCP_ONLY (1u << SL_SOURCE_TCP)
#define FILE_ONLY (1u << SL_SINK_FILE)
#define TCP_SINK_ONLY (1u << SL_SINK_TCP)

#define D_OFF(f) offsetof(struct sl_daemon_config, f)
static const struct config_key daemon_keys[] = {
    {.name = "producer_threads",
     .parse = key_uint,
     .offset = D_OFF(producer_threads),
     .min = 1,
     .max = 64,
     .def_doc = "number of online CPUs (at most 64)",
     .doc = "threads that receive and frame events"},
    {.name = "log_level",
     .parse = key_enum,
     .offset = D_OFF(log_level),
     .choices = log_levels,
     .def = "info",
     .doc = "least important message logged: err, warning, notice, info, debug"},
    {.name = "shutdown_timeout",
     .parse = key_duration,
     .offset = D_OFF(shutdown_timeout_ms),
     .min = 1,
     .max = MS_PER_DAY,
     .def = "30s",
     .doc = "how long a stop may take to write out what was received"},
    {.name = "hostname",
     .parse = key_hostname,
     .offset = D_OFF(hostname),
     .def_doc = "gethostname()",
     .doc = "value of the host field (add_fields = host)"},
    {.name = "admin_listen",
     .parse = key_admin,
     .offset = D_OFF(admin_listen),
     .def = "127.0.0.1:5171",
     .doc = "address of the HTTP endpoint for /metrics and /healthz, or off"},
};

#define SRC_OFF(f) offsetof(struct sl_source_config, f)
static const struct config_key source_keys[] = {
    {.name = "type",
     .parse = key_enum,
     .offset = SRC_OFF(type),
     .choices = source_types,
     .flags = KEY_REQUIRED,
     .doc = "protocol: tcp or udp"},
    {.name = "listen",
     .parse = key_listen,
     .offset = SRC_OFF(listen),
     .flags = KEY_REQUIRED,
     .doc = "address to bind: IPv4:port, [IPv6]:port or name:port"},
    {.name = "codec",
     .parse = key_enum,
     .offset = SRC_OFF(codec),
     .choices = codecs,
     .def = "json",
     .doc = "json: each line is a JSON object; raw: any line, wrapped"},
    {.name = "queue",
     .parse = key_name,
     .offset = SRC_OFF(queue),
     .flags = KEY_REQUIRED,
     .doc = "name of the queue the events go to"},
    {.name = "max_line_bytes",
     .parse = key_size,
     .offset = SRC_OFF(max_line_bytes),
     .min = 16,
     .max = 64 * MIB,
     .def = "64KiB",
     .doc = "longer events are discarded and counted"},
    {.name = "max_connections",
     .parse = key_uint,
     .offset = SRC_OFF(max_connections),
     .min = 1,
     .max = 1000000,
     .def = "10000",
     .types = TCP_ONLY,
     .doc = "open connections at most, over all threads"},
    {.name = "idle_timeout",
     .parse = key_duration,
     .offset = SRC_OFF(idle_timeout_ms),
     .max = MS_PER_DAY,
     .def = "5min",
     .types = TCP_ONLY,
     .doc = "close a connection silent this long; 0 = never"},
    {.name = "add_fields",
     .parse = key_fields,
     .offset = SRC_OFF(add_fields),
     .def = "none",
     .doc = "fields sluice adds to each event: time, source, peer, host, or none"},
    {.name = "recv_buffer",
     .parse = key_size,
     .offset = SRC_OFF(recv_buffer_bytes),
     .max = GIB,
     .def = "0",
     .def_udp = "4MiB",
     .def_doc = "0 (kernel default); udp: 4MiB",
     .doc = "socket receive buffer (SO_RCVBUF); 0 = kernel default"},
};

#define Q_OFF(f) offsetof(struct sl_queue_config, f)
static const struct config_key queue_keys[] = {
    {.name = "capacity",
     .parse = key_size,
     .offset = Q_OFF(capacity),
     .min = 8 * KIB,
     .max = 64 * GIB,
     .def = "16MiB",
     .doc = "memory bound in bytes, at least 2 x chunk_size"},
    {.name = "chunk_size",
     .parse = key_size,
     .offset = Q_OFF(chunk_bytes),
     .min = 4 * KIB,
     .max = 16 * MIB,
     .def = "256KiB",
     .doc = "bytes per chunk, the unit of hand-off; at least max_line_bytes + 4KiB"},
};

#define SNK_OFF(f) offsetof(struct sl_sink_config, f)
static const struct config_key sink_keys[] = {
    {.name = "type",
     .parse = key_enum,
     .offset = SNK_OFF(type),
     .choices = sink_types,
     .flags = KEY_REQUIRED,
     .doc = "kind of sink: file or tcp"},
    {.name = "queue",
     .parse = key_name,
     .offset = SNK_OFF(queue),
     .flags = KEY_REQUIRED,
     .doc = "name of the queue this sink drains"},
    {.name = "path",
     .parse = key_template,
     .offset = SNK_OFF(path),
     .flags = KEY_REQUIRED,
     .types = FILE_ONLY,
     .doc = "file to append events to; may contain %Y %m %d %H %M %S ... and %{source}"},
    {.name = "file_mode",
     .parse = key_mode,
     .offset = SNK_OFF(file_mode),
     .def = "0640",
     .types = FILE_ONLY,
     .doc = "permissions of a file sluice creates (octal)"},
    {.name = "create_dirs",
     .parse = key_bool,
     .offset = SNK_OFF(create_dirs),
     .def = "no",
     .types = FILE_ONLY,
     .doc = "create missing directories of the path (yes or no)"},
    {.name = "dir_mode",
     .parse = key_mode,
     .offset = SNK_OFF(dir_mode),
     .def = "0750",
     .types = FILE_ONLY,
     .doc = "permissions of a directory sluice creates (octal)"},
    {.name = "fsync",
     .parse = key_enum,
     .offset = SNK_OFF(fsync),
     .choices = fsyncs,
     .def = "none",
     .types = FILE_ONLY,
     .doc = "durability: none, batch or interval"},
    {.name = "fsync_interval",
     .parse = key_duration,
     .offset = SNK_OFF(fsync_interval_ms),
     .min = 1,
     .max = MS_PER_DAY,
     .def = "1s",
     .types = FILE_ONLY,
     .doc = "with fsync = interval: longest time between fdatasync calls"},
    {.name = "rotate_bytes",
     .parse = key_size,
     .offset = SNK_OFF(rotate_bytes),
     .max = 1024 * GIB,
     .def = "0",
     .types = FILE_ONLY,
     .doc = "rotate before the file would grow past this size; 0 = never"},
    {.name = "rotate_interval",
     .parse = key_duration,
     .offset = SNK_OFF(rotate_interval_ms),
     .max = MS_PER_DAY,
     .def = "0",
     .types = FILE_ONLY,
     .doc = "rotate on wall-clock boundaries (UTC) of this length; 0 = never"},
    {.name = "max_files",
     .parse = key_uint,
     .offset = SNK_OFF(max_files),
     .max = 1000000,
     .def = "0",
     .types = FILE_ONLY,
     .doc = "rotated files kept at most; 0 = no limit"},
    {.name = "max_age",
     .parse = key_duration,
     .offset = SNK_OFF(max_age_ms),
     .max = 3650 * MS_PER_DAY,
     .def = "0",
     .types = FILE_ONLY,
     .doc = "rotated files older than this are deleted; 0 = no limit"},
    {.name = "compress",
     .parse = key_enum,
     .offset = SNK_OFF(compress),
     .choices = compressions,
     .def = "none",
     .types = FILE_ONLY,
     .doc = "compression of rotated files: none, gzip or zstd"},
    {.name = "target",
     .parse = key_targets,
     .offset = SNK_OFF(target),
     .flags = KEY_REQUIRED,
     .types = TCP_SINK_ONLY,
     .doc = "host:port to forward to; several, separated by commas, for balance"},
    {.name = "balance",
     .parse = key_enum,
     .offset = SNK_OFF(balance),
     .choices = balances,
     .def = "failover",
     .types = TCP_SINK_ONLY,
     .doc = "with several targets: failover (first that works) or round_robin"},
    {.name = "retry_initial",
     .parse = key_duration,
     .offset = SNK_OFF(retry_initial_ms),
     .min = 1,
     .max = MS_PER_DAY,
     .def = "100ms",
     .types = TCP_SINK_ONLY,
     .doc = "first reconnection delay; doubles (with jitter) up to retry_max"},
    {.name = "retry_max",
     .parse = key_duration,
     .offset = SNK_OFF(retry_max_ms),
     .min = 1,
     .max = MS_PER_DAY,
     .def = "30s",
     .types = TCP_SINK_ONLY,
     .doc = "longest reconnection delay"},
    {.name = "connect_timeout",
     .parse = key_duration,
     .offset = SNK_OFF(connect_timeout_ms),
     .min = 1,
     .max = MS_PER_DAY,
     .def = "5s",
     .types = TCP_SINK_ONLY,
     .doc = "a connection attempt that takes longer fails"},
    {.name = "write_timeout",
     .parse = key_duration,
     .offset = SNK_OFF(write_timeout_ms),
     .min = 1,
     .max = MS_PER_DAY,
     .def = "30s",
     .types = TCP_SINK_ONLY,
     .doc = "a peer that acknowledges nothing asked of it this long is given up"},
    {.name = "keepalive",
     .parse = key_duration,
     .offset = SNK_OFF(keepalive_ms),
     .max = MS_PER_DAY,
     .def = "30s",
     .types = TCP_SINK_ONLY,
     .doc = "TCP keepalive: idle time before the first probe; 0 = off"},
    {.name = "idle_timeout",
     .parse = key_duration,
     .offset = SNK_OFF(idle_timeout_ms),
     .max = MS_PER_DAY,
     .def = "1min",
     .types = TCP_SINK_ONLY,
     .doc = "close a connection idle this long, reconnect on demand; 0 = never"},
    {.name = "batch_max_bytes",
     .parse = key_size,
     .offset = SNK_OFF(batch_max_bytes),
     .min = 4 * KIB,
     .max = GIB,
     .def = "1MiB",
     .def_doc = "1MiB, at most half the queue's capacity",
     .doc = "bytes per write at most; at most half the capacity of the sink's queue"},
    {.name = "batch_timeout",
     .parse = key_duration,
     .offset = SNK_OFF(batch_timeout_ms),
     .max = MS_PER_DAY,
     .def = "0",
     .doc = "how long a batch may wait to grow; 0 = write at once"},
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))
static const struct config_kind_desc config_kinds[CONFIG_NKINDS] = {
    [CONFIG_DAEMON] = {"daemon", daemon_keys, NKEYS(daemon_keys), NULL},
    [CONFIG_SOURCE] = {"source", source_keys, NKEYS(source_keys), source_types},
    [CONFIG_QUEUE] = {"queue", queue_keys, NKEYS(queue_keys), NULL},
    [CONFIG_SINK] = {"sink", sink_keys, NKEYS(sink_keys), sink_types},
};
_Static_assert(NKEYS(daemon_keys) <= CONFIG_MAX_KEYS, "too many keys");
_Static_assert(NKEYS(source_keys) <= CONFIG_MAX_KEYS, "too many keys");
_Static_assert(NKEYS(queue_keys) <= CONFIG_MAX_KEYS, "too many keys");
_Static_assert(NKEYS(sink_keys) <= CONFIG_MAX_KEYS, "too many keys");

/* ---- small helpers ------------------------------------------------------------------- */

/*
 * Copies s into buf (len bytes) for quoting in a message: control bytes and
 * '"' become '?', and text longer than CONFIG_SHOW_MAX is cut with "...".
 * Returns buf.
 */
static const char *
config_show(char *buf, size_t len, const char *s)
{
    size_t i, n = 0;

    assert(len > CONFIG_SHOW_MAX + 4);
    for (i = 0; s[i] != '\0' && n < CONFIG_SHOW_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[n++] = (ch < 0x20 || ch == 0x7f || ch == '"') ? '?' : (char)ch;
    }
    if (s[i] != '\0') {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* "expected <what>, got "<value>"" into why. */
static int
config_expected(char *why, size_t whylen, const char *what, const char *value)
{
    char show[CONFIG_SHOW_MAX + 8];

    snprintf(why, whylen, "expected %s, got \"%s\"", what, config_show(show, sizeof(show), value));
    return -1;
}

/* Result of the number parsers below: malformed and too large differ in messages only. */
enum { PARSE_OK = 0, PARSE_SYNTAX = -1, PARSE_OVERFLOW = -2 };

/* Parses leading decimal digits of s into *out, overflow-checked; *end after them. */
static int
config_parse_u64(const char *s, uint64_t *out, const char **end)
{
    bool overflow = false;
    uint64_t v = 0;

    if (!isdigit((unsigned char)*s)) {
        return PARSE_SYNTAX;
    }
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            overflow = true;
        }
        v = v * 10 + d;
    }
    *out = v;
    *end = s;
    return overflow ? PARSE_OVERFLOW : PARSE_OK;
}

/*
 * Digits, then optionally one space and one of units (value: the factor);
 * no unit gives factor 0.  Stores number * factor (number alone for 0).
 */
static int
config_parse_unit(const char *s, const struct config_choice *units, uint64_t factors[],
                  uint64_t max, uint64_t *out, bool *unitless)
{
    const char *p;
    uint64_t v, mult = 0;
    size_t i;
    int rc;

    rc = config_parse_u64(s, &v, &p);
    if (rc == PARSE_SYNTAX) {
        return rc;
    }
    if (*p != '\0') {
        if (*p == ' ') {
            p++;
        }
        for (i = 0; units[i].name != NULL; i++) {
            if (strcmp(p, units[i].name) == 0) {
                mult = factors[units[i].value];
                break;
            }
        }
        if (mult == 0) {
            return PARSE_SYNTAX;
        }
    }
    *unitless = mult == 0;
    if (mult == 0) {
        mult = 1;
    }
    if (rc == PARSE_OVERFLOW || v > max / mult) {
        return PARSE_OVERFLOW;
    }
    *out = v * mult;
    return PARSE_OK;
}

static int
config_parse_size(const char *s, size_t *out)
{
    static const struct config_choice units[] = {
        {"KiB", 0},
        {"MiB", 1},
        {"GiB", 2},
        {NULL, 0},
    };
    uint64_t factors[] = {KIB, MIB, GIB}, v;
    bool unitless;
    int rc = config_parse_unit(s, units, factors, SIZE_MAX, &v, &unitless);

    if (rc == PARSE_OK) {
        *out = (size_t)v;
    }
    return rc;
}

static int
config_parse_duration(const char *s, uint64_t *out)
{
    static const struct config_choice units[] = {
        {"ms", 0}, {"s", 1}, {"min", 2}, {"h", 3}, {"d", 4}, {NULL, 0},
    };
    uint64_t factors[] = {1, MS_PER_S, MS_PER_MIN, MS_PER_HOUR, MS_PER_DAY}, v = 0;
    bool unitless = false;
    int rc = config_parse_unit(s, units, factors, UINT64_MAX, &v, &unitless);

    if (rc == PARSE_OK && unitless && v != 0) {
        return PARSE_SYNTAX; /* "5": seconds or milliseconds?  A unit is required. */
    }
    if (rc == PARSE_OVERFLOW && unitless) {
        return PARSE_SYNTAX; /* a huge unitless number is not "0" either */
    }
    if (rc == PARSE_OK) {
        *out = v;
    }
    return rc;
}

int
sl_config_parse_size(const char *s, size_t *out)
{
    return s != NULL && config_parse_size(s, out) == PARSE_OK ? 0 : -1;
}

int
sl_config_parse_duration_ms(const char *s, uint64_t *out)
{
    return s != NULL && config_parse_duration(s, out) == PARSE_OK ? 0 : -1;
}

/* "16MiB", "64KiB", "4095": the largest unit that divides the value. */
static void
config_format_size(char *buf, size_t len, uint64_t v)
{
    if (v != 0 && v % GIB == 0) {
        snprintf(buf, len, "%lluGiB", (unsigned long long)(v / GIB));
    } else if (v != 0 && v % MIB == 0) {
        snprintf(buf, len, "%lluMiB", (unsigned long long)(v / MIB));
    } else if (v != 0 && v % KIB == 0) {
        snprintf(buf, len, "%lluKiB", (unsigned long long)(v / KIB));
    } else {
        snprintf(buf, len, "%llu", (unsigned long long)v);
    }
}

static void
config_format_duration(char *buf, size_t len, uint64_t ms)
{
    if (ms == 0) {
        snprintf(buf, len, "0");
    } else if (ms % MS_PER_DAY == 0 && ms > MS_PER_DAY) {
        snprintf(buf, len, "%llud", (unsigned long long)(ms / MS_PER_DAY));
    } else if (ms % MS_PER_MIN == 0) {
        snprintf(buf, len, "%llumin", (unsigned long long)(ms / MS_PER_MIN));
    } else if (ms % MS_PER_S == 0) {
        snprintf(buf, len, "%llus", (unsigned long long)(ms / MS_PER_S));
    } else {
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    }
}

/* [A-Za-z0-9_.-]{1,max}; the "." and ".." names are allowed but silly. */
static bool
config_valid_name(const char *s, size_t max)
{
    size_t n;

    for (n = 0; s[n] != '\0'; n++) {
        if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '.' && s[n] != '-') {
            return false;
        }
    }
    return n >= 1 && n <= max;
}

/* "tcp or udp", "err, warning, notice, info or debug" */
static void
config_format_choices(char *buf, size_t len, const struct config_choice *ch)
{
    size_t i, n, off = 0;

    for (n = 0; ch[n].name != NULL; n++) {
    }
    buf[0] = '\0';
    for (i = 0; i < n && off < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + off, len - off, "%s%s", sep, ch[i].name);
        if (w < 0) {
            break;
        }
        off += (size_t)w;
    }
}

static const struct config_choice *
config_find_choice(const struct config_choice *ch, const char *s)
{
    for (; ch->name != NULL; ch++) {
        if (strcmp(ch->name, s) == 0) {
            return ch;
        }
    }
    return NULL;
}

/* ---- address parsing ----------------------------------------------------------------- */

/* host:port, [v6]:port; see the header.  Fills why (if not NULL) on failure. */
static int
config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *why,
                     size_t whylen)
{
    char host[CONFIG_HOSTNAME_MAX + 1], show[CONFIG_SHOW_MAX + 8];
    const char *port, *close, *colon, *p;
    struct addrinfo hints, *res = NULL;
    struct sockaddr_in sin;
    bool bracketed = false;
    size_t hostlen;
    uint64_t portnum;
    int rc;

    if (why == NULL) {
        whylen = 0;
    }
    if (s[0] == '[') {
        close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            goto expected;
        }
        hostlen = (size_t)(close - s - 1);
        port = close + 2;
        s++;
        bracketed = true;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            goto expected;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            if (whylen > 0) {
                snprintf(why, whylen,
                         "expected host:port, got \"%s\" (write an IPv6 address as [addr]:port)",
                         config_show(show, sizeof(show), s));
            }
            return -1;
        }
        hostlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hostlen == 0 || hostlen >= sizeof(host)) {
        goto expected;
    }
    memcpy(host, s, hostlen);
    host[hostlen] = '\0';

    if (config_parse_u64(port, &portnum, &p) != PARSE_OK || *p != '\0' || portnum < 1 ||
        portnum > 65535) {
        if (whylen > 0) {
            snprintf(why, whylen, "expected a port from 1 to 65535, got \"%s\"",
                     config_show(show, sizeof(show), port));
        }
        return -1;
    }

    if (!bracketed && inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)portnum);
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, &sin, sizeof(sin));
        *sslen = sizeof(sin);
        return 0;
    }
    if (!bracketed) {
        /* Digits and dots that inet_pton refused ("256.1.1.1", "127.1") must
         * not go to the resolver as a name.  Names are DNS-shaped. */
        if (strspn(host, "0123456789.") == hostlen) {
            if (whylen > 0) {
                snprintf(why, whylen, "expected an IPv4 address like 127.0.0.1, got \"%s\"",
                         config_show(show, sizeof(show), host));
            }
            return -1;
        }
        if (!config_valid_name(host, CONFIG_HOSTNAME_MAX)) {
            goto expected;
        }
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(*ss)) {
        if (whylen > 0) {
            if (bracketed) {
                snprintf(why, whylen, "expected an IPv6 address in [], got \"%s\"",
                         config_show(show, sizeof(show), host));
            } else {
                snprintf(why, whylen, "cannot resolve \"%s\": %s",
                         config_show(show, sizeof(show), host),
                         rc != 0 ? gai_strerror(rc) : "no address");
            }
        }
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;

expected:
    if (whylen > 0) {
        config_expected(why, whylen, "host:port", bracketed ? s - 1 : s);
    }
    return -1;
}

int
sl_config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    if (s == NULL) {
        return -1;
    }
    return config_parse_address(s, ss, len, NULL, 0);
}

static bool
config_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* ---- value parsers (the table's parse functions) ------------------------------------- */

#define FIELD(obj, key, type) ((type *)(void *)((char *)(obj) + (key)->offset))

static int
key_enum(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    const struct config_choice *ch = config_find_choice(key->choices, value);
    char what[128];

    if (ch == NULL) {
        config_format_choices(what, sizeof(what), key->choices);
        return config_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, int) = ch->value;
    return 0;
}

static int
key_uint(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    char what[96];
    const char *end;
    uint64_t v;

    if (config_parse_u64(value, &v, &end) != PARSE_OK || *end != '\0' || v < key->min ||
        v > key->max) {
        snprintf(what, sizeof(what), "an integer from %llu to %llu", (unsigned long long)key->min,
                 (unsigned long long)key->max);
        return config_expected(why, whylen, what, value);
    }
    assert(key->max <= UINT_MAX);
    *FIELD(obj, key, unsigned) = (unsigned)v;
    return 0;
}

static int
key_size(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    char what[96], lo[32], hi[32];
    size_t v = 0;
    int rc = config_parse_size(value, &v);

    if (rc == PARSE_SYNTAX) {
        return config_expected(why, whylen, "a size like 4096, 64KiB, 16MiB or 1GiB", value);
    }
    if (rc == PARSE_OVERFLOW || v < key->min || v > key->max) {
        config_format_size(lo, sizeof(lo), key->min);
        config_format_size(hi, sizeof(hi), key->max);
        snprintf(what, sizeof(what), "a size from %s to %s", lo, hi);
        return config_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, size_t) = v;
    return 0;
}

static int
key_duration(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    char what[96], lo[32], hi[32];
    uint64_t v = 0;
    int rc = config_parse_duration(value, &v);

    if (rc == PARSE_SYNTAX) {
        return config_expected(why, whylen, "a duration like 250ms, 5s or 2min", value);
    }
    if (rc == PARSE_OVERFLOW || v < key->min || v > key->max) {
        config_format_duration(lo, sizeof(lo), key->min);
        config_format_duration(hi, sizeof(hi), key->max);
        snprintf(what, sizeof(what), "a duration from %s to %s", key->min == 0 ? "0" : lo, hi);
        return config_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, uint64_t) = v;
    return 0;
}

static int
config_store_string(char **field, const char *value, char *why, size_t whylen)
{
    char *copy = strdup(value);

    if (copy == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int
key_name(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    if (!config_valid_name(value, CONFIG_NAME_MAX)) {
        return config_expected(why, whylen, "a queue name (1 to 64 of A-Z a-z 0-9 _ . -)", value);
    }
    return config_store_string(FIELD(obj, key, char *), value, why, whylen);
}

static int
key_path(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    const char *p;

    if (value[0] == '\0') {
        return config_expected(why, whylen, "a file path", value);
    }
    for (p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return config_expected(why, whylen, "a file path without control characters", value);
        }
    }
    if (strlen(value) >= PATH_MAX) {
        return config_expected(why, whylen, "a file path shorter than PATH_MAX", value);
    }
    return config_store_string(FIELD(obj, key, char *), value, why, whylen);
}

static int
key_hostname(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    if (!config_valid_name(value, CONFIG_HOSTNAME_MAX)) {
        return config_expected(why, whylen, "a host name (1 to 253 of A-Z a-z 0-9 _ . -)", value);
    }
    return config_store_string(FIELD(obj, key, char *), value, why, whylen);
}

static int
key_listen(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    struct sl_source_config *src = obj;

    if (config_parse_address(value, &src->addr, &src->addrlen, why, whylen) < 0) {
        return -1;
    }
    return config_store_string(FIELD(obj, key, char *), value, why, whylen);
}

static int
key_admin(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    struct sl_daemon_config *d = obj;

    if (strcmp(value, "off") == 0) {
        d->admin_enabled = false;
    } else if (config_parse_address(value, &d->admin_addr, &d->admin_addrlen, why, whylen) < 0) {
        return -1;
    } else {
        d->admin_enabled = true;
    }
    return config_store_string(FIELD(obj, key, char *), value, why, whylen);
}

static int
key_fields(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    static const char seps[] = ", \t";
    const char *what = "a list of time, source, peer, host, or none";
    const struct config_choice *ch;
    char word[16], show[CONFIG_SHOW_MAX + 8];
    unsigned bits = 0;
    size_t n, words = 0;
    bool none = false;
    const char *p = value;

    for (;;) {
        p += strspn(p, seps);
        if (*p == '\0') {
            break;
        }
        n = strcspn(p, seps);
        words++;
        if (n >= sizeof(word)) {
            return config_expected(why, whylen, what, value);
        }
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        if (strcmp(word, "none") == 0) {
            none = true;
            continue;
        }
        ch = config_find_choice(field_names, word);
        if (ch == NULL) {
            snprintf(why, whylen,
                     "unknown field \"%s\" (expected time, source, peer, host or none)",
                     config_show(show, sizeof(show), word));
            return -1;
        }
        bits |= (unsigned)ch->value;
    }
    if (words == 0 || (none && words > 1)) {
        return config_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, unsigned) = bits;
    return 0;
}

static int
key_mode(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    size_t n = strspn(value, "01234567");
    unsigned long v;

    if (n == 0 || n > 4 || value[n] != '\0' || (v = strtoul(value, NULL, 8)) > 0777) {
        return config_expected(why, whylen, "an octal mode like 0640 (at most 0777)", value);
    }
    *FIELD(obj, key, mode_t) = (mode_t)v;
    return 0;
}

static int
key_bool(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0) {
        *FIELD(obj, key, bool) = true;
    } else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0) {
        *FIELD(obj, key, bool) = false;
    } else {
        return config_expected(why, whylen, "yes or no", value);
    }
    return 0;
}

/* A file path that may hold the fields of pathtmpl.h. */
static int
key_template(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    struct sl_pathtmpl_info info;

    if (sl_pathtmpl_check(value, &info, why, whylen) < 0) {
        return -1;
    }
    return key_path(key, value, obj, why, whylen);
}

/* One or more addresses separated by commas and/or blanks, resolved now. */
static int
key_targets(const struct config_key *key, const char *value, void *obj, char *why, size_t whylen)
{
    static const char seps[] = ", \t";
    struct sl_sink_config *k = obj;
    struct sl_sink_target *t;
    char word[CONFIG_HOSTNAME_MAX + 16], show[CONFIG_SHOW_MAX + 8];
    size_t n = 0;
    const char *p = value;

    t = calloc(SL_SINK_MAX_TARGETS, sizeof(*t));
    if (t == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (;;) {
        size_t len;
        p += strspn(p, seps);
        if (*p == '\0') {
            break;
        }
        len = strcspn(p, seps);
        if (n == SL_SINK_MAX_TARGETS) {
            snprintf(why, whylen, "more than %d targets", SL_SINK_MAX_TARGETS);
            goto err;
        }
        if (len >= sizeof(word)) {
            config_expected(why, whylen, "host:port", config_show(show, sizeof(show), p));
            goto err;
        }
        memcpy(word, p, len);
        word[len] = '\0';
        p += len;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(t[i].text, word) == 0) {
                snprintf(why, whylen, "target \"%s\" is listed twice",
                         config_show(show, sizeof(show), word));
                goto err;
            }
        }
        if (config_parse_address(word, &t[n].addr, &t[n].addrlen, why, whylen) < 0) {
            goto err;
        }
        if ((t[n].text = strdup(word)) == NULL) {
            snprintf(why, whylen, "out of memory");
            goto err;
        }
        n++;
    }
    if (n == 0) {
        config_expected(why, whylen, "host:port[, host:port ...]", value);
        goto err;
    }
    if (config_store_string(FIELD(obj, key, char *), value, why, whylen) < 0) {
        goto err;
    }
    k->targets = t;
    k->ntargets = n;
    return 0;
err:
    for (size_t i = 0; i < n; i++) {
        free(t[i].text);
    }
    free(t);
    return -1;
}

/* ---- errors -------------------------------------------------------------------------- */

static void config_error(struct config_ctx *c, enum config_phase phase, int line, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
static void config_error_end(struct config_ctx *c, const struct config_meta *m, const char *fmt,
                             ...) __attribute__((format(printf, 3, 4)));
static void config_verror(struct config_ctx *c, enum config_phase phase, int line, int sort_line,
                          const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/*
 * Records "PATH:LINE: message", listed at sort_line among the others.  On
 * allocation failure sets c->oom instead.
 */
static void
config_verror(struct config_ctx *c, enum config_phase phase, int line, int sort_line,
              const char *fmt, va_list ap)
{
    char msg[512];
    char *full;

    vsnprintf(msg, sizeof(msg), fmt, ap);

    if (c->nerrs == c->caperrs) {
        size_t ncap = c->caperrs ? c->caperrs * 2 : 16;
        struct config_error *n = realloc(c->errs, ncap * sizeof(*n));
        if (n == NULL) {
            c->oom = true;
            return;
        }
        c->errs = n;
        c->caperrs = ncap;
    }
    if (asprintf(&full, "%s:%d: %s", c->path, line, msg) < 0) {
        c->oom = true;
        return;
    }
    c->errs[c->nerrs].msg = full;
    c->errs[c->nerrs].sort_line = sort_line;
    c->errs[c->nerrs].phase = phase;
    c->errs[c->nerrs].seq = c->nerrs;
    c->nerrs++;
}

static void
config_error(struct config_ctx *c, enum config_phase phase, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_verror(c, phase, line, line, fmt, ap);
    va_end(ap);
}

/*
 * An error about section m as a whole (a missing key): it carries the line
 * of the header but is listed after the section's other errors, so a
 * misspelt key comes before the "missing" it causes.
 */
static void
config_error_end(struct config_ctx *c, const struct config_meta *m, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_verror(c, PHASE_LINE, m->line, m->end_line > m->line ? m->end_line : m->line, fmt, ap);
    va_end(ap);
}

static int
config_error_cmp(const void *a, const void *b)
{
    const struct config_error *x = a, *y = b;

    if (x->phase != y->phase) {
        return x->phase < y->phase ? -1 : 1;
    }
    if (x->sort_line != y->sort_line) {
        return x->sort_line < y->sort_line ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Moves the sorted messages to errs (NULL: drops them). */
static void
config_errors_hand_over(struct config_ctx *c, struct sl_config_errors *errs)
{
    size_t i;

    qsort(c->errs, c->nerrs, sizeof(*c->errs), config_error_cmp);
    for (i = 0; i < c->nerrs; i++) {
        if (errs != NULL && errs->count == errs->cap) {
            size_t ncap = errs->cap ? errs->cap * 2 : 16;
            char **n = realloc(errs->msgs, ncap * sizeof(*n));
            if (n != NULL) {
                errs->msgs = n;
                errs->cap = ncap;
            }
        }
        if (errs != NULL && errs->count < errs->cap) {
            errs->msgs[errs->count++] = c->errs[i].msg;
        } else {
            free(c->errs[i].msg);
        }
    }
    free(c->errs);
    c->errs = NULL;
    c->nerrs = c->caperrs = 0;
}

void
sl_config_errors_fini(struct sl_config_errors *errs)
{
    size_t i;

    if (errs == NULL) {
        return;
    }
    for (i = 0; i < errs->count; i++) {
        free(errs->msgs[i]);
    }
    free(errs->msgs);
    memset(errs, 0, sizeof(*errs));
}

/* ---- sections ------------------------------------------------------------------------ */

static void *
config_obj(struct config_ctx *c, const struct config_meta *m)
{
    switch (m->kind) {
    case CONFIG_DAEMON:
        return &c->cfg->daemon;
    case CONFIG_SOURCE:
        return &c->cfg->sources[m->index];
    case CONFIG_QUEUE:
        return &c->cfg->queues[m->index];
    case CONFIG_SINK:
        return &c->cfg->sinks[m->index];
    case CONFIG_NKINDS:
        break;
    }
    abort();
}

static const char *
config_obj_name(struct config_ctx *c, const struct config_meta *m)
{
    switch (m->kind) {
    case CONFIG_SOURCE:
        return c->cfg->sources[m->index].name;
    case CONFIG_QUEUE:
        return c->cfg->queues[m->index].name;
    case CONFIG_SINK:
        return c->cfg->sinks[m->index].name;
    default:
        return NULL;
    }
}

/* How messages name a section: `source "app"`, `daemon`. */
static const char *
config_label(struct config_ctx *c, const struct config_meta *m, char *buf, size_t len)
{
    const char *name = config_obj_name(c, m);

    if (name == NULL) {
        snprintf(buf, len, "%s", config_kinds[m->kind].name);
    } else {
        snprintf(buf, len, "%s \"%s\"", config_kinds[m->kind].name, name);
    }
    return buf;
}

/* Finds an accepted section by kind and name; NULL if none. */
static struct config_meta *
config_find_section(struct config_ctx *c, enum config_kind kind, const char *name)
{
    size_t i;

    for (i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];
        const char *n = config_obj_name(c, m);
        if (m->kind == kind && (name == NULL || (n != NULL && strcmp(n, name) == 0))) {
            return m;
        }
    }
    return NULL;
}

/* Appends one zeroed element to *arr (n used, *cap allocated); NULL on OOM. */
static void *
config_grow(void **arr, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        void *p = realloc(*arr, ncap * size);
        if (p == NULL) {
            return NULL;
        }
        *arr = p;
        *cap = ncap;
    }
    memset((char *)*arr + *n * size, 0, size);
    return (char *)*arr + (*n)++ * size;
}

/* Creates the section's struct and its meta; sets c->cur.  name is borrowed. */
static void
config_section_add(struct config_ctx *c, enum config_kind kind, const char *name)
{
    struct sl_config *cfg = c->cfg;
    struct config_meta *m;
    char **namep = NULL;
    size_t index = 0;

    switch (kind) {
    case CONFIG_DAEMON:
        break;
    case CONFIG_SOURCE: {
        struct sl_source_config *s =
            config_grow((void **)&cfg->sources, &cfg->nsources, &c->cap[kind], sizeof(*s));
        if (s == NULL) {
            goto oom;
        }
        s->line = c->lineno;
        namep = &s->name;
        index = cfg->nsources - 1;
        break;
    }
    case CONFIG_QUEUE: {
        struct sl_queue_config *q =
            config_grow((void **)&cfg->queues, &cfg->nqueues, &c->cap[kind], sizeof(*q));
        if (q == NULL) {
            goto oom;
        }
        q->line = c->lineno;
        namep = &q->name;
        index = cfg->nqueues - 1;
        break;
    }
    case CONFIG_SINK: {
        struct sl_sink_config *k =
            config_grow((void **)&cfg->sinks, &cfg->nsinks, &c->cap[kind], sizeof(*k));
        if (k == NULL) {
            goto oom;
        }
        k->line = c->lineno;
        namep = &k->name;
        index = cfg->nsinks - 1;
        break;
    }
    case CONFIG_NKINDS:
        abort();
    }
    if (namep != NULL && (*namep = strdup(name)) == NULL) {
        goto oom; /* the element stays, nameless; the load fails anyway */
    }
    m = config_grow((void **)&c->metas, &c->nmetas, &c->capmetas, sizeof(*m));
    if (m == NULL) {
        goto oom;
    }
    m->kind = kind;
    m->index = index;
    m->line = c->lineno;
    m->type = -1;
    c->cur = (long)(c->nmetas - 1);
    if (kind == CONFIG_DAEMON) {
        c->daemon_meta = c->cur;
    }
    return;

oom:
    c->oom = true;
    c->cur = CUR_SKIP;
}

/*
 * Returns a pointer to the first inline comment (";" after whitespace, as
 * inih sees it) or to the first of chars, or to the terminating NUL.
 */
static const char *
config_find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;

    while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
           !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Handles a "[kind name]" line (line starts with '[', is trimmed). */
static void
config_section_begin(struct config_ctx *c, char *line)
{
    static const char *const expect =
        "expected [daemon], [source NAME], [queue NAME] or [sink NAME]";
    char show[CONFIG_SHOW_MAX + 8], show2[CONFIG_SHOW_MAX + 8];
    const char *end = config_find_chars_or_comment(line + 1, "]");
    const char *rest;
    char *inner, *kind_end, *name;
    struct config_meta *prev;
    enum config_kind kind;

    c->cur = CUR_SKIP; /* until the header proves good */
    if (*end != ']') {
        config_error(c, PHASE_LINE, c->lineno, "section header \"%s\" has no closing \"]\"",
                     config_show(show, sizeof(show), line));
        return;
    }
    rest = end + 1;
    rest += strspn(rest, " \t\r\f\v");
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        config_error(c, PHASE_LINE, c->lineno, "unexpected text after section header: \"%s\"",
                     config_show(show, sizeof(show), rest));
        return;
    }
    inner = line + 1;
    inner[end - inner] = '\0';
    inner += strspn(inner, " \t");
    kind_end = inner + strcspn(inner, " \t");
    name = kind_end + strspn(kind_end, " \t");
    *kind_end = '\0';
    /* Trim the name's end: "[source app ]". */
    for (char *e = name + strlen(name); e > name && isspace((unsigned char)e[-1]); e--) {
        e[-1] = '\0';
    }

    for (kind = 0; kind < CONFIG_NKINDS; kind++) {
        if (strcmp(inner, config_kinds[kind].name) == 0) {
            break;
        }
    }
    if (kind == CONFIG_NKINDS) {
        config_error(c, PHASE_LINE, c->lineno, "unknown section \"[%s%s%s]\": %s",
                     config_show(show, sizeof(show), inner), *name ? " " : "",
                     config_show(show2, sizeof(show2), name), expect);
        return;
    }
    if (kind == CONFIG_DAEMON) {
        if (*name != '\0') {
            config_error(c, PHASE_LINE, c->lineno, "[daemon] takes no name, got \"%s\"",
                         config_show(show, sizeof(show), name));
            return;
        }
        if (c->daemon_meta >= 0) {
            config_error(c, PHASE_LINE, c->lineno, "duplicate [daemon] section (first at line %d)",
                         c->metas[c->daemon_meta].line);
            return;
        }
        config_section_add(c, kind, NULL);
        return;
    }
    if (*name == '\0') {
        config_error(c, PHASE_LINE, c->lineno, "[%s] needs a name: [%s NAME]",
                     config_kinds[kind].name, config_kinds[kind].name);
        return;
    }
    if (!config_valid_name(name, CONFIG_NAME_MAX)) {
        config_error(
            c, PHASE_LINE, c->lineno, "invalid %s name \"%s\": use 1 to %d of A-Z a-z 0-9 _ . -",
            config_kinds[kind].name, config_show(show, sizeof(show), name), CONFIG_NAME_MAX);
        return;
    }
    prev = config_find_section(c, kind, name);
    if (prev != NULL) {
        config_error(c, PHASE_LINE, c->lineno, "duplicate %s \"%s\" (first defined at line %d)",
                     config_kinds[kind].name, name, prev->line);
        return;
    }
    config_section_add(c, kind, name);
}

/* ---- inih callbacks ------------------------------------------------------------------ */

/* Length of the key on a line whose separator is at sep (blanks before it dropped). */
static size_t
config_key_end(const char *line, const char *sep)
{
    const char *e = sep;

    while (e > line && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    return (size_t)(e - line);
}

/*
 * Reads all of fd into c->text (NUL-terminated), at most CONFIG_FILE_MAX
 * bytes whatever the file is: the limit is checked as the bytes arrive, so
 * /dev/zero or an endless FIFO costs one read of the limit, not all memory.
 * Returns 0, or -1 with the error recorded.
 */
static int
config_read_file(struct config_ctx *c, int fd)
{
    char *text = NULL;
    size_t cap = 0;

    c->len = 0;
    for (;;) {
        ssize_t n;

        /* Room to read at least one byte and the NUL; at most the limit
         * plus one byte, enough to see it crossed. */
        if (c->len + 1 >= cap) {
            size_t want = cap == 0 ? CONFIG_READ_MIN : cap * 2;
            char *bigger;

            if (want > (size_t)CONFIG_FILE_MAX + 2) {
                want = (size_t)CONFIG_FILE_MAX + 2;
            }
            bigger = realloc(text, want);
            if (bigger == NULL) {
                c->oom = true;
                goto err;
            }
            text = bigger;
            cap = want;
        }
        n = read(fd, text + c->len, cap - 1 - c->len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            config_error(c, PHASE_FILE, 0, "cannot read: %s", strerror(errno));
            goto err;
        }
        if (n == 0) {
            break;
        }
        c->len += (size_t)n;
        if (c->len > CONFIG_FILE_MAX) {
            config_error(c, PHASE_FILE, 0, "larger than 1MiB (%d bytes)", CONFIG_FILE_MAX);
            goto err;
        }
    }
    text[c->len] = '\0';
    c->text = text;
    return 0;

err:
    free(text);
    c->len = 0;
    return -1;
}

/*
 * The inih reader: returns the next physical line, or NULL at the end.  See
 * the DESIGN comment: one call is one whole line of the file's text, so the
 * count is exact; headers, malformed and over-long lines are handled here
 * and inih gets an empty line for them.
 */
static char *
config_read_line_cb(char *str, int num, void *stream)
{
    struct config_ctx *c = stream;
    char show[CONFIG_SHOW_MAX + 8];
    char *line, *end, *nl;
    const char *sep;
    size_t n;

    if (num < 2 || c->pos >= c->len) {
        return NULL;
    }
    /* Cut the line out in place: its newline becomes the terminating NUL. */
    line = c->text + c->pos;
    nl = memchr(line, '\n', c->len - c->pos);
    n = nl != NULL ? (size_t)(nl - line) : c->len - c->pos;
    line[n] = '\0';
    c->pos += n + 1;
    c->lineno++;
    str[0] = '\0';
    if (memchr(line, '\0', n) != NULL) {
        config_error(c, PHASE_LINE, c->lineno, "line contains a NUL byte");
        return str;
    }
    if (c->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3; /* UTF-8 byte order mark */
    }
    line += strspn(line, " \t\r\n\f\v");
    end = line + strlen(line);
    while (end > line && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }

    if (*line == '\0' || *line == ';' || *line == '#') {
        return str;
    }
    if (*line == '[') {
        config_section_begin(c, line);
        return str;
    }
    if (c->cur >= 0) {
        c->metas[c->cur].end_line = c->lineno;
    }
    /* A key never contains blanks: "listen 127.0.0.1:5170" is a missing "=",
     * not the key "listen 127.0.0.1" (inih also splits at ':'). */
    sep = config_find_chars_or_comment(line, "=:");
    if ((*sep != '=' && *sep != ':') || strcspn(line, " \t") < config_key_end(line, sep)) {
        config_error(c, PHASE_LINE, c->lineno, "expected \"key = value\", got \"%s\"",
                     config_show(show, sizeof(show), line));
        return str;
    }
    if ((size_t)(end - line) > (size_t)num - 1) {
        config_error(c, PHASE_LINE, c->lineno, "line too long (more than %d bytes)", num - 1);
        return str;
    }
    memcpy(str, line, (size_t)(end - line) + 1);
    return str;
}

/* The inih handler: one "key = value" of the current section.  Always returns 1. */
static int
config_key_cb(void *user, const char *section, const char *name, const char *value)
{
    struct config_ctx *c = user;
    const struct config_kind_desc *desc;
    const struct config_key *key = NULL;
    char label[CONFIG_NAME_MAX + 16], show[CONFIG_SHOW_MAX + 8], why[512];
    struct config_meta *m;
    size_t i;

    (void)section; /* the reader tracks sections; inih never sees a header */
    if (c->cur == CUR_SKIP) {
        return 1; /* the header's error was reported */
    }
    if (c->cur == CUR_NONE) {
        config_error(c, PHASE_LINE, c->lineno, "key \"%s\" is outside any section",
                     config_show(show, sizeof(show), name));
        return 1;
    }
    m = &c->metas[c->cur];
    desc = &config_kinds[m->kind];
    config_label(c, m, label, sizeof(label));
    if (*name == '\0') {
        config_error(c, PHASE_LINE, c->lineno, "%s: expected \"key = value\", got no key", label);
        return 1;
    }
    for (i = 0; i < desc->nkeys; i++) {
        if (strcmp(desc->keys[i].name, name) == 0) {
            key = &desc->keys[i];
            break;
        }
    }
    if (key == NULL) {
        config_error(c, PHASE_LINE, c->lineno, "%s: unknown key \"%s\"", label,
                     config_show(show, sizeof(show), name));
        return 1;
    }
    if (m->key_line[i] != 0) {
        config_error(c, PHASE_LINE, c->lineno, "%s: duplicate key \"%s\" (first set at line %d)",
                     label, name, m->key_line[i]);
        return 1;
    }
    m->key_line[i] = c->lineno;
    why[0] = '\0';
    if (key->parse(key, value, config_obj(c, m), why, sizeof(why)) < 0) {
        m->bad |= 1u << i;
        config_error(c, PHASE_LINE, c->lineno, "%s: %s: %s", label, name, why);
        return 1;
    }
    if (strcmp(name, "type") == 0) {
        m->type = *FIELD(config_obj(c, m), key, int);
    }
    return 1;
}

/* ---- per-section checks and defaults ------------------------------------------------- */

/* Index of key name in the table of kind; the name must be there. */
static size_t
config_key_index(enum config_kind kind, const char *name)
{
    const struct config_kind_desc *desc = &config_kinds[kind];
    size_t i;

    for (i = 0; i < desc->nkeys; i++) {
        if (strcmp(desc->keys[i].name, name) == 0) {
            return i;
        }
    }
    abort();
}

static bool
config_key_applies(const struct config_key *key, int type)
{
    return key->types == 0 || type < 0 || (key->types & (1u << type)) != 0;
}

/* "tcp", "tcp or udp": the types a key applies to. */
static void
config_format_types(char *buf, size_t len, const struct config_choice *types, unsigned mask)
{
    struct config_choice sel[8];
    size_t n = 0;

    for (; types->name != NULL && n + 1 < NKEYS(sel); types++) {
        if (mask & (1u << types->value)) {
            sel[n++] = *types;
        }
    }
    sel[n].name = NULL;
    config_format_choices(buf, len, sel);
}

static void
config_daemon_defaults(struct config_ctx *c, struct config_meta *m)
{
    struct sl_daemon_config *d = &c->cfg->daemon;
    char host[CONFIG_HOSTNAME_MAX + 2], show[CONFIG_SHOW_MAX + 8];
    long n;

    if (m->key_line[config_key_index(CONFIG_DAEMON, "producer_threads")] == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        d->producer_threads = n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
    }
    if (m->key_line[config_key_index(CONFIG_DAEMON, "hostname")] == 0) {
        memset(host, 0, sizeof(host));
        if (gethostname(host, sizeof(host) - 1) < 0) {
            config_error(c, PHASE_FILE, m->line,
                         "daemon: hostname: gethostname() failed: %s; "
                         "set hostname =",
                         strerror(errno));
        } else if (!config_valid_name(host, CONFIG_HOSTNAME_MAX)) {
            config_error(c, PHASE_FILE, m->line,
                         "daemon: hostname: gethostname() gave \"%s\", "
                         "not a host name (A-Z a-z 0-9 _ . -); set hostname =",
                         config_show(show, sizeof(show), host));
        } else if ((d->hostname = strdup(host)) == NULL) {
            c->oom = true;
        }
    }
}

static int config_key_line(const struct config_meta *m, const char *name);
static bool config_key_good(const struct config_meta *m, const char *name);

/* True when key name of m was set and its value refused. */
static bool
config_key_bad(const struct config_meta *m, const char *name)
{
    return (m->bad & (1u << config_key_index(m->kind, name))) != 0;
}

/* Checks between the keys of one sink (defaults applied). */
static void
config_sink_check(struct config_ctx *c, struct config_meta *m, struct sl_sink_config *k,
                  const char *label)
{
    size_t ri = config_key_index(CONFIG_SINK, "rotate_interval");
    struct sl_pathtmpl_info info;
    char a[32], b[32], why[256];

    if (m->type == SL_SINK_FILE) {
        if (m->key_line[ri] != 0 && !config_key_bad(m, "rotate_interval") &&
            k->rotate_interval_ms != 0 &&
            (k->rotate_interval_ms < MS_PER_S || MS_PER_DAY % k->rotate_interval_ms != 0)) {
            config_format_duration(a, sizeof(a), k->rotate_interval_ms);
            config_error(c, PHASE_LINE, m->key_line[ri],
                         "%s: rotate_interval (%s) must be at least 1s and divide 24 hours "
                         "evenly (1min, 5min, 15min, 1h, 6h, 1d, ...)",
                         label, a);
        }
        if (config_key_good(m, "path") &&
            sl_pathtmpl_check(k->path, &info, why, sizeof(why)) == 0 && info.dir_has_time &&
            !k->create_dirs && !config_key_bad(m, "create_dirs")) {
            config_error(c, PHASE_LINE, config_key_line(m, "path"),
                         "%s: path has time fields in its directories: set create_dirs = yes",
                         label);
        }
    }
    if (m->type == SL_SINK_TCP && !config_key_bad(m, "retry_initial") &&
        !config_key_bad(m, "retry_max") && k->retry_max_ms < k->retry_initial_ms) {
        config_format_duration(a, sizeof(a), k->retry_max_ms);
        config_format_duration(b, sizeof(b), k->retry_initial_ms);
        config_error(c, PHASE_LINE, config_key_line(m, "retry_max"),
                     "%s: retry_max (%s) must be at least retry_initial (%s)", label, a, b);
    }
}

/* Applies defaults, reports missing and misplaced keys and checks between keys. */
static void
config_section_check(struct config_ctx *c, struct config_meta *m)
{
    const struct config_kind_desc *desc = &config_kinds[m->kind];
    char label[CONFIG_NAME_MAX + 16], types[64], why[512], a[32], b[32];
    void *obj = config_obj(c, m);
    size_t i;

    config_label(c, m, label, sizeof(label));
    for (i = 0; i < desc->nkeys; i++) {
        const struct config_key *key = &desc->keys[i];
        bool applies = config_key_applies(key, m->type);
        const char *def;

        if (m->key_line[i] != 0) {
            if (!applies) {
                config_format_types(types, sizeof(types), desc->types, key->types);
                config_error(c, PHASE_LINE, m->key_line[i], "%s: %s is only valid with type = %s",
                             label, key->name, types);
            }
            continue;
        }
        if ((key->flags & KEY_REQUIRED) != 0) {
            if (applies && (key->types == 0 || m->type >= 0)) {
                config_error_end(c, m, "%s: missing required key \"%s\"", label, key->name);
            }
            continue;
        }
        def = key->def_udp != NULL && m->kind == CONFIG_SOURCE && m->type == SL_SOURCE_UDP
                  ? key->def_udp
                  : key->def;
        if (def != NULL && key->parse(key, def, obj, why, sizeof(why)) < 0) {
            if (strcmp(why, "out of memory") == 0) {
                c->oom = true;
                continue;
            }
            assert(!"a table default does not parse");
        }
    }

    if (m->kind == CONFIG_DAEMON) {
        config_daemon_defaults(c, m);
    } else if (m->kind == CONFIG_QUEUE) {
        struct sl_queue_config *q = obj;
        size_t cap = config_key_index(CONFIG_QUEUE, "capacity");
        size_t chunk = config_key_index(CONFIG_QUEUE, "chunk_size");
        if ((m->bad & ((1u << cap) | (1u << chunk))) == 0 && q->capacity / 2 < q->chunk_bytes) {
            config_format_size(a, sizeof(a), q->capacity);
            config_format_size(b, sizeof(b), q->chunk_bytes);
            config_error(c, PHASE_LINE, m->key_line[cap] ? m->key_line[cap] : m->key_line[chunk],
                         "%s: capacity (%s) must be at least 2 x chunk_size (%s)", label, a, b);
        }
    } else if (m->kind == CONFIG_SINK) {
        config_sink_check(c, m, obj, label);
    }
}

/* ---- cross-references ---------------------------------------------------------------- */

/* Line of key name in m, or of the section header when the key was not set. */
static int
config_key_line(const struct config_meta *m, const char *name)
{
    size_t i = config_key_index(m->kind, name);

    return m->key_line[i] != 0 ? m->key_line[i] : m->line;
}

/* True when key name of m was set and its value accepted. */
static bool
config_key_good(const struct config_meta *m, const char *name)
{
    size_t i = config_key_index(m->kind, name);

    return m->key_line[i] != 0 && (m->bad & (1u << i)) == 0;
}

/* Resolves a queue name to its index; reports a missing queue. */
static void
config_link_queue(struct config_ctx *c, const struct config_meta *m, const char *queue,
                  size_t *index, bool *drained)
{
    char label[CONFIG_NAME_MAX + 16];
    struct config_meta *q;

    if (!config_key_good(m, "queue")) {
        return;
    }
    q = config_find_section(c, CONFIG_QUEUE, queue);
    if (q == NULL) {
        config_error(c, PHASE_XREF, config_key_line(m, "queue"), "%s: queue \"%s\" is not defined",
                     config_label(c, m, label, sizeof(label)), queue);
        return;
    }
    *index = q->index;
    if (drained != NULL) {
        drained[q->index] = true;
    }
}

/*
 * An event of max_line_bytes, plus the fields sluice may add, must fit in
 * one chunk of the source's queue, or events within the limit would be
 * dropped as too large.
 */
static void
config_check_line_fits(struct config_ctx *c, const struct config_meta *m,
                       const struct sl_source_config *s, const struct sl_queue_config *q)
{
    char label[CONFIG_NAME_MAX + 16], a[32], b[32];

    if (s->max_line_bytes + SL_CONFIG_CHUNK_HEADROOM <= q->chunk_bytes) {
        return;
    }
    config_format_size(a, sizeof(a), s->max_line_bytes);
    config_format_size(b, sizeof(b), q->chunk_bytes);
    config_error(c, PHASE_XREF, config_key_line(m, "max_line_bytes"),
                 "%s: max_line_bytes (%s) must be at most the chunk_size of queue \"%s\" (%s) "
                 "minus 4KiB",
                 config_label(c, m, label, sizeof(label)), a, q->name, b);
}

/*
 * A batch grows only while its queue can take more events, so a
 * batch_max_bytes the queue cannot hold is never reached: every batch would
 * end only by filling the queue, which pauses every TCP sender, or by
 * batch_timeout.  TCP producers pause when only an eighth of the queue's
 * chunks is left (the UDP reserve), which leaves them more than two thirds
 * of the capacity whatever chunk_size is (capacity >= 2 x chunk_size), and a
 * chunk is handed over part-full at the end of each read.  Half the capacity
 * is within reach with room for part-full chunks, so that is the bound: a
 * larger value set in the file is an error, and the default (1MiB) is
 * lowered to it for a small queue.
 */
static void
config_check_batch_fits(struct config_ctx *c, const struct config_meta *m, struct sl_sink_config *k,
                        const struct sl_queue_config *q)
{
    char label[CONFIG_NAME_MAX + 16], a[32], b[32];
    const struct config_meta *qm = config_find_section(c, CONFIG_QUEUE, q->name);
    size_t bound = q->capacity / 2;

    if (qm == NULL || config_key_bad(qm, "capacity") || config_key_bad(m, "batch_max_bytes") ||
        k->batch_max_bytes <= bound) {
        return;
    }
    if (!config_key_good(m, "batch_max_bytes")) {
        k->batch_max_bytes = bound;
        return;
    }
    config_format_size(a, sizeof(a), k->batch_max_bytes);
    config_format_size(b, sizeof(b), q->capacity);
    config_error(c, PHASE_XREF, config_key_line(m, "batch_max_bytes"),
                 "%s: batch_max_bytes (%s) must be at most half the capacity (%s) of queue \"%s\"",
                 config_label(c, m, label, sizeof(label)), a, b, q->name);
}

/*
 * Under systemd (LogsDirectory=), relative sink paths resolve against
 * $LOGS_DIRECTORY (its first entry when it lists several, separated by ':'),
 * so a unit can point sluice at /var/log/sluice without absolute paths in
 * the config.  Without it, relative paths stay relative to the working
 * directory.
 */
static void
config_resolve_paths(struct config_ctx *c)
{
    const char *dir = getenv("LOGS_DIRECTORY");
    size_t dlen;

    if (dir == NULL || *dir == '\0') {
        return;
    }
    dlen = strcspn(dir, ":");
    for (size_t i = 0; i < c->cfg->nsinks; i++) {
        struct sl_sink_config *s = &c->cfg->sinks[i];
        char *joined;

        if (s->path == NULL || s->path[0] == '/') {
            continue;
        }
        if (asprintf(&joined, "%.*s/%s", (int)dlen, dir, s->path) < 0) {
            c->oom = true;
            return;
        }
        free(s->path);
        s->path = joined;
    }
}

/*
 * %{source} in a file sink's path names the one source feeding its queue:
 * with several (or none) the name would be ambiguous, and it must not be
 * "." or "..", which would climb the directory tree.
 */
static void
config_sink_source(struct config_ctx *c, const struct config_meta *m, struct sl_sink_config *k)
{
    struct sl_config *cfg = c->cfg;
    char label[CONFIG_NAME_MAX + 16], why[256];
    struct sl_pathtmpl_info info;
    const char *name = NULL;
    size_t n = 0;

    if (sl_pathtmpl_check(k->path, &info, why, sizeof(why)) < 0 || !info.uses_source ||
        !config_key_good(m, "queue")) {
        return;
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        if (cfg->sources[i].queue_index == k->queue_index && cfg->sources[i].name != NULL) {
            name = cfg->sources[i].name;
            n++;
        }
    }
    config_label(c, m, label, sizeof(label));
    if (n != 1) {
        config_error(c, PHASE_XREF, config_key_line(m, "path"),
                     "%s: path uses %%{source} but %zu sources feed queue \"%s\" (it needs "
                     "exactly one)",
                     label, n, k->queue);
    } else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        config_error(c, PHASE_XREF, config_key_line(m, "path"),
                     "%s: path uses %%{source} and the source is named \"%s\"", label, name);
    } else {
        k->source_name = name;
    }
}

static void
config_cross_check(struct config_ctx *c)
{
    struct sl_config *cfg = c->cfg;
    char label[CONFIG_NAME_MAX + 16], show[CONFIG_SHOW_MAX + 8];
    bool *drained;
    size_t i, j;

    drained = calloc(cfg->nqueues + 1, sizeof(*drained));
    if (drained == NULL) {
        c->oom = true;
        return;
    }
    for (i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];

        if (m->kind == CONFIG_SOURCE) {
            struct sl_source_config *s = &cfg->sources[m->index];
            s->queue_index = SIZE_MAX;
            config_link_queue(c, m, s->queue, &s->queue_index, NULL);
            if (s->queue_index != SIZE_MAX) {
                config_check_line_fits(c, m, s, &cfg->queues[s->queue_index]);
            }
            if (!config_key_good(m, "listen") || m->type < 0) {
                continue;
            }
            for (j = 0; j < i; j++) {
                struct config_meta *o = &c->metas[j];
                struct sl_source_config *t = &cfg->sources[o->index];
                if (o->kind == CONFIG_SOURCE && o->type == m->type &&
                    config_key_good(o, "listen") && config_same_address(&s->addr, &t->addr)) {
                    config_error(c, PHASE_XREF, config_key_line(m, "listen"),
                                 "%s: listen: %s %s is already used by source \"%s\" (line %d)",
                                 config_label(c, m, label, sizeof(label)),
                                 source_types[m->type].name, s->listen, t->name,
                                 config_key_line(o, "listen"));
                    break;
                }
            }
        } else if (m->kind == CONFIG_SINK) {
            struct sl_sink_config *k = &cfg->sinks[m->index];
            size_t qi = SIZE_MAX;
            config_link_queue(c, m, k->queue, &qi, drained);
            if (qi != SIZE_MAX) {
                k->queue_index = qi;
                config_check_batch_fits(c, m, k, &cfg->queues[qi]);
            }
            if (!config_key_good(m, "path")) {
                continue;
            }
            for (j = 0; j < i; j++) {
                struct config_meta *o = &c->metas[j];
                struct sl_sink_config *t = &cfg->sinks[o->index];
                if (o->kind == CONFIG_SINK && config_key_good(o, "path") &&
                    strcmp(k->path, t->path) == 0) {
                    config_error(c, PHASE_XREF, config_key_line(m, "path"),
                                 "%s: path \"%s\" is already written by sink \"%s\" (line %d)",
                                 config_label(c, m, label, sizeof(label)),
                                 config_show(show, sizeof(show), k->path), t->name,
                                 config_key_line(o, "path"));
                    break;
                }
            }
        }
    }
    for (i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];
        if (m->kind == CONFIG_SINK && m->type == SL_SINK_FILE && config_key_good(m, "path")) {
            config_sink_source(c, m, &cfg->sinks[m->index]);
        }
    }
    for (i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];
        if (m->kind == CONFIG_QUEUE && !drained[m->index]) {
            config_error(c, PHASE_XREF, m->line,
                         "%s: no sink drains this queue (add a [sink NAME] with queue = %s)",
                         config_label(c, m, label, sizeof(label)), cfg->queues[m->index].name);
        }
    }
    free(drained);

    if (cfg->nsources == 0) {
        config_error(c, PHASE_FILE, 0, "no [source NAME] section: nothing would be received");
    }
    if (cfg->nqueues == 0) {
        config_error(c, PHASE_FILE, 0, "no [queue NAME] section: sources need a queue to feed");
    }
    if (cfg->nsinks == 0) {
        config_error(c, PHASE_FILE, 0, "no [sink NAME] section: nothing would be written");
    }
}

/* ---- load / free --------------------------------------------------------------------- */

struct sl_config *
sl_config_load(const char *path, struct sl_config_errors *errs)
{
    struct config_ctx c;
    struct config_meta daemon_defaults;
    struct stat st;
    size_t i;
    int fd, rc;

    memset(&c, 0, sizeof(c));
    c.path = path;
    c.cur = CUR_NONE;
    c.daemon_meta = -1;
    c.cfg = calloc(1, sizeof(*c.cfg));
    if (c.cfg == NULL || (c.cfg->path = strdup(path)) == NULL) {
        c.oom = true;
        goto done;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        config_error(&c, PHASE_FILE, 0, "cannot open: %s", strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            config_error(&c, PHASE_FILE, 0, "cannot open: %s", strerror(EISDIR));
            close(fd);
            goto done;
        }
        /* A regular file says its size: no need to read a huge one first. */
        if (S_ISREG(st.st_mode) && st.st_size > CONFIG_FILE_MAX) {
            config_error(&c, PHASE_FILE, 0, "larger than 1MiB (%d bytes)", CONFIG_FILE_MAX);
            close(fd);
            goto done;
        }
    }
    rc = config_read_file(&c, fd);
    close(fd);
    if (rc < 0) {
        goto done;
    }

    rc = ini_parse_stream(config_read_line_cb, &c, config_key_cb, &c);
    if (rc == -2) {
        c.oom = true;
    } else if (rc > 0 && c.nerrs == 0 && !c.oom) {
        /* inih refused a line the reader let through: should not happen. */
        config_error(&c, PHASE_LINE, rc, "syntax error");
    }

    for (i = 0; i < c.nmetas; i++) {
        config_section_check(&c, &c.metas[i]);
    }
    if (c.daemon_meta < 0) {
        memset(&daemon_defaults, 0, sizeof(daemon_defaults));
        daemon_defaults.kind = CONFIG_DAEMON;
        daemon_defaults.type = -1;
        config_section_check(&c, &daemon_defaults);
    }
    config_cross_check(&c);
    config_resolve_paths(&c);

done:
    if (c.oom) {
        config_error(&c, PHASE_FILE, 0, "out of memory");
    }
    free(c.text);
    free(c.metas);
    if (c.nerrs > 0 || c.oom) {
        config_errors_hand_over(&c, errs);
        sl_config_free(c.cfg);
        return NULL;
    }
    free(c.errs);
    return c.cfg;
}

void
sl_config_free(struct sl_config *cfg)
{
    size_t i;

    if (cfg == NULL) {
        return;
    }
    for (i = 0; i < cfg->nsources; i++) {
        free(cfg->sources[i].name);
        free(cfg->sources[i].listen);
        free(cfg->sources[i].queue);
    }
    for (i = 0; i < cfg->nqueues; i++) {
        free(cfg->queues[i].name);
    }
    for (i = 0; i < cfg->nsinks; i++) {
        free(cfg->sinks[i].name);
        free(cfg->sinks[i].queue);
        free(cfg->sinks[i].path);
        free(cfg->sinks[i].target);
        for (size_t t = 0; t < cfg->sinks[i].ntargets; t++) {
            free(cfg->sinks[i].targets[t].text);
        }
        free(cfg->sinks[i].targets);
    }
    free(cfg->sources);
    free(cfg->queues);
    free(cfg->sinks);
    free(cfg->daemon.hostname);
    free(cfg->daemon.admin_listen);
    free(cfg->path);
    free(cfg);
}

/* ---- summary and key info ------------------------------------------------------------ */

struct config_out {
    char *buf;
    size_t len, off;
};

static void config_out(struct config_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
config_out(struct config_out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->off + 1 >= o->len) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->off, o->len - o->off, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    o->off += (size_t)n;
    if (o->off >= o->len) {
        o->off = o->len - 1;
    }
}

void
sl_config_summary(const struct sl_config *cfg, char *buf, size_t len)
{
    struct config_out o = {buf, len, 0};
    char size[32];
    size_t i;

    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    config_out(&o, "ok: %zu source%s (", cfg->nsources, cfg->nsources == 1 ? "" : "s");
    for (i = 0; i < cfg->nsources; i++) {
        const struct sl_source_config *s = &cfg->sources[i];
        config_out(&o, "%s%s %s %s %s -> %s", i ? ", " : "", s->name, source_types[s->type].name,
                   s->listen, codecs[s->codec].name, s->queue);
    }
    config_out(&o, "), %zu queue%s (", cfg->nqueues, cfg->nqueues == 1 ? "" : "s");
    for (i = 0; i < cfg->nqueues; i++) {
        config_format_size(size, sizeof(size), cfg->queues[i].capacity);
        config_out(&o, "%s%s %s", i ? ", " : "", cfg->queues[i].name, size);
    }
    config_out(&o, "), %zu sink%s (", cfg->nsinks, cfg->nsinks == 1 ? "" : "s");
    for (i = 0; i < cfg->nsinks; i++) {
        const struct sl_sink_config *k = &cfg->sinks[i];
        config_out(&o, "%s%s %s %s -> %s", i ? ", " : "", k->name, sink_types[k->type].name,
                   k->type == SL_SINK_TCP ? k->target : k->path, k->queue);
    }
    config_out(&o, ")");
}

int
sl_config_key_info(size_t i, struct sl_config_key_info *info)
{
    enum config_kind kind;

    for (kind = 0; kind < CONFIG_NKINDS; kind++) {
        const struct config_kind_desc *desc = &config_kinds[kind];
        const struct config_key *key;
        if (i >= desc->nkeys) {
            i -= desc->nkeys;
            continue;
        }
        key = &desc->keys[i];
        info->section = desc->name;
        info->name = key->name;
        info->def = key->def_doc != NULL ? key->def_doc : key->def != NULL ? key->def : "";
        info->only = NULL;
        for (const struct config_choice *t = desc->types; key->types != 0 && t->name; t++) {
            if (key->types == 1u << t->value) {
                info->only = t->name; /* keys valid for one type: all there are so far */
            }
        }
        assert(key->types == 0 || info->only != NULL);
        info->required = (key->flags & KEY_REQUIRED) != 0;
        info->doc = key->doc;
        return 0;
    }
    return -1;
}
