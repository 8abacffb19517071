/*
 * sink — the interface every output implements (file, tcp forward).  The
 * writer owns batching, retries and chunk hand-back; a sink only moves
 * bytes and applies its durability policy.
 *
 * Results of write: SL_SINK_OK (progress; *written may still be short of
 * the total: the writer calls again from there), SL_SINK_RETRY (a failure:
 * the writer keeps the bytes and retries with backoff), SL_SINK_WAIT
 * (nothing more can be written now and that is no failure, e.g. a full
 * socket buffer or a reconnection in progress: the writer keeps the bytes
 * and calls again only after the sink's wake callback), SL_SINK_YIELD
 * (only while sl_sink_inline() is true, i.e. the writer's pass runs on a
 * producer's thread: the write needs something that must not happen there,
 * such as opening, reopening or rotating a file; nothing was written and
 * the writer thread calls again soon).  *written may be
 * non-zero with any result: the writer always consumes it first.  There is
 * no "error, give up" result: nothing is dropped because a sink fails, so
 * a lasting failure (a refused login, a missing folder) is a RETRY that
 * the sink's health names; set-up errors come from open and attach (-1).
 *
 * Whole lines: the writer hands over whole chunks, hence whole lines.  A
 * sink reports as *written only bytes of whole lines; the head of a line
 * the kernel took only partly is remembered by the sink (see
 * sl_sink_account) and skipped on the next call, which starts again at
 * that line.  So a short write continues from the exact byte where it
 * stopped on the same file or connection, and a sink that must switch to
 * another file or connection in the middle of a line sends that line
 * whole there.
 *
 * Sent is not committed.  What write reports as *written is *sent*.  A
 * sink whose ops->acks is false (file, tcp) is done with those bytes then:
 * the writer gives the chunks back at once.  A sink that acknowledges
 * (ops->acks = true: forwarding with acks, NATS) later reports, in order,
 * how many of the sent bytes its peer has *committed*, through the commit
 * callback it got at attach; the writer releases a chunk only when every
 * sink holding it has committed it, so lagging commits fill the queue and
 * pause the producers like a slow sink does.  A forced stop counts sent but
 * uncommitted bytes as lost; a graceful one waits for the commits.
 *
 * Thread: the writer thread only, except open and attach (main, before
 * the threads start, so errors are fatal with a clear message), detach and
 * close (main, after the writer has stopped), sl_sink_health (any), and
 * the wake and commit callbacks (any thread: a client library may call
 * them from its own).
 */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sluice/clock.h"
#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/stats.h"

enum sl_sink_result { SL_SINK_OK, SL_SINK_RETRY, SL_SINK_WAIT, SL_SINK_YIELD };

/* True while the calling thread runs the writer's pass in the writer
 * thread's place (THE INLINE TURN, writer.c): a sink's write must then
 * only write, never wait on anything but the page cache (may_inline). */
bool sl_sink_inline(void);

/* What a sink's tick returns when it needs no tick until it writes again. */
#define SL_SINK_TICK_NONE UINT64_MAX

/* The most iovecs the writer passes to one write (Linux IOV_MAX). */
#define SL_SINK_IOV_MAX 1024

struct sl_sink;
struct event_base;
struct sl_queue;

/*
 * Asks the writer to call the sink's write again soon (after SL_SINK_WAIT).
 * Any thread, never blocks: on the writer thread it costs an event_active,
 * from another thread an atomic store plus an eventfd write when the
 * writer sleeps (wake.h).  Call it on a transition, not per event.
 */
typedef void (*sl_sink_wake_fn)(void *arg);

/*
 * An acknowledging sink's peer has committed n more bytes of what write
 * reported as sent, in stream order (n summed over all calls never exceeds
 * the bytes sent).  Any thread, never blocks; also wakes the writer, which
 * releases the chunks on its own thread.
 */
typedef void (*sl_sink_commit_fn)(void *arg, size_t n);

/* What the writer gives a sink at attach; arg goes with both callbacks. */
struct sl_sink_link {
    struct event_base *base; /* the writer's: borrowed until detach; writer thread only */
    sl_sink_wake_fn wake;
    sl_sink_commit_fn commit; /* sinks with ops->acks; NULL for the others */
    void *arg;
    /* The iovecs write gets stay valid and unchanged until the sink has
     * committed their bytes (its queue's backlog pins sent chunks: backlog.h
     * pinned), so an acknowledging sink may keep references for a resend
     * instead of copies.  False: they are borrowed for the write call only. */
    bool pinned;
};

struct sl_sink_ops {
    const char *type;
    /* Commits come later through link->commit (see above); false: sent is
     * committed. */
    bool acks;
    int (*open)(struct sl_sink *s);
    /*
     * Optional.  Gives the sink the writer's event_base (borrowed until
     * detach) so it can watch its own descriptors and timers; the sink
     * calls link->wake(link->arg) when it can go on after answering
     * SL_SINK_WAIT, and an acknowledging sink link->commit(link->arg, n).
     * link itself is borrowed for the call only.  0 or -1 (set-up error).
     * An acknowledging sink must have attach.
     */
    int (*attach)(struct sl_sink *s, const struct sl_sink_link *link);
    /* Optional: frees what attach made, before the event_base is freed;
     * after it returns the sink calls neither wake nor commit again (a
     * sink with threads of its own stops them here). */
    void (*detach)(struct sl_sink *s);
    enum sl_sink_result (*write)(struct sl_sink *s, const struct iovec *iov, int iovcnt,
                                 size_t *written);
    /*
     * Optional: true when, with s's config and its output as it is now,
     * write, flush and tick may run on a producer thread that holds the
     * writer's turn (writer.c, THE INLINE TURN) instead of the writer
     * thread: they touch no event_base and no thread-local state and wait
     * on nothing but the page cache (no fsync, no FIFO, no network file
     * system).  Asked again before each inline pass; a write that would
     * change the output (open, rotate) answers SL_SINK_YIELD there.
     * NULL: never.  Only a sink without attach and acks is asked.
     */
    bool (*may_inline)(const struct sl_sink *s);
    /* After each completed batch; final = the daemon is stopping. */
    enum sl_sink_result (*flush)(struct sl_sink *s, bool final);
    /* SIGHUP: reopen outputs (logrotate "create" style). */
    void (*reopen)(struct sl_sink *s);
    /*
     * The writer's tick (writer.c, THE TICK): renamed or deleted files, time
     * rotation, interval fsync, a failed open retried.  Called about once a
     * second while the writer works and once more before the first write
     * after it rested.  Returns the ms until the sink next needs a tick
     * with nothing written meanwhile (0: once a second; a shorter deadline
     * is kept, at least 50 ms), or SL_SINK_TICK_NONE: nothing is pending until the sink is
     * written to again (it then gets a tick before that write).
     */
    uint64_t (*tick)(struct sl_sink *s, uint64_t now_ms);
    void (*close)(struct sl_sink *s);
    /*
     * Optional, for a queue that persists positions (a disk queue): the
     * sink's own bookkeeping that must survive a crash together with its
     * committed position (a sluice sink: the batch number at that
     * position).  checkpoint writes it for the position everything
     * committed so far ends at, as the queue persists it (the start of the
     * record that position is in; backlog.h set_blob), into buf (cap =
     * SL_BACKLOG_BLOB_MAX); returns its length, 0 for nothing.  Writer
     * thread, after the writer applied every commit the sink made.
     * restore gives what the last run's checkpoint left, before the first
     * write, at set-up (blob NULL, len 0: the queue's state knows none, or
     * the sink's bookkeeping starts here); the writer then takes a
     * checkpoint and the queue puts it on disk before the sink writes
     * anything, so a crash at any later moment finds one (a file sink: the
     * file's length where this run starts).
     */
    size_t (*checkpoint)(struct sl_sink *s, uint8_t *buf, size_t cap);
    void (*restore)(struct sl_sink *s, const uint8_t *blob, size_t len);
    /* Optional: the writer calls it once, before the first write of data
     * the queue took after start (at the first write when the queue
     * replays nothing: backlog.h replaying); every write before it gave
     * data an earlier run had queued.  Writer thread. */
    void (*replayed)(struct sl_sink *s);
    /* Optional: what a health reason names for the failure's target index
     * (sl_sink_health_fail): the file's path, the target's address.  A
     * static or config-owned string; NULL or absent: "?".  Any thread. */
    const char *(*object)(const struct sl_sink *s, int target);
    /* Optional: the sink's TLS client context (util/tls.h) when tls = on,
     * else NULL, for its counters in /metrics.  Any thread. */
    struct sl_tls *(*tls)(const struct sl_sink *s);
    /*
     * Optional, for an acknowledging sink (a config reload changes it): a
     * sink of this type whose config changed from `from` to `to` can be
     * replaced in place, its pending data handed over (handover below).
     * False (or absent): it is succeeded by a new one that drains nothing
     * of the old one's (the sluice sink: when the sender id changes, since
     * a resend under another id would defeat the receiver's duplicate
     * filter).  Pure; main thread.
     */
    bool (*handover_ok)(const struct sl_sink_config *from, const struct sl_sink_config *to);
    /* Optional, with handover_ok: why it says false, for the reload's
     * answer (a static string), NULL when it says true.  Pure; main
     * thread. */
    const char *(*handover_refusal)(const struct sl_sink_config *from,
                                    const struct sl_sink_config *to);
    /*
     * Optional, with handover_ok: moves what `from` sent and has not had
     * committed (its resend state: batches in flight, their numbering) into
     * `to`, a sink of the same type opened (not attached) to take its place
     * on the same backlog reader.  `from`'s connection is closed first (its
     * peer commits nothing more of it; a commit it still held back is
     * made); after the call `from` holds nothing and only detach and close
     * remain.  `to` resends what it got, in order and as it was numbered,
     * once it is attached and connected, and commits it through its own
     * link (the same writer state: its commits continue `from`'s).
     * A type may instead move `from`'s live state into `to` (from->priv
     * NULL after the call) to wait there for the peer's commits of what is
     * in flight before `to` resends the rest (the sluice sink); undone by
     * handover(to, from) when `to` cannot attach.
     * Writer thread, between two writes.
     */
    void (*handover)(struct sl_sink *from, struct sl_sink *to);
    /*
     * With handover: it also works on a disk queue (the reader and its
     * position in the queue's state stay under the sink's name; what is in
     * flight is copied, not referenced; the numbering the sink persists in
     * its checkpoint is handed over too).  False: a changed sink of this
     * type on a disk queue is succeeded by a new one that takes its reader
     * over once the old one's acknowledgements are in or its drain time is
     * up, and sends again what is still unacknowledged then
     * (sl_writer_change_sinks).
     */
    bool handover_disk;
};

/* What a sink was doing when it failed (for the health reason). */
struct sl_tls;

enum sl_sink_op {
    SL_SINK_OP_NONE,
    SL_SINK_OP_OPEN,            /* open or create the file */
    SL_SINK_OP_WRITE,           /* write to the file */
    SL_SINK_OP_FSYNC,           /* fdatasync the file */
    SL_SINK_OP_CONNECT,         /* connect to a target: err says why */
    SL_SINK_OP_CONNECT_TIMEOUT, /* no answer within connect_timeout */
    SL_SINK_OP_SEND,            /* send to a target: err says why */
    SL_SINK_OP_WRITE_TIMEOUT,   /* the target acknowledged nothing for write_timeout */
    SL_SINK_OP_PEER_CLOSED,     /* the target closed the connection */
    SL_SINK_OP_TLS,             /* the TLS handshake with a target failed */
    SL_SINK_OP_REFUSED, /* the peer refused the data: the object says how ("stream X full") */
};

/*
 * Health, written by the writer thread on transitions only and read by any
 * thread (a seqlock of atomics, so a reader never sees a torn state).
 * Embedded in struct sl_sink; a zeroed one means "ok since the epoch".
 */
struct sl_sink_health_state {
    atomic_uint seq; /* odd while the writer updates */
    atomic_bool failing;
    atomic_int op;     /* enum sl_sink_op of the failure */
    atomic_int err;    /* errno of the failure, 0 if none applies */
    atomic_int target; /* tcp: index into cfg->targets of the failure, else -1 */
    atomic_int_least64_t since_ms;
    atomic_uint_least64_t failures;
    struct sl_ratelimit rl; /* writer only: the "failing" log line */
};

struct sl_sink {
    const struct sl_sink_ops *ops;
    const struct sl_sink_config *cfg; /* borrowed */
    struct sl_sink_stats *stats;      /* borrowed, written by the writer */
    struct sl_queue *queue;           /* borrowed: the queue it drains (cfg->queue resolved) */
    sl_clock_fn clock;                /* NULL: CLOCK_REALTIME; tests set a fake one */
    struct sl_sink_health_state health;
    void *priv; /* the sink type's state, owned */
};

/* sl_clock_now(s->clock). */
int64_t sl_sink_now(const struct sl_sink *s);

/*
 * File sinks: asks the housekeeping thread (rotate.h) for a pass and waits
 * until one that started after the call has finished, at most timeout_ms.
 * 0 (also when the sink keeps no rotated files), or -1 on timeout.  For
 * tests.  Thread: the one that owns the sink.
 */
int sl_sink_file_housekeep(struct sl_sink *s, int timeout_ms);

/* ---- health ----------------------------------------------------------------------- */

/* A consistent copy of a sink's health, for /healthz and the log. */
struct sl_sink_health {
    bool ok;
    int64_t since_ms;  /* CLOCK_REALTIME ms when the current state began (0: since start) */
    uint64_t failures; /* transitions from ok to failing so far */
    enum sl_sink_op op;
    int err;
    char reason[320]; /* "" when ok; else e.g. "write /var/log/x: No space left on device" */
};

/* Fills *out.  Thread: any. */
void sl_sink_health(const struct sl_sink *s, struct sl_sink_health *out);

/*
 * Marks the sink failing (op, err, target index or -1) or ok.  On a
 * transition the state's time is set, stats->failing_since_ms/last_errno
 * are kept in step, and one line is logged (the failing line at most once
 * every 10 s per sink, stating that the events are held and retried).
 * Thread: the writer (and main before it starts).
 */
void sl_sink_health_fail(struct sl_sink *s, enum sl_sink_op op, int err, int target);
void sl_sink_health_ok(struct sl_sink *s);

/*
 * The writer's side of the same counters: after a write that answered
 * RETRY (err = its errno, EIO when 0) stats->last_errno is set and
 * stats->failing_since_ms, if 0, becomes now by the sink's clock; after a
 * batch fully written failing_since_ms is 0 again, unless the health state
 * is failing (an acknowledging sink whose peer does not acknowledge what it
 * takes: only sl_sink_health_ok ends that).  These four functions
 * are the only writers of the two fields, all on one clock (sl_sink_now).
 * Thread: the writer.
 */
void sl_sink_note_failure(struct sl_sink *s, int err);
void sl_sink_note_success(struct sl_sink *s);

/* ---- whole lines in iovecs (for sink implementations) ----------------------------- */

/* Bytes in iov. */
size_t sl_iov_total(const struct iovec *iov, int iovcnt);

/* Fills out (at most outmax entries) with the bytes [off, off + len) of iov
 * (borrowed pointers into it).  Returns the number of entries. */
int sl_iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len, struct iovec *out,
                 int outmax);

/* The offset just past the first '\n' at or after off, or the total when
 * there is none. */
size_t sl_iov_line_end(const struct iovec *iov, int iovcnt, size_t off);

/* The largest offset e with from < e <= upto that follows a '\n', or from
 * when there is none. */
size_t sl_iov_last_line_end(const struct iovec *iov, int iovcnt, size_t from, size_t upto);

/*
 * After a write that left the kernel holding the bytes [0, end) of iov
 * (total bytes in all), returns the bytes of whole lines among them, to be
 * reported as *written, and sets *partial to the head of a torn line after
 * them (0 when end == total: everything went).
 */
size_t sl_sink_account(const struct iovec *iov, int iovcnt, size_t total, size_t end,
                       size_t *partial);

#endif
