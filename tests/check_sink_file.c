/*
 * Unit tests for the file sink: append, file mode, fsync policies, reopen
 * after rename (signal-free, via tick) and on request, missing folder.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/sink.h"

struct fixture {
    char dir[64];
    char path[128];
    struct sl_sink_config cfg;
    struct sl_sink_stats stats;
    struct sl_sink sink;
};

static void
fx_init(struct fixture *fx, enum sl_fsync fsync)
{
    memset(fx, 0, sizeof(*fx));
    strcpy(fx->dir, "/tmp/sluice-sink-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/out.ndjson", fx->dir);
    fx->cfg.name = "t";
    fx->cfg.path = fx->path;
    fx->cfg.file_mode = 0640;
    fx->cfg.fsync = fsync;
    fx->cfg.fsync_interval_ms = 1000;
    fx->cfg.batch_max_bytes = 1 << 20;
    fx->sink.cfg = &fx->cfg;
    fx->sink.stats = &fx->stats;
    fx->sink.ops = sl_sink_ops_for(SL_SINK_FILE);
    ck_assert_ptr_nonnull(fx->sink.ops);
}

static void
fx_fini(struct fixture *fx)
{
    char cmd[160];
    fx->sink.ops->close(&fx->sink);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void
put(struct fixture *fx, const char *a, const char *b)
{
    struct iovec iov[2] = {{(void *)a, strlen(a)}, {(void *)b, strlen(b)}};
    size_t written = 0;
    ck_assert_int_eq(fx->sink.ops->write(&fx->sink, iov, 2, &written), SL_SINK_OK);
    ck_assert_uint_eq(written, strlen(a) + strlen(b));
    ck_assert_int_eq(fx->sink.ops->flush(&fx->sink, false), SL_SINK_OK);
}

static char *
slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_sink_file_append_and_mode)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_NONE);
    /* Existing content is kept: the sink appends. */
    FILE *f = fopen(fx.path, "w");
    fputs("{\"old\":1}\n", f);
    fclose(f);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"a\":1}\n", "{\"b\":2}\n");
    ck_assert_str_eq(slurp(fx.path), "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n");
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 0);
    fx_fini(&fx);

    fx_init(&fx, SL_FSYNC_NONE);
    fx.cfg.file_mode = 0600;
    umask(022);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    struct stat st;
    ck_assert_int_eq(stat(fx.path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_fsync_batch)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_BATCH);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{}\n", "{}\n");
    put(&fx, "{}\n", "{}\n");
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 2);
    /* Nothing new: the final flush does not sync again. */
    ck_assert_int_eq(fx.sink.ops->flush(&fx.sink, true), SL_SINK_OK);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 2);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_fsync_interval_and_final)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_INTERVAL);
    fx.cfg.fsync_interval_ms = 3600 * 1000;
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{}\n", "{}\n"); /* within the interval (from open): no sync */
    put(&fx, "{}\n", "{}\n");
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 0);
    /* Once the interval has passed, the tick syncs. */
    fx.sink.ops->tick(&fx.sink, sl_now_ms() + 3600 * 1000);
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 1);
    put(&fx, "{}\n", "{}\n");
    ck_assert_int_eq(fx.sink.ops->flush(&fx.sink, true), SL_SINK_OK); /* stop: always */
    ck_assert_uint_eq(sl_counter_get(&fx.stats.fsyncs), 2);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_reopen_after_rename)
{
    struct fixture fx;
    char moved[160];
    fx_init(&fx, SL_FSYNC_NONE);
    snprintf(moved, sizeof(moved), "%s.1", fx.path);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"n\":1}\n", "");
    ck_assert_int_eq(rename(fx.path, moved), 0);
    /* Until the tick notices, writes go to the renamed file. */
    put(&fx, "{\"n\":2}\n", "");
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put(&fx, "{\"n\":3}\n", "");
    ck_assert_str_eq(slurp(moved), "{\"n\":1}\n{\"n\":2}\n");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":3}\n");
    ck_assert_uint_eq(sl_counter_get(&fx.stats.reopens), 1);
    /* A tick with nothing changed does not reopen. */
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    ck_assert_uint_eq(sl_counter_get(&fx.stats.reopens), 1);
    /* Deleted: recreated. */
    ck_assert_int_eq(unlink(fx.path), 0);
    fx.sink.ops->tick(&fx.sink, sl_now_ms());
    put(&fx, "{\"n\":4}\n", "");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":4}\n");
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_reopen_on_request)
{
    struct fixture fx;
    char moved[160];
    fx_init(&fx, SL_FSYNC_NONE);
    snprintf(moved, sizeof(moved), "%s.1", fx.path);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), 0);
    put(&fx, "{\"n\":1}\n", "");
    ck_assert_int_eq(rename(fx.path, moved), 0);
    fx.sink.ops->reopen(&fx.sink);
    put(&fx, "{\"n\":2}\n", "");
    ck_assert_str_eq(slurp(moved), "{\"n\":1}\n");
    ck_assert_str_eq(slurp(fx.path), "{\"n\":2}\n");
    fx_fini(&fx);
}
END_TEST

START_TEST(test_sink_file_missing_folder)
{
    struct fixture fx;
    fx_init(&fx, SL_FSYNC_NONE);
    snprintf(fx.path, sizeof(fx.path), "%s/no/such/out.ndjson", fx.dir);
    ck_assert_int_eq(fx.sink.ops->open(&fx.sink), -1);
    fx_fini(&fx);
}
END_TEST

static Suite *
sink_file_suite(void)
{
    Suite *s = suite_create("sink_file");
    TCase *tc = tcase_create("file");
    tcase_add_test(tc, test_sink_file_append_and_mode);
    tcase_add_test(tc, test_sink_file_fsync_batch);
    tcase_add_test(tc, test_sink_file_fsync_interval_and_final);
    tcase_add_test(tc, test_sink_file_reopen_after_rename);
    tcase_add_test(tc, test_sink_file_reopen_on_request);
    tcase_add_test(tc, test_sink_file_missing_folder);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    sl_log_init(LOG_ERR);
    SRunner *sr = srunner_create(sink_file_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
