/*
 * source_unix_conf — the keys of a source with type = unix_stream (the
 * stream keys and the socket file's keys) or unix_dgram (the socket file's
 * keys: socket_mode, socket_owner, socket_group).
 *
 * Parsed into struct sl_source_unix_config (source_unix.h); each entry's
 * impl is its type (source_unix.c).  listen is parsed as a path for these
 * types by the source kind (source_conf.c), which sees the type's family.
 * Runs on the main thread while the config loads (see sluice/conf.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec/framing_conf.h"
#include "daemon/registry.h"
#include "source/source_unix.h"

/* A user or group: a name the system knows, or a number. */
static int
unix_key_id(const char *value, bool group, struct sl_source_unix_id *out, char *why, size_t whylen)
{
    size_t digits = strspn(value, "0123456789");
    if (digits > 0 && digits <= 10 && value[digits] == '\0') {
        unsigned long long v = strtoull(value, NULL, 10);
        if (v < UINT32_MAX) {
            out->set = true;
            out->id = (uint32_t)v;
            return 0;
        }
    }
    /* The reentrant lookups: a config may be loaded while threads run. */
    char buf[16384];
    if (group) {
        struct group grb, *gr = NULL;
        if (getgrnam_r(value, &grb, buf, sizeof(buf), &gr) == 0 && gr != NULL) {
            out->set = true;
            out->id = (uint32_t)gr->gr_gid;
            return 0;
        }
    } else {
        struct passwd pwb, *pw = NULL;
        if (getpwnam_r(value, &pwb, buf, sizeof(buf), &pw) == 0 && pw != NULL) {
            out->set = true;
            out->id = (uint32_t)pw->pw_uid;
            return 0;
        }
    }
    return sl_conf_expected(why, whylen, group ? "a group name or gid" : "a user name or uid",
                            value);
}

static int
unix_key_owner(const struct sl_conf_key *key, const char *value, void *obj, char *why,
               size_t whylen)
{
    return unix_key_id(value, false, (void *)((char *)obj + key->offset), why, whylen);
}

static int
unix_key_group(const struct sl_conf_key *key, const char *value, void *obj, char *why,
               size_t whylen)
{
    return unix_key_id(value, true, (void *)((char *)obj + key->offset), why, whylen);
}

#define UNIX_OFF(f) offsetof(struct sl_source_unix_config, f)
#define UNIX_STREAM_OFF(f) (UNIX_OFF(stream) + offsetof(struct sl_source_tcp_config, f))
/* The socket file's keys, which both types have. */
#define UNIX_FILE_KEYS                                                                             \
    {.name = "socket_mode",                                                                        \
     .parse = sl_conf_key_mode,                                                                    \
     .offset = UNIX_OFF(socket_mode),                                                              \
     .def = "0660",                                                                                \
     .doc = "permissions of the socket file (octal)"},                                             \
        {.name = "socket_owner",                                                                   \
         .parse = unix_key_owner,                                                                  \
         .offset = UNIX_OFF(socket_owner),                                                         \
         .def_doc = "sluiced's user",                                                              \
         .doc = "owner of the socket file: a user name or uid"},                                   \
    {                                                                                              \
        .name = "socket_group", .parse = unix_key_group, .offset = UNIX_OFF(socket_group),         \
        .def_doc = "sluiced's group", .doc = "group of the socket file: a group name or gid"       \
    }

static const struct sl_conf_key source_unix_stream_keys[] = {
    SL_SOURCE_TCP_FRAMED_KEYS(UNIX_STREAM_OFF),
    UNIX_FILE_KEYS,
};

static const struct sl_conf_key source_unix_dgram_keys[] = {
    UNIX_FILE_KEYS,
};

const struct sl_conf_type sl_source_unix_stream_conf = {
    .name = "unix_stream",
    .keys = source_unix_stream_keys,
    .nkeys = SL_CONF_NKEYS(source_unix_stream_keys),
    .size = sizeof(struct sl_source_unix_config),
    .check = sl_source_tcp_conf_check,
    .impl.source = &sl_source_unix_stream,
};

const struct sl_conf_type sl_source_unix_dgram_conf = {
    .name = "unix_dgram",
    .keys = source_unix_dgram_keys,
    .nkeys = SL_CONF_NKEYS(source_unix_dgram_keys),
    .size = sizeof(struct sl_source_unix_config),
    .impl.source = &sl_source_unix_dgram,
};
