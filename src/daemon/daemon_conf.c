/*
 * daemon_conf — the keys of [daemon] and their computed defaults.
 *
 * Runs on the main thread while the config loads (see sluice/conf.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

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

/* Defaults computed at load: producer_threads from the CPUs, hostname from gethostname(). */
static void
daemon_check(struct sl_conf_check *chk, void *obj)
{
    struct sl_daemon_config *d = obj;
    char host[SL_CONF_HOSTNAME_MAX + 2], show[SL_CONF_SHOW_MAX + 8], ebuf[128];
    long n;

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
};

const struct sl_conf_kind sl_daemon_conf_kind = {
    .name = "daemon",
    .keys = daemon_keys,
    .nkeys = SL_CONF_NKEYS(daemon_keys),
    .check = daemon_check,
};
