/*
 * thread — starting and joining a worker thread (the producers, the writer,
 * the rotation housekeeper), and the stop request the producers and the
 * writer share.
 *
 * A worker is started with every signal blocked, so it inherits a full
 * mask: only the main thread takes signals.  Stopping is two steps: the
 * caller raises the thread's stop level with sl_thread_stop_request (0 run,
 * 1 drain and exit, 2 exit now; it only grows, so a forced stop stays
 * forced) and wakes the thread's loop (sl_wake_kick); the thread sees the
 * level, finishes and returns; the caller joins it, with or without a
 * deadline.
 *
 * Thread: start and join by the one owner (main); stop_request from any.
 */
#ifndef SLUICE_UTIL_THREAD_H
#define SLUICE_UTIL_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* Embedded in its owner; zeroed means "not started". */
struct sl_thread {
    pthread_t id;
    bool started; /* running or not yet joined */
};

/* Runs fn(arg) on a new thread with all signals blocked.  Returns 0, or -1
 * with errno set (the thread does not exist, t stays not started). */
int sl_thread_start(struct sl_thread *t, void *(*fn)(void *), void *arg);

/* Waits for the thread to return; a no-op when it was never started or is
 * already joined. */
void sl_thread_join(struct sl_thread *t);

/* As sl_thread_join, but gives up at deadline (CLOCK_REALTIME).  Returns 0
 * when joined (or never started), -1 when the thread still runs. */
int sl_thread_join_until(struct sl_thread *t, const struct timespec *deadline);

/* Raises *stop to 1 (force false) or 2 (force true), never lowering it. */
void sl_thread_stop_request(atomic_int *stop, bool force);

#endif
