/*
 * micro_validate — hot-path cost of checking and escaping one event.
 *
 * Standalone: generates a fixed, seeded set of realistic ~230-byte JSON events
 * (sequence number, timestamp, message, a few nested fields) and the same
 * number of plain-text log lines, then times in one run:
 *   - sl_validate_object() against jansson's json_loadb() + json_decref(),
 *     the parse sluice avoids on the hot path;
 *   - sl_escape_json() on text lines and on JSON lines against memcpy(),
 *     the floor for any copy into a chunk.
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

#include "codec/escape.h"
#include "codec/validate.h"
#include "micro.h"

#define BENCH_EVENTS 4096
#define BENCH_EVENT_MAX 512
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

enum bench_kind { BENCH_VALIDATE, BENCH_JANSSON, BENCH_ESCAPE, BENCH_MEMCPY };

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

int
main(void)
{
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

    v = bench_run("validate  sl_validate_object", BENCH_VALIDATE, &json, out);
    j = bench_run("jansson   json_loadb+json_decref", BENCH_JANSSON, &json, out);
    mt = bench_run("memcpy    text lines", BENCH_MEMCPY, &text, out);
    et = bench_run("escape    text lines", BENCH_ESCAPE, &text, out);
    mj = bench_run("memcpy    JSON lines", BENCH_MEMCPY, &json, out);
    ej = bench_run("escape    JSON lines", BENCH_ESCAPE, &json, out);

    printf("micro_validate: %d JSON events of %.1f bytes mean, %d text lines of %.1f bytes mean\n",
           BENCH_EVENTS, (double)json.bytes / BENCH_EVENTS, BENCH_EVENTS,
           (double)text.bytes / BENCH_EVENTS);
    printf("%-34s %9s %10s   %s\n", "what", "MB/s", "ns/event", "time per event");
    bench_print(&v, NULL, NULL);
    bench_print(&j, &v, "validate");
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
    free(out);
    return 0;
}
