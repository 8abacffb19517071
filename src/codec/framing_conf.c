/*
 * framing_conf — the `framing` key of stream sources (framing_conf.h).
 * Main thread, while the config loads.
 */
#include "codec/framing_conf.h"

const struct sl_conf_choice sl_framing_choices[] = {
    {"lf", SL_FRAMING_LF},
    {"auto", SL_FRAMING_AUTO},
    {"octet_counted", SL_FRAMING_OCTET},
    {NULL, 0},
};

void
sl_framing_conf_default(struct sl_conf_check *chk, const struct sl_source_config *common,
                        enum sl_framing *framing)
{
    if (!sl_conf_key_set(chk, "framing") && common->codec != NULL) {
        *framing = common->codec->default_framing;
    }
}
