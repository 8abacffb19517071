/*
 * validate — checks that one event is a JSON object, as jansson would (but
 * refusing the NUL bytes jansson lets through).
 *
 * Runs on any thread; owns nothing.  sl_validate_object() borrows the input for
 * the call only, allocates nothing and keeps its whole state on the stack, so
 * producers can call it for every event on the hot path.
 *
 * DESIGN
 * One forward pass over the bytes: a small state machine whose three states
 * are the labels `value`, `key` and `after_value` in sl_validate_object().
 * Nesting lives in a 2048-bit stack on the C stack (one bit per open
 * container, set for an object), so depth costs neither recursion nor
 * allocation.  Strings, the bulk of an event, are skipped with a bitmap of
 * the line's quotes when the line allows it (THE QUOTE INDEX, below), or
 * else sixteen bytes at a time with SSE2 (eight with a portable SWAR test
 * elsewhere) looking for a quote, backslash, control or non-ASCII byte;
 * only those take the slow path.
 * Whitespace, rare in events, is tested for only where a token was expected
 * and something else found.  About 0.5-0.7 ns per byte of a typical event
 * on a 2.4 GHz core (bench/micro_validate.c), 20 to 100 times faster than
 * json_loadb().
 *
 * The accepted language is RFC 8259 narrowed to match jansson 2.14's
 * json_loadb(buf, len, 0, &err), with one deliberate difference (the last
 * rule below); tests/check_validate.c compares the two verdicts on a corpus
 * and on mutated inputs.  The rules that differ from a reading of the RFC
 * alone:
 *  - The root must be an object or an array (no JSON_DECODE_ANY), and only
 *    whitespace (space, \t, \n, \r) may follow it.
 *  - Every value counts one level of depth, scalars included: the root is at
 *    depth 1 and no value may be deeper than JSON_PARSER_MAX_DEPTH (2048).  So
 *    2048 nested empty arrays pass, 2047 arrays around a number pass, and 2048
 *    arrays around a number fail.
 *  - Strings must be strict UTF-8 (no overlong forms, no encoded surrogates,
 *    nothing above U+10FFFF) with no raw byte below 0x20 (0x7f is allowed).
 *    "\u0000" is refused (no JSON_ALLOW_NUL), and a \u escape of a surrogate
 *    must be a high one followed at once by a \u escape of a low one.
 *  - An integer (no '.', 'e' or 'E') must be in strtoll()'s range; a real must
 *    not overflow a double (strtod() returning HUGE_VAL, decided with correct
 *    rounding); underflow to zero or to a subnormal is accepted.
 *  - Duplicate keys are accepted (no JSON_REJECT_DUPLICATES).
 *  - The difference: a NUL byte is refused wherever it is, as RFC 8259 says
 *    (it is neither whitespace nor a token, and raw in a string it is a
 *    control character).  jansson accepts one NUL directly after a number or
 *    after true/false/null: its lexer pushes back the byte that ended the
 *    token, and its one-character look-ahead buffer reads a pushed-back NUL
 *    as "empty", so that NUL is lost.  {"a":1\0} passed jansson but is not
 *    JSON, and the json codec writes accepted lines verbatim, so following
 *    jansson here would put lines other parsers refuse into the output.
 */
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "codec/jsonchar.h"
#include "codec/validate.h"

#define VALIDATE_STACK_WORDS (SL_VALIDATE_MAX_DEPTH / 64)

#if defined(__SSE2__)
static const unsigned char *validate_plain_long(const unsigned char *p, const unsigned char *end);
#endif

/*
 * The decimal digits of 2^1024 - 2^970, the smallest value that strtod()
 * rounds to infinity: it lies halfway between DBL_MAX and 2^1024, and the tie
 * goes to the even neighbour, 2^1024.  A real whose significant digits compare
 * >= these at the same decimal exponent (309) overflows.
 */
static const char validate_dbl_limit[] =
    "17976931348623158079372897140530341507993413271003782693617377898044496829"
    "27647509466490179775872070963302864166928879109465555478519404026306574886"
    "71505820681908902000708383676273854845817711531764475730270069855571366959"
    "62284291481986083493647529271907416844436551070434271155969950809304288017"
    "7904174497792";

#define VALIDATE_DBL_LIMIT_DIGITS (sizeof(validate_dbl_limit) - 1)
#define VALIDATE_DBL_LIMIT_EXP 309

/* Bytes that may sit in a string as they are: 0x20..0x7f except '"' and '\\'. */
static const bool validate_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0 */
};

static inline bool
validate_is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline bool
validate_is_digit(unsigned char c)
{
    return (unsigned char)(c - '0') < 10;
}

/*
 * The first byte at or after p that is not a decimal digit, or end.  Eight
 * bytes at a time: event numbers are long (a nanosecond timestamp has 19
 * digits), and a byte loop pays a branch per digit.  Per byte, with the
 * low seven bits l = b & 0x7f: (l | 0x80) - '0' keeps bit 7 iff l >= '0',
 * l + (0x80 - ':') sets it iff l > '9', and b's own bit 7 flags a high
 * byte.  Neither sum crosses into the next byte, so every flag is exact.
 */
static inline const unsigned char *
validate_digits(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    /* Sixteen at a time first (signed compares: a byte above 0x7f is
     * negative, so below '0'): a 19-digit timestamp takes two steps of this
     * instead of three of the SWAR loop below.  What it buys: the
     * validator's time on bench/loadgen events 0.85-0.92x at 64 bytes and
     * 0.90-0.92x at 230 (two numbers each, one the 19-digit sent_ns), 30
     * fewer instructions per 64-byte event (bench/results/analysis.md,
     * session 8). */
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
            _mm_cmplt_epi8(v, _mm_set1_epi8('0')), _mm_cmpgt_epi8(v, _mm_set1_epi8('9'))));
        if (m != 0) {
            return p + __builtin_ctz(m);
        }
        p += 16;
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof(w));
        /* bit 7 of each lane: set for a byte >= 0x80, or < '0', or > '9' */
        uint64_t low = w & ~SL_JSONCHAR_HIGH;                      /* 0..0x7f per lane */
        uint64_t lt0 = (low | SL_JSONCHAR_HIGH) - SL_JSONCHAR_ONES * '0'; /* bit 7 clear: < '0' */
        uint64_t gt9 = low + SL_JSONCHAR_ONES * (0x80 - ('9' + 1)); /* bit 7 set: > '9' */
        uint64_t bad = (w | ~lt0 | gt9) & SL_JSONCHAR_HIGH;
        if (bad != 0) {
            return p + ((unsigned)__builtin_ctzll(bad) >> 3);
        }
        p += 8;
    }
#endif
    while (p < end && validate_is_digit(*p)) {
        p++;
    }
    return p;
}

/* One comparison when, as usual, no whitespace is there. */
static inline const unsigned char *
validate_skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && *p <= ' ' && validate_is_ws(*p)) {
        p++;
    }
    return p;
}

/* Value of a hex digit, or -1. */
static inline int
validate_hexval(unsigned char c)
{
    if (validate_is_digit(c)) {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* The code unit of the four hex digits at p (room checked by the caller), or -1. */
static inline int32_t
validate_hex4(const unsigned char *p)
{
    int a = validate_hexval(p[0]);
    int b = validate_hexval(p[1]);
    int c = validate_hexval(p[2]);
    int d = validate_hexval(p[3]);

    if ((a | b | c | d) < 0) {
        return -1;
    }
    return (a << 12) | (b << 8) | (c << 4) | d;
}

/*
 * Returns the first byte at or after p that is not plain (validate_plain[]),
 * or end.  Sixteen bytes at a time with SSE2 (a signed compare with 0x20
 * catches both control bytes and bytes above 0x7f), then eight with SWAR.
 * A run whose first 64 bytes are plain, with VALIDATE_LONG_MIN bytes or
 * more of the line left, goes on in 64-byte blocks (validate_plain_long(),
 * called at most once a run: shorter strings never pay for the call).
 */
#define VALIDATE_LONG_AFTER 64
#define VALIDATE_LONG_MIN 128

static inline __attribute__((always_inline)) const unsigned char *
validate_plain_run(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(' ');
    unsigned blocks = 0;

    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                         _mm_cmplt_epi8(v, space));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);

        if (bits != 0) {
            return p + __builtin_ctz(bits);
        }
        p += 16;
        if (++blocks == VALIDATE_LONG_AFTER / 16 && end - p >= VALIDATE_LONG_MIN) {
            p = validate_plain_long(p, end); /* THE LONG RUN; the loop finds the byte */
        }
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        uint64_t m;

        memcpy(&w, p, sizeof(w));
        m = sl_json_special8(w);
        if (m != 0) {
            return p + ((unsigned)__builtin_ctzll(m) >> 3);
        }
        p += 8;
    }
#endif
    while (p < end && validate_plain[*p]) {
        p++;
    }
    return p;
}

/*
 * Skips a string body; p is just past the opening quote.  Returns the byte
 * after the closing quote, or NULL with *r set.  Always inlined: it runs for
 * every key and most values, and a call costs more than most strings.
 */
static inline __attribute__((always_inline)) const unsigned char *
validate_string(const unsigned char *p, const unsigned char *end, enum sl_validate_result *r)
{
    for (;;) {
        p = validate_plain_run(p, end);
        if (p == end) {
            *r = SL_INVALID_SYNTAX;
            return NULL;
        }

        unsigned char c = *p;

        if (c == '"') {
            return p + 1;
        } else if (c == '\\') {
            if (end - p < 2) {
                *r = SL_INVALID_SYNTAX;
                return NULL;
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                break;
            case 'u': {
                int32_t u;

                if (end - p < 6 || (u = validate_hex4(p + 2)) < 0) {
                    *r = SL_INVALID_SYNTAX;
                    return NULL;
                }
                p += 6;
                if (u == 0 || (u >= 0xdc00 && u <= 0xdfff)) {
                    *r = SL_INVALID_UTF8;
                    return NULL;
                }
                if (u >= 0xd800 && u <= 0xdbff) {
                    int32_t lo;

                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') {
                        *r = SL_INVALID_UTF8;
                        return NULL;
                    }
                    if ((lo = validate_hex4(p + 2)) < 0) {
                        *r = SL_INVALID_SYNTAX;
                        return NULL;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        *r = SL_INVALID_UTF8;
                        return NULL;
                    }
                    p += 6;
                }
                break;
            }
            default:
                *r = SL_INVALID_SYNTAX;
                return NULL;
            }
        } else if (c < 0x20) {
            *r = SL_INVALID_SYNTAX;
            return NULL;
        } else {
            size_t n = sl_utf8_seq(p, (size_t)(end - p));

            if (n == 0) {
                *r = SL_INVALID_UTF8;
                return NULL;
            }
            p += n;
        }
    }
}

/*
 * Does the real with significant digits [a, a_end) then [b, b_end) (the
 * first one non-zero) and decimal exponent VALIDATE_DBL_LIMIT_EXP reach the
 * overflow limit?  Rare path: only reals of about 1.8e308 get here.
 */
static bool
validate_real_at_limit(const unsigned char *a, const unsigned char *a_end, const unsigned char *b,
                       const unsigned char *b_end)
{
    size_t i = 0;

    for (int seg = 0; seg < 2; seg++) {
        const unsigned char *p = seg == 0 ? a : b;
        const unsigned char *e = seg == 0 ? a_end : b_end;

        for (; p < e; p++) {
            if (i == VALIDATE_DBL_LIMIT_DIGITS) {
                /* Equal so far and the limit's digits are used up. */
                return true;
            }
            if (*p != (unsigned char)validate_dbl_limit[i]) {
                return *p > (unsigned char)validate_dbl_limit[i];
            }
            i++;
        }
    }
    /* Our digits ran out; the limit's last digit is not 0. */
    return i == VALIDATE_DBL_LIMIT_DIGITS;
}

/*
 * Skips a number; p is at '-' or a digit.  Returns the byte after it, or NULL
 * with *r set.  Grammar and range as jansson's lex_scan_number().
 */
static inline const unsigned char *
validate_number(const unsigned char *p, const unsigned char *end, enum sl_validate_result *r)
{
    bool neg = false;
    const unsigned char *int_start;
    const unsigned char *int_end;
    const unsigned char *frac_start;
    const unsigned char *frac_end;
    int64_t exp = 0;
    int64_t e10;

    if (*p == '-') {
        neg = true;
        p++;
    }
    int_start = p;
    if (p == end) {
        goto syntax;
    }
    if (*p == '0') {
        p++;
        if (p < end && validate_is_digit(*p)) {
            goto syntax;
        }
    } else if (validate_is_digit(*p)) {
        p = validate_digits(p + 1, end);
    } else {
        goto syntax;
    }
    int_end = p;
    frac_start = frac_end = p;

    if (p == end || (*p != '.' && (*p | 0x20) != 'e')) {
        size_t n = (size_t)(int_end - int_start);

        /* A 19-digit integer below 9e18 always fits: the (out-of-line)
         * memcmp only for those that start with '9'. */
        if (n > 19 ||
            (n == 19 && *int_start == '9' &&
             memcmp(int_start, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0)) {
            *r = SL_INVALID_NUMBER;
            return NULL;
        }
        return p;
    }

    if (*p == '.') {
        p++;
        frac_start = p;
        if (p == end || !validate_is_digit(*p)) {
            goto syntax;
        }
        do {
            p++;
        } while (p < end && validate_is_digit(*p));
        frac_end = p;
    }
    if (p < end && (*p | 0x20) == 'e') {
        bool exp_neg = false;

        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            exp_neg = *p == '-';
            p++;
        }
        if (p == end || !validate_is_digit(*p)) {
            goto syntax;
        }
        do {
            /* Saturate far beyond any digit count a buffer can hold. */
            if (exp < INT64_C(100000000000000000)) {
                exp = exp * 10 + (*p - '0');
            }
            p++;
        } while (p < end && validate_is_digit(*p));
        if (exp_neg) {
            exp = -exp;
        }
    }

    /* value = 0.d1d2... * 10^e10 with d1 its first non-zero digit. */
    if (*int_start != '0') {
        e10 = (int64_t)(int_end - int_start) + exp;
    } else {
        const unsigned char *q = frac_start;

        if (exp <= VALIDATE_DBL_LIMIT_EXP - 1) {
            return p;
        }
        while (q < frac_end && *q == '0') {
            q++;
        }
        if (q == frac_end) {
            return p; /* zero */
        }
        e10 = exp - (int64_t)(q - frac_start);
        int_start = int_end = q;
        frac_start = q;
    }
    if (e10 < VALIDATE_DBL_LIMIT_EXP) {
        return p;
    }
    if (e10 > VALIDATE_DBL_LIMIT_EXP ||
        validate_real_at_limit(int_start, int_end, frac_start, frac_end)) {
        *r = SL_INVALID_NUMBER;
        return NULL;
    }
    return p;

syntax:
    *r = SL_INVALID_SYNTAX;
    return NULL;
}

/*
 * THE QUOTE INDEX (the fast path of sl_validate_object).  Most events hold
 * no backslash, no control byte and no byte above 0x7f.  In such a line
 * every string ends at the next '"', so finding a string's end needs no
 * look at its bytes: a bitmap of the line's quotes, built first in one
 * pass of independent 16-byte compares, answers it with a shift and a
 * count of trailing zeros.  The byte-by-byte scan it replaces is a chain
 * of dependent loads (load, compare, mask, count, next load) that cost
 * ~5 ns per string.  A line with any such byte (the build stops at its
 * block), or longer than VALIDATE_INDEX_MAX, takes the byte-by-byte path:
 * in long lines long strings dominate, which THE LONG RUN below scans as
 * fast as the index is built.  Measured (bench/results/analysis.md,
 * 2026-12-06): ~0.85x the validator's time on 64- and 230-byte bench
 * events; the same at 1 KiB (not indexed).  Both paths share every other
 * rule (validate_body()), so they differ only in how a string is skipped,
 * and on lines without those bytes the two skips find the same quote
 * (tests/check_validate.c compares the paths on every input).  A line
 * under 64 bytes may come with its index built already, by newline
 * framing in the pass that finds the newlines (sl_validate_object_indexed,
 * framing.c "THE LINE INDEX").
 */
#define VALIDATE_INDEX_MAX 4096

struct validate_index {
    const unsigned char *base;
    uint64_t quotes[VALIDATE_INDEX_MAX / 64];
};

/*
 * THE 64-BYTE BLOCKS (how the quote index is built).  One block of 64
 * bytes gives one whole word of quote bits and one test for the bytes that
 * bar the index ('\\', below 0x20, above 0x7f), both from independent
 * compares: 4 x 16 bytes with SSE2 (part of x86-64), 2 x 32 with AVX2 where
 * the CPU has it (chosen once at start, VALIDATE_ISA below).  The first
 * version built the bitmap 16 bytes at a time, or-ing each part into the
 * word in memory (a store-to-load chain) behind a branch per 16 bytes.
 * What it buys is measured in bench/results/analysis.md (2026-12-06,
 * "SIMD index build").
 */
#if defined(__x86_64__) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(VALIDATE_PORTABLE) /* -DVALIDATE_PORTABLE: test the portable path on x86 */
#define VALIDATE_X86 1
#include <immintrin.h>

/* The quote bits of p[0..64), and in *bad the barring bytes' bits. */
static inline __attribute__((always_inline)) uint64_t
validate_block_sse2(const unsigned char *p, uint64_t *bad)
{
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(' ');
    uint64_t q = 0;
    __m128i b = _mm_setzero_si128();

    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        q |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) << (16 * k);
        /* signed: below 0x20 or above 0x7f */
        b = _mm_or_si128(b, _mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmplt_epi8(v, space)));
    }
    *bad = (uint64_t)(unsigned)_mm_movemask_epi8(b);
    return q;
}

__attribute__((target("avx2"))) static inline uint64_t
validate_block_avx2(const unsigned char *p, uint64_t *bad)
{
    const __m256i quote = _mm256_set1_epi8('"');
    const __m256i backslash = _mm256_set1_epi8('\\');
    const __m256i space = _mm256_set1_epi8(' ');
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    uint64_t q = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, quote)) |
                 (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, quote)) << 32;
    __m256i b = _mm256_or_si256(
        _mm256_or_si256(_mm256_cmpeq_epi8(lo, backslash), _mm256_cmpgt_epi8(space, lo)),
        _mm256_or_si256(_mm256_cmpeq_epi8(hi, backslash), _mm256_cmpgt_epi8(space, hi)));
    *bad = (uint64_t)(uint32_t)_mm256_movemask_epi8(b);
    return q;
}

/*
 * validate_block_sse2() for a line of len < 64 bytes: 16 at a time, the last
 * part the line's last 16 bytes shifted like the last part block; a line
 * under 16 bytes is padded with spaces (neither quotes nor barring bytes).
 * Copying every short line into a padded block instead cost ~10 ns per
 * 63-byte line (the 16-byte loads then wait on the copy's narrow stores).
 */
static inline __attribute__((always_inline)) uint64_t
validate_short(const unsigned char *p, size_t len, uint64_t *bad)
{
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(' ');
    unsigned char pad[16];
    uint64_t q = 0;
    __m128i b = _mm_setzero_si128();
    size_t j = 0;

    if (len < 16) {
        memset(pad, ' ', sizeof(pad));
        memcpy(pad, p, len);
        p = pad;
        len = 16;
    }
    for (;;) {
        size_t at = len - j >= 16 ? j : len - 16;
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + at));
        uint64_t m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote));
        b = _mm_or_si128(b, _mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmplt_epi8(v, space)));
        q |= m >> (j - at) << j;
        j += 16;
        if (j >= len) {
            break;
        }
    }
    *bad = (uint64_t)(unsigned)_mm_movemask_epi8(b);
    return q;
}
#else
/* Portable: one byte at a time. */
static inline uint64_t
validate_block_bytes(const unsigned char *p, uint64_t *bad)
{
    uint64_t q = 0;
    uint64_t b = 0;
    for (unsigned k = 0; k < 64; k++) {
        q |= (uint64_t)(p[k] == '"') << k;
        b |= (uint64_t)(!validate_plain[p[k]] && p[k] != '"') << k;
    }
    *bad = b;
    return q;
}

/* The same for a line of len < 64 bytes. */
static inline uint64_t
validate_short(const unsigned char *p, size_t len, uint64_t *bad)
{
    uint64_t q = 0;
    uint64_t b = 0;
    for (size_t k = 0; k < len; k++) {
        q |= (uint64_t)(p[k] == '"') << k;
        b |= (uint64_t)(!validate_plain[p[k]] && p[k] != '"') << k;
    }
    *bad = b;
    return q;
}
#endif

/*
 * Builds the quote bitmap of p[0..len) (len <= VALIDATE_INDEX_MAX) with
 * block() and returns true, or returns false as soon as a block holds a
 * barring byte.  The last part block of a line of 64 bytes or more is the
 * line's last 64 bytes, its quote bits shifted down past those seen
 * already; a shorter line is validate_short()'s.
 */
static inline __attribute__((always_inline)) bool
validate_index_build_with(struct validate_index *ix, const unsigned char *p, size_t len,
                          uint64_t (*block)(const unsigned char *, uint64_t *))
{
    size_t i = 0;
    uint64_t bad;
    uint64_t q;

    ix->base = p;
    for (; len - i >= 64; i += 64) {
        q = block(p + i, &bad);
        if (bad != 0) {
            return false; /* at once: such a line pays little for the try */
        }
        ix->quotes[i / 64] = q;
    }
    if (i == len) {
        return true;
    }
    if (len >= 64) {
        q = block(p + len - 64, &bad) >> (64 - (len - i));
    } else {
        q = validate_short(p, len, &bad);
    }
    if (bad != 0) {
        return false;
    }
    ix->quotes[i / 64] = q;
    return true;
}

#if defined(VALIDATE_X86)
static bool
validate_index_build_sse2(struct validate_index *ix, const unsigned char *p, size_t len)
{
    return validate_index_build_with(ix, p, len, validate_block_sse2);
}

__attribute__((target("avx2"))) static bool
validate_index_build_avx2(struct validate_index *ix, const unsigned char *p, size_t len)
{
    return validate_index_build_with(ix, p, len, validate_block_avx2);
}

/* VALIDATE_ISA: the CPU's best, set once before main() (sl_validate_set_isa for tests). */
static enum sl_validate_isa validate_isa = SL_VALIDATE_ISA_SSE2;

__attribute__((constructor)) static void
validate_isa_init(void)
{
    __builtin_cpu_init();
    validate_isa = __builtin_cpu_supports("avx2") ? SL_VALIDATE_ISA_AVX2 : SL_VALIDATE_ISA_SSE2;
}

static bool
validate_index_build(struct validate_index *ix, const unsigned char *p, size_t len)
{
    if (validate_isa == SL_VALIDATE_ISA_AVX2 && len >= 64) { /* shorter: SSE2's 16-byte parts */
        return validate_index_build_avx2(ix, p, len);
    }
    return validate_index_build_sse2(ix, p, len);
}

enum sl_validate_isa
sl_validate_set_isa(enum sl_validate_isa isa)
{
    enum sl_validate_isa old = validate_isa;
    if (isa == SL_VALIDATE_ISA_BEST) {
        validate_isa_init();
    } else if (isa == SL_VALIDATE_ISA_SSE2 ||
               (isa == SL_VALIDATE_ISA_AVX2 && __builtin_cpu_supports("avx2"))) {
        validate_isa = isa;
    }
    return old;
}

enum sl_validate_isa
sl_validate_get_isa(void)
{
    return validate_isa;
}
#endif

#if defined(__SSE2__)
/*
 * THE LONG RUN (long strings outside the quote index: lines over
 * VALIDATE_INDEX_MAX, or with a byte that bars the index).  The 16-byte
 * loop of validate_plain_run() tests and branches once per 16 bytes; after
 * its first 64 plain bytes of a run, with 128 bytes or more of the line
 * left, 64 bytes are or-ed into one test, 2 x 32 with AVX2 where the CPU
 * has it.  Returns the start of the first 64-byte block that holds a
 * byte that is not plain, or a point less than 64 bytes before end: the
 * 16-byte loop then finds the byte.  "Plain" in one xor and one signed
 * compare: x ^ 2 < 0x21 holds for the control bytes, for '"' (0x22 ^ 2 is
 * 0x20) and for bytes above 0x7f (negative), and for nothing else.
 * Measured (bench/results/analysis.md, "THE LONG RUN"): at 16 KiB events
 * the validator's share of sluiced's CPU 12-13 % -> 5-6 %.
 */
static inline __attribute__((always_inline)) __m128i
validate_special16(__m128i v)
{
    return _mm_or_si128(_mm_cmplt_epi8(_mm_xor_si128(v, _mm_set1_epi8(2)), _mm_set1_epi8(0x21)),
                        _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

static const unsigned char *
validate_plain_long_sse2(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 64) {
        __m128i m = _mm_or_si128(
            _mm_or_si128(validate_special16(_mm_loadu_si128((const __m128i *)(const void *)p)),
                         validate_special16(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)))),
            _mm_or_si128(validate_special16(_mm_loadu_si128((const __m128i *)(const void *)(p + 32))),
                         validate_special16(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)))));

        if (_mm_movemask_epi8(m) != 0) {
            break;
        }
        p += 64;
    }
    return p;
}

#if defined(VALIDATE_X86)
__attribute__((target("avx2"))) static inline __m256i
validate_special32(__m256i v)
{
    return _mm256_or_si256(
        _mm256_cmpgt_epi8(_mm256_set1_epi8(0x21), _mm256_xor_si256(v, _mm256_set1_epi8(2))),
        _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\')));
}

__attribute__((target("avx2"))) static const unsigned char *
validate_plain_long_avx2(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 64) {
        __m256i m = _mm256_or_si256(
            validate_special32(_mm256_loadu_si256((const __m256i *)(const void *)p)),
            validate_special32(_mm256_loadu_si256((const __m256i *)(const void *)(p + 32))));

        if (!_mm256_testz_si256(m, m)) {
            break;
        }
        p += 64;
    }
    return p;
}
#endif

static const unsigned char *
validate_plain_long(const unsigned char *p, const unsigned char *end)
{
#if defined(VALIDATE_X86)
    if (validate_isa == SL_VALIDATE_ISA_AVX2) {
        return validate_plain_long_avx2(p, end);
    }
#endif
    return validate_plain_long_sse2(p, end);
}
#endif

#if !defined(VALIDATE_X86)
static bool
validate_index_build(struct validate_index *ix, const unsigned char *p, size_t len)
{
    return validate_index_build_with(ix, p, len, validate_block_bytes);
}

enum sl_validate_isa
sl_validate_set_isa(enum sl_validate_isa isa)
{
    (void)isa;
    return SL_VALIDATE_ISA_PORTABLE;
}

enum sl_validate_isa
sl_validate_get_isa(void)
{
    return SL_VALIDATE_ISA_PORTABLE;
}
#endif

/* The byte after the first quote at or after p (p < end), or NULL. */
static inline __attribute__((always_inline)) const unsigned char *
validate_index_string(const struct validate_index *ix, const unsigned char *p,
                      const unsigned char *end)
{
    size_t i = (size_t)(p - ix->base);
    size_t last = (size_t)(end - ix->base - 1) / 64;
    size_t w = i / 64;
    uint64_t bits = ix->quotes[w] >> (i % 64);

    if (bits != 0) {
        return p + __builtin_ctzll(bits) + 1;
    }
    while (++w <= last) {
        if (ix->quotes[w] != 0) {
            return ix->base + w * 64 + (size_t)__builtin_ctzll(ix->quotes[w]) + 1;
        }
    }
    return NULL;
}

/*
 * THE QUOTE CURSOR.  In a line the index takes (no backslash), strings are
 * the quotes taken in pairs, in order: every quote the validator meets
 * between tokens opens a string, and the next quote closes it.  So the
 * cursor hands out the index's quotes one after the other from a word held
 * in a register (count trailing zeros, clear the lowest bit), and a
 * string's end does not wait on its start: the lookup by position it
 * replaces (validate_index_string) shifted the word loaded at the string's
 * offset, a chain of ~10 cycles per string through the load.  Should the
 * quote handed out not be the one at p (it always is, for the reason
 * above), the lookup by position answers and the cursor moves past it.
 * Measured: bench/results/analysis.md (2026-12-06, "SIMD index build").
 */
struct validate_cursor {
    uint64_t bits; /* quotes[word] less those handed out */
    size_t word;
};

/* The offset of the next quote, or SIZE_MAX. */
static inline __attribute__((always_inline)) size_t
validate_cursor_next(const struct validate_index *ix, struct validate_cursor *c, size_t nwords)
{
    while (c->bits == 0) {
        if (++c->word >= nwords) {
            return SIZE_MAX;
        }
        c->bits = ix->quotes[c->word];
    }
    size_t at = c->word * 64 + (size_t)__builtin_ctzll(c->bits);
    c->bits &= c->bits - 1;
    return at;
}

/* p at an opening quote (p + 1 < end): the byte after its closing quote, or NULL. */
static inline __attribute__((always_inline)) const unsigned char *
validate_cursor_string(const struct validate_index *ix, struct validate_cursor *c,
                       const unsigned char *p, const unsigned char *end)
{
    size_t nwords = (size_t)(end - ix->base + 63) / 64;
    size_t open = validate_cursor_next(ix, c, nwords);
    size_t close = validate_cursor_next(ix, c, nwords);

    if (__builtin_expect(ix->base + open == p, 1)) {
        return close == SIZE_MAX ? NULL : ix->base + close + 1;
    }
    p = validate_index_string(ix, p + 1, end);
    if (p != NULL) {
        size_t at = (size_t)(p - ix->base) - 1; /* the closing quote */
        c->word = at / 64;
        c->bits = ix->quotes[c->word] & ~((UINT64_C(2) << (at % 64)) - 1);
    }
    return p;
}

/*
 * The validator proper; ix NULL: strings are scanned byte by byte
 * (validate_string), otherwise skipped with the quote index.  Inlined
 * into each of the two callers below so each path is compiled on its own.
 */
static inline __attribute__((always_inline)) enum sl_validate_result
validate_body(const char *buf, size_t len, bool *empty, const struct validate_index *ix)
{
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *end = p + len;
    uint64_t stack[VALIDATE_STACK_WORDS]; /* bit i: container i+1 is an object */
    size_t depth = 0;
    bool in_object = false;
    bool root_object = false;
    bool root_empty = false;
    enum sl_validate_result r = SL_INVALID_SYNTAX;
    struct validate_cursor cur = {ix != NULL && len > 0 ? ix->quotes[0] : 0, 0};

    if (empty != NULL) {
        *empty = false;
    }
    if (len == 0) {
        return SL_INVALID_SYNTAX;
    }

value:
    /* Whitespace is rare in events: it costs a test only where it occurs. */
    if (p == end) {
        return SL_INVALID_SYNTAX;
    }
    if (depth >= SL_VALIDATE_MAX_DEPTH) {
        return SL_INVALID_DEPTH;
    }
    /* Strings and numbers first, by tests, not a switch: a switch compiles to
     * a jump table, an indirect branch the predictor misses about once per
     * value in an event (~15 % of the validator's samples at 230 bytes). */
    if (*p == '"') {
        if (ix != NULL) {
            p = p + 1 < end ? validate_cursor_string(ix, &cur, p, end) : NULL;
            r = SL_INVALID_SYNTAX;
        } else {
            p = validate_string(p + 1, end, &r);
        }
        if (p == NULL) {
            return r;
        }
        goto after_value;
    }
    if (validate_is_digit(*p) || *p == '-') {
        /* THE SHORT-INTEGER FAST PATH: a non-negative integer not starting
         * with '0', of at most 18 digits or of 19 starting below '9'
         * (< 9e18 < 2^63: a nanosecond timestamp), always fits and needs
         * none of validate_number()'s bookkeeping; anything else (sign,
         * leading zero, fraction, exponent, longer) takes validate_number.
         * What it buys, once strings no longer dominate (THE QUOTE CURSOR):
         * 0.90-0.93x the validator's time on bench/loadgen events of 64 and
         * 230 bytes (two numbers each, one a 19-digit sent_ns), 0.94x at
         * 1 KiB (bench/results/analysis.md, 2026-12-06, "SIMD index build");
         * before the cursor it did not show. */
        if (*p != '-' && *p != '0') {
            const unsigned char *q = validate_digits(p + 1, end);
            if ((q - p <= 18 || (q - p == 19 && *p < '9')) &&
                (q == end || (*q != '.' && (*q | 0x20) != 'e'))) {
                p = q;
                goto after_value;
            }
        }
        p = validate_number(p, end, &r);
        if (p == NULL) {
            return r;
        }
        goto after_value;
    }
    switch (*p) {
    case '{':
    case '[': {
        uint64_t bit = UINT64_C(1) << (depth & 63);

        in_object = *p == '{';
        if (depth == 0) {
            root_object = in_object;
        }
        /* A word is written whole when first used, so it needs no zeroing. */
        if ((depth & 63) == 0) {
            stack[depth >> 6] = in_object ? bit : 0;
        } else if (in_object) {
            stack[depth >> 6] |= bit;
        } else {
            stack[depth >> 6] &= ~bit;
        }
        depth++;
        p = validate_skip_ws(p + 1, end);
        if (p < end && *p == (in_object ? '}' : ']')) {
            p++;
            if (depth == 1) {
                root_empty = true;
            }
            goto pop;
        }
        if (in_object) {
            goto key;
        }
        goto value;
    }
    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) {
            return SL_INVALID_SYNTAX;
        }
        p += 4;
        goto after_value;
    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) {
            return SL_INVALID_SYNTAX;
        }
        p += 5;
        goto after_value;
    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) {
            return SL_INVALID_SYNTAX;
        }
        p += 4;
        goto after_value;
    case ' ':
    case '\t':
    case '\n':
    case '\r':
        p++;
        goto value;
    default:
        return SL_INVALID_SYNTAX;
    }

key:
    if (p == end) {
        return SL_INVALID_SYNTAX;
    }
    if (*p != '"') {
        if (validate_is_ws(*p)) {
            p++;
            goto key;
        }
        return SL_INVALID_SYNTAX;
    }
    if (ix != NULL) {
        p = p + 1 < end ? validate_cursor_string(ix, &cur, p, end) : NULL;
        r = SL_INVALID_SYNTAX;
    } else {
        p = validate_string(p + 1, end, &r);
    }
    if (p == NULL) {
        return r;
    }
    if (p == end || *p != ':') {
        p = validate_skip_ws(p, end);
        if (p == end || *p != ':') {
            return SL_INVALID_SYNTAX;
        }
    }
    p++;
    goto value;

after_value:
    if (depth == 0) {
        goto done;
    }
    if (p == end) {
        return SL_INVALID_SYNTAX;
    }
    if (*p == ',') {
        p++;
        if (in_object) {
            goto key;
        }
        goto value;
    }
    if (*p != (in_object ? '}' : ']')) {
        if (validate_is_ws(*p)) {
            p = validate_skip_ws(p + 1, end);
            goto after_value;
        }
        return SL_INVALID_SYNTAX;
    }
    p++;
pop:
    depth--;
    if (depth > 0) {
        in_object = (stack[(depth - 1) >> 6] >> ((depth - 1) & 63)) & 1;
    }
    goto after_value;

done:
    p = validate_skip_ws(p, end);
    if (p != end) {
        return SL_INVALID_SYNTAX;
    }
    if (!root_object) {
        return SL_INVALID_NOT_OBJECT;
    }
    if (empty != NULL) {
        *empty = root_empty;
    }
    return SL_VALID;
}

static enum sl_validate_result
validate_scalar(const char *buf, size_t len, bool *empty)
{
    return validate_body(buf, len, empty, NULL);
}

enum sl_validate_result
sl_validate_object(const char *buf, size_t len, bool *empty)
{
    struct validate_index ix;

    if (len <= VALIDATE_INDEX_MAX && validate_index_build(&ix, (const unsigned char *)buf, len)) {
        return validate_body(buf, len, empty, &ix);
    }
    return validate_scalar(buf, len, empty);
}

enum sl_validate_result
sl_validate_object_indexed(const char *buf, size_t len, bool *empty, uint64_t quotes, uint64_t bad)
{
    struct validate_index ix;

    if (len >= 64) {
        return sl_validate_object(buf, len, empty);
    }
    if (bad != 0) {
        return validate_scalar(buf, len, empty); /* as validate_index_build() refusing */
    }
    ix.base = (const unsigned char *)buf;
    ix.quotes[0] = quotes;
    return validate_body(buf, len, empty, &ix);
}

enum sl_validate_result
sl_validate_object_bytewise(const char *buf, size_t len, bool *empty)
{
    return validate_scalar(buf, len, empty);
}

const char *
sl_validate_reason(enum sl_validate_result r)
{
    switch (r) {
    case SL_VALID:
        return "valid";
    case SL_INVALID_SYNTAX:
        return "syntax error";
    case SL_INVALID_NOT_OBJECT:
        return "not an object";
    case SL_INVALID_UTF8:
        return "invalid UTF-8 or \\u escape";
    case SL_INVALID_DEPTH:
        return "nested too deeply";
    case SL_INVALID_NUMBER:
        return "number out of range";
    }
    return "unknown";
}
