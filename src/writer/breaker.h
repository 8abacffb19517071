/*
 * breaker.h — how long THE INLINE TURN's breaker closes the turn
 * (writer.c).  A header of its own so the policy is tested alone
 * (tests/check_writer.c, TCase breaker).
 */
#ifndef SLUICE_WRITER_BREAKER_H
#define SLUICE_WRITER_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

/* The shortest and the longest closure, in ms. */
#define SL_BREAKER_MIN_MS 50u
#define SL_BREAKER_MAX_MS 500u

/*
 * The length of the closure a trip starts.  last_ms: the previous
 * closure's length (0: none yet); since_ms: from the previous trip to this
 * one; stalled: a sink is failing or waiting (the output is known to be
 * stuck).  A slow turn alone is weak evidence: on this kind of VM a pass
 * over 1 ms is as often the vCPU stalled (a host fault, a page report
 * pass) as the output slow, and a 500 ms closure for each such stall kept
 * the producers handing off to the writer thread for about a twentieth of
 * the time at 100 k events/s (bench/results/analysis.md, "(breaker)").  So
 * a slow turn closes the turn for SL_BREAKER_MIN_MS; one that trips again
 * within the previous closure plus SL_BREAKER_MAX_MS (an output that stays
 * slow trips at the first turn after each closure) closes it for twice
 * the previous, up to SL_BREAKER_MAX_MS, which a stuck sink gets at once.
 * An output that stays slow thus costs a producer one slow pass at 50,
 * 100, 200, 400 ms and then one per 500 ms, as before.
 */
static inline uint64_t
sl_breaker_close_ms(uint64_t last_ms, uint64_t since_ms, bool stalled)
{
    if (stalled) {
        return SL_BREAKER_MAX_MS;
    }
    if (last_ms == 0 || since_ms >= last_ms + SL_BREAKER_MAX_MS) {
        return SL_BREAKER_MIN_MS;
    }
    return last_ms >= SL_BREAKER_MAX_MS / 2 ? SL_BREAKER_MAX_MS : 2 * last_ms;
}

#endif
