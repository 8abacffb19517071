/*
 * wake — eventfd wake-ups with the announce / fence / re-check protocol
 * (see include/sluice/wake.h for the argument why no wake-up is lost).
 * Any thread may signal; one thread sleeps on each sl_wake.
 */
#include "sluice/wake.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int
sl_wake_init(struct sl_wake *w)
{
    w->edge = false;
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

/*
 * THE EDGE-TRIGGERED WAKE.  A level-triggered eventfd must be read empty on
 * every wake-up, or epoll reports it again at once: one read(2) per
 * wake-up of the sleeper.  Registered with EPOLLET instead, every eventfd
 * write (sl_wake_signal on the asleep -> awake transition, sl_wake_kick)
 * raises a new edge, since the kernel wakes the fd's waiters on each write
 * whatever the counter holds; so the callback runs once per write and the
 * counter may simply grow.  It grows by one per write and the eventfd
 * refuses a write only at 2^64 - 2: unreachable (centuries at a million
 * writes per second).  What it buys: the writer wakes once per pushed
 * chunk at low rates (4,400 times a second at 10 k events/s), and on the
 * bench VM a syscall costs ~2.5 us (it traps to the hypervisor), so this is
 * one syscall in four of the writer's per wake-up; figures in
 * bench/results/analysis.md.  A backend without edge triggering (poll,
 * select: EVENT_NOEPOLL) keeps the read.
 */
struct event *
sl_wake_event_new(struct sl_wake *w, struct event_base *base,
                  void (*cb)(evutil_socket_t, short, void *), void *arg)
{
    w->edge = (event_base_get_features(base) & EV_FEATURE_ET) != 0;
    return event_new(base, w->fd, EV_READ | EV_PERSIST | (w->edge ? EV_ET : 0), cb, arg);
}

void
sl_wake_consume(struct sl_wake *w)
{
    if (!w->edge) {
        sl_wake_drain(w);
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
