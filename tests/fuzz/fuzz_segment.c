/*
 * fuzz_segment — the disk queue's record/segment/state decoders
 * (src/queue/segment.c) over arbitrary bytes.  The first input byte picks
 * the target:
 *   even: the bytes are a segment file, walked the way the disk backlog
 *         reads one (header, then records; a damaged record resyncs on the
 *         next magic).  Properties: the walk ends and always moves forward;
 *         every record it accepts lies within the input and re-encodes to
 *         the very same 40 header bytes; no accepted record overlaps one
 *         accepted before it.
 *   odd:  the bytes are a state file.  Property: a decoded state encodes
 *         back to the same bytes (nothing is accepted that we would not
 *         write), and every name and blob stays within its bounds.
 * ASan/UBSan (make fuzz) catch any read out of the input.
 */
#include <string.h>

#include "fuzz.h"
#include "queue/segment.h"

static void
fuzz_walk_segment(const uint8_t *p, size_t n)
{
    struct sl_seg_header h;
    size_t at = 0, last_end = 0;
    if (sl_seg_header_decode(p, n, &h) == SL_SEG_OK) {
        at = SL_SEG_HDR;
    }
    while (at < n) {
        struct sl_rec r;
        enum sl_seg_status st = sl_rec_decode(p + at, n - at, &r);
        if (st == SL_SEG_OK) {
            uint8_t again[SL_REC_HDR_MAX];
            size_t hlen = r.hlen;
            fuzz_require(hlen >= SL_REC_HDR && hlen <= SL_REC_HDR_MAX, "header length");
            fuzz_require(at + hlen + r.len <= n, "record past the input");
            fuzz_require(at >= last_end, "records overlap");
            fuzz_require((r.tag_len > 0) == (hlen > SL_REC_HDR), "tag without its flag");
            fuzz_require(sl_rec_header_encode(again, &r, p + at + hlen) == hlen,
                         "header length does not re-encode");
            fuzz_require(memcmp(again, p + at, hlen) == 0, "header does not re-encode");
            at += hlen + r.len;
            last_end = at;
            continue;
        }
        size_t k = sl_rec_resync(p + at, n - at);
        fuzz_require(k >= 1 && k <= n - at, "resync does not move forward");
        at += k;
    }
}

static void
fuzz_state(const uint8_t *p, size_t n)
{
    struct sl_state s;
    if (sl_state_decode(p, n, &s) < 0) {
        return;
    }
    for (size_t i = 0; i < s.nreaders; i++) {
        fuzz_require(strlen(s.readers[i].name) <= SL_STATE_MAX_NAME, "name too long");
        fuzz_require(s.readers[i].blob_len <= SL_STATE_MAX_BLOB, "blob too long");
    }
    size_t m = sl_state_size(&s);
    uint8_t *out = malloc(m);
    fuzz_require(out != NULL, "out of memory");
    sl_state_encode(&s, out);
    fuzz_require(m == n && memcmp(out, p, n) == 0, "state does not re-encode to its bytes");
    free(out);
    sl_state_fini(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        fuzz_walk_segment(data + 1, size - 1);
    } else {
        fuzz_state(data + 1, size - 1);
    }
    return 0;
}
