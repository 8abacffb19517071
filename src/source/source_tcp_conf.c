/*
 * source_tcp_conf — the keys of a source with type = tcp.
 *
 * Parsed into struct sl_source_tcp_config (source_tcp.h); the entry's
 * impl is the type itself (source_tcp.c).  Runs on the main
 * thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>

#include "codec/framing_conf.h"
#include "daemon/registry.h"
#include "source/source_tcp.h"

#define TCP_OFF(f) offsetof(struct sl_source_tcp_config, f)
static const struct sl_conf_key source_tcp_keys[] = {
    SL_SOURCE_TCP_FRAMED_KEYS(TCP_OFF),
    SL_TLS_SOURCE_KEYS(TCP_OFF(tls)),
};

void
sl_source_tcp_conf_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_source_tcp_config *t = conf;
    sl_framing_conf_default(chk, common, &t->framing);
}

/* tcp's own check: the shared one, then its TLS keys (unix_stream has
 * none: its struct's tls stays off). */
static void
tcp_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_source_tcp_config *t = conf;
    sl_source_tcp_conf_check(chk, common, conf);
    sl_tls_conf_check(chk, &t->tls, SL_TLS_SERVER);
}

static void
tcp_fini(void *conf)
{
    struct sl_source_tcp_config *t = conf;
    sl_tls_conf_fini(&t->tls);
}

const struct sl_conf_type sl_source_tcp_conf = {
    .name = "tcp",
    .keys = source_tcp_keys,
    .nkeys = SL_CONF_NKEYS(source_tcp_keys),
    .size = sizeof(struct sl_source_tcp_config),
    .check = tcp_check,
    .fini = tcp_fini,
    .impl.source = &sl_source_tcp,
};
