/*
 * Unit tests for escape: sl_escape_json() against jansson's json_dumps().
 *
 * For valid UTF-8 the escaped body must equal, byte for byte, what
 * json_dumps(json_stringn(in, len), JSON_ENCODE_ANY) writes between the
 * quotes; for any input the output must load back with jansson, and decode to
 * the input when the input was valid UTF-8.  Output buffers are heap blocks of
 * exactly SL_ESCAPE_MAX(len) bytes so AddressSanitizer catches any overrun.
 */
#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/escape.h"

#define REPLACEMENT "\xef\xbf\xbd"

struct escaped {
    char *out;
    size_t len;
    size_t replaced;
};

/* Escapes into an exactly sized heap buffer; caller frees e->out. */
static struct escaped
escape_copy(const char *in, size_t len)
{
    struct escaped e;
    char *copy = malloc(len > 0 ? len : 1);

    ck_assert_ptr_nonnull(copy);
    if (len > 0) {
        memcpy(copy, in, len);
    }
    e.out = malloc(SL_ESCAPE_MAX(len) > 0 ? SL_ESCAPE_MAX(len) : 1);
    ck_assert_ptr_nonnull(e.out);
    e.replaced = (size_t)-1;
    e.len = sl_escape_json(copy, len, e.out, &e.replaced);
    ck_assert_uint_le(e.len, SL_ESCAPE_MAX(len));
    free(copy);
    return e;
}

/* jansson's string body for valid UTF-8 in; caller frees.  NULL if jansson refuses in. */
static char *
jansson_body(const char *in, size_t len, size_t *out_len)
{
    json_t *s = json_stringn(in, len);
    char *dump;
    size_t n;
    char *body;

    if (s == NULL) {
        return NULL;
    }
    dump = json_dumps(s, JSON_ENCODE_ANY);
    json_decref(s);
    ck_assert_ptr_nonnull(dump);
    n = strlen(dump);
    ck_assert_uint_ge(n, 2);
    body = malloc(n - 1);
    ck_assert_ptr_nonnull(body);
    memcpy(body, dump + 1, n - 2);
    *out_len = n - 2;
    free(dump);
    return body;
}

static void
print_hex(const char *label, const char *buf, size_t len)
{
    fprintf(stderr, "%s (%zu bytes):", label, len);
    for (size_t i = 0; i < len && i < 200; i++) {
        fprintf(stderr, " %02x", (unsigned char)buf[i]);
    }
    fputc('\n', stderr);
}

/*
 * Loads ["<escaped>"] with jansson (JSON_ALLOW_NUL, since NUL bytes are
 * escaped as \u0000) and returns the decoded string's length; *decoded must
 * be freed.  Fails the test if jansson refuses it.
 */
static size_t
load_back(const struct escaped *e, char **decoded)
{
    char *doc = malloc(e->len + 4);
    json_error_t err;
    json_t *root;
    json_t *s;
    size_t n;

    ck_assert_ptr_nonnull(doc);
    memcpy(doc, "[\"", 2);
    memcpy(doc + 2, e->out, e->len);
    memcpy(doc + 2 + e->len, "\"]", 2);
    root = json_loadb(doc, e->len + 4, JSON_ALLOW_NUL, &err);
    if (root == NULL) {
        print_hex("escaped", e->out, e->len);
    }
    ck_assert_msg(root != NULL, "jansson refuses our output: %s", err.text);
    s = json_array_get(root, 0);
    ck_assert(json_is_string(s));
    n = json_string_length(s);
    *decoded = malloc(n > 0 ? n : 1);
    ck_assert_ptr_nonnull(*decoded);
    memcpy(*decoded, json_string_value(s), n);
    json_decref(root);
    free(doc);
    return n;
}

/*
 * The full contract for one input: loads back; for valid UTF-8 equals
 * jansson's dump, decodes to the input and replaces nothing.
 */
static void
check_input(const char *in, size_t len)
{
    struct escaped e = escape_copy(in, len);
    size_t want_len = 0;
    char *want = jansson_body(in, len, &want_len);
    char *decoded;
    size_t dlen = load_back(&e, &decoded);

    if (want != NULL) {
        if (e.len != want_len || memcmp(e.out, want, want_len) != 0) {
            print_hex("input", in, len);
            print_hex("ours", e.out, e.len);
            print_hex("jansson", want, want_len);
            ck_abort_msg("escaped output differs from json_dumps()");
        }
        ck_assert_uint_eq(e.replaced, 0);
        ck_assert_uint_eq(dlen, len);
        ck_assert_mem_eq(decoded, in, len);
    } else {
        ck_assert_uint_gt(e.replaced, 0);
    }
    free(want);
    free(decoded);
    free(e.out);
}

/* The letter of b's two-character escape, or 0. */
static char
short_form(int b)
{
    switch (b) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    }
    return 0;
}

START_TEST(test_escape_every_byte)
{
    for (int b = 0; b < 256; b++) {
        char in = (char)b;
        struct escaped e = escape_copy(&in, 1);

        if (b >= 0x80) {
            ck_assert_uint_eq(e.len, 3);
            ck_assert_mem_eq(e.out, REPLACEMENT, 3);
            ck_assert_uint_eq(e.replaced, 1);
        } else {
            char want[8];
            size_t want_len;

            if (short_form(b) != 0) {
                want_len = (size_t)snprintf(want, sizeof(want), "\\%c", short_form(b));
            } else if (b < 0x20) {
                want_len = (size_t)snprintf(want, sizeof(want), "\\u%04X", b);
            } else {
                want_len = (size_t)snprintf(want, sizeof(want), "%c", b);
            }
            ck_assert_msg(e.len == want_len && memcmp(e.out, want, want_len) == 0,
                          "byte 0x%02x: got %.*s, want %s", b, (int)e.len, e.out, want);
            ck_assert_uint_eq(e.replaced, 0);
        }
        free(e.out);
        check_input(&in, 1);
    }
}
END_TEST

START_TEST(test_escape_jansson_forms)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"a/b", 3, "a/b"},                         /* '/' is not escaped */
        {"\x1f\x0b\x7f", 3, "\\u001F\\u000B\x7f"}, /* upper-case hex; DEL raw */
        {"\0", 1, "\\u0000"},
        {"\xe2\x80\xa8", 3, "\xe2\x80\xa8"}, /* U+2028 raw */
        {"\"\\", 2, "\\\"\\\\"},
        {"", 0, ""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct escaped e = escape_copy(cases[i].in, cases[i].len);

        ck_assert_uint_eq(e.len, strlen(cases[i].want));
        ck_assert_mem_eq(e.out, cases[i].want, e.len);
        free(e.out);
        check_input(cases[i].in, cases[i].len);
    }
}
END_TEST

START_TEST(test_escape_mixed)
{
    static const char *const cases[] = {
        "plain ascii text that is longer than eight bytes",
        "GET /index.html?q=\"x\"&y=\\z HTTP/1.1\r\n",
        "tab\there\nnewline and a very long run afterwards 0123456789",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbf end",
        "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10",
        "12345678\"2345678\\2345678\n2345678\303\2512345678",
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_input(cases[i], strlen(cases[i]));
    }
}
END_TEST

START_TEST(test_escape_invalid_utf8)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
        size_t replaced;
    } cases[] = {
        {"\xc0\x80", 2, REPLACEMENT REPLACEMENT, 2}, /* overlong NUL */
        {"\xc1\xbf", 2, REPLACEMENT REPLACEMENT, 2}, /* overlong */
        {"\xe0\x80\xaf", 3, REPLACEMENT REPLACEMENT REPLACEMENT, 3},
        {"\xf0\x8f\xbf\xbf", 4, REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT, 4},
        {"\xed\xa0\x80", 3, REPLACEMENT REPLACEMENT REPLACEMENT, 3}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT, 4},
        {"\xf5\x80", 2, REPLACEMENT REPLACEMENT, 2},
        {"a\342\202b", 4, "a" REPLACEMENT REPLACEMENT "b", 2}, /* truncated */
        {"a\xe2\x82", 3, "a" REPLACEMENT REPLACEMENT, 2},      /* truncated at end */
        {"\xf0\x9f\x98", 3, REPLACEMENT REPLACEMENT REPLACEMENT, 3},
        {"\x80\xc3\xa9", 3, REPLACEMENT "\xc3\xa9", 1}, /* stray continuation */
        {"\xc3\xc3\xa9", 3, REPLACEMENT "\xc3\xa9", 1}, /* lead without continuation */
        {"\xff\"\n", 3, REPLACEMENT "\\\"\\n", 1},
        {"0123456789\3760123456789", 21, "0123456789" REPLACEMENT "0123456789", 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct escaped e = escape_copy(cases[i].in, cases[i].len);

        ck_assert_msg(e.len == strlen(cases[i].want) && memcmp(e.out, cases[i].want, e.len) == 0,
                      "case %zu: wrong output", i);
        ck_assert_uint_eq(e.replaced, cases[i].replaced);
        free(e.out);
        check_input(cases[i].in, cases[i].len);
    }
}
END_TEST

START_TEST(test_escape_replaced_optional)
{
    char out[SL_ESCAPE_MAX(4)];

    ck_assert_uint_eq(sl_escape_json("a\xff\n", 3, out, NULL), 1 + 3 + 2);
    ck_assert_mem_eq(out, "a" REPLACEMENT "\\n", 6);
}
END_TEST

/* The worst case fills SL_ESCAPE_MAX(len) exactly, for every alignment of the fast path. */
START_TEST(test_escape_worst_case_bound)
{
    for (size_t len = 0; len <= 40; len++) {
        char in[40];
        struct escaped e;

        memset(in, 0x01, sizeof(in));
        e = escape_copy(in, len);
        ck_assert_uint_eq(e.len, SL_ESCAPE_MAX(len));
        free(e.out);
        /* Mostly plain bytes with one control at the end: the 8-byte stores run up to it. */
        memset(in, 'x', sizeof(in));
        if (len > 0) {
            in[len - 1] = '\n';
        }
        e = escape_copy(in, len);
        ck_assert_uint_eq(e.len, len > 0 ? len + 1 : 0);
        free(e.out);
    }
}
END_TEST

static uint64_t
test_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Appends a random piece: plain runs, specials, valid multi-byte, and (if allowed) junk. */
static size_t
random_piece(char *p, uint64_t *s, bool allow_invalid)
{
    /* clang-format off */
    static const char *const valid[] = {
        "a", "hello world, this is a longer plain run", "\"", "\\", "/", "\n", "\t", "\x01",
        "\x1f", "\x7f", "\xc2\x80", "\xc3\xa9", "\xdf\xbf", "\xe0\xa0\x80", "\xe2\x82\xac",
        "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf0\x9f\x98\x80",
        "\xf4\x8f\xbf\xbf", "\xe2\x80\xa8"};
    /* clang-format on */
    uint64_t r = test_rand(s);

    if (r % 16 == 0) {
        p[0] = '\0';
        return 1;
    }
    if (allow_invalid && r % 5 == 1) {
        p[0] = (char)test_rand(s);
        return 1;
    }
    {
        const char *v = valid[test_rand(s) % (sizeof(valid) / sizeof(valid[0]))];
        size_t n = strlen(v);

        memcpy(p, v, n);
        return n;
    }
}

START_TEST(test_escape_random_valid_matches_jansson)
{
    uint64_t s = 0xe5ca9e01;
    char in[2048];

    for (int i = 0; i < 10000; i++) {
        size_t len = 0;
        int pieces = (int)(test_rand(&s) % 40);

        for (int k = 0; k < pieces; k++) {
            len += random_piece(in + len, &s, false);
        }
        check_input(in, len);
    }
}
END_TEST

START_TEST(test_escape_random_bytes_load_back)
{
    uint64_t s = 0xe5ca9e02;
    char in[2048];

    for (int i = 0; i < 10000; i++) {
        size_t len = 0;
        int pieces = (int)(test_rand(&s) % 40);

        for (int k = 0; k < pieces; k++) {
            len += random_piece(in + len, &s, true);
        }
        check_input(in, len);
    }
}
END_TEST

static Suite *
escape_suite(void)
{
    Suite *s = suite_create("escape");
    TCase *tc;

    tc = tcase_create("bytes");
    tcase_add_test(tc, test_escape_every_byte);
    tcase_add_test(tc, test_escape_jansson_forms);
    tcase_add_test(tc, test_escape_mixed);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid_utf8");
    tcase_add_test(tc, test_escape_invalid_utf8);
    tcase_add_test(tc, test_escape_replaced_optional);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_test(tc, test_escape_worst_case_bound);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, test_escape_random_valid_matches_jansson);
    tcase_add_test(tc, test_escape_random_bytes_load_back);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(escape_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
