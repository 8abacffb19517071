/*
 * peers — real syslog clients for the integration tests: rsyslogd and
 * syslog-ng started by the test as forwarding clients, and util-linux
 * `logger`.
 *
 * Rules (as for the daemon in harness.h):
 *   - No system service and no /etc: rsyslogd runs as
 *     `rsyslogd -n -f CONF -i PIDFILE` with a private workDirectory and
 *     processInternalMessages (its own messages go to its log file, not to
 *     the system log); syslog-ng runs from the private prefix that
 *     scripts/syslog-ng-private.sh unpacks, with private config, pid,
 *     persist and control files.  Everything lives in the test's temp dir.
 *   - Each peer is a child of the test process with PR_SET_PDEATHSIG, so a
 *     failed test never leaves one running; peer_stop() stops it by PID:
 *     SIGTERM, a bounded wait, then SIGKILL.
 *   - Every wait polls with a deadline (scaled by CK_TIMEOUT_MULTIPLIER).
 *
 * The binaries: $RSYSLOGD, else /usr/sbin/rsyslogd; syslog-ng under
 * $SYSLOG_NG_PREFIX, else /opt/sluice-bench/syslog-ng (scripts/deps.sh
 * --test installs both).  `logger` is $LOGGER, else /usr/bin/logger.
 *
 * Thread: the test's main thread only.
 */
#ifndef SLUICE_PEERS_H
#define SLUICE_PEERS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

enum peer_kind {
    PEER_RSYSLOG,
    PEER_SYSLOG_NG,
};

/* One running peer daemon. */
struct peer {
    enum peer_kind kind;
    char dir[128];            /* h->dir/rsyslog.N or h->dir/syslog-ng.N */
    char conf_path[PATH_MAX]; /* dir/rsyslog.conf or dir/syslog-ng.conf */
    char log_path[PATH_MAX];  /* dir/log: its stdout and stderr */
    pid_t pid;                /* running, or -1 */
    bool exited;
    int status; /* waitpid() status once exited */
};

/* The binaries (borrowed, static). */
const char *peer_rsyslogd_path(void);
const char *peer_syslog_ng_prefix(void);
const char *peer_logger_path(void);

/*
 * The pid of a system syslog daemon: an rsyslogd or syslog-ng that was not
 * started with a private "-f CONF" (as every test and benchmark starts its
 * own), or 0.  The tests refuse to run next to one: apt must never have
 * started it (scripts/deps.sh installs with a policy-rc.d that blocks it).
 */
pid_t peer_system_syslog_pid(void);

/*
 * Fails the test (loudly, with the reason) unless the peer's binary is
 * installed and no system syslog daemon runs.
 */
void peer_require_available(enum peer_kind kind);

/*
 * Writes the peer's config and starts it.  For rsyslog, `global(...)` with a
 * private workDirectory, processInternalMessages and no DNS is written
 * first, then body; for syslog-ng, `@version` and `options { ... }`
 * (no DNS, keep-hostname, time-reopen(1), frac-digits(6): microseconds, as
 * docs/operations.md advises) then body.  Returns 0 (p->pid
 * set) or -1.
 */
int peer_start(struct harness *h, struct peer *p, enum peer_kind kind, const char *body);

/* True while the peer runs (reaps it when it exited). */
bool peer_alive(struct peer *p);

/* Polls until 127.0.0.1:port accepts a TCP connection while the peer runs. */
enum harness_wait peer_wait_tcp(struct peer *p, int port, int timeout_ms);

/*
 * Stops the peer by PID: SIGTERM, waits at most timeout_ms (scaled), then
 * SIGKILL.  Returns 0 if it exited within the time, -1 if it had to be
 * killed.  Safe on a peer that was never started or has exited.
 */
int peer_stop(struct peer *p, int timeout_ms);

/* The last max bytes of the peer's log (caller frees), never NULL. */
char *peer_log_tail(const struct peer *p, size_t max);

/* Fails the test with the peer's log tail and the daemon's if cond is false. */
#define PEER_REQUIRE(h, p, cond, ...)                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            peer_report((h), (p), __FILE__, __LINE__, #cond);                                      \
            ck_abort_msg(__VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)
void peer_report(struct harness *h, const struct peer *p, const char *file, int line,
                 const char *what);

/*
 * Runs `logger ARGS...` (args NULL-terminated, at most 30) to completion,
 * its output in h->dir/logger.log.  Waits at most timeout_ms (scaled).
 * Returns its exit status (0..255), or -1 if it could not run, was killed or
 * timed out.  *pid (may be NULL) receives logger's pid: what `logger -i`
 * writes as PROCID.
 */
int peer_logger(struct harness *h, const char *const *args, int timeout_ms, pid_t *pid);

/*
 * Reads the file at path whose content is a config snippet the docs quote
 * (tests/data/syslog-clients/NAME, below $SLUICE_TOP) and replaces each
 * occurrence of every from[i] with to[i] (n pairs).  Returns a malloc'd
 * string or NULL (the test fails then).
 */
char *peer_snippet(const char *name, const char *const *from, const char *const *to, size_t n);

#endif /* SLUICE_PEERS_H */
