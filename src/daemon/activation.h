/*
 * activation — sockets passed by systemd (socket activation).
 *
 * A socket whose FileDescriptorName= equals a source's name is used for
 * that source instead of binding a new one (sd_listen_fds_with_names(3));
 * a socket named after no source is matched by its address instead (the
 * path of a unix socket, the address and port of an inet one).  Its type
 * must match (ListenStream= for tcp and unix_stream, ListenDatagram= for
 * udp and unix_dgram; a path for the unix types).
 * Every producer thread then gets its own duplicate of that one socket, so
 * the threads share it (the kernel hands each connection or datagram to
 * one of them).  Sockets that match no source are logged and closed.
 *
 * Thread: main, before any other thread starts.
 */
#ifndef SLUICE_ACTIVATION_H
#define SLUICE_ACTIVATION_H

#include "sluice/config.h"

/*
 * Fills fds[i] (one per cfg->sources[i]) with the inherited socket for that
 * source or -1.  The caller owns the returned fds.  Returns the number of
 * sockets adopted, or -1 when an inherited socket named after a source has
 * the wrong type (logged; a set-up error).
 */
int sl_activation_adopt(const struct sl_config *cfg, int *fds);

#endif
