/*
 * nats_util — see nats_util.h.
 */
#include "nats_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

void
nu_server_init(struct nu_server *s, const char *dir, const char *name, int port, int cluster_port,
               const char *routes)
{
    memset(s, 0, sizeof(*s));
    s->pid = -1;
    s->port = port;
    s->cluster_port = cluster_port;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->store, sizeof(s->store), "%s/%s-store", dir, name);
    snprintf(s->log, sizeof(s->log), "%s/%s.log", dir, name);
    snprintf(s->routes, sizeof(s->routes), "%s", routes != NULL ? routes : "");
}

const char *
nu_url(const struct nu_server *s, char *buf, size_t len)
{
    snprintf(buf, len, "nats://127.0.0.1:%d", s->port);
    return buf;
}

int
nu_server_start(struct nu_server *s, int timeout_ms)
{
    char port[16], cl[64];
    const char *argv[32];
    int a = 0;

    snprintf(port, sizeof(port), "%d", s->port);
    argv[a++] = "nats-server";
    argv[a++] = "-js";
    argv[a++] = "-a";
    argv[a++] = "127.0.0.1";
    argv[a++] = "-p";
    argv[a++] = port;
    argv[a++] = "-sd";
    argv[a++] = s->store;
    argv[a++] = "-n";
    argv[a++] = s->name;
    argv[a++] = "-l";
    argv[a++] = s->log;
    if (s->cluster_port != 0) {
        snprintf(cl, sizeof(cl), "nats://127.0.0.1:%d", s->cluster_port);
        argv[a++] = "--cluster_name";
        argv[a++] = "sluice";
        argv[a++] = "--cluster";
        argv[a++] = cl;
        argv[a++] = "--routes";
        argv[a++] = s->routes;
    }
    if (s->tls_cert[0] != '\0') {
        argv[a++] = "--tls";
        argv[a++] = "--tlscert";
        argv[a++] = s->tls_cert;
        argv[a++] = "--tlskey";
        argv[a++] = s->tls_key;
        if (s->tls_verify_ca[0] != '\0') {
            argv[a++] = "--tlsverify";
            argv[a++] = "--tlscacert";
            argv[a++] = s->tls_verify_ca;
        }
    }
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
        }
        execvp("nats-server", (char *const *)(void *)argv);
        _exit(127);
    }
    s->pid = pid;
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);
    while (harness_now_ms() < end) {
        int fd = harness_tcp_connect(s->port, 1000);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = -1;
            return -1;
        }
        harness_poll_step(10);
    }
    return -1;
}

void
nu_server_signal(struct nu_server *s, int sig)
{
    if (s->pid <= 0) {
        return;
    }
    kill(s->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        if (sig == SIGTERM) {
            kill(s->pid, SIGCONT);
        }
        int st;
        waitpid(s->pid, &st, 0);
        s->pid = -1;
    }
}

static char nu_tls_ca[512], nu_tls_name[256], nu_tls_cert[512], nu_tls_key[512];

void
nu_set_tls_client(const char *cert_file, const char *key_file)
{
    snprintf(nu_tls_cert, sizeof(nu_tls_cert), "%s", cert_file != NULL ? cert_file : "");
    snprintf(nu_tls_key, sizeof(nu_tls_key), "%s", key_file != NULL ? key_file : "");
}

void
nu_set_tls_ca(const char *ca_file, const char *name)
{
    snprintf(nu_tls_ca, sizeof(nu_tls_ca), "%s", ca_file != NULL ? ca_file : "");
    snprintf(nu_tls_name, sizeof(nu_tls_name), "%s", name != NULL ? name : "localhost");
}

/* A connection and JetStream context to url; 0 / -1. */
static int
nu_connect(const char *url, natsConnection **nc, jsCtx **js)
{
    natsOptions *o = NULL;
    jsOptions jo;

    *nc = NULL;
    *js = NULL;
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK ||
        natsOptions_SetTimeout(o, 5000) != NATS_OK ||
        (nu_tls_ca[0] != '\0' && (natsOptions_SetSecure(o, true) != NATS_OK ||
                                   natsOptions_LoadCATrustedCertificates(o, nu_tls_ca) != NATS_OK ||
                                   natsOptions_SetExpectedHostname(o, nu_tls_name) != NATS_OK)) ||
        (nu_tls_cert[0] != '\0' &&
         natsOptions_LoadCertificatesChain(o, nu_tls_cert, nu_tls_key) != NATS_OK)) {
        natsOptions_Destroy(o);
        return -1;
    }
    natsStatus st = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        fprintf(stderr, "nats_util: connect %s: %s\n", url, natsStatus_GetText(st));
        return -1;
    }
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    if (natsConnection_JetStream(js, *nc, &jo) != NATS_OK) {
        natsConnection_Destroy(*nc);
        return -1;
    }
    return 0;
}

static void
nu_disconnect(natsConnection *nc, jsCtx *js)
{
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

int
nu_stream_create(const char *url, const struct nu_stream *stc)
{
    natsConnection *nc;
    jsCtx *js;
    jsStreamConfig c;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subj[1] = {stc->subject};

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    jsStreamConfig_Init(&c);
    c.Name = stc->name;
    c.Subjects = subj;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    c.Replicas = stc->replicas > 0 ? stc->replicas : 1;
    if (stc->max_msgs > 0) {
        c.MaxMsgs = stc->max_msgs;
        c.Discard = js_DiscardNew;
    }
    if (stc->max_msg_size > 0) {
        c.MaxMsgSize = (int32_t)stc->max_msg_size;
    }
    if (stc->dup_window_ms > 0) {
        c.Duplicates = stc->dup_window_ms * 1000000;
    }
    natsStatus st = NATS_ERR;
    /* A cluster elects its meta leader a moment after the routes form. */
    int64_t end = harness_now_ms() + harness_ms(20000);
    do {
        st = js_AddStream(&si, js, &c, NULL, &jerr);
        if (st == NATS_OK) {
            break;
        }
        harness_poll_step(200);
    } while (harness_now_ms() < end);
    if (st != NATS_OK) {
        fprintf(stderr, "nats_util: add stream %s: %s (%d) %s\n", stc->name, natsStatus_GetText(st),
                (int)jerr, nats_GetLastError(NULL));
    }
    jsStreamInfo_Destroy(si);
    nu_disconnect(nc, js);
    return st == NATS_OK ? 0 : -1;
}

int
nu_cluster_ready(const char *url, int timeout_ms)
{
    natsConnection *nc;
    jsCtx *js;
    jsOptions o;
    natsStatus st = NATS_ERR;

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    jsOptions_Init(&o);
    o.Wait = 1000;
    /* $JS.API.INFO is answered once the meta group has a leader. */
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);
    do {
        jsAccountInfo *ai = NULL;
        st = js_GetAccountInfo(&ai, js, &o, NULL);
        jsAccountInfo_Destroy(ai);
        if (st == NATS_OK) {
            break;
        }
        harness_poll_step(50);
    } while (harness_now_ms() < end);
    nu_disconnect(nc, js);
    return st == NATS_OK ? 0 : -1;
}

int
nu_stream_ready(const char *url, const char *stream, int current, const char *not_leader,
                int timeout_ms)
{
    natsConnection *nc;
    jsCtx *js;
    jsOptions o;
    char last[128] = "no answer";

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    jsOptions_Init(&o);
    o.Wait = 1000;
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);
    int rc = -1;
    do {
        jsStreamInfo *si = NULL;
        if (js_GetStreamInfo(&si, js, stream, &o, NULL) == NATS_OK && si->Cluster != NULL) {
            const jsClusterInfo *ci = si->Cluster;
            int n = ci->Leader != NULL && ci->Leader[0] != '\0' ? 1 : 0;
            for (int i = 0; i < ci->ReplicasLen; i++) {
                n += ci->Replicas[i]->Current && !ci->Replicas[i]->Offline;
            }
            snprintf(last, sizeof(last), "leader %s, %d current",
                     ci->Leader != NULL ? ci->Leader : "(none)", n);
            if (n >= current && ci->Leader != NULL &&
                (not_leader == NULL || strcmp(ci->Leader, not_leader) != 0)) {
                rc = 0;
            }
        }
        jsStreamInfo_Destroy(si);
        if (rc == 0) {
            break;
        }
        harness_poll_step(50);
    } while (harness_now_ms() < end);
    if (rc < 0) {
        fprintf(stderr, "nats_util: stream %s not ready: %s\n", stream, last);
    }
    nu_disconnect(nc, js);
    return rc;
}

int
nu_stream_purge(const char *url, const char *stream)
{
    natsConnection *nc;
    jsCtx *js;

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    natsStatus st = js_PurgeStream(js, stream, NULL, NULL);
    nu_disconnect(nc, js);
    return st == NATS_OK ? 0 : -1;
}

int64_t
nu_stream_msgs(const char *url, const char *stream)
{
    natsConnection *nc;
    jsCtx *js;
    jsStreamInfo *si = NULL;
    int64_t n = -1;

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    if (js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK) {
        n = (int64_t)si->State.Msgs;
    }
    jsStreamInfo_Destroy(si);
    nu_disconnect(nc, js);
    return n;
}

/* A dump's start: a connection, the stream's state (retried until end: in
 * a cluster that just lost a node the stream may be electing a leader) and
 * the output file.  NULL on failure (nothing left open). */
static FILE *
nu_dump_open(const char *url, const char *stream, const char *path, int64_t end,
             natsConnection **nc, jsCtx **js, jsStreamState *state)
{
    jsStreamInfo *si = NULL;
    FILE *f;

    if (nu_connect(url, nc, js) < 0) {
        return NULL;
    }
    while (js_GetStreamInfo(&si, *js, stream, NULL, NULL) != NATS_OK) {
        if (harness_now_ms() >= end) {
            nu_disconnect(*nc, *js);
            return NULL;
        }
        harness_poll_step(100);
    }
    *state = si->State;
    state->Subjects = NULL; /* owned by si */
    state->Deleted = NULL;
    state->Lost = NULL;
    jsStreamInfo_Destroy(si);
    if ((f = fopen(path, "w")) == NULL) {
        nu_disconnect(*nc, *js);
    }
    return f;
}

/* A message's payload as lines. */
static void
nu_dump_msg(FILE *f, natsMsg *m)
{
    const char *d = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);

    fwrite(d, 1, (size_t)len, f);
    if (len == 0 || d[len - 1] != '\n') {
        fputc('\n', f);
    }
}

/* Ends the dump's current consumer. */
static void
nu_dump_unsub(jsCtx *js, const char *stream, natsSubscription **sub, const char *durable)
{
    natsSubscription_Unsubscribe(*sub);
    js_DeleteConsumer(js, stream, durable, NULL, NULL);
    natsSubscription_Destroy(*sub);
    *sub = NULL;
}

int
nu_stream_dump(const char *url, const char *stream, const char *path, int64_t *count,
               int timeout_ms)
{
    return nu_stream_dump_ids(url, stream, path, NULL, count, timeout_ms);
}

int
nu_stream_dump_ids(const char *url, const char *stream, const char *path, const char *ids_path,
                   int64_t *count, int timeout_ms)
{
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsStreamState state;
    char durable[64] = "";
    uint64_t next = 0; /* the stream sequence after the last message read */
    int gen = 0, idle = 0;

    *count = 0;
    /* The stream info and the consumer are retried until the deadline. */
    int64_t end = harness_now_ms() + harness_ms(timeout_ms);
    FILE *f = nu_dump_open(url, stream, path, end, &nc, &js, &state);
    if (f == NULL) {
        return -1;
    }
    int64_t want = (int64_t)state.Msgs;
    FILE *ids = ids_path != NULL ? fopen(ids_path, "w") : NULL;
    if (ids_path != NULL && ids == NULL) {
        fprintf(stderr, "nats_util: %s: %s\n", ids_path, strerror(errno));
        fclose(f);
        nu_disconnect(nc, js);
        return -1;
    }
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Config.AckPolicy = js_AckNone;
    while (*count < want && harness_now_ms() < end) {
        if (sub == NULL) {
            /* Should a consumer still stop short of the end (messages
             * dropped for this connection), after 3 s without a message a
             * new one starts after the last message read. */
            snprintf(durable, sizeof(durable), "dump%ld_%d", (long)getpid(), gen++);
            so.Config.DeliverPolicy = next > 0 ? js_DeliverByStartSequence : js_DeliverAll;
            so.Config.OptStartSeq = next;
            if (js_PullSubscribe(&sub, js, ">", durable, NULL, &so, NULL) != NATS_OK) {
                natsSubscription_Destroy(sub);
                sub = NULL;
                harness_poll_step(100);
                continue;
            }
            idle = 0;
        }
        /* At most 8 MiB per fetch: a larger answer (2048 batch-mode
         * messages of 128 KiB) overflows the server's pending limit for this
         * connection (64 MiB), which then drops it ("Slow Consumer"), and
         * with AckNone nothing comes again. */
        natsMsgList list = {0};
        jsFetchRequest fr;
        jsFetchRequest_Init(&fr);
        fr.Batch = 2048;
        fr.MaxBytes = 8 * 1024 * 1024;
        fr.Expires = 1000 * 1000000LL;
        if (natsSubscription_FetchRequest(&list, sub, &fr) != NATS_OK || list.Count == 0) {
            natsMsgList_Destroy(&list);
            if (++idle == 3) {
                nu_dump_unsub(js, stream, &sub, durable);
            }
            continue;
        }
        idle = 0;
        for (int i = 0; i < list.Count; i++) {
            jsMsgMetaData *md = NULL;
            if (natsMsg_GetMetaData(&md, list.Msgs[i]) == NATS_OK) {
                next = md->Sequence.Stream + 1;
            }
            jsMsgMetaData_Destroy(md);
            nu_dump_msg(f, list.Msgs[i]);
            const char *id = NULL;
            if (ids != NULL) {
                (void)natsMsgHeader_Get(list.Msgs[i], "Nats-Msg-Id", &id);
                fprintf(ids, "%s\n", id != NULL ? id : "");
            }
        }
        *count += list.Count;
        natsMsgList_Destroy(&list);
    }
    if (sub != NULL) {
        nu_dump_unsub(js, stream, &sub, durable);
    }
    if (*count != want) {
        fprintf(stderr, "nats_util: dump %s: %" PRId64 " of %" PRId64 " messages (%d consumers)\n",
                stream, *count, want, gen);
    }
    fclose(f);
    if (ids != NULL) {
        fclose(ids);
    }
    nu_disconnect(nc, js);
    return *count == want ? 0 : -1;
}

int
nu_consumer_create(const char *url, const char *stream, const char *durable, int64_t ack_wait_ms)
{
    natsConnection *nc;
    jsCtx *js;
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = ack_wait_ms * 1000000;
    natsStatus st = js_AddConsumer(&ci, js, stream, &cc, NULL, NULL);
    jsConsumerInfo_Destroy(ci);
    nu_disconnect(nc, js);
    return st == NATS_OK ? 0 : -1;
}

int
nu_consumer_info(const char *url, const char *stream, const char *durable, uint64_t *ack_floor,
                 uint64_t *pending, uint64_t *ack_pending)
{
    natsConnection *nc;
    jsCtx *js;
    jsConsumerInfo *ci = NULL;

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    natsStatus st = js_GetConsumerInfo(&ci, js, stream, durable, NULL, NULL);
    if (st == NATS_OK) {
        *ack_floor = ci->AckFloor.Stream;
        *pending = ci->NumPending;
        *ack_pending = (uint64_t)ci->NumAckPending;
    }
    jsConsumerInfo_Destroy(ci);
    nu_disconnect(nc, js);
    return st == NATS_OK ? 0 : -1;
}

int
nu_publish_events(const char *url, const char *subject, uint64_t first, uint64_t n)
{
    natsConnection *nc;
    jsCtx *js;
    char line[HARNESS_EVENT_BYTES + 8];
    natsStatus st = NATS_OK;

    if (nu_connect(url, &nc, &js) < 0) {
        return -1;
    }
    /* In steps of 1,000 (libnats stalls a publisher with more pending). */
    for (uint64_t i = first; i < first + n && st == NATS_OK; i++) {
        size_t len = harness_event_line(line, i);
        if (len > 0 && line[len - 1] == '\n') {
            len--; /* one event per message, as a sluice nats sink sends it */
        }
        st = js_PublishAsync(js, subject, line, (int)len, NULL);
        if (st == NATS_OK && ((i - first) % 1000 == 999 || i + 1 == first + n)) {
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MaxWait = harness_ms(30000);
            st = js_PublishAsyncComplete(js, &po);
        }
    }
    if (st != NATS_OK) {
        fprintf(stderr, "nats_util: publish to %s: %s %s\n", subject, natsStatus_GetText(st),
                nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : "");
    }
    nu_disconnect(nc, js);
    return st == NATS_OK ? 0 : -1;
}
