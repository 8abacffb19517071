/*
 * baseline — the bare receive→write ceiling that sluice is measured against.
 *
 * Accepts TCP connections on a loopback port with one epoll thread, reads
 * 64 KiB at a time and write()s the bytes straight to FILE: no framing, no
 * validation, no queue.  Whatever sluice does beyond this costs the
 * difference.  Exits 0 when the expected number of connections has closed
 * (-c), or on SIGTERM/SIGINT; prints its counters and rusage on stderr.
 *
 * Several connections write into one FILE, so each read is cut after its
 * last '\n' and the partial line (at most one line, a memrchr from the end
 * of 64 KiB) is carried to that connection's next read.  That keeps FILE a
 * valid NDJSON stream that bench/checkseq can verify, at a cost that is not
 * per event.  -R writes the bytes exactly as read (lines of different
 * connections then interleave) for a pure recv→write figure.  A line longer
 * than 64 KiB is written as it comes.
 *
 * With -p 0 it binds an ephemeral port and prints "port=N" on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BL_READ_BYTES (64 * 1024)
#define BL_MAX_EVENTS 64
#define BL_READS_PER_WAKE 16 /* fairness between connections */

static volatile sig_atomic_t bl_stop;

/* One accepted connection: its socket and the partial line it carries. */
struct bl_conn {
    int fd;
    size_t carry; /* bytes of an unfinished line at buf[0, carry) */
    char buf[2 * BL_READ_BYTES];
};

static void
bl_signal_cb(int sig)
{
    (void)sig;
    bl_stop = 1;
}

/* Writes all of buf; returns 0, or -1 with errno set. */
static int
bl_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/*
 * Writes what c holds up to its last complete line (everything when raw, at
 * EOF, or when no line ends in 64 KiB) and keeps the rest.  Returns 0 or -1.
 */
static int
bl_conn_flush(struct bl_conn *c, int out, bool all)
{
    const char *nl = all ? NULL : memrchr(c->buf, '\n', c->carry);
    size_t n;

    if (nl != NULL) {
        n = (size_t)(nl - c->buf) + 1;
    } else if (all || c->carry >= BL_READ_BYTES) {
        n = c->carry;
    } else {
        return 0;
    }
    if (bl_write_all(out, c->buf, n) < 0) {
        return -1;
    }
    memmove(c->buf, c->buf + n, c->carry - n);
    c->carry -= n;
    return 0;
}

static void
bl_usage(void)
{
    fprintf(stderr, "usage: baseline -p PORT -o FILE [-c EXPECTED_CONNS] [-H 127.0.0.1] [-R]\n"
                    "  -R  write bytes exactly as read (no cut at line ends)\n");
}

int
main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = NULL;
    long port = -1, expected = 0;
    struct sockaddr_in sin;
    socklen_t sinlen = sizeof(sin);
    struct epoll_event ev, evs[BL_MAX_EVENTS];
    struct sigaction sa;
    struct rusage ru;
    uint64_t bytes = 0, accepted = 0, closed = 0;
    bool raw = false;
    int lfd = -1, ep = -1, out = -1, one = 1, ch, rc = 1;

    while ((ch = getopt(argc, argv, "p:o:c:H:Rh")) != -1) {
        switch (ch) {
        case 'p':
            port = strtol(optarg, NULL, 10);
            break;
        case 'o':
            path = optarg;
            break;
        case 'c':
            expected = strtol(optarg, NULL, 10);
            break;
        case 'H':
            host = optarg;
            break;
        case 'R':
            raw = true;
            break;
        default:
            bl_usage();
            return 2;
        }
    }
    if (optind != argc || path == NULL || port < 0 || port > 65535 || expected < 0) {
        bl_usage();
        return 2;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || (ntohl(sin.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "baseline: -H %s: only IPv4 loopback addresses are allowed\n", host);
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bl_signal_cb; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        fprintf(stderr, "baseline: %s: %s\n", path, strerror(errno));
        goto err;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &sinlen) < 0) {
        fprintf(stderr, "baseline: listen %s:%ld: %s\n", host, port, strerror(errno));
        goto err;
    }
    if (port == 0) {
        printf("port=%u\n", ntohs(sin.sin_port));
        fflush(stdout);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* the listener */
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        fprintf(stderr, "baseline: epoll: %s\n", strerror(errno));
        goto err;
    }

    while (!bl_stop && (expected == 0 || closed < (uint64_t)expected)) {
        int n = epoll_wait(ep, evs, BL_MAX_EVENTS, -1);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "baseline: epoll_wait: %s\n", strerror(errno));
            goto err;
        }
        for (int i = 0; i < n; i++) {
            struct bl_conn *c = evs[i].data.ptr;

            if (c == NULL) {
                int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                        fprintf(stderr, "baseline: accept: %s\n", strerror(errno));
                    }
                    continue;
                }
                c = malloc(sizeof(*c));
                if (c == NULL) {
                    fprintf(stderr, "baseline: out of memory\n");
                    close(cfd);
                    continue;
                }
                c->fd = cfd;
                c->carry = 0;
                ev.events = EPOLLIN;
                ev.data.ptr = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) < 0) {
                    fprintf(stderr, "baseline: epoll_ctl: %s\n", strerror(errno));
                    close(cfd);
                    free(c);
                    continue;
                }
                accepted++;
                continue;
            }
            for (int r = 0; r < BL_READS_PER_WAKE; r++) {
                ssize_t got = read(c->fd, c->buf + c->carry, BL_READ_BYTES);

                if (got > 0) {
                    c->carry += (size_t)got;
                    bytes += (uint64_t)got;
                    if (bl_conn_flush(c, out, raw) < 0) {
                        fprintf(stderr, "baseline: write %s: %s\n", path, strerror(errno));
                        goto err;
                    }
                    continue;
                }
                if (got < 0 && errno == EINTR) {
                    continue;
                }
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                }
                /* EOF or a connection error: this connection is finished. */
                if (bl_conn_flush(c, out, true) < 0) {
                    fprintf(stderr, "baseline: write %s: %s\n", path, strerror(errno));
                    goto err;
                }
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                free(c);
                closed++;
                break;
            }
        }
    }
    rc = 0;
err:
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "baseline: conns=%" PRIu64 " closed=%" PRIu64 " bytes=%" PRIu64
            " utime_s=%ld.%06ld stime_s=%ld.%06ld maxrss_kb=%ld\n",
            accepted, closed, bytes, (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
            (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
    if (ep >= 0) {
        close(ep);
    }
    if (lfd >= 0) {
        close(lfd);
    }
    if (out >= 0 && close(out) < 0) {
        fprintf(stderr, "baseline: close %s: %s\n", path, strerror(errno));
        rc = 1;
    }
    return rc;
}
