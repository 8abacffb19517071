/*
 * fuzz — what every fuzz target in tests/fuzz/ shares.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput() and checks one
 * property of pure daemon code (no sockets, no threads, no files except
 * fuzz_config's memfd).  A property that fails calls fuzz_fail(), which
 * prints the reason and aborts, so libFuzzer saves the input as a crash.
 *
 * Two builds of each target (Makefile):
 *   - `make fuzz`: clang -fsanitize=fuzzer,address,undefined, run by
 *     libFuzzer for FUZZ_SECONDS on tests/fuzz/corpus/<name>/;
 *   - `make check`: gcc, linked with replay.c, a Check suite that feeds
 *     every file of tests/fuzz/corpus/<name>/ and tests/fuzz/regressions/<name>/
 *     to the same function, so every crash ever found stays a test.
 */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_fail(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "fuzz property failed at %s:%d: ", __FILE__, __LINE__);                    \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define fuzz_require(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fuzz_fail(__VA_ARGS__);                                                                \
        }                                                                                          \
    } while (0)

/*
 * A little deterministic randomness taken from the input itself, so a saved
 * input replays exactly: fuzz_take() consumes bytes from the front of the
 * input (0 when it is used up).
 */
struct fuzz_input {
    const uint8_t *p;
    size_t n;
};

static inline uint32_t
fuzz_take(struct fuzz_input *in, unsigned bytes)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        v <<= 8;
        if (in->n > 0) {
            v |= *in->p++;
            in->n--;
        }
    }
    return v;
}

#endif
