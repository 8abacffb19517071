/*
 * source — the table of source types (sluice/source.h) and what the inet
 * types share: binding their sockets.  A new source type is one file in
 * src/source/ and one line in the table here.
 *
 * Thread: any for the lookups (const tables); main for binding.
 */
#include "sluice/source.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/codec.h"
#include "sluice/conf.h"
#include "sluice/config.h"
#include "source/sources.h"

static const struct sl_source_type *const types[] = {
    &sl_source_tcp,
    &sl_source_udp,
};

const struct sl_source_type *
sl_source_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(types[i]->name, name) == 0) {
            return types[i];
        }
    }
    return NULL;
}

/* The config names a source's type by its key-table entry and its codec
 * by enum: these two functions are where it meets the vtables. */
const struct sl_source_type *
sl_source_type_of(const struct sl_source_config *cfg)
{
    return sl_source_type_find(cfg->type->name);
}

const struct sl_codec_type *
sl_source_codec_of(const struct sl_source_config *cfg)
{
    return sl_codec_find(cfg->codec == SL_CODEC_JSON ? "json" : "raw");
}

int
sl_source_bind_inet(const struct sl_source_config *src, int type)
{
    int fd = socket(src->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        goto err;
    }
    if (src->addr.ss_family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (src->recv_buffer_bytes > 0) {
        int sz =
            src->recv_buffer_bytes > (size_t)INT32_MAX ? INT32_MAX : (int)src->recv_buffer_bytes;
        /* SO_RCVBUFFORCE may exceed rmem_max when privileged; else cap. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0) {
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
    }
    if (type == SOCK_DGRAM) {
        (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *)&src->addr, src->addrlen) < 0) {
        goto err;
    }
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) {
        goto err;
    }
    return fd;
err:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
