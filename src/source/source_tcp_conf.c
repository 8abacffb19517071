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
    {.name = "max_connections",
     .parse = sl_conf_key_uint,
     .offset = TCP_OFF(max_connections),
     .min = 1,
     .max = 1000000,
     .def = "10000",
     .flags = SL_CONF_RELOAD,
     .doc = "open connections at most, over all threads"},
    {.name = "idle_timeout",
     .parse = sl_conf_key_duration,
     .offset = TCP_OFF(idle_timeout_ms),
     .max = SL_CONF_MS_PER_DAY,
     .def = "5min",
     .flags = SL_CONF_RELOAD,
     .doc = "close a connection silent this long; 0 = never"},
    SL_FRAMING_KEY(TCP_OFF(framing)),
};

static void
tcp_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_source_tcp_config *t = conf;
    sl_framing_conf_default(chk, common, &t->framing);
}

const struct sl_conf_type sl_source_tcp_conf = {
    .name = "tcp",
    .keys = source_tcp_keys,
    .nkeys = SL_CONF_NKEYS(source_tcp_keys),
    .size = sizeof(struct sl_source_tcp_config),
    .check = tcp_check,
    .impl.source = &sl_source_tcp,
};
