/*
 * wake — eventfd wake-ups with the announce / fence / re-check protocol
 * (see include/sluice/wake.h for the argument why no wake-up is lost).
 * Any thread may signal; one thread sleeps on each sl_wake.
 */
#include "sluice/wake.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int
sl_wake_init(struct sl_wake *w)
{
    atomic_init(&w->sleeping, 0);
    atomic_init(&w->signals, 0);
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return w->fd < 0 ? -1 : 0;
}

void
sl_wake_fini(struct sl_wake *w)
{
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
}

void
sl_wake_announce(struct sl_wake *w)
{
    atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void
sl_wake_cancel(struct sl_wake *w)
{
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

void
sl_wake_drain(struct sl_wake *w)
{
    uint64_t v;
    while (read(w->fd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
}

bool
sl_wake_signal(struct sl_wake *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) == 0) {
        return false;
    }
    if (atomic_exchange_explicit(&w->sleeping, 0, memory_order_acq_rel) == 0) {
        return false;
    }
    sl_wake_kick(w);
    atomic_fetch_add_explicit(&w->signals, 1, memory_order_relaxed);
    return true;
}

void
sl_wake_kick(struct sl_wake *w)
{
    uint64_t one = 1;
    ssize_t r;
    do {
        r = write(w->fd, &one, sizeof(one));
    } while (r < 0 && errno == EINTR);
}
