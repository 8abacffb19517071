/*
 * sink_sluice_conf — the keys of a sink with type = sluice: the tcp sink's
 * connection keys (SL_SINK_TCP_CONN_KEYS) plus the acknowledgement keys.
 * Main thread, while the config loads (sluice/conf.h).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/registry.h"
#include "proto/sluice_proto.h"
#include "sink/sink_sluice.h"

static int
sluice_key_sender_id(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                     size_t whylen)
{
    if (!sl_proto_id_ok(value, strlen(value))) {
        return sl_conf_expected(why, whylen, "1 to 64 of A-Z a-z 0-9 . _ : -", value);
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

static void
sluice_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_sink_sluice_config *k = conf;

    sl_sink_tcp_conf_check(chk, &k->tcp);
    if (k->tcp.balance == SL_BALANCE_ROUND_ROBIN) {
        sl_conf_error(chk, sl_conf_key_line(chk, "balance"),
                      "%s: balance = round_robin is not supported by the sluice sink (one "
                      "ordered, acknowledged stream per sender); use failover",
                      sl_conf_label(chk));
    }
}

static void
sluice_fini(void *conf)
{
    struct sl_sink_sluice_config *k = conf;

    sl_sink_tcp_conf_fini(&k->tcp);
    free(k->sender_id);
}

static const char *
sluice_summary(const void *conf)
{
    const struct sl_sink_sluice_config *k = conf;

    return k->tcp.target;
}

#define TCP_OFF(f) offsetof(struct sl_sink_sluice_config, tcp.f)
#define SL_OFF(f) offsetof(struct sl_sink_sluice_config, f)
static const struct sl_conf_key sink_sluice_keys[] = {
    SL_SINK_TCP_CONN_KEYS(TCP_OFF),
    {.name = "ack_timeout",
     .parse = sl_conf_key_duration,
     .offset = SL_OFF(ack_timeout_ms),
     .min = 10,
     .max = SL_CONF_MS_PER_DAY,
     .def = "10s",
     .flags = SL_CONF_RELOAD,
     .doc = "batches out and no ack or keepalive this long: the receiver is dead, reconnect "
            "and resend"},
    {.name = "window",
     .parse = sl_conf_key_uint,
     .offset = SL_OFF(window_batches),
     .min = 1,
     .max = 65536,
     .def = "64",
     .flags = SL_CONF_RELOAD,
     .doc = "batches sent and not yet acknowledged, at most"},
    {.name = "window_bytes",
     .parse = sl_conf_key_size,
     .offset = SL_OFF(window_bytes),
     .min = 4096,
     .max = SL_CONF_GIB,
     .def = "16MiB",
     .flags = SL_CONF_RELOAD,
     .doc = "bytes of batches sent and not yet acknowledged, at most (also the resend "
            "buffer)"},
    {.name = "sender_id",
     .parse = sluice_key_sender_id,
     .offset = SL_OFF(sender_id),
     .def_doc = "<hostname>.<sink name>",
     .doc = "the id the receiver keys its duplicate filter by; unique among its senders"},
};

const struct sl_conf_type sl_sink_sluice_conf = {
    .name = "sluice",
    .keys = sink_sluice_keys,
    .nkeys = SL_CONF_NKEYS(sink_sluice_keys),
    .size = sizeof(struct sl_sink_sluice_config),
    .check = sluice_check,
    .fini = sluice_fini,
    .summary = sluice_summary,
    .impl.sink = &sl_sink_sluice_ops,
};
