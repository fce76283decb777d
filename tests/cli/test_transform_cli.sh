#!/usr/bin/env bash
# test_transform_cli.sh: `userpipe transform` through the real binary, as
# the scripts that depend on its contract see it: stdout lines, the rejects
# file, the schema files, exit statuses and memory on a huge line.
#
# Env: USERPIPE, the binary (default build/userpipe); BUILD, the build
# folder (unused but for messages).  Runs from the repository root (the
# schema checker and user.schema.json are found from there).  Every check
# runs even after a failure; the script exits 1 if any failed.
set -u

U=${USERPIPE:-build/userpipe}
PY=/usr/bin/python3
CHECKER=tests/schemas/check_user_schema.py
T=$(mktemp -d /tmp/userpipe-cli-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
ACCEPTED_ALL=$T/accepted-all.ndjson
: >"$ACCEPTED_ALL"

nfail=0
nok=0
pass() { nok=$((nok + 1)); }
fail() {
    nfail=$((nfail + 1))
    echo "FAIL: $*"
}
# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" == "$3" ]; then
        pass
    else
        fail "$1"
        echo "  expected: $(printf '%q' "$2")"
        echo "  actual:   $(printf '%q' "$3")"
    fi
}
check_file() { # NAME EXPECTED_FILE ACTUAL_FILE
    if cmp -s "$2" "$3"; then
        pass
    else
        fail "$1"
        diff <(od -c "$2") <(od -c "$3") | head -20 | sed 's/^/  /'
    fi
}
# run ARGS...: stdin from $T/in; stdout, stderr, status to $T/out, $T/err,
# $rc; accepted lines are collected for the schema check at the end
run() {
    "$U" transform "$@" <"$T/in" >"$T/out" 2>"$T/err"
    rc=$?
    cat "$T/out" >>"$ACCEPTED_ALL"
}

if [ ! -x "$U" ]; then
    echo "test_transform_cli: no binary at '$U' (set USERPIPE)"
    exit 1
fi
if [ ! -x "$PY" ]; then
    echo "test_transform_cli: $PY is needed"
    exit 1
fi

# ---- --help --------------------------------------------------------------
"$U" transform --help >"$T/help" 2>"$T/err"
check "--help exits 0" 0 $?
check "--help writes nothing to stderr" "" "$(cat "$T/err")"
for opt in --schema --schema-out --schema-scope --unknown-fields \
    --max-event-bytes --max-depth --rejects --help; do
    if grep -q -- "$opt" "$T/help"; then pass; else fail "--help does not mention $opt"; fi
done
for word in name path reject drop metadata invalid_json not_an_object \
    missing_user_id invalid_field_type unknown_field type_conflict \
    duplicate_key too_large too_deep event_b64 '"line"' 1048576 64; do
    if grep -q -- "$word" "$T/help"; then pass; else fail "--help does not mention $word"; fi
done
"$U" transform -h >/dev/null 2>&1
check "-h exits 0" 0 $?

# ---- the main stream: order, rejects, blank lines, CRLF -----------------
# physical lines (blank ones counted):
#  1 accepted (dot rewritten)         8 unknown_field, UTF-8 and \u kept
#  2 empty                            9 invalid_json (truncated)
#  3 invalid_field_type user_id      10 invalid_json, not UTF-8: event_b64
#  4 type_conflict (a_b from line 1) 11 tab and CR only: blank
#  5 spaces: blank                   12 invalid_json, raw tab in a string
#  6 accepted, CRLF                  13 invalid_field_type, CRLF
#  7 unknown_field, quotes and       14 accepted, no final newline
#    backslashes in the raw line
{
    printf '%s\n' '{"user_id":"u1","metadata":{"a.b":1}}'
    printf '\n'
    printf '%s\n' '{"user_id":2}'
    printf '%s\n' '  {"user_id":"u2", "metadata":{"a_b":"x"}}'
    printf '   \n'
    printf '%s\r\n' '{"user_id":"u3","session_token":"t.1"}'
    printf '%s\n' '{"user_id":"q\"b\\s","bad":"x\\y\"z \/"}'
    printf '%s\n' '{"user_id":"\u00e9 é 😀", "x":1}'
    printf '%s\n' '{"user_id":"u4"'
    printf '{"user_id":"u\xff"}\n'
    printf '\t\r\n'
    printf '{"user_id":"u5","metadata":{"ctl":"a\tb"}}\n'
    printf '%s\r\n' '{"user_id":1}'
    printf '%s' '{"user_id":"u6","metadata":{"l":[{"x.y":{"z.w":null}}]}}'
} >"$T/in"
run --rejects "$T/rej"
check "main stream exits 0" 0 "$rc"
check "main stream: nothing on stderr" "" "$(cat "$T/err")"
printf '%s\n' '{"user_id":"u1","metadata":{"a_b":1}}' \
    '{"user_id":"u3","session_token":"t.1"}' \
    '{"user_id":"u6","metadata":{"l":[{"x_y":{"z_w":null}}]}}' >"$T/want"
check_file "main stream: accepted lines on stdout, in order" "$T/want" "$T/out"

# The rejects file, judged in Python: one JSON object a line, the fields of
# the contract in its order, and the raw line echoed byte for byte.
cat >"$T/check_rejects.py" <<'EOF'
import base64, json, sys
rej_path, in_path, spec = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(in_path, "rb").read().split(b"\n")
want = [s.split(":", 2) for s in spec]          # line:code:path
errors = []
lines = open(rej_path, "rb").read().split(b"\n")
if lines and lines[-1] == b"":
    lines.pop()
else:
    errors.append("the rejects file does not end with a newline")
if len(lines) != len(want):
    errors.append("%d reject lines, expected %d" % (len(lines), len(want)))
for text, (n, code, path) in zip(lines, want):
    try:
        r = json.loads(text.decode("utf-8"))
    except Exception as e:
        errors.append("not a JSON line: %r (%s)" % (text[:200], e))
        continue
    keys = list(r)
    ev_key = "event_b64" if "event_b64" in r else "event"
    if keys != ["line", "code", "path", "message", ev_key]:
        errors.append("line %s: fields %s, expected line, code, path, "
                      "message, %s in that order" % (n, keys, ev_key))
    if r.get("line") != int(n):
        errors.append("line number %r, expected %s" % (r.get("line"), n))
        continue
    if r.get("code") != code or r.get("path") != path:
        errors.append("line %s: %s %r, expected %s %r" % (
            n, r.get("code"), r.get("path"), code, path))
    msg = r.get("message")
    if not isinstance(msg, str) or not msg or "\n" in msg:
        errors.append("line %s: message %r is not one sentence" % (n, msg))
    line = raw[int(n) - 1]
    if line.endswith(b"\r"):
        line = line[:-1]   # a final CR is not part of the event
    try:
        line.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    if ev_key == "event":
        if not utf8:
            errors.append("line %s: invalid UTF-8 echoed as event" % n)
        elif r["event"].encode("utf-8") != line:
            errors.append("line %s: event %r is not the raw line %r" % (
                n, r["event"], line))
    else:
        if utf8 and code != "too_large":
            errors.append("line %s: valid UTF-8 echoed as event_b64" % n)
        if base64.b64decode(r["event_b64"], validate=True) != line:
            errors.append("line %s: event_b64 does not decode to the raw "
                          "line" % n)
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
EOF
check_rejects() { # NAME REJECTS_FILE INPUT_FILE line:code:path...
    local name=$1
    shift
    if "$PY" "$T/check_rejects.py" "$@" >"$T/chk" 2>&1; then
        pass
    else
        fail "$name"
        cat "$T/chk"
    fi
}
check_rejects "main stream: rejects file" "$T/rej" "$T/in" \
    "3:invalid_field_type:user_id" "4:type_conflict:metadata.a_b" \
    "7:unknown_field:bad" "8:unknown_field:x" "9:invalid_json:" \
    "10:invalid_json:" "12:invalid_json:" "13:invalid_field_type:user_id"
if grep -q '"line":10,.*"event_b64":' "$T/rej"; then pass; else fail "invalid UTF-8 line 10 not echoed as event_b64"; fi
if grep -q '"line":7,.*"event":"{\\"user_id\\":\\"q\\\\\\"b\\\\\\\\s\\",' "$T/rej"; then
    pass
else
    fail "line 7: quotes and backslashes not escaped as JSON in the event echo"
fi

# without --rejects, reject lines go to stderr
printf '%s\n' '{"user_id":"ok"}' '{"nope":1}' >"$T/in"
run
check "rejects to stderr: exit 0" 0 "$rc"
check "rejects to stderr: stdout" '{"user_id":"ok"}' "$(cat "$T/out")"
check_rejects "rejects to stderr: content" "$T/err" "$T/in" \
    "2:unknown_field:nope"

# empty input
: >"$T/in"
run --rejects "$T/rej"
check "empty input: exit 0" 0 "$rc"
check "empty input: no output" "" "$(cat "$T/out")"
check "empty input: empty rejects file" 0 "$(wc -c <"$T/rej")"

# only blank lines
printf '\n\n  \n\r\n' >"$T/in"
run --rejects "$T/rej"
check "blank lines only: exit 0" 0 "$rc"
check "blank lines only: no output" "" "$(cat "$T/out")$(cat "$T/rej")"

# ---- --max-event-bytes: the boundary, streaming, line numbers -----------
ev='{"user_id":"u1234567890"}' # 25 bytes
{
    printf '%s\n' "$ev"
    printf '%s\n' "$ev "
    printf '%s\n' '{"user_id":"short"}'
    printf '%s' "$ev  "
} >"$T/in"
run --max-event-bytes 25 --rejects "$T/rej"
check "max-event-bytes: exit 0" 0 "$rc"
printf '%s\n' "$ev" '{"user_id":"short"}' >"$T/want"
check_file "max-event-bytes: N accepted, N+1 rejected" "$T/want" "$T/out"
check_rejects "max-event-bytes: too_large lines as event_b64" "$T/rej" \
    "$T/in" "2:too_large:" "4:too_large:"
if [ "$(grep -c '"event_b64"' "$T/rej")" = 2 ]; then pass; else fail "oversize lines must be echoed as event_b64"; fi

# a CRLF line whose event is exactly N bytes: the CR is not part of it
printf '%s\r\n%s\r\n' "$ev" '{"user_id":"after"}' >"$T/in"
run --max-event-bytes 25 --rejects "$T/rej"
printf '%s\n' "$ev" '{"user_id":"after"}' >"$T/want"
check_file "max-event-bytes: CRLF line of exactly N bytes accepted" \
    "$T/want" "$T/out"
check "max-event-bytes: CRLF line of exactly N bytes: no reject" "" \
    "$(cat "$T/rej")"

# ---- --max-depth -------------------------------------------------------------
printf '%s\n' '{"user_id":"u","metadata":{"a":[1]}}' \
    '{"user_id":"u","metadata":{"a":[[1]]}}' >"$T/in"
run --max-depth 3 --rejects "$T/rej"
check "max-depth: exactly N accepted" '{"user_id":"u","metadata":{"a":[1]}}' \
    "$(cat "$T/out")"
check_rejects "max-depth: N+1 too_deep" "$T/rej" "$T/in" \
    "2:too_deep:metadata.a"

# ---- a 5 MB line with the default limit: rejected, memory stays flat -------
"$PY" -c '
import sys
sys.stdout.write("{\"user_id\":\"big\",\"metadata\":{\"blob\":\"" +
                 "x" * (5 * 1024 * 1024) + "\"}}\n{\"user_id\":\"after\"}\n")
' >"$T/big.ndjson"
printf '%s\n' '{"user_id":"small"}' >"$T/small.ndjson"
# peak RSS in kB of `userpipe transform` over a file
peak_rss_kb() {
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v "$U" transform --rejects "$2" <"$1" >"$3" \
            2>"$T/time.txt"
        sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/time.txt"
    else
        # no GNU time: poll the peak (VmHWM) until the process is gone
        "$U" transform --rejects "$2" <"$1" >"$3" &
        local pid=$! hwm=0 v
        while v=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' \
            "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
            hwm=$v
            sleep 0.01
        done
        wait "$pid"
        echo "$hwm"
    fi
}
RSS_METHOD=$([ -x /usr/bin/time ] && echo "/usr/bin/time -v" || echo "/proc VmHWM polling")
base_kb=$(peak_rss_kb "$T/small.ndjson" "$T/rej_small" "$T/out_small")
big_kb=$(peak_rss_kb "$T/big.ndjson" "$T/rej_big" "$T/out_big")
cat "$T/out_big" >>"$ACCEPTED_ALL"
echo "5 MB line: peak RSS ${big_kb} kB vs ${base_kb} kB for one small event (measured with $RSS_METHOD)"
if [ -n "$base_kb" ] && [ -n "$big_kb" ] && [ "$big_kb" -le $((base_kb + 3072)) ]; then
    pass
else
    fail "5 MB line: peak RSS ${big_kb} kB is more than 3 MB over the baseline ${base_kb} kB"
fi
check "5 MB line: the next line is still accepted" '{"user_id":"after"}' \
    "$(cat "$T/out_big")"
check_rejects "5 MB line: too_large, echoed whole as event_b64" \
    "$T/rej_big" "$T/big.ndjson" "1:too_large:"

# ---- schema: seed, schema-out, scope --------------------------------------
printf '%s\n' '{"phone":"string","vip":"boolean"}' >"$T/seed.json"
printf '%s\n' '{"user_id":"u","metadata":{"x":{"phone":1}}}' \
    '{"user_id":"u","metadata":{"phone":"555","age":31,"x":{"phone":"1"}}}' \
    '{"user_id":"u","metadata":{"lost":1,"vip":"yes"}}' \
    '{"user_id":"u","metadata":{"tags":["a"],"a.b":{"c":true}}}' >"$T/in"
run --schema "$T/seed.json" --schema-out "$T/schema-out.json" \
    --rejects "$T/rej"
check "seed: exit 0" 0 "$rc"
check_rejects "seed: a conflict with a seed type" "$T/rej" "$T/in" \
    "1:type_conflict:metadata.x.phone" "3:type_conflict:metadata.vip"
printf '%s\n' '{"user_id":"u","metadata":{"phone":"555","age":31,"x":{"phone":"1"}}}' \
    '{"user_id":"u","metadata":{"tags":["a"],"a_b":{"c":true}}}' >"$T/want"
check_file "seed: accepted lines" "$T/want" "$T/out"
printf '%s\n' '{"phone":"string","vip":"boolean","age":"number","x":"object","tags":"array","a_b":"object","c":"boolean"}' >"$T/want"
check_file "--schema-out: seed first, then learned, rejected keys absent" \
    "$T/want" "$T/schema-out.json"

# the schema written is a valid seed, and gives the same verdicts
run --schema "$T/schema-out.json" --rejects "$T/rej2"
check "schema-out as seed: exit 0" 0 "$rc"
check_rejects "schema-out as seed: same rejects" "$T/rej2" "$T/in" \
    "1:type_conflict:metadata.x.phone" "3:type_conflict:metadata.vip"

# --schema-scope
printf '%s\n' '{"user_id":"u","metadata":{"phone":"555","x":{"phone":1}}}' \
    '{"user_id":"u","metadata":{"l":[{"n":1},{"n":"s"}]}}' >"$T/in"
run --schema-scope path --schema-out "$T/so.json" --rejects "$T/rej"
check "scope path: accepted" \
    '{"user_id":"u","metadata":{"phone":"555","x":{"phone":1}}}' \
    "$(cat "$T/out")"
check_rejects "scope path: array path conflict" "$T/rej" "$T/in" \
    "2:type_conflict:metadata.l[1].n"
check "scope path: schema-out holds paths" \
    '{"phone":"string","x":"object","x.phone":"number"}' "$(cat "$T/so.json")"
run --schema-scope name --rejects "$T/rej"
check_rejects "scope name: conflict by name" "$T/rej" "$T/in" \
    "1:type_conflict:metadata.x.phone" "2:type_conflict:metadata.l[1].n"

# --unknown-fields
printf '%s\n' '{"plan":"pro","user_id":"u","metadata":{"a":1},"seats":3}' \
    '{"user_id":"u","metadata":null,"x.y":{"p.q":1}}' >"$T/in"
run --rejects "$T/rej"
check "unknown default: nothing accepted" "" "$(cat "$T/out")"
check_rejects "unknown default: reject" "$T/rej" "$T/in" \
    "1:unknown_field:plan" "2:unknown_field:x.y"
run --unknown-fields reject --rejects "$T/rej"
check_rejects "unknown reject" "$T/rej" "$T/in" \
    "1:unknown_field:plan" "2:unknown_field:x.y"
run --unknown-fields drop --rejects "$T/rej"
printf '%s\n' '{"user_id":"u","metadata":{"a":1}}' '{"user_id":"u"}' >"$T/want"
check_file "unknown drop" "$T/want" "$T/out"
run --unknown-fields metadata --rejects "$T/rej" --schema-out "$T/so.json"
printf '%s\n' '{"user_id":"u","metadata":{"a":1,"plan":"pro","seats":3}}' \
    '{"user_id":"u","metadata":{"x_y":{"p_q":1}}}' >"$T/want"
check_file "unknown metadata" "$T/want" "$T/out"
check "unknown metadata: moved keys typed" \
    '{"plan":"string","a":"number","seats":"number","x_y":"object","p_q":"number"}' \
    "$(cat "$T/so.json")"

# ---- usage errors: exit 2, a message naming the option, no output ----------
printf '%s\n' '{"user_id":"u"}' >"$T/in"
usage_case() { # WORD ARGS...: the message must contain WORD
    local word=$1
    shift
    "$U" transform "$@" <"$T/in" >"$T/out" 2>"$T/err"
    local st=$?
    if [ $st -ne 2 ]; then
        fail "usage error ($*): exit $st, expected 2"
    elif ! grep -q -- "$word" "$T/err"; then
        fail "usage error ($*): message does not name '$word': $(cat "$T/err")"
    elif [ -s "$T/out" ]; then
        fail "usage error ($*): wrote to stdout"
    else
        pass
    fi
}
usage_case --schema-scope --schema-scope bogus
usage_case --schema-scope --schema-scope ""
usage_case --unknown-fields --unknown-fields keep
usage_case --max-event-bytes --max-event-bytes 15
usage_case --max-event-bytes --max-event-bytes 67108865
usage_case --max-event-bytes --max-event-bytes abc
usage_case --max-event-bytes --max-event-bytes -1
usage_case --max-event-bytes --max-event-bytes 1k
usage_case --max-event-bytes --max-event-bytes ""
usage_case --max-depth --max-depth 1
usage_case --max-depth --max-depth 1025
usage_case --max-depth --max-depth x
usage_case --bogus --bogus
usage_case --rejects --rejects
usage_case --schema --schema
usage_case extra extra
printf 'phone: string\n' >"$T/bad-seed.json"
usage_case "$T/bad-seed.json" --schema "$T/bad-seed.json"
printf '["phone"]\n' >"$T/bad-seed2.json"
usage_case "$T/bad-seed2.json" --schema "$T/bad-seed2.json"
printf '{"phone":"text"}\n' >"$T/bad-seed3.json"
usage_case phone --schema "$T/bad-seed3.json"
printf '{"phone":"string","phone":"number"}\n' >"$T/bad-seed4.json"
usage_case phone --schema "$T/bad-seed4.json"
# the limits themselves are fine
run --max-event-bytes 16 --max-depth 2
check "max-event-bytes 16 and max-depth 2 accepted" 0 "$rc"
run --max-event-bytes 67108864 --max-depth 1024
check "max-event-bytes 64 MiB and max-depth 1024 accepted" 0 "$rc"

# ---- I/O errors: exit 1 ------------------------------------------------------
io_case() { # NAME ARGS...
    local name=$1
    shift
    "$U" transform "$@" <"$T/in" >"$T/out" 2>"$T/err"
    local st=$?
    if [ $st -ne 1 ]; then
        fail "$name: exit $st, expected 1 ($(cat "$T/err"))"
    elif [ ! -s "$T/err" ]; then
        fail "$name: no message on stderr"
    else
        pass
    fi
}
io_case "missing --schema file" --schema "$T/no-such-seed.json"
io_case "--schema is a directory" --schema "$T"
if [ "$(id -u)" != 0 ]; then
    printf '{}\n' >"$T/unreadable.json"
    chmod 000 "$T/unreadable.json"
    io_case "unreadable --schema file" --schema "$T/unreadable.json"
fi
io_case "unwritable --rejects path" --rejects "$T/no-such-dir/rejects"
io_case "unwritable --schema-out path" --schema-out "$T/no-such-dir/s.json"
if [ -w /dev/full ]; then
    "$U" transform <"$T/in" >/dev/full 2>"$T/err"
    check "stdout write error (/dev/full): exit 1" 1 $?
fi
"$U" transform <"$T" >"$T/out" 2>"$T/err"
check "stdin read error (a directory): exit 1" 1 $?

# ---- the bundled sample events run clean --------------------------------------
# (the dev stack's generated corpus; skipped if it moved)
for f in deploy/dev/sample-events.ndjson deploy/sample-events.ndjson; do
    [ -f "$f" ] || continue
    cp "$f" "$T/in"
    run --rejects "$T/rej"
    check "$f: exit 0" 0 "$rc"
    n_in=$(grep -c '[^[:space:]]' "$f")
    n_out=$(grep -c . "$T/out")
    n_rej=$(grep -c . "$T/rej")
    check "$f: every event accepted or rejected once" "$n_in" \
        "$((n_out + n_rej))"
done

# ---- every accepted line above is a Moesif user update ------------------------
echo "accepted lines checked against schemas/user.schema.json: $(grep -c . "$ACCEPTED_ALL")"
if "$PY" "$CHECKER" --self-test "$ACCEPTED_ALL" >"$T/chk" 2>&1; then
    pass
else
    fail "accepted output does not match schemas/user.schema.json"
fi
cat "$T/chk"

echo "$nok checks passed, $nfail failed"
[ "$nfail" -eq 0 ]
