/*
 * certs.h — the TLS tests' certificates as a Check fixture: certs_make
 * fills a fresh directory under /tmp with what tests/certs.sh makes
 * (SLUICE_TOP names the source tree; default "."), certs_remove deletes
 * it.  Include once per test program, which then has `certs`, the
 * directory's path.  Use: tcase_add_unchecked_fixture(tc, certs_make,
 * certs_remove).
 */
#ifndef SLUICE_TESTS_CERTS_H
#define SLUICE_TESTS_CERTS_H

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char certs[64]; /* the directory certs.sh filled, made once per TCase */

static void
certs_make(void)
{
    char cmd[PATH_MAX + 128];
    const char *top = getenv("SLUICE_TOP");
    snprintf(certs, sizeof(certs), "/tmp/sluice-certs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(certs));
    snprintf(cmd, sizeof(cmd), "sh %s/tests/certs.sh %s", top != NULL ? top : ".", certs);
    ck_assert_int_eq(system(cmd), 0);
}

static void
certs_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
    ck_assert_int_eq(system(cmd), 0);
}

#endif
