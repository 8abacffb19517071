/*
 * idleconns — opens many TCP connections to a loopback port and keeps them
 * idle, so a benchmark can read what each one costs the receiver.
 *
 * idleconns -p PORT -c CONNS [-H 127.0.0.1] [-e] [-T HOLD_SECS]
 *
 * Connects CONNS sockets (retrying refused connects for up to 10 s), with -e
 * sends one short JSON event on each (so the receiver has read from every
 * connection once), prints "connected=N events=E" on stdout, then holds
 * them until SIGTERM/SIGINT or for HOLD_SECS (default 120), and closes
 * them.  Needs RLIMIT_NOFILE above CONNS: it
 * raises its soft limit to the hard limit itself.  Exit 0 iff every
 * connection was made (and every event sent).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IC_MAX_CONNS 200000

static volatile sig_atomic_t ic_stop;

static void
ic_signal_cb(int sig)
{
    (void)sig;
    ic_stop = 1;
}

static int
ic_connect(const struct sockaddr_in *sin, time_t deadline)
{
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            fprintf(stderr, "idleconns: socket: %s\n", strerror(errno));
            return -1;
        }
        if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) == 0) {
            return fd;
        }
        close(fd);
        if ((errno != ECONNREFUSED && errno != EAGAIN && errno != EINTR) ||
            time(NULL) >= deadline) {
            fprintf(stderr, "idleconns: connect: %s\n", strerror(errno));
            return -1;
        }
        usleep(10000);
    }
}

int
main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 0, conns = 0, hold = 120;
    int send_one = 0, ch, rc = 1;
    long made = 0, sent = 0;
    struct sockaddr_in sin;
    struct rlimit rl;
    struct sigaction sa;
    int *fds;
    time_t deadline;

    while ((ch = getopt(argc, argv, "p:c:H:eT:")) != -1) {
        switch (ch) {
        case 'p':
            port = strtol(optarg, NULL, 10);
            break;
        case 'c':
            conns = strtol(optarg, NULL, 10);
            break;
        case 'H':
            host = optarg;
            break;
        case 'e':
            send_one = 1;
            break;
        case 'T':
            hold = strtol(optarg, NULL, 10);
            break;
        default:
            goto usage;
        }
    }
    if (optind != argc || port < 1 || port > 65535 || conns < 1 || conns > IC_MAX_CONNS ||
        hold < 1 || hold > 3600) {
        goto usage;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || (ntohl(sin.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "idleconns: -H %s: only IPv4 loopback addresses are allowed\n", host);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ic_signal_cb;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    fds = calloc((size_t)conns, sizeof(*fds));
    if (fds == NULL) {
        fprintf(stderr, "idleconns: out of memory\n");
        return 1;
    }
    deadline = time(NULL) + 10;
    for (; made < conns && !ic_stop; made++) {
        fds[made] = ic_connect(&sin, deadline);
        if (fds[made] < 0) {
            break;
        }
        if (send_one) {
            char ev[64];
            int n = snprintf(ev, sizeof(ev), "{\"idle\":%ld}\n", made);

            if (write(fds[made], ev, (size_t)n) == n) {
                sent++;
            }
        }
    }
    printf("connected=%ld events=%ld\n", made, sent);
    fflush(stdout);
    rc = made == conns && (!send_one || sent == conns) ? 0 : 1;

    deadline = time(NULL) + hold;
    while (!ic_stop && time(NULL) < deadline) {
        usleep(100000);
    }
    for (long i = 0; i < made; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    free(fds);
    return rc;
usage:
    fprintf(stderr, "usage: idleconns -p PORT -c CONNS [-H 127.0.0.1] [-e] [-T HOLD_SECS]\n");
    return 2;
}
