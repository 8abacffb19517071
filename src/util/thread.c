/*
 * thread — a worker thread's start / stop request / join (util/thread.h).
 */
#include "util/thread.h"

#include <errno.h>
#include <signal.h>

int
sl_thread_start(struct sl_thread *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    int r;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = pthread_create(&t->id, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        errno = r;
        return -1;
    }
    t->started = true;
    return 0;
}

void
sl_thread_join(struct sl_thread *t)
{
    if (t->started) {
        pthread_join(t->id, NULL);
        t->started = false;
    }
}

int
sl_thread_join_until(struct sl_thread *t, const struct timespec *deadline)
{
    if (t->started && pthread_timedjoin_np(t->id, NULL, deadline) != 0) {
        return -1;
    }
    t->started = false;
    return 0;
}

void
sl_thread_stop_request(atomic_int *stop, bool force)
{
    int want = force ? 2 : 1;
    int cur = atomic_load(stop);
    while (cur < want && !atomic_compare_exchange_weak(stop, &cur, want)) {
    }
}
