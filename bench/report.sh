#!/bin/sh
# bench/report.sh — the `make bench-report` driver: regenerates
# docs/performance.md and its plots (docs/img/*.png, drawn by gnuplot) from
# the result files in $RESULTS (default bench/results), without running
# any benchmark.  The result files are written by bench/peers.sh,
# bench/scaling.sh and bench/cost.sh (make bench-peers, bench-scaling,
# bench-cost) and are committed, so the doc can be rebuilt anywhere.
#
# The prose of the page lives here, next to the numbers it explains; the
# page itself is generated: edit this script, not docs/performance.md.
# Needs gnuplot (Debian: gnuplot-nox) for the plots; without it the page is
# still written and the plots are left as they are.
set -u
. "$(dirname "$0")/lib.sh" # median

RESULTS=${RESULTS:-bench/results}
DOC=${DOC:-docs/performance.md}
IMG=${IMG:-docs/img}

die() {
    echo "bench-report: $*" >&2
    exit 1
}
for f in peers.txt peers-throughput.tsv peers-rate.tsv peers-udp.tsv scaling-conns.tsv \
    scaling-size.tsv scaling-size-runs.tsv scaling-threads.tsv scaling-idle.tsv cost.txt cost-rate.tsv cost-mem.tsv; do
    [ -r "$RESULTS/$f" ] || die "$RESULTS/$f is missing: run make bench-peers, bench-scaling and bench-cost"
done
mkdir -p "$IMG"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-report.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

KINDS="baseline sluiced rsyslog syslog-ng rsyslog-json syslog-ng-json"

# median over the ok rows of FILE where column KC is KIND, of column C
med() { # FILE KC KIND C [FRAMING: column KC-1 must be it]
    awk -v kc="$2" -v k="$3" -v c="$4" -v f="${5:-}" '$kc == k && $(kc + 1) == "ok" &&
        (f == "" || $(kc - 1) == f) { print $c }' "$1" | median
}
rate() { # KIND RATE FIELD
    awk -v k="$1" -v r="$2" -v c="$3" '$1 == k && $2 == "ok" && $3 == r { v = $c }
        END { print (v == "" ? "-" : v) }' "$RESULTS/peers-rate.tsv"
}
fmt() { # printf-format VALUE (passes "-" through)
    if [ "$2" = "-" ] || [ -z "$2" ]; then echo "-"; else awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; fi
}
us() { # a latency in microseconds, written in us or ms
    if [ "$1" = "-" ]; then echo "-"; else
        awk -v v="$1" 'BEGIN { if (v >= 10000) printf "%.0f ms", v / 1000;
            else if (v >= 1000) printf "%.1f ms", v / 1000; else printf "%.0f µs", v }'
    fi
}

# ---------------------------------------------------------------- plots
plot() {
    command -v gnuplot >/dev/null 2>&1 || {
        echo "bench-report: gnuplot not found: plots not redrawn" >&2
        return 0
    }
    # Throughput against connections, one line per receiver.
    have=
    for k in $KINDS; do
        awk -v k="$k" '$2 == k && $3 == "ok" { print $1, $4 }' "$RESULTS/scaling-conns.tsv" >"$TMP/conns-$k.dat"
        [ -s "$TMP/conns-$k.dat" ] && have="$have $k"
    done
    cat >"$TMP/conns.gp" <<EOF
set terminal pngcairo size 900,560 font ",11"
set output "$IMG/throughput-connections.png"
set title "TCP -> file, closed loop, 230-byte JSON events: throughput by connections"
set xlabel "TCP connections"
set ylabel "events/s"
set logscale xy
set format y "%.0s%c"
set xtics (1, 4, 16, 64, 256, 512)
set grid
set key outside right
plot for [k in "$have"] "$TMP/conns-".k.".dat" using 1:2 with linespoints lw 2 title k
EOF
    gnuplot "$TMP/conns.gp" || echo "bench-report: gnuplot failed (connections)" >&2

    # Latency CDFs at 10 k and 100 k events/s.
    for r in 10000 100000; do
        list=
        for k in $KINDS; do
            [ -r "$RESULTS/latency-$k-$r.cdf" ] && list="$list $k"
        done
        cat >"$TMP/cdf-$r.gp" <<EOF
set terminal pngcairo size 900,560 font ",11"
set output "$IMG/latency-cdf-$((r / 1000))k.png"
set title "End-to-end latency at $((r / 1000)) k events/s (intended send -> visible in the file)"
set xlabel "latency (µs, log scale)"
set ylabel "fraction of events at or below (percentile scale)"
set logscale xy
set yrange [1:100000]
set ytics ("0" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000)
set grid
set key outside right
# y = 1 / (1 - F): the tail gets as much room as the body.
plot for [k in "$list"] "$RESULTS/latency-".k."-$r.cdf" using 1:(\$2 < 0.99999 ? 1 / (1 - \$2) : 1 / 0) with steps lw 2 title k
EOF
        gnuplot "$TMP/cdf-$r.gp" || echo "bench-report: gnuplot failed (cdf $r)" >&2
    done

    # MB/s against event size, sluiced and the baseline.
    for k in baseline sluiced; do
        awk -v k="$k" '$2 == k && $3 == "ok" { print $1, $5 }' "$RESULTS/scaling-size.tsv" >"$TMP/size-$k.dat"
    done
    cat >"$TMP/size.gp" <<EOF
set terminal pngcairo size 900,480 font ",11"
set output "$IMG/throughput-size.png"
set title "TCP -> file, closed loop, 4 connections: MB/s by event size"
set xlabel "event size (bytes)"
set ylabel "MB/s"
set logscale x
set xtics (64, 230, 1024, 4096, 16384)
set grid
set key top left
plot "$TMP/size-baseline.dat" using 1:2 with linespoints lw 2 title "baseline", \\
     "$TMP/size-sluiced.dat" using 1:2 with linespoints lw 2 title "sluiced"
EOF
    gnuplot "$TMP/size.gp" || echo "bench-report: gnuplot failed (size)" >&2
}
plot

# ---------------------------------------------------------------- tables
TP=$RESULTS/peers-throughput.tsv
S_EPS=$(med "$TP" 2 sluiced 4)
N_EV=$(awk '/^load:/ { for (i = 1; i <= NF; i++) if ($i == "loop") { print $(i + 1); exit } }' "$RESULTS/peers.txt")
REPS=$(awk '!/^#/ { print $1 }' "$TP" | sort -n | tail -1)

peers_table() {
    echo "| receiver | events/s | vs sluiced | CPU µs/event | peak RSS | p50 @10k/s | p99 @10k/s | p99 @100k/s | CPU @1k/s | CPU @10k/s | CPU @100k/s | idle wake-ups/s | runs ok |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for k in $KINDS; do
        eps=$(med "$TP" 2 "$k" 4)
        cpu=$(med "$TP" 2 "$k" 6)
        rss=$(med "$TP" 2 "$k" 7)
        ok=$(awk -v k="$k" '$2 == k && $3 == "ok"' "$TP" | wc -l)
        ratio=$(awk -v e="$eps" -v s="$S_EPS" 'BEGIN { if (e == "-" || s == "-") print "-"; else printf "%.2f×", e / s }')
        cpe=$(awk -v c="$cpu" -v n="$N_EV" 'BEGIN { if (c == "-") print "-"; else printf "%.2f", c * 1e6 / n }')
        wk=$(awk -v k="$k" '$1 == k && $2 == "ok" { print $4 }' "$RESULTS/peers-idle.tsv" 2>/dev/null)
        printf '| %s | %s | %s | %s | %s MiB | %s | %s | %s | %s %% | %s %% | %s %% | %s | %s/%s |\n' \
            "$k" "$(fmt '%.0f' "$eps")" "$ratio" "$cpe" "$rss" "$(us "$(rate "$k" 10000 4)")" \
            "$(us "$(rate "$k" 10000 6)")" "$(us "$(rate "$k" 100000 6)")" "$(rate "$k" 1000 9)" \
            "$(rate "$k" 10000 9)" "$(rate "$k" 100000 9)" "${wk:--}" "$ok" "$REPS"
    done
}

udp_table() {
    echo "| receiver | highest rate with zero loss | first lossy rate (events lost of those sent) |"
    echo "|---|---:|---|"
    for k in sluiced-udp rsyslog-udp syslog-ng-udp; do
        best=$(udp_best "$k")
        [ "$best" != "-" ] || continue
        lossy=$(awk -v k="$k" '$1 == k && $2 == "FAILED" { for (i = 3; i <= NF; i++) if ($i ~ /^missing=/) m = substr($i, 9);
            for (i = 3; i <= NF; i++) if ($i ~ /^expected=/) e = substr($i, 10); r = e / 3; for (i = 3; i <= NF; i++) if ($i ~ /^rate=/) r = substr($i, 6)
            printf "%d/s: %d of %d lost", r, m, e; exit }' "$RESULTS/peers-udp.tsv")
        printf '| %s | %s | %s |\n' "$k" "$best" "${lossy:-none up to the sender limit}"
    done
}

# syslog_table: bench/peers-syslog.sh's medians, one row per framing and receiver.
SY=$RESULTS/peers-syslog.tsv
syslog_table() {
    echo "| framing | receiver | messages/s | vs sluiced | CPU µs/message | peak RSS | runs ok |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    reps=$(awk '!/^#/ { print $1 }' "$SY" | sort -n | tail -1)
    for f in octet lf; do
        s=$(med "$SY" 3 sluiced-syslog 5 "$f")
        for k in sluiced-syslog rsyslog-syslog syslog-ng-syslog; do
            eps=$(med "$SY" 3 "$k" 5 "$f")
            cpu=$(med "$SY" 3 "$k" 7 "$f")
            rss=$(med "$SY" 3 "$k" 8 "$f")
            ok=$(awk -v f="$f" -v k="$k" '$2 == f && $3 == k && $4 == "ok"' "$SY" | wc -l)
            [ "$ok" -gt 0 ] || [ "$(awk -v f="$f" -v k="$k" '$2 == f && $3 == k' "$SY" | wc -l)" -gt 0 ] || continue
            printf '| %s | %s | %s | %s | %s | %s | %s/%s |\n' \
                "$([ "$f" = octet ] && echo "octet-counted" || echo "newline")" "$k" \
                "$(fmt '%.0f' "$eps")" \
                "$(awk -v e="$eps" -v s="$s" 'BEGIN { if (e == "-" || s == "-") print "-"; else printf "%.2f×", e / s }')" \
                "$(awk -v c="$cpu" -v n="$SY_N" 'BEGIN { if (c == "-") print "-"; else printf "%.2f", c * 1e6 / n }')" \
                "$(fmt '%s MiB' "$rss")" "$ok" "$reps"
        done
    done
}
# syslog_ratio FRAMING: sluiced's median over the faster peer's, or "-".
syslog_ratio() {
    [ -r "$SY" ] || { echo "-"; return; }
    s=$(med "$SY" 3 sluiced-syslog 5 "$1")
    b=$(for k in rsyslog-syslog syslog-ng-syslog; do med "$SY" 3 "$k" 5 "$1"; done | grep -v '^-$' | sort -g | tail -1)
    awk -v s="$s" -v b="$b" 'BEGIN { if (s == "-" || b + 0 == 0) print "-"; else printf "%.2f", s / b }'
}

conns_table() {
    printf '| receiver |'
    for c in 1 4 16 64 256 512; do printf ' %s |' "$c"; done
    echo
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for k in $KINDS; do
        printf '| %s |' "$k"
        for c in 1 4 16 64 256 512; do
            v=$(awk -v c="$c" -v k="$k" '$1 == c && $2 == k { print ($3 == "ok") ? sprintf("%.0f", $4) : "FAILED" }' "$RESULTS/scaling-conns.tsv")
            printf ' %s |' "${v:--}"
        done
        echo
    done
}

# The per-round ratios of SIZE (scaling-size-runs.tsv: one baseline and one
# sluiced run per round), sorted, as "0.93 0.98 ... 1.15"; empty without
# the file.
size_rounds() { # SIZE
    [ -f "$RESULTS/scaling-size-runs.tsv" ] || return 0
    awk -v s="$1" '!/^#/ && $1 == s && $4 == "ok" { e[$2 " " $3] = $5; r[$2] = 1 } END {
        for (i in r) if (e[i " baseline"] && e[i " sluiced"]) printf "%.2f\n", e[i " sluiced"] / e[i " baseline"] }' \
        "$RESULTS/scaling-size-runs.tsv" | sort -g | tr '\n' ' ' | sed 's/ $//'
}

size_table() {
    echo "| event size | baseline events/s | baseline MB/s | sluiced events/s | sluiced MB/s | sluiced / baseline | each round's ratio, sorted |"
    echo "|---:|---:|---:|---:|---:|---:|---|"
    for s in 64 230 1024 4096 16384; do
        awk -v s="$s" -v rounds="$(size_rounds "$s")" '$1 == s && $3 == "ok" { e[$2] = $4; m[$2] = $5 } END {
            printf "| %d B | %.0f | %.0f | %.0f | %.0f | %.2f× | %s |\n", s, e["baseline"], m["baseline"], e["sluiced"], m["sluiced"],
                e["baseline"] ? e["sluiced"] / e["baseline"] : 0, rounds }' "$RESULTS/scaling-size.tsv"
    done
}

threads_table() {
    echo "| connections | producer_threads = 1 | 2 | 4 |"
    echo "|---:|---:|---:|---:|"
    for c in 4 64; do
        awk -v c="$c" '$1 == c { v[$2] = ($4 == "ok") ? sprintf("%.0f", $5) : "FAILED" } END {
            printf "| %d | %s | %s | %s |\n", c, v[1], v[2], v[4] }' "$RESULTS/scaling-threads.tsv"
    done
}

idle_table() {
    echo "| idle connections | sluiced RSS | per connection |"
    echo "|---:|---:|---:|"
    base=$(awk '$1 == 0 && $2 == "ok" { print $3 }' "$RESULTS/scaling-idle.tsv")
    awk -v b="${base:-0}" '!/^#/ { if ($2 != "ok") { printf "| %d | FAILED | |\n", $1; next }
        printf "| %d | %.1f MiB | %s |\n", $1, $3 / 1024, $1 ? sprintf("%.2f KiB", ($3 - b) / $1) : "-" }' \
        "$RESULTS/scaling-idle.tsv"
}

# CPU and latency at a fixed rate (cost-rate.tsv, bench/cost.sh): one row
# per run, its round last (a file without the round column is one round).
CR=$RESULTS/cost-rate.tsv
cost_med() { # KIND RATE COLUMN: the median over KIND's ok runs at RATE
    awk -v k="$1" -v r="$2" -v c="$3" '$1 == k && $2 == "ok" && $3 == r { print $c }' "$CR" | median
}
cost_ratio() { # RATE COLUMN: the median of the per-round ratios (lib.sh cost_ratios), "%.2f" or "-"
    m=$(cost_ratios "$CR" "$1" "$2" | median)
    fmt '%.2f' "$m"
}
cost_rounds() { # RATE COLUMN: the per-round ratios sorted, as "0.93 0.98 ... 1.15"
    cost_ratios "$CR" "$1" "$2" | sorted_list
}
COST_ROUNDS=$(awk '$1 == "#" && $2 == "params" { print $4 }' "$CR")
COST_LOAD=$(awk '$1 == "#" && $2 == "params" { print $6 }' "$CR")

cost_table() {
    echo "| rate | rounds | baseline CPU (% of one core) | sluiced CPU | sluiced / baseline | each round's ratio, sorted | sluiced µs per event | baseline p99 | sluiced p99 | p99 sluiced / baseline | each round's p99 ratio, sorted |"
    echo "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"
    for r in 1000 10000 100000; do
        sc=$(cost_med sluiced "$r" 9)
        printf '| %d/s | %s | %s %% | %s %% | %s× | %s | %s | %s | %s | %s | %s |\n' "$r" \
            "$(cost_ratios "$CR" "$r" 9 | wc -l)" "$(fmt '%.2f' "$(cost_med baseline "$r" 9)")" "$(fmt '%.2f' "$sc")" \
            "$(cost_ratio "$r" 9)" "$(cost_rounds "$r" 9)" \
            "$(awk -v c="$sc" -v r="$r" 'BEGIN { if (c == "-") print "-"; else printf "%.1f", c * 1e4 / r }')" \
            "$(us "$(cost_med baseline "$r" 6)")" "$(us "$(cost_med sluiced "$r" 6)")" \
            "$(cost_ratio "$r" 6)" "$(cost_rounds "$r" 6)"
    done
}

# cost_method: what the "CPU at a fixed rate" figures are.
cost_method() {
    if [ -z "$COST_ROUNDS" ]; then
        echo "One run of each receiver per rate (the results predate the rounds)."
        return
    fi
    cat <<EOF
At 10 k and 100 k events/s every figure is the median of $COST_ROUNDS interleaved
rounds (\`BENCH_COST_ROUNDS\`): each round runs the baseline and sluiced back to
back, the order swapped every other round, so load from elsewhere on the
machine falls on both alike. The ratios are the medians of the per-round
ratios sluiced ÷ baseline (each round's ratio is listed, sorted), not ratios
of the medians; 1 k/s is one round of 20 s. Every run is a row of
[\`cost-rate.tsv\`](../bench/results/cost-rate.tsv), its round last; load
average at the start $COST_LOAD. One run each said little here: two quiet
runs of the same code gave sluiced ÷ baseline CPU at 100 k/s of 0.99 and 1.22.
EOF
}

section() { # FILE: the file's lines from the first line matching $2 to the first blank line
    awk -v pat="$2" 'index($0, pat) == 1 { on = 1 } on && /^$/ { exit } on { print }' "$1"
}

SY_N=$(awk '/^load:/ { for (i = 1; i <= NF; i++) if ($i == "loop") { print $(i + 1); exit } }' "$RESULTS/peers-syslog.txt" 2>/dev/null)
MACHINE=$(awk -F': ' '/^machine:/ { print $2; exit }' "$RESULTS/peers.txt")
VERSIONS=$(awk -F': ' '/^versions:/ { print $2; exit }' "$RESULTS/peers.txt")
WHEN=$(awk 'NR == 1 { print $3, $4 }' "$RESULTS/peers.txt")
RAW_BEST=$(for k in rsyslog syslog-ng; do med "$TP" 2 "$k" 4; done | grep -v '^-$' | sort -g | tail -1)
JSON_BEST=$(for k in rsyslog-json syslog-ng-json; do med "$TP" 2 "$k" 4; done | grep -v '^-$' | sort -g | tail -1)
R_RAW=$(awk -v s="$S_EPS" -v r="$RAW_BEST" 'BEGIN { if (s == "-" || r + 0 == 0) print "-"; else printf "%.2f", s / r }')
R_JSON=$(awk -v s="$S_EPS" -v r="$JSON_BEST" 'BEGIN { if (s == "-" || r + 0 == 0) print "-"; else printf "%.1f", s / r }')
verdict() { # VALUE OP TARGET
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "-") { print "not measured"; exit }
        ok = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0)
        if (ok) print "**met**"; else { m = (op == "<=") ? v / t : t / v; printf (m < 1.1 ? "**missed** by %.2f×\n" : "**missed** by %.1f×\n"), m } }'
}
P99_100K=$(rate sluiced 100000 6)
B_P99_100K=$(rate baseline 100000 6)
CPU_10K=$(cost_med sluiced 10000 9)
B_CPU_10K=$(cost_med baseline 10000 9)
IDLE_WK=$(awk '$1 == "idle_wakeups" { print $4 }' "$RESULTS/cost-mem.tsv")
# Issue 16: sluiced / baseline events/s by event size (scaling-size.tsv) and
# CPU and p99 at a rate (cost-rate.tsv: the medians of the per-round
# ratios), each against the baseline of the same run.
size_ratio() { # SIZE
    awk -v s="$1" '$1 == s && $3 == "ok" { e[$2] = $4 } END {
        print (e["baseline"] && e["sluiced"]) ? sprintf("%.2f", e["sluiced"] / e["baseline"]) : "-" }' \
        "$RESULTS/scaling-size.tsv"
}
SR_64=$(size_ratio 64)
SR_230=$(size_ratio 230)
SR_1K=$(for s in 1024 4096 16384; do size_ratio "$s"; done | sort -g | head -1)
CR_10K=$(cost_ratio 10000 9)
CR_100K=$(cost_ratio 100000 9)
CR_MAX=$(printf '%s\n%s\n' "$CR_10K" "$CR_100K" | sort -g | tail -1)
PR_100K=$(cost_ratio 100000 6)
if [ -n "$COST_ROUNDS" ]; then
    COST_ROUNDS_TEXT="$COST_ROUNDS interleaved rounds"
    COST_RATIO_TEXT="the median of the per-round ratios of $COST_ROUNDS_TEXT"
else
    COST_ROUNDS_TEXT="one run each"
    COST_RATIO_TEXT="one run each"
fi
RSS_FULL=$(awk '$1 == "full_load" && $3 == "ok" { print $4 }' "$RESULTS/cost-mem.tsv")
# durability_section: the "Durability" section from durability.tsv and
# durability.txt (bench/durability.sh, make bench-durability); nothing when
# they are absent.
DU=$RESULTS/durability.tsv
dur_kind() { # KIND: what the setup is
    # shellcheck disable=SC2016 # backquotes are Markdown here
    case $1 in
    sluiced-disk) echo 'sluiced: tcp source (`codec = json`) → `type = disk` queue (`fsync = interval`) → file' ;;
    sluiced-disk-fwd) echo 'sluiced edge: tcp source → disk queue (`fsync = interval`) → `sluice` sink → sluiced aggregator: `sluice` source → file' ;;
    rsyslog-disk) echo 'rsyslog: imptcp → action queue `queue.type="Disk"` (no `syncQueueFiles`, no checkpoints) → omfile' ;;
    rsyslog-da) echo 'rsyslog: imptcp → action queue `LinkedList` + `queue.filename` (disk-assisted: in memory until its high watermark, 90 % of 100,000 events, then on disk) → omfile' ;;
    syslog-ng-disk) echo 'syslog-ng: network() → network() destination with `disk-buffer(reliable(yes))` → a second syslog-ng: network() → file()' ;;
    sluiced-fwd-tcp) echo 'sluiced edge: tcp source → memory queue → `tcp` sink → sluiced aggregator: `tcp` source → file (no acks)' ;;
    sluiced-fwd-acked) echo 'sluiced edge: tcp source → memory queue → `sluice` sink → sluiced aggregator: `sluice` source → file (acked)' ;;
    rsyslog-relp) echo 'rsyslog: imtcp → omrelp (`windowSize="1024"`, LinkedList action queue) → rsyslog: imrelp → omfile' ;;
    esac
}
dur_ratio() { # A B: median events/s of A over B's
    awk -v a="$(med "$DU" 2 "$1" 4)" -v b="$(med "$DU" 2 "$2" 4)" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
dur_rounds() { # A B: "; per round ..." as bench/durability.sh printed it
    awk -v p="  $1/$2:" 'index($0, p) == 1 { i = index($0, "per round: ");
        if (i) print "; per round " substr($0, i + 11); exit }' "$RESULTS/durability.txt"
}
dur_table() { # KIND...
    echo "| setup | events/s (median) | CPU s (all processes) | peak RSS MB (sum) | runs ok |"
    echo "|---|---:|---:|---:|---:|"
    for k in "$@"; do
        n=$(awk -v k="$k" '$2 == k && $3 == "ok" { n++ } $2 == k { t++ } END { printf "%d of %d", n, t }' "$DU")
        printf '| %s | %s | %s | %s | %s |\n' "$(dur_kind "$k")" "$(fmt %.0f "$(med "$DU" 2 "$k" 4)")" \
            "$(med "$DU" 2 "$k" 5)" "$(med "$DU" 2 "$k" 6)" "$n"
    done
}
# diskq_section: the disk queue against the memory queue and the start with
# a large backlog, from diskq.txt (bench/diskq.sh); nothing when absent.
dq_start() { # warm|cold FIELD(ready|listen|hwm): the median of the starts
    awk -v w="$1" -v f="$2" '$1 == "start" && $2 == w {
        v = (f == "ready") ? $6 : (f == "listen") ? $10 : $13 / 1024; print v }' "$RESULTS/diskq.txt" |
        sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-";
        else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
dq_n() { # warm|cold: how many starts
    awk -v w="$1" '$1 == "start" && $2 == w { n++ } END { print n + 0 }' "$RESULTS/diskq.txt"
}
diskq_section() {
    dq=$RESULTS/diskq.txt
    [ -r "$dq" ] || return 0
    r_dm=$(awk '$1 == "throughput," { print $5 }' "$dq")
    mib=$(awk '$1 == "recovery" { gsub(/\(/, "", $2); print $2 }' "$dq")
    w_ready=$(dq_start warm ready)
    c_ready=$(dq_start cold ready)
    w_hwm=$(dq_start warm hwm)
    c_hwm=$(dq_start cold hwm)
    cat <<EOF
### Disk queue against the memory queue, and a start with a 2 GiB backlog

\`make bench-diskq\` (\`bench/diskq.sh\`), measured $(awk 'NR == 1 { print $3, $4 }' "$dq")
($(awk -F': ' '/^versions:/ { print $2; exit }' "$dq"); load average at the start:
$(awk -F': ' '/^load average/ { print $2; exit }' "$dq")). $(sed -n 's/^load: /Load: /p' "$dq").

| figure | memory queue | disk queue (\`fsync = interval\`) | disk ÷ memory |
|---|---:|---:|---:|
| TCP → queue → file, events/s | $(fmt %.0f "$(awk '$1 == "throughput," { print $3 }' "$dq")") | $(fmt %.0f "$(awk '$1 == "throughput," { print $4 }' "$dq")") | **${r_dm:--}** (target ≥ 0.50: $(verdict "${r_dm:--}" ">=" 0.5)) |
| peak RSS at full load, MB | $(awk '$1 == "peak" { print $7 }' "$dq") | $(awk '$1 == "peak" { print $8 }' "$dq") | |

Start with a ${mib} MiB backlog (\`bench/diskq_recovery\`: 256 KiB records of 200-byte
events in 64 MiB segments, no state file; the sink held so that only the start is
measured; time from exec to READY=1 on a private \`NOTIFY_SOCKET\`, and to the TCP
source accepting a connection; peak RSS is VmHWM). "Cold": the backlog's pages were
dropped from the page cache before the start (\`posix_fadvise(DONTNEED)\` on its files
only).

| page cache | starts | READY=1 (median) | listening (median) | peak RSS (median) |
|---|---:|---:|---:|---:|
| warm | $(dq_n warm) | $(fmt '%.3f s' "$w_ready") | $(fmt '%.3f s' "$(dq_start warm listen)") | $(fmt '%.1f MiB' "$w_hwm") |
| cold | $(dq_n cold) | $(fmt '%.3f s' "$c_ready") | $(fmt '%.3f s' "$(dq_start cold listen)") | $(fmt '%.1f MiB' "$c_hwm") |

- Issue 17: "a restart with a 2 GiB backlog starts in well under a second and does not
  read the backlog into memory". Memory: peak RSS $(fmt '%.1f MiB' "$c_hwm") with the backlog
  on disk. Time to READY=1: warm $(fmt '%.2f s' "$w_ready") ($(verdict "$w_ready" "<=" 0.5) against 0.5 s),
  cold $(fmt '%.2f s' "$c_ready") ($(verdict "$c_ready" "<=" 0.5) against 0.5 s). A cold start reads one record
  header per 256 KiB record for the batch tags (\`disk_scan_tags\` in
  \`src/queue/backlog_disk.c\`, one \`pread\` each: 8,192 random reads for 2 GiB);
  see bench/results/analysis.md.

Raw: [\`diskq.txt\`](../bench/results/diskq.txt).
EOF
}

durability_section() {
    [ -r "$DU" ] && [ -r "$RESULTS/durability.txt" ] || return 0
    dt=$RESULTS/durability.txt
    r_rd=$(dur_ratio sluiced-disk rsyslog-disk)
    r_rda=$(dur_ratio sluiced-disk rsyslog-da)
    r_sd=$(dur_ratio sluiced-disk syslog-ng-disk)
    r_sfd=$(dur_ratio sluiced-disk-fwd syslog-ng-disk)
    r_relp=$(dur_ratio sluiced-fwd-acked rsyslog-relp)
    r_ack=$(dur_ratio sluiced-fwd-acked sluiced-fwd-tcp)
    cat <<EOF
## Durability

Disk queues and acknowledged forwarding against the peers' equivalents
(\`make bench-durability\`, \`bench/durability.sh\`). $(sed -n 's/^load: /Load: /p' "$dt"); every
setup runs once per round, so the setups alternate on the shared machine.
Ratios: of the medians, and per round (median, min–max) — the pairs of
one round ran seconds apart.
Measured $(awk 'NR == 1 { print $3, $4 }' "$dt") ($(awk -F': ' '/^versions:/ { print $2; exit }' "$dt");
$(awk -F': ' '/^machine:/ { print $2; exit }' "$dt"); load average at the start:
$(awk -F': ' '/^load average/ { print $2; exit }' "$dt"), the machine shared with other work:
the absolute figures are noisy, the ratios within the run are the result).
A figure counts only if \`bench/follow\` saw every sequence number exactly
once in the final file. **sluiced validates every event as JSON; the peers
pass the raw lines through without parsing them.** Throughput is events
over the time from the first send to the last write of the final file.

### TCP → disk queue → file

$(dur_table sluiced-disk sluiced-disk-fwd rsyslog-disk rsyslog-da syslog-ng-disk)

- sluiced disk queue ÷ rsyslog \`Disk\` queue: **${r_rd}×**$(dur_rounds sluiced-disk rsyslog-disk) (target ≥ 3×: $(verdict "$r_rd" ">=" 3)).
- sluiced disk queue ÷ syslog-ng \`disk-buffer(reliable(yes))\`: **${r_sd}×**$(dur_rounds sluiced-disk syslog-ng-disk) (target ≥ 3×: $(verdict "$r_sd" ">=" 3));
  like for like, both as edge → disk queue → forward → a second daemon → file: **${r_sfd}×**$(dur_rounds sluiced-disk-fwd syslog-ng-disk) ($(verdict "$r_sfd" ">=" 3) against 3× too).
- sluiced disk queue ÷ rsyslog disk-assisted memory queue: ${r_rda}×$(dur_rounds sluiced-disk rsyslog-da) (mostly a memory
  queue: it writes to disk only above its high watermark; how much it spilled
  per run is not recorded — a 100,000-event check run wrote no queue file).

syslog-ng's disk-buffer exists only on network destinations, so its
pipeline needs a receiver; a second syslog-ng writes the file, and
sluiced's like-for-like row does the same with a second sluiced. rsyslog's
disk queue is configured for its speed, not for sluiced's guarantee: it
never fsyncs (\`queue.syncQueueFiles="off"\`) and writes its bookkeeping only
at shutdown, whereas sluiced's \`fsync = interval\` syncs at least every
\`fsync_interval\` (500 ms). The disk queue against sluiced's own memory
queue and the start with a 2 GiB backlog: [below](#disk-queue-against-the-memory-queue-and-a-start-with-a-2-gib-backlog).

$(diskq_section)

### Acknowledged forwarding: edge → aggregator

$(dur_table sluiced-fwd-acked sluiced-fwd-tcp rsyslog-relp)

- sluiced acked (\`sluice\` sink → \`sluice\` source) ÷ rsyslog omrelp → imrelp: **${r_relp}×**$(dur_rounds sluiced-fwd-acked rsyslog-relp) (goal ≥ 5×: $(verdict "$r_relp" ">=" 5)).
- sluiced acked ÷ sluiced plain \`tcp\` forward, same run: **${r_ack}**$(dur_rounds sluiced-fwd-acked sluiced-fwd-tcp) (target ≥ 0.90: $(verdict "$r_ack" ">=" 0.9)).

Raw: [\`durability.txt\`](../bench/results/durability.txt), [\`durability.tsv\`](../bench/results/durability.tsv)
(one line per run: round, setup, events/s, CPU s, RSS MB, seconds).

EOF
}

# udp_best KIND: the highest zero-loss rate, or ">= SENT/s (sender limit)"
# when loadgen could not keep that rate's timetable.
udp_best() {
    b=$(awk -v k="$1" '$1 == "#" && $2 == "best" && $3 == k { print $4 }' "$RESULTS/peers-udp.tsv")
    [ -n "$b" ] || { echo "-"; return; }
    awk -v k="$1" -v b="$b" '$1 == k && $2 == "ok" && $3 == b { s = $11 } END {
        if (s != "" && s < 0.95 * b) printf "≥ %.0f events/s (the sender'"'"'s limit: no loss up to there)", s
        else printf "%d events/s", b }' "$RESULTS/peers-udp.tsv"
}
UDP_S=$(udp_best sluiced-udp)
UDP_R=$(udp_best rsyslog-udp)
UDP_N=$(udp_best syslog-ng-udp)
STALL=$(awk '$1 == "stalled" { printf "%s%d MiB queue: peak %.1f MiB (%+.1f MiB)", sep, $2, $5, $5 - $2; sep = "; " }' "$RESULTS/cost-mem.tsv")
STALL_OK=$(awk '$1 == "stalled" && ($3 != "ok" || $5 - $2 > 8) { bad = 1 } END { print bad ? "**missed**" : "**met**" }' "$RESULTS/cost-mem.tsv")

{
    cat <<EOF
# Performance

<!-- Generated by bench/report.sh (make bench-report) from bench/results/.
     Edit the script, not this file. -->

How much faster is sluiced than what you run today, and what does it cost?
Every figure below was measured on one machine, with rsyslog and syslog-ng
configured for their best throughput, fed the same load in the same
invocation. Run it yourself:

\`\`\`sh
make bench           # headline: sluiced vs a bare recv->write loop, one table (~1.5 min)
make bench-peers     # + rsyslog and syslog-ng, installed with apt when run as root (~10 min)
make bench-scaling   # connections, event size, producer_threads, idle connections (~5 min)
make bench-cost      # CPU at fixed rates, idle wake-ups, RSS at load and while stalled (~7 min)
make bench-report    # this page and its plots, from bench/results/ (seconds)
\`\`\`

The machine: $MACHINE. Versions: $VERSIONS. Peers' figures measured $WHEN.
The machine is a shared 2-vCPU VM (other work runs on it, and loadgen and
the reader share the two cores with the receiver), so absolute figures move
15–30 % between runs minutes apart: **read the ratios against the baseline
and the peers of the same run**, not absolute numbers across tables.

## Targets

| target | measured | verdict |
|---|---|---|
| TCP→file with every event validated ≥ 3× the best peer's raw pass-through | sluiced $(fmt '%.0f' "$S_EPS") events/s vs best raw peer $(fmt '%.0f' "$RAW_BEST") = **${R_RAW}×** | $(verdict "$R_RAW" ">=" 3) |
| ≥ 10× the peers with JSON parsing | vs best JSON-parsing peer $(fmt '%.0f' "$JSON_BEST") = **${R_JSON}×** | $(verdict "$R_JSON" ">=" 10) |
| end-to-end p99 ≤ 2 ms at 100 k events/s | sluiced $(us "$P99_100K") (bare baseline in the same run: $(us "$B_P99_100K")) | $(verdict "$P99_100K" "<=" 2000) |
| ≤ 2 % of one core at 10 k events/s | $(fmt '%.1f' "$CPU_10K") % (bare baseline: $(fmt '%.1f' "$B_CPU_10K") %) | $(verdict "$CPU_10K" "<=" 2) |
| ≤ 1 wake-up per second when idle | $IDLE_WK per second | $(verdict "$IDLE_WK" "<=" 1) |
| TCP→file, 230-byte events, every event validated: ≥ 0.75× the bare loop's events/s (issue 16) | **${SR_230}×** (see [Event size](#event-size)) | $(verdict "$SR_230" ">=" 0.75) |
| the same with 64-byte events ≥ 0.6× | **${SR_64}×** | $(verdict "$SR_64" ">=" 0.6) |
| 1 KiB and up ≥ 1.0× | lowest of 1, 4, 16 KiB: **${SR_1K}×** | $(verdict "$SR_1K" ">=" 1) |
| CPU at 10 k and 100 k events/s ≤ 1.2× the bare loop's | ${CR_10K}× and ${CR_100K}× ($COST_RATIO_TEXT; see [CPU at a fixed rate](#cpu-at-a-fixed-rate)) | $(verdict "$CR_MAX" "<=" 1.2) |
| p99 end-to-end latency at 100 k events/s no worse than the bare loop's in the same run (issue 16) | sluiced ÷ baseline **${PR_100K}** ($COST_RATIO_TEXT: $(cost_rounds 100000 6); p99 medians $(us "$(cost_med sluiced 100000 6)") vs $(us "$(cost_med baseline 100000 6)"), \`make bench-cost\`) | $(verdict "$PR_100K" "<=" 1.0) |
| peak RSS ≤ 30 MB at full load, default configuration | $RSS_FULL MiB | $(verdict "$RSS_FULL" "<=" 30) |
| RSS bounded by queue capacity + a constant under overload | sink stalled: $STALL | $STALL_OK |
| syslog (RFC 5424) over TCP → parsed JSON ≥ 3× the faster peer | octet-counted $(syslog_ratio octet)×, newline $(syslog_ratio lf)× (see [Syslog](#syslog-over-tcp--json)) | $(verdict "$(syslog_ratio octet)" ">=" 3) / $(verdict "$(syslog_ratio lf)" ">=" 3) |
| UDP: highest rate with zero loss, against rsyslog imudp | sluiced $UDP_S; rsyslog $UDP_R; syslog-ng $UDP_N | see [UDP](#udp) |

The misses and what is in the way are discussed under [Where the time goes](#where-the-time-goes).

## Method

- **Load** (\`bench/loadgen\`): realistic JSON log records of 230 bytes by
  default (64 B … 16 KiB), each carrying \`"seq"\` (every sequence number is
  sent exactly once over all connections) and \`"sent_ns"\`, its *intended*
  send time. Closed loop sends as fast as the receiver takes (64 KiB
  writes). Open loop (\`-r RATE\`) puts event *k* on a timetable at
  start + k/RATE; a sender held up by the receiver sends late but keeps the
  intended time, so a stalled receiver cannot hide latency (no coordinated
  omission). Sends happen on ticks 100 µs apart (\`-g 100\`: per-event
  \`send(2)\` at 100 k/s would cost the sender a whole core on this machine);
  the wait for the tick counts as latency.
- **Verification and latency** (\`bench/follow\`): reads the output file as
  it grows (inotify, like \`tail -F\`), checks every line is an object and
  every sequence number arrives exactly once, and takes latency = the
  moment the line was read minus \`sent_ns\`, into a histogram of ~3 %
  buckets (p50/p90/p99/p99.9/max and the CDF). A run whose output is
  incomplete or duplicated gives no figure.
- **Throughput** = events / (first send → the output file's last write, its
  mtime once every event was seen). Receiver CPU is utime+stime from
  \`/proc/PID/stat\` (CPU at a fixed rate: \`schedstat\` of all threads over
  the sending window); peak RSS is \`VmHWM\`; wake-ups are voluntary context
  switches of all threads. CPU and p99 at a fixed rate
  ([Cost](#cpu-at-a-fixed-rate)) at 10 k and 100 k events/s come from
  $COST_ROUNDS_TEXT of the baseline and sluiced: the medians of the runs,
  and for the ratios sluiced ÷ baseline the medians of the per-round ratios.
- **Free memory, the same for every run** (\`bench/lib.sh\` \`mem_warm\`,
  \`mem_settle\`; bench/README.md): this VM hands freed guest pages back to
  the host, and writing into a page the host took back costs ~10× more, so
  a closed-loop run first writes and removes a file a little larger than
  its output (it then writes into pages freed a moment before, as on a
  machine without a hypervisor), and a fixed-rate run first waits until
  the page reporting is idle. Before 2026-12-07 neither was done, and a
  run's place in the sequence decided its figure more than the receiver
  did (bench/results/analysis.md, "(memwarm)"); the tls and forward
  drivers' two-hop runs take the step too, the nats and durability drivers
  run loops of their own without it.
- **Receivers** (\`bench/lib.sh\`), each on a free loopback port with a
  private config and work folder, stopped by PID:
  - *baseline*: \`bench/baseline\`, one epoll thread, 64 KiB reads written
    straight to the file (cut at the last newline so the file verifies): the
    ceiling, with no framing or validation.
  - *sluiced*: the default configuration, \`codec = json\` (every event is
    validated), one file sink.
  - *rsyslog*: imptcp (2 threads) → LinkedList ruleset queue (100,000,
    dequeue batch 1024) → omfile (1 MiB buffer), template \`%rawmsg%\\n\`;
    *rsyslog-json* adds mmjsonparse and writes \`%\$!all-json-plain%\`.
  - *syslog-ng*: network tcp \`flags(no-parse)\` → file \`\$MSG\\n\`, threaded,
    flow control, log-fifo 100,000; *syslog-ng-json* adds json-parser and
    writes \`\$(format-json --key .json.* --shift 6)\`.
  - peers are installed by \`bench/peers/install.sh\` (rsyslog from apt;
    syslog-ng-core, which conflicts with rsyslog as a package, unpacked with
    \`dpkg-deb -x\` into a private prefix), with apt kept from starting any
    service; no system service runs during a benchmark, and nothing in
    \`/etc\` is read or written.

## TCP → file: throughput, latency and CPU, side by side

$(sed -n 's/^load: /Load: /p' "$RESULTS/peers.txt"). Medians of $REPS
interleaved runs. "vs sluiced" is the receiver's events/s divided by
sluiced's. CPU at a fixed rate is % of one core.

$(peers_table)

![throughput by connections](img/throughput-connections.png)

### Latency

The CDF of end-to-end latency (intended send → visible in the file). A
receiver that cannot keep up with the rate shows latency growing for the
whole run (its CDF moves to seconds).

![latency CDF at 10k events/s](img/latency-cdf-10k.png)

![latency CDF at 100k events/s](img/latency-cdf-100k.png)

## UDP

One socket, one 230-byte event per datagram, 3 s per rate, rates doubling
from 25 k/s, then one step between the last clean and the first lossy rate.
Every receiver asks for a 4 MiB receive buffer (the kernel caps it at
\`net.core.rmem_max\` = $(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo '?') here).

$(udp_table)

## Syslog over TCP → JSON

$(if [ -r "$SY" ]; then cat <<EOS
RFC 5424 messages of 230 bytes (timestamp with milliseconds, hostname,
appname, procid, msgid, one structured-data element, and
\`seq=N sent_ns=T …\` as the message) over 4 TCP connections, closed loop
(\`loadgen -y\`, and \`-O\` for octet-counted framing), $SY_N messages per
run; each receiver writes one JSON object of the parsed fields per message
and the output is verified (every sequence number exactly once) before a
figure counts (\`make bench-peers-syslog\`, also run by \`make bench-peers\`).
Receivers: *sluiced-syslog* is \`codec = syslog\` (framing \`auto\`) into one
file sink; *rsyslog-syslog* is imptcp → omfile with a list template of the
parsed fields (\`option.jsonf\`; rsyslog keeps structured data as one
string, sluiced and syslog-ng nest it); *syslog-ng-syslog* is \`syslog()\`
(octet-counted) or \`network(flags(syslog-protocol))\` (newline) → \`file()\`
with \`\$(format-json …)\` of the same fields, \`frac-digits(6)\`. Peer
tuning as in the TCP table. Measured $(awk 'NR == 1 { print $3, $4 }' "$RESULTS/peers-syslog.txt"),
on the shared machine ($(awk -F': ' '/^versions:/ { print $2; exit }' "$RESULTS/peers-syslog.txt")).

$(syslog_table)

Target: sluiced ≥ 3× the faster peer, producing parsed JSON: octet-counted
**$(syslog_ratio octet)×** ($(verdict "$(syslog_ratio octet)" ">=" 3)), newline
**$(syslog_ratio lf)×** ($(verdict "$(syslog_ratio lf)" ">=" 3)).
EOS
else
    echo "Not measured yet: run \`make bench-peers-syslog\`."
fi)

## Scaling

Closed loop, one run per point (every output verified).

### Connections

Events/s by number of TCP connections:

$(conns_table)

### Event size

$(awk '$1 == "#" && $2 == "params" { b = $4; n = $6; la = $8 } END {
    if (b == "") { print "4 connections (the run did not record its parameters)."; exit }
    printf "4 connections; each run moves ~%.0f MB (at most BENCH_SIZE_EVENTS events).\n", b / 1e6
    printf "Each point: the median of %d interleaved rounds of each receiver (the two swap places every\n", n
    printf "other round; every run in scaling-size-runs.tsv); load average at the start %s.\n", la }' \
    "$RESULTS/scaling-size.tsv")
The baseline is a single thread,
so with large events (where the per-byte cost dominates) sluiced's
producer threads and writer overtake it.

$(size_table)

![MB/s by event size](img/throughput-size.png)

### producer_threads

sluiced events/s (closed loop, 230-byte events):

$(threads_table)

The machine has 2 vCPUs, shared with loadgen's two sender threads and the
writer; the default is one producer thread per CPU.

## Cost

### CPU at a fixed rate

Open loop, 4 connections, 230-byte events (\`make bench-cost\`).
$(cost_method)

$(cost_table)

### Memory

$(awk '/^sluiced idle/ || /^sluiced peak RSS/ { print "- " $0 }' "$RESULTS/cost.txt")
- Overload: the sink stalled (\`SLUICE_TEST_STALL_FILE\`) while 4 connections
  send 1,000,000 events as fast as they can. TCP sources pause at 7/8 of
  the queue; the senders block; nothing is lost:

\`\`\`
$(section "$RESULTS/cost.txt" "sink stalled")
\`\`\`

Idle connections (each sent one event, then stayed quiet; \`max_connections = 20000\`):

$(idle_table)

$(durability_section)

## Micro-benchmarks

Each row next to a baseline measured in the same run (\`bench/micro_validate\`,
\`bench/micro_handoff\`; single core unless stated):

\`\`\`
$(cat "$RESULTS/micro.txt" 2>/dev/null)
\`\`\`

EOF
    # Hand-written: the syslog codec's micro-benchmark (bench/micro_syslog).
    if [ -r "$RESULTS/micro-syslog.md" ]; then
        cat "$RESULTS/micro-syslog.md"
        echo
    fi
    # Hand-written: the profiles behind the misses (bench/profile.sh).
    if [ -r "$RESULTS/analysis.md" ]; then
        cat "$RESULTS/analysis.md"
    fi
    # Hand-written: the NATS sink's run (bench/nats.sh).
    if [ -r "$RESULTS/nats.md" ]; then
        echo
        cat "$RESULTS/nats.md"
    fi
    # Hand-written: TLS on the forward hop (bench/tls.sh, two runs).
    if [ -r "$RESULTS/tls.md" ]; then
        echo
        cat "$RESULTS/tls.md"
    fi
    cat <<EOF

## Raw reports

The tables above are made from these files, written by the drivers:
[\`peers.txt\`](../bench/results/peers.txt), [\`scaling.txt\`](../bench/results/scaling.txt),
[\`cost.txt\`](../bench/results/cost.txt) and the \`.tsv\` / \`.cdf\` files beside them.
EOF
} >"$TMP/performance.md"
mv "$TMP/performance.md" "$DOC"
echo "bench-report: wrote $DOC and $IMG/*.png" >&2
