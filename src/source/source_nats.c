/*
 * source_nats — reads a JetStream stream through a durable pull consumer
 * and hands its events to the pipeline; acknowledges a message to
 * JetStream only once the chunk holding its events is durable in sluice's
 * queue (sl_queue_durable_seq: committed by every sink for a memory queue).
 *
 * DESIGN
 * Threads.  Every producer thread runs one instance; each instance has
 * its own connection and pull subscription bound to the same durable
 * consumer, so the instances (and other sluiced processes sharing the
 * consumer) split the work: JetStream hands each message to one fetcher
 * and redelivers it after the consumer's AckWait if it is not
 * acknowledged.  libnats blocks in natsConnection_Connect and
 * natsSubscription_Fetch, so connecting and fetching run on a thread of
 * the instance's own (the fetch thread); the producer thread (and the
 * main thread, which starts instances at start-up and at a reload) never
 * waits on the network.
 *
 * Reload (docs/configuration.md, "Reload").  A source a reload adds is
 * started on every producer thread as at start-up: its fetch threads
 * connect in the background.  One it removes stops as at a stop: fetching
 * ends (a fetch in flight returns within FETCH_WAIT_MS), what was fetched
 * and not emitted is given back (Nak: redelivered at once), and the
 * removal is answered only once every emitted list is durable in the queue
 * and acknowledged; the connection closes with fini().  A changed one:
 * the new one starts, then the old one is removed as above (for that
 * moment both may fetch from the same durable consumer, if its name
 * stays: JetStream hands each message to one of them).
 *
 * Fetching around a libnats bug.  libnats before 3.8.3 (Debian ships
 * 3.4.1) writes past the list it allocates in a fetch that starts with
 * messages already waiting in the subscription (left from an earlier
 * fetch whose wait ended as the server still sent) when more than half
 * the batch of them are user messages: it asks the server for the rest and
 * then counts to the smaller number (nats.c #749; seen here as an ASan
 * report and as corrupted lists after the aggregator's restarts).  So a
 * fetch never waits with a full batch: a batch fetch is no_wait (the server
 * answers at once with what it has and ends the request, nothing comes
 * late), and waiting for the stream to have messages is a fetch of one
 * (FETCH_WAIT_MS), which leaves at most one message behind; and with
 * anything waiting in the subscription the next fetch is of one.  A batch
 * of one cannot overflow; a batch of n after at most one left can not
 * either.
 *
 * Hand-off.  The fetch thread fetches up to `batch` messages (see above),
 * puts the list in a one-list slot and writes the
 * instance's eventfd (what bind() returned: s->fd), which the producer's
 * event_base watches.  The producer thread takes the list, splits every
 * message's payload into lines (a sluice nats sink in batch mode sends
 * several NDJSON lines per message) and emits them through its lane.  The
 * fetch thread waits (a condition variable) while the slot is full or
 * MAX_PENDING lists wait for their acknowledgement, so:
 *
 * Backpressure.  No fetch while the queue is full: an emit that finds no
 * room pauses the instance (sl_lane_wait); the list stays in the producer's
 * hands, the slot stays full, the fetch thread waits.
 *
 * Acknowledgement.  When a list is emitted, sl_lane_seal() ends the lane's
 * chunk and gives its seq; the list waits in a FIFO with that seq and the
 * instance waits on its durable waiter (sl_lane_wait_durable, woken by the
 * writer without polling).  When the queue is durable up to a list's seq,
 * its messages are acknowledged (natsMsg_Ack) and freed.  A crash before
 * that: JetStream redelivers after AckWait (at-least-once: duplicates are
 * possible, losses are not).  A stop: lists not yet emitted are
 * negatively acknowledged (natsMsg_Nak: redelivered at once, to another
 * instance if one runs); once every emitted list is acknowledged, the
 * fetch thread flushes the connection (at most FLUSH_MS) before it ends, so
 * the acknowledgements libnats buffers reach the server before fini()
 * closes it (else the server would redeliver messages already written).
 */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec/encode.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "sluice/stats.h"
#include "source/lane.h"
#include "source/source_nats.h"

#define FETCH_WAIT_MS 500 /* a fetch returns after this with what it has; bounds a stop */
#define FETCH_NOWAIT_MS 10000 /* a no_wait fetch: the server's answer, at most this */
#define FETCH_MAX_BYTES (16 * 1024 * 1024) /* payload bytes per fetch at most */
#define MAX_PENDING 8                      /* lists emitted and waiting to be durable */
#define RETRY_MS 500 /* subscription set-up or fetch failure: try again after */
#define FLUSH_MS 2000 /* at a stop: the last acknowledgements sent, at most */

struct pend {
    natsMsg **msgs;
    int n;
    uint64_t seq;
};

struct nsrc {
    struct sl_source *s;
    const struct sl_source_nats_config *c;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub; /* the fetch thread's */

    pthread_t th;
    bool th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu. */
    natsMsgList slot;
    bool slot_full;
    int pending; /* lists in the FIFO below */
    bool stop;
    bool loop_done; /* the fetch thread fetches no more (a stop) */
    bool settled;   /* stopping: every list acknowledged or given back (producer) */
    bool forced;    /* a forced stop: the thread ends without flushing */
    bool th_done;
    bool nc_closed; /* the connection's closed callback ran: libnats calls nothing more */
    char name[64];  /* the source's name, for the connected callback (see nsrc_close_nc) */

    /* Producer thread. */
    struct event *ev;
    natsMsgList cur; /* the list being emitted */
    bool have_cur;
    int cur_i;      /* message */
    size_t cur_off; /* byte in its payload */
    struct sl_waiter waiter;
    struct sl_durable_waiter dw;
    struct pend fifo[MAX_PENDING];
    int fhead, fcount;
    struct sl_ratelimit rl;
};

static void nsrc_pump(struct nsrc *x);

static void
nsrc_kick(struct nsrc *x)
{
    uint64_t one = 1;
    ssize_t r = write(x->s->fd, &one, sizeof(one));
    (void)r; /* EAGAIN: the counter is already non-zero */
}

static void
msgs_settle(natsMsg **m, int n, bool ack)
{
    for (int i = 0; i < n; i++) {
        if (m[i] != NULL) {
            if (ack) {
                natsMsg_Ack(m[i], NULL);
            } else {
                natsMsg_Nak(m[i], NULL);
            }
            natsMsg_Destroy(m[i]);
        }
    }
    free(m);
}

/* Makes sure the durable consumer exists and binds a pull subscription to
 * it.  Fetch thread. */
static natsStatus
nsrc_subscribe(struct nsrc *x)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetConsumerInfo(&ci, x->js, x->c->stream, x->c->consumer, NULL, &jerr);

    if (st == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = x->c->consumer;
        cc.AckPolicy = js_AckExplicit;
        cc.AckWait = (int64_t)x->c->ack_wait_ms * 1000000;
        cc.FilterSubject = x->c->filter_subject;
        st = js_AddConsumer(&ci, x->js, x->c->stream, &cc, NULL, &jerr);
        if (st == NATS_OK) {
            log_info("source \"%s\": created durable consumer %s on stream %s", x->s->cfg->name,
                     x->c->consumer, x->c->stream);
        }
    }
    jsConsumerInfo_Destroy(ci);
    if (st != NATS_OK) {
        return st;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = x->c->stream;
    so.Consumer = x->c->consumer;
    return js_PullSubscribe(&x->sub, x->js, x->c->filter_subject, x->c->consumer, NULL, &so, &jerr);
}

/* libnats' thread: the connection that came up in the background. */
static void
nsrc_connected_cb(natsConnection *nc, void *closure)
{
    const struct nsrc *x = closure;
    (void)nc;
    log_info("source \"%s\": connected to NATS", x->name);
}

/* libnats' thread: the connection's last callback (nsrc_close_nc). */
static void
nsrc_closed_cb(natsConnection *nc, void *closure)
{
    struct nsrc *x = closure;
    (void)nc;
    pthread_mutex_lock(&x->mu);
    x->nc_closed = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

#define CLOSE_WAIT_MS 5000 /* fini: for the connection's closed callback */

/*
 * Closes the connection and waits (bounded) until its closed callback ran.
 * libnats runs a connection's callbacks on its one callback thread, in the
 * order they were posted, after the call that posted them returned: a
 * connection that came up in the background (RetryOnFailedConnect) posts
 * its connected callback from the reconnect thread, and a
 * natsConnection_Destroy right after it returns before that callback
 * ran, so freeing x then let it read freed memory (a source removed on a
 * reload as its connection came up).  Close posts the closed callback
 * after every earlier one (it joins the reconnect thread first), so once
 * that ran none of x is used.  True when so; false on timeout (x must not
 * be freed then).  Thread: the one that runs fini, the fetch thread joined.
 */
static bool
nsrc_close_nc(struct nsrc *x)
{
    if (x->nc == NULL) {
        return true; /* never made (a failed connect destroys its own, no callback) */
    }
    natsConnection_Close(x->nc);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts = sl_timespec_add_ms(ts, CLOSE_WAIT_MS);
    pthread_mutex_lock(&x->mu);
    while (!x->nc_closed && pthread_cond_timedwait(&x->cv, &x->mu, &ts) == 0) {
    }
    bool closed = x->nc_closed;
    pthread_mutex_unlock(&x->mu);
    return closed;
}

/*
 * Connects (libnats then reconnects by itself: no limit, 250 ms apart) and
 * makes the JetStream context.  Fetch thread: natsConnection_Connect tries
 * every url once before it returns (NATS_NOT_YET_CONNECTED: none answered,
 * libnats goes on in the background: nsrc_connected_cb), which may take a
 * connect timeout (2 s) per url that accepts and never answers; a producer
 * thread must not wait for that, nor the main thread (a reload adds a
 * source while the others run).
 */
static natsStatus
nsrc_connect(struct nsrc *x)
{
    natsStatus st = NATS_OK;
    if (x->nc == NULL) {
        st = natsConnection_Connect(&x->nc, x->opts);
        if (st == NATS_NOT_YET_CONNECTED) {
            log_info("source \"%s\": no NATS server answers at %s yet; connecting in the "
                     "background",
                     x->s->cfg->name, x->c->url.url);
            st = NATS_OK;
        } else if (st != NATS_OK) {
            natsConnection_Destroy(x->nc);
            x->nc = NULL;
        }
    }
    if (st == NATS_OK && x->js == NULL) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        st = natsConnection_JetStream(&x->js, x->nc, &jo);
    }
    return st;
}

/* Waits on cv for at most ms, or until a stop.  Under mu. */
static void
nsrc_wait_ms(struct nsrc *x, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts = sl_timespec_add_ms(ts, ms);
    if (!x->stop) {
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
    }
}

static void *
nsrc_fetch_main(void *arg)
{
    struct nsrc *x = arg;
    uint64_t sup = 0;

    bool idle = true; /* the last fetch found nothing: wait with a fetch of one */
    pthread_mutex_lock(&x->mu);
    while (!x->stop) {
        if (x->slot_full || x->pending >= MAX_PENDING) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        pthread_mutex_unlock(&x->mu);
        natsStatus st = nsrc_connect(x);
        if (st == NATS_OK && x->sub == NULL) {
            st = nsrc_subscribe(x);
        }
        natsMsgList list = {0};
        if (st == NATS_OK) {
            /* Bounded in bytes too: an answer larger than the server's
             * pending limit for a connection (64 MiB by default; batch
             * messages of big chunks) is dropped by it as a slow consumer
             * and comes again only after AckWait. */
            int waiting = 0;
            (void)natsSubscription_GetPending(x->sub, &waiting, NULL);
            jsFetchRequest fr;
            jsFetchRequest_Init(&fr);
            fr.MaxBytes = FETCH_MAX_BYTES;
            if (waiting > 0 || idle) {
                /* One (see DESIGN): what waits in the subscription, or the
                 * first message the stream gets, waiting for it. */
                fr.Batch = 1;
                fr.NoWait = waiting > 0;
                fr.Expires = (int64_t)(waiting > 0 ? FETCH_NOWAIT_MS : FETCH_WAIT_MS) * 1000000;
            } else {
                fr.Batch = (int)x->c->batch;
                fr.NoWait = true;
                fr.Expires = (int64_t)FETCH_NOWAIT_MS * 1000000;
            }
            st = natsSubscription_FetchRequest(&list, x->sub, &fr);
            idle = !(st == NATS_OK && list.Count > 0);
        }
        pthread_mutex_lock(&x->mu);
        if (st == NATS_OK && list.Count > 0) {
            if (x->stop) {
                pthread_mutex_unlock(&x->mu);
                msgs_settle(list.Msgs, list.Count, false);
                pthread_mutex_lock(&x->mu);
                break;
            }
            x->slot = list;
            x->slot_full = true;
            nsrc_kick(x);
            continue;
        }
        natsMsgList_Destroy(&list);
        if (st == NATS_OK || st == NATS_TIMEOUT || st == NATS_NOT_FOUND) {
            continue; /* nothing there (no_wait answers 404): wait with a fetch of one */
        }
        if (sl_ratelimit_ok(&x->rl, sl_now_ms(), &sup)) {
            log_warnx("source \"%s\": stream %s consumer %s: %s (%s); retrying", x->s->cfg->name,
                      x->c->stream, x->c->consumer, natsStatus_GetText(st),
                      nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : "");
        }
        if (x->sub != NULL && (st == NATS_INVALID_SUBSCRIPTION || st == NATS_CONNECTION_CLOSED ||
                               st == NATS_NOT_FOUND)) {
            pthread_mutex_unlock(&x->mu);
            natsSubscription_Destroy(x->sub);
            pthread_mutex_lock(&x->mu);
            x->sub = NULL;
        }
        nsrc_wait_ms(x, RETRY_MS);
    }
    /* The producer settles every list (acknowledged once durable, or given
     * back); then what libnats still buffers of those acknowledgements
     * goes out before fini() closes the connection, or the server would
     * redeliver messages that are written. */
    x->loop_done = true;
    nsrc_kick(x);
    while (!x->settled && !x->forced) {
        pthread_cond_wait(&x->cv, &x->mu);
    }
    if (!x->forced && x->nc != NULL) {
        pthread_mutex_unlock(&x->mu);
        natsStatus st = natsConnection_FlushTimeout(x->nc, FLUSH_MS);
        if (st != NATS_OK && sl_ratelimit_ok(&x->rl, sl_now_ms(), &sup)) {
            log_warnx("source \"%s\": the last acknowledgements may not have reached the "
                      "server (%s): JetStream redelivers those messages after AckWait",
                      x->s->cfg->name, natsStatus_GetText(st));
        }
        pthread_mutex_lock(&x->mu);
    }
    x->th_done = true;
    pthread_mutex_unlock(&x->mu);
    nsrc_kick(x);
    return NULL;
}

/* The oldest pending list is durable: acknowledge every list whose chunk
 * is at or below the position reached; wait for the next.  Producer thread. */
static void
nsrc_durable_cb(struct sl_durable_waiter *w)
{
    struct nsrc *x = w->src->priv;
    int acked = 0;

    while (x->fcount > 0 && x->fifo[x->fhead].seq <= w->seq) {
        struct pend *p = &x->fifo[x->fhead];
        msgs_settle(p->msgs, p->n, true);
        memset(p, 0, sizeof(*p));
        x->fhead = (x->fhead + 1) % MAX_PENDING;
        x->fcount--;
        acked++;
    }
    if (x->fcount > 0) {
        sl_lane_wait_durable(x->s, &x->dw, x->fifo[x->fhead].seq);
    }
    if (acked > 0) {
        pthread_mutex_lock(&x->mu);
        x->pending -= acked;
        pthread_cond_broadcast(&x->cv);
        pthread_mutex_unlock(&x->mu);
    }
    if (x->fcount == 0) {
        sl_lane_idle(x->s);
    }
    if (acked > 0 && !x->waiter.waiting) {
        nsrc_pump(x); /* a list may wait in the slot for room in the FIFO */
    }
}

static void
nsrc_resume_cb(struct sl_waiter *w)
{
    struct nsrc *x = w->src->priv;

    sl_counter_add(&x->s->stats->resumes, 1);
    nsrc_pump(x);
}

/* Emits the current list from where it stopped.  True when all of it went
 * (it is then in the FIFO), false when paused for room. */
static bool
nsrc_emit_cur(struct nsrc *x)
{
    struct sl_source *s = x->s;
    struct sl_tally t = {0};
    char fields[SL_FIELDS_MAX];
    uint64_t bytes = 0;
    bool paused = false;

    sl_lane_clock(s);
    struct sl_peer peer;
    sl_peer_from_text(&peer, "nats");
    size_t flen = sl_lane_fields(s, &peer, fields);
    while (x->cur_i < x->cur.Count && !paused) {
        natsMsg *m = x->cur.Msgs[x->cur_i];
        const char *d = natsMsg_GetData(m);
        size_t len = (size_t)natsMsg_GetDataLength(m);
        while (x->cur_off < len) {
            const char *nl = memchr(d + x->cur_off, '\n', len - x->cur_off);
            size_t end = nl != NULL ? (size_t)(nl - d) : len;
            if (end > x->cur_off) {
                enum sl_emit r = sl_lane_emit(s, d + x->cur_off, end - x->cur_off, fields, flen,
                                              SL_ACQUIRE_TCP, &t);
                if (r == SL_EMIT_NO_SPACE) {
                    paused = true;
                    break;
                }
                bytes += end - x->cur_off + 1;
            }
            x->cur_off = nl != NULL ? end + 1 : len;
        }
        if (!paused) {
            x->cur_i++;
            x->cur_off = 0;
        }
    }
    sl_counter_add(&s->stats->bytes_in, bytes);
    sl_counter_add(&s->stats->events_in, t.events);
    sl_counter_add(&s->stats->invalid, t.invalid);
    sl_counter_add(&s->stats->oversize, t.too_large);
    sl_lane_report(s, "(nats)", &t, 0);
    if (paused) {
        sl_counter_add(&s->stats->pauses, 1);
        sl_lane_wait(s, &x->waiter);
        return false;
    }
    /* Every event of the list is in a chunk numbered seq or lower. */
    uint64_t seq = sl_lane_seal(s);
    struct pend *p = &x->fifo[(x->fhead + x->fcount) % MAX_PENDING];
    p->msgs = x->cur.Msgs;
    p->n = x->cur.Count;
    p->seq = seq;
    x->fcount++;
    memset(&x->cur, 0, sizeof(x->cur));
    x->have_cur = false;
    if (!x->dw.waiting) {
        /* seq 0: nothing was ever pushed (every line was refused and
         * counted): nothing to wait for, the callback acknowledges. */
        sl_lane_wait_durable(s, &x->dw, x->fifo[x->fhead].seq);
    }
    return true;
}

/* Takes fetched lists and emits them while there is room.  Producer thread. */
static void
nsrc_pump(struct nsrc *x)
{
    for (int turns = 0; turns < 4; turns++) {
        if (!x->have_cur) {
            pthread_mutex_lock(&x->mu);
            bool got = x->slot_full && x->fcount < MAX_PENDING;
            if (got) {
                x->cur = x->slot;
                memset(&x->slot, 0, sizeof(x->slot));
                x->slot_full = false;
                x->pending++;
                pthread_cond_broadcast(&x->cv);
            }
            pthread_mutex_unlock(&x->mu);
            if (!got) {
                return;
            }
            x->have_cur = true;
            x->cur_i = 0;
            x->cur_off = 0;
        }
        if (!nsrc_emit_cur(x)) {
            return;
        }
    }
    nsrc_kick(x); /* more may be waiting: another turn of the loop first */
}

static void
nsrc_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    struct nsrc *x = arg;
    uint64_t v;

    (void)what;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    if (!x->waiter.waiting) {
        nsrc_pump(x);
    }
    pthread_mutex_lock(&x->mu);
    bool done = x->loop_done;
    pthread_mutex_unlock(&x->mu);
    if (done) {
        sl_lane_idle(x->s); /* the stop goes on (nsrc_idle) */
    }
}

static int
nsrc_bind(const struct sl_source_config *cfg, struct sl_source_shared *shared)
{
    (void)cfg;
    (void)shared;
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

static int
nsrc_start(struct sl_source *s)
{
    const struct sl_source_nats_config *c = sl_source_nats_config(s->cfg);
    struct nsrc *x = calloc(1, sizeof(*x));
    natsStatus st;

    if (x == NULL) {
        return -1;
    }
    s->priv = x;
    x->s = s;
    x->c = c;
    x->rl.interval_ms = 10000;
    snprintf(x->name, sizeof(x->name), "%s", s->cfg->name);
    x->waiter.src = s;
    x->waiter.resume_cb = nsrc_resume_cb;
    x->dw.src = s;
    x->dw.durable_cb = nsrc_durable_cb;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->ev = event_new(sl_lane_thread(s)->base, s->fd, EV_READ | EV_PERSIST, nsrc_ev_cb, x);
    if (x->ev == NULL || event_add(x->ev, NULL) < 0) {
        return -1;
    }
    if ((st = nats_Open(-1)) != NATS_OK || (st = natsOptions_Create(&x->opts)) != NATS_OK) {
        log_warnx("source \"%s\": NATS: %s", s->cfg->name, natsStatus_GetText(st));
        return -1;
    }
    st = natsOptions_SetServers(x->opts, (const char **)c->url.servers, c->url.nservers);
    if (st == NATS_OK) {
        st = natsOptions_SetMaxReconnect(x->opts, -1);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetReconnectWait(x->opts, 250);
    }
    if (st == NATS_OK) {
        /* With a callback, a connect that finds no server returns
         * NATS_NOT_YET_CONNECTED after one try of each url and libnats goes
         * on in the background; without one it would block until a server
         * answers, and a stop could not end the fetch thread. */
        st = natsOptions_SetRetryOnFailedConnect(x->opts, true, nsrc_connected_cb, x);
    }
    if (st == NATS_OK) {
        st = natsOptions_SetClosedCB(x->opts, nsrc_closed_cb, x);
    }
    if (st == NATS_OK && c->user != NULL) {
        st = natsOptions_SetUserInfo(x->opts, c->user, c->password);
    }
    if (st == NATS_OK && c->creds_file != NULL) {
        st = natsOptions_SetUserCredentialsFromFiles(x->opts, c->creds_file, NULL);
    }
    if (st != NATS_OK) {
        log_warnx("source \"%s\": NATS: %s", s->cfg->name, natsStatus_GetText(st));
        return -1;
    }
    if (pthread_create(&x->th, NULL, nsrc_fetch_main, x) != 0) {
        return -1;
    }
    x->th_started = true;
    return 0;
}

static void
nsrc_stop_begin(struct sl_source *s)
{
    struct nsrc *x = s->priv;

    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Once the fetch thread fetches no more: a list not (wholly) emitted is
 * given back (Nak); once every emitted list is acknowledged too, the
 * thread flushes those acknowledgements and ends, and the source is idle. */
static bool
nsrc_idle(const struct sl_source *s)
{
    struct nsrc *x = s->priv;

    pthread_mutex_lock(&x->mu);
    bool done = x->loop_done;
    if (done && x->slot_full) {
        msgs_settle(x->slot.Msgs, x->slot.Count, false);
        memset(&x->slot, 0, sizeof(x->slot));
        x->slot_full = false;
    }
    pthread_mutex_unlock(&x->mu);
    if (done && x->have_cur) {
        sl_lane_unwait(&x->waiter);
        msgs_settle(x->cur.Msgs, x->cur.Count, false);
        memset(&x->cur, 0, sizeof(x->cur));
        x->have_cur = false;
    }
    pthread_mutex_lock(&x->mu);
    if (done && x->fcount == 0 && !x->settled) {
        x->settled = true;
        pthread_cond_broadcast(&x->cv);
    }
    bool ended = x->th_done;
    pthread_mutex_unlock(&x->mu);
    return ended && x->fcount == 0;
}

/* Ends the fetch thread without waiting for the last acknowledgements to
 * be flushed. */
static void
nsrc_force(struct nsrc *x)
{
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    x->forced = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static uint64_t
nsrc_close_all(struct sl_source *s)
{
    struct nsrc *x = s->priv;

    nsrc_force(x);
    if (x->dw.waiting) {
        sl_lane_unwait_durable(&x->dw);
    }
    if (x->waiter.waiting) {
        sl_lane_unwait(&x->waiter);
    }
    /* Not acknowledged: JetStream redelivers them after AckWait. */
    while (x->fcount > 0) {
        struct pend *p = &x->fifo[x->fhead];
        for (int i = 0; i < p->n; i++) {
            natsMsg_Destroy(p->msgs[i]);
        }
        free(p->msgs);
        memset(p, 0, sizeof(*p));
        x->fhead = (x->fhead + 1) % MAX_PENDING;
        x->fcount--;
    }
    return 0;
}

static void
nsrc_fini(struct sl_source *s)
{
    struct nsrc *x = s->priv;

    if (x == NULL) {
        return;
    }
    if (x->th_started) {
        nsrc_force(x); /* settled already after an orderly stop: flushed */
        pthread_join(x->th, NULL);
    }
    if (x->ev != NULL) {
        event_free(x->ev);
        x->ev = NULL;
    }
    if (!nsrc_close_nc(x)) {
        /* A callback may still come: x stays (leaked, not freed under it). */
        log_warnx("source \"%s\": NATS connection not closed within %d ms; its state is left "
                  "allocated",
                  x->name, CLOSE_WAIT_MS);
        s->priv = NULL;
        return;
    }
    natsMsgList_Destroy(&x->slot);
    natsMsgList_Destroy(&x->cur);
    for (int k = 0; k < x->fcount; k++) {
        struct pend *p = &x->fifo[(x->fhead + k) % MAX_PENDING];
        for (int i = 0; i < p->n; i++) {
            natsMsg_Destroy(p->msgs[i]);
        }
        free(p->msgs);
    }
    natsSubscription_Destroy(x->sub);
    jsCtx_Destroy(x->js);
    natsConnection_Destroy(x->nc);
    natsOptions_Destroy(x->opts);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
    s->priv = NULL;
}

const struct sl_source_type sl_source_nats_type = {
    .name = "nats",
    .label = "NATS",
    .socktype = SOCK_DGRAM,
    .bind = nsrc_bind,
    .start = nsrc_start,
    .stop_begin = nsrc_stop_begin,
    .idle = nsrc_idle,
    .close_all = nsrc_close_all,
    .fini = nsrc_fini,
};
