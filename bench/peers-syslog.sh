#!/bin/sh
# bench/peers-syslog.sh — syslog over TCP into JSON files: sluiced
# (codec = syslog) vs rsyslog and syslog-ng, each writing one JSON object of
# the parsed fields per message.  Run by `make bench-peers` after the JSON
# workloads, or alone with `make bench-peers-syslog`.  POSIX sh, as root
# (the peers are installed by bench/peers/install.sh if missing).
#
# Load: loadgen -y, BENCH_SYSLOG_EVENTS (1,000,000) RFC 5424 messages of
# 230 bytes (timestamp, hostname, appname, procid, msgid, one SD element,
# "seq=N sent_ns=T ..." as MSG) over 4 TCP connections, closed loop, once
# octet-counted (RFC 6587, loadgen -O) and once newline-framed; BENCH_REPS
# (3) runs per receiver and framing, interleaved.  Receivers (bench/lib.sh):
#   sluiced-syslog    codec = syslog (framing auto), one file sink
#   rsyslog-syslog    imptcp -> omfile, list template of the parsed fields
#   syslog-ng-syslog  syslog() (octet-counted) or network(flags(syslog-protocol))
#                     (newline) -> file(), $(format-json ...) of the parsed fields
# Every output is verified by follow (each seq exactly once, every line an
# object) before a figure counts.  Figures: medians of events/s, receiver
# CPU per event, peak RSS; target: sluiced >= 3x the faster peer.
#
# Results go to $RESULTS (default bench/results): peers-syslog.txt (this
# report) and peers-syslog.tsv.  Duration here: 156 s with
# BENCH_SYSLOG_EVENTS=500000 (the recorded run), about twice that by default.
# Environment: BUILD, RESULTS, BENCH_SYSLOG_EVENTS, BENCH_REPS,
# BENCH_SYSLOG_KINDS, BENCH_FRAMINGS ("octet lf").
set -u
. "$(dirname "$0")/lib.sh"

RESULTS=${RESULTS:-bench/results}
N=${BENCH_SYSLOG_EVENTS:-1000000}
REPS=${BENCH_REPS:-3}
KINDS=${BENCH_SYSLOG_KINDS:-sluiced-syslog rsyslog-syslog syslog-ng-syslog}
FRAMINGS=${BENCH_FRAMINGS:-octet lf}

lib_init bench-peers-syslog
peers_ready $KINDS

report_open bench-peers-syslog
say "load: closed loop $N RFC 5424 messages of 230 B over 4 TCP connections, framings: $FRAMINGS;" \
    "$REPS runs each, interleaved; output: one JSON object of the parsed fields per message"
say ""

TS=$RESULTS/peers-syslog.tsv
echo "# rep framing kind status eps MBps cpu_s rss_mb secs loadgen_cpu_s" >"$TS"
r=1
while [ "$r" -le "$REPS" ]; do
    for f in $FRAMINGS; do
        lg="-y"
        [ "$f" = octet ] && lg="-y -O"
        for k in $KINDS; do
            BENCH_FRAMING=$f LOADGEN_ARGS=$lg throughput_run "$k" "$N" 4 230 "$WORK/res"
            echo "$r $f $(cat "$WORK/res")" >>"$TS"
            say "  run $r  $(printf '%-6s' "$f") $(awk '$2 == "ok" { printf "%-17s %10.0f events/s  CPU %6.2f s  RSS %6.1f MB", $1, $3, $5, $6; next }
                { print }' "$WORK/res")"
        done
    done
    r=$((r + 1))
done

# scol FRAMING KIND FIELD: median of FIELD over the ok runs.
scol() {
    awk -v f="$1" -v k="$2" -v c="$3" '$2 == f && $3 == k && $4 == "ok" { print $c }' "$TS" | median
}

say ""
say "Syslog (RFC 5424) over TCP -> JSON file of the parsed fields, 230-byte messages, 4 connections; medians of $REPS closed-loop runs"
say "$(printf '%-7s %-17s %10s %11s %9s %7s %6s' framing receiver events/s 'vs sluiced' 'CPU us/msg' 'RSS MB' runs)"
for f in $FRAMINGS; do
    s_eps=$(scol "$f" sluiced-syslog 5)
    for k in $KINDS; do
        ok=$(awk -v f="$f" -v k="$k" '$2 == f && $3 == k && $4 == "ok"' "$TS" | wc -l)
        say "$(awk -v f="$f" -v k="$k" -v eps="$(scol "$f" "$k" 5)" -v s="$s_eps" -v cpu="$(scol "$f" "$k" 7)" \
            -v rss="$(scol "$f" "$k" 8)" -v n="$N" -v ok="$ok" -v reps="$REPS" 'BEGIN {
            ratio = (eps == "-" || s == "-" || s == 0) ? "-" : sprintf("%.2fx", eps / s)
            cpe = (cpu == "-") ? "-" : sprintf("%.2f", cpu * 1e6 / n)
            printf "%-7s %-17s %10s %11s %9s %7s %3d/%d", f, k, eps == "-" ? "FAILED" : sprintf("%.0f", eps),
                ratio, cpe, rss, ok, reps }')"
    done
done
say ""
for f in $FRAMINGS; do
    s_eps=$(scol "$f" sluiced-syslog 5)
    best=$(for k in rsyslog-syslog syslog-ng-syslog; do scol "$f" "$k" 5; done | grep -v '^-$' | sort -g | tail -1)
    say "$(awk -v f="$f" -v s="$s_eps" -v b="$best" 'BEGIN {
        if (s == "-" || b == "") { printf "target (%s): not measured\n", f; exit }
        printf "target (%s): sluiced >= 3x the faster peer: %.2fx -> %s\n", f, s / b, (s / b >= 3) ? "MET" : "MISSED" }')"
done

report_close "$RESULTS/peers-syslog.txt"
