/*
 * sources — the source type modules, for the table in source.c (and
 * nothing else: everyone else finds a type with sl_source_type_find()).
 */
#ifndef SLUICE_SOURCES_H
#define SLUICE_SOURCES_H

#include "sluice/source.h"

extern const struct sl_source_type sl_source_tcp; /* source_tcp.c */
extern const struct sl_source_type sl_source_udp; /* source_udp.c */

#endif
