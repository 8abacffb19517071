/*
 * backlog_disk — the disk backlog (backlog.h): a queue's chunks appended to
 * segment files, read back by each reader (sink) from the files.
 *
 * DESIGN
 * Directory: NNNNNNNNNNNNNNNN.seg (16 hex digits, the segment id), `state`
 * (each reader's committed position, written to state.tmp, synced, renamed,
 * dir synced), `lock` (flock: one process per directory).  Formats:
 * segment.h and docs/protocol.md.
 *
 * Addresses: every byte of every segment has a global address; segment i
 * covers [base_i, base_i + size_i) and base_{i+1} = base_i + size_i, also
 * across a missing (deleted, set-aside) segment, so a position is one
 * uint64_t and a reader's unsent count is `end - position`.  Bases are
 * recomputed from file sizes at start (no record is read); the state file
 * stores (segment id, offset), which stay valid.
 *
 * Append (writer): pops chunks (a group of about APPEND_GROUP_BYTES,
 * so the sinks read it back from the CPU's cache; up to PEND_MAX with
 * fsync = batch, one sync per group), writes header + payload of
 * each with one pwritev per segment, rolls to a new segment before one
 * would pass segment_bytes, and gives each chunk back to the pool at once:
 * memory stays bounded by the queue's capacity whatever the backlog.  A
 * write that fails (ENOSPC, EDQUOT, EIO) is truncated away, its chunks are
 * kept (they count against the queue, so producers pause) and the backlog
 * refuses new ones until poll retries (every RETRY_MS); going over
 * max_size refuses the same way until sinks commit and old segments go.
 *
 * Read (per reader): peek preads from the reader's send position into its
 * buffer (at least one whole record; page cache makes this cheap), checks
 * each record's crcs once (lazily: nothing is checked at start beyond the
 * last record), and returns iovecs over the payloads.  A damaged record is
 * skipped to the next record whose header and payload check (resync on the
 * magic); a span of lsns not seen (a missing segment, skipped records) is
 * counted as lost.  Positions: send (saddr + soff) moves on sent; commit
 * (caddr, a record start, + coff) on commit, or with send for readers
 * without acks; only committed positions are persisted, at record starts,
 * so a record partly committed at a crash is delivered again (duplicates,
 * never loss).
 *
 * Durability: fsync = batch syncs each append before readers see it; =
 * interval hands an fdatasync of the segment being written to a sync
 * thread every fsync_interval, and as soon as a quarter segment is
 * unsynced (readers see records once written; the writer never waits for
 * the disk flush, poll collects its result); a rolled segment is synced at
 * the roll (the early syncs leave that one little to write); = none never
 * syncs.  The queue's durable seq (queue.h) follows.
 * The state file is written from poll every fsync_interval while positions
 * moved; segments every reader has committed past are deleted only after
 * a state file saying so is on disk, so every crash leaves a usable state.
 * With fsync = interval the sync thread writes it and then deletes those
 * segments (disk_state_post: the writer hands over the content and goes
 * on; the last close of a deleted segment, which waits for the device with
 * the `discard` mount option, is there too); set-up and stop wait for it.
 *
 * A reader whose sink a reload adds starts at the end (add_reader_live); one
 * whose sink it removes drains until it has caught up with the end (or its
 * deadline), then remove_reader drops its position.
 *
 * Thread: the writer; open, add_reader and free on the main thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue/segment.h"
#include "sluice/backlog.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "util/crashpoint.h"

#define PEND_MAX 64
#define RETRY_MS 1000
#define SEG_MAX_BYTES (64ull * 1024 * 1024)
#define READ_BUF_MIN (1024 * 1024)
#define TAIL_CHECK_MAX 64
#define SYNC_CHECK_MS 5 /* while a background sync is out: how often poll looks */
#define EARLY_SYNC_MIN (4u << 20) /* below: no early sync (disk_sync_early) */

/* An append's group: at least this many bytes (disk_append). */
#define APPEND_GROUP_BYTES (256u << 10)

/* The highest tag seq per key (sl_chunk.tag) in a set of records. */
struct dtag {
    uint16_t len;
    uint64_t seq;
    uint8_t key[SL_REC_TAG_MAX];
};

struct dseg {
    struct dtag *tags; /* of its records: folded into the retired tags when it goes */
    size_t ntags;
    uint64_t id;
    uint64_t first_lsn;
    uint64_t base; /* global address of byte 0 */
    uint64_t size; /* bytes in the file (the last grows) */
    int fd;
};

/* A segment deleted from the list, its file to go once a state file
 * saying so is on disk. */
struct ddel {
    uint64_t id;
    int fd;
    uint64_t size; /* its bytes, counted in dsyncer.del_bytes until the file goes */
};

struct dspan {
    uint64_t addr; /* a record start */
    uint32_t len;  /* its payload bytes */
};

struct dreader {
    struct sl_backlog_reader pub;
    char *name;
    uint64_t saddr, soff; /* send position: record start + payload bytes sent */
    uint16_t shlen;       /* soff > 0: header bytes of the record at saddr */
    uint64_t caddr, coff; /* committed position (acks: spans[head] starts at caddr) */
    uint64_t next_lsn;    /* lsn expected at saddr; 0 = unknown */
    uint8_t *buf;
    size_t bufcap;
    uint64_t baddr; /* buf holds [baddr, baddr + blen) of one segment */
    size_t blen;
    uint64_t vend; /* records in [saddr, vend) are checked and whole in buf */
    struct dspan *spans; /* acks: records partly or fully sent, not fully committed */
    size_t shead, scount, scap;
    uint8_t *blob; /* the state file's bookkeeping for this reader, kept */
    uint16_t blob_len;
};

/* fsync = interval: the fdatasync of the segment being written runs here,
 * off the writer thread, so a slow disk flush does not stall delivery.
 * One request at a time, on its own dup of the segment's descriptor (a
 * segment closed meanwhile cannot pull the descriptor away). */
struct dsyncer {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int fd;          /* the request: -1 = none pending */
    /* The state file, written here (disk_state_post): the newest content
     * handed over and not yet written (NULL: none), the segments to delete
     * once a state file is on disk, and what is done. */
    int dirfd;
    struct sl_queue_disk_stats *st;
    uint8_t *state;
    size_t state_len;
    uint64_t state_posted, state_done; /* numbers of the state contents handed over / written */
    int state_err;                     /* of the last write: 0 or an errno */
    bool state_failed;                 /* writer: a failure not yet taken by poll */
    struct ddel *dels;
    size_t ndel, delcap;
    /* Bytes of the segments handed over for deletion whose files are still
     * there: the writer counts them against max_size (disk_used) until the
     * sync thread has deleted them, or a failed state write leaves them for
     * the next start. */
    _Atomic uint64_t del_bytes;
    pthread_cond_t done_cv; /* state_done moved */
    uint64_t end;    /* address the request covers */
    uint64_t seq;    /* queue seq of the last chunk it covers */
    bool busy;       /* writer: a request is out */
    uint64_t seen_n; /* writer: completions taken */
    _Atomic uint64_t done_end, done_seq, done_n; /* completions, for the writer */
    _Atomic int err; /* last fdatasync error, 0 = none */
};

struct disk_backlog {
    struct sl_backlog pub;
    struct dsyncer syncer;
    struct sl_backlog_disk_config cfg;
    char *path;
    int dirfd, lockfd;
    struct sl_queue_disk_stats *st;
    struct dseg *segs;
    size_t nsegs, segcap;
    uint64_t max_id;    /* highest segment id seen, set-aside ones included */
    uint64_t end;       /* readers see [.., end) */
    uint64_t trusted_from; /* records from here on were written by this process */
    uint64_t next_lsn;
    uint64_t disk_bytes;
    /* durability */
    uint64_t synced_to;   /* written end covered by the last sync */
    uint64_t written_seq; /* queue seq of the last chunk written */
    uint64_t last_sync_ms;
    /* pending chunks (popped, not yet written) */
    struct sl_chunk *pend[PEND_MAX];
    size_t npend;
    int refuse_errno;     /* 0: not refusing for an error; else the error */
    uint64_t retry_at_ms; /* while refusing */
    struct sl_ratelimit warn_rl;
    /* readers and the state file */
    struct dreader **readers;
    size_t nreaders;
    struct sl_state loaded; /* positions read at open, consumed by add_reader */
    bool state_ok;
    bool state_dirty;
    uint64_t last_state_ms;
    uint64_t damage_seen; /* addresses below were counted as damage already */
    /* Tags of deleted segments (their highest seq per key), in the state
     * file: with the tags of the segments still here, every tag ever
     * written (sl_queue_tag_recovered after a restart). */
    struct dtag *retired;
    size_t nretired;
};

static void disk_free(struct sl_backlog *b);

/* Keeps the highest seq per key in *v.  Returns 0, or -1 (out of memory,
 * or SL_STATE_MAX_TAGS keys already: that key is not kept). */
static int
dtag_put(struct dtag **v, size_t *n, const void *key, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*v)[i].len == len && memcmp((*v)[i].key, key, len) == 0) {
            if (seq > (*v)[i].seq) {
                (*v)[i].seq = seq;
            }
            return 0;
        }
    }
    if (len == 0 || len > SL_REC_TAG_MAX || *n >= SL_STATE_MAX_TAGS) {
        return -1;
    }
    struct dtag *nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL) {
        return -1;
    }
    *v = nv;
    nv[*n].len = (uint16_t)len;
    nv[*n].seq = seq;
    memcpy(nv[*n].key, key, len);
    (*n)++;
    return 0;
}

/* Bytes chunk c takes as a record (header, its tag, payload). */
static uint64_t
rec_bytes(const struct sl_chunk *c)
{
    return SL_REC_HDR + (c->tag_len > 0 ? 14u + c->tag_len : 0u) + c->len;
}

/* strerror for any thread (the writer logs, so does the sync thread's
 * result): the GNU strerror_r into the caller's buffer. */
#define DISK_ERR(e) strerror_r((e), (char[128]){0}, 128)

/* ---- segments ------------------------------------------------------------------------- */

static void
seg_name(char *buf, size_t len, uint64_t id, const char *suffix)
{
    snprintf(buf, len, "%016" PRIx64 ".seg%s", id, suffix);
}

/* Index of the segment holding addr (addr == its end counts as in it), or
 * nsegs when addr is past every segment. */
static size_t
disk_seg_at(const struct disk_backlog *db, uint64_t addr)
{
    for (size_t i = 0; i < db->nsegs; i++) {
        if (addr <= db->segs[i].base + db->segs[i].size) {
            return i;
        }
    }
    return db->nsegs;
}

/* Bytes of segment i readers may see. */
static uint64_t
disk_seg_end(const struct disk_backlog *db, size_t i)
{
    uint64_t e = db->segs[i].base + db->segs[i].size;
    return e < db->end ? e : db->end;
}

/* Bytes the queue holds on disk against max_size: its segments, and those
 * deleted from the list whose files the sync thread has not deleted yet. */
static uint64_t
disk_used(struct disk_backlog *db)
{
    return db->disk_bytes + atomic_load_explicit(&db->syncer.del_bytes, memory_order_relaxed);
}

static void
disk_stats_segments(struct disk_backlog *db)
{
    sl_counter_set(&db->st->bytes, disk_used(db));
    sl_counter_set(&db->st->segments, db->nsegs);
}

/* Renames a segment file NAME.corrupt (never deletes what may be
 * evidence), with a log line.  Returns 0 or -1. */
static int
disk_set_aside(struct disk_backlog *db, const char *name, const char *why, uint64_t bytes)
{
    char to[64];
    snprintf(to, sizeof(to), "%s.corrupt", name);
    log_warnx("queue \"%s\": segment %s/%s %s: set aside as %s (%" PRIu64
              " byte(s) not delivered)",
              sl_queue_name(db->pub.queue), db->path, name, why, to, bytes);
    if (renameat(db->dirfd, name, db->dirfd, to) < 0) {
        log_warn("queue \"%s\": rename %s", sl_queue_name(db->pub.queue), name);
        return -1;
    }
    sl_counter_add(&db->st->lost_bytes, bytes);
    return 0;
}

static int
disk_add_seg(struct disk_backlog *db, uint64_t id, uint64_t first_lsn, uint64_t size, int fd)
{
    if (db->nsegs == db->segcap) {
        size_t cap = db->segcap == 0 ? 16 : db->segcap * 2;
        struct dseg *v = realloc(db->segs, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        db->segs = v;
        db->segcap = cap;
    }
    uint64_t base = db->nsegs == 0 ? 0 : db->segs[db->nsegs - 1].base + db->segs[db->nsegs - 1].size;
    db->segs[db->nsegs++] = (struct dseg){
        .id = id, .first_lsn = first_lsn, .base = base, .size = size, .fd = fd};
    db->disk_bytes += size;
    if (id > db->max_id) {
        db->max_id = id;
    }
    return 0;
}

/* A new empty segment after the last.  Returns 0 or -1 (errno set). */
static int
disk_roll(struct disk_backlog *db)
{
    char name[64];
    uint8_t hdr[SL_SEG_HDR];
    uint64_t id = db->max_id + 1;
    int err;

    if (db->nsegs > 0 && db->cfg.fsync != SL_QUEUE_FSYNC_NONE) {
        /* The old segment's records must be on disk before the state
         * file or a sync of the new one could claim them. */
        if (fdatasync(db->segs[db->nsegs - 1].fd) < 0) {
            return -1;
        }
        sl_counter_add(&db->st->fsyncs, 1);
    }
    seg_name(name, sizeof(name), id, "");
    int fd = openat(db->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -1;
    }
    sl_seg_header_encode(hdr, id, db->next_lsn);
    ssize_t w = pwrite(fd, hdr, sizeof(hdr), 0);
    if (w != (ssize_t)sizeof(hdr)) {
        err = w < 0 ? errno : ENOSPC;
        goto fail;
    }
    if (db->cfg.fsync != SL_QUEUE_FSYNC_NONE && (fdatasync(fd) < 0 || fsync(db->dirfd) < 0)) {
        err = errno;
        goto fail;
    }
    if (disk_add_seg(db, id, db->next_lsn, SL_SEG_HDR, fd) < 0) {
        err = ENOMEM;
        goto fail;
    }
    disk_stats_segments(db);
    sl_crash_point("segment-roll");
    return 0;
fail:
    close(fd);
    unlinkat(db->dirfd, name, 0);
    errno = err;
    return -1;
}

/* ---- readers' positions --------------------------------------------------------------- */

/* The reader's send position as an address (inside a record when soff > 0). */
static uint64_t
reader_pos(const struct dreader *r)
{
    return r->soff > 0 ? r->saddr + r->shlen + r->soff : r->saddr;
}

/* Lost records between the lsn a reader expected and the one it found,
 * counted once per backlog (every reader crosses the same gap). */
static void
disk_count_gap(struct disk_backlog *db, struct dreader *r, uint64_t at, uint64_t found_lsn)
{
    if (r->next_lsn != 0 && found_lsn > r->next_lsn && at > db->damage_seen) {
        uint64_t n = found_lsn - r->next_lsn;
        sl_counter_add(&db->st->lost_records, n);
        log_warnx("queue \"%s\": %" PRIu64 " record(s) (lsn %" PRIu64 "..%" PRIu64
                  ") missing from %s: not delivered",
                  sl_queue_name(db->pub.queue), n, r->next_lsn, found_lsn - 1, db->path);
        db->damage_seen = at;
    }
}

/* Moves a reader at a record boundary off segment headers and segment
 * ends onto the next record start; recomputes unsent. */
static void
reader_normalize(struct disk_backlog *db, struct dreader *r)
{
    if (r->soff == 0) {
        size_t i = disk_seg_at(db, r->saddr);
        while (i < db->nsegs) {
            struct dseg *s = &db->segs[i];
            if (r->saddr < s->base + SL_SEG_HDR) {
                r->saddr = s->base + SL_SEG_HDR;
                if (r->next_lsn == 0) {
                    r->next_lsn = s->first_lsn;
                }
                disk_count_gap(db, r, r->saddr, s->first_lsn);
                if (r->next_lsn < s->first_lsn) {
                    r->next_lsn = s->first_lsn;
                }
            }
            if (r->saddr < s->base + s->size || i + 1 == db->nsegs) {
                break;
            }
            i++;
            r->saddr = db->segs[i].base;
        }
        if (!r->pub.acks) {
            r->caddr = r->saddr;
        }
    }
    uint64_t pos = reader_pos(r);
    r->pub.unsent = db->end > pos ? (size_t)(db->end - pos) : 0;
}

/* The reader's buffer holds len bytes of segment i from addr on. */
static int
reader_fill(struct disk_backlog *db, struct dreader *r, size_t i, uint64_t addr)
{
    struct dseg *s = &db->segs[i];
    uint64_t end = disk_seg_end(db, i);
    size_t want = end - addr < r->bufcap ? (size_t)(end - addr) : r->bufcap;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(s->fd, r->buf + got, want - got, (off_t)(addr - s->base + got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* EIO or shorter than we knew: what was read is what there is */
        }
        got += (size_t)n;
    }
    r->baddr = addr;
    r->blen = got;
    return 0;
}

/* The damaged record at the reader's send position: moves saddr to the next
 * record that checks in the same segment (or the segment's end), counts
 * what it skipped. */
static void
reader_skip_damage(struct disk_backlog *db, struct dreader *r, size_t i)
{
    uint64_t from = r->saddr, end = disk_seg_end(db, i), pos = from + 1, lines = 0;
    struct sl_rec rec = {0};
    r->soff = 0;
    for (;;) {
        if (pos + SL_REC_HDR > end) {
            pos = end;
            break;
        }
        if (pos < r->baddr || pos + SL_REC_HDR > r->baddr + r->blen) {
            reader_fill(db, r, i, pos);
            if (r->blen < SL_REC_HDR) {
                pos = end;
                break;
            }
        }
        const uint8_t *p = r->buf + (pos - r->baddr);
        size_t avail = r->blen - (size_t)(pos - r->baddr);
        size_t k = memcmp(p, "SLQR", 4) == 0 ? 0 : sl_rec_resync(p, avail);
        if (k == avail) {
            /* No magic in the buffer: go on after it (keep 3 bytes of overlap). */
            uint64_t next = r->baddr + r->blen - 3;
            pos = next > pos ? next : pos + 1;
            continue;
        }
        pos += k;
        enum sl_seg_status st = sl_rec_decode(r->buf + (pos - r->baddr),
                                              r->blen - (size_t)(pos - r->baddr), &rec);
        if (st == SL_SEG_SHORT && sl_rec_header_decode(r->buf + (pos - r->baddr),
                                                       r->blen - (size_t)(pos - r->baddr),
                                                       &rec) == SL_SEG_OK) {
            if (pos + rec.hlen + rec.len <= end) {
                reader_fill(db, r, i, pos); /* the candidate, whole, from the start */
                if (r->blen >= rec.hlen + (size_t)rec.len &&
                    sl_rec_decode(r->buf, r->blen, &rec) == SL_SEG_OK) {
                    break;
                }
            }
        } else if (st == SL_SEG_OK) {
            break;
        }
        pos++;
    }
    /* Lines in what was skipped, as far as the buffer still shows them. */
    if (from >= r->baddr && from < r->baddr + r->blen) {
        uint64_t upto = pos < r->baddr + r->blen ? pos : r->baddr + r->blen;
        for (uint64_t a = from; a < upto; a++) {
            lines += r->buf[a - r->baddr] == '\n';
        }
    }
    if (from >= db->damage_seen) {
        sl_counter_add(&db->st->bad_records, 1);
        sl_counter_add(&db->st->lost_bytes, pos - from);
        log_warnx("queue \"%s\": damaged record in %s, segment %016" PRIx64 " offset %" PRIu64
                  ": skipped %" PRIu64 " byte(s) (about %" PRIu64 " event(s)) to the next good "
                  "record",
                  sl_queue_name(db->pub.queue), db->path, db->segs[i].id,
                  from - db->segs[i].base, pos - from, lines);
    }
    r->saddr = pos;
    r->vend = pos;
    if (pos < end) {
        disk_count_gap(db, r, pos, rec.lsn);
        r->next_lsn = rec.lsn;
    }
    if (pos > db->damage_seen) {
        db->damage_seen = pos;
    }
    reader_normalize(db, r);
}

/* Makes the record at addr (>= saddr, a record start) checked and whole in
 * the reader's buffer; fills *rec.  Only at saddr may it refill the buffer
 * (peek's earlier iovecs point into it) and skip damage.  Returns false
 * when there is no record (end of data, or not in the buffer). */
static bool
reader_record(struct disk_backlog *db, struct dreader *r, uint64_t *addrp, struct sl_rec *rec)
{
    uint64_t addr = *addrp;
    for (;;) {
        *addrp = addr;
        size_t i = disk_seg_at(db, addr);
        if (i == db->nsegs || addr >= disk_seg_end(db, i)) {
            return false;
        }
        bool at_send = addr == r->saddr;
        if (addr < r->baddr || addr + SL_REC_HDR > r->baddr + r->blen) {
            if (!at_send) {
                return false;
            }
            reader_fill(db, r, i, addr);
            r->vend = addr;
        }
        const uint8_t *p = r->buf + (addr - r->baddr);
        size_t avail = r->blen - (size_t)(addr - r->baddr);
        if (addr < r->vend) {
            (void)sl_rec_header_decode(p, avail, rec); /* checked already */
            return true;
        }
        enum sl_seg_status st;
        if (addr >= db->trusted_from) {
            /* Written by this process: it comes back from the page cache as
             * written, so the header check is enough (no second pass over
             * the payload).  Records of earlier runs get both crcs. */
            st = sl_rec_header_decode(p, avail, rec);
            if (st == SL_SEG_OK && (avail < rec->hlen || avail - rec->hlen < rec->len)) {
                st = SL_SEG_SHORT;
            }
        } else {
            st = sl_rec_decode(p, avail, rec);
        }
        if (st == SL_SEG_OK) {
            if (addr == r->vend) {
                r->vend = addr + rec->hlen + rec->len;
            }
            return true;
        }
        if (!at_send) {
            return false; /* the next peek starts here and deals with it */
        }
        if (st == SL_SEG_SHORT && sl_rec_header_decode(p, avail, rec) == SL_SEG_OK &&
            addr + rec->hlen + rec->len <= disk_seg_end(db, i) && r->baddr != addr) {
            reader_fill(db, r, i, addr); /* whole record from the buffer's start */
            r->vend = addr;
            continue;
        }
        if (st == SL_SEG_SHORT && sl_rec_header_decode(p, avail, rec) == SL_SEG_OK &&
            addr + rec->hlen + rec->len <= disk_seg_end(db, i) &&
            rec->hlen + (size_t)rec->len > r->bufcap) {
            /* Written with a larger chunk_size than now: grow to fit. */
            uint8_t *nb = realloc(r->buf, rec->hlen + (size_t)rec->len);
            if (nb == NULL) {
                return false;
            }
            r->buf = nb;
            r->bufcap = rec->hlen + (size_t)rec->len;
            reader_fill(db, r, i, addr);
            r->vend = addr;
            continue;
        }
        reader_skip_damage(db, r, i);
        addr = r->saddr;
        *addrp = addr;
    }
}

/* ---- the state file ------------------------------------------------------------------- */

/* The (segment id, offset) of address addr. */
static void
disk_addr_pos(const struct disk_backlog *db, uint64_t addr, uint64_t *id, uint64_t *off)
{
    size_t i = disk_seg_at(db, addr);
    if (i == db->nsegs) {
        i = db->nsegs - 1;
    }
    *id = db->segs[i].id;
    *off = addr - db->segs[i].base;
}

/* The address of a persisted (segment id, offset): its segment's start if
 * the segment is gone, the end if it is beyond every segment. */
static uint64_t
disk_pos_addr(const struct disk_backlog *db, uint64_t id, uint64_t off)
{
    for (size_t i = 0; i < db->nsegs; i++) {
        const struct dseg *s = &db->segs[i];
        if (s->id == id) {
            return s->base + (off > s->size ? s->size : off < SL_SEG_HDR ? SL_SEG_HDR : off);
        }
        if (s->id > id) {
            return s->base + SL_SEG_HDR;
        }
    }
    return db->end;
}

/* Writes iov (n entries, total bytes) at offset off of fd, all of it.
 * Returns 0 or -1 (errno). */
static int
pwritev_all(int fd, struct iovec *iov, int n, off_t off)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n > IOV_MAX ? IOV_MAX : n, off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = ENOSPC;
            }
            return -1;
        }
        off += w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* The state file's content: every reader's committed position, the
 * retired tags.  Returns a malloc'd buffer of *len bytes, or NULL. */
static uint8_t *
disk_encode_state(const struct disk_backlog *db, size_t *len)
{
    struct sl_state s = {.next_lsn = db->next_lsn, .nreaders = db->nreaders,
                         .ntags = db->nretired};
    struct sl_state_reader rs[db->nreaders > 0 ? db->nreaders : 1];
    struct sl_state_tag ts[db->nretired > 0 ? db->nretired : 1];
    for (size_t i = 0; i < db->nretired; i++) {
        ts[i] = (struct sl_state_tag){
            .key = db->retired[i].key, .len = db->retired[i].len, .seq = db->retired[i].seq};
    }
    s.tags = ts;
    s.readers = rs;
    for (size_t j = 0; j < db->nreaders; j++) {
        struct dreader *r = db->readers[j];
        rs[j] = (struct sl_state_reader){.name = r->name, .blob = r->blob, .blob_len = r->blob_len};
        disk_addr_pos(db, r->caddr, &rs[j].seg, &rs[j].off);
    }
    *len = sl_state_size(&s);
    uint8_t *buf = malloc(*len);
    if (buf != NULL) {
        sl_state_encode(&s, buf);
    }
    return buf;
}

/* Writes state.tmp, syncs it, renames it over state, syncs the directory
 * (sync false: no syncs).  Any thread.  Returns 0 or an errno (the old
 * state stays). */
static int
state_write(int dirfd, struct sl_queue_disk_stats *st, const uint8_t *buf, size_t n, bool sync)
{
    int fd = openat(dirfd, "state.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        return errno;
    }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    int err = 0;
    if (pwritev_all(fd, &iov, 1, 0) < 0 || (sync && fdatasync(fd) < 0)) {
        err = errno;
    }
    if (close(fd) < 0 && err == 0) {
        err = errno;
    }
    if (err == 0 && renameat(dirfd, "state.tmp", dirfd, "state") < 0) {
        err = errno;
    }
    if (err == 0 && sync) {
        sl_counter_add(&st->fsyncs, 2);
        if (fsync(dirfd) < 0) {
            err = errno;
        }
    }
    if (err == 0) {
        sl_crash_point("state-write");
    }
    return err;
}

static void
disk_state_warn(struct disk_backlog *db, int err)
{
    uint64_t supp;
    if (sl_ratelimit_ok(&db->warn_rl, sl_now_ms(), &supp)) {
        log_warnx("queue \"%s\": cannot write %s/state: %s", sl_queue_name(db->pub.queue), db->path,
                  DISK_ERR(err));
    }
}

static uint64_t disk_state_post(struct disk_backlog *db, uint8_t *buf, size_t len,
                                const struct ddel *dels, size_t ndel);
static int disk_state_wait(struct disk_backlog *db, uint64_t no);

/* Writes the state file now (on the sync thread when there is one, after
 * anything handed to it before, waiting for it).  Returns 0 or -1
 * (logged; the old state stays). */
static int
disk_save_state(struct disk_backlog *db)
{
    size_t n;
    uint8_t *buf = disk_encode_state(db, &n);
    if (buf == NULL) {
        return -1;
    }
    int err;
    if (db->syncer.started) {
        uint64_t no = disk_state_post(db, buf, n, NULL, 0);
        err = no == 0 ? ENOMEM : disk_state_wait(db, no);
    } else {
        err = state_write(db->dirfd, db->st, buf, n, db->cfg.fsync != SL_QUEUE_FSYNC_NONE);
        free(buf);
    }
    if (err != 0) {
        disk_state_warn(db, err);
        return -1;
    }
    db->state_dirty = false;
    return 0;
}

/* Deletes the segments every reader has committed past (not the last),
 * after a state file saying so is on disk.  Returns how many went. */
static size_t
disk_gc(struct disk_backlog *db, uint64_t now_ms)
{
    uint64_t low = db->end;
    for (size_t j = 0; j < db->nreaders; j++) {
        if (db->readers[j]->caddr < low) {
            low = db->readers[j]->caddr;
        }
    }
    size_t n = 0;
    while (n + 1 < db->nsegs && db->segs[n].base + db->segs[n].size <= low) {
        n++;
    }
    if (n == 0) {
        return 0;
    }
    /* Their tags outlive them, in the state file written before they go. */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < db->segs[i].ntags; k++) {
            const struct dtag *t = &db->segs[i].tags[k];
            if (dtag_put(&db->retired, &db->nretired, t->key, t->len, t->seq) < 0) {
                log_warnx("queue \"%s\": cannot keep a deleted segment's batch tags (out of "
                          "memory or %d senders): a restart may take their resends again",
                          sl_queue_name(db->pub.queue), SL_STATE_MAX_TAGS);
            }
        }
    }
    if (db->syncer.started) {
        /* The sync thread writes the state file, then deletes them: the
         * writer does not wait for the disk. */
        struct ddel dels[n];
        size_t len;
        uint8_t *buf = disk_encode_state(db, &len);
        for (size_t i = 0; i < n; i++) {
            dels[i] = (struct ddel){
                .id = db->segs[i].id, .fd = db->segs[i].fd, .size = db->segs[i].size};
        }
        uint64_t gone = 0;
        for (size_t i = 0; i < n; i++) {
            gone += dels[i].size;
        }
        /* Counted before the sync thread can delete (and uncount) them. */
        atomic_fetch_add(&db->syncer.del_bytes, gone);
        if (buf == NULL || disk_state_post(db, buf, len, dels, n) == 0) {
            atomic_fetch_sub(&db->syncer.del_bytes, gone);
            return 0; /* out of memory: they stay, the state is written later */
        }
        db->state_dirty = false;
    } else {
        if (disk_save_state(db) < 0) {
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            char name[64];
            seg_name(name, sizeof(name), db->segs[i].id, "");
            if (unlinkat(db->dirfd, name, 0) < 0 && errno != ENOENT) {
                log_warn("queue \"%s\": delete %s/%s", sl_queue_name(db->pub.queue), db->path,
                         name);
            }
            close(db->segs[i].fd);
        }
    }
    db->last_state_ms = now_ms;
    for (size_t i = 0; i < n; i++) {
        free(db->segs[i].tags);
        db->disk_bytes -= db->segs[i].size;
    }
    memmove(db->segs, db->segs + n, (db->nsegs - n) * sizeof(*db->segs));
    db->nsegs -= n;
    disk_stats_segments(db);
    return n;
}

/* The timed state file: handed to the sync thread when there is one (the
 * writer does not wait; a failure comes back through disk_state_failed),
 * else written here.  Returns 0 or -1. */
static int
disk_save_state_bg(struct disk_backlog *db)
{
    if (!db->syncer.started) {
        return disk_save_state(db);
    }
    size_t len;
    uint8_t *buf = disk_encode_state(db, &len);
    if (buf == NULL || disk_state_post(db, buf, len, NULL, 0) == 0) {
        return -1;
    }
    db->state_dirty = false;
    return 0;
}

/* ---- durability ----------------------------------------------------------------------- */

static void
disk_sync(struct disk_backlog *db, uint64_t now_ms)
{
    uint64_t wend = db->segs[db->nsegs - 1].base + db->segs[db->nsegs - 1].size;
    uint64_t seq = db->written_seq;
    if (wend == db->synced_to) {
        return;
    }
    db->last_sync_ms = now_ms;
    if (fdatasync(db->segs[db->nsegs - 1].fd) < 0) {
        uint64_t supp;
        if (sl_ratelimit_ok(&db->warn_rl, now_ms, &supp)) {
            log_warn("queue \"%s\": fdatasync in %s", sl_queue_name(db->pub.queue), db->path);
        }
        return;
    }
    sl_counter_add(&db->st->fsyncs, 1);
    db->synced_to = wend;
    sl_queue_set_durable(db->pub.queue, seq);
}

/* Sync thread: writes the state file handed over, then deletes the
 * segments it lets go (on failure they wait for the next one). */
static void
syncer_state_locked(struct dsyncer *sy)
{
    uint8_t *buf = sy->state;
    size_t len = sy->state_len;
    uint64_t no = sy->state_posted;
    struct ddel *dels = sy->dels;
    size_t ndel = sy->ndel;
    sy->state = NULL;
    sy->dels = NULL;
    sy->ndel = sy->delcap = 0;
    pthread_mutex_unlock(&sy->mu);
    int err = state_write(sy->dirfd, sy->st, buf, len, true);
    free(buf);
    for (size_t i = 0; err == 0 && i < ndel; i++) {
        /* The last close frees the blocks (with the `discard` mount option
         * it waits for the device): here, not on the writer. */
        char name[64];
        seg_name(name, sizeof(name), dels[i].id, "");
        if (unlinkat(sy->dirfd, name, 0) < 0 && errno != ENOENT) {
            log_warn("disk queue: delete segment %s", name);
        }
        close(dels[i].fd);
        atomic_fetch_sub(&sy->del_bytes, dels[i].size);
    }
    pthread_mutex_lock(&sy->mu);
    if (err != 0 && ndel > 0) {
        /* Kept for the next state file, in front of what came meanwhile. */
        struct ddel *v = realloc(dels, (ndel + sy->ndel) * sizeof(*v));
        if (v != NULL) {
            if (sy->ndel > 0) {
                memcpy(v + ndel, sy->dels, sy->ndel * sizeof(*v));
            }
            free(sy->dels);
            sy->dels = v;
            sy->ndel = sy->delcap = ndel + sy->ndel;
            dels = NULL;
        } else {
            for (size_t i = 0; i < ndel; i++) {
                close(dels[i].fd); /* the files stay: the next start deletes them */
            }
        }
    }
    free(dels);
    sy->state_err = err;
    sy->state_failed = sy->state_failed || err != 0;
    sy->state_done = no;
    pthread_cond_broadcast(&sy->done_cv);
}

static void *
syncer_main(void *arg)
{
    struct dsyncer *sy = arg;
    pthread_mutex_lock(&sy->mu);
    for (;;) {
        while (!sy->stop && sy->fd < 0 && sy->state == NULL) {
            pthread_cond_wait(&sy->cv, &sy->mu);
        }
        if (sy->state != NULL) {
            syncer_state_locked(sy);
            continue;
        }
        if (sy->fd < 0) {
            break; /* stop, nothing pending */
        }
        int fd = sy->fd;
        uint64_t end = sy->end, seq = sy->seq;
        sy->fd = -1;
        pthread_mutex_unlock(&sy->mu);
        int rc = fdatasync(fd);
        int err = rc < 0 ? errno : 0;
        close(fd);
        atomic_store(&sy->err, err);
        if (rc == 0) {
            atomic_store(&sy->done_seq, seq);
            atomic_store(&sy->done_end, end);
        }
        atomic_fetch_add(&sy->done_n, 1); /* release: the writer sees the rest */
        pthread_mutex_lock(&sy->mu);
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

/* Hands a state file's content (steals buf) and the segments it lets go
 * to the sync thread; a content not yet written is replaced (the newer
 * says everything it said).  Returns its number for disk_state_wait, 0 if
 * out of memory (buf freed, nothing handed over). */
static uint64_t
disk_state_post(struct disk_backlog *db, uint8_t *buf, size_t len, const struct ddel *dels,
                size_t ndel)
{
    struct dsyncer *sy = &db->syncer;
    uint64_t no = 0;
    pthread_mutex_lock(&sy->mu);
    if (sy->ndel + ndel > sy->delcap) {
        size_t cap = (sy->ndel + ndel) * 2;
        struct ddel *v = realloc(sy->dels, cap * sizeof(*v));
        if (v == NULL) {
            pthread_mutex_unlock(&sy->mu);
            free(buf);
            return 0;
        }
        sy->dels = v;
        sy->delcap = cap;
    }
    if (ndel > 0) {
        memcpy(sy->dels + sy->ndel, dels, ndel * sizeof(*dels));
        sy->ndel += ndel;
    }
    free(sy->state);
    sy->state = buf;
    sy->state_len = len;
    no = ++sy->state_posted;
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    return no;
}

/* Waits until the state content number no (or a newer) is written.
 * Returns 0 or the errno of that write. */
static int
disk_state_wait(struct disk_backlog *db, uint64_t no)
{
    struct dsyncer *sy = &db->syncer;
    pthread_mutex_lock(&sy->mu);
    while (sy->state_done < no) {
        pthread_cond_wait(&sy->done_cv, &sy->mu);
    }
    int err = sy->state_err;
    sy->state_failed = false;
    pthread_mutex_unlock(&sy->mu);
    return err;
}

/* A state file the sync thread could not write: 0, or its errno (once). */
static int
disk_state_failed(struct disk_backlog *db)
{
    struct dsyncer *sy = &db->syncer;
    if (!sy->started) {
        return 0;
    }
    pthread_mutex_lock(&sy->mu);
    int err = sy->state_failed ? sy->state_err : 0;
    sy->state_failed = false;
    pthread_mutex_unlock(&sy->mu);
    return err;
}

static int
syncer_start(struct dsyncer *sy, int dirfd, struct sl_queue_disk_stats *st)
{
    sy->fd = -1;
    sy->dirfd = dirfd;
    sy->st = st;
    if (pthread_mutex_init(&sy->mu, NULL) != 0 || pthread_cond_init(&sy->cv, NULL) != 0 ||
        pthread_cond_init(&sy->done_cv, NULL) != 0 ||
        pthread_create(&sy->thread, NULL, syncer_main, sy) != 0) {
        return -1;
    }
    sy->started = true;
    return 0;
}

static void
syncer_stop(struct dsyncer *sy)
{
    if (!sy->started) {
        return;
    }
    pthread_mutex_lock(&sy->mu);
    sy->stop = true;
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    for (size_t i = 0; i < sy->ndel; i++) {
        close(sy->dels[i].fd); /* a state file failed: the next start deletes them */
    }
    free(sy->dels);
    sy->dels = NULL;
    sy->ndel = sy->delcap = 0;
    pthread_cond_destroy(&sy->done_cv);
    pthread_cond_destroy(&sy->cv);
    pthread_mutex_destroy(&sy->mu);
    sy->started = false;
}

/* A quarter of the segment being written (at least EARLY_SYNC_MIN) is not
 * synced yet: sync it now, in the background, so the sync a roll waits
 * for on the writer thread (disk_roll) has little left to write.  Without
 * it a fast writer filled a 64 MiB segment within one fsync_interval and
 * the roll's fdatasync wrote all of it while the writer waited
 * (bench/results/analysis.md, disk queue 2026-12-06). */
static bool
disk_sync_early(const struct disk_backlog *db)
{
    const struct dseg *s = &db->segs[db->nsegs - 1];
    uint64_t from = db->synced_to > s->base ? db->synced_to : s->base;
    uint64_t quarter = db->cfg.segment_bytes / 4;
    return s->base + s->size - from >= (quarter > EARLY_SYNC_MIN ? quarter : EARLY_SYNC_MIN);
}

/* Interval sync: takes a finished background sync's result, or hands the
 * segment being written to the syncer.  The durable seq moves only on a
 * sync that worked.  While a source waits on the durable position (an
 * acknowledgement held back: relp, sluice), the next sync starts as soon
 * as the last one is done instead of at the interval: group commit, one
 * fdatasync covering whatever was written meanwhile.  Without it a relp
 * sender got one message per fsync_interval (2/s at 500ms). */
static void
disk_sync_async(struct disk_backlog *db, uint64_t now_ms)
{
    struct dsyncer *sy = &db->syncer;
    uint64_t n = atomic_load(&sy->done_n);
    if (sy->busy && n != sy->seen_n) {
        sy->seen_n = n;
        sy->busy = false;
        uint64_t end = atomic_load(&sy->done_end);
        if (atomic_load(&sy->err) == 0) {
            sl_counter_add(&db->st->fsyncs, 1);
            if (end > db->synced_to) {
                db->synced_to = end;
            }
            sl_queue_set_durable(db->pub.queue, atomic_load(&sy->done_seq));
        } else {
            uint64_t supp;
            if (sl_ratelimit_ok(&db->warn_rl, now_ms, &supp)) {
                log_warnx("queue \"%s\": fdatasync in %s: %s", sl_queue_name(db->pub.queue),
                          db->path, DISK_ERR(atomic_load(&sy->err)));
            }
        }
    }
    struct dseg *s = &db->segs[db->nsegs - 1];
    uint64_t wend = s->base + s->size;
    bool due = now_ms - db->last_sync_ms >= db->cfg.fsync_interval_ms ||
               sl_queue_durable_watched(db->pub.queue) || disk_sync_early(db);
    if (sy->busy || wend == db->synced_to || !due) {
        return;
    }
    int fd = dup(s->fd);
    if (fd < 0) {
        disk_sync(db, now_ms); /* no descriptor to spare: here, then */
        return;
    }
    db->last_sync_ms = now_ms;
    sy->busy = true;
    pthread_mutex_lock(&sy->mu);
    sy->fd = fd;
    sy->end = wend;
    sy->seq = db->written_seq;
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
}

/* ---- append --------------------------------------------------------------------------- */

static void
disk_refuse(struct disk_backlog *db, int err, uint64_t now_ms)
{
    if (sl_counter_get(&db->st->refusing) == 0) {
        sl_counter_add(&db->st->full_total, 1);
    }
    db->pub.refusing = true;
    sl_counter_set(&db->st->refusing, 1);
    db->retry_at_ms = now_ms + RETRY_MS;
    if (err != 0) {
        uint64_t supp = 0;
        sl_counter_add(&db->st->write_errors, 1);
        sl_counter_set(&db->st->last_errno, (uint64_t)err);
        if (sl_counter_get(&db->st->failing_since_ms) == 0) {
            sl_counter_set(&db->st->failing_since_ms, sl_realtime_ms());
        }
        if (db->refuse_errno != err || sl_ratelimit_ok(&db->warn_rl, now_ms, &supp)) {
            log_warnx("queue \"%s\": cannot write to %s: %s; the queue takes no more events "
                      "(senders pause) and retries every %d ms",
                      sl_queue_name(db->pub.queue), db->path, DISK_ERR(err), RETRY_MS);
        }
    }
    db->refuse_errno = err;
}

static void
disk_accept(struct disk_backlog *db)
{
    if (sl_counter_get(&db->st->refusing) != 0) {
        if (db->refuse_errno != 0) {
            log_warnx("queue \"%s\": writing to %s again: the queue takes events again",
                      sl_queue_name(db->pub.queue), db->path);
        }
        db->pub.refusing = false;
        sl_counter_set(&db->st->refusing, 0);
    }
    db->refuse_errno = 0;
    sl_counter_set(&db->st->failing_since_ms, 0);
}

/* Writes pending chunks k.. that fit the last segment as one pwritev.
 * Returns how many were written (0 with errno on failure; the segment is
 * cut back to where it was). */
static size_t
disk_write_group(struct disk_backlog *db, size_t k)
{
    struct dseg *s = &db->segs[db->nsegs - 1];
    uint8_t hdrs[PEND_MAX][SL_REC_HDR_MAX];
    struct iovec iov[2 * PEND_MAX];
    uint64_t size = s->size, lsn = db->next_lsn;
    size_t n = 0;
    while (k + n < db->npend) {
        struct sl_chunk *c = db->pend[k + n];
        uint64_t rec = rec_bytes(c);
        if (n > 0 && size + rec > db->cfg.segment_bytes) {
            break;
        }
        /* The chunk's tag goes in its own record: on disk exactly when it is. */
        struct sl_rec r = {.len = (uint32_t)c->len, .nevents = c->nevents, .lsn = lsn,
                           .first_ns = c->first_ns, .tag_len = c->tag_len,
                           .tag_seq = c->tag_seq, .tag = (const uint8_t *)c->tag};
        lsn++;
        size_t hlen = sl_rec_header_encode(hdrs[n], &r, c->data);
        iov[2 * n] = (struct iovec){.iov_base = hdrs[n], .iov_len = hlen};
        iov[2 * n + 1] = (struct iovec){.iov_base = c->data, .iov_len = c->len};
        size += rec;
        n++;
    }
    if (sl_crash_armed("append-mid")) {
        /* Half of the group, then the crash point (a torn tail to cut). */
        struct iovec half[2 * PEND_MAX];
        memcpy(half, iov, sizeof(half));
        uint64_t want = (size - s->size) / 2, at = 0;
        int m = 0;
        while (m < (int)(2 * n) && at + half[m].iov_len <= want) {
            at += half[m++].iov_len;
        }
        if (m < (int)(2 * n)) {
            half[m].iov_len = (size_t)(want - at);
            m++;
        }
        (void)pwritev_all(s->fd, half, m, (off_t)s->size);
    }
    sl_crash_point("append-mid");
    if (pwritev_all(s->fd, iov, (int)(2 * n), (off_t)s->size) < 0) {
        int err = errno;
        if (ftruncate(s->fd, (off_t)s->size) < 0) {
            log_warn("queue \"%s\": cut back %s", sl_queue_name(db->pub.queue), db->path);
        }
        errno = err;
        return 0;
    }
    sl_crash_point("append-written"); /* in the page cache, not yet synced */
    for (size_t j = 0; j < n; j++) {
        struct sl_chunk *c = db->pend[k + j];
        if (c->tag_len > 0 &&
            dtag_put(&s->tags, &s->ntags, c->tag, c->tag_len, c->tag_seq) < 0) {
            /* In the record all the same: only a restart after this
             * segment is deleted would not know it. */
            uint64_t supp;
            if (sl_ratelimit_ok(&db->warn_rl, sl_now_ms(), &supp)) {
                log_warnx("queue \"%s\": cannot keep a batch tag in memory (out of memory "
                          "or %d senders): a restart after its segment is deleted may take its "
                          "resend again",
                          sl_queue_name(db->pub.queue), SL_STATE_MAX_TAGS);
            }
        }
    }
    sl_counter_add(&db->st->written_bytes, size - s->size);
    db->disk_bytes += size - s->size;
    s->size = size;
    db->next_lsn = lsn;
    db->written_seq = db->pend[k + n - 1]->seq;
    return n;
}

/* Writes every pending chunk; gives each written one back to the pool.
 * Returns 0, or -1 with errno (the rest stay pending). */
static int
disk_write_pending(struct disk_backlog *db)
{
    size_t k = 0;
    int rc = 0;
    while (k < db->npend) {
        struct dseg *s = &db->segs[db->nsegs - 1];
        if (s->size > SL_SEG_HDR &&
            s->size + rec_bytes(db->pend[k]) > db->cfg.segment_bytes &&
            disk_roll(db) < 0) {
            rc = -1;
            break;
        }
        size_t n = disk_write_group(db, k);
        if (n == 0) {
            rc = -1;
            break;
        }
        k += n;
    }
    int err = errno;
    for (size_t i = 0; i < k; i++) {
        sl_queue_release(db->pub.queue, db->pend[i]);
    }
    memmove(db->pend, db->pend + k, (db->npend - k) * sizeof(*db->pend));
    db->npend -= k;
    errno = err;
    return rc;
}

/* The readers see what was written up to now. */
static void
disk_publish(struct disk_backlog *db, uint64_t now_ms)
{
    uint64_t wend = db->segs[db->nsegs - 1].base + db->segs[db->nsegs - 1].size;
    if (wend == db->end) {
        return;
    }
    db->end = wend;
    for (size_t j = 0; j < db->nreaders; j++) {
        struct dreader *r = db->readers[j];
        if (r->pub.unsent == 0) {
            r->pub.oldest_ms = now_ms;
        }
        reader_normalize(db, r);
    }
}

static size_t
disk_append(struct sl_backlog *b, size_t max, uint64_t now_ms)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    size_t taken = 0;
    uint64_t need = SL_REC_HDR_MAX + sl_queue_chunk_bytes(b->queue);
    if (b->refusing) {
        return 0;
    }
    uint64_t pend_bytes = 0;
    for (size_t i = 0; i < db->npend; i++) {
        pend_bytes += rec_bytes(db->pend[i]);
    }
    /* Small groups (but fsync = batch, which syncs each): the sinks read a
     * group back before the next, while its bytes are still in the CPU's
     * cache; groups of up to 64 chunks (16 MiB) came back cold.  The
     * writer's CPU per event: 0.82-0.89x in interleaved A/Bs
     * (bench/results/analysis.md, 2026-12-06 session 7, disk queue). */
    uint64_t group = db->cfg.fsync == SL_QUEUE_FSYNC_BATCH ? UINT64_MAX : APPEND_GROUP_BYTES;
    while (db->npend < PEND_MAX && taken < max && pend_bytes < group) {
        if (disk_used(db) + pend_bytes + need + SL_SEG_HDR > db->cfg.max_size) {
            if (db->npend == 0) {
                disk_refuse(db, 0, now_ms); /* max_size: poll deletes what is committed */
                db->state_dirty = true;
            }
            break;
        }
        struct sl_chunk *c = sl_queue_pop(b->queue);
        if (c == NULL) {
            break;
        }
        db->pend[db->npend++] = c;
        pend_bytes += rec_bytes(c);
        taken++;
    }
    if (db->npend == 0) {
        return taken;
    }
    if (disk_write_pending(db) < 0) {
        disk_refuse(db, errno, now_ms);
        if (db->cfg.fsync != SL_QUEUE_FSYNC_BATCH) {
            disk_publish(db, now_ms); /* what did go (batch: after poll's sync) */
        }
        return taken;
    }
    if (db->refuse_errno != 0) {
        disk_accept(db);
    }
    if (db->cfg.fsync == SL_QUEUE_FSYNC_BATCH) {
        disk_sync(db, now_ms);
        if (db->synced_to != db->segs[db->nsegs - 1].base + db->segs[db->nsegs - 1].size) {
            return taken; /* readers wait for a sync that worked (poll retries) */
        }
    } else if (db->cfg.fsync == SL_QUEUE_FSYNC_NONE) {
        sl_queue_set_durable(b->queue, db->written_seq);
    }
    disk_publish(db, now_ms);
    return taken;
}

static uint64_t
disk_poll(struct sl_backlog *b, uint64_t now_ms)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    uint64_t due = 0, interval = db->cfg.fsync_interval_ms;
#define DUE(ms) (due = (due == 0 || (ms) < due) ? (ms) : due)
    uint64_t wend = db->segs[db->nsegs - 1].base + db->segs[db->nsegs - 1].size;
    if (db->cfg.fsync == SL_QUEUE_FSYNC_INTERVAL) {
        disk_sync_async(db, now_ms);
        if (db->syncer.busy) {
            DUE(SYNC_CHECK_MS); /* to take its result */
        } else if (wend != db->synced_to) {
            DUE(sl_queue_durable_watched(db->pub.queue) || db->last_sync_ms + interval <= now_ms ||
                        disk_sync_early(db)
                    ? 1
                    : db->last_sync_ms + interval - now_ms);
        }
    } else if (db->cfg.fsync == SL_QUEUE_FSYNC_BATCH && wend != db->synced_to) {
        /* A sync of an append that failed: again, then the readers see it. */
        disk_sync(db, now_ms);
        if (db->synced_to == wend) {
            disk_publish(db, now_ms);
        } else {
            DUE(RETRY_MS);
        }
    }
    int serr = disk_state_failed(db);
    if (serr != 0) {
        disk_state_warn(db, serr);
        db->state_dirty = true; /* again at the interval, with the segments it would let go */
    }
    if (db->state_dirty) {
        bool time = now_ms - db->last_state_ms >= interval;
        if (time || (b->refusing && db->refuse_errno == 0)) {
            /* Full for max_size: delete what is committed as soon as it is. */
            if (disk_gc(db, now_ms) == 0 && time && disk_save_state_bg(db) == 0) {
                db->last_state_ms = now_ms;
            }
        }
        if (db->state_dirty) {
            DUE(db->last_state_ms + interval > now_ms ? db->last_state_ms + interval - now_ms : 1);
        }
    }
    if (b->refusing) {
        uint64_t need = SL_REC_HDR_MAX + sl_queue_chunk_bytes(b->queue) + SL_SEG_HDR;
        if (db->refuse_errno == 0 && disk_used(db) + need <= db->cfg.max_size) {
            disk_accept(db);
        } else if (db->refuse_errno != 0 && now_ms >= db->retry_at_ms) {
            /* Try again now, with the chunks it holds: when every chunk of
             * the pool is among them, no push would ever wake the writer
             * for it. */
            b->refusing = false;
            if (db->npend > 0) {
                (void)disk_append(b, 0, now_ms);
            }
        }
        if (b->refusing && db->refuse_errno == 0 &&
            atomic_load_explicit(&db->syncer.del_bytes, memory_order_relaxed) > 0) {
            DUE(5); /* the sync thread is deleting segments: look again soon */
        } else if (b->refusing) {
            DUE(db->refuse_errno == 0          ? interval
                : db->retry_at_ms > now_ms ? db->retry_at_ms - now_ms
                                           : 1);
        }
    }
#undef DUE
    return due;
}

/* ---- readers -------------------------------------------------------------------------- */

/* The blob goes to disk with the next state file, next to the committed
 * position it describes (both from the writer thread, so consistent). */
static void
disk_set_blob(struct sl_backlog *b, struct sl_backlog_reader *pr, const void *blob, size_t len)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)pr;
    if (len > SL_STATE_MAX_BLOB) {
        return; /* a sink bug: the old blob stays, with its older position's meaning lost */
    }
    if (len == r->blob_len && (len == 0 || memcmp(r->blob, blob, len) == 0)) {
        return;
    }
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL) {
            return; /* kept: the next commit tries again */
        }
        memcpy(copy, blob, len);
    }
    if (r->blob_len == 0) {
        /* The first: on disk at the next poll, not an fsync_interval later
         * (until it is, a restart knows no bookkeeping of this reader). */
        db->last_state_ms = 0;
    }
    free(r->blob);
    r->blob = copy;
    r->blob_len = (uint16_t)len;
    db->state_dirty = true;
}

static const void *
disk_get_blob(struct sl_backlog *b, struct sl_backlog_reader *pr, size_t *len)
{
    struct dreader *r = (struct dreader *)pr;
    *len = r->blob_len;
    return r->blob_len > 0 ? r->blob : NULL;
}

/* At set-up: what add_reader and the sinks' first checkpoints changed, on
 * disk before any sink writes (backlog.h save). */
static int
disk_save(struct sl_backlog *b)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    if (!db->state_dirty) {
        return 0;
    }
    if (disk_save_state(db) < 0) {
        return -1;
    }
    db->last_state_ms = sl_now_ms();
    return 0;
}

/* A new reader: at its committed position in the state file loaded at
 * open (or the oldest record when the file does not know it), or, live (a
 * sink added by a reload), at the queue's end: it takes what is appended
 * from now on, as a reader of a memory queue does. */
static struct sl_backlog_reader *
disk_new_reader(struct sl_backlog *b, const char *name, bool acks, bool live)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = calloc(1, sizeof(*r));
    struct dreader **rs = realloc(db->readers, (db->nreaders + 1) * sizeof(*rs));
    if (rs != NULL) {
        db->readers = rs;
    }
    if (r == NULL || rs == NULL) {
        free(r);
        return NULL;
    }
    r->name = strdup(name);
    r->bufcap = SL_REC_HDR_MAX + sl_queue_chunk_bytes(b->queue);
    if (r->bufcap < READ_BUF_MIN) {
        r->bufcap = READ_BUF_MIN;
    }
    r->buf = malloc(r->bufcap);
    if (r->name == NULL || r->buf == NULL) {
        free(r->name);
        free(r->buf);
        free(r);
        return NULL;
    }
    r->pub.acks = acks;
    /* Where the state file says it committed; the oldest record when the
     * state does not know it (a new sink, a lost state file). */
    r->saddr = live ? db->end : db->segs[0].base;
    if (live) {
        r->next_lsn = db->next_lsn;
    }
    for (size_t i = 0; !live && i < db->loaded.nreaders; i++) {
        struct sl_state_reader *sr = &db->loaded.readers[i];
        if (strcmp(sr->name, name) == 0) {
            r->saddr = disk_pos_addr(db, sr->seg, sr->off);
            r->blob = sr->blob;
            r->blob_len = sr->blob_len;
            sr->blob = NULL;
            break;
        }
    }
    r->caddr = r->saddr;
    r->vend = r->saddr;
    r->baddr = r->saddr;
    reader_normalize(db, r);
    r->caddr = r->saddr;
    r->pub.oldest_ms = sl_now_ms();
    db->readers[db->nreaders++] = r;
    db->state_dirty = true;
    return &r->pub;
}

static struct sl_backlog_reader *
disk_add_reader(struct sl_backlog *b, const char *name, bool acks)
{
    return disk_new_reader(b, name, acks, false);
}

static struct sl_backlog_reader *
disk_add_reader_live(struct sl_backlog *b, const char *name, bool acks)
{
    return disk_new_reader(b, name, acks, true);
}

/* What the reader had not sent or had not had committed stays in the
 * segments for the other readers (or until gc); for it, it is given up.
 * The events in it are not counted: that would mean reading it back. */
static void
disk_remove_reader(struct sl_backlog *b, struct sl_backlog_reader *pr, uint64_t *bytes,
                   uint64_t *events)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)pr;
    *bytes = r->pub.unsent + r->pub.uncommitted;
    *events = UINT64_MAX;
    for (size_t j = 0; j < db->nreaders; j++) {
        if (db->readers[j] == r) {
            memmove(db->readers + j, db->readers + j + 1,
                    (db->nreaders - j - 1) * sizeof(*db->readers));
            db->nreaders--;
            break;
        }
    }
    free(r->name);
    free(r->buf);
    free(r->spans);
    free(r->blob);
    free(r);
    db->state_dirty = true;
}

static int
disk_peek(struct sl_backlog *b, struct sl_backlog_reader *rd, struct iovec *iov, int iovmax,
          size_t max_bytes, size_t *bytes)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)rd;
    struct sl_rec rec;
    size_t total = 0;
    int n = 0;
    uint64_t addr = r->saddr, off = r->soff;
    bool replay = false;
    while (n < iovmax && reader_record(db, r, &addr, &rec)) {
        if (n == 0) {
            off = r->soff; /* reader_record may have moved saddr past damage */
            replay = addr < db->trusted_from;
        }
        size_t len = rec.len - off;
        if (n > 0 && (total + len > max_bytes || (replay && addr >= db->trusted_from))) {
            break; /* the replay ends a call (disk_replaying) */
        }
        iov[n].iov_base = r->buf + (addr - r->baddr) + rec.hlen + off;
        iov[n].iov_len = len;
        total += len;
        n++;
        addr += rec.hlen + rec.len;
        off = 0;
    }
    if (n == 0) {
        reader_normalize(db, r);
        if (r->pub.unsent > 0 && r->saddr >= db->end) {
            r->pub.unsent = 0;
        }
    }
    *bytes = total;
    return n;
}

/* The send position is in what an earlier run wrote. */
static bool
disk_replaying(struct sl_backlog *b, struct sl_backlog_reader *rd)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)rd;
    return r->saddr < db->trusted_from;
}

/* Appends the span of the record at addr (len payload bytes) to an
 * acknowledging reader's list.  0, or -1 when out of memory. */
static int
reader_push_span(struct dreader *r, uint64_t addr, uint32_t len)
{
    if (r->scount == r->scap) {
        size_t cap = r->scap == 0 ? 64 : r->scap * 2;
        struct dspan *v = malloc(cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        for (size_t i = 0; i < r->scount; i++) {
            v[i] = r->spans[(r->shead + i) % r->scap];
        }
        free(r->spans);
        r->spans = v;
        r->shead = 0;
        r->scap = cap;
    }
    r->spans[(r->shead + r->scount++) % r->scap] = (struct dspan){.addr = addr, .len = len};
    return 0;
}

static uint64_t
disk_sent(struct sl_backlog *b, struct sl_backlog_reader *rd, size_t n, uint64_t now_ns,
          struct sl_hist *latency)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)rd;
    struct sl_rec rec;
    uint64_t events = 0;
    if (r->pub.acks) {
        r->pub.uncommitted += n;
    } else {
        sl_crash_point("commit-before");
    }
    uint64_t at = r->saddr;
    while (n > 0 && reader_record(db, r, &at, &rec)) {
        if (r->soff == 0 && r->pub.acks && reader_push_span(r, r->saddr, rec.len) < 0) {
            break; /* positions stay; the bytes are sent again later */
        }
        uint64_t left = rec.len - r->soff;
        if (n < left) {
            r->soff += n;
            r->shlen = rec.hlen;
            break;
        }
        n -= (size_t)left;
        r->soff = 0;
        r->saddr += rec.hlen + rec.len;
        r->next_lsn = rec.lsn + 1;
        events += rec.nevents;
        if (rec.nevents > 0 && now_ns > rec.first_ns) {
            sl_hist_observe(latency, now_ns - rec.first_ns, rec.nevents);
        }
        reader_normalize(db, r);
        at = r->saddr;
    }
    reader_normalize(db, r);
    if (!r->pub.acks) {
        db->state_dirty = true;
        sl_crash_point("commit-after");
    }
    return events;
}

static void
disk_commit(struct sl_backlog *b, struct sl_backlog_reader *rd, size_t n)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)rd;
    if (n > r->pub.uncommitted) {
        n = r->pub.uncommitted;
    }
    sl_crash_point("commit-before");
    r->pub.uncommitted -= n;
    while (n > 0 && r->scount > 0) {
        struct dspan *sp = &r->spans[r->shead];
        uint64_t left = sp->len - r->coff;
        if (n < left) {
            r->coff += n;
            break;
        }
        n -= (size_t)left;
        r->coff = 0;
        r->shead = (r->shead + 1) % r->scap;
        r->scount--;
    }
    r->caddr = r->scount > 0 ? r->spans[r->shead].addr : r->saddr;
    db->state_dirty = true;
    sl_crash_point("commit-after");
}

/*
 * Another sink takes the reader over (backlog.h rewind): its send position
 * goes back to its committed position, which stays where it is.  That
 * position is a record start (caddr) and the bytes of that record's
 * payload committed: an acknowledging reader's first span's coff, a reader
 * without acks its soff (sent is committed).  The new sink starts there,
 * inside the record when part of it is committed (whole lines: sinks
 * report whole lines, and commits follow them); the persisted position
 * stays the record start, as for any reader (a crash replays the record).
 */
static uint64_t
disk_rewind(struct sl_backlog *b, struct sl_backlog_reader *rd, bool acks)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    struct dreader *r = (struct dreader *)rd;
    uint64_t again = r->pub.uncommitted;
    bool spans = r->pub.acks && r->scount > 0;
    uint64_t at = spans ? r->caddr : r->saddr;
    uint64_t off = spans ? r->coff : r->pub.acks ? 0 : r->soff;
    if (r->pub.unsent == 0) {
        r->pub.oldest_ms = sl_now_ms();
    }
    if (at != r->saddr) {
        r->next_lsn = 0; /* unknown: the gap check starts again at the next record */
    }
    r->saddr = at;
    r->soff = 0;
    r->shlen = 0;
    r->shead = 0;
    r->scount = 0;
    r->coff = 0;
    r->pub.uncommitted = 0;
    r->pub.acks = acks;
    r->caddr = at;
    struct sl_rec rec;
    uint64_t a = at;
    if (off > 0) {
        if (reader_record(db, r, &a, &rec) && a == at && off < rec.len &&
            (!acks || reader_push_span(r, at, rec.len) == 0)) {
            r->soff = off;
            r->shlen = rec.hlen;
            r->coff = acks ? off : 0;
        } else {
            again += off; /* from the record start: its committed head goes again */
        }
    }
    reader_normalize(db, r);
    if (r->scount == 0) {
        r->caddr = r->saddr;
    }
    db->state_dirty = true;
    return again;
}

/* ---- open and free -------------------------------------------------------------------- */

static int
disk_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(buf, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

static int
id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids of NNNNNNNNNNNNNNNN.seg files (sorted), and the highest id of any
 * segment name, set-aside ones included. */
static int
disk_list(struct disk_backlog *db, uint64_t **ids, size_t *nids)
{
    int fd = dup(db->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    size_t cap = 0;
    *ids = NULL;
    *nids = 0;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    rewinddir(d);
    /* The stream is this call's own: readdir's static state is not shared. */
    // cppcheck-suppress readdirCalled
    for (struct dirent *e; (e = readdir(d)) != NULL;) { // NOLINT(concurrency-mt-unsafe)
        char *endp;
        if (strlen(e->d_name) < 20 || strncmp(e->d_name + 16, ".seg", 4) != 0) {
            continue;
        }
        uint64_t id = strtoull(e->d_name, &endp, 16);
        if (endp != e->d_name + 16) {
            continue;
        }
        if (id > db->max_id) {
            db->max_id = id;
        }
        if (e->d_name[20] != '\0') {
            continue; /* NAME.seg.corrupt */
        }
        if (*nids == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            uint64_t *v = realloc(*ids, cap * sizeof(*v));
            if (v == NULL) {
                closedir(d);
                return -1;
            }
            *ids = v;
        }
        (*ids)[(*nids)++] = id;
    }
    closedir(d);
    if (*nids > 1) {
        qsort(*ids, *nids, sizeof(**ids), id_cmp);
    }
    return 0;
}

/* Opens segment id and checks its header; sets it aside if it cannot be
 * used.  Returns 0 (added or set aside) or -1 (out of memory). */
static int
disk_open_seg(struct disk_backlog *db, uint64_t id, bool last)
{
    char name[64];
    uint8_t hdr[SL_SEG_HDR];
    struct sl_seg_header h;
    struct stat stb;
    seg_name(name, sizeof(name), id, "");
    int fd = openat(db->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &stb) < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot be opened (%s)", DISK_ERR(errno));
        if (fd >= 0) {
            close(fd);
        }
        if (disk_set_aside(db, name, why, 0) == 0) {
            sl_counter_add(&db->st->set_aside, 1);
        }
        return 0;
    }
    uint64_t size = (uint64_t)stb.st_size;
    ssize_t got = pread(fd, hdr, sizeof(hdr), 0);
    enum sl_seg_status st =
        got < 0 ? SL_SEG_BAD : sl_seg_header_decode(hdr, (size_t)got, &h);
    if (st == SL_SEG_SHORT && last) {
        /* Created, header not yet whole: nothing in it. */
        close(fd);
        sl_counter_add(&db->st->torn_bytes, size);
        unlinkat(db->dirfd, name, 0);
        return 0;
    }
    if (st == SL_SEG_OK && h.id != id) {
        st = SL_SEG_BAD;
    }
    if (st != SL_SEG_OK) {
        close(fd);
        if (disk_set_aside(db, name,
                           st == SL_SEG_FUTURE ? "is of a newer format version than this sluiced"
                                               : "has a damaged header",
                           size) == 0) {
            sl_counter_add(st == SL_SEG_FUTURE ? &db->st->future : &db->st->set_aside, 1);
        }
        return 0;
    }
    if (disk_add_seg(db, id, h.first_lsn, size, fd) < 0) {
        close(fd);
        return -1;
    }
    return 0;
}

/*
 * The last segment: finds its end by hopping record headers (no payload
 * read) and checks the last records' payloads; cuts a torn tail.
 *
 * With fsync = interval or batch every record is checked whole, and the
 * segment is cut at the first damaged one: only the last segment holds
 * records not yet synced (a rolled segment is synced before the next
 * starts), and a power loss can leave some of them damaged and later ones
 * intact (the kernel writes pages back in any order).  None of them was
 * acknowledged, and the senders still hold them all, but the intact ones'
 * tags would tell a sender that the damaged one's batches are here: they
 * would never come again (tests/integration/check_powerloss.c).  With
 * fsync = none acknowledged records can follow a damaged one: they stay,
 * and readers skip the damage (counted).
 */
static int
disk_scan_tail(struct disk_backlog *db)
{
    struct dseg *s = &db->segs[db->nsegs - 1];
    uint64_t *offs = NULL;
    size_t n = 0, cap = 0;
    uint64_t off = SL_SEG_HDR, lsn = s->first_lsn;
    uint8_t hdr[SL_REC_HDR];
    uint8_t *whole = NULL;
    size_t whole_cap = 0;
    bool check_all = db->cfg.fsync != SL_QUEUE_FSYNC_NONE, damaged = false;
    struct sl_rec rec;
    while (off + SL_REC_HDR <= s->size) {
        if (pread(s->fd, hdr, sizeof(hdr), (off_t)off) != (ssize_t)sizeof(hdr) ||
            sl_rec_header_decode(hdr, sizeof(hdr), &rec) != SL_SEG_OK ||
            off + rec.hlen + rec.len > s->size) {
            break;
        }
        if (check_all) {
            size_t len = rec.hlen + rec.len;
            if (len > whole_cap) {
                uint8_t *nb = realloc(whole, len);
                if (nb == NULL) {
                    free(whole);
                    free(offs);
                    return -1;
                }
                whole = nb;
                whole_cap = len;
            }
            if (pread(s->fd, whole, len, (off_t)off) != (ssize_t)len ||
                sl_rec_decode(whole, len, &rec) != SL_SEG_OK) {
                damaged = off + len < s->size; /* else: the torn last record */
                break;
            }
        }
        if (n == cap) {
            cap = cap == 0 ? 256 : cap * 2;
            uint64_t *v = realloc(offs, cap * sizeof(*v));
            if (v == NULL) {
                free(offs);
                return -1;
            }
            offs = v;
        }
        offs[n++] = off;
        off += rec.hlen + rec.len;
    }
    /* The last records' payloads: a crash mid-write leaves them short. */
    uint8_t *buf = NULL;
    for (size_t k = 0; k < TAIL_CHECK_MAX && n > 0; k++) {
        uint64_t at = offs[n - 1];
        size_t len = (size_t)(off - at);
        uint8_t *nb = realloc(buf, len);
        if (nb == NULL) {
            break;
        }
        buf = nb;
        if (pread(s->fd, buf, len, (off_t)at) == (ssize_t)len &&
            sl_rec_decode(buf, len, &rec) == SL_SEG_OK) {
            lsn = rec.lsn + 1;
            break;
        }
        off = at;
        n--;
    }
    free(buf);
    free(whole);
    free(offs);
    if (off < s->size && damaged) {
        log_warnx("queue \"%s\": segment %016" PRIx64 " in %s: a damaged record at offset %" PRIu64
                  " with records after it: cut %" PRIu64 " byte(s) from there (never synced, "
                  "a power loss: the senders resend what they hold)",
                  sl_queue_name(db->pub.queue), s->id, db->path, off, s->size - off);
    } else if (off < s->size) {
        log_warnx("queue \"%s\": segment %016" PRIx64 " in %s: cut %" PRIu64
                  " torn byte(s) at its end (a write the process did not finish)",
                  sl_queue_name(db->pub.queue), s->id, db->path, s->size - off);
    }
    if (off < s->size) {
        sl_counter_add(&db->st->torn_bytes, s->size - off);
        if (ftruncate(s->fd, (off_t)off) < 0) {
            return -1;
        }
        db->disk_bytes -= s->size - off;
        s->size = off;
    }
    if (lsn > db->next_lsn) {
        db->next_lsn = lsn;
    }
    return 0;
}

/*
 * Every segment's record tags (sl_chunk.tag) into the queue's recovered
 * table: hops record headers (one pread each, no payload read), after the
 * torn tail was cut.  A header that does not check ends that segment's
 * scan (its readers count the damage; a tag past it is not recovered, so
 * what it covered may come again: duplicates, never loss).
 */
static int
disk_scan_tags(struct disk_backlog *db)
{
    uint8_t hdr[SL_REC_HDR_MAX];
    struct sl_rec rec;
    uint64_t tags = 0;
    for (size_t i = 0; i < db->nsegs; i++) {
        struct dseg *s = &db->segs[i];
        uint64_t off = SL_SEG_HDR;
        while (off + SL_REC_HDR <= s->size) {
            size_t want = s->size - off < sizeof(hdr) ? (size_t)(s->size - off) : sizeof(hdr);
            ssize_t got = pread(s->fd, hdr, want, (off_t)off);
            if (got < (ssize_t)SL_REC_HDR ||
                sl_rec_header_decode(hdr, (size_t)got, &rec) != SL_SEG_OK ||
                off + rec.hlen + rec.len > s->size) {
                break;
            }
            if (rec.hlen > SL_REC_HDR) {
                if (sl_rec_tag_decode(hdr, (size_t)got, &rec) != SL_SEG_OK) {
                    break;
                }
                if (sl_queue_tag_recover(db->pub.queue, rec.tag, rec.tag_len, rec.tag_seq) < 0 ||
                    dtag_put(&s->tags, &s->ntags, rec.tag, rec.tag_len, rec.tag_seq) < 0) {
                    return -1;
                }
                tags++;
            }
            off += rec.hlen + rec.len;
        }
    }
    if (tags > 0) {
        log_debug("queue \"%s\": %" PRIu64 " record tag(s) recovered from %s",
                  sl_queue_name(db->pub.queue), tags, db->path);
    }
    return 0;
}

static void
disk_load_state(struct disk_backlog *db)
{
    int fd = openat(db->dirfd, "state", O_RDONLY | O_CLOEXEC);
    struct stat stb;
    const char *why = NULL;
    uint8_t *buf = NULL;
    if (fd < 0) {
        why = errno == ENOENT ? "missing" : DISK_ERR(errno);
    } else if (fstat(fd, &stb) < 0 || stb.st_size == 0) {
        why = "empty";
    } else if (stb.st_size > 16 * 1024 * 1024 || (buf = malloc((size_t)stb.st_size)) == NULL ||
               pread(fd, buf, (size_t)stb.st_size, 0) != stb.st_size ||
               sl_state_decode(buf, (size_t)stb.st_size, &db->loaded) < 0) {
        why = "damaged";
    }
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    if (why == NULL) {
        db->state_ok = true;
        for (size_t i = 0; i < db->loaded.ntags; i++) {
            const struct sl_state_tag *t = &db->loaded.tags[i];
            if (dtag_put(&db->retired, &db->nretired, t->key, t->len, t->seq) < 0 ||
                sl_queue_tag_recover(db->pub.queue, t->key, t->len, t->seq) < 0) {
                log_warnx("queue \"%s\": out of memory keeping the state file's batch tags",
                          sl_queue_name(db->pub.queue));
            }
        }
        if (db->loaded.next_lsn > db->next_lsn) {
            db->next_lsn = db->loaded.next_lsn;
        }
        return;
    }
    if (db->nsegs > 1 || (db->nsegs == 1 && db->segs[0].size > SL_SEG_HDR)) {
        sl_counter_add(&db->st->state_resets, 1);
        log_warnx("queue \"%s\": state file %s/state %s: every sink reads the queue again from "
                  "its oldest record (duplicates, not loss)",
                  sl_queue_name(db->pub.queue), db->path, why);
    }
}

struct sl_backlog *
sl_backlog_disk_open(struct sl_queue *q, const struct sl_backlog_disk_config *cfg, char *why,
                     size_t whylen)
{
    struct disk_backlog *db = calloc(1, sizeof(*db));
    uint64_t *ids = NULL;
    size_t nids = 0;
    if (db == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    sl_crash_init();
    db->pub.ops = NULL;
    db->pub.queue = q;
    db->cfg = *cfg;
    db->dirfd = db->lockfd = -1;
    db->next_lsn = 1;
    db->warn_rl.interval_ms = 10000;
    db->st = sl_queue_disk_stats(q);
    db->path = strdup(cfg->path);
    uint64_t chunk = SL_REC_HDR_MAX + sl_queue_chunk_bytes(q);
    if (db->cfg.segment_bytes == 0) {
        db->cfg.segment_bytes = cfg->max_size / 16;
        if (db->cfg.segment_bytes > SEG_MAX_BYTES) {
            db->cfg.segment_bytes = SEG_MAX_BYTES;
        }
    }
    if (db->cfg.segment_bytes < SL_SEG_HDR + 4 * chunk) {
        db->cfg.segment_bytes = SL_SEG_HDR + 4 * chunk;
    }
    if (db->path == NULL) {
        snprintf(why, whylen, "out of memory");
        goto err;
    }
    if (cfg->max_size < 2 * db->cfg.segment_bytes) {
        snprintf(why, whylen, "max_size (%" PRIu64 " bytes) must hold at least two segments of "
                 "%" PRIu64 " bytes (4 chunks each)", cfg->max_size, db->cfg.segment_bytes);
        goto err;
    }
    if (disk_mkdirs(db->path) < 0 ||
        (db->dirfd = open(db->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(why, whylen, "directory %s: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    db->lockfd = openat(db->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (db->lockfd < 0) {
        snprintf(why, whylen, "%s/lock: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    if (flock(db->lockfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(why, whylen,
                 errno == EWOULDBLOCK
                     ? "directory %s is in use by another process (it holds %s/lock), or by "
                       "another queue of this config; one queue per directory"
                     : "%s: cannot lock %s/lock",
                 db->path, db->path);
        goto err;
    }
    if (disk_list(db, &ids, &nids) < 0) {
        snprintf(why, whylen, "directory %s: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    for (size_t i = 0; i < nids; i++) {
        if (disk_open_seg(db, ids[i], i + 1 == nids) < 0) {
            snprintf(why, whylen, "out of memory");
            goto err;
        }
    }
    free(ids);
    ids = NULL;
    if (db->nsegs > 0 && disk_scan_tail(db) < 0) {
        snprintf(why, whylen, "%s: cannot read its last segment: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    /* What a killed process wrote is in the page cache, not necessarily on
     * the disk: sync it before anything recovered is taken as durable (an
     * ACK for a recovered batch, synced_to below).  Earlier segments were
     * synced when they were rolled. */
    if (db->nsegs > 0 && cfg->fsync != SL_QUEUE_FSYNC_NONE &&
        fdatasync(db->segs[db->nsegs - 1].fd) < 0) {
        snprintf(why, whylen, "%s: cannot sync its last segment: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    if (disk_scan_tags(db) < 0) {
        snprintf(why, whylen, "out of memory");
        goto err;
    }
    struct statvfs vfs;
    if (fstatvfs(db->dirfd, &vfs) < 0) {
        snprintf(why, whylen, "%s: statvfs: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize + db->disk_bytes;
    if (avail < cfg->max_size) {
        snprintf(why, whylen,
                 "max_size (%" PRIu64 " bytes) is more than the filesystem of %s can hold: %" PRIu64
                 " bytes free plus %" PRIu64 " in the queue's segments",
                 cfg->max_size, db->path, (uint64_t)vfs.f_bavail * vfs.f_frsize, db->disk_bytes);
        goto err;
    }
    disk_load_state(db);
    if (db->nsegs == 0 && disk_roll(db) < 0) {
        snprintf(why, whylen, "%s: cannot create a segment: %s", db->path, DISK_ERR(errno));
        goto err;
    }
    if (cfg->fsync == SL_QUEUE_FSYNC_INTERVAL && syncer_start(&db->syncer, db->dirfd, db->st) < 0) {
        snprintf(why, whylen, "cannot start its sync thread");
        goto err;
    }
    db->end = db->segs[db->nsegs - 1].base + db->segs[db->nsegs - 1].size;
    db->trusted_from = db->end;
    db->synced_to = db->end;
    db->last_sync_ms = db->last_state_ms = sl_now_ms();
    atomic_store(&db->st->on, true);
    sl_counter_set(&db->st->max_bytes, cfg->max_size);
    disk_stats_segments(db);
    log_info("queue \"%s\": disk queue in %s: %zu segment(s), %" PRIu64 " byte(s)",
             sl_queue_name(q), db->path, db->nsegs, db->disk_bytes);
    static const struct sl_backlog_ops disk_ops = {
        .kind = "disk",
        .persistent = true,
        .pinned = false,
        .add_reader = disk_add_reader,
        .add_reader_live = disk_add_reader_live,
        .remove_reader = disk_remove_reader,
        .append = disk_append,
        .peek = disk_peek,
        .replaying = disk_replaying,
        .sent = disk_sent,
        .commit = disk_commit,
        .rewind = disk_rewind,
        .poll = disk_poll,
        .set_blob = disk_set_blob,
        .get_blob = disk_get_blob,
        .save = disk_save,
        .free = disk_free,
    };
    db->pub.ops = &disk_ops;
    return &db->pub;
err:
    free(ids);
    disk_free(&db->pub);
    return NULL;
}

static void
disk_free(struct sl_backlog *b)
{
    struct disk_backlog *db = (struct disk_backlog *)b;
    if (db == NULL) {
        return;
    }
    syncer_stop(&db->syncer); /* a sync still out finishes first */
    if (b->ops != NULL && db->nsegs > 0) {
        /* A clean stop: what is pending is written if it can be, synced,
         * and the positions saved. */
        if (db->npend > 0 && disk_write_pending(db) < 0) {
            log_warnx("queue \"%s\": %zu chunk(s) could not be written to %s at stop: lost",
                      sl_queue_name(b->queue), db->npend, db->path);
        }
        for (size_t i = 0; i < db->npend; i++) {
            sl_queue_release(b->queue, db->pend[i]);
        }
        if (db->cfg.fsync != SL_QUEUE_FSYNC_NONE) {
            disk_sync(db, sl_now_ms());
        }
        if (db->nreaders > 0) {
            disk_gc(db, sl_now_ms());
            (void)disk_save_state(db);
        }
    }
    for (size_t i = 0; i < db->nsegs; i++) {
        close(db->segs[i].fd);
        free(db->segs[i].tags);
    }
    free(db->retired);
    for (size_t j = 0; j < db->nreaders; j++) {
        free(db->readers[j]->name);
        free(db->readers[j]->buf);
        free(db->readers[j]->spans);
        free(db->readers[j]->blob);
        free(db->readers[j]);
    }
    sl_state_fini(&db->loaded);
    if (db->lockfd >= 0) {
        close(db->lockfd);
    }
    if (db->dirfd >= 0) {
        close(db->dirfd);
    }
    free(db->readers);
    free(db->segs);
    free(db->path);
    free(db);
}

int
sl_backlog_disk_set_fsync_interval(struct sl_backlog *b, uint64_t ms)
{
    if (b == NULL || strcmp(b->ops->kind, "disk") != 0 || ms == 0) {
        return -1;
    }
    struct disk_backlog *db = (struct disk_backlog *)b;
    db->cfg.fsync_interval_ms = ms; /* poll reads it (this thread): the next one applies it */
    return 0;
}

int
sl_backlog_disk_set_max_size(struct sl_backlog *b, uint64_t bytes, char *why, size_t whylen)
{
    if (b == NULL || strcmp(b->ops->kind, "disk") != 0) {
        snprintf(why, whylen, "not a disk queue");
        return -1;
    }
    struct disk_backlog *db = (struct disk_backlog *)b;
    /* As at open: two segments of the size it was opened with (segments
     * keep their size; only the bound moves), and a filesystem that can
     * hold it.  Lowered below what the segments hold: appends wait (as
     * when full, poll deletes what is committed); nothing is deleted. */
    if (bytes < 2 * db->cfg.segment_bytes) {
        snprintf(why, whylen,
                 "max_size (%" PRIu64 " bytes) must hold at least two segments of %" PRIu64
                 " bytes (their size is fixed when the queue opens)",
                 bytes, db->cfg.segment_bytes);
        return -1;
    }
    struct statvfs vfs;
    if (bytes > db->cfg.max_size) {
        if (fstatvfs(db->dirfd, &vfs) < 0) {
            snprintf(why, whylen, "%s: statvfs: %s", db->path, DISK_ERR(errno));
            return -1;
        }
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize + db->disk_bytes;
        if (avail < bytes) {
            snprintf(why, whylen,
                     "max_size (%" PRIu64 " bytes) is more than the filesystem of %s can hold: "
                     "%" PRIu64 " bytes free plus %" PRIu64 " in the queue's segments",
                     bytes, db->path, (uint64_t)vfs.f_bavail * vfs.f_frsize, db->disk_bytes);
            return -1;
        }
    }
    db->cfg.max_size = bytes; /* append and poll read it (this thread) */
    sl_counter_set(&db->st->max_bytes, bytes);
    return 0;
}
