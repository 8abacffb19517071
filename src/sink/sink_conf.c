/*
 * sink_conf — the keys every [sink NAME] has, whatever its type.
 *
 * A type's own keys are in its module (sink_file_conf.c, ...).  Runs on the
 * main thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>

#include "daemon/registry.h"
#include "sluice/config.h"

#define SNK_OFF(f) offsetof(struct sl_sink_config, f)
static const struct sl_conf_key sink_keys[] = {
    {.name = "type", .flags = SL_CONF_REQUIRED | SL_CONF_TYPE, .doc = "kind of sink: file or tcp"},
    {.name = "queue",
     .parse = sl_conf_key_name,
     .offset = SNK_OFF(queue),
     .flags = SL_CONF_REQUIRED,
     .doc = "name of the queue this sink drains"},
    {.name = "batch_max_bytes",
     .parse = sl_conf_key_size,
     .offset = SNK_OFF(batch_max_bytes),
     .min = 4 * SL_CONF_KIB,
     .max = SL_CONF_GIB,
     .def = "1MiB",
     .def_doc = "1MiB, at most half the queue's capacity",
     .flags = SL_CONF_RELOAD,
     .doc = "bytes per write at most; at most half the capacity of the sink's queue"},
    {.name = "batch_timeout",
     .parse = sl_conf_key_duration,
     .offset = SNK_OFF(batch_timeout_ms),
     .max = SL_CONF_MS_PER_DAY,
     .def = "0",
     .flags = SL_CONF_RELOAD,
     .doc = "how long a batch may wait to grow; 0 = write at once"},
};

const struct sl_conf_kind sl_sink_conf_kind = {
    .name = "sink",
    .keys = sink_keys,
    .nkeys = SL_CONF_NKEYS(sink_keys),
    .check = NULL,
};
