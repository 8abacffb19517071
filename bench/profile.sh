#!/bin/sh
# bench/profile.sh — where a receiver's CPU goes at a fixed rate.  POSIX sh,
# run as root (perf).  Not part of any make target: run it by hand,
#
#   BUILD=build [BENCH_SIZE=230] sh bench/profile.sh [KIND] [RATE] [SECS] [SLUICED_QUEUE_LINES]
#
# (defaults: sluiced 100000 10).  Starts KIND (bench/lib.sh) on a free
# loopback port, sends RATE events/s for SECS seconds (open loop, 4
# connections, 100 us timetable; RATE 0: closed loop, as fast as the
# receiver takes them, 8 M events of 230 B or BENCH_EVENTS, for SECS = ~4) while `perf record -g` samples the
# receiver (cpu-clock: this VM has no hardware counters) and follow
# measures latency, then prints: the latency line, CPU and wake-ups per
# thread, the top symbols (self time) and the top call chains.  The
# perf.data and the full report stay in $BUILD/bench-results/profile-*.
set -u
. "$(dirname "$0")/lib.sh"

KIND=${1:-sluiced}
RATE=${2:-100000}
SECS=${3:-10}
QLINES=${4:-}
OUTDIR=$BUILD/bench-results/profile-$KIND-$RATE
command -v perf >/dev/null 2>&1 || die "perf is not installed (apt-get install linux-perf)"
lib_init bench-profile
mkdir -p "$OUTDIR"
if [ "$RATE" -eq 0 ]; then
    N=${BENCH_EVENTS:-8000000}
    LGRATE=
else
    N=$((RATE * SECS))
    LGRATE="-r $RATE -g $GRAIN_US"
fi
port=$("$LOADGEN" -F) || die "no free loopback port"
out=$WORK/out.ndjson
[ "$RATE" -ne 0 ] && mem_settle # bench/lib.sh
recv_start "$KIND" "$port" "$out" 4 "" "" "$QLINES" || die "$KIND did not start"
[ "$RATE" -eq 0 ] && mem_warm $((N * (${BENCH_SIZE:-230} + 32)))
"$FOLLOW" -n "$N" -q 15 -o "$OUTDIR/latency.cdf" "$out" >"$WORK/fl" 2>&1 &
AUX_PID=$!
# Per-thread counters before.
for t in /proc/"$RECV_PID"/task/*; do
    echo "$(basename "$t") $(cat "$t/comm") $(awk '{ print $1 }' "$t/schedstat") $(awk '/^voluntary_ctxt/ { print $2 }' "$t/status")"
done >"$WORK/threads0"
perf record -q -g -F 2000 -o "$OUTDIR/perf.data" -p "$RECV_PID" -- sleep "$SECS" >/dev/null 2>&1 &
PERF_PID=$!
# shellcheck disable=SC2086 # LGRATE is two options or none
"$LOADGEN" -p "$port" -n "$N" -c 4 -t 1 -s "${BENCH_SIZE:-230}" $LGRATE -T $((SECS * 3 + 30)) >"$WORK/lg" 2>&1
wait "$PERF_PID"
for t in /proc/"$RECV_PID"/task/*; do
    echo "$(basename "$t") $(cat "$t/comm") $(awk '{ print $1 }' "$t/schedstat") $(awk '/^voluntary_ctxt/ { print $2 }' "$t/status")"
done >"$WORK/threads1"
wait "$AUX_PID"
AUX_PID=
recv_stop

echo "loadgen: $(cut -d" " -f1,4 "$WORK/lg")"
echo "$KIND at $RATE events/s for $SECS s: $(cut -d' ' -f9-14 "$WORK/fl") $(kv result "$WORK/fl")"
echo "per thread over the run (CPU % of one core, wake-ups/s):"
awk -v s="$SECS" 'NR == FNR { c[$1] = $3; v[$1] = $4; next }
    ($1 in c) { printf "  %-8s %-16s %6.1f %%  %8.0f wake-ups/s\n", $1, $2, ($3 - c[$1]) / (s * 1e7), ($4 - v[$1]) / s }' \
    "$WORK/threads0" "$WORK/threads1"
perf report -i "$OUTDIR/perf.data" --no-children --sort sym --stdio 2>/dev/null >"$OUTDIR/report-self.txt"
perf report -i "$OUTDIR/perf.data" --children --sort sym --stdio -g none 2>/dev/null >"$OUTDIR/report-children.txt"
echo "top symbols, self time (all of $KIND's threads):"
grep -E '^ +[0-9.]+%' "$OUTDIR/report-self.txt" | head -25
echo "top symbols including callees:"
grep -E '^ +[0-9.]+%' "$OUTDIR/report-children.txt" | head -25
echo "full reports: $OUTDIR/report-*.txt"
