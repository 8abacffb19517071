#!/bin/sh
# bench/ab.sh — two sluiced builds against each other and the bare loop, in
# the same run.  POSIX sh; by hand, after `make all build/bench/loadgen
# build/bench/follow build/bench/baseline` (and the other build):
#
#   A=path/to/sluiced B=path/to/sluiced [N=2000000] [REPS=5] [SIZES="64 230 1024"] \
#       [BYTES=920000000] sh bench/ab.sh
#
# BYTES caps each run's traffic: a size gets min(N, BYTES / size) events
# (unset: N at every size).  Keep BYTES under the kernel's dirty
# background threshold (10 % of available memory: ~2 GB here), or
# writeback to the disk starts during the run and is what gets measured.
# Each round runs, for each size, the baseline, A and B one after the other
# (closed loop, 4 connections, lib.sh throughput_run, every output
# verified), so load from elsewhere on the machine falls on all three alike;
# A and B swap places every other round.
# Prints per size the medians over the rounds of events/s and of CPU per
# event (utime + stime of the receiver from /proc, 10 ms ticks), and the
# ratios A / baseline, B / baseline, B / A.  On a shared machine events/s
# swings 2x between runs seconds apart; CPU per event much less.
set -u
. "$(dirname "$0")/lib.sh"

A=${A:?A=path of the first sluiced}
B=${B:?B=path of the second sluiced}
N=${N:-2000000}
REPS=${REPS:-5}
SIZES=${SIZES:-64 230 1024}
BYTES=${BYTES:-}
# events_for SIZE: the events of one run at SIZE.
events_for() {
    if [ -n "$BYTES" ] && [ $((BYTES / $1)) -lt "$N" ]; then
        echo $((BYTES / $1))
    else
        echo "$N"
    fi
}
lib_init bench-ab
: >"$WORK/runs"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
r=1
while [ "$r" -le "$REPS" ]; do
    for s in $SIZES; do
        n=$(events_for "$s")
        # A before B in odd rounds, B before A in even ones: the one run
        # second came out ahead at every size, unchanged code included
        # (bench/results/analysis.md, v64).  Most of that was the free
        # memory a run met (lib.sh mem_warm, "(memwarm)"); at 230 B some
        # is left, unexplained.
        order="baseline A B"
        [ $((r % 2)) -eq 0 ] && order="baseline B A"
        for who in $order; do
            kind=sluiced
            case $who in
            baseline) kind=baseline ;;
            A) SLUICED=$A ;;
            B) SLUICED=$B ;;
            esac
            throughput_run "$kind" "$n" 4 "$s" "$WORK/res" || true
            # KIND ok EPS MBPS CPU_S ...
            awk -v w="$who" -v s="$s" -v n="$n" '$2 == "ok" { print s, w, $3, $5 * 1e6 / n }
                $2 != "ok" { print "round failed:", w, s, $0 > "/dev/stderr" }' "$WORK/res" >>"$WORK/runs"
        done
    done
    r=$((r + 1))
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $REPS rounds of $N events${BYTES:+ (at most $BYTES bytes a run)}"
printf '%6s %-9s %12s %10s\n' size who "events/s" "CPU us/ev"
for s in $SIZES; do
    for who in baseline A B; do
        e=$(awk -v s="$s" -v w="$who" '$1 == s && $2 == w { print $3 }' "$WORK/runs" | sort -n |
            awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }')
        c=$(awk -v s="$s" -v w="$who" '$1 == s && $2 == w { print $4 }' "$WORK/runs" | sort -n |
            awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }')
        printf '%6s %-9s %12s %10.3f\n' "$s" "$who" "${e:-FAILED}" "${c:-0}"
        eval "E_$who=\${e:-0}; C_$who=\${c:-0}"
    done
    # shellcheck disable=SC2154 # set by the eval above
    awk -v s="$s" -v eb="$E_baseline" -v ea="$E_A" -v e2="$E_B" -v cb="$C_baseline" -v ca="$C_A" -v c2="$C_B" 'BEGIN {
        if (eb > 0 && ea > 0 && cb > 0 && ca > 0)
            printf "%6s ratios: events/s A/base %.2f  B/base %.2f  B/A %.2f;  CPU per event A/base %.2f  B/base %.2f  B/A %.2f\n",
                s, ea / eb, e2 / eb, e2 / ea, ca / cb, c2 / cb, c2 / ca }'
done
# The same pairs round by round: the median over the rounds of each round's
# B / A (events/s and CPU per event), which load that changes between
# rounds moves less than the ratio of the medians above.
for s in $SIZES; do
    awk -v s="$s" '$1 == s && $2 == "A" { ea[++na] = $3; ca[na] = $4 }
        $1 == s && $2 == "B" { eb[++nb] = $3; cb[nb] = $4 }
        function med(a, n,    i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        END {
            n = na < nb ? na : nb; re = ""; rc = ""; k = 0
            for (i = 1; i <= n; i++) if (ea[i] > 0 && ca[i] > 0) {
                k++; e[k] = eb[i] / ea[i]; c[k] = cb[i] / ca[i]
                re = re sprintf(" %.2f", e[k]); rc = rc sprintf(" %.2f", c[k]) }
            if (k) printf "%6s per round B/A: events/s%s (median %.2f); CPU per event%s (median %.2f)\n",
                s, re, med(e, k), rc, med(c, k) }' "$WORK/runs"
done
