/*
 * source_relp — the relp source type: RELP, rsyslog's Reliable Event
 * Logging Protocol (omrelp → sluiced), served by librelp
 * (struct sl_source_type sl_source_relp).
 *
 * DESIGN: a thread of its own.  librelp runs its own loop
 * (relpEngineRun: epoll over its listener and sessions) and offers no way
 * to plug its sockets into a libevent base, and it sends the "200 OK"
 * response to a "syslog" frame as soon as the receive callback returns
 * (librelp ignores the callback's return code).  An acknowledgement can
 * therefore only be withheld by not returning: the callback blocks until
 * the event is in the queue.  Blocking is forbidden on a producer thread,
 * so each relp source runs one server thread ("relp thread") that owns
 * the librelp engine and nothing of any producer.  The source still has
 * an instance in every producer thread, as every source type has; the
 * first instance started (the first producer thread's) owns the server
 * (s->priv, and s->shared->type_state for the others, which stay inert).
 *
 * What is acknowledged when (docs/protocol.md, "RELP"): the callback
 * encodes the event into a chunk of its own, pushes it (sl_queue_push
 * gives the chunk's sequence number) and waits until the queue's durable
 * position reaches that number (relp_commit; the seam of sluice/queue.h:
 * memory queue, every sink draining it committed the chunk; disk queue,
 * written and synced per its policy), and only then returns.  librelp
 * calls the callback once per frame and acknowledges at its return, so
 * there is no batch to wait for: each event is pushed and waited for alone
 * (one relp message in the queue at a time; the cost is a writer round
 * trip per message: docs/architecture.md, "The relp source").
 * When the queue has no chunk to give (full with other sources' events),
 * or the sink does not commit (stalled), the callback waits on the
 * thread's sl_wake (registered with the queue as a producer's, so the
 * writer signals it when chunks are freed and, while we watch it, when
 * the durable position advances), the engine stops reading,
 * acknowledgements stop, and the sender's RELP window (128 frames for
 * omrelp) and then its TCP window close: the sender keeps its messages.
 *
 * Stop (bounded, as the producers'): the owning producer's stop_begin
 * raises librelp's shutdown flag and pokes the listener with a loopback
 * connection, so an epoll_wait with no timeout returns and sees the flag;
 * frames librelp has read but not yet handed over are dropped without an
 * acknowledgement (the sender resends them).  A callback waiting (for
 * space or durability) goes on waiting while the writer drains; at a
 * forced stop it gives up without returning (returning would acknowledge
 * an event that is not durable): the thread parks until the process exits and fini() leaves
 * it and its server alone.  When the thread ends it kicks `done`, whose
 * event on the producer's base reports the source idle.
 *
 * Reload (docs/configuration.md, "Reload").  A source a reload adds starts
 * as at start-up, on the first producer thread (start() there: the engine
 * binds its listener, and the relp thread starts on that thread's next
 * loop turn).  One it removes stops as above, at level 1 (a callback
 * waiting for its commit finishes it: whatever was acknowledged is in the
 * queue and durable before the removal is answered); fini() then destroys
 * the engine, which ends every session with RELP's "serverclose" hint
 * (relpSessSrvDoDisconnect): a sender reconnects and resends what was not
 * acknowledged.  The thread's wake leaves the queue
 * (sl_queue_remove_producer) before it is freed.  A source the reload
 * keeps is not touched: its engine, listener and sessions run on.
 *
 * Threads: start/stop_begin/idle/close_all on the owning producer thread
 * (start and fini: main, while that thread is not running; the relp
 * thread is started from the producer's first loop turn); the callbacks on
 * the relp thread, which alone writes the owner's counters.
 */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <librelp.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/clock.h"
#include "sluice/codec.h"
#include "sluice/config.h"
#include "sluice/producer.h"
#include "sluice/stats.h"
#include "source/lane.h"
#include "source/relp_guard.h"
#include "source/source_relp.h"
#include "util/thread.h"
#include "util/tls.h"

/* How long fini() waits for a stopped relp thread (it is not blocked:
 * librelp's sockets are non-blocking). */
#define RELP_FINI_WAIT_MS 2000

enum relp_state {
    RELP_RUNNING,
    RELP_FINISHED, /* relpEngineRun returned: the thread ends */
    RELP_PARKED,   /* forced stop while a callback waited: the thread never ends */
};

struct relp_server {
    struct sl_source *src; /* the owning instance: its cfg, codec, counters */
    struct sl_queue *queue;
    const char *host; /* add_fields = host */
    relpEngine_t *engine;
    struct sl_thread thread;
    struct sl_wake space; /* the queue has room again, or a stop */
    struct sl_wake done;  /* the relp thread ended (to the producer) */
    struct event *done_ev;
    struct event *launch_ev; /* starts the relp thread from the producer's loop */
    char *scratch;
    int shutdown;                 /* librelp's "shutdown immediately" flag (atomic builtins) */
    atomic_int stop;              /* 0 run, 1 stop, 2 forced */
    atomic_int state;             /* enum relp_state */
    struct sockaddr_storage poke; /* where the listener is reached to wake it */
    socklen_t poke_len;
    struct sl_ratelimit drop_rl; /* relp thread: dropped-message warnings */
    struct sl_ratelimit sess_rl; /* relp thread: session errors (apart, so a
                                    closing health check hides no drop) */
    struct sl_ratelimit tls_rl;  /* relp thread: TLS refusals */
    bool tls;                    /* this server's engine has TLS on (counts in relp_tls_servers) */
};

/* Servers with TLS on in this process (main, or a producer thread while
 * main waits for its answer: a reload adds or removes a source one thread
 * at a time): librelp's OpenSSL back end keeps one SSL_CTX per process,
 * with the CA file and the tlsConfigCmd of the first listener, so a second
 * TLS relp source could not have its own; it is refused at start. */
static int relp_tls_servers;

static struct relp_server *
relp_of(const struct sl_source *s)
{
    return s->priv;
}

/* The sender saw no acknowledgement for the event that was waiting: park
 * until the process exits (see DESIGN).  Nothing of the daemon is touched. */
static void
relp_park(struct relp_server *r)
{
    atomic_store(&r->state, RELP_PARKED);
    sl_wake_kick(&r->done);
    for (;;) {
        (void)poll(NULL, 0, -1);
    }
}

/* What the relp thread waits for: queue space (seq 0), or the durable
 * position reaching seq. */
static bool
relp_ready(struct relp_server *r, uint64_t seq)
{
    return seq == 0 ? sl_queue_can_acquire(r->queue, SL_ACQUIRE_TCP)
                    : sl_queue_durable_seq(r->queue) >= seq;
}

/*
 * Sleeps on r->space until relp_ready(r, seq), with announce / fence /
 * re-check (wake.h): the writer signals the queue's producers' wakes, ours
 * among them, when chunks are freed and, while someone watches it, when
 * the durable position advances.  A stop kicks the wake too; at a forced
 * stop the thread parks (see DESIGN).
 */
static void
relp_wait(struct relp_server *r, uint64_t seq)
{
    for (;;) {
        if (atomic_load(&r->stop) == 2) {
            relp_park(r);
        }
        sl_wake_announce(&r->space);
        if (relp_ready(r, seq) || atomic_load(&r->stop) == 2) {
            sl_wake_cancel(&r->space);
        } else {
            struct pollfd pfd = {.fd = r->space.fd, .events = POLLIN};
            (void)poll(&pfd, 1, -1);
            sl_wake_drain(&r->space);
        }
        if (atomic_load(&r->stop) != 2 && relp_ready(r, seq)) {
            return;
        }
    }
}

/* Waits until the queue can give a chunk, counted as a pause. */
static void
relp_wait_space(struct relp_server *r)
{
    struct sl_source *s = r->src;
    uint64_t t0 = sl_now_ms();
    sl_counter_add(&s->stats->pauses, 1);
    relp_wait(r, 0);
    sl_counter_add(&s->stats->resumes, 1);
    sl_counter_add(&s->stats->paused_ns, (sl_now_ms() - t0) * 1000000u);
}

/*
 * Makes the event in ch as safe as the acknowledgement promises before the
 * callback returns: pushed into the queue, and the queue's durable position
 * (sl_queue_durable_seq: a memory queue's chunk committed by every sink
 * draining it, a disk queue's written and synced per its policy) at the
 * chunk's sequence number or beyond.  An empty chunk (the event was
 * dropped) is recycled: nothing to wait for.
 */
static void
relp_commit(struct relp_server *r, struct sl_chunk *ch, uint64_t now_ns)
{
    ch->first_ns = now_ns;
    uint64_t seq = sl_queue_push(r->queue, ch);
    if (seq == 0 || relp_ready(r, seq)) {
        return;
    }
    sl_queue_watch_durable(r->queue, 1);
    relp_wait(r, seq);
    sl_queue_watch_durable(r->queue, -1);
}

static void
relp_report(struct relp_server *r, const char *peer, const struct sl_tally *t, uint64_t oversize)
{
    struct sl_source *s = r->src;
    uint64_t sup = 0;
    if ((t->invalid == 0 && t->too_large == 0 && oversize == 0 && t->unparsed == 0) ||
        !sl_ratelimit_ok(&r->drop_rl, sl_now_ms(), &sup)) {
        return;
    }
    if (t->unparsed > 0) {
        log_warnx("source \"%s\" peer %s: a message not parsed by codec %s, kept as "
                  "{\"message\":...}%s",
                  s->cfg->name, peer, s->codec->name,
                  sup > 0 ? " (and similar reports suppressed before)" : "");
        return;
    }
    log_warnx("source \"%s\" peer %s: dropped a message (%s)%s", s->cfg->name, peer,
              t->invalid > 0 ? t->first_reason : "over max_line_bytes",
              sup > 0 ? " (and similar reports suppressed before)" : "");
}

/* librelp's receive callback (relp thread): one "syslog" frame.  Returns
 * only once the event is committed (relp_commit) or counted as dropped:
 * librelp acknowledges it when we return. */
static relpRetVal
relp_rcv_cb(void *usr, unsigned char *hostname, unsigned char *ip, unsigned char *msg, size_t len)
{
    struct relp_server *r = usr;
    struct sl_source *s = r->src;
    const char *peer = ip != NULL ? (const char *)ip : "";
    const char *line = (const char *)msg;
    struct sl_tally t = {0};
    uint64_t oversize = 0;
    uint64_t now = sl_realtime_ns();
    struct sl_chunk *ch = NULL;

    sl_counter_add(&s->stats->bytes_in, len);
    /* A frame is one message; a sender's line end is not part of it. */
    if (len > 0 && line[len - 1] == '\n') {
        len--;
    }
    if (len > s->cfg->max_line_bytes) {
        oversize = 1; /* librelp truncated it to max_line_bytes + 1 */
    } else {
        char fields[SL_FIELDS_MAX];
        struct sl_peer from;
        sl_peer_from_text(&from, peer);
        size_t flen = sl_source_fields(s->cfg, r->host, now, &from, fields);
        while (sl_chunk_encode(r->queue, &ch, NULL, s->cfg, r->scratch, now, line, len, fields,
                               flen, SL_ACQUIRE_TCP, &t) == SL_EMIT_NO_SPACE) {
            relp_wait_space(r);
        }
    }
    /* Counted before the wait for the commit: the event is in the queue. */
    sl_counter_add(&s->stats->events_in, t.events);
    sl_counter_add(&s->stats->invalid, t.invalid);
    sl_counter_add(&s->stats->unparsed, t.unparsed);
    sl_counter_add(&s->stats->oversize, t.too_large + oversize);
    relp_report(r, peer, &t, oversize);
    if (ch != NULL) {
        relp_commit(r, ch, now);
    }
    sl_counter_add(&s->stats->relp_acks, 1);
    return RELP_RET_OK;
}

/* A TLS refusal (relp thread): counted under its reason, logged
 * (rate-limited).  Not while stopping: the stop's own poke of the
 * listener is a connection that never speaks TLS. */
static void
relp_tls_refused(struct relp_server *r, enum sl_tls_reason why, const char *peer,
                 const char *detail)
{
    uint64_t sup = 0;
    if (r->src->shared->tls == NULL || atomic_load(&r->stop) != 0) {
        return;
    }
    sl_tls_count(r->src->shared->tls, why);
    if (sl_ratelimit_ok(&r->tls_rl, sl_now_ms(), &sup)) {
        log_warnx("source \"%s\": TLS refused %s: %s (%s)%s", r->src->cfg->name, peer,
                  sl_tls_reason_names[why], detail,
                  sup > 0 ? " (and similar reports suppressed before)" : "");
    }
}

/*
 * librelp's certificate checks failed (relp thread; OpenSSL back end):
 * errmsg says which (its words), authinfo holds the verify error or the
 * certificate's names.  Each refused connection reports exactly one of
 * these, except an expired certificate: librelp's verify callback first
 * reports it and lets the handshake go on (an advisory, skipped here),
 * then refuses it after the handshake (counted).
 */
static void
relp_auth_err_cb(void *usr, char *authinfo, char *errmsg, relpRetVal code)
{
    struct relp_server *r = usr;
    enum sl_tls_reason why;
    if (r == NULL) {
        return;
    }
    if (strncmp(errmsg, "Certificate expired in verify_callback", 38) == 0) {
        return; /* the advisory; the refusal follows */
    }
    if (code == RELP_RET_AUTH_NO_CERT) {
        why = SL_TLS_R_NO_CERT;
    } else if (code == RELP_RET_AUTH_ERR_NAME) {
        why = SL_TLS_R_NAME;
    } else if (strstr(authinfo, "expired") != NULL || strstr(authinfo, "not yet valid") != NULL) {
        why = SL_TLS_R_EXPIRED;
    } else {
        why = SL_TLS_R_UNTRUSTED;
    }
    relp_tls_refused(r, why, "a client", authinfo);
}

/*
 * A failed TLS handshake that no certificate check reported (relp thread):
 * librelp calls this before it empties the thread's OpenSSL error queue,
 * so the queue still holds the reason (the same libssl: one queue per
 * thread).
 */
static void
relp_tls_handshake_failed(struct relp_server *r)
{
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    char detail[256];
    enum sl_tls_reason why = SL_TLS_R_OTHER;
    /* A verify failure was counted; a peer that closed during the
     * handshake (a port probe, the harness's, a health check) is a
     * broken session (relp_session_errors), not a refusal. */
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
        e == 0) {
        return;
    }
    ERR_error_string_n(e, detail, sizeof(detail));
    switch (reason) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
        why = SL_TLS_R_PLAINTEXT;
        break;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        why = SL_TLS_R_NO_CERT;
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_VERSION_TOO_LOW:
        why = SL_TLS_R_VERSION;
        break;
    default:
        break;
    }
    relp_tls_refused(r, why, "a client", detail);
}

/* librelp's session errors (relp thread): a broken session, a bad frame,
 * a failed TLS handshake. */
static void
relp_err_cb(void *usr, char *objinfo, char *errmsg, relpRetVal code)
{
    struct relp_server *r = usr;
    uint64_t sup = 0;
    if (r == NULL) {
        return;
    }
    if (r->tls && code == RELP_RET_ERR_TLS_SETUP && strstr(errmsg, "handshake failed") != NULL) {
        relp_tls_handshake_failed(r);
    }
    sl_counter_add(&r->src->stats->relp_session_errors, 1);
    /* Informational: a sender that restarts or a port probe breaks a
     * session; nothing acknowledged is lost with it. */
    if (sl_ratelimit_ok(&r->sess_rl, sl_now_ms(), &sup)) {
        log_info("source \"%s\": relp %s: %s (%d)", r->src->cfg->name, objinfo, errmsg, code);
    }
}

/* librelp's errors outside a session (no user pointer to name the source). */
static void
relp_generic_err_cb(char *objinfo, char *errmsg, relpRetVal code)
{
    log_debug("relp %s: %s (%d)", objinfo, errmsg, code);
}

static void *
relp_main(void *arg)
{
    struct relp_server *r = arg;
    if (__atomic_load_n(&r->shutdown, __ATOMIC_ACQUIRE) == 0) {
        relpRetVal rc = relpEngineRun(r->engine);
        if (rc != RELP_RET_OK) {
            log_warnx("source \"%s\": relp engine stopped (librelp error %d)", r->src->cfg->name,
                      rc);
        }
    }
    atomic_store(&r->state, RELP_FINISHED);
    sl_wake_kick(&r->done);
    return NULL;
}

/* The producer's first loop turn: the relp thread starts (see relp_start). */
static void
relp_launch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_source *s = arg;
    struct relp_server *r = relp_of(s);
    if (sl_thread_start(&r->thread, relp_main, r) < 0) {
        log_warn("source \"%s\": cannot start the relp thread; the source takes nothing",
                 s->cfg->name);
        atomic_store(&r->state, RELP_FINISHED);
        sl_lane_idle(s);
    }
}

/* The producer thread learns that the relp thread ended. */
static void
relp_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sl_source *s = arg;
    sl_wake_drain(&relp_of(s)->done);
    sl_lane_idle(s);
}

/* Wakes librelp's epoll_wait (no timeout) with a connection to its own
 * listener; the loop then sees the shutdown flag. */
static void
relp_poke(struct relp_server *r)
{
    int fd = socket(r->poke.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    (void)connect(fd, (struct sockaddr *)&r->poke, r->poke_len);
    close(fd);
}

/* Asks the relp thread to stop (level 1) or give up (2); any thread. */
static void
relp_request_stop(struct relp_server *r, int level)
{
    int cur = atomic_load(&r->stop);
    while (cur < level && !atomic_compare_exchange_weak(&r->stop, &cur, level)) {
    }
    __atomic_store_n(&r->shutdown, 1, __ATOMIC_RELEASE);
    if (r->engine == NULL) {
        return; /* never set up */
    }
    relpEngineSetStop(r->engine);
    sl_wake_kick(&r->space);
    relp_poke(r);
}

/* Where the poke goes: the listen address, loopback for a wildcard. */
static void
relp_set_poke(struct relp_server *r, const struct sl_source_config *cfg)
{
    memcpy(&r->poke, &cfg->addr, cfg->addrlen);
    r->poke_len = cfg->addrlen;
    if (r->poke.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&r->poke;
        if (a->sin_addr.s_addr == htonl(INADDR_ANY)) {
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    } else if (r->poke.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&r->poke;
        if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr)) {
            a->sin6_addr = in6addr_loopback;
        }
    }
}

/*
 * The tls keys onto librelp's server (OpenSSL back end).  Client
 * certificates: tls_client_auth = required is librelp's "certvalid" (the
 * chain is verified against tls_ca_file, expiry included; no certificate
 * fails the handshake), with tls_allowed_names its "name" mode (the same,
 * plus a CN or DNS SAN among the names); none asks for no certificate.
 * tls_min_version and the cipher list go in as OpenSSL configuration
 * commands; the cipher list is always set ("DEFAULT" unless tls_ciphers
 * says otherwise) because librelp's own default without client
 * certificates admits anonymous ciphers.
 */
static relpRetVal
relp_srv_tls(relpSrv_t *srv, const struct sl_tls_config *tls)
{
    char cmd[1024];
    relpRetVal rc;
    snprintf(cmd, sizeof(cmd), "MinProtocol=%s\nCipherString=%s",
             tls->min_version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2",
             tls->ciphers != NULL ? tls->ciphers : "DEFAULT");
    if ((rc = relpSrvEnableTLS2(srv)) != RELP_RET_OK ||
        (rc = relpSrvSetOwnCert(srv, tls->cert_file)) != RELP_RET_OK ||
        (rc = relpSrvSetPrivKey(srv, tls->key_file)) != RELP_RET_OK ||
        (rc = relpSrvSetTlsConfigCmd(srv, cmd)) != RELP_RET_OK ||
        (tls->ca_file != NULL && (rc = relpSrvSetCACert(srv, tls->ca_file)) != RELP_RET_OK)) {
        return rc;
    }
    if (tls->client_auth == SL_TLS_AUTH_NONE) {
        return RELP_RET_OK;
    }
    if ((rc = relpSrvSetAuthMode(srv, tls->nnames > 0 ? "name" : "certvalid")) != RELP_RET_OK) {
        return rc;
    }
    for (size_t i = 0; i < tls->nnames; i++) {
        if ((rc = relpSrvAddPermittedPeer(srv, tls->names[i])) != RELP_RET_OK) {
            return rc;
        }
    }
    return RELP_RET_OK;
}

/* The engine with its listener bound (librelp binds in
 * relpEngineListnerConstructFinalize).  Returns 0 or -1 (logged). */
static int
relp_engine_new(struct relp_server *r, const struct sl_source_config *cfg)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    relpSrv_t *srv = NULL;
    int rc = getnameinfo((const struct sockaddr *)&cfg->addr, cfg->addrlen, host, sizeof(host),
                         port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        log_warnx("source \"%s\": %s: %s", cfg->name, cfg->listen, gai_strerror(rc));
        return -1;
    }
    const struct sl_tls_config *tls = &sl_source_relp_config(cfg)->tls;
    if (tls->on && relp_tls_servers > 0) {
        log_warnx("source \"%s\": only one relp source can have tls = on (librelp's OpenSSL "
                  "back end keeps one TLS context per process)",
                  cfg->name);
        return -1;
    }
    (void)sl_relp_guard_install(); /* librelp < 1.13 closes TLS sockets twice (relp_guard.h) */
    sl_relp_guard_forget();
    if ((rc = relpEngineConstruct(&r->engine)) != RELP_RET_OK ||
        /* NULL installs librelp's no-op; left unset, librelp calls NULL. */
        (rc = relpEngineSetDbgprint(r->engine, NULL)) != RELP_RET_OK ||
        (rc = relpEngineSetDnsLookupMode(r->engine, 0)) != RELP_RET_OK ||
        (rc = relpEngineSetFamily(r->engine, cfg->addr.ss_family)) != RELP_RET_OK ||
        (rc = relpEngineSetSyslogRcv2(r->engine, relp_rcv_cb)) != RELP_RET_OK ||
        (rc = relpEngineSetOnErr(r->engine, relp_err_cb)) != RELP_RET_OK ||
        (rc = relpEngineSetOnGenericErr(r->engine, relp_generic_err_cb)) != RELP_RET_OK ||
        (rc = relpEngineSetOnAuthErr(r->engine, relp_auth_err_cb)) != RELP_RET_OK ||
        (tls->on && (rc = relpEngineSetTLSLibByName(r->engine, "openssl")) != RELP_RET_OK) ||
        (rc = relpEngineSetEnableCmd(r->engine, (unsigned char *)"syslog",
                                     eRelpCmdState_Required)) != RELP_RET_OK ||
        (rc = relpEngineListnerConstruct(r->engine, &srv)) != RELP_RET_OK) {
        goto err;
    }
    relpEngineSetShutdownImmdtPtr(r->engine, &r->shutdown);
    if ((rc = relpSrvSetUsrPtr(srv, r)) != RELP_RET_OK ||
        (rc = relpSrvSetLstnPort(srv, (unsigned char *)port)) != RELP_RET_OK ||
        (rc = relpSrvSetLstnAddr(srv, (unsigned char *)host)) != RELP_RET_OK ||
        /* One byte more than allowed: a longer frame arrives truncated to
         * it, is counted as oversize and acknowledged (ABORT would make
         * the sender resend it forever). */
        (rc = relpSrvSetMaxDataSize(srv, cfg->max_line_bytes + 1)) != RELP_RET_OK ||
        (rc = relpSrvSetOversizeMode(srv, RELP_OVERSIZE_TRUNCATE)) != RELP_RET_OK ||
        (tls->on && (rc = relp_srv_tls(srv, tls)) != RELP_RET_OK)) {
        goto err;
    }
    rc = relpEngineListnerConstructFinalize(r->engine, srv);
    srv = NULL; /* the engine owns or freed it */
    if (rc != RELP_RET_OK) {
        goto err;
    }
    if (tls->on) {
        r->tls = true;
        relp_tls_servers++;
    }
    return 0;
err:
    log_warnx("source \"%s\": cannot listen on %s (relp, librelp error %d)", cfg->name, cfg->listen,
              rc);
    return -1;
}

/*
 * Sets TCP_NODELAY on the listener librelp made for cfg (accepted sockets
 * inherit it on Linux).  librelp writes one small "rsp" per message and
 * leaves Nagle on: with the sender's delayed ACKs an acknowledgement then
 * waits ~40 ms whenever the sender's window is full, which caps a session
 * at about 128 messages per 40 ms.  librelp does not give out its sockets,
 * so the listener is found among our descriptors: a listening TCP socket
 * bound to exactly cfg's address.  Best effort (logged at debug).
 */
static void
relp_nodelay(const struct sl_source_config *cfg)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int done = 0;
    if (d == NULL) {
        return;
    }
    /* One thread reads this DIR (main at start-up, or the producer thread
     * a reload starts the source on): readdir is safe. */
    /* cppcheck-suppress readdirCalled */
    while ((e = readdir(d)) != NULL) { /* NOLINT(concurrency-mt-unsafe) */
        char *end = NULL;
        long v = strtol(e->d_name, &end, 10);
        int fd = end != e->d_name && *end == '\0' && v <= INT_MAX ? (int)v : -1;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int on = 0;
        socklen_t ol = sizeof(on);
        if (fd <= 2 || fd == dirfd(d) || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
            sl != cfg->addrlen || memcmp(&ss, &cfg->addr, sl) != 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) < 0 || !on) {
            continue;
        }
        on = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0) {
            done++;
        }
    }
    closedir(d);
    if (done == 0) {
        log_debug("source \"%s\": relp listener not found for TCP_NODELAY", cfg->name);
    }
}

static int
relp_start(struct sl_source *s)
{
    if (s->shared->type_state != NULL) {
        return 0; /* another thread's instance runs the server */
    }
    struct relp_server *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -1;
    }
    s->priv = r;
    s->shared->type_state = r;
    r->src = s;
    r->queue = sl_lane_queue(s);
    r->host = sl_lane_hostname(s);
    r->space.fd = -1;
    r->done.fd = -1;
    r->drop_rl.interval_ms = 10000;
    r->sess_rl.interval_ms = 10000;
    r->tls_rl.interval_ms = 10000;
    atomic_init(&r->stop, 0);
    atomic_init(&r->state, RELP_RUNNING);
    relp_set_poke(r, s->cfg);
    size_t scratch = s->codec->scratch_bytes(s->cfg->max_line_bytes);
    if (scratch > 0 && (r->scratch = malloc(scratch)) == NULL) {
        return -1;
    }
    if (sl_wake_init(&r->space) < 0 || sl_wake_init(&r->done) < 0 ||
        sl_queue_add_producer(r->queue, &r->space) < 0) {
        return -1;
    }
    r->done_ev =
        event_new(sl_lane_thread(s)->base, r->done.fd, EV_READ | EV_PERSIST, relp_done_cb, s);
    if (r->done_ev == NULL || event_add(r->done_ev, NULL) < 0 || relp_engine_new(r, s->cfg) < 0) {
        return -1;
    }
    relp_nodelay(s->cfg);
    /* The thread starts on the producer's first loop turn, not here: the
     * writer and the queue's consumer are set up after the producers, and a
     * message librelp takes must find them (the producer thread's start
     * orders those writes before it). */
    r->launch_ev = event_new(sl_lane_thread(s)->base, -1, 0, relp_launch_cb, s);
    if (r->launch_ev == NULL) {
        return -1;
    }
    event_active(r->launch_ev, EV_TIMEOUT, 0);
    return 0;
}

static void
relp_stop_begin(struct sl_source *s)
{
    if (relp_of(s) != NULL) {
        relp_request_stop(relp_of(s), 1);
    }
}

static bool
relp_idle(const struct sl_source *s)
{
    struct relp_server *r = relp_of(s);
    return r == NULL || !r->thread.started || atomic_load(&r->state) != RELP_RUNNING;
}

/* Forced stop: nothing is lost here (what is not acknowledged is the
 * sender's to resend); a callback waiting for space parks. */
static uint64_t
relp_close_all(struct sl_source *s)
{
    if (relp_of(s) != NULL) {
        relp_request_stop(relp_of(s), 2);
    }
    return 0;
}

static void
relp_fini(struct sl_source *s)
{
    struct relp_server *r = relp_of(s);
    if (r == NULL) {
        return;
    }
    s->priv = NULL;
    s->shared->type_state = NULL;
    if (r->thread.started) {
        relp_request_stop(r, 2);
        /* Once stopped, it ends (or parks) at once, and kicks `done`. */
        uint64_t until = sl_now_ms() + RELP_FINI_WAIT_MS;
        uint64_t now;
        while (atomic_load(&r->state) == RELP_RUNNING && (now = sl_now_ms()) < until) {
            struct pollfd pfd = {.fd = r->done.fd, .events = POLLIN};
            (void)poll(&pfd, 1, (int)(until - now));
            sl_wake_drain(&r->done);
        }
        if (atomic_load(&r->state) != RELP_FINISHED) {
            log_warnx(
                "source \"%s\": relp thread left waiting (queue space or a commit); its message "
                "was not acknowledged (the sender resends it)",
                s->cfg->name);
            return; /* it still uses r: leave r to the process's exit */
        }
        sl_thread_join(&r->thread);
    }
    if (r->engine != NULL) {
        sl_relp_guard_forget(); /* its sessions' numbers were accepted on the relp thread */
        relpEngineDestruct(&r->engine);
    }
    if (r->tls) {
        relp_tls_servers--;
    }
    if (r->done_ev != NULL) {
        event_free(r->done_ev);
    }
    if (r->launch_ev != NULL) {
        event_free(r->launch_ev);
    }
    /* The writer signals the queue's producers' wakes: ours goes out
     * before it is freed (a reload removes a source, the queue runs on). */
    if (r->queue != NULL) {
        sl_queue_remove_producer(r->queue, &r->space);
    }
    sl_wake_fini(&r->space);
    sl_wake_fini(&r->done);
    free(r->scratch);
    free(r);
}

const struct sl_source_type sl_source_relp = {
    .name = "relp",
    .label = "RELP",
    .socktype = SOCK_STREAM,
    .bind = NULL, /* librelp binds its own listener, in start() */
    .start = relp_start,
    .stop_begin = relp_stop_begin,
    .idle = relp_idle,
    .close_all = relp_close_all,
    .fini = relp_fini,
};
