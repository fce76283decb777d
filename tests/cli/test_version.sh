#!/usr/bin/env bash
# test_version.sh: `userpipe --version` exits 0 and prints
# "userpipe X.Y.Z (librdkafka A.B.C)" with the version of core/version.h and
# the librdkafka that deps/librdkafka.mk builds and links statically (the
# binary needs no librdkafka.so: ldd names none), the one place it is spelled (the
# User-Agent userpipe/X.Y.Z of the sink's requests is checked at moesif-dev
# by tests/e2e/test_run_pipeline.sh).  Env: USERPIPE.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERPIPE=${USERPIPE:-$ROOT/build/userpipe}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

want=$(sed -n 's/^#define USERPIPE_VERSION "\(.*\)"$/\1/p' "$ROOT/core/version.h")
[ -n "$want" ] || fail "core/version.h defines no USERPIPE_VERSION"
set +e
out=$("$USERPIPE" --version 2>&1)
rc=$?
set -e
[ $rc -eq 0 ] || fail "--version exited $rc, want 0"
rdk=$(sed -n 's/^RDKAFKA_VERSION := \(.*\)$/\1/p' "$ROOT/deps/librdkafka.mk")
[ -n "$rdk" ] || fail "deps/librdkafka.mk sets no RDKAFKA_VERSION"
[ "$out" = "userpipe $want (librdkafka $rdk)" ] ||
    fail "--version printed '$out', want 'userpipe $want (librdkafka $rdk)'"
if ldd "$USERPIPE" | grep -q rdkafka; then
    fail "userpipe loads a shared librdkafka: $(ldd "$USERPIPE" | grep rdkafka)"
fi
# nothing else spells the version: the binary's code holds it once
n=$(grep -rl --include='*.c' --include='*.h' -F "\"$want\"" "$ROOT/core" "$ROOT/sink" \
    "$ROOT/ingest" "$ROOT/transform" "$ROOT/schemas" | wc -l)
[ "$n" -eq 1 ] || fail "the version \"$want\" is spelled in $n source files, want 1 (core/version.h)"
echo "ok: userpipe --version prints '$out', exit 0, no librdkafka.so"
