#!/usr/bin/env bash
# deps/librdkafka.sh: builds librdkafka from Debian's source package into a
# static library, for deps/librdkafka.mk (which says why and when).
#
#   deps/librdkafka.sh VERSION SUITE DEST
#
# VERSION is the upstream version (2.8.0), SUITE the Debian release whose
# source package carries it (trixie).  The source comes through apt, so the
# .dsc and tarballs are checked against the suite's signed Release file
# (debian-archive-keyring): nothing unsigned is built.  The Debian revision
# is whatever SUITE has of VERSION (2.8.0-1 when this was written; a stable
# point release may add +deb13uN, a security fix we then want): the pin is
# the upstream version, and the revision built is printed and recorded.
#
# DEST receives include/librdkafka/{rdkafka.h,rdkafka_mock.h},
# lib/librdkafka.a and BUILT (version, Debian revision, features); DEST is
# replaced only once everything is built, so an interrupted build is never
# taken for a finished one.  Needs root for apt (the Makefile runs it as
# root, as it runs apt-get for the Debian packages).
set -euo pipefail

VERSION=${1:?usage: librdkafka.sh VERSION SUITE DEST}
SUITE=${2:?usage: librdkafka.sh VERSION SUITE DEST}
DEST=${3:?usage: librdkafka.sh VERSION SUITE DEST}
LIST=/etc/apt/sources.list.d/userpipe-librdkafka-src.sources
# the system libraries librdkafka is configured against (OpenSSL, Cyrus
# SASL, zstd, lz4, zlib, libcurl for OIDC) and dpkg-dev for dpkg-source
BUILD_PKGS="build-essential pkg-config dpkg-dev libssl-dev libsasl2-dev \
libzstd-dev liblz4-dev zlib1g-dev libcurl4-openssl-dev"

start=$(date +%s)
say() {
    echo "librdkafka: $* ($(($(date +%s) - start)) s)"
}

missing=""
for p in $BUILD_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done

# Source lines only (Types: deb-src): no binary package of SUITE can be
# installed through this list, so the Debian 12 system stays Debian 12.
want_list="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
updated=0
if [ "$(cat "$LIST" 2>/dev/null)" != "$want_list" ]; then
    echo "$want_list" >"$LIST"
    apt-get update -qq
    updated=1
fi
if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    [ $updated -eq 1 ] || apt-get update -qq
    updated=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# the newest Debian revision of VERSION in SUITE's sources
revision() {
    apt-cache showsrc librdkafka 2>/dev/null |
        awk -v v="$VERSION" '$1 == "Version:" && index($2, v "-") == 1 { print $2 }' |
        sort -V | tail -n 1
}
deb_version=$(revision)
if [ -z "$deb_version" ] && [ $updated -eq 0 ]; then
    apt-get update -qq
    deb_version=$(revision)
fi
if [ -z "$deb_version" ]; then
    echo "librdkafka: Debian $SUITE has no source package of librdkafka $VERSION;" \
        "apt-cache showsrc librdkafka lists what it has: change RDKAFKA_VERSION in" \
        "deps/librdkafka.mk to one of them" >&2
    exit 1
fi

work=$DEST.work
rm -rf "$work"
mkdir -p "$work"
say "fetching librdkafka $deb_version from Debian $SUITE (apt verifies it)"
# apt's download sandbox user cannot write into a root-owned build tree
chmod 0777 "$work"
(cd "$work" && apt-get source -qq "librdkafka=$deb_version" >source.log 2>&1) || {
    cat "$work/source.log" >&2
    exit 1
}
src=$work/librdkafka-$VERSION
[ -d "$src" ] || {
    echo "librdkafka: apt-get source made no $src" >&2
    exit 1
}

say "configuring"
# Every feature is required, not tried: a missing -dev package fails here
# with configure's sentence instead of a librdkafka without TLS or SASL.
# --no-download: mklove fetches nothing; the dependencies are Debian's.
(cd "$src" && ./configure --prefix=/nonexistent --no-download \
    --enable-ssl --enable-gssapi --enable-zstd --enable-lz4-ext \
    --enable-zlib --enable-curl >"$work/configure.log" 2>&1) || {
    tail -n 40 "$work/configure.log" >&2
    exit 1
}
say "compiling src/librdkafka.a"
make -C "$src/src" -j"$(nproc)" librdkafka.a >"$work/make.log" 2>&1 || {
    tail -n 40 "$work/make.log" >&2
    exit 1
}

out=$work/out
mkdir -p "$out/include/librdkafka" "$out/lib"
cp "$src/src/rdkafka.h" "$src/src/rdkafka_mock.h" "$out/include/librdkafka/"
cp "$src/src/librdkafka.a" "$out/lib/"
{
    echo "version=$VERSION"
    echo "debian=$deb_version"
    echo "suite=$SUITE"
    sed -n 's/^#define BUILT_WITH "\(.*\)"$/built_with=\1/p' "$src/config.h"
} >"$out/BUILT"
rm -rf "$DEST"
mv "$out" "$DEST"
rm -rf "$work"
say "built $DEST/lib/librdkafka.a from Debian's librdkafka $deb_version"
