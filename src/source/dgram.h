/*
 * dgram — the datagram reading the datagram source types share (dgram.c):
 * udp (source_udp.c) and unix_dgram (source_unix.c).
 *
 * A datagram type binds its socket itself and says what a full queue does
 * (enum sl_dgram_full); reading in recvmmsg batches, framing each datagram
 * with the source's codec, the peer (SCM_CREDENTIALS when the socket
 * passes them, else the sender's address), the counters and the drain at a
 * stop are here.  Its struct sl_source_type points at these functions
 * (start through a one-line wrapper that passes its policy).
 *
 * Thread: as the struct sl_source_type operations they implement
 * (sluice/source.h).
 */
#ifndef SLUICE_DGRAM_H
#define SLUICE_DGRAM_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/source.h"
#include "source/lane.h"

enum sl_dgram_full {
    SL_DGRAM_DROP, /* read on; an event without queue space is dropped and counted */
    SL_DGRAM_PAUSE /* stop reading until the queue has space (the senders block) */
};

/* start(): reads s->fd (bound, non-blocking). */
int sl_dgram_start(struct sl_source *s, enum sl_dgram_full full);
/* stop_begin(): reads what the socket holds, until the drain grace ends. */
void sl_dgram_stop_begin(struct sl_source *s);
/* idle(): not waiting for queue space with datagrams read but not framed. */
bool sl_dgram_idle(const struct sl_source *s);
/* close_all(): gives up the datagrams read but not framed; returns their bytes. */
uint64_t sl_dgram_close_all(struct sl_source *s);
/* fini(): frees everything but s->fd. */
void sl_dgram_fini(struct sl_source *s);

#endif
