/*
 * tls_io — TLS steps between an SSL on a non-blocking socket and
 * evbuffers (tls_io.h).
 */
#include "util/tls_io.h"

#include <errno.h>
#include <limits.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* One TLS record's worth of plaintext per SSL_write (RFC 8446 5.1). */
#define TLS_IO_RECORD 16384
#define TLS_IO_READ 16384

static enum sl_tls_io
tls_io_result(SSL *ssl, int r, int *ssl_err)
{
    int e = SSL_get_error(ssl, r);
    if (ssl_err != NULL) {
        *ssl_err = e;
    }
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return SL_TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return SL_TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return SL_TLS_IO_EOF;
    case SSL_ERROR_SYSCALL:
        /* No OpenSSL error and no errno: the peer closed without
         * close_notify.  Treated as an end, not as a protocol error. */
        if (ERR_peek_error() == 0 && (r == 0 || errno == 0 || errno == ECONNRESET)) {
            return SL_TLS_IO_EOF;
        }
        return SL_TLS_IO_ERROR;
    default:
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return SL_TLS_IO_EOF; /* OpenSSL 3: a FIN without close_notify */
        }
#endif
        return SL_TLS_IO_ERROR;
    }
}

enum sl_tls_io
sl_tls_io_handshake(SSL *ssl, int *ssl_err)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        return SL_TLS_IO_OK;
    }
    enum sl_tls_io io = tls_io_result(ssl, r, ssl_err);
    /* A close during the handshake is a failed handshake, never an EOF. */
    return io == SL_TLS_IO_EOF ? SL_TLS_IO_ERROR : io;
}

enum sl_tls_io
sl_tls_io_write(SSL *ssl, struct evbuffer *out)
{
    while (evbuffer_get_length(out) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
            return SL_TLS_IO_ERROR;
        }
        int len = v.iov_len > TLS_IO_RECORD ? TLS_IO_RECORD : (int)v.iov_len;
        ERR_clear_error();
        int n = SSL_write(ssl, v.iov_base, len);
        if (n > 0) {
            evbuffer_drain(out, (size_t)n);
            continue;
        }
        return tls_io_result(ssl, n, NULL);
    }
    return SL_TLS_IO_OK;
}

enum sl_tls_io
sl_tls_io_read(SSL *ssl, struct evbuffer *in, size_t max, size_t *got)
{
    *got = 0;
    while (*got < max) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, TLS_IO_READ, &v, 1) != 1) {
            return SL_TLS_IO_ERROR;
        }
        size_t want = v.iov_len < max - *got ? v.iov_len : max - *got;
        ERR_clear_error();
        int n = SSL_read(ssl, v.iov_base, want > INT_MAX ? INT_MAX : (int)want);
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(in, &v, 1);
        if (n <= 0) {
            return tls_io_result(ssl, n, NULL);
        }
        *got += (size_t)n;
    }
    return SL_TLS_IO_OK;
}
