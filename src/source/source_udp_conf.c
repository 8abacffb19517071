/*
 * source_udp_conf — what a source with type = udp changes in the keys.
 *
 * udp has no keys of its own; it only gives recv_buffer a larger default,
 * because datagrams that arrive while the socket's buffer is full are lost.
 */
#include <stddef.h>

#include "daemon/registry.h"
#include "source/source_udp.h"

static const struct sl_conf_default source_udp_defaults[] = {
    {"recv_buffer", "4MiB"},
    {NULL, NULL},
};

const struct sl_conf_type sl_source_udp_conf = {
    .name = "udp",
    .defaults = source_udp_defaults,
    .impl.source = &sl_source_udp,
};
