/*
 * admin_http — GET /metrics and GET /healthz over libevent's evhttp, on the
 * main thread.  Each request renders into a memory stream (metrics.c is
 * libevent-free) and the bytes are handed to an evbuffer.  Requests are
 * small and rare (a scrape every few seconds), so nothing is cached.
 */
#include "sluice/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/log.h"

struct sl_admin {
    struct evhttp *http;
    sl_admin_view_fn view;
    void *arg;
};

typedef int (*admin_render_fn)(FILE *out, const struct sl_metrics_view *v);

/* metrics: always 200 when rendering works. */
static int
admin_render_metrics(FILE *out, const struct sl_metrics_view *v)
{
    return sl_metrics_render(out, v) == 0 ? HTTP_OK : HTTP_INTERNAL;
}

static void
admin_reply(struct evhttp_request *req, struct sl_admin *a, admin_render_fn render,
            const char *content_type)
{
    struct sl_metrics_view v;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    a->view(a->arg, &v);
    int status = render(out, &v);
    if (fclose(out) != 0 || text == NULL) {
        free(text);
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (body == NULL || evbuffer_add(body, text, len) < 0) {
        free(text);
        evbuffer_free(body);
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    free(text);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, status, status == HTTP_OK ? "OK" : "Service Unavailable", body);
    evbuffer_free(body);
}

static void
admin_request_cb(struct evhttp_request *req, void *arg)
{
    struct sl_admin *a = arg;
    const char *uri = evhttp_request_get_uri(req);
    const struct evhttp_uri *parsed = evhttp_request_get_evhttp_uri(req);
    const char *path = parsed != NULL ? evhttp_uri_get_path(parsed) : uri;
    if (path == NULL) {
        evhttp_send_error(req, HTTP_BADREQUEST, NULL);
    } else if (strcmp(path, "/metrics") == 0) {
        admin_reply(req, a, admin_render_metrics, "text/plain; version=0.0.4; charset=utf-8");
    } else if (strcmp(path, "/healthz") == 0) {
        admin_reply(req, a, sl_metrics_health, "application/json");
    } else {
        evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics or /healthz");
    }
}

struct sl_admin *
sl_admin_new(struct event_base *base, const char *name, const struct sockaddr *addr,
             socklen_t addrlen, sl_admin_view_fn view, void *arg)
{
    struct sl_admin *a = calloc(1, sizeof(*a));
    int one = 1;
    int fd = -1;
    if (a == NULL) {
        return NULL;
    }
    a->view = view;
    a->arg = arg;
    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, addr, addrlen) < 0 || listen(fd, 64) < 0) {
        log_warn("admin: cannot listen on %s", name);
        goto err;
    }
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        goto err;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 0);
    evhttp_set_gencb(a->http, admin_request_cb, a);
    if (evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
        log_warnx("admin: cannot serve on %s", name);
        goto err;
    }
    return a; /* the evhttp owns fd now */
err:;
    int saved = errno;
    if (fd >= 0) {
        close(fd);
    }
    sl_admin_free(a);
    errno = saved;
    return NULL;
}

void
sl_admin_free(struct sl_admin *a)
{
    if (a == NULL) {
        return;
    }
    if (a->http != NULL) {
        evhttp_free(a->http); /* closes the bound socket */
    }
    free(a);
}
