/*
 * framing_conf — the `framing` key of stream sources (tcp, unix_stream),
 * shared so every stream source type parses and defaults it alike.
 *
 * A type lists SL_FRAMING_KEY(offset of its enum sl_framing field) in its
 * key table and calls sl_framing_conf_default() from its check hook: a
 * framing the file does not set becomes the codec's default_framing
 * (auto for syslog, lf for json and raw).  Runs on the main thread while
 * the config loads (see sluice/conf.h).
 */
#ifndef SLUICE_FRAMING_CONF_H
#define SLUICE_FRAMING_CONF_H

#include "sluice/codec.h"
#include "sluice/conf.h"
#include "sluice/config.h"

/* lf, auto, octet_counted (NULL-terminated). */
extern const struct sl_conf_choice sl_framing_choices[];

#define SL_FRAMING_KEY(off)                                                                        \
    {                                                                                              \
        .name = "framing", .parse = sl_conf_key_enum, .offset = (off),                             \
        .choices = sl_framing_choices, .def_doc = "auto with codec = syslog, else lf",             \
        .doc = "lf, octet_counted (RFC 6587) or auto (octet_counted if the connection "            \
               "starts with a length)"                                                             \
    }

/* Sets *framing to common's codec default when the section does not set
 * the key (and the codec is known). */
void sl_framing_conf_default(struct sl_conf_check *chk, const struct sl_source_config *common,
                             enum sl_framing *framing);

#endif
