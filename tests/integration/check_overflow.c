/*
 * check_overflow — the queue's overflow policy (`when_full`) against the real
 * sluiced, each under a stalled sink: a file sink whose folder the test
 * renames away (the sink notices on its tick, closes the moved file and
 * answers RETRY until the folder is back; no test hook), one TCP sender of
 * standard events with sequence numbers, a queue of 256KiB.
 *
 *   block        the sender pauses (the queue's paused-connections gauge, and
 *                the sender has not got its bytes out) and nothing is dropped:
 *                once the folder is back every event is written exactly once;
 *                block_direct: the same with 64KiB chunks, which the
 *                connection reads into straight (source_tcp.c).
 *   drop_newest  the sender is never paused: all its writes complete within a
 *                deadline while the sink is still down, and the daemon read
 *                them all; the drop counters equal sent − written exactly
 *                (counted from the sequence numbers in the files); every line
 *                is a whole, exact event, each seq at most once, in order.
 *   drop_oldest  the counters equal sent − written exactly; the lines are
 *                whole, exact and in order; the newest events are the ones
 *                kept: the files hold a prefix (written before the stall,
 *                plus the chunk the sink was on) and then one run that ends
 *                with the last event sent.  Also behind a tcp sink whose peer
 *                accepts and does not read (the sink is mid-chunk, mid-line
 *                when it stalls): what the peer finally reads is whole lines.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_overflow
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

static struct harness H;

/* Before the stall: written normally.  Then a few to make the sink try (and
 * fail), then the flood: 20MB, far more than the queue (256KiB) plus the
 * kernel's socket buffers on loopback, so a blocked sender must stop. */
#define PRE_EVENTS 1000
#define POKE_EVENTS 10
#define FLOOD_EVENTS 100000
#define TOTAL_EVENTS (PRE_EVENTS + POKE_EVENTS + FLOOD_EVENTS)
#define SEND_BATCH 500

#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"}"
#define M_WRITTEN "sluice_sink_written_events_total{sink=\"archive\"}"
#define M_UP "sluice_sink_up{sink=\"archive\"}"
#define M_PAUSED "sluice_queue_paused_connections{queue=\"main\"}"
#define M_PAUSES "sluice_queue_pauses_total{queue=\"main\"}"
#define M_DROP_NEWEST "sluice_queue_dropped_events_total{queue=\"main\",reason=\"drop_newest\"}"
#define M_DROP_OLDEST "sluice_queue_dropped_events_total{queue=\"main\",reason=\"drop_oldest\"}"
#define M_DROPB_NEWEST "sluice_queue_dropped_bytes_total{queue=\"main\",reason=\"drop_newest\"}"
#define M_DROPB_OLDEST "sluice_queue_dropped_bytes_total{queue=\"main\",reason=\"drop_oldest\"}"
#define M_SRC_NEWEST "sluice_source_dropped_events_total{source=\"app\",reason=\"drop_newest\"}"

struct ovf {
    int port, admin_port;
    char out_dir[PATH_MAX];       /* dir/out: the sink's folder */
    char moved_dir[PATH_MAX];     /* dir/out.old: where the test moves it */
    char out_path[PATH_MAX + 16]; /* dir/out/out.ndjson */
    char moved_path[PATH_MAX + 16];
    const char *chunk; /* chunk_size (NULL: 16KiB) */
};

static struct ovf O;

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    memset(&O, 0, sizeof(O));
}

static void
teardown(void)
{
    harness_fini(&H);
}

static double
metric(const char *name)
{
    double v = -1;
    HARNESS_REQUIRE(&H, harness_metric_get(O.admin_port, name, &v) == 0, "no sample %s", name);
    return v;
}

/* Two samples from one scrape of /metrics. */
static void
metric2(const char *a, double *va, const char *b, double *vb)
{
    char *body = NULL;
    HARNESS_REQUIRE(&H, harness_http_get(O.admin_port, "/metrics", 5000, &body) == 200,
                    "GET /metrics");
    HARNESS_REQUIRE(&H, harness_metric(body, a, va) == 0 && harness_metric(body, b, vb) == 0,
                    "no sample %s or %s", a, b);
    free(body);
}

/* Polls until written + dropped by drop_oldest == sent: the sink has written
 * everything that was not evicted, and nothing will be evicted any more.
 * Returns dropped. */
static double
wait_written_or_evicted(void)
{
    int64_t deadline = harness_now_ms() + harness_ms(60000);
    double written = 0, dropped = 0;
    for (;;) {
        metric2(M_WRITTEN, &written, M_DROP_OLDEST, &dropped);
        if (written + dropped == TOTAL_EVENTS) {
            return dropped;
        }
        HARNESS_REQUIRE(&H, harness_now_ms() < deadline, "written %.0f + dropped %.0f != %d sent",
                        written, dropped, TOTAL_EVENTS);
        harness_poll_step(10);
    }
}

/* Starts sluiced: tcp source app → queue main (when_full = policy, 256KiB in
 * 16KiB chunks) → sink archive: a file in dir/out, or with tcp_target a tcp
 * sink to that port. */
static void
ovf_start_with(const char *policy, int tcp_target)
{
    char sink[PATH_MAX + 128];
    O.port = harness_free_port(SOCK_STREAM);
    O.admin_port = harness_free_port(SOCK_STREAM);
    ck_assert(O.port > 0 && O.admin_port > 0);
    harness_path(&H, "out", O.out_dir, sizeof(O.out_dir));
    harness_path(&H, "out.old", O.moved_dir, sizeof(O.moved_dir));
    snprintf(O.out_path, sizeof(O.out_path), "%s/out.ndjson", O.out_dir);
    snprintf(O.moved_path, sizeof(O.moved_path), "%s/out.ndjson", O.moved_dir);
    ck_assert_int_eq(mkdir(O.out_dir, 0755), 0);
    if (tcp_target > 0) {
        /* write_timeout: the test's listener is alive, it just does not
         * read; the sink must wait for it, not reconnect. */
        snprintf(sink, sizeof(sink), "type = tcp\ntarget = 127.0.0.1:%d\nwrite_timeout = 10min\n",
                 tcp_target);
    } else {
        snprintf(sink, sizeof(sink), "type = file\npath = %s\n", O.out_path);
    }
    ck_assert_int_eq(harness_write_config(&H,
                                          "[daemon]\n"
                                          "producer_threads = 2\n"
                                          "log_level = info\n"
                                          "admin_listen = 127.0.0.1:%d\n"
                                          "\n[source app]\n"
                                          "type = tcp\n"
                                          "listen = 127.0.0.1:%d\n"
                                          "queue = main\n"
                                          "max_line_bytes = 1KiB\n"
                                          "\n[queue main]\n"
                                          "capacity = 256KiB\n"
                                          "chunk_size = %s\n"
                                          "when_full = %s\n"
                                          "\n[sink archive]\n"
                                          "queue = main\n"
                                          "%s",
                                          O.admin_port, O.port,
                                          O.chunk != NULL ? O.chunk : "16KiB", policy, sink),
                     0);
    ck_assert_int_eq(harness_start(&H, NULL), 0);
    HARNESS_REQUIRE(&H, harness_wait_tcp(&H, O.port, 10000) == HARNESS_WAIT_OK, "not listening");
}

static void
ovf_start(const char *policy)
{
    ovf_start_with(policy, 0);
}

/* --- the sender ---------------------------------------------------------------- */

struct sender {
    pthread_t thread;
    int fd;
    uint64_t base, n;
    atomic_uint_least64_t sent; /* events handed to send() in full */
    atomic_bool done;
    int err;
};

static void *
sender_main(void *arg)
{
    struct sender *s = arg;
    uint64_t sent = 0;
    while (sent < s->n) {
        uint64_t k = s->n - sent < SEND_BATCH ? s->n - sent : SEND_BATCH;
        if (harness_send_events(s->fd, s->base + sent, k) == -1) {
            s->err = errno;
            break;
        }
        sent += k;
        atomic_store(&s->sent, sent);
    }
    atomic_store(&s->done, true);
    return NULL;
}

static void
sender_start(struct sender *s, int fd, uint64_t base, uint64_t n)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->base = base;
    s->n = n;
    ck_assert_int_eq(pthread_create(&s->thread, NULL, sender_main, s), 0);
}

static bool
sender_done_cb(void *arg)
{
    return atomic_load(&((struct sender *)arg)->done);
}

/* Waits (timeout_ms) for the sender to have sent everything; fails with
 * what (e.g. "the sender was blocked") otherwise. */
static void
sender_finish(struct sender *s, int timeout_ms, const char *what)
{
    HARNESS_REQUIRE(&H, harness_poll(&H, timeout_ms, sender_done_cb, s) == HARNESS_WAIT_OK,
                    "%s (%" PRIu64 " of %" PRIu64 " events sent)", what,
                    (uint64_t)atomic_load(&s->sent), s->n);
    pthread_join(s->thread, NULL);
    ck_assert_int_eq(s->err, 0);
}

/* --- the stall ---------------------------------------------------------------- */

/* Writes PRE_EVENTS normally, moves the sink's folder away and pokes the
 * sink with POKE_EVENTS until it reports down.  Returns the connection. */
static int
stall_sink(void)
{
    int fd = harness_tcp_connect(O.port, 120000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(fd, 0, PRE_EVENTS), 0);
    harness_require_metric(&H, O.admin_port, M_WRITTEN, PRE_EVENTS, false, 10000);
    ck_assert_msg(rename(O.out_dir, O.moved_dir) == 0, "rename: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(fd, PRE_EVENTS, POKE_EVENTS), 0);
    harness_require_metric(&H, O.admin_port, M_UP, 0, false, 10000);
    return fd;
}

static void
unstall_sink(void)
{
    ck_assert_msg(mkdir(O.out_dir, 0755) == 0, "mkdir: %s", strerror(errno));
}

/* --- reading what was written ---------------------------------------------------- */

struct seqs {
    uint64_t *v; /* seqs in file order: moved file, then the new one */
    size_t n;
};

/* Appends the seqs of the file at path; every line must be exactly the
 * standard event of its seq (a whole line, the client's bytes). */
static void
seqs_add(struct seqs *s, const char *path)
{
    size_t len = 0;
    char *data = harness_read_file(path, &len);
    char want[HARNESS_EVENT_BYTES + 1];
    if (data == NULL) {
        return; /* no file: nothing was written there */
    }
    s->v = realloc(s->v, (s->n + harness_count_lines(data, len) + 1) * sizeof(*s->v));
    ck_assert_ptr_nonnull(s->v);
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        unsigned long long seq;
        HARNESS_REQUIRE(&H, nl != NULL, "%s: a line without its end at byte %td", path, p - data);
        HARNESS_REQUIRE(&H, sscanf(p, "{\"seq\":%llu,", &seq) == 1, "%s: not an event: %.60s", path,
                        p);
        size_t wl = harness_event_line(want, seq);
        HARNESS_REQUIRE(&H, (size_t)(nl + 1 - p) == wl && memcmp(p, want, wl) == 0,
                        "%s: line of seq %llu is not the event sent", path, seq);
        s->v[s->n++] = seq;
        p = nl + 1;
    }
    free(data);
}

static void
seqs_read(struct seqs *s)
{
    memset(s, 0, sizeof(*s));
    seqs_add(s, O.moved_path);
    seqs_add(s, O.out_path);
}

/* Strictly increasing (so each seq at most once, in order); returns the
 * number of gaps. */
static size_t
seqs_gaps(const struct seqs *s)
{
    size_t gaps = 0;
    for (size_t i = 1; i < s->n; i++) {
        HARNESS_REQUIRE(&H, s->v[i] > s->v[i - 1], "seq %" PRIu64 " after %" PRIu64 " (line %zu)",
                        s->v[i], s->v[i - 1], i);
        gaps += s->v[i] != s->v[i - 1] + 1;
    }
    return gaps;
}

static void
ovf_stop_and_read(struct seqs *s, double written)
{
    harness_require_stop_ok(&H);
    seqs_read(s);
    HARNESS_REQUIRE(&H, (double)s->n == written, "%zu lines in the files, %.0f written", s->n,
                    written);
}

/* --- block ------------------------------------------------------------------------ */

static void
overflow_block(void)
{
    struct sender snd;
    struct seqs s;
    const char *paths[] = {O.moved_path, O.out_path};

    ovf_start("block");
    int fd = stall_sink();
    sender_start(&snd, fd, PRE_EVENTS + POKE_EVENTS, FLOOD_EVENTS);
    /* The connection pauses; the sender cannot get its 20MB out. */
    harness_require_metric(&H, O.admin_port, M_PAUSED, 1, false, 30000);
    HARNESS_REQUIRE(&H, !atomic_load(&snd.done), "the sender finished with the sink down");
    HARNESS_REQUIRE(&H, metric(M_DROP_NEWEST) == 0 && metric(M_DROP_OLDEST) == 0,
                    "block dropped events");
    unstall_sink();
    sender_finish(&snd, 120000, "the sender did not finish once the sink was back");
    close(fd);
    harness_require_metric(&H, O.admin_port, M_WRITTEN, TOTAL_EVENTS, false, 60000);
    HARNESS_REQUIRE(&H, metric(M_DROP_NEWEST) == 0 && metric(M_DROP_OLDEST) == 0,
                    "block dropped events");
    ovf_stop_and_read(&s, TOTAL_EVENTS);
    ck_assert_uint_eq(seqs_gaps(&s), 0);
    free(s.v);
    harness_require_exactly_once(&H, paths, 2, TOTAL_EVENTS);
}

START_TEST(test_overflow_block)
{
    overflow_block();
}
END_TEST

/* The same with 64KiB chunks: the connection reads straight into the
 * lane's chunk (source_tcp.c, THE DIRECT READ) until the queue is full,
 * pauses, and resumes with its partial line. */
START_TEST(test_overflow_block_direct)
{
    O.chunk = "64KiB";
    overflow_block();
}
END_TEST

/* --- drop_newest ------------------------------------------------------------------ */

START_TEST(test_overflow_drop_newest)
{
    struct sender snd;
    struct seqs s;

    ovf_start("drop_newest");
    int fd = stall_sink();
    sender_start(&snd, fd, PRE_EVENTS + POKE_EVENTS, FLOOD_EVENTS);
    /* Never blocked: all 20MB go out while the sink is still down. */
    sender_finish(&snd, 30000, "the sender was blocked");
    HARNESS_REQUIRE(&H, harness_wait_sent(fd, 30000) == HARNESS_WAIT_OK, "the daemon did not read");
    /* Every event is either in the queue or dropped and counted. */
    uint64_t deadline = (uint64_t)harness_now_ms() + (uint64_t)harness_ms(30000);
    double received = 0, dropped = 0;
    for (;;) {
        received = metric(M_RECEIVED);
        dropped = metric(M_DROP_NEWEST);
        if (received + dropped == TOTAL_EVENTS) {
            break;
        }
        HARNESS_REQUIRE(&H, (uint64_t)harness_now_ms() < deadline,
                        "received %.0f + dropped %.0f != %d sent", received, dropped, TOTAL_EVENTS);
        harness_poll_step(10);
    }
    HARNESS_REQUIRE(&H, metric(M_UP) == 0, "the sink came back by itself");
    HARNESS_REQUIRE(&H, dropped > 0, "nothing dropped");
    HARNESS_REQUIRE(&H, metric(M_PAUSES) == 0, "a connection paused under drop_newest");
    HARNESS_REQUIRE(&H, metric(M_SRC_NEWEST) == dropped, "the source's count differs");
    HARNESS_REQUIRE(&H, metric(M_DROP_OLDEST) == 0, "drop_oldest counted under drop_newest");
    /* Bytes as received: the standard event without its newline. */
    HARNESS_REQUIRE(&H, metric(M_DROPB_NEWEST) == dropped * (HARNESS_EVENT_BYTES - 1),
                    "dropped bytes %.0f for %.0f events", metric(M_DROPB_NEWEST), dropped);
    close(fd);

    unstall_sink();
    harness_require_metric(&H, O.admin_port, M_WRITTEN, received, false, 60000);
    ovf_stop_and_read(&s, received);
    (void)seqs_gaps(&s);
    HARNESS_REQUIRE(&H, (double)s.n == TOTAL_EVENTS - dropped,
                    "%zu written + %.0f dropped != %d sent", s.n, dropped, TOTAL_EVENTS);
    HARNESS_REQUIRE(&H, s.n > 0 && s.v[0] == 0, "the first events are missing");
    free(s.v);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "when_full = drop_newest"), "no log line for drops");
}
END_TEST

/* --- drop_oldest ------------------------------------------------------------------ */

START_TEST(test_overflow_drop_oldest)
{
    struct sender snd;
    struct seqs s;

    ovf_start("drop_oldest");
    int fd = stall_sink();
    sender_start(&snd, fd, PRE_EVENTS + POKE_EVENTS, FLOOD_EVENTS);
    sender_finish(&snd, 60000, "the sender did not finish");
    close(fd);
    /* Everything is taken into the queue; the oldest is evicted for it. */
    harness_require_metric(&H, O.admin_port, M_RECEIVED, TOTAL_EVENTS, false, 30000);
    HARNESS_REQUIRE(&H, metric(M_UP) == 0, "the sink came back by itself");
    HARNESS_REQUIRE(&H, metric(M_DROP_OLDEST) > 0, "nothing dropped");
    HARNESS_REQUIRE(&H, metric(M_DROP_NEWEST) == 0, "drop_newest counted under drop_oldest");

    unstall_sink();
    double dropped = wait_written_or_evicted();
    /* Bytes as encoded: the json codec writes the client's line as is. */
    HARNESS_REQUIRE(&H, metric(M_DROPB_OLDEST) == dropped * HARNESS_EVENT_BYTES,
                    "dropped bytes %.0f for %.0f events", metric(M_DROPB_OLDEST), dropped);
    ovf_stop_and_read(&s, TOTAL_EVENTS - dropped);
    HARNESS_REQUIRE(&H, (double)s.n == TOTAL_EVENTS - dropped,
                    "%zu written + %.0f dropped != %d sent", s.n, dropped, TOTAL_EVENTS);
    /* The oldest went: one gap at most, and the newest event is there. */
    size_t gaps = seqs_gaps(&s);
    HARNESS_REQUIRE(&H, gaps <= 1, "%zu gaps: not the oldest dropped", gaps);
    HARNESS_REQUIRE(&H, s.n > 0 && s.v[0] == 0, "the first events are missing");
    HARNESS_REQUIRE(&H, s.v[s.n - 1] == TOTAL_EVENTS - 1, "the newest event is missing");
    HARNESS_REQUIRE(&H, s.v[s.n - 1] - s.v[0] + 1 - s.n == (uint64_t)dropped,
                    "the gap is not what was dropped");
    free(s.v);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "when_full = drop_oldest"), "no log line for drops");
}
END_TEST

/* --- drop_oldest behind a tcp sink whose peer does not read ---------------------- */

/* Reads conn into path until the sink has written everything it did not
 * evict and all of it arrived (within a deadline).  Returns what was
 * evicted. */
static double
read_all(int conn, const char *path)
{
    static char buf[65536];
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000}; /* look at the metrics meanwhile */
    int64_t deadline = harness_now_ms() + harness_ms(60000);
    uint64_t got = 0;
    double written = 0, dropped = 0;
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(out, 0);
    ck_assert_int_eq(setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    for (;;) {
        ssize_t r = read(conn, buf, sizeof(buf));
        if (r > 0) {
            ck_assert_int_eq(write(out, buf, (size_t)r), r);
            got += (uint64_t)r;
            continue;
        }
        HARNESS_REQUIRE(&H, r < 0 && (errno == EAGAIN || errno == EINTR),
                        "the sink's connection ended: %zd after %" PRIu64 " bytes", r, got);
        metric2(M_WRITTEN, &written, M_DROP_OLDEST, &dropped);
        if (written + dropped == TOTAL_EVENTS && (double)got == written * HARNESS_EVENT_BYTES) {
            break;
        }
        HARNESS_REQUIRE(&H, harness_now_ms() < deadline,
                        "read %" PRIu64 " bytes; written %.0f + dropped %.0f of %d", got, written,
                        dropped, TOTAL_EVENTS);
    }
    close(out);
    return dropped;
}

START_TEST(test_overflow_drop_oldest_tcp_sink)
{
    struct sender snd;
    struct seqs s;
    char got_path[PATH_MAX];
    int target = 0;
    /* A listener of this test with a small receive buffer: it accepts and
     * does not read until the end, so the tcp sink fills the kernel's
     * buffers, sends part of a chunk (part of a line) and waits. */
    int lfd = harness_tcp_listen(16384, &target);
    ck_assert_msg(lfd >= 0, "listen: %s", strerror(errno));

    ovf_start_with("drop_oldest", target);
    int conn = accept(lfd, NULL, NULL); /* the sink connects at start */
    ck_assert_int_ge(conn, 0);
    int fd = harness_tcp_connect(O.port, 120000);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    sender_start(&snd, fd, 0, TOTAL_EVENTS);
    sender_finish(&snd, 60000, "the sender did not finish");
    close(fd);
    harness_require_metric(&H, O.admin_port, M_RECEIVED, TOTAL_EVENTS, false, 30000);
    HARNESS_REQUIRE(&H, metric(M_DROP_OLDEST) > 0, "nothing dropped");

    /* The peer reads at last: whole lines, in order, the newest kept. */
    harness_path(&H, "got.ndjson", got_path, sizeof(got_path));
    double dropped = read_all(conn, got_path);
    uint64_t kept = TOTAL_EVENTS - (uint64_t)dropped;
    HARNESS_REQUIRE(&H, metric(M_DROPB_OLDEST) == dropped * HARNESS_EVENT_BYTES,
                    "dropped bytes %.0f for %.0f events", metric(M_DROPB_OLDEST), dropped);
    harness_require_stop_ok(&H);
    memset(&s, 0, sizeof(s));
    seqs_add(&s, got_path);
    HARNESS_REQUIRE(&H, s.n == kept, "%zu lines read, %" PRIu64 " written", s.n, kept);
    size_t gaps = seqs_gaps(&s);
    HARNESS_REQUIRE(&H, gaps <= 1, "%zu gaps: not the oldest dropped", gaps);
    HARNESS_REQUIRE(&H, s.v[0] == 0 && s.v[s.n - 1] == TOTAL_EVENTS - 1,
                    "first %" PRIu64 ", last %" PRIu64, s.v[0], s.v[s.n - 1]);
    free(s.v);
    close(conn);
    close(lfd);
}
END_TEST

static Suite *
overflow_suite(void)
{
    Suite *s = suite_create("overflow");
    TCase *tc = harness_tcase(s, "when_full", 300, setup, teardown);
    tcase_add_test(tc, test_overflow_block);
    tcase_add_test(tc, test_overflow_block_direct);
    tcase_add_test(tc, test_overflow_drop_newest);
    tcase_add_test(tc, test_overflow_drop_oldest);
    tcase_add_test(tc, test_overflow_drop_oldest_tcp_sink);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(overflow_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
