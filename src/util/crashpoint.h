/*
 * crashpoint — kill the process at a named point, for crash tests.
 *
 * SLUICE_CRASH_AT=NAME[:COUNT] makes the COUNT-th (default first) call of
 * sl_crash_point(NAME) log one line to stderr and raise SIGKILL: the
 * process dies as under `kill -9` or the OOM killer, with no cleanup.
 * Compiled into every build (the integration tests run the release
 * binary, and a crash test of a different binary would prove little); unset,
 * a call costs one load and branch, and the points sit on per-chunk or
 * per-file paths, never per event.  Names: docs/operations.md.
 *
 * Thread: sl_crash_init on the main thread before other threads start;
 * sl_crash_point from any one thread at a time per name (the writer).
 */
#ifndef SLUICE_CRASHPOINT_H
#define SLUICE_CRASHPOINT_H

#include <stdbool.h>

/* Reads SLUICE_CRASH_AT (once; later calls do nothing). */
void sl_crash_init(void);
/* True when the next sl_crash_point(name) dies (a caller that tears a
 * write in half first). */
bool sl_crash_armed(const char *name);
/* Dies here if this is the armed point's COUNT-th call. */
void sl_crash_point(const char *name);

#endif
