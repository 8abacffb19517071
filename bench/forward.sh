#!/bin/sh
# bench/forward.sh — edge → aggregator forwarding, acknowledged (sluice sink
# → sluice source) against plain (tcp sink → tcp source), in the same run.
#
#   edge:       tcp source → memory queue → {sluice | tcp} sink
#   aggregator: {sluice | tcp} source → memory queue → file sink
#
# Closed loop (bench/lib.sh, pair_run): loadgen sends N events of SIZE bytes
# to the edge on one connection; throughput = N / (first send → the
# aggregator's file holding every event, sequence numbers checked).  REPS
# rounds, the two modes alternating within each round; prints the median
# events/s of each and the ratio sluice / tcp (issue 17's target: >= 0.90),
# and the CPU time both daemons spent per event (user + system,
# /proc/PID/stat): on a shared machine events/s is noisy, CPU per event much
# less so.
#
#   BUILD=build N=500000 REPS=3 SIZE=200 sh bench/forward.sh
# Ports are free loopback ports (loadgen -F), admin endpoints off.
#
# PROFILE=DIR (root, perf installed): each run is sampled with `perf record
# -g` on both daemons (cpu-clock: this VM has no hardware counters) into
# DIR/perf-MODE-ROUND.data, and DIR/report-MODE-ROUND.txt gets the self
# time per process and symbol (bench/results/analysis.md reads them;
# bench/lib.sh, pair_run).
set -u
BUILD=${BUILD:-build}
PROFILE=${PROFILE:-}
N=${N:-500000}
REPS=${REPS:-3}
SIZE=${SIZE:-200}
. bench/lib.sh
lib_init forward
[ -x "$SLUICED" ] || die "$SLUICED is missing: run 'make'"
trap pair_cleanup EXIT

res=$WORK/res
: >"$res"
r=0
while [ "$r" -lt "$REPS" ]; do
    for PAIR_TYPE in tcp sluice; do
        pair_run "$PAIR_TYPE" pair_sluiced_start "$res"
    done
    r=$((r + 1))
done
tcp=$(awk '$1 == "tcp" { print $2 }' "$res" | median)
sl=$(awk '$1 == "sluice" { print $2 }' "$res" | median)
tcpu=$(awk '$1 == "tcp" { print $3 }' "$res" | median)
slcpu=$(awk '$1 == "sluice" { print $3 }' "$res" | median)
echo "# edge -> aggregator, $N events of $SIZE bytes, $REPS rounds (events/s, CPU us per event of both daemons, each run):"
awk '{ printf "#   %-6s %s %s\n", $1, $2, $3 }' "$res"
awk -v t="$tcp" -v s="$sl" -v tc="$tcpu" -v sc="$slcpu" 'BEGIN {
    printf "tcp forward (median):    %.0f events/s, %.3f CPU us/event\nsluice acked (median):   %.0f events/s, %.3f CPU us/event\nratio sluice / tcp:      %.2f events/s (target >= 0.90), %.2f CPU per event\n", t, tc, s, sc, s / t, sc / tc }'
