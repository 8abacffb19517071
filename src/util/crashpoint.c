/*
 * crashpoint — see crashpoint.h.
 */
#include "util/crashpoint.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool crash_inited;
static char crash_name[64];
static long crash_left;

void
sl_crash_init(void)
{
    if (crash_inited) {
        return;
    }
    crash_inited = true;
    const char *v = getenv("SLUICE_CRASH_AT"); // NOLINT(concurrency-mt-unsafe): before threads
    if (v == NULL || *v == '\0') {
        return;
    }
    const char *colon = strchr(v, ':');
    size_t n = colon != NULL ? (size_t)(colon - v) : strlen(v);
    if (n == 0 || n >= sizeof(crash_name)) {
        return;
    }
    memcpy(crash_name, v, n);
    crash_name[n] = '\0';
    crash_left = colon != NULL ? strtol(colon + 1, NULL, 10) : 1;
    if (crash_left < 1) {
        crash_left = 1;
    }
}

bool
sl_crash_armed(const char *name)
{
    return crash_name[0] != '\0' && crash_left == 1 && strcmp(name, crash_name) == 0;
}

void
sl_crash_point(const char *name)
{
    if (crash_name[0] == '\0' || strcmp(name, crash_name) != 0 || --crash_left > 0) {
        return;
    }
    fprintf(stderr, "sluiced: SLUICE_CRASH_AT: killing the process at %s\n", name);
    fflush(stderr);
    raise(SIGKILL); /* does not return */
}
