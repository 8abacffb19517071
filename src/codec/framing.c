/*
 * framing — newline framing and RFC 6587 octet counting of event streams
 * (pure functions, any thread; the rules are in framing.h).
 *
 * The newline scan (THE NEWLINE BITMAP below) is the hottest loop in the
 * daemon after the validator, and sl_frame() adds one switch per read in
 * front of it.  Octet counting never buffers more
 * than one frame of at most max_line bytes: a header is consumed once it
 * is complete (st->body remembers the frame's length), an oversize frame
 * is skipped as it arrives (st->skip), and a partial header is at most
 * SL_FRAME_COUNT_DIGITS bytes.
 */
#include "codec/framing.h"
#include "codec/validate.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/*
 * THE NEWLINE BITMAP.  sl_frame_lines() takes the newlines of a read 64
 * bytes at a time: one pass of independent compares gives a word of
 * newline bits, and each line's end is a count of trailing zeros and a
 * clear of the lowest bit.  A memchr() per line paid a call and its set-up
 * for every line, which at 64-byte events was ~6 % of the daemon's samples
 * at full speed.  A block without a newline (a long line) hands the rest
 * of that line to memchr: for 1 KiB lines block after block cost 1.8x the
 * memchr.  Measured: bench/results/analysis.md (2026-12-06, "SIMD index
 * build").  Elsewhere, or for a tail under 64 bytes, memchr.
 *
 * THE LINE INDEX.  The same compares give each block's quotes and the
 * bytes that bar the json validator's quote index ('\\', below 0x20, above
 * 0x7f: validate.c, THE QUOTE INDEX), and a line under 64 bytes inside the
 * last two blocks gets its own two words cut out of them (st->index_*),
 * which sl_validate_object_indexed() takes instead of building them again
 * from the line's bytes (validate_short(), four overlapping 16-byte parts
 * and their shifts: ~115 of the producer's ~767 instructions per 64-byte
 * event).  Only with AVX2 (the validator's choice, sl_validate_get_isa()),
 * where the block with the two extra words costs about what the newline
 * word alone did with SSE2; with SSE2 they cost more than they save (+9 %
 * instructions for framing and validation at 230 bytes, -2 % at 64), so
 * the SSE2 block takes the newlines only and hands out no index.
 * Measured: bench/results/analysis.md (v64).
 */
struct frame_nl {
    const char *buf;
    size_t len;
    size_t block;      /* offset of the block bits describe */
    uint64_t bits;     /* its newlines not yet handed out */
    uint64_t quote[2]; /* the quotes of the block before it (if prev) and of it */
    uint64_t bad[2];   /* ... and their barring bytes */
    size_t from;       /* in the tail: where memchr goes on */
    bool tail;
    bool prev; /* quote[0], bad[0] describe the 64 bytes before block */
};

static inline __attribute__((always_inline)) int
frame_offer(struct sl_frame_state *st, const char *line, size_t len, size_t max_line,
            sl_frame_fn fn, void *arg, const struct frame_nl *sc)
{
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (len == 0) {
        return 0;
    }
    if (len > max_line) {
        st->oversize++;
        return 0;
    }
    st->index_line = NULL;
    if (sc != NULL && len < 64 && !sc->tail) {
        /* The line ends in the block (its newline came from sc->bits);
         * it starts there or in the block before, when that is known. */
        size_t at = (size_t)(line - sc->buf);
        if (at + 64 * (size_t)sc->prev >= sc->block) {
            size_t off = at + 64 - sc->block; /* in the 128 bits prev:block */
            /* Without branches: off is as often under 64 as not. */
            unsigned sh = (unsigned)off & 63;
            bool low = off < 64;
            uint64_t qlo = low ? sc->quote[0] : sc->quote[1];
            uint64_t qhi = low ? sc->quote[1] : 0;
            uint64_t blo = low ? sc->bad[0] : sc->bad[1];
            uint64_t bhi = low ? sc->bad[1] : 0;
            uint64_t mask = (UINT64_C(1) << len) - 1;
            uint64_t q = qlo >> sh | qhi << 1 << (63 - sh);
            uint64_t b = blo >> sh | bhi << 1 << (63 - sh);
            st->index_line = line;
            st->index_quotes = q & mask;
            st->index_bad = b & mask;
        }
    }
    return fn(arg, line, len);
}

/* The newline bits of p[0..64); the quote and barring-byte bits in *quote, *bad. */
typedef uint64_t (*frame_block_fn)(const char *p, uint64_t *quote, uint64_t *bad);

#if defined(__SSE2__)
#include <emmintrin.h>

/* The newlines only: with SSE2 the line index is not built (THE LINE INDEX). */
static inline __attribute__((always_inline)) uint64_t
frame_block_sse2(const char *p, uint64_t *quote, uint64_t *bad)
{
    const __m128i nl = _mm_set1_epi8('\n');
    uint64_t m = 0;
    (void)quote;
    (void)bad;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        m |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) << (16 * k);
    }
    return m;
}
#endif

#if defined(__x86_64__) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define FRAME_AVX2 1
#include <immintrin.h>

__attribute__((target("avx2"))) static inline uint64_t
frame_block_avx2(const char *p, uint64_t *quote, uint64_t *bad)
{
    const __m256i nl = _mm256_set1_epi8('\n');
    const __m256i dq = _mm256_set1_epi8('"');
    const __m256i backslash = _mm256_set1_epi8('\\');
    const __m256i space = _mm256_set1_epi8(' ');
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    __m256i blo = _mm256_or_si256(_mm256_cmpeq_epi8(lo, backslash), _mm256_cmpgt_epi8(space, lo));
    __m256i bhi = _mm256_or_si256(_mm256_cmpeq_epi8(hi, backslash), _mm256_cmpgt_epi8(space, hi));
    *quote = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, dq)) |
             (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, dq)) << 32;
    *bad = (uint64_t)(uint32_t)_mm256_movemask_epi8(blo) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(bhi) << 32;
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, nl)) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, nl)) << 32;
}
#endif

static inline __attribute__((always_inline)) void
frame_nl_init(struct frame_nl *sc, const char *buf, size_t len, size_t pos, frame_block_fn block,
              bool index)
{
    sc->buf = buf;
    sc->len = len;
    sc->block = pos;
    sc->bits = 0;
    sc->from = pos;
    sc->tail = true;
    sc->prev = false;
    if (index) {
        sc->quote[0] = sc->quote[1] = 0;
        sc->bad[0] = sc->bad[1] = 0;
    }
    if (block != NULL && len - pos >= 64) {
        sc->bits = block(buf + pos, &sc->quote[1], &sc->bad[1]);
        sc->tail = false;
    }
}

/* The next newline, or NULL (index: keep the words of the block before). */
static inline __attribute__((always_inline)) const char *
frame_nl_next(struct frame_nl *sc, frame_block_fn block, bool index)
{
    if (!sc->tail) {
        if (sc->bits == 0) {
            sc->block += 64;
            if (sc->len - sc->block < 64) {
                sc->tail = true;
                sc->from = sc->block;
            } else {
                if (index) {
                    sc->quote[0] = sc->quote[1];
                    sc->bad[0] = sc->bad[1];
                    sc->prev = true;
                }
                sc->bits = block(sc->buf + sc->block, &sc->quote[1], &sc->bad[1]);
                if (sc->bits == 0) {
                    /* A line longer than a block: memchr (wider, unrolled)
                     * finds its end faster than block after block; the
                     * bitmap starts again after it. */
                    const char *nl =
                        memchr(sc->buf + sc->block + 64, '\n', sc->len - sc->block - 64);
                    if (nl == NULL) {
                        sc->tail = true;
                        sc->from = sc->len;
                        return NULL;
                    }
                    frame_nl_init(sc, sc->buf, sc->len, (size_t)(nl - sc->buf) + 1, block, index);
                    return nl;
                }
            }
        }
        if (!sc->tail) {
            const char *nl = sc->buf + sc->block + __builtin_ctzll(sc->bits);
            sc->bits &= sc->bits - 1;
            return nl;
        }
    }
    if (sc->from >= sc->len) {
        return NULL;
    }
    const char *nl = memchr(sc->buf + sc->from, '\n', sc->len - sc->from);
    sc->from = nl != NULL ? (size_t)(nl - sc->buf) + 1 : sc->len;
    return nl;
}

/* sl_frame_lines() with block() (NULL: memchr only), handing out the line
 * index when index, inlined into each caller below. */
static inline __attribute__((always_inline)) size_t
frame_lines_with(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                 sl_frame_fn fn, void *arg, bool *stopped, frame_block_fn block, bool index)
{
    size_t pos = 0;
    *stopped = false;
    if (st->discarding) {
        const char *nl = memchr(buf, '\n', len);
        if (nl == NULL) {
            return len;
        }
        st->discarding = false;
        pos = (size_t)(nl - buf) + 1;
    }
    struct frame_nl scan;
    frame_nl_init(&scan, buf, len, pos, block, index);
    while (pos < len) {
        const char *start = buf + pos;
        const char *nl = frame_nl_next(&scan, block, index);
        if (nl == NULL) {
            break;
        }
        size_t n = (size_t)(nl - start);
        if (frame_offer(st, start, n, max_line, fn, arg, index ? &scan : NULL) != 0) {
            *stopped = true;
            return pos;
        }
        pos += n + 1;
    }
    /* A partial line already longer than any allowed line (+1 for a '\r'
     * that may still be stripped) is discarded now, not buffered. */
    if (len - pos > max_line + 1) {
        st->oversize++;
        st->discarding = true;
        return len;
    }
    return pos;
}

#if defined(FRAME_AVX2)
__attribute__((target("avx2"))) static size_t
frame_lines_avx2(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                 sl_frame_fn fn, void *arg, bool *stopped)
{
    return frame_lines_with(st, buf, len, max_line, fn, arg, stopped, frame_block_avx2, true);
}
#endif

size_t
sl_frame_lines(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
               sl_frame_fn fn, void *arg, bool *stopped)
{
#if defined(FRAME_AVX2)
    if (sl_validate_get_isa() == SL_VALIDATE_ISA_AVX2) {
        return frame_lines_avx2(st, buf, len, max_line, fn, arg, stopped);
    }
#endif
#if defined(__SSE2__)
    return frame_lines_with(st, buf, len, max_line, fn, arg, stopped, frame_block_sse2, false);
#else
    return frame_lines_with(st, buf, len, max_line, fn, arg, stopped, NULL, false);
#endif
}

int
sl_frame_finish(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                sl_frame_fn fn, void *arg)
{
    bool discarding = st->discarding;
    st->discarding = false;
    if (discarding) {
        return 0;
    }
    return frame_offer(st, buf, len, max_line, fn, arg, NULL);
}

/* ---- octet counting (RFC 6587 3.4.1) ------------------------------------------------ */

enum octet_head {
    OCTET_HEAD_OK,   /* *count, *hlen set */
    OCTET_HEAD_MORE, /* a valid beginning: more bytes are needed */
    OCTET_HEAD_BAD   /* not MSG-LEN SP: *why says why */
};

static bool
octet_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Parses MSG-LEN SP at p[0..n), n > 0: NONZERO-DIGIT *DIGIT, at most
 * SL_FRAME_COUNT_DIGITS digits.  The count is built with an overflow check
 * even though ten digits cannot overflow 64 bits: the digit limit is the
 * rule, the check is the guard if it ever changes.
 */
static enum octet_head
octet_head(const char *p, size_t n, uint64_t *count, size_t *hlen, const char **why)
{
    uint64_t v = 0;
    size_t i;

    if (p[0] == '0') {
        *why = "frame length 0 or with a leading zero; newline framing from here on";
        return OCTET_HEAD_BAD;
    }
    for (i = 0; i < n && octet_is_digit(p[i]); i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (i == SL_FRAME_COUNT_DIGITS || v > (UINT64_MAX - d) / 10) {
            *why = "frame length of more than 10 digits; newline framing from here on";
            return OCTET_HEAD_BAD;
        }
        v = v * 10 + d;
    }
    if (i == n) {
        return OCTET_HEAD_MORE;
    }
    if (i == 0) {
        *why = "frame does not start with a length; newline framing from here on";
        return OCTET_HEAD_BAD;
    }
    if (p[i] != ' ') {
        *why = "no space after the frame length; newline framing from here on";
        return OCTET_HEAD_BAD;
    }
    *count = v;
    *hlen = i + 1;
    return OCTET_HEAD_OK;
}

/* One frame's content: one trailing "\n" or "\r\n" removed; empty: skipped;
 * other '\n' folded into ' ' when the codec writes events verbatim. */
static int
octet_offer(struct sl_frame_state *st, char *p, size_t n, sl_frame_fn fn, void *arg)
{
    st->index_line = NULL;
    if (n > 0 && p[n - 1] == '\n') {
        n--;
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
    }
    if (n == 0) {
        return 0;
    }
    if (st->fold_newlines) {
        for (char *nl = memchr(p, '\n', n); nl != NULL;
             nl = memchr(nl + 1, '\n', n - (size_t)(nl + 1 - p))) {
            *nl = ' ';
        }
    }
    return fn(arg, p, n);
}

static size_t
frame_octets(struct sl_frame_state *st, char *buf, size_t len, size_t max_line, sl_frame_fn fn,
             void *arg, bool *stopped)
{
    size_t pos = 0;

    *stopped = false;
    for (;;) {
        if (st->skip > 0) {
            /* Inside an oversize frame: drop what arrived of it. */
            size_t n = len - pos;
            if (n > st->skip) {
                n = (size_t)st->skip;
            }
            pos += n;
            st->skip -= n;
            if (st->skip > 0) {
                return len;
            }
        } else if (st->body > 0) {
            /* st->body <= max_line: wait until the whole frame is here. */
            if (len - pos < st->body) {
                return pos;
            }
            size_t n = (size_t)st->body;
            if (octet_offer(st, buf + pos, n, fn, arg) != 0) {
                *stopped = true;
                return pos;
            }
            st->body = 0;
            pos += n;
        }
        /* Between frames: line ends some senders add are ignored. */
        while (pos < len && (buf[pos] == '\n' || buf[pos] == '\r')) {
            pos++;
        }
        if (pos == len) {
            return pos;
        }
        uint64_t count = 0;
        size_t hlen = 0;
        const char *why = NULL;
        switch (octet_head(buf + pos, len - pos, &count, &hlen, &why)) {
        case OCTET_HEAD_MORE:
            return pos;
        case OCTET_HEAD_BAD:
            /* Newline framing from this header's first byte on. */
            st->errors++;
            st->error = why;
            st->mode = SL_FRAMING_LF;
            return pos + sl_frame_lines(st, buf + pos, len - pos, max_line, fn, arg, stopped);
        case OCTET_HEAD_OK:
            break;
        }
        pos += hlen;
        if (count > max_line) {
            st->oversize++;
            st->skip = count;
        } else {
            st->body = count;
        }
    }
}

/* ---- auto detection and dispatch ---------------------------------------------------- */

/*
 * Decides an auto stream from its first bytes: SL_FRAMING_OCTET for
 * "[1-9][0-9]{0,9} <", SL_FRAMING_LF for anything else, SL_FRAMING_AUTO
 * while buf[0..len) is a beginning of the octet pattern (len <= 11).
 */
static enum sl_framing
frame_detect(const char *buf, size_t len)
{
    size_t i = 1;

    if (len == 0) {
        return SL_FRAMING_AUTO;
    }
    if (buf[0] < '1' || buf[0] > '9') {
        return SL_FRAMING_LF;
    }
    for (; i < len && octet_is_digit(buf[i]); i++) {
        if (i == SL_FRAME_COUNT_DIGITS) {
            return SL_FRAMING_LF;
        }
    }
    if (i == len) {
        return SL_FRAMING_AUTO;
    }
    if (buf[i] != ' ') {
        return SL_FRAMING_LF;
    }
    if (i + 1 == len) {
        return SL_FRAMING_AUTO;
    }
    return buf[i + 1] == '<' ? SL_FRAMING_OCTET : SL_FRAMING_LF;
}

void
sl_frame_init(struct sl_frame_state *st, enum sl_framing framing, const struct sl_codec_type *codec)
{
    memset(st, 0, sizeof(*st));
    st->framing = (uint8_t)framing;
    st->mode = (uint8_t)framing;
    st->fold_newlines = codec != NULL && codec->single_line;
}

size_t
sl_frame(struct sl_frame_state *st, char *buf, size_t len, size_t max_line, sl_frame_fn fn,
         void *arg, bool *stopped)
{
    if (st->mode == SL_FRAMING_LF) {
        return sl_frame_lines(st, buf, len, max_line, fn, arg, stopped);
    }
    if (st->mode == SL_FRAMING_AUTO) {
        enum sl_framing m = frame_detect(buf, len);
        if (m == SL_FRAMING_AUTO) {
            *stopped = false;
            return 0;
        }
        st->mode = (uint8_t)m;
        if (m == SL_FRAMING_LF) {
            return sl_frame_lines(st, buf, len, max_line, fn, arg, stopped);
        }
    }
    return frame_octets(st, buf, len, max_line, fn, arg, stopped);
}

int
sl_frame_end(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
             sl_frame_fn fn, void *arg)
{
    int r = 0;

    if (st->mode != SL_FRAMING_OCTET) {
        r = sl_frame_finish(st, buf, len, max_line, fn, arg);
        if (r != 0) {
            return r; /* refused: the caller offers the tail again */
        }
    } else if (st->skip == 0 && (st->body > 0 || len > 0)) {
        st->errors++;
        st->error = "frame cut off at end of stream";
    }
    st->mode = st->framing;
    st->body = 0;
    st->skip = 0;
    return r;
}

const char *
sl_framing_name(enum sl_framing framing)
{
    switch (framing) {
    case SL_FRAMING_LF:
        return "lf";
    case SL_FRAMING_AUTO:
        return "auto";
    case SL_FRAMING_OCTET:
        return "octet_counted";
    }
    return "?";
}
