/*
 * check_diskq — the disk queue against the real sluiced: tcp source →
 * [queue main] type = disk → file sink.
 *
 *   crash points: for every SLUICE_CRASH_AT point, under load, the daemon
 *     dies there (SIGKILL, as kill -9); the test restarts it and counts
 *     from the sequence numbers in the output: loss must be 0 for every
 *     event the queue had accepted (received, and every chunk written to
 *     the segment files: sluice_queue_chunks == 0) before the crash, no
 *     line may be damaged, and no event may appear more than twice
 *     (duplicates only for what was in flight to the sink).
 *   first write: the first run killed at the file sink's first write,
 *     before any periodic state write: the restart cuts the file back to
 *     the sink's start checkpoint; every line once.
 *   disk full: the queue directory is a small tmpfs mounted by the test
 *     (root; skipped otherwise); a filler file takes every free byte, the
 *     queue refuses (senders pause, /healthz says why), the filler goes,
 *     the queue resumes by itself; three cycles, every event exactly once.
 *   lock: a second sluiced on the same queue directory refuses to start.
 *   max_size: more than the filesystem can hold is refused at start.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_diskq
 */
#include "harness.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;
static char queue_dir[PATH_MAX + 16];
static char queue_extra[PATH_MAX + 256];
static bool mounted;

#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"}"
#define M_CHUNKS "sluice_queue_chunks{queue=\"main\"}"
#define M_REFUSING "sluice_queue_disk_refusing{queue=\"main\"}"
#define M_WERR "sluice_queue_disk_write_errors_total{queue=\"main\"}"

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&S, 0, sizeof(S));
    harness_path(&H, "q", queue_dir, sizeof(queue_dir));
    mounted = false;
}

static void
teardown(void)
{
    if (H.pid > 0) {
        harness_signal(&H, SIGKILL);
        harness_wait_exit(&H, 5000, NULL);
    }
    if (mounted) {
        umount2(queue_dir, MNT_DETACH);
    }
    harness_fini(&H);
}

static void
disk_config(const char *fsync, const char *max_size)
{
    snprintf(queue_extra, sizeof(queue_extra),
             "type = disk\npath = %s\nmax_size = %s\nfsync = %s\nfsync_interval = 100ms\n"
             "chunk_size = 128KiB\ncapacity = 2MiB\n",
             queue_dir, max_size, fsync);
    S.queue_extra = queue_extra;
}

static double
metric(const char *name)
{
    double v = -1;
    if (harness_metric_get(S.admin_port, name, &v) < 0) {
        return -1;
    }
    return v;
}

/* Sends events [base, base + n) on a new connection; 0 / -1 (the daemon
 * died: what it had not read is outside any guarantee). */
static int
send_batch(uint64_t base, uint64_t n)
{
    int fd = harness_tcp_connect(S.port, 10000);
    if (fd < 0) {
        return -1;
    }
    int rc = harness_send_events(fd, base, n);
    close(fd);
    return rc;
}

struct accepted_arg {
    uint64_t want;
};

static bool
accepted_pred(void *arg)
{
    struct accepted_arg *a = arg;
    return metric(M_RECEIVED) == (double)a->want && metric(M_CHUNKS) == 0;
}

/* --- crash points under load ------------------------------------------------------ */

#define BATCH 2000
#define MAX_BATCHES 200

static const struct {
    const char *point;
} crash_points[] = {
    {"append-mid:40"}, {"append-written:40"}, {"segment-roll:3"}, {"state-write:4"},
    {"commit-before:60"}, {"commit-after:60"},
};

static void
crash_run(const char *point)
{
    char env_crash[96];
    const char *env[] = {env_crash, NULL};
    uint64_t accepted = 0, sent = 0;
    int status;

    snprintf(env_crash, sizeof(env_crash), "SLUICE_CRASH_AT=%s", point);
    disk_config("interval", "64MiB");
    harness_std_require_start(&H, &S, env);
    /* Load until the crash point kills it; after each batch the test waits
     * until the queue has it on disk: that batch is then promised. */
    for (int b = 0; b < MAX_BATCHES && harness_alive(&H); b++) {
        int rc = send_batch(sent, BATCH);
        sent += BATCH; /* attempted: what arrived of it may be in the output */
        if (rc < 0) {
            break;
        }
        struct accepted_arg a = {.want = sent};
        if (harness_poll(&H, 10000, accepted_pred, &a) != HARNESS_WAIT_OK) {
            break;
        }
        accepted = sent;
    }
    HARNESS_REQUIRE(&H, harness_wait_exit(&H, 10000, &status) == HARNESS_WAIT_OK,
                    "%s: the daemon did not die at its crash point", point);
    HARNESS_REQUIRE(&H, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                    "%s: exited with status %d, not by SIGKILL", point, status);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "SLUICE_CRASH_AT: killing the process"),
                    "%s: no crash line in the log", point);
    HARNESS_REQUIRE(&H, accepted > 0, "%s: died before any batch was accepted", point);
    /* Restart without the hook: the backlog on disk is delivered. */
    HARNESS_REQUIRE(&H, harness_std_start(&H, &S, NULL, 10000) == HARNESS_WAIT_OK,
                    "%s: restart failed", point);
    uint64_t got = 0;
    (void)harness_wait_lines(&H, S.out_path, accepted, 20000, &got);
    harness_require_stop_ok(&H);

    struct harness_seqs s;
    char msg[1024];
    ck_assert_int_eq(harness_seqs_init(&s, sent), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, S.out_path, true), 0);
    uint64_t have = harness_seqs_count_range(&s, 0, accepted);
    uint64_t twice = 0;
    for (uint64_t i = 0; i < sent; i++) {
        twice += s.seen[i] > 2;
    }
    snprintf(msg, sizeof(msg),
             "%s: sent %" PRIu64 ", accepted %" PRIu64 ", delivered %" PRIu64 " of them; lines %" PRIu64
             ", damaged %" PRIu64 ", duplicates %" PRIu64 " (%s)",
             point, sent, accepted, have, s.lines, s.bad, s.dups, s.first_error);
    fprintf(stderr, "check_diskq: %s\n", msg);
    HARNESS_REQUIRE(&H, have == accepted, "loss: %s", msg);
    HARNESS_REQUIRE(&H, s.bad == 0, "damaged lines: %s", msg);
    HARNESS_REQUIRE(&H, twice == 0, "an event delivered three times or more: %s", msg);
    /* Exactly once into the file: the file sink's checkpoint (its length
     * where the committed record starts) cuts back what the replay writes
     * again (docs/protocol.md, "Exactly once into files"). */
    HARNESS_REQUIRE(&H, s.dups == 0, "duplicates in the file: %s", msg);
    harness_seqs_fini(&s);
}

START_TEST(test_crash_points)
{
    crash_run(crash_points[_i].point);
}
END_TEST

/*
 * The first run killed right after the file sink's first write, before the
 * queue's state file would be written by its poll: the sink's first
 * checkpoint (the file's length where it starts) is on disk from set-up,
 * so the restart cuts the file back to it and the replay writes those
 * lines once (without it: no state file, the queue replays from its oldest
 * record and the file holds the first write twice; seen under ASan in
 * check_chaos).
 */
START_TEST(test_first_write_killed)
{
    const char *env[] = {"SLUICE_CRASH_AT=commit-after:1", NULL};
    const uint64_t n = 2000;
    int status;
    disk_config("interval", "16MiB");
    harness_std_require_start(&H, &S, env);
    (void)send_batch(0, n); /* the daemon may die while it reads */
    HARNESS_REQUIRE(&H, harness_wait_exit(&H, 10000, &status) == HARNESS_WAIT_OK,
                    "the daemon did not die at its first write");
    HARNESS_REQUIRE(&H, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                    "exited with status %d, not by SIGKILL", status);
    struct harness_seqs before;
    ck_assert_int_eq(harness_seqs_init(&before, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(&before, S.out_path, true), 0);
    uint64_t written = harness_seqs_count_range(&before, 0, n);
    HARNESS_REQUIRE(&H, written > 0, "nothing in the file at the crash: the case shows nothing");
    HARNESS_REQUIRE(&H, harness_std_start(&H, &S, NULL, 10000) == HARNESS_WAIT_OK,
                    "restart failed");
    uint64_t got = 0;
    (void)harness_wait_lines(&H, S.out_path, written, 20000, &got);
    harness_require_stop_ok(&H);
    struct harness_seqs after;
    ck_assert_int_eq(harness_seqs_init(&after, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(&after, S.out_path, true), 0);
    uint64_t kept = 0;
    for (uint64_t i = 0; i < n; i++) {
        kept += before.seen[i] > 0 && after.seen[i] > 0;
    }
    fprintf(stderr,
            "check_diskq: first write killed: %" PRIu64 " events in the file at the crash, %" PRIu64
            " after the restart, duplicates %" PRIu64 ", damaged %" PRIu64 "\n",
            written, after.lines, after.dups, after.bad);
    HARNESS_REQUIRE(&H, kept == written, "lost %" PRIu64 " events the file had", written - kept);
    HARNESS_REQUIRE(&H, after.bad == 0, "damaged lines (%s)", after.first_error);
    HARNESS_REQUIRE(&H, after.dups == 0, "%" PRIu64 " duplicates", after.dups);
    harness_seqs_fini(&before);
    harness_seqs_fini(&after);
}
END_TEST

/* --- disk full on a small tmpfs ----------------------------------------------------- */

/* Writes a file of zeros until the filesystem is full.  Returns its fd. */
static int
fill_disk(const char *path)
{
    static char zeros[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 100000; i++) {
        ssize_t w = write(fd, zeros, sizeof(zeros));
        if (w < 0 && errno == ENOSPC) {
            break;
        }
        if (w > 0 && (size_t)w < sizeof(zeros)) {
            continue; /* the last blocks; the next write says ENOSPC */
        }
        ck_assert_int_gt(w, 0);
    }
    return fd;
}

struct sender {
    pthread_t thread;
    uint64_t base, n;
    int rc;
};

static void *
sender_main(void *arg)
{
    struct sender *sd = arg;
    int fd = harness_tcp_connect(S.port, 60000);
    sd->rc = fd < 0 ? -1 : harness_send_events(fd, sd->base, sd->n);
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static bool
refusing_pred(void *arg)
{
    (void)arg;
    return metric(M_REFUSING) == 1;
}

/* The queue's state file is on disk: the writer's set-up has saved its
 * sinks' starting positions (sl_writer_new, backlog save).  The source
 * port listens before that (daemon_setup binds the sources, then makes the
 * writer), so a daemon that accepts a connection may still have that write
 * to do; a full disk then fails it and the daemon exits before READY=1,
 * as any set-up failure does. */
static bool
state_saved_pred(void *arg)
{
    char path[sizeof(queue_dir) + 16];
    struct stat st;
    (void)arg;
    snprintf(path, sizeof(path), "%s/state", queue_dir);
    return stat(path, &st) == 0;
}

START_TEST(test_disk_full_cycles)
{
    char filler[sizeof(queue_dir) + 16], *body = NULL;
    const uint64_t per = 3000;
    int status;

    if (geteuid() != 0) {
        fprintf(stderr, "check_diskq: disk full test skipped: mounting a tmpfs needs root\n");
        return;
    }
    /* A mount namespace of the test process's own: the tmpfs goes away
     * with the test process and the daemon (which inherits it), even when
     * the test fails before its teardown. */
    ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s", strerror(errno));
    ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    ck_assert_int_eq(mkdir(queue_dir, 0750), 0);
    ck_assert_msg(mount("tmpfs", queue_dir, "tmpfs", 0, "size=8m") == 0, "mount: %s",
                  strerror(errno));
    mounted = true;

    /* max_size beyond the filesystem: refused at start, and said why. */
    struct harness h2;
    struct harness_std s2;
    ck_assert_int_eq(harness_init(&h2), 0);
    memset(&s2, 0, sizeof(s2));
    disk_config("interval", "64MiB");
    s2.queue_extra = queue_extra;
    HARNESS_REQUIRE(&h2, harness_std_start(&h2, &s2, NULL, 10000) != HARNESS_WAIT_OK,
                    "max_size 64MiB on an 8 MiB tmpfs was accepted");
    harness_wait_exit(&h2, 10000, &status);
    HARNESS_REQUIRE(&h2, harness_log_has(&h2, "more than the filesystem"),
                    "no max_size message");
    harness_fini(&h2);

    disk_config("interval", "6MiB");
    harness_std_require_start(&H, &S, NULL);
    /* Not before the daemon's set-up is done: the disk is to fill under a
     * running daemon, not under one still starting (see state_saved_pred). */
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, state_saved_pred, NULL) == HARNESS_WAIT_OK,
                    "the daemon did not write %s/state at start", queue_dir);
    snprintf(filler, sizeof(filler), "%s/filler", queue_dir);
    for (int cycle = 0; cycle < 3; cycle++) {
        uint64_t base = (uint64_t)cycle * per;
        int ffd = fill_disk(filler);
        struct sender sd = {.base = base, .n = per};
        ck_assert_int_eq(pthread_create(&sd.thread, NULL, sender_main, &sd), 0);
        HARNESS_REQUIRE(&H, harness_poll(&H, 20000, refusing_pred, NULL) == HARNESS_WAIT_OK,
                        "cycle %d: the queue did not refuse on a full disk", cycle);
        HARNESS_REQUIRE(&H, harness_alive(&H), "cycle %d: the daemon died on a full disk", cycle);
        int code = harness_http_get(S.admin_port, "/healthz", 5000, &body);
        HARNESS_REQUIRE(&H, code == 503 && strstr(body, "queue cannot write to disk") != NULL &&
                                strstr(body, "No space left") != NULL,
                        "cycle %d: /healthz %d %s", cycle, code, body != NULL ? body : "");
        free(body);
        body = NULL;
        HARNESS_REQUIRE(&H, harness_log_has(&H, "No space left on device; the queue takes no more"),
                        "cycle %d: no log line says why", cycle);
        /* Space returns: it resumes by itself, everything arrives. */
        close(ffd);
        ck_assert_int_eq(unlink(filler), 0);
        pthread_join(sd.thread, NULL);
        HARNESS_REQUIRE(&H, sd.rc == 0, "cycle %d: the sender failed", cycle);
        harness_require_lines(&H, S.out_path, base + per, 30000);
        harness_require_metric(&H, S.admin_port, M_REFUSING, 0, false, 10000);
        HARNESS_REQUIRE(&H, harness_healthz_ok(S.admin_port, 5000),
                        "cycle %d: /healthz not ok after the disk has room", cycle);
    }
    double werr = metric(M_WERR);
    HARNESS_REQUIRE(&H, werr >= 3, "write errors counted: %g", werr);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 3 * per);
}
END_TEST

/* --- one process per queue directory -------------------------------------------------- */

START_TEST(test_lock_second_daemon)
{
    struct harness h2;
    struct harness_std s2;
    int status;
    disk_config("interval", "16MiB");
    harness_std_require_start(&H, &S, NULL);
    ck_assert_int_eq(harness_init(&h2), 0);
    memset(&s2, 0, sizeof(s2));
    s2.queue_extra = queue_extra; /* the same directory */
    HARNESS_REQUIRE(&h2, harness_std_start(&h2, &s2, NULL, 10000) != HARNESS_WAIT_OK,
                    "a second sluiced started on the same queue directory");
    harness_wait_exit(&h2, 10000, &status);
    HARNESS_REQUIRE(&h2, harness_log_has(&h2, "is in use by another process"),
                    "no clear lock message");
    harness_fini(&h2);
    /* The first one still works. */
    ck_assert_int_eq(send_batch(0, 100), 0);
    harness_require_lines(&H, S.out_path, 100, 10000);
    harness_require_stop_ok(&H);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("diskq");
    TCase *tc = harness_tcase(s, "crash", 120, setup, teardown);
    tcase_add_loop_test(tc, test_crash_points, 0,
                        (int)(sizeof(crash_points) / sizeof(crash_points[0])));
    tcase_add_test(tc, test_first_write_killed);
    tc = harness_tcase(s, "full", 120, setup, teardown);
    tcase_add_test(tc, test_disk_full_cycles);
    tc = harness_tcase(s, "lock", 60, setup, teardown);
    tcase_add_test(tc, test_lock_second_daemon);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
