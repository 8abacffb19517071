#!/bin/sh
# bench/tap.sh — the `make bench-tap` driver: what live taps cost the
# pipeline (issue 15: throughput with 0, 1 and 2 taps within noise).
#
#   throughput  closed loop, BENCH_EVENTS (2,000,000) JSON events of 230 B
#               over 4 TCP connections into sluiced (default configuration,
#               codec = json, bench/lib.sh) with 0, 1 and 2 `sluice tap`
#               clients attached (at TAP_RATE lines a second each, default
#               1000, the tap's default; output to /dev/null), BENCH_REPS (3)
#               runs each, interleaved in the same run; medians and the
#               ratios to 0 taps.
#
# Every output is verified (every sequence number exactly once) before a
# figure is used.  Each sluiced gets its own admin port.  The taps' lines
# and drops are read from /metrics at the end of each run, to show the taps
# were live.  The machine is shared: quote the ratios of one run.
# Environment: BUILD, BENCH_EVENTS, BENCH_REPS, TAP_RATE.
set -u
. "$(dirname "$0")/lib.sh"

N=${BENCH_EVENTS:-2000000}
REPS=${BENCH_REPS:-3}
TAP_RATE=${TAP_RATE:-1000}
SLUICE=$BUILD/sluice

lib_init bench-tap
[ -x "$SLUICED" ] && [ -x "$SLUICE" ] || die "$SLUICED or $SLUICE is missing: run 'make bench-tap'"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
RUNS=$WORK/runs.tsv
: >"$RUNS"
FAILED=0
TAPS=0
TAP_PIDS=

metric() { # NAME{LABELS}: its value from the daemon under test, or -1
    curl -s "http://127.0.0.1:$aport/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? -1 : v) }'
}

# RUN_HOOK: attach $TAPS taps and wait until the daemon counts them.
taps_start() {
    TAP_PIDS=
    i=0
    while [ "$i" -lt "$TAPS" ]; do
        "$SLUICE" -a "127.0.0.1:$aport" tap -r "$TAP_RATE" >/dev/null 2>>"$WORK/tap.err" &
        TAP_PIDS="$TAP_PIDS $!"
        i=$((i + 1))
    done
    i=0
    while [ "$(metric sluice_tap_clients)" != "$TAPS" ]; do
        [ "$i" -ge 200 ] && return 1
        sleep 0.05
        i=$((i + 1))
    done
}

# RUN_UNHOOK: note what the taps saw, stop them.
taps_stop() {
    echo "$TAPS $(metric sluice_tap_lines_total) $(metric 'sluice_tap_dropped_total{reason="busy"}') $(metric 'sluice_tap_dropped_total{reason="buffer_full"}') $(metric 'sluice_tap_dropped_total{reason="slow_client"}')" >"$WORK/tapstat"
    for p in $TAP_PIDS; do
        kill -INT "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    TAP_PIDS=
}
RUN_HOOK=taps_start
RUN_UNHOOK=taps_stop

report_open tap
say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "load: closed loop $N JSON events of 230 B over 4 TCP connections, $REPS runs each, interleaved (medians);" \
    "taps at $TAP_RATE lines/s each, output to /dev/null"
r=1
while [ "$r" -le "$REPS" ]; do
    for TAPS in 0 1 2; do
        aport=$("$LOADGEN" -F) || die "no free loopback port"
        : >"$WORK/tapstat"
        throughput_run sluiced "$N" 4 230 "$WORK/res" "admin_listen = 127.0.0.1:$aport"
        if ! grep -q ' ok ' "$WORK/res"; then
            FAILED=1
            say "  FAILED ($TAPS taps): $(cut -d' ' -f1,3- "$WORK/res")"
        fi
        sed "s/^sluiced/taps$TAPS/" "$WORK/res" >>"$RUNS"
        say "$(awk -v r="$r" -v t="$TAPS" -v ts="$(cat "$WORK/tapstat")" '$2 == "ok" {
            split(ts, s, " ")
            printf "  run %d  %d tap(s) %10.0f events/s  CPU %5.2f s  RSS %6.1f MB  tap lines %d, dropped busy %d buffer_full %d slow_client %d",
                r, t, $3, $5, $6, s[2], s[3], s[4], s[5] }' "$WORK/res")"
    done
    r=$((r + 1))
done
med() { # KIND COLUMN
    awk -v k="$1" -v c="$2" '$1 == k && $2 == "ok" { print $c }' "$RUNS" | median
}
t0=$(med taps0 3)
say ""
say "$(printf '%-28s %12s %12s %12s' figure '0 taps' '1 tap' '2 taps')"
say "$(printf '%-28s %12s %12s %12s' 'throughput, events/s' "$t0" "$(med taps1 3)" "$(med taps2 3)")"
say "$(printf '%-28s %12s %12s %12s' 'ratio to 0 taps' 1.00 \
    "$(awk -v a="$(med taps1 3)" -v b="$t0" 'BEGIN { if (b > 0) printf "%.2f", a / b }')" \
    "$(awk -v a="$(med taps2 3)" -v b="$t0" 'BEGIN { if (b > 0) printf "%.2f", a / b }')")"
say "$(printf '%-28s %12s %12s %12s' 'receiver CPU, s' "$(med taps0 5)" "$(med taps1 5)" "$(med taps2 5)")"
say "$(printf '%-28s %12s %12s %12s' 'peak RSS, MB' "$(med taps0 6)" "$(med taps1 6)" "$(med taps2 6)")"
mkdir -p "$BUILD/bench-results"
report_close "$BUILD/bench-results/tap.txt"
exit $FAILED
