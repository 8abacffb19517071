#!/bin/sh
# bench/tls.sh — what TLS costs on the hop that leaves the host, plain
# against TLS in the same run, and sluiced's TLS hop against rsyslog's:
#
#   edge:       tcp source (plain, from loadgen) → memory queue → {tcp | sluice} sink
#   aggregator: {tcp | sluice} source → memory queue → file sink
#
# Modes: tcp, tcp+tls, sluice, sluice+tls, rsyslog+tls.  With TLS the edge's
# sink is a TLS client with a client certificate and the aggregator's source
# requires and verifies it (mutual TLS, certificates made by tests/certs.sh
# with the openssl CLI in the bench's temp folder).  "tcp" is the stream into
# the aggregator's file sink over a plain tcp source; "sluice" the
# acknowledged protocol.  "rsyslog+tls" is the same chain of two rsyslogds
# with rsyslog's TLS driver (rsyslog-gnutls): the edge's imptcp → ruleset
# queue (LinkedList) → omfwd StreamDriver="gtls" StreamDriverMode="1" with
# the client certificate, the server checked by name (x509/name); the
# aggregator's imtcp StreamDriver.Name="gtls" StreamDriver.Mode="1"
# StreamDriver.AuthMode="x509/name" PermittedPeer edge1 → omfile
# "%rawmsg%\n".  Same events, same certificates, same check of every
# sequence number in the aggregator's file (bench/lib.sh, pair_run).
#
# Closed loop: loadgen sends N events of SIZE bytes to the edge on one
# connection; throughput = N / (first send → the aggregator's file holding
# every event).  REPS rounds, the modes alternating in each; prints the
# median events/s (and CPU µs per event of both daemons) of each mode, the
# ratios TLS / plain (issue 14's target: >= 0.50) and sluiced tcp+tls /
# rsyslog+tls (issue 14's target: >= 3).  MODES picks a subset
# (MODES="tcp+tls rsyslog+tls").
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

trap pair_cleanup EXIT
MODES=${MODES:-tcp tcp+tls sluice sluice+tls rsyslog+tls}
case $MODES in
*rsyslog*) [ -x "$RSYSLOGD" ] || die "rsyslogd is missing (rsyslog, rsyslog-gnutls)" ;;
esac

# The sluiced pair in MODE (tcp, tcp+tls, sluice, sluice+tls).
sluiced_mode() {
    PAIR_TYPE=${1%+tls}
    PAIR_SRC_EXTRA=
    PAIR_SINK_EXTRA=
    if [ "$PAIR_TYPE" != "$1" ]; then
        PAIR_SRC_EXTRA="tls = on
tls_cert_file = $C/server.pem
tls_key_file = $C/server.key
tls_ca_file = $C/ca.pem
tls_client_auth = required
tls_allowed_names = edge1"
        PAIR_SINK_EXTRA="tls = on
tls_ca_file = $C/ca.pem
tls_cert_file = $C/client.pem
tls_key_file = $C/client.key"
    fi
}

# rsyslog_tls_start APORT EPORT OUT LABEL: the rsyslog pair over TLS (gtls).
rsyslog_tls_start() {
    mkdir -p "$WORK/rs-agg" "$WORK/rs-edge"
    cat >"$WORK/rs-agg.conf" <<CONF
global(workDirectory="$WORK/rs-agg" processInternalMessages="on" net.enableDNS="off"
       maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="$C/ca.pem"
       DefaultNetstreamDriverCertFile="$C/server.pem"
       DefaultNetstreamDriverKeyFile="$C/server.key")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="x509/name" PermittedPeer=["edge1"])
input(type="imtcp" address="127.0.0.1" port="$1" ruleset="bench")
template(name="bench" type="string" string="%rawmsg%\n")
ruleset(name="bench" queue.type="LinkedList" queue.size="100000"
        queue.dequeueBatchSize="1024" queue.workerThreads="1") {
    action(type="omfile" file="$3" template="bench" ioBufferSize="1m")
}
CONF
    cat >"$WORK/rs-edge.conf" <<CONF
global(workDirectory="$WORK/rs-edge" processInternalMessages="on" net.enableDNS="off"
       maxMessageSize="64k")
module(load="imptcp" threads="2")
input(type="imptcp" address="127.0.0.1" port="$2" ruleset="fwd")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="fwd" queue.type="LinkedList" queue.size="100000"
        queue.dequeueBatchSize="1024" queue.workerThreads="1") {
    action(type="omfwd" target="127.0.0.1" port="$1" protocol="tcp" template="raw"
           StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
           StreamDriverPermittedPeers="localhost"
           StreamDriver.CAFile="$C/ca.pem" StreamDriver.CertFile="$C/client.pem"
           StreamDriver.KeyFile="$C/client.key" action.resumeRetryCount="-1")
}
CONF
    "$RSYSLOGD" -n -f "$WORK/rs-agg.conf" -i "$WORK/rs-agg.pid" >"$WORK/agg-$4.log" 2>&1 &
    PAIR_AGG_PID=$!
    wait_listen "$1"
    "$RSYSLOGD" -n -f "$WORK/rs-edge.conf" -i "$WORK/rs-edge.pid" >"$WORK/edge-$4.log" 2>&1 &
    PAIR_EDGE_PID=$!
    wait_listen "$2"
}

res=$WORK/res
: >"$res"
r=0
while [ "$r" -lt "$REPS" ]; do
    for m in $MODES; do
        if [ "$m" = rsyslog+tls ]; then
            pair_run "$m" rsyslog_tls_start "$res"
        else
            sluiced_mode "$m"
            pair_run "$m" pair_sluiced_start "$res"
        fi
    done
    r=$((r + 1))
done
med() { awk -v m="$1" -v f="${2:-2}" '$1 == m { print $f }' "$res" | median; }
echo "# edge -> aggregator -> file, $N events of $SIZE bytes, $REPS rounds (events/s, CPU us per event of both daemons, each run):"
awk '{ printf "#   %-12s %s %s\n", $1, $2, $3 }' "$res"
for m in $MODES; do
    printf '%-13s (median): %s events/s, %s CPU us/event\n' "$m" "$(med "$m")" "$(med "$m" 3)"
done
ratio() { # A B WHAT TARGET
    a=$(med "$1")
    b=$(med "$2")
    [ "$a" = - ] || [ "$b" = - ] && return 0
    awk -v a="$a" -v b="$b" -v w="$3" -v t="$4" 'BEGIN { printf "ratio %-27s %.2f (target >= %s)\n", w ":", a / b, t }'
}
ratio tcp+tls tcp "tcp TLS / plain" 0.50
ratio sluice+tls sluice "sluice TLS / plain" 0.50
ratio tcp+tls rsyslog+tls "sluiced tcp TLS / rsyslog" 3
ratio sluice+tls rsyslog+tls "sluiced sluice TLS / rsyslog" 3
