/*
 * pathtmpl — file sink path templates and the names of rotated files.
 *
 * A template is a path with strftime-style fields, all in UTC, and the
 * source name: only fields that expand to digits (and '-' for %F) are
 * accepted, so nothing but the time and a configured name can ever become
 * part of a path; nothing from event content does.
 *
 *   %Y year (4 digits)  %m month  %d day  %H hour  %M minute  %S second
 *   %y year (2)  %j day of year (3)  %G ISO year (4)  %V ISO week  %u ISO
 *   weekday (1)  %F = %Y-%m-%d  %% a literal '%'  %{source} the source name
 *
 * A rotated file is named "<active path>.<stamp>", the stamp being the UTC
 * time the file was started, to the millisecond: "20260126T130000.000Z".
 * Stamps have a fixed width, so names sort in time order; compression adds
 * ".gz" or ".zst", and ".tmp" marks a compression in progress.
 *
 * Pure functions, no I/O, any thread.
 */
#ifndef SLUICE_PATHTMPL_H
#define SLUICE_PATHTMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_PATHTMPL_STAMP_LEN 20 /* "20260126T130000.000Z" */

struct sl_pathtmpl_info {
    bool has_time;      /* any time field */
    bool dir_has_time;  /* a time field before the last '/': directories change */
    bool uses_source;   /* %{source} */
    uint64_t period_ms; /* the expansion can change only at multiples of this
                           (UTC, from the epoch); 0 = it never changes */
};

/*
 * Checks tmpl.  Returns 0 and fills *info, or -1 with the reason in why
 * (e.g. "unsupported field %a").
 */
int sl_pathtmpl_check(const char *tmpl, struct sl_pathtmpl_info *info, char *why, size_t whylen);

/*
 * Expands a checked template at t_ms (ms since the epoch, UTC); source
 * replaces %{source} (NULL: ""). Returns the length written to buf (NUL
 * terminated), or -1 when it does not fit in len bytes.
 */
int sl_pathtmpl_expand(const char *tmpl, const char *source, int64_t t_ms, char *buf, size_t len);

/*
 * A glob(7) pattern matching every expansion of a checked template: time
 * fields become [0-9] classes, glob characters in the literal text are
 * escaped.  Returns the length or -1 when it does not fit.
 */
int sl_pathtmpl_glob(const char *tmpl, const char *source, char *buf, size_t len);

/*
 * The directory part of path into buf (len bytes): "/a/b" for "/a/b/c",
 * "." for "c", "/" for "/c".  A reentrant dirname(3).  Returns buf.
 */
char *sl_path_dir(const char *path, char *buf, size_t len);

/* Writes the stamp of t_ms (SL_PATHTMPL_STAMP_LEN bytes + NUL) into buf. */
void sl_pathtmpl_stamp(int64_t t_ms, char *buf);

/* Parses exactly one stamp of SL_PATHTMPL_STAMP_LEN bytes.  Returns 0 with
 * *t_ms set, or -1. */
int sl_pathtmpl_parse_stamp(const char *s, int64_t *t_ms);

#endif
