/*
 * stream — shared pieces of the stream sources (stream.h).
 */
#include "source/stream.h"

#include <event2/event.h>

#include "sluice/producer.h"
#include "sluice/stats.h"
#include "util/tls.h"

void
sl_stream_pause(struct sl_source *s, struct sl_stream_pause *p, struct event *ev)
{
    if (!p->paused) {
        p->paused = true;
        p->paused_at_ms = sl_now_ms();
        event_del(ev);
        sl_counter_add(&s->stats->pauses, 1);
    }
    sl_lane_wait(s, &p->wait);
}

void
sl_stream_unpause(struct sl_source *s, struct sl_stream_pause *p)
{
    sl_lane_unwait(&p->wait);
    p->paused = false;
    sl_counter_add(&s->stats->resumes, 1);
    sl_counter_add(&s->stats->paused_ns, (sl_now_ms() - p->paused_at_ms) * 1000000u);
}

void
sl_stream_emit_begin(struct sl_stream_emit *x, struct sl_source *s,
                     const struct sl_frame_state *fs, const struct sl_peer *peer)
{
    x->src = s;
    x->tally = (struct sl_tally){0};
    x->over0 = fs->oversize;
    x->ferr0 = fs->errors;
    x->flen = sl_lane_fields(s, peer, x->fields);
}

int
sl_stream_line_cb(void *arg, const char *line, size_t len)
{
    struct sl_stream_emit *x = arg;
    enum sl_emit e = sl_lane_emit(x->src, line, len, x->fields, x->flen, SL_ACQUIRE_TCP, &x->tally);
    return e == SL_EMIT_NO_SPACE;
}

void
sl_stream_emit_end(struct sl_stream_emit *x, const struct sl_frame_state *fs, const char *peer)
{
    struct sl_source *s = x->src;
    uint64_t over = fs->oversize - x->over0;
    x->tally.framing_errors = fs->errors - x->ferr0;
    x->tally.framing_error = fs->error;
    sl_counter_add(&s->stats->events_in, x->tally.events);
    sl_counter_add(&s->stats->framing_errors, x->tally.framing_errors);
    sl_counter_add(&s->stats->invalid, x->tally.invalid);
    sl_counter_add(&s->stats->unparsed, x->tally.unparsed);
    sl_counter_add(&s->stats->oversize, x->tally.too_large + over);
    sl_lane_report(s, peer, &x->tally, over);
}

bool
sl_stream_admit(struct sl_source *s, unsigned max)
{
    unsigned n = atomic_fetch_add_explicit(&s->shared->conns, 1, memory_order_relaxed);
    if (n < max) {
        return true;
    }
    atomic_fetch_sub_explicit(&s->shared->conns, 1, memory_order_relaxed);
    sl_counter_add(&s->stats->conn_rejected, 1);
    uint64_t sup = 0;
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        log_warnx("source \"%s\": max_connections (%u) reached, refusing connections",
                  s->cfg->name, max);
    }
    return false;
}

void
sl_stream_leave(struct sl_source *s)
{
    atomic_fetch_sub_explicit(&s->shared->conns, 1, memory_order_relaxed);
}

int
sl_stream_arm(struct event *ev, uint64_t idle_ms)
{
    struct timeval tv = {.tv_sec = (time_t)(idle_ms / 1000),
                         .tv_usec = (suseconds_t)(idle_ms % 1000) * 1000};
    return event_add(ev, idle_ms > 0 ? &tv : NULL);
}

void
sl_stream_tls_refused(struct sl_source *s, const char *peer, int r, const char *detail)
{
    uint64_t sup = 0;
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        log_warnx("source \"%s\" peer %s: TLS refused (%s)%s%s", s->cfg->name, peer,
                  sl_tls_reason_names[r], detail[0] != '\0' ? ": " : "", detail);
    }
}
