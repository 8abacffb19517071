/*
 * check_reload — config reload (SIGHUP, POST /reload) against the real
 * sluiced, under load: 50 persistent TCP connections and a UDP sender at a
 * steady rate, every event numbered.
 *
 *   - an identical config: applied (the generation goes up), nothing is
 *     rebuilt: the connections see no reset, every event once;
 *   - a broken config: refused with every error as FILE:LINE in the answer
 *     and the log, counted, shown by /healthz; the old config runs on;
 *   - a change this version does not apply live (a sink added, a file path
 *     changed, a source removed, a port changed): refused, nothing
 *     half-applied (the old port still listens, the new one does not, the
 *     old file keeps growing); [daemon] keys: live or "needs a restart";
 *   - 100 SIGHUPs in a burst: coalesced (fewer reloads than signals), none
 *     lost (a config written just before the last signal is applied);
 *   - 1,000 reloads (issue 15): descriptors and RSS flat;
 *   - a sluice sink's target changed from a dead (SIGSTOPped) receiver or a
 *     live one to another: its unacknowledged batches are handed to its new
 *     self and resent (answered at once, nothing given up, nothing twice on
 *     one receiver; a live one's in-flight batches are acknowledged first:
 *     nothing on both receivers; a dead one's move within ack_timeout);
 *   - a nats sink changed under load with real nats-servers (TCases
 *     "nats_handover", on a memory queue, and "nats_handover_disk", on a
 *     disk queue): replaced, what was published and not acknowledged
 *     republished under the same message ids, read back from the streams
 *     (on a disk queue, one server: every event exactly once);
 *   - relp and nats sources (their own TCase "relp_nats"): a relp source
 *     added and removed under rsyslogd's omrelp stream (at the answer every
 *     acknowledged message is in the output), a relp source kept while
 *     other sections change (the same TCP session, no reconnect), a nats
 *     source added, removed mid-stream and added back with a real
 *     nats-server (nothing written is delivered again, nothing lost);
 *   - a relp source whose changed port is taken (TCase "relp_retry"): not
 *     started, and the same file reloaded tries it again until it starts;
 *   - queue settings changed live (TCase "queue_live"): capacity, when_full
 *     and a disk queue's max_size behind a stalled sink, written = sent -
 *     dropped, nothing lost by a change.
 *
 * Counting: TCP events exactly once in the output; a UDP datagram may be
 * lost only as the daemon reports it (kernel drops, full queue), never twice.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_reload
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <fcntl.h>

#include "nats_util.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define NCONN 50
#define ROUND (NCONN + 1) /* seqs per round: one per connection, then one datagram */

static struct harness H;
static int tcp_port, udp_port, admin_port;

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    tcp_port = harness_free_port(SOCK_STREAM);
    udp_port = harness_free_port(SOCK_DGRAM);
    admin_port = harness_free_port(SOCK_STREAM);
    ck_assert(tcp_port > 0 && udp_port > 0 && admin_port > 0);
}

static void
teardown(void)
{
    harness_fini(&H);
}

/*
 * Writes the config (to a temporary file renamed over it, so a reload never
 * reads half a file): the standard one with a tcp source "app" on port,
 * a udp source "dgram", queue "main", file sink "archive" at out_name;
 * daemon_extra goes into [daemon], extra after everything.
 */
static void
write_conf(int port, const char *out_name, const char *daemon_extra, const char *extra)
{
    char tmp[PATH_MAX], out[PATH_MAX];
    harness_path(&H, "sluice.conf.tmp", tmp, sizeof(tmp));
    harness_path(&H, out_name, out, sizeof(out));
    ck_assert_int_eq(
        harness_write_file(
            tmp,
            "[daemon]\n"
            "%s"
            "admin_listen = 127.0.0.1:%d\n"
            "%s"
            "%s"
            "[source app]\n"
            "type = tcp\n"
            "listen = 127.0.0.1:%d\n"
            "queue = main\n"
            "[source dgram]\n"
            "type = udp\n"
            "listen = 127.0.0.1:%d\n"
            "queue = main\n"
            "[queue main]\n"
            "[sink archive]\n"
            "type = file\n"
            "path = %s\n"
            "queue = main\n"
            "%s",
            strstr(daemon_extra, "producer_threads") != NULL ? "" : "producer_threads = 2\n",
            admin_port,
            strstr(daemon_extra, "shutdown_timeout") != NULL ? "" : "shutdown_timeout = 10s\n",
            daemon_extra, port, udp_port, out, extra),
        0);
    ck_assert_int_eq(rename(tmp, H.conf_path), 0);
}

/* Starts sluiced on write_conf(tcp_port, "out.ndjson", daemon_extra, extra). */
static void
start_daemon_with(const char *daemon_extra, const char *extra)
{
    write_conf(tcp_port, "out.ndjson", daemon_extra, extra);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
}

static void
start_daemon(void)
{
    write_conf(tcp_port, "out.ndjson", "", "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    HARNESS_REQUIRE(&H, harness_healthz_ok(admin_port, 10000), "no /healthz");
}

/* ---- the load: NCONN connections and one UDP socket, one event each per round ---- */

struct load {
    pthread_t thread;
    int fds[NCONN];
    int udp;
    atomic_bool stop;
    atomic_uint_least64_t rounds; /* completed */
    atomic_int failed_errno;      /* a send failed (a reset): 0 if none */
};

static void *
load_main(void *arg)
{
    struct load *l = arg;
    char line[HARNESS_EVENT_BYTES + 8];
    uint64_t r = 0;
    while (!atomic_load(&l->stop)) {
        for (int c = 0; c < NCONN; c++) {
            size_t n = harness_event_line(line, r * ROUND + (uint64_t)c);
            if (harness_send_all(l->fds[c], line, n) < 0) {
                atomic_store(&l->failed_errno, errno != 0 ? errno : EIO);
                return NULL;
            }
        }
        size_t n = harness_event_line(line, r * ROUND + NCONN);
        if (harness_udp_send(l->udp, line, n) < 0) {
            atomic_store(&l->failed_errno, errno != 0 ? errno : EIO);
            return NULL;
        }
        atomic_store(&l->rounds, ++r);
        harness_poll_step(1); /* a steady rate: ~NCONN+1 events per ms at most */
    }
    return NULL;
}

static void
load_start(struct load *l)
{
    memset(l, 0, sizeof(*l));
    /* Every socket bound (the tcp port listens before the udp one is
     * bound: a datagram sent in between draws an ICMP error, and the
     * connected udp socket's next send fails with ECONNREFUSED). */
    int64_t until = harness_now_ms() + harness_ms(10000);
    while (!harness_log_has(&H, " started, ") && harness_now_ms() < until) {
        harness_poll_step(5);
    }
    HARNESS_REQUIRE(&H, harness_log_has(&H, " started, "), "the daemon did not finish starting");
    for (int c = 0; c < NCONN; c++) {
        l->fds[c] = harness_tcp_connect(tcp_port, 10000);
        ck_assert_int_ge(l->fds[c], 0);
    }
    l->udp = harness_udp_connect(udp_port);
    ck_assert_int_ge(l->udp, 0);
    ck_assert_int_eq(pthread_create(&l->thread, NULL, load_main, l), 0);
    /* Running before anything else happens. */
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    while (atomic_load(&l->rounds) < 10 && harness_now_ms() < deadline) {
        harness_poll_step(2);
    }
    HARNESS_REQUIRE(
        &H, atomic_load(&l->rounds) >= 10, "the load does not run (%" PRIu64 " rounds; send: %s)",
        (uint64_t)atomic_load(&l->rounds),
        atomic_load(&l->failed_errno) != 0 ? strerror(atomic_load(&l->failed_errno)) : "no error");
}

/* Waits for at least n more rounds (the load goes on between reloads). */
static void
load_wait(struct load *l, uint64_t n)
{
    uint64_t want = atomic_load(&l->rounds) + n;
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (atomic_load(&l->rounds) < want && atomic_load(&l->failed_errno) == 0 &&
           harness_now_ms() < deadline) {
        harness_poll_step(2);
    }
    HARNESS_REQUIRE(&H, atomic_load(&l->failed_errno) == 0, "a client's send failed: %s",
                    strerror(atomic_load(&l->failed_errno)));
    HARNESS_REQUIRE(&H, atomic_load(&l->rounds) >= want, "the load stalled");
}

/*
 * Stops the load, checks no connection was reset (each is still open, with
 * nothing to read), closes them, lets the daemon account for every datagram,
 * stops it (SIGTERM drains) and counts: every TCP seq exactly once in the
 * output files, every UDP seq at most once, and the UDP seqs missing are
 * exactly those the daemon reports dropped.
 */
static uint64_t
load_finish(struct load *l, const char *const *outs, size_t nouts)
{
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    HARNESS_REQUIRE(&H, atomic_load(&l->failed_errno) == 0, "a client's send failed: %s",
                    strerror(atomic_load(&l->failed_errno)));
    for (int c = 0; c < NCONN; c++) {
        char b;
        ssize_t k = recv(l->fds[c], &b, 1, MSG_DONTWAIT);
        int e = errno;
        HARNESS_REQUIRE(&H, k < 0 && (e == EAGAIN || e == EWOULDBLOCK),
                        "connection %d: recv %zd (%s): reset or closed by the daemon", c, k,
                        k < 0 ? strerror(e) : "EOF");
        close(l->fds[c]);
    }
    close(l->udp);
    uint64_t rounds = atomic_load(&l->rounds);
    uint64_t total = rounds * ROUND;

    /* Every datagram is either received or counted as dropped. */
    double got = 0, kdrop = 0, fdrop = 0;
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    for (;;) {
        got = kdrop = fdrop = 0;
        (void)harness_metric_get(admin_port,
                                 "sluice_source_received_events_total{source=\"dgram\"}", &got);
        (void)harness_metric_get(
            admin_port, "sluice_source_kernel_dropped_datagrams_total{source=\"dgram\"}", &kdrop);
        (void)harness_metric_get(
            admin_port,
            "sluice_source_dropped_events_total{source=\"dgram\",reason=\"queue_full\"}", &fdrop);
        if ((uint64_t)(got + kdrop + fdrop) >= rounds || harness_now_ms() > deadline) {
            break;
        }
        harness_poll_step(10);
    }
    HARNESS_REQUIRE(&H, (uint64_t)(got + kdrop + fdrop) == rounds,
                    "udp: %" PRIu64 " sent, %.0f received, %.0f + %.0f reported dropped", rounds,
                    got, kdrop, fdrop);
    harness_require_stop_ok(&H);

    struct harness_seqs s;
    ck_assert_int_eq(harness_seqs_init(&s, total), 0);
    for (size_t i = 0; i < nouts; i++) {
        char p[PATH_MAX];
        harness_path(&H, outs[i], p, sizeof(p));
        ck_assert_int_eq(harness_seqs_add_file(&s, p, true), 0);
    }
    uint64_t tcp_missing = 0, tcp_dup = 0, udp_seen = 0, udp_dup = 0;
    uint64_t first_missing = UINT64_MAX;
    for (uint64_t q = 0; q < total; q++) {
        bool udp = q % ROUND == NCONN;
        if (udp) {
            udp_seen += s.seen[q] > 0;
            udp_dup += s.seen[q] > 1;
        } else if (s.seen[q] == 0) {
            tcp_missing++;
            first_missing = first_missing == UINT64_MAX ? q : first_missing;
        } else if (s.seen[q] > 1) {
            tcp_dup++;
        }
    }
    HARNESS_REQUIRE(&H, s.bad == 0, "%" PRIu64 " bad line(s): %s", s.bad, s.first_error);
    HARNESS_REQUIRE(&H, tcp_missing == 0 && tcp_dup == 0,
                    "tcp: %" PRIu64 " missing (first seq %" PRIu64 "), %" PRIu64
                    " duplicated, of %" PRIu64,
                    tcp_missing, first_missing, tcp_dup, rounds * NCONN);
    HARNESS_REQUIRE(&H, udp_dup == 0 && udp_seen == (uint64_t)got,
                    "udp: %" PRIu64 " in the files, %.0f received, %" PRIu64 " duplicated",
                    udp_seen, got, udp_dup);
    harness_seqs_fini(&s);
    return total;
}

/* ---- reloads ---------------------------------------------------------------------------- */

/* POST /reload: the status code (body in *body, caller frees), or -1. */
static int
post_reload(char **body)
{
    const char *req = "POST /reload HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
    struct harness_buf b = {0};
    *body = NULL;
    int fd = harness_tcp_connect(admin_port, 10000);
    if (fd < 0 || harness_send_all(fd, req, strlen(req)) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - harness_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            break;
        }
        char tmp[4096];
        ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
        if (k <= 0) {
            break;
        }
        harness_buf_add(&b, tmp, (size_t)k);
    }
    close(fd);
    harness_buf_add(&b, "", 1);
    int code = -1;
    if (sscanf(b.p, "HTTP/1.%*d %d", &code) != 1) {
        code = -1;
    }
    const char *sep = strstr(b.p, "\r\n\r\n");
    *body = strdup(sep != NULL ? sep + 4 : "");
    free(b.p);
    return code;
}

/* POST /reload, failing the test unless it answers want; returns the body (free it). */
static char *
require_post(int want)
{
    char *body = NULL;
    int code = post_reload(&body);
    HARNESS_REQUIRE(&H, code == want, "POST /reload: %d (want %d): %s", code, want,
                    body != NULL ? body : "");
    return body;
}

static double
metric(const char *name)
{
    double v = -1;
    (void)harness_metric_get(admin_port, name, &v);
    return v;
}

#define M_OK "sluice_config_reloads_total{result=\"ok\"}"
#define M_FAILED "sluice_config_reloads_total{result=\"failed\"}"
#define M_GEN "sluice_config_generation"

/* An identical config, 20 times by SIGHUP and 5 by POST, under load. */
START_TEST(test_reload_identical)
{
    struct load l;
    start_daemon();
    /* harness_wait_tcp's probe connection, counted once accepted */
    harness_require_metric(
        &H, admin_port, "sluice_source_connections_accepted_total{source=\"app\"}", 1, true, 5000);
    double accepted0 = metric("sluice_source_connections_accepted_total{source=\"app\"}");
    load_start(&l);
    for (int i = 1; i <= 20; i++) {
        ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
        harness_require_metric(&H, admin_port, M_GEN, 1 + i, false, 10000);
        load_wait(&l, 5);
    }
    for (int i = 0; i < 5; i++) {
        char *body = require_post(200);
        HARNESS_REQUIRE(&H, strstr(body, "(unchanged)") != NULL, "answer: %s", body);
        free(body);
        load_wait(&l, 5);
    }
    harness_require_metric(&H, admin_port, M_GEN, 26, false, 5000);
    harness_require_metric(&H, admin_port, M_OK, 25, false, 5000);
    harness_require_metric(&H, admin_port, M_FAILED, 0, false, 5000);
    double accepted = metric("sluice_source_connections_accepted_total{source=\"app\"}");
    HARNESS_REQUIRE(&H, accepted == accepted0 + NCONN,
                    "connections re-made: %.0f accepted, want %.0f", accepted, accepted0 + NCONN);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
}
END_TEST

/* A broken config: refused, every error as FILE:LINE, counted, shown; then fixed. */
START_TEST(test_reload_broken)
{
    struct load l;
    char *health = NULL;
    start_daemon();
    load_start(&l);
    /* line 5 (of [daemon]) and the [sink bad] section at the end. */
    write_conf(tcp_port, "out.ndjson", "log_level = loud\n", "[sink bad]\nqueue = nowhere\n");
    char *body = require_post(422);
    HARNESS_REQUIRE(&H, strncmp(body, "failed: ", 8) == 0, "answer: %s", body);
    HARNESS_REQUIRE(&H,
                    strstr(body, "sluice.conf:5: ") != NULL && strstr(body, "log_level") != NULL,
                    "no FILE:LINE for log_level: %s", body);
    HARNESS_REQUIRE(&H, strstr(body, "\"bad\"") != NULL, "no error for sink \"bad\": %s", body);
    free(body);
    harness_require_metric(&H, admin_port, M_FAILED, 1, false, 5000);
    harness_require_metric(&H, admin_port, M_GEN, 1, false, 5000);
    harness_require_metric(&H, admin_port, "sluice_config_last_reload_successful", 0, false, 5000);
    HARNESS_REQUIRE(&H, harness_http_get(admin_port, "/healthz", 5000, &health) == 200,
                    "/healthz not 200 after a refused reload (the old config runs)");
    HARNESS_REQUIRE(&H,
                    strstr(health, "\"last_reload\":\"failed\"") != NULL &&
                        strstr(health, "sluice.conf:5: ") != NULL,
                    "/healthz does not show the failed reload: %s", health);
    free(health);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "reload: ") && harness_log_has(&H, "sluice.conf:5: "),
                    "the errors are not in the log");
    /* By SIGHUP too: counted, the log says so. */
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    harness_require_metric(&H, admin_port, M_FAILED, 2, false, 10000);
    load_wait(&l, 20);
    /* Fixed: applied. */
    write_conf(tcp_port, "out.ndjson", "", "");
    free(require_post(200));
    harness_require_metric(&H, admin_port, M_GEN, 2, false, 5000);
    harness_require_metric(&H, admin_port, "sluice_config_last_reload_successful", 1, false, 5000);
    HARNESS_REQUIRE(&H,
                    harness_http_get(admin_port, "/healthz", 5000, &health) == 200 &&
                        strstr(health, "\"last_reload\":\"ok\"") != NULL,
                    "/healthz after the fix: %s", health != NULL ? health : "");
    free(health);
    load_wait(&l, 20);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
}
END_TEST

/*
 * Object changes this version refuses (nothing is half-applied), and
 * [daemon] keys applied live or reported.  After each refusal the old config
 * runs: the old port listens, the new one does not, the old file grows.
 */
START_TEST(test_reload_refused_changes)
{
    struct load l;
    char other[PATH_MAX], sp[PATH_MAX], spare[PATH_MAX + 128], spare2[PATH_MAX + 128];
    harness_path(&H, "spare.ndjson", sp, sizeof(sp));
    snprintf(spare, sizeof(spare),
             "[queue spare]\n[sink sp]\ntype = file\npath = %s\nqueue = spare\n", sp);
    snprintf(spare2, sizeof(spare2),
             "[queue spare]\nchunk_size = 128KiB\n[sink sp]\ntype = file\npath = %s\nqueue = "
             "spare\n",
             sp);
    start_daemon_with("", spare);
    HARNESS_REQUIRE(&H, harness_healthz_ok(admin_port, 10000), "no /healthz");
    load_start(&l);
    int port2 = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(port2, 0);
    harness_path(&H, "other.ndjson", other, sizeof(other));
    const struct {
        const char *what, *out, *extra, *want;
        bool port;
    } cases[] = {
        {"a queue's chunk_size changed", "out.ndjson", spare2,
         "queue \"spare\": changed (chunk_size): not applied live", false},
    };
    uint64_t failed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_conf(cases[i].port ? port2 : tcp_port, cases[i].out, "", cases[i].extra);
        char *body = require_post(422);
        HARNESS_REQUIRE(&H, strstr(body, cases[i].want) != NULL && strstr(body, "nothing changed"),
                        "%s: answer %s", cases[i].what, body);
        free(body);
        harness_require_metric(&H, admin_port, M_FAILED, (double)++failed, false, 5000);
        load_wait(&l, 10);
    }
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(port2), "the new port listens: half-applied");
    HARNESS_REQUIRE(&H, harness_tcp_accepts(tcp_port), "the old port stopped listening");
    HARNESS_REQUIRE(&H, !harness_exists(other), "the new path was opened: half-applied");

    /* [daemon]: log_level applies live, producer_threads needs a restart. */
    write_conf(tcp_port, "out.ndjson", "log_level = debug\nproducer_threads = 3\n", spare);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H,
                    strstr(body, "daemon: log_level: applied") != NULL &&
                        strstr(body, "daemon: producer_threads: needs a restart") != NULL,
                    "answer %s", body);
    free(body);
    harness_require_metric(&H, admin_port, M_GEN, 2, false, 5000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "producer_threads: needs a restart"), "not in the log");
    load_wait(&l, 20);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
}
END_TEST

/*
 * A file sink's path changed under load: the sink is replaced on the writer
 * thread, the new one takes over what the old one had not written (every
 * event once across the two files, the old file stops growing); then a key
 * other than the path (the same file, replaced again: still every event
 * once).
 */
START_TEST(test_reload_sink_replaced)
{
    struct load l;
    char out[PATH_MAX], other[PATH_MAX];
    start_daemon();
    harness_path(&H, "out.ndjson", out, sizeof(out));
    harness_path(&H, "other.ndjson", other, sizeof(other));
    load_start(&l);
    load_wait(&l, 50);
    write_conf(tcp_port, "other.ndjson", "", "");
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"archive\": changed (path): replaced") != NULL,
                    "answer %s", body);
    free(body);
    harness_require_metric(&H, admin_port, M_GEN, 2, false, 5000);
    /* The old file is closed: it does not grow any more. */
    uint64_t n0 = harness_file_lines(out);
    load_wait(&l, 100);
    HARNESS_REQUIRE(&H, harness_file_lines(out) == n0, "the old file grew: %" PRIu64 " -> %" PRIu64,
                    n0, harness_file_lines(out));
    HARNESS_REQUIRE(&H, harness_file_lines(other) > 0, "nothing in the new file");
    /* Same path, another key: replaced again, appending to the same file. */
    write_conf(tcp_port, "other.ndjson", "", "batch_timeout = 5ms\n");
    body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "changed (batch_timeout): replaced") != NULL, "answer %s",
                    body);
    free(body);
    load_wait(&l, 100);
    /* And back to identical: nothing rebuilt. */
    body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "(unchanged)") != NULL, "answer %s", body);
    free(body);
    harness_require_metric(&H, admin_port, M_GEN, 4, false, 5000);
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson", "other.ndjson"};
    load_finish(&l, outs, 2);
}
END_TEST

/* A forwarding peer: accepts connections one after the other on its
 * listening socket and appends every byte to its file, until stopped. */
struct peer {
    pthread_t thread;
    int lfd;
    int port;
    char path[PATH_MAX];
    atomic_bool stop;
    atomic_uint conns;
};

static void *
peer_main(void *arg)
{
    struct peer *p = arg;
    FILE *f = fopen(p->path, "w");
    int cfd = -1;
    char buf[65536];
    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        struct pollfd pf = {.fd = cfd >= 0 ? cfd : p->lfd, .events = POLLIN};
        int r = poll(&pf, 1, 20);
        if (r == 0) {
            if (cfd < 0 && atomic_load(&p->stop)) {
                break;
            }
            continue;
        }
        if (r < 0) {
            continue;
        }
        if (cfd < 0) {
            cfd = accept(p->lfd, NULL, NULL);
            if (cfd >= 0) {
                atomic_fetch_add(&p->conns, 1);
            }
            continue;
        }
        ssize_t k = recv(cfd, buf, sizeof(buf), 0);
        if (k > 0) {
            fwrite(buf, 1, (size_t)k, f);
        } else {
            close(cfd); /* EOF: the sink closed its connection */
            cfd = -1;
        }
    }
    fclose(f);
    return NULL;
}

static void
peer_start(struct peer *p, const char *name)
{
    memset(p, 0, sizeof(*p));
    p->lfd = harness_tcp_listen(0, &p->port);
    ck_assert_int_ge(p->lfd, 0);
    harness_path(&H, name, p->path, sizeof(p->path));
    ck_assert_int_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void
peer_stop(struct peer *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->lfd);
}

/*
 * A forward target changed under load: a tcp sink "fwd" beside the file
 * sink (both drain queue "main") moves from peer A to peer B.  The sink is
 * replaced; A's connection is closed after everything sent to it, B gets
 * the rest: across A and B every event the file got, exactly once.
 */
START_TEST(test_reload_forward_target)
{
    struct load l;
    struct peer a, b;
    char extra[256];
    peer_start(&a, "peer-a.ndjson");
    peer_start(&b, "peer-b.ndjson");
    snprintf(extra, sizeof(extra), "[sink fwd]\ntype = tcp\ntarget = 127.0.0.1:%d\nqueue = main\n",
             a.port);
    start_daemon_with("", extra);
    load_start(&l);
    load_wait(&l, 100);
    snprintf(extra, sizeof(extra), "[sink fwd]\ntype = tcp\ntarget = 127.0.0.1:%d\nqueue = main\n",
             b.port);
    write_conf(tcp_port, "out.ndjson", "", extra);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"fwd\": changed (target): replaced") != NULL,
                    "answer %s", body);
    free(body);
    load_wait(&l, 100);
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    while (atomic_load(&b.conns) == 0 && harness_now_ms() < deadline) {
        harness_poll_step(10);
    }
    HARNESS_REQUIRE(&H, atomic_load(&b.conns) == 1 && atomic_load(&a.conns) == 1,
                    "connections: A %u, B %u (want 1 and 1)", atomic_load(&a.conns),
                    atomic_load(&b.conns));
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1); /* stops the daemon: fwd closes */
    peer_stop(&a);
    peer_stop(&b);
    /* A line torn by a full socket at the swap goes whole to B; A keeps its
     * head as an incomplete last line (docs/protocol.md): not an event. */
    size_t alen = 0;
    char *atext = harness_read_file(a.path, &alen);
    ck_assert_ptr_nonnull(atext);
    size_t keep = alen;
    while (keep > 0 && atext[keep - 1] != '\n') {
        keep--;
    }
    if (keep < alen) {
        fprintf(stderr, "check_reload: a torn line (%zu bytes) at the end of peer A\n",
                alen - keep);
        ck_assert_int_eq(truncate(a.path, (off_t)keep), 0);
    }
    free(atext);
    struct harness_seqs file, fwd;
    char p[PATH_MAX];
    ck_assert_int_eq(harness_seqs_init(&file, total), 0);
    ck_assert_int_eq(harness_seqs_init(&fwd, total), 0);
    ck_assert_int_eq(
        harness_seqs_add_file(&file, harness_path(&H, "out.ndjson", p, sizeof(p)), true), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fwd, a.path, true), 0);
    uint64_t on_a = fwd.lines;
    ck_assert_int_eq(harness_seqs_add_file(&fwd, b.path, true), 0);
    uint64_t differ = 0, first = UINT64_MAX;
    for (uint64_t q = 0; q < total; q++) {
        if (fwd.seen[q] != file.seen[q]) {
            differ++;
            first = first == UINT64_MAX ? q : first;
        }
    }
    HARNESS_REQUIRE(&H, fwd.bad == 0 && differ == 0 && on_a > 0 && fwd.lines > on_a,
                    "forwarded: %" PRIu64 " on A, %" PRIu64 " on B, %" PRIu64
                    " seq(s) differ from the file (first %" PRIu64 "), %" PRIu64 " bad: %s",
                    on_a, fwd.lines - on_a, differ, first, fwd.bad, fwd.first_error);
    harness_seqs_fini(&file);
    harness_seqs_fini(&fwd);
}
END_TEST

/*
 * 100 SIGHUPs in a burst under load: they coalesce (fewer reloads than
 * signals) and none is lost: the config is changed just before the last
 * signal, and a reload after it applies that change.
 */
START_TEST(test_reload_sighup_storm)
{
    struct load l;
    start_daemon();
    load_start(&l);
    int64_t t0 = harness_now_ms();
    for (int i = 0; i < 99; i++) {
        ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    }
    write_conf(tcp_port, "out.ndjson", "log_level = debug\n", "");
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    int64_t took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, took < 1000, "100 signals took %lld ms", (long long)took);
    /* The last signal's reload reads the new file: log_level = notice. */
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (!harness_log_has(&H, "reload: daemon: log_level: applied") &&
           harness_now_ms() < deadline) {
        harness_poll_step(10);
    }
    HARNESS_REQUIRE(&H, harness_log_has(&H, "reload: daemon: log_level: applied"),
                    "the last SIGHUP was lost: the changed config was never applied");
    /* Quiet: no more reloads pending; every applied one is one generation. */
    double ok = -1, ok2 = -2;
    deadline = harness_now_ms() + harness_ms(20000);
    while (harness_now_ms() < deadline) {
        ok = metric(M_OK);
        harness_poll_step(200);
        ok2 = metric(M_OK);
        if (ok == ok2) {
            break;
        }
    }
    HARNESS_REQUIRE(&H, ok == ok2 && ok >= 1 && ok < 100, "%.0f reloads for 100 signals", ok);
    HARNESS_REQUIRE(&H, metric(M_GEN) == ok + 1 && metric(M_FAILED) == 0,
                    "generation %.0f after %.0f reloads (%.0f failed)", metric(M_GEN), ok,
                    metric(M_FAILED));
    load_wait(&l, 20);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
}
END_TEST

/* ---- sinks added, removed, succeeded ------------------------------------------------ */

/*
 * Per TCP connection, the rounds whose event is in s: they must form one
 * run without a gap, starting at round 0 (from_start) and/or ending at the
 * last round (to_end), no event twice, no bad line.  Returns the TCP events
 * seen; fails the test otherwise.
 */
static uint64_t
require_runs(const struct harness_seqs *s, uint64_t rounds, bool from_start, bool to_end,
             const char *what)
{
    uint64_t seen = 0;
    HARNESS_REQUIRE(&H, s->bad == 0 && s->dups == 0, "%s: %" PRIu64 " bad, %" PRIu64 " dup: %s",
                    what, s->bad, s->dups, s->first_error);
    for (int c = 0; c < NCONN; c++) {
        uint64_t lo = UINT64_MAX, hi = 0, n = 0;
        for (uint64_t r = 0; r < rounds; r++) {
            if (s->seen[r * ROUND + (uint64_t)c] > 0) {
                lo = lo == UINT64_MAX ? r : lo;
                hi = r;
                n++;
            }
        }
        seen += n;
        if (n == 0) {
            HARNESS_REQUIRE(&H, !from_start || !to_end, "%s: connection %d: nothing", what, c);
            continue;
        }
        HARNESS_REQUIRE(&H, n == hi - lo + 1,
                        "%s: connection %d: rounds %" PRIu64 "..%" PRIu64 " with %" PRIu64
                        " missing",
                        what, c, lo, hi, hi - lo + 1 - n);
        HARNESS_REQUIRE(&H, !from_start || lo == 0, "%s: connection %d starts at round %" PRIu64,
                        what, c, lo);
        HARNESS_REQUIRE(&H, !to_end || hi == rounds - 1,
                        "%s: connection %d ends at round %" PRIu64 " of %" PRIu64, what, c, hi,
                        rounds);
    }
    return seen;
}

/* The seqs of file name (relative to the test's directory), n of them. */
static void
seqs_of(struct harness_seqs *s, uint64_t n, const char *name)
{
    char p[PATH_MAX];
    ck_assert_int_eq(harness_seqs_init(s, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(s, harness_path(&H, name, p, sizeof(p)), true), 0);
}

#define MORE_SINK "[sink more]\ntype = file\npath = %s\nqueue = main\n"

/*
 * A sink added under load: it drains the queue from the next chunk on, so
 * per connection its file holds one run to the end (no gap, nothing twice);
 * the old sink misses nothing.
 */
START_TEST(test_reload_sink_added)
{
    struct load l;
    char extra[PATH_MAX + 64], more[PATH_MAX];
    start_daemon();
    harness_path(&H, "more.ndjson", more, sizeof(more));
    load_start(&l);
    load_wait(&l, 50);
    snprintf(extra, sizeof(extra), MORE_SINK, more);
    write_conf(tcp_port, "out.ndjson", "", extra);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"more\": added: it drains its queue") != NULL,
                    "answer %s", body);
    free(body);
    harness_require_metric(&H, admin_port, M_GEN, 2, false, 5000);
    load_wait(&l, 200);
    HARNESS_REQUIRE(&H, harness_file_lines(more) > 0, "nothing in the added sink's file");
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1);
    struct harness_seqs s;
    seqs_of(&s, total, "more.ndjson");
    uint64_t n = require_runs(&s, total / ROUND, false, true, "added sink");
    HARNESS_REQUIRE(&H, n > 0 && n < total / ROUND * NCONN, "added sink: %" PRIu64 " events", n);
    harness_seqs_fini(&s);
}
END_TEST

/*
 * A sink removed under load (a file sink, which drains at once): the
 * answer and the log say so, its file stops growing and holds, per
 * connection, one run from the start (nothing twice, no gap), and it gave
 * up nothing; the sink that stays misses nothing.
 */
START_TEST(test_reload_sink_removed)
{
    struct load l;
    char extra[PATH_MAX + 64], more[PATH_MAX];
    harness_path(&H, "more.ndjson", more, sizeof(more));
    snprintf(extra, sizeof(extra), MORE_SINK, more);
    start_daemon_with("", extra);
    load_start(&l);
    load_wait(&l, 100);
    write_conf(tcp_port, "out.ndjson", "", "");
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"more\": removed: it drains") != NULL, "answer %s",
                    body);
    free(body);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "sink \"more\": removed; it wrote"),
                    "the log does not say the sink went");
    harness_require_metric(&H, admin_port, "sluice_reload_sink_given_up_events_total", 0, false,
                           5000);
    uint64_t n0 = harness_file_lines(more);
    load_wait(&l, 200);
    HARNESS_REQUIRE(&H, harness_file_lines(more) == n0, "the removed sink's file grew");
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1);
    struct harness_seqs s;
    seqs_of(&s, total, "more.ndjson");
    uint64_t n = require_runs(&s, total / ROUND, true, false, "removed sink");
    HARNESS_REQUIRE(&H, n > 0 && n < total / ROUND * NCONN, "removed sink: %" PRIu64 " events", n);
    harness_seqs_fini(&s);
}
END_TEST

/*
 * A removed sink that cannot drain: a tcp sink whose peer accepts nothing
 * (a small receive buffer, full), on a queue "side" of its own with a file
 * sink beside it and a source of its own.  N events go in; once the file
 * has them all, the tcp sink is removed with shutdown_timeout = 1s: it
 * gives up what it had not written, the log and the metric say how many,
 * and what the peer then reads (everything the sink wrote, to EOF) plus
 * that count is exactly N, nothing twice.  The main load runs on meanwhile.
 */
START_TEST(test_reload_sink_removed_gives_up)
{
    struct load l;
    char extra[PATH_MAX + 1024], side[PATH_MAX], peer[PATH_MAX];
    enum { N = 60000 };
    int pport = 0, sport = harness_free_port(SOCK_STREAM);
    int lfd = harness_tcp_listen(4096, &pport);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_gt(sport, 0);
    harness_path(&H, "side.ndjson", side, sizeof(side));
    harness_path(&H, "peer.ndjson", peer, sizeof(peer));
    static const char side_fmt[] =
        "[source sidein]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = side\n"
        "[queue side]\ncapacity = 64MiB\n"
        "[sink sidefile]\ntype = file\npath = %s\nqueue = side\n";
    int k = snprintf(extra, sizeof(extra), side_fmt, sport, side);
    snprintf(extra + k, sizeof(extra) - (size_t)k,
             "[sink sidepeer]\ntype = tcp\ntarget = 127.0.0.1:%d\nqueue = side\n", pport);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 1s\n", extra);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(&l);
    int fd = harness_tcp_connect(sport, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, N), 0);
    harness_require_lines(&H, side, N, 20000);
    close(fd);
    snprintf(extra, sizeof(extra), side_fmt, sport, side);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 1s\n", extra);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"sidepeer\": removed; it gave up ") != NULL,
                    "answer %s", body);
    free(body);
    double gave = metric("sluice_reload_sink_given_up_events_total");
    HARNESS_REQUIRE(&H, gave > 0, "given up: %.0f", gave);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "sink \"sidepeer\": removed; it gave up "),
                    "not in the log");
    /* The peer reads what the sink wrote, to EOF (the sink closed). */
    int cfd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(cfd, 0);
    FILE *f = fopen(peer, "w");
    ck_assert_ptr_nonnull(f);
    char buf[65536];
    ssize_t got;
    while ((got = recv(cfd, buf, sizeof(buf), 0)) > 0) {
        fwrite(buf, 1, (size_t)got, f);
    }
    fclose(f);
    close(cfd);
    close(lfd);
    /* A line the kernel took in part is not an event (its head only). */
    size_t plen = 0;
    char *ptext = harness_read_file(peer, &plen);
    ck_assert_ptr_nonnull(ptext);
    size_t keep = plen;
    while (keep > 0 && ptext[keep - 1] != '\n') {
        keep--;
    }
    free(ptext);
    ck_assert_int_eq(truncate(peer, (off_t)keep), 0);
    struct harness_seqs s;
    seqs_of(&s, N, "peer.ndjson");
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0, "peer: %" PRIu64 " bad, %" PRIu64 " dup: %s",
                    s.bad, s.dups, s.first_error);
    uint64_t seen = harness_seqs_count_range(&s, 0, N);
    fprintf(stderr, "check_reload: removed sink: %" PRIu64 " written, %.0f given up, of %d\n", seen,
            gave, N);
    HARNESS_REQUIRE(&H, seen + (uint64_t)gave == N,
                    "the peer has %" PRIu64 ", %.0f given up: %.0f of %d unaccounted for", seen,
                    gave, (double)N - (double)seen - gave, N);
    harness_seqs_fini(&s);
    /* The stop (load_finish) under the default bound: 1 s was for the
     * removal.  At SIGTERM a writer not done by shutdown_timeout is
     * abandoned and sluiced exits 1 ("writer is stuck",
     * docs/configuration.md); on a starved machine (TSan, load ~15)
     * this stop took 0.4 to 2.5 s, and 2 runs in 13 exited 1 that way
     * with nothing queued. */
    write_conf(tcp_port, "out.ndjson", "", extra);
    free(require_post(200));
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
}
END_TEST

/*
 * A sink whose type changes (file -> tcp) under load: a new one takes every
 * chunk from the reload on, the old one drains what it held.  Per
 * connection, the old file holds a run from the start, the peer a run to
 * the end, and together every event exactly once.
 */
START_TEST(test_reload_sink_type_changed)
{
    struct load l;
    struct peer b;
    char extra[PATH_MAX + 128], more[PATH_MAX];
    peer_start(&b, "peer-b.ndjson");
    harness_path(&H, "more.ndjson", more, sizeof(more));
    snprintf(extra, sizeof(extra), MORE_SINK, more);
    start_daemon_with("", extra);
    load_start(&l);
    load_wait(&l, 100);
    snprintf(extra, sizeof(extra), "[sink more]\ntype = tcp\ntarget = 127.0.0.1:%d\nqueue = main\n",
             b.port);
    write_conf(tcp_port, "out.ndjson", "", extra);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H,
                    strstr(body, "sink \"more\": changed (") != NULL &&
                        strstr(body, "a new one takes every chunk") != NULL,
                    "answer %s", body);
    free(body);
    load_wait(&l, 200);
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1); /* stops the daemon: the tcp sink closes */
    peer_stop(&b);
    struct harness_seqs old, fresh, both;
    seqs_of(&old, total, "more.ndjson");
    seqs_of(&fresh, total, "peer-b.ndjson");
    uint64_t rounds = total / ROUND;
    uint64_t n_old = require_runs(&old, rounds, true, false, "old sink");
    uint64_t n_new = require_runs(&fresh, rounds, false, true, "new sink");
    seqs_of(&both, total, "more.ndjson");
    ck_assert_int_eq(harness_seqs_add_file(&both, b.path, true), 0);
    require_runs(&both, rounds, true, true, "old and new sink");
    HARNESS_REQUIRE(&H, n_old > 0 && n_new > 0 && n_old + n_new == rounds * NCONN,
                    "old %" PRIu64 " + new %" PRIu64 " of %" PRIu64, n_old, n_new, rounds * NCONN);
    harness_seqs_fini(&old);
    harness_seqs_fini(&fresh);
    harness_seqs_fini(&both);
}
END_TEST

/*
 * Starts a receiving sluiced in R: a sluice source "edges" on a free port
 * (returned) into its queue "main" (queue_extra in its section) and a file
 * sink "agg" (its path in agg; sink_extra goes into that sink's section).
 */
static int
receiver_start(struct harness *R, char *agg, size_t agglen, const char *queue_extra,
               const char *sink_extra)
{
    int port = harness_free_port(SOCK_STREAM), admin = harness_free_port(SOCK_STREAM);
    ck_assert(port > 0 && admin > 0);
    ck_assert_int_eq(harness_init(R), 0);
    harness_path(R, "agg.ndjson", agg, agglen);
    ck_assert_int_eq(harness_write_config(R,
                                          "[daemon]\nadmin_listen = 127.0.0.1:%d\n"
                                          "[source edges]\ntype = sluice\n"
                                          "listen = 127.0.0.1:%d\nqueue = main\n"
                                          "[queue main]\n%s"
                                          "[sink agg]\ntype = file\nqueue = main\npath = %s\n%s",
                                          admin, port, queue_extra, agg, sink_extra),
                     0);
    ck_assert_int_eq(harness_start(R, NULL), 0);
    HARNESS_REQUIRE(R, harness_wait_tcp(R, port, 10000) == HARNESS_WAIT_OK,
                    "the receiver does not listen");
    return port;
}

/*
 * An acknowledging (sluice) sink changed under load with a new sender id
 * (and window): no hand-over (a resend under another id would defeat the
 * receiver's duplicate filter), so a new one takes every chunk from the
 * reload on; the old one finishes what it sent (waits for its
 * acknowledgements) and goes; only then does the new one connect, under its
 * id, and number from what the receiver holds of it.  The receiving
 * sluiced's file holds every event the local file holds, exactly once.
 */
START_TEST(test_reload_sluice_sink_changed)
{
    struct harness A;
    struct load l;
    char extra[512], agg[PATH_MAX];
    int aport = receiver_start(&A, agg, sizeof(agg), "", "");
    static const char fwd[] = "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:%d\nqueue = main\n"
                              "sender_id = %s\nwindow = %d\n";
    snprintf(extra, sizeof(extra), fwd, aport, "edge", 64);
    start_daemon_with("", extra);
    load_start(&l);
    load_wait(&l, 100);
    snprintf(extra, sizeof(extra), fwd, aport, "edge2", 32);
    write_conf(tcp_port, "out.ndjson", "", extra);
    char *body = require_post(200);
    HARNESS_REQUIRE(
        &H, strstr(body, "sink \"fwd\": changed (sender_id, window): a new one takes") != NULL,
        "answer %s", body);
    free(body);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "sink \"fwd\": succeeded by its new config"),
                    "the old sink did not go");
    load_wait(&l, 200);
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1); /* drains: the new fwd gets its acks */
    harness_require_stop_ok(&A);
    struct harness_seqs file, fw;
    seqs_of(&file, total, "out.ndjson");
    ck_assert_int_eq(harness_seqs_init(&fw, total), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fw, agg, true), 0);
    uint64_t differ = 0, first = UINT64_MAX;
    for (uint64_t q = 0; q < total; q++) {
        if (fw.seen[q] != file.seen[q]) {
            differ++;
            first = first == UINT64_MAX ? q : first;
        }
    }
    HARNESS_REQUIRE(&H, fw.bad == 0 && differ == 0 && fw.lines > 0,
                    "forwarded: %" PRIu64 " lines, %" PRIu64 " seq(s) differ from the file "
                    "(first %" PRIu64 "), %" PRIu64 " bad: %s",
                    fw.lines, differ, first, fw.bad, fw.first_error);
    harness_seqs_fini(&file);
    harness_seqs_fini(&fw);
    harness_fini(&A);
}
END_TEST

/* ---- a changed sluice sink hands its pending batches to its new self ---- */

#define FWD_EDGE                                                                                   \
    "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:%d\nqueue = main\nsender_id = edge\n"
#define HANDED_OVER "over to its new config, which resends them"
#define DRAINS "hands over to its new config: waits for"
#define DEAD_ACK_TIMEOUT "ack_timeout = 2s\n"

/*
 * The edge's file (every event of [0, total) once) against what A and B
 * hold (where: "receiver" or "stream"): each holds an event at most once,
 * every event is on one of them, none is on either that the edge did not
 * get, and both hold some.  Frees the three; returns how many events both
 * hold (A accepted them and had not acknowledged them at the change).
 */
static uint64_t
handover_tally(struct harness_seqs *file, struct harness_seqs *fa, struct harness_seqs *fb,
               uint64_t total, const char *what, const char *where)
{
    uint64_t lost = 0, twice = 0, extra = 0, both = 0, first = UINT64_MAX;
    for (uint64_t q = 0; q < total; q++) {
        unsigned a = fa->seen[q], b = fb->seen[q];
        if (a > 1 || b > 1) {
            twice++;
        } else if (file->seen[q] == 0 && a + b > 0) {
            extra++;
        } else if (file->seen[q] > 0 && a + b == 0) {
            lost++;
            first = first == UINT64_MAX ? q : first;
        }
        both += a > 0 && b > 0;
    }
    fprintf(stderr,
            "check_reload: %s: %" PRIu64 " events on A, %" PRIu64 " on B, %" PRIu64
            " on both (accepted by A, not acknowledged)\n",
            what, fa->lines, fb->lines, both);
    HARNESS_REQUIRE(&H,
                    fa->bad == 0 && fb->bad == 0 && twice == 0 && lost == 0 && extra == 0 &&
                        fa->lines > 0 && fb->lines > 0,
                    "%s: %" PRIu64 " twice in one %s, %" PRIu64 " lost (first %" PRIu64
                    "), %" PRIu64 " not from the edge; A %" PRIu64 " B %" PRIu64
                    " lines, bad %" PRIu64 "/%" PRIu64 ": %s%s",
                    what, twice, where, lost, first, extra, fa->lines, fb->lines, fa->bad, fb->bad,
                    fa->first_error, fb->first_error);
    harness_seqs_fini(file);
    harness_seqs_fini(fa);
    harness_seqs_fini(fb);
    return both;
}

/*
 * After a forward target changed from receiver A to B: the edge's file
 * (every event, exactly once: load_finish) against A's and B's files.  B
 * holds each event at most once, A too, every event is on one of them,
 * none is on either that the edge did not get; what both hold (batches A
 * accepted and had not acknowledged when the sink left it) is counted and
 * returned.  A and B are stopped first.
 */
static uint64_t
handover_count(struct harness *A, const char *agg_a, struct harness *B, const char *agg_b,
               uint64_t total, const char *what)
{
    harness_require_stop_ok(B);
    harness_require_stop_ok(A);
    struct harness_seqs file, fa, fb;
    seqs_of(&file, total, "out.ndjson");
    ck_assert_int_eq(harness_seqs_init(&fa, total), 0);
    ck_assert_int_eq(harness_seqs_init(&fb, total), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fa, agg_a, true), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fb, agg_b, true), 0);
    return handover_tally(&file, &fa, &fb, total, what, "receiver");
}

/* fwd's written bytes (the edge's /metrics): more after a receiver is
 * stopped means a batch is in flight that it cannot have acknowledged. */
#define FWD_BYTES "sluice_sink_written_bytes_total{sink=\"fwd\"}"

static bool
fwd_wrote_cb(void *arg)
{
    return metric(FWD_BYTES) > *(const double *)arg;
}

/* Stops the receiver r (harness_pause: it reads and acknowledges nothing
 * until SIGCONT) and returns fwd's written bytes at that point. */
static double
handover_pause(struct harness *r)
{
    HARNESS_REQUIRE(r, harness_pause(r, 10000) == 0, "the receiver did not stop");
    double sent = metric(FWD_BYTES);
    HARNESS_REQUIRE(&H, sent >= 0, "no " FWD_BYTES " in /metrics");
    return sent;
}

/* Waits until fwd wrote more than sent (handover_pause's): from then on,
 * until the receiver goes on, batches are in flight to it for certain.
 * The edge needs room in its window and events to send for that. */
static void
handover_require_in_flight(double sent)
{
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, fwd_wrote_cb, &sent) == HARNESS_WAIT_OK,
                    "the edge wrote nothing more to fwd while its receiver was stopped (%.0f "
                    "bytes)",
                    sent);
}

/*
 * Changes fwd's target from aport to bport under load; the reload must be
 * answered well within shutdown_timeout (30 s): the old sink waits for
 * nothing and hands its unacknowledged batches over.
 */
static int64_t
handover_post(const char *extra, const char *want)
{
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", extra);
    int64_t t0 = harness_now_ms();
    char *body = require_post(200);
    int64_t took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, strstr(body, want) != NULL, "answer %s", body);
    free(body);
    return took;
}

/* keys: more of fwd's keys (the same before); log: what the edge must log
 * (polled: a draining old sink logs the hand-over when it is done);
 * stopped: a receiver to continue (SIGCONT) once the reload is answered,
 * or NULL. */
static void
handover_reload(int bport, const char *keys, const char *log, struct harness *stopped)
{
    char extra[512];
    snprintf(extra, sizeof(extra), FWD_EDGE "%s", bport, keys);
    int64_t took = handover_post(extra, "sink \"fwd\": changed (target): replaced");
    if (stopped != NULL) {
        ck_assert_int_eq(harness_signal(stopped, SIGCONT), 0);
    }
    HARNESS_REQUIRE(&H, took < harness_ms(5000),
                    "the reload took %" PRId64 " ms (shutdown_timeout = 30s): the old sink waited",
                    took);
    int64_t deadline = harness_now_ms() + harness_ms(15000);
    while (!harness_log_has(&H, log) && harness_now_ms() < deadline) {
        harness_poll_step(10);
    }
    HARNESS_REQUIRE(&H, harness_log_has(&H, log), "the edge did not log \"%s\"", log);
}

/*
 * The operator's common case: the forward target died (SIGSTOP: it holds
 * its connection and acknowledges nothing) and the config points the sluice
 * sink at a live one.  The batches the dead one never acknowledged go to
 * the new one with their numbers and the reload is answered at once (the
 * old behaviour waited shutdown_timeout for acknowledgements that never
 * came and gave the batches up).  Every event of the edge on A or B,
 * nothing twice on either, nothing given up.
 */
START_TEST(test_reload_sluice_handover_dead_target)
{
    struct harness A, B;
    struct load l;
    char extra[512], agg_a[PATH_MAX], agg_b[PATH_MAX];
    int aport = receiver_start(&A, agg_a, sizeof(agg_a), "", "");
    int bport = receiver_start(&B, agg_b, sizeof(agg_b), "", "");
    snprintf(extra, sizeof(extra), FWD_EDGE DEAD_ACK_TIMEOUT, aport);
    start_daemon_with("shutdown_timeout = 30s\n", extra);
    load_start(&l);
    load_wait(&l, 100);
    ck_assert_int_eq(kill(A.pid, SIGSTOP), 0);
    /* The edge sends on into A's socket until its window is full: batches
     * in flight that A will not acknowledge (the queue holds the rest). */
    load_wait(&l, 200);
    int64_t t0 = harness_now_ms();
    handover_reload(bport, DEAD_ACK_TIMEOUT, HANDED_OVER, NULL);
    int64_t handed = harness_now_ms() - t0;
    /* The old sink waited at most ack_timeout (2 s) since it last heard
     * from A (a poll step of slack). */
    HARNESS_REQUIRE(&H, handed < harness_ms(2000) + 500,
                    "the batches went to B %" PRId64 " ms after the reload (ack_timeout 2 s)",
                    handed);
    load_wait(&l, 200);
    double resent = metric("sluice_sink_resent_batches_total{sink=\"fwd\"}");
    HARNESS_REQUIRE(&H, resent > 0, "B got no batch resent (%.0f)", resent);
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1); /* drains: the new fwd gets B's acks */
    HARNESS_REQUIRE(&H, !harness_log_has(&H, "gave up"), "the edge gave events up");
    ck_assert_int_eq(kill(A.pid, SIGCONT), 0);
    (void)handover_count(&A, agg_a, &B, agg_b, total, "dead target");
    fprintf(stderr,
            "check_reload: dead target: %.0f batch(es) resent to B, handed over %" PRId64
            " ms after the reload\n",
            resent, handed);
    harness_fini(&A);
    harness_fini(&B);
}
END_TEST

/* A receiver that acknowledges every 300 ms: its file sink writes only when
 * its batch is that old (never because it is large or the queue is full),
 * so a sender under load mostly has batches accepted and not yet
 * acknowledged (not always: the live case stops A to be sure). */
#define SLOW_QUEUE "capacity = 256MiB\n"
#define SLOW_ACKS "batch_timeout = 300ms\nbatch_max_bytes = 128MiB\n"

/* The live case's edge: its window never full (A acknowledges every
 * 300 ms; 64 batches fill sooner), so it writes to A whenever the queue
 * has events; and A, stopped for a moment, is not taken for dead. */
#define LIVE_KEYS "window_bytes = 1GiB\nack_timeout = 30s\n"
#define LIVE_WINDOW "window = 65536\n"

/*
 * The same with a live old target that acknowledges late (SLOW_ACKS): the
 * hand-over happens while batches are in flight to A.  The old sink sends
 * nothing new and waits for A's acknowledgements (A acks every 300 ms),
 * then hands over what is still unacknowledged (nothing): every event
 * exactly once across A and B, none on both.  That batches are in flight
 * at the target change is made certain, not left to timing (CI once found
 * A had acknowledged everything at the reload): A is stopped, the edge
 * writes more to fwd (nothing A can acknowledge before it goes on), the
 * reload is answered, and A goes on well within ack_timeout.  Then a
 * change that keeps the target (its window): the same receiver's duplicate
 * filter drops every resent batch it already holds, so B's events stay
 * exactly once.
 */
START_TEST(test_reload_sluice_handover_live)
{
    struct harness A, B;
    struct load l;
    char extra[512], agg_a[PATH_MAX], agg_b[PATH_MAX];
    int aport = receiver_start(&A, agg_a, sizeof(agg_a), SLOW_QUEUE, SLOW_ACKS);
    int bport = receiver_start(&B, agg_b, sizeof(agg_b), SLOW_QUEUE, SLOW_ACKS);
    snprintf(extra, sizeof(extra), FWD_EDGE LIVE_KEYS LIVE_WINDOW, aport);
    start_daemon_with("shutdown_timeout = 30s\n", extra);
    load_start(&l);
    load_wait(&l, 300);
    handover_require_in_flight(handover_pause(&A));
    handover_reload(bport, LIVE_KEYS LIVE_WINDOW, "sink \"fwd\": replaced", &A);
    load_wait(&l, 300);
    for (int w = 32; w <= 64; w += 32) { /* the same target, B, each time */
        snprintf(extra, sizeof(extra), FWD_EDGE LIVE_KEYS "window = %d\n", bport, w);
        (void)handover_post(extra, "sink \"fwd\": changed (window): replaced");
        load_wait(&l, 300);
    }
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1);
    HARNESS_REQUIRE(&H, !harness_log_has(&H, "gave up"), "the edge gave events up");
    /* Batches were in flight to A at the target change: the old sink
     * waited for them. */
    char drained[96];
    snprintf(drained, sizeof(drained), "for 127.0.0.1:%d to acknowledge", aport);
    HARNESS_REQUIRE(&H, harness_log_has(&H, drained), "nothing was in flight to A at the reload");
    uint64_t both = handover_count(&A, agg_a, &B, agg_b, total, "live target");
    HARNESS_REQUIRE(&H, both == 0, "live target: %" PRIu64 " event(s) on both A and B", both);
    harness_fini(&A);
    harness_fini(&B);
}
END_TEST

/* ---- a changed sluice sink on a disk queue hands over too ---------------------------- */

#define FWD_DISK                                                                                   \
    "[source dsrc]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = dq\n"                             \
    "[queue dq]\ntype = disk\npath = %s\n"                                                         \
    "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:%d\nqueue = dq\nsender_id = edge\n"        \
    "window = 2\nack_timeout = 30s\n"

/* Events sent to the disk queue (4.6 MB): many times fwd's window of 2
 * batches (at most 512 KiB), so a reload finds batches in flight and more
 * in the queue.  The first event reaches A before it is stopped (the
 * edge's connection is up; one event is one batch, unacknowledged at
 * most, so the window has room); the rest are sent while A is stopped, so
 * the edge writes a batch that A cannot acknowledge before the reload
 * (A's acknowledgements every 300 ms left that to timing: once in five
 * runs at load 6 nothing was in flight any more).  A goes on once the
 * reload is answered, well within ack_timeout. */
#define HANDOVER_DISK_N 20000
#define HANDOVER_DISK_FIRST 1

/* The edge with a disk queue "dq" (directory dq in H), its source on
 * dport, its sluice sink fwd on port (a window of 2 batches: a reload finds
 * some in flight and more in the queue); the standard sections idle. */
static void
handover_disk_conf(int dport, int port)
{
    char extra[PATH_MAX + 512], dir[PATH_MAX];
    harness_path(&H, "dq", dir, sizeof(dir));
    snprintf(extra, sizeof(extra), FWD_DISK, dport, dir, port);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", extra);
}

/* All of the n events sent on dq's source are in its segment files: the
 * source counted them (so they are in chunks) and dq has no chunk in use
 * (every chunk appended). */
static bool
dq_appended_cb(void *arg)
{
    return metric("sluice_source_received_events_total{source=\"dsrc\"}") ==
               (double)*(const uint64_t *)arg &&
           metric("sluice_queue_chunks{queue=\"dq\"}") == 0;
}

struct handover_seen {
    const char *a, *b;
    uint64_t n;
};

/* Every seq of [0, n) is on A or B. */
static bool
handover_all_seen(void *arg)
{
    const struct handover_seen *x = arg;
    struct harness_seqs s;
    if (harness_seqs_init(&s, x->n) < 0) {
        return false;
    }
    (void)harness_seqs_add_file(&s, x->a, false);
    (void)harness_seqs_add_file(&s, x->b, false);
    bool all = harness_seqs_count_range(&s, 0, x->n) == x->n;
    harness_seqs_fini(&s);
    return all;
}

/* Starts A and B (acknowledging every 300 ms) and the edge forwarding dq
 * to A; sends the first n events on dq's source (the first one before A
 * is stopped, the rest after), changes fwd's target to B with batches in
 * flight to A (answered at once) and lets A go on.  Returns the source
 * connection. */
static int
handover_disk_start(struct harness *A, char *agg_a, struct harness *B, char *agg_b, int *dport,
                    int *bport, uint64_t n)
{
    int aport = receiver_start(A, agg_a, PATH_MAX, SLOW_QUEUE, SLOW_ACKS);
    *bport = receiver_start(B, agg_b, PATH_MAX, SLOW_QUEUE, SLOW_ACKS);
    *dport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(*dport, 0);
    handover_disk_conf(*dport, aport);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, *dport, 10000) == HARNESS_WAIT_OK,
                    "the disk queue's source does not listen");
    int fd = harness_tcp_connect(*dport, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, HANDOVER_DISK_FIRST), 0);
    harness_require_lines(A, agg_a, HANDOVER_DISK_FIRST, 10000);
    double sent = handover_pause(A);
    ck_assert_int_eq(harness_send_events(fd, HANDOVER_DISK_FIRST, n - HANDOVER_DISK_FIRST), 0);
    handover_require_in_flight(sent);
    /* On disk before the reload: the killed case restarts from the disk. */
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, dq_appended_cb, &n) == HARNESS_WAIT_OK,
                    "the %" PRIu64 " events are not all in dq's segment files", n);
    handover_disk_conf(*dport, *bport);
    int64_t t0 = harness_now_ms();
    char *body = require_post(200);
    int64_t took = harness_now_ms() - t0;
    ck_assert_int_eq(harness_signal(A, SIGCONT), 0);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"fwd\": changed (target): replaced") != NULL,
                    "answer %s", body);
    free(body);
    HARNESS_REQUIRE(&H, took < harness_ms(5000), "the reload took %" PRId64 " ms", took);
    return fd;
}

/* Waits until every seq of [0, n) is on A or B, stops A and B, and counts:
 * none lost, none twice on one receiver; returns how many are on both. */
static uint64_t
handover_disk_count(struct harness *A, const char *agg_a, struct harness *B, const char *agg_b,
                    uint64_t n, const char *what)
{
    struct handover_seen x = {.a = agg_a, .b = agg_b, .n = n};
    HARNESS_REQUIRE(&H, harness_poll(&H, harness_ms(20000), handover_all_seen, &x) ==
                            HARNESS_WAIT_OK,
                    "%s: not every event reached A or B", what);
    harness_require_stop_ok(B);
    harness_require_stop_ok(A);
    struct harness_seqs fa, fb;
    ck_assert_int_eq(harness_seqs_init(&fa, n), 0);
    ck_assert_int_eq(harness_seqs_init(&fb, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fa, agg_a, true), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fb, agg_b, true), 0);
    uint64_t both = 0, lost = 0;
    for (uint64_t q = 0; q < n; q++) {
        both += fa.seen[q] > 0 && fb.seen[q] > 0;
        lost += fa.seen[q] + fb.seen[q] == 0;
    }
    fprintf(stderr, "check_reload: %s: %" PRIu64 " events on A, %" PRIu64 " on B, %" PRIu64
                    " on both\n",
            what, fa.lines, fb.lines, both);
    HARNESS_REQUIRE(&H,
                    fa.bad == 0 && fb.bad == 0 && fa.dups == 0 && fb.dups == 0 && lost == 0 &&
                        fb.lines > 0,
                    "%s: %" PRIu64 " lost, twice on A %" PRIu64 " on B %" PRIu64
                    ", bad %" PRIu64 "/%" PRIu64 ": %s%s",
                    what, lost, fa.dups, fb.dups, fa.bad, fb.bad, fa.first_error, fb.first_error);
    harness_seqs_fini(&fa);
    harness_seqs_fini(&fb);
    return both;
}

/*
 * A disk queue: fwd's target changed from A to B while it forwards the
 * queue's backlog (batches in flight to A, which acknowledges every
 * 300 ms): replaced in place on the same reader (its position and its
 * numbering in the queue's state), the old connection drained, then B
 * takes the rest.  More events after the reload.  Every event exactly once
 * across A and B.
 */
START_TEST(test_reload_sluice_handover_disk)
{
    struct harness A, B;
    char agg_a[PATH_MAX], agg_b[PATH_MAX];
    int dport, bport;
    uint64_t half = HANDOVER_DISK_N; /* not scaled: more than the window */
    int fd = handover_disk_start(&A, agg_a, &B, agg_b, &dport, &bport, half);
    ck_assert_int_eq(harness_send_events(fd, half, half), 0);
    uint64_t both = handover_disk_count(&A, agg_a, &B, agg_b, 2 * half, "disk queue");
    HARNESS_REQUIRE(&H, harness_log_has(&H, DRAINS), "nothing was in flight at the reload");
    HARNESS_REQUIRE(&H, both == 0, "disk queue: %" PRIu64 " event(s) on both A and B", both);
    close(fd);
    harness_require_stop_ok(&H);
    harness_fini(&A);
    harness_fini(&B);
}
END_TEST

/*
 * The same, and the edge is killed (SIGKILL) right after the reload is
 * answered, with batches in flight to A: restarted with the new config, it
 * resends from the committed position in the disk queue's state, numbered
 * as before.  Nothing lost; nothing twice on one receiver (B drops what it
 * holds); what is on both A and B is what A had accepted and the queue's
 * state on disk did not show committed when the edge died (in flight, or
 * acknowledged after the last state write, fsync_interval).
 */
START_TEST(test_reload_sluice_handover_disk_killed)
{
    struct harness A, B;
    char agg_a[PATH_MAX], agg_b[PATH_MAX];
    int dport, bport;
    uint64_t n = HANDOVER_DISK_N; /* not scaled: more than the window */
    int fd = handover_disk_start(&A, agg_a, &B, agg_b, &dport, &bport, n);
    int status = 0;
    ck_assert_int_eq(harness_signal(&H, SIGKILL), 0);
    ck_assert_int_eq(harness_wait_exit(&H, 10000, &status), HARNESS_WAIT_OK);
    HARNESS_REQUIRE(&H, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                    "exited with status %d, not by SIGKILL", status);
    close(fd);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    uint64_t both = handover_disk_count(&A, agg_a, &B, agg_b, n, "disk queue, killed");
    fprintf(stderr,
            "check_reload: disk queue, killed: %" PRIu64
            " on both (in flight or acknowledged after the last state write)\n",
            both);
    harness_require_stop_ok(&H);
    harness_fini(&A);
    harness_fini(&B);
}
END_TEST

/*
 * A disk queue's sinks: one added starts at the queue's end (what the disk
 * holds from before is not written to it), one removed drains and its
 * position leaves the queue's state.  Events go in in three batches on a
 * source of the disk queue while the main load runs.
 */
START_TEST(test_reload_disk_queue_sinks)
{
    struct load l;
    enum { N = 2000 };
    char d1[PATH_MAX], d2[PATH_MAX], dir[PATH_MAX], x[3 * PATH_MAX + 512];
    int dport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(dport, 0);
    harness_path(&H, "d1.ndjson", d1, sizeof(d1));
    harness_path(&H, "d2.ndjson", d2, sizeof(d2));
    harness_path(&H, "dq", dir, sizeof(dir));
    static const char base[] = "[source dsrc]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = dq\n"
                               "[queue dq]\ntype = disk\npath = %s\n";
    static const char sink[] = "[sink %s]\ntype = file\npath = %s\nqueue = dq\n";
    int k = snprintf(x, sizeof(x), base, dport, dir);
    snprintf(x + k, sizeof(x) - (size_t)k, sink, "d1", d1);
    write_conf(tcp_port, "out.ndjson", "", x);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, dport, 10000) == HARNESS_WAIT_OK,
                    "the disk queue's source does not listen");
    load_start(&l);
    int fd = harness_tcp_connect(dport, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, N), 0);
    harness_require_lines(&H, d1, N, 10000);
    /* d2 added */
    int k2 = snprintf(x + k, sizeof(x) - (size_t)k, sink, "d1", d1);
    snprintf(x + k + k2, sizeof(x) - (size_t)(k + k2), sink, "d2", d2);
    write_conf(tcp_port, "out.ndjson", "", x);
    free(require_post(200));
    ck_assert_int_eq(harness_send_events(fd, N, N), 0);
    harness_require_lines(&H, d1, 2 * N, 10000);
    harness_require_lines(&H, d2, N, 10000);
    /* d1 removed */
    snprintf(x + k, sizeof(x) - (size_t)k, sink, "d2", d2);
    write_conf(tcp_port, "out.ndjson", "", x);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "sink \"d1\": removed") != NULL, "answer %s", body);
    free(body);
    ck_assert_int_eq(harness_send_events(fd, 2 * N, N), 0);
    harness_require_lines(&H, d2, 2 * N, 10000);
    HARNESS_REQUIRE(&H, harness_file_lines(d1) == 2 * N, "the removed sink's file grew");
    close(fd);
    load_wait(&l, 20);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    struct harness_seqs s1, s2;
    seqs_of(&s1, 3 * N, "d1.ndjson");
    seqs_of(&s2, 3 * N, "d2.ndjson");
    HARNESS_REQUIRE(&H, s1.bad == 0 && s1.dups == 0 && s2.bad == 0 && s2.dups == 0,
                    "bad or twice: d1 %" PRIu64 "/%" PRIu64 ", d2 %" PRIu64 "/%" PRIu64, s1.bad,
                    s1.dups, s2.bad, s2.dups);
    HARNESS_REQUIRE(&H,
                    harness_seqs_count_range(&s1, 0, 2 * N) == 2 * N &&
                        harness_seqs_count_range(&s2, 0, N) == 0 &&
                        harness_seqs_count_range(&s2, N, 3 * N) == 2 * N,
                    "d1 %" PRIu64 " of the first %d; d2 %" PRIu64
                    " from before it was added, %" PRIu64 " of %d after",
                    harness_seqs_count_range(&s1, 0, 2 * N), 2 * N,
                    harness_seqs_count_range(&s2, 0, N), harness_seqs_count_range(&s2, N, 3 * N),
                    2 * N);
    harness_seqs_fini(&s1);
    harness_seqs_fini(&s2);
}
END_TEST

/* ---- sources added, removed, changed --------------------------------------------------- */

#define NX 5 /* connections to the source "extra" */

/* POST /reload, failing the test unless it is applied (200) and its
 * answer says want. */
static void
require_applied(const char *want)
{
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, want) != NULL, "answer %s", body);
    free(body);
}

/* POST /reload, failing the test unless it is refused (422: nothing
 * changed) and its answer says want. */
static void
require_refused(const char *want)
{
    char *body = require_post(422);
    HARNESS_REQUIRE(&H, strstr(body, want) != NULL && strstr(body, "nothing changed") != NULL,
                    "answer %s", body);
    free(body);
}

/* NX connections to a source, one event each per round, until told to stop
 * or a send fails (the source went away). */
struct xload {
    pthread_t thread;
    int fds[NX];
    SSL *ssl[NX]; /* a TLS source's: over fds[], else NULL */
    atomic_bool stop;
    atomic_uint_least64_t rounds;
    atomic_int failed_errno;
    uint64_t base; /* first round's number */
};

/* Sends all of buf on connection c: 0, or -1 with errno set (a TLS
 * connection the source closed reads as EPIPE or ECONNRESET). */
static int
xload_send(struct xload *x, int c, const char *buf, size_t n)
{
    if (x->ssl[c] == NULL) {
        return harness_send_all(x->fds[c], buf, n);
    }
    errno = 0;
    if (SSL_write(x->ssl[c], buf, (int)n) == (int)n) {
        return 0;
    }
    ERR_clear_error();
    errno = errno == ECONNRESET ? ECONNRESET : EPIPE;
    return -1;
}

static void *
xload_main(void *arg)
{
    struct xload *x = arg;
    char line[HARNESS_EVENT_BYTES + 8];
    for (uint64_t r = x->base; !atomic_load(&x->stop); r++) {
        for (int c = 0; c < NX; c++) {
            size_t n = harness_event_line(line, r * NX + (uint64_t)c);
            if (xload_send(x, c, line, n) < 0) {
                atomic_store(&x->failed_errno, errno != 0 ? errno : EIO);
                return NULL;
            }
        }
        atomic_store(&x->rounds, r + 1 - x->base);
        harness_poll_step(1);
    }
    return NULL;
}

/* NX connections to the tcp port, or to the unix stream socket at upath
 * (not NULL), over TLS when tls is not NULL; their load running. */
static void
xload_start_to(struct xload *x, int port, const char *upath, SSL_CTX *tls, uint64_t base)
{
    memset(x, 0, sizeof(*x));
    x->base = base;
    for (int c = 0; c < NX; c++) {
        x->fds[c] = upath != NULL ? harness_unix_connect(upath, SOCK_STREAM, 10000)
                                  : harness_tcp_connect(port, 10000);
        HARNESS_REQUIRE(&H, x->fds[c] >= 0, "connect to %s: %s", upath != NULL ? upath : "port",
                        strerror(errno));
        if (tls != NULL) {
            x->ssl[c] = SSL_new(tls);
            ck_assert_ptr_nonnull(x->ssl[c]);
            SSL_set_fd(x->ssl[c], x->fds[c]);
            SSL_set1_host(x->ssl[c], "localhost");
            HARNESS_REQUIRE(&H, SSL_connect(x->ssl[c]) == 1,
                            "TLS handshake with the source failed");
        }
    }
    ck_assert_int_eq(pthread_create(&x->thread, NULL, xload_main, x), 0);
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    while (atomic_load(&x->rounds) < 20 && atomic_load(&x->failed_errno) == 0 &&
           harness_now_ms() < deadline) {
        harness_poll_step(2);
    }
    HARNESS_REQUIRE(&H, atomic_load(&x->rounds) >= 20, "the extra load does not run: %s",
                    strerror(atomic_load(&x->failed_errno)));
}

static void
xload_start(struct xload *x, int port, uint64_t base)
{
    xload_start_to(x, port, NULL, NULL, base);
}

/* Closes connection c (a TLS one after its close_notify when orderly). */
static void
xload_close(struct xload *x, int c, bool orderly)
{
    if (x->ssl[c] != NULL) {
        if (orderly) {
            (void)SSL_shutdown(x->ssl[c]);
        }
        SSL_free(x->ssl[c]);
        ERR_clear_error();
    }
    close(x->fds[c]);
}

/* Waits until the sender's sends fail (the source closed its connections)
 * and each connection reads EOF or a reset: never left open. */
static void
xload_require_closed(struct xload *x)
{
    pthread_join(x->thread, NULL);
    HARNESS_REQUIRE(
        &H, atomic_load(&x->failed_errno) == EPIPE || atomic_load(&x->failed_errno) == ECONNRESET,
        "the extra load ended with: %s", strerror(atomic_load(&x->failed_errno)));
    for (int c = 0; c < NX; c++) {
        xload_close(x, c, false);
    }
}

static void
xload_stop(struct xload *x)
{
    atomic_store(&x->stop, true);
    pthread_join(x->thread, NULL);
    HARNESS_REQUIRE(&H, atomic_load(&x->failed_errno) == 0, "extra load: %s",
                    strerror(atomic_load(&x->failed_errno)));
    for (int c = 0; c < NX; c++) {
        xload_close(x, c, true);
    }
}

#define XQ "[queue xq]\n[sink xfile]\ntype = file\npath = %s\nqueue = xq\n"
#define XSRC "[source extra]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = xq\n%s"

/* The standard config plus queue xq with its file sink, and (port > 0)
 * source "extra" on port feeding it (extra_keys in its section). */
static void
write_conf_x(int port, const char *extra_keys)
{
    char x[PATH_MAX * 2], xfile[PATH_MAX];
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    int k = snprintf(x, sizeof(x), XQ, xfile);
    if (port > 0) {
        snprintf(x + k, sizeof(x) - (size_t)k, XSRC, port, extra_keys);
    }
    write_conf(tcp_port, "out.ndjson", "", x);
}

/* The standard config plus queue xq with its file sink (sink_keys in its
 * section), and source_section (written as given, "" for none: a source
 * feeding xq). */
static void
write_conf_xsink(const char *sink_keys, const char *source_section)
{
    char x[PATH_MAX * 4], xfile[PATH_MAX];
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    int k = snprintf(x, sizeof(x), XQ, xfile);
    snprintf(x + k, sizeof(x) - (size_t)k, "%s%s", sink_keys, source_section);
    write_conf(tcp_port, "out.ndjson", "", x);
}

static void
write_conf_xsrc(const char *source_section)
{
    write_conf_xsink("", source_section);
}

/* The extra load runs n more rounds without a failed send: a refused
 * reload did not touch its source. */
static void
xload_require_unhurt(struct xload *x, uint64_t n)
{
    uint64_t r0 = atomic_load(&x->rounds);
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    while (atomic_load(&x->rounds) < r0 + n && atomic_load(&x->failed_errno) == 0 &&
           harness_now_ms() < deadline) {
        harness_poll_step(2);
    }
    HARNESS_REQUIRE(&H, atomic_load(&x->failed_errno) == 0 && atomic_load(&x->rounds) >= r0 + n,
                    "the refused reload hurt the source's clients: %s",
                    strerror(atomic_load(&x->failed_errno)));
}

/*
 * Per connection of the extra load, the rounds in x.ndjson: a run without
 * gap from round lo_want (or any, -1) that holds nothing twice.  Returns
 * the events seen.
 */
static uint64_t
x_runs(uint64_t nrounds, bool from_start, bool to_end)
{
    struct harness_seqs s;
    uint64_t n = nrounds * NX, seen = 0;
    seqs_of(&s, n, "x.ndjson");
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0, "x: %" PRIu64 " bad, %" PRIu64 " dup: %s", s.bad,
                    s.dups, s.first_error);
    for (int c = 0; c < NX; c++) {
        uint64_t lo = UINT64_MAX, hi = 0, k = 0;
        for (uint64_t r = 0; r < nrounds; r++) {
            if (s.seen[r * NX + (uint64_t)c] > 0) {
                lo = lo == UINT64_MAX ? r : lo;
                hi = r;
                k++;
            }
        }
        HARNESS_REQUIRE(&H, k > 0 && k == hi - lo + 1,
                        "x: connection %d: %" PRIu64 " event(s) in rounds %" PRIu64 "..%" PRIu64, c,
                        k, lo, hi);
        HARNESS_REQUIRE(&H, !from_start || lo == 0, "x: connection %d starts at %" PRIu64, c, lo);
        HARNESS_REQUIRE(&H, !to_end || hi == nrounds - 1, "x: connection %d ends at %" PRIu64, c,
                        hi);
        seen += k;
    }
    harness_seqs_fini(&s);
    return seen;
}

/* Removes source "extra" (the config without it) while x's load sends: the
 * reload says so, and x's connections are read and closed. */
static void
x_remove_source(struct xload *x)
{
    write_conf_xsrc("");
    char *body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "source \"extra\": removed: it stops accepting") != NULL,
                    "answer %s", body);
    free(body);
    xload_require_closed(x);
}

/*
 * The source of x's load was removed (its connections closed): every
 * event its logged counters say it received is in x.ndjson once, per
 * connection a run from the start; the main load then finishes (no reset,
 * every event once).
 */
static void
x_require_removed(struct load *l, struct xload *x)
{
    char xfile[PATH_MAX];
    unsigned long long got = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "extra", "events", &got) == 0 && got > 0,
                    "no counters logged for the removed source");
    harness_require_lines(&H, harness_path(&H, "x.ndjson", xfile, sizeof(xfile)), got, 10000);
    load_wait(l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(l, outs, 1);
    uint64_t seen = x_runs(atomic_load(&x->rounds) + 1, true, false);
    HARNESS_REQUIRE(&H, seen == got, "x: %" PRIu64 " in the file, %llu received", seen, got);
}

/* Stops the extra load, waits for all of it in x.ndjson, finishes the main
 * load (load_finish) and requires every extra event once, from start to end. */
static void
xload_finish(struct xload *x, struct load *l)
{
    xload_stop(x);
    uint64_t xrounds = atomic_load(&x->rounds);
    char xfile[PATH_MAX];
    harness_require_lines(&H, harness_path(&H, "x.ndjson", xfile, sizeof(xfile)), xrounds * NX,
                          10000);
    const char *outs[] = {"out.ndjson"};
    load_finish(l, outs, 1);
    HARNESS_REQUIRE(&H, x_runs(xrounds, true, true) == xrounds * NX, "x: not every event");
}

/* Adds source "extra" on xport by a reload, runs a load on it while the
 * main load sends n more events, and requires every event of both once. */
static void
x_add_and_finish(struct load *l, int xport, uint64_t n)
{
    struct xload x;
    write_conf_x(xport, "");
    require_applied("source \"extra\": added: bound and started");
    xload_start(&x, xport, 0);
    load_wait(l, n);
    xload_finish(&x, l);
}

/*
 * A tcp source added under load: it listens on its port once the reload
 * answers, and its events reach its queue, every one once; the main load
 * sees nothing change.
 */
START_TEST(test_reload_source_added)
{
    struct load l;
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    write_conf_x(0, "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(&l);
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(xport), "the extra port listens before the reload");
    x_add_and_finish(&l, xport, 100);
}
END_TEST

/*
 * A tcp source removed while its clients send: it stops listening, its
 * connections are read and then closed (the clients' sends fail), and what
 * it read is all in its queue's output: per connection a run from the
 * start, exactly as many events as its counters (logged at removal) say it
 * received.  The main load runs on untouched.
 */
START_TEST(test_reload_source_removed)
{
    struct load l;
    struct xload x;
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    write_conf_x(xport, "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(&l);
    xload_start(&x, xport, 0);
    load_wait(&l, 100);
    x_remove_source(&x);
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(xport), "the removed source still listens");
    x_require_removed(&l, &x);
}
END_TEST

/*
 * A tcp source's port changed under load: first to a port that is taken
 * (refused, nothing changed: the old port listens, its clients go on),
 * then to a free one: the new port listens before the old one stops; the
 * old connections are read and closed; clients of the new port get every
 * event in once.
 */
START_TEST(test_reload_source_port_changed)
{
    struct load l;
    struct xload x, y;
    int xport = harness_free_port(SOCK_STREAM), yport = harness_free_port(SOCK_STREAM);
    int taken_port = 0, taken = harness_tcp_listen(0, &taken_port);
    ck_assert(xport > 0 && yport > 0 && taken >= 0 && xport != yport);
    write_conf_x(xport, "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(&l);
    xload_start(&x, xport, 0);
    /* A port in use (no SO_REUSEPORT on the test's socket): the bind fails. */
    write_conf_x(taken_port, "");
    require_refused("source \"extra\": cannot listen on");
    close(taken);
    xload_require_unhurt(&x, 50);
    /* A free port: applied. */
    write_conf_x(yport, "");
    require_applied("source \"extra\": changed: a new one");
    xload_require_closed(&x);
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(xport), "the old port still listens");
    uint64_t xr = atomic_load(&x.rounds) + 1;
    xload_start(&y, yport, xr + 1); /* its seqs after the old clients' */
    load_wait(&l, 50);
    xload_stop(&y);
    unsigned long long old_got = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "extra", "events", &old_got) == 0,
                    "no counters logged for the old source");
    uint64_t yr = atomic_load(&y.rounds);
    char xfile[PATH_MAX];
    harness_require_lines(&H, harness_path(&H, "x.ndjson", xfile, sizeof(xfile)), old_got + yr * NX,
                          10000);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    /* Old clients: rounds [0, xr), a run from 0; new: [xr + 1, xr + 1 + yr), all. */
    struct harness_seqs s;
    seqs_of(&s, (xr + 1 + yr) * NX, "x.ndjson");
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0, "x: %" PRIu64 " bad, %" PRIu64 " dup: %s", s.bad,
                    s.dups, s.first_error);
    uint64_t old_seen = harness_seqs_count_range(&s, 0, xr * NX);
    uint64_t new_seen = harness_seqs_count_range(&s, (xr + 1) * NX, (xr + 1 + yr) * NX);
    HARNESS_REQUIRE(&H, old_seen == old_got && new_seen == yr * NX,
                    "old port: %" PRIu64 " in the file, %llu received; new port: %" PRIu64
                    " of %" PRIu64,
                    old_seen, old_got, new_seen, yr * NX);
    harness_seqs_fini(&s);
}
END_TEST

/* A socket on 127.0.0.1, a free port (stored in *port), as another
 * sluiced of the same user binds its own: SO_REUSEADDR and SO_REUSEPORT,
 * listening when type is SOCK_STREAM.  Returns fd or -1. */
static int
reuseport_socket(int type, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int one = 1, fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        (type == SOCK_STREAM && listen(fd, 64) < 0) ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* The reload adding source "extra" of type on port is refused, as the
 * port is another process's: said in the answer and the log, counted (the
 * nfailed-th refusal). */
static void
require_refused_in_use(const char *type, int port, double nfailed)
{
    char want[200];
    snprintf(want, sizeof(want),
             "source \"extra\": cannot listen on 127.0.0.1:%d (%s): address in use by another "
             "process",
             port, type);
    require_refused(want);
    harness_require_metric(&H, admin_port, M_FAILED, nfailed, false, 5000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, want), "the refusal is not in the log");
}

/*
 * A source added on a port another process of the same user holds with
 * SO_REUSEPORT (as a second sluiced would): refused, counted, nothing
 * changed (the daemon did not join that process's group: it keeps getting
 * every connection), for tcp and for udp; once the other process is gone,
 * the same file applies and the new source gets every event once.
 */
START_TEST(test_reload_source_port_shared)
{
    struct load l;
    char sec[256];
    int fport = 0, uport = 0;
    int foreign = reuseport_socket(SOCK_STREAM, &fport);
    int uforeign = reuseport_socket(SOCK_DGRAM, &uport);
    ck_assert_msg(foreign >= 0 && uforeign >= 0, "reuseport socket: %s", strerror(errno));
    write_conf_x(0, "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(&l);
    write_conf_x(fport, "");
    require_refused_in_use("tcp", fport, 1);
    /* Every connection still reaches the other process's listener. */
    for (int i = 0; i < 16; i++) {
        int c = harness_tcp_connect(fport, 5000);
        struct pollfd pfd = {.fd = foreign, .events = POLLIN};
        HARNESS_REQUIRE(&H, c >= 0, "connect to the other process's port: %s", strerror(errno));
        HARNESS_REQUIRE(&H, poll(&pfd, 1, harness_ms(5000)) == 1,
                        "connection %d did not reach the other process's listener", i);
        int a = accept(foreign, NULL, NULL);
        ck_assert_int_ge(a, 0);
        close(a);
        close(c);
    }
    snprintf(sec, sizeof(sec), "[source extra]\ntype = udp\nlisten = 127.0.0.1:%d\nqueue = xq\n",
             uport);
    write_conf_xsrc(sec);
    require_refused_in_use("udp", uport, 2);
    close(uforeign);
    load_wait(&l, 50);
    /* The other process gone: the same tcp config applies. */
    close(foreign);
    x_add_and_finish(&l, fport, 50);
}
END_TEST

/* ---- unix, TLS and sluice sources ------------------------------------------------------ */

#define XUNIX "[source extra]\ntype = %s\nlisten = %s\nqueue = xq\n%s"

/* The unix source "extra" of type at path (extra_keys in its section). */
static void
write_conf_xunix(const char *type, const char *path, const char *extra_keys)
{
    char sec[PATH_MAX * 2];
    snprintf(sec, sizeof(sec), XUNIX, type, path, extra_keys);
    write_conf_xsrc(sec);
}

/* True when a stream connect to path succeeds. */
static bool
unix_accepts(const char *path)
{
    int fd = harness_unix_connect(path, SOCK_STREAM, 1000);
    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

/* Starts the daemon on the standard config plus xq, with source_section. */
static void
start_xsrc(const char *source_section)
{
    write_conf_xsrc(source_section);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
}

/*
 * A unix_stream source added, then removed, under load: once added its
 * socket file exists and takes connections whose events reach its queue;
 * removed, its connections are read to the end and closed, its socket
 * file is gone, and every event it received (its logged counters) is in
 * the output once, per connection a run from the start.  The main load's
 * connections see nothing (load_finish: no reset, every event once).
 */
START_TEST(test_reload_unix_added_removed)
{
    struct load l;
    struct xload x;
    char sock[PATH_MAX], xfile[PATH_MAX];
    harness_path(&H, "x.sock", sock, sizeof(sock));
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    start_xsrc("");
    load_start(&l);
    HARNESS_REQUIRE(&H, !harness_exists(sock), "the socket exists before the reload");
    write_conf_xunix("unix_stream", sock, "");
    require_applied("source \"extra\": added: bound and started");
    xload_start_to(&x, 0, sock, NULL, 0);
    load_wait(&l, 100);
    x_remove_source(&x);
    HARNESS_REQUIRE(&H, !harness_exists(sock), "the removed source's socket file is still there");
    x_require_removed(&l, &x);
}
END_TEST

/*
 * A unix_stream source's path changed under load: first into a directory
 * that does not exist (the bind fails: refused, nothing changed, the old
 * socket's clients go on); then to a free path: the new socket exists
 * before the old one goes, the old connections are read and closed, the
 * old file is removed.  Then only its socket_mode changes (the same path):
 * the new socket is bound beside it and renamed over it, so the path never
 * stops taking connections; the old connections are read and closed; the
 * file has the new mode and nothing is left beside it.  Every event once.
 */
START_TEST(test_reload_unix_path_changed)
{
    struct load l;
    struct xload x, y, z;
    char a[PATH_MAX], b[PATH_MAX], nodir[PATH_MAX], beside[PATH_MAX + 16], xfile[PATH_MAX];
    harness_path(&H, "a.sock", a, sizeof(a));
    harness_path(&H, "b.sock", b, sizeof(b));
    harness_path(&H, "nodir/c.sock", nodir, sizeof(nodir));
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    snprintf(beside, sizeof(beside), "%s.reload", b);
    char sec[PATH_MAX * 2];
    snprintf(sec, sizeof(sec), XUNIX, "unix_stream", a, "");
    start_xsrc(sec);
    load_start(&l);
    xload_start_to(&x, 0, a, NULL, 0);
    write_conf_xunix("unix_stream", nodir, "");
    require_refused("source \"extra\": cannot listen on");
    xload_require_unhurt(&x, 50);
    HARNESS_REQUIRE(&H, unix_accepts(a), "the old socket stopped after a refused reload");
    /* A free path: applied. */
    write_conf_xunix("unix_stream", b, "socket_mode = 0600\n");
    require_applied("source \"extra\": changed: a new one");
    xload_require_closed(&x);
    HARNESS_REQUIRE(&H, !harness_exists(a), "the old socket file is still there");
    uint64_t xr = atomic_load(&x.rounds) + 1;
    unsigned long long got_a = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "extra", "events", &got_a) == 0,
                    "no counters logged for the old source");
    xload_start_to(&y, 0, b, NULL, xr + 1);
    /* The same path, another mode: bound beside, renamed over it. */
    write_conf_xunix("unix_stream", b, "socket_mode = 0666\n");
    require_applied("source \"extra\": changed: a new one");
    xload_require_closed(&y);
    struct stat st;
    HARNESS_REQUIRE(&H, stat(b, &st) == 0 && (st.st_mode & 0777) == 0666,
                    "the path does not have the new socket (mode %o)",
                    (unsigned)(st.st_mode & 0777));
    HARNESS_REQUIRE(&H, !harness_exists(beside), "%s left behind", beside);
    uint64_t yr = atomic_load(&y.rounds) + 1;
    unsigned long long got_b = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "extra", "events", &got_b) == 0,
                    "no counters logged for the replaced source");
    uint64_t zbase = xr + 1 + yr + 1;
    xload_start_to(&z, 0, b, NULL, zbase);
    load_wait(&l, 50);
    xload_stop(&z);
    uint64_t zr = atomic_load(&z.rounds);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    struct harness_seqs s;
    seqs_of(&s, (zbase + zr) * NX, "x.ndjson");
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0, "x: %" PRIu64 " bad, %" PRIu64 " dup: %s", s.bad,
                    s.dups, s.first_error);
    uint64_t a_seen = harness_seqs_count_range(&s, 0, xr * NX);
    uint64_t z_seen = harness_seqs_count_range(&s, zbase * NX, (zbase + zr) * NX);
    HARNESS_REQUIRE(&H, a_seen == got_a && z_seen == zr * NX,
                    "a.sock: %" PRIu64 " in the file, %llu received; last clients: %" PRIu64
                    " of %" PRIu64,
                    a_seen, got_a, z_seen, zr * NX);
    /* b's first clients: everything it received, per connection a run. */
    uint64_t b_seen = harness_seqs_count_range(&s, (xr + 1) * NX, (xr + 1 + yr) * NX);
    HARNESS_REQUIRE(&H, b_seen == got_b, "b.sock first: %" PRIu64 " in the file, %llu received",
                    b_seen, got_b);
    for (int c = 0; c < NX; c++) {
        uint64_t k = 0, hi = 0;
        for (uint64_t r = xr + 1; r < xr + 1 + yr; r++) {
            if (s.seen[r * NX + (uint64_t)c] > 0) {
                k++;
                hi = r;
            }
        }
        HARNESS_REQUIRE(&H, k > 0 && hi - (xr + 1) + 1 == k,
                        "b.sock connection %d: %" PRIu64 " event(s), last round %" PRIu64, c, k,
                        hi);
    }
    harness_seqs_fini(&s);
}
END_TEST

/*
 * A unix_dgram source added, then removed, under load: a connected sender
 * blocks rather than drops on a unix datagram socket, so every datagram
 * sent before the removal is in the output exactly once (the removed
 * socket is read empty first); after it the sends fail, the file is gone.
 */
START_TEST(test_reload_unix_dgram_added_removed)
{
    struct load l;
    char sock[PATH_MAX], xfile[PATH_MAX], line[HARNESS_EVENT_BYTES + 8];
    harness_path(&H, "d.sock", sock, sizeof(sock));
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    start_xsrc("");
    load_start(&l);
    write_conf_xunix("unix_dgram", sock, "");
    require_applied("source \"extra\": added: bound and started");
    int fd = harness_unix_connect(sock, SOCK_DGRAM, 10000);
    HARNESS_REQUIRE(&H, fd >= 0, "connect to %s: %s", sock, strerror(errno));
    uint64_t n = (uint64_t)harness_events(20000), sent = 0;
    for (; sent < n / 2; sent++) {
        size_t k = harness_event_line(line, sent);
        ck_assert_int_eq(send(fd, line, k, 0), (ssize_t)k);
    }
    write_conf_xsrc("");
    require_applied("source \"extra\": removed: it stops accepting");
    size_t k = harness_event_line(line, sent);
    HARNESS_REQUIRE(&H, send(fd, line, k, 0) < 0, "a send to the removed socket succeeded");
    close(fd);
    HARNESS_REQUIRE(&H, !harness_exists(sock), "the removed source's socket file is still there");
    harness_require_lines(&H, xfile, sent, 10000);
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    struct harness_seqs s;
    seqs_of(&s, sent, "x.ndjson");
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0 && harness_seqs_count_range(&s, 0, sent) == sent,
                    "x: %" PRIu64 " of %" PRIu64 ", %" PRIu64 " dup, %" PRIu64 " bad",
                    harness_seqs_count_range(&s, 0, sent), sent, s.dups, s.bad);
    harness_seqs_fini(&s);
}
END_TEST

/* A TLS client context trusting the test CA (no client certificate). */
static SSL_CTX *
tls_client_ctx(const char *certs)
{
    char p[PATH_MAX + 16];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    snprintf(p, sizeof(p), "%s/ca.pem", certs);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, p, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/* True when the server certificate seen by ssl has O=rotated (server2.pem). */
static bool
tls_peer_rotated(SSL *ssl)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    char name[512] = "";
    if (cert != NULL) {
        X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof(name));
        X509_free(cert);
    }
    return strstr(name, "O=rotated") != NULL || strstr(name, "O = rotated") != NULL;
}

/*
 * A tcp source with TLS: added under load (it listens with its context),
 * then its certificate file changed (tls_cert_file, a source change: a new
 * listener with a new context, SO_REUSEPORT on the same port; the old
 * connections are read to the end and closed; new ones get the new
 * certificate), then removed (its connections read and closed, the port
 * no longer listens).  Every event of every client once.
 */
START_TEST(test_reload_tls_source_changed)
{
    struct load l;
    struct xload x, y;
    char certs[PATH_MAX], cmd[PATH_MAX * 2], sec[PATH_MAX * 4], xfile[PATH_MAX];
    const char *top = getenv("SLUICE_TOP");
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    harness_path(&H, "certs", certs, sizeof(certs));
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    snprintf(cmd, sizeof(cmd), "sh %s/tests/certs.sh %s", top != NULL ? top : ".", certs);
    ck_assert_int_eq(system(cmd), 0);
    SSL_CTX *ctx = tls_client_ctx(certs);
    static const char tls_src[] = "[source extra]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = xq\n"
                                  "tls = on\ntls_client_auth = none\n"
                                  "tls_cert_file = %s/%s.pem\ntls_key_file = %s/%s.key\n";
    start_xsrc("");
    load_start(&l);
    snprintf(sec, sizeof(sec), tls_src, xport, certs, "server", certs, "server");
    write_conf_xsrc(sec);
    require_applied("source \"extra\": added: bound and started");
    xload_start_to(&x, xport, NULL, ctx, 0);
    HARNESS_REQUIRE(&H, !tls_peer_rotated(x.ssl[0]), "the first certificate is already rotated");
    /* A certificate that does not load (the config check reads it): refused,
     * nothing changed. */
    snprintf(sec, sizeof(sec), tls_src, xport, certs, "bad", certs, "server");
    write_conf_xsrc(sec);
    require_refused("tls_cert_file");
    load_wait(&l, 20);
    HARNESS_REQUIRE(&H, atomic_load(&x.failed_errno) == 0,
                    "the refused reload hurt the source's clients: %s",
                    strerror(atomic_load(&x.failed_errno)));
    /* The certificate changed: a new listener, the old clients finish. */
    snprintf(sec, sizeof(sec), tls_src, xport, certs, "server2", certs, "server2");
    write_conf_xsrc(sec);
    require_applied("source \"extra\": changed: a new one");
    xload_require_closed(&x);
    uint64_t xr = atomic_load(&x.rounds) + 1;
    unsigned long long old_got = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "extra", "events", &old_got) == 0,
                    "no counters logged for the old source");
    xload_start_to(&y, xport, NULL, ctx, xr + 1);
    HARNESS_REQUIRE(&H, tls_peer_rotated(y.ssl[0]),
                    "a new client does not get the new certificate");
    load_wait(&l, 50);
    /* Removed: its clients are read to the end and closed. */
    x_remove_source(&y);
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(xport), "the removed source still listens");
    uint64_t yr = atomic_load(&y.rounds) + 1;
    SSL_CTX_free(ctx);
    load_wait(&l, 20);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    struct harness_seqs s;
    seqs_of(&s, (xr + 1 + yr) * NX, "x.ndjson");
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0, "x: %" PRIu64 " bad, %" PRIu64 " dup: %s", s.bad,
                    s.dups, s.first_error);
    uint64_t old_seen = harness_seqs_count_range(&s, 0, xr * NX);
    uint64_t new_seen = harness_seqs_count_range(&s, (xr + 1) * NX, (xr + 1 + yr) * NX);
    uint64_t total_got = harness_file_lines(xfile);
    HARNESS_REQUIRE(&H, old_seen == old_got && old_seen + new_seen == total_got && new_seen > 0,
                    "old: %" PRIu64 " in the file, %llu received; new: %" PRIu64 "; file %" PRIu64
                    " lines",
                    old_seen, old_got, new_seen, total_got);
    harness_seqs_fini(&s);
}
END_TEST

/*
 * A sluice source (acknowledged) added, changed, removed and added back,
 * under load: an edge sluiced (tcp source -> sluice sink) forwards to it.
 * Added: the edge connects and delivers.  Changed (a key, the same port):
 * the new one listens beside the old (SO_REUSEPORT), the old closes its
 * connections without acknowledging what is not committed, the edge
 * reconnects and resends only what it was not told was accepted.
 * Removed: the port stops listening, the edge keeps what was not
 * acknowledged.  Added back: the duplicate filter (kept for the process)
 * still knows every batch accepted.  Every event of the edge once.  The
 * queue's file sink writes every 300 ms, so batches are accepted and not
 * yet acknowledged whenever a connection closes.
 */
#define SLOW_COMMIT "batch_timeout = 300ms\n"
START_TEST(test_reload_sluice_source)
{
    struct harness E;
    struct load l;
    struct xload x;
    char sec[512], xfile[PATH_MAX], eout[PATH_MAX];
    int sport = harness_free_port(SOCK_STREAM), eport = harness_free_port(SOCK_STREAM);
    int eadmin = harness_free_port(SOCK_STREAM);
    ck_assert(sport > 0 && eport > 0 && eadmin > 0);
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    static const char ssrc[] =
        "[source extra]\ntype = sluice\nlisten = 127.0.0.1:%d\nqueue = xq\n%s";
    write_conf_xsink(SLOW_COMMIT, "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(&l);
    ck_assert_int_eq(harness_init(&E), 0);
    harness_path(&E, "edge.ndjson", eout, sizeof(eout));
    ck_assert_int_eq(harness_write_config(&E,
                                          "[daemon]\nadmin_listen = 127.0.0.1:%d\n"
                                          "shutdown_timeout = 20s\n"
                                          "[source in]\ntype = tcp\nlisten = 127.0.0.1:%d\n"
                                          "queue = main\n[queue main]\n"
                                          "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:%d\n"
                                          "queue = main\nsender_id = edge\nretry_max = 100ms\n",
                                          eadmin, eport, sport),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, eport, 10000) == HARNESS_WAIT_OK,
                    "the edge does not listen");
    xload_start(&x, eport, 0);
    /* Added. */
    snprintf(sec, sizeof(sec), ssrc, sport, "");
    write_conf_xsink(SLOW_COMMIT, sec);
    require_applied("source \"extra\": added: bound and started");
    harness_require_lines(&H, xfile, 1000, 10000);
    /* Changed, the same port. */
    snprintf(sec, sizeof(sec), ssrc, sport, "max_connections = 100\n");
    write_conf_xsink(SLOW_COMMIT, sec);
    require_applied("source \"extra\": changed: a new one");
    uint64_t n1 = harness_file_lines(xfile);
    harness_require_lines(&H, xfile, n1 + 1000, 10000);
    /* Removed: the port stops listening; nothing more arrives. */
    write_conf_xsink(SLOW_COMMIT, "");
    require_applied("source \"extra\": removed: it stops accepting");
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(sport), "the removed source still listens");
    /* What the removed source accepted before the reload is still written
     * by xq's file sink (every 300 ms): count once xq holds nothing. */
    int64_t until = harness_now_ms() + harness_ms(10000);
    while (metric("sluice_queue_queued_bytes{queue=\"xq\"}") != 0 && harness_now_ms() < until) {
        harness_poll_step(5);
    }
    HARNESS_REQUIRE(&H, metric("sluice_queue_queued_bytes{queue=\"xq\"}") == 0,
                    "queue xq is not written out after the source's removal");
    uint64_t n2 = harness_file_lines(xfile);
    load_wait(&l, 100);
    HARNESS_REQUIRE(&H, harness_file_lines(xfile) == n2, "events arrived from a removed source");
    /* Added back. */
    snprintf(sec, sizeof(sec), ssrc, sport, "");
    write_conf_xsink(SLOW_COMMIT, sec);
    free(require_post(200));
    harness_require_lines(&H, xfile, n2 + 1000, 10000);
    xload_stop(&x);
    uint64_t xr = atomic_load(&x.rounds);
    harness_require_lines(&H, xfile, xr * NX, 20000);
    harness_require_stop_ok(&E);
    harness_fini(&E);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    HARNESS_REQUIRE(&H, x_runs(xr, true, true) == xr * NX, "x: not every event");
}
END_TEST

/* ---- queues added, removed, changed ------------------------------------------------------ */

/* The standard config plus queue xq (memory, or disk in the test's
 * directory "xq"; queue_keys in its section) with its file sink xfile, and
 * (port > 0) source "extra" on port feeding it. */
static void
write_conf_qd(int port, bool disk, const char *queue_keys, const char *daemon_extra)
{
    char x[PATH_MAX * 3], xfile[PATH_MAX], dir[PATH_MAX];
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    harness_path(&H, "xq", dir, sizeof(dir));
    int k = snprintf(x, sizeof(x), "[queue xq]\n");
    if (disk) {
        k += snprintf(x + k, sizeof(x) - (size_t)k, "type = disk\npath = %s\n", dir);
    }
    k += snprintf(x + k, sizeof(x) - (size_t)k,
                  "%s[sink xfile]\ntype = file\npath = %s\nqueue = xq\n", queue_keys, xfile);
    if (port > 0) {
        snprintf(x + k, sizeof(x) - (size_t)k, XSRC, port, "");
    }
    write_conf(tcp_port, "out.ndjson", daemon_extra, x);
}

static void
write_conf_q(int port, bool disk, const char *queue_keys)
{
    write_conf_qd(port, disk, queue_keys, "");
}

/* Starts sluiced on write_conf_q(port, disk, queue_keys) with a free port
 * for the source "extra", the main load and the extra load; returns the
 * port. */
static int
queue_start(struct load *l, struct xload *x, bool disk, const char *queue_keys)
{
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    write_conf_q(xport, disk, queue_keys);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(l);
    xload_start(x, xport, 0);
    return xport;
}

/*
 * A queue added under load with a tcp source and a file sink of its own
 * (memory, then disk): the answer says so, the source listens, every one of
 * its events reaches the sink once; a disk queue's directory is set up as
 * at start (its state on disk before the first write).  The main load sees
 * nothing change.
 */
static void
queue_added(bool disk)
{
    struct load l;
    struct xload x;
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    start_daemon();
    load_start(&l);
    load_wait(&l, 50);
    write_conf_q(xport, disk, "");
    char *body = require_post(200);
    HARNESS_REQUIRE(&H,
                    strstr(body, disk ? "queue \"xq\": added (disk)"
                                      : "queue \"xq\": added (memory)") != NULL &&
                        strstr(body, "source \"extra\": added") != NULL &&
                        strstr(body, "sink \"xfile\": added") != NULL,
                    "answer %s", body);
    free(body);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "queue \"xq\": added ("), "not in the log");
    if (disk) {
        char state[PATH_MAX];
        HARNESS_REQUIRE(&H, harness_exists(harness_path(&H, "xq/state", state, sizeof(state))),
                        "the added disk queue has no state file before its first write");
    }
    xload_start(&x, xport, 0);
    load_wait(&l, 100);
    /* The same file again: the added queue is what runs now. */
    body = require_post(200);
    HARNESS_REQUIRE(&H, strstr(body, "(unchanged)") != NULL, "answer %s", body);
    free(body);
    load_wait(&l, 20);
    xload_finish(&x, &l);
}

START_TEST(test_reload_queue_added)
{
    queue_added(false);
}
END_TEST

START_TEST(test_reload_queue_added_disk)
{
    queue_added(true);
}
END_TEST

/* POST /reload on a thread of its own (the answer waits for a drain). */
struct post {
    pthread_t thread;
    int code;
    char *body;
};

static void *
post_main(void *arg)
{
    struct post *p = arg;
    p->code = post_reload(&p->body);
    return NULL;
}

/*
 * A queue removed under load with its source and sink (memory, then disk),
 * the writer stalled (SLUICE_TEST_STALL_FILE) from before the reload until
 * the source has stopped, so the queue holds events when its removal
 * begins: the source stops first (its clients' connections are read, then
 * closed), the sink drains everything the queue held before the answer:
 * its file holds, per connection, one run from the start, exactly as many
 * events as the source received, nothing given up; a disk queue's
 * directory stays (the log says so), and adding the queue back resumes it.
 * keep (disk): the writer stays stalled past shutdown_timeout (1s), so
 * the sink cannot send: what it had not sent stays in the directory (the
 * answer says how many bytes; nothing is given up), and once the queue is
 * added back its sink sends exactly that.
 * The main load does not run here (the stall would hold its queue too);
 * the memory queue is large enough (64MiB) that its producers do not pause
 * for the stall.
 */
/* Waits for n more rounds of the extra load. */
static void
xload_wait(struct xload *x, uint64_t n)
{
    uint64_t want = atomic_load(&x->rounds) + n;
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (atomic_load(&x->rounds) < want && atomic_load(&x->failed_errno) == 0 &&
           harness_now_ms() < deadline) {
        harness_poll_step(2);
    }
    HARNESS_REQUIRE(&H, atomic_load(&x->rounds) >= want, "the extra load stopped: %s",
                    strerror(atomic_load(&x->failed_errno)));
}

static void
queue_removed(bool disk, bool keep)
{
    const char *dx = keep ? "shutdown_timeout = 1s\n" : "";
    struct xload x;
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    harness_path(&H, "stall", stall, sizeof(stall));
    snprintf(env_stall, sizeof(env_stall), "SLUICE_TEST_STALL_FILE=%s", stall);
    const char *env[] = {env_stall, NULL};
    write_conf_qd(xport, disk, disk ? "" : "capacity = 64MiB\n", dx);
    ck_assert_int_eq(harness_start(&H, env), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, xport, 10000) == HARNESS_WAIT_OK,
                    "the extra source does not listen");
    xload_start(&x, xport, 0);
    xload_wait(&x, 100);
    ck_assert_int_eq(harness_write_file(stall, "stall\n"), 0);
    xload_wait(&x, 20);
    write_conf(tcp_port, "out.ndjson", dx, "");
    struct post p = {0};
    ck_assert_int_eq(pthread_create(&p.thread, NULL, post_main, &p), 0);
    int64_t until = harness_now_ms() + harness_ms(20000);
    while (!harness_log_has(&H, "source \"extra\": removed; events=") && harness_now_ms() < until) {
        harness_poll_step(5);
    }
    bool stopped = harness_log_has(&H, "source \"extra\": removed; events=");
    if (!keep) {
        unlink(stall);
    }
    pthread_join(p.thread, NULL);
    unlink(stall);
    HARNESS_REQUIRE(&H, stopped, "the source was not removed with the writer stalled");
    char *body = p.body;
    HARNESS_REQUIRE(&H, p.code == 200, "POST /reload: %d: %s", p.code, body != NULL ? body : "");
    HARNESS_REQUIRE(&H,
                    strstr(body, "queue \"xq\": removed: its sources stop first") != NULL &&
                        strstr(body, "source \"extra\": removed") != NULL &&
                        (!disk || strstr(body, "its directory stays on disk") != NULL),
                    "answer %s", body);
    free(body);
    xload_require_closed(&x);
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(xport), "the removed source still listens");
    HARNESS_REQUIRE(&H,
                    harness_log_has(&H, disk ? "queue \"xq\": removed; its directory"
                                             : "queue \"xq\": removed; its sinks drained"),
                    "the log does not say the queue went");
    HARNESS_REQUIRE(&H, harness_log_has(&H, "sink \"xfile\": removed with queue \"xq\""),
                    "the log does not say the sink went");
    harness_require_metric(&H, admin_port, "sluice_reload_sink_given_up_events_total", 0, false,
                           5000);
    unsigned long long got = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "extra", "events", &got) == 0 && got > 0,
                    "no counters logged for the removed source");
    char xfile[PATH_MAX];
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    /* Drained before the answer: the file holds it all already (keep:
     * not all of it, the rest is in the directory). */
    HARNESS_REQUIRE(&H, keep ? harness_file_lines(xfile) < got : harness_file_lines(xfile) == got,
                    "x: %" PRIu64 " line(s) at the answer, the source received %llu",
                    harness_file_lines(xfile), got);
    if (keep) {
        HARNESS_REQUIRE(&H,
                        harness_log_has(&H, "its sinks had not sent") &&
                            !harness_log_has(&H, "with 0 byte(s) its sinks had not sent"),
                        "the log does not say what was left in the directory");
    }
    if (disk) {
        char dir[PATH_MAX];
        HARNESS_REQUIRE(&H, harness_exists(harness_path(&H, "xq/state", dir, sizeof(dir))),
                        "the removed disk queue's directory is gone");
        /* Added back (same directory): it opens and its sink sends what it
         * had not sent, nothing twice. */
        write_conf_qd(0, true, "", dx);
        free(require_post(200));
        harness_require_lines(&H, xfile, got, 10000);
    }
    harness_require_stop_ok(&H);
    uint64_t seen = x_runs(atomic_load(&x.rounds) + 1, true, false);
    HARNESS_REQUIRE(&H, seen == got, "x: %" PRIu64 " in the file, %llu received", seen, got);
}

START_TEST(test_reload_queue_removed)
{
    queue_removed(false, false);
}
END_TEST

START_TEST(test_reload_queue_removed_disk)
{
    queue_removed(true, false);
}
END_TEST

START_TEST(test_reload_queue_removed_disk_kept)
{
    queue_removed(true, true);
}
END_TEST

/*
 * A disk queue's fsync_interval changed under load: applied in place (the
 * answer and the log say so), the queue keeps its contents and its source
 * its connections: every event of the extra load once, from start to end.
 */
START_TEST(test_reload_queue_changed_in_place)
{
    struct load l;
    struct xload x;
    int xport = queue_start(&l, &x, true, "fsync_interval = 500ms\n");
    load_wait(&l, 50);
    write_conf_q(xport, true, "fsync_interval = 1s\n");
    char *body = require_post(200);
    HARNESS_REQUIRE(
        &H, strstr(body, "queue \"xq\": changed (fsync_interval): applied in place") != NULL,
        "answer %s", body);
    free(body);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "queue \"xq\": fsync_interval is 1000 ms now"),
                    "not in the log");
    load_wait(&l, 100);
    xload_finish(&x, &l);
}
END_TEST

/*
 * Queue changes that do not apply live, under load: chunk_size (with
 * capacity, which alone would apply), then type memory -> disk: each
 * refused (422, nothing changed, not even the capacity) with every key
 * named and its reason; the queue, its source and its sink run on: every
 * event of the extra load once, from start to end.
 */
START_TEST(test_reload_queue_change_refused)
{
    struct load l;
    struct xload x;
    int xport = queue_start(&l, &x, false, "");
    load_wait(&l, 50);
    write_conf_q(xport, false, "capacity = 32MiB\nchunk_size = 128KiB\n");
    char *body = require_post(422);
    HARNESS_REQUIRE(
        &H,
        strstr(body, "queue \"xq\": changed (capacity, chunk_size): not applied live") != NULL &&
            strstr(body, "chunk_size: every chunk is allocated") != NULL &&
            strstr(body, "capacity:") == NULL && strstr(body, "nothing changed") != NULL,
        "answer %s", body);
    free(body);
    harness_require_metric(&H, admin_port, "sluice_queue_capacity_chunks{queue=\"xq\"}", 64, false,
                           5000);
    load_wait(&l, 50);
    write_conf_q(xport, true, "");
    body = require_post(422);
    HARNESS_REQUIRE(&H,
                    strstr(body, "queue \"xq\": changed (") != NULL &&
                        strstr(body, "type: what it holds would have to move") != NULL,
                    "answer %s", body);
    free(body);
    char dir[PATH_MAX];
    HARNESS_REQUIRE(&H, !harness_exists(harness_path(&H, "xq", dir, sizeof(dir))),
                    "the refused disk queue's directory was made: half-applied");
    harness_require_metric(&H, admin_port, M_FAILED, 2, false, 5000);
    load_wait(&l, 100);
    xload_finish(&x, &l);
}
END_TEST

/* ---- a changed sink on a disk queue takes its reader over ---------------------------- */

#define DQ_BASE                                                                                    \
    "[source dsrc]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = dq\n"                               \
    "[queue dq]\ntype = disk\npath = %s\n"
#define DQ_HANDED "at the committed position; 0 byte(s) the old one had sent"

/* The edge: DQ_BASE on dport (directory dq in H) and sink (its section,
 * a %s for nothing: already formatted), the standard sections idle. */
static void
dq_conf(int dport, const char *sink)
{
    char extra[2 * PATH_MAX + 512], dir[PATH_MAX];
    harness_path(&H, "dq", dir, sizeof(dir));
    int k = snprintf(extra, sizeof(extra), DQ_BASE, dport, dir);
    snprintf(extra + k, sizeof(extra) - (size_t)k, "%s", sink);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", extra);
}

/* Starts the edge on dq_conf(*dport, sink). */
static void
dq_start(int *dport, const char *sink)
{
    *dport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(*dport, 0);
    dq_conf(*dport, sink);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, *dport, 10000) == HARNESS_WAIT_OK,
                    "the disk queue's source does not listen");
}

/* Lets the extra load run n more rounds, stops it; returns the events sent
 * (seqs [0, that)). */
static uint64_t
dq_xload_end(struct xload *x, uint64_t n)
{
    xload_wait(x, n);
    xload_stop(x);
    return atomic_load(&x->rounds) * NX;
}

/* Waits until every seq of [0, n) is in file a or b (b may be NULL). */
static void
dq_require_all(const char *a, const char *b, uint64_t n, const char *what)
{
    struct handover_seen x = {.a = a, .b = b != NULL ? b : a, .n = n};
    HARNESS_REQUIRE(&H,
                    harness_poll(&H, harness_ms(30000), handover_all_seen, &x) == HARNESS_WAIT_OK,
                    "%s: not every event of %" PRIu64 " arrived", what, n);
}

/* The events of [0, n) (xload: NX connections) in the old sink's file and
 * the receiver's: none lost, none twice in one of them, none on both; per
 * connection the old one holds a run from the start, the receiver the rest
 * (the order kept). */
static void
dq_require_split(const char *old, const char *agg, uint64_t n, const char *what)
{
    struct harness_seqs fo, fa;
    ck_assert_int_eq(harness_seqs_init(&fo, n), 0);
    ck_assert_int_eq(harness_seqs_init(&fa, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fo, old, true), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fa, agg, true), 0);
    uint64_t both = 0, lost = 0, last_old[NX] = {0}, first_new[NX], order = 0;
    for (int c = 0; c < NX; c++) {
        first_new[c] = UINT64_MAX;
    }
    for (uint64_t q = 0; q < n; q++) {
        both += fo.seen[q] > 0 && fa.seen[q] > 0;
        lost += fo.seen[q] + fa.seen[q] == 0;
        last_old[q % NX] = fo.seen[q] > 0 ? q : last_old[q % NX];
        if (fa.seen[q] > 0 && first_new[q % NX] == UINT64_MAX) {
            first_new[q % NX] = q;
        }
    }
    for (int c = 0; c < NX; c++) {
        order += last_old[c] > first_new[c];
    }
    fprintf(stderr,
            "check_reload: %s: %" PRIu64 " events in the old sink's file, %" PRIu64
            " at the receiver, %" PRIu64 " in both, %" PRIu64 " lost\n",
            what, fo.lines, fa.lines, both, lost);
    HARNESS_REQUIRE(
        &H,
        fo.bad == 0 && fa.bad == 0 && fo.dups == 0 && fa.dups == 0 && both == 0 && lost == 0 &&
            fo.lines > 0 && fa.lines > 0 && order == 0,
        "%s: %" PRIu64 " lost, %" PRIu64 " on both, twice %" PRIu64 "/%" PRIu64 ", bad %" PRIu64
        "/%" PRIu64 ", %" PRIu64 " connection(s) with an old event after a new one: %s%s",
        what, lost, both, fo.dups, fa.dups, fo.bad, fa.bad, order, fo.first_error, fa.first_error);
    harness_seqs_fini(&fo);
    harness_seqs_fini(&fa);
}

/*
 * A file sink on a disk queue becomes a sluice sink (its type changed by a
 * reload) under load: the old one stops between two writes, the new one
 * takes its reader (name, committed position in the queue's state) and
 * forwards from where the file stopped.  Every event exactly once across
 * the old file and the receiver's file, the old file a run from the start.
 * (Refused before: "a changed sink on a disk queue it stays on".)
 */
START_TEST(test_reload_disk_sink_type_changed)
{
    struct harness A;
    struct xload x;
    char agg[PATH_MAX], old[PATH_MAX], sink[PATH_MAX + 256];
    int dport;
    int aport = receiver_start(&A, agg, sizeof(agg), "", "");
    harness_path(&H, "mv.ndjson", old, sizeof(old));
    snprintf(sink, sizeof(sink), "[sink mv]\ntype = file\npath = %s\nqueue = dq\n", old);
    dq_start(&dport, sink);
    xload_start(&x, dport, 0);
    xload_wait(&x, 2000);
    snprintf(sink, sizeof(sink),
             "[sink mv]\ntype = sluice\ntarget = 127.0.0.1:%d\nqueue = dq\nsender_id = mv\n",
             aport);
    dq_conf(dport, sink);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H,
                    strstr(body, "sink \"mv\": changed (") != NULL &&
                        strstr(body, "handed over on its disk queue: the old one stops") != NULL &&
                        strstr(body, DQ_HANDED) != NULL,
                    "answer %s", body);
    free(body);
    uint64_t n = dq_xload_end(&x, 2000);
    dq_require_all(old, agg, n, "file -> sluice");
    harness_require_stop_ok(&H);
    harness_require_stop_ok(&A);
    dq_require_split(old, agg, n, "file -> sluice");
    harness_fini(&A);
}
END_TEST

/*
 * The same, killed (SLUICE_CRASH_AT) in the middle of the hand-over: after
 * the old file sink stopped and the reader went back to its committed
 * position, before the new sink's first checkpoint is on disk.  Restarted
 * with the new config, the sluice sink resumes from the position the state
 * file holds (the file's end: put on disk when the old one stopped) and
 * more events follow: every event exactly once across the two files.
 */
START_TEST(test_reload_disk_sink_type_changed_killed)
{
    struct harness A;
    enum { N = 20000 };
    char agg[PATH_MAX], old[PATH_MAX], sink[PATH_MAX + 256];
    const char *env[] = {"SLUICE_CRASH_AT=handover-rewound", NULL};
    int aport = receiver_start(&A, agg, sizeof(agg), "", "");
    int dport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(dport, 0);
    harness_path(&H, "mv.ndjson", old, sizeof(old));
    snprintf(sink, sizeof(sink), "[sink mv]\ntype = file\npath = %s\nqueue = dq\n", old);
    dq_conf(dport, sink);
    ck_assert_int_eq(harness_start(&H, env), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, dport, 10000) == HARNESS_WAIT_OK,
                    "the disk queue's source does not listen");
    int fd = harness_tcp_connect(dport, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, 0, N), 0);
    harness_require_lines(&H, old, N, 20000);
    snprintf(sink, sizeof(sink),
             "[sink mv]\ntype = sluice\ntarget = 127.0.0.1:%d\nqueue = dq\nsender_id = mv\n",
             aport);
    dq_conf(dport, sink);
    char *body = NULL;
    (void)post_reload(&body); /* no answer: it dies in the hand-over */
    free(body);
    int status = 0;
    HARNESS_REQUIRE(&H, harness_wait_exit(&H, 10000, &status) == HARNESS_WAIT_OK,
                    "the daemon did not die at its crash point");
    HARNESS_REQUIRE(&H, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                    "exited with status %d, not by SIGKILL", status);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "killing the process at handover-rewound"),
                    "it did not die in the hand-over");
    close(fd);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, dport, 10000) == HARNESS_WAIT_OK,
                    "the restarted edge does not listen");
    fd = harness_tcp_connect(dport, 10000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, N, N), 0);
    dq_require_all(old, agg, 2 * N, "file -> sluice, killed");
    close(fd);
    harness_require_stop_ok(&H);
    harness_require_stop_ok(&A);
    dq_require_split(old, agg, 2 * N, "file -> sluice, killed");
    harness_fini(&A);
}
END_TEST

/*
 * A sluice sink on a disk queue gets a new sender_id under load, while
 * batches are in flight to its receiver (which acknowledges every 300 ms,
 * so a window's worth is always out): the old one sends nothing new and waits for their
 * acknowledgements, then the new one takes the reader from the committed
 * position and forwards the rest under its new id.  Every event at least
 * once at the receiver; none twice, as the old one had everything it sent
 * acknowledged in time (the answer says 0 bytes go again).  (Refused
 * before.)
 */
START_TEST(test_reload_disk_sink_sender_changed)
{
    struct harness A;
    struct xload x;
    char agg[PATH_MAX], sink[512];
    static const char fwd[] = "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:%d\nqueue = dq\n"
                              "sender_id = %s\nwindow = 32\n";
    int dport;
    int aport = receiver_start(&A, agg, sizeof(agg), SLOW_QUEUE, SLOW_ACKS);
    snprintf(sink, sizeof(sink), fwd, aport, "edge");
    dq_start(&dport, sink);
    xload_start(&x, dport, 0); /* ~5000 events/s: fwd keeps up between acks */
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    while (harness_file_lines(agg) == 0 && harness_now_ms() < deadline) {
        harness_poll_step(5);
    }
    HARNESS_REQUIRE(&H, harness_file_lines(agg) > 0, "the receiver got nothing");
    snprintf(sink, sizeof(sink), fwd, aport, "edge2");
    dq_conf(dport, sink);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H,
                    strstr(body, "sink \"fwd\": changed (sender_id): handed over on its disk "
                                 "queue: the old one sends nothing new") != NULL &&
                        strstr(body, DQ_HANDED) != NULL,
                    "answer %s", body);
    free(body);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "waits for the acknowledgement of"),
                    "nothing was in flight at the reload");
    uint64_t n = dq_xload_end(&x, 1000);
    dq_require_all(agg, NULL, n, "sender_id changed");
    harness_require_stop_ok(&H);
    harness_require_stop_ok(&A);
    struct harness_seqs fa;
    char msg[1024];
    ck_assert_int_eq(harness_seqs_init(&fa, n), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fa, agg, true), 0);
    bool once = harness_seqs_exactly_once(&fa, msg, sizeof(msg));
    fprintf(stderr,
            "check_reload: sender_id changed: %" PRIu64 " events at the receiver of %" PRIu64 "\n",
            fa.lines, n);
    HARNESS_REQUIRE(&H, once, "sender_id changed: %s", msg);
    harness_seqs_fini(&fa);
    harness_fini(&A);
}
END_TEST

/* ---- queue settings changed live (their own TCase "queue_live") ------------------------- */

/* Enough events (200 bytes each, 20 MB) to fill the kernel's buffers (the
 * daemon's receive buffer grows to MBs while it reads) and the queue, so
 * the source pauses behind the stalled sink. */
#define QL_EVENTS 100000
#define QL "xq"
#define M_QL_CHUNKS "sluice_queue_chunks{queue=\"" QL "\"}"
#define M_QL_CAP "sluice_queue_capacity_chunks{queue=\"" QL "\"}"
#define M_QL_PAUSED "sluice_queue_paused_connections{queue=\"" QL "\"}"
#define M_QL_NEWEST "sluice_queue_dropped_events_total{queue=\"" QL "\",reason=\"drop_newest\"}"
#define M_QL_OLDEST "sluice_queue_dropped_events_total{queue=\"" QL "\",reason=\"drop_oldest\"}"
#define M_QL_RECV "sluice_source_received_events_total{source=\"xin\"}"

/* One connection sending events [0, n) (blocking: it waits while the
 * source is paused). */
struct ql_sender {
    pthread_t thread;
    int fd;
    uint64_t n;
    atomic_bool done;
    atomic_int err;
};

static void *
ql_sender_main(void *arg)
{
    struct ql_sender *s = arg;
    if (harness_send_events(s->fd, 0, s->n) < 0) {
        atomic_store(&s->err, errno != 0 ? errno : EIO);
    }
    atomic_store(&s->done, true);
    return NULL;
}

/* The config: source xin (tcp) -> queue xq (queue_keys; disk: in the
 * test's directory) -> sink xpeer (tcp to the test's stalled listener). */
static void
ql_conf(int xport, int pport, bool disk, const char *queue_keys)
{
    char x[PATH_MAX * 2], dir[PATH_MAX];
    harness_path(&H, "xq", dir, sizeof(dir));
    snprintf(x, sizeof(x),
             "[source xin]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = " QL
             "\nmax_line_bytes = 16KiB\nrecv_buffer = 64KiB\n"
             "[queue " QL "]\nchunk_size = 64KiB\n%s%s%s%s"
             "[sink xpeer]\ntype = tcp\ntarget = 127.0.0.1:%d\nqueue = " QL "\n",
             xport, disk ? "type = disk\npath = " : "", disk ? dir : "", disk ? "\n" : "",
             queue_keys, pport);
    write_conf(tcp_port, "out.ndjson", "", x);
}

/* Reloads with queue_keys and requires the answer to name the change as
 * applied in place (keys: what the answer lists). */
static void
ql_reload(int xport, int pport, bool disk, const char *queue_keys, const char *keys)
{
    char want[256];
    ql_conf(xport, pport, disk, queue_keys);
    char *body = require_post(200);
    snprintf(want, sizeof(want), "queue \"" QL "\": changed (%s): applied in place", keys);
    HARNESS_REQUIRE(&H, strstr(body, want) != NULL, "answer %s (want %s)", body, want);
    free(body);
}

/* Polls until metric name is at least want. */
static void
ql_at_least(const char *name, double want)
{
    harness_require_metric(&H, admin_port, name, want, true, 20000);
}

/*
 * Queue settings changed live behind a stalled sink (a tcp peer that
 * accepts nothing: the kernel holds its connection, nobody reads), with one
 * connection sending QL_EVENTS numbered events:
 *   memory: capacity 1 MiB (16 chunks); the source pauses with the queue
 *     full; 8 MiB (and drop_newest) refused: more than 4 x what the queue
 *     was made with, nothing applied (the source stays paused); capacity lowered to 8 chunks: applied, the queue keeps what
 *     it holds and nothing is dropped; raised to 32: the source reads on
 *     until the queue is full again (it was woken); when_full = drop_newest:
 *     the paused source is released and the sender finishes, the rest
 *     dropped and counted; back to block with capacity 1 MiB again.
 *   disk: max_size 1 MiB fills (the backlog refuses, the queue fills, the
 *     source pauses); max_size 2 MiB: the backlog takes chunks again and the
 *     source reads on; capacity raised; then drop_newest as above.
 *   oldest (memory): as memory, but when_full = drop_oldest: the writer
 *     evicts the oldest chunks for the paused source, which reads on.
 * Then the peer reads everything: no event twice, and the events missing
 * are exactly the counted drops (written = sent - dropped); under
 * drop_newest every event the daemon received before the drop policy came
 * is in the output (nothing lost by a change).
 */
static void
queue_live(bool disk, bool oldest)
{
    int pport = 0, xport = harness_free_port(SOCK_STREAM);
    int lfd = harness_tcp_listen(4096, &pport);
    char peer[PATH_MAX];
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_gt(xport, 0);
    harness_path(&H, "peer.ndjson", peer, sizeof(peer));
    const char *q0 = disk ? "capacity = 1MiB\nmax_size = 1MiB\n" : "capacity = 1MiB\n";
    ql_conf(xport, pport, disk, q0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, xport, 10000) == HARNESS_WAIT_OK,
                    "source xin does not listen");

    struct ql_sender snd = {.n = QL_EVENTS};
    snd.fd = harness_tcp_connect(xport, 60000);
    ck_assert_int_ge(snd.fd, 0);
    int sndbuf = 65536; /* the kernel holds little of the stream: the sender waits */
    ck_assert_int_eq(setsockopt(snd.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    ck_assert_int_eq(pthread_create(&snd.thread, NULL, ql_sender_main, &snd), 0);

    /* Full: the source paused behind the stalled sink, nothing dropped.
     * A TCP source pauses at 14 of 16 chunks in use (reserve 2) and is
     * woken at 10 (resume_at 6 free): the sink's socket may still take a
     * chunk or three after the pause, so a paused source can sit at 11. */
    ql_at_least(M_QL_PAUSED, 1);
    ql_at_least(M_QL_CHUNKS, 11);
    if (disk) {
        ql_at_least("sluice_queue_disk_refusing{queue=\"" QL "\"}", 1);
        double recv0 = metric(M_QL_RECV);
        ql_reload(xport, pport, disk, "capacity = 1MiB\nmax_size = 2MiB\n", "max_size");
        harness_require_metric(&H, admin_port, "sluice_queue_disk_max_bytes{queue=\"" QL "\"}",
                               2 * 1048576.0, false, 5000);
        /* The backlog takes chunks again: the source reads on. */
        ql_at_least(M_QL_RECV, recv0 + 2000);
        ql_at_least(M_QL_PAUSED, 1);
        /* A max_size the filesystem cannot hold (30000 GiB): named as not changed, and
         * the same file again tries it again (the adopted config does not
         * claim it runs: not "unchanged"); the queue keeps 2 MiB. */
        for (int i = 0; i < 2; i++) {
            ql_conf(xport, pport, disk, "capacity = 1MiB\nmax_size = 30000GiB\n");
            char *body = NULL;
            (void)post_reload(&body);
            HARNESS_REQUIRE(&H, body != NULL && strstr(body, "max_size not changed") != NULL,
                            "reload %d of max_size 30000GiB: %s", i, body != NULL ? body : "");
            free(body);
        }
        harness_require_metric(&H, admin_port, "sluice_queue_disk_max_bytes{queue=\"" QL "\"}",
                               2 * 1048576.0, false, 5000);
        ql_reload(xport, pport, disk, "capacity = 1MiB\nmax_size = 2MiB\n", "max_size");
        ql_reload(xport, pport, disk, "capacity = 2MiB\nmax_size = 2MiB\n", "capacity");
        harness_require_metric(&H, admin_port, M_QL_CAP, 32, false, 5000);
    } else {
        /* More than its rings were sized for: refused before anything changed. */
        ql_conf(xport, pport, disk, "capacity = 8MiB\nwhen_full = drop_newest\n");
        require_refused("capacity 8388608 bytes is more than 4 x the capacity it was made with");
        harness_require_metric(&H, admin_port, M_QL_CAP, 16, false, 5000);
        ql_reload(xport, pport, disk, "capacity = 512KiB\n", "capacity");
        harness_require_metric(&H, admin_port, M_QL_CAP, 8, false, 5000);
        /* Raised: the paused source is woken and fills the new room. */
        ql_reload(xport, pport, disk, "capacity = 2MiB\n", "capacity");
        harness_require_metric(&H, admin_port, M_QL_CAP, 32, false, 5000);
        ql_at_least(M_QL_CHUNKS, 28);
    }
    HARNESS_REQUIRE(&H, metric(M_QL_NEWEST) == 0 && metric(M_QL_OLDEST) == 0,
                    "events dropped under block: %.0f newest, %.0f oldest", metric(M_QL_NEWEST),
                    metric(M_QL_OLDEST));
    HARNESS_REQUIRE(&H, !atomic_load(&snd.done), "the sender was never held back");

    /* A drop policy: the paused source reads on, the sender finishes. */
    double before = metric(M_QL_RECV);
    ql_reload(xport, pport, disk,
              disk     ? "capacity = 2MiB\nmax_size = 2MiB\nwhen_full = drop_newest\n"
              : oldest ? "capacity = 2MiB\nwhen_full = drop_oldest\n"
                       : "capacity = 2MiB\nwhen_full = drop_newest\n",
              "when_full");
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (!atomic_load(&snd.done) && harness_now_ms() < deadline) {
        harness_poll_step(5);
    }
    HARNESS_REQUIRE(&H, atomic_load(&snd.done) && atomic_load(&snd.err) == 0,
                    "the sender was not released by the drop policy (done %d, %s)",
                    (int)atomic_load(&snd.done), strerror(atomic_load(&snd.err)));
    pthread_join(snd.thread, NULL);
    ck_assert_int_eq(harness_wait_sent(snd.fd, harness_ms(10000)), HARNESS_WAIT_OK);
    close(snd.fd);
    /* Every event is received or dropped, and some were dropped. */
    double rcvd = 0, newest = 0;
    deadline = harness_now_ms() + harness_ms(20000);
    do {
        harness_poll_step(5);
        rcvd = metric(M_QL_RECV);
        newest = metric(M_QL_NEWEST);
    } while (rcvd + newest < QL_EVENTS && harness_now_ms() < deadline);
    HARNESS_REQUIRE(&H, rcvd + newest == QL_EVENTS && (newest > 0) == !oldest,
                    "%d sent: %.0f received, %.0f dropped (drop_newest)", QL_EVENTS, rcvd, newest);

    /* Back to block, capacity lowered below what it holds. */
    ql_reload(xport, pport, disk, disk ? "capacity = 1MiB\nmax_size = 2MiB\n" : "capacity = 1MiB\n",
              "capacity, when_full");
    harness_require_metric(&H, admin_port, M_QL_CAP, 16, false, 5000);
    double evicted = metric(M_QL_OLDEST); /* none after the switch back */
    HARNESS_REQUIRE(&H, (evicted > 0) == oldest, "%.0f evicted (drop_oldest)", evicted);

    /* The peer reads everything: written = sent - dropped, in order. */
    int cfd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(cfd, 0);
    FILE *f = fopen(peer, "w");
    ck_assert_ptr_nonnull(f);
    uint64_t want = (uint64_t)(rcvd - evicted), lines = 0;
    deadline = harness_now_ms() + harness_ms(30000);
    while (lines < want && harness_now_ms() < deadline) {
        struct pollfd p = {.fd = cfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        char buf[65536];
        ssize_t got = recv(cfd, buf, sizeof(buf), 0);
        if (got <= 0) {
            break;
        }
        fwrite(buf, 1, (size_t)got, f);
        for (ssize_t i = 0; i < got; i++) {
            lines += buf[i] == '\n';
        }
    }
    fclose(f);
    HARNESS_REQUIRE(&H, lines == want, "the peer got %" PRIu64 " of %" PRIu64 " lines", lines,
                    want);
    harness_require_stop_ok(&H);
    close(cfd);
    close(lfd);
    struct harness_seqs s;
    seqs_of(&s, QL_EVENTS, "peer.ndjson");
    uint64_t seen = harness_seqs_count_range(&s, 0, QL_EVENTS);
    uint64_t kept = harness_seqs_count_range(&s, 0, (uint64_t)before);
    fprintf(stderr,
            "check_reload: queue_live %s: %d sent, %" PRIu64 " written, %.0f dropped "
            "(%s), %.0f received before it\n",
            disk ? "disk" : "memory", QL_EVENTS, seen, oldest ? evicted : newest,
            oldest ? "drop_oldest" : "drop_newest", before);
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0, "peer: %" PRIu64 " bad, %" PRIu64 " dup: %s",
                    s.bad, s.dups, s.first_error);
    HARNESS_REQUIRE(&H, seen + (uint64_t)(newest + evicted) == QL_EVENTS,
                    "%" PRIu64 " written + %.0f + %.0f dropped != %d sent", seen, newest, evicted,
                    QL_EVENTS);
    HARNESS_REQUIRE(&H, oldest || kept == (uint64_t)before,
                    "%" PRIu64 " of the %.0f events received before drop_newest were written: "
                    "lost by a change",
                    kept, before);
    harness_seqs_fini(&s);
}

START_TEST(test_reload_queue_live_memory)
{
    queue_live(false, false);
}
END_TEST

START_TEST(test_reload_queue_live_memory_oldest)
{
    queue_live(false, true);
}
END_TEST

START_TEST(test_reload_queue_live_disk)
{
    queue_live(true, false);
}
END_TEST

/* ---- relp and nats sources added, kept, removed (live) ---------------------------------- */

#define RSYSLOGD "/usr/sbin/rsyslogd"
#define RELP_EVENTS 4000 /* each RELP message waits for its write (source_relp.c) */
#define M_RELP_ACKS "sluice_source_relp_acks_total{source=\"rl\"}"
#define M_RELP_ERRS "sluice_source_relp_session_errors_total{source=\"rl\"}"
#define XRELP "[source rl]\ntype = relp\nlisten = 127.0.0.1:%d\nqueue = xq\ncodec = json\n"

/* rsyslogd (imtcp on feed_port -> omrelp to 127.0.0.1:relp_port), started
 * by the test with a private config and work dir, stopped by PID. */
struct rs {
    pid_t pid;
    int feed_port;
    char log[PATH_MAX];
};

static bool
rs_available(void)
{
    if (access(RSYSLOGD, X_OK) != 0) {
        fprintf(stderr, "check_reload: SKIP relp: rsyslogd not installed (sh scripts/deps.sh "
                        "--test)\n");
        return false;
    }
    return true;
}

static void
rs_start(struct rs *r, int relp_port)
{
    char conf[PATH_MAX], pid[PATH_MAX], work[PATH_MAX];
    r->feed_port = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(r->feed_port, 0);
    harness_path(&H, "rsyslog.conf", conf, sizeof(conf));
    harness_path(&H, "rsyslog.pid", pid, sizeof(pid));
    harness_path(&H, "rsyslog-work", work, sizeof(work));
    harness_path(&H, "rsyslog.log", r->log, sizeof(r->log));
    ck_assert_int_eq(mkdir(work, 0700), 0);
    ck_assert_int_eq(
        harness_write_file(
            conf,
            "global(workDirectory=\"%s\" processInternalMessages=\"on\")\n"
            "module(load=\"imtcp\")\n"
            "module(load=\"omrelp\")\n"
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"out\")\n"
            "template(name=\"raw\" type=\"string\" string=\"%%rawmsg%%\")\n"
            "ruleset(name=\"out\") {\n"
            "    action(type=\"omrelp\" target=\"127.0.0.1\" port=\"%d\" template=\"raw\"\n"
            "           queue.type=\"LinkedList\" queue.size=\"500000\"\n"
            "           action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")\n"
            "}\n",
            work, r->feed_port, relp_port),
        0);
    r->pid = fork();
    ck_assert_int_ne(r->pid, -1);
    if (r->pid == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(RSYSLOGD, "rsyslogd", "-n", "-f", conf, "-i", pid, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    while (!harness_tcp_accepts(r->feed_port) && harness_now_ms() < deadline) {
        ck_assert_msg(waitpid(r->pid, NULL, WNOHANG) == 0, "rsyslogd exited; see %s", r->log);
        harness_poll_step(20);
    }
    ck_assert_msg(harness_tcp_accepts(r->feed_port), "rsyslogd does not listen; see %s", r->log);
}

/* Stops rsyslogd by its PID (it may hold messages for a source that went:
 * SIGKILL after a bounded wait). */
static void
rs_stop(struct rs *r)
{
    if (r->pid <= 0) {
        return;
    }
    (void)kill(r->pid, SIGTERM);
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    while (waitpid(r->pid, NULL, WNOHANG) == 0) {
        if (harness_now_ms() >= deadline) {
            (void)kill(r->pid, SIGKILL);
            (void)waitpid(r->pid, NULL, 0);
            break;
        }
        harness_poll_step(20);
    }
    r->pid = -1;
}

/* Sends events [base, base + n) to rsyslogd's imtcp (one connection). */
static void
rs_feed(struct rs *r, uint64_t base, uint64_t n)
{
    int fd = harness_tcp_connect(r->feed_port, 10000);
    ck_assert_msg(fd >= 0, "connect to rsyslogd: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(fd, base, n), 0);
    close(fd);
}

/*
 * The local ports of the established TCP connections to 127.0.0.1:port
 * (the clients' ends, from /proc/net/tcp: rsyslogd runs in this network
 * namespace), at most max.  Returns how many.
 */
static int
tcp_clients_of(int port, unsigned *ports, int max)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int n = 0;
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned la, lp, ra, rp, st;
        if (sscanf(line, " %*d: %8X:%4X %8X:%4X %2X", &la, &lp, &ra, &rp, &st) == 5 &&
            rp == (unsigned)port && st == 0x01 && n < max) {
            ports[n++] = lp;
        }
    }
    fclose(f);
    return n;
}

/* sluiced with queue xq and its sink but no source feeding it yet, and
 * the main load running. */
static void
x_start(struct load *l)
{
    write_conf_x(0, "");
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "the tcp source does not listen");
    load_start(l);
}

/* Once x.ndjson holds n lines (the stream flows), the source feeding xq
 * is removed (the answer says want); returns the lines in x.ndjson at the
 * answer. */
static uint64_t
x_remove_midstream(uint64_t n, const char *want)
{
    char xfile[PATH_MAX];
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    HARNESS_REQUIRE(&H, harness_wait_lines(&H, xfile, n, 60000, NULL) == HARNESS_WAIT_OK,
                    "the stream into x.ndjson does not flow");
    write_conf_xsrc("");
    require_applied(want);
    return harness_file_lines(xfile);
}

/* Per seq in x.ndjson: exactly [0, n) once each, nothing else. */
static void
x_require_prefix(uint64_t n, uint64_t cap)
{
    struct harness_seqs s;
    seqs_of(&s, cap, "x.ndjson");
    uint64_t in = harness_seqs_count_range(&s, 0, n);
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0 && in == n && s.lines == n,
                    "x: %" PRIu64 " of seqs [0, %" PRIu64 ") seen, %" PRIu64 " lines, %" PRIu64
                    " duplicated, %" PRIu64 " bad: %s",
                    in, n, s.lines, s.dups, s.bad, s.first_error);
    harness_seqs_fini(&s);
}

/*
 * A relp source added under load on a port that is taken: not added, the
 * answer says so (librelp binds in the start); then on a free port, fed by
 * rsyslogd's omrelp: it listens once the reload answers and every event
 * arrives once; then removed while
 * rsyslogd streams: when the reload answers, every message it acknowledged
 * is in the output (a prefix of the stream, each once, as many as its
 * logged counters say), and it no longer listens.  The main load sees
 * nothing of either.
 */
START_TEST(test_reload_relp_added_removed)
{
    struct load l;
    struct rs r = {.pid = -1};
    char xfile[PATH_MAX], section[256];
    if (!rs_available()) {
        return;
    }
    int rport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(rport, 0);
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    x_start(&l);
    /* On a port that is taken: librelp's bind fails in the start, on the
     * producer thread; the answer names it, nothing of it runs. */
    int taken_port = 0, taken = harness_tcp_listen(0, &taken_port);
    ck_assert_int_ge(taken, 0);
    snprintf(section, sizeof(section), XRELP, taken_port);
    write_conf_xsrc(section);
    char *body = NULL;
    (void)post_reload(&body);
    HARNESS_REQUIRE(&H, body != NULL && strstr(body, "source \"rl\": not added") != NULL,
                    "answer %s", body != NULL ? body : "");
    free(body);
    close(taken);
    /* Then on a free one (a change of the source that did not start). */
    snprintf(section, sizeof(section), XRELP, rport);
    write_conf_xsrc(section);
    require_applied("source \"rl\": changed");
    HARNESS_REQUIRE(&H, harness_tcp_accepts(rport), "the relp source does not listen");
    rs_start(&r, rport);
    rs_feed(&r, 0, RELP_EVENTS);
    harness_require_lines(&H, xfile, RELP_EVENTS, 60000);
    x_require_prefix(RELP_EVENTS, 4 * RELP_EVENTS);
    harness_require_metric(&H, admin_port, M_RELP_ACKS, RELP_EVENTS, false, 5000);

    /* Removed mid-stream. */
    rs_feed(&r, RELP_EVENTS, 2 * RELP_EVENTS);
    uint64_t at_answer =
        x_remove_midstream(RELP_EVENTS + 200, "source \"rl\": removed: it stops accepting");
    unsigned long long got = 0;
    HARNESS_REQUIRE(&H, harness_log_counter(&H, "rl", "events", &got) == 0,
                    "no counters logged for the removed relp source");
    HARNESS_REQUIRE(&H, at_answer == got && got < 3 * RELP_EVENTS,
                    "at the answer %" PRIu64 " events in the file, the source received %llu",
                    at_answer, got);
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(rport), "the removed relp source still listens");
    rs_stop(&r);
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    x_require_prefix(got, 4 * RELP_EVENTS);
}
END_TEST

/*
 * A relp source changed to a port that is taken: the old one stops first,
 * the new one cannot start (librelp binds in its start): the answer names
 * it and nothing of it runs.  Reloading the same file tries it again (not
 * "unchanged": the adopted config does not claim it runs) and fails again
 * while the port is taken; once it is free, the same file starts it: it
 * listens and rsyslogd's omrelp stream arrives, every event once; the same
 * file once more is then "unchanged".
 */
START_TEST(test_reload_relp_retried)
{
    struct rs r = {.pid = -1};
    char xfile[PATH_MAX], section[256];
    if (!rs_available()) {
        return;
    }
    int rport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(rport, 0);
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    snprintf(section, sizeof(section), XRELP, rport);
    write_conf_xsrc(section);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, rport, 10000) == HARNESS_WAIT_OK,
                    "the relp source does not listen");
    int taken_port = 0, taken = harness_tcp_listen(0, &taken_port);
    ck_assert_int_ge(taken, 0);
    snprintf(section, sizeof(section), XRELP, taken_port);
    write_conf_xsrc(section);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *body = NULL;
        (void)post_reload(&body);
        HARNESS_REQUIRE(&H,
                        body != NULL && strstr(body, "source \"rl\": not changed") != NULL &&
                            strstr(body, "(unchanged)") == NULL,
                        "attempt %d: answer %s", attempt, body != NULL ? body : "");
        free(body);
    }
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(rport), "the old relp source still listens");
    close(taken);
    require_applied("source \"rl\": did not start at the last reload, tried again");
    HARNESS_REQUIRE(&H, harness_tcp_accepts(taken_port), "the relp source does not listen");
    rs_start(&r, taken_port);
    rs_feed(&r, 0, RELP_EVENTS);
    harness_require_lines(&H, xfile, RELP_EVENTS, 60000);
    harness_require_metric(&H, admin_port, M_RELP_ACKS, RELP_EVENTS, false, 5000);
    require_applied("(unchanged)");
    rs_stop(&r);
    harness_require_stop_ok(&H);
    x_require_prefix(RELP_EVENTS, 2 * RELP_EVENTS);
}
END_TEST

/*
 * A relp source kept (its section unchanged) while other things change
 * (a sink added, a tcp source added): rsyslogd's one RELP session stays the
 * same TCP connection (no reconnect: the same client port, the only one),
 * librelp reports no broken session, and every event arrives once.
 */
START_TEST(test_reload_relp_kept)
{
    struct load l;
    struct rs r = {.pid = -1};
    char xfile[PATH_MAX], section[256], more[PATH_MAX], extra[PATH_MAX + 512];
    if (!rs_available()) {
        return;
    }
    int rport = harness_free_port(SOCK_STREAM), xport = harness_free_port(SOCK_STREAM);
    ck_assert(rport > 0 && xport > 0);
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    harness_path(&H, "more.ndjson", more, sizeof(more));
    snprintf(section, sizeof(section), XRELP, rport);
    write_conf_xsrc(section);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, rport, 10000) == HARNESS_WAIT_OK,
                    "the relp source does not listen");
    load_start(&l);
    rs_start(&r, rport);
    rs_feed(&r, 0, 3 * RELP_EVENTS);
    HARNESS_REQUIRE(&H, harness_wait_lines(&H, xfile, 200, 60000, NULL) == HARNESS_WAIT_OK,
                    "the relp stream does not flow");
    unsigned before[4], after[4];
    /* The harness's probe of the port counts as a broken session. */
    double errs = metric(M_RELP_ERRS);
    int nb = tcp_clients_of(rport, before, 4);
    HARNESS_REQUIRE(&H, nb == 1, "%d RELP connections before the reload", nb);

    /* Another key changes: a sink added to main, a tcp source to xq. */
    int k = snprintf(extra, sizeof(extra), MORE_SINK, more);
    snprintf(extra + k, sizeof(extra) - (size_t)k, "%s" XSRC, section, xport, "");
    write_conf_xsink("", extra);
    char *body = require_post(200);
    HARNESS_REQUIRE(&H,
                    strstr(body, "sink \"more\": added") != NULL &&
                        strstr(body, "source \"extra\": added") != NULL &&
                        strstr(body, "\"rl\"") == NULL,
                    "answer %s", body);
    free(body);
    uint64_t at_reload = harness_file_lines(xfile);
    HARNESS_REQUIRE(&H,
                    harness_wait_lines(&H, xfile, at_reload + 500, 60000, NULL) == HARNESS_WAIT_OK,
                    "the relp stream stopped after the reload");
    int na = tcp_clients_of(rport, after, 4);
    HARNESS_REQUIRE(&H, na == 1 && after[0] == before[0],
                    "RELP connection: client port %u before, %d connection(s) after (first %u): "
                    "a reconnect",
                    before[0], na, na > 0 ? after[0] : 0);
    harness_require_lines(&H, xfile, 3 * RELP_EVENTS, 60000);
    HARNESS_REQUIRE(&H, metric(M_RELP_ERRS) == errs,
                    "librelp reported %.0f broken session(s) since the reload",
                    metric(M_RELP_ERRS) - errs);
    harness_require_metric(&H, admin_port, M_RELP_ACKS, 3 * RELP_EVENTS, false, 5000);
    na = tcp_clients_of(rport, after, 4);
    HARNESS_REQUIRE(&H, na == 1 && after[0] == before[0], "the RELP connection changed");
    rs_stop(&r);
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    x_require_prefix(3 * RELP_EVENTS, 4 * RELP_EVENTS);
}
END_TEST

#define NATS_EVENTS 3000
#define XNATS                                                                                      \
    "[source js]\ntype = nats\nurl = %s\nstream = LOGS\nconsumer = aggs\n"                         \
    "filter_subject = logs.>\nbatch = 64\nqueue = xq\ncodec = json\n"

/*
 * A nats source added under load with a real nats-server (the stream
 * filled before): every event arrives once.  Then removed while it
 * fetches: fetching stops, and every message it did not write is left to
 * the consumer (never delivered, or given back), so written + left =
 * published; added back (the same durable consumer) it delivers the rest:
 * every event exactly once across the two, and the consumer's ack floor
 * reaches the end well before its AckWait (no acknowledgement of a written
 * message was lost at the removal).
 */
START_TEST(test_reload_nats_added_removed)
{
    struct load l;
    struct nu_server ns;
    char url[128], xfile[PATH_MAX], section[512];
    const uint64_t total = 3 * NATS_EVENTS;
    int nport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(nport, 0);
    nu_server_init(&ns, H.dir, "n0", nport, 0, NULL);
    HARNESS_REQUIRE(&H, nu_server_start(&ns, 20000) == 0, "nats-server does not start");
    nu_url(&ns, url, sizeof(url));
    struct nu_stream st = {.name = "LOGS", .subject = "logs.>", .replicas = 1};
    ck_assert_int_eq(nu_stream_create(url, &st), 0);
    ck_assert_int_eq(nu_publish_events(url, "logs.app", 0, NATS_EVENTS), 0);
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    x_start(&l);
    snprintf(section, sizeof(section), XNATS, url);
    write_conf_xsrc(section);
    require_applied("source \"js\": added: bound and started");
    harness_require_lines(&H, xfile, NATS_EVENTS, 60000);
    x_require_prefix(NATS_EVENTS, total);

    /* Removed while it fetches. */
    ck_assert_int_eq(nu_publish_events(url, "logs.app", NATS_EVENTS, 2 * NATS_EVENTS), 0);
    uint64_t written = x_remove_midstream(NATS_EVENTS + 100, "source \"js\": removed");
    uint64_t floor = 0, pending = 0, ack_pending = 0;
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    /* Not written: never delivered (pending), or given back (Nak: the
     * server counts it under ack_pending until it redelivers it). */
    do {
        ck_assert_int_eq(nu_consumer_info(url, "LOGS", "aggs", &floor, &pending, &ack_pending), 0);
        if (written + pending + ack_pending == total) {
            break;
        }
        harness_poll_step(50);
    } while (harness_now_ms() < deadline);
    HARNESS_REQUIRE(&H, written + pending + ack_pending == total,
                    "after the removal: %" PRIu64 " written, %" PRIu64 " not delivered, %" PRIu64
                    " delivered and not acknowledged (ack floor %" PRIu64 "), %" PRIu64
                    " published",
                    written, pending, ack_pending, floor, total);
    HARNESS_REQUIRE(&H, pending + ack_pending > 0,
                    "the source fetched everything before the removal: the test saw no removal "
                    "mid-stream");
    /* Added back: the rest. */
    write_conf_xsrc(section);
    require_applied("source \"js\": added");
    harness_require_lines(&H, xfile, total, 60000);
    /* Every message acknowledged, well within the consumer's AckWait (30 s):
     * a written message whose acknowledgement the removal lost would hold
     * the floor back until then (and come again). */
    deadline = harness_now_ms() + harness_ms(10000);
    do {
        ck_assert_int_eq(nu_consumer_info(url, "LOGS", "aggs", &floor, &pending, &ack_pending), 0);
        if (floor == total && pending == 0 && ack_pending == 0) {
            break;
        }
        harness_poll_step(50);
    } while (harness_now_ms() < deadline);
    HARNESS_REQUIRE(&H, floor == total && pending == 0 && ack_pending == 0,
                    "ack floor %" PRIu64 " of %" PRIu64 ", %" PRIu64 " not delivered, %" PRIu64
                    " not acknowledged",
                    floor, total, pending, ack_pending);
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    struct harness_seqs s;
    seqs_of(&s, total, "x.ndjson");
    uint64_t in = harness_seqs_count_range(&s, 0, total);
    HARNESS_REQUIRE(&H, s.bad == 0 && s.dups == 0 && in == total,
                    "x: %" PRIu64 " of %" PRIu64 " seqs, %" PRIu64 " duplicated, %" PRIu64
                    " bad: %s",
                    in, total, s.dups, s.bad, s.first_error);
    harness_seqs_fini(&s);
    nu_server_signal(&ns, SIGTERM);
}
END_TEST

/*
 * A nats source added whose servers accept TCP and never speak NATS (two
 * urls): libnats' connect waits for each server's INFO up to its connect
 * timeout (2 s), so a connect on a producer or the main thread would hold
 * the reload's answer for seconds (2 producer threads x 2 urls); the
 * instances' own threads connect: the answer comes at once and the main
 * load never stops.  Removed again, it goes within a bound.
 */
START_TEST(test_reload_nats_silent_server)
{
    struct load l;
    char section[512], urls[128];
    int p1 = 0, p2 = 0, s1 = harness_tcp_listen(0, &p1), s2 = harness_tcp_listen(0, &p2);
    ck_assert(s1 >= 0 && s2 >= 0);
    snprintf(urls, sizeof(urls), "nats://127.0.0.1:%d,nats://127.0.0.1:%d", p1, p2);
    x_start(&l);
    snprintf(section, sizeof(section), XNATS, urls);
    write_conf_xsrc(section);
    int64_t t0 = harness_now_ms();
    require_applied("source \"js\": added");
    int64_t took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, took < harness_ms(1500),
                    "the reload took %" PRId64 " ms: a connect held a producer or the main thread",
                    took);
    load_wait(&l, 100);
    write_conf_xsrc("");
    require_applied("source \"js\": removed");
    load_wait(&l, 50);
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
    close(s1);
    close(s2);
}
END_TEST

/* ---- a nats sink changed: its pending messages handed over -------------------------------- */

/* The nats sink on queue main: one batch per chunk, a small publish window
 * (the queue's other chunks wait in its ring, unpublished, while a server
 * does not answer). */
#define NATS_SINK                                                                                  \
    "[sink js]\ntype = nats\nqueue = main\nurl = %s\nsubject = logs.%s\nstream = LOGS\n"           \
    "message = batch\nmax_inflight = 16\nack_timeout = 2s\nretry_initial = 50ms\n"                 \
    "retry_max = 500ms\n%s"
#define NATS_HANDED "over to its new config"

/* A nats-server started by the test with stream LOGS (logs.>, a 2 min
 * duplicate window); its url in url. */
static void
nh_server(struct nu_server *ns, const char *name, char *url, size_t len)
{
    int port = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(port, 0);
    nu_server_init(ns, H.dir, name, port, 0, NULL);
    HARNESS_REQUIRE(&H, nu_server_start(ns, 20000) == 0, "nats-server %s does not start (%s)", name,
                    ns->log);
    nu_url(ns, url, len);
    struct nu_stream st = {
        .name = "LOGS", .subject = "logs.>", .replicas = 1, .dup_window_ms = 120000};
    HARNESS_REQUIRE(&H, nu_stream_create(url, &st) == 0, "stream LOGS on %s", url);
}

/* Reloads with the nats sink at url and subject (keys: more sink lines);
 * the answer must say it was replaced (handed over), within 5 s. */
static void
nh_reload(const char *url, const char *subject, const char *keys, const char *what)
{
    char extra[1024], want[128];
    snprintf(extra, sizeof(extra), NATS_SINK, url, subject, keys);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", extra);
    snprintf(want, sizeof(want), "sink \"js\": changed (%s): replaced", what);
    int64_t t0 = harness_now_ms();
    require_applied(want);
    int64_t took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, took < harness_ms(5000), "the reload took %" PRId64 " ms", took);
}

/* The stream LOGS on url read back into name (lines of the test events). */
static void
nh_dump(struct harness_seqs *s, uint64_t total, const char *url, const char *name)
{
    char path[PATH_MAX];
    int64_t got = 0;
    harness_path(&H, name, path, sizeof(path));
    HARNESS_REQUIRE(&H, nu_stream_dump(url, "LOGS", path, &got, 60000) == 0,
                    "dump of %s: %" PRId64 " messages read", url, got);
    ck_assert_int_eq(harness_seqs_init(s, total), 0);
    ck_assert_int_eq(harness_seqs_add_file(s, path, true), 0);
}

/*
 * A nats sink changed under load, twice: its subject on the same server
 * (acknowledgements flowing), then its url to a second server while the
 * first is stopped (SIGSTOP: it holds the connection and acknowledges
 * nothing).  Each change is a replacement that hands the chunks over: what
 * was published and not acknowledged is republished under the same message
 * ids, what was never published follows; the reload is answered at once.
 * Read back from JetStream: every event the edge's file holds is in A's or
 * B's stream, none twice in one stream, nothing given up (A also holds
 * what it read before it stopped and B got again: counted, a second
 * server cannot know it).  The old behaviour (the changed sink succeeded
 * by a new one while it drains) answers "a new one takes every chunk", and
 * its drain into the stopped server gives its chunks up after
 * shutdown_timeout: lost.
 */
START_TEST(test_reload_nats_handover)
{
    struct nu_server a, b;
    struct load l;
    char ua[128], ub[128], extra[1024];
    nh_server(&a, "na", ua, sizeof(ua));
    nh_server(&b, "nb", ub, sizeof(ub));
    snprintf(extra, sizeof(extra), NATS_SINK, ua, "a", "");
    start_daemon_with("shutdown_timeout = 30s\n", extra);
    load_start(&l);
    load_wait(&l, 200);
    nh_reload(ua, "b", "", "subject"); /* the same server: acknowledgements flow */
    load_wait(&l, 200);
    nu_server_signal(&a, SIGSTOP);
    load_wait(&l, 100); /* chunks in flight to A and unpublished in the ring */
    nh_reload(ub, "b", "", "url");
    HARNESS_REQUIRE(&H, harness_log_has(&H, NATS_HANDED), "nothing was handed over");
    load_wait(&l, 200);
    const char *outs[] = {"out.ndjson"};
    uint64_t total = load_finish(&l, outs, 1); /* drains: every chunk acknowledged by B */
    nu_server_signal(&a, SIGCONT);
    HARNESS_REQUIRE(&H, !harness_log_has(&H, "gave up"), "the edge gave events up");
    struct harness_seqs file, fa, fb;
    seqs_of(&file, total, "out.ndjson");
    nh_dump(&fa, total, ua, "a.ndjson");
    nh_dump(&fb, total, ub, "b.ndjson");
    (void)handover_tally(&file, &fa, &fb, total, "nats hand-over", "stream");
    nu_server_signal(&a, SIGTERM);
    nu_server_signal(&b, SIGTERM);
}
END_TEST

/*
 * What is not handed over is said: a changed stream (its duplicate filter
 * would not know what the old one stored) or sender_id is a new sink while
 * the old one drains, and the answer says why.
 */
START_TEST(test_reload_nats_handover_refused)
{
    struct nu_server a;
    char ua[128], extra[1024];
    nh_server(&a, "na", ua, sizeof(ua));
    struct nu_stream st = {
        .name = "OTHER", .subject = "other.>", .replicas = 1, .dup_window_ms = 120000};
    HARNESS_REQUIRE(&H, nu_stream_create(ua, &st) == 0, "stream OTHER");
    snprintf(extra, sizeof(extra), NATS_SINK, ua, "a", "");
    start_daemon_with("shutdown_timeout = 30s\n", extra);
    snprintf(extra, sizeof(extra), NATS_SINK, ua, "a", "sender_id = other\n");
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", extra);
    require_applied("sink \"js\": changed (sender_id): a new one takes every chunk from now on; "
                    "the old one drains what it holds (at most shutdown_timeout) (no hand-over: "
                    "its sender_id changed");
    char *section = extra;
    snprintf(section, sizeof(extra),
             "[sink js]\ntype = nats\nqueue = main\nurl = %s\nsubject = other.x\nstream = OTHER\n"
             "message = batch\nmax_inflight = 16\nack_timeout = 2s\nretry_initial = 50ms\n"
             "retry_max = 500ms\nsender_id = other\n",
             ua);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", section);
    require_applied("(no hand-over: its stream changed");
    nu_server_signal(&a, SIGTERM);
}
END_TEST

/* ---- a nats sink on a disk queue changed: handed over on the same reader ------------------ */

/* Queue xq on disk (directory xq in H) with source "extra" (the extra load,
 * NX connections), a file sink xfile (x.ndjson: what the queue took) and the
 * nats sink js, whose subject and max_inflight change. */
#define NATS_DISK                                                                                  \
    "[queue xq]\ntype = disk\npath = %s\n"                                                       \
    "[source extra]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = xq\n"                           \
    "[sink xfile]\ntype = file\npath = %s\nqueue = xq\n"                                         \
    "[sink js]\ntype = nats\nqueue = xq\nurl = %s\nsubject = logs.%s\nstream = LOGS\n"           \
    "message = batch\nmax_inflight = %d\nack_timeout = 2s\nretry_initial = 50ms\n"               \
    "retry_max = 500ms\n"

static void
nhd_conf(int xport, const char *url, const char *subject, int max_inflight)
{
    char extra[3 * PATH_MAX + 1024], dir[PATH_MAX], xfile[PATH_MAX];
    harness_path(&H, "xq", dir, sizeof(dir));
    harness_path(&H, "x.ndjson", xfile, sizeof(xfile));
    snprintf(extra, sizeof(extra), NATS_DISK, dir, xport, xfile, url, subject, max_inflight);
    write_conf(tcp_port, "out.ndjson", "shutdown_timeout = 30s\n", extra);
}

/* Reloads with js at subject and max_inflight; the answer must say it was
 * replaced (handed over: what changed in what), within 5 s. */
static void
nhd_reload(int xport, const char *url, const char *subject, int max_inflight, const char *what)
{
    char want[128];
    nhd_conf(xport, url, subject, max_inflight);
    snprintf(want, sizeof(want),
             "sink \"js\": changed (%s): replaced; the new one takes over what the old one had "
             "not written and resends",
             what);
    int64_t t0 = harness_now_ms();
    require_applied(want);
    int64_t took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, took < harness_ms(5000), "the reload took %" PRId64 " ms", took);
}

/* The messages the hand-overs logged as published and not acknowledged
 * (republished under the same ids), summed. */
static uint64_t
nhd_republished(void)
{
    static const char key[] = " over to its new config (";
    char *log = harness_log_tail(&H, 4 << 20);
    uint64_t sum = 0;
    for (const char *p = strstr(log, key); p != NULL; p = strstr(p + 1, key)) {
        unsigned long long m = 0;
        if (sscanf(p + sizeof(key) - 1, "%llu message(s) published", &m) == 1) {
            sum += m;
        }
    }
    free(log);
    return sum;
}

struct nhd_stream {
    const char *url;
    uint64_t n;
    int64_t next_ms; /* the next dump (the stream is read whole each time) */
};

/* Every seq of [0, n) is in the stream (read back at most every 250 ms). */
static bool
nhd_all_in_stream(void *arg)
{
    struct nhd_stream *x = arg;
    if (harness_now_ms() < x->next_ms) {
        return false;
    }
    x->next_ms = harness_now_ms() + 250;
    char path[PATH_MAX];
    int64_t got = 0;
    struct harness_seqs s;
    harness_path(&H, "poll.ndjson", path, sizeof(path));
    if (nu_stream_dump(x->url, "LOGS", path, &got, 20000) < 0 || harness_seqs_init(&s, x->n) < 0) {
        return false;
    }
    (void)harness_seqs_add_file(&s, path, false);
    bool all = harness_seqs_count_range(&s, 0, x->n) == x->n;
    harness_seqs_fini(&s);
    return all;
}

/*
 * The message ids of the count messages in the stream (ids_path, one a
 * line): a disk queue's in batch mode, "SENDER:0:QUEUE:CRC:SEQ:0", and the
 * records' numbers SEQ are 1..count, each once: the numbering went on
 * across the hand-overs (a successor that numbered afresh would repeat 1,
 * 2, ...; one that skipped would leave a gap).
 */
static void
nhd_require_numbering(const char *ids_path, uint64_t count)
{
    FILE *f = fopen(ids_path, "r");
    ck_assert_ptr_nonnull(f);
    unsigned char *seen = calloc(count + 1, 1);
    ck_assert_ptr_nonnull(seen);
    char line[512], first_bad[512] = "";
    uint64_t n = 0, bad = 0, twice = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        line[strcspn(line, "\n")] = '\0';
        char *idx = strrchr(line, ':'), *end = NULL;
        uint64_t seq = 0;
        if (idx != NULL && strcmp(idx, ":0") == 0) {
            *idx = '\0';
            char *p = strrchr(line, ':');
            seq = p != NULL ? strtoull(p + 1, &end, 10) : 0;
            *idx = ':';
        }
        if (end == NULL || end != idx || seq == 0 || seq > count) {
            bad++;
            if (*first_bad == '\0') {
                snprintf(first_bad, sizeof(first_bad), "%s", line);
            }
        } else if (seen[seq]++ > 0) {
            twice++;
        }
    }
    fclose(f);
    free(seen);
    HARNESS_REQUIRE(&H, n == count && bad == 0 && twice == 0,
                    "message ids: %" PRIu64 " of %" PRIu64 " read, %" PRIu64
                    " record number(s) twice, %" PRIu64 " not in 1..%" PRIu64 " (first: \"%s\")",
                    n, count, twice, bad, count, first_bad);
}

/*
 * A nats sink on a disk queue changed under load, twice: its subject on a
 * live server (acknowledgements flowing), then its max_inflight while the
 * server is stopped (SIGSTOP: it holds the connection and acknowledges
 * nothing), so the old sink has messages published and not acknowledged.
 * Each change is answered "replaced" at once: the new sink keeps the
 * reader (its position in the queue's state, under the sink's name), takes
 * the copied records in flight and the record numbering, and republishes
 * what was not acknowledged under the same message ids; the server, resumed,
 * stores what the old connection had sent and drops the republished copies
 * as duplicates.  Read back from the one stream: every event the disk
 * queue took (x.ndjson, every one once) is in it exactly once, and the
 * messages' ids number the records 1..N, each once.  Without
 * the disk hand-over (the nats sink's refusal "it is on a disk queue")
 * each of these reloads is refused (restart).
 */
START_TEST(test_reload_nats_handover_disk)
{
    struct nu_server a;
    struct load l;
    struct xload x;
    char ua[128], xfile[PATH_MAX];
    nh_server(&a, "na", ua, sizeof(ua));
    int xport = harness_free_port(SOCK_STREAM);
    ck_assert_int_gt(xport, 0);
    nhd_conf(xport, ua, "a", 16);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, xport, 10000) == HARNESS_WAIT_OK,
                    "the disk queue's source does not listen");
    load_start(&l);
    xload_start(&x, xport, 0);
    xload_wait(&x, 300);
    nhd_reload(xport, ua, "b", 16, "subject"); /* acknowledgements flow */
    xload_wait(&x, 300);
    nu_server_signal(&a, SIGSTOP);
    xload_wait(&x, 100); /* messages in flight to A, more records in the queue */
    nhd_reload(xport, ua, "b", 32, "max_inflight");
    HARNESS_REQUIRE(&H, harness_log_has(&H, NATS_HANDED), "nothing was handed over");
    xload_wait(&x, 100);
    nu_server_signal(&a, SIGCONT);
    xload_wait(&x, 300);
    xload_stop(&x);
    uint64_t xrounds = atomic_load(&x.rounds), total = xrounds * NX;
    harness_require_lines(&H, harness_path(&H, "x.ndjson", xfile, sizeof(xfile)), total, 20000);
    /* A disk queue keeps what is unsent across a stop: wait for the stream. */
    struct nhd_stream all = {.url = ua, .n = total};
    HARNESS_REQUIRE(&H, harness_poll(&H, harness_ms(30000), nhd_all_in_stream, &all) ==
                            HARNESS_WAIT_OK,
                    "not every event of the disk queue reached the stream");
    double dups = metric("sluice_sink_duplicate_publishes_total{sink=\"js\"}");
    uint64_t republished = nhd_republished();
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1); /* the main load: every event once; stops the daemon */
    HARNESS_REQUIRE(&H, x_runs(xrounds, true, true) == total, "x: not every event");
    HARNESS_REQUIRE(&H, !harness_log_has(&H, "gave up"), "the edge gave events up");
    struct harness_seqs fs;
    char msg[512], path[PATH_MAX], ids[PATH_MAX];
    int64_t got = 0;
    harness_path(&H, "a.ndjson", path, sizeof(path));
    harness_path(&H, "a.ids", ids, sizeof(ids));
    HARNESS_REQUIRE(&H, nu_stream_dump_ids(ua, "LOGS", path, ids, &got, 60000) == 0,
                    "dump of %s: %" PRId64 " messages read", ua, got);
    ck_assert_int_eq(harness_seqs_init(&fs, total), 0);
    ck_assert_int_eq(harness_seqs_add_file(&fs, path, true), 0);
    bool once = harness_seqs_exactly_once(&fs, msg, sizeof(msg));
    fprintf(stderr,
            "check_reload: nats hand-over, disk queue: %" PRIu64 " events, %" PRIu64
            " in the stream; %" PRIu64 " message(s) republished, %.0f dropped as duplicates\n",
            total, fs.lines, republished, dups);
    harness_seqs_fini(&fs);
    HARNESS_REQUIRE(&H, once, "the stream: %s", msg);
    nhd_require_numbering(ids, (uint64_t)got);
    HARNESS_REQUIRE(&H, republished > 0, "nothing was in flight at the second reload");
    nu_server_signal(&a, SIGTERM);
}
END_TEST

/* ---- descriptors and memory over many reloads ------------------------------------------- */

#define M_QALLOC "sluice_queue_allocated_bytes{queue=\"main\"}"

/* The descriptor count once it is steady (the admin connection of the last
 * request may still be closing), and the RSS. */
static long
fd_and_rss(pid_t pid, long *rss)
{
    long n = harness_fd_count(pid);
    int64_t deadline = harness_now_ms() + harness_ms(5000);
    while (harness_now_ms() < deadline) {
        harness_poll_step(50);
        long m = harness_fd_count(pid);
        if (m == n) {
            break;
        }
        n = m;
    }
    *rss = harness_vmrss_kib(pid);
    return n;
}

/* Many reloads (SLUICE_RELOADS, default 1000, as issue 15 asks; a quarter
 * replace the sink, one in eight adds a sink and a tcp source and the next
 * such one removes them): descriptors and RSS flat, every event once.
 * 1000 in every build: measured on 2 cores at load 7-12, this test alone
 * takes 2.6-4.3 s plain, 7.4-11.4 s under ASan and 12.3-15.9 s under TSan
 * (200: 1.4-2.2, 3.2-3.8 and 2.4-6.0 s); the TCase "reload" 23 s plain
 * (24 s with 200: noise), 43 s ASan (32 s), 75 s TSan (63 s).  At most
 * ~12 s more per sanitizer run, so those need no smaller count. */
START_TEST(test_reload_flat)
{
    struct load l;
    const char *env = getenv("SLUICE_RELOADS"); // NOLINT(concurrency-mt-unsafe)
    int n = env != NULL ? atoi(env) : 1000;
    long rss0, rss1;
    start_daemon();
    load_start(&l);
    for (int i = 0; i < 20; i++) { /* warm up: allocator pools, first reopen */
        free(require_post(200));
    }
    long fd0 = fd_and_rss(H.pid, &rss0);
    double q0 = metric(M_QALLOC);
    /* Reloads that replace the sink (its batch_timeout alternates, the
     * same file: the new one opens it while the load goes on), identical
     * ones, SIGHUPs among them: nothing may pile up or get lost. */
    char more[PATH_MAX + 256];
    /* Held for the whole test (harness_reserve_port): "extra" listens on it
     * only between every eighth reload and the next, and a port left free
     * meanwhile went once to a test running beside this one; its daemon's
     * listener and "extra" then shared the port (SO_REUSEPORT, both root),
     * and "extra" read 703 of that test's events (11 connections): the
     * same bytes as this test's events 0..63 of those connections,
     * counted here as 703 duplicated. */
    int xport = harness_reserve_port(&H);
    ck_assert_int_gt(xport, 0);
    {
        char mp[PATH_MAX];
        harness_path(&H, "more.ndjson", mp, sizeof(mp));
        snprintf(more, sizeof(more),
                 "[sink more]\ntype = file\npath = %s\nqueue = main\n"
                 "[source extra]\ntype = tcp\nlisten = 127.0.0.1:%d\nqueue = main\n",
                 mp, xport);
    }
    for (int i = 0; i < n; i++) {
        /* i % 8: 1, 5 a replaced sink; 3 back; 7 a sink and a source added (removed at 1) */
        if (i % 2 == 1) {
            write_conf(tcp_port, "out.ndjson", "",
                       i % 4 == 1   ? "batch_timeout = 1ms\n"
                       : i % 8 == 7 ? more
                                    : "");
        }
        free(require_post(200));
        if (i % 50 == 0) {
            ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
        }
    }
    write_conf(tcp_port, "out.ndjson", "", ""); /* as at the start */
    free(require_post(200));
    HARNESS_REQUIRE(&H, !harness_tcp_accepts(xport), "the added source still listens");
    harness_require_metric(&H, admin_port, M_OK, 21 + n + (n + 49) / 50, false, 10000);
    /* Nothing of this test connects to "extra" (the probe above is refused:
     * it was removed).  A connection it counted came from another process
     * on the same port, and its events would be counted below as this
     * test's duplicates: say so here. */
    unsigned long long xconns = harness_log_counter_sum(&H, "extra", "connections");
    HARNESS_REQUIRE(&H, xconns == 0,
                    "source \"extra\" (port %d) accepted %llu connection(s) this test never made: "
                    "another process's clients shared its port",
                    xport, xconns);
    long fd1 = fd_and_rss(H.pid, &rss1);
    /* The queue's chunks are allocated as it first fills and kept: a
     * deeper backlog under a loaded machine is RSS, not a leak. */
    long qgrow = (long)((metric(M_QALLOC) - q0) / 1024);
    fprintf(stderr,
            "check_reload: %d reloads: fds %ld -> %ld, RSS %ld -> %ld KiB, of which %ld KiB "
            "more queue chunks\n",
            n, fd0, fd1, rss0, rss1, qgrow);
    HARNESS_REQUIRE(&H, fd1 == fd0, "descriptors %ld -> %ld over %d reloads", fd0, fd1, n);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* ASan's quarantine and TSan's shadow memory grow with every allocation:
     * the bound is for the plain build. */
    fprintf(stderr, "check_reload: sanitizer build: RSS bound not checked\n");
#else
    HARNESS_REQUIRE(&H, q0 >= 0 && rss1 - rss0 - qgrow < 2048,
                    "RSS %ld -> %ld KiB over %d reloads (%ld KiB more queue chunks)", rss0, rss1,
                    n, qgrow);
#endif
    const char *outs[] = {"out.ndjson"};
    load_finish(&l, outs, 1);
}
END_TEST

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("reload");
    TCase *tc = harness_tcase(s, "reload", 120, setup, teardown);
    tcase_add_test(tc, test_reload_identical);
    tcase_add_test(tc, test_reload_broken);
    tcase_add_test(tc, test_reload_refused_changes);
    tcase_add_test(tc, test_reload_sink_replaced);
    tcase_add_test(tc, test_reload_forward_target);
    tcase_add_test(tc, test_reload_sink_added);
    tcase_add_test(tc, test_reload_sink_removed);
    tcase_add_test(tc, test_reload_sink_removed_gives_up);
    tcase_add_test(tc, test_reload_sink_type_changed);
    tcase_add_test(tc, test_reload_sluice_sink_changed);
    tcase_add_test(tc, test_reload_disk_queue_sinks);
    tcase_add_test(tc, test_reload_source_added);
    tcase_add_test(tc, test_reload_source_removed);
    tcase_add_test(tc, test_reload_source_port_changed);
    tcase_add_test(tc, test_reload_source_port_shared);
    tcase_add_test(tc, test_reload_unix_added_removed);
    tcase_add_test(tc, test_reload_unix_path_changed);
    tcase_add_test(tc, test_reload_unix_dgram_added_removed);
    tcase_add_test(tc, test_reload_tls_source_changed);
    tcase_add_test(tc, test_reload_sluice_source);
    tcase_add_test(tc, test_reload_sighup_storm);
    tcase_add_test(tc, test_reload_flat);
    TCase *tr = harness_tcase(s, "relp_nats", 120, setup, teardown);
    tcase_add_test(tr, test_reload_relp_added_removed);
    tcase_add_test(tr, test_reload_relp_kept);
    tcase_add_test(tr, test_reload_nats_added_removed);
    tcase_add_test(tr, test_reload_nats_silent_server);
    TCase *tq = harness_tcase(s, "queue", 120, setup, teardown);
    tcase_add_test(tq, test_reload_queue_added);
    tcase_add_test(tq, test_reload_queue_added_disk);
    tcase_add_test(tq, test_reload_queue_removed);
    tcase_add_test(tq, test_reload_queue_removed_disk);
    tcase_add_test(tq, test_reload_queue_removed_disk_kept);
    tcase_add_test(tq, test_reload_queue_changed_in_place);
    tcase_add_test(tq, test_reload_queue_change_refused);
    TCase *tt = harness_tcase(s, "relp_retry", 120, setup, teardown);
    tcase_add_test(tt, test_reload_relp_retried);
    TCase *tl = harness_tcase(s, "queue_live", 120, setup, teardown);
    tcase_add_test(tl, test_reload_queue_live_memory);
    tcase_add_test(tl, test_reload_queue_live_memory_oldest);
    tcase_add_test(tl, test_reload_queue_live_disk);
    TCase *th = harness_tcase(s, "handover", 120, setup, teardown);
    tcase_add_test(th, test_reload_sluice_handover_dead_target);
    tcase_add_test(th, test_reload_sluice_handover_live);
    TCase *thd = harness_tcase(s, "handover_disk", 120, setup, teardown);
    tcase_add_test(thd, test_reload_sluice_handover_disk);
    tcase_add_test(thd, test_reload_sluice_handover_disk_killed);
    TCase *tds = harness_tcase(s, "disk_succession", 120, setup, teardown);
    tcase_add_test(tds, test_reload_disk_sink_type_changed);
    tcase_add_test(tds, test_reload_disk_sink_type_changed_killed);
    tcase_add_test(tds, test_reload_disk_sink_sender_changed);
    TCase *tn = harness_tcase(s, "nats_handover", 120, setup, teardown);
    tcase_add_test(tn, test_reload_nats_handover);
    tcase_add_test(tn, test_reload_nats_handover_refused);
    TCase *tnd = harness_tcase(s, "nats_handover_disk", 120, setup, teardown);
    tcase_add_test(tnd, test_reload_nats_handover_disk);
    return harness_run_suite(s);
}
