/*
 * check_nats — the nats sink against real nats-server processes started
 * here (loopback, temp store dirs, stopped by PID): an edge sluiced (tcp
 * source -> nats sink) publishing the standard test events into a
 * JetStream stream, read back with libnats (nats_util.c) and checked for
 * every sequence number exactly once.
 *
 *   event        message = event: every event one message, exactly once;
 *                sluice_sink_publish_ack_seconds counts one observation per
 *                acknowledged message (= the stream's messages once every
 *                chunk is committed), its buckets cumulative;
 *   batch        message = batch: one NDJSON chunk per message (the
 *                histogram checked the same way);
 *   server_stop  the server is SIGSTOPped for STOP_MS (longer than
 *                ack_timeout: publishes time out and are resent with the
 *                same Nats-Msg-Id) while events stream; /healthz says
 *                why, sluice_sink_up is 0, the writer's heartbeat stays
 *                fresh (the publishing thread waits, not the writer);
 *                after SIGCONT every event exactly once;
 *   server_kill  the server is killed (-9) mid-stream and restarted on the
 *                same store: every event exactly once;
 *   server_late  sluiced starts before the server (and the stream): the
 *                sink waits, /healthz says so; then everything arrives once;
 *   stream_full  a stream with max_msgs and discard new fills up: /healthz
 *                says "stream LOGS full", nothing is dropped; after a purge
 *                the rest arrives: the two halves hold every event once;
 *   too_large    a stream with max_msg_size: the one event above it is
 *                rejected and counted (sluice_sink_rejected_events_total),
 *                the others are stored once;
 *   misrouted    the subject lands in another stream: the sink fails
 *                loudly (/healthz names subject and stream), stores
 *                nothing in the wrong stream... (ExpectStream);
 *   diskq_kill   tcp source -> disk queue -> nats sink; sluiced killed (-9)
 *                three times while the sink publishes from the disk queue,
 *                restarted on it: every event exactly once (the resends
 *                carry their first ids: the server drops them, counted);
 *   connect_later  the url accepts TCP and never speaks NATS: sluiced is
 *                up and /healthz names the url at once (the sink's thread
 *                connects, not the main thread); then the real server
 *                comes up on that port: every event exactly once;
 *   tls          a nats-server with TLS only (certificates by tests/certs.sh):
 *                every event exactly once;
 *   tls_wrong_ca tls_ca_file from another CA: nothing stored, handshake
 *                failures counted (untrusted), /healthz and the log say why;
 *   tls_wrong_name  the server's certificate (right CA) names another host:
 *                the url's host is checked by default; nothing stored,
 *                counted (name);
 *   tls_rotate   SIGHUP re-reads the client certificate: a bad one is
 *                refused (logged, counted) and the old one stays; a good one
 *                from a new CA is taken without closing the connection, and
 *                after the server restarts trusting only the new CA the
 *                sink's next connection uses it: every event exactly once;
 *   tls13        tls_min_version = 1.3: with a nats-server (TLS 1.3) every
 *                event exactly once; against a server that speaks TLS 1.2 at
 *                most (a stand-in in this file; it completes a TLS 1.2
 *                handshake with an OpenSSL client first) every handshake
 *                fails, counted (version), /healthz says so;
 *   cluster      three servers with routes, stream replicas = 3, batch mode: the
 *                server the sink is connected to is killed mid-stream;
 *                every event exactly once (CLUSTER_EVENTS events).
 *
 * Run: SLUICED=build/sluiced build/tests/integration/check_nats
 */
#include "harness.h"
#include "nats_util.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#define STOP_MS 20000 /* the 20 s: longer than ack_timeout (2 s) */
#define EVENTS 60000
#define FEW_EVENTS 10000 /* where the case is about set-up, not volume */
/* The issue asks 1M: 3x longer than this suite may take (bench/nats.sh
 * runs this case with 1M: SLUICE_NATS_CLUSTER_EVENTS).  Scaled down in the
 * sanitizer runs (SLUICE_TEST_LOAD). */
#define CLUSTER_EVENTS cluster_events()
/* Batch messages stored before the kill: ~1/5 (a 128 KiB chunk holds ~490
 * of the harness's events once framed). */
#define CLUSTER_KILL_MSGS ((int64_t)CLUSTER_EVENTS / 2500)

static struct harness E;
static struct nu_server S[3];

static uint64_t
cluster_events(void)
{
    const char *v = getenv("SLUICE_NATS_CLUSTER_EVENTS");
    uint64_t n = v != NULL ? strtoull(v, NULL, 10) : 0;

    return n > 0 ? n : (uint64_t)harness_events(300000);
}
static int edge_port, edge_admin, nats_port[3], route_port[3];
static char url[3][64];
static char queue_extra[PATH_MAX + 64]; /* more [queue main] lines (a disk queue) */

static void
setup(void)
{
    ck_assert_msg(harness_init(&E) == 0, "mkdtemp: %s", strerror(errno));
    edge_port = harness_free_port(SOCK_STREAM);
    edge_admin = harness_free_port(SOCK_STREAM);
    for (int i = 0; i < 3; i++) {
        nats_port[i] = harness_free_port(SOCK_STREAM);
        route_port[i] = harness_free_port(SOCK_STREAM);
        ck_assert_int_gt(nats_port[i], 0);
        S[i].pid = -1;
    }
    nu_server_init(&S[0], E.dir, "n0", nats_port[0], 0, NULL);
    nu_url(&S[0], url[0], sizeof(url[0]));
    queue_extra[0] = '\0';
    nu_set_tls_ca(NULL, NULL);
    nu_set_tls_client(NULL, NULL);
}

static void
teardown(void)
{
    for (int i = 0; i < 3; i++) {
        nu_server_signal(&S[i], SIGKILL);
    }
    harness_fini(&E);
}

static void
server_start(int i)
{
    HARNESS_REQUIRE(&E, nu_server_start(&S[i], 10000) == 0, "nats-server %d did not start (%s)", i,
                    S[i].log);
}

static void
stream_create(const char *name, const char *subject, int replicas, int64_t max_msgs,
              int64_t max_msg_size)
{
    struct nu_stream st = {.name = name,
                           .subject = subject,
                           .replicas = replicas,
                           .max_msgs = max_msgs,
                           .max_msg_size = max_msg_size,
                           .dup_window_ms = 120000};
    HARNESS_REQUIRE(&E, nu_stream_create(url[0], &st) == 0, "cannot create stream %s", name);
}

/* The edge: a tcp source and a nats sink to urls; extra: more sink lines. */
static void
edge_start(const char *urls, const char *extra)
{
    ck_assert_int_eq(harness_write_config(&E,
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "chunk_size = 128KiB\n"
                                          "%s"
                                          "[sink js]\n"
                                          "type = nats\n"
                                          "queue = main\n"
                                          "url = %s\n"
                                          "subject = logs.%%{queue}\n"
                                          "stream = LOGS\n"
                                          "ack_timeout = 2s\n"
                                          "retry_initial = 50ms\n"
                                          "retry_max = 500ms\n"
                                          "%s",
                                          edge_admin, edge_port, queue_extra, urls, extra),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK,
                    "edge not listening");
}

static void
stop_ok(struct harness *h)
{
    int status = 0;
    enum harness_wait w = harness_stop(h, SIGTERM, 60000, &status);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "no exit within 60 s of SIGTERM");
    HARNESS_REQUIRE(h, WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
}

/* A sender thread: events [base, base + n) on one connection. */
struct sender {
    pthread_t th;
    uint64_t base, n;
    int rc;
};

static void *
sender_main(void *arg)
{
    struct sender *sd = arg;
    int fd = harness_tcp_connect(edge_port, 120000);

    sd->rc = -1;
    if (fd >= 0) {
        sd->rc = harness_send_events(fd, sd->base, sd->n);
        if (sd->rc == 0 && harness_wait_sent(fd, 120000) != HARNESS_WAIT_OK) {
            sd->rc = -1;
        }
        close(fd);
    }
    return NULL;
}

static void
sender_start(struct sender *sd, uint64_t base, uint64_t n)
{
    sd->base = base;
    sd->n = n;
    ck_assert_int_eq(pthread_create(&sd->th, NULL, sender_main, sd), 0);
}

static void
sender_join(struct sender *sd)
{
    pthread_join(sd->th, NULL);
    HARNESS_REQUIRE(&E, sd->rc == 0, "sending failed");
}

/* Polls until the stream (through url u) holds at least n messages. */
static void
wait_msgs(const char *u, const char *stream, int64_t n, int timeout_ms)
{
    int64_t end = harness_now_ms() + harness_ms(timeout_ms), got = -1;

    while (harness_now_ms() < end) {
        got = nu_stream_msgs(u, stream);
        if (got >= n) {
            return;
        }
        if (E.pid > 0 && !harness_alive(&E)) {
            /* a crash is not a stall: say so at once */
            harness_report(&E, __FILE__, __LINE__, "stream count");
            ck_abort_msg("stream %s: %" PRId64 " of %" PRId64 " messages: sluiced exited (status "
                         "%#x%s)",
                         stream, got, n, (unsigned)E.status,
                         WIFSIGNALED(E.status) ? ", killed by a signal" : "");
        }
        harness_poll_step(50);
    }
    harness_report(&E, __FILE__, __LINE__, "stream count");
    ck_abort_msg("stream %s: %" PRId64 " of %" PRId64 " messages", stream, got, n);
}

/* Polls until /healthz's body contains text (want_ok: the sink is ok). */
static void
wait_health(const char *text, int timeout_ms)
{
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);
    char *body = NULL;

    while (harness_now_ms() < end) {
        free(body);
        body = NULL;
        harness_http_get(edge_admin, "/healthz", 2000, &body);
        if (body != NULL && strstr(body, text) != NULL) {
            free(body);
            return;
        }
        harness_poll_step(50);
    }
    harness_report(&E, __FILE__, __LINE__, "healthz");
    ck_abort_msg("/healthz never said \"%s\"; last: %s", text, body != NULL ? body : "(none)");
}

/* Dumps the stream into dir/name and adds it to s. */
static void
dump_into(struct harness_seqs *s, const char *u, const char *name, int64_t want)
{
    char path[PATH_MAX];
    int64_t got = 0;

    harness_path(&E, name, path, sizeof(path));
    int rc = nu_stream_dump(u, "LOGS", path, &got, 60000);
    HARNESS_REQUIRE(&E, rc == 0, "dump: %" PRId64 " messages read", got);
    if (want >= 0) {
        HARNESS_REQUIRE(&E, got == want, "dump: %" PRId64 " messages, expected %" PRId64, got,
                        want);
    }
    ck_assert_int_eq(harness_seqs_add_file(s, path, true), 0);
}

static void
require_once(struct harness_seqs *s)
{
    char msg[1024];

    if (!harness_seqs_exactly_once(s, msg, sizeof(msg))) {
        harness_report(&E, __FILE__, __LINE__, "exactly once");
        ck_abort_msg("%s", msg);
    }
    harness_seqs_fini(s);
}

/* Everything sent is in the stream exactly once (event mode: one message
 * per event). */
static void
check_stream(const char *u, uint64_t n, bool per_event)
{
    struct harness_seqs s;

    if (per_event) {
        wait_msgs(u, "LOGS", (int64_t)n, 60000);
    }
    ck_assert_int_eq(harness_seqs_init(&s, n), 0);
    dump_into(&s, u, "dump.ndjson", per_event ? (int64_t)n : -1);
    require_once(&s);
}

static uint64_t
metric(const char *name)
{
    char *body = NULL;
    uint64_t v = 0;

    if (harness_http_get(edge_admin, "/metrics", 2000, &body) == 200 && body != NULL) {
        char *p = strstr(body, name);
        if (p != NULL && (p = strchr(p, ' ')) != NULL) {
            v = strtoull(p + 1, NULL, 10);
        }
    }
    free(body);
    return v;
}

/* A metric's value as a number (first line starting with name), -1 if absent. */
static double
metric_f(const char *name)
{
    char *body = NULL;
    double v = -1;

    if (harness_http_get(edge_admin, "/metrics", 2000, &body) == 200 && body != NULL) {
        for (char *p = body; p != NULL; p = strchr(p, '\n')) {
            p += *p == '\n';
            if (strncmp(p, name, strlen(name)) == 0) {
                v = strtod(p + strlen(name), NULL);
                break;
            }
        }
    }
    free(body);
    return v;
}

#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"} "
#define M_CHUNKS "sluice_queue_chunks{queue=\"main\"} "
#define M_DUPS "sluice_sink_duplicate_publishes_total{sink=\"js\"} "
#define M_ACK "sluice_sink_publish_ack_seconds"

/* Polls until the edge took n events and its queue holds no chunk: every
 * chunk was committed, so every message in it was acknowledged. */
static void
wait_committed(uint64_t n, int timeout_ms)
{
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);

    while (harness_now_ms() < end) {
        if (metric_f(M_RECEIVED) == (double)n && metric_f(M_CHUNKS) == 0) {
            return;
        }
        harness_poll_step(20);
    }
    harness_report(&E, __FILE__, __LINE__, "committed");
    ck_abort_msg("the edge took %.0f of %" PRIu64 " events, %.0f chunks not committed",
                 metric_f(M_RECEIVED), n, metric_f(M_CHUNKS));
}

/*
 * The sink's publish-ack histogram in one /metrics read: buckets
 * cumulative (never decreasing, ending in +Inf), _count = the +Inf bucket
 * = acked (each message's positive PubAck observed once), a positive sum.
 */
static void
check_ack_hist(int64_t acked)
{
    const char *pre = M_ACK "_bucket{sink=\"js\",le=\"";
    char *body = NULL;
    double prev = 0, v, count = -1, sum = -1;
    int nb = 0;
    bool inf = false;

    ck_assert_int_eq(harness_http_get(edge_admin, "/metrics", 2000, &body), 200);
    ck_assert_ptr_nonnull(body);
    for (char *p = body, *nl; p != NULL; p = (nl = strchr(p, '\n')) != NULL ? nl + 1 : NULL) {
        if (strncmp(p, pre, strlen(pre)) != 0) {
            continue;
        }
        ck_assert_msg(!inf, "a bucket after le=\"+Inf\"");
        inf = strncmp(p + strlen(pre), "+Inf\"", 5) == 0;
        char *sp = strchr(p, ' ');
        ck_assert_ptr_nonnull(sp);
        v = strtod(sp + 1, NULL);
        ck_assert_msg(v >= prev, "bucket %d of %s: %.0f after %.0f (not cumulative)", nb, M_ACK, v,
                      prev);
        prev = v;
        nb++;
    }
    ck_assert_int_eq(harness_metric(body, M_ACK "_count{sink=\"js\"}", &count), 0);
    ck_assert_int_eq(harness_metric(body, M_ACK "_sum{sink=\"js\"}", &sum), 0);
    free(body);
    ck_assert_msg(inf && nb > 1, "%s: %d buckets, +Inf %s", M_ACK, nb, inf ? "last" : "missing");
    ck_assert_msg(count == prev, "%s_count %.0f, +Inf bucket %.0f", M_ACK, count, prev);
    ck_assert_msg(count == (double)acked, "%s_count %.0f, %" PRId64 " messages acknowledged",
                  M_ACK, count, acked);
    ck_assert_msg(sum > 0, "%s_sum %g", M_ACK, sum);
}

/* --- the plain cases ---------------------------------------------------------------- */

/* One server and stream, EVENTS events through the edge in mode; with
 * per_event the stream holds one message per event. */
static void
plain_run(const char *mode, bool per_event)
{
    char extra[64];

    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    snprintf(extra, sizeof(extra), "message = %s\n", mode);
    edge_start(url[0], extra);
    struct sender sd;
    sender_start(&sd, 0, EVENTS);
    sender_join(&sd);
    /* Every chunk committed: every message acknowledged once, and the
     * stream holds each once (duplicates are dropped by the server), so
     * the histogram counted as many acknowledgements as it holds. */
    wait_committed(EVENTS, 60000);
    int64_t stored = nu_stream_msgs(url[0], "LOGS");
    if (per_event) {
        ck_assert_int_eq(stored, EVENTS);
    }
    check_ack_hist(stored);
    /* The sink commits a chunk only once it is stored: after a graceful
     * stop everything is in the stream. */
    stop_ok(&E);
    check_stream(url[0], EVENTS, per_event);
}

START_TEST(test_nats_event)
{
    plain_run("event", true);
}
END_TEST

START_TEST(test_nats_batch)
{
    plain_run("batch", false);
}
END_TEST

/* --- faults of the server ------------------------------------------------------------ */

/* One server, stream LOGS (max_msgs: 0 or a limit with discard new), the
 * edge, and EVENTS events on their way; returns once the stream holds
 * wait_n messages. */
static void
fault_begin(struct sender *sd, int64_t max_msgs, int64_t wait_n)
{
    server_start(0);
    stream_create("LOGS", "logs.>", 1, max_msgs, 0);
    edge_start(url[0], "");
    sender_start(sd, 0, EVENTS);
    wait_msgs(url[0], "LOGS", wait_n, 60000);
}

START_TEST(test_nats_server_stop)
{
    struct sender sd;

    fault_begin(&sd, 0, EVENTS / 10);
    nu_server_signal(&S[0], SIGSTOP);
    int64_t t0 = harness_now_ms();
    wait_health("no acknowledgement within ack_timeout", STOP_MS);
    /* The fault's own duration, not a synchronisation.  Meanwhile the sink
     * fails but the writer thread never waits in libnats (the publishing
     * thread does): its heartbeat stays fresh. */
    double worst = 0;
    int samples = 0;
    while (harness_now_ms() - t0 < STOP_MS) {
        double age = metric_f("sluice_writer_heartbeat_age_seconds ");
        HARNESS_REQUIRE(&E, age >= 0, "no sluice_writer_heartbeat_age_seconds in /metrics");
        worst = age > worst ? age : worst;
        samples++;
        harness_poll_step(100);
    }
    HARNESS_REQUIRE(&E, samples > 10 && worst < 3.0,
                    "writer heartbeat %.3f s old while the server was stopped (%d samples)", worst,
                    samples);
    HARNESS_REQUIRE(&E, metric_f("sluice_sink_up{sink=\"js\"} ") == 0,
                    "the sink is not failing in /metrics while the server is stopped");
    nu_server_signal(&S[0], SIGCONT);
    sender_join(&sd);
    check_stream(url[0], EVENTS, true);
    wait_health("\"ok\"", 10000);
    stop_ok(&E);
}
END_TEST

START_TEST(test_nats_server_kill)
{
    struct sender sd;

    fault_begin(&sd, 0, EVENTS / 4);
    nu_server_signal(&S[0], SIGKILL);
    wait_health(url[0], 10000); /* "connect nats://...: not connected" */
    server_start(0);
    sender_join(&sd);
    check_stream(url[0], EVENTS, true);
    stop_ok(&E);
}
END_TEST

START_TEST(test_nats_server_late)
{
    edge_start(url[0], "");
    struct sender sd;
    sender_start(&sd, 0, EVENTS);
    wait_health(url[0], 10000);
    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    sender_join(&sd);
    check_stream(url[0], EVENTS, true);
    stop_ok(&E);
}
END_TEST

START_TEST(test_nats_stream_full)
{
    struct harness_seqs s;
    const int64_t max = EVENTS / 2;

    struct sender sd;
    fault_begin(&sd, max, max);
    wait_health("stream LOGS full", 10000);
    ck_assert_int_eq(harness_seqs_init(&s, EVENTS), 0);
    dump_into(&s, url[0], "first.ndjson", max);
    HARNESS_REQUIRE(&E, nu_stream_purge(url[0], "LOGS") == 0, "purge");
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", EVENTS - max, 60000);
    dump_into(&s, url[0], "second.ndjson", EVENTS - max);
    require_once(&s);
    wait_health("\"ok\"", 10000);
    stop_ok(&E);
}
END_TEST

START_TEST(test_nats_too_large)
{
    struct harness_seqs s;
    char big[1100];

    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 1000);
    edge_start(url[0], "");
    int fd = harness_tcp_connect(edge_port, 60000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, 100), 0);
    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"big\":\"", 8);
    memcpy(big + sizeof(big) - 3, "\"}\n", 3);
    ck_assert_int_eq(harness_send_all(fd, big, sizeof(big)), 0);
    ck_assert_int_eq(harness_send_events(fd, 100, 100), 0);
    close(fd);
    check_stream(url[0], 200, true);
    int64_t end = harness_now_ms() + harness_ms(10000);
    while (metric("sluice_sink_rejected_events_total{sink=\"js\"}") != 1 &&
           harness_now_ms() < end) {
        harness_poll_step(50);
    }
    ck_assert_uint_eq(metric("sluice_sink_rejected_events_total{sink=\"js\"}"), 1);
    (void)s;
    stop_ok(&E);
}
END_TEST

START_TEST(test_nats_misrouted)
{
    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    stream_create("OTHER", "other.>", 1, 0, 0);
    ck_assert_int_eq(harness_write_config(&E,
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink js]\n"
                                          "type = nats\n"
                                          "queue = main\n"
                                          "url = %s\n"
                                          "subject = other.x\n"
                                          "stream = LOGS\n",
                                          edge_admin, edge_port, url[0]),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK, "listening");
    int fd = harness_tcp_connect(edge_port, 60000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, 10), 0);
    close(fd);
    wait_health("subject other.x is not stored in stream LOGS", 10000);
    ck_assert_int_eq(nu_stream_msgs(url[0], "OTHER"), 0);
    ck_assert_int_eq(nu_stream_msgs(url[0], "LOGS"), 0);
}
END_TEST

/* --- sluiced killed with a disk queue ------------------------------------------------ */

#define KILL_ROUNDS 3

/* Polls until the edge took n events since it started and every chunk is
 * in the disk queue's files (none left in memory): a kill -9 loses none. */
static void
wait_on_disk(uint64_t n)
{
    int64_t end = harness_now_ms() + harness_ms(30000);

    while (harness_now_ms() < end) {
        if (metric_f(M_RECEIVED) == (double)n && metric_f(M_CHUNKS) == 0) {
            return;
        }
        harness_poll_step(10);
    }
    harness_report(&E, __FILE__, __LINE__, "on disk");
    ck_abort_msg("the edge took %.0f of %" PRIu64 " events into its disk queue", metric_f(M_RECEIVED),
                 n);
}

/* Polls (fast) until the stream holds at least n messages; false on timeout. */
static bool
stream_reaches(int64_t n, int timeout_ms)
{
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);

    while (harness_now_ms() < end) {
        if (nu_stream_msgs(url[0], "LOGS") >= n) {
            return true;
        }
        harness_poll_step(2);
    }
    return false;
}

/*
 * tcp source -> disk queue -> nats sink, sluiced killed (-9) KILL_ROUNDS
 * times while the sink publishes a round of events from the disk queue,
 * restarted on the same queue each time.  The resends of what was
 * published but not yet committed at the kill carry the message ids they
 * had (the numbering persisted with the queue's position), so the server
 * drops them: the stream holds every event exactly once.
 */
START_TEST(test_nats_diskq_kill)
{
    const uint64_t round = (uint64_t)harness_events(20000), total = round * (KILL_ROUNDS + 1);
    char qdir[PATH_MAX];
    int mid = 0;
    double dups = 0;

    harness_path(&E, "q", qdir, sizeof(qdir));
    snprintf(queue_extra, sizeof(queue_extra), "type = disk\npath = %s\nfsync_interval = 100ms\n",
             qdir);
    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    for (int r = 0; r <= KILL_ROUNDS; r++) {
        edge_start(url[0], "max_inflight = 256\n");
        struct sender sd;
        sender_start(&sd, (uint64_t)r * round, round);
        sender_join(&sd);
        /* Plain TCP has no acknowledgement: only what the queue holds can
         * be asked of it after a kill. */
        wait_on_disk(round);
        if (r == KILL_ROUNDS) {
            break;
        }
        /* Mid-publish: a third of this round is in the stream.  The first
         * kill comes at the first message, before any state file can hold
         * the sink's numbering (the restart then numbers from the queue's
         * start again, and must give the ids the killed run gave). */
        uint64_t at = r == 0 ? 1 : r * round + round / 3;
        HARNESS_REQUIRE(&E, stream_reaches((int64_t)at, 60000),
                        "round %d: the stream did not reach %" PRIu64 " messages", r, at);
        dups += metric_f(M_DUPS);
        harness_signal(&E, SIGKILL);
        HARNESS_REQUIRE(&E, harness_wait_exit(&E, 10000, NULL) == HARNESS_WAIT_OK, "no exit");
        mid += nu_stream_msgs(url[0], "LOGS") < (int64_t)((uint64_t)(r + 1) * round);
    }
    wait_msgs(url[0], "LOGS", (int64_t)total, 60000);
    dups += metric_f(M_DUPS);
    stop_ok(&E);
    fprintf(stderr,
            "diskq_kill: %d of %d kills while the round was being published; %.0f resends "
            "the server dropped as duplicates\n",
            mid, KILL_ROUNDS, dups);
    check_stream(url[0], total, true);
    /* A kill mid-publish leaves published, uncommitted records: their
     * resends must have been recognised (same ids), not stored again. */
    HARNESS_REQUIRE(&E, mid == 0 || dups > 0,
                    "%d kills mid-publish and no resend was a duplicate: ids not stable?", mid);
}
END_TEST

/* --- connection set-up off the main thread --------------------------------------- */

/*
 * The url answers TCP but never speaks NATS (a socket that listens and
 * never accepts: libnats waits its 2 s connect timeout on every attempt).
 * sluiced still starts at once (the publishing thread connects, not
 * open on the main thread), /healthz names the url; then the real server
 * comes up on that port and every event arrives exactly once.
 */
START_TEST(test_nats_connect_later)
{
    int bport = 0;
    int lfd = harness_tcp_listen(0, &bport);

    ck_assert_int_ge(lfd, 0);
    nu_server_init(&S[0], E.dir, "n0", bport, 0, NULL);
    nu_url(&S[0], url[0], sizeof(url[0]));
    int64_t t0 = harness_now_ms();
    edge_start(url[0], "");
    wait_health(url[0], 10000);
    int64_t took = harness_now_ms() - t0;
    fprintf(stderr, "connect_later: listening and /healthz failing %" PRId64 " ms after start\n",
            took);
    HARNESS_REQUIRE(&E, took < harness_ms(1500),
                    "start took %" PRId64 " ms: the main thread waited for the NATS server", took);
    struct sender sd;
    sender_start(&sd, 0, FEW_EVENTS);
    close(lfd);
    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    sender_join(&sd);
    check_stream(url[0], FEW_EVENTS, true);
    wait_health("\"ok\"", 10000);
    stop_ok(&E);
}
END_TEST

/* --- TLS --------------------------------------------------------------------------------- */

static char certs[200];

/* Certificates (tests/certs.sh, the openssl command line) and a server
 * that speaks TLS only, with its certificate for localhost/127.0.0.1 from
 * ca.pem; the helpers' connections trust ca.pem; stream LOGS.  verify_ca
 * (a file in certs, or NULL): the server requires client certificates
 * from it, and the helpers present client.pem. */
static void
tls_server(const char *leaf, const char *verify_ca)
{
    char cmd[2 * PATH_MAX], ca[PATH_MAX + 16];
    const char *top = getenv("SLUICE_TOP");

    harness_path(&E, "certs", certs, sizeof(certs));
    snprintf(cmd, sizeof(cmd), "sh %s/tests/certs.sh %s >/dev/null 2>&1", top != NULL ? top : ".",
             certs);
    HARNESS_REQUIRE(&E, system(cmd) == 0, "tests/certs.sh failed");
    snprintf(S[0].tls_cert, sizeof(S[0].tls_cert), "%s/%s.pem", certs, leaf);
    snprintf(S[0].tls_key, sizeof(S[0].tls_key), "%s/%s.key", certs, leaf);
    if (verify_ca != NULL) {
        char cert[PATH_MAX], key[PATH_MAX];
        snprintf(S[0].tls_verify_ca, sizeof(S[0].tls_verify_ca), "%s/%s", certs, verify_ca);
        nu_set_tls_client(strcat(strcpy(cert, certs), "/client.pem"),
                          strcat(strcpy(key, certs), "/client.key"));
    }
    server_start(0);
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    nu_set_tls_ca(ca, strcmp(leaf, "wrongname") == 0 ? "wrong.example" : "localhost");
    stream_create("LOGS", "logs.>", 1, 0, 0);
}

START_TEST(test_nats_tls)
{
    char extra[PATH_MAX + 128];

    tls_server("server", NULL);
    /* No tls_server_name: the url's host, 127.0.0.1, in the certificate's
     * IP SAN. */
    snprintf(extra, sizeof(extra), "tls = on\ntls_ca_file = %s/ca.pem\n", certs);
    edge_start(url[0], extra);
    struct sender sd;
    sender_start(&sd, 0, FEW_EVENTS);
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", FEW_EVENTS, 60000);
    ck_assert_uint_eq(
        metric("sluice_tls_handshake_failures_total{sink=\"js\",reason=\"untrusted\"}"), 0);
    stop_ok(&E);
    check_stream(url[0], FEW_EVENTS, true);
}
END_TEST

/*
 * A server whose certificate (leaf) the sink must refuse when it trusts
 * certs/ca (and checks server_name, NULL: the url's host): 100 events sent, /healthz names the failed handshake, at least
 * `times` failures are counted with reason, the log has OpenSSL's words
 * (log_has), and the stream holds nothing.
 */
static void
tls_refused(const char *leaf, const char *ca, const char *server_name, const char *reason,
            uint64_t times, const char *log_has)
{
    char want[128], name[128], extra[PATH_MAX + 128];

    tls_server(leaf, NULL);
    snprintf(extra, sizeof(extra), "tls = on\ntls_ca_file = %s/%s\n%s%s%s", certs, ca,
             server_name != NULL ? "tls_server_name = " : "",
             server_name != NULL ? server_name : "", server_name != NULL ? "\n" : "");
    edge_start(url[0], extra);
    int fd = harness_tcp_connect(edge_port, 60000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, 100), 0);
    close(fd);
    snprintf(want, sizeof(want), "TLS handshake with %s failed", url[0]);
    wait_health(want, 10000);
    snprintf(name, sizeof(name), "sluice_tls_handshake_failures_total{sink=\"js\",reason=\"%s\"}",
             reason);
    int64_t end = harness_now_ms() + harness_ms(10000);
    while (metric(name) < times && harness_now_ms() < end) {
        harness_poll_step(50);
    }
    if (metric(name) < times) {
        harness_report(&E, __FILE__, __LINE__, reason);
        ck_abort_msg("fewer than %" PRIu64 " handshakes counted as %s", times, reason);
    }
    ck_assert_int_eq(nu_stream_msgs(url[0], "LOGS"), 0);
    HARNESS_REQUIRE(&E, harness_log_has(&E, log_has), "the log does not say \"%s\"", log_has);
}

/* The server's certificate is not from tls_ca_file: nothing is sent, the
 * failed handshakes are counted (reason untrusted, every retry) and
 * /healthz says so. */
START_TEST(test_nats_tls_wrong_ca)
{
    tls_refused("server", "other-ca.pem", "localhost", "untrusted", 2,
                "unable to get local issuer certificate");
}
END_TEST

/* The server's certificate is from the right CA but for wrong.example:
 * the name is checked (the url's host, 127.0.0.1, by default), nothing is
 * stored, the failures are counted. */
START_TEST(test_nats_tls_wrong_name)
{
    tls_refused("wrongname", "ca.pem", NULL, "name", 1, "mismatch");
}
END_TEST

/*
 * A stand-in NATS server that speaks TLS 1.2 at most (nats-server 2.9 has
 * no max_version): for each connection it sends an INFO asking for TLS,
 * answers the handshake with certs/server.pem, counts whether it
 * completed, and closes.  Its own thread; stopped by tls12_stop.
 */
struct tls12_server {
    int fd, port;
    SSL_CTX *ctx;
    pthread_t th;
    atomic_int ok, failed;
    atomic_bool stop;
};

static void *
tls12_main(void *arg)
{
    struct tls12_server *t = arg;
    char info[256];

    while (!atomic_load(&t->stop)) {
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int c = accept(t->fd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        struct timeval tv = {.tv_sec = 5};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int n = snprintf(info, sizeof(info),
                         "INFO {\"server_id\":\"TLS12\",\"version\":\"2.9.10\",\"proto\":1,"
                         "\"headers\":true,\"max_payload\":1048576,\"tls_required\":true,"
                         "\"port\":%d}\r\n",
                         t->port);
        SSL *ssl = SSL_new(t->ctx);
        if (ssl != NULL && harness_send_all(c, info, (size_t)n) == 0 && SSL_set_fd(ssl, c) == 1 &&
            SSL_accept(ssl) == 1) {
            atomic_fetch_add(&t->ok, 1);
        } else {
            atomic_fetch_add(&t->failed, 1);
        }
        SSL_free(ssl);
        close(c);
    }
    return NULL;
}

static void
tls12_start(struct tls12_server *t)
{
    char p[PATH_MAX];

    memset(t, 0, sizeof(*t));
    t->ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(t->ctx);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(t->ctx, TLS1_2_VERSION), 1);
    snprintf(p, sizeof(p), "%s/server.pem", certs);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(t->ctx, p), 1);
    snprintf(p, sizeof(p), "%s/server.key", certs);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(t->ctx, p, SSL_FILETYPE_PEM), 1);
    t->fd = harness_tcp_listen(0, &t->port);
    ck_assert_int_ge(t->fd, 0);
    ck_assert_int_eq(pthread_create(&t->th, NULL, tls12_main, t), 0);
}

static void
tls12_stop(struct tls12_server *t)
{
    atomic_store(&t->stop, true);
    pthread_join(t->th, NULL);
    close(t->fd);
    SSL_CTX_free(t->ctx);
}

/* An OpenSSL client with its defaults (TLS 1.2 allowed) against t: reads
 * the INFO line, then handshakes.  Returns the version negotiated, or -1. */
static int
tls12_client(struct tls12_server *t)
{
    char line[512];
    size_t got = 0;
    int version = -1;
    int fd = harness_tcp_connect(t->port, 5000);

    ck_assert_int_ge(fd, 0);
    while (got < sizeof(line) - 1 && (got == 0 || line[got - 1] != '\n')) {
        ssize_t r = recv(fd, line + got, 1, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    SSL_CTX *ctx = harness_tls_client_ctx(certs, NULL);
    SSL *ssl = SSL_new(ctx);
    ck_assert_ptr_nonnull(ssl);
    SSL_set_fd(ssl, fd);
    if (got > 0 && line[got - 1] == '\n' && SSL_connect(ssl) == 1) {
        version = SSL_version(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return version;
}

/* tls_min_version = 1.3 (libnats has no setter: the sink offers no TLS 1.2
 * suite, sink_nats.c).  A nats-server (Go, TLS 1.3) takes every event; a
 * server that speaks TLS 1.2 at most, which a default OpenSSL client does
 * reach with TLS 1.2, gets no completed handshake from the sink: counted
 * (version), /healthz names the url. */
START_TEST(test_nats_tls13)
{
    char extra[PATH_MAX + 128], want[160], u12[64];
    const char *failures = "sluice_tls_handshake_failures_total{sink=\"js\",reason=\"version\"}";

    tls_server("server", NULL);
    snprintf(extra, sizeof(extra), "tls = on\ntls_ca_file = %s/ca.pem\ntls_min_version = 1.3\n",
             certs);
    edge_start(url[0], extra);
    struct sender sd;
    sender_start(&sd, 0, FEW_EVENTS);
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", FEW_EVENTS, 60000);
    ck_assert_uint_eq(metric(failures), 0);
    stop_ok(&E);
    check_stream(url[0], FEW_EVENTS, true);

    struct tls12_server t;
    tls12_start(&t);
    ck_assert_int_eq(tls12_client(&t), TLS1_2_VERSION);
    int64_t end = harness_now_ms() + harness_ms(10000);
    while (atomic_load(&t.ok) < 1 && harness_now_ms() < end) {
        harness_poll_step(10); /* its thread counts after its SSL_accept returns */
    }
    ck_assert_int_eq(atomic_load(&t.ok), 1);
    snprintf(u12, sizeof(u12), "nats://127.0.0.1:%d", t.port);
    edge_start(u12, extra);
    snprintf(want, sizeof(want), "TLS handshake with %s failed", u12);
    wait_health(want, 10000);
    end = harness_now_ms() + harness_ms(10000);
    while ((metric(failures) < 2 || atomic_load(&t.failed) < 2) && harness_now_ms() < end) {
        harness_poll_step(50);
    }
    ck_assert_uint_ge(metric(failures), 2);
    ck_assert_int_ge(atomic_load(&t.failed), 2);
    ck_assert_int_eq(atomic_load(&t.ok), 1); /* only the TLS 1.2 client's */
    stop_ok(&E);
    tls12_stop(&t);
}
END_TEST

/* Copies certs/from to certs/to (a certificate rotated into place). */
static void
cert_copy(const char *from, const char *to)
{
    char src[PATH_MAX], dst[PATH_MAX];

    snprintf(src, sizeof(src), "%s/%s", certs, from);
    snprintf(dst, sizeof(dst), "%s/%s", certs, to);
    char *pem = harness_read_file(src, NULL);
    ck_assert_ptr_nonnull(pem);
    ck_assert_int_eq(harness_write_file(dst, "%s", pem), 0);
    free(pem);
}

/* Polls until the sink's metric (a full sample name) is want. */
static void
wait_metric(const char *name, uint64_t want, int timeout_ms)
{
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);

    while (metric(name) != want && harness_now_ms() < end) {
        harness_poll_step(20);
    }
    if (metric(name) != want) {
        harness_report(&E, __FILE__, __LINE__, name);
        ck_abort_msg("%s is %" PRIu64 ", not %" PRIu64, name, metric(name), want);
    }
}

#define M_RELOADS "sluice_tls_reloads_total{sink=\"js\"}"
#define M_RELOAD_FAILS "sluice_tls_reload_failures_total{sink=\"js\"}"
#define RENEW_LOG "reconnecting with the new TLS files"

/*
 * Certificate rotation (SIGHUP): a server that requires client
 * certificates from ca; the sink presents sink.pem (client.pem, from ca).
 * A bad certificate rotated in is refused (logged, counted), the files in
 * use stay and events keep arriving.  Then a certificate from other-ca is
 * rotated in: taken (counted), the established connection stays (events
 * arrive, no reconnection).  The server is restarted trusting other-ca
 * only, so the old certificate can no longer connect: the sink's next
 * connection uses the new one, and every event is stored exactly once.
 */
START_TEST(test_nats_tls_rotate)
{
    const uint64_t n = 2000;
    char extra[3 * PATH_MAX], cert[PATH_MAX], key[PATH_MAX];

    tls_server("server", "ca.pem");
    cert_copy("client.pem", "sink.pem");
    cert_copy("client.key", "sink.key");
    snprintf(extra, sizeof(extra),
             "tls = on\ntls_ca_file = %s/ca.pem\ntls_cert_file = %s/sink.pem\n"
             "tls_key_file = %s/sink.key\n",
             certs, certs, certs);
    edge_start(url[0], extra);
    struct sender sd;
    sender_start(&sd, 0, n);
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", (int64_t)n, 20000);

    /* Not a certificate: kept the old one, said why, counted. */
    cert_copy("bad.pem", "sink.pem");
    ck_assert_int_eq(harness_signal(&E, SIGHUP), 0);
    wait_metric(M_RELOAD_FAILS, 1, 10000);
    ck_assert_uint_eq(metric(M_RELOADS), 0);
    HARNESS_REQUIRE(&E, harness_log_has(&E, "TLS reload failed, keeping the certificates in use"),
                    "the log does not say why the reload failed");
    sender_start(&sd, n, n);
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", 2 * (int64_t)n, 20000);

    /* A good certificate from another CA: taken for the next connection;
     * the established one stays. */
    cert_copy("otherca.pem", "sink.pem");
    cert_copy("otherca.key", "sink.key");
    ck_assert_int_eq(harness_signal(&E, SIGHUP), 0);
    wait_metric(M_RELOADS, 1, 10000);
    ck_assert_uint_eq(metric(M_RELOAD_FAILS), 1);
    sender_start(&sd, 2 * n, n);
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", 3 * (int64_t)n, 20000);
    HARNESS_REQUIRE(&E, !harness_log_has(&E, RENEW_LOG),
                    "the established connection was closed for the new certificate");

    /* The server restarted trusting other-ca only: the old certificate
     * could not connect any more. */
    nu_server_signal(&S[0], SIGTERM);
    snprintf(S[0].tls_verify_ca, sizeof(S[0].tls_verify_ca), "%s/other-ca.pem", certs);
    nu_set_tls_client(strcat(strcpy(cert, certs), "/otherca.pem"),
                      strcat(strcpy(key, certs), "/otherca.key"));
    server_start(0);
    sender_start(&sd, 3 * n, n);
    sender_join(&sd);
    wait_msgs(url[0], "LOGS", 4 * (int64_t)n, 20000);
    HARNESS_REQUIRE(&E, harness_log_has(&E, RENEW_LOG), "the log does not say \"%s\"", RENEW_LOG);
    stop_ok(&E);
    check_stream(url[0], 4 * n, true);
}
END_TEST

/* --- a three-node cluster -------------------------------------------------------------- */

START_TEST(test_nats_cluster)
{
    char routes[256], urls[256];

    snprintf(routes, sizeof(routes), "nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d",
             route_port[0], route_port[1], route_port[2]);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        nu_server_init(&S[i], E.dir, name, nats_port[i], route_port[i], routes);
        nu_url(&S[i], url[i], sizeof(url[i]));
        server_start(i);
    }
    snprintf(urls, sizeof(urls), "%s,%s,%s", url[0], url[1], url[2]);
    /* Real state, not time: the meta group has a leader (else the stream
     * cannot be created), then the stream's own group has a leader and
     * both replicas current (else the first publishes race its election). */
    HARNESS_REQUIRE(&E, nu_cluster_ready(url[0], 30000) == 0, "no JetStream meta leader");
    /* A meta leader may still know fewer than three peers ("no suitable
     * peers for placement", seen under load): real state again, polled. */
    struct nu_stream st = {
        .name = "LOGS", .subject = "logs.>", .replicas = 3, .dup_window_ms = 120000};
    int64_t end = harness_now_ms() + harness_ms(30000);
    int rc;
    while ((rc = nu_stream_create(url[0], &st)) != 0 && harness_now_ms() < end) {
        harness_poll_step(200);
    }
    HARNESS_REQUIRE(&E, rc == 0, "cannot create stream LOGS with 3 replicas");
    HARNESS_REQUIRE(&E, nu_stream_ready(url[0], "LOGS", 3, NULL, 30000) == 0,
                    "stream LOGS: no leader with 3 current servers");
    edge_start(urls, "message = batch\n");
    struct sender sd;
    sender_start(&sd, 0, CLUSTER_EVENTS);
    wait_msgs(url[1], "LOGS", CLUSTER_KILL_MSGS, 60000);
    nu_server_signal(&S[0], SIGKILL); /* the sink's server (NoRandomize: the first) */
    /* The two left elect leaders again (stream, meta) before the check
     * reads the stream and creates its consumer. */
    HARNESS_REQUIRE(&E, nu_stream_ready(url[1], "LOGS", 2, "c0", 30000) == 0,
                    "stream LOGS: no leader among c1, c2");
    HARNESS_REQUIRE(&E, nu_cluster_ready(url[1], 30000) == 0, "no JetStream meta leader");
    sender_join(&sd);
    /* A graceful stop ends once every chunk is acknowledged: stored. */
    stop_ok(&E);
    check_stream(url[1], CLUSTER_EVENTS, false);
}
END_TEST

/* --- edge -> JetStream -> two aggregators sharing one durable consumer ----------- */

#define SCALE_EVENTS 100000
#define AGG_BATCH 16
/* The consumer's AckWait: scale_out kills nothing, so no message may wait
 * that long for its acknowledgement, even in a sanitizer build (a
 * redelivery would be a duplicate); agg_killed: the takeover waits for it. */
#define AGG_ACK_WAIT_LONG "30s"
#define AGG_ACK_WAIT_KILL "10s"

static struct harness A[2];
static char agg_out[2][PATH_MAX];

static void
agg_start(int i, const char *ack_wait)
{
    if (A[i].dir[0] == '\0') {
        ck_assert_msg(harness_init(&A[i]) == 0, "mkdtemp: %s", strerror(errno));
        harness_path(&A[i], "out.ndjson", agg_out[i], sizeof(agg_out[i]));
    }
    ck_assert_int_eq(harness_write_config(&A[i],
                                          "[daemon]\n"
                                          "producer_threads = 1\n"
                                          "admin_listen = off\n"
                                          "[source js]\n"
                                          "type = nats\n"
                                          "url = %s\n"
                                          "stream = LOGS\n"
                                          "consumer = aggs\n"
                                          "filter_subject = logs.>\n"
                                          "batch = %d\n"
                                          "ack_wait = %s\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink out]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n",
                                          url[0], AGG_BATCH, ack_wait, agg_out[i]),
                     0);
    ck_assert_int_eq(harness_start(&A[i], NULL), 0);
}

static void
agg_teardown(void)
{
    harness_fini(&A[0]);
    harness_fini(&A[1]);
    memset(A, 0, sizeof(A));
    teardown();
}

/* Polls until the two files together hold at least n lines. */
static void
wait_agg_lines(uint64_t n, int timeout_ms)
{
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);
    uint64_t got = 0;

    while (harness_now_ms() < end) {
        got = harness_file_lines(agg_out[0]) + harness_file_lines(agg_out[1]);
        if (got >= n) {
            return;
        }
        harness_poll_step(50);
    }
    harness_report(&A[1], __FILE__, __LINE__, "aggregated lines");
    ck_abort_msg("aggregators: %" PRIu64 " of %" PRIu64 " lines", got, n);
}

START_TEST(test_nats_scale_out)
{
    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    agg_start(0, AGG_ACK_WAIT_LONG);
    agg_start(1, AGG_ACK_WAIT_LONG);
    edge_start(url[0], "message = batch\n");
    struct sender sd;
    sender_start(&sd, 0, SCALE_EVENTS);
    sender_join(&sd);
    wait_agg_lines(SCALE_EVENTS, 60000);
    stop_ok(&E);
    stop_ok(&A[0]);
    stop_ok(&A[1]);
    uint64_t l0 = harness_file_lines(agg_out[0]), l1 = harness_file_lines(agg_out[1]);
    HARNESS_REQUIRE(&A[0], l0 > 0 && l1 > 0, "the work was not split: %" PRIu64 " / %" PRIu64, l0,
                    l1);
    struct harness_seqs s;
    ck_assert_int_eq(harness_seqs_init(&s, SCALE_EVENTS), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, agg_out[0], true), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s, agg_out[1], true), 0);
    require_once(&s);
}
END_TEST

START_TEST(test_nats_agg_killed)
{
    server_start(0);
    stream_create("LOGS", "logs.>", 1, 0, 0);
    agg_start(0, AGG_ACK_WAIT_KILL);
    agg_start(1, AGG_ACK_WAIT_KILL);
    edge_start(url[0], "message = batch\n");
    struct sender sd;
    sender_start(&sd, 0, SCALE_EVENTS);
    HARNESS_REQUIRE(&A[0],
                    harness_wait_lines(&A[0], agg_out[0], SCALE_EVENTS / 10, 60000, NULL) ==
                        HARNESS_WAIT_OK,
                    "aggregator 0 got too little");
    harness_signal(&A[0], SIGKILL);
    sender_join(&sd);
    /* Aggregator 1 takes over what 0 fetched and never acknowledged once
     * the consumer's AckWait (AGG_ACK_WAIT_KILL) passes. */
    struct harness_seqs s;
    int64_t end = harness_now_ms() + harness_ms(60000);
    uint64_t seen = 0;
    for (;;) {
        ck_assert_int_eq(harness_seqs_init(&s, SCALE_EVENTS), 0);
        ck_assert_int_eq(harness_seqs_add_file(&s, agg_out[0], true), 0);
        ck_assert_int_eq(harness_seqs_add_file(&s, agg_out[1], true), 0);
        seen = harness_seqs_count_range(&s, 0, SCALE_EVENTS);
        if (seen == SCALE_EVENTS || harness_now_ms() >= end) {
            break;
        }
        harness_seqs_fini(&s);
        harness_poll_step(200);
    }
    HARNESS_REQUIRE(&A[1], seen == SCALE_EVENTS, "lost: %" PRIu64 " of %d seqs seen", seen,
                    SCALE_EVENTS);
    /* The redelivery rule: only what aggregator 0 had fetched and not yet
     * acknowledged when it died comes again, once: every duplicated seq is
     * one aggregator 0 wrote, and none is seen more than twice; at most one
     * torn last line in its file. */
    struct harness_seqs s0;
    ck_assert_int_eq(harness_seqs_init(&s0, SCALE_EVENTS), 0);
    ck_assert_int_eq(harness_seqs_add_file(&s0, agg_out[0], true), 0);
    uint64_t not_from_0 = 0, thrice = 0;
    for (uint64_t i = 0; i < SCALE_EVENTS; i++) {
        not_from_0 += s.seen[i] >= 2 && s0.seen[i] == 0;
        thrice += s.seen[i] > 2;
    }
    harness_seqs_fini(&s0);
    fprintf(stderr, "agg_killed: %" PRIu64 " duplicate seqs, %" PRIu64 " bad lines\n", s.dups,
            s.bad);
    HARNESS_REQUIRE(&A[1], s.bad <= 1, "%" PRIu64 " bad lines: %s", s.bad, s.first_error);
    HARNESS_REQUIRE(&A[1], not_from_0 == 0 && thrice == 0,
                    "%" PRIu64 " duplicated seqs aggregator 0 never wrote, %" PRIu64
                    " seen more than twice",
                    not_from_0, thrice);
    harness_seqs_fini(&s);
    stop_ok(&E);
    stop_ok(&A[1]);
}
END_TEST

static Suite *
nats_suite(void)
{
    Suite *s = suite_create("nats");

    tcase_add_test(harness_tcase(s, "event", 60, setup, teardown), test_nats_event);
    tcase_add_test(harness_tcase(s, "batch", 60, setup, teardown), test_nats_batch);
    tcase_add_test(harness_tcase(s, "server_stop", 90, setup, teardown), test_nats_server_stop);
    tcase_add_test(harness_tcase(s, "server_kill", 60, setup, teardown), test_nats_server_kill);
    tcase_add_test(harness_tcase(s, "server_late", 60, setup, teardown), test_nats_server_late);
    tcase_add_test(harness_tcase(s, "stream_full", 60, setup, teardown), test_nats_stream_full);
    tcase_add_test(harness_tcase(s, "too_large", 60, setup, teardown), test_nats_too_large);
    tcase_add_test(harness_tcase(s, "misrouted", 60, setup, teardown), test_nats_misrouted);
    tcase_add_test(harness_tcase(s, "diskq_kill", 120, setup, teardown), test_nats_diskq_kill);
    tcase_add_test(harness_tcase(s, "connect_later", 60, setup, teardown),
                   test_nats_connect_later);
    tcase_add_test(harness_tcase(s, "tls", 60, setup, teardown), test_nats_tls);
    tcase_add_test(harness_tcase(s, "tls_wrong_ca", 60, setup, teardown), test_nats_tls_wrong_ca);
    tcase_add_test(harness_tcase(s, "tls_rotate", 60, setup, teardown), test_nats_tls_rotate);
    tcase_add_test(harness_tcase(s, "tls_wrong_name", 60, setup, teardown),
                   test_nats_tls_wrong_name);
    tcase_add_test(harness_tcase(s, "tls13", 60, setup, teardown), test_nats_tls13);
    tcase_add_test(harness_tcase(s, "cluster", 120, setup, teardown), test_nats_cluster);
    tcase_add_test(harness_tcase(s, "scale_out", 90, setup, agg_teardown), test_nats_scale_out);
    tcase_add_test(harness_tcase(s, "agg_killed", 90, setup, agg_teardown), test_nats_agg_killed);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(nats_suite());
    int failed;

    signal(SIGPIPE, SIG_IGN);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
