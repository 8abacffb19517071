/*
 * admin — the HTTP admin endpoint on the main thread's event_base (libevent
 * evhttp): GET /metrics (Prometheus text) and GET /healthz (JSON; 200 or
 * 503), and HEAD for both (the same headers, Content-Length included, no
 * body).  Other paths answer 404, other methods 405 with "Allow: GET, HEAD".
 * POST /reload runs the reload callback; GET /tap streams live samples of
 * the events (sluice/tap.h; docs/protocol.md "Live tap"): on when the
 * endpoint is bound to loopback or has a token, never a public path.
 *
 * Fixed limits (docs/security.md): at most 64 connections (or a quarter of
 * RLIMIT_NOFILE if lower; more wait in the kernel's backlog), 10 s per
 * request from the accept or the previous answer until the answer is
 * written, 16 KiB of unparsed input per connection, 8 KiB of request line
 * and headers, 4 KiB of body.  accept() out of descriptors backs off 1 s.
 *
 * Thread: main only.  The view callback fills a struct sl_metrics_view for
 * each request (counters are read there, with relaxed loads).
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stdint.h>
#include <sys/socket.h>

#include "daemon/metrics.h"

struct event_base;
struct sl_admin;

typedef void (*sl_admin_view_fn)(void *arg, struct sl_metrics_view *view);

/*
 * Binds addr and serves on base.  Returns the endpoint (caller frees with
 * sl_admin_free), or NULL with errno set (and a log line naming the
 * address) when the address cannot be bound.  One endpoint per process:
 * a second call while one exists fails with EBUSY.  name is copied.
 */
struct sl_admin *sl_admin_new(struct event_base *base, const char *name,
                              const struct sockaddr *addr, socklen_t addrlen, sl_admin_view_fn view,
                              void *arg);

/*
 * What POST /reload runs: writes the result into msg (a first line "ok: ..."
 * or "failed: ...", then one line per error or difference; no final
 * newline) and returns 0, or -1 when the reload was refused (answered 422).
 */
typedef int (*sl_admin_reload_fn)(void *arg, char *msg, size_t len);
void sl_admin_set_reload(struct sl_admin *a, sl_admin_reload_fn fn, void *arg);

/*
 * From now on every request needs "Authorization: Bearer <token>", where
 * token_sha256 (copied) is the SHA-256 of the token; paths in public_paths
 * (SL_ADMIN_PUBLIC_* of sluice/config.h) are served without it.  Others
 * answer 401 with "WWW-Authenticate: Bearer" and are counted.
 */
void sl_admin_set_auth(struct sl_admin *a, const uint8_t token_sha256[32], unsigned public_paths);

/*
 * Reads the token file at path (its first line, 16..4096 bytes, mode 0600
 * or stricter; daemon_conf.c) into its SHA-256.  0, or -1 with the reason
 * in why.  Any thread (no state).
 */
int sl_admin_token_read(const char *path, uint8_t sha256[32], char *why, size_t whylen);

/*
 * SIGHUP: reads admin_token_file at path again, so a token is rotated
 * without a restart.  A good file replaces the token (requests with the old
 * one get 401 from now on); a bad one keeps the token in use and says why
 * in the log.  Counted either way (sluice_admin_token_reloads_total,
 * sluice_admin_token_reload_failures_total).
 * No-op (0) when the endpoint has no token or path is NULL.  0 / -1.
 * Thread: main (the admin endpoint's).
 */
int sl_admin_reload_token(struct sl_admin *a, const char *path);

struct sl_tls;
struct sl_tls_config;

/*
 * admin_tls = on: from now on every connection speaks TLS with cfg's
 * certificate (borrowed; must outlive the endpoint), through util/tls.c;
 * with cfg->client_auth = required (admin_tls_ca_file) a verified client
 * certificate is needed to get past the handshake, and GET /tap is on.
 * Call before the event loop runs.  0, or -1 with the reason in why.
 * Handshake failures are counted per reason (sl_admin_tls) and logged
 * (rate-limited).
 */
int sl_admin_set_tls(struct sl_admin *a, const struct sl_tls_config *cfg, char *why,
                     size_t whylen);

/* SIGHUP: re-reads the certificate, key and CA files (sl_tls_reload: a bad
 * file keeps the ones in use and says why).  0 when TLS is off. */
int sl_admin_reload_tls(struct sl_admin *a);

/* The endpoint's TLS (its counters for /metrics), or NULL. */
struct sl_tls *sl_admin_tls(const struct sl_admin *a);

/* Closes the listener and every admin connection.  NULL is a no-op. */
void sl_admin_free(struct sl_admin *a);

/* Copies the endpoint's counters into *st. */
void sl_admin_get_stats(const struct sl_admin *a, struct sl_admin_stats *st);

#endif
