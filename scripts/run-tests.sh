#!/bin/sh
# Runs each Check test binary given, all of them even when one fails, and
# prints one closing line.  Exit status non-zero if any suite failed.
failed=0
passed=0
for t in "$@"; do
    echo "== $t"
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: $t"
    fi
done
echo "suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
