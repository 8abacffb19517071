/*
 * admin_http — GET /metrics and GET /healthz over libevent's evhttp, on the
 * main thread.  Each request renders into a memory stream (metrics.c is
 * libevent-free) and the bytes are handed to an evbuffer.  Requests are
 * small and rare (a scrape every few seconds), so nothing is cached.
 *
 * Thread: main only.  Owns the listening socket (through the evhttp), a
 * table of ADMIN_MAX_CONNS connection slots with their deadline timers, and
 * the listener's back-off timer.
 *
 * DESIGN: what one client can hold.  There is no authentication, so any
 * local process is a client, and none may grow the daemon, take its
 * descriptors or make the main thread spin.
 *   - Input: evhttp answers one request of a connection at a time (it parses
 *     the next pipelined request only once the previous answer has gone to
 *     the kernel), but while an answer waits it keeps reading "to detect a
 *     close" into an unbounded buffer.  We create each connection's
 *     bufferevent (evhttp_set_bevcb) with a read high-watermark of
 *     ADMIN_INPUT_MAX: reading stops there and the kernel's window pushes
 *     back on the client.  A connection thus holds at most that input, one
 *     answer and evhttp's structs.
 *   - Connections: at most ADMIN_MAX_CONNS, or a quarter of RLIMIT_NOFILE if
 *     that is lower, so admin clients can never take the descriptors the
 *     sources need.  At the limit the listener is disabled: the next clients
 *     wait in the kernel's backlog and are served as connections close.
 *   - Time: each request has ADMIN_DEADLINE_S from its first byte until
 *     its answer is written; then the connection is closed.  evhttp's own
 *     timeout (ADMIN_IDLE_S) closes a connection with no request under
 *     way, and bounds the gap between two reads or writes, which a client
 *     trickling one byte at a time keeps resetting.  The first byte is seen
 *     by a callback on the connection's input buffer.
 *   - Descriptors: accept() failing with EMFILE/ENFILE disables the listener
 *     for ADMIN_BACKOFF_S, as the sources' listeners do, instead of spinning
 *     on a socket that stays readable.
 * libevent 2.1 has no "new connection" hook for an evhttp server (2.2 has
 * evhttp_set_newreqcb), and the bufferevent callback runs before evhttp has
 * made its connection object.  So the bufferevent we create is held (one
 * reference) on the "fresh" list, and an event activated for the same loop
 * turn adopts it: by then evhttp has made it its connection's bufferevent
 * with the connection as the callback argument (bufferevent_getcb), so we
 * can set a close callback and watch its input before any I/O on it.
 * If evhttp dropped the connection in between (out of memory), it cleared
 * the callbacks and we only release our reference and the slot.
 */
#include "daemon/admin.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "sluice/clock.h"
#include "sluice/log.h"
#include "sluice/tap.h"
#include "util/tls.h"

/* The limits (docs/security.md "Admin endpoint"). */
#define ADMIN_MAX_CONNS 64
#define ADMIN_MIN_CONNS 4            /* even under a tiny RLIMIT_NOFILE */
#define ADMIN_DEADLINE_S 10          /* from a request's first byte to its answer written */
#define ADMIN_IDLE_S 10              /* no request under way, or no progress reading or writing */
#define ADMIN_INPUT_MAX (16 * 1024)  /* unparsed bytes read ahead per connection */
#define ADMIN_HEADERS_MAX (8 * 1024) /* request line and headers; below ADMIN_INPUT_MAX */
#define ADMIN_BODY_MAX 4096          /* read (and ignored) so that a POST gets its 405 */
#define ADMIN_BACKOFF_S 1
#define ADMIN_LOG_MS 10000

#define ADMIN_ALLOW "GET, HEAD"

/* GET /tap (DESIGN "Tap" below; docs/protocol.md "Tap"). */
#define ADMIN_TAP_TICK_MS 25              /* how often a tap's samples are sent */
#define ADMIN_TAP_UNREAD_MAX (256 * 1024) /* unread bytes of a tap's client before it drops */
#define ADMIN_TAP_KEEPALIVE_MS 5000       /* an empty line after this long without a sample */
#define ADMIN_TAP_STALL_S 60 /* a tap's client that reads nothing this long is closed */
#define ADMIN_TAP_SNDBUF (64 * 1024) /* SO_SNDBUF of a tap's socket (the kernel doubles it) */

struct admin_tap;

struct admin_conn {
    TAILQ_ENTRY(admin_conn) link; /* on exactly one of a->idle, a->fresh, a->open */
    struct admin_tap *tap;        /* open: the GET /tap it streams, or NULL */
    struct sl_admin *a;
    struct bufferevent *bev;         /* fresh: held (one reference) until adopted */
    struct evhttp_connection *evcon; /* open: evhttp's, borrowed until its close callback */
    struct evbuffer_cb_entry *in_cb; /* open: on the input buffer; NULL if it could not be set */
    struct event *deadline;          /* open: pending while a request is under way */
    /* admin_tls (DESIGN "TLS" below): the connection's SSL (its bufferevent's), and
     * evhttp's callbacks while ours watch the handshake */
    SSL *ssl;
    bool tls_done;  /* the handshake's outcome is counted */
    bool refuse;    /* no TLS bufferevent could be made: closed at adoption */
    bufferevent_data_cb http_readcb, http_writecb;
    bufferevent_event_cb http_eventcb;
};

TAILQ_HEAD(admin_conn_list, admin_conn);

struct sl_admin {
    struct evhttp *http;
    struct evconnlistener *listener; /* the evhttp's; NULL once we are being freed */
    bool accepting;                  /* listener enabled */
    struct event *adopt_ev;          /* adopts a->fresh after the accept callback */
    struct event *backoff_ev;        /* re-enables the listener after EMFILE */
    struct admin_conn *slots;        /* max_conns of them */
    struct admin_conn_list idle;     /* slots not in use */
    struct admin_conn_list fresh;    /* accepted, not adopted yet */
    struct admin_conn_list open;     /* adopted: evhttp serves them */
    unsigned max_conns;
    struct sl_admin_stats stats;
    struct sl_ratelimit accept_rl;
    struct sl_ratelimit full_rl;
    struct sl_ratelimit deadline_rl;
    sl_admin_view_fn view;
    void *arg;
    sl_admin_reload_fn reload; /* POST /reload; NULL: the path is 404 */
    void *reload_arg;
    struct sl_ratelimit refuse_rl;
    char name[64];
    bool auth;              /* requests need "Authorization: Bearer <token>" */
    uint8_t token_sha256[SHA256_DIGEST_LENGTH];
    unsigned public_paths;  /* SL_ADMIN_PUBLIC_* served without the token */
    struct sl_ratelimit auth_rl;
    bool listen_loopback; /* bound to a loopback address: GET /tap is on without a token */
    struct sl_ratelimit tap_rl;
    struct sl_tls *tls;   /* admin_tls = on: every connection speaks TLS; NULL: plaintext */
    bool client_certs;    /* admin_tls_ca_file: every connection has a verified client cert */
    struct sl_ratelimit tls_rl;
};

/* A GET /tap being streamed: owned by its connection's slot (c->tap). */
struct admin_tap {
    struct admin_conn *c;
    struct evhttp_request *req; /* evhttp's; ours to end (evhttp_send_reply_end) */
    struct sl_tap *tap;
    struct event *tick;
    struct evbuffer *chunk;
    uint64_t last_send_ms;
};

static void admin_tap_end(struct admin_tap *t);

/*
 * evhttp makes itself the listener's callback argument, so the listener's
 * error callback cannot be handed ours: it finds the endpoint (one per
 * process) here.  Set by sl_admin_new, cleared by sl_admin_free; main thread
 * only.
 */
static struct sl_admin *admin_instance;

/* A quarter of the descriptor limit, at most ADMIN_MAX_CONNS. */
static unsigned
admin_max_conns(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur / 4 >= ADMIN_MAX_CONNS) {
        return ADMIN_MAX_CONNS;
    }
    return rl.rlim_cur / 4 > ADMIN_MIN_CONNS ? (unsigned)(rl.rlim_cur / 4) : ADMIN_MIN_CONNS;
}

/* Enables the listener exactly when a slot is free and no back-off runs. */
static void
admin_listen_update(struct sl_admin *a)
{
    if (a->listener == NULL) {
        return;
    }
    bool want = a->stats.connections < a->max_conns && !evtimer_pending(a->backoff_ev, NULL);
    if (want == a->accepting) {
        return;
    }
    if ((want ? evconnlistener_enable(a->listener) : evconnlistener_disable(a->listener)) == 0) {
        a->accepting = want;
    }
}

static void
admin_slot_release(struct sl_admin *a, struct admin_conn *c)
{
    c->bev = NULL;
    c->evcon = NULL;
    c->in_cb = NULL;
    c->ssl = NULL;
    c->refuse = false;
    TAILQ_INSERT_TAIL(&a->idle, c, link);
    a->stats.connections--;
    admin_listen_update(a);
}

static void
admin_deadline_arm(struct admin_conn *c)
{
    struct timeval tv = {.tv_sec = ADMIN_DEADLINE_S, .tv_usec = 0};
    evtimer_add(c->deadline, &tv); /* fails only on invalid arguments */
}

static void
admin_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *c = arg;
    struct sl_admin *a = c->a;
    uint64_t sup = 0;
    a->stats.deadline_closed++;
    if (sl_ratelimit_ok(&a->deadline_rl, sl_now_ms(), &sup)) {
        log_warnx("admin %s: closed a connection whose request was not answered within %d s "
                  "(a client sending or reading too slowly; %llu such connections so far)",
                  a->name, ADMIN_DEADLINE_S, (unsigned long long)a->stats.deadline_closed);
    }
    evhttp_connection_free(c->evcon); /* admin_conn_close_cb releases c */
}

/* evhttp is closing the connection (also from evhttp_free). */
static void
admin_conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
    struct admin_conn *c = arg;
    struct sl_admin *a = c->a;
    if (c->tap != NULL) {
        admin_tap_end(c->tap);
    }
    if (c->in_cb != NULL) {
        evbuffer_remove_cb_entry(bufferevent_get_input(evhttp_connection_get_bufferevent(evcon)),
                                 c->in_cb);
    }
    evtimer_del(c->deadline);
    TAILQ_REMOVE(&a->open, c, link);
    admin_slot_release(a, c);
}

/* Bytes arrived: a request is under way, if none was. */
static void
admin_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct admin_conn *c = arg;
    if (info->n_added > 0 && !evtimer_pending(c->deadline, NULL)) {
        admin_deadline_arm(c);
    }
}

/*
 * DESIGN: TLS.  With admin_tls = on each accepted connection gets an
 * OpenSSL bufferevent in accepting state (admin_bev_cb), on the context of
 * util/tls.c (the sources' code: the same verification, allowed names,
 * failure reasons and SIGHUP reload).  evhttp sees only the decrypted
 * bytes.  Until the handshake ends, the bufferevent's callbacks are ours
 * (admin_tls_*_cb, set at adoption, passing reads and writes to evhttp's):
 * BEV_EVENT_CONNECTED checks the names and counts the handshake; an error,
 * EOF or timeout before it is classified (util/tls.h reasons), counted in
 * sluice_tls_handshake_failures_total{endpoint="admin"} and logged
 * (rate-limited), and evhttp closes the connection as for any broken one.
 * Nothing waits: the handshake runs on the main loop like any other read.
 * A stalled handshake is closed by the endpoint's idle timeout
 * (ADMIN_IDLE_S) and counted as "timeout".
 */
static void
admin_tls_read_cb(struct bufferevent *bev, void *arg)
{
    struct admin_conn *c = arg;
    c->http_readcb(bev, c->evcon);
}

static void
admin_tls_write_cb(struct bufferevent *bev, void *arg)
{
    struct admin_conn *c = arg;
    if (c->http_writecb != NULL) {
        c->http_writecb(bev, c->evcon);
    }
}

static void
admin_tls_log(struct sl_admin *a, struct admin_conn *c, const char *reason, const char *detail)
{
    uint64_t sup = 0;
    char peer[INET6_ADDRSTRLEN + 8] = "?";
    char *host = NULL;
    ev_uint16_t port = 0;
    if (c->evcon != NULL) {
        evhttp_connection_get_peer(c->evcon, &host, &port);
    }
    if (host != NULL) {
        snprintf(peer, sizeof(peer), "%s:%u", host, (unsigned)port);
    }
    if (sl_ratelimit_ok(&a->tls_rl, sl_now_ms(), &sup)) {
        const struct sl_tls_stats *st = sl_tls_stats(a->tls);
        uint64_t n = 0;
        for (int r = 0; r < SL_TLS_NREASONS; r++) {
            n += (uint64_t)atomic_load_explicit(&st->failures[r], memory_order_relaxed);
        }
        log_warnx("admin %s: TLS refused %s: %s%s%s (%llu refused so far)", a->name, peer,
                  reason, detail[0] != '\0' ? ": " : "", detail, (unsigned long long)n);
    }
}

/* The handshake failed (what: the bufferevent's event): classified and counted. */
static void
admin_tls_failed(struct sl_admin *a, struct admin_conn *c, struct bufferevent *bev, short what)
{
    char detail[256] = "";
    enum sl_tls_reason r;
    unsigned long e, first = 0;
    /* bufferevent_openssl took OpenSSL's error queue (and put SSL_get_error's
     * code, no OpenSSL error, before it); they come back newest first: the
     * oldest OpenSSL error is the cause. */
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(e) != 0) {
            first = e;
        }
    }
    if ((what & BEV_EVENT_TIMEOUT) != 0) {
        r = SL_TLS_R_TIMEOUT;
        sl_tls_count(a->tls, r);
    } else {
        ERR_clear_error();
        if (first != 0) {
            ERR_raise(ERR_GET_LIB(first), ERR_GET_REASON(first)); /* for util/tls.c */
        }
        sl_tls_failure_detail(c->ssl, detail, sizeof(detail));
        r = sl_tls_handshake_failed(a->tls, c->ssl, SSL_ERROR_SSL, -1);
    }
    admin_tls_log(a, c, sl_tls_reason_names[r], detail);
}

static void
admin_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct admin_conn *c = arg;
    struct sl_admin *a = c->a;
    struct evhttp_connection *evcon = c->evcon;
    if (!c->tls_done) {
        c->tls_done = true;
        if ((what & BEV_EVENT_CONNECTED) != 0) {
            if (!sl_tls_handshake_done(a->tls, c->ssl)) {
                /* Not reached with allowed names (the verify callback refuses
                 * inside the handshake); counted as "name" all the same. */
                admin_tls_log(a, c, sl_tls_reason_names[SL_TLS_R_NAME], "");
                evhttp_connection_free(evcon); /* admin_conn_close_cb releases c */
            }
            return;
        }
        admin_tls_failed(a, c, bev, what);
    }
    c->http_eventcb(bev, what, evcon);
}

static void
admin_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_admin *a = arg;
    struct admin_conn *c;
    while ((c = TAILQ_FIRST(&a->fresh)) != NULL) {
        void *cbarg = NULL;
        TAILQ_REMOVE(&a->fresh, c, link);
        bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
        struct evhttp_connection *evcon = cbarg;
        if (evcon == NULL || evhttp_connection_get_bufferevent(evcon) != c->bev) {
            /* evhttp gave it up before serving it (out of memory). */
            bufferevent_decref(c->bev);
            admin_slot_release(a, c);
            continue;
        }
        struct evbuffer *in = bufferevent_get_input(c->bev);
        if (c->ssl != NULL) {
            /* Ours until the handshake ends; evhttp sets its own again
             * when it starts reading the next request. */
            bufferevent_getcb(c->bev, &c->http_readcb, &c->http_writecb, &c->http_eventcb, NULL);
            bufferevent_setcb(c->bev, admin_tls_read_cb, admin_tls_write_cb, admin_tls_event_cb,
                              c);
        }
        bufferevent_decref(c->bev); /* the connection holds it now */
        c->bev = NULL;
        c->evcon = evcon;
        evhttp_connection_set_closecb(evcon, admin_conn_close_cb, c);
        TAILQ_INSERT_TAIL(&a->open, c, link);
        if (c->refuse) {
            evhttp_connection_free(evcon); /* admin_conn_close_cb releases c */
            continue;
        }
        c->in_cb = evbuffer_add_cb(in, admin_input_cb, c);
        if (c->in_cb == NULL || evbuffer_get_length(in) > 0) {
            /* Without the callback, time the connection from now on. */
            admin_deadline_arm(c);
        }
    }
}

/*
 * evhttp's bufferevent factory, called for each accepted connection before
 * evhttp sets it up.  Returns a bufferevent that evhttp owns (we hold one
 * more reference until admin_adopt_cb), or NULL: evhttp then makes its own.
 */
static struct bufferevent *
admin_bev_cb(struct event_base *base, void *arg)
{
    struct sl_admin *a = arg;
    struct admin_conn *c = TAILQ_FIRST(&a->idle);
    uint64_t sup = 0;
    struct bufferevent *bev = NULL;
    SSL *ssl = a->tls != NULL ? sl_tls_ssl_new(a->tls, NULL) : NULL;
    if (ssl != NULL) {
        /* The bufferevent owns ssl (freed with it) and closes the socket. */
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            SSL_free(ssl);
            ssl = NULL;
        } else {
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        }
    }
    if (bev == NULL) {
        /* Plaintext; with admin_tls (out of memory) the connection is
         * closed at adoption before any byte is read. */
        bev = bufferevent_socket_new(base, -1, 0);
    }
    if (bev == NULL) {
        /* evhttp makes its own: admin_request_cb refuses it under admin_tls. */
        return NULL;
    }
    bufferevent_setwatermark(bev, EV_READ, 0, ADMIN_INPUT_MAX);
    if (c == NULL) {
        /* Not reached: the listener is off while every slot is in use. */
        return bev;
    }
    TAILQ_REMOVE(&a->idle, c, link);
    bufferevent_incref(bev);
    c->bev = bev;
    c->ssl = ssl;
    c->tls_done = false;
    c->refuse = a->tls != NULL && ssl == NULL;
    TAILQ_INSERT_TAIL(&a->fresh, c, link);
    a->stats.connections++;
    a->stats.accepted++;
    event_active(a->adopt_ev, EV_TIMEOUT, 0);
    if (a->stats.connections >= a->max_conns) {
        a->stats.limit_reached++;
        if (sl_ratelimit_ok(&a->full_rl, sl_now_ms(), &sup)) {
            log_warnx("admin %s: %u connections open (the limit); new ones wait until one "
                      "closes",
                      a->name, a->max_conns);
        }
    }
    admin_listen_update(a);
    return bev;
}

static void
admin_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    admin_listen_update(arg);
}

static void
admin_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct sl_admin *a = admin_instance;
    int err = errno;
    uint64_t sup = 0;
    if (a == NULL || a->listener != l) {
        return;
    }
    a->stats.accept_errors++;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment instead of
         * spinning on a listener that stays readable. */
        struct timeval tv = {.tv_sec = ADMIN_BACKOFF_S, .tv_usec = 0};
        if (evconnlistener_disable(l) == 0) {
            a->accepting = false;
        }
        evtimer_add(a->backoff_ev, &tv);
    }
    if (sl_ratelimit_ok(&a->accept_rl, sl_now_ms(), &sup)) {
        errno = err;
        log_warn("admin %s: accept", a->name);
    }
}

/* The answer is written: the request is over.  On a keep-alive connection
 * the next one's time starts with its first byte, which may be here already
 * (pipelined). */
static void
admin_request_done_cb(struct evhttp_request *req, void *arg)
{
    struct admin_conn *c = arg;
    if (c->evcon == NULL) {
        return;
    }
    evtimer_del(c->deadline);
    if (c->in_cb == NULL || evbuffer_get_length(bufferevent_get_input(
                                evhttp_connection_get_bufferevent(c->evcon))) > 0) {
        admin_deadline_arm(c);
    }
}

/* Returns the request's slot (NULL if it has none: not reached). */
static struct admin_conn *
admin_watch_request(struct sl_admin *a, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (unsigned i = 0; evcon != NULL && i < a->max_conns; i++) {
        if (a->slots[i].evcon == evcon) {
            evhttp_request_set_on_complete_cb(req, admin_request_done_cb, &a->slots[i]);
            return &a->slots[i];
        }
    }
    return NULL;
}

/*
 * Sends status with body (borrowed).  Content-Length is always set: evhttp
 * adds it only to answers that carry a body, yet sends the body even to
 * HEAD.  A HEAD answer gets the length GET would have and no body (RFC 9110
 * section 9.3.2), so a keep-alive client reads the next answer right.
 */
static void
admin_send(struct evhttp_request *req, int status, const char *reason, const char *content_type,
           const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char clen[24];
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD &&
        evbuffer_add(evhttp_request_get_output_buffer(req), body, len) < 0) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    snprintf(clen, sizeof(clen), "%zu", len);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Content-Length", clen);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, status, reason, NULL);
}

static void
admin_send_text(struct evhttp_request *req, int status, const char *reason, const char *text)
{
    admin_send(req, status, reason, "text/plain; charset=utf-8", text, strlen(text));
}

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
        admin_send_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
        return;
    }
    a->view(a->arg, &v);
    int status = render(out, &v);
    if (fclose(out) != 0 || text == NULL) {
        free(text);
        admin_send_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
        return;
    }
    admin_send(req, status, status == HTTP_OK ? "OK" : "Service Unavailable", content_type, text,
               len);
    free(text);
}

/* True if sa is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x). */
static bool
admin_addr_loopback(const struct sockaddr *sa)
{
    if (sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}

/* True if the request's peer is on loopback. */
static bool
admin_peer_loopback(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    return admin_addr_loopback(conn != NULL ? evhttp_connection_get_addr(conn) : NULL);
}

/* POST /reload: what SIGHUP does (outputs reopen, the config is read again), for a
 * loopback peer that is not a browser; the answer is the result, with every error. */
static void
admin_reload(struct evhttp_request *req, struct sl_admin *a)
{
    char msg[8192] = "";
    char body[sizeof(msg) + 2];
    uint64_t sup = 0;
    const char *why = NULL;
    if (!admin_peer_loopback(req)) {
        why = "POST /reload is served on loopback only\n";
    } else if (evhttp_find_header(evhttp_request_get_input_headers(req), "Origin") != NULL) {
        why = "POST /reload is refused to browsers (Origin header)\n";
    }
    if (why != NULL) {
        a->stats.reloads_refused++;
        if (sl_ratelimit_ok(&a->refuse_rl, sl_now_ms(), &sup)) {
            log_warnx("admin %s: refused a POST /reload: %.*s (%llu refused so far)", a->name,
                      (int)strlen(why) - 1, why, (unsigned long long)a->stats.reloads_refused);
        }
        admin_send_text(req, 403, "Forbidden", why);
        return;
    }
    int rc = a->reload(a->reload_arg, msg, sizeof(msg));
    if (rc == 0) {
        a->stats.reloads++;
    }
    snprintf(body, sizeof(body), "%s\n", msg);
    /* 422: the daemon is fine, the config it was asked to take is not */
    admin_send_text(req, rc == 0 ? HTTP_OK : 422, rc == 0 ? "OK" : "Unprocessable Entity", body);
}

#define ADMIN_BEARER "Bearer "

/*
 * True when the request may see path: no token is configured, the path is
 * public, or the request carries "Authorization: Bearer <token>".  The
 * presented token is hashed and the digests compared with CRYPTO_memcmp, so
 * the time taken says nothing about the token (not even its length).
 */
static bool
admin_authorized(struct sl_admin *a, struct evhttp_request *req, unsigned path_bit)
{
    uint8_t got[SHA256_DIGEST_LENGTH];
    uint64_t sup = 0;
    if (!a->auth || (a->public_paths & path_bit) != 0) {
        return true;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h != NULL && strncasecmp(h, ADMIN_BEARER, strlen(ADMIN_BEARER)) == 0) {
        const char *tok = h + strlen(ADMIN_BEARER);
        SHA256((const unsigned char *)tok, strlen(tok), got);
        if (CRYPTO_memcmp(got, a->token_sha256, sizeof(got)) == 0) {
            return true;
        }
    }
    a->stats.unauthorized++;
    if (sl_ratelimit_ok(&a->auth_rl, sl_now_ms(), &sup)) {
        log_warnx("admin %s: refused a request %s (401; %llu refused so far)", a->name,
                  h == NULL ? "without a token" : "with a wrong token",
                  (unsigned long long)a->stats.unauthorized);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"sluice\"");
    return false;
}

void
sl_admin_set_auth(struct sl_admin *a, const uint8_t token_sha256[32], unsigned public_paths)
{
    a->auth = true;
    memcpy(a->token_sha256, token_sha256, sizeof(a->token_sha256));
    a->public_paths = public_paths;
}

int
sl_admin_reload_token(struct sl_admin *a, const char *path)
{
    uint8_t sha[SHA256_DIGEST_LENGTH];
    char why[PATH_MAX + 160];

    if (a == NULL || !a->auth || path == NULL) {
        return 0;
    }
    if (sl_admin_token_read(path, sha, why, sizeof(why)) < 0) {
        a->stats.token_reload_failures++;
        log_warnx("admin %s: admin_token_file not reloaded, keeping the token in use: %s", a->name,
                  why);
        return -1;
    }
    memcpy(a->token_sha256, sha, sizeof(a->token_sha256));
    OPENSSL_cleanse(sha, sizeof(sha));
    a->stats.token_reloads++;
    log_info("admin %s: admin_token_file reloaded", a->name);
    return 0;
}

/*
 * DESIGN: Tap.  GET /tap streams sampled event lines (sluice/tap.h) as one
 * chunked answer of NDJSON that ends only when the client goes.  The
 * writer fills the tap's buffer; a timer here takes it every
 * ADMIN_TAP_TICK_MS and sends it as one HTTP chunk, unless the client has
 * more than ADMIN_TAP_UNREAD_MAX bytes unread on its connection (a stalled
 * or slow reader): then what was taken is dropped and counted
 * (slow_client), so a tap holds at most its two buffers and that bound,
 * and nothing waits for its client (its socket's send buffer is set to
 * ADMIN_TAP_SNDBUF, so the kernel holds little for it either).  After ADMIN_TAP_KEEPALIVE_MS without
 * a sample an empty line is sent, so a client can tell a quiet pipeline
 * from a dead connection.  The request's deadline does not apply; the
 * connection's read timeout is off (the client sends nothing more) and its
 * write timeout is ADMIN_TAP_STALL_S: a client that reads nothing for that
 * long is closed.
 *
 * Who may tap: events are what the daemon carries, so GET /tap is never a
 * public path.  It is on when the endpoint is bound to a loopback address
 * (every client is local) or a token is set (which it then needs); else it
 * answers 403.  Requests from browsers (an Origin header) are refused.
 */

/* The number of lines in buf[0..len). */
static uint64_t
admin_count_lines(const char *buf, size_t len)
{
    uint64_t n = 0;
    for (const char *p = buf, *end = buf + len; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl != NULL ? nl + 1 : end;
    }
    return n;
}

/* The tap's stream is over (its connection closes, or is gone). */
static void
admin_tap_end(struct admin_tap *t)
{
    event_free(t->tick);
    sl_tap_detach(t->tap);
    evbuffer_free(t->chunk);
    t->c->tap = NULL;
    if (evhttp_request_get_connection(t->req) == NULL) {
        /* evhttp let go of the request when the connection failed (EOF,
         * timeout) because the answer was still ours: ending it frees it.
         * Otherwise the connection being freed frees it. */
        evhttp_send_reply_end(t->req);
    }
    free(t);
}

static void
admin_tap_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_tap *t = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(t->req);
    size_t len = 0;
    const char *buf = sl_tap_take(t->tap, &len);
    uint64_t now = sl_now_ms();
    if (evcon == NULL) {
        /* Not reached: the connection's close callback ends the tap. */
        admin_tap_end(t);
        return;
    }
    size_t unread =
        evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(evcon)));
    if (len > 0 && unread > ADMIN_TAP_UNREAD_MAX) {
        sl_tap_count_dropped(t->tap, SL_TAP_DROP_SLOW_CLIENT, admin_count_lines(buf, len));
        return;
    }
    if (len == 0) {
        if (unread > 0 || now - t->last_send_ms < ADMIN_TAP_KEEPALIVE_MS) {
            return;
        }
        buf = "\n";
        len = 1;
    }
    if (evbuffer_add(t->chunk, buf, len) < 0) {
        sl_tap_count_dropped(t->tap, SL_TAP_DROP_SLOW_CLIENT, admin_count_lines(buf, len));
        return;
    }
    evhttp_send_reply_chunk(t->req, t->chunk);
    evbuffer_drain(t->chunk, evbuffer_get_length(t->chunk));
    t->last_send_ms = now;
}

/* A 403 or 503 for GET /tap, counted and logged (rate-limited). */
static void
admin_tap_refuse(struct evhttp_request *req, struct sl_admin *a, int status, const char *why)
{
    uint64_t sup = 0;
    a->stats.taps_refused++;
    if (sl_ratelimit_ok(&a->tap_rl, sl_now_ms(), &sup)) {
        log_warnx("admin %s: refused a GET /tap: %.*s (%llu refused so far)", a->name,
                  (int)strlen(why) - 1, why, (unsigned long long)a->stats.taps_refused);
    }
    admin_send_text(req, status, status == 403 ? "Forbidden" : "Service Unavailable", why);
}

/* True if the daemon has a queue named name. */
static bool
admin_queue_exists(struct sl_admin *a, const char *name)
{
    struct sl_metrics_view v;
    a->view(a->arg, &v);
    for (size_t i = 0; i < v.nqueues; i++) {
        if (strcmp(sl_queue_name(v.queues[i]), name) == 0) {
            return true;
        }
    }
    return false;
}

/* GET /tap?queue=Q&grep=S&rate=N (authorized already). */
static void
admin_tap(struct evhttp_request *req, struct sl_admin *a, struct admin_conn *c)
{
    struct evkeyvalq q;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char msg[160];
    TAILQ_INIT(&q);
    if (!a->auth && !a->listen_loopback && !a->client_certs) {
        admin_tap_refuse(req, a, 403,
                         "GET /tap is off: the admin endpoint is not on loopback and has no token "
                         "or client certificates (set admin_token_file or admin_tls_ca_file)\n");
        return;
    }
    if (evhttp_find_header(evhttp_request_get_input_headers(req), "Origin") != NULL) {
        admin_tap_refuse(req, a, 403, "GET /tap is refused to browsers (Origin header)\n");
        return;
    }
    if (query != NULL && evhttp_parse_query_str(query, &q) < 0) {
        admin_send_text(req, HTTP_BADREQUEST, "Bad Request", "bad query string\n");
        return;
    }
    const char *queue = evhttp_find_header(&q, "queue");
    const char *grep = evhttp_find_header(&q, "grep");
    const char *rate_s = evhttp_find_header(&q, "rate");
    long rate = SL_TAP_RATE_DEFAULT;
    char *end = NULL;
    if (rate_s != NULL) {
        errno = 0;
        rate = strtol(rate_s, &end, 10);
    }
    if (rate_s != NULL &&
        (errno != 0 || end == rate_s || *end != '\0' || rate < 1 || rate > SL_TAP_RATE_MAX)) {
        snprintf(msg, sizeof(msg), "rate must be 1 to %d lines a second\n", SL_TAP_RATE_MAX);
        admin_send_text(req, HTTP_BADREQUEST, "Bad Request", msg);
    } else if (grep != NULL && strlen(grep) >= SL_TAP_GREP_MAX) {
        snprintf(msg, sizeof(msg), "grep is longer than %d bytes\n", SL_TAP_GREP_MAX - 1);
        admin_send_text(req, HTTP_BADREQUEST, "Bad Request", msg);
    } else if (queue != NULL && queue[0] != '\0' && !admin_queue_exists(a, queue)) {
        snprintf(msg, sizeof(msg), "no queue named \"%.64s\"\n", queue);
        admin_send_text(req, HTTP_NOTFOUND, "Not Found", msg);
    } else if (c == NULL) {
        admin_send_text(req, HTTP_INTERNAL, "Internal Server Error", "no connection\n");
    } else {
        struct admin_tap *t = calloc(1, sizeof(*t));
        struct timeval tick = {.tv_sec = 0, .tv_usec = ADMIN_TAP_TICK_MS * 1000};
        struct timeval stall = {.tv_sec = ADMIN_TAP_STALL_S, .tv_usec = 0};
        if (t != NULL) {
            t->tick = event_new(evhttp_connection_get_base(c->evcon), -1, EV_PERSIST,
                                admin_tap_tick_cb, t);
            t->chunk = evbuffer_new();
        }
        if (t == NULL || t->tick == NULL || t->chunk == NULL ||
            (t->tap = sl_tap_attach(queue, grep, (unsigned)rate)) == NULL) {
            bool busy = errno == EBUSY;
            if (t != NULL) {
                if (t->tick != NULL) {
                    event_free(t->tick);
                }
                if (t->chunk != NULL) {
                    evbuffer_free(t->chunk);
                }
                free(t);
            }
            if (busy) {
                snprintf(msg, sizeof(msg), "%d taps are attached (the limit); try later\n",
                         SL_TAP_MAX);
                admin_tap_refuse(req, a, 503, msg);
            } else {
                admin_send_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
            }
            evhttp_clear_headers(&q);
            return;
        }
        t->c = c;
        t->req = req;
        t->last_send_ms = sl_now_ms();
        c->tap = t;
        evtimer_del(c->deadline);
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
        int sndbuf = ADMIN_TAP_SNDBUF;
        bufferevent_set_timeouts(bev, NULL, &stall);
        /* Best effort: what a stalled client leaves in the kernel is bounded too. */
        (void)setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        evhttp_add_header(out, "Content-Type", "application/x-ndjson");
        evhttp_add_header(out, "Cache-Control", "no-store");
        evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
        evhttp_send_reply_start(req, HTTP_OK, "OK");
        event_add(t->tick, &tick);
    }
    evhttp_clear_headers(&q);
}

static void
admin_request_cb(struct evhttp_request *req, void *arg)
{
    struct sl_admin *a = arg;
    const char *uri = evhttp_request_get_uri(req);
    const struct evhttp_uri *parsed = evhttp_request_get_evhttp_uri(req);
    const char *path = parsed != NULL ? evhttp_uri_get_path(parsed) : uri;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool reload = path != NULL && a->reload != NULL && strcmp(path, "/reload") == 0;
    bool tap = path != NULL && strcmp(path, "/tap") == 0;
    struct admin_conn *c = admin_watch_request(a, req);
    if (a->tls != NULL && (c == NULL || c->ssl == NULL)) {
        /* Not reached: a connection without TLS under admin_tls (out of memory). */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        admin_send_text(req, HTTP_BADREQUEST, "Bad Request", "TLS required\n");
    } else if (path == NULL) {
        admin_send_text(req, HTTP_BADREQUEST, "Bad Request", "bad request\n");
    } else if ((reload && cmd != EVHTTP_REQ_POST) || (tap && cmd != EVHTTP_REQ_GET)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", reload ? "POST" : "GET");
        admin_send_text(req, HTTP_BADMETHOD, "Method Not Allowed",
                        reload ? "use POST\n" : "use GET\n");
    } else if (!reload && !tap && strcmp(path, "/metrics") != 0 && strcmp(path, "/healthz") != 0) {
        admin_send_text(req, HTTP_NOTFOUND, "Not Found", "try /metrics or /healthz\n");
    } else if (!admin_authorized(a, req,
                                 reload || tap /* changes state, or shows events: never public */
                                     ? 0
                                     : strcmp(path, "/metrics") == 0 ? SL_ADMIN_PUBLIC_METRICS
                                                                     : SL_ADMIN_PUBLIC_HEALTHZ)) {
        admin_send_text(req, 401, "Unauthorized",
                        "send Authorization: Bearer <the token in admin_token_file>\n");
    } else if (reload) {
        admin_reload(req, a);
    } else if (tap) {
        admin_tap(req, a, c);
    } else if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", ADMIN_ALLOW);
        admin_send_text(req, HTTP_BADMETHOD, "Method Not Allowed", "use GET or HEAD\n");
    } else if (strcmp(path, "/metrics") == 0) {
        admin_reply(req, a, admin_render_metrics, "text/plain; version=0.0.4; charset=utf-8");
    } else {
        admin_reply(req, a, sl_metrics_health, "application/json");
    }
}

void
sl_admin_set_reload(struct sl_admin *a, sl_admin_reload_fn fn, void *arg)
{
    a->reload = fn;
    a->reload_arg = arg;
}

struct sl_admin *
sl_admin_new(struct event_base *base, const char *name, const struct sockaddr *addr,
             socklen_t addrlen, sl_admin_view_fn view, void *arg)
{
    struct evhttp_bound_socket *bound;
    int one = 1;
    int fd = -1;
    if (admin_instance != NULL) {
        log_warnx("admin: one endpoint per process");
        errno = EBUSY;
        return NULL;
    }
    struct sl_admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->view = view;
    a->arg = arg;
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->accept_rl.interval_ms = ADMIN_LOG_MS;
    a->full_rl.interval_ms = ADMIN_LOG_MS;
    a->deadline_rl.interval_ms = ADMIN_LOG_MS;
    a->refuse_rl.interval_ms = ADMIN_LOG_MS;
    a->auth_rl.interval_ms = ADMIN_LOG_MS;
    a->tap_rl.interval_ms = ADMIN_LOG_MS;
    a->tls_rl.interval_ms = ADMIN_LOG_MS;
    a->listen_loopback = admin_addr_loopback(addr);
    TAILQ_INIT(&a->idle);
    TAILQ_INIT(&a->fresh);
    TAILQ_INIT(&a->open);
    a->max_conns = admin_max_conns();
    a->stats.max_connections = a->max_conns;
    a->slots = calloc(a->max_conns, sizeof(*a->slots));
    a->adopt_ev = event_new(base, -1, 0, admin_adopt_cb, a);
    a->backoff_ev = evtimer_new(base, admin_backoff_cb, a);
    if (a->slots == NULL || a->adopt_ev == NULL || a->backoff_ev == NULL) {
        goto err;
    }
    for (unsigned i = 0; i < a->max_conns; i++) {
        struct admin_conn *c = &a->slots[i];
        c->a = a;
        c->deadline = evtimer_new(base, admin_deadline_cb, c);
        if (c->deadline == NULL) {
            goto err;
        }
        TAILQ_INSERT_TAIL(&a->idle, c, link);
    }
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
    /* Every method reaches admin_request_cb, which answers 405 to all but
     * GET and HEAD; a small body is read (and ignored) for that. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_timeout(a->http, ADMIN_IDLE_S);
    evhttp_set_max_headers_size(a->http, ADMIN_HEADERS_MAX);
    evhttp_set_max_body_size(a->http, ADMIN_BODY_MAX);
    evhttp_set_gencb(a->http, admin_request_cb, a);
    evhttp_set_bevcb(a->http, admin_bev_cb, a);
    bound = evhttp_accept_socket_with_handle(a->http, fd);
    if (bound == NULL) {
        log_warnx("admin: cannot serve on %s", name);
        goto err;
    }
    /* The evhttp owns fd now. */
    a->listener = evhttp_bound_socket_get_listener(bound);
    a->accepting = true;
    evconnlistener_set_error_cb(a->listener, admin_accept_error_cb);
    admin_instance = a;
    return a;
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
    struct admin_conn *c;
    if (a == NULL) {
        return;
    }
    if (admin_instance == a) {
        admin_instance = NULL;
    }
    a->listener = NULL; /* evhttp_free frees it first */
    if (a->http != NULL) {
        /* Closes the listening socket, then every connection (the open
         * ones through admin_conn_close_cb). */
        evhttp_free(a->http);
    }
    while ((c = TAILQ_FIRST(&a->fresh)) != NULL) {
        TAILQ_REMOVE(&a->fresh, c, link);
        bufferevent_decref(c->bev);
    }
    for (unsigned i = 0; a->slots != NULL && i < a->max_conns; i++) {
        if (a->slots[i].deadline != NULL) {
            event_free(a->slots[i].deadline);
        }
    }
    if (a->adopt_ev != NULL) {
        event_free(a->adopt_ev);
    }
    if (a->backoff_ev != NULL) {
        event_free(a->backoff_ev);
    }
    free(a->slots);
    sl_tls_free(a->tls); /* after evhttp_free: no connection uses it */
    free(a);
}

int
sl_admin_set_tls(struct sl_admin *a, const struct sl_tls_config *cfg, char *why, size_t whylen)
{
    char label[96];
    snprintf(label, sizeof(label), "admin %s", a->name);
    a->tls = sl_tls_new(cfg, SL_TLS_SERVER, label, why, whylen);
    if (a->tls == NULL) {
        return -1;
    }
    a->client_certs = cfg->client_auth == SL_TLS_AUTH_REQUIRED;
    return 0;
}

int
sl_admin_reload_tls(struct sl_admin *a)
{
    return a != NULL && a->tls != NULL ? sl_tls_reload(a->tls) : 0;
}

struct sl_tls *
sl_admin_tls(const struct sl_admin *a)
{
    return a != NULL ? a->tls : NULL;
}

void
sl_admin_get_stats(const struct sl_admin *a, struct sl_admin_stats *st)
{
    *st = a->stats;
    sl_tap_get_stats(&st->tap);
}
