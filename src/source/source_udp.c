/*
 * source_udp — the udp source type (struct sl_source_type sl_source_udp).
 *
 * Each producer thread has its own SO_REUSEPORT socket per UDP source (the
 * kernel spreads datagrams), read by the datagram module (dgram.c).  UDP
 * cannot be paused: an event that finds no queue space is dropped and
 * counted (SL_DGRAM_DROP).
 *
 * Thread: as sluice/source.h says for each operation.
 */
#include <sys/socket.h>

#include "source/dgram.h"
#include "source/source_udp.h"

static int
udp_bind(const struct sl_source_config *cfg, struct sl_source_shared *shared)
{
    return sl_source_bind_inet(cfg, SOCK_DGRAM);
}

/* A socket from systemd: count the kernel's drops as with our own. */
static void
udp_adopt(int fd)
{
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
}

static int
udp_start(struct sl_source *s)
{
    return sl_dgram_start(s, SL_DGRAM_DROP);
}

const struct sl_source_type sl_source_udp = {
    .name = "udp",
    .label = "UDP",
    .socktype = SOCK_DGRAM,
    .reuseport = true,
    .bind = udp_bind,
    .adopt = udp_adopt,
    .start = udp_start,
    .stop_begin = sl_dgram_stop_begin,
    .idle = sl_dgram_idle,
    .close_all = sl_dgram_close_all,
    .fini = sl_dgram_fini,
};
