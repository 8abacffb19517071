#!/bin/sh
# bench/nats.sh — the nats sink against the ceiling on this machine (a bare
# libnats async publisher, bench/nats_ceiling.c), in batch and event mode.
# One nats-server -js on a loopback port derived from the PID, a private
# store under $WORK, stopped by PID; bounded (each step has a deadline).
#
#   sh bench/nats.sh [EVENTS]        (default 300000 events of 200 bytes)
#   NATS_BENCH_CLUSTER=1000000 sh bench/nats.sh
#                                    also the issue's cluster run: check_nats
#                                    cluster with that many events (three
#                                    servers, replicas = 3, the sink's server
#                                    killed mid-stream, every event exactly
#                                    once, read back), timed
#
# Prints one line per run: what, events, seconds, events/s, MB/s of event
# bytes, the CPU per event of sluiced and of nats-server (utime + stime
# from /proc/PID/stat before and after, in clock ticks: read it for runs
# of a second or more), for the sink the publish-ack latency (mean, and
# the histogram bucket holding the median and the 99th percentile, from
# sluice_sink_publish_ack_seconds), and the sink's share of the ceiling
# for the same message shape;
# after batch mode, a "cpu budget" line: the CPU seconds the ceiling's run
# took (the ceiling's own, nats-server's) and the sink's (sluiced's,
# loadgen's, nats-server's), and their ratio, which is about the sink's
# share of the ceiling when both runs are bound by this machine's CPUs;
# with NATS_BENCH_DRAIN=1 a "drain" line: batch mode's publishing alone,
# from chunks already queued (see drain below);
# then the same sluiced with a file sink instead (same source, queue and
# events, same run) and each nats mode's throughput as a ratio of it.
# Event mode publishes one 199-byte message per event; batch mode one
# message per queue chunk (256 KiB by default, ~1300 events).
set -u
BUILD=${BUILD:-build}
. bench/lib.sh
CEILING=$BUILD/bench/nats_ceiling
N=${1:-300000}
SIZE=200
lib_init nats
[ -x "$CEILING" ] || die "$CEILING is missing: run 'make bench-nats'"
command -v nats-server >/dev/null || die "nats-server is missing (scripts/deps.sh --test)"

BASE=$((20000 + $$ % 20000))
NPORT=$BASE
SPORT=$((BASE + 1))
APORT=$((BASE + 2))
URL=nats://127.0.0.1:$NPORT

nats-server -js -a 127.0.0.1 -p "$NPORT" -sd "$WORK/store" -l "$WORK/nats.log" &
AUX_PID=$!
i=0
until listening "$NPORT" tcp; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || die "nats-server did not start"
    sleep 0.05
done
"$CEILING" -u "$URL" -s bench.x -c BENCH || die "cannot create the stream"

# ceiling SUBJECT MSGS BYTES: also nats-server's CPU per event (N events'
# bytes go in MSGS messages)
ceiling() {
    s0=$(cpu_ticks "$AUX_PID")
    "$CEILING" -u "$URL" -s "$1" -n "$2" -b "$3" -p 4096 >"$WORK/ceil.out" || die "ceiling failed"
    s1=$(cpu_ticks "$AUX_PID")
    cat "$WORK/ceil.out"
    awk -v n="$N" -v cpu=$((s1 - s0)) -v hz="$HZ" 'BEGIN {
        printf "  nats_server_cpu_us_per_event=%.2f (%d ticks)\n", cpu / hz * 1e6 / n, cpu }'
    # CPU seconds of the run: the publisher's own and nats-server's.
    CEIL_CPU=$(awk -v t=$((s1 - s0)) -v hz="$HZ" '{ for (i = 1; i <= NF; i++) if ($i ~ /^cpu_s=/) {
        sub(/cpu_s=/, "", $i); printf "%.3f %.3f", $i, t / hz } }' "$WORK/ceil.out")
}

# ack_latency: the sink's publish-ack histogram as "mean_ms=... p50_le_ms=...
# p99_le_ms=..." (the upper bound of the bucket holding that quantile).
ack_latency() {
    curl -s "127.0.0.1:$APORT/metrics" | awk '
        index($0, "sluice_sink_publish_ack_seconds_bucket{sink=\"js\"") == 1 {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); nb++; b[nb] = le; c[nb] = $2 }
        index($0, "sluice_sink_publish_ack_seconds_sum{sink=\"js\"}") == 1 { sum = $2 }
        index($0, "sluice_sink_publish_ack_seconds_count{sink=\"js\"}") == 1 { cnt = $2 }
        function q(f,   i) { for (i = 1; i <= nb; i++) if (c[i] >= f * cnt) return b[i] == "+Inf" ? "+Inf" : b[i] * 1000; return "?" }
        END { if (cnt > 0) printf "acks=%d ack_mean_ms=%.2f ack_p50_le_ms=%s ack_p99_le_ms=%s", cnt, sum / cnt * 1000, q(0.5), q(0.99) }'
}

metric() {
    curl -s "127.0.0.1:$APORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { print $2; exit }'
}

# conf_head QUEUE_KEYS: the bench's sluiced config up to its sink's type:
# a tcp source into queue main (with QUEUE_KEYS, "\n"-separated) and
# [sink js] on it.
conf_head() {
    cat <<EOC
[daemon]
log_level = notice
producer_threads = 1
admin_listen = 127.0.0.1:$APORT
[source bench]
type = tcp
listen = 127.0.0.1:$SPORT
queue = main
[queue main]
$(printf '%b' "$1")
[sink js]
queue = main
EOC
}

# sluiced_start CONF LOG: sluiced in the background (RECV_PID), listening
# on the source's and the admin port.
sluiced_start() {
    "$SLUICED" -c "$1" 2>"$2" &
    RECV_PID=$!
    i=0
    until listening "$SPORT" tcp && listening "$APORT" tcp; do
        i=$((i + 1))
        [ "$i" -lt 200 ] || die "sluiced did not start"
        sleep 0.05
    done
}

# wait_done WHAT: until the sink wrote (nats: had acknowledged) N events
# and the queue is empty; bounded (120 s).
wait_done() {
    i=0
    while :; do
        out=$(metric 'sluice_sink_written_events_total{sink="js"}')
        q=$(metric 'sluice_queue_queued_bytes{queue="main"}')
        [ "${out:-0}" -ge "$N" ] && [ "${q:-1}" -eq 0 ] && break
        i=$((i + 1))
        [ "$i" -lt 12000 ] || die "$1: not done within 120 s"
        sleep 0.01
    done
}

# sink MODE: sluiced (tcp source -> nats sink, or a file sink for MODE
# file), N events from loadgen; the time until every event is acknowledged
# by the server or written (queue empty).  Sets EPS to its events/s.
sink() {
    conf_head "${NATS_BENCH_QUEUE_KEYS:-}" >"$WORK/s.conf"
    if [ "$1" = file ]; then
        printf 'type = file\npath = %s\n' "$WORK/out.ndjson" >>"$WORK/s.conf"
    else
        printf 'type = nats\nurl = %s\nsubject = bench.%s\nstream = BENCH\nmessage = %s\n%b\n' \
            "$URL" "$1" "$1" "${NATS_BENCH_SINK_KEYS:-}" >>"$WORK/s.conf"
    fi
    sluiced_start "$WORK/s.conf" "$WORK/sluiced-$1.log"
    c0=$(cpu_ticks "$RECV_PID")
    s0=$(cpu_ticks "$AUX_PID")
    t0=$(now_ns)
    "$LOADGEN" -p "$SPORT" -n "$N" -s "$SIZE" -c 4 >"$WORK/lg.out" || die "loadgen failed"
    wait_done "sink $1"
    t1=$(now_ns)
    c1=$(cpu_ticks "$RECV_PID")
    s1=$(cpu_ticks "$AUX_PID")
    lat=
    [ "$1" = file ] || lat=$(ack_latency)
    stop_pid "$RECV_PID" 30
    RECV_PID=
    rm -f "$WORK/out.ndjson"
    awk -v m="$1" -v n="$N" -v s="$SIZE" -v ns=$((t1 - t0)) -v cpu=$((c1 - c0)) -v hz="$HZ" \
        -v scpu=$((s1 - s0)) -v lat="$lat" 'BEGIN {
        secs = ns / 1e9; printf "sink %s: events=%d secs=%.3f events_per_s=%.0f mb_per_s=%.1f cpu_us_per_event=%.2f",
        m, n, secs, n / secs, n * s / secs / 1e6, cpu / hz * 1e6 / n
        if (m != "file") printf " nats_server_cpu_us_per_event=%.2f (%d ticks) %s", scpu / hz * 1e6 / n, scpu, lat
        printf "\n" }' | tee "$WORK/sink.out"
    EPS=$(sed 's/.*events_per_s=\([0-9]*\).*/\1/' "$WORK/sink.out")
    # CPU seconds of the run: sluiced's, loadgen's and nats-server's.
    SINK_CPU=$(awk -v c=$((c1 - c0)) -v t=$((s1 - s0)) -v hz="$HZ" '{ for (i = 1; i <= NF; i++)
        if ($i ~ /^cpu_s=/) { sub(/cpu_s=/, "", $i); printf "%.3f %.3f %.3f", c / hz, $i, t / hz } }' "$WORK/lg.out")
}

# budget: the CPU both batch-mode runs took, side by side.  On a machine
# whose CPUs both runs keep busy, throughput goes as the inverse of the
# CPU a byte takes, so the last figure is about the sink's share of the
# ceiling that CPU alone allows.
budget() {
    echo "$CEIL_CPU $SINK_CPU" | awk '{
        c = $1 + $2; k = $3 + $4 + $5
        printf "cpu budget, batch: ceiling %.2f s (publisher %.2f, nats-server %.2f); sink %.2f s (sluiced %.2f, loadgen %.2f, nats-server %.2f); ceiling / sink %.0f %%\n",
        c, $1, $2, k, $3, $4, $5, 100 * c / k }'
}

# drain: the publishing path alone.  sluiced (batch mode) takes all N
# events into a queue large enough to hold them (capacity 512MiB) while its
# stream DRAIN does not exist yet, so the sink publishes nothing; then the
# stream is created and the time until every event is acknowledged (the
# queue empty) is the sink publishing chunks already in memory, with no
# intake (TCP, validation, chunking) competing for the CPU: the same work
# as the ceiling, plus the sink's own (ring, acknowledgements, commits).
# The stream check is retried every 1-2 ms (retry_initial, retry_max), so
# at most that much of the time is the sink noticing the stream.
# Context switches of PID's live threads (voluntary and not).
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }'
}

drain() {
    conf_head 'capacity = 512MiB' >"$WORK/d.conf"
    cat >>"$WORK/d.conf" <<EOC
type = nats
url = $URL
subject = drain.x
stream = DRAIN
message = batch
retry_initial = 1ms
retry_max = 2ms
$(printf '%b' "${NATS_BENCH_SINK_KEYS:-}")
EOC
    sluiced_start "$WORK/d.conf" "$WORK/sluiced-drain.log"
    "$LOADGEN" -p "$SPORT" -n "$N" -s "$SIZE" -c 4 >/dev/null || die "loadgen failed"
    i=0
    until [ "$(metric 'sluice_source_received_events_total{source="bench"}')" = "$N" ]; do
        i=$((i + 1))
        [ "$i" -lt 12000 ] || die "drain: events not received within 120 s"
        sleep 0.01
    done
    c0=$(cpu_ns "$RECV_PID")
    s0=$(cpu_ns "$AUX_PID")
    x0=$(ctx_switches "$RECV_PID")
    t0=$(now_ns)
    "$CEILING" -u "$URL" -s drain.x -c DRAIN || die "cannot create the stream DRAIN"
    wait_done drain
    t1=$(now_ns)
    c1=$(cpu_ns "$RECV_PID")
    s1=$(cpu_ns "$AUX_PID")
    x1=$(ctx_switches "$RECV_PID")
    msgs=$(metric 'sluice_sink_publish_ack_seconds_count{sink="js"}')
    stop_pid "$RECV_PID" 30
    RECV_PID=
    awk -v n="$N" -v s="$SIZE" -v ns=$((t1 - t0)) -v cpu=$((c1 - c0)) -v scpu=$((s1 - s0)) \
        -v cs=$((x1 - x0)) -v m="${msgs:-0}" 'BEGIN {
        secs = ns / 1e9; printf "sink batch, drain (publishing only): events=%d secs=%.3f events_per_s=%.0f mb_per_s=%.1f cpu_us_per_event=%.3f nats_server_cpu_us_per_event=%.3f msgs=%d sluiced_cpu_us_per_msg=%.0f sluiced_switches_per_msg=%.1f\n",
        n, secs, n / secs, n * s / secs / 1e6, cpu / 1e3 / n, scpu / 1e3 / n, m, (m > 0 ? cpu / 1e3 / m : 0), (m > 0 ? cs / m : 0) }'
}

echo "# nats-server $(nats-server --version 2>&1 | head -1), $N events of $SIZE bytes"
# NATS_BENCH_ONLY=batch or event: that mode's ceiling and sink only.
# NATS_BENCH_QUEUE_KEYS, NATS_BENCH_SINK_KEYS: config lines ("\n"-separated)
# added to the sink run's [queue main] and [sink js], e.g. a larger window:
# NATS_BENCH_QUEUE_KEYS='capacity = 256MiB' NATS_BENCH_SINK_KEYS='max_inflight_bytes = 256MiB'.
if [ "${NATS_BENCH_ONLY:-}" != batch ]; then
    echo "ceiling event-sized ($((SIZE - 1)) B messages):"
    ceiling bench.ce "$N" $((SIZE - 1))
fi
if [ "${NATS_BENCH_ONLY:-}" != event ]; then
    echo "ceiling chunk-sized (262144 B messages, same bytes):"
    ceiling bench.cb $((N * SIZE / 262144 + 1)) 262144
fi
EPS_BATCH= EPS_EVENT=
[ "${NATS_BENCH_ONLY:-}" = event ] || { sink batch; EPS_BATCH=$EPS; budget; }
# NATS_BENCH_DRAIN=1: also the drain run (batch mode's publishing alone).
[ -n "${NATS_BENCH_DRAIN:-}" ] && [ "${NATS_BENCH_ONLY:-}" != event ] && drain
[ "${NATS_BENCH_ONLY:-}" = batch ] || { sink event; EPS_EVENT=$EPS; }
# The file sink on the same sluiced set-up, same run: the ratio says what
# publishing to JetStream costs against writing the same events locally.
sink file
for m in batch event; do
    eval "e=\${EPS_$(echo $m | tr a-z A-Z)}"
    [ -n "$e" ] && awk -v m="$m" -v e="$e" -v f="$EPS" 'BEGIN {
        printf "ratio nats %s / file: %.2f (%d / %d events/s)\n", m, e / f, e, f }'
    true
done

# The cluster case of the integration suite at the issue's size: the suite
# runs it with 300 000 events to stay short; here with NATS_BENCH_CLUSTER.
if [ -n "${NATS_BENCH_CLUSTER:-}" ]; then
    CHECK=$BUILD/tests/integration/check_nats
    [ -x "$CHECK" ] || die "$CHECK is missing: run 'make test-bins'"
    t0=$(now_ns)
    SLUICE_NATS_CLUSTER_EVENTS=$NATS_BENCH_CLUSTER CK_RUN_CASE=cluster CK_TIMEOUT_MULTIPLIER=4 \
        SLUICED=$SLUICED SLUICE_TOP=$PWD "$CHECK" >"$WORK/cluster.out" 2>&1 ||
        { cat "$WORK/cluster.out"; die "cluster run failed"; }
    t1=$(now_ns)
    awk -v n="$NATS_BENCH_CLUSTER" -v ns=$((t1 - t0)) 'BEGIN {
        printf "cluster (3 servers, replicas = 3, batch, one killed): events=%d exactly once, secs=%.1f (start to read-back)\n", n, ns / 1e9 }'
fi
