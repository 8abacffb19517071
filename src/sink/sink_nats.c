/*
 * sink_nats — publishes the NDJSON stream to a NATS JetStream stream with
 * asynchronous publishes and publish acknowledgements (PubAck).
 *
 * DESIGN
 * Set-up.  open (main thread) makes the libnats options and nothing else:
 * no network, so a server that is down, slow or a black hole never holds
 * the main thread at start or reload.  The publishing thread connects
 * (nats_setup: natsConnection_Connect, retried with the backoff until it
 * succeeds; each failure logged at most every 10 s, a TLS one counted per
 * reason), then checks the stream exists (retried the same way) and, in
 * batch mode, that a chunk fits the server's max_payload; only then does
 * it publish.  Meanwhile the sink is failing and /healthz says why
 * (connect URL, TLS handshake with URL, stream X does not exist).  Once
 * connected, libnats reconnects by itself (unlimited, our backoff).
 *
 * Threads.  write() runs on the writer thread and never calls libnats: it
 * appends the chunks it gets to the in-flight ring (under the sink's
 * mutex) and signals the sink's publishing thread (a condition variable).
 * That thread alone calls js_PublishMsgAsync, so whatever libnats does
 * inside a publish (take the connection's lock while its flusher writes to
 * a server that stopped reading, write its buffer to the blocking socket)
 * holds the publishing thread, never the writer.  libnats runs its own
 * threads (socket reader, flusher, reconnection, the PubAck timeout
 * timer); its callbacks (acknowledgements, disconnected, reconnected)
 * record what happened under the mutex, signal the publishing thread
 * (room, a resend) and the sink's own eventfd (sl_wake, the any-thread
 * wake), whose event on the writer's event_base applies it on the writer
 * thread: commits (in order, link->commit) and health.  So a NATS outage
 * shows as a failing sink while the writer's heartbeat stays fresh
 * (check_nats server_stop samples both).
 *
 * Chunks and messages.  The writer hands over whole chunks (one iovec per
 * chunk; the sink always reports whole chunks written, so every iovec it
 * gets starts a chunk); write() takes a chunk whole into the ring and
 * reports it sent (the ring holds every chunk of the queue, so it only
 * answers SL_SINK_WAIT if that ever fails).  Each chunk becomes one message (message = batch)
 * or one per line (message = event) and is kept in the in-flight ring with
 * one state per message until every message is acknowledged (or, event
 * mode, rejected as too large, counted).  The ring's head chunk, once
 * complete, is committed (link->commit): commits are in order, and the
 * memory backlog releases the chunk then.  A chunk's bytes stay valid
 * until it is committed (the backlog holds it), so resends read them again.
 *
 * Message id.  Nats-Msg-Id = "SENDER:EPOCH:QUEUE:SEQ:IDX": sender_id, the
 * time this process opened the sink (a memory queue's chunk numbers start
 * again at 1 after a restart, and those chunks are new data), the queue
 * name, the chunk's seq (sl_queue_push) and the message's index in it (0
 * in batch mode).  A resend carries the same id, so the server drops it if
 * it stored the first copy within the stream's duplicate window.
 *
 * Disk queue.  Its iovecs point into the backlog's read buffer (valid
 * until the next sent): write() copies each record (one chunk) into the
 * ring and numbers it itself (next_rec).  The id is then
 * "SENDER:EPOCH:QUEUE:CRC:SEQ:IDX" with EPOCH 0, and the number of the
 * first uncommitted record is persisted with the queue's committed position
 * (checkpoint/restore; the sink commits whole records, so that position is
 * a record start): after a kill -9 the records replayed from there get the
 * numbers, hence the ids, they had, and the server drops what it stored.
 * Without a saved number the position is the queue's start and
 * numbering starts at 1 there, in every run alike.
 * CRC (crc32 of the record) guards the numbering: a record that is not the
 * one the last run numbered so (a damaged record skipped, a segment
 * evicted, a torn tail rewritten after a power loss) gets another id, so
 * it can be stored twice but never taken for a duplicate and lost.
 * A config reload that replaces the sink hands its ring (the copies) and
 * this numbering to its successor on the same reader (nats_handover), so
 * the ids go on as if nothing had changed.
 *
 * Bounded.  The publishing thread publishes only while connected and
 * while fewer than max_inflight messages and max_inflight_bytes are
 * unacknowledged; libnats' own PublishAsync.MaxPending (where a publish
 * would block) is twice max_inflight, so it is never reached (an
 * acknowledgement can be counted down by us before libnats counts it
 * down).  Unpublished chunks wait in the ring: they are the queue's own
 * chunks (the backlog holds them until committed), so the queue fills and
 * sources pause while the server is away or slow.  The reconnect buffer is
 * small (64 KiB): a publish racing a disconnection is buffered there or
 * fails (then it is resent later); nothing accumulates in the library.
 * libnats may still hold the publishing thread in a blocking socket write
 * while a server does not read (a stopped server): that thread waits, the
 * writer goes on.  A publish held past ack_timeout is answered
 * (NATS_TIMEOUT) while js_PublishMsgAsync still uses the message: libnats
 * registers it before writing it, and its answer hands it to nats_ack_cb
 * to destroy.  nats_ack_cb leaves that one message (pub_msg) to the
 * publishing thread, which destroys it once the call returns (destroying
 * it in the callback was a use-after-free: check_nats server_stop).
 *
 * TLS (tls = on).  libnats makes the SSL context from the same files
 * (natsOptions_SetSecure, LoadCATrustedCertificates, LoadCertificatesChain,
 * SetExpectedHostname, SetCiphers) and always verifies the server, its
 * chain against tls_ca_file and its name against tls_server_name or the
 * url's host (libnats checks no name unless given one); a
 * failed handshake fails the connection attempt, which nats_setup counts
 * per reason on an sl_tls made only for its counters (and to check the
 * files at start).  tls_min_version = 1.3: libnats makes its SSL_CTX with
 * TLS 1.2 as the floor and has no setter for it (nor a way to reach the
 * SSL_CTX or the negotiated version), so the sink offers no TLS 1.2 cipher
 * suite instead: the TLS 1.2 list (natsOptions_SetCiphers) is "PSK", whose
 * suites OpenSSL never offers without a PSK client callback (libnats sets
 * none; OpenSSL refuses a list that names no TLS 1.2 suite at all).  The
 * ClientHello then carries only TLS 1.3 suites, so a server that offers
 * nothing newer than 1.2 fails the handshake (alert 40, counted as reason
 * version): check_nats tls13, against a TLS 1.2-only server it also
 * checks accepts a TLS 1.2 client.
 * SIGHUP (nats_reopen) reads the files again: checked by sl_tls_reload
 * (and libnats' own loading) into new options (next_opts).  A connection
 * keeps the SSL_CTX of the options it was made with, reconnections
 * included (libnats shares it with no way to swap it), so the new files
 * are used by making a new connection: not at once (the established one
 * stays), but when it is next lost (nats_renew closes it and connects
 * again, nats_setup) or at the next first-connection attempt.
 *
 * Latency.  Each message's hand-over to libnats is timed (nats_take, per
 * message in its chunk) and its positive PubAck observed once into the
 * sink's sluice_sink_publish_ack_seconds histogram (nats_ack_cb, under mu,
 * so the histogram has one writer at a time); a resend is timed from the
 * resend, timeouts and negative acknowledgements are not observed.
 *
 * Failures.  A negative acknowledgement or no acknowledgement within
 * ack_timeout (PubOptions.MaxWait: libnats answers NATS_TIMEOUT) marks the
 * message for a resend by the publishing thread after a backoff
 * (retry_initial doubling to retry_max, back to none after a positive
 * acknowledgement); the sink is failing meanwhile and its health names why
 * ("stream X full" for a stream at its limits with discard new).  Nothing
 * is dropped except, in event mode, an event larger than the server's
 * max_payload or the stream's max_msg_size: rejected, counted
 * (sluice_sink_rejected_events_total) and logged.  ExpectStream on every
 * publish makes the server refuse a subject stored in another stream
 * (error 10060): the sink fails loudly and keeps retrying.
 */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "sink/fwd.h"
#include "sink/sink_nats.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "sluice/queue.h"
#include "sluice/sink.h"
#include "sluice/wake.h"
#include "util/le.h"
#include "util/tls.h"
#include "util/thread.h"

#define NATS_LOG_MS 10000
#define NATS_RECONNECT_BUF (64 * 1024)
#define NATS_ID_MAX 256
#define NATS_JS_WAIT_MS 2000      /* JetStream API requests (the stream check) */
#define NATS_CLOSE_WAIT_MS 5000   /* at detach: for the connection's closed callback */
/* tls_min_version = 1.3: the TLS 1.2 cipher list, which offers no suite
 * (PSK suites need a PSK callback; see DESIGN, TLS). */
#define NATS_TLS13_ONLY "PSK"

enum msg_state { M_NEW, M_INFLIGHT, M_DONE, M_FAILED };

/* Why the sink fails: the health target index (nats_object). */
enum nats_why {
    WHY_DISCONNECTED, /* SL_SINK_OP_CONNECT: the url */
    WHY_FULL,         /* "stream X full" */
    WHY_TIMEOUT,      /* "stream X: no acknowledgement within ack_timeout" */
    WHY_REFUSED,      /* "stream X refused a publish (see the log)" */
    WHY_MISROUTED,    /* "subject S is not stored in stream X" */
    WHY_NOSTREAM,     /* "stream X does not exist" */
    WHY_PAYLOAD,      /* batch chunks larger than the server's max_payload */
    WHY_N
};

struct nchunk {
    uint64_t seq;   /* memory queue: the chunk's; disk queue: the sink's record number */
    uint32_t crc;   /* disk queue: crc32 of the record's bytes (in the message id) */
    char *own;      /* disk queue: the copy data points at, owned */
    const char *data;
    size_t len;
    uint32_t nmsg;
    uint32_t next;   /* the next message never published */
    uint32_t done;   /* acknowledged or rejected */
    uint32_t failed; /* in M_FAILED */
    uint32_t *off;   /* event mode: line starts, off[nmsg] = len */
    /* Per message: when it was last handed to libnats (sl_now_ns() / 1000,
     * truncated: differences are right for 71 minutes), for the PubAck
     * latency histogram; st follows in the same allocation (freed with it). */
    uint32_t *sent_us;
    uint8_t *st; /* enum msg_state per message */
};

struct nats_sink {
    struct sl_sink *s;
    const struct sl_sink_nats_config *c;
    char subject[512];
    char idprefix[200]; /* "SENDER:EPOCH:QUEUE:" */
    char host[72];      /* the sender id, ':' replaced */
    uint64_t epoch;     /* in every message id: when this numbering began */
    bool disk;          /* the queue is a disk queue: records are copied and numbered here */
    uint64_t next_rec;  /* disk: the number the next record written gets (writer thread) */
    uint64_t ckpt_next; /* disk: the number of the first record not committed (writer) */
    struct sl_tls *tls; /* tls = on: counters only (libnats makes its own context), owned */
    natsOptions *opts;
    natsConnection *nc; /* set by the publishing thread once connected (under mu) */
    jsCtx *js;          /* the publishing thread's (and close's) */
    uint64_t rng; /* reconnection jitter (libnats' reconnect thread only) */
    int64_t max_payload;

    /* Writer thread. */
    struct event_base *base;
    sl_sink_wake_fn wake;
    sl_sink_commit_fn commit;
    void *link_arg;
    struct event *wake_ev;
    bool want; /* answered WAIT: call wake when we can go on */
    struct sl_ratelimit rl;
    struct sl_ratelimit reject_rl;
    struct sl_ratelimit conn_rl; /* the publishing thread's connection failures */
    struct sl_ratelimit reload_rl; /* SIGHUP: new TLS files libnats refused */

    struct sl_wake ev;  /* any thread signals, the writer's base watches */
    atomic_bool kicked; /* ev was written and the writer has not run since */

    struct sl_thread pub; /* the publishing thread */

    /* Under mu (library threads, the publishing thread and the writer). */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the publishing thread waits here */
    bool stop;         /* detach: the publishing thread returns */
    uint64_t conns;    /* connections made (nats_setup) */
    uint64_t closed;   /* connections whose last callback (closed) ran */
    /* SIGHUP: options built from the re-read TLS files, for the next
     * connection (nats_renew); NULL: none waiting. */
    natsOptions *next_opts;
    bool dropped; /* the connection was lost since next_opts was set */
    struct nchunk *ring;
    size_t cap, head, count;
    size_t pubpos;         /* ring index of the first chunk with messages never published */
    uint64_t backoff_ms;   /* resend backoff; 0 = none */
    uint64_t retry_at_ms;  /* sl_now_ms() when failed messages may go again; 0 = unset */
    size_t round_left;     /* failed messages the current resend round still sends */
    size_t inflight;       /* messages published, no answer yet */
    size_t inflight_bytes; /* their payload bytes */
    size_t failed;         /* messages waiting for a resend */
    bool connected;
    bool ready;        /* the publishing thread checked the stream: publishes may go */
    int setup_why;     /* the stream check failed (WHY_NOSTREAM, WHY_PAYLOAD), -1 = none */
    bool connect_tls;  /* the last connection attempt failed in the TLS handshake */
    int why;           /* the last failure (enum nats_why), -1 = none */
    bool acked_since;  /* a positive acknowledgement since the writer last looked */
    natsMsg *pub_msg;  /* the message the publishing thread is inside js_PublishMsgAsync with */
    bool pub_answered; /* its answer came meanwhile: the publishing thread destroys it */
    uint64_t rejected; /* events rejected, not yet logged */
    char last_err[160];

    char objects[WHY_N][320];
};

static struct nchunk *
ring_at(struct nats_sink *n, size_t i)
{
    return &n->ring[(n->head + i) % n->cap];
}

/* The chunk seq in the ring, or NULL.  Under mu. */
static struct nchunk *
ring_find(struct nats_sink *n, uint64_t seq)
{
    if (n->count == 0) {
        return NULL;
    }
    uint64_t first = ring_at(n, 0)->seq;
    if (seq >= first && seq - first < n->count && ring_at(n, seq - first)->seq == seq) {
        return ring_at(n, seq - first);
    }
    for (size_t i = 0; i < n->count; i++) {
        if (ring_at(n, i)->seq == seq) {
            return ring_at(n, i);
        }
    }
    return NULL;
}

static size_t
msg_len(const struct nats_sink *n, const struct nchunk *k, uint32_t i)
{
    if (n->c->message == SL_NATS_MESSAGE_BATCH) {
        return k->len;
    }
    return k->off[i + 1] - k->off[i] - 1; /* without the newline */
}

static const char *
msg_data(const struct nats_sink *n, const struct nchunk *k, uint32_t i)
{
    return n->c->message == SL_NATS_MESSAGE_BATCH ? k->data : k->data + k->off[i];
}

/* Parses "...:SEQ:IDX" at the end of a message id. */
static bool
parse_id(const char *id, uint64_t *seq, uint32_t *idx)
{
    const char *b = id != NULL ? strrchr(id, ':') : NULL;
    if (b == NULL || b == id) {
        return false;
    }
    const char *a = b - 1;
    while (a > id && *a != ':') {
        a--;
    }
    if (*a != ':') {
        return false;
    }
    char *end;
    *seq = strtoull(a + 1, &end, 10);
    if (end != b) {
        return false;
    }
    *idx = (uint32_t)strtoul(b + 1, &end, 10);
    return *end == '\0';
}

/* Wakes the writer thread to apply what a callback recorded: one eventfd
 * write per writer pass, however many acknowledgements arrive meanwhile. */
static void
nats_kick(struct nats_sink *n)
{
    if (!atomic_exchange_explicit(&n->kicked, true, memory_order_acq_rel)) {
        sl_wake_kick(&n->ev);
    }
}

/* A message failed: its resend waits for the backoff (retry_initial
 * doubling to retry_max).  Under mu. */
static void
nats_failed_locked(struct nats_sink *n)
{
    if (n->retry_at_ms != 0) {
        return;
    }
    uint64_t d = n->backoff_ms == 0 ? n->c->retry_initial_ms : n->backoff_ms * 2;
    if (d > n->c->retry_max_ms) {
        d = n->c->retry_max_ms;
    }
    n->backoff_ms = d;
    n->retry_at_ms = sl_now_ms() + d;
}

/* jsPubAckHandler: a library thread. */
static void
nats_ack_cb(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct nats_sink *n = closure;
    const char *id = NULL;
    uint64_t seq = 0;
    uint32_t idx = 0;

    (void)js;
    pthread_mutex_lock(&n->mu);
    /* libnats registers the message (and its MaxWait deadline) before it
     * writes it: when the publish is held longer than ack_timeout (its
     * flusher blocked in a socket write while the server does not read),
     * the timeout answers while the writer thread is still inside
     * js_PublishMsgAsync using msg.  That thread destroys it then. */
    bool owned = msg != n->pub_msg;
    if (!owned) {
        n->pub_answered = true;
    }
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !parse_id(id, &seq, &idx)) {
        pthread_mutex_unlock(&n->mu);
        if (owned) {
            natsMsg_Destroy(msg);
        }
        return;
    }
    struct nchunk *k = ring_find(n, seq);
    if (k != NULL && idx < k->nmsg && k->st[idx] == M_INFLIGHT) {
        n->inflight--;
        n->inflight_bytes -= msg_len(n, k, idx);
        if (pa != NULL) {
            uint32_t us = (uint32_t)(sl_now_ns() / 1000u) - k->sent_us[idx];
            sl_hist_observe(&n->s->stats->ack_ns, (uint64_t)us * 1000u, 1);
            k->st[idx] = M_DONE;
            k->done++;
            n->acked_since = true;
            n->backoff_ms = 0;
            if (pa->Duplicate) {
                sl_counter_add(&n->s->stats->duplicates, 1);
            }
        } else if (pae != NULL && pae->ErrCode == JSStreamMessageExceedsMaximumErr &&
                   n->c->message == SL_NATS_MESSAGE_EVENT) {
            k->st[idx] = M_DONE; /* over the stream's max_msg_size: never storable */
            k->done++;
            n->rejected++;
            sl_counter_add(&n->s->stats->rejected, 1);
        } else {
            k->st[idx] = M_FAILED;
            k->failed++;
            n->failed++;
            nats_failed_locked(n);
            int why = WHY_REFUSED;
            if (pae == NULL || pae->Err == NATS_TIMEOUT) {
                why = WHY_TIMEOUT;
            } else if (pae->ErrCode == JSStreamStoreFailedErr ||
                       pae->ErrCode == JSStorageResourcesExceededErr) {
                why = WHY_FULL;
            } else if (pae->ErrCode == JSStreamNotMatchErr) {
                why = WHY_MISROUTED;
            }
            n->why = why;
            if (pae != NULL) {
                snprintf(n->last_err, sizeof(n->last_err), "%s (error %d, status %d)",
                         pae->ErrText != NULL ? pae->ErrText : natsStatus_GetText(pae->Err),
                         (int)pae->ErrCode, (int)pae->Err);
            }
        }
        pthread_cond_signal(&n->cv); /* room, or a resend to schedule */
    }
    pthread_mutex_unlock(&n->mu);
    if (owned) {
        natsMsg_Destroy(msg);
    }
    nats_kick(n);
}

static void
nats_disconnected_cb(natsConnection *nc, void *closure)
{
    struct nats_sink *n = closure;

    (void)nc;
    pthread_mutex_lock(&n->mu);
    n->connected = false;
    n->dropped = true;
    pthread_cond_signal(&n->cv); /* new TLS files waiting: nats_renew */
    pthread_mutex_unlock(&n->mu);
    nats_kick(n);
}

/* The connection's last callback: after it none uses n (detach waits for
 * it; freeing n before it ran was a use-after-free in
 * nats_disconnected_cb, check_nats under ASan). */
static void
nats_closed_cb(natsConnection *nc, void *closure)
{
    struct nats_sink *n = closure;

    (void)nc;
    pthread_mutex_lock(&n->mu);
    n->closed++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static void
nats_reconnected_cb(natsConnection *nc, void *closure)
{
    struct nats_sink *n = closure;

    pthread_mutex_lock(&n->mu);
    n->connected = true;
    n->max_payload = natsConnection_GetMaxPayload(nc);
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    nats_kick(n);
}

/* Reconnection backoff: retry_initial doubling to retry_max, jittered. */
static int64_t
nats_reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    struct nats_sink *n = closure;
    uint64_t d = n->c->retry_initial_ms;

    (void)nc;
    for (int i = 1; i < attempts && d < n->c->retry_max_ms; i++) {
        d *= 2;
    }
    if (d > n->c->retry_max_ms) {
        d = n->c->retry_max_ms;
    }
    return (int64_t)sl_fwd_jitter(&n->rng, d);
}

/* True when one more message of len bytes may be published now.  Under mu. */
static bool
nats_room(const struct nats_sink *n, size_t len)
{
    if (!n->connected) {
        return false;
    }
    if (n->inflight == 0) {
        return true; /* one message always goes, even when larger than the byte limit */
    }
    return n->inflight < n->c->max_inflight && n->inflight_bytes + len <= n->c->max_inflight_bytes;
}

/* Event mode: an event larger than the server takes is rejected, counted
 * and logged (true), before it is ever published.  Under mu. */
static bool
nats_too_large(struct nats_sink *n, struct nchunk *k, uint32_t i)
{
    size_t len = msg_len(n, k, i);

    if (n->c->message != SL_NATS_MESSAGE_EVENT || n->max_payload <= 0 ||
        len + NATS_ID_MAX + 128 <= (size_t)n->max_payload) {
        return false;
    }
    k->st[i] = M_DONE;
    k->done++;
    n->rejected++;
    sl_counter_add(&n->s->stats->rejected, 1);
    return true;
}

/* Marks message i of k in flight.  Under mu. */
static void
nats_take(struct nats_sink *n, struct nchunk *k, uint32_t i)
{
    k->st[i] = M_INFLIGHT;
    k->sent_us[i] = (uint32_t)(sl_now_ns() / 1000u);
    n->inflight++;
    n->inflight_bytes += msg_len(n, k, i);
}

/*
 * The next message to publish, in order: failed ones once their backoff
 * is over (*resend), then those never published.  False when nothing may
 * go now (disconnected, the in-flight limits, nothing to do).  The message
 * is marked in flight.  Under mu; the publishing thread.
 */
static bool
nats_next(struct nats_sink *n, struct nchunk **kp, uint32_t *ip, bool *resend)
{
    if (!n->connected || !n->ready) {
        return false;
    }
    if (n->round_left == 0 && n->failed > 0 && n->retry_at_ms != 0 &&
        sl_now_ms() >= n->retry_at_ms) {
        /* A round resends what failed before it began; what fails during
         * it waits for the next backoff (a full stream is not hammered). */
        n->round_left = n->failed;
        n->retry_at_ms = 0;
    }
    if (n->round_left > 0) {
        for (size_t c = 0; c < n->count; c++) {
            struct nchunk *k = ring_at(n, c);
            for (uint32_t i = 0; i < k->next && k->failed > 0; i++) {
                if (k->st[i] != M_FAILED) {
                    continue;
                }
                if (!nats_room(n, msg_len(n, k, i))) {
                    return false; /* in order: nothing newer goes before it */
                }
                k->failed--;
                n->failed--;
                n->round_left--;
                nats_take(n, k, i);
                *kp = k;
                *ip = i;
                *resend = true;
                return true;
            }
        }
    }
    n->round_left = 0; /* nothing failed is left to resend in this round */
    if (n->failed > 0 && n->retry_at_ms == 0) {
        nats_failed_locked(n);
    }
    for (; n->pubpos < n->count; n->pubpos++) {
        struct nchunk *k = ring_at(n, n->pubpos);
        while (k->next < k->nmsg) {
            uint32_t i = k->next;
            if (nats_too_large(n, k, i)) {
                k->next++;
                continue;
            }
            if (!nats_room(n, msg_len(n, k, i))) {
                return false;
            }
            k->next++;
            nats_take(n, k, i);
            *kp = k;
            *ip = i;
            *resend = false;
            return true;
        }
    }
    return false;
}

/* Publishes message i of chunk seq, data and len (the publishing thread;
 * mu not held; the message is in flight, so its chunk stays in the ring).
 * When libnats refuses it at once (disconnected and its buffer is full,
 * closed), the message is failed, for a resend. */
static void
nats_publish(struct nats_sink *n, uint64_t seq, uint32_t crc, uint32_t i, const char *data,
             size_t len)
{
    char id[NATS_ID_MAX];
    natsMsg *m = NULL;
    jsPubOptions po;
    natsStatus st;

    if (n->disk) {
        snprintf(id, sizeof(id), "%s%08" PRIx32 ":%" PRIu64 ":%u", n->idprefix, crc, seq, i);
    } else {
        snprintf(id, sizeof(id), "%s%" PRIu64 ":%u", n->idprefix, seq, i);
    }
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.ExpectStream = n->c->stream;
    po.MaxWait = (int64_t)n->c->ack_timeout_ms;
    st = natsMsg_Create(&m, n->subject, NULL, data, (int)len);
    if (st == NATS_OK) {
        natsMsg *mine = m;
        pthread_mutex_lock(&n->mu);
        n->pub_msg = mine;
        n->pub_answered = false;
        pthread_mutex_unlock(&n->mu);
        st = js_PublishMsgAsync(n->js, &m, &po);
        pthread_mutex_lock(&n->mu);
        bool answered = n->pub_answered;
        n->pub_msg = NULL;
        n->pub_answered = false;
        pthread_mutex_unlock(&n->mu);
        if (answered) {
            natsMsg_Destroy(mine); /* answered (nats_ack_cb) before the library let go of it */
            m = NULL;
        }
    }
    natsMsg_Destroy(m); /* NULL when the library took it */
    if (st == NATS_OK) {
        return;
    }
    pthread_mutex_lock(&n->mu);
    struct nchunk *k = ring_find(n, seq);
    if (k != NULL && k->st[i] == M_INFLIGHT) {
        k->st[i] = M_FAILED;
        k->failed++;
        n->failed++;
        n->inflight--;
        n->inflight_bytes -= len;
        n->why = WHY_DISCONNECTED;
        snprintf(n->last_err, sizeof(n->last_err), "publish: %s", natsStatus_GetText(st));
        nats_failed_locked(n);
    }
    pthread_mutex_unlock(&n->mu);
    nats_kick(n); /* health */
}

/* ms from now on CLOCK_MONOTONIC, the clock of the condition variable. */
static struct timespec
nats_deadline(uint64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return sl_timespec_add_ms(ts, ms);
}

static int
nats_fail_open(struct sl_sink *s, const char *what, natsStatus st)
{
    log_warnx("sink \"%s\": %s: %s (%s)", s->cfg->name, what, natsStatus_GetText(st),
              nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : "");
    return -1;
}

/* Waits on the condition variable up to ms, or until detach asks the
 * publishing thread to stop (true then).  Under mu. */
static bool
nats_wait_locked(struct nats_sink *n, uint64_t ms)
{
    struct timespec ts = nats_deadline(ms);

    while (!n->stop && pthread_cond_timedwait(&n->cv, &n->mu, &ts) == 0) {
    }
    return n->stop;
}

/* Waits until detach stops the publishing thread (a lasting failure). */
static void
nats_wait_stop(struct nats_sink *n)
{
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        pthread_cond_wait(&n->cv, &n->mu);
    }
    pthread_mutex_unlock(&n->mu);
}

/* The next setup retry delay: retry_initial doubling to retry_max. */
static uint64_t
nats_setup_backoff(const struct nats_sink *n, uint64_t *d)
{
    *d = *d == 0 ? n->c->retry_initial_ms : *d * 2;
    if (*d > n->c->retry_max_ms) {
        *d = n->c->retry_max_ms;
    }
    return *d;
}

/* A failed first connection: why, counted (a TLS handshake per reason in
 * sluice_tls_handshake_failures_total), logged at most every 10 s.  The
 * publishing thread (nats_GetLastError is per thread). */
static void
nats_connect_failed(struct nats_sink *n, natsStatus st)
{
    const char *text = nats_GetLastError(NULL);
    bool tls = st == NATS_SSL_ERROR || st == NATS_SECURE_CONNECTION_WANTED ||
               st == NATS_SECURE_CONNECTION_REQUIRED;
    uint64_t sup = 0;

    if (text == NULL || text[0] == '\0') {
        text = natsStatus_GetText(st);
    }
    if (tls && n->tls != NULL) {
        enum sl_tls_reason r = SL_TLS_R_OTHER;
        if (st == NATS_SECURE_CONNECTION_WANTED) {
            r = SL_TLS_R_PLAINTEXT;
        } else if (strstr(text, "expired") != NULL || strstr(text, "not yet valid") != NULL) {
            r = SL_TLS_R_EXPIRED;
        } else if (strstr(text, "hostname") != NULL || strstr(text, "mismatch") != NULL) {
            r = SL_TLS_R_NAME;
        } else if (strstr(text, "issuer") != NULL || strstr(text, "self-signed") != NULL ||
                   strstr(text, "self signed") != NULL || strstr(text, "verify") != NULL) {
            /* libnats: "SSL handshake error: 20:unable to get local issuer
             * certificate:depth=0:..." (X509 verify error and its words). */
            r = SL_TLS_R_UNTRUSTED;
        } else if (strstr(text, "version") != NULL || strstr(text, "cipher") != NULL ||
                   strstr(text, "handshake failure") != NULL) {
            /* "alert handshake failure": the server found no protocol
             * version or suite it shares with us (tls_min_version 1.3
             * against a TLS 1.2 server). */
            r = SL_TLS_R_VERSION;
        }
        sl_tls_count(n->tls, r);
    }
    pthread_mutex_lock(&n->mu);
    n->connect_tls = tls;
    snprintf(n->last_err, sizeof(n->last_err), "%s", text);
    pthread_mutex_unlock(&n->mu);
    if (sl_ratelimit_ok(&n->conn_rl, sl_now_ms(), &sup)) {
        log_warnx("sink \"%s\": cannot connect to %s: %s%s; retrying (%" PRIu64
                  " more attempt(s) failed since the last report)",
                  n->s->cfg->name, n->c->url.url, tls ? "TLS: " : "", text, sup);
    }
    nats_kick(n);
}

/* Records a stream check's failure (WHY_NOSTREAM, WHY_PAYLOAD, -1: none)
 * for the writer's health.  The publishing thread. */
static void
nats_setup_why(struct nats_sink *n, int why)
{
    pthread_mutex_lock(&n->mu);
    n->setup_why = why;
    pthread_mutex_unlock(&n->mu);
    nats_kick(n);
}

/* Waits (bounded) until every connection made ran its closed callback,
 * after which libnats calls nothing of ours for them.  True when so.
 * Under mu. */
static bool
nats_wait_closed_locked(struct nats_sink *n)
{
    struct timespec ts = nats_deadline(NATS_CLOSE_WAIT_MS);

    while (n->closed < n->conns && pthread_cond_timedwait(&n->cv, &n->mu, &ts) == 0) {
    }
    return n->closed >= n->conns;
}

/* The next connection attempt uses the options SIGHUP built from new TLS
 * files, if any (nats_reopen).  The publishing thread. */
static void
nats_take_next_opts(struct nats_sink *n)
{
    pthread_mutex_lock(&n->mu);
    natsOptions *next = n->next_opts, *old = NULL;
    if (next != NULL) {
        old = n->opts;
        n->opts = next;
        n->next_opts = NULL;
    }
    pthread_mutex_unlock(&n->mu);
    if (next != NULL) {
        natsOptions_Destroy(old);
        log_info("sink \"%s\": connecting with the TLS files read at the last reload",
                 n->s->cfg->name);
    }
}

/*
 * The publishing thread's start: connects (retrying with the backoff
 * until it succeeds or detach stops it), then checks the stream exists
 * (retrying the same way) and, in batch mode, that a chunk fits the
 * server's max_payload (if not, the sink stays failing and publishes
 * nothing: a configuration error found only once the server answers).
 * Returns 0 when publishing may begin, -1 when stopped.
 */
static int
nats_setup(struct nats_sink *n)
{
    const struct sl_sink_nats_config *c = n->c;
    natsConnection *nc = NULL;
    uint64_t backoff = 0, sup = 0;
    natsStatus st;

    for (;;) {
        nats_take_next_opts(n);
        st = natsConnection_Connect(&nc, n->opts);
        if (st == NATS_OK) {
            break;
        }
        nats_connect_failed(n, st);
        pthread_mutex_lock(&n->mu);
        bool stop = nats_wait_locked(n, sl_fwd_jitter(&n->rng, nats_setup_backoff(n, &backoff)));
        pthread_mutex_unlock(&n->mu);
        if (stop) {
            return -1;
        }
    }
    int64_t max_payload = natsConnection_GetMaxPayload(nc);
    pthread_mutex_lock(&n->mu);
    n->nc = nc;
    n->conns++;
    n->connected = true;
    n->connect_tls = false;
    n->max_payload = max_payload;
    bool stop = n->stop;
    pthread_mutex_unlock(&n->mu);
    nats_kick(n);
    if (stop) {
        return -1;
    }
    log_info("sink \"%s\": connected to %s", n->s->cfg->name, c->url.url);

    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = (int64_t)c->max_inflight * 2 + 64;
    jo.PublishAsync.AckHandler = nats_ack_cb;
    jo.PublishAsync.AckHandlerClosure = n;
    jo.Wait = (int64_t)NATS_JS_WAIT_MS;
    if ((st = natsConnection_JetStream(&n->js, nc, &jo)) != NATS_OK) {
        nats_fail_open(n->s, "JetStream context", st);
        nats_setup_why(n, WHY_REFUSED);
        nats_wait_stop(n);
        return -1;
    }
    /* The stream must exist (it may be created after sluiced starts). */
    backoff = 0;
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        st = js_GetStreamInfo(&si, n->js, c->stream, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (st == NATS_OK) {
            break;
        }
        if (st != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
            /* No answer now (a cluster electing a leader...): the
             * publishes' ExpectStream checks it again. */
            log_warnx("sink \"%s\": stream %s: cannot check it now (%s); going on",
                      n->s->cfg->name, c->stream, natsStatus_GetText(st));
            break;
        }
        if (sl_ratelimit_ok(&n->conn_rl, sl_now_ms(), &sup)) {
            log_warnx("sink \"%s\": stream %s does not exist on %s; waiting for it",
                      n->s->cfg->name, c->stream, c->url.url);
        }
        nats_setup_why(n, WHY_NOSTREAM);
        pthread_mutex_lock(&n->mu);
        stop = nats_wait_locked(n, nats_setup_backoff(n, &backoff));
        pthread_mutex_unlock(&n->mu);
        if (stop) {
            return -1;
        }
    }
    size_t chunk = sl_queue_chunk_bytes(n->s->queue);
    if (c->message == SL_NATS_MESSAGE_BATCH &&
        (int64_t)(chunk + NATS_ID_MAX + 128) > max_payload) {
        log_warnx("sink \"%s\": message = batch: queue \"%s\" chunks of up to %zu bytes exceed "
                  "the server's max_payload (%" PRId64 " bytes); lower chunk_bytes or raise "
                  "max_payload; publishing nothing",
                  n->s->cfg->name, sl_queue_name(n->s->queue), chunk, max_payload);
        nats_setup_why(n, WHY_PAYLOAD);
        nats_wait_stop(n);
        return -1;
    }
    pthread_mutex_lock(&n->mu);
    n->setup_why = -1;
    n->ready = true;
    pthread_mutex_unlock(&n->mu);
    nats_kick(n);
    return 0;
}

/*
 * New TLS files were read (SIGHUP) and the connection was lost since:
 * instead of libnats' reconnection with the files it was made with, the
 * old connection is closed and a new one made with the new files
 * (nats_setup).  What was in flight on the old one gets no answer now:
 * failed, resent (same message ids: the server drops what it stored).
 * An established connection is never closed for new files.  Returns as
 * nats_setup.  The publishing thread, mu not held.
 */
static int
nats_renew(struct nats_sink *n)
{
    pthread_mutex_lock(&n->mu);
    if (n->stop) {
        /* detach may be closing n->nc now: it is detach's (and close's) */
        pthread_mutex_unlock(&n->mu);
        return -1;
    }
    natsConnection *nc = n->nc; /* detach now sees NULL: this thread closes it */
    n->nc = NULL;
    n->connected = false;
    n->ready = false;
    pthread_mutex_unlock(&n->mu);
    log_info("sink \"%s\": connection to %s lost; reconnecting with the new TLS files",
             n->s->cfg->name, n->c->url.url);
    natsConnection_Close(nc); /* no callback of it runs once closed is counted */
    pthread_mutex_lock(&n->mu);
    if (!nats_wait_closed_locked(n)) {
        log_warnx("sink \"%s\": NATS connection not closed within %d ms", n->s->cfg->name,
                  NATS_CLOSE_WAIT_MS);
    }
    pthread_mutex_unlock(&n->mu);
    jsCtx_Destroy(n->js);
    n->js = NULL;
    natsConnection_Destroy(nc);
    pthread_mutex_lock(&n->mu);
    for (size_t c = 0; c < n->count && n->inflight > 0; c++) {
        struct nchunk *k = ring_at(n, c);
        for (uint32_t i = 0; i < k->next; i++) {
            if (k->st[i] == M_INFLIGHT) {
                k->st[i] = M_FAILED;
                k->failed++;
                n->failed++;
                n->inflight--;
                n->inflight_bytes -= msg_len(n, k, i);
            }
        }
    }
    if (n->failed > 0) {
        nats_failed_locked(n);
    }
    pthread_mutex_unlock(&n->mu);
    nats_kick(n); /* health: disconnected */
    return nats_setup(n);
}

/* The publishing thread: connects (nats_setup), then is the only caller
 * of js_PublishMsgAsync. */
static void *
nats_pub_main(void *arg)
{
    struct nats_sink *n = arg;

    if (nats_setup(n) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        struct nchunk *k;
        uint32_t i;
        bool resend;
        if (n->next_opts != NULL && (n->dropped || !n->connected)) {
            pthread_mutex_unlock(&n->mu);
            int rc = nats_renew(n);
            pthread_mutex_lock(&n->mu);
            if (rc < 0) {
                break;
            }
            continue;
        }
        if (!nats_next(n, &k, &i, &resend)) {
            if (n->failed > 0 && n->connected && n->retry_at_ms != 0) {
                uint64_t now = sl_now_ms();
                struct timespec ts = nats_deadline(n->retry_at_ms > now ? n->retry_at_ms - now : 0);
                pthread_cond_timedwait(&n->cv, &n->mu, &ts);
            } else {
                pthread_cond_wait(&n->cv, &n->mu);
            }
            continue;
        }
        uint64_t seq = k->seq;
        uint32_t crc = k->crc;
        const char *data = msg_data(n, k, i);
        size_t len = msg_len(n, k, i);
        pthread_mutex_unlock(&n->mu);
        if (resend) {
            sl_counter_add(&n->s->stats->retries, 1);
        }
        nats_publish(n, seq, crc, i, data, len);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/*
 * Applies what the library threads recorded: commits complete head chunks
 * in order, updates health, arms the resend timer, and wakes the writer
 * if it waits for room.  Writer thread.
 */
static void
nats_apply(struct nats_sink *n)
{
    size_t bytes = 0;
    uint64_t rejected;
    int why, setup_why;
    bool connected, acked, failed, connect_tls;
    char err[160];

    pthread_mutex_lock(&n->mu);
    while (n->count > 0) {
        struct nchunk *k = ring_at(n, 0);
        if (k->next < k->nmsg || k->done < k->nmsg) {
            break;
        }
        bytes += k->len;
        n->ckpt_next = k->seq + 1; /* disk: the next record is the first not committed */
        free(k->off);
        free(k->sent_us);
        free(k->own);
        memset(k, 0, sizeof(*k));
        n->head = (n->head + 1) % n->cap;
        n->count--;
        if (n->pubpos > 0) {
            n->pubpos--; /* a committed chunk was published whole (or empty) */
        }
    }
    rejected = n->rejected;
    n->rejected = 0;
    int64_t max_payload = n->max_payload;
    why = n->why;
    connected = n->connected;
    connect_tls = n->connect_tls;
    setup_why = n->setup_why;
    acked = n->acked_since;
    n->acked_since = false;
    failed = n->failed > 0;
    memcpy(err, n->last_err, sizeof(err));
    bool room = n->count < n->cap;
    bool quiet = n->inflight == 0;
    pthread_mutex_unlock(&n->mu);

    if (bytes > 0) {
        n->commit(n->link_arg, bytes);
    }
    uint64_t now = sl_now_ms(), sup = 0;
    if (rejected > 0 && sl_ratelimit_ok(&n->reject_rl, now, &sup)) {
        log_warnx("sink \"%s\": %" PRIu64 " event(s) rejected: larger than the server's "
                  "max_payload (%" PRId64 " bytes) or the stream's max_msg_size; counted in "
                  "sluice_sink_rejected_events_total",
                  n->s->cfg->name, rejected + sup, max_payload);
    }
    if (!connected && connect_tls) {
        sl_sink_health_fail(n->s, SL_SINK_OP_TLS, 0, WHY_DISCONNECTED);
    } else if (!connected) {
        sl_sink_health_fail(n->s, SL_SINK_OP_CONNECT, ENOTCONN, WHY_DISCONNECTED);
    } else if (setup_why >= 0) {
        sl_sink_health_fail(n->s, SL_SINK_OP_REFUSED, 0, setup_why);
    } else if (failed) {
        if (why < 0) {
            why = WHY_REFUSED;
        }
        sl_sink_health_fail(n->s, SL_SINK_OP_REFUSED, 0, why);
        if (sl_ratelimit_ok(&n->rl, now, &sup)) {
            log_warnx("sink \"%s\": publish to stream %s failed: %s; resending", n->s->cfg->name,
                      n->c->stream, err);
        }
    } else if (acked || quiet) {
        /* An acknowledgement, or connected again with nothing waiting for
         * one (a reconnection while idle). */
        sl_sink_health_ok(n->s);
    }
    if (n->want && room) {
        n->want = false;
        n->wake(n->link_arg);
    }
}

static void
nats_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct nats_sink *n = arg;

    (void)fd;
    (void)what;
    sl_wake_drain(&n->ev);
    /* Cleared before looking: a callback after this point kicks again. */
    atomic_store_explicit(&n->kicked, false, memory_order_seq_cst);
    nats_apply(n);
}

/* The chunk an iovec from the backlog covers: whole chunks only (the sink
 * never reports part of a chunk written).  Memory backlog only: its iovecs
 * point at sl_chunk.data (a disk backlog's point into its read buffer:
 * nats_ring_add_record). */
static struct sl_chunk *
nats_chunk_of(const struct iovec *v)
{
    struct sl_chunk *c =
        (struct sl_chunk *)(void *)((char *)v->iov_base - offsetof(struct sl_chunk, data));
    return c->len == v->iov_len ? c : NULL;
}

/* Appends a chunk (seq, its bytes data and len, about nevents lines) to
 * the ring (writer thread); own (NULL or data's copy) goes with it.  1
 * when added, 0 when the ring is full, -1 on allocation failure (then the
 * caller still owns own). */
static int
nats_ring_add(struct nats_sink *n, uint64_t seq, const char *data, size_t len, size_t nevents,
              char *own, uint32_t crc)
{
    struct nchunk k = {.seq = seq, .crc = crc, .data = data, .len = len};

    if (n->c->message == SL_NATS_MESSAGE_BATCH) {
        k.nmsg = 1;
    } else {
        size_t cap = nevents + 1, i = 0;
        k.off = malloc((cap + 1) * sizeof(*k.off));
        if (k.off == NULL) {
            return -1;
        }
        for (size_t p = 0; p < len;) {
            const char *nl = memchr(data + p, '\n', len - p);
            size_t e = nl != NULL ? (size_t)(nl - data) + 1 : len;
            if (i == cap) {
                uint32_t *o = realloc(k.off, (cap * 2 + 1) * sizeof(*k.off));
                if (o == NULL) {
                    free(k.off);
                    return -1;
                }
                k.off = o;
                cap *= 2;
            }
            k.off[i++] = (uint32_t)p;
            p = e;
        }
        k.off[i] = (uint32_t)len;
        k.nmsg = (uint32_t)i;
    }
    size_t nm = k.nmsg > 0 ? k.nmsg : 1;
    k.sent_us = calloc(nm, sizeof(*k.sent_us) + 1);
    if (k.sent_us == NULL) {
        free(k.off);
        return -1;
    }
    k.st = (uint8_t *)(k.sent_us + nm);
    pthread_mutex_lock(&n->mu);
    if (n->count == n->cap) {
        pthread_mutex_unlock(&n->mu);
        free(k.off);
        free(k.sent_us);
        return 0;
    }
    k.own = own;
    *ring_at(n, n->count) = k;
    n->count++;
    pthread_mutex_unlock(&n->mu);
    return 1;
}

/* Disk queue: one record (an iovec from the disk backlog, borrowed only
 * until the writer's next sent) copied into the ring under the sink's next
 * record number.  As nats_ring_add. */
static int
nats_ring_add_record(struct nats_sink *n, const struct iovec *v)
{
    char *own = malloc(v->iov_len > 0 ? v->iov_len : 1);

    if (own == NULL) {
        return -1;
    }
    memcpy(own, v->iov_base, v->iov_len);
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)own, (uInt)v->iov_len);
    int added = nats_ring_add(n, n->next_rec, own, v->iov_len, v->iov_len / 128, own, crc);
    if (added <= 0) {
        free(own);
        return added;
    }
    n->next_rec++;
    return 1;
}

/* Takes whole chunks into the ring for the publishing thread; never
 * calls libnats (writer thread). */
static enum sl_sink_result
nats_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    struct nats_sink *n = s->priv;
    enum sl_sink_result r = SL_SINK_OK;

    *written = 0;
    for (int i = 0; i < iovcnt; i++) {
        int added;
        if (n->disk) {
            added = nats_ring_add_record(n, &iov[i]);
        } else {
            struct sl_chunk *c = nats_chunk_of(&iov[i]);
            if (c == NULL) {
                log_warnx("sink \"%s\": got part of a chunk (a bug); retrying", s->cfg->name);
                r = SL_SINK_RETRY;
                break;
            }
            added = nats_ring_add(n, c->seq, c->data, c->len, c->nevents, NULL, 0);
        }
        if (added < 0) {
            errno = ENOMEM;
            r = SL_SINK_RETRY;
            break;
        }
        if (added == 0) {
            n->want = true; /* the ring is full: wait for commits */
            r = SL_SINK_WAIT;
            break;
        }
        *written += iov[i].iov_len;
    }
    if (*written > 0) {
        pthread_mutex_lock(&n->mu);
        pthread_cond_signal(&n->cv);
        pthread_mutex_unlock(&n->mu);
    }
    return r;
}

/* The message id's prefix for the current epoch (main or writer thread,
 * before the publishing thread starts). */
static void
nats_set_idprefix(struct nats_sink *n)
{
    snprintf(n->idprefix, sizeof(n->idprefix), "%.64s:%" PRIx64 ":%.64s:", n->host, n->epoch,
             sl_queue_name(n->s->queue));
}

static natsStatus
nats_options_fill(struct nats_sink *n, natsOptions **out)
{
    const struct sl_sink_nats_config *c = n->c;
    natsStatus st = natsOptions_Create(out);
    natsOptions *o = *out;

    if (st == NATS_OK) {
        st = natsOptions_SetServers(o, (const char **)c->url.servers, c->url.nservers);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetMaxReconnect(o, -1);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetCustomReconnectDelay(o, nats_reconnect_delay, n);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetReconnectBufSize(o, NATS_RECONNECT_BUF);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetDisconnectedCB(o, nats_disconnected_cb, n);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetReconnectedCB(o, nats_reconnected_cb, n);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetClosedCB(o, nats_closed_cb, n);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetNoRandomize(o, true);
    }
    if (st == NATS_OK && c->user != NULL) {
        st = natsOptions_SetUserInfo(o, c->user, c->password);
    }
    if (st == NATS_OK && c->creds_file != NULL) {
        st = natsOptions_SetUserCredentialsFromFiles(o, c->creds_file, NULL);
    }
    if (!c->tls.on || st != NATS_OK) {
        return st;
    }
    /* TLS: the server is always verified (libnats verifies unless told
     * to skip, which we never do) against tls_ca_file only, and its name
     * against tls_server_name or the url's host (libnats' default). */
    st = natsOptions_SetSecure(o, true);
    if (st == NATS_OK) {
        st = natsOptions_LoadCATrustedCertificates(o, c->tls.ca_file);
    }
    if (st == NATS_OK && c->tls.cert_file != NULL) {
        st = natsOptions_LoadCertificatesChain(o, c->tls.cert_file, c->tls.key_file);
    }
    /* libnats checks the server's name only when told one (unless built
     * with NATS_FORCE_HOST_VERIFICATION): always tell it, by default the
     * url's host (the config check made sure every server has the same). */
    char host[256];
    const char *name = c->tls.server_name;
    if (name == NULL && sl_nats_url_host(c->url.servers[0], host, sizeof(host)) == 0) {
        name = host;
    }
    if (st == NATS_OK && name == NULL) {
        st = NATS_INVALID_ARG;
    }
    if (st == NATS_OK) {
        st = natsOptions_SetExpectedHostname(o, name);
    }
    if (st == NATS_OK && c->tls.min_version > TLS1_2_VERSION) {
        st = natsOptions_SetCiphers(o, NATS_TLS13_ONLY); /* see DESIGN, TLS */
    } else if (st == NATS_OK && c->tls.ciphers != NULL) {
        st = natsOptions_SetCiphers(o, c->tls.ciphers);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetTimeout(o, (int64_t)c->tls.handshake_timeout_ms);
    }
    return st;
}

/* The libnats options: servers, unlimited reconnection with our backoff,
 * callbacks, credentials and TLS (the files read now) into *out.  No
 * network.  On failure *out is NULL. */
static natsStatus
nats_options(struct nats_sink *n, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus st = nats_options_fill(n, &o);

    if (st != NATS_OK) {
        natsOptions_Destroy(o);
        o = NULL;
    }
    *out = o;
    return st;
}

/*
 * Makes the sink's state and the libnats options; no network (the
 * publishing thread connects: nats_setup), so a server that is down,
 * slow or a black hole never holds the main thread at start or reload.
 */
static int
nats_open(struct sl_sink *s)
{
    const struct sl_sink_nats_config *c = sl_sink_nats_config(s->cfg);
    struct nats_sink *n = calloc(1, sizeof(*n));
    char why[256], label[128];
    natsStatus st;

    if (n == NULL) {
        return -1;
    }
    sl_fwd_seed(&n->rng, n);
    s->priv = n;
    n->s = s;
    n->c = c;
    n->why = -1;
    n->setup_why = -1;
    n->disk = c->disk_queue;
    n->next_rec = 1;
    n->ckpt_next = 1;
    n->rl.interval_ms = NATS_LOG_MS;
    n->reject_rl.interval_ms = NATS_LOG_MS;
    n->conn_rl.interval_ms = NATS_LOG_MS;
    n->reload_rl.interval_ms = NATS_LOG_MS;
    n->ev.fd = -1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (sl_nats_subject(c->subject, sl_queue_name(s->queue), n->subject, sizeof(n->subject), why,
                        sizeof(why)) < 0) {
        log_warnx("sink \"%s\": subject: %s", s->cfg->name, why);
        return -1;
    }
    if (c->sender_id != NULL) {
        snprintf(n->host, sizeof(n->host), "%s", c->sender_id);
    } else if (gethostname(n->host, sizeof(n->host)) < 0) {
        snprintf(n->host, sizeof(n->host), "sluiced");
    }
    n->host[sizeof(n->host) - 1] = '\0';
    for (char *p = n->host; *p != '\0'; p++) {
        if (*p == ':') {
            *p = '_';
        }
    }
    /* Memory queue: this process's start (its chunks are new data).
     * Disk queue: 0, the same in every run, so that a run whose numbering
     * never reached the state file (the writer saves a starting checkpoint
     * before it runs, but a state file from before that, or a failed save,
     * has none) numbers the records from the queue's start as the last run
     * did.  (The epoch stays in the blob, so a later version may make it
     * the queue's own identity.) */
    n->epoch = n->disk ? 0 : (uint64_t)sl_realtime_ns();
    nats_set_idprefix(n);
    snprintf(n->objects[WHY_DISCONNECTED], sizeof(n->objects[0]), "%.300s", c->url.url);
    snprintf(n->objects[WHY_FULL], sizeof(n->objects[0]), "stream %s full", c->stream);
    snprintf(n->objects[WHY_TIMEOUT], sizeof(n->objects[0]),
             "stream %s: no acknowledgement within ack_timeout", c->stream);
    snprintf(n->objects[WHY_REFUSED], sizeof(n->objects[0]),
             "stream %s refused a publish (see the log)", c->stream);
    snprintf(n->objects[WHY_MISROUTED], sizeof(n->objects[0]),
             "subject %.200s is not stored in stream %s", n->subject, c->stream);
    snprintf(n->objects[WHY_NOSTREAM], sizeof(n->objects[0]), "stream %s does not exist on %.200s",
             c->stream, c->url.url);
    snprintf(n->objects[WHY_PAYLOAD], sizeof(n->objects[0]),
             "message = batch: queue chunks exceed the server's max_payload (see the log)");
    n->cap = sl_queue_max_chunks(s->queue) + 2;
    n->ring = calloc(n->cap, sizeof(*n->ring));
    if (n->ring == NULL || sl_wake_init(&n->ev) < 0) {
        return -1;
    }
    if (c->tls.on) {
        /* libnats makes its own SSL_CTX from the same files; this one
         * only counts handshake failures for /metrics (and checked the
         * files: a bad one fails here, with OpenSSL's words). */
        snprintf(label, sizeof(label), "sink \"%s\"", s->cfg->name);
        n->tls = sl_tls_new(&c->tls, SL_TLS_CLIENT, label, why, sizeof(why));
        if (n->tls == NULL) {
            log_warnx("%s: %s", label, why);
            return -1;
        }
    }
    if ((st = nats_Open(-1)) != NATS_OK) {
        return nats_fail_open(s, "nats_Open", st);
    }
    if ((st = nats_options(n, &n->opts)) != NATS_OK) {
        return nats_fail_open(s, "NATS options", st);
    }
    return 0;
}

/* A failed attach leaves nothing on the writer's event_base (a sink
 * whose attach failed is closed without a detach). */
static void
nats_attach_undo(struct nats_sink *n)
{
    if (n->wake_ev != NULL) {
        event_free(n->wake_ev);
        n->wake_ev = NULL;
    }
    n->base = NULL;
}

static int
nats_attach(struct sl_sink *s, const struct sl_sink_link *link)
{
    struct nats_sink *n = s->priv;

    n->base = link->base;
    n->wake = link->wake;
    n->commit = link->commit;
    n->link_arg = link->arg;
    n->wake_ev = event_new(link->base, n->ev.fd, EV_READ | EV_PERSIST, nats_wake_cb, n);
    if (n->wake_ev == NULL || event_add(n->wake_ev, NULL) < 0) {
        nats_attach_undo(n);
        return -1;
    }
    if (sl_thread_start(&n->pub, nats_pub_main, n) < 0) {
        log_warn("sink \"%s\": publishing thread", s->cfg->name);
        nats_attach_undo(n);
        return -1;
    }
    pthread_mutex_lock(&n->mu);
    bool up = n->connected;
    pthread_mutex_unlock(&n->mu);
    if (!up) {
        sl_sink_health_fail(s, SL_SINK_OP_CONNECT, ENOTCONN, WHY_DISCONNECTED);
    }
    return 0;
}

/*
 * Stops the publishing thread and closes the connection: after it no
 * libnats callback of n runs.  Idempotent (detach after a hand-over calls
 * it again).  Writer thread.
 */
static void
nats_quiesce(struct sl_sink *s)
{
    struct nats_sink *n = s->priv;

    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cv);
    natsConnection *nc = n->nc;
    pthread_mutex_unlock(&n->mu);
    /* Stop the library's threads: no callback runs after this (a publish
     * or stream check the publishing thread is inside fails now).  A
     * first connection attempt under way ends within libnats' timeout;
     * the thread then sees stop. */
    if (nc != NULL) {
        natsConnection_Close(nc);
    }
    sl_thread_join(&n->pub);
    if (n->nc != NULL) {
        if (nc == NULL) {
            natsConnection_Close(n->nc); /* connected after stop was set */
        }
        /* libnats runs the disconnected and closed callbacks on its own
         * thread after Close returns: wait for the last one (bounded). */
        pthread_mutex_lock(&n->mu);
        bool closed = nats_wait_closed_locked(n);
        pthread_mutex_unlock(&n->mu);
        if (!closed) {
            log_warnx("sink \"%s\": NATS connection not closed within %d ms", s->cfg->name,
                      NATS_CLOSE_WAIT_MS);
        }
    }
}

static void
nats_detach(struct sl_sink *s)
{
    struct nats_sink *n = s->priv;

    if (n == NULL) {
        return;
    }
    nats_quiesce(s);
    if (n->wake_ev != NULL) {
        event_free(n->wake_ev);
        n->wake_ev = NULL;
    }
}

static enum sl_sink_result
nats_flush(struct sl_sink *s, bool final)
{
    struct nats_sink *n = s->priv;

    if (final) {
        nats_apply(n);
    }
    return SL_SINK_OK;
}

/*
 * SIGHUP (writer thread): with tls = on the certificate, key and CA files
 * are read again, checked (an OpenSSL context built from them, as at
 * start: sl_tls_reload) and, if good, made into libnats options that the
 * next connection uses (nats_renew: after the connection in use is lost;
 * it is not closed for this).  A bad file keeps the files in use; the log
 * says why and sluice_tls_reload_failures_total counts it.
 */
static void
nats_reopen(struct sl_sink *s)
{
    struct nats_sink *n = s->priv;
    natsOptions *o = NULL;
    uint64_t sup = 0;

    if (n == NULL || n->tls == NULL) {
        return;
    }
    natsStatus st = nats_options(n, &o);
    if (st != NATS_OK) {
        /* OpenSSL took them (sl_tls_new at start) but libnats does not. */
        atomic_fetch_add_explicit(&sl_tls_stats(n->tls)->reload_failures, 1,
                                  memory_order_relaxed);
        if (sl_ratelimit_ok(&n->reload_rl, sl_now_ms(), &sup)) {
            log_warnx("sink \"%s\": TLS reload failed, keeping the certificates in use: %s (%s)",
                      s->cfg->name, natsStatus_GetText(st),
                      nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : "");
        }
        return;
    }
    if (sl_tls_reload(n->tls) < 0) { /* logged and counted */
        natsOptions_Destroy(o);
        return;
    }
    pthread_mutex_lock(&n->mu);
    natsOptions *old = n->next_opts;
    n->next_opts = o;
    n->dropped = false;
    pthread_cond_signal(&n->cv); /* disconnected now: reconnect with them */
    pthread_mutex_unlock(&n->mu);
    natsOptions_Destroy(old);
}

/* A lost wake costs at most a second: while chunks are in flight (their
 * acknowledgements to apply) or the sink is failing (its recovery to
 * notice), the tick applies what the library threads recorded.  Idle and
 * healthy, nothing waits for it. */
static uint64_t
nats_tick(struct sl_sink *s, uint64_t now_ms)
{
    struct nats_sink *n = s->priv;

    nats_apply(n);
    pthread_mutex_lock(&n->mu);
    bool busy = n->count > 0;
    pthread_mutex_unlock(&n->mu);
    return busy || atomic_load(&s->health.failing) ? 1000 : SL_SINK_TICK_NONE;
}

static void
nats_close(struct sl_sink *s)
{
    struct nats_sink *n = s->priv;

    if (n == NULL) {
        return;
    }
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->opts);
    natsOptions_Destroy(n->next_opts);
    for (size_t i = 0; n->ring != NULL && i < n->count; i++) {
        free(ring_at(n, i)->off);
        free(ring_at(n, i)->sent_us);
        free(ring_at(n, i)->own);
    }
    sl_tls_free(n->tls);
    free(n->ring);
    if (n->ev.fd >= 0) {
        sl_wake_fini(&n->ev);
    }
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
    s->priv = NULL;
}

/*
 * Disk queue: the numbering persisted with the queue's committed position.
 * "NAT1", the epoch (u64) and the number of the first record not committed
 * (u64), little endian.  The sink commits whole records in order, so the
 * committed position is that record's start, where a restart replays
 * from: the replayed records get the numbers (and so the message ids)
 * they had, and the server drops what it already stored.  Writer thread.
 */
#define NATS_CKPT_LEN 20

static size_t
nats_checkpoint(struct sl_sink *s, uint8_t *buf, size_t cap)
{
    struct nats_sink *n = s->priv;

    if (!n->disk || cap < NATS_CKPT_LEN) {
        return 0;
    }
    memcpy(buf, "NAT1", 4);
    sl_put_le64(buf + 4, n->epoch);
    sl_put_le64(buf + 12, n->ckpt_next);
    return NATS_CKPT_LEN;
}

static void
nats_restore(struct sl_sink *s, const uint8_t *blob, size_t len)
{
    struct nats_sink *n = s->priv;

    if (!n->disk || len == 0) {
        return; /* a queue without our numbering yet: from 1 at its start */
    }
    if (len != NATS_CKPT_LEN || memcmp(blob, "NAT1", 4) != 0) {
        log_warnx("sink \"%s\": the queue's state holds no message numbering of this version; "
                  "numbering afresh (what the last run published and did not see acknowledged "
                  "may be stored twice)",
                  s->cfg->name);
        return;
    }
    n->epoch = sl_get_le64(blob + 4);
    n->next_rec = sl_get_le64(blob + 12);
    n->ckpt_next = n->next_rec;
    nats_set_idprefix(n);
    log_info("sink \"%s\": message numbering from the queue's state: epoch %" PRIx64
             ", next record %" PRIu64,
             s->cfg->name, n->epoch, n->next_rec);
}

static struct sl_tls *
nats_tls(const struct sl_sink *s)
{
    const struct nats_sink *n = s->priv;

    return n != NULL ? n->tls : NULL;
}

/* sl_sink_ops.object: the url, or the reason a publish failed. */
static const char *
nats_object(const struct sl_sink *s, int target)
{
    const struct nats_sink *n = s->priv;

    return n != NULL && target >= 0 && target < WHY_N ? n->objects[target] : NULL;
}

/* ---- hand-over on a config reload ------------------------------------------------------- */

/* Why a sink whose config changed from `from` to `to` cannot hand its
 * pending messages over (NULL: it can).  The successor republishes them
 * under the same message ids, so the ids' parts and the stream whose
 * duplicate filter drops what the old one stored must stay; the url,
 * subject, credentials, TLS files and the limits may change.  A disk
 * queue is no reason (handover_disk: its records are copies the ring
 * owns, and their numbering moves with them).  Pure. */
static const char *
nats_handover_refusal(const struct sl_sink_config *from, const struct sl_sink_config *to)
{
    const struct sl_sink_nats_config *a = sl_sink_nats_config(from);
    const struct sl_sink_nats_config *b = sl_sink_nats_config(to);

    if ((a->sender_id == NULL) != (b->sender_id == NULL) ||
        (a->sender_id != NULL && strcmp(a->sender_id, b->sender_id) != 0)) {
        return "its sender_id changed (a republish under other message ids would not be "
               "dropped as a duplicate)";
    }
    if (a->message != b->message) {
        return "its message mode changed (the message ids number other messages)";
    }
    if (strcmp(a->stream, b->stream) != 0) {
        return "its stream changed (the new stream's duplicate filter does not know what the "
               "old one stored; the old one drains into its stream instead)";
    }
    return NULL;
}

static bool
nats_handover_ok(const struct sl_sink_config *from, const struct sl_sink_config *to)
{
    return nats_handover_refusal(from, to) == NULL;
}

/* At most this long a hand-over waits for the acknowledgements of what
 * the old connection has in flight (bounded by ack_timeout too): what is
 * acknowledged then is committed, not republished, which matters when the
 * new url reaches another server (its stream cannot drop what the old one
 * stored).  A server that does not answer costs the writer this much. */
#define NATS_HANDOVER_SETTLE_MS 500

/* The publishing thread publishes nothing more; what is in flight on a
 * live connection gets its acknowledgements (bounded).  Writer thread. */
static void
nats_settle(struct nats_sink *n)
{
    uint64_t ms = n->c->ack_timeout_ms < NATS_HANDOVER_SETTLE_MS ? n->c->ack_timeout_ms
                                                                 : NATS_HANDOVER_SETTLE_MS;
    struct timespec end = nats_deadline(ms);

    pthread_mutex_lock(&n->mu);
    n->stop = true; /* the publishing thread returns after the publish it is in */
    pthread_cond_broadcast(&n->cv);
    while (n->connected && n->inflight > 0) {
        /* Short slices: the acknowledgement's signal may wake the
         * publishing thread, which is on its way out, rather than us. */
        struct timespec now, ts = nats_deadline(10);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) {
            break;
        }
        (void)pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    pthread_mutex_unlock(&n->mu);
}

/* An attached sink whose publishing thread a hand-over stopped got its
 * messages back (its successor could not attach): a new connection and
 * publishing thread, as at attach.  Writer thread. */
static void
nats_resume(struct sl_sink *s)
{
    struct nats_sink *n = s->priv;

    jsCtx_Destroy(n->js);
    n->js = NULL;
    natsConnection_Destroy(n->nc); /* closed: nats_quiesce */
    pthread_mutex_lock(&n->mu);
    n->nc = NULL;
    n->connected = false;
    n->ready = false;
    n->stop = false;
    pthread_mutex_unlock(&n->mu);
    if (sl_thread_start(&n->pub, nats_pub_main, n) < 0) {
        log_warn("sink \"%s\": publishing thread (it publishes nothing until a restart)",
                 s->cfg->name);
        return;
    }
    sl_sink_health_fail(s, SL_SINK_OP_CONNECT, ENOTCONN, WHY_DISCONNECTED);
    nats_kick(n);
}

/*
 * A config reload replaces the sink (nats_handover_ok): the old one stops
 * publishing, gets what is in flight acknowledged if its server answers
 * soon (nats_settle), closes its connection and commits what is complete;
 * every chunk it holds then moves to the new one with its messages' state
 * and the message ids' prefix (sender, epoch, queue: the same ids): what
 * was acknowledged stays done, what was published and not acknowledged is
 * republished first (JetStream drops what it stored within its duplicate
 * window), then what was never published.  The new one connects (its
 * url, subject, credentials) once attached.  Also the way back, when the
 * new one could not attach (writer.c): `to` is then the old one, attached
 * and stopped, which connects again.  Writer thread.
 *
 * On a disk queue (handover_disk) the same: the writer keeps the sink's
 * reader, under its name, with its send and committed positions; each
 * chunk in the ring is a copy of its record (nchunk.own, made at write:
 * the backlog's read buffer is not kept), so the ring moves whole; and the
 * record numbering moves with it (next_rec: the number the next record
 * read gets; ckpt_next: the one the queue's state gets with the committed
 * position, nats_checkpoint), so the records in flight keep their ids
 * (CRC:SEQ) and the ones read next continue them, in this run and, from
 * the state file, after a crash.
 */
static void
nats_handover(struct sl_sink *from, struct sl_sink *to)
{
    struct nats_sink *o = from->priv, *k = to->priv;
    size_t republish = 0;

    nats_settle(o);
    nats_quiesce(from); /* no callback of o runs from here on */
    if (o->commit != NULL) {
        nats_apply(o); /* complete chunks committed through the same writer state */
    }
    for (size_t c = 0; c < o->count; c++) {
        struct nchunk *ch = ring_at(o, c);
        for (uint32_t i = 0; i < ch->next; i++) {
            if (ch->st[i] == M_INFLIGHT) {
                ch->st[i] = M_FAILED;
                ch->failed++;
                o->failed++;
            }
        }
    }
    republish = o->failed;
    if (o->count > 0) {
        log_info("sink \"%s\": hands %zu chunk(s) over to its new config (%zu message(s) "
                 "published and not acknowledged, republished under the same ids)",
                 from->cfg->name, o->count, republish);
    }
    struct nchunk *ring = k->ring;
    size_t cap = k->cap;
    k->ring = o->ring;
    k->cap = o->cap;
    k->head = o->head;
    k->count = o->count;
    k->pubpos = o->pubpos;
    k->failed = o->failed;
    k->round_left = 0;
    k->backoff_ms = 0;
    k->retry_at_ms = k->failed > 0 ? sl_now_ms() : 0; /* republished at once */
    k->inflight = 0;
    k->inflight_bytes = 0;
    k->rejected += o->rejected;
    k->epoch = o->epoch;
    k->next_rec = o->next_rec;
    k->ckpt_next = o->ckpt_next;
    memcpy(k->idprefix, o->idprefix, sizeof(k->idprefix));
    o->ring = ring;
    o->cap = cap;
    o->head = o->count = o->pubpos = 0;
    o->failed = o->inflight = o->inflight_bytes = 0;
    o->rejected = 0;
    o->retry_at_ms = 0;
    if (k->base != NULL && k->stop) {
        nats_resume(to);
    }
}

const struct sl_sink_ops sl_sink_nats_ops = {
    .handover_ok = nats_handover_ok,
    .handover_refusal = nats_handover_refusal,
    .handover = nats_handover,
    .handover_disk = true,
    .type = "nats",
    .acks = true,
    .object = nats_object,
    .open = nats_open,
    .attach = nats_attach,
    .detach = nats_detach,
    .write = nats_write,
    .flush = nats_flush,
    .reopen = nats_reopen,
    .tick = nats_tick,
    .close = nats_close,
    .checkpoint = nats_checkpoint,
    .restore = nats_restore,
    .tls = nats_tls,
};
