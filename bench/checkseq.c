/*
 * checkseq — verifies a benchmark's output file.
 *
 * checkseq -n N [-S FIRST] FILE
 *
 * Maps FILE and checks that
 *   - every line starts with '{' and ends with '}' (and the file ends in '\n',
 *     so there is no partial last line),
 *   - every line carries a "seq":NUMBER, the first such key in the line,
 *   - every seq in [FIRST, FIRST + N) appears exactly once and no other does.
 * Prints one key=value line of counts on stdout and, on failure, the first
 * few missing ranges and bad lines on stderr.  Exits 0 iff all of the above
 * hold, 1 if not, 2 on usage or I/O errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CS_MAX_N (UINT64_C(1) << 36) /* 8 GiB of bitmap would be silly */
#define CS_REPORT 5                  /* examples of each problem shown */

struct cs_counts {
    uint64_t lines, unique, duplicates, out_of_range, malformed, no_seq, partial;
};

static int
cs_parse_u64(const char *s, uint64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno != 0 || end == s || *end != '\0' || s[0] == '-') ? -1 : 0;
}

/* Prints the first bytes of a bad line at offset off, escaped for a terminal. */
static void
cs_show_line(const char *what, uint64_t off, const char *p, size_t len)
{
    fprintf(stderr, "checkseq: %s at byte %" PRIu64 ": ", what, off);
    for (size_t i = 0; i < len && i < 80; i++) {
        unsigned char ch = (unsigned char)p[i];

        fputc(ch >= 0x20 && ch < 0x7f ? ch : '.', stderr);
    }
    fputs(len > 80 ? "...\n" : "\n", stderr);
}

/*
 * Finds "seq": in line[0, len) and parses the number after it.  Returns 0
 * and stores it, or -1 if the key or a plain decimal number is missing.
 */
static int
cs_line_seq(const char *line, size_t len, uint64_t *seq)
{
    static const char key[] = "\"seq\":";
    const char *p = memmem(line, len, key, sizeof(key) - 1);
    const char *end = line + len;
    uint64_t v = 0;
    int digits = 0;

    if (p == NULL) {
        return -1;
    }
    p += sizeof(key) - 1;
    while (p < end && (*p == ' ' || *p == '\t')) {
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
    *seq = v;
    return 0;
}

static void
cs_usage(void)
{
    fprintf(stderr, "usage: checkseq -n N [-S FIRST] FILE\n");
}

int
main(int argc, char **argv)
{
    struct cs_counts k = {0};
    uint64_t n = 0, first = 0, missing = 0, *seen = NULL;
    unsigned shown_bad = 0, shown_missing = 0, shown_dup = 0;
    const char *path, *map = MAP_FAILED, *p, *end;
    bool have_n = false, complete;
    struct stat st = {0};
    int ch, fd = -1, rc = 2;

    while ((ch = getopt(argc, argv, "n:S:h")) != -1) {
        switch (ch) {
        case 'n':
            if (cs_parse_u64(optarg, &n) < 0 || n == 0 || n > CS_MAX_N) {
                cs_usage();
                return 2;
            }
            have_n = true;
            break;
        case 'S':
            if (cs_parse_u64(optarg, &first) < 0 || first > UINT64_MAX - CS_MAX_N) {
                cs_usage();
                return 2;
            }
            break;
        default:
            cs_usage();
            return 2;
        }
    }
    if (!have_n || optind != argc - 1) {
        cs_usage();
        return 2;
    }
    path = argv[optind];

    seen = calloc((size_t)(n + 63) / 64, sizeof(*seen));
    if (seen == NULL) {
        fprintf(stderr, "checkseq: out of memory for %" PRIu64 " bits\n", n);
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "checkseq: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "checkseq: mmap %s: %s\n", path, strerror(errno));
            goto out;
        }
        madvise((void *)map, (size_t)st.st_size, MADV_SEQUENTIAL);
    }

    p = map == MAP_FAILED ? NULL : map;
    end = p == NULL ? NULL : p + st.st_size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        uint64_t seq;

        k.lines++;
        if (nl == NULL) {
            k.partial++;
            if (shown_bad++ < CS_REPORT) {
                cs_show_line("partial last line", (uint64_t)(p - map), p, len);
            }
        }
        if (len < 2 || p[0] != '{' || p[len - 1] != '}') {
            k.malformed++;
            if (shown_bad++ < CS_REPORT) {
                cs_show_line("line not {...}", (uint64_t)(p - map), p, len);
            }
        }
        if (cs_line_seq(p, len, &seq) < 0) {
            k.no_seq++;
            if (shown_bad++ < CS_REPORT) {
                cs_show_line("no \"seq\":NUMBER", (uint64_t)(p - map), p, len);
            }
        } else if (seq < first || seq - first >= n) {
            k.out_of_range++;
            if (shown_bad++ < CS_REPORT) {
                cs_show_line("seq out of range", (uint64_t)(p - map), p, len);
            }
        } else {
            uint64_t i = seq - first;
            uint64_t bit = UINT64_C(1) << (i % 64);

            if (seen[i / 64] & bit) {
                k.duplicates++;
                if (shown_dup++ < CS_REPORT) {
                    fprintf(stderr, "checkseq: duplicate seq %" PRIu64 "\n", seq);
                }
            } else {
                seen[i / 64] |= bit;
                k.unique++;
            }
        }
        p = nl != NULL ? nl + 1 : end;
    }

    missing = n - k.unique;
    for (uint64_t i = 0; i < n && missing != 0 && shown_missing < CS_REPORT; i++) {
        uint64_t j;

        if (seen[i / 64] == UINT64_MAX && i % 64 == 0) {
            i += 63;
            continue;
        }
        if (seen[i / 64] & (UINT64_C(1) << (i % 64))) {
            continue;
        }
        for (j = i; j + 1 < n && !(seen[(j + 1) / 64] & (UINT64_C(1) << ((j + 1) % 64))); j++) {
        }
        fprintf(stderr, "checkseq: missing seq %" PRIu64 "..%" PRIu64 " (%" PRIu64 ")\n", first + i,
                first + j, j - i + 1);
        shown_missing++;
        i = j;
    }

    complete = (missing | k.duplicates | k.out_of_range | k.malformed | k.no_seq | k.partial) == 0;
    printf("lines=%" PRIu64 " expected=%" PRIu64 " unique=%" PRIu64 " missing=%" PRIu64
           " duplicates=%" PRIu64 " out_of_range=%" PRIu64 " malformed=%" PRIu64 " no_seq=%" PRIu64
           " partial=%" PRIu64 " bytes=%jd result=%s\n",
           k.lines, n, k.unique, missing, k.duplicates, k.out_of_range, k.malformed, k.no_seq,
           k.partial, (intmax_t)st.st_size, complete ? "complete" : "INCOMPLETE");
    rc = complete ? 0 : 1;
out:
    if (map != MAP_FAILED) {
        munmap((void *)map, (size_t)st.st_size);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(seen);
    return rc;
}
