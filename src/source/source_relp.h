/*
 * source_relp — the relp source type (source_relp.c; its registry entry
 * and keys: source_relp_conf.c).  Thread: any.
 */
#ifndef SLUICE_SOURCE_RELP_H
#define SLUICE_SOURCE_RELP_H

#include "sluice/config.h"
#include "sluice/source.h"
#include "util/tls.h"

/* Hung off struct sl_source_config's type_conf when type = relp; owned by
 * the config. */
struct sl_source_relp_config {
    struct sl_tls_config tls; /* tls* keys, as librelp honours them (source_relp_conf.c) */
};

static inline const struct sl_source_relp_config *
sl_source_relp_config(const struct sl_source_config *cfg)
{
    return cfg->type_conf;
}

extern const struct sl_source_type sl_source_relp;

#endif
