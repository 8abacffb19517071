/*
 * validate — an allocation-free JSON syntax checker for one event.
 *
 * sl_validate_object() accepts exactly the inputs that jansson 2.14's
 * json_loadb(buf, len, 0, &err) accepts *and* whose root is an object:
 * RFC 8259 syntax, UTF-8 only, no "\u0000" escape, no unpaired surrogates,
 * integers that fit in json_int_t (long long) and reals that do not overflow
 * a double (underflow is fine), at most 2048 levels of values (jansson's
 * JSON_PARSER_MAX_DEPTH; the root is level 1 and scalars count), whitespace
 * allowed around the root and nothing after it; with one difference: an
 * input holding a NUL byte anywhere is refused, where jansson accepts one NUL
 * right after a number or literal ({"a":1\0}, not JSON).  src/codec/validate.c
 * lists the rules in detail; tests/check_validate.c compares the two verdicts
 * on every input of the corpus in tests/data/json/ and on mutated inputs.
 *
 * Pure function: no allocation, no globals, safe from any thread.  The input
 * is borrowed for the call only and need not be NUL-terminated.
 */
#ifndef SLUICE_VALIDATE_H
#define SLUICE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl_validate_result {
    SL_VALID = 0,
    SL_INVALID_SYNTAX,     /* not JSON, or trailing bytes after the root */
    SL_INVALID_NOT_OBJECT, /* valid JSON whose root is an array or a scalar */
    SL_INVALID_UTF8,       /* malformed UTF-8 or a bad \u escape */
    SL_INVALID_DEPTH,      /* nested deeper than SL_VALIDATE_MAX_DEPTH */
    SL_INVALID_NUMBER,     /* integer overflows long long or real overflows double */
};

#define SL_VALIDATE_MAX_DEPTH 2048

/*
 * Checks buf[0..len).  Returns SL_VALID or the reason for the first error
 * found, reading left to right.  buf is borrowed for the call and may hold
 * any bytes; it need not be NUL-terminated and nothing past len is read.
 * If empty is not NULL, *empty is set: true when the result is SL_VALID and
 * the root object has no members ("{}", "{ }"), which callers splicing fields
 * into it need to know; false otherwise.
 * Thread: any.
 */
enum sl_validate_result sl_validate_object(const char *buf, size_t len, bool *empty);

/*
 * The same verdict and *empty as sl_validate_object(), always by the
 * byte-by-byte string scan (sl_validate_object() skips strings with a quote
 * index when the line allows: validate.c).  For the tests that hold the
 * two paths equal, and for benchmarks.  Thread: any.
 */
enum sl_validate_result sl_validate_object_bytewise(const char *buf, size_t len, bool *empty);

/*
 * The same verdict and *empty as sl_validate_object(), for a line whose
 * quote index the caller has built already (newline framing does, in the
 * same pass that finds the newlines: framing.c, THE LINE INDEX): bit i of
 * quotes set iff buf[i] is '"', bit i of bad set iff buf[i] is '\\', below
 * 0x20 or above 0x7f, no bit at or above len.  Lines of 64 bytes or more
 * ignore the two words.  Thread: any.
 */
enum sl_validate_result sl_validate_object_indexed(const char *buf, size_t len, bool *empty,
                                                   uint64_t quotes, uint64_t bad);

/*
 * The instruction set the quote index is built with (validate.c, "THE
 * 64-BYTE BLOCKS"), and newline framing's blocks with it (framing.c, THE
 * LINE INDEX): chosen once at start from the CPU (AVX2 where present,
 * else SSE2; PORTABLE on other architectures).  sl_validate_set_isa()
 * forces one for the tests that hold the paths equal and for benchmarks
 * (a set the CPU lacks is ignored; BEST chooses again from the CPU) and
 * returns the one before.  Not for use while other threads validate.
 */
enum sl_validate_isa {
    SL_VALIDATE_ISA_BEST,
    SL_VALIDATE_ISA_PORTABLE,
    SL_VALIDATE_ISA_SSE2,
    SL_VALIDATE_ISA_AVX2,
};

enum sl_validate_isa sl_validate_set_isa(enum sl_validate_isa isa);
enum sl_validate_isa sl_validate_get_isa(void);

/*
 * A short static text for a result ("syntax error", "not an object", ...),
 * suitable as a metrics label or log word.  Never NULL.  Thread: any.
 */
const char *sl_validate_reason(enum sl_validate_result r);

#endif
