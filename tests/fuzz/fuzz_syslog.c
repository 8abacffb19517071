/*
 * fuzz_syslog — the syslog codec behind stream framing (lf, auto or
 * octet_counted), with the stream split at a point the input chooses.
 *
 * Input layout: 1 byte flags (bits 0-1: syslog_format 0..2, 3 read as 0;
 * bit 2: add fields; bits 3-5: syslog_timezone from a table; bits 6-7:
 * the stream's framing, lf / auto / octet_counted / auto), 2 bytes split,
 * 4 bytes receive time (Unix seconds), then the stream, framed by
 * sl_frame() as a tcp source frames it.
 *
 * Properties:
 *   - the stream framed whole and framed in two reads split at `split` (the
 *     tail kept and offered again with the rest, as source_tcp does) give
 *     the same events and the same output bytes;
 *   - every event encodes to SL_ENCODE_OK (the codec refuses nothing) as
 *     one line that passes the project's validator and that jansson loads
 *     as an object; unparsed events are exactly {"message": ...} (plus the
 *     fields), parsed ones always have "facility" and "severity";
 *   - one byte less room gives NO_ROOM, one byte less max_out TOO_LARGE
 *     (output buffers are heap blocks of exactly room bytes: ASan catches
 *     any write past them).
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "codec/encode.h"
#include "codec/framing.h"
#include "daemon/registry.h"
#include "fuzz.h"
#include "sluice/codec.h"

#define MAX_LINE 4096
#define MAX_EVENTS 512

static const int32_t zones[8] = {0, 3600, -18000, 19800, -43200, 50400, 60, -60};

struct run {
    struct sl_codec_opts opts;
    uint64_t recv_ns;
    const char *fields;
    size_t flen;
    char *outs[MAX_EVENTS]; /* each event's output, heap */
    size_t lens[MAX_EVENTS];
    size_t n;
};

static struct encoded_one {
    enum sl_encode_result r;
    size_t len;
    bool unparsed;
} encode_into(struct run *rn, const char *line, size_t len, char *out, size_t room, size_t max_out)
{
    struct encoded_one e = {0};
    char *scratch = malloc(sl_codec_syslog.scratch_bytes(len));
    if (scratch == NULL) {
        abort();
    }
    e.r = sl_encode_syslog(line, len, rn->fields, rn->flen, &rn->opts, rn->recv_ns, scratch, out,
                           room, max_out, &e.len, &e.unparsed);
    free(scratch);
    return e;
}

static int
event_cb(void *arg, const char *line, size_t len)
{
    struct run *rn = arg;
    size_t room = sl_codec_syslog.scratch_bytes(len) + rn->flen + 1;
    char *out = malloc(room);
    if (out == NULL) {
        abort();
    }
    struct encoded_one e = encode_into(rn, line, len, out, room, room);
    fuzz_require(e.r == SL_ENCODE_OK, "encode refused a line: %d", (int)e.r);
    fuzz_require(e.len > 0 && out[e.len - 1] == '\n', "output does not end in a newline");
    fuzz_require(memchr(out, '\n', e.len - 1) == NULL, "output is not one line");
    fuzz_require(sl_validate_object(out, e.len - 1, NULL) == SL_VALID, "validator rejects: %.*s",
                 (int)e.len, out);
    json_error_t err;
    json_t *root = json_loadb(out, e.len - 1, 0, &err);
    fuzz_require(root != NULL && json_is_object(root), "jansson rejects: %s", err.text);
    if (e.unparsed) {
        fuzz_require(json_object_size(root) == 1 + (rn->flen > 0 ? 2 : 0) &&
                         json_is_string(json_object_get(root, "message")),
                     "unparsed output is not {\"message\"}");
    } else {
        fuzz_require(json_is_string(json_object_get(root, "facility")) &&
                         json_is_string(json_object_get(root, "severity")),
                     "parsed output without facility/severity");
    }
    json_decref(root);

    /* The exact bounds: one byte short of room, then of max_out. */
    char *tight = malloc(e.len);
    if (tight == NULL) {
        abort();
    }
    struct encoded_one t = encode_into(rn, line, len, tight, e.len - 1, room);
    fuzz_require(t.r == SL_ENCODE_NO_ROOM, "one byte short: result %d", (int)t.r);
    t = encode_into(rn, line, len, tight, e.len - 1, e.len - 1);
    fuzz_require(t.r == SL_ENCODE_TOO_LARGE, "over max_out: result %d", (int)t.r);
    t = encode_into(rn, line, len, tight, e.len, e.len);
    fuzz_require(t.r == SL_ENCODE_OK && t.len == e.len && memcmp(tight, out, e.len) == 0,
                 "exact room gives other bytes");
    free(tight);

    if (rn->n < MAX_EVENTS) {
        rn->outs[rn->n] = out;
        rn->lens[rn->n] = e.len;
        rn->n++;
    } else {
        free(out);
    }
    return 0;
}

/* Frames buf as one read, or as two split at split (the unconsumed tail
 * of the first kept and offered again in front of the second), then EOF. */
static void
frame_stream(struct run *rn, enum sl_framing framing, const char *buf, size_t len, size_t split)
{
    struct sl_frame_state st;
    bool stopped;
    char *first = malloc(split + 1);
    char *pend = malloc(len + 1);
    if (first == NULL || pend == NULL) {
        abort();
    }
    sl_frame_init(&st, framing, &sl_codec_syslog);
    memcpy(first, buf, split);
    size_t used = sl_frame(&st, first, split, MAX_LINE, event_cb, rn, &stopped);
    size_t keep = split - used;
    memcpy(pend, first + used, keep);
    memcpy(pend + keep, buf + split, len - split);
    size_t total = keep + len - split;
    used = sl_frame(&st, pend, total, MAX_LINE, event_cb, rn, &stopped);
    sl_frame_end(&st, pend + used, total - used, MAX_LINE, event_cb, rn);
    free(pend);
    free(first);
}

static void
run_free(struct run *rn)
{
    for (size_t i = 0; i < rn->n; i++) {
        free(rn->outs[i]);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint32_t flags = fuzz_take(&in, 1);
    size_t split = fuzz_take(&in, 2);
    uint32_t recv = fuzz_take(&in, 4);
    static const char fields[] = "\"source\":\"s\",\"peer\":\"127.0.0.1:1\"";
    struct run a, b;

    memset(&a, 0, sizeof(a));
    a.opts.syslog_format = (int)(flags & 3) == 3 ? 0 : (int)(flags & 3);
    a.opts.syslog_tz_offset_s = zones[(flags >> 3) & 7];
    a.recv_ns = (uint64_t)recv * 1000000000u;
    if (flags & 4) {
        a.fields = fields;
        a.flen = sizeof(fields) - 1;
    }
    b = a;
    if (split > in.n) {
        split = in.n;
    }
    static const enum sl_framing framings[4] = {SL_FRAMING_LF, SL_FRAMING_AUTO, SL_FRAMING_OCTET,
                                                SL_FRAMING_AUTO};
    enum sl_framing framing = framings[(flags >> 6) & 3];
    frame_stream(&a, framing, (const char *)in.p, in.n, in.n);
    frame_stream(&b, framing, (const char *)in.p, in.n, split);
    fuzz_require(a.n == b.n, "split at %zu: %zu events, whole: %zu", split, b.n, a.n);
    for (size_t i = 0; i < a.n; i++) {
        fuzz_require(a.lens[i] == b.lens[i] && memcmp(a.outs[i], b.outs[i], a.lens[i]) == 0,
                     "split at %zu: event %zu differs", split, i);
    }
    run_free(&a);
    run_free(&b);
    return 0;
}
