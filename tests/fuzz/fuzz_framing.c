/*
 * fuzz_framing — newline framing of a byte stream that arrives split at
 * arbitrary points, against a plain reference, with the validator checked
 * against jansson on every framed line.
 *
 * Input layout: 1 byte max_line selector, 1 byte mode, then the stream.
 * The stream is cut into reads whose lengths come from a small generator
 * seeded by the input; the driver keeps the unconsumed tail in front of the
 * next read as source_tcp.c does, and the line callback refuses a line now
 * and then (the "no queue space" stop), after which the same bytes are
 * offered again.  With mode bit 0 the stream ends as a TCP EOF
 * (sl_frame_finish on the tail), otherwise it is cut off (tail dropped).
 *
 * Properties:
 *   - the lines delivered, in order, and the oversize count equal the
 *     reference: split on '\n', drop one trailing '\r', skip empty lines,
 *     count lines longer than max_line as oversize;
 *   - the bytes kept between reads never exceed max_line + 1 unless the
 *     callback stopped (the memory bound on a connection's pending line);
 *   - for every delivered line the validator's verdict equals jansson's,
 *     except that a line holding a NUL byte is always invalid (jansson
 *     accepts {"a":1\0}; see tests/fuzz/fuzz_validate.c).
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "codec/framing.h"
#include "codec/validate.h"

struct fuzz_lines {
    char *buf; /* the lines, each followed by '\n' */
    size_t len;
    size_t cap;
    size_t count;
};

static void
lines_add(struct fuzz_lines *l, const char *line, size_t len)
{
    if (l->len + len + 1 > l->cap) {
        size_t cap = (l->len + len + 1) * 2;
        char *n = realloc(l->buf, cap);
        if (n == NULL) {
            abort();
        }
        l->buf = n;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, line, len);
    l->buf[l->len + len] = '\n';
    l->len += len + 1;
    l->count++;
}

/* The reference: the whole stream at once, no state. */
static uint64_t
reference(const char *s, size_t n, size_t max_line, bool eof, struct fuzz_lines *out)
{
    uint64_t oversize = 0;
    size_t pos = 0;
    while (pos < n) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t len;
        if (nl == NULL) {
            if (!eof) {
                /* Cut off: an unterminated tail is not an event, but a tail
                 * already known to be too long was counted. */
                if (n - pos > max_line + 1) {
                    oversize++;
                }
                break;
            }
            len = n - pos;
        } else {
            len = (size_t)(nl - (s + pos));
        }
        size_t l = len;
        if (l > 0 && s[pos + l - 1] == '\r') {
            l--;
        }
        if (l > max_line) {
            oversize++;
        } else if (l > 0) {
            lines_add(out, s + pos, l);
        }
        pos += len + 1;
    }
    return oversize;
}

struct driver {
    struct fuzz_lines got;
    uint32_t rng;
    bool refused_last; /* never refuse twice in a row: progress */
};

static uint32_t
driver_rand(struct driver *d)
{
    d->rng = d->rng * 1103515245u + 12345u;
    return d->rng >> 16;
}

static void
check_line(const char *line, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(line, len, 0, &err);
    bool want = root != NULL && json_is_object(root) && memchr(line, '\0', len) == NULL;
    enum sl_validate_result r = sl_validate_object(line, len, NULL);
    json_decref(root);
    fuzz_require((r == SL_VALID) == want, "framed line of %zu bytes: validator %s, jansson %s", len,
                 sl_validate_reason(r), want ? "accepts" : "rejects");
}

static int
driver_line_cb(void *arg, const char *line, size_t len)
{
    struct driver *d = arg;
    if (!d->refused_last && driver_rand(d) % 7 == 0) {
        d->refused_last = true;
        return 1;
    }
    d->refused_last = false;
    check_line(line, len);
    lines_add(&d->got, line, len);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_lines[] = {1, 2, 3, 8, 16, 31, 64, 255, 4096};
    struct fuzz_input in = {data, size};
    size_t max_line = max_lines[fuzz_take(&in, 1) % (sizeof(max_lines) / sizeof(max_lines[0]))];
    uint32_t mode = fuzz_take(&in, 1);
    bool eof = (mode & 1) != 0;
    const char *s = (const char *)in.p;
    size_t n = in.n;
    struct fuzz_lines want = {0};
    struct driver d = {.rng = mode * 2654435761u + (uint32_t)n};
    struct sl_frame_state st = {0};
    char *pend = malloc(n + 1);
    size_t pend_len = 0;
    size_t pos = 0;
    uint64_t want_over;

    if (pend == NULL) {
        abort();
    }
    want_over = reference(s, n, max_line, eof, &want);

    /* Reads of 1..64 bytes, each appended behind what is pending. */
    while (pos < n || pend_len > 0) {
        size_t take = 1 + driver_rand(&d) % 64;
        bool stopped = false;
        if (take > n - pos) {
            take = n - pos;
        }
        memcpy(pend + pend_len, s + pos, take);
        pend_len += take;
        pos += take;
        size_t used = sl_frame_lines(&st, pend, pend_len, max_line, driver_line_cb, &d, &stopped);
        fuzz_require(used <= pend_len, "consumed %zu of %zu", used, pend_len);
        memmove(pend, pend + used, pend_len - used);
        pend_len -= used;
        fuzz_require(stopped || pend_len <= max_line + 1,
                     "%zu bytes kept between reads, max_line %zu", pend_len, max_line);
        if (pos == n && !stopped) {
            if (eof) {
                /* EOF: the tail is the last event (offered again if refused). */
                while (sl_frame_finish(&st, pend, pend_len, max_line, driver_line_cb, &d) != 0) {
                }
            }
            pend_len = 0;
            break;
        }
    }
    fuzz_require(st.oversize == want_over, "oversize %llu, reference %llu",
                 (unsigned long long)st.oversize, (unsigned long long)want_over);
    fuzz_require(d.got.count == want.count && d.got.len == want.len &&
                     (want.len == 0 || memcmp(d.got.buf, want.buf, want.len) == 0),
                 "framed %zu lines (%zu bytes), reference %zu lines (%zu bytes)", d.got.count,
                 d.got.len, want.count, want.len);
    free(pend);
    free(d.got.buf);
    free(want.buf);
    return 0;
}
