/*
 * main — sluiced: arguments, start-up and shutdown order, signals, systemd.
 *
 * Start-up: load the config (every error reported), create the queues,
 * open the sinks and bind every socket (any failure here is fatal with a
 * clear message, before READY=1), then start the writer and the producer
 * threads with signals blocked in them, and tell systemd READY=1.
 *
 * The main thread then runs its own event_base for signals (a signalfd,
 * DESIGN "Signals" below) and the admin endpoint.  SIGTERM/SIGINT:
 * STOPPING=1; producers stop accepting, read what the kernel already holds
 * and push their last chunks; once they are gone the writer drains every
 * queue, flushes and fsyncs; a counter summary is logged; exit 0.  The
 * whole stop is bounded by shutdown_timeout (see daemon_stop): a stage
 * still busy is forced and what was given up is logged.  SIGHUP (or POST
 * /reload): sinks reopen, TLS certificates reload, and the config file is
 * read again and applied where it can be (daemon_reload;
 * src/daemon/reload.h says what applies live).
 *
 * DESIGN: Signals.  SIGTERM, SIGINT and SIGHUP are never delivered to a
 * handler: they stay blocked in every thread (the mask is set on the main
 * thread before the first thread exists, and every thread inherits it) and
 * the main thread reads them from a signalfd, a normal read event on its
 * event_base (signal_read_cb).  An earlier version used libevent's evsignal
 * handlers, unblocked on the main thread once they existed: under
 * ThreadSanitizer, which defers an asynchronous handler to a point of its
 * choosing, a SIGTERM sent right after start was now and then never
 * handled (docs/architecture.md, "Signals").  With a signalfd no handler
 * runs, so nothing can defer or lose one: a signal stays pending in the
 * kernel until the event loop reads it.  SIGPIPE and SIGXFSZ are ignored;
 * every other signal keeps its default action.  sluiced starts no other
 * program; one that did would have to give the child an empty mask
 * (posix_spawnattr_setsigmask), as a blocked mask survives exec.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "daemon/activation.h"
#include "daemon/admin.h"
#include "daemon/metrics.h"
#include "daemon/registry.h"
#include "daemon/reload.h"
#include "sluice/backlog.h"
#include "sluice/clock.h"
#include "sluice/conf.h"
#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/producer.h"
#include "sluice/queue.h"
#include "sluice/sink.h"
#include "sluice/source.h"
#include "sluice/writer.h"
#include "source/source_relp.h"
#include "source/source_sluice.h"
#include "source/source_tcp.h"
#include "util/tls.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

#define STATUS_INTERVAL_S 10
/* daemon_writer_heartbeat: a resting writer answers in microseconds. */
#define ADMIN_TICK_WAIT_MS 100

/*
 * The object graph (docs/architecture.md, "Object graph"): the daemon owns
 * the config, the queues, the sinks (each pointing at the queue it drains)
 * and the source objects (each pointing at the queue it feeds and holding
 * its per-thread counters); producers and the writer borrow them.  The
 * arrays only list the objects: nothing is found by its place in them.
 */
struct daemon {
    struct sl_config *cfg;
    struct sl_queue **queues;
    struct sl_backlog **backlogs; /* per queue: a disk queue's, until the writer owns it */
    size_t nqueues;
    struct sl_sink **sinks;
    size_t nsinks;
    struct sl_source_obj **sources;
    size_t nsources;
    /* Sources a reload removed whose producer thread did not finish the
     * removal in time: left allocated (a thread may still use them), and
     * the configs they point into are kept (daemon_cfg_borrowed). */
    struct sl_source_obj **strays;
    size_t nstrays;
    bool cfg_leak; /* a stray could not be listed: no adopted config is freed */
    struct sl_producer **producers;
    unsigned nproducers;
    struct sl_writer *writer;
    struct event_base *base;
    int sigfd;            /* signalfd for daemon_signals(), -1 when none */
    struct event *sig_ev; /* sigfd's read event (signal_read_cb) */
    struct sl_admin *admin;
    uint64_t watchdog_usec; /* WATCHDOG_USEC, 0 when the watchdog is off */
    /* written by daemon_tick only (writer thread) once the threads run */
    uint64_t last_ping_ms;
    uint64_t start_realtime_ms;
    uint64_t last_in, last_out, last_ms;
    uint64_t last_generation;    /* in the last STATUS= */
    bool status_quiet;           /* the last STATUS= said nothing moves */
    bool notify;                 /* NOTIFY_SOCKET is set: STATUS= is heard */
    uint64_t tick_unanswered_ms; /* daemon_writer_heartbeat: main thread only */
    /* config reloads: main thread only, except status_generation */
    struct sl_config **cfgs; /* configs adopted by reloads (objects borrow them), oldest first */
    size_t ncfgs;
    struct sl_reload_status reload;
    struct event *reload_ev;      /* runs daemon_reload_cb: reloads coalesce into it */
    bool reload_pending;          /* a SIGHUP came: one more reload must run */
    uint64_t shutdown_timeout_ms; /* the [daemon] key in force (it may change on reload) */
    atomic_uint_least64_t status_generation; /* reload.generation, for STATUS= (writer) */
    /* The object lists (sources, sinks) change on reload (main thread):
     * held by main while it changes them and by daemon_tick (writer
     * thread) while it reads them.  Main reads them without it. */
    pthread_mutex_t objs_mu;
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: sluiced [-n] [-c FILE]\n"
               "  -c, --config FILE     configuration file (default /etc/sluice/sluice.conf)\n"
               "  -n, --check-config    check the configuration, print a summary, exit\n"
               "  -V, --version         print the version and exit\n"
               "  -h, --help            this text\n");
}

static void
daemon_totals(struct daemon *d, uint64_t *in, uint64_t *out)
{
    *in = 0;
    *out = 0;
    for (size_t i = 0; i < d->nsources; i++) {
        const struct sl_source_obj *o = d->sources[i];
        for (unsigned t = 0; t < o->nthreads; t++) {
            *in += sl_counter_get(&o->stats[t].events_in);
        }
    }
    for (size_t j = 0; j < d->nsinks; j++) {
        *out += sl_counter_get(&d->sinks[j]->stats->events_out);
    }
}

/*
 * The writer's heartbeat for /healthz and /metrics.  A resting writer
 * (writer.c THE TICK: idle, no tick armed) is asked for a tick first, so
 * what they report is current (a removed output folder shows) and its
 * heartbeat fresh.  One that does not answer within ADMIN_TICK_WAIT_MS is
 * counted from the first ask it left unanswered: a stuck writer shows as
 * stalled after SL_WRITER_STALL_MS as before, a merely slow one never.
 * Main thread.
 */
static uint64_t
daemon_writer_heartbeat(struct daemon *d)
{
    uint64_t now = sl_now_ms();
    if (sl_writer_tick_resting(d->writer, ADMIN_TICK_WAIT_MS) == 0) {
        d->tick_unanswered_ms = 0;
        return sl_writer_heartbeat_ms(d->writer);
    }
    uint64_t hb = sl_writer_heartbeat_ms(d->writer);
    if (d->tick_unanswered_ms == 0 || hb >= d->tick_unanswered_ms) {
        /* The first unanswered ask, or the writer answered the last one
         * late (its heartbeat moved past it): counted from this ask. */
        d->tick_unanswered_ms = now;
    }
    return hb > d->tick_unanswered_ms ? hb : d->tick_unanswered_ms;
}

static void
admin_view_cb(void *arg, struct sl_metrics_view *v)
{
    struct daemon *d = arg;
    uint64_t heartbeat = daemon_writer_heartbeat(d);
    *v = (struct sl_metrics_view){
        .sources = d->sources,
        .nsources = d->nsources,
        .queues = d->queues,
        .nqueues = d->nqueues,
        .sinks = d->sinks,
        .nsinks = d->nsinks,
        .start_realtime_ms = d->start_realtime_ms,
        .writer_heartbeat_ms = heartbeat,
        .writer_inline_passes = sl_writer_inline_passes(d->writer),
        .now_mono_ms = sl_now_ms(),
        .now_realtime_ms = sl_realtime_ms(),
        .reload = &d->reload,
    };
    if (d->admin != NULL) {
        v->admin_on = true;
        sl_admin_get_stats(d->admin, &v->admin);
        v->admin_tls = sl_admin_tls(d->admin);
    }
}

/*
 * Periodic work runs on the writer thread's tick (sl_writer_set_tick_hook),
 * so it costs no wake-up of its own; it asks for the next tick only when
 * it has something to send, so an idle daemon without a watchdog does not
 * wake at all.  Reads only atomics.
 *   WATCHDOG=1 (sd_watchdog_enabled(3)) at least every WATCHDOG_USEC/2
 *   (a second before it is up; at WATCHDOG_USEC/4 when that is 2 s or
 *   less), the tick asked for in time: the tick only runs while the
 *   writer's loop turns, so a wedged writer stops the pings and systemd
 *   restarts the daemon.  Producers never block and need no such check.
 *   STATUS= (only under NOTIFY_SOCKET) every STATUS_INTERVAL_S with the
 *   rates since the last one, and at the first tick after a reload (the
 *   reload sends its own STATUS= at once); once one said nothing moves,
 *   the next waits until the writer works again.
 */
static uint64_t
daemon_tick(void *arg, uint64_t now)
{
    struct daemon *d = arg;
    uint64_t next = SL_SINK_TICK_NONE;
    if (d->watchdog_usec > 0) {
        /* The tick is asked for a second before WATCHDOG_USEC/2 is up and
         * any tick from half a second before that pings, so a timer that
         * fires a little early (libevent's coarse clock) still pings. */
        uint64_t every = d->watchdog_usec / 2000; /* ms */
        uint64_t ask = every > 2000 ? every - 1000 : every / 2;
        if (now - d->last_ping_ms + 500 >= ask) {
            sd_notify(0, "WATCHDOG=1");
            d->last_ping_ms = now;
        }
        next = d->last_ping_ms + ask - now; /* > 500: no ping, else ask */
    }
    if (!d->notify) {
        return next;
    }
    uint64_t generation = atomic_load(&d->status_generation);
    if (now - d->last_ms < STATUS_INTERVAL_S * 1000u && generation == d->last_generation) {
        uint64_t due = d->last_ms + STATUS_INTERVAL_S * 1000u - now;
        return d->status_quiet || due > next ? next : due;
    }
    uint64_t in, out;
    size_t queued = 0;
    pthread_mutex_lock(&d->objs_mu);
    daemon_totals(d, &in, &out);
    for (size_t i = 0; i < d->nqueues; i++) { /* a reload adds and removes queues */
        queued += sl_queue_in_use(d->queues[i]);
    }
    pthread_mutex_unlock(&d->objs_mu);
    bool quiet = in == d->last_in && out == d->last_out && queued == 0;
    if (quiet && d->status_quiet && generation == d->last_generation) {
        return next; /* the last one said so already (a watchdog tick) */
    }
    /* Two ticks in one ms (a reload's) must not divide by zero. */
    double secs = now > d->last_ms ? (double)(now - d->last_ms) / 1000.0 : 0.001;
    sd_notifyf(
        0, "STATUS=in %.0f ev/s, out %.0f ev/s, %zu chunk(s) in use, config generation %" PRIu64,
        (double)(in - d->last_in) / secs, (double)(out - d->last_out) / secs, queued, generation);
    d->status_quiet = quiet;
    d->last_in = in;
    d->last_out = out;
    d->last_ms = now;
    d->last_generation = generation;
    uint64_t due = STATUS_INTERVAL_S * 1000u;
    return d->status_quiet || due > next ? next : due;
}

static struct sl_sink *sink_obj_new(const struct sl_sink_config *sc, struct sl_queue *queue);
static void sink_obj_free(struct sl_sink *s);

/* Appends text to msg (len bytes, NUL-terminated), cut short when full. */
static void
msg_append(char *msg, size_t len, const char *text)
{
    size_t off = strnlen(msg, len);
    if (off + 1 < len) {
        snprintf(msg + off, len - off, "%s", text);
    }
}

/* The reload was refused (a broken config or a change not applied live):
 * counted and shown by /metrics and /healthz; the old config runs. */
static void
reload_refused(struct daemon *d, size_t nerrors, const char *first)
{
    d->reload.failed++;
    d->reload.last_failed = true;
    d->reload.last_nerrors = (unsigned)nerrors;
    size_t n = strnlen(first, sizeof(d->reload.last_error) - 1); /* cut short if long */
    memcpy(d->reload.last_error, first, n);
    d->reload.last_error[n] = '\0';
}

/* The config the objects were last built from: the last one a reload
 * adopted, else the one the daemon started with. */
static const struct sl_config *
daemon_cur_cfg(const struct daemon *d)
{
    return d->ncfgs > 0 ? d->cfgs[d->ncfgs - 1] : d->cfg;
}

/* The running sink named name, or -1. */
static long
daemon_sink_index(const struct daemon *d, const char *name)
{
    for (size_t j = 0; j < d->nsinks; j++) {
        if (strcmp(d->sinks[j]->cfg->name, name) == 0) {
            return (long)j;
        }
    }
    return -1;
}

/* True when an object still borrows a section of cfg (an adopted config). */
static bool
daemon_cfg_borrowed(const struct daemon *d, const struct sl_config *cfg)
{
    for (size_t j = 0; j < d->nsinks; j++) {
        if (d->sinks[j]->cfg >= cfg->sinks && d->sinks[j]->cfg < cfg->sinks + cfg->nsinks) {
            return true;
        }
    }
    for (size_t i = 0; i < d->nsources; i++) {
        const struct sl_source_config *sc = d->sources[i]->cfg;
        if (sc >= cfg->sources && sc < cfg->sources + cfg->nsources) {
            return true;
        }
    }
    for (size_t i = 0; i < d->nstrays; i++) {
        const struct sl_source_config *sc = d->strays[i]->cfg;
        if (sc >= cfg->sources && sc < cfg->sources + cfg->nsources) {
            return true;
        }
    }
    return false;
}

/* Frees the adopted configs, but the last, that no object borrows any more
 * (so many reloads do not pile configs up). */
static void
daemon_cfgs_trim(struct daemon *d)
{
    size_t keep = 0;
    if (d->cfg_leak) {
        return;
    }
    for (size_t i = 0; i < d->ncfgs; i++) {
        if (i + 1 < d->ncfgs && !daemon_cfg_borrowed(d, d->cfgs[i])) {
            sl_config_free(d->cfgs[i]);
        } else {
            d->cfgs[keep++] = d->cfgs[i];
        }
    }
    d->ncfgs = keep;
}

/*
 * Replaces the sinks the plan lists (reload.h), one by one: each new sink
 * object is made here and handed to the writer thread, which opens it
 * between two writes and swaps it in (sl_writer_replace_sink); the old one
 * is closed here.  Returns 0; -1 when the first could not be replaced
 * (nothing changed; msg says why); -2 when a later one could not (those
 * before it stay replaced; msg names the ones that were not).
 */
static int
daemon_replace_sinks(struct daemon *d, const struct sl_config *next,
                     const struct sl_reload_plan *plan, char *msg, size_t len)
{
    char line[256];
    size_t done = 0;
    for (size_t r = 0; r < plan->nreplace; r++) {
        const struct sl_sink_config *sc = &next->sinks[plan->replace[r]];
        long j = daemon_sink_index(d, sc->name);
        struct sl_sink *fresh = j >= 0 ? sink_obj_new(sc, d->sinks[j]->queue) : NULL;
        int x = -1;
        if (fresh != NULL) {
            fresh->ops = sc->type->impl.sink;
            x = sl_writer_replace_sink(d->writer, d->sinks[j], fresh, d->shutdown_timeout_ms);
        }
        if (x != 0) {
            snprintf(line, sizeof(line), "%ssink \"%s\": not replaced (%s; the old one runs on)",
                     *msg != '\0' ? "\n" : "", sc->name,
                     x == -2 ? "the writer did not answer within shutdown_timeout"
                             : "the new one cannot open, see the log");
            msg_append(msg, len, line);
            log_warnx("%s", line + (*line == '\n'));
            sink_obj_free(fresh); /* closes a half-open one */
            continue;
        }
        struct sl_sink *old = d->sinks[j];
        pthread_mutex_lock(&d->objs_mu);
        d->sinks[j] = fresh;
        pthread_mutex_unlock(&d->objs_mu);
        done++;
        log_info("sink \"%s\": replaced; the old one wrote events=%" PRIu64 " bytes=%" PRIu64,
                 old->cfg->name, sl_counter_get(&old->stats->events_out),
                 sl_counter_get(&old->stats->bytes_out));
        sink_obj_free(old);
    }
    return done == plan->nreplace ? 0 : done == 0 ? -1 : -2;
}

/* The running queue named name, or NULL. */
static struct sl_queue *daemon_queue_named(const struct daemon *d, const char *name);
static bool plan_lists_queue(const size_t *list, size_t n, const struct sl_config *cfg,
                             const char *name);

/* Logs and records what a sink leaving by a reload gave up (none: a line
 * at info). */
static void
daemon_sink_gone(struct daemon *d, const struct sl_sink *old, const char *how, uint64_t bytes,
                 uint64_t events, char *msg, size_t len)
{
    char line[512], ev[64];
    d->reload.sink_gave_up_bytes += bytes;
    if (events != UINT64_MAX) {
        d->reload.sink_gave_up_events += events;
        snprintf(ev, sizeof(ev), "%" PRIu64 " event(s), ", events);
    } else {
        snprintf(ev, sizeof(ev), "(events not counted: a disk queue) ");
    }
    if (bytes == 0) {
        log_info("sink \"%s\": %s; it wrote events=%" PRIu64 " bytes=%" PRIu64
                 " and drained everything it held",
                 old->cfg->name, how, sl_counter_get(&old->stats->events_out),
                 sl_counter_get(&old->stats->bytes_out));
        return;
    }
    snprintf(line, sizeof(line),
             "sink \"%s\": %s; it gave up %s%" PRIu64
             " byte(s) it had not written (or had not had acknowledged) within shutdown_timeout",
             old->cfg->name, how, ev, bytes);
    log_warnx("%s (it wrote events=%" PRIu64 ")", line, sl_counter_get(&old->stats->events_out));
    msg_append(msg, len, *msg != '\0' ? "\n" : "");
    msg_append(msg, len, line);
}

/*
 * Adds, succeeds and removes the sinks the plan lists (reload.h), one by
 * one on the writer thread (sl_writer_change_sinks): an added sink drains
 * its queue from the next chunk on; a changed one is succeeded by a new one
 * in the same step (on a disk queue it stays on, the new one takes the old
 * one's reader over once that one's drain is done); a removed one drains
 * what it holds for at most shutdown_timeout.  The main thread waits meanwhile (reloads are rare; a
 * removal is bounded).  Returns how many were applied; *failed counts the
 * others (each logged and named in msg; they keep running as before).
 */
static size_t
daemon_change_sinks(struct daemon *d, const struct sl_config *next,
                    const struct sl_reload_plan *plan, size_t *failed, char *msg, size_t len)
{
    uint64_t drain = d->shutdown_timeout_ms, wait = drain + 5000;
    size_t done = 0;
    char line[512];
    size_t nops = plan->nadd + plan->nchange + plan->nremove;
    const struct sl_config *cur = daemon_cur_cfg(d);
    /* The names are copied: a removed sink's config may be freed with it. */
    for (size_t k = 0; k < nops; k++) {
        const struct sl_sink_config *sc = NULL;
        long j = -1;
        const char *what;
        if (k < plan->nadd) {
            sc = &next->sinks[plan->add[k]];
            what = "added";
        } else if (k < plan->nadd + plan->nchange) {
            sc = &next->sinks[plan->change[k - plan->nadd]];
            j = daemon_sink_index(d, sc->name);
            what = "changed";
        } else {
            j = daemon_sink_index(d, cur->sinks[plan->remove[k - plan->nadd - plan->nchange]].name);
            what = "removed";
        }
        /* A sink of a queue the reload adds came with it (daemon_add_queues);
         * one of a queue it removes goes with it (daemon_change_queues). */
        if ((k < plan->nadd && plan_lists_queue(plan->q_add, plan->nq_add, next, sc->queue)) ||
            (sc == NULL &&
             plan_lists_queue(plan->q_remove, plan->nq_remove, cur,
                              cur->sinks[plan->remove[k - plan->nadd - plan->nchange]].queue))) {
            done++;
            continue;
        }
        struct sl_queue *q = sc != NULL ? daemon_queue_named(d, sc->queue) : NULL;
        struct sl_sink *fresh = q != NULL ? sink_obj_new(sc, q) : NULL;
        struct sl_sink **grown =
            sc != NULL && j < 0 ? realloc(d->sinks, (d->nsinks + 1) * sizeof(*d->sinks)) : NULL;
        if (grown != NULL) {
            pthread_mutex_lock(&d->objs_mu);
            d->sinks = grown;
            pthread_mutex_unlock(&d->objs_mu);
        }
        int x = -1;
        uint64_t bytes = 0, events = 0, resent = UINT64_MAX;
        struct sl_sink *old = j >= 0 ? d->sinks[j] : NULL;
        if ((sc == NULL || fresh != NULL) && (j >= 0 || grown != NULL) &&
            (old != NULL || sc != NULL)) {
            if (fresh != NULL) {
                fresh->ops = sc->type->impl.sink;
            }
            x = sl_writer_change_sinks(d->writer, old, fresh, drain, wait, &bytes, &events,
                                       &resent);
        }
        const char *name = sc != NULL ? sc->name : old != NULL ? old->cfg->name : "?";
        if (x != 0) {
            snprintf(line, sizeof(line), "%ssink \"%s\": not %s (%s)", *msg != '\0' ? "\n" : "",
                     name, what,
                     x == -2 ? "the writer did not answer in time; it is left as it is"
                             : "cannot open or set up, see the log; the old config's sinks run on");
            msg_append(msg, len, line);
            log_warnx("%s", line + (*line == '\n'));
            (*failed)++;
            if (x != -2) {
                sink_obj_free(fresh); /* closes a half-open one */
            }
            continue;
        }
        done++;
        pthread_mutex_lock(&d->objs_mu);
        if (old == NULL) {
            d->sinks[d->nsinks++] = fresh;
        } else if (fresh != NULL) {
            d->sinks[j] = fresh;
        } else {
            memmove(d->sinks + j, d->sinks + j + 1,
                    (d->nsinks - (size_t)j - 1) * sizeof(*d->sinks));
            d->nsinks--;
        }
        pthread_mutex_unlock(&d->objs_mu);
        if (old != NULL && fresh != NULL && resent != UINT64_MAX) {
            /* A disk queue: its new config took its reader over. */
            snprintf(line, sizeof(line),
                     "%ssink \"%s\": handed over on queue \"%s\" at the committed position; "
                     "%" PRIu64 " byte(s) the old one had sent and not had acknowledged within "
                     "shutdown_timeout are sent again by the new one (at least once)",
                     *msg != '\0' ? "\n" : "", name, sl_queue_name(fresh->queue), resent);
            msg_append(msg, len, line);
            log_info("sink \"%s\": succeeded by its new config; the old one wrote events=%" PRIu64
                     " bytes=%" PRIu64,
                     name, sl_counter_get(&old->stats->events_out),
                     sl_counter_get(&old->stats->bytes_out));
            sink_obj_free(old);
        } else if (old != NULL) {
            daemon_sink_gone(d, old, fresh != NULL ? "succeeded by its new config" : "removed",
                             bytes, events, msg, len);
            sink_obj_free(old);
        } else {
            log_info("sink \"%s\": added", name);
        }
    }
    return done;
}

static struct sl_source_obj *source_obj_new(const struct sl_source_config *sc,
                                            struct sl_queue *queue, unsigned nthreads);
static void source_obj_free(struct sl_source_obj *o);
static struct sl_source_obj *daemon_new_source_obj(struct daemon *d, const struct sl_config *cfg,
                                                   const struct sl_source_config *sc, char *why,
                                                   size_t len);
static void log_source_counters(const struct sl_source_obj *o, const char *what);

/* The running source named name, or -1. */
static long
daemon_source_index(const struct daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nsources; i++) {
        if (strcmp(d->sources[i]->cfg->name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* True when the plan removes or changes the running source named name. */
static bool
plan_drops_source(const struct sl_config *cur, const struct sl_config *next,
                  const struct sl_reload_plan *plan, const char *name)
{
    for (size_t r = 0; r < plan->nsrc_remove; r++) {
        if (strcmp(cur->sources[plan->src_remove[r]].name, name) == 0) {
            return true;
        }
    }
    for (size_t r = 0; r < plan->nsrc_change; r++) {
        if (strcmp(next->sources[plan->src_change[r]].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* True when one of objs[0..n) (borrowed) already has sockets on an inet
 * address that overlaps sc's (sl_source_inet_overlap): binding sc there is
 * binding beside ourselves, which the probe would take for another
 * process. */
static bool
daemon_holds_address(struct sl_source_obj *const *objs, size_t n, const struct sl_source_config *sc)
{
    for (size_t i = 0; i < n; i++) {
        if (objs[i] != NULL && sl_source_inet_overlap(objs[i]->cfg, sc)) {
            return true;
        }
    }
    return false;
}

/*
 * Before the daemon binds source sc's SO_REUSEPORT group on an address it
 * holds nothing on (start-up, or a reload that adds a source or moves one
 * to a new address): whether another process holds it
 * (sl_source_probe_inet).  Returns 0, or -1 with msg saying why.
 */
static int
daemon_probe_source(const struct sl_source_config *sc, char *msg, size_t len)
{
    const struct sl_source_type *type = sl_source_type_of(sc);
    char ebuf[128];
    if (sl_source_probe_inet(sc, type->socktype) == 0) {
        return 0;
    }
    int err = errno;
    snprintf(msg, len, "source \"%s\": cannot listen on %s (%s): %s", sc->name, sc->listen,
             type->name,
             err == EADDRINUSE ? "address in use by another process"
                               : strerror_r(err, ebuf, sizeof(ebuf)));
    return -1;
}

/*
 * The sources a reload adds or changes (reload.h), made and bound here, on
 * main, before anything changes: a bind that fails (an address in use, a
 * TLS certificate that does not load) refuses the whole reload.  A changed
 * inet source's new object binds beside the old one (SO_REUSEPORT, also on
 * the same address); an inet address the daemon does not hold yet is
 * probed first (daemon_probe_source: another process there refuses the
 * reload); a unix source whose path a source this reload
 * removes or changes still holds binds beside the path (path_beside) and
 * takes it by a rename once started (publish); a one_socket type binds
 * once and every thread gets a duplicate, as at start.  Fills fresh[]
 * (plan->nsrc_add entries, then plan->nsrc_change).  Returns 0, or -1 with
 * msg saying why (nothing kept).
 */
static int
daemon_bind_new_sources(struct daemon *d, const struct sl_config *next,
                        const struct sl_reload_plan *plan, struct sl_source_obj **fresh, char *msg,
                        size_t len)
{
    const struct sl_config *cur = daemon_cur_cfg(d);
    size_t n = plan->nsrc_add + plan->nsrc_change;
    for (size_t k = 0; k < n; k++) {
        const struct sl_source_config *sc =
            &next->sources[k < plan->nsrc_add ? plan->src_add[k]
                                              : plan->src_change[k - plan->nsrc_add]];
        const struct sl_source_type *type = sl_source_type_of(sc);
        char why[640] = "";
        fresh[k] = daemon_new_source_obj(d, next, sc, why, sizeof(why));
        int err = 0;
        if (fresh[k] != NULL && type->family == AF_UNIX) {
            for (size_t i = 0; i < d->nsources; i++) {
                const struct sl_source_obj *o = d->sources[i];
                if (o->shared.path_made && strcmp(o->cfg->listen, sc->listen) == 0 &&
                    plan_drops_source(cur, next, plan, o->cfg->name)) {
                    fresh[k]->shared.path_beside = true;
                }
            }
        }
        if (fresh[k] != NULL && type->reuseport &&
            !daemon_holds_address(d->sources, d->nsources, sc) &&
            !daemon_holds_address(fresh, k, sc) && daemon_probe_source(sc, why, sizeof(why)) < 0) {
            source_obj_free(fresh[k]);
            fresh[k] = NULL;
        }
        /* A type with no bind() (relp: librelp binds its own listener)
         * listens once started, on a producer thread: a failed bind is
         * then a failed start, named in the answer (daemon_change_sources). */
        for (unsigned t = 0; fresh[k] != NULL && type->bind != NULL && t < d->nproducers; t++) {
            fresh[k]->fds[t] = t > 0 && type->one_socket
                                   ? fcntl(fresh[k]->fds[0], F_DUPFD_CLOEXEC, 3)
                                   : type->bind(sc, &fresh[k]->shared);
            if (fresh[k]->fds[t] < 0) {
                err = errno;
                source_obj_free(fresh[k]); /* unbinds what it bound */
                fresh[k] = NULL;
            }
        }
        if (fresh[k] == NULL) {
            char ebuf[128];
            if (err != 0) {
                snprintf(msg, len, "source \"%s\": cannot listen on %s (%s): %s", sc->name,
                         sc->listen, type->name, strerror_r(err, ebuf, sizeof(ebuf)));
            } else {
                snprintf(msg, len, "%s", why);
            }
            for (size_t m = 0; m < k; m++) {
                source_obj_free(fresh[m]);
                fresh[m] = NULL;
            }
            return -1;
        }
    }
    return 0;
}

/* Removes source o from every producer thread (each stops it as at an
 * orderly stop), then from the daemon's list; logs its counters, unbinds
 * and frees it.  Returns 0, or -1 when a thread did not answer in time
 * (o is then left allocated: a thread may still use it). */
static int
daemon_remove_source(struct daemon *d, struct sl_source_obj *o, const char *how)
{
    int rc = 0;
    for (unsigned t = 0; t < d->nproducers; t++) {
        if (sl_producer_remove_source(d->producers[t], o, d->shutdown_timeout_ms + 5000) == -2) {
            rc = -1;
        }
    }
    long i = -1;
    for (size_t k = 0; k < d->nsources; k++) {
        if (d->sources[k] == o) {
            i = (long)k;
        }
    }
    pthread_mutex_lock(&d->objs_mu);
    if (i >= 0) {
        memmove(d->sources + i, d->sources + i + 1,
                (d->nsources - (size_t)i - 1) * sizeof(*d->sources));
        d->nsources--;
    }
    pthread_mutex_unlock(&d->objs_mu);
    log_source_counters(o, how);
    if (rc < 0) {
        log_warnx("source \"%s\": a producer thread did not finish its removal in time; "
                  "its memory is left allocated",
                  o->cfg->name);
        struct sl_source_obj **grown = realloc(d->strays, (d->nstrays + 1) * sizeof(*grown));
        if (grown != NULL) {
            d->strays = grown;
            d->strays[d->nstrays++] = o;
        } else {
            d->cfg_leak = true; /* cannot tell which config it borrows: keep them all */
        }
        return -1;
    }
    source_obj_free(o); /* unbinds (a unix socket file) */
    return 0;
}

/*
 * Starts the new source objects fresh[] (daemon_bind_new_sources) on every
 * producer thread and removes the sources the plan removes or changes.  A
 * changed source's new object starts before the old one stops, so its
 * address never stops listening.  Returns how many were applied; *failed
 * counts the others (logged, named in msg).
 */
static size_t
daemon_change_sources(struct daemon *d, const struct sl_config *next,
                      const struct sl_reload_plan *plan, struct sl_source_obj **fresh,
                      size_t *failed, char *msg, size_t len)
{
    const struct sl_config *cur = daemon_cur_cfg(d);
    size_t done = 0;
    char line[512];
    size_t nnew = plan->nsrc_add + plan->nsrc_change;
    for (size_t k = 0; k < nnew + plan->nsrc_remove; k++) {
        struct sl_source_obj *o = k < nnew ? fresh[k] : NULL;
        long old = -1;
        if (k >= plan->nsrc_add) {
            const char *name =
                k < nnew ? o->cfg->name : cur->sources[plan->src_remove[k - nnew]].name;
            old = daemon_source_index(d, name);
        }
        /* A changed source of a type that binds in start() (relp: librelp
         * binds without SO_REUSEPORT) could not listen beside its old self
         * on the same address: the old one goes first. */
        if (o != NULL && old >= 0 && sl_source_type_of(o->cfg)->bind == NULL) {
            (void)daemon_remove_source(d, d->sources[old], "changed, the old one stopped first; ");
            old = -1;
        }
        if (o != NULL) {
            struct sl_source_obj **grown =
                realloc(d->sources, (d->nsources + 1) * sizeof(*d->sources));
            unsigned t = 0;
            int x = grown != NULL ? 0 : -1;
            if (grown != NULL) {
                pthread_mutex_lock(&d->objs_mu);
                d->sources = grown;
                pthread_mutex_unlock(&d->objs_mu);
            }
            for (; x == 0 && t < d->nproducers; t++) {
                x = sl_producer_add_source(d->producers[t], o, d->shutdown_timeout_ms + 5000);
            }
            const struct sl_source_type *type = sl_source_type_of(o->cfg);
            if (x == 0 && type->publish != NULL && type->publish(o->cfg, &o->shared) < 0) {
                x = -1; /* logged; undone below on every thread */
                t++;
            }
            if (x != 0) {
                snprintf(line, sizeof(line),
                         "%ssource \"%s\": not %s (it cannot start, see the "
                         "log; nothing of it runs)",
                         *msg != '\0' ? "\n" : "", o->cfg->name,
                         k < plan->nsrc_add ? "added" : "changed");
                msg_append(msg, len, line);
                log_warnx("%s", line + (*line == '\n'));
                (*failed)++;
                /* Undo it on the threads where it started. */
                for (unsigned u = 0; u + 1 < t; u++) {
                    (void)sl_producer_remove_source(d->producers[u], o,
                                                    d->shutdown_timeout_ms + 5000);
                }
                if (x != -2) {
                    source_obj_free(o);
                }
                continue;
            }
            pthread_mutex_lock(&d->objs_mu);
            d->sources[d->nsources++] = o;
            pthread_mutex_unlock(&d->objs_mu);
            log_info("source \"%s\": %s%s%s", o->cfg->name,
                     k < plan->nsrc_add ? "added" : "changed",
                     o->cfg->listen == NULL ? "" /* nats: connects out */
                     : k < plan->nsrc_add   ? ", listening on "
                                            : ", the new one listens on ",
                     o->cfg->listen != NULL ? o->cfg->listen : "");
        }
        if (old >= 0) {
            (void)daemon_remove_source(d, d->sources[old],
                                       o != NULL ? "changed, the old one stopped; " : "removed; ");
        }
        done++;
    }
    return done;
}

/* The section of kind and name in cfg, or NULL. */
static struct sl_config_section *
daemon_section_named(const struct sl_config *cfg, int kind, const char *name)
{
    for (size_t i = 0; i < cfg->nsections; i++) {
        struct sl_config_section *s = &cfg->sections[i];
        if (s->kind == kind && s->name != NULL && strcmp(s->name, name) == 0) {
            return s;
        }
    }
    return NULL;
}

/*
 * After daemon_change_sources: a source the plan adds or changes whose new
 * object does not run (its start failed: a relp port in use) has its
 * section in next marked stale, so that next, once adopted, does not claim
 * it runs: the next reload, of the same file too, compares it as changed
 * and starts it again (reload.c).
 */
static void
daemon_mark_unstarted_sources(struct daemon *d, struct sl_config *next,
                              const struct sl_reload_plan *plan)
{
    for (size_t k = 0; k < plan->nsrc_add + plan->nsrc_change; k++) {
        const struct sl_source_config *sc =
            &next->sources[k < plan->nsrc_add ? plan->src_add[k]
                                              : plan->src_change[k - plan->nsrc_add]];
        bool runs = false;
        for (size_t i = 0; i < d->nsources; i++) {
            runs = runs || d->sources[i]->cfg == sc;
        }
        struct sl_config_section *s =
            runs ? NULL : daemon_section_named(next, SL_CONF_SOURCE, sc->name);
        if (s != NULL) {
            s->stale = true;
        }
    }
}

/* ---- queues a reload adds, removes or changes (reload.h) ---------------------------------- */

static void daemon_disk_queue_dir(const struct sl_queue_config *qc, char *path, size_t cap);
static struct sl_backlog *daemon_open_disk_queue(struct sl_queue *q,
                                                 const struct sl_queue_config *qc);

/* True when the plan adds (list == plan->q_add, cfg next) or removes
 * (plan->q_remove, cfg cur) the queue named name. */
static bool
plan_lists_queue(const size_t *list, size_t n, const struct sl_config *cfg, const char *name)
{
    for (size_t r = 0; r < n; r++) {
        if (strcmp(cfg->queues[list[r]].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Takes queue q out of the daemon's list (under objs_mu: the tick reads it). */
static void
daemon_queue_unlist(struct daemon *d, const struct sl_queue *q)
{
    pthread_mutex_lock(&d->objs_mu);
    for (size_t i = 0; i < d->nqueues; i++) {
        if (d->queues[i] == q) {
            memmove(d->queues + i, d->queues + i + 1, (d->nqueues - i - 1) * sizeof(*d->queues));
            memmove(d->backlogs + i, d->backlogs + i + 1,
                    (d->nqueues - i - 1) * sizeof(*d->backlogs));
            d->nqueues--;
            break;
        }
    }
    pthread_mutex_unlock(&d->objs_mu);
}

/*
 * Removes queue q (name: its config in cur) with every sink that drains it,
 * once no source feeds it: the writer lets the sinks drain it for at most
 * shutdown_timeout (sl_writer_remove_queue), then the backlog is freed (a
 * disk queue's saves its sinks' positions and unlocks its directory, which
 * stays), the sinks closed and the queue freed.  What was given up or left
 * on disk is logged and named in msg.  Returns 0, or -1 (logged, in msg;
 * the queue runs on, or, when the writer did not answer, is left alone).
 */
static int
daemon_remove_queue(struct daemon *d, struct sl_queue *q, const struct sl_queue_config *qc,
                    char *msg, size_t len)
{
    uint64_t drain = d->shutdown_timeout_ms;
    char line[768];
    const char *why = NULL;
    for (size_t i = 0; i < d->nsources && why == NULL; i++) {
        if (d->sources[i]->queue == q) {
            why = "a source still feeds it (its removal did not finish)";
        }
    }
    struct sl_backlog *bl = NULL;
    uint64_t gave = 0, gave_events = 0, kept = 0;
    int x = why != NULL ? -1
                        : sl_writer_remove_queue(d->writer, q, drain, drain + 5000, &bl, &gave,
                                                 &gave_events, &kept);
    if (x != 0) {
        snprintf(line, sizeof(line), "%squeue \"%s\": not removed (%s)", *msg != '\0' ? "\n" : "",
                 qc->name,
                 why != NULL ? why
                 : x == -2   ? "the writer did not answer in time; it is left as it is"
                             : "the writer refused, see the log; it runs on");
        msg_append(msg, len, line);
        log_warnx("%s", line + (*line == '\n'));
        return -1;
    }
    bl->ops->free(bl); /* a disk queue: positions saved, directory unlocked */
    for (size_t j = 0; j < d->nsinks;) {
        struct sl_sink *s = d->sinks[j];
        if (s->queue != q) {
            j++;
            continue;
        }
        pthread_mutex_lock(&d->objs_mu);
        memmove(d->sinks + j, d->sinks + j + 1, (d->nsinks - j - 1) * sizeof(*d->sinks));
        d->nsinks--;
        pthread_mutex_unlock(&d->objs_mu);
        log_info("sink \"%s\": removed with queue \"%s\"; it wrote events=%" PRIu64
                 " bytes=%" PRIu64,
                 s->cfg->name, qc->name, sl_counter_get(&s->stats->events_out),
                 sl_counter_get(&s->stats->bytes_out));
        sink_obj_free(s);
    }
    daemon_queue_unlist(d, q);
    sl_queue_free(q);
    d->reload.sink_gave_up_bytes += gave;
    d->reload.sink_gave_up_events += gave_events;
    if (gave > 0) {
        snprintf(line, sizeof(line),
                 "%squeue \"%s\": removed; its sinks gave up %" PRIu64 " event(s), %" PRIu64
                 " byte(s) they had not written (or had not had acknowledged) within "
                 "shutdown_timeout",
                 *msg != '\0' ? "\n" : "", qc->name, gave_events, gave);
        msg_append(msg, len, line);
        log_warnx("%s", line + (*line == '\n'));
    }
    if (qc->type == SL_QUEUE_DISK) {
        char dir[4096];
        daemon_disk_queue_dir(qc, dir, sizeof(dir));
        snprintf(line, sizeof(line),
                 "%squeue \"%s\": removed; its directory %.400s stays on disk with %" PRIu64
                 " byte(s) its sinks had not sent (add the queue again to send them)",
                 *msg != '\0' ? "\n" : "", qc->name, dir, kept);
        msg_append(msg, len, line);
        if (kept > 0) {
            log_warnx("%s", line + (*line == '\n'));
        } else {
            log_info("%s", line + (*line == '\n'));
        }
    } else if (gave == 0) {
        log_info("queue \"%s\": removed; its sinks drained everything it held", qc->name);
    }
    return 0;
}

/*
 * Makes the queues the plan adds, each with the sinks next gives it: a
 * disk queue opened, locked and restored here as at start; then handed
 * with its sinks to the writer (sl_writer_add_queue), before any source
 * feeds it.  Returns how many were added; on a failure (logged, in msg)
 * the ones added before are removed again (no source feeds them yet) and
 * -1 is returned: nothing changed.
 */
static long
daemon_add_queues(struct daemon *d, const struct sl_config *next, const struct sl_reload_plan *plan,
                  char *msg, size_t len)
{
    size_t r = 0;
    for (; r < plan->nq_add; r++) {
        const struct sl_queue_config *qc = &next->queues[plan->q_add[r]];
        struct sl_queue *q = sl_queue_new(qc->name, qc->capacity, qc->chunk_bytes);
        struct sl_backlog *bl = NULL;
        struct sl_sink **sinks = calloc(next->nsinks + 1, sizeof(*sinks));
        size_t n = 0;
        bool ok = q != NULL && sinks != NULL;
        if (ok) {
            sl_queue_set_when_full(q, (enum sl_when_full)qc->when_full);
            bl = qc->type == SL_QUEUE_DISK ? daemon_open_disk_queue(q, qc)
                                           : sl_backlog_memory_new(q);
            ok = bl != NULL;
        }
        for (size_t j = 0; ok && j < next->nsinks; j++) {
            if (strcmp(next->sinks[j].queue, qc->name) == 0) {
                ok = (sinks[n] = sink_obj_new(&next->sinks[j], q)) != NULL;
                if (ok) {
                    sinks[n++]->ops = next->sinks[j].type->impl.sink;
                }
            }
        }
        struct sl_queue **gq = ok ? realloc(d->queues, (d->nqueues + 1) * sizeof(*gq)) : NULL;
        if (gq != NULL) {
            pthread_mutex_lock(&d->objs_mu);
            d->queues = gq;
            pthread_mutex_unlock(&d->objs_mu);
        }
        struct sl_backlog **gb =
            gq != NULL ? realloc(d->backlogs, (d->nqueues + 1) * sizeof(*gb)) : NULL;
        if (gb != NULL) {
            d->backlogs = gb;
        }
        struct sl_sink **gs =
            gb != NULL ? realloc(d->sinks, (d->nsinks + n + 1) * sizeof(*gs)) : NULL;
        if (gs != NULL) {
            pthread_mutex_lock(&d->objs_mu);
            d->sinks = gs;
            pthread_mutex_unlock(&d->objs_mu);
        }
        int x = gs != NULL
                    ? sl_writer_add_queue(d->writer, q, bl, sinks, n, d->shutdown_timeout_ms + 5000)
                    : -1;
        if (x == 0) {
            pthread_mutex_lock(&d->objs_mu);
            d->backlogs[d->nqueues] = NULL; /* the writer's */
            d->queues[d->nqueues++] = q;
            for (size_t k = 0; k < n; k++) {
                d->sinks[d->nsinks++] = sinks[k];
            }
            pthread_mutex_unlock(&d->objs_mu);
            log_info("queue \"%s\": added (%s) with %zu sink(s)", qc->name,
                     qc->type == SL_QUEUE_DISK ? "disk" : "memory", n);
            free(sinks);
            continue;
        }
        char line[512];
        snprintf(line, sizeof(line), "queue \"%s\": not added (%s)", qc->name,
                 x == -2 ? "the writer did not answer in time"
                 : !ok   ? "cannot make it or open its directory, see the log"
                         : "its sinks cannot open or set up, see the log");
        msg_append(msg, len, line);
        log_warnx("%s", line);
        if (x != -2) {
            for (size_t k = 0; k < n; k++) {
                sink_obj_free(sinks[k]); /* closes a half-open one */
            }
            if (bl != NULL) {
                bl->ops->free(bl);
            }
            sl_queue_free(q);
        }
        free(sinks);
        break;
    }
    if (r == plan->nq_add) {
        return (long)r;
    }
    for (size_t u = 0; u < r; u++) { /* undo: nothing feeds them yet */
        const struct sl_queue_config *qc = &next->queues[plan->q_add[u]];
        struct sl_queue *q = daemon_queue_named(d, qc->name);
        if (q != NULL) {
            (void)daemon_remove_queue(d, q, qc, msg, len);
        }
    }
    return -1;
}

/* A disk queue's keys that change in place, applied on the writer thread
 * (sl_writer_call_backlog): the backlog is the writer's. */
struct daemon_disk_change {
    uint64_t max_size;          /* 0: unchanged */
    uint64_t fsync_interval_ms; /* 0: unchanged */
    int rc;
    char why[256];
};

static void
daemon_disk_change_cb(struct sl_backlog *bl, void *arg)
{
    struct daemon_disk_change *c = arg;
    if (c->max_size != 0 &&
        sl_backlog_disk_set_max_size(bl, c->max_size, c->why, sizeof(c->why)) < 0) {
        c->rc = -1;
        return;
    }
    if (c->fsync_interval_ms != 0 &&
        sl_backlog_disk_set_fsync_interval(bl, c->fsync_interval_ms) < 0) {
        snprintf(c->why, sizeof(c->why), "not a disk queue");
        c->rc = -1;
    }
}

/*
 * Before anything changes: a queue's capacity may rise live only as far as
 * its rings were sized when it was made (sl_queue_max_chunks).  Returns 0,
 * or -1 with msg saying why (the whole reload is refused, as a failed
 * bind).
 */
static int
daemon_check_queue_changes(struct daemon *d, const struct sl_config *next,
                           const struct sl_reload_plan *plan, char *msg, size_t len)
{
    for (size_t r = 0; r < plan->nq_change; r++) {
        const struct sl_queue_config *qc = &next->queues[plan->q_change[r]];
        struct sl_queue *q = daemon_queue_named(d, qc->name);
        if (q == NULL) {
            continue; /* named when applied */
        }
        uint64_t most = (uint64_t)sl_queue_max_chunks(q) * sl_queue_chunk_bytes(q);
        if (qc->capacity / sl_queue_chunk_bytes(q) > sl_queue_max_chunks(q)) {
            snprintf(msg, len,
                     "queue \"%s\": capacity %" PRIu64 " bytes is more than %d x the capacity it "
                     "was made with (at most %" PRIu64 " bytes live: its rings are sized when it "
                     "is made); restart to apply it",
                     qc->name, (uint64_t)qc->capacity, SL_QUEUE_GROWTH, most);
            return -1;
        }
    }
    return 0;
}

/* One queue changed in place (reload_queue_change): capacity and when_full
 * on the queue itself (any thread: producers and the writer read them at
 * each use), a disk queue's max_size and fsync_interval on the writer
 * thread.  Returns 0, or -1 with the line for msg in line. */
static int
daemon_change_queue(struct daemon *d, const struct sl_queue_config *old,
                    const struct sl_queue_config *qc, char *line, size_t len)
{
    struct sl_queue *q = daemon_queue_named(d, qc->name);
    if (q == NULL) {
        snprintf(line, len, "queue \"%s\": not changed (it does not run)", qc->name);
        return -1;
    }
    if (old == NULL || old->when_full != qc->when_full) {
        sl_queue_set_when_full(q, (enum sl_when_full)qc->when_full);
        log_info("queue \"%s\": when_full changed; it keeps its contents", qc->name);
    }
    if (old == NULL || old->capacity != qc->capacity) {
        size_t held = sl_queue_in_use(q);
        if (sl_queue_set_capacity(q, qc->capacity) < 0) {
            snprintf(line, len, "queue \"%s\": capacity not changed (out of range)", qc->name);
            return -1;
        }
        log_info("queue \"%s\": capacity is %zu chunk(s) of %zu bytes now; it holds %zu%s",
                 qc->name, sl_queue_nchunks(q), sl_queue_chunk_bytes(q), held,
                 held > sl_queue_nchunks(q) ? " (kept: producers wait until it is under the bound)"
                                            : "");
    }
    if (qc->type != SL_QUEUE_DISK) {
        return 0;
    }
    struct daemon_disk_change c = {
        .max_size = old == NULL || old->max_size != qc->max_size ? qc->max_size : 0,
        .fsync_interval_ms = old == NULL || old->fsync_interval_ms != qc->fsync_interval_ms
                                 ? qc->fsync_interval_ms
                                 : 0,
    };
    if (c.max_size == 0 && c.fsync_interval_ms == 0) {
        return 0;
    }
    int x = sl_writer_call_backlog(d->writer, q, daemon_disk_change_cb, &c,
                                   d->shutdown_timeout_ms + 5000);
    if (x != 0 || c.rc != 0) {
        snprintf(line, len, "queue \"%s\": %s not changed (%s)", qc->name,
                 c.max_size != 0 ? "max_size" : "fsync_interval",
                 x == -2  ? "the writer did not answer in time"
                 : x != 0 ? "it does not run"
                          : c.why);
        return -1;
    }
    if (c.max_size != 0) {
        log_info("queue \"%s\": max_size is %" PRIu64 " bytes now", qc->name, c.max_size);
    }
    if (c.fsync_interval_ms != 0) {
        log_info("queue \"%s\": fsync_interval is %" PRIu64 " ms now", qc->name,
                 c.fsync_interval_ms);
    }
    return 0;
}

/*
 * Applies the plan's in-place queue changes (daemon_change_queue), then
 * removes the queues it removes (their sources stopped before:
 * daemon_change_sources ran).  Returns how many could not be applied (each
 * logged, in msg).
 */
static size_t
daemon_change_queues(struct daemon *d, const struct sl_config *cur, struct sl_config *next,
                     const struct sl_reload_plan *plan, char *msg, size_t len)
{
    size_t failed = 0;
    char line[512];
    for (size_t r = 0; r < plan->nq_change; r++) {
        const struct sl_queue_config *qc = &next->queues[plan->q_change[r]];
        const struct sl_queue_config *old = NULL;
        for (size_t i = 0; i < cur->nqueues; i++) {
            if (strcmp(cur->queues[i].name, qc->name) == 0) {
                old = &cur->queues[i];
            }
        }
        /* A queue whose last change failed (stale, below) runs with other
         * settings than cur says: every setting is applied again (old
         * NULL), all of them idempotent. */
        struct sl_config_section *sec = daemon_section_named(next, SL_CONF_QUEUE, qc->name);
        const struct sl_config_section *was = daemon_section_named(cur, SL_CONF_QUEUE, qc->name);
        if (was != NULL && was->stale) {
            old = NULL;
        }
        if (daemon_change_queue(d, old, qc, line, sizeof(line)) < 0) {
            /* Not applied (or in part): next, once adopted, must not claim
             * it runs with these settings; the next reload, of the same
             * file too, compares it as changed and applies it again. */
            if (sec != NULL) {
                sec->stale = true;
            }
            if (*msg != '\0') {
                msg_append(msg, len, "\n");
            }
            msg_append(msg, len, line);
            log_warnx("%s", line);
            failed++;
        }
    }
    for (size_t r = 0; r < plan->nq_remove; r++) {
        const struct sl_queue_config *qc = &cur->queues[plan->q_remove[r]];
        struct sl_queue *q = daemon_queue_named(d, qc->name);
        if (q == NULL || daemon_remove_queue(d, q, qc, msg, len) < 0) {
            failed++;
        }
    }
    return failed;
}

/*
 * A reload (SIGHUP, POST /reload): outputs reopen and TLS certificates
 * reload as always (logrotate's postrotate relies on it, whatever the
 * config says), then the config file given with -c is read again.  Any
 * error, or any change this version cannot apply live (reload.h), refuses
 * the whole reload: every reason is logged (the config's as FILE:LINE),
 * counted, and the old config keeps running.  Otherwise the [daemon] keys
 * that may change live are applied and the generation goes up; keys that
 * need a restart are reported.  systemd sees RELOADING=1, then READY=1 with
 * STATUS= naming the generation.  The result goes into msg (len bytes; first
 * line "ok: ..." or "failed: ...", then one line per difference or error).
 * Returns 0 (applied) or -1 (refused).  Main thread; it runs to the end
 * before the next signal is looked at, so reloads never overlap.
 */
static int
daemon_reload(struct daemon *d, const char *who, char *msg, size_t len)
{
    struct sl_config_errors errs = {0};
    struct sl_reload_plan plan;
    struct timespec mono;
    char line[512];
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &mono);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading the config",
               (uint64_t)mono.tv_sec * 1000000u + (uint64_t)mono.tv_nsec / 1000u);
    log_info("%s: reopening outputs, re-reading %s", who, d->cfg->path);
    sl_writer_reopen(d->writer);
    for (size_t i = 0; i < d->nsources; i++) {
        /* relp: librelp reads its certificate and key at each new
         * connection itself (docs/configuration.md, RELP). */
        if (d->sources[i]->shared.tls != NULL &&
            sl_source_type_of(d->sources[i]->cfg) != &sl_source_relp) {
            (void)sl_tls_reload(d->sources[i]->shared.tls); /* logs either way */
        }
    }
    (void)sl_admin_reload_token(d->admin, d->cfg->daemon.admin_token_file); /* logs */
    (void)sl_admin_reload_tls(d->admin); /* logs either way */
    *msg = '\0';
    /* A config that is not a regular file (a FIFO, /dev/stdin: sluiced -c
     * accepts any readable file) cannot be read again: opening a FIFO
     * nobody writes would block the main thread for good. */
    struct stat st;
    int serr = stat(d->cfg->path, &st) < 0 ? errno : 0;
    if (serr != 0 || !S_ISREG(st.st_mode)) {
        char why[512], ebuf[128];
        snprintf(why, sizeof(why), "%s: %s", d->cfg->path,
                 serr != 0 ? strerror_r(serr, ebuf, sizeof(ebuf))
                           : "not a regular file (a FIFO or a device): it cannot be read again");
        reload_refused(d, 1, why);
        snprintf(msg, len,
                 "failed: %s; nothing changed, config generation %" PRIu64 " keeps running", why,
                 d->reload.generation);
        log_warnx("reload refused: %s; config generation %" PRIu64 " keeps running", why,
                  d->reload.generation);
        rc = -1;
        goto done;
    }
    struct sl_config *next = sl_config_load(d->cfg->path, &errs);
    if (next == NULL) {
        for (size_t i = 0; i < errs.count; i++) {
            log_warnx("reload: %s", errs.msgs[i]);
        }
        reload_refused(d, errs.count, errs.count > 0 ? errs.msgs[0] : "cannot load");
        snprintf(msg, len,
                 "failed: %zu error(s) in %s; nothing changed, config generation %" PRIu64
                 " keeps running",
                 errs.count, d->cfg->path, d->reload.generation);
        for (size_t i = 0; i < errs.count; i++) {
            snprintf(line, sizeof(line), "\n%s", errs.msgs[i]);
            msg_append(msg, len, line);
        }
        log_warnx("reload refused: %zu error(s) in %s; config generation %" PRIu64 " keeps running",
                  errs.count, d->cfg->path, d->reload.generation);
        rc = -1;
        goto done;
    }
    sl_reload_compare(d->cfg, daemon_cur_cfg(d), next, &plan);
    char why[1024] = "";
    struct sl_source_obj *fresh_src[2 * SL_RELOAD_REPLACE_MAX] = {0};
    int replaced = 0;
    long qadded = 0;
    if (!plan.refused &&
        ((plan.nq_change > 0 && daemon_check_queue_changes(d, next, &plan, why, sizeof(why)) < 0) ||
         (plan.nq_add > 0 && (qadded = daemon_add_queues(d, next, &plan, why, sizeof(why))) < 0))) {
        replaced = -1; /* nothing changed (queues added were removed again) */
    } else if (!plan.refused && plan.nsrc_add + plan.nsrc_change > 0 &&
               daemon_bind_new_sources(d, next, &plan, fresh_src, why, sizeof(why)) < 0) {
        for (long u = 0; u < qadded; u++) { /* undo: nothing feeds them yet */
            const struct sl_queue_config *qc = &next->queues[plan.q_add[u]];
            struct sl_queue *q = daemon_queue_named(d, qc->name);
            if (q != NULL) {
                (void)daemon_remove_queue(d, q, qc, why, sizeof(why));
            }
        }
        replaced = -1; /* nothing changed */
    } else if (!plan.refused && plan.nreplace > 0) {
        replaced = daemon_replace_sinks(d, next, &plan, why, sizeof(why));
    }
    if (!plan.refused && replaced != -1 && plan.nadd + plan.nchange + plan.nremove > 0) {
        size_t failed = 0;
        size_t done = daemon_change_sinks(d, next, &plan, &failed, why, sizeof(why));
        if (failed > 0) {
            /* Nothing at all applied: the reload is refused; else applied in part. */
            replaced = done == 0 && plan.nreplace == 0 && qadded == 0 &&
                               plan.nsrc_add + plan.nsrc_change + plan.nsrc_remove +
                                       plan.nq_change + plan.nq_remove ==
                                   0
                           ? -1
                           : -2;
        }
    }
    if (!plan.refused && replaced != -1 &&
        plan.nsrc_add + plan.nsrc_change + plan.nsrc_remove > 0) {
        size_t failed = 0;
        (void)daemon_change_sources(d, next, &plan, fresh_src, &failed, why, sizeof(why));
        if (failed > 0) {
            replaced = -2; /* applied in part: each failure is named */
            daemon_mark_unstarted_sources(d, next, &plan);
        }
    }
    if (!plan.refused && replaced != -1 && plan.nq_change + plan.nq_remove > 0 &&
        daemon_change_queues(d, daemon_cur_cfg(d), next, &plan, why, sizeof(why)) > 0) {
        replaced = -2; /* applied in part: each failure is named */
    }
    if (replaced == -1) {
        for (size_t k = 0; k < plan.nsrc_add + plan.nsrc_change; k++) {
            source_obj_free(fresh_src[k]); /* bound, never started */
        }
        reload_refused(d, 1, why);
        snprintf(msg, len,
                 "failed: %s; nothing changed, config generation %" PRIu64 " keeps running", why,
                 d->reload.generation);
        log_warnx("reload refused: %s; config generation %" PRIu64 " keeps running", why,
                  d->reload.generation);
        rc = -1;
    } else if (plan.refused) {
        char first[256];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(plan.report, "\n"), plan.report);
        reload_refused(d, plan.nrefusals, first);
        snprintf(msg, len,
                 "failed: %u change(s) cannot be applied live; nothing changed, config "
                 "generation %" PRIu64 " keeps running (restart sluiced to apply them)\n",
                 plan.nrefusals, d->reload.generation);
        msg_append(msg, len, plan.report);
        log_warnx("reload refused: %u change(s) cannot be applied live; config generation "
                  "%" PRIu64 " keeps running",
                  plan.nrefusals, d->reload.generation);
        rc = -1;
    } else {
        /* The [daemon] keys that may change live; the others keep their
         * running value (reported in plan.report). */
        sl_log_set_level(next->daemon.log_level);
        d->shutdown_timeout_ms = next->daemon.shutdown_timeout_ms;
        if (plan.nreplace + plan.nadd + plan.nchange + plan.nsrc_add + plan.nsrc_change +
                plan.nq_add + plan.nq_change + plan.nq_remove + plan.nsrc_remove + plan.nremove >
            0) {
            /* New sinks point into next: it stays, as every earlier
             * adopted config does for the objects still built from it.
             * A reload that only removes keeps it too: it is what the next
             * reload compares with (a source removed and then added back is
             * an add, not "unchanged"). */
            struct sl_config **grown = realloc(d->cfgs, (d->ncfgs + 1) * sizeof(*d->cfgs));
            if (grown != NULL) {
                d->cfgs = grown;
                d->cfgs[d->ncfgs++] = next;
                next = NULL;
                daemon_cfgs_trim(d);
            } else {
                log_warnx("reload: out of memory keeping the new config; it is leaked");
                next = NULL; /* objects borrow it: never freed */
            }
        }
        d->reload.generation++;
        d->reload.ok++;
        d->reload.last_failed = false;
        d->reload.last_ok_realtime_ms = sl_realtime_ms();
        atomic_store(&d->status_generation, d->reload.generation);
        snprintf(msg, len, "ok: reopening outputs; config generation %" PRIu64 "%s",
                 d->reload.generation, plan.same ? " (unchanged)" : "");
        if (!plan.same) {
            msg_append(msg, len, "\n");
            msg_append(msg, len, plan.report);
        }
        if (*why != '\0') {
            /* What sinks that went gave up, and those the writer did not
             * take (applied but for them); all logged. */
            msg_append(msg, len, "\n");
            msg_append(msg, len, why);
        }
        log_info("reload: config generation %" PRIu64 " applied%s", d->reload.generation,
                 plan.same ? " (unchanged)" : "");
    }
    for (const char *p = replaced == -1 ? "" : plan.report; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        if (plan.refused || plan.nrestart > 0) {
            log_warnx("reload: %.*s", (int)n, p);
        } else {
            log_info("reload: %.*s", (int)n, p);
        }
        p += n + (p[n] == '\n');
    }
    sl_config_free(next);
done:
    sl_config_errors_fini(&errs);
    if (rc == 0) {
        sd_notifyf(0, "READY=1\nSTATUS=running, config generation %" PRIu64, d->reload.generation);
    } else {
        sd_notifyf(0,
                   "READY=1\nSTATUS=running, config generation %" PRIu64
                   " (the last reload was refused, see the log)",
                   d->reload.generation);
    }
    return rc;
}

/* POST /reload on the admin endpoint: what SIGHUP does, with the result. */
static int
admin_reload_cb(void *arg, char *msg, size_t len)
{
    struct daemon *d = arg;
    return daemon_reload(d, "POST /reload", msg, len);
}

/* Runs the reloads SIGHUP asked for: however many signals came while the
 * last one ran, one more reload runs (they coalesce, none is lost). */
static void
daemon_reload_cb(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    char msg[256];
    (void)fd;
    (void)what;
    while (d->reload_pending) {
        d->reload_pending = false;
        (void)daemon_reload(d, "SIGHUP", msg, sizeof(msg)); /* logs its result */
    }
}

/* The signals the main thread reads from its signalfd; blocked in every
 * thread so that none is ever delivered to a handler (DESIGN "Signals"). */
static void
daemon_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

/* The signalfd is readable: takes every signal pending for the process.
 * SIGHUP asks for a reload (they coalesce: daemon_reload_cb); SIGTERM or
 * SIGINT stops the event loop, and the orderly stop follows in daemon_run.
 * The kernel keeps one pending instance of each signal, so a burst of the
 * same signal reads as one. */
static void
signal_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    struct signalfd_siginfo si;
    ssize_t n;
    (void)what;
    while ((n = read(fd, &si, sizeof(si))) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            d->reload_pending = true;
            event_active(d->reload_ev, EV_TIMEOUT, 0); /* once, however many SIGHUPs */
            continue;
        }
        log_info("%s: stopping (sent by pid %" PRIu32 ")",
                 si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", si.ssi_pid);
        event_base_loopbreak(d->base);
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        log_warn("signalfd: read");
    }
}

/* One log line with the source's counters, summed over the threads:
 * `source "NAME": WHATevents=...`. */
static void
log_source_counters(const struct sl_source_obj *o, const char *what)
{
    {
        struct sl_source_stats t = {0};
        for (unsigned p = 0; p < o->nthreads; p++) {
            const struct sl_source_stats *x = &o->stats[p];
#define ADD(f) sl_counter_add(&t.f, sl_counter_get(&x->f))
            ADD(events_in);
            ADD(bytes_in);
            ADD(invalid);
            ADD(oversize);
            ADD(dropped_full);
            ADD(kernel_drops);
            ADD(truncated);
            ADD(conn_accepted);
            ADD(conn_rejected);
            ADD(pauses);
#undef ADD
        }
        log_info("source \"%s\": %sevents=%" PRIu64 " bytes=%" PRIu64 " invalid=%" PRIu64
                 " oversize=%" PRIu64 " dropped_full=%" PRIu64 " kernel_drops=%" PRIu64
                 " truncated=%" PRIu64 " connections=%" PRIu64 " rejected=%" PRIu64
                 " pauses=%" PRIu64,
                 o->cfg->name, what, sl_counter_get(&t.events_in), sl_counter_get(&t.bytes_in),
                 sl_counter_get(&t.invalid), sl_counter_get(&t.oversize),
                 sl_counter_get(&t.dropped_full), sl_counter_get(&t.kernel_drops),
                 sl_counter_get(&t.truncated), sl_counter_get(&t.conn_accepted),
                 sl_counter_get(&t.conn_rejected), sl_counter_get(&t.pauses));
    }
}

static void
log_summary(struct daemon *d)
{
    for (size_t s = 0; s < d->nsources; s++) {
        log_source_counters(d->sources[s], "");
    }
    for (size_t j = 0; j < d->nsinks; j++) {
        const struct sl_sink_stats *x = d->sinks[j]->stats;
        log_info("sink \"%s\": events=%" PRIu64 " bytes=%" PRIu64 " batches=%" PRIu64
                 " errors=%" PRIu64 " fsyncs=%" PRIu64 " reopens=%" PRIu64,
                 d->sinks[j]->cfg->name, sl_counter_get(&x->events_out),
                 sl_counter_get(&x->bytes_out), sl_counter_get(&x->batches),
                 sl_counter_get(&x->errors), sl_counter_get(&x->fsyncs),
                 sl_counter_get(&x->reopens));
    }
}

/* Bytes pushed into every queue and not yet released by the writer: what a
 * stop that abandons a stuck thread gives up (with what that thread held). */
static size_t
daemon_queued_bytes(const struct daemon *d)
{
    size_t queued = 0;
    for (size_t i = 0; i < d->nqueues; i++) {
        queued += sl_queue_queued_bytes(d->queues[i]);
    }
    return queued;
}

/*
 * The orderly stop, bounded in total by shutdown_timeout (T):
 *   - the producers get the first half of T to read what the kernel holds
 *     (a sender that never stops would otherwise keep them reading), then
 *     they are forced;
 *   - the writer drains the queues until T minus a reserve (a quarter of
 *     T, at most 1 s), then it is forced: it gives up what is still
 *     pending and flushes;
 *   - a writer that has not returned by T is stuck in a system call (an
 *     output that accepts no bytes: a FIFO nobody reads, a hung network
 *     file system).  It cannot be interrupted safely, so it is abandoned:
 *     returns -1 and the caller exits without joining it.  So is a forced
 *     producer that has not returned by T (it was running the writer's
 *     pass, writer.c THE INLINE TURN, and is in that system call).
 * Returns 0 when every thread was joined.
 */
static int
daemon_stop(struct daemon *d)
{
    uint64_t total = d->shutdown_timeout_ms;
    uint64_t reserve = total / 4 < 1000 ? total / 4 : 1000;
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    struct timespec producers_until = sl_timespec_add_ms(start, total / 2);
    struct timespec drain_until = sl_timespec_add_ms(start, total - reserve);
    struct timespec hard_until = sl_timespec_add_ms(start, total);

    for (unsigned i = 0; i < d->nproducers; i++) {
        sl_producer_stop(d->producers[i], false);
    }
    for (unsigned i = 0; i < d->nproducers; i++) {
        struct sl_producer *p = d->producers[i];
        if (sl_producer_join_until(p, &producers_until) != 0) {
            log_warnx("producer %u did not drain within half of shutdown_timeout; forcing", i);
            sl_producer_stop(p, true);
            /* A producer running the writer's pass (THE INLINE TURN in
             * writer.c) can be in the same system call as a stuck writer. */
            if (sl_producer_join_until(p, &hard_until) != 0) {
                log_warnx("producer %u is stuck in a system call (writing an output that takes "
                          "no data?); exiting without it at shutdown_timeout: %zu queued byte(s) "
                          "and what it held are given up",
                          i, daemon_queued_bytes(d));
                return -1;
            }
        }
    }
    sl_writer_stop(d->writer, false);
    if (sl_writer_join_until(d->writer, &drain_until) != 0) {
        log_warnx("writer did not finish within shutdown_timeout; forcing");
        sl_writer_stop(d->writer, true);
        if (sl_writer_join_until(d->writer, &hard_until) != 0) {
            log_warnx("writer is stuck in a system call (an output that takes no data?); "
                      "exiting without it at shutdown_timeout: %zu queued byte(s) and what it "
                      "held are given up",
                      daemon_queued_bytes(d));
            return -1;
        }
    }
    uint64_t lost = sl_writer_lost(d->writer);
    for (unsigned i = 0; i < d->nproducers; i++) {
        lost += sl_producer_lost(d->producers[i]);
    }
    if (lost > 0) {
        log_warnx("shutdown gave up %" PRIu64 " byte(s) that could not be written", lost);
    }
    return 0;
}

/* ---- the object graph: build and free ------------------------------------------- */

/* A sink object: its config (borrowed), its counters and its queue. */
static struct sl_sink *
sink_obj_new(const struct sl_sink_config *sc, struct sl_queue *queue)
{
    struct sl_sink *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->stats = calloc(1, sizeof(*s->stats));
    if (s->stats == NULL) {
        free(s);
        return NULL;
    }
    s->cfg = sc;
    s->queue = queue;
    sl_metrics_init_sink(s->stats);
    return s;
}

/* Closes a sink that was opened (or half-opened) and frees it. */
static void
sink_obj_free(struct sl_sink *s)
{
    if (s == NULL) {
        return;
    }
    if (s->ops != NULL) {
        s->ops->close(s);
    }
    free(s->stats);
    free(s);
}

/* A source object for nthreads producer threads, no socket bound yet. */
static struct sl_source_obj *
source_obj_new(const struct sl_source_config *sc, struct sl_queue *queue, unsigned nthreads)
{
    struct sl_source_obj *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        return NULL;
    }
    o->cfg = sc;
    o->queue = queue;
    o->nthreads = nthreads;
    atomic_init(&o->shared.conns, 0);
    o->stats = calloc(nthreads, sizeof(*o->stats));
    o->fds = malloc(nthreads * sizeof(*o->fds));
    if (o->stats == NULL || o->fds == NULL) {
        free(o->stats);
        free(o->fds);
        free(o);
        return NULL;
    }
    for (unsigned t = 0; t < nthreads; t++) {
        o->fds[t] = -1;
    }
    return o;
}

/* Closes the sockets no producer took, undoes the type's bind (a unix
 * socket file) and frees the object.  After the producers are freed. */
static void
source_obj_free(struct sl_source_obj *o)
{
    if (o == NULL) {
        return;
    }
    for (unsigned t = 0; t < o->nthreads; t++) {
        if (o->fds[t] >= 0) {
            close(o->fds[t]);
        }
    }
    const struct sl_source_type *type = sl_source_type_of(o->cfg);
    if (type->unbind != NULL && !o->shared.activated) {
        type->unbind(o->cfg, &o->shared);
    }
    sl_tls_free(o->shared.tls);
    free(o->stats);
    free(o->fds);
    free(o);
}

static void
daemon_free(struct daemon *d)
{
    /* The writer first: freeing it gives back the chunks it still holds,
     * which may signal the producers' wakes, so they must still exist. */
    sl_writer_free(d->writer);
    for (unsigned i = 0; d->producers != NULL && i < d->nproducers; i++) {
        sl_producer_free(d->producers[i]);
    }
    sl_admin_free(d->admin);
    for (size_t j = 0; d->sinks != NULL && j < d->nsinks; j++) {
        sink_obj_free(d->sinks[j]);
    }
    for (size_t i = 0; d->sources != NULL && i < d->nsources; i++) {
        source_obj_free(d->sources[i]);
    }
    sl_source_sluice_free_senders(); /* every instance is gone */
    for (size_t i = 0; d->backlogs != NULL && i < d->nqueues; i++) {
        if (d->backlogs[i] != NULL) {
            d->backlogs[i]->ops->free(d->backlogs[i]); /* the writer never took it */
        }
    }
    free(d->backlogs);
    for (size_t i = 0; d->queues != NULL && i < d->nqueues; i++) {
        sl_queue_free(d->queues[i]);
    }
    free(d->producers);
    free(d->queues);
    free(d->sinks);
    free(d->sources);
    free(d->strays); /* the objects stay allocated (daemon_remove_source) */
    if (d->sig_ev != NULL) {
        event_free(d->sig_ev);
    }
    if (d->sigfd >= 0) {
        close(d->sigfd);
    }
    if (d->reload_ev != NULL) {
        event_free(d->reload_ev);
    }
    if (d->base != NULL) {
        event_base_free(d->base);
    }
    sl_config_free(d->cfg);
    for (size_t i = 0; i < d->ncfgs; i++) {
        sl_config_free(d->cfgs[i]);
    }
    free(d->cfgs);
}

/* Closes (and frees) the original inherited sockets once duplicated. */
static void
activation_close(int *inherited, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (inherited[i] >= 0) {
            close(inherited[i]);
        }
    }
    free(inherited);
}

/* The queue object named name (a source's or sink's `queue`), or NULL.
 * By name, not by config index: the reference survives a reload that
 * renumbers the config's sections. */
static struct sl_queue *
daemon_queue_named(const struct daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nqueues; i++) {
        if (strcmp(sl_queue_name(d->queues[i]), name) == 0) {
            return d->queues[i];
        }
    }
    return NULL;
}

/* Opens a disk queue's directory: `path`, else $STATE_DIRECTORY/queues/NAME
 * (systemd's StateDirectory=, the first of a list), else
 * var/lib/queues/NAME under the working directory (the checkout). */
static void
daemon_disk_queue_dir(const struct sl_queue_config *qc, char *path, size_t cap)
{
    const char *state = getenv("STATE_DIRECTORY"); // NOLINT(concurrency-mt-unsafe): set-up
    if (qc->path != NULL) {
        snprintf(path, cap, "%s", qc->path);
    } else if (state != NULL && *state != '\0') {
        size_t n = strcspn(state, ":");
        snprintf(path, cap, "%.*s/queues/%s", (int)n, state, qc->name);
    } else {
        snprintf(path, cap, "var/lib/queues/%s", qc->name);
    }
}

static struct sl_backlog *
daemon_open_disk_queue(struct sl_queue *q, const struct sl_queue_config *qc)
{
    char path[4096], why[512];
    daemon_disk_queue_dir(qc, path, sizeof(path));
    struct sl_backlog_disk_config dc = {
        .path = path,
        .max_size = qc->max_size,
        .fsync = qc->fsync,
        .fsync_interval_ms = qc->fsync_interval_ms,
    };
    struct sl_backlog *b = sl_backlog_disk_open(q, &dc, why, sizeof(why));
    if (b == NULL) {
        log_warnx("queue \"%s\": %s", qc->name, why);
    }
    return b;
}

static int
daemon_build_queues(struct daemon *d)
{
    const struct sl_config *cfg = d->cfg;
    d->queues = calloc(cfg->nqueues, sizeof(*d->queues));
    d->backlogs = calloc(cfg->nqueues, sizeof(*d->backlogs));
    if (d->queues == NULL || d->backlogs == NULL) {
        log_warnx("out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->nqueues; i++) {
        const struct sl_queue_config *qc = &cfg->queues[i];
        d->queues[d->nqueues] = sl_queue_new(qc->name, qc->capacity, qc->chunk_bytes);
        if (d->queues[d->nqueues] == NULL) {
            log_warnx("queue \"%s\": cannot create", qc->name);
            return -1;
        }
        sl_queue_set_when_full(d->queues[d->nqueues], (enum sl_when_full)qc->when_full);
        d->nqueues++;
        if (qc->type == SL_QUEUE_DISK) {
            d->backlogs[i] = daemon_open_disk_queue(d->queues[i], qc);
            if (d->backlogs[i] == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

/* Creates and opens every sink, each pointing at the queue it drains. */
static int
daemon_open_sinks(struct daemon *d)
{
    const struct sl_config *cfg = d->cfg;
    d->sinks = calloc(cfg->nsinks, sizeof(*d->sinks));
    if (d->sinks == NULL) {
        log_warnx("out of memory");
        return -1;
    }
    for (size_t j = 0; j < cfg->nsinks; j++) {
        const struct sl_sink_config *sc = &cfg->sinks[j];
        struct sl_queue *q = daemon_queue_named(d, sc->queue);
        struct sl_sink *s = q != NULL ? sink_obj_new(sc, q) : NULL;
        if (s == NULL) {
            log_warnx("sink \"%s\": cannot set up", sc->name);
            return -1;
        }
        d->sinks[d->nsinks++] = s;
        s->ops = sc->type->impl.sink;
        if (s->ops == NULL || s->ops->open(s) < 0) {
            return -1; /* close() in daemon_free releases a half-open sink */
        }
    }
    return 0;
}

/* The admin endpoint listens before any source: once a client can connect
 * to a source, /metrics and /healthz answer too (requests wait in the
 * backlog until the main loop runs). */
static int
daemon_start_admin(struct daemon *d)
{
    const struct sl_daemon_config *dc = &d->cfg->daemon;
    d->start_realtime_ms = sl_realtime_ms();
    if (!dc->admin_enabled) {
        return 0;
    }
    d->admin = sl_admin_new(d->base, dc->admin_listen, (const struct sockaddr *)&dc->admin_addr,
                            dc->admin_addrlen, admin_view_cb, d);
    if (d->admin == NULL) {
        log_warnx("admin_listen = %s cannot be served (set another address, or off)",
                  dc->admin_listen);
        return -1;
    }
    sl_admin_set_reload(d->admin, admin_reload_cb, d);
    if (dc->admin_token_set) {
        sl_admin_set_auth(d->admin, dc->admin_token_sha256, dc->admin_public);
    }
    if (dc->admin_tls.on) {
        char why[512];
        if (sl_admin_set_tls(d->admin, &dc->admin_tls, why, sizeof(why)) < 0) {
            log_warnx("admin_listen = %s: admin_tls: %s", dc->admin_listen, why);
            return -1;
        }
    }
    return 0;
}

/*
 * A new source object for sc (of cfg) feeding its queue, with what its type
 * needs beside its sockets: a sluice source on a disk queue gets its
 * duplicate filter's file in the queue's directory, a TLS source its
 * context (certificate files read now).  At start and at a reload (main
 * thread).  Returns it, or NULL with why filled.
 */
static struct sl_source_obj *
daemon_new_source_obj(struct daemon *d, const struct sl_config *cfg,
                      const struct sl_source_config *sc, char *why, size_t len)
{
    if (sc->queue_index < cfg->nqueues) {
        const struct sl_queue_config *qc = &cfg->queues[sc->queue_index];
        if (sc->type == &sl_source_sluice_conf && qc->type == SL_QUEUE_DISK) {
            /* The duplicate filter persists with the disk queue by itself:
             * a file in the queue's directory (docs/configuration.md). */
            struct sl_source_sluice_config *k = sc->type_conf;
            char dir[4096], file[4200];
            daemon_disk_queue_dir(qc, dir, sizeof(dir));
            snprintf(file, sizeof(file), "%s/sluice-senders", dir);
            if (k->state_path == NULL && (k->state_path = strdup(file)) == NULL) {
                snprintf(why, len, "source \"%s\": out of memory", sc->name);
                return NULL;
            }
        }
    }
    struct sl_queue *q = daemon_queue_named(d, sc->queue);
    struct sl_source_obj *o = q != NULL ? source_obj_new(sc, q, d->nproducers) : NULL;
    if (o == NULL) {
        snprintf(why, len, "source \"%s\": cannot set up", sc->name);
        return NULL;
    }
    const struct sl_tls_config *tls = NULL;
    if (sl_source_type_of(sc) == &sl_source_tcp ||
        sl_source_type_of(sc) == &sl_source_sluice) { /* sluice's conf starts with the tcp one */
        tls = &sl_source_tcp_config(sc)->tls;
    } else if (sl_source_type_of(sc) == &sl_source_relp) {
        /* librelp does the TLS; this object holds the counters (and
         * checked the files once more). */
        tls = &sl_source_relp_config(sc)->tls;
    }
    if (tls != NULL && tls->on) {
        char label[96], err[512];
        snprintf(label, sizeof(label), "source \"%s\"", sc->name);
        o->shared.tls = sl_tls_new(tls, SL_TLS_SERVER, label, err, sizeof(err));
        if (o->shared.tls == NULL) {
            snprintf(why, len, "%s: TLS: %s", label, err);
            source_obj_free(o);
            return NULL;
        }
    }
    return o;
}

/* Every source object, pointing at the queue it feeds. */
static int
daemon_build_sources(struct daemon *d)
{
    const struct sl_config *cfg = d->cfg;
    d->sources = calloc(cfg->nsources, sizeof(*d->sources));
    if (d->sources == NULL) {
        log_warnx("out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        const struct sl_source_config *sc = &cfg->sources[i];
        char why[640];
        struct sl_source_obj *o = daemon_new_source_obj(d, cfg, sc, why, sizeof(why));
        if (o == NULL) {
            log_warnx("%s", why);
            return -1;
        }
        d->sources[d->nsources++] = o;
    }
    return 0;
}

/* One socket per source per producer thread: a dup of the socket systemd
 * passed (shared by the threads), one bound here per thread (SO_REUSEPORT,
 * the address probed first: another process there is a start-up error),
 * or, for a one_socket type (unix), a dup of the one bound for thread 0.
 * The sockets stay in the source objects until the producers take them. */
static int
daemon_bind_sources(struct daemon *d)
{
    int *inherited = calloc(d->cfg->nsources, sizeof(*inherited));
    int rc = 0;
    if (inherited == NULL) {
        log_warnx("out of memory");
        return -1;
    }
    if (sl_activation_adopt(d->cfg, inherited) < 0) {
        free(inherited);
        return -1;
    }
    /* sl_activation_adopt fills inherited[] in config order, the order
     * daemon_build_sources made the objects in. */
    for (size_t i = 0; i < d->nsources; i++) {
        d->sources[i]->shared.activated = inherited[i] >= 0;
    }
    for (unsigned t = 0; rc == 0 && t < d->nproducers; t++) {
        for (size_t i = 0; i < d->nsources; i++) {
            struct sl_source_obj *o = d->sources[i];
            const struct sl_source_type *type = sl_source_type_of(o->cfg);
            if (type->bind == NULL) {
                continue; /* the type listens by itself, in its start() */
            }
            int from = inherited[i] >= 0           ? inherited[i]
                       : t > 0 && type->one_socket ? o->fds[0]
                                                   : -1;
            /* Thread 0's bind makes the group: nobody else may be there
             * (the sources before this one are ours). */
            char why[512];
            if (from < 0 && t == 0 && type->reuseport &&
                !daemon_holds_address(d->sources, i, o->cfg) &&
                daemon_probe_source(o->cfg, why, sizeof(why)) < 0) {
                log_warnx("%s", why);
                rc = -1;
                break;
            }
            o->fds[t] =
                from >= 0 ? fcntl(from, F_DUPFD_CLOEXEC, 3) : type->bind(o->cfg, &o->shared);
            if (o->fds[t] < 0) {
                log_warn("source \"%s\": cannot listen on %s (%s)", o->cfg->name, o->cfg->listen,
                         type->name);
                rc = -1;
                break;
            }
        }
    }
    activation_close(inherited, d->cfg->nsources);
    return rc;
}

static int
daemon_new_producers(struct daemon *d)
{
    d->producers = calloc(d->nproducers, sizeof(*d->producers));
    if (d->producers == NULL) {
        log_warnx("out of memory");
        return -1;
    }
    for (unsigned t = 0; t < d->nproducers; t++) {
        d->producers[t] = sl_producer_new((int)t, &d->cfg->daemon, d->sources, d->nsources);
        if (d->producers[t] == NULL) {
            log_warnx("producer %u: cannot set up", t);
            return -1;
        }
    }
    return 0;
}

/* The writer, with the daemon's periodic work on its tick. */
static int
daemon_new_writer(struct daemon *d)
{
    d->writer = sl_writer_new(d->queues, d->backlogs, d->nqueues, d->sinks, d->nsinks);
    memset(d->backlogs, 0, d->nqueues * sizeof(*d->backlogs)); /* the writer's now */
    if (d->writer == NULL) {
        log_warnx("writer: cannot set up");
        return -1;
    }
    if (sd_watchdog_enabled(0, &d->watchdog_usec) <= 0) {
        d->watchdog_usec = 0;
    } else {
        log_info("watchdog: pinging systemd at least every %.1f s while the writer runs",
                 d->watchdog_usec / 2e6 < 1 ? 1.0 : d->watchdog_usec / 2e6);
    }
    d->notify = getenv("NOTIFY_SOCKET") != NULL; // NOLINT(concurrency-mt-unsafe): before threads
    d->last_ms = sl_now_ms();
    d->last_ping_ms = d->last_ms;
    d->last_generation = 1; /* status_generation's first value */
    sl_writer_set_tick_hook(d->writer, daemon_tick, d);
    return 0;
}

/* Builds the object graph and the threads' state, in start-up order:
 * queues, sinks (opened), the admin endpoint, sources (bound), producers,
 * writer.  Any failure is fatal; daemon_free releases what was built. */
static int
daemon_setup(struct daemon *d)
{
    d->nproducers = d->cfg->daemon.producer_threads;
    d->shutdown_timeout_ms = d->cfg->daemon.shutdown_timeout_ms;
    d->reload.generation = 1;
    d->reload.last_ok_realtime_ms = sl_realtime_ms();
    pthread_mutex_init(&d->objs_mu, NULL);
    atomic_init(&d->status_generation, 1);
    if (daemon_build_queues(d) < 0 || daemon_open_sinks(d) < 0 || daemon_start_admin(d) < 0 ||
        daemon_build_sources(d) < 0 || daemon_bind_sources(d) < 0 || daemon_new_producers(d) < 0 ||
        daemon_new_writer(d) < 0) {
        return -1;
    }
    return 0;
}

static int
daemon_start_threads(struct daemon *d)
{
    int rc = 0;
    /* Each thread starts with all signals blocked (util/thread.h): only
     * the main thread takes signals. */
    if (sl_writer_start(d->writer) < 0) {
        log_warn("writer: cannot start thread");
        rc = -1;
    }
    for (unsigned i = 0; rc == 0 && i < d->nproducers; i++) {
        if (sl_producer_start(d->producers[i]) < 0) {
            log_warn("producer %u: cannot start thread", i);
            rc = -1;
        }
    }
    return rc;
}

/*
 * The command line.  Returns -1 to go on (path and check_only set), or the
 * exit status (--version, --help, a usage error).
 */
static int
parse_args(int argc, char **argv, const char **path, bool *check_only)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'n'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    /* Before any thread is started.  NOLINTNEXTLINE(concurrency-mt-unsafe) */
    while ((c = getopt_long(argc, argv, "c:nVh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *path = optarg;
            break;
        case 'n':
            *check_only = true;
            break;
        case 'V':
            printf("sluiced %s\n", SLUICE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Loads path, printing every error to stderr.  NULL on failure. */
static struct sl_config *
load_config(const char *path)
{
    return sl_config_load_report(path, "sluiced");
}

/* SIGTERM, SIGINT and SIGHUP on the main thread's event_base, read from a
 * signalfd (DESIGN "Signals"); they are already blocked (daemon_run). */
static int
daemon_add_signals(struct daemon *d)
{
    sigset_t set;
    daemon_signals(&set);
    d->reload_ev = event_new(d->base, -1, 0, daemon_reload_cb, d);
    if (d->reload_ev == NULL) {
        return -1;
    }
    d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->sigfd < 0) {
        log_warn("signalfd");
        return -1;
    }
    d->sig_ev = event_new(d->base, d->sigfd, EV_READ | EV_PERSIST, signal_read_cb, d);
    if (d->sig_ev == NULL || event_add(d->sig_ev, NULL) < 0) {
        return -1;
    }
    return 0;
}

/*
 * Runs a daemon whose config is loaded, from set-up to the orderly stop.
 * SIGHUP is blocked since the first line of main; SIGTERM and SIGINT join
 * it here, before any thread or socket exists, so every thread inherits
 * the three blocked and a stop asked for as soon as a socket is bound is an
 * orderly one that reads what clients already sent.  They stay blocked to
 * the end: the main loop reads them from a signalfd, and one that came
 * during start-up is read on its first turn.  Returns the exit status;
 * leaves with _exit when the writer cannot be joined.
 */
static int
daemon_run(struct daemon *d)
{
    sigset_t set;
    daemon_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    d->base = event_base_new();
    if (d->base == NULL || daemon_setup(d) < 0) {
        sd_notifyf(0, "STATUS=start-up failed, see the log");
        daemon_free(d);
        return 1;
    }
    if (daemon_add_signals(d) < 0 || daemon_start_threads(d) < 0) {
        log_warnx("start-up failed");
        if (daemon_stop(d) < 0) {
            _exit(EXIT_FAILURE);
        }
        daemon_free(d);
        return 1;
    }
    char summary[1024];
    sl_config_summary(d->cfg, summary, sizeof(summary));
    log_info("sluiced %s started, %u producer thread(s): %s", SLUICE_VERSION, d->nproducers,
             summary);
    sd_notify(0, "READY=1\nSTATUS=running, config generation 1");

    event_base_dispatch(d->base);

    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    if (daemon_stop(d) < 0) {
        /* The writer or a producer still runs (blocked in the kernel): nothing it
         * uses may be freed, so leave without tearing down. */
        log_summary(d);
        log_warnx("stopped without joining a thread stuck in a system call");
        _exit(EXIT_FAILURE);
    }
    log_summary(d);
    log_info("stopped");
    daemon_free(d);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *path = "/etc/sluice/sluice.conf";
    bool check_only = false;
    /* SIGHUP (a logrotate postrotate racing a restart) is blocked from the
     * first line: its default action would kill the process; it waits for
     * the signalfd (DESIGN "Signals").  SIGTERM and SIGINT keep their
     * default action while the config is read (it may block: a FIFO, a
     * name to resolve) and are blocked from daemon_run on. */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    if (sl_tls_process_init() < 0) {
        fprintf(stderr, "sluiced: OpenSSL could not be initialised\n");
        return 1;
    }
    int rc = parse_args(argc, argv, &path, &check_only);
    if (rc >= 0) {
        return rc;
    }
    struct daemon d = {.sigfd = -1};
    d.cfg = load_config(path);
    if (d.cfg == NULL) {
        return 1;
    }
    if (check_only) {
        char buf[4096];
        sl_config_summary(d.cfg, buf, sizeof(buf));
        printf("%s\n", buf);
        sl_config_free(d.cfg);
        return 0;
    }
    sl_log_init(d.cfg->daemon.log_level);
    signal(SIGPIPE, SIG_IGN);
    /* A file over RLIMIT_FSIZE must fail the write (EFBIG, retried like any
     * write error), not kill the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    evthread_use_pthreads();
    return daemon_run(&d);
}
