/*
 * check_unix — the local sources (unix_stream, unix_dgram) against the real
 * sluiced: exactly-once delivery over both, util-linux logger as a client,
 * the socket file's life (mode, stale socket replaced, a live socket or a
 * non-socket file refused, a missing directory, removal at stop only while
 * it is ours), the sender's credentials (add_fields = peer) and
 * back-pressure (a stalled sink blocks a stream sender and a datagram
 * sender; nothing is dropped).
 *
 * Each test gets a fresh temp dir, config and daemon (see harness.h); waits
 * poll with deadlines, never sleep-and-hope.
 *
 * Run: SLUICED=build/sluiced SLUICE_TOP=. build/tests/integration/check_unix
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

static struct harness H;
static char out_path[PATH_MAX];
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

#define MIB (1024u * 1024u)

static void
setup(void)
{
    ck_assert_msg(harness_init(&H) == 0, "mkdtemp: %s", strerror(errno));
    harness_path(&H, "out.ndjson", out_path, sizeof(out_path));
    harness_path(&H, "log.sock", sock_path, sizeof(sock_path));
}

static void
teardown(void)
{
    harness_fini(&H);
}

/* One source "app" of type at sock_path → queue "main" → out_path. */
struct conf {
    const char *type;     /* "unix_stream" or "unix_dgram" */
    const char *codec;    /* default json */
    const char *capacity; /* default 16MiB */
    const char *extra;    /* more "key = value\n" lines for the source */
};

static bool
is_dgram(const struct conf *c)
{
    return strcmp(c->type, "unix_dgram") == 0;
}

static int
sock_type(const struct conf *c)
{
    return is_dgram(c) ? SOCK_DGRAM : SOCK_STREAM;
}

/* A socket of type connected to sock_path, or -1 (errno set). */
static int
unix_connect(int type)
{
    return harness_unix_connect(sock_path, type, 60000);
}

/* sock_path as an address. */
static struct sockaddr_un
sock_addr(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    memcpy(sun.sun_path, sock_path, sizeof(sun.sun_path));
    return sun;
}

/* Writes the config (harness_std), starts the daemon and waits until its
 * socket takes connections; returns how that wait ended. */
static enum harness_wait
try_start(const struct conf *c, const char *const *env)
{
    static char queue_extra[64];
    static struct harness_std std;

    snprintf(queue_extra, sizeof(queue_extra), "capacity = %s\n",
             c->capacity != NULL ? c->capacity : "16MiB");
    std = (struct harness_std){.type = c->type,
                               .listen = sock_path,
                               .codec = c->codec,
                               .source_extra = c->extra,
                               .queue_extra = queue_extra,
                               .sink_extra = "fsync = none\n"};
    return harness_std_start(&H, &std, env, 10000);
}

static void
start_daemon(const struct conf *c, const char *const *env)
{
    enum harness_wait w = try_start(c, env);

    HARNESS_REQUIRE(&H, w == HARNESS_WAIT_OK, "daemon not listening on %s (%s)", sock_path,
                    w == HARNESS_WAIT_DIED ? "it exited" : "timeout or error");
}

static void
stop_daemon_ok(void)
{
    harness_require_stop_ok(&H);
}

/* The daemon must refuse to start: exit status != 0 with needle in its log. */
static void
require_start_fails(const struct conf *c, const char *needle)
{
    int status = 0;

    /* The wait for the socket may succeed on another process's socket
     * (the live case): what counts is how the daemon ends. */
    HARNESS_REQUIRE(&H, try_start(c, NULL) != HARNESS_WAIT_ERROR, "cannot start");
    HARNESS_REQUIRE(&H, harness_wait_exit(&H, 10000, &status) == HARNESS_WAIT_OK,
                    "the daemon started (it should have refused)");
    HARNESS_REQUIRE(&H, WIFEXITED(status) && WEXITSTATUS(status) != 0,
                    "the daemon exited with status 0");
    HARNESS_REQUIRE(&H, harness_log_has(&H, needle), "the log does not say \"%s\"", needle);
}

static unsigned long long
log_counter(const char *key)
{
    unsigned long long v = 0;

    HARNESS_REQUIRE(&H, harness_log_counter(&H, "app", key, &v) == 0, "no %s= in the log", key);
    return v;
}

/* A socket file at sock_path that nobody listens on (a crashed owner's). */
static void
make_stale_socket(int type)
{
    struct sockaddr_un sun = sock_addr();
    int fd = socket(AF_UNIX, type, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
}

/* --- exactly once ------------------------------------------------------------- */

#define STREAM_EVENTS harness_events(100000)

/* Two connections, half the events each; default mode 0660; removed at stop. */
START_TEST(test_unix_stream_exactly_once)
{
    struct conf c = {.type = "unix_stream"};
    const char *paths[] = {out_path};
    struct stat st;
    int a, b;

    start_daemon(&c, NULL);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert_msg(S_ISSOCK(st.st_mode), "not a socket");
    ck_assert_msg((st.st_mode & 07777) == 0660, "mode %o, want 0660", st.st_mode & 07777);
    a = unix_connect(SOCK_STREAM);
    b = unix_connect(SOCK_STREAM);
    ck_assert_msg(a >= 0 && b >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_events(a, 0, STREAM_EVENTS / 2), 0);
    ck_assert_int_eq(harness_send_events(b, STREAM_EVENTS / 2, STREAM_EVENTS / 2), 0);
    close(a);
    close(b);
    harness_require_lines(&H, out_path, STREAM_EVENTS, 60000);
    stop_daemon_ok();
    harness_require_exactly_once(&H, paths, 1, STREAM_EVENTS);
    ck_assert_msg(!harness_exists(sock_path), "the socket file is still there after the stop");
}
END_TEST

#define DGRAM_EVENTS 20000

static bool
mode_is_0622(void *arg)
{
    struct stat st;

    return lstat(sock_path, &st) == 0 && (st.st_mode & 07777) == 0622;
}

/* One event per datagram, then datagrams of three lines (the last without
 * its newline: the datagram's end ends it). */
START_TEST(test_unix_dgram_exactly_once)
{
    struct conf c = {.type = "unix_dgram", .extra = "socket_mode = 0622\n"};
    const char *paths[] = {out_path};
    char buf[3 * HARNESS_EVENT_BYTES];
    uint64_t seq;
    int fd;

    start_daemon(&c, NULL);
    /* A datagram socket takes datagrams from bind on, and gets its exact
     * mode right after: poll (before, it is only ever narrower). */
    ck_assert_int_eq(harness_poll(&H, 5000, mode_is_0622, NULL), HARNESS_WAIT_OK);
    fd = unix_connect(SOCK_DGRAM);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    for (seq = 0; seq < DGRAM_EVENTS / 2; seq++) {
        size_t n = harness_event_line(buf, seq);
        HARNESS_REQUIRE(&H, send(fd, buf, n, 0) == (ssize_t)n, "send %" PRIu64 ": %s", seq,
                        strerror(errno));
    }
    for (; seq + 3 <= DGRAM_EVENTS; seq += 3) {
        size_t n = harness_event_line(buf, seq);
        n += harness_event_line(buf + n, seq + 1);
        n += harness_event_line(buf + n, seq + 2) - 1;
        HARNESS_REQUIRE(&H, send(fd, buf, n, 0) == (ssize_t)n, "send %" PRIu64 ": %s", seq,
                        strerror(errno));
    }
    for (; seq < DGRAM_EVENTS; seq++) {
        size_t n = harness_event_line(buf, seq);
        HARNESS_REQUIRE(&H, send(fd, buf, n, 0) == (ssize_t)n, "send: %s", strerror(errno));
    }
    close(fd);
    harness_require_lines(&H, out_path, DGRAM_EVENTS, 60000);
    stop_daemon_ok();
    harness_require_exactly_once(&H, paths, 1, DGRAM_EVENTS);
    ck_assert_uint_eq(log_counter("dropped_full"), 0);
    ck_assert_msg(!harness_exists(sock_path), "the socket file is still there after the stop");
}
END_TEST

/* --- logger(1) and the sender's credentials ------------------------------------ */

/* Runs logger with args (NULL-terminated, after "logger"); returns its pid. */
static pid_t
run_logger(const char *const *args)
{
    const char *argv[16] = {"logger"};
    int status = 0;
    size_t n = 1;
    pid_t pid;

    for (; args[n - 1] != NULL && n + 1 < sizeof(argv) / sizeof(argv[0]); n++) {
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execvp("logger", (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "logger failed: status %d",
                  status);
    return pid;
}

/* The output line whose "message" contains needle (caller decrefs), or NULL. */
static json_t *
find_event(const char *needle)
{
    char *text = harness_read_file(out_path, NULL);
    json_t *found = NULL;

    for (char *line = text, *next; text != NULL && *line != '\0' && found == NULL; line = next) {
        json_error_t err;
        json_t *o;

        next = strchr(line, '\n');
        next = next != NULL ? next + 1 : line + strlen(line);
        o = json_loadb(line, (size_t)(next - line), 0, &err);
        ck_assert_msg(o != NULL, "invalid output line: %s", err.text);
        if (strstr(json_string_value(json_object_get(o, "message")) ?: "", needle) != NULL) {
            found = o;
        } else {
            json_decref(o);
        }
    }
    free(text);
    return found;
}

static void
require_peer(json_t *o, pid_t pid)
{
    ck_assert_ptr_nonnull(o);
    ck_assert_msg(json_is_integer(json_object_get(o, "peer_pid")), "no peer_pid");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "peer_pid")), pid);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "peer_uid")), getuid());
    ck_assert_int_eq(json_integer_value(json_object_get(o, "peer_gid")), getgid());
    ck_assert_msg(json_object_get(o, "peer") == NULL, "a local peer has no \"peer\" address");
}

static void
logger_case(const char *type, const char *proto_flag)
{
    struct conf c = {.type = type, .codec = "raw", .extra = "add_fields = peer, source\n"};
    const char *args[] = {"-u", sock_path,  proto_flag,          "--socket-errors=on",
                          "-t", "unixtest", "hello from logger", NULL};
    pid_t pid;
    json_t *o;
    int fd;

    start_daemon(&c, NULL);
    pid = run_logger(args);
    /* Our own client: its pid is ours. */
    fd = unix_connect(sock_type(&c));
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_all(fd, "own client\n", 11), 0);
    close(fd);
    harness_require_lines(&H, out_path, 2, 10000);
    o = find_event("unixtest: hello from logger");
    require_peer(o, pid);
    ck_assert_str_eq(json_string_value(json_object_get(o, "source")), "app");
    json_decref(o);
    o = find_event("own client");
    require_peer(o, getpid());
    json_decref(o);
    stop_daemon_ok();
}

START_TEST(test_unix_logger_stream)
{
    logger_case("unix_stream", "-T");
}
END_TEST

START_TEST(test_unix_logger_dgram)
{
    logger_case("unix_dgram", "-d");
}
END_TEST

/* codec = syslog on a local socket, as syslog(3) and logger write to /dev/log
 * ("<13>Dec  6 00:28:54 myapp[4242]: ...": no hostname): parsed fields and
 * the sender's credentials. */
START_TEST(test_unix_syslog_codec)
{
    struct conf c = {.type = _i == 0 ? "unix_stream" : "unix_dgram",
                     .codec = "syslog",
                     .extra = "add_fields = peer\n"};
    const char *args[] = {"-u",    sock_path,   _i == 0 ? "-T" : "-d", "-t",
                          "myapp", "--id=4242", "hello syslog",        NULL};
    pid_t pid;
    json_t *o;

    start_daemon(&c, NULL);
    pid = run_logger(args);
    harness_require_lines(&H, out_path, 1, 10000);
    o = find_event("hello syslog");
    require_peer(o, pid);
    ck_assert_str_eq(json_string_value(json_object_get(o, "message")), "hello syslog");
    ck_assert_str_eq(json_string_value(json_object_get(o, "appname")), "myapp");
    ck_assert_str_eq(json_string_value(json_object_get(o, "procid")), "4242");
    ck_assert_str_eq(json_string_value(json_object_get(o, "facility")), "user");
    ck_assert_str_eq(json_string_value(json_object_get(o, "severity")), "notice");
    ck_assert_msg(json_object_get(o, "hostname") == NULL, "a hostname was invented");
    json_decref(o);
    stop_daemon_ok();
}
END_TEST

/* unix_stream frames like tcp: logger --octet-count sends "LEN SP <PRI>..."
 * with no newline; framing = octet_counted takes the frame as the event. */
START_TEST(test_unix_stream_octet_counted)
{
    struct conf c = {.type = "unix_stream", .codec = "raw", .extra = "framing = octet_counted\n"};
    const char *args[] = {"-u",    sock_path,       "-T", "--octet-count", "-t",
                          "octet", "counted frame", NULL};
    const char *msg;
    json_t *o;

    start_daemon(&c, NULL);
    run_logger(args);
    harness_require_lines(&H, out_path, 1, 10000);
    o = find_event("octet: counted frame");
    ck_assert_ptr_nonnull(o);
    msg = json_string_value(json_object_get(o, "message"));
    ck_assert_msg(msg[0] == '<', "the frame's length was not taken off: %s", msg);
    json_decref(o);
    stop_daemon_ok();
}
END_TEST

/* --- the socket file ------------------------------------------------------------- */

START_TEST(test_unix_stale_socket_replaced)
{
    struct conf c = {.type = _i == 0 ? "unix_stream" : "unix_dgram"};
    int fd;

    make_stale_socket(sock_type(&c));
    start_daemon(&c, NULL);
    HARNESS_REQUIRE(&H, harness_log_has(&H, "replaced the stale socket"), "not logged");
    fd = unix_connect(sock_type(&c));
    ck_assert_int_eq(harness_send_all(fd, "{\"after\":\"stale\"}\n", 18), 0);
    close(fd);
    harness_require_lines(&H, out_path, 1, 10000);
    stop_daemon_ok();
}
END_TEST

/* Something listens at the path: refused, and that socket still works. */
START_TEST(test_unix_live_socket_refused)
{
    struct conf c = {.type = _i == 0 ? "unix_stream" : "unix_dgram"};
    struct sockaddr_un sun = sock_addr();
    int type = sock_type(&c);
    int lfd = socket(AF_UNIX, type, 0);
    int probe;

    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    if (type == SOCK_STREAM) {
        ck_assert_int_eq(listen(lfd, 8), 0);
    }
    require_start_fails(&c, "is in use: another process listens on it");
    probe = unix_connect(type);
    ck_assert_msg(probe >= 0, "the other process's socket was taken away: %s", strerror(errno));
    close(probe);
    close(lfd);
}
END_TEST

START_TEST(test_unix_not_a_socket_refused)
{
    struct conf c = {.type = _i == 0 ? "unix_stream" : "unix_dgram"};
    char *text;

    ck_assert_int_eq(harness_write_file(sock_path, "precious\n"), 0);
    require_start_fails(&c, "exists and is not a socket");
    text = harness_read_file(sock_path, NULL);
    ck_assert_msg(text != NULL && strcmp(text, "precious\n") == 0, "the file was changed");
    free(text);
}
END_TEST

START_TEST(test_unix_owner_group)
{
    struct conf c = {.type = "unix_stream", .extra = "socket_owner = 65534\nsocket_group = 1\n"};
    struct stat st;

    if (geteuid() != 0) {
        fprintf(stderr, "SKIP test_unix_owner_group: needs root (chown)\n");
        return;
    }
    start_daemon(&c, NULL);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert_uint_eq(st.st_uid, 65534);
    ck_assert_uint_eq(st.st_gid, 1);
    ck_assert_msg((st.st_mode & 07777) == 0660, "mode %o", st.st_mode & 07777);
    stop_daemon_ok();
}
END_TEST

START_TEST(test_unix_missing_directory)
{
    struct conf c = {.type = "unix_dgram"};

    harness_path(&H, "nodir/log.sock", sock_path, sizeof(sock_path));
    require_start_fails(&c, "its directory does not exist");
}
END_TEST

/* A file put at the path after the start is not ours: left at the stop. */
START_TEST(test_unix_foreign_file_kept_at_stop)
{
    struct conf c = {.type = "unix_stream"};

    start_daemon(&c, NULL);
    ck_assert_int_eq(unlink(sock_path), 0);
    ck_assert_int_eq(harness_write_file(sock_path, "someone else's\n"), 0);
    stop_daemon_ok();
    ck_assert_msg(harness_exists(sock_path), "sluiced removed a file it did not create");
    HARNESS_REQUIRE(&H, harness_log_has(&H, "is no longer our socket"), "not logged");
}
END_TEST

/* A start that fails after the socket was made (a later source cannot
 * bind) removes it: no stale file is left behind. */
START_TEST(test_unix_failed_start_removes_socket)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    char extra[128];
    struct conf c = {.type = "unix_stream", .extra = extra};
    int busy = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_eq(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(busy, 1), 0);
    ck_assert_int_eq(getsockname(busy, (struct sockaddr *)&sin, &len), 0);
    snprintf(extra, sizeof(extra),
             "\n[source busy]\ntype = tcp\nlisten = 127.0.0.1:%u\nqueue = main\n",
             ntohs(sin.sin_port));
    require_start_fails(&c, "cannot listen on 127.0.0.1:");
    ck_assert_msg(!harness_exists(sock_path), "the socket file was left behind");
    close(busy);
}
END_TEST

START_TEST(test_unix_config_check)
{
    const char *args[] = {"-n", "-c", H.conf_path, NULL};
    struct conf c = {.type = "unix_stream"};
    int status = 0;

    snprintf(sock_path, sizeof(sock_path), "relative.sock");
    require_start_fails(&c, "expected an absolute path");
    ck_assert_int_eq(harness_run(&H, args, 10000, &status), HARNESS_WAIT_OK);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0, "-n accepted a relative path");
    HARNESS_REQUIRE(&H, harness_log_has(&H, "expected an absolute path"), "no reason given");
}
END_TEST

/* --- socket activation ------------------------------------------------------------ */

/*
 * systemd-socket-activate(1) binds sock_path and execs sluiced (in place, on
 * the first connection or datagram) with it as LISTEN_FDS; no
 * FileDescriptorName, so sluiced matches it by its path.  The file is
 * systemd's: sluiced leaves it at the stop.
 */
START_TEST(test_unix_socket_activation)
{
    struct conf c = {.type = _i == 0 ? "unix_stream" : "unix_dgram", .codec = "raw"};
    const char *const activate_paths[] = {"/usr/bin/systemd-socket-activate",
                                          "/bin/systemd-socket-activate"};
    const char *activate = NULL;
    char wrapper[PATH_MAX], needle[128];
    int fd;

    for (size_t i = 0; i < sizeof(activate_paths) / sizeof(activate_paths[0]); i++) {
        if (access(activate_paths[i], X_OK) == 0) {
            activate = activate_paths[i];
        }
    }
    if (activate == NULL) {
        fprintf(stderr, "SKIP test_unix_socket_activation: no systemd-socket-activate\n");
        return;
    }
    harness_path(&H, "activate.sh", wrapper, sizeof(wrapper));
    ck_assert_int_eq(harness_write_file(wrapper, "#!/bin/sh\nexec %s %s -l %s %s \"$@\"\n",
                                        activate, is_dgram(&c) ? "--datagram" : "", sock_path,
                                        harness_sluiced_path()),
                     0);
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    ck_assert_int_eq(setenv("SLUICED", wrapper, 1), 0);
    start_daemon(&c, NULL); /* its probe (stream) or first datagram starts sluiced */
    fd = unix_connect(sock_type(&c));
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    ck_assert_int_eq(harness_send_all(fd, "through the inherited socket\n", 29), 0);
    close(fd);
    harness_require_lines(&H, out_path, 1, 10000);
    snprintf(needle, sizeof(needle), "using the %s socket passed by systemd",
             is_dgram(&c) ? "unix datagram" : "unix stream");
    HARNESS_REQUIRE(&H, harness_log_has(&H, needle), "not adopted: no \"%s\" in the log", needle);
    stop_daemon_ok();
    ck_assert_msg(harness_exists(sock_path), "sluiced removed systemd's socket file");
}
END_TEST

/* --- back-pressure: a stalled sink blocks the sender, nothing is dropped ----------- */

#define BP_EVENTS 100000

/*
 * Sends events [0, BP_EVENTS) on fd (non-blocking; datagram: one event
 * each) until a whole second passes without fd becoming writable.
 * Returns the stream position (bytes) reached.
 */
static uint64_t
send_until_blocked(int fd, bool dgram)
{
    const uint64_t end = (uint64_t)BP_EVENTS * HARNESS_EVENT_BYTES;
    static char buf[65536];
    int64_t deadline = harness_now_ms() + harness_ms(60000);
    uint64_t pos = 0;

    while (pos < end && harness_now_ms() < deadline) {
        size_t len = dgram ? harness_event_line(buf, pos / HARNESS_EVENT_BYTES)
                           : harness_stream_fill(buf, sizeof(buf), pos, end, 0);
        ssize_t r = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (r > 0) {
            ck_assert_msg(!dgram || (size_t)r == len, "short datagram");
            pos += (uint64_t)r;
        } else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int pr = poll(&pfd, 1, 1000);

            if (pr == 0) {
                return pos;
            }
            ck_assert_msg(pr == 1, "poll: %s", strerror(errno));
        } else {
            ck_abort_msg("send after %" PRIu64 " bytes: %s", pos, r == 0 ? "0" : strerror(errno));
        }
    }
    ck_abort_msg("the sender never blocked (sent %" PRIu64 " bytes)", pos);
    return pos;
}

START_TEST(test_unix_backpressure)
{
    struct conf c = {.type = _i == 0 ? "unix_stream" : "unix_dgram", .capacity = "1MiB"};
    bool dgram = is_dgram(&c);
    const char *paths[] = {out_path};
    const uint64_t end = (uint64_t)BP_EVENTS * HARNESS_EVENT_BYTES;
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    const char *env[] = {env_stall, NULL};
    static char buf[65536];
    uint64_t pos;
    int fd;

    harness_path(&H, "stall", stall, sizeof(stall));
    snprintf(env_stall, sizeof(env_stall), "SLUICE_TEST_STALL_FILE=%s", stall);
    ck_assert_int_eq(harness_write_file(stall, "stalled\n"), 0);
    start_daemon(&c, env);
    fd = unix_connect(dgram ? SOCK_DGRAM : SOCK_STREAM);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));

    pos = send_until_blocked(fd, dgram);
    HARNESS_REQUIRE(&H, pos < 32 * MIB, "%" PRIu64 " bytes accepted behind a 1 MiB queue", pos);
    HARNESS_REQUIRE(&H, harness_alive(&H), "daemon exited while stalled");

    /* Unstall: what was sent and the rest arrive exactly once. */
    ck_assert_int_eq(unlink(stall), 0);
    while (pos < end) {
        size_t len = dgram ? harness_event_line(buf, pos / HARNESS_EVENT_BYTES)
                           : harness_stream_fill(buf, sizeof(buf), pos, end, 0);
        HARNESS_REQUIRE(&H, harness_send_all(fd, buf, len) == 0,
                        "send after unstalling, at byte %" PRIu64 ": %s", pos, strerror(errno));
        pos += len;
    }
    close(fd);
    harness_require_lines(&H, out_path, BP_EVENTS, 120000);
    stop_daemon_ok();
    harness_require_exactly_once(&H, paths, 1, BP_EVENTS);
    ck_assert_uint_eq(log_counter("dropped_full"), 0);
    ck_assert_uint_ge(log_counter("pauses"), 1);
}
END_TEST

/*
 * SIGTERM while a unix_dgram source is paused behind a stalled sink: once
 * the sink moves again the paused reader drains the socket and the stop
 * ends at once (not at shutdown_timeout), with every datagram sent.
 */
START_TEST(test_unix_stop_while_paused)
{
    struct conf c = {.type = "unix_dgram", .capacity = "1MiB"};
    const char *paths[] = {out_path};
    char stall[PATH_MAX], env_stall[PATH_MAX + 32];
    const char *env[] = {env_stall, NULL};
    int64_t t0;
    uint64_t n;
    int fd, status = 0;

    harness_path(&H, "stall", stall, sizeof(stall));
    snprintf(env_stall, sizeof(env_stall), "SLUICE_TEST_STALL_FILE=%s", stall);
    ck_assert_int_eq(harness_write_file(stall, "stalled\n"), 0);
    start_daemon(&c, env);
    fd = unix_connect(SOCK_DGRAM);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
    n = send_until_blocked(fd, true) / HARNESS_EVENT_BYTES;
    close(fd);
    ck_assert_int_eq(harness_signal(&H, SIGTERM), 0);
    ck_assert_int_eq(unlink(stall), 0);
    t0 = harness_now_ms();
    HARNESS_REQUIRE(&H, harness_wait_exit(&H, 20000, &status) == HARNESS_WAIT_OK,
                    "no exit within 20 s of SIGTERM");
    HARNESS_REQUIRE(&H, harness_now_ms() - t0 < harness_ms(10000),
                    "the stop took %lld ms (waited for shutdown_timeout?)",
                    (long long)(harness_now_ms() - t0));
    HARNESS_REQUIRE(&H, WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    harness_require_exactly_once(&H, paths, 1, n);
}
END_TEST

static Suite *
unix_suite(void)
{
    Suite *s = suite_create("unix");

    tcase_add_test(harness_tcase(s, "stream_exactly_once", 120, setup, teardown),
                   test_unix_stream_exactly_once);
    tcase_add_test(harness_tcase(s, "dgram_exactly_once", 120, setup, teardown),
                   test_unix_dgram_exactly_once);
    TCase *tc = harness_tcase(s, "logger", 30, setup, teardown);
    tcase_add_test(tc, test_unix_logger_stream);
    tcase_add_test(tc, test_unix_logger_dgram);
    tcase_add_test(tc, test_unix_stream_octet_counted);
    tcase_add_loop_test(tc, test_unix_syslog_codec, 0, 2);
    /* A tcase of its own, so CK_RUN_CASE=stale_socket runs it alone. */
    tcase_add_loop_test(harness_tcase(s, "stale_socket", 30, setup, teardown),
                        test_unix_stale_socket_replaced, 0, 2);
    tc = harness_tcase(s, "socket_file", 30, setup, teardown);
    tcase_add_loop_test(tc, test_unix_live_socket_refused, 0, 2);
    tcase_add_loop_test(tc, test_unix_not_a_socket_refused, 0, 2);
    tcase_add_test(tc, test_unix_missing_directory);
    tcase_add_test(tc, test_unix_owner_group);
    tcase_add_test(tc, test_unix_foreign_file_kept_at_stop);
    tcase_add_test(tc, test_unix_config_check);
    tcase_add_test(tc, test_unix_failed_start_removes_socket);
    tcase_add_loop_test(harness_tcase(s, "activation", 30, setup, teardown),
                        test_unix_socket_activation, 0, 2);
    tcase_add_loop_test(harness_tcase(s, "backpressure", 240, setup, teardown),
                        test_unix_backpressure, 0, 2);
    tcase_add_test(harness_tcase(s, "stop_while_paused", 60, setup, teardown),
                   test_unix_stop_while_paused);
    return s;
}

int
main(void)
{
    return harness_run_suite(unix_suite());
}
