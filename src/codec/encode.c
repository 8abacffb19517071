/*
 * encode — the add_fields helpers shared by the codecs: the received_at
 * text, one escaped "key":"value" member, a peer address or credentials
 * (pure functions, any thread), and the opening of an object with fields
 * spliced in.  The codecs themselves are codec_json.c, codec_raw.c and
 * codec_syslog.c.
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

char *
sl_encode_open(char *out, size_t room, size_t max_out, const char *fields, size_t flen, size_t blen,
               enum sl_encode_result *r)
{
    size_t need = 1 + (flen > 0 ? flen + 1 : 0) + blen;
    if (need > max_out) {
        *r = SL_ENCODE_TOO_LARGE;
        return NULL;
    }
    if (need > room) {
        *r = SL_ENCODE_NO_ROOM;
        return NULL;
    }
    char *p = out;
    *p++ = '{';
    if (flen > 0) {
        memcpy(p, fields, flen);
        p += flen;
        *p++ = ',';
    }
    return p;
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

int
sl_encode_cred(char *buf, size_t cap, size_t *len, int64_t pid, uint32_t uid, uint32_t gid)
{
    int r = snprintf(buf + *len, cap - *len, "%s\"peer_pid\":%lld,\"peer_uid\":%u,\"peer_gid\":%u",
                     *len > 0 ? "," : "", (long long)pid, uid, gid);
    if (r < 0 || (size_t)r >= cap - *len) {
        return -1;
    }
    *len += (size_t)r;
    return 0;
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
