/*
 * check_config — unit tests for the config module (src/conf/config.c).
 *
 * Most cases are data: tests/data/config/good/NAME.conf must load (and, if
 * NAME.summary exists, print that summary); tests/data/config/bad/NAME.conf
 * must fail with the first error in NAME.error, the path replaced by FILE;
 * tests/data/config/multi/NAME.conf must fail with exactly the errors in
 * NAME.errors, in order.  Adding a case is adding files.  The rest covers
 * the value parsers, defaults, the API edges, and that docs/configuration.md
 * and conf/sluice.conf mention every key of the tables.
 *
 * Files are found under $SLUICE_TOP (the repository root, default ".").
 */
#include "sluice/config.h"

#include "daemon/registry.h"
#include "sink/sink_file.h"
#include "source/source_tcp.h"
#include "source/source_unix.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#define MAX_CASES 512

struct case_list {
    char *names[MAX_CASES]; /* file names without the directory, sorted */
    size_t n;
};

static struct case_list good_cases, bad_cases, multi_cases;

static const char *
top(void)
{
    const char *t = getenv("SLUICE_TOP");

    return t != NULL && *t != '\0' ? t : ".";
}

/* Returns a new string "$SLUICE_TOP/rel[/name]"; caller frees. */
static char *
top_path(const char *rel, const char *name)
{
    char *p;
    int n = name != NULL ? asprintf(&p, "%s/%s/%s", top(), rel, name)
                         : asprintf(&p, "%s/%s", top(), rel);

    if (n < 0) {
        abort(); /* also called from main, outside any test */
    }
    return p;
}

/* Returns the whole file as a new NUL-terminated string, or NULL; caller frees. */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Drops trailing "\n" / "\r\n". */
static char *
chomp(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists *.conf in $SLUICE_TOP/dir into l (sorted).  Called by main before forking tests. */
static void
list_cases(const char *dir, struct case_list *l)
{
    char *path = top_path(dir, NULL);
    DIR *d = opendir(path);
    struct dirent *e;

    if (d == NULL) {
        fprintf(stderr, "check_config: cannot open %s: %s (set SLUICE_TOP)\n", path,
                strerror(errno));
        free(path);
        return;
    }
    while ((e = readdir(d)) != NULL && l->n < MAX_CASES) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".conf") == 0) {
            l->names[l->n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    free(path);
    qsort(l->names, l->n, sizeof(l->names[0]), cmp_names);
}

/* "dir/NAME.conf" -> new "dir/NAME<ext>". */
static char *
sibling(const char *conf_path, const char *ext)
{
    size_t n = strlen(conf_path) - strlen(".conf");
    char *p = malloc(n + strlen(ext) + 1);

    ck_assert_ptr_nonnull(p);
    memcpy(p, conf_path, n);
    strcpy(p + n, ext);
    return p;
}

/* An error message with its "PATH:" prefix replaced by "FILE:"; new string. */
static char *
with_file(const char *msg, const char *path)
{
    size_t n = strlen(path);
    char *out;

    ck_assert_msg(strncmp(msg, path, n) == 0 && msg[n] == ':',
                  "error does not start with the path: %s", msg);
    ck_assert_int_ge(asprintf(&out, "FILE%s", msg + n), 0);
    return out;
}

/* Loads path, which must succeed; prints the errors otherwise. */
static struct sl_config *
load_ok(const char *path)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = sl_config_load(path, &errs);
    size_t i;

    for (i = 0; i < errs.count; i++) {
        fprintf(stderr, "%s\n", errs.msgs[i]);
    }
    ck_assert_msg(cfg != NULL, "%s did not load: %s", path,
                  errs.count ? errs.msgs[0] : "(no message)");
    ck_assert_uint_eq(errs.count, 0);
    sl_config_errors_fini(&errs);
    return cfg;
}

/* Writes text (len bytes) to a new temporary file; returns its new path. */
static char *
temp_config(const char *text, size_t len)
{
    char *path = strdup("/tmp/check_config_XXXXXX");
    int fd;

    ck_assert_ptr_nonnull(path);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* ---- data-driven cases --------------------------------------------------------------- */

START_TEST(test_config_good_cases)
{
    char *path = top_path("tests/data/config/good", good_cases.names[_i]);
    char *sum_path = sibling(path, ".summary");
    char *want = slurp(sum_path);
    struct sl_config *cfg = load_ok(path);
    char got[4096];

    if (want != NULL) {
        sl_config_summary(cfg, got, sizeof(got));
        ck_assert_str_eq(got, chomp(want));
    }
    sl_config_free(cfg);
    free(want);
    free(sum_path);
    free(path);
}
END_TEST

START_TEST(test_config_bad_cases)
{
    char *path = top_path("tests/data/config/bad", bad_cases.names[_i]);
    char *err_path = sibling(path, ".error");
    char *want = slurp(err_path);
    struct sl_config_errors errs = {0};
    struct sl_config *cfg;
    char *got;

    ck_assert_msg(want != NULL, "%s is missing", err_path);
    cfg = sl_config_load(path, &errs);
    ck_assert_msg(cfg == NULL, "%s loaded but must not", path);
    ck_assert_uint_ge(errs.count, 1);
    got = with_file(errs.msgs[0], path);
    ck_assert_str_eq(got, chomp(want));
    free(got);
    sl_config_errors_fini(&errs);
    free(want);
    free(err_path);
    free(path);
}
END_TEST

/* Every error of a file is reported, in order: counted and compared one by one. */
START_TEST(test_config_all_errors_reported)
{
    char *path = top_path("tests/data/config/multi", multi_cases.names[_i]);
    char *errs_path = sibling(path, ".errors");
    char *want = slurp(errs_path), *line, *save = NULL;
    struct sl_config_errors errs = {0};
    size_t i = 0;

    ck_assert_msg(want != NULL, "%s is missing", errs_path);
    ck_assert_ptr_null(sl_config_load(path, &errs));
    for (line = strtok_r(want, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *got;
        ck_assert_msg(i < errs.count, "only %zu errors, expected more: %s", errs.count, line);
        got = with_file(errs.msgs[i], path);
        ck_assert_str_eq(got, line);
        free(got);
        i++;
    }
    ck_assert_uint_eq(errs.count, i);
    sl_config_errors_fini(&errs);
    free(want);
    free(errs_path);
    free(path);
}
END_TEST

START_TEST(test_config_enough_bad_cases)
{
    ck_assert_uint_ge(bad_cases.n, 30);
    ck_assert_uint_ge(good_cases.n, 5);
    ck_assert_uint_ge(multi_cases.n, 1);
}
END_TEST

/* ---- value parsers ------------------------------------------------------------------- */

START_TEST(test_config_parse_size)
{
    static const struct {
        const char *in;
        size_t out;
    } good[] = {
        {"0", 0},
        {"1", 1},
        {"4096", 4096},
        {"007", 7},
        {"64KiB", 64 * 1024},
        {"64 KiB", 64 * 1024},
        {"16MiB", 16 * 1024 * 1024},
        {"1GiB", (size_t)1 << 30},
        {"0KiB", 0},
        {"18446744073709551615", (size_t)18446744073709551615ull},
        {"17179869183GiB", (size_t)17179869183ull << 30},
    };
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1  KiB",
        "1.5KiB",
        "1e3",
        "0x10",
        "64KB",
        "64k",
        "64kib",
        "64 K",
        "KiB",
        "1KiB ",
        "1 KiB B",
        "1B",
        "64TiB2",
        "1MiBx",
        "1\tKiB",
        "1,024",
        "18446744073709551616", /* 2^64 */
        "17179869184GiB",       /* 2^64 bytes */
        "99999999999999999999999999KiB",
    };
    size_t i, v;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        ck_assert_msg(sl_config_parse_size(good[i].in, &v) == 0, "refused \"%s\"", good[i].in);
        ck_assert_msg(v == good[i].out, "\"%s\" gave %zu", good[i].in, v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 12345;
        ck_assert_msg(sl_config_parse_size(bad[i], &v) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(v, 12345); /* untouched on failure */
    }
    ck_assert_int_eq(sl_config_parse_size(NULL, &v), -1);
}
END_TEST

START_TEST(test_config_parse_duration)
{
    static const struct {
        const char *in;
        uint64_t out;
    } good[] = {
        {"0", 0},
        {"000", 0},
        {"0ms", 0},
        {"0s", 0},
        {"1ms", 1},
        {"250ms", 250},
        {"5s", 5000},
        {"5 s", 5000},
        {"2min", 120000},
        {"90 min", 5400000},
        {"2h", 7200000},
        {"7 d", 604800000},
        {"18446744073709551615ms", UINT64_MAX},
        {"18446744073709551s", 18446744073709551000ull},
    };
    static const char *const bad[] = {
        "",
        "5",
        "300",
        "-1s",
        "+1s",
        "1.5s",
        "5m",
        "5hr",
        "5D",
        "5sec",
        "5 ",
        " 5s",
        "5  s",
        "s",
        "5S",
        "1min 1s",
        "5ms5",
        "1\ts",
        "0x5s",
        "18446744073709551616ms",  /* 2^64 */
        "18446744073709552s",      /* 2^64 ms and a bit */
        "307445734561825861min",   /* > 2^64 ms */
        "99999999999999999999999", /* unitless and huge: not "0" */
    };
    uint64_t v;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        ck_assert_msg(sl_config_parse_duration_ms(good[i].in, &v) == 0, "refused \"%s\"",
                      good[i].in);
        ck_assert_msg(v == good[i].out, "\"%s\" gave %llu", good[i].in, (unsigned long long)v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 12345;
        ck_assert_msg(sl_config_parse_duration_ms(bad[i], &v) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(v, 12345);
    }
    ck_assert_int_eq(sl_config_parse_duration_ms(NULL, &v), -1);
}
END_TEST

START_TEST(test_config_parse_address)
{
    static const char *const bad[] = {
        "",
        "x",
        ":5170",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999999999999999999999",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:80x",
        "127.0.0.1:http",
        "127.0.0.1: 80",
        "256.0.0.1:80",
        "127.1:80",
        "1.2.3.4.5:80",
        "::1:5170",
        "[::1]",
        "[::1]5170",
        "[::1]:",
        "[]:80",
        "[::g]:80",
        "[127.0.0.1]:80",
        "[::1:80",
        "my host:80",
        "host/name:80",
        "a\"b:80",
    };
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    struct in6_addr loop6 = IN6ADDR_LOOPBACK_INIT;
    socklen_t len;
    size_t i;

    ck_assert_int_eq(sl_config_parse_address("127.0.0.1:5170", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(ntohs(sin->sin_port), 5170);
    ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

    ck_assert_int_eq(sl_config_parse_address("0.0.0.0:1", &ss, &len), 0);
    ck_assert_uint_eq(ntohs(sin->sin_port), 1);
    ck_assert_uint_eq(sin->sin_addr.s_addr, htonl(INADDR_ANY));

    ck_assert_int_eq(sl_config_parse_address("255.255.255.255:65535", &ss, &len), 0);
    ck_assert_uint_eq(ntohs(sin->sin_port), 65535);

    ck_assert_int_eq(sl_config_parse_address("[::1]:5170", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_uint_eq(ntohs(sin6->sin6_port), 5170);
    ck_assert_mem_eq(&sin6->sin6_addr, &loop6, sizeof(loop6));

    ck_assert_int_eq(sl_config_parse_address("[::]:80", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);

    /* /etc/hosts maps localhost; either family is fine. */
    ck_assert_int_eq(sl_config_parse_address("localhost:5170", &ss, &len), 0);
    ck_assert(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    ck_assert_uint_eq(ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port), 5170);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(sl_config_parse_address(bad[i], &ss, &len) == -1, "accepted \"%s\"", bad[i]);
    }
    ck_assert_int_eq(sl_config_parse_address(NULL, &ss, &len), -1);
}
END_TEST

/* ---- loading ------------------------------------------------------------------------- */

START_TEST(test_config_defaults_applied)
{
    char *path = top_path("tests/data/config/good", "minimal.conf");
    struct sl_config *cfg = load_ok(path);
    const struct sl_source_config *s;
    const struct sl_queue_config *q;
    const struct sl_sink_config *k;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char host[256] = "";

    ck_assert_str_eq(cfg->path, path);
    ck_assert_uint_eq(cfg->daemon.producer_threads, ncpu < 1 ? 1 : ncpu > 64 ? 64 : (unsigned)ncpu);
    ck_assert_int_eq(cfg->daemon.log_level, LOG_INFO);
    ck_assert_uint_eq(cfg->daemon.shutdown_timeout_ms, 30000);
    ck_assert_int_eq(gethostname(host, sizeof(host) - 1), 0);
    ck_assert_str_eq(cfg->daemon.hostname, host);

    ck_assert_uint_eq(cfg->nsources, 1);
    s = &cfg->sources[0];
    ck_assert_str_eq(s->name, "app");
    ck_assert_int_eq(s->line, 2);
    ck_assert_ptr_eq(s->type, &sl_source_tcp_conf);
    ck_assert_str_eq(s->listen, "127.0.0.1:5170");
    ck_assert_int_eq(s->addr.ss_family, AF_INET);
    ck_assert_ptr_eq(s->codec, &sl_codec_json);
    ck_assert_str_eq(s->queue, "main");
    ck_assert_uint_eq(s->queue_index, 0);
    ck_assert_uint_eq(s->max_line_bytes, 64 * 1024);
    ck_assert_uint_eq(sl_source_tcp_config(s)->max_connections, 10000);
    ck_assert_uint_eq(sl_source_tcp_config(s)->idle_timeout_ms, 5 * 60 * 1000);
    ck_assert_int_eq(sl_source_tcp_config(s)->framing, SL_FRAMING_LF); /* json's default */
    ck_assert_uint_eq(s->add_fields, 0);
    ck_assert_uint_eq(s->recv_buffer_bytes, 0);

    ck_assert_uint_eq(cfg->nqueues, 1);
    q = &cfg->queues[0];
    ck_assert_str_eq(q->name, "main");
    ck_assert_int_eq(q->line, 7);
    ck_assert_uint_eq(q->capacity, 16 * 1024 * 1024);
    ck_assert_uint_eq(q->chunk_bytes, 256 * 1024);

    ck_assert_uint_eq(cfg->nsinks, 1);
    k = &cfg->sinks[0];
    ck_assert_str_eq(k->name, "archive");
    ck_assert_int_eq(k->line, 9);
    ck_assert_ptr_eq(k->type, &sl_sink_file_conf);
    ck_assert_str_eq(k->queue, "main");
    ck_assert_uint_eq(k->queue_index, 0);
    ck_assert_str_eq(sl_sink_file_config(k)->path, "/tmp/sluice-test.ndjson");
    ck_assert_uint_eq(sl_sink_file_config(k)->file_mode, 0640);
    ck_assert_int_eq(sl_sink_file_config(k)->fsync, SL_FSYNC_NONE);
    ck_assert_uint_eq(sl_sink_file_config(k)->fsync_interval_ms, 1000);
    ck_assert_uint_eq(k->batch_max_bytes, 1024 * 1024);
    ck_assert_uint_eq(k->batch_timeout_ms, 0);

    sl_config_free(cfg);
    free(path);
}
END_TEST

/* Type-dependent defaults: recv_buffer is 4 MiB for udp; add_fields lists parse. */
START_TEST(test_config_udp_defaults)
{
    char *path = top_path("tests/data/config/good", "empty-daemon.conf");
    struct sl_config *cfg = load_ok(path);

    ck_assert_uint_eq(cfg->nsources, 2);
    ck_assert_ptr_eq(cfg->sources[0].type, &sl_source_tcp_conf);
    ck_assert_uint_eq(cfg->sources[0].recv_buffer_bytes, 0);
    ck_assert_uint_eq(cfg->sources[0].add_fields, SL_FIELD_PEER);
    ck_assert_ptr_eq(cfg->sources[1].type, &sl_source_udp_conf);
    ck_assert_uint_eq(cfg->sources[1].recv_buffer_bytes, 4 * 1024 * 1024);
    ck_assert_uint_eq(cfg->sources[1].add_fields, SL_FIELD_HOST | SL_FIELD_TIME);
    ck_assert_int_eq(cfg->daemon.log_level, LOG_INFO);
    sl_config_free(cfg);
    free(path);
}
END_TEST

/* Local sources: listen is a path (a sockaddr_un), socket_mode defaults to
 * 0660, the stream keys land in unix_stream's config. */
START_TEST(test_config_unix_sources)
{
    char *path = top_path("tests/data/config/good", "unix.conf");
    struct sl_config *cfg = load_ok(path);
    const struct sl_source_config *st = &cfg->sources[0], *dg = &cfg->sources[1];
    const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)&st->addr;
    struct sl_config_key_info k;
    size_t i, modes = 0;

    ck_assert_ptr_eq(st->type, &sl_source_unix_stream_conf);
    ck_assert_int_eq(st->addr.ss_family, AF_UNIX);
    ck_assert_str_eq(sun->sun_path, "/run/sluice/stream.sock");
    ck_assert_uint_eq(st->addrlen, offsetof(struct sockaddr_un, sun_path) + strlen(sun->sun_path) + 1);
    ck_assert_uint_eq(sl_source_unix_config(st)->socket_mode, 0600);
    ck_assert(sl_source_unix_config(st)->socket_owner.set);
    ck_assert_uint_eq(sl_source_unix_config(st)->socket_owner.id, 65534);
    ck_assert(sl_source_unix_config(st)->socket_group.set);
    ck_assert_uint_eq(sl_source_unix_config(st)->socket_group.id, 0);
    ck_assert(!sl_source_unix_config(dg)->socket_owner.set);
    ck_assert(!sl_source_unix_config(dg)->socket_group.set);
    ck_assert_uint_eq(sl_source_unix_config(st)->stream.max_connections, 50);
    ck_assert_uint_eq(sl_source_unix_config(st)->stream.idle_timeout_ms, 5 * 60 * 1000);
    ck_assert_ptr_eq(dg->type, &sl_source_unix_dgram_conf);
    ck_assert_uint_eq(sl_source_unix_config(dg)->socket_mode, 0660);
    ck_assert_uint_eq(dg->add_fields, SL_FIELD_PEER);
    ck_assert_uint_eq(dg->recv_buffer_bytes, 0);
    for (i = 0; sl_config_key_info(i, &k) == 0; i++) {
        if (strcmp(k.name, "socket_mode") == 0) {
            modes++;
            ck_assert_str_eq(k.only, "unix_stream");
            ck_assert_str_eq(k.def, "0660");
        }
    }
    ck_assert_uint_eq(modes, 1);
    sl_config_free(cfg);
    free(path);
}
END_TEST

/* Every key set: the values land in the right fields. */
START_TEST(test_config_values_stored)
{
    char *path = top_path("tests/data/config/good", "full.conf");
    struct sl_config *cfg = load_ok(path);
    const struct sl_source_config *s = &cfg->sources[0], *u = &cfg->sources[1];
    const struct sl_sink_config *k = &cfg->sinks[0];

    ck_assert_uint_eq(cfg->daemon.producer_threads, 3);
    ck_assert_int_eq(cfg->daemon.log_level, LOG_DEBUG);
    ck_assert_uint_eq(cfg->daemon.shutdown_timeout_ms, 120000);
    ck_assert_str_eq(cfg->daemon.hostname, "edge-01.example.net");
    ck_assert_ptr_eq(s->codec, &sl_codec_raw);
    ck_assert_uint_eq(s->max_line_bytes, 1024 * 1024);
    ck_assert_uint_eq(sl_source_tcp_config(s)->max_connections, 500);
    ck_assert_uint_eq(sl_source_tcp_config(s)->idle_timeout_ms, 90000);
    ck_assert_int_eq(sl_source_tcp_config(s)->framing, SL_FRAMING_OCTET);
    ck_assert_uint_eq(s->add_fields,
                      SL_FIELD_TIME | SL_FIELD_SOURCE | SL_FIELD_PEER | SL_FIELD_HOST);
    ck_assert_uint_eq(s->recv_buffer_bytes, 256 * 1024);
    ck_assert_uint_eq(u->max_line_bytes, 16);
    ck_assert_uint_eq(u->add_fields, 0);
    ck_assert_uint_eq(u->recv_buffer_bytes, 0); /* explicit 0 beats the udp default */
    ck_assert_uint_eq(cfg->queues[0].capacity, (size_t)1 << 30);
    ck_assert_uint_eq(cfg->queues[0].chunk_bytes, 2 * 1024 * 1024);
    ck_assert_uint_eq(sl_sink_file_config(k)->file_mode, 0600);
    ck_assert_int_eq(sl_sink_file_config(k)->fsync, SL_FSYNC_INTERVAL);
    ck_assert_uint_eq(sl_sink_file_config(k)->fsync_interval_ms, 250);
    ck_assert_uint_eq(k->batch_max_bytes, 4 * 1024 * 1024);
    ck_assert_uint_eq(k->batch_timeout_ms, 20);
    sl_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(test_config_queue_index)
{
    char *path = top_path("tests/data/config/good", "fanout.conf");
    struct sl_config *cfg = load_ok(path);

    ck_assert_uint_eq(cfg->nqueues, 2);
    ck_assert_str_eq(cfg->queues[1].name, "idle");
    ck_assert_uint_eq(cfg->sources[0].queue_index, 0);
    ck_assert_uint_eq(cfg->sinks[0].queue_index, 0);
    ck_assert_uint_eq(cfg->sinks[1].queue_index, 0);
    ck_assert_uint_eq(cfg->sinks[2].queue_index, 1);
    sl_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(test_config_logs_directory)
{
    static const char text[] = "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = q\n"
                               "[queue q]\n"
                               "[sink rel]\ntype = file\nqueue = q\npath = sub/events.ndjson\n"
                               "[sink abs]\ntype = file\nqueue = q\npath = /abs/events.ndjson\n";
    char *path = temp_config(text, sizeof(text) - 1);
    struct sl_config *cfg;

    /* Without LOGS_DIRECTORY a relative path stays as written. */
    unsetenv("LOGS_DIRECTORY");
    cfg = load_ok(path);
    ck_assert_str_eq(sl_sink_file_config(&cfg->sinks[0])->path, "sub/events.ndjson");
    sl_config_free(cfg);
    /* Under systemd it resolves against the first LogsDirectory entry. */
    setenv("LOGS_DIRECTORY", "/var/log/sluice:/var/log/other", 1);
    cfg = load_ok(path);
    ck_assert_str_eq(sl_sink_file_config(&cfg->sinks[0])->path,
                     "/var/log/sluice/sub/events.ndjson");
    ck_assert_str_eq(sl_sink_file_config(&cfg->sinks[1])->path, "/abs/events.ndjson");
    sl_config_free(cfg);
    unsetenv("LOGS_DIRECTORY");
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_config_cannot_open)
{
    const char *path = "/nonexistent/sluice.conf";
    struct sl_config_errors errs = {0};
    char want[256];

    ck_assert_ptr_null(sl_config_load(path, &errs));
    ck_assert_uint_eq(errs.count, 1);
    snprintf(want, sizeof(want), "%s:0: cannot open: %s", path, strerror(ENOENT));
    ck_assert_str_eq(errs.msgs[0], want);
    sl_config_errors_fini(&errs);
}
END_TEST

START_TEST(test_config_directory)
{
    char *path = top_path("tests/data/config", NULL);
    struct sl_config_errors errs = {0};
    char *want;

    ck_assert_ptr_null(sl_config_load(path, &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_int_ge(asprintf(&want, "%s:0: cannot open: %s", path, strerror(EISDIR)), 0);
    ck_assert_str_eq(errs.msgs[0], want);
    sl_config_errors_fini(&errs);
    free(want);
    free(path);
}
END_TEST

START_TEST(test_config_file_too_large)
{
    size_t len = 1024 * 1024 + 1;
    char *text = malloc(len), *path, *want;
    struct sl_config_errors errs = {0};

    ck_assert_ptr_nonnull(text);
    memset(text, ';', len);
    path = temp_config(text, len);
    ck_assert_ptr_null(sl_config_load(path, &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_int_ge(asprintf(&want, "%s:0: larger than 1MiB (1048576 bytes)", path), 0);
    ck_assert_str_eq(errs.msgs[0], want);
    sl_config_errors_fini(&errs);
    unlink(path);
    free(want);
    free(path);
    free(text);
}
END_TEST

/*
 * A device has no size to look at first: the 1 MiB limit holds while
 * reading, so /dev/zero fails at once instead of filling memory.
 */
START_TEST(test_config_dev_zero)
{
    struct sl_config_errors errs = {0};

    ck_assert_ptr_null(sl_config_load("/dev/zero", &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.msgs[0], "/dev/zero:0: larger than 1MiB (1048576 bytes)");
    sl_config_errors_fini(&errs);
}
END_TEST

/*
 * Loads a config that a child process writes into a FIFO, as
 * `sluiced -n -c <(generate)` does; the child writes text (len bytes) and
 * stops at the first error (the reader closed).  Returns what
 * sl_config_load() returned, with each message's path replaced by FILE in
 * msgs[] (caller frees each) and their number in *count.
 */
static struct sl_config *
load_fifo(const char *text, size_t len, char **msgs, size_t max, size_t *count)
{
    char dir[] = "/tmp/check_config_fifo_XXXXXX";
    struct sl_config_errors errs = {0};
    struct sl_config *cfg;
    char *path;
    pid_t pid;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_ge(asprintf(&path, "%s/sluice.conf", dir), 0);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd;
        size_t off = 0;

        signal(SIGPIPE, SIG_IGN);
        fd = open(path, O_WRONLY);
        while (fd >= 0 && off < len) {
            ssize_t n = write(fd, text + off, len - off);

            if (n < 0 && errno != EINTR) {
                break;
            }
            off += n > 0 ? (size_t)n : 0;
        }
        _exit(0);
    }
    cfg = sl_config_load(path, &errs);
    /* The child may still wait to open or to write: it is done either way. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(path);
    rmdir(dir);
    *count = errs.count;
    for (size_t i = 0; i < errs.count && i < max; i++) {
        msgs[i] = with_file(errs.msgs[i], path);
    }
    sl_config_errors_fini(&errs);
    free(path);
    return cfg;
}

static const char fifo_config[] = "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\n"
                                  "queue = main\n[queue main]\n[sink a]\ntype = file\n"
                                  "queue = main\npath = /tmp/x\n";

/* Process substitution and FIFOs are a real use: a small config loads. */
START_TEST(test_config_fifo_small)
{
    char *msgs[4] = {NULL};
    size_t count = 0;
    struct sl_config *cfg = load_fifo(fifo_config, sizeof(fifo_config) - 1, msgs, 4, &count);

    ck_assert_msg(cfg != NULL, "FIFO config refused: %s", count > 0 ? msgs[0] : "?");
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(cfg->nsources, 1);
    ck_assert_str_eq(sl_sink_file_config(&cfg->sinks[0])->path, "/tmp/x");
    sl_config_free(cfg);
}
END_TEST

/* More than 1 MiB through a FIFO is refused like a large file, even if valid. */
START_TEST(test_config_fifo_too_large)
{
    size_t pad = 2 * 1024 * 1024;
    size_t len = pad + sizeof(fifo_config) - 1;
    char *text = malloc(len);
    char *msgs[4] = {NULL};
    size_t count = 0;
    struct sl_config *cfg;

    ck_assert_ptr_nonnull(text);
    /* 2 MiB of comment lines, then a valid config. */
    for (size_t i = 0; i < pad; i += 64) {
        memset(text + i, ';', 63);
        text[i + 63] = '\n';
    }
    memcpy(text + pad, fifo_config, sizeof(fifo_config) - 1);
    cfg = load_fifo(text, len, msgs, 4, &count);
    ck_assert_msg(cfg == NULL, "a 2 MiB config was loaded from a FIFO");
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(msgs[0], "FILE:0: larger than 1MiB (1048576 bytes)");
    for (size_t i = 0; i < 4; i++) {
        free(msgs[i]);
    }
    free(text);
}
END_TEST

/*
 * batch_max_bytes may be at most half its queue's capacity: exactly half
 * loads, a larger default is lowered to half, and a capacity that did not
 * parse is reported alone.  (Larger explicit values: tests/data/config/bad.)
 */
START_TEST(test_config_batch_max_bound)
{
    static const char text[] =
        "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n"
        "max_line_bytes = 1KiB\n"
        "[source b]\ntype = tcp\nlisten = 127.0.0.1:5171\nqueue = small\n"
        "max_line_bytes = 1KiB\n"
        "[queue main]\n"
        "[queue small]\ncapacity = 64KiB\nchunk_size = 8KiB\n"
        "[sink half]\ntype = file\nqueue = main\npath = /tmp/a\nbatch_max_bytes = 8MiB\n"
        "batch_timeout = 3s\n"
        "[sink dflt]\ntype = file\nqueue = small\npath = /tmp/b\nbatch_timeout = 3s\n"
        "[sink dflt_big]\ntype = file\nqueue = main\npath = /tmp/c\n";
    static const char bad_capacity[] =
        "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n"
        "[queue main]\ncapacity = 1MB\n"
        "[sink a]\ntype = file\nqueue = main\npath = /tmp/a\nbatch_max_bytes = 16MiB\n";
    char *path = temp_config(text, sizeof(text) - 1);
    struct sl_config *cfg = load_ok(path);
    struct sl_config_errors errs = {0};
    char *got;

    ck_assert_uint_eq(cfg->sinks[0].batch_max_bytes, 8 * 1024 * 1024);
    ck_assert_uint_eq(cfg->sinks[1].batch_max_bytes, 32 * 1024);
    ck_assert_uint_eq(cfg->sinks[2].batch_max_bytes, 1024 * 1024);
    sl_config_free(cfg);
    unlink(path);
    free(path);

    path = temp_config(bad_capacity, sizeof(bad_capacity) - 1);
    ck_assert_ptr_null(sl_config_load(path, &errs));
    ck_assert_uint_eq(errs.count, 1);
    got = with_file(errs.msgs[0], path);
    ck_assert_str_eq(got, "FILE:6: queue \"main\": capacity: expected a size like 4096, 64KiB, "
                          "16MiB or 1GiB, got \"1MB\"");
    free(got);
    sl_config_errors_fini(&errs);
    unlink(path);
    free(path);
}
END_TEST

/* A NUL byte cannot be shown in a data file's .error; the other lines still count. */
START_TEST(test_config_nul_byte)
{
    static const char text[] = "[source app]\ntype = tcp\0junk\nlisten = 127.0.0.1:5170\n"
                               "queue = main\n[queue main]\n[sink a]\ntype = file\n"
                               "queue = main\npath = /tmp/x\n";
    char *path = temp_config(text, sizeof(text) - 1);
    struct sl_config_errors errs = {0};
    char *got;

    ck_assert_ptr_null(sl_config_load(path, &errs));
    ck_assert_uint_eq(errs.count, 2);
    got = with_file(errs.msgs[0], path);
    ck_assert_str_eq(got, "FILE:2: line contains a NUL byte");
    free(got);
    got = with_file(errs.msgs[1], path);
    ck_assert_str_eq(got, "FILE:1: source \"app\": missing required key \"type\"");
    free(got);
    sl_config_errors_fini(&errs);
    unlink(path);
    free(path);
}
END_TEST

/* The last line needs no newline; a long line does not shift later line numbers. */
START_TEST(test_config_line_numbers)
{
    char text[1024];
    char *path, *got;
    struct sl_config_errors errs = {0};
    int n;

    n = snprintf(text, sizeof(text),
                 "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n"
                 "; %0300d\n"
                 "[queue main]\n[sink a]\ntype = file\nqueue = main\npath = /tmp/x\nbogus = 1",
                 0);
    path = temp_config(text, (size_t)n);
    ck_assert_ptr_null(sl_config_load(path, &errs));
    ck_assert_uint_eq(errs.count, 1);
    got = with_file(errs.msgs[0], path);
    ck_assert_str_eq(got, "FILE:11: sink \"a\": unknown key \"bogus\"");
    free(got);
    sl_config_errors_fini(&errs);
    unlink(path);
    free(path);
}
END_TEST

/* A caller's error list is appended to; fini empties it for reuse; free(NULL) is fine. */
START_TEST(test_config_errors_api)
{
    char *bad = top_path("tests/data/config/bad", "unknown-key.conf");
    char *empty = top_path("tests/data/config/bad", "empty.conf");
    struct sl_config_errors errs = {0};
    size_t first;

    ck_assert_ptr_null(sl_config_load(bad, &errs));
    first = errs.count;
    ck_assert_uint_ge(first, 1);
    ck_assert_ptr_null(sl_config_load(empty, &errs));
    ck_assert_uint_eq(errs.count, first + 3); /* no source, no queue, no sink */
    sl_config_errors_fini(&errs);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_ptr_null(errs.msgs);
    sl_config_errors_fini(&errs);
    sl_config_errors_fini(NULL);
    ck_assert_ptr_null(sl_config_load(bad, NULL)); /* errors dropped, nothing leaks */
    sl_config_free(NULL);
    free(bad);
    free(empty);
}
END_TEST

START_TEST(test_config_summary_truncated)
{
    char *path = top_path("tests/data/config/good", "minimal.conf");
    struct sl_config *cfg = load_ok(path);
    char full[512], small[16];

    sl_config_summary(cfg, full, sizeof(full));
    memset(small, 'x', sizeof(small));
    sl_config_summary(cfg, small, sizeof(small));
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
    ck_assert_int_eq(strncmp(small, full, sizeof(small) - 1), 0);
    small[0] = 'x';
    sl_config_summary(cfg, small, 0); /* writes nothing */
    ck_assert_int_eq(small[0], 'x');
    sl_config_free(cfg);
    free(path);
}
END_TEST

/* ---- the shipped config and the docs ------------------------------------------------- */

START_TEST(test_config_default_conf_loads)
{
    char *path = top_path("conf", "sluice.conf");
    struct sl_config *cfg = load_ok(path);
    char got[1024];

    sl_config_summary(cfg, got, sizeof(got));
    ck_assert_str_eq(got, "ok: 2 sources (app tcp 127.0.0.1:5170 json -> main, "
                          "app_udp udp 127.0.0.1:5170 json -> main), 1 queue (main 16MiB), "
                          "1 sink (archive file var/log/events.ndjson -> main)");
    sl_config_free(cfg);
    free(path);
}
END_TEST

START_TEST(test_config_key_info)
{
    struct sl_config_key_info a, b;
    size_t i, j, n = 0;

    for (i = 0; sl_config_key_info(i, &a) == 0; i++) {
        ck_assert_ptr_nonnull(a.section);
        ck_assert_ptr_nonnull(a.name);
        ck_assert_ptr_nonnull(a.def);
        ck_assert_msg(a.doc != NULL && *a.doc != '\0', "%s has no doc", a.name);
        ck_assert_msg(!a.required || *a.def == '\0', "%s: required with a default", a.name);
        for (j = 0; j < i; j++) {
            ck_assert_int_eq(sl_config_key_info(j, &b), 0);
            /* A key two types share (tcp and sluice) is listed once per type. */
            bool same_only = (a.only == NULL && b.only == NULL) ||
                             (a.only != NULL && b.only != NULL && strcmp(a.only, b.only) == 0);
            ck_assert_msg(strcmp(a.section, b.section) != 0 || strcmp(a.name, b.name) != 0 ||
                              !same_only,
                          "[%s] %s listed twice", a.section, a.name);
        }
        n++;
    }
    ck_assert_uint_ge(n, 20);
    ck_assert_int_eq(sl_config_key_info(n + 100, &a), -1);
}
END_TEST

/*
 * Whether conf/sluice.conf has `key =` (or a commented-out `; key =`) inside
 * a section of kind (or a commented-out header of that kind).
 */
static bool
conf_has_key(const char *text, const char *kind, const char *key)
{
    const char *p = text;
    bool in_kind = false;
    size_t kl = strlen(kind), keyl = strlen(key);

    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        const char *s = p;
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        s += strspn(s, " \t");
        if (*s == ';' || *s == '#') {
            s++;
            s += strspn(s, " \t");
        }
        if (*s == '[') {
            in_kind = strncmp(s + 1, kind, kl) == 0 && (s[1 + kl] == ']' || s[1 + kl] == ' ');
        } else if (in_kind && strncmp(s, key, keyl) == 0 &&
                   (s + keyl)[strspn(s + keyl, " \t")] == '=' && s + keyl < p + len) {
            return true;
        }
        p += len + (eol ? 1 : 0);
    }
    return false;
}

START_TEST(test_config_keys_documented)
{
    char *doc_path = top_path("docs", "configuration.md");
    char *conf_path = top_path("conf", "sluice.conf");
    char *doc = slurp(doc_path), *conf = slurp(conf_path);
    struct sl_config_key_info k;
    char tick[96], header[32];
    size_t i;

    ck_assert_msg(doc != NULL, "cannot read %s", doc_path);
    ck_assert_msg(conf != NULL, "cannot read %s", conf_path);
    for (i = 0; sl_config_key_info(i, &k) == 0; i++) {
        snprintf(tick, sizeof(tick), "`%s`", k.name);
        ck_assert_msg(strstr(doc, tick) != NULL, "%s does not mention %s", doc_path, tick);
        ck_assert_msg(conf_has_key(conf, k.section, k.name), "%s has no \"%s =\" in a [%s] section",
                      conf_path, k.name, k.section);
        snprintf(header, sizeof(header), "[%s", k.section);
        ck_assert_msg(strstr(doc, header) != NULL, "%s does not mention %s", doc_path, header);
    }
    free(doc);
    free(conf);
    free(doc_path);
    free(conf_path);
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("parsers");
    tcase_add_test(tc, test_config_parse_size);
    tcase_add_test(tc, test_config_parse_duration);
    tcase_add_test(tc, test_config_parse_address);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_test(tc, test_config_defaults_applied);
    tcase_add_test(tc, test_config_udp_defaults);
    tcase_add_test(tc, test_config_unix_sources);
    tcase_add_test(tc, test_config_values_stored);
    tcase_add_test(tc, test_config_queue_index);
    tcase_add_test(tc, test_config_logs_directory);
    tcase_add_test(tc, test_config_cannot_open);
    tcase_add_test(tc, test_config_directory);
    tcase_add_test(tc, test_config_file_too_large);
    tcase_add_test(tc, test_config_batch_max_bound);
    tcase_add_test(tc, test_config_nul_byte);
    tcase_add_test(tc, test_config_line_numbers);
    tcase_add_test(tc, test_config_errors_api);
    tcase_add_test(tc, test_config_summary_truncated);
    suite_add_tcase(s, tc);

    /* Bounded: before the limit was enforced while reading, these never ended. */
    tc = tcase_create("size_limit");
    tcase_add_test(tc, test_config_dev_zero);
    tcase_add_test(tc, test_config_fifo_small);
    tcase_add_test(tc, test_config_fifo_too_large);
    tcase_set_timeout(tc, 5);
    suite_add_tcase(s, tc);

    tc = tcase_create("data");
    tcase_add_test(tc, test_config_enough_bad_cases);
    tcase_add_loop_test(tc, test_config_good_cases, 0, (int)good_cases.n);
    tcase_add_loop_test(tc, test_config_bad_cases, 0, (int)bad_cases.n);
    tcase_add_loop_test(tc, test_config_all_errors_reported, 0, (int)multi_cases.n);
    suite_add_tcase(s, tc);

    tc = tcase_create("docs");
    tcase_add_test(tc, test_config_default_conf_loads);
    tcase_add_test(tc, test_config_key_info);
    tcase_add_test(tc, test_config_keys_documented);
    suite_add_tcase(s, tc);
    return s;
}

static void
free_cases(struct case_list *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        free(l->names[i]);
    }
    l->n = 0;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    list_cases("tests/data/config/good", &good_cases);
    list_cases("tests/data/config/bad", &bad_cases);
    list_cases("tests/data/config/multi", &multi_cases);
    sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    free_cases(&good_cases);
    free_cases(&bad_cases);
    free_cases(&multi_cases);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
