/*
 * harness — see harness.h.  Runs in the Check test process (forked per test)
 * and, for the client helpers, in the test's sender threads.  Owns no global
 * state; every resource belongs to the struct harness (or the caller) it was
 * made for.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ssl.h>

extern char **environ;

/* Polling step: short enough not to slow tests, long enough not to spin. */
#define HARNESS_STEP_MS 5

int
harness_ms(int ms)
{
    const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
    double m = s != NULL ? strtod(s, NULL) : 1;

    return (int)(ms * (m >= 1 ? m : 1));
}

int
harness_events(int n)
{
    const char *s = getenv("SLUICE_TEST_LOAD");
    double f = s != NULL ? strtod(s, NULL) : 1;
    int scaled = f > 0 && f < 1 ? (int)(n * f) : n;

    return scaled < 1000 && n >= 1000 ? 1000 : scaled;
}

int64_t
harness_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
harness_poll_step(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

char *
harness_path(const struct harness *h, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", h->dir, name);
    return buf;
}

int
harness_init(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    h->pid = -1;
    snprintf(h->dir, sizeof(h->dir), "/tmp/sluice-it.XXXXXX");
    if (mkdtemp(h->dir) == NULL) {
        h->dir[0] = '\0';
        return -1;
    }
    harness_path(h, "sluice.conf", h->conf_path, sizeof(h->conf_path));
    harness_path(h, "sluiced.log", h->log_path, sizeof(h->log_path));
    harness_path(h, "stdout.log", h->out_path, sizeof(h->out_path));
    return 0;
}

static int
harness_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void
harness_fini(struct harness *h)
{
    if (h->pid > 0) {
        int status;

        kill(h->pid, SIGKILL);
        while (waitpid(h->pid, &status, 0) == -1 && errno == EINTR) {
        }
        h->pid = -1;
    }
    for (size_t i = 0; i < h->nreserved; i++) {
        close(h->reserved[i]);
    }
    h->nreserved = 0;
    if (h->dir[0] != '\0') {
        nftw(h->dir, harness_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        h->dir[0] = '\0';
    }
}

int
harness_free_port(int type)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd, port = -1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0) {
        port = ntohs(sin.sin_port);
    }
    close(fd);
    return port;
}

int
harness_reserve_port(struct harness *h)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd, one = 1;

    if (h->nreserved == sizeof(h->reserved) / sizeof(h->reserved[0])) {
        return -1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        close(fd);
        return -1;
    }
    h->reserved[h->nreserved++] = fd;
    return ntohs(sin.sin_port);
}

static int harness_vwrite_file(const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static int
harness_vwrite_file(const char *path, const char *fmt, va_list ap)
{
    FILE *f = fopen(path, "we");
    int rc = 0;

    if (f == NULL) {
        return -1;
    }
    if (vfprintf(f, fmt, ap) < 0) {
        rc = -1;
    }
    if (fclose(f) != 0) {
        rc = -1;
    }
    return rc;
}

int
harness_write_file(const char *path, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = harness_vwrite_file(path, fmt, ap);
    va_end(ap);
    return rc;
}

int
harness_write_config(struct harness *h, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = harness_vwrite_file(h->conf_path, fmt, ap);
    va_end(ap);
    return rc;
}

const char *
harness_sluiced_path(void)
{
    static char buf[PATH_MAX];
    const char *s = getenv("SLUICED");
    const char *top = getenv("SLUICE_TOP");

    if (s != NULL && s[0] != '\0') {
        return s;
    }
    if (top != NULL && top[0] != '\0') {
        snprintf(buf, sizeof(buf), "%s/build/sluiced", top);
        return buf;
    }
    return "build/sluiced";
}

const char *
harness_sluice_path(void)
{
    static char path[PATH_MAX];
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", harness_sluiced_path());
    snprintf(path, sizeof(path), "%s/sluice", dirname(dir));
    return path;
}

/*
 * Builds the child's environment before fork (the child of a threaded
 * process may only call async-signal-safe functions): the inherited one with
 * each "NAME=value" in extra added or replacing NAME.  Caller frees the array
 * (not the strings, which are borrowed).
 */
static char **
harness_build_env(const char *const *extra)
{
    size_t n = 0, nextra = 0, i, j, k = 0;
    char **env;

    while (environ[n] != NULL) {
        n++;
    }
    while (extra != NULL && extra[nextra] != NULL) {
        nextra++;
    }
    env = calloc(n + nextra + 1, sizeof(*env));
    if (env == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        bool replaced = false;

        for (j = 0; j < nextra; j++) {
            size_t nl = strcspn(extra[j], "=");

            if (strncmp(environ[i], extra[j], nl) == 0 && environ[i][nl] == '=') {
                replaced = true;
            }
        }
        if (!replaced) {
            env[k++] = environ[i];
        }
    }
    for (j = 0; j < nextra; j++) {
        env[k++] = (char *)extra[j];
    }
    env[k] = NULL;
    return env;
}

/*
 * Forks and execs argv (argv[0] is the binary), stdout to out_path and
 * stderr to log_path.  Returns the pid or -1.
 */
static pid_t
harness_spawn_paths(char *const *argv, const char *const *extra_env, const char *out_path,
                    const char *log_path, bool truncate)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND);
    int logfd = -1, outfd = -1, nullfd = -1;
    char **env = NULL;
    pid_t parent = getpid(), pid = -1;

    if (access(argv[0], X_OK) == -1) {
        fprintf(stderr, "harness: %s: %s (build it with make, or set SLUICED)\n", argv[0],
                strerror(errno));
        return -1;
    }
    env = harness_build_env(extra_env);
    logfd = open(log_path, flags, 0644);
    outfd = open(out_path, flags, 0644);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (env == NULL || logfd == -1 || outfd == -1 || nullfd == -1) {
        goto err;
    }
    pid = fork();
    if (pid == 0) {
        sigset_t none;

        /* Die with the test process even if it _exits on a failed check. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        if (dup2(nullfd, 0) == -1 || dup2(outfd, 1) == -1 || dup2(logfd, 2) == -1) {
            _exit(127);
        }
        execve(argv[0], argv, env);
        _exit(127);
    }
err:
    free(env);
    if (logfd != -1) {
        close(logfd);
    }
    if (outfd != -1) {
        close(outfd);
    }
    if (nullfd != -1) {
        close(nullfd);
    }
    return pid;
}

static pid_t
harness_spawn(struct harness *h, char *const *argv, const char *const *extra_env, bool truncate)
{
    return harness_spawn_paths(argv, extra_env, h->out_path, h->log_path, truncate);
}

pid_t
harness_spawn_program(char *const *argv, const char *const *env, const char *log_path)
{
    return harness_spawn_paths(argv, env, log_path, log_path, false);
}

int
harness_start(struct harness *h, const char *const *env)
{
    char *argv[] = {(char *)harness_sluiced_path(), "-c", h->conf_path, NULL};

    if (h->pid > 0) {
        errno = EBUSY;
        return -1;
    }
    h->exited = false;
    h->pid = harness_spawn(h, argv, env, false);
    return h->pid > 0 ? 0 : -1;
}

bool
harness_alive(struct harness *h)
{
    int status;
    pid_t r;

    if (h->pid <= 0) {
        return false;
    }
    r = waitpid(h->pid, &status, WNOHANG);
    if (r == h->pid) {
        h->pid = -1;
        h->exited = true;
        h->status = status;
        return false;
    }
    return true;
}

int
harness_signal(struct harness *h, int sig)
{
    if (h->pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill(h->pid, sig);
}

/* The process's state letter in /proc/PID/stat is 'T' (stopped). */
static bool
stopped_cb(void *arg)
{
    const pid_t *pid = arg;
    char path[64], buf[512];
    bool ok = false;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)*pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    if (fgets(buf, sizeof(buf), f) != NULL) {
        const char *e = strrchr(buf, ')'); /* the command name may hold anything */
        ok = e != NULL && e[1] == ' ' && e[2] == 'T';
    }
    fclose(f);
    return ok;
}

int
harness_pause(struct harness *h, int timeout_ms)
{
    if (harness_signal(h, SIGSTOP) < 0) {
        return -1;
    }
    pid_t pid = h->pid;
    return harness_poll(NULL, timeout_ms, stopped_cb, &pid) == HARNESS_WAIT_OK ? 0 : -1;
}

enum harness_wait
harness_wait_exit(struct harness *h, int timeout_ms, int *status)
{
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);

    for (;;) {
        if (!harness_alive(h)) {
            if (!h->exited) {
                return HARNESS_WAIT_ERROR;
            }
            if (status != NULL) {
                *status = h->status;
            }
            return HARNESS_WAIT_OK;
        }
        if (harness_now_ms() >= deadline) {
            return HARNESS_WAIT_TIMEOUT;
        }
        harness_poll_step(HARNESS_STEP_MS);
    }
}

enum harness_wait
harness_stop(struct harness *h, int sig, int timeout_ms, int *status)
{
    if (harness_signal(h, sig) == -1) {
        /* Already gone: report how it ended. */
        return harness_wait_exit(h, 0, status);
    }
    return harness_wait_exit(h, timeout_ms, status);
}

enum harness_wait
harness_run(struct harness *h, const char *const *args, int timeout_ms, int *status)
{
    char *argv[16];
    size_t i, n = 0;
    enum harness_wait w;

    argv[n++] = (char *)harness_sluiced_path();
    for (i = 0; args[i] != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    if (h->pid > 0) {
        errno = EBUSY;
        return HARNESS_WAIT_ERROR;
    }
    h->exited = false;
    h->pid = harness_spawn(h, argv, NULL, true);
    if (h->pid <= 0) {
        return HARNESS_WAIT_ERROR;
    }
    w = harness_wait_exit(h, timeout_ms, status);
    if (w == HARNESS_WAIT_TIMEOUT) {
        int st;

        kill(h->pid, SIGKILL);
        waitpid(h->pid, &st, 0);
        h->pid = -1;
    }
    return w;
}

enum harness_wait
harness_poll(struct harness *h, int timeout_ms, bool (*pred)(void *arg), void *arg)
{
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);

    for (;;) {
        if (pred(arg)) {
            return HARNESS_WAIT_OK;
        }
        if (h != NULL && !harness_alive(h)) {
            return pred(arg) ? HARNESS_WAIT_OK : HARNESS_WAIT_DIED;
        }
        if (harness_now_ms() >= deadline) {
            return HARNESS_WAIT_TIMEOUT;
        }
        harness_poll_step(HARNESS_STEP_MS);
    }
}

struct harness_tcp_probe {
    int port;
};

static bool
harness_tcp_probe_cb(void *arg)
{
    const struct harness_tcp_probe *p = arg;

    return harness_tcp_accepts(p->port);
}

bool
harness_tcp_accepts(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd == -1) {
        return false;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

enum harness_wait
harness_wait_tcp(struct harness *h, int port, int timeout_ms)
{
    struct harness_tcp_probe p = {.port = port};

    return harness_poll(h, timeout_ms, harness_tcp_probe_cb, &p);
}

static bool
harness_udp_probe_cb(void *arg)
{
    const struct harness_tcp_probe *p = arg;
    FILE *f = fopen("/proc/net/udp", "re");
    char line[512];
    bool found = false;

    if (f == NULL) {
        return false;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned addr, port;

        /* "  sl  local_address ...": "  12: 0100007F:1F90 00000000:0000 07 ..." */
        if (sscanf(line, " %*u: %x:%x", &addr, &port) == 2 && (int)port == p->port) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

enum harness_wait
harness_wait_udp(struct harness *h, int port, int timeout_ms)
{
    struct harness_tcp_probe p = {.port = port};

    return harness_poll(h, timeout_ms, harness_udp_probe_cb, &p);
}

void
harness_lines_init(struct harness_lines *lc, const char *path)
{
    memset(lc, 0, sizeof(*lc));
    lc->path = path;
}

uint64_t
harness_lines_update(struct harness_lines *lc)
{
    struct stat st;
    char buf[65536];
    int fd = open(lc->path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        lc->exists = false;
        lc->off = 0;
        lc->lines = 0;
        return 0;
    }
    if (fstat(fd, &st) == -1) {
        close(fd);
        return lc->lines;
    }
    if (!lc->exists || st.st_dev != lc->dev || st.st_ino != lc->ino || st.st_size < lc->off) {
        lc->exists = true;
        lc->dev = st.st_dev;
        lc->ino = st.st_ino;
        lc->off = 0;
        lc->lines = 0;
    }
    while (lc->off < st.st_size) {
        size_t want = sizeof(buf);
        ssize_t r;

        if ((off_t)want > st.st_size - lc->off) {
            want = (size_t)(st.st_size - lc->off);
        }
        r = pread(fd, buf, want, lc->off);
        if (r <= 0) {
            break;
        }
        lc->lines += harness_count_lines(buf, (size_t)r);
        lc->off += r;
    }
    close(fd);
    return lc->lines;
}

struct harness_lines_wait {
    struct harness_lines lc;
    uint64_t n;
};

static bool
harness_lines_wait_cb(void *arg)
{
    struct harness_lines_wait *w = arg;

    return harness_lines_update(&w->lc) >= w->n;
}

enum harness_wait
harness_wait_lines(struct harness *h, const char *path, uint64_t n, int timeout_ms, uint64_t *got)
{
    struct harness_lines_wait w = {.n = n};
    enum harness_wait r;

    harness_lines_init(&w.lc, path);
    r = harness_poll(h, timeout_ms, harness_lines_wait_cb, &w);
    if (got != NULL) {
        *got = w.lc.lines;
    }
    return r;
}

uint64_t
harness_file_lines(const char *path)
{
    struct harness_lines lc;

    harness_lines_init(&lc, path);
    return harness_lines_update(&lc);
}

size_t
harness_count_lines(const char *buf, size_t len)
{
    size_t n = 0;
    const char *p = buf, *end = buf + len;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

char *
harness_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 65536, n = 0;
    char *buf = NULL;

    if (fd == -1) {
        return NULL;
    }
    buf = malloc(cap + 1);
    while (buf != NULL) {
        ssize_t r;

        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);

            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        r = read(fd, buf + n, cap - n);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r == -1) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) {
            buf[n] = '\0';
            if (len != NULL) {
                *len = n;
            }
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    return buf;
}

bool
harness_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static long
harness_proc_status_kib(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t klen = strlen(key);
    long val = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            val = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return val;
}

long
harness_vmrss_kib(pid_t pid)
{
    return harness_proc_status_kib(pid, "VmRSS");
}

long
harness_vmhwm_kib(pid_t pid)
{
    return harness_proc_status_kib(pid, "VmHWM");
}

/* harness_log_counter (the last line's value) and, when sum is not NULL,
 * the sum over every line into *sum. */
static int
harness_log_counter_lines(struct harness *h, const char *source, const char *key,
                          unsigned long long *val, unsigned long long *sum)
{
    char needle[256], keyeq[64];
    char *log = harness_read_file(h->log_path, NULL);
    char *line, *save = NULL;
    int rc = -1;

    if (log == NULL) {
        return -1;
    }
    snprintf(needle, sizeof(needle), "source \"%s\"", source);
    snprintf(keyeq, sizeof(keyeq), "%s=", key);
    for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        const char *p;

        if (strstr(line, needle) == NULL) {
            continue;
        }
        /* The key must start a word: "invalid=" but not "xinvalid=". */
        for (p = strstr(line, keyeq); p != NULL; p = strstr(p + 1, keyeq)) {
            if (p == line || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) {
                break;
            }
        }
        if (p != NULL && sscanf(p + strlen(keyeq), "%llu", val) == 1) {
            rc = 0; /* keep going: the last such line wins */
            if (sum != NULL) {
                *sum += *val;
            }
        }
    }
    free(log);
    return rc;
}

int
harness_log_counter(struct harness *h, const char *source, const char *key, unsigned long long *val)
{
    return harness_log_counter_lines(h, source, key, val, NULL);
}

unsigned long long
harness_log_counter_sum(struct harness *h, const char *source, const char *key)
{
    unsigned long long val = 0, sum = 0;

    (void)harness_log_counter_lines(h, source, key, &val, &sum);
    return sum;
}

char *
harness_log_tail(struct harness *h, size_t max)
{
    return harness_file_tail(h->log_path, max);
}

char *
harness_file_tail(const char *path, size_t max)
{
    size_t len = 0;
    char *log = harness_read_file(path, &len);
    char *out;

    if (log == NULL) {
        return strdup("(no log)");
    }
    if (len <= max) {
        return log;
    }
    out = strdup(log + len - max);
    free(log);
    return out != NULL ? out : strdup("");
}

void
harness_report(struct harness *h, const char *file, int line, const char *what)
{
    char *tail = harness_log_tail(h, 4096);

    fprintf(stderr,
            "%s:%d: check failed: %s\n"
            "  temp dir kept: %s\n"
            "  daemon: %s\n"
            "  --- daemon log tail ---\n%s\n  --- end of log ---\n",
            file, line, what, h->dir,
            h->pid > 0  ? "running (killed with the test)"
            : h->exited ? "exited"
                        : "not started",
            tail != NULL ? tail : "");
    free(tail);
}

/* --- clients --------------------------------------------------------------- */

int
harness_tcp_connect(int port, int send_timeout_ms)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int ms = harness_ms(send_timeout_ms);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        return -1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int
harness_tcp_listen(int rcvbuf, int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        return -1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == -1) ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(fd, 8) == -1 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

int
harness_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t r = send(fd, p, len, MSG_NOSIGNAL);

        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r == -1) {
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static bool
harness_sent_cb(void *arg)
{
    int fd = *(int *)arg, outq = 0;

    return ioctl(fd, SIOCOUTQ, &outq) == 0 && outq == 0;
}

enum harness_wait
harness_wait_sent(int fd, int timeout_ms)
{
    return harness_poll(NULL, timeout_ms, harness_sent_cb, &fd);
}

int
harness_udp_connect(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        return -1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

int
harness_udp_send(int fd, const void *buf, size_t len)
{
    ssize_t r;

    do {
        r = send(fd, buf, len, MSG_NOSIGNAL);
    } while (r == -1 && errno == EINTR);
    if (r == -1) {
        return -1;
    }
    if ((size_t)r != len) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

/* --- the standard event stream ---------------------------------------------- */

size_t
harness_event_line(char *buf, uint64_t seq)
{
    int n = snprintf(buf, HARNESS_EVENT_BYTES, "{\"seq\":%" PRIu64 ",\"level\":\"info\",\"msg\":\"",
                     seq);
    size_t i;

    for (i = (size_t)n; i < HARNESS_EVENT_BYTES - 3; i++) {
        buf[i] = (char)('a' + (seq * 7 + i) % 26);
    }
    memcpy(buf + HARNESS_EVENT_BYTES - 3, "\"}\n", 3);
    return HARNESS_EVENT_BYTES;
}

size_t
harness_stream_fill(char *buf, size_t cap, uint64_t pos, uint64_t end, uint64_t seq_base)
{
    size_t n = 0;
    char line[HARNESS_EVENT_BYTES];

    while (n < cap && pos < end) {
        uint64_t idx = pos / HARNESS_EVENT_BYTES;
        size_t off = (size_t)(pos % HARNESS_EVENT_BYTES);
        size_t take = HARNESS_EVENT_BYTES - off;

        if (take > cap - n) {
            take = cap - n;
        }
        if (take > end - pos) {
            take = (size_t)(end - pos);
        }
        harness_event_line(line, seq_base + idx);
        memcpy(buf + n, line + off, take);
        n += take;
        pos += take;
    }
    return n;
}

int
harness_send_events(int fd, uint64_t seq_base, uint64_t n)
{
    static __thread char buf[65536];
    uint64_t pos = 0, end = n * HARNESS_EVENT_BYTES;

    while (pos < end) {
        size_t len = harness_stream_fill(buf, sizeof(buf), pos, end, seq_base);

        if (harness_send_all(fd, buf, len) == -1) {
            return -1;
        }
        pos += len;
    }
    return 0;
}

/* --- exactly-once checking ----------------------------------------------------- */

int
harness_seqs_init(struct harness_seqs *s, uint64_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->seen = calloc(n > 0 ? n : 1, 1);
    return s->seen != NULL ? 0 : -1;
}

void
harness_seqs_fini(struct harness_seqs *s)
{
    free(s->seen);
    s->seen = NULL;
}

static void
harness_seqs_error(struct harness_seqs *s, const char *path, uint64_t lineno, const char *why,
                   const char *line, size_t len)
{
    char shown[81];
    size_t i, n = len < sizeof(shown) - 1 ? len : sizeof(shown) - 1;

    s->bad++;
    if (s->first_error[0] != '\0') {
        return;
    }
    for (i = 0; i < n; i++) {
        shown[i] = isprint((unsigned char)line[i]) ? line[i] : '?';
    }
    shown[n] = '\0';
    snprintf(s->first_error, sizeof(s->first_error), "%s:%" PRIu64 ": %s: %s%s", path, lineno, why,
             shown, len > n ? "..." : "");
}

/* Counts seq v, seen at path:lineno. */
static void
harness_seqs_seen(struct harness_seqs *s, const char *path, uint64_t lineno, uint64_t v)
{
    if (s->seen[v] > 0) {
        s->dups++;
        if (s->first_error[0] == '\0') {
            snprintf(s->first_error, sizeof(s->first_error),
                     "%s:%" PRIu64 ": seq %" PRIu64 " seen twice", path, lineno, v);
        }
    }
    if (s->seen[v] < 255) {
        s->seen[v]++;
    }
}

/* True when the line p (ll bytes, its '\n' after them) is byte for byte the
 * standard event of a seq below n (*v; want is scratch): what jansson and
 * the comparison would accept, without the parse. */
static bool
harness_seqs_exact_seq(const char *p, size_t ll, uint64_t n, char *want, json_int_t *v)
{
    static const char head[] = "{\"seq\":";
    size_t hl = sizeof(head) - 1, i = hl;
    uint64_t x = 0;
    if (ll + 1 != HARNESS_EVENT_BYTES || memcmp(p, head, hl) != 0) {
        return false;
    }
    for (; i < ll && i < hl + 19 && p[i] >= '0' && p[i] <= '9'; i++) {
        x = x * 10 + (uint64_t)(p[i] - '0');
    }
    if (i == hl || x >= n || x > INT64_MAX) {
        return false;
    }
    (void)harness_event_line(want, x);
    if (memcmp(p, want, ll + 1) != 0) {
        return false;
    }
    *v = (json_int_t)x;
    return true;
}

int
harness_seqs_add_file(struct harness_seqs *s, const char *path, bool exact)
{
    size_t len = 0;
    char *data = harness_read_file(path, &len);
    const char *p, *end;
    uint64_t lineno = 0;
    char want[HARNESS_EVENT_BYTES];

    if (data == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    for (p = data, end = data + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        json_error_t jerr;
        json_t *obj, *seq;
        json_int_t v;

        lineno++;
        s->lines++;
        if (nl == NULL) {
            harness_seqs_error(s, path, lineno, "last line has no newline", p, ll);
            break;
        }
        if (exact && harness_seqs_exact_seq(p, ll, s->n, want, &v)) {
            /* Byte for byte the standard event: a JSON object with its seq
             * (no parse needed; jansson per line dominated the sanitizer
             * runs of the suites that check every event). */
            harness_seqs_seen(s, path, lineno, (uint64_t)v);
            p = nl + 1;
            continue;
        }
        obj = json_loadb(p, ll, 0, &jerr);
        seq = obj != NULL ? json_object_get(obj, "seq") : NULL;
        if (obj == NULL || !json_is_object(obj)) {
            harness_seqs_error(s, path, lineno, "not a JSON object", p, ll);
        } else if (!json_is_integer(seq) || (v = json_integer_value(seq)) < 0 ||
                   (uint64_t)v >= s->n) {
            harness_seqs_error(s, path, lineno, "no seq in range", p, ll);
        } else if (exact && (ll + 1 != harness_event_line(want, (uint64_t)v) ||
                             memcmp(p, want, ll + 1) != 0)) {
            harness_seqs_error(s, path, lineno, "bytes differ from the event sent", p, ll);
        } else {
            harness_seqs_seen(s, path, lineno, (uint64_t)v);
        }
        json_decref(obj);
        p = nl + 1;
    }
    free(data);
    return 0;
}

uint64_t
harness_seqs_count_range(const struct harness_seqs *s, uint64_t lo, uint64_t hi)
{
    uint64_t i, n = 0;

    for (i = lo; i < hi && i < s->n; i++) {
        n += s->seen[i] > 0;
    }
    return n;
}

bool
harness_seqs_exactly_once(const struct harness_seqs *s, char *msg, size_t len)
{
    uint64_t i, missing = 0, first_missing = 0;

    for (i = 0; i < s->n; i++) {
        if (s->seen[i] == 0) {
            if (missing == 0) {
                first_missing = i;
            }
            missing++;
        }
    }
    if (missing == 0 && s->dups == 0 && s->bad == 0 && s->lines == s->n) {
        snprintf(msg, len, "ok: %" PRIu64 " events exactly once", s->n);
        return true;
    }
    snprintf(msg, len,
             "expected %" PRIu64 " events once: read %" PRIu64 " lines, %" PRIu64
             " missing (first: seq %" PRIu64 "), %" PRIu64 " duplicated, %" PRIu64
             " bad; first error: %s",
             s->n, s->lines, missing, first_missing, s->dups, s->bad,
             s->first_error[0] != '\0' ? s->first_error : "none");
    return false;
}

int
harness_http_get(int port, const char *path, int timeout_ms, char **body)
{
    return harness_http_get_hdr(port, path, "", timeout_ms, body);
}

int
harness_http_get_hdr(int port, const char *path, const char *headers, int timeout_ms, char **body)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int ms = harness_ms(timeout_ms);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    char req[8192]; /* room for a Prometheus API query string */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int status = -1;

    *body = NULL;
    if (fd == -1) {
        return -1;
    }
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
        connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
        goto out;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n", path, headers);
    if (harness_send_all(fd, req, strlen(req)) == -1) {
        goto out;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *n = realloc(buf, cap + 65536);
            if (n == NULL) {
                goto out;
            }
            buf = n;
            cap += 65536;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r == -1) {
            goto out;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || sscanf(buf, "HTTP/%*s %d", &status) != 1) {
        errno = EPROTO;
        status = -1;
        goto out;
    }
    memmove(buf, sep + 4, len - (size_t)(sep + 4 - buf) + 1);
    *body = buf;
    buf = NULL;
out:;
    int e = errno;
    free(buf);
    close(fd);
    errno = e;
    return status;
}

int
harness_metric(const char *body, const char *name_labels, double *value)
{
    size_t n = strlen(name_labels);
    const char *p = body;
    while ((p = strstr(p, name_labels)) != NULL) {
        if ((p == body || p[-1] == '\n') && p[n] == ' ') {
            *value = strtod(p + n + 1, NULL);
            return 0;
        }
        p += n;
    }
    return -1;
}

/* --- a standard one-source daemon ------------------------------------------------ */

int
harness_unix_connect(const char *path, int type, int send_timeout_ms)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int ms = harness_ms(send_timeout_ms);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static bool
harness_std_local_cb(void *arg)
{
    const struct harness_std *c = arg;
    int fd = harness_unix_connect(c->listen, strcmp(c->type, "unix_dgram") == 0 ? SOCK_DGRAM
                                                                                 : SOCK_STREAM,
                                  1000);

    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

enum harness_wait
harness_std_start(struct harness *h, struct harness_std *c, const char *const *env, int timeout_ms)
{
    bool udp = c->type != NULL && strcmp(c->type, "udp") == 0;
    bool local = c->listen != NULL;
    char listen[PATH_MAX];

    if (c->admin_port == 0) {
        c->port = local ? 0 : harness_free_port(udp ? SOCK_DGRAM : SOCK_STREAM);
        c->admin_port = harness_free_port(SOCK_STREAM);
        harness_path(h, "out.ndjson", c->out_path, sizeof(c->out_path));
        if (local) {
            snprintf(listen, sizeof(listen), "%s", c->listen);
        } else {
            snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->port);
        }
        if ((!local && c->port <= 0) || c->admin_port <= 0 ||
            harness_write_config(h,
                                 "[daemon]\n"
                                 "producer_threads = 2\n"
                                 "log_level = info\n"
                                 "admin_listen = 127.0.0.1:%d\n"
                                 "%s"
                                 "\n[source app]\n"
                                 "type = %s\n"
                                 "listen = %s\n"
                                 "codec = %s\n"
                                 "queue = main\n"
                                 "%s"
                                 "\n[queue main]\n"
                                 "%s"
                                 "\n[sink archive]\n"
                                 "type = file\n"
                                 "queue = main\n"
                                 "path = %s\n"
                                 "%s",
                                 c->admin_port, c->daemon_extra != NULL ? c->daemon_extra : "",
                                 c->type != NULL ? c->type : "tcp", listen,
                                 c->codec != NULL ? c->codec : "json",
                                 c->source_extra != NULL ? c->source_extra : "",
                                 c->queue_extra != NULL ? c->queue_extra : "", c->out_path,
                                 c->sink_extra != NULL ? c->sink_extra : "") == -1) {
            return HARNESS_WAIT_ERROR;
        }
    }
    if (harness_start(h, env) == -1) {
        return HARNESS_WAIT_ERROR;
    }
    if (local) {
        return harness_poll(h, timeout_ms, harness_std_local_cb, c);
    }
    return udp ? harness_wait_udp(h, c->port, timeout_ms)
               : harness_wait_tcp(h, c->port, timeout_ms);
}

int
harness_metric_get(int admin_port, const char *name_labels, double *value)
{
    char *body = NULL;
    int rc = -1;

    if (harness_http_get(admin_port, "/metrics", 5000, &body) == 200) {
        rc = harness_metric(body, name_labels, value);
    }
    free(body);
    return rc;
}

bool
harness_healthz_ok(int admin_port, int timeout_ms)
{
    char *body = NULL;
    int code = harness_http_get(admin_port, "/healthz", timeout_ms, &body);

    free(body);
    return code == 200;
}

int
harness_fd_count(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

int
harness_set_nofile(unsigned long n)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        return -1;
    }
    rl.rlim_cur = n;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n) {
        rl.rlim_max = n;
    }
    return setrlimit(RLIMIT_NOFILE, &rl);
}

void
harness_std_require_start(struct harness *h, struct harness_std *c, const char *const *env)
{
    enum harness_wait w = harness_std_start(h, c, env, 10000);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "daemon not listening on 127.0.0.1:%d (%s)", c->port,
                    w == HARNESS_WAIT_DIED ? "it exited" : "timeout or error");
}

void
harness_require_stop_ok(struct harness *h)
{
    int status = 0;
    enum harness_wait w = harness_stop(h, SIGTERM, 30000, &status);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "daemon did not exit within 30 s of SIGTERM");
    HARNESS_REQUIRE(h, WIFEXITED(status) && WEXITSTATUS(status) == 0,
                    "daemon exit after SIGTERM: status 0x%x (want exit 0)", status);
}

void
harness_require_exactly_once(struct harness *h, const char *const *paths, size_t npaths, uint64_t n)
{
    struct harness_seqs s;
    char msg[1024];

    ck_assert_int_eq(harness_seqs_init(&s, n), 0);
    for (size_t i = 0; i < npaths; i++) {
        ck_assert_msg(harness_seqs_add_file(&s, paths[i], true) == 0, "reading %s: %s", paths[i],
                      strerror(errno));
    }
    if (!harness_seqs_exactly_once(&s, msg, sizeof(msg))) {
        harness_report(h, __FILE__, __LINE__, "exactly once");
        ck_abort_msg("%s", msg);
    }
    harness_seqs_fini(&s);
}

void
harness_require_conn_order(struct harness *h, const char *path, int nconn, uint64_t per,
                           bool interleaved)
{
    size_t len = 0;
    char *buf = harness_read_file(path, &len);
    HARNESS_REQUIRE(h, buf != NULL, "read %s", path);
    int64_t *last = calloc((size_t)nconn, sizeof(*last));
    HARNESS_REQUIRE(h, last != NULL, "calloc");
    for (int k = 0; k < nconn; k++) {
        last[k] = -1;
    }
    for (const char *p = buf; p < buf + len;) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        const char *q = nl != NULL ? memmem(p, (size_t)(nl - p), "\"seq\":", 6) : NULL;
        HARNESS_REQUIRE(h, nl != NULL && q != NULL && q < nl, "line without seq");
        uint64_t seq = strtoull(q + 6, NULL, 10);
        int k = (int)(interleaved ? seq % (uint64_t)nconn : seq / per);
        HARNESS_REQUIRE(h, k < nconn && (int64_t)seq > last[k],
                        "connection %d: seq %" PRIu64 " after %" PRId64, k, seq,
                        k < nconn ? last[k] : -1);
        last[k] = (int64_t)seq;
        p = nl + 1;
    }
    free(last);
    free(buf);
}

void
harness_require_lines(struct harness *h, const char *path, uint64_t n, int timeout_ms)
{
    uint64_t got = 0;
    enum harness_wait w = harness_wait_lines(h, path, n, timeout_ms, &got);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "%s: %" PRIu64 " of %" PRIu64 " lines after %d ms%s",
                    path, got, n, timeout_ms, w == HARNESS_WAIT_DIED ? " (daemon exited)" : "");
}

struct harness_metric_wait {
    int port;
    const char *name;
    double want;
    bool at_least;
    double last;
};

static bool
harness_metric_wait_cb(void *arg)
{
    struct harness_metric_wait *m = arg;

    if (harness_metric_get(m->port, m->name, &m->last) != 0) {
        return false;
    }
    return m->at_least ? m->last >= m->want : m->last == m->want;
}

void
harness_require_metric(struct harness *h, int admin_port, const char *name_labels, double want,
                       bool at_least, int timeout_ms)
{
    struct harness_metric_wait m = {
        .port = admin_port, .name = name_labels, .want = want, .at_least = at_least, .last = -1};
    enum harness_wait w = harness_poll(h, timeout_ms, harness_metric_wait_cb, &m);

    HARNESS_REQUIRE(h, w == HARNESS_WAIT_OK, "%s is %.0f, want %s%.0f (after %d ms)", name_labels,
                    m.last, at_least ? "at least " : "", want, timeout_ms);
}

bool
harness_log_has(struct harness *h, const char *needle)
{
    char *log = harness_read_file(h->log_path, NULL);
    bool found = log != NULL && strstr(log, needle) != NULL;

    free(log);
    return found;
}

TCase *
harness_tcase(Suite *s, const char *name, double timeout, void (*setup)(void),
              void (*teardown)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

void
harness_buf_add(struct harness_buf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert(b->p != NULL);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

int
harness_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

const char *
harness_make_certs(struct harness *h, char *buf, size_t len)
{
    char cmd[PATH_MAX * 2];
    const char *top = getenv("SLUICE_TOP");
    harness_path(h, "certs", buf, len);
    snprintf(cmd, sizeof(cmd), "sh %s/tests/certs.sh %s", top != NULL ? top : ".", buf);
    ck_assert_msg(system(cmd) == 0, "tests/certs.sh %s failed", buf);
    return buf;
}

SSL_CTX *
harness_tls_client_ctx(const char *certs, const char *leaf)
{
    char p[PATH_MAX];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    snprintf(p, sizeof(p), "%s/ca.pem", certs);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, p, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (leaf != NULL) {
        snprintf(p, sizeof(p), "%s/%s.pem", certs, leaf);
        ck_assert_int_eq(SSL_CTX_use_certificate_file(ctx, p, SSL_FILETYPE_PEM), 1);
        snprintf(p, sizeof(p), "%s/%s.key", certs, leaf);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, p, SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}
