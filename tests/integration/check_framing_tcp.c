/*
 * check_framing_tcp — RFC 6587 framing (the source key `framing`) against
 * the real sluiced over real loopback TCP connections:
 *
 *   octet_json      1000 standard JSON events in octet-counted frames (half
 *                   of them with a trailing '\n' inside the count, some
 *                   '\n' between frames), written in pieces cut at varying
 *                   points with the bytes drained between pieces, and a
 *                   100 KiB frame over max_line_bytes in the middle: every
 *                   event arrives exactly once byte for byte, oversize is 1,
 *                   framing_errors is 0;
 *   json_runs       newline framing, codec json, small chunks: valid lines
 *                   (copied in runs, stream.c) mixed with invalid, CRLF,
 *                   empty, indented, escaped and oversize lines and a last
 *                   line without '\n', in pieces: exactly the valid lines
 *                   in order, invalid and oversize counted;
 *   json_short      the same with lines under 64 bytes (their quote index
 *                   comes from the framing, framing.c) and short invalid
 *                   lines only the barring bytes tell from valid ones;
 *   json_direct     the same read straight into the lane's chunk (64KiB
 *                   chunks, source_tcp.c): lines split at every point,
 *                   reads that fill the chunk's room mid-line, invalid
 *                   lines cut out of runs read in place;
 *   auto_raw        framing = auto, codec = raw: one connection speaks
 *                   octet counting (a message with inner newlines), another
 *                   newline framing; each is framed its own way;
 *   malformed       a bad frame header: counted in framing_errors, logged,
 *                   the connection stays open and is newline-framed from
 *                   the bad header on (the bad bytes become the next line);
 *   eof_mid_frame   a connection closed inside a frame: the frames before it
 *                   arrive, the cut-off one counts as a framing error;
 *   json_multiline  a pretty-printed JSON object in one frame (codec json):
 *                   one output line, its newlines turned into spaces;
 *   logger          util-linux logger --tcp --octet-count and without it, to
 *                   a framing = auto raw source (skipped without logger).
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_framing_tcp
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

static struct harness H;
static struct harness_std S;

#define M_OVERSIZE "sluice_source_dropped_events_total{source=\"app\",reason=\"oversize\"}"
#define M_INVALID "sluice_source_dropped_events_total{source=\"app\",reason=\"invalid\"}"
#define M_FRAMING "sluice_source_framing_errors_total{source=\"app\"}"
#define M_RECEIVED "sluice_source_received_events_total{source=\"app\"}"

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
require_metric(const char *name, double want)
{
    harness_require_metric(&H, S.admin_port, name, want, false, 10000);
}

/* Sends buf in pieces of 1..max_piece bytes (a fixed pseudo-random
 * sequence), waiting after each until the daemon's socket holds it, so the
 * daemon's reads end at many different points. */
static void
send_pieces(int fd, const char *buf, size_t len, size_t max_piece, uint32_t seed)
{
    size_t pos = 0;
    while (pos < len) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % max_piece;
        if (n > len - pos) {
            n = len - pos;
        }
        HARNESS_REQUIRE(&H, harness_send_all(fd, buf + pos, n) == 0, "send: %s", strerror(errno));
        HARNESS_REQUIRE(&H, harness_wait_sent(fd, 10000) == HARNESS_WAIT_OK, "not drained");
        pos += n;
    }
}

/* One octet-counted frame around content. */
static void
text_frame(struct harness_buf *t, const char *content, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof(head), "%zu ", n);
    harness_buf_add(t, head, (size_t)h);
    harness_buf_add(t, content, n);
}

/* Starts the daemon with framing = octet_counted (codec json) and
 * connects to it. */
static int
start_octet(void)
{
    S.source_extra = "framing = octet_counted\n";
    harness_std_require_start(&H, &S, NULL);
    int fd = harness_tcp_connect(S.port, 10000);
    HARNESS_REQUIRE(&H, fd >= 0, "connect: %s", strerror(errno));
    return fd;
}

START_TEST(test_framing_tcp_octet_json)
{
    const uint64_t n = 1000;
    struct harness_buf t = {0};
    char ev[HARNESS_EVENT_BYTES];
    S.source_extra = "framing = octet_counted\nmax_line_bytes = 1KiB\n";
    harness_std_require_start(&H, &S, NULL);

    for (uint64_t seq = 0; seq < n; seq++) {
        size_t len = harness_event_line(ev, seq);
        /* Odd events carry their '\n' inside the count (some senders do),
         * even ones do not; every tenth is followed by a '\n' outside. */
        text_frame(&t, ev, seq % 2 == 1 ? len : len - 1);
        if (seq % 10 == 0) {
            harness_buf_add(&t, "\n", 1);
        }
        if (seq == n / 2 - 1) {
            /* 100 KiB over max_line_bytes: skipped, never buffered. */
            size_t big = 100 * 1024;
            char *b = malloc(big);
            ck_assert(b != NULL);
            memset(b, 'x', big);
            b[0] = '{';
            text_frame(&t, b, big);
            free(b);
        }
    }
    int fd = harness_tcp_connect(S.port, 10000);
    HARNESS_REQUIRE(&H, fd >= 0, "connect: %s", strerror(errno));
    /* The first 20 KiB in small pieces (every read boundary inside headers
     * and frames), the rest in larger ones. */
    size_t head = 20 * 1024;
    send_pieces(fd, t.p, head, 37, 1);
    send_pieces(fd, t.p + head, t.len - head, 9000, 2);
    harness_require_lines(&H, S.out_path, n, 10000);
    require_metric(M_OVERSIZE, 1);
    require_metric(M_FRAMING, 0);
    require_metric(M_INVALID, 0);
    close(fd);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, n);
    free(t.p);
}
END_TEST

/*
 * Sends in over one connection (the first head bytes in pieces of up to
 * small bytes, the rest in pieces of up to 20,000, both cut at arbitrary
 * points), closes it, and requires exactly want in the output, invalid
 * and oversize events counted.  Frees in and want.
 */
static void
json_send_require_big(struct harness_buf *in, struct harness_buf *want, size_t head, size_t small,
                      size_t big, uint32_t seed, unsigned nlines, unsigned ninvalid,
                      unsigned noversize)
{
    int fd = harness_tcp_connect(S.port, 10000);
    HARNESS_REQUIRE(&H, fd >= 0, "connect: %s", strerror(errno));
    send_pieces(fd, in->p, head, small, seed);
    send_pieces(fd, in->p + head, in->len - head, big, seed + 1);
    close(fd);
    harness_require_lines(&H, S.out_path, nlines, 10000);
    require_metric(M_INVALID, ninvalid);
    require_metric(M_OVERSIZE, noversize);
    harness_require_stop_ok(&H);
    size_t gotlen = 0;
    char *got = harness_read_file(S.out_path, &gotlen);
    HARNESS_REQUIRE(&H, got != NULL && gotlen == want->len && memcmp(got, want->p, gotlen) == 0,
                    "output (%zu bytes) is not the %zu bytes of valid lines in order", gotlen,
                    want->len);
    free(got);
    free(in->p);
    free(want->p);
}

/* json_send_require_big with the rest in pieces of up to 20,000 bytes. */
static void
json_send_require(struct harness_buf *in, struct harness_buf *want, size_t head, size_t small,
                  uint32_t seed, unsigned nlines, unsigned ninvalid, unsigned noversize)
{
    json_send_require_big(in, want, head, small, 20000, seed, nlines, ninvalid, noversize);
}

/* What json_mix_build() mixes into its valid lines: line i has a pad of
 * i * 7919 % pad_max bytes; every X_every-th line (0: none) is indented,
 * has an escape and UTF-8, ends in CRLF (i % crlf_every == 3) or is
 * followed by an empty line; i % invalid_every == invalid_at is invalid. */
struct json_mix {
    unsigned pad_max;
    unsigned indent_every, utf_every, invalid_every, invalid_at, crlf_every, empty_every;
    bool oversize_at_half; /* a line over max_line_bytes (1KiB) after line n / 2 */
};

/* n json lines and a last one without '\n' into in, the valid ones as
 * written into want.  Returns the invalid lines. */
static unsigned
json_mix_build(struct harness_buf *in, struct harness_buf *want, unsigned n,
               const struct json_mix *m)
{
    static const char dots[] =
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................";
    unsigned ninvalid = 0;
    char line[1024];
    for (unsigned i = 0; i < n; i++) {
        int len = snprintf(line, sizeof(line), "%s{\"seq\":%u,\"pad\":\"%.*s\"%s}",
                           m->indent_every > 0 && i % m->indent_every == 0 ? "  " : "", i,
                           (int)(i * 7919u % m->pad_max), dots,
                           i % m->utf_every == 0 ? ",\"u\":\"\\n\xc3\xa9\"" : "");
        if (i % m->invalid_every == m->invalid_at) {
            /* Invalid (no closing brace): counted, dropped, the run around it kept. */
            harness_buf_add(in, line, (size_t)len - 1);
            harness_buf_add(in, "\n", 1);
            ninvalid++;
            continue;
        }
        bool crlf = i % m->crlf_every == 3;
        harness_buf_add(want, line, (size_t)len);
        harness_buf_add(want, "\n", 1);
        harness_buf_add(in, line, (size_t)len);
        harness_buf_add(in, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
        if (i % m->empty_every == 0) {
            harness_buf_add(in, "\n", 1); /* an empty line: skipped */
        }
        if (m->oversize_at_half && i == n / 2) {
            /* Over max_line_bytes: skipped, counted. */
            char big[1500];
            memset(big, 'x', sizeof(big));
            big[0] = '{';
            harness_buf_add(in, big, sizeof(big));
            harness_buf_add(in, "\n", 1);
        }
    }
    /* The last line has no '\n': it is an event at EOF. */
    int len = snprintf(line, sizeof(line), "{\"seq\":%u}", n);
    harness_buf_add(in, line, (size_t)len);
    harness_buf_add(want, line, (size_t)len);
    harness_buf_add(want, "\n", 1);
    return ninvalid;
}

/* Starts the daemon (max_line_bytes = 1KiB, the queue as queue_extra says),
 * sends n lines of m (json_mix_build) as json_send_require_big() with
 * pieces of up to 61 bytes for the first head bytes, then up to big. */
static void
json_mix_run(const struct json_mix *m, unsigned n, const char *queue_extra, size_t head,
             size_t big, uint32_t seed)
{
    struct harness_buf in = {0};
    struct harness_buf want = {0};
    S.source_extra = "max_line_bytes = 1KiB\n";
    S.queue_extra = queue_extra;
    harness_std_require_start(&H, &S, NULL);
    unsigned ninvalid = json_mix_build(&in, &want, n, m);
    json_send_require_big(&in, &want, head, 61, big, seed, n + 1 - ninvalid, ninvalid,
                          m->oversize_at_half ? 1 : 0);
}

/*
 * The json codec's verbatim runs (src/source/stream.c): lines copied into
 * the chunk in runs, broken by every kind of line that must not be copied
 * as it came.  A small chunk_size makes runs meet full chunks often; the
 * bytes arrive in pieces cut at arbitrary points.  The output must be
 * exactly the valid lines in order ('\r' stripped), and the counters the
 * ones the line-by-line path gives.
 */
START_TEST(test_framing_tcp_json_runs)
{
    static const struct json_mix mix = {.pad_max = 700, .indent_every = 17, .utf_every = 19,
                                         .invalid_every = 11, .invalid_at = 5, .crlf_every = 7,
                                         .empty_every = 13, .oversize_at_half = true};
    json_mix_run(&mix, 6000, "chunk_size = 8KiB\ncapacity = 64KiB\n", 16 * 1024, 20000, 3);
}
END_TEST

/*
 * json_short: lines under 64 bytes, which the json validator takes with
 * the quote index the framing built in its own pass (framing.c, THE LINE
 * INDEX), mixed with short invalid lines that only the barring bytes tell
 * from valid ones (an escaped quote, a raw control byte, bytes that are
 * not UTF-8, an unpaired quote), valid ones with escapes and UTF-8, CRLF
 * and lines of 64 bytes and more; small chunks, bytes in pieces cut at
 * arbitrary points: exactly the valid lines in order, the others counted.
 */
START_TEST(test_framing_tcp_json_short)
{
    static const char *const bad[] = {
        "{\"a\":\"x\\\"}",        /* the string does not end: \" is escaped */
        "{\"a\":\"\x01\"}",       /* a raw control byte */
        "{\"a\":\"\xff\xfe\"}",   /* not UTF-8 */
        "{\"a\":\"b}",            /* no closing quote */
        "{\"a\":\"\\u0000\"}",    /* \u0000 */
        "{\"a\":\"\xc3\"}",       /* a cut UTF-8 sequence */
        "{\"a\":\"\x7f\",\"b\"}", /* a key without a value */
    };
    static const char *const good[] = {
        "{\"a\":\"x\\\\\"}",        /* an escaped backslash */
        "{\"a\":\"\xc3\xa9\\n\"}",  /* UTF-8 and an escape */
        "{\"a\":\"\x7f\"}",         /* DEL is allowed */
        "{\"q\":\"\\\"\",\"r\":1}", /* an escaped quote, then more */
    };
    const unsigned n = 20000;
    struct harness_buf in = {0};
    struct harness_buf want = {0};
    unsigned ninvalid = 0;
    char line[256];
    S.source_extra = "max_line_bytes = 1KiB\n";
    S.queue_extra = "chunk_size = 8KiB\ncapacity = 32KiB\n";
    harness_std_require_start(&H, &S, NULL);

    for (unsigned i = 0; i < n; i++) {
        int len;
        bool valid = true;
        if (i % 23 == 7) {
            len = snprintf(line, sizeof(line), "%s", bad[i / 23 % 7]);
            valid = false;
        } else if (i % 29 == 11) {
            len = snprintf(line, sizeof(line), "%s", good[i / 29 % 4]);
        } else {
            /* 20 to ~90 bytes: most under 64, across block edges */
            len = snprintf(
                line, sizeof(line), "{\"seq\":%u,\"m\":\"%.*s\"}", i, (int)(i * 7919u % 70u),
                "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH");
        }
        harness_buf_add(&in, line, (size_t)len);
        harness_buf_add(&in, i % 7 == 3 ? "\r\n" : "\n", i % 7 == 3 ? 2 : 1);
        if (valid) {
            harness_buf_add(&want, line, (size_t)len);
            harness_buf_add(&want, "\n", 1);
        } else {
            ninvalid++;
        }
    }

    json_send_require(&in, &want, 24 * 1024, 97, 5, n - ninvalid, ninvalid, 0);
}
END_TEST

/*
 * json_direct: reads straight into the lane's chunk (source_tcp.c, THE
 * DIRECT READ; chunks of 64KiB, so a read has room there), framed and
 * validated in place.  The first 32KiB arrive in pieces of 1..61 bytes (a
 * line split across reads at every point, its partial line carried into
 * the next chunk room), the rest in pieces of up to 200,000 bytes (reads
 * that fill the chunk's room and end in a partial line); among the valid
 * lines, invalid ones (cut out of a run read in place: the rest of the
 * read goes the ordinary way), CRLF, empty lines and one over
 * max_line_bytes.  Exactly the valid lines in order, the others counted.
 */
START_TEST(test_framing_tcp_json_direct)
{
    static const struct json_mix mix = {.pad_max = 600, .utf_every = 37, .invalid_every = 101,
                                         .invalid_at = 50, .crlf_every = 997, .empty_every = 211,
                                         .oversize_at_half = true};
    json_mix_run(&mix, 60000, "chunk_size = 64KiB\ncapacity = 1MiB\n", 32 * 1024, 200000, 7);
}
END_TEST

/* The output file holds a line containing needle. */
static bool
out_has(const char *needle)
{
    char *s = harness_read_file(S.out_path, NULL);
    bool has = s != NULL && strstr(s, needle) != NULL;
    free(s);
    return has;
}

START_TEST(test_framing_tcp_auto_raw)
{
    S.codec = "raw";
    S.source_extra = "framing = auto\n";
    harness_std_require_start(&H, &S, NULL);

    int oc = harness_tcp_connect(S.port, 10000);
    int lf = harness_tcp_connect(S.port, 10000);
    HARNESS_REQUIRE(&H, oc >= 0 && lf >= 0, "connect: %s", strerror(errno));
    struct harness_buf t = {0};
    const char *m1 = "<13>1 - host app - - - first\nsecond line";
    const char *m2 = "<14>1 - host app - - - third";
    text_frame(&t, m1, strlen(m1));
    text_frame(&t, m2, strlen(m2));
    /* Byte by byte: auto decides from the first bytes whatever the reads. */
    send_pieces(oc, t.p, t.len, 1, 3);
    const char *lines = "12 not a frame\n<15>plain line\n";
    send_pieces(lf, lines, strlen(lines), 4, 4);
    harness_require_lines(&H, S.out_path, 4, 10000);
    HARNESS_REQUIRE(&H, out_has("{\"message\":\"<13>1 - host app - - - first\\nsecond line\"}\n"),
                    "octet frame with an inner newline not one event");
    HARNESS_REQUIRE(&H, out_has("{\"message\":\"<14>1 - host app - - - third\"}\n"), "frame 2");
    HARNESS_REQUIRE(&H, out_has("{\"message\":\"12 not a frame\"}\n"), "lf line 1");
    HARNESS_REQUIRE(&H, out_has("{\"message\":\"<15>plain line\"}\n"), "lf line 2");
    require_metric(M_FRAMING, 0);
    close(oc);
    close(lf);
    harness_require_stop_ok(&H);
    HARNESS_REQUIRE(&H, harness_file_lines(S.out_path) == 4, "more than 4 lines");
    free(t.p);
}
END_TEST

START_TEST(test_framing_tcp_malformed)
{
    char ev[HARNESS_EVENT_BYTES];
    int fd = start_octet();
    struct harness_buf t = {0};
    size_t len = harness_event_line(ev, 0);
    text_frame(&t, ev, len - 1);
    /* A leading zero: malformed.  From here the connection is
     * newline-framed: "012 " and the event after it are one (invalid) line,
     * then the standard events 1 and 2 as plain lines. */
    harness_buf_add(&t, "012 ", 4);
    harness_buf_add(&t, ev, len);
    send_pieces(fd, t.p, t.len, 5, 5);
    require_metric(M_FRAMING, 1);
    require_metric(M_INVALID, 1);
    HARNESS_REQUIRE(&H, harness_send_events(fd, 1, 2) == 0, "send: %s", strerror(errno));
    harness_require_lines(&H, S.out_path, 3, 10000);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "framing error: frame length 0 or with a leading zero"),
                    "framing error not logged");
    require_metric(M_FRAMING, 1);
    /* The connection is still open and served. */
    HARNESS_REQUIRE(&H, harness_send_events(fd, 3, 1) == 0, "send: %s", strerror(errno));
    harness_require_lines(&H, S.out_path, 4, 10000);
    close(fd);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 4);
    free(t.p);
}
END_TEST

START_TEST(test_framing_tcp_eof_mid_frame)
{
    char ev[HARNESS_EVENT_BYTES];
    int fd = start_octet();
    struct harness_buf t = {0};
    for (uint64_t seq = 0; seq < 2; seq++) {
        size_t len = harness_event_line(ev, seq);
        text_frame(&t, ev, len - 1);
    }
    /* A frame announcing 500 bytes, cut off after 20. */
    harness_buf_add(&t, "500 {\"seq\":2,\"level\":", 22);
    send_pieces(fd, t.p, t.len, 64, 6);
    close(fd);
    require_metric(M_FRAMING, 1);
    /* Cut off right after a header: nothing of the frame left over, still
     * a cut-off frame. */
    fd = harness_tcp_connect(S.port, 10000);
    HARNESS_REQUIRE(&H, fd >= 0, "connect: %s", strerror(errno));
    send_pieces(fd, "300 ", 4, 4, 8);
    close(fd);
    require_metric(M_FRAMING, 2);
    harness_require_lines(&H, S.out_path, 2, 10000);
    require_metric(M_RECEIVED, 2);
    require_metric(M_INVALID, 0);
    harness_require_stop_ok(&H);
    const char *paths[] = {S.out_path};
    harness_require_exactly_once(&H, paths, 1, 2);
    free(t.p);
}
END_TEST

/* The line of out holding needle starts with prefix. */
static bool
line_is(const char *out, const char *needle, const char *prefix)
{
    const char *at = strstr(out, needle);
    if (at == NULL) {
        return false;
    }
    while (at > out && at[-1] != '\n') {
        at--;
    }
    return strncmp(at, prefix, strlen(prefix)) == 0;
}

START_TEST(test_framing_tcp_json_multiline)
{
    /* JSON pretty-printed across lines in one octet-counted frame: one
     * event, one output line (the newlines, JSON whitespace, become spaces). */
    int fd = start_octet();
    struct harness_buf t = {0};
    const char *ev = "{\n  \"seq\": 0,\n  \"msg\": \"two\\nlines\"\n}\n";
    text_frame(&t, ev, strlen(ev));
    send_pieces(fd, t.p, t.len, 3, 7);
    harness_require_lines(&H, S.out_path, 1, 10000);
    close(fd);
    harness_require_stop_ok(&H);
    char *out = harness_read_file(S.out_path, NULL);
    HARNESS_REQUIRE(
        &H, out != NULL && strcmp(out, "{   \"seq\": 0,   \"msg\": \"two\\nlines\" }\n") == 0,
        "got %s", out != NULL ? out : "(nothing)");
    free(out);
    free(t.p);
}
END_TEST

/* Runs logger with args; true when it exited 0. */
static bool
run_logger(const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        execvp("logger", (char *const *)args);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        return false;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

START_TEST(test_framing_tcp_logger)
{
    char port[16];
    const char *probe[] = {"logger", "--help", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp("logger", (char *const *)probe);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "logger: not installed (util-linux), test skipped\n");
        return;
    }
    S.codec = "raw";
    S.source_extra = "framing = auto\n";
    harness_std_require_start(&H, &S, NULL);
    snprintf(port, sizeof(port), "%d", S.port);
    const char *octet[] = {
        "logger", "--tcp", "--octet-count",       "--server", "127.0.0.1", "--port", port,
        "-t",     "fr",    "octet counted hello", NULL};
    const char *lf[] = {"logger",    "--tcp",  "--server",
                        "127.0.0.1", "--port", port,
                        "-t",        "fr",     "newline framed hello",
                        NULL};
    HARNESS_REQUIRE(&H, run_logger(octet), "logger --octet-count failed");
    HARNESS_REQUIRE(&H, run_logger(lf), "logger failed");
    harness_require_lines(&H, S.out_path, 2, 10000);
    harness_require_stop_ok(&H);
    char *out = harness_read_file(S.out_path, NULL);
    HARNESS_REQUIRE(&H, out != NULL, "no output");
    /* One event each, the syslog message as sent: no length prefix left
     * in front, no newline left at the end. */
    HARNESS_REQUIRE(&H, line_is(out, "octet counted hello", "{\"message\":\"<13>1 "), "%s", out);
    HARNESS_REQUIRE(&H, line_is(out, "newline framed hello", "{\"message\":\"<13>1 "), "%s", out);
    HARNESS_REQUIRE(&H, strstr(out, " fr ") != NULL, "%s", out);
    HARNESS_REQUIRE(&H, strstr(out, "octet counted hello\"}\n") != NULL, "%s", out);
    HARNESS_REQUIRE(&H, strstr(out, "newline framed hello\"}\n") != NULL, "%s", out);
    HARNESS_REQUIRE(&H, harness_file_lines(S.out_path) == 2, "%s", out);
    free(out);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("framing_tcp");
    SRunner *sr;
    int failed;

    tcase_add_test(harness_tcase(s, "octet_json", 120, setup, teardown),
                   test_framing_tcp_octet_json);
    tcase_add_test(harness_tcase(s, "json_runs", 60, setup, teardown), test_framing_tcp_json_runs);
    tcase_add_test(harness_tcase(s, "json_short", 60, setup, teardown),
                   test_framing_tcp_json_short);
    tcase_add_test(harness_tcase(s, "json_direct", 60, setup, teardown),
                   test_framing_tcp_json_direct);
    tcase_add_test(harness_tcase(s, "auto_raw", 60, setup, teardown), test_framing_tcp_auto_raw);
    tcase_add_test(harness_tcase(s, "malformed", 60, setup, teardown), test_framing_tcp_malformed);
    tcase_add_test(harness_tcase(s, "eof_mid_frame", 60, setup, teardown),
                   test_framing_tcp_eof_mid_frame);
    tcase_add_test(harness_tcase(s, "json_multiline", 60, setup, teardown),
                   test_framing_tcp_json_multiline);
    tcase_add_test(harness_tcase(s, "logger", 60, setup, teardown), test_framing_tcp_logger);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
