#!/bin/sh
# bench/rate_ab.sh — sluiced builds (or settings) against each other and the
# bare loop at fixed rates, interleaved.  POSIX sh; by hand:
#
#   BUILD=build [RATES="10000 100000"] [ROUNDS=3] [SECS=10] \
#       VARIANTS="main:SLUICED=path/to/sluiced new:SLUICED=other/sluiced" sh bench/rate_ab.sh
#
# VARIANTS: NAME:SETTINGS words, SETTINGS a comma-separated list of
# SLUICED=PATH and environment VAR=VALUE for that sluiced ("-": none).  For
# each round and rate the baseline and every variant run one after the
# other (the `make bench-cost` rate run: 4 connections, 230-byte events,
# 100 us timetable), so load from elsewhere falls on all alike.  One line
# per run: CPU per event (schedstat of all threads over the sending window),
# wake-ups per event (voluntary context switches), p50 and p99 latency.
set -u
. "$(dirname "$0")/lib.sh"
RATES=${RATES:-10000 100000}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
lib_init bench-rate-ab
echo "load $(cut -d' ' -f1-3 /proc/loadavg) start $(date -u +%H:%M:%S)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for rate in $RATES; do
    for v in baseline $VARIANTS; do
      name=${v%%:*}; envs=${v#*:}
      kind=sluiced; [ "$v" = baseline ] && { kind=baseline; envs=-; }
      SLUICED=$BUILD/sluiced
      if [ "$envs" != - ]; then
        for kv in $(echo "$envs" | tr ',' ' '); do
          # SLUICED is read by lib.sh; export "VAR=VALUE" is meant.
          # shellcheck disable=SC2034,SC2163
          case $kv in SLUICED=*) SLUICED=${kv#SLUICED=} ;; *) export "$kv" ;; esac
        done
      fi
      n=$((rate * SECS))
      mem_settle # bench/lib.sh
      run_start "$kind" 4 "$WORK/res" || continue
      "$FOLLOW" -n "$n" -q 15 -T $((SECS * 20 + 60)) "$out" >"$WORK/fl" 2>"$WORK/fl.err" &
      AUX_PID=$!
      c0=$(cpu_ns "$RECV_PID"); v0=$(vol_ctxt "$RECV_PID"); t0=$(now_ns)
      "$LOADGEN" -p "$port" -n "$n" -c 4 -t 1 -r "$rate" -g "$GRAIN_US" -s 230 -T $((SECS * 3 + 30)) >"$WORK/lg" 2>&1
      c1=$(cpu_ns "$RECV_PID"); v1=$(vol_ctxt "$RECV_PID"); t1=$(now_ns)
      wait "$AUX_PID"; AUX_PID=
      recv_stop
      rm -f "$out"
      if [ "$envs" != - ]; then
        for kv in $(echo "$envs" | tr ',' ' '); do
          case $kv in SLUICED=*) ;; *) unset "${kv%%=*}" ;; esac
        done
      fi
      awk -v r=$r -v k="$name" -v rate=$rate -v c=$((c1 - c0)) -v v=$((v1 - v0)) -v dt=$((t1 - t0)) -v n=$n \
        -v p50="$(kv p50_us "$WORK/fl")" -v p99="$(kv p99_us "$WORK/fl")" -v res="$(kv result "$WORK/fl")" 'BEGIN {
        printf "%d %-10s %6d  cpu %6.2f us/ev  wake %.3f /ev  p50 %s p99 %s %s\n", r, k, rate, c / 1e3 / n, v / n, p50, p99, res }'
    done
  done
  r=$((r + 1))
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg) end $(date -u +%H:%M:%S)"
