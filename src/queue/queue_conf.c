/*
 * queue_conf — the keys of [queue NAME] and the check between them.
 *
 * Runs on the main thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>

#include "daemon/registry.h"
#include "sluice/config.h"
#include "sluice/queue.h"

static const struct sl_conf_choice when_fulls[] = {
    {"block", SL_WHEN_FULL_BLOCK},
    {"drop_newest", SL_WHEN_FULL_DROP_NEWEST},
    {"drop_oldest", SL_WHEN_FULL_DROP_OLDEST},
    {NULL, 0},
};

_Static_assert(sizeof(enum sl_when_full) == sizeof(int), "enum written through int *");

static const struct sl_conf_choice queue_types[] = {
    {"memory", SL_QUEUE_MEMORY},
    {"disk", SL_QUEUE_DISK},
    {NULL, 0},
};

static const struct sl_conf_choice queue_fsyncs[] = {
    {"none", SL_QUEUE_FSYNC_NONE},
    {"interval", SL_QUEUE_FSYNC_INTERVAL},
    {"batch", SL_QUEUE_FSYNC_BATCH},
    {NULL, 0},
};

_Static_assert(sizeof(enum sl_queue_type) == sizeof(int), "enum written through int *");
_Static_assert(sizeof(enum sl_queue_fsync) == sizeof(int), "enum written through int *");

static void
queue_check(struct sl_conf_check *chk, void *obj)
{
    const struct sl_queue_config *q = obj;
    char a[32], b[32];
    static const char *const disk_keys[] = {"path", "max_size", "fsync", "fsync_interval"};

    if (q->type != SL_QUEUE_DISK) {
        for (size_t i = 0; i < sizeof(disk_keys) / sizeof(disk_keys[0]); i++) {
            if (sl_conf_key_set(chk, disk_keys[i])) {
                sl_conf_error(chk, sl_conf_key_line(chk, disk_keys[i]),
                              "%s: %s applies to type = disk only", sl_conf_label(chk),
                              disk_keys[i]);
            }
        }
    }
    if (q->type == SL_QUEUE_DISK && q->when_full == SL_WHEN_FULL_DROP_OLDEST) {
        /* The disk backlog has no evict_oldest yet (backlog.h). */
        sl_conf_error(chk, sl_conf_key_line(chk, "when_full"),
                      "%s: when_full = drop_oldest is not available with type = disk yet",
                      sl_conf_label(chk));
    }

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
    {.name = "type",
     .parse = sl_conf_key_enum,
     .offset = Q_OFF(type),
     .choices = queue_types,
     .def = "memory",
     .doc = "memory, or disk: every chunk written to segment files before a sink sees it"},
    {.name = "path",
     .parse = sl_conf_key_path,
     .offset = Q_OFF(path),
     .def_doc = "$STATE_DIRECTORY/queues/NAME, else var/lib/queues/NAME",
     .doc = "type = disk: the queue's directory (created; one sluiced per directory)"},
    {.name = "max_size",
     .parse = sl_conf_key_size,
     .offset = Q_OFF(max_size),
     .min = 1 * SL_CONF_MIB,
     .max = 64 * 1024 * SL_CONF_GIB,
     .def = "1GiB",
     .doc = "type = disk: bytes of segment files at most; refused at start if the "
            "filesystem cannot hold it"},
    {.name = "fsync",
     .parse = sl_conf_key_enum,
     .offset = Q_OFF(fsync),
     .choices = queue_fsyncs,
     .def = "interval",
     .doc = "type = disk: none, interval or batch (see the guarantees)"},
    {.name = "fsync_interval",
     .parse = sl_conf_key_duration,
     .offset = Q_OFF(fsync_interval_ms),
     .min = 1,
     .max = 60 * SL_CONF_MS_PER_S,
     .def = "500ms",
     .doc = "type = disk: longest time between syncs (fsync = interval) and state file "
            "writes"},
    {.name = "when_full",
     .parse = sl_conf_key_enum,
     .offset = Q_OFF(when_full),
     .choices = when_fulls,
     .def = "block",
     .doc = "overflow policy: block (TCP senders wait), drop_newest or drop_oldest (counted)"},
};

const struct sl_conf_kind sl_queue_conf_kind = {
    .name = "queue",
    .keys = queue_keys,
    .nkeys = SL_CONF_NKEYS(queue_keys),
    .check = queue_check,
};
