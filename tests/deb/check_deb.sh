#!/bin/sh
# check_deb — the Debian package (debian/, `make deb`): lintian reports no
# errors, and dpkg -i / dpkg -r / dpkg -P round-trip cleanly without
# starting a daemon.
#
# Root only (dpkg installs into the real /usr, /etc and /var); skips with a
# message otherwise, and also when this machine has a sluice installed
# already (a package, or `make install` into /usr or /etc), which it never
# touches.  A policy-rc.d that forbids service starts is in place for the
# whole test (and removed after, if this test made it); this machine has no
# systemd as PID 1, and the test checks that no /usr/sbin/sluiced process
# ran.  After dpkg -P nothing named *sluice* is left outside dpkg's own
# database except the system user _sluice (kept, as is Debian practice:
# files it owns may remain elsewhere; see debian/sluice.postrm).
#
# Run: sh tests/deb/check_deb.sh  (from the checkout root; `make check` runs it)
set -u
top=${SLUICE_TOP:-.}
cd "$top" || exit 1
fail=0
say() { echo "check_deb: $*"; }
bad() {
    say "FAIL: $*"
    fail=1
}

if [ "$(id -u)" != 0 ]; then
    say "skipped: needs root (dpkg -i/-r/-P)"
    exit 0
fi
if ! command -v dpkg >/dev/null 2>&1; then
    say "skipped: not a Debian system (no dpkg)"
    exit 0
fi
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q "installed\|config-files"; then
    say "skipped: a sluice package is installed here; this test never touches it"
    exit 0
fi
for f in /usr/sbin/sluiced /usr/bin/sluice /etc/sluice /etc/logrotate.d/sluice \
    /lib/systemd/system/sluiced.service /var/lib/sluice /var/log/sluice; do
    if [ -e "$f" ]; then
        say "skipped: $f exists (a sluice installed by hand); this test never touches it"
        exit 0
    fi
done

# Build the package (debhelper; objects in build/deb-obj).
log=$(mktemp /tmp/check_deb.XXXXXX)
if ! make --no-print-directory deb >"$log" 2>&1; then
    tail -30 "$log"
    bad "make deb failed (log above)"
    rm -f "$log"
    exit 1
fi
rm -f "$log"
deb=$(ls -t build/sluice_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || {
    bad "make deb made no build/sluice_*.deb"
    exit 1
}
say "built $deb"

# lintian: no errors (warnings are printed for the reader).
if ! lintian --fail-on error --allow-root "$deb"; then
    bad "lintian reports errors"
fi

# The package's contents, without installing.
contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/sluiced ./usr/bin/sluice ./usr/share/man/man1/sluice.1.gz \
    ./usr/share/man/man8/sluiced.8.gz ./usr/share/man/man5/sluice.conf.5.gz \
    ./lib/systemd/system/sluiced.service ./lib/systemd/system/sluiced.socket \
    ./lib/systemd/system/sluiced-udp.socket ./etc/sluice/sluice.conf \
    ./etc/logrotate.d/sluice ./usr/share/doc/sluice/copyright ./usr/share/doc/sluice/operations.md \
    ./usr/share/doc/sluice/changelog.gz; do
    echo "$contents" | grep -q " $f\$" || bad "$deb lacks $f"
done
conffiles=$(dpkg-deb -f "$deb" Package >/dev/null && dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles 2>/dev/null)
for f in /etc/sluice/sluice.conf /etc/logrotate.d/sluice; do
    echo "$conffiles" | grep -qx "$f" || bad "$f is not a conffile (conffiles: $conffiles)"
done

# Names that exist now: after the purge, exactly these may exist.
snapshot() {
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /work \
        -o -path /var/lib/dpkg -o -path /var/cache -o -path /var/tmp -o -path /run \
        -o -path "$(pwd)" \) -prune -o -name '*sluice*' -print 2>/dev/null | sort
}
before=$(snapshot)

policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# check_deb: no service starts during the test\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made_policy=1
fi
cleanup() {
    if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q "installed\|config-files"; then
        DEBIAN_FRONTEND=noninteractive dpkg -P sluice >/dev/null 2>&1
    fi
    [ -n "$made_policy" ] && rm -f "$policy"
}
trap cleanup EXIT INT TERM

running() {
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/sluiced ] && return 0
    done
    return 1
}

# --- dpkg -i ---
if ! DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"; then
    bad "dpkg -i failed"
    exit 1
fi
dpkg-query -W -f='${Status}\n' sluice | grep -qx "install ok installed" || bad "not installed"
[ -x /usr/sbin/sluiced ] && [ -x /usr/bin/sluice ] || bad "binaries missing"
getent passwd _sluice >/dev/null || bad "no system user _sluice"
uid=$(getent passwd _sluice | cut -d: -f3)
[ -n "$uid" ] && [ "$uid" -lt 1000 ] || bad "_sluice is not a system user (uid $uid)"
getent group _sluice >/dev/null || bad "no group _sluice"
for d in /var/lib/sluice /var/log/sluice; do
    [ "$(stat -c %U:%G "$d" 2>/dev/null)" = _sluice:_sluice ] || bad "$d not owned by _sluice"
done
grep -qx 'User=_sluice' /lib/systemd/system/sluiced.service || bad "the unit does not run as _sluice"
grep -q '^ExecStart=/usr/sbin/sluiced ' /lib/systemd/system/sluiced.service || bad "ExecStart path"
out=$(/usr/bin/sluice check -c /etc/sluice/sluice.conf 2>&1) || bad "sluice check of the shipped config: $out"
out=$(/usr/sbin/sluiced -n -c /etc/sluice/sluice.conf 2>&1) || bad "sluiced -n of the shipped config: $out"
dpkg-query -W -f='${Conffiles}\n' sluice | grep -q ' /etc/sluice/sluice.conf ' ||
    bad "dpkg does not list /etc/sluice/sluice.conf as a conffile"
running && bad "a /usr/sbin/sluiced process runs after dpkg -i (policy-rc.d should forbid it)"

# --- dpkg -r: the conffiles stay ---
printf '\n; edited by check_deb\n' >>/etc/sluice/sluice.conf
DEBIAN_FRONTEND=noninteractive dpkg -r sluice || bad "dpkg -r failed"
dpkg-query -W -f='${Status}\n' sluice | grep -qx "deinstall ok config-files" || bad "state after -r"
[ -e /usr/sbin/sluiced ] || [ -e /usr/bin/sluice ] && bad "binaries left after dpkg -r"
[ -e /lib/systemd/system/sluiced.service ] && bad "unit left after dpkg -r"
grep -q 'edited by check_deb' /etc/sluice/sluice.conf 2>/dev/null || bad "dpkg -r removed the edited conffile"

# --- dpkg -P: nothing left but the user ---
DEBIAN_FRONTEND=noninteractive dpkg -P sluice || bad "dpkg -P failed"
dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q "installed\|config-files" && bad "still known to dpkg"
after=$(snapshot)
if [ "$before" != "$after" ]; then
    bad "left behind after dpkg -P:"
    printf '%s\n' "$after" | grep -vxF "$before"
fi
getent passwd _sluice >/dev/null || bad "the _sluice user went (expected to stay)"
running && bad "a /usr/sbin/sluiced process ran"

if [ "$fail" = 0 ]; then
    say "ok: lintian clean of errors; dpkg -i / -r / -P round trip; nothing left but the _sluice user"
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
fi
exit "$fail"
