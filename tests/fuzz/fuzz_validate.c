/*
 * fuzz_validate — differential: the allocation-free validator's verdict on
 * one event equals jansson's (json_loadb(buf, len, 0, &err) succeeding with
 * an object root), on every input, but for one documented difference; and
 * its "empty object" flag equals json_object_size() == 0; and its paths
 * (quote index built with each instruction set the CPU has, byte-by-byte
 * scan: validate.c) agree on both.  The input is
 * the whole event, any bytes.
 *
 * The difference: jansson loses one NUL byte pushed back after a number or
 * literal and accepts {"a":1\0}, which is not JSON; the validator refuses
 * every input holding a NUL byte (RFC 8259 allows none outside a string, and
 * a raw one inside is a control character).  So the expected verdict is
 * jansson's when the input has no NUL and "invalid" when it has one; and
 * when jansson accepts an input with NULs, both must accept it with its NULs
 * deleted, so no other NUL handling of jansson's can hide behind this one.
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "codec/validate.h"

/* jansson accepted data, which holds NULs: without them it is valid for both. */
static void
check_nul_quirk(const uint8_t *data, size_t size)
{
    char *stripped = malloc(size);
    size_t n = 0;
    json_error_t err;

    if (stripped == NULL) {
        abort();
    }
    for (size_t i = 0; i < size; i++) {
        if (data[i] != 0) {
            stripped[n++] = (char)data[i];
        }
    }
    json_t *root = json_loadb(stripped, n, 0, &err);
    enum sl_validate_result r = sl_validate_object(stripped, n, NULL);
    fuzz_require(root != NULL && json_is_object(root) && r == SL_VALID,
                 "jansson accepts %zu bytes with NULs, but without them jansson %s, validator %s",
                 size, root != NULL ? "accepts" : "rejects", sl_validate_reason(r));
    json_decref(root);
    free(stripped);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    bool empty = false;
    enum sl_validate_result r = sl_validate_object((const char *)data, size, &empty);
    json_t *root = json_loadb((const char *)data, size, 0, &err);
    bool jansson = root != NULL && json_is_object(root);
    bool nul = size > 0 && memchr(data, 0, size) != NULL;
    bool want = jansson && !nul;

    bool empty_b = false;
    enum sl_validate_result rb = sl_validate_object_bytewise((const char *)data, size, &empty_b);
    fuzz_require(r == rb && empty == empty_b,
                 "quote-index path says %s (empty %d), byte-by-byte path %s (empty %d)",
                 sl_validate_reason(r), empty, sl_validate_reason(rb), empty_b);
    /* The quote index built with each instruction set the CPU has. */
    static const enum sl_validate_isa isas[] = {SL_VALIDATE_ISA_SSE2, SL_VALIDATE_ISA_AVX2};
    for (size_t k = 0; k < sizeof(isas) / sizeof(isas[0]); k++) {
        sl_validate_set_isa(isas[k]);
        if (sl_validate_get_isa() == isas[k]) {
            bool empty_k = false;
            enum sl_validate_result rk = sl_validate_object((const char *)data, size, &empty_k);
            fuzz_require(rk == rb && empty_k == empty_b,
                         "quote index with isa %d says %s (empty %d), byte-by-byte path %s",
                         (int)isas[k], sl_validate_reason(rk), empty_k, sl_validate_reason(rb));
        }
    }
    sl_validate_set_isa(SL_VALIDATE_ISA_BEST);
    /* A short line with the index newline framing hands over (framing.c). */
    if (size < 64) {
        uint64_t q = 0;
        uint64_t b = 0;
        for (size_t i = 0; i < size; i++) {
            q |= (uint64_t)(data[i] == '"') << i;
            b |= (uint64_t)(data[i] == '\\' || data[i] < 0x20 || data[i] > 0x7f) << i;
        }
        bool empty_i = false;
        enum sl_validate_result ri =
            sl_validate_object_indexed((const char *)data, size, &empty_i, q, b);
        fuzz_require(ri == rb && empty_i == empty_b,
                     "with the caller's index %s (empty %d), byte-by-byte path %s",
                     sl_validate_reason(ri), empty_i, sl_validate_reason(rb));
    }
    fuzz_require((r == SL_VALID) == want, "validator says %s, jansson %s (%s) on %zu bytes%s",
                 sl_validate_reason(r), jansson ? "accepts" : "rejects",
                 root == NULL ? err.text : "parsed", size, nul ? " with a NUL" : "");
    if (want) {
        fuzz_require(empty == (json_object_size(root) == 0), "empty flag %d, jansson size %zu",
                     empty, json_object_size(root));
    } else {
        fuzz_require(!empty, "empty flag set on a rejected input");
    }
    if (jansson && nul) {
        check_nul_quirk(data, size);
    }
    json_decref(root);
    return 0;
}
