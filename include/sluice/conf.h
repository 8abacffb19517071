/*
 * conf — the contract between the config engine (src/conf/config.c) and the
 * modules that own keys.
 *
 * The engine reads the INI file, finds sections and keys, reports errors as
 * "FILE:LINE: message" and knows no module.  Every section kind (daemon,
 * source, queue, sink) declares its common keys in a struct sl_conf_kind;
 * every module type of a kind (source tcp, sink file, ...) declares its own
 * keys, the size of its own config struct and its checks in a struct
 * sl_conf_type.  src/daemon/registry.c lists them all; the engine iterates
 * that list to parse, apply defaults, check and document the keys.
 *
 * A key entry: name, parser, offset of the field in the struct the table
 * belongs to (the kind's common struct or the type's own struct), range,
 * default (written as in the file and parsed by the same parser), flags
 * (required, may change on reload) and a one-line doc.
 *
 * Thread: main only (loading); the tables are static and read-only.
 */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sl_config;
struct sl_conf_key;
struct sl_sink_ops;
struct sl_source_type;

/* The section kinds; struct sl_config holds one daemon and arrays of the others. */
enum sl_conf_section {
    SL_CONF_DAEMON,
    SL_CONF_SOURCE,
    SL_CONF_QUEUE,
    SL_CONF_SINK,
    SL_CONF_NSECTIONS
};

/* One section of the file while it is being checked: opaque, borrowed for a hook call. */
struct sl_conf_check;

/*
 * Parses value into obj (the struct the key's table describes) at
 * key->offset.  Returns 0, or -1 with the reason, e.g. "expected tcp or
 * udp, got \"x\"", in why.  Copies what it keeps: value is borrowed for the
 * call only.
 */
typedef int (*sl_conf_parse_fn)(const struct sl_conf_key *key, const char *value, void *obj,
                                char *why, size_t whylen);

struct sl_conf_choice {
    const char *name;
    int value;
};

#define SL_CONF_REQUIRED 0x1u /* no default: the section must set it */
#define SL_CONF_RELOAD 0x2u   /* may change on a config reload (else a restart is needed) */
#define SL_CONF_TYPE 0x4u     /* the kind's "type" key: the engine resolves it in the registry */

struct sl_conf_key {
    const char *name;
    sl_conf_parse_fn parse; /* NULL for SL_CONF_TYPE */
    size_t offset;
    uint64_t min, max;                    /* numbers, sizes, durations */
    const struct sl_conf_choice *choices; /* enums: NULL-terminated */
    const char *def;                      /* default as written; NULL: none or computed */
    const char *def_doc;                  /* default as documented, if def does not say it */
    unsigned flags;                       /* SL_CONF_* */
    const char *doc;                      /* one line */
};

/* A default a type gives a key of its kind ("recv_buffer" is 4MiB for udp). */
struct sl_conf_default {
    const char *name;
    const char *def;
};

/*
 * A section kind: its common keys and the check between them.  check runs
 * after the keys of the section were parsed and defaults applied; obj is the
 * kind's struct (struct sl_daemon_config, sl_source_config, ...).
 */
struct sl_conf_kind {
    const char *name; /* "daemon", "source", "queue", "sink" */
    const struct sl_conf_key *keys;
    size_t nkeys;
    void (*check)(struct sl_conf_check *chk, void *obj);
};

/*
 * A module type of a section kind ("type = tcp").  The engine allocates size
 * zeroed bytes (none when 0) for the type's own struct, hangs them off the
 * common struct's type_conf, parses the type's keys into them and applies
 * their defaults; then, each NULL when not needed:
 *   check(chk, common, conf)     checks between the section's keys;
 *   xref(chk, cfg, common, conf) checks against other sections, after every
 *                                section was checked;
 *   finish(chk, common, conf)    last adjustments, after every xref;
 *   fini(conf)                   frees what conf owns (not conf itself);
 *   summary(conf)                what `sluiced -n` shows after the type
 *                                (a path, a target), or NULL.
 *
 * impl is the module itself, the vtable the running daemon calls, by kind:
 * impl.source (struct sl_source_type, sluice/source.h) for a source type,
 * impl.sink (struct sl_sink_ops, sluice/sink.h) for a sink type.  The
 * engine never reads it; the daemon reads cfg->type->impl, so the registry
 * line that lists a type's keys also lists its code.
 */
struct sl_conf_type {
    const char *name; /* value of the type key */
    const struct sl_conf_key *keys;
    size_t nkeys;
    const struct sl_conf_default
        *defaults; /* overrides of kind defaults; NULL-terminated or NULL */
    size_t size;
    void (*check)(struct sl_conf_check *chk, void *common, void *conf);
    void (*xref)(struct sl_conf_check *chk, const struct sl_config *cfg, void *common, void *conf);
    void (*finish)(struct sl_conf_check *chk, void *common, void *conf);
    void (*fini)(void *conf);
    const char *(*summary)(const void *conf);
    union {
        const struct sl_source_type *source;
        const struct sl_sink_ops *sink;
    } impl;
};

#define SL_CONF_NKEYS(t) (sizeof(t) / sizeof((t)[0]))

/* ---- for checks: the section being checked ----------------------------------------- */

/* `source "app"`, `daemon`: how messages name the section.  Valid during the call. */
const char *sl_conf_label(const struct sl_conf_check *chk);
/* Line of the section header. */
int sl_conf_line(const struct sl_conf_check *chk);
/* Line where key name was set, or the header's line when it was not. */
int sl_conf_key_line(const struct sl_conf_check *chk, const char *name);
/* Same, for the section whose common struct is obj (another source, sink, ...). */
int sl_conf_key_line_of(const struct sl_conf_check *chk, const void *obj, const char *name);
/* Set in the file (good or bad); set and its value accepted; set and refused. */
bool sl_conf_key_set(const struct sl_conf_check *chk, const char *name);
bool sl_conf_key_good(const struct sl_conf_check *chk, const char *name);
bool sl_conf_key_bad(const struct sl_conf_check *chk, const char *name);

/*
 * Records "PATH:LINE: message".  sl_conf_error lists it among the errors of
 * the phase running (per-line checks, or cross-references in xref);
 * sl_conf_error_file among the errors about the whole file, at the end.
 */
void sl_conf_error(struct sl_conf_check *chk, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sl_conf_error_file(struct sl_conf_check *chk, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An allocation failed: the load fails with "out of memory". */
void sl_conf_oom(struct sl_conf_check *chk);

/* ---- value parsers for key tables (see sl_conf_parse_fn) ---------------------------- */

int sl_conf_key_enum(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_conf_key_uint(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_conf_key_size(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_conf_key_duration(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_conf_key_bool(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_conf_key_mode(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_conf_key_path(const struct sl_conf_key *, const char *, void *, char *, size_t);
/* A queue name (section name syntax), stored as a new string. */
int sl_conf_key_name(const struct sl_conf_key *, const char *, void *, char *, size_t);

/* ---- helpers for module parsers and checks ------------------------------------------ */

#define SL_CONF_NAME_MAX 64      /* section names: bytes */
#define SL_CONF_HOSTNAME_MAX 253 /* RFC 1035 text form */
#define SL_CONF_SHOW_MAX 80      /* user text quoted in a message */

#define SL_CONF_KIB ((uint64_t)1024)
#define SL_CONF_MIB (SL_CONF_KIB * 1024)
#define SL_CONF_GIB (SL_CONF_MIB * 1024)
#define SL_CONF_MS_PER_S ((uint64_t)1000)
#define SL_CONF_MS_PER_MIN (60 * SL_CONF_MS_PER_S)
#define SL_CONF_MS_PER_DAY (24 * 60 * SL_CONF_MS_PER_MIN)

/* s made safe to quote (control bytes and '"' as '?', cut at SL_CONF_SHOW_MAX); returns buf. */
const char *sl_conf_show(char *buf, size_t len, const char *s);
/* "expected <what>, got "<value>"" into why; returns -1. */
int sl_conf_expected(char *why, size_t whylen, const char *what, const char *value);
/* [A-Za-z0-9_.-]{1,max} */
bool sl_conf_valid_name(const char *s, size_t max);
/* Replaces *field with a copy of value; -1 ("out of memory" in why) on failure. */
int sl_conf_store_string(char **field, const char *value, char *why, size_t whylen);
/* "16MiB", "5min": the largest unit that divides the value. */
void sl_conf_format_size(char *buf, size_t len, uint64_t v);
void sl_conf_format_duration(char *buf, size_t len, uint64_t ms);
/* "tcp or udp", "err, warning, notice, info or debug" */
void sl_conf_format_choices(char *buf, size_t len, const struct sl_conf_choice *ch);
const struct sl_conf_choice *sl_conf_find_choice(const struct sl_conf_choice *ch, const char *s);
/* sl_config_parse_address() with the reason for a refusal in why. */
int sl_conf_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *why,
                          size_t whylen);
/* True when a and b are the same address and port. */
bool sl_conf_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
