/*
 * Integration tests for TLS on the hops that leave the host, on real
 * daemons with the certificates tests/certs.sh makes:
 *
 *   edge:       tcp source → memory queue → sluice sink (tls = on, client cert)
 *   aggregator: sluice source (tls = on, client certs required) → file sink
 *
 *   - mutual TLS: every event reaches the aggregator's file exactly once
 *     (sequence numbers), both ends count their handshakes, and a client
 *     with a certificate from another CA is refused by the aggregator and
 *     counted (reason untrusted) while the edge keeps flowing; the sluice
 *     source's allow list closes a connection from 127.0.0.3 before any
 *     read (counted), and add_fields = peer_cert carries edge1's subject;
 *   - a server certificate with the wrong name: the edge's sink refuses it
 *     (counted reason name, sluice_sink_up 0), the events stay queued on
 *     the edge and nothing reaches the aggregator; once the aggregator
 *     serves the right certificate (files replaced, SIGHUP) they all
 *     arrive, exactly once;
 *   - the tcp sink with tls = on into a TLS tcp source: exactly once;
 *   - the tcp sink's client certificate refused (another CA, then a name
 *     not allowed): refused inside the handshake (TLS 1.2), counted on
 *     both ends, nothing sent; fixed (files, SIGHUP): every event exactly
 *     once, none lost to the refusals;
 *   - rsyslog's omfwd with the gtls stream driver (octet-counted) into a TLS
 *     tcp source: exactly once.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/time.h>

#include "harness.h"
#include "peers.h"
#include "../certs.h"

#include <check.h>

static struct harness E; /* the edge */
static struct harness A; /* the aggregator */
static int edge_port, edge_admin, agg_port, agg_admin;
static char agg_out[PATH_MAX];
static const char *edge_leaf; /* the edge's client certificate: certs/<edge_leaf>.pem */

#define N_EVENTS 20000


static void
setup(void)
{
    ck_assert_msg(harness_init(&E) == 0, "mkdtemp: %s", strerror(errno));
    ck_assert_msg(harness_init(&A) == 0, "mkdtemp: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    harness_path(&A, "out.ndjson", agg_out, sizeof(agg_out));
    agg_port = harness_free_port(SOCK_STREAM);
    agg_admin = harness_free_port(SOCK_STREAM);
    edge_port = harness_free_port(SOCK_STREAM);
    edge_admin = harness_free_port(SOCK_STREAM);
    ck_assert(agg_port > 0 && agg_admin > 0 && edge_port > 0 && edge_admin > 0);
    edge_leaf = "client";
}

static void
teardown(void)
{
    harness_fini(&E);
    harness_fini(&A);
}

/* Copies certs/<name>.pem and .key to certs/<to>.pem and .key (rename: a
 * reload never sees half a file). */
static void
copy_cert(const char *name, const char *to)
{
    char cmd[PATH_MAX * 6];
    snprintf(cmd, sizeof(cmd),
             "cp %s/%s.pem %s/%s.pem.new && mv %s/%s.pem.new %s/%s.pem && "
             "cp %s/%s.key %s/%s.key.new && mv %s/%s.key.new %s/%s.key",
             certs, name, certs, to, certs, to, certs, to, certs, name, certs, to, certs, to,
             certs, to);
    ck_assert_int_eq(system(cmd), 0);
}

/* The aggregator's certificate: certs/live.pem and live.key. */
static void
serve_cert(const char *name)
{
    copy_cert(name, "live");
}

/* The aggregator: a sluice or tcp source (type) with TLS, serving
 * certs/live.pem, client certificates required, only edge1 allowed; more
 * lines for the source in extra. */
static void
agg_start_with(const char *type, const char *extra)
{
    ck_assert_int_eq(harness_write_config(&A,
                                          "[daemon]\n"
                                          "producer_threads = 2\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source edges]\n"
                                          "type = %s\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "max_line_bytes = 8KiB\n"
                                          "tls = on\n"
                                          "tls_cert_file = %s/live.pem\n"
                                          "tls_key_file = %s/live.key\n"
                                          "tls_ca_file = %s/ca.pem\n"
                                          "tls_client_auth = required\n"
                                          "tls_allowed_names = edge1\n"
                                          "%s"
                                          "[queue main]\n"
                                          "chunk_size = 64KiB\n"
                                          "[sink archive]\n"
                                          "type = file\n"
                                          "queue = main\n"
                                          "path = %s\n",
                                          agg_admin, type, agg_port, certs, certs, certs, extra,
                                          agg_out),
                     0);
    ck_assert_int_eq(harness_start(&A, NULL), 0);
    HARNESS_REQUIRE(&A, harness_wait_tcp(&A, agg_port, 10000) == HARNESS_WAIT_OK,
                    "aggregator not listening");
}

static void
agg_start(const char *type)
{
    agg_start_with(type, "");
}

/* The edge: a plain tcp source, a sink of type (sluice or tcp) with TLS
 * and the client certificate edge1. */
static void
edge_start(const char *type, const char *sink_extra)
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
                                          "capacity = 16MiB\n"
                                          "chunk_size = 64KiB\n"
                                          "[sink forward]\n"
                                          "type = %s\n"
                                          "queue = main\n"
                                          "target = 127.0.0.1:%d\n"
                                          "retry_initial = 20ms\n"
                                          "retry_max = 200ms\n"
                                          "tls = on\n"
                                          "tls_ca_file = %s/ca.pem\n"
                                          "tls_cert_file = %s/%s.pem\n"
                                          "tls_key_file = %s/%s.key\n"
                                          "%s",
                                          edge_admin, edge_port, type, agg_port, certs, certs,
                                          edge_leaf, certs, edge_leaf, sink_extra),
                     0);
    ck_assert_int_eq(harness_start(&E, NULL), 0);
    HARNESS_REQUIRE(&E, harness_wait_tcp(&E, edge_port, 10000) == HARNESS_WAIT_OK,
                    "edge not listening");
}

/* Sends events [from, from + n) to the edge and waits until the kernel sent them. */
static void
send_to_edge(uint64_t from, uint64_t n)
{
    int fd = harness_tcp_connect(edge_port, 30000);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send_events(fd, from, n), 0);
    ck_assert_int_eq(harness_wait_sent(fd, 30000), HARNESS_WAIT_OK);
    close(fd);
}

static double
metric(int port, const char *name)
{
    double v = -1;
    (void)harness_metric_get(port, name, &v);
    return v;
}

static bool
edge_drained(void *arg)
{
    (void)arg;
    return metric(edge_admin, "sluice_queue_chunks{queue=\"main\"}") == 0;
}

static void
require_exactly_once(uint64_t n)
{
    const char *paths[] = {agg_out};
    harness_require_exactly_once(&A, paths, 1, n);
}

/* A TLS client with certs/<leaf> against the aggregator (openssl s_client);
 * its fate is read from the aggregator's counters, not from its exit. */
static void
s_client(const char *leaf)
{
    char cmd[PATH_MAX * 6];
    snprintf(cmd, sizeof(cmd),
             "echo x | timeout 10 openssl s_client -quiet -connect 127.0.0.1:%d -CAfile %s/ca.pem "
             "-cert %s/%s.pem -key %s/%s.key > /dev/null 2>&1",
             agg_port, certs, certs, leaf, certs, leaf);
    if (system(cmd) == -1) {
        ck_abort_msg("system: %s", strerror(errno));
    }
}

/* A socket bound to src and connected to 127.0.0.1:port; true when the
 * peer closed it before anything was sent either way (refused by allow). */
static bool
closed_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    char b;
    ck_assert_int_ge(fd, 0);
    inet_pton(AF_INET, src, &me.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t r = recv(fd, &b, 1, 0);
    close(fd);
    return r == 0;
}

/* Also: the sluice source's allow list (127.0.0.1 in, 127.0.0.3 closed
 * before any read and counted) and add_fields = peer_cert on it. */
START_TEST(test_tls_forward_sluice_mutual)
{
    serve_cert("server");
    agg_start_with("sluice", "allow = 127.0.0.1/32\nadd_fields = peer_cert\n");
    edge_start("sluice", "sender_id = edge-tls\n");
    send_to_edge(0, N_EVENTS / 2);
    s_client("otherca"); /* refused by the aggregator; the edge is not affected */
    harness_require_metric(
        &A, agg_admin, "sluice_tls_handshake_failures_total{source=\"edges\",reason=\"untrusted\"}",
        1, false, 10000);
    ck_assert(closed_from("127.0.0.3", agg_port));
    harness_require_metric(&A, agg_admin, "sluice_source_refused_total{source=\"edges\"}", 1, false,
                           10000);
    send_to_edge(N_EVENTS / 2, N_EVENTS - N_EVENTS / 2);
    HARNESS_REQUIRE(&E, harness_poll(&E, 30000, edge_drained, NULL) == HARNESS_WAIT_OK,
                    "the edge still holds unacknowledged chunks");
    harness_require_metric(&E, edge_admin, "sluice_tls_handshakes_total{sink=\"forward\"}", 1, true,
                           5000);
    harness_require_metric(&A, agg_admin, "sluice_tls_handshakes_total{source=\"edges\"}", 1, true,
                           5000);
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
    /* peer_cert is added in front of the sender's bytes: the seqs only. */
    struct harness_seqs q;
    char msg[512];
    ck_assert_int_eq(harness_seqs_init(&q, N_EVENTS), 0);
    ck_assert_int_eq(harness_seqs_add_file(&q, agg_out, false), 0);
    ck_assert_msg(harness_seqs_exactly_once(&q, msg, sizeof(msg)), "%s", msg);
    harness_seqs_fini(&q);
    char *out = harness_read_file(agg_out, NULL);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strstr(out, "\"peer_cert\":\"CN=edge1\"") != NULL, "no peer_cert field");
    free(out);
    HARNESS_REQUIRE(&A, harness_log_has(&A, "TLS refused"), "no log line for the refusal");
    /* No check of the allow refusal's log line: it shares the source's
     * warning rate limit with the TLS refusal above (one line per 10 s per
     * producer thread); the counter is the proof. */
}
END_TEST

/* The aggregator (a source of type) serves a certificate without the
 * target's name: the edge's sink (of type) refuses it and holds the events;
 * with the right certificate (SIGHUP) they all arrive, exactly once. */
static void
wrong_server_name(const char *type)
{
    serve_cert("wrongname");
    agg_start(type);
    edge_start(type, strcmp(type, "sluice") == 0 ? "sender_id = edge-tls\n" : "");
    send_to_edge(0, N_EVENTS);
    harness_require_metric(&E, edge_admin,
                           "sluice_tls_handshake_failures_total{sink=\"forward\",reason=\"name\"}",
                           1, true, 10000);
    harness_require_metric(&E, edge_admin, "sluice_sink_up{sink=\"forward\"}", 0, false, 10000);
    /* Held on the edge: the events are queued there, none reached the file. */
    HARNESS_REQUIRE(&E, metric(edge_admin, "sluice_queue_chunks{queue=\"main\"}") > 0,
                    "the edge's queue is empty");
    HARNESS_REQUIRE(&A, harness_file_lines(agg_out) == 0, "events reached the aggregator");
    HARNESS_REQUIRE(&A, metric(agg_admin, "sluice_tls_handshakes_total{source=\"edges\"}") == 0,
                    "the aggregator counted a handshake");
    HARNESS_REQUIRE(&E, harness_log_has(&E, "TLS refused (name)"), "no log line for the refusal");

    /* The right certificate on the aggregator: everything flows. */
    serve_cert("server");
    ck_assert_int_eq(harness_signal(&A, SIGHUP), 0);
    harness_require_metric(&A, agg_admin, "sluice_tls_reloads_total{source=\"edges\"}", 1, false,
                           10000);
    harness_require_lines(&A, agg_out, N_EVENTS, 30000);
    HARNESS_REQUIRE(&E, harness_poll(&E, 30000, edge_drained, NULL) == HARNESS_WAIT_OK,
                    "the edge still holds chunks");
    harness_require_metric(&E, edge_admin, "sluice_sink_up{sink=\"forward\"}", 1, false, 10000);
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
    require_exactly_once(N_EVENTS);
}

START_TEST(test_tls_forward_sluice_wrong_server_name)
{
    wrong_server_name("sluice");
}
END_TEST

START_TEST(test_tls_forward_tcp_wrong_server_name)
{
    wrong_server_name("tcp");
}
END_TEST

/* The tcp sink with TLS and a client certificate into a TLS tcp source
 * that requires one; tls_server_name names the certificate's host while
 * the target is an address. */
START_TEST(test_tls_forward_tcp_mutual)
{
    serve_cert("server");
    agg_start("tcp");
    edge_start("tcp", "tls_server_name = localhost\n");
    send_to_edge(0, N_EVENTS);
    harness_require_lines(&A, agg_out, N_EVENTS, 30000);
    harness_require_metric(&E, edge_admin, "sluice_tls_handshakes_total{sink=\"forward\"}", 1, true,
                           5000);
    harness_require_metric(&A, agg_admin, "sluice_tls_handshakes_total{source=\"edges\"}", 1, true,
                           5000);
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
    require_exactly_once(N_EVENTS);
}
END_TEST

/*
 * The aggregator refuses the edge's client certificate (another CA).  The
 * sluice sink never gets a WELCOME: everything stays queued on the edge.
 * The tcp sink, under TLS 1.3, has finished its side of the handshake
 * before the refusal comes: the refusal is counted and logged with the
 * bytes it cost (docs/protocol.md); nothing reaches the aggregator's file.
 */
static void
client_cert_refused(const char *type)
{
    edge_leaf = "otherca";
    serve_cert("server");
    agg_start(type);
    edge_start(type, "");
    send_to_edge(0, 1000);
    harness_require_metric(
        &A, agg_admin, "sluice_tls_handshake_failures_total{source=\"edges\",reason=\"untrusted\"}",
        1, true, 10000);
    harness_require_metric(&E, edge_admin, "sluice_sink_up{sink=\"forward\"}", 0, false, 10000);
    HARNESS_REQUIRE(&A, harness_file_lines(agg_out) == 0, "events reached the aggregator");
    HARNESS_REQUIRE(&A, metric(agg_admin, "sluice_tls_handshakes_total{source=\"edges\"}") == 0,
                    "the aggregator accepted a handshake");
}

START_TEST(test_tls_forward_sluice_client_cert_refused)
{
    client_cert_refused("sluice");
    /* Nothing was acknowledged: every event is still queued on the edge. */
    HARNESS_REQUIRE(&E, metric(edge_admin, "sluice_queue_chunks{queue=\"main\"}") > 0,
                    "the edge's queue is empty");
    HARNESS_REQUIRE(&E, metric(edge_admin, "sluice_sink_acks_total{sink=\"forward\"}") == 0,
                    "acks counted");
}
END_TEST

/* The edge's client certificate when edge_leaf = "edge". */
static void
edge_cert(const char *name)
{
    copy_cert(name, "edge");
}

/*
 * The tcp sink's client certificate is refused, first for its CA (another
 * one), then for its name (trusted, not in tls_allowed_names); each time
 * the operator fixes the edge's files and sends SIGHUP.  The tcp sink
 * offers TLS 1.2 with a client certificate (sink_tcp.c, DESIGN), so each
 * refusal ends its handshake before it sends a byte: the events wait in
 * the edge's queue, and once the right certificate is in place every one
 * arrives, exactly once (none lost to a refusal).
 */
START_TEST(test_tls_forward_tcp_client_cert_fixed)
{
    const uint64_t n = 5000;
    edge_leaf = "edge";
    edge_cert("otherca");
    serve_cert("server");
    agg_start("tcp");
    edge_start("tcp", "");
    send_to_edge(0, n);
    harness_require_metric(
        &A, agg_admin, "sluice_tls_handshake_failures_total{source=\"edges\",reason=\"untrusted\"}",
        2, true, 10000);
    harness_require_metric(
        &E, edge_admin,
        "sluice_tls_handshake_failures_total{sink=\"forward\",reason=\"untrusted\"}", 2, true,
        10000);
    harness_require_metric(&E, edge_admin, "sluice_sink_up{sink=\"forward\"}", 0, false, 10000);

    edge_cert("intruder");
    ck_assert_int_eq(harness_signal(&E, SIGHUP), 0);
    harness_require_metric(
        &A, agg_admin, "sluice_tls_handshake_failures_total{source=\"edges\",reason=\"name\"}", 2,
        true, 10000);
    HARNESS_REQUIRE(&A, harness_file_lines(agg_out) == 0, "events reached the aggregator");
    HARNESS_REQUIRE(&A, metric(agg_admin, "sluice_tls_handshakes_total{source=\"edges\"}") == 0,
                    "the aggregator accepted a handshake");
    HARNESS_REQUIRE(&E, !harness_log_has(&E, "refused this sink's client certificate after"),
                    "a refusal after the handshake: events were lost");

    edge_cert("client");
    ck_assert_int_eq(harness_signal(&E, SIGHUP), 0);
    harness_require_lines(&A, agg_out, n, 30000);
    harness_require_stop_ok(&E);
    harness_require_stop_ok(&A);
    require_exactly_once(n);
}
END_TEST

/* ---- rsyslog with its GnuTLS stream driver ---- */

#define RSYSLOG_N 5000

/*
 * rsyslogd (rsyslog-gnutls) forwards what it gets on a plain imtcp input to
 * the aggregator's TLS tcp source (codec = syslog): omfwd with
 * StreamDriver="gtls", StreamDriverMode 1 (TLS only), the client
 * certificate edge1, the server authenticated by name (x509/name,
 * localhost), octet-counted RFC 5424 frames (RFC 5425).  Every message
 * exactly once.
 */
START_TEST(test_tls_forward_rsyslog_gtls)
{
    struct peer p;
    char body[4096];
    int in_port = harness_free_port(SOCK_STREAM);

    peer_require_available(PEER_RSYSLOG);
    serve_cert("server");
    agg_start_with("tcp", "codec = syslog\n");
    snprintf(body, sizeof(body),
             "module(load=\"imtcp\")\n"
             "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"fwd\")\n"
             "action(type=\"omfile\" file=\"%s/internal.log\")\n"
             "ruleset(name=\"fwd\") {\n"
             "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"%d\" protocol=\"tcp\"\n"
             "       TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\"\n"
             "       StreamDriver=\"gtls\" StreamDriverMode=\"1\"\n"
             "       StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\"\n"
             "       StreamDriver.CAFile=\"%s/ca.pem\"\n"
             "       StreamDriver.CertFile=\"%s/client.pem\"\n"
             "       StreamDriver.KeyFile=\"%s/client.key\"\n"
             "       action.resumeRetryCount=\"-1\" queue.type=\"LinkedList\" "
             "queue.size=\"100000\")\n"
             "}\n",
             in_port, A.dir, agg_port, certs, certs, certs);
    ck_assert_int_eq(peer_start(&A, &p, PEER_RSYSLOG, body), 0);
    PEER_REQUIRE(&A, &p, peer_wait_tcp(&p, in_port, 15000) == HARNESS_WAIT_OK,
                 "rsyslog does not listen on its input port %d", in_port);
    int fd = harness_tcp_connect(in_port, 30000);
    ck_assert_int_ge(fd, 0);
    struct harness_buf b = {0};
    for (unsigned q = 0; q < RSYSLOG_N; q++) {
        char line[128];
        int n = snprintf(line, sizeof(line), "<13>Dec  6 02:00:00 web app[1]: seq=%u\n", q);
        harness_buf_add(&b, line, (size_t)n);
    }
    ck_assert_int_eq(harness_send_all(fd, b.p, b.len), 0);
    ck_assert_int_eq(harness_wait_sent(fd, 30000), HARNESS_WAIT_OK);
    close(fd);
    free(b.p);
    uint64_t got = 0;
    enum harness_wait w = harness_wait_lines(&A, agg_out, RSYSLOG_N, 30000, &got);
    PEER_REQUIRE(&A, &p, w == HARNESS_WAIT_OK, "%" PRIu64 " of %d messages arrived", got,
                 RSYSLOG_N);
    PEER_REQUIRE(&A, &p, peer_stop(&p, 15000) == 0, "rsyslog did not stop on SIGTERM");
    harness_require_metric(&A, agg_admin, "sluice_tls_handshakes_total{source=\"edges\"}", 1, true,
                           5000);
    harness_require_stop_ok(&A);

    /* Each seq exactly once, in a syslog-parsed event. */
    char *text = harness_read_file(agg_out, NULL);
    unsigned char *seen = calloc(RSYSLOG_N, 1);
    unsigned lines = 0, dups = 0, bad = 0;
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(seen);
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        /* The message is the input's MSG, its leading space included
         * (rsyslog's msg property after "app[1]:"). */
        const char *m = strstr(l, "\"message\":\" seq=");
        unsigned q;
        lines++;
        if (m == NULL || sscanf(m, "\"message\":\" seq=%u\"", &q) != 1 || q >= RSYSLOG_N ||
            strstr(l, "\"appname\":\"app\"") == NULL) {
            if (bad++ == 0) {
                fprintf(stderr, "check_tls_forward: bad line: %.400s\n", l);
            }
            continue;
        }
        dups += seen[q]++ != 0;
    }
    unsigned missing = 0;
    for (unsigned q = 0; q < RSYSLOG_N; q++) {
        missing += seen[q] == 0;
    }
    free(seen);
    free(text);
    ck_assert_msg(lines == RSYSLOG_N && dups == 0 && bad == 0 && missing == 0,
                  "%u lines: %u duplicates, %u bad, %u missing", lines, dups, bad, missing);
}
END_TEST

static Suite *
tls_forward_suite(void)
{
    Suite *s = suite_create("tls_forward");
    TCase *tc = tcase_create("sluice");
    tcase_add_unchecked_fixture(tc, certs_make, certs_remove);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tls_forward_sluice_mutual);
    tcase_add_test(tc, test_tls_forward_sluice_wrong_server_name);
    tcase_add_test(tc, test_tls_forward_sluice_client_cert_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("tcp");
    tcase_add_unchecked_fixture(tc, certs_make, certs_remove);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tls_forward_tcp_mutual);
    tcase_add_test(tc, test_tls_forward_tcp_wrong_server_name);
    tcase_add_test(tc, test_tls_forward_tcp_client_cert_fixed);
    suite_add_tcase(s, tc);
    tc = tcase_create("rsyslog");
    tcase_add_unchecked_fixture(tc, certs_make, certs_remove);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tls_forward_rsyslog_gtls);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return harness_run_suite(tls_forward_suite());
}
