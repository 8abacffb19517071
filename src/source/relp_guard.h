/*
 * relp_guard — keeps librelp from closing descriptors it no longer owns.
 *
 * librelp up to 1.12 (Debian ships 1.11.0) closes a RELP-over-TLS socket
 * more than once, and uses it after closing it:
 *   - its OpenSSL back end wraps the socket in a BIO made with BIO_CLOSE,
 *     so SSL_free() closes the socket that relpTcpDestruct() has already
 *     closed, and SSL_shutdown() first writes a close_notify alert to it;
 *   - after a TLS session that fails at accept, relpTcpAcceptConnReq()
 *     closes the accepted socket again after relpTcpDestruct() closed it.
 * In a threaded process the number is free between those calls: another
 * thread's accept(), open() or socket() may get it, and the second close
 * (or the alert) then hits that thread's connection or file.  Fixed
 * upstream in librelp 1.13 (commits 798c999 and d108c77); see
 * docs/security.md, "RELP over TLS and librelp".
 *
 * The guard redirects librelp's own calls (its GOT entries, nothing else
 * in the process) to wrappers:
 *   - BIO_new_socket(sock, flag) gets a private duplicate of sock, closed
 *     by the BIO: SSL_shutdown's alert goes to the (still open) socket
 *     and SSL_free closes a number nobody else can hold;
 *   - close(fd)/shutdown(fd) of a number that this thread's librelp calls
 *     closed and have not obtained again since (accept, socket,
 *     epoll_create) are skipped and counted: that number is not
 *     librelp's any more.
 * The record is per thread: librelp closes twice within one call, on one
 * thread, and a second relp engine on another thread may legitimately get
 * the same number in between.  A relp thread closes only what it accepted
 * itself, so its record stays right; the thread that makes and destroys
 * engines (a producer's) closes sessions its engines' relp threads
 * accepted, so it forgets its record before each such call
 * (sl_relp_guard_forget): otherwise a number it closed for one engine and
 * a later engine's relp thread accepted would be skipped (a leak).
 *
 * Thread: sl_relp_guard_install on any thread, once before the first
 * engine is made; the wrappers on whatever thread librelp runs.
 */
#ifndef SLUICE_RELP_GUARD_H
#define SLUICE_RELP_GUARD_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Redirects librelp's calls as above (once per process; later calls return
 * the first result).  Returns true when every entry was found and
 * redirected; false (logged once) when librelp is not loaded as a shared
 * library, the architecture is not known, an entry was not found or
 * librelp imports a descriptor-making call the guard does not wrap: the
 * process then runs with librelp's own behaviour.  Whatever librelp's
 * version (it exports none): a fixed librelp gives it nothing to skip.
 */
bool sl_relp_guard_install(void);

/* Empties the calling thread's record of closed numbers: call before
 * relpEngineConstruct and relpEngineDestruct on a thread that is not a
 * relp thread (any thread). */
void sl_relp_guard_forget(void);

/* Second closes skipped so far, process-wide (sluice_relp_closes_skipped_total). */
uint64_t sl_relp_guard_skipped(void);

/*
 * Tests only.  enforce = false keeps the redirection but passes every call
 * through unchanged (librelp's own behaviour, to show a test fails
 * without the guard).  after_close, when set, is called on librelp's
 * thread right after each close the guard lets through, with the number
 * just freed (a test takes it there, as another thread could).
 */
void sl_relp_guard_test(bool enforce, void (*after_close)(int fd));

#endif
