#!/bin/sh
# bench/peers.sh — the `make bench-peers` driver.  POSIX sh, run as root
# (the peers are installed with apt by bench/peers/install.sh if missing).
#
# The same workloads against every receiver, in one invocation:
#   1. closed loop: BENCH_EVENTS (2,000,000) JSON events of 230 bytes over
#      4 TCP connections, BENCH_REPS (3) runs per receiver, interleaved;
#      medians of events/s, receiver CPU per event, peak RSS;
#   2. open loop at 1 k, 10 k and 100 k events/s (loadgen -r, sends on a
#      100 us timetable, every event stamped with its intended send time):
#      end-to-end latency p50..max read by bench/follow and the receiver's
#      CPU as % of one core; latency CDFs at 10 k and 100 k for the plots;
#   3. idle: CPU and wake-ups per second over 10 s;
#   4. UDP (one socket, one event per datagram): the highest rate with zero
#      loss for sluiced, rsyslog imudp and syslog-ng, rates doubling from
#      25 k/s, then one step between the last clean rate and the first lossy;
#   5. syslog over TCP into JSON files, octet-counted and newline-framed:
#      bench/peers-syslog.sh (also `make bench-peers-syslog` alone).
# Receivers: baseline, sluiced, rsyslog, syslog-ng, rsyslog-json,
# syslog-ng-json (bench/lib.sh says how each is configured).  Every output is
# verified by follow (every sequence number exactly once) before a figure
# is used; a failed run is shown as FAILED.
#
# Results (the data docs/performance.md is made from) go to $RESULTS
# (default bench/results): peers.txt (this report), peers-throughput.tsv,
# peers-rate.tsv, peers-idle.tsv, peers-udp.tsv, latency-KIND-RATE.cdf.
# Duration: about 10 minutes on the 2-core machine (580 s measured).
#
# Environment: BUILD, RESULTS, BENCH_EVENTS, BENCH_REPS, BENCH_RATE_SECS (10),
# BENCH_KINDS (to run a subset), BENCH_SKIP_UDP=1, BENCH_SKIP_SYSLOG=1.
set -u
. "$(dirname "$0")/lib.sh"

RESULTS=${RESULTS:-bench/results}
N=${BENCH_EVENTS:-2000000}
REPS=${BENCH_REPS:-3}
RSECS=${BENCH_RATE_SECS:-10}
KINDS=${BENCH_KINDS:-baseline sluiced rsyslog syslog-ng rsyslog-json syslog-ng-json}

lib_init bench-peers
peers_ready $KINDS

report_open bench-peers
say "load: closed loop $N events of 230 B over 4 TCP connections, $REPS runs each, interleaved;" \
    "open loop 1k/s x $((RSECS * 2)) s, 10k/s and 100k/s x $RSECS s (4 connections, sends on a ${GRAIN_US} us timetable)"
say ""

# 1. Closed-loop throughput.
TP=$RESULTS/peers-throughput.tsv
echo "# rep kind status eps MBps cpu_s rss_mb secs loadgen_cpu_s" >"$TP"
r=1
while [ "$r" -le "$REPS" ]; do
    for k in $KINDS; do
        throughput_run "$k" "$N" 4 230 "$WORK/res"
        echo "$r $(cat "$WORK/res")" >>"$TP"
        say "  run $r  $(awk '$2 == "ok" { printf "%-15s %10.0f events/s  CPU %6.2f s  RSS %6.1f MB", $1, $3, $5, $6; next }
            { print }' "$WORK/res")"
    done
    r=$((r + 1))
done

# col FILE KIND FIELD: median of FIELD over KIND's ok lines of FILE.
col() {
    awk -v k="$2" -v c="$3" '$2 == k && $3 == "ok" { print $c }' "$1" | median
}

# 2. Open loop: latency and CPU at fixed rates.
RT=$RESULTS/peers-rate.tsv
echo "# kind status rate p50_us p90_us p99_us p999_us max_us cpu_pct rss_mb" >"$RT"
say ""
for rate in 1000 10000 100000; do
    secs=$(rate_secs "$rate" "$RSECS")
    for k in $KINDS; do
        cdf=$WORK/cdf
        rate_run "$k" "$rate" "$secs" 4 "$WORK/res" "$cdf"
        cat "$WORK/res" >>"$RT"
        if [ "$rate" -ge 10000 ] && grep -q ' ok ' "$WORK/res"; then
            cp "$cdf" "$RESULTS/latency-$k-$rate.cdf"
        fi
        say "  $(awk '$2 == "ok" { printf "%-15s %6d/s  p50 %8.0f us  p99 %9.0f us  max %9.0f us  CPU %6.2f %%", $1, $3, $4, $6, $8, $9; next } { print }' "$WORK/res")"
    done
done

# 3. Idle.
ID=$RESULTS/peers-idle.tsv
echo "# kind status cpu_pct wakeups_per_s" >"$ID"
for k in $KINDS; do
    idle_run "$k" 10 "$WORK/res"
    cat "$WORK/res" >>"$ID"
done

# rate_col KIND RATE FIELD
rate_col() {
    awk -v k="$1" -v r="$2" -v c="$3" '$1 == k && $2 == "ok" && $3 == r { v = $c } END { print (v == "" ? "-" : v) }' "$RT"
}

say ""
say "TCP -> file, 230-byte JSON events, 4 connections; medians of $REPS closed-loop runs; latency = visible in the file - intended send time"
hdr=$(printf '%-15s %10s %9s %8s %7s %7s %9s %9s %9s %8s %8s %8s %7s' receiver events/s 'vs sluiced' 'CPU us/ev' 'RSS MB' 'runs' \
    'p50@10k' 'p99@10k' 'p99@100k' 'CPU%@1k' 'CPU%@10k' 'CPU%@100k' 'idle wk/s')
say "$hdr"
s_eps=$(col "$TP" sluiced 4)
for k in $KINDS; do
    ok=$(awk -v k="$k" '$2 == k && $3 == "ok"' "$TP" | wc -l)
    eps=$(col "$TP" "$k" 4)
    cpu=$(col "$TP" "$k" 6)
    rss=$(col "$TP" "$k" 7)
    say "$(awk -v k="$k" -v eps="$eps" -v s="$s_eps" -v cpu="$cpu" -v n="$N" -v rss="$rss" -v ok="$ok" -v reps="$REPS" \
        -v a="$(rate_col "$k" 10000 4)" -v b="$(rate_col "$k" 10000 6)" -v c="$(rate_col "$k" 100000 6)" \
        -v d="$(rate_col "$k" 1000 9)" -v e="$(rate_col "$k" 10000 9)" -v f="$(rate_col "$k" 100000 9)" \
        -v w="$(awk -v k="$k" '$1 == k && $2 == "ok" { print $4 }' "$ID")" 'BEGIN {
        ratio = (eps == "-" || s == "-" || s == 0) ? "-" : sprintf("%.2fx", eps / s)
        cpe = (cpu == "-") ? "-" : sprintf("%.2f", cpu * 1e6 / n)
        printf "%-15s %10s %9s %8s %7s %4d/%d %9s %9s %9s %8s %8s %8s %7s", k,
            eps == "-" ? "FAILED" : sprintf("%.0f", eps), ratio, cpe, rss, ok, reps,
            a == "-" ? "-" : sprintf("%.0f us", a), b == "-" ? "-" : sprintf("%.0f us", b),
            c == "-" ? "-" : sprintf("%.0f us", c), d, e, f, w == "" ? "-" : w }')"
done

# Targets that compare with the peers.
best() { # best of the given kinds' median eps
    for k in "$@"; do col "$TP" "$k" 4; done | grep -v '^-$' | sort -g | tail -1
}
raw_best=$(best rsyslog syslog-ng)
json_best=$(best rsyslog-json syslog-ng-json)
say ""
say "$(awk -v s="$s_eps" -v r="$raw_best" -v j="$json_best" 'BEGIN {
    if (s == "-" || r == "") { print "target vs raw peers: not measured"; }
    else printf "target: sluiced (validating) >= 3x the best raw peer: %.2fx -> %s\n", s / r, (s / r >= 3) ? "MET" : "MISSED"
    if (s == "-" || j == "") { print "target vs JSON peers: not measured"; }
    else printf "target: sluiced >= 10x the best JSON-parsing peer: %.2fx -> %s\n", s / j, (s / j >= 10) ? "MET" : "MISSED"
}')"

# 4. UDP: highest rate with zero loss.
UD=$RESULTS/peers-udp.tsv
echo "# kind status rate p50_us p90_us p99_us p999_us max_us cpu_pct rss_mb | kind FAILED ... missing=N" >"$UD"
if [ "${BENCH_SKIP_UDP:-0}" != 1 ]; then
    say ""
    say "UDP -> file, one 230-byte event per datagram, one socket, 3 s per rate; highest rate with zero loss"
    for k in sluiced-udp rsyslog-udp syslog-ng-udp; do
        have_peer "$k" || continue
        good=0
        bad=
        limit=
        rate=25000
        while [ "$rate" -le 3200000 ]; do
            FOLLOW_QUIET=3 rate_run "$k" "$rate" 3 1 "$WORK/res" "$WORK/cdf"
            cat "$WORK/res" >>"$UD"
            if grep -q ' ok ' "$WORK/res"; then
                good=$rate
                # The sender could not keep the timetable: no higher rate
                # can be offered from here.
                if awk -v r="$rate" '{ exit !($11 < 0.95 * r) }' "$WORK/res"; then
                    limit=" (sender limit: loadgen reached $(awk '{ printf "%.0f", $11 }' "$WORK/res")/s)"
                    break
                fi
                rate=$((rate * 2))
            else
                bad=$rate
                break
            fi
        done
        if [ -n "$bad" ] && [ "$good" -gt 0 ]; then
            mid=$(((good + bad) / 2))
            FOLLOW_QUIET=3 rate_run "$k" "$mid" 3 1 "$WORK/res" "$WORK/cdf"
            cat "$WORK/res" >>"$UD"
            grep -q ' ok ' "$WORK/res" && good=$mid
        fi
        lost=$(awk -v k="$k" '$1 == k && $2 == "FAILED" { for (i = 3; i <= NF; i++) if ($i ~ /^missing=/) m = substr($i, 9) } END { print m }' "$UD")
        say "$(printf '  %-15s highest zero-loss rate %8d events/s%s%s' "$k" "$good" "$limit" "${bad:+ (lost events at $bad/s: ${lost:-?})}")"
        echo "# best $k $good" >>"$UD"
    done
fi

report_close "$RESULTS/peers.txt"

# 5. Syslog over TCP into JSON files (its own report: peers-syslog.txt).
if [ "${BENCH_SKIP_SYSLOG:-0}" != 1 ]; then
    RESULTS=$RESULTS sh "$(dirname "$0")/peers-syslog.sh" || exit 1
fi
