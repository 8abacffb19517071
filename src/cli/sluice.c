/*
 * sluice — the operator's command: talks to a running sluiced over its
 * admin endpoint (HTTP, libevent's evhttp client) and checks configs with
 * the daemon's own config loader (linked from libsluice.a, so `sluice check`
 * and `sluiced -n` are the same code and print the same lines).
 *
 *   sluice [-a HOST:PORT | -c FILE] status [--watch [SECONDS]] [-n COUNT]
 *   sluice [-a HOST:PORT | -c FILE] reload
 *   sluice [-a HOST:PORT | -c FILE] tap [-q QUEUE] [--grep STR] [-r RATE] [-n COUNT]
 *   sluice check -c FILE
 *
 * The daemon is found with -a (default 127.0.0.1:5171) or -c FILE, whose
 * admin_listen is read (a wildcard address is reached on loopback).
 * An endpoint with admin_tls is reached over TLS (libevent's
 * bufferevent_openssl): --cacert verifies the daemon's certificate (with
 * -c: admin_tls_ca_file unless given), --cert and --key are the client
 * certificate admin_tls_ca_file asks for.
 * Exit status: 0 ok, 1 the daemon answered a failure (unhealthy, reload
 * failed) or the config has errors, 2 usage, 3 the daemon cannot be reached.
 * docs/sluice.1 is the manual.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/config.h"

#define DEFAULT_ADMIN "127.0.0.1:5171"
#define HTTP_TIMEOUT_S 5
#define RATE_INTERVAL_MS 1000
#define WATCH_MAX_S 3600
#define MAX_SAMPLES 20000
#define TOKEN_MAX 4096   /* as sluiced reads admin_token_file */
/* The daemon sends an empty line after 5 s without events and closes a tap
 * that reads nothing for 60 s (admin_http.c): a tap stopped (^Z) for less
 * than that resumes, as the daemon keeps its connection. */
#define TAP_TIMEOUT_S 65

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };
enum { OPT_CACERT = 256, OPT_CERT, OPT_KEY }; /* long options without a letter */

/* The daemon's admin endpoint. */
struct target {
    char host[256];
    int port;
    char name[300];            /* as given, for messages */
    char token[TOKEN_MAX + 1]; /* sent as "Authorization: Bearer"; "" for none */
    SSL_CTX *tls;              /* TLS to the endpoint (admin_tls); NULL: plaintext */
};

/* --- TLS --------------------------------------------------------------------------- */

/* The TLS bufferevent of the connection under way (one at a time), for the
 * error messages; NULL without TLS.  What its handshake saw is recorded as
 * it happens (evhttp resets the SSL when the connection fails). */
static struct bufferevent *tls_bev;
static char tls_why[400];
static struct {
    long verify_err;     /* the first verify error of the daemon's chain, or X509_V_OK */
    bool handshake_done; /* our side of the handshake completed */
    char alert[96];      /* the daemon's alert, "" for none */
} tls_seen;

static int
tls_verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok && tls_seen.verify_err == X509_V_OK) {
        tls_seen.verify_err = X509_STORE_CTX_get_error(x);
    }
    return ok;
}

static void
tls_info_cb(const SSL *ssl, int where, int ret)
{
    (void)ssl;
    if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
        tls_seen.handshake_done = true;
    }
    if ((where & SSL_CB_READ_ALERT) != 0 && tls_seen.alert[0] == '\0' &&
        (ret & 0xff) != SSL_AD_CLOSE_NOTIFY) {
        const char *desc = SSL_alert_desc_string_long(ret);
        if ((ret & 0xff) == 116) { /* TLS 1.3's, unnamed by OpenSSL 3.0 (RFC 8446 section 6) */
            desc = "certificate required";
        }
        snprintf(tls_seen.alert, sizeof(tls_seen.alert), "%s (%d)", desc, ret & 0xff);
    }
}

/*
 * The context: the daemon's certificate verified against cacert (required:
 * verification cannot be turned off), cert/key presented when given.
 * Returns NULL after printing why.
 */
static SSL_CTX *
tls_ctx_new(const char *cacert, const char *cert, const char *key)
{
    char err[256];
    const char *what = "context";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    bool ok = ctx != NULL && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
    if (ok) {
        what = cacert;
        ok = SSL_CTX_load_verify_locations(ctx, cacert, NULL) == 1;
    }
    if (ok && cert != NULL) {
        what = cert;
        ok = SSL_CTX_use_certificate_chain_file(ctx, cert) == 1;
    }
    if (ok && key != NULL) {
        what = key;
        ok = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1;
    }
    if (!ok) {
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        fprintf(stderr, "sluice: TLS: %s: %s\n", what, err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
    SSL_CTX_set_info_callback(ctx, tls_info_cb);
    return ctx;
}

/*
 * A connection to the endpoint: plaintext, or TLS with the daemon's
 * certificate checked for t->host (an IP address or a DNS name; the name
 * is sent as SNI).  NULL when out of memory.
 */
static struct evhttp_connection *
conn_new(struct event_base *base, const struct target *t)
{
    tls_bev = NULL;
    tls_why[0] = '\0';
    tls_seen.verify_err = X509_V_OK;
    tls_seen.handshake_done = false;
    tls_seen.alert[0] = '\0';
    if (t->tls == NULL) {
        return evhttp_connection_base_new(base, NULL, t->host, t->port);
    }
    SSL *ssl = SSL_new(t->tls);
    if (ssl == NULL) {
        return NULL;
    }
    bool ip = strspn(t->host, "0123456789.") == strlen(t->host) || strchr(t->host, ':') != NULL;
    if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->host)
            : SSL_set1_host(ssl, t->host) && SSL_set_tlsext_host_name(ssl, t->host)) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct evhttp_connection *conn =
        evhttp_connection_base_bufferevent_new(base, NULL, bev, t->host, (ev_uint16_t)t->port);
    if (conn == NULL) {
        bufferevent_free(bev);
        return NULL;
    }
    tls_bev = bev;
    return conn;
}

/* Why the TLS connection failed, or NULL when it did not (or is plaintext). */
static const char *
tls_failure(void)
{
    unsigned long e, first = 0;
    if (tls_bev == NULL || tls_why[0] != '\0') {
        return tls_why[0] != '\0' ? tls_why : NULL;
    }
    while ((e = bufferevent_get_openssl_error(tls_bev)) != 0) {
        if (ERR_GET_LIB(e) != 0) {
            first = e; /* they come newest first */
        }
    }
    if (tls_seen.verify_err != X509_V_OK) {
        snprintf(tls_why, sizeof(tls_why),
                 "TLS: the daemon's certificate is not trusted: %s (check --cacert)",
                 X509_verify_cert_error_string(tls_seen.verify_err));
    } else if (tls_seen.alert[0] != '\0' || first != 0) {
        char err[256];
        if (tls_seen.alert[0] != '\0') {
            snprintf(err, sizeof(err), "the daemon's alert: %s", tls_seen.alert);
        } else {
            ERR_error_string_n(first, err, sizeof(err));
        }
        snprintf(tls_why, sizeof(tls_why),
                 "TLS refused: %s (does the endpoint want a client certificate: --cert, --key?)",
                 err);
    } else if (tls_seen.handshake_done) {
        /* TLS 1.3: the daemon checks the client certificate after our side
         * of the handshake ended; its alert may be lost to the close. */
        snprintf(tls_why, sizeof(tls_why),
                 "TLS refused: the daemon closed the connection after the handshake (does the "
                 "endpoint want a client certificate: --cert, --key?)");
    }
    return tls_why[0] != '\0' ? tls_why : NULL;
}

/* --- HTTP ------------------------------------------------------------------------ */

/* Adds the headers every request carries. */
static void
http_headers(struct evhttp_request *req, const struct target *t)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", t->host);
    evhttp_add_header(h, "Connection", "close");
    if (t->token[0] != '\0') {
        char auth[sizeof(t->token) + 8];
        snprintf(auth, sizeof(auth), "Bearer %s", t->token);
        evhttp_add_header(h, "Authorization", auth);
    }
}

struct http_result {
    struct event_base *base;
    int code;      /* HTTP status, 0 when no answer came */
    char *body;    /* NUL-terminated, malloc'd */
    size_t len;
    const char *error; /* why no answer came */
};

static void
http_error_cb(enum evhttp_request_error err, void *arg)
{
    struct http_result *r = arg;
    switch (err) {
    case EVREQ_HTTP_TIMEOUT:
        r->error = "timed out";
        break;
    case EVREQ_HTTP_EOF:
        r->error = "connection closed (is it the admin endpoint? with admin_tls: give --cacert)";
        break;
    case EVREQ_HTTP_INVALID_HEADER:
    case EVREQ_HTTP_DATA_TOO_LONG:
        r->error = "the answer is not HTTP the admin endpoint sends";
        break;
    default:
        r->error = "connection refused or failed (is sluiced running, is admin_listen on?)";
        break;
    }
    if (tls_failure() != NULL) {
        r->error = tls_why;
    }
}

static void
http_done_cb(struct evhttp_request *req, void *arg)
{
    struct http_result *r = arg;
    if (req != NULL && evhttp_request_get_response_code(req) != 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        r->body = malloc(n + 1);
        if (r->body != NULL) {
            evbuffer_remove(in, r->body, n);
            r->body[n] = '\0';
            r->len = n;
            r->code = evhttp_request_get_response_code(req);
        } else {
            r->error = "out of memory";
        }
    } else if (r->error == NULL) {
        r->error = tls_failure() != NULL
                       ? tls_why
                       : "connection refused or failed (is sluiced running, is admin_listen on?)";
    }
    event_base_loopexit(r->base, NULL);
}

/*
 * One request to host:port; fills *r (caller frees r->body).  Returns 0 when
 * an answer came (any status), -1 otherwise (r->error says why).
 */
static int
http_call(const struct target *t, enum evhttp_cmd_type cmd, const char *path, struct http_result *r)
{
    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    if (r->base == NULL) {
        r->error = "out of memory";
        return -1;
    }
    struct evhttp_connection *conn = conn_new(r->base, t);
    struct evhttp_request *req = evhttp_request_new(http_done_cb, r);
    if (conn == NULL || req == NULL) {
        r->error = "out of memory";
        if (req != NULL) {
            evhttp_request_free(req);
        }
    } else {
        evhttp_connection_set_timeout(conn, HTTP_TIMEOUT_S);
        evhttp_connection_set_retries(conn, 0);
        evhttp_request_set_error_cb(req, http_error_cb);
        http_headers(req, t);
        if (cmd == EVHTTP_REQ_POST) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", "0");
        }
        if (evhttp_make_request(conn, req, cmd, path) == 0) {
            event_base_dispatch(r->base);
        } else {
            r->error = "cannot send the request";
        }
    }
    if (conn != NULL) {
        evhttp_connection_free(conn);
    }
    tls_bev = NULL;
    event_base_free(r->base);
    r->base = NULL;
    return r->code != 0 ? 0 : -1;
}

/* --- the daemon's address -------------------------------------------------------- */

/* Splits "HOST:PORT" or "[V6]:PORT".  A wildcard host is reached on loopback. */
static int
target_parse(struct target *t, const char *s)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t hlen;
    snprintf(t->name, sizeof(t->name), "%s", s);
    if (colon == NULL || colon[1] == '\0') {
        return -1;
    }
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(t->host)) {
        return -1;
    }
    memcpy(t->host, h, hlen);
    t->host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        return -1;
    }
    t->port = (int)port;
    if (strcmp(t->host, "0.0.0.0") == 0 || strcmp(t->host, "*") == 0) {
        snprintf(t->host, sizeof(t->host), "127.0.0.1");
    } else if (strcmp(t->host, "::") == 0) {
        snprintf(t->host, sizeof(t->host), "::1");
    }
    return 0;
}

/* Reads the token: the first line of path (as sluiced reads
 * admin_token_file).  Returns 0, or prints why and returns -1. */
static int
token_read(struct target *t, const char *path)
{
    char buf[TOKEN_MAX + 2];
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        /* Single-threaded.  NOLINTNEXTLINE(concurrency-mt-unsafe) */
        fprintf(stderr, "sluice: cannot read the token in %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    size_t len = strcspn(buf, "\r\n");
    if (len == 0 || len > TOKEN_MAX) {
        fprintf(stderr, "sluice: %s has no token on its first line\n", path);
        return -1;
    }
    memcpy(t->token, buf, len);
    t->token[len] = '\0';
    return 0;
}

/* Loads path with the daemon's loader; prints every error.  NULL on failure. */
static struct sl_config *
load_config(const char *path)
{
    return sl_config_load_report(path, "sluice");
}

/* The target from -c FILE: its admin_listen (and admin_tls, admin_tls_ca_file
 * as the CA when no --cacert is given: *cacert is then set, malloc'd).
 * Returns 0, or an exit status. */
static int
target_from_config(struct target *t, const char *path, char **cacert)
{
    struct sl_config *cfg = load_config(path);
    if (cfg == NULL) {
        return EXIT_FAIL;
    }
    int rc = EXIT_OK;
    if (!cfg->daemon.admin_enabled) {
        fprintf(stderr, "sluice: %s has admin_listen = off: nothing to talk to\n", path);
        rc = EXIT_FAIL;
    } else if (target_parse(t, cfg->daemon.admin_listen) < 0) {
        fprintf(stderr, "sluice: %s: admin_listen = %s is not HOST:PORT\n", path,
                cfg->daemon.admin_listen);
        rc = EXIT_FAIL;
    } else if (cfg->daemon.admin_token_file != NULL && t->token[0] == '\0' &&
               token_read(t, cfg->daemon.admin_token_file) < 0) {
        rc = EXIT_FAIL;
    } else if (cfg->daemon.admin_tls.on && *cacert == NULL) {
        if (cfg->daemon.admin_tls.ca_file == NULL) {
            fprintf(stderr, "sluice: %s has admin_tls = on: give --cacert FILE (the CA of the "
                            "daemon's certificate)\n", path);
            rc = EXIT_USAGE;
        } else if ((*cacert = strdup(cfg->daemon.admin_tls.ca_file)) == NULL) {
            rc = EXIT_FAIL;
        }
    }
    sl_config_free(cfg);
    return rc;
}

/* GET or POST path; prints why on failure.  Returns 0 or EXIT_UNREACHABLE. */
static int
fetch(const struct target *t, enum evhttp_cmd_type cmd, const char *path, struct http_result *r)
{
    if (http_call(t, cmd, path, r) < 0) {
        fprintf(stderr, "sluice: %s%s: %s\n", t->name, path, r->error);
        free(r->body);
        r->body = NULL;
        return EXIT_UNREACHABLE;
    }
    return EXIT_OK;
}

/* --- /metrics --------------------------------------------------------------------- */

struct sample {
    char name[128];
    char labels[256]; /* inside the braces, "" if none */
    double value;
};

struct scrape {
    struct sample *s;
    size_t n;
    int64_t at_ms; /* monotonic */
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses the text exposition (the lines sluiced writes: name{labels} value). */
static int
scrape_parse(struct scrape *sc, char *text)
{
    size_t cap = 0;
    sc->n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        struct sample smp = {0};
        size_t nl = strcspn(line, "{ ");
        if (nl == 0 || nl >= sizeof(smp.name)) {
            continue;
        }
        memcpy(smp.name, line, nl);
        const char *rest = line + nl;
        if (*rest == '{') {
            const char *close = strrchr(rest, '}');
            if (close == NULL || (size_t)(close - rest - 1) >= sizeof(smp.labels)) {
                continue;
            }
            memcpy(smp.labels, rest + 1, (size_t)(close - rest - 1));
            rest = close + 1;
        }
        char *end;
        smp.value = strtod(rest, &end);
        if (end == rest) {
            continue;
        }
        if (sc->n == cap) {
            if (cap >= MAX_SAMPLES) {
                break;
            }
            cap = cap != 0 ? cap * 2 : 256;
            struct sample *ns = realloc(sc->s, cap * sizeof(*ns));
            if (ns == NULL) {
                return -1;
            }
            sc->s = ns;
        }
        sc->s[sc->n++] = smp;
    }
    return 0;
}

/* Copies the value of label key in labels into buf; false if absent. */
static bool
label_get(const char *labels, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = labels; *p != '\0';) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=' && p[klen + 1] == '"') {
            const char *v = p + klen + 2;
            size_t n = 0;
            while (v[n] != '\0' && v[n] != '"') {
                n += v[n] == '\\' && v[n + 1] != '\0' ? 2 : 1;
            }
            snprintf(buf, len, "%.*s", (int)n, v);
            return true;
        }
        /* to the next label: past the closing quote and the comma */
        const char *q = strchr(p, '"');
        q = q != NULL ? strchr(q + 1, '"') : NULL;
        if (q == NULL) {
            break;
        }
        p = q[1] == ',' ? q + 2 : q + 1;
    }
    return false;
}

/* The sample name{key="val"} (other labels ignored), or NULL. */
static const struct sample *
find(const struct scrape *sc, const char *name, const char *key, const char *val)
{
    char buf[128];
    for (size_t i = 0; i < sc->n; i++) {
        if (strcmp(sc->s[i].name, name) == 0 &&
            (key == NULL ||
             (label_get(sc->s[i].labels, key, buf, sizeof(buf)) && strcmp(buf, val) == 0))) {
            return &sc->s[i];
        }
    }
    return NULL;
}

static double
value(const struct scrape *sc, const char *name, const char *key, const char *val)
{
    const struct sample *s = find(sc, name, key, val);
    return s != NULL ? s->value : NAN;
}

/* Per second between two scrapes; NAN when either lacks the series. */
static double
rate(const struct scrape *a, const struct scrape *b, const char *name, const char *key,
     const char *val)
{
    double va = value(a, name, key, val), vb = value(b, name, key, val);
    double secs = (double)(b->at_ms - a->at_ms) / 1000.0;
    if (isnan(va) || isnan(vb) || secs <= 0) {
        return NAN;
    }
    return vb >= va ? (vb - va) / secs : vb / secs; /* a restart resets counters */
}

/* Sum over every series of name with label key = val (e.g. drops of all reasons). */
static double
sum_where(const struct scrape *sc, const char *name, const char *key, const char *val)
{
    char buf[128];
    double t = 0;
    for (size_t i = 0; i < sc->n; i++) {
        if (strcmp(sc->s[i].name, name) == 0 &&
            label_get(sc->s[i].labels, key, buf, sizeof(buf)) && strcmp(buf, val) == 0) {
            t += sc->s[i].value;
        }
    }
    return t;
}

/* "1.2k", "3.4M": width-limited numbers for the table. */
static const char *
human(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "-");
    } else if (v >= 1e9) {
        snprintf(buf, len, "%.1fG", v / 1e9);
    } else if (v >= 1e6) {
        snprintf(buf, len, "%.1fM", v / 1e6);
    } else if (v >= 1e4) {
        snprintf(buf, len, "%.1fk", v / 1e3);
    } else {
        snprintf(buf, len, "%.0f", v);
    }
    return buf;
}

/* Every distinct value of label key among the series called name, in order. */
static size_t
names_of(const struct scrape *sc, const char *name, const char *key, char (*out)[128], size_t max)
{
    size_t n = 0;
    char buf[128];
    for (size_t i = 0; i < sc->n && n < max; i++) {
        if (strcmp(sc->s[i].name, name) != 0 || !label_get(sc->s[i].labels, key, buf, sizeof(buf))) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++) {
            seen = strcmp(out[j], buf) == 0;
        }
        if (!seen) {
            snprintf(out[n++], 128, "%s", buf);
        }
    }
    return n;
}

#define MAX_OBJS 256

/*
 * The screen, from two scrapes a (earlier) and b and the /healthz answer.
 * Returns true when the daemon is healthy.
 */
static bool
print_status(FILE *out, const struct target *t, const struct scrape *a, const struct scrape *b,
             int health_code, const char *health)
{
    static char objs[MAX_OBJS][128];
    char b1[32], b2[32], b3[32], b4[32];
    char version[64] = "?";
    const struct sample *bi = find(b, "sluice_build_info", NULL, NULL);
    if (bi != NULL) {
        label_get(bi->labels, "version", version, sizeof(version));
    }
    double up = value(b, "sluice_uptime_seconds", NULL, NULL);
    fprintf(out, "sluiced %s at %s: %s, up %.0f s, rates over %.1f s\n", version, t->name,
            health_code == 200 ? "healthy" : "FAILING", isnan(up) ? 0.0 : up,
            (double)(b->at_ms - a->at_ms) / 1000.0);

    size_t n = names_of(b, "sluice_source_received_events_total", "source", objs, MAX_OBJS);
    fprintf(out, "\n%-20s %10s %10s %7s %10s\n", "SOURCE", "EVENTS/S", "BYTES/S", "CONNS",
            "DROPPED/S");
    for (size_t i = 0; i < n; i++) {
        double d0 = sum_where(a, "sluice_source_dropped_events_total", "source", objs[i]);
        double d1 = sum_where(b, "sluice_source_dropped_events_total", "source", objs[i]);
        double secs = (double)(b->at_ms - a->at_ms) / 1000.0;
        fprintf(out, "%-20s %10s %10s %7s %10s\n", objs[i],
                human(rate(a, b, "sluice_source_received_events_total", "source", objs[i]), b1,
                      sizeof(b1)),
                human(rate(a, b, "sluice_source_received_bytes_total", "source", objs[i]), b2,
                      sizeof(b2)),
                human(value(b, "sluice_source_connections", "source", objs[i]), b3, sizeof(b3)),
                human(secs > 0 && d1 >= d0 ? (d1 - d0) / secs : NAN, b4, sizeof(b4)));
    }

    n = names_of(b, "sluice_queue_chunks", "queue", objs, MAX_OBJS);
    fprintf(out, "\n%-20s %7s %15s %12s %7s\n", "QUEUE", "FILL", "CHUNKS", "BYTES", "PAUSED");
    for (size_t i = 0; i < n; i++) {
        double used = value(b, "sluice_queue_chunks", "queue", objs[i]);
        double cap = value(b, "sluice_queue_capacity_chunks", "queue", objs[i]);
        char chunks[32];
        snprintf(chunks, sizeof(chunks), "%.0f/%.0f", used, cap);
        fprintf(out, "%-20s %6.1f%% %15s %12s %7s\n", objs[i],
                cap > 0 ? 100.0 * used / cap : 0.0, chunks,
                human(value(b, "sluice_queue_queued_bytes", "queue", objs[i]), b1, sizeof(b1)),
                human(value(b, "sluice_queue_paused_connections", "queue", objs[i]), b2,
                      sizeof(b2)));
    }

    n = names_of(b, "sluice_sink_written_events_total", "sink", objs, MAX_OBJS);
    fprintf(out, "\n%-20s %10s %10s %4s %10s\n", "SINK", "EVENTS/S", "BYTES/S", "UP", "ERRORS");
    char failing[512] = "";
    for (size_t i = 0; i < n; i++) {
        double upv = value(b, "sluice_sink_up", "sink", objs[i]);
        fprintf(out, "%-20s %10s %10s %4s %10s\n", objs[i],
                human(rate(a, b, "sluice_sink_written_events_total", "sink", objs[i]), b1,
                      sizeof(b1)),
                human(rate(a, b, "sluice_sink_written_bytes_total", "sink", objs[i]), b2,
                      sizeof(b2)),
                upv == 0 ? "NO" : "yes",
                human(value(b, "sluice_sink_errors_total", "sink", objs[i]), b3, sizeof(b3)));
        if (upv == 0) {
            size_t l = strlen(failing);
            snprintf(failing + l, sizeof(failing) - l, "%s%s", l != 0 ? ", " : "", objs[i]);
        }
    }

    /* Drops by reason: every series with a reason label, or named
     * *_dropped_* or *_lost_*, that is not zero, so that counters other
     * modules add are shown too. */
    fprintf(out, "\nDROPS (since start)\n");
    bool any = false;
    char reason[128];
    for (size_t i = 0; i < b->n; i++) {
        if (b->s[i].value > 0 &&
            (label_get(b->s[i].labels, "reason", reason, sizeof(reason)) ||
             strstr(b->s[i].name, "_dropped_") != NULL || strstr(b->s[i].name, "_lost_") != NULL)) {
            fprintf(out, "  %s{%s} %.0f\n", b->s[i].name, b->s[i].labels, b->s[i].value);
            any = true;
        }
    }
    if (!any) {
        fprintf(out, "  none\n");
    }
    fprintf(out, "\nFAILING SINKS: %s\n", failing[0] != '\0' ? failing : "none");
    fprintf(out, "HEALTH: %d %s", health_code, health != NULL ? health : "\n");
    if (health != NULL && health[0] != '\0' && health[strlen(health) - 1] != '\n') {
        fputc('\n', out);
    }
    return health_code == 200;
}

static int
scrape_now(const struct target *t, struct scrape *sc)
{
    struct http_result r;
    int rc = fetch(t, EVHTTP_REQ_GET, "/metrics", &r);
    if (rc != EXIT_OK) {
        return rc;
    }
    if (r.code != 200) {
        fprintf(stderr, "sluice: %s/metrics answered %d\n", t->name, r.code);
        free(r.body);
        return EXIT_FAIL;
    }
    sc->at_ms = now_ms();
    rc = scrape_parse(sc, r.body) == 0 ? EXIT_OK : EXIT_FAIL;
    free(r.body);
    return rc;
}

static volatile sig_atomic_t stop_requested;

static void
on_sigint(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sleeps ms, waking early on SIGINT. */
static void
pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (!stop_requested && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int
cmd_status(const struct target *t, int watch_s, long count)
{
    struct scrape a = {0}, b = {0};
    int rc = scrape_now(t, &a);
    long shown = 0;
    bool healthy = false;
    if (watch_s > 0) {
        struct sigaction sa = {.sa_handler = on_sigint};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    while (rc == EXIT_OK && !stop_requested) {
        pause_ms(watch_s > 0 && shown > 0 ? watch_s * 1000 : RATE_INTERVAL_MS);
        if (stop_requested || (rc = scrape_now(t, &b)) != EXIT_OK) {
            break;
        }
        struct http_result h;
        if ((rc = fetch(t, EVHTTP_REQ_GET, "/healthz", &h)) != EXIT_OK) {
            break;
        }
        if (watch_s > 0 && isatty(STDOUT_FILENO)) {
            fputs("\033[H\033[2J", stdout);
        }
        healthy = print_status(stdout, t, &a, &b, h.code, h.body);
        free(h.body);
        fflush(stdout);
        shown++;
        struct scrape tmp = a;
        a = b;
        b = tmp;
        if (watch_s <= 0 || (count > 0 && shown >= count)) {
            break;
        }
        if (!isatty(STDOUT_FILENO)) {
            fputs("\n", stdout);
        }
    }
    free(a.s);
    free(b.s);
    if (rc != EXIT_OK) {
        return rc;
    }
    return shown == 0 || healthy ? EXIT_OK : EXIT_FAIL;
}

static int
cmd_reload(const struct target *t)
{
    struct http_result r;
    int rc = fetch(t, EVHTTP_REQ_POST, "/reload", &r);
    if (rc != EXIT_OK) {
        return rc;
    }
    if (r.code == 404) {
        fprintf(stderr, "sluice: %s has no /reload (an older sluiced? send it SIGHUP)\n", t->name);
        rc = EXIT_FAIL;
    } else {
        fprintf(r.code == 200 ? stdout : stderr, "%s%s", r.code == 200 ? "" : "sluice: reload: ",
                r.body);
        rc = r.code == 200 ? EXIT_OK : EXIT_FAIL;
    }
    free(r.body);
    return rc;
}

/* Same as sluiced -n: the summary line on stdout, or every error on stderr. */
static int
cmd_check(const char *path)
{
    struct sl_config *cfg = load_config(path);
    if (cfg == NULL) {
        return EXIT_FAIL;
    }
    char buf[4096];
    sl_config_summary(cfg, buf, sizeof(buf));
    printf("%s\n", buf);
    sl_config_free(cfg);
    return EXIT_OK;
}

/* --- tap ------------------------------------------------------------------------- */

struct tap_run {
    struct event_base *base;
    long want; /* lines to print, 0 = until ^C */
    long got;
    int code;               /* the answer's status, 0 before it */
    bool ended;             /* the daemon ended the answer */
    bool out_error;         /* stdout failed (a closed pipe) */
    const char *error;      /* no answer: why */
    struct evbuffer *carry; /* bytes of a line not complete yet */
    struct evbuffer *body;  /* the text of a refusal */
};

/* Prints the complete lines that came (empty ones are the daemon's
 * keep-alive), until want. */
static void
tap_chunk_cb(struct evhttp_request *req, void *arg)
{
    struct tap_run *r = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    r->code = evhttp_request_get_response_code(req);
    if (r->code != 200) {
        evbuffer_add_buffer(r->body, in);
        return;
    }
    evbuffer_add_buffer(r->carry, in);
    char *line;
    size_t n;
    while ((r->want == 0 || r->got < r->want) &&
           (line = evbuffer_readln(r->carry, &n, EVBUFFER_EOL_LF)) != NULL) {
        if (n > 0) {
            fwrite(line, 1, n, stdout);
            putchar('\n');
            r->got++;
        }
        free(line);
    }
    if (fflush(stdout) != 0) {
        r->out_error = true;
    }
    if (r->out_error || (r->want > 0 && r->got >= r->want)) {
        event_base_loopbreak(r->base);
    }
}

static void
tap_done_cb(struct evhttp_request *req, void *arg)
{
    struct tap_run *r = arg;
    if (req != NULL && evhttp_request_get_response_code(req) != 0) {
        r->code = evhttp_request_get_response_code(req);
        evbuffer_add_buffer(r->code == 200 ? r->carry : r->body,
                            evhttp_request_get_input_buffer(req));
        r->ended = true;
    } else if (r->error == NULL) {
        r->error = tls_failure() != NULL
                       ? tls_why
                       : "connection refused or failed (is sluiced running, is admin_listen on?)";
    }
    event_base_loopbreak(r->base);
}

static void
tap_error_cb(enum evhttp_request_error err, void *arg)
{
    struct tap_run *r = arg;
    struct http_result h = {0};
    http_error_cb(err, &h);
    r->error = h.error;
}

static void
tap_sigint_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* Appends "&key=<value, URI-encoded>" to path.  Returns -1 if it does not fit. */
static int
tap_param(char *path, size_t size, const char *key, const char *value)
{
    char *enc = evhttp_encode_uri(value);
    size_t used = strlen(path);
    if (enc == NULL) {
        return -1;
    }
    int n = snprintf(path + used, size - used, "%s%s=%s", strchr(path, '?') ? "&" : "?", key, enc);
    free(enc);
    return n < 0 || (size_t)n >= size - used ? -1 : 0;
}

/* GET /tap: prints the sampled lines as they come. */
static int
cmd_tap(const struct target *t, const char *queue, const char *grep, long tap_rate, long count)
{
    char path[2048] = "/tap";
    char num[24];
    struct tap_run r = {.want = count};
    int rc = EXIT_FAIL;
    snprintf(num, sizeof(num), "%ld", tap_rate);
    if ((queue != NULL && tap_param(path, sizeof(path), "queue", queue) < 0) ||
        (grep != NULL && tap_param(path, sizeof(path), "grep", grep) < 0) ||
        (tap_rate > 0 && tap_param(path, sizeof(path), "rate", num) < 0)) {
        fprintf(stderr, "sluice: tap: the queue name or --grep string is too long\n");
        return EXIT_USAGE;
    }
    r.base = event_base_new();
    r.carry = evbuffer_new();
    r.body = evbuffer_new();
    struct evhttp_connection *conn =
        r.base != NULL ? conn_new(r.base, t) : NULL;
    struct evhttp_request *req = conn != NULL ? evhttp_request_new(tap_done_cb, &r) : NULL;
    struct event *sigint =
        r.base != NULL ? evsignal_new(r.base, SIGINT, tap_sigint_cb, r.base) : NULL;
    struct event *sigterm =
        r.base != NULL ? evsignal_new(r.base, SIGTERM, tap_sigint_cb, r.base) : NULL;
    if (req == NULL || r.carry == NULL || r.body == NULL || sigint == NULL || sigterm == NULL ||
        event_add(sigint, NULL) < 0 || event_add(sigterm, NULL) < 0) {
        fprintf(stderr, "sluice: out of memory\n");
        if (req != NULL) {
            evhttp_request_free(req);
        }
        goto out;
    }
    evhttp_connection_set_timeout(conn, TAP_TIMEOUT_S);
    evhttp_connection_set_retries(conn, 0);
    evhttp_request_set_error_cb(req, tap_error_cb);
    evhttp_request_set_chunked_cb(req, tap_chunk_cb);
    http_headers(req, t);
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, path) < 0) {
        fprintf(stderr, "sluice: %s/tap: cannot send the request\n", t->name);
        rc = EXIT_UNREACHABLE;
        goto out;
    }
    event_base_dispatch(r.base);
    if (r.out_error || (r.want > 0 && r.got >= r.want) ||
        (r.code == 200 && !r.ended && r.error == NULL)) {
        rc = EXIT_OK; /* the count reached, stdout closed (| head), or ^C */
    } else if (r.code == 0) {
        fprintf(stderr, "sluice: %s/tap: %s\n", t->name,
                r.error != NULL ? r.error : "interrupted before an answer");
        rc = r.error != NULL ? EXIT_UNREACHABLE : EXIT_FAIL;
    } else if (r.code != 200) {
        size_t n = evbuffer_get_length(r.body);
        fprintf(stderr, "sluice: %s/tap answered %d: %.*s%s", t->name, r.code, (int)n,
                (const char *)evbuffer_pullup(r.body, -1), n > 0 ? "" : "\n");
        if (r.code == 404 && n > 0 &&
            strstr((const char *)evbuffer_pullup(r.body, -1), "try /metrics") != NULL) {
            fprintf(stderr, "sluice: (an older sluiced, without tap?)\n");
        }
    } else { /* 200, then the stream ended or broke */
        fprintf(stderr, "sluice: %s/tap: the daemon ended the stream after %ld line(s)%s%s\n",
                t->name, r.got, r.error != NULL ? ": " : "", r.error != NULL ? r.error : "");
    }
out:
    if (sigint != NULL) {
        event_free(sigint);
    }
    if (sigterm != NULL) {
        event_free(sigterm);
    }
    if (conn != NULL) {
        evhttp_connection_free(conn); /* and the request, if still under way */
    }
    tls_bev = NULL;
    if (r.carry != NULL) {
        evbuffer_free(r.carry);
    }
    if (r.body != NULL) {
        evbuffer_free(r.body);
    }
    if (r.base != NULL) {
        event_base_free(r.base);
    }
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: sluice [-a HOST:PORT | -c FILE] status [--watch [SECONDS]] [-n COUNT]\n"
               "       sluice [-a HOST:PORT | -c FILE] reload\n"
               "       sluice [-a HOST:PORT | -c FILE] tap [-q QUEUE] [--grep STR] [-r RATE] "
               "[-n COUNT]\n"
               "       sluice check -c FILE\n"
               "  -a, --admin HOST:PORT  the daemon's admin endpoint (default " DEFAULT_ADMIN ")\n"
               "  -c, --config FILE      read admin_listen from FILE (check: the file to check)\n"
               "  -w, --watch [SECONDS]  status: refresh every SECONDS (default 2) until ^C\n"
               "  -n, --count COUNT      status --watch: stop after COUNT screens;\n"
               "                         tap: exit after COUNT events\n"
               "  -q, --queue QUEUE      tap: only the events of QUEUE\n"
               "  -g, --grep STR         tap: only events containing STR (the daemon filters)\n"
               "  -r, --rate RATE        tap: at most RATE events a second (default 1000)\n"
               "  -t, --token-file FILE  send the bearer token on FILE's first line\n"
               "                         (with -c: the config's admin_token_file)\n"
               "      --cacert FILE      TLS: the CA of the daemon's certificate (with -c and\n"
               "                         admin_tls = on: admin_tls_ca_file unless given)\n"
               "      --cert FILE        TLS: the client certificate to present\n"
               "      --key FILE         TLS: its private key (default: in --cert's file)\n"
               "  -h, --help             this text\n"
               "Exit: 0 ok, 1 failing/errors, 2 usage, 3 the daemon cannot be reached.\n");
}

static bool
parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (s == NULL) {
        return false;
    }
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"admin", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'c'},
        {"watch", optional_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"queue", required_argument, NULL, 'q'},
        {"grep", required_argument, NULL, 'g'},
        {"rate", required_argument, NULL, 'r'},
        {"token-file", required_argument, NULL, 't'},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {NULL, 0, NULL, 0},
    };
    const char *cert = NULL, *key = NULL, *cacert_arg = NULL;
    char *cacert = NULL; /* cacert_arg, or the config's admin_tls_ca_file */
    const char *admin = NULL, *config = NULL, *queue = NULL, *grep = NULL, *token = NULL;
    long watch = 0, count = 0, tap_rate = 0;
    bool watch_given = false;
    int c;
    /* Single-threaded.  NOLINTNEXTLINE(concurrency-mt-unsafe) */
    while ((c = getopt_long(argc, argv, "a:c:w::n:hq:g:r:t:", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            admin = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'w':
            watch_given = true;
            watch = 2;
            if (optarg != NULL && !parse_long(optarg, 1, WATCH_MAX_S, &watch)) {
                fprintf(stderr, "sluice: --watch takes 1..%d seconds\n", WATCH_MAX_S);
                return EXIT_USAGE;
            }
            break;
        case 'n':
            if (optarg == NULL || !parse_long(optarg, 1, 1000000, &count)) {
                fprintf(stderr, "sluice: --count takes a positive number\n");
                return EXIT_USAGE;
            }
            break;
        case 'q':
            queue = optarg;
            break;
        case 'g':
            grep = optarg;
            break;
        case 'r':
            if (!parse_long(optarg, 1, 10000, &tap_rate)) {
                fprintf(stderr, "sluice: --rate takes 1..10000 events a second\n");
                return EXIT_USAGE;
            }
            break;
        case 't':
            token = optarg;
            break;
        case OPT_CACERT:
            cacert_arg = optarg;
            break;
        case OPT_CERT:
            cert = optarg;
            break;
        case OPT_KEY:
            key = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind++];
    /* "--watch 5": getopt leaves an optional argument's separate word. */
    if (watch_given && optind < argc && strcmp(cmd, "status") == 0 &&
        isdigit((unsigned char)argv[optind][0])) {
        if (!parse_long(argv[optind++], 1, WATCH_MAX_S, &watch)) {
            fprintf(stderr, "sluice: --watch takes 1..%d seconds\n", WATCH_MAX_S);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "check") == 0) {
        if (config == NULL) {
            fprintf(stderr, "sluice: check needs -c FILE\n");
            return EXIT_USAGE;
        }
        return cmd_check(config);
    }
    if (strcmp(cmd, "status") != 0 && strcmp(cmd, "reload") != 0 && strcmp(cmd, "tap") != 0) {
        fprintf(stderr, "sluice: unknown command '%s' (status, reload, tap, check)\n", cmd);
        return EXIT_USAGE;
    }
    if ((queue != NULL || grep != NULL || tap_rate != 0) && strcmp(cmd, "tap") != 0) {
        fprintf(stderr, "sluice: -q, --grep and --rate go with tap\n");
        return EXIT_USAGE;
    }
    if (admin != NULL && config != NULL) {
        fprintf(stderr, "sluice: -a and -c both name the daemon: give one\n");
        return EXIT_USAGE;
    }
    struct target t = {0};
    if (token != NULL && token_read(&t, token) < 0) {
        return EXIT_USAGE;
    }
    if (cacert_arg != NULL && (cacert = strdup(cacert_arg)) == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        return EXIT_USAGE;
    }
    if (config != NULL) {
        int rc = target_from_config(&t, config, &cacert);
        if (rc != EXIT_OK) {
            free(cacert);
            return rc;
        }
    } else if (target_parse(&t, admin != NULL ? admin : DEFAULT_ADMIN) < 0) {
        fprintf(stderr, "sluice: -a %s: expected HOST:PORT\n", admin);
        free(cacert);
        return EXIT_USAGE;
    }
    if (cacert == NULL && (cert != NULL || key != NULL)) {
        fprintf(stderr, "sluice: --cert and --key go with TLS: give --cacert too\n");
        return EXIT_USAGE;
    }
    if (cacert != NULL) {
        t.tls = tls_ctx_new(cacert, cert, key != NULL ? key : cert);
        free(cacert);
        if (t.tls == NULL) {
            return EXIT_USAGE;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int rc;
    if (strcmp(cmd, "reload") == 0) {
        rc = cmd_reload(&t);
    } else if (strcmp(cmd, "tap") == 0) {
        rc = cmd_tap(&t, queue, grep, tap_rate, count);
    } else if (count > 0 && !watch_given) {
        fprintf(stderr, "sluice: --count goes with --watch\n");
        rc = EXIT_USAGE;
    } else {
        rc = cmd_status(&t, watch_given ? (int)watch : 0, count);
    }
    SSL_CTX_free(t.tls);
    return rc;
}
