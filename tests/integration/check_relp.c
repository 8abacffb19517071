/*
 * check_relp — the relp source against a real RELP sender: rsyslogd with
 * omrelp, started by the test with a private config and work directory
 * (nothing of /etc, no system service), fed over its own imtcp port on
 * loopback with the standard sequence-numbered events:
 *
 *   test → imtcp (rsyslogd) → omrelp → sluiced [source type = relp] → file
 *
 * The omrelp template is "%rawmsg%", so each RELP message is the event
 * line as sent, and the json codec writes it unchanged: the output file
 * can be checked byte for byte (harness_seqs).
 *
 *   exactly_once  100k events arrive exactly once; every message was
 *                 acknowledged once (sluice_source_relp_acks_total).
 *   disk_queue    a disk queue with fsync = interval (10 s): each ack
 *                 waits for a sync, and the queue syncs at once for a
 *                 waiting acknowledger (group commit): 2,000 messages in
 *                 well under a minute, each once.
 *   bad_input     a line the json codec refuses and one over max_line_bytes
 *                 are counted, logged and acknowledged (not resent for
 *                 ever); the events around them arrive exactly once.
 *   syslog        the default codec: rsyslog forwards RFC 5424
 *                 (RSYSLOG_SyslogProtocol23Format) and every message comes
 *                 out parsed (hostname, appname, procid, facility,
 *                 severity, version, message), each once.
 *   restart       sluiced is stopped (SIGTERM) and started again while the
 *                 stream flows: rsyslog resends what was not acknowledged,
 *                 so every event arrives at least once (RELP guarantees
 *                 at-least-once across a receiver restart); duplicates are
 *                 counted and reported, not failed.
 *   backpressure  the sink is stalled (SLUICE_TEST_STALL_FILE): the first
 *                 message is in the queue but never committed, so nothing
 *                 is acknowledged and the source takes no more; rsyslog
 *                 keeps the rest; after the stall every event arrives
 *                 exactly once.
 *   tls           tls = on with client certificates and tls_allowed_names:
 *                 rsyslog's omrelp with tls="on" (its GnuTLS driver; its
 *                 own certificate, verifying sluiced's by name) delivers
 *                 every event exactly once, while OpenSSL clients with a
 *                 certificate from another CA, an expired one, a trusted
 *                 one with a name not allowed, none at all, and a
 *                 plaintext client are refused, each counted under its
 *                 reason in sluice_tls_handshake_failures_total.
 *                 Certificates: tests/certs.sh (openssl CLI).
 *   stop_stalled  SIGTERM while the source waits behind a stalled sink:
 *                 the stop is bounded by shutdown_timeout, the waiting
 *                 message is not acknowledged (the writer gives it up with
 *                 the queue), and after a restart rsyslog resends it and
 *                 the rest: every event arrives, none acknowledged is lost.
 *
 * rsyslogd runs in the foreground (-n) in the test's process group, so
 * Check's kill after a failed test ends it too; a passing test stops it by
 * PID and checks that it removed its pid file.  Skipped with a message
 * when rsyslogd or omrelp is not installed (scripts/deps.sh --test).
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define RSYSLOGD "/usr/sbin/rsyslogd"
#define N_EVENTS harness_events(20000) /* each RELP message waits for its write (source_relp.c): the suite stays short */

static struct harness H;

/* The daemon (harness_std: source "app" of the given type) and rsyslogd. */
static struct harness_std S;

struct relp_world {
    int feed_port; /* rsyslogd's imtcp */
    char rs_conf[PATH_MAX];
    char rs_pid[PATH_MAX];
    char rs_work[PATH_MAX];
    char rs_log[PATH_MAX];
    pid_t rs;
};

static struct relp_world W;

#define M_ACKS "sluice_source_relp_acks_total{source=\"app\"}"
#define M_PAUSED "sluice_source_paused_connections{source=\"app\"}"
#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"}"

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&W, 0, sizeof(W));
    memset(&S, 0, sizeof(S));
    W.rs = -1;
}

static void
teardown(void)
{
    harness_fini(&H);
}

/* rsyslogd and its omrelp module, or the reason the tests skip. */
static bool
have_rsyslog(void)
{
    glob_t g = {0};
    bool ok = access(RSYSLOGD, X_OK) == 0;
    ok = glob("/usr/lib/*/rsyslog/omrelp.so", 0, NULL, &g) == 0 && ok;
    globfree(&g);
    if (!ok) {
        fprintf(stderr, "check_relp: SKIP: rsyslogd with omrelp not installed "
                        "(sh scripts/deps.sh --test)\n");
    }
    return ok;
}

/* sluiced: harness_std with a relp source (json codec), started (or, the
 * second time, restarted with the same config) and listening. */
static void
start_sluiced(const char *daemon_extra, const char *queue_extra, const char *source_extra,
              const char *const *env)
{
    S.type = "relp";
    S.codec = "json";
    S.daemon_extra = daemon_extra;
    S.queue_extra = queue_extra;
    S.source_extra = source_extra;
    harness_std_require_start(&H, &S, env);
}

/*
 * The rsyslog side, as docs/operations.md shows it ("Forwarding from
 * rsyslog over RELP"): an imtcp input bound to a ruleset whose one action
 * is omrelp to sluiced, with a disk-less linked-list action queue that
 * retries for ever (resumeRetryCount -1) and never discards.
 */
static const char rsyslog_conf_fmt[] =
    "global(workDirectory=\"%s\")\n"
    "module(load=\"imtcp\")\n"
    "module(load=\"omrelp\")\n"
    "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"to_sluiced\")\n"
    "template(name=\"sluice_raw\" type=\"string\" string=\"%%rawmsg%%\")\n"
    "ruleset(name=\"to_sluiced\") {\n"
    "    action(type=\"omrelp\" target=\"127.0.0.1\" port=\"%d\" template=\"%s\"%s\n"
    "           queue.type=\"LinkedList\" queue.size=\"500000\"\n"
    "           action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")\n"
    "}\n";

/* rsyslogd with omrelp using template tmpl; action_extra: more omrelp
 * parameters (" tls=\"on\" ..."). */
static void
start_rsyslog_with(const char *tmpl, const char *action_extra)
{
    W.feed_port = harness_free_port(SOCK_STREAM);
    harness_path(&H, "rsyslog.conf", W.rs_conf, sizeof(W.rs_conf));
    harness_path(&H, "rsyslog.pid", W.rs_pid, sizeof(W.rs_pid));
    harness_path(&H, "rsyslog-work", W.rs_work, sizeof(W.rs_work));
    harness_path(&H, "rsyslog.log", W.rs_log, sizeof(W.rs_log));
    ck_assert_int_eq(mkdir(W.rs_work, 0700), 0);
    ck_assert_int_eq(
        harness_write_file(W.rs_conf, rsyslog_conf_fmt, W.rs_work, W.feed_port, S.port, tmpl,
                           action_extra),
        0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        int fd = open(W.rs_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(RSYSLOGD, "rsyslogd", "-n", "-f", W.rs_conf, "-i", W.rs_pid, (char *)NULL);
        _exit(127);
    }
    W.rs = pid;
    int64_t deadline = harness_now_ms() + harness_ms(20000);
    int fd = -1;
    while (fd < 0 && harness_now_ms() < deadline) {
        fd = harness_tcp_connect(W.feed_port, 1000);
        if (fd < 0) {
            ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0, "rsyslogd exited; see %s", W.rs_log);
            harness_poll_step(20);
        }
    }
    ck_assert_msg(fd >= 0, "rsyslogd does not listen on %d; see %s", W.feed_port, W.rs_log);
    close(fd);
}

/* The configuration operations.md shows: each message as it was received. */
static void
start_rsyslog(void)
{
    start_rsyslog_with("sluice_raw", "");
}

/* Stops rsyslogd by its PID and checks it exited and removed its pid file. */
static void
stop_rsyslog(void)
{
    int status = 0;
    ck_assert_int_eq(kill(W.rs, SIGTERM), 0);
    int64_t deadline = harness_now_ms() + harness_ms(30000);
    pid_t r = 0;
    while ((r = waitpid(W.rs, &status, WNOHANG)) == 0 && harness_now_ms() < deadline) {
        harness_poll_step(20);
    }
    ck_assert_msg(r == W.rs, "rsyslogd (pid %d) did not exit on SIGTERM", (int)W.rs);
    W.rs = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rsyslogd status 0x%x", status);
    ck_assert_msg(!harness_exists(W.rs_pid), "rsyslogd left its pid file %s", W.rs_pid);
    /* An in-memory action queue: nothing was spilled to its work dir. */
    DIR *d = opendir(W.rs_work);
    ck_assert_msg(d != NULL, "%s: %s", W.rs_work, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        ck_assert_msg(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0,
                      "rsyslogd left %s in its work dir %s", e->d_name, W.rs_work);
    }
    closedir(d);
}

/* Sends events [0, n) to rsyslogd's imtcp, one connection. */
static void
feed(uint64_t n)
{
    int fd = harness_tcp_connect(W.feed_port, 60000);
    ck_assert_msg(fd >= 0, "connect to rsyslogd: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(fd, 0, n), 0);
    close(fd);
}

static double
metric(const char *name)
{
    double v = -1;
    (void)harness_metric_get(S.admin_port, name, &v);
    return v;
}

/* Polls the output until every seq in [0, N_EVENTS) is there at least once
 * (duplicates allowed: resent after a restart) and no line is bad; fails
 * the test after 120 s.  seqs is left filled (caller frees). */
static void
require_every_seq(struct harness_seqs *seqs, const char *after)
{
    int64_t deadline = harness_now_ms() + harness_ms(120000);
    for (;;) {
        ck_assert_int_eq(harness_seqs_init(seqs, N_EVENTS), 0);
        ck_assert_int_eq(harness_seqs_add_file(seqs, S.out_path, true), 0);
        uint64_t have = harness_seqs_count_range(seqs, 0, N_EVENTS);
        if (have == (uint64_t)N_EVENTS) {
            break;
        }
        HARNESS_REQUIRE(&H, harness_now_ms() < deadline,
                        "after %s only %" PRIu64 " of %d seqs arrived", after, have, N_EVENTS);
        harness_seqs_fini(seqs);
        harness_poll_step(100);
    }
    HARNESS_REQUIRE(&H, seqs->bad == 0, "after %s: %" PRIu64 " bad lines (%s)", after, seqs->bad,
                    seqs->first_error);
}

/* --- exactly once -------------------------------------------------------------------- */

START_TEST(test_relp_exactly_once)
{
    const char *paths[] = {S.out_path};
    if (!have_rsyslog()) {
        return;
    }
    start_sluiced("", "", "", NULL);
    start_rsyslog();
    feed(N_EVENTS);
    harness_require_lines(&H, S.out_path, N_EVENTS, 120000);
    harness_require_metric(&H, S.admin_port, M_ACKS, N_EVENTS, false, 10000);
    stop_rsyslog();
    harness_require_stop_ok(&H);
    harness_require_exactly_once(&H, paths, 1, N_EVENTS);
}
END_TEST

/* --- a disk queue with fsync = interval: group commit --------------------------------- */

/* Each message waits for the disk queue's sync before its ack; the queue
 * syncs at once for a waiting acknowledger instead of every
 * fsync_interval (which here is 10 s: without the early sync the 2,000
 * messages would take hours, one per interval). */
START_TEST(test_relp_disk_queue)
{
    const char *paths[] = {S.out_path};
    static char queue_extra[256];
    const uint64_t n = 2000;
    if (!have_rsyslog()) {
        return;
    }
    snprintf(queue_extra, sizeof(queue_extra),
             "type = disk\npath = %s/q\nmax_size = 64MiB\nfsync = interval\n"
             "fsync_interval = 10s\n",
             H.dir);
    start_sluiced("", queue_extra, "", NULL);
    start_rsyslog();
    feed(n);
    harness_require_lines(&H, S.out_path, n, 60000);
    harness_require_metric(&H, S.admin_port, M_ACKS, (double)n, false, 10000);
    stop_rsyslog();
    harness_require_stop_ok(&H);
    harness_require_exactly_once(&H, paths, 1, n);
}
END_TEST

/* --- bad input: counted, logged, acknowledged ---------------------------------------- */

START_TEST(test_relp_bad_input)
{
    const char *paths[] = {S.out_path};
    static char big[2001];
    if (!have_rsyslog()) {
        return;
    }
    start_sluiced("", "", "max_line_bytes = 1KiB\n", NULL);
    start_rsyslog();
    int fd = harness_tcp_connect(W.feed_port, 60000);
    ck_assert_msg(fd >= 0, "connect to rsyslogd: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(fd, 0, 500), 0);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\n';
    ck_assert_int_eq(harness_send_all(fd, "not json\n", 9), 0);
    ck_assert_int_eq(harness_send_all(fd, big, sizeof(big)), 0);
    ck_assert_int_eq(harness_send_events(fd, 500, 500), 0);
    close(fd);
    harness_require_lines(&H, S.out_path, 1000, 60000);
    harness_require_metric(&H, S.admin_port, M_ACKS, 1002, false, 10000);
    harness_require_metric(&H, S.admin_port,
                           "sluice_source_dropped_events_total{source=\"app\",reason=\"invalid\"}",
                           1, false, 10000);
    harness_require_metric(&H, S.admin_port,
                           "sluice_source_dropped_events_total{source=\"app\",reason=\"oversize\"}",
                           1, false, 10000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "dropped a message"), "no log line for the drops");
    stop_rsyslog();
    harness_require_stop_ok(&H);
    harness_require_exactly_once(&H, paths, 1, 1000);
}
END_TEST

/* --- the default codec: syslog, parsed ---------------------------------------------- */

#define SYSLOG_EVENTS 1000

/* True when line (one output object) has every field the test sends. */
static bool
syslog_fields_ok(const char *p)
{
    static const char *const want[] = {
        "\"hostname\":\"testhost\"", "\"appname\":\"myapp\"", "\"procid\":\"42\"",
        "\"facility\":\"user\"",     "\"severity\":\"info\"", "\"version\":1",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(p, want[i]) == NULL) {
            return false;
        }
    }
    return true;
}

START_TEST(test_relp_syslog)
{
    static const char msg_key[] = "\"message\":\"";
    static unsigned char seen[SYSLOG_EVENTS];
    char line[128];
    if (!have_rsyslog()) {
        return;
    }
    S.type = "relp";
    S.codec = "syslog";
    harness_std_require_start(&H, &S, NULL);
    start_rsyslog_with("RSYSLOG_SyslogProtocol23Format", "");
    int fd = harness_tcp_connect(W.feed_port, 60000);
    ck_assert_msg(fd >= 0, "connect to rsyslogd: %s", strerror(errno));
    for (int i = 0; i < SYSLOG_EVENTS; i++) {
        int n = snprintf(line, sizeof(line),
                         "<14>Jan  1 00:00:00 testhost myapp[42]: relp message %d\n", i);
        ck_assert_int_eq(harness_send_all(fd, line, (size_t)n), 0);
    }
    close(fd);
    harness_require_lines(&H, S.out_path, SYSLOG_EVENTS, 60000);
    harness_require_metric(&H, S.admin_port, M_ACKS, SYSLOG_EVENTS, false, 10000);
    stop_rsyslog();
    harness_require_stop_ok(&H);
    /* Every line parsed (rsyslog forwarded RFC 5424), each message once. */
    size_t len = 0;
    char *out = harness_read_file(S.out_path, &len);
    ck_assert_ptr_nonnull(out);
    memset(seen, 0, sizeof(seen));
    int lines = 0;
    for (char *p = out, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        *nl = '\0';
        lines++;
        HARNESS_REQUIRE(&H, syslog_fields_ok(p), "line %d not parsed as expected: %s", lines, p);
        /* rsyslog's %msg% keeps the space after a 3164 tag's colon. */
        const char *m = strstr(p, msg_key);
        HARNESS_REQUIRE(&H, m != NULL, "no message in line %d: %s", lines, p);
        m += strlen(msg_key);
        m += *m == ' ';
        HARNESS_REQUIRE(&H, strncmp(m, "relp message ", 13) == 0, "line %d: message %s", lines, m);
        long seq = strtol(m + 13, NULL, 10);
        HARNESS_REQUIRE(&H, seq >= 0 && seq < SYSLOG_EVENTS && seen[seq]++ == 0,
                        "message %ld out of range or twice", seq);
    }
    free(out);
    HARNESS_REQUIRE(&H, lines == SYSLOG_EVENTS, "%d lines, want %d", lines, SYSLOG_EVENTS);
}
END_TEST

/* --- a restart of sluiced mid-stream ------------------------------------------------- */

START_TEST(test_relp_restart)
{
    struct harness_seqs seqs;
    if (!have_rsyslog()) {
        return;
    }
    start_sluiced("", "", "", NULL);
    start_rsyslog();
    feed(N_EVENTS);
    /* Mid-stream: some events are written, rsyslog still has many. */
    harness_require_lines(&H, S.out_path, N_EVENTS / 5, 60000);
    harness_require_stop_ok(&H);
    uint64_t before = harness_file_lines(S.out_path);
    HARNESS_REQUIRE(&H, before < (uint64_t)N_EVENTS, "all %" PRIu64 " events arrived before the restart",
                    before);
    start_sluiced("", "", "", NULL);
    require_every_seq(&seqs, "the restart");
    fprintf(stderr,
            "relp restart: %" PRIu64 " lines before the restart; %" PRIu64 " lines, %" PRIu64
            " duplicated seqs (resent, unacknowledged at the stop)\n",
            before, seqs.lines, seqs.dups);
    harness_seqs_fini(&seqs);
    stop_rsyslog();
    harness_require_stop_ok(&H);
}
END_TEST

/* --- backpressure: a stalled sink ---------------------------------------------------- */

/* A small queue: 8 chunks of 8 KiB. */
#define STALL_QUEUE "capacity = 64KiB\nchunk_size = 8KiB\n"

/* Stalls the sink (SLUICE_TEST_STALL_FILE in env_stall) and starts sluiced. */
static void
start_stalled(const char *daemon_extra, char *stall, char *env_stall)
{
    const char *env[] = {env_stall, NULL};
    harness_path(&H, "stall", stall, PATH_MAX);
    snprintf(env_stall, PATH_MAX + 32, "SLUICE_TEST_STALL_FILE=%s", stall);
    ck_assert_int_eq(harness_write_file(stall, "stalled\n"), 0);
    start_sluiced(daemon_extra, STALL_QUEUE, "max_line_bytes = 1KiB\n", env);
}

/* Feeds N_EVENTS while the sink is stalled: the first message reaches the
 * queue and is never committed, so it is not acknowledged and the source
 * takes no other. */
static void
feed_stalled(void)
{
    feed(N_EVENTS);
    harness_require_metric(&H, S.admin_port, M_RECEIVED, 1, false, 30000);
    double acks = metric(M_ACKS);
    double received = metric(M_RECEIVED);
    HARNESS_REQUIRE(&H, acks == 0 && received == 1,
                    "stalled: %.0f acknowledgements, %.0f events taken (want 0 and 1)", acks,
                    received);
    HARNESS_REQUIRE(&H, harness_file_lines(S.out_path) == 0, "a stalled sink wrote lines");
    HARNESS_REQUIRE(&H, harness_alive(&H), "sluiced exited while stalled");
}

START_TEST(test_relp_backpressure)
{
    const char *paths[] = {S.out_path};
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    if (!have_rsyslog()) {
        return;
    }
    start_stalled("", stall, env_stall);
    start_rsyslog();
    feed_stalled();
    /* rsyslog keeps the rest; after the stall all arrive, once. */
    ck_assert_int_eq(unlink(stall), 0);
    harness_require_lines(&H, S.out_path, N_EVENTS, 120000);
    stop_rsyslog();
    harness_require_stop_ok(&H);
    harness_require_exactly_once(&H, paths, 1, N_EVENTS);
}
END_TEST

/*
 * SIGTERM while the source waits behind a stalled sink: the stop is
 * bounded by shutdown_timeout (the waiting message is never answered; the
 * relp thread is left parked), and after a restart rsyslog resends what
 * was not acknowledged, which is everything: no event is missing.
 */
START_TEST(test_relp_stop_stalled)
{
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    struct harness_seqs seqs;
    int status = 0;
    if (!have_rsyslog()) {
        return;
    }
    start_stalled("shutdown_timeout = 2s\n", stall, env_stall);
    start_rsyslog();
    feed_stalled();
    int64_t t0 = harness_now_ms();
    HARNESS_REQUIRE(&H, harness_stop(&H, SIGTERM, 15000, &status) == HARNESS_WAIT_OK,
                    "sluiced did not exit within 15 s of SIGTERM (shutdown_timeout = 2s)");
    int64_t took = harness_now_ms() - t0;
    HARNESS_REQUIRE(&H, took < harness_ms(6000), "the stop took %" PRId64 " ms", took);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "relp thread left waiting"),
                    "no word of the parked relp thread in the log");
    ck_assert_int_eq(unlink(stall), 0);
    start_sluiced("", "", "", NULL);
    require_every_seq(&seqs, "the restart after the stalled stop");
    fprintf(stderr,
            "relp stop_stalled: stop took %" PRId64 " ms; after the restart all %d seqs, "
            "%" PRIu64 " duplicated\n",
            took, N_EVENTS, seqs.dups);
    harness_seqs_fini(&seqs);
    stop_rsyslog();
    harness_require_stop_ok(&H);
}
END_TEST

/* --- TLS ------------------------------------------------------------------------------ */

static char certs[128];

static const char *
cert_path(char *buf, const char *name)
{
    snprintf(buf, PATH_MAX, "%s/%s", certs, name);
    return buf;
}

/*
 * An OpenSSL client with leaf's certificate (NULL: none) that completes
 * what it can of a handshake with sluiced's relp port and then waits for
 * the server to close.  True when refused: the handshake failed, or (TLS
 * 1.3: a client certificate is judged after the client's side finished)
 * the first read sees the connection closed.
 */
static bool
tls_refused(int port, const char *leaf)
{
    char p[PATH_MAX];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, cert_path(p, "ca.pem"), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (leaf != NULL) {
        char k[PATH_MAX];
        snprintf(k, sizeof(k), "%s/%s.key", certs, leaf);
        snprintf(p, sizeof(p), "%s/%s.pem", certs, leaf);
        ck_assert_int_eq(SSL_CTX_use_certificate_file(ctx, p, SSL_FILETYPE_PEM), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM), 1);
    }
    int fd = harness_tcp_connect(port, 5000);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 10 * harness_ms(1000) / 1000, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set1_host(ssl, "localhost");
    bool refused = true;
    if (SSL_connect(ssl) == 1) {
        /* A refused client may get librelp's "serverclose" first. */
        char b[256];
        int r;
        while ((r = SSL_read(ssl, b, sizeof(b))) > 0) {
        }
        int e = SSL_get_error(ssl, r);
        refused = e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SSL ||
                  (e == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return refused;
}

static char tls_extra[PATH_MAX * 4];
#define M_OTHER "sluice_tls_handshake_failures_total{source=\"app\",reason=\"other\"}"

START_TEST(test_relp_tls)
{
    const char *paths[] = {S.out_path};
    const uint64_t n = (uint64_t)harness_events(5000);
    char cmd[PATH_MAX * 2], a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];
    static char omrelp_tls[PATH_MAX * 4];
    const char *top = getenv("SLUICE_TOP");
    if (!have_rsyslog()) {
        return;
    }
    signal(SIGPIPE, SIG_IGN);
    harness_path(&H, "certs", certs, sizeof(certs));
    snprintf(cmd, sizeof(cmd), "sh %s/tests/certs.sh %s", top != NULL ? top : ".", certs);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(tls_extra, sizeof(tls_extra),
             "tls = on\ntls_cert_file = %s\ntls_key_file = %s\ntls_ca_file = %s\n"
             "tls_allowed_names = edge1\n",
             cert_path(a, "server.pem"), cert_path(b, "server.key"), cert_path(c, "ca.pem"));
    /* librelp 1.11's OpenSSL code leaks the peer certificate of every TLS
     * session (SSL_get_peer_certificate, never freed); libcrypto has no
     * frame pointers, so an ASan build needs the slow unwinder to see
     * librelp.so on the stack (tests/lsan.supp).  Ignored elsewhere. */
    static const char *const env[] = {"ASAN_OPTIONS=fast_unwind_on_malloc=0", NULL};
    start_sluiced("", "", tls_extra, env);

    /* The refusals, each under its reason; the server goes on serving. */
    ck_assert(tls_refused(S.port, "otherca"));
    ck_assert(tls_refused(S.port, "expired"));
    ck_assert(tls_refused(S.port, "intruder"));
    ck_assert(tls_refused(S.port, NULL));
    int plain = harness_tcp_connect(S.port, 5000);
    ck_assert_int_ge(plain, 0);
    char line[HARNESS_EVENT_BYTES + 8];
    size_t len = harness_event_line(line, 900000);
    ck_assert_int_eq(send(plain, line, len, MSG_NOSIGNAL), (ssize_t)len);
    static const char *const reasons[] = {"untrusted", "expired", "name", "no_cert", "plaintext"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char m[160];
        snprintf(m, sizeof(m), "sluice_tls_handshake_failures_total{source=\"app\",reason=\"%s\"}",
                 reasons[i]);
        harness_require_metric(&H, S.admin_port, m, 1, false, 10000);
    }
    close(plain);

    /* rsyslog over TLS with the good certificate: every event, once. */
    snprintf(omrelp_tls, sizeof(omrelp_tls),
             "\n           tls=\"on\" tls.caCert=\"%s\" tls.myCert=\"%s\" tls.myPrivKey=\"%s\""
             "\n           tls.authMode=\"name\" tls.permittedPeer=[\"localhost\"]",
             cert_path(a, "ca.pem"), cert_path(b, "client.pem"), cert_path(c, "client.key"));
    start_rsyslog_with("sluice_raw", omrelp_tls);
    feed(n);
    harness_require_lines(&H, S.out_path, n, 60000);
    harness_require_metric(&H, S.admin_port, M_ACKS, (double)n, false, 10000);
    stop_rsyslog();
    /* Nothing else was refused (the good sender's handshakes included). */
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char m[160];
        snprintf(m, sizeof(m), "sluice_tls_handshake_failures_total{source=\"app\",reason=\"%s\"}",
                 reasons[i]);
        ck_assert_msg(metric(m) == 1, "%s is %g", m, metric(m));
    }
    ck_assert(metric(M_OTHER) == 0);
    harness_require_stop_ok(&H);
    harness_require_exactly_once(&H, paths, 1, n);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "TLS refused"), "no log line for the refusals");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("relp");
    SRunner *sr;
    int failed;

    tcase_add_test(harness_tcase(s, "exactly_once", 180, setup, teardown), test_relp_exactly_once);
    tcase_add_test(harness_tcase(s, "bad_input", 120, setup, teardown), test_relp_bad_input);
    tcase_add_test(harness_tcase(s, "disk_queue", 120, setup, teardown), test_relp_disk_queue);
    tcase_add_test(harness_tcase(s, "syslog", 120, setup, teardown), test_relp_syslog);
    tcase_add_test(harness_tcase(s, "restart", 240, setup, teardown), test_relp_restart);
    tcase_add_test(harness_tcase(s, "backpressure", 240, setup, teardown), test_relp_backpressure);
    tcase_add_test(harness_tcase(s, "stop_stalled", 240, setup, teardown), test_relp_stop_stalled);
    tcase_add_test(harness_tcase(s, "tls", 120, setup, teardown), test_relp_tls);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
