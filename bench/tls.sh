#!/bin/sh
# bench/tls.sh — what TLS costs on the hop that leaves the host, plain
# against TLS in the same run:
#
#   edge:       tcp source (plain, from loadgen) → memory queue → {tcp | sluice} sink
#   aggregator: {tcp | sluice} source → memory queue → file sink
#
# Four modes: tcp, tcp+tls, sluice, sluice+tls.  With TLS the edge's sink is
# a TLS client with a client certificate and the aggregator's source requires
# and verifies it (mutual TLS, certificates made by tests/certs.sh with the
# openssl CLI in the bench's temp folder).  "tcp" is the stream into the
# aggregator's file sink over a plain tcp source; "sluice" the acknowledged
# protocol.
#
# Closed loop: loadgen sends N events of SIZE bytes to the edge on one
# connection; throughput = N / (first send → the aggregator's file holding
# every event), as bench/forward.sh.  REPS rounds, the modes alternating in
# each; prints the median events/s of each mode and the ratios TLS / plain
# (issue 14's target: >= 0.50).
#
#   BUILD=build N=500000 REPS=3 SIZE=200 sh bench/tls.sh
# Ports are free loopback ports (loadgen -F), admin endpoints off.
set -u
BUILD=${BUILD:-build}
N=${N:-500000}
REPS=${REPS:-3}
SIZE=${SIZE:-200}
. bench/lib.sh
lib_init tls
[ -x "$SLUICED" ] || die "$SLUICED is missing: run 'make'"
command -v openssl >/dev/null || die "the openssl command is missing"
sh tests/certs.sh "$WORK/certs" >/dev/null 2>&1 || die "tests/certs.sh failed"
C=$WORK/certs

EDGE_PID=
AGG_PID=
tls_cleanup() {
    for p in $EDGE_PID $AGG_PID; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    lib_cleanup
}
trap tls_cleanup EXIT

wait_listen() {
    i=0
    while ! listening "$1" tcp; do
        [ "$i" -ge 200 ] && die "nothing listens on $1"
        sleep 0.05
        i=$((i + 1))
    done
}

# one MODE RESULT: one run (MODE: tcp, tcp+tls, sluice, sluice+tls);
# appends "MODE EPS" to RESULT.
one() {
    mode=$1
    type=${mode%+tls}
    src_tls=
    sink_tls=
    if [ "$type" != "$mode" ]; then
        src_tls="tls = on
tls_cert_file = $C/server.pem
tls_key_file = $C/server.key
tls_ca_file = $C/ca.pem
tls_client_auth = required
tls_allowed_names = edge1"
        sink_tls="tls = on
tls_ca_file = $C/ca.pem
tls_cert_file = $C/client.pem
tls_key_file = $C/client.key"
    fi
    aport=$("$LOADGEN" -F) || die "no free port"
    eport=$("$LOADGEN" -F) || die "no free port"
    out=$WORK/out-$type.ndjson
    rm -f "$out"
    cat >"$WORK/agg.conf" <<CONF
[daemon]
log_level = notice
admin_listen = off
[source edges]
type = $type
listen = 127.0.0.1:$aport
queue = main
$src_tls
[queue main]
[sink archive]
type = file
queue = main
path = $out
CONF
    cat >"$WORK/edge.conf" <<CONF
[daemon]
log_level = notice
admin_listen = off
[source app]
type = tcp
listen = 127.0.0.1:$eport
queue = main
[queue main]
[sink forward]
type = $type
queue = main
target = 127.0.0.1:$aport
$sink_tls
CONF
    "$SLUICED" -c "$WORK/agg.conf" 2>"$WORK/agg-$mode.log" &
    AGG_PID=$!
    wait_listen "$aport"
    "$SLUICED" -c "$WORK/edge.conf" 2>"$WORK/edge-$mode.log" &
    EDGE_PID=$!
    wait_listen "$eport"
    "$LOADGEN" -p "$eport" -n "$N" -c 1 -t 1 -s "$SIZE" -T 600 >"$WORK/lg" 2>"$WORK/lg.err" ||
        die "loadgen failed: $(head -c 200 "$WORK/lg.err")"
    "$FOLLOW" -n "$N" -q 15 -T 900 "$out" >"$WORK/fl" 2>"$WORK/fl.err" ||
        die "$mode: the aggregator's file did not get $N events: $(cat "$WORK/fl"; tail -3 "$WORK/edge-$mode.log")"
    stop_pid "$EDGE_PID" 30
    stop_pid "$AGG_PID" 30
    EDGE_PID=
    AGG_PID=
    awk -v m="$mode" -v n="$N" -v t0="$(kv t_first_ns "$WORK/lg")" \
        -v t1="$(kv t_mtime_ns "$WORK/fl")" 'BEGIN {
        s = (t1 - t0) / 1e9; if (s <= 0) s = 1e-9; printf "%s %.0f\n", m, n / s }' >>"$2"
    rm -f "$out"
}

res=$WORK/res
: >"$res"
r=0
while [ "$r" -lt "$REPS" ]; do
    for m in tcp tcp+tls sluice sluice+tls; do
        one "$m" "$res"
    done
    r=$((r + 1))
done
med() { awk -v m="$1" '$1 == m { print $2 }' "$res" | median; }
tcp=$(med tcp)
tcpt=$(med tcp+tls)
sl=$(med sluice)
slt=$(med sluice+tls)
echo "# edge -> aggregator -> file, $N events of $SIZE bytes, $REPS rounds (events/s, each run):"
awk '{ printf "#   %-11s %s\n", $1, $2 }' "$res"
awk -v a="$tcp" -v b="$tcpt" -v c="$sl" -v d="$slt" 'BEGIN {
    printf "tcp plain (median):       %.0f events/s\n", a
    printf "tcp TLS (median):         %.0f events/s\n", b
    printf "sluice plain (median):    %.0f events/s\n", c
    printf "sluice TLS (median):      %.0f events/s\n", d
    printf "ratio tcp TLS / plain:    %.2f (target >= 0.50)\n", b / a
    printf "ratio sluice TLS / plain: %.2f (target >= 0.50)\n", d / c }'
