/*
 * fwd — shared connection machinery of the forwarding sinks (fwd.h).
 */
#include "sink/fwd.h"

#include <openssl/ssl.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"

void
sl_fwd_seed(uint64_t *rng, const void *salt)
{
    if (getrandom(rng, sizeof(*rng), GRND_NONBLOCK) != sizeof(*rng) || *rng == 0) {
        *rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)salt;
    }
    if (*rng == 0) {
        *rng = 0x9e3779b97f4a7c15ull;
    }
}

static uint64_t
fwd_random(uint64_t *rng)
{
    /* xorshift64*: jitter only, not security. */
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    return *rng * 2685821657736338717ull;
}

uint64_t
sl_fwd_jitter(uint64_t *rng, uint64_t d)
{
    return d / 2 + fwd_random(rng) % (d - d / 2 + 1);
}

uint64_t
sl_fwd_next_delay(const struct sl_sink_tcp_config *c, uint64_t *rng, uint64_t *backoff)
{
    uint64_t d = *backoff == 0 ? c->retry_initial_ms : *backoff * 2;

    if (d > c->retry_max_ms) {
        d = c->retry_max_ms;
    }
    *backoff = d;
    return sl_fwd_jitter(rng, d);
}

void
sl_fwd_sockopts(int fd, const struct sl_sink_tcp_config *c)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->keepalive_ms > 0) {
        int idle = (int)(c->keepalive_ms / 1000), intvl, cnt = 3;
        idle = idle < 1 ? 1 : idle;
        intvl = idle / 3 < 1 ? 1 : idle / 3;
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    }
    /*
     * No TCP_USER_TIMEOUT (RFC 5482): Linux applies it to zero-window
     * probing too, counted from the first probe and reset only when the
     * window opens, so any value aborts (and purges the send buffer of) a
     * connection to a live peer that keeps its window closed for that long
     * while answering every probe.  Whether the peer is gone is decided by
     * each sink (tcp: TCP_INFO samples; sluice: ack_timeout).
     */
}

int
sl_fwd_connect(const struct sl_sink_target *tg, const struct sl_sink_tcp_config *c, int *fd)
{
    *fd = socket(tg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0) {
        return -1;
    }
    sl_fwd_sockopts(*fd, c);
    if (connect(*fd, (const struct sockaddr *)&tg->addr, tg->addrlen) == 0) {
        return 0;
    }
    if (errno == EINPROGRESS) {
        return 1;
    }
    int err = errno;
    close(*fd);
    *fd = -1;
    errno = err;
    return -1;
}

int
sl_fwd_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    return err;
}

int
sl_fwd_tls_new(const struct sl_sink_tcp_config *c, const char *name, struct sl_tls **out)
{
    char label[96], why[512];

    *out = NULL;
    if (!c->tls.on) {
        return 0;
    }
    snprintf(label, sizeof(label), "sink \"%s\"", name);
    *out = sl_tls_new(&c->tls, SL_TLS_CLIENT, label, why, sizeof(why));
    if (*out == NULL) {
        log_warnx("%s: TLS: %s", label, why);
        return -1;
    }
    return 0;
}

SSL *
sl_fwd_tls_ssl(struct sl_tls *t, const struct sl_sink_target *tg, int fd)
{
    char host[SL_CONF_HOSTNAME_MAX + 1];
    const char *p = tg->text, *end;

    /* "host:port" or "[v6]:port": the host as written (the name a
     * certificate carries), not the address it resolved to. */
    if (*p == '[') {
        p++;
        end = strchr(p, ']');
    } else {
        end = strrchr(p, ':');
    }
    size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
    if (n >= sizeof(host)) {
        n = sizeof(host) - 1;
    }
    memcpy(host, p, n);
    host[n] = '\0';
    SSL *ssl = sl_tls_ssl_new(t, host);
    if (ssl != NULL && SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ssl = NULL;
    }
    return ssl;
}
