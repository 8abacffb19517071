/*
 * syslog_parse — RFC 5424 and RFC 3164 parsing (see syslog_parse.h).
 *
 * RFC 5424 is parsed by its grammar (section 6), leniently where senders
 * are known to stray: header fields are any run of non-space bytes (the
 * codec escapes what is not printable) and their length limits are not
 * enforced; an unescaped ']' inside a PARAM-VALUE is taken as part of it
 * (the value ends at the first unescaped '"').  A line that does not fit
 * the grammar is refused as a whole (-1), never half-parsed.
 *
 * RFC 3164 (section 4.1) is a description of practice, not a grammar; the
 * parser takes, in order, each optional part when the bytes look like it:
 *   PRI  [NNN: ]  [*|.]TIMESTAMP[:]  [HOSTNAME]  [TAG[[PID]]:]  MSG
 * Only the PRI is required.  docs/protocol.md lists each rule with a line.
 *
 * Pure functions, any thread.
 */
#include "codec/syslog_parse.h"

#include <string.h>

static const char *const facility_names[24] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "audit",  "alert",  "clockd",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7",
};

static const char *const severity_names[8] = {
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

static const char months[12][3] = {
    {'J', 'a', 'n'}, {'F', 'e', 'b'}, {'M', 'a', 'r'}, {'A', 'p', 'r'},
    {'M', 'a', 'y'}, {'J', 'u', 'n'}, {'J', 'u', 'l'}, {'A', 'u', 'g'},
    {'S', 'e', 'p'}, {'O', 'c', 't'}, {'N', 'o', 'v'}, {'D', 'e', 'c'},
};

const char *
sl_syslog_facility_name(int facility)
{
    return facility >= 0 && facility < 24 ? facility_names[facility] : "unknown";
}

const char *
sl_syslog_severity_name(int severity)
{
    return severity >= 0 && severity < 8 ? severity_names[severity] : "unknown";
}

/* ---- calendar ----------------------------------------------------------------------- */

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t
civil_seconds(int64_t y, int mon, int d, int h, int mi, int s)
{
    return days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + s;
}

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z */
#define TIME_MIN (-62167219200LL)
#define TIME_MAX (253402300799LL)

static void
put2(char *o, int v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

size_t
sl_syslog_format_time(int64_t s, uint32_t us, char *out)
{
    int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
    int64_t sec = s - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    put2(out, y / 100);
    put2(out + 2, y % 100);
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, (int)(sec / 3600));
    out[13] = ':';
    put2(out + 14, (int)(sec / 60 % 60));
    out[16] = ':';
    put2(out + 17, (int)(sec % 60));
    out[19] = '.';
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + us % 10);
        us /= 10;
    }
    out[26] = 'Z';
    return 27;
}

/* ---- small scanners ----------------------------------------------------------------- */

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n digits at p (p + n <= end), value in *v. */
static bool
digits(const char *p, const char *end, int n, int *v)
{
    int x = 0;
    if (end - p < n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            return false;
        }
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return true;
}

/* ".d{1,9}" at *p: microseconds (truncated); no dot: 0.  False on a dot
 * without digits. */
static bool
fraction(const char **pp, const char *end, uint32_t *us)
{
    const char *p = *pp;
    uint32_t v = 0;
    int n = 0;
    *us = 0;
    if (p >= end || *p != '.') {
        return true;
    }
    p++;
    while (p < end && is_digit(*p)) {
        if (n < 6) {
            v = v * 10 + (uint32_t)(*p - '0');
        }
        n++;
        p++;
    }
    if (n == 0 || n > 9) {
        return false;
    }
    for (int i = n; i < 6; i++) {
        v *= 10;
    }
    *us = v;
    *pp = p;
    return true;
}

/* "HH:MM:SS" at *p. */
static bool
clock_time(const char **pp, const char *end, int *h, int *mi, int *s)
{
    const char *p = *pp;
    if (end - p < 8 || p[2] != ':' || p[5] != ':' || !digits(p, end, 2, h) ||
        !digits(p + 3, end, 2, mi) || !digits(p + 6, end, 2, s) || *h > 23 || *mi > 59 || *s > 60) {
        return false;
    }
    *pp = p + 8;
    return true;
}

/*
 * RFC 3339 full-date "T" full-time at *pp (RFC 5424 section 6.2.3).  The
 * offset is required when need_offset, else a missing one means
 * default_tz.  Sets *s (UTC) and *us and advances *pp.
 */
static bool
rfc3339(const char **pp, const char *end, bool need_offset, int32_t default_tz, int64_t *s,
        uint32_t *us)
{
    const char *p = *pp;
    int y, mon, d, h, mi, sec;
    int32_t off = default_tz;
    if (end - p < 19 || !digits(p, end, 4, &y) || p[4] != '-' || !digits(p + 5, end, 2, &mon) ||
        p[7] != '-' || !digits(p + 8, end, 2, &d) || (p[10] != 'T' && p[10] != 't')) {
        return false;
    }
    if (mon < 1 || mon > 12 || d < 1 || d > month_days(y, mon)) {
        return false;
    }
    p += 11;
    if (!clock_time(&p, end, &h, &mi, &sec) || !fraction(&p, end, us)) {
        return false;
    }
    if (p < end && (*p == 'Z' || *p == 'z')) {
        off = 0;
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int oh, om;
        if (end - p < 6 || !digits(p + 1, end, 2, &oh) || p[3] != ':' ||
            !digits(p + 4, end, 2, &om) || oh > 23 || om > 59) {
            return false;
        }
        off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else if (need_offset) {
        return false;
    }
    *s = civil_seconds(y, mon, d, h, mi, sec) - off;
    if (*s < TIME_MIN || *s > TIME_MAX) {
        return false;
    }
    *pp = p;
    return true;
}

/* "<PRI>" at the start: 1..3 digits (leading zeros tolerated), <= 191. */
static bool
pri(const char **pp, const char *end, struct sl_syslog_msg *m)
{
    const char *p = *pp;
    int v = 0, n = 0;
    if (p >= end || *p != '<') {
        return false;
    }
    p++;
    while (p < end && is_digit(*p) && n < 4) {
        v = v * 10 + (*p - '0');
        n++;
        p++;
    }
    if (n == 0 || n > 3 || p >= end || *p != '>' || v > 191) {
        return false;
    }
    m->facility = v >> 3;
    m->severity = v & 7;
    *pp = p + 1;
    return true;
}

/* ---- RFC 5424 ------------------------------------------------------------------------ */

/* A header field: a non-empty run of non-SP bytes followed by SP; "-" is
 * NILVALUE (an absent span). */
static bool
field(const char **pp, const char *end, struct sl_syslog_span *out)
{
    const char *p = *pp;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL || sp == p) {
        return false;
    }
    out->p = p;
    out->len = (size_t)(sp - p);
    if (out->len == 1 && *p == '-') {
        out->len = 0;
    }
    *pp = sp + 1;
    return true;
}

/* SD-NAME: 1 or more PRINTUSASCII except '=', SP, ']', '"'. */
static const char *
sd_name(const char *p, const char *end)
{
    while (p<end && * p> ' ' && *p < 0x7f && *p != '=' && *p != ']' && *p != '"') {
        p++;
    }
    return p;
}

/* PARAM-VALUE after its opening '"': up to the first unescaped '"'.
 * *escapes is set when it holds a backslash. */
static const char *
sd_value_end(const char *p, const char *end, bool *escapes)
{
    while (p < end) {
        if (*p == '\\' && p + 1 < end) {
            *escapes = true;
            p += 2;
        } else if (*p == '"') {
            return p;
        } else {
            p++;
        }
    }
    return NULL;
}

/* One SD-ELEMENT at p; returns the byte after its ']' or NULL. */
static const char *
sd_element(const char *p, const char *end, bool *escapes)
{
    if (p >= end || *p != '[') {
        return NULL;
    }
    const char *n = sd_name(p + 1, end);
    if (n == p + 1) {
        return NULL;
    }
    p = n;
    while (p < end && *p == ' ') {
        const char *name = p + 1;
        n = sd_name(name, end);
        if (n == name || end - n < 2 || n[0] != '=' || n[1] != '"') {
            return NULL;
        }
        const char *v = sd_value_end(n + 2, end, escapes);
        if (v == NULL) {
            return NULL;
        }
        p = v + 1;
    }
    if (p >= end || *p != ']') {
        return NULL;
    }
    return p + 1;
}

bool
sl_syslog_sd_element(const char **pos, const char *end, struct sl_syslog_span *id)
{
    const char *p = *pos;
    if (p >= end || *p != '[') {
        return false;
    }
    const char *n = sd_name(p + 1, end);
    id->p = p + 1;
    id->len = (size_t)(n - (p + 1));
    *pos = n;
    return true;
}

bool
sl_syslog_sd_param(const char **pos, const char *end, struct sl_syslog_span *name,
                   struct sl_syslog_span *value)
{
    const char *p = *pos;
    if (p >= end || *p != ' ') {
        *pos = p < end ? p + 1 : p; /* past the element's ']' */
        return false;
    }
    /* The parser checked the element: SP name="value". */
    const char *n = sd_name(p + 1, end);
    name->p = p + 1;
    name->len = (size_t)(n - name->p);
    value->p = n + 2;
    bool escapes = false;
    const char *v = sd_value_end(value->p, end, &escapes);
    value->len = (size_t)(v - value->p);
    *pos = v + 1;
    return true;
}

static int
parse_5424(const char *p, const char *end, struct sl_syslog_msg *m)
{
    int v = 0, n = 0;
    while (p < end && is_digit(*p) && n < 4) {
        v = v * 10 + (*p - '0');
        n++;
        p++;
    }
    if (n == 0 || n > 3 || v == 0 || p >= end || *p != ' ') {
        return -1;
    }
    m->version = v;
    p++;
    if (p < end && *p == '-') {
        if (end - p < 2 || p[1] != ' ') {
            return -1;
        }
        p += 2;
    } else {
        if (!rfc3339(&p, end, true, 0, &m->time_s, &m->time_us) || p >= end || *p != ' ') {
            return -1;
        }
        m->has_time = true;
        p++;
    }
    if (!field(&p, end, &m->hostname) || !field(&p, end, &m->appname) ||
        !field(&p, end, &m->procid) || !field(&p, end, &m->msgid)) {
        return -1;
    }
    if (p < end && *p == '-') {
        p++;
    } else {
        const char *sd = p;
        do {
            p = sd_element(p, end, &m->sd_escapes);
            if (p == NULL) {
                return -1;
            }
        } while (p < end && *p == '[');
        m->sd.p = sd;
        m->sd.len = (size_t)(p - sd);
    }
    if (p < end) {
        if (*p != ' ') {
            return -1;
        }
        p++;
        /* RFC 5424 section 6.4: MSG may start with a UTF-8 BOM. */
        if (end - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
            p += 3;
        }
        m->message.p = p;
        m->message.len = (size_t)(end - p);
    }
    return 0;
}

/* ---- RFC 3164 ------------------------------------------------------------------------ */

/* "UTC" or "GMT" (any other zone name is skipped; *known false). */
static bool
zone_name(const char **pp, const char *end, bool *utc)
{
    const char *p = *pp;
    const char *q = p;
    while (q < end && q - p < 5 && *q >= 'A' && *q <= 'Z') {
        q++;
    }
    if (q - p < 3 || q - p > 4 || q >= end || *q != ':') {
        return false;
    }
    *utc = (q - p == 3 && (memcmp(p, "UTC", 3) == 0 || memcmp(p, "GMT", 3) == 0));
    *pp = q;
    return true;
}

/* A date up to this far after the receive time is taken as sender clock
 * skew rather than as last year's. */
#define YEAR_SKEW_S 86400

/* The year for a month-day-time without one: the latest of next, this and
 * last year (in the zone, at recv_s) that puts the date no more than
 * YEAR_SKEW_S after recv_s ("Dec 31" received on Jan 1 is last year's). */
static bool
infer_year(int mon, int d, int h, int mi, int s, int32_t tz, int64_t recv_s, int64_t *out)
{
    int64_t now_local = recv_s + tz;
    int64_t days = now_local >= 0 ? now_local / 86400 : -((-now_local + 86399) / 86400);
    int y0, m0, d0;
    civil_from_days(days, &y0, &m0, &d0);
    for (int y = y0 + 1; y >= y0 - 1; y--) {
        if (y < 0 || y > 9999 || d > month_days(y, mon)) {
            continue;
        }
        int64_t t = civil_seconds(y, mon, d, h, mi, s);
        if (t <= now_local + YEAR_SKEW_S) {
            *out = t - tz;
            return *out >= TIME_MIN && *out <= TIME_MAX;
        }
    }
    return false;
}

/*
 * "Mmm dd [YYYY ]HH:MM:SS[.frac][ YYYY][ ZONE]" at *pp (day as "dd", " d"
 * or "d").  Without a year in the line, the year is inferred.
 */
static bool
bsd_time(const char **pp, const char *end, int32_t tz, int64_t recv_s, struct sl_syslog_msg *m)
{
    const char *p = *pp;
    int mon = 0, d, y = -1, h, mi, s;
    uint32_t us;
    if (end - p < 15 || p[3] != ' ') {
        return false;
    }
    for (int i = 0; i < 12; i++) {
        if (p[0] == months[i][0] && p[1] == months[i][1] && p[2] == months[i][2]) {
            mon = i + 1;
            break;
        }
    }
    if (mon == 0) {
        return false;
    }
    p += 4;
    if (*p == ' ') {
        p++;
    }
    if (digits(p, end, 2, &d)) {
        p += 2;
    } else if (digits(p, end, 1, &d)) {
        p += 1;
    } else {
        return false;
    }
    if (d < 1 || d > 31 || p >= end || *p != ' ') {
        return false;
    }
    p++;
    /* Cisco "service timestamps log datetime year": "Mar  1 2024 00:03:14". */
    if (end - p > 5 && p[4] == ' ' && digits(p, end, 4, &y)) {
        p += 5;
    }
    if (!clock_time(&p, end, &h, &mi, &s) || !fraction(&p, end, &us)) {
        return false;
    }
    /* A year after the time: "Jun 23 13:17:42 2024 host ...". */
    int y2;
    if (y < 0 && end - p >= 5 && p[0] == ' ' && digits(p + 1, end, 4, &y2) &&
        (end - p == 5 || p[5] == ' ' || p[5] == ':')) {
        y = y2;
        p += 5;
    }
    int32_t zone = tz;
    bool utc;
    const char *z = p + 1;
    if (p < end && *p == ' ' && zone_name(&z, end, &utc)) {
        p = z;
        if (utc) {
            zone = 0;
        }
    }
    if (y >= 0) {
        if (d > month_days(y, mon)) {
            return false;
        }
        m->time_s = civil_seconds(y, mon, d, h, mi, s) - zone;
        if (m->time_s < TIME_MIN || m->time_s > TIME_MAX) {
            return false;
        }
    } else if (!infer_year(mon, d, h, mi, s, zone, recv_s, &m->time_s)) {
        return false;
    }
    m->time_us = us;
    *pp = p;
    return true;
}

/* A timestamp at *pp, with Cisco's '*' / '.' sync mark and ':' after it;
 * on success *pp is at the next part (its separating SP consumed). */
static bool
timestamp_3164(const char **pp, const char *end, int32_t tz, int64_t recv_s,
               struct sl_syslog_msg *m)
{
    const char *p = *pp;
    if (p < end && (*p == '*' || *p == '.')) {
        p++;
    }
    if (p < end && is_digit(*p)) {
        if (!rfc3339(&p, end, false, tz, &m->time_s, &m->time_us)) {
            return false;
        }
    } else if (!bsd_time(&p, end, tz, recv_s, m)) {
        return false;
    }
    if (p < end && *p == ':') {
        p++;
    }
    if (p < end) {
        if (*p != ' ') {
            return false;
        }
        p++;
    }
    m->has_time = true;
    *pp = p;
    return true;
}

#define TAG_MAX 128

/* TAG[[PID]]: (or TAG[PID] followed by SP) at *pp; on success *pp is at
 * the MSG (one SP after the tag consumed). */
static bool
tag(const char **pp, const char *end, struct sl_syslog_msg *m)
{
    const char *p = *pp;
    const char *t = p;
    while (p < end && *p != ' ' && *p != ':' && *p != '[' && p - t <= TAG_MAX) {
        p++;
    }
    if (p == t || p - t > TAG_MAX || p >= end) {
        return false;
    }
    struct sl_syslog_span app = {t, (size_t)(p - t)}, pid = {NULL, 0};
    if (*p == '[') {
        const char *q = p + 1;
        while (q < end && *q != ']' && *q != ' ' && q - p <= TAG_MAX) {
            q++;
        }
        if (q >= end || *q != ']' || q == p + 1) {
            return false;
        }
        pid.p = p + 1;
        pid.len = (size_t)(q - (p + 1));
        p = q + 1;
        if (p < end && *p == ':') {
            p++;
        }
    } else if (*p == ':') {
        p++;
    } else {
        return false;
    }
    if (p < end) {
        if (*p != ' ') {
            return false;
        }
        p++;
    }
    m->appname = app;
    m->procid = pid;
    *pp = p;
    return true;
}

/* The token at p is a HOSTNAME: followed by SP and more, not a tag
 * ("name:" or "name[pid]"). */
static bool
hostname(const char **pp, const char *end, struct sl_syslog_msg *m)
{
    const char *p = *pp;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL || sp == p || sp + 1 >= end || sp[-1] == ':' ||
        memchr(p, '[', (size_t)(sp - p)) != NULL) {
        return false;
    }
    m->hostname.p = p;
    m->hostname.len = (size_t)(sp - p);
    *pp = sp + 1;
    return true;
}

static int
parse_3164(const char *p, const char *end, int32_t tz, int64_t recv_s, struct sl_syslog_msg *m)
{
    /* Cisco's sequence counter "NNN: " (digits only: no program is named
     * so), with or without a timestamp after it. */
    const char *q = p;
    while (q < end && is_digit(*q) && q - p < 10) {
        q++;
    }
    if (q > p && end - q >= 2 && q[0] == ':' && q[1] == ' ') {
        p = q + 2;
    }
    (void)timestamp_3164(&p, end, tz, recv_s, m);
    if (m->has_time && hostname(&p, end, m) && end - p >= 2 && p[0] == ':' && p[1] == ' ') {
        /* Cisco ASA: "fw01 : %ASA-6-302013: ..." */
        p += 2;
    }
    (void)tag(&p, end, m);
    if (p < end) {
        m->message.p = p;
        m->message.len = (size_t)(end - p);
    }
    return 0;
}

int
sl_syslog_parse(const char *line, size_t len, enum sl_syslog_format format, int32_t tz_offset_s,
                int64_t recv_s, struct sl_syslog_msg *m)
{
    const char *p = line;
    const char *end = line + len;
    memset(m, 0, sizeof(*m));
    if (!pri(&p, end, m)) {
        return -1;
    }
    if (format == SL_SYSLOG_RFC5424 ||
        (format == SL_SYSLOG_AUTO && end - p >= 2 && p[0] == '1' && p[1] == ' ')) {
        return parse_5424(p, end, m);
    }
    return parse_3164(p, end, tz_offset_s, recv_s, m);
}

int
sl_syslog_parse_zone(const char *s, int32_t *offset_s)
{
    int h, mi;
    size_t n = strlen(s);
    if (strcmp(s, "UTC") == 0 || strcmp(s, "Z") == 0) {
        *offset_s = 0;
        return 0;
    }
    if ((n != 6 && n != 5) || (s[0] != '+' && s[0] != '-') || !digits(s + 1, s + n, 2, &h)) {
        return -1;
    }
    if (n == 6 ? (s[3] != ':' || !digits(s + 4, s + n, 2, &mi)) : !digits(s + 3, s + n, 2, &mi)) {
        return -1;
    }
    if (h > 23 || mi > 59) {
        return -1;
    }
    *offset_s = (h * 3600 + mi * 60) * (s[0] == '-' ? -1 : 1);
    return 0;
}
