/*
 * Unit tests for the syslog codec: src/codec/syslog_parse.c and
 * src/codec/codec_syslog.c.
 *
 * The cases are data: every *.txt in tests/data/syslog/ (format in its
 * README.md), found through $SLUICE_TOP.  Each input is encoded and the
 * output must pass the project's validator and equal (json_equal: key order
 * free) the expected object, with and without add_fields, through the
 * direct and the scratch path; output buffers are heap blocks of exactly
 * the room given, so AddressSanitizer catches any overrun.  Mutations of
 * every input (cuts, byte flips) must still give valid JSON.
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
#include <time.h>

#include "codec/encode.h"
#include "codec/syslog_parse.h"
#include "codec/validate.h"
#include "daemon/registry.h"
#include "sluice/codec.h"

#define DEFAULT_RECV "2026-06-15T12:00:00Z"
#define MAX_CASES 512

struct syslog_case {
    char file[64];
    char name[128];
    char *in;
    size_t inlen;
    char *out; /* expected JSON text */
    bool unparsed;
    char recv[40];
    int format;
    int32_t tz;
};

static struct syslog_case cases[MAX_CASES];
static size_t ncases;

static const char *
corpus_top(void)
{
    const char *top = getenv("SLUICE_TOP");
    return top != NULL && *top != '\0' ? top : ".";
}

static uint64_t
recv_ns_of(const char *rfc3339)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ck_assert_msg(end != NULL && *end == '\0', "bad recv: %s", rfc3339);
    return (uint64_t)timegm(&tm) * 1000000000u;
}

/* \xNN \t \n \r \\ decoded into a new buffer. */
static char *
unescape(const char *s, size_t *len)
{
    char *out = malloc(strlen(s) + 1);
    size_t n = 0;
    ck_assert_ptr_nonnull(out);
    for (; *s != '\0'; s++) {
        if (*s != '\\' || s[1] == '\0') {
            out[n++] = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'x': {
            char hex[3] = {s[1], s[2], '\0'};
            out[n++] = (char)strtoul(hex, NULL, 16);
            s += 2;
            break;
        }
        case 't':
            out[n++] = '\t';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        default:
            out[n++] = *s;
            break;
        }
    }
    *len = n;
    return out;
}

static void
case_finish(struct syslog_case *c)
{
    if (c->name[0] == '\0') {
        return;
    }
    ck_assert_msg(c->in != NULL && c->out != NULL, "%s: case %s needs in and out", c->file,
                  c->name);
    ck_assert_uint_lt(ncases, MAX_CASES);
    cases[ncases++] = *c;
}

static void
load_file(const char *dir, const char *fname)
{
    char path[512], line[8192];
    snprintf(path, sizeof(path), "%s/%s", dir, fname);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct syslog_case c;
    memset(&c, 0, sizeof(c));
    snprintf(c.file, sizeof(c.file), "%s", fname);
    snprintf(c.recv, sizeof(c.recv), "%s", DEFAULT_RECV);
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (line[0] == '#') {
            continue;
        }
        if (n == 0) {
            case_finish(&c);
            memset(&c, 0, sizeof(c));
            snprintf(c.file, sizeof(c.file), "%s", fname);
            snprintf(c.recv, sizeof(c.recv), "%s", DEFAULT_RECV);
            continue;
        }
        char *colon = strstr(line, ": ");
        char *v = colon != NULL ? colon + 2 : line + n;
        if (colon == NULL && n > 0 && line[n - 1] == ':') {
            colon = line + n - 1; /* "in:" with an empty value cannot occur; keys only */
        }
        ck_assert_msg(colon != NULL, "%s: bad line: %s", fname, line);
        *colon = '\0';
        if (strcmp(line, "name") == 0) {
            snprintf(c.name, sizeof(c.name), "%s", v);
        } else if (strcmp(line, "in") == 0) {
            c.in = strdup(v);
            c.inlen = strlen(v);
        } else if (strcmp(line, "inx") == 0) {
            c.in = unescape(v, &c.inlen);
        } else if (strcmp(line, "out") == 0) {
            c.out = strdup(v);
        } else if (strcmp(line, "unparsed") == 0) {
            c.unparsed = strcmp(v, "yes") == 0;
        } else if (strcmp(line, "recv") == 0) {
            snprintf(c.recv, sizeof(c.recv), "%s", v);
        } else if (strcmp(line, "format") == 0) {
            c.format = strcmp(v, "rfc5424") == 0   ? SL_SYSLOG_RFC5424
                       : strcmp(v, "rfc3164") == 0 ? SL_SYSLOG_RFC3164
                                                   : SL_SYSLOG_AUTO;
        } else if (strcmp(line, "tz") == 0) {
            ck_assert_msg(sl_syslog_parse_zone(v, &c.tz) == 0, "%s: bad tz %s", fname, v);
        } else {
            ck_abort_msg("%s: unknown key %s", fname, line);
        }
    }
    case_finish(&c);
    fclose(f);
}

static void
load_corpus(void)
{
    char dir[512];
    if (ncases > 0) {
        return;
    }
    snprintf(dir, sizeof(dir), "%s/tests/data/syslog", corpus_top());
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open corpus %s: %s (set SLUICE_TOP)", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".txt") == 0) {
            load_file(dir, e->d_name);
        }
    }
    closedir(d);
    ck_assert_uint_ge(ncases, 70);
}

struct encoded {
    enum sl_encode_result r;
    char *out; /* heap, exactly room bytes */
    size_t len;
    bool unparsed;
};

/* Encodes with exactly room bytes of output and scratch_bytes of scratch. */
static struct encoded
encode(const char *in, size_t len, const char *fields, const struct sl_codec_opts *opts,
       uint64_t recv_ns, size_t room, size_t max_out)
{
    struct encoded e;
    size_t sb = sl_codec_syslog.scratch_bytes(len);
    char *scratch = malloc(sb);
    char *copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(scratch);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, in, len);
    e.out = malloc(room > 0 ? room : 1);
    ck_assert_ptr_nonnull(e.out);
    e.len = 0;
    e.r = sl_encode_syslog(copy, len, fields, fields != NULL ? strlen(fields) : 0, opts, recv_ns,
                           scratch, e.out, room, max_out, &e.len, &e.unparsed);
    free(copy);
    free(scratch);
    return e;
}

/* The worst-case room: what the codec writes directly into. */
static size_t
big_room(size_t len, const char *fields)
{
    return sl_codec_syslog.scratch_bytes(len) + (fields != NULL ? strlen(fields) + 1 : 0);
}

static json_t *
check_valid(const struct syslog_case *c, const struct encoded *e)
{
    json_error_t err;
    ck_assert_msg(e->r == SL_ENCODE_OK, "%s: encode result %d", c->name, e->r);
    ck_assert_msg(e->len > 0 && e->out[e->len - 1] == '\n', "%s: no newline", c->name);
    ck_assert_msg(sl_validate_object(e->out, e->len - 1, NULL) == SL_VALID,
                  "%s: output fails the validator: %.*s", c->name, (int)e->len, e->out);
    json_t *got = json_loadb(e->out, e->len - 1, 0, &err);
    ck_assert_msg(got != NULL, "%s: jansson refuses %.*s: %s", c->name, (int)e->len, e->out,
                  err.text);
    return got;
}

static void
check_case(const struct syslog_case *c)
{
    struct sl_codec_opts opts = {.syslog_format = c->format, .syslog_tz_offset_s = c->tz};
    uint64_t recv = recv_ns_of(c->recv);
    json_error_t err;
    json_t *want = json_loads(c->out, 0, &err);
    ck_assert_msg(want != NULL, "%s: bad expected JSON: %s", c->name, err.text);

    struct encoded e =
        encode(c->in, c->inlen, NULL, &opts, recv, big_room(c->inlen, NULL), 1 << 20);
    json_t *got = check_valid(c, &e);
    char *gs = json_dumps(got, JSON_SORT_KEYS);
    char *ws = json_dumps(want, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(got, want), "%s:\n got  %s\n want %s", c->name, gs, ws);
    ck_assert_msg(e.unparsed == c->unparsed, "%s: unparsed %d, want %d", c->name, e.unparsed,
                  c->unparsed);
    free(gs);
    free(ws);

    /* add_fields: spliced in, through the direct path and, with a room of
     * exactly the output, through scratch: the same bytes. */
    const char *fields = "\"received_at\":\"2026-06-15T12:00:00.000000Z\",\"source\":\"s\"";
    struct encoded f =
        encode(c->in, c->inlen, fields, &opts, recv, big_room(c->inlen, fields), 1 << 20);
    json_t *gotf = check_valid(c, &f);
    ck_assert_str_eq(json_string_value(json_object_get(gotf, "source")), "s");
    json_object_del(gotf, "source");
    json_object_del(gotf, "received_at");
    ck_assert_msg(json_equal(gotf, want), "%s: with fields differs", c->name);
    struct encoded x = encode(c->in, c->inlen, fields, &opts, recv, f.len, f.len);
    ck_assert_msg(x.r == SL_ENCODE_OK && x.len == f.len && memcmp(x.out, f.out, f.len) == 0,
                  "%s: scratch path differs", c->name);
    struct encoded nr = encode(c->in, c->inlen, fields, &opts, recv, f.len - 1, 1 << 20);
    ck_assert_msg(nr.r == SL_ENCODE_NO_ROOM, "%s: one byte short: %d", c->name, nr.r);
    struct encoded tl = encode(c->in, c->inlen, fields, &opts, recv, f.len - 1, f.len - 1);
    ck_assert_msg(tl.r == SL_ENCODE_TOO_LARGE, "%s: over max_out: %d", c->name, tl.r);

    json_decref(got);
    json_decref(gotf);
    json_decref(want);
    free(e.out);
    free(f.out);
    free(x.out);
    free(nr.out);
    free(tl.out);
}

START_TEST(test_syslog_corpus)
{
    load_corpus();
    for (size_t i = 0; i < ncases; i++) {
        check_case(&cases[i]);
    }
}
END_TEST

/* Every prefix of every input, and every input with each byte replaced by
 * a few hostile values: any result is OK with valid JSON (the codec never
 * refuses a line), and nothing is read or written out of bounds. */
START_TEST(test_syslog_mutations_stay_valid)
{
    static const unsigned char subst[] = {0x00, ' ', '"', '\\', '[',  ']',  '=',  ':', '<',
                                          '>',  '-', '0', '9',  0x80, 0xc3, 0xff, '\n'};
    struct sl_codec_opts opts = {0};
    load_corpus();
    for (size_t i = 0; i < ncases; i++) {
        const struct syslog_case *c = &cases[i];
        uint64_t recv = recv_ns_of(c->recv);
        char *buf = malloc(c->inlen + 1);
        ck_assert_ptr_nonnull(buf);
        for (int fmt = SL_SYSLOG_AUTO; fmt <= SL_SYSLOG_RFC3164; fmt++) {
            opts.syslog_format = fmt;
            for (size_t cut = 0; cut <= c->inlen; cut++) {
                struct encoded e =
                    encode(c->in, cut, NULL, &opts, recv, big_room(cut, NULL), 1 << 20);
                json_decref(check_valid(c, &e));
                free(e.out);
            }
        }
        opts.syslog_format = SL_SYSLOG_AUTO;
        for (size_t pos = 0; pos < c->inlen; pos++) {
            for (size_t k = 0; k < sizeof(subst); k++) {
                memcpy(buf, c->in, c->inlen);
                buf[pos] = (char)subst[k];
                struct encoded e =
                    encode(buf, c->inlen, NULL, &opts, recv, big_room(c->inlen, NULL), 1 << 20);
                json_decref(check_valid(c, &e));
                free(e.out);
            }
        }
        free(buf);
    }
}
END_TEST

/* The worst case for growth: every byte escaped to six ("\u0001"), in the
 * message and in SD values, still fits scratch_bytes and the bound. */
START_TEST(test_syslog_worst_case_growth)
{
    struct sl_codec_opts opts = {0};
    size_t n = 4096;
    char *line = malloc(n);
    ck_assert_ptr_nonnull(line);
    memcpy(line, "<13>1 - h a - - [x a=\"", 22);
    memset(line + 22, 0x01, n - 22);
    memcpy(line + n / 2, "\"] ", 3);
    struct encoded e = encode(line, n, NULL, &opts, 0, big_room(n, NULL), 1 << 20);
    struct syslog_case c = {.name = "worst-case"};
    json_t *j = check_valid(&c, &e);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "structured_data"), "x"));
    ck_assert_uint_gt(e.len, 5 * n);
    json_decref(j);
    free(e.out);
    free(line);
}
END_TEST

START_TEST(test_syslog_zone)
{
    int32_t off = 1;
    ck_assert_int_eq(sl_syslog_parse_zone("UTC", &off), 0);
    ck_assert_int_eq(off, 0);
    ck_assert_int_eq(sl_syslog_parse_zone("+01:00", &off), 0);
    ck_assert_int_eq(off, 3600);
    ck_assert_int_eq(sl_syslog_parse_zone("-0930", &off), 0);
    ck_assert_int_eq(off, -(9 * 3600 + 30 * 60));
    ck_assert_int_eq(sl_syslog_parse_zone("Europe/Paris", &off), -1);
    ck_assert_int_eq(sl_syslog_parse_zone("+24:00", &off), -1);
    ck_assert_int_eq(sl_syslog_parse_zone("+01:60", &off), -1);
    ck_assert_int_eq(sl_syslog_parse_zone("+1:00", &off), -1);
    ck_assert_int_eq(sl_syslog_parse_zone("", &off), -1);
}
END_TEST

START_TEST(test_syslog_format_time)
{
    char buf[32];
    size_t n = sl_syslog_format_time(0, 0, buf);
    ck_assert_uint_eq(n, 27);
    ck_assert_int_eq(memcmp(buf, "1970-01-01T00:00:00.000000Z", 27), 0);
    sl_syslog_format_time(-1, 999999, buf);
    ck_assert_int_eq(memcmp(buf, "1969-12-31T23:59:59.999999Z", 27), 0);
    sl_syslog_format_time(253402300799LL, 1, buf);
    ck_assert_int_eq(memcmp(buf, "9999-12-31T23:59:59.000001Z", 27), 0);
    sl_syslog_format_time(951782400LL, 0, buf); /* leap day 2000 */
    ck_assert_int_eq(memcmp(buf, "2000-02-29T00:00:00.000000Z", 27), 0);
}
END_TEST

START_TEST(test_syslog_names)
{
    ck_assert_str_eq(sl_syslog_facility_name(1), "user");
    ck_assert_str_eq(sl_syslog_facility_name(23), "local7");
    ck_assert_str_eq(sl_syslog_severity_name(5), "notice");
    ck_assert_str_eq(sl_syslog_severity_name(0), "emerg");
}
END_TEST

static Suite *
syslog_suite(void)
{
    Suite *s = suite_create("syslog");
    TCase *tc = tcase_create("corpus");
    tcase_add_test(tc, test_syslog_corpus);
    suite_add_tcase(s, tc);

    tc = tcase_create("robust");
    tcase_add_test(tc, test_syslog_mutations_stay_valid);
    tcase_add_test(tc, test_syslog_worst_case_growth);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_test(tc, test_syslog_zone);
    tcase_add_test(tc, test_syslog_format_time);
    tcase_add_test(tc, test_syslog_names);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(syslog_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
