#!/bin/sh
# bench/cost.sh — the `make bench-cost` driver: what sluiced costs the host.
# POSIX sh; about 7 minutes (404 and 407 s measured with five rounds,
# 2026-12-07; 137 s before the rounds).
#
#   CPU          sluiced and the baseline at 1 k, 10 k and 100 k events/s
#                (open loop, 4 connections, sends on a 100 us timetable;
#                1 k for 2 x BENCH_RATE_SECS), % of one core over the
#                sending window (schedstat, all threads), the CPU per
#                event and the end-to-end latency; at 10 k and 100 k/s
#                BENCH_COST_ROUNDS (5) rounds, each the baseline and
#                sluiced back to back (the order swapped every other
#                round), every run a row of cost-rate.tsv with its round
#                (report.sh takes the medians and the per-round ratios);
#                1 k/s one round; peers' figures at the same rates: make
#                bench-peers
#   idle         sluiced's CPU and wake-ups per second over 30 s
#   RSS, load    peak RSS (VmHWM) after 2,000,000 events closed loop with
#                the default configuration
#   RSS, stalled the sink stalled (SLUICE_TEST_STALL_FILE) while 4
#                connections send 1,000,000 events (230 MB) as fast as they
#                can, with queue capacity 16 MiB (default) and 64 MiB: RSS
#                after 5 s of overload, then the stall is lifted and every
#                event must still arrive exactly once
#   micro        bench/micro_validate and bench/micro_handoff (each next to its
#                baseline), saved as micro.txt
# Results in $RESULTS (bench/results): cost-rate.tsv, cost-mem.tsv, cost.txt,
# micro.txt.
#
# One run each said little at 10 k and 100 k/s on this shared 2-vCPU VM:
# two quiet runs of the same code gave sluiced / baseline CPU at 100 k/s
# 0.99 and 1.22, and p99 (sluiced vs baseline) 225 vs 234 us, then 262 vs
# 254 us.
#
# Environment: BUILD, RESULTS, BENCH_RATE_SECS (10), BENCH_COST_ROUNDS (5).
set -u
. "$(dirname "$0")/lib.sh"

RESULTS=${RESULTS:-bench/results}
RSECS=${BENCH_RATE_SECS:-10}
ROUNDS=${BENCH_COST_ROUNDS:-5}

# rate_summary RATE: one line: the medians of the per-round ratios
# sluiced / baseline of CPU and of p99 at RATE ($RT), each round's sorted
# (bench/lib.sh cost_ratios, as report.sh reads them).
rate_summary() {
    n=$(cost_ratios "$RT" "$1" 9 | wc -l)
    if [ "$n" -eq 0 ]; then
        printf '  %d/s: no round with both runs ok' "$1"
        return
    fi
    printf '  %d/s, median of %d rounds: CPU sluiced / baseline %.2f (rounds: %s), p99 sluiced / baseline %.2f (rounds: %s)' \
        "$1" "$n" "$(cost_ratios "$RT" "$1" 9 | median)" "$(cost_ratios "$RT" "$1" 9 | sorted_list)" \
        "$(cost_ratios "$RT" "$1" 6 | median)" "$(cost_ratios "$RT" "$1" 6 | sorted_list)"
}

lib_init bench-cost
[ -x "$SLUICED" ] || die "$SLUICED is missing: run 'make bench-cost'"
mkdir -p "$RESULTS"

report_open bench-cost
say ""

RT=$RESULTS/cost-rate.tsv
la=$(cut -d' ' -f1 /proc/loadavg)
# The parameters go into the .tsv (report.sh reads them there).
{
    echo "# kind status rate p50_us p90_us p99_us p999_us max_us cpu_pct rss_mb sent_eps round"
    echo "# params rounds $ROUNDS load $la"
} >"$RT"
say "load average $la"
say "open loop, 4 TCP connections, 230-byte JSON events; receiver CPU over the sending window"
say "(10 k and 100 k/s: $ROUNDS interleaved rounds, the order swapped every other round; 1 k/s: one)"
for rate in 1000 10000 100000; do
    secs=$(rate_secs "$rate" "$RSECS")
    rounds=$ROUNDS
    [ "$rate" -le 1000 ] && rounds=1
    r=1
    while [ "$r" -le "$rounds" ]; do
        order="baseline sluiced"
        [ $((r % 2)) -eq 0 ] && order="sluiced baseline"
        for k in $order; do
            rate_run "$k" "$rate" "$secs" 4 "$WORK/res" "$WORK/cdf"
            # The round as the last field (after a failed run's reason too).
            echo "$(cat "$WORK/res") $r" >>"$RT"
            say "$(awk -v r="$r" '$2 == "ok" { printf "  round %d  %-9s %6d/s  CPU %6.2f %% of one core = %6.2f us per event   p99 %7.0f us", r, $1, $3, $9, $9 * 1e4 / $3, $6; next } { print "  round " r "  " $0 }' "$WORK/res")"
        done
        r=$((r + 1))
    done
    [ "$rounds" -gt 1 ] && say "$(rate_summary "$rate")"
done

MEM=$RESULTS/cost-mem.tsv
echo "# what capacity_mb status rss_mb hwm_mb" >"$MEM"
say ""
idle_run sluiced 30 "$WORK/idle"
say "$(awk '$2 == "ok" { printf "sluiced idle over 30 s: CPU %.3f %% of one core, %.2f wake-ups per second (target <= 1)", $3, $4; next } { print }' "$WORK/idle")"
echo "idle_wakeups - $(awk '{ print $2, $4, $3 }' "$WORK/idle")" >>"$MEM"

throughput_run sluiced 2000000 4 230 "$WORK/res"
say "$(awk '$2 == "ok" { printf "sluiced peak RSS at full load (2,000,000 events, %.0f events/s): %.1f MiB (target <= 30 MB)", $3, $6; next } { print }' "$WORK/res")"
echo "full_load 16 $(awk '{ print $2, $6, $6 }' "$WORK/res")" >>"$MEM"

say ""
say "sink stalled, 4 connections sending 1,000,000 events as fast as they can"
for cap in 16 64; do
    port=$("$LOADGEN" -F)
    out=$WORK/stall.out
    rm -f "$out"
    touch "$WORK/stall"
    export SLUICE_TEST_STALL_FILE="$WORK/stall"
    recv_start sluiced "$port" "$out" 4 "" "" "capacity = ${cap}MiB"
    started=$?
    unset SLUICE_TEST_STALL_FILE
    if [ "$started" -ne 0 ]; then
        echo "stalled $cap FAILED" >>"$MEM"
        continue
    fi
    "$LOADGEN" -p "$port" -n 1000000 -c 4 -t 2 -T 120 >"$WORK/lg" 2>"$WORK/lg.err" &
    AUX_PID=$!
    sleep 5
    rss=$(rss_kb "$RECV_PID")
    hwm=$(hwm_kb "$RECV_PID")
    written=$(stat -c %s "$out" 2>/dev/null || echo 0)
    rm -f "$WORK/stall"
    wait "$AUX_PID"
    lg_rc=$?
    AUX_PID=
    "$FOLLOW" -n 1000000 -q 15 "$out" >"$WORK/fl" 2>"$WORK/fl.err"
    fl_rc=$?
    hwm_end=$(hwm_kb "$RECV_PID")
    recv_stop
    rv_rc=$?
    if [ "$lg_rc" -eq 0 ] && [ "$fl_rc" -eq 0 ] && [ "$rv_rc" -eq 0 ]; then
        st=ok
    else
        st=FAILED
    fi
    echo "stalled $cap $st $(awk -v r="$rss" -v h="$hwm_end" 'BEGIN { printf "%.1f %.1f", r / 1024, h / 1024 }')" >>"$MEM"
    say "$(awk -v c="$cap" -v r="$rss" -v h="$hwm" -v he="$hwm_end" -v w="$written" -v st="$st" 'BEGIN {
        printf "  capacity %2d MiB: RSS after 5 s stalled %6.1f MiB (peak %6.1f MiB; %.1f MiB above the capacity), %d bytes written while stalled; after the stall: peak %6.1f MiB, every event delivered: %s",
            c, r / 1024, h / 1024, h / 1024 - c, w, he / 1024, st == "ok" ? "yes" : "NO" }')"
done

# The micro-benchmarks, saved for docs/performance.md.
: >"$RESULTS/micro.txt"
for m in micro_validate micro_handoff; do
    if [ -x "$BUILD/bench/$m" ]; then
        timeout 300 "$BUILD/bench/$m" >>"$RESULTS/micro.txt" 2>&1
        echo >>"$RESULTS/micro.txt"
    fi
done

report_close "$RESULTS/cost.txt"
