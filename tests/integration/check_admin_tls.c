/*
 * Integration tests for TLS on the admin endpoint (admin_tls*, issue 14's
 * alternative to admin_token_file), on the real daemon with the
 * certificates tests/certs.sh makes:
 *   - with admin_tls_ca_file a client with no certificate, one from another
 *     CA, an expired one, a trusted one whose name is not in
 *     admin_tls_allowed_names, and a plaintext HTTP client are each refused
 *     in the handshake (no HTTP answer) and counted under their reason in
 *     sluice_tls_handshake_failures_total{endpoint="admin"}, logged, and
 *     the daemon keeps serving the good client (/metrics, /healthz);
 *   - the `sluice` CLI over TLS (--cacert/--cert/--key, and -c FILE):
 *     status, reload, tap; without a client certificate it is refused with
 *     a message saying so (exit 3);
 *   - SIGHUP re-reads the certificate: a bad file keeps the old one
 *     (counted, logged), a good one is served to new connections.
 * The config rules (a non-loopback admin_listen accepted with client
 * certificates, refused with TLS alone; the admin_tls* keys' checks) are in
 * check_security.c (test_security_admin_tls_config), with sluiced -n on
 * 0.0.0.0; the live daemons here listen on 127.0.0.1 only.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    char cmd[PATH_MAX * 3];
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&S, 0, sizeof(S));
    signal(SIGPIPE, SIG_IGN); /* a refused client's write must fail, not kill the test */
    harness_make_certs(&H, certs, sizeof(certs));
    snprintf(cmd, sizeof(cmd), "cp %s/server.pem %s/live.pem && cp %s/server.key %s/live.key",
             certs, certs, certs, certs);
    ck_assert_int_eq(system(cmd), 0);
}

static void
teardown(void)
{
    harness_fini(&H);
}

/* Starts the standard daemon with admin TLS and client certificates from
 * ca.pem; more [daemon] lines in more. */
static void
start_admin_tls(const char *more)
{
    snprintf(extra, sizeof(extra),
             "admin_tls = on\nadmin_tls_cert_file = %s/live.pem\nadmin_tls_key_file = %s/live.key\n"
             "admin_tls_ca_file = %s/ca.pem\n%s",
             certs, certs, certs, more);
    S.daemon_extra = extra;
    harness_std_require_start(&H, &S, NULL);
}

/*
 * GET path over TLS with leaf's certificate (NULL: none), the server
 * verified against ca.pem for "localhost".  Returns the HTTP status (the
 * body in *body if body is not NULL; caller frees) or -1 when no answer
 * came (the handshake or the connection was refused).  If subject is not
 * NULL, the server certificate's subject goes there.
 */
static int
https_get(int port, const char *leaf, const char *path, char **body, char *subject,
          size_t sublen)
{
    char req[512];
    SSL_CTX *ctx = harness_tls_client_ctx(certs, leaf);
    int fd = harness_tcp_connect(port, 5000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    struct timeval tv = {.tv_sec = harness_ms(5000) / 1000, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set1_host(ssl, "localhost");
    int code = -1;
    struct harness_buf b = {0};
    if (SSL_connect(ssl) == 1) {
        if (subject != NULL) {
            X509 *peer = SSL_get1_peer_certificate(ssl);
            subject[0] = '\0';
            if (peer != NULL) {
                X509_NAME_oneline(X509_get_subject_name(peer), subject, (int)sublen);
                X509_free(peer);
            }
        }
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
        if (SSL_write(ssl, req, n) == n) {
            char buf[16384];
            int r;
            while ((r = SSL_read(ssl, buf, sizeof(buf))) > 0) {
                harness_buf_add(&b, buf, (size_t)r);
            }
        }
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    if (b.p != NULL) {
        harness_buf_add(&b, "", 1);
    }
    if (b.p != NULL && sscanf(b.p, "HTTP/1.%*d %d", &code) == 1) {
        const char *start = strstr(b.p, "\r\n\r\n");
        if (body != NULL) {
            *body = strdup(start != NULL ? start + 4 : "");
        }
    } else {
        code = -1;
    }
    free(b.p);
    return code;
}

/* A metric read over TLS with the good client certificate; -1 when absent. */
static double
metric(const char *name_labels)
{
    char *body = NULL;
    double v = -1;
    if (https_get(S.admin_port, "client", "/metrics", &body, NULL, 0) == 200) {
        if (harness_metric(body, name_labels, &v) < 0) {
            v = -1;
        }
    }
    free(body);
    return v;
}

struct metric_wait {
    const char *name;
    double want;
};

static bool
metric_reached(void *arg)
{
    const struct metric_wait *m = arg;
    return metric(m->name) >= m->want;
}

static void
require_metric_at_least(const char *name, double want)
{
    struct metric_wait m = {.name = name, .want = want};
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, metric_reached, &m) == HARNESS_WAIT_OK,
                    "%s is %.0f, want at least %.0f", name, metric(name), want);
}

static char reason_metric[160];
static const char *
reason(const char *r)
{
    snprintf(reason_metric, sizeof(reason_metric),
             "sluice_tls_handshake_failures_total{endpoint=\"admin\",reason=\"%s\"}", r);
    return reason_metric;
}

START_TEST(test_admin_tls_refusals_counted)
{
    start_admin_tls("admin_tls_allowed_names = edge1\n");
    char *body = NULL;
    ck_assert_int_eq(https_get(S.admin_port, "client", "/healthz", &body, NULL, 0), 200);
    ck_assert_msg(strstr(body, "\"status\":\"ok\"") != NULL, "healthz: %s", body);
    free(body);

    ck_assert_int_eq(https_get(S.admin_port, NULL, "/metrics", NULL, NULL, 0), -1);
    ck_assert_int_eq(https_get(S.admin_port, "otherca", "/metrics", NULL, NULL, 0), -1);
    ck_assert_int_eq(https_get(S.admin_port, "expired", "/metrics", NULL, NULL, 0), -1);
    ck_assert_int_eq(https_get(S.admin_port, "intruder", "/metrics", NULL, NULL, 0), -1);
    /* A plaintext HTTP client gets no HTTP answer. */
    body = NULL;
    int plain = harness_http_get(S.admin_port, "/healthz", 5000, &body);
    ck_assert_msg(plain <= 0, "plaintext answered %d: %s", plain, body != NULL ? body : "");
    free(body);

    require_metric_at_least(reason("no_cert"), 1);
    require_metric_at_least(reason("untrusted"), 1);
    require_metric_at_least(reason("expired"), 1);
    require_metric_at_least(reason("name"), 1);
    require_metric_at_least(reason("plaintext"), 1);
    /* Exactly one each: nothing else was refused. */
    ck_assert(metric(reason("no_cert")) == 1 && metric(reason("untrusted")) == 1 &&
              metric(reason("expired")) == 1 && metric(reason("name")) == 1 &&
              metric(reason("plaintext")) == 1 && metric(reason("other")) == 0);
    ck_assert(metric("sluice_tls_handshakes_total{endpoint=\"admin\"}") >= 2);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "TLS refused"), "no log line for the refusals");
    /* The daemon is fine and the good client still served. */
    ck_assert(harness_alive(&H));
    ck_assert_int_eq(https_get(S.admin_port, "client", "/healthz", NULL, NULL, 0), 200);
    harness_require_stop_ok(&H);
}
END_TEST

/* --- the sluice CLI ------------------------------------------------------------------ */

struct cli_run {
    int status; /* exit status, or -1 */
    char *out;  /* stdout and stderr together */
};

/* Starts sluice ARGS (NULL-terminated), its output into a new file; its pid. */
static pid_t
cli_spawn(const char *const *args, char *outp, size_t outlen)
{
    static int seq;
    char name[32], *argv[24];
    size_t n = 0;
    snprintf(name, sizeof(name), "cli%d.out", seq++);
    harness_path(&H, name, outp, outlen);
    argv[n++] = (char *)harness_sluice_path();
    for (size_t i = 0; args[i] != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    pid_t pid = harness_spawn_program(argv, NULL, outp);
    ck_assert_msg(pid > 0, "cannot start %s", argv[0]);
    return pid;
}

/* Waits at most timeout_ms (scaled) for pid; kills it after.  Its exit status or -1. */
static int
cli_wait(pid_t pid, int timeout_ms, bool (*step)(void *), void *arg)
{
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        if (harness_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        if (step != NULL) {
            step(arg);
        }
        harness_poll_step(20);
    }
}

static void
cli(const char *const *args, struct cli_run *r)
{
    char outp[PATH_MAX];
    r->status = cli_wait(cli_spawn(args, outp, sizeof(outp)), 15000, NULL, NULL);
    r->out = harness_read_file(outp, NULL);
    if (r->out == NULL) {
        r->out = strdup("");
    }
}

/* Sends one event to the source (each call another seq). */
static bool
send_event(void *arg)
{
    static uint64_t seq;
    char line[HARNESS_EVENT_BYTES + 8];
    int fd = harness_tcp_connect(*(int *)arg, 2000);
    if (fd >= 0) {
        size_t n = harness_event_line(line, seq++);
        (void)harness_send_all(fd, line, n);
        close(fd);
    }
    return true;
}

START_TEST(test_admin_tls_cli)
{
    char addr[32], ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], out[PATH_MAX];
    struct cli_run r;
    start_admin_tls("");
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", S.admin_port);
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    snprintf(cert, sizeof(cert), "%s/client.pem", certs);
    snprintf(key, sizeof(key), "%s/client.key", certs);

    const char *status[] = {"-a", addr, "--cacert", ca, "--cert", cert, "--key", key, "status",
                            NULL};
    cli(status, &r);
    HARNESS_REQUIRE(&H, r.status == 0 && strstr(r.out, "healthy") != NULL,
                    "sluice status over TLS: exit %d: %s", r.status, r.out);
    free(r.out);

    /* -c FILE: TLS from admin_tls, the CA from admin_tls_ca_file. */
    const char *bycfg[] = {"-c", H.conf_path, "--cert", cert, "--key", key, "status", NULL};
    cli(bycfg, &r);
    HARNESS_REQUIRE(&H, r.status == 0 && strstr(r.out, "healthy") != NULL,
                    "sluice -c status over TLS: exit %d: %s", r.status, r.out);
    free(r.out);

    const char *reload[] = {"-a", addr, "--cacert", ca, "--cert", cert, "--key", key, "reload",
                            NULL};
    cli(reload, &r);
    HARNESS_REQUIRE(&H, r.status == 0 && strncmp(r.out, "ok:", 3) == 0,
                    "sluice reload over TLS: exit %d: %s", r.status, r.out);
    free(r.out);
    /* The reload re-read the admin certificate too. */
    ck_assert(metric("sluice_tls_reloads_total{endpoint=\"admin\"}") == 1);

    /* tap: events are sent until the first one is shown. */
    const char *tap[] = {"-a", addr, "--cacert", ca, "--cert", cert, "--key", key, "tap", "-n",
                         "1", NULL};
    pid_t pid = cli_spawn(tap, out, sizeof(out));
    int st = cli_wait(pid, 15000, send_event, &S.port);
    char *text = harness_read_file(out, NULL);
    HARNESS_REQUIRE(&H, st == 0 && text != NULL && strstr(text, "\"seq\":") != NULL,
                    "sluice tap over TLS: exit %d: %s", st, text != NULL ? text : "");
    free(text);

    /* No client certificate: refused, and sluice says why. */
    const char *nocert[] = {"-a", addr, "--cacert", ca, "status", NULL};
    cli(nocert, &r);
    HARNESS_REQUIRE(&H, r.status == 3 && strstr(r.out, "TLS refused") != NULL,
                    "sluice without a client certificate: exit %d: %s", r.status, r.out);
    free(r.out);
    /* Plaintext to a TLS endpoint: refused too. */
    const char *plain[] = {"-a", addr, "status", NULL};
    cli(plain, &r);
    HARNESS_REQUIRE(&H, r.status == 3, "sluice in plaintext: exit %d: %s", r.status, r.out);
    free(r.out);
    /* The wrong CA for the daemon's certificate. */
    char other[PATH_MAX];
    snprintf(other, sizeof(other), "%s/other-ca.pem", certs);
    const char *wrongca[] = {"-a", addr, "--cacert", other, "--cert", cert, "--key", key,
                             "status", NULL};
    cli(wrongca, &r);
    HARNESS_REQUIRE(&H, r.status == 3 && strstr(r.out, "not trusted") != NULL,
                    "sluice with the wrong --cacert: exit %d: %s", r.status, r.out);
    free(r.out);
    require_metric_at_least(reason("no_cert"), 1);
    harness_require_stop_ok(&H);
}
END_TEST

/* --- certificate reload -------------------------------------------------------------- */

static bool
serves_subject(void *arg)
{
    char subject[256] = "";
    return https_get(S.admin_port, "client", "/healthz", NULL, subject, sizeof(subject)) == 200 &&
           strstr(subject, arg) != NULL;
}

START_TEST(test_admin_tls_cert_reload)
{
    char cmd[PATH_MAX * 3];
    start_admin_tls("");
    ck_assert(serves_subject("CN=localhost"));

    /* A bad certificate: the old one stays, counted and logged. */
    snprintf(cmd, sizeof(cmd), "cp %s/bad.pem %s/live.pem", certs, certs);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    require_metric_at_least("sluice_tls_reload_failures_total{endpoint=\"admin\"}", 1);
    ck_assert(serves_subject("CN=localhost"));
    HARNESS_REQUIRE(&H, harness_log_has(&H, "keeping the certificates in use"),
                    "no log line for the bad certificate");

    /* The rotated one: new connections get it. */
    snprintf(cmd, sizeof(cmd), "cp %s/server2.pem %s/live.pem && cp %s/server2.key %s/live.key",
             certs, certs, certs, certs);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, serves_subject, "O=rotated") == HARNESS_WAIT_OK,
                    "the new certificate is not served");
    ck_assert(metric("sluice_tls_reloads_total{endpoint=\"admin\"}") >= 1);
    harness_require_stop_ok(&H);
}
END_TEST

static Suite *
admin_tls_suite(void)
{
    Suite *s = suite_create("admin_tls");
    TCase *tc = harness_tcase(s, "admin_tls", 60, setup, teardown);
    tcase_add_test(tc, test_admin_tls_refusals_counted);
    tcase_add_test(tc, test_admin_tls_cli);
    tcase_add_test(tc, test_admin_tls_cert_reload);
    return s;
}

int
main(void)
{
    return harness_run_suite(admin_tls_suite());
}
