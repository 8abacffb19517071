/*
 * replay — runs one fuzz target over its checked-in inputs as a Check suite
 * in `make check`: every file of tests/fuzz/corpus/NAME/ (the seeds) and
 * tests/fuzz/regressions/NAME/ (inputs that once failed; keep each one
 * forever) goes to the target's LLVMFuzzerTestOneInput(), in a heap buffer
 * of exactly its size.  NAME is compiled in (-DFUZZ_NAME="validate"); the
 * tree is found through $SLUICE_TOP (default ".").
 *
 * A property that fails aborts; the SIGABRT handler names the input first.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "compile with -DFUZZ_NAME=\"name\""
#endif

static char replay_current[4096];

static void
replay_abort_handler(int sig)
{
    static const char msg[] = "replay: failing input: ";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)!write(STDERR_FILENO, replay_current, strlen(replay_current));
    (void)!write(STDERR_FILENO, "\n", 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int
replay_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feeds every regular file in dir to the target.  Returns how many. */
static size_t
replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0, done = 0;
    struct dirent *e;

    if (d == NULL) {
        ck_assert_msg(errno == ENOENT, "%s: %s", dir, strerror(errno));
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            ck_assert(names != NULL);
        }
        names[n] = strdup(e->d_name);
        ck_assert(names[n] != NULL);
        n++;
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof(*names), replay_name_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        FILE *f;
        long len;
        char *buf;

        snprintf(replay_current, sizeof(replay_current), "%s/%s", dir, names[i]);
        f = fopen(replay_current, "rb");
        ck_assert_msg(f != NULL, "%s: %s", replay_current, strerror(errno));
        ck_assert(fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
                  fseek(f, 0, SEEK_SET) == 0);
        buf = malloc(len > 0 ? (size_t)len : 1);
        ck_assert(buf != NULL);
        ck_assert_msg(fread(buf, 1, (size_t)len, f) == (size_t)len, "%s: short read",
                      replay_current);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)buf, (size_t)len);
        free(buf);
        free(names[i]);
        done++;
    }
    free(names);
    return done;
}

START_TEST(test_fuzz_replay)
{
    const char *top = getenv("SLUICE_TOP");
    char dir[2048];
    size_t seeds, regressions;

    if (top == NULL || top[0] == '\0') {
        top = ".";
    }
    signal(SIGABRT, replay_abort_handler);
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top, FUZZ_NAME);
    seeds = replay_dir(dir);
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/regressions/%s", top, FUZZ_NAME);
    regressions = replay_dir(dir);
    ck_assert_msg(seeds > 0, "no seed inputs in %s/tests/fuzz/corpus/%s", top, FUZZ_NAME);
    printf("fuzz_%s: %zu seed(s), %zu regression input(s) replayed\n", FUZZ_NAME, seeds,
           regressions);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("fuzz_" FUZZ_NAME);
    TCase *tc = tcase_create("replay");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fuzz_replay);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
