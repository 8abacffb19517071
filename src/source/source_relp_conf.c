/*
 * source_relp_conf — what a source with type = relp changes in the keys.
 *
 * relp has no keys of its own: librelp sets the server side's limits
 * itself (the window is the sender's: omrelp's windowSize), and binds its
 * own socket, so recv_buffer does not apply.  The codec defaults to the
 * one syslog senders need.  Runs on the main thread while the config loads.
 */
#include <stddef.h>

#include "daemon/registry.h"
#include "source/source_relp.h"

/* RELP carries syslog messages: parse them (a line that is not syslog is
 * kept whole and counted unparsed). */
static const struct sl_conf_default source_relp_defaults[] = {
    {"codec", "syslog"},
    {NULL, NULL},
};

static void
source_relp_check(struct sl_conf_check *chk, void *common, void *conf)
{
    if (sl_conf_key_set(chk, "recv_buffer")) {
        sl_conf_error(chk, sl_conf_key_line(chk, "recv_buffer"),
                      "%s: recv_buffer does not apply to type = relp (librelp makes its socket)",
                      sl_conf_label(chk));
    }
}

const struct sl_conf_type sl_source_relp_conf = {
    .name = "relp",
    .defaults = source_relp_defaults,
    .check = source_relp_check,
    .impl.source = &sl_source_relp,
};
