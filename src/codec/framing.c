/*
 * framing — newline framing of event streams (pure functions, any thread).
 *
 * The scan uses memchr, which the C library vectorises; this loop is the
 * hottest in the daemon after the validator.
 */
#include "codec/framing.h"

#include <string.h>

static int
frame_offer(struct sl_frame_state *st, const char *line, size_t len, size_t max_line,
            sl_frame_fn fn, void *arg)
{
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (len == 0) {
        return 0;
    }
    if (len > max_line) {
        st->oversize++;
        return 0;
    }
    return fn(arg, line, len);
}

size_t
sl_frame_lines(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
               sl_frame_fn fn, void *arg, bool *stopped)
{
    size_t pos = 0;
    *stopped = false;
    if (st->discarding) {
        const char *nl = memchr(buf, '\n', len);
        if (nl == NULL) {
            return len;
        }
        st->discarding = false;
        pos = (size_t)(nl - buf) + 1;
    }
    while (pos < len) {
        const char *start = buf + pos;
        const char *nl = memchr(start, '\n', len - pos);
        if (nl == NULL) {
            break;
        }
        size_t n = (size_t)(nl - start);
        if (frame_offer(st, start, n, max_line, fn, arg) != 0) {
            *stopped = true;
            return pos;
        }
        pos += n + 1;
    }
    /* A partial line already longer than any allowed line (+1 for a '\r'
     * that may still be stripped) is discarded now, not buffered. */
    if (len - pos > max_line + 1) {
        st->oversize++;
        st->discarding = true;
        return len;
    }
    return pos;
}

int
sl_frame_finish(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                sl_frame_fn fn, void *arg)
{
    bool discarding = st->discarding;
    st->discarding = false;
    if (discarding) {
        return 0;
    }
    return frame_offer(st, buf, len, max_line, fn, arg);
}
