/*
 * source_udp — UDP sockets of one producer thread.
 *
 * Each producer thread has its own SO_REUSEPORT socket per UDP source and
 * reads it with recvmmsg(2) in batches.  A datagram holds one or more
 * lines; its end also ends the last line.  UDP cannot be paused: an event
 * that finds no queue space is dropped and counted (dropped_full), and the
 * kernel's own drops are read from SO_RXQ_OVFL (socket(7)) with every
 * batch.  A datagram larger than the receive buffer (MSG_TRUNC) is counted
 * as truncated and dropped whole.  The source's codec frames each datagram
 * (frame, then frame_end: a datagram's end ends its last event), unless
 * the codec takes a datagram whole (whole_datagram: syslog, RFC 5426).
 *
 * Owns: per instance (s->priv, struct udp_source) its read event and its
 * recvmmsg batch.
 * Thread: the owning producer thread only (start/fini: main, while that
 * thread is not running).
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/encode.h"
#include "sluice/codec.h"
#include "sluice/config.h"
#include "sluice/stats.h"
#include "source/lane.h"
#include "source/source_udp.h"

#define UDP_BATCH 32
#define UDP_DGRAM_MAX 65536
#define UDP_BATCHES_PER_CALLBACK 16

struct udp_batch {
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage addrs[UDP_BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(uint32_t))];
        struct cmsghdr align;
    } ctrl[UDP_BATCH];
    char *data; /* UDP_BATCH × UDP_DGRAM_MAX; pages are touched only as used */
};

/* One udp source in one producer thread (s->priv). */
struct udp_source {
    struct event *ev;
    struct udp_batch b;
    uint32_t ovfl_last; /* last SO_RXQ_OVFL value seen */
    bool ovfl_seen;
};

struct udp_ctx {
    struct sl_source *s;
    struct sl_tally tally;
    uint64_t dropped;
    const char *fields;
    size_t flen;
};

static int
udp_line_cb(void *arg, const char *line, size_t len)
{
    struct udp_ctx *x = arg;
    if (sl_lane_emit(x->s, line, len, x->fields, x->flen, SL_ACQUIRE_UDP, &x->tally) ==
        SL_EMIT_NO_SPACE) {
        x->dropped++;
    }
    return 0; /* UDP never stops: drop and go on */
}

/*
 * A codec with whole_datagram (syslog, RFC 5426): the datagram is one
 * event, less one trailing "\n" or "\r\n"; an empty one is no event, one
 * over max_line_bytes is counted in st->oversize like a framed line.
 */
static void
udp_whole_datagram(struct udp_ctx *x, struct sl_frame_state *st, const char *d, size_t len)
{
    if (len > 0 && d[len - 1] == '\n') {
        len--;
        if (len > 0 && d[len - 1] == '\r') {
            len--;
        }
    }
    if (len == 0) {
        return;
    }
    if (len > x->s->cfg->max_line_bytes) {
        st->oversize++;
        return;
    }
    (void)udp_line_cb(x, d, len);
}

static void
udp_note_overflow(struct sl_source *s, struct msghdr *mh)
{
    struct udp_source *u = s->priv;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            if (u->ovfl_seen && v != u->ovfl_last) {
                sl_counter_add(&s->stats->kernel_drops, (uint32_t)(v - u->ovfl_last));
            } else if (!u->ovfl_seen && v != 0) {
                sl_counter_add(&s->stats->kernel_drops, v);
            }
            u->ovfl_seen = true;
            u->ovfl_last = v;
        }
    }
}

/* Reads batches until EAGAIN or (unless draining) a per-callback bound. */
static void
udp_read(struct sl_source *s, bool drain)
{
    struct sl_lane_thread *p = sl_lane_thread(s);
    struct udp_batch *b = &((struct udp_source *)s->priv)->b;
    char fields[SL_FIELDS_MAX];
    char peer[64];

    for (int round = 0; drain || round < UDP_BATCHES_PER_CALLBACK; round++) {
        /* A stop drains what the socket holds, but a flood that never
         * leaves it empty must not hold the thread past the drain grace or
         * a forced stop. */
        if (drain && (sl_now_ms() >= p->drain_until_ms || sl_lane_forced(s))) {
            return;
        }
        for (int i = 0; i < UDP_BATCH; i++) {
            b->msgs[i].msg_hdr.msg_namelen = sizeof(b->addrs[i]);
            b->msgs[i].msg_hdr.msg_controllen = sizeof(b->ctrl[i].buf);
            b->msgs[i].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(s->fd, b->msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
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
        struct udp_ctx x = {.s = s, .fields = fields};
        uint64_t bytes = 0, truncated = 0, over0 = 0;
        struct sl_frame_state fs = {0};
        for (int i = 0; i < n; i++) {
            struct msghdr *mh = &b->msgs[i].msg_hdr;
            udp_note_overflow(s, mh);
            bytes += b->msgs[i].msg_len;
            if (mh->msg_flags & MSG_TRUNC) {
                truncated++;
                continue;
            }
            size_t plen = 0;
            if (s->cfg->add_fields & SL_FIELD_PEER) {
                plen = sl_encode_sockaddr((struct sockaddr *)&b->addrs[i], peer, sizeof(peer));
            }
            x.flen = sl_lane_fields(s, peer, plen, fields);
            const char *d = b->iov[i].iov_base;
            size_t len = b->msgs[i].msg_len;
            bool stopped;
            if (s->codec->whole_datagram) {
                udp_whole_datagram(&x, &fs, d, len);
                continue;
            }
            size_t used =
                s->codec->frame(&fs, d, len, s->cfg->max_line_bytes, udp_line_cb, &x, &stopped);
            s->codec->frame_end(&fs, d + used, len - used, s->cfg->max_line_bytes, udp_line_cb,
                                &x);
        }
        over0 = fs.oversize;
        sl_counter_add(&s->stats->bytes_in, bytes);
        sl_counter_add(&s->stats->events_in, x.tally.events);
        sl_counter_add(&s->stats->invalid, x.tally.invalid);
        sl_counter_add(&s->stats->unparsed, x.tally.unparsed);
        sl_counter_add(&s->stats->oversize, x.tally.too_large + over0);
        sl_counter_add(&s->stats->truncated, truncated);
        sl_counter_add(&s->stats->dropped_full, x.dropped);
        sl_lane_report(s, "(udp)", &x.tally, over0);
        if (x.dropped > 0) {
            uint64_t sup = 0;
            if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
                log_warnx("source \"%s\": queue \"%s\" full, dropped %llu udp event(s)",
                          s->cfg->name, s->cfg->queue, (unsigned long long)x.dropped);
            }
        }
        if (n < UDP_BATCH) {
            return;
        }
    }
}

static void
udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    udp_read(arg, false);
}

static int
udp_bind(const struct sl_source_config *cfg)
{
    return sl_source_bind_inet(cfg, SOCK_DGRAM);
}

/* A socket from systemd: count the kernel's drops as with our own. */
static void
udp_adopt(int fd)
{
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
}

static int
udp_start(struct sl_source *s)
{
    struct udp_source *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return -1;
    }
    s->priv = u;
    struct udp_batch *b = &u->b;
    b->data = malloc((size_t)UDP_BATCH * UDP_DGRAM_MAX);
    if (b->data == NULL) {
        return -1;
    }
    for (int i = 0; i < UDP_BATCH; i++) {
        b->iov[i].iov_base = b->data + (size_t)i * UDP_DGRAM_MAX;
        b->iov[i].iov_len = UDP_DGRAM_MAX;
        b->msgs[i].msg_hdr.msg_name = &b->addrs[i];
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
        b->msgs[i].msg_hdr.msg_control = b->ctrl[i].buf;
    }
    u->ev = event_new(sl_lane_thread(s)->base, s->fd, EV_READ | EV_PERSIST, udp_read_cb, s);
    if (u->ev == NULL || event_add(u->ev, NULL) < 0) {
        return -1;
    }
    return 0;
}

static void
udp_fini(struct sl_source *s)
{
    struct udp_source *u = s->priv;
    if (u == NULL) {
        return;
    }
    if (u->ev != NULL) {
        event_free(u->ev);
    }
    free(u->b.data);
    free(u);
    s->priv = NULL;
}

/* Stop: read what the socket holds (until the drain grace ends). */
static void
udp_stop_begin(struct sl_source *s)
{
    struct udp_source *u = s->priv;
    event_del(u->ev);
    udp_read(s, true);
}

const struct sl_source_type sl_source_udp = {
    .name = "udp",
    .label = "UDP",
    .socktype = SOCK_DGRAM,
    .bind = udp_bind,
    .adopt = udp_adopt,
    .start = udp_start,
    .stop_begin = udp_stop_begin,
    .fini = udp_fini,
};
