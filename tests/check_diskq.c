/*
 * Unit tests for the disk queue: the record/segment/state formats
 * (segment.h) and the disk backlog (backlog_disk.c) over a temp directory:
 * append / peek / sent / commit, restart, and every kind of damage the
 * backlog must survive (torn tail, flipped bytes in a middle segment, a
 * truncated last record, an empty state file, a deleted middle segment, a
 * segment of a future version): each opens, counts, and delivers the rest.
 *
 * Every chunk carries numbered lines ("<n>\n"); a reader's output is parsed
 * back so a test states exactly which numbers arrived.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "queue/segment.h"
#include "sluice/backlog.h"
#include "sluice/clock.h"
#include "sluice/queue.h"

#define CHUNK 4096
#define LINES_PER_CHUNK 100

/* ---- formats -------------------------------------------------------------------------- */

START_TEST(test_record_roundtrip_and_damage)
{
    uint8_t buf[SL_REC_HDR + 16];
    struct sl_rec r = {.len = 6, .nevents = 2, .lsn = 77, .first_ns = 123456789}, d;
    memcpy(buf + SL_REC_HDR, "a\nbb\n\n", 6);
    sl_rec_header_encode(buf, &r, buf + SL_REC_HDR);
    ck_assert_int_eq(sl_rec_decode(buf, SL_REC_HDR + 6, &d), SL_SEG_OK);
    /* The checksums are zlib's crc32 values, whatever code computes them. */
    uint32_t hcrc = (uint32_t)crc32(0L, buf, 32), pcrc = (uint32_t)crc32(0L, buf + SL_REC_HDR, 6);
    ck_assert_mem_eq(buf + 32, ((uint8_t[4]){hcrc, hcrc >> 8, hcrc >> 16, hcrc >> 24}), 4);
    ck_assert_mem_eq(buf + 36, ((uint8_t[4]){pcrc, pcrc >> 8, pcrc >> 16, pcrc >> 24}), 4);
    ck_assert_uint_eq(d.len, 6);
    ck_assert_uint_eq(d.nevents, 2);
    ck_assert_uint_eq(d.lsn, 77);
    ck_assert_uint_eq(d.first_ns, 123456789);
    /* Short: the header alone, or less. */
    ck_assert_int_eq(sl_rec_decode(buf, SL_REC_HDR + 5, &d), SL_SEG_SHORT);
    ck_assert_int_eq(sl_rec_decode(buf, 10, &d), SL_SEG_SHORT);
    /* A flipped payload byte, a flipped header byte. */
    buf[SL_REC_HDR + 2] ^= 0x20;
    ck_assert_int_eq(sl_rec_decode(buf, SL_REC_HDR + 6, &d), SL_SEG_BAD);
    ck_assert_int_eq(sl_rec_header_decode(buf, SL_REC_HDR + 6, &d), SL_SEG_OK);
    buf[SL_REC_HDR + 2] ^= 0x20;
    buf[9] ^= 1;
    ck_assert_int_eq(sl_rec_header_decode(buf, SL_REC_HDR + 6, &d), SL_SEG_BAD);
    buf[9] ^= 1;
    /* Resync finds the next magic. */
    uint8_t two[2 * (SL_REC_HDR + 6) + 3];
    memset(two, 'x', 3);
    memcpy(two + 3, buf, SL_REC_HDR + 6);
    ck_assert_uint_eq(sl_rec_resync(two, sizeof(two)), 3);
    ck_assert_uint_eq(sl_rec_resync(two + 3, SL_REC_HDR + 6), SL_REC_HDR + 6);
}
END_TEST

/* A tagged record (segment.h, "Tag"): the tag round-trips, sits between
 * the fixed header and the payload, and has its own checksum. */
START_TEST(test_record_tag_roundtrip)
{
    uint8_t buf[SL_REC_HDR_MAX + 16];
    const char key[] = "edges\0chaos-edge";
    struct sl_rec r = {.len = 6, .nevents = 2, .lsn = 5, .tag_len = sizeof(key) - 1,
                       .tag_seq = 4242, .tag = (const uint8_t *)key},
                  d;
    size_t hlen = sl_rec_header_encode(buf, &r, "a\nbb\n\n");
    ck_assert_uint_eq(hlen, SL_REC_HDR + 14 + sizeof(key) - 1);
    ck_assert_uint_eq(r.hlen, hlen);
    memcpy(buf + hlen, "a\nbb\n\n", 6);
    ck_assert_int_eq(sl_rec_decode(buf, hlen + 6, &d), SL_SEG_OK);
    ck_assert_uint_eq(d.hlen, hlen);
    ck_assert_uint_eq(d.len, 6);
    ck_assert_uint_eq(d.tag_len, sizeof(key) - 1);
    ck_assert_mem_eq(d.tag, key, sizeof(key) - 1);
    ck_assert_uint_eq(d.tag_seq, 4242);
    /* The fixed part alone is enough to hop over the record. */
    ck_assert_int_eq(sl_rec_header_decode(buf, SL_REC_HDR, &d), SL_SEG_OK);
    ck_assert_uint_eq(d.hlen, hlen);
    ck_assert_uint_eq(d.tag_len, 0);
    ck_assert_int_eq(sl_rec_tag_decode(buf, hlen - 1, &d), SL_SEG_SHORT);
    ck_assert_int_eq(sl_rec_decode(buf, hlen + 5, &d), SL_SEG_SHORT);
    /* A flipped tag byte: the tag's crc catches it, the header's does not. */
    buf[SL_REC_HDR + 4] ^= 1;
    ck_assert_int_eq(sl_rec_header_decode(buf, hlen + 6, &d), SL_SEG_OK);
    ck_assert_int_eq(sl_rec_tag_decode(buf, hlen + 6, &d), SL_SEG_BAD);
    ck_assert_int_eq(sl_rec_decode(buf, hlen + 6, &d), SL_SEG_BAD);
    buf[SL_REC_HDR + 4] ^= 1;
    /* A header length that does not match the tag length is damage. */
    buf[SL_REC_HDR] ^= 1;
    ck_assert_int_eq(sl_rec_decode(buf, hlen + 6, &d), SL_SEG_BAD);
}
END_TEST

START_TEST(test_segment_header_versions)
{
    uint8_t h[SL_SEG_HDR];
    struct sl_seg_header d;
    sl_seg_header_encode(h, 0x2a, 1000);
    ck_assert_int_eq(sl_seg_header_decode(h, sizeof(h), &d), SL_SEG_OK);
    ck_assert_uint_eq(d.id, 0x2a);
    ck_assert_uint_eq(d.first_lsn, 1000);
    ck_assert_int_eq(sl_seg_header_decode(h, 31, &d), SL_SEG_SHORT);
    h[17] ^= 4;
    ck_assert_int_eq(sl_seg_header_decode(h, sizeof(h), &d), SL_SEG_BAD);
}
END_TEST

START_TEST(test_state_roundtrip)
{
    uint8_t blob[3] = {1, 2, 3};
    struct sl_state_reader rs[2] = {
        {.name = "out", .seg = 5, .off = 4096},
        {.name = "fwd", .seg = 6, .off = 32, .blob = blob, .blob_len = 3},
    };
    struct sl_state s = {.next_lsn = 99, .readers = rs, .nreaders = 2}, d;
    size_t n = sl_state_size(&s);
    uint8_t *buf = malloc(n);
    sl_state_encode(&s, buf);
    ck_assert_int_eq(sl_state_decode(buf, n, &d), 0);
    ck_assert_uint_eq(d.next_lsn, 99);
    ck_assert_uint_eq(d.nreaders, 2);
    ck_assert_str_eq(d.readers[1].name, "fwd");
    ck_assert_uint_eq(d.readers[1].seg, 6);
    ck_assert_uint_eq(d.readers[1].off, 32);
    ck_assert_uint_eq(d.readers[1].blob_len, 3);
    ck_assert_mem_eq(d.readers[1].blob, blob, 3);
    sl_state_fini(&d);
    for (size_t cut = 0; cut < n; cut++) {
        ck_assert_int_eq(sl_state_decode(buf, cut, &d), -1);
    }
    buf[10] ^= 1;
    ck_assert_int_eq(sl_state_decode(buf, n, &d), -1);
    free(buf);
    /* Version 2: retired tags after the readers. */
    struct sl_state_tag ts[2] = {{.key = (uint8_t *)"a\0x", .len = 3, .seq = 7},
                                 {.key = (uint8_t *)"b", .len = 1, .seq = 1ull << 40}};
    s.tags = ts;
    s.ntags = 2;
    n = sl_state_size(&s);
    buf = malloc(n);
    sl_state_encode(&s, buf);
    ck_assert_uint_eq(buf[4], 2);
    ck_assert_int_eq(sl_state_decode(buf, n, &d), 0);
    ck_assert_uint_eq(d.nreaders, 2);
    ck_assert_uint_eq(d.ntags, 2);
    ck_assert_uint_eq(d.tags[0].len, 3);
    ck_assert_mem_eq(d.tags[0].key, "a\0x", 3);
    ck_assert_uint_eq(d.tags[1].seq, 1ull << 40);
    sl_state_fini(&d);
    for (size_t cut = 0; cut < n; cut++) {
        ck_assert_int_eq(sl_state_decode(buf, cut, &d), -1);
    }
    free(buf);
}
END_TEST

/* ---- the backlog ---------------------------------------------------------------------- */

struct fx {
    char dir[64];
    struct sl_queue *q;
    struct sl_backlog *b;
    struct sl_backlog_reader *r;
    uint64_t next; /* the next line number pushed */
    uint64_t now;  /* fake CLOCK_MONOTONIC ms for append and poll */
    char *got;     /* bytes read so far */
    size_t ngot;
    enum sl_queue_fsync fsync;
    uint64_t max_size;
    uint64_t interval_ms; /* fsync_interval: 100 unless a test sets it before fx_reopen */
    uint64_t seg_bytes;   /* segment_bytes: a few chunks unless a test sets it */
};

static struct sl_backlog *
fx_open(struct fx *f, char *why, size_t whylen)
{
    struct sl_backlog_disk_config dc = {
        .path = f->dir,
        .max_size = f->max_size,
        .fsync = f->fsync,
        .fsync_interval_ms = f->interval_ms != 0 ? f->interval_ms : 100,
        .segment_bytes = f->seg_bytes != 0 ? f->seg_bytes
                                           : 5 * (SL_REC_HDR + CHUNK), /* a few chunks a segment */
    };
    return sl_backlog_disk_open(f->q, &dc, why, whylen);
}

static void
fx_reopen(struct fx *f, bool acks)
{
    char why[512] = "";
    f->b = fx_open(f, why, sizeof(why));
    ck_assert_msg(f->b != NULL, "open: %s", why);
    f->r = f->b->ops->add_reader(f->b, "out", acks);
    ck_assert_ptr_nonnull(f->r);
}

static void
fx_init(struct fx *f, enum sl_queue_fsync fsync)
{
    memset(f, 0, sizeof(*f));
    strcpy(f->dir, "/tmp/check_diskq.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    f->q = sl_queue_new("q", 16 * CHUNK, CHUNK);
    f->next = 1;
    f->now = 1000;
    f->fsync = fsync;
    f->max_size = 64 * 1024 * 1024;
    fx_reopen(f, false);
}

static void
fx_close(struct fx *f)
{
    if (f->b != NULL) {
        f->b->ops->free(f->b);
        f->b = NULL;
    }
}

static void
fx_fini(struct fx *f)
{
    char cmd[128];
    fx_close(f);
    sl_queue_free(f->q);
    free(f->got);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Pushes nchunks chunks of LINES_PER_CHUNK numbered lines and appends them. */
static void
fx_push(struct fx *f, int nchunks)
{
    for (int i = 0; i < nchunks; i++) {
        struct sl_chunk *c = sl_queue_acquire(f->q, SL_ACQUIRE_UDP);
        ck_assert_ptr_nonnull(c);
        for (int k = 0; k < LINES_PER_CHUNK; k++) {
            /* 40-byte lines: 100 fill a 4 KiB chunk, 5 chunks a segment. */
            int n = snprintf(c->data + c->len, c->cap - c->len, "%-39llu\n",
                             (unsigned long long)f->next++);
            c->len += (size_t)n;
            c->nevents++;
        }
        sl_queue_push(f->q, c);
        /* Append as the writer does; every chunk back in the pool at once. */
        ck_assert_uint_eq(f->b->ops->append(f->b, 64, f->now), 1);
        ck_assert_uint_eq(sl_queue_in_use(f->q), 0);
    }
}

/* fx_push, every chunk tagged (key, seq = its line number at the end). */
static void
fx_push_tagged(struct fx *f, int nchunks, const char *key, size_t klen)
{
    for (int i = 0; i < nchunks; i++) {
        struct sl_chunk *c = sl_queue_acquire(f->q, SL_ACQUIRE_UDP);
        ck_assert_ptr_nonnull(c);
        ck_assert_uint_eq(c->tag_len, 0);
        for (int k = 0; k < LINES_PER_CHUNK; k++) {
            int n = snprintf(c->data + c->len, c->cap - c->len, "%-39llu\n",
                             (unsigned long long)f->next++);
            c->len += (size_t)n;
            c->nevents++;
        }
        memcpy(c->tag, key, klen);
        c->tag_len = (uint16_t)klen;
        c->tag_seq = f->next - 1;
        sl_queue_push(f->q, c);
        ck_assert_uint_eq(f->b->ops->append(f->b, 64, f->now), 1);
    }
}

/* Reads up to max bytes (everything: SIZE_MAX) through peek + sent. */
static void
fx_read(struct fx *f, size_t max)
{
    struct sl_hist h = {0};
    while (f->r->unsent > 0 && max > 0) {
        struct iovec iov[64];
        size_t total = 0;
        int n = f->b->ops->peek(f->b, f->r, iov, 64, 1 << 20, &total);
        if (n == 0) {
            break;
        }
        size_t take = 0;
        for (int i = 0; i < n && take < max; i++) {
            size_t k = iov[i].iov_len < max - take ? iov[i].iov_len : max - take;
            f->got = realloc(f->got, f->ngot + k + 1);
            memcpy(f->got + f->ngot, iov[i].iov_base, k);
            f->ngot += k;
            take += k;
        }
        f->got[f->ngot] = '\0';
        f->b->ops->sent(f->b, f->r, take, 0, &h);
        max -= take;
    }
}

/* Counts which line numbers [1, upto) arrived: *missing, *dups. */
static void
fx_tally(const struct fx *f, uint64_t upto, uint64_t *missing, uint64_t *dups)
{
    unsigned *seen = calloc(upto, sizeof(*seen));
    *missing = *dups = 0;
    for (const char *p = f->got; p != NULL && *p != '\0';) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        ck_assert_msg((*end == ' ' || *end == '\n') && v > 0 && v < upto,
                      "damaged line at %td", p - f->got);
        end = strchr(end, '\n');
        ck_assert_ptr_nonnull(end);
        ck_assert_int_eq(end - p, 39);
        seen[v]++;
        p = end + 1;
    }
    for (uint64_t v = 1; v < upto; v++) {
        *missing += seen[v] == 0;
        *dups += seen[v] > 1 ? seen[v] - 1 : 0;
    }
    free(seen);
}

/* Reads everything left and checks which numbers arrived: exactly
 * `missing` lost and `dups` seen again. */
static void
fx_expect(struct fx *f, uint64_t missing, uint64_t dups)
{
    uint64_t m, d;
    fx_read(f, SIZE_MAX);
    fx_tally(f, f->next, &m, &d);
    ck_assert_uint_eq(m, missing);
    ck_assert_uint_eq(d, dups);
}

static struct sl_queue_disk_stats *
fx_stats(struct fx *f)
{
    return sl_queue_disk_stats(f->q);
}

static void
fx_path(const struct fx *f, char *buf, size_t len, uint64_t seg)
{
    snprintf(buf, len, "%s/%016llx.seg", f->dir, (unsigned long long)seg);
}

static int
fx_nsegs(const struct fx *f)
{
    DIR *d = opendir(f->dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        n += l > 4 && strcmp(e->d_name + l - 4, ".seg") == 0;
    }
    closedir(d);
    return n;
}

START_TEST(test_append_peek_sent)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_BATCH);
    fx_push(&f, 3);
    ck_assert_uint_gt(f.r->unsent, 0);
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 3); /* batch: synced before seen */
    fx_expect(&f, 0, 0);
    ck_assert_uint_eq(f.r->unsent, 0);
    fx_fini(&f);
}
END_TEST

/* fsync = interval with someone waiting on the durable position (a relp
 * or sluice source holding an acknowledgement): the sync starts at once,
 * not at the interval (group commit).  Without a watcher it waits. */
START_TEST(test_interval_syncs_early_for_watcher)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_INTERVAL);
    fx_close(&f);
    f.interval_ms = 60000; /* far beyond the test's deadline */
    fx_reopen(&f, false);
    f.now = sl_now_ms();
    fx_push(&f, 1);
    for (int i = 0; i < 3; i++) {
        f.b->ops->poll(f.b, sl_now_ms());
    }
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 0); /* no watcher: the interval holds */

    sl_queue_watch_durable(f.q, 1);
    ck_assert(sl_queue_take_durable_kick(f.q)); /* the writer is told to poll */
    ck_assert(!sl_queue_take_durable_kick(f.q));
    uint64_t deadline = sl_now_ms() + 10000;
    while (sl_queue_durable_seq(f.q) < 1 && sl_now_ms() < deadline) {
        uint64_t due = f.b->ops->poll(f.b, sl_now_ms());
        if (sl_queue_durable_seq(f.q) < 1) {
            ck_assert_uint_le(due, 5); /* looks again soon, not at the interval */
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL); /* the sync thread's fdatasync is real I/O */
    }
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 1);
    sl_queue_watch_durable(f.q, -1);
    fx_fini(&f);
}
END_TEST

/* Polls the backlog (at its clock f->now) until done(f) or 10 s: the sync
 * thread's fdatasync calls are real I/O. */
static void
fx_poll_until(struct fx *f, bool (*done)(const struct fx *))
{
    uint64_t deadline = sl_now_ms() + 10000;
    while (!done(f) && sl_now_ms() < deadline) {
        f->b->ops->poll(f->b, f->now);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static bool
fx_durable_any(const struct fx *f)
{
    return sl_queue_durable_seq(f->q) > 0;
}

static bool
fx_one_segment(const struct fx *f)
{
    return fx_nsegs(f) == 1;
}

/* fsync = interval, no watcher, an interval far beyond the test: a sync
 * starts anyway once a quarter of the segment being written (here 4 MiB
 * of a 16 MiB segment) is unsynced, so a roll's own sync has little left;
 * not before. */
START_TEST(test_interval_syncs_early_at_quarter_segment)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_INTERVAL);
    fx_close(&f);
    f.interval_ms = 60000;
    f.seg_bytes = 16 * 1024 * 1024;
    fx_reopen(&f, false);
    f.now = sl_now_ms();
    fx_push(&f, 64); /* 256 KiB */
    for (int i = 0; i < 3; i++) {
        f.b->ops->poll(f.b, sl_now_ms());
    }
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 0); /* under a quarter: the interval holds */
    fx_push(&f, 4 * 256);                            /* now over 4 MiB */
    fx_poll_until(&f, fx_durable_any);
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 64 + 4 * 256);
    fx_fini(&f);
}
END_TEST

/* fsync = interval: the sync thread writes the state file and then deletes
 * the segments every reader is past (the writer does not wait); a restart
 * finds the positions it wrote. */
START_TEST(test_interval_state_and_gc_on_sync_thread)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_INTERVAL);
    fx_push(&f, 20); /* 5 chunks a segment: 4+ segments */
    ck_assert_int_ge(fx_nsegs(&f), 4);
    fx_read(&f, SIZE_MAX);
    f.now += 1000;
    f.b->ops->poll(f.b, f.now);
    fx_poll_until(&f, fx_one_segment);
    ck_assert_int_eq(fx_nsegs(&f), 1);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/state", f.dir);
    ck_assert_int_eq(access(p, F_OK), 0);
    /* A restart: every position kept, nothing read twice. */
    fx_close(&f);
    fx_reopen(&f, false);
    fx_expect(&f, 0, 0); /* nothing again, nothing missing */
    fx_push(&f, 3);
    fx_expect(&f, 0, 0);
    fx_fini(&f);
}
END_TEST

START_TEST(test_acks_commit_and_restart)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_INTERVAL);
    fx_close(&f);
    fx_reopen(&f, true); /* an acknowledging reader */
    fx_push(&f, 4);
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 0); /* interval: not synced yet */
    /* The sync runs on the backlog's sync thread: poll until it is taken
     * (deadline 10 s). */
    f.now += 1000;
    for (int i = 0; i < 10000 && sl_queue_durable_seq(f.q) < 4; i++) {
        f.b->ops->poll(f.b, f.now++);
        if (sl_queue_durable_seq(f.q) < 4) {
            usleep(1000);
        }
    }
    ck_assert_uint_eq(sl_queue_durable_seq(f.q), 4);
    fx_read(&f, SIZE_MAX);
    ck_assert_uint_eq(f.r->uncommitted, f.ngot);
    /* Commit the first 1.5 chunks: the restart replays from the second. */
    size_t first = strlen(f.got) / 4;
    f.b->ops->commit(f.b, f.r, first + first / 2);
    fx_close(&f);
    free(f.got);
    f.got = NULL;
    f.ngot = 0;
    fx_reopen(&f, true);
    fx_expect(&f, LINES_PER_CHUNK, 0);
    fx_fini(&f);
}
END_TEST

/*
 * rewind (another sink takes the reader over: a reload's hand-over on a
 * disk queue): an acknowledging reader that sent 4 chunks and had 1.5 of
 * them committed goes back to the committed position, inside the second
 * record, and becomes a reader without acks: what it sent and had not had
 * committed is unsent again (counted), the committed lines are not read
 * again.  Then the other way, from inside a record a reader without acks
 * sent half of: the new acknowledging reader goes on from there, its
 * commits end in the state, and a restart replays nothing.
 */
START_TEST(test_rewind_to_committed)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_BATCH);
    fx_close(&f);
    fx_reopen(&f, true);
    fx_push(&f, 4);
    fx_read(&f, SIZE_MAX);
    size_t chunk = f.ngot / 4, done = chunk + chunk / 2;
    f.b->ops->commit(f.b, f.r, done);
    uint64_t again = f.b->ops->rewind(f.b, f.r, false);
    ck_assert_uint_eq(again, f.ngot - done);
    ck_assert_uint_eq(f.r->uncommitted, 0);
    ck_assert_uint_ge(f.r->unsent, f.ngot - done); /* and the records' headers */
    ck_assert(!f.r->acks);
    free(f.got);
    f.got = NULL;
    f.ngot = 0;
    fx_read(&f, SIZE_MAX);
    uint64_t missing, dups;
    fx_tally(&f, f.next, &missing, &dups);
    ck_assert_uint_eq(missing, 150); /* lines 1..150: committed, not read again */
    ck_assert_uint_eq(dups, 0);
    ck_assert_int_eq(atoi(f.got), 151);
    /* Half a chunk sent without acks, then an acknowledging reader. */
    fx_push(&f, 1);
    free(f.got);
    f.got = NULL;
    f.ngot = 0;
    fx_read(&f, chunk / 2);
    ck_assert_uint_eq(f.b->ops->rewind(f.b, f.r, true), 0);
    ck_assert(f.r->acks);
    ck_assert_uint_eq(f.r->unsent, chunk - chunk / 2);
    fx_read(&f, SIZE_MAX);
    ck_assert_uint_eq(f.ngot, chunk);
    ck_assert_uint_eq(f.r->uncommitted, chunk - chunk / 2);
    f.b->ops->commit(f.b, f.r, f.r->uncommitted);
    ck_assert_uint_eq(f.r->uncommitted, 0);
    fx_tally(&f, f.next, &missing, &dups);
    ck_assert_uint_eq(missing, 400);
    ck_assert_uint_eq(dups, 0);
    fx_close(&f);
    fx_reopen(&f, true);
    ck_assert_uint_eq(f.r->unsent, 0);
    fx_fini(&f);
}
END_TEST

START_TEST(test_restart_reopen_and_gc)
{
    struct fx f;
    fx_init(&f, SL_QUEUE_FSYNC_NONE);
    fx_push(&f, 20); /* 5 chunks a segment: 4+ segments */
    ck_assert_int_ge(fx_nsegs(&f), 4);
    fx_read(&f, 40 * (7 * LINES_PER_CHUNK + 50)); /* 7.5 chunks, at a line end */
    fx_close(&f); /* clean stop: positions saved, read segments deleted */
    ck_assert_int_lt(fx_nsegs(&f), 4);
    fx_reopen(&f, false);
    /* The half-read chunk comes again whole: its 50 lines read are the
     * only duplicates (positions are record starts). */
    fx_expect(&f, 0, 50);
    /* Everything read: after an interval every segment but the last goes. */
    f.now += 1000;
    f.b->ops->poll(f.b, f.now);
    ck_assert_int_eq(fx_nsegs(&f), 1);
    fx_fini(&f);
}
END_TEST

/* Writes len bytes of garbage/edits into a file at off. */
static void
poke(const char *path, off_t off, const void *p, size_t len)
{
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, p, len, off), (ssize_t)len);
    close(fd);
}

static off_t
file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

/* Where the second record of segment file p starts; *hlen: the first
 * record's header length. */
static off_t
second_record(const char *p, size_t *hlen)
{
    uint8_t hdr[SL_REC_HDR_MAX];
    struct sl_rec r;
    int fd = open(p, O_RDONLY);
    ck_assert_int_ge(pread(fd, hdr, sizeof(hdr), SL_SEG_HDR), (ssize_t)SL_REC_HDR);
    close(fd);
    ck_assert_int_eq(sl_rec_header_decode(hdr, sizeof(hdr), &r), SL_SEG_OK);
    *hlen = r.hlen;
    return SL_SEG_HDR + (off_t)r.hlen + (off_t)r.len;
}

/* A closed queue of nchunks chunks (fsync = none) and, in p, the path of
 * its segment seg: what each damage case starts from. */
static void
fx_written(struct fx *f, int nchunks, uint64_t seg, char *p, size_t plen)
{
    fx_init(f, SL_QUEUE_FSYNC_NONE);
    fx_push(f, nchunks);
    fx_close(f);
    fx_path(f, p, plen, seg);
}

/*
 * The duplicate filter's part of the disk queue: tags written in the
 * chunks' records are found again at open (sl_queue_tag_recovered), the
 * highest per key, across segments, whatever the state file says; the
 * records read back exactly as written (the tag is not payload); a tag in
 * a torn last record is not recovered (its chunk is cut with it).
 */
START_TEST(test_tags_recovered_at_open)
{
    struct fx f;
    char p[128];
    const char a[] = "edges\0one", b[] = "edges\0two";
    fx_init(&f, SL_QUEUE_FSYNC_BATCH);
    fx_push_tagged(&f, 7, a, sizeof(a) - 1); /* over two segments */
    fx_push(&f, 2);                          /* untagged in between */
    fx_push_tagged(&f, 2, b, sizeof(b) - 1);
    uint64_t a_seq = 7 * LINES_PER_CHUNK, b_seq = f.next - 1;
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, a, sizeof(a) - 1), 0); /* open-time only */
    /* A crash: the state file is not written again, the queue object is new. */
    f.b->ops->free(f.b);
    f.b = NULL;
    sl_queue_free(f.q);
    f.q = sl_queue_new("q", 16 * CHUNK, CHUNK);
    ck_assert_int_eq(unlink((snprintf(p, sizeof(p), "%s/state", f.dir), p)), 0);
    fx_reopen(&f, false);
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, a, sizeof(a) - 1), a_seq);
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, b, sizeof(b) - 1), b_seq);
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, "edges", 5), 0);
    fx_expect(&f, 0, 0);
    /* A torn last record: its tag goes with it. */
    const char c[] = "edges\0three";
    fx_push_tagged(&f, 1, c, sizeof(c) - 1);
    uint64_t seg = 0;
    for (uint64_t id = 1; id < 64; id++) {
        struct stat st;
        fx_path(&f, p, sizeof(p), id);
        if (stat(p, &st) == 0) {
            seg = id;
        }
    }
    ck_assert_uint_gt(seg, 0);
    fx_close(&f);
    fx_path(&f, p, sizeof(p), seg);
    ck_assert_int_eq(truncate(p, file_size(p) - 10), 0);
    sl_queue_free(f.q);
    f.q = sl_queue_new("q", 16 * CHUNK, CHUNK);
    fx_reopen(&f, false);
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, c, sizeof(c) - 1), 0);
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, b, sizeof(b) - 1), b_seq);
    fx_fini(&f);
}
END_TEST

/* Tags outlive the segments that held them: folded into the state file
 * before a segment is deleted, found again at open. */
START_TEST(test_tags_outlive_deleted_segments)
{
    struct fx f;
    char p[128];
    struct stat st;
    const char a[] = "edges\0gone";
    fx_init(&f, SL_QUEUE_FSYNC_BATCH);
    fx_push_tagged(&f, 6, a, sizeof(a) - 1); /* segment 1 full, into segment 2 */
    uint64_t a_seq = f.next - 1;
    fx_push(&f, 6); /* more segments, untagged */
    fx_expect(&f, 0, 0); /* read and (no acks) committed */
    fx_close(&f);        /* a clean stop deletes what every reader committed */
    fx_path(&f, p, sizeof(p), 1);
    ck_assert_int_ne(stat(p, &st), 0);
    fx_path(&f, p, sizeof(p), 2);
    ck_assert_int_ne(stat(p, &st), 0);
    sl_queue_free(f.q);
    f.q = sl_queue_new("q", 16 * CHUNK, CHUNK);
    fx_reopen(&f, false);
    ck_assert_uint_eq(sl_queue_tag_recovered(f.q, a, sizeof(a) - 1), a_seq);
    fx_fini(&f);
}
END_TEST

START_TEST(test_torn_tail_cut)
{
    struct fx f;
    char p[128];
    /* Half a record more at the end, as a crash mid-append leaves it. */
    fx_written(&f, 3, 1, p, sizeof(p));
    uint8_t junk[SL_REC_HDR + 100];
    struct sl_rec r = {.len = 500, .nevents = 1, .lsn = 4};
    memset(junk, 'z', sizeof(junk));
    sl_rec_header_encode(junk, &r, junk); /* header says 500 bytes: 100 follow */
    off_t before = file_size(p);
    poke(p, before, junk, sizeof(junk));
    fx_reopen(&f, false);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->torn_bytes), sizeof(junk));
    ck_assert_int_eq(file_size(p), before);
    fx_expect(&f, 0, 0);
    /* And appending goes on after the cut. */
    fx_push(&f, 1);
    fx_expect(&f, 0, 0);
    fx_fini(&f);
}
END_TEST

START_TEST(test_truncated_last_record)
{
    struct fx f;
    char p[128];
    fx_written(&f, 3, 1, p, sizeof(p));
    ck_assert_int_eq(truncate(p, file_size(p) - 7), 0);
    fx_reopen(&f, false);
    ck_assert_uint_gt(sl_counter_get(&fx_stats(&f)->torn_bytes), 0);
    fx_expect(&f, LINES_PER_CHUNK, 0);
    fx_fini(&f);
}
END_TEST

START_TEST(test_flipped_bytes_middle_segment)
{
    struct fx f;
    char p[128];
    /* A byte in the payload of the second record of segment 2. */
    fx_written(&f, 15, 2, p, sizeof(p));
    size_t hlen;
    off_t second = second_record(p, &hlen);
    uint8_t x = 0xff;
    poke(p, second + (off_t)hlen + 10, &x, 1);
    fx_reopen(&f, false);
    fx_expect(&f, LINES_PER_CHUNK, 0);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->bad_records), 1);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->lost_records), 1);
    fx_fini(&f);
}
END_TEST

/*
 * A power loss with fsync = batch or interval can leave an unsynced record
 * damaged and records after it intact (pages written back out of order).
 * None was acknowledged, so the last segment is cut at the damaged one:
 * the intact ones' tags must not tell the sender that the damaged one's
 * batches are here (check_powerloss lost events without the cut).  With
 * fsync = none the records after it stay (they may have been
 * acknowledged): their tags count, the damage is skipped when read.
 */
START_TEST(test_damaged_unsynced_record_cut)
{
    static const enum sl_queue_fsync pol[] = {SL_QUEUE_FSYNC_BATCH, SL_QUEUE_FSYNC_INTERVAL,
                                              SL_QUEUE_FSYNC_NONE};
    for (size_t k = 0; k < sizeof(pol) / sizeof(pol[0]); k++) {
        struct fx f;
        char p[128];
        const char a[] = "edges\0one";
        fx_init(&f, SL_QUEUE_FSYNC_BATCH);
        fx_push_tagged(&f, 3, a, sizeof(a) - 1); /* one segment */
        fx_close(&f);
        fx_path(&f, p, sizeof(p), 1);
        off_t size = file_size(p);
        size_t hlen; /* the same in every record: one tag key */
        off_t second = second_record(p, &hlen);
        uint8_t x = 0xff;
        poke(p, second + (off_t)hlen + 10, &x, 1); /* the second record's payload */
        sl_queue_free(f.q);
        f.q = sl_queue_new("q", 16 * CHUNK, CHUNK);
        ck_assert_int_eq(unlink((snprintf(p, sizeof(p), "%s/state", f.dir), p)), 0);
        f.fsync = pol[k];
        fx_reopen(&f, false);
        fx_path(&f, p, sizeof(p), 1);
        if (pol[k] != SL_QUEUE_FSYNC_NONE) {
            ck_assert_int_eq(file_size(p), second);
            ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->torn_bytes), (uint64_t)(size - second));
            ck_assert_uint_eq(sl_queue_tag_recovered(f.q, a, sizeof(a) - 1), LINES_PER_CHUNK);
            fx_expect(&f, 2 * LINES_PER_CHUNK, 0); /* the sender resends them */
        } else {
            ck_assert_int_eq(file_size(p), size);
            ck_assert_uint_eq(sl_queue_tag_recovered(f.q, a, sizeof(a) - 1), 3 * LINES_PER_CHUNK);
            fx_expect(&f, LINES_PER_CHUNK, 0);
            ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->bad_records), 1);
        }
        fx_fini(&f);
    }
}
END_TEST

START_TEST(test_empty_state_replays)
{
    struct fx f;
    char p[128];
    fx_init(&f, SL_QUEUE_FSYNC_NONE);
    fx_push(&f, 3);
    fx_read(&f, SIZE_MAX);
    fx_close(&f);
    snprintf(p, sizeof(p), "%s/state", f.dir);
    ck_assert_int_eq(truncate(p, 0), 0);
    fx_reopen(&f, false);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->state_resets), 1);
    fx_expect(&f, 0, 3 * LINES_PER_CHUNK);
    fx_fini(&f);
}
END_TEST

START_TEST(test_deleted_middle_segment)
{
    struct fx f;
    char p[128];
    fx_written(&f, 15, 2, p, sizeof(p)); /* segments 1..3, 5 chunks each */
    ck_assert_int_eq(unlink(p), 0);
    fx_reopen(&f, false);
    fx_expect(&f, 5 * LINES_PER_CHUNK, 0);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->lost_records), 5);
    fx_fini(&f);
}
END_TEST

START_TEST(test_future_version_segment)
{
    struct fx f;
    char p[128], c[140];
    fx_written(&f, 15, 2, p, sizeof(p));
    /* Rewrite segment 2's header as version 2 (checksum right). */
    uint8_t h[SL_SEG_HDR];
    int fd = open(p, O_RDONLY);
    ck_assert_int_eq(pread(fd, h, sizeof(h), 0), SL_SEG_HDR);
    close(fd);
    struct sl_seg_header sh;
    ck_assert_int_eq(sl_seg_header_decode(h, sizeof(h), &sh), SL_SEG_OK);
    sl_seg_header_encode(h, sh.id, sh.first_lsn);
    h[4] = 2;
    /* recompute the crc over bytes 0..27 as a future writer would */
    uint8_t tmp[SL_SEG_HDR];
    memcpy(tmp, h, sizeof(tmp));
    {
        unsigned long crc = crc32(0, tmp, 28);
        for (int i = 0; i < 4; i++) {
            h[28 + i] = (uint8_t)(crc >> (8 * i));
        }
    }
    ck_assert_int_eq(sl_seg_header_decode(h, sizeof(h), &sh), SL_SEG_FUTURE);
    poke(p, 0, h, sizeof(h));
    fx_reopen(&f, false);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->future), 1);
    snprintf(c, sizeof(c), "%s.corrupt", p);
    ck_assert_int_eq(access(c, F_OK), 0); /* set aside, not deleted */
    ck_assert_int_ne(access(p, F_OK), 0);
    fx_expect(&f, 5 * LINES_PER_CHUNK, 0);
    fx_fini(&f);
}
END_TEST

START_TEST(test_lock_and_max_size)
{
    struct fx f;
    char why[512] = "";
    fx_init(&f, SL_QUEUE_FSYNC_NONE);
    ck_assert_ptr_null(fx_open(&f, why, sizeof(why)));
    ck_assert_msg(strstr(why, "in use by another process") != NULL, "%s", why);
    fx_close(&f);
    /* max_size of 4 segments: with no reader progress it refuses, chunks
     * stay in the queue; reading and a poll make room again. */
    f.max_size = 4 * 5 * (SL_REC_HDR + CHUNK);
    fx_reopen(&f, false);
    int pushed = 0;
    while (!f.b->refusing && pushed < 100) {
        struct sl_chunk *c = sl_queue_acquire(f.q, SL_ACQUIRE_UDP);
        c->len = CHUNK - 8;
        memset(c->data, 'a', c->len - 1);
        c->data[c->len - 1] = '\n';
        c->nevents = 1;
        sl_queue_push(f.q, c);
        f.b->ops->append(f.b, 64, f.now);
        pushed++;
    }
    ck_assert(f.b->refusing);
    ck_assert(sl_queue_has_chunks(f.q));
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->refusing), 1);
    fx_read(&f, SIZE_MAX);
    f.now += 1000;
    f.b->ops->poll(f.b, f.now);
    ck_assert(!f.b->refusing);
    ck_assert_uint_gt(f.b->ops->append(f.b, 64, f.now), 0);
    ck_assert(!sl_queue_has_chunks(f.q));
    free(f.got);
    f.got = NULL;
    fx_fini(&f);
}
END_TEST


/* Pushes chunks and appends until the backlog refuses (or 100). */
static int
fx_fill_until_refused(struct fx *f)
{
    int pushed = 0;
    while (!f->b->refusing && pushed < 100) {
        struct sl_chunk *c = sl_queue_acquire(f->q, SL_ACQUIRE_UDP);
        ck_assert_ptr_nonnull(c);
        c->len = CHUNK - 8;
        memset(c->data, 'b', c->len - 1);
        c->data[c->len - 1] = '\n';
        c->nevents = 1;
        sl_queue_push(f->q, c);
        f->b->ops->append(f->b, 64, f->now);
        pushed++;
    }
    return pushed;
}

/*
 * max_size changed live (a reload, sl_backlog_disk_set_max_size): full at 4
 * segments, raised to 8 the next poll takes chunks again with nothing read;
 * under two segments or over the filesystem, refused with the reason and
 * the bound kept; lowered below what the segments hold, nothing is deleted
 * and appends wait as when full.
 */
START_TEST(test_max_size_live)
{
    struct fx f;
    char why[256] = "";
    uint64_t seg = 5 * (SL_REC_HDR + CHUNK);
    fx_init(&f, SL_QUEUE_FSYNC_NONE);
    fx_close(&f);
    f.max_size = 4 * seg;
    fx_reopen(&f, false);
    fx_fill_until_refused(&f);
    ck_assert(f.b->refusing);
    ck_assert_int_eq(sl_backlog_disk_set_max_size(f.b, seg, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "at least two segments") != NULL, "%s", why);
    ck_assert_int_eq(sl_backlog_disk_set_max_size(f.b, (uint64_t)1 << 62, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "more than the filesystem") != NULL, "%s", why);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->max_bytes), 4 * seg);
    ck_assert_int_eq(sl_backlog_disk_set_max_size(f.b, 8 * seg, why, sizeof(why)), 0);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->max_bytes), 8 * seg);
    f.now += 1000;
    f.b->ops->poll(f.b, f.now);
    ck_assert(!f.b->refusing);
    ck_assert_uint_gt(f.b->ops->append(f.b, 64, f.now), 0);
    uint64_t bytes = sl_counter_get(&fx_stats(&f)->bytes);
    /* Lowered below what it holds: kept, and full. */
    ck_assert_int_eq(sl_backlog_disk_set_max_size(f.b, 2 * seg, why, sizeof(why)), 0);
    fx_fill_until_refused(&f);
    ck_assert(f.b->refusing);
    ck_assert_uint_ge(sl_counter_get(&fx_stats(&f)->bytes), bytes);
    fx_read(&f, SIZE_MAX);
    free(f.got);
    f.got = NULL;
    fx_fini(&f);
}
END_TEST

START_TEST(test_write_error_retries_held_chunks)
{
    /* A write error (here EFBIG from RLIMIT_FSIZE, as ENOSPC would) keeps
     * the chunks it could not write; when every chunk is held so and the
     * queue is empty, poll alone must retry them (nothing else would wake
     * the writer).  Runs in Check's forked child: the limit dies with it. */
    struct fx f;
    struct rlimit rl;
    fx_init(&f, SL_QUEUE_FSYNC_NONE);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    struct rlimit small = {.rlim_cur = 2 * (SL_REC_HDR + CHUNK), .rlim_max = rl.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    for (int i = 0; i < 6; i++) {
        struct sl_chunk *c = sl_queue_acquire(f.q, SL_ACQUIRE_UDP);
        for (int k = 0; k < LINES_PER_CHUNK; k++) {
            c->len += (size_t)snprintf(c->data + c->len, c->cap - c->len, "%-39llu\n",
                                       (unsigned long long)f.next++);
            c->nevents++;
        }
        sl_queue_push(f.q, c);
    }
    f.b->ops->append(f.b, 64, f.now);
    ck_assert(f.b->refusing);
    ck_assert(!sl_queue_has_chunks(f.q));          /* every chunk is held by the backlog */
    ck_assert_uint_gt(sl_queue_in_use(f.q), 0);
    ck_assert_uint_ge(sl_counter_get(&fx_stats(&f)->write_errors), 1);
    ck_assert_uint_ne(sl_counter_get(&fx_stats(&f)->failing_since_ms), 0);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0); /* room again */
    uint64_t due = f.b->ops->poll(f.b, f.now);
    ck_assert_uint_gt(due, 0); /* it asks to be called back for the retry */
    f.now += due;
    f.b->ops->poll(f.b, f.now);
    ck_assert(!f.b->refusing);
    ck_assert_uint_eq(sl_queue_in_use(f.q), 0);
    ck_assert_uint_eq(sl_counter_get(&fx_stats(&f)->failing_since_ms), 0);
    fx_expect(&f, 0, 0);
    fx_fini(&f);
}
END_TEST

static Suite *
diskq_suite(void)
{
    Suite *s = suite_create("diskq");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_record_roundtrip_and_damage);
    tcase_add_test(tc, test_record_tag_roundtrip);
    tcase_add_test(tc, test_segment_header_versions);
    tcase_add_test(tc, test_state_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("backlog");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_append_peek_sent);
    tcase_add_test(tc, test_interval_syncs_early_for_watcher);
    tcase_add_test(tc, test_interval_syncs_early_at_quarter_segment);
    tcase_add_test(tc, test_interval_state_and_gc_on_sync_thread);
    tcase_add_test(tc, test_acks_commit_and_restart);
    tcase_add_test(tc, test_rewind_to_committed);
    tcase_add_test(tc, test_restart_reopen_and_gc);
    tcase_add_test(tc, test_lock_and_max_size);
    tcase_add_test(tc, test_max_size_live);
    tcase_add_test(tc, test_write_error_retries_held_chunks);
    suite_add_tcase(s, tc);
    tc = tcase_create("damage");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tags_recovered_at_open);
    tcase_add_test(tc, test_tags_outlive_deleted_segments);
    tcase_add_test(tc, test_torn_tail_cut);
    tcase_add_test(tc, test_truncated_last_record);
    tcase_add_test(tc, test_flipped_bytes_middle_segment);
    tcase_add_test(tc, test_damaged_unsynced_record_cut);
    tcase_add_test(tc, test_empty_state_replays);
    tcase_add_test(tc, test_deleted_middle_segment);
    tcase_add_test(tc, test_future_version_segment);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(diskq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
