/*
 * Unit tests for framing: newline framing across arbitrary read
 * boundaries, CRLF, empty lines, max_line_bytes, final line without '\n';
 * RFC 6587 octet counting (sl_frame with octet_counted and auto): headers,
 * digit limits, oversize skips across reads, malformed headers falling back
 * to newline framing, EOF mid-frame, auto detection byte by byte, and the
 * same events at every split point.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/framing.h"
#include "codec/validate.h"

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

/* ---- sl_frame: octet counting and auto --------------------------------------------- */

struct fed {
    size_t max_kept;      /* most bytes left over between reads (not counting stops) */
    size_t max_undecided; /* the same while auto had not decided yet */
};

/* Like feed_split, through sl_frame()/sl_frame_end() with st's framing. */
static void
feed_frames(const char *in, size_t len, const size_t *splits, int nsplits, size_t max_line,
            bool finish, struct collect *c, struct sl_frame_state *st, struct fed *f)
{
    static char buf[1 << 16];
    size_t have = 0, pos = 0;
    for (int i = 0; i <= nsplits; i++) {
        size_t end = i < nsplits ? splits[i] : len;
        ck_assert_uint_le(have + end - pos, sizeof(buf));
        memcpy(buf + have, in + pos, end - pos);
        have += end - pos;
        pos = end;
        bool stopped;
        size_t used;
        do {
            used = sl_frame(st, buf, have, max_line, collect_cb, c, &stopped);
            ck_assert_uint_le(used, have);
            memmove(buf, buf + used, have - used);
            have -= used;
        } while (stopped);
        if (f != NULL && have > f->max_kept) {
            f->max_kept = have;
        }
        if (f != NULL && st->mode == SL_FRAMING_AUTO && have > f->max_undecided) {
            f->max_undecided = have;
        }
    }
    if (finish) {
        while (sl_frame_end(st, buf, have, max_line, collect_cb, c) != 0) {
        }
    }
}

/* Feeds input in pieces at the given split points through newline framing
 * (a zeroed state), like a TCP reader: unconsumed bytes are carried into the
 * next call. */
static void
feed_split(const char *in, size_t len, const size_t *splits, int nsplits, size_t max_line,
           bool finish, struct collect *c, struct sl_frame_state *st)
{
    feed_frames(in, len, splits, nsplits, max_line, finish, c, st, NULL);
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

/*
 * Newline framing takes a read's newlines from 64-byte bitmaps, then memchr
 * for the tail under 64 bytes (framing.c, THE NEWLINE BITMAP): random
 * streams of lines of every length around those edges (with '\r', empty
 * and oversize lines), cut into random reads and refused now and then,
 * give the lines and the oversize count a plain split on '\n' gives.
 */
START_TEST(test_framing_lf_random_reference)
{
    static char in[3000];
    static struct collect c;
    char want[sizeof(c.out)];
    uint64_t s = 0x243f6a8885a308d3ULL;
    const size_t max_line = 150;

    for (int round = 0; round < 3000; round++) {
        size_t len = 0, wlen = 0;
        uint64_t over = 0;
        want[0] = '\0';
        while (len < sizeof(in) - 400) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t n = (size_t)(s >> 33) % (s >> 62 == 0 ? 300 : 130);
            bool cr = (s >> 20) % 5 == 0 && n > 0;
            for (size_t i = 0; i < n; i++) {
                in[len + i] = (char)('a' + (i + len) % 26);
            }
            if (cr) {
                in[len + n - 1] = '\r';
            }
            size_t body = cr ? n - 1 : n;
            if (body > max_line) {
                over++;
            } else if (body > 0) {
                memcpy(want + wlen, in + len, body);
                wlen += body;
                want[wlen++] = '|';
                want[wlen] = '\0';
            }
            len += n;
            in[len++] = '\n';
        }
        size_t sp[8];
        int nsp = (int)(s >> 40) % 9;
        for (int i = 0; i < nsp; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            sp[i] = (size_t)(s >> 33) % (len + 1);
        }
        for (int i = 1; i < nsp; i++) { /* ascending */
            for (int j = i; j > 0 && sp[j - 1] > sp[j]; j--) {
                size_t t = sp[j];
                sp[j] = sp[j - 1];
                sp[j - 1] = t;
            }
        }
        memset(&c, 0, sizeof(c));
        c.stop_at = (int)((s >> 50) % 16);
        struct sl_frame_state st = {0};
        feed_split(in, len, sp, nsp, max_line, false, &c, &st);
        ck_assert_msg(strcmp(c.out, want) == 0, "round %d: lines differ", round);
        ck_assert_uint_eq(st.oversize, over);
    }
}
END_TEST

/* ---- THE LINE INDEX (framing.c): the words handed to the json validator ------------- */

struct index_check {
    const struct sl_frame_state *st;
    const char *buf; /* the bytes being framed (to tell lines across a 64-byte edge) */
    char out[8192];  /* lines joined with '|' */
    size_t len;
    size_t lines;
    size_t indexed;
    size_t straddling; /* indexed lines across a 64-byte edge of buf */
    int stop_in;       /* refuse the line when this counts down to 0 */
};

static int
index_cb(void *arg, const char *line, size_t len)
{
    struct index_check *k = arg;
    if (--k->stop_in == 0) {
        return 1;
    }
    if (k->st->index_line == line) {
        uint64_t q = 0;
        uint64_t b = 0;
        ck_assert_uint_lt(len, 64);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)line[i];
            q |= (uint64_t)(c == '"') << i;
            b |= (uint64_t)(c == '\\' || c < 0x20 || c > 0x7f) << i;
        }
        ck_assert_msg(k->st->index_quotes == q && k->st->index_bad == b,
                      "line %zu (%zu bytes at %td): quotes %#llx bad %#llx, want %#llx %#llx",
                      k->lines, len, line - k->buf, (unsigned long long)k->st->index_quotes,
                      (unsigned long long)k->st->index_bad, (unsigned long long)q,
                      (unsigned long long)b);
        k->indexed++;
        if ((size_t)(line - k->buf) / 64 != (size_t)(line - k->buf + (ptrdiff_t)len - 1) / 64) {
            k->straddling++;
        }
    }
    ck_assert_uint_lt(k->len + len + 2, sizeof(k->out));
    memcpy(k->out + k->len, line, len);
    k->len += len;
    k->out[k->len++] = '|';
    k->out[k->len] = '\0';
    k->lines++;
    return 0;
}

/*
 * Random streams of lines of 0-299 bytes (most under 64) made of quotes,
 * backslashes, control, DEL and non-ASCII bytes among letters, some ending
 * in '\r', some over max_line, cut into reads at random points and refused
 * now and then: every line the framing hands an index with is under 64
 * bytes and its words are the line's quotes and barring bytes, whatever
 * the read, the block or the instruction set; and most short lines get
 * one, lines across a 64-byte edge included (with AVX2; the SSE2 blocks
 * hand out none).
 */
START_TEST(test_framing_line_index)
{
    static const char alphabet[] = {'a',    'b',    '"',    '"',    '"', '\\', '\x01', '\t',
                                    '\x7f', '\x80', '\xc3', '\xff', ' ', '{',  ':',    '\r'};
    static char in[6000];
    static char buf[6000];
    static struct index_check k;
    static char want[sizeof(k.out)];
    const enum sl_validate_isa isas[] = {SL_VALIDATE_ISA_SSE2, SL_VALIDATE_ISA_AVX2};
    const size_t max_line = 200;

    for (size_t ii = 0; ii < sizeof(isas) / sizeof(isas[0]); ii++) {
        sl_validate_set_isa(isas[ii]);
        if (sl_validate_get_isa() != isas[ii]) {
            continue; /* no AVX2 on this CPU */
        }
        uint64_t s = 0x13198a2e03707344ULL;
        size_t lines = 0, indexed = 0, straddling = 0, short_lines = 0;
        for (int round = 0; round < 400; round++) {
            size_t len = 0, wlen = 0;
            want[0] = '\0';
            while (len < 3000) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                size_t n = (size_t)(s >> 33) % (s >> 61 == 0 ? 300 : 64);
                for (size_t i = 0; i < n; i++) {
                    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                    in[len + i] = alphabet[(s >> 40) % (sizeof(alphabet) - 1)];
                }
                size_t body = n;
                if (n > 0 && (s >> 20) % 5 == 0) {
                    in[len + n - 1] = '\r';
                    body--;
                }
                if (body > 0 && body <= max_line) {
                    memcpy(want + wlen, in + len, body);
                    wlen += body;
                    want[wlen++] = '|';
                    want[wlen] = '\0';
                    short_lines += body < 64;
                }
                len += n;
                in[len++] = '\n';
            }
            memset(&k, 0, sizeof(k));
            struct sl_frame_state st = {0};
            k.st = &st;
            k.stop_in = -1;
            size_t have = 0, pos = 0;
            while (pos < len) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                size_t n = 1 + (size_t)(s >> 33) % (s >> 62 == 0 ? 40 : 1500);
                if (n > len - pos) {
                    n = len - pos;
                }
                memcpy(buf + have, in + pos, n);
                have += n;
                pos += n;
                bool stopped;
                do {
                    k.buf = buf;
                    k.stop_in = (s >> 58) % 4 == 0 ? (int)((s >> 50) % 20) + 1 : -1;
                    size_t used = sl_frame_lines(&st, buf, have, max_line, index_cb, &k, &stopped);
                    memmove(buf, buf + used, have - used);
                    have -= used;
                    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                } while (stopped);
            }
            ck_assert_msg(strcmp(k.out, want) == 0, "round %d: lines differ", round);
            lines += k.lines;
            indexed += k.indexed;
            straddling += k.straddling;
        }
        ck_assert_uint_gt(lines, 10000);
        if (isas[ii] == SL_VALIDATE_ISA_SSE2) {
            ck_assert_uint_eq(indexed, 0); /* the SSE2 blocks take newlines only */
            continue;
        }
        /* Lines in the tail of a read (memchr) or after a long line go
         * without; most do not. */
        ck_assert_msg(indexed > short_lines / 2, "%zu of %zu short lines indexed", indexed,
                      short_lines);
        ck_assert_uint_gt(straddling, 1000);
    }
    sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
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

struct want {
    const char *events; /* joined with '|' */
    uint64_t oversize;
    uint64_t errors;
};

static void
run_framed(enum sl_framing framing, const char *in, size_t len, size_t max_line, bool finish,
           struct want w)
{
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st;
    sl_frame_init(&st, framing, NULL);
    feed_frames(in, len, NULL, 0, max_line, finish, &c, &st, NULL);
    ck_assert_msg(strcmp(c.out, w.events) == 0, "%s: got \"%s\", want \"%s\"",
                  sl_framing_name(framing), c.out, w.events);
    ck_assert_uint_eq(st.oversize, w.oversize);
    ck_assert_uint_eq(st.errors, w.errors);
}

static void
octet(const char *in, size_t max_line, bool finish, struct want w)
{
    run_framed(SL_FRAMING_OCTET, in, strlen(in), max_line, finish, w);
}

START_TEST(test_framing_octet_basic)
{
    octet("4 <1>a5 <2>bc", 100, true, (struct want){"<1>a|<2>bc|", 0, 0});
    /* The content may hold newlines: that is what the count is for. */
    octet("8 <1>a\nb\nc10 <2>x\r\ny\r\nz", 100, true,
          (struct want){"<1>a\nb\nc|<2>x\r\ny\r\nz|", 0, 0});
    /* A content that is only a line end is empty and skipped, like an empty line. */
    octet("1 \n4 <1>a", 100, true, (struct want){"<1>a|", 0, 0});
}
END_TEST

START_TEST(test_framing_octet_line_ends)
{
    /* '\n' and '\r' between frames (after a frame, before the first) are
     * ignored; one trailing "\n" or "\r\n" inside a frame is removed. */
    octet("\n4 <1>a\n5 <2>bc\r\n\n6 <3>d\r\n7 <4>ef\n\n", 100, true,
          (struct want){"<1>a|<2>bc|<3>d|<4>ef\n|", 0, 0});
}
END_TEST

START_TEST(test_framing_octet_max_line)
{
    /* count == max_line is an event; max_line + 1 is skipped and counted,
     * and the frames around it are kept. */
    octet("5 <1>ab6 <1>abc4 <2>x", 5, true, (struct want){"<1>ab|<2>x|", 1, 0});
}
END_TEST

START_TEST(test_framing_octet_ten_digits)
{
    /* Ten digits are a count (here oversize, skipped as it arrives:
     * nothing of it is kept). */
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st;
    struct fed f = {0};
    char in[64];
    int n = snprintf(in, sizeof(in), "9999999999 %s", "<1>some bytes of it");
    sl_frame_init(&st, SL_FRAMING_OCTET, NULL);
    feed_frames(in, (size_t)n, NULL, 0, 100, false, &c, &st, &f);
    ck_assert_uint_eq(st.oversize, 1);
    ck_assert_uint_eq(st.errors, 0);
    ck_assert_uint_eq(st.skip, 9999999999ull - 19);
    ck_assert_uint_eq(f.max_kept, 0);
    ck_assert_str_eq(c.out, "");
    /* Eleven digits are malformed, whatever the value: newline framing
     * from the header's first byte on. */
    octet("10000000000 <1>a\nnext\n", 100, true, (struct want){"10000000000 <1>a|next|", 0, 1});
    octet("00000000001 <1>a\n", 100, true, (struct want){"00000000001 <1>a|", 0, 1});
}
END_TEST

START_TEST(test_framing_octet_overflow)
{
    /* A count that would overflow 32 and 64 bits is refused at its 11th
     * digit, never accumulated. */
    octet("4294967297 x\n", 100, false, (struct want){"", 1, 0});
    octet("18446744073709551617 <1>a\nok\n", 100, true,
          (struct want){"18446744073709551617 <1>a|ok|", 0, 1});
    octet("999999999999999999999999999999 a\n", 100, true,
          (struct want){"999999999999999999999999999999 a|", 0, 1});
}
END_TEST

START_TEST(test_framing_octet_leading_zero)
{
    octet("4 <1>a05 <1>ab\n", 100, true, (struct want){"<1>a|05 <1>ab|", 0, 1});
    /* Count 0. */
    octet("0 \n4 <1>a", 100, true, (struct want){"0 |4 <1>a|", 0, 1});
}
END_TEST

START_TEST(test_framing_octet_missing_space)
{
    octet("4<1>a\n", 100, true, (struct want){"4<1>a|", 0, 1});
    octet("4 <1>a12x\nb\n", 100, true, (struct want){"<1>a|12x|b|", 0, 1});
    /* Not a digit where a header starts. */
    octet("4 <1>a<2>b\n", 100, true, (struct want){"<1>a|<2>b|", 0, 1});
    octet(" 4 <1>a\n", 100, true, (struct want){" 4 <1>a|", 0, 1});
}
END_TEST

START_TEST(test_framing_octet_fallback_is_for_good)
{
    /* After a malformed header the connection stays newline-framed: a
     * later valid header is text; errors are counted once. */
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st;
    const char *in = "4 <1>ax\n4 <2>b\nx\n";
    sl_frame_init(&st, SL_FRAMING_OCTET, NULL);
    feed_frames(in, strlen(in), NULL, 0, 100, true, &c, &st, NULL);
    ck_assert_str_eq(c.out, "<1>a|x|4 <2>b|x|");
    ck_assert_uint_eq(st.errors, 1);
    ck_assert_ptr_nonnull(st.error);
    ck_assert_msg(strstr(st.error, "newline framing") != NULL, "%s", st.error);
    /* The fallback honours max_line like any newline framing. */
    octet("4 <1>aXXXXXXXXXXX\nok\n", 5, true, (struct want){"<1>a|ok|", 1, 1});
}
END_TEST

START_TEST(test_framing_octet_oversize_across_reads)
{
    /* A 40-byte frame over max_line 8, fed one byte at a time between two
     * good frames: skipped exactly, counted once, never buffered (at most a
     * header's digits are kept between reads), and framing stays in sync. */
    char in[128];
    size_t sp[128];
    int n =
        snprintf(in, sizeof(in), "4 <1>a40 %s4 <2>b", "0123456789012345678901234567890123456789");
    for (int i = 0; i < n - 1; i++) {
        sp[i] = (size_t)i + 1;
    }
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st;
    struct fed f = {0};
    sl_frame_init(&st, SL_FRAMING_OCTET, NULL);
    feed_frames(in, (size_t)n, sp, n - 1, 8, true, &c, &st, &f);
    ck_assert_str_eq(c.out, "<1>a|<2>b|");
    ck_assert_uint_eq(st.oversize, 1);
    ck_assert_uint_eq(st.errors, 0);
    ck_assert_uint_le(f.max_kept, 3); /* "<2>" of the last frame, or "40" */
    /* The same in reads of 7 bytes. */
    for (int i = 0; i * 7 < n; i++) {
        sp[i] = (size_t)i * 7;
    }
    memset(&c, 0, sizeof(c));
    c.stop_at = -1;
    sl_frame_init(&st, SL_FRAMING_OCTET, NULL);
    feed_frames(in, (size_t)n, sp, (n + 6) / 7, 8, true, &c, &st, NULL);
    ck_assert_str_eq(c.out, "<1>a|<2>b|");
    ck_assert_uint_eq(st.oversize, 1);
}
END_TEST

START_TEST(test_framing_octet_eof_mid_frame)
{
    /* A frame cut off by EOF is not an event: counted as a framing error. */
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st;
    octet("4 <1>a10 <2>abc", 100, true, (struct want){"<1>a|", 0, 1});
    octet("4 <1>a10 ", 100, true, (struct want){"<1>a|", 0, 1});
    octet("4 <1>a12", 100, true, (struct want){"<1>a|", 0, 1});
    /* The rest of an oversize frame is already counted as oversize. */
    octet("4 <1>a40 abc", 8, true, (struct want){"<1>a|", 1, 0});
    /* Line ends after the last frame are not a cut-off frame. */
    octet("4 <1>a\n\r\n", 100, true, (struct want){"<1>a|", 0, 0});
    /* After the fallback, EOF ends the last line as newline framing does. */
    octet("4 <1>ax\nlast", 100, true, (struct want){"<1>a|x|last|", 0, 1});
    /* The state is reset to its framing, counters kept. */
    sl_frame_init(&st, SL_FRAMING_OCTET, NULL);
    feed_frames("4 <1>ax\n", 8, NULL, 0, 100, true, &c, &st, NULL);
    ck_assert_uint_eq(st.mode, SL_FRAMING_OCTET);
    ck_assert_uint_eq(st.errors, 1);
}
END_TEST

START_TEST(test_framing_octet_stop_and_resume)
{
    /* The callback refuses each frame once: the same bytes offered again
     * deliver it, nothing lost or repeated. */
    const char *in = "4 <1>a5 <2>bc\n6 <3>def";
    for (int k = 0; k < 3; k++) {
        struct collect c = {.stop_at = k};
        struct sl_frame_state st;
        sl_frame_init(&st, SL_FRAMING_OCTET, NULL);
        feed_frames(in, strlen(in), NULL, 0, 100, true, &c, &st, NULL);
        ck_assert_str_eq(c.out, "<1>a|<2>bc|<3>def|");
        ck_assert_uint_eq(st.errors, 0);
    }
}
END_TEST

/* The framing auto decides for in, fed whole and one byte at a time. */
static void
auto_case(const char *in, const char *want_events, enum sl_framing want_mode)
{
    size_t len = strlen(in);
    size_t sp[256];
    for (size_t pass = 0; pass < 2; pass++) {
        struct collect c = {.stop_at = -1};
        struct sl_frame_state st;
        struct fed f = {0};
        for (size_t i = 0; i + 1 < len; i++) {
            sp[i] = i + 1;
        }
        sl_frame_init(&st, SL_FRAMING_AUTO, NULL);
        feed_frames(in, len, sp, pass == 0 ? 0 : (int)len - 1, 100, false, &c, &st, &f);
        ck_assert_msg(st.mode == want_mode, "\"%s\" (pass %zu): mode %s", in, pass,
                      sl_framing_name(st.mode));
        ck_assert_msg(strcmp(c.out, want_events) == 0, "\"%s\" (pass %zu): got \"%s\"", in, pass,
                      c.out);
        ck_assert_uint_eq(st.errors, 0);
        ck_assert_msg(f.max_undecided <= SL_FRAME_HEAD_MAX, "\"%s\" (pass %zu): kept %zu", in, pass,
                      f.max_undecided);
    }
}

START_TEST(test_framing_auto_detect)
{
    auto_case("4 <1>a5 <2>bc", "<1>a|<2>bc|", SL_FRAMING_OCTET);
    auto_case("1234567890 <1>a\n", "", SL_FRAMING_OCTET); /* ten digits: octet (oversize) */
    auto_case("<13>Jun 23 hello\n", "<13>Jun 23 hello|", SL_FRAMING_LF);
    auto_case("{\"a\":1}\n", "{\"a\":1}|", SL_FRAMING_LF);
    auto_case("12 abc\n", "12 abc|", SL_FRAMING_LF);                   /* no '<' */
    auto_case("12<1>abc\n", "12<1>abc|", SL_FRAMING_LF);               /* no space */
    auto_case("0 <1>\n", "0 <1>|", SL_FRAMING_LF);                     /* leading zero */
    auto_case("12345678901 <1>\n", "12345678901 <1>|", SL_FRAMING_LF); /* 11 digits */
    auto_case("\n4 <1>a\n", "4 <1>a|", SL_FRAMING_LF);
    auto_case(" 4 <1>a\n", " 4 <1>a|", SL_FRAMING_LF);
}
END_TEST

START_TEST(test_framing_auto_undecided)
{
    /* While the first bytes could still start a header nothing is
     * consumed (at most SL_FRAME_HEAD_MAX bytes); at EOF they are one line. */
    struct collect c = {.stop_at = -1};
    struct sl_frame_state st;
    bool stopped;
    char in[] = "1234567890 ";
    sl_frame_init(&st, SL_FRAMING_AUTO, NULL);
    ck_assert_uint_eq(sl_frame(&st, in, 11, 100, collect_cb, &c, &stopped), 0);
    ck_assert(!stopped);
    ck_assert_uint_eq(st.mode, SL_FRAMING_AUTO);
    ck_assert_int_eq(sl_frame_end(&st, "1234567890 ", 11, 100, collect_cb, &c), 0);
    ck_assert_str_eq(c.out, "1234567890 |");
    ck_assert_uint_eq(st.errors, 0);
}
END_TEST

START_TEST(test_framing_octet_every_split_point)
{
    /* Good frames, line ends, an oversize frame, a frame with inner
     * newlines, then a malformed header and newline framing: every single
     * split point and every pair give the same events and counters, for
     * octet_counted and auto, with and without a refused event. */
    const char *in = "4 <1>a\n13 <2>0123456789"
                     "30 <3>xxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "10 <4>a\nb\nc\r\n"
                     "6 <5>def"
                     "7x<6>\nlast\nend";
    const char *want = "<1>a|<2>0123456789|<4>a\nb\nc|<5>def|7x<6>|last|end|";
    size_t len = strlen(in);
    for (int fr = 0; fr < 2; fr++) {
        enum sl_framing framing = fr == 0 ? SL_FRAMING_OCTET : SL_FRAMING_AUTO;
        for (size_t i = 0; i <= len; i++) {
            for (size_t j = i; j <= len; j++) {
                struct collect c = {.stop_at = (int)((i + j) % 8) - 1};
                struct sl_frame_state st;
                struct fed f = {0};
                size_t sp[2] = {i, j};
                sl_frame_init(&st, framing, NULL);
                feed_frames(in, len, sp, 2, 16, true, &c, &st, &f);
                ck_assert_msg(strcmp(c.out, want) == 0, "%s splits %zu,%zu: got \"%s\"",
                              sl_framing_name(framing), i, j, c.out);
                ck_assert_uint_eq(st.oversize, 1);
                ck_assert_uint_eq(st.errors, 1);
                ck_assert_uint_le(f.max_kept, 16 + 1);
            }
        }
    }
}
END_TEST

START_TEST(test_framing_octet_fold_newlines)
{
    /* For a codec that writes events verbatim (json), a '\n' inside a
     * frame becomes a space, so the output stays one line; the trailing
     * line end is removed first; raw keeps the newlines. */
    static const struct sl_codec_type verbatim = {.name = "v", .single_line = true};
    static const struct sl_codec_type escaped = {.name = "e"};
    const char *in = "12 {\"a\":\n1,\r\n}\n7 {\"b\":2}";
    struct collect c = {.stop_at = 0};
    struct sl_frame_state st;
    sl_frame_init(&st, SL_FRAMING_OCTET, &verbatim);
    feed_frames(in, strlen(in), NULL, 0, 100, true, &c, &st, NULL);
    ck_assert_str_eq(c.out, "{\"a\": 1,\r }|{\"b\":2}|");
    memset(&c, 0, sizeof(c));
    c.stop_at = -1;
    sl_frame_init(&st, SL_FRAMING_OCTET, &escaped);
    feed_frames(in, strlen(in), NULL, 0, 100, true, &c, &st, NULL);
    ck_assert_str_eq(c.out, "{\"a\":\n1,\r\n}|{\"b\":2}|");
    /* Newline framing never folds (it has no '\n' inside an event). */
    memset(&c, 0, sizeof(c));
    c.stop_at = -1;
    sl_frame_init(&st, SL_FRAMING_LF, &verbatim);
    feed_frames("a\nb\n", 4, NULL, 0, 100, true, &c, &st, NULL);
    ck_assert_str_eq(c.out, "a|b|");
}
END_TEST

START_TEST(test_framing_lf_through_sl_frame)
{
    /* lf (and a zeroed state) is exactly sl_frame_lines. */
    struct sl_frame_state zero = {0};
    ck_assert_uint_eq(zero.mode, SL_FRAMING_LF);
    run_framed(SL_FRAMING_LF, "4 <1>a\n{\"a\":1}\r\n\n123456\nend", 27, 6, true,
               (struct want){"4 <1>a|123456|end|", 1, 0});
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
    tcase_add_test(tc, test_framing_lf_random_reference);
    tcase_add_test(tc, test_framing_line_index);
    tcase_add_test(tc, test_framing_byte_by_byte_oversize);
    tcase_add_test(tc, test_framing_stop_and_resume);
    tcase_add_test(tc, test_framing_partial_kept_bounded);
    suite_add_tcase(s, tc);
    tc = tcase_create("octet");
    tcase_add_test(tc, test_framing_octet_basic);
    tcase_add_test(tc, test_framing_octet_line_ends);
    tcase_add_test(tc, test_framing_octet_max_line);
    tcase_add_test(tc, test_framing_octet_ten_digits);
    tcase_add_test(tc, test_framing_octet_overflow);
    tcase_add_test(tc, test_framing_octet_leading_zero);
    tcase_add_test(tc, test_framing_octet_missing_space);
    tcase_add_test(tc, test_framing_octet_fallback_is_for_good);
    tcase_add_test(tc, test_framing_octet_oversize_across_reads);
    tcase_add_test(tc, test_framing_octet_eof_mid_frame);
    tcase_add_test(tc, test_framing_octet_stop_and_resume);
    tcase_add_test(tc, test_framing_octet_every_split_point);
    tcase_add_test(tc, test_framing_octet_fold_newlines);
    tcase_add_test(tc, test_framing_lf_through_sl_frame);
    suite_add_tcase(s, tc);
    tc = tcase_create("auto");
    tcase_add_test(tc, test_framing_auto_detect);
    tcase_add_test(tc, test_framing_auto_undecided);
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
