/*
 * Chaos: two real sluiced processes with disk queues at both ends,
 *
 *   edge:       tcp source → disk queue → sluice sink
 *   aggregator: sluice source → disk queue → file sink
 *
 * killed (SIGKILL) and stopped (SIGSTOP) while a sequence-numbered stream
 * goes through (docs/protocol.md, "Guarantees of the sluice protocol").
 * N_EVENTS is scaled down from the 1M to keep the suite short:
 * 200 000 events (a fifth in the sanitizer runs, harness_events) of ~200 bytes in 20 slices.  The aggregator is killed ten
 * times (after each of the first ten slices, while it takes the stream in),
 * the edge three times while it holds an undelivered backlog (the
 * aggregator stopped; the kill waits until /metrics shows the edge took
 * every event in: plain TCP has no acks), and the aggregator is stopped for
 * three ack_timeouts once.  At the end, counted from the sequence numbers
 * in the aggregator's file: no event missing, no line damaged, no event
 * twice (docs/protocol.md, "Guarantees": the duplicate filter is in the
 * queue's records with the batches it covers, the file sink cuts its file
 * back to its committed checkpoint).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct harness E, A;
static int edge_port, edge_admin, agg_port, agg_admin;
static char agg_out[PATH_MAX], edge_q[PATH_MAX], agg_q[PATH_MAX];
static int n_events; /* N_EVENTS_FULL, a fifth in the sanitizer runs (harness_events) */
#define N_EVENTS ((uint64_t)n_events)

#define N_EVENTS_FULL 200000
#define SLICES 20
#define WINDOW 8
#define BATCH_EVENTS_MAX 328 /* 64 KiB batches of ~200-byte events */
#define AGG_KILLS 10
#define EDGE_KILLS 3

static void
setup(void)
{
    /* SLUICE_CHAOS_EVENTS: the 1M by hand (docs/protocol.md). */
    const char *want = getenv("SLUICE_CHAOS_EVENTS"); // NOLINT(concurrency-mt-unsafe)
    n_events = (want != NULL ? atoi(want) : harness_events(N_EVENTS_FULL)) / SLICES * SLICES;
    ck_assert_int_gt(n_events, 0);
    ck_assert_msg(harness_init(&E) == 0, "mkdtemp: %s", strerror(errno));
    ck_assert_msg(harness_init(&A) == 0, "mkdtemp: %s", strerror(errno));
    harness_path(&A, "out.ndjson", agg_out, sizeof(agg_out));
    harness_path(&A, "q", agg_q, sizeof(agg_q));
    harness_path(&E, "q", edge_q, sizeof(edge_q));
    agg_port = harness_free_port(SOCK_STREAM);
    agg_admin = harness_free_port(SOCK_STREAM);
    edge_port = harness_free_port(SOCK_STREAM);
    edge_admin = harness_free_port(SOCK_STREAM);
    ck_assert(agg_port > 0 && agg_admin > 0 && edge_port > 0 && edge_admin > 0);
}

static void
teardown(void)
{
    harness_fini(&E);
    harness_fini(&A);
}

static void
agg_start(void)
{
    ck_assert_int_eq(harness_write_config(&A,
                                          "[daemon]\n"
                                          "producer_threads = 2\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source edges]\n"
                                          "type = sluice\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "max_line_bytes = 8KiB\n"
                                          "[queue main]\n"
                                          "type = disk\n"
                                          "path = %s\n"
                                          "max_size = 256MiB\n"
                                          "chunk_size = 64KiB\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n",
                                          agg_admin, agg_port, agg_q, agg_out),
                     0);
    ck_assert_int_eq(harness_start(&A, NULL), 0);
    HARNESS_REQUIRE(&A, harness_wait_tcp(&A, agg_port, 10000) == HARNESS_WAIT_OK,
                    "aggregator not listening");
}

static void
edge_start(void)
{
    ck_assert_int_eq(harness_write_config(&E,
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "max_line_bytes = 8KiB\n"
                                          "[queue main]\n"
                                          "type = disk\n"
                                          "path = %s\n"
                                          "max_size = 256MiB\n"
                                          "capacity = 4MiB\n"
                                          "chunk_size = 64KiB\n"
                                          "[sink forward]\n"
                                          "type = sluice\n"
                                          "queue = main\n"
                                          "target = 127.0.0.1:%d\n"
                                          "sender_id = chaos-edge\n"
                                          "retry_initial = 20ms\n"
                                          "retry_max = 200ms\n"
                                          "ack_timeout = 1s\n"
                                          "window = %d\n",
                                          edge_admin, edge_port, edge_q, agg_port, WINDOW),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK,
                    "edge not listening");
}

static double
metric(int port, const char *name)
{
    double v = -1;
    (void)harness_metric_get(port, name, &v);
    return v;
}

static void
kill9(struct harness *h)
{
    int status;
    ck_assert_int_eq(harness_signal(h, SIGKILL), 0);
    HARNESS_REQUIRE(h, harness_wait_exit(h, 10000, &status) == HARNESS_WAIT_OK, "not dead");
}

static void
send_to_edge(uint64_t base, uint64_t n)
{
    int fd = harness_tcp_connect(edge_port, 60000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, base, n), 0);
    HARNESS_REQUIRE(&E, harness_wait_sent(fd, 60000) == HARNESS_WAIT_OK, "edge did not read");
    close(fd);
}

/* The edge took every event since its start in and appended it to its
 * disk queue. */
static bool
edge_holds(void *arg)
{
    const uint64_t *want = arg;
    return metric(edge_admin, "sluice_source_received_events_total{source=\"app\"}") ==
               (double)*want &&
           metric(edge_admin, "sluice_queue_chunks{queue=\"main\"}") == 0;
}

static bool
lines_at_least(void *arg)
{
    return harness_file_lines(agg_out) >= *(uint64_t *)arg;
}

static bool
all_seqs_present(void *arg)
{
    struct harness_seqs s;
    (void)arg;
    if (harness_seqs_init(&s, N_EVENTS) < 0 || harness_seqs_add_file(&s, agg_out, true) < 0) {
        return false;
    }
    bool all = harness_seqs_count_range(&s, 0, N_EVENTS) == N_EVENTS;
    harness_seqs_fini(&s);
    return all;
}

/* Every sequence number below *arg is in the aggregator's file. */
static bool
seqs_below(void *arg)
{
    uint64_t want = *(const uint64_t *)arg;
    struct harness_seqs s;
    if (harness_seqs_init(&s, N_EVENTS) < 0 || harness_seqs_add_file(&s, agg_out, true) < 0) {
        return false;
    }
    bool all = harness_seqs_count_range(&s, 0, want) == want;
    harness_seqs_fini(&s);
    return all;
}

START_TEST(test_chaos)
{
    const uint64_t per = N_EVENTS / SLICES;
    uint64_t edge_since = 0; /* events received by the running edge */
    int agg_kills = 0, edge_kills = 0;
    bool stopped = false;
    agg_start();
    edge_start();
    for (int i = 0; i < SLICES; i++) {
        send_to_edge((uint64_t)i * per, per);
        edge_since += per;
        if (i < AGG_KILLS) {
            /* Kill the aggregator while it takes the stream in: once a
             * part of this slice is in its file. */
            uint64_t want = (uint64_t)i * per + per / 4;
            HARNESS_REQUIRE(&A, harness_poll(&A, 60000, lines_at_least, &want) == HARNESS_WAIT_OK,
                            "slice %d: nothing arrives", i);
            kill9(&A);
            agg_kills++;
            agg_start();
        } else if (edge_kills < EDGE_KILLS) {
            /* The edge with an undelivered backlog: the aggregator stopped. */
            ck_assert_int_eq(harness_signal(&A, SIGSTOP), 0);
            send_to_edge((uint64_t)++i * per, per);
            edge_since += per;
            HARNESS_REQUIRE(&E, harness_poll(&E, 60000, edge_holds, &edge_since) == HARNESS_WAIT_OK,
                            "the edge did not take everything in");
            kill9(&E);
            edge_kills++;
            ck_assert_int_eq(harness_signal(&A, SIGCONT), 0);
            edge_start();
            edge_since = 0;
        } else if (!stopped) {
            stopped = true;
            /* The edge is past its greeting once everything sent so far is
             * in the aggregator's file; the next slice then goes to a
             * stopped aggregator: batches in flight, no acks.  (Stopped
             * during the greeting, the edge would time the greeting out
             * instead, which is not an ack timeout.) */
            uint64_t upto = (uint64_t)(i + 1) * per;
            HARNESS_REQUIRE(&A, harness_poll(&A, 60000, seqs_below, &upto) == HARNESS_WAIT_OK,
                            "slice %d: not delivered before the stop", i);
            double to = metric(edge_admin, "sluice_sink_ack_timeouts_total{sink=\"forward\"}");
            /* Stopped for longer than the edge's ack_timeout. */
            ck_assert_int_eq(harness_signal(&A, SIGSTOP), 0);
            send_to_edge((uint64_t)++i * per, per);
            bool timed_out = false;
            for (int64_t end = harness_now_ms() + harness_ms(30000); harness_now_ms() < end;) {
                if (metric(edge_admin, "sluice_sink_ack_timeouts_total{sink=\"forward\"}") > to) {
                    timed_out = true;
                    break;
                }
                harness_poll_step(50);
            }
            ck_assert_int_eq(harness_signal(&A, SIGCONT), 0);
            HARNESS_REQUIRE(&E, timed_out, "the stopped aggregator was not declared dead");
        }
    }
    HARNESS_REQUIRE(&A, harness_poll(&A, 120000, all_seqs_present, NULL) == HARNESS_WAIT_OK,
                    "not every event arrived");
    double dup_batches =
        metric(agg_admin, "sluice_source_duplicate_batches_total{source=\"edges\"}");
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);

    struct harness_seqs s;
    ck_assert_int_eq(harness_seqs_init(&s, N_EVENTS), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, agg_out, true), 0);
    uint64_t have = harness_seqs_count_range(&s, 0, N_EVENTS);
    fprintf(stderr,
            "check_chaos: %" PRIu64 " events, aggregator killed %d times, edge %d times, aggregator "
            "stopped once: missing %" PRIu64 ", duplicates %" PRIu64 ", damaged %" PRIu64
            ", duplicate batches the aggregator dropped since its last start %.0f\n",
            N_EVENTS, agg_kills, edge_kills, (uint64_t)N_EVENTS - have, s.dups, s.bad,
            dup_batches);
    HARNESS_REQUIRE(&A, have == N_EVENTS, "lost %" PRIu64, (uint64_t)N_EVENTS - have);
    HARNESS_REQUIRE(&A, s.bad == 0, "%" PRIu64 " damaged lines (%s)", s.bad, s.first_error);
    HARNESS_REQUIRE(&A, s.dups == 0, "%" PRIu64 " duplicates", s.dups);
    harness_seqs_fini(&s);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = harness_tcase(s, "chaos", 300, setup, teardown);
    tcase_add_test(tc, test_chaos);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
