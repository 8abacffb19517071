/*
 * framing — finding events in a byte stream: newline framing, and RFC 6587
 * octet counting for stream sources.
 *
 * Newline framing (sl_frame_lines): an event is the bytes before a '\n',
 * with one trailing '\r' removed.  Empty events are skipped.  A line longer
 * than max_line bytes (after the '\r' is removed) is never passed on: it is
 * counted once in st->oversize and skipped up to its newline, across any
 * number of reads, and the stream goes on.  This is the frame/frame_end
 * pair of every codec (sluice/codec.h), used as it is by datagram sources.
 *
 * Stream sources (tcp, unix_stream) call sl_frame()/sl_frame_end() with a
 * state set up by sl_frame_init() from their `framing` key; sl_frame()
 * dispatches on it:
 *   lf      newline framing, as above;
 *   octet   MSG-LEN SP SYSLOG-MSG (RFC 6587 3.4.1), MSG-LEN at most 10
 *           digits, no leading zero; a frame over max_line is skipped
 *           without being buffered (st->oversize); '\n' and '\r' between
 *           frames are ignored; one trailing "\n" or "\r\n" inside a frame
 *           is removed (with a single_line codec, json, any other '\n' in
 *           the frame becomes a space); a malformed header counts in
 *           st->errors and the
 *           stream is newline-framed from that header's first byte on;
 *   auto    octet when the stream's first bytes are "[1-9][0-9]{0,9} <",
 *           newline framing otherwise (decided once, at most 12 bytes in).
 * docs/protocol.md states the rules byte by byte with their tests.
 *
 * Pure code: no allocation, no libevent; safe from any thread for distinct
 * states.
 */
#ifndef SLUICE_FRAMING_H
#define SLUICE_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/codec.h" /* struct sl_frame_state, sl_frame_fn, enum sl_framing */

/* At most this many digits in an octet count (CVE-2022-24903). */
#define SL_FRAME_COUNT_DIGITS 10
/* Bytes of an undecided auto stream or a partial header sl_frame() may
 * leave over, whatever max_line ("1234567890 " is not decided yet). */
#define SL_FRAME_HEAD_MAX (SL_FRAME_COUNT_DIGITS + 1)

/*
 * Offers every complete line in buf[0..len) to fn, in order.  Returns how
 * many bytes were consumed: everything up to the last newline, plus a
 * trailing partial line when it is already known to be oversize (it is then
 * discarded and the state remembers to skip the rest of it); or less, when
 * fn asked to stop (the first unconsumed byte starts the refused line).
 * The caller keeps buf[consumed..len) and offers it again, with more bytes
 * appended, in the next call; that remainder is never longer than
 * max_line + 1 unless fn stopped.
 */
size_t sl_frame_lines(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                      sl_frame_fn fn, void *arg, bool *stopped);

/*
 * Ends a stream (EOF) or a datagram: offers buf[0..len), the bytes after the
 * last newline, as one final line (unless empty, or oversize, or the state
 * is discarding), and resets the state.  Returns what fn returned (0 when
 * fn was not called).
 */
int sl_frame_finish(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                    sl_frame_fn fn, void *arg);

/* Sets up st for a new stream framed as framing says, for events of codec
 * (its single_line flag; may be NULL), counters zeroed. */
void sl_frame_init(struct sl_frame_state *st, enum sl_framing framing,
                   const struct sl_codec_type *codec);

/*
 * A stream source's framing: the contract of sl_frame_lines() (consumed
 * bytes, the remainder offered again with more appended, *stopped; never
 * more than max_line + 1 bytes, or SL_FRAME_HEAD_MAX if that is more, left
 * over unless fn stopped) for the
 * state's framing.  st->oversize counts skipped oversize events,
 * st->errors framing errors (st->error says the last one).  buf is the
 * caller's and writable: with st->fold_newlines, the '\n' bytes inside an
 * octet-counted frame are replaced by ' ' before it is offered (so the
 * same bytes offered again are offered the same).
 */
size_t sl_frame(struct sl_frame_state *st, char *buf, size_t len, size_t max_line, sl_frame_fn fn,
                void *arg, bool *stopped);

/*
 * Ends a stream (EOF): buf[0..len) is what sl_frame() left.  Newline
 * framing (or auto still undecided): as sl_frame_finish().  Octet
 * counting: an incomplete header or frame is not an event; it counts as a
 * framing error ("frame cut off at end of stream") unless it is the rest
 * of an oversize frame (already counted).  Resets st to its configured
 * framing, keeping the counters, unless fn refused the final line.
 * Returns what fn returned (0 when fn was not called); when non-zero, the
 * caller offers the same tail again later.
 */
int sl_frame_end(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                 sl_frame_fn fn, void *arg);

/* True inside an octet-counted frame whose header was consumed: at EOF,
 * sl_frame_end() must be called even with no bytes left over. */
static inline bool
sl_frame_inside(const struct sl_frame_state *st)
{
    return st->body > 0;
}

/* "lf", "auto", "octet_counted". */
const char *sl_framing_name(enum sl_framing framing);

#endif
