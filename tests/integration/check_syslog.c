/*
 * check_syslog — codec = syslog against the real sluiced: a tcp and a udp
 * source, util-linux `logger` as the client (RFC 5424 with structured
 * data, RFC 3164, a 40,000-byte message with -S 65536, --octet-count with
 * a newline inside the frame) plus lines written by the test (a UDP
 * datagram with and without a trailing newline, one holding two lines, a line that is not syslog),
 * and the file sink's output checked field by field.
 *
 * logger runs with TZ=UTC, so its RFC 3164 local time is UTC, as the
 * source's syslog_timezone default says.  Without logger the logger test
 * skips with a message (Debian: bsdutils).
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_syslog
 */
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

extern char **environ;

static struct harness H;
static int tcp_port, udp_port, admin_port;
static char out_path[PATH_MAX];

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
}

static void
teardown(void)
{
    harness_fini(&H);
}

/* Two syslog sources (tcp "st", udp "su") into one file. */
static void
start_daemon(void)
{
    tcp_port = harness_free_port(SOCK_STREAM);
    udp_port = harness_free_port(SOCK_DGRAM);
    admin_port = harness_free_port(SOCK_STREAM);
    harness_path(&H, "out.ndjson", out_path, sizeof(out_path));
    ck_assert(tcp_port > 0 && udp_port > 0 && admin_port > 0);
    ck_assert(harness_write_config(&H,
                                   "[daemon]\n"
                                   "producer_threads = 1\n"
                                   "admin_listen = 127.0.0.1:%d\n"
                                   "\n[source st]\n"
                                   "type = tcp\n"
                                   "listen = 127.0.0.1:%d\n"
                                   "codec = syslog\n"
                                   "add_fields = source\n"
                                   "queue = main\n"
                                   "\n[source su]\n"
                                   "type = udp\n"
                                   "listen = 127.0.0.1:%d\n"
                                   "codec = syslog\n"
                                   "syslog_format = auto\n"
                                   "syslog_timezone = UTC\n"
                                   "add_fields = source\n"
                                   "queue = main\n"
                                   "\n[queue main]\n"
                                   "\n[sink archive]\n"
                                   "type = file\n"
                                   "queue = main\n"
                                   "path = %s\n",
                                   admin_port, tcp_port, udp_port, out_path) == 0);
    ck_assert(harness_start(&H, NULL) == 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, tcp_port, 10000) == HARNESS_WAIT_OK,
                    "tcp source not listening");
    HARNESS_REQUIRE(&H, harness_wait_udp(&H, udp_port, 10000) == HARNESS_WAIT_OK,
                    "udp source not bound");
}

/* Runs argv (PATH lookup) with TZ=UTC; fails the test unless it exits 0
 * within 10 s. */
static void
run_cmd(const char *const *argv)
{
    char *env[] = {"TZ=UTC", "PATH=/usr/bin:/bin:/usr/sbin:/sbin", NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, env);
    ck_assert_msg(rc == 0, "spawn %s: %s", argv[0], strerror(rc));
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (harness_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ck_abort_msg("%s did not finish within 10 s", argv[0]);
        }
        harness_poll_step(5);
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed (status %d)", argv[0],
                  status);
}

/* Every output line, parsed (each must be valid JSON). */
static json_t *
read_events(size_t want)
{
    harness_require_lines(&H, out_path, want, 10000);
    size_t len = 0;
    char *buf = harness_read_file(out_path, &len);
    ck_assert_ptr_nonnull(buf);
    json_t *all = json_array();
    char *p = buf;
    while (p < buf + len) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        ck_assert_ptr_nonnull(nl);
        json_error_t err;
        json_t *e = json_loadb(p, (size_t)(nl - p), 0, &err);
        ck_assert_msg(e != NULL, "output line is not JSON: %.*s", (int)(nl - p), p);
        json_array_append_new(all, e);
        p = nl + 1;
    }
    free(buf);
    ck_assert_uint_eq(json_array_size(all), want);
    return all;
}

/* The one event whose "message" is msg (fails unless exactly one). */
static json_t *
find(json_t *all, const char *msg)
{
    json_t *found = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        const char *m = json_string_value(json_object_get(e, "message"));
        if (m != NULL && strcmp(m, msg) == 0) {
            ck_assert_msg(found == NULL, "message \"%s\" twice", msg);
            found = e;
        }
    }
    ck_assert_msg(found != NULL, "no event with message \"%s\"", msg);
    return found;
}

static void
require_str(json_t *e, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(e, key));
    char *dump = json_dumps(e, JSON_SORT_KEYS);
    ck_assert_msg(v != NULL && strcmp(v, want) == 0, "%s: want \"%s\" in %s", key, want, dump);
    free(dump);
}

static void
require_absent(json_t *e, const char *key)
{
    char *dump = json_dumps(e, JSON_SORT_KEYS);
    ck_assert_msg(json_object_get(e, key) == NULL, "%s should be absent in %s", key, dump);
    free(dump);
}

/* "timestamp" is RFC 3339 UTC with microseconds, within 10 minutes of now. */
static void
require_recent(json_t *e)
{
    const char *ts = json_string_value(json_object_get(e, "timestamp"));
    struct tm tm;
    ck_assert_ptr_nonnull(ts);
    ck_assert_uint_eq(strlen(ts), 27);
    ck_assert_int_eq(ts[26], 'Z');
    memset(&tm, 0, sizeof(tm));
    ck_assert_ptr_nonnull(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    long d = (long)(timegm(&tm) - time(NULL));
    ck_assert_msg(d > -600 && d < 600, "timestamp %s is %ld s off", ts, d);
}

START_TEST(test_syslog_logger_tcp_udp)
{
    char tp[16], up[16], host[256];
    if (access("/usr/bin/logger", X_OK) != 0) {
        fprintf(stderr, "check_syslog: SKIP logger test: /usr/bin/logger missing (bsdutils)\n");
        return;
    }
    start_daemon();
    snprintf(tp, sizeof(tp), "%d", tcp_port);
    snprintf(up, sizeof(up), "%d", udp_port);
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);

    const char *a[] = {"logger",
                       "-n",
                       "127.0.0.1",
                       "-P",
                       tp,
                       "-T",
                       "--rfc5424",
                       "--sd-id",
                       "zoo@123",
                       "--sd-param",
                       "tiger=\"hungry \\\"big\\\" cat\"",
                       "--msgid",
                       "M1",
                       "-t",
                       "app5424",
                       "--id=4242",
                       "-p",
                       "local3.warning",
                       "hello tcp 5424",
                       NULL};
    const char *b[] = {"logger", "-n",      "127.0.0.1",      "-P", tp, "-T", "--rfc3164",
                       "-t",     "app3164", "hello tcp 3164", NULL};
    const char *c[] = {"logger", "-n",     "127.0.0.1",      "-P", up, "-d", "--rfc5424",
                       "-t",     "appudp", "hello udp 5424", NULL};
    const char *d[] = {"logger",         "-n", "127.0.0.1",  "-P",      up,   "-d",
                       "--rfc3164",      "-t", "appudp3164", "--id=77", "-p", "daemon.err",
                       "hello udp 3164", NULL};
    /* -S 65536: a 40,000-byte message in one RFC 5424 line over TCP. */
    static char big[40001];
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "long:", 5);
    const char *l[] = {"logger", "-n",    "127.0.0.1", "-P",      tp,  "-T", "--rfc5424",
                       "-S",     "65536", "-t",        "applong", big, NULL};
    run_cmd(a);
    run_cmd(b);
    run_cmd(c);
    run_cmd(d);
    /* --octet-count on a fresh connection: the codec's default framing
     * (auto) takes it, an LF inside the frame stays in the message. */
    const char *o[] = {"logger", "-n", "127.0.0.1", "-P", tp, "-T", "--octet-count", "--rfc5424",
                       "-t", "appoctet", "octet\ncounted", NULL};
    run_cmd(l);
    run_cmd(o);

    json_t *all = read_events(6);
    json_t *e = find(all, "hello tcp 5424");
    require_str(e, "source", "st");
    require_str(e, "facility", "local3");
    require_str(e, "severity", "warning");
    require_str(e, "appname", "app5424");
    require_str(e, "procid", "4242");
    require_str(e, "msgid", "M1");
    require_str(e, "hostname", host);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "version")), 1);
    require_recent(e);
    json_t *sd = json_object_get(e, "structured_data");
    require_str(json_object_get(sd, "zoo@123"), "tiger", "hungry \"big\" cat");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(sd, "timeQuality"), "tzKnown"));

    e = find(all, "hello tcp 3164");
    require_str(e, "source", "st");
    require_str(e, "facility", "user");
    require_str(e, "severity", "notice");
    require_str(e, "appname", "app3164");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "hostname")));
    require_absent(e, "version");
    require_absent(e, "structured_data");
    require_recent(e);

    e = find(all, "hello udp 5424");
    require_str(e, "source", "su");
    require_str(e, "appname", "appudp");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "version")), 1);
    require_recent(e);

    e = find(all, "hello udp 3164");
    require_str(e, "source", "su");
    require_str(e, "facility", "daemon");
    require_str(e, "severity", "err");
    require_str(e, "appname", "appudp3164");
    require_str(e, "procid", "77");
    require_recent(e);

    e = find(all, "octet\ncounted");
    require_str(e, "appname", "appoctet");
    require_str(e, "source", "st");

    e = find(all, big);
    require_str(e, "appname", "applong");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "version")), 1);
    json_decref(all);
    harness_require_stop_ok(&H);
}
END_TEST

/* Lines the test writes itself: UDP datagrams with and without a trailing
 * newline and one with two lines (one event each), a TCP line that is not
 * syslog (kept, counted unparsed), a BOM in a 5424 MSG. */
START_TEST(test_syslog_datagrams_and_unparsed)
{
    static const char d1[] = "<13>1 - h a - - - no newline";
    static const char d2[] = "<13>1 - h a - - - one newline\n";
    static const char d3[] = "<13>1 - h a - - - crlf\r\n";
    static const char d4[] = "<13>1 - h a - - - first line\nsecond line\n";
    static const char d5[] = "\n";
    static const char t1[] = "not syslog at all\n"
                             "<14>1 2026-12-05T10:00:00.5+01:00 h app - - - \xef\xbb\xbf"
                             "bom stripped\n";
    start_daemon();
    int u = harness_udp_connect(udp_port);
    ck_assert_int_ge(u, 0);
    ck_assert_int_eq(harness_udp_send(u, d1, sizeof(d1) - 1), 0);
    ck_assert_int_eq(harness_udp_send(u, d2, sizeof(d2) - 1), 0);
    ck_assert_int_eq(harness_udp_send(u, d3, sizeof(d3) - 1), 0);
    ck_assert_int_eq(harness_udp_send(u, d4, sizeof(d4) - 1), 0);
    ck_assert_int_eq(harness_udp_send(u, d5, sizeof(d5) - 1), 0);
    close(u);
    int t = harness_tcp_connect(tcp_port, 5000);
    ck_assert_int_ge(t, 0);
    ck_assert_int_eq(harness_send_all(t, t1, sizeof(t1) - 1), 0);
    close(t);

    json_t *all = read_events(6);
    require_str(find(all, "no newline"), "source", "su");
    require_str(find(all, "one newline"), "hostname", "h");
    require_str(find(all, "crlf"), "appname", "a");
    require_str(find(all, "first line\nsecond line"), "source", "su");
    json_t *e = find(all, "not syslog at all");
    require_str(e, "source", "st");
    ck_assert_uint_eq(json_object_size(e), 2);
    e = find(all, "bom stripped");
    require_str(e, "timestamp", "2026-12-05T09:00:00.500000Z");
    json_decref(all);
    harness_require_metric(&H, admin_port, "sluice_source_unparsed_events_total{source=\"st\"}", 1,
                           false, 5000);
    harness_require_metric(&H, admin_port, "sluice_source_unparsed_events_total{source=\"su\"}", 0,
                           false, 5000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "not parsed by codec syslog"),
                    "no log line for the unparsed line");
    harness_require_stop_ok(&H);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("syslog");
    tcase_add_test(harness_tcase(s, "logger", 60, setup, teardown), test_syslog_logger_tcp_udp);
    tcase_add_test(harness_tcase(s, "datagrams_unparsed", 60, setup, teardown),
                   test_syslog_datagrams_and_unparsed);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
