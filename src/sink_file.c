/*
 * sink_file — appends batches to a file (writer thread).
 *
 * O_APPEND|O_CLOEXEC, one writev per batch of whole chunks, so a reader
 * (tail -F) never sees a partial line between writes.  A file renamed or
 * deleted under us is noticed by tick() within a second (stat of the path
 * vs fstat of the descriptor) and a new one is opened; SIGHUP reopens too.
 * A failed reopen keeps the old descriptor and is retried on the next tick.
 *
 * fsync policy (docs/configuration.md): none, batch (fdatasync after every
 * batch), interval (fdatasync at most every fsync_interval when dirty).
 * At stop the file is always fdatasync'ed once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/sink.h"

struct file_sink {
    int fd;
    dev_t dev;
    ino_t ino;
    bool dirty; /* written since the last fdatasync */
    uint64_t last_sync_ms;
    struct sl_ratelimit rl;
};

static int
file_open_fd(struct sl_sink *s, struct file_sink *f)
{
    int fd = open(s->cfg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, s->cfg->file_mode);
    struct stat st;
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

static int
file_open(struct sl_sink *s)
{
    struct file_sink *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    f->fd = -1;
    f->rl.interval_ms = 10000;
    f->last_sync_ms = sl_now_ms(); /* fsync_interval counts from the open */
    s->priv = f;
    if (file_open_fd(s, f) < 0) {
        if (errno == ENOENT) {
            log_warnx("sink \"%s\": cannot open %s: the folder does not exist", s->cfg->name,
                      s->cfg->path);
        } else {
            log_warn("sink \"%s\": cannot open %s", s->cfg->name, s->cfg->path);
        }
        return -1;
    }
    return 0;
}

static enum sl_sink_result
file_write(struct sl_sink *s, const struct iovec *iov, int iovcnt, size_t *written)
{
    struct file_sink *f = s->priv;
    ssize_t n;
    *written = 0;
    do {
        n = writev(f->fd, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        uint64_t sup = 0;
        if (sl_ratelimit_ok(&f->rl, sl_now_ms(), &sup)) {
            log_warn("sink \"%s\": write to %s (will retry)", s->cfg->name, s->cfg->path);
        }
        return SL_SINK_RETRY;
    }
    *written = (size_t)n;
    f->dirty = true;
    return SL_SINK_OK;
}

static enum sl_sink_result
file_sync(struct sl_sink *s, struct file_sink *f)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = fdatasync(f->fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sl_hist_observe(&s->stats->fsync_ns,
                    (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec)),
                    1);
    if (r < 0 && errno != EINVAL) {
        uint64_t sup = 0;
        if (sl_ratelimit_ok(&f->rl, sl_now_ms(), &sup)) {
            log_warn("sink \"%s\": fdatasync %s", s->cfg->name, s->cfg->path);
        }
        return SL_SINK_RETRY;
    }
    f->dirty = false;
    f->last_sync_ms = sl_now_ms();
    sl_counter_add(&s->stats->fsyncs, 1);
    return SL_SINK_OK;
}

static enum sl_sink_result
file_flush(struct sl_sink *s, bool final)
{
    struct file_sink *f = s->priv;
    if (!f->dirty) {
        return SL_SINK_OK;
    }
    if (final || s->cfg->fsync == SL_FSYNC_BATCH) {
        return file_sync(s, f);
    }
    if (s->cfg->fsync == SL_FSYNC_INTERVAL &&
        sl_now_ms() - f->last_sync_ms >= s->cfg->fsync_interval_ms) {
        return file_sync(s, f);
    }
    return SL_SINK_OK;
}

static void
file_reopen(struct sl_sink *s)
{
    struct file_sink *f = s->priv;
    if (f->dirty && s->cfg->fsync != SL_FSYNC_NONE) {
        (void)file_sync(s, f);
    }
    if (file_open_fd(s, f) < 0) {
        log_warn("sink \"%s\": reopen %s (still writing to the old file)", s->cfg->name,
                 s->cfg->path);
        return;
    }
    f->dirty = false;
    sl_counter_add(&s->stats->reopens, 1);
    log_info("sink \"%s\": reopened %s", s->cfg->name, s->cfg->path);
}

static void
file_tick(struct sl_sink *s, uint64_t now_ms)
{
    struct file_sink *f = s->priv;
    struct stat st;
    if (stat(s->cfg->path, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
        log_info("sink \"%s\": %s was moved or removed", s->cfg->name, s->cfg->path);
        file_reopen(s);
    }
    if (f->dirty && s->cfg->fsync == SL_FSYNC_INTERVAL &&
        now_ms - f->last_sync_ms >= s->cfg->fsync_interval_ms) {
        (void)file_sync(s, f);
    }
}

static void
file_close(struct sl_sink *s)
{
    struct file_sink *f = s->priv;
    if (f == NULL) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    free(f);
    s->priv = NULL;
}

const struct sl_sink_ops sl_sink_file_ops = {
    .type = "file",
    .open = file_open,
    .write = file_write,
    .flush = file_flush,
    .reopen = file_reopen,
    .tick = file_tick,
    .close = file_close,
};

const struct sl_sink_ops *
sl_sink_ops_for(enum sl_sink_type type)
{
    switch (type) {
    case SL_SINK_FILE:
        return &sl_sink_file_ops;
    }
    return NULL;
}
