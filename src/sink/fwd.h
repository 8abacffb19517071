/*
 * fwd — what the forwarding sinks (tcp, sluice) share: the reconnection
 * backoff with jitter, the socket options and the non-blocking connect,
 * over the tcp sink's target keys (struct sl_sink_tcp_config, whose key
 * entries both sinks list through SL_SINK_TCP_CONN_KEYS).
 *
 * Thread: the writer (the functions are pure but for the socket calls).
 */
#ifndef SLUICE_SINK_FWD_H
#define SLUICE_SINK_FWD_H

#include <stdint.h>

#include "sink/sink_tcp.h"

/* Seeds a jitter generator (never 0). */
void sl_fwd_seed(uint64_t *rng, const void *salt);

/* A delay uniform in [d/2, d] (jitter, not security), from *rng. */
uint64_t sl_fwd_jitter(uint64_t *rng, uint64_t d);

/* The next reconnection delay after *backoff: retry_initial doubling up to
 * retry_max (kept in *backoff), drawn in [d/2, d] so that many senders do
 * not reconnect in step. */
uint64_t sl_fwd_next_delay(const struct sl_sink_tcp_config *c, uint64_t *rng, uint64_t *backoff);

/* TCP_NODELAY and, when keepalive_ms > 0, TCP keepalive (idle, idle/3
 * between probes, 3 probes).  No TCP_USER_TIMEOUT (see sink_tcp.c). */
void sl_fwd_sockopts(int fd, const struct sl_sink_tcp_config *c);

/* Opens a non-blocking socket to tg and starts connect().  Returns 0
 * (connected), 1 (in progress: wait for EV_WRITE, then
 * sl_fwd_connect_result) or -1 with errno set (*fd is then -1). */
int sl_fwd_connect(const struct sl_sink_target *tg, const struct sl_sink_tcp_config *c, int *fd);
/* After EV_WRITE on a connecting socket: 0, or the connect error. */
int sl_fwd_connect_result(int fd);

/* ---- TLS (tls = on) -------------------------------------------------------------- */

/*
 * The TLS client context of a forwarding sink named name: *out is NULL
 * with tls = off.  0, or -1 (logged: a file went bad since the load).
 * Main thread (the sink's open).
 */
int sl_fwd_tls_new(const struct sl_sink_tcp_config *c, const char *name, struct sl_tls **out);

/*
 * A client SSL for a connection to tg on fd: SNI and the name to verify
 * are tls_server_name, else the host part of the target as written.
 * NULL when out of memory.  Caller frees with SSL_free.
 */
SSL *sl_fwd_tls_ssl(struct sl_tls *t, const struct sl_sink_target *tg, int fd);

#endif
