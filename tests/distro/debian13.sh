#!/usr/bin/env bash
# debian13.sh: `make test-debian13` (issue 13, item 5).  Builds userpipe in
# a Debian 13 (trixie) chroot and runs there the unit tests and two
# end-to-end tests on kafka-dev: the same librdkafka 2.8.0, built from the
# same source package (deps/librdkafka.mk), against Debian 13's OpenSSL,
# libcurl, libmicrohttpd and yajl.
# Not in CI: the first run downloads about 150 MB of packages.
#
#   1. debootstrap --variant=minbase trixie into DEB13_DIR/root once
#      (installs debootstrap from Debian where missing); later runs reuse
#      it (.complete), and apt-get installs there what PKGS (below) lacks;
#   2. the work tree's files as git sees them (tracked and untracked, not
#      ignored; never build/) copied afresh to /src in the chroot;
#   3. `make debian13-inner` in the chroot (tests/distro/distro.mk): the
#      build, every unit test and DEB13_E2E through tests/run-all.sh.
#
# The chroot is not in build/ itself but in DEB13_DIR, outside the work
# tree, and build/debian13 is a symbolic link to it: the root Makefile
# includes every `find build -name '*.d'`, which would name the chroot's
# /etc/*.d folders and stop every make ("Is a directory"); find does not
# follow the link, and `make clean` removes the link only.
#
# Only /proc is mounted into the chroot (debootstrap makes its /dev nodes;
# loopback is the host's network), and it is unmounted on any exit, so
# `make clean` never walks into a host file system.
#
# Env: DEB13_DIR (/var/tmp/userpipe-debian13-<work tree folder name>), DEB13_MIRROR (http://deb.debian.org/debian),
# DEB13_E2E (tests/e2e/test_run_pipeline.sh tests/e2e/test_run_fetch_backoff.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${DEB13_DIR:-/var/tmp/userpipe-debian13-${ROOT##*/}}
CH=$DIR/root
MIRROR=${DEB13_MIRROR:-http://deb.debian.org/debian}
E2E=${DEB13_E2E:-tests/e2e/test_run_pipeline.sh tests/e2e/test_run_fetch_backoff.sh}
# the build's and the chosen tests' packages (the root Makefile's DEB_PKGS
# less what only the deploy tests and the benchmark use)
PKGS="build-essential pkg-config dpkg-dev libssl-dev libsasl2-dev libzstd-dev liblz4-dev
libyajl-dev libcurl4-openssl-dev
libcmocka-dev libmicrohttpd-dev libdeflate-dev zlib1g-dev kcat python3
python3-kafka curl procps time ca-certificates"

say() { printf 'debian13: %s\n' "$*"; }
die() {
    say "FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"

mounted=0
cleanup() {
    if [ "$mounted" = 1 ]; then
        umount "$CH/proc" || umount -l "$CH/proc" || say "could not unmount $CH/proc" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi
mkdir -p "$DIR" "$ROOT/build"
[ -L "$ROOT/build/debian13" ] || [ ! -e "$ROOT/build/debian13" ] ||
    die "$ROOT/build/debian13 exists and is no link: its /etc/*.d folders stop make; remove it"
ln -sfn "$DIR" "$ROOT/build/debian13"
t0=$SECONDS
if [ ! -e "$DIR/.complete" ]; then
    rm -rf "$CH"
    say "debootstrap --variant=minbase trixie $CH $MIRROR (log: $DIR/debootstrap.log)"
    debootstrap --variant=minbase trixie "$CH" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 ||
        { tail -n 20 "$DIR/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
    touch "$DIR/.complete"
    say "debootstrap took $((SECONDS - t0)) s"
fi
mount -t proc proc "$CH/proc"
mounted=1
cp /etc/resolv.conf "$CH/etc/resolv.conf"
inch() {
    chroot "$CH" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
# shellcheck disable=SC2086 # PKGS is a list
missing=$(inch dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null |
    awk '$NF != "installed" { print $1 }' || true)
# dpkg-query prints nothing for a package it never heard of
for p in $PKGS; do
    inch dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"
done
missing=$(tr ' ' '\n' <<<"$missing" | sort -u | xargs)
if [ -n "$missing" ]; then
    say "apt-get install in the chroot: $missing (log: $DIR/apt.log)"
    t1=$SECONDS
    # shellcheck disable=SC2086
    { inch apt-get update -qq && inch apt-get install -y -qq --no-install-recommends $missing; } \
        >"$DIR/apt.log" 2>&1 || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install failed (log above)"; }
    say "apt-get took $((SECONDS - t1)) s"
fi
say "$(inch sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(inch sh -c 'cc --version | head -n 1')"

rm -rf "$CH/src"
mkdir -p "$CH/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' |
    xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$CH/src"
say "make debian13-inner in the chroot (the build, the unit tests, $E2E on kafka-dev)"
t2=$SECONDS
inch sh -c "cd /src && make --no-print-directory -j$(nproc) all && make --no-print-directory debian13-inner DEB13_E2E='$E2E'" ||
    die "the build or a test failed in the Debian 13 chroot ($((SECONDS - t2)) s; the logs: $CH/src/build/release/test-logs)"
say "passed in $((SECONDS - t2)) s (whole run $((SECONDS - t0)) s)"
