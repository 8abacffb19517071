/*
 * Unit tests for metrics: the exposition shows what the counters say (sums
 * over producer threads, per-queue aggregates, cumulative histogram
 * buckets) and passes promtool; /healthz's verdict; the alerting rules in
 * docs/monitoring.md pass promtool check rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/metrics.h"
#include "sluice/producer.h"
#include "sluice/sink.h"

#define NPROD 2

struct fixture {
    struct sl_source_config src[2];
    struct sl_sink_config snk[1];
    struct sl_source_stats src_stats[2][NPROD]; /* [source][thread] */
    struct sl_source_obj srcobj[2];
    struct sl_source_obj *sources[2];
    struct sl_queue *queues[1];
    struct sl_sink_stats sink_stats[1];
    struct sl_sink sink[1];
    struct sl_sink *sinks[1];
    struct sl_metrics_view view;
};

static void
fx_init(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    fx->src[0] = (struct sl_source_config){.name = "app", .queue = "main"};
    fx->src[1] = (struct sl_source_config){.name = "app_udp", .queue = "main"};
    fx->snk[0] = (struct sl_sink_config){.name = "archive", .queue = "main"};
    fx->queues[0] = sl_queue_new("main", 1 << 20, 1 << 16);
    ck_assert_ptr_nonnull(fx->queues[0]);
    for (size_t s = 0; s < 2; s++) {
        fx->srcobj[s] = (struct sl_source_obj){
            .cfg = &fx->src[s],
            .queue = fx->queues[0],
            .nthreads = NPROD,
            .stats = fx->src_stats[s],
        };
        fx->sources[s] = &fx->srcobj[s];
    }
    sl_metrics_init_sink(&fx->sink_stats[0]);
    fx->sink[0] =
        (struct sl_sink){.cfg = &fx->snk[0], .stats = &fx->sink_stats[0], .queue = fx->queues[0]};
    fx->sinks[0] = &fx->sink[0];
    fx->view = (struct sl_metrics_view){
        .sources = fx->sources,
        .nsources = 2,
        .queues = fx->queues,
        .nqueues = 1,
        .sinks = fx->sinks,
        .nsinks = 1,
        .start_realtime_ms = 1795694400000ull,
        .now_realtime_ms = 1795694460000ull,
        .writer_heartbeat_ms = 100000,
        .now_mono_ms = 100500,
    };
}

static void
fx_fini(struct fixture *fx)
{
    sl_queue_free(fx->queues[0]);
}

static char *
render(struct fixture *fx, int (*fn)(FILE *, const struct sl_metrics_view *), int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    *rc = fn(f, &fx->view);
    ck_assert_int_eq(fclose(f), 0);
    return text;
}

static bool
has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line)) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return true;
        }
    }
    return false;
}

/* Runs cmd with text on its standard input; returns its exit status. */
static int
run_with_input(const char *cmd, const char *text)
{
    char path[] = "/tmp/check_metrics_XXXXXX";
    char full[256];
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(full, sizeof(full), "%s %s", cmd, path);
    int rc = system(full);
    unlink(path);
    return rc;
}

static void
require_promtool(void)
{
    ck_assert_msg(system("command -v promtool >/dev/null 2>&1") == 0,
                  "promtool is missing: `make check` installs it (Debian package prometheus)");
}

START_TEST(test_metrics_counters_summed)
{
    struct fixture fx;
    int rc;
    fx_init(&fx);
    /* Thread 0 and thread 1 both saw source 0 ("app"). */
    sl_counter_add(&fx.src_stats[0][0].events_in, 10);
    sl_counter_add(&fx.src_stats[0][1].events_in, 5);
    sl_counter_add(&fx.src_stats[0][0].invalid, 3);
    sl_counter_add(&fx.src_stats[1][1].dropped_full, 7); /* thread 1, app_udp */
    sl_counter_add(&fx.src_stats[1][0].kernel_drops, 2);
    sl_counter_add(&fx.src_stats[0][0].pauses, 4);
    sl_counter_add(&fx.src_stats[0][0].resumes, 3);
    sl_counter_add(&fx.src_stats[0][0].paused_ns, 1500000000u);
    atomic_store(&fx.srcobj[0].shared.conns, 6);
    sl_counter_add(&fx.sink_stats[0].events_out, 15);
    sl_counter_add(&fx.sink_stats[0].rotations, 2);
    char *t = render(&fx, sl_metrics_render, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert(has_line(t, "sluice_source_received_events_total{source=\"app\"} 15"));
    ck_assert(
        has_line(t, "sluice_source_dropped_events_total{source=\"app\",reason=\"invalid\"} 3"));
    ck_assert(has_line(
        t, "sluice_source_dropped_events_total{source=\"app_udp\",reason=\"queue_full\"} 7"));
    ck_assert(has_line(t, "sluice_source_kernel_dropped_datagrams_total{source=\"app_udp\"} 2"));
    ck_assert(has_line(t, "sluice_source_connections{source=\"app\"} 6"));
    ck_assert(has_line(t, "sluice_source_paused_connections{source=\"app\"} 1"));
    ck_assert(has_line(t, "sluice_queue_paused_connections{queue=\"main\"} 1"));
    ck_assert(has_line(t, "sluice_queue_pauses_total{queue=\"main\"} 4"));
    ck_assert(has_line(t, "sluice_source_paused_seconds_total{source=\"app\"} 1.500000"));
    ck_assert(has_line(t, "sluice_queue_capacity_chunks{queue=\"main\"} 16"));
    ck_assert(has_line(t, "sluice_queue_capacity_bytes{queue=\"main\"} 1048576"));
    ck_assert(has_line(t, "sluice_sink_written_events_total{sink=\"archive\"} 15"));
    ck_assert(has_line(t, "sluice_sink_up{sink=\"archive\"} 1"));
    ck_assert(has_line(t, "sluice_sink_rotations_total{sink=\"archive\"} 2"));
    ck_assert(has_line(t, "sluice_uptime_seconds 60.000"));
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_metrics_histogram_cumulative)
{
    struct fixture fx;
    int rc;
    fx_init(&fx);
    struct sl_hist *h = &fx.sink_stats[0].latency_ns;
    sl_hist_observe(h, 50000, 3);          /* 50 us: first bucket (<= 100 us) */
    sl_hist_observe(h, 1500000, 2);        /* 1.5 ms: <= 2 ms */
    sl_hist_observe(h, 60000000000ull, 1); /* 60 s: +Inf only */
    char *t = render(&fx, sl_metrics_render, &rc);
    ck_assert(has_line(t, "sluice_event_latency_seconds_bucket{sink=\"archive\",le=\"0.0001\"} 3"));
    ck_assert(has_line(t, "sluice_event_latency_seconds_bucket{sink=\"archive\",le=\"0.001\"} 3"));
    ck_assert(has_line(t, "sluice_event_latency_seconds_bucket{sink=\"archive\",le=\"0.002\"} 5"));
    ck_assert(has_line(t, "sluice_event_latency_seconds_bucket{sink=\"archive\",le=\"10\"} 5"));
    ck_assert(has_line(t, "sluice_event_latency_seconds_bucket{sink=\"archive\",le=\"+Inf\"} 6"));
    ck_assert(has_line(t, "sluice_event_latency_seconds_count{sink=\"archive\"} 6"));
    ck_assert(has_line(t, "sluice_event_latency_seconds_sum{sink=\"archive\"} 60.00315"));
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_metrics_promtool_accepts)
{
    struct fixture fx;
    int rc;
    require_promtool();
    fx_init(&fx);
    sl_counter_add(&fx.src_stats[0][0].events_in, 1);
    sl_hist_observe(&fx.sink_stats[0].batch_bytes, 70000, 1);
    sl_hist_observe(&fx.sink_stats[0].fsync_ns, 300000, 1);
    char *t = render(&fx, sl_metrics_render, &rc);
    ck_assert_int_eq(run_with_input("promtool check metrics <", t), 0);
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_metrics_health)
{
    struct fixture fx;
    int rc;
    fx_init(&fx);
    char *t = render(&fx, sl_metrics_health, &rc);
    ck_assert_int_eq(rc, 200);
    ck_assert_ptr_nonnull(strstr(t, "\"status\":\"ok\""));
    free(t);

    /* A failing sink is named, with its error. */
    sl_counter_set(&fx.sink_stats[0].failing_since_ms, 1795694400000ull);
    sl_counter_set(&fx.sink_stats[0].last_errno, 28 /* ENOSPC */);
    t = render(&fx, sl_metrics_health, &rc);
    ck_assert_int_eq(rc, 503);
    ck_assert_ptr_nonnull(strstr(t, "\"sink\":\"archive\""));
    ck_assert_ptr_nonnull(strstr(t, "No space left on device"));
    ck_assert_ptr_nonnull(strstr(t, "\"since\":\"2026-11-26T12:00:00Z\""));
    free(t);
    t = render(&fx, sl_metrics_render, &rc);
    ck_assert(has_line(t, "sluice_sink_up{sink=\"archive\"} 0"));
    free(t);

    /* A writer whose loop has not turned for over 5 s is reported first. */
    fx.view.now_mono_ms = fx.view.writer_heartbeat_ms + SL_WRITER_STALL_MS + 1000;
    t = render(&fx, sl_metrics_health, &rc);
    ck_assert_int_eq(rc, 503);
    ck_assert_ptr_nonnull(strstr(t, "writer stalled"));
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_metrics_queue_drops_by_reason)
{
    struct fixture fx;
    int rc;
    fx_init(&fx);
    /* drop_newest: per source and thread (summed over the queue's sources);
     * drop_oldest: the queue's own (the writer's). */
    sl_counter_add(&fx.src_stats[0][0].dropped_newest, 4);
    sl_counter_add(&fx.src_stats[0][1].dropped_newest, 6);
    sl_counter_add(&fx.src_stats[0][0].dropped_newest_bytes, 400);
    sl_counter_add(&fx.src_stats[0][1].dropped_newest_bytes, 600);
    sl_queue_count_evicted(fx.queues[0], 80, 16000);
    sl_queue_count_evicted(fx.queues[0], 2, 400);
    char *t = render(&fx, sl_metrics_render, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert(
        has_line(t, "sluice_queue_dropped_events_total{queue=\"main\",reason=\"drop_newest\"} 10"));
    ck_assert(
        has_line(t, "sluice_queue_dropped_events_total{queue=\"main\",reason=\"drop_oldest\"} 82"));
    ck_assert(has_line(
        t, "sluice_queue_dropped_bytes_total{queue=\"main\",reason=\"drop_newest\"} 1000"));
    ck_assert(has_line(
        t, "sluice_queue_dropped_bytes_total{queue=\"main\",reason=\"drop_oldest\"} 16400"));
    ck_assert(has_line(
        t, "sluice_source_dropped_events_total{source=\"app\",reason=\"drop_newest\"} 10"));
    ck_assert(has_line(
        t, "sluice_source_dropped_events_total{source=\"app_udp\",reason=\"drop_newest\"} 0"));
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_metrics_thread_connections)
{
    /* Per thread: accepted - closed + moved in - moved out (THE SPREAD in
     * source_tcp.c); thread 1 accepted 3, closed 1 and handed 2 to thread 0. */
    struct fixture fx;
    int rc;
    fx_init(&fx);
    sl_counter_add(&fx.src_stats[0][0].conn_accepted, 2);
    sl_counter_add(&fx.src_stats[0][0].conn_moved_in, 2);
    sl_counter_add(&fx.src_stats[0][1].conn_accepted, 3);
    sl_counter_add(&fx.src_stats[0][1].conn_closed, 1);
    sl_counter_add(&fx.src_stats[0][1].conn_moved_out, 2);
    char *t = render(&fx, sl_metrics_render, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert(has_line(t, "sluice_source_thread_connections{source=\"app\",thread=\"0\"} 4"));
    ck_assert(has_line(t, "sluice_source_thread_connections{source=\"app\",thread=\"1\"} 0"));
    ck_assert(has_line(t, "sluice_source_thread_connections{source=\"app_udp\",thread=\"1\"} 0"));
    ck_assert(has_line(t, "sluice_source_connections_moved_total{source=\"app\"} 2"));
    free(t);
    fx_fini(&fx);
}
END_TEST

START_TEST(test_metrics_alert_rules_valid)
{
    /* The ```yaml block of docs/monitoring.md must pass promtool. */
    const char *top = getenv("SLUICE_TOP");
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/monitoring.md", top != NULL ? top : ".");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[1024];
    char *yaml = NULL;
    size_t ylen = 0;
    FILE *out = open_memstream(&yaml, &ylen);
    bool in = false, seen = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (!in && strcmp(line, "```yaml\n") == 0) {
            in = seen = true;
        } else if (in && strcmp(line, "```\n") == 0) {
            in = false;
        } else if (in) {
            fputs(line, out);
        }
    }
    fclose(f);
    fclose(out);
    ck_assert_msg(seen, "no ```yaml block in %s", path);
    require_promtool();
    char cmd[] = "promtool check rules";
    ck_assert_int_eq(run_with_input(cmd, yaml), 0);
    free(yaml);
}
END_TEST

static Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_metrics_counters_summed);
    tcase_add_test(tc, test_metrics_thread_connections);
    tcase_add_test(tc, test_metrics_queue_drops_by_reason);
    tcase_add_test(tc, test_metrics_histogram_cumulative);
    tcase_add_test(tc, test_metrics_promtool_accepts);
    tcase_add_test(tc, test_metrics_health);
    tcase_add_test(tc, test_metrics_alert_rules_valid);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
