/*
 * clock — the one set of clock readings every stage uses.
 *
 * Two clocks, each for one purpose:
 *   monotonic (sl_now_ms, sl_now_ns): intervals, timeouts, rate limits,
 *     back-offs; never jumps, means nothing across processes.
 *   realtime (sl_realtime_ms, sl_realtime_ns): what users see and compare
 *     with other machines: an event's received_at, a chunk's first_ns (end
 *     to end latency), rotation boundaries, the start time in /metrics.
 * A sink's failure fields and rotation read the realtime clock through an
 * sl_clock_fn so that tests can put them on a fake one (sl_clock_now).
 *
 * Inline: producers read the realtime clock once per read, the writer once
 * per pass; a call through a function would cost more than the reading.
 * Thread: any.
 */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The clock id's reading in nanoseconds (its epoch: boot or 1970). */
static inline uint64_t
sl_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t
sl_now_ms(void)
{
    return sl_clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t
sl_now_ns(void)
{
    return sl_clock_ns(CLOCK_MONOTONIC);
}

/* CLOCK_REALTIME in milliseconds since the epoch. */
static inline uint64_t
sl_realtime_ms(void)
{
    return sl_clock_ns(CLOCK_REALTIME) / 1000000u;
}

/* CLOCK_REALTIME in nanoseconds since the epoch (sl_chunk.first_ns). */
static inline uint64_t
sl_realtime_ns(void)
{
    return sl_clock_ns(CLOCK_REALTIME);
}

/* Wall-clock time (CLOCK_REALTIME) in ms since the epoch; tests pass a
 * fake one. */
typedef int64_t (*sl_clock_fn)(void);

/* clock(), or CLOCK_REALTIME in ms when clock is NULL. */
static inline int64_t
sl_clock_now(sl_clock_fn clock)
{
    return clock != NULL ? clock() : (int64_t)sl_realtime_ms();
}

/* t plus ms, normalised: a deadline for pthread_timedjoin_np (realtime)
 * or pthread_cond_timedwait (on the clock the condvar was made with). */
static inline struct timespec
sl_timespec_add_ms(struct timespec t, uint64_t ms)
{
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

#endif
