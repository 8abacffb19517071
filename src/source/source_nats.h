/*
 * source_nats — private to the nats source, its config and its tests: the
 * source's own config (its keys: source_nats_conf.c).
 *
 * Hung off struct sl_source_config's type_conf when type = nats; owned by
 * the config, read-only once loaded.  Thread: any.
 */
#ifndef SLUICE_SOURCE_NATS_H
#define SLUICE_SOURCE_NATS_H

#include <stdint.h>

#include "sink/sink_nats.h"
#include "sluice/config.h"
#include "sluice/source.h"

extern const struct sl_source_type sl_source_nats_type;

struct sl_source_nats_config {
    struct sl_nats_servers url;
    char *stream;
    char *consumer;       /* durable pull consumer, created if missing */
    char *filter_subject; /* NULL: the whole stream */
    unsigned batch;       /* messages per fetch */
    uint64_t ack_wait_ms; /* the consumer's AckWait when sluiced creates it */
    char *user;
    char *password;
    char *creds_file;
};

static inline const struct sl_source_nats_config *
sl_source_nats_config(const struct sl_source_config *cfg)
{
    return cfg->type_conf;
}

#endif
