#!/bin/sh
# bench/forward.sh — edge → aggregator forwarding, acknowledged (sluice sink
# → sluice source) against plain (tcp sink → tcp source), in the same run.
#
#   edge:       tcp source → memory queue → {sluice | tcp} sink
#   aggregator: {sluice | tcp} source → memory queue → file sink
#
# Closed loop: loadgen sends N events of SIZE bytes to the edge on one
# connection; throughput = N / (first send → the aggregator's file holding
# every event), as bench/run.sh measures one receiver.  REPS rounds, the two
# modes alternating within each round; prints the median events/s of each
# and the ratio sluice / tcp (issue 17's target: >= 0.90), and the CPU time
# both daemons spent per event (user + system, /proc/PID/stat): on a shared
# machine events/s is noisy, CPU per event much less so.
#
#   BUILD=build N=500000 REPS=3 SIZE=200 sh bench/forward.sh
# Ports are free loopback ports (loadgen -F), admin endpoints off.
#
# PROFILE=DIR (root, perf installed): each run is sampled with `perf record
# -g` on both daemons (cpu-clock: this VM has no hardware counters) into
# DIR/perf-MODE-ROUND.data, and DIR/report-MODE-ROUND.txt gets the self
# time per process and symbol (bench/results/analysis.md reads them).
set -u
BUILD=${BUILD:-build}
PROFILE=${PROFILE:-}
N=${N:-500000}
REPS=${REPS:-3}
SIZE=${SIZE:-200}
. bench/lib.sh
lib_init forward
[ -x "$SLUICED" ] || die "$SLUICED is missing: run 'make'"

EDGE_PID=
AGG_PID=
PERF_PID=
fwd_cleanup() {
    for p in $PERF_PID $EDGE_PID $AGG_PID; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    lib_cleanup
}
trap fwd_cleanup EXIT

wait_listen() {
    i=0
    while ! listening "$1" tcp; do
        [ "$i" -ge 200 ] && die "nothing listens on $1"
        sleep 0.05
        i=$((i + 1))
    done
}

# one MODE RESULT: one run; appends "MODE EPS" to RESULT.
one() {
    mode=$1
    aport=$("$LOADGEN" -F) || die "no free port"
    eport=$("$LOADGEN" -F) || die "no free port"
    out=$WORK/out-$mode.ndjson
    rm -f "$out"
    cat >"$WORK/agg.conf" <<CONF
[daemon]
log_level = notice
admin_listen = off
[source edges]
type = $mode
listen = 127.0.0.1:$aport
queue = main
[queue main]
[sink archive]
type = file
queue = main
path = $out
CONF
    cat >"$WORK/edge.conf" <<CONF
[daemon]
log_level = notice
admin_listen = off
[source app]
type = tcp
listen = 127.0.0.1:$eport
queue = main
[queue main]
[sink forward]
type = $mode
queue = main
target = 127.0.0.1:$aport
CONF
    "$SLUICED" -c "$WORK/agg.conf" 2>"$WORK/agg-$mode.log" &
    AGG_PID=$!
    wait_listen "$aport"
    "$SLUICED" -c "$WORK/edge.conf" 2>"$WORK/edge-$mode.log" &
    EDGE_PID=$!
    wait_listen "$eport"
    if [ -n "$PROFILE" ]; then
        mkdir -p "$PROFILE"
        perf record -q -g -F 2000 -o "$PROFILE/perf-$mode-$r.data" -p "$EDGE_PID,$AGG_PID" \
            >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    "$LOADGEN" -p "$eport" -n "$N" -c 1 -t 1 -s "$SIZE" -T 600 >"$WORK/lg" 2>"$WORK/lg.err" ||
        die "loadgen failed: $(head -c 200 "$WORK/lg.err")"
    "$FOLLOW" -n "$N" -q 15 -T 900 "$out" >"$WORK/fl" 2>"$WORK/fl.err" ||
        die "$mode: the aggregator's file did not get $N events: $(cat "$WORK/fl")"
    # utime + stime (fields 14, 15; the command name has no spaces) in ticks.
    ticks=$(cat "/proc/$EDGE_PID/stat" "/proc/$AGG_PID/stat" | awk '{ t += $14 + $15 } END { print t }')
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID"
        wait "$PERF_PID"
        PERF_PID=
        perf report -i "$PROFILE/perf-$mode-$r.data" --no-children --sort pid,sym --stdio \
            -g none 2>/dev/null >"$PROFILE/report-$mode-$r.txt"
    fi
    stop_pid "$EDGE_PID" 30
    stop_pid "$AGG_PID" 30
    EDGE_PID=
    AGG_PID=
    awk -v m="$mode" -v n="$N" -v t0="$(kv t_first_ns "$WORK/lg")" \
        -v t1="$(kv t_mtime_ns "$WORK/fl")" -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        s = (t1 - t0) / 1e9; if (s <= 0) s = 1e-9
        printf "%s %.0f %.3f\n", m, n / s, ticks / hz * 1e6 / n }' >>"$2"
    rm -f "$out"
}

res=$WORK/res
: >"$res"
r=0
while [ "$r" -lt "$REPS" ]; do
    one tcp "$res"
    one sluice "$res"
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
