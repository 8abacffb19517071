/*
 * Unit tests for validate: sl_validate_object() must give jansson's verdict,
 * except on the one documented difference.
 *
 * The oracle is json_loadb(buf, len, 0, &err) succeeding with an object root
 * and the input holding no NUL byte.  jansson loses one NUL byte pushed back
 * after a number or literal and so accepts {"a":1\0}, which is not JSON (RFC
 * 8259 has no place for a NUL outside a string, and a raw one inside is a
 * control character); the validator refuses every input with a NUL.  To keep
 * that difference exactly this quirk, an input with NULs that jansson accepts
 * must be accepted by both once its NULs are deleted.
 *
 * Inputs come from the corpus in tests/data/json/{valid,invalid}/ (one raw
 * input per file; adding a case is adding a file), found through $SLUICE_TOP
 * (the repository root, default "."), from generated boundary cases (depth,
 * number range) and from a seeded mutation run over the corpus.  Every input
 * is passed in a heap buffer of exactly its length, so AddressSanitizer sees
 * any read past the end.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/validate.h"

#define CORPUS_MAX_FILES 1024
#define MUTATION_ROUNDS 200000
#define MUTATION_MAX_LEN 4096

struct corpus_file {
    char *name;
    char *data;
    size_t len;
};

struct corpus {
    struct corpus_file files[CORPUS_MAX_FILES];
    size_t n;
};

static bool
jansson_accepts(const char *buf, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(buf, len, 0, &err);
    bool ok = root != NULL && json_is_object(root);

    json_decref(root);
    return ok;
}

/* Prints all of buf, with '\\' doubled and other non-printable bytes as \xHH. */
static void
print_escaped(FILE *f, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];

        if (c == '\\') {
            fputs("\\\\", f);
        } else if (c >= 0x20 && c < 0x7f) {
            fputc(c, f);
        } else {
            fprintf(f, "\\x%02x", c);
        }
    }
    fprintf(f, " (%zu bytes)", len);
}

/* The instruction sets the quote index can be built with (validate.h). */
static const enum sl_validate_isa test_isas[] = {SL_VALIDATE_ISA_PORTABLE, SL_VALIDATE_ISA_SSE2,
                                                 SL_VALIDATE_ISA_AVX2};
static const char *const test_isa_names[] = {"portable", "sse2", "avx2"};
static bool test_isa_available[3];

/* Which of test_isas this build and CPU have (setting one they lack is ignored). */
static void
test_isa_probe(void)
{
    for (size_t k = 0; k < sizeof(test_isas) / sizeof(test_isas[0]); k++) {
        sl_validate_set_isa(test_isas[k]);
        test_isa_available[k] = sl_validate_get_isa() == test_isas[k];
    }
    sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
}

/*
 * Validates a private, exactly sized copy of buf, by every path of the
 * validator (the quote index built with each instruction set the CPU has,
 * the index of a line under 64 bytes handed in by the caller as the
 * framing does, and the byte-by-byte scan, validate.c): they must agree on
 * the result and the empty flag, on every input of every test.
 */
static enum sl_validate_result
validate_copy(const char *buf, size_t len, bool *empty)
{
    char *copy = malloc(len > 0 ? len : 1);
    enum sl_validate_result r;
    enum sl_validate_result rb;
    bool e1 = false;
    bool e2 = false;

    ck_assert_ptr_nonnull(copy);
    if (len > 0) {
        memcpy(copy, buf, len);
    }
    rb = sl_validate_object_bytewise(copy, len, &e2);
    /* The quote index built with each instruction set this CPU has. */
    for (size_t k = 0; k < sizeof(test_isas) / sizeof(test_isas[0]); k++) {
        if (!test_isa_available[k]) {
            continue;
        }
        sl_validate_set_isa(test_isas[k]);
        r = sl_validate_object(copy, len, &e1);
        if (r != rb || e1 != e2) {
            fprintf(stderr, "indexed (%s) \"%s\" (empty %d), bytewise \"%s\" (empty %d) for: ",
                    test_isa_names[k], sl_validate_reason(r), e1, sl_validate_reason(rb), e2);
            print_escaped(stderr, copy, len);
            fputc('\n', stderr);
            sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
            ck_abort_msg("the validator's paths differ (input on stderr)");
        }
    }
    sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
    /* A short line with the index the framing hands over (framing.c, THE
     * LINE INDEX), as the test builds it byte by byte. */
    if (len < 64) {
        uint64_t quotes = 0;
        uint64_t bad = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)copy[i];
            quotes |= (uint64_t)(c == '"') << i;
            bad |= (uint64_t)(c == '\\' || c < 0x20 || c > 0x7f) << i;
        }
        r = sl_validate_object_indexed(copy, len, &e1, quotes, bad);
        if (r != rb || e1 != e2) {
            fprintf(stderr,
                    "indexed by the caller \"%s\" (empty %d), bytewise \"%s\" (empty %d) for: ",
                    sl_validate_reason(r), e1, sl_validate_reason(rb), e2);
            print_escaped(stderr, copy, len);
            fputc('\n', stderr);
            ck_abort_msg("the validator's paths differ (input on stderr)");
        }
    }
    r = sl_validate_object(copy, len, &e1);
    free(copy);
    if (empty != NULL) {
        *empty = e1;
    }
    return r;
}

/*
 * jansson accepted buf, which holds NUL bytes: the NULs must be the ones its
 * lexer loses, so without them the input is valid for both.
 */
static void
check_nul_quirk(const char *what, const char *buf, size_t len)
{
    char *stripped = malloc(len);
    size_t n = 0;

    ck_assert_ptr_nonnull(stripped);
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\0') {
            stripped[n++] = buf[i];
        }
    }
    if (validate_copy(stripped, n, NULL) != SL_VALID || !jansson_accepts(stripped, n)) {
        fprintf(stderr, "%s: jansson accepts, but not without its NUL bytes: ", what);
        print_escaped(stderr, buf, len);
        fputc('\n', stderr);
        ck_abort_msg("%s: jansson accepts a NUL byte other than the lost one", what);
    }
    free(stripped);
}

/* Asserts our verdict equals the oracle's (see the top comment); returns our result. */
static enum sl_validate_result
check_against_jansson(const char *what, const char *buf, size_t len)
{
    enum sl_validate_result r = validate_copy(buf, len, NULL);
    bool jansson = jansson_accepts(buf, len);
    bool nul = len > 0 && memchr(buf, '\0', len) != NULL;
    bool want = jansson && !nul;

    if ((r == SL_VALID) != want) {
        fprintf(stderr, "%s: validate says \"%s\", jansson says %s%s for: ", what,
                sl_validate_reason(r), jansson ? "valid" : "invalid",
                nul ? " (input has a NUL byte)" : "");
        print_escaped(stderr, buf, len);
        fputc('\n', stderr);
        ck_abort_msg("%s: verdict differs from jansson (input on stderr)", what);
    }
    if (jansson && nul) {
        check_nul_quirk(what, buf, len);
    }
    return r;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto err;
    }
    buf = malloc((size_t)size > 0 ? (size_t)size : 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        goto err;
    }
    fclose(f);
    *len = (size_t)size;
    return buf;

err:
    free(buf);
    fclose(f);
    return NULL;
}

static const char *
corpus_top(void)
{
    const char *top = getenv("SLUICE_TOP");

    return top != NULL && *top != '\0' ? top : ".";
}

static int
corpus_file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct corpus_file *)a)->name, ((const struct corpus_file *)b)->name);
}

/*
 * Appends every *.json in tests/data/json/<sub> to c, then sorts c by path so
 * that seeded runs do not depend on directory order.
 */
static void
corpus_load_dir(struct corpus *c, const char *sub)
{
    char dir[4096];
    char path[8192];
    DIR *d;
    struct dirent *de;

    snprintf(dir, sizeof(dir), "%s/tests/data/json/%s", corpus_top(), sub);
    d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open corpus %s: %s (set SLUICE_TOP)", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t nlen = strlen(de->d_name);
        struct corpus_file *cf;

        if (nlen < 6 || strcmp(de->d_name + nlen - 5, ".json") != 0) {
            continue;
        }
        ck_assert_uint_lt(c->n, CORPUS_MAX_FILES);
        cf = &c->files[c->n];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        cf->data = read_file(path, &cf->len);
        ck_assert_msg(cf->data != NULL, "cannot read %s", path);
        cf->name = strdup(path);
        ck_assert_ptr_nonnull(cf->name);
        c->n++;
    }
    closedir(d);
    qsort(c->files, c->n, sizeof(c->files[0]), corpus_file_cmp);
}

static void
corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->files[i].name);
        free(c->files[i].data);
    }
    c->n = 0;
}

/* Every file of one corpus directory: same verdict as jansson and as the directory. */
static void
check_corpus_dir(const char *sub, bool want_valid)
{
    static struct corpus c;

    corpus_load_dir(&c, sub);
    ck_assert_msg(c.n >= 40, "only %zu files in corpus %s", c.n, sub);
    for (size_t i = 0; i < c.n; i++) {
        struct corpus_file *cf = &c.files[i];
        enum sl_validate_result r = check_against_jansson(cf->name, cf->data, cf->len);

        ck_assert_msg((r == SL_VALID) == want_valid, "%s: in %s/ but validate says \"%s\"",
                      cf->name, sub, sl_validate_reason(r));
    }
    corpus_free(&c);
}

START_TEST(test_validate_corpus_valid)
{
    check_corpus_dir("valid", true);
}
END_TEST

START_TEST(test_validate_corpus_invalid)
{
    check_corpus_dir("invalid", false);
}
END_TEST

/* Builds open^n + inner + close^n in a fresh heap buffer. */
static char *
build_nested(const char *open, const char *inner, const char *close, size_t n, size_t *len)
{
    size_t lo = strlen(open);
    size_t li = strlen(inner);
    size_t lc = strlen(close);
    char *buf = malloc(n * (lo + lc) + li + 1);
    char *p = buf;

    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, open, lo);
        p += lo;
    }
    memcpy(p, inner, li);
    p += li;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, close, lc);
        p += lc;
    }
    *len = (size_t)(p - buf);
    return buf;
}

/*
 * Depth counts values, scalars included, with the root at 1: a value at depth
 * 2049 fails.  Each case: n wrappers around inner under an object root.
 */
START_TEST(test_validate_depth_limit)
{
    static const struct {
        const char *open;
        const char *inner;
        const char *close;
        size_t n;
        enum sl_validate_result want;
    } cases[] = {
        /* {"a":[ ... ]} : root object + n arrays. */
        {"[", "", "]", 2047, SL_VALID},
        {"[", "", "]", 2048, SL_INVALID_DEPTH},
        {"[", "1", "]", 2046, SL_VALID},
        {"[", "1", "]", 2047, SL_INVALID_DEPTH},
        {"[", "\"s\"", "]", 2047, SL_INVALID_DEPTH},
        {"[", "{}", "]", 2046, SL_VALID},
        {"[", "{}", "]", 2047, SL_INVALID_DEPTH},
        {"{\"k\":", "{}", "}", 2046, SL_VALID},
        {"{\"k\":", "{}", "}", 2047, SL_INVALID_DEPTH},
        {"{\"k\":", "null", "}", 2046, SL_VALID},
        {"{\"k\":", "null", "}", 2047, SL_INVALID_DEPTH},
        {"[1,{\"k\":", "[]", "}]", 1023, SL_VALID},
        {"[1,{\"k\":", "[]", "}]", 1024, SL_INVALID_DEPTH},
        {"[", "", "]", 100000, SL_INVALID_DEPTH},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *inner = build_nested(cases[i].open, cases[i].inner, cases[i].close, cases[i].n, &len);
        char *buf = malloc(len + 7);
        char what[64];
        enum sl_validate_result r;

        ck_assert_ptr_nonnull(buf);
        memcpy(buf, "{\"a\":", 5);
        memcpy(buf + 5, inner, len);
        buf[5 + len] = '}';
        snprintf(what, sizeof(what), "depth case %zu", i);
        r = check_against_jansson(what, buf, len + 6);
        ck_assert_msg(r == cases[i].want, "%s: got \"%s\"", what, sl_validate_reason(r));
        free(buf);
        free(inner);
    }
}
END_TEST

/* The root array counts too: 2048 nested empty arrays are valid JSON, 2049 are not. */
START_TEST(test_validate_depth_array_root)
{
    size_t len;
    char *buf;

    buf = build_nested("[", "", "]", 2048, &len);
    ck_assert_int_eq(check_against_jansson("2048 arrays", buf, len), SL_INVALID_NOT_OBJECT);
    free(buf);
    buf = build_nested("[", "", "]", 2049, &len);
    ck_assert_int_eq(check_against_jansson("2049 arrays", buf, len), SL_INVALID_DEPTH);
    free(buf);
    buf = build_nested("{\"a\":", "{}", "}", 2047, &len);
    ck_assert_int_eq(check_against_jansson("2048 objects", buf, len), SL_VALID);
    free(buf);
    buf = build_nested("{\"a\":", "{}", "}", 2048, &len);
    ck_assert_int_eq(check_against_jansson("2049 objects", buf, len), SL_INVALID_DEPTH);
    free(buf);
}
END_TEST

/* Object and array kinds survive crossing the 64-bit words of the depth stack. */
START_TEST(test_validate_depth_kinds_alternate)
{
    char buf[8192];
    size_t n = 0;
    int levels = 300;

    for (int i = 0; i < levels; i++) {
        const char *open = i % 3 == 0 ? "{\"k\":" : "[0,";

        memcpy(buf + n, open, strlen(open));
        n += strlen(open);
    }
    buf[n++] = '1';
    for (int i = levels - 1; i >= 0; i--) {
        buf[n++] = i % 3 == 0 ? '}' : ']';
    }
    ck_assert_int_eq(check_against_jansson("alternating kinds", buf, n), SL_VALID);
    /* The wrong closer at each level must be caught. */
    for (size_t i = n - (size_t)levels; i < n; i++) {
        char saved = buf[i];

        buf[i] = saved == '}' ? ']' : '}';
        ck_assert_int_eq(check_against_jansson("alternating kinds, bad closer", buf, n),
                         SL_INVALID_SYNTAX);
        buf[i] = saved;
    }
}
END_TEST

struct reason_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    enum sl_validate_result want;
};

static void
check_reasons(const struct reason_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].in);
        enum sl_validate_result r = check_against_jansson(cases[i].in, cases[i].in, len);

        ck_assert_msg(r == cases[i].want, "case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].in,
                      sl_validate_reason(r), sl_validate_reason(cases[i].want));
    }
}

START_TEST(test_validate_number_range)
{
    static const struct reason_case cases[] = {
        {"{\"a\":9223372036854775807}", 0, SL_VALID},
        {"{\"a\":9223372036854775808}", 0, SL_INVALID_NUMBER},
        {"{\"a\":-9223372036854775808}", 0, SL_VALID},
        {"{\"a\":-9223372036854775809}", 0, SL_INVALID_NUMBER},
        {"{\"a\":1000000000000000000}", 0, SL_VALID},
        {"{\"a\":10000000000000000000}", 0, SL_INVALID_NUMBER},
        {"{\"a\":9223372036854775808.0}", 0, SL_VALID},
        {"{\"a\":1e308}", 0, SL_VALID},
        {"{\"a\":1e309}", 0, SL_INVALID_NUMBER},
        {"{\"a\":-1e309}", 0, SL_INVALID_NUMBER},
        {"{\"a\":10e307}", 0, SL_VALID},
        {"{\"a\":100e307}", 0, SL_INVALID_NUMBER},
        {"{\"a\":0.1e309}", 0, SL_VALID},
        {"{\"a\":0.01e310}", 0, SL_VALID},
        {"{\"a\":0.001e312}", 0, SL_INVALID_NUMBER},
        {"{\"a\":1.7976931348623157e308}", 0, SL_VALID},
        {"{\"a\":1.7976931348623158e308}", 0, SL_VALID},
        {"{\"a\":1.79769313486231580793728971405303415079934e308}", 0, SL_VALID},
        {"{\"a\":1.79769313486231580793728971405303415079935e308}", 0, SL_INVALID_NUMBER},
        {"{\"a\":1.7976931348623159e308}", 0, SL_INVALID_NUMBER},
        {"{\"a\":1e-400}", 0, SL_VALID},
        {"{\"a\":-1e-400}", 0, SL_VALID},
        {"{\"a\":1e-9223372036854775808}", 0, SL_VALID},
        {"{\"a\":1e9223372036854775808}", 0, SL_INVALID_NUMBER},
        {"{\"a\":0e9223372036854775808}", 0, SL_VALID},
        {"{\"a\":0.0000e400}", 0, SL_VALID},
        {"{\"a\":01}", 0, SL_INVALID_SYNTAX},
        {"{\"a\":1.}", 0, SL_INVALID_SYNTAX},
        {"{\"a\":1e}", 0, SL_INVALID_SYNTAX},
        {"{\"a\":-}", 0, SL_INVALID_SYNTAX},
    };

    check_reasons(cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

/*
 * Runs of 1..40 digits (validate_digits: 16 at a time, then 8, then one by
 * one) ended by each kind of byte, with the number's end at every distance
 * from the end of the input (the 16- and 8-byte steps need that many bytes
 * left), against jansson: the count and range rules ride on where the run
 * ends.
 */
START_TEST(test_validate_digit_runs)
{
    static const char ends[] = {',', '}', ']', '.', 'e', 'E', ' ', '/', ':', '0' - 1, '9' + 1,
                                '\x80', '\xb9', '\xff', '\0', '\n', 'x', '-', '+'};
    char buf[128];
    size_t checked = 0;

    for (size_t d = 1; d <= 40; d++) {
        for (size_t e = 0; e < sizeof(ends) + 1; e++) {
            for (size_t pad = 0; pad <= 20; pad++) {
                for (int lead = 0; lead < 3; lead++) {
                    size_t n = (size_t)snprintf(buf, sizeof(buf), "{\"a\":[");
                    buf[n++] = lead == 0 ? '1' : lead == 1 ? '9' : '8';
                    for (size_t i = 1; i < d; i++) {
                        buf[n++] = (char)('0' + (i * 7 + d) % 10);
                    }
                    if (e < sizeof(ends)) {
                        buf[n++] = ends[e];
                    }
                    buf[n++] = ']';
                    buf[n++] = '}';
                    memset(buf + n, ' ', pad);
                    n += pad;
                    check_against_jansson("digit run", buf, n);
                    checked++;
                }
            }
        }
    }
    ck_assert_uint_gt(checked, 40000);
}
END_TEST

/* xorshift64*: deterministic, seedable, good enough for test inputs. */
static uint64_t
test_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Random reals near the double range limits, against strtod via jansson. */
START_TEST(test_validate_number_differential)
{
    /* clang-format off */
    static const char *const mantissas[] = {
        "1", "17976931348623157", "17976931348623158", "179769313486231580793728971405303415",
        "17976931348623159", "9", "0", "00000", "5", "49", "2225073858507201"};
    /* clang-format on */
    uint64_t s = 0x5eed0001;
    char buf[256];

    for (int i = 0; i < 20000; i++) {
        const char *m = mantissas[test_rand(&s) % (sizeof(mantissas) / sizeof(mantissas[0]))];
        size_t ml = strlen(m);
        size_t dot = (size_t)(test_rand(&s) % (ml + 1));
        int exp = (int)(test_rand(&s) % 40) - 20;
        size_t n = 0;

        exp += test_rand(&s) % 2 ? 308 - (int)dot : -324;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"a\":%s", test_rand(&s) % 2 ? "-" : "");
        if (dot == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "0.%s", m);
        } else if (m[0] == '0') {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "0.%s", m);
        } else {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%.*s.%s%s", (int)dot, m,
                                  dot == ml ? "0" : "", m + dot);
        }
        n +=
            (size_t)snprintf(buf + n, sizeof(buf) - n, "%c%d}", test_rand(&s) % 2 ? 'e' : 'E', exp);
        check_against_jansson("random real", buf, n);
    }
}
END_TEST

START_TEST(test_validate_string_reasons)
{
    static const struct reason_case cases[] = {
        {"{\"a\":\"\\u0000\"}", 0, SL_INVALID_UTF8},
        {"{\"\\u0000\":1}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\\ud800\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\\udc00\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\\ud800\\u0041\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\\ud800\\udc00\"}", 0, SL_VALID},
        {"{\"a\":\"\xc0\x80\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\xed\xa0\x80\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\xf4\x90\x80\x80\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\xe2\x82\"}", 0, SL_INVALID_UTF8},
        {"{\"a\":\"\x01\"}", 0, SL_INVALID_SYNTAX},
        {"{\"a\":\"\\q\"}", 0, SL_INVALID_SYNTAX},
        {"{\"a\":\"x\0\"}", 9, SL_INVALID_SYNTAX},
        {"{\"a\":\"x\"\0}", 9, SL_INVALID_SYNTAX},
        {"{\"a\":1\0\0}", 9, SL_INVALID_SYNTAX},
    };

    check_reasons(cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

/*
 * The documented difference from jansson: a NUL byte right after a number or
 * literal, which jansson's lexer loses, is a syntax error: the json codec
 * writes accepted lines verbatim, and these are not JSON.
 */
START_TEST(test_validate_nul_after_scalar)
{
    /* clang-format off */
#define NUL_CASE(lit) {(lit), sizeof(lit) - 1}
    static const struct {
        const char *in;
        size_t len;
    } cases[] = {
        NUL_CASE("{\"a\":1\0}"),
        NUL_CASE("{\"a\":-0\0}"),
        NUL_CASE("{\"a\":12.5e-3\0}"),
        NUL_CASE("{\"a\":true\0}"),
        NUL_CASE("{\"a\":false\0}"),
        NUL_CASE("{\"a\":null\0,\"b\":2}"),
        NUL_CASE("{\"a\":[1\0,2]}"),
        NUL_CASE("{\"a\":[null\0]}"),
        NUL_CASE("{\"a\":1\0 }"),
        NUL_CASE("{\"a\":{\"b\":true\0}}"),
    };
#undef NUL_CASE
    /* clang-format on */

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in;
        size_t len = cases[i].len;
        bool empty = true;

        /* The quirk this is about: jansson accepts the input... */
        ck_assert_msg(jansson_accepts(in, len), "case %zu: jansson refuses", i);
        /* ...we do not, and the oracle agrees. */
        ck_assert_int_eq(validate_copy(in, len, &empty), SL_INVALID_SYNTAX);
        ck_assert(!empty);
        ck_assert_int_eq(check_against_jansson("NUL after a scalar", in, len), SL_INVALID_SYNTAX);
    }
}
END_TEST

/* Every NUL byte in a valid event makes it invalid, wherever it is put. */
START_TEST(test_validate_nul_anywhere)
{
    static const char *const events[] = {
        "{\"a\":1,\"b\":[true,false,null,-1.5e3,\"x\"],\"c\":{\"d\":{}}}",
        " { \"k\" : [ 0 , { } ] } ",
        "{}",
    };
    char buf[128];

    for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); e++) {
        size_t len = strlen(events[e]);

        ck_assert_int_eq(validate_copy(events[e], len, NULL), SL_VALID);
        for (size_t pos = 0; pos <= len; pos++) {
            /* Inserted before byte pos, and in place of it. */
            memcpy(buf, events[e], pos);
            buf[pos] = '\0';
            memcpy(buf + pos + 1, events[e] + pos, len - pos);
            ck_assert_msg(check_against_jansson("NUL inserted", buf, len + 1) != SL_VALID,
                          "event %zu: NUL inserted at %zu accepted", e, pos);
            if (pos < len) {
                memcpy(buf, events[e], len);
                buf[pos] = '\0';
                ck_assert_msg(check_against_jansson("NUL replacing", buf, len) != SL_VALID,
                              "event %zu: NUL at %zu accepted", e, pos);
            }
        }
    }
}
END_TEST

START_TEST(test_validate_root_reasons)
{
    static const struct reason_case cases[] = {
        {"", 0, SL_INVALID_SYNTAX},
        {" \t\r\n", 0, SL_INVALID_SYNTAX},
        {"[]", 0, SL_INVALID_NOT_OBJECT},
        {"[1,{\"a\":2}]", 0, SL_INVALID_NOT_OBJECT},
        {"\"s\"", 0, SL_INVALID_NOT_OBJECT},
        {"12", 0, SL_INVALID_NOT_OBJECT},
        {"null", 0, SL_INVALID_NOT_OBJECT},
        {"[1,", 0, SL_INVALID_SYNTAX},
        {"{}", 0, SL_VALID},
        {"{} ", 0, SL_VALID},
        {"{}x", 0, SL_INVALID_SYNTAX},
        {"{}\x0b", 0, SL_INVALID_SYNTAX},
        {"{\"a\":1}{}", 0, SL_INVALID_SYNTAX},
    };

    check_reasons(cases, sizeof(cases) / sizeof(cases[0]));
}
END_TEST

START_TEST(test_validate_reason_text)
{
    static const enum sl_validate_result all[] = {
        SL_VALID,        SL_INVALID_SYNTAX, SL_INVALID_NOT_OBJECT,
        SL_INVALID_UTF8, SL_INVALID_DEPTH,  SL_INVALID_NUMBER,
    };

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const char *a = sl_validate_reason(all[i]);

        ck_assert_ptr_nonnull(a);
        ck_assert_uint_gt(strlen(a), 0);
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(a, sl_validate_reason(all[j]));
        }
    }
    ck_assert_str_eq(sl_validate_reason(SL_INVALID_NOT_OBJECT), "not an object");
    ck_assert_ptr_nonnull(sl_validate_reason((enum sl_validate_result)99));
}
END_TEST

START_TEST(test_validate_empty_flag)
{
    static const struct {
        const char *in;
        enum sl_validate_result want;
        bool empty;
    } cases[] = {
        {"{}", SL_VALID, true},
        {"{ }", SL_VALID, true},
        {" \n{\t\r\n }\n", SL_VALID, true},
        {"{\"a\":{}}", SL_VALID, false},
        {"{\"\":1}", SL_VALID, false},
        {"[]", SL_INVALID_NOT_OBJECT, false},
        {"{", SL_INVALID_SYNTAX, false},
        {"{}}", SL_INVALID_SYNTAX, false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool empty = !cases[i].empty;
        enum sl_validate_result r = validate_copy(cases[i].in, strlen(cases[i].in), &empty);

        ck_assert_msg(r == cases[i].want, "%s: got \"%s\"", cases[i].in, sl_validate_reason(r));
        ck_assert_msg(empty == cases[i].empty, "%s: empty is %d", cases[i].in, empty);
    }
    /* A NULL flag pointer is allowed. */
    ck_assert_int_eq(sl_validate_object("{}", 2, NULL), SL_VALID);
}
END_TEST

/*
 * One random edit of buf (len bytes, room for MUTATION_MAX_LEN): flip, set,
 * insert or delete a byte, or splice in a piece of another corpus input.
 * Inserted bytes favour the ones the grammar cares about.
 */
static size_t
mutate(char *buf, size_t len, const struct corpus *c, uint64_t *s)
{
    static const char interesting[] = "{}[]\",:\\u0123456789.eE+-tfnrl \t\r\n\0\x7f\x80\xbf\xc0"
                                      "\xc2\xdf\xe0\xed\xef\xf0\xf4\xf5\xff";
    uint64_t r = test_rand(s);
    size_t pos = len > 0 ? (size_t)(test_rand(s) % len) : 0;
    char byte = test_rand(s) % 2 ? interesting[test_rand(s) % (sizeof(interesting) - 1)]
                                 : (char)(test_rand(s) & 0xff);

    switch (r % 6) {
    case 0:
        if (len > 0) {
            buf[pos] ^= (char)(1u << (test_rand(s) % 8));
        }
        break;
    case 1:
        if (len > 0) {
            buf[pos] = byte;
        }
        break;
    case 2:
    case 3:
        if (len < MUTATION_MAX_LEN) {
            memmove(buf + pos + 1, buf + pos, len - pos);
            buf[pos] = byte;
            len++;
        }
        break;
    case 4:
        if (len > 0) {
            memmove(buf + pos, buf + pos + 1, len - pos - 1);
            len--;
        }
        break;
    default: {
        const struct corpus_file *o = &c->files[test_rand(s) % c->n];
        size_t from = o->len > 0 ? (size_t)(test_rand(s) % o->len) : 0;
        size_t n = o->len - from;

        n = n > 0 ? 1 + (size_t)(test_rand(s) % n) : 0;
        if (n > MUTATION_MAX_LEN - pos) {
            n = MUTATION_MAX_LEN - pos;
        }
        memcpy(buf + pos, o->data + from, n);
        if (pos + n > len) {
            len = pos + n;
        }
        break;
    }
    }
    return len;
}

START_TEST(test_validate_mutation_differential)
{
    static struct corpus c;
    static char buf[MUTATION_MAX_LEN];
    uint64_t s = 0x5eed5eed12345678ULL;
    size_t accepted = 0;

    corpus_load_dir(&c, "valid");
    corpus_load_dir(&c, "invalid");
    ck_assert_uint_gt(c.n, 0);
    for (int i = 0; i < MUTATION_ROUNDS; i++) {
        const struct corpus_file *cf = &c.files[test_rand(&s) % c.n];
        size_t len = cf->len < MUTATION_MAX_LEN ? cf->len : MUTATION_MAX_LEN;
        int edits = test_rand(&s) % 2 ? 1 : 2 + (int)(test_rand(&s) % 3);

        memcpy(buf, cf->data, len);
        for (int e = 0; e < edits; e++) {
            len = mutate(buf, len, &c, &s);
        }
        if (check_against_jansson("mutation", buf, len) == SL_VALID) {
            accepted++;
        }
    }
    /* The run must reach both verdicts to mean anything. */
    ck_assert_uint_gt(accepted, MUTATION_ROUNDS / 50);
    ck_assert_uint_lt(accepted, MUTATION_ROUNDS - MUTATION_ROUNDS / 50);
    corpus_free(&c);
}
END_TEST

/*
 * Random token sequences: reaches combinations of structure the corpus
 * mutations rarely build (empty containers after commas, NULs after scalars,
 * keys in arrays, ...).
 */
START_TEST(test_validate_token_differential)
{
    /* clang-format off */
    static const char *const tokens[] = {
        "{", "{", "}", "}", "[", "[", "]", "]", ",", ",", ":", ":", "\"k\"", "\"\"",
        "\"\\u00e9\\ud83d\\ude00\"", "\"\\ud800\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"\\n\"",
        "0", "-1", "12.5e-3", "1e400", "9223372036854775808", "-", "1.", "true", "false", "null",
        "nul", " ", "\t", "\r\n", "\f", "\0", "\0", "x", "\xc3\xa9", "\xff", "\"", "\\"};
    /* clang-format on */
    static char buf[1024];
    uint64_t s = 0x70c3e5;
    size_t accepted = 0;
    const int rounds = 100000;

    for (int i = 0; i < rounds; i++) {
        size_t n = 0;
        int count = 1 + (int)(test_rand(&s) % 24);

        if (test_rand(&s) % 4 != 0) {
            buf[n++] = '{';
        }
        for (int t = 0; t < count; t++) {
            const char *tok = tokens[test_rand(&s) % (sizeof(tokens) / sizeof(tokens[0]))];
            /* "\0" is a one-byte token: strlen() would see none. */
            size_t tl = tok[0] == '\0' ? 1 : strlen(tok);

            memcpy(buf + n, tok, tl);
            n += tl;
        }
        if (check_against_jansson("tokens", buf, n) == SL_VALID) {
            accepted++;
        }
    }
    ck_assert_uint_gt(accepted, rounds / 1000);
}
END_TEST

struct gen {
    char buf[8192];
    size_t n;
    bool full;
    uint64_t s;
};

static void
gen_put(struct gen *g, const char *p, size_t len)
{
    if (g->n + len > sizeof(g->buf)) {
        g->full = true;
        return;
    }
    memcpy(g->buf + g->n, p, len);
    g->n += len;
}

static void
gen_puts(struct gen *g, const char *p)
{
    gen_put(g, p, strlen(p));
}

static const char *
gen_pick(struct gen *g, const char *const *v, size_t n)
{
    return v[test_rand(&g->s) % n];
}

#define GEN_PICK(g, v) gen_pick((g), (v), sizeof(v) / sizeof((v)[0]))

static void
gen_ws(struct gen *g)
{
    static const char *const ws[] = {"", "", "", "", " ", "\t", "\n", "\r\n", "  ", "\f"};

    gen_puts(g, GEN_PICK(g, ws));
}

static void
gen_string(struct gen *g)
{
    /* clang-format off */
    static const char *const pieces[] = {
        "a", "msg", "hello world", "0123456789abcdef", "\\\"", "\\\\", "\\/", "\\b\\f\\n\\r\\t",
        "\\u00e9", "\\u00E9", "\\u20ac", "\\uFFFF", "\\ud83d\\ude00", "\\uDBFF\\uDFFF",
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xef\xbf\xbf", "\x7f",
        "\\u0000", "\\ud800", "\\udc00", "\\ud800\\u0041", "\xed\xa0\x80", "\xc0\xaf", "\xe2\x82",
        "\xff", "\x01", "\t", "\\x", "\\u12G4"};
    /* clang-format on */
    int count = (int)(test_rand(&g->s) % 4);

    gen_puts(g, "\"");
    for (int i = 0; i < count; i++) {
        /* The first 20 pieces are valid; pick those 7 times in 8. */
        size_t k = test_rand(&g->s) % 8 != 0
                       ? test_rand(&g->s) % 20
                       : test_rand(&g->s) % (sizeof(pieces) / sizeof(pieces[0]));

        gen_puts(g, pieces[k]);
    }
    gen_puts(g, "\"");
}

static void
gen_number(struct gen *g)
{
    /* clang-format off */
    static const char *const ints[] = {
        "0", "-0", "7", "-42", "1700000000123", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "-9223372036854775809", "99999999999999999999", "01", "-",
    };
    /* clang-format on */
    static const char *const fracs[] = {"", "", "", ".5", ".0", ".25", ".000001", ".", ".e1"};
    static const char *const exps[] = {
        "", "", "", "e0", "E+2", "e-5", "e308", "e309", "e-324", "e-400", "e400", "e", "e+",
    };

    gen_puts(g, GEN_PICK(g, ints));
    gen_puts(g, GEN_PICK(g, fracs));
    gen_puts(g, GEN_PICK(g, exps));
}

/* A random value, valid most of the time; depth bounded by the caller. */
static void
gen_value(struct gen *g, int depth, bool object_root)
{
    static const char *const literals[] = {"true", "false", "null", "nul", "True"};
    unsigned kind = object_root ? 0 : (unsigned)(test_rand(&g->s) % 10);

    if (depth > 0 && g->n < sizeof(g->buf) / 2 && kind < 5) {
        bool object = kind < 3;
        int members = (int)(test_rand(&g->s) % 4);

        gen_puts(g, object ? "{" : "[");
        gen_ws(g);
        for (int i = 0; i < members; i++) {
            if (i > 0) {
                gen_puts(g, ",");
                gen_ws(g);
            }
            if (object) {
                gen_string(g);
                gen_ws(g);
                gen_puts(g, ":");
                gen_ws(g);
            }
            gen_value(g, depth - 1, false);
            gen_ws(g);
        }
        gen_puts(g, object ? "}" : "]");
        return;
    }
    if (kind < 7) {
        gen_string(g);
    } else if (kind < 9) {
        gen_number(g);
    } else {
        gen_puts(g, GEN_PICK(g, literals));
    }
    if (test_rand(&g->s) % 16 == 0) {
        gen_put(g, "\0", 1);
    }
}

/* Generated documents, a third of them with one extra random byte edit. */
START_TEST(test_validate_generated_differential)
{
    static struct gen g;
    size_t accepted = 0;
    const int rounds = 100000;

    g.s = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < rounds; i++) {
        g.n = 0;
        g.full = false;
        gen_ws(&g);
        gen_value(&g, 1 + (int)(test_rand(&g.s) % 5), test_rand(&g.s) % 8 != 0);
        gen_ws(&g);
        if (g.full) {
            continue;
        }
        if (test_rand(&g.s) % 3 == 0 && g.n > 0) {
            size_t pos = (size_t)(test_rand(&g.s) % g.n);

            if (test_rand(&g.s) % 2 == 0) {
                g.buf[pos] = (char)test_rand(&g.s);
            } else {
                memmove(g.buf + pos, g.buf + pos + 1, g.n - pos - 1);
                g.n--;
            }
        }
        if (check_against_jansson("generated", g.buf, g.n) == SL_VALID) {
            accepted++;
        }
    }
    ck_assert_uint_gt(accepted, rounds / 10);
}
END_TEST

/*
 * The quote index (validate.c) works in 64-byte blocks (16-byte parts below
 * 64 bytes) and 64-bit words and gives way to the byte scan on any '\\',
 * control or non-ASCII byte: every such byte, and a quote, at every offset
 * of lines of every length around the part, block and word edges (and
 * around the index's 4 KiB limit), cut off at every length; every path
 * must agree (validate_copy: each instruction set and the byte scan), and
 * with jansson where it is asked (check_against_jansson).
 */
START_TEST(test_validate_paths_boundaries)
{
    static const char odd[] = {'\\', '\x01', '\x1f', '\x7f', '\x80', '\xc3', '\xff',
                               '\t',  '\n',   ' ',    '"',    '\0',   ':',    '}'};
    static char line[4200];
    static char buf[4200];
    size_t totals[240];
    size_t nt = 0;
    size_t accepted = 0;

    for (size_t t = 2; t <= 100; t++) {
        totals[nt++] = t;
    }
    for (size_t t = 120; t <= 136; t++) {
        totals[nt++] = t;
    }
    for (size_t t = 190; t <= 194; t++) {
        totals[nt++] = t;
    }
    for (size_t t = 254; t <= 258; t++) {
        totals[nt++] = t;
    }
    for (size_t t = 508; t <= 516; t++) {
        totals[nt++] = t;
    }
    for (size_t t = 4031; t <= 4033; t++) {
        totals[nt++] = t;
    }
    for (size_t t = 4094; t <= 4098; t++) {
        totals[nt++] = t;
    }
    for (size_t k = 0; k < nt; k++) {
        size_t total = totals[k];
        size_t n = 0;
        /* {"a":"b","cd":"efg",...} filled to total bytes exactly: quotes at
         * many offsets, the last string padded. */
        line[n++] = '{';
        for (unsigned m = 0; n + 12 < total; m++) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s\"%.*s\":\"%.*s\"",
                                  m > 0 ? "," : "", (int)(m % 3 + 1), "abc", (int)(m % 5),
                                  "defgh");
        }
        if (n + 6 <= total) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s\"z\":\"", n > 1 ? "," : "");
            while (n < total - 2) {
                line[n++] = 'x';
            }
            line[n++] = '"';
        }
        if (n < total) {
            line[n++] = '}';
        }
        while (n < total) {
            line[n++] = ' ';
        }
        bool big = total > 400;
        for (size_t j = 0; j < total; j++) {
            if (big && j > 200 && j < total - 80) {
                continue;
            }
            for (size_t o = 0; o < sizeof(odd); o++) {
                memcpy(buf, line, total);
                buf[j] = odd[o];
                /* Both paths always (validate_copy); jansson too for one
                 * offset in four (it costs 20-100x a validation, and the
                 * byte path is held to it by the other differential tests). */
                enum sl_validate_result r = j % 4 == 0
                                                ? check_against_jansson("boundary", buf, total)
                                                : validate_copy(buf, total, NULL);
                if (r == SL_VALID) {
                    accepted++;
                }
            }
        }
        for (size_t cut = big ? total - 80 : 0; cut <= total; cut++) {
            (void)check_against_jansson("boundary cut", line, cut);
        }
    }
    ck_assert_uint_gt(accepted, 1000);
}
END_TEST

/*
 * THE LONG RUN (validate.c): a string of more than 128 bytes outside the
 * quote index is scanned 64 bytes at a time.  {"k":"xxx...x"} with one
 * byte (or pair) that is not plain at every offset of the string, for
 * strings around the 16-byte start, the 128-byte threshold and several
 * 64-byte blocks, and in a 20,000-byte line (over VALIDATE_INDEX_MAX: no
 * index) at offsets around each 64-byte boundary: every instruction set,
 * the indexed and the bytewise entry, against the result the byte must
 * give.  A UTF-8 pair elsewhere in the line keeps the short lines off the
 * index too.
 */
/* {"u":"é","k":"<slen bytes: x, and bytes[0..nb) at j>"} into line; its length. */
static size_t
long_run_line(char *line, size_t slen, size_t j, const char *bytes, size_t nb)
{
    size_t n = (size_t)snprintf(line, 16, "{\"u\":\"\xc3\xa9\",\"k\":\"");

    memset(line + n, 'x', slen);
    memcpy(line + n + j, bytes, nb);
    n += slen;
    line[n++] = '"';
    line[n++] = '}';
    return n;
}

/* Every instruction set, the indexed and the bytewise entry: want. */
static void
long_run_expect(const char *line, size_t n, enum sl_validate_result want, const char *what)
{
    for (size_t k = 0; k < sizeof(test_isas) / sizeof(test_isas[0]); k++) {
        if (!test_isa_available[k]) {
            continue;
        }
        sl_validate_set_isa(test_isas[k]);
        enum sl_validate_result r = sl_validate_object(line, n, NULL);
        enum sl_validate_result rb = sl_validate_object_bytewise(line, n, NULL);
        sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
        if (r != want || rb != want) {
            ck_abort_msg("%s: %s: \"%s\" / \"%s\", want \"%s\"", test_isa_names[k], what,
                         sl_validate_reason(r), sl_validate_reason(rb), sl_validate_reason(want));
        }
    }
}

static void
long_run_case(char *line, size_t slen, size_t j, size_t kind)
{
    /* the byte(s) at j and what the line then is */
    static const struct {
        const char *bytes;
        size_t n;
        enum sl_validate_result want;
    } kinds[] = {
        {"\\n", 2, SL_VALID},          {"\xc3\xa9", 2, SL_VALID},
        {"\x01", 1, SL_INVALID_SYNTAX}, {"\x1f", 1, SL_INVALID_SYNTAX},
        {"\x80", 1, SL_INVALID_UTF8},   {"\"", 1, SL_INVALID_SYNTAX},
        {"\\", 1, SL_INVALID_SYNTAX}, /* an escape of 'x' */
    };
    char what[96];
    size_t n = long_run_line(line, slen, j, kinds[kind].bytes, kinds[kind].n);

    snprintf(what, sizeof(what), "string of %zu bytes, byte kind %zu at %zu", slen, kind, j);
    long_run_expect(line, n, kinds[kind].want, what);
}

START_TEST(test_validate_long_run)
{
    static char line[20100];
    size_t cases = 0;

    for (size_t slen = 2; slen <= 420; slen++) {
        for (size_t j = 0; j + 2 <= slen; j++) {
            for (size_t kind = 0; kind < 7; kind++) {
                long_run_case(line, slen, j, kind);
                cases++;
            }
        }
    }
    for (size_t b = 0; b < 20000; b += 64) {
        for (size_t j = b > 3 ? b - 3 : 0; j <= b + 3 && j + 2 <= 20000; j++) {
            for (size_t kind = 0; kind < 7; kind++) {
                long_run_case(line, 20000, j, kind);
                cases++;
            }
        }
    }
    ck_assert_uint_gt(cases, 600000);
    /* Every byte value: in the middle of a 300-byte string (the long run)
     * as in a 3-byte one (the byte loop). */
    for (unsigned c = 0; c < 256; c++) {
        char b = (char)c;
        char what[64];
        size_t n = long_run_line(line, 3, 1, &b, 1);
        enum sl_validate_result want = sl_validate_object_bytewise(line, n, NULL);

        n = long_run_line(line, 300, 150, &b, 1);
        snprintf(what, sizeof(what), "byte 0x%02x in a 300-byte string", c);
        long_run_expect(line, n, want, what);
    }
}
END_TEST

/*
 * The paths validate_copy compares are there: on x86-64 SSE2 always and
 * AVX2 when the CPU has it, and the start-up choice is the best of them;
 * elsewhere the portable one.
 */
START_TEST(test_validate_isa_dispatch)
{
    enum sl_validate_isa best = sl_validate_get_isa();
#if defined(__x86_64__)
    ck_assert(test_isa_available[1]);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        ck_assert(test_isa_available[2]);
        ck_assert_int_eq(best, SL_VALIDATE_ISA_AVX2);
    } else {
        ck_assert(!test_isa_available[2]);
        ck_assert_int_eq(best, SL_VALIDATE_ISA_SSE2);
    }
    ck_assert(!test_isa_available[0]);
#else
    ck_assert_int_eq(best, SL_VALIDATE_ISA_PORTABLE);
#endif
    /* Forcing one and going back to the best. */
    ck_assert_int_eq(sl_validate_set_isa(SL_VALIDATE_ISA_BEST), best);
    ck_assert_int_eq(sl_validate_get_isa(), best);
}
END_TEST

static Suite *
validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc;

    tc = tcase_create("corpus");
    tcase_add_test(tc, test_validate_corpus_valid);
    tcase_add_test(tc, test_validate_corpus_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("depth");
    tcase_add_test(tc, test_validate_depth_limit);
    tcase_add_test(tc, test_validate_depth_array_root);
    tcase_add_test(tc, test_validate_depth_kinds_alternate);
    suite_add_tcase(s, tc);

    tc = tcase_create("numbers");
    tcase_add_test(tc, test_validate_number_range);
    tcase_add_test(tc, test_validate_number_differential);
    tcase_add_test(tc, test_validate_digit_runs);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("reasons");
    tcase_add_test(tc, test_validate_string_reasons);
    tcase_add_test(tc, test_validate_nul_after_scalar);
    tcase_add_test(tc, test_validate_nul_anywhere);
    tcase_add_test(tc, test_validate_root_reasons);
    tcase_add_test(tc, test_validate_reason_text);
    tcase_add_test(tc, test_validate_empty_flag);
    suite_add_tcase(s, tc);

    tc = tcase_create("mutation");
    tcase_add_test(tc, test_validate_mutation_differential);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("tokens");
    tcase_add_test(tc, test_validate_token_differential);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("paths");
    tcase_add_test(tc, test_validate_paths_boundaries);
    tcase_add_test(tc, test_validate_isa_dispatch);
    tcase_add_test(tc, test_validate_long_run);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("generated");
    tcase_add_test(tc, test_validate_generated_differential);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(validate_suite());
    int failed;

    test_isa_probe();
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
