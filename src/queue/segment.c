/*
 * segment — encoders and checking decoders of the disk queue's formats
 * (segment.h).  Every decoder bounds every read by the bytes it was given
 * and trusts no length before its checksum held.
 */
#include "queue/segment.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/crc.h>

static const uint8_t seg_magic[4] = {'S', 'L', 'Q', 'S'};
static const uint8_t rec_magic[4] = {'S', 'L', 'Q', 'R'};
static const uint8_t state_magic[4] = {'S', 'L', 'Q', 'T'};

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* zlib's crc32 value (IEEE 802.3, reflected), computed by ISA-L's
 * crc32_gzip_refl: the same numbers as zlib's crc32(), ~9x faster (carry-less
 * multiplication), on every record appended and read back. */
static uint32_t
seg_crc(const void *p, size_t n)
{
    return crc32_gzip_refl(0, p, n);
}

void
sl_seg_header_encode(uint8_t out[SL_SEG_HDR], uint64_t id, uint64_t first_lsn)
{
    memcpy(out, seg_magic, 4);
    put16(out + 4, SL_SEG_VERSION);
    put16(out + 6, SL_SEG_HDR);
    put64(out + 8, id);
    put64(out + 16, first_lsn);
    put32(out + 24, 0);
    put32(out + 28, seg_crc(out, 28));
}

enum sl_seg_status
sl_seg_header_decode(const uint8_t *p, size_t n, struct sl_seg_header *h)
{
    if (n < SL_SEG_HDR) {
        return SL_SEG_SHORT;
    }
    if (memcmp(p, seg_magic, 4) != 0 || get32(p + 28) != seg_crc(p, 28)) {
        return SL_SEG_BAD;
    }
    h->version = get16(p + 4);
    h->id = get64(p + 8);
    h->first_lsn = get64(p + 16);
    if (h->version > SL_SEG_VERSION) {
        return SL_SEG_FUTURE;
    }
    if (h->version != SL_SEG_VERSION || get16(p + 6) != SL_SEG_HDR) {
        return SL_SEG_BAD;
    }
    return SL_SEG_OK;
}

size_t
sl_rec_header_encode(uint8_t *out, struct sl_rec *r, const void *payload)
{
    size_t t = r->tag_len > SL_REC_TAG_MAX ? 0 : r->tag_len;
    r->hlen = (uint16_t)(t > 0 ? SL_REC_HDR + 14 + t : SL_REC_HDR);
    memcpy(out, rec_magic, 4);
    out[4] = SL_REC_VERSION;
    out[5] = t > 0 ? SL_REC_F_TAG : 0;
    put16(out + 6, r->hlen);
    put32(out + 8, r->len);
    put32(out + 12, r->nevents);
    put64(out + 16, r->lsn);
    put64(out + 24, r->first_ns);
    put32(out + 32, seg_crc(out, 32));
    put32(out + 36, seg_crc(payload, r->len));
    if (t > 0) {
        put16(out + SL_REC_HDR, (uint16_t)t);
        memcpy(out + SL_REC_HDR + 2, r->tag, t);
        put64(out + SL_REC_HDR + 2 + t, r->tag_seq);
        put32(out + SL_REC_HDR + 10 + t, seg_crc(out, SL_REC_HDR + 10 + t));
    }
    return r->hlen;
}

enum sl_seg_status
sl_rec_header_decode(const uint8_t *p, size_t n, struct sl_rec *r)
{
    if (n < SL_REC_HDR) {
        return SL_SEG_SHORT;
    }
    if (memcmp(p, rec_magic, 4) != 0 || get32(p + 32) != seg_crc(p, 32)) {
        return SL_SEG_BAD;
    }
    if (p[4] > SL_REC_VERSION) {
        return SL_SEG_FUTURE;
    }
    r->len = get32(p + 8);
    r->hlen = get16(p + 6);
    bool tagged = p[5] == SL_REC_F_TAG;
    if (p[4] != SL_REC_VERSION || (p[5] != 0 && !tagged) ||
        (!tagged && r->hlen != SL_REC_HDR) ||
        (tagged && (r->hlen <= SL_REC_HDR + 14 || r->hlen > SL_REC_HDR_MAX)) ||
        r->len > SL_REC_MAX_PAYLOAD) {
        return SL_SEG_BAD;
    }
    r->nevents = get32(p + 12);
    r->lsn = get64(p + 16);
    r->first_ns = get64(p + 24);
    r->tag_len = 0;
    r->tag_seq = 0;
    r->tag = NULL;
    return SL_SEG_OK;
}

enum sl_seg_status
sl_rec_tag_decode(const uint8_t *p, size_t n, struct sl_rec *r)
{
    if (n < r->hlen) {
        return SL_SEG_SHORT;
    }
    if (r->hlen == SL_REC_HDR) {
        return SL_SEG_OK;
    }
    size_t t = get16(p + SL_REC_HDR);
    if (t == 0 || SL_REC_HDR + 14 + t != r->hlen ||
        get32(p + SL_REC_HDR + 10 + t) != seg_crc(p, SL_REC_HDR + 10 + t)) {
        return SL_SEG_BAD;
    }
    r->tag_len = (uint16_t)t;
    r->tag = p + SL_REC_HDR + 2;
    r->tag_seq = get64(p + SL_REC_HDR + 2 + t);
    return SL_SEG_OK;
}

enum sl_seg_status
sl_rec_decode(const uint8_t *p, size_t n, struct sl_rec *r)
{
    enum sl_seg_status st = sl_rec_header_decode(p, n, r);
    if (st != SL_SEG_OK) {
        return st;
    }
    if (n < r->hlen || n - r->hlen < r->len) {
        return SL_SEG_SHORT;
    }
    st = sl_rec_tag_decode(p, n, r);
    if (st != SL_SEG_OK) {
        return st;
    }
    return get32(p + 36) == seg_crc(p + r->hlen, r->len) ? SL_SEG_OK : SL_SEG_BAD;
}

size_t
sl_rec_resync(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i + 4 <= n; i++) {
        if (p[i] == 'S' && memcmp(p + i, rec_magic, 4) == 0) {
            return i;
        }
    }
    return n;
}

size_t
sl_state_size(const struct sl_state *s)
{
    size_t n = 16 + 4;
    for (size_t i = 0; i < s->nreaders; i++) {
        n += 2 + strlen(s->readers[i].name) + 16 + 2 + s->readers[i].blob_len;
    }
    if (s->ntags > 0) {
        n += 2;
        for (size_t i = 0; i < s->ntags; i++) {
            n += 2 + (size_t)s->tags[i].len + 8;
        }
    }
    return n;
}

void
sl_state_encode(const struct sl_state *s, uint8_t *out)
{
    uint8_t *p = out;
    memcpy(p, state_magic, 4);
    put16(p + 4, s->ntags > 0 ? 2 : 1);
    put16(p + 6, (uint16_t)s->nreaders);
    put64(p + 8, s->next_lsn);
    p += 16;
    for (size_t i = 0; i < s->nreaders; i++) {
        const struct sl_state_reader *r = &s->readers[i];
        size_t nl = strlen(r->name);
        put16(p, (uint16_t)nl);
        memcpy(p + 2, r->name, nl);
        p += 2 + nl;
        put64(p, r->seg);
        put64(p + 8, r->off);
        put16(p + 16, r->blob_len);
        p += 18;
        if (r->blob_len > 0) {
            memcpy(p, r->blob, r->blob_len);
            p += r->blob_len;
        }
    }
    if (s->ntags > 0) {
        put16(p, (uint16_t)s->ntags);
        p += 2;
        for (size_t i = 0; i < s->ntags; i++) {
            put16(p, s->tags[i].len);
            memcpy(p + 2, s->tags[i].key, s->tags[i].len);
            put64(p + 2 + s->tags[i].len, s->tags[i].seq);
            p += 2 + (size_t)s->tags[i].len + 8;
        }
    }
    put32(p, seg_crc(out, (size_t)(p - out)));
}

void
sl_state_fini(struct sl_state *s)
{
    for (size_t i = 0; s->readers != NULL && i < s->nreaders; i++) {
        free(s->readers[i].name);
        free(s->readers[i].blob);
    }
    free(s->readers);
    s->readers = NULL;
    s->nreaders = 0;
    for (size_t i = 0; s->tags != NULL && i < s->ntags; i++) {
        free(s->tags[i].key);
    }
    free(s->tags);
    s->tags = NULL;
    s->ntags = 0;
}

int
sl_state_decode(const uint8_t *p, size_t n, struct sl_state *s)
{
    memset(s, 0, sizeof(*s));
    if (n < 20 || memcmp(p, state_magic, 4) != 0 || (get16(p + 4) != 1 && get16(p + 4) != 2) ||
        get32(p + n - 4) != seg_crc(p, n - 4)) {
        return -1;
    }
    unsigned version = get16(p + 4);
    size_t nr = get16(p + 6);
    if (nr > SL_STATE_MAX_READERS) {
        return -1;
    }
    s->next_lsn = get64(p + 8);
    s->readers = calloc(nr > 0 ? nr : 1, sizeof(*s->readers));
    if (s->readers == NULL) {
        return -1;
    }
    s->nreaders = nr;
    size_t at = 16, end = n - 4;
    for (size_t i = 0; i < nr; i++) {
        struct sl_state_reader *r = &s->readers[i];
        if (end - at < 2) {
            goto bad;
        }
        size_t nl = get16(p + at);
        at += 2;
        if (nl == 0 || nl > SL_STATE_MAX_NAME || end - at < nl + 18) {
            goto bad;
        }
        r->name = strndup((const char *)p + at, nl);
        if (r->name == NULL || strlen(r->name) != nl) {
            goto bad;
        }
        at += nl;
        r->seg = get64(p + at);
        r->off = get64(p + at + 8);
        r->blob_len = get16(p + at + 16);
        at += 18;
        if (r->blob_len > SL_STATE_MAX_BLOB || end - at < r->blob_len) {
            goto bad;
        }
        if (r->blob_len > 0) {
            r->blob = malloc(r->blob_len);
            if (r->blob == NULL) {
                goto bad;
            }
            memcpy(r->blob, p + at, r->blob_len);
            at += r->blob_len;
        }
    }
    if (version == 2) {
        if (end - at < 2) {
            goto bad;
        }
        size_t nt = get16(p + at);
        at += 2;
        if (nt == 0 || nt > SL_STATE_MAX_TAGS) {
            goto bad;
        }
        s->tags = calloc(nt, sizeof(*s->tags));
        if (s->tags == NULL) {
            goto bad;
        }
        s->ntags = nt;
        for (size_t i = 0; i < nt; i++) {
            struct sl_state_tag *t = &s->tags[i];
            if (end - at < 2) {
                goto bad;
            }
            t->len = get16(p + at);
            at += 2;
            if (t->len == 0 || t->len > SL_REC_TAG_MAX || end - at < (size_t)t->len + 8) {
                goto bad;
            }
            t->key = malloc(t->len);
            if (t->key == NULL) {
                goto bad;
            }
            memcpy(t->key, p + at, t->len);
            t->seq = get64(p + at + t->len);
            at += (size_t)t->len + 8;
        }
    }
    if (at != end) {
        goto bad;
    }
    return 0;
bad:
    sl_state_fini(s);
    return -1;
}
