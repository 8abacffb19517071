/*
 * check_inline — the writer's passes run by a producer thread right after
 * its push (src/writer/writer.c, THE INLINE TURN) against the real
 * sluiced: one tcp source "app" on two producer threads, NCONN
 * connections, each sending its own run of standard events (connection k:
 * seqs k * per .. k * per + per - 1) in small paced bursts, interleaved
 * across the connections, at a rate between the writer's linger and
 * INLINE_RATE.  How many passes ran inline is read from /metrics
 * (sluice_writer_inline_passes_total); every event is counted once and
 * each connection's order checked in the output file.
 *
 *   taken     memory queue → file sink (fsync none, the default): passes
 *             run inline (at least 30, over up to 8 runs of traffic: the
 *             breaker may close the turn for most of one run in a slow
 *             build); every event exactly once, each connection in order.
 *   disk      the same traffic through a disk queue: never inline (its
 *             syncs and timers are the writer thread's); every event once.
 *   fsync     memory queue → file sink with fsync = batch: never inline (a
 *             producer must not wait for the disk); every event once.
 *   rotate    taken, with rotate_bytes = 64KiB: a pass on a producer never
 *             rotates (the file sink answers SL_SINK_YIELD and the writer
 *             thread rotates); every event once over all the files, each
 *             connection in order, inline passes and rotations both > 0.
 *   fifo      the file sink's path is a FIFO, read for a while, then no
 *             longer: SIGTERM ends the daemon within shutdown_timeout and a
 *             margin, exit 1, a log line naming the thread stuck in its
 *             write.  A FIFO is never written inline (sink_file.c
 *             file_local); were it (the check disabled), the producer
 *             would be the one stuck, and before daemon_stop bounded its
 *             join the daemon hung.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_inline
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;

#define NCONN 4
#define PER 3000 /* events per connection */
#define BURST 20 /* events per connection per round */
#define M_INLINE "sluice_writer_inline_passes_total"
#define M_OPEN "sluice_source_connections{source=\"app\"}"

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&S, 0, sizeof(S));
}

static void
teardown(void)
{
    harness_fini(&H);
}

static double
inline_passes(void)
{
    double v = -1;
    HARNESS_REQUIRE(&H, harness_metric_get(S.admin_port, M_INLINE, &v) == 0, "no %s sample",
                    M_INLINE);
    return v;
}

/*
 * Connects NCONN connections and sends each its run in bursts of BURST
 * events, one burst on every connection per round, a few ms between
 * rounds: ~25 k events/s, a few MiB/s (above the linger's rate, below
 * INLINE_RATE), a few pushes per round (the linger needs two runs per ms).
 * Then closes them.
 */
static void
send_runs(uint64_t first)
{
    int fds[NCONN];
    for (int k = 0; k < NCONN; k++) {
        fds[k] = harness_tcp_connect(S.port, 10000);
        HARNESS_REQUIRE(&H, fds[k] >= 0, "connect %d: %s", k, strerror(errno));
    }
    harness_require_metric(&H, S.admin_port, M_OPEN, NCONN, false, 10000);
    for (uint64_t sent = 0; sent < PER; sent += BURST) {
        for (int k = 0; k < NCONN; k++) {
            HARNESS_REQUIRE(
                &H, harness_send_events(fds[k], first + (uint64_t)k * PER + sent, BURST) == 0,
                "send on connection %d: %s", k, strerror(errno));
        }
        harness_poll_step(3); /* pacing, not synchronisation */
    }
    for (int k = 0; k < NCONN; k++) {
        close(fds[k]);
    }
}

/* send_runs, then waits for every line and checks every event exactly
 * once and each connection's seqs increasing in the file. */
static void
send_and_check(void)
{
    send_runs(0);
    harness_require_lines(&H, S.out_path, NCONN * PER, 60000);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, NCONN * PER);
    harness_require_conn_order(&H, S.out_path, NCONN, PER, false);
}

/* At most this many runs of send_runs in `taken` (below). */
#define TAKEN_RUNS 8

START_TEST(test_inline_taken)
{
    harness_std_require_start(&H, &S, NULL);
    ck_assert_double_eq(inline_passes(), 0);
    /* PER / BURST = 150 rounds a run, each one push or more: most of them
     * run inline (without THE INLINE TURN: 0).  A slow pass (a sanitizer
     * build on a loaded machine: over 1 ms) trips the breaker and closes
     * the turn for 500 ms, most of a run: so runs go on, each on new
     * connections with new seqs, until 30 passes ran inline, at most
     * TAKEN_RUNS of them. */
    double n = 0;
    int runs = 0;
    while (runs < TAKEN_RUNS && n < 30) {
        send_runs((uint64_t)runs * NCONN * PER);
        runs++;
        harness_require_lines(&H, S.out_path, (uint64_t)runs * NCONN * PER, 60000);
        n = inline_passes();
    }
    HARNESS_REQUIRE(&H, n >= 30, "only %.0f passes ran inline in %d runs", n, runs);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, (uint64_t)runs * NCONN * PER);
    harness_require_conn_order(&H, S.out_path, runs * NCONN, PER, false);
    fprintf(stderr, "inline taken: %.0f inline pass(es) in %d run(s)\n", n, runs);
    harness_require_stop_ok(&H);
}
END_TEST

START_TEST(test_inline_rotate)
{
    char all[PATH_MAX], cmd[4 * PATH_MAX];
    double rotations = -1;
    S.sink_extra = "rotate_bytes = 64KiB\nmax_files = 1000\n";
    harness_std_require_start(&H, &S, NULL);
    send_runs(0);
    harness_require_metric(&H, S.admin_port, "sluice_sink_written_events_total{sink=\"archive\"}",
                           NCONN * PER, false, 60000);
    double n = inline_passes();
    HARNESS_REQUIRE(&H,
                    harness_metric_get(S.admin_port,
                                       "sluice_sink_rotations_total{sink=\"archive\"}",
                                       &rotations) == 0 &&
                        rotations > 0,
                    "no rotation (%.0f)", rotations);
    HARNESS_REQUIRE(&H, n > 0, "no pass ran inline");
    harness_require_stop_ok(&H);
    /* The rotated files by name (their names sort by rotation), then the
     * active one: every event once, each connection in order. */
    harness_path(&H, "all.ndjson", all, sizeof(all));
    snprintf(cmd, sizeof(cmd), "cat $(ls %s.2* | sort) %s > %s", S.out_path, S.out_path, all);
    ck_assert_int_eq(system(cmd), 0);
    const char *paths[] = {all};
    harness_require_exactly_once(&H, paths, 1, NCONN * PER);
    harness_require_conn_order(&H, all, NCONN, PER, false);
}
END_TEST

START_TEST(test_inline_disk)
{
    char dir[PATH_MAX], extra[PATH_MAX + 64];
    harness_path(&H, "dq", dir, sizeof(dir));
    snprintf(extra, sizeof(extra), "type = disk\npath = %s\n", dir);
    S.queue_extra = extra;
    harness_std_require_start(&H, &S, NULL);
    send_and_check();
    ck_assert_double_eq(inline_passes(), 0);
    harness_require_stop_ok(&H);
}
END_TEST

START_TEST(test_inline_fsync)
{
    S.sink_extra = "fsync = batch\n";
    harness_std_require_start(&H, &S, NULL);
    send_and_check();
    ck_assert_double_eq(inline_passes(), 0);
    harness_require_stop_ok(&H);
}
END_TEST

/* Reads whatever the FIFO holds (non-blocking); returns the bytes read. */
static size_t
fifo_drain(int rd)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(rd, buf, sizeof(buf))) > 0) {
        total += (size_t)n;
    }
    return total;
}

#define FIFO_READ_MS 1500
#define FIFO_TIMEOUT_MS 2000

START_TEST(test_inline_fifo)
{
    char fifo[PATH_MAX];
    int fds[NCONN], rd, status = 0, pipe_bytes = 0;
    uint64_t sent = 0;
    size_t got = 0;
    int64_t t0, took;

    harness_path(&H, "out.ndjson", fifo, sizeof(fifo));
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(rd, 0);
    S.daemon_extra = "shutdown_timeout = 2s\n";
    harness_std_require_start(&H, &S, NULL);
    for (int k = 0; k < NCONN; k++) {
        fds[k] = harness_tcp_connect(S.port, 10000);
        HARNESS_REQUIRE(&H, fds[k] >= 0, "connect %d: %s", k, strerror(errno));
    }
    harness_require_metric(&H, S.admin_port, M_OPEN, NCONN, false, 10000);
    /* The inline rate (as in send_and_check) while the FIFO is read. */
    for (int64_t end = harness_now_ms() + FIFO_READ_MS; harness_now_ms() < end; sent += BURST) {
        for (int k = 0; k < NCONN; k++) {
            HARNESS_REQUIRE(&H,
                            harness_send_events(fds[k], (uint64_t)k * 1000000 + sent, BURST) == 0,
                            "send on connection %d: %s", k, strerror(errno));
        }
        got += fifo_drain(rd);
        harness_poll_step(3); /* pacing, not synchronisation */
    }
    HARNESS_REQUIRE(&H, got > 0, "nothing came through the FIFO");
    /* The reader stops; ~1 MB more (far more than the pipe's 64 KiB, less
     * than the socket buffers and the queue: the sends cannot block), at
     * the same pace. */
    for (int r = 0; r < 1000; r++, sent += BURST / 4) {
        int k = r % NCONN;
        HARNESS_REQUIRE(&H,
                        harness_send_events(fds[k], (uint64_t)k * 1000000 + sent, BURST / 4) == 0,
                        "send on connection %d: %s", k, strerror(errno));
        if (k == NCONN - 1) {
            harness_poll_step(1);
        }
    }
    for (int64_t end = harness_now_ms() + harness_ms(10000);
         harness_now_ms() < end && pipe_bytes < 32768;) {
        ck_assert_int_eq(ioctl(rd, FIONREAD, &pipe_bytes), 0);
        harness_poll_step(10);
    }
    HARNESS_REQUIRE(&H, pipe_bytes >= 32768, "the pipe holds only %d bytes", pipe_bytes);
    double passes = inline_passes();
    t0 = harness_now_ms();
    ck_assert_int_eq(harness_signal(&H, SIGTERM), 0);
    /* Unscaled on purpose: this is the daemon's own clock-driven bound. */
    enum harness_wait w = harness_wait_exit(&H, 20000, &status);
    took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, w == HARNESS_WAIT_OK, "still running 20 s after SIGTERM (timeout 2 s)");
    HARNESS_REQUIRE(&H, took <= FIFO_TIMEOUT_MS + 2000,
                    "exit took %" PRId64 " ms, shutdown_timeout is 2 s", took);
    HARNESS_REQUIRE(&H, WIFEXITED(status) && WEXITSTATUS(status) == 1,
                    "exit status 0x%x, want 1 (data given up)", status);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "stuck in a system call"),
                    "no log line names the stuck thread");
    HARNESS_REQUIRE(&H, harness_log_has(&H, "queued byte(s) and what it held are given up"),
                    "the stuck thread's log line does not say what is given up");
    fprintf(stderr, "inline fifo: %.0f inline pass(es), exit %d in %" PRId64 " ms, stuck: %s\n",
            passes, WEXITSTATUS(status), took,
            harness_log_has(&H, "writer is stuck") ? "the writer" : "a producer");
    /* A FIFO is no file a producer may write to (sink_file.c file_local):
     * the writer thread was the one stuck. */
    HARNESS_REQUIRE(&H, passes == 0, "%.0f pass(es) ran inline into a FIFO", passes);
    for (int k = 0; k < NCONN; k++) {
        close(fds[k]);
    }
    close(rd);
}
END_TEST

static Suite *
inline_suite(void)
{
    Suite *s = suite_create("inline");
    TCase *tc = harness_tcase(s, "taken", 120, setup, teardown);
    tcase_add_test(tc, test_inline_taken);
    tc = harness_tcase(s, "rotate", 120, setup, teardown);
    tcase_add_test(tc, test_inline_rotate);
    tc = harness_tcase(s, "disk", 120, setup, teardown);
    tcase_add_test(tc, test_inline_disk);
    tc = harness_tcase(s, "fsync", 120, setup, teardown);
    tcase_add_test(tc, test_inline_fsync);
    tc = harness_tcase(s, "fifo", 120, setup, teardown);
    tcase_add_test(tc, test_inline_fifo);
    return s;
}

int
main(void)
{
    return harness_run_suite(inline_suite());
}
