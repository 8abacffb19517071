/*
 * check_sinks — the file sink against the real sluiced:
 *
 *   full_disk  a real small file system (a tmpfs the test mounts, in a mount
 *              namespace of its own, so nothing outlives the test) filled,
 *              drained and filled again, three times: the sender is paused
 *              while the disk is full (not dropped), UDP drops are counted,
 *              /healthz and the log say why, writing resumes by itself, and
 *              the file is always an exact prefix of the event stream; at
 *              the end every event is there exactly once and no line is
 *              damaged.  Needs root (CAP_SYS_ADMIN); skipped with a message
 *              otherwise.
 *   dir_removed  `rm -rf` of the output folder: with create_dirs = no the sink
 *              fails (503, sluice_sink_up 0) and holds the events until the
 *              folder is back, then writes each once; with create_dirs = yes
 *              it makes the folder again at once.
 *   torn_rotated  the disk fills in the middle of a line, then the file is
 *              renamed away (with SIGHUP, or noticed by the sink): the renamed
 *              file ends in a whole line and every event is in one of the two
 *              files, once.  Needs root, like full_disk.
 *   rotation   size rotation with zstd compression under load, followed by a
 *              real `tail -F`: the rotated files decompress to exactly the
 *              events written, and tail -F sees every event exactly once.
 *
 * Each test has its own temp dir, ports and daemon (harness.h); waits poll
 * with deadlines.  Run: SLUICED=build/sluiced build/tests/integration/check_sinks
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <zstd.h>

static struct harness H;

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
}

static void
teardown(void)
{
    harness_fini(&H);
}

static void
stop_daemon_ok(void)
{
    int status = 0;
    enum harness_wait w = harness_stop(&H, SIGTERM, 60000, &status);

    HARNESS_REQUIRE(&H, w == HARNESS_WAIT_OK, "daemon did not exit within 60 s of SIGTERM");
    HARNESS_REQUIRE(&H, WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status %d",
                    status);
}

/* True when the daemon's log contains text. */
static bool
log_has(const char *text)
{
    char *log = harness_read_file(H.log_path, NULL);
    bool found = log != NULL && strstr(log, text) != NULL;

    free(log);
    return found;
}

/* --- a sender that records its progress ----------------------------------------- */

struct sender {
    pthread_t thread;
    int fd;
    uint64_t seq_base, n;
    _Atomic uint64_t sent; /* bytes */
    int err;
};

static void *
sender_main(void *arg)
{
    struct sender *s = arg;
    static __thread char buf[8192];
    uint64_t end = s->n * HARNESS_EVENT_BYTES, pos = 0;

    while (pos < end) {
        size_t len = harness_stream_fill(buf, sizeof(buf), pos, end, s->seq_base);
        if (harness_send_all(s->fd, buf, len) == -1) {
            s->err = errno;
            return NULL;
        }
        pos += len;
        atomic_store(&s->sent, pos);
    }
    return NULL;
}

static void
sender_start(struct sender *s, int fd, uint64_t seq_base, uint64_t n)
{
    s->fd = fd;
    s->seq_base = seq_base;
    s->n = n;
    atomic_store(&s->sent, 0);
    s->err = 0;
    ck_assert_int_eq(pthread_create(&s->thread, NULL, sender_main, s), 0);
}

/* --- full disk --------------------------------------------------------------------- */

#define DISK_BYTES (4 * 1024 * 1024) /* more than all the cycles write */
#define CYCLE_EVENTS 2500            /* 500 KB per cycle: far more than the space left */
#define CYCLES 3

static char disk[PATH_MAX - 32];

/*
 * Mounts a DISK_BYTES tmpfs on H.dir/disk in a private mount namespace.
 * Returns false (with the reason in why) when that is not possible here.
 */
static bool
mount_small_disk(char *why, size_t len)
{
    harness_path(&H, "disk", disk, sizeof(disk));
    ck_assert_int_eq(mkdir(disk, 0755), 0);
    if (geteuid() != 0) {
        snprintf(why, len, "not root");
        return false;
    }
    /* A namespace of our own: the mount dies with this test process and
     * its daemon, whatever happens to the test. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        snprintf(why, len, "cannot make a private mount namespace: %s", strerror(errno));
        return false;
    }
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%d,mode=0755", DISK_BYTES);
    if (mount("sluice-test", disk, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
        snprintf(why, len, "cannot mount a tmpfs: %s", strerror(errno));
        return false;
    }
    return true;
}

/* Fills the disk with a ballast file until at most keep bytes are free. */
static void
fill_disk(const char *ballast, uint64_t keep)
{
    static char zeros[4096];
    struct statvfs vs;
    int fd = open(ballast, O_WRONLY | O_CREAT | O_APPEND, 0644);

    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 100000; i++) {
        ck_assert_int_eq(statvfs(disk, &vs), 0);
        if ((uint64_t)vs.f_bavail * vs.f_bsize <= keep) {
            break;
        }
        if (write(fd, zeros, sizeof(zeros)) < 0) {
            ck_assert_int_eq(errno, ENOSPC);
            break;
        }
    }
    close(fd);
}

/*
 * Checks the output: every line is a whole TCP event in stream order or a
 * whole UDP event, and a torn last line (the disk is full right now) is the
 * head of the next TCP event or of a UDP event.  Returns the TCP events.
 */
static uint64_t
check_prefix(const char *path, bool final)
{
    size_t len = 0;
    char *data = harness_read_file(path, &len), want[HARNESS_EVENT_BYTES];
    uint64_t next = 0;
    size_t off = 0;

    ck_assert_ptr_nonnull(data);
    while (off < len) {
        char *nl = memchr(data + off, '\n', len - off);
        size_t ll = nl != NULL ? (size_t)(nl - (data + off)) + 1 : len - off;
        harness_event_line(want, next);
        if (strncmp(data + off, "{\"udp\":", ll < 7 ? ll : 7) == 0) {
            HARNESS_REQUIRE(&H, nl == NULL || (ll > 9 && data[off + ll - 2] == '}'),
                            "damaged udp line at byte %zu", off);
        } else {
            HARNESS_REQUIRE(&H, memcmp(data + off, want, ll) == 0,
                            "byte %zu: not event %" PRIu64 " (the file is not a prefix)", off,
                            next);
            HARNESS_REQUIRE(&H, nl == NULL || ll == HARNESS_EVENT_BYTES,
                            "byte %zu: line of %zu bytes", off, ll);
            if (nl != NULL) {
                next++;
            }
        }
        HARNESS_REQUIRE(&H, nl != NULL || !final, "the file ends in a torn line");
        off += ll;
    }
    free(data);
    return next;
}

struct stall {
    const char *path;
    struct sender *snd;
    off_t size;
    uint64_t sent;
    int64_t since;
};

/* The output has not grown and the sender has not progressed for 500 ms. */
static bool
stalled_cb(void *arg)
{
    struct stall *st = arg;
    struct stat sb;
    uint64_t sent = atomic_load(&st->snd->sent);
    int64_t now = harness_now_ms();

    if (stat(st->path, &sb) < 0) {
        return false;
    }
    if (sb.st_size != st->size || sent != st->sent) {
        st->size = sb.st_size;
        st->sent = sent;
        st->since = now;
        return false;
    }
    return now - st->since >= 500 && sent < st->snd->n * HARNESS_EVENT_BYTES;
}

struct done {
    const char *path;
    uint64_t tcp_events;
};

/* The file holds at least tcp_events whole TCP events. */
static bool
done_cb(void *arg)
{
    struct done *d = arg;
    size_t len = 0;
    char *data = harness_read_file(d->path, &len);
    uint64_t n = 0;

    if (data == NULL) {
        return false;
    }
    for (size_t off = 0; off < len;) {
        char *nl = memchr(data + off, '\n', len - off);
        if (nl == NULL) {
            break;
        }
        n += strncmp(data + off, "{\"seq\":", 7) == 0;
        off = (size_t)(nl - data) + 1;
    }
    free(data);
    return n >= d->tcp_events;
}

START_TEST(test_sinks_full_disk)
{
    char why[256], out[PATH_MAX], ballast[PATH_MAX];
    int tport, uport, aport;

    if (!mount_small_disk(why, sizeof(why))) {
        fprintf(stderr, "SKIPPED: check_sinks full_disk needs a tmpfs mount (%s)\n", why);
        return;
    }
    snprintf(out, sizeof(out), "%s/out.ndjson", disk);
    snprintf(ballast, sizeof(ballast), "%s/ballast", disk);
    tport = harness_free_port(SOCK_STREAM);
    uport = harness_free_port(SOCK_DGRAM);
    aport = harness_free_port(SOCK_STREAM);
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "max_line_bytes = 1KiB\n"
                                          "recv_buffer = 4KiB\n"
                                          "[source udp]\n"
                                          "type = udp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "max_line_bytes = 1KiB\n"
                                          "[queue main]\n"
                                          "capacity = 64KiB\n"
                                          "chunk_size = 8KiB\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n",
                                          aport, tport, uport, out),
                     0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tport, 10000) == HARNESS_WAIT_OK, "not listening");
    int fd = harness_tcp_connect(tport, 120000);
    ck_assert_int_ge(fd, 0);
    /* Small socket buffers on both ends, so a paused source blocks the
     * sender at once instead of the kernel absorbing megabytes. */
    int small = 4096;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    int ufd = harness_udp_connect(uport);
    ck_assert_int_ge(ufd, 0);

    struct sender snd;
    uint64_t total = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        /* Fill: leave less room than one cycle's events need. */
        fill_disk(ballast, 48 * 1024);
        sender_start(&snd, fd, total, CYCLE_EVENTS);
        struct stall st = {.path = out, .snd = &snd, .size = -1};
        HARNESS_REQUIRE(&H, harness_poll(&H, 60000, stalled_cb, &st) == HARNESS_WAIT_OK,
                        "cycle %d: the sink never stalled on the full disk", cycle);
        /* Full: the file is an exact prefix, the sender is held back. */
        uint64_t written = check_prefix(out, false);
        HARNESS_REQUIRE(&H, written < total + CYCLE_EVENTS, "cycle %d: nothing held back", cycle);
        HARNESS_REQUIRE(&H, log_has("No space left on device"), "no ENOSPC in the log");
        char *body = NULL;
        int code = harness_http_get(aport, "/healthz", 5000, &body);
        HARNESS_REQUIRE(&H, code == 503 && body != NULL && strstr(body, "No space left") != NULL,
                        "cycle %d: /healthz answered %d: %s", cycle, code,
                        body != NULL ? body : "");
        free(body);
        if (cycle == 0) {
            /* UDP cannot be paused: with the queue full its events are
             * dropped and counted (checked in the exit summary). */
            char line[64];
            for (int i = 0; i < 2000; i++) {
                int n = snprintf(line, sizeof(line), "{\"udp\":%d}\n", i);
                ck_assert_int_eq(harness_udp_send(ufd, line, (size_t)n), 0);
            }
        }
        /* Drain: space comes back, writing resumes by itself. */
        ck_assert_int_eq(unlink(ballast), 0);
        pthread_join(snd.thread, NULL);
        HARNESS_REQUIRE(&H, snd.err == 0, "cycle %d: send: %s", cycle, strerror(snd.err));
        total += CYCLE_EVENTS;
        struct done d = {.path = out, .tcp_events = total};
        HARNESS_REQUIRE(&H, harness_poll(&H, 60000, done_cb, &d) == HARNESS_WAIT_OK,
                        "cycle %d: writing did not resume", cycle);
        HARNESS_REQUIRE(&H, check_prefix(out, false) == total, "cycle %d: count", cycle);
        HARNESS_REQUIRE(&H, log_has("working again"), "no recovery in the log");
    }
    close(fd);
    close(ufd);
    stop_daemon_ok();
    HARNESS_REQUIRE(&H, check_prefix(out, true) == total, "final count");
    unsigned long long drops = 0, pauses = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "udp", "dropped_full", &drops) == 0 && drops > 0,
                    "no UDP drops counted (%llu)", drops);
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "app", "pauses", &pauses) == 0 && pauses > 0,
                    "the TCP source never paused (%llu)", pauses);
    umount2(disk, MNT_DETACH);
}
END_TEST

/* --- shared: health and metrics ---------------------------------------------------- */

#define M_SINK_UP "sluice_sink_up{sink=\"archive\"}"
#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"}"
#define M_WRITTEN "sluice_sink_written_events_total{sink=\"archive\"}"

struct health_want {
    int port;
    int code;                 /* the status wanted */
    const char *text, *text2; /* NULL, or strings the body must hold */
    char last[512];           /* the last answer, for the failure message */
};

/* GET /healthz answers want->code with want->text in the body. */
static bool
health_is_cb(void *arg)
{
    struct health_want *hw = arg;
    char *body = NULL;
    int code = harness_http_get(hw->port, "/healthz", 5000, &body);
    bool ok = code == hw->code && (hw->text == NULL || (body != NULL && strstr(body, hw->text))) &&
              (hw->text2 == NULL || (body != NULL && strstr(body, hw->text2)));

    snprintf(hw->last, sizeof(hw->last), "%d %s", code, body != NULL ? body : "");
    free(body);
    return ok;
}

/* Polls /healthz until it answers code with text and text2 (each may be
 * NULL) in the body. */
static void
require_health(int port, int code, const char *text, const char *text2, int timeout_ms)
{
    struct health_want hw = {.port = port, .code = code, .text = text, .text2 = text2};

    HARNESS_REQUIRE(&H, harness_poll(&H, timeout_ms, health_is_cb, &hw) == HARNESS_WAIT_OK,
                    "/healthz: want %d with \"%s\" and \"%s\", last answered %s", code,
                    text != NULL ? text : "", text2 != NULL ? text2 : "", hw.last);
}

/* --- the output folder removed ---------------------------------------------------- */

/*
 * seqs [RM_HELD, RM_HELD + RM_BEFORE) are written, then removed with the
 * folder; seqs [0, RM_HELD) are sent after the removal and must all land
 * in the new file, once.
 */
#define RM_BEFORE 100
#define RM_HELD 1000

static void
rm_rf(const char *path)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
    ck_assert_int_eq(system(cmd), 0);
}

/*
 * One tcp source (one thread) -> file sink "archive" at out, admin on a
 * free port; sink_extra is more lines for the sink.  Starts the daemon,
 * waits until it listens and returns a connection; *aport is the admin port.
 */
static int
file_daemon_start(const char *out, const char *sink_extra, int *aport)
{
    int tport = harness_free_port(SOCK_STREAM), fd;

    *aport = harness_free_port(SOCK_STREAM);
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n"
                                          "%s",
                                          *aport, tport, out, sink_extra),
                     0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tport, 10000) == HARNESS_WAIT_OK, "not listening");
    fd = harness_tcp_connect(tport, 60000);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Starts a daemon writing to H.dir/out/out.ndjson; returns a connection. */
static int
dir_start(bool create_dirs, char *outdir, char *out, size_t len, int *aport)
{
    harness_path(&H, "out", outdir, len);
    ck_assert_int_eq(mkdir(outdir, 0755), 0);
    snprintf(out, len, "%s/out.ndjson", outdir);
    int fd =
        file_daemon_start(out, create_dirs ? "create_dirs = yes\n" : "create_dirs = no\n", aport);
    ck_assert_int_eq(harness_send_events(fd, RM_HELD, RM_BEFORE), 0);
    harness_require_lines(&H, out, RM_BEFORE, 10000);
    return fd;
}

/*
 * create_dirs = no, `rm -rf` of the output folder: the sink must not write
 * into the deleted file.  It fails (503 naming it and the error,
 * sluice_sink_up 0), holds the events, and once the folder is back writes
 * every one of them to the new file, once.
 */
START_TEST(test_sinks_dir_removed)
{
    char outdir[PATH_MAX], out[PATH_MAX];
    const char *paths[1] = {out};
    double v = -1;
    int aport, fd;

    fd = dir_start(false, outdir, out, sizeof(outdir), &aport);
    rm_rf(outdir);
    /* Noticed within a second, with nothing to write. */
    require_health(aport, 503, "\"archive\"", "No such file or directory", 10000);
    HARNESS_REQUIRE(&H, harness_metric_get(aport, M_SINK_UP, &v) == 0 && v == 0,
                    "sluice_sink_up is %g while the folder is missing", v);
    /* Events sent now are held, not written anywhere. */
    ck_assert_int_eq(harness_send_events(fd, 0, RM_HELD), 0);
    harness_require_metric(&H, aport, M_RECEIVED, RM_BEFORE + RM_HELD, true, 10000);
    HARNESS_REQUIRE(&H, harness_metric_get(aport, M_WRITTEN, &v) == 0 && v == RM_BEFORE,
                    "%g events counted as written while the folder is missing", v);
    HARNESS_REQUIRE(&H, !harness_exists(outdir), "%s was created", outdir);
    require_health(aport, 503, "\"archive\"", "No such file or directory", 1000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "No such file or directory"), "nothing in the log");
    /* The folder is back: everything held is written to the new file. */
    ck_assert_int_eq(mkdir(outdir, 0755), 0);
    harness_require_lines(&H, out, RM_HELD, 20000);
    require_health(aport, 200, NULL, NULL, 10000);
    harness_require_metric(&H, aport, M_SINK_UP, 1, false, 10000);
    harness_require_metric(&H, aport, M_WRITTEN, RM_BEFORE + RM_HELD, false, 10000);
    close(fd);
    stop_daemon_ok();
    harness_require_exactly_once(&H, paths, 1, RM_HELD);
}
END_TEST

/*
 * create_dirs = yes: the sink makes the folder again and creates the file
 * on the next write, so the events sent right after the removal land there.
 */
START_TEST(test_sinks_dir_removed_create_dirs)
{
    char outdir[PATH_MAX], out[PATH_MAX];
    const char *paths[1] = {out};
    int aport, fd;

    fd = dir_start(true, outdir, out, sizeof(outdir), &aport);
    rm_rf(outdir);
    ck_assert_int_eq(harness_send_events(fd, 0, RM_HELD), 0);
    harness_require_lines(&H, out, RM_HELD, 10000);
    harness_require_metric(&H, aport, M_WRITTEN, RM_BEFORE + RM_HELD, false, 10000);
    harness_require_metric(&H, aport, M_SINK_UP, 1, false, 10000);
    HARNESS_REQUIRE(&H, harness_healthz_ok(aport, 5000), "/healthz is not ok");
    close(fd);
    stop_daemon_ok();
    harness_require_exactly_once(&H, paths, 1, RM_HELD);
}
END_TEST

/* --- a torn line when the file is rotated away (full disk) ------------------------ */

#define TORN_BEFORE 100 /* 20000 bytes: the last tmpfs page has 480 bytes free */
#define TORN_AFTER 100

/* The file at path exists, and ends in a whole line. */
static bool
ends_whole(const char *path)
{
    size_t len = 0;
    char *data = harness_read_file(path, &len);
    bool whole = data != NULL && (len == 0 || data[len - 1] == '\n');

    free(data);
    return whole;
}

struct torn_state {
    const char *out, *moved;
    off_t torn_size; /* the file's size with the torn line in it */
};

static bool
torn_cb(void *arg)
{
    struct torn_state *t = arg;
    struct stat sb;

    if (stat(t->out, &sb) < 0 || sb.st_size % HARNESS_EVENT_BYTES == 0) {
        return false;
    }
    t->torn_size = sb.st_size;
    return true;
}

/* The sink has moved to a new file at out, and moved ends in a whole line. */
static bool
left_cb(void *arg)
{
    struct torn_state *t = arg;

    return harness_exists(t->out) && ends_whole(t->moved);
}

static bool
all_written_cb(void *arg)
{
    struct torn_state *t = arg;

    return harness_file_lines(t->moved) + harness_file_lines(t->out) >= TORN_BEFORE + TORN_AFTER;
}

/*
 * The disk fills in the middle of a line (the torn head waits in the file
 * for its rest), then the file is renamed away, with a SIGHUP or noticed by
 * the sink.  The head is cut from the renamed file, which ends in a whole
 * line, and the event is written whole to the new file once space is back:
 * every event once across both files.
 */
static void
torn_rotated_scenario(bool hup)
{
    char why[256], out[PATH_MAX], moved[PATH_MAX], ballast[PATH_MAX];
    const char *paths[2] = {moved, out};
    struct torn_state ts = {.out = out, .moved = moved};
    struct stat sb;
    int aport, fd;

    if (!mount_small_disk(why, sizeof(why))) {
        fprintf(stderr, "SKIPPED: check_sinks torn_rotated needs a tmpfs mount (%s)\n", why);
        return;
    }
    snprintf(out, sizeof(out), "%s/out.ndjson", disk);
    snprintf(moved, sizeof(moved), "%s/out.ndjson.1", disk);
    snprintf(ballast, sizeof(ballast), "%s/ballast", disk);
    fd = file_daemon_start(out, "", &aport);
    ck_assert_int_eq(harness_send_events(fd, 0, TORN_BEFORE), 0);
    harness_require_lines(&H, out, TORN_BEFORE, 10000);
    /* Full: the next events fill the file's last page and tear a line. */
    fill_disk(ballast, 0);
    ck_assert_int_eq(harness_send_events(fd, TORN_BEFORE, TORN_AFTER), 0);
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, torn_cb, &ts) == HARNESS_WAIT_OK,
                    "the full disk did not tear a line");
    require_health(aport, 503, "\"archive\"", "No space left", 10000);
    /* Rotated away while the line is torn. */
    ck_assert_int_eq(rename(out, moved), 0);
    if (hup) {
        ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    }
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, left_cb, &ts) == HARNESS_WAIT_OK, "%s: %s", moved,
                    harness_exists(out) ? "ends in a torn line" : "no new file was opened");
    /* Exactly the torn head was cut: the whole lines before it stay. */
    ck_assert_int_eq(stat(moved, &sb), 0);
    HARNESS_REQUIRE(&H, sb.st_size == ts.torn_size - ts.torn_size % HARNESS_EVENT_BYTES,
                    "%s: %lld bytes, %lld with the torn line", moved, (long long)sb.st_size,
                    (long long)ts.torn_size);
    /* Space again: the held events, the torn one whole, go to the new file. */
    ck_assert_int_eq(unlink(ballast), 0);
    HARNESS_REQUIRE(&H, harness_poll(&H, 20000, all_written_cb, &ts) == HARNESS_WAIT_OK,
                    "%" PRIu64 " + %" PRIu64 " lines written", harness_file_lines(moved),
                    harness_file_lines(out));
    close(fd);
    stop_daemon_ok();
    HARNESS_REQUIRE(&H, ends_whole(moved), "%s ends in a torn line", moved);
    harness_require_exactly_once(&H, paths, 2, TORN_BEFORE + TORN_AFTER);
    umount2(disk, MNT_DETACH);
}

START_TEST(test_sinks_torn_line_rotated_sighup)
{
    torn_rotated_scenario(true);
}
END_TEST

START_TEST(test_sinks_torn_line_rotated_noticed)
{
    torn_rotated_scenario(false);
}
END_TEST

/* --- rotation, compression and a real tail -F ------------------------------------ */

#define ROT_EVENTS 30000 /* 6 MB, about 90 files of 64 KiB */

/* Decompresses a .zst file into out_path.  0 / -1. */
static int
unzstd(const char *in_path, const char *out_path)
{
    size_t len = 0;
    char *in = harness_read_file(in_path, &len);
    FILE *out = fopen(out_path, "w");
    ZSTD_DCtx *dx = ZSTD_createDCtx();
    static char buf[1 << 16];
    ZSTD_inBuffer ib = {in, len, 0};
    size_t r = 1;
    int rc = 0;

    if (in == NULL || out == NULL || dx == NULL) {
        rc = -1;
        goto done;
    }
    while (ib.pos < ib.size) {
        ZSTD_outBuffer ob = {buf, sizeof(buf), 0};
        r = ZSTD_decompressStream(dx, &ob, &ib);
        if (ZSTD_isError(r)) {
            rc = -1;
            goto done;
        }
        fwrite(buf, 1, ob.pos, out);
    }
    rc = r == 0 ? 0 : -1; /* a whole frame */
done:
    if (out != NULL) {
        fclose(out);
    }
    ZSTD_freeDCtx(dx);
    free(in);
    return rc;
}

static pid_t
start_tail(const char *path, const char *out)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_WRONLY);
        if (fd < 0 || nul < 0 || dup2(fd, 1) < 0 || dup2(nul, 2) < 0) {
            _exit(127);
        }
        execlp("tail", "tail", "-n", "+1", "-s", "0.05", "-F", path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

START_TEST(test_sinks_rotation_compression_tail)
{
    char out[PATH_MAX], tail_out[PATH_MAX], p[PATH_MAX + 64], dec[PATH_MAX];
    int tport = harness_free_port(SOCK_STREAM);

    harness_path(&H, "out.ndjson", out, sizeof(out));
    harness_path(&H, "tail.out", tail_out, sizeof(tail_out));
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\n"
                                          "producer_threads = 2\n"
                                          "admin_listen = off\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n"
                                          "rotate_bytes = 64KiB\n"
                                          "compress = zstd\n"
                                          "max_files = 1000\n",
                                          tport, out),
                     0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tport, 10000) == HARNESS_WAIT_OK, "not listening");
    /* The daemon has created the file: tail -F follows it from its start. */
    pid_t tail = start_tail(out, tail_out);
    ck_assert_int_gt(tail, 0);
    int fd = harness_tcp_connect(tport, 60000);
    ck_assert_int_ge(fd, 0);
    /*
     * In steps of 250 events (50 KB), each followed by a wait until tail -F
     * has printed them: a step crosses at most one rotation, as tail -F
     * needs (a file created and rotated away between two of its looks would
     * escape any follower).  tail's output then holds every event once.
     */
    uint64_t got = 0;
    enum harness_wait w = HARNESS_WAIT_OK;
    for (uint64_t i = 0; i < ROT_EVENTS && w == HARNESS_WAIT_OK; i += 250) {
        ck_assert_int_eq(harness_send_events(fd, i, 250), 0);
        w = harness_wait_lines(&H, tail_out, i + 250, 20000, &got);
    }
    close(fd);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    HARNESS_REQUIRE(&H, w == HARNESS_WAIT_OK, "tail -F saw %" PRIu64 " of %d lines", got,
                    ROT_EVENTS);
    stop_daemon_ok(); /* the housekeeper finishes or abandons its work */

    /* Restart to let the housekeeper finish every compression, then stop. */
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tport, 10000) == HARNESS_WAIT_OK, "not listening");
    struct harness_seqs s;
    char msg[1024];
    int64_t deadline = harness_now_ms() + harness_ms(60000);
    int files = 0, plain = 0;
    for (;;) {
        /* Every rotated file is compressed eventually. */
        char cmd[PATH_MAX + 64];
        snprintf(cmd, sizeof(cmd), "ls %s/out.ndjson.2* 2>/dev/null | grep -vc '\\.zst$'", H.dir);
        FILE *ls = popen(cmd, "r");
        ck_assert_ptr_nonnull(ls);
        plain = -1;
        if (fscanf(ls, "%d", &plain) != 1) {
            plain = -1;
        }
        pclose(ls);
        if (plain == 0 || harness_now_ms() > deadline) {
            break;
        }
        harness_poll_step(50);
    }
    HARNESS_REQUIRE(&H, plain == 0, "%d rotated files left uncompressed", plain);
    stop_daemon_ok();

    ck_assert_int_eq(harness_seqs_init(&s, ROT_EVENTS), 0);
    snprintf(p, sizeof(p), "ls %s/out.ndjson.2*.zst", H.dir);
    FILE *ls = popen(p, "r");
    ck_assert_ptr_nonnull(ls);
    char name[PATH_MAX];
    while (fgets(name, sizeof(name), ls) != NULL) {
        name[strcspn(name, "\n")] = '\0';
        snprintf(dec, sizeof(dec), "%s/dec.ndjson", H.dir);
        HARNESS_REQUIRE(&H, unzstd(name, dec) == 0, "%s does not decompress", name);
        ck_assert_int_eq(harness_seqs_add_file(&s, dec, true), 0);
        files++;
    }
    pclose(ls);
    ck_assert_int_eq(harness_seqs_add_file(&s, out, true), 0);
    HARNESS_REQUIRE(&H, files >= 50, "only %d rotated files", files);
    if (!harness_seqs_exactly_once(&s, msg, sizeof(msg))) {
        harness_report(&H, __FILE__, __LINE__, "rotated files");
        ck_abort_msg("rotated + active files: %s", msg);
    }
    harness_seqs_fini(&s);
    /* tail -F saw each event exactly once, whole. */
    ck_assert_int_eq(harness_seqs_init(&s, ROT_EVENTS), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, tail_out, true), 0);
    if (!harness_seqs_exactly_once(&s, msg, sizeof(msg))) {
        harness_report(&H, __FILE__, __LINE__, "tail -F");
        ck_abort_msg("tail -F: %s", msg);
    }
    harness_seqs_fini(&s);
}
END_TEST

/*
 * The writer's linger (writer.c, THE LINGER) end to end: one connection
 * sends LINGER_EVENTS events one at a time, ~150 us apart (a few thousand
 * a second, so each is a read and a push of its own), and the file sink
 * writes them in far fewer batches than events; every event lands exactly
 * once.  Without the linger every push wakes the writer, which writes it
 * alone: about one batch per event.
 */
#define LINGER_EVENTS 3000
#define M_BATCHES "sluice_sink_batches_total{sink=\"archive\"}"

static int64_t
linger_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

START_TEST(test_sinks_linger_stream)
{
    struct harness_std c = {0};
    char line[HARNESS_EVENT_BYTES + 8];
    double batches = -1;

    harness_std_require_start(&H, &c, NULL);
    int fd = harness_tcp_connect(c.port, 10000);
    ck_assert_int_ge(fd, 0);
    /* The stream's pace, not a synchronisation: one event per 150 us slot
     * on the clock; one that fell behind (a loaded machine, where a usleep
     * takes milliseconds and the stream fell below the linger's rate)
     * catches up at once. */
    int64_t next_us = linger_now_us();
    for (uint64_t i = 0; i < LINGER_EVENTS; i++) {
        size_t n = harness_event_line(line, i);
        ck_assert_int_eq(harness_send_all(fd, line, n), 0);
        next_us += 150;
        while (linger_now_us() < next_us) {
            sched_yield();
        }
    }
    harness_require_lines(&H, c.out_path, LINGER_EVENTS, 20000);
    harness_require_metric(&H, c.admin_port, M_WRITTEN, LINGER_EVENTS, false, 10000);
    HARNESS_REQUIRE(&H, harness_metric_get(c.admin_port, M_BATCHES, &batches) == 0,
                    "no %s in /metrics", M_BATCHES);
    HARNESS_REQUIRE(&H, batches * 2 < LINGER_EVENTS,
                    "%g batches for %d events sent one at a time: the writer did not linger",
                    batches, LINGER_EVENTS);
    close(fd);
    stop_daemon_ok();
    const char *paths[] = {c.out_path};
    harness_require_exactly_once(&H, paths, 1, LINGER_EVENTS);
}
END_TEST

static Suite *
sinks_suite(void)
{
    Suite *s = suite_create("sinks");
    TCase *tc;

    tc = tcase_create("full_disk");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_sinks_full_disk);
    suite_add_tcase(s, tc);
    tc = tcase_create("dir_removed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sinks_dir_removed);
    tcase_add_test(tc, test_sinks_dir_removed_create_dirs);
    suite_add_tcase(s, tc);
    tc = tcase_create("torn_rotated");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sinks_torn_line_rotated_sighup);
    tcase_add_test(tc, test_sinks_torn_line_rotated_noticed);
    suite_add_tcase(s, tc);
    tc = tcase_create("rotation");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_sinks_rotation_compression_tail);
    suite_add_tcase(s, tc);
    tc = tcase_create("linger");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sinks_linger_stream);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sinks_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
