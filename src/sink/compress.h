/*
 * compress — whole-file gzip (zlib) and zstd (libzstd) compression for
 * rotated files.  Blocking I/O; meant for the file sink's housekeeping
 * thread, never the writer.
 *
 * Thread: any; no shared state.
 */
#ifndef SLUICE_COMPRESS_H
#define SLUICE_COMPRESS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "sink/sink_file.h"

/*
 * Compresses everything from in_fd's current offset to its end into out_fd
 * as one gzip member or one zstd frame.  Stops early when *stop becomes
 * true (may be NULL).  Does not fsync or close either descriptor.
 * Returns 0, or -1 with errno set (ENOSPC, EIO, ..., ECANCELED when
 * stopped, ENOMEM).
 */
int sl_compress_fd(int in_fd, int out_fd, enum sl_compress how, const atomic_bool *stop);

/* ".gz", ".zst", or "" for none.  Static. */
const char *sl_compress_suffix(enum sl_compress how);

#endif
