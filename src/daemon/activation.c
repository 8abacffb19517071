/*
 * activation — adopting sockets from systemd (see activation.h).  Main
 * thread, at start-up.  LISTEN_FDS and friends are removed from the
 * environment once read, as sd_listen_fds(3) recommends.
 */
#include "daemon/activation.h"
#include "daemon/registry.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "sluice/conf.h"
#include "sluice/log.h"
#include "sluice/source.h"

/*
 * The source a passed socket is for: the one named like it
 * (FileDescriptorName=), else the one whose listen address or path is the
 * socket's own (getsockname), so a unit need not name its sockets.  A
 * source already given a socket is skipped.  Returns its index, or
 * cfg->nsources for none.
 */
static size_t
activation_match(const struct sl_config *cfg, const int *fds, int fd, const char *name)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    size_t i;

    for (i = 0; i < cfg->nsources; i++) {
        if (fds[i] < 0 && strcmp(cfg->sources[i].name, name) == 0) {
            return i;
        }
    }
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return cfg->nsources;
    }
    for (i = 0; i < cfg->nsources; i++) {
        if (fds[i] < 0 && sl_conf_same_address(&cfg->sources[i].addr, &ss)) {
            return i;
        }
    }
    return cfg->nsources;
}

int
sl_activation_adopt(const struct sl_config *cfg, int *fds)
{
    char **names = NULL;
    int adopted = 0, rc = 0;
    for (size_t i = 0; i < cfg->nsources; i++) {
        fds[i] = -1;
    }
    int n = sd_listen_fds_with_names(1, &names);
    if (n <= 0) {
        return 0;
    }
    for (int k = 0; k < n; k++) {
        int fd = SD_LISTEN_FDS_START + k;
        const char *name = names != NULL && names[k] != NULL ? names[k] : "unknown";
        size_t i = activation_match(cfg, fds, fd, name);
        if (i == cfg->nsources) {
            log_warnx("socket activation: no source named \"%s\" (FileDescriptorName=) "
                      "or listening on its address; closing that socket",
                      name);
            close(fd);
            continue;
        }
        const struct sl_source_config *src = &cfg->sources[i];
        const struct sl_source_type *type = sl_source_type_of(src);
        if (type->bind == NULL) {
            /* The type opens its own listener (relp: librelp binds). */
            log_warnx("source \"%s\": a %s source cannot take a socket from systemd",
                      src->name, type->label);
            close(fd);
            rc = -1;
            continue;
        }
        bool stream = type->socktype == SOCK_STREAM; /* a stream socket must listen */
        bool local = type->family == AF_UNIX;
        if (sd_is_socket(fd, AF_UNSPEC, type->socktype, stream ? 1 : -1) <= 0 ||
            (sd_is_socket(fd, AF_UNIX, 0, -1) > 0) != local) {
            log_warnx("source \"%s\": the socket from systemd is not a %s%s socket "
                      "(use %s=)",
                      src->name, stream ? "listening " : "", type->label,
                      stream ? "ListenStream" : "ListenDatagram");
            close(fd);
            rc = -1;
            continue;
        }
        int fl = fcntl(fd, F_GETFL);
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (type->adopt != NULL) {
            type->adopt(fd);
        }
        fds[i] = fd;
        adopted++;
        log_info("source \"%s\": using the %s socket passed by systemd", src->name,
                 type->label);
    }
    for (int k = 0; names != NULL && k < n; k++) {
        free(names[k]);
    }
    free(names);
    if (rc < 0) {
        for (size_t i = 0; i < cfg->nsources; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
        return -1;
    }
    return adopted;
}
