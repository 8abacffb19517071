#!/bin/sh
# bench/run.sh — the `make bench` driver: the headline figures of sluiced
# next to the bare receive->write baseline, measured in the same run, in one
# table.  POSIX sh; about 1.5 minutes on the 2-core machine (84 s measured).
#
#   throughput  closed loop, BENCH_EVENTS (2,000,000) JSON events of 230 B
#               over 4 TCP connections; one uncounted warm-up, then
#               BENCH_REPS (3) runs each, interleaved; medians.  Receiver CPU
#               (utime+stime) and peak RSS (VmHWM) read before SIGTERM.
#   latency     open loop at 100 k events/s for BENCH_RATE_SECS (10) s, sends
#               on a 100 us timetable, each event stamped with its intended
#               send time; bench/follow reads the file as it grows.
#   CPU         the receiver's CPU over the 10 k events/s and 100 k events/s
#               windows, % of one core (schedstat, all threads).
#   idle        sluiced's CPU and wake-ups (voluntary context switches of
#               all threads) over 10 s with no load.
# then the micro-benchmarks (bench/micro_validate, bench/micro_handoff).
#
# sluiced runs its default configuration with codec = json (every event is
# validated) and one file sink (bench/lib.sh, sluiced_conf).  Every output
# is verified (every sequence number exactly once, whole lines) before a
# figure is used; a failed run prints FAILED and makes the exit status 1.
# The report is printed and saved to $BUILD/bench-results/latest.txt (not
# committed).  The machine is shared and noisy: compare ratios to the
# baseline of the same run, not absolute figures across runs.
#
# Environment: BUILD (build), BENCH_EVENTS, BENCH_REPS, BENCH_RATE_SECS.
set -u
. "$(dirname "$0")/lib.sh"

N=${BENCH_EVENTS:-2000000}
REPS=${BENCH_REPS:-3}
RSECS=${BENCH_RATE_SECS:-10}
RESULTS=$BUILD/bench-results

lib_init bench
[ -x "$SLUICED" ] || die "$SLUICED is missing: run 'make bench'"
mkdir -p "$RESULTS"
rm -rf "$RESULTS/failed"
RUNS=$WORK/runs.tsv
RATES=$WORK/rates.tsv
: >"$RUNS"
: >"$RATES"
FAILED=0
note_failure() { # FILE
    if ! grep -q ' ok ' "$1"; then
        FAILED=1
        say "  FAILED: $(cut -d' ' -f1,3- "$1")"
    fi
}

report_open bench
say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "load: closed loop $N JSON events of 230 B over 4 TCP connections, $REPS runs each, interleaved (medians);" \
    "open loop 100k/s and 10k/s for $RSECS s"
say ""

throughput_run baseline "$N" 4 230 "$WORK/res" # warm-up: fresh page-cache pages
say "  warm-up   $(cut -d' ' -f1-3 "$WORK/res") (not counted)"
r=1
while [ "$r" -le "$REPS" ]; do
    for k in baseline sluiced; do
        throughput_run "$k" "$N" 4 230 "$WORK/res"
        cat "$WORK/res" >>"$RUNS"
        note_failure "$WORK/res"
        say "$(awk -v r="$r" '$2 == "ok" { printf "  run %d  %-9s %10.0f events/s %7.1f MB/s  CPU %5.2f s  RSS %6.1f MB", r, $1, $3, $4, $5, $6 }' "$WORK/res")"
    done
    r=$((r + 1))
done
for rate in 100000 10000; do
    for k in baseline sluiced; do
        rate_run "$k" "$rate" "$RSECS" 4 "$WORK/res" "$WORK/cdf"
        cat "$WORK/res" >>"$RATES"
        note_failure "$WORK/res"
        say "$(awk '$2 == "ok" { printf "  %-9s %6d/s  p50 %7.0f us  p99 %7.0f us  p99.9 %7.0f us  max %7.0f us  CPU %6.2f %% of a core", $1, $3, $4, $6, $7, $8, $9 }' "$WORK/res")"
    done
done
idle_run sluiced 10 "$WORK/idle"
note_failure "$WORK/idle"

med() { # KIND FIELD
    awk -v k="$1" -v c="$2" '$1 == k && $2 == "ok" { print $c }' "$RUNS" | median
}
rt() { # KIND RATE FIELD
    awk -v k="$1" -v r="$2" -v c="$3" '$1 == k && $2 == "ok" && $3 == r { v = $c } END { print (v == "" ? "-" : v) }' "$RATES"
}
# row LABEL BASELINE SLUICED TARGET_OP TARGET_VALUE [RATIO]
row() {
    say "$(awk -v l="$1" -v b="$2" -v s="$3" -v op="$4" -v t="$5" -v ratio="${6:-1}" 'BEGIN {
        r = (ratio && b != "-" && s != "-" && b + 0 != 0) ? sprintf("%.2fx", s / b) : ""
        v = ""
        if (op != "" && s != "-") {
            ok = (op == "<=") ? (s + 0 <= t + 0) : (s + 0 >= t + 0)
            v = sprintf("%s %s: %s", op, t, ok ? "MET" : sprintf("MISSED by %.1fx", op == "<=" ? s / t : t / s))
        }
        printf "%-40s %12s %12s %10s   %s", l, b, s, r, v }')"
}

N_OK=$(awk '$1 == "sluiced" && $2 == "ok"' "$RUNS" | wc -l)
B_OK=$(awk '$1 == "baseline" && $2 == "ok"' "$RUNS" | wc -l)
say ""
say "$(printf '%-40s %12s %12s %10s   %s' figure baseline sluiced 'sl/base' target)"
row "throughput, events/s (runs ok $B_OK/$N_OK of $REPS)" "$(med baseline 3)" "$(med sluiced 3)" "" ""
row "throughput, MB/s" "$(med baseline 4)" "$(med sluiced 4)" "" ""
row "receiver CPU per event, us" "$(awk -v c="$(med baseline 5)" -v n="$N" 'BEGIN { printf "%.3f", c * 1e6 / n }')" \
    "$(awk -v c="$(med sluiced 5)" -v n="$N" 'BEGIN { printf "%.3f", c * 1e6 / n }')" "" ""
row "peak RSS at full load, MB" "$(med baseline 6)" "$(med sluiced 6)" "<=" 30
row "latency p50 @100k/s, us" "$(rt baseline 100000 4)" "$(rt sluiced 100000 4)" "" ""
row "latency p99 @100k/s, us" "$(rt baseline 100000 6)" "$(rt sluiced 100000 6)" "<=" 2000
row "latency p99.9 @100k/s, us" "$(rt baseline 100000 7)" "$(rt sluiced 100000 7)" "" ""
row "latency max @100k/s, us" "$(rt baseline 100000 8)" "$(rt sluiced 100000 8)" "" ""
row "CPU @100k/s, % of one core" "$(rt baseline 100000 9)" "$(rt sluiced 100000 9)" "" ""
row "CPU @10k/s, % of one core" "$(rt baseline 10000 9)" "$(rt sluiced 10000 9)" "<=" 2
row "idle CPU over 10 s, % of one core" "-" "$(awk '$2 == "ok" { print $3 }' "$WORK/idle")" "" "" 0
row "idle wake-ups per second" "-" "$(awk '$2 == "ok" { print $4 }' "$WORK/idle")" "<=" 1 0
say "(peers: make bench-peers; scaling: make bench-scaling; costs: make bench-cost)"

for m in micro_validate micro_handoff; do
    if [ -x "$BUILD/bench/$m" ]; then
        say ""
        timeout 300 "$BUILD/bench/$m" >"$WORK/micro.txt" 2>&1 || FAILED=1
        tee -a "$REPORT" <"$WORK/micro.txt"
    fi
done

report_close "$RESULTS/latest.txt"
cp "$REPORT" "$RESULTS/$(date -u +%Y%m%d-%H%M%S).txt"
exit "$FAILED"
