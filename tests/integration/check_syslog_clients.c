/*
 * check_syslog_clients — real syslog clients sending to the real sluiced
 * (issue 12): util-linux `logger` over TCP and UDP and to the documented local sources
 * (sluice-receiver-local.conf: unix_dgram sockets on temporary paths), rsyslog's omfwd (RFC 5424
 * octet-counted and traditional framing) and syslog-ng's syslog() and network() drivers.
 *
 * The receiving daemon runs the documented receiver config
 * (tests/data/syslog-clients/sluice-receiver.conf, quoted in
 * docs/operations.md) with its
 * addresses and paths moved to loopback and the test's temp dir; the rsyslog and syslog-ng clients
 * run the documented forwarding snippets from the same folder, with the host and port moved to the
 * test's.  doc_snippets_match checks the doc quotes those files byte for byte.
 *
 * Every output object is checked field by field against what the client
 * was asked to send (the field names are the issue's: timestamp, hostname,
 * facility, severity, appname, procid, msgid, version, structured_data,
 * message; absent parts must be absent).  The bulk cases send 100,000
 * messages through the client daemon and check, from the sequence number in
 * every message, that each arrived exactly once, each with all its fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <netinet/in.h>

#include "harness.h"
#include "peers.h"

#define BULK_N 100000
#define LONG_MSG_BYTES 60000

static struct harness h;

static void
setup(void)
{
    ck_assert_int_eq(harness_init(&h), 0);
}

static void
teardown(void)
{
    harness_fini(&h);
}

/* --- names (RFC 5424 codes, the names Vector's syslog codec uses) ----------- */

static const char *const facility_names[24] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "audit",  "alert",  "clockd",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};
static const char *const severity_names[8] = {"emerg",   "alert",  "crit", "err",
                                              "warning", "notice", "info", "debug"};
/* The facilities the bulk cases cycle through: every code whose name all
 * syslog implementations agree on. */
static const int bulk_facilities[] = {1,  2,  3,  4,  5,  6,  7,  8,  10,
                                      11, 16, 17, 18, 19, 20, 21, 22, 23};
#define BULK_NFAC (sizeof(bulk_facilities) / sizeof(bulk_facilities[0]))

/* --- the receiving daemon ------------------------------------------------------- */

struct rx {
    int port; /* TCP and UDP */
    int admin_port;
    char out[PATH_MAX];
    char devlog[PATH_MAX];   /* with the local sources: [source devlog]'s socket */
    char journald[PATH_MAX]; /* ... and [source journald]'s */
};

/* A port free for both TCP and UDP on 127.0.0.1. */
static int
free_port_both(void)
{
    for (int i = 0; i < 50; i++) {
        int port = harness_free_port(SOCK_STREAM);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        bool ok;

        if (port <= 0 || fd == -1) {
            if (fd != -1) {
                close(fd);
            }
            continue;
        }
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
        close(fd);
        if (ok) {
            return port;
        }
    }
    return -1;
}

/* Starts sluiced on the documented receiver config (sources network and
 * network-udp) and, when local, the documented local sources (devlog,
 * journald) on temporary paths. */
static void
rx_start_with(struct rx *r, bool local)
{
    char listen[64];
    const char *from[] = {"0.0.0.0:514", "/var/log/sluice/syslog.ndjson"};
    const char *lfrom[] = {"/dev/log", "/run/systemd/journal/syslog"};
    const char *to[2];
    const char *lto[2];
    char *snip;
    char *lsnip = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    r->port = free_port_both();
    r->admin_port = harness_free_port(SOCK_STREAM);
    ck_assert(r->port > 0 && r->admin_port > 0);
    harness_path(&h, "out.ndjson", r->out, sizeof(r->out));
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", r->port);
    to[0] = listen;
    to[1] = r->out;
    snip = peer_snippet("sluice-receiver.conf", from, to, 2);
    ck_assert_msg(snip != NULL, "cannot read tests/data/syslog-clients/sluice-receiver.conf");
    if (local) {
        harness_path(&h, "devlog.sock", r->devlog, sizeof(r->devlog));
        harness_path(&h, "journald.sock", r->journald, sizeof(r->journald));
        lto[0] = r->devlog;
        lto[1] = r->journald;
        lsnip = peer_snippet("sluice-receiver-local.conf", lfrom, lto, 2);
        ck_assert_msg(lsnip != NULL,
                      "cannot read tests/data/syslog-clients/sluice-receiver-local.conf");
    }
    rc = harness_write_config(&h,
                              "[daemon]\n"
                              "producer_threads = 2\n"
                              "admin_listen = 127.0.0.1:%d\n"
                              "\n%s\n%s",
                              r->admin_port, snip, lsnip != NULL ? lsnip : "");
    free(snip);
    free(lsnip);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(harness_start(&h, NULL), 0);
    HARNESS_REQUIRE(&h, harness_wait_tcp(&h, r->port, 10000) == HARNESS_WAIT_OK,
                    "sluiced does not listen on tcp %d", r->port);
    HARNESS_REQUIRE(&h, harness_wait_udp(&h, r->port, 10000) == HARNESS_WAIT_OK,
                    "sluiced does not listen on udp %d", r->port);
}

static void
rx_start(struct rx *r)
{
    rx_start_with(r, false);
}

/* --- what an output object must hold ---------------------------------------------- */

struct want {
    int facility, severity; /* codes */
    const char *hostname;   /* NULL: must be absent */
    const char *appname;    /* likewise */
    const char *procid;     /* likewise */
    const char *msgid;      /* likewise */
    int version;            /* 0: must be absent */
    const char *sd;         /* structured_data as JSON text; NULL: absent */
    bool sd_time_quality;   /* sd: also a timeQuality element (logger's default) */
    const char *message;    /* exact */
    int64_t ts_lo, ts_hi;   /* timestamp in [lo, hi] (µs since the epoch) */
    bool ts_whole_second;   /* the sender sent seconds only */
};

/* Parses "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (the only form the issue allows:
 * RFC 3339, UTC, microseconds).  Returns µs since the epoch or -1. */
static int64_t
parse_ts(const char *s)
{
    struct tm tm = {0};
    unsigned us = 0;
    int n = 0;

    if (s == NULL || strlen(s) != 27 || s[10] != 'T' || s[19] != '.' || s[26] != 'Z') {
        return -1;
    }
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6u%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &us, &n) != 7 ||
        n != 26) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000 + us;
}

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool
str_field(json_t *o, const char *key, const char *want, char *err, size_t len)
{
    json_t *v = json_object_get(o, key);

    if (want == NULL) {
        if (v != NULL) {
            snprintf(err, len, "\"%s\" present but the sender sent none", key);
            return false;
        }
        return true;
    }
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0) {
        snprintf(err, len, "\"%s\" is %s, want \"%.200s\"", key,
                 json_is_string(v) ? json_string_value(v)
                 : v == NULL       ? "absent"
                                   : "not a string",
                 want);
        return false;
    }
    return true;
}

/* True if o holds exactly what w says; otherwise describes the first
 * difference in err. */
static bool
fields_match(json_t *o, const struct want *w, char *err, size_t len)
{
    static const char *const known[] = {"timestamp",       "hostname", "facility", "severity",
                                        "appname",         "procid",   "msgid",    "version",
                                        "structured_data", "message"};
    const char *key;
    json_t *v, *sd;
    int64_t ts;

    if (!json_is_object(o)) {
        snprintf(err, len, "not a JSON object");
        return false;
    }
    json_object_foreach(o, key, v)
    {
        bool ok = false;

        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            ok |= strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            snprintf(err, len, "unexpected field \"%s\"", key);
            return false;
        }
    }
    if (!str_field(o, "facility", facility_names[w->facility], err, len) ||
        !str_field(o, "severity", severity_names[w->severity], err, len) ||
        !str_field(o, "hostname", w->hostname, err, len) ||
        !str_field(o, "appname", w->appname, err, len) ||
        !str_field(o, "procid", w->procid, err, len) ||
        !str_field(o, "msgid", w->msgid, err, len) ||
        !str_field(o, "message", w->message, err, len)) {
        return false;
    }
    v = json_object_get(o, "version");
    if (w->version == 0 ? v != NULL : !json_is_integer(v) || json_integer_value(v) != w->version) {
        snprintf(err, len, "\"version\" wrong (want %s)", w->version ? "1" : "absent");
        return false;
    }
    sd = json_object_get(o, "structured_data");
    if (w->sd == NULL && sd != NULL) {
        snprintf(err, len, "\"structured_data\" present but the sender sent none");
        return false;
    }
    if (w->sd != NULL) {
        json_t *want_sd = json_loads(w->sd, 0, NULL), *got = json_deep_copy(sd);
        bool same;

        ck_assert_msg(want_sd != NULL, "bad expected SD %s", w->sd);
        if (w->sd_time_quality && json_is_object(got)) {
            json_t *tq = json_object_get(got, "timeQuality");
            json_t *tz = json_object_get(tq, "tzKnown"), *syn = json_object_get(tq, "isSynced");

            if (!json_is_string(tz) || strcmp(json_string_value(tz), "1") != 0 ||
                !json_is_string(syn) ||
                (strcmp(json_string_value(syn), "0") != 0 &&
                 strcmp(json_string_value(syn), "1") != 0)) {
                snprintf(err, len, "\"structured_data\".timeQuality missing or wrong");
                json_decref(want_sd);
                json_decref(got);
                return false;
            }
            json_object_del(got, "timeQuality");
        }
        same = got != NULL && json_equal(got, want_sd);
        json_decref(want_sd);
        if (!same) {
            char *text = sd != NULL ? json_dumps(sd, JSON_COMPACT) : NULL;

            snprintf(err, len, "\"structured_data\" is %s, want %s", text ? text : "absent", w->sd);
            free(text);
            json_decref(got);
            return false;
        }
        json_decref(got);
    }
    v = json_object_get(o, "timestamp");
    ts = parse_ts(json_string_value(v));
    if (ts < 0) {
        snprintf(err, len, "\"timestamp\" %s is not RFC 3339 UTC with microseconds",
                 json_is_string(v) ? json_string_value(v) : "absent");
        return false;
    }
    if (ts < w->ts_lo || ts > w->ts_hi || (w->ts_whole_second && ts % 1000000 != 0)) {
        snprintf(err, len, "\"timestamp\" %s outside [%" PRId64 ", %" PRId64 "] µs%s",
                 json_string_value(v), w->ts_lo, w->ts_hi,
                 w->ts_whole_second ? " (or not a whole second)" : "");
        return false;
    }
    return true;
}

/* --- finding one message in the output --------------------------------------------- */

struct find {
    const char *path;
    const char *message;
    json_t *found; /* new reference */
};

static bool
find_cb(void *arg)
{
    struct find *f = arg;
    char *text = harness_read_file(f->path, NULL);
    char *line, *save = NULL;

    if (text == NULL) {
        return false;
    }
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *m = json_object_get(o, "message");

        if (json_is_string(m) && strcmp(json_string_value(m), f->message) == 0) {
            f->found = o;
            break;
        }
        json_decref(o);
    }
    free(text);
    return f->found != NULL;
}

/* Waits for the output line whose "message" is message, and checks it. */
static void
require_message(const struct rx *r, const struct want *w, const char *what)
{
    struct find f = {.path = r->out, .message = w->message};
    char err[512] = "";
    bool ok;

    HARNESS_REQUIRE(&h, harness_poll(&h, 10000, find_cb, &f) == HARNESS_WAIT_OK,
                    "%s: no output object with message \"%.80s\"", what, w->message);
    ok = fields_match(f.found, w, err, sizeof(err));
    if (!ok) {
        char *text = json_dumps(f.found, JSON_COMPACT);

        fprintf(stderr, "%s: got %.600s\n", what, text != NULL ? text : "?");
        free(text);
    }
    json_decref(f.found);
    HARNESS_REQUIRE(&h, ok, "%s: %s", what, err);
}

static void
my_hostname(char *buf, size_t len, bool short_name)
{
    ck_assert_int_eq(gethostname(buf, len), 0);
    buf[len - 1] = '\0';
    if (short_name) {
        buf[strcspn(buf, ".")] = '\0';
    }
}

/* Runs logger with args; fails the test unless it exits 0.  Returns its pid. */
static pid_t
run_logger(const char *const *args, int64_t *t0, int64_t *t1)
{
    pid_t pid = 0;
    int rc;

    *t0 = now_us();
    rc = peer_logger(&h, args, 10000, &pid);
    *t1 = now_us();
    if (rc != 0) {
        char log[PATH_MAX];
        char *text = harness_read_file(harness_path(&h, "logger.log", log, sizeof(log)), NULL);

        fprintf(stderr, "logger: %s\n", text != NULL ? text : "");
        free(text);
    }
    ck_assert_msg(rc == 0, "logger exited with %d", rc);
    return pid;
}

/* --- logger ------------------------------------------------------------------------ */

START_TEST(logger_tcp_rfc5424_sd)
{
    struct rx r;
    char port[16], pid[16], host[256];
    const char *msg = "tcp 5424 grüße \"quoted\" back\\slash";
    int64_t t0, t1;
    pid_t p;

    rx_start(&r);
    snprintf(port, sizeof(port), "%d", r.port);
    my_hostname(host, sizeof(host), false);
    {
        const char *args[] = {"-T",         "-n",
                              "127.0.0.1",  "-P",
                              port,         "--rfc5424=notq",
                              "--sd-id",    "ex@32473",
                              "--sd-param", "k=\"a \\\"q\\\" \\] \\\\ b\"",
                              "--sd-param", "n=\"2\"",
                              "-t",         "myapp",
                              "-p",         "local3.notice",
                              "--msgid",    "MID7",
                              "-i",         msg,
                              NULL};

        p = run_logger(args, &t0, &t1);
    }
    snprintf(pid, sizeof(pid), "%d", (int)p);
    {
        struct want w = {.facility = 19,
                         .severity = 5,
                         .hostname = host,
                         .appname = "myapp",
                         .procid = pid,
                         .msgid = "MID7",
                         .version = 1,
                         .sd = "{\"ex@32473\": {\"k\": \"a \\\"q\\\" ] \\\\ b\", \"n\": \"2\"}}",
                         .message = msg,
                         .ts_lo = t0,
                         .ts_hi = t1};

        require_message(&r, &w, "logger --rfc5424 --sd-id over TCP");
    }
    harness_require_stop_ok(&h);
}
END_TEST

START_TEST(logger_tcp_rfc3164)
{
    struct rx r;
    char port[16], host[256];
    const char *msg = "tcp 3164 plain line";
    int64_t t0, t1;

    rx_start(&r);
    snprintf(port, sizeof(port), "%d", r.port);
    my_hostname(host, sizeof(host), true);
    {
        const char *args[] = {"-T", "-n",      "127.0.0.1", "-P",        port, "--rfc3164",
                              "-t", "app3164", "-p",        "user.info", msg,  NULL};

        run_logger(args, &t0, &t1);
    }
    {
        struct want w = {.facility = 1,
                         .severity = 6,
                         .hostname = host,
                         .appname = "app3164",
                         .message = msg,
                         .ts_lo = t0 / 1000000 * 1000000,
                         .ts_hi = t1,
                         .ts_whole_second = true};

        require_message(&r, &w, "logger --rfc3164 over TCP");
    }
    harness_require_stop_ok(&h);
}
END_TEST

/* Three octet-counted frames on one connection (logger -f sends a line each). */
START_TEST(logger_tcp_octet_count)
{
    struct rx r;
    char port[16], file[PATH_MAX], host[256];
    const char *lines[] = {"first octet-counted frame", "second one, with [brackets] and 42 ",
                           "third <13> not a header"};
    int64_t t0, t1;

    rx_start(&r);
    snprintf(port, sizeof(port), "%d", r.port);
    my_hostname(host, sizeof(host), false);
    harness_path(&h, "lines.txt", file, sizeof(file));
    ck_assert_int_eq(harness_write_file(file, "%s\n%s\n%s\n", lines[0], lines[1], lines[2]), 0);
    {
        const char *args[] = {"-T",
                              "-n",
                              "127.0.0.1",
                              "-P",
                              port,
                              "--octet-count",
                              "--rfc5424=notq",
                              "-t",
                              "oc",
                              "-p",
                              "mail.err",
                              "-f",
                              file,
                              NULL};

        run_logger(args, &t0, &t1);
    }
    for (int i = 0; i < 3; i++) {
        struct want w = {.facility = 2,
                         .severity = 3,
                         .hostname = host,
                         .appname = "oc",
                         .version = 1,
                         .message = lines[i],
                         .ts_lo = t0,
                         .ts_hi = t1};

        require_message(&r, &w, "logger --octet-count over TCP");
    }
    harness_require_stop_ok(&h);
}
END_TEST

static char *
long_message(char tag)
{
    char *m = malloc(LONG_MSG_BYTES + 1);

    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < LONG_MSG_BYTES; i++) {
        m[i] = (char)('a' + (i * 7 + (size_t)tag) % 26);
    }
    m[0] = tag;
    m[LONG_MSG_BYTES] = '\0';
    return m;
}

/* -S 65536: a 60,000-byte message, octet-counted and newline-framed on TCP,
 * and in one UDP datagram. */
START_TEST(logger_long_messages)
{
    struct rx r;
    char port[16], host[256];
    const char *modes[3][3] = {{"-T", "--octet-count", "TCP octet-counted"},
                               {"-T", "--rfc5424=notq", "TCP newline-framed"},
                               {"-d", "--rfc5424=notq", "UDP"}};
    int64_t t0, t1;

    rx_start(&r);
    snprintf(port, sizeof(port), "%d", r.port);
    my_hostname(host, sizeof(host), false);
    for (int i = 0; i < 3; i++) {
        char *msg = long_message((char)('A' + i));
        const char *args[] = {
            modes[i][0], "-n",    "127.0.0.1", "-P",  port, modes[i][1], "--rfc5424=notq",
            "-S",        "65536", "-t",        "big", msg,  NULL};
        struct want w = {.facility = 1,
                         .severity = 5,
                         .hostname = host,
                         .appname = "big",
                         .version = 1,
                         .message = msg};
        char what[64];

        run_logger(args, &t0, &t1);
        w.ts_lo = t0;
        w.ts_hi = t1;
        snprintf(what, sizeof(what), "logger -S 65536, %s", modes[i][2]);
        require_message(&r, &w, what);
        free(msg);
    }
    harness_require_stop_ok(&h);
}
END_TEST

/* The documented local sources: logger to [source devlog] (a program's
 * syslog(3) on a host without journald) and to [source journald] (what
 * journald forwards), both in the local form without a hostname. */
START_TEST(logger_local)
{
    struct rx r;
    int64_t t0, t1;

    rx_start_with(&r, true);
    const struct {
        const char *path, *prio, *tag, *msg;
        int facility, severity;
    } cases[] = {
        {r.devlog, "daemon.warning", "devapp", "via the devlog source", 3, 4},
        {r.journald, "user.info", "jdapp", "via the journald source", 1, 6},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {"-u", cases[i].path, "-d",         "-t", cases[i].tag,
                              "-p", cases[i].prio, cases[i].msg, NULL};
        struct want w = {.facility = cases[i].facility,
                         .severity = cases[i].severity,
                         .appname = cases[i].tag,
                         .message = cases[i].msg,
                         .ts_whole_second = true};

        run_logger(args, &t0, &t1);
        w.ts_lo = t0 / 1000000 * 1000000;
        w.ts_hi = t1;
        require_message(&r, &w, cases[i].msg);
    }
    harness_require_stop_ok(&h);
}
END_TEST

START_TEST(logger_udp)
{
    struct rx r;
    char port[16], host[256], shorthost[256];
    const char *m5424 = "udp 5424 with logger's timeQuality";
    const char *m3164 = "udp 3164";
    int64_t t0, t1;

    rx_start(&r);
    snprintf(port, sizeof(port), "%d", r.port);
    my_hostname(host, sizeof(host), false);
    my_hostname(shorthost, sizeof(shorthost), true);
    {
        const char *args[] = {"-d", "-n", "127.0.0.1", "-P",           port,  "--rfc5424",
                              "-t", "u1", "-p",        "local7.debug", m5424, NULL};
        struct want w = {.facility = 23,
                         .severity = 7,
                         .hostname = host,
                         .appname = "u1",
                         .version = 1,
                         .sd = "{}",
                         .sd_time_quality = true,
                         .message = m5424};

        run_logger(args, &t0, &t1);
        w.ts_lo = t0;
        w.ts_hi = t1;
        require_message(&r, &w, "logger --rfc5424 over UDP");
    }
    {
        const char *args[] = {"-d", "-n", "127.0.0.1", "-P",        port,  "--rfc3164",
                              "-t", "u2", "-p",        "auth.crit", m3164, NULL};
        struct want w = {.facility = 4,
                         .severity = 2,
                         .hostname = shorthost,
                         .appname = "u2",
                         .message = m3164,
                         .ts_whole_second = true};

        run_logger(args, &t0, &t1);
        w.ts_lo = t0 / 1000000 * 1000000;
        w.ts_hi = t1;
        require_message(&r, &w, "logger --rfc3164 over UDP");
    }
    harness_require_stop_ok(&h);
}
END_TEST

/* --- 100,000 messages through rsyslog and syslog-ng ------------------------------- */

#define BULK_PAYLOAD "pay \"q\" \\ grüße, 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ"

struct bulk {
    bool in5424; /* what the test feeds the client (and the client forwards) */
    time_t base; /* the messages' timestamp: this second ... */
    bool micros; /* ... plus seq µs when the client passes 5424 fractions */
};

static void
bulk_fields(const struct bulk *b, uint64_t seq, struct want *w, char *host, char *app, char *pid,
            char *msgid, char *sd, char *msg)
{
    memset(w, 0, sizeof(*w));
    w->facility = bulk_facilities[seq % BULK_NFAC];
    w->severity = (int)(seq % 8);
    sprintf(host, "web-%02u", (unsigned)(seq % 5));
    sprintf(app, "app%u", (unsigned)(seq % 3));
    sprintf(pid, "%u", 1000 + (unsigned)(seq % 7));
    sprintf(msg, "seq=%" PRIu64 " " BULK_PAYLOAD, seq);
    w->hostname = host;
    w->appname = app;
    w->procid = pid;
    w->message = msg;
    w->ts_lo = w->ts_hi = (int64_t)b->base * 1000000 + (b->micros ? (int64_t)seq : 0);
    if (b->in5424) {
        sprintf(msgid, "M%u", (unsigned)(seq % 4));
        sprintf(sd, "{\"seq@32473\": {\"n\": \"%" PRIu64 "\"}}", seq);
        w->msgid = msgid;
        w->sd = sd;
        w->version = 1;
    }
}

/* Writes message seq, as the test feeds it to the client, at dst. */
static size_t
bulk_input(const struct bulk *b, uint64_t seq, char *dst)
{
    struct want w;
    char host[16], app[16], pid[16], msgid[16], sd[64], msg[256], ts[40];
    struct tm tm;
    time_t t = b->base;

    bulk_fields(b, seq, &w, host, app, pid, msgid, sd, msg);
    gmtime_r(&t, &tm);
    if (b->in5424) {
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        return (size_t)sprintf(dst, "<%d>1 %s.%06uZ %s %s %s %s [seq@32473 n=\"%" PRIu64 "\"] %s\n",
                               w.facility * 8 + w.severity, ts, (unsigned)seq, host, app, pid,
                               msgid, seq, msg);
    }
    strftime(ts, sizeof(ts), "%b %e %H:%M:%S", &tm);
    return (size_t)sprintf(dst, "<%d>%s %s %s[%s]: %s\n", w.facility * 8 + w.severity, ts, host,
                           app, pid, msg);
}

/* Sends the BULK_N messages to the client's input port. */
static void
bulk_send(struct peer *p, const struct bulk *b, int port)
{
    size_t cap = 256 * 1024, len = 0;
    char *buf = malloc(cap);
    int fd = harness_tcp_connect(port, 60000);

    PEER_REQUIRE(&h, p, fd >= 0, "cannot connect to the client's input port %d", port);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t seq = 0; seq < BULK_N; seq++) {
        len += bulk_input(b, seq, buf + len);
        if (len > cap - 512 || seq + 1 == BULK_N) {
            PEER_REQUIRE(&h, p, harness_send_all(fd, buf, len) == 0, "sending to the client: %s",
                         strerror(errno));
            len = 0;
        }
    }
    PEER_REQUIRE(&h, p, harness_wait_sent(fd, 60000) == HARNESS_WAIT_OK,
                 "the client did not take its input");
    close(fd);
    free(buf);
}

/* Every line an object with all its fields; every seq exactly once. */
static void
bulk_verify(struct peer *p, const struct bulk *b, const char *out)
{
    size_t len = 0;
    char *text = harness_read_file(out, &len);
    unsigned char *seen = calloc(BULK_N, 1);
    uint64_t lines = 0, dups = 0, missing = 0, first_missing = 0;
    char *line, *save = NULL;

    PEER_REQUIRE(&h, p, text != NULL && seen != NULL, "cannot read %s", out);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *m = json_string_value(json_object_get(o, "message"));
        char host[16], app[16], pid[16], msgid[16], sd[64], msg[256], err[512] = "";
        uint64_t seq;
        struct want w;
        bool ok;

        lines++;
        if (o == NULL || m == NULL || sscanf(m, "seq=%" SCNu64, &seq) != 1 || seq >= BULK_N) {
            fprintf(stderr, "bad line %" PRIu64 ": %.300s\n", lines, line);
            json_decref(o);
            PEER_REQUIRE(&h, p, false, "line %" PRIu64 " is not an object with seq=N", lines);
        }
        bulk_fields(b, seq, &w, host, app, pid, msgid, sd, msg);
        ok = fields_match(o, &w, err, sizeof(err));
        json_decref(o);
        if (!ok) {
            fprintf(stderr, "line %" PRIu64 ": %.600s\n", lines, line);
        }
        PEER_REQUIRE(&h, p, ok, "seq %" PRIu64 ": %s", seq, err);
        if (seen[seq]++ != 0) {
            dups++;
        }
    }
    for (uint64_t i = 0; i < BULK_N; i++) {
        if (seen[i] == 0 && missing++ == 0) {
            first_missing = i;
        }
    }
    free(text);
    free(seen);
    PEER_REQUIRE(&h, p, dups == 0 && missing == 0 && lines == BULK_N,
                 "%" PRIu64 " lines: %" PRIu64 " duplicates, %" PRIu64
                 " missing (first: seq %" PRIu64 ")",
                 lines, dups, missing, first_missing);
}

/*
 * The client daemon (kind) runs the documented forwarding snippet; the test
 * feeds it BULK_N messages on a loopback TCP input; sluiced must write each
 * exactly once with every field.
 */
static void
bulk_run(enum peer_kind kind, const char *snippet, bool in5424)
{
    struct rx r;
    struct peer p;
    struct bulk b = {.in5424 = in5424, .base = time(NULL), .micros = in5424};
    int in_port = harness_free_port(SOCK_STREAM);
    char port[16], port_kv[32], input[768];
    const char *tail = "";
    const char *from[2] = {"sluice.example.net", NULL};
    const char *to[2] = {"127.0.0.1", port_kv};
    char *snip, *body;
    uint64_t got = 0;
    enum harness_wait wr;

    peer_require_available(kind);
    ck_assert(in_port > 0);
    rx_start(&r);
    snprintf(port, sizeof(port), "%d", r.port);
    if (kind == PEER_RSYSLOG) {
        from[1] = "port=\"514\"";
        snprintf(port_kv, sizeof(port_kv), "port=\"%d\"", r.port);
        /* rsyslog's own messages stay out of sluiced's file (in
         * internal.log); the documented action runs in the input's ruleset. */
        snprintf(input, sizeof(input),
                 "module(load=\"imtcp\")\n"
                 "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"fwd\")\n"
                 "action(type=\"omfile\" file=\"%s/internal.log\")\n"
                 "ruleset(name=\"fwd\") {\n",
                 in_port, h.dir);
        tail = "}\n";
    } else {
        from[1] = "port(514)";
        snprintf(port_kv, sizeof(port_kv), "port(%d)", r.port);
        snprintf(input, sizeof(input),
                 "source s_src { network(ip(\"127.0.0.1\") port(%d) transport(\"tcp\")%s"
                 " log-iw-size(10000)); };\n",
                 in_port, in5424 ? " flags(syslog-protocol)" : "");
    }
    snip = peer_snippet(snippet, from, to, 2);
    ck_assert_msg(snip != NULL, "cannot read the snippet %s", snippet);
    body = malloc(strlen(input) + strlen(snip) + strlen(tail) + 1);
    ck_assert_ptr_nonnull(body);
    strcpy(body, input);
    strcat(body, snip);
    strcat(body, tail);
    free(snip);
    ck_assert_int_eq(peer_start(&h, &p, kind, body), 0);
    free(body);
    PEER_REQUIRE(&h, &p, peer_wait_tcp(&p, in_port, 15000) == HARNESS_WAIT_OK,
                 "the client does not listen on its input port %d", in_port);
    bulk_send(&p, &b, in_port);
    wr = harness_wait_lines(&h, r.out, BULK_N, 90000, &got);
    PEER_REQUIRE(&h, &p, wr == HARNESS_WAIT_OK, "%" PRIu64 " of %d lines arrived", got, BULK_N);
    PEER_REQUIRE(&h, &p, peer_stop(&p, 15000) == 0, "the client did not stop on SIGTERM");
    harness_require_stop_ok(&h);
    bulk_verify(&p, &b, r.out);
}

START_TEST(rsyslog_omfwd_octet_counted)
{
    bulk_run(PEER_RSYSLOG, "rsyslog-forward-octet-counted.conf", true);
}
END_TEST

START_TEST(rsyslog_omfwd_traditional)
{
    bulk_run(PEER_RSYSLOG, "rsyslog-forward-traditional.conf", false);
}
END_TEST

START_TEST(syslog_ng_syslog_driver)
{
    bulk_run(PEER_SYSLOG_NG, "syslog-ng-forward-syslog.conf", true);
}
END_TEST

START_TEST(syslog_ng_network_driver)
{
    bulk_run(PEER_SYSLOG_NG, "syslog-ng-forward-network.conf", false);
}
END_TEST

/* --- the docs quote the snippets the tests run ------------------------------------- */

/*
 * docs/operations.md quotes each file of tests/data/syslog-clients/ after a
 * line "<!-- snippet: tests/data/syslog-clients/NAME -->", in the fenced
 * block that follows; the block must be the file, byte for byte.
 */
START_TEST(doc_snippets_match)
{
    static const char *const names[] = {"sluice-receiver.conf",
                                        "sluice-receiver-local.conf",
                                        "rsyslog-forward-octet-counted.conf",
                                        "rsyslog-forward-traditional.conf",
                                        "syslog-ng-forward-syslog.conf",
                                        "syslog-ng-forward-network.conf"};
    const char *top = getenv("SLUICE_TOP");
    char path[PATH_MAX];
    char *doc;

    snprintf(path, sizeof(path), "%s/docs/operations.md", top != NULL ? top : ".");
    doc = harness_read_file(path, NULL);
    ck_assert_msg(doc != NULL, "cannot read %s", path);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char marker[256], fpath[PATH_MAX];
        char *file, *m, *start, *end;

        snprintf(marker, sizeof(marker), "<!-- snippet: tests/data/syslog-clients/%s -->\n",
                 names[i]);
        snprintf(fpath, sizeof(fpath), "%s/tests/data/syslog-clients/%s", top != NULL ? top : ".",
                 names[i]);
        file = harness_read_file(fpath, NULL);
        ck_assert_msg(file != NULL, "cannot read %s", fpath);
        m = strstr(doc, marker);
        ck_assert_msg(m != NULL, "docs/operations.md does not quote %s (no \"%.*s\")", names[i],
                      (int)strlen(marker) - 1, marker);
        start = m + strlen(marker);
        ck_assert_msg(strncmp(start, "```", 3) == 0, "%s: no fenced block after the marker",
                      names[i]);
        start = strchr(start, '\n');
        ck_assert_ptr_nonnull(start);
        start++;
        end = strstr(start, "\n```\n");
        ck_assert_ptr_nonnull(end);
        end++;
        ck_assert_msg(
            (size_t)(end - start) == strlen(file) && memcmp(start, file, strlen(file)) == 0,
            "docs/operations.md's quote of %s differs from the file the tests run", names[i]);
        free(file);
    }
    free(doc);
}
END_TEST

static Suite *
syslog_clients_suite(void)
{
    Suite *s = suite_create("syslog_clients");
    TCase *tc;

    tc = harness_tcase(s, "logger", 60, setup, teardown);
    tcase_add_test(tc, logger_tcp_rfc5424_sd);
    tcase_add_test(tc, logger_tcp_rfc3164);
    tcase_add_test(tc, logger_tcp_octet_count);
    tcase_add_test(tc, logger_long_messages);
    tcase_add_test(tc, logger_udp);
    tcase_add_test(tc, logger_local);
    tc = harness_tcase(s, "daemons", 240, setup, teardown);
    tcase_add_test(tc, rsyslog_omfwd_octet_counted);
    tcase_add_test(tc, rsyslog_omfwd_traditional);
    tcase_add_test(tc, syslog_ng_syslog_driver);
    tcase_add_test(tc, syslog_ng_network_driver);
    tc = harness_tcase(s, "docs", 10, NULL, NULL);
    tcase_add_test(tc, doc_snippets_match);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(syslog_clients_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
