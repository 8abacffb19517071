/*
 * jsonchar — byte-level helpers shared by the validator and the escaper:
 * well-formed UTF-8 sequences and a word-at-a-time test for the bytes that
 * end a plain run inside a JSON string.  Pure inline functions.
 */
#ifndef SLUICE_JSONCHAR_H
#define SLUICE_JSONCHAR_H

#include <stddef.h>
#include <stdint.h>

#define SL_JSONCHAR_ONES 0x0101010101010101ull
#define SL_JSONCHAR_HIGH 0x8080808080808080ull

/*
 * Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80, n bytes
 * available), or 0.  The ranges are those of Unicode 15 table 3-7: they
 * reject overlong forms, surrogates and code points above U+10FFFF, as
 * jansson's utf8_check_full() does.
 */
static inline size_t
sl_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t len;

    if (c < 0xc2) {
        return 0;
    } else if (c < 0xe0) {
        len = 2;
    } else if (c < 0xf0) {
        len = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;
        }
    } else if (c < 0xf5) {
        len = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

/*
 * Flags (bit 7 of a byte) the bytes of the 8-byte word w that end a plain
 * run in a JSON string: '"', '\\', below 0x20 or above 0x7f.  Bit 7 of w
 * flags the high bytes itself; for an ASCII byte b, b - 0x20,
 * (b ^ '"') - 1 and (b ^ '\\') - 1 have bit 7 set exactly when b is
 * special.  A borrow only leaves a flagged byte, so false flags can appear
 * above a true one but never below: on little-endian the lowest flag is
 * exact (later ones may be false and must not be used).
 */
static inline uint64_t
sl_json_special8(uint64_t w)
{
    return ((w - SL_JSONCHAR_ONES * 0x20) | ((w ^ (SL_JSONCHAR_ONES * '"')) - SL_JSONCHAR_ONES) |
            ((w ^ (SL_JSONCHAR_ONES * '\\')) - SL_JSONCHAR_ONES) | w) &
           SL_JSONCHAR_HIGH;
}

#endif
