/*
 * fuzz_framing — stream framing (sl_frame: newline, RFC 6587 octet
 * counting, auto) of a byte stream that arrives split at arbitrary points,
 * with the validator checked against jansson on every framed event.
 *
 * Input layout: 1 byte max_line selector, 1 byte mode, then the stream.
 * Mode bits 1-2 pick the framing: 0 lf, 1 auto, 2 octet_counted, 3
 * octet_counted for a single_line codec (newlines inside frames folded).
 * The stream is cut into reads whose lengths come from a small generator
 * seeded by the input; the driver keeps the unconsumed tail in front of the
 * next read as source_tcp.c does, and the line callback refuses a line now
 * and then (the "no queue space" stop), after which the same bytes are
 * offered again.  With mode bit 0 the stream ends as a TCP EOF
 * (sl_frame_end on the tail), otherwise it is cut off (tail dropped).
 *
 * Properties:
 *   - lf: the lines delivered, in order, and the oversize count equal the
 *     reference: split on '\n', drop one trailing '\r', skip empty lines,
 *     count lines longer than max_line as oversize;
 *   - auto and octet_counted: the events, in order, and the oversize and
 *     framing error counts equal those of the whole stream framed in one
 *     call with no refusal (the same events whatever the split);
 *   - every call gets exactly the bytes it may read in a buffer of their
 *     size (AddressSanitizer catches a read past them);
 *   - the bytes kept between reads never exceed max_line + 1 (or
 *     SL_FRAME_HEAD_MAX, a partial header, if that is more) unless the
 *     callback stopped (the memory bound on a connection's pending line);
 *   - for every delivered line the validator's verdict equals jansson's,
 *     except that a line holding a NUL byte is always invalid (jansson
 *     accepts {"a":1\0}; see tests/fuzz/fuzz_validate.c);
 *   - a line newline framing hands an index with (framing.c, THE LINE
 *     INDEX; AVX2 only: mode bit 3 takes the SSE2 blocks, which hand out
 *     none) is under 64 bytes, the index is its quotes and barring bytes,
 *     and the verdict with it is the one without.
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "codec/framing.h"
#include "codec/validate.h"
#include "fuzz.h"

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
    bool refused_last;               /* never refuse twice in a row: progress */
    const struct sl_frame_state *st; /* for the line index (NULL: unsplit) */
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

/* A line newline framing handed an index with (framing.c, THE LINE
 * INDEX): under 64 bytes, the words are its quotes and barring bytes, and
 * the validator's verdict with them is the one without. */
static void
check_index(const struct sl_frame_state *st, const char *line, size_t len)
{
    uint64_t q = 0;
    uint64_t b = 0;
    fuzz_require(len < 64, "an index for a line of %zu bytes", len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        q |= (uint64_t)(c == '"') << i;
        b |= (uint64_t)(c == '\\' || c < 0x20 || c > 0x7f) << i;
    }
    fuzz_require(st->index_quotes == q && st->index_bad == b,
                 "line index of %zu bytes: quotes %#llx bad %#llx, the bytes say %#llx %#llx", len,
                 (unsigned long long)st->index_quotes, (unsigned long long)st->index_bad,
                 (unsigned long long)q, (unsigned long long)b);
    bool e1 = false;
    bool e2 = false;
    enum sl_validate_result r1 = sl_validate_object_indexed(line, len, &e1, q, b);
    enum sl_validate_result r2 = sl_validate_object(line, len, &e2);
    fuzz_require(r1 == r2 && e1 == e2, "line of %zu bytes: with its index %s, without %s", len,
                 sl_validate_reason(r1), sl_validate_reason(r2));
}

static int
unsplit_line_cb(void *arg, const char *line, size_t len)
{
    struct driver *d = arg;
    lines_add(&d->got, line, len);
    return 0;
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
    if (d->st != NULL && d->st->index_line == line) {
        check_index(d->st, line, len);
    }
    check_line(line, len);
    lines_add(&d->got, line, len);
    return 0;
}

/* The whole stream in one call, nothing refused: the split-free answer. */
static void
unsplit(const char *s, size_t n, size_t max_line, bool eof, enum sl_framing framing,
        const struct sl_codec_type *codec, struct fuzz_lines *out, struct sl_frame_state *st)
{
    struct driver d = {0};
    char *buf = malloc(n + 1);
    bool stopped = false;
    if (buf == NULL) {
        abort();
    }
    memcpy(buf, s, n);
    sl_frame_init(st, framing, codec);
    size_t used = sl_frame(st, buf, n, max_line, unsplit_line_cb, &d, &stopped);
    fuzz_require(!stopped && used <= n, "unsplit: consumed %zu of %zu", used, n);
    if (eof) {
        fuzz_require(sl_frame_end(st, buf + used, n - used, max_line, unsplit_line_cb, &d) == 0,
                     "unsplit: end refused");
    }
    *out = d.got;
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_lines[] = {1, 2, 3, 8, 16, 31, 64, 255, 4096};
    static const struct sl_codec_type verbatim = {.name = "verbatim", .single_line = true};
    struct fuzz_input in = {data, size};
    size_t max_line = max_lines[fuzz_take(&in, 1) % (sizeof(max_lines) / sizeof(max_lines[0]))];
    uint32_t mode = fuzz_take(&in, 1);
    bool eof = (mode & 1) != 0;
    unsigned fr = (mode >> 1) & 3;
    enum sl_framing framing = fr == 0   ? SL_FRAMING_LF
                              : fr == 1 ? SL_FRAMING_AUTO
                                        : SL_FRAMING_OCTET;
    const struct sl_codec_type *codec = fr == 3 ? &verbatim : NULL;
    const char *s = (const char *)in.p;
    size_t n = in.n;
    struct fuzz_lines want = {0};
    struct driver d = {.rng = mode * 2654435761u + (uint32_t)n};
    struct sl_frame_state st;
    struct sl_frame_state ref;
    char *pend = malloc(n + 1);
    size_t pend_len = 0;
    size_t pos = 0;
    size_t bound = max_line + 1 > SL_FRAME_HEAD_MAX ? max_line + 1 : SL_FRAME_HEAD_MAX;
    uint64_t want_over, want_errors = 0;

    if (pend == NULL) {
        abort();
    }
    if (framing == SL_FRAMING_LF) {
        want_over = reference(s, n, max_line, eof, &want);
    } else {
        unsplit(s, n, max_line, eof, framing, codec, &want, &ref);
        want_over = ref.oversize;
        want_errors = ref.errors;
    }
    sl_frame_init(&st, framing, codec);
    d.st = &st;
    /* Mode bit 3: newline framing's SSE2 blocks instead of the CPU's best. */
    sl_validate_set_isa((mode & 8) != 0 ? SL_VALIDATE_ISA_SSE2 : SL_VALIDATE_ISA_BEST);

    /* Reads of 1..64 bytes, each appended behind what is pending; each call
     * sees a heap buffer of exactly the pending bytes. */
    while (pos < n || pend_len > 0) {
        size_t take = 1 + driver_rand(&d) % 64;
        bool stopped = false;
        if (take > n - pos) {
            take = n - pos;
        }
        memcpy(pend + pend_len, s + pos, take);
        pend_len += take;
        pos += take;
        char *view = malloc(pend_len > 0 ? pend_len : 1);
        if (view == NULL) {
            abort();
        }
        memcpy(view, pend, pend_len);
        size_t used = sl_frame(&st, view, pend_len, max_line, driver_line_cb, &d, &stopped);
        fuzz_require(used <= pend_len, "consumed %zu of %zu", used, pend_len);
        memcpy(pend, view + used, pend_len - used);
        free(view);
        pend_len -= used;
        fuzz_require(stopped || pend_len <= bound, "%zu bytes kept between reads, max_line %zu",
                     pend_len, max_line);
        if (pos == n && !stopped) {
            if (eof) {
                /* EOF: the tail is the last event (offered again if refused). */
                for (;;) {
                    char *tail = malloc(pend_len > 0 ? pend_len : 1);
                    if (tail == NULL) {
                        abort();
                    }
                    memcpy(tail, pend, pend_len);
                    int r = sl_frame_end(&st, tail, pend_len, max_line, driver_line_cb, &d);
                    free(tail);
                    if (r == 0) {
                        break;
                    }
                }
            }
            pend_len = 0;
            break;
        }
    }
    sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
    fuzz_require(st.oversize == want_over, "oversize %llu, reference %llu",
                 (unsigned long long)st.oversize, (unsigned long long)want_over);
    fuzz_require(st.errors == want_errors, "framing errors %llu, reference %llu",
                 (unsigned long long)st.errors, (unsigned long long)want_errors);
    fuzz_require(d.got.count == want.count && d.got.len == want.len &&
                     (want.len == 0 || memcmp(d.got.buf, want.buf, want.len) == 0),
                 "%s: framed %zu events (%zu bytes), reference %zu events (%zu bytes)",
                 sl_framing_name(framing), d.got.count, d.got.len, want.count, want.len);
    free(pend);
    free(d.got.buf);
    free(want.buf);
    return 0;
}
