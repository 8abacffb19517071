/*
 * check_relp_guard — librelp's TLS descriptors with the guard on
 * (src/source/relp_guard.h), against the machine's real librelp, in
 * this process: a RELP-over-TLS listener on loopback served by
 * relpEngineRun on a thread, the certificates of tests/certs.sh.
 *
 * What another thread could do is done at the worst moment: right after
 * librelp closes a socket (the guard's test hook, on librelp's thread),
 * the number is taken with dup2() for the write end of a pipe of the
 * test's, as an accept() or open() of another thread would take it.
 * Then:
 *   - a TLS session that ends: librelp 1.11 writes its close_notify alert
 *     into the number and closes it again (SSL_free, BIO_CLOSE);
 *   - a plaintext client refused at accept: librelp 1.11 closes the
 *     number twice more (SSL_free, then relpTcpAcceptConnReq).
 * Each test requires the pipe to be still open, still the pipe, and
 * empty.  SLUICE_TEST_RELP_GUARD=off runs them with the guard passing
 * every call through (librelp's own behaviour): with librelp 1.11 both
 * fail, which shows they test something.  Each test also counts this
 * process's descriptors before and after, so a close the guard skipped
 * wrongly (a leak) fails too.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <librelp.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certs.h"
#include "source/relp_guard.h"

static int pipe_fds[2];
static int armed; /* atomic builtins: the next close librelp makes is taken */
static int taken = -1;

/* The guard's hook, on librelp's thread: the number just freed is taken. */
static void
take_number(int fd)
{
    int one = 1;
    if (__atomic_compare_exchange_n(&armed, &one, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        dup2(pipe_fds[1], fd) == fd) {
        __atomic_store_n(&taken, fd, __ATOMIC_RELEASE);
    }
}

static void
setup(void)
{
    const char *mode = getenv("SLUICE_TEST_RELP_GUARD");
    bool enforce = mode == NULL || strcmp(mode, "off") != 0;
    ck_assert(sl_relp_guard_install());
    sl_relp_guard_test(enforce, take_number);
    ck_assert_int_eq(pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC), 0);
    signal(SIGPIPE, SIG_IGN);
}

static int
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n - 1; /* the directory's own */
}

static relpRetVal
rcv_cb(void *usr, unsigned char *host, unsigned char *ip, unsigned char *msg, size_t len)
{
    return RELP_RET_OK;
}

struct server {
    relpEngine_t *engine;
    pthread_t thread;
    int shutdown; /* librelp's flag (atomic builtins) */
    int port;
};

static void
cert(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", certs, name);
}

/* A TLS listener on 127.0.0.1 (bound on return; not yet serving). */
static void
server_make(struct server *s)
{
    char port[16], pem[PATH_MAX], key[PATH_MAX];
    relpSrv_t *srv = NULL;
    memset(s, 0, sizeof(*s));
    /* a free port: the kernel's pick for a socket bound to port 0 */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    ck_assert_int_eq(bind(probe, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&sin, &slen), 0);
    close(probe);
    s->port = ntohs(sin.sin_port);
    snprintf(port, sizeof(port), "%d", s->port);
    cert(pem, sizeof(pem), "server.pem");
    cert(key, sizeof(key), "server.key");
    sl_relp_guard_forget(); /* as source_relp.c before it makes an engine */
    ck_assert_int_eq(relpEngineConstruct(&s->engine), RELP_RET_OK);
    ck_assert_int_eq(relpEngineSetDbgprint(s->engine, NULL), RELP_RET_OK);
    ck_assert_int_eq(relpEngineSetDnsLookupMode(s->engine, 0), RELP_RET_OK);
    ck_assert_int_eq(relpEngineSetFamily(s->engine, AF_INET), RELP_RET_OK);
    ck_assert_int_eq(relpEngineSetSyslogRcv2(s->engine, rcv_cb), RELP_RET_OK);
    ck_assert_int_eq(relpEngineSetTLSLibByName(s->engine, "openssl"), RELP_RET_OK);
    ck_assert_int_eq(
        relpEngineSetEnableCmd(s->engine, (unsigned char *)"syslog", eRelpCmdState_Required),
        RELP_RET_OK);
    ck_assert_int_eq(relpEngineListnerConstruct(s->engine, &srv), RELP_RET_OK);
    relpEngineSetShutdownImmdtPtr(s->engine, &s->shutdown);
    ck_assert_int_eq(relpSrvSetLstnPort(srv, (unsigned char *)port), RELP_RET_OK);
    ck_assert_int_eq(relpSrvSetLstnAddr(srv, (unsigned char *)"127.0.0.1"), RELP_RET_OK);
    ck_assert_int_eq(relpSrvEnableTLS2(srv), RELP_RET_OK);
    ck_assert_int_eq(relpSrvSetOwnCert(srv, pem), RELP_RET_OK);
    ck_assert_int_eq(relpSrvSetPrivKey(srv, key), RELP_RET_OK);
    ck_assert_int_eq(relpEngineListnerConstructFinalize(s->engine, srv), RELP_RET_OK);
}

static void *
server_main(void *arg)
{
    struct server *s = arg;
    (void)relpEngineRun(s->engine);
    return NULL;
}

static int
connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

/* Stops the engine (its flag, then a connection that wakes its epoll_wait),
 * waits for its thread and destroys it: whatever librelp was doing with a
 * session is finished on return. */
static void
server_end(struct server *s)
{
    __atomic_store_n(&s->shutdown, 1, __ATOMIC_RELEASE);
    ck_assert_int_eq(relpEngineSetStop(s->engine), RELP_RET_OK);
    close(connect_to(s->port));
    ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
    sl_relp_guard_forget(); /* as source_relp.c before it destroys one */
    ck_assert_int_eq(relpEngineDestruct(&s->engine), RELP_RET_OK);
}

static void
wait_taken(void)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (__atomic_load_n(&taken, __ATOMIC_ACQUIRE) < 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_msg(now.tv_sec - start.tv_sec < 20, "librelp closed nothing in 20 s");
        struct timespec tick = {0, 2 * 1000 * 1000};
        nanosleep(&tick, NULL); /* polling for the hook, bounded above */
    }
}

/* The number taken is still the test's pipe, and nothing was written to it. */
static void
require_pipe_intact(void)
{
    struct stat a, b;
    int fd = __atomic_load_n(&taken, __ATOMIC_ACQUIRE);
    ck_assert_msg(fstat(fd, &a) == 0, "librelp closed descriptor %d after another thread got it",
                  fd);
    ck_assert_int_eq(fstat(pipe_fds[1], &b), 0);
    ck_assert_msg(a.st_ino == b.st_ino, "descriptor %d is no longer the pipe", fd);
    char buf[256];
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    ck_assert_msg(n < 0 && errno == EAGAIN,
                  "librelp wrote %zd bytes to descriptor %d after closing it", n, fd);
    close(fd);
}

START_TEST(test_guard_session_end)
{
    struct server s;
    int before = open_fds();
    server_make(&s);
    ck_assert_int_eq(pthread_create(&s.thread, NULL, server_main, &s), 0);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    int fd = connect_to(s.port);
    SSL *ssl = SSL_new(ctx);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_set_fd(ssl, fd), 1);
    ck_assert_int_eq(SSL_connect(ssl), 1);
    /* the server's next close is the end of this session */
    __atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    wait_taken();
    server_end(&s);
    require_pipe_intact();
    ck_assert_int_eq(open_fds(), before);
}
END_TEST

/* The server closed the client's connection: end of stream within 10 s. */
static void
require_eof(int fd)
{
    char buf[4096];
    for (int i = 0; i < 1000; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_msg(poll(&p, 1, 10000) == 1, "the server never closed the session");
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            return;
        }
    }
    ck_abort_msg("the server sends without end");
}

START_TEST(test_guard_engine_cycle)
{
    int before = open_fds();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    for (int round = 0; round < 3; round++) {
        struct server s;
        server_make(&s);
        ck_assert_int_eq(pthread_create(&s.thread, NULL, server_main, &s), 0);
        int fd = connect_to(s.port);
        SSL *ssl = SSL_new(ctx);
        ck_assert_ptr_nonnull(ssl);
        ck_assert_int_eq(SSL_set_fd(ssl, fd), 1);
        ck_assert_int_eq(SSL_connect(ssl), 1);
        server_end(&s); /* destroys the session: this thread closes its number */
        require_eof(fd);
        SSL_free(ssl);
        close(fd);
    }
    SSL_CTX_free(ctx);
    ck_assert_int_eq(open_fds(), before);
}
END_TEST

START_TEST(test_guard_refused_at_accept)
{
    struct server s;
    int before = open_fds();
    uint64_t skips = sl_relp_guard_skipped();
    server_make(&s);
    /* connected and sent before librelp runs: its first handshake step at
     * accept reads plaintext and fails there */
    int fd = connect_to(s.port);
    static const char plain[] = "<13>1 - - - - - - not TLS\n";
    ck_assert_int_eq(send(fd, plain, sizeof(plain) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(plain) - 1);
    __atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
    ck_assert_int_eq(pthread_create(&s.thread, NULL, server_main, &s), 0);
    wait_taken();
    server_end(&s);
    close(fd);
    require_pipe_intact();
    ck_assert_int_eq(open_fds(), before);
    ck_assert_msg(sl_relp_guard_skipped() > skips, "no second close was skipped");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("relp_guard");
    TCase *tc = tcase_create("tls");
    tcase_add_unchecked_fixture(tc, certs_make, certs_remove);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_guard_session_end);
    tcase_add_test(tc, test_guard_refused_at_accept);
    tcase_add_test(tc, test_guard_engine_cycle);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
