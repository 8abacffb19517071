/*
 * nats_util — real nats-server processes and JetStream streams for the
 * NATS integration tests (check_nats.c), through libnats.
 *
 * A server is started by the test (fork + exec of Debian's nats-server,
 * loopback only, a private store dir and log file, PR_SET_PDEATHSIG so a
 * failed test never leaves one running) and stopped by its PID.  Streams
 * are created, purged and read back with libnats; reading back writes
 * every stored message as lines into a file, so the harness's exactly-once
 * check (harness_seqs) counts the sequence numbers.
 *
 * Thread: the test's main thread.
 */
#ifndef SLUICE_NATS_UTIL_H
#define SLUICE_NATS_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct nu_server {
    pid_t pid; /* -1 when not running */
    int port;
    int cluster_port; /* 0: no cluster */
    char name[32];
    char store[256]; /* -sd */
    char log[256];
    char routes[256]; /* "nats://127.0.0.1:P,..." or "" */
    char tls_cert[256]; /* set after nu_server_init: TLS with this certificate ... */
    char tls_key[256];  /* ... and key (--tls --tlscert --tlskey) */
    char tls_verify_ca[256]; /* with tls_cert: client certificates required, from
                              * these CAs (--tlsverify --tlscacert); "" = none asked */
};

/* Fills s (store and log under dir, named name) without starting it. */
void nu_server_init(struct nu_server *s, const char *dir, const char *name, int port,
                    int cluster_port, const char *routes);
/* Starts it and waits (at most timeout_ms, scaled) until it accepts
 * connections.  0 / -1. */
int nu_server_start(struct nu_server *s, int timeout_ms);
/* Sends sig (SIGKILL, SIGSTOP, SIGCONT, SIGTERM) by PID; SIGKILL and
 * SIGTERM also reap it (pid -1 afterwards). */
void nu_server_signal(struct nu_server *s, int sig);

/* The CA file the helpers' own connections verify a TLS server with, and
 * the name its certificate carries (copied; ca_file NULL: plain
 * connections again). */
void nu_set_tls_ca(const char *ca_file, const char *name);
/* The client certificate and key the helpers' TLS connections present
 * (copied; NULL: none), for a server with tls_verify_ca. */
void nu_set_tls_client(const char *cert_file, const char *key_file);

/* "nats://127.0.0.1:PORT". */
const char *nu_url(const struct nu_server *s, char *buf, size_t len);

struct nu_stream {
    const char *name;
    const char *subject;
    int replicas;         /* 1 or 3 */
    int64_t max_msgs;     /* 0: unlimited; with it, discard new */
    int64_t max_msg_size; /* 0: unlimited */
    int64_t dup_window_ms;
};

/* Creates the stream (file storage) through url.  0 / -1 (logged). */
int nu_stream_create(const char *url, const struct nu_stream *st);
/* Polls until the JetStream meta group has a leader (the account info
 * request is answered), at most timeout_ms (scaled).  0 / -1. */
int nu_cluster_ready(const char *url, int timeout_ms);
/* Polls until the clustered stream has a leader (other than not_leader, a
 * server name, when given) and at least current servers (the leader and
 * current replicas), at most timeout_ms (scaled).  0 / -1 (logged). */
int nu_stream_ready(const char *url, const char *stream, int current, const char *not_leader,
                    int timeout_ms);
/* Purges every message.  0 / -1. */
int nu_stream_purge(const char *url, const char *stream);
/* Messages stored now, or -1. */
int64_t nu_stream_msgs(const char *url, const char *stream);
/* Writes every stored message (each followed by '\n' unless it ends with
 * one) into path, reading with an ephemeral pull consumer; *count = the
 * messages read.  0 / -1. */
int nu_stream_dump(const char *url, const char *stream, const char *path, int64_t *count,
                   int timeout_ms);
/* The same, and (ids_path not NULL) each message's Nats-Msg-Id header as a
 * line of ids_path, in stream order ("" when it has none). */
int nu_stream_dump_ids(const char *url, const char *stream, const char *path, const char *ids_path,
                       int64_t *count, int timeout_ms);

/* Publishes the standard test events [first, first + n) (harness_event_line,
 * one event per message, no line end) to subject through url, and waits
 * until JetStream stored every one.  0 / -1 (logged). */
int nu_publish_events(const char *url, const char *subject, uint64_t first, uint64_t n);

/* Creates the durable pull consumer (explicit ack, ack_wait) if missing.
 * 0 / -1. */
int nu_consumer_create(const char *url, const char *stream, const char *durable,
                       int64_t ack_wait_ms);
/* The consumer's acknowledged-floor stream sequence and pending count. */
int nu_consumer_info(const char *url, const char *stream, const char *durable, uint64_t *ack_floor,
                     uint64_t *pending, uint64_t *ack_pending);

#endif
