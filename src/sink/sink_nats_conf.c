/*
 * sink_nats_conf — the keys of a sink with type = nats, and their checks.
 *
 * Parsed into struct sl_sink_nats_config (sink_nats.h).  Runs on the main
 * thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/registry.h"
#include "sink/sink_nats.h"

#include <openssl/ssl.h>

static const struct sl_conf_choice messages[] = {
    {"event", SL_NATS_MESSAGE_EVENT},
    {"batch", SL_NATS_MESSAGE_BATCH},
    {NULL, 0},
};

_Static_assert(sizeof(enum sl_nats_message) == sizeof(int), "enum written through int *");

static void
nats_servers_free(char **v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

void
sl_nats_servers_fini(struct sl_nats_servers *u)
{
    free(u->url);
    nats_servers_free(u->servers, u->nservers);
    memset(u, 0, sizeof(*u));
}

/* One or more server URLs ("nats://host:port", "tls://host:port" or
 * "host:port"), separated by commas and/or blanks.  libnats resolves them
 * when it connects (and again at every reconnection). */
int
sl_nats_key_url(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                size_t whylen)
{
    static const char seps[] = ", \t";
    struct sl_nats_servers *k = (struct sl_nats_servers *)(void *)((char *)obj + key->offset);
    char show[SL_CONF_SHOW_MAX + 8];
    char **v = calloc(SL_NATS_MAX_SERVERS, sizeof(*v));
    int n = 0;
    const char *p = value;

    if (v == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (;;) {
        p += strspn(p, seps);
        if (*p == '\0') {
            break;
        }
        size_t len = strcspn(p, seps);
        if (n == SL_NATS_MAX_SERVERS) {
            snprintf(why, whylen, "more than %d servers", SL_NATS_MAX_SERVERS);
            goto err;
        }
        if ((v[n] = strndup(p, len)) == NULL) {
            snprintf(why, whylen, "out of memory");
            goto err;
        }
        const char *hp = strstr(v[n], "://");
        hp = hp != NULL ? hp + 3 : v[n];
        if (strchr(hp, ':') == NULL || strchr(v[n], '"') != NULL) {
            sl_conf_expected(why, whylen, "nats://host:port", sl_conf_show(show, sizeof(show), v[n]));
            n++;
            goto err;
        }
        n++;
        p += len;
    }
    if (n == 0) {
        sl_conf_expected(why, whylen, "nats://host:port[, nats://host:port ...]", value);
        goto err;
    }
    if (sl_conf_store_string(&k->url, value, why, whylen) < 0) {
        goto err;
    }
    nats_servers_free(k->servers, k->nservers);
    k->servers = v;
    k->nservers = n;
    return 0;
err:
    nats_servers_free(v, n);
    return -1;
}

int
sl_nats_url_host(const char *url, char *buf, size_t len)
{
    const char *h = strstr(url, "://");
    h = h != NULL ? h + 3 : url;
    const char *at = strchr(h, '@');
    if (at != NULL) {
        h = at + 1; /* user:password@ */
    }
    size_t n;
    if (h[0] == '[') {
        const char *e = strchr(h, ']');
        if (e == NULL) {
            return -1;
        }
        h++;
        n = (size_t)(e - h);
    } else {
        n = strcspn(h, ":/");
    }
    if (n == 0 || n >= len) {
        return -1;
    }
    memcpy(buf, h, n);
    buf[n] = '\0';
    return 0;
}

/* A subject token character: printable ASCII but blanks and the
 * wildcards (a subject published to names one subject). */
static bool
nats_subject_char(char c)
{
    return c > 0x20 && c < 0x7f && c != '*' && c != '>';
}

int
sl_nats_subject(const char *tmpl, const char *queue, char *buf, size_t len, char *why,
                size_t whylen)
{
    size_t o = 0;

    for (const char *p = tmpl; *p != '\0';) {
        const char *piece = p;
        size_t plen = 1;
        if (p[0] == '%' && p[1] == '{') {
            const char *end = strchr(p, '}');
            if (end == NULL) {
                snprintf(why, whylen, "unterminated %%{ in the subject");
                return -1;
            }
            size_t nlen = (size_t)(end - p - 2);
            if (nlen == 5 && strncmp(p + 2, "queue", 5) == 0) {
                piece = queue;
                plen = strlen(queue);
            } else if (nlen == 6 && strncmp(p + 2, "source", 6) == 0) {
                snprintf(why, whylen,
                         "%%{source} is not supported: a chunk holds the events of every source "
                         "feeding its queue; give each source its own queue and use %%{queue}");
                return -1;
            } else {
                snprintf(why, whylen, "unknown field %%{%.*s} in the subject (only %%{queue})",
                         (int)(nlen > 32 ? 32 : nlen), p + 2);
                return -1;
            }
            p = end + 1;
        } else {
            if (!nats_subject_char(*p)) {
                snprintf(why, whylen, "a subject takes no blanks, control bytes or wildcards");
                return -1;
            }
            p++;
        }
        if (o + plen >= len) {
            snprintf(why, whylen, "the subject is too long");
            return -1;
        }
        memcpy(buf + o, piece, plen);
        o += plen;
    }
    buf[o] = '\0';
    if (o == 0 || buf[0] == '.' || buf[o - 1] == '.' || strstr(buf, "..") != NULL) {
        snprintf(why, whylen, "a subject is tokens separated by single dots");
        return -1;
    }
    return (int)o;
}

static int
nats_key_subject(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    char buf[512];

    /* A queue name is 1..64 of [A-Za-z0-9_.-]: "q" stands for any. */
    if (sl_nats_subject(value, "q", buf, sizeof(buf) - 64, why, whylen) < 0) {
        return -1;
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

/* A stream name or sender id: [A-Za-z0-9_-]{1,64} (no dots: the message
 * id uses ':' and stream names may not hold '.'). */
int
sl_nats_key_token(const struct sl_conf_key *key, const char *value, void *obj, char *why,
               size_t whylen)
{
    if (!sl_conf_valid_name(value, SL_CONF_NAME_MAX) || strchr(value, '.') != NULL) {
        return sl_conf_expected(why, whylen, "1 to 64 of A-Z a-z 0-9 _ -", value);
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

int
sl_nats_key_text(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return sl_conf_expected(why, whylen, "text without control characters", "...");
        }
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

void
sl_nats_check_auth(struct sl_conf_check *chk, const char *user, const char *password,
                   const char *creds_file)
{
    if ((user != NULL) != (password != NULL)) {
        sl_conf_error(chk, sl_conf_key_line(chk, user != NULL ? "user" : "password"),
                      "%s: user and password go together", sl_conf_label(chk));
    }
    if (user != NULL && creds_file != NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "creds_file"),
                      "%s: creds_file and user/password exclude each other", sl_conf_label(chk));
    }
}

static void
nats_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_sink_nats_config *k = conf;
    char a[32], b[32];

    (void)common;
    if (!sl_conf_key_bad(chk, "retry_initial") && !sl_conf_key_bad(chk, "retry_max") &&
        k->retry_max_ms < k->retry_initial_ms) {
        sl_conf_format_duration(a, sizeof(a), k->retry_max_ms);
        sl_conf_format_duration(b, sizeof(b), k->retry_initial_ms);
        sl_conf_error(chk, sl_conf_key_line(chk, "retry_max"),
                      "%s: retry_max (%s) must be at least retry_initial (%s)", sl_conf_label(chk),
                      a, b);
    }
    sl_nats_check_auth(chk, k->user, k->password, k->creds_file);
    sl_tls_conf_check(chk, &k->tls, SL_TLS_CLIENT);
    for (int i = 0; !k->tls.on && i < k->url.nservers; i++) {
        if (strncmp(k->url.servers[i], "tls://", 6) == 0) {
            /* libnats would speak TLS without our CA and name checks. */
            sl_conf_error(chk, sl_conf_key_line(chk, "url"),
                          "%s: %s asks for TLS: set tls = on and tls_ca_file", sl_conf_label(chk),
                          k->url.servers[i]);
            break;
        }
    }
    if (k->tls.on && k->tls.server_name == NULL && !sl_conf_key_bad(chk, "url")) {
        /* libnats checks one expected name for every server: without
         * tls_server_name it is the url's host, which must be the same for
         * all of them. */
        char h0[256], h[256];
        for (int i = 0; i < k->url.nservers; i++) {
            if (sl_nats_url_host(k->url.servers[i], i == 0 ? h0 : h, sizeof(h)) < 0) {
                sl_conf_error(chk, sl_conf_key_line(chk, "url"), "%s: no host in %s",
                              sl_conf_label(chk), k->url.servers[i]);
                break;
            }
            if (i > 0 && strcmp(h, h0) != 0) {
                sl_conf_error(chk, sl_conf_key_line(chk, "url"),
                              "%s: with tls = on and servers on different hosts (%s, %s), set "
                              "tls_server_name: the name every server's certificate carries",
                              sl_conf_label(chk), h0, h);
                break;
            }
        }
    }
    if (k->tls.on && k->tls.min_version > TLS1_2_VERSION && k->tls.ciphers != NULL) {
        /* libnats has no setter for the floor: the sink gets TLS 1.3 only
         * by offering no TLS 1.2 suite, through the TLS 1.2 cipher list
         * (sink_nats.c, DESIGN: TLS), which is then not the user's. */
        sl_conf_error(chk, sl_conf_key_line(chk, "tls_ciphers"),
                      "%s: tls_ciphers (the TLS 1.2 cipher list) cannot be set with "
                      "tls_min_version = 1.3: a nats sink then offers no TLS 1.2 cipher suite",
                      sl_conf_label(chk));
    }
}

/* A disk queue: the sink numbers the records it reads and keeps that
 * numbering with the queue's committed position (checkpoint/restore), so a
 * restart resends them under the same Nats-Msg-Id (sink_nats.c). */
static void
nats_xref(struct sl_conf_check *chk, const struct sl_config *cfg, void *common, void *conf)
{
    const struct sl_sink_config *sc = common;
    struct sl_sink_nats_config *k = conf;

    (void)chk;
    /* A sink whose queue did not resolve (already reported) has no index. */
    k->disk_queue = sc->queue_index < cfg->nqueues &&
                    cfg->queues[sc->queue_index].type == SL_QUEUE_DISK;
}

static void
nats_fini(void *conf)
{
    struct sl_sink_nats_config *k = conf;

    sl_nats_servers_fini(&k->url);
    free(k->subject);
    free(k->stream);
    free(k->sender_id);
    free(k->user);
    free(k->password);
    free(k->creds_file);
    sl_tls_conf_fini(&k->tls);
}

static const char *
nats_summary(const void *conf)
{
    const struct sl_sink_nats_config *k = conf;

    return k->subject;
}

#define NATS_OFF(f) offsetof(struct sl_sink_nats_config, f)
static const struct sl_conf_key sink_nats_keys[] = {
    {.name = "url",
     .parse = sl_nats_key_url,
     .offset = NATS_OFF(url),
     .flags = SL_CONF_REQUIRED,
     .doc = "NATS server(s): nats://host:port, several separated by commas"},
    {.name = "subject",
     .parse = nats_key_subject,
     .offset = NATS_OFF(subject),
     .flags = SL_CONF_REQUIRED,
     .doc = "subject to publish to: literals and %{queue}"},
    {.name = "stream",
     .parse = sl_nats_key_token,
     .offset = NATS_OFF(stream),
     .flags = SL_CONF_REQUIRED,
     .doc = "the JetStream stream the subject must be stored in (checked on every publish)"},
    {.name = "message",
     .parse = sl_conf_key_enum,
     .offset = NATS_OFF(message),
     .choices = messages,
     .def = "event",
     .doc = "event: one event per message; batch: one NDJSON chunk per message"},
    {.name = "sender_id",
     .parse = sl_nats_key_token,
     .offset = NATS_OFF(sender_id),
     .def_doc = "the host name",
     .doc = "first part of every Nats-Msg-Id (unique per sending sluiced)"},
    {.name = "max_inflight",
     .parse = sl_conf_key_uint,
     .offset = NATS_OFF(max_inflight),
     .min = 1,
     .max = 65536,
     .def = "4096",
     .doc = "messages published and not yet acknowledged, at most"},
    {.name = "max_inflight_bytes",
     .parse = sl_conf_key_size,
     .offset = NATS_OFF(max_inflight_bytes),
     .min = 4 * SL_CONF_KIB,
     .max = SL_CONF_GIB,
     .def = "16MiB",
     .doc = "bytes published and not yet acknowledged, at most"},
    {.name = "ack_timeout",
     .parse = sl_conf_key_duration,
     .offset = NATS_OFF(ack_timeout_ms),
     .min = 10,
     .max = SL_CONF_MS_PER_DAY,
     .def = "5s",
     .doc = "a publish not acknowledged this long is resent (same Nats-Msg-Id)"},
    {.name = "retry_initial",
     .parse = sl_conf_key_duration,
     .offset = NATS_OFF(retry_initial_ms),
     .min = 1,
     .max = SL_CONF_MS_PER_DAY,
     .def = "100ms",
     .doc = "first resend / reconnection delay; doubles up to retry_max"},
    {.name = "retry_max",
     .parse = sl_conf_key_duration,
     .offset = NATS_OFF(retry_max_ms),
     .min = 1,
     .max = SL_CONF_MS_PER_DAY,
     .def = "10s",
     .doc = "longest resend / reconnection delay"},
    SL_NATS_AUTH_KEYS(struct sl_sink_nats_config),
    SL_TLS_SINK_KEYS(NATS_OFF(tls)),
};

const struct sl_conf_type sl_sink_nats_conf = {
    .name = "nats",
    .keys = sink_nats_keys,
    .nkeys = SL_CONF_NKEYS(sink_nats_keys),
    .size = sizeof(struct sl_sink_nats_config),
    .check = nats_check,
    .xref = nats_xref,
    .fini = nats_fini,
    .summary = nats_summary,
    .impl.sink = &sl_sink_nats_ops,
};
