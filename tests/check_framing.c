/*
 * Unit tests for framing: newline framing across arbitrary read
 * boundaries, CRLF, empty lines, max_line_bytes, final line without '\n'.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "codec/framing.h"

struct collect {
    char out[8192]; /* lines joined with '|' */
    size_t len;
    int n;
    int stop_at; /* refuse the line with this index once (-1: never) */
};

static int
collect_cb(void *arg, const char *line, size_t len)
{
    struct collect *c = arg;
    if (c->n == c->stop_at) {
        c->stop_at = -1;
        return 1;
    }
    memcpy(c->out + c->len, line, len);
    c->len += len;
    c->out[c->len++] = '|';
    c->out[c->len] = '\0';
    c->n++;
    return 0;
}

/* Feeds input in pieces at the given split points, like a TCP reader:
 * unconsumed bytes are carried into the next call. */
static void
feed_split(const char *in, size_t len, const size_t *splits, int nsplits, size_t max_line,
           bool finish, struct collect *c, struct sl_frame_state *st)
{
    char buf[8192];
    size_t have = 0, pos = 0;
    for (int i = 0; i <= nsplits; i++) {
        size_t end = i < nsplits ? splits[i] : len;
        memcpy(buf + have, in + pos, end - pos);
        have += end - pos;
        pos = end;
        bool stopped;
        size_t used;
        do {
            used = sl_frame_lines(st, buf, have, max_line, collect_cb, c, &stopped);
            memmove(buf, buf + used, have - used);
            have -= used;
        } while (stopped);
    }
    if (finish) {
        sl_frame_finish(st, buf, have, max_line, collect_cb, c);
    }
}

static void
run(const char *in, size_t max_line, bool finish, const char *want, uint64_t want_over)
{
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st = {0};
    size_t len = strlen(in);
    feed_split(in, len, NULL, 0, max_line, finish, &c, &st);
    ck_assert_str_eq(c.out, want);
    ck_assert_uint_eq(st.oversize, want_over);
}

START_TEST(test_framing_basic)
{
    run("a\nbb\nccc\n", 100, false, "a|bb|ccc|", 0);
}
END_TEST

START_TEST(test_framing_crlf_and_empty)
{
    run("a\r\n\r\n\nb\r\n", 100, false, "a|b|", 0);
    /* Only one '\r' is stripped, and only right before '\n'. */
    run("a\r\r\nb\rc\n", 100, false, "a\r|b\rc|", 0);
}
END_TEST

START_TEST(test_framing_no_final_newline)
{
    run("a\nb", 100, false, "a|", 0);
    run("a\nb", 100, true, "a|b|", 0);
    run("a\nb\r", 100, true, "a|b|", 0);
}
END_TEST

START_TEST(test_framing_max_line)
{
    /* Exactly at the limit passes; one over is dropped and counted; the
     * neighbours are kept. */
    run("12345\n123456\nok\n", 5, false, "12345|ok|", 1);
    /* The '\r' of a CRLF does not count. */
    run("12345\r\nok\n", 5, false, "12345|ok|", 0);
    /* An oversize final line without newline. */
    run("ok\n123456", 5, true, "ok|", 1);
}
END_TEST

START_TEST(test_framing_every_split_point)
{
    const char *in = "{\"a\":1}\r\n\nxy\nlonglonglong\n{\"b\":2}\nend";
    const char *want = "{\"a\":1}|xy|{\"b\":2}|end|";
    size_t len = strlen(in);
    /* One split at every point, then every pair of split points. */
    for (size_t i = 0; i <= len; i++) {
        struct collect c = {.stop_at = -1};
        struct sl_frame_state st = {0};
        size_t sp[1] = {i};
        feed_split(in, len, sp, 1, 8, true, &c, &st);
        ck_assert_msg(strcmp(c.out, want) == 0, "split %zu: got %s", i, c.out);
        ck_assert_uint_eq(st.oversize, 1);
    }
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            struct collect c = {.stop_at = -1};
            struct sl_frame_state st = {0};
            size_t sp[2] = {i, j};
            feed_split(in, len, sp, 2, 8, true, &c, &st);
            ck_assert_msg(strcmp(c.out, want) == 0, "splits %zu,%zu: got %s", i, j, c.out);
            ck_assert_uint_eq(st.oversize, 1);
        }
    }
}
END_TEST

START_TEST(test_framing_byte_by_byte_oversize)
{
    /* An oversize line fed one byte at a time is counted once, discarded
     * without being buffered beyond max_line + 1, and the next line is
     * kept. */
    const char *in = "aaaaaaaaaaaaaaaaaaaa\nok\n";
    size_t len = strlen(in);
    size_t sp[64];
    for (size_t i = 0; i < len; i++) {
        sp[i] = i + 1;
    }
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st = {0};
    feed_split(in, len, sp, (int)len - 1, 4, false, &c, &st);
    ck_assert_str_eq(c.out, "ok|");
    ck_assert_uint_eq(st.oversize, 1);
}
END_TEST

START_TEST(test_framing_stop_and_resume)
{
    /* The callback refuses line 1 once: the call stops before it and the
     * same bytes offered again deliver it, nothing lost or repeated. */
    struct collect c = {.stop_at = 1};
    struct sl_frame_state st = {0};
    const char *in = "a\nb\nc\n";
    bool stopped;
    size_t used = sl_frame_lines(&st, in, 6, 10, collect_cb, &c, &stopped);
    ck_assert(stopped);
    ck_assert_uint_eq(used, 2);
    used += sl_frame_lines(&st, in + used, 6 - used, 10, collect_cb, &c, &stopped);
    ck_assert(!stopped);
    ck_assert_uint_eq(used, 6);
    ck_assert_str_eq(c.out, "a|b|c|");
}
END_TEST

START_TEST(test_framing_partial_kept_bounded)
{
    /* A partial line up to max_line + 1 is left for the next read. */
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st = {0};
    bool stopped;
    ck_assert_uint_eq(sl_frame_lines(&st, "abcd\r", 5, 4, collect_cb, &c, &stopped), 0);
    ck_assert(!st.discarding);
    ck_assert_uint_eq(sl_frame_lines(&st, "abcde\r", 6, 4, collect_cb, &c, &stopped), 6);
    ck_assert(st.discarding);
    ck_assert_uint_eq(st.oversize, 1);
}
END_TEST

static Suite *
framing_suite(void)
{
    Suite *s = suite_create("framing");
    TCase *tc = tcase_create("lines");
    tcase_add_test(tc, test_framing_basic);
    tcase_add_test(tc, test_framing_crlf_and_empty);
    tcase_add_test(tc, test_framing_no_final_newline);
    tcase_add_test(tc, test_framing_max_line);
    tcase_add_test(tc, test_framing_every_split_point);
    tcase_add_test(tc, test_framing_byte_by_byte_oversize);
    tcase_add_test(tc, test_framing_stop_and_resume);
    tcase_add_test(tc, test_framing_partial_kept_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(framing_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
