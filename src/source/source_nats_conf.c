/*
 * source_nats_conf — the keys of a source with type = nats, and their
 * checks.  Parsed into struct sl_source_nats_config (source_nats.h).
 * Main thread, while the config loads.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/registry.h"
#include "source/source_nats.h"

static int
nats_src_key_subject(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                     size_t whylen)
{
    for (const char *p = value; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            return sl_conf_expected(why, whylen, "a subject (wildcards allowed, no blanks)",
                                    value);
        }
    }
    if (value[0] == '\0') {
        return sl_conf_expected(why, whylen, "a subject", value);
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

static void
nats_src_check(struct sl_conf_check *chk, void *common, void *conf)
{
    const struct sl_source_nats_config *k = conf;

    (void)common;
    if (sl_conf_key_set(chk, "listen")) {
        sl_conf_error(chk, sl_conf_key_line(chk, "listen"),
                      "%s: a nats source connects out and listens on nothing: no listen key",
                      sl_conf_label(chk));
    }
    sl_nats_check_auth(chk, k->user, k->password, k->creds_file);
}

static void
nats_src_fini(void *conf)
{
    struct sl_source_nats_config *k = conf;

    sl_nats_servers_fini(&k->url);
    free(k->stream);
    free(k->consumer);
    free(k->filter_subject);
    free(k->user);
    free(k->password);
    free(k->creds_file);
}

static const char *
nats_src_summary(const void *conf)
{
    const struct sl_source_nats_config *k = conf;

    return k->consumer;
}

#define NSRC_OFF(f) offsetof(struct sl_source_nats_config, f)
static const struct sl_conf_key source_nats_keys[] = {
    {.name = "url",
     .parse = sl_nats_key_url,
     .offset = NSRC_OFF(url),
     .flags = SL_CONF_REQUIRED,
     .doc = "NATS server(s): nats://host:port, several separated by commas"},
    {.name = "stream",
     .parse = sl_nats_key_token,
     .offset = NSRC_OFF(stream),
     .flags = SL_CONF_REQUIRED,
     .doc = "the JetStream stream to read"},
    {.name = "consumer",
     .parse = sl_nats_key_token,
     .offset = NSRC_OFF(consumer),
     .flags = SL_CONF_REQUIRED,
     .doc = "durable pull consumer (created if missing); instances sharing it split the work"},
    {.name = "filter_subject",
     .parse = nats_src_key_subject,
     .offset = NSRC_OFF(filter_subject),
     .doc = "only this subject (wildcards allowed) when sluiced creates the consumer"},
    {.name = "batch",
     .parse = sl_conf_key_uint,
     .offset = NSRC_OFF(batch),
     .min = 1,
     .max = 10000,
     .def = "256",
     .doc = "messages asked for per fetch"},
    {.name = "ack_wait",
     .parse = sl_conf_key_duration,
     .offset = NSRC_OFF(ack_wait_ms),
     .min = 1000,
     .max = SL_CONF_MS_PER_DAY,
     .def = "30s",
     .doc = "the consumer's AckWait when sluiced creates it: unacknowledged messages are "
            "redelivered after it"},
    SL_NATS_AUTH_KEYS(struct sl_source_nats_config),
};

/* listen, required of the other types, is not taken. */
static const struct sl_conf_default source_nats_defaults[] = {
    {"listen", NULL},
    {NULL, NULL},
};

const struct sl_conf_type sl_source_nats_conf = {
    .name = "nats",
    .keys = source_nats_keys,
    .nkeys = SL_CONF_NKEYS(source_nats_keys),
    .defaults = source_nats_defaults,
    .size = sizeof(struct sl_source_nats_config),
    .check = nats_src_check,
    .fini = nats_src_fini,
    .summary = nats_src_summary,
    .impl.source = &sl_source_nats_type,
};
