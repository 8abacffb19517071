#!/bin/sh
# bench/wakeups.sh — wake-ups and CPU per event at a fixed rate, per thread.
# POSIX sh.  Not part of any make target: run it by hand,
#
#   BUILD=build sh bench/wakeups.sh [KIND] [RATE] [SECS] [STRACE]
#
# (defaults: sluiced 10000 10).  Starts KIND (bench/lib.sh) on a free
# loopback port, sends RATE events/s of 230 B for SECS seconds (open loop,
# 4 connections, 100 us timetable, as `make bench-cost`) while follow
# measures latency, and prints one line per thread: CPU % of one core and
# voluntary context switches (wake-ups) per second, then the totals per
# event and the latency.  Wake-up counts are far steadier than seconds on a
# shared machine.  STRACE=1 (4th argument) also runs `strace -c -f` on the
# receiver (it slows the receiver: use it for syscall counts only).
set -u
. "$(dirname "$0")/lib.sh"

KIND=${1:-sluiced}
RATE=${2:-10000}
SECS=${3:-10}
STRACE=${4:-0}
lib_init bench-wakeups
N=$((RATE * SECS))
port=$("$LOADGEN" -F) || die "no free loopback port"
out=$WORK/out.ndjson
recv_start "$KIND" "$port" "$out" 4 || die "$KIND did not start"
"$FOLLOW" -n "$N" -q 15 -T $((SECS * 20 + 60)) "$out" >"$WORK/fl" 2>&1 &
AUX_PID=$!
snap() {
    for t in /proc/"$RECV_PID"/task/*; do
        echo "$(basename "$t") $(cat "$t/comm") $(awk '{ print $1 }' "$t/schedstat") $(awk '/^voluntary_ctxt/ { print $2 }' "$t/status")"
    done
}
snap >"$WORK/threads0"
ST_PID=
if [ "$STRACE" = 1 ]; then
    strace -c -f -q -o "$WORK/strace" -p "$RECV_PID" &
    ST_PID=$!
    sleep 0.5
fi
"$LOADGEN" -p "$port" -n "$N" -c 4 -t 1 -s 230 -r "$RATE" -g "$GRAIN_US" -T $((SECS * 3 + 30)) \
    >"$WORK/lg" 2>&1
snap >"$WORK/threads1"
if [ -n "$ST_PID" ]; then
    kill -INT "$ST_PID"
    wait "$ST_PID"
fi
wait "$AUX_PID"
AUX_PID=
recv_stop
echo "$KIND at $RATE events/s for $SECS s: $(cut -d' ' -f9-14 "$WORK/fl") $(kv result "$WORK/fl")"
awk -v s="$SECS" -v n="$N" 'NR == FNR { c[$1] = $3; v[$1] = $4; next }
    ($1 in c) { dc = $3 - c[$1]; dv = $4 - v[$1]; tc += dc; tv += dv
        printf "  %-8s %-16s %6.1f %%  %8.0f wake-ups/s\n", $1, $2, dc / (s * 1e7), dv / s }
    END { printf "  all: %.1f %% of one core, %.0f wake-ups/s, %.3f wake-ups and %.2f us CPU per event\n",
        tc / (s * 1e7), tv / s, tv / n, tc / 1e3 / n }' "$WORK/threads0" "$WORK/threads1"
[ -n "$ST_PID" ] && head -25 "$WORK/strace"
exit 0
