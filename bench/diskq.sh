#!/bin/sh
# bench/diskq.sh — the `make bench-diskq` driver: the disk queue's cost.
#
#   throughput  closed loop, BENCH_EVENTS (1,000,000) JSON events of 230 B
#               over 4 TCP connections into sluiced with its default memory
#               queue and into sluiced with [queue] type = disk (fsync =
#               interval, bench/lib.sh), BENCH_REPS (3) runs each,
#               interleaved in the same run; medians and the ratio
#               disk/memory (issue 17's target: >= 50%).
#   recovery    bench/diskq_recovery: a BENCH_DISKQ_MIB (2048) MiB backlog,
#               time from exec to READY=1 (sd_notify) and to listening,
#               and peak RSS; 3 starts with the backlog's pages in the page
#               cache, 3 with them dropped (fadvise, this backlog only).
#
# Every output is verified (every sequence number exactly once) before a
# figure is used.  Each sluiced gets its own admin port.  The machine is
# shared: quote the ratio of the same run.  The report goes to
# $RESULTS/diskq.txt, which bench/report.sh renders into docs/performance.md.
# Environment: BUILD, RESULTS, BENCH_EVENTS, BENCH_REPS, BENCH_DISKQ_MIB,
# BENCH_DISKQ_MAX.
set -u
. "$(dirname "$0")/lib.sh"

N=${BENCH_EVENTS:-1000000}
REPS=${BENCH_REPS:-3}
MIB=${BENCH_DISKQ_MIB:-2048}
RESULTS=${RESULTS:-bench/results}

lib_init bench-diskq
[ -x "$SLUICED" ] || die "$SLUICED is missing: run 'make bench-diskq'"
RUNS=$WORK/runs.tsv
: >"$RUNS"
FAILED=0
report_open diskq
say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "load: closed loop $N JSON events of 230 B over 4 TCP connections, $REPS runs each, interleaved (medians)"
r=1
while [ "$r" -le "$REPS" ]; do
    for k in sluiced sluiced-disk; do
        aport=$("$LOADGEN" -F) || die "no free loopback port"
        throughput_run "$k" "$N" 4 230 "$WORK/res" "admin_listen = 127.0.0.1:$aport"
        if ! grep -q ' ok ' "$WORK/res"; then
            FAILED=1
            say "  FAILED: $(cut -d' ' -f1,3- "$WORK/res")"
        fi
        cat "$WORK/res" >>"$RUNS"
        say "  run $r    $(cut -d' ' -f1-4 "$WORK/res")"
    done
    r=$((r + 1))
done
med() { # KIND COLUMN
    awk -v k="$1" -v c="$2" '$1 == k && $2 == "ok" { print $c }' "$RUNS" | median
}
mem=$(med sluiced 3)
disk=$(med sluiced-disk 3)
say ""
say "$(printf '%-36s %12s %12s %10s' figure memory disk 'disk/mem')"
say "$(printf '%-36s %12s %12s %10s' 'throughput, events/s' "$mem" "$disk" \
    "$(awk -v a="$disk" -v b="$mem" 'BEGIN { if (b > 0) printf "%.2f", a / b }')")"
say "$(printf '%-36s %12s %12s' 'peak RSS at full load, MB' "$(med sluiced 6)" "$(med sluiced-disk 6)")"
say ""
say "recovery ($MIB MiB backlog):"
"$BUILD/bench/diskq_recovery" "$SLUICED" "$MIB" 3 2>/dev/null >"$WORK/recovery" || FAILED=1
while read -r line; do say "  $line"; done <"$WORK/recovery"
mkdir -p "$RESULTS"
report_close "$RESULTS/diskq.txt"
exit $FAILED
