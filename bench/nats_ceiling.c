/*
 * nats_ceiling — the ceiling for the nats sink on this machine: a bare
 * libnats JetStream publisher, asynchronous with PubAck, as the sink
 * publishes (js_PublishAsync, a Nats-Msg-Id per message, MaxPending
 * messages in flight), with nothing else to do.  bench/nats.sh compares the
 * sink against it.
 *
 *   nats_ceiling -u URL -s SUBJECT -n MESSAGES -b BYTES [-p PENDING] [-c STREAM]
 *
 * -c STREAM creates the stream (subject SUBJECT's first token + ".>", file
 * storage) first and exits.  Otherwise it publishes MESSAGES messages of
 * BYTES bytes, waits for every acknowledgement (bounded: 120 s) and prints
 * one line: msgs=N bytes=N secs=S msgs_per_s=R mb_per_s=R acked_errors=N
 * complete=yes|no cpu_s=S (this process's user + system CPU over the
 * same timed part, all its threads: libnats' included).
 *
 * Each js_PublishAsync builds its message inside the timed loop:
 * libnats copies the BYTES into a new natsMsg (natsMsg_Create), as the
 * sink's publishes do; what the ceiling does not have is the sink's
 * intake, and its source bytes are one buffer, always in cache.
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong errors;

static void
err_cb(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pae;
    (void)closure;
    atomic_fetch_add(&errors, 1);
}

static double
cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    const char *url = "nats://127.0.0.1:4222", *subject = "bench.x", *create = NULL;
    long n = 100000, bytes = 200, pending = 4096;
    int ch;

    while ((ch = getopt(argc, argv, "u:s:n:b:p:c:")) != -1) {
        switch (ch) {
        case 'u': url = optarg; break;
        case 's': subject = optarg; break;
        case 'n': n = atol(optarg); break;
        case 'b': bytes = atol(optarg); break;
        case 'p': pending = atol(optarg); break;
        case 'c': create = optarg; break;
        default:
            fprintf(stderr, "usage: nats_ceiling -u URL -s SUBJECT -n N -b BYTES [-p P] [-c STREAM]\n");
            return 2;
        }
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK) {
        fprintf(stderr, "nats_ceiling: cannot connect to %s\n", url);
        return 1;
    }
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = pending;
    jo.PublishAsync.ErrHandler = err_cb;
    jo.Wait = 10000;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) {
        return 1;
    }
    if (create != NULL) {
        char subj[128];
        const char *subs[1] = {subj};
        jsStreamConfig c;
        jsStreamInfo *si = NULL;
        snprintf(subj, sizeof(subj), "%.*s.>", (int)strcspn(subject, "."), subject);
        jsStreamConfig_Init(&c);
        c.Name = create;
        c.Subjects = subs;
        c.SubjectsLen = 1;
        c.Storage = js_FileStorage;
        natsStatus st = js_AddStream(&si, js, &c, NULL, NULL);
        jsStreamInfo_Destroy(si);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        return st == NATS_OK ? 0 : 1;
    }
    char *buf = malloc((size_t)bytes);
    memset(buf, 'x', (size_t)bytes);
    char id[64];
    jsPubOptions po;
    double c0 = cpu_s();
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        jsPubOptions_Init(&po);
        snprintf(id, sizeof(id), "ceiling:%ld:%ld", (long)getpid(), i);
        po.MsgId = id;
        if (js_PublishAsync(js, subject, buf, (int)bytes, &po) != NATS_OK) {
            atomic_fetch_add(&errors, 1);
        }
    }
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    natsStatus st = js_PublishAsyncComplete(js, &po);
    double secs = now_s() - t0;
    double cpu = cpu_s() - c0;
    printf("msgs=%ld bytes=%ld secs=%.3f msgs_per_s=%.0f mb_per_s=%.1f acked_errors=%lu complete=%s "
           "cpu_s=%.3f\n",
           n, n * bytes, secs, (double)n / secs, (double)(n * bytes) / secs / 1e6,
           (unsigned long)atomic_load(&errors), st == NATS_OK ? "yes" : "no", cpu);
    free(buf);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return st == NATS_OK ? 0 : 1;
}
