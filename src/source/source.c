/*
 * source — what the source types share (sluice/source.h): finding a
 * configured source's type (its registry entry's impl), binding inet
 * sockets, and probing whether another process holds an inet address.
 *
 * Thread: any for the lookup (const tables); main for binding.
 */
#include "sluice/source.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
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

/*
 * A new inet socket for src (sl_source_socket) with the options a group
 * member (group: SO_REUSEPORT) and the probe (not group) share:
 * SO_REUSEADDR on TCP only, so connections left in TIME_WAIT do not block
 * the port (on UDP it would let any socket that sets it too, of any user,
 * bind the port beside ours and take its datagrams); IPV6_V6ONLY, so an
 * IPv6 address never takes IPv4's port.  Returns the fd, or -1 with errno
 * set.
 */
static int
source_inet_socket(const struct sl_source_config *src, int type, bool group)
{
    int fd = sl_source_socket(src, type);
    int one = 1;
    if (fd < 0) {
        return -1;
    }
    if ((type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
        (group && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (src->addr.ss_family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    return fd;
}

int
sl_source_bind_inet(const struct sl_source_config *src, int type)
{
    int fd = source_inet_socket(src, type, true);
    int one = 1;
    if (fd < 0) {
        return -1;
    }
    if (type == SOCK_DGRAM) {
        (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    }
    return sl_source_bind_fd(fd, src, type == SOCK_STREAM);
}

/*
 * DESIGN: the probe.  The reuseport group a source's threads bind is open
 * to any socket of the same user that sets SO_REUSEPORT too: a second
 * sluiced on the same port would join it and silently take part of the
 * connections or datagrams.  So before main binds a group on an address it
 * does not hold yet, a probe binds the address without SO_REUSEPORT: that
 * fails with EADDRINUSE if any other socket listens there (TCP) or is
 * bound there (UDP), whether it set SO_REUSEPORT or not, and on a wildcard
 * address as on a specific one that overlaps it (Linux's bind conflict
 * rules; IPV6_V6ONLY as on the real sockets, so IPv4 and IPv6 do not
 * overlap).  A TCP probe sets SO_REUSEADDR as the real sockets do, so
 * connections in TIME_WAIT (or still open) on the port, and sockets bound
 * but not listening, do not count; a UDP probe does not, as the real ones
 * do not: on UDP, SO_REUSEADDR on both sockets lets them share the port.  The probe never
 * listens, so it takes no connection, and is closed before the group is
 * bound: two daemons that probe in the same microseconds may both pass
 * (the window is from close() to the first bind(), a few system calls).
 */
int
sl_source_probe_inet(const struct sl_source_config *src, int type)
{
    int fd = source_inet_socket(src, type, false);
    if (fd < 0) {
        return -1;
    }
    int rc = bind(fd, (const struct sockaddr *)&src->addr, src->addrlen);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

/* The port of an inet address (network order), and whether its host part
 * is the wildcard; false for another family. */
static bool
source_inet_parts(const struct sockaddr_storage *ss, in_port_t *port, bool *any)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ss;
        *port = a->sin_port;
        *any = a->sin_addr.s_addr == htonl(INADDR_ANY);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        *port = a->sin6_port;
        *any = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
        return true;
    }
    return false;
}

bool
sl_source_inet_overlap(const struct sl_source_config *a, const struct sl_source_config *b)
{
    in_port_t pa, pb;
    bool anya, anyb;
    if (sl_source_type_of(a)->socktype != sl_source_type_of(b)->socktype ||
        a->addr.ss_family != b->addr.ss_family || !source_inet_parts(&a->addr, &pa, &anya) ||
        !source_inet_parts(&b->addr, &pb, &anyb) || pa != pb) {
        return false;
    }
    if (anya || anyb) {
        return true;
    }
    if (a->addr.ss_family == AF_INET) {
        return ((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)&b->addr)->sin_addr.s_addr;
    }
    return memcmp(&((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)&b->addr)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}
