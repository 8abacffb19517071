/*
 * tls — TLS for stream sources and sinks, on OpenSSL: the `tls*` keys
 * (shared by every stream type through SL_TLS_SOURCE_KEYS /
 * SL_TLS_SINK_KEYS), one SSL_CTX per source or sink built from them,
 * certificate reload (SIGHUP) that keeps the old context when the new files
 * are bad, the peer checks OpenSSL does not do itself (tls_allowed_names),
 * and the classification of failures into the per-reason counters that
 * /metrics shows (sluice_tls_handshake_failures_total{reason=...}).
 *
 * The module does no I/O: a caller creates an SSL with sl_tls_ssl_new() and
 * drives it on its own non-blocking socket and event loop (or through
 * libevent's bufferevent_openssl), then calls sl_tls_handshake_done() or
 * sl_tls_handshake_failed() once.
 *
 * Renegotiation is refused (SSL_OP_NO_RENEGOTIATION): a peer that asks gets
 * a no_renegotiation alert, counted as reason "renegotiation".  TLS 1.3 has
 * no renegotiation at all.
 *
 * Threads: sl_tls_new, sl_tls_reload and sl_tls_free on main;
 * sl_tls_ssl_new, sl_tls_handshake_* on any thread (the current context is
 * taken under a mutex and referenced by each SSL, so a reload never pulls a
 * context from under an established connection); the stats are relaxed
 * atomics.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/conf.h"

typedef struct ssl_st SSL;
struct sl_tls;

enum sl_tls_role { SL_TLS_SERVER, SL_TLS_CLIENT };

enum sl_tls_client_auth {
    SL_TLS_AUTH_NONE,     /* no client certificate asked */
    SL_TLS_AUTH_OPTIONAL, /* asked; verified when sent */
    SL_TLS_AUTH_REQUIRED, /* a verified client certificate is required */
};

#define SL_TLS_NAMES_MAX 32

/* The keys, embedded in a source's or sink's type struct. */
struct sl_tls_config {
    int on;                   /* tls = on (1) or off (0): sl_tls_on_choices */
    char *cert_file;          /* PEM chain; required for a server */
    char *key_file;           /* PEM private key */
    char *ca_file;            /* PEM CAs that verify the peer */
    unsigned min_version;     /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    char *ciphers;            /* TLS 1.2 cipher list; NULL: OpenSSL's default */
    unsigned client_auth;     /* enum sl_tls_client_auth; servers */
    char *allowed_names;      /* as written; NULL: any verified peer */
    char *names[SL_TLS_NAMES_MAX]; /* allowed_names split (point into names_buf) */
    size_t nnames;
    char *names_buf;
    char *server_name;        /* clients: name the server's cert must carry; NULL: target host */
    uint64_t handshake_timeout_ms; /* servers and clients */
};

/* Failure reasons, the label values of the metric (sl_tls_reason_names). */
enum sl_tls_reason {
    SL_TLS_R_PLAINTEXT,     /* the peer did not speak TLS */
    SL_TLS_R_UNTRUSTED,     /* certificate from a CA not in tls_ca_file */
    SL_TLS_R_EXPIRED,       /* certificate expired or not yet valid */
    SL_TLS_R_NO_CERT,       /* tls_client_auth = required, no certificate sent */
    SL_TLS_R_NAME,          /* name not in tls_allowed_names / not tls_server_name */
    SL_TLS_R_VERSION,       /* below tls_min_version, or no shared cipher */
    SL_TLS_R_TIMEOUT,       /* no handshake within tls_handshake_timeout */
    SL_TLS_R_RENEGOTIATION, /* the peer asked to renegotiate */
    SL_TLS_R_OTHER,         /* anything else (broken records, a reset) */
    SL_TLS_NREASONS
};

extern const char *const sl_tls_reason_names[SL_TLS_NREASONS];

struct sl_tls_stats {
    atomic_uint_fast64_t handshakes;          /* completed and accepted */
    atomic_uint_fast64_t failures[SL_TLS_NREASONS];
    atomic_uint_fast64_t reloads;             /* reloads that took the new files */
    atomic_uint_fast64_t reload_failures;     /* reloads that kept the old context */
};

/*
 * Tells OpenSSL not to register its exit handler (OPENSSL_init_crypto with
 * OPENSSL_INIT_NO_ATEXIT, nothing else): call it first in main, before
 * anything else can initialise OpenSSL (the first call decides).  OpenSSL's atexit teardown
 * destroys its global locks and tables while threads that libnats ends on
 * its own schedule (a connection's reader and flusher run on after
 * natsConnection_Destroy returns) may still take them: a race at every exit
 * after a nats sink or source with TLS, seen by ThreadSanitizer in
 * check_nats tls_rotate.  The memory stays reachable until the process
 * ends, so leak checkers do not count it.  Returns 0, or -1 if OpenSSL
 * could not be initialised (the caller logs and exits).
 */
int sl_tls_process_init(void);

/*
 * Builds the context from cfg (borrowed; must outlive the object).  label
 * names the owner in log lines ("source \"edge\"").  Returns the object, or
 * NULL with the reason (file, OpenSSL's words) in why.
 */
struct sl_tls *sl_tls_new(const struct sl_tls_config *cfg, enum sl_tls_role role,
                          const char *label, char *why, size_t whylen);

void sl_tls_free(struct sl_tls *t);

/*
 * Re-reads the certificate, key and CA files into a new context.  Returns 0
 * (new connections use the new context; established ones keep theirs) or
 * -1: the old context stays, and a log line says why.  Counted either way.
 */
int sl_tls_reload(struct sl_tls *t);

/*
 * A new SSL on the current context, in server or client state; host (a
 * client's target host, borrowed) is the default tls_server_name and the
 * SNI.  Caller frees with SSL_free.  NULL on allocation failure.
 */
SSL *sl_tls_ssl_new(struct sl_tls *t, const char *host);

/*
 * After the handshake completed: checks tls_allowed_names against the
 * peer's certificate (CN and DNS SANs).  Returns true (counted as a
 * handshake) or false (counted as SL_TLS_R_NAME; the caller closes).
 */
bool sl_tls_handshake_done(struct sl_tls *t, SSL *ssl);

/*
 * After SSL_do_handshake failed with ssl_err (SSL_get_error) and the
 * thread's OpenSSL error queue as it was (consumed here): the reason,
 * counted.  first_byte is the first byte the peer sent, or -1 when not
 * known (a TLS record starts with 0x16; anything else is plaintext).
 */
enum sl_tls_reason sl_tls_handshake_failed(struct sl_tls *t, SSL *ssl, int ssl_err,
                                           int first_byte);

/*
 * Before sl_tls_handshake_failed(): OpenSSL's words for the failure (the
 * verify error, else the first queued error; the queue is left as it is)
 * into buf, for the log line.  "" when there are none.
 */
void sl_tls_failure_detail(SSL *ssl, char *buf, size_t len);

/* Counts a failure the caller saw itself (SL_TLS_R_TIMEOUT). */
void sl_tls_count(struct sl_tls *t, enum sl_tls_reason r);

/* The peer certificate's subject ("CN=edge1,O=..."; RFC 2253) into buf, or
 * "" when there is none.  Returns the length. */
size_t sl_tls_peer_subject(SSL *ssl, char *buf, size_t len);

struct sl_tls_stats *sl_tls_stats(struct sl_tls *t);

/* ---- configuration ------------------------------------------------------------------ */

int sl_tls_conf_key_version(const struct sl_conf_key *, const char *, void *, char *, size_t);
int sl_tls_conf_key_names(const struct sl_conf_key *, const char *, void *, char *, size_t);
extern const struct sl_conf_choice sl_tls_auth_choices[];
extern const struct sl_conf_choice sl_tls_on_choices[]; /* on, off */

#define SL_TLS_OFF(off, f) ((off) + offsetof(struct sl_tls_config, f))

/* Keys every TLS end has; off is the offset of the struct sl_tls_config. */
#define SL_TLS_COMMON_KEYS(off)                                                                    \
    {.name = "tls",                                                                                \
     .parse = sl_conf_key_enum,                                                                    \
     .choices = sl_tls_on_choices,                                                                 \
     .offset = SL_TLS_OFF(off, on),                                                                \
     .def = "off",                                                                                 \
     .doc = "TLS on this connection (on or off)"},                                                 \
        {.name = "tls_cert_file",                                                                  \
         .parse = sl_conf_key_path,                                                                \
         .offset = SL_TLS_OFF(off, cert_file),                                                     \
         .def_doc = "none",                                                                        \
         .doc = "PEM certificate chain this end presents (re-read on SIGHUP)"},                    \
        {.name = "tls_key_file",                                                                   \
         .parse = sl_conf_key_path,                                                                \
         .offset = SL_TLS_OFF(off, key_file),                                                      \
         .def_doc = "none",                                                                        \
         .doc = "PEM private key of tls_cert_file (re-read on SIGHUP)"},                           \
        {.name = "tls_ca_file",                                                                    \
         .parse = sl_conf_key_path,                                                                \
         .offset = SL_TLS_OFF(off, ca_file),                                                       \
         .def_doc = "none",                                                                        \
         .doc = "PEM CA certificates that verify the peer (re-read on SIGHUP)"},                   \
        {.name = "tls_min_version",                                                                \
         .parse = sl_tls_conf_key_version,                                                         \
         .offset = SL_TLS_OFF(off, min_version),                                                   \
         .def = "1.2",                                                                             \
         .doc = "oldest TLS version accepted: 1.2 or 1.3"},                                        \
        {.name = "tls_ciphers",                                                                    \
         .parse = sl_tls_conf_key_text,                                                            \
         .offset = SL_TLS_OFF(off, ciphers),                                                       \
         .def_doc = "OpenSSL's default",                                                           \
         .doc = "OpenSSL cipher list for TLS 1.2"},                                                \
        {.name = "tls_handshake_timeout",                                                          \
         .parse = sl_conf_key_duration,                                                            \
         .offset = SL_TLS_OFF(off, handshake_timeout_ms),                                          \
         .min = 1,                                                                                 \
         .max = 10 * 60 * 1000,                                                                    \
         .def = "10s",                                                                             \
         .doc = "a handshake not finished by then is closed and counted (reason timeout)"}

/* The keys of a TLS server (stream sources). */
#define SL_TLS_SOURCE_KEYS(off)                                                                    \
    SL_TLS_COMMON_KEYS(off),                                                                       \
        {.name = "tls_client_auth",                                                                \
         .parse = sl_conf_key_enum,                                                                \
         .offset = SL_TLS_OFF(off, client_auth),                                                   \
         .choices = sl_tls_auth_choices,                                                           \
         .def = "required",                                                                        \
         .doc = "client certificates: none, optional (verified if sent) or required"},             \
        {.name = "tls_allowed_names",                                                              \
         .parse = sl_tls_conf_key_names,                                                           \
         .offset = (off),                                                                          \
         .def_doc = "any client with a verified certificate",                                      \
         .doc = "client certificate names (CN or DNS SAN) accepted, comma-separated"}

/* The keys of a TLS client (stream sinks). */
#define SL_TLS_SINK_KEYS(off)                                                                      \
    SL_TLS_COMMON_KEYS(off), {                                                                     \
        .name = "tls_server_name", .parse = sl_tls_conf_key_text,                                  \
        .offset = SL_TLS_OFF(off, server_name), .def_doc = "the target's host",                    \
        .doc = "name the server's certificate must carry (also sent as SNI)"                       \
    }

/* Any non-empty text without control bytes, copied. */
int sl_tls_conf_key_text(const struct sl_conf_key *, const char *, void *, char *, size_t);

/*
 * The type's check hook calls this when its keys are parsed: with tls = on,
 * the files a role needs must be set, and the context is built once so a
 * bad file is a load error ("sluiced -n" finds it).  label as for sl_tls_new.
 */
void sl_tls_conf_check(struct sl_conf_check *chk, struct sl_tls_config *cfg, enum sl_tls_role role);

/* Frees what cfg owns. */
void sl_tls_conf_fini(struct sl_tls_config *cfg);

#endif
