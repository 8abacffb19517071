/*
 * codecs — the codec modules, for the table in codec.c (and nothing else:
 * everyone else finds a codec with sl_codec_find()).
 */
#ifndef SLUICE_CODECS_H
#define SLUICE_CODECS_H

#include "sluice/codec.h"

extern const struct sl_codec_type sl_codec_json; /* codec_json.c */
extern const struct sl_codec_type sl_codec_raw;  /* codec_raw.c */

#endif
