/*
 * check_sink_nats — the nats sink's and source's pure parts: the subject
 * template (sl_nats_subject) and the config rules of both types (listen
 * refused for a nats source and not required, credentials together,
 * %{source} refused with the reason) and what a reload's hand-over
 * refuses (on a memory and a disk queue alike).  The sink and source
 * against real servers: tests/integration/check_nats.c; the hand-over
 * under load: tests/integration/check_reload.c (nats_handover,
 * nats_handover_disk).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink/sink_nats.h"
#include "sluice/config.h"
#include "sluice/sink.h"

START_TEST(test_subject_template)
{
    char buf[128], why[256];

    ck_assert_int_eq(sl_nats_subject("logs.%{queue}", "main", buf, sizeof(buf), why, sizeof(why)),
                     9);
    ck_assert_str_eq(buf, "logs.main");
    ck_assert_int_eq(sl_nats_subject("a.b-c_d", "q", buf, sizeof(buf), why, sizeof(why)), 7);
    ck_assert_str_eq(buf, "a.b-c_d");
    ck_assert_int_eq(sl_nats_subject("%{source}", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "%{source} is not supported"));
    ck_assert_int_eq(sl_nats_subject("x.%{host}", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "unknown field %{host}"));
    ck_assert_int_eq(sl_nats_subject("x.%{queue", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject("a b", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject("a.*", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject("a.>", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject("a..b", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject(".a", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject("", "q", buf, sizeof(buf), why, sizeof(why)), -1);
    ck_assert_int_eq(sl_nats_subject("%{queue}", "a-very-long-queue-name", buf, 8, why, sizeof(why)),
                     -1);
    ck_assert_ptr_nonnull(strstr(why, "too long"));
}
END_TEST

/* Loads text as a config (NULL on errors, into errs). */
static struct sl_config *
load_config(const char *text, struct sl_config_errors *errs)
{
    char path[] = "/tmp/check_sink_nats.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sl_config *cfg = sl_config_load(path, errs);
    unlink(path);
    return cfg;
}

/* Loads text as a config; returns the errors joined by '\n' ("" when it
 * loaded).  Caller frees. */
static char *
load(const char *text)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = load_config(text, &errs);
    size_t len = 1;
    for (size_t i = 0; i < errs.count; i++) {
        len += strlen(errs.msgs[i]) + 1;
    }
    char *out = calloc(1, len);
    for (size_t i = 0; i < errs.count; i++) {
        strcat(out, errs.msgs[i]);
        strcat(out, "\n");
    }
    ck_assert_int_eq(cfg != NULL, errs.count == 0);
    sl_config_free(cfg);
    sl_config_errors_fini(&errs);
    return out;
}

#define SINK_OK                                                                                    \
    "[sink js]\ntype = nats\nqueue = main\nurl = nats://127.0.0.1:4222, nats://127.0.0.1:4223\n"  \
    "subject = logs.%{queue}\nstream = LOGS\n"

START_TEST(test_config_rules)
{
    char *e;

    /* A nats source needs no listen; a tcp source still does. */
    e = load("[source js]\ntype = nats\nurl = nats://127.0.0.1:4222\nstream = LOGS\n"
             "consumer = aggs\nqueue = main\n[queue main]\n" SINK_OK);
    ck_assert_str_eq(e, "");
    free(e);
    e = load("[source app]\ntype = tcp\nqueue = main\n[queue main]\n" SINK_OK);
    ck_assert_ptr_nonnull(strstr(e, "missing required key \"listen\""));
    free(e);
    e = load("[source js]\ntype = nats\nlisten = 127.0.0.1:5170\nurl = nats://127.0.0.1:4222\n"
             "stream = LOGS\nconsumer = aggs\nqueue = main\n[queue main]\n" SINK_OK);
    ck_assert_ptr_nonnull(strstr(e, "listens on nothing"));
    free(e);
    /* The sink: %{source} refused with its reason, credentials together,
     * a stream name without dots, a url with a port. */
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             "[sink js]\ntype = nats\nqueue = main\nurl = nats://127.0.0.1:4222\n"
             "subject = logs.%{source}\nstream = LOGS\nuser = u\n");
    ck_assert_ptr_nonnull(strstr(e, "%{source} is not supported"));
    ck_assert_ptr_nonnull(strstr(e, "user and password go together"));
    free(e);
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             "[sink js]\ntype = nats\nqueue = main\nurl = nats://127.0.0.1\n"
             "subject = logs\nstream = A.B\nmessage = lines\n");
    ck_assert_ptr_nonnull(strstr(e, "nats://host:port"));
    ck_assert_ptr_nonnull(strstr(e, "A-Z a-z 0-9 _ -"));
    ck_assert_ptr_nonnull(strstr(e, "event or batch"));
    free(e);
    /* A disk queue is taken (the sink copies and numbers its records). */
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             "type = disk\npath = /tmp/check_sink_nats.q\n" SINK_OK);
    ck_assert_str_eq(e, "");
    free(e);
    /* TLS: the tls* keys need tls = on; tls = on needs tls_ca_file (the
     * server is always verified); tls_min_version 1.3 is taken, but not
     * with tls_ciphers (the sink sets the TLS 1.2 list itself then). */
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             SINK_OK "tls_server_name = nats.example\n");
    ck_assert_ptr_nonnull(strstr(e, "tls_server_name is set but tls is off"));
    free(e);
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             SINK_OK "tls = on\n");
    ck_assert_ptr_nonnull(strstr(e, "tls = on needs tls_ca_file"));
    free(e);
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             SINK_OK "tls = on\ntls_ca_file = /etc/ssl/certs/ca-certificates.crt\n"
                     "tls_min_version = 1.3\n");
    ck_assert_str_eq(e, "");
    free(e);
    e = load(
        "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n" SINK_OK
        "tls = on\ntls_ca_file = /etc/ssl/certs/ca-certificates.crt\n"
        "tls_min_version = 1.3\ntls_ciphers = ECDHE-RSA-AES128-GCM-SHA256\n");
    ck_assert_ptr_nonnull(strstr(e, "tls_ciphers (the TLS 1.2 cipher list) cannot be set with "
                                    "tls_min_version = 1.3"));
    free(e);
    /* One expected name for all servers: different hosts need
     * tls_server_name. */
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             "[sink js]\ntype = nats\nqueue = main\n"
             "url = nats://a.example:4222, tls://u:p@b.example:4222\nsubject = logs\n"
             "stream = LOGS\ntls = on\ntls_ca_file = /etc/ssl/certs/ca-certificates.crt\n");
    ck_assert_ptr_nonnull(strstr(e, "servers on different hosts (a.example, b.example)"));
    free(e);
    e = load("[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
             "[sink js]\ntype = nats\nqueue = main\nurl = tls://a.example:4222\nsubject = logs\n"
             "stream = LOGS\n");
    ck_assert_ptr_nonnull(strstr(e, "tls://a.example:4222 asks for TLS: set tls = on"));
    free(e);
    char h[64];
    ck_assert_int_eq(sl_nats_url_host("nats://u:p@[::1]:4222", h, sizeof(h)), 0);
    ck_assert_str_eq(h, "::1");
    ck_assert_int_eq(sl_nats_url_host("127.0.0.1:4222", h, sizeof(h)), 0);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(sl_nats_url_host("nats://:4222", h, sizeof(h)), -1);
}
END_TEST

/* The tcp source and queue main: a disk queue (disk) or a memory one. */
#define NH_HEAD "[source app]\ntype = tcp\nlisten = 127.0.0.1:5170\nqueue = main\n[queue main]\n"
#define NH_DISK "type = disk\npath = /tmp/check_sink_nats.q\n"
#define NH_SINK "[sink js]\ntype = nats\nqueue = main\n"
#define NH_URL "url = nats://127.0.0.1:4222\n"

/* What a reload's hand-over refuses (sink.h handover_refusal), on a disk
 * queue as on a memory one: the keys in the message ids (sender_id,
 * message) and the stream whose duplicate filter drops a republish, but
 * not the url, subject, credentials or limits; and the type says it hands
 * over on a disk queue (handover_disk: the reload replaces it in place
 * there too). */
START_TEST(test_handover_refusal)
{
    static const struct {
        const char *keys, *why; /* the changed sink's keys; why: NULL = handed over */
    } cases[] = {
        {"url = nats://127.0.0.1:4223\nsubject = logs.y\nstream = LOGS\nmax_inflight = 64\n"
         "ack_timeout = 3s\nuser = u\npassword = p\n",
         NULL},
        {NH_URL "subject = logs.x\nstream = LOGS\nsender_id = other\n", "its sender_id changed"},
        {NH_URL "subject = logs.x\nstream = LOGS\nmessage = batch\n", "its message mode changed"},
        {NH_URL "subject = logs.x\nstream = OTHER\n", "its stream changed"},
    };
    const struct sl_sink_ops *ops = &sl_sink_nats_ops;

    ck_assert(ops->handover != NULL && ops->handover_ok != NULL && ops->handover_disk);
    for (int disk = 0; disk < 2; disk++) {
        char text[512];
        struct sl_config_errors errs = {0};
        snprintf(text, sizeof(text), NH_HEAD "%s" NH_SINK NH_URL "subject = logs.x\nstream = LOGS\n",
                 disk ? NH_DISK : "");
        struct sl_config *from = load_config(text, &errs);
        ck_assert_msg(from != NULL, "%s", errs.count > 0 ? errs.msgs[0] : "?");
        ck_assert_int_eq(sl_sink_nats_config(&from->sinks[0])->disk_queue, disk);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            snprintf(text, sizeof(text), NH_HEAD "%s" NH_SINK "%s", disk ? NH_DISK : "",
                     cases[i].keys);
            struct sl_config *to = load_config(text, &errs);
            ck_assert_msg(to != NULL, "case %zu: %s", i, errs.count > 0 ? errs.msgs[0] : "?");
            const char *why = ops->handover_refusal(&from->sinks[0], &to->sinks[0]);
            bool ok = ops->handover_ok(&from->sinks[0], &to->sinks[0]);
            if (cases[i].why == NULL) {
                ck_assert_msg(why == NULL && ok, "disk %d, case %zu refused: %s", disk, i, why);
            } else {
                ck_assert_msg(why != NULL && strstr(why, cases[i].why) != NULL && !ok,
                              "disk %d, case %zu: %s", disk, i, why != NULL ? why : "handed over");
            }
            sl_config_free(to);
        }
        sl_config_free(from);
        sl_config_errors_fini(&errs);
    }
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("sink_nats");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, test_subject_template);
    tcase_add_test(tc, test_config_rules);
    tcase_add_test(tc, test_handover_refusal);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
