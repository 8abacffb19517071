/*
 * source_unix — the local source types unix_stream and unix_dgram
 * (source_unix.c) and their config (keys: source_unix_conf.c, whose
 * registry entries point at these types).
 *
 * listen is an absolute path (struct sl_source_config.addr holds it as a
 * struct sockaddr_un).  The config struct hangs off type_conf for both
 * types (unix_dgram leaves the stream keys unused); owned by the config,
 * read-only once loaded.  Thread: any (borrowed from the config).
 */
#ifndef SLUICE_SOURCE_UNIX_H
#define SLUICE_SOURCE_UNIX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/config.h"
#include "sluice/source.h"
#include "source/source_tcp.h"

extern const struct sl_source_type sl_source_unix_stream;
extern const struct sl_source_type sl_source_unix_dgram;

/* A user or group id given in the config (set: chown the socket file). */
struct sl_source_unix_id {
    bool set;
    uint32_t id;
};

struct sl_source_unix_config {
    struct sl_source_tcp_config stream;    /* first: unix_stream's connections (source_tcp.h) */
    mode_t socket_mode;                    /* of the socket file, default 0660 */
    struct sl_source_unix_id socket_owner; /* default: unset (sluiced's user) */
    struct sl_source_unix_id socket_group; /* default: unset (sluiced's group) */
};

static inline const struct sl_source_unix_config *
sl_source_unix_config(const struct sl_source_config *cfg)
{
    return cfg->type_conf;
}

#endif
