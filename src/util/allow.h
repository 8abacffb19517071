/*
 * allow — address allow-lists (`allow = 127.0.0.0/8, ::1/128`): a list of
 * IPv4 and IPv6 CIDR prefixes parsed once at load, matched against a peer's
 * address per connection (tcp, before any read) or per datagram (udp).
 *
 * The list is a fixed array inside the config (no allocation, nothing to
 * free), so a source's config struct embeds it.  An empty list (n == 0)
 * allows every address.  An IPv4-mapped IPv6 peer (::ffff:a.b.c.d, what a
 * dual-stack socket reports) is matched as the IPv4 address it carries.
 *
 * Thread: parse on main while the config loads; match on any thread (the
 * list is read-only once loaded).
 */
#ifndef SLUICE_ALLOW_H
#define SLUICE_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sluice/conf.h"

#define SL_ALLOW_MAX 64 /* prefixes in one list */

struct sl_cidr {
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes, the rest zero */
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t bits;     /* prefix length: 0..32 or 0..128 */
};

struct sl_allow {
    size_t n; /* 0: no list, every address allowed */
    struct sl_cidr nets[SL_ALLOW_MAX];
};

/*
 * Parses a list of prefixes separated by commas and/or blanks: "10.0.0.0/8",
 * "::1/128", or a bare address (a /32 or /128).  Host bits set below the
 * prefix are refused ("192.168.1.1/24": did you mean 192.168.1.0/24?), so a
 * typo cannot widen a list silently.  Returns 0 with *out filled, or -1 with
 * the reason in why (*out then undefined).
 */
int sl_allow_parse(const char *s, struct sl_allow *out, char *why, size_t whylen);

/* True when sa (AF_INET or AF_INET6) is in the list, or the list is empty.
 * Other families (unix sockets) are always allowed: the list is about IP. */
bool sl_allow_match(const struct sl_allow *list, const struct sockaddr *sa);

/* Key parser for a struct sl_allow field (see sl_conf_parse_fn). */
int sl_allow_conf_key(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                      size_t whylen);

/*
 * The `allow` key of every network source, shared so each type parses it
 * alike: a type lists SL_ALLOW_KEY(offset of its struct sl_allow field).
 */
#define SL_ALLOW_KEY(off)                                                                          \
    {                                                                                              \
        .name = "allow", .parse = sl_allow_conf_key, .offset = (off),                              \
        .def_doc = "every address",                                                                \
        .doc = "CIDR prefixes (IPv4, IPv6) whose clients are served; others are refused and "     \
               "counted (tcp: closed before any read; udp: datagram dropped)"                      \
    }

#endif
