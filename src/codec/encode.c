/*
 * encode — codecs and add_fields splicing (pure functions, any thread).
 *
 * The json codec never builds a tree: the validator checks the line and the
 * bytes are copied as they are.  Fields are spliced after the first '{' so
 * the client's members keep their bytes and their order.
 */
#include "codec/encode.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec/escape.h"

size_t
sl_encode_time(uint64_t realtime_ns, char *buf)
{
    time_t secs = (time_t)(realtime_ns / 1000000000u);
    unsigned usec = (unsigned)((realtime_ns % 1000000000u) / 1000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, SL_TIME_TEXT_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    int r = snprintf(buf + n, SL_TIME_TEXT_MAX - n, ".%06uZ", usec);
    return n + (size_t)(r > 0 ? r : 0);
}

int
sl_encode_field(char *buf, size_t cap, size_t *len, const char *key, const char *value, size_t vlen)
{
    size_t klen = strlen(key);
    /* ,"key":"value" with value escaped at most 6x */
    size_t need = 1 + 1 + klen + 3 + SL_ESCAPE_MAX(vlen) + 1;
    if (*len + need > cap) {
        return -1;
    }
    char *p = buf + *len;
    if (*len > 0) {
        *p++ = ',';
    }
    *p++ = '"';
    memcpy(p, key, klen);
    p += klen;
    memcpy(p, "\":\"", 3);
    p += 3;
    p += sl_escape_json(value, vlen, p, NULL);
    *p++ = '"';
    *len = (size_t)(p - buf);
    return 0;
}

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

enum sl_encode_result
sl_encode_raw(const char *line, size_t len, const char *fields, size_t flen, char *scratch,
              char *out, size_t room, size_t max_out, size_t *outlen)
{
    static const char key[] = "\"message\":\"";
    size_t elen = sl_escape_json(line, len, scratch, NULL);
    /* {fields,"message":"..."}\n */
    size_t need = 1 + (flen > 0 ? flen + 1 : 0) + (sizeof(key) - 1) + elen + 3;
    if (need > max_out) {
        return SL_ENCODE_TOO_LARGE;
    }
    if (need > room) {
        return SL_ENCODE_NO_ROOM;
    }
    char *p = out;
    *p++ = '{';
    if (flen > 0) {
        memcpy(p, fields, flen);
        p += flen;
        *p++ = ',';
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

size_t
sl_encode_sockaddr(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    int r;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        r = snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        r = snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        r = snprintf(buf, cap, "unknown");
    }
    if (r < 0) {
        return 0;
    }
    return (size_t)r < cap ? (size_t)r : cap - 1;
}
