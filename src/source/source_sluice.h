/*
 * source_sluice — private to the sluice source and its config: its own
 * config (keys: source_sluice_conf.c).  Thread: any (borrowed from the
 * loaded config).
 */
#ifndef SLUICE_SOURCE_SLUICE_H
#define SLUICE_SOURCE_SLUICE_H

#include "source/source_tcp.h"

extern const struct sl_source_type sl_source_sluice;

struct sl_source_sluice_config {
    struct sl_source_tcp_config tcp; /* first: the tcp source's keys */
    char *state_path;                /* the duplicate filter's file, or NULL */
};

static inline const struct sl_source_sluice_config *
sl_source_sluice_config(const struct sl_source_config *cfg)
{
    return cfg->type_conf;
}

/* Frees the process-wide duplicate filter (every sender of every sluice
 * source).  Main thread, at the end, once no instance runs. */
void sl_source_sluice_free_senders(void);

#endif
