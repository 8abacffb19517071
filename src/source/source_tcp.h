/*
 * source_tcp — the tcp source type (source_tcp.c) and its own config (its
 * keys: source_tcp_conf.c, whose registry entry points at sl_source_tcp).
 *
 * Its connection handling is also unix_stream's (source_unix.c): a type
 * whose config begins with a struct sl_source_tcp_config (keys:
 * SL_SOURCE_TCP_FRAMED_KEYS, check: sl_source_tcp_conf_check) binds its
 * own listening socket and points its struct sl_source_type at the
 * sl_source_tcp_* operations below, starting through a one-line wrapper
 * that passes its peer function.
 *
 * Hung off struct sl_source_config's type_conf when type = tcp; owned by the
 * config, read-only once loaded.  Thread: any (borrowed from the config).
 */
#ifndef SLUICE_SOURCE_TCP_H
#define SLUICE_SOURCE_TCP_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/codec.h"
#include "sluice/conf.h"
#include "sluice/config.h"
#include "sluice/source.h"
#include "source/stream.h"
#include "util/tls.h"

extern const struct sl_source_type sl_source_tcp;

struct sl_source_tcp_config {
    unsigned max_connections; /* per source (all threads), default 10000 */
    uint64_t idle_timeout_ms; /* 0 = never; default 5 min, at most 24 h */
    enum sl_framing framing;  /* default: the codec's default_framing */
    struct sl_tls_config tls; /* tcp only: tls = on (util/tls.h); unix_stream
                                 has no TLS keys (an error), so it stays off */
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

/* The tcp keys and framing (a key table's entries; OFF as above). */
#define SL_SOURCE_TCP_FRAMED_KEYS(OFF) SL_SOURCE_TCP_KEYS(OFF), SL_FRAMING_KEY(OFF(framing))

/* The check hook (sluice/conf.h) of a conf that begins with a struct
 * sl_source_tcp_config and has SL_SOURCE_TCP_FRAMED_KEYS: the framing
 * default (framing_conf.h). */
void sl_source_tcp_conf_check(struct sl_conf_check *chk, void *common, void *conf);

/* The connection operations (struct sl_source_type, sluice/source.h) of a
 * listening stream socket s->fd; start names peers with peer_fn. */
int sl_source_tcp_start(struct sl_source *s, sl_stream_peer_fn peer_fn);
void sl_source_tcp_stop_begin(struct sl_source *s);
bool sl_source_tcp_idle(const struct sl_source *s);
uint64_t sl_source_tcp_close_all(struct sl_source *s);
void sl_source_tcp_fini(struct sl_source *s);

/* The tcp config of a source of type tcp (or of a type whose config
 * begins with one: unix_stream). */
static inline const struct sl_source_tcp_config *
sl_source_tcp_config(const struct sl_source_config *cfg)
{
    return cfg->type_conf;
}

#endif
