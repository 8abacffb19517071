/*
 * compress — see compress.h.  Streams the input in 128 KiB reads through
 * deflate (gzip wrapper, level 6) or ZSTD_compressStream2 (level 3) and
 * writes whatever comes out, retrying short writes and EINTR.
 */
#include "sink/compress.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define COMPRESS_BUF (128 * 1024)
#define GZIP_LEVEL 6
#define ZSTD_LEVEL 3

const char *
sl_compress_suffix(enum sl_compress how)
{
    switch (how) {
    case SL_COMPRESS_GZIP:
        return ".gz";
    case SL_COMPRESS_ZSTD:
        return ".zst";
    case SL_COMPRESS_NONE:
        break;
    }
    return "";
}

static int
compress_write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The next block of input: the count (0 at the end), or -1 with errno
 * (ECANCELED when *stop became true). */
static ssize_t
compress_read(int fd, unsigned char *p, const atomic_bool *stop)
{
    ssize_t r;
    do {
        r = read(fd, p, COMPRESS_BUF);
    } while (r < 0 && errno == EINTR);
    if (r >= 0 && stop != NULL && atomic_load_explicit(stop, memory_order_relaxed)) {
        errno = ECANCELED;
        return -1;
    }
    return r;
}

static int
compress_gzip(int in_fd, int out_fd, unsigned char *in, unsigned char *out, const atomic_bool *stop)
{
    z_stream z = {0};
    int rc = -1, flush = Z_NO_FLUSH, zr = Z_OK;

    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        errno = ENOMEM;
        return -1;
    }
    while (flush != Z_FINISH) {
        ssize_t n = compress_read(in_fd, in, stop);
        if (n < 0) {
            goto done;
        }
        flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = in;
        z.avail_in = (uInt)n;
        do {
            z.next_out = out;
            z.avail_out = COMPRESS_BUF;
            zr = deflate(&z, flush);
            if (zr == Z_STREAM_ERROR) {
                errno = EIO;
                goto done;
            }
            if (compress_write_all(out_fd, out, COMPRESS_BUF - z.avail_out) < 0) {
                goto done;
            }
        } while (z.avail_out == 0);
    }
    rc = zr == Z_STREAM_END ? 0 : -1;
    if (rc < 0) {
        errno = EIO;
    }
done:
    deflateEnd(&z);
    return rc;
}

static int
compress_zstd(int in_fd, int out_fd, unsigned char *in, unsigned char *out, const atomic_bool *stop)
{
    ZSTD_CCtx *cx = ZSTD_createCCtx();
    int rc = -1;
    bool last = false;

    if (cx == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ZSTD_CCtx_setParameter(cx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(cx, ZSTD_c_checksumFlag, 1);
    while (!last) {
        ssize_t n = compress_read(in_fd, in, stop);
        if (n < 0) {
            goto done;
        }
        last = n == 0;
        ZSTD_inBuffer ib = {in, (size_t)n, 0};
        size_t left;
        do {
            ZSTD_outBuffer ob = {out, COMPRESS_BUF, 0};
            left = ZSTD_compressStream2(cx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left)) {
                errno = EIO;
                goto done;
            }
            if (compress_write_all(out_fd, out, ob.pos) < 0) {
                goto done;
            }
        } while (last ? left != 0 : ib.pos < ib.size);
    }
    rc = 0;
done:
    ZSTD_freeCCtx(cx);
    return rc;
}

int
sl_compress_fd(int in_fd, int out_fd, enum sl_compress how, const atomic_bool *stop)
{
    unsigned char *in = malloc(COMPRESS_BUF), *out = malloc(COMPRESS_BUF);
    int rc = -1, saved;

    if (in == NULL || out == NULL) {
        errno = ENOMEM;
    } else if (how == SL_COMPRESS_GZIP) {
        rc = compress_gzip(in_fd, out_fd, in, out, stop);
    } else if (how == SL_COMPRESS_ZSTD) {
        rc = compress_zstd(in_fd, out_fd, in, out, stop);
    } else {
        errno = EINVAL;
    }
    saved = errno;
    free(in);
    free(out);
    errno = saved;
    return rc;
}
