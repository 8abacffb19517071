#!/bin/sh
# Runs each libFuzzer target for a fixed time: run.sh BUILD SECONDS NAME...
# The corpus a run grows goes to BUILD/corpus/NAME (scratch); the checked-in
# seeds in tests/fuzz/corpus/NAME (and, for some targets, the test suite's
# data) are read only.  A crash, leak or failed property is saved as
# BUILD/crash-NAME-* and fails the run.
build=$1
secs=$2
shift 2
failed=0
for name in "$@"; do
    bin=$build/fuzz_$name
    mkdir -p "$build/corpus/$name"
    extra=""
    dict=""
    case $name in
    validate | framing) extra="tests/data/json/valid tests/data/json/invalid"; dict="-dict=tests/fuzz/json.dict" ;;
    encode) dict="-dict=tests/fuzz/json.dict" ;;
    syslog) dict="-dict=tests/fuzz/syslog.dict" ;;
    config) extra="tests/data/config/good tests/data/config/bad"; dict="-dict=tests/fuzz/config.dict" ;;
    esac
    echo "== fuzz $name (${secs}s)"
    # shellcheck disable=SC2086
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$build/crash-$name-" $dict \
        "$build/corpus/$name" "tests/fuzz/corpus/$name" $extra >"$build/fuzz-$name.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$build/fuzz-$name.log" | tail -2
    else
        failed=$((failed + 1))
        tail -40 "$build/fuzz-$name.log"
        echo "FAILED: fuzz $name; keep the input as a regression test:"
        echo "  cp $build/crash-$name-<hash> tests/fuzz/regressions/$name/"
    fi
done
echo "fuzz: $(($# - failed)) passed, $failed failed"
[ "$failed" = 0 ]
