#!/bin/sh
# Makes sure the build packages are installed (Debian 12).  Quiet and fast
# when they are; installs them with apt-get when run as root; otherwise
# prints the exact command to run.
pkgs="libevent libevent_pthreads libevent_openssl jansson inih libsystemd zlib libzstd relp openssl libisal libnats check"
debs="build-essential pkg-config libevent-dev libjansson-dev libinih-dev libsystemd-dev zlib1g-dev libzstd-dev librelp-dev libssl-dev libisal-dev libnats-dev check"
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
need_ng=""
if [ "${1:-}" = "--test" ]; then
    if ! command -v promtool >/dev/null 2>&1; then
        missing="$missing promtool"
        test_debs="prometheus"
    fi
    # ---- syslog test peers (issue 12): the ONE list of the syslog tests'
    # Debian packages.  rsyslog runs as a client in the tests (omfwd; omrelp
    # from rsyslog-relp; TLS from rsyslog-gnutls), started by hand on
    # loopback with a private config, never as a service.  util-linux logger
    # (bsdutils) is the client of the syslog, framing and unix tests.
    # syslog-ng conflicts with rsyslog: it is unpacked into a private prefix
    # by scripts/syslog-ng-private.sh instead.
    syslog_test_debs="rsyslog rsyslog-relp rsyslog-gnutls"
    if ! command -v logger >/dev/null 2>&1; then
        missing="$missing logger"
        test_debs="$test_debs bsdutils"
    fi
    for d in $syslog_test_debs; do
        if ! dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q ' installed$'; then
            missing="$missing $d"
            test_debs="$test_debs $d"
        fi
    done
    if [ ! -x "${SYSLOG_NG_PREFIX:-/opt/sluice-bench/syslog-ng}/usr/sbin/syslog-ng" ]; then
        missing="$missing syslog-ng(private)"
        need_ng=1
    fi
    # ---- end of the syslog test peers
fi
# --deb (make deb) and --test (tests/deb/check_deb.sh): debhelper builds the
# package, lintian checks it; adduser is what the package's postinst uses.
case "${1:-}" in
--test | --deb)
    if ! command -v dh >/dev/null 2>&1 || ! command -v lintian >/dev/null 2>&1 ||
        ! command -v adduser >/dev/null 2>&1; then
        missing="$missing debhelper/lintian/adduser"
        test_debs="$test_debs debhelper lintian adduser"
    fi
    ;;
esac
# The openssl command line makes the TLS tests' certificates.
if [ "${1:-}" = "--test" ] && ! command -v openssl >/dev/null 2>&1; then
    missing="$missing openssl"
    test_debs="$test_debs openssl"
fi
# nats-server: the NATS tests start their own servers on loopback (never
# the packaged service, which the policy below keeps from starting).
if [ "${1:-}" = "--test" ] && ! command -v nats-server >/dev/null 2>&1; then
    missing="$missing nats-server"
    test_debs="$test_debs nats-server"
fi
# A system rsyslogd/syslog-ng (one not started with a private "-f CONF", as
# the tests and benchmarks start theirs): apt must never have started one.
system_syslog() {
    for p in $(pidof rsyslogd syslog-ng 2>/dev/null); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -e ' -f ' || echo "$p"
    done
}
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
        sys=$(system_syslog)
        if [ -n "$sys" ]; then
            echo "deps: ERROR: a system syslog daemon runs after installing $test_debs (pid $sys):" \
                "the tests start their own rsyslogd; stop that service yourself" >&2
            exit 1
        fi
    fi
    if [ -n "$need_ng" ]; then
        sh "$(dirname "$0")/syslog-ng-private.sh" || exit 1
    fi
    echo "deps: installed $debs $test_debs" >&2
    exit 0
fi
echo "deps: run: sudo apt-get install -y $debs${test_debs:+; sudo apt-get install -y --no-install-recommends $test_debs}${need_ng:+; sudo sh scripts/syslog-ng-private.sh}" >&2
exit 1
