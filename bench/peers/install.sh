#!/bin/sh
# bench/peers/install.sh — installs the benchmark peers without touching the
# system's services or /etc of a running syslog.
#
#   rsyslog     with apt (its Debian package brings imptcp, imudp, mmjsonparse)
#   syslog-ng   conflicts with rsyslog as a Debian package, so syslog-ng-core
#               is unpacked into PREFIX (default /opt/sluice-bench/syslog-ng)
#               by scripts/syslog-ng-private.sh, the one place that knows how
#               (the integration tests use the same prefix)
#   gnuplot     gnuplot-nox, for `make bench-report`
#
# A temporary /usr/sbin/policy-rc.d that exits 101 keeps apt from starting
# rsyslog as a service while it installs; it is removed afterwards unless
# one was there before.  If apt started a system rsyslogd anyway, this
# script does not stop it: it says so, and bench/peers.sh refuses to run.
#
# Needs root.  Idempotent: does nothing that is already done.
# Prints, on its last line, the shell assignments bench/lib.sh reads:
#   SYSLOG_NG_PREFIX=...
set -eu

PREFIX=${SYSLOG_NG_PREFIX:-/opt/sluice-bench/syslog-ng}
POLICY=/usr/sbin/policy-rc.d
ours_policy=

need_apt=
command -v rsyslogd >/dev/null 2>&1 || need_apt="$need_apt rsyslog"
command -v gnuplot >/dev/null 2>&1 || need_apt="$need_apt gnuplot-nox"
have_ng=
[ -x "$PREFIX/usr/sbin/syslog-ng" ] && have_ng=1

if [ -z "$need_apt" ] && [ -n "$have_ng" ]; then
    echo "SYSLOG_NG_PREFIX=$PREFIX"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "peers/install.sh: needs root to install:$need_apt ${have_ng:-syslog-ng-core}" >&2
    exit 1
fi

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    [ -n "$ours_policy" ] && rm -f "$POLICY"
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    ours_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
if [ -n "$need_apt" ]; then
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -q --no-install-recommends $need_apt >/dev/null
fi

if [ -z "$have_ng" ]; then
    sh "$(dirname "$0")/../../scripts/syslog-ng-private.sh" "$PREFIX"
fi

if pgrep -x rsyslogd >/dev/null 2>&1 || pgrep -x syslog-ng >/dev/null 2>&1; then
    echo "peers/install.sh: note: a syslog daemon is running (not started by this script)" >&2
fi
echo "SYSLOG_NG_PREFIX=$PREFIX"
