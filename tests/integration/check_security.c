/*
 * Integration tests for access control without TLS: the admin endpoint's
 * bearer token (401 without or with a wrong token, counted; 200 with it;
 * admin_public paths open; a non-loopback admin_listen without a token
 * refused at start with the fix in the message; a token file others may
 * read refused; the token rotated by SIGHUP, a bad new file keeping the
 * old token; admin_tls with client certificates accepted off loopback in
 * place of a token, TLS alone refused, the admin_tls* keys' checks) and address allow-lists on the sources (127.0.0.0/8
 * subranges: clients bound to 127.0.0.2 and 127.0.0.3, the refused ones
 * counted, tcp closed before any read, udp datagrams dropped).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;

#define TOKEN "0123456789abcdef0123456789abcdef"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

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

/* Writes the token file (mode 0600 unless mode says otherwise); returns its path in buf. */
static const char *
token_file(char *buf, size_t len, mode_t mode)
{
    harness_path(&H, "admin.token", buf, len);
    ck_assert_int_eq(harness_write_file(buf, "%s\n", TOKEN), 0);
    ck_assert_int_eq(chmod(buf, mode), 0);
    return buf;
}

static int
get(const char *path, const char *headers)
{
    char *body = NULL;
    int code = harness_http_get_hdr(S.admin_port, path, headers, 5000, &body);
    free(body);
    return code;
}

static double
metric_with_token(const char *name)
{
    char *body = NULL;
    double v = -1;
    ck_assert_int_eq(harness_http_get_hdr(S.admin_port, "/metrics", AUTH, 5000, &body), 200);
    ck_assert_msg(harness_metric(body, name, &v) == 0, "%s not in /metrics", name);
    free(body);
    return v;
}

START_TEST(test_security_admin_token)
{
    char path[PATH_MAX], extra[PATH_MAX + 64];
    snprintf(extra, sizeof(extra), "admin_token_file = %s\n", token_file(path, sizeof(path), 0600));
    S.daemon_extra = extra;
    harness_std_require_start(&H, &S, NULL);

    ck_assert_int_eq(get("/metrics", ""), 401);
    ck_assert_int_eq(get("/healthz", ""), 401);
    ck_assert_int_eq(get("/metrics", "Authorization: Bearer wrong-token-wrong-token\r\n"), 401);
    ck_assert_int_eq(get("/metrics", "Authorization: Bearer " TOKEN "x\r\n"), 401);
    ck_assert_int_eq(get("/metrics", "Authorization: Basic " TOKEN "\r\n"), 401);
    ck_assert_int_eq(get("/healthz", AUTH), 200);
    ck_assert(metric_with_token("sluice_admin_unauthorized_total") == 5);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "refused a request"), "no log line for the 401s");
    harness_require_stop_ok(&H);
}
END_TEST

/* The admin token is rotated by SIGHUP: a new file's token works and the
 * old one gets 401; a bad file (too short) keeps the token in use. */
static bool
token_works(void *arg)
{
    return get("/healthz", arg) == 200;
}

START_TEST(test_security_admin_token_rotation)
{
    static char auth2[] = "Authorization: Bearer fedcba9876543210fedcba9876543210\r\n";
    char path[PATH_MAX], extra[PATH_MAX + 64];
    snprintf(extra, sizeof(extra), "admin_token_file = %s\n", token_file(path, sizeof(path), 0600));
    S.daemon_extra = extra;
    harness_std_require_start(&H, &S, NULL);
    ck_assert_int_eq(get("/healthz", AUTH), 200);

    /* A token too short: refused, the old one stays. */
    ck_assert_int_eq(harness_write_file(path, "short\n"), 0);
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, token_works, AUTH) == HARNESS_WAIT_OK,
                    "the old token stopped working");
    for (int i = 0; i < 100 && metric_with_token("sluice_admin_token_reload_failures_total") < 1;
         i++) {
        harness_poll_step(50);
    }
    ck_assert(metric_with_token("sluice_admin_token_reload_failures_total") == 1);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "keeping the token in use"),
                    "no log line for the bad token file");

    /* The new token. */
    ck_assert_int_eq(harness_write_file(path, "%s\n", "fedcba9876543210fedcba9876543210"), 0);
    ck_assert_int_eq(harness_signal(&H, SIGHUP), 0);
    HARNESS_REQUIRE(&H, harness_poll(&H, 10000, token_works, auth2) == HARNESS_WAIT_OK,
                    "the new token is not accepted");
    ck_assert_int_eq(get("/healthz", AUTH), 401);
    harness_require_stop_ok(&H);
}
END_TEST

START_TEST(test_security_admin_public)
{
    char path[PATH_MAX], extra[PATH_MAX + 96];
    snprintf(extra, sizeof(extra), "admin_token_file = %s\nadmin_public = metrics\n",
             token_file(path, sizeof(path), 0600));
    S.daemon_extra = extra;
    harness_std_require_start(&H, &S, NULL);
    ck_assert_int_eq(get("/metrics", ""), 200);
    ck_assert_int_eq(get("/healthz", ""), 401);
    ck_assert_int_eq(get("/healthz", AUTH), 200);
    harness_require_stop_ok(&H);
}
END_TEST

/* Runs sluiced -n on the config and returns its stderr (caller frees). */
static char *
check_config(int *status)
{
    const char *args[] = {"-n", "-c", H.conf_path, NULL};
    HARNESS_REQUIRE(&H, harness_run(&H, args, 10000, status) == HARNESS_WAIT_OK,
                    "sluiced -n did not finish");
    char *err = harness_read_file(H.log_path, NULL);
    ck_assert(err != NULL);
    return err;
}

static void
write_admin_config(const char *daemon_lines)
{
    char out[PATH_MAX];
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\n%s"
                                          "[source app]\ntype = tcp\nlisten = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[queue main]\n"
                                          "[sink archive]\ntype = file\nqueue = main\npath = %s\n",
                                          daemon_lines, harness_free_port(SOCK_STREAM),
                                          harness_path(&H, "out.ndjson", out, sizeof(out))),
                     0);
}

START_TEST(test_security_admin_nonloopback_refused)
{
    char lines[PATH_MAX + 128], path[PATH_MAX];
    int status = 0;
    int port = harness_free_port(SOCK_STREAM);

    snprintf(lines, sizeof(lines), "admin_listen = 0.0.0.0:%d\n", port);
    write_admin_config(lines);
    char *err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0, "accepted: %s", err);
    ck_assert_msg(strstr(err, "not a loopback address") != NULL &&
                      strstr(err, "set admin_token_file = PATH") != NULL,
                  "message does not say how to fix it: %s", err);
    free(err);

    /* The same address with a token starts. */
    snprintf(lines, sizeof(lines), "admin_listen = 0.0.0.0:%d\nadmin_token_file = %s\n", port,
             token_file(path, sizeof(path), 0600));
    write_admin_config(lines);
    err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "refused: %s", err);
    free(err);

    /* A token others may read is refused, and so is one too short. */
    snprintf(lines, sizeof(lines), "admin_token_file = %s\n",
             token_file(path, sizeof(path), 0644));
    write_admin_config(lines);
    err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0 && strstr(err, "chmod 600"),
                  "mode 0644 token accepted: %s", err);
    free(err);
    ck_assert_int_eq(harness_write_file(path, "short\n"), 0);
    ck_assert_int_eq(chmod(path, 0600), 0);
    err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                      strstr(err, "openssl rand -hex 32"),
                  "short token accepted: %s", err);
    free(err);
}
END_TEST

/* sluiced -n refuses [daemon] daemon_lines with a message containing want. */
static void
require_refused(const char *daemon_lines, const char *want)
{
    int status = 0;
    write_admin_config(daemon_lines);
    char *err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0 && strstr(err, want) != NULL,
                  "%s: accepted, or no \"%s\" in: %s", daemon_lines, want, err);
    free(err);
}

/* admin_tls: client certificates stand for the token off loopback; TLS
 * alone does not; the admin_tls* keys' own checks. */
START_TEST(test_security_admin_tls_config)
{
    char certs[PATH_MAX], lines[PATH_MAX * 4];
    int status = 0;
    int port = harness_free_port(SOCK_STREAM);
    char *err;
    harness_make_certs(&H, certs, sizeof(certs));

    snprintf(lines, sizeof(lines),
             "admin_listen = 0.0.0.0:%d\nadmin_tls = on\nadmin_tls_cert_file = %s/server.pem\n"
             "admin_tls_key_file = %s/server.key\nadmin_tls_ca_file = %s/ca.pem\n",
             port, certs, certs, certs);
    write_admin_config(lines);
    err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "refused: %s", err);
    free(err);

    /* TLS without client certificates is no authentication: the message
     * names both ways to fix it. */
    snprintf(lines, sizeof(lines),
             "admin_listen = 0.0.0.0:%d\nadmin_tls = on\nadmin_tls_cert_file = %s/server.pem\n"
             "admin_tls_key_file = %s/server.key\n",
             port, certs, certs);
    write_admin_config(lines);
    err = check_config(&status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                      strstr(err, "not a loopback address") != NULL &&
                      strstr(err, "set admin_token_file = PATH") != NULL &&
                      strstr(err, "admin_tls_ca_file") != NULL,
                  "message does not say how to fix it: %s", err);
    free(err);

    snprintf(lines, sizeof(lines), "admin_tls_ca_file = %s/ca.pem\n", certs);
    require_refused(lines, "admin_tls is off");
    require_refused("admin_tls = on\n", "needs admin_tls_cert_file");
    snprintf(lines, sizeof(lines),
             "admin_tls = on\nadmin_tls_cert_file = %s/bad.pem\nadmin_tls_key_file = %s/server.key\n",
             certs, certs);
    require_refused(lines, "bad.pem");
    snprintf(lines, sizeof(lines),
             "admin_tls = on\nadmin_tls_cert_file = %s/server.pem\nadmin_tls_key_file = "
             "%s/server.key\nadmin_tls_allowed_names = edge1\n",
             certs, certs);
    require_refused(lines, "needs client certificates");
}
END_TEST

static Suite *
security_suite(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("admin");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_security_admin_token);
    tcase_add_test(tc, test_security_admin_token_rotation);
    tcase_add_test(tc, test_security_admin_public);
    tcase_add_test(tc, test_security_admin_nonloopback_refused);
    tcase_add_test(tc, test_security_admin_tls_config);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(security_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
