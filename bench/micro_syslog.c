/*
 * micro_syslog — hot-path cost of the syslog codec: parse + JSON encode of
 * one line (sl_encode_syslog), against codec raw (escape into
 * {"message":...}) and memcpy, the floor for any copy into a chunk.
 *
 * Standalone: generates fixed, seeded sets of realistic lines:
 *   - RFC 5424 with structured data (logger --rfc5424 --sd-id style), ~190 B;
 *   - RFC 5424 without structured data (rsyslog's protocol-23 forward), ~150 B;
 *   - RFC 3164 with hostname and tag[pid] (the classic forward), ~170 B;
 * and times whole passes over a set (each line encoded into a 1 MiB
 * buffer, as into a chunk) in thread CPU time (CLOCK_THREAD_CPUTIME_ID, so
 * a shared, loaded machine inflates the figures less) until about 0.25 s
 * of wall time have elapsed or BENCH_MAX_PASSES passes ran; reports the
 * median pass.
 * Single-threaded; numbers are per core.
 *
 * Run: make build/bench/micro_syslog && build/bench/micro_syslog
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/encode.h"
#include "codec/escape.h"
#include "daemon/registry.h"
#include "micro.h"
#include "sluice/codec.h"

#define BENCH_LINES 4096
#define BENCH_LINE_MAX 512
#define BENCH_ROW_SECONDS 0.25
#define BENCH_MAX_PASSES 2048
#define BENCH_OUT (1 << 20)

struct bench_set {
    char *data[BENCH_LINES];
    size_t len[BENCH_LINES];
    size_t bytes;
};

static const char *const hosts[] = {"web-01", "web-02", "api-eu-7.example.net", "batch-3"};
static const char *const apps[] = {"nginx", "sshd", "postgres", "app-worker"};
static const char *const paths[] = {"/api/v1/items", "/index.html", "/login", "/static/app.js"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static size_t
gen_5424_sd(char *buf, size_t cap, uint64_t *s)
{
    return (size_t)snprintf(
        buf, cap,
        "<%u>1 2026-12-05T23:%02u:%02u.%06u+00:00 %s %s %u - [timeQuality tzKnown=\"1\" "
        "isSynced=\"1\" syncAccuracy=\"%u\"][req@32473 id=\"%u\" path=\"%s\"] GET %s %u "
        "bytes in %u ms",
        (unsigned)(bench_rand(s) % 192), (unsigned)(bench_rand(s) % 60),
        (unsigned)(bench_rand(s) % 60), (unsigned)(bench_rand(s) % 1000000),
        hosts[bench_rand(s) % 4], apps[bench_rand(s) % 4], (unsigned)(bench_rand(s) % 65536),
        (unsigned)(bench_rand(s) % 1000000), (unsigned)(bench_rand(s) % 100000),
        paths[bench_rand(s) % 4], paths[bench_rand(s) % 4], (unsigned)(bench_rand(s) % 100000),
        (unsigned)(bench_rand(s) % 1000));
}

static size_t
gen_5424(char *buf, size_t cap, uint64_t *s)
{
    return (size_t)snprintf(
        buf, cap,
        "<%u>1 2026-12-05T23:%02u:%02u.%06u+00:00 %s %s %u - - Accepted publickey for "
        "user%u from 192.0.2.%u port %u ssh2: ED25519 SHA256:abcdefghij",
        (unsigned)(bench_rand(s) % 192), (unsigned)(bench_rand(s) % 60),
        (unsigned)(bench_rand(s) % 60), (unsigned)(bench_rand(s) % 1000000),
        hosts[bench_rand(s) % 4], apps[bench_rand(s) % 4], (unsigned)(bench_rand(s) % 65536),
        (unsigned)(bench_rand(s) % 1000), (unsigned)(bench_rand(s) % 256),
        (unsigned)(bench_rand(s) % 65536));
}

static size_t
gen_3164(char *buf, size_t cap, uint64_t *s)
{
    unsigned day = 1 + (unsigned)(bench_rand(s) % 28);
    return (size_t)snprintf(
        buf, cap,
        "<%u>%s %2u %02u:%02u:%02u %s %s[%u]: 10.%u.%u.%u - - \"GET %s HTTP/1.1\" %u %u "
        "\"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        (unsigned)(bench_rand(s) % 192), months[bench_rand(s) % 12], day,
        (unsigned)(bench_rand(s) % 24), (unsigned)(bench_rand(s) % 60),
        (unsigned)(bench_rand(s) % 60), hosts[bench_rand(s) % 4], apps[bench_rand(s) % 4],
        (unsigned)(bench_rand(s) % 65536), (unsigned)(bench_rand(s) % 256),
        (unsigned)(bench_rand(s) % 256), (unsigned)(bench_rand(s) % 256), paths[bench_rand(s) % 4],
        bench_rand(s) % 10 == 0 ? 500u : 200u, (unsigned)(bench_rand(s) % 100000));
}

static void
set_fill(struct bench_set *set, size_t (*gen)(char *, size_t, uint64_t *), uint64_t seed)
{
    char tmp[BENCH_LINE_MAX];
    uint64_t s = seed;
    set->bytes = 0;
    for (size_t i = 0; i < BENCH_LINES; i++) {
        size_t n = gen(tmp, sizeof(tmp), &s);
        set->data[i] = malloc(n);
        if (set->data[i] == NULL) {
            abort();
        }
        memcpy(set->data[i], tmp, n);
        set->len[i] = n;
        set->bytes += n;
    }
}

enum bench_kind { BENCH_SYSLOG, BENCH_RAW, BENCH_MEMCPY };

static char *out;
static char *scratch;
static volatile size_t sink;

static void
pass(const struct bench_set *set, enum bench_kind k)
{
    static const struct sl_codec_opts opts = {0};
    const uint64_t recv = UINT64_C(1796512800) * 1000000000u; /* 2026-12-05T23:20:00Z */
    size_t pos = 0;
    for (size_t i = 0; i < BENCH_LINES; i++) {
        size_t n = 0;
        bool unparsed;
        if (pos + 8192 > BENCH_OUT) {
            pos = 0;
        }
        switch (k) {
        case BENCH_SYSLOG:
            if (sl_encode_syslog(set->data[i], set->len[i], NULL, 0, &opts, recv, scratch,
                                 out + pos, BENCH_OUT - pos, BENCH_OUT, &n,
                                 &unparsed) != SL_ENCODE_OK ||
                unparsed) {
                abort();
            }
            break;
        case BENCH_RAW:
            if (sl_encode_raw(set->data[i], set->len[i], NULL, 0, scratch, out + pos,
                              BENCH_OUT - pos, BENCH_OUT, &n) != SL_ENCODE_OK) {
                abort();
            }
            break;
        case BENCH_MEMCPY:
            memcpy(out + pos, set->data[i], set->len[i]);
            n = set->len[i];
            break;
        }
        pos += n;
    }
    sink += pos;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
row(const char *name, const struct bench_set *set, enum bench_kind k)
{
    static double t[BENCH_MAX_PASSES];
    size_t n = 0;
    double start = bench_now();
    pass(set, k); /* warm */
    while (n < BENCH_MAX_PASSES && bench_now() - start < BENCH_ROW_SECONDS) {
        double a = bench_cpu_now();
        pass(set, k);
        t[n++] = bench_cpu_now() - a;
    }
    qsort(t, n, sizeof(t[0]), cmp_double);
    double med = t[n / 2];
    printf("%-34s %8.1f ns/line %8.1f MB/s in  (%zu B avg, %zu passes)\n", name,
           med * 1e9 / BENCH_LINES, (double)set->bytes / med / 1e6, set->bytes / BENCH_LINES, n);
}

int
main(void)
{
    static struct bench_set s5424sd, s5424, s3164;
    out = malloc(BENCH_OUT);
    scratch = malloc(sl_codec_syslog.scratch_bytes(BENCH_LINE_MAX));
    if (out == NULL || scratch == NULL) {
        return 1;
    }
    set_fill(&s5424sd, gen_5424_sd, 1);
    set_fill(&s5424, gen_5424, 2);
    set_fill(&s3164, gen_3164, 3);
    row("syslog rfc5424 + 2 SD elements", &s5424sd, BENCH_SYSLOG);
    row("syslog rfc5424, no SD", &s5424, BENCH_SYSLOG);
    row("syslog rfc3164 host tag[pid]", &s3164, BENCH_SYSLOG);
    row("raw (escape only), rfc5424 + SD", &s5424sd, BENCH_RAW);
    row("raw (escape only), rfc3164", &s3164, BENCH_RAW);
    row("memcpy, rfc5424 + SD", &s5424sd, BENCH_MEMCPY);
    row("memcpy, rfc3164", &s3164, BENCH_MEMCPY);
    return 0;
}
