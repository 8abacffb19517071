/*
 * source_conf — the keys every [source NAME] has, whatever its type.
 *
 * A type's own keys are in its module (source_tcp_conf.c, ...).  Runs on the
 * main thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "codec/syslog_parse.h"
#include "daemon/registry.h"
#include "util/allow.h"
#include "sluice/config.h"
#include "sluice/source.h"

static const struct sl_conf_choice field_names[] = {
    {"time", SL_FIELD_TIME},
    {"source", SL_FIELD_SOURCE},
    {"peer", SL_FIELD_PEER},
    {"host", SL_FIELD_HOST},
    {"peer_cert", SL_FIELD_PEER_CERT},
    {NULL, 0},
};

/* A unix socket path: absolute, and short enough for sun_path. */
static int
source_parse_path(const char *value, struct sl_source_config *src, char *why, size_t whylen)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)(void *)&src->addr;
    size_t n = strlen(value);

    if (value[0] != '/' || n >= sizeof(sun->sun_path)) {
        char what[64];
        snprintf(what, sizeof(what), "an absolute path of at most %zu bytes",
                 sizeof(sun->sun_path) - 1);
        return sl_conf_expected(why, whylen, what, value);
    }
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, value, n + 1);
    src->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* An address (host:port), or a path for a local type (family AF_UNIX):
 * the type is known before any key is parsed. */
static int
source_key_listen(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                  size_t whylen)
{
    struct sl_source_config *src = obj;
    bool local = src->type != NULL && src->type->impl.source->family == AF_UNIX;

    if (local ? source_parse_path(value, src, why, whylen) < 0
              : sl_conf_parse_address(value, &src->addr, &src->addrlen, why, whylen) < 0) {
        return -1;
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

/* A codec of the registry, stored as a pointer to its entry; refused with
 * the list of registered codecs ("expected json, raw or syslog"). */
static int
source_key_codec(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    const struct sl_codec_type *codec = sl_registry_codec(value);
    struct sl_conf_choice names[16];
    char what[128];
    size_t n = 0;

    if (codec != NULL) {
        *(const struct sl_codec_type **)(void *)((char *)obj + key->offset) = codec;
        return 0;
    }
    for (; sl_registry_codecs[n] != NULL && n + 1 < SL_CONF_NKEYS(names); n++) {
        names[n].name = sl_registry_codecs[n]->name;
        names[n].value = (int)n;
    }
    names[n].name = NULL;
    sl_conf_format_choices(what, sizeof(what), names);
    return sl_conf_expected(why, whylen, what, value);
}

static int
source_key_fields(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                  size_t whylen)
{
    static const char seps[] = ", \t";
    const char *what = "a list of time, source, peer, host, peer_cert, or none";
    const struct sl_conf_choice *ch;
    char word[16], show[SL_CONF_SHOW_MAX + 8];
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
            return sl_conf_expected(why, whylen, what, value);
        }
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        if (strcmp(word, "none") == 0) {
            none = true;
            continue;
        }
        ch = sl_conf_find_choice(field_names, word);
        if (ch == NULL) {
            snprintf(why, whylen,
                     "unknown field \"%s\" (expected time, source, peer, host, peer_cert or none)",
                     sl_conf_show(show, sizeof(show), word));
            return -1;
        }
        bits |= (unsigned)ch->value;
    }
    if (words == 0 || (none && words > 1)) {
        return sl_conf_expected(why, whylen, what, value);
    }
    *(unsigned *)(void *)((char *)obj + key->offset) = bits;
    return 0;
}

/* syslog_timezone: a fixed offset, stored as seconds east of UTC. */
static int
source_key_zone(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                size_t whylen)
{
    int32_t off;
    if (sl_syslog_parse_zone(value, &off) < 0) {
        return sl_conf_expected(why, whylen, "UTC or a fixed offset like +01:00", value);
    }
    *(int32_t *)(void *)((char *)obj + key->offset) = off;
    return 0;
}

static const struct sl_conf_choice syslog_formats[] = {
    {"auto", SL_SYSLOG_AUTO},
    {"rfc5424", SL_SYSLOG_RFC5424},
    {"rfc3164", SL_SYSLOG_RFC3164},
    {NULL, 0},
};

/* The codec's keys mean nothing to another codec: say so rather than
 * ignore them. */
static void
source_check(struct sl_conf_check *chk, void *obj)
{
    static const char *const syslog_keys[] = {"syslog_format", "syslog_timezone"};
    const struct sl_source_config *src = obj;
    if (src->allow.n > 0 && src->type != NULL && strcmp(src->type->name, "tcp") != 0 &&
        strcmp(src->type->name, "udp") != 0 && strcmp(src->type->name, "sluice") != 0) {
        /* relp accepts its connections inside librelp (no hook before it
         * reads), and a unix socket's peer has no address: refuse rather
         * than leave a security setting without effect. */
        sl_conf_error(chk, sl_conf_key_line(chk, "allow"),
                      "%s: allow is only implemented for type = tcp, udp and sluice",
                      sl_conf_label(chk));
    }
    if (src->codec == &sl_codec_syslog) {
        return;
    }
    for (size_t i = 0; i < SL_CONF_NKEYS(syslog_keys); i++) {
        if (sl_conf_key_set(chk, syslog_keys[i])) {
            sl_conf_error(chk, sl_conf_key_line(chk, syslog_keys[i]), "%s: %s needs codec = syslog",
                          sl_conf_label(chk), syslog_keys[i]);
        }
    }
}

#define SRC_OFF(f) offsetof(struct sl_source_config, f)
static const struct sl_conf_key source_keys[] = {
    {.name = "type",
     .flags = SL_CONF_REQUIRED | SL_CONF_TYPE,
     .doc = "protocol: tcp, udp, sluice, relp, unix_stream or unix_dgram"},
    {.name = "listen",
     .parse = source_key_listen,
     .offset = SRC_OFF(listen),
     .flags = SL_CONF_REQUIRED,
     .doc = "address to bind: IPv4:port, [IPv6]:port or name:port; unix_*: an absolute path"},
    {.name = "codec",
     .parse = source_key_codec,
     .offset = SRC_OFF(codec),
     .def = "json",
     .doc = "json: each line is a JSON object; raw: any line, wrapped; syslog: RFC 5424/3164 "
            "parsed into fields"},
    {.name = "syslog_format",
     .parse = sl_conf_key_enum,
     .choices = syslog_formats,
     .offset = SRC_OFF(codec_opts.syslog_format),
     .def = "auto",
     .doc = "codec syslog: auto (\"<PRI>1 \" is RFC 5424, else RFC 3164), rfc5424 or rfc3164"},
    {.name = "syslog_timezone",
     .parse = source_key_zone,
     .offset = SRC_OFF(codec_opts.syslog_tz_offset_s),
     .def = "UTC",
     .doc = "codec syslog: zone of RFC 3164 timestamps: UTC or a fixed offset (+01:00)"},
    {.name = "queue",
     .parse = sl_conf_key_name,
     .offset = SRC_OFF(queue),
     .flags = SL_CONF_REQUIRED,
     .doc = "name of the queue the events go to"},
    {.name = "max_line_bytes",
     .parse = sl_conf_key_size,
     .offset = SRC_OFF(max_line_bytes),
     .min = 16,
     .max = 64 * SL_CONF_MIB,
     .def = "64KiB",
     .doc = "longer events are discarded and counted"},
    {.name = "add_fields",
     .parse = source_key_fields,
     .offset = SRC_OFF(add_fields),
     .def = "none",
     .flags = SL_CONF_RELOAD,
     .doc = "fields sluice adds to each event: time, source, peer, host, or none"},
    SL_ALLOW_KEY(SRC_OFF(allow)),
    {.name = "recv_buffer",
     .parse = sl_conf_key_size,
     .offset = SRC_OFF(recv_buffer_bytes),
     .max = SL_CONF_GIB,
     .def = "0",
     .def_doc = "0 (kernel default); udp: 4MiB",
     .doc = "socket receive buffer (SO_RCVBUF); 0 = kernel default"},
};

const struct sl_conf_kind sl_source_conf_kind = {
    .name = "source",
    .keys = source_keys,
    .nkeys = SL_CONF_NKEYS(source_keys),
    .check = source_check,
};
