/*
 * sink — what every sink type shares: the wall clock, the
 * health state (a seqlock of atomics: written by the writer thread on
 * transitions, read by any thread), and the whole-line arithmetic over
 * iovecs that lets a sink continue a torn line exactly (see sink.h).
 */
#include "sluice/sink.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HEALTH_LOG_INTERVAL_MS 10000
#define HEALTH_READ_TRIES 1000

int64_t
sl_sink_now(const struct sl_sink *s)
{
    return sl_clock_now(s->clock);
}

/* ---- health ----------------------------------------------------------------------- */

static void
health_reason(const struct sl_sink *s, enum sl_sink_op op, int err, int target, char *buf,
              size_t len)
{
    const char *obj = s->ops->object != NULL ? s->ops->object(s, target) : NULL;
    const char *what = obj != NULL ? obj : "?"; /* the file's path, the target */
    char ebuf[128];
    const char *e = err != 0 ? strerror_r(err, ebuf, sizeof(ebuf)) : "failed";

    switch (op) {
    case SL_SINK_OP_NONE:
        snprintf(buf, len, "failing");
        break;
    case SL_SINK_OP_OPEN:
        snprintf(buf, len, "open %s: %s", what, e);
        break;
    case SL_SINK_OP_WRITE:
        snprintf(buf, len, "write %s: %s", what, e);
        break;
    case SL_SINK_OP_FSYNC:
        snprintf(buf, len, "fdatasync %s: %s", what, e);
        break;
    case SL_SINK_OP_CONNECT:
        snprintf(buf, len, "connect %s: %s", what, e);
        break;
    case SL_SINK_OP_CONNECT_TIMEOUT:
        snprintf(buf, len, "connect %s: no answer within connect_timeout", what);
        break;
    case SL_SINK_OP_SEND:
        snprintf(buf, len, "send to %s: %s", what, e);
        break;
    case SL_SINK_OP_WRITE_TIMEOUT:
        snprintf(buf, len, "%s acknowledged nothing for write_timeout", what);
        break;
    case SL_SINK_OP_PEER_CLOSED:
        snprintf(buf, len, "%s closed the connection", what);
        break;
    case SL_SINK_OP_TLS:
        snprintf(buf, len, "TLS handshake with %s failed (see sluice_tls_handshake_failures_total)",
                 what);
        break;
    case SL_SINK_OP_REFUSED:
        snprintf(buf, len, "%s", what);
        break;
    }
}

void
sl_sink_health(const struct sl_sink *s, struct sl_sink_health *out)
{
    struct sl_sink_health_state *h = (struct sl_sink_health_state *)&s->health;
    int target = -1;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < HEALTH_READ_TRIES; i++) {
        unsigned seq = atomic_load_explicit(&h->seq, memory_order_acquire);
        if (seq & 1u) {
            continue; /* the writer is in the middle of an update */
        }
        out->ok = !atomic_load_explicit(&h->failing, memory_order_relaxed);
        out->op = (enum sl_sink_op)atomic_load_explicit(&h->op, memory_order_relaxed);
        out->err = atomic_load_explicit(&h->err, memory_order_relaxed);
        target = atomic_load_explicit(&h->target, memory_order_relaxed);
        out->since_ms = atomic_load_explicit(&h->since_ms, memory_order_relaxed);
        out->failures = atomic_load_explicit(&h->failures, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&h->seq, memory_order_relaxed) == seq) {
            break;
        }
    }
    if (!out->ok) {
        health_reason(s, out->op, out->err, target, out->reason, sizeof(out->reason));
    }
}

/* The writer's side of the seqlock. */
static void
health_store(struct sl_sink *s, bool failing, enum sl_sink_op op, int err, int target, int64_t now)
{
    struct sl_sink_health_state *h = &s->health;
    unsigned seq = atomic_load_explicit(&h->seq, memory_order_relaxed);

    atomic_store_explicit(&h->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (failing && !atomic_load_explicit(&h->failing, memory_order_relaxed)) {
        atomic_store_explicit(&h->failures,
                              atomic_load_explicit(&h->failures, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    atomic_store_explicit(&h->failing, failing, memory_order_relaxed);
    atomic_store_explicit(&h->op, (int)op, memory_order_relaxed);
    atomic_store_explicit(&h->err, err, memory_order_relaxed);
    atomic_store_explicit(&h->target, target, memory_order_relaxed);
    atomic_store_explicit(&h->since_ms, now, memory_order_relaxed);
    atomic_store_explicit(&h->seq, seq + 2, memory_order_release);
}

void
sl_sink_health_fail(struct sl_sink *s, enum sl_sink_op op, int err, int target)
{
    struct sl_sink_health_state *h = &s->health;
    bool was_failing = atomic_load_explicit(&h->failing, memory_order_relaxed);
    int64_t now = sl_sink_now(s);
    char reason[320];
    uint64_t sup = 0;

    if (was_failing && atomic_load_explicit(&h->op, memory_order_relaxed) == (int)op &&
        atomic_load_explicit(&h->err, memory_order_relaxed) == err &&
        atomic_load_explicit(&h->target, memory_order_relaxed) == target) {
        return; /* the same failure again */
    }
    /* A new reason keeps the time the sink started failing. */
    health_store(s, true, op, err, target,
                 was_failing ? atomic_load_explicit(&h->since_ms, memory_order_relaxed) : now);
    if (s->stats != NULL) {
        if (!was_failing || sl_counter_get(&s->stats->failing_since_ms) == 0) {
            sl_counter_set(&s->stats->failing_since_ms, (uint64_t)now);
        }
        sl_counter_set(&s->stats->last_errno, (uint64_t)(err != 0                       ? err
                                                         : op == SL_SINK_OP_PEER_CLOSED ? ENOTCONN
                                                                                        : EIO));
    }
    if (h->rl.interval_ms == 0) {
        h->rl.interval_ms = HEALTH_LOG_INTERVAL_MS;
    }
    if (sl_ratelimit_ok(&h->rl, sl_now_ms(), &sup)) {
        health_reason(s, op, err, target, reason, sizeof(reason));
        log_warnx("sink \"%s\": failing: %s; its events are held and retried (when its "
                  "queue is full, TCP sources pause and UDP events are dropped and counted)",
                  s->cfg->name, reason);
    }
}

void
sl_sink_health_ok(struct sl_sink *s)
{
    struct sl_sink_health_state *h = &s->health;
    int64_t now, since;

    if (!atomic_load_explicit(&h->failing, memory_order_relaxed)) {
        return;
    }
    now = sl_sink_now(s);
    since = atomic_load_explicit(&h->since_ms, memory_order_relaxed);
    health_store(s, false, SL_SINK_OP_NONE, 0, -1, now);
    if (s->stats != NULL) {
        sl_counter_set(&s->stats->failing_since_ms, 0);
    }
    log_info("sink \"%s\": working again after %.1f s", s->cfg->name,
             (double)(now > since ? now - since : 0) / 1000.0);
}

void
sl_sink_note_failure(struct sl_sink *s, int err)
{
    sl_counter_set(&s->stats->last_errno, (uint64_t)(err != 0 ? err : EIO));
    if (sl_counter_get(&s->stats->failing_since_ms) == 0) {
        sl_counter_set(&s->stats->failing_since_ms, (uint64_t)sl_sink_now(s));
    }
}

void
sl_sink_note_success(struct sl_sink *s)
{
    /* A write that went through does not end a failure the sink's own
     * health names (an acknowledging sink takes data while its peer does
     * not acknowledge it: nats); sl_sink_health_ok does. */
    if (atomic_load_explicit(&s->health.failing, memory_order_relaxed)) {
        return;
    }
    sl_counter_set(&s->stats->failing_since_ms, 0);
}

/* ---- whole lines in iovecs -------------------------------------------------------- */

size_t
sl_iov_total(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;

    for (int i = 0; i < iovcnt; i++) {
        n += iov[i].iov_len;
    }
    return n;
}

int
sl_iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len, struct iovec *out,
             int outmax)
{
    int n = 0;

    for (int i = 0; i < iovcnt && len > 0 && n < outmax; i++) {
        size_t l = iov[i].iov_len;
        if (off >= l) {
            off -= l;
            continue;
        }
        size_t take = l - off < len ? l - off : len;
        out[n].iov_base = (char *)iov[i].iov_base + off;
        out[n].iov_len = take;
        n++;
        len -= take;
        off = 0;
    }
    return n;
}

size_t
sl_iov_line_end(const struct iovec *iov, int iovcnt, size_t off)
{
    size_t base = 0;

    for (int i = 0; i < iovcnt; i++) {
        size_t l = iov[i].iov_len;
        if (off < base + l) {
            size_t from = off > base ? off - base : 0;
            const char *p = iov[i].iov_base;
            const char *nl = memchr(p + from, '\n', l - from);
            if (nl != NULL) {
                return base + (size_t)(nl - p) + 1;
            }
        }
        base += l;
    }
    return base;
}

size_t
sl_iov_last_line_end(const struct iovec *iov, int iovcnt, size_t from, size_t upto)
{
    size_t base = sl_iov_total(iov, iovcnt);

    for (int i = iovcnt - 1; i >= 0; i--) {
        size_t l = iov[i].iov_len;
        base -= l;
        if (base >= upto) {
            continue;
        }
        if (base + l <= from) {
            break;
        }
        /* Search [lo, hi) of this iovec for the last '\n'. */
        size_t lo = from > base ? from - base : 0;
        size_t hi = upto < base + l ? upto - base : l;
        if (hi > lo) {
            const char *p = iov[i].iov_base;
            const char *nl = memrchr(p + lo, '\n', hi - lo);
            if (nl != NULL) {
                return base + (size_t)(nl - p) + 1;
            }
        }
    }
    return from;
}

size_t
sl_sink_account(const struct iovec *iov, int iovcnt, size_t total, size_t end, size_t *partial)
{
    size_t done;

    if (end >= total) {
        *partial = 0;
        return total;
    }
    done = sl_iov_last_line_end(iov, iovcnt, 0, end);
    *partial = end - done;
    return done;
}
