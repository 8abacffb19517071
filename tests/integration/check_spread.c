/*
 * check_spread — tcp connections moved between producer threads
 * (src/source/source_tcp.c, THE SPREAD) against the real sluiced: one tcp
 * source "app" on two producer threads, NCONN connections, each sending
 * its own run of standard events (connection k: seqs k * per .. k * per +
 * per - 1) so that every event is counted once and each connection's order
 * can be checked in the output file.  Where the connections are is read
 * from /metrics: sluice_source_thread_connections{thread="0"|"1"} and
 * sluice_source_connections_moved_total.
 *
 *   gather  default thresholds, a trickle: the connections the kernel put
 *           on thread 1 are handed to thread 0 (thread 0 ends with all
 *           NCONN, thread 1 with none, moved_total = what thread 1 had);
 *           every event exactly once, each connection in order.
 *   split   SLUICE_TEST_SPREAD = "0,1,20" (never gather; split above 1
 *           byte/s; 20 ms windows): both threads end with at least NCONN / 3
 *           connections (a thread hands one over while the other reads
 *           less than half as much); every event once, in order.
 *   churn   SLUICE_TEST_SPREAD = "1000000000000,1,5": thread 1 gathers
 *           everything to thread 0 at every window's end and thread 0
 *           splits again, so connections move all the time while all send
 *           as fast as they can (until 20 moves); every event exactly once,
 *           each connection's events in order (the lane is pushed before a
 *           connection is handed over: without that push this case and
 *           split failed on reordered events).
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_spread
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;

#define NCONN 8
#define M_T0 "sluice_source_thread_connections{source=\"app\",thread=\"0\"}"
#define M_T1 "sluice_source_thread_connections{source=\"app\",thread=\"1\"}"
#define M_MOVED "sluice_source_connections_moved_total{source=\"app\"}"
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

/* Thread 0's and thread 1's open connections and the moves, one scrape. */
static void
where(double *t0, double *t1, double *moved)
{
    char *body = NULL;
    HARNESS_REQUIRE(&H, harness_http_get(S.admin_port, "/metrics", 5000, &body) == 200,
                    "GET /metrics");
    HARNESS_REQUIRE(&H,
                    harness_metric(body, M_T0, t0) == 0 && harness_metric(body, M_T1, t1) == 0 &&
                        harness_metric(body, M_MOVED, moved) == 0,
                    "no thread_connections / moved samples");
    free(body);
}

static void
connect_all(int *fds)
{
    for (int k = 0; k < NCONN; k++) {
        fds[k] = harness_tcp_connect(S.port, 10000);
        HARNESS_REQUIRE(&H, fds[k] >= 0, "connect %d: %s", k, strerror(errno));
    }
    harness_require_metric(&H, S.admin_port, M_OPEN, NCONN, false, 10000);
}

/* Sends every connection k its events [from, to) of its run of per. */
static void
send_runs(const int *fds, uint64_t per, uint64_t from, uint64_t to)
{
    for (int k = 0; k < NCONN; k++) {
        HARNESS_REQUIRE(&H, harness_send_events(fds[k], (uint64_t)k * per + from, to - from) == 0,
                        "send on connection %d: %s", k, strerror(errno));
    }
}

/*
 * Closes the connections, waits for NCONN * per lines, then checks every
 * event exactly once and each connection's seqs increasing in the file
 * (connection k's seqs: k * per .. k * per + per - 1, or with interleaved
 * those with seq % NCONN == k).
 */
static void
finish(int *fds, uint64_t per, bool interleaved)
{
    for (int k = 0; k < NCONN; k++) {
        close(fds[k]);
    }
    harness_require_lines(&H, S.out_path, NCONN * per, 60000);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, NCONN * per);
    harness_require_conn_order(&H, S.out_path, NCONN, per, interleaved);
    harness_require_stop_ok(&H);
}

START_TEST(test_spread_gather)
{
    int fds[NCONN];
    double t0 = 0, t1 = 0, moved = 0;
    const uint64_t per = 400;
    uint64_t sent = 0;
    harness_std_require_start(&H, &S, NULL);
    connect_all(fds);
    where(&t0, &t1, &moved);
    const double on1 = t1; /* the kernel's choice; nothing read yet, so nothing moved */
    ck_assert_double_eq(t0 + t1, NCONN);
    ck_assert_double_eq(moved, 0);
    /* A trickle: one event per connection per round, /metrics between
     * rounds, until thread 0 holds them all (a window is 100 ms). */
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (sent < per) {
        send_runs(fds, per, sent, sent + 1);
        sent++;
        where(&t0, &t1, &moved);
        if (t0 == NCONN && t1 == 0 && moved == on1 && sent >= 20) {
            break;
        }
        HARNESS_REQUIRE(
            &H, harness_now_ms() < deadline,
            "not gathered: thread 0 %.0f, thread 1 %.0f, moved %.0f (thread 1 had %.0f)", t0, t1,
            moved, on1);
        harness_poll_step(2);
    }
    ck_assert_double_eq(t0, NCONN);
    ck_assert_double_eq(t1, 0);
    ck_assert_double_eq(moved, on1);
    send_runs(fds, per, sent, per);
    finish(fds, per, false);
}
END_TEST

START_TEST(test_spread_split)
{
    const char *env[] = {"SLUICE_TEST_SPREAD=0,1,20", NULL};
    int fds[NCONN];
    double t0 = 0, t1 = 0, moved = 0;
    const uint64_t per = 2000;
    uint64_t sent = 0;
    harness_std_require_start(&H, &S, env);
    connect_all(fds);
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (sent + 10 <= per) {
        send_runs(fds, per, sent, sent + 10);
        sent += 10;
        where(&t0, &t1, &moved);
        if (t0 >= NCONN / 3 && t1 >= NCONN / 3 && t0 + t1 == NCONN && sent >= 100) {
            break;
        }
        HARNESS_REQUIRE(&H, harness_now_ms() < deadline,
                        "not spread: thread 0 %.0f, thread 1 %.0f, moved %.0f", t0, t1, moved);
        harness_poll_step(1);
    }
    ck_assert(t0 >= NCONN / 3 && t1 >= NCONN / 3);
    send_runs(fds, per, sent, per);
    finish(fds, per, false);
}
END_TEST

START_TEST(test_spread_churn)
{
    const char *env[] = {"SLUICE_TEST_SPREAD=1000000000000,1,5", NULL};
    int fds[NCONN];
    double t0 = 0, t1 = 0, moved = 0;
    const uint64_t step = 50;
    uint64_t per = 0;
    char *buf = malloc(step * HARNESS_EVENT_BYTES);
    ck_assert_ptr_nonnull(buf);
    harness_std_require_start(&H, &S, env);
    connect_all(fds);
    /* Round-robin bursts, as fast as the daemon reads, until 20 moves:
     * every connection keeps sending while it moves.  Event i of
     * connection k has seq i * NCONN + k. */
    int64_t deadline = harness_now_ms() + harness_ms(30000);
    for (;;) {
        for (int k = 0; k < NCONN; k++) {
            size_t len = 0;
            for (uint64_t i = per; i < per + step; i++) {
                len += harness_event_line(buf + len, i * NCONN + (uint64_t)k);
            }
            HARNESS_REQUIRE(&H, harness_send_all(fds[k], buf, len) == 0, "send on %d: %s", k,
                            strerror(errno));
        }
        per += step;
        if (per % (20 * step) == 0) {
            where(&t0, &t1, &moved);
            if (moved >= 20) {
                break;
            }
            HARNESS_REQUIRE(&H, harness_now_ms() < deadline,
                            "only %.0f moves in %" PRIu64 " events per connection", moved, per);
        }
    }
    free(buf);
    finish(fds, per, true);
}
END_TEST

static Suite *
spread_suite(void)
{
    Suite *s = suite_create("spread");
    TCase *tc = harness_tcase(s, "gather", 60, setup, teardown);
    tcase_add_test(tc, test_spread_gather);
    tc = harness_tcase(s, "split", 60, setup, teardown);
    tcase_add_test(tc, test_spread_split);
    tc = harness_tcase(s, "churn", 60, setup, teardown);
    tcase_add_test(tc, test_spread_churn);
    return s;
}

int
main(void)
{
    return harness_run_suite(spread_suite());
}
