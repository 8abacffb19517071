/*
 * encode — turning one framed line into one output line (NDJSON).
 *
 *   codec json: the client's bytes, unchanged, after validation; with
 *               fields, the members are spliced in right after the opening
 *               '{' (no re-serialisation, key order kept).
 *   codec raw:  {"message":"<line, JSON-escaped>"}, fields first.
 * Every output line ends in '\n'.
 *
 * "fields" is a ready-made member list without braces, e.g.
 *   "received_at":"2026-11-26T12:00:00.000000Z","source":"app"
 * built once per read with sl_encode_field() (src/source/producer.c).
 *
 * The codecs (sluice/codec.h) wrap sl_encode_json() (src/codec/codec_json.c)
 * and sl_encode_raw() (src/codec/codec_raw.c); the field helpers are in
 * src/codec/encode.c.
 *
 * Pure functions, no allocation; any thread.
 */
#ifndef SLUICE_ENCODE_H
#define SLUICE_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "codec/validate.h"
#include "sluice/codec.h" /* enum sl_encode_result */

/* Longest text of one "received_at" value: 2026-11-26T12:00:00.123456Z */
#define SL_TIME_TEXT_MAX 32

/*
 * Formats a CLOCK_REALTIME time as RFC 3339 UTC with microseconds into buf
 * (≥ SL_TIME_TEXT_MAX bytes).  Returns the length.
 */
size_t sl_encode_time(uint64_t realtime_ns, char *buf);

/*
 * Appends "key":"value" (value JSON-escaped), preceded by a comma when
 * *len > 0, to buf of size cap.  Returns 0, or -1 when it does not fit.
 */
int sl_encode_field(char *buf, size_t cap, size_t *len, const char *key, const char *value,
                    size_t vlen);

/*
 * Writes the output line for a json-codec line into out[0..room).
 * On SL_ENCODE_OK *outlen is the number of bytes written.  *why gets the
 * validator's verdict on SL_ENCODE_INVALID.
 */
enum sl_encode_result sl_encode_json(const char *line, size_t len, const char *fields, size_t flen,
                                     char *out, size_t room, size_t *outlen,
                                     enum sl_validate_result *why);

/*
 * Writes the output line for a raw-codec line.  scratch must have room for
 * SL_ESCAPE_MAX(len) bytes (the escaped text goes there first, so the exact
 * size is known).  max_out is the largest output that could ever fit (the
 * chunk size): beyond it the line is SL_ENCODE_TOO_LARGE.
 */
enum sl_encode_result sl_encode_raw(const char *line, size_t len, const char *fields, size_t flen,
                                    char *scratch, char *out, size_t room, size_t max_out,
                                    size_t *outlen);

/*
 * Starts an output object whose members after fields are blen bytes (the
 * rest of the line, '}' and '\n' included): checks that
 * {fields,<blen bytes> fits, writes "{" and "fields," (just "{" when flen
 * is 0) at out and returns where the blen bytes go.  Returns NULL with *r
 * SL_ENCODE_TOO_LARGE (over max_out) or SL_ENCODE_NO_ROOM (over room).
 */
char *sl_encode_open(char *out, size_t room, size_t max_out, const char *fields, size_t flen,
                     size_t blen, enum sl_encode_result *r);

/*
 * Writes the output line for a syslog-codec line (src/codec/codec_syslog.c):
 * the parsed message as one JSON object, or, when line is not syslog in
 * opts->syslog_format, {"message":"<line>"} with *unparsed set.  scratch
 * has the codec's scratch_bytes(len) bytes; recv_ns is the receive time
 * (the year of an RFC 3164 date).
 */
enum sl_encode_result sl_encode_syslog(const char *line, size_t len, const char *fields,
                                       size_t flen, const struct sl_codec_opts *opts,
                                       uint64_t recv_ns, char *scratch, char *out, size_t room,
                                       size_t max_out, size_t *outlen, bool *unparsed);

/*
 * Appends "peer_pid":PID,"peer_uid":UID,"peer_gid":GID (a local sender's
 * credentials), preceded by a comma when *len > 0.  Returns 0, or -1 when
 * it does not fit.
 */
int sl_encode_cred(char *buf, size_t cap, size_t *len, int64_t pid, uint32_t uid, uint32_t gid);

/* "127.0.0.1:5170" or "[::1]:5170" for addr; returns the length. */
size_t sl_encode_sockaddr(const struct sockaddr *sa, char *buf, size_t cap);

#endif
