/*
 * queue_conf — the keys of [queue NAME] and the check between them.
 *
 * Runs on the main thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>

#include "daemon/registry.h"
#include "sluice/config.h"

static void
queue_check(struct sl_conf_check *chk, void *obj)
{
    const struct sl_queue_config *q = obj;
    char a[32], b[32];

    if (sl_conf_key_bad(chk, "capacity") || sl_conf_key_bad(chk, "chunk_size") ||
        q->capacity / 2 >= q->chunk_bytes) {
        return;
    }
    sl_conf_format_size(a, sizeof(a), q->capacity);
    sl_conf_format_size(b, sizeof(b), q->chunk_bytes);
    sl_conf_error(
        chk, sl_conf_key_line(chk, sl_conf_key_set(chk, "capacity") ? "capacity" : "chunk_size"),
        "%s: capacity (%s) must be at least 2 x chunk_size (%s)", sl_conf_label(chk), a, b);
}

#define Q_OFF(f) offsetof(struct sl_queue_config, f)
static const struct sl_conf_key queue_keys[] = {
    {.name = "capacity",
     .parse = sl_conf_key_size,
     .offset = Q_OFF(capacity),
     .min = 8 * SL_CONF_KIB,
     .max = 64 * SL_CONF_GIB,
     .def = "16MiB",
     .doc = "memory bound in bytes, at least 2 x chunk_size"},
    {.name = "chunk_size",
     .parse = sl_conf_key_size,
     .offset = Q_OFF(chunk_bytes),
     .min = 4 * SL_CONF_KIB,
     .max = 16 * SL_CONF_MIB,
     .def = "256KiB",
     .doc = "bytes per chunk, the unit of hand-off; at least max_line_bytes + 4KiB"},
};

const struct sl_conf_kind sl_queue_conf_kind = {
    .name = "queue",
    .keys = queue_keys,
    .nkeys = SL_CONF_NKEYS(queue_keys),
    .check = queue_check,
};
