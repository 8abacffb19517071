/*
 * codec_json — the json codec: newline framing; each event must be one
 * JSON object and is copied as it is (pure functions, any thread).
 *
 * The codec never builds a tree: the validator checks the line and the
 * bytes are copied as they are.  Fields are spliced after the first '{' so
 * the client's members keep their bytes and their order.
 */
#include <string.h>

#include "codec/encode.h"
#include "codec/framing.h"
#include "codec/validate.h"
#include "daemon/registry.h"
#include "sluice/codec.h"

/* Index of the opening brace: jansson allows leading JSON whitespace. */
static size_t
encode_brace(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && line[i] != '{') {
        i++;
    }
    return i;
}

enum sl_encode_result
sl_encode_json(const char *line, size_t len, const char *fields, size_t flen, char *out,
               size_t room, size_t *outlen, enum sl_validate_result *why)
{
    bool empty = false;
    size_t need = len + 1 + (flen > 0 ? flen + 1 : 0);
    if (need > room) {
        return SL_ENCODE_NO_ROOM;
    }
    enum sl_validate_result v = sl_validate_object(line, len, &empty);
    if (v != SL_VALID) {
        *why = v;
        return SL_ENCODE_INVALID;
    }
    char *p = out;
    if (flen == 0) {
        memcpy(p, line, len);
        p += len;
    } else {
        size_t b = encode_brace(line, len) + 1;
        memcpy(p, line, b);
        p += b;
        memcpy(p, fields, flen);
        p += flen;
        if (!empty) {
            *p++ = ',';
        }
        memcpy(p, line + b, len - b);
        p += len - b;
    }
    *p++ = '\n';
    *outlen = (size_t)(p - out);
    return SL_ENCODE_OK;
}

static enum sl_encode_result
json_encode(const char *line, size_t len, const char *fields, size_t flen, struct sl_codec_out *o)
{
    enum sl_validate_result why = SL_VALID;
    if (len + flen + 2 > o->max_out) {
        return SL_ENCODE_TOO_LARGE;
    }
    enum sl_encode_result r =
        sl_encode_json(line, len, fields, flen, o->data, o->room, &o->len, &why);
    if (r == SL_ENCODE_INVALID) {
        o->reason = sl_validate_reason(why);
    }
    return r;
}

static size_t
json_scratch_bytes(size_t max_line)
{
    return 0;
}

const struct sl_codec_type sl_codec_json = {
    .name = "json",
    .single_line = true,
    .frame = sl_frame_lines,
    .frame_end = sl_frame_finish,
    .encode = json_encode,
    .scratch_bytes = json_scratch_bytes,
};
