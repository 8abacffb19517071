#!/bin/sh
# scripts/syslog-ng-private.sh [PREFIX] — unpacks syslog-ng into a private
# prefix (default $SYSLOG_NG_PREFIX, else /opt/sluice-bench/syslog-ng), for
# the integration tests (scripts/deps.sh --test) and the benchmarks
# (bench/peers/install.sh).  The one place that knows how.
#
# syslog-ng-core and rsyslog conflict as Debian packages, and the tests and
# benchmarks need both, so syslog-ng-core is fetched with `apt-get download`
# and unpacked with `dpkg-deb -x` into PREFIX; the libraries its Depends:
# line names come from apt (libraries only: nothing apt installs here has a
# service).  Nothing is written to /etc, no service is started.  Run it from
# the prefix with
#   LD_LIBRARY_PATH=PREFIX/usr/lib/syslog-ng PREFIX/usr/sbin/syslog-ng \
#     --module-path=PREFIX/usr/lib/syslog-ng/3.38 -F -f CONF -p PID -R PERSIST -c CTL
#
# Needs root (apt).  Idempotent: exits 0 at once when PREFIX has syslog-ng.
set -eu

PREFIX=${1:-${SYSLOG_NG_PREFIX:-/opt/sluice-bench/syslog-ng}}
[ -x "$PREFIX/usr/sbin/syslog-ng" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "syslog-ng-private.sh: needs root to unpack syslog-ng-core into $PREFIX" >&2
    exit 1
fi

DL=
cleanup() {
    [ -n "$DL" ] && rm -rf "$DL"
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-cache show syslog-ng-core >/dev/null 2>&1 || apt-get update -q >/dev/null
# Depends: of syslog-ng-core, minus the alternatives apt resolves itself.
deps=$(apt-cache show syslog-ng-core | awk -F': ' '/^Depends:/ { print $2; exit }' |
    tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/^ *//; s/ *$//' | grep -v '^$' |
    grep -v -e '^libc6$' -e '^sysvinit-utils$' -e '^lsb-base$' | tr '\n' ' ')
# shellcheck disable=SC2086 # a list of package names
apt-get install -y -q --no-install-recommends $deps >/dev/null
DL=$(mktemp -d /tmp/sluice-syslog-ng.XXXXXX)
chmod 0755 "$DL" # apt-get download runs as _apt
(cd "$DL" && apt-get download -q syslog-ng-core >/dev/null 2>&1)
mkdir -p "$PREFIX"
dpkg-deb -x "$DL"/syslog-ng-core_*.deb "$PREFIX"
[ -x "$PREFIX/usr/sbin/syslog-ng" ] || {
    echo "syslog-ng-private.sh: $PREFIX/usr/sbin/syslog-ng missing after unpacking" >&2
    exit 1
}
echo "syslog-ng-private.sh: syslog-ng-core unpacked into $PREFIX" >&2
