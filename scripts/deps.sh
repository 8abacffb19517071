#!/bin/sh
# Makes sure the build packages are installed (Debian 12).  Quiet and fast
# when they are; installs them with apt-get when run as root; otherwise
# prints the exact command to run.
pkgs="libevent libevent_pthreads jansson inih libsystemd check"
debs="build-essential pkg-config libevent-dev libjansson-dev libinih-dev libsystemd-dev check"
missing=""
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"
command -v cc >/dev/null 2>&1 || missing="$missing cc"
if [ -z "$missing" ]; then
    for p in $pkgs; do
        pkg-config --exists "$p" || missing="$missing $p"
    done
fi
[ -z "$missing" ] && exit 0
echo "deps: missing:$missing" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $debs >/dev/null || exit 1
    echo "deps: installed $debs" >&2
    exit 0
fi
echo "deps: run: sudo apt-get install -y $debs" >&2
exit 1
