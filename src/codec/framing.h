/*
 * framing — finding newline-delimited events in a byte stream.
 *
 * An event is the bytes before a '\n', with one trailing '\r' removed.
 * Empty events are skipped.  A line longer than max_line bytes (after the
 * '\r' is removed) is never passed on: it is counted once in
 * st->oversize and skipped up to its newline, across any number of reads,
 * and the stream goes on.
 *
 * This is the frame/frame_end pair of the json and raw codecs
 * (sluice/codec.h); an octet-counting framer would sit beside it.
 *
 * Pure code: no allocation, no libevent; safe from any thread for distinct
 * states.
 */
#ifndef SLUICE_FRAMING_H
#define SLUICE_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/codec.h" /* struct sl_frame_state, sl_frame_fn */

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

#endif
