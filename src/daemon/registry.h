/*
 * registry — the one list of module types.
 *
 * Every section kind (daemon, source, queue, sink) with its common keys, and
 * every module type of a kind with its key table, struct size, defaults and
 * checks.  The config engine iterates this list and knows no module; adding
 * a module type is one line in registry.c (plus the module's own files).
 *
 * Thread: any (static, read-only).
 */
#ifndef SLUICE_REGISTRY_H
#define SLUICE_REGISTRY_H

#include "sluice/conf.h"

struct sl_registry_kind {
    const struct sl_conf_kind *kind;
    const struct sl_conf_type *const *types; /* NULL-terminated; NULL: the kind has no types */
};

/* Indexed by enum sl_conf_section. */
extern const struct sl_registry_kind sl_registry[SL_CONF_NSECTIONS];

/* The kinds' common keys (daemon/daemon_conf.c, source/source_conf.c, ...). */
extern const struct sl_conf_kind sl_daemon_conf_kind;
extern const struct sl_conf_kind sl_source_conf_kind;
extern const struct sl_conf_kind sl_queue_conf_kind;
extern const struct sl_conf_kind sl_sink_conf_kind;

/* The module types, each defined in its module's *_conf.c. */
extern const struct sl_conf_type sl_source_tcp_conf;
extern const struct sl_conf_type sl_source_udp_conf;
extern const struct sl_conf_type sl_sink_file_conf;
extern const struct sl_conf_type sl_sink_tcp_conf;

/* The type of kind named name, or NULL. */
const struct sl_conf_type *sl_registry_find(enum sl_conf_section kind, const char *name);

#endif
