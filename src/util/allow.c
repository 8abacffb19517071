/*
 * allow — CIDR allow-lists: parsing (main, config load) and matching (any
 * thread).  See allow.h for the contract.  Pure functions: no libevent, no
 * allocation, so they are unit-tested alone (tests/check_allow.c).
 */
#include "util/allow.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALLOW_SEPS ", \t"

/* True when the bits of a below bits are all zero. */
static bool
allow_host_bits_clear(const uint8_t *a, unsigned bits, unsigned total)
{
    for (unsigned i = bits; i < total; i++) {
        if (a[i / 8] & (0x80u >> (i % 8))) {
            return false;
        }
    }
    return true;
}

static bool
allow_prefix_match(const uint8_t *net, const uint8_t *a, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(net, a, whole) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (net[whole] & mask) == (a[whole] & mask);
}

/* One prefix, tok NUL-terminated. */
static int
allow_parse_one(const char *tok, struct sl_cidr *c, char *why, size_t whylen)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(tok, '/');
    size_t alen = slash != NULL ? (size_t)(slash - tok) : strlen(tok);
    unsigned total;

    if (alen == 0 || alen >= sizeof(addr)) {
        snprintf(why, whylen, "\"%.*s\" is not an address/prefix", 60, tok);
        return -1;
    }
    memcpy(addr, tok, alen);
    addr[alen] = '\0';
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, addr, c->addr) == 1) {
        c->family = AF_INET;
        total = 32;
    } else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
        c->family = AF_INET6;
        total = 128;
    } else {
        snprintf(why, whylen, "\"%s\" is not an IPv4 or IPv6 address", addr);
        return -1;
    }
    c->bits = (uint8_t)total;
    if (slash != NULL) {
        char *end = NULL;
        const char *p = slash + 1;
        if (*p < '0' || *p > '9') {
            snprintf(why, whylen, "\"%.*s\": expected a prefix length after /", 60, tok);
            return -1;
        }
        unsigned long b = strtoul(p, &end, 10);
        if (*end != '\0' || b > total) {
            snprintf(why, whylen, "\"%.*s\": the prefix length must be 0 to %u", 60, tok, total);
            return -1;
        }
        c->bits = (uint8_t)b;
    }
    if (!allow_host_bits_clear(c->addr, c->bits, total)) {
        snprintf(why, whylen,
                 "\"%.*s\" has bits set below the /%u prefix (write the network address)", 60,
                 tok, c->bits);
        return -1;
    }
    return 0;
}

int
sl_allow_parse(const char *s, struct sl_allow *out, char *why, size_t whylen)
{
    char tok[128];
    out->n = 0;
    for (const char *p = s + strspn(s, ALLOW_SEPS); *p != '\0'; p += strspn(p, ALLOW_SEPS)) {
        size_t len = strcspn(p, ALLOW_SEPS);
        if (len >= sizeof(tok)) {
            snprintf(why, whylen, "\"%.40s...\" is too long for an address/prefix", p);
            return -1;
        }
        if (out->n == SL_ALLOW_MAX) {
            snprintf(why, whylen, "more than %d prefixes", SL_ALLOW_MAX);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (allow_parse_one(tok, &out->nets[out->n], why, whylen) < 0) {
            return -1;
        }
        out->n++;
        p += len;
    }
    if (out->n == 0) {
        snprintf(why, whylen, "expected one or more address/prefix, got nothing");
        return -1;
    }
    return 0;
}

bool
sl_allow_match(const struct sl_allow *list, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a;
    int family = sa->sa_family;

    if (list->n == 0) {
        return true;
    }
    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(a, mapped, sizeof(mapped)) == 0) {
            family = AF_INET;
            a += sizeof(mapped);
        }
    } else {
        return true;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct sl_cidr *c = &list->nets[i];
        if (c->family == family && allow_prefix_match(c->addr, a, c->bits)) {
            return true;
        }
    }
    return false;
}

int
sl_allow_conf_key(const struct sl_conf_key *key, const char *value, void *obj, char *why,
                  size_t whylen)
{
    return sl_allow_parse(value, (struct sl_allow *)(void *)((char *)obj + key->offset), why,
                          whylen);
}
