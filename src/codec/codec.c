/*
 * codec — the table of codecs (sluice/codec.h).  A new codec is one file in
 * src/codec/ and one line here.
 */
#include <string.h>

#include "codec/codecs.h"
#include "sluice/codec.h"

static const struct sl_codec_type *const codecs[] = {
    &sl_codec_json,
    &sl_codec_raw,
};

const struct sl_codec_type *
sl_codec_find(const char *name)
{
    for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
        if (strcmp(codecs[i]->name, name) == 0) {
            return codecs[i];
        }
    }
    return NULL;
}
