/*
 * check_tap — the tap hub (src/queue/tap.c, sluice/tap.h) alone: filters by
 * queue and substring, the sampling bucket, the bounded buffer and its
 * drop count, the SL_TAP_MAX limit and bad arguments, and a writer thread
 * offering while the main thread takes, attaches and detaches (run it
 * under TSan: `make tsan`).
 *
 * Each test runs in its own process (CK_FORK), so the hub starts empty.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/tap.h"

/* A chunk of n lines "{"n":<first+i>,"tag":"<tag>"}\n"; returns its length. */
static size_t
make_chunk(char *buf, size_t cap, unsigned first, unsigned n, const char *tag)
{
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        int w = snprintf(buf + len, cap - len, "{\"n\":%u,\"tag\":\"%s\"}\n", first + i, tag);
        ck_assert(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
    return len;
}

static unsigned
count_lines(const char *buf, size_t len)
{
    unsigned n = 0;
    for (size_t i = 0; i < len; i++) {
        n += buf[i] == '\n';
    }
    return n;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

START_TEST(test_tap_none_attached)
{
    char buf[4096];
    size_t len = make_chunk(buf, sizeof(buf), 0, 10, "a");
    sl_tap_offer("main", buf, len, 10);
    struct sl_tap_stats st;
    sl_tap_get_stats(&st);
    ck_assert_uint_eq(st.clients, 0);
    ck_assert_uint_eq(st.lines, 0);
}
END_TEST

START_TEST(test_tap_filters)
{
    char buf[4096];
    size_t got;
    struct sl_tap *all = sl_tap_attach(NULL, NULL, SL_TAP_RATE_MAX);
    struct sl_tap *q = sl_tap_attach("other", NULL, SL_TAP_RATE_MAX);
    struct sl_tap *g = sl_tap_attach("", "\"tag\":\"b\"", SL_TAP_RATE_MAX);
    ck_assert(all != NULL && q != NULL && g != NULL);
    sleep_ms(60); /* a full bucket: 50 ms of the rate */
    size_t len = make_chunk(buf, sizeof(buf), 0, 5, "a");
    sl_tap_offer("main", buf, len, 5);
    len = make_chunk(buf, sizeof(buf), 5, 5, "b");
    sl_tap_offer("other", buf, len, 5);

    const char *p = sl_tap_take(all, &got);
    ck_assert_uint_eq(count_lines(p, got), 10);
    ck_assert(strncmp(p, "{\"n\":0,\"tag\":\"a\"}\n", 18) == 0);
    p = sl_tap_take(q, &got);
    ck_assert_uint_eq(count_lines(p, got), 5);
    ck_assert(strncmp(p, "{\"n\":5,\"tag\":\"b\"}\n", 18) == 0);
    p = sl_tap_take(g, &got);
    ck_assert_uint_eq(count_lines(p, got), 5);
    ck_assert(memmem(p, got, "\"tag\":\"a\"", 9) == NULL);
    /* Taken: empty until more comes. */
    sl_tap_take(all, &got);
    ck_assert_uint_eq(got, 0);

    struct sl_tap_stats st;
    sl_tap_get_stats(&st);
    ck_assert_uint_eq(st.clients, 3);
    ck_assert_uint_eq(st.lines, 20);
    sl_tap_detach(all);
    sl_tap_detach(q);
    sl_tap_detach(g);
    sl_tap_get_stats(&st);
    ck_assert_uint_eq(st.clients, 0);
    ck_assert_uint_eq(st.attached, 3);
}
END_TEST

/* A line without its final newline still comes out as a line. */
START_TEST(test_tap_last_line_unterminated)
{
    struct sl_tap *t = sl_tap_attach(NULL, NULL, 100);
    size_t got;
    sl_tap_offer("main", "{\"a\":1}", 7, 1);
    const char *p = sl_tap_take(t, &got);
    ck_assert_uint_eq(got, 8);
    ck_assert(memcmp(p, "{\"a\":1}\n", 8) == 0);
    sl_tap_detach(t);
}
END_TEST

/* The bucket: at most 50 ms of the rate at once (one line at least), then
 * the rate. */
START_TEST(test_tap_rate)
{
    static char buf[64 * 1024];
    size_t len = make_chunk(buf, sizeof(buf), 0, 1000, "a"), got;
    struct sl_tap *slow = sl_tap_attach(NULL, NULL, 1);
    struct sl_tap *fast = sl_tap_attach(NULL, NULL, 1000);
    sleep_ms(200);
    sl_tap_offer("main", buf, len, 1000);
    sl_tap_offer("main", buf, len, 1000);
    const char *p = sl_tap_take(slow, &got);
    ck_assert_uint_eq(count_lines(p, got), 1); /* 1 a second: a bucket of one line */
    sl_tap_offer("main", buf, len, 1000);
    sl_tap_take(slow, &got);
    ck_assert_uint_eq(got, 0); /* no token left */
    p = sl_tap_take(fast, &got);
    ck_assert_uint_le(count_lines(p, got), 50 + 5); /* 50 ms of 1000/s (+ time passing) */
    ck_assert_uint_ge(count_lines(p, got), 50);
    sleep_ms(1100);
    sl_tap_offer("main", buf, len, 1000);
    p = sl_tap_take(slow, &got);
    ck_assert_uint_eq(count_lines(p, got), 1); /* a second later: one more */
    sl_tap_detach(slow);
    sl_tap_detach(fast);
}
END_TEST

/* What does not fit the buffer is dropped and counted; the buffer is not
 * grown. */
START_TEST(test_tap_buffer_full)
{
    static char line[SL_TAP_BUF_BYTES / 4];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\n';
    struct sl_tap *t = sl_tap_attach(NULL, NULL, SL_TAP_RATE_MAX);
    sleep_ms(60);
    for (int i = 0; i < 6; i++) {
        sl_tap_offer("main", line, sizeof(line), 1);
    }
    size_t got;
    const char *p = sl_tap_take(t, &got);
    ck_assert_uint_eq(count_lines(p, got), 4);
    ck_assert_uint_le(got, SL_TAP_BUF_BYTES);
    struct sl_tap_stats st;
    sl_tap_get_stats(&st);
    ck_assert_uint_eq(st.dropped[SL_TAP_DROP_BUFFER_FULL], 2);
    ck_assert_uint_eq(st.lines, 4);
    sl_tap_count_dropped(t, SL_TAP_DROP_SLOW_CLIENT, 7);
    sl_tap_get_stats(&st);
    ck_assert_uint_eq(st.dropped[SL_TAP_DROP_SLOW_CLIENT], 7);
    ck_assert_str_eq(sl_tap_drop_name(SL_TAP_DROP_SLOW_CLIENT), "slow_client");
    sl_tap_detach(t);
}
END_TEST

START_TEST(test_tap_limits)
{
    struct sl_tap *t[SL_TAP_MAX];
    char grep[SL_TAP_GREP_MAX + 1];
    for (int i = 0; i < SL_TAP_MAX; i++) {
        t[i] = sl_tap_attach(NULL, NULL, 10);
        ck_assert_ptr_nonnull(t[i]);
    }
    errno = 0;
    ck_assert_ptr_null(sl_tap_attach(NULL, NULL, 10));
    ck_assert_int_eq(errno, EBUSY);
    sl_tap_detach(t[1]);
    t[1] = sl_tap_attach(NULL, NULL, 10);
    ck_assert_ptr_nonnull(t[1]);
    for (int i = 0; i < SL_TAP_MAX; i++) {
        sl_tap_detach(t[i]);
    }
    ck_assert_ptr_null(sl_tap_attach(NULL, NULL, 0));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(sl_tap_attach(NULL, NULL, SL_TAP_RATE_MAX + 1));
    ck_assert_int_eq(errno, EINVAL);
    memset(grep, 'g', sizeof(grep) - 1);
    grep[sizeof(grep) - 1] = '\0';
    ck_assert_ptr_null(sl_tap_attach(NULL, grep, 10));
    ck_assert_int_eq(errno, EINVAL);
    sl_tap_detach(NULL);
}
END_TEST

/* --- a writer offering while the main thread takes, attaches, detaches --------- */

#define STRESS_CHUNKS 20000

static atomic_bool stress_done;

static void *
stress_writer(void *arg)
{
    static char buf[8192];
    (void)arg;
    for (unsigned i = 0; i < STRESS_CHUNKS; i++) {
        size_t len = make_chunk(buf, sizeof(buf), i * 20, 20, i % 2 ? "a" : "b");
        sl_tap_offer(i % 3 ? "main" : "other", buf, len, 20);
    }
    atomic_store(&stress_done, true);
    return NULL;
}

/* Every line taken is whole: {"n":N,"tag":"a|b"}. */
static unsigned
check_lines(const char *p, size_t len)
{
    unsigned n = 0;
    for (const char *end = p + len; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        unsigned v;
        char tag[4];
        ck_assert_ptr_nonnull(nl);
        ck_assert_int_eq(sscanf(p, "{\"n\":%u,\"tag\":\"%1[ab]\"}", &v, tag), 2);
        ck_assert_int_eq(nl[-1], '}');
        p = nl + 1;
    }
    return n;
}

START_TEST(test_tap_concurrent)
{
    pthread_t th;
    struct sl_tap *t[2] = {sl_tap_attach(NULL, NULL, SL_TAP_RATE_MAX),
                           sl_tap_attach("other", "\"a\"", SL_TAP_RATE_MAX)};
    unsigned taken = 0, rounds = 0;
    size_t got;
    ck_assert(t[0] != NULL && t[1] != NULL);
    ck_assert_int_eq(pthread_create(&th, NULL, stress_writer, NULL), 0);
    while (!atomic_load(&stress_done)) {
        for (int i = 0; i < 2; i++) {
            const char *p = sl_tap_take(t[i], &got);
            taken += check_lines(p, got);
        }
        if (++rounds % 16 == 0) {
            /* Attach and detach while the writer offers (what it copies
             * between the take and the detach is never taken). */
            const char *p = sl_tap_take(t[1], &got);
            taken += check_lines(p, got);
            sl_tap_detach(t[1]);
            t[1] = sl_tap_attach("other", "\"a\"", SL_TAP_RATE_MAX);
            ck_assert_ptr_nonnull(t[1]);
        }
    }
    pthread_join(th, NULL);
    for (int i = 0; i < 2; i++) {
        const char *p = sl_tap_take(t[i], &got);
        taken += check_lines(p, got);
        sl_tap_detach(t[i]);
    }
    struct sl_tap_stats st;
    sl_tap_get_stats(&st);
    ck_assert_uint_eq(st.clients, 0);
    ck_assert_uint_gt(taken, 0);
    ck_assert_uint_le(taken, st.lines); /* every line taken was copied, and whole */
}
END_TEST

static Suite *
tap_suite(void)
{
    Suite *s = suite_create("tap");
    TCase *tc = tcase_create("hub");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tap_none_attached);
    tcase_add_test(tc, test_tap_filters);
    tcase_add_test(tc, test_tap_last_line_unterminated);
    tcase_add_test(tc, test_tap_rate);
    tcase_add_test(tc, test_tap_buffer_full);
    tcase_add_test(tc, test_tap_limits);
    tcase_add_test(tc, test_tap_concurrent);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tap_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
