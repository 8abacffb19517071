/*
 * sink_file — appends batches to a file, rotates it, and keeps its content
 * an exact prefix of the event stream (writer thread).
 *
 * DESIGN
 * One writev per batch of whole chunks, O_APPEND, so a reader (tail -F)
 * never sees a partial line between writes.  When the kernel takes only
 * part of a batch (a full disk, a file size limit), the sink reports the
 * whole lines written and remembers the head of the torn line (sink.h); the
 * next write continues from the exact byte where the kernel stopped, in the
 * same file, so the file never holds a half line followed by anything but
 * its other half.  Rotation and a switch to a new template path wait until
 * the torn line is complete.  A file that ends in a torn line when sluiced
 * opens it (after a crash or a forced stop) is cut back to its last
 * newline: that event was never written whole, and its fragment would
 * damage the line written after it.  When the sink must leave a file while
 * a line is torn (SIGHUP, the file renamed or deleted under it), it cuts
 * the head off the old file (ftruncate on the old descriptor) and writes
 * the event whole to the new one: the old file ends in a whole line and
 * every event is in exactly one file.  Cutting needs no disk space, which
 * finishing the line in the old file would, and the disk is usually full
 * when a line is torn.
 *
 * Rotation (rotate_bytes, rotate_interval on UTC boundaries, or the path
 * template's expansion changing) happens only between lines:
 *   1. link(active, "<active>.<stamp>"), the stamp being when the file was
 *      started; EEXIST (or another form of that name on disk) bumps the
 *      stamp by 1 ms, so no name is ever reused;
 *   2. create ".<name>.sluice-new" next to it and rename() it over the
 *      active name, so the active path always exists and `tail -F` sees the
 *      new file replace the old one (with a template change, the new path
 *      is opened and the old name unlinked instead);
 *   3. switch descriptors.
 * Between 1 and 3 the rotated file has two links; the housekeeper
 * (rotate.c), which compresses and deletes rotated files on its own
 * thread, leaves such files alone.  A crash between 1 and 2 is finished at
 * the next open (the active file has a rotated twin).  If a rotation
 * fails, the sink keeps writing the active file and tries again a second
 * later: an event is never held back for the sake of a file name.
 *
 * A file renamed or deleted under us is noticed by tick() (stat of the path
 * vs fstat of the descriptor: within a second while events flow, before the
 * next write after the writer rested) and a new one is opened;
 * SIGHUP reopens too.  A deleted file (no link left: `rm`, or its folder
 * removed) is also noticed before every write (an fstat), so no event goes
 * where no reader can find it, and a file truncated under us (logrotate's
 * copytruncate) has its size count set back.  When no file can be opened
 * at the path (the folder is gone and create_dirs is off, EACCES, EMFILE),
 * the sink writes on to its old file only while that file is still at the
 * path; a moved or deleted one is closed, and the sink fails (health
 * failing, writes answered RETRY: the events are held) until the tick or a
 * retried write can open the path again.  Write and fdatasync errors are
 * answered with RETRY (the writer keeps the bytes and retries with
 * backoff) and mark the sink's health failing; the first complete write
 * marks it ok again.
 *
 * fsync policy (docs/configuration.md): none, batch (fdatasync after every
 * batch), interval (fdatasync at most every fsync_interval when dirty).
 * At stop and before a rotation the file is fdatasync'ed; with fsync other
 * than none, directories are fsync'ed after a file is created or renamed.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "sink/compress.h"
#include "sink/pathtmpl.h"
#include "sink/rotate.h"
#include "sink/sink_file.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "sluice/sink.h"
#include "util/le.h"

#define FILE_LOG_MS 10000
#define FILE_ROTATE_RETRY_MS 1000
#define FILE_NAME_TRIES 1000
#define FILE_TAIL_SCAN (64 * 1024)

struct file_sink {
    int fd;
    dev_t dev;
    ino_t ino;
    char path[PATH_MAX];    /* the active file: the template's expansion at its open */
    uint64_t size;          /* bytes in it */
    int64_t started_ms;     /* when it was started: the stamp of its rotated name */
    int64_t next_rotate_ms; /* next rotate_interval boundary (wall clock); 0 = none */
    int64_t tmpl_slot;      /* wall clock / template period when path was expanded */
    size_t partial;         /* head of a torn line already in the file (sink.h) */
    int open_err;           /* errno of the failed open while fd < 0 */
    bool dirty;             /* written since the last fdatasync */
    /* The active file is a regular file on a local file system (file_local):
     * a write to it cannot block for long, so a producer may run it (sink.h
     * may_inline).  Set by file_install; read under the writer's turn. */
    atomic_bool local;
    uint64_t last_sync_ms;
    uint64_t rotate_retry_ms; /* monotonic: no rotation attempt before this */
    /* The checkpoint (sink.h): the file and its length where the chunk
     * (queue record) the committed position is in started. */
    dev_t ck_dev;
    ino_t ck_ino;
    uint64_t ck_len;
    bool ck_set;
    struct sl_pathtmpl_info tmpl;
    struct sl_rotate *rot; /* the housekeeper, or NULL when there is nothing to keep */
    struct sl_ratelimit rl;
};

static void
file_warn(struct sl_sink *s, struct file_sink *f, const char *what, const char *path)
{
    uint64_t sup = 0;
    int saved = errno;

    if (sl_ratelimit_ok(&f->rl, sl_now_ms(), &sup)) {
        errno = saved;
        log_warn("sink \"%s\": %s %s", s->cfg->name, what, path);
    }
    errno = saved;
}

/* mkdir -p of path's directory with dir_mode (create_dirs).  0 / -1. */
static int
file_mkdirs(struct sl_sink *s, const char *path)
{
    char dir[PATH_MAX];
    size_t len;

    if (!sl_sink_file_config(s->cfg)->create_dirs) {
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    len = strlen(dir);
    while (len > 0 && dir[len - 1] != '/') {
        len--;
    }
    dir[len] = '\0';
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/' && p[1] != '\0') {
            continue;
        }
        char save = *p;
        if (save == '/') {
            *p = '\0';
        }
        if (mkdir(dir, sl_sink_file_config(s->cfg)->dir_mode) == 0) {
            (void)chmod(
                dir,
                sl_sink_file_config(s->cfg)->dir_mode); /* exactly dir_mode, whatever the umask */
            if (sl_sink_file_config(s->cfg)->fsync != SL_FSYNC_NONE) {
                sl_fsync_dir(dir);
            }
        } else if (errno != EEXIST) {
            return -1;
        }
        *p = save;
    }
    return 0;
}

static int64_t
file_boundary_after(const struct sl_sink *s, int64_t t)
{
    int64_t iv = (int64_t)sl_sink_file_config(s->cfg)->rotate_interval_ms;

    return iv > 0 ? (t / iv + 1) * iv : 0;
}

/* When the file on fd was started: now for an empty one, else its birth
 * time (or, where the file system has none, its last change). */
static int64_t
file_started(int fd, const struct stat *st, int64_t now)
{
    struct statx stx;

    if (st->st_size == 0) {
        return now;
    }
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx) == 0 && (stx.stx_mask & STATX_BTIME) &&
        stx.stx_btime.tv_sec > 0) {
        return (int64_t)stx.stx_btime.tv_sec * 1000 + stx.stx_btime.tv_nsec / 1000000;
    }
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/*
 * A file that does not end in '\n' ends in the head of an event that was
 * never written whole (a crash or a forced stop during a short write):
 * cut it back to its last newline.  Returns the new size.
 */
static off_t
file_cut_torn_tail(struct sl_sink *s, int fd, const char *path, off_t size)
{
    char buf[FILE_TAIL_SCAN];
    off_t end = size;

    while (end > 0) {
        size_t n = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);
        ssize_t r = pread(fd, buf, n, end - (off_t)n);
        if (r != (ssize_t)n) {
            return size; /* cannot read it (a write-only file): leave it */
        }
        if (end == size && buf[n - 1] == '\n') {
            return size;
        }
        const char *nl = memrchr(buf, '\n', n);
        if (nl != NULL) {
            end = end - (off_t)n + (nl - buf) + 1;
            break;
        }
        end -= (off_t)n;
    }
    if (ftruncate(fd, end) < 0) {
        log_warn("sink \"%s\": %s ends in a torn line; cannot cut it", s->cfg->name, path);
        return size;
    }
    log_warnx("sink \"%s\": %s ended in a torn line (an event never written whole); cut "
              "%lld byte(s) back to the last complete line",
              s->cfg->name, path, (long long)(size - end));
    return end;
}

/*
 * Opens path for appending (creating it, and its directories with
 * create_dirs).  Returns fd with *st filled, or -1 (errno set).
 */
static int
file_open_path(struct sl_sink *s, const char *path, struct stat *st)
{
    int fd, flags = O_APPEND | O_CLOEXEC;
    bool created = false;

    if (file_mkdirs(s, path) < 0) {
        return -1;
    }
    fd = open(path, O_RDWR | flags);
    if (fd < 0 && errno == EACCES) {
        fd = open(path, O_WRONLY | flags);
    }
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | flags, sl_sink_file_config(s->cfg)->file_mode);
        created = fd >= 0;
        if (fd < 0 && errno == EEXIST) {
            fd = open(path, O_WRONLY | flags);
        }
    }
    if (fd < 0) {
        return -1;
    }
    if (created) {
        (void)fchmod(
            fd, sl_sink_file_config(s->cfg)->file_mode); /* exactly file_mode, whatever the umask */
        if (sl_sink_file_config(s->cfg)->fsync != SL_FSYNC_NONE) {
            sl_fsync_dir(path);
        }
    }
    if (fstat(fd, st) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/*
 * The sink is about to leave its file in the middle of a line (see the
 * DESIGN comment): cuts the torn head off, so the file ends in a whole line
 * and the event, which the writer still holds, goes whole to the next file.
 */
static void
file_cut_head(struct sl_sink *s, struct file_sink *f)
{
    size_t head = f->partial;
    struct stat st;

    if (f->partial == 0 || f->fd < 0) {
        return;
    }
    f->partial = 0;
    if (fstat(f->fd, &st) < 0) {
        log_warn("sink \"%s\": cannot cut the torn line at the end of the file that was %s",
                 s->cfg->name, f->path);
    } else if (!S_ISREG(st.st_mode)) {
        return; /* a FIFO or a device: what went cannot be taken back */
    } else if ((uint64_t)st.st_size == f->size && f->size >= head) {
        if (ftruncate(f->fd, (off_t)(f->size - head)) < 0) {
            log_warn("sink \"%s\": cannot cut the torn line at the end of the file that was %s",
                     s->cfg->name, f->path);
        } else {
            log_warnx("sink \"%s\": cut the %zu-byte head of an event torn by a short write off "
                      "the file that was %s; the event is written whole to the next file",
                      s->cfg->name, head, f->path);
            if (sl_sink_file_config(s->cfg)->fsync != SL_FSYNC_NONE) {
                (void)fdatasync(f->fd);
            }
        }
    } else if (st.st_size > 0) {
        /* Someone else changed the file: cut back to its last newline. */
        (void)file_cut_torn_tail(s, f->fd, f->path, st.st_size);
    }
}

/* Closes the active file for good (moved or deleted, and nothing can be
 * opened at the path): the sink writes nothing until a file is opened. */
static void
file_leave(struct sl_sink *s, struct file_sink *f)
{
    file_cut_head(s, f);
    close(f->fd);
    f->fd = -1;
    f->dirty = false;
    atomic_store_explicit(&f->local, false, memory_order_relaxed); /* no file: not inline */
}

/* Network and user-space file systems: a write to them can block for as
 * long as the server or the daemon behind them takes (a hung NFS mount). */
static bool
file_fs_remote(long type)
{
    switch ((unsigned long)type & 0xffffffffUL) {
    case NFS_SUPER_MAGIC:
    case SMB_SUPER_MAGIC:
    case 0xFF534D42UL: /* CIFS */
    case 0xFE534D42UL: /* SMB2 */
    case 0x65735546UL: /* FUSE */
    case CODA_SUPER_MAGIC:
    case AFS_SUPER_MAGIC:
    case AFS_FS_MAGIC:
    case NCP_SUPER_MAGIC:
    case V9FS_MAGIC:
    case CEPH_SUPER_MAGIC:
    case 0x01161970UL: /* GFS2 */
    case OCFS2_SUPER_MAGIC:
    case 0x0BD00BD0UL: /* Lustre */
    case 0x13661366UL: /* OrangeFS */
    case 0x47504653UL: /* GPFS */
        return true;
    default:
        return false;
    }
}

/* True when fd is a regular file on a local file system: a write to it
 * takes no longer than the page cache (the only kind a producer may write
 * to: sink.h may_inline).  A FIFO or a device waits for its reader. */
static bool
file_local(int fd, const struct stat *st)
{
    struct statfs fs;

    if (!S_ISREG(st->st_mode) || fstatfs(fd, &fs) < 0) {
        return false;
    }
    return !file_fs_remote((long)fs.f_type);
}

/* Makes fd (just opened at path) the active file.  started: when a new,
 * empty file counts as started (a rotation boundary), or -1 for now. */
static void
file_install(struct sl_sink *s, struct file_sink *f, int fd, const struct stat *st,
             const char *path, int64_t now, int64_t started)
{
    bool same = f->fd >= 0 && st->st_dev == f->dev && st->st_ino == f->ino;
    off_t size = st->st_size;

    if (!same && size > 0) {
        size = file_cut_torn_tail(s, fd, path, size);
    }
    if (f->fd >= 0) {
        if (!same) {
            file_cut_head(s, f);
        }
        close(f->fd);
    }
    f->fd = fd;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    atomic_store_explicit(&f->local, file_local(fd, st), memory_order_relaxed);
    if (f->path != path) {
        snprintf(f->path, sizeof(f->path), "%s", path);
    }
    f->size = (uint64_t)size;
    if (!same) {
        /* A torn line's head was cut from the old file; the line is
         * written whole to this one. */
        f->partial = 0;
        f->dirty = false;
        f->started_ms = started >= 0 && size == 0 ? started : file_started(fd, st, now);
        f->next_rotate_ms = file_boundary_after(s, f->started_ms);
    }
    if (f->tmpl.period_ms > 0) {
        f->tmpl_slot = now / (int64_t)f->tmpl.period_ms;
    }
}

static enum sl_sink_result
file_sync(struct sl_sink *s, struct file_sink *f)
{
    uint64_t t0 = sl_now_ns();
    int r = fdatasync(f->fd);
    sl_hist_observe(&s->stats->fsync_ns, sl_now_ns() - t0, 1);
    if (r < 0 && errno != EINVAL) {
        int err = errno;
        file_warn(s, f, "fdatasync", f->path);
        sl_sink_health_fail(s, SL_SINK_OP_FSYNC, err, -1);
        errno = err;
        return SL_SINK_RETRY;
    }
    f->dirty = false;
    f->last_sync_ms = sl_now_ms();
    sl_counter_add(&s->stats->fsyncs, 1);
    return SL_SINK_OK;
}

/* True while the active file is still the one at its path. */
static bool
file_at_path(const struct file_sink *f)
{
    struct stat st;

    return f->fd >= 0 && stat(f->path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
}

/*
 * No file could be opened at the path (err).  An active file still at its
 * path is written on (a failed SIGHUP reopen changes nothing); one that was
 * moved or deleted is left, so that nothing is written where no reader
 * looks for it, and the sink fails (its events held and retried) until the
 * path can be opened again.
 */
static void
file_open_failed(struct sl_sink *s, struct file_sink *f, int err)
{
    if (file_at_path(f)) {
        errno = err;
        file_warn(s, f, "cannot reopen (writing on to the file still there)", f->path);
        return;
    }
    if (f->fd >= 0) {
        file_leave(s, f);
    }
    f->open_err = err;
    errno = err;
    if (err == ENOENT && !sl_sink_file_config(s->cfg)->create_dirs) {
        file_warn(s, f,
                  "cannot open (events held; will retry; its folder is missing and "
                  "create_dirs is off)",
                  f->path);
    } else {
        file_warn(s, f, "cannot open (events held; will retry)", f->path);
    }
    sl_sink_health_fail(s, SL_SINK_OP_OPEN, err, -1);
}

/* True when some form of the rotated name base is on disk. */
static bool
file_name_taken(const char *base)
{
    static const char *const forms[] = {"", ".gz", ".zst", ".gz.tmp", ".zst.tmp"};
    char p[PATH_MAX + 32];

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", base, forms[i]);
        if (access(p, F_OK) == 0 || errno != ENOENT) {
            return true;
        }
    }
    return false;
}

/* link(active, a fresh "<active>.<stamp>"), never reusing a name.  0 / -1. */
static int
file_link_rotated(struct file_sink *f, char *rotated, size_t len)
{
    int64_t t = f->started_ms;
    char stamp[SL_PATHTMPL_STAMP_LEN + 1];

    for (int i = 0; i < FILE_NAME_TRIES; i++, t++) {
        sl_pathtmpl_stamp(t, stamp);
        if ((size_t)snprintf(rotated, len, "%s.%s", f->path, stamp) >= len) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (file_name_taken(rotated)) {
            continue;
        }
        if (link(f->path, rotated) == 0) {
            return 0;
        }
        if (errno != EEXIST) {
            return -1;
        }
    }
    errno = EEXIST;
    return -1;
}

/*
 * Creates a fresh, empty file and renames it over path.  Returns its fd
 * (*st filled) or -1.
 */
static int
file_replace(struct sl_sink *s, const char *path, struct stat *st)
{
    char tmp[PATH_MAX + 32], dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.sluice-new", sl_path_dir(path, dir, sizeof(dir)),
                         slash != NULL ? slash + 1 : path) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    (void)unlink(tmp); /* left by a crash */
    fd = open(tmp, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
              sl_sink_file_config(s->cfg)->file_mode);
    if (fd < 0) {
        return -1;
    }
    (void)fchmod(fd, sl_sink_file_config(s->cfg)->file_mode);
    if (fstat(fd, st) < 0 || rename(tmp, path) < 0) {
        int saved = errno;
        close(fd);
        (void)unlink(tmp);
        errno = saved;
        return -1;
    }
    return fd;
}

/*
 * Rotates the active file (see the DESIGN comment); next is the new active
 * path (NULL: the same).  Returns 0, or -1 when nothing changed.
 */
static int
file_rotate(struct sl_sink *s, struct file_sink *f, int64_t now, const char *next, int64_t started)
{
    char rotated[PATH_MAX + 32];
    struct stat st;
    int fd;

    if (f->dirty && sl_sink_file_config(s->cfg)->fsync != SL_FSYNC_NONE &&
        file_sync(s, f) != SL_SINK_OK) {
        return -1;
    }
    if (file_link_rotated(f, rotated, sizeof(rotated)) < 0) {
        if (errno == ENOENT) {
            /* The active file was moved or deleted under us: just open a new one. */
            fd = file_open_path(s, next != NULL ? next : f->path, &st);
            if (fd < 0) {
                file_open_failed(s, f, errno);
                return -1;
            }
            file_install(s, f, fd, &st, next != NULL ? next : f->path, now, -1);
            return 0;
        }
        file_warn(s, f, "cannot rotate (will retry; writing on)", f->path);
        return -1;
    }
    if (next == NULL) {
        fd = file_replace(s, f->path, &st);
    } else {
        fd = file_open_path(s, next, &st);
    }
    if (fd < 0) {
        int saved = errno;
        (void)unlink(rotated);
        errno = saved;
        file_warn(s, f, "cannot create a new file for rotation (will retry; writing on)",
                  next != NULL ? next : f->path);
        return -1;
    }
    if (next != NULL) {
        (void)unlink(f->path); /* its content lives on under the rotated name */
    }
    if (sl_sink_file_config(s->cfg)->fsync != SL_FSYNC_NONE) {
        sl_fsync_dir(rotated);
        if (next != NULL) {
            sl_fsync_dir(next);
        }
    }
    log_info("sink \"%s\": rotated %s to %s", s->cfg->name, f->path, rotated);
    file_install(s, f, fd, &st, next != NULL ? next : f->path, now, started);
    sl_counter_add(&s->stats->rotations, 1);
    if (f->rot != NULL) {
        sl_rotate_kick(f->rot);
    }
    return 0;
}

/*
 * Rotates or switches paths when one is due.  Only between lines (the
 * caller checks f->partial == 0).  next_len: the bytes about to be written
 * up to the end of their first line (0 when nothing is).
 */
static void
file_maybe_rotate(struct sl_sink *s, struct file_sink *f, int64_t now, size_t next_len)
{
    const struct sl_sink_file_config *c = sl_sink_file_config(s->cfg);
    char next[PATH_MAX];
    bool due_time, due_size, moved = false;

    if (f->fd < 0 || (f->rotate_retry_ms != 0 && sl_now_ms() < f->rotate_retry_ms)) {
        return;
    }
    if (f->next_rotate_ms != 0 && f->next_rotate_ms - now > (int64_t)c->rotate_interval_ms) {
        f->next_rotate_ms = file_boundary_after(s, now); /* the clock went back */
    }
    due_time = f->next_rotate_ms != 0 && now >= f->next_rotate_ms;
    due_size =
        c->rotate_bytes > 0 && next_len > 0 && f->size > 0 && f->size + next_len > c->rotate_bytes;
    if (f->tmpl.period_ms > 0 && now / (int64_t)f->tmpl.period_ms != f->tmpl_slot) {
        if (sl_pathtmpl_expand(c->path, c->source_name, now, next, sizeof(next)) < 0) {
            return;
        }
        moved = strcmp(next, f->path) != 0;
        if (!moved) {
            f->tmpl_slot = now / (int64_t)f->tmpl.period_ms;
        }
    }
    if (!due_time && !due_size && !moved) {
        return;
    }
    /* A file started by the clock starts at its boundary: hourly files are
     * named on the hour. */
    int64_t started = -1;
    if (!due_size) {
        int64_t unit = due_time ? (int64_t)c->rotate_interval_ms : (int64_t)f->tmpl.period_ms;
        started = now - now % unit;
    }
    if (f->size == 0) {
        /* Nothing to keep: an empty file is not rotated. */
        if (moved) {
            struct stat st;
            int fd = file_open_path(s, next, &st);
            if (fd < 0) {
                file_warn(s, f, "cannot open", next);
                f->rotate_retry_ms = sl_now_ms() + FILE_ROTATE_RETRY_MS;
                return;
            }
            (void)unlink(f->path);
            file_install(s, f, fd, &st, next, now, started);
        } else if (started >= 0) {
            f->started_ms = started;
        }
        f->next_rotate_ms = file_boundary_after(s, now);
        return;
    }
    if (file_rotate(s, f, now, moved ? next : NULL, started) < 0) {
        f->rotate_retry_ms = sl_now_ms() + FILE_ROTATE_RETRY_MS;
        return;
    }
    f->rotate_retry_ms = 0;
}

/*
 * A crash between link() and rename() of a rotation leaves the active file
 * with a rotated twin (two links to one inode): finish that rotation.
 */
static void
file_finish_rotation(struct sl_sink *s, struct file_sink *f, const struct stat *st, int64_t now)
{
    char pattern[PATH_MAX * 2];
    glob_t gl;
    struct stat nst;
    int len = 0;
    for (const char *p = f->path; *p != '\0' && len < (int)sizeof(pattern) - 16; p++) {
        if (strchr("*?[]\\", *p) != NULL) {
            pattern[len++] = '\\';
        }
        pattern[len++] = *p;
    }
    memcpy(pattern + len, ".[0-9]*", sizeof(".[0-9]*"));
    /* No GLOB_TILDE: glob touches no shared state here but the locale. */
    if (glob(pattern, GLOB_NOSORT, NULL, &gl) != 0) { /* NOLINT(concurrency-mt-unsafe) */
        globfree(&gl);
        return;
    }
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        struct stat rst;
        if (lstat(gl.gl_pathv[i], &rst) == 0 && rst.st_ino == st->st_ino &&
            rst.st_dev == st->st_dev) {
            int fd = file_replace(s, f->path, &nst);
            if (fd >= 0) {
                log_info("sink \"%s\": finished an interrupted rotation of %s to %s", s->cfg->name,
                         f->path, gl.gl_pathv[i]);
                file_install(s, f, fd, &nst, f->path, now, -1);
            }
            break;
        }
    }
    globfree(&gl);
}

static int
file_open(struct sl_sink *s)
{
    struct file_sink *f = calloc(1, sizeof(*f));
    const struct sl_sink_file_config *c = sl_sink_file_config(s->cfg);
    char why[256], path[PATH_MAX];
    struct stat st;
    int64_t now = sl_sink_now(s);
    int fd;

    if (f == NULL) {
        return -1;
    }
    f->fd = -1;
    f->rl.interval_ms = FILE_LOG_MS;
    f->last_sync_ms = sl_now_ms(); /* fsync_interval counts from the open */
    s->priv = f;
    if (sl_pathtmpl_check(c->path, &f->tmpl, why, sizeof(why)) < 0 ||
        sl_pathtmpl_expand(c->path, c->source_name, now, path, sizeof(path)) < 0) {
        log_warnx("sink \"%s\": path %s: %s", s->cfg->name, c->path, why);
        return -1;
    }
    fd = file_open_path(s, path, &st);
    if (fd < 0) {
        if (errno == ENOENT) {
            log_warnx("sink \"%s\": cannot open %s: the folder does not exist%s", s->cfg->name,
                      path, c->create_dirs ? "" : " (create it, or set create_dirs = yes)");
        } else {
            log_warn("sink \"%s\": cannot open %s", s->cfg->name, path);
        }
        return -1;
    }
    file_install(s, f, fd, &st, path, now, -1);
    if (st.st_nlink > 1) {
        file_finish_rotation(s, f, &st, now);
    }
    if (c->compress != SL_COMPRESS_NONE || c->max_files > 0 || c->max_age_ms > 0) {
        f->rot = sl_rotate_new(s->cfg, s->clock, s->stats);
        if (f->rot == NULL || sl_rotate_start(f->rot) < 0) {
            log_warn("sink \"%s\": cannot start the housekeeping thread", s->cfg->name);
            return -1;
        }
    }
    return 0;
}

/* Opens the current expansion after a failed open or a vanished file. */
static int
file_open_again(struct sl_sink *s, struct file_sink *f, int64_t now)
{
    char path[PATH_MAX];
    struct stat st;
    int fd;

    if (sl_pathtmpl_expand(sl_sink_file_config(s->cfg)->path,
                           sl_sink_file_config(s->cfg)->source_name, now, path, sizeof(path)) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = file_open_path(s, path, &st);
    if (fd < 0) {
        return -1;
    }
    file_install(s, f, fd, &st, path, now, -1);
    return 0;
}

static void
file_reopen(struct sl_sink *s)
{
    struct file_sink *f = s->priv;
    bool was_open = f->fd >= 0;

    if (f->dirty && f->fd >= 0 && sl_sink_file_config(s->cfg)->fsync != SL_FSYNC_NONE) {
        (void)file_sync(s, f);
    }
    if (file_open_again(s, f, sl_sink_now(s)) < 0) {
        file_open_failed(s, f, errno);
        return;
    }
    sl_counter_add(&s->stats->reopens, 1);
    log_info("sink \"%s\": reopened %s", s->cfg->name, f->path);
    if (!was_open) {
        sl_sink_health_ok(s); /* it failed to open; now it can write */
    }
}

/*
 * Before each write (one fstat): a deleted active file is left at once
 * rather than written where no reader can find it (a renamed one is still
 * readable and waits for the tick); a file truncated under us (logrotate's
 * copytruncate) gets its size count back in step, so size rotation does
 * not come early.  Returns false, having changed nothing, when the file
 * was deleted and the write runs inline (sl_sink_inline): the writer
 * thread reopens it.
 */
static bool
file_check(struct sl_sink *s, struct file_sink *f, bool inline_turn)
{
    struct stat st;

    if (f->fd < 0 || fstat(f->fd, &st) < 0) {
        return true;
    }
    if (st.st_nlink == 0 && !file_at_path(f)) {
        if (inline_turn) {
            return false;
        }
        log_info("sink \"%s\": %s was removed", s->cfg->name, f->path);
        file_reopen(s);
        return true;
    }
    if (!S_ISREG(st.st_mode)) {
        return true; /* a FIFO or a device has no size to keep */
    }
    if ((uint64_t)st.st_size < f->size) {
        /* A torn line's head went with the truncation: the line is written
         * whole again (after a whole line, should the cut fall in one). */
        log_info("sink \"%s\": %s was truncated; writing on at its end", s->cfg->name, f->path);
        f->partial = 0;
        f->size =
            (uint64_t)(st.st_size > 0 ? file_cut_torn_tail(s, f->fd, f->path, st.st_size) : 0);
    } else {
        f->size = (uint64_t)st.st_size;
    }
    return true;
}

/* For a write inline (sl_sink_inline), after file_check: true when this
 * write would open or rotate a file, which the writer thread does (an open
 * on a hung mount, or of a FIFO now at the path, waits).  Errs towards
 * true: the writer thread then merely writes. */
static bool
file_needs_writer(struct sl_sink *s, struct file_sink *f, int64_t now, size_t next_len)
{
    const struct sl_sink_file_config *c = sl_sink_file_config(s->cfg);
    if (f->fd < 0 || !atomic_load_explicit(&f->local, memory_order_relaxed)) {
        return true;
    }
    if (f->partial > 0) {
        return false; /* a torn line is finished in this file first */
    }
    return (f->next_rotate_ms != 0 && now >= f->next_rotate_ms) ||
           (c->rotate_bytes > 0 && next_len > 0 && f->size > 0 &&
            f->size + next_len > c->rotate_bytes) ||
           (f->tmpl.period_ms > 0 && now / (int64_t)f->tmpl.period_ms != f->tmpl_slot);
}

static enum sl_sink_result
file_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    struct file_sink *f = s->priv;
    const struct sl_sink_file_config *c = sl_sink_file_config(s->cfg);
    struct iovec sub[SL_SINK_IOV_MAX];
    int64_t now = sl_sink_now(s);
    size_t total = sl_iov_total(iov, iovcnt), start, limit;
    ssize_t n;
    int cnt;

    *written = 0;
    bool inline_turn = sl_sink_inline();
    if (!file_check(s, f, inline_turn) ||
        (inline_turn && file_needs_writer(s, f, now, sl_iov_line_end(iov, iovcnt, 0)))) {
        return SL_SINK_YIELD;
    }
    if (f->fd < 0 && file_open_again(s, f, now) < 0) {
        file_open_failed(s, f, errno);
        errno = f->open_err;
        return SL_SINK_RETRY;
    }
    if (f->partial == 0) {
        file_maybe_rotate(s, f, now, sl_iov_line_end(iov, iovcnt, 0));
        if (f->fd < 0) {
            errno = f->open_err; /* it was gone, and no new one could be opened */
            return SL_SINK_RETRY;
        }
    }
    start = f->partial;
    if (start > 0) {
        limit = sl_iov_line_end(iov, iovcnt, start); /* finish the torn line first */
    } else if (c->rotate_bytes > 0 && f->rotate_retry_ms == 0) {
        /* Whole lines that fit; at least one, for a line larger than
         * rotate_bytes.  (After a failed rotation: everything, until the
         * next attempt.) */
        uint64_t room = c->rotate_bytes > f->size ? c->rotate_bytes - f->size : 0;
        limit = sl_iov_last_line_end(iov, iovcnt, 0, room < total ? (size_t)room : total);
        if (limit == 0) {
            limit = sl_iov_line_end(iov, iovcnt, 0);
        }
    } else {
        limit = total;
    }
    cnt = sl_iov_slice(iov, iovcnt, start, limit - start, sub, SL_SINK_IOV_MAX);
    do {
        n = writev(f->fd, sub, cnt);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int err = n < 0 ? errno : EIO;
        file_warn(s, f, "write to (will retry)", f->path);
        sl_sink_health_fail(s, SL_SINK_OP_WRITE, err, -1);
        errno = err;
        return SL_SINK_RETRY;
    }
    uint64_t base = f->size - start; /* the file's length where iov[0] starts */
    f->size += (uint64_t)n;
    f->dirty = true;
    *written = sl_sink_account(iov, iovcnt, total, start + (size_t)n, &f->partial);
    /* Every chunk this write completed: the next one starts at its end. */
    size_t end = 0;
    for (int i = 0; i < iovcnt && end + iov[i].iov_len <= *written; i++) {
        end += iov[i].iov_len;
        f->ck_dev = f->dev;
        f->ck_ino = f->ino;
        f->ck_len = base + end;
        f->ck_set = true;
    }
    if (start + (size_t)n == limit) {
        sl_sink_health_ok(s);
    }
    return SL_SINK_OK;
}

/* The checkpoint: "SLF1", u64 dev, u64 ino, u64 length (little endian). */
#define FILE_CKPT_LEN 28

static size_t
file_checkpoint(struct sl_sink *s, uint8_t *buf, size_t cap)
{
    struct file_sink *f = s->priv;
    if (!f->ck_set || cap < FILE_CKPT_LEN) {
        return 0;
    }
    memcpy(buf, "SLF1", 4);
    sl_put_le64(buf + 4, (uint64_t)f->ck_dev);
    sl_put_le64(buf + 12, (uint64_t)f->ck_ino);
    sl_put_le64(buf + 20, f->ck_len);
    return FILE_CKPT_LEN;
}

/*
 * The queue replays from the record its committed position is in; what the
 * last run wrote of it and after it is in the file already.  Same file:
 * cut it back to the checkpoint's length, so the replay writes those bytes
 * once.  Another file (rotated or renamed since, a new template path): the
 * replay goes to the file at the path as it is (duplicates, said in the
 * log).
 */
static void
file_restore(struct sl_sink *s, const uint8_t *blob, size_t len)
{
    struct file_sink *f = s->priv;
    if (f->fd < 0) {
        return;
    }
    /* Until a checkpoint says otherwise: the file as this run found it is
     * where the queue's position starts (a first run, a lost state file, a
     * rotated file).  On disk before the first write (sink.h restore), so
     * a crash before the first commit's checkpoint cuts the file back to
     * it instead of leaving what the replay writes again. */
    f->ck_dev = f->dev;
    f->ck_ino = f->ino;
    f->ck_len = f->size;
    f->ck_set = true;
    if (blob == NULL || len != FILE_CKPT_LEN || memcmp(blob, "SLF1", 4) != 0) {
        return;
    }
    uint64_t dev = sl_get_le64(blob + 4), ino = sl_get_le64(blob + 12), at = sl_get_le64(blob + 20);
    if (dev != (uint64_t)f->dev || ino != (uint64_t)f->ino) {
        log_warnx("sink \"%s\": the file written at the last committed position is no longer "
                  "%s (rotated or renamed): what the queue replays may be in it already "
                  "(duplicates)",
                  s->cfg->name, f->path);
        return;
    }
    if (f->size < at) {
        log_warnx("sink \"%s\": %s is shorter (%llu bytes) than at the last committed position "
                  "(%llu bytes): it lost data outside sluiced (a power loss without fsync, a "
                  "truncation); the replay goes on from its end",
                  s->cfg->name, f->path, (unsigned long long)f->size, (unsigned long long)at);
        return;
    }
    if (f->size > at) {
        if (ftruncate(f->fd, (off_t)at) < 0) {
            log_warn("sink \"%s\": cannot cut %s back to the committed position (duplicates)",
                     s->cfg->name, f->path);
            return;
        }
        log_info("sink \"%s\": %s cut back by %llu bytes to the committed position: the queue "
                 "writes them again, once",
                 s->cfg->name, f->path, (unsigned long long)(f->size - at));
        f->size = at;
    }
    f->ck_dev = f->dev;
    f->ck_ino = f->ino;
    f->ck_len = at;
    f->ck_set = true;
}

static enum sl_sink_result
file_flush(struct sl_sink *s, bool final)
{
    struct file_sink *f = s->priv;
    if (!f->dirty || f->fd < 0) {
        return SL_SINK_OK;
    }
    if (final || sl_sink_file_config(s->cfg)->fsync == SL_FSYNC_BATCH) {
        return file_sync(s, f);
    }
    if (sl_sink_file_config(s->cfg)->fsync == SL_FSYNC_INTERVAL &&
        sl_now_ms() - f->last_sync_ms >= sl_sink_file_config(s->cfg)->fsync_interval_ms) {
        return file_sync(s, f);
    }
    return SL_SINK_OK;
}

/* min(next, the ms from now until at), at and now on one clock. */
static uint64_t
file_sooner(uint64_t next, int64_t at, int64_t now)
{
    uint64_t d = at > now ? (uint64_t)(at - now) : 0;
    return d < next ? d : next;
}

/*
 * The writer's tick (sink.h).  Needs another one only for what can fall
 * due with nothing written: a failed open to retry, a dirty file under
 * fsync = interval, the next rotate_interval boundary or path template
 * change (so an idle file is still rotated on the hour).  A file renamed
 * or removed while nothing is written needs none: the writer ticks before
 * the next write, which so goes to the new file.
 */
static uint64_t
file_tick(struct sl_sink *s, uint64_t now_ms)
{
    struct file_sink *f = s->priv;
    const struct sl_sink_file_config *c = sl_sink_file_config(s->cfg);
    struct stat st;

    if (f->fd < 0) {
        if (file_open_again(s, f, sl_sink_now(s)) == 0) {
            log_info("sink \"%s\": opened %s", s->cfg->name, f->path);
            sl_sink_health_ok(s); /* it failed to open; now it can write */
        } else {
            file_open_failed(s, f, errno);
            return 0; /* retried at the next tick */
        }
    } else if (stat(f->path, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
        log_info("sink \"%s\": %s was moved or removed", s->cfg->name, f->path);
        file_reopen(s);
        if (f->fd < 0) {
            return 0;
        }
    }
    int64_t now = sl_sink_now(s);
    if (f->partial == 0) {
        file_maybe_rotate(s, f, now, 0);
    }
    if (f->dirty && c->fsync == SL_FSYNC_INTERVAL &&
        now_ms - f->last_sync_ms >= c->fsync_interval_ms) {
        (void)file_sync(s, f);
    }
    uint64_t next = SL_SINK_TICK_NONE;
    if (f->dirty && c->fsync == SL_FSYNC_INTERVAL) {
        next =
            file_sooner(next, (int64_t)(f->last_sync_ms + c->fsync_interval_ms), (int64_t)now_ms);
    }
    if (f->next_rotate_ms != 0) {
        next = file_sooner(next, f->next_rotate_ms, now); /* 0 after a failed rotation */
    }
    if (f->tmpl.period_ms > 0) {
        next = file_sooner(next, (f->tmpl_slot + 1) * (int64_t)f->tmpl.period_ms, now);
    }
    return next;
}

static void
file_close(struct sl_sink *s)
{
    struct file_sink *f = s->priv;
    if (f == NULL) {
        return;
    }
    sl_rotate_free(f->rot);
    if (f->fd >= 0) {
        close(f->fd);
    }
    free(f);
    s->priv = NULL;
}

int
sl_sink_file_housekeep(struct sl_sink *s, int timeout_ms)
{
    struct file_sink *f = s->priv;

    return f == NULL || f->rot == NULL ? 0 : sl_rotate_sync(f->rot, timeout_ms);
}

/* sl_sink_ops.object: health reasons name the path template. */
static const char *
file_object(const struct sl_sink *s, int target)
{
    return sl_sink_file_config(s->cfg)->path;
}

/* sink.h may_inline: write, flush and tick are plain syscalls on the
 * sink's own state; an fsync would make a producer wait for the disk, and a
 * FIFO, a device or a network file system for whoever is behind them
 * (file_local, decided at each open, so asked again before each inline
 * pass: a rotation or reopen may have changed the file). */
static bool
file_may_inline(const struct sl_sink *s)
{
    const struct file_sink *f = s->priv;
    return sl_sink_file_config(s->cfg)->fsync == SL_FSYNC_NONE && f != NULL &&
           atomic_load_explicit(&f->local, memory_order_relaxed);
}

const struct sl_sink_ops sl_sink_file_ops = {
    .checkpoint = file_checkpoint,
    .restore = file_restore,
    .type = "file",
    .object = file_object,
    .open = file_open,
    .write = file_write,
    .may_inline = file_may_inline,
    .flush = file_flush,
    .reopen = file_reopen,
    .tick = file_tick,
    .close = file_close,
};
