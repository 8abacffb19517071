/*
 * source_unix — the local source types: unix_stream (connections, handled
 * by the tcp source's connection code, source_tcp.c) and unix_dgram (datagrams, read by the
 * datagram module like udp), listening on a path.
 *
 * The socket file: bind() refuses a path that exists and is not a socket,
 * and one that is live (a connect to it succeeds: another process listens
 * there); a stale socket file (connect refused: nobody listens) is
 * replaced.  The socket is created with socket_mode (fchmod before bind,
 * so the file is never more open than asked, then chmod for the exact
 * mode, which the umask would have narrowed).  Its device and inode are
 * kept in the source's shared state; when the daemon ends (an orderly
 * stop, or a start that failed after binding) unbind() removes the file if
 * it is still that file (a newer instance may have replaced it).  A socket
 * passed by systemd is systemd's: never removed.
 *
 * Threads: unix sockets have no SO_REUSEPORT, so bind() runs once and
 * every producer thread gets a duplicate of that one socket
 * (one_socket): each thread's event_base watches it, the kernel gives each
 * connection or datagram to one reader, the others find EAGAIN.
 *
 * Peers: add_fields = peer gives a sender's credentials — SO_PEERCRED of a
 * connection at accept, SCM_CREDENTIALS of each datagram (SO_PASSCRED).
 *
 * A full queue: a unix_stream connection pauses like a tcp one; a
 * unix_dgram socket is not read (SL_DGRAM_PAUSE): the kernel then blocks
 * the senders once the socket's queue is full, instead of dropping.
 *
 * Thread: bind on main before the threads start; the rest as
 * sluice/source.h says for each operation.
 */
#include "source/source_unix.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/producer.h"
#include "source/dgram.h"
#include "source/lane.h"

/* The temporary name a reload binds a unix source at while the path is in
 * use by the source it replaces (unix_publish). */
#define UNIX_BESIDE_SUFFIX ".reload"

static const char *
unix_path(const struct sl_source_config *cfg)
{
    return ((const struct sockaddr_un *)(const void *)&cfg->addr)->sun_path;
}

/* The address bind() binds: cfg's path, or beside it (sh->path_beside) the
 * temporary name publish() renames over it.  Returns 0, or -1 with errno
 * ENAMETOOLONG (logged) when the temporary name does not fit. */
static int
unix_bind_addr(const struct sl_source_config *cfg, const struct sl_source_shared *sh,
               struct sockaddr_un *sa, socklen_t *len)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s%s", unix_path(cfg),
                     sh->path_beside ? UNIX_BESIDE_SUFFIX : "");
    if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
        log_warnx("source \"%s\": %s%s: too long for a socket path (the new socket is bound "
                  "beside the one in use, then renamed over it)",
                  cfg->name, unix_path(cfg), UNIX_BESIDE_SUFFIX);
        errno = ENAMETOOLONG;
        return -1;
    }
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    return 0;
}

/*
 * Is something listening at sa?  Returns 1 (a connect succeeded, would
 * block, or met a socket of another type), 0 (refused: a stale file) or -1
 * (cannot tell; errno set).
 */
static int
unix_live(const struct sockaddr_un *sa, socklen_t len, int type)
{
    int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sa, len);
    int err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS || err == EPROTOTYPE) {
        return 1;
    }
    if (err == ECONNREFUSED) {
        return 0;
    }
    errno = err;
    return -1;
}

/* Makes room for the socket at sa: nothing there, or a stale socket. */
static int
unix_clear_path(const struct sl_source_config *cfg, const struct sockaddr_un *sa, socklen_t len,
                int type)
{
    const char *path = sa->sun_path;
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        log_warn("source \"%s\": %s", cfg->name, path);
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_warnx("source \"%s\": %s exists and is not a socket; refusing to replace it", cfg->name,
                  path);
        errno = EEXIST;
        return -1;
    }
    int live = unix_live(sa, len, type);
    if (live != 0) {
        if (live > 0) {
            log_warnx("source \"%s\": %s is in use: another process listens on it", cfg->name,
                      path);
            errno = EADDRINUSE;
        } else {
            log_warn("source \"%s\": cannot tell whether %s is in use", cfg->name, path);
        }
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        log_warn("source \"%s\": cannot remove the stale socket %s", cfg->name, path);
        return -1;
    }
    log_info("source \"%s\": replaced the stale socket %s", cfg->name, path);
    return 0;
}

static int
unix_bind(const struct sl_source_config *cfg, struct sl_source_shared *sh, int type)
{
    struct sockaddr_un sa;
    socklen_t salen;
    mode_t mode = sl_source_unix_config(cfg)->socket_mode;
    struct stat st;
    int one = 1;
    if (unix_bind_addr(cfg, sh, &sa, &salen) < 0) {
        return -1;
    }
    const char *path = sa.sun_path;
    int fd = sl_source_socket(cfg, type);
    if (fd < 0) {
        return -1;
    }
    if (unix_clear_path(cfg, &sa, salen, type) < 0 ||
        (type == SOCK_DGRAM && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    /* The socket inode's mode (less the umask) becomes the file's at bind.
     * A stream socket listens only once the file has its owner and mode,
     * so no client connects before; a datagram socket takes datagrams from
     * bind on, while its file is at most as open as socket_mode. */
    (void)fchmod(fd, mode);
    if (bind(fd, (const struct sockaddr *)&sa, salen) < 0) {
        int saved = errno;
        close(fd);
        if (saved == ENOENT) {
            log_warnx("source \"%s\": cannot create %s: its directory does not exist", cfg->name,
                      path);
        }
        errno = saved;
        return -1;
    }
    const struct sl_source_unix_config *u = sl_source_unix_config(cfg);
    if (((u->socket_owner.set || u->socket_group.set) &&
         chown(path, u->socket_owner.set ? (uid_t)u->socket_owner.id : (uid_t)-1,
               u->socket_group.set ? (gid_t)u->socket_group.id : (gid_t)-1) < 0) ||
        chmod(path, mode) < 0 || lstat(path, &st) < 0 ||
        (type == SOCK_STREAM && listen(fd, 4096) < 0)) {
        int saved = errno;
        log_warn("source \"%s\": cannot set the owner, group or mode of %s, or listen", cfg->name,
                 path);
        (void)unlink(path);
        close(fd);
        errno = saved;
        return -1;
    }
    sh->path_made = true;
    sh->path_pending = sh->path_beside;
    sh->path_dev = st.st_dev;
    sh->path_ino = st.st_ino;
    return fd;
}

/* A reload: the socket bound beside the path (path_beside) takes the path
 * by a rename, atomic for connecting clients: each reaches the old socket
 * or the new one, never nothing.  The old source's socket, still open,
 * drains what it holds; its unbind then finds the path is no longer its
 * file and leaves it. */
static int
unix_publish(const struct sl_source_config *cfg, struct sl_source_shared *sh)
{
    struct sockaddr_un sa;
    socklen_t salen;
    if (!sh->path_pending) {
        return 0;
    }
    if (unix_bind_addr(cfg, sh, &sa, &salen) < 0 || rename(sa.sun_path, unix_path(cfg)) < 0) {
        log_warn("source \"%s\": cannot rename %s over %s", cfg->name, sa.sun_path, unix_path(cfg));
        return -1;
    }
    sh->path_pending = false;
    return 0;
}

/* At the end: removes the socket file if it is still the one bind() made
 * (a newer instance may have replaced it since), at its temporary name if
 * it was never published. */
static void
unix_unbind(const struct sl_source_config *cfg, struct sl_source_shared *sh)
{
    struct sockaddr_un sa;
    socklen_t salen;
    const char *path = unix_path(cfg);
    struct stat st;
    if (!sh->path_made) {
        return;
    }
    sh->path_made = false;
    if (sh->path_pending && unix_bind_addr(cfg, sh, &sa, &salen) == 0) {
        path = sa.sun_path;
    }
    if (lstat(path, &st) == 0 && st.st_dev == sh->path_dev && st.st_ino == sh->path_ino) {
        if (unlink(path) < 0) {
            log_warn("source \"%s\": cannot remove %s", cfg->name, path);
        }
    } else {
        log_info("source \"%s\": %s is no longer our socket; left in place", cfg->name, path);
    }
}

static int
unix_stream_bind(const struct sl_source_config *cfg, struct sl_source_shared *sh)
{
    return unix_bind(cfg, sh, SOCK_STREAM);
}

static int
unix_dgram_bind(const struct sl_source_config *cfg, struct sl_source_shared *sh)
{
    return unix_bind(cfg, sh, SOCK_DGRAM);
}

/* A socket from systemd: every datagram must carry its sender's credentials. */
static void
unix_dgram_adopt(int fd)
{
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
}

static void
unix_stream_peer(int fd, const struct sockaddr *sa, struct sl_peer *peer)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && len == sizeof(uc)) {
        sl_peer_from_cred(peer, &uc);
    } else {
        peer->cred = false;
        peer->len = (size_t)snprintf(peer->text, sizeof(peer->text), "unknown");
    }
}

static int
unix_stream_start(struct sl_source *s)
{
    return sl_source_tcp_start(s, unix_stream_peer);
}

static int
unix_dgram_start(struct sl_source *s)
{
    return sl_dgram_start(s, SL_DGRAM_PAUSE);
}

const struct sl_source_type sl_source_unix_stream = {
    .name = "unix_stream",
    .label = "unix stream",
    .socktype = SOCK_STREAM,
    .family = AF_UNIX,
    .one_socket = true,
    .bind = unix_stream_bind,
    .start = unix_stream_start,
    .stop_begin = sl_source_tcp_stop_begin,
    .idle = sl_source_tcp_idle,
    .close_all = sl_source_tcp_close_all,
    .fini = sl_source_tcp_fini,
    .publish = unix_publish,
    .unbind = unix_unbind,
};

const struct sl_source_type sl_source_unix_dgram = {
    .name = "unix_dgram",
    .label = "unix datagram",
    .socktype = SOCK_DGRAM,
    .family = AF_UNIX,
    .one_socket = true,
    .bind = unix_dgram_bind,
    .adopt = unix_dgram_adopt,
    .start = unix_dgram_start,
    .stop_begin = sl_dgram_stop_begin,
    .idle = sl_dgram_idle,
    .close_all = sl_dgram_close_all,
    .fini = sl_dgram_fini,
    .publish = unix_publish,
    .unbind = unix_unbind,
};
