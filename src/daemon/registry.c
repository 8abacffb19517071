/*
 * registry — the one list of module types (see registry.h).
 *
 * Order matters only for messages and the docs: types are listed in
 * "expected tcp or udp" messages and by sl_config_key_info in this order,
 * codecs in "expected json, raw or syslog".
 *
 * An entry is the module's struct sl_conf_type, which carries both its
 * keys and its vtable (impl): one line lists the whole module, and a loaded
 * config points at it (sl_source_config.type), so nothing maps a config
 * back to code by name or by a second table.
 */
#include "daemon/registry.h"

#include <string.h>

static const struct sl_conf_type *const source_types[] = {
    &sl_source_tcp_conf,
    &sl_source_udp_conf,
    &sl_source_sluice_conf,
    &sl_source_relp_conf,
    &sl_source_unix_stream_conf,
    &sl_source_unix_dgram_conf,
    &sl_source_nats_conf,
    NULL,
};

static const struct sl_conf_type *const sink_types[] = {
    &sl_sink_file_conf,
    &sl_sink_tcp_conf,
    &sl_sink_sluice_conf,
    &sl_sink_nats_conf,
    NULL,
};

const struct sl_codec_type *const sl_registry_codecs[] = {
    &sl_codec_json,
    &sl_codec_raw,
    &sl_codec_syslog,
    NULL,
};

const struct sl_registry_kind sl_registry[SL_CONF_NSECTIONS] = {
    [SL_CONF_DAEMON] = {&sl_daemon_conf_kind, NULL},
    [SL_CONF_SOURCE] = {&sl_source_conf_kind, source_types},
    [SL_CONF_QUEUE] = {&sl_queue_conf_kind, NULL},
    [SL_CONF_SINK] = {&sl_sink_conf_kind, sink_types},
};

const struct sl_conf_type *
sl_registry_find(enum sl_conf_section kind, const char *name)
{
    const struct sl_conf_type *const *t = sl_registry[kind].types;

    for (; t != NULL && *t != NULL; t++) {
        if (strcmp((*t)->name, name) == 0) {
            return *t;
        }
    }
    return NULL;
}

const struct sl_codec_type *
sl_registry_codec(const char *name)
{
    for (const struct sl_codec_type *const *c = sl_registry_codecs; *c != NULL; c++) {
        if (strcmp((*c)->name, name) == 0) {
            return *c;
        }
    }
    return NULL;
}
