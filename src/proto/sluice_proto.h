/*
 * sluice_proto — the wire format between sluiced instances (the sluice
 * sink and the sluice source), specified byte by byte in docs/protocol.md.
 *
 * Every frame is a fixed 20-byte header followed by `len` payload bytes:
 *   0  u8   type        (enum sl_proto_type)
 *   1  u8   flags       0
 *   2  u16  reserved    0
 *   4  u32  len         payload bytes
 *   8  u64  seq         batch number (BATCH), cumulative ack (ACK,
 *                       KEEPALIVE, WELCOME), 0 otherwise
 *   16 u32  crc         zlib crc32 of the payload (0 when len is 0)
 * All integers big-endian.  Pure code: no sockets, no threads; fuzzed by
 * tests/fuzz/fuzz_sluice_proto.c, tested by tests/check_sluice_proto.c.
 */
#ifndef SLUICE_PROTO_H
#define SLUICE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_PROTO_HEADER 20
#define SL_PROTO_VERSION 1          /* the only version this build speaks */
#define SL_PROTO_MAGIC "SLCE"       /* first 4 bytes of HELLO and WELCOME payloads */
#define SL_PROTO_HELLO_FIXED 14     /* HELLO payload before the sender id */
#define SL_PROTO_ID_MAX 64          /* sender id bytes at most */
#define SL_PROTO_WELCOME_LEN 12     /* WELCOME payload */
#define SL_PROTO_ERROR_TEXT_MAX 256 /* ERROR text bytes at most */

enum sl_proto_type {
    SL_PROTO_HELLO = 1,     /* sender → receiver, first frame */
    SL_PROTO_WELCOME = 2,   /* receiver → sender, answer to HELLO */
    SL_PROTO_BATCH = 3,     /* sender → receiver: one chunk of NDJSON lines */
    SL_PROTO_ACK = 4,       /* receiver → sender: batches <= seq are durable */
    SL_PROTO_KEEPALIVE = 5, /* receiver → sender: alive, still busy (seq as ACK) */
    SL_PROTO_ERROR = 6,     /* either way: code + text, then the sender closes */
};

/* Decoder verdicts (negative) and ERROR frame codes (positive, same names). */
enum sl_proto_err {
    SL_PROTO_E_FRAME = 1,    /* unknown type, non-zero flags/reserved, bad length */
    SL_PROTO_E_VERSION = 2,  /* no common version */
    SL_PROTO_E_TOO_LARGE = 3,/* a batch over the receiver's max batch */
    SL_PROTO_E_CHECKSUM = 4, /* crc mismatch */
    SL_PROTO_E_HELLO = 5,    /* bad magic or sender id */
    SL_PROTO_E_STATE = 6,    /* a frame not allowed now (BATCH before HELLO, ...) */
    SL_PROTO_E_LINES = 7,    /* a batch that does not end with '\n', or batch seq 0 */
    SL_PROTO_E_SHUTDOWN = 8, /* the receiver is stopping */
};

struct sl_proto_frame {
    uint8_t type;
    uint32_t len;
    uint64_t seq;
    const uint8_t *payload; /* borrowed from the decoded buffer */
};

struct sl_proto_hello {
    uint16_t vmin, vmax;
    uint32_t keepalive_ms; /* how often the receiver should send KEEPALIVE while busy */
    char id[SL_PROTO_ID_MAX + 1];
};

struct sl_proto_welcome {
    uint16_t version;
    uint32_t max_batch;
    uint64_t acked; /* the frame's seq: batches <= it are committed already */
};

/*
 * Decodes the frame at the start of buf[0, len).  max_batch bounds a
 * BATCH payload.  Returns the frame's total size (> 0) and fills *f, 0
 * when more bytes are needed (never more than SL_PROTO_HEADER + the
 * frame's allowed length: a bad header is refused as soon as it is
 * complete), or -enum sl_proto_err.
 */
long sl_proto_decode(const uint8_t *buf, size_t len, uint32_t max_batch, struct sl_proto_frame *f);

/* Parses a HELLO / WELCOME / ERROR payload; 0 or -enum sl_proto_err. */
int sl_proto_parse_hello(const struct sl_proto_frame *f, struct sl_proto_hello *h);
int sl_proto_parse_welcome(const struct sl_proto_frame *f, struct sl_proto_welcome *w);
int sl_proto_parse_error(const struct sl_proto_frame *f, uint16_t *code, const char **text,
                         size_t *textlen);

/* Writes a header for a payload (crc computed over it) into out. */
void sl_proto_header(uint8_t out[SL_PROTO_HEADER], enum sl_proto_type type, uint64_t seq,
                     const void *payload, uint32_t len);
/* Whole frames into out (large enough: the sizes are fixed or bounded);
 * each returns the bytes written.  id: 1..SL_PROTO_ID_MAX bytes. */
size_t sl_proto_hello(uint8_t *out, const char *id, uint32_t keepalive_ms);
size_t sl_proto_welcome(uint8_t *out, uint64_t acked, uint32_t max_batch);
size_t sl_proto_ack(uint8_t *out, enum sl_proto_type type, uint64_t seq);
size_t sl_proto_error(uint8_t *out, enum sl_proto_err code, const char *text);
/* A valid sender id: 1..SL_PROTO_ID_MAX of [A-Za-z0-9._:-]. */
bool sl_proto_id_ok(const char *id, size_t len);
/* A name for a decoder verdict, for logs. */
const char *sl_proto_strerror(int err);

#endif
