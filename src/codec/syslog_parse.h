/*
 * syslog_parse — splitting one syslog message (RFC 5424 or RFC 3164 as
 * really sent) into its parts, without copying or allocating.
 *
 * The parser only finds the parts: every text part of struct sl_syslog_msg
 * is a span into the caller's line (still raw: not yet JSON-escaped, SD
 * param values still with their \" \\ \] escapes); the timestamp is
 * converted to Unix time UTC.  src/codec/codec_syslog.c writes the JSON.
 * Every heuristic (RFC 3164 has no grammar) is listed with an example line
 * in docs/protocol.md, "Codec syslog", and has a case in tests/data/syslog/.
 *
 * Pure functions: no allocation, no globals, any thread.
 */
#ifndef SLUICE_SYSLOG_PARSE_H
#define SLUICE_SYSLOG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The source key syslog_format. */
enum sl_syslog_format {
    SL_SYSLOG_AUTO = 0, /* "<PRI>1 " is RFC 5424, anything else RFC 3164 */
    SL_SYSLOG_RFC5424,
    SL_SYSLOG_RFC3164,
};

/* A part of the line; len 0: absent. */
struct sl_syslog_span {
    const char *p;
    size_t len;
};

struct sl_syslog_msg {
    int facility;   /* 0..23 */
    int severity;   /* 0..7 */
    int version;    /* RFC 5424 VERSION (1..999); 0 for RFC 3164 */
    bool has_time;  /* false: no timestamp (5424 NILVALUE, or none in 3164) */
    int64_t time_s; /* Unix seconds, UTC; the year is 0000..9999 */
    uint32_t time_us;
    struct sl_syslog_span hostname, appname, procid, msgid;
    struct sl_syslog_span sd;      /* the SD-ELEMENTs, checked; walk with sl_syslog_sd_* */
    bool sd_escapes;               /* some PARAM-VALUE holds a backslash */
    struct sl_syslog_span message; /* a leading UTF-8 BOM of a 5424 MSG is not included */
};

/*
 * Parses line[0..len) in the given format.  tz_offset_s is the zone (seconds
 * east of UTC) of RFC 3164 timestamps that carry none; recv_s the receive
 * time (Unix seconds) from which an RFC 3164 date gets its year.  Returns 0
 * with *m filled, or -1: the line is not syslog in that format (the caller
 * keeps it as a whole message).  line is borrowed; m's spans point into it.
 * Thread: any.
 */
int sl_syslog_parse(const char *line, size_t len, enum sl_syslog_format format, int32_t tz_offset_s,
                    int64_t recv_s, struct sl_syslog_msg *m);

/*
 * Walks a parsed m->sd: *pos starts at m->sd.p.  sl_syslog_sd_element()
 * gives the next SD-ID and returns false at the end; after it,
 * sl_syslog_sd_param() gives that element's params one by one (value raw,
 * with its escapes) and returns false at the element's ']'.  Only for an
 * sd span the parser accepted.
 */
bool sl_syslog_sd_element(const char **pos, const char *end, struct sl_syslog_span *id);
bool sl_syslog_sd_param(const char **pos, const char *end, struct sl_syslog_span *name,
                        struct sl_syslog_span *value);

/* "user", "local0", ... for 0..23; "notice", ... for 0..7.  Thread: any. */
const char *sl_syslog_facility_name(int facility);
const char *sl_syslog_severity_name(int severity);

/*
 * Writes a Unix time as "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (27 bytes, no NUL)
 * into out.  s must be within years 0000..9999.
 */
size_t sl_syslog_format_time(int64_t s, uint32_t us, char *out);

/*
 * The zone of syslog_timezone: "UTC", "Z", "+HH:MM", "-HH:MM", "+HHMM" or
 * "-HHMM" (|offset| < 24 h).  Returns 0 with *offset_s set, or -1.
 */
int sl_syslog_parse_zone(const char *s, int32_t *offset_s);

#endif
