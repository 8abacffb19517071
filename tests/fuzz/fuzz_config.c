/*
 * fuzz_config — the config loader (inih + sluice's handlers and checks) on
 * any file content, and the value parsers on any text.
 *
 * The input is written to a memfd and loaded through /proc/self/fd/N, the
 * way sluiced loads a file.  Properties:
 *   - nothing crashes, leaks (LeakSanitizer) or reads out of bounds;
 *   - a config is returned exactly when no error was reported, and at
 *     least one error is reported otherwise;
 *   - every message starts "PATH:LINE: " with LINE a decimal number;
 *   - a loaded config's summary is a NUL-terminated line in any buffer size.
 * The parsers (sizes, durations, addresses) get the input as a C string.
 *
 * Name resolution is replaced (getaddrinfo/freeaddrinfo below): a fuzzer
 * must not send DNS queries, and a name it makes up would make each run
 * wait for a resolver.  Only numeric addresses and "localhost" resolve.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "sluice/config.h"

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char *end = NULL;
    unsigned long port = service != NULL ? strtoul(service, &end, 10) : 0;

    memset(&ss, 0, sizeof(ss));
    if (service != NULL && (end == service || *end != '\0' || port > 65535)) {
        return EAI_SERVICE;
    }
    if (node == NULL || strcmp(node, "localhost") == 0) {
        node = "127.0.0.1";
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, node, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, node, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof(*in6);
    } else {
        return EAI_NONAME;
    }
    struct addrinfo *ai = calloc(1, sizeof(*ai) + sizeof(ss));
    if (ai == NULL) {
        return EAI_MEMORY;
    }
    ai->ai_family = ss.ss_family;
    ai->ai_socktype = hints != NULL ? hints->ai_socktype : 0;
    ai->ai_protocol = hints != NULL ? hints->ai_protocol : 0;
    ai->ai_addr = (struct sockaddr *)(ai + 1);
    ai->ai_addrlen = len;
    memcpy(ai->ai_addr, &ss, len);
    *res = ai;
    return 0;
}

void
freeaddrinfo(struct addrinfo *res)
{
    free(res);
}

static void
check_messages(const struct sl_config_errors *errs, const char *path)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->msgs[i];
        fuzz_require(m != NULL && strncmp(m, path, plen) == 0 && m[plen] == ':',
                     "message %zu does not start with the path: %s", i, m != NULL ? m : "(null)");
        const char *p = m + plen + 1;
        size_t digits = strspn(p, "0123456789");
        fuzz_require(digits > 0 && p[digits] == ':' && p[digits + 1] == ' ',
                     "message %zu has no line number: %s", i, m);
    }
}

static void
check_parsers(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    size_t sz = 0;
    uint64_t ms = 0;
    struct sockaddr_storage ss;
    socklen_t len = 0;

    if (s == NULL) {
        abort();
    }
    memcpy(s, data, size);
    s[size] = '\0';
    (void)sl_config_parse_size(s, &sz);
    (void)sl_config_parse_duration_ms(s, &ms);
    (void)sl_config_parse_address(s, &ss, &len);
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    struct sl_config_errors errs = {0};

    if (size < 128) {
        check_parsers(data, size);
    }
    if (fd < 0) {
        fd = memfd_create("sluice.conf", MFD_CLOEXEC);
        if (fd < 0) {
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        abort();
    }
    struct sl_config *cfg = sl_config_load(path, &errs);
    fuzz_require((cfg != NULL) == (errs.count == 0), "config %s but %zu error(s)",
                 cfg != NULL ? "loaded" : "refused", errs.count);
    check_messages(&errs, path);
    if (cfg != NULL) {
        char small[16];
        char big[4096];
        sl_config_summary(cfg, small, sizeof(small));
        sl_config_summary(cfg, big, sizeof(big));
        fuzz_require(memchr(small, '\0', sizeof(small)) != NULL, "summary not terminated");
        fuzz_require(memchr(big, '\0', sizeof(big)) != NULL, "summary not terminated");
    }
    sl_config_free(cfg);
    sl_config_errors_fini(&errs);
    return 0;
}
