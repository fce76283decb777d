#!/usr/bin/env bash
# test_config_reference.sh: README.md's configuration reference is exactly
# what the code's key table prints (`userpipe config-reference`), and the
# config loader's errors name the key: an unknown key, a bad value, a
# missing required key.  Env: USERPIPE.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERPIPE=${USERPIPE:-$ROOT/build/userpipe}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

sed -n '/<!-- config-reference:begin -->/,/<!-- config-reference:end -->/p' "$ROOT/README.md" |
    sed '1d;$d' >"$T/readme"
"$USERPIPE" config-reference >"$T/code"
diff -u "$T/code" "$T/readme" >"$T/diff" ||
    { cat "$T/diff" >&2; fail "README.md's reference differs from the code: run make docs"; }

expect_error() { # NAME WANT ARGS...
    local name=$1 want=$2 rc
    shift 2
    set +e
    MOESIF_APPLICATION_ID=x "$USERPIPE" run "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "$name: exit $rc, want 2"
    grep -q -- "$want" "$T/err" || fail "$name: '$(cat "$T/err")' does not mention $want"
}
printf 'source.topics=users\nkafka.bootstrap.servers=127.0.0.1:1\nkafka.group.id=g\n' >"$T/ok.properties"
printf 'source.topics=users\nbatch.max_evnts=3\n' >"$T/typo.properties"
expect_error "unknown key" "batch.max_evnts" -c "$T/typo.properties"
expect_error "bad value" "batch.max_events" -c "$T/ok.properties" -X batch.max_events=0
expect_error "bad enum" "transform.unknown_fields" -c "$T/ok.properties" -X transform.unknown_fields=keep
expect_error "bad bool" "sink.gzip" -c "$T/ok.properties" -X sink.gzip=maybe
expect_error "missing topics" "source.topics" -X kafka.group.id=g
expect_error "bad url" "moesif.base_url" -c "$T/ok.properties" -X moesif.base_url=ftp://x
expect_error "bad librdkafka property" "kafka.no.such.property" -c "$T/ok.properties" -X kafka.no.such.property=1
expect_error "missing file" "nope.properties" -c "$T/nope.properties"
set +e
env -u MOESIF_APPLICATION_ID "$USERPIPE" run -c "$T/ok.properties" >/dev/null 2>"$T/err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "MOESIF_APPLICATION_ID" "$T/err" || fail "missing application id: exit $rc, $(cat "$T/err")"
"$USERPIPE" run --help | grep -q -- "--exit-at-end" || fail "run --help"
"$USERPIPE" schema --help | grep -q "import" || fail "schema --help"
echo "ok: README reference matches the code; config errors name their key"
