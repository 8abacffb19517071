/*
 * loadgen — load generator for the sluice benchmarks and tests.
 *
 * Sends EVENTS newline-delimited JSON events to a loopback TCP or UDP port
 * over CONNS connections (or UDP sockets) driven by THREADS threads, then
 * prints one key=value line of figures on stdout.  Diagnostics go to stderr.
 *
 * Every event looks like a real application log record and is exactly
 * EVENT_BYTES long including its '\n' (unless even the smallest form is
 * longer):
 *   {"seq":N,"sent_ns":T,"ts":"...","level":"info","service":"...",...,"msg":"..."}
 * Fields are dropped from the end when they do not fit; "msg" pads the rest.
 *
 * Sequence numbers: the global event index k in [0, EVENTS) is given to
 * connection k % CONNS and carries seq FIRST_SEQ + k, so every sequence
 * number is sent exactly once across all connections.
 *
 * Timing: T ("sent_ns") is the intended send time on CLOCK_REALTIME.  With
 * -r RATE event k is due at start + k / RATE on a fixed timetable; a sender
 * held up by a slow receiver sends the overdue events late but still stamps
 * them with their intended time, so receiver stalls show up as latency
 * instead of being hidden (no coordinated omission).  -g GRAIN_US groups
 * sends: the sender wakes on ticks GRAIN_US apart and sends every event due
 * by then (each still stamped with its own due time, so the wait for the
 * tick is counted as latency); it keeps a 100 k events/s load from costing
 * the sender a whole core in per-event send(2)s on a small machine.  Without -r the
 * generator runs closed-loop: it fills 64 KiB batches and stamps them with
 * the time the batch was built.
 *
 * -w FILE: after the last byte was sent, poll FILE's size every 1 ms until
 * it holds the bytes sent (bounded by -W), and report when it got there.
 * bench/run.sh uses this to measure a receiver's end-to-end throughput.
 *
 * Threads: main parses options, connects, starts THREADS sender threads and
 * joins them; each sender owns its connections and counters, nothing is
 * shared until the join.  Every loop is bounded by the -T deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LG_BATCH_BYTES (64 * 1024) /* closed-loop TCP write size */
#define LG_UDP_BATCH 64            /* datagrams per sendmmsg */
#define LG_MIN_SIZE 64
#define LG_MAX_SIZE 16384
#define LG_DEFAULT_SIZE 230
#define LG_EVENT_SLACK 128 /* the smallest event form is < 80 bytes */
#define LG_NVARIANTS 64    /* distinct field sets */
#define LG_PAD_BYTES (LG_MAX_SIZE + 1024)
#define LG_MAX_CONNS 4096
#define LG_MAX_THREADS 256
#define LG_NS 1000000000ull

struct lg_opts {
    const char *host;
    unsigned port;
    uint64_t events;
    unsigned conns;
    unsigned threads;
    bool udp;
    uint64_t rate;     /* events/s over all connections; 0 = closed loop */
    uint64_t grain_ns; /* -g: sends happen on ticks this far apart (-r) */
    size_t size;
    uint64_t first_seq;
    unsigned timeout_s;    /* -T: bound on connecting + sending */
    const char *wait_path; /* -w */
    unsigned wait_s;       /* -W: bound on the -w wait */
    bool find_port;        /* -F */
    bool syslog;           /* -y: RFC 5424 syslog messages */
    bool octet;            /* -O: octet-counted framing (RFC 6587), with -y */
};

/* Precomputed field text; one is chosen per event from a hash of seq. */
struct lg_variant {
    char ident[96]; /* ,"level":..,"service":..,"host":.. */
    size_t ident_len;
    char http[112]; /* ,"method":..,"path":..,"status":..,"dur_ms":.. */
    size_t http_len;
    char pri[16]; /* -y: "<PRI>1 " */
    size_t pri_len;
    char sl_hdr[160]; /* -y: " HOST APP PROCID MSGID [SD] " after the timestamp */
    size_t sl_hdr_len;
};

struct lg_conn {
    int fd;
    uint64_t next;   /* global index of the next event to build */
    uint64_t left;   /* events not built yet */
    char *buf;       /* TCP: pending bytes; UDP: LG_UDP_BATCH slots */
    size_t len, off; /* TCP: pending bytes are buf[off, len) */
    uint64_t buf_events;
    /* UDP only. */
    struct mmsghdr *msgs;
    struct iovec *iov;
    unsigned nmsg, msg_off;
    bool done;
};

struct lg_thread {
    pthread_t tid;
    const struct lg_opts *o;
    struct lg_conn *conns;
    unsigned nconns;
    uint64_t t0_mono, t0_real; /* the timetable's origin (-r) */
    uint64_t deadline_mono;
    /* Cached "ts" text for the last millisecond formatted. */
    uint64_t ts_ms;
    char ts[40];
    size_t ts_len;
    /* Results. */
    uint64_t events, bytes, errors;
    uint64_t t_first, t_last; /* CLOCK_REALTIME ns; 0 = nothing sent */
};

static struct lg_variant lg_variants[LG_NVARIANTS];
static char lg_pad[LG_PAD_BYTES];
static size_t lg_slot_bytes;

static uint64_t
lg_clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * LG_NS + (uint64_t)ts.tv_nsec;
}

static uint64_t
lg_mix(uint64_t x)
{
    /* splitmix64 finaliser: cheap, well-spread field choices. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t
lg_put_u64(char *dst, uint64_t v)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        dst[i] = tmp[n - 1 - i];
    }
    return n;
}

static size_t
lg_put_str(char *dst, const char *s)
{
    size_t n = strlen(s);

    memcpy(dst, s, n);
    return n;
}

static void
lg_variants_init(void)
{
    static const char *const levels[] = {"info", "info", "info", "debug", "warn", "error"};
    static const char *const services[] = {"checkout", "payments", "inventory", "auth",
                                           "search",   "gateway",  "shipping",  "catalog"};
    static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
    static const char *const paths[] = {"/api/v1/orders", "/api/v1/cart",  "/api/v2/items",
                                        "/login",         "/api/v1/users", "/healthz"};
    static const int statuses[] = {200, 200, 200, 201, 204, 304, 400, 404, 500, 503};
    static const char *const words =
        "request completed user=4812 cart_items=3 upstream=inventory-svc cache=miss "
        "retries=0 region=eu-west-1 pool=db-primary conn_wait_us=112 rows=27 "
        "feature_flags=new-checkout,fast-search tls=1.3 client=ios/5.12.1 ";
    size_t wl = strlen(words);

    for (unsigned i = 0; i < LG_NVARIANTS; i++) {
        struct lg_variant *v = &lg_variants[i];
        uint64_t h = lg_mix(i);
        int n;

        n = snprintf(v->ident, sizeof(v->ident),
                     ",\"level\":\"%s\",\"service\":\"%s\",\"host\":\"web-%02u\"", levels[h % 6],
                     services[(h >> 8) % 8], (unsigned)((h >> 16) % 24) + 1);
        v->ident_len = (size_t)n;
        n = snprintf(v->http, sizeof(v->http),
                     ",\"method\":\"%s\",\"path\":\"%s/%u\",\"status\":%d,\"dur_ms\":%u",
                     methods[(h >> 24) % 6], paths[(h >> 32) % 6], (unsigned)((h >> 36) % 90000),
                     statuses[(h >> 40) % 10], (unsigned)((h >> 48) % 900) + 1);
        v->http_len = (size_t)n;
        /* Facility local0..local7 or user, any severity. */
        n = snprintf(v->pri, sizeof(v->pri), "<%u>1 ",
                     (unsigned)(((h >> 52) % 9 == 8 ? 1 : 16 + (h >> 52) % 9) * 8 + (h >> 56) % 8));
        v->pri_len = (size_t)n;
        n = snprintf(v->sl_hdr, sizeof(v->sl_hdr),
                     " web-%02u.example.net %s %u %s [req@32473 method=\"%s\" status=\"%d\"] ",
                     (unsigned)((h >> 16) % 24) + 1, services[(h >> 8) % 8],
                     (unsigned)((h >> 20) % 30000) + 100, methods[(h >> 24) % 6],
                     methods[(h >> 24) % 6], statuses[(h >> 40) % 10]);
        v->sl_hdr_len = (size_t)n;
    }
    /* Printable text without '"' or '\\', so it needs no JSON escaping. */
    for (size_t i = 0; i < sizeof(lg_pad); i++) {
        lg_pad[i] = words[i % wl];
    }
}

/* Formats sent_ns as ,"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ" into the thread's cache. */
static void
lg_ts_update(struct lg_thread *t, uint64_t sent_ns)
{
    uint64_t ms = sent_ns / 1000000;
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    char *p = t->ts;

    if (ms == t->ts_ms && t->ts_len != 0) {
        return;
    }
    gmtime_r(&sec, &tm);
    p += lg_put_str(p, ",\"ts\":\"");
    p += strftime(p, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    *p++ = '.';
    *p++ = (char)('0' + (ms % 1000) / 100);
    *p++ = (char)('0' + (ms % 100) / 10);
    *p++ = (char)('0' + ms % 10);
    p += lg_put_str(p, "Z\"");
    t->ts_len = (size_t)(p - t->ts);
    t->ts_ms = ms;
}

/*
 * Writes one event of (at most LG_EVENT_SLACK beyond) size bytes, '\n'
 * included, at dst.  Returns its length.
 */
/*
 * -y: one RFC 5424 message of size bytes including its '\n' (or, with -O,
 * size - 1 bytes after an octet count "LEN "):
 *   <PRI>1 2026-12-05T23:30:00.123Z web-07.example.net checkout 4711 GET
 *   [req@32473 method="GET" status="200"] seq=N sent_ns=T <padding>
 * follow finds seq= and sent_ns= in the receiver's "message" field.
 */
static size_t
lg_syslog_format(struct lg_thread *t, char *dst, uint64_t seq, uint64_t sent_ns, size_t size)
{
    uint64_t h = lg_mix(seq);
    const struct lg_variant *v = &lg_variants[h % LG_NVARIANTS];
    size_t plen = 0, len, pad, want = size - 1;
    char *p, *m;

    if (t->o->octet) {
        plen = lg_put_u64(dst, want) + 1; /* "LEN " when the message is size - 1 bytes */
    }
    m = p = dst + plen;
    memcpy(p, v->pri, v->pri_len);
    p += v->pri_len;
    lg_ts_update(t, sent_ns);
    memcpy(p, t->ts + 7, t->ts_len - 8); /* the time of ,"ts":"...Z" */
    p += t->ts_len - 8;
    memcpy(p, v->sl_hdr, v->sl_hdr_len);
    p += v->sl_hdr_len;
    p += lg_put_str(p, "seq=");
    p += lg_put_u64(p, seq);
    p += lg_put_str(p, " sent_ns=");
    p += lg_put_u64(p, sent_ns);
    *p++ = ' ';
    len = (size_t)(p - m);
    pad = len + 1 < want ? want - len : 1;
    memcpy(p, lg_pad + (h >> 56), pad);
    p += pad;
    len = (size_t)(p - m);
    if (!t->o->octet) {
        *p++ = '\n';
        return (size_t)(p - dst);
    }
    if (len != want) { /* the padding could not make it size - 1 bytes */
        char num[24];
        size_t nl = lg_put_u64(num, len);

        memmove(dst + nl + 1, m, len);
        memcpy(dst, num, nl);
        plen = nl + 1;
    }
    dst[plen - 1] = ' ';
    return plen + len;
}

static size_t
lg_event_format(struct lg_thread *t, char *dst, uint64_t seq, uint64_t sent_ns, size_t size)
{
    static const char msg_open[] = ",\"msg\":\"";
    const size_t tail = sizeof(msg_open) - 1 + 3; /* msg_open + "}\n */
    uint64_t h = lg_mix(seq);
    const struct lg_variant *v = &lg_variants[h % LG_NVARIANTS];
    char *p = dst;
    size_t pad;

    p += lg_put_str(p, "{\"seq\":");
    p += lg_put_u64(p, seq);
    p += lg_put_str(p, ",\"sent_ns\":");
    p += lg_put_u64(p, sent_ns);
    lg_ts_update(t, sent_ns);
    if ((size_t)(p - dst) + t->ts_len + tail <= size) {
        memcpy(p, t->ts, t->ts_len);
        p += t->ts_len;
    }
    if ((size_t)(p - dst) + v->ident_len + tail <= size) {
        memcpy(p, v->ident, v->ident_len);
        p += v->ident_len;
    }
    if ((size_t)(p - dst) + v->http_len + tail <= size) {
        memcpy(p, v->http, v->http_len);
        p += v->http_len;
    }
    /* trace_id only when it leaves "msg" some text. */
    if ((size_t)(p - dst) + 30 + 16 + tail <= size) {
        static const char hex[] = "0123456789abcdef";
        uint64_t id = lg_mix(h);

        p += lg_put_str(p, ",\"trace_id\":\"");
        for (int i = 15; i >= 0; i--) {
            p[i] = hex[id & 15];
            id >>= 4;
        }
        p += 16;
        *p++ = '"';
    }
    memcpy(p, msg_open, sizeof(msg_open) - 1);
    p += sizeof(msg_open) - 1;
    pad = (size_t)(p - dst) + 3 <= size ? size - (size_t)(p - dst) - 3 : 0;
    memcpy(p, lg_pad + (h >> 56), pad);
    p += pad;
    memcpy(p, "\"}\n", 3);
    p += 3;
    return (size_t)(p - dst);
}

/* Offset of global event k from the timetable's origin, in ns. */
static uint64_t
lg_due_offset(const struct lg_opts *o, uint64_t k)
{
    return k / o->rate * LG_NS + k % o->rate * LG_NS / o->rate;
}

/*
 * The monotonic time the sender should next wake for connection c (0 in
 * closed loop): c's next event's due time, rounded up to the next tick of
 * -g.  Events are never sent before they are due; with a grain they wait
 * for their tick, and that wait counts in their latency.
 */
static uint64_t
lg_conn_due(const struct lg_thread *t, const struct lg_conn *c)
{
    uint64_t off, g = t->o->grain_ns;

    if (t->o->rate == 0) {
        return 0;
    }
    off = lg_due_offset(t->o, c->next);
    if (g > 1) {
        off = (off + g - 1) / g * g;
    }
    return t->t0_mono + off;
}

/*
 * Builds the next event of c at dst if it is due by now.  Returns its length
 * or 0 when c has no event due.
 */
static size_t
lg_conn_build(struct lg_thread *t, struct lg_conn *c, char *dst, uint64_t now_mono,
              uint64_t batch_real)
{
    const struct lg_opts *o = t->o;
    uint64_t sent;
    size_t n;

    if (c->left == 0) {
        return 0;
    }
    if (o->rate != 0) {
        uint64_t off = lg_due_offset(o, c->next);

        if (t->t0_mono + off > now_mono) {
            return 0;
        }
        sent = t->t0_real + off;
    } else {
        sent = batch_real;
    }
    n = o->syslog ? lg_syslog_format(t, dst, o->first_seq + c->next, sent, o->size)
                  : lg_event_format(t, dst, o->first_seq + c->next, sent, o->size);
    c->next += o->conns;
    c->left--;
    return n;
}

static void
lg_sent(struct lg_thread *t, uint64_t events, uint64_t bytes)
{
    t->events += events;
    t->bytes += bytes;
    t->t_last = lg_clock_ns(CLOCK_REALTIME);
}

static void
lg_conn_close(struct lg_thread *t, struct lg_conn *c)
{
    if (c->fd >= 0) {
        if (!t->o->udp) {
            shutdown(c->fd, SHUT_WR);
        }
        close(c->fd);
        c->fd = -1;
    }
    c->done = true;
}

/* Sleeps until the monotonic time `until`, or for at most 100 ms. */
static void
lg_sleep_until(uint64_t until)
{
    uint64_t now = lg_clock_ns(CLOCK_MONOTONIC);
    struct timespec ts;

    if (until <= now) {
        return;
    }
    if (until - now > 100000000ull) {
        until = now + 100000000ull;
    }
    ts.tv_sec = (time_t)(until / LG_NS);
    ts.tv_nsec = (long)(until % LG_NS);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/*
 * One pass over a TCP connection: build a batch if the buffer is empty, then
 * write what is pending.  Returns true if bytes moved; sets *blocked when the
 * socket is full.
 */
static bool
lg_tcp_step(struct lg_thread *t, struct lg_conn *c, uint64_t now, bool *blocked)
{
    bool moved = false;

    *blocked = false;
    if (c->off == c->len && c->left > 0) {
        uint64_t real = t->o->rate == 0 ? lg_clock_ns(CLOCK_REALTIME) : 0;
        size_t n;

        c->off = c->len = 0;
        c->buf_events = 0;
        /* An event is at most size + LG_EVENT_SLACK <= the buffer's spare. */
        while (c->len < LG_BATCH_BYTES &&
               (n = lg_conn_build(t, c, c->buf + c->len, now, real)) != 0) {
            c->len += n;
            c->buf_events++;
        }
    }
    while (c->off < c->len) {
        ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

        if (w > 0) {
            if (t->t_first == 0) {
                t->t_first = lg_clock_ns(CLOCK_REALTIME);
            }
            c->off += (size_t)w;
            moved = true;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *blocked = true;
            return moved;
        }
        fprintf(stderr, "loadgen: send: %s\n", w < 0 ? strerror(errno) : "returned 0");
        t->errors++;
        lg_conn_close(t, c);
        return moved;
    }
    if (c->len != 0) {
        lg_sent(t, c->buf_events, c->len);
        c->off = c->len = 0;
        c->buf_events = 0;
    }
    if (c->left == 0) {
        lg_conn_close(t, c);
    }
    return moved;
}

static void
lg_tcp_run(struct lg_thread *t)
{
    struct pollfd pfds[LG_MAX_CONNS];

    for (;;) {
        uint64_t now = lg_clock_ns(CLOCK_MONOTONIC);
        uint64_t next_due = UINT64_MAX;
        unsigned active = 0, nfds = 0;
        bool moved = false;

        if (now >= t->deadline_mono) {
            fprintf(stderr, "loadgen: deadline reached with events unsent\n");
            t->errors++;
            break;
        }
        for (unsigned i = 0; i < t->nconns; i++) {
            struct lg_conn *c = &t->conns[i];
            bool blocked;

            if (c->done) {
                continue;
            }
            moved |= lg_tcp_step(t, c, now, &blocked);
            if (c->done) {
                continue;
            }
            active++;
            if (blocked) {
                pfds[nfds].fd = c->fd;
                pfds[nfds].events = POLLOUT;
                nfds++;
            } else if (c->len == 0) {
                uint64_t due = lg_conn_due(t, c);

                if (due < next_due) {
                    next_due = due;
                }
            }
        }
        if (active == 0) {
            break;
        }
        if (moved) {
            continue;
        }
        if (nfds > 0) {
            uint64_t wait = 100000000ull;
            struct timespec ts;

            if (next_due != UINT64_MAX) {
                now = lg_clock_ns(CLOCK_MONOTONIC);
                wait = next_due > now ? next_due - now : 0;
                if (wait > 100000000ull) {
                    wait = 100000000ull;
                }
            }
            ts.tv_sec = (time_t)(wait / LG_NS);
            ts.tv_nsec = (long)(wait % LG_NS);
            ppoll(pfds, nfds, &ts, NULL);
        } else if (next_due != UINT64_MAX) {
            lg_sleep_until(next_due);
        }
    }
    for (unsigned i = 0; i < t->nconns; i++) {
        lg_conn_close(t, &t->conns[i]);
    }
}

/* One pass over a UDP socket: fill a batch of due datagrams and send it. */
static bool
lg_udp_step(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
    bool moved = false;

    if (c->msg_off == c->nmsg && c->left > 0) {
        uint64_t real = t->o->rate == 0 ? lg_clock_ns(CLOCK_REALTIME) : 0;
        size_t n;

        c->nmsg = c->msg_off = 0;
        while (c->nmsg < LG_UDP_BATCH &&
               (n = lg_conn_build(t, c, c->buf + (size_t)c->nmsg * lg_slot_bytes, now, real)) !=
                   0) {
            c->iov[c->nmsg].iov_base = c->buf + (size_t)c->nmsg * lg_slot_bytes;
            c->iov[c->nmsg].iov_len = n;
            c->nmsg++;
        }
    }
    if (c->msg_off < c->nmsg) {
        int r = sendmmsg(c->fd, c->msgs + c->msg_off, c->nmsg - c->msg_off, 0);

        if (r > 0) {
            uint64_t bytes = 0;

            if (t->t_first == 0) {
                t->t_first = lg_clock_ns(CLOCK_REALTIME);
            }
            for (int i = 0; i < r; i++) {
                bytes += c->iov[c->msg_off + (unsigned)i].iov_len;
            }
            c->msg_off += (unsigned)r;
            lg_sent(t, (uint64_t)r, bytes);
            moved = true;
        } else if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            /* ECONNREFUSED reports an earlier ICMP error; the datagram at
             * msg_off was not sent.  Count it and drop it so a missing
             * receiver cannot keep us here. */
            if (t->errors < 5) {
                fprintf(stderr, "loadgen: sendmmsg: %s\n", strerror(errno));
            }
            t->errors++;
            c->msg_off++;
            moved = true;
        }
    }
    if (c->left == 0 && c->msg_off == c->nmsg) {
        lg_conn_close(t, c);
    }
    return moved;
}

static void
lg_udp_run(struct lg_thread *t)
{
    for (;;) {
        uint64_t now = lg_clock_ns(CLOCK_MONOTONIC);
        uint64_t next_due = UINT64_MAX;
        unsigned active = 0;
        bool moved = false;

        if (now >= t->deadline_mono) {
            fprintf(stderr, "loadgen: deadline reached with events unsent\n");
            t->errors++;
            break;
        }
        for (unsigned i = 0; i < t->nconns; i++) {
            struct lg_conn *c = &t->conns[i];

            if (c->done) {
                continue;
            }
            moved |= lg_udp_step(t, c, now);
            if (c->done) {
                continue;
            }
            active++;
            if (c->msg_off == c->nmsg) {
                uint64_t due = lg_conn_due(t, c);

                if (due < next_due) {
                    next_due = due;
                }
            }
        }
        if (active == 0) {
            break;
        }
        if (!moved && next_due != UINT64_MAX) {
            lg_sleep_until(next_due);
        }
    }
    for (unsigned i = 0; i < t->nconns; i++) {
        lg_conn_close(t, &t->conns[i]);
    }
}

static void *
lg_thread_main(void *arg)
{
    struct lg_thread *t = arg;

    if (t->o->udp) {
        lg_udp_run(t);
    } else {
        lg_tcp_run(t);
    }
    return NULL;
}

static int
lg_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Resolves host (a loopback literal or "localhost") into ss; refuses others. */
static int
lg_resolve(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
            return -1;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            return -1;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

/* Prints a currently free loopback port (TCP, or UDP with -u). */
static int
lg_find_port(const struct lg_opts *o)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    if (lg_resolve(o->host, 0, &ss, &len) < 0) {
        fprintf(stderr, "loadgen: -H must be a loopback address\n");
        return 1;
    }
    fd = socket(ss.ss_family, o->udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        fprintf(stderr, "loadgen: free port: %s\n", strerror(errno));
        return 1;
    }
    printf("%u\n", ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                 : ((struct sockaddr_in6 *)&ss)->sin6_port));
    close(fd);
    return 0;
}

/* Connects one socket, retrying while the receiver is not listening yet. */
static int
lg_connect(const struct lg_opts *o, const struct sockaddr_storage *ss, socklen_t len,
           uint64_t deadline)
{
    for (;;) {
        int fd = socket(ss->ss_family, (o->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
        int one = 1;

        if (fd < 0) {
            fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
            return -1;
        }
        if (connect(fd, (const struct sockaddr *)ss, len) == 0) {
            if (o->udp) {
                /* Bound every blocking sendmmsg. */
                struct timeval tv = {.tv_sec = 1, .tv_usec = 0};

                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            } else {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
                    fprintf(stderr, "loadgen: fcntl: %s\n", strerror(errno));
                    close(fd);
                    return -1;
                }
            }
            return fd;
        }
        if (errno != ECONNREFUSED && errno != EINTR) {
            fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
            close(fd);
            return -1;
        }
        close(fd);
        if (lg_clock_ns(CLOCK_MONOTONIC) >= deadline) {
            fprintf(stderr, "loadgen: connect: nobody listening on port %u\n", o->port);
            return -1;
        }
        lg_sleep_until(lg_clock_ns(CLOCK_MONOTONIC) + 10000000ull);
    }
}

/*
 * -w: polls path's size every 1 ms until it holds target bytes.  Returns
 * "complete", "stalled" (no growth for 10 s) or "timeout"; *t_final is when
 * the size last changed (CLOCK_REALTIME), *final the last size seen.
 */
static const char *
lg_wait_file(const char *path, uint64_t target, unsigned wait_s, uint64_t *t_final, uint64_t *final)
{
    uint64_t start = lg_clock_ns(CLOCK_MONOTONIC);
    uint64_t deadline = start + (uint64_t)wait_s * LG_NS;
    uint64_t quiet = (uint64_t)(wait_s < 10 ? wait_s : 10) * LG_NS;
    uint64_t changed_mono = start;
    int64_t last = -1;

    *t_final = lg_clock_ns(CLOCK_REALTIME);
    *final = 0;
    for (;;) {
        struct stat st;
        int64_t size = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
        uint64_t now = lg_clock_ns(CLOCK_MONOTONIC);

        if (size != last) {
            last = size;
            changed_mono = now;
            *t_final = lg_clock_ns(CLOCK_REALTIME);
            *final = (uint64_t)size;
        }
        if ((uint64_t)size == target) {
            return "complete";
        }
        /* Larger than sent: the receiver adds fields; wait until it settles. */
        if ((uint64_t)size > target && now - changed_mono >= 200000000ull) {
            return "complete";
        }
        if ((uint64_t)size < target && now - changed_mono >= quiet) {
            return "stalled";
        }
        if (now >= deadline) {
            return "timeout";
        }
        lg_sleep_until(now + 1000000ull);
    }
}

static void
lg_usage(void)
{
    fprintf(stderr,
            "usage: loadgen -p PORT [-H 127.0.0.1] [-n EVENTS] [-c CONNS] [-t THREADS] [-u]\n"
            "               [-r RATE [-g GRAIN_US]] [-s EVENT_BYTES] [-S FIRST_SEQ] [-T SECS]\n"
            "               [-w FILE [-W SECS]] [-y [-O]]\n"
            "       loadgen -F [-u] [-H 127.0.0.1]   print a free loopback port\n"
            "  -n events in total (default 1000000)   -c connections/sockets (default 4)\n"
            "  -t threads (default min(CONNS, CPUs))  -u UDP, one event per datagram\n"
            "  -r events/s in total, fixed timetable (default 0: as fast as possible)\n"
            "  -g with -r: send on ticks GRAIN_US apart (default 0: each event when due)\n"
            "  -s event size in bytes incl. newline, %d..%d (default %d)\n"
            "  -S first sequence number (default 0)   -T bound on sending (default 300 s)\n"
            "  -w after sending, wait until FILE holds the bytes sent (polled every 1 ms)\n"
            "  -W bound on that wait (default 60 s)\n"
            "  -y RFC 5424 syslog messages (seq=N sent_ns=T in MSG) instead of JSON\n"
            "     (TCP only, -s at least 200, not with -w)\n"
            "  -O with -y: octet-counted framing (RFC 6587) instead of newlines\n",
            LG_MIN_SIZE, LG_MAX_SIZE, LG_DEFAULT_SIZE);
}

int
main(int argc, char **argv)
{
    struct lg_opts o = {.host = "127.0.0.1",
                        .events = 1000000,
                        .conns = 4,
                        .size = LG_DEFAULT_SIZE,
                        .timeout_s = 300,
                        .wait_s = 60};
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct lg_thread *threads = NULL;
    struct lg_conn *conns = NULL;
    uint64_t v, events = 0, bytes = 0, errors = 0, t_first = 0, t_last = 0;
    uint64_t deadline, t0_mono, t0_real;
    bool have_port = false;
    int ch, rc = 1;

    while ((ch = getopt(argc, argv, "p:H:n:c:t:ur:g:s:S:T:w:W:FyOh")) != -1) {
        switch (ch) {
        case 'p':
            if (lg_parse_u64(optarg, 1, 65535, &v) < 0) {
                goto bad;
            }
            o.port = (unsigned)v;
            have_port = true;
            break;
        case 'H':
            o.host = optarg;
            break;
        case 'n':
            if (lg_parse_u64(optarg, 1, UINT64_MAX / 2, &o.events) < 0) {
                goto bad;
            }
            break;
        case 'c':
            if (lg_parse_u64(optarg, 1, LG_MAX_CONNS, &v) < 0) {
                goto bad;
            }
            o.conns = (unsigned)v;
            break;
        case 't':
            if (lg_parse_u64(optarg, 1, LG_MAX_THREADS, &v) < 0) {
                goto bad;
            }
            o.threads = (unsigned)v;
            break;
        case 'u':
            o.udp = true;
            break;
        case 'r':
            if (lg_parse_u64(optarg, 0, 1000000000, &o.rate) < 0) {
                goto bad;
            }
            break;
        case 'g':
            if (lg_parse_u64(optarg, 0, 1000000, &v) < 0) {
                goto bad;
            }
            o.grain_ns = v * 1000;
            break;
        case 's':
            if (lg_parse_u64(optarg, LG_MIN_SIZE, LG_MAX_SIZE, &v) < 0) {
                goto bad;
            }
            o.size = (size_t)v;
            break;
        case 'S':
            if (lg_parse_u64(optarg, 0, UINT64_MAX / 2, &o.first_seq) < 0) {
                goto bad;
            }
            break;
        case 'T':
            if (lg_parse_u64(optarg, 1, 86400, &v) < 0) {
                goto bad;
            }
            o.timeout_s = (unsigned)v;
            break;
        case 'w':
            o.wait_path = optarg;
            break;
        case 'W':
            if (lg_parse_u64(optarg, 1, 86400, &v) < 0) {
                goto bad;
            }
            o.wait_s = (unsigned)v;
            break;
        case 'F':
            o.find_port = true;
            break;
        case 'y':
            o.syslog = true;
            break;
        case 'O':
            o.octet = true;
            break;
        default:
            goto bad;
        }
    }
    if (optind != argc || (o.octet && !o.syslog) ||
        (o.syslog && (o.wait_path != NULL || o.udp || o.size < 200))) {
        goto bad;
    }
    if (o.find_port) {
        return lg_find_port(&o);
    }
    if (!have_port) {
        goto bad;
    }
    if (lg_resolve(o.host, o.port, &ss, &sslen) < 0) {
        fprintf(stderr, "loadgen: -H %s: only loopback addresses are allowed\n", o.host);
        return 1;
    }
    if (o.threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        o.threads = cpus > 0 && (unsigned long)cpus < o.conns ? (unsigned)cpus : o.conns;
    }
    if (o.threads > o.conns) {
        o.threads = o.conns;
    }
    lg_variants_init();
    /* Sleeps end within 1 us of the timetable, not the default 50 us. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    lg_slot_bytes = o.size + LG_EVENT_SLACK;

    threads = calloc(o.threads, sizeof(*threads));
    conns = calloc(o.conns, sizeof(*conns));
    if (threads == NULL || conns == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        goto out;
    }
    for (unsigned i = 0; i < o.conns; i++) {
        conns[i].fd = -1;
    }
    /* Connecting waits at most 10 s for a receiver that is still starting. */
    deadline =
        lg_clock_ns(CLOCK_MONOTONIC) + (uint64_t)(o.timeout_s < 10 ? o.timeout_s : 10) * LG_NS;
    for (unsigned i = 0; i < o.conns; i++) {
        struct lg_conn *c = &conns[i];

        c->next = i;
        c->left = i < o.events ? (o.events - i + o.conns - 1) / o.conns : 0;
        if (o.udp) {
            c->buf = malloc((size_t)LG_UDP_BATCH * lg_slot_bytes);
            c->msgs = calloc(LG_UDP_BATCH, sizeof(*c->msgs));
            c->iov = calloc(LG_UDP_BATCH, sizeof(*c->iov));
            if (c->msgs != NULL && c->iov != NULL) {
                for (unsigned m = 0; m < LG_UDP_BATCH; m++) {
                    c->msgs[m].msg_hdr.msg_iov = &c->iov[m];
                    c->msgs[m].msg_hdr.msg_iovlen = 1;
                }
            }
        } else {
            c->buf = malloc(LG_BATCH_BYTES + LG_MAX_SIZE + LG_EVENT_SLACK);
        }
        if (c->buf == NULL || (o.udp && (c->msgs == NULL || c->iov == NULL))) {
            fprintf(stderr, "loadgen: out of memory\n");
            goto out;
        }
        c->fd = lg_connect(&o, &ss, sslen, deadline);
        if (c->fd < 0) {
            goto out;
        }
    }

    t0_mono = lg_clock_ns(CLOCK_MONOTONIC);
    deadline = t0_mono + (uint64_t)o.timeout_s * LG_NS;
    t0_real = lg_clock_ns(CLOCK_REALTIME);
    for (unsigned i = 0; i < o.threads; i++) {
        struct lg_thread *t = &threads[i];

        t->o = &o;
        t->t0_mono = t0_mono;
        t->t0_real = t0_real;
        t->deadline_mono = deadline;
        /* Thread i owns a contiguous slice of the connections. */
        t->conns = &conns[(uint64_t)i * o.conns / o.threads];
        t->nconns =
            (unsigned)((uint64_t)(i + 1) * o.conns / o.threads - (uint64_t)i * o.conns / o.threads);
    }
    for (unsigned i = 0; i < o.threads; i++) {
        int err = pthread_create(&threads[i].tid, NULL, lg_thread_main, &threads[i]);

        if (err != 0) {
            fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(err));
            /* Join what started so nothing outlives main's buffers. */
            for (unsigned j = 0; j < i; j++) {
                pthread_join(threads[j].tid, NULL);
            }
            goto out;
        }
    }
    for (unsigned i = 0; i < o.threads; i++) {
        struct lg_thread *t = &threads[i];

        pthread_join(t->tid, NULL);
        events += t->events;
        bytes += t->bytes;
        errors += t->errors;
        if (t->t_first != 0 && (t_first == 0 || t->t_first < t_first)) {
            t_first = t->t_first;
        }
        if (t->t_last > t_last) {
            t_last = t->t_last;
        }
    }
    {
        double secs = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0.0;

        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        printf("events=%" PRIu64 " bytes=%" PRIu64 " secs=%.6f eps=%.0f MBps=%.1f errors=%" PRIu64
               " t_first_ns=%" PRIu64 " t_last_ns=%" PRIu64 " cpu_s=%.3f",
               events, bytes, secs, secs > 0 ? (double)events / secs : 0.0,
               secs > 0 ? (double)bytes / secs / 1e6 : 0.0, errors, t_first, t_last,
               (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
    rc = (events == o.events && errors == 0) ? 0 : 1;
    if (o.wait_path != NULL) {
        uint64_t t_final, final;
        const char *how = lg_wait_file(o.wait_path, bytes, o.wait_s, &t_final, &final);

        printf(" t_final_ns=%" PRIu64 " final_bytes=%" PRIu64 " wait=%s", t_final, final, how);
        if (rc == 0 && strcmp(how, "complete") != 0) {
            rc = 2;
        }
    }
    printf("\n");
    fflush(stdout);
out:
    if (conns != NULL) {
        for (unsigned i = 0; i < o.conns; i++) {
            if (conns[i].fd >= 0) {
                close(conns[i].fd);
            }
            free(conns[i].buf);
            free(conns[i].msgs);
            free(conns[i].iov);
        }
    }
    free(threads);
    free(conns);
    return rc;
bad:
    lg_usage();
    return 2;
}
