/*
 * Unit tests for the file sink: append, file mode, fsync policies, reopen
 * after rename (signal-free, via tick) and on request, missing folder, the
 * folder removed while open (held until it is back, or made again with
 * create_dirs), the file truncated under the sink; torn lines (cut at open,
 * short writes continued to an exact prefix, cut off a file the sink
 * leaves); rotation
 * by size, by time (on a fake clock) and by path template, an interrupted
 * rotation, a tail -F style follower across rotations; retention, gzip and
 * zstd compression and their crash recovery (the housekeeping thread).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "sluice/log.h"
#include "sluice/sink.h"

#include "daemon/registry.h"
#include "sink/sink_file.h"

struct fixture {
    char dir[64];
    char path[128];
    struct sl_sink_config cfg;
    struct sl_sink_file_config fcfg;
    struct sl_sink_stats stats;
    struct sl_sink sink;
};

static void
fx_init(struct fixture *fx, enum sl_fsync fsync)
{
    memset(fx, 0, sizeof(*fx));
    strcpy(fx->dir, "/tmp/sluice-sink-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/out.ndjson", fx->dir);
    fx->cfg.name = "t";
    fx->fcfg.path = fx->path;
    fx->fcfg.file_mode = 0640;
    fx->fcfg.fsync = fsync;
    fx->fcfg.fsync_interval_ms = 1000;
    fx->cfg.batch_max_bytes = 1 << 20;
    fx->sink.cfg = &fx->cfg;
    fx->sink.stats = &fx->stats;
    fx->cfg.type = &sl_sink_file_conf;
    fx->cfg.type_conf = &fx->fcfg;
    fx->sink.ops = sl_sink_file_conf.impl.sink;
    ck_assert_ptr_nonnull(fx->sink.ops);
}

static void
fx_fini(struct fixture *fx)
{
    char cmd[160];
    fx->sink.ops->close(&fx->sink);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void
put(struct fixture *fx, const char *a, const char *b)
{
    struct iovec iov[2] = {{(void *)a, strlen(a)}, {(void *)b, strlen(b)}};
    size_t written = 0;
    ck_assert_int_eq(fx->sink.ops->write(&fx->sink, iov, 2, &written), SL_SINK_OK);
    ck_assert_uint_eq(written, strlen(a) + strlen(b));
    ck_assert_int_eq(fx->sink.ops->flush(&fx->sink, false), SL_SINK_OK);
}

static char *
slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_sink_file_append_and_mode)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_NONE);
    /* Existing content is kept: the sink appends. */
    FILE *f = fopen(fx.path, "w");
    fputs("{\"old\":1}\n", f);
    fclose(f);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"a\":1}\n", "{\"b\":2}\n");
    ck_assert_str_eq(slurp(fx.path), "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n");
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 0);
    fx_fini(&fx);

    fx_init(&fx, SL_FSYNC_NONE);
    fx.fcfg.file_mode = 0600;
    umask(022);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    struct stat st;
    ck_assert_int_eq(stat(fx.path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_fsync_batch)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_BATCH);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{}\n", "{}\n");
    put(&fx, "{}\n", "{}\n");
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 2);
    /* Nothing new: the final flush does not sync again. */
    ck_assert_int_eq(fx.sink.ops->flush(&fx.sink, true), SL_SINK_OK);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 2);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_fsync_interval_and_final)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_INTERVAL);
    fx.fcfg.fsync_interval_ms = 3600 * 1000;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{}\n", "{}\n"); /* within the interval (from open): no sync */
    put(&fx, "{}\n", "{}\n");
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 0);
    /* Once the interval has passed, the tick syncs. */
    fx.sink.ops->tick(&fx.sink, sl_now_ms() + 3600 * 1000);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 1);
    put(&fx, "{}\n", "{}\n");
    ck_assert_int_eq(fx.sink.ops->flush(&fx.sink, true), SL_SINK_OK); /* stop: always */
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 2);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_reopen_after_rename)
{
    struct fixture fx;
    char moved[160];
    fx_init(&fx, SL_FSYNC_NONE);
    snprintf(moved, sizeof(moved), "%s.1", fx.path);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"n\":1}\n", "");
    ck_assert_int_eq(rename(fx.path, moved), 0);
    /* Until the tick notices, writes go to the renamed file. */
    put(&fx, "{\"n\":2}\n", "");
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put(&fx, "{\"n\":3}\n", "");
    ck_assert_str_eq(slurp(moved), "{\"n\":1}\n{\"n\":2}\n");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":3}\n");
    ck_assert_uint_eq(sl_counter_get(&fx.stats.reopens), 1);
    /* A tick with nothing changed does not reopen. */
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_uint_eq(sl_counter_get(&fx.stats.reopens), 1);
    /* Deleted: recreated. */
    ck_assert_int_eq(unlink(fx.path), 0);
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put(&fx, "{\"n\":4}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":4}\n");
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_reopen_on_request)
{
    struct fixture fx;
    char moved[160];
    fx_init(&fx, SL_FSYNC_NONE);
    snprintf(moved, sizeof(moved), "%s.1", fx.path);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"n\":1}\n", "");
    ck_assert_int_eq(rename(fx.path, moved), 0);
    fx.sink.ops->reopen(&fx.sink);
    put(&fx, "{\"n\":2}\n", "");
    ck_assert_str_eq(slurp(moved), "{\"n\":1}\n");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":2}\n");
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_missing_folder)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_NONE);
    snprintf(fx.path, sizeof(fx.path), "%s/no/such/out.ndjson", fx.dir);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), -1);
    fx_fini(&fx);
}
END_TEST

/* ---- rotation, retention, compression, templates, torn lines -------------------- */

static _Atomic int64_t fake_now_ms; /* read by the housekeeping thread too */

static int64_t
fake_clock(void)
{
    return fake_now_ms;
}

/* 2026-01-26T12:00:00Z */
#define T0_MS 1769428800000LL
#define HOUR_MS 3600000LL

/* A fixture on the fake clock at t. */
static void
fx_init_clock(struct fixture *fx, int64_t t)
{
    fx_init(fx, SL_FSYNC_NONE);
    fake_now_ms = t;
    fx->sink.clock = fake_clock;
    fx->fcfg.dir_mode = 0750;
}

/* A 100-byte line "{"n":N,"pad":"..."}\n" into buf (at least 101 bytes). */
static const char *
line100(char *buf, int n)
{
    int k = snprintf(buf, 101, "{\"n\":%d,\"pad\":\"", n);
    memset(buf + k, 'a' + n % 26, (size_t)(100 - k - 3));
    memcpy(buf + 97, "\"}\n", 3);
    return buf;
}

/*
 * Writes lines [from, to) as one batch the way the writer does: calls write
 * again from the reported byte until all is written.
 */
static void
put_lines(struct fixture *fx, int from, int to)
{
    static char data[100 * 1000];
    size_t len = 0, off = 0;
    int calls = 0;

    ck_assert_int_le(to - from, 1000);
    for (int i = from; i < to; i++) {
        line100(data + len, i);
        len += 100;
    }
    while (off < len) {
        /* Several iovecs, split in mid-line, as chunks may be. */
        size_t rest = len - off, a = rest / 3;
        struct iovec iov[2] = {{data + off, a}, {data + off + a, rest - a}};
        size_t written = 0;
        if (a == 0) {
            iov[0] = iov[1];
        }
        ck_assert_int_eq(fx->sink.ops->write(&fx->sink, iov, a > 0 ? 2 : 1, &written), SL_SINK_OK);
        off += written;
        ck_assert_int_lt(++calls, 1000);
    }
    ck_assert_int_eq(fx->sink.ops->flush(&fx->sink, false), SL_SINK_OK);
}

struct listing {
    char names[64][256];
    size_t n;
};

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The names in dir starting with prefix, sorted. */
static void
list_dir(const char *dir, const char *prefix, struct listing *l)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    ck_assert_ptr_nonnull(d);
    l->n = 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && l->n < 64) {
            snprintf(l->names[l->n++], sizeof(l->names[0]), "%s", e->d_name);
        }
    }
    closedir(d);
    qsort(l->names, l->n, sizeof(l->names[0]), cmp_str);
}

/* Reads a whole (small) file into a malloc'ed buffer; *len its size. */
static char *
read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 22);
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_ptr_nonnull(buf);
    *len = fread(buf, 1, (1 << 22) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Checks that text holds exactly the lines [from, to) in order. */
static void
check_lines(const char *what, const char *text, size_t len, int from, int to)
{
    char want[101];
    ck_assert_msg(len == (size_t)(to - from) * 100, "%s: %zu bytes, want lines %d..%d", what, len,
                  from, to);
    for (int i = from; i < to; i++) {
        ck_assert_msg(memcmp(text + (size_t)(i - from) * 100, line100(want, i), 100) == 0,
                      "%s: line %d differs", what, i);
    }
}

START_TEST(test_sink_file_rotate_size)
{
    struct fixture fx;
    struct listing l;
    char p[512];
    size_t len;
    int next = 0;

    fx_init_clock(&fx, T0_MS);
    fx.fcfg.rotate_bytes = 1000; /* 10 lines of 100 bytes */
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    /* Batches of 7, 13, 1, 14 lines: files never pass 1000 bytes. */
    static const int batches[] = {7, 13, 1, 14};
    for (size_t b = 0; b < 4; b++) {
        put_lines(&fx, next, next + batches[b]);
        next += batches[b];
    }
    list_dir(fx.dir, "out.ndjson", &l);
    ck_assert_uint_eq(l.n, 4); /* 3 rotated + the active one */
    ck_assert_str_eq(l.names[0], "out.ndjson");
    /* All rotated in the same fake millisecond: the stamp moves on by 1 ms. */
    ck_assert_str_eq(l.names[1], "out.ndjson.20260126T120000.000Z");
    ck_assert_str_eq(l.names[2], "out.ndjson.20260126T120000.001Z");
    ck_assert_str_eq(l.names[3], "out.ndjson.20260126T120000.002Z");
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[i + 1]);
        char *t = read_all(p, &len);
        check_lines(p, t, len, i * 10, i * 10 + 10);
        free(t);
    }
    char *t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 30, 35);
    free(t);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.rotations), 3);

    /* A line longer than rotate_bytes gets a file of its own. */
    fx.fcfg.rotate_bytes = 150;
    put_lines(&fx, 35, 37);
    list_dir(fx.dir, "out.ndjson", &l);
    ck_assert_uint_eq(l.n, 6);
    t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 36, 37);
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_rotate_interval)
{
    struct fixture fx;
    struct listing l;
    size_t len;
    char p[512];

    fx_init_clock(&fx, T0_MS + HOUR_MS - 500); /* 12:59:59.500 */
    fx.fcfg.rotate_interval_ms = (uint64_t)HOUR_MS;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put_lines(&fx, 0, 3);
    fake_now_ms = T0_MS + HOUR_MS - 1; /* still in the hour: nothing happens */
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put_lines(&fx, 3, 4);
    list_dir(fx.dir, "out.ndjson", &l);
    ck_assert_uint_eq(l.n, 1);
    /* The hour passes with no data: the tick rotates. */
    fake_now_ms = T0_MS + HOUR_MS + 300;
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    list_dir(fx.dir, "out.ndjson", &l);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.names[1], "out.ndjson.20260126T125959.500Z");
    put_lines(&fx, 4, 6);
    /* The next boundary passes while writing: rotation before the write,
     * and the hourly file is named on the hour. */
    fake_now_ms = T0_MS + 2 * HOUR_MS + 10;
    put_lines(&fx, 6, 7);
    fake_now_ms = T0_MS + 3 * HOUR_MS + 42;
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    /* A quiet hour: the empty file is not rotated. */
    fake_now_ms = T0_MS + 4 * HOUR_MS + 5;
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put_lines(&fx, 7, 8);
    list_dir(fx.dir, "out.ndjson", &l);
    ck_assert_uint_eq(l.n, 4);
    ck_assert_str_eq(l.names[2], "out.ndjson.20260126T130000.000Z");
    ck_assert_str_eq(l.names[3], "out.ndjson.20260126T140000.000Z");
    snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[1]);
    char *t = read_all(p, &len);
    check_lines(p, t, len, 0, 4);
    free(t);
    snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[2]);
    t = read_all(p, &len);
    check_lines(p, t, len, 4, 6);
    free(t);
    snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[3]);
    t = read_all(p, &len);
    check_lines(p, t, len, 6, 7);
    free(t);
    t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 7, 8);
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_template_paths)
{
    struct fixture fx;
    char tmpl[256], p[512];
    struct stat st;
    size_t len;

    fx_init_clock(&fx, T0_MS + 11 * HOUR_MS); /* 2026-01-26 23:00 */
    snprintf(tmpl, sizeof(tmpl), "%s/logs/%%Y-%%m-%%d/%%{source}-%%H.ndjson", fx.dir);
    fx.fcfg.path = tmpl;
    fx.fcfg.source_name = "web";
    fx.fcfg.create_dirs = true;
    fx.fcfg.dir_mode = 0701;
    fx.fcfg.file_mode = 0604;
    umask(077);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put_lines(&fx, 0, 2);
    snprintf(p, sizeof(p), "%s/logs/2026-01-26/web-23.ndjson", fx.dir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0604); /* exactly, whatever the umask */
    snprintf(p, sizeof(p), "%s/logs/2026-01-26", fx.dir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0701);
    snprintf(p, sizeof(p), "%s/logs", fx.dir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0701);
    /* Midnight: a new directory and file; the old one is rotated in place. */
    fake_now_ms = T0_MS + 12 * HOUR_MS + 1000;
    put_lines(&fx, 2, 3);
    snprintf(p, sizeof(p), "%s/logs/2026-01-27/web-00.ndjson", fx.dir);
    char *t = read_all(p, &len);
    check_lines(p, t, len, 2, 3);
    free(t);
    snprintf(p, sizeof(p), "%s/logs/2026-01-26/web-23.ndjson", fx.dir);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/logs/2026-01-26/web-23.ndjson.20260126T230000.000Z", fx.dir);
    t = read_all(p, &len);
    check_lines(p, t, len, 0, 2);
    free(t);
    /* An hour with no data: the tick moves to the new path, and the empty
     * file of the previous hour is not kept. */
    fake_now_ms = T0_MS + 13 * HOUR_MS;
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    fake_now_ms = T0_MS + 14 * HOUR_MS;
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put_lines(&fx, 3, 4);
    snprintf(p, sizeof(p), "%s/logs/2026-01-27/web-01.ndjson", fx.dir);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/logs/2026-01-27/web-02.ndjson", fx.dir);
    t = read_all(p, &len);
    check_lines(p, t, len, 3, 4);
    free(t);
    fx_fini(&fx);
}
END_TEST

/* Makes n rotated files of 10 lines each (sizes rotation, 1 ms apart). */
static void
make_rotated(struct fixture *fx, int n)
{
    fx->fcfg.rotate_bytes = 1000;
    for (int i = 0; i < n; i++) {
        put_lines(fx, i * 10, i * 10 + 10);
        fake_now_ms++;
    }
    put_lines(fx, n * 10, n * 10 + 1); /* rotates the last full file */
}

START_TEST(test_sink_file_retention)
{
    struct fixture fx;
    struct listing l;
    char p[512];

    fx_init_clock(&fx, T0_MS);
    fx.fcfg.max_files = 2;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    /* Look-alikes that are not rotated files of this sink: never touched. */
    static const char *const others[] = {"out.ndjson.keep", "out.ndjson.2026",
                                         "out.ndjson.20260126T120000.000Z.bak", "other.ndjson"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", fx.dir, others[i]);
        FILE *f = fopen(p, "w");
        fputs("x\n", f);
        fclose(f);
    }
    make_rotated(&fx, 5);
    ck_assert_int_eq(sl_sink_file_housekeep(&fx.sink, 10000), 0);
    list_dir(fx.dir, "out.ndjson.2026012", &l);
    ck_assert_uint_eq(l.n, 3); /* the two newest, and the .bak look-alike */
    ck_assert_str_eq(l.names[0], "out.ndjson.20260126T120000.000Z.bak");
    ck_assert_str_eq(l.names[1], "out.ndjson.20260126T120000.003Z");
    ck_assert_str_eq(l.names[2], "out.ndjson.20260126T120000.004Z");
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", fx.dir, others[i]);
        ck_assert_int_eq(access(p, F_OK), 0);
    }
    ck_assert_int_eq(access(fx.path, F_OK), 0);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.retention_deleted), 3);

    /* max_age: by modification time. */
    fx.fcfg.max_files = 0;
    fx.fcfg.max_age_ms = 24 * HOUR_MS;
    fake_now_ms = (int64_t)time(NULL) * 1000;
    snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[1]);
    struct timeval old[2] = {{time(NULL) - 2 * 86400, 0}, {time(NULL) - 2 * 86400, 0}};
    ck_assert_int_eq(utimes(p, old), 0);
    ck_assert_int_eq(sl_sink_file_housekeep(&fx.sink, 10000), 0);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[2]);
    ck_assert_int_eq(access(p, F_OK), 0);
    fx_fini(&fx);
}
END_TEST

/* Decompresses a .gz or .zst file into a new buffer; *len its size. */
static char *
decompress(const char *path, size_t *len)
{
    size_t cap = 1 << 22, n = 0;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    if (strstr(path, ".gz") != NULL) {
        gzFile g = gzopen(path, "rb");
        int r;
        ck_assert_ptr_nonnull(g);
        while ((r = gzread(g, out + n, (unsigned)(cap - n))) > 0) {
            n += (size_t)r;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(gzclose(g), Z_OK);
    } else {
        size_t clen;
        char *c = read_all(path, &clen);
        ZSTD_DCtx *dx = ZSTD_createDCtx();
        ZSTD_inBuffer ib = {c, clen, 0};
        size_t r = 1;
        while (ib.pos < ib.size || r != 0) {
            ZSTD_outBuffer ob = {out + n, cap - n, 0};
            r = ZSTD_decompressStream(dx, &ob, &ib);
            ck_assert_msg(!ZSTD_isError(r), "zstd: %s", ZSTD_getErrorName(r));
            n += ob.pos;
            if (ob.pos == 0 && ib.pos == ib.size) {
                break;
            }
        }
        ck_assert_uint_eq(r, 0); /* a complete frame */
        ZSTD_freeDCtx(dx);
        free(c);
    }
    *len = n;
    return out;
}

static void
check_compressed(enum sl_compress how, const char *ext)
{
    struct fixture fx;
    struct listing l;
    char p[512];
    struct stat st;
    size_t len;

    fx_init_clock(&fx, T0_MS);
    fx.fcfg.compress = how;
    fx.fcfg.file_mode = 0600;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    make_rotated(&fx, 3);
    ck_assert_int_eq(sl_sink_file_housekeep(&fx.sink, 10000), 0);
    list_dir(fx.dir, "out.ndjson.", &l);
    ck_assert_uint_eq(l.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(strstr(l.names[i], ext) != NULL && strstr(l.names[i], ".tmp") == NULL,
                      "%s is not a finished %s file", l.names[i], ext);
        snprintf(p, sizeof(p), "%s/%.255s", fx.dir, l.names[i]);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        char *t = decompress(p, &len);
        check_lines(p, t, len, i * 10, i * 10 + 10);
        free(t);
    }
    ck_assert_uint_eq(sl_counter_get(&fx.stats.compressed), 3);
    /* The active file is never compressed. */
    char *t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 30, 31);
    free(t);
    fx_fini(&fx);
}

START_TEST(test_sink_file_compress_gzip)
{
    check_compressed(SL_COMPRESS_GZIP, ".gz");
}
END_TEST

START_TEST(test_sink_file_compress_zstd)
{
    check_compressed(SL_COMPRESS_ZSTD, ".zst");
}
END_TEST

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* What a crash in the middle of compressing leaves is finished or redone. */
START_TEST(test_sink_file_compress_recovery)
{
    struct fixture fx;
    char a[512], b[512], c[512], p[600];
    size_t len;

    fx_init_clock(&fx, T0_MS);
    fx.fcfg.compress = SL_COMPRESS_GZIP;
    /* a: cut short while compressing (a .tmp of garbage): redone. */
    snprintf(a, sizeof(a), "%s.20260101T000000.000Z", fx.path);
    write_text(a, "{\"a\":1}\n{\"a\":2}\n");
    snprintf(p, sizeof(p), "%s.gz.tmp", a);
    write_text(p, "garbage");
    /* b: renamed into place, crashed before deleting the original: finished. */
    snprintf(b, sizeof(b), "%s.20260102T000000.000Z", fx.path);
    write_text(b, "{\"b\":1}\n");
    snprintf(p, sizeof(p), "%s.gz", b);
    gzFile g = gzopen(p, "wb");
    gzputs(g, "{\"b\":1}\n");
    gzclose(g);
    /* c: an orphaned .tmp whose original is gone: removed. */
    snprintf(c, sizeof(c), "%s.20260103T000000.000Z.zst.tmp", fx.path);
    write_text(c, "junk");
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0); /* starts the housekeeper */
    ck_assert_int_eq(sl_sink_file_housekeep(&fx.sink, 10000), 0);
    ck_assert_int_eq(access(a, F_OK), -1);
    snprintf(p, sizeof(p), "%s.gz.tmp", a);
    ck_assert_int_eq(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s.gz", a);
    char *t = decompress(p, &len);
    ck_assert_uint_eq(len, 16);
    ck_assert_int_eq(memcmp(t, "{\"a\":1}\n{\"a\":2}\n", 16), 0);
    free(t);
    ck_assert_int_eq(access(b, F_OK), -1);
    snprintf(p, sizeof(p), "%s.gz", b);
    t = decompress(p, &len);
    ck_assert_uint_eq(len, 8);
    free(t);
    ck_assert_int_eq(access(c, F_OK), -1);
    fx_fini(&fx);
}
END_TEST

/* A crash between link() and rename() of a rotation is finished at open. */
START_TEST(test_sink_file_interrupted_rotation)
{
    struct fixture fx;
    char r[512];
    struct stat st;
    size_t len;

    fx_init_clock(&fx, T0_MS);
    write_text(fx.path, "{\"old\":1}\n");
    snprintf(r, sizeof(r), "%s.20260126T110000.000Z", fx.path);
    ck_assert_int_eq(link(fx.path, r), 0);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    ck_assert_int_eq(stat(r, &st), 0);
    ck_assert_int_eq(st.st_nlink, 1);
    ck_assert_int_eq(stat(fx.path, &st), 0);
    ck_assert_int_eq(st.st_size, 0);
    put_lines(&fx, 0, 1);
    char *t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 0, 1);
    free(t);
    ck_assert_str_eq(slurp(r), "{\"old\":1}\n");
    fx_fini(&fx);
}
END_TEST

/* A torn last line (left by a crash during a short write) is cut at open. */
START_TEST(test_sink_file_torn_tail_cut)
{
    struct fixture fx;

    fx_init(&fx, SL_FSYNC_NONE);
    write_text(fx.path, "{\"a\":1}\n{\"b\":2}\n{\"c\":");
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"d\":4}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n");
    fx_fini(&fx);

    /* Nothing but a torn line: the file is emptied. */
    fx_init(&fx, SL_FSYNC_NONE);
    write_text(fx.path, "{\"c\":");
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"d\":4}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"d\":4}\n");
    fx_fini(&fx);
}
END_TEST

/*
 * Short writes: with RLIMIT_FSIZE the kernel takes part of a batch and then
 * refuses (EFBIG), as with a full disk.  Over repeated fill/drain cycles the
 * file must stay an exact prefix of the stream: every retry continues from
 * the byte where the kernel stopped, never repeating or skipping a byte,
 * and rotation waits for the torn line.
 */
START_TEST(test_sink_file_short_writes_exact_prefix)
{
    struct fixture fx;
    static char data[100 * 400];
    struct rlimit rl;
    size_t off = 0, total = sizeof(data), len;
    int retries = 0;

    signal(SIGXFSZ, SIG_IGN);
    for (int i = 0; i < 400; i++) {
        line100(data + i * 100, i);
    }
    fx_init_clock(&fx, T0_MS);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    /* Limits that fall inside lines: 1234, 2468, ... bytes. */
    for (int cycle = 1; off < total; cycle++) {
        rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
        ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
        rl.rlim_cur = (rlim_t)cycle * 1234;
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
        for (int k = 0; k < 10 && off < total; k++) {
            size_t written = 0, rest = total - off, a = rest / 2;
            struct iovec iov[2] = {{data + off, a}, {data + off + a, rest - a}};
            enum sl_sink_result r = fx.sink.ops->write(&fx.sink, iov, 2, &written);
            ck_assert_msg(written % 100 == 0, "reported %zu bytes: not whole lines", written);
            off += written;
            if (r == SL_SINK_RETRY) {
                retries++;
                struct sl_sink_health h;
                sl_sink_health(&fx.sink, &h);
                ck_assert(!h.ok);
                ck_assert_msg(strstr(h.reason, "write ") != NULL, "%s", h.reason);
                break;
            }
            ck_assert_int_eq(r, SL_SINK_OK);
        }
        /* Whatever happened, the file is an exact prefix of the stream. */
        char *t = read_all(fx.path, &len);
        ck_assert_uint_ge(len, off);
        ck_assert_msg(memcmp(t, data, len) == 0, "cycle %d: the file is not a prefix", cycle);
        free(t);
        ck_assert_int_lt(cycle, 100);
    }
    ck_assert_int_ge(retries, 20);
    struct sl_sink_health h;
    sl_sink_health(&fx.sink, &h);
    ck_assert(h.ok);
    ck_assert_uint_ge(h.failures, 1);
    char *t = read_all(fx.path, &len);
    ck_assert_uint_eq(len, total);
    ck_assert(memcmp(t, data, total) == 0);
    free(t);
    fx_fini(&fx);
}
END_TEST

/*
 * A follower that behaves like `tail -F`: reads its descriptor to the end;
 * when the path names another file, reads the old descriptor to its end,
 * then follows the new file from its start.
 */
struct follower {
    const char *path;
    int fd;
    ino_t ino;
    char *seen;
    size_t len;
};

static void
follow_drain(struct follower *fw)
{
    ssize_t r;
    while (fw->fd >= 0 && (r = read(fw->fd, fw->seen + fw->len, 65536)) > 0) {
        fw->len += (size_t)r;
    }
}

static void
follow_poll(struct follower *fw)
{
    struct stat st;

    follow_drain(fw);
    if (stat(fw->path, &st) == 0 && (fw->fd < 0 || st.st_ino != fw->ino)) {
        follow_drain(fw);
        if (fw->fd >= 0) {
            close(fw->fd);
        }
        fw->fd = open(fw->path, O_RDONLY);
        fw->ino = st.st_ino;
        follow_drain(fw);
    }
}

START_TEST(test_sink_file_follower_sees_every_line_once)
{
    struct fixture fx;
    struct follower fw = {0};
    int n = 0;

    fx_init_clock(&fx, T0_MS);
    fx.fcfg.rotate_bytes = 2500;
    fx.fcfg.rotate_interval_ms = 60000;
    fx.fcfg.compress = SL_COMPRESS_GZIP; /* compression runs meanwhile */
    fx.fcfg.max_files = 3;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    fw.path = fx.path;
    fw.fd = -1;
    fw.seen = malloc(1 << 22);
    follow_poll(&fw);
    for (int round = 0; round < 200; round++) {
        int k = 1 + round % 17;
        /* At most one rotation between two looks of the follower (as a
         * real tail -F needs): it lags behind by up to a whole file. */
        put_lines(&fx, n, n + k);
        n += k;
        follow_poll(&fw);
        if (round % 3 == 0) {
            fake_now_ms += 20000; /* minute boundaries pass too */
            fx.sink.ops->tick(&fx.sink, sl_now_ms());
            follow_poll(&fw);
        }
    }
    follow_poll(&fw);
    check_lines("follower", fw.seen, fw.len, 0, n);
    ck_assert_uint_ge(sl_counter_get(&fx.stats.rotations), 50);
    close(fw.fd);
    free(fw.seen);
    fx_fini(&fx);
}
END_TEST

/* ---- the output folder removed; torn lines when leaving a file; truncation ------- */

/* A fixture whose file is in the folder fx->dir/out (made here). */
static void
fx_init_sub(struct fixture *fx, char *sub, size_t len)
{
    fx_init(fx, SL_FSYNC_NONE);
    snprintf(sub, len, "%s/out", fx->dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(fx->path, sizeof(fx->path), "%s/out.ndjson", sub);
    fx->fcfg.dir_mode = 0750;
}

static void
rm_rf(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
    ck_assert_int_eq(system(cmd), 0);
}

/* One write call of text; returns the result, *written the bytes reported. */
static enum sl_sink_result
write_once(struct fixture *fx, const char *text, size_t *written)
{
    struct iovec iov[1] = {{(void *)text, strlen(text)}};
    *written = 0;
    return fx->sink.ops->write(&fx->sink, iov, 1, written);
}

/* The sink is failing to open its file, for lack of its folder. */
static void
check_failing_open(struct fixture *fx)
{
    struct sl_sink_health h;
    sl_sink_health(&fx->sink, &h);
    ck_assert_msg(!h.ok, "the sink says ok");
    ck_assert_int_eq(h.op, SL_SINK_OP_OPEN);
    ck_assert_int_eq(h.err, ENOENT);
    ck_assert_msg(strstr(h.reason, "No such file") != NULL, "%s", h.reason);
    ck_assert_uint_ne(sl_counter_get(&fx->stats.failing_since_ms), 0);
    ck_assert_uint_eq(sl_counter_get(&fx->stats.last_errno), ENOENT);
}

/*
 * create_dirs = no and the folder is removed: the sink must not write into
 * the deleted file (no reader could ever find those events).  It fails to
 * open, holds the events (RETRY) and works again once the folder is back;
 * noticed by the next write, by the tick and by a reopen (SIGHUP) alike.
 */
START_TEST(test_sink_file_folder_removed)
{
    struct fixture fx;
    struct sl_sink_health h;
    char sub[128];
    size_t written;

    fx_init_sub(&fx, sub, sizeof(sub));
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"n\":1}\n", "");
    /* Noticed by the next write, before a tick. */
    rm_rf(sub);
    ck_assert_int_eq(write_once(&fx, "{\"n\":2}\n", &written), SL_SINK_RETRY);
    ck_assert_uint_eq(written, 0);
    check_failing_open(&fx);
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_int_eq(write_once(&fx, "{\"n\":2}\n", &written), SL_SINK_RETRY);
    ck_assert_uint_eq(written, 0);
    check_failing_open(&fx);
    ck_assert_int_eq(access(sub, F_OK), -1);
    /* The folder is back: the tick opens the file and the sink is ok. */
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    sl_sink_health(&fx.sink, &h);
    ck_assert(h.ok);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.failing_since_ms), 0);
    put(&fx, "{\"n\":2}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":2}\n");

    /* Noticed by the tick, with nothing to write. */
    rm_rf(sub);
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    check_failing_open(&fx);
    ck_assert_int_eq(write_once(&fx, "{\"n\":3}\n", &written), SL_SINK_RETRY);
    ck_assert_uint_eq(written, 0);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    put(&fx, "{\"n\":3}\n", ""); /* the write itself opens it again */
    sl_sink_health(&fx.sink, &h);
    ck_assert(h.ok);
    ck_assert_str_eq(slurp(fx.path), "{\"n\":3}\n");

    /* A reopen (SIGHUP) that cannot open the path gives the old file up. */
    rm_rf(sub);
    fx.sink.ops->reopen(&fx.sink);
    check_failing_open(&fx);
    ck_assert_int_eq(write_once(&fx, "{\"n\":4}\n", &written), SL_SINK_RETRY);
    ck_assert_uint_eq(written, 0);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    fx.sink.ops->reopen(&fx.sink);
    put(&fx, "{\"n\":4}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":4}\n");
    fx_fini(&fx);
}
END_TEST

/* create_dirs = yes: a removed folder is made again, at once. */
START_TEST(test_sink_file_folder_removed_create_dirs)
{
    struct fixture fx;
    struct sl_sink_health h;
    struct stat st;
    char sub[128];

    fx_init_sub(&fx, sub, sizeof(sub));
    fx.fcfg.create_dirs = true;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"n\":1}\n", "");
    /* By the next write, before a tick. */
    rm_rf(sub);
    put(&fx, "{\"n\":2}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":2}\n");
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0750);
    /* By the tick. */
    rm_rf(sub);
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_int_eq(access(fx.path, F_OK), 0);
    put(&fx, "{\"n\":3}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":3}\n");
    sl_sink_health(&fx.sink, &h);
    ck_assert(h.ok);
    ck_assert_uint_eq(h.failures, 0);
    fx_fini(&fx);
}
END_TEST

/*
 * Tears line 2 of lines 0..4 with RLIMIT_FSIZE (the kernel takes 250 bytes,
 * then refuses, as on a full disk).  Returns the bytes reported written
 * (200); the sink then holds the head of line 2 (50 bytes) in the file.
 */
static size_t
tear_line(struct fixture *fx, char *data)
{
    struct rlimit rl;
    size_t written = 0, more = 0;

    signal(SIGXFSZ, SIG_IGN);
    for (int i = 0; i < 4; i++) {
        line100(data + i * 100, i);
    }
    struct iovec iov[1] = {{data, 400}}, rest[1] = {{data + 200, 200}};
    enum sl_sink_result r1, r2;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rlim_t saved = rl.rlim_cur;
    /* No assertion until the limit is lifted: Check's own messages are
     * written to a file too. */
    rl.rlim_cur = 250;
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0) {
        ck_abort_msg("setrlimit: %s", strerror(errno));
    }
    r1 = fx->sink.ops->write(&fx->sink, iov, 1, &written);
    r2 = fx->sink.ops->write(&fx->sink, rest, 1, &more);
    rl.rlim_cur = saved;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ck_assert_int_eq(r1, SL_SINK_OK);
    ck_assert_uint_eq(written, 200);
    ck_assert_int_eq(r2, SL_SINK_RETRY);
    ck_assert_uint_eq(more, 0);
    struct stat st;
    ck_assert_int_eq(stat(fx->path, &st), 0);
    ck_assert_int_eq(st.st_size, 250); /* the torn head is in the file */
    return written;
}

/* Writes the rest (lines 2 and 3) the way the writer does after a retry. */
static void
finish_lines(struct fixture *fx, char *data)
{
    size_t off = 200;

    for (int calls = 0; off < 400; calls++) {
        size_t written = 0;
        struct iovec iov[1] = {{data + off, 400 - off}};
        ck_assert_int_lt(calls, 10);
        ck_assert_int_eq(fx->sink.ops->write(&fx->sink, iov, 1, &written), SL_SINK_OK);
        ck_assert_uint_eq(written % 100, 0);
        off += written;
    }
}

/*
 * A torn line when the sink leaves its file (renamed, then SIGHUP or the
 * tick): the head is cut from the old file, which ends in a whole line, and
 * the event goes whole to the new file: each line once, in one file.
 * Without a rename the line is finished in the same file.
 */
START_TEST(test_sink_file_torn_line_cut_on_leaving)
{
    static char data[400];
    struct fixture fx;
    char moved[160];
    size_t len;
    char *t;

    for (int how = 0; how < 3; how++) {
        fx_init_clock(&fx, T0_MS);
        snprintf(moved, sizeof(moved), "%s.1", fx.path);
        ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
        tear_line(&fx, data);
        if (how == 0) {
            ck_assert_int_eq(rename(fx.path, moved), 0);
            fx.sink.ops->reopen(&fx.sink); /* SIGHUP */
        } else if (how == 1) {
            ck_assert_int_eq(rename(fx.path, moved), 0);
            fx.sink.ops->tick(&fx.sink, sl_now_ms()); /* noticed */
        } else {
            fx.sink.ops->reopen(&fx.sink); /* the same file: finished in it */
        }
        finish_lines(&fx, data);
        if (how < 2) {
            t = read_all(moved, &len);
            check_lines(moved, t, len, 0, 2);
            free(t);
            t = read_all(fx.path, &len);
            check_lines(fx.path, t, len, 2, 4);
            free(t);
        } else {
            t = read_all(fx.path, &len);
            check_lines(fx.path, t, len, 0, 4);
            free(t);
        }
        fx_fini(&fx);
    }
}
END_TEST

/*
 * The file truncated under the sink (logrotate copytruncate): the size
 * count follows, so size rotation does not come early, and a torn line's
 * head that went with the truncation is written whole again.
 */
START_TEST(test_sink_file_truncated_under_us)
{
    static char data[400];
    struct fixture fx;
    size_t len;
    char *t;

    fx_init_clock(&fx, T0_MS);
    fx.fcfg.rotate_bytes = 1000;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put_lines(&fx, 0, 8);
    ck_assert_int_eq(truncate(fx.path, 0), 0);
    put_lines(&fx, 8, 13); /* 500 bytes in the file: no rotation */
    ck_assert_uint_eq(sl_counter_get(&fx.stats.rotations), 0);
    t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 8, 13);
    free(t);
    put_lines(&fx, 13, 19); /* 1100: rotated */
    ck_assert_uint_eq(sl_counter_get(&fx.stats.rotations), 1);
    t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 18, 19);
    free(t);
    fx_fini(&fx);

    /* Truncated while a line is torn: that line is written whole. */
    fx_init_clock(&fx, T0_MS);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    tear_line(&fx, data);
    ck_assert_int_eq(truncate(fx.path, 0), 0);
    finish_lines(&fx, data);
    t = read_all(fx.path, &len);
    check_lines(fx.path, t, len, 2, 4);
    free(t);
    fx_fini(&fx);
}
END_TEST

/*
 * What the tick returns (sink.h): the writer rests while every sink says
 * SL_SINK_TICK_NONE, so each case that must still be handled with no
 * event written asks for its tick: a dirty file under fsync = interval
 * (at its deadline), the next rotate_interval boundary, a file that cannot
 * be opened (at once); a clean file with nothing due asks for none.
 */
START_TEST(test_sink_file_tick_needs)
{
    struct fixture fx;
    char sub[128];

    fx_init(&fx, SL_FSYNC_NONE);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{}\n", "");
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), SL_SINK_TICK_NONE);
    fx_fini(&fx);

    fx_init(&fx, SL_FSYNC_INTERVAL);
    fx.fcfg.fsync_interval_ms = 3600 * 1000;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), SL_SINK_TICK_NONE); /* clean */
    put(&fx, "{}\n", "");
    uint64_t d = fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_msg(d > 3500 * 1000 && d <= 3600 * 1000, "dirty: next tick in %llu ms",
                  (unsigned long long)d);
    /* Synced by the tick at the deadline: nothing more to do. */
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms() + 3600 * 1000), SL_SINK_TICK_NONE);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 1);
    fx_fini(&fx);

    fx_init_clock(&fx, T0_MS + HOUR_MS - 500); /* 12:59:59.500 */
    fx.fcfg.rotate_interval_ms = (uint64_t)HOUR_MS;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), 500);
    fake_now_ms = T0_MS + HOUR_MS + 300;
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), HOUR_MS - 300);
    fx_fini(&fx);

    fx_init_sub(&fx, sub, sizeof(sub));
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    rm_rf(sub);
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), 0); /* failing: retried */
    check_failing_open(&fx);
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), 0);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_uint_eq(fx.sink.ops->tick(&fx.sink, sl_now_ms()), SL_SINK_TICK_NONE); /* open */
    fx_fini(&fx);
}
END_TEST

static Suite *
sink_file_suite(void)
{
    Suite *s = suite_create("sink_file");
    TCase *tc = tcase_create("file");
    tcase_add_test(tc, test_sink_file_append_and_mode);
    tcase_add_test(tc, test_sink_file_fsync_batch);
    tcase_add_test(tc, test_sink_file_fsync_interval_and_final);
    tcase_add_test(tc, test_sink_file_reopen_after_rename);
    tcase_add_test(tc, test_sink_file_reopen_on_request);
    tcase_add_test(tc, test_sink_file_missing_folder);
    tcase_add_test(tc, test_sink_file_torn_tail_cut);
    tcase_add_test(tc, test_sink_file_short_writes_exact_prefix);
    tcase_add_test(tc, test_sink_file_folder_removed);
    tcase_add_test(tc, test_sink_file_folder_removed_create_dirs);
    tcase_add_test(tc, test_sink_file_torn_line_cut_on_leaving);
    tcase_add_test(tc, test_sink_file_truncated_under_us);
    tcase_add_test(tc, test_sink_file_tick_needs);
    suite_add_tcase(s, tc);
    tc = tcase_create("rotation");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sink_file_rotate_size);
    tcase_add_test(tc, test_sink_file_rotate_interval);
    tcase_add_test(tc, test_sink_file_template_paths);
    tcase_add_test(tc, test_sink_file_interrupted_rotation);
    tcase_add_test(tc, test_sink_file_follower_sees_every_line_once);
    suite_add_tcase(s, tc);
    tc = tcase_create("housekeeping");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sink_file_retention);
    tcase_add_test(tc, test_sink_file_compress_gzip);
    tcase_add_test(tc, test_sink_file_compress_zstd);
    tcase_add_test(tc, test_sink_file_compress_recovery);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    sl_log_init(LOG_ERR);
    SRunner *sr = srunner_create(sink_file_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
