#!/bin/sh
# Runs each Check test binary given, all of them even when one fails, and
# prints one closing line.  Exit status non-zero if any suite failed.
# Each suite's wall time is printed so a slow suite is visible in CI logs.
failed=0
passed=0
for t in "$@"; do
    echo "== $t"
    start=$(date +%s)
    if "$t"; then
        passed=$((passed + 1))
        echo "-- $t: ok ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        echo "FAILED: $t ($(( $(date +%s) - start )) s)"
    fi
done
echo "suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
