/*
 * Unit tests for the sluice sink's hand-over, driven as the writer drives
 * it (its events on a test-owned event_base; peers are sockets of the test
 * on 127.0.0.1).
 *
 * Behaviour: the way back of a failed replacement (writer.c wsink_swap: the
 * new sink could not attach, so what the old one handed over comes back to
 * it while it stays attached): the old sink connects again at once, without
 * waiting for a write that an idle queue never makes, so the batches it got
 * back are resent and their chunks committed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/sink.h"

#include "daemon/registry.h"
#include "sink/sink_sluice.h"

struct sfx {
    struct sl_sink_config cfg;
    struct sl_sink_sluice_config scfg;
    struct sl_sink_target target;
    char name[32];
    struct sl_sink_stats stats[2];
    struct sl_sink sink[2]; /* 0: the old one (attached), 1: its replacement */
    struct event_base *base;
    int lfd;
};

static struct sfx F;

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
scaled(uint64_t ms)
{
    const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
    double m = s != NULL ? strtod(s, NULL) : 1;
    return (uint64_t)((double)ms * (m >= 1 ? m : 1));
}

static void
wake_cb(void *arg)
{
    (void)arg;
}

static void
commit_cb(void *arg, size_t n)
{
    (void)arg;
    (void)n;
}

static void
fx_setup(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);

    memset(&F, 0, sizeof(F));
    F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(F.lfd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(F.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(F.lfd, 16), 0);
    ck_assert_int_eq(getsockname(F.lfd, (struct sockaddr *)&sin, &len), 0);
    memcpy(&F.target.addr, &sin, sizeof(sin));
    F.target.addrlen = sizeof(sin);
    snprintf(F.name, sizeof(F.name), "127.0.0.1:%d", ntohs(sin.sin_port));
    F.target.text = F.name;
    F.cfg.name = "fwd";
    F.cfg.type = &sl_sink_sluice_conf;
    F.cfg.type_conf = &F.scfg;
    F.cfg.batch_max_bytes = 1 << 20;
    F.scfg.tcp.targets = &F.target;
    F.scfg.tcp.ntargets = 1;
    F.scfg.tcp.retry_initial_ms = 20;
    F.scfg.tcp.retry_max_ms = 100;
    F.scfg.tcp.connect_timeout_ms = 1000;
    F.scfg.tcp.write_timeout_ms = 5000;
    F.scfg.tcp.keepalive_ms = 30000;
    F.scfg.ack_timeout_ms = 10000;
    F.scfg.window_batches = 8;
    F.scfg.window_bytes = 1 << 20;
    F.scfg.sender_id = "edge";
    F.base = event_base_new();
    ck_assert_ptr_nonnull(F.base);
    for (int i = 0; i < 2; i++) {
        F.sink[i].ops = &sl_sink_sluice_ops;
        F.sink[i].cfg = &F.cfg;
        F.sink[i].stats = &F.stats[i];
        ck_assert_int_eq(F.sink[i].ops->open(&F.sink[i]), 0);
    }
}

static void
fx_teardown(void)
{
    F.sink[0].ops->detach(&F.sink[0]);
    for (int i = 0; i < 2; i++) {
        F.sink[i].ops->close(&F.sink[i]);
    }
    close(F.lfd);
    event_base_free(F.base);
}

/* Accepts the sink's next connection, running its events meanwhile; -1
 * when none comes within ms. */
static int
accept_within(uint64_t ms)
{
    uint64_t end = now_ms() + scaled(ms);
    while (now_ms() < end) {
        int fd = accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            return fd;
        }
        ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "accept: %s", strerror(errno));
        event_base_loop(F.base, EVLOOP_NONBLOCK);
        poll(NULL, 0, 2);
    }
    return -1;
}

/* True when the peer closed c (EOF), within ms. */
static bool
closed_within(int c, uint64_t ms)
{
    uint64_t end = now_ms() + scaled(ms);
    char buf[4096];
    while (now_ms() < end) {
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n == 0) {
            return true;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return true; /* reset */
        }
        poll(NULL, 0, 2);
    }
    return false;
}

START_TEST(test_sink_sluice_handback_reconnects)
{
    fx_setup();
    struct sl_sink_link link = {
        .base = F.base, .wake = wake_cb, .commit = commit_cb, .arg = &F, .pinned = true};
    ck_assert_int_eq(F.sink[0].ops->attach(&F.sink[0], &link), 0);
    int c1 = accept_within(5000); /* it connects at attach */
    ck_assert_int_ge(c1, 0);
    /* Handed over to the replacement: its connection is closed. */
    F.sink[0].ops->handover(&F.sink[0], &F.sink[1]);
    ck_assert(closed_within(c1, 5000));
    /* The replacement could not attach: back to the old one, which
     * connects again by itself (no write comes). */
    F.sink[1].ops->handover(&F.sink[1], &F.sink[0]);
    int c2 = accept_within(5000);
    ck_assert_msg(c2 >= 0, "the old sink did not connect again after the hand-back");
    close(c1);
    close(c2);
    fx_teardown();
}
END_TEST

int
main(void)
{
    sl_log_init(LOG_ERR);
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("sink_sluice");
    TCase *tc = tcase_create("handover");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_sink_sluice_handback_reconnects);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
