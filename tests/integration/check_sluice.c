/*
 * Integration tests for acknowledged forwarding between two real sluiced
 * processes (docs/protocol.md, "sluice protocol"):
 *
 *   edge:       tcp source → memory queue → sluice sink
 *   aggregator: sluice source → memory queue → file sink
 *
 * Every event carries a sequence number; the checker counts loss and
 * duplicates from them.  "Everything delivered" is observed, never slept
 * for: the edge's queue holds a chunk until the aggregator acknowledged it,
 * and the aggregator acknowledges only what its file sink has written, so
 * sluice_queue_chunks{queue="main"} == 0 on the edge (after the sender is
 * done) means every event is in the aggregator's file.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"

static struct harness E; /* the edge */
static struct harness A; /* the aggregator */
static int edge_port, edge_admin, agg_port, agg_admin;
static char agg_out[PATH_MAX], agg_state[PATH_MAX];

#define N_EVENTS harness_events(200000)
/* The aggregator's chunks (its max batch) and the edge's window: with 200-
 * byte events a batch carries at most 64 KiB / 200 = 327 events. */
#define AGG_CHUNK "64KiB"
#define BATCH_EVENTS_MAX 328
#define WINDOW 8

static void
setup(void)
{
    ck_assert_msg(harness_init(&E) == 0, "mkdtemp: %s", strerror(errno));
    ck_assert_msg(harness_init(&A) == 0, "mkdtemp: %s", strerror(errno));
    harness_path(&A, "out.ndjson", agg_out, sizeof(agg_out));
    harness_path(&A, "dedupe.state", agg_state, sizeof(agg_state));
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

/* The aggregator; source_extra: more lines for [source edges]; env: more
 * environment (NULL-terminated) or NULL. */
static void
agg_start_env(const char *source_extra, const char *const *env)
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
                                          "%s"
                                          "[queue main]\n"
                                          "chunk_size = " AGG_CHUNK "\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n",
                                          agg_admin, agg_port, source_extra, agg_out),
                     0);
    ck_assert_int_eq(harness_start(&A, env), 0);
    HARNESS_REQUIRE(&A, harness_wait_tcp(&A, agg_port, 10000) == HARNESS_WAIT_OK,
                    "aggregator not listening");
}

static void
agg_start(const char *source_extra)
{
    agg_start_env(source_extra, NULL);
}

/* More lines for the edge's [queue main] (a disk queue). */
static char edge_queue_extra[PATH_MAX + 128];

static void
edge_start(const char *sink_extra)
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
                                          "capacity = 4MiB\n"
                                          "chunk_size = 64KiB\n"
                                          "%s"
                                          "[sink forward]\n"
                                          "type = sluice\n"
                                          "queue = main\n"
                                          "target = 127.0.0.1:%d\n"
                                          "sender_id = edge-under-test\n"
                                          "retry_initial = 20ms\n"
                                          "retry_max = 200ms\n"
                                          "window = %d\n"
                                          "%s",
                                          edge_admin, edge_port, edge_queue_extra, agg_port,
                                          WINDOW, sink_extra),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK,
                    "edge not listening");
}

/* ---- a sender thread: N_EVENTS to the edge, blocking under back-pressure ---- */

struct sender {
    pthread_t th;
    int rc;
    volatile int done;
};

static void *
sender_main(void *arg)
{
    struct sender *s = arg;
    int fd = harness_tcp_connect(edge_port, 120000);
    s->rc = -1;
    if (fd >= 0) {
        s->rc = harness_send_events(fd, 0, N_EVENTS);
        if (s->rc == 0 && harness_wait_sent(fd, 120000) != HARNESS_WAIT_OK) {
            s->rc = -1;
        }
        close(fd);
    }
    s->done = 1;
    return NULL;
}

static void
sender_start(struct sender *s)
{
    s->done = 0;
    ck_assert_int_eq(pthread_create(&s->th, NULL, sender_main, s), 0);
}

static void
sender_join(struct sender *s)
{
    pthread_join(s->th, NULL);
    HARNESS_REQUIRE(&E, s->rc == 0, "sending to the edge failed");
}

/* A sample of the daemon's /metrics at port; -1 when it cannot be read
 * within 10 s (one read can time out on a loaded machine: retried). */
static double
metric(int port, const char *name)
{
    double v = -1;
    int64_t end = harness_now_ms() + harness_ms(10000);
    while (harness_metric_get(port, name, &v) != 0 && harness_now_ms() < end) {
        harness_poll_step(50);
    }
    return v;
}

/* Reads fd until the peer closes it (or 10 s pass): the bytes in buf,
 * their count in *total.  True when the peer closed. */
static bool
read_until_close(int fd, char *buf, size_t cap, ssize_t *total)
{
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    ssize_t n;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    *total = 0;
    while ((n = recv(fd, buf + *total, cap - (size_t)*total, 0)) > 0) {
        *total += n;
    }
    return n == 0;
}

/* The edge's queue is empty: every chunk was acknowledged by the aggregator. */
static bool
edge_drained(void *arg)
{
    (void)arg;
    return metric(edge_admin, "sluice_queue_chunks{queue=\"main\"}") == 0;
}

static void
require_drained(void)
{
    HARNESS_REQUIRE(&E, harness_poll(&E, 120000, edge_drained, NULL) == HARNESS_WAIT_OK,
                    "the edge still holds unacknowledged chunks");
}

/* Reads the aggregator's file: *missing seqs, *dups extra copies, *bad lines. */
static void
count_output(uint64_t *missing, uint64_t *dups, uint64_t *bad)
{
    struct harness_seqs s;
    ck_assert_int_eq(harness_seqs_init(&s, N_EVENTS), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, agg_out, true), 0);
    *missing = N_EVENTS - harness_seqs_count_range(&s, 0, N_EVENTS);
    *dups = s.lines - s.bad - harness_seqs_count_range(&s, 0, N_EVENTS);
    *bad = s.bad;
    harness_seqs_fini(&s);
}

/* Every event in the aggregator's file exactly once, undamaged. */
static void
require_exactly_once(void)
{
    uint64_t missing, dups, bad;
    count_output(&missing, &dups, &bad);
    HARNESS_REQUIRE(&A, missing == 0 && dups == 0 && bad == 0,
                    "missing %" PRIu64 ", duplicates %" PRIu64 ", bad lines %" PRIu64, missing,
                    dups, bad);
}

static bool
lines_at_least(void *arg)
{
    return harness_file_lines(agg_out) >= *(uint64_t *)arg;
}

/* ---- tests ---- */

/* 200k events through edge and aggregator arrive exactly once. */
START_TEST(test_sluice_exactly_once)
{
    struct sender s;
    agg_start("");
    edge_start("");
    sender_start(&s);
    sender_join(&s);
    require_drained();
    require_exactly_once();
    HARNESS_REQUIRE(&A, metric(agg_admin, "sluice_source_protocol_errors_total{source=\"edges\"}") == 0,
                    "protocol errors counted");
    HARNESS_REQUIRE(&E, metric(edge_admin, "sluice_sink_acks_total{sink=\"forward\"}") > 0,
                    "no acks counted");
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
}
END_TEST

/*
 * The aggregator is killed (SIGKILL) mid-stream and restarted.  Nothing may
 * be lost: the edge commits a chunk only on an ACK, and the aggregator
 * acknowledges only what its file sink wrote.  Duplicates: batches the file
 * sink wrote but whose ACK the kill prevented are resent; with state_path
 * the duplicate filter survives the restart, so only batches written and
 * not yet acknowledged (at most the window) can come twice.
 */
START_TEST(test_sluice_aggregator_killed)
{
    struct sender s;
    uint64_t missing, dups, bad, half = N_EVENTS / 3;
    char extra[PATH_MAX + 32];
    snprintf(extra, sizeof(extra), "state_path = %s\n", agg_state);
    agg_start(extra);
    edge_start("ack_timeout = 1s\n");
    sender_start(&s);
    HARNESS_REQUIRE(&A, harness_poll(&A, 60000, lines_at_least, &half) == HARNESS_WAIT_OK,
                    "a third of the stream did not arrive");
    ck_assert_int_eq(harness_signal(&A, SIGKILL), 0);
    int status;
    HARNESS_REQUIRE(&A, harness_wait_exit(&A, 10000, &status) == HARNESS_WAIT_OK, "not dead");
    agg_start(extra);
    sender_join(&s);
    require_drained();
    count_output(&missing, &dups, &bad);
    fprintf(stderr,
            "check_sluice: aggregator SIGKILL mid-stream: missing %" PRIu64 ", duplicates %" PRIu64
            ", bad lines %" PRIu64 " (bound: %d batches = %d events)\n",
            missing, dups, bad, WINDOW, WINDOW * BATCH_EVENTS_MAX);
    HARNESS_REQUIRE(&A, missing == 0, "%" PRIu64 " events lost", missing);
    HARNESS_REQUIRE(&A, bad == 0, "%" PRIu64 " damaged lines", bad);
    HARNESS_REQUIRE(&A, dups <= (uint64_t)WINDOW * BATCH_EVENTS_MAX,
                    "%" PRIu64 " duplicates, more than the window", dups);
    /* Polled: one /metrics read can fail on a loaded machine. */
    harness_require_metric(&E, edge_admin, "sluice_sink_disconnects_total{sink=\"forward\"}", 1,
                           true, 10000);
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
}
END_TEST

/* The aggregator is stopped (SIGSTOP) for longer than ack_timeout: the
 * edge declares it dead, reconnects and resends; after SIGCONT everything
 * arrives, exactly once (the duplicate filter drops what the old
 * connection had delivered). */
START_TEST(test_sluice_aggregator_stopped)
{
    struct sender s;
    uint64_t part = N_EVENTS / 4;
    agg_start("");
    edge_start("ack_timeout = 300ms\nconnect_timeout = 200ms\n");
    sender_start(&s);
    HARNESS_REQUIRE(&A, harness_poll(&A, 60000, lines_at_least, &part) == HARNESS_WAIT_OK,
                    "a quarter of the stream did not arrive");
    ck_assert_int_eq(harness_signal(&A, SIGSTOP), 0);
    /* Wait for the edge's verdict, not for a time. */
    bool timed_out = false;
    for (int64_t end = harness_now_ms() + harness_ms(30000); harness_now_ms() < end;) {
        if (metric(edge_admin, "sluice_sink_ack_timeouts_total{sink=\"forward\"}") >= 1) {
            timed_out = true;
            break;
        }
        harness_poll_step(50);
    }
    ck_assert_int_eq(harness_signal(&A, SIGCONT), 0);
    HARNESS_REQUIRE(&E, timed_out, "the edge never declared the stopped aggregator dead");
    sender_join(&s);
    require_drained();
    require_exactly_once();
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
}
END_TEST

/* Sends events [base, base + n) to the edge and waits until its kernel has
 * passed them all to the daemon. */
static void
send_to_edge(uint64_t base, uint64_t n)
{
    int fd = harness_tcp_connect(edge_port, 60000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, base, n), 0);
    HARNESS_REQUIRE(&E, harness_wait_sent(fd, 60000) == HARNESS_WAIT_OK, "edge did not read");
    close(fd);
}

/*
 * The edge (memory queue) is killed (SIGKILL) with events it had not yet
 * delivered, and restarted with the same sender_id.  What it had delivered
 * before is there exactly once; of what it held, some may be lost (its
 * memory queue: the documented window) but nothing is duplicated; and the
 * restarted edge's new batches, numbered on after what the aggregator
 * holds, are not taken for duplicates of its former self.
 */
START_TEST(test_sluice_edge_killed)
{
    struct harness_seqs q;
    int status;
    agg_start("");
    edge_start("");
    send_to_edge(0, 50000);
    require_drained();
    send_to_edge(50000, 50000);
    ck_assert_int_eq(harness_signal(&E, SIGKILL), 0);
    HARNESS_REQUIRE(&E, harness_wait_exit(&E, 10000, &status) == HARNESS_WAIT_OK, "not dead");
    edge_start("");
    send_to_edge(100000, 100000);
    require_drained();
    ck_assert_int_eq(harness_seqs_init(&q, 200000), 0); /* this case's own counts, not N_EVENTS */
    ck_assert_int_eq(harness_seqs_add_file(&q, agg_out, true), 0);
    uint64_t before = harness_seqs_count_range(&q, 0, 50000);
    uint64_t held = harness_seqs_count_range(&q, 50000, 100000);
    uint64_t after = harness_seqs_count_range(&q, 100000, 200000);
    fprintf(stderr,
            "check_sluice: edge SIGKILL: delivered before %" PRIu64 "/50000, held at the kill %" PRIu64
            "/50000 (lost %" PRIu64 "), after the restart %" PRIu64 "/100000, duplicates %" PRIu64
            ", bad %" PRIu64 "\n",
            before, held, 50000 - held, after, q.dups, q.bad);
    HARNESS_REQUIRE(&A, before == 50000, "acknowledged events lost: %" PRIu64, 50000 - before);
    HARNESS_REQUIRE(&A, after == 100000, "events after the restart lost: %" PRIu64,
                    100000 - after);
    HARNESS_REQUIRE(&A, q.dups == 0 && q.bad == 0, "%" PRIu64 " duplicates, %" PRIu64 " bad",
                    q.dups, q.bad);
    HARNESS_REQUIRE(&A, metric(agg_admin, "sluice_source_duplicate_batches_total{source=\"edges\"}") == 0,
                    "the restarted edge's batches were taken for duplicates");
    harness_seqs_fini(&q);
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
}
END_TEST

static bool
all_seqs_present(void *arg)
{
    uint64_t missing, dups, bad;
    (void)arg;
    count_output(&missing, &dups, &bad);
    return missing == 0;
}

static bool
edge_holds_all(void *arg)
{
    const uint64_t *want = arg;
    return metric(edge_admin, "sluice_source_received_events_total{source=\"app\"}") ==
               (double)*want &&
           metric(edge_admin, "sluice_queue_chunks{queue=\"main\"}") == 0;
}

static void
edge_kill_restart(void)
{
    int status;
    ck_assert_int_eq(harness_signal(&E, SIGKILL), 0);
    HARNESS_REQUIRE(&E, harness_wait_exit(&E, 10000, &status) == HARNESS_WAIT_OK, "not dead");
    edge_start("");
}

/*
 * The edge with a disk queue is killed (SIGKILL) right after the aggregator
 * acknowledged everything, before the queue's state file recorded those
 * acknowledgements (fsync_interval = 30s: the state is written only at
 * start): the restarted edge sends its whole disk backlog again, and with
 * the batch numbering persisted with the queue position (the sink's
 * checkpoint in the queue's state) it numbers the batches as the first run
 * did, so the aggregator drops every one as a duplicate.  Then once more
 * while the aggregator is stopped (SIGSTOP) and the edge holds an
 * undelivered backlog on disk.  Every event exactly once.
 */
START_TEST(test_sluice_disk_edge_killed)
{
    char qdir[PATH_MAX];
    const uint64_t per = N_EVENTS / 4;
    harness_path(&E, "edgeq", qdir, sizeof(qdir));
    snprintf(edge_queue_extra, sizeof(edge_queue_extra),
             "type = disk\npath = %s\nmax_size = 256MiB\nfsync_interval = 30s\n", qdir);
    agg_start("");
    edge_start("");
    for (uint64_t r = 0; r < 3; r++) {
        uint64_t want = (r + 1) * per;
        send_to_edge(r * per, per);
        HARNESS_REQUIRE(&A, harness_poll(&A, 120000, lines_at_least, &want) == HARNESS_WAIT_OK,
                        "round %" PRIu64 ": not delivered", r);
        edge_kill_restart();
    }
    /* The aggregator stopped: the edge holds the last quarter on disk. */
    ck_assert_int_eq(harness_signal(&A, SIGSTOP), 0);
    edge_kill_restart(); /* a fresh count of received events */
    send_to_edge(3 * per, per);
    HARNESS_REQUIRE(&E, harness_poll(&E, 60000, edge_holds_all, (void *)&per) == HARNESS_WAIT_OK,
                    "the edge did not take everything in");
    edge_kill_restart();
    ck_assert_int_eq(harness_signal(&A, SIGCONT), 0);
    /* The edge sends in order: once every sequence number is there, what
     * it replayed before them has arrived (or was dropped) too. */
    HARNESS_REQUIRE(&A, harness_poll(&A, 120000, all_seqs_present, NULL) == HARNESS_WAIT_OK,
                    "not everything delivered");
    fprintf(stderr, "check_sluice: disk edge SIGKILL x5: duplicate batches dropped %g\n",
            metric(agg_admin, "sluice_source_duplicate_batches_total{source=\"edges\"}"));
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
    require_exactly_once();
    edge_queue_extra[0] = '\0';
}
END_TEST

/* A busy receiver is not a dead one: the aggregator's writer holds its
 * writes (SLUICE_TEST_STALL_FILE) for many ack_timeouts, so nothing becomes
 * durable and no ACK can go out; its KEEPALIVEs keep the edge from giving
 * the connection up.  After the stall everything arrives exactly once. */
START_TEST(test_sluice_busy_receiver)
{
    struct sender s;
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    const char *env[] = {env_stall, NULL};
    harness_path(&A, "stall", stall, sizeof(stall));
    snprintf(env_stall, sizeof(env_stall), "SLUICE_TEST_STALL_FILE=%s", stall);
    ck_assert_int_eq(harness_write_file(stall, "stalled\n"), 0);
    agg_start_env("", env);
    /* KEEPALIVE every ack_timeout / 4; scaled, as a sanitizer build on a
     * loaded machine can miss a 100 ms beat. */
    char ack[64];
    snprintf(ack, sizeof(ack), "ack_timeout = %dms\n", harness_ms(400));
    edge_start(ack);
    sender_start(&s);
    /* 20 keepalives: at least 2 s (5 ack_timeouts) of a receiver that
     * acknowledges nothing. */
    bool kept = false;
    for (int64_t end = harness_now_ms() + harness_ms(60000); harness_now_ms() < end;) {
        if (metric(edge_admin, "sluice_sink_keepalives_total{sink=\"forward\"}") >= 20) {
            kept = true;
            break;
        }
        harness_poll_step(50);
    }
    HARNESS_REQUIRE(&E, kept, "no keepalives from the stalled aggregator");
    HARNESS_REQUIRE(&E, metric(edge_admin, "sluice_sink_ack_timeouts_total{sink=\"forward\"}") == 0,
                    "the busy aggregator was declared dead");
    ck_assert_int_eq(unlink(stall), 0);
    sender_join(&s);
    require_drained();
    require_exactly_once();
    HARNESS_REQUIRE(&E, metric(edge_admin, "sluice_sink_disconnects_total{sink=\"forward\"}") == 0,
                    "the edge reconnected");
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
}
END_TEST

/* A garbage client and a client with a corrupt batch on the sluice port
 * are counted and closed; the edge's stream is not disturbed. */
START_TEST(test_sluice_garbage_client)
{
    struct sender s;
    char buf[256];
    agg_start("");
    edge_start("");
    sender_start(&s);

    int g = harness_tcp_connect(agg_port, 5000);
    ck_assert_int_ge(g, 0);
    static const char http[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(harness_send_all(g, http, sizeof(http) - 1), 0);
    /* The receiver answers with an ERROR frame (type 6) and closes. */
    ssize_t total;
    HARNESS_REQUIRE(&A, read_until_close(g, buf, sizeof(buf), &total),
                    "the garbage connection was not closed");
    HARNESS_REQUIRE(&A, total >= 20 && buf[0] == 6, "no ERROR frame before the close");
    close(g);

    /* A good greeting, then a batch whose checksum is wrong. */
    g = harness_tcp_connect(agg_port, 5000);
    ck_assert_int_ge(g, 0);
    static const unsigned char hello[] = {1, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 'S', 'L', 'C', 'E', 0, 1, 0, 1, 0, 0,
                                          1, 0, 0, 3, 'b', 'a', 'd'};
    /* The HELLO's crc is computed below; the batch's is left wrong. */
    unsigned char frame[sizeof(hello)];
    memcpy(frame, hello, sizeof(hello));
    {
        uLong c = crc32(crc32(0L, Z_NULL, 0), frame + 20, 17);
        frame[16] = (unsigned char)(c >> 24);
        frame[17] = (unsigned char)(c >> 16);
        frame[18] = (unsigned char)(c >> 8);
        frame[19] = (unsigned char)c;
    }
    static const unsigned char batch[] = {3, 0, 0, 0, 0, 0, 0, 3,  0, 0, 0, 0, 0, 0, 0, 1,
                                          1, 2, 3, 4, '{', '}', '\n'};
    ck_assert_int_eq(harness_send_all(g, frame, sizeof(frame)), 0);
    ck_assert_int_eq(harness_send_all(g, batch, sizeof(batch)), 0);
    HARNESS_REQUIRE(&A, read_until_close(g, buf, sizeof(buf), &total),
                    "the corrupt connection was not closed");
    /* WELCOME (20 + 12), then ERROR with code 4 (checksum). */
    HARNESS_REQUIRE(&A, total >= 32 + 22 && buf[0] == 2 && buf[32] == 6 && buf[53] == 4,
                    "expected WELCOME then ERROR(checksum), got %zd bytes", total);
    close(g);

    sender_join(&s);
    require_drained();
    require_exactly_once();
    HARNESS_REQUIRE(&A, metric(agg_admin, "sluice_source_protocol_errors_total{source=\"edges\"}") == 2,
                    "protocol errors not counted");
    HARNESS_REQUIRE(&A, harness_log_has(&A, "protocol error"), "no log line for the bad client");
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
}
END_TEST

/* ---- a raw sluice sender, for frames cut at chosen places ---- */

static void
put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

/* Appends a frame of type with payload[0, len) at out + *n. */
static void
raw_frame(unsigned char *out, size_t *n, int type, uint64_t seq, const void *payload,
          size_t len)
{
    unsigned char *h = out + *n;
    memset(h, 0, 20);
    h[0] = (unsigned char)type;
    put_be(h + 4, len, 4);
    put_be(h + 8, seq, 8);
    uLong c = len > 0 ? crc32(crc32(0L, Z_NULL, 0), payload, (uInt)len) : 0;
    put_be(h + 16, c, 4);
    memcpy(h + 20, payload, len);
    *n += 20 + len;
}

static void
raw_hello(unsigned char *out, size_t *n, const char *id)
{
    unsigned char p[14 + 64];
    size_t il = strlen(id);
    memcpy(p, "SLCE", 4);
    put_be(p + 4, 1, 2);
    put_be(p + 6, 1, 2);
    put_be(p + 8, 1000, 4);
    put_be(p + 12, il, 2);
    memcpy(p + 14, id, il);
    raw_frame(out, n, 1, 0, p, 14 + il);
}

/* Reads frames from fd until an ACK (or KEEPALIVE) for batch seq, an ERROR
 * (*err its code) or the deadline.  True on the ACK. */
static bool
raw_wait_ack(int fd, uint64_t seq, int *err)
{
    static unsigned char in[1 << 16];
    size_t have = 0;
    int64_t end = harness_now_ms() + harness_ms(30000);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    *err = 0;
    while (harness_now_ms() < end) {
        ssize_t r = recv(fd, in + have, sizeof(in) - have, 0);
        if (r == 0) {
            return false;
        }
        if (r > 0) {
            have += (size_t)r;
        }
        while (have >= 20) {
            size_t len = (size_t)in[4] << 24 | (size_t)in[5] << 16 | (size_t)in[6] << 8 | in[7];
            uint64_t s = 0;
            for (int i = 8; i < 16; i++) {
                s = s << 8 | in[i];
            }
            if (have < 20 + len) {
                break;
            }
            if (in[0] == 6) {
                *err = in[20] << 8 | in[21];
                return false;
            }
            if ((in[0] == 4 || in[0] == 5) && s >= seq) {
                return true;
            }
            memmove(in, in + 20 + len, have - 20 - len);
            have -= 20 + len;
        }
    }
    return false;
}

/* Writes buf[0, len) in pieces of the sizes in cuts (cycled): frames split
 * anywhere, several run together. */
static void
raw_send_cut(int fd, const unsigned char *buf, size_t len, const size_t *cuts, size_t ncuts)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t k = cuts[i % ncuts];
        if (k > len - off) {
            k = len - off;
        }
        ck_assert_int_eq(harness_send_all(fd, buf + off, k), 0);
        off += k;
    }
}

/*
 * The receiver takes frames however TCP cuts them: batches from one event to
 * the largest the receiver takes (its 64 KiB chunk; a large frame is read to
 * its end into one piece, src/source/source_sluice.c conn_read_want), written
 * in pieces that split headers and payloads at odd places and run several
 * frames together, are all acknowledged and written exactly once; a large
 * batch with one byte flipped, cut the same way, is refused (checksum).
 */
START_TEST(test_sluice_split_frames)
{
    /* Batch sizes in events (at most 327: 64 KiB of 200-byte events). */
    static const unsigned sizes[] = {1, 2, 327, 200, 327, 5, 327, 327, 50, 1, 326, 327,
                                     3, 327, 100, 327, 327, 327, 7, 327, 1, 1, 327, 250};
    static const size_t cuts[] = {1, 7, 19, 20, 21, 4096, 65537, 13, 300000, 65556, 2, 40000};
    size_t nb = sizeof(sizes) / sizeof(sizes[0]), cap = 4096, n = 0;
    uint64_t events = 0;
    for (size_t i = 0; i < nb; i++) {
        cap += 20 + (size_t)sizes[i] * HARNESS_EVENT_BYTES;
    }
    unsigned char *buf = malloc(cap), *payload = malloc(327 * HARNESS_EVENT_BYTES);
    ck_assert(buf != NULL && payload != NULL);
    raw_hello(buf, &n, "splitter");
    for (size_t i = 0; i < nb; i++) {
        size_t len = 0;
        for (unsigned e = 0; e < sizes[i]; e++) {
            len += harness_event_line((char *)payload + len, events++);
        }
        raw_frame(buf, &n, 3, i + 1, payload, len);
    }
    agg_start("");
    int g = harness_tcp_connect(agg_port, 5000);
    ck_assert_int_ge(g, 0);
    raw_send_cut(g, buf, n, cuts, sizeof(cuts) / sizeof(cuts[0]));
    int err = 0;
    HARNESS_REQUIRE(&A, raw_wait_ack(g, nb, &err), "batch %zu not acknowledged (error %d)", nb,
                    err);
    close(g);

    struct harness_seqs s;
    ck_assert_int_eq(harness_seqs_init(&s, events), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, agg_out, true), 0);
    uint64_t got = harness_seqs_count_range(&s, 0, events);
    HARNESS_REQUIRE(&A, got == events && s.lines == events && s.bad == 0,
                    "%" PRIu64 " of %" PRIu64 " events, %" PRIu64 " lines, %" PRIu64 " bad", got,
                    events, (uint64_t)s.lines, (uint64_t)s.bad);
    harness_seqs_fini(&s);

    /* A large batch with a flipped byte, cut the same way: ERROR(checksum). */
    n = 0;
    raw_hello(buf, &n, "flipper");
    size_t len = 0;
    for (unsigned e = 0; e < 327; e++) {
        len += harness_event_line((char *)payload + len, e);
    }
    raw_frame(buf, &n, 3, 1, payload, len);
    buf[n - 40000] ^= 0x20;
    g = harness_tcp_connect(agg_port, 5000);
    ck_assert_int_ge(g, 0);
    raw_send_cut(g, buf, n, cuts + 3, 4);
    HARNESS_REQUIRE(&A, !raw_wait_ack(g, 1, &err) && err == 4,
                    "the flipped batch was not refused with ERROR(checksum): error %d", err);
    close(g);
    free(buf);
    free(payload);
    harness_require_stop_ok(&A);
}
END_TEST

static Suite *
sluice_suite(void)
{
    Suite *s = suite_create("sluice");
    TCase *t = harness_tcase(s, "forward", 300, setup, teardown);
    tcase_add_test(t, test_sluice_exactly_once);
    tcase_add_test(t, test_sluice_aggregator_killed);
    tcase_add_test(t, test_sluice_aggregator_stopped);
    tcase_add_test(t, test_sluice_busy_receiver);
    tcase_add_test(t, test_sluice_edge_killed);
    tcase_add_test(t, test_sluice_disk_edge_killed);
    tcase_add_test(t, test_sluice_garbage_client);
    tcase_add_test(t, test_sluice_split_frames);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sluice_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
