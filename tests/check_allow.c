/*
 * Unit tests for allow: parsing CIDR lists (IPv4, IPv6, bare addresses,
 * separators, every refusal with its reason) and matching (prefix edges,
 * /0, /32, /128, IPv4-mapped IPv6 peers, non-IP families, empty list).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util/allow.h"

static struct sockaddr_storage
sa_of(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return ss;
}

static bool
allowed(const struct sl_allow *l, const char *addr)
{
    struct sockaddr_storage ss = sa_of(addr);
    return sl_allow_match(l, (struct sockaddr *)&ss);
}

static void
parse_ok(const char *s, struct sl_allow *l)
{
    char why[256] = "";
    ck_assert_msg(sl_allow_parse(s, l, why, sizeof(why)) == 0, "%s: %s", s, why);
}

static void
parse_bad(const char *s, const char *reason)
{
    struct sl_allow l;
    char why[256] = "";
    ck_assert_msg(sl_allow_parse(s, &l, why, sizeof(why)) < 0, "%s accepted", s);
    ck_assert_msg(strstr(why, reason) != NULL, "%s: \"%s\" lacks \"%s\"", s, why, reason);
}

START_TEST(test_allow_parse_lists)
{
    struct sl_allow l;
    parse_ok("127.0.0.0/8", &l);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.nets[0].bits, 8);
    parse_ok(" 10.0.0.0/8,192.168.1.0/24 ,\t::1/128  fd00::/8", &l);
    ck_assert_uint_eq(l.n, 4);
    ck_assert_uint_eq(l.nets[2].family, AF_INET6);
    parse_ok("127.0.0.2", &l);
    ck_assert_uint_eq(l.nets[0].bits, 32);
    parse_ok("::1", &l);
    ck_assert_uint_eq(l.nets[0].bits, 128);
    parse_ok("0.0.0.0/0, ::/0", &l);
    ck_assert_uint_eq(l.n, 2);
}
END_TEST

START_TEST(test_allow_parse_refusals)
{
    parse_bad("", "nothing");
    parse_bad(" , ", "nothing");
    parse_bad("127.0.0.0/33", "0 to 32");
    parse_bad("::/129", "0 to 128");
    parse_bad("10.0.0.0/", "prefix length");
    parse_bad("10.0.0.0/x", "prefix length");
    parse_bad("10.0.0.0/8x", "0 to 32");
    parse_bad("10.0.0.300/32", "not an IPv4 or IPv6");
    parse_bad("localhost", "not an IPv4 or IPv6");
    parse_bad("/8", "not an address");
    parse_bad("192.168.1.1/24", "bits set below");
    parse_bad("fd00::1/8", "bits set below");
    char many[SL_ALLOW_MAX * 24 + 32] = "";
    for (int i = 0; i <= SL_ALLOW_MAX; i++) {
        char one[24];
        snprintf(one, sizeof(one), "10.0.%d.0/24,", i);
        strcat(many, one);
    }
    parse_bad(many, "more than");
}
END_TEST

START_TEST(test_allow_match_v4)
{
    struct sl_allow l;
    parse_ok("127.0.0.2/31, 10.1.0.0/16", &l);
    ck_assert(allowed(&l, "127.0.0.2"));
    ck_assert(allowed(&l, "127.0.0.3"));
    ck_assert(!allowed(&l, "127.0.0.1"));
    ck_assert(!allowed(&l, "127.0.0.4"));
    ck_assert(allowed(&l, "10.1.255.255"));
    ck_assert(!allowed(&l, "10.2.0.0"));
    ck_assert(!allowed(&l, "::1"));
    /* A dual-stack socket reports IPv4 peers mapped into IPv6. */
    ck_assert(allowed(&l, "::ffff:127.0.0.3"));
    ck_assert(!allowed(&l, "::ffff:127.0.0.1"));
    parse_ok("127.0.0.1/32", &l);
    ck_assert(allowed(&l, "127.0.0.1"));
    ck_assert(!allowed(&l, "127.0.0.2"));
    parse_ok("0.0.0.0/0", &l);
    ck_assert(allowed(&l, "203.0.113.7"));
    ck_assert(!allowed(&l, "2001:db8::1"));
}
END_TEST

START_TEST(test_allow_match_v6)
{
    struct sl_allow l;
    parse_ok("::1/128, 2001:db8:a::/47", &l);
    ck_assert(allowed(&l, "::1"));
    ck_assert(!allowed(&l, "::2"));
    ck_assert(allowed(&l, "2001:db8:a::1"));
    ck_assert(allowed(&l, "2001:db8:b:ffff::1")); /* /47: a and b differ in bit 48 only */
    ck_assert(!allowed(&l, "2001:db8:c::1"));
    ck_assert(!allowed(&l, "127.0.0.1"));
    parse_ok("::/0", &l);
    ck_assert(allowed(&l, "2001:db8::1"));
}
END_TEST

START_TEST(test_allow_match_empty_and_unix)
{
    struct sl_allow none = {.n = 0};
    ck_assert(allowed(&none, "192.0.2.1"));
    struct sl_allow l;
    parse_ok("127.0.0.1", &l);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    ck_assert(sl_allow_match(&l, (struct sockaddr *)&un));
}
END_TEST

static Suite *
allow_suite(void)
{
    Suite *s = suite_create("allow");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_allow_parse_lists);
    tcase_add_test(tc, test_allow_parse_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("match");
    tcase_add_test(tc, test_allow_match_v4);
    tcase_add_test(tc, test_allow_match_v6);
    tcase_add_test(tc, test_allow_match_empty_and_unix);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(allow_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
