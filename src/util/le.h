/*
 * le — little-endian u64 in and out of byte buffers (on-disk bookkeeping:
 * the sinks' checkpoints in a disk queue's state file).  Any thread.
 */
#ifndef SLUICE_UTIL_LE_H
#define SLUICE_UTIL_LE_H

#include <stdint.h>

static inline void
sl_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t
sl_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

#endif
