/*
 * sink_sluice — private to the sluice sink, its config and its tests: the
 * sink's own config (keys: sink_sluice_conf.c).
 *
 * Hung off struct sl_sink_config's type_conf when type = sluice; owned by
 * the config, read-only once loaded.  Thread: any.
 */
#ifndef SLUICE_SINK_SLUICE_H
#define SLUICE_SINK_SLUICE_H

#include <stddef.h>
#include <stdint.h>

#include "sink/sink_tcp.h"

extern const struct sl_sink_ops sl_sink_sluice_ops;

struct sl_sink_sluice_config {
    struct sl_sink_tcp_config tcp; /* first: the tcp sink's connection keys */
    uint64_t ack_timeout_ms;       /* no ACK/KEEPALIVE this long with batches out: dead */
    unsigned window_batches;       /* batches sent and not acknowledged, at most */
    size_t window_bytes;           /* ... and their bytes, at most */
    char *sender_id;               /* as configured, or NULL: <hostname>.<sink name> */
};

static inline const struct sl_sink_sluice_config *
sl_sink_sluice_config(const struct sl_sink_config *cfg)
{
    return cfg->type_conf;
}

#endif
