/*
 * escape — JSON string escaping for the raw codec.
 *
 * Pure functions, no allocation, safe from any thread.
 */
#ifndef SLUICE_ESCAPE_H
#define SLUICE_ESCAPE_H

#include <stddef.h>

/* The most bytes sl_escape_json() can write for len input bytes. */
#define SL_ESCAPE_MAX(len) ((len)*6)

/*
 * Writes the JSON string body (no surrounding quotes) for in[0..len) into
 * out, which has room for at least SL_ESCAPE_MAX(len) bytes.  Returns the
 * number of bytes written.  '"' and '\\' are backslash-escaped; \b \f \n \r
 * \t use their short forms; other bytes below 0x20 become \u00XX
 * (upper-case hex, as jansson writes them); everything else, '/' and 0x7f
 * included, is copied as is when it is valid UTF-8.  Each byte that does not
 * start a well-formed UTF-8 sequence (overlong, surrogate, above U+10FFFF,
 * truncated, stray continuation) becomes U+FFFD (EF BF BD) and scanning goes
 * on at the next byte, so the output is always valid UTF-8 JSON.  For valid
 * UTF-8 input the output equals what jansson's json_dumps() writes for
 * json_stringn(in, len) between the quotes.
 * *replaced (if not NULL) is set to the number of bytes replaced.
 * in and out are borrowed for the call and must not overlap; out is not
 * NUL-terminated, and bytes of out past the returned length, up to
 * SL_ESCAPE_MAX(len), may be overwritten (the fast path stores whole
 * words).  The caller keeps len small enough that SL_ESCAPE_MAX(len) does not
 * overflow.  Thread: any.
 */
size_t sl_escape_json(const char *in, size_t len, char *out, size_t *replaced);

#endif
