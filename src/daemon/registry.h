/*
 * registry — the one list of module types.
 *
 * Every section kind (daemon, source, queue, sink) with its common keys;
 * every module type of a kind with its key table, struct size, defaults,
 * checks and its vtable (sl_conf_type.impl: the source type or sink ops the
 * daemon runs); and every codec.  The config engine iterates this list and
 * knows no module; the daemon reaches a module only through the entry its
 * config points at (cfg->type->impl, cfg->codec).  Adding a source type, a
 * sink type or a codec is its own files plus one line in a list in
 * registry.c (and the declaration of that entry below).
 *
 * Thread: any (static, read-only).
 */
#ifndef SLUICE_REGISTRY_H
#define SLUICE_REGISTRY_H

#include "sluice/codec.h"
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
extern const struct sl_conf_type sl_source_relp_conf;
extern const struct sl_conf_type sl_source_unix_stream_conf;
extern const struct sl_conf_type sl_source_unix_dgram_conf;
extern const struct sl_conf_type sl_source_nats_conf;
extern const struct sl_conf_type sl_sink_file_conf;
extern const struct sl_conf_type sl_sink_tcp_conf;
extern const struct sl_conf_type sl_sink_sluice_conf;
extern const struct sl_conf_type sl_source_sluice_conf;
extern const struct sl_conf_type sl_sink_nats_conf;

/* The codecs (src/codec/codec_NAME.c), for the source key "codec". */
extern const struct sl_codec_type sl_codec_json;
extern const struct sl_codec_type sl_codec_raw;
extern const struct sl_codec_type sl_codec_syslog;

/* The type of kind named name, or NULL. */
const struct sl_conf_type *sl_registry_find(enum sl_conf_section kind, const char *name);

/* Every codec, NULL-terminated, in the order messages and docs list them. */
extern const struct sl_codec_type *const sl_registry_codecs[];

/* The codec named name, or NULL. */
const struct sl_codec_type *sl_registry_codec(const char *name);

#endif
