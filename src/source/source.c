/*
 * source — what the source types share (sluice/source.h): finding a
 * configured source's type (its registry entry's impl) and binding inet
 * sockets.
 *
 * Thread: any for the lookup (const tables); main for binding.
 */
#include "sluice/source.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/conf.h"
#include "sluice/config.h"

const struct sl_source_type *
sl_source_type_of(const struct sl_source_config *cfg)
{
    return cfg->type->impl.source;
}

int
sl_source_socket(const struct sl_source_config *src, int type)
{
    int fd = socket(src->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && src->recv_buffer_bytes > 0) {
        int sz =
            src->recv_buffer_bytes > (size_t)INT32_MAX ? INT32_MAX : (int)src->recv_buffer_bytes;
        /* SO_RCVBUFFORCE may exceed rmem_max when privileged; else cap. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0) {
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
    }
    return fd;
}

int
sl_source_bind_fd(int fd, const struct sl_source_config *src, bool listening)
{
    if (bind(fd, (const struct sockaddr *)&src->addr, src->addrlen) == 0 &&
        (!listening || listen(fd, 4096) == 0)) {
        return fd;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int
sl_source_bind_inet(const struct sl_source_config *src, int type)
{
    int fd = sl_source_socket(src, type);
    int one = 1;
    if (fd < 0) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (src->addr.ss_family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (type == SOCK_DGRAM) {
        (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    }
    return sl_source_bind_fd(fd, src, type == SOCK_STREAM);
}
