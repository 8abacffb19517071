/*
 * Unit tests for encode: json pass-through, add_fields splicing (the result
 * is a valid object holding the client's members unchanged), raw codec
 * wrapping, size limits, time and address formatting.
 */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "codec/encode.h"
#include "codec/escape.h"

static json_t *
load_line(const char *out, size_t len)
{
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(out[len - 1], '\n');
    json_error_t err;
    json_t *j = json_loadb(out, len - 1, 0, &err);
    ck_assert_msg(j != NULL, "output is not JSON: %.*s (%s)", (int)len, out, err.text);
    return j;
}

START_TEST(test_encode_json_passthrough)
{
    const char *in = "{\"b\":1, \"a\" : [true,null]}";
    char out[256];
    size_t n = 0;
    enum sl_validate_result why;
    ck_assert_int_eq(sl_encode_json(in, strlen(in), NULL, 0, out, sizeof(out), &n, &why),
                     SL_ENCODE_OK);
    ck_assert_uint_eq(n, strlen(in) + 1);
    ck_assert(memcmp(out, in, strlen(in)) == 0); /* bytes preserved */
}
END_TEST

START_TEST(test_encode_json_invalid)
{
    char out[256];
    size_t n = 0;
    enum sl_validate_result why = SL_VALID;
    ck_assert_int_eq(sl_encode_json("[1]", 3, NULL, 0, out, sizeof(out), &n, &why),
                     SL_ENCODE_INVALID);
    ck_assert_int_eq(why, SL_INVALID_NOT_OBJECT);
    ck_assert_int_eq(sl_encode_json("{\"a\":", 5, NULL, 0, out, sizeof(out), &n, &why),
                     SL_ENCODE_INVALID);
}
END_TEST

START_TEST(test_encode_json_no_room)
{
    char out[8];
    size_t n = 0;
    enum sl_validate_result why;
    ck_assert_int_eq(sl_encode_json("{\"a\":12345}", 11, NULL, 0, out, sizeof(out), &n, &why),
                     SL_ENCODE_NO_ROOM);
}
END_TEST

START_TEST(test_encode_json_fields_spliced)
{
    static const char *inputs[] = {
        "{\"a\":1,\"b\":\"x\"}",         "  { \"a\" : 1 }  ", "{}", "{ }", "\t{\n}\r",
        "{\"n\":{\"m\":[1,{\"k\":2}]}}",
    };
    char fields[512];
    size_t flen = 0;
    ck_assert_int_eq(sl_encode_field(fields, sizeof(fields), &flen, "source", "app", 3), 0);
    ck_assert_int_eq(sl_encode_field(fields, sizeof(fields), &flen, "peer", "1.2.3.4:5", 9), 0);
    ck_assert(memcmp(fields, "\"source\":\"app\",\"peer\":\"1.2.3.4:5\"", flen) == 0);
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        const char *in = inputs[i];
        char out[1024];
        size_t n = 0;
        enum sl_validate_result why;
        json_error_t err;
        ck_assert_int_eq(sl_encode_json(in, strlen(in), fields, flen, out, sizeof(out), &n, &why),
                         SL_ENCODE_OK);
        json_t *got = load_line(out, n);
        json_t *orig = json_loads(in, 0, &err);
        ck_assert_ptr_nonnull(orig);
        ck_assert_str_eq(json_string_value(json_object_get(got, "source")), "app");
        ck_assert_str_eq(json_string_value(json_object_get(got, "peer")), "1.2.3.4:5");
        /* Every client member is there, unchanged. */
        const char *k;
        json_t *v;
        json_object_foreach(orig, k, v)
        {
            ck_assert(json_equal(json_object_get(got, k), v));
        }
        ck_assert_uint_eq(json_object_size(got), json_object_size(orig) + 2);
        json_decref(got);
        json_decref(orig);
    }
}
END_TEST

START_TEST(test_encode_field_escapes)
{
    char fields[512];
    size_t flen = 0;
    ck_assert_int_eq(sl_encode_field(fields, sizeof(fields), &flen, "host", "a\"b\\c", 5), 0);
    ck_assert(memcmp(fields, "\"host\":\"a\\\"b\\\\c\"", flen) == 0);
    /* Does not fit: refused, length unchanged. */
    size_t before = flen;
    ck_assert_int_eq(sl_encode_field(fields, flen + 4, &flen, "x", "y", 1), -1);
    ck_assert_uint_eq(flen, before);
}
END_TEST

START_TEST(test_encode_raw_roundtrip)
{
    static const char *inputs[] = {
        "plain",
        "quote \" and \\ backslash",
        "tab\there",
        "ctl \x01\x1f\x7f",
        "utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
        "{\"looks\":\"like json\"}",
    };
    char scratch[SL_ESCAPE_MAX(256)];
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        const char *in = inputs[i];
        char out[2048];
        size_t n = 0;
        ck_assert_int_eq(
            sl_encode_raw(in, strlen(in), NULL, 0, scratch, out, sizeof(out), sizeof(out), &n),
            SL_ENCODE_OK);
        json_t *got = load_line(out, n);
        ck_assert_str_eq(json_string_value(json_object_get(got, "message")), in);
        ck_assert_uint_eq(json_object_size(got), 1);
        json_decref(got);
    }
}
END_TEST

START_TEST(test_encode_raw_with_fields_and_limits)
{
    char scratch[SL_ESCAPE_MAX(64)];
    char out[256];
    size_t n = 0;
    const char *fields = "\"source\":\"s\"";
    ck_assert_int_eq(
        sl_encode_raw("hi", 2, fields, strlen(fields), scratch, out, sizeof(out), sizeof(out), &n),
        SL_ENCODE_OK);
    ck_assert(memcmp(out, "{\"source\":\"s\",\"message\":\"hi\"}\n", n) == 0);
    /* Room in this chunk too small, but it would fit an empty one. */
    ck_assert_int_eq(sl_encode_raw("hi", 2, NULL, 0, scratch, out, 10, sizeof(out), &n),
                     SL_ENCODE_NO_ROOM);
    /* Could never fit in a chunk: too large. */
    ck_assert_int_eq(
        sl_encode_raw("\x01\x01\x01\x01", 4, NULL, 0, scratch, out, sizeof(out), 20, &n),
        SL_ENCODE_TOO_LARGE);
}
END_TEST

START_TEST(test_encode_time_rfc3339)
{
    char buf[SL_TIME_TEXT_MAX];
    /* 2026-11-26T12:00:00.123456Z */
    uint64_t ns = 1795694400ull * 1000000000ull + 123456789ull;
    size_t n = sl_encode_time(ns, buf);
    ck_assert_uint_eq(n, strlen("2026-11-26T12:00:00.123456Z"));
    ck_assert(memcmp(buf, "2026-11-26T12:00:00.123456Z", n) == 0);
    n = sl_encode_time(0, buf);
    ck_assert(memcmp(buf, "1970-01-01T00:00:00.000000Z", n) == 0);
}
END_TEST

START_TEST(test_encode_sockaddr)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(5170)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
    char buf[64];
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    size_t n = sl_encode_sockaddr((struct sockaddr *)&in, buf, sizeof(buf));
    ck_assert_str_eq(buf, "127.0.0.1:5170");
    ck_assert_uint_eq(n, 14);
    sl_encode_sockaddr((struct sockaddr *)&in6, buf, sizeof(buf));
    ck_assert_str_eq(buf, "[::1]:80");
}
END_TEST

/* A local sender's credentials: three numbers, after a comma when not first,
 * refused (nothing written) when they do not fit. */
START_TEST(test_encode_cred)
{
    char buf[128];
    size_t len = 0;
    ck_assert_int_eq(sl_encode_cred(buf, sizeof(buf), &len, 1234, 0, 4294967295u), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "\"peer_pid\":1234,\"peer_uid\":0,\"peer_gid\":4294967295");
    len = 0;
    ck_assert_int_eq(sl_encode_field(buf, sizeof(buf), &len, "source", "a", 1), 0);
    ck_assert_int_eq(sl_encode_cred(buf, sizeof(buf), &len, 1, 2, 3), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "\"source\":\"a\",\"peer_pid\":1,\"peer_uid\":2,\"peer_gid\":3");
    size_t before = len;
    ck_assert_int_eq(sl_encode_cred(buf, len + 10, &len, 1, 2, 3), -1);
    ck_assert_uint_eq(len, before);
}
END_TEST

static Suite *
encode_suite(void)
{
    Suite *s = suite_create("encode");
    TCase *tc = tcase_create("codecs");
    tcase_add_test(tc, test_encode_json_passthrough);
    tcase_add_test(tc, test_encode_json_invalid);
    tcase_add_test(tc, test_encode_json_no_room);
    tcase_add_test(tc, test_encode_json_fields_spliced);
    tcase_add_test(tc, test_encode_field_escapes);
    tcase_add_test(tc, test_encode_raw_roundtrip);
    tcase_add_test(tc, test_encode_raw_with_fields_and_limits);
    tcase_add_test(tc, test_encode_time_rfc3339);
    tcase_add_test(tc, test_encode_sockaddr);
    tcase_add_test(tc, test_encode_cred);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(encode_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
