/*
 * micro — what the micro-benchmarks (bench/micro_*.c) share: a seeded
 * xorshift generator, so every run times the same inputs, and a monotonic
 * clock in seconds.  Header-only: each benchmark is one standalone file.
 */
#ifndef SLUICE_BENCH_MICRO_H
#define SLUICE_BENCH_MICRO_H

#include <stdint.h>
#include <time.h>

/* xorshift64*: the next value of the sequence seeded by *s (non-zero). */
static inline uint64_t
bench_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* CLOCK_MONOTONIC in seconds. */
static inline double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This thread's CPU time in seconds: on a loaded machine it counts only
 * the time the benchmark ran, not the time it waited for a core. */
static inline double
bench_cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
