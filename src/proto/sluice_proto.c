/*
 * sluice_proto — encoder and decoder of the sluice forwarding protocol
 * (sluice_proto.h; docs/protocol.md is the specification).
 */
#include "proto/sluice_proto.h"

#include <string.h>
#include <isa-l/crc.h>

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return ((uint32_t)get16(p) << 16) | get16(p + 2);
}

static uint64_t
get64(const uint8_t *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static uint32_t
proto_crc(const void *payload, uint32_t len)
{
    if (len == 0) {
        return 0;
    }
    /* zlib's crc32 value (docs/protocol.md), computed by ISA-L: with
     * carry-less multiplication it is ~9x zlib 1.2's table code, and the
     * checksum of every batch is paid twice per hop (sender, receiver). */
    return crc32_gzip_refl(0, payload, len);
}

/* The payload lengths a type allows: [*lo, *hi]. */
static bool
proto_bounds(uint8_t type, uint32_t max_batch, uint32_t *lo, uint32_t *hi)
{
    switch (type) {
    case SL_PROTO_HELLO:
        *lo = SL_PROTO_HELLO_FIXED + 1;
        *hi = SL_PROTO_HELLO_FIXED + SL_PROTO_ID_MAX;
        return true;
    case SL_PROTO_WELCOME:
        *lo = *hi = SL_PROTO_WELCOME_LEN;
        return true;
    case SL_PROTO_BATCH:
        *lo = 1;
        *hi = max_batch;
        return true;
    case SL_PROTO_ACK:
    case SL_PROTO_KEEPALIVE:
        *lo = *hi = 0;
        return true;
    case SL_PROTO_ERROR:
        *lo = 2;
        *hi = 2 + SL_PROTO_ERROR_TEXT_MAX;
        return true;
    default:
        return false;
    }
}

long
sl_proto_decode(const uint8_t *buf, size_t len, uint32_t max_batch, struct sl_proto_frame *f)
{
    uint32_t lo, hi;
    if (len < SL_PROTO_HEADER) {
        /* Refuse what is already wrong, so garbage is not buffered. */
        if (len >= 1 && !proto_bounds(buf[0], max_batch, &lo, &hi)) {
            return -SL_PROTO_E_FRAME;
        }
        if (len >= 2 && buf[1] != 0) {
            return -SL_PROTO_E_FRAME;
        }
        return 0;
    }
    if (!proto_bounds(buf[0], max_batch, &lo, &hi) || buf[1] != 0 || get16(buf + 2) != 0) {
        return -SL_PROTO_E_FRAME;
    }
    uint32_t plen = get32(buf + 4);
    if (buf[0] == SL_PROTO_BATCH && plen > max_batch) {
        return -SL_PROTO_E_TOO_LARGE;
    }
    if (plen < lo || plen > hi) {
        return -SL_PROTO_E_FRAME;
    }
    uint64_t seq = get64(buf + 8);
    if (buf[0] == SL_PROTO_BATCH && seq == 0) {
        return -SL_PROTO_E_LINES;
    }
    if ((buf[0] == SL_PROTO_HELLO || buf[0] == SL_PROTO_ERROR) && seq != 0) {
        return -SL_PROTO_E_FRAME;
    }
    if (len - SL_PROTO_HEADER < plen) {
        return 0;
    }
    const uint8_t *payload = buf + SL_PROTO_HEADER;
    if (proto_crc(payload, plen) != get32(buf + 16)) {
        return -SL_PROTO_E_CHECKSUM;
    }
    if (buf[0] == SL_PROTO_BATCH && payload[plen - 1] != '\n') {
        return -SL_PROTO_E_LINES;
    }
    f->type = buf[0];
    f->len = plen;
    f->seq = seq;
    f->payload = payload;
    return (long)(SL_PROTO_HEADER + plen);
}

bool
sl_proto_id_ok(const char *id, size_t len)
{
    if (len == 0 || len > SL_PROTO_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int
sl_proto_parse_hello(const struct sl_proto_frame *f, struct sl_proto_hello *h)
{
    const uint8_t *p = f->payload;
    if (f->type != SL_PROTO_HELLO || f->len < SL_PROTO_HELLO_FIXED ||
        memcmp(p, SL_PROTO_MAGIC, 4) != 0) {
        return -SL_PROTO_E_HELLO;
    }
    size_t idlen = get16(p + 12);
    if (idlen != f->len - SL_PROTO_HELLO_FIXED ||
        !sl_proto_id_ok((const char *)p + SL_PROTO_HELLO_FIXED, idlen)) {
        return -SL_PROTO_E_HELLO;
    }
    h->vmin = get16(p + 4);
    h->vmax = get16(p + 6);
    if (h->vmin > h->vmax) {
        return -SL_PROTO_E_HELLO;
    }
    h->keepalive_ms = get32(p + 8);
    memcpy(h->id, p + SL_PROTO_HELLO_FIXED, idlen);
    h->id[idlen] = '\0';
    return 0;
}

int
sl_proto_parse_welcome(const struct sl_proto_frame *f, struct sl_proto_welcome *w)
{
    const uint8_t *p = f->payload;
    if (f->type != SL_PROTO_WELCOME || f->len != SL_PROTO_WELCOME_LEN ||
        memcmp(p, SL_PROTO_MAGIC, 4) != 0 || get16(p + 6) != 0) {
        return -SL_PROTO_E_HELLO;
    }
    w->version = get16(p + 4);
    w->max_batch = get32(p + 8);
    w->acked = f->seq;
    if (w->version != SL_PROTO_VERSION) {
        return -SL_PROTO_E_VERSION;
    }
    if (w->max_batch == 0) {
        return -SL_PROTO_E_HELLO;
    }
    return 0;
}

int
sl_proto_parse_error(const struct sl_proto_frame *f, uint16_t *code, const char **text,
                     size_t *textlen)
{
    if (f->type != SL_PROTO_ERROR || f->len < 2) {
        return -SL_PROTO_E_FRAME;
    }
    *code = get16(f->payload);
    *text = (const char *)f->payload + 2;
    *textlen = f->len - 2;
    return 0;
}

void
sl_proto_header(uint8_t out[SL_PROTO_HEADER], enum sl_proto_type type, uint64_t seq,
                const void *payload, uint32_t len)
{
    out[0] = (uint8_t)type;
    out[1] = 0;
    put16(out + 2, 0);
    put32(out + 4, len);
    put64(out + 8, seq);
    put32(out + 16, proto_crc(payload, len));
}

size_t
sl_proto_hello(uint8_t *out, const char *id, uint32_t keepalive_ms)
{
    uint8_t *p = out + SL_PROTO_HEADER;
    size_t idlen = strlen(id);
    if (idlen > SL_PROTO_ID_MAX) {
        idlen = SL_PROTO_ID_MAX;
    }
    memcpy(p, SL_PROTO_MAGIC, 4);
    put16(p + 4, SL_PROTO_VERSION);
    put16(p + 6, SL_PROTO_VERSION);
    put32(p + 8, keepalive_ms);
    put16(p + 12, (uint16_t)idlen);
    memcpy(p + SL_PROTO_HELLO_FIXED, id, idlen);
    uint32_t len = (uint32_t)(SL_PROTO_HELLO_FIXED + idlen);
    sl_proto_header(out, SL_PROTO_HELLO, 0, p, len);
    return SL_PROTO_HEADER + len;
}

size_t
sl_proto_welcome(uint8_t *out, uint64_t acked, uint32_t max_batch)
{
    uint8_t *p = out + SL_PROTO_HEADER;
    memcpy(p, SL_PROTO_MAGIC, 4);
    put16(p + 4, SL_PROTO_VERSION);
    put16(p + 6, 0);
    put32(p + 8, max_batch);
    sl_proto_header(out, SL_PROTO_WELCOME, acked, p, SL_PROTO_WELCOME_LEN);
    return SL_PROTO_HEADER + SL_PROTO_WELCOME_LEN;
}

size_t
sl_proto_ack(uint8_t *out, enum sl_proto_type type, uint64_t seq)
{
    sl_proto_header(out, type, seq, NULL, 0);
    return SL_PROTO_HEADER;
}

size_t
sl_proto_error(uint8_t *out, enum sl_proto_err code, const char *text)
{
    uint8_t *p = out + SL_PROTO_HEADER;
    size_t tl = strlen(text);
    if (tl > SL_PROTO_ERROR_TEXT_MAX) {
        tl = SL_PROTO_ERROR_TEXT_MAX;
    }
    put16(p, (uint16_t)code);
    memcpy(p + 2, text, tl);
    sl_proto_header(out, SL_PROTO_ERROR, 0, p, (uint32_t)(2 + tl));
    return SL_PROTO_HEADER + 2 + tl;
}

const char *
sl_proto_strerror(int err)
{
    switch (err < 0 ? -err : err) {
    case SL_PROTO_E_FRAME:
        return "malformed frame";
    case SL_PROTO_E_VERSION:
        return "no common protocol version";
    case SL_PROTO_E_TOO_LARGE:
        return "batch larger than the receiver's max batch";
    case SL_PROTO_E_CHECKSUM:
        return "checksum mismatch";
    case SL_PROTO_E_HELLO:
        return "bad greeting";
    case SL_PROTO_E_STATE:
        return "frame not allowed in this state";
    case SL_PROTO_E_LINES:
        return "batch not whole lines or numbered 0";
    case SL_PROTO_E_SHUTDOWN:
        return "receiver shutting down";
    default:
        return "unknown error";
    }
}
