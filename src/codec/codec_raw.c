/*
 * codec_raw — the raw codec: newline framing; any event is wrapped as
 * {"message":"<event, JSON-escaped>"} (pure functions, any thread).
 */
#include <string.h>

#include "codec/encode.h"
#include "codec/escape.h"
#include "codec/framing.h"
#include "daemon/registry.h"
#include "sluice/codec.h"

enum sl_encode_result
sl_encode_raw(const char *line, size_t len, const char *fields, size_t flen, char *scratch,
              char *out, size_t room, size_t max_out, size_t *outlen)
{
    static const char key[] = "\"message\":\"";
    size_t elen = sl_escape_json(line, len, scratch, NULL);
    enum sl_encode_result r;
    /* {fields,"message":"..."}\n */
    char *p = sl_encode_open(out, room, max_out, fields, flen, (sizeof(key) - 1) + elen + 3, &r);
    if (p == NULL) {
        return r;
    }
    memcpy(p, key, sizeof(key) - 1);
    p += sizeof(key) - 1;
    memcpy(p, scratch, elen);
    p += elen;
    memcpy(p, "\"}\n", 3);
    p += 3;
    *outlen = (size_t)(p - out);
    return SL_ENCODE_OK;
}

static enum sl_encode_result
raw_encode(const char *line, size_t len, const char *fields, size_t flen, struct sl_codec_out *o)
{
    return sl_encode_raw(line, len, fields, flen, o->scratch, o->data, o->room, o->max_out,
                         &o->len);
}

/* The escaped text goes to scratch first, so its exact size is known. */
static size_t
raw_scratch_bytes(size_t max_line)
{
    return SL_ESCAPE_MAX(max_line);
}

const struct sl_codec_type sl_codec_raw = {
    .name = "raw",
    .frame = sl_frame_lines,
    .frame_end = sl_frame_finish,
    .encode = raw_encode,
    .scratch_bytes = raw_scratch_bytes,
};
