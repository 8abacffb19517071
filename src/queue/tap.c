/*
 * tap — the hub of live taps (sluice/tap.h): the writer copies sampled
 * lines into each tap's fill buffer, the admin endpoint swaps it for an
 * empty one and sends what it took.
 *
 * DESIGN
 * One mutex guards the list of taps and every tap's fill buffer.  The
 * writer only ever try-locks it (a miss drops the chunk's lines for the
 * taps, counted as busy); the main thread locks it to attach, detach and
 * take, and holds it only to swap two pointers or to edit the list, so a
 * miss is rare.  Each tap has two buffers of SL_TAP_BUF_BYTES: the writer
 * appends whole lines to the fill one; a take swaps fill and taken, so the
 * main thread reads the taken one without the lock while the writer fills
 * the other.  Memory is therefore fixed at attach: two buffers per tap, at
 * most SL_TAP_MAX taps.
 *
 * Sampling: a token bucket per tap, filled at `rate` lines a second
 * (CLOCK_MONOTONIC) and holding at most TAP_BURST_MS of them (one line at
 * least); each matching line kept takes one token, and while the bucket is
 * empty the writer's chunks are not looked at (a chunk then costs a clock
 * reading and a comparison).  So a tap sees the lines that match as they
 * come, up to `rate` a second, in bursts no larger than its buffer takes.
 * Lines not kept by the rate or the filters are not counted: sampling is
 * the design, not a loss.
 *
 * Thread: sl_tap_offer_slow on the writer (any thread is safe); the rest on
 * the admin endpoint's thread.  The counters are relaxed atomics that
 * /metrics reads from the main thread.
 */
#include "sluice/tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/clock.h"
#include "sluice/stats.h"

/* The sampling bucket holds this many ms of a tap's rate: a burst after a
 * quiet spell is at most that (SL_TAP_RATE_MAX lines of ~200 bytes for
 * 50 ms fit SL_TAP_BUF_BYTES, taken every 25 ms by the admin endpoint). */
#define TAP_BURST_MS 50

struct sl_tap {
    char queue[SL_TAP_QUEUE_MAX]; /* "" = every queue */
    char grep[SL_TAP_GREP_MAX];   /* "" = every line */
    size_t grep_len;
    unsigned rate;
    /* Under hub.lock: */
    char *fill; /* the writer appends here */
    size_t fill_len;
    uint64_t tokens;  /* the sampling bucket, in thousandths of a line */
    uint64_t last_ms; /* when it was last filled */
    /* Main thread only: */
    char *taken;
};

static struct {
    pthread_mutex_t lock;
    struct sl_tap *taps[SL_TAP_MAX]; /* under lock; NULL = free slot */
    sl_counter attached;
    sl_counter lines;
    sl_counter dropped[SL_TAP_DROP_NREASONS];
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER};

atomic_uint sl_tap_nattached;

/* The hub's counters may be added to by more than one thread (busy by
 * whichever thread offers): a real atomic add, not sl_counter_add. */
static void
tap_count(sl_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Fills t's bucket for the time since the last fill: rate lines a second,
 * at most TAP_BURST_MS worth (at least one line) in it.  Under hub.lock. */
static void
tap_fill_locked(struct sl_tap *t, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)t->rate * TAP_BURST_MS;
    if (cap < 1000) {
        cap = 1000;
    }
    uint64_t add = (now_ms - t->last_ms) * t->rate;
    t->tokens = add >= cap || t->tokens + add >= cap ? cap : t->tokens + add;
    t->last_ms = now_ms;
}

/* Appends the lines of data[0..len) that t keeps; under hub.lock. */
static void
tap_take_lines_locked(struct sl_tap *t, const char *data, size_t len)
{
    uint64_t copied = 0, full = 0;
    const char *p = data, *end = data + len;
    while (p < end && t->tokens >= 1000) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p = nl != NULL ? nl + 1 : end;
        if (t->grep_len > 0 && memmem(line, n, t->grep, t->grep_len) == NULL) {
            continue;
        }
        t->tokens -= 1000;
        if (SL_TAP_BUF_BYTES - t->fill_len < n + 1) {
            full++;
            continue;
        }
        memcpy(t->fill + t->fill_len, line, n);
        t->fill[t->fill_len + n] = '\n';
        t->fill_len += n + 1;
        copied++;
    }
    if (copied > 0) {
        tap_count(&hub.lines, copied);
    }
    if (full > 0) {
        tap_count(&hub.dropped[SL_TAP_DROP_BUFFER_FULL], full);
    }
}

void
sl_tap_offer_slow(const char *queue, const char *data, size_t len, uint32_t nevents)
{
    if (len == 0) {
        return;
    }
    if (pthread_mutex_trylock(&hub.lock) != 0) {
        tap_count(&hub.dropped[SL_TAP_DROP_BUSY], nevents);
        return;
    }
    uint64_t now_ms = 0;
    for (size_t i = 0; i < SL_TAP_MAX; i++) {
        struct sl_tap *t = hub.taps[i];
        if (t == NULL || (t->queue[0] != '\0' && strcmp(t->queue, queue) != 0)) {
            continue;
        }
        if (now_ms == 0) {
            now_ms = sl_now_ms();
        }
        tap_fill_locked(t, now_ms);
        if (t->tokens < 1000) {
            continue; /* over its rate: the chunk is not looked at */
        }
        tap_take_lines_locked(t, data, len);
    }
    pthread_mutex_unlock(&hub.lock);
}

static void
tap_free(struct sl_tap *t)
{
    if (t != NULL) {
        free(t->fill);
        free(t->taken);
        free(t);
    }
}

struct sl_tap *
sl_tap_attach(const char *queue, const char *grep, unsigned rate)
{
    size_t glen = grep != NULL ? strlen(grep) : 0;
    size_t qlen = queue != NULL ? strlen(queue) : 0;
    if (rate < 1 || rate > SL_TAP_RATE_MAX || glen >= SL_TAP_GREP_MAX || qlen >= SL_TAP_QUEUE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    struct sl_tap *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->fill = malloc(SL_TAP_BUF_BYTES)) == NULL ||
        (t->taken = malloc(SL_TAP_BUF_BYTES)) == NULL) {
        tap_free(t);
        errno = ENOMEM;
        return NULL;
    }
    memcpy(t->queue, queue != NULL ? queue : "", qlen + 1);
    memcpy(t->grep, grep != NULL ? grep : "", glen + 1);
    t->grep_len = glen;
    t->rate = rate;
    t->last_ms = sl_now_ms();
    t->tokens = 1000;
    pthread_mutex_lock(&hub.lock);
    for (size_t i = 0; i < SL_TAP_MAX; i++) {
        if (hub.taps[i] == NULL) {
            hub.taps[i] = t;
            atomic_fetch_add_explicit(&sl_tap_nattached, 1, memory_order_relaxed);
            pthread_mutex_unlock(&hub.lock);
            tap_count(&hub.attached, 1);
            return t;
        }
    }
    pthread_mutex_unlock(&hub.lock);
    tap_free(t);
    errno = EBUSY;
    return NULL;
}

void
sl_tap_detach(struct sl_tap *t)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_lock(&hub.lock);
    for (size_t i = 0; i < SL_TAP_MAX; i++) {
        if (hub.taps[i] == t) {
            hub.taps[i] = NULL;
            atomic_fetch_sub_explicit(&sl_tap_nattached, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&hub.lock);
    tap_free(t);
}

const char *
sl_tap_take(struct sl_tap *t, size_t *len)
{
    pthread_mutex_lock(&hub.lock);
    char *got = t->fill;
    *len = t->fill_len;
    t->fill = t->taken;
    t->fill_len = 0;
    pthread_mutex_unlock(&hub.lock);
    t->taken = got;
    return got;
}

void
sl_tap_count_dropped(struct sl_tap *t, enum sl_tap_drop reason, uint64_t n)
{
    (void)t;
    if (reason < SL_TAP_DROP_NREASONS && n > 0) {
        tap_count(&hub.dropped[reason], n);
    }
}

void
sl_tap_get_stats(struct sl_tap_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->clients = atomic_load_explicit(&sl_tap_nattached, memory_order_relaxed);
    st->attached = sl_counter_get(&hub.attached);
    st->lines = sl_counter_get(&hub.lines);
    for (int r = 0; r < SL_TAP_DROP_NREASONS; r++) {
        st->dropped[r] = sl_counter_get(&hub.dropped[r]);
    }
}

const char *
sl_tap_drop_name(enum sl_tap_drop reason)
{
    switch (reason) {
    case SL_TAP_DROP_BUSY:
        return "busy";
    case SL_TAP_DROP_BUFFER_FULL:
        return "buffer_full";
    case SL_TAP_DROP_SLOW_CLIENT:
        return "slow_client";
    default:
        return "unknown";
    }
}
