/*
 * rotate — the housekeeper of one file sink's rotated files: compression
 * and retention, in a thread of its own, so neither ever delays a write.
 *
 * The writer only renames (sink_file.c): the active file becomes
 * "<path>.<stamp>" (pathtmpl.h) and the writer calls sl_rotate_kick().
 * Each pass of the housekeeper then looks at what is on disk (a glob of the
 * path template), so a pass after a crash is the same code as any other:
 *
 *   - "<f>.gz.tmp" / "<f>.zst.tmp" is a compression that did not finish:
 *     deleted, and the job is done again from "<f>", which is intact;
 *   - "<f>" next to "<f>.gz" / "<f>.zst": the compressed file was renamed
 *     into place only after it was fsync'ed, so it is complete and "<f>"
 *     is deleted (the job is finished);
 *   - retention: rotated files beyond max_files (newest kept) or older than
 *     max_age (by modification time) are deleted, in all their forms;
 *   - compression: every remaining "<f>" is compressed to "<f>.<ext>.tmp",
 *     fsync'ed, renamed to "<f>.<ext>", the directory fsync'ed, and only
 *     then "<f>" is deleted.
 *
 * Only names of that exact shape are ever touched, never the active file
 * or anything else; a file with more than one link is a rotation still in
 * progress (sink_file.c links before it renames) and is left alone.
 *
 * Thread: the housekeeper's own; kick and sync from any thread.  One mutex
 * and two condition variables guard only the kick/done counters (a leaf
 * lock: nothing else is locked while it is held).
 */
#ifndef SLUICE_ROTATE_H
#define SLUICE_ROTATE_H

#include "sluice/config.h"
#include "sluice/sink.h"
#include "sluice/stats.h"

struct sl_rotate;

/*
 * Creates the housekeeper for a file sink (cfg and stats borrowed for its
 * life; clock NULL = CLOCK_REALTIME).  Does not start it.  NULL on failure.
 */
struct sl_rotate *sl_rotate_new(const struct sl_sink_config *cfg, sl_clock_fn clock,
                                struct sl_sink_stats *stats);

/* Starts the thread (signals blocked in it); it makes one pass at once.  0 / -1. */
int sl_rotate_start(struct sl_rotate *r);

/* Asks for a pass soon.  Any thread; never waits for a pass. */
void sl_rotate_kick(struct sl_rotate *r);

/*
 * Kicks and waits until a pass that started after the call has finished,
 * at most timeout_ms; without a thread, runs the pass itself.  0, or -1 on
 * timeout.  For tests and shutdown-free checks.
 */
int sl_rotate_sync(struct sl_rotate *r, int timeout_ms);

/* fsyncs the directory holding path, so a file created or renamed there
 * survives a power loss.  Best effort.  Thread: any. */
void sl_fsync_dir(const char *path);

/* Stops the thread (a compression in progress is abandoned: its .tmp is
 * removed, the rotated file stays for the next start) and frees.  NULL ok. */
void sl_rotate_free(struct sl_rotate *r);

#endif
