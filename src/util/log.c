/*
 * log — formatting and emitting log lines (any thread).
 *
 * Each message is formatted into a stack buffer and written with a single
 * write(2) so lines from different threads never interleave.
 */
#include "sluice/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_level_v = LOG_INFO;
static atomic_int log_prefix_sd = -1; /* -1: not decided yet */

static const char *const prio_names[] = {
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

void
sl_log_init(int level)
{
    sl_log_set_level(level);
    /* Main thread, before any other thread exists. */
    atomic_store(&log_prefix_sd,
                 getenv("JOURNAL_STREAM") != NULL || // NOLINT(concurrency-mt-unsafe)
                     !isatty(STDERR_FILENO));
}

void
sl_log_set_level(int level)
{
    atomic_store(&log_level_v, level);
}

int
sl_log_level(void)
{
    return atomic_load(&log_level_v);
}

static void log_vemit(int prio, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_vemit(int prio, int errnum, const char *fmt, va_list ap)
{
    char buf[2048];
    size_t n = 0;
    int r;

    if (prio > atomic_load_explicit(&log_level_v, memory_order_relaxed)) {
        return;
    }
    if (atomic_load_explicit(&log_prefix_sd, memory_order_relaxed) == 1) {
        r = snprintf(buf, sizeof(buf), "<%d>", prio);
    } else {
        r = snprintf(buf, sizeof(buf), "sluiced: %s: ", prio_names[prio & 7]);
    }
    n = (size_t)r;
    r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    if (r > 0) {
        n += (size_t)r < sizeof(buf) - n ? (size_t)r : sizeof(buf) - n - 1;
    }
    if (errnum != 0 && n < sizeof(buf) - 1) {
        char ebuf[128];
        /* Any thread logs: strerror_r, not strerror's shared buffer. */
        r = snprintf(buf + n, sizeof(buf) - n, ": %s", strerror_r(errnum, ebuf, sizeof(ebuf)));
        if (r > 0) {
            n += (size_t)r < sizeof(buf) - n ? (size_t)r : sizeof(buf) - n - 1;
        }
    }
    if (n >= sizeof(buf) - 1) {
        n = sizeof(buf) - 2;
    }
    /* Keep it one line whatever the message contained. */
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            buf[i] = ' ';
        }
    }
    buf[n++] = '\n';
    ssize_t w;
    do {
        w = write(STDERR_FILENO, buf, n);
    } while (w < 0 && errno == EINTR);
}

void
sl_log(int prio, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vemit(prio, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_warn(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_WARNING, saved, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_WARNING, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_info(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_INFO, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_debug(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_DEBUG, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_CRIT, saved, fmt, ap);
    va_end(ap);
    exit(1); // NOLINT(concurrency-mt-unsafe): a broken invariant ends the process
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_CRIT, 0, fmt, ap);
    va_end(ap);
    exit(1); // NOLINT(concurrency-mt-unsafe): a broken invariant ends the process
}

int
sl_ratelimit_ok(struct sl_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
    if (rl->last_ms != 0 && now_ms - rl->last_ms < rl->interval_ms) {
        rl->suppressed++;
        return 0;
    }
    rl->last_ms = now_ms ? now_ms : 1;
    if (suppressed != NULL) {
        *suppressed = rl->suppressed;
    }
    rl->suppressed = 0;
    return 1;
}
