/*
 * micro_validate — hot-path cost of checking and escaping one event.
 *
 * Standalone: generates a fixed, seeded set of realistic ~230-byte JSON events
 * (sequence number, timestamp, message, a few nested fields) and the same
 * number of plain-text log lines, then times in one run:
 *   - sl_validate_object() against jansson's json_loadb() + json_decref(),
 *     the parse sluice avoids on the hot path, and against its own
 *     byte-by-byte string path (sl_validate_object_bytewise: what the
 *     quote index saves; a quarter of the events hold UTF-8 and take it);
 *   - the json codec's way into a chunk: framing + sl_encode_json() line by
 *     line against framing + validation in place + one memcpy per run of
 *     lines (src/source/stream.c), over the set as one stream in 64 KiB
 *     reads;
 *   - sl_escape_json() on text lines and on JSON lines against memcpy(),
 *     the floor for any copy into a chunk.
 * With FILE arguments (newline-separated events, e.g. a receiver's output
 * of bench/loadgen at some -s size), it times sl_validate_object() on the
 * first BENCH_EVENTS lines of each file instead, one row per file: the
 * figure to compare two builds of the validator with on the events the
 * end-to-end benches send.
 * Each row times whole passes over the set with CLOCK_MONOTONIC until about
 * 0.25 s have elapsed or BENCH_MAX_PASSES passes ran, and reports the median
 * pass, which shrugs off other load on the machine better than the mean.
 * Single-threaded; numbers are per core.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/encode.h"
#include "codec/escape.h"
#include "codec/framing.h"
#include "codec/validate.h"
#include "micro.h"

#define BENCH_EVENTS 4096
#define BENCH_EVENT_MAX 512
#define BENCH_FILE_LINE_MAX 65536
#define BENCH_ROW_SECONDS 0.25
#define BENCH_MAX_PASSES 4096

struct bench_set {
    char *data[BENCH_EVENTS];
    size_t len[BENCH_EVENTS];
    size_t bytes;
};

struct bench_row {
    const char *name;
    double ns_per_event;
    double mb_per_s;
};

static const char *const bench_methods[] = {"GET", "POST", "PUT", "DELETE"};
static const char *const bench_paths[] = {"/api/v1/items", "/index.html", "/login",
                                          "/api/v2/users/search", "/static/app.js"};
static const char *const bench_hosts[] = {"web-01", "web-02", "api-eu-7", "batch-3"};
static const char *const bench_levels[] = {"info", "warn", "error", "debug"};
static const char *const bench_users[] = {"alice", "bob", "carol", "j\xc3\xb6rg"};

/* One JSON event; returns its length. */
static size_t
bench_json_event(char *buf, size_t cap, uint64_t seq, uint64_t *s)
{
    const char *method = bench_methods[bench_rand(s) % 4];
    const char *path = bench_paths[bench_rand(s) % 5];
    int status = bench_rand(s) % 10 == 0 ? 500 : 200;
    unsigned bytes = (unsigned)(bench_rand(s) % 100000);
    double dur = (double)(bench_rand(s) % 100000) / 1000.0;
    int n;

    n = snprintf(buf, cap,
                 "{\"seq\":%llu,\"ts\":\"2024-05-01T12:%02u:%02u.%03uZ\",\"host\":\"%s\","
                 "\"level\":\"%s\",\"msg\":\"%s %s/%u %d %u bytes in %.3f ms\","
                 "\"http\":{\"status\":%d,\"dur_ms\":%.3f},"
                 "\"user\":{\"id\":%u,\"name\":\"%s\"},\"tags\":[\"prod\",\"eu\"]}",
                 (unsigned long long)seq, (unsigned)(bench_rand(s) % 60),
                 (unsigned)(bench_rand(s) % 60), (unsigned)(bench_rand(s) % 1000),
                 bench_hosts[bench_rand(s) % 4], bench_levels[bench_rand(s) % 4], method, path,
                 (unsigned)(bench_rand(s) % 100000), status, bytes, dur, status, dur,
                 (unsigned)(bench_rand(s) % 10000), bench_users[bench_rand(s) % 4]);
    return (size_t)n;
}

/* One syslog-style text line, the input of the raw codec; returns its length. */
static size_t
bench_text_line(char *buf, size_t cap, uint64_t seq, uint64_t *s)
{
    int n =
        snprintf(buf, cap,
                 "<134>May  1 12:%02u:%02u %s nginx[%u]: 10.%u.%u.%u - %s [01/May/2024:12:34:56 "
                 "+0000] \"%s %s/%u HTTP/1.1\" %d %u \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" "
                 "rt=%.3f seq=%llu\t",
                 (unsigned)(bench_rand(s) % 60), (unsigned)(bench_rand(s) % 60),
                 bench_hosts[bench_rand(s) % 4], (unsigned)(bench_rand(s) % 65536),
                 (unsigned)(bench_rand(s) % 256), (unsigned)(bench_rand(s) % 256),
                 (unsigned)(bench_rand(s) % 256), bench_users[bench_rand(s) % 4],
                 bench_methods[bench_rand(s) % 4], bench_paths[bench_rand(s) % 5],
                 (unsigned)(bench_rand(s) % 100000), bench_rand(s) % 10 == 0 ? 500 : 200,
                 (unsigned)(bench_rand(s) % 100000), (double)(bench_rand(s) % 100000) / 1000.0,
                 (unsigned long long)seq);
    return (size_t)n;
}

static int
bench_set_fill(struct bench_set *set, size_t (*gen)(char *, size_t, uint64_t, uint64_t *),
               uint64_t seed)
{
    char tmp[BENCH_EVENT_MAX];
    uint64_t s = seed;

    set->bytes = 0;
    for (size_t i = 0; i < BENCH_EVENTS; i++) {
        size_t n = gen(tmp, sizeof(tmp), 1000000 + i, &s);

        if (n >= sizeof(tmp)) {
            return -1;
        }
        /* Exactly sized copies, as events sit in a chunk: no slack to read into. */
        set->data[i] = malloc(n);
        if (set->data[i] == NULL) {
            return -1;
        }
        memcpy(set->data[i], tmp, n);
        set->len[i] = n;
        set->bytes += n;
    }
    return 0;
}

static void
bench_set_free(struct bench_set *set)
{
    for (size_t i = 0; i < BENCH_EVENTS; i++) {
        free(set->data[i]);
    }
}

enum bench_kind { BENCH_VALIDATE, BENCH_BYTEWISE, BENCH_JANSSON, BENCH_ESCAPE, BENCH_MEMCPY };

/* One pass over the set; returns a value that depends on every result. */
static size_t
bench_pass(enum bench_kind kind, const struct bench_set *set, char *out)
{
    size_t acc = 0;

    for (size_t i = 0; i < BENCH_EVENTS; i++) {
        switch (kind) {
        case BENCH_VALIDATE:
            acc += (size_t)sl_validate_object(set->data[i], set->len[i], NULL);
            break;
        case BENCH_BYTEWISE:
            acc += (size_t)sl_validate_object_bytewise(set->data[i], set->len[i], NULL);
            break;
        case BENCH_JANSSON: {
            json_error_t err;
            json_t *root = json_loadb(set->data[i], set->len[i], 0, &err);

            acc += root != NULL && json_is_object(root) ? 0 : 1;
            json_decref(root);
            break;
        }
        case BENCH_ESCAPE:
            acc += sl_escape_json(set->data[i], set->len[i], out, NULL);
            break;
        case BENCH_MEMCPY:
            memcpy(out, set->data[i], set->len[i]);
            acc += set->len[i] + (unsigned char)out[set->len[i] / 2];
            break;
        }
    }
    return acc;
}

static volatile size_t bench_sink;

static int
bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * The json codec's two ways into a chunk (src/source/stream.c): each line
 * framed, validated and copied on its own with sl_encode_json() (as
 * sl_lane_emit does), or validated in place and copied in runs of adjacent
 * lines, one memcpy per run (the verbatim-run path).  Both over the same
 * newline-separated stream of the JSON set, into the same output buffer.
 */
struct bench_stream {
    char *in;
    size_t len;
    char *out;
    size_t olen;
    const char *run;
    size_t run_len;
};

static int
bench_line_encode(void *arg, const char *line, size_t len)
{
    struct bench_stream *b = arg;
    enum sl_validate_result why;
    size_t n = 0;
    if (sl_encode_json(line, len, NULL, 0, b->out + b->olen, b->len + 1 - b->olen, &n, &why) ==
        SL_ENCODE_OK) {
        b->olen += n;
    }
    return 0;
}

static int
bench_line_run(void *arg, const char *line, size_t len)
{
    struct bench_stream *b = arg;
    if (sl_validate_object(line, len, NULL) != SL_VALID) {
        return 0;
    }
    if (b->run_len > 0 && line != b->run + b->run_len) {
        memcpy(b->out + b->olen, b->run, b->run_len);
        b->olen += b->run_len;
        b->run_len = 0;
    }
    if (b->run_len == 0) {
        b->run = line;
    }
    b->run_len += len + 1;
    return 0;
}

/* The set's events as one stream, each followed by '\n'; -1 out of memory. */
static int
bench_stream_make(struct bench_stream *b, const struct bench_set *set)
{
    for (size_t i = 0; i < BENCH_EVENTS; i++) {
        b->len += set->len[i] + 1;
    }
    b->in = malloc(b->len);
    b->out = malloc(b->len + 1);
    if (b->in == NULL || b->out == NULL) {
        return -1;
    }
    for (size_t i = 0, o = 0; i < BENCH_EVENTS; i++) {
        memcpy(b->in + o, set->data[i], set->len[i]);
        o += set->len[i];
        b->in[o++] = '\n';
    }
    return 0;
}

/* One pass: the stream framed in 64 KiB reads, as a producer reads it. */
static size_t
bench_stream_pass(struct bench_stream *b, bool runs)
{
    struct sl_frame_state st;
    size_t pos = 0;
    sl_frame_init(&st, SL_FRAMING_LF, NULL);
    b->olen = 0;
    while (pos < b->len) {
        size_t n = b->len - pos < 65536 ? b->len - pos : 65536;
        bool stopped = false;
        b->run_len = 0;
        size_t used = sl_frame_lines(&st, b->in + pos, n, 65536,
                                     runs ? bench_line_run : bench_line_encode, b, &stopped);
        if (b->run_len > 0) {
            memcpy(b->out + b->olen, b->run, b->run_len);
            b->olen += b->run_len;
        }
        pos += used > 0 ? used : n;
    }
    return b->olen;
}

/*
 * Two ways of doing the same work, timed in alternating passes (A, B, A,
 * B, ...) so that load from elsewhere on the machine falls on both alike;
 * the median pass of each.  kind < 0: the stream passes (-1 line by line,
 * -2 in runs); otherwise bench_pass() of that kind over set.
 */
static double
bench_pair_pass(int kind, const struct bench_set *set, struct bench_stream *b, char *out)
{
    double t0 = bench_now();
    if (kind < 0) {
        bench_sink += bench_stream_pass(b, kind == -2);
    } else {
        bench_sink += bench_pass((enum bench_kind)kind, set, out);
    }
    return bench_now() - t0;
}

static void
bench_pair(struct bench_row *ra, struct bench_row *rb, int ka, int kb,
           const struct bench_set *set, struct bench_stream *b, char *out, size_t bytes)
{
    static double sa[BENCH_MAX_PASSES];
    static double sb[BENCH_MAX_PASSES];
    size_t passes = 0;
    (void)bench_pair_pass(ka, set, b, out);
    (void)bench_pair_pass(kb, set, b, out);
    double start = bench_now();
    do {
        sa[passes] = bench_pair_pass(ka, set, b, out);
        sb[passes] = bench_pair_pass(kb, set, b, out);
        passes++;
    } while (bench_now() - start < 2 * BENCH_ROW_SECONDS && passes < BENCH_MAX_PASSES);
    qsort(sa, passes, sizeof(sa[0]), bench_cmp_double);
    qsort(sb, passes, sizeof(sb[0]), bench_cmp_double);
    ra->ns_per_event = sa[passes / 2] * 1e9 / BENCH_EVENTS;
    ra->mb_per_s = (double)bytes / sa[passes / 2] / 1e6;
    rb->ns_per_event = sb[passes / 2] * 1e9 / BENCH_EVENTS;
    rb->mb_per_s = (double)bytes / sb[passes / 2] / 1e6;
}


static struct bench_row
bench_run(const char *name, enum bench_kind kind, const struct bench_set *set, char *out)
{
    static double pass_seconds[BENCH_MAX_PASSES];
    struct bench_row row = {name, 0, 0};
    double start;
    double now;
    size_t passes = 0;
    double median;

    bench_sink += bench_pass(kind, set, out); /* warm caches and branch predictors */
    start = now = bench_now();
    do {
        double t0 = now;

        bench_sink += bench_pass(kind, set, out);
        now = bench_now();
        pass_seconds[passes++] = now - t0;
    } while (now - start < BENCH_ROW_SECONDS && passes < BENCH_MAX_PASSES);
    qsort(pass_seconds, passes, sizeof(pass_seconds[0]), bench_cmp_double);
    median = pass_seconds[passes / 2];
    row.ns_per_event = median * 1e9 / BENCH_EVENTS;
    row.mb_per_s = (double)set->bytes / median / 1e6;
    return row;
}

/* One table line; with base, the ratio of this row's time per event to base's. */
static void
bench_print(const struct bench_row *r, const struct bench_row *base, const char *base_name)
{
    printf("%-34s %9.1f %10.1f", r->name, r->mb_per_s, r->ns_per_event);
    if (base != NULL) {
        printf("   %6.2fx %s", r->ns_per_event / base->ns_per_event, base_name);
    }
    putchar('\n');
}

/* The first BENCH_EVENTS lines of path (without their '\n'), or -1. */
static int
bench_set_file(struct bench_set *set, const char *path)
{
    static char line[BENCH_FILE_LINE_MAX];
    FILE *f = fopen(path, "r");
    size_t i = 0;

    if (f == NULL) {
        return -1;
    }
    set->bytes = 0;
    while (i < BENCH_EVENTS && fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') {
            n--;
        }
        set->data[i] = malloc(n > 0 ? n : 1);
        if (set->data[i] == NULL) {
            break;
        }
        memcpy(set->data[i], line, n);
        set->len[i] = n;
        set->bytes += n;
        i++;
    }
    fclose(f);
    for (size_t k = i; k < BENCH_EVENTS; k++) { /* repeat to a full set */
        set->data[k] = i > 0 ? malloc(set->len[k % i] > 0 ? set->len[k % i] : 1) : NULL;
        if (set->data[k] == NULL) {
            return -1;
        }
        memcpy(set->data[k], set->data[k % i], set->len[k % i]);
        set->len[k] = set->len[k % i];
        set->bytes += set->len[k];
    }
    return 0;
}

/* micro_validate FILE...: sl_validate_object() on each file's lines. */
static int
bench_files(int argc, char **argv)
{
    printf("%-34s %9s %10s\n", "validate  lines of", "MB/s", "ns/event");
    for (int a = 1; a < argc; a++) {
        static struct bench_set set;
        if (bench_set_file(&set, argv[a]) != 0) {
            fprintf(stderr, "micro_validate: cannot read %s\n", argv[a]);
            return 1;
        }
        if (bench_pass(BENCH_VALIDATE, &set, NULL) != 0) {
            fprintf(stderr, "micro_validate: not every line of %s validates\n", argv[a]);
            return 1;
        }
        /* The quote index built with each instruction set the CPU has. */
        static const enum sl_validate_isa isas[] = {SL_VALIDATE_ISA_SSE2, SL_VALIDATE_ISA_AVX2};
        static const char *const isa_names[] = {"sse2", "avx2"};
        for (size_t k = 0; k < sizeof(isas) / sizeof(isas[0]); k++) {
            sl_validate_set_isa(isas[k]);
            if (sl_validate_get_isa() != isas[k]) {
                continue;
            }
            struct bench_row r = bench_run(argv[a], BENCH_VALIDATE, &set, NULL);
            printf("%-27s %-6s %9.1f %10.1f   (%.1f bytes mean)\n", argv[a], isa_names[k],
                   r.mb_per_s, r.ns_per_event, (double)set.bytes / BENCH_EVENTS);
        }
        sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
        /* The same lines as one stream: framed, validated, copied in runs. */
        struct bench_stream bs = {0};
        if (bench_stream_make(&bs, &set) != 0) {
            fprintf(stderr, "micro_validate: out of memory\n");
            return 1;
        }
        struct bench_row sl = {"", 0, 0};
        struct bench_row sr = {"", 0, 0};
        bench_pair(&sl, &sr, -1, -2, &set, &bs, NULL, bs.len);
        printf("%-27s %-6s %9.1f %10.1f   frame+validate, copy in runs\n", argv[a], "best",
               sr.mb_per_s, sr.ns_per_event);
        free(bs.in);
        free(bs.out);
        bench_set_free(&set);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc > 1) {
        return bench_files(argc, argv);
    }
    static struct bench_set json;
    static struct bench_set text;
    char *out = malloc(SL_ESCAPE_MAX(BENCH_EVENT_MAX));
    struct bench_row v;
    struct bench_row j;
    struct bench_row et;
    struct bench_row mt;
    struct bench_row ej;
    struct bench_row mj;

    if (out == NULL || bench_set_fill(&json, bench_json_event, 0x5eed) != 0 ||
        bench_set_fill(&text, bench_text_line, 0x7e47) != 0) {
        fprintf(stderr, "micro_validate: cannot build the event sets\n");
        return 1;
    }
    /* The comparison is only fair if both sides accept every event. */
    if (bench_pass(BENCH_VALIDATE, &json, out) != 0 || bench_pass(BENCH_JANSSON, &json, out) != 0) {
        fprintf(stderr, "micro_validate: generated events do not all validate\n");
        return 1;
    }

    struct bench_stream bs = {0};
    if (bench_stream_make(&bs, &json) != 0) {
        fprintf(stderr, "micro_validate: out of memory\n");
        return 1;
    }
    if (bench_stream_pass(&bs, false) != bs.len || memcmp(bs.out, bs.in, bs.len) != 0 ||
        bench_stream_pass(&bs, true) != bs.len || memcmp(bs.out, bs.in, bs.len) != 0) {
        fprintf(stderr, "micro_validate: the stream passes do not copy the stream\n");
        return 1;
    }

    struct bench_row vb = {"validate  byte-by-byte strings", 0, 0};
    struct bench_row sl = {"frame+encode line by line", 0, 0};
    struct bench_row sr = {"frame+validate, copy in runs", 0, 0};
    v.name = "validate  sl_validate_object";
    bench_pair(&v, &vb, BENCH_VALIDATE, BENCH_BYTEWISE, &json, &bs, out, json.bytes);
    bench_pair(&sl, &sr, -1, -2, &json, &bs, out, bs.len);
    j = bench_run("jansson   json_loadb+json_decref", BENCH_JANSSON, &json, out);
    mt = bench_run("memcpy    text lines", BENCH_MEMCPY, &text, out);
    et = bench_run("escape    text lines", BENCH_ESCAPE, &text, out);
    mj = bench_run("memcpy    JSON lines", BENCH_MEMCPY, &json, out);
    ej = bench_run("escape    JSON lines", BENCH_ESCAPE, &json, out);

    printf("micro_validate: %d JSON events of %.1f bytes mean, %d text lines of %.1f bytes mean\n",
           BENCH_EVENTS, (double)json.bytes / BENCH_EVENTS, BENCH_EVENTS,
           (double)text.bytes / BENCH_EVENTS);
    printf("%-34s %9s %10s   %s\n", "what", "MB/s", "ns/event", "time per event");
    bench_print(&vb, NULL, NULL);
    bench_print(&v, &vb, "byte-by-byte (interleaved)");
    bench_print(&j, &v, "validate");
    bench_print(&sl, NULL, NULL);
    bench_print(&sr, &sl, "line by line (interleaved)");
    bench_print(&mt, NULL, NULL);
    bench_print(&et, &mt, "memcpy");
    bench_print(&mj, NULL, NULL);
    bench_print(&ej, &mj, "memcpy");
    printf("validate is %.1fx faster than jansson; escape runs at %.0f%% / %.0f%% of memcpy speed "
           "(text / JSON)\n",
           j.ns_per_event / v.ns_per_event, 100.0 * mt.ns_per_event / et.ns_per_event,
           100.0 * mj.ns_per_event / ej.ns_per_event);

    bench_set_free(&json);
    bench_set_free(&text);
    free(bs.in);
    free(bs.out);
    free(out);
    return 0;
}
