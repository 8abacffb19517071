/*
 * harness — helpers for black-box integration tests against the real
 * sluiced binary: a temp dir per test, a config written from a template,
 * the daemon as a child process with its stderr in a log file, loopback
 * clients, and polling with deadlines.
 *
 * Rules the helpers keep so the tests stay deterministic and bounded:
 *   - Nothing sleeps to synchronise.  Every wait polls a condition in small
 *     steps until it holds or a deadline passes, and every loop is bounded.
 *   - Deadlines are in milliseconds and are multiplied by the environment
 *     variable CK_TIMEOUT_MULTIPLIER (as Check does for its test timeouts),
 *     so sanitizer builds get the same slack on both.
 *   - The daemon is started from the test's main thread with
 *     PR_SET_PDEATHSIG, and it stays in the test process's group, which Check
 *     (CK_FORK) kills after every test.  A failed test therefore never
 *     leaves a daemon running.  Its temp dir is kept for post-mortem
 *     (HARNESS_REQUIRE prints the path and the log tail); a passing test
 *     removes it in harness_fini().
 *
 * The daemon binary is $SLUICED, else $SLUICE_TOP/build/sluiced, else
 * build/sluiced relative to the current directory.
 *
 * Thread: everything here may be called from the test's main thread; the
 * client helpers (harness_tcp_connect, harness_send_all, harness_udp_*,
 * harness_stream_*, harness_event_line) may also be called from any thread.
 */
#ifndef SLUICE_HARNESS_H
#define SLUICE_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

/* Status returned by the waiting helpers. */
enum harness_wait {
    HARNESS_WAIT_OK = 0,       /* the condition holds */
    HARNESS_WAIT_TIMEOUT = -1, /* the deadline passed */
    HARNESS_WAIT_DIED = -2,    /* the daemon exited while we waited */
    HARNESS_WAIT_ERROR = -3,   /* a system call failed (errno set) */
};

/* One test's world: a temp dir, the daemon's config, log and process. */
struct harness {
    char dir[64];             /* "/tmp/sluice-it.XXXXXX" */
    char conf_path[PATH_MAX]; /* dir/sluice.conf */
    char log_path[PATH_MAX];  /* dir/sluiced.log: the daemon's stderr */
    char out_path[PATH_MAX];  /* dir/stdout.log: the daemon's stdout */
    pid_t pid;                /* the running daemon, or -1 */
    bool exited;              /* the last daemon was reaped ... */
    int status;               /* ... with this waitpid() status */
    int reserved[8];          /* harness_reserve_port's sockets, closed by harness_fini */
    size_t nreserved;
};

/*
 * Makes the temp dir and fills in the paths.  Returns 0, or -1 (errno set).
 */
int harness_init(struct harness *h);

/*
 * Kills a daemon still running (SIGKILL), reaps it, and removes the temp dir
 * with everything in it.  Safe on a zeroed or already finished harness.
 */
void harness_fini(struct harness *h);

/* Writes "h->dir/name" into buf (len bytes).  Returns buf. */
char *harness_path(const struct harness *h, const char *name, char *buf, size_t len);

/* Deadline scaling: ms multiplied by $CK_TIMEOUT_MULTIPLIER (default 1). */
int harness_ms(int ms);

/* Load scaling: n multiplied by $SLUICE_TEST_LOAD (a fraction in (0, 1],
 * default 1), at least 1000.  The sanitizer runs set it: they look for
 * memory and thread errors, which a fifth of the volume finds as well at a
 * fifth of the time.  Only for event counts no assertion depends on beyond
 * "all of them, once". */
int harness_events(int n);

/* Current CLOCK_MONOTONIC time in milliseconds. */
int64_t harness_now_ms(void);

/* Sleeps one polling step (ms milliseconds); only for use inside a poll loop. */
void harness_poll_step(int ms);

/*
 * Picks a free loopback port for type SOCK_STREAM or SOCK_DGRAM (binds
 * 127.0.0.1:0, reads the port, closes).  Returns the port or -1.
 */
int harness_free_port(int type);

/*
 * A loopback TCP port the daemon binds and unbinds during a test (a source
 * a reload adds and removes): picked as harness_free_port does, but the
 * socket stays open, bound and not listening, with SO_REUSEADDR and
 * SO_REUSEPORT, until harness_fini.  The daemon's listeners (which set
 * both) bind the port beside it; no other process's bind to port 0 gets it
 * meanwhile.  Without the hold, a port left free between two reloads can
 * be handed to another test running at the same time: its daemon binds it
 * with SO_REUSEPORT too (same uid), the two listeners share one reuseport
 * group, and the kernel spreads that test's connections over both daemons.
 * Nothing connects to a port held only by this socket (refused: it does
 * not listen).  TCP only: a bound UDP socket would take datagrams.
 * Returns the port or -1.
 */
int harness_reserve_port(struct harness *h);

/* Writes a file from a printf template (mode 0644, truncating).  0 / -1. */
int harness_write_file(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes h->conf_path from a printf template.  0 / -1. */
int harness_write_config(struct harness *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The daemon binary's path (see the top comment).  Borrowed, static. */
const char *harness_sluiced_path(void);

/* The `sluice` command's path: beside the daemon binary.  Borrowed, static. */
const char *harness_sluice_path(void);

/*
 * Starts "sluiced -c h->conf_path" in the foreground, its stderr appended
 * to h->log_path and its stdout to h->out_path.  env is NULL or a
 * NULL-terminated list of "NAME=value" added to the inherited environment.
 * Returns 0 (h->pid set) or -1 (errno set, or the binary is missing).
 * Must be called from the test's main thread (PR_SET_PDEATHSIG is tied to
 * the thread that forks).
 */
int harness_start(struct harness *h, const char *const *env);

/*
 * Starts another program (argv[0] is its path; argv NULL-terminated) the way
 * harness_start starts the daemon: stdin from /dev/null, stdout and stderr
 * appended to log_path, killed with the test process (PR_SET_PDEATHSIG).
 * env as for harness_start.  Returns its pid (the caller reaps it) or -1.
 * Main thread only.  For the real peers of tests/integration/peers.h.
 */
pid_t harness_spawn_program(char *const *argv, const char *const *env, const char *log_path);

/*
 * Runs "sluiced ARGS..." (argv[0] is supplied; args is NULL-terminated) to
 * completion, stdout to h->out_path and stderr to h->log_path, truncated
 * first.  Waits at most timeout_ms (scaled).  Returns HARNESS_WAIT_OK with
 * *status the waitpid() status, or HARNESS_WAIT_TIMEOUT (the child is then
 * killed) or HARNESS_WAIT_ERROR.
 */
enum harness_wait harness_run(struct harness *h, const char *const *args, int timeout_ms,
                              int *status);

/* True while the daemon runs (reaps it and records h->status if it exited). */
bool harness_alive(struct harness *h);

/* Sends sig to the running daemon.  0 / -1. */
int harness_signal(struct harness *h, int sig);

/*
 * SIGSTOP, then polls (timeout_ms, scaled) until /proc shows the daemon
 * stopped: from then on it runs no code, so it reads, answers and
 * acknowledges nothing until SIGCONT (its kernel still takes data into the
 * socket buffers).  0, or -1 if it did not stop in time.
 */
int harness_pause(struct harness *h, int timeout_ms);

/*
 * Waits at most timeout_ms (scaled) for the daemon to exit.  Returns
 * HARNESS_WAIT_OK with *status its waitpid() status, or
 * HARNESS_WAIT_TIMEOUT (the daemon is left running; harness_fini kills it).
 */
enum harness_wait harness_wait_exit(struct harness *h, int timeout_ms, int *status);

/* harness_signal + harness_wait_exit. */
enum harness_wait harness_stop(struct harness *h, int sig, int timeout_ms, int *status);

/*
 * Polls until 127.0.0.1:port accepts a TCP connection (the probe connection
 * is closed at once, without data), checking the daemon is still alive.
 */
enum harness_wait harness_wait_tcp(struct harness *h, int port, int timeout_ms);

/* True if 127.0.0.1:port accepts a TCP connection now (closed at once). */
bool harness_tcp_accepts(int port);

/*
 * Polls /proc/net/udp until a socket is bound to 127.0.0.1:port, checking the
 * daemon is alive.  A bound UDP socket queues datagrams, so after this the
 * daemon receives what is sent to the port.
 */
enum harness_wait harness_wait_udp(struct harness *h, int port, int timeout_ms);

/*
 * Polls pred(arg) every few milliseconds until it returns true or timeout_ms
 * (scaled) passes.  If h is not NULL, fails early with HARNESS_WAIT_DIED when
 * the daemon has exited (pred is checked once more first).
 */
enum harness_wait harness_poll(struct harness *h, int timeout_ms, bool (*pred)(void *arg),
                               void *arg);

/*
 * Counts the complete lines ('\n') of the file at path, incrementally: each
 * call reads only what was appended since the last one, and starts over when
 * path names another file or the file shrank.  A missing file has 0 lines
 * and exists == false.
 */
struct harness_lines {
    const char *path; /* borrowed */
    dev_t dev;
    ino_t ino;
    off_t off;
    uint64_t lines;
    bool exists;
};
void harness_lines_init(struct harness_lines *lc, const char *path);
uint64_t harness_lines_update(struct harness_lines *lc);

/* Polls until the file at path has at least n lines.  *got (may be NULL)
 * receives the last count seen. */
enum harness_wait harness_wait_lines(struct harness *h, const char *path, uint64_t n,
                                     int timeout_ms, uint64_t *got);

/* Lines in the file at path (a missing file: 0). */
uint64_t harness_file_lines(const char *path);

/* Counts '\n' in buf. */
size_t harness_count_lines(const char *buf, size_t len);

/*
 * Reads a whole file.  Returns a NUL-terminated buffer (caller frees; *len,
 * if not NULL, gets the size without the NUL) or NULL (errno set).
 */
char *harness_read_file(const char *path, size_t *len);

/* True if the file at path exists. */
bool harness_exists(const char *path);

/* VmRSS / VmHWM of pid in KiB from /proc/pid/status, or -1. */
long harness_vmrss_kib(pid_t pid);
long harness_vmhwm_kib(pid_t pid);

/*
 * Finds, in the daemon's log, the last line containing `source "NAME"` and
 * the key "KEY=" (e.g. "invalid"), and parses the number after it.  0 / -1.
 */
int harness_log_counter(struct harness *h, const char *source, const char *key,
                        unsigned long long *val);

/* The same KEY summed over every such line (0 when there is none). */
unsigned long long harness_log_counter_sum(struct harness *h, const char *source,
                                           const char *key);

/* The last max bytes of the daemon's log (caller frees), never NULL. */
char *harness_log_tail(struct harness *h, size_t max);

/* The last max bytes of the file at path (caller frees), never NULL. */
char *harness_file_tail(const char *path, size_t max);

/*
 * Prints "what", the kept temp dir and the daemon log's tail on stderr.  For
 * HARNESS_REQUIRE: a failed Check assertion _exits the test process (CK_FORK),
 * so this is the last chance to say where to look.
 */
void harness_report(struct harness *h, const char *file, int line, const char *what);

/* ck_assert_msg that also reports the daemon's state on failure. */
#define HARNESS_REQUIRE(h, cond, ...)                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_report((h), __FILE__, __LINE__, #cond);                                        \
            ck_abort_msg(__VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

/* --- clients --------------------------------------------------------------- */

/*
 * Connects to 127.0.0.1:port (blocking), with SO_SNDTIMEO of send_timeout_ms
 * (scaled) so a blocked send fails instead of hanging.  Returns fd or -1.
 */
int harness_tcp_connect(int port, int send_timeout_ms);

/*
 * A listening TCP socket on 127.0.0.1, a free port (stored in *port), with
 * SO_RCVBUF rcvbuf (0: the kernel's) so that a peer the test accepts and
 * does not read stalls its sender soon.  Returns fd or -1.
 */
int harness_tcp_listen(int rcvbuf, int *port);

/*
 * Sends all len bytes (MSG_NOSIGNAL, retrying EINTR and short sends).
 * Returns 0, or -1 (errno EAGAIN/EWOULDBLOCK: the send timeout passed).
 */
int harness_send_all(int fd, const void *buf, size_t len);

/*
 * Polls until the kernel holds none of fd's sent bytes (SIOCOUTQ == 0): on
 * loopback every byte was then acknowledged, i.e. is in the daemon's socket
 * receive buffer (received, as far as the daemon's guarantees go).
 */
enum harness_wait harness_wait_sent(int fd, int timeout_ms);

/* A unix socket of type (SOCK_STREAM, SOCK_DGRAM) connected to path, with
 * SO_SNDTIMEO as harness_tcp_connect.  Returns fd or -1 (errno set). */
int harness_unix_connect(const char *path, int type, int send_timeout_ms);

/* A UDP socket connected to 127.0.0.1:port.  Returns fd or -1. */
int harness_udp_connect(int port);

/* One datagram on a connected UDP socket.  0 / -1. */
int harness_udp_send(int fd, const void *buf, size_t len);

/* --- the standard event stream ---------------------------------------------- */

/*
 * The standard test event: exactly HARNESS_EVENT_BYTES bytes including the
 * final '\n', a JSON object {"seq":N,"level":"info","msg":"<filler>"} whose
 * filler depends on N, so any mix-up of bytes between events shows.
 */
#define HARNESS_EVENT_BYTES 200

/* Writes event seq into buf (at least HARNESS_EVENT_BYTES).  Returns its length. */
size_t harness_event_line(char *buf, uint64_t seq);

/*
 * A stream of consecutive standard events: event i (0-based) has seq
 * seq_base + i and occupies stream bytes [i * HARNESS_EVENT_BYTES, ...).
 * harness_stream_fill writes stream bytes [pos, min(end, pos + cap)) into
 * buf and returns how many; this lets a non-blocking sender resume mid-event.
 */
size_t harness_stream_fill(char *buf, size_t cap, uint64_t pos, uint64_t end, uint64_t seq_base);

/* Sends events [seq_base, seq_base + n) on fd (blocking).  0 / -1. */
int harness_send_events(int fd, uint64_t seq_base, uint64_t n);

/* --- exactly-once checking ----------------------------------------------------- */

/*
 * Collects the "seq" members of output lines and checks that every seq in
 * [0, n) is seen exactly once.  Every line must be a JSON object with an
 * integer "seq"; with exact, it must also be byte-for-byte the standard
 * event for that seq (the client's bytes preserved).
 */
struct harness_seqs {
    uint64_t n;
    unsigned char *seen;   /* count per seq, saturating at 255 */
    uint64_t lines;        /* lines read */
    uint64_t bad;          /* lines not valid, out of range or not exact */
    uint64_t dups;         /* seqs seen more than once */
    char first_error[512]; /* the first problem, "" if none */
};
int harness_seqs_init(struct harness_seqs *s, uint64_t n);
void harness_seqs_fini(struct harness_seqs *s);

/* Adds the lines of the file at path (a missing file adds nothing).  Returns
 * 0, or -1 if the file could not be read. */
int harness_seqs_add_file(struct harness_seqs *s, const char *path, bool exact);

/* Seqs in [lo, hi) seen at least once. */
uint64_t harness_seqs_count_range(const struct harness_seqs *s, uint64_t lo, uint64_t hi);

/*
 * True if every seq in [0, n) was seen exactly once and nothing else was
 * read.  Otherwise writes a description (first missing seq, counts, first
 * error) into msg.
 */
bool harness_seqs_exactly_once(const struct harness_seqs *s, char *msg, size_t len);

/*
 * GET http://127.0.0.1:port/path (HTTP/1.0).  Returns the status code (body
 * in *body, caller frees; NUL-terminated) or -1 with errno set.  Waits at
 * most timeout_ms (scaled).
 */
int harness_http_get(int port, const char *path, int timeout_ms, char **body);

/* The same with more request headers, each ending in "\r\n" ("" for none). */
int harness_http_get_hdr(int port, const char *path, const char *headers, int timeout_ms,
                         char **body);

/* Value of a sample line "name{labels} value" in a /metrics body, e.g.
 * name_labels = "sluice_source_received_events_total{source=\"app\"}".
 * Returns 0 and stores it, or -1 when the sample is absent. */
int harness_metric(const char *body, const char *name_labels, double *value);

/* --- a standard one-source daemon (check_hostile.c, check_faults.c) ---------- */

/*
 * One source "app" (127.0.0.1, a free port) → queue "main" → file sink
 * "archive" at dir/out.ndjson, admin endpoint on a free port, two producer
 * threads.  NULL fields keep the defaults; the *_extra strings are more
 * "key = value\n" lines for their section.
 */
struct harness_std {
    const char *type;         /* "tcp" (default), "udp", "relp", "unix_stream" or "unix_dgram" */
    const char *listen;       /* unix_*: the socket path (no port is picked) */
    const char *codec;        /* "json" (default) or "raw" */
    const char *daemon_extra; /* [daemon] */
    const char *source_extra; /* [source app] */
    const char *queue_extra;  /* [queue main] */
    const char *sink_extra;   /* [sink archive] */
    int port;                 /* set by harness_std_start when 0 */
    int admin_port;           /* likewise */
    char out_path[PATH_MAX];  /* set by harness_std_start */
};

/*
 * Writes the config, starts the daemon (env as for harness_start) and waits
 * until the source listens (at most timeout_ms, scaled; a unix source: until
 * its path takes a connection).  Calling it again after the daemon exited
 * restarts it with the same ports and paths.
 */
enum harness_wait harness_std_start(struct harness *h, struct harness_std *c,
                                    const char *const *env, int timeout_ms);

/* harness_std_start, failing the test (with the log tail) if it does not listen. */
void harness_std_require_start(struct harness *h, struct harness_std *c, const char *const *env);

/* SIGTERM; fails the test unless the daemon exits 0 within 30 s (scaled). */
void harness_require_stop_ok(struct harness *h);

/* Fails the test unless every seq in [0, n) is in the files exactly once,
 * each line byte for byte the standard event (harness_seqs_*). */
void harness_require_exactly_once(struct harness *h, const char *const *paths, size_t npaths,
                                  uint64_t n);

/*
 * Fails the test unless every line of the file at path has a "seq" and the
 * seqs of each connection k < nconn increase through the file: connection
 * k's seqs are k * per .. k * per + per - 1, or, interleaved, those with
 * seq % nconn == k.
 */
void harness_require_conn_order(struct harness *h, const char *path, int nconn, uint64_t per,
                                bool interleaved);

/* Fails the test unless the file at path has n lines within timeout_ms. */
void harness_require_lines(struct harness *h, const char *path, uint64_t n, int timeout_ms);

/* Polls /metrics until the sample equals want (at_least: is >= want);
 * fails the test with the last value seen otherwise. */
void harness_require_metric(struct harness *h, int admin_port, const char *name_labels, double want,
                            bool at_least, int timeout_ms);

/* True if the daemon's log contains needle. */
bool harness_log_has(struct harness *h, const char *needle);

/* GETs /metrics and reads one sample (see harness_metric).  0 / -1. */
int harness_metric_get(int admin_port, const char *name_labels, double *value);

/* True when GET /healthz answers 200 within timeout_ms (scaled). */
bool harness_healthz_ok(int admin_port, int timeout_ms);

/* Open descriptors of pid (entries of /proc/pid/fd), or -1. */
int harness_fd_count(pid_t pid);

/* Sets this process's soft RLIMIT_NOFILE to n, raising the hard limit to n
 * if it is lower (that needs CAP_SYS_RESOURCE); a daemon started afterwards
 * inherits it.  0 / -1. */
int harness_set_nofile(unsigned long n);

/* A growing byte buffer for building test input; zero-initialise it, free p. */
struct harness_buf {
    char *p;
    size_t len, cap;
};
/* Appends n bytes of s; fails the test when out of memory. */
void harness_buf_add(struct harness_buf *b, const void *s, size_t n);

/* --- TLS: the certificates of tests/certs.sh ------------------------------------ */

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* Makes the test certificates (tests/certs.sh, the openssl CLI) in the
 * test's dir under "certs"; that dir's path into buf.  Fails the test if
 * the script fails. */
const char *harness_make_certs(struct harness *h, char *buf, size_t len);

/* A TLS client context: the server verified against certs/ca.pem; leaf's
 * certificate and key (certs/LEAF.pem, certs/LEAF.key) presented unless
 * leaf is NULL.  Fails the test on error.  Any thread; caller frees. */
struct ssl_ctx_st *harness_tls_client_ctx(const char *certs, const char *leaf);

/* A TCase named name in s, with the fixture and a timeout (seconds). */
TCase *harness_tcase(Suite *s, const char *name, double timeout, void (*setup)(void),
                     void (*teardown)(void));

/* Runs every test of s (CK_ENV verbosity); returns main()'s exit status. */
int harness_run_suite(Suite *s);

#endif /* SLUICE_HARNESS_H */
