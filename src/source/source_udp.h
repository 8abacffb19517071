/*
 * source_udp — the udp source type (source_udp.c), for its registry entry
 * (source_udp_conf.c).  udp has no config struct of its own.
 */
#ifndef SLUICE_SOURCE_UDP_H
#define SLUICE_SOURCE_UDP_H

#include "sluice/source.h"

extern const struct sl_source_type sl_source_udp;

#endif
