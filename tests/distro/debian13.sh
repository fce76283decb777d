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
#      it (root.complete), and apt-get installs there what PKGS (below) lacks;
#   2. the work tree's files as git sees them (tracked and untracked, not
#      ignored; never build/) copied afresh to /src in the chroot;
#   3. `make debian13-inner` in the chroot (tests/distro/distro.mk): the
#      build, every unit test and DEB13_E2E through tests/run-all.sh.
#
# The chroot is in DEB13_DIR, outside the work tree, and build/debian13 is
# a symbolic link to it; only /proc is mounted into it, and unmounted on
# any exit (tests/lib/debootstrap.sh, shared with `make image-test`, says
# why).
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

DEBOOT_SAY=debian13
. "$ROOT/tests/lib/debootstrap.sh"
say() { deboot_say "$@"; }
die() { deboot_die "$@"; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
trap deboot_unmount EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

deboot_link "$DIR" "$ROOT/build/debian13"
t0=$SECONDS
# the marker of a finished debootstrap was $DIR/.complete before the
# helper's $CH.complete: keep an existing chroot
[ ! -e "$DIR/.complete" ] || [ -e "$CH.complete" ] || mv "$DIR/.complete" "$CH.complete"
deboot_make trixie "$CH" "$MIRROR"
deboot_proc "$CH"
cp /etc/resolv.conf "$CH/etc/resolv.conf"
inch() { deboot_in "$CH" "$@"; }
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

worktree_copy "$ROOT" "$CH/src"
say "make debian13-inner in the chroot (the build, the unit tests, $E2E on kafka-dev)"
t2=$SECONDS
inch sh -c "cd /src && make --no-print-directory -j$(nproc) all && make --no-print-directory debian13-inner DEB13_E2E='$E2E'" ||
    die "the build or a test failed in the Debian 13 chroot ($((SECONDS - t2)) s; the logs: $CH/src/build/release/test-logs)"
say "passed in $((SECONDS - t2)) s (whole run $((SECONDS - t0)) s)"
