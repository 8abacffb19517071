/*
 * sink_nats — private to the nats sink, its config and its tests: the
 * sink's own config (its keys: sink_nats_conf.c).
 *
 * Hung off struct sl_sink_config's type_conf when type = nats; owned by the
 * config, read-only once loaded.  Thread: any (borrowed from the config).
 */
#ifndef SLUICE_SINK_NATS_H
#define SLUICE_SINK_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/conf.h"
#include "sluice/config.h"
#include "sluice/sink.h"
#include "util/tls.h"

/* The nats sink type (sink_nats.c); its registry entry (sink_nats_conf.c)
 * points at it. */
extern const struct sl_sink_ops sl_sink_nats_ops;

enum sl_nats_message { SL_NATS_MESSAGE_EVENT, SL_NATS_MESSAGE_BATCH };

#define SL_NATS_MAX_SERVERS 16

/* The url key of the nats sink and source: one or more servers. */
struct sl_nats_servers {
    char *url;      /* as written */
    char **servers; /* 1 .. SL_NATS_MAX_SERVERS, "nats://host:port" as written */
    int nservers;
};

/* The url key's parser (writes a struct sl_nats_servers at key->offset)
 * and what frees it; shared with source_nats_conf.c. */
int sl_nats_key_url(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                    size_t whylen);
void sl_nats_servers_fini(struct sl_nats_servers *u);
/* A stream, consumer or sender name: [A-Za-z0-9_-]{1,64}. */
int sl_nats_key_token(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                      size_t whylen);

/* The host of a server url ("nats://u:p@host:port", "[::1]:4222") into buf
 * (len bytes).  0, or -1 when there is none or it does not fit.  Pure. */
int sl_nats_url_host(const char *url, char *buf, size_t len);

/* Text without control bytes (user, password). */
int sl_nats_key_text(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                     size_t whylen);
/* user and password go together and exclude creds_file. */
void sl_nats_check_auth(struct sl_conf_check *chk, const char *user, const char *password,
                        const char *creds_file);

/* The credential keys of a nats sink or source, whose config struct is T
 * with members user, password and creds_file. */
#define SL_NATS_AUTH_KEYS(T)                                                                    \
    {.name = "user",                                                                            \
     .parse = sl_nats_key_text,                                                                 \
     .offset = offsetof(T, user),                                                               \
     .doc = "user name (with password)"},                                                       \
        {.name = "password",                                                                    \
         .parse = sl_nats_key_text,                                                             \
         .offset = offsetof(T, password),                                                       \
         .doc = "password (with user)"},                                                        \
        {.name = "creds_file",                                                                  \
         .parse = sl_conf_key_path,                                                             \
         .offset = offsetof(T, creds_file),                                                     \
         .doc = "NATS credentials file (JWT and NKey seed)"}

struct sl_sink_nats_config {
    struct sl_nats_servers url;
    char *subject;      /* as written: literals and %{queue} */
    char *stream;       /* the stream the subject must land in */
    char *sender_id;    /* first part of every Nats-Msg-Id; default the host name */
    enum sl_nats_message message;
    unsigned max_inflight;     /* messages published and not yet acknowledged */
    size_t max_inflight_bytes; /* their bytes */
    uint64_t ack_timeout_ms;   /* a publish not acknowledged this long is resent */
    uint64_t retry_initial_ms; /* resend and reconnect backoff: first delay */
    uint64_t retry_max_ms;     /* ... longest delay */
    char *user;
    char *password;
    char *creds_file;
    struct sl_tls_config tls; /* tls = on: the tls* keys (util/tls.h) */
    bool disk_queue;          /* set by the cross-check: the queue is a disk queue */
};

static inline const struct sl_sink_nats_config *
sl_sink_nats_config(const struct sl_sink_config *cfg)
{
    return cfg->type_conf;
}

/*
 * Expands the subject template for queue: literals and %{queue}.  Returns
 * the length written into buf (len bytes, NUL-terminated), or -1 when the
 * template is malformed or the result does not fit; why (whylen bytes)
 * then says why.  Pure; any thread (sink_nats_conf.c checks templates with
 * it, sink_nats.c expands them).
 */
int sl_nats_subject(const char *tmpl, const char *queue, char *buf, size_t len, char *why,
                    size_t whylen);

#endif
