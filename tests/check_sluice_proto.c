/*
 * Unit tests for the sluice protocol's encoder and decoder
 * (src/proto/sluice_proto.c; docs/protocol.md): round trips of every frame
 * type, byte-exact headers, and every malformed-frame case the receiver
 * must refuse.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/sluice_proto.h"

#define BIG 512

static uint8_t buf[SL_PROTO_HEADER + BIG];

/* A BATCH frame of payload p into buf; returns its size. */
static size_t
batch(uint64_t seq, const char *p)
{
    size_t n = strlen(p);
    memcpy(buf + SL_PROTO_HEADER, p, n);
    sl_proto_header(buf, SL_PROTO_BATCH, seq, buf + SL_PROTO_HEADER, (uint32_t)n);
    return SL_PROTO_HEADER + n;
}

static long
dec(size_t len, uint32_t max, struct sl_proto_frame *f)
{
    return sl_proto_decode(buf, len, max, f);
}

/* The checksum is zlib's crc32 value (docs/protocol.md), whatever code
 * computes it: compared with zlib's own over lengths around the fast
 * path's block sizes and up to 1 MiB. */
START_TEST(test_batch_crc_is_zlib_crc32)
{
    static const size_t lens[] = {1, 2, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1000, 4096,
                                  65535, 65536, 65537, 1 << 20};
    uint8_t *payload = malloc(1 << 20);
    uint8_t hdr[SL_PROTO_HEADER];
    ck_assert_ptr_nonnull(payload);
    srand(17);
    for (size_t i = 0; i < (size_t)(1 << 20); i++) {
        payload[i] = (uint8_t)rand();
    }
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t n = lens[k];
        sl_proto_header(hdr, SL_PROTO_BATCH, 7, payload, (uint32_t)n);
        uint32_t want = (uint32_t)crc32(crc32(0L, Z_NULL, 0), payload, (uInt)n);
        uint32_t got = (uint32_t)hdr[16] << 24 | (uint32_t)hdr[17] << 16 |
                       (uint32_t)hdr[18] << 8 | hdr[19];
        ck_assert_msg(got == want, "length %zu: %08x, zlib says %08x", n, got, want);
    }
    free(payload);
}
END_TEST

START_TEST(test_header_bytes)
{
    size_t n = batch(0x0102030405060708ull, "{}\n");
    ck_assert_uint_eq(n, 23);
    static const uint8_t want[16] = {3, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8};
    ck_assert(memcmp(buf, want, sizeof(want)) == 0);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)"{}\n", 3);
    ck_assert_uint_eq(buf[16], crc >> 24);
    ck_assert_uint_eq(buf[19], crc & 0xff);
}
END_TEST

START_TEST(test_roundtrip)
{
    struct sl_proto_frame f;
    struct sl_proto_hello h;
    struct sl_proto_welcome w;
    uint16_t code;
    const char *text;
    size_t tl;

    size_t n = sl_proto_hello(buf, "edge-1.fwd", 2500);
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_uint_eq(f.type, SL_PROTO_HELLO);
    ck_assert_int_eq(sl_proto_parse_hello(&f, &h), 0);
    ck_assert_str_eq(h.id, "edge-1.fwd");
    ck_assert_uint_eq(h.vmin, 1);
    ck_assert_uint_eq(h.vmax, 1);
    ck_assert_uint_eq(h.keepalive_ms, 2500);

    n = sl_proto_welcome(buf, 77, 262144);
    ck_assert_uint_eq(n, SL_PROTO_HEADER + SL_PROTO_WELCOME_LEN);
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_welcome(&f, &w), 0);
    ck_assert_uint_eq(w.acked, 77);
    ck_assert_uint_eq(w.max_batch, 262144);
    ck_assert_uint_eq(w.version, 1);

    n = sl_proto_ack(buf, SL_PROTO_ACK, 12345678901ull);
    ck_assert_int_eq(dec(n, 0, &f), SL_PROTO_HEADER);
    ck_assert_uint_eq(f.type, SL_PROTO_ACK);
    ck_assert_uint_eq(f.seq, 12345678901ull);
    n = sl_proto_ack(buf, SL_PROTO_KEEPALIVE, 9);
    ck_assert_int_eq(dec(n, 0, &f), SL_PROTO_HEADER);
    ck_assert_uint_eq(f.type, SL_PROTO_KEEPALIVE);

    n = sl_proto_error(buf, SL_PROTO_E_CHECKSUM, "bad crc");
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_error(&f, &code, &text, &tl), 0);
    ck_assert_uint_eq(code, SL_PROTO_E_CHECKSUM);
    ck_assert_uint_eq(tl, 7);
    ck_assert(memcmp(text, "bad crc", 7) == 0);

    n = batch(5, "{\"a\":1}\n{\"b\":2}\n");
    ck_assert_int_eq(dec(n, 1024, &f), (long)n);
    ck_assert_uint_eq(f.seq, 5);
    ck_assert_uint_eq(f.len, 16);
    ck_assert(memcmp(f.payload, "{\"a\":1}\n", 8) == 0);
}
END_TEST

/* Every prefix of a valid frame asks for more; nothing is decoded early. */
START_TEST(test_partial)
{
    struct sl_proto_frame f;
    size_t n = batch(1, "{\"x\":\"yyyyyyyyyyyy\"}\n");
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(dec(i, 1024, &f), 0);
    }
    ck_assert_int_eq(dec(n, 1024, &f), (long)n);
}
END_TEST

START_TEST(test_malformed)
{
    struct sl_proto_frame f;
    size_t n;

    /* Unknown types, refused from the first byte. */
    buf[0] = 0;
    ck_assert_int_eq(dec(1, 1024, &f), -SL_PROTO_E_FRAME);
    buf[0] = 7;
    ck_assert_int_eq(dec(1, 1024, &f), -SL_PROTO_E_FRAME);
    buf[0] = 'G'; /* "GET / HTTP/1.1" */
    ck_assert_int_eq(dec(1, 1024, &f), -SL_PROTO_E_FRAME);
    /* Flags, reserved. */
    n = batch(1, "{}\n");
    buf[1] = 1;
    ck_assert_int_eq(dec(2, 1024, &f), -SL_PROTO_E_FRAME);
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_FRAME);
    n = batch(1, "{}\n");
    buf[3] = 1;
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_FRAME);
    /* Checksum: a flipped payload byte, a flipped crc byte. */
    n = batch(1, "{}\n");
    buf[SL_PROTO_HEADER] ^= 1;
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_CHECKSUM);
    n = batch(1, "{}\n");
    buf[17] ^= 0x80;
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_CHECKSUM);
    /* A batch over max batch: refused from the header alone. */
    n = batch(1, "{\"a\":\"0123456789\"}\n");
    ck_assert_int_eq(dec(SL_PROTO_HEADER, 10, &f), -SL_PROTO_E_TOO_LARGE);
    ck_assert_int_eq(dec(n, (uint32_t)(n - SL_PROTO_HEADER), &f), (long)n);
    ck_assert_int_eq(dec(n, (uint32_t)(n - SL_PROTO_HEADER - 1), &f), -SL_PROTO_E_TOO_LARGE);
    /* A huge length is refused before the payload is waited for. */
    n = batch(1, "{}\n");
    buf[4] = 0xff;
    ck_assert_int_eq(dec(SL_PROTO_HEADER, 1u << 20, &f), -SL_PROTO_E_TOO_LARGE);
    /* Empty batch, batch seq 0, batch not ending in a newline. */
    sl_proto_header(buf, SL_PROTO_BATCH, 1, NULL, 0);
    ck_assert_int_eq(dec(SL_PROTO_HEADER, 1024, &f), -SL_PROTO_E_FRAME);
    n = batch(0, "{}\n");
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_LINES);
    n = batch(1, "{}\n{}");
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_LINES);
    /* ACK / KEEPALIVE with a payload. */
    buf[SL_PROTO_HEADER] = 'x';
    sl_proto_header(buf, SL_PROTO_ACK, 1, buf + SL_PROTO_HEADER, 1);
    ck_assert_int_eq(dec(SL_PROTO_HEADER + 1, 1024, &f), -SL_PROTO_E_FRAME);
    sl_proto_header(buf, SL_PROTO_KEEPALIVE, 1, buf + SL_PROTO_HEADER, 1);
    ck_assert_int_eq(dec(SL_PROTO_HEADER + 1, 1024, &f), -SL_PROTO_E_FRAME);
    /* WELCOME of the wrong size; HELLO too short, too long, with a seq. */
    sl_proto_header(buf, SL_PROTO_WELCOME, 0, buf + SL_PROTO_HEADER, 11);
    ck_assert_int_eq(dec(SL_PROTO_HEADER + 11, 1024, &f), -SL_PROTO_E_FRAME);
    sl_proto_header(buf, SL_PROTO_HELLO, 0, buf + SL_PROTO_HEADER, SL_PROTO_HELLO_FIXED);
    ck_assert_int_eq(dec(SL_PROTO_HEADER + SL_PROTO_HELLO_FIXED, 1024, &f), -SL_PROTO_E_FRAME);
    sl_proto_header(buf, SL_PROTO_HELLO, 0, buf + SL_PROTO_HEADER,
                    SL_PROTO_HELLO_FIXED + SL_PROTO_ID_MAX + 1);
    ck_assert_int_eq(dec(SL_PROTO_HEADER, 1024, &f), -SL_PROTO_E_FRAME);
    n = sl_proto_hello(buf, "a", 10);
    buf[15] = 1; /* seq != 0 */
    ck_assert_int_eq(dec(n, 1024, &f), -SL_PROTO_E_FRAME);
    /* ERROR without a code. */
    sl_proto_header(buf, SL_PROTO_ERROR, 0, buf + SL_PROTO_HEADER, 1);
    ck_assert_int_eq(dec(SL_PROTO_HEADER + 1, 1024, &f), -SL_PROTO_E_FRAME);
}
END_TEST

/* HELLO payloads that decode as frames but are bad greetings. */
START_TEST(test_bad_hello)
{
    struct sl_proto_frame f;
    struct sl_proto_hello h;
    struct sl_proto_welcome w;
    size_t n;

    n = sl_proto_hello(buf, "edge", 10);
    buf[SL_PROTO_HEADER] = 'X'; /* magic */
    sl_proto_header(buf, SL_PROTO_HELLO, 0, buf + SL_PROTO_HEADER, (uint32_t)(n - SL_PROTO_HEADER));
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_hello(&f, &h), -SL_PROTO_E_HELLO);

    n = sl_proto_hello(buf, "edge", 10);
    buf[SL_PROTO_HEADER + 13] = 3; /* id length disagrees with the frame */
    sl_proto_header(buf, SL_PROTO_HELLO, 0, buf + SL_PROTO_HEADER, (uint32_t)(n - SL_PROTO_HEADER));
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_hello(&f, &h), -SL_PROTO_E_HELLO);

    n = sl_proto_hello(buf, "ed ge", 10); /* a blank in the id */
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_hello(&f, &h), -SL_PROTO_E_HELLO);

    n = sl_proto_hello(buf, "edge", 10);
    buf[SL_PROTO_HEADER + 5] = 2; /* vmin 2 > vmax 1 */
    sl_proto_header(buf, SL_PROTO_HELLO, 0, buf + SL_PROTO_HEADER, (uint32_t)(n - SL_PROTO_HEADER));
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_hello(&f, &h), -SL_PROTO_E_HELLO);

    n = sl_proto_welcome(buf, 1, 4096);
    buf[SL_PROTO_HEADER + 5] = 9; /* version 9 */
    sl_proto_header(buf, SL_PROTO_WELCOME, 1, buf + SL_PROTO_HEADER, SL_PROTO_WELCOME_LEN);
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_welcome(&f, &w), -SL_PROTO_E_VERSION);

    n = sl_proto_welcome(buf, 1, 0); /* max batch 0 */
    ck_assert_int_eq(dec(n, 0, &f), (long)n);
    ck_assert_int_eq(sl_proto_parse_welcome(&f, &w), -SL_PROTO_E_HELLO);

    ck_assert(sl_proto_id_ok("a.b_c:d-9", 9));
    ck_assert(!sl_proto_id_ok("", 0));
    ck_assert(!sl_proto_id_ok("a/b", 3));
}
END_TEST

/* Frames back to back in one buffer decode one after the other. */
START_TEST(test_stream)
{
    uint8_t s[1024];
    size_t len = 0;
    struct sl_proto_frame f;
    len += sl_proto_hello(s + len, "x", 100);
    memcpy(buf + SL_PROTO_HEADER, "{}\n", 3);
    sl_proto_header(s + len, SL_PROTO_BATCH, 1, buf + SL_PROTO_HEADER, 3);
    memcpy(s + len + SL_PROTO_HEADER, "{}\n", 3);
    len += SL_PROTO_HEADER + 3;
    len += sl_proto_ack(s + len, SL_PROTO_ACK, 1);
    size_t off = 0;
    int types[3], k = 0;
    while (off < len) {
        long r = sl_proto_decode(s + off, len - off, 64, &f);
        ck_assert_int_gt(r, 0);
        types[k++] = f.type;
        off += (size_t)r;
    }
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(types[0], SL_PROTO_HELLO);
    ck_assert_int_eq(types[1], SL_PROTO_BATCH);
    ck_assert_int_eq(types[2], SL_PROTO_ACK);
}
END_TEST

static Suite *
proto_suite(void)
{
    Suite *s = suite_create("sluice_proto");
    TCase *t = tcase_create("codec");
    tcase_add_test(t, test_header_bytes);
    tcase_add_test(t, test_batch_crc_is_zlib_crc32);
    tcase_add_test(t, test_roundtrip);
    tcase_add_test(t, test_partial);
    tcase_add_test(t, test_malformed);
    tcase_add_test(t, test_bad_hello);
    tcase_add_test(t, test_stream);
    suite_add_tcase(s, t);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
