/*
 * check_reload — sl_reload_compare (src/daemon/reload.c): what a reload
 * applies, reports or refuses, from two configs loaded from files.  The
 * daemon's side (signals, the writer's and producers' changes, counting
 * events under load) is
 * tests/integration/check_reload.c.
 */
#include "daemon/reload.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/config.h"

static char dir[64];

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_reload.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/a.conf", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/b.conf", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/agg.pem", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/agg.key", dir);
    unlink(p);
    rmdir(dir);
}

/* The base config with daemon_extra in [daemon], sink_extra in [sink
 * archive] and more sections after it; loaded from dir/name. */
static struct sl_config *
load(const char *name, const char *daemon_extra, const char *sink_extra, const char *more)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "[daemon]\nproducer_threads = 2\n%s"
            "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n"
            "[queue main]\n"
            "[sink archive]\ntype = file\npath = %s/out.ndjson\nqueue = main\n%s"
            "%s",
            daemon_extra, dir, sink_extra, more);
    fclose(f);
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = sl_config_load(path, &errs);
    ck_assert_msg(cfg != NULL, "%s", errs.count > 0 ? errs.msgs[0] : "?");
    sl_config_errors_fini(&errs);
    return cfg;
}

static void
compare(struct sl_reload_plan *plan, const char *d1, const char *s1, const char *m1, const char *d2,
        const char *s2, const char *m2)
{
    struct sl_config *a = load("a.conf", d1, s1, m1);
    struct sl_config *b = load("b.conf", d2, s2, m2);
    sl_reload_compare(a, a, b, plan);
    sl_config_free(a);
    sl_config_free(b);
}

START_TEST(test_identical)
{
    struct sl_reload_plan p;
    compare(&p, "", "", "", "", "", "");
    ck_assert(p.same && !p.refused);
    ck_assert_uint_eq(p.nreplace, 0);
    ck_assert_str_eq(p.report, "");
}
END_TEST

START_TEST(test_daemon_keys)
{
    struct sl_reload_plan p;
    compare(&p, "", "", "", "log_level = debug\nadmin_listen = off\n", "", "");
    ck_assert(!p.same && !p.refused);
    ck_assert_uint_eq(p.nlive, 1);
    ck_assert_uint_eq(p.nrestart, 1);
    ck_assert_msg(strstr(p.report, "daemon: log_level: applied") != NULL, "%s", p.report);
    ck_assert_msg(strstr(p.report, "daemon: admin_listen: needs a restart") != NULL, "%s",
                  p.report);
}
END_TEST

START_TEST(test_sink_replaced)
{
    struct sl_reload_plan p;
    compare(&p, "", "", "", "", "batch_timeout = 5ms\n", "");
    ck_assert(!p.same && !p.refused);
    ck_assert_uint_eq(p.nreplace, 1);
    ck_assert_msg(strstr(p.report, "sink \"archive\": changed (batch_timeout): replaced") != NULL,
                  "%s", p.report);
}
END_TEST

START_TEST(test_refused)
{
    struct sl_reload_plan p;
    /* a queue's chunk_size changed, a sink added and a changed sink with it: nothing applies */
    compare(&p, "log_level = debug\n", "",
            "[queue spare]\n[sink s2]\ntype = file\npath = /tmp/s2\nqueue = spare\n", "",
            "batch_timeout = 5ms\n",
            "[queue spare]\nchunk_size = 128KiB\n[sink s2]\ntype = file\npath = /tmp/s2\n"
            "queue = spare\n"
            "[sink more]\ntype = file\npath = /tmp/more.ndjson\nqueue = main\n");
    ck_assert(p.refused);
    ck_assert_uint_eq(p.nrefusals, 1);
    ck_assert_msg(strstr(p.report, "sink \"more\": added: not applied (the reload is refused)") !=
                      NULL,
                  "%s", p.report);
    ck_assert_msg(strstr(p.report, "not replaced (the reload is refused)") != NULL, "%s", p.report);
    ck_assert_msg(strstr(p.report, "log_level: not applied") != NULL, "%s", p.report);
    /* a queue changed */
    compare(&p, "", "", "[queue spare]\n[sink s2]\ntype = file\npath = /tmp/s2\nqueue = spare\n",
            "", "",
            "[queue spare]\nchunk_size = 128KiB\n[sink s2]\ntype = file\npath = /tmp/s2\nqueue = "
            "spare\n");
    ck_assert(p.refused);
    ck_assert_msg(strstr(p.report, "queue \"spare\": changed (chunk_size): not applied live") !=
                          NULL &&
                      strstr(p.report, "chunk_size: every chunk is allocated") != NULL,
                  "%s", p.report);
}
END_TEST

/* A sink that stays on a disk queue and cannot be replaced in place (its
 * type, a sluice sink's sender_id): its new self takes its reader over
 * (it was refused before: the old reader would have read on beside a new
 * one); the report says how, and says nothing of "no hand-over". */
START_TEST(test_disk_sink_handed_over)
{
    struct sl_reload_plan p;
    static const char dq[] = "[queue dq]\ntype = disk\npath = /tmp/dq\n";
    static const char keep[] = "[sink k]\ntype = file\npath = /tmp/k\nqueue = dq\n";
    char a[512], b[512];
    snprintf(a, sizeof(a), "%s[sink s2]\ntype = file\npath = /tmp/s2\nqueue = dq\n", dq);
    snprintf(b, sizeof(b), "%s[sink s2]\ntype = tcp\ntarget = 127.0.0.1:5999\nqueue = dq\n", dq);
    compare(&p, "", "", a, "", "", b);
    ck_assert_msg(!p.refused && p.nchange == 1 && p.nreplace == 0, "%s", p.report);
    ck_assert_msg(strstr(p.report, "sink \"s2\": changed (") != NULL &&
                      strstr(p.report, "handed over on its disk queue: the old one stops, a new "
                                       "one takes its reader") != NULL &&
                      strstr(p.report, "no hand-over") == NULL,
                  "%s", p.report);
    snprintf(a, sizeof(a),
             "%s[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:5999\nqueue = dq\nsender_id = a\n",
             dq);
    snprintf(b, sizeof(b),
             "%s[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:5999\nqueue = dq\nsender_id = b\n",
             dq);
    compare(&p, "", "", a, "", "", b);
    ck_assert_msg(!p.refused && p.nchange == 1 && p.nreplace == 0, "%s", p.report);
    ck_assert_msg(strstr(p.report, "sink \"fwd\": changed (sender_id): handed over on its disk "
                                   "queue: the old one sends nothing new and waits") != NULL &&
                      strstr(p.report, "at least once") != NULL &&
                      strstr(p.report, "no hand-over") == NULL,
                  "%s", p.report);
    /* file -> sluice */
    snprintf(a, sizeof(a), "%s[sink s2]\ntype = file\npath = /tmp/s2\nqueue = dq\n", dq);
    snprintf(b, sizeof(b), "%s[sink s2]\ntype = sluice\ntarget = 127.0.0.1:5999\nqueue = dq\n", dq);
    compare(&p, "", "", a, "", "", b);
    ck_assert_msg(!p.refused && p.nchange == 1 &&
                      strstr(p.report, "handed over on its disk queue: the old one stops") != NULL,
                  "%s", p.report);
    /* moved from a disk queue to another queue: a new one beside it, as before */
    snprintf(a, sizeof(a), "%s[sink s2]\ntype = file\npath = /tmp/s2\nqueue = dq\n%s", dq, keep);
    snprintf(b, sizeof(b), "%s[sink s2]\ntype = file\npath = /tmp/s2\nqueue = main\n%s", dq, keep);
    compare(&p, "", "", a, "", "", b);
    ck_assert_msg(!p.refused && p.nchange == 1 &&
                      strstr(p.report, "sink \"s2\": changed (queue): a new one takes") != NULL,
                  "%s", p.report);
}
END_TEST

/* Sinks added, removed, changed in type or queue; an acknowledging sink
 * changed: each applied by the writer (add + retire), listed in the plan. */
START_TEST(test_sinks_changed)
{
    struct sl_reload_plan p;
    compare(&p, "", "",
            "[queue spare]\n[sink s2]\ntype = file\npath = /tmp/s2\nqueue = spare\n"
            "[sink s3]\ntype = file\npath = /tmp/s3\nqueue = spare\n"
            "[sink gone]\ntype = file\npath = /tmp/g\nqueue = main\n",
            "", "",
            "[queue spare]\n[sink s2]\ntype = file\npath = /tmp/s2\nqueue = main\n"
            "[sink s3]\ntype = file\npath = /tmp/s3\nqueue = spare\n"
            "[sink more]\ntype = file\npath = /tmp/m\nqueue = spare\n");
    ck_assert_msg(!p.refused, "%s", p.report);
    ck_assert_uint_eq(p.nreplace, 0);
    ck_assert_uint_eq(p.nadd, 1);
    ck_assert_uint_eq(p.nchange, 1);
    ck_assert_uint_eq(p.nremove, 1);
    ck_assert_msg(strstr(p.report, "sink \"s2\": changed (queue): a new one takes") != NULL, "%s",
                  p.report);
    ck_assert_msg(strstr(p.report, "sink \"more\": added: it drains its queue") != NULL, "%s",
                  p.report);
    ck_assert_msg(strstr(p.report, "sink \"gone\": removed: it drains") != NULL, "%s", p.report);
}
END_TEST

/* A sluice sink changed under its sender id hands over (replaced in place),
 * on a disk queue too; with another sender id it does not. */
/* One sink replaced in place (none succeeded), the report saying want. */
static void
require_replaced(const struct sl_reload_plan *p, const char *want)
{
    ck_assert_msg(!p->refused, "%s", p->report);
    ck_assert_uint_eq(p->nreplace, 1);
    ck_assert_uint_eq(p->nchange, 0);
    ck_assert_msg(strstr(p->report, want) != NULL, "%s", p->report);
}

START_TEST(test_acking_sink_changed)
{
    struct sl_reload_plan p;
    compare(&p, "", "", "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:5999\nqueue = main\n", "",
            "", "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:5998\nqueue = main\n");
    require_replaced(&p, "sink \"fwd\": changed (target): replaced; the new one takes over what "
                         "the old one had not written and resends");
    compare(&p, "", "",
            "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:5999\nqueue = main\nsender_id = a\n", "",
            "",
            "[sink fwd]\ntype = sluice\ntarget = 127.0.0.1:5999\nqueue = main\nsender_id = b\n");
    ck_assert_msg(!p.refused, "%s", p.report);
    ck_assert_uint_eq(p.nreplace, 0);
    ck_assert_uint_eq(p.nchange, 1);
    ck_assert_msg(strstr(p.report, "sink \"fwd\": changed (sender_id): a new one takes") != NULL,
                  "%s", p.report);
    compare(&p, "", "",
            "[queue dq]\ntype = disk\npath = /tmp/dq\n[sink fwd]\ntype = sluice\n"
            "target = 127.0.0.1:5999\nqueue = dq\n",
            "", "",
            "[queue dq]\ntype = disk\npath = /tmp/dq\n[sink fwd]\ntype = sluice\n"
            "target = 127.0.0.1:5998\nqueue = dq\n");
    ck_assert_msg(!p.refused, "%s", p.report);
    ck_assert_uint_eq(p.nreplace, 1);
    ck_assert_msg(strstr(p.report, "sink \"fwd\": changed (target): replaced") != NULL, "%s",
                  p.report);
}
END_TEST

/* A nats sink [sink js] on queue main with more keys. */
#define JS "[sink js]\ntype = nats\nqueue = main\nurl = nats://127.0.0.1:4222\nsubject = logs.x\n"

/* A changed nats sink: replaced in place (hand-over) when its stream,
 * message mode and sender id stay; else a new one while the old drains,
 * with the reason in the report. */
START_TEST(test_nats_sink_changed)
{
    struct sl_reload_plan p;
    compare(&p, "", "", JS "stream = LOGS\n", "", "",
            "[sink js]\ntype = nats\nqueue = main\nurl = nats://127.0.0.1:4223\n"
            "subject = logs.y\nstream = LOGS\nuser = u\npassword = p\n");
    require_replaced(&p, "replaced; the new one takes over what the old one had not written and "
                         "resends");
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"stream = LOGS\n", "stream = OTHER\n", "(no hand-over: its stream changed"},
        {"stream = LOGS\n", "stream = LOGS\nsender_id = b\n",
         "(no hand-over: its sender_id changed"},
        {"stream = LOGS\n", "stream = LOGS\nmessage = batch\n",
         "(no hand-over: its message mode changed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char a[256], b[256];
        snprintf(a, sizeof(a), JS "%s", cases[i].from);
        snprintf(b, sizeof(b), JS "%s", cases[i].to);
        compare(&p, "", "", a, "", "", b);
        ck_assert_msg(!p.refused, "%s", p.report);
        ck_assert_uint_eq(p.nreplace, 0);
        ck_assert_uint_eq(p.nchange, 1);
        ck_assert_msg(strstr(p.report, cases[i].why) != NULL, "case %zu: %s", i, p.report);
    }
    /* On a disk queue: replaced in place too (handover_disk); a change it
     * cannot hand over in place hands its reader to a new one, with the
     * type's reason (it refused the reload before). */
#define JSQ "[queue dq]\ntype = disk\npath = /tmp/dq\n[sink js]\ntype = nats\nqueue = dq\n"       \
            "stream = LOGS\n"
    compare(&p, "", "", JSQ "url = nats://127.0.0.1:4222\nsubject = logs.x\n", "", "",
            JSQ "url = nats://127.0.0.1:4223\nsubject = logs.y\nmax_inflight = 64\n");
    require_replaced(&p, "sink \"js\": changed (subject, url, max_inflight): replaced; the new "
                         "one takes over");
    compare(&p, "", "", JSQ "url = nats://127.0.0.1:4222\nsubject = logs.x\n", "", "",
            JSQ "url = nats://127.0.0.1:4222\nsubject = logs.x\nsender_id = b\n");
    ck_assert_msg(!p.refused && p.nreplace == 0 && p.nchange == 1, "%s", p.report);
    ck_assert_msg(strstr(p.report, "sink \"js\": changed (sender_id): handed over on its disk "
                                   "queue: the old one sends nothing new") != NULL &&
                      strstr(p.report, "(not replaced in place: its sender_id changed") != NULL,
                  "%s", p.report);
    /* Its message mode or stream changed, the same sender_id: refused (a
     * successor would number the records again under ids already used). */
    compare(&p, "", "", JSQ "url = nats://127.0.0.1:4222\nsubject = logs.x\n", "", "",
            JSQ "url = nats://127.0.0.1:4222\nsubject = logs.x\nmessage = batch\n");
    ck_assert_msg(p.refused && p.nchange == 0 &&
                      strstr(p.report, "message ids already used (a restart numbers on)") != NULL,
                  "%s", p.report);
#undef JSQ
    /* A sink that acknowledges nothing changed into another such type
     * says nothing of a hand-over. */
    compare(&p, "", "", "[sink t]\ntype = tcp\ntarget = 127.0.0.1:5999\nqueue = main\n", "", "",
            "[sink t]\ntype = file\npath = /tmp/check_reload_t.ndjson\nqueue = main\n");
    ck_assert_uint_eq(p.nchange, 1);
    ck_assert_msg(strstr(p.report, "no hand-over") == NULL, "%s", p.report);
}
END_TEST

/* tcp and udp sources added, removed, changed. */
START_TEST(test_sources_changed)
{
    struct sl_reload_plan p;
    compare(&p, "", "",
            "[source d]\ntype = udp\nlisten = 127.0.0.1:5170\nqueue = main\n"
            "[source old]\ntype = tcp\nlisten = 127.0.0.1:5172\nqueue = main\n",
            "", "",
            "[source d]\ntype = udp\nlisten = 127.0.0.1:5171\nqueue = main\n"
            "[source new]\ntype = tcp\nlisten = 127.0.0.1:5173\nqueue = main\n");
    ck_assert_msg(!p.refused, "%s", p.report);
    ck_assert_uint_eq(p.nsrc_add, 1);
    ck_assert_uint_eq(p.nsrc_change, 1);
    ck_assert_uint_eq(p.nsrc_remove, 1);
    ck_assert_msg(strstr(p.report, "source \"new\": added: bound and started") != NULL, "%s",
                  p.report);
    ck_assert_msg(strstr(p.report, "source \"d\": changed: a new one") != NULL, "%s", p.report);
    ck_assert_msg(strstr(p.report, "source \"old\": removed: it stops accepting") != NULL, "%s",
                  p.report);
}
END_TEST

/* Sources of every type are added, removed and changed live; a relp
 * source is not added, removed or changed while another relp source with
 * tls = on runs before or after the reload (librelp's one TLS context per
 * process), with the reason. */
START_TEST(test_sources)
{
    struct sl_reload_plan p;
    static const char *const live[] = {
        "[source s]\ntype = unix_stream\nlisten = /tmp/x.sock\nqueue = main\n",
        "[source s]\ntype = unix_dgram\nlisten = /tmp/x.sock\nqueue = main\n",
        "[source s]\ntype = sluice\nlisten = 127.0.0.1:5999\nqueue = main\n",
        "[source s]\ntype = relp\nlisten = 127.0.0.1:5514\nqueue = main\n",
        ("[source s]\ntype = nats\nurl = nats://127.0.0.1:4222\nstream = S\nconsumer = c\n"
         "queue = main\n"),
    };
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        compare(&p, "", "", "", "", "", live[i]);
        ck_assert_msg(!p.refused && p.nsrc_add == 1, "%s: %s", live[i], p.report);
        compare(&p, "", "", live[i], "", "", "");
        ck_assert_msg(!p.refused && p.nsrc_remove == 1, "%s: %s", live[i], p.report);
        char changed[256];
        snprintf(changed, sizeof(changed), "%smax_line_bytes = 4096\n", live[i]);
        compare(&p, "", "", live[i], "", "", changed);
        ck_assert_msg(!p.refused && p.nsrc_change == 1, "%s: %s", live[i], p.report);
        ck_assert_msg(strstr(p.report, strstr(live[i], "relp") != NULL
                                           ? "source \"s\": changed: the old one stops first"
                                           : "source \"s\": changed: a new one") != NULL,
                      "%s", p.report);
        /* kept: nothing to do */
        compare(&p, "", "", live[i], "", "", live[i]);
        ck_assert_msg(p.same && !p.refused, "%s: %s", live[i], p.report);
    }
    /* relp beside a relp source with tls = on: that one is kept; this one
     * is not added, removed or changed live (a failed start destroys its
     * engine, which frees the TLS context as a stop does) */
    char tls[512], cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=localhost -keyout %s/agg.key -out %s/agg.pem 2>/dev/null",
             dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(tls, sizeof(tls),
             "[source rt]\ntype = relp\nlisten = 127.0.0.1:6514\nqueue = main\ntls = on\n"
             "tls_client_auth = none\ntls_cert_file = %s/agg.pem\ntls_key_file = %s/agg.key\n",
             dir, dir);
    const char *rl = "[source rl]\ntype = relp\nlisten = 127.0.0.1:5514\nqueue = main\n";
    char both[1024], changed[1024];
    snprintf(both, sizeof(both), "%s%s", tls, rl);
    snprintf(changed, sizeof(changed), "%s%smax_line_bytes = 4096\n", tls, rl);
    compare(&p, "", "", tls, "", "", both);
    ck_assert(p.refused && p.nsrc_add == 0);
    ck_assert_msg(strstr(p.report, "a relp source starts or stops only while no other relp "
                                   "source with tls = on runs") != NULL,
                  "%s", p.report);
    compare(&p, "", "", both, "", "", tls);
    ck_assert(p.refused && p.nsrc_remove == 0);
    ck_assert_msg(strstr(p.report, "source \"rl\": removed: not applied live by this version "
                                   "(restart): a relp source starts or stops only while no "
                                   "other relp source with tls = on runs") != NULL,
                  "%s", p.report);
    /* a tls one added in the reload that removes a plain one: the stop
     * would free the new one's context */
    compare(&p, "", "", rl, "", "", tls);
    ck_assert_msg(p.refused && p.nsrc_remove == 0 &&
                      strstr(p.report, "source \"rl\": removed: not applied live") != NULL,
                  "%s", p.report);
    compare(&p, "", "", both, "", "", changed);
    ck_assert(p.refused && p.nsrc_change == 0);
    ck_assert_msg(strstr(p.report, "source \"rl\": changed (max_line_bytes): not applied live") !=
                      NULL,
                  "%s", p.report);
    /* the tls one itself goes: applied */
    compare(&p, "", "", both, "", "", rl);
    ck_assert_msg(!p.refused && p.nsrc_remove == 1, "%s", p.report);
}
END_TEST

/* Queues added and removed with their sources and sinks; capacity and
 * when_full, and a disk queue's max_size and fsync_interval in place; the
 * other keys (type, path, chunk_size, fsync), and a sink moved onto an
 * added queue, refused with their reasons. */
START_TEST(test_queues_changed)
{
    struct sl_reload_plan p;
    static const char xq[] = "[queue xq]\n%s"
                             "[source xs]\ntype = tcp\nlisten = 127.0.0.1:5174\nqueue = xq\n"
                             "[sink xk]\ntype = file\npath = /tmp/xk\nqueue = xq\n";
    char mem[512], disk[512], disk2[512], typed[512], full[512];
    snprintf(mem, sizeof(mem), xq, "");
    snprintf(disk, sizeof(disk), xq, "type = disk\npath = /tmp/xq\n");
    snprintf(disk2, sizeof(disk2), xq, "type = disk\npath = /tmp/xq\nfsync_interval = 100ms\n");
    snprintf(typed, sizeof(typed), xq, "type = disk\n");
    snprintf(full, sizeof(full), xq, "when_full = drop_newest\ncapacity = 32MiB\n");
    /* added, memory then disk: with its source and sink */
    for (int i = 0; i < 2; i++) {
        compare(&p, "", "", "", "", "", i == 0 ? mem : disk);
        ck_assert_msg(!p.refused, "%s", p.report);
        ck_assert_uint_eq(p.nq_add, 1);
        ck_assert_uint_eq(p.nadd, 1);
        ck_assert_uint_eq(p.nsrc_add, 1);
        ck_assert_msg(strstr(p.report, i == 0 ? "queue \"xq\": added (memory): made"
                                              : "queue \"xq\": added (disk): made") != NULL,
                      "%s", p.report);
    }
    /* removed, memory then disk: its directory stays */
    for (int i = 0; i < 2; i++) {
        compare(&p, "", "", i == 0 ? mem : disk, "", "", "");
        ck_assert_msg(!p.refused, "%s", p.report);
        ck_assert_uint_eq(p.nq_remove, 1);
        ck_assert_uint_eq(p.nremove, 1);
        ck_assert_uint_eq(p.nsrc_remove, 1);
        ck_assert_msg(strstr(p.report, "queue \"xq\": removed: its sources stop first") != NULL,
                      "%s", p.report);
        ck_assert((strstr(p.report, "its directory stays on disk") != NULL) == (i == 1));
    }
    /* fsync_interval of a disk queue: in place */
    compare(&p, "", "", disk, "", "", disk2);
    ck_assert_msg(!p.refused, "%s", p.report);
    ck_assert_uint_eq(p.nq_change, 1);
    ck_assert_msg(strstr(p.report, "queue \"xq\": changed (fsync_interval): applied in place") !=
                      NULL,
                  "%s", p.report);
    /* type memory -> disk: refused, the key named with its reason */
    compare(&p, "", "", mem, "", "", typed);
    ck_assert(p.refused && p.nq_change == 0);
    ck_assert_msg(strstr(p.report, "queue \"xq\": changed (type): not applied live") != NULL &&
                      strstr(p.report, "type: what it holds would have to move") != NULL,
                  "%s", p.report);
    /* capacity and when_full of a memory queue: in place */
    compare(&p, "", "", mem, "", "", full);
    ck_assert_msg(!p.refused, "%s", p.report);
    ck_assert_uint_eq(p.nq_change, 1);
    ck_assert_msg(strstr(p.report, "queue \"xq\": changed (capacity, when_full): applied in "
                                   "place; it keeps its contents") != NULL,
                  "%s", p.report);
    /* a disk queue's max_size and when_full: in place; fsync and chunk_size: refused */
    char dmax[512], dsync[512];
    snprintf(dmax, sizeof(dmax), xq,
             "type = disk\npath = /tmp/xq\nmax_size = 2GiB\nwhen_full = drop_newest\n");
    snprintf(dsync, sizeof(dsync), xq,
             "type = disk\npath = /tmp/xq\nfsync = batch\nchunk_size = 128KiB\n");
    compare(&p, "", "", disk, "", "", dmax);
    ck_assert_msg(!p.refused && p.nq_change == 1, "%s", p.report);
    ck_assert_msg(strstr(p.report, "queue \"xq\": changed (max_size, when_full): applied") != NULL,
                  "%s", p.report);
    compare(&p, "", "", disk, "", "", dsync);
    ck_assert(p.refused && p.nq_change == 0);
    ck_assert_uint_eq(p.nrefusals, 1);
    ck_assert_msg(strstr(p.report, "chunk_size: every chunk is allocated") != NULL &&
                      strstr(p.report, "fsync: the disk backlog starts its sync thread") != NULL,
                  "%s", p.report);
    /* a disk queue's directory moved: refused, what to do named */
    compare(&p, "", "", disk, "", "", typed);
    ck_assert(p.refused);
    ck_assert_msg(strstr(p.report, "path: a disk queue's directory is locked and open") != NULL &&
                      strstr(p.report, "Moving a queue directory") != NULL,
                  "%s", p.report);
    /* a kept sink moved onto an added queue: refused, named */
    compare(&p, "", "", "", "", "",
            "[queue xq]\n[sink archive2]\ntype = file\npath = /tmp/a2\nqueue = xq\n");
    ck_assert_msg(!p.refused, "%s", p.report);
    compare(&p, "", "", "[sink k]\ntype = file\npath = /tmp/k\nqueue = main\n", "", "",
            "[queue xq]\n[sink k]\ntype = file\npath = /tmp/k\nqueue = xq\n");
    ck_assert(p.refused);
    ck_assert_msg(strstr(p.report, "sink \"k\": moved onto queue \"xq\"") != NULL, "%s", p.report);
}
END_TEST

/* A source whose start failed at the last reload (its section marked stale
 * in the adopted config, main.c): the same file again is not "unchanged"
 * but tries it again, as a change; removed, it is a removal. */
START_TEST(test_stale_source_retried)
{
    struct sl_reload_plan p;
    static const char rl[] =
        "[source rl]\ntype = relp\nlisten = 127.0.0.1:5180\nqueue = main\ncodec = json\n";
    struct sl_config *a = load("a.conf", "", "", rl);
    struct sl_config *b = load("b.conf", "", "", rl);
    sl_reload_compare(a, a, b, &p);
    ck_assert(p.same);
    for (size_t i = 0; i < a->nsections; i++) {
        if (a->sections[i].name != NULL && strcmp(a->sections[i].name, "rl") == 0) {
            a->sections[i].stale = true;
        }
    }
    sl_reload_compare(a, a, b, &p);
    ck_assert_msg(!p.same && !p.refused && p.nsrc_change == 1 && p.nsrc_add == 0, "%s", p.report);
    ck_assert_msg(
        strstr(p.report, "source \"rl\": did not start at the last reload, tried again") != NULL,
        "%s", p.report);
    sl_config_free(b);
    b = load("b.conf", "", "", "");
    sl_reload_compare(a, a, b, &p);
    ck_assert_msg(!p.refused && p.nsrc_remove == 1, "%s", p.report);
    sl_config_free(a);
    sl_config_free(b);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("compare");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_identical);
    tcase_add_test(tc, test_daemon_keys);
    tcase_add_test(tc, test_sink_replaced);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_sinks_changed);
    tcase_add_test(tc, test_acking_sink_changed);
    tcase_add_test(tc, test_disk_sink_handed_over);
    tcase_add_test(tc, test_sources_changed);
    tcase_add_test(tc, test_sources);
    tcase_add_test(tc, test_queues_changed);
    tcase_add_test(tc, test_stale_source_retried);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("nats_handover");
    tcase_add_checked_fixture(tn, setup, teardown);
    tcase_add_test(tn, test_nats_sink_changed);
    suite_add_tcase(s, tn);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
