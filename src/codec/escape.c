/*
 * escape — writes arbitrary bytes as the body of a JSON string.
 *
 * Runs on any thread; owns nothing.  sl_escape_json() borrows its input and
 * output buffers for the call only and allocates nothing.
 *
 * Output matches jansson 2.14's dump_string() with default flags for valid
 * UTF-8: only '"', '\\' and bytes below 0x20 are escaped ("\/" is not used,
 * 0x7f and U+2028/U+2029 pass through raw), with the short forms \b \f \n \r \t
 * and otherwise "\u00XX" in upper-case hex.  Runs of bytes that need nothing
 * are copied eight at a time: each word is stored whole and the output
 * advanced only past its leading plain bytes, which is safe because the
 * caller's buffer holds SL_ESCAPE_MAX(len) bytes and every input byte yields
 * at least one output byte.
 *
 * Invalid UTF-8 is repaired one byte at a time: at a byte that does not start
 * a well-formed sequence (Unicode table 3-7: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncation) that single byte becomes U+FFFD and
 * scanning resumes at the next byte.  So a truncated three-byte sequence
 * E2 82 costs two replacement characters.
 */
#include <stdint.h>
#include <string.h>

#include "codec/escape.h"
#include "codec/jsonchar.h"

/*
 * For each ASCII byte: 0 if copied as is, the second byte of its short escape
 * ('n' for "\n"), or 'u' for the \u00XX form.
 */
static const char escape_ascii[128] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f',  'r', 'u', 'u', /* 0x00 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0x10 */
    0,   0,   '"', 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x20 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x30 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x40 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   '\\', 0,   0,   0,   /* 0x50 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x60 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x70 */
};

static const char escape_hexdigits[16] = "0123456789ABCDEF";

size_t
sl_escape_json(const char *in, size_t len, char *out, size_t *replaced)
{
    const unsigned char *p = (const unsigned char *)in;
    const unsigned char *end = p + len;
    char *o = out;
    size_t bad = 0;

    while (p < end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (end - p >= 8) {
            uint64_t w;
            uint64_t m;

            memcpy(&w, p, sizeof(w));
            m = sl_json_special8(w);
            memcpy(o, &w, sizeof(w));
            if (m != 0) {
                size_t n = (unsigned)__builtin_ctzll(m) >> 3;

                p += n;
                o += n;
                break;
            }
            p += 8;
            o += 8;
        }
        if (p == end) {
            break;
        }
#endif
        unsigned char c = *p;

        if (c < 0x80) {
            char e = escape_ascii[c];

            if (e == 0) {
                *o++ = (char)c;
            } else if (e != 'u') {
                o[0] = '\\';
                o[1] = e;
                o += 2;
            } else {
                memcpy(o, "\\u00", 4);
                o[4] = escape_hexdigits[c >> 4];
                o[5] = escape_hexdigits[c & 0x0f];
                o += 6;
            }
            p++;
        } else {
            size_t n = sl_utf8_seq(p, (size_t)(end - p));

            if (n != 0) {
                memcpy(o, p, n);
                o += n;
                p += n;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                p++;
                bad++;
            }
        }
    }
    if (replaced != NULL) {
        *replaced = bad;
    }
    return (size_t)(o - out);
}
