/*
 * check_dashboard — every panel query of docs/grafana/sluice-dashboard.json
 * and every example alert expression of docs/monitoring.md returns data from
 * a real Prometheus (Debian's prometheus binary, started here on loopback
 * with a temp config and data dir, stopped by PID) that scrapes a real
 * sluiced under a small bounded load.
 *
 * The daemon runs two pipelines: TCP source app -> queue main -> file sink
 * archive (fsync = batch, so the fsync histogram has data), and UDP source
 * app2 -> disk queue side (so the disk queue series exist) -> TCP sink fwd
 * aimed at a closed port (so it fails: sluice_sink_up 0).  A load thread sends valid events and a few invalid
 * lines (drops by reason) on both until the checks end (at most 45 s).
 *
 * Grafana's variables are given the values a dashboard user would see:
 * $instance = ".*" (All), $__rate_interval = 15s (Grafana's rule: four
 * scrape intervals of 1 s, at least 15 s).  An alert expression is checked
 * twice: its left-hand side (the expression without the final comparison)
 * must return data, and the alerts this set-up triggers on purpose
 * (SluiceEventsDropped, SluiceSinkFailing) must return data whole.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_dashboard
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#define PROMETHEUS "/usr/bin/prometheus"
#define CHECK_DEADLINE_MS 45000
#define CK_DEADLINE_S (CHECK_DEADLINE_MS / 1000)
#define MAX_EXPRS 128

static struct harness H;

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

static const char *
top(void)
{
    const char *t = getenv("SLUICE_TOP");
    return t != NULL ? t : ".";
}

/* --- the load ------------------------------------------------------------------------ */

struct load {
    int tcp_port, udp_port;
    atomic_bool stop;
    pthread_t thread;
};

static void *
load_main(void *arg)
{
    struct load *l = arg;
    char line[HARNESS_EVENT_BYTES];
    uint64_t seq = 0;
    int64_t end = harness_now_ms() + harness_ms(CHECK_DEADLINE_MS + 15000);
    int tcp = harness_tcp_connect(l->tcp_port, 5000);
    int udp = harness_udp_connect(l->udp_port);
    if (tcp < 0 || udp < 0) {
        return NULL;
    }
    /* About 2,000 events/s: 100 every 50 ms, and 2 invalid lines. */
    while (!atomic_load(&l->stop) && harness_now_ms() < end) {
        if (harness_send_events(tcp, seq, 100) < 0 ||
            harness_send_all(tcp, "not json\nnot json\n", 18) < 0) {
            break;
        }
        for (int i = 0; i < 5; i++) {
            size_t n = harness_event_line(line, seq + (uint64_t)i);
            harness_udp_send(udp, line, n - 1); /* one datagram, no newline */
        }
        harness_udp_send(udp, "not json", 8);
        seq += 100;
        harness_poll_step(50); /* pacing of the load, not synchronisation */
    }
    close(tcp);
    close(udp);
    return NULL;
}

/* --- Prometheus -------------------------------------------------------------------- */

static pid_t
prometheus_start(int port, int admin_port)
{
    char conf[PATH_MAX], data[PATH_MAX], log[PATH_MAX], listen[64], cflag[PATH_MAX + 32],
        dflag[PATH_MAX + 32];
    harness_path(&H, "prometheus.yml", conf, sizeof(conf));
    harness_path(&H, "prometheus-data", data, sizeof(data));
    harness_path(&H, "prometheus.log", log, sizeof(log));
    ck_assert_int_eq(harness_write_file(conf,
                                        "global:\n"
                                        "  scrape_interval: 1s\n"
                                        "  evaluation_interval: 1s\n"
                                        "scrape_configs:\n"
                                        "  - job_name: sluice\n"
                                        "    static_configs:\n"
                                        "      - targets: ['127.0.0.1:%d']\n",
                                        admin_port),
                     0);
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", port);
    snprintf(cflag, sizeof(cflag), "--config.file=%s", conf);
    snprintf(dflag, sizeof(dflag), "--storage.tsdb.path=%s", data);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
            _exit(127);
        }
        execl(PROMETHEUS, PROMETHEUS, cflag, dflag, listen, "--log.level=warn",
              "--storage.tsdb.retention.time=1h", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* SIGTERM, then SIGKILL after 10 s. */
static void
prometheus_stop(pid_t pid)
{
    int st;
    int64_t deadline = harness_now_ms() + harness_ms(10000);
    kill(pid, SIGTERM);
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (harness_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return;
        }
        harness_poll_step(20);
    }
}

/* Percent-encodes s for a query string. */
static void
urlencode(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Result count of an instant query; -1 if Prometheus did not answer success. */
static int
prom_query(int port, const char *expr)
{
    char enc[6000], path[6200];
    char *body = NULL;
    urlencode(expr, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", enc);
    int code = harness_http_get(port, path, 5000, &body);
    int n = -1;
    if (code == 200 && body != NULL) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *res = json_object_get(json_object_get(j, "data"), "result");
        const char *status = json_string_value(json_object_get(j, "status"));
        if (status != NULL && strcmp(status, "success") == 0 && json_is_array(res)) {
            n = (int)json_array_size(res);
        }
        json_decref(j);
    }
    free(body);
    return n;
}

/* --- the expressions --------------------------------------------------------------- */

struct expr {
    char text[4096];
    char what[160]; /* where it comes from, for messages */
};

/* Replaces every occurrence of from in s (in place, bounded by len). */
static void
replace_all(char *s, size_t len, const char *from, const char *to)
{
    char buf[4096];
    size_t fl = strlen(from);
    size_t o = 0;
    for (const char *p = s; *p != '\0' && o + 1 < sizeof(buf);) {
        if (strncmp(p, from, fl) == 0) {
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", to);
            p += fl;
        } else {
            buf[o++] = *p++;
        }
    }
    buf[o < sizeof(buf) ? o : sizeof(buf) - 1] = '\0';
    snprintf(s, len, "%s", buf);
}

static size_t
dashboard_exprs(struct expr *out, size_t max)
{
    char path[PATH_MAX];
    json_error_t err;
    snprintf(path, sizeof(path), "%s/docs/grafana/sluice-dashboard.json", top());
    json_t *d = json_load_file(path, 0, &err);
    ck_assert_msg(d != NULL, "%s:%d: %s", path, err.line, err.text);
    size_t n = 0, i, k;
    json_t *panel, *target;
    json_array_foreach(json_object_get(d, "panels"), i, panel)
    {
        json_array_foreach(json_object_get(panel, "targets"), k, target)
        {
            const char *e = json_string_value(json_object_get(target, "expr"));
            ck_assert_msg(e != NULL && n < max, "panel %zu target %zu: no expr", i, k);
            snprintf(out[n].text, sizeof(out[n].text), "%s", e);
            replace_all(out[n].text, sizeof(out[n].text), "$__rate_interval", "15s");
            replace_all(out[n].text, sizeof(out[n].text), "$instance", ".*");
            snprintf(out[n].what, sizeof(out[n].what), "panel \"%.100s\" %s",
                     json_string_value(json_object_get(panel, "title")),
                     json_string_value(json_object_get(target, "refId")));
            n++;
        }
    }
    json_decref(d);
    return n;
}

/* The "expr:" lines of the yaml block under "## Example alerting rules". */
static size_t
alert_exprs(struct expr *out, size_t max)
{
    char path[PATH_MAX];
    size_t len;
    snprintf(path, sizeof(path), "%s/docs/monitoring.md", top());
    char *md = harness_read_file(path, &len);
    ck_assert_msg(md != NULL, "cannot read %s", path);
    char *p = strstr(md, "## Example alerting rules");
    ck_assert_msg(p != NULL, "%s: no example alerting rules", path);
    char *end = strstr(p, "\n```\n");
    ck_assert_msg(end != NULL, "%s: the rules block is not closed", path);
    *end = '\0';
    size_t n = 0;
    const char *alert = "?";
    for (char *line = strtok(p, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *a = strstr(line, "- alert: ");
        char *e = strstr(line, "expr: ");
        if (a != NULL) {
            alert = a + 9;
        } else if (e != NULL && n < max) {
            snprintf(out[n].text, sizeof(out[n].text), "%s", e + 6);
            snprintf(out[n].what, sizeof(out[n].what), "alert %.100s", alert);
            n++;
        }
    }
    free(md);
    return n;
}

/* Cuts expr at its last comparison outside parentheses; false if it has none. */
static bool
strip_comparison(char *expr)
{
    int depth = 0;
    char *cut = NULL;
    for (char *p = expr; *p != '\0'; p++) {
        if (*p == '(' || *p == '{' || *p == '[') {
            depth++;
        } else if (*p == ')' || *p == '}' || *p == ']') {
            depth--;
        } else if (depth == 0 && p > expr && p[-1] == ' ' &&
                   (strncmp(p, "> ", 2) == 0 || strncmp(p, "< ", 2) == 0 ||
                    strncmp(p, "== ", 3) == 0 || strncmp(p, ">= ", 3) == 0 ||
                    strncmp(p, "<= ", 3) == 0 || strncmp(p, "!= ", 3) == 0)) {
            cut = p - 1;
        }
    }
    if (cut == NULL) {
        return false;
    }
    *cut = '\0';
    return true;
}

START_TEST(test_dashboard_queries_return_data)
{
    static struct expr exprs[MAX_EXPRS];
    static bool ok[MAX_EXPRS];
    if (access(PROMETHEUS, X_OK) != 0) {
        ck_abort_msg("%s is missing: `make check` installs it (scripts/deps.sh --test, Debian "
                     "package prometheus)",
                     PROMETHEUS);
    }
    int port = harness_free_port(SOCK_STREAM), udp = harness_free_port(SOCK_DGRAM),
        aport = harness_free_port(SOCK_STREAM), dead = harness_free_port(SOCK_STREAM),
        pport = harness_free_port(SOCK_STREAM);
    char out[PATH_MAX], dq[PATH_MAX];
    harness_path(&H, "out.ndjson", out, sizeof(out));
    harness_path(&H, "diskq", dq, sizeof(dq));
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\nproducer_threads = 1\nshutdown_timeout = 2s\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "[source app]\ntype = tcp\nlisten = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "[source app2]\ntype = udp\nlisten = 127.0.0.1:%d\n"
                                          "queue = side\n"
                                          "[queue main]\n"
                                          "[queue side]\ntype = disk\npath = %s\n"
                                          "max_size = 64MiB\n"
                                          "[sink archive]\ntype = file\nqueue = main\n"
                                          "path = %s\nfsync = batch\n"
                                          "[sink fwd]\ntype = tcp\nqueue = side\n"
                                          "target = 127.0.0.1:%d\n",
                                          aport, port, udp, dq, out, dead),
                     0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, port, 10000) == HARNESS_WAIT_OK, "not listening");

    size_t n = dashboard_exprs(exprs, MAX_EXPRS);
    size_t nd = n;
    n += alert_exprs(exprs + n, MAX_EXPRS - n);
    ck_assert_msg(nd >= 20, "only %zu dashboard queries", nd);
    ck_assert_msg(n - nd >= 7, "only %zu alert expressions", n - nd);
    /* Alerts: the left-hand side of each; then the ones triggered on purpose whole. */
    size_t nall = n;
    for (size_t i = nd; i < nall && n < MAX_EXPRS; i++) {
        bool whole = strstr(exprs[i].what, "SluiceEventsDropped") != NULL ||
                     strstr(exprs[i].what, "SluiceSinkFailing") != NULL;
        if (whole) {
            exprs[n] = exprs[i];
            snprintf(exprs[n].what + strlen(exprs[n].what),
                     sizeof(exprs[n].what) - strlen(exprs[n].what), " (whole, triggered)");
            n++;
        }
        ck_assert_msg(strip_comparison(exprs[i].text), "%s: no comparison in %s", exprs[i].what,
                      exprs[i].text);
    }

    struct load l = {.tcp_port = port, .udp_port = udp};
    atomic_init(&l.stop, false);
    ck_assert_int_eq(pthread_create(&l.thread, NULL, load_main, &l), 0);
    pid_t prom = prometheus_start(pport, aport);

    /* Poll every expression until it returns data or the deadline passes. */
    int64_t t0 = harness_now_ms();
    int64_t deadline = t0 + harness_ms(CHECK_DEADLINE_MS);
    size_t left = n;
    memset(ok, 0, sizeof(ok));
    while (left > 0 && harness_now_ms() < deadline) {
        for (size_t i = 0; i < n; i++) {
            if (!ok[i] && prom_query(pport, exprs[i].text) > 0) {
                ok[i] = true;
                left--;
                if (getenv("CHECK_DASHBOARD_VERBOSE") != NULL) {
                    fprintf(stderr, "%lld ms: %s\n", (long long)(harness_now_ms() - t0),
                            exprs[i].what);
                }
            }
        }
        if (left > 0) {
            harness_poll_step(500);
        }
    }
    atomic_store(&l.stop, true);
    pthread_join(l.thread, NULL);
    prometheus_stop(prom);

    char first[400] = "";
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) {
            fprintf(stderr, "check_dashboard: no data: %s: %s\n", exprs[i].what, exprs[i].text);
            if (first[0] == '\0') {
                snprintf(first, sizeof(first), "%.150s: %.200s", exprs[i].what, exprs[i].text);
            }
        }
    }
    HARNESS_REQUIRE(&H, left == 0,
                    "%zu of %zu queries returned no data within %d s (listed on stderr), the "
                    "first: %s",
                    left, n, CK_DEADLINE_S, first);
    harness_require_stop_ok(&H);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("dashboard");
    SRunner *sr;
    int failed;

    tcase_add_test(harness_tcase(s, "queries_return_data", 120, setup, teardown),
                   test_dashboard_queries_return_data);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
