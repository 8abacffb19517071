#!/bin/bash
# bench/relp.sh — RELP receivers side by side: sluiced `type = relp` against
# rsyslog `imrelp`, both fed by the same sender (rsyslogd: imtcp → omrelp,
# the configuration of tests/integration/check_relp.c) with the same
# BENCH_RELP_EVENTS (default 50000) JSON lines of 200 bytes.
#
# Per receiver, BENCH_RELP_REPS (default 1) runs: the time from the first
# byte fed to the last line in the receiver's file, events/s, and the
# receiver's CPU (utime + stime) per event.  Every output is checked to
# hold exactly the events fed (sorted, unique, count) before a figure is
# printed.  Bounded: each run gives up after BENCH_RELP_TIMEOUT (60) s.
# Loopback only, ports derived from the script's PID (30000..49999; set
# BENCH_RELP_PORT to choose), private config and work directories under a
# temp dir, every daemon stopped by its PID.  Run as root from the tree:
#   bash bench/relp.sh
# Nothing else runs concurrently: do not start it while others benchmark.
set -u
BUILD=${BUILD:-build}
N=${BENCH_RELP_EVENTS:-50000}
REPS=${BENCH_RELP_REPS:-1}
TIMEOUT=${BENCH_RELP_TIMEOUT:-60}
BASE=${BENCH_RELP_PORT:-$((30000 + $$ % 20000))}
RELP_PORT=$BASE
FEED_PORT=$((BASE + 1))
ADMIN_PORT=$((BASE + 2))
RSYSLOGD=/usr/sbin/rsyslogd
DIR=$(mktemp -d /tmp/sluice-bench-relp.XXXXXX)
PIDS=""

die() {
    echo "relp.sh: $*" >&2
    exit 1
}

cleanup() {
    for p in $PIDS; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$DIR"
}
trap cleanup EXIT

[ -x "$RSYSLOGD" ] && ls /usr/lib/*/rsyslog/imrelp.so >/dev/null 2>&1 ||
    die "needs rsyslog and rsyslog-relp (sh scripts/deps.sh --test)"
[ -x "$BUILD/sluiced" ] || die "no $BUILD/sluiced (make)"

# The events: {"seq":N,...} padded to 200 bytes with the newline.
awk -v n="$N" 'BEGIN { pad = sprintf("%150s", ""); gsub(/ /, "x", pad);
    for (i = 0; i < n; i++) { s = sprintf("{\"seq\":%d,\"msg\":\"%s", i, pad);
        print substr(s, 1, 197) "\"}" } }' >"$DIR/events"

cpu_ticks() { # PID: utime + stime in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

listening() { # PORT
    ss -ltn "sport = :$1" | grep -q LISTEN
}

wait_listen() { # PORT
    for _ in $(seq 1 200); do
        listening "$1" && return 0
        sleep 0.05
    done
    return 1
}

stop_pid() { # PID
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

start_receiver() { # KIND OUT: sets RPID
    local kind=$1 out=$2
    if [ "$kind" = sluiced ]; then
        cat >"$DIR/sluice.conf" <<EOF
[daemon]
producer_threads = 2
admin_listen = 127.0.0.1:$ADMIN_PORT
[source relp]
type = relp
listen = 127.0.0.1:$RELP_PORT
codec = json
queue = main
[queue main]
[sink archive]
type = file
queue = main
path = $out
EOF
        "$BUILD/sluiced" -c "$DIR/sluice.conf" 2>"$DIR/sluiced.log" &
    else
        mkdir -p "$DIR/rwork"
        cat >"$DIR/recv.conf" <<EOF
global(workDirectory="$DIR/rwork")
module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="$RELP_PORT" ruleset="out")
template(name="line" type="string" string="%rawmsg%\n")
ruleset(name="out") { action(type="omfile" file="$out" template="line") }
EOF
        "$RSYSLOGD" -n -f "$DIR/recv.conf" -i "$DIR/recv.pid" 2>"$DIR/recv.log" &
    fi
    RPID=$!
    PIDS="$PIDS $RPID"
    wait_listen "$RELP_PORT" || die "$kind does not listen on $RELP_PORT"
}

start_sender() { # sets SPID
    mkdir -p "$DIR/swork"
    cat >"$DIR/send.conf" <<EOF
global(workDirectory="$DIR/swork")
module(load="imtcp")
module(load="omrelp")
input(type="imtcp" address="127.0.0.1" port="$FEED_PORT" ruleset="to_sluiced")
template(name="sluice_raw" type="string" string="%rawmsg%")
ruleset(name="to_sluiced") {
    action(type="omrelp" target="127.0.0.1" port="$RELP_PORT" template="sluice_raw"
           queue.type="LinkedList" queue.size="500000"
           action.resumeRetryCount="-1" action.resumeInterval="1")
}
EOF
    "$RSYSLOGD" -n -f "$DIR/send.conf" -i "$DIR/send.pid" 2>"$DIR/send.log" &
    SPID=$!
    PIDS="$PIDS $SPID"
    wait_listen "$FEED_PORT" || die "the sender does not listen on $FEED_PORT"
}

run() { # KIND
    local kind=$1 out="$DIR/out-$1.ndjson" t0 t1 c0 c1 n=0 deadline
    rm -f "$out"
    start_receiver "$kind" "$out"
    start_sender
    c0=$(cpu_ticks "$RPID")
    t0=$(date +%s%N)
    cat "$DIR/events" >"/dev/tcp/127.0.0.1/$FEED_PORT" || die "cannot feed the sender"
    deadline=$(($(date +%s) + TIMEOUT))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        n=$(wc -l <"$out" 2>/dev/null || echo 0)
        [ "$n" -ge "$N" ] && break
        sleep 0.05
    done
    t1=$(date +%s%N)
    c1=$(cpu_ticks "$RPID")
    stop_pid "$SPID"
    stop_pid "$RPID"
    local uniq
    uniq=$(sort -u "$out" | wc -l)
    if [ "$n" -lt "$N" ] || [ "$uniq" -ne "$N" ] || ! cmp -s <(sort "$out") <(sort "$DIR/events"); then
        printf '%-8s FAILED: %s lines, %s distinct of %s\n' "$kind" "$n" "$uniq" "$N"
        return
    fi
    local ms=$(((t1 - t0) / 1000000)) tck
    tck=$(getconf CLK_TCK)
    awk -v k="$kind" -v n="$N" -v ms="$ms" -v c=$((c1 - c0)) -v t="$tck" 'BEGIN {
        printf "%-8s %8d events %7d ms %9.0f events/s %8.2f us CPU/event\n",
               k, n, ms, n * 1000 / ms, c / t * 1e6 / n }'
}

echo "relp receivers, $N events of 200 bytes, sender rsyslogd omrelp (window 128), $(nproc) cores"
for _ in $(seq 1 "$REPS"); do
    run sluiced
    run rsyslog
done
