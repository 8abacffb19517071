/*
 * Unit tests for path templates and rotated-file stamps: the field
 * whitelist, expansion in UTC, the glob that finds every expansion, the
 * period at which an expansion can change, and stamps that round-trip and
 * sort in time order.
 */
#include <check.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/pathtmpl.h"

/* 2026-01-26T12:34:56.789Z */
#define T1_MS 1769430896789LL

START_TEST(test_pathtmpl_check)
{
    static const struct {
        const char *tmpl;
        bool time, dir_time, source;
        uint64_t period;
    } good[] = {
        {"/var/log/x.ndjson", false, false, false, 0},
        {"/var/log/100%%.ndjson", false, false, false, 0},
        {"/var/log/%Y-%m-%d/x.ndjson", true, true, false, 86400000},
        {"/var/log/x-%H.ndjson", true, false, false, 3600000},
        {"/var/log/%F/%{source}-%M.ndjson", true, true, true, 60000},
        {"%{source}.ndjson", false, false, true, 0},
        {"x-%S", true, false, false, 1000},
        {"x-%y%j%G%V%u", true, false, false, 86400000},
    };
    static const char *const bad[] = {
        "/var/log/%a.ndjson", "/var/log/%s", "/x/%",  "/x/%{host}",
        "/x/%{source",        "/x/%Z",       "/x/%n", "/x/%T",
    };
    struct sl_pathtmpl_info info;
    char why[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ck_assert_msg(sl_pathtmpl_check(good[i].tmpl, &info, why, sizeof(why)) == 0, "%s: %s",
                      good[i].tmpl, why);
        ck_assert_msg(info.has_time == good[i].time && info.dir_has_time == good[i].dir_time &&
                          info.uses_source == good[i].source && info.period_ms == good[i].period,
                      "%s: info differs", good[i].tmpl);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(sl_pathtmpl_check(bad[i], &info, why, sizeof(why)) == -1, "accepted %s",
                      bad[i]);
        ck_assert(why[0] != '\0');
    }
}
END_TEST

START_TEST(test_pathtmpl_expand)
{
    char buf[256];

    ck_assert_int_eq(
        sl_pathtmpl_expand("/l/%Y-%m-%d/%{source}-%H%M%S.ndjson", "app", T1_MS, buf, sizeof(buf)),
        (int)strlen("/l/2026-01-26/app-123456.ndjson"));
    ck_assert_str_eq(buf, "/l/2026-01-26/app-123456.ndjson");
    sl_pathtmpl_expand("%F %y %j %G-W%V-%u 100%%", NULL, T1_MS, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2026-01-26 26 026 2026-W05-1 100%");
    /* Too small: refused, never cut. */
    ck_assert_int_eq(sl_pathtmpl_expand("/l/%Y/x", NULL, T1_MS, buf, 8), -1);
    ck_assert_int_eq(sl_pathtmpl_expand("/l/%a", NULL, T1_MS, buf, sizeof(buf)), -1);
}
END_TEST

START_TEST(test_pathtmpl_glob_matches_expansions)
{
    static const char *const tmpls[] = {
        "/l/%Y-%m-%d/%{source}-%H.ndjson",
        "/l/[x]*?/%F.ndjson",
        "/l/100%%/%j-%u.ndjson",
    };
    char pat[512], path[256];

    for (size_t i = 0; i < sizeof(tmpls) / sizeof(tmpls[0]); i++) {
        ck_assert_int_gt(sl_pathtmpl_glob(tmpls[i], "web", pat, sizeof(pat)), 0);
        for (int64_t t = 0; t < 400; t++) {
            int64_t when = T1_MS + t * 86400000LL / 3;
            ck_assert_int_gt(sl_pathtmpl_expand(tmpls[i], "web", when, path, sizeof(path)), 0);
            ck_assert_msg(fnmatch(pat, path, FNM_PATHNAME) == 0, "%s does not match %s", path, pat);
        }
    }
    /* Literal text is literal: a look-alike does not match. */
    sl_pathtmpl_glob("/l/[x]*?/%F.ndjson", NULL, pat, sizeof(pat));
    ck_assert_int_ne(fnmatch(pat, "/l/xyz/2026-01-26.ndjson", FNM_PATHNAME), 0);
    ck_assert_int_eq(fnmatch(pat, "/l/[x]*?/2026-01-26.ndjson", FNM_PATHNAME), 0);
    ck_assert_int_ne(fnmatch(pat, "/l/[x]*?/2026-1-26.ndjson", FNM_PATHNAME), 0);
}
END_TEST

START_TEST(test_pathtmpl_stamps)
{
    char a[SL_PATHTMPL_STAMP_LEN + 1], b[SL_PATHTMPL_STAMP_LEN + 1];
    int64_t t;

    sl_pathtmpl_stamp(T1_MS, a);
    ck_assert_str_eq(a, "20260126T123456.789Z");
    ck_assert_int_eq(sl_pathtmpl_parse_stamp(a, &t), 0);
    ck_assert_int_eq(t, T1_MS);
    /* Fixed width: string order is time order. */
    for (int64_t d = 1; d < 100000000000LL; d *= 7) {
        sl_pathtmpl_stamp(T1_MS + d, b);
        ck_assert_msg(strcmp(a, b) < 0, "%s !< %s", a, b);
        ck_assert_int_eq(sl_pathtmpl_parse_stamp(b, &t), 0);
        ck_assert_int_eq(t, T1_MS + d);
    }
    static const char *const bad[] = {
        "20260126T123456.789",  "20260126 123456.789Z", "20261326T123456.789Z",
        "20260132T123456.789Z", "20260126T253456.789Z", "2026012aT123456.789Z",
        "20260126T123456,789Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(sl_pathtmpl_parse_stamp(bad[i], &t) == -1, "accepted %s", bad[i]);
    }
}
END_TEST

START_TEST(test_pathtmpl_path_dir)
{
    static const char *const cases[][2] = {
        {"/a/b/c", "/a/b"}, {"/a//b", "/a"}, {"c", "."},   {"/c", "/"},
        {"a/b", "a"},       {"./x", "."},    {"//x", "/"}, {"/a/b/", "/a/b"},
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_str_eq(sl_path_dir(cases[i][0], buf, sizeof(buf)), cases[i][1]);
    }
}
END_TEST

static Suite *
pathtmpl_suite(void)
{
    Suite *s = suite_create("pathtmpl");
    TCase *tc = tcase_create("pathtmpl");

    tcase_add_test(tc, test_pathtmpl_check);
    tcase_add_test(tc, test_pathtmpl_expand);
    tcase_add_test(tc, test_pathtmpl_glob_matches_expansions);
    tcase_add_test(tc, test_pathtmpl_stamps);
    tcase_add_test(tc, test_pathtmpl_path_dir);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pathtmpl_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
