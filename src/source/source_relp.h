/*
 * source_relp — the relp source type (source_relp.c; its registry entry:
 * source_relp_conf.c).  relp has no keys of its own.  Thread: any.
 */
#ifndef SLUICE_SOURCE_RELP_H
#define SLUICE_SOURCE_RELP_H

#include "sluice/source.h"

extern const struct sl_source_type sl_source_relp;

#endif
