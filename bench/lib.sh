# bench/lib.sh — shared by the bench drivers (run.sh, peers.sh, scaling.sh,
# cost.sh).  POSIX sh; sourced, not run.
#
# Receivers ("kinds") and how each is started, always on a free loopback
# port, from a private config in $WORK, writing one output file:
#   baseline          bench/baseline: bare recv->write, no framing (the ceiling)
#   sluiced           build/sluiced, codec = json (every event validated),
#                     otherwise the default configuration
#   rsyslog           rsyslogd imptcp -> omfile, template "%rawmsg%\n"
#   rsyslog-json      the same plus mmjsonparse, template "%$!all-json-plain%\n"
#   syslog-ng         syslog-ng network(tcp) flags(no-parse) -> file "$MSG\n"
#   syslog-ng-json    the same plus json-parser, $(format-json --key .json.*)
#   *-udp             sluiced, rsyslog (imudp) and syslog-ng over UDP, raw
#   *-syslog          RFC 5424 syslog over TCP parsed into one JSON object per
#                     line (loadgen -y): sluiced codec = syslog; rsyslog imptcp
#                     -> omfile with a list template of the parsed fields;
#                     syslog-ng syslog() (BENCH_FRAMING=octet, the default) or
#                     network(flags(syslog-protocol)) (BENCH_FRAMING=lf) ->
#                     file() with format-json.  The framing of the load:
#                     LOADGEN_ARGS (peers-syslog.sh sets "-y -O" or "-y").
# Peer settings are the ones that gave each its best raw throughput here
# (shared notes, peers.md).  Peers run in the foreground with their own pid,
# work, persist and control files under $WORK, never reading /etc, and are
# stopped by PID.
#
# The caller sets BUILD and calls lib_init (which makes $WORK and the EXIT
# trap) before anything else.

BUILD=${BUILD:-build}
LOADGEN=$BUILD/bench/loadgen
BASELINE=$BUILD/bench/baseline
FOLLOW=$BUILD/bench/follow
IDLECONNS=$BUILD/bench/idleconns
SLUICED=${SLUICED:-$BUILD/sluiced}
SYSLOG_NG_PREFIX=${SYSLOG_NG_PREFIX:-/opt/sluice-bench/syslog-ng}
SYSLOG_NG=$SYSLOG_NG_PREFIX/usr/sbin/syslog-ng
RSYSLOGD=${RSYSLOGD:-$(command -v rsyslogd 2>/dev/null || echo /usr/sbin/rsyslogd)}
# The grain of open-loop sends (loadgen -g), in microseconds.
GRAIN_US=${BENCH_GRAIN_US:-100}
RECV_PID=
RECV_KIND=
AUX_PID=

die() {
    echo "bench: $*" >&2
    exit 1
}

lib_cleanup() {
    for p in $AUX_PID $RECV_PID; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    [ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# lib_init NAME: temp folder, traps, tool checks, HZ.
lib_init() {
    for b in "$LOADGEN" "$BASELINE" "$FOLLOW"; do
        [ -x "$b" ] || die "$b is missing: run 'make $1'"
    done
    HZ=$(getconf CLK_TCK) || die "getconf CLK_TCK failed"
    WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/sluicebench-$1.XXXXXX") || die "mktemp failed"
    trap lib_cleanup EXIT
    trap 'exit 130' INT TERM HUP PIPE
}

have_peer() {
    case $1 in
    rsyslog*) [ -x "$RSYSLOGD" ] ;;
    syslog-ng*) [ -x "$SYSLOG_NG" ] ;;
    sluiced*) [ -x "$SLUICED" ] ;;
    *) return 0 ;;
    esac
}

# peers_ready KIND...: installs the peers if missing (bench/peers/install.sh,
# as root), checks every KIND can run and that no system syslog daemon
# runs, and makes $RESULTS.
peers_ready() {
    if ! have_peer rsyslog || ! have_peer syslog-ng; then
        sh "$(dirname "$0")/peers/install.sh" >/dev/null || die "cannot install the peers (run as root)"
    fi
    for k in "$@"; do
        have_peer "$k" || die "$k is not available"
    done
    no_system_syslog
    mkdir -p "$RESULTS"
}

# A system syslog daemon (one not started with a private "-f CONF", as every
# bench and test starts its own) would compete for the CPUs and may own
# the ports: refuse to measure then.  Private peers started by someone else
# (another bench or test run on a shared machine) are only reported.
no_system_syslog() {
    for name in rsyslogd syslog-ng; do
        for p in $(pgrep -x "$name" 2>/dev/null); do
            case " $RECV_PID $AUX_PID " in
            *" $p "*) continue ;;
            esac
            cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)
            # Gone or exiting meanwhile (a zombie's cmdline is empty): not a
            # system daemon; someone's test stopping its private one.
            [ -z "$cmd" ] && continue
            if printf '%s\n' "$cmd" | grep -q -e ' -f '; then
                echo "bench: note: a private $name (pid $p) not started by this bench is running" >&2
            else
                die "a system $name (pid $p) is running; stop it first"
            fi
        done
    done
}

alive() {
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# utime + stime of PID (all threads, dead ones too) in clock ticks.
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Nanoseconds PID's live threads have run (schedstat), for short windows.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

hwm_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Voluntary context switches (each one a sleep, so a wake-up) of all threads.
vol_ctxt() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }'
}

now_ns() {
    date +%s%N
}

# kv KEY FILE: the value of KEY=VALUE in FILE's first line.
kv() {
    awk -v k="$1" 'NR == 1 { for (i = 1; i <= NF; i++) { j = index($i, "=");
        if (substr($i, 1, j - 1) == k) { print substr($i, j + 1); exit } } }' "$2"
}

median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-";
        else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# cost_ratios FILE RATE COLUMN: in a cost-rate.tsv (bench/cost.sh), per
# round, sluiced's COLUMN / the baseline's at RATE, one a line (a file
# without the trailing round column is one round).
cost_ratios() {
    awk -v r="$2" -v c="$3" '$2 == "ok" && $3 == r { n = (NF >= 12) ? $12 : 1; v[n " " $1] = $c; rd[n] = 1 }
        END { for (i in rd) if (v[i " baseline"] > 0 && (i " sluiced") in v) print v[i " sluiced"] / v[i " baseline"] }' "$1"
}

# sorted_list: the numbers on stdin as "0.93 0.98 ... 1.15"
sorted_list() {
    awk '{ printf "%.2f\n", $1 }' | sort -g | tr '\n' ' ' | sed 's/ $//'
}

# listening PORT tcp|udp: something is bound to 127.0.0.1:PORT.
listening() {
    hex=$(printf '%04X' "$1")
    if [ "$2" = tcp ]; then
        awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
    else
        awk -v p=":$hex" '$2 ~ p"$" { f = 1 } END { exit !f }' /proc/net/udp
    fi
}

# stop_pid PID SECS: SIGTERM, wait up to SECS, then SIGKILL.  Returns its status.
stop_pid() {
    kill -TERM "$1" 2>/dev/null
    i=0
    while alive "$1" && [ "$i" -lt $(($2 * 20)) ]; do
        sleep 0.05
        i=$((i + 1))
    done
    if alive "$1"; then
        echo "bench: pid $1 still running ${2}s after SIGTERM: SIGKILL" >&2
        kill -KILL "$1" 2>/dev/null
    fi
    wait "$1"
}

# sluiced_conf PORT OUT CONF PROTO [EXTRA_DAEMON_LINES] [EXTRA_SOURCE_LINES] [EXTRA_QUEUE_LINES]
sluiced_conf() {
    # No admin endpoint unless the caller asks for one (on its own port):
    # the default 127.0.0.1:5171 collides with any other sluiced running.
    _admin="admin_listen = off"
    case "${5:-}" in *admin_listen*) _admin= ;; esac
    cat >"$3" <<EOF
; generated by bench/lib.sh: the default configuration, one source, one file sink
[daemon]
log_level = notice
$_admin
${5:-}
[source bench]
type = $4
listen = 127.0.0.1:$1
codec = ${SLUICED_CODEC:-json}
queue = main
${6:-}
[queue main]
${7:-}
[sink out]
type = file
queue = main
path = $2
EOF
}

rsyslog_conf() { # PORT OUT CONF WORKDIR json|raw tcp|udp
    mkdir -p "$4"
    if [ "$6" = udp ]; then
        input="module(load=\"imudp\" threads=\"1\" batchSize=\"128\")
input(type=\"imudp\" address=\"127.0.0.1\" port=\"$1\" ruleset=\"bench\" rcvbufSize=\"4m\")"
    else
        input="module(load=\"imptcp\" threads=\"2\")
input(type=\"imptcp\" address=\"127.0.0.1\" port=\"$1\" ruleset=\"bench\")"
    fi
    tpldef=
    if [ "$5" = json ]; then
        parse='action(type="mmjsonparse" useRawMsg="on" cookie="")'
        tpl='%$!all-json-plain%\n'
        load='module(load="mmjsonparse")'
    elif [ "$5" = syslog ]; then
        # The parsed fields as one JSON object (structured data as rsyslog
        # keeps it: one string; imptcp detects octet-counted framing).
        parse=
        load=
        tpldef='template(name="bench" type="list" option.jsonf="on") {
    property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
    property(outname="hostname" name="hostname" format="jsonf")
    property(outname="facility" name="syslogfacility-text" format="jsonf")
    property(outname="severity" name="syslogseverity-text" format="jsonf")
    property(outname="appname" name="app-name" format="jsonf")
    property(outname="procid" name="procid" format="jsonf")
    property(outname="msgid" name="msgid" format="jsonf")
    property(outname="structured_data" name="structured-data" format="jsonf")
    property(outname="message" name="msg" format="jsonf")
}'
    else
        parse=
        tpl='%rawmsg%\n'
        load=
    fi
    [ -n "$tpldef" ] || tpldef="template(name=\"bench\" type=\"string\" string=\"$tpl\")"
    cat >"$3" <<EOF
# generated by bench/lib.sh
global(workDirectory="$4" processInternalMessages="on" net.enableDNS="off"
       maxMessageSize="64k")
$load
$input
$tpldef
ruleset(name="bench" queue.type="LinkedList" queue.size="100000"
        queue.dequeueBatchSize="1024" queue.workerThreads="1") {
    $parse
    action(type="omfile" file="$2" template="bench" ioBufferSize="1m")
}
EOF
}

# syslog-ng_conf PORT OUT CONF json|raw tcp|udp CONNS
syslog_ng_conf() {
    conns=${6:-4}
    maxc=$((conns < 10 ? 10 : conns + 8))
    iw=$((conns * 100 > 10000 ? conns * 100 : 10000))
    fifo=$((iw > 100000 ? iw : 100000))
    opts=
    if [ "$5" = udp ]; then
        src="network(ip(\"127.0.0.1\") port($1) transport(\"udp\") flags(no-parse) so-rcvbuf(4194304))"
    elif [ "$4" = syslog ] && [ "${BENCH_FRAMING:-octet}" = octet ]; then
        src="syslog(ip(\"127.0.0.1\") port($1) transport(\"tcp\") log-iw-size($iw) log-fetch-limit(100) max-connections($maxc))"
    elif [ "$4" = syslog ]; then
        src="network(ip(\"127.0.0.1\") port($1) transport(\"tcp\") flags(syslog-protocol) log-iw-size($iw) log-fetch-limit(100) max-connections($maxc))"
    else
        src="network(ip(\"127.0.0.1\") port($1) transport(\"tcp\") flags(no-parse) log-iw-size($iw) log-fetch-limit(100) max-connections($maxc))"
    fi
    if [ "$4" = json ]; then
        parser='parser { json-parser(prefix(".json.")); };'
        tpl='$(format-json --key .json.* --shift 6)\n'
    elif [ "$4" = syslog ]; then
        parser=
        opts=' frac-digits(6);'
        tpl='$(format-json timestamp=${ISODATE} hostname=${HOST} facility=${FACILITY} severity=${LEVEL} appname=${PROGRAM} procid=${PID} msgid=${MSGID} message=${MSG} --key .SDATA.* --rekey .SDATA.* --shift 7 --add-prefix structured_data.)\n'
    else
        parser=
        tpl='$MSG\n'
    fi
    cat >"$3" <<EOF
@version: 3.38
# generated by bench/lib.sh
options { threaded(yes); use-dns(no); use-fqdn(no); dns-cache(no); log-fifo-size($fifo);
          stats-freq(0); log-msg-size(65536); keep-hostname(yes); chain-hostnames(no);$opts };
source s_bench { $src; };
destination d_out { file("$2" template("$tpl") flush-lines(1000)); };
log { source(s_bench); $parser destination(d_out); flags(flow-control); };
EOF
}

# recv_start KIND PORT OUT [CONNS] [SLUICED_DAEMON_LINES] [SOURCE_LINES] [QUEUE_LINES]
# Starts a receiver in the background (RECV_PID) and waits up to 10 s until
# it listens.  Returns non-zero if it did not come up.
recv_start() {
    kind=$1
    port=$2
    out=$3
    d=$WORK/$kind.$port
    mkdir -p "$d"
    RECV_KIND=$kind
    RECV_LOG=$d/log
    proto=tcp
    case $kind in
    *-udp) proto=udp ;;
    esac
    case $kind in
    baseline)
        "$BASELINE" -p "$port" -o "$out" 2>"$RECV_LOG" &
        ;;
    sluiced | sluiced-udp | sluiced-syslog)
        codec=json
        [ "$kind" = sluiced-syslog ] && codec=syslog
        SLUICED_CODEC=$codec sluiced_conf "$port" "$out" "$d/sluice.conf" "$proto" "${5:-}" "${6:-}" "${7:-}"
        "$SLUICED" -c "$d/sluice.conf" 2>"$RECV_LOG" &
        ;;
    sluiced-disk)
        # The same with a disk queue (fsync = interval, the default) in $d/q.
        sluiced_conf "$port" "$out" "$d/sluice.conf" "$proto" "${5:-}" "${6:-}" \
            "type = disk
path = $d/q
max_size = ${BENCH_DISKQ_MAX:-4GiB}
fsync = interval
${7:-}"
        "$SLUICED" -c "$d/sluice.conf" 2>"$RECV_LOG" &
        ;;
    rsyslog | rsyslog-json | rsyslog-udp | rsyslog-syslog)
        mode=raw
        [ "$kind" = rsyslog-json ] && mode=json
        [ "$kind" = rsyslog-syslog ] && mode=syslog
        rsyslog_conf "$port" "$out" "$d/rsyslog.conf" "$d/work" "$mode" "$proto"
        "$RSYSLOGD" -n -f "$d/rsyslog.conf" -i "$d/rsyslog.pid" >"$RECV_LOG" 2>&1 &
        ;;
    syslog-ng | syslog-ng-json | syslog-ng-udp | syslog-ng-syslog)
        mode=raw
        [ "$kind" = syslog-ng-json ] && mode=json
        [ "$kind" = syslog-ng-syslog ] && mode=syslog
        syslog_ng_conf "$port" "$out" "$d/syslog-ng.conf" "$mode" "$proto" "${4:-4}"
        LD_LIBRARY_PATH=$SYSLOG_NG_PREFIX/usr/lib/syslog-ng \
            "$SYSLOG_NG" -F -f "$d/syslog-ng.conf" -p "$d/syslog-ng.pid" -R "$d/syslog-ng.persist" \
            -c "$d/syslog-ng.ctl" --module-path="$SYSLOG_NG_PREFIX/usr/lib/syslog-ng/3.38" \
            >"$RECV_LOG" 2>&1 &
        ;;
    *) die "unknown receiver $kind" ;;
    esac
    RECV_PID=$!
    i=0
    while ! listening "$port" "$proto"; do
        if ! alive "$RECV_PID" || [ "$i" -ge 200 ]; then
            echo "bench: $kind did not start listening on $port; its log:" >&2
            tail -5 "$RECV_LOG" >&2
            recv_stop >/dev/null 2>&1
            return 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
    return 0
}

# recv_stop: SIGTERM the receiver, bounded; returns its exit status.
recv_stop() {
    [ -n "$RECV_PID" ] || return 0
    stop_pid "$RECV_PID" 40
    rc=$?
    RECV_PID=
    # rsyslog exits 1 on SIGTERM in some versions; syslog-ng 0.  Only
    # sluiced's and the baseline's status are judged.
    case $RECV_KIND in
    baseline | sluiced*) return $rc ;;
    *) return 0 ;;
    esac
}

# run_start KIND CONNS RESULT_FILE [SLUICED_DAEMON_LINES] [SOURCE_LINES] [QUEUE_LINES]:
# a free port, a fresh $WORK/out.ndjson, the receiver started; sets kind,
# conns, res, port and out.  On failure writes "KIND FAILED" to RESULT_FILE.
run_start() {
    kind=$1
    conns=$2
    res=$3
    port=$("$LOADGEN" -F) || die "no free loopback port"
    out=$WORK/out.ndjson
    rm -f "$out"
    if ! recv_start "$kind" "$port" "$out" "$conns" "${4:-}" "${5:-}" "${6:-}"; then
        echo "$kind FAILED did-not-start" >"$res"
        return 1
    fi
}

# rate_secs RATE BASE_SECS: how long a fixed-rate run lasts (twice as long
# at 1 k/s and below, so the CPU figure rests on enough events).
rate_secs() {
    if [ "$1" -le 1000 ]; then echo $(($2 * 2)); else echo "$2"; fi
}

# report_open NAME: starts $REPORT with the header every driver prints.
report_open() {
    REPORT=$WORK/report.txt
    : >"$REPORT"
    T_START=$(date +%s)
    say "sluice $1  $(date -u '+%Y-%m-%d %H:%M:%SZ')"
    say "machine: $(machine_line)"
    say "versions: $(versions_line)"
}

# report_close FILE: prints the duration and saves the report as FILE.
report_close() {
    say ""
    say "duration: $(($(date +%s) - T_START)) s"
    cp "$REPORT" "$1"
    echo "bench: report saved to $1" >&2
}

say() {
    printf '%s\n' "$*" | tee -a "$REPORT"
}

# The guest's free memory, the same for every run (bench/README.md "Free
# memory").  This VM hands freed guest pages back to the host (free page
# reporting: 128 MiB every ~2 s, from ~2 s after the free), and a page the
# host took back costs ~10x more to write into the page cache (900 MB from
# a warm buffer: 0.12 s into pages freed just before, 0.65-1.3 s after a
# pause of 3-16 s); the report passes themselves stall the guest's threads.
# Whether a run met warm or cold pages, or report passes, depended on when
# the previous run had removed its output, which decided more than the
# receiver did (bench/results/analysis.md, "(memwarm)").
#
# mem_warm BYTES (closed-loop runs): writes and removes a file of BYTES +
# 25 % + 256 MB in $WORK right before the load, so the run writes into
# pages freed a moment before, as on a machine without a hypervisor.
# BENCH_MEM_WARM=0 skips it.
mem_warm() {
    [ "${BENCH_MEM_WARM:-1}" = 1 ] || return 0
    mb=$(($1 * 5 / 4 / 1048576 + 256))
    [ "$mb" -gt 4096 ] && mb=4096
    dd if=/dev/zero of="$WORK/warm" bs=1M count="$mb" status=none
    rm -f "$WORK/warm"
}

# mem_settle (fixed-rate runs, which last seconds and are about latency):
# waits until the page reporting has been idle for 4 s (at most 60 s), so
# no report pass of an earlier run's freed output falls into this one.
# BENCH_MEM_SETTLE=0 skips it.
mem_settle() {
    [ "${BENCH_MEM_SETTLE:-1}" = 1 ] || return 0
    f=/sys/module/page_reporting/parameters/reported_kib
    [ -r "$f" ] || return 0
    prev=$(cat "$f")
    same=0
    i=0
    while [ "$i" -lt 120 ] && [ "$same" -lt 8 ]; do
        sleep 0.5
        cur=$(cat "$f")
        if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; prev=$cur; fi
        i=$((i + 1))
    done
}

# throughput_run KIND N CONNS SIZE RESULT_FILE [SLUICED_DAEMON_LINES] [SOURCE_LINES]
# One closed-loop run.  Writes to RESULT_FILE one line:
#   KIND ok EPS MBPS CPU_S RSS_MB SECS LOADGEN_CPU_S      or   KIND FAILED reason
# Throughput = N / (loadgen's first send -> the output file's last write),
# the latter taken from the file's mtime once follow has seen every event.
# RUN_HOOK, if set, names a function run once the receiver listens (before
# the load) and RUN_UNHOOK one run after follow saw every event (before the
# receiver stops); a failing RUN_HOOK fails the run (bench/tap.sh).
throughput_run() {
    n=$2
    size=$4
    run_start "$1" "$3" "$5" "${6:-}" "${7:-}" || return 1
    if [ -n "${RUN_HOOK:-}" ] && ! "$RUN_HOOK"; then
        recv_stop
        echo "$kind FAILED hook $RUN_HOOK" >"$res"
        return 1
    fi
    mem_warm $((n * (size + 32)))
    lgt=2
    [ "$conns" -lt 2 ] && lgt=1
    # shellcheck disable=SC2086 # LOADGEN_ARGS: more options, e.g. "-y -O"
    "$LOADGEN" -p "$port" -n "$n" -c "$conns" -t "$lgt" -s "$size" -T 600 ${LOADGEN_ARGS:-} \
        >"$WORK/lg" 2>"$WORK/lg.err"
    lg_rc=$?
    "$FOLLOW" -n "$n" -q 15 -T 900 "$out" >"$WORK/fl" 2>"$WORK/fl.err"
    fl_rc=$?
    [ -n "${RUN_UNHOOK:-}" ] && "$RUN_UNHOOK"
    ticks=
    hwm=
    if alive "$RECV_PID"; then
        ticks=$(cpu_ticks "$RECV_PID")
        hwm=$(hwm_kb "$RECV_PID")
    fi
    recv_stop
    rv_rc=$?
    why=
    [ "$lg_rc" -ne 0 ] && why="loadgen rc=$lg_rc $(head -c 200 "$WORK/lg.err")"
    [ "$fl_rc" -ne 0 ] && why="${why:+$why; }follow: $(cut -d' ' -f2-7 "$WORK/fl") $(head -c 300 "$WORK/fl.err" | tr '\n' ' ')"
    [ "$rv_rc" -ne 0 ] && why="${why:+$why; }receiver exit status $rv_rc"
    [ -z "$ticks" ] && [ -z "$why" ] && why="receiver exited early"
    if [ -n "$why" ]; then
        echo "$kind FAILED $why" | tr '\n' ' ' >"$res"
        echo >>"$res"
        mkdir -p "$BUILD/bench-results/failed"
        cp "$RECV_LOG" "$BUILD/bench-results/failed/$kind-$port.log" 2>/dev/null
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
    awk -v k="$kind" -v n="$n" -v b="$(kv bytes "$WORK/lg")" -v t0="$(kv t_first_ns "$WORK/lg")" \
        -v t1="$(kv t_mtime_ns "$WORK/fl")" -v t="$ticks" -v hz="$HZ" -v kb="$hwm" \
        -v lc="$(kv cpu_s "$WORK/lg")" 'BEGIN {
        s = (t1 - t0) / 1e9; if (s <= 0) s = 1e-9
        printf "%s ok %.0f %.1f %.2f %.1f %.3f %.2f\n", k, n / s, b / s / 1e6, t / hz, kb / 1024, s, lc
    }' >"$res"
}

# rate_run KIND RATE SECS CONNS RESULT_FILE CDF_FILE [SIZE]
# Open loop at RATE events/s for SECS.  Writes one line:
#   KIND ok RATE P50 P90 P99 P999 MAX CPU_PCT RSS_MB SENT_EPS   (latencies in us)
# SENT_EPS is the rate loadgen achieved (below RATE when the sender could
# not keep up: its events then went out late, and their latency shows it).
# CPU_PCT is the receiver's CPU time (schedstat, all threads) over the
# sending window, as % of one core.  loadgen runs RATE_LG_THREADS (1) threads;
# RATE_QUEUE_LINES adds lines to sluiced's [queue] section (diagnosis only).
rate_run() {
    rate=$2
    secs=$3
    cdf=$6
    size=${7:-230}
    n=$((rate * secs))
    mem_settle
    run_start "$1" "$4" "$5" "" "" "${RATE_QUEUE_LINES:-}" || return 1
    "$FOLLOW" -n "$n" -q "${FOLLOW_QUIET:-15}" -T $((secs * 20 + 60)) -o "$cdf" "$out" \
        >"$WORK/fl" 2>"$WORK/fl.err" &
    AUX_PID=$!
    c0=$(cpu_ns "$RECV_PID")
    t0=$(now_ns)
    udp=
    case $kind in *-udp) udp=-u ;; esac
    "$LOADGEN" -p "$port" $udp -n "$n" -c "$conns" -t "${RATE_LG_THREADS:-1}" -r "$rate" \
        -g "$GRAIN_US" -s "$size" \
        -T $((secs * 3 + 30)) >"$WORK/lg" 2>"$WORK/lg.err"
    lg_rc=$?
    c1=$(cpu_ns "$RECV_PID")
    t1=$(now_ns)
    wait "$AUX_PID"
    fl_rc=$?
    AUX_PID=
    hwm=$(hwm_kb "$RECV_PID" 2>/dev/null)
    recv_stop
    rv_rc=$?
    rm -f "$out"
    why=
    [ "$lg_rc" -ne 0 ] && why="loadgen rc=$lg_rc"
    [ "$fl_rc" -ne 0 ] && why="${why:+$why; }follow: $(cut -d' ' -f2-7 "$WORK/fl")"
    [ "$rv_rc" -ne 0 ] && why="${why:+$why; }receiver exit status $rv_rc"
    if [ -n "$why" ]; then
        echo "$kind FAILED rate=$rate $why; missing=$(kv missing "$WORK/fl")" >"$res"
        return 1
    fi
    awk -v k="$kind" -v r="$rate" -v p50="$(kv p50_us "$WORK/fl")" -v p90="$(kv p90_us "$WORK/fl")" \
        -v p99="$(kv p99_us "$WORK/fl")" -v p999="$(kv p999_us "$WORK/fl")" \
        -v mx="$(kv max_us "$WORK/fl")" -v c="$((c1 - c0))" -v dt="$((t1 - t0))" -v kb="$hwm" \
        -v se="$(kv eps "$WORK/lg")" 'BEGIN {
        printf "%s ok %d %s %s %s %s %s %.2f %.1f %s\n", k, r, p50, p90, p99, p999, mx, 100 * c / dt, kb / 1024, se
    }' >"$res"
}

# idle_run KIND SECS RESULT_FILE: starts KIND, lets it settle 1 s, then
# counts its CPU and wake-ups over SECS.  Writes: KIND ok CPU_PCT WAKEUPS_PER_S
idle_run() {
    port=$("$LOADGEN" -F) || die "no free loopback port"
    if ! recv_start "$1" "$port" "$WORK/idle.out"; then
        echo "$1 FAILED did-not-start" >"$3"
        return 1
    fi
    sleep 1
    c0=$(cpu_ns "$RECV_PID")
    v0=$(vol_ctxt "$RECV_PID")
    sleep "$2"
    c1=$(cpu_ns "$RECV_PID")
    v1=$(vol_ctxt "$RECV_PID")
    recv_stop
    awk -v k="$1" -v c="$((c1 - c0))" -v v="$((v1 - v0))" -v s="$2" 'BEGIN {
        printf "%s ok %.3f %.2f\n", k, 100 * c / (s * 1e9), v / s }' >"$3"
}

# machine_line: one line describing this machine.
machine_line() {
    disk=$(awk -v m="$(df --output=source /tmp | tail -1)" '$1 == m { print $3; exit }' /proc/mounts)
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "$(nproc) CPUs ($model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
        "$(uname -sr), /tmp on ${disk:-?} ($(df --output=source /tmp | tail -1))"
}

# The sluiced revision measured (BENCH_GIT_REV when the tree is a copy).
git_rev() {
    echo "${BENCH_GIT_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include 2>/dev/null || echo '+dirty')}"
}

versions_line() {
    rv=$("$RSYSLOGD" -v 2>/dev/null | head -1 | awk '{ print $2 }' | tr -d ',')
    nv=$(LD_LIBRARY_PATH=$SYSLOG_NG_PREFIX/usr/lib/syslog-ng "$SYSLOG_NG" --version 2>/dev/null |
        head -1 | awk '{ print $3 }' | tr -d '()')
    echo "sluiced git $(git_rev), rsyslog ${rv:-absent}, syslog-ng ${nv:-absent}"
}

# ---- edge -> aggregator pairs (forward.sh, tls.sh) --------------------------
#
# Two receivers in a chain on free loopback ports: loadgen sends N events of
# SIZE bytes on one connection to the edge, which forwards them to the
# aggregator, which writes $out.  Closed loop: throughput = N / (loadgen's
# first send -> the aggregator's file holding every event, its mtime once
# follow saw them all), as bench/run.sh measures one receiver.  follow checks
# the sequence numbers: a run with an event missing or duplicated fails the
# bench.  The caller sets N and SIZE and traps EXIT with pair_cleanup.

PAIR_EDGE_PID=
PAIR_AGG_PID=
PAIR_PERF_PID=

pair_cleanup() {
    for p in $PAIR_PERF_PID $PAIR_EDGE_PID $PAIR_AGG_PID; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    lib_cleanup
}

# wait_listen PORT: up to 10 s for a TCP listener on 127.0.0.1:PORT.
wait_listen() {
    i=0
    while ! listening "$1" tcp; do
        [ "$i" -ge 200 ] && die "nothing listens on $1"
        sleep 0.05
        i=$((i + 1))
    done
}

# pair_sluiced_start APORT EPORT OUT LABEL: sluiced → sluiced with a source
# and sink of type $PAIR_TYPE (tcp or sluice); $PAIR_SRC_EXTRA and
# $PAIR_SINK_EXTRA are more lines for the aggregator's source and the edge's
# sink (TLS keys).  Sets PAIR_AGG_PID and PAIR_EDGE_PID.
pair_sluiced_start() {
    cat >"$WORK/agg.conf" <<CONF
[daemon]
log_level = notice
admin_listen = off
[source edges]
type = $PAIR_TYPE
listen = 127.0.0.1:$1
queue = main
${PAIR_SRC_EXTRA:-}
[queue main]
[sink archive]
type = file
queue = main
path = $3
CONF
    cat >"$WORK/edge.conf" <<CONF
[daemon]
log_level = notice
admin_listen = off
[source app]
type = tcp
listen = 127.0.0.1:$2
queue = main
[queue main]
[sink forward]
type = $PAIR_TYPE
queue = main
target = 127.0.0.1:$1
${PAIR_SINK_EXTRA:-}
CONF
    "$SLUICED" -c "$WORK/agg.conf" 2>"$WORK/agg-$4.log" &
    PAIR_AGG_PID=$!
    wait_listen "$1"
    "$SLUICED" -c "$WORK/edge.conf" 2>"$WORK/edge-$4.log" &
    PAIR_EDGE_PID=$!
    wait_listen "$2"
}

# pair_run LABEL STARTER RESULT: one run.  STARTER APORT EPORT OUT LABEL
# starts both daemons (setting PAIR_AGG_PID, PAIR_EDGE_PID) and returns
# once both listen.  Appends "LABEL EPS CPU_US_PER_EVENT" to RESULT (CPU:
# user + system of both daemons, /proc/PID/stat; on a shared machine far
# less noisy than events/s).
pair_run() {
    aport=$("$LOADGEN" -F) || die "no free port"
    eport=$("$LOADGEN" -F) || die "no free port"
    out=$WORK/out-$1.ndjson
    rm -f "$out"
    "$2" "$aport" "$eport" "$out" "$1"
    # PROFILE=DIR: perf samples both daemons during the load (round $r).
    if [ -n "${PROFILE:-}" ]; then
        mkdir -p "$PROFILE"
        perf record -q -g -F 2000 -o "$PROFILE/perf-$1-${r:-0}.data" \
            -p "$PAIR_EDGE_PID,$PAIR_AGG_PID" >/dev/null 2>&1 &
        PAIR_PERF_PID=$!
    fi
    # The aggregator writes the run's bytes into a new file: the same
    # free-memory step as throughput_run's.
    mem_warm $((N * (SIZE + 32)))
    "$LOADGEN" -p "$eport" -n "$N" -c 1 -t 1 -s "$SIZE" -T 600 >"$WORK/lg" 2>"$WORK/lg.err" ||
        die "$1: loadgen failed: $(head -c 200 "$WORK/lg.err")"
    "$FOLLOW" -n "$N" -q 15 -T 900 "$out" >"$WORK/fl" 2>"$WORK/fl.err" ||
        die "$1: the aggregator's file did not get $N events: $(cat "$WORK/fl")"
    [ "$(kv duplicates "$WORK/fl")" = 0 ] && [ "$(kv malformed "$WORK/fl")" = 0 ] ||
        die "$1: duplicates or malformed lines: $(cat "$WORK/fl")"
    # utime + stime (fields 14, 15; the command names have no spaces) in ticks.
    ticks=$(cat "/proc/$PAIR_EDGE_PID/stat" "/proc/$PAIR_AGG_PID/stat" |
        awk '{ t += $14 + $15 } END { print t }')
    if [ -n "$PAIR_PERF_PID" ]; then
        kill -INT "$PAIR_PERF_PID"
        wait "$PAIR_PERF_PID"
        PAIR_PERF_PID=
        perf report -i "$PROFILE/perf-$1-${r:-0}.data" --no-children --sort pid,sym --stdio \
            -g none 2>/dev/null >"$PROFILE/report-$1-${r:-0}.txt"
    fi
    stop_pid "$PAIR_EDGE_PID" 30
    stop_pid "$PAIR_AGG_PID" 30
    PAIR_EDGE_PID=
    PAIR_AGG_PID=
    awk -v m="$1" -v n="$N" -v t0="$(kv t_first_ns "$WORK/lg")" \
        -v t1="$(kv t_mtime_ns "$WORK/fl")" -v ticks="$ticks" -v hz="$HZ" 'BEGIN {
        s = (t1 - t0) / 1e9; if (s <= 0) s = 1e-9
        printf "%s %.0f %.3f\n", m, n / s, ticks / hz * 1e6 / n }' >>"$3"
    rm -f "$out"
}
