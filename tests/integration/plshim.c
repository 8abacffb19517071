/*
 * plshim — an LD_PRELOAD library for the power-loss test
 * (tests/integration/check_powerloss.c).  Built for tests only
 * ($(BUILD)/tests/libplshim.so), never linked into sluiced.
 *
 * It records what the process has made durable, in POSIX terms, for the
 * files directly inside the directories of SLUICE_PL_DIRS (':'-separated
 * absolute paths), as lines appended (O_APPEND, one write(2) each, so a
 * SIGKILL of the process leaves whole lines) to the file SLUICE_PL_JOURNAL:
 *
 *   F <ino> <size>        fsync/fdatasync of a regular file returned 0: its
 *                         first <size> bytes (the size before the call) are
 *                         on the disk
 *   T <ino> <len>         ftruncate to <len> (taken as reaching the disk
 *                         first: the durable length drops to at most <len>)
 *   D <dir>\t<name>/<ino>\t...
 *                         fsync of a tracked directory returned 0: these
 *                         names (listed before the call) are on the disk
 *
 * Whatever is not in the journal a power cut may take: the test rewinds the
 * directories to it (check_powerloss.c, pl_rewind).  So that a file the
 * process deletes or renames over can be brought back (its deletion not
 * yet made durable by a directory fsync), unlink and rename first hard-link
 * the inode into SLUICE_PL_SHADOW/<ino>.
 *
 * Not modelled: O_TRUNC at open (the disk queue and the file sink do not
 * truncate files they have synced that way), writes into the middle of
 * durable data (segments and output files are appended to), a disk that
 * acknowledges a flush it has not done.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static int journal_fd = -1;

static const char *
env(const char *name)
{
    return getenv(name); // NOLINT(concurrency-mt-unsafe): read only
}

static void
journal(const char *buf, size_t len)
{
    if (journal_fd < 0) {
        const char *p = env("SLUICE_PL_JOURNAL");
        if (p == NULL) {
            return;
        }
        int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            return;
        }
        /* Two threads racing here: one of the fds is kept, the other closed. */
        if (!__sync_bool_compare_and_swap(&journal_fd, -1, fd)) {
            close(fd);
        }
    }
    while (len > 0) {
        ssize_t w = write(journal_fd, buf, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

/* Is dir (no trailing slash) one of SLUICE_PL_DIRS? */
static int
tracked_dir(const char *dir, size_t len)
{
    const char *l = env("SLUICE_PL_DIRS");
    while (l != NULL && *l != '\0') {
        const char *e = strchr(l, ':');
        size_t n = e != NULL ? (size_t)(e - l) : strlen(l);
        if (n == len && memcmp(l, dir, n) == 0) {
            return 1;
        }
        l = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

/* Is path a file directly inside a tracked directory? */
static int
tracked_file(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash > path && tracked_dir(path, (size_t)(slash - path));
}

static int
fd_path(int fd, char *buf, size_t len)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

/* The absolute path of name relative to dirfd. */
static int
at_path(int dirfd, const char *name, char *buf, size_t len)
{
    char dir[PATH_MAX];
    if (name[0] == '/') {
        snprintf(buf, len, "%s", name);
        return 0;
    }
    if (dirfd == AT_FDCWD ? getcwd(dir, sizeof(dir)) == NULL
                          : fd_path(dirfd, dir, sizeof(dir)) < 0) {
        return -1;
    }
    return snprintf(buf, len, "%s/%s", dir, name) < (int)len ? 0 : -1;
}

/* Keeps the inode at path reachable as SLUICE_PL_SHADOW/<ino>. */
static void
shadow(const char *path)
{
    const char *sh = env("SLUICE_PL_SHADOW");
    struct stat st;
    char to[PATH_MAX];
    if (sh == NULL || !tracked_file(path) || lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        return;
    }
    snprintf(to, sizeof(to), "%s/%llu", sh, (unsigned long long)st.st_ino);
    (void)link(path, to); /* EEXIST: kept already */
}

/* The directory's listing as a "D" line, or NULL. */
static char *
dir_record(const char *dir, size_t *outlen)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        closedir(d);
        return NULL;
    }
    len = (size_t)snprintf(buf, cap, "D %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        size_t need = strlen(e->d_name) + 32;
        if (len + need + 2 > cap) {
            cap = 2 * (len + need + 2);
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                closedir(d);
                return NULL;
            }
            buf = nb;
        }
        len += (size_t)snprintf(buf + len, cap - len, "\t%s/%llu", e->d_name,
                                (unsigned long long)e->d_ino);
    }
    closedir(d);
    buf[len++] = '\n';
    *outlen = len;
    return buf;
}

typedef int (*sync_fn)(int);

/* What a successful sync of fd will have made durable, taken before the
 * call: a line to journal after it returns 0, or NULL. */
static char *
before_sync(int fd, size_t *len)
{
    struct stat st;
    char path[PATH_MAX];
    if (fstat(fd, &st) < 0 || fd_path(fd, path, sizeof(path)) < 0) {
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        return tracked_dir(path, strlen(path)) ? dir_record(path, len) : NULL;
    }
    if (!S_ISREG(st.st_mode) || !tracked_file(path)) {
        return NULL;
    }
    char *buf = malloc(64);
    if (buf != NULL) {
        *len = (size_t)snprintf(buf, 64, "F %llu %lld\n", (unsigned long long)st.st_ino,
                                (long long)st.st_size);
    }
    return buf;
}

static int
do_sync(const char *name, int fd)
{
    sync_fn real = (sync_fn)dlsym(RTLD_NEXT, name);
    size_t len = 0;
    char *rec = before_sync(fd, &len);
    int rc = real(fd);
    int saved = errno;
    if (rc == 0 && rec != NULL) {
        journal(rec, len);
    }
    free(rec);
    errno = saved;
    return rc;
}

EXPORT int
fsync(int fd)
{
    return do_sync("fsync", fd);
}

EXPORT int
fdatasync(int fd)
{
    return do_sync("fdatasync", fd);
}

EXPORT int
ftruncate(int fd, off_t len)
{
    int (*real)(int, off_t) = (int (*)(int, off_t))dlsym(RTLD_NEXT, "ftruncate");
    struct stat st;
    char path[PATH_MAX];
    int rc = real(fd, len);
    int saved = errno;
    if (rc == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        fd_path(fd, path, sizeof(path)) == 0 && tracked_file(path)) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "T %llu %lld\n", (unsigned long long)st.st_ino,
                         (long long)len);
        journal(buf, (size_t)n);
    }
    errno = saved;
    return rc;
}

static void
shadow_at(int dirfd, const char *name)
{
    char path[PATH_MAX];
    if (at_path(dirfd, name, path, sizeof(path)) == 0) {
        shadow(path);
    }
}

EXPORT int
unlink(const char *path)
{
    int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    shadow_at(AT_FDCWD, path);
    return real(path);
}

EXPORT int
unlinkat(int dirfd, const char *path, int flags)
{
    int (*real)(int, const char *, int) =
        (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
    if ((flags & AT_REMOVEDIR) == 0) {
        shadow_at(dirfd, path);
    }
    return real(dirfd, path, flags);
}

EXPORT int
rename(const char *from, const char *to)
{
    int (*real)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    shadow_at(AT_FDCWD, from);
    shadow_at(AT_FDCWD, to);
    return real(from, to);
}

EXPORT int
renameat(int fromfd, const char *from, int tofd, const char *to)
{
    int (*real)(int, const char *, int, const char *) =
        (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    shadow_at(fromfd, from);
    shadow_at(tofd, to);
    return real(fromfd, from, tofd, to);
}

EXPORT int
renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags)
{
    int (*real)(int, const char *, int, const char *, unsigned int) =
        (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT, "renameat2");
    shadow_at(fromfd, from);
    shadow_at(tofd, to);
    return real(fromfd, from, tofd, to, flags);
}
