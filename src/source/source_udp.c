/*
 * source_udp — UDP sockets of one producer thread.
 *
 * Each producer thread has its own SO_REUSEPORT socket per UDP source and
 * reads it with recvmmsg(2) in batches.  A datagram holds one or more
 * lines; its end also ends the last line.  UDP cannot be paused: an event
 * that finds no queue space is dropped and counted (dropped_full), and the
 * kernel's own drops are read from SO_RXQ_OVFL (socket(7)) with every
 * batch.  A datagram larger than the receive buffer (MSG_TRUNC) is counted
 * as truncated and dropped whole.
 *
 * Thread: the owning producer thread only.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/framing.h"
#include "sluice/producer.h"

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

struct udp_ctx {
    struct sl_source_inst *s;
    struct sl_tally tally;
    uint64_t dropped;
    const char *fields;
    size_t flen;
};

static int
udp_line_cb(void *arg, const char *line, size_t len)
{
    struct udp_ctx *x = arg;
    struct sl_source_inst *s = x->s;
    if (sl_producer_emit(s->p, s, line, len, x->fields, x->flen, SL_ACQUIRE_UDP, &x->tally) ==
        SL_EMIT_NO_SPACE) {
        x->dropped++;
    }
    return 0; /* UDP never stops: drop and go on */
}

static void
udp_note_overflow(struct sl_source_inst *s, struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            if (s->ovfl_seen && v != s->ovfl_last) {
                sl_counter_add(&s->stats->kernel_drops, (uint32_t)(v - s->ovfl_last));
            } else if (!s->ovfl_seen && v != 0) {
                sl_counter_add(&s->stats->kernel_drops, v);
            }
            s->ovfl_seen = true;
            s->ovfl_last = v;
        }
    }
}

/* Reads batches until EAGAIN or (unless draining) a per-callback bound. */
static void
udp_read(struct sl_source_inst *s, bool drain)
{
    struct sl_producer *p = s->p;
    struct udp_batch *b = s->udp;
    char fields[SL_FIELDS_MAX];
    char peer[64];

    for (int round = 0; drain || round < UDP_BATCHES_PER_CALLBACK; round++) {
        /* A stop drains what the socket holds, but a flood that never
         * leaves it empty must not hold the thread past the drain grace or
         * a forced stop. */
        if (drain && (sl_now_ms() >= p->drain_until_ms ||
                      atomic_load_explicit(&p->stop, memory_order_relaxed) == 2)) {
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
        sl_producer_clock(p);
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
            x.flen = sl_producer_fields(p, s, peer, plen, fields);
            const char *d = b->iov[i].iov_base;
            size_t len = b->msgs[i].msg_len;
            bool stopped;
            size_t used =
                sl_frame_lines(&fs, d, len, s->cfg->max_line_bytes, udp_line_cb, &x, &stopped);
            sl_frame_finish(&fs, d + used, len - used, s->cfg->max_line_bytes, udp_line_cb, &x);
        }
        over0 = fs.oversize;
        sl_counter_add(&s->stats->bytes_in, bytes);
        sl_counter_add(&s->stats->events_in, x.tally.events);
        sl_counter_add(&s->stats->invalid, x.tally.invalid);
        sl_counter_add(&s->stats->oversize, x.tally.too_large + over0);
        sl_counter_add(&s->stats->truncated, truncated);
        sl_counter_add(&s->stats->dropped_full, x.dropped);
        sl_producer_report(s, "(udp)", &x.tally, over0);
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

int
sl_udp_inst_init(struct sl_source_inst *s)
{
    struct udp_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return -1;
    }
    b->data = malloc((size_t)UDP_BATCH * UDP_DGRAM_MAX);
    if (b->data == NULL) {
        free(b);
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
    s->udp = b;
    s->udp_ev = event_new(s->p->base, s->fd, EV_READ | EV_PERSIST, udp_read_cb, s);
    if (s->udp_ev == NULL || event_add(s->udp_ev, NULL) < 0) {
        return -1;
    }
    return 0;
}

void
sl_udp_inst_fini(struct sl_source_inst *s)
{
    if (s->udp_ev != NULL) {
        event_free(s->udp_ev);
        s->udp_ev = NULL;
    }
    if (s->udp != NULL) {
        free(s->udp->data);
        free(s->udp);
        s->udp = NULL;
    }
}

void
sl_udp_drain(struct sl_source_inst *s)
{
    if (s->udp_ev != NULL) {
        event_del(s->udp_ev);
    }
    if (s->udp != NULL) {
        udp_read(s, true);
    }
}
