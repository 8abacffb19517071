/*
 * source_relp_conf — the keys of a source with type = relp: the tls keys
 * (util/tls.h), as far as librelp can honour them.
 *
 * librelp sets the server side's limits itself (the window is the
 * sender's: omrelp's windowSize) and binds its own socket, so recv_buffer
 * does not apply.  The codec defaults to the one syslog senders need.
 *
 * TLS is librelp's own (its OpenSSL back end, relpEngineSetTLSLibByName:
 * source_relp.c says why), so a key librelp has no way to honour is a load
 * error that says so, never a setting silently ignored:
 *   - tls_client_auth = optional (librelp asks for a certificate and
 *     requires it, or does not ask);
 *   - tls_handshake_timeout (librelp has no handshake deadline);
 *   - a `*` in tls_allowed_names (librelp would read it as a wildcard;
 *     the other sources match names exactly);
 *   - add_fields = peer_cert (librelp does not give out the certificate).
 * Runs on the main thread while the config loads.
 */
#include <stddef.h>
#include <string.h>

#include "daemon/registry.h"
#include "source/source_relp.h"

#define RELP_OFF(f) offsetof(struct sl_source_relp_config, f)
static const struct sl_conf_key source_relp_keys[] = {
    SL_TLS_SOURCE_KEYS(RELP_OFF(tls)),
};

/* RELP carries syslog messages: parse them (a line that is not syslog is
 * kept whole and counted unparsed). */
static const struct sl_conf_default source_relp_defaults[] = {
    {"codec", "syslog"},
    {NULL, NULL},
};

static void
source_relp_check(struct sl_conf_check *chk, void *common, void *conf)
{
    const struct sl_source_config *sc = common;
    struct sl_source_relp_config *k = conf;
    const char *label = sl_conf_label(chk);
    if (sl_conf_key_set(chk, "recv_buffer")) {
        sl_conf_error(chk, sl_conf_key_line(chk, "recv_buffer"),
                      "%s: recv_buffer does not apply to type = relp (librelp makes its socket)",
                      label);
    }
    if (k->tls.on && k->tls.client_auth == SL_TLS_AUTH_OPTIONAL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls_client_auth"),
                      "%s: tls_client_auth = optional is not possible with type = relp (librelp "
                      "either requires a client certificate or does not ask for one): use "
                      "required or none",
                      label);
    }
    if (k->tls.on && sl_conf_key_set(chk, "tls_handshake_timeout")) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls_handshake_timeout"),
                      "%s: tls_handshake_timeout is not possible with type = relp (librelp has "
                      "no handshake deadline); remove it",
                      label);
    }
    for (size_t i = 0; k->tls.on && i < k->tls.nnames; i++) {
        if (strchr(k->tls.names[i], '*') != NULL) {
            sl_conf_error(chk, sl_conf_key_line(chk, "tls_allowed_names"),
                          "%s: tls_allowed_names: \"%s\": a '*' is not allowed with type = relp "
                          "(librelp would take it as a wildcard; names match exactly)",
                          label, k->tls.names[i]);
            break;
        }
    }
    if (k->tls.on && k->tls.ciphers != NULL && strpbrk(k->tls.ciphers, ";=") != NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "tls_ciphers"),
                      "%s: tls_ciphers: ';' and '=' are not possible with type = relp (librelp "
                      "splits its OpenSSL commands on them)",
                      label);
    }
    if (k->tls.on && (sc->add_fields & SL_FIELD_PEER_CERT) != 0) {
        sl_conf_error(chk, sl_conf_key_line(chk, "add_fields"),
                      "%s: add_fields = peer_cert is not possible with type = relp (librelp does "
                      "not give out the client certificate)",
                      label);
    }
    sl_tls_conf_check(chk, &k->tls, SL_TLS_SERVER);
}

static void
source_relp_fini(void *conf)
{
    struct sl_source_relp_config *k = conf;
    sl_tls_conf_fini(&k->tls);
}

const struct sl_conf_type sl_source_relp_conf = {
    .name = "relp",
    .keys = source_relp_keys,
    .nkeys = SL_CONF_NKEYS(source_relp_keys),
    .size = sizeof(struct sl_source_relp_config),
    .defaults = source_relp_defaults,
    .check = source_relp_check,
    .fini = source_relp_fini,
    .impl.source = &sl_source_relp,
};
