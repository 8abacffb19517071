/*
 * rotate — compression and retention of a file sink's rotated files (see
 * rotate.h for the rules and the crash recovery).
 *
 * Runs on its own thread; owns nothing on disk but the files whose names
 * have the rotated shape "<expansion of path>.<stamp>[.gz|.zst][.tmp]".
 */
#include "sink/rotate.h"
#include "sink/sink_file.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sink/compress.h"
#include "sink/pathtmpl.h"
#include "sluice/clock.h"
#include "sluice/log.h"
#include "util/thread.h"

#define ROTATE_PERIOD_MS 60000 /* a pass at least this often (retention by age, retries) */
#define ROTATE_LOG_MS 10000

enum { FORM_PLAIN, FORM_GZ, FORM_ZST, FORM_GZ_TMP, FORM_ZST_TMP, NFORMS };

/* One rotated file in all the forms found on disk. */
struct rot_group {
    char *base; /* "<active>.<stamp>" */
    int64_t stamp_ms;
    bool has[NFORMS];
    nlink_t plain_nlink;
    time_t mtime; /* of the plain file, else of the compressed one */
};

struct sl_rotate {
    const struct sl_sink_config *cfg;
    sl_clock_fn clock;
    struct sl_sink_stats *stats;
    struct sl_thread thread;
    pthread_mutex_t mu;
    pthread_cond_t kick_cv; /* the thread waits here */
    pthread_cond_t done_cv; /* sl_rotate_sync waits here */
    uint64_t want, done;    /* guarded by mu */
    bool quit;              /* guarded by mu */
    atomic_bool stop;       /* read by the compressor between blocks */
    struct sl_ratelimit rl; /* housekeeper thread only */
};

static const char *const form_suffix[NFORMS] = {"", ".gz", ".zst", ".gz.tmp", ".zst.tmp"};

static bool
ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
    size_t n = strlen(suffix);

    if (len < n || memcmp(s + len - n, suffix, n) != 0) {
        return false;
    }
    *rest = len - n;
    return true;
}

/* Splits a globbed path into base and form; -1 if it has not the rotated shape. */
static int
rotate_parse(const char *path, int *form, int64_t *stamp, size_t *baselen)
{
    size_t len = strlen(path), rest = len;

    *form = FORM_PLAIN;
    for (int f = NFORMS - 1; f > FORM_PLAIN; f--) {
        if (ends_with(path, len, form_suffix[f], &rest)) {
            *form = f;
            break;
        }
    }
    if (rest < SL_PATHTMPL_STAMP_LEN + 2 || path[rest - SL_PATHTMPL_STAMP_LEN - 1] != '.' ||
        sl_pathtmpl_parse_stamp(path + rest - SL_PATHTMPL_STAMP_LEN, stamp) < 0) {
        return -1;
    }
    *baselen = rest;
    return 0;
}

static int
group_cmp_base(const void *a, const void *b)
{
    return strcmp(((const struct rot_group *)a)->base, ((const struct rot_group *)b)->base);
}

/* Newest first. */
static int
group_cmp_newest(const void *a, const void *b)
{
    const struct rot_group *x = a, *y = b;

    if (x->stamp_ms != y->stamp_ms) {
        return x->stamp_ms > y->stamp_ms ? -1 : 1;
    }
    return -strcmp(x->base, y->base);
}

static void
rotate_warn(struct sl_rotate *r, const char *what, const char *path)
{
    uint64_t sup = 0;
    int saved = errno;

    if (sl_ratelimit_ok(&r->rl, sl_now_ms(), &sup)) {
        errno = saved;
        log_warn("sink \"%s\": %s %s", r->cfg->name, what, path);
    }
}

static void
form_path(const struct rot_group *g, int form, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", g->base, form_suffix[form]);
}

static void
rotate_unlink(struct sl_rotate *r, const struct rot_group *g, int form)
{
    char p[PATH_MAX + 16];

    form_path(g, form, p, sizeof(p));
    if (unlink(p) < 0 && errno != ENOENT) {
        rotate_warn(r, "cannot delete", p);
    }
}

void
sl_fsync_dir(const char *path)
{
    char dir[PATH_MAX + 16];
    int fd;

    fd = open(sl_path_dir(path, dir, sizeof(dir)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/*
 * Reads the rotated files on disk into *groups (caller frees each base and
 * the array).  Returns the count, or -1.
 */
static ssize_t
rotate_scan(struct sl_rotate *r, struct rot_group **groups)
{
    char pattern[PATH_MAX * 2];
    glob_t gl;
    struct rot_group *g = NULL;
    size_t n = 0;
    int len;

    *groups = NULL;
    len = sl_pathtmpl_glob(sl_sink_file_config(r->cfg)->path,
                           sl_sink_file_config(r->cfg)->source_name, pattern, sizeof(pattern) - 16);
    if (len < 0) {
        return -1;
    }
    memcpy(pattern + len, ".[0-9]*", sizeof(".[0-9]*"));
    memset(&gl, 0, sizeof(gl));
    /* No GLOB_TILDE: glob touches no shared state here but the locale. */
    int rc = glob(pattern, GLOB_NOSORT, NULL, &gl); /* NOLINT(concurrency-mt-unsafe) */
    if (rc == GLOB_NOMATCH) {
        globfree(&gl);
        return 0;
    }
    if (rc != 0) {
        globfree(&gl);
        return -1;
    }
    g = calloc(gl.gl_pathc > 0 ? gl.gl_pathc : 1, sizeof(*g));
    if (g == NULL) {
        globfree(&gl);
        return -1;
    }
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        int form;
        int64_t stamp;
        size_t baselen;
        if (rotate_parse(gl.gl_pathv[i], &form, &stamp, &baselen) < 0) {
            continue;
        }
        g[n].base = strndup(gl.gl_pathv[i], baselen);
        if (g[n].base == NULL) {
            continue;
        }
        g[n].stamp_ms = stamp;
        g[n].has[form] = true;
        n++;
    }
    globfree(&gl);
    /* Merge the forms of one file. */
    qsort(g, n, sizeof(*g), group_cmp_base);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(g[m - 1].base, g[i].base) == 0) {
            for (int f = 0; f < NFORMS; f++) {
                g[m - 1].has[f] |= g[i].has[f];
            }
            free(g[i].base);
            continue;
        }
        g[m++] = g[i];
    }
    for (size_t i = 0; i < m; i++) {
        char p[PATH_MAX + 16];
        struct stat st;
        if (g[i].has[FORM_PLAIN]) {
            form_path(&g[i], FORM_PLAIN, p, sizeof(p));
            if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                g[i].plain_nlink = st.st_nlink;
                g[i].mtime = st.st_mtime;
                continue;
            }
            g[i].has[FORM_PLAIN] = false;
        }
        for (int f = FORM_GZ; f <= FORM_ZST; f++) {
            form_path(&g[i], f, p, sizeof(p));
            if (g[i].has[f] && lstat(p, &st) == 0) {
                g[i].mtime = st.st_mtime;
            }
        }
    }
    *groups = g;
    return (ssize_t)m;
}

/* Finishes or undoes what a crash (or a stop) left half done. */
static void
rotate_recover(struct sl_rotate *r, struct rot_group *g)
{
    bool final = g->has[FORM_GZ] || g->has[FORM_ZST];

    for (int f = FORM_GZ_TMP; f <= FORM_ZST_TMP; f++) {
        if (g->has[f]) {
            rotate_unlink(r, g, f); /* unfinished: redone from the plain file, or orphaned */
            g->has[f] = false;
        }
    }
    if (g->has[FORM_PLAIN] && final && g->plain_nlink == 1) {
        rotate_unlink(r, g, FORM_PLAIN); /* the compressed file is complete */
        g->has[FORM_PLAIN] = false;
    }
}

/* Removes a directory the template made, once retention has emptied it. */
static void
rotate_prune_dir(struct sl_rotate *r, const char *base, int64_t now)
{
    struct sl_pathtmpl_info info;
    char why[128], copy[PATH_MAX + 16], active[PATH_MAX];

    if (sl_pathtmpl_check(sl_sink_file_config(r->cfg)->path, &info, why, sizeof(why)) < 0 ||
        !info.dir_has_time ||
        sl_pathtmpl_expand(sl_sink_file_config(r->cfg)->path,
                           sl_sink_file_config(r->cfg)->source_name, now, active,
                           sizeof(active)) < 0) {
        return;
    }
    char adir[PATH_MAX];
    const char *dir = sl_path_dir(base, copy, sizeof(copy));
    if (strcmp(dir, sl_path_dir(active, adir, sizeof(adir))) != 0) {
        (void)rmdir(dir); /* fails, harmlessly, unless empty */
    }
}

static void
rotate_delete(struct sl_rotate *r, struct rot_group *g, int64_t now)
{
    for (int f = 0; f < NFORMS; f++) {
        if (g->has[f]) {
            rotate_unlink(r, g, f);
            g->has[f] = false;
        }
    }
    sl_counter_add(&r->stats->retention_deleted, 1);
    log_info("sink \"%s\": retention: deleted %s", r->cfg->name, g->base);
    rotate_prune_dir(r, g->base, now);
}

/* Compresses one rotated file (see rotate.h for the order of the steps). */
static void
rotate_compress(struct sl_rotate *r, struct rot_group *g)
{
    enum sl_compress how = sl_sink_file_config(r->cfg)->compress;
    int tmp_form = how == SL_COMPRESS_GZIP ? FORM_GZ_TMP : FORM_ZST_TMP;
    int final_form = how == SL_COMPRESS_GZIP ? FORM_GZ : FORM_ZST;
    char plain[PATH_MAX + 16], tmp[PATH_MAX + 16], final[PATH_MAX + 16];
    struct stat st;
    int in = -1, out = -1;

    form_path(g, FORM_PLAIN, plain, sizeof(plain));
    form_path(g, tmp_form, tmp, sizeof(tmp));
    form_path(g, final_form, final, sizeof(final));
    in = open(plain, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0 || fstat(in, &st) < 0) {
        if (errno != ENOENT) {
            rotate_warn(r, "cannot read", plain);
        }
        goto err;
    }
    if (st.st_nlink != 1) {
        goto done; /* a rotation in progress after all */
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
               sl_sink_file_config(r->cfg)->file_mode);
    if (out < 0) {
        rotate_warn(r, "cannot create", tmp);
        goto err;
    }
    (void)fchmod(out, sl_sink_file_config(r->cfg)->file_mode);
    if (sl_compress_fd(in, out, how, &r->stop) < 0) {
        if (errno != ECANCELED) {
            rotate_warn(r, "cannot compress to", tmp);
        }
        goto err;
    }
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    (void)futimens(out, times);
    if (fdatasync(out) < 0) {
        rotate_warn(r, "fdatasync", tmp);
        goto err;
    }
    if (close(out) < 0) {
        out = -1;
        rotate_warn(r, "close", tmp);
        goto err;
    }
    out = -1;
    if (rename(tmp, final) < 0) {
        rotate_warn(r, "cannot rename to", final);
        goto err;
    }
    sl_fsync_dir(final);
    if (unlink(plain) < 0 && errno != ENOENT) {
        rotate_warn(r, "cannot delete", plain);
    }
    g->has[FORM_PLAIN] = false;
    g->has[final_form] = true;
    sl_counter_add(&r->stats->compressed, 1);
    log_debug("sink \"%s\": compressed %s", r->cfg->name, final);
done:
    close(in);
    return;
err:
    if (errno != ECANCELED && errno != ENOENT) {
        sl_counter_add(&r->stats->compress_failures, 1);
    }
    if (out >= 0) {
        close(out);
    }
    (void)unlink(tmp);
    if (in >= 0) {
        close(in);
    }
}

/* One pass: recover, apply retention, compress (oldest first). */
static void
rotate_pass(struct sl_rotate *r)
{
    const struct sl_sink_file_config *c = sl_sink_file_config(r->cfg);
    struct rot_group *g;
    ssize_t n = rotate_scan(r, &g);
    int64_t now = sl_clock_now(r->clock);
    size_t kept = 0;

    if (n < 0) {
        rotate_warn(r, "cannot list the rotated files of", c->path);
        return;
    }
    if (n == 0) {
        free(g);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        rotate_recover(r, &g[i]);
    }
    qsort(g, (size_t)n, sizeof(*g), group_cmp_newest);
    for (ssize_t i = 0; i < n; i++) {
        bool any = false;
        for (int f = 0; f < NFORMS; f++) {
            any |= g[i].has[f];
        }
        if (!any || (g[i].has[FORM_PLAIN] && g[i].plain_nlink > 1)) {
            continue; /* gone, or a rotation in progress */
        }
        kept++;
        if ((c->max_files > 0 && kept > c->max_files) ||
            (c->max_age_ms > 0 && (int64_t)g[i].mtime * 1000 <= now - (int64_t)c->max_age_ms)) {
            rotate_delete(r, &g[i], now);
        }
    }
    for (ssize_t i = n - 1; i >= 0 && c->compress != SL_COMPRESS_NONE; i--) {
        if (atomic_load_explicit(&r->stop, memory_order_relaxed)) {
            break;
        }
        if (g[i].has[FORM_PLAIN] && g[i].plain_nlink == 1) {
            rotate_compress(r, &g[i]);
        }
    }
    for (ssize_t i = 0; i < n; i++) {
        free(g[i].base);
    }
    free(g);
}

/* ms from now on CLOCK_MONOTONIC, the clock of the condition variables. */
static void
rotate_deadline(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    *ts = sl_timespec_add_ms(*ts, ms);
}

static uint64_t
rotate_period(const struct sl_rotate *r)
{
    uint64_t p = ROTATE_PERIOD_MS;

    if (sl_sink_file_config(r->cfg)->max_age_ms > 0 &&
        sl_sink_file_config(r->cfg)->max_age_ms / 10 < p) {
        p = sl_sink_file_config(r->cfg)->max_age_ms / 10 < 1000
                ? 1000
                : sl_sink_file_config(r->cfg)->max_age_ms / 10;
    }
    return p;
}

static void *
rotate_main(void *arg)
{
    struct sl_rotate *r = arg;
    struct timespec deadline;

    pthread_mutex_lock(&r->mu);
    while (!r->quit) {
        uint64_t target = r->want;
        pthread_mutex_unlock(&r->mu);
        rotate_pass(r);
        pthread_mutex_lock(&r->mu);
        r->done = target;
        pthread_cond_broadcast(&r->done_cv);
        rotate_deadline(&deadline, rotate_period(r));
        while (!r->quit && r->want == target) {
            if (pthread_cond_timedwait(&r->kick_cv, &r->mu, &deadline) == ETIMEDOUT) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct sl_rotate *
sl_rotate_new(const struct sl_sink_config *cfg, sl_clock_fn clock, struct sl_sink_stats *stats)
{
    struct sl_rotate *r = calloc(1, sizeof(*r));
    pthread_condattr_t ca;

    if (r == NULL) {
        return NULL;
    }
    r->cfg = cfg;
    r->clock = clock;
    r->stats = stats;
    r->rl.interval_ms = ROTATE_LOG_MS;
    atomic_init(&r->stop, false);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->kick_cv, &ca);
    pthread_cond_init(&r->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    return r;
}

int
sl_rotate_start(struct sl_rotate *r)
{
    return sl_thread_start(&r->thread, rotate_main, r);
}

void
sl_rotate_kick(struct sl_rotate *r)
{
    pthread_mutex_lock(&r->mu);
    r->want++;
    pthread_cond_signal(&r->kick_cv);
    pthread_mutex_unlock(&r->mu);
}

int
sl_rotate_sync(struct sl_rotate *r, int timeout_ms)
{
    struct timespec deadline;
    uint64_t mine;
    int rc = 0;

    if (!r->thread.started) {
        rotate_pass(r);
        return 0;
    }
    rotate_deadline(&deadline, (uint64_t)timeout_ms);
    pthread_mutex_lock(&r->mu);
    mine = ++r->want;
    pthread_cond_signal(&r->kick_cv);
    while (r->done < mine) {
        if (pthread_cond_timedwait(&r->done_cv, &r->mu, &deadline) == ETIMEDOUT) {
            rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void
sl_rotate_free(struct sl_rotate *r)
{
    if (r == NULL) {
        return;
    }
    if (r->thread.started) {
        atomic_store_explicit(&r->stop, true, memory_order_relaxed);
        pthread_mutex_lock(&r->mu);
        r->quit = true;
        pthread_cond_signal(&r->kick_cv);
        pthread_mutex_unlock(&r->mu);
        sl_thread_join(&r->thread);
    }
    pthread_cond_destroy(&r->kick_cv);
    pthread_cond_destroy(&r->done_cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
