/*
 * writer — the one thread that drains the queues into the sinks.
 *
 * Life: sl_writer_new() (main; sinks already opened) → _start() → ...
 * → _stop() (after the producers have stopped: drain everything, flush,
 * fsync, exit; a disk queue's chunks are drained to its files, and what
 * its sinks have not sent stays there for the next start) → _join() → _free().  _reopen() asks it
 * to reopen every sink (SIGHUP).  _stop/_reopen may be called from any thread.
 */
#ifndef SLUICE_WRITER_H
#define SLUICE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sluice/queue.h"
#include "sluice/sink.h"

struct sl_writer;
struct sl_backlog;

/* Drains queues[0..nqueues) into sinks[0..nsinks) (opened), each sink
 * from the queue its ->queue points at, which must be one of queues (all
 * borrowed, outliving the writer; the arrays themselves are not kept).
 * backlogs (NULL, or one entry per queue, NULL for memory) are the queues'
 * backlogs opened by the caller (a disk queue's): the writer owns them from
 * this call on, also when it fails.  Registers itself as every queue's
 * consumer.  Returns NULL on failure. */
struct sl_writer *sl_writer_new(struct sl_queue *const *queues, struct sl_backlog *const *backlogs,
                                size_t nqueues, struct sl_sink *const *sinks, size_t nsinks);
int sl_writer_start(struct sl_writer *w);
/* force=false: drain every queue, flush, fsync, exit.  force=true: give up
 * on what cannot be written now (counted in sl_writer_lost). */
void sl_writer_stop(struct sl_writer *w, bool force);
void sl_writer_reopen(struct sl_writer *w);
/*
 * A config reload (src/daemon/main.c): the writer thread opens new_sink
 * (made, not opened; the same queue as old, neither acknowledging, or both
 * of one type with handover) between two writes and puts it in old's
 * place: old is flushed as at a stop (an acknowledging one hands what it
 * has in flight to new_sink: sink.h handover) and detached, and what old
 * had not sent is new_sink's to write (one reader position: nothing twice,
 * nothing skipped).
 * The caller (not the writer thread) waits at most timeout_ms.  Returns 0:
 * done, old is the caller's again (close and free it), new_sink the
 * writer's; -1: refused or new_sink cannot open (old stays, new_sink is
 * the caller's: close and free it); -2: the
 * writer did not answer in time (wedged: the request is withdrawn, nothing
 * changed).
 */
int sl_writer_replace_sink(struct sl_writer *w, struct sl_sink *old, struct sl_sink *new_sink,
                           uint64_t timeout_ms);
/*
 * A config reload adds new_sink and/or removes old (either may be NULL),
 * in one step of the writer thread:
 *   - new_sink (made, not opened; its queue one of the writer's) is opened
 *     there and drains its queue from the next chunk the queue's backlog
 *     takes (backlog.h add_reader_live: nothing it held before);
 *   - old gets no new chunk from then on (memory queue; a disk queue's
 *     reader reads on to the end), writes what it holds for at most
 *     drain_ms (its acknowledging peer may commit meanwhile), is flushed as
 *     at a stop and detached; what it still held is given up: *gave_bytes,
 *     *gave_events (UINT64_MAX: not known, a disk queue).
 * Both at once is how a sink that cannot be replaced in place (its type,
 * its queue, an acknowledging sink) changes: every chunk goes to exactly
 * one of the two, and new_sink, opened at once, is attached (a forwarding
 * sink connects) and writes only once old is gone: its reader collects
 * meanwhile, so the two never write at once (one sender id, one session;
 * one file, one writer) and the order of the output is kept.
 * Both at once on one queue whose backlog persists its readers by name (a
 * disk queue: backlog.h rewind) is a hand-over of old's reader instead:
 * new_sink is opened at once and gets no reader of its own; old sends
 * nothing new, waits for the commits of what it sent (an acknowledging
 * sink) for at most drain_ms, is flushed and detached; then the reader goes
 * back to its committed position and is new_sink's, which is attached and
 * writes from there (nothing committed is sent twice, nothing skipped);
 * *resent_bytes = what old had sent without its commit by then, which
 * new_sink sends again (UINT64_MAX: no hand-over); nothing is given up.
 * The caller (not the writer thread) waits at most timeout_ms (more than
 * drain_ms).  Returns 0: done (old, if any, is the caller's again: close
 * and free it; new_sink the writer's); -1: refused or new_sink cannot open
 * (nothing changed; new_sink is the caller's); -2: the writer did not
 * answer in time (wedged): new_sink, if added, and old stay the writer's
 * and must not be freed.
 */
int sl_writer_change_sinks(struct sl_writer *w, struct sl_sink *old, struct sl_sink *new_sink,
                           uint64_t drain_ms, uint64_t timeout_ms, uint64_t *gave_bytes,
                           uint64_t *gave_events, uint64_t *resent_bytes);
/*
 * A config reload adds queue q (new; no producer feeds it yet) with its
 * backlog bl (memory, or a disk queue's opened, locked and restored by the
 * caller) and the sinks that drain it (made, not opened; each ->queue is
 * q).  On the writer thread: q becomes one of the writer's queues, each
 * sink is opened and gets a reader as at start (a disk queue: the position
 * its name left in the state file), its first checkpoint and the state on
 * disk before it writes.  The caller waits at most timeout_ms.  Returns 0:
 * bl and the sinks are the writer's (the caller keeps q and frees it after
 * sl_writer_remove_queue or the writer); -1: nothing of it is in the
 * writer (q, bl and the sinks, maybe half-open, are the caller's to free);
 * -2: the writer did not answer in time (wedged: leave all of it alone).
 */
int sl_writer_add_queue(struct sl_writer *w, struct sl_queue *q, struct sl_backlog *bl,
                        struct sl_sink *const *sinks, size_t nsinks, uint64_t timeout_ms);
/*
 * A config reload removes queue q, whose producers have stopped (no source
 * feeds it any more), with every sink that drains it: the sinks write what
 * the queue and its backlog hold for at most drain_ms, then are flushed
 * as at a stop and detached, and q leaves the writer.  A memory queue's
 * sinks give up what they still held (*gave_bytes, *gave_events); a disk
 * queue's chunks go to its files and its sinks' positions stay in its state
 * (*kept_bytes: what they had not sent, left in the directory), and only
 * chunks its files could not take are given up.  The caller (not the
 * writer thread) waits at most timeout_ms (more than drain_ms).  Returns 0:
 * *bl is q's backlog, the caller's to free (a disk one saves the positions
 * then), then q and the sinks (close and free them); -1: refused (nothing
 * changed); -2: the writer did not answer in time (leave q and its sinks
 * alone).
 */
int sl_writer_remove_queue(struct sl_writer *w, struct sl_queue *q, uint64_t drain_ms,
                           uint64_t timeout_ms, struct sl_backlog **bl, uint64_t *gave_bytes,
                           uint64_t *gave_events, uint64_t *kept_bytes);
/* Runs fn(q's backlog, arg) on the writer thread, between two passes (a
 * reload changes a backlog setting in place).  Returns 0, -1 (q is not the
 * writer's) or -2 (no answer within timeout_ms: withdrawn, fn does not run). */
int sl_writer_call_backlog(struct sl_writer *w, struct sl_queue *q,
                           void (*fn)(struct sl_backlog *bl, void *arg), void *arg,
                           uint64_t timeout_ms);
/*
 * When the writer rests (no tick armed: writer.c THE TICK), runs its tick
 * on the writer thread (sinks check their outputs: a removed folder shows
 * in their health; the heartbeat is renewed) and waits for it at most
 * timeout_ms; /healthz and /metrics call it so that what they report of
 * a resting writer is current.  Returns 0 (ticked, or it was not resting:
 * it ticks by itself) or -2 (no answer in time: withdrawn; the heartbeat
 * ages, as a stuck writer's does).  Not the writer thread.
 */
int sl_writer_tick_resting(struct sl_writer *w, uint64_t timeout_ms);
void sl_writer_join(struct sl_writer *w);
/* Joins the writer unless deadline (CLOCK_REALTIME) passes first: then
 * returns -1 and the thread still runs (stop it with force and join). */
int sl_writer_join_until(struct sl_writer *w, const struct timespec *deadline);
void sl_writer_free(struct sl_writer *w);
/*
 * Installs fn to run on the writer thread at each tick (after the sinks'
 * own tick), so periodic work of the daemon (the systemd watchdog ping,
 * STATUS=) costs no wake-up of its own and stops when the writer's loop
 * stops.  The tick runs once a second while the writer works; fn returns
 * the ms until it next needs one regardless (0: once a second; a shorter
 * deadline is kept, at least 50 ms), or SL_SINK_TICK_NONE: nothing until the writer works again (it
 * then ticks before anything else).  fn may only read atomics and
 * immutable state.  Before sl_writer_start.
 */
void sl_writer_set_tick_hook(struct sl_writer *w, uint64_t (*fn)(void *arg, uint64_t now_ms),
                             void *arg);

/* CLOCK_MONOTONIC ms of the writer loop's last turn or tick (or of a pass
 * a producer ran in its place: writer.c, THE INLINE TURN): it turns at
 * least once a second while it works; while it rests it ticks when asked
 * (sl_writer_tick_resting).  /healthz uses it.  Any thread. */
uint64_t sl_writer_heartbeat_ms(const struct sl_writer *w);
/* Writer passes that a pushing thread ran in the writer thread's place
 * (writer.c, THE INLINE TURN), so far.  Any thread. */
uint64_t sl_writer_inline_passes(const struct sl_writer *w);
/* Bytes given up at a forced stop (after join). */
uint64_t sl_writer_lost(const struct sl_writer *w);

#endif
