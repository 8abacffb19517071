/*
 * codec — how a source's bytes become output lines: framing (finding each
 * event in a byte stream) and encoding (checking or wrapping one event
 * into one NDJSON line of a chunk).
 *
 * A codec is a const table of functions (struct sl_codec_type); the codecs
 * are listed once, in src/daemon/registry.c, and a loaded source config
 * points at its codec (sl_source_config.codec).  Sources call
 * frame() once per read or datagram (it loops over the events itself and
 * calls the source back per event), and the producer's lane calls encode()
 * once per event.  Both are pure: no allocation, no libevent, any thread
 * for distinct states.
 *
 * Adding a codec: one file in src/codec/ defining a struct sl_codec_type,
 * one line in the list in src/daemon/registry.c (and its extern in
 * registry.h), its docs (see docs/architecture.md, "Adding a codec").
 *
 * Encode side: encode() gets, in struct sl_codec_out, the source's codec
 * options (opts, resolved once at load) and the receive time of the read
 * (recv_ns), and may flag an event it kept without parsing it (unparsed,
 * counted by the lane).  Codecs that need neither ignore them.
 */
#ifndef SLUICE_CODEC_H
#define SLUICE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * How a stream source (tcp, unix_stream) finds events in its bytes: the
 * source's `framing` key (RFC 6587; src/codec/framing.h, docs/protocol.md).
 * Zero is newline framing, so a zeroed state frames lines.
 */
enum sl_framing {
    SL_FRAMING_LF = 0, /* one event per '\n'-terminated line */
    SL_FRAMING_AUTO,   /* per connection: octet counting if it starts "[1-9][0-9]{0,9} <" */
    SL_FRAMING_OCTET   /* MSG-LEN SP SYSLOG-MSG (RFC 6587 3.4.1) */
};

/* Per-stream framing state (one per TCP connection; one per datagram
 * batch for UDP).  Zero-initialised at the start of a stream (newline
 * framing), or set up by sl_frame_init() for a stream source's framing. */
struct sl_frame_state {
    bool discarding;    /* inside an oversize line: skip to its newline */
    uint8_t framing;    /* enum sl_framing: as configured (sl_frame_init) */
    uint8_t mode;       /* enum sl_framing: now (AUTO: not decided yet) */
    bool fold_newlines; /* octet: '\n' inside a frame becomes ' ' (codec single_line) */
    uint64_t oversize;  /* oversize events seen so far */
    uint64_t body;      /* octet: length of the frame whose header was read; 0: none */
    uint64_t skip;      /* octet: bytes of an oversize frame still to skip */
    uint64_t errors;    /* framing errors so far (malformed header, cut-off frame) */
    const char *error;  /* the last framing error, static text */
    /* Newline framing's index of the event being offered, for the json
     * validator (src/codec/framing.c, THE LINE INDEX): valid only while
     * index_line is the line fn was called with; NULL: none. */
    const char *index_line;
    uint64_t index_quotes; /* bit i: index_line[i] is '"' */
    uint64_t index_bad;    /* bit i: index_line[i] is '\\', below 0x20 or above 0x7f */
};

/* Called by frame() for each event; returns 0 to go on, non-zero to stop
 * before consuming this event (the caller will offer it again later). */
typedef int (*sl_frame_fn)(void *arg, const char *line, size_t len);

/*
 * A source's options for its codec: parsed from the source's own keys
 * (src/source/source_conf.c) once at load, read-only after; encode() gets
 * them in sl_codec_out.opts.  A codec that takes no options ignores them.
 */
struct sl_codec_opts {
    int syslog_format;          /* codec syslog: enum sl_syslog_format (syslog_format) */
    int32_t syslog_tz_offset_s; /* codec syslog: syslog_timezone, seconds east of UTC */
};

/* What encode() writes into, and what it reports back. */
struct sl_codec_out {
    char *data;         /* where the output line goes (borrowed: the lane's chunk) */
    size_t room;        /* bytes free at data */
    size_t max_out;     /* the largest output that could ever fit (the chunk size) */
    char *scratch;      /* scratch_bytes(max_line) bytes of the thread's, or NULL when 0 */
    size_t len;         /* out, SL_ENCODE_OK: bytes written */
    const char *reason; /* out, SL_ENCODE_INVALID: why, static text ("trailing data") */
    /* The source's codec options (borrowed: its config). */
    const struct sl_codec_opts *opts;
    uint64_t recv_ns; /* CLOCK_REALTIME of the read that brought the event */
    bool unparsed;    /* out, SL_ENCODE_OK: the codec could not parse the event and kept
                         it whole (codec syslog: {"message":...}); the lane counts it */
};

enum sl_encode_result {
    SL_ENCODE_OK = 0,
    SL_ENCODE_NO_ROOM,  /* out is too small: retry with an empty chunk */
    SL_ENCODE_INVALID,  /* the event is not acceptable to the codec (o->reason says why) */
    SL_ENCODE_TOO_LARGE /* the output would not fit even an empty chunk */
};

struct sl_codec_type {
    const char *name; /* the config's codec value: "json", "raw" */
    /* The framing of a stream source using this codec when its config
     * does not say (syslog: auto); zero, SL_FRAMING_LF, for the rest. */
    enum sl_framing default_framing;
    /* encode() copies an event's bytes as they are into one output line
     * (json): a '\n' inside an octet-counted frame is then turned into a
     * space by the framing (in JSON it can only be whitespace). */
    bool single_line;
    /*
     * Newline framing for datagram sources (stream sources call
     * sl_frame(), which honours their `framing`).
     * Offers every complete event in buf[0..len) to fn, in order, and
     * returns how many bytes were consumed; the caller keeps the rest and
     * offers it again with more bytes appended (the contract of
     * sl_frame_lines() in src/codec/framing.h).  *stopped is set when fn
     * asked to stop.  Events longer than max_line are counted in
     * st->oversize and skipped.
     */
    size_t (*frame)(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                    sl_frame_fn fn, void *arg, bool *stopped);
    /*
     * Ends a stream (EOF) or a datagram: buf[0..len) is what frame() left;
     * offers it as a final event if the framing allows, and resets st.
     * Returns what fn returned (0 when fn was not called).
     */
    int (*frame_end)(struct sl_frame_state *st, const char *buf, size_t len, size_t max_line,
                     sl_frame_fn fn, void *arg);
    /*
     * Writes the output line (ending in '\n') for one event into o->data,
     * with fields (a ready-made JSON member list without braces, flen 0
     * for none) spliced in.  The result says what the lane must do.
     */
    enum sl_encode_result (*encode)(const char *line, size_t len, const char *fields,
                                    size_t flen, struct sl_codec_out *o);
    /* Scratch space encode() needs for events of up to max_line bytes. */
    size_t (*scratch_bytes)(size_t max_line);
    /*
     * On datagram sources: true when a datagram is one event whatever it
     * holds (RFC 5426: one syslog message per datagram; one trailing "\n"
     * or "\r\n" is dropped, inner newlines stay in the event), instead of
     * being split by frame().
     */
    bool whole_datagram;
};

#endif
