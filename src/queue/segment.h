/*
 * segment — the on-disk formats of a disk queue (docs/protocol.md, "Disk
 * queue"): segment file headers, records, and the state file.  Pure
 * functions over byte buffers (no files, no allocation except the state
 * decoder's strings), so they are unit-tested and fuzzed alone
 * (tests/check_diskq.c, tests/fuzz/fuzz_segment.c).
 *
 * Every integer is little-endian.  Checksums are zlib's crc32 (the
 * IEEE 802.3 polynomial, what `crc32()` returns).
 *
 * Segment header (SL_SEG_HDR = 32 bytes):
 *   0  4  magic "SLQS"
 *   4  2  version (SL_SEG_VERSION)
 *   6  2  header length (32)
 *   8  8  segment id (its file name, hex)
 *   16 8  lsn of the first record it holds
 *   24 4  reserved, zero
 *   28 4  crc32 of bytes 0..27
 * Record (SL_REC_HDR = 40 bytes, the tag if flagged, then the payload:
 * whole NDJSON lines):
 *   0  4  magic "SLQR"
 *   4  1  version (SL_REC_VERSION)
 *   5  1  flags: 0, or SL_REC_F_TAG (a tag follows the 40 bytes)
 *   6  2  header length: 40, or 40 + 14 + tag length when tagged
 *   8  4  payload length
 *   12 4  events (lines) in the payload
 *   16 8  lsn: the record's number in the queue, +1 per record, kept across restarts
 *   24 8  first_ns: CLOCK_REALTIME of the first event's receipt
 *   32 4  crc32 of bytes 0..31 (a bad length is caught before it is used)
 *   36 4  crc32 of the payload
 * Tag (flags SL_REC_F_TAG; sl_chunk.tag: what the chunk completes, e.g. a
 * sender's batch, so it is on disk exactly when the chunk is):
 *   40 2  tag length (1..SL_CHUNK_TAG_MAX)
 *   42 t  tag key (opaque bytes)
 *   42+t 8  tag seq
 *   50+t 4  crc32 of bytes 0..50+t (the fixed header and the tag)
 */
#ifndef SLUICE_SEGMENT_H
#define SLUICE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_SEG_HDR 32
#define SL_SEG_VERSION 1
#define SL_REC_HDR 40
#define SL_REC_VERSION 1
#define SL_REC_F_TAG 0x01
#define SL_REC_TAG_MAX 160 /* = SL_CHUNK_TAG_MAX */
#define SL_REC_HDR_MAX (SL_REC_HDR + 14 + SL_REC_TAG_MAX)
/* No record is larger (a chunk is at most 16 MiB): a larger length is damage. */
#define SL_REC_MAX_PAYLOAD (64u * 1024 * 1024)

enum sl_seg_status {
    SL_SEG_OK,
    SL_SEG_SHORT,  /* fewer bytes than a whole header (or record) */
    SL_SEG_BAD,    /* wrong magic, checksum or field */
    SL_SEG_FUTURE, /* a version newer than this build writes */
};

struct sl_seg_header {
    uint16_t version;
    uint64_t id;
    uint64_t first_lsn;
};

struct sl_rec {
    uint32_t len;     /* payload bytes */
    uint32_t nevents; /* lines in the payload */
    uint64_t lsn;
    uint64_t first_ns;
    uint16_t hlen;      /* header bytes, tag included: the payload starts there
                           (set by encode and by every decoder) */
    uint16_t tag_len;   /* 0: no tag */
    uint64_t tag_seq;
    const uint8_t *tag; /* encode: borrowed key; decode: points into the bytes decoded */
};

void sl_seg_header_encode(uint8_t out[SL_SEG_HDR], uint64_t id, uint64_t first_lsn);
/* Decodes the header at p (n bytes available). */
enum sl_seg_status sl_seg_header_decode(const uint8_t *p, size_t n, struct sl_seg_header *h);

/* Writes the record header for r and payload (r->len bytes), with r's tag
 * when r->tag_len > 0 (at most SL_REC_TAG_MAX), to out; sets r->hlen and
 * returns it (the bytes written): out holds r->hlen bytes (SL_REC_HDR
 * untagged, SL_REC_HDR_MAX at most). */
size_t sl_rec_header_encode(uint8_t *out, struct sl_rec *r, const void *payload);
/* Checks the fixed part of the record header at p (n bytes available, at
 * least SL_REC_HDR needed): magic, header crc, version, flags, header and
 * payload length bounds.  OK fills *r (hlen included; no tag: tag_len 0);
 * neither the tag nor the payload is checked. */
enum sl_seg_status sl_rec_header_decode(const uint8_t *p, size_t n, struct sl_rec *r);
/* After an OK sl_rec_header_decode of p: checks the tag (when flagged) and
 * fills r's tag fields (r->tag points into p).  SHORT when n < r->hlen. */
enum sl_seg_status sl_rec_tag_decode(const uint8_t *p, size_t n, struct sl_rec *r);
/* Checks the whole record at p: header, tag, then (if all of it is within
 * the n bytes) the payload's crc.  SHORT when the header is good but the
 * record extends past n.  On OK, *r is filled and the payload is at
 * p + r->hlen. */
enum sl_seg_status sl_rec_decode(const uint8_t *p, size_t n, struct sl_rec *r);
/* Where the next record header might start after damage at p[0]: the
 * offset (>= 1) of the next "SLQR" in p[1..n), or n when there is none
 * (callers keep the last SL_REC_HDR - 1 bytes to search on). */
size_t sl_rec_resync(const uint8_t *p, size_t n);

/*
 * State file: per reader (sink) its committed position, plus an opaque
 * blob for the sink's own bookkeeping (backlog.h set_blob: a sluice sink's batch
 * numbering at the record start committed).
 *   0  4  magic "SLQT"
 *   4  2  version: 1, or 2 when tags follow the readers
 *   6  2  readers
 *   8  8  next lsn (the lsn the next record appended will get)
 *   per reader:
 *      2  name length, then the name (no NUL)
 *      8  segment id of the position
 *      8  offset in that segment (a record boundary)
 *      2  blob length, then the blob
 *   version 2 only: retired tags (the highest sl_chunk tag seq per key of
 *   the segments deleted so far; records still on disk carry their own):
 *      2  tags (1..SL_STATE_MAX_TAGS)
 *      per tag: 2 key length (1..SL_REC_TAG_MAX), the key, 8 seq
 *   last 4  crc32 of every byte before it
 */
#define SL_STATE_MAX_READERS 1024
#define SL_STATE_MAX_NAME 255
#define SL_STATE_MAX_BLOB 4096
#define SL_STATE_MAX_TAGS 4096

struct sl_state_reader {
    char *name;         /* owned (decode), borrowed (encode) */
    uint64_t seg;
    uint64_t off;
    uint8_t *blob;      /* owned (decode), borrowed (encode); NULL when blob_len 0 */
    uint16_t blob_len;
};

struct sl_state_tag {
    uint8_t *key; /* owned (decode), borrowed (encode) */
    uint16_t len;
    uint64_t seq;
};

struct sl_state {
    uint64_t next_lsn;
    struct sl_state_reader *readers;
    size_t nreaders;
    struct sl_state_tag *tags; /* none: version 1 is written */
    size_t ntags;
};

/* Bytes sl_state_encode writes for s. */
size_t sl_state_size(const struct sl_state *s);
/* Writes s to out (sl_state_size(s) bytes). */
void sl_state_encode(const struct sl_state *s, uint8_t *out);
/* Decodes a state file's bytes into *s (fields owned: sl_state_fini).
 * Returns 0, or -1 (nothing to free) when the bytes are not a whole valid
 * state file of this version. */
int sl_state_decode(const uint8_t *p, size_t n, struct sl_state *s);
void sl_state_fini(struct sl_state *s);

#endif
