/*
 * fuzz_encode — the codecs: add_fields splicing (json codec) and the raw
 * codec's escaping.
 *
 * Input layout: 1 byte flags, 2 bytes room, 1 byte split, then the bytes:
 * the first `split` of them (at most the rest) are a field value (a peer
 * or source text: any bytes, escaped by sl_encode_field), the remainder is
 * the client's line.
 *
 * Properties, json codec (sl_encode_json with the fields):
 *   - NO_ROOM exactly when the output would not fit in room (out is a heap
 *     buffer of exactly room bytes, so ASan catches any write past it);
 *   - INVALID exactly when the validator rejects the line;
 *   - otherwise the output is one line, a JSON object jansson accepts, whose
 *     bytes with the spliced fields text taken out are the client's bytes
 *     exactly (its members keep their bytes and order), and the fields
 *     text alone, wrapped in braces, parses to the values given.
 * Properties, raw codec (sl_encode_raw):
 *   - the output parses (jansson, JSON_ALLOW_NUL) to an object whose
 *     "message" is the input with each byte that does not start a
 *     well-formed UTF-8 sequence replaced by U+FFFD (an independent
 *     decoder here), i.e. valid UTF-8 round-trips byte for byte;
 *   - TOO_LARGE / NO_ROOM exactly at the stated bounds.
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "codec/encode.h"
#include "codec/escape.h"
#include "codec/validate.h"

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), or 0.  Written
 * from the code point ranges, independently of jsonchar.h. */
static size_t
ref_utf8(const unsigned char *p, size_t n)
{
    uint32_t cp;
    size_t len;
    uint32_t min;

    if (p[0] < 0x80) {
        return 1;
    } else if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
        min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
        min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* in with every byte that starts no well-formed sequence replaced by U+FFFD. */
static char *
ref_repair(const char *in, size_t len, size_t *outlen)
{
    char *out = malloc(len * 3 + 1);
    size_t o = 0;
    if (out == NULL) {
        abort();
    }
    for (size_t i = 0; i < len;) {
        size_t n = ref_utf8((const unsigned char *)in + i, len - i);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, in + i, n);
            o += n;
            i += n;
        }
    }
    *outlen = o;
    return out;
}

/* jansson's string member key of obj equals want[0..wlen). */
static void
require_member(json_t *obj, const char *key, const char *want, size_t wlen, const char *what)
{
    json_t *v = json_object_get(obj, key);
    fuzz_require(json_is_string(v), "%s: no string member \"%s\"", what, key);
    fuzz_require(json_string_length(v) == wlen && memcmp(json_string_value(v), want, wlen) == 0,
                 "%s: member \"%s\" is %zu bytes, want %zu", what, key, json_string_length(v),
                 wlen);
}

static void
check_json(const char *line, size_t len, const char *fields, size_t flen, const char *value,
           size_t vlen, size_t room)
{
    char *out = malloc(room > 0 ? room : 1);
    size_t outlen = 0;
    enum sl_validate_result why = SL_VALID;
    bool empty = false;
    enum sl_validate_result v = sl_validate_object(line, len, &empty);
    size_t need = len + 1 + (flen > 0 ? flen + 1 : 0);
    enum sl_encode_result r;

    if (out == NULL) {
        abort();
    }
    r = sl_encode_json(line, len, fields, flen, out, room, &outlen, &why);
    if (need > room) {
        fuzz_require(r == SL_ENCODE_NO_ROOM, "json: need %zu > room %zu but result %d", need, room,
                     (int)r);
        free(out);
        return;
    }
    if (v != SL_VALID) {
        fuzz_require(r == SL_ENCODE_INVALID && why == v, "json: invalid line accepted (%d)",
                     (int)r);
        free(out);
        return;
    }
    fuzz_require(r == SL_ENCODE_OK, "json: valid line refused (%d)", (int)r);
    fuzz_require(outlen <= room && outlen > 0 && out[outlen - 1] == '\n',
                 "json: output of %zu bytes does not end in a newline", outlen);
    fuzz_require(memchr(out, '\n', outlen - 1) == NULL || memchr(line, '\n', len) != NULL,
                 "json: a newline appeared in the output that the line did not have");

    json_error_t err;
    /* JSON_ALLOW_NUL: a field value may hold a NUL byte, written \u0000. */
    json_t *root = json_loadb(out, outlen - 1, JSON_ALLOW_NUL, &err);
    fuzz_require(root != NULL && json_is_object(root), "json: output not an object: %s",
                 root == NULL ? err.text : "not an object");
    fuzz_require(memchr(value, '\0', vlen) != NULL ||
                     sl_validate_object(out, outlen - 1, NULL) == SL_VALID,
                 "json: validator rejects its own output");
    if (flen == 0) {
        fuzz_require(outlen == len + 1 && memcmp(out, line, len) == 0,
                     "json: bytes changed without fields");
    } else {
        /* Take the fields text (and its comma) out: the client's bytes remain. */
        const char *brace = memchr(out, '{', outlen);
        fuzz_require(brace != NULL, "json: no brace");
        size_t b = (size_t)(brace - out) + 1;
        size_t cut = flen + (empty ? 0 : 1);
        fuzz_require(memcmp(out + b, fields, flen) == 0, "json: fields not right after '{'");
        fuzz_require(empty || out[b + flen] == ',', "json: no comma after the fields");
        fuzz_require(outlen - 1 - cut == len && memcmp(out, line, b) == 0 &&
                         memcmp(out + b + cut, line + b, len - b) == 0,
                     "json: the client's bytes were not kept");
        /* The fields, alone, parse to what was given. */
        char *alone = malloc(flen + 2);
        if (alone == NULL) {
            abort();
        }
        alone[0] = '{';
        memcpy(alone + 1, fields, flen);
        alone[flen + 1] = '}';
        json_t *f = json_loadb(alone, flen + 2, JSON_ALLOW_NUL, &err);
        fuzz_require(f != NULL, "json: fields text does not parse: %s", err.text);
        size_t rlen;
        char *repaired = ref_repair(value, vlen, &rlen);
        require_member(f, "peer", repaired, rlen, "fields");
        require_member(f, "source", "app", 3, "fields");
        free(repaired);
        json_decref(f);
        free(alone);
    }
    json_decref(root);
    free(out);
}

static void
check_raw(const char *line, size_t len, const char *fields, size_t flen, bool fields_nul,
          size_t room, size_t max_out)
{
    char *scratch = malloc(SL_ESCAPE_MAX(len) + 1);
    char *out = malloc(room > 0 ? room : 1);
    size_t outlen = 0;
    size_t replaced = 0;
    enum sl_encode_result r;

    if (scratch == NULL || out == NULL) {
        abort();
    }
    size_t elen = sl_escape_json(line, len, scratch, &replaced);
    fuzz_require(elen <= SL_ESCAPE_MAX(len), "escape: %zu bytes for %zu", elen, len);
    size_t need = 1 + (flen > 0 ? flen + 1 : 0) + strlen("\"message\":\"") + elen + 3;
    r = sl_encode_raw(line, len, fields, flen, scratch, out, room, max_out, &outlen);
    if (need > max_out) {
        fuzz_require(r == SL_ENCODE_TOO_LARGE, "raw: need %zu > max %zu, result %d", need, max_out,
                     (int)r);
    } else if (need > room) {
        fuzz_require(r == SL_ENCODE_NO_ROOM, "raw: need %zu > room %zu, result %d", need, room,
                     (int)r);
    } else {
        fuzz_require(r == SL_ENCODE_OK && outlen == need, "raw: result %d, %zu bytes of %zu",
                     (int)r, outlen, need);
        fuzz_require(out[outlen - 1] == '\n' && memchr(out, '\n', outlen - 1) == NULL,
                     "raw: output is not one line");
        json_error_t err;
        json_t *root = json_loadb(out, outlen - 1, JSON_ALLOW_NUL, &err);
        fuzz_require(root != NULL && json_is_object(root), "raw: output does not parse: %s",
                     root == NULL ? err.text : "not an object");
        size_t rlen;
        char *repaired = ref_repair(line, len, &rlen);
        require_member(root, "message", repaired, rlen, "raw");
        free(repaired);
        json_decref(root);
        /* Without a NUL (written \u0000, which jansson refuses by default)
         * the output is also what the json codec accepts. */
        if (memchr(line, '\0', len) == NULL && !fields_nul) {
            fuzz_require(sl_validate_object(out, outlen - 1, NULL) == SL_VALID,
                         "raw: validator rejects the raw codec's output");
        }
    }
    free(out);
    free(scratch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint32_t flags = fuzz_take(&in, 1);
    size_t room = fuzz_take(&in, 2);
    size_t split = fuzz_take(&in, 1);
    char fields[SL_ESCAPE_MAX(255) + 64];
    size_t flen = 0;

    if (split > in.n) {
        split = in.n;
    }
    const char *value = (const char *)in.p;
    const char *line = value + split;
    size_t len = in.n - split;

    if (flags & 1) {
        fuzz_require(sl_encode_field(fields, sizeof(fields), &flen, "source", "app", 3) == 0,
                     "field source");
        fuzz_require(sl_encode_field(fields, sizeof(fields), &flen, "peer", value, split) == 0,
                     "field peer of %zu bytes", split);
    }
    if (flags & 2) {
        room = len + 1 + (flen > 0 ? flen + 1 : 0) + (room & 3); /* at the boundary */
        room = room >= 2 ? room - 2 : room;
    }
    check_json(line, len, fields, flen, value, split, room);
    check_raw(line, len, fields, flen, flen > 0 && memchr(value, '\0', split) != NULL, room,
              (flags & 4) ? room + (room & 7) : room + 64);
    return 0;
}
