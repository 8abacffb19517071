/*
 * fuzz_sluice_proto — the sluice receiver's frame decoder
 * (src/proto/sluice_proto.c) over arbitrary bytes, as source_sluice.c
 * walks a connection's buffer: frame after frame until one is refused or
 * more bytes are needed.
 *
 * Input layout: 2 bytes max batch (big-endian, + 1), then the stream.
 *
 * Properties:
 *   - the decoder never reads outside the buffer (ASan) and a decoded
 *     frame's size is the header plus its payload, within the buffer;
 *   - a decoded frame is exactly what the encoder writes for its type,
 *     seq and payload (the header round-trips byte for byte), a BATCH is
 *     at most max batch and ends with '\n';
 *   - every proper prefix of a decoded frame asks for more bytes (0), never
 *     an error: a frame split across reads is never refused;
 *   - a HELLO that parses has a valid sender id, and one that offers
 *     exactly version 1 re-encodes to the same bytes.
 */
#include <string.h>

#include "fuzz.h"
#include "proto/sluice_proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    uint32_t max_batch = (((uint32_t)data[0] << 8) | data[1]) + 1;
    const uint8_t *p = data + 2;
    size_t len = size - 2;

    while (len > 0) {
        struct sl_proto_frame f;
        long r = sl_proto_decode(p, len, max_batch, &f);
        if (r <= 0) {
            break;
        }
        if ((size_t)r > len || (size_t)r != SL_PROTO_HEADER + f.len) {
            fuzz_fail("frame size %ld, payload %u, buffer %zu", r, f.len, len);
        }
        if (f.payload != p + SL_PROTO_HEADER) {
            fuzz_fail("payload not after the header");
        }
        uint8_t h[SL_PROTO_HEADER];
        sl_proto_header(h, (enum sl_proto_type)f.type, f.seq, f.payload, f.len);
        if (memcmp(h, p, SL_PROTO_HEADER) != 0) {
            fuzz_fail("header of a decoded frame does not re-encode");
        }
        if (f.type == SL_PROTO_BATCH &&
            (f.len > max_batch || f.len == 0 || f.payload[f.len - 1] != '\n' || f.seq == 0)) {
            fuzz_fail("batch accepted out of bounds");
        }
        for (size_t k = 0; k < (size_t)r; k += (k < SL_PROTO_HEADER ? 1 : 97)) {
            struct sl_proto_frame g;
            if (sl_proto_decode(p, k, max_batch, &g) != 0) {
                fuzz_fail("prefix %zu of a good frame refused", k);
            }
        }
        if (f.type == SL_PROTO_HELLO) {
            struct sl_proto_hello hello;
            if (sl_proto_parse_hello(&f, &hello) == 0) {
                if (!sl_proto_id_ok(hello.id, strlen(hello.id))) {
                    fuzz_fail("hello accepted with a bad id");
                }
                uint8_t again[SL_PROTO_HEADER + SL_PROTO_HELLO_FIXED + SL_PROTO_ID_MAX];
                size_t n = sl_proto_hello(again, hello.id, hello.keepalive_ms);
                if (hello.vmin == 1 && hello.vmax == 1 &&
                    (n != (size_t)r || memcmp(again, p, n) != 0)) {
                    fuzz_fail("hello does not re-encode");
                }
            }
        } else if (f.type == SL_PROTO_WELCOME) {
            struct sl_proto_welcome w;
            (void)sl_proto_parse_welcome(&f, &w);
        } else if (f.type == SL_PROTO_ERROR) {
            uint16_t code;
            const char *text;
            size_t tl;
            if (sl_proto_parse_error(&f, &code, &text, &tl) != 0 || tl + 2 != f.len) {
                fuzz_fail("error frame does not parse");
            }
            (void)sl_proto_strerror(code);
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}
