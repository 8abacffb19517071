/*
 * admin — the HTTP admin endpoint on the main thread's event_base (libevent
 * evhttp): GET /metrics (Prometheus text) and GET /healthz (JSON; 200 or
 * 503).  Other paths answer 404, other methods 405.
 *
 * Thread: main only.  The view callback fills a struct sl_metrics_view for
 * each request (counters are read there, with relaxed loads).
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <sys/socket.h>

#include "sluice/metrics.h"

struct event_base;
struct sl_admin;

typedef void (*sl_admin_view_fn)(void *arg, struct sl_metrics_view *view);

/*
 * Binds addr and serves on base.  Returns NULL with errno set (and a log
 * line naming the address) when the address cannot be bound.
 */
struct sl_admin *sl_admin_new(struct event_base *base, const char *name,
                              const struct sockaddr *addr, socklen_t addrlen, sl_admin_view_fn view,
                              void *arg);
void sl_admin_free(struct sl_admin *a);

#endif
