/*
 * source_tcp — the tcp source type (source_tcp.c) and its own config (its
 * keys: source_tcp_conf.c, whose registry entry points at sl_source_tcp).
 *
 * Hung off struct sl_source_config's type_conf when type = tcp; owned by the
 * config, read-only once loaded.  Thread: any (borrowed from the config).
 */
#ifndef SLUICE_SOURCE_TCP_H
#define SLUICE_SOURCE_TCP_H

#include <stdint.h>

#include "sluice/codec.h"
#include "sluice/config.h"
#include "sluice/source.h"

extern const struct sl_source_type sl_source_tcp;

struct sl_source_tcp_config {
    unsigned max_connections; /* per source (all threads), default 10000 */
    uint64_t idle_timeout_ms; /* 0 = never; default 5 min, at most 24 h */
    enum sl_framing framing;  /* default: the codec's default_framing */
};

/* The keys the tcp and sluice sources share (source_tcp_conf.c), as
 * entries of a struct sl_conf_key table; OFF(f) gives the offset of member
 * f of the struct sl_source_tcp_config inside the type's struct. */
#define SL_SOURCE_TCP_KEYS(OFF)                                                                    \
    {.name = "max_connections",                                                                    \
     .parse = sl_conf_key_uint,                                                                    \
     .offset = OFF(max_connections),                                                               \
     .min = 1,                                                                                     \
     .max = 1000000,                                                                               \
     .def = "10000",                                                                               \
     .flags = SL_CONF_RELOAD,                                                                      \
     .doc = "open connections at most, over all threads"},                                        \
    {                                                                                              \
        .name = "idle_timeout", .parse = sl_conf_key_duration, .offset = OFF(idle_timeout_ms),     \
        .max = SL_CONF_MS_PER_DAY, .def = "5min", .flags = SL_CONF_RELOAD,                         \
        .doc = "close a connection silent this long; 0 = never"                                    \
    }

/* The tcp config of a source of type tcp. */
static inline const struct sl_source_tcp_config *
sl_source_tcp_config(const struct sl_source_config *cfg)
{
    return cfg->type_conf;
}

#endif
