/*
 * peers — see peers.h.  Runs in the Check test process (forked per test),
 * main thread only.
 */
#include "peers.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PEER_STEP_MS 5

const char *
peer_rsyslogd_path(void)
{
    const char *e = getenv("RSYSLOGD");

    return e != NULL && *e != '\0' ? e : "/usr/sbin/rsyslogd";
}

const char *
peer_syslog_ng_prefix(void)
{
    const char *e = getenv("SYSLOG_NG_PREFIX");

    return e != NULL && *e != '\0' ? e : "/opt/sluice-bench/syslog-ng";
}

const char *
peer_logger_path(void)
{
    const char *e = getenv("LOGGER");

    return e != NULL && *e != '\0' ? e : "/usr/bin/logger";
}

/* True if /proc/pid/comm is name and its command line has no " -f " argument. */
static bool
peer_is_system(const char *pid, const char *name)
{
    char path[64], comm[32] = "", cmd[4096];
    FILE *f;
    size_t n;
    bool private_conf = false;

    snprintf(path, sizeof(path), "/proc/%s/comm", pid);
    if ((f = fopen(path, "re")) == NULL) {
        return false;
    }
    if (fgets(comm, sizeof(comm), f) == NULL) {
        comm[0] = '\0';
    }
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    if (strcmp(comm, name) != 0) {
        return false;
    }
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    if ((f = fopen(path, "re")) == NULL) {
        return false;
    }
    n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    for (size_t i = 0; i + 2 < n + 1; i++) {
        /* Arguments are NUL-separated: look for a whole "-f" argument. */
        if ((i == 0 || cmd[i - 1] == '\0') && cmd[i] == '-' && cmd[i + 1] == 'f' &&
            (i + 2 == n || cmd[i + 2] == '\0')) {
            private_conf = true;
        }
    }
    return !private_conf;
}

pid_t
peer_system_syslog_pid(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    if (d == NULL) {
        return 0;
    }
    while (found == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') {
            continue;
        }
        if (peer_is_system(e->d_name, "rsyslogd") || peer_is_system(e->d_name, "syslog-ng")) {
            found = (pid_t)atoi(e->d_name);
        }
    }
    closedir(d);
    return found;
}

static void
peer_syslog_ng_paths(char *bin, size_t blen, char *libdir, size_t llen)
{
    snprintf(bin, blen, "%s/usr/sbin/syslog-ng", peer_syslog_ng_prefix());
    snprintf(libdir, llen, "%s/usr/lib/syslog-ng", peer_syslog_ng_prefix());
}

void
peer_require_available(enum peer_kind kind)
{
    char bin[PATH_MAX], lib[PATH_MAX];
    pid_t sys = peer_system_syslog_pid();

    ck_assert_msg(sys == 0,
                  "a system syslog daemon (pid %d, not started with a private -f CONF) is running:"
                  " apt must not start one (scripts/deps.sh --test installs with a policy-rc.d);"
                  " the tests will not run next to it",
                  (int)sys);
    if (kind == PEER_RSYSLOG) {
        ck_assert_msg(access(peer_rsyslogd_path(), X_OK) == 0,
                      "%s is missing: run `sh scripts/deps.sh --test` as root",
                      peer_rsyslogd_path());
    } else {
        peer_syslog_ng_paths(bin, sizeof(bin), lib, sizeof(lib));
        ck_assert_msg(access(bin, X_OK) == 0,
                      "%s is missing: run `sh scripts/deps.sh --test` as root"
                      " (it unpacks syslog-ng with scripts/syslog-ng-private.sh)",
                      bin);
    }
}

int
peer_start(struct harness *h, struct peer *p, enum peer_kind kind, const char *body)
{
    static unsigned serial;
    char bin[PATH_MAX], lib[PATH_MAX], pidf[PATH_MAX], work[PATH_MAX];
    char persist[PATH_MAX], ctl[PATH_MAX], modpath[PATH_MAX + 32], ldpath[PATH_MAX + 32];
    const char *name = kind == PEER_RSYSLOG ? "rsyslog" : "syslog-ng";
    int rc;

    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->pid = -1;
    snprintf(p->dir, sizeof(p->dir), "%s/%s.%u", h->dir, name, serial++);
    snprintf(p->conf_path, sizeof(p->conf_path), "%s/%s.conf", p->dir, name);
    snprintf(p->log_path, sizeof(p->log_path), "%s/log", p->dir);
    snprintf(work, sizeof(work), "%s/work", p->dir);
    snprintf(pidf, sizeof(pidf), "%s/%s.pid", p->dir, name);
    if (mkdir(p->dir, 0755) == -1 || (kind == PEER_RSYSLOG && mkdir(work, 0755) == -1)) {
        return -1;
    }
    if (kind == PEER_RSYSLOG) {
        char *argv[] = {(char *)peer_rsyslogd_path(), "-n", "-f", p->conf_path, "-i", pidf, NULL};

        rc = harness_write_file(p->conf_path,
                                "# written by tests/integration/peers.c: a private rsyslogd\n"
                                "global(workDirectory=\"%s\" processInternalMessages=\"on\"\n"
                                "       net.enableDNS=\"off\" maxMessageSize=\"128k\")\n"
                                "%s",
                                work, body);
        if (rc == -1) {
            return -1;
        }
        p->pid = harness_spawn_program(argv, NULL, p->log_path);
    } else {
        char *argv[] = {bin,  "-F",    "-e", "-f", p->conf_path, "-p", pidf,
                        "-R", persist, "-c", ctl,  modpath,      NULL};
        const char *env[] = {ldpath, NULL};

        peer_syslog_ng_paths(bin, sizeof(bin), lib, sizeof(lib));
        snprintf(persist, sizeof(persist), "%s/syslog-ng.persist", p->dir);
        snprintf(ctl, sizeof(ctl), "%s/syslog-ng.ctl", p->dir);
        snprintf(modpath, sizeof(modpath), "--module-path=%s/3.38", lib);
        snprintf(ldpath, sizeof(ldpath), "LD_LIBRARY_PATH=%s", lib);
        rc = harness_write_file(
            p->conf_path,
            "@version: 3.38\n"
            "# written by tests/integration/peers.c: a private syslog-ng\n"
            "options { use-dns(no); dns-cache(no); stats-freq(0);"
            " keep-hostname(yes); chain-hostnames(no); time-reopen(1); frac-digits(6);"
            " log-msg-size(131072); };\n"
            "%s",
            body);
        if (rc == -1) {
            return -1;
        }
        p->pid = harness_spawn_program(argv, env, p->log_path);
    }
    return p->pid > 0 ? 0 : -1;
}

bool
peer_alive(struct peer *p)
{
    int status;

    if (p->pid <= 0) {
        return false;
    }
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
        p->pid = -1;
        p->exited = true;
        p->status = status;
        return false;
    }
    return true;
}

enum harness_wait
peer_wait_tcp(struct peer *p, int port, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);

    for (;;) {
        if (harness_tcp_accepts(port)) {
            return HARNESS_WAIT_OK;
        }
        if (!peer_alive(p)) {
            return HARNESS_WAIT_DIED;
        }
        if (harness_now_ms() >= deadline) {
            return HARNESS_WAIT_TIMEOUT;
        }
        harness_poll_step(PEER_STEP_MS);
    }
}

int
peer_stop(struct peer *p, int timeout_ms)
{
    int64_t deadline;
    int status;

    if (!peer_alive(p)) {
        return 0;
    }
    kill(p->pid, SIGTERM);
    deadline = harness_now_ms() + harness_ms(timeout_ms);
    while (peer_alive(p)) {
        if (harness_now_ms() >= deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            p->pid = -1;
            p->exited = true;
            p->status = status;
            return -1;
        }
        harness_poll_step(PEER_STEP_MS);
    }
    return 0;
}

char *
peer_log_tail(const struct peer *p, size_t max)
{
    return harness_file_tail(p->log_path, max);
}

void
peer_report(struct harness *h, const struct peer *p, const char *file, int line, const char *what)
{
    char *tail = peer_log_tail(p, 2048);

    fprintf(stderr, "%s:%d: %s log (%s):\n%s\n  --- end of %s log ---\n", file, line,
            p->kind == PEER_RSYSLOG ? "rsyslogd" : "syslog-ng", p->log_path, tail,
            p->kind == PEER_RSYSLOG ? "rsyslogd" : "syslog-ng");
    free(tail);
    harness_report(h, file, line, what);
}

int
peer_logger(struct harness *h, const char *const *args, int timeout_ms, pid_t *pid)
{
    /* logger writes RFC 3164 timestamps in local time: make that UTC. */
    const char *env[] = {"TZ=UTC", NULL};
    char *argv[32];
    char log[PATH_MAX];
    size_t n = 0;
    int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
    pid_t child;
    int status;

    argv[n++] = (char *)peer_logger_path();
    for (size_t i = 0; args[i] != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    harness_path(h, "logger.log", log, sizeof(log));
    child = harness_spawn_program(argv, env, log);
    if (child <= 0) {
        return -1;
    }
    if (pid != NULL) {
        *pid = child;
    }
    for (;;) {
        pid_t r = waitpid(child, &status, WNOHANG);

        if (r == child) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        if (r == -1 && errno != EINTR) {
            return -1;
        }
        if (harness_now_ms() >= deadline) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            return -1;
        }
        harness_poll_step(PEER_STEP_MS);
    }
}

char *
peer_snippet(const char *name, const char *const *from, const char *const *to, size_t n)
{
    const char *top = getenv("SLUICE_TOP");
    char path[PATH_MAX];
    char *text, *out;

    snprintf(path, sizeof(path), "%s/tests/data/syslog-clients/%s",
             top != NULL && *top != '\0' ? top : ".", name);
    text = harness_read_file(path, NULL);
    if (text == NULL) {
        fprintf(stderr, "peers: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t fl = strlen(from[i]), tl = strlen(to[i]), count = 0, len = strlen(text);
        const char *s;
        char *d;

        for (s = text; (s = strstr(s, from[i])) != NULL; s += fl) {
            count++;
        }
        if (count == 0) {
            fprintf(stderr, "peers: %s: \"%s\" not found\n", path, from[i]);
            free(text);
            return NULL;
        }
        out = malloc(len + count * tl + 1);
        if (out == NULL) {
            free(text);
            return NULL;
        }
        d = out;
        for (s = text;;) {
            const char *m = strstr(s, from[i]);

            if (m == NULL) {
                memcpy(d, s, strlen(s) + 1);
                break;
            }
            memcpy(d, s, (size_t)(m - s));
            d += m - s;
            memcpy(d, to[i], tl);
            d += tl;
            s = m + fl;
        }
        free(text);
        text = out;
    }
    return text;
}
