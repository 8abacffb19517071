#!/bin/sh
# bench/scaling.sh — the `make bench-scaling` driver.  POSIX sh; run as root
# (10,000 connections need RLIMIT_NOFILE raised, which it does).
#
#   connections  closed-loop events/s with 1, 4, 16, 64, 256 and 512 TCP
#                connections, BENCH_SCALE_EVENTS (1,000,000) events of 230 B,
#                for every receiver (peers included when installed)
#   event size   sluiced and the baseline with 64 B .. 16 KiB events (4
#                connections; every run moves BENCH_SIZE_BYTES, ~460 MB:
#                7,187,500 events of 64 B, at most BENCH_SIZE_EVENTS), the
#                median of BENCH_SIZE_REPS (9) interleaved rounds, the two
#                receivers swapping places every other round; every run
#                also goes into scaling-size-runs.tsv (the spread of the
#                per-round ratios is in the report)
#   threads      sluiced with producer_threads = 1, 2, 4 at 4 and 64
#                connections
#   idle conns   sluiced's RSS with 0, 1,000, 5,000 and 10,000 idle TCP
#                connections (each sent one event, then went quiet), and
#                the cost per connection
# One run per point elsewhere (every output verified): these are shapes, and
# each point is measured next to the baseline of the same invocation.  The
# event-size rows are ratios the issue sets targets on, so they take the
# median of rounds: at 230 MB a 16 KiB run lasted ~0.16 s and one round
# moved the ratio by +-30 % (1.09x, 0.91x, 1.12x on a quiet machine); at
# 460 MB (~0.25 s) the 16 KiB figure of five rounds still came out 0.93x
# to 1.15x in five runs of one day (2026-12-07), so the default is nine.
# Results in $RESULTS (bench/results): scaling-conns.tsv, scaling-size.tsv,
# scaling-size-runs.tsv, scaling-threads.tsv, scaling-idle.tsv, scaling.txt.
# Duration: the event-size part alone ~3 min 15 s (nine rounds, measured
# 2026-12-07); the whole driver about 9 minutes with the peers (8 min 53 s).
#
# Environment: BUILD, RESULTS, BENCH_SCALE_EVENTS, BENCH_KINDS;
# BENCH_SCALE_PARTS (default "conns size threads idle"): a subset runs only
# those parts, rewrites only their .tsv files and saves its report as
# scaling-PART[-PART...].txt; BENCH_SIZE_REPS (9): the event-size part
# runs that many interleaved rounds and records the median of each point
# (events/s, MB/s, CPU; the other columns of the median-events/s run);
# BENCH_SIZE_BYTES (460000000): the bytes of one event-size run (keep it
# well under the kernel's dirty background threshold, 10 % of available
# memory, or writeback to the disk starts during the run);
# BENCH_SIZE_EVENTS (8000000): the most events of one event-size run.
# Until 2026-12-07 the event-size runs were cut to BENCH_SCALE_EVENTS (1 M)
# too: a 64-byte run then moved 64 MB and the bare loop's lasted ~50 ms,
# which measured start-up (threads, the first chunks' page faults, the
# writer's first rate window) more than the steady state the targets are
# about; and the baseline always ran first, sluiced second (the run after
# another came out ahead by 10-50 % even for identical binaries:
# bench/results/analysis.md, v64; the cause was the VM's free page
# reporting, and throughput_run now hands every run the same free memory:
# bench/lib.sh mem_warm, analysis.md "(memwarm)").
set -u
. "$(dirname "$0")/lib.sh"

RESULTS=${RESULTS:-bench/results}
N=${BENCH_SCALE_EVENTS:-1000000}
KINDS=${BENCH_KINDS:-baseline sluiced rsyslog syslog-ng rsyslog-json syslog-ng-json}

PARTS=${BENCH_SCALE_PARTS:-conns size threads idle}
SIZE_REPS=${BENCH_SIZE_REPS:-9}
SIZE_BYTES=${BENCH_SIZE_BYTES:-460000000}
SIZE_EVENTS=${BENCH_SIZE_EVENTS:-8000000}
has_part() {
    case " $PARTS " in *" $1 "*) return 0 ;; esac
    return 1
}

lib_init bench-scaling
[ -x "$IDLECONNS" ] || die "$IDLECONNS is missing: run 'make bench-scaling'"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
avail=
for k in $KINDS; do
    have_peer "$k" && avail="$avail $k"
done
KINDS=$avail
no_system_syslog
mkdir -p "$RESULTS"

report_open bench-scaling
say ""

if has_part conns; then
    # 1. Connections.
    SC=$RESULTS/scaling-conns.tsv
    echo "# conns kind status eps MBps cpu_s rss_mb secs loadgen_cpu_s" >"$SC"
    say "closed loop, $N events of 230 B: events/s by number of TCP connections"
    say "$(printf '%-16s' receiver)$(for c in 1 4 16 64 256 512; do printf '%11s' "$c conns"; done)"
    for c in 1 4 16 64 256 512; do
        for k in $KINDS; do
            throughput_run "$k" "$N" "$c" 230 "$WORK/res"
            echo "$c $(cat "$WORK/res")" >>"$SC"
        done
    done
    for k in $KINDS; do
        say "$(printf '%-16s' "$k")$(awk -v k="$k" '$2 == k { printf "%11s", $3 == "ok" ? sprintf("%.0f", $4) : "FAILED" }' "$SC")"
    done
fi

if has_part size; then
    # 2. Event size.
    SZ=$RESULTS/scaling-size.tsv
    SZR=$RESULTS/scaling-size-runs.tsv
    la=$(cut -d' ' -f1 /proc/loadavg)
    # The run's parameters go into the .tsv itself (report.sh reads them
    # there: a report of a subset run, scaling-size.txt, may be older).
    {
        echo "# size kind status eps MBps cpu_s rss_mb secs loadgen_cpu_s"
        echo "# params bytes_per_run $SIZE_BYTES rounds $SIZE_REPS load $la"
    } >"$SZ"
    echo "# size round kind status eps MBps cpu_s rss_mb secs loadgen_cpu_s" >"$SZR"
    say ""
    say "load average $la"
    say "closed loop, 4 connections: events/s (MB/s) by event size, $((SIZE_BYTES / 1000000)) MB a run (median of $SIZE_REPS interleaved rounds)"
    for s in 64 230 1024 4096 16384; do
        n=$((SIZE_BYTES / s))
        [ "$n" -gt "$SIZE_EVENTS" ] && n=$SIZE_EVENTS
        : >"$WORK/size-runs"
        r=1
        while [ "$r" -le "$SIZE_REPS" ]; do
            order="baseline sluiced"
            [ $((r % 2)) -eq 0 ] && order="sluiced baseline"
            for k in $order; do
                throughput_run "$k" "$n" 4 "$s" "$WORK/res"
                cat "$WORK/res" >>"$WORK/size-runs"
                echo "$s $r $(cat "$WORK/res")" >>"$SZR"
            done
            r=$((r + 1))
        done
        # Per kind: the run with the median events/s, its MB/s and CPU
        # replaced by their own medians (a failed run, if any, otherwise).
        for k in baseline sluiced; do
            ok=$(awk -v k="$k" '$1 == k && $2 == "ok"' "$WORK/size-runs" | sort -k3,3n)
            cnt=$(printf '%s' "$ok" | grep -c .)
            if [ "$cnt" -eq 0 ]; then
                echo "$s $(awk -v k="$k" '$1 == k' "$WORK/size-runs" | head -1)" >>"$SZ"
                continue
            fi
            mid=$(((cnt + 1) / 2))
            mb=$(printf '%s\n' "$ok" | awk '{ print $4 }' | median)
            cpu=$(printf '%s\n' "$ok" | awk '{ print $5 }' | median)
            printf '%s\n' "$ok" | sed -n "${mid}p" |
                awk -v s="$s" -v mb="$mb" -v cpu="$cpu" '{ $4 = mb; $5 = cpu; print s, $0 }' >>"$SZ"
        done
    done
    for k in baseline sluiced; do
        say "$(printf '%-16s' "$k")$(awk -v k="$k" '$2 == k { printf "  %5d B: %s", $1, $3 == "ok" ? sprintf("%.0f (%.0f)", $4, $5) : "FAILED" }' "$SZ")"
    done
fi

if has_part threads; then
    # 3. producer_threads.
    TH=$RESULTS/scaling-threads.tsv
    echo "# conns threads kind status eps MBps cpu_s rss_mb secs loadgen_cpu_s" >"$TH"
    say ""
    say "closed loop, $N events of 230 B: sluiced events/s by producer_threads"
    for c in 4 64; do
        for t in 1 2 4; do
            throughput_run sluiced "$N" "$c" 230 "$WORK/res" "producer_threads = $t"
            echo "$c $t $(cat "$WORK/res")" >>"$TH"
        done
        say "  $c connections: $(awk -v c="$c" '$1 == c { printf "  %d threads %s", $2, $4 == "ok" ? sprintf("%.0f", $5) : "FAILED" }' "$TH")"
    done
fi

if has_part idle; then
    # 4. Idle connections: RSS.
    ID=$RESULTS/scaling-idle.tsv
    echo "# conns status rss_kb connected" >"$ID"
    say ""
    say "sluiced RSS with idle TCP connections (each sent one event, then stayed quiet)"
    for c in 0 1000 5000 10000; do
        port=$("$LOADGEN" -F)
        if ! recv_start sluiced "$port" "$WORK/idle.out" 1 "" "max_connections = 20000"; then
            echo "$c FAILED" >>"$ID"
            continue
        fi
        sleep 0.5
        made=0
        if [ "$c" -gt 0 ]; then
            "$IDLECONNS" -p "$port" -c "$c" -e -T 120 >"$WORK/ic" 2>"$WORK/ic.err" &
            AUX_PID=$!
            i=0
            while [ ! -s "$WORK/ic" ] && [ "$i" -lt 600 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            made=$(kv connected "$WORK/ic")
            # Every event written means every connection was accepted and read.
            i=0
            while [ "$(wc -l <"$WORK/idle.out" 2>/dev/null || echo 0)" -lt "$c" ] && [ "$i" -lt 100 ]; do
                sleep 0.1
                i=$((i + 1))
            done
        fi
        sleep 2
        rss=$(rss_kb "$RECV_PID")
        lines=$(wc -l <"$WORK/idle.out" 2>/dev/null || echo 0)
        if [ -n "$AUX_PID" ]; then
            kill -TERM "$AUX_PID" 2>/dev/null
            wait "$AUX_PID"
            AUX_PID=
        fi
        recv_stop
        rm -f "$WORK/idle.out" "$WORK/ic"
        if [ "${made:-0}" -eq "$c" ] && [ "$lines" -eq "$c" ]; then
            echo "$c ok $rss $made" >>"$ID"
        else
            echo "$c FAILED $rss connected=$made events_written=$lines" >>"$ID"
        fi
    done
    base_rss=$(awk '$1 == 0 && $2 == "ok" { print $3 }' "$ID")
    while read -r c st rss rest; do
        case $c in "#"*) continue ;; esac
        say "$(awk -v c="$c" -v st="$st" -v r="$rss" -v b="${base_rss:-0}" -v rest="$rest" 'BEGIN {
            if (st != "ok") { printf "  %6d connections: FAILED %s", c, rest; exit }
            printf "  %6d connections: RSS %7.1f MB", c, r / 1024
            if (c > 0) printf "   %.2f KiB per connection", (r - b) / c
        }')"
    done <"$ID"
fi

if [ "$PARTS" = "conns size threads idle" ]; then
    report_close "$RESULTS/scaling.txt"
else
    report_close "$RESULTS/scaling-$(echo $PARTS | tr ' ' '-').txt"
fi
