#!/bin/sh
# Makes sure the build packages are installed (Debian 12).  Quiet and fast
# when they are; installs them with apt-get when run as root; otherwise
# prints the exact command to run.
pkgs="libevent libevent_pthreads jansson inih libsystemd zlib libzstd check"
debs="build-essential pkg-config libevent-dev libjansson-dev libinih-dev libsystemd-dev zlib1g-dev libzstd-dev check"
missing=""
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"
command -v cc >/dev/null 2>&1 || missing="$missing cc"
if [ -z "$missing" ]; then
    for p in $pkgs; do
        pkg-config --exists "$p" || missing="$missing $p"
    done
fi
# --test: also what the test suite needs.  promtool (Debian's prometheus
# package) validates the /metrics exposition and the example alert rules;
# it is installed without recommends and without starting its service.
test_debs=""
if [ "${1:-}" = "--test" ] && ! command -v promtool >/dev/null 2>&1; then
    missing="$missing promtool"
    test_debs="prometheus"
fi
# util-linux logger (Debian: bsdutils) is the syslog client of the syslog
# and framing integration tests.
if [ "${1:-}" = "--test" ] && ! command -v logger >/dev/null 2>&1; then
    missing="$missing logger"
    test_debs="$test_debs bsdutils"
fi
[ -z "$missing" ] && exit 0
echo "deps: missing:$missing" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $debs >/dev/null || exit 1
    if [ -n "$test_debs" ]; then
        policy=/usr/sbin/policy-rc.d
        made_policy=""
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
        fi
        apt-get install -y -qq --no-install-recommends $test_debs >/dev/null
        rc=$?
        [ -n "$made_policy" ] && rm -f "$policy"
        [ "$rc" = 0 ] || exit 1
    fi
    echo "deps: installed $debs $test_debs" >&2
    exit 0
fi
echo "deps: run: sudo apt-get install -y $debs${test_debs:+; sudo apt-get install -y --no-install-recommends $test_debs}" >&2
exit 1
