/*
 * dgram — the datagram sockets of a source in one producer thread, shared
 * by the datagram source types (udp: source_udp.c, unix_dgram:
 * source_unix.c).
 *
 * The socket is read with recvmmsg(2) in batches.  A datagram holds one or
 * more lines; its end also ends the last line (the codec frames each
 * datagram: frame, then frame_end), unless the codec takes a datagram
 * whole (whole_datagram: syslog, RFC 5426).  The kernel's own drops are read from
 * SO_RXQ_OVFL (socket(7)) with every batch; a datagram larger than the
 * buffer (MSG_TRUNC) is counted as truncated and dropped whole.  The peer
 * of a datagram is its SCM_CREDENTIALS when the socket passes them
 * (unix_dgram sets SO_PASSCRED), else the sender's address.  A datagram
 * from an address not in the source's allow list (udp) is dropped unread
 * and counted (refused_addr).
 *
 * A full queue, as the type chooses (enum sl_dgram_full):
 *   SL_DGRAM_DROP   (udp) the socket is read anyway and an event that finds
 *                   no space is dropped and counted (dropped_full): a UDP
 *                   sender cannot be slowed down, so not reading would only
 *                   move the loss into the kernel;
 *   SL_DGRAM_PAUSE  (unix_dgram) the socket is not read while the queue is
 *                   full: a unix datagram sender blocks (or gets EAGAIN)
 *                   once the receive buffer is full, so not reading is
 *                   back-pressure, as for a stream.  Before each batch the
 *                   lane is asked for space; if an event of a batch still
 *                   finds none, the rest of the batch is kept (u->pend_*)
 *                   and framed first when the waiter resumes.
 *
 * Owns: per instance (s->priv, struct dgram_source) its read event, its
 * recvmmsg batch and its waiter.
 * Thread: the owning producer thread only (start/fini: main, while that
 * thread is not running).
 */
#include "source/dgram.h"

#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/encode.h"
#include "sluice/codec.h"
#include "sluice/config.h"
#include "sluice/stats.h"
#include "util/allow.h"

#define DGRAM_BATCH 32
#define DGRAM_MAX 65536
#define DGRAM_BATCHES_PER_CALLBACK 16

struct dgram_batch {
    struct mmsghdr msgs[DGRAM_BATCH];
    struct iovec iov[DGRAM_BATCH];
    struct sockaddr_storage addrs[DGRAM_BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } ctrl[DGRAM_BATCH];
    char *data; /* DGRAM_BATCH × DGRAM_MAX; pages are touched only as used */
};

/* One datagram source in one producer thread (s->priv). */
struct dgram_source {
    struct sl_source *src;
    struct event *ev;
    enum sl_dgram_full full;
    struct dgram_batch b;
    uint32_t ovfl_last; /* last SO_RXQ_OVFL value seen */
    bool ovfl_seen;
    /* SL_DGRAM_PAUSE: waiting for queue space, with datagrams [pend_i,
     * pend_n) of the batch (the first from byte pend_off) still to frame */
    struct sl_waiter wait;
    bool paused;
    uint64_t paused_at_ms;
    int pend_i;
    int pend_n;
    size_t pend_off;
};

struct dgram_ctx {
    struct sl_source *s;
    struct sl_tally tally;
    uint64_t dropped;
    const char *fields;
    size_t flen;
};

static struct dgram_source *
dgram_of(const struct sl_source *s)
{
    return s->priv;
}

static void dgram_read(struct sl_source *s, bool drain);

static int
dgram_line_cb(void *arg, const char *line, size_t len)
{
    struct dgram_ctx *x = arg;
    bool pause = dgram_of(x->s)->full == SL_DGRAM_PAUSE;
    enum sl_emit e = sl_lane_emit(x->s, line, len, x->fields, x->flen,
                                  pause ? SL_ACQUIRE_TCP : SL_ACQUIRE_UDP, &x->tally);
    if (e != SL_EMIT_NO_SPACE) {
        return 0;
    }
    if (pause) {
        return 1; /* stop framing: the event is kept for the resume */
    }
    x->dropped++;
    return 0; /* drop and go on */
}

/*
 * A codec with whole_datagram (syslog, RFC 5426): the datagram is one
 * event, less one trailing "\n" or "\r\n"; an empty one is no event, one
 * over max_line_bytes is counted in st->oversize like a framed line.
 * Returns dgram_line_cb's answer (non-zero: no space, keep the datagram).
 */
static int
dgram_whole(struct dgram_ctx *x, struct sl_frame_state *st, const char *d, size_t len)
{
    if (len > 0 && d[len - 1] == '\n') {
        len--;
        if (len > 0 && d[len - 1] == '\r') {
            len--;
        }
    }
    if (len == 0) {
        return 0;
    }
    if (len > x->s->cfg->max_line_bytes) {
        st->oversize++;
        return 0;
    }
    return dgram_line_cb(x, d, len);
}

/* Reads the control messages of one datagram: the kernel's drop count and
 * the sender's credentials (into peer, when there are any). */
static bool
dgram_cmsgs(struct sl_source *s, struct msghdr *mh, bool count_overflow, struct sl_peer *peer)
{
    struct dgram_source *u = dgram_of(s);
    bool cred = false;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET) {
            continue;
        }
        if (cm->cmsg_type == SO_RXQ_OVFL && count_overflow) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            if (u->ovfl_seen && v != u->ovfl_last) {
                sl_counter_add(&s->stats->kernel_drops, (uint32_t)(v - u->ovfl_last));
            } else if (!u->ovfl_seen && v != 0) {
                sl_counter_add(&s->stats->kernel_drops, v);
            }
            u->ovfl_seen = true;
            u->ovfl_last = v;
        } else if (cm->cmsg_type == SCM_CREDENTIALS &&
                   cm->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
            sl_peer_from_cred(peer, &uc);
            cred = true;
        }
    }
    return cred;
}

static void
dgram_pause(struct sl_source *s)
{
    struct dgram_source *u = dgram_of(s);
    if (!u->paused) {
        u->paused = true;
        u->paused_at_ms = sl_now_ms();
        event_del(u->ev);
        sl_counter_add(&s->stats->pauses, 1);
    }
    sl_lane_wait(s, &u->wait);
}

static void
dgram_unpause(struct sl_source *s)
{
    struct dgram_source *u = dgram_of(s);
    sl_lane_unwait(&u->wait);
    u->paused = false;
    sl_counter_add(&s->stats->resumes, 1);
    sl_counter_add(&s->stats->paused_ns, (sl_now_ms() - u->paused_at_ms) * 1000000u);
}

/* A datagram from an address not in allow (udp; unix_dgram has no allow):
 * dropped unread, counted, logged rate-limited. */
static void
dgram_refused(struct sl_source *s, const struct sockaddr *sa)
{
    uint64_t sup = 0;
    sl_counter_add(&s->stats->refused_addr, 1);
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        char who[64];
        sl_encode_sockaddr(sa, who, sizeof(who));
        log_warnx("source \"%s\": dropped a datagram from %s (not in allow)", s->cfg->name, who);
    }
}

/*
 * Frames datagrams [i, n) of the batch, the first from byte off.  Returns
 * false when a full queue paused the source (the rest is kept).
 */
static bool
dgram_frame(struct sl_source *s, int i, int n, size_t off)
{
    struct dgram_source *u = dgram_of(s);
    struct dgram_batch *b = &u->b;
    char fields[SL_FIELDS_MAX];
    struct dgram_ctx x = {.s = s, .fields = fields};
    struct sl_frame_state fs = {0};
    struct sl_peer peer = {.len = 0};
    uint64_t truncated = 0;
    bool stopped = false;

    for (; i < n; i++, off = 0) {
        struct msghdr *mh = &b->msgs[i].msg_hdr;
        /* The overflow count is read once per datagram: when it is first framed. */
        bool cred = dgram_cmsgs(s, mh, off == 0, &peer);
        if (mh->msg_flags & MSG_TRUNC) {
            truncated++;
            continue;
        }
        if (!sl_allow_match(&s->cfg->allow, (struct sockaddr *)&b->addrs[i])) {
            dgram_refused(s, (struct sockaddr *)&b->addrs[i]);
            continue;
        }
        if (!cred && (s->cfg->add_fields & SL_FIELD_PEER)) {
            sl_peer_from_addr(&peer, (struct sockaddr *)&b->addrs[i]);
        }
        x.flen = sl_lane_fields(s, &peer, fields);
        const char *d = (const char *)b->iov[i].iov_base + off;
        size_t len = b->msgs[i].msg_len - off;
        size_t used = 0;
        if (s->codec->whole_datagram) {
            stopped = dgram_whole(&x, &fs, d, len) != 0;
        } else {
            used =
                s->codec->frame(&fs, d, len, s->cfg->max_line_bytes, dgram_line_cb, &x, &stopped);
            if (!stopped && s->codec->frame_end(&fs, d + used, len - used, s->cfg->max_line_bytes,
                                                dgram_line_cb, &x) != 0) {
                stopped = true;
            }
        }
        if (stopped) {
            u->pend_i = i;
            u->pend_n = n;
            u->pend_off = off + used;
            break;
        }
    }
    sl_counter_add(&s->stats->events_in, x.tally.events);
    sl_counter_add(&s->stats->invalid, x.tally.invalid);
    sl_counter_add(&s->stats->unparsed, x.tally.unparsed);
    sl_counter_add(&s->stats->oversize, x.tally.too_large + fs.oversize);
    sl_counter_add(&s->stats->truncated, truncated);
    sl_counter_add(&s->stats->dropped_full, x.dropped);
    if (x.tally.invalid + x.tally.too_large + x.tally.unparsed + fs.oversize > 0) {
        /* A batch has many senders: name the type, not one of them. */
        char label[32];
        snprintf(label, sizeof(label), "(%s)", s->type->name);
        sl_lane_report(s, label, &x.tally, fs.oversize);
    }
    if (x.dropped > 0) {
        uint64_t sup = 0;
        if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
            log_warnx("source \"%s\": queue \"%s\" full, dropped %llu %s event(s)", s->cfg->name,
                      s->cfg->queue, (unsigned long long)x.dropped, s->type->name);
        }
    }
    if (stopped) {
        dgram_pause(s);
        return false;
    }
    return true;
}

/* Reads batches until EAGAIN or (unless draining) a per-callback bound. */
static void
dgram_read(struct sl_source *s, bool drain)
{
    struct dgram_source *u = dgram_of(s);
    struct dgram_batch *b = &u->b;

    for (int round = 0; drain || round < DGRAM_BATCHES_PER_CALLBACK; round++) {
        /* A stop drains what the socket holds, but a flood that never
         * leaves it empty must not hold the thread past the drain grace or
         * a forced stop. */
        if (drain && (sl_now_ms() >= s->drain_until_ms || sl_lane_forced(s))) {
            return;
        }
        if (u->full == SL_DGRAM_PAUSE && !sl_lane_has_space(s)) {
            dgram_pause(s);
            return;
        }
        for (int i = 0; i < DGRAM_BATCH; i++) {
            b->msgs[i].msg_hdr.msg_namelen = sizeof(b->addrs[i]);
            b->msgs[i].msg_hdr.msg_controllen = sizeof(b->ctrl[i].buf);
            b->msgs[i].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(s->fd, b->msgs, DGRAM_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                uint64_t sup = 0;
                if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
                    log_warn("source \"%s\": recvmmsg", s->cfg->name);
                }
            }
            return;
        }
        sl_lane_clock(s);
        uint64_t bytes = 0;
        for (int i = 0; i < n; i++) {
            bytes += b->msgs[i].msg_len;
        }
        sl_counter_add(&s->stats->bytes_in, bytes);
        if (!dgram_frame(s, 0, n, 0) || n < DGRAM_BATCH) {
            return;
        }
    }
}

static void
dgram_read_cb(evutil_socket_t fd, short what, void *arg)
{
    dgram_read(arg, false);
}

/* The queue has room again (the producer took the waiter off its list). */
static void
dgram_resume_cb(struct sl_waiter *w)
{
    struct dgram_source *u =
        (struct dgram_source *)((char *)w - offsetof(struct dgram_source, wait));
    struct sl_source *s = u->src;
    dgram_unpause(s);
    if (u->pend_i < u->pend_n) {
        int i = u->pend_i, n = u->pend_n;
        u->pend_i = u->pend_n = 0;
        sl_lane_clock(s);
        if (!dgram_frame(s, i, n, u->pend_off)) {
            return;
        }
    }
    if (s->stopping) {
        /* The stop began while paused: drain now (the producer checks
         * idle() after resuming its waiters). */
        dgram_read(s, true);
    } else if (event_add(u->ev, NULL) < 0) {
        log_warnx("source \"%s\": cannot watch the socket again", s->cfg->name);
    }
}

int
sl_dgram_start(struct sl_source *s, enum sl_dgram_full full)
{
    struct dgram_source *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return -1;
    }
    s->priv = u;
    u->src = s;
    u->full = full;
    u->wait.src = s;
    u->wait.resume_cb = dgram_resume_cb;
    struct dgram_batch *b = &u->b;
    b->data = malloc((size_t)DGRAM_BATCH * DGRAM_MAX);
    if (b->data == NULL) {
        return -1;
    }
    for (int i = 0; i < DGRAM_BATCH; i++) {
        b->iov[i].iov_base = b->data + (size_t)i * DGRAM_MAX;
        b->iov[i].iov_len = DGRAM_MAX;
        b->msgs[i].msg_hdr.msg_name = &b->addrs[i];
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
        b->msgs[i].msg_hdr.msg_control = b->ctrl[i].buf;
    }
    u->ev = event_new(sl_lane_thread(s)->base, s->fd, EV_READ | EV_PERSIST, dgram_read_cb, s);
    if (u->ev == NULL || event_add(u->ev, NULL) < 0) {
        return -1;
    }
    return 0;
}

void
sl_dgram_stop_begin(struct sl_source *s)
{
    struct dgram_source *u = dgram_of(s);
    event_del(u->ev);
    if (!u->paused) {
        dgram_read(s, true);
    }
}

bool
sl_dgram_idle(const struct sl_source *s)
{
    return dgram_of(s) == NULL || !dgram_of(s)->paused;
}

uint64_t
sl_dgram_close_all(struct sl_source *s)
{
    struct dgram_source *u = dgram_of(s);
    uint64_t lost = 0;
    if (u == NULL || !u->paused) {
        return 0;
    }
    for (int i = u->pend_i; i < u->pend_n; i++) {
        lost += u->b.msgs[i].msg_len - (i == u->pend_i ? u->pend_off : 0);
    }
    dgram_unpause(s);
    u->pend_i = u->pend_n = 0;
    return lost;
}

void
sl_dgram_fini(struct sl_source *s)
{
    struct dgram_source *u = dgram_of(s);
    if (u == NULL) {
        return;
    }
    (void)sl_dgram_close_all(s);
    if (u->ev != NULL) {
        event_free(u->ev);
    }
    free(u->b.data);
    free(u);
    s->priv = NULL;
}
