/*
 * sink_tcp — private to the tcp sink, its config and its test: the sink's
 * own config (its keys: sink_tcp_conf.c) and its liveness rule.
 *
 * Hung off struct sl_sink_config's type_conf when type = tcp; owned by the
 * config, read-only once loaded.  Thread: any (borrowed from the config).
 */
#ifndef SLUICE_SINK_TCP_H
#define SLUICE_SINK_TCP_H

#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sluice/conf.h"
#include "sluice/config.h"
#include "sluice/sink.h"
#include "util/tls.h"

/* The tcp sink type (sink_tcp.c); its registry entry (sink_tcp_conf.c)
 * points at it. */
extern const struct sl_sink_ops sl_sink_tcp_ops;

enum sl_balance { SL_BALANCE_FAILOVER, SL_BALANCE_ROUND_ROBIN };

/* One forwarding target, resolved once at load. */
struct sl_sink_target {
    char *text; /* as written: "10.0.0.2:5170", "[::1]:5170", "agg:5170" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

#define SL_SINK_MAX_TARGETS 16

struct sl_sink_tcp_config {
    char *target;                   /* as written */
    struct sl_sink_target *targets; /* 1 .. SL_SINK_MAX_TARGETS, in order */
    size_t ntargets;
    enum sl_balance balance;     /* default failover */
    uint64_t retry_initial_ms;   /* reconnect backoff: first delay (default 100 ms) */
    uint64_t retry_max_ms;       /* ... longest delay (default 30 s) */
    uint64_t connect_timeout_ms; /* default 5 s */
    uint64_t write_timeout_ms;   /* nothing acknowledged this long: peer gone (30 s) */
    uint64_t keepalive_ms;       /* TCP keepalive idle time; 0 = off (default 30 s) */
    uint64_t idle_timeout_ms;    /* close an idle connection; 0 = never (1 min) */
    struct sl_tls_config tls;    /* tls = on: the TLS client keys (util/tls.h) */
};

/* The tcp config of a sink of type tcp. */
static inline const struct sl_sink_tcp_config *
sl_sink_tcp_config(const struct sl_sink_config *cfg)
{
    return cfg->type_conf;
}

/*
 * The connection keys the tcp and sluice sinks share (sink_tcp_conf.c):
 * target, balance, retry_initial, retry_max, connect_timeout, keepalive
 * and the TLS client keys (tls, tls_ca_file, tls_server_name ...),
 * as entries of a struct sl_conf_key table whose OFF(f) gives the offset
 * of member f of the struct sl_sink_tcp_config inside the type's struct.
 * The check between them and the fini go with them.
 */
extern const struct sl_conf_choice sl_sink_tcp_balances[];
int sl_sink_tcp_key_targets(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                            size_t whylen);
void sl_sink_tcp_conf_check(struct sl_conf_check *chk, struct sl_sink_tcp_config *k);
void sl_sink_tcp_conf_fini(struct sl_sink_tcp_config *k);

_Static_assert(offsetof(struct sl_sink_tcp_config, target) == 0,
               "sl_sink_tcp_key_targets finds the struct from the target's offset");

#define SL_SINK_TCP_CONN_KEYS(OFF)                                                                 \
    {.name = "target",                                                                             \
     .parse = sl_sink_tcp_key_targets,                                                             \
     .offset = OFF(target),                                                                        \
     .flags = SL_CONF_REQUIRED,                                                                    \
     .doc = "host:port to forward to; several, separated by commas, for balance"},                \
        {.name = "balance",                                                                        \
         .parse = sl_conf_key_enum,                                                                \
         .offset = OFF(balance),                                                                   \
         .choices = sl_sink_tcp_balances,                                                          \
         .def = "failover",                                                                        \
         .doc = "with several targets: failover (first that works) or round_robin"},               \
        {.name = "retry_initial",                                                                  \
         .parse = sl_conf_key_duration,                                                            \
         .offset = OFF(retry_initial_ms),                                                          \
         .min = 1,                                                                                 \
         .max = SL_CONF_MS_PER_DAY,                                                                \
         .def = "100ms",                                                                           \
         .flags = SL_CONF_RELOAD,                                                                  \
         .doc = "first reconnection delay; doubles (with jitter) up to retry_max"},                \
        {.name = "retry_max",                                                                      \
         .parse = sl_conf_key_duration,                                                            \
         .offset = OFF(retry_max_ms),                                                              \
         .min = 1,                                                                                 \
         .max = SL_CONF_MS_PER_DAY,                                                                \
         .def = "30s",                                                                             \
         .flags = SL_CONF_RELOAD,                                                                  \
         .doc = "longest reconnection delay"},                                                     \
        {.name = "connect_timeout",                                                                \
         .parse = sl_conf_key_duration,                                                            \
         .offset = OFF(connect_timeout_ms),                                                        \
         .min = 1,                                                                                 \
         .max = SL_CONF_MS_PER_DAY,                                                                \
         .def = "5s",                                                                              \
         .flags = SL_CONF_RELOAD,                                                                  \
         .doc = "a connection attempt that takes longer fails"},                                   \
        {.name = "keepalive",                                                                      \
         .parse = sl_conf_key_duration,                                                            \
         .offset = OFF(keepalive_ms),                                                              \
         .max = SL_CONF_MS_PER_DAY,                                                                \
         .def = "30s",                                                                             \
         .flags = SL_CONF_RELOAD,                                                                  \
         .doc = "TCP keepalive: idle time before the first probe; 0 = off"},                       \
        SL_TLS_SINK_KEYS(OFF(tls))

/*
 * True when a TCP_INFO sample says the peer is gone: it has acknowledged
 * nothing for silence_ms although bytes wait for an answer (the rule and
 * its races are explained at the definition in sink_tcp.c).  Pure; any
 * thread.  Used by sink_tcp.c and tests/check_sink_tcp.c only.
 */
bool sl_sink_tcp_peer_gone(const struct tcp_info *ti, uint64_t silence_ms);

#endif
