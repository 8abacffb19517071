/*
 * backlog — what a queue holds for the sinks draining it, as the writer
 * sees it.  One interface for every queue kind (memory today; a disk queue
 * plugs in here), so the writer's code path is the same for all of them.
 *
 * The producers' side stays sl_queue (queue.h): producers push chunks, the
 * backlog takes them from there (append) and keeps them for its readers,
 * one reader per sink.  A reader has three positions in the queue's byte
 * stream, committed <= sent <= appended:
 *   append  takes chunks producers pushed; every reader sees them (unsent).
 *   peek    a reader's unsent bytes, as iovecs over whole chunks.
 *   sent    the reader's sink took n more bytes (its write reported them).
 *   commit  the reader's sink acknowledged n more bytes (sinks with
 *           ops->acks only: a reader that does not ack commits what it
 *           sends in the same step, at no extra cost).
 *   evict_oldest  when_full = drop_oldest: drop the oldest unit of the
 *           backlog (memory: a chunk; disk: a segment) that no reader is
 *           writing, for every reader at once, and say what was dropped.
 * Memory backlog: a chunk goes back to the queue's free pool (and may wake
 * paused producers) once every reader has committed it; until then it
 * counts against the queue's bound, so lagging commits fill the queue and
 * producers pause exactly as for a slow sink.  Disk backlog
 * (backlog_disk.c): a chunk is appended to the queue's segment files and
 * goes back to the pool at once; readers read their unsent bytes back from
 * the files and their positions advance on commit (persisted in the
 * queue's state file).  While it cannot append (disk full, max_size) it
 * sets `refusing` and leaves the chunks in the queue, so producers pause
 * as for a full queue; poll retries.
 *
 * Ownership: the backlog holds the chunks it took until they are committed
 * by every reader (or until free); iovecs from peek are borrowed until the
 * next sent, commit or append on that backlog.
 * Thread: the writer only (add_reader and free: main, before the writer
 * starts and after it has stopped; add_reader_live and remove_reader: the
 * writer).  The hot path is per write call (one
 * peek, one sent), never per event.
 */
#ifndef SLUICE_BACKLOG_H
#define SLUICE_BACKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sluice/config.h"
#include "sluice/queue.h"
#include "sluice/stats.h"

/* A reader's counts, kept by the backlog, read by the writer directly. */
struct sl_backlog_reader {
    size_t unsent;      /* bytes appended and not yet sent */
    size_t uncommitted; /* bytes sent and not yet committed (0 unless acks) */
    uint64_t oldest_ms; /* when the oldest unsent byte was appended (while unsent > 0) */
    bool acks;          /* commits come later, through commit */
    bool retired;       /* its sink is being removed (a config reload): a memory
                           backlog gives it no more chunks (append skips it);
                           set by the writer, then remove_reader */
};

struct sl_backlog;

#define SL_BACKLOG_BLOB_MAX 4096

struct sl_backlog_ops {
    const char *kind; /* "memory", "disk" */
    bool persistent;  /* what readers have not sent survives a stop (not lost) */
    /* peek's iovecs stay valid and unchanged until the reader commits their
     * bytes (memory: a chunk is held until every reader committed it), not
     * just until the next call (disk: they point into the reader's read
     * buffer, refilled by the next peek). */
    bool pinned;
    /* A new reader (one per sink, at set-up).  name (copied) identifies it
     * across restarts in a persistent backlog.  NULL on allocation failure. */
    struct sl_backlog_reader *(*add_reader)(struct sl_backlog *b, const char *name, bool acks);
    /* A reader added while the writer runs (a sink added by a config
     * reload; writer thread): it starts at the next chunk appended, never
     * at what the backlog already holds (memory: the next chunk taken from
     * the queue; disk: the queue's current end, whatever the state file
     * said at open).  NULL on allocation failure. */
    struct sl_backlog_reader *(*add_reader_live)(struct sl_backlog *b, const char *name, bool acks);
    /* Removes reader r (its sink was removed by a config reload; writer
     * thread) and gives up what it holds: *bytes = its unsent plus
     * uncommitted bytes, *events = the events in them (UINT64_MAX when the
     * backlog cannot tell without reading them: disk).  Memory: the chunks
     * only it still held go back to the queue, counted as durable (nothing
     * will ever commit them: a source waiting for them must not wait for
     * good).  Disk: its position leaves the state file, and the segments
     * only it held back are deleted by the next poll.  r is freed. */
    void (*remove_reader)(struct sl_backlog *b, struct sl_backlog_reader *r, uint64_t *bytes,
                          uint64_t *events);
    /* Takes up to max chunks pushed to the queue; each becomes unsent for
     * every reader (a backlog without readers gives them back at once).
     * Returns how many it took. */
    size_t (*append)(struct sl_backlog *b, size_t max, uint64_t now_ms);
    /* Fills iov (at most iovmax entries) with the reader's unsent bytes:
     * whole chunks (the first from where the last send stopped) up to
     * max_bytes, at least one chunk.  Returns the entries; *bytes = their
     * total. */
    int (*peek)(struct sl_backlog *b, struct sl_backlog_reader *r, struct iovec *iov, int iovmax,
                size_t max_bytes, size_t *bytes);
    /* Optional (a persistent backlog): true while the reader's send
     * position is in what the backlog held when it was opened (records an
     * earlier run wrote: the replay); peek then gives none of the records
     * appended since in the same call.  NULL: never (nothing is replayed). */
    bool (*replaying)(struct sl_backlog *b, struct sl_backlog_reader *r);
    /* The reader's sink took n (<= unsent) more bytes.  Every chunk this
     * completes is observed in latency (now_ns minus its first event's
     * receipt); returns the events those chunks carry. */
    uint64_t (*sent)(struct sl_backlog *b, struct sl_backlog_reader *r, size_t n, uint64_t now_ns,
                     struct sl_hist *latency);
    /* The reader's sink acknowledged n (<= uncommitted) more bytes. */
    void (*commit)(struct sl_backlog *b, struct sl_backlog_reader *r, size_t n);
    /* Optional (a persistent backlog, whose readers are known by name): a
     * new sink takes reader r over from the one that had it (a reload
     * changes a sink's type, or a sluice sink's sender id, on a disk queue:
     * sl_writer_change_sinks).  The send position goes back to the
     * committed position, which does not move: what the old sink sent and
     * did not have committed is unsent again, and r->acks becomes acks (the
     * new sink's).  Returns the bytes that go again (sent before, not
     * committed).  NULL: a sink changed on this backlog gets a reader of
     * its own (add_reader_live) while the old one drains (memory). */
    uint64_t (*rewind)(struct sl_backlog *b, struct sl_backlog_reader *r, bool acks);
    /* Background work due at now_ms (NULL: none): the disk backlog's
     * interval fsync, state file, segment deletion and retries while
     * refusing.  Returns ms until it is due again; 0: nothing pending. */
    uint64_t (*poll)(struct sl_backlog *b, uint64_t now_ms);
    /*
     * Overflow (the queue's when_full = drop_oldest): drops the oldest unit
     * the backlog holds that no reader is writing, from every reader that
     * holds it, and adds the events and bytes it carried to *events and
     * *bytes (bytes as they would have been written).  Returns false when
     * nothing can be dropped now.
     *
     * Never dropped: what a reader has sent and not had committed (an
     * acking sink's peer may still be reading it), and a reader's first
     * unit not fully sent (its sink may have sent part of it, or hold the
     * head of one of its lines, sink.h sl_sink_account): a reader's next
     * write must start where its last one stopped, so only whole units
     * after that point go, and whole units hold whole lines.  A reader's
     * unsent and oldest_ms stay true for what is left (oldest_ms may stay
     * older: a batch then goes out sooner, never later).  An evicted unit
     * does not advance the durable position (queue.h); the next commit of
     * a later one passes it (what was dropped is counted, not durable).
     *
     * Memory: the unit is a chunk, given back to the queue's free pool
     * (sl_queue_release, which wakes paused producers).  Disk: the unit is the oldest
     * segment no reader's read or commit position is in (a reader
     * positioned before it skips it when it gets there); the disk backlog may
     * also evict from its own append when max_size is reached under
     * drop_oldest.  NULL: the backlog cannot evict (the queue blocks).
     * Thread: the writer.
     */
    bool (*evict_oldest)(struct sl_backlog *b, uint64_t *events, uint64_t *bytes);
    /* Optional (a persistent backlog): the reader's sink's own bookkeeping
     * for its committed position (at most SL_BACKLOG_BLOB_MAX bytes),
     * persisted with that position, atomically.  The position persisted is
     * the start of the record the committed position is in: the sink's blob
     * must describe that record start (a replay starts there).  get: what
     * the last run left (NULL, *len 0: nothing), valid until the next
     * set_blob or free. */
    void (*set_blob)(struct sl_backlog *b, struct sl_backlog_reader *r, const void *blob,
                     size_t len);
    const void *(*get_blob)(struct sl_backlog *b, struct sl_backlog_reader *r, size_t *len);
    /* Optional (a persistent backlog): puts the readers' positions and
     * blobs on disk now, when anything changed since the last time.  The
     * writer calls it at set-up, after every sink's first checkpoint and
     * before any sink writes (sink.h restore).  Returns 0, or -1 (logged).
     * Thread: the main thread before the writer starts. */
    int (*save)(struct sl_backlog *b);
    /* Gives back every chunk the readers still hold (a forced stop) and
     * frees the backlog.  NULL is a no-op. */
    void (*free)(struct sl_backlog *b);
};

struct sl_backlog {
    const struct sl_backlog_ops *ops;
    struct sl_queue *queue; /* borrowed: the producers' side */
    bool refusing;          /* append takes no chunk now: the queue's waiting
                               chunks are no work for the writer until poll */
};

/* A backlog in memory over q (borrowed, outliving it).  NULL on allocation
 * failure.  Main thread, before the writer starts. */
struct sl_backlog *sl_backlog_memory_new(struct sl_queue *q);

struct sl_backlog_disk_config {
    const char *path;           /* the queue's directory (created if missing) */
    uint64_t max_size;          /* bytes of segment files at most */
    enum sl_queue_fsync fsync;
    uint64_t fsync_interval_ms; /* fsync = interval; also the state file's period */
    uint64_t segment_bytes;     /* 0: max_size / 16, within [4 chunks, 64 MiB] */
};

/*
 * Opens (or creates) the disk backlog of q in cfg->path: takes the
 * directory's lock, checks the filesystem can hold max_size, sets aside
 * unreadable or future segments, cuts a torn tail and loads the state file
 * (docs/protocol.md, "Disk queue").  Reads no record payload except the
 * last segment's last record.  NULL with a reason in why on failure.
 * Main thread, before the writer starts.
 */
struct sl_backlog *sl_backlog_disk_open(struct sl_queue *q, const struct sl_backlog_disk_config *cfg,
                                        char *why, size_t whylen);
/* A config reload changes a disk queue's fsync_interval in place (ms > 0):
 * the next sync and state write are due by the new interval.  Returns 0, or
 * -1 when b is not a disk backlog.  Thread: the writer (its owner). */
int sl_backlog_disk_set_fsync_interval(struct sl_backlog *b, uint64_t ms);
/* A config reload changes a disk queue's max_size in place: the bound of
 * its segment files moves, their size stays (fixed at open).  Checked as
 * at open (at least two segments; raised: the filesystem can hold it).
 * Lowered below what it holds: appends wait until sinks commit and old
 * segments go, as when full; nothing is deleted.  Returns 0, or -1 with
 * the reason in why (nothing changed).  Thread: the writer (its owner). */
int sl_backlog_disk_set_max_size(struct sl_backlog *b, uint64_t bytes, char *why, size_t whylen);

#endif
