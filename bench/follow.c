/*
 * follow — reads a receiver's output file as it grows (like `tail -F`),
 * checks that every sequence number arrived exactly once and measures
 * end-to-end latency.
 *
 * follow -n N [-S FIRST] [-T SECS] [-q SECS] [-z MS] [-o CDF_FILE] FILE
 *
 * Every line must be {...} and carry "seq":NUMBER and "sent_ns":NUMBER (the
 * intended send time loadgen stamped, CLOCK_REALTIME ns); a number may be
 * quoted, as re-serialising peers (syslog-ng's format-json) write it.  A
 * line without them may carry seq=NUMBER and sent_ns=NUMBER instead: the
 * syslog messages of loadgen -y, inside the receiver's "message" field.  The
 * latency of a line is the CLOCK_REALTIME moment follow read it minus
 * sent_ns: the time from when the event *should* have been sent until it was
 * visible in the file.  follow waits on inotify for the file to change, so a
 * line is read within microseconds of its write(2) while follow has a CPU;
 * on a loaded machine follow's own delay is part of the figure (it is the
 * same for every receiver measured).
 *
 * It stops when all N sequence numbers were seen and the file has not grown
 * for -z MS (default 200: late duplicates are still caught), when the file
 * has not grown for -q SECS (default 10) with events missing, or after -T
 * SECS (default 600).  Prints one key=value line:
 *   lines= unique= expected= missing= duplicates= out_of_range= malformed=
 *   bytes= p50_us= p90_us= p99_us= p999_us= max_us= mean_us= negative=
 *   t_first_ns= t_complete_ns= t_mtime_ns= result=complete|INCOMPLETE
 * t_complete_ns is when follow read the line that completed the set;
 * t_mtime_ns is the file's modification time then (its last write), which
 * is what throughput runs use: it does not depend on when follow started.
 * -o writes the latency CDF as "latency_us cumulative_fraction" lines, one
 * per histogram bucket (buckets are 1/32 of a power of two wide, ~3 %).
 *
 * Exit 0 iff complete, 1 if not, 2 on usage or I/O errors.
 * Single-threaded; every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FL_READ_BYTES (1024 * 1024)
#define FL_MAX_LINE (64 * 1024)
#define FL_MAX_N (UINT64_C(1) << 34)
#define FL_SUB_BITS 5 /* 32 sub-buckets per power of two */
#define FL_SUB (1u << FL_SUB_BITS)
#define FL_NBUCKETS (64 * FL_SUB)
#define FL_NS 1000000000ull
#define FL_REPORT 5

struct fl_state {
    uint64_t n, first;
    uint64_t *seen;
    uint64_t lines, unique, duplicates, out_of_range, malformed, negative, bytes;
    uint64_t hist[FL_NBUCKETS];
    uint64_t lat_count, lat_max;
    double lat_sum;
    uint64_t t_first, t_complete;
    unsigned shown;
};

static uint64_t
fl_clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * FL_NS + (uint64_t)ts.tv_nsec;
}

/* Histogram bucket of v: exact below 2 * FL_SUB, then FL_SUB per power of 2. */
static unsigned
fl_bucket(uint64_t v)
{
    unsigned msb, shift;

    if (v < 2 * FL_SUB) {
        return (unsigned)v;
    }
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - FL_SUB_BITS;
    return (shift + 1) * FL_SUB + (unsigned)((v >> shift) - FL_SUB);
}

/* The lowest value of bucket b (inverse of fl_bucket). */
static uint64_t
fl_bucket_low(unsigned b)
{
    unsigned shift;

    if (b < 2 * FL_SUB) {
        return b;
    }
    shift = b / FL_SUB - 1;
    return (uint64_t)(b % FL_SUB + FL_SUB) << shift;
}

/*
 * Finds "key": in line and parses the unsigned number after it (spaces and
 * one '"' allowed before it).  Returns 0, or -1 if absent or not a number.
 */
static int
fl_field(const char *line, size_t len, const char *key, size_t klen, uint64_t *out)
{
    const char *p = memmem(line, len, key, klen);
    const char *end = line + len;
    uint64_t v = 0;
    int digits = 0;

    if (p == NULL) {
        return -1;
    }
    p += klen;
    while (p < end && (*p == ' ' || *p == '"')) {
        p++;
    }
    while (p < end && *p >= '0' && *p <= '9' && digits < 20) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || digits == 20) {
        return -1;
    }
    *out = v;
    return 0;
}

static void
fl_bad(struct fl_state *s, const char *what, const char *p, size_t len)
{
    if (s->shown++ >= FL_REPORT) {
        return;
    }
    fprintf(stderr, "follow: %s: ", what);
    for (size_t i = 0; i < len && i < 80; i++) {
        unsigned char ch = (unsigned char)p[i];

        fputc(ch >= 0x20 && ch < 0x7f ? ch : '.', stderr);
    }
    fputs(len > 80 ? "...\n" : "\n", stderr);
}

/* Accounts one complete line (without its '\n') read at time now. */
static void
fl_line(struct fl_state *s, const char *p, size_t len, uint64_t now)
{
    static const char kseq[] = "\"seq\":";
    static const char ksent[] = "\"sent_ns\":";
    static const char kseq_kv[] = "seq=";
    static const char ksent_kv[] = "sent_ns=";
    uint64_t seq, sent;

    s->lines++;
    if (len > 0 && p[len - 1] == '\r') {
        len--;
    }
    if (len < 2 || p[0] != '{' || p[len - 1] != '}') {
        s->malformed++;
        fl_bad(s, "line not {...}", p, len);
        return;
    }
    if ((fl_field(p, len, kseq, sizeof(kseq) - 1, &seq) < 0 ||
         fl_field(p, len, ksent, sizeof(ksent) - 1, &sent) < 0) &&
        (fl_field(p, len, kseq_kv, sizeof(kseq_kv) - 1, &seq) < 0 ||
         fl_field(p, len, ksent_kv, sizeof(ksent_kv) - 1, &sent) < 0)) {
        s->malformed++;
        fl_bad(s, "no \"seq\" or \"sent_ns\" number", p, len);
        return;
    }
    if (seq < s->first || seq - s->first >= s->n) {
        s->out_of_range++;
        fl_bad(s, "seq out of range", p, len);
        return;
    }
    seq -= s->first;
    if (s->seen[seq / 64] & (UINT64_C(1) << (seq % 64))) {
        s->duplicates++;
        fl_bad(s, "duplicate", p, len);
        return;
    }
    s->seen[seq / 64] |= UINT64_C(1) << (seq % 64);
    s->unique++;
    if (s->unique == s->n) {
        s->t_complete = now;
    }
    if (sent > now) {
        s->negative++;
        sent = now;
    }
    s->hist[fl_bucket(now - sent)]++;
    s->lat_count++;
    s->lat_sum += (double)(now - sent);
    if (now - sent > s->lat_max) {
        s->lat_max = now - sent;
    }
}

/* The latency (ns) at quantile q, from the histogram (bucket's low end). */
static uint64_t
fl_quantile(const struct fl_state *s, double q)
{
    uint64_t want = (uint64_t)(q * (double)s->lat_count);
    uint64_t acc = 0;

    if (want >= s->lat_count) {
        return s->lat_max;
    }
    for (unsigned b = 0; b < FL_NBUCKETS; b++) {
        acc += s->hist[b];
        if (acc > want) {
            return fl_bucket_low(b);
        }
    }
    return s->lat_max;
}

static int
fl_write_cdf(const struct fl_state *s, const char *path)
{
    FILE *f = fopen(path, "w");
    uint64_t acc = 0;

    if (f == NULL) {
        fprintf(stderr, "follow: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "# latency_us cumulative_fraction (%" PRIu64 " events)\n", s->lat_count);
    for (unsigned b = 0; b < FL_NBUCKETS && s->lat_count > 0; b++) {
        if (s->hist[b] == 0) {
            continue;
        }
        acc += s->hist[b];
        fprintf(f, "%.3f %.7f\n", (double)fl_bucket_low(b) / 1e3,
                (double)acc / (double)s->lat_count);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int
fl_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno != 0 || end == s || *end != '\0' || s[0] == '-' || *out < min || *out > max) ? -1
                                                                                               : 0;
}

static void
fl_usage(void)
{
    fprintf(stderr,
            "usage: follow -n N [-S FIRST] [-T SECS] [-q SECS] [-z MS] [-o CDF_FILE] FILE\n");
}

int
main(int argc, char **argv)
{
    static struct fl_state s;
    static char buf[FL_READ_BYTES + FL_MAX_LINE];
    const char *path, *cdf = NULL;
    uint64_t total_s = 600, quiet_s = 10, settle_ms = 200, interval_us = 0;
    uint64_t start, deadline, changed;
    size_t carry = 0;
    struct stat st;
    int ch, fd = -1, ino = -1, rc = 2;

    while ((ch = getopt(argc, argv, "n:S:T:q:z:o:i:h")) != -1) {
        switch (ch) {
        case 'n':
            if (fl_parse_u64(optarg, 1, FL_MAX_N, &s.n) < 0) {
                goto usage;
            }
            break;
        case 'S':
            if (fl_parse_u64(optarg, 0, UINT64_MAX / 2, &s.first) < 0) {
                goto usage;
            }
            break;
        case 'T':
            if (fl_parse_u64(optarg, 1, 86400, &total_s) < 0) {
                goto usage;
            }
            break;
        case 'q':
            if (fl_parse_u64(optarg, 1, 86400, &quiet_s) < 0) {
                goto usage;
            }
            break;
        case 'z':
            if (fl_parse_u64(optarg, 0, 60000, &settle_ms) < 0) {
                goto usage;
            }
            break;
        case 'o':
            cdf = optarg;
            break;
        case 'i':
            if (fl_parse_u64(optarg, 0, 999999, &interval_us) < 0) {
                goto usage;
            }
            break;
        default:
            goto usage;
        }
    }
    if (s.n == 0 || optind != argc - 1) {
        goto usage;
    }
    path = argv[optind];
    s.seen = calloc((size_t)(s.n + 63) / 64, sizeof(*s.seen));
    if (s.seen == NULL) {
        fprintf(stderr, "follow: out of memory\n");
        return 2;
    }

    start = fl_clock_ns(CLOCK_MONOTONIC);
    deadline = start + total_s * FL_NS;
    /* Wait for the file to appear, polling every 1 ms. */
    while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        struct timespec ts = {0, 1000000};

        if (errno != ENOENT || fl_clock_ns(CLOCK_MONOTONIC) >= deadline) {
            fprintf(stderr, "follow: %s: %s\n", path, strerror(errno));
            goto out;
        }
        nanosleep(&ts, NULL);
    }
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino < 0 || inotify_add_watch(ino, path, IN_MODIFY | IN_CLOSE_WRITE) < 0) {
        fprintf(stderr, "follow: inotify %s: %s\n", path, strerror(errno));
        goto out;
    }

    changed = fl_clock_ns(CLOCK_MONOTONIC);
    for (;;) {
        ssize_t got = read(fd, buf + carry, FL_READ_BYTES);
        uint64_t mono = fl_clock_ns(CLOCK_MONOTONIC);

        if (got > 0) {
            uint64_t now = fl_clock_ns(CLOCK_REALTIME);
            const char *p = buf, *end = buf + carry + got;
            const char *nl;

            if (s.t_first == 0) {
                s.t_first = now;
            }
            s.bytes += (uint64_t)got;
            changed = mono;
            while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                fl_line(&s, p, (size_t)(nl - p), now);
                p = nl + 1;
            }
            carry = (size_t)(end - p);
            if (carry > FL_MAX_LINE) {
                fl_bad(&s, "line longer than 64 KiB", p, carry);
                s.malformed++;
                carry = 0;
            } else {
                memmove(buf, p, carry);
            }
            continue; /* read until EOF before waiting */
        }
        if (got < 0 && errno != EINTR) {
            fprintf(stderr, "follow: read %s: %s\n", path, strerror(errno));
            goto out;
        }
        if (s.unique == s.n && mono - changed >= settle_ms * 1000000ull) {
            break;
        }
        if (s.unique < s.n && mono - changed >= quiet_s * FL_NS) {
            fprintf(stderr, "follow: no growth for %" PRIu64 " s with %" PRIu64 " missing\n",
                    quiet_s, s.n - s.unique);
            break;
        }
        if (mono >= deadline) {
            fprintf(stderr, "follow: -T %" PRIu64 " s reached\n", total_s);
            break;
        }
        if (interval_us > 0) {
            struct timespec ts = {0, (long)interval_us * 1000};

            nanosleep(&ts, NULL);
        } else {
            struct pollfd pfd = {.fd = ino, .events = POLLIN};
            char ibuf[4096];

            /* Woken by the next write; 10 ms bounds a missed notification. */
            if (poll(&pfd, 1, 10) > 0) {
                while (read(ino, ibuf, sizeof(ibuf)) > 0) {
                }
            }
        }
    }
    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "follow: fstat %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (carry != 0) {
        s.malformed++;
        fl_bad(&s, "partial last line", buf, carry);
    }
    {
        bool complete = s.unique == s.n && (s.duplicates | s.out_of_range | s.malformed) == 0;
        uint64_t mtime = (uint64_t)st.st_mtim.tv_sec * FL_NS + (uint64_t)st.st_mtim.tv_nsec;

        printf("lines=%" PRIu64 " unique=%" PRIu64 " expected=%" PRIu64 " missing=%" PRIu64
               " duplicates=%" PRIu64 " out_of_range=%" PRIu64 " malformed=%" PRIu64
               " bytes=%" PRIu64 " p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
               " mean_us=%.1f negative=%" PRIu64 " t_first_ns=%" PRIu64 " t_complete_ns=%" PRIu64
               " t_mtime_ns=%" PRIu64 " result=%s\n",
               s.lines, s.unique, s.n, s.n - s.unique, s.duplicates, s.out_of_range, s.malformed,
               s.bytes, (double)fl_quantile(&s, 0.50) / 1e3, (double)fl_quantile(&s, 0.90) / 1e3,
               (double)fl_quantile(&s, 0.99) / 1e3, (double)fl_quantile(&s, 0.999) / 1e3,
               (double)s.lat_max / 1e3, s.lat_count ? s.lat_sum / (double)s.lat_count / 1e3 : 0.0,
               s.negative, s.t_first, s.t_complete, mtime, complete ? "complete" : "INCOMPLETE");
        if (s.unique < s.n) {
            unsigned shown = 0;

            for (uint64_t i = 0; i < s.n && shown < FL_REPORT; i++) {
                if (!(s.seen[i / 64] & (UINT64_C(1) << (i % 64)))) {
                    fprintf(stderr, "follow: missing seq %" PRIu64 "\n", s.first + i);
                    shown++;
                }
            }
        }
        rc = complete ? 0 : 1;
        if (cdf != NULL && fl_write_cdf(&s, cdf) < 0) {
            rc = 2;
        }
    }
out:
    if (ino >= 0) {
        close(ino);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(s.seen);
    return rc;
usage:
    fl_usage();
    return 2;
}
