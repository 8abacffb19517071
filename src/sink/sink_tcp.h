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

#include "sluice/config.h"
#include "sluice/sink.h"

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
};

/* The tcp config of a sink of type tcp. */
static inline const struct sl_sink_tcp_config *
sl_sink_tcp_config(const struct sl_sink_config *cfg)
{
    return cfg->type_conf;
}

/*
 * True when a TCP_INFO sample says the peer is gone: it has acknowledged
 * nothing for silence_ms although bytes wait for an answer (the rule and
 * its races are explained at the definition in sink_tcp.c).  Pure; any
 * thread.  Used by sink_tcp.c and tests/check_sink_tcp.c only.
 */
bool sl_sink_tcp_peer_gone(const struct tcp_info *ti, uint64_t silence_ms);

#endif
