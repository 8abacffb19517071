/*
 * tap — live samples of the events leaving the queues, for `sluice tap`
 * (GET /tap on the admin endpoint, docs/protocol.md "Tap").
 *
 * The writer offers every chunk it pops (sl_queue_pop calls sl_tap_offer);
 * each attached tap copies the lines it wants into a small bounded buffer,
 * and the admin endpoint (main thread) takes that buffer's contents every
 * few milliseconds and sends them to its client.  A tap can never slow the
 * writer or grow memory:
 *   - with no tap attached, an offer is one relaxed atomic load;
 *   - the writer only try-locks: if the main thread holds the lock at that
 *     moment, the chunk's lines are not sampled (counted as dropped, reason
 *     busy) — the writer never waits;
 *   - a tap keeps the lines that match its filters as they come, at most
 *     its rate (≤ SL_TAP_RATE_MAX) a second, in bursts of at most 50 ms
 *     of that rate (a token bucket: the sampling rule), and at most
 *     SL_TAP_BUF_BYTES of them until the main thread takes them; what does
 *     not fit is dropped (reason buffer_full);
 *   - the admin endpoint drops what its client does not read fast enough
 *     (reason slow_client, counted with sl_tap_count_dropped).
 * At most SL_TAP_MAX taps at once.
 *
 * The hub is process-wide (one static instance in tap.c): sl_queue_pop has
 * no other way to it that survives queues being rebuilt on reload, and it
 * holds nothing but the taps and their counters.
 *
 * Thread: sl_tap_offer on any thread (the writer); everything else on the
 * admin endpoint's thread (main).
 */
#ifndef SLUICE_TAP_H
#define SLUICE_TAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SL_TAP_MAX 4                  /* taps attached at once */
#define SL_TAP_BUF_BYTES (128 * 1024) /* what one tap holds between two takes */
#define SL_TAP_RATE_DEFAULT 1000      /* lines per second per tap */
#define SL_TAP_RATE_MAX 10000
#define SL_TAP_GREP_MAX 256  /* bytes of the --grep string, NUL included */
#define SL_TAP_QUEUE_MAX 256 /* bytes of a queue name, NUL included */

struct sl_tap;

/* Why a sampled line did not reach its client.  Busy counts every line of
 * the chunk that was not looked at. */
enum sl_tap_drop {
    SL_TAP_DROP_BUSY,        /* the main thread held the lock at the writer's try */
    SL_TAP_DROP_BUFFER_FULL, /* the tap's buffer was full (the main thread is behind) */
    SL_TAP_DROP_SLOW_CLIENT, /* the client's connection had SL_TAP_* bytes unread */
    SL_TAP_DROP_NREASONS,
};

struct sl_tap_stats {
    unsigned clients;                       /* taps attached now */
    uint64_t attached;                      /* taps attached since start */
    uint64_t lines;                         /* lines copied into taps' buffers */
    uint64_t dropped[SL_TAP_DROP_NREASONS]; /* lines dropped, by reason */
};

/* Non-zero while a tap is attached (the writer's fast path). */
extern atomic_uint sl_tap_nattached;

void sl_tap_offer_slow(const char *queue, const char *data, size_t len, uint32_t nevents);

/*
 * Offers a popped chunk's lines (data[0..len), nevents lines, each ending
 * in '\n') of the queue named queue to every attached tap.  Never blocks,
 * never allocates.  Borrows its arguments for the call.  Any thread.
 */
static inline void
sl_tap_offer(const char *queue, const char *data, size_t len, uint32_t nevents)
{
    if (atomic_load_explicit(&sl_tap_nattached, memory_order_relaxed) != 0) {
        sl_tap_offer_slow(queue, data, len, nevents);
    }
}

/*
 * Attaches a tap that samples the lines of the queue named queue (NULL or
 * "": every queue) containing grep (NULL or "": every line), at most rate
 * (1..SL_TAP_RATE_MAX) a second.  Strings are copied.  Returns the tap
 * (free with sl_tap_detach), or NULL with errno EBUSY (SL_TAP_MAX attached),
 * EINVAL (rate out of range, grep too long) or ENOMEM.
 */
struct sl_tap *sl_tap_attach(const char *queue, const char *grep, unsigned rate);

/* Detaches and frees t; the writer no longer sees it on return.  NULL is a
 * no-op. */
void sl_tap_detach(struct sl_tap *t);

/*
 * Takes what t holds: returns a buffer of *len bytes of whole lines (owned
 * by t, valid until the next sl_tap_take or sl_tap_detach of t), possibly
 * empty.  The writer fills another buffer meanwhile.
 */
const char *sl_tap_take(struct sl_tap *t, size_t *len);

/* Counts n lines of t as dropped for reason (the admin endpoint's drops). */
void sl_tap_count_dropped(struct sl_tap *t, enum sl_tap_drop reason, uint64_t n);

/* Copies the counters of every tap, past and present, into *st.  Any thread. */
void sl_tap_get_stats(struct sl_tap_stats *st);

/* The metric label of a drop reason. */
const char *sl_tap_drop_name(enum sl_tap_drop reason);

#endif
