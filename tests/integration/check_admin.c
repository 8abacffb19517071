/*
 * check_admin — the admin HTTP endpoint (GET /metrics, GET /healthz) against
 * hostile and careless local clients: a client that pipelines requests and
 * never reads the answers, one that trickles its header a byte at a time,
 * more connections than the endpoint takes, an admin client arriving while
 * the daemon is out of descriptors, HEAD requests on a keep-alive connection
 * and a POST with a body.
 *
 * Each test states the outcome docs/security.md promises: memory and
 * descriptors held by admin clients stay bounded, a connection gets a fixed
 * time per request, the main thread does not spin, event intake goes on, and
 * every answer on a keep-alive connection parses as exactly one response.
 * Waits poll with deadlines (harness.h); every load loop is bounded in bytes
 * and time.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_admin
 * (CK_RUN_CASE=<tcase> runs one; CK_TIMEOUT_MULTIPLIER scales the deadlines).
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;

#define MIB (1024L * 1024L)

/* The endpoint's fixed limits (src/daemon/admin_http.c, docs/security.md). */
#define ADMIN_MAX_CONNS 64
#define ADMIN_DEADLINE_MS 10000

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

static void
start(void)
{
    harness_std_require_start(&H, &S, NULL);
}

/* Starts the daemon with a soft RLIMIT_NOFILE of n (this process keeps its own). */
static void
start_with_nofile(unsigned long n)
{
    struct rlimit saved;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    ck_assert_msg(harness_set_nofile(n) == 0, "setrlimit(%lu): %s", n, strerror(errno));
    start();
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

static void
require_healthy(const char *when)
{
    HARNESS_REQUIRE(&H, harness_healthz_ok(S.admin_port, 5000), "/healthz not 200 %s", when);
}

static int
send_str(int fd, const char *s)
{
    return harness_send_all(fd, s, strlen(s));
}

/* --- a client that reads answers off one connection -------------------------------- */

#define CLIENT_BUF (1024 * 1024)

struct client {
    int fd;
    size_t len;
    char *buf; /* CLIENT_BUF bytes; what was read and not yet parsed */
};

struct response {
    int status; /* -1: no complete header in time; -2: not an HTTP response */
    long clen;  /* Content-Length, -1 if absent */
    char head[4096];
    char body[64]; /* the first bytes of the body, NUL-terminated */
};

static void
client_open(struct client *c, int port)
{
    c->len = 0;
    c->buf = malloc(CLIENT_BUF);
    ck_assert_ptr_nonnull(c->buf);
    c->fd = harness_tcp_connect(port, 5000);
    ck_assert_msg(c->fd >= 0, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
}

static void
client_close(struct client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

/* Reads what arrives until the deadline.  Returns the bytes read, 0 at EOF,
 * -1 on timeout (errno ETIMEDOUT) or error. */
static ssize_t
client_fill(struct client *c, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - harness_now_ms();
        struct pollfd p = {.fd = c->fd, .events = POLLIN};

        if (c->len >= CLIENT_BUF - 1) {
            errno = ENOBUFS;
            return -1;
        }
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int n = poll(&p, 1, (int)(left < 100 ? left : 100));
        if (n < 0 && errno != EINTR) {
            return -1;
        }
        if (n <= 0) {
            continue;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, CLIENT_BUF - 1 - c->len, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (r < 0 && errno == ECONNRESET) {
            return 0;
        }
        if (r >= 0) {
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
        }
        return r;
    }
}

/*
 * Parses the next response off c: its header, and (unless head_only, the
 * answer to a HEAD) Content-Length bytes of body.  The bytes consumed are
 * removed from c->buf; whatever follows stays for the next call.
 * Returns 0, or -1 when no complete response arrived within timeout_ms.
 */
static int
client_response(struct client *c, bool head_only, struct response *r, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
    char *end = NULL;
    size_t hlen, total;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    r->clen = -1;
    for (;;) {
        if (c->len > 0) {
            c->buf[c->len] = '\0';
            end = strstr(c->buf, "\r\n\r\n");
        }
        if (end != NULL) {
            break;
        }
        if (client_fill(c, deadline) <= 0) {
            return -1;
        }
    }
    hlen = (size_t)(end - c->buf) + 4;
    snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, c->buf);
    if (strncmp(r->head, "HTTP/1.", 7) != 0 || strlen(r->head) < 12) {
        r->status = -2;
        return 0;
    }
    r->status = atoi(r->head + 9);
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl != NULL) {
        r->clen = strtol(cl + strlen("\r\nContent-Length:"), NULL, 10);
    }
    total = hlen;
    if (!head_only && r->clen > 0) {
        total += (size_t)r->clen;
        while (c->len < total) {
            if (client_fill(c, deadline) <= 0) {
                return -1;
            }
        }
        snprintf(r->body, sizeof(r->body), "%.*s", (int)r->clen, c->buf + hlen);
    }
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    c->buf[c->len] = '\0';
    return 0;
}

/* Sends one request and reads its answer; fails the test if none comes. */
static void
client_exchange(struct client *c, const char *request, bool head_only, struct response *r)
{
    HARNESS_REQUIRE(&H, send_str(c->fd, request) == 0, "sending %s: %s", request, strerror(errno));
    HARNESS_REQUIRE(&H, client_response(c, head_only, r, 5000) == 0,
                    "no complete answer within 5 s to: %s", request);
}

/* --- helpers on the daemon's process ----------------------------------------------- */

/* The daemon's descriptor count once it stops changing (a connection the
 * harness or a test just closed may hold one for a moment). */
static int
stable_fd_count(void)
{
    int64_t end = harness_now_ms() + harness_ms(5000);
    int last = harness_fd_count(H.pid);

    while (harness_now_ms() < end) {
        harness_poll_step(100);
        int now = harness_fd_count(H.pid);
        if (now == last) {
            return now;
        }
        last = now;
    }
    return last;
}

/* CPU time of the daemon's main thread (its tid is its pid), in clock ticks. */
static long long
main_thread_ticks(pid_t pid)
{
    char path[64];
    char *stat, *p;
    long long utime = -1, stime = -1;

    snprintf(path, sizeof(path), "/proc/%ld/task/%ld/stat", (long)pid, (long)pid);
    stat = harness_read_file(path, NULL);
    if (stat == NULL) {
        return -1;
    }
    /* Fields after the ")" that ends comm: state is field 3, utime 14, stime 15. */
    p = strrchr(stat, ')');
    if (p != NULL) {
        p += 2;
        for (int field = 3; field <= 15 && p != NULL; field++) {
            if (field == 14) {
                utime = strtoll(p, NULL, 10);
            } else if (field == 15) {
                stime = strtoll(p, NULL, 10);
            }
            p = strchr(p, ' ');
            if (p != NULL) {
                p++;
            }
        }
    }
    free(stat);
    return utime < 0 || stime < 0 ? -1 : utime + stime;
}

/* --- a client that pipelines requests and never reads the answers ------------------ */

/* At most this much is sent; the daemon must not hold more than the growth
 * bound of it.  Under AddressSanitizer freed blocks stay in its quarantine,
 * so each answer rendered while the kernel's socket buffers fill up adds to
 * the RSS; the bound is doubled there (unbounded reading still passes it
 * fourfold). */
#define FLOOD_MAX_BYTES (128L * MIB)
#if defined(__SANITIZE_ADDRESS__)
#define FLOOD_GROWTH_KIB (64L * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FLOOD_GROWTH_KIB (64L * 1024)
#endif
#endif
#ifndef FLOOD_GROWTH_KIB
#define FLOOD_GROWTH_KIB (32L * 1024)
#endif

START_TEST(test_admin_pipeline_flood)
{
    static char batch[64 * 1024];
    char req[1024];
    size_t blen = 0, rlen;
    long base, peak, rss;
    int64_t end;
    uint64_t sent = 0;
    int fd, err = 0;
    char *body = NULL;

    /* Each request carries 900 bytes of header, well inside any header
     * limit: 128 MiB is about 140,000 pipelined GET /metrics. */
    rlen = (size_t)snprintf(req, sizeof(req),
                            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: %0900d\r\n\r\n", 0);
    while (blen + rlen <= sizeof(batch)) {
        memcpy(batch + blen, req, rlen);
        blen += rlen;
    }
    start();
    HARNESS_REQUIRE(&H, harness_http_get(S.admin_port, "/metrics", 5000, &body) == 200,
                    "GET /metrics at start");
    free(body);
    base = harness_vmrss_kib(H.pid);
    ck_assert_int_gt(base, 0);
    peak = base;
    /* A send blocked for 2 s ends the flood: the daemon stopped reading. */
    fd = harness_tcp_connect(S.admin_port, 2000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    end = harness_now_ms() + harness_ms(60000);
    while (sent < (uint64_t)FLOOD_MAX_BYTES && harness_now_ms() < end) {
        if (harness_send_all(fd, batch, blen) == -1) {
            err = errno;
            break;
        }
        sent += blen;
        rss = harness_vmrss_kib(H.pid);
        peak = rss > peak ? rss : peak;
    }
    fprintf(stderr, "pipeline_flood: sent %" PRIu64 " bytes (%s), RSS %ld -> peak %ld KiB\n", sent,
            err != 0 ? strerror(err) : "all of them", base, peak);
    HARNESS_REQUIRE(&H, peak - base < FLOOD_GROWTH_KIB,
                    "daemon RSS grew by %ld KiB while a client pipelined %" PRIu64
                    " bytes of requests without reading (bound %ld KiB)",
                    peak - base, sent, FLOOD_GROWTH_KIB);
    /* While that connection is open, another client is served and events
     * are taken. */
    require_healthy("while a client floods the admin endpoint");
    {
        int src = harness_tcp_connect(S.port, 10000);

        ck_assert_msg(src >= 0, "connect: %s", strerror(errno));
        ck_assert_int_eq(harness_send_events(src, 0, 1000), 0);
        close(src);
        harness_require_lines(&H, S.out_path, 1000, 10000);
    }
    rss = harness_vmrss_kib(H.pid);
    peak = rss > peak ? rss : peak;
    HARNESS_REQUIRE(&H, peak - base < FLOOD_GROWTH_KIB,
                    "daemon RSS grew by %ld KiB (bound %ld KiB)", peak - base, FLOOD_GROWTH_KIB);
    /* Stopping with the flooder still connected is orderly. */
    harness_require_stop_ok(&H);
    close(fd);
}
END_TEST

/* --- a header trickled one byte at a time ------------------------------------------ */

START_TEST(test_admin_trickle_deadline)
{
    struct client ka;
    struct response r;
    int slow;
    int64_t t0, closed_at = -1, next_ka, limit;
    int ka_after_close = 0, ka_total = 0;

    start();
    slow = harness_tcp_connect(S.admin_port, 5000);
    ck_assert_msg(slow >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(send_str(slow, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "), 0);
    /* A well-behaved keep-alive client on the same endpoint, one request a
     * second: it gets its 10 s per request afresh and outlives the slow one. */
    client_open(&ka, S.admin_port);
    t0 = harness_now_ms();
    next_ka = t0;
    limit = t0 + harness_ms(3 * ADMIN_DEADLINE_MS);
    while (harness_now_ms() < limit && ka_after_close < 2) {
        if (closed_at < 0) {
            /* One more header byte every 250 ms, far inside any read
             * timeout; stop when the daemon closes the connection. */
            struct pollfd p = {.fd = slow, .events = POLLIN};
            char b[256];

            if (poll(&p, 1, 250) > 0) {
                ssize_t n = recv(slow, b, sizeof(b), MSG_DONTWAIT);
                HARNESS_REQUIRE(&H, n <= 0, "the trickling client got an answer: %.*s", (int)n, b);
                if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                    closed_at = harness_now_ms();
                }
            } else if (send(slow, "a", 1, MSG_NOSIGNAL) < 0) {
                closed_at = harness_now_ms();
            }
        } else {
            harness_poll_step(250);
        }
        if (harness_now_ms() >= next_ka) {
            client_exchange(&ka, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, &r);
            HARNESS_REQUIRE(&H, r.status == 200, "keep-alive GET /healthz #%d: %d", ka_total,
                            r.status);
            ka_total++;
            ka_after_close += closed_at >= 0;
            next_ka += 1000;
        }
    }
    HARNESS_REQUIRE(&H, closed_at >= 0,
                    "a client trickling its header was still connected after %d s (the limit "
                    "per request is %d s)",
                    3 * ADMIN_DEADLINE_MS / 1000, ADMIN_DEADLINE_MS / 1000);
    fprintf(stderr,
            "trickle_deadline: closed after %" PRId64 " ms; keep-alive client: %d requests\n",
            closed_at - t0, ka_total);
    HARNESS_REQUIRE(&H, closed_at - t0 >= ADMIN_DEADLINE_MS - 1000,
                    "the trickling client was cut off after %" PRId64 " ms, before the deadline",
                    closed_at - t0);
    HARNESS_REQUIRE(&H, ka_after_close >= 2,
                    "the keep-alive client did not go on after the slow one was closed");
    close(slow);
    client_close(&ka);
    harness_require_metric(&H, S.admin_port, "sluice_admin_deadline_closed_total", 1, true, 5000);
    require_healthy("after the trickling client");
    harness_require_stop_ok(&H);
}
END_TEST

/* --- more connections than the endpoint takes -------------------------------------- */

START_TEST(test_admin_connection_cap)
{
    int holders[ADMIN_MAX_CONNS];
    struct client extra;
    struct response r;
    int base, n = -1;
    int64_t end;

    /* 1024 descriptors: the cap is 64 (it is lower only under a quarter
     * of a smaller RLIMIT_NOFILE). */
    start_with_nofile(1024);
    require_healthy("at start");
    base = stable_fd_count();
    for (int i = 0; i < ADMIN_MAX_CONNS; i++) {
        holders[i] = harness_tcp_connect(S.admin_port, 5000);
        ck_assert_msg(holders[i] >= 0, "connect %d: %s", i, strerror(errno));
    }
    end = harness_now_ms() + harness_ms(5000);
    while (harness_now_ms() < end && (n = harness_fd_count(H.pid)) < base + ADMIN_MAX_CONNS) {
        harness_poll_step(20);
    }
    HARNESS_REQUIRE(&H, n == base + ADMIN_MAX_CONNS,
                    "the daemon holds %d descriptors with %d idle admin clients (had %d)", n,
                    ADMIN_MAX_CONNS, base);
    /* One more: the kernel completes it (backlog), the daemon must not
     * take it while the 64 are open.  The holders have 10 s each, so 1 s
     * of silence is inside their time. */
    client_open(&extra, S.admin_port);
    ck_assert_int_eq(send_str(extra.fd, "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"), 0);
    {
        ssize_t got = client_fill(&extra, harness_now_ms() + 1000);

        n = harness_fd_count(H.pid);
        HARNESS_REQUIRE(&H, got < 0 && errno == ETIMEDOUT,
                        "connection %d over the limit of %d was served: %s", ADMIN_MAX_CONNS + 1,
                        ADMIN_MAX_CONNS, got > 0 ? extra.buf : "closed");
        HARNESS_REQUIRE(&H, n == base + ADMIN_MAX_CONNS,
                        "the daemon holds %d descriptors (limit %d admin connections over %d)", n,
                        ADMIN_MAX_CONNS, base);
    }
    /* When the holders go, the waiting connection is served, and so is a
     * new one. */
    for (int i = 0; i < ADMIN_MAX_CONNS; i++) {
        close(holders[i]);
    }
    HARNESS_REQUIRE(&H, client_response(&extra, false, &r, 5000) == 0 && r.status == 200,
                    "the waiting connection got %d once the others closed", r.status);
    client_close(&extra);
    harness_require_metric(&H, S.admin_port, "sluice_admin_connection_limit_reached_total", 1, true,
                           5000);
    require_healthy("after the connection limit");
    harness_require_stop_ok(&H);
}
END_TEST

/* --- an admin client while the daemon is out of descriptors ------------------------ */

#define EMFILE_NOFILE 64
#define EMFILE_SOURCE_CONNS 80
#define EMFILE_ADMIN_CONNS 4

START_TEST(test_admin_emfile_backoff)
{
    int src[EMFILE_SOURCE_CONNS], steady, late;
    struct client adm[EMFILE_ADMIN_CONNS];
    struct response r;
    long long t0, t1;
    int64_t w0, w1;
    double share;

    start_with_nofile(EMFILE_NOFILE);
    steady = harness_tcp_connect(S.port, 10000);
    ck_assert_msg(steady >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(steady, 0, 10), 0);
    harness_require_lines(&H, S.out_path, 10, 10000);
    /* Source connections take every descriptor the daemon has left. */
    for (int i = 0; i < EMFILE_SOURCE_CONNS; i++) {
        src[i] = harness_tcp_connect(S.port, 10000);
        ck_assert_msg(src[i] >= 0, "connect %d: %s", i, strerror(errno));
    }
    {
        int64_t end = harness_now_ms() + harness_ms(10000);

        while (!harness_log_has(&H, "Too many open files") && harness_now_ms() < end) {
            harness_poll_step(20);
        }
        HARNESS_REQUIRE(&H, harness_log_has(&H, "Too many open files"),
                        "the daemon never ran out of descriptors");
    }
    /* Admin clients arrive now: the admin listener cannot accept them. */
    for (int i = 0; i < EMFILE_ADMIN_CONNS; i++) {
        client_open(&adm[i], S.admin_port);
        ck_assert_int_eq(send_str(adm[i].fd, "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
                         0);
    }
    /* Over 2 s the main thread (admin endpoint, signals, watchdog) must
     * mostly sleep, not retry accept() in a loop. */
    t0 = main_thread_ticks(H.pid);
    w0 = harness_now_ms();
    while (harness_now_ms() - w0 < 2000) {
        HARNESS_REQUIRE(&H, harness_alive(&H), "the daemon died out of descriptors");
        harness_poll_step(50);
    }
    t1 = main_thread_ticks(H.pid);
    w1 = harness_now_ms();
    ck_assert_msg(t0 >= 0 && t1 >= 0, "cannot read the main thread's CPU time");
    share = (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK) / ((double)(w1 - w0) / 1000.0);
    fprintf(stderr, "emfile_backoff: main thread used %.0f%% of a CPU while out of descriptors\n",
            share * 100);
    HARNESS_REQUIRE(&H, share < 0.25,
                    "the main thread used %.0f%% of a CPU while out of descriptors (spinning "
                    "on the admin listener?)",
                    share * 100);
    {
        char needle[64];

        snprintf(needle, sizeof(needle), "admin 127.0.0.1:%d: accept: ", S.admin_port);
        HARNESS_REQUIRE(&H, harness_log_has(&H, needle), "no \"%s\" in the log", needle);
    }
    /* Descriptors come free: the waiting admin clients are served and
     * event intake resumes, on the old connection and on new ones. */
    for (int i = 0; i < EMFILE_SOURCE_CONNS; i++) {
        close(src[i]);
    }
    for (int i = 0; i < EMFILE_ADMIN_CONNS; i++) {
        HARNESS_REQUIRE(&H, client_response(&adm[i], false, &r, 10000) == 0 && r.status == 200,
                        "admin client %d waiting out of descriptors got %d", i, r.status);
        client_close(&adm[i]);
    }
    ck_assert_int_eq(harness_send_events(steady, 10, 10), 0);
    late = harness_tcp_connect(S.port, 10000);
    ck_assert_msg(late >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(late, 20, 10), 0);
    close(late);
    close(steady);
    harness_require_lines(&H, S.out_path, 30, 15000);
    harness_require_metric(&H, S.admin_port, "sluice_admin_accept_errors_total", 1, true, 5000);
    require_healthy("after running out of descriptors");
    harness_require_stop_ok(&H);
    {
        const char *paths[1] = {S.out_path};

        harness_require_exactly_once(&H, paths, 1, 30);
    }
}
END_TEST

/* --- HEAD: headers with Content-Length, no body ------------------------------------ */

START_TEST(test_admin_head)
{
    static const char *const paths[] = {"/healthz", "/metrics"};
    static const char first[] = {'{', '#'};
    struct client c;
    struct response r;
    char req[256];

    start();
    client_open(&c, S.admin_port);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", paths[i]);
        client_exchange(&c, req, true, &r);
        HARNESS_REQUIRE(&H, r.status == 200, "HEAD %s: %d", paths[i], r.status);
        HARNESS_REQUIRE(&H, r.clen > 0, "HEAD %s: no Content-Length: %s", paths[i], r.head);
        /* The next answer on the connection must be the GET's own. */
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", paths[i]);
        client_exchange(&c, req, false, &r);
        HARNESS_REQUIRE(&H, r.status == 200,
                        "the GET %s after a HEAD did not parse as its own response (a body after "
                        "the HEAD's header?): %.60s",
                        paths[i], r.head);
        HARNESS_REQUIRE(&H, r.clen > 0 && r.body[0] == first[i], "GET %s: body %s", paths[i],
                        r.body);
    }
    /* An error answer to HEAD has no body either. */
    client_exchange(&c, "HEAD /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", true, &r);
    HARNESS_REQUIRE(&H, r.status == 404 && r.clen >= 0, "HEAD /nope: %s", r.head);
    client_exchange(&c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, &r);
    HARNESS_REQUIRE(&H, r.status == 200, "GET /healthz after HEAD /nope: %.60s", r.head);
    HARNESS_REQUIRE(&H, c.len == 0, "stray bytes after the last answer: %s", c.buf);
    client_close(&c);
    harness_require_stop_ok(&H);
}
END_TEST

/* --- POST with a body: 405, not 413 ------------------------------------------------ */

START_TEST(test_admin_post)
{
    struct client c;
    struct response r;

    start();
    client_open(&c, S.admin_port);
    client_exchange(&c,
                    "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 5\r\n\r\nhello",
                    false, &r);
    HARNESS_REQUIRE(&H, r.status == 405, "POST /metrics with a body: %d (want 405)", r.status);
    HARNESS_REQUIRE(&H, strcasestr(r.head, "\r\nAllow: GET, HEAD\r\n") != NULL,
                    "405 without Allow: GET, HEAD: %s", r.head);
    /* The connection goes on. */
    client_exchange(&c, "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, &r);
    HARNESS_REQUIRE(&H, r.status == 405, "POST /healthz: %d (want 405)", r.status);
    client_exchange(&c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", false, &r);
    HARNESS_REQUIRE(&H, r.status == 200, "GET /healthz after POST: %d", r.status);
    client_close(&c);
    harness_require_stop_ok(&H);
}
END_TEST

/* --- the suite ------------------------------------------------------------------------ */

static TCase *
admin_tcase(Suite *s, const char *name, double timeout)
{
    return harness_tcase(s, name, timeout, setup, teardown);
}

int
main(void)
{
    Suite *s = suite_create("admin");
    SRunner *sr;
    int failed;

    tcase_add_test(admin_tcase(s, "pipeline_flood", 120), test_admin_pipeline_flood);
    tcase_add_test(admin_tcase(s, "trickle_deadline", 120), test_admin_trickle_deadline);
    tcase_add_test(admin_tcase(s, "connection_cap", 60), test_admin_connection_cap);
    tcase_add_test(admin_tcase(s, "emfile_backoff", 90), test_admin_emfile_backoff);
    tcase_add_test(admin_tcase(s, "head", 60), test_admin_head);
    tcase_add_test(admin_tcase(s, "post", 60), test_admin_post);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
