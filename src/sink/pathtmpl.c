/*
 * pathtmpl — path templates and rotated-file stamps (see pathtmpl.h).
 *
 * Pure functions, any thread.  Each field is expanded on its own with
 * strftime() over gmtime_r(), so the whitelist below is the whole grammar.
 */
#include "sink/pathtmpl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_S 1000ull
#define MS_PER_DAY (86400ull * MS_PER_S)

/* A time field: its letter, the width of its expansion, when it changes. */
struct tmpl_field {
    char letter;
    int width; /* digits; %F is special-cased */
    uint64_t period_ms;
};

static const struct tmpl_field tmpl_fields[] = {
    {'Y', 4, MS_PER_DAY},    {'m', 2, MS_PER_DAY}, {'d', 2, MS_PER_DAY}, {'H', 2, 3600 * MS_PER_S},
    {'M', 2, 60 * MS_PER_S}, {'S', 2, MS_PER_S},   {'y', 2, MS_PER_DAY}, {'j', 3, MS_PER_DAY},
    {'G', 4, MS_PER_DAY},    {'V', 2, MS_PER_DAY}, {'u', 1, MS_PER_DAY}, {'F', 10, MS_PER_DAY},
};

static const char tmpl_source[] = "{source}";

static const struct tmpl_field *
tmpl_find(char letter)
{
    for (size_t i = 0; i < sizeof(tmpl_fields) / sizeof(tmpl_fields[0]); i++) {
        if (tmpl_fields[i].letter == letter) {
            return &tmpl_fields[i];
        }
    }
    return NULL;
}

/* strftime of one whitelisted field (literal formats, so they are checked). */
static size_t
tmpl_strftime(char *out, size_t len, char letter, const struct tm *tm)
{
    switch (letter) {
    case 'Y':
        return strftime(out, len, "%Y", tm);
    case 'm':
        return strftime(out, len, "%m", tm);
    case 'd':
        return strftime(out, len, "%d", tm);
    case 'H':
        return strftime(out, len, "%H", tm);
    case 'M':
        return strftime(out, len, "%M", tm);
    case 'S':
        return strftime(out, len, "%S", tm);
    case 'y':
        /* Two digits are what %y asks for (-Wformat-y2k would object). */
        return (size_t)snprintf(out, len, "%02d", (tm->tm_year + 1900) % 100);
    case 'j':
        return strftime(out, len, "%j", tm);
    case 'G':
        return strftime(out, len, "%G", tm);
    case 'V':
        return strftime(out, len, "%V", tm);
    case 'u':
        return strftime(out, len, "%u", tm);
    case 'F':
        return strftime(out, len, "%F", tm);
    default:
        return 0;
    }
}

int
sl_pathtmpl_check(const char *tmpl, struct sl_pathtmpl_info *info, char *why, size_t whylen)
{
    const char *last_slash = strrchr(tmpl, '/');

    memset(info, 0, sizeof(*info));
    for (const char *p = tmpl; *p != '\0'; p++) {
        const struct tmpl_field *f;
        if (*p != '%') {
            continue;
        }
        p++;
        if (*p == '%') {
            continue;
        }
        if (strncmp(p, tmpl_source, sizeof(tmpl_source) - 1) == 0) {
            info->uses_source = true;
            p += sizeof(tmpl_source) - 2;
            continue;
        }
        f = *p != '\0' ? tmpl_find(*p) : NULL;
        if (f == NULL) {
            if (*p == '\0') {
                snprintf(why, whylen, "a lone %% at the end (write %%%% for a literal %%)");
            } else {
                snprintf(why, whylen,
                         "unsupported field %%%c (use %%Y %%m %%d %%H %%M %%S %%y %%j %%G %%V "
                         "%%u %%F %%%% or %%{source})",
                         *p >= 0x20 && *p < 0x7f ? *p : '?');
            }
            return -1;
        }
        info->has_time = true;
        if (last_slash != NULL && p < last_slash) {
            info->dir_has_time = true;
        }
        if (info->period_ms == 0 || f->period_ms < info->period_ms) {
            info->period_ms = f->period_ms;
        }
    }
    return 0;
}

/* Appends n bytes of s to buf at *off; false when it does not fit. */
static bool
tmpl_put(char *buf, size_t len, size_t *off, const char *s, size_t n)
{
    if (*off + n >= len) {
        return false;
    }
    memcpy(buf + *off, s, n);
    *off += n;
    buf[*off] = '\0';
    return true;
}

int
sl_pathtmpl_expand(const char *tmpl, const char *source, int64_t t_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(t_ms >= 0 ? t_ms / 1000 : (t_ms - 999) / 1000);
    struct tm tm;
    size_t off = 0;

    if (len == 0) {
        return -1;
    }
    buf[0] = '\0';
    gmtime_r(&secs, &tm);
    for (const char *p = tmpl; *p != '\0'; p++) {
        char out[32];
        size_t n;
        if (*p != '%') {
            if (!tmpl_put(buf, len, &off, p, 1)) {
                return -1;
            }
            continue;
        }
        p++;
        if (*p == '%') {
            if (!tmpl_put(buf, len, &off, "%", 1)) {
                return -1;
            }
            continue;
        }
        if (strncmp(p, tmpl_source, sizeof(tmpl_source) - 1) == 0) {
            const char *src = source != NULL ? source : "";
            if (!tmpl_put(buf, len, &off, src, strlen(src))) {
                return -1;
            }
            p += sizeof(tmpl_source) - 2;
            continue;
        }
        if (*p == '\0' || tmpl_find(*p) == NULL) {
            return -1; /* not checked */
        }
        n = tmpl_strftime(out, sizeof(out), *p, &tm);
        if (n == 0 || !tmpl_put(buf, len, &off, out, n)) {
            return -1;
        }
    }
    return (int)off;
}

int
sl_pathtmpl_glob(const char *tmpl, const char *source, char *buf, size_t len)
{
    static const char digit[] = "[0-9]";
    size_t off = 0;

    if (len == 0) {
        return -1;
    }
    buf[0] = '\0';
    for (const char *p = tmpl; *p != '\0'; p++) {
        const struct tmpl_field *f;
        if (*p != '%' || p[1] == '%') {
            char c = *p == '%' ? *++p : *p;
            if (strchr("*?[]\\", c) != NULL && !tmpl_put(buf, len, &off, "\\", 1)) {
                return -1;
            }
            if (!tmpl_put(buf, len, &off, &c, 1)) {
                return -1;
            }
            continue;
        }
        p++;
        if (strncmp(p, tmpl_source, sizeof(tmpl_source) - 1) == 0) {
            /* Source names are [A-Za-z0-9_.-]: nothing to escape. */
            const char *src = source != NULL ? source : "";
            if (!tmpl_put(buf, len, &off, src, strlen(src))) {
                return -1;
            }
            p += sizeof(tmpl_source) - 2;
            continue;
        }
        f = *p != '\0' ? tmpl_find(*p) : NULL;
        if (f == NULL) {
            return -1;
        }
        for (int i = 0; i < f->width; i++) {
            bool dash = f->letter == 'F' && (i == 4 || i == 7);
            if (!(dash ? tmpl_put(buf, len, &off, "-", 1)
                       : tmpl_put(buf, len, &off, digit, sizeof(digit) - 1))) {
                return -1;
            }
        }
    }
    return (int)off;
}

char *
sl_path_dir(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL) {
        snprintf(buf, len, ".");
        return buf;
    }
    while (slash > path && slash[-1] == '/') {
        slash--;
    }
    n = slash == path ? 1 : (size_t)(slash - path);
    snprintf(buf, len, "%.*s", (int)n, path);
    return buf;
}

void
sl_pathtmpl_stamp(int64_t t_ms, char *buf)
{
    time_t secs = (time_t)(t_ms >= 0 ? t_ms / 1000 : 0);
    struct tm tm;
    char date[32];

    gmtime_r(&secs, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%S", &tm);
    snprintf(buf, SL_PATHTMPL_STAMP_LEN + 1, "%.15s.%03dZ", date,
             (int)(t_ms >= 0 ? t_ms % 1000 : 0));
}

int
sl_pathtmpl_parse_stamp(const char *s, int64_t *t_ms)
{
    static const char shape[] = "ddddddddTdddddd.dddZ";
    char again[SL_PATHTMPL_STAMP_LEN + 1];
    struct tm tm;
    int64_t v;

    for (size_t i = 0; i < SL_PATHTMPL_STAMP_LEN; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) {
            return -1;
        }
    }
    memset(&tm, 0, sizeof(tm));
    {
        int vals[7] = {0};
        static const int at[7] = {0, 4, 6, 9, 11, 13, 16}, width[7] = {4, 2, 2, 2, 2, 2, 3};
        for (int k = 0; k < 7; k++) {
            for (int i = 0; i < width[k]; i++) {
                vals[k] = vals[k] * 10 + (s[at[k] + i] - '0');
            }
        }
        tm.tm_year = vals[0] - 1900;
        tm.tm_mon = vals[1] - 1;
        tm.tm_mday = vals[2];
        tm.tm_hour = vals[3];
        tm.tm_min = vals[4];
        tm.tm_sec = vals[5];
        v = (int64_t)timegm(&tm) * 1000 + vals[6];
    }
    if (v < 0) {
        return -1;
    }
    /* Reject 20261332T...: the round trip must give the same text. */
    sl_pathtmpl_stamp(v, again);
    if (memcmp(again, s, SL_PATHTMPL_STAMP_LEN) != 0) {
        return -1;
    }
    *t_ms = v;
    return 0;
}
