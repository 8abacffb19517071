/*
 * source_sluice_conf — the keys of a source with type = sluice: the tcp
 * source's keys (SL_SOURCE_TCP_KEYS), its TLS keys (SL_TLS_SOURCE_KEYS,
 * the same table and checks as the tcp source's) plus state_path.  Main thread, while
 * the config loads (sluice/conf.h).
 */
#include <stddef.h>
#include <stdlib.h>

#include "daemon/registry.h"
#include "source/source_sluice.h"

static void
sluice_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_source_sluice_config *k = conf;
    sl_tls_conf_check(chk, &k->tcp.tls, SL_TLS_SERVER);
}

static void
sluice_fini(void *conf)
{
    struct sl_source_sluice_config *k = conf;
    free(k->state_path);
    sl_tls_conf_fini(&k->tcp.tls);
}

#define TCP_OFF(f) offsetof(struct sl_source_sluice_config, tcp.f)
static const struct sl_conf_key source_sluice_keys[] = {
    SL_SOURCE_TCP_KEYS(TCP_OFF),
    SL_TLS_SOURCE_KEYS(TCP_OFF(tls)),
    {.name = "state_path",
     .parse = sl_conf_key_path,
     .offset = offsetof(struct sl_source_sluice_config, state_path),
     .def_doc = "none (the duplicate filter lives in memory)",
     .doc = "file that keeps, per sender, the highest batch acknowledged, across restarts"},
};

const struct sl_conf_type sl_source_sluice_conf = {
    .name = "sluice",
    .keys = source_sluice_keys,
    .nkeys = SL_CONF_NKEYS(source_sluice_keys),
    .size = sizeof(struct sl_source_sluice_config),
    .check = sluice_check,
    .fini = sluice_fini,
    .impl.source = &sl_source_sluice,
};
