/*
 * log — one line per message on stderr, one write(2) each.
 *
 * Under systemd (JOURNAL_STREAM set, or stderr not a terminal) every line
 * starts with an sd-daemon priority prefix "<N>" (sd-daemon(3)); on a
 * terminal lines read "sluiced: warning: ...".  log_warn/fatal append
 * strerror(errno); the x variants do not.  All functions preserve errno and
 * may be called from any thread.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdint.h>
#include <syslog.h>

#include "sluice/clock.h" /* sl_now_ms, the time sl_ratelimit_ok takes */

#define SL_PRINTF(a, b) __attribute__((format(printf, a, b)))

void sl_log_init(int level);
void sl_log_set_level(int level);
int sl_log_level(void);

void sl_log(int prio, const char *fmt, ...) SL_PRINTF(2, 3);
void log_warn(const char *fmt, ...) SL_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) SL_PRINTF(1, 2);
void log_info(const char *fmt, ...) SL_PRINTF(1, 2);
void log_debug(const char *fmt, ...) SL_PRINTF(1, 2);
_Noreturn void fatal(const char *fmt, ...) SL_PRINTF(1, 2);
_Noreturn void fatalx(const char *fmt, ...) SL_PRINTF(1, 2);

/*
 * A rate limit for repeated warnings: sl_ratelimit_ok() returns true at most
 * once per interval_ms and counts the calls it refused in *suppressed (reset
 * when it next returns true; the caller reports it).  Not thread-safe: one
 * per thread and purpose.
 */
struct sl_ratelimit {
    uint64_t interval_ms;
    uint64_t last_ms;
    uint64_t suppressed;
};
int sl_ratelimit_ok(struct sl_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);

#endif
