/*
 * stream — shared pieces of the stream sources (stream.h).
 */
#include "source/stream.h"

#include <event2/event.h>

#include "codec/validate.h"
#include "daemon/registry.h"
#include "sluice/producer.h"
#include "codec/encode.h"
#include "sluice/stats.h"
#include "util/allow.h"
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
    x->fs = fs;
    x->buf_end = NULL;
    x->run = NULL;
    x->run_len = 0;
    x->run_events = 0;
    x->run_room = 0;
    x->chunk_max = 0;
    x->direct = false;
    x->cut = false;
}

bool
sl_stream_verbatim(const struct sl_source *s)
{
    return s->codec == &sl_codec_json && s->cfg->add_fields == 0;
}

void
sl_stream_emit_buffer(struct sl_stream_emit *x, const char *buf, size_t len)
{
    /* Only where the output line is the input line and its '\n': the json
     * codec (which writes a valid line as it is) without add_fields. */
    if (x->src->codec == &sl_codec_json && x->flen == 0) {
        x->buf_end = buf + len;
        x->chunk_max = sl_queue_chunk_bytes(sl_lane_queue(x->src));
    }
}

bool
sl_stream_emit_direct(struct sl_stream_emit *x, const char *buf, size_t len)
{
    sl_stream_emit_buffer(x, buf, len);
    x->direct = x->buf_end != NULL && x->fs->mode == SL_FRAMING_LF;
    return x->direct;
}

/* Copies the pending run into the chunk (one memcpy for all its lines). */
static void
stream_run_flush(struct sl_stream_emit *x)
{
    if (x->run_len > 0) {
        sl_lane_append(x->src, x->run, x->run_len, x->run_events, &x->tally);
        x->run_len = 0;
        x->run_events = 0;
    }
}

/*
 * THE VERBATIM-RUN FAST PATH.  A json line without add_fields is written
 * as it came, followed by '\n'; under newline framing without a '\r' that
 * is exactly the line and the '\n' after it in the read buffer.  So a valid
 * line (validated in place, as sl_encode_json would) that starts where the
 * previous one's '\n' ended only extends the pending run, and the run is
 * copied into the chunk with one memcpy when it ends: at a line that is not
 * verbatim or not adjacent, when the chunk would overflow, and at the end
 * of the read (sl_stream_emit_end).  Anything else (invalid, too large, no
 * chunk yet, no room) takes the ordinary path, after the run is flushed,
 * so the order, the counts and the backpressure are the same.  What it
 * saves is the per-line call chain (sl_lane_emit, sl_chunk_encode, the
 * codec's encode) and a memcpy per line.  Measured (bench/results/
 * analysis.md, 2026-12-06, callgrind): ~135 fewer instructions per
 * 230-byte event (of ~2,050 in the producer), ~100 per 64-byte event (of
 * ~920); in wall time within the noise of the shared machine.  When the
 * bytes were read straight into the lane's chunk (x->direct; source_tcp.c,
 * THE DIRECT READ) the flush copies nothing, and the first line that is
 * not taken here ends the framing (x->cut) instead of going the ordinary
 * path: its encoding would be written over bytes not yet framed.
 */
static bool
stream_run_add(struct sl_stream_emit *x, const char *line, size_t len)
{
    if (line + len >= x->buf_end || line[len] != '\n' || x->fs->mode != SL_FRAMING_LF) {
        return false;
    }
    if (x->run_len > 0 && line != x->run + x->run_len) {
        stream_run_flush(x);
    }
    /* Room as sl_encode_json() wants it, and under json_encode()'s size
     * limit (len + 2 <= chunk), so the ordinary path would accept it too.
     * The lane's room is asked once per run, not per line: nothing but the
     * run's flush writes into the chunk while the run grows.  The three
     * calls per line into producer.c and queue.c this saves were ~1.5 % of
     * the daemon's samples at 64-byte events, 19 of the producer's ~816
     * instructions per event (bench/results/analysis.md, session 8). */
    size_t room = x->run_len > 0 ? x->run_room : sl_lane_room(x->src);
    if (x->run_len + len + 1 > room || len + 2 > x->chunk_max) {
        return false;
    }
    /* A short line comes with its quote index from the framing's pass
     * (framing.c, THE LINE INDEX). */
    const struct sl_frame_state *fs = x->fs;
    enum sl_validate_result v =
        fs->index_line == line
            ? sl_validate_object_indexed(line, len, NULL, fs->index_quotes, fs->index_bad)
            : sl_validate_object(line, len, NULL);
    if (v != SL_VALID) {
        return false;
    }
    if (x->run_len == 0) {
        x->run = line;
        x->run_room = room;
    }
    x->run_len += len + 1;
    x->run_events++;
    return true;
}

int
sl_stream_line_cb(void *arg, const char *line, size_t len)
{
    struct sl_stream_emit *x = arg;
    if (x->buf_end != NULL) {
        if (stream_run_add(x, line, len)) {
            return 0;
        }
        stream_run_flush(x);
        if (x->direct) {
            x->cut = true;
            return 1;
        }
    }
    enum sl_emit e = sl_lane_emit(x->src, line, len, x->fields, x->flen, SL_ACQUIRE_TCP, &x->tally);
    return e == SL_EMIT_NO_SPACE;
}

void
sl_stream_emit_end(struct sl_stream_emit *x, const struct sl_frame_state *fs, const char *peer)
{
    struct sl_source *s = x->src;
    stream_run_flush(x);
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
sl_stream_allowed(struct sl_source *s, const struct sockaddr *sa)
{
    uint64_t sup = 0;
    if (sl_allow_match(&s->cfg->allow, sa)) {
        return true;
    }
    sl_counter_add(&s->stats->refused_addr, 1);
    if (sl_ratelimit_ok(&s->warn_rl, sl_now_ms(), &sup)) {
        char who[64];
        sl_encode_sockaddr(sa, who, sizeof(who));
        log_warnx("source \"%s\": refused a connection from %s (not in allow)", s->cfg->name, who);
    }
    return false;
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
