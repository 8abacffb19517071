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
 *  3. config_key_cb(), the inih handler, rejects keys that no table of the
 *     section's kind has and duplicate keys, and keeps the others (copied:
 *     inih's strings live only for the call).  It always returns 1 so inih
 *     keeps going.
 *  4. After the file, per section: resolve "type" in the registry and
 *     allocate the type's struct, parse each kept key with its table's
 *     parser (a key of another type is an error naming both), apply
 *     defaults, run the kind's and the type's checks.  Parsing waits for
 *     the end of the section because "type" may come after the keys.
 *  5. Cross-references between sections (queues linked and drained, one
 *     listener per address, batches that fit), then the types' xref and
 *     finish hooks.
 *
 * This file knows no module.  The key tables (name, parser, offset, range,
 * default, reload flag, one-line doc) and the checks belong to the kinds
 * and types, which src/daemon/registry.c lists (see sluice/conf.h); they
 * drive parsing, defaults, the docs test and sl_config_key_info.
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
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <ini.h>

#include "daemon/registry.h"
#include "sluice/conf.h"
#include "sluice/source.h"

#define KIB SL_CONF_KIB
#define MIB SL_CONF_MIB
#define GIB SL_CONF_GIB
#define MS_PER_S SL_CONF_MS_PER_S
#define MS_PER_MIN SL_CONF_MS_PER_MIN
#define MS_PER_HOUR (60 * MS_PER_MIN)
#define MS_PER_DAY SL_CONF_MS_PER_DAY

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes; a config is a few KiB */
#define CONFIG_READ_MIN 4096          /* first read buffer, bytes */

/* Enum fields are written through int *; make sure that is their size. */

/* The section kinds are the registry's (sluice/conf.h): daemon, source, queue, sink. */
#define config_kind sl_conf_section
#define CONFIG_DAEMON SL_CONF_DAEMON
#define CONFIG_SOURCE SL_CONF_SOURCE
#define CONFIG_QUEUE SL_CONF_QUEUE
#define CONFIG_SINK SL_CONF_SINK
#define CONFIG_NKINDS SL_CONF_NSECTIONS

/* Error phases: sort order of the messages. */
enum config_phase { PHASE_LINE, PHASE_XREF, PHASE_FILE };

/* One "key = value" of a section, kept until the section is parsed (inih's strings are not). */
struct config_entry {
    char *name;
    char *value;
    int line;
};

/* What became of one key of a section's tables: where it was set, and whether refused. */
struct config_slot {
    int line; /* 0: not set */
    bool bad; /* set, but the value was refused */
};

/* One per accepted section of the file, in file order. */
struct config_meta {
    enum config_kind kind;
    size_t index; /* into cfg->sources, queues or sinks */
    int line;
    int end_line; /* last line of the section (before the next header) */
    struct config_entry *entries;
    size_t nentries, capentries;
    const struct sl_conf_type *type; /* NULL: none, unknown or not set */
    struct config_slot *slots;       /* the kind's keys, then the type's */
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

/* The check handle given to the modules' hooks: one section, one phase. */
struct sl_conf_check {
    struct config_ctx *c;
    struct config_meta *m;
    enum config_phase phase;
    char label[SL_CONF_NAME_MAX + 16];
};

/* ---- small helpers ------------------------------------------------------------------- */

/*
 * Copies s into buf (len bytes) for quoting in a message: control bytes and
 * '"' become '?', and text longer than SL_CONF_SHOW_MAX is cut with "...".
 * Returns buf.
 */
const char *
sl_conf_show(char *buf, size_t len, const char *s)
{
    size_t i, n = 0;

    assert(len > SL_CONF_SHOW_MAX + 4);
    for (i = 0; s[i] != '\0' && n < SL_CONF_SHOW_MAX; i++) {
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
int
sl_conf_expected(char *why, size_t whylen, const char *what, const char *value)
{
    char show[SL_CONF_SHOW_MAX + 8];

    snprintf(why, whylen, "expected %s, got \"%s\"", what, sl_conf_show(show, sizeof(show), value));
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
config_parse_unit(const char *s, const struct sl_conf_choice *units, uint64_t factors[],
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
    static const struct sl_conf_choice units[] = {
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
    static const struct sl_conf_choice units[] = {
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
void
sl_conf_format_size(char *buf, size_t len, uint64_t v)
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

void
sl_conf_format_duration(char *buf, size_t len, uint64_t ms)
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
bool
sl_conf_valid_name(const char *s, size_t max)
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
void
sl_conf_format_choices(char *buf, size_t len, const struct sl_conf_choice *ch)
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

const struct sl_conf_choice *
sl_conf_find_choice(const struct sl_conf_choice *ch, const char *s)
{
    for (; ch->name != NULL; ch++) {
        if (strcmp(ch->name, s) == 0) {
            return ch;
        }
    }
    return NULL;
}

/* ---- address parsing ----------------------------------------------------------------- */

/* Splits "[v6]:port" or "host:port" into host (NUL-terminated) and port; -1 with why. */
static int
config_split_address(const char *s, char *host, size_t hostcap, const char **port, bool *bracketed,
                     char *why, size_t whylen)
{
    char show[SL_CONF_SHOW_MAX + 8];
    const char *close, *colon, *start = s;
    size_t hostlen;

    *bracketed = s[0] == '[';
    if (*bracketed) {
        close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            goto expected;
        }
        start = s + 1;
        hostlen = (size_t)(close - start);
        *port = close + 2;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            goto expected;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            if (whylen > 0) {
                snprintf(why, whylen,
                         "expected host:port, got \"%s\" (write an IPv6 address as [addr]:port)",
                         sl_conf_show(show, sizeof(show), s));
            }
            return -1;
        }
        hostlen = (size_t)(colon - s);
        *port = colon + 1;
    }
    if (hostlen == 0 || hostlen >= hostcap) {
        goto expected;
    }
    memcpy(host, start, hostlen);
    host[hostlen] = '\0';
    return 0;

expected:
    if (whylen > 0) {
        sl_conf_expected(why, whylen, "host:port", s);
    }
    return -1;
}

/* A port from 1 to 65535; -1 with why. */
static int
config_parse_port(const char *port, uint16_t *out, char *why, size_t whylen)
{
    char show[SL_CONF_SHOW_MAX + 8];
    const char *p;
    uint64_t v;

    if (config_parse_u64(port, &v, &p) != PARSE_OK || *p != '\0' || v < 1 || v > 65535) {
        if (whylen > 0) {
            snprintf(why, whylen, "expected a port from 1 to 65535, got \"%s\"",
                     sl_conf_show(show, sizeof(show), port));
        }
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

/*
 * An unbracketed host that is no IPv4 address must be DNS-shaped: digits
 * and dots that inet_pton refused ("256.1.1.1", "127.1") must not go to the
 * resolver as a name.
 */
static int
config_check_hostname(const char *host, char *why, size_t whylen, const char *whole)
{
    char show[SL_CONF_SHOW_MAX + 8];

    if (strspn(host, "0123456789.") == strlen(host)) {
        if (whylen > 0) {
            snprintf(why, whylen, "expected an IPv4 address like 127.0.0.1, got \"%s\"",
                     sl_conf_show(show, sizeof(show), host));
        }
        return -1;
    }
    if (!sl_conf_valid_name(host, SL_CONF_HOSTNAME_MAX)) {
        if (whylen > 0) {
            sl_conf_expected(why, whylen, "host:port", whole);
        }
        return -1;
    }
    return 0;
}

/* Resolves host (a name, or an IPv6 address when bracketed) with getaddrinfo; -1 with why. */
static int
config_resolve(const char *host, const char *port, bool bracketed, struct sockaddr_storage *ss,
               socklen_t *sslen, char *why, size_t whylen)
{
    char show[SL_CONF_SHOW_MAX + 8];
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(*ss)) {
        if (whylen > 0 && bracketed) {
            snprintf(why, whylen, "expected an IPv6 address in [], got \"%s\"",
                     sl_conf_show(show, sizeof(show), host));
        } else if (whylen > 0) {
            snprintf(why, whylen, "cannot resolve \"%s\": %s",
                     sl_conf_show(show, sizeof(show), host),
                     rc != 0 ? gai_strerror(rc) : "no address");
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
}

/* host:port, [v6]:port; see the header.  Fills why (if not NULL) on failure. */
int
sl_conf_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *why,
                      size_t whylen)
{
    char host[SL_CONF_HOSTNAME_MAX + 1];
    struct sockaddr_in sin;
    const char *port;
    bool bracketed;
    uint16_t portnum;

    if (why == NULL) {
        whylen = 0;
    }
    if (config_split_address(s, host, sizeof(host), &port, &bracketed, why, whylen) < 0 ||
        config_parse_port(port, &portnum, why, whylen) < 0) {
        return -1;
    }
    if (!bracketed && inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(portnum);
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, &sin, sizeof(sin));
        *sslen = sizeof(sin);
        return 0;
    }
    if (!bracketed && config_check_hostname(host, why, whylen, s) < 0) {
        return -1;
    }
    return config_resolve(host, port, bracketed, ss, sslen, why, whylen);
}

int
sl_config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    if (s == NULL) {
        return -1;
    }
    return sl_conf_parse_address(s, ss, len, NULL, 0);
}

bool
sl_conf_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
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
    if (a->ss_family == AF_UNIX) {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        return strncmp(x->sun_path, y->sun_path, sizeof(x->sun_path)) == 0;
    }
    return false;
}

/* ---- value parsers (the table's parse functions) ------------------------------------- */

#define FIELD(obj, key, type) ((type *)(void *)((char *)(obj) + (key)->offset))

int
sl_conf_key_enum(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    const struct sl_conf_choice *ch = sl_conf_find_choice(key->choices, value);
    char what[128];

    if (ch == NULL) {
        sl_conf_format_choices(what, sizeof(what), key->choices);
        return sl_conf_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, int) = ch->value;
    return 0;
}

int
sl_conf_key_uint(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    char what[96];
    const char *end;
    uint64_t v;

    if (config_parse_u64(value, &v, &end) != PARSE_OK || *end != '\0' || v < key->min ||
        v > key->max) {
        snprintf(what, sizeof(what), "an integer from %llu to %llu", (unsigned long long)key->min,
                 (unsigned long long)key->max);
        return sl_conf_expected(why, whylen, what, value);
    }
    assert(key->max <= UINT_MAX);
    *FIELD(obj, key, unsigned) = (unsigned)v;
    return 0;
}

int
sl_conf_key_size(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    char what[96], lo[32], hi[32];
    size_t v = 0;
    int rc = config_parse_size(value, &v);

    if (rc == PARSE_SYNTAX) {
        return sl_conf_expected(why, whylen, "a size like 4096, 64KiB, 16MiB or 1GiB", value);
    }
    if (rc == PARSE_OVERFLOW || v < key->min || v > key->max) {
        sl_conf_format_size(lo, sizeof(lo), key->min);
        sl_conf_format_size(hi, sizeof(hi), key->max);
        snprintf(what, sizeof(what), "a size from %s to %s", lo, hi);
        return sl_conf_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, size_t) = v;
    return 0;
}

int
sl_conf_key_duration(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                     size_t whylen)
{
    char what[96], lo[32], hi[32];
    uint64_t v = 0;
    int rc = config_parse_duration(value, &v);

    if (rc == PARSE_SYNTAX) {
        return sl_conf_expected(why, whylen, "a duration like 250ms, 5s or 2min", value);
    }
    if (rc == PARSE_OVERFLOW || v < key->min || v > key->max) {
        sl_conf_format_duration(lo, sizeof(lo), key->min);
        sl_conf_format_duration(hi, sizeof(hi), key->max);
        snprintf(what, sizeof(what), "a duration from %s to %s", key->min == 0 ? "0" : lo, hi);
        return sl_conf_expected(why, whylen, what, value);
    }
    *FIELD(obj, key, uint64_t) = v;
    return 0;
}

int
sl_conf_store_string(char **field, const char *value, char *why, size_t whylen)
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

int
sl_conf_key_name(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    if (!sl_conf_valid_name(value, SL_CONF_NAME_MAX)) {
        return sl_conf_expected(why, whylen, "a queue name (1 to 64 of A-Z a-z 0-9 _ . -)", value);
    }
    return sl_conf_store_string(FIELD(obj, key, char *), value, why, whylen);
}

int
sl_conf_key_path(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    const char *p;

    if (value[0] == '\0') {
        return sl_conf_expected(why, whylen, "a file path", value);
    }
    for (p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return sl_conf_expected(why, whylen, "a file path without control characters", value);
        }
    }
    if (strlen(value) >= PATH_MAX) {
        return sl_conf_expected(why, whylen, "a file path shorter than PATH_MAX", value);
    }
    return sl_conf_store_string(FIELD(obj, key, char *), value, why, whylen);
}

int
sl_conf_key_mode(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    size_t n = strspn(value, "01234567");
    unsigned long v;

    if (n == 0 || n > 4 || value[n] != '\0' || (v = strtoul(value, NULL, 8)) > 0777) {
        return sl_conf_expected(why, whylen, "an octal mode like 0640 (at most 0777)", value);
    }
    *FIELD(obj, key, mode_t) = (mode_t)v;
    return 0;
}

int
sl_conf_key_bool(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0) {
        *FIELD(obj, key, bool) = true;
    } else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0) {
        *FIELD(obj, key, bool) = false;
    } else {
        return sl_conf_expected(why, whylen, "yes or no", value);
    }
    return 0;
}
/* One or more addresses separated by commas and/or blanks, resolved now. */

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
        snprintf(buf, len, "%s", sl_registry[m->kind].kind->name);
    } else {
        snprintf(buf, len, "%s \"%s\"", sl_registry[m->kind].kind->name, name);
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
    m->type = NULL;
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
    char show[SL_CONF_SHOW_MAX + 8], show2[SL_CONF_SHOW_MAX + 8];
    const char *end = config_find_chars_or_comment(line + 1, "]");
    const char *rest;
    char *inner, *kind_end, *name;
    struct config_meta *prev;
    enum config_kind kind;

    c->cur = CUR_SKIP; /* until the header proves good */
    if (*end != ']') {
        config_error(c, PHASE_LINE, c->lineno, "section header \"%s\" has no closing \"]\"",
                     sl_conf_show(show, sizeof(show), line));
        return;
    }
    rest = end + 1;
    rest += strspn(rest, " \t\r\f\v");
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        config_error(c, PHASE_LINE, c->lineno, "unexpected text after section header: \"%s\"",
                     sl_conf_show(show, sizeof(show), rest));
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
        if (strcmp(inner, sl_registry[kind].kind->name) == 0) {
            break;
        }
    }
    if (kind == CONFIG_NKINDS) {
        config_error(c, PHASE_LINE, c->lineno, "unknown section \"[%s%s%s]\": %s",
                     sl_conf_show(show, sizeof(show), inner), *name ? " " : "",
                     sl_conf_show(show2, sizeof(show2), name), expect);
        return;
    }
    if (kind == CONFIG_DAEMON) {
        if (*name != '\0') {
            config_error(c, PHASE_LINE, c->lineno, "[daemon] takes no name, got \"%s\"",
                         sl_conf_show(show, sizeof(show), name));
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
                     sl_registry[kind].kind->name, sl_registry[kind].kind->name);
        return;
    }
    if (!sl_conf_valid_name(name, SL_CONF_NAME_MAX)) {
        config_error(
            c, PHASE_LINE, c->lineno, "invalid %s name \"%s\": use 1 to %d of A-Z a-z 0-9 _ . -",
            sl_registry[kind].kind->name, sl_conf_show(show, sizeof(show), name), SL_CONF_NAME_MAX);
        return;
    }
    prev = config_find_section(c, kind, name);
    if (prev != NULL) {
        config_error(c, PHASE_LINE, c->lineno, "duplicate %s \"%s\" (first defined at line %d)",
                     sl_registry[kind].kind->name, name, prev->line);
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
    char show[SL_CONF_SHOW_MAX + 8];
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
                     sl_conf_show(show, sizeof(show), line));
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
/* Finds name among the keys of the kind of m, then of its type; *slot: its index in m->slots. */
static const struct sl_conf_key *
config_lookup(const struct config_meta *m, const char *name, size_t *slot)
{
    const struct sl_conf_kind *kd = sl_registry[m->kind].kind;
    size_t i;

    for (i = 0; i < kd->nkeys; i++) {
        if (strcmp(kd->keys[i].name, name) == 0) {
            *slot = i;
            return &kd->keys[i];
        }
    }
    for (i = 0; m->type != NULL && i < m->type->nkeys; i++) {
        if (strcmp(m->type->keys[i].name, name) == 0) {
            *slot = kd->nkeys + i;
            return &m->type->keys[i];
        }
    }
    return NULL;
}

/* The key name of type t, or NULL. */
static const struct sl_conf_key *
config_type_key(const struct sl_conf_type *t, const char *name)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        if (strcmp(t->keys[i].name, name) == 0) {
            return &t->keys[i];
        }
    }
    return NULL;
}

/* True when name is a key of kind or of any of its types. */
static bool
config_known(enum config_kind kind, const char *name)
{
    const struct sl_conf_kind *kd = sl_registry[kind].kind;
    const struct sl_conf_type *const *t = sl_registry[kind].types;

    for (size_t i = 0; i < kd->nkeys; i++) {
        if (strcmp(kd->keys[i].name, name) == 0) {
            return true;
        }
    }
    for (; t != NULL && *t != NULL; t++) {
        if (config_type_key(*t, name) != NULL) {
            return true;
        }
    }
    return false;
}

/*
 * The inih handler: one "key = value" of the current section.  Unknown and
 * duplicate keys are reported here; the others are kept and parsed once the
 * section's type is known (it may come last).  Always returns 1.
 */
static int
config_key_cb(void *user, const char *section, const char *name, const char *value)
{
    struct config_ctx *c = user;
    char label[SL_CONF_NAME_MAX + 16], show[SL_CONF_SHOW_MAX + 8];
    struct config_entry *e;
    struct config_meta *m;

    (void)section; /* the reader tracks sections; inih never sees a header */
    if (c->cur == CUR_SKIP) {
        return 1; /* the header's error was reported */
    }
    if (c->cur == CUR_NONE) {
        config_error(c, PHASE_LINE, c->lineno, "key \"%s\" is outside any section",
                     sl_conf_show(show, sizeof(show), name));
        return 1;
    }
    m = &c->metas[c->cur];
    config_label(c, m, label, sizeof(label));
    if (*name == '\0') {
        config_error(c, PHASE_LINE, c->lineno, "%s: expected \"key = value\", got no key", label);
        return 1;
    }
    if (!config_known(m->kind, name)) {
        config_error(c, PHASE_LINE, c->lineno, "%s: unknown key \"%s\"", label,
                     sl_conf_show(show, sizeof(show), name));
        return 1;
    }
    for (size_t i = 0; i < m->nentries; i++) {
        if (strcmp(m->entries[i].name, name) == 0) {
            config_error(c, PHASE_LINE, c->lineno,
                         "%s: duplicate key \"%s\" (first set at line %d)", label, name,
                         m->entries[i].line);
            return 1;
        }
    }
    e = config_grow((void **)&m->entries, &m->nentries, &m->capentries, sizeof(*e));
    if (e == NULL || (e->name = strdup(name)) == NULL || (e->value = strdup(value)) == NULL) {
        c->oom = true;
        return 1;
    }
    e->line = c->lineno;
    return 1;
}

/* ---- parsing a section --------------------------------------------------------------- */

/* Where the common struct of m keeps its type; NULL for kinds without types. */
static void
config_type_fields(struct config_ctx *c, const struct config_meta *m,
                   const struct sl_conf_type ***type, void ***conf)
{
    *type = NULL;
    *conf = NULL;
    if (m->kind == CONFIG_SOURCE) {
        *type = &c->cfg->sources[m->index].type;
        *conf = &c->cfg->sources[m->index].type_conf;
    } else if (m->kind == CONFIG_SINK) {
        *type = &c->cfg->sinks[m->index].type;
        *conf = &c->cfg->sinks[m->index].type_conf;
    }
}

static void *
config_type_conf(struct config_ctx *c, const struct config_meta *m)
{
    const struct sl_conf_type **type;
    void **conf;

    config_type_fields(c, m, &type, &conf);
    return conf != NULL ? *conf : NULL;
}

/* Resolves the section's "type" entry in the registry; allocates the type's struct. */
static void
config_section_type(struct config_ctx *c, struct config_meta *m, const char *label)
{
    const struct sl_conf_type *const *types = sl_registry[m->kind].types;
    struct sl_conf_choice names[16];
    const struct sl_conf_type **typep;
    char what[128], why[512];
    void **confp;
    size_t n = 0;

    if (types == NULL) {
        return; /* a kind without module types (queue): "type" is one of its keys */
    }
    for (size_t i = 0; i < m->nentries; i++) {
        const char *value = m->entries[i].value;
        if (strcmp(m->entries[i].name, "type") != 0) {
            continue;
        }
        m->type = sl_registry_find(m->kind, value);
        if (m->type == NULL) {
            for (; types != NULL && types[n] != NULL && n + 1 < SL_CONF_NKEYS(names); n++) {
                names[n].name = types[n]->name;
                names[n].value = (int)n;
            }
            names[n].name = NULL;
            sl_conf_format_choices(what, sizeof(what), names);
            sl_conf_expected(why, sizeof(why), what, value);
            config_error(c, PHASE_LINE, m->entries[i].line, "%s: type: %s", label, why);
            return;
        }
        config_type_fields(c, m, &typep, &confp);
        *typep = m->type;
        if (m->type->size > 0 && (*confp = calloc(1, m->type->size)) == NULL) {
            c->oom = true;
        }
        return;
    }
}

/* "tcp", "tcp, relp": the types of the kind of m that have key name. */
static void
config_types_with(const struct config_meta *m, const char *name, char *buf, size_t len)
{
    const struct sl_conf_type *const *t = sl_registry[m->kind].types;
    size_t off = 0;

    buf[0] = '\0';
    for (; t != NULL && *t != NULL && off < len; t++) {
        if (config_type_key(*t, name) != NULL) {
            int w = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", (*t)->name);
            off += w > 0 ? (size_t)w : 0;
        }
    }
}

/*
 * A key of some other type of the kind.  Its value is checked by the first
 * type that has it, so one run reports every mistake; then, with the
 * section's type known, the key itself is an error.
 */
static void
config_foreign_key(struct config_ctx *c, struct config_meta *m, const struct config_entry *e,
                   const char *label)
{
    const struct sl_conf_type *const *t = sl_registry[m->kind].types;
    const struct sl_conf_key *key = NULL;
    char types[128], why[512];
    void *scratch;

    for (; t != NULL && *t != NULL && (key = config_type_key(*t, e->name)) == NULL; t++) {
    }
    if (key == NULL) {
        return; /* config_key_cb let only known keys through */
    }
    scratch = calloc(1, (*t)->size > 0 ? (*t)->size : 1);
    if (scratch == NULL) {
        c->oom = true;
        return;
    }
    why[0] = '\0';
    if (key->parse(key, e->value, scratch, why, sizeof(why)) < 0) {
        config_error(c, PHASE_LINE, e->line, "%s: %s: %s", label, e->name, why);
    }
    if ((*t)->fini != NULL) {
        (*t)->fini(scratch);
    }
    free(scratch);
    if (m->type != NULL) {
        config_types_with(m, e->name, types, sizeof(types));
        config_error(c, PHASE_LINE, e->line,
                     "%s: key \"%s\" is not a key of type %s (it is one of: %s)", label, e->name,
                     m->type->name, types);
    }
}

/* Parses the kept entries of m into the kind's struct and the type's. */
static void
config_section_parse(struct config_ctx *c, struct config_meta *m)
{
    const struct sl_conf_kind *kd = sl_registry[m->kind].kind;
    char label[SL_CONF_NAME_MAX + 16], why[512];
    size_t nslots;

    config_label(c, m, label, sizeof(label));
    config_section_type(c, m, label);
    nslots = kd->nkeys + (m->type != NULL ? m->type->nkeys : 0);
    m->slots = calloc(nslots + 1, sizeof(*m->slots));
    if (m->slots == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < m->nentries; i++) {
        const struct config_entry *e = &m->entries[i];
        size_t slot;
        const struct sl_conf_key *key = config_lookup(m, e->name, &slot);
        void *obj;

        if (key == NULL) {
            config_foreign_key(c, m, e, label);
            continue;
        }
        m->slots[slot].line = e->line;
        if ((key->flags & SL_CONF_TYPE) != 0) {
            m->slots[slot].bad = m->type == NULL;
            continue;
        }
        obj = slot < kd->nkeys ? config_obj(c, m) : config_type_conf(c, m);
        if (obj == NULL) {
            continue; /* out of memory, reported */
        }
        why[0] = '\0';
        if (key->parse(key, e->value, obj, why, sizeof(why)) < 0) {
            m->slots[slot].bad = true;
            config_error(c, PHASE_LINE, e->line, "%s: %s: %s", label, e->name, why);
        }
    }
}

/* ---- defaults and checks of a section ------------------------------------------------ */

/* The default of key for a section of type t: the type's override or the table's. */
static const char *
config_default(const struct sl_conf_type *t, const struct sl_conf_key *key)
{
    for (const struct sl_conf_default *d = t != NULL ? t->defaults : NULL; d && d->name; d++) {
        if (strcmp(d->name, key->name) == 0) {
            return d->def;
        }
    }
    return key->def;
}

/* True when type t lists key in its defaults with no value: a key its
 * kind requires that this type does not take (a nats source: listen). */
static bool
config_type_lifts(const struct sl_conf_type *t, const struct sl_conf_key *key)
{
    for (const struct sl_conf_default *d = t != NULL ? t->defaults : NULL; d && d->name; d++) {
        if (strcmp(d->name, key->name) == 0 && d->def == NULL) {
            return true;
        }
    }
    return false;
}

/* Applies the defaults of keys[0..n) not set (slots) into obj; reports missing keys. */
static void
config_apply_defaults(struct config_ctx *c, struct config_meta *m, const struct sl_conf_key *keys,
                      size_t n, const struct config_slot *slots, void *obj, const char *label)
{
    char why[512];

    for (size_t i = 0; i < n; i++) {
        const struct sl_conf_key *key = &keys[i];
        const char *def;

        if (slots[i].line != 0) {
            continue;
        }
        if ((key->flags & SL_CONF_REQUIRED) != 0 && !config_type_lifts(m->type, key)) {
            config_error_end(c, m, "%s: missing required key \"%s\"", label, key->name);
            continue;
        }
        def = config_default(m->type, key);
        if (def != NULL && obj != NULL && key->parse(key, def, obj, why, sizeof(why)) < 0) {
            if (strcmp(why, "out of memory") == 0) {
                c->oom = true;
                continue;
            }
            assert(!"a table default does not parse");
        }
    }
}

static void
config_check_init(struct sl_conf_check *chk, struct config_ctx *c, struct config_meta *m,
                  enum config_phase phase)
{
    chk->c = c;
    chk->m = m;
    chk->phase = phase;
    config_label(c, m, chk->label, sizeof(chk->label));
}

/* Applies defaults, reports missing keys and runs the kind's and the type's checks. */
static void
config_section_check(struct config_ctx *c, struct config_meta *m)
{
    const struct sl_conf_kind *kd = sl_registry[m->kind].kind;
    struct sl_conf_check chk;
    void *obj = config_obj(c, m), *conf = config_type_conf(c, m);

    if (m->slots == NULL) {
        return; /* out of memory */
    }
    config_check_init(&chk, c, m, PHASE_LINE);
    config_apply_defaults(c, m, kd->keys, kd->nkeys, m->slots, obj, chk.label);
    if (m->type != NULL) {
        config_apply_defaults(c, m, m->type->keys, m->type->nkeys, m->slots + kd->nkeys, conf,
                              chk.label);
    }
    if (kd->check != NULL) {
        kd->check(&chk, obj);
    }
    if (m->type != NULL && m->type->check != NULL && (conf != NULL || m->type->size == 0)) {
        m->type->check(&chk, obj, conf);
    }
}

/* ---- the check handle (sluice/conf.h) ------------------------------------------------ */

static const struct config_slot *
config_slot(const struct config_meta *m, const char *name)
{
    size_t slot;

    if (config_lookup(m, name, &slot) == NULL || m->slots == NULL) {
        abort(); /* a check asked for a key its tables do not have */
    }
    return &m->slots[slot];
}

static int
config_key_line(const struct config_meta *m, const char *name)
{
    const struct config_slot *s = config_slot(m, name);

    return s->line != 0 ? s->line : m->line;
}

static bool
config_key_good(const struct config_meta *m, const char *name)
{
    const struct config_slot *s = config_slot(m, name);

    return s->line != 0 && !s->bad;
}

static bool
config_key_bad(const struct config_meta *m, const char *name)
{
    return config_slot(m, name)->bad;
}

const char *
sl_conf_label(const struct sl_conf_check *chk)
{
    return chk->label;
}

int
sl_conf_line(const struct sl_conf_check *chk)
{
    return chk->m->line;
}

int
sl_conf_key_line(const struct sl_conf_check *chk, const char *name)
{
    return config_key_line(chk->m, name);
}

int
sl_conf_key_line_of(const struct sl_conf_check *chk, const void *obj, const char *name)
{
    for (size_t i = 0; i < chk->c->nmetas; i++) {
        if (config_obj(chk->c, &chk->c->metas[i]) == obj) {
            return config_key_line(&chk->c->metas[i], name);
        }
    }
    abort();
}

bool
sl_conf_key_set(const struct sl_conf_check *chk, const char *name)
{
    return config_slot(chk->m, name)->line != 0;
}

bool
sl_conf_key_good(const struct sl_conf_check *chk, const char *name)
{
    return config_key_good(chk->m, name);
}

bool
sl_conf_key_bad(const struct sl_conf_check *chk, const char *name)
{
    return config_key_bad(chk->m, name);
}

void
sl_conf_error(struct sl_conf_check *chk, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_verror(chk->c, chk->phase, line, line, fmt, ap);
    va_end(ap);
}

void
sl_conf_error_file(struct sl_conf_check *chk, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_verror(chk->c, PHASE_FILE, line, line, fmt, ap);
    va_end(ap);
}

void
sl_conf_oom(struct sl_conf_check *chk)
{
    chk->c->oom = true;
}

/* ---- cross-references ---------------------------------------------------------------- */

/* Resolves a queue name to its index; reports a missing queue. */
static void
config_link_queue(struct config_ctx *c, const struct config_meta *m, const char *queue,
                  size_t *index, bool *drained)
{
    char label[SL_CONF_NAME_MAX + 16];
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
    char label[SL_CONF_NAME_MAX + 16], a[32], b[32];

    if (s->max_line_bytes + SL_CONFIG_CHUNK_HEADROOM <= q->chunk_bytes) {
        return;
    }
    sl_conf_format_size(a, sizeof(a), s->max_line_bytes);
    sl_conf_format_size(b, sizeof(b), q->chunk_bytes);
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
    char label[SL_CONF_NAME_MAX + 16], a[32], b[32];
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
    sl_conf_format_size(a, sizeof(a), k->batch_max_bytes);
    sl_conf_format_size(b, sizeof(b), q->capacity);
    config_error(c, PHASE_XREF, config_key_line(m, "batch_max_bytes"),
                 "%s: batch_max_bytes (%s) must be at most half the capacity (%s) of queue \"%s\"",
                 config_label(c, m, label, sizeof(label)), a, b, q->name);
}

/* True when sources of two types on one address would take each other's
 * traffic: their sockets are of one kind (tcp, sluice and relp are all TCP
 * listeners: a tcp and a sluice source on one port would join one
 * SO_REUSEPORT group and the kernel would hand each connection to either
 * at random).  A stream and a datagram source share a port (TCP and UDP
 * ports are apart). */
static bool
config_listen_clash(const struct sl_conf_type *a, const struct sl_conf_type *b)
{
    const struct sl_source_type *sa = a->impl.source;
    const struct sl_source_type *sb = b->impl.source;
    return sa != NULL && sb != NULL && sa->socktype == sb->socktype;
}

/* No two sources whose sockets are of one kind listen on one address
 * (config_listen_clash), and no two local sources (of any type) on one
 * path. */
static void
config_xref_listen(struct config_ctx *c, const struct config_meta *m, size_t upto)
{
    const struct sl_source_config *s = &c->cfg->sources[m->index];
    char label[SL_CONF_NAME_MAX + 16];

    if (!config_key_good(m, "listen") || m->type == NULL) {
        return;
    }
    for (size_t j = 0; j < upto; j++) {
        const struct config_meta *o = &c->metas[j];
        const struct sl_source_config *t = &c->cfg->sources[o->index];

        bool same = o->type == m->type || s->addr.ss_family == AF_UNIX;
        if (o->kind == CONFIG_SOURCE && o->type != NULL &&
            (same || config_listen_clash(o->type, m->type)) && config_key_good(o, "listen") &&
            sl_conf_same_address(&s->addr, &t->addr)) {
            if (same) {
                config_error(c, PHASE_XREF, config_key_line(m, "listen"),
                             "%s: listen: %s %s is already used by source \"%s\" (line %d)",
                             config_label(c, m, label, sizeof(label)), m->type->name, s->listen,
                             t->name, config_key_line(o, "listen"));
            } else {
                config_error(c, PHASE_XREF, config_key_line(m, "listen"),
                             "%s: listen: %s %s is already used by %s source \"%s\" (line %d): "
                             "both listen on %s, and the kernel would split the traffic between "
                             "them",
                             config_label(c, m, label, sizeof(label)), m->type->name, s->listen,
                             o->type->name, t->name, config_key_line(o, "listen"),
                             m->type->impl.source->socktype == SOCK_DGRAM ? "UDP" : "TCP");
            }
            return;
        }
    }
}

/* The metas[i] source's queue, the line that must fit in its chunks, its address. */
static void
config_xref_source(struct config_ctx *c, size_t i)
{
    const struct config_meta *m = &c->metas[i];
    struct sl_source_config *s = &c->cfg->sources[m->index];

    s->queue_index = SIZE_MAX;
    config_link_queue(c, m, s->queue, &s->queue_index, NULL);
    if (s->queue_index != SIZE_MAX) {
        config_check_line_fits(c, m, s, &c->cfg->queues[s->queue_index]);
    }
    config_xref_listen(c, m, i);
}

/* A sink's queue (marked drained) and the batch that must fit in it. */
static void
config_xref_sink(struct config_ctx *c, const struct config_meta *m, bool *drained)
{
    struct sl_sink_config *k = &c->cfg->sinks[m->index];
    size_t qi = SIZE_MAX;

    config_link_queue(c, m, k->queue, &qi, drained);
    if (qi != SIZE_MAX) {
        k->queue_index = qi;
        config_check_batch_fits(c, m, k, &c->cfg->queues[qi]);
    }
}

/* Every queue is drained by a sink; the file has a source, a queue and a sink. */
static void
config_xref_whole(struct config_ctx *c, const bool *drained)
{
    struct sl_config *cfg = c->cfg;
    char label[SL_CONF_NAME_MAX + 16];

    for (size_t i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];
        if (m->kind == CONFIG_QUEUE && !drained[m->index]) {
            config_error(c, PHASE_XREF, m->line,
                         "%s: no sink drains this queue (add a [sink NAME] with queue = %s)",
                         config_label(c, m, label, sizeof(label)), cfg->queues[m->index].name);
        }
    }
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

/* Runs the xref (phase PHASE_XREF) or finish hook of every typed section. */
static void
config_type_hooks(struct config_ctx *c, bool finish)
{
    struct sl_conf_check chk;

    for (size_t i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];
        void *conf = config_type_conf(c, m);

        if (m->type == NULL || m->slots == NULL || (conf == NULL && m->type->size > 0)) {
            continue;
        }
        config_check_init(&chk, c, m, PHASE_XREF);
        if (!finish && m->type->xref != NULL) {
            m->type->xref(&chk, c->cfg, config_obj(c, m), conf);
        } else if (finish && m->type->finish != NULL) {
            m->type->finish(&chk, config_obj(c, m), conf);
        }
    }
}

static void
config_cross_check(struct config_ctx *c)
{
    bool *drained = calloc(c->cfg->nqueues + 1, sizeof(*drained));

    if (drained == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < c->nmetas; i++) {
        if (c->metas[i].slots == NULL) {
            continue; /* out of memory */
        }
        if (c->metas[i].kind == CONFIG_SOURCE) {
            config_xref_source(c, i);
        } else if (c->metas[i].kind == CONFIG_SINK) {
            config_xref_sink(c, &c->metas[i], drained);
        }
    }
    config_type_hooks(c, false);
    config_xref_whole(c, drained);
    free(drained);
}

/* ---- load / free --------------------------------------------------------------------- */

static void
config_metas_free(struct config_ctx *c)
{
    for (size_t i = 0; i < c->nmetas; i++) {
        struct config_meta *m = &c->metas[i];
        for (size_t j = 0; j < m->nentries; j++) {
            free(m->entries[j].name);
            free(m->entries[j].value);
        }
        free(m->entries);
        free(m->slots);
    }
    free(c->metas);
}

static int
config_kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sl_config_key_value *)a)->name,
                  ((const struct sl_config_key_value *)b)->name);
}

/* Copies what each section said into cfg->sections (struct sl_config_section). */
static void
config_record_sections(struct config_ctx *c)
{
    struct sl_config *cfg = c->cfg;

    cfg->sections = calloc(c->nmetas > 0 ? c->nmetas : 1, sizeof(*cfg->sections));
    if (cfg->sections == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < c->nmetas; i++) {
        const struct config_meta *m = &c->metas[i];
        struct sl_config_section *sec = &cfg->sections[cfg->nsections++];
        const char *name = config_obj_name(c, m);
        sec->kind = (int)m->kind;
        sec->line = m->line;
        if (name != NULL && (sec->name = strdup(name)) == NULL) {
            c->oom = true;
            return;
        }
        sec->keys = calloc(m->nentries > 0 ? m->nentries : 1, sizeof(*sec->keys));
        if (sec->keys == NULL) {
            c->oom = true;
            return;
        }
        for (size_t j = 0; j < m->nentries; j++) {
            struct sl_config_key_value *kv = &sec->keys[sec->nkeys++];
            size_t slot;
            const struct sl_conf_key *key = config_lookup(m, m->entries[j].name, &slot);
            kv->line = m->entries[j].line;
            kv->reload = key != NULL && (key->flags & SL_CONF_RELOAD) != 0;
            if ((kv->name = strdup(m->entries[j].name)) == NULL ||
                (kv->value = strdup(m->entries[j].value)) == NULL) {
                c->oom = true;
                return;
            }
        }
        qsort(sec->keys, sec->nkeys, sizeof(*sec->keys), config_kv_cmp);
    }
}

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
        config_section_parse(&c, &c.metas[i]);
        config_section_check(&c, &c.metas[i]);
    }
    if (c.daemon_meta < 0) {
        memset(&daemon_defaults, 0, sizeof(daemon_defaults));
        daemon_defaults.kind = CONFIG_DAEMON;
        config_section_parse(&c, &daemon_defaults);
        config_section_check(&c, &daemon_defaults);
        free(daemon_defaults.slots);
    }
    config_cross_check(&c);
    config_type_hooks(&c, true);
    if (c.nerrs == 0 && !c.oom) {
        config_record_sections(&c);
    }

done:
    if (c.oom) {
        config_error(&c, PHASE_FILE, 0, "out of memory");
    }
    free(c.text);
    config_metas_free(&c);
    if (c.nerrs > 0 || c.oom) {
        config_errors_hand_over(&c, errs);
        sl_config_free(c.cfg);
        return NULL;
    }
    free(c.errs);
    return c.cfg;
}

static void
config_type_conf_free(const struct sl_conf_type *type, void *conf)
{
    if (conf != NULL && type != NULL && type->fini != NULL) {
        type->fini(conf);
    }
    free(conf);
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
        config_type_conf_free(cfg->sources[i].type, cfg->sources[i].type_conf);
    }
    for (i = 0; i < cfg->nqueues; i++) {
        free(cfg->queues[i].name);
        free(cfg->queues[i].path);
    }
    for (i = 0; i < cfg->nsinks; i++) {
        free(cfg->sinks[i].name);
        free(cfg->sinks[i].queue);
        config_type_conf_free(cfg->sinks[i].type, cfg->sinks[i].type_conf);
    }
    for (i = 0; i < cfg->nsections; i++) {
        struct sl_config_section *sec = &cfg->sections[i];
        for (size_t j = 0; j < sec->nkeys; j++) {
            free(sec->keys[j].name);
            free(sec->keys[j].value);
        }
        free(sec->keys);
        free(sec->name);
    }
    free(cfg->sections);
    free(cfg->sources);
    free(cfg->queues);
    free(cfg->sinks);
    free(cfg->daemon.hostname);
    free(cfg->daemon.admin_listen);
    free(cfg->daemon.admin_token_file);
    sl_tls_conf_fini(&cfg->daemon.admin_tls);
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
        const char *where = s->listen != NULL             ? s->listen
                            : s->type->summary != NULL ? s->type->summary(s->type_conf)
                                                       : "-";
        config_out(&o, "%s%s %s %s %s -> %s", i ? ", " : "", s->name, s->type->name, where,
                   s->codec->name, s->queue);
    }
    config_out(&o, "), %zu queue%s (", cfg->nqueues, cfg->nqueues == 1 ? "" : "s");
    for (i = 0; i < cfg->nqueues; i++) {
        sl_conf_format_size(size, sizeof(size), cfg->queues[i].capacity);
        config_out(&o, "%s%s %s", i ? ", " : "", cfg->queues[i].name, size);
    }
    config_out(&o, "), %zu sink%s (", cfg->nsinks, cfg->nsinks == 1 ? "" : "s");
    for (i = 0; i < cfg->nsinks; i++) {
        const struct sl_sink_config *k = &cfg->sinks[i];
        const char *what = k->type->summary != NULL ? k->type->summary(k->type_conf) : NULL;
        config_out(&o, "%s%s %s %s -> %s", i ? ", " : "", k->name, k->type->name,
                   what != NULL ? what : "", k->queue);
    }
    config_out(&o, ")");
}

static void
config_key_info_fill(struct sl_config_key_info *info, const char *section, const char *only,
                     const struct sl_conf_key *key)
{
    info->section = section;
    info->name = key->name;
    info->def = key->def_doc != NULL ? key->def_doc : key->def != NULL ? key->def : "";
    info->only = only;
    info->required = (key->flags & SL_CONF_REQUIRED) != 0;
    info->reload = (key->flags & SL_CONF_RELOAD) != 0;
    info->doc = key->doc;
}

/* True when a type listed before t in types has a key named name. */
static bool
config_key_listed_before(const struct sl_conf_type *const *types, const struct sl_conf_type *t,
                         const char *name)
{
    for (; *types != t; types++) {
        if (config_type_key(*types, name) != NULL) {
            return true;
        }
    }
    return false;
}

int
sl_config_key_info(size_t i, struct sl_config_key_info *info)
{
    for (size_t kind = 0; kind < SL_CONF_NSECTIONS; kind++) {
        const struct sl_conf_kind *kd = sl_registry[kind].kind;
        const struct sl_conf_type *const *t = sl_registry[kind].types;

        if (i < kd->nkeys) {
            config_key_info_fill(info, kd->name, NULL, &kd->keys[i]);
            return 0;
        }
        i -= kd->nkeys;
        /* A key several types share (max_connections: tcp, unix_stream)
         * is listed once, with the first of them as its type. */
        for (; t != NULL && *t != NULL; t++) {
            for (size_t k = 0; k < (*t)->nkeys; k++) {
                if (config_key_listed_before(sl_registry[kind].types, *t, (*t)->keys[k].name)) {
                    continue;
                }
                if (i == 0) {
                    config_key_info_fill(info, kd->name, (*t)->name, &(*t)->keys[k]);
                    return 0;
                }
                i--;
            }
        }
    }
    return -1;
}
