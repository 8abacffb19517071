/*
 * codec_syslog — the syslog codec: stream sources frame with `framing =
 * auto` unless set (octet counting or newlines, RFC 6587), datagram sources
 * take one event per datagram (RFC 5426); each event is parsed as RFC 5424 or RFC 3164
 * (src/codec/syslog_parse.c) and written as one JSON object with the field
 * names of Vector's syslog codec:
 *
 *   {"facility":"user","severity":"notice","timestamp":"2026-12-05T23:30:00.000000Z",
 *    "hostname":"h","appname":"app","procid":"42","msgid":"ID7","version":1,
 *    "structured_data":{"id@1":{"k":"v"}},"message":"text"}
 *
 * (add_fields members first).  Absent parts are left out.  NUL bytes
 * become U+FFFD (the escaper's "\u0000" is refused by jansson and the
 * validator).  A line that is not syslog in the source's syslog_format is
 * kept as {"message":"<line>"} (as codec raw writes it) and flagged
 * unparsed, so the lane counts it.  Pure functions, any thread.
 *
 * The JSON is written straight into the chunk when the worst case (every
 * input byte escaped to six, plus the keys) fits the room left; otherwise
 * into the thread's scratch first, so the exact size decides between
 * NO_ROOM (retry with an empty chunk) and TOO_LARGE.
 */
#include <stdint.h>
#include <string.h>

#include "codec/encode.h"
#include "codec/escape.h"
#include "codec/framing.h"
#include "codec/jsonchar.h"
#include "codec/syslog_parse.h"
#include "daemon/registry.h"
#include "sluice/codec.h"

/* Keys, quotes, commas, braces, the time and the names: what the output
 * adds beyond SL_ESCAPE_MAX of the input (an SD's own syntax never grows
 * more than 6x either). */
#define SYSLOG_OVERHEAD 512

static inline char *
put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* A literal: its length is a constant, so the copy is inlined. */
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/*
 * s[0..n) JSON-escaped at o.  Header fields are short and nearly always
 * plain ASCII: copied here a word at a time; the escaper takes over from
 * the first byte that needs it.  Writes at most SL_ESCAPE_MAX(n) bytes.
 */
static inline char *
esc(char *o, const char *s, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        if (sl_json_special8(w) != 0) {
            break;
        }
        memcpy(o + i, &w, sizeof(w));
        i += 8;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            return o + i + sl_escape_json(s + i, n - i, o + i, NULL);
        }
        o[i] = (char)c;
    }
    return o + n;
}

/* ,"key":"<escaped span>" when the span is present (key a literal). */
#define PUT_FIELD(p, key, span)                                                                    \
    do {                                                                                           \
        if ((span).len > 0) {                                                                      \
            (p) = PUT_LIT((p), ",\"" key "\":\"");                                                 \
            (p) = esc((p), (span).p, (span).len);                                                  \
            *(p)++ = '"';                                                                          \
        }                                                                                          \
    } while (0)

/* A PARAM-VALUE with its \" \\ \] escapes (RFC 5424 section 6.3.3)
 * decoded, JSON-escaped; any other backslash stays as it is. */
static char *
put_sd_value(char *p, struct sl_syslog_span v)
{
    const char *s = v.p;
    const char *end = v.p + v.len;
    const char *seg = s;
    while (s < end) {
        const char *b = memchr(s, '\\', (size_t)(end - s));
        if (b == NULL || b + 1 >= end) {
            break;
        }
        char c = b[1];
        if (c == '"' || c == '\\' || c == ']') {
            p = esc(p, seg, (size_t)(b - seg));
            if (c == ']') {
                *p++ = ']';
            } else {
                *p++ = '\\';
                *p++ = c;
            }
            seg = b + 2;
        }
        s = b + 2;
    }
    return esc(p, seg, (size_t)(end - seg));
}

static char *
put_sd(char *p, struct sl_syslog_span sd, bool escapes)
{
    const char *pos = sd.p;
    const char *end = sd.p + sd.len;
    struct sl_syslog_span id, name, value;
    bool first = true;
    p = PUT_LIT(p, ",\"structured_data\":{");
    while (sl_syslog_sd_element(&pos, end, &id)) {
        if (!first) {
            *p++ = ',';
        }
        first = false;
        *p++ = '"';
        p = esc(p, id.p, id.len);
        p = PUT_LIT(p, "\":{");
        bool pfirst = true;
        while (sl_syslog_sd_param(&pos, end, &name, &value)) {
            if (!pfirst) {
                *p++ = ',';
            }
            pfirst = false;
            *p++ = '"';
            p = esc(p, name.p, name.len);
            p = PUT_LIT(p, "\":\"");
            p = escapes ? put_sd_value(p, value) : esc(p, value.p, value.len);
            *p++ = '"';
        }
        *p++ = '}';
    }
    *p++ = '}';
    return p;
}

/* Writes {fields,members}\n for m at out, which has room for
 * syslog_bound(); returns the length.  facility and severity, always
 * there, come first, so every later member starts with its comma. */
static size_t
syslog_write(const struct sl_syslog_msg *m, const char *fields, size_t flen, char *out)
{
    char *p = out;
    *p++ = '{';
    if (flen > 0) {
        p = put(p, fields, flen);
        *p++ = ',';
    }
    const char *fac = sl_syslog_facility_name(m->facility);
    const char *sev = sl_syslog_severity_name(m->severity);
    p = PUT_LIT(p, "\"facility\":\"");
    p = put(p, fac, strlen(fac));
    p = PUT_LIT(p, "\",\"severity\":\"");
    p = put(p, sev, strlen(sev));
    *p++ = '"';
    if (m->has_time) {
        p = PUT_LIT(p, ",\"timestamp\":\"");
        p += sl_syslog_format_time(m->time_s, m->time_us, p);
        *p++ = '"';
    }
    PUT_FIELD(p, "hostname", m->hostname);
    PUT_FIELD(p, "appname", m->appname);
    PUT_FIELD(p, "procid", m->procid);
    PUT_FIELD(p, "msgid", m->msgid);
    if (m->version > 0) {
        p = PUT_LIT(p, ",\"version\":");
        if (m->version >= 100) {
            *p++ = (char)('0' + m->version / 100);
        }
        if (m->version >= 10) {
            *p++ = (char)('0' + m->version / 10 % 10);
        }
        *p++ = (char)('0' + m->version % 10);
    }
    if (m->sd.len > 0) {
        p = put_sd(p, m->sd, m->sd_escapes);
    }
    PUT_FIELD(p, "message", m->message);
    *p++ = '}';
    *p++ = '\n';
    return (size_t)(p - out);
}

/*
 * The escaper writes a NUL byte as "\u0000", which jansson (and so the
 * validator) refuses without JSON_ALLOW_NUL: make each one U+FFFD, the
 * same six bytes "\ufffd".  out[0..len) is JSON text whose only
 * backslashes start escapes, so walking escape by escape finds exactly the
 * NULs (never the "\u0000" text of a line, written "\\u0000").
 */
static void
syslog_fix_nul(char *out, size_t len)
{
    char *p = out;
    char *end = out + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) {
            memcpy(p + 2, "fffd", 4);
            p += 6;
        } else {
            p += 2;
        }
    }
}

static size_t
syslog_bound(size_t len, size_t flen)
{
    return SL_ESCAPE_MAX(len) + flen + SYSLOG_OVERHEAD;
}

static enum sl_encode_result syslog_encode_line(const char *line, size_t len, const char *fields,
                                                size_t flen, const struct sl_codec_opts *opts,
                                                uint64_t recv_ns, char *scratch, char *out,
                                                size_t room, size_t max_out, size_t *outlen,
                                                bool *unparsed);

enum sl_encode_result
sl_encode_syslog(const char *line, size_t len, const char *fields, size_t flen,
                 const struct sl_codec_opts *opts, uint64_t recv_ns, char *scratch, char *out,
                 size_t room, size_t max_out, size_t *outlen, bool *unparsed)
{
    enum sl_encode_result r = syslog_encode_line(line, len, fields, flen, opts, recv_ns, scratch,
                                                 out, room, max_out, outlen, unparsed);
    if (r == SL_ENCODE_OK && memchr(line, '\0', len) != NULL) {
        syslog_fix_nul(out, *outlen);
    }
    return r;
}

static enum sl_encode_result
syslog_encode_line(const char *line, size_t len, const char *fields, size_t flen,
                   const struct sl_codec_opts *opts, uint64_t recv_ns, char *scratch, char *out,
                   size_t room, size_t max_out, size_t *outlen, bool *unparsed)
{
    struct sl_syslog_msg m;
    *unparsed = false;
    if (sl_syslog_parse(line, len, (enum sl_syslog_format)opts->syslog_format,
                        opts->syslog_tz_offset_s, (int64_t)(recv_ns / 1000000000u), &m) < 0) {
        *unparsed = true;
        return sl_encode_raw(line, len, fields, flen, scratch, out, room, max_out, outlen);
    }
    if (syslog_bound(len, flen) <= room) {
        *outlen = syslog_write(&m, fields, flen, out);
        return SL_ENCODE_OK;
    }
    /* Near the chunk's end (or a huge line): the members go to scratch
     * first, fields are spliced in front of them. */
    size_t n = syslog_write(&m, "", 0, scratch);
    enum sl_encode_result r;
    char *p = sl_encode_open(out, room, max_out, fields, flen, n - 1, &r);
    if (p == NULL) {
        return r;
    }
    p = put(p, scratch + 1, n - 1);
    *outlen = (size_t)(p - out);
    return SL_ENCODE_OK;
}

static enum sl_encode_result
syslog_encode(const char *line, size_t len, const char *fields, size_t flen, struct sl_codec_out *o)
{
    return sl_encode_syslog(line, len, fields, flen, o->opts, o->recv_ns, o->scratch, o->data,
                            o->room, o->max_out, &o->len, &o->unparsed);
}

/* The whole output without fields, for the slow path (fields are never in
 * scratch); also covers the unparsed case (codec raw's needs). */
static size_t
syslog_scratch_bytes(size_t max_line)
{
    return syslog_bound(max_line, 0);
}

const struct sl_codec_type sl_codec_syslog = {
    .name = "syslog",
    .default_framing = SL_FRAMING_AUTO, /* RFC 6587: octet-counted or LF, per connection */
    .frame = sl_frame_lines,
    .frame_end = sl_frame_finish,
    .encode = syslog_encode,
    .scratch_bytes = syslog_scratch_bytes,
    .whole_datagram = true,
};
