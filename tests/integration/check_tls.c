/*
 * Integration tests for TLS and allow-lists on the real daemon, with the
 * certificates tests/certs.sh makes (a CA, server, client, expired, other
 * CA, wrong name):
 *   - a TLS tcp source with required client certificates: a good sender's
 *     events arrive exactly once while clients from another CA, with an
 *     expired certificate, with a trusted but not allowed name, with no
 *     certificate and in plaintext are each refused and counted under
 *     their reason in /metrics; add_fields = peer_cert carries the subject;
 *   - `openssl s_client` as a real client sending NDJSON;
 *   - 200 stalled handshakes (timed out, counted, memory bounded) and 1,000
 *     handshakes in parallel while the good sender's events all arrive;
 *   - certificate rotation under load: new files, SIGHUP, the established
 *     connection keeps sending, new connections get the new certificate; a
 *     bad file keeps the old one;
 *   - allow on 127.0.0.0/8 subranges: tcp and udp from 127.0.0.2 served,
 *     from 127.0.0.3 refused and counted;
 *   - TLS connections handed between producer threads all the time
 *     (source_tcp.c THE SPREAD, forced by SLUICE_TEST_SPREAD as in
 *     check_spread's churn case): the TLS session moves with the
 *     connection; every event exactly once, each connection in order.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <check.h>

static struct harness H;
static struct harness_std S;
static char certs[128];
static char extra[4096];

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&S, 0, sizeof(S));
    signal(SIGPIPE, SIG_IGN); /* a refused client's write must fail, not kill the test */
    harness_make_certs(&H, certs, sizeof(certs));
}

static void
teardown(void)
{
    harness_fini(&H);
}

/* A path in the certificate directory, in one of 8 rotating buffers: main
 * thread only. */
static const char *
cf(const char *name)
{
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", certs, name);
    return b;
}

/* Starts the standard daemon with a TLS tcp source; more source lines in more. */
static void
start_tls(const char *more)
{
    snprintf(extra, sizeof(extra),
             "tls = on\ntls_cert_file = %s/live.pem\ntls_key_file = %s/live.key\n"
             "tls_ca_file = %s/ca.pem\ntls_allowed_names = edge1\n%s",
             certs, certs, certs, more);
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof(cmd), "cp %s/server.pem %s/live.pem && cp %s/server.key %s/live.key",
             certs, certs, certs, certs);
    ck_assert_int_eq(system(cmd), 0);
    S.source_extra = extra;
    harness_std_require_start(&H, &S, NULL);
}

/* A blocking TLS client with leaf's certificate (NULL: none), bound to src
 * (NULL: any).  Returns the SSL (its fd inside) or NULL when the handshake
 * failed. */
static SSL *
tls_connect(int port, const char *leaf, const char *src)
{
    /* Runs on several threads at once (cf() is not for that). */
    SSL_CTX *ctx = harness_tls_client_ctx(certs, leaf);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 10 * harness_ms(1000) / 1000, .tv_usec = 0};
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (src != NULL) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &me.sin_addr);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    }
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
        close(fd);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

static void
tls_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

/* Sends events [from, to) over ssl; 0 / -1. */
static int
tls_send_events(SSL *ssl, uint64_t from, uint64_t to)
{
    char buf[64 * 1024];
    size_t len = 0;
    for (uint64_t q = from; q < to; q++) {
        len += harness_event_line(buf + len, q);
        if (len > sizeof(buf) - 512 || q + 1 == to) {
            if (SSL_write(ssl, buf, (int)len) != (int)len) {
                return -1;
            }
            len = 0;
        }
    }
    return 0;
}

/* True when the server refused: the handshake failed, or the first read
 * after it sees the connection closed (TLS 1.3 reports a refused client
 * certificate after the client's side of the handshake completed). */
static bool
refused(SSL *ssl)
{
    if (ssl == NULL) {
        return true;
    }
    char b;
    SSL_write(ssl, "{}\n", 3);
    int r = SSL_read(ssl, &b, 1);
    ERR_clear_error();
    tls_close(ssl);
    return r <= 0;
}

static char reason_metric[160];
static const char *
reason(const char *r)
{
    snprintf(reason_metric, sizeof(reason_metric),
             "sluice_tls_handshake_failures_total{source=\"app\",reason=\"%s\"}", r);
    return reason_metric;
}

START_TEST(test_tls_edge_refusals_counted)
{
    start_tls("add_fields = peer_cert\n");
    SSL *good = tls_connect(S.port, "client", NULL);
    ck_assert_ptr_nonnull(good);
    ck_assert_int_eq(tls_send_events(good, 0, 500), 0);

    ck_assert(refused(tls_connect(S.port, "otherca", NULL)));
    ck_assert(refused(tls_connect(S.port, "expired", NULL)));
    ck_assert(refused(tls_connect(S.port, "intruder", NULL)));
    ck_assert(refused(tls_connect(S.port, NULL, NULL)));
    int plain = harness_tcp_connect(S.port, 5000);
    ck_assert_int_ge(plain, 0);
    char line[HARNESS_EVENT_BYTES + 8];
    size_t n = harness_event_line(line, 999999);
    ck_assert_int_eq(harness_send_all(plain, line, n), 0);

    ck_assert_int_eq(tls_send_events(good, 500, 1000), 0);
    harness_require_metric(&H, S.admin_port, reason("untrusted"), 1, false, 10000);
    harness_require_metric(&H, S.admin_port, reason("expired"), 1, false, 10000);
    harness_require_metric(&H, S.admin_port, reason("name"), 1, false, 10000);
    harness_require_metric(&H, S.admin_port, reason("no_cert"), 1, false, 10000);
    harness_require_metric(&H, S.admin_port, reason("plaintext"), 1, false, 10000);
    close(plain);
    tls_close(good);
    harness_require_lines(&H, S.out_path, 1000, 10000);
    harness_require_stop_ok(&H);
    /* Every line carries the sender's certificate subject. */
    char *out = harness_read_file(S.out_path, NULL);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strstr(out, "\"peer_cert\":\"CN=edge1\"") != NULL, "no peer_cert field");
    free(out);
    const char *paths[] = {S.out_path};
    /* peer_cert is added in front of the sender's bytes: compare the seqs only. */
    struct harness_seqs q;
    ck_assert_int_eq(harness_seqs_init(&q, 1000), 0);
    ck_assert_int_eq(harness_seqs_add_file(&q, paths[0], false), 0);
    char msg[512];
    ck_assert_msg(harness_seqs_exactly_once(&q, msg, sizeof(msg)), "%s", msg);
    harness_seqs_fini(&q);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "TLS refused"), "no log line for the refusals");
}
END_TEST

/* Opens the file name in the test's dir for writing; its path into path. */
static FILE *
input_file(const char *name, char *path, size_t len)
{
    harness_path(&H, name, path, len);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    return f;
}

/* Sends the file at path through `openssl s_client` with the good client
 * certificate, verifying the server (ca.pem, name localhost). */
static void
s_client_send(const char *path)
{
    char cmd[PATH_MAX * 6];
    snprintf(cmd, sizeof(cmd),
             "openssl s_client -quiet -no_ign_eof -connect 127.0.0.1:%d -verify_return_error "
             "-CAfile %s -cert %s -key %s -verify_hostname localhost < %s > /dev/null 2>&1",
             S.port, cf("ca.pem"), cf("client.pem"), cf("client.key"), path);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_tls_openssl_s_client)
{
    start_tls("");
    char in[PATH_MAX];
    FILE *f = input_file("events.ndjson", in, sizeof(in));
    for (uint64_t q = 0; q < 100; q++) {
        char line[HARNESS_EVENT_BYTES + 8];
        size_t n = harness_event_line(line, q);
        ck_assert_uint_eq(fwrite(line, 1, n, f), n);
    }
    ck_assert_int_eq(fclose(f), 0);
    s_client_send(in);
    const char *paths[] = {S.out_path};
    harness_require_lines(&H, S.out_path, 100, 10000);
    harness_require_stop_ok(&H);
    harness_require_exactly_once(&H, paths, 1, 100);
}
END_TEST

/* RFC 5425: syslog over TLS, octet-counted frames (framing = auto finds
 * them behind the TLS layer), sent by openssl s_client. */
START_TEST(test_tls_syslog_rfc5425)
{
    S.codec = "syslog";
    start_tls("");
    char in[PATH_MAX];
    FILE *f = input_file("frames", in, sizeof(in));
    for (int i = 0; i < 3; i++) {
        char msg[256];
        int n = snprintf(msg, sizeof(msg),
                         "<34>1 2026-12-06T00:00:0%dZ edge1 app%d 42 ID47 - line one\nline two %d", i,
                         i, i);
        fprintf(f, "%d %s", n, msg); /* the newline inside stays in the message */
    }
    ck_assert_int_eq(fclose(f), 0);
    s_client_send(in);
    harness_require_lines(&H, S.out_path, 3, 10000);
    harness_require_stop_ok(&H);
    char *out = harness_read_file(S.out_path, NULL);
    ck_assert_ptr_nonnull(out);
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof(want), "\"appname\":\"app%d\"", i);
        ck_assert_msg(strstr(out, want) != NULL, "no %s in %s", want, out);
        snprintf(want, sizeof(want), "line one\\nline two %d\"", i);
        ck_assert_msg(strstr(out, want) != NULL, "no %s in %s", want, out);
    }
    free(out);
}
END_TEST

/* Opens n plain TCP connections to port that never send a byte. */
static int *
stall(int port, int n)
{
    int *fds = calloc((size_t)n, sizeof(*fds));
    ck_assert_ptr_nonnull(fds);
    for (int i = 0; i < n; i++) {
        fds[i] = harness_tcp_connect(port, 5000);
        ck_assert_int_ge(fds[i], 0);
    }
    return fds;
}

struct shaker {
    int port, n, ok;
};

static void *
shaker_run(void *arg)
{
    struct shaker *k = arg;
    for (int i = 0; i < k->n; i++) {
        SSL *ssl = tls_connect(k->port, "client", NULL);
        if (ssl != NULL) {
            k->ok++;
            tls_close(ssl);
        }
    }
    return NULL;
}

START_TEST(test_tls_stalled_and_parallel_handshakes)
{
    start_tls("tls_handshake_timeout = 3s\nmax_connections = 2000\n");
    long rss0 = harness_vmrss_kib(H.pid);
    SSL *good = tls_connect(S.port, "client", NULL);
    ck_assert_ptr_nonnull(good);
    int *stalled = stall(S.port, 200);
    ck_assert_int_eq(tls_send_events(good, 0, 1000), 0);
    harness_require_metric(&H, S.admin_port, reason("timeout"), 200, false, 20000);
    for (int i = 0; i < 200; i++) {
        close(stalled[i]);
    }
    free(stalled);

    /* 1,000 handshakes from 8 threads at once, the good sender still sending. */
    enum { THREADS = 8 };
    struct shaker k[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        k[i] = (struct shaker){.port = S.port, .n = 125};
        ck_assert_int_eq(pthread_create(&th[i], NULL, shaker_run, &k[i]), 0);
    }
    ck_assert_int_eq(tls_send_events(good, 1000, 2000), 0);
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += k[i].ok;
    }
    if (ok != 1000) {
        char *body = NULL;
        harness_http_get(S.admin_port, "/metrics", 5000, &body);
        for (char *l = body; l != NULL && (l = strstr(l, "sluice_tls_handshake_failures_total{")) != NULL; l++) {
            fprintf(stderr, "%.*s\n", (int)strcspn(l, "\n"), l);
        }
        free(body);
    }
    ck_assert_int_eq(ok, 1000);
    harness_require_metric(&H, S.admin_port, "sluice_tls_handshakes_total{source=\"app\"}", 1001,
                           false, 10000);
    tls_close(good);
    harness_require_lines(&H, S.out_path, 2000, 10000);
    long rss1 = harness_vmrss_kib(H.pid);
#if defined(__SANITIZE_ADDRESS__)
    /* An ASan build (make asan) keeps freed memory in its quarantine (256 MiB
     * by default), so its RSS says nothing about the daemon's bound: the
     * bound is checked by the plain build (make check). */
    fprintf(stderr, "check_tls: VmRSS %ld -> %ld KiB (ASan build: bound not checked)\n", rss0,
            rss1);
#else
    ck_assert_msg(rss1 - rss0 < 64 * 1024, "VmRSS grew from %ld to %ld KiB", rss0, rss1);
#endif
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 2000);
}
END_TEST

static void
copy_cert(const char *from)
{
    char cmd[PATH_MAX * 4];
    snprintf(cmd, sizeof(cmd), "cp %s/%s.pem %s/live.pem.new && mv %s/live.pem.new %s/live.pem",
             certs, from, certs, certs, certs);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "cp %s/%s.key %s/live.key.new && mv %s/live.key.new %s/live.key",
             certs, from, certs, certs, certs);
    ck_assert_int_eq(system(cmd), 0);
}

static bool
served_cert_is(int port, const char *want)
{
    SSL *ssl = tls_connect(port, "client", NULL);
    if (ssl == NULL) {
        return false;
    }
    char subj[256];
    X509 *x = SSL_get1_peer_certificate(ssl);
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
    X509_free(x);
    tls_close(ssl);
    return strcmp(subj, want) == 0;
}

START_TEST(test_tls_rotation_under_load)
{
    start_tls("");
    SSL *good = tls_connect(S.port, "client", NULL);
    ck_assert_ptr_nonnull(good);
    ck_assert_int_eq(tls_send_events(good, 0, 1000), 0);
    ck_assert(served_cert_is(S.port, "/CN=localhost"));

    /* A bad certificate: the reload fails and the old one stays. */
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), "cp %s/bad.pem %s/live.pem", certs, certs);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    harness_require_metric(&H, S.admin_port, "sluice_tls_reload_failures_total{source=\"app\"}", 1,
                           false, 10000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "keeping the certificates in use"),
                    "no log line for the failed reload");
    ck_assert_int_eq(tls_send_events(good, 1000, 2000), 0);
    ck_assert(served_cert_is(S.port, "/CN=localhost"));

    /* The rotated certificate. */
    copy_cert("server2");
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    harness_require_metric(&H, S.admin_port, "sluice_tls_reloads_total{source=\"app\"}", 1, false,
                           10000);
    ck_assert_int_eq(tls_send_events(good, 2000, 3000), 0);
    ck_assert(served_cert_is(S.port, "/CN=localhost/O=rotated"));
    ck_assert_int_eq(tls_send_events(good, 3000, 4000), 0);
    tls_close(good);
    harness_require_lines(&H, S.out_path, 4000, 10000);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 4000); /* no connection was dropped */
}
END_TEST

/* A socket of type bound to src and connected to 127.0.0.1:port. */
static int
connect_from(const char *src, int port, int type)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    ck_assert_int_ge(fd, 0);
    inet_pton(AF_INET, src, &me.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    return fd;
}

static void
send_events(int fd, uint64_t from, uint64_t to)
{
    char line[HARNESS_EVENT_BYTES + 8];
    for (uint64_t q = from; q < to; q++) {
        size_t n = harness_event_line(line, q);
        ck_assert_int_eq(send(fd, line, n, MSG_NOSIGNAL), (ssize_t)n);
    }
}

START_TEST(test_tls_allow_tcp_subranges)
{
    S.source_extra = "allow = 127.0.0.2/32, 10.0.0.0/8\n";
    harness_std_require_start(&H, &S, NULL);
    int bad = connect_from("127.0.0.3", S.port, SOCK_STREAM);
    /* Closed before any read: the first read sees the end. */
    char b;
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(bad, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(recv(bad, &b, 1, 0), 0);
    close(bad);
    int good = connect_from("127.0.0.2", S.port, SOCK_STREAM);
    send_events(good, 0, 100);
    close(good);
    /* 2: this one and harness_wait_tcp's probe, which comes from 127.0.0.1. */
    harness_require_metric(&H, S.admin_port, "sluice_source_refused_total{source=\"app\"}", 2,
                           false, 10000);
    harness_require_lines(&H, S.out_path, 100, 10000);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 100);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "not in allow"), "no log line for the refusal");
}
END_TEST

START_TEST(test_tls_allow_udp_subranges)
{
    S.type = "udp";
    S.source_extra = "allow = 127.0.0.2\n";
    harness_std_require_start(&H, &S, NULL);
    int bad = connect_from("127.0.0.3", S.port, SOCK_DGRAM);
    send_events(bad, 100, 150);
    int good = connect_from("127.0.0.2", S.port, SOCK_DGRAM);
    send_events(good, 0, 100);
    harness_require_metric(&H, S.admin_port, "sluice_source_refused_total{source=\"app\"}", 50,
                           false, 10000);
    harness_require_lines(&H, S.out_path, 100, 10000);
    close(bad);
    close(good);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 100);
}
END_TEST

/* TLS connections moved between the two producer threads while they send
 * (SLUICE_TEST_SPREAD: thread 1 gathers to thread 0 at every 5 ms window,
 * thread 0 splits again): the SSL and the bytes OpenSSL holds go along. */
START_TEST(test_tls_spread_churn)
{
    enum { NC = 4 };
    const char *env[] = {"SLUICE_TEST_SPREAD=1000000000000,1,5", NULL};
    const uint64_t per = (uint64_t)harness_events(20000);
    SSL *ssl[NC];
    double moved = 0;
    snprintf(extra, sizeof(extra),
             "tls = on\ntls_cert_file = %s/server.pem\ntls_key_file = %s/server.key\n"
             "tls_ca_file = %s/ca.pem\ntls_allowed_names = edge1\n",
             certs, certs, certs);
    S.source_extra = extra;
    harness_std_require_start(&H, &S, env);
    for (int k = 0; k < NC; k++) {
        ssl[k] = tls_connect(S.port, "client", NULL);
        ck_assert_ptr_nonnull(ssl[k]);
    }
    for (uint64_t sent = 0; sent < per; sent += 50) {
        uint64_t to = sent + 50 < per ? sent + 50 : per;
        for (int k = 0; k < NC; k++) {
            ck_assert_int_eq(tls_send_events(ssl[k], k * per + sent, k * per + to), 0);
        }
    }
    for (int k = 0; k < NC; k++) {
        tls_close(ssl[k]);
    }
    harness_require_lines(&H, S.out_path, NC * per, 60000);
    HARNESS_REQUIRE(&H,
                    harness_metric_get(S.admin_port,
                                       "sluice_source_connections_moved_total{source=\"app\"}",
                                       &moved) == 0 &&
                        moved >= 2,
                    "only %.0f moves", moved);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, NC * per);
    size_t len = 0;
    char *buf = harness_read_file(S.out_path, &len);
    int64_t last[NC] = {-1, -1, -1, -1};
    ck_assert_ptr_nonnull(buf);
    for (const char *p = buf; p < buf + len;) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        const char *q = nl != NULL ? memmem(p, (size_t)(nl - p), "\"seq\":", 6) : NULL;
        ck_assert(nl != NULL && q != NULL && q < nl);
        uint64_t seq = strtoull(q + 6, NULL, 10);
        int k = (int)(seq / per);
        ck_assert_msg(k < NC && (int64_t)seq > last[k],
                      "connection %d: seq %" PRIu64 " after %" PRId64, k, seq, last[k]);
        last[k] = (int64_t)seq;
        p = nl + 1;
    }
    free(buf);
    harness_require_stop_ok(&H);
}
END_TEST

static Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls_integration");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_tls_edge_refusals_counted);
    tcase_add_test(tc, test_tls_openssl_s_client);
    tcase_add_test(tc, test_tls_syslog_rfc5425);
    tcase_add_test(tc, test_tls_stalled_and_parallel_handshakes);
    tcase_add_test(tc, test_tls_rotation_under_load);
    tcase_add_test(tc, test_tls_spread_churn);
    suite_add_tcase(s, tc);
    tc = tcase_create("allow");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tls_allow_tcp_subranges);
    tcase_add_test(tc, test_tls_allow_udp_subranges);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
