/*
 * tls_io — one step of TLS on a non-blocking socket, between an SSL and
 * libevent evbuffers: the handshake, sending what an evbuffer holds and
 * reading into one.  For the connections that keep their bytes in
 * evbuffers and drive the socket with their own events (the sluice sink
 * and source); the tcp source and sink call SSL_read/SSL_write directly.
 *
 * Every call says what OpenSSL waits for, so the caller arms its read or
 * write event; none blocks.  Thread: the one that owns the connection.
 */
#ifndef SLUICE_TLS_IO_H
#define SLUICE_TLS_IO_H

#include <stddef.h>

typedef struct ssl_st SSL;
struct evbuffer;

enum sl_tls_io {
    SL_TLS_IO_OK,         /* done (handshake finished, out empty, or bytes read) */
    SL_TLS_IO_WANT_READ,  /* call again when the socket is readable */
    SL_TLS_IO_WANT_WRITE, /* call again when the socket is writable */
    SL_TLS_IO_EOF,        /* the peer closed (close_notify or a bare FIN) */
    SL_TLS_IO_ERROR,      /* broken: the thread's OpenSSL error queue says why */
};

/* One SSL_do_handshake step.  On SL_TLS_IO_ERROR *ssl_err is SSL_get_error's
 * answer and the error queue is left for sl_tls_handshake_failed(). */
enum sl_tls_io sl_tls_io_handshake(SSL *ssl, int *ssl_err);

/*
 * Encrypts and sends what out holds (draining what was sent) until it is
 * empty (OK) or the socket is full (WANT_*).  A record OpenSSL started is
 * retried with the same bytes: out's first bytes stay until drained, and
 * each SSL_write takes at most one record from its first segment.
 */
enum sl_tls_io sl_tls_io_write(SSL *ssl, struct evbuffer *out);

/*
 * Reads and decrypts into in until the socket has nothing more (WANT_*)
 * or max bytes came.  *got: bytes added (also on EOF and ERROR, so what
 * came before the end is processed).  OK means max was reached: call again
 * (OpenSSL may hold more already: SSL_pending).
 */
enum sl_tls_io sl_tls_io_read(SSL *ssl, struct evbuffer *in, size_t max, size_t *got);

#endif
