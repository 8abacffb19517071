/*
 * sink_file_conf — the keys of a sink with type = file, and their checks.
 *
 * Parsed into struct sl_sink_file_config (sink_file.h).  Runs on the main
 * thread while the config loads (see sluice/conf.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/registry.h"
#include "sink/pathtmpl.h"
#include "sink/sink_file.h"

static const struct sl_conf_choice compressions[] = {
    {"none", SL_COMPRESS_NONE},
    {"gzip", SL_COMPRESS_GZIP},
    {"zstd", SL_COMPRESS_ZSTD},
    {NULL, 0},
};

static const struct sl_conf_choice fsyncs[] = {
    {"none", SL_FSYNC_NONE},
    {"batch", SL_FSYNC_BATCH},
    {"interval", SL_FSYNC_INTERVAL},
    {NULL, 0},
};

_Static_assert(sizeof(enum sl_fsync) == sizeof(int), "enum written through int *");
_Static_assert(sizeof(enum sl_compress) == sizeof(int), "enum written through int *");

/* A file path that may hold the fields of pathtmpl.h. */
static int
file_key_template(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                  size_t whylen)
{
    struct sl_pathtmpl_info info;

    if (sl_pathtmpl_check(value, &info, why, whylen) < 0) {
        return -1;
    }
    return sl_conf_key_path(key, value, obj, why, whylen);
}

/* Checks between the keys of one file sink (defaults applied). */
static void
file_check(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_sink_file_config *f = conf;
    struct sl_pathtmpl_info info;
    char a[32], why[256];

    (void)common;
    if (sl_conf_key_set(chk, "rotate_interval") && !sl_conf_key_bad(chk, "rotate_interval") &&
        f->rotate_interval_ms != 0 &&
        (f->rotate_interval_ms < SL_CONF_MS_PER_S ||
         SL_CONF_MS_PER_DAY % f->rotate_interval_ms != 0)) {
        sl_conf_format_duration(a, sizeof(a), f->rotate_interval_ms);
        sl_conf_error(chk, sl_conf_key_line(chk, "rotate_interval"),
                      "%s: rotate_interval (%s) must be at least 1s and divide 24 hours "
                      "evenly (1min, 5min, 15min, 1h, 6h, 1d, ...)",
                      sl_conf_label(chk), a);
    }
    if (sl_conf_key_good(chk, "path") && sl_pathtmpl_check(f->path, &info, why, sizeof(why)) == 0 &&
        info.dir_has_time && !f->create_dirs && !sl_conf_key_bad(chk, "create_dirs")) {
        sl_conf_error(chk, sl_conf_key_line(chk, "path"),
                      "%s: path has time fields in its directories: set create_dirs = yes",
                      sl_conf_label(chk));
    }
}

/* No two sinks append to one file. */
static void
file_xref_unique(struct sl_conf_check *chk, const struct sl_config *cfg,
                 const struct sl_sink_config *k, const struct sl_sink_file_config *f)
{
    char show[SL_CONF_SHOW_MAX + 8];

    for (size_t j = 0; j < cfg->nsinks && &cfg->sinks[j] != k; j++) {
        const struct sl_sink_config *o = &cfg->sinks[j];
        const struct sl_sink_file_config *of = o->type_conf;

        if (o->type == &sl_sink_file_conf && of != NULL && of->path != NULL &&
            strcmp(f->path, of->path) == 0) {
            sl_conf_error(chk, sl_conf_key_line(chk, "path"),
                          "%s: path \"%s\" is already written by sink \"%s\" (line %d)",
                          sl_conf_label(chk), sl_conf_show(show, sizeof(show), f->path), o->name,
                          sl_conf_key_line_of(chk, o, "path"));
            return;
        }
    }
}

/*
 * %{source} in a file sink's path names the one source feeding its queue:
 * with several (or none) the name would be ambiguous, and it must not be
 * "." or "..", which would climb the directory tree.
 */
static void
file_xref_source(struct sl_conf_check *chk, const struct sl_config *cfg,
                 const struct sl_sink_config *k, struct sl_sink_file_config *f)
{
    struct sl_pathtmpl_info info;
    const char *name = NULL;
    char why[256];
    size_t n = 0;

    if (sl_pathtmpl_check(f->path, &info, why, sizeof(why)) < 0 || !info.uses_source ||
        !sl_conf_key_good(chk, "queue")) {
        return;
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        if (cfg->sources[i].queue_index == k->queue_index && cfg->sources[i].name != NULL) {
            name = cfg->sources[i].name;
            n++;
        }
    }
    if (n != 1) {
        sl_conf_error(chk, sl_conf_key_line(chk, "path"),
                      "%s: path uses %%{source} but %zu sources feed queue \"%s\" (it needs "
                      "exactly one)",
                      sl_conf_label(chk), n, k->queue);
    } else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        sl_conf_error(chk, sl_conf_key_line(chk, "path"),
                      "%s: path uses %%{source} and the source is named \"%s\"", sl_conf_label(chk),
                      name);
    } else {
        f->source_name = name;
    }
}

static void
file_xref(struct sl_conf_check *chk, const struct sl_config *cfg, void *common, void *conf)
{
    struct sl_sink_file_config *f = conf;

    if (f->path == NULL) {
        return;
    }
    file_xref_unique(chk, cfg, common, f);
    file_xref_source(chk, cfg, common, f);
}

/*
 * Under systemd (LogsDirectory=), relative sink paths resolve against
 * $LOGS_DIRECTORY (its first entry when it lists several, separated by ':'),
 * so a unit can point sluice at /var/log/sluice without absolute paths in
 * the config.  Without it, relative paths stay relative to the working
 * directory.
 */
static void
file_finish(struct sl_conf_check *chk, void *common, void *conf)
{
    struct sl_sink_file_config *f = conf;
    /* Main thread, while loading: no other thread runs yet. */
    const char *dir = getenv("LOGS_DIRECTORY"); // NOLINT(concurrency-mt-unsafe)
    char *joined;

    (void)common;
    if (dir == NULL || *dir == '\0' || f->path == NULL || f->path[0] == '/') {
        return;
    }
    if (asprintf(&joined, "%.*s/%s", (int)strcspn(dir, ":"), dir, f->path) < 0) {
        sl_conf_oom(chk);
        return;
    }
    free(f->path);
    f->path = joined;
}

static void
file_fini(void *conf)
{
    struct sl_sink_file_config *f = conf;

    free(f->path);
}

static const char *
file_summary(const void *conf)
{
    const struct sl_sink_file_config *f = conf;

    return f->path;
}

#define FILE_OFF(f) offsetof(struct sl_sink_file_config, f)
static const struct sl_conf_key sink_file_keys[] = {
    {.name = "path",
     .parse = file_key_template,
     .offset = FILE_OFF(path),
     .flags = SL_CONF_REQUIRED,
     .doc = "file to append events to; may contain %Y %m %d %H %M %S ... and %{source}"},
    {.name = "file_mode",
     .parse = sl_conf_key_mode,
     .offset = FILE_OFF(file_mode),
     .def = "0640",
     .flags = SL_CONF_RELOAD,
     .doc = "permissions of a file sluice creates (octal)"},
    {.name = "create_dirs",
     .parse = sl_conf_key_bool,
     .offset = FILE_OFF(create_dirs),
     .def = "no",
     .flags = SL_CONF_RELOAD,
     .doc = "create missing directories of the path (yes or no)"},
    {.name = "dir_mode",
     .parse = sl_conf_key_mode,
     .offset = FILE_OFF(dir_mode),
     .def = "0750",
     .flags = SL_CONF_RELOAD,
     .doc = "permissions of a directory sluice creates (octal)"},
    {.name = "fsync",
     .parse = sl_conf_key_enum,
     .offset = FILE_OFF(fsync),
     .choices = fsyncs,
     .def = "none",
     .flags = SL_CONF_RELOAD,
     .doc = "durability: none, batch or interval"},
    {.name = "fsync_interval",
     .parse = sl_conf_key_duration,
     .offset = FILE_OFF(fsync_interval_ms),
     .min = 1,
     .max = SL_CONF_MS_PER_DAY,
     .def = "1s",
     .flags = SL_CONF_RELOAD,
     .doc = "with fsync = interval: longest time between fdatasync calls"},
    {.name = "rotate_bytes",
     .parse = sl_conf_key_size,
     .offset = FILE_OFF(rotate_bytes),
     .max = 1024 * SL_CONF_GIB,
     .def = "0",
     .flags = SL_CONF_RELOAD,
     .doc = "rotate before the file would grow past this size; 0 = never"},
    {.name = "rotate_interval",
     .parse = sl_conf_key_duration,
     .offset = FILE_OFF(rotate_interval_ms),
     .max = SL_CONF_MS_PER_DAY,
     .def = "0",
     .flags = SL_CONF_RELOAD,
     .doc = "rotate on wall-clock boundaries (UTC) of this length; 0 = never"},
    {.name = "max_files",
     .parse = sl_conf_key_uint,
     .offset = FILE_OFF(max_files),
     .max = 1000000,
     .def = "0",
     .flags = SL_CONF_RELOAD,
     .doc = "rotated files kept at most; 0 = no limit"},
    {.name = "max_age",
     .parse = sl_conf_key_duration,
     .offset = FILE_OFF(max_age_ms),
     .max = 3650 * SL_CONF_MS_PER_DAY,
     .def = "0",
     .flags = SL_CONF_RELOAD,
     .doc = "rotated files older than this are deleted; 0 = no limit"},
    {.name = "compress",
     .parse = sl_conf_key_enum,
     .offset = FILE_OFF(compress),
     .choices = compressions,
     .def = "none",
     .flags = SL_CONF_RELOAD,
     .doc = "compression of rotated files: none, gzip or zstd"},
};

const struct sl_conf_type sl_sink_file_conf = {
    .name = "file",
    .keys = sink_file_keys,
    .nkeys = SL_CONF_NKEYS(sink_file_keys),
    .size = sizeof(struct sl_sink_file_config),
    .check = file_check,
    .xref = file_xref,
    .finish = file_finish,
    .fini = file_fini,
    .summary = file_summary,
    .impl.sink = &sl_sink_file_ops,
};
