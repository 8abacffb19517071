/*
 * config_report — loading a config for a command line: sluiced and the
 * sluice command print a failed load's errors the same way (sluice check
 * and sluiced -n must say the same thing).
 */
#include <stdio.h>

#include "sluice/config.h"

struct sl_config *
sl_config_load_report(const char *path, const char *prog)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = sl_config_load(path, &errs);
    if (cfg == NULL) {
        for (size_t i = 0; i < errs.count; i++) {
            fprintf(stderr, "%s\n", errs.msgs[i]);
        }
        fprintf(stderr, "%s: %zu error(s) in %s\n", prog, errs.count, path);
    }
    sl_config_errors_fini(&errs);
    return cfg;
}
