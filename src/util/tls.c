/*
 * tls — OpenSSL contexts for stream sources (servers) and sinks (clients),
 * their reload, peer-name checks and failure counters.  See tls.h for the
 * contract.
 *
 * Threads: the object is built and reloaded on main; producers and the
 * writer take the current context under t->lock (one SSL_CTX_up_ref) for
 * each new connection, so the swap at reload is safe and established
 * connections keep the context they started with until they close.
 *
 * DESIGN: what is checked where.  OpenSSL verifies the chain against
 * tls_ca_file (expiry included) during the handshake and, for a client,
 * the server's name (SSL_set1_host: DNS SANs, or the CN when there are
 * none).  The server's allowed-names list is checked against the CN and
 * every DNS SAN inside the handshake (the verify callback: a TLS 1.2
 * client is refused before its handshake ends) and again after it
 * (sl_tls_handshake_done: a client that sent no certificate under
 * tls_client_auth = optional), so a verified but unknown sender is
 * refused and counted as "name".  A failed handshake
 * is classified from the verify result first (that is the precise reason),
 * then from the first byte the peer sent (not 0x16: plaintext), then from
 * OpenSSL's error reason.
 */
#include "util/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/log.h"

const char *const sl_tls_reason_names[SL_TLS_NREASONS] = {
    [SL_TLS_R_PLAINTEXT] = "plaintext",   [SL_TLS_R_UNTRUSTED] = "untrusted",
    [SL_TLS_R_EXPIRED] = "expired",       [SL_TLS_R_NO_CERT] = "no_cert",
    [SL_TLS_R_NAME] = "name",             [SL_TLS_R_VERSION] = "version",
    [SL_TLS_R_TIMEOUT] = "timeout",       [SL_TLS_R_RENEGOTIATION] = "renegotiation",
    [SL_TLS_R_OTHER] = "other",
};

const struct sl_conf_choice sl_tls_on_choices[] = {
    {"on", 1},
    {"off", 0},
    {NULL, 0},
};

const struct sl_conf_choice sl_tls_auth_choices[] = {
    {"none", SL_TLS_AUTH_NONE},
    {"optional", SL_TLS_AUTH_OPTIONAL},
    {"required", SL_TLS_AUTH_REQUIRED},
    {NULL, 0},
};

struct sl_tls {
    const struct sl_tls_config *cfg; /* borrowed */
    enum sl_tls_role role;
    pthread_mutex_t lock; /* guards ctx */
    SSL_CTX *ctx;         /* one reference held here; each SSL holds its own */
    struct sl_tls_stats stats;
    char label[96];
};

/* The index of the struct sl_tls pointer in each SSL's ex_data. */
static int tls_ex_index = -1;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void
tls_init_once(void)
{
    tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* OpenSSL's first queued error as text (the queue is cleared). */
static void
tls_errors(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, len, "%s", "unknown OpenSSL error");
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
}

/* Counts a no_renegotiation alert we send (SSL_OP_NO_RENEGOTIATION). */
static void
tls_info_cb(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_WRITE_ALERT) != 0 && (ret & 0xff) == SSL_AD_NO_RENEGOTIATION) {
        struct sl_tls *t = SSL_get_ex_data(ssl, tls_ex_index);
        if (t != NULL) {
            sl_tls_count(t, SL_TLS_R_RENEGOTIATION);
        }
    }
}

static bool tls_peer_allowed(const struct sl_tls_config *cfg, X509 *peer);

/*
 * A server's verify callback with tls_allowed_names: the names are checked
 * here, inside the handshake, not only after it.  With TLS 1.2 a client's
 * handshake ends with the server's Finished, so a client refused for its
 * name learns it before it sends a byte (the tcp sink counts nothing as
 * sent before then: sink_tcp.c).  The refusal is a verify error
 * (X509_V_ERR_HOSTNAME_MISMATCH), classified as "name".
 */
static int
tls_verify_names_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok || X509_STORE_CTX_get_error_depth(x) != 0) {
        return ok;
    }
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct sl_tls *t = ssl != NULL ? SSL_get_ex_data(ssl, tls_ex_index) : NULL;
    X509 *peer = X509_STORE_CTX_get_current_cert(x);
    if (t == NULL || t->cfg->nnames == 0 || peer == NULL || tls_peer_allowed(t->cfg, peer)) {
        return ok;
    }
    X509_STORE_CTX_set_error(x, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
}

static SSL_CTX *
tls_ctx_build(const struct sl_tls_config *cfg, enum sl_tls_role role, char *why, size_t whylen)
{
    char err[256];
    SSL_CTX *ctx = SSL_CTX_new(role == SL_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        tls_errors(err, sizeof(err));
        snprintf(why, whylen, "SSL_CTX_new: %s", err);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_info_callback(ctx, tls_info_cb);
    if (SSL_CTX_set_min_proto_version(ctx, (int)cfg->min_version) != 1) {
        snprintf(why, whylen, "tls_min_version not supported by this OpenSSL");
        goto err;
    }
    if (cfg->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1) {
        tls_errors(err, sizeof(err));
        snprintf(why, whylen, "tls_ciphers = %s: %s", cfg->ciphers, err);
        goto err;
    }
    if (cfg->cert_file != NULL && SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        tls_errors(err, sizeof(err));
        snprintf(why, whylen, "tls_cert_file %s: %s", cfg->cert_file, err);
        goto err;
    }
    if (cfg->key_file != NULL) {
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
            tls_errors(err, sizeof(err));
            snprintf(why, whylen, "tls_key_file %s: %s", cfg->key_file, err);
            goto err;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            tls_errors(err, sizeof(err));
            snprintf(why, whylen, "tls_key_file %s does not match tls_cert_file %s: %s",
                     cfg->key_file, cfg->cert_file != NULL ? cfg->cert_file : "(none)", err);
            goto err;
        }
    }
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            tls_errors(err, sizeof(err));
            snprintf(why, whylen, "tls_ca_file %s: %s", cfg->ca_file, err);
            goto err;
        }
        if (role == SL_TLS_SERVER) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
            if (names != NULL) {
                SSL_CTX_set_client_CA_list(ctx, names); /* ctx owns names */
            }
        }
    }
    SSL_verify_cb names_cb = role == SL_TLS_SERVER && cfg->nnames > 0 ? tls_verify_names_cb : NULL;
    if (role == SL_TLS_SERVER && cfg->client_auth == SL_TLS_AUTH_REQUIRED) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, names_cb);
    } else if (role == SL_TLS_CLIENT || cfg->client_auth == SL_TLS_AUTH_OPTIONAL) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, names_cb);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    /* No session cache: every connection is verified against the current files. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    ERR_clear_error();
    return ctx;
err:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

int
sl_tls_process_init(void)
{
    /* Only the choice of exit handler: the rest of OpenSSL (error strings,
     * libssl) initialises when a TLS context is first built, so a daemon
     * without TLS keeps its memory (1.7 MiB of RSS at idle when this
     * loaded libssl's strings too). */
    return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) == 1 ? 0 : -1;
}

struct sl_tls *
sl_tls_new(const struct sl_tls_config *cfg, enum sl_tls_role role, const char *label, char *why,
           size_t whylen)
{
    pthread_once(&tls_once, tls_init_once);
    struct sl_tls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    t->cfg = cfg;
    t->role = role;
    snprintf(t->label, sizeof(t->label), "%s", label);
    pthread_mutex_init(&t->lock, NULL);
    t->ctx = tls_ctx_build(cfg, role, why, whylen);
    if (t->ctx == NULL) {
        sl_tls_free(t);
        return NULL;
    }
    return t;
}

void
sl_tls_free(struct sl_tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int
sl_tls_reload(struct sl_tls *t)
{
    char why[512];
    SSL_CTX *ctx = tls_ctx_build(t->cfg, t->role, why, sizeof(why));
    if (ctx == NULL) {
        atomic_fetch_add_explicit(&t->stats.reload_failures, 1, memory_order_relaxed);
        log_warnx("%s: TLS reload failed, keeping the certificates in use: %s", t->label, why);
        return -1;
    }
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* established connections hold their own reference */
    atomic_fetch_add_explicit(&t->stats.reloads, 1, memory_order_relaxed);
    log_info("%s: TLS certificates reloaded", t->label);
    return 0;
}

SSL *
sl_tls_ssl_new(struct sl_tls *t, const char *host)
{
    pthread_mutex_lock(&t->lock);
    SSL_CTX *ctx = t->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&t->lock);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (ssl == NULL) {
        ERR_clear_error();
        return NULL;
    }
    SSL_set_ex_data(ssl, tls_ex_index, t);
    if (t->role == SL_TLS_SERVER) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    SSL_set_connect_state(ssl);
    const char *name = t->cfg->server_name != NULL ? t->cfg->server_name : host;
    if (name != NULL) {
        /* SNI only for host names (RFC 6066 section 3: not for literal addresses). */
        if (strspn(name, "0123456789.") != strlen(name) && strchr(name, ':') == NULL) {
            SSL_set_tlsext_host_name(ssl, name);
        }
        if (SSL_set1_host(ssl, name) != 1) {
            SSL_free(ssl);
            ERR_clear_error();
            return NULL;
        }
    }
    return ssl;
}

/* True when name (from a certificate, nlen bytes) is in the allowed list. */
static bool
tls_name_allowed(const struct sl_tls_config *cfg, const unsigned char *name, size_t nlen)
{
    for (size_t i = 0; i < cfg->nnames; i++) {
        if (strlen(cfg->names[i]) == nlen && strncasecmp(cfg->names[i], (const char *)name,
                                                         nlen) == 0) {
            return true;
        }
    }
    return false;
}

static bool
tls_peer_allowed(const struct sl_tls_config *cfg, X509 *peer)
{
    bool ok = false;
    GENERAL_NAMES *sans = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && !ok && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            ok = tls_name_allowed(cfg, ASN1_STRING_get0_data(g->d.dNSName),
                                  (size_t)ASN1_STRING_length(g->d.dNSName));
        }
    }
    GENERAL_NAMES_free(sans);
    X509_NAME *subj = X509_get_subject_name(peer);
    for (int i = -1; !ok && (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
        ok = tls_name_allowed(cfg, ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn));
    }
    return ok;
}

bool
sl_tls_handshake_done(struct sl_tls *t, SSL *ssl)
{
    if (t->role == SL_TLS_SERVER && t->cfg->nnames > 0) {
        X509 *peer = SSL_get1_peer_certificate(ssl);
        bool ok = peer != NULL && tls_peer_allowed(t->cfg, peer);
        X509_free(peer);
        if (!ok) {
            sl_tls_count(t, SL_TLS_R_NAME);
            return false;
        }
    }
    atomic_fetch_add_explicit(&t->stats.handshakes, 1, memory_order_relaxed);
    return true;
}

/* The reason of an OpenSSL error code (ERR_GET_REASON) for the counters. */
static enum sl_tls_reason
tls_reason_of_code(int reason)
{
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return SL_TLS_R_NO_CERT;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
        return SL_TLS_R_PLAINTEXT;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
        return SL_TLS_R_VERSION;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return SL_TLS_R_UNTRUSTED;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        return SL_TLS_R_EXPIRED;
    default:
        return SL_TLS_R_OTHER;
    }
}

enum sl_tls_reason
sl_tls_handshake_failed(struct sl_tls *t, SSL *ssl, int ssl_err, int first_byte)
{
    enum sl_tls_reason r;
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_error();

    /* The verify result first, then a first byte that is no TLS record,
     * then what OpenSSL's error says. */
    if (v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID) {
        r = SL_TLS_R_EXPIRED;
    } else if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH ||
               v == X509_V_ERR_EMAIL_MISMATCH) {
        r = SL_TLS_R_NAME;
    } else if (v != X509_V_OK) {
        r = SL_TLS_R_UNTRUSTED;
    } else if (first_byte >= 0 && first_byte != 0x16) {
        r = SL_TLS_R_PLAINTEXT;
    } else {
        r = tls_reason_of_code(ERR_GET_REASON(e));
    }
    (void)ssl_err;
    ERR_clear_error();
    sl_tls_count(t, r);
    return r;
}

void
sl_tls_failure_detail(SSL *ssl, char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    long v = SSL_get_verify_result(ssl);
    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    if (v != X509_V_OK) {
        snprintf(buf, len, "%s", X509_verify_cert_error_string(v));
    } else if (e != 0) {
        ERR_error_string_n(e, buf, len);
    }
}

void
sl_tls_count(struct sl_tls *t, enum sl_tls_reason r)
{
    atomic_fetch_add_explicit(&t->stats.failures[r], 1, memory_order_relaxed);
}

size_t
sl_tls_peer_subject(SSL *ssl, char *buf, size_t len)
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    size_t n = 0;
    if (len == 0) {
        return 0;
    }
    buf[0] = '\0';
    if (peer == NULL) {
        return 0;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL &&
        X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        int got = BIO_read(b, buf, (int)(len - 1));
        n = got > 0 ? (size_t)got : 0;
        buf[n] = '\0';
    }
    BIO_free(b);
    X509_free(peer);
    return n;
}

struct sl_tls_stats *
sl_tls_stats(struct sl_tls *t)
{
    return &t->stats;
}

/* ---- configuration ------------------------------------------------------------------ */

int
sl_tls_conf_key_version(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                        size_t whylen)
{
    unsigned v;
    if (strcmp(value, "1.2") == 0) {
        v = TLS1_2_VERSION;
    } else if (strcmp(value, "1.3") == 0) {
        v = TLS1_3_VERSION;
    } else {
        return sl_conf_expected(why, whylen, "1.2 or 1.3", value);
    }
    *(unsigned *)(void *)((char *)obj + key->offset) = v;
    return 0;
}

int
sl_tls_conf_key_text(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                     size_t whylen)
{
    if (value[0] == '\0') {
        return sl_conf_expected(why, whylen, "a non-empty value", value);
    }
    for (const char *p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return sl_conf_expected(why, whylen, "text without control characters", value);
        }
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

int
sl_tls_conf_key_names(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                      size_t whylen)
{
    static const char seps[] = ", \t";
    struct sl_tls_config *cfg = (struct sl_tls_config *)(void *)((char *)obj + key->offset);
    char *buf = strdup(value);
    if (buf == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    size_t n = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, seps, &save); w != NULL; w = strtok_r(NULL, seps, &save)) {
        if (n == SL_TLS_NAMES_MAX) {
            free(buf);
            snprintf(why, whylen, "more than %d names", SL_TLS_NAMES_MAX);
            return -1;
        }
        cfg->names[n++] = w;
    }
    if (n == 0) {
        free(buf);
        return sl_conf_expected(why, whylen, "one or more certificate names", value);
    }
    free(cfg->names_buf);
    cfg->names_buf = buf;
    cfg->nnames = n;
    return sl_conf_store_string(&cfg->allowed_names, value, why, whylen);
}

void
sl_tls_conf_check(struct sl_conf_check *chk, struct sl_tls_config *cfg, enum sl_tls_role role)
{
    static const char *const keys[] = {"tls_cert_file",   "tls_key_file",
                                       "tls_ca_file",     "tls_ciphers",
                                       "tls_min_version", "tls_handshake_timeout"};
    static const char *const server_keys[] = {"tls_client_auth", "tls_allowed_names"};
    static const char *const client_keys[] = {"tls_server_name"};
    const char *label = sl_conf_label(chk);
    char why[512];

    if (!cfg->on) {
        const char *const *more = role == SL_TLS_SERVER ? server_keys : client_keys;
        size_t nmore =
            role == SL_TLS_SERVER ? SL_CONF_NKEYS(server_keys) : SL_CONF_NKEYS(client_keys);
        for (size_t i = 0; i < SL_CONF_NKEYS(keys) + nmore; i++) {
            const char *k = i < SL_CONF_NKEYS(keys) ? keys[i] : more[i - SL_CONF_NKEYS(keys)];
            if (sl_conf_key_set(chk, k)) {
                sl_conf_error(chk, sl_conf_key_line(chk, k),
                              "%s: %s is set but tls is off (set tls = on)", label, k);
            }
        }
        return;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        sl_conf_error(chk, sl_conf_line(chk), "%s: tls_cert_file and tls_key_file go together",
                      label);
        return;
    }
    if (role == SL_TLS_SERVER && cfg->cert_file == NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls"),
                      "%s: tls = on needs tls_cert_file and tls_key_file", label);
        return;
    }
    if (cfg->ca_file == NULL && (role == SL_TLS_CLIENT || cfg->client_auth != SL_TLS_AUTH_NONE)) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls"), "%s: tls = on needs tls_ca_file %s", label,
                      role == SL_TLS_CLIENT
                          ? "to verify the server (verification cannot be turned off)"
                          : "to verify the clients (or tls_client_auth = none)");
        return;
    }
    if (role == SL_TLS_SERVER && cfg->nnames > 0 && cfg->client_auth == SL_TLS_AUTH_NONE) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls_allowed_names"),
                      "%s: tls_allowed_names needs client certificates (tls_client_auth = "
                      "required)",
                      label);
        return;
    }
    pthread_once(&tls_once, tls_init_once);
    SSL_CTX *ctx = tls_ctx_build(cfg, role, why, sizeof(why));
    if (ctx == NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls"), "%s: %s", label, why);
        return;
    }
    SSL_CTX_free(ctx);
}

void
sl_tls_conf_fini(struct sl_tls_config *cfg)
{
    free(cfg->cert_file);
    free(cfg->key_file);
    free(cfg->ca_file);
    free(cfg->ciphers);
    free(cfg->allowed_names);
    free(cfg->names_buf);
    free(cfg->server_name);
}
