/*
 * diskq_recovery — how fast sluiced starts on a large disk-queue backlog,
 * and how much memory that costs (issue: "a restart with a 2 GiB backlog
 * starts in well under a second and does not read the backlog into
 * memory").
 *
 *   diskq_recovery SLUICED MIB
 *
 * Writes a disk queue directory of MIB MiB of segments (64 MiB each,
 * 256 KiB records of 200-byte lines, with the real encoders of
 * src/queue/segment.c) and no state file (the sink starts at the oldest
 * record), under a private /var/tmp/sluicebench-* folder; drops nothing
 * from the page cache (say so when quoting).  Then starts sluiced on it
 * with its writer held (SLUICE_TEST_STALL_FILE: the sink does not drain,
 * so what is measured is the start alone), measures the time from exec to
 * the source accepting a connection and to READY=1 (sd_notify, on a
 * private NOTIFY_SOCKET in the folder: what systemd waits for), reads
 * VmHWM, stops it (SIGKILL: the backlog is kept for the next run).  RUNS
 * runs with the page cache warm (as written), then RUNS with the
 * segments' pages dropped from the page cache first (fsync +
 * posix_fadvise(DONTNEED) per segment file: only this backlog's pages,
 * nothing system-wide), so a start that read the backlog would show; one
 * line per run, then the folder is removed.
 * Loopback only; every wait is bounded.
 *
 *   diskq_recovery SLUICED MIB [RUNS]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/segment.h"

#define SEG (64u << 20)
#define REC (256u << 10)

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int
can_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static long
vmhwm_kib(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

/* Writes the backlog: nseg segments of whole records; returns records. */
static uint64_t
fill(const char *qdir, unsigned mib)
{
    static uint8_t rec[SL_REC_HDR + REC];
    uint8_t *payload = rec + SL_REC_HDR;
    uint64_t lsn = 1, left = (uint64_t)mib << 20;
    for (size_t i = 0; i + 200 <= REC; i += 200) {
        int n = snprintf((char *)payload + i, 200, "{\"seq\":%zu,\"msg\":\"", i / 200);
        memset(payload + i + n, 'x', 200 - (size_t)n - 3);
        memcpy(payload + i + 197, "\"}\n", 3);
    }
    for (uint64_t id = 1; left > 0; id++) {
        char name[512];
        uint8_t h[SL_SEG_HDR];
        snprintf(name, sizeof(name), "%s/%016" PRIx64 ".seg", qdir, id);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        if (fd < 0) {
            perror(name);
            exit(1);
        }
        sl_seg_header_encode(h, id, lsn);
        if (write(fd, h, sizeof(h)) != (ssize_t)sizeof(h)) {
            exit(1);
        }
        uint64_t size = SL_SEG_HDR;
        while (left > 0 && size + sizeof(rec) <= SEG) {
            struct sl_rec r = {.len = REC, .nevents = REC / 200, .lsn = lsn++, .first_ns = 1};
            sl_rec_header_encode(rec, &r, payload);
            if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec)) {
                perror("write");
                exit(1);
            }
            size += sizeof(rec);
            left = left > sizeof(rec) ? left - sizeof(rec) : 0;
        }
        close(fd);
    }
    return lsn - 1;
}

/* Drops the segments' pages from the page cache (this backlog only). */
static void
drop_cache(const char *qdir)
{
    DIR *d = opendir(qdir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char name[512];
        snprintf(name, sizeof(name), "%s/%s", qdir, e->d_name);
        int fd = open(name, O_RDONLY);
        if (fd >= 0) {
            (void)fsync(fd);
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* A datagram socket bound at path, for NOTIFY_SOCKET; -1 on failure. */
static int
notify_socket(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        return -1;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        return -1;
    }
    return fd;
}

/* One start: *listen_s, *ready_s (-1: not within 30 s), *hwm_kib.  0 or -1. */
static int
one_start(const char *sluiced, const char *conf, int port, int nfd, double *listen_s,
          double *ready_s, long *hwm_kib)
{
    char buf[512];
    while (recv(nfd, buf, sizeof(buf), 0) > 0) {
        /* what an earlier run left */
    }
    *listen_s = *ready_s = -1;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        execl(sluiced, sluiced, "-c", conf, (char *)NULL);
        _exit(127);
    }
    while (now_s() - t0 < 30 && (*listen_s < 0 || *ready_s < 0)) {
        if (*listen_s < 0 && can_connect(port)) {
            *listen_s = now_s() - t0;
        }
        ssize_t n;
        while (*ready_s < 0 && (n = recv(nfd, buf, sizeof(buf) - 1, 0)) > 0) {
            buf[n] = '\0';
            if (strncmp(buf, "READY=1", 7) == 0 || strstr(buf, "\nREADY=1") != NULL) {
                *ready_s = now_s() - t0;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            return -1;
        }
        usleep(1000);
    }
    *hwm_kib = vmhwm_kib(pid);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return *listen_s >= 0 && *ready_s >= 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: diskq_recovery SLUICED MIB [RUNS]\n");
        return 2;
    }
    char dir[] = "/var/tmp/sluicebench-XXXXXX", qdir[256], conf[256], stall[256], nsock[256],
         cmd[300];
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(qdir, sizeof(qdir), "%s/q", dir);
    snprintf(conf, sizeof(conf), "%s/sluice.conf", dir);
    snprintf(stall, sizeof(stall), "%s/stall", dir);
    snprintf(nsock, sizeof(nsock), "%s/notify", dir);
    mkdir(qdir, 0750);
    unsigned mib = (unsigned)strtoul(argv[2], NULL, 10);
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    double t0 = now_s();
    uint64_t recs = fill(qdir, mib);
    printf("backlog: %u MiB, %" PRIu64 " records, written in %.1f s\n", mib, recs, now_s() - t0);
    int port = free_port(), aport = free_port();
    int nfd = notify_socket(nsock);
    FILE *f = fopen(conf, "w");
    if (port < 0 || aport < 0 || nfd < 0 || f == NULL) {
        printf("FAILED: set-up (ports, notify socket, config)\n");
        return 1;
    }
    fprintf(f,
            "[daemon]\nadmin_listen = 127.0.0.1:%d\n[source app]\ntype = tcp\n"
            "listen = 127.0.0.1:%d\nqueue = main\n[queue main]\ntype = disk\npath = %s\n"
            "max_size = %uMiB\n[sink out]\ntype = file\npath = %s/out.ndjson\nqueue = main\n",
            aport, port, qdir, mib * 2 + 1024, dir);
    fclose(f);
    f = fopen(stall, "w");
    if (f != NULL) {
        fclose(f);
    }
    setenv("SLUICE_TEST_STALL_FILE", stall, 1);
    setenv("NOTIFY_SOCKET", nsock, 1);
    for (int cold = 0; cold <= 1; cold++) {
        for (int r = 1; r <= runs; r++) {
            double ls, rs;
            long hwm = -1;
            if (cold) {
                drop_cache(qdir);
            }
            if (one_start(argv[1], conf, port, nfd, &ls, &rs, &hwm) < 0) {
                printf("FAILED: %s run %d: sluiced did not listen and say READY=1 within 30 s "
                       "(folder kept: %s)\n",
                       cold ? "cold" : "warm", r, dir);
                return 1;
            }
            printf("start %s %d: READY=1 after %.3f s, listening after %.3f s, VmHWM %ld KiB\n",
                   cold ? "cold" : "warm", r, rs, ls, hwm);
        }
    }
    close(nfd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
