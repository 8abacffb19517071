/*
 * sink_tcp_conf — the keys of a sink with type = tcp, and their checks.
 *
 * Parsed into struct sl_sink_tcp_config (sink_tcp.h).  Runs on the main
 * thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/registry.h"
#include "sink/sink_tcp.h"

#include <openssl/ssl.h>

const struct sl_conf_choice sl_sink_tcp_balances[] = {
    {"failover", SL_BALANCE_FAILOVER},
    {"round_robin", SL_BALANCE_ROUND_ROBIN},
    {NULL, 0},
};

_Static_assert(sizeof(enum sl_balance) == sizeof(int), "enum written through int *");

static void
tcp_targets_free(struct sl_sink_target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].text);
    }
    free(t);
}

/* One or more addresses separated by commas and/or blanks, resolved now.
 * key->offset is that of the target text; the targets live in the same
 * struct sl_sink_tcp_config (offsetof(..., target) is 0, so the struct
 * starts at offset - 0). */
int
sl_sink_tcp_key_targets(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                size_t whylen)
{
    static const char seps[] = ", \t";
    struct sl_sink_tcp_config *k = (struct sl_sink_tcp_config *)(void *)((char *)obj + key->offset);
    struct sl_sink_target *t;
    char word[SL_CONF_HOSTNAME_MAX + 16], show[SL_CONF_SHOW_MAX + 8];
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
            sl_conf_expected(why, whylen, "host:port", sl_conf_show(show, sizeof(show), p));
            goto err;
        }
        memcpy(word, p, len);
        word[len] = '\0';
        p += len;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(t[i].text, word) == 0) {
                snprintf(why, whylen, "target \"%s\" is listed twice",
                         sl_conf_show(show, sizeof(show), word));
                goto err;
            }
        }
        if (sl_conf_parse_address(word, &t[n].addr, &t[n].addrlen, why, whylen) < 0) {
            goto err;
        }
        if ((t[n].text = strdup(word)) == NULL) {
            snprintf(why, whylen, "out of memory");
            goto err;
        }
        n++;
    }
    if (n == 0) {
        sl_conf_expected(why, whylen, "host:port[, host:port ...]", value);
        goto err;
    }
    if (sl_conf_store_string(&k->target, value, why, whylen) < 0) {
        goto err;
    }
    tcp_targets_free(k->targets, k->ntargets);
    k->targets = t;
    k->ntargets = n;
    return 0;
err:
    tcp_targets_free(t, n);
    return -1;
}

void
sl_sink_tcp_conf_check(struct sl_conf_check *chk, struct sl_sink_tcp_config *k)
{
    char a[32], b[32];

    sl_tls_conf_check(chk, &k->tls, SL_TLS_CLIENT);

    if (sl_conf_key_bad(chk, "retry_initial") || sl_conf_key_bad(chk, "retry_max") ||
        k->retry_max_ms >= k->retry_initial_ms) {
        return;
    }
    sl_conf_format_duration(a, sizeof(a), k->retry_max_ms);
    sl_conf_format_duration(b, sizeof(b), k->retry_initial_ms);
    sl_conf_error(chk, sl_conf_key_line(chk, "retry_max"),
                  "%s: retry_max (%s) must be at least retry_initial (%s)", sl_conf_label(chk), a,
                  b);
}

/* tcp's own check: the shared one, then the TLS version rule of a tcp sink
 * with a client certificate (sink_tcp.c, "TLS": it speaks TLS 1.2 then, so
 * a refused certificate is known before any event is sent). */
static void
tcp_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_sink_tcp_config *k = conf;
    sl_sink_tcp_conf_check(chk, conf);
    if (k->tls.on && k->tls.cert_file != NULL && k->tls.min_version == TLS1_3_VERSION) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls_min_version"),
                      "%s: tls_min_version = 1.3 with tls_cert_file is not possible on a tcp sink: "
                      "in TLS 1.3 the receiver judges the client certificate after the sink's "
                      "handshake, so a refusal would lose the events already sent; the sink "
                      "speaks TLS 1.2 with a client certificate (use a sluice sink for TLS 1.3 "
                      "with client certificates)",
                      sl_conf_label(chk));
    }
}

void
sl_sink_tcp_conf_fini(struct sl_sink_tcp_config *k)
{
    free(k->target);
    tcp_targets_free(k->targets, k->ntargets);
    sl_tls_conf_fini(&k->tls);
}

static void
tcp_fini(void *conf)
{
    sl_sink_tcp_conf_fini(conf);
}

static const char *
tcp_summary(const void *conf)
{
    const struct sl_sink_tcp_config *k = conf;

    return k->target;
}

#define TCP_OFF(f) offsetof(struct sl_sink_tcp_config, f)
static const struct sl_conf_key sink_tcp_keys[] = {
    SL_SINK_TCP_CONN_KEYS(TCP_OFF),
    {.name = "write_timeout",
     .parse = sl_conf_key_duration,
     .offset = TCP_OFF(write_timeout_ms),
     .min = 1,
     .max = SL_CONF_MS_PER_DAY,
     .def = "30s",
     .flags = SL_CONF_RELOAD,
     .doc = "a peer that acknowledges nothing asked of it this long is given up"},
    {.name = "idle_timeout",
     .parse = sl_conf_key_duration,
     .offset = TCP_OFF(idle_timeout_ms),
     .max = SL_CONF_MS_PER_DAY,
     .def = "1min",
     .flags = SL_CONF_RELOAD,
     .doc = "close a connection idle this long, reconnect on demand; 0 = never"},
};

const struct sl_conf_type sl_sink_tcp_conf = {
    .name = "tcp",
    .keys = sink_tcp_keys,
    .nkeys = SL_CONF_NKEYS(sink_tcp_keys),
    .size = sizeof(struct sl_sink_tcp_config),
    .check = tcp_check,
    .fini = tcp_fini,
    .summary = tcp_summary,
    .impl.sink = &sl_sink_tcp_ops,
};
