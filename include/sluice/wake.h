/*
 * wake — an eventfd that wakes a sleeping thread, at most once per sleep.
 *
 * The protocol that keeps a wake-up from being lost (announce / fence /
 * re-check):
 *   sleeper:  sl_wake_announce(w);      -- sleeping = 1, full fence
 *             if (work is available) { sl_wake_cancel(w); go on; }
 *             else wait until w->fd is readable, then sl_wake_drain(w)
 *             (or, with the event of sl_wake_event_new, sl_wake_consume(w):
 *             edge-triggered, every eventfd write is a new event and
 *             nothing needs reading).
 *   waker:    make the work visible (an atomic store or RMW), then
 *             sl_wake_signal(w);        -- full fence, if sleeping: clear it
 *                                          and write the eventfd
 * With a sequentially consistent fence on both sides, either the sleeper's
 * re-check sees the work or the waker sees the flag (the store-buffer
 * litmus test), so the sleeper never sleeps through available work.  The
 * eventfd is written only on the sleeping → awake transition, never per
 * item.
 *
 * Thread: announce/cancel/drain by the one sleeping thread; signal by any.
 */
#ifndef SLUICE_WAKE_H
#define SLUICE_WAKE_H

#include <event2/util.h>
#include <stdatomic.h>
#include <stdbool.h>

struct event;
struct event_base;

struct sl_wake {
    int fd;    /* eventfd, non-blocking; register it with the sleeper's loop */
    bool edge; /* sl_wake_event_new registered fd edge-triggered (sleeper's thread) */
    atomic_int sleeping;
    atomic_ulong signals; /* eventfd writes, for tests and metrics */
};

/* Returns 0, or -1 with errno set when the eventfd cannot be made. */
int sl_wake_init(struct sl_wake *w);
void sl_wake_fini(struct sl_wake *w);

void sl_wake_announce(struct sl_wake *w);
void sl_wake_cancel(struct sl_wake *w);
/* Reads the eventfd empty (it is non-blocking). */
void sl_wake_drain(struct sl_wake *w);
/*
 * The sleeper's event for w->fd on base (EV_READ | EV_PERSIST, not added):
 * edge-triggered where the backend can (epoll), so that its callback need
 * not read the eventfd; the callback calls sl_wake_consume, which reads it
 * only when the event is level-triggered.  See wake.c for what it buys.
 */
struct event *sl_wake_event_new(struct sl_wake *w, struct event_base *base,
                                void (*cb)(evutil_socket_t, short, void *), void *arg);
void sl_wake_consume(struct sl_wake *w);
/* Returns true when it wrote the eventfd (the sleeper was asleep). */
bool sl_wake_signal(struct sl_wake *w);
/* Writes the eventfd whether or not the thread announced a sleep: for
 * requests the thread's loop checks on every wake (stop, reopen), not
 * counted in signals. */
void sl_wake_kick(struct sl_wake *w);

#endif
