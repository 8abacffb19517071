/*
 * daemon_conf — the keys of [daemon] and their computed defaults.
 *
 * Runs on the main thread while the config loads (see sluice/conf.h).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/admin.h"
#include "daemon/registry.h"
#include "sluice/config.h"

static const struct sl_conf_choice log_levels[] = {
    {"err", LOG_ERR},   {"warning", LOG_WARNING}, {"notice", LOG_NOTICE},
    {"info", LOG_INFO}, {"debug", LOG_DEBUG},     {NULL, 0},
};

static int
daemon_key_hostname(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                    size_t whylen)
{
    if (!sl_conf_valid_name(value, SL_CONF_HOSTNAME_MAX)) {
        return sl_conf_expected(why, whylen, "a host name (1 to 253 of A-Z a-z 0-9 _ . -)", value);
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

static int
daemon_key_admin(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                 size_t whylen)
{
    struct sl_daemon_config *d = obj;

    if (strcmp(value, "off") == 0) {
        d->admin_enabled = false;
    } else if (sl_conf_parse_address(value, &d->admin_addr, &d->admin_addrlen, why, whylen) < 0) {
        return -1;
    } else {
        d->admin_enabled = true;
    }
    return sl_conf_store_string((char **)(void *)((char *)obj + key->offset), value, why, whylen);
}

static const struct sl_conf_choice admin_public_names[] = {
    {"metrics", SL_ADMIN_PUBLIC_METRICS},
    {"healthz", SL_ADMIN_PUBLIC_HEALTHZ},
    {NULL, 0},
};

/* admin_public: a list of metrics, healthz, or none. */
static int
daemon_key_public(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                  size_t whylen)
{
    static const char seps[] = ", \t";
    char word[16], show[SL_CONF_SHOW_MAX + 8];
    unsigned bits = 0;
    size_t words = 0;
    bool none = false;

    for (const char *p = value + strspn(value, seps); *p != '\0'; p += strspn(p, seps)) {
        size_t n = strcspn(p, seps);
        words++;
        if (n >= sizeof(word)) {
            return sl_conf_expected(why, whylen, "a list of metrics, healthz, or none", value);
        }
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        const struct sl_conf_choice *ch = sl_conf_find_choice(admin_public_names, word);
        if (strcmp(word, "none") == 0) {
            none = true;
        } else if (ch == NULL) {
            snprintf(why, whylen, "unknown path \"%s\" (expected metrics, healthz or none)",
                     sl_conf_show(show, sizeof(show), word));
            return -1;
        } else {
            bits |= (unsigned)ch->value;
        }
    }
    if (words == 0 || (none && words > 1)) {
        return sl_conf_expected(why, whylen, "a list of metrics, healthz, or none", value);
    }
    *(unsigned *)(void *)((char *)obj + key->offset) = bits;
    return 0;
}

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool
daemon_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

#define ADMIN_TOKEN_MIN 16
#define ADMIN_TOKEN_MAX 4096

/*
 * Reads an admin token file: the token is the file's first line (a final
 * newline is not part of it), at least ADMIN_TOKEN_MIN bytes, in a regular
 * file no one but its owner may read or write.  Keeps only its SHA-256.
 * Shared by the load (daemon_read_token) and SIGHUP (admin.h).
 */
int
sl_admin_token_read(const char *path, uint8_t sha256[32], char *why, size_t whylen)
{
    char buf[ADMIN_TOKEN_MAX + 2], ebuf[128];
    struct stat st;
    ssize_t n;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(why, whylen, "%s may be read or written by others (mode %04o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    buf[n] = '\0';
    size_t len = strcspn(buf, "\r\n");
    if (len < ADMIN_TOKEN_MIN || len > ADMIN_TOKEN_MAX) {
        snprintf(why, whylen,
                 "the token in %s must be %d to %d bytes on the first line (make one with: "
                 "openssl rand -hex 32 > FILE)",
                 path, ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX);
        goto out;
    }
    SHA256((const unsigned char *)buf, len, sha256);
    rc = 0;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    return rc;
}

static void
daemon_read_token(struct sl_conf_check *chk, struct sl_daemon_config *d)
{
    char why[PATH_MAX + 160];

    if (sl_admin_token_read(d->admin_token_file, d->admin_token_sha256, why, sizeof(why)) < 0) {
        sl_conf_error(chk, sl_conf_key_line(chk, "admin_token_file"),
                      "daemon: admin_token_file: %s", why);
        return;
    }
    d->admin_token_set = true;
}

/*
 * admin_tls*: the admin endpoint's TLS, checked with the sources' rules
 * (util/tls.h) under the admin_ names.  admin_tls_ca_file turns on client
 * certificates, then required: the endpoint has no "optional" mode, so a
 * client without a verified certificate never gets past the handshake.
 * The context is built once here so a bad file is a load error.
 */
static void
daemon_check_admin_tls(struct sl_conf_check *chk, struct sl_daemon_config *d)
{
    static const char *const keys[] = {"admin_tls_cert_file", "admin_tls_key_file",
                                       "admin_tls_ca_file", "admin_tls_min_version",
                                       "admin_tls_allowed_names"};
    struct sl_tls_config *tls = &d->admin_tls;
    char why[512];

    if (!tls->on) {
        for (size_t i = 0; i < SL_CONF_NKEYS(keys); i++) {
            if (sl_conf_key_set(chk, keys[i])) {
                sl_conf_error(chk, sl_conf_key_line(chk, keys[i]),
                              "daemon: %s is set but admin_tls is off (set admin_tls = on)",
                              keys[i]);
            }
        }
        return;
    }
    if (tls->cert_file == NULL || tls->key_file == NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "admin_tls"),
                      "daemon: admin_tls = on needs admin_tls_cert_file and admin_tls_key_file");
        return;
    }
    tls->client_auth = tls->ca_file != NULL ? SL_TLS_AUTH_REQUIRED : SL_TLS_AUTH_NONE;
    tls->handshake_timeout_ms = 0; /* the endpoint's own time limits apply (admin.h) */
    if (tls->nnames > 0 && tls->ca_file == NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "admin_tls_allowed_names"),
                      "daemon: admin_tls_allowed_names needs client certificates (set "
                      "admin_tls_ca_file)");
        return;
    }
    struct sl_tls *t = sl_tls_new(tls, SL_TLS_SERVER, "daemon: admin_tls", why, sizeof(why));
    if (t == NULL) {
        sl_conf_error(chk, sl_conf_key_line(chk, "admin_tls"), "daemon: admin_tls: %s", why);
        return;
    }
    sl_tls_free(t);
}

/* The admin endpoint: off the loopback it needs a token or TLS with client
 * certificates (docs/security.md). */
static void
daemon_check_admin(struct sl_conf_check *chk, struct sl_daemon_config *d)
{
    if (d->admin_token_file != NULL) {
        daemon_read_token(chk, d);
    }
    daemon_check_admin_tls(chk, d);
    bool client_certs = d->admin_tls.on && d->admin_tls.ca_file != NULL;
    if (d->admin_enabled && !daemon_loopback(&d->admin_addr) && d->admin_token_file == NULL &&
        !client_certs) {
        sl_conf_error(chk, sl_conf_key_line(chk, "admin_listen"),
                      "daemon: admin_listen = %s is not a loopback address and the admin "
                      "endpoint would have no authentication; set admin_token_file = PATH (a "
                      "mode 0600 file holding a secret, e.g. from `openssl rand -hex 32`), or "
                      "TLS with client certificates (admin_tls = on, admin_tls_cert_file, "
                      "admin_tls_key_file and admin_tls_ca_file = the CA of the clients), or "
                      "listen on 127.0.0.1",
                      d->admin_listen);
    }
}

/* Defaults computed at load: producer_threads from the CPUs, hostname from gethostname(). */
static void
daemon_check(struct sl_conf_check *chk, void *obj)
{
    struct sl_daemon_config *d = obj;
    char host[SL_CONF_HOSTNAME_MAX + 2], show[SL_CONF_SHOW_MAX + 8], ebuf[128];
    long n;

    daemon_check_admin(chk, d);
    if (!sl_conf_key_set(chk, "producer_threads")) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        d->producer_threads = n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
    }
    if (sl_conf_key_set(chk, "hostname")) {
        return;
    }
    memset(host, 0, sizeof(host));
    if (gethostname(host, sizeof(host) - 1) < 0) {
        sl_conf_error_file(chk, sl_conf_line(chk),
                           "daemon: hostname: gethostname() failed: %s; "
                           "set hostname =",
                           strerror_r(errno, ebuf, sizeof(ebuf)));
    } else if (!sl_conf_valid_name(host, SL_CONF_HOSTNAME_MAX)) {
        sl_conf_error_file(chk, sl_conf_line(chk),
                           "daemon: hostname: gethostname() gave \"%s\", "
                           "not a host name (A-Z a-z 0-9 _ . -); set hostname =",
                           sl_conf_show(show, sizeof(show), host));
    } else if ((d->hostname = strdup(host)) == NULL) {
        sl_conf_oom(chk);
    }
}

#define D_OFF(f) offsetof(struct sl_daemon_config, f)
static const struct sl_conf_key daemon_keys[] = {
    {.name = "producer_threads",
     .parse = sl_conf_key_uint,
     .offset = D_OFF(producer_threads),
     .min = 1,
     .max = 64,
     .def_doc = "number of online CPUs (at most 64)",
     .doc = "threads that receive and frame events"},
    {.name = "log_level",
     .parse = sl_conf_key_enum,
     .offset = D_OFF(log_level),
     .choices = log_levels,
     .def = "info",
     .flags = SL_CONF_RELOAD,
     .doc = "least important message logged: err, warning, notice, info, debug"},
    {.name = "shutdown_timeout",
     .parse = sl_conf_key_duration,
     .offset = D_OFF(shutdown_timeout_ms),
     .min = 1,
     .max = SL_CONF_MS_PER_DAY,
     .def = "30s",
     .flags = SL_CONF_RELOAD,
     .doc = "how long a stop may take to write out what was received"},
    {.name = "hostname",
     .parse = daemon_key_hostname,
     .offset = D_OFF(hostname),
     .def_doc = "gethostname()",
     .doc = "value of the host field (add_fields = host)"},
    {.name = "admin_listen",
     .parse = daemon_key_admin,
     .offset = D_OFF(admin_listen),
     .def = "127.0.0.1:5171",
     .doc = "address of the HTTP endpoint for /metrics and /healthz, or off"},
    {.name = "admin_token_file",
     .parse = sl_conf_key_path,
     .offset = D_OFF(admin_token_file),
     .def_doc = "none (only allowed with a loopback admin_listen)",
     .doc = "file whose first line is the bearer token every admin request must carry"},
    {.name = "admin_public",
     .parse = daemon_key_public,
     .offset = D_OFF(admin_public),
     .def = "none",
     .doc = "admin paths served without the token: metrics, healthz, or none"},
    {.name = "admin_tls",
     .parse = sl_conf_key_enum,
     .choices = sl_tls_on_choices,
     .offset = D_OFF(admin_tls.on),
     .def = "off",
     .doc = "TLS on the admin endpoint (on or off)"},
    {.name = "admin_tls_cert_file",
     .parse = sl_conf_key_path,
     .offset = D_OFF(admin_tls.cert_file),
     .def_doc = "none",
     .doc = "PEM certificate chain the admin endpoint presents (re-read on SIGHUP)"},
    {.name = "admin_tls_key_file",
     .parse = sl_conf_key_path,
     .offset = D_OFF(admin_tls.key_file),
     .def_doc = "none",
     .doc = "PEM private key of admin_tls_cert_file (re-read on SIGHUP)"},
    {.name = "admin_tls_ca_file",
     .parse = sl_conf_key_path,
     .offset = D_OFF(admin_tls.ca_file),
     .def_doc = "none (no client certificates)",
     .doc = "PEM CAs of the admin clients: a verified client certificate is then required "
            "(re-read on SIGHUP)"},
    {.name = "admin_tls_min_version",
     .parse = sl_tls_conf_key_version,
     .offset = D_OFF(admin_tls.min_version),
     .def = "1.2",
     .doc = "oldest TLS version the admin endpoint accepts: 1.2 or 1.3"},
    {.name = "admin_tls_allowed_names",
     .parse = sl_tls_conf_key_names,
     .offset = D_OFF(admin_tls),
     .def_doc = "any client with a verified certificate",
     .doc = "admin client certificate names (CN or DNS SAN) accepted, comma-separated"},
};

const struct sl_conf_kind sl_daemon_conf_kind = {
    .name = "daemon",
    .keys = daemon_keys,
    .nkeys = SL_CONF_NKEYS(daemon_keys),
    .check = daemon_check,
};
