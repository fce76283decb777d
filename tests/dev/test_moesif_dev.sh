#!/usr/bin/env bash
# test_moesif_dev.sh: moesif-dev over real sockets with curl: the app id
# (401), single and batch upserts, deep merge of metadata and campaign,
# the User-Agent in /_dev/stats, aliases, gzip,
# dotted keys, the type lock, 400s, every fault mode (refuse_user too),
# /_dev/reset, the --record file byte for byte, and exit 0 on SIGTERM.
#
# Env: BUILD (e.g. build/release).  Exit 0 on success; on failure, says
# what failed and shows the end of the server's log.  About 5 s.
set -u

BUILD=${BUILD:-build/release}
BIN=$BUILD/moesif-dev
APP=test-app-id
tmp=$(mktemp -d)
pid=""
pid2=""
checks=0

cleanup() {
    for p in $pid $pid2; do
        kill "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -s "$tmp/last_body" ]; then
        echo "--- last response body:" >&2
        cat "$tmp/last_body" >&2
        echo >&2
    fi
    echo "--- end of the server log:" >&2
    tail -n 20 "$tmp/server.log" >&2 2>/dev/null
    exit 1
}

ok() {
    checks=$((checks + 1))
    echo "ok $checks - $*"
}

[ -x "$BIN" ] || fail "$BIN is not built (make $BIN)"

# json FILE EXPR: evaluates a Python expression over the JSON in FILE (d)
json() {
    python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(json.dumps(eval(sys.argv[2]), separators=(",",":"), sort_keys=True))' "$1" "$2"
}

# expect_json FILE EXPR WANT MESSAGE
expect_json() {
    local got
    got=$(json "$1" "$2" 2>&1) || fail "$4: cannot evaluate $2: $got"
    [ "$got" = "$3" ] || fail "$4: $2 is $got, want $3"
    ok "$4"
}

# req METHOD PATH [curl args...]: sets $code, body in $tmp/last_body
req() {
    local method=$1 path=$2
    shift 2
    code=$(curl -s -o "$tmp/last_body" -D "$tmp/last_headers" \
        -w '%{http_code}' -X "$method" "$@" "$URL$path") || code="curl-$?"
}

# post_ok PATH BODY: a /v1 post that must be accepted (201)
post_ok() {
    req POST "$1" -H "X-Moesif-Application-Id: $APP" \
        -H 'Content-Type: application/json' --data-binary "$2"
    [ "$code" = 201 ] || fail "POST $1 answered $code, want 201"
}

# what the record file must hold, one accepted user object a line
expected=$tmp/expected.ndjson
: >"$expected"

# single BODY: POST /v1/users, accepted
single() {
    post_ok /v1/users "$1"
    printf '%s\n' "$1" >>"$expected"
}

# batch ELEMENT...: POST /v1/users/batch of the elements, accepted
batch() {
    local body="[" sep=""
    for e in "$@"; do
        body="$body$sep$e"
        sep=","
        printf '%s\n' "$e" >>"$expected"
    done
    post_ok /v1/users/batch "$body]"
}

stats() {
    req GET /_dev/stats
    [ "$code" = 200 ] || fail "GET /_dev/stats answered $code"
    cp "$tmp/last_body" "$tmp/stats.json"
}

user() {
    req GET "/_dev/users/$1"
    [ "$code" = 200 ] || fail "GET /_dev/users/$1 answered $code, want 200"
    cp "$tmp/last_body" "$tmp/user.json"
}

faults() {
    req POST "/_dev/faults?$1"
    [ "$code" = 200 ] || fail "POST /_dev/faults?$1 answered $code"
}

# start_server URLFILE LOG ARGS...: starts moesif-dev, sets $started_pid
start_server() {
    local urlfile=$1 log=$2
    shift 2
    "$BIN" --listen 127.0.0.1:0 --app-id "$APP" --url-file "$urlfile" "$@" \
        >"$urlfile.stdout" 2>"$log" &
    started_pid=$!
    for _ in $(seq 100); do
        [ -s "$urlfile" ] && return 0
        kill -0 "$started_pid" 2>/dev/null || fail "moesif-dev exited at start"
        sleep 0.05
    done
    fail "moesif-dev wrote no url file in 5 s"
}

start_server "$tmp/url" "$tmp/server.log" --record "$tmp/record.ndjson"
pid=$started_pid
URL=$(cat "$tmp/url")
case "$URL" in
http://127.0.0.1:[0-9]*) ;;
*) fail "url file holds '$URL'" ;;
esac
[ "$(head -n 1 "$tmp/url.stdout")" = "$URL" ] || fail "stdout does not print $URL"
ok "listening on $URL, printed and written to the url file"

# --- the application id -----------------------------------------------
req POST /v1/users --data-binary '{"user_id":"nobody"}'
[ "$code" = 401 ] || fail "no app id answered $code, want 401"
expect_json "$tmp/last_body" 'd["error"]' '"unauthorized"' "401 without an app id, JSON body"
req POST /v1/users/batch -H 'X-Moesif-Application-Id: wrong' \
    --data-binary '[{"user_id":"nobody"}]'
[ "$code" = 401 ] || fail "wrong app id answered $code, want 401"
ok "401 with a wrong app id"
req GET /_dev/users/nobody
[ "$code" = 404 ] || fail "a refused user was stored"
ok "refused users are not stored"

# --- single and batch upserts -------------------------------------------
single '{"user_id":"u-1","company_id":"c-1","modified_time":"2024-01-01T00:00:00Z","metadata":{"plan":"free"}}'
expect_json "$tmp/last_body" 'd["status"]' '"created"' "single upsert answered 201 with a JSON body"
user u-1
expect_json "$tmp/user.json" '[d["user_id"],d["company_id"],d["metadata"]]' \
    '["u-1","c-1",{"plan":"free"}]' "single upsert stored"
batch '{"user_id":"b-1","metadata":{"n":1}}' '{"user_id":"b-2","ip_address":"10.0.0.2"}' \
    '{"user_id":"u-1","company_id":"c-2","user_agent_string":"curl"}'
user u-1
expect_json "$tmp/user.json" '[d["company_id"],d["user_agent_string"],d["modified_time"],d["metadata"]]' \
    '["c-2","curl","2024-01-01T00:00:00Z",{"plan":"free"}]' "batch upsert replaced fixed fields, kept the rest"
stats
expect_json "$tmp/stats.json" '[d["requests"],d["batches"],d["users"],d["upserts"],d["responses"]]' \
    '[4,1,3,4,{"201":2,"401":2}]' "stats count requests, batches, users, upserts, responses"

# --- deep merge of metadata ----------------------------------------------
single '{"user_id":"m-1","metadata":{"plan":"free","address":{"city":"Paris","zip":"75001","geo":{"lat":48.8}},"tags":["a"],"n":1}}'
single '{"user_id":"m-1","metadata":{"plan":"pro","address":{"city":"Lyon","geo":{"lon":4.8}},"tags":["b","c"],"new":true}}'
user m-1
expect_json "$tmp/user.json" 'd["metadata"]' \
    '{"address":{"city":"Lyon","geo":{"lat":48.8,"lon":4.8},"zip":"75001"},"n":1,"new":true,"plan":"pro","tags":["b","c"]}' \
    "metadata merged recursively, newer wins, arrays replaced"

# --- campaign is merged like metadata (issue 11) -----------------------------
# Moesif merges a user update recursively; its Node library sends
# "campaign":{} with every update that has none, which must erase nothing.
single '{"user_id":"c-9","campaign":{"utm_source":"news","utm_medium":"email","referrer":"r1"}}'
single '{"user_id":"c-9","campaign":{},"metadata":{"k":1}}'
user c-9
expect_json "$tmp/user.json" 'd["campaign"]' \
    '{"referrer":"r1","utm_medium":"email","utm_source":"news"}' \
    "an update with campaign {} keeps the stored campaign"
batch '{"user_id":"c-9","campaign":{"utm_medium":"cpc","gclid":"g-1"}}'
user c-9
expect_json "$tmp/user.json" '[d["campaign"],d["metadata"]]' \
    '[{"gclid":"g-1","referrer":"r1","utm_medium":"cpc","utm_source":"news"},{"k":1}]' \
    "a partial campaign keeps the other members, newer wins"
single '{"user_id":"c-9","campaign":null}'
user c-9
expect_json "$tmp/user.json" 'sorted(d["campaign"])' '["gclid","referrer","utm_medium","utm_source"]' \
    "campaign null changes nothing"

# --- the User-Agent of the last /v1 request ------------------------------------
req POST /v1/users -H "X-Moesif-Application-Id: $APP" -A 'agent-test/1.2' \
    --data-binary '{"user_id":"ua-1"}'
[ "$code" = 201 ] || fail "POST with a User-Agent answered $code"
printf '%s\n' '{"user_id":"ua-1"}' >>"$expected"
stats
expect_json "$tmp/stats.json" 'd["user_agent"]' '"agent-test/1.2"' "/_dev/stats shows the last User-Agent"
req POST /v1/users -H 'X-Moesif-Application-Id: wrong' -A 'intruder/0' \
    --data-binary '{"user_id":"ua-2"}'
stats
expect_json "$tmp/stats.json" 'd["user_agent"]' '"agent-test/1.2"' "a refused request's User-Agent is not noted"

# --- aliases ---------------------------------------------------------------
batch '{"user_id":"a-1","session_token":"tok-1"}'
batch '{"user_id":"a-1","session_token":"tok-2"}' '{"user_id":"a-2","session_token":"tok-9"}'
single '{"user_id":"a-1","session_token":"tok-1"}'
user a-1
expect_json "$tmp/user.json" 'd["aliases"]' '["tok-1","tok-2"]' "session_tokens appended to the alias list once each"

# --- gzip --------------------------------------------------------------------
gz_body='[{"user_id":"g-1","metadata":{"via":"gzip"}},{"user_id":"g-2"}]'
printf '%s' "$gz_body" | gzip -c >"$tmp/body.gz"
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" \
    -H 'Content-Encoding: gzip' --data-binary @"$tmp/body.gz"
[ "$code" = 201 ] || fail "gzip batch answered $code"
printf '%s\n' '{"user_id":"g-1","metadata":{"via":"gzip"}}' '{"user_id":"g-2"}' >>"$expected"
user g-1
expect_json "$tmp/user.json" 'd["metadata"]' '{"via":"gzip"}' "gzip body accepted and stored"
{
    printf '%s' '[{"user_id":"g-3"},' | gzip -c
    printf '%s' '{"user_id":"g-4"}]' | gzip -c
} >"$tmp/multi.gz"
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" \
    -H 'Content-Encoding: gzip' --data-binary @"$tmp/multi.gz"
[ "$code" = 201 ] || fail "a two-member gzip batch answered $code"
printf '%s\n' '{"user_id":"g-3"}' '{"user_id":"g-4"}' >>"$expected"
user g-4
ok "a gzip body of two members (RFC 1952) accepted"
printf 'not gzip at all, really not' >"$tmp/bad.gz"
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" \
    -H 'Content-Encoding: gzip' --data-binary @"$tmp/bad.gz"
[ "$code" = 400 ] || fail "a bad gzip body answered $code, want 400"
ok "a bad gzip body is a 400"

# --- dotted keys ---------------------------------------------------------------
single '{"user_id":"d-1","metadata":{"fi.rst.na.me":"Ada","nest":{"a.b":{"c.d":1}},"list":[{"x.y":2}],"v":"dots.stay"}}'
user d-1
expect_json "$tmp/user.json" 'd["metadata"]' \
    '{"fi_rst_na_me":"Ada","list":[{"x_y":2}],"nest":{"a_b":{"c_d":1}},"v":"dots.stay"}' \
    "dots in metadata keys stored as underscores, at any depth"

# --- the type lock ---------------------------------------------------------------
single '{"user_id":"t-1","metadata":{"phone":"555-0100","age":30}}'
batch '{"user_id":"t-2","metadata":{"phone":5550100,"extra":{"phone":true,"age":"old"},"ok":1}}'
user t-2
expect_json "$tmp/user.json" 'd["metadata"]' '{"extra":{},"ok":1}' \
    "values of another type than the key's first are dropped, at any depth"
stats
expect_json "$tmp/stats.json" '[d["conflicts"],d["conflict_keys"]]' '[3,{"age":1,"phone":2}]' \
    "conflicts counted with their key names"
single '{"user_id":"t-1","metadata":{"phone":null}}'
single '{"user_id":"t-1","metadata":{"phone":"555-0199"}}'
user t-1
expect_json "$tmp/user.json" 'd["metadata"]["phone"]' '"555-0199"' "null claims no type"

# --- 400s, dup_in_batch ---------------------------------------------------------
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" \
    --data-binary '[{"user_id":"ok-1"},{"metadata":{}},{"user_id":"ok-2"}]'
[ "$code" = 400 ] || fail "a batch with a user without user_id answered $code"
expect_json "$tmp/last_body" 'd["error"]' '"missing_user_id"' "a bad user refuses the batch with 400 naming it"
req GET /_dev/users/ok-1
[ "$code" = 404 ] || fail "a user of a refused batch was stored"
ok "nothing of a refused batch is stored"
req POST /v1/users -H "X-Moesif-Application-Id: $APP" --data-binary '{"user_id":""}'
[ "$code" = 400 ] || fail "an empty user_id answered $code"
req POST /v1/users -H "X-Moesif-Application-Id: $APP" --data-binary '{"user_id":"x",'
[ "$code" = 400 ] || fail "truncated JSON answered $code"
expect_json "$tmp/last_body" 'd["error"]' '"invalid_json"' "unparsable JSON is a 400"
batch '{"user_id":"dup","metadata":{"ver":1}}' '{"user_id":"dup","metadata":{"ver":2}}'
user dup
expect_json "$tmp/user.json" 'd["metadata"]["ver"]' '2' "updates in a batch apply in order"
stats
expect_json "$tmp/stats.json" 'd["dup_in_batch"]' '1' "a batch with two updates of one user is counted"

# a batch sent pretty-printed is recorded minified
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" --data-binary '[
  {"user_id": "p-1", "metadata": {"k": "a b", "q": "say \"hi\""}},
  {"user_id": "p-2"}
]'
[ "$code" = 201 ] || fail "a pretty-printed batch answered $code"
printf '%s\n' '{"user_id":"p-1","metadata":{"k":"a b","q":"say \"hi\""}}' '{"user_id":"p-2"}' >>"$expected"

# --- faults ------------------------------------------------------------------------
stats
upserts_before=$(json "$tmp/stats.json" 'd["upserts"]')
faults 'fail_429=1&retry_after=3'
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" --data-binary '[{"user_id":"f-1"}]'
[ "$code" = 429 ] || fail "fail_429=1 answered $code"
grep -qi '^Retry-After: 3' "$tmp/last_headers" || fail "429 without Retry-After: 3"
ok "fail_429=1: 429 with Retry-After"
faults 'fail_429=0&fail_500=1'
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" --data-binary '[{"user_id":"f-1"}]'
[ "$code" = 500 ] || fail "fail_500=1 answered $code"
ok "fail_500=1: 500"
req POST /_dev/faults -H 'Content-Type: application/json' --data-binary '{"fail_500":0,"fail_503":1}'
[ "$code" = 200 ] || fail "JSON /_dev/faults answered $code"
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" --data-binary '[{"user_id":"f-1"}]'
[ "$code" = 503 ] || fail "fail_503=1 answered $code"
ok "fail_503=1 (set by a JSON body): 503"
req POST /_dev/faults --data-binary 'fail_503=0&status=413'
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" --data-binary '[{"user_id":"f-1"}]'
[ "$code" = 413 ] || fail "status=413 answered $code"
ok "status=413 (set by a form body): every /v1 request answers 413"
faults 'status=0&fail_429=0.5&seed=7'
n429=0
for _ in $(seq 40); do
    req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" --data-binary '[{"user_id":"f-2"}]'
    case $code in
    429) n429=$((n429 + 1)) ;;
    201) printf '%s\n' '{"user_id":"f-2"}' >>"$expected" ;;
    *) fail "fail_429=0.5 answered $code" ;;
    esac
done
[ "$n429" -ge 8 ] && [ "$n429" -le 32 ] || fail "fail_429=0.5 gave $n429 429s of 40"
ok "fail_429=0.5 answered $n429 of 40 with 429"
faults 'fail_429=0'
req POST /_dev/faults --data-binary 'fail_429=2'
[ "$code" = 400 ] || fail "fail_429=2 was accepted"
req POST /_dev/faults --data-binary 'nonsense=1'
[ "$code" = 400 ] || fail "an unknown fault setting was accepted"
ok "bad fault settings are refused with 400"
stats
upserts_after=$(json "$tmp/stats.json" 'd["upserts"]')
req GET /_dev/users/f-1
[ "$code" = 404 ] || fail "a faulted request reached the store"
[ "$upserts_after" = $((upserts_before + 40 - n429)) ] ||
    fail "upserts went from $upserts_before to $upserts_after with $((40 - n429)) accepted"
ok "faulted requests do not touch the store"

# --- refuse_user: a 400 for the requests holding one user ---------------------------
faults 'refuse_user=bad-1'
expect_json "$tmp/last_body" 'd["refuse_user"]' '"bad-1"' "refuse_user=bad-1 set and shown in /_dev/faults"
stats
upserts_before=$(json "$tmp/stats.json" 'd["upserts"]')
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" \
    --data-binary '[{"user_id":"rf-1"},{"user_id":"bad-1","metadata":{"k":1}},{"user_id":"rf-2"}]'
[ "$code" = 400 ] || fail "a batch holding the refused user answered $code, want 400"
expect_json "$tmp/last_body" 'd' \
    '{"error":"user '"'bad-1'"' refused by the dev server (refuse_user)"}' \
    "a batch holding the refused user: 400 naming the user"
for u in rf-1 bad-1 rf-2; do
    req GET "/_dev/users/$u"
    [ "$code" = 404 ] || fail "user $u of a batch refused by refuse_user was stored"
done
ok "nothing of a batch refused by refuse_user is stored"
req POST /v1/users -H "X-Moesif-Application-Id: $APP" --data-binary '{"user_id":"bad-1"}'
[ "$code" = 400 ] || fail "a single update of the refused user answered $code, want 400"
printf '[{"user_id":"rf-3"},{"user_id":"bad\\u002d1"}]' | gzip -c >"$tmp/refused.gz"
req POST /v1/users/batch -H "X-Moesif-Application-Id: $APP" \
    -H 'Content-Encoding: gzip' --data-binary @"$tmp/refused.gz"
[ "$code" = 400 ] || fail "a gzip batch holding the refused user (escaped) answered $code, want 400"
ok "refuse_user: single updates and gzip batches too, matching the unescaped user_id"
batch '{"user_id":"rf-4","session_token":"bad-1","metadata":{"user_id":"bad-1"}}' \
    '{"user_id":"bad-10"}' '{"user_id":"xbad-1"}' '{"user_id":"Bad-1"}'
ok "a batch without the refused user is accepted (201), even naming it elsewhere"
stats
expect_json "$tmp/stats.json" '[d["refused_user"],d["upserts"]-'"$upserts_before"']' '[3,4]' \
    "refused_user counts the refused requests; only the accepted batch was stored"
req POST /_dev/faults -H 'Content-Type: application/json' --data-binary '{"refuse_user":""}'
[ "$code" = 200 ] || fail "JSON refuse_user=\"\" answered $code"
expect_json "$tmp/last_body" 'd["refuse_user"]' '""' "refuse_user cleared by an empty value"
batch '{"user_id":"rf-5"}' '{"user_id":"bad-1"}'
user bad-1
ok "after clearing, a batch holding the user is accepted and stored"
req POST /_dev/faults --data-binary 'refuse_user=a%2Fb+c%22'
[ "$code" = 200 ] || fail "form refuse_user answered $code"
expect_json "$tmp/last_body" 'd["refuse_user"]' '"a/b c\""' "a form body's refuse_user is URL-decoded"
req POST /v1/users -H "X-Moesif-Application-Id: $APP" --data-binary '{"user_id":"a/b c\""}'
[ "$code" = 400 ] || fail "the URL-decoded refused user answered $code, want 400"
expect_json "$tmp/last_body" 'd["error"]' '"user '"'a/b c\\\"'"' refused by the dev server (refuse_user)"' \
    "the 400 names a user with a quote, JSON-escaped"
faults 'refuse_user='
expect_json "$tmp/last_body" 'd["refuse_user"]' '""' "refuse_user= in the query string clears it"

faults 'latency_ms=400'
start=$(date +%s%N)
curl -s -o /dev/null -X POST -H "X-Moesif-Application-Id: $APP" \
    --data-binary '{"user_id":"l-1"}' "$URL/v1/users" &
slow=$!
sleep 0.05
s0=$(date +%s%N)
req GET /_dev/stats
s1=$(date +%s%N)
wait "$slow"
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
sms=$(((s1 - s0) / 1000000))
[ "$ms" -ge 390 ] || fail "latency_ms=400 answered in $ms ms"
[ "$sms" -lt 300 ] || fail "the server was blocked during the latency: /_dev/stats took $sms ms"
ok "latency_ms=400: answered in $ms ms; other requests served meanwhile ($sms ms)"
printf '%s\n' '{"user_id":"l-1"}' >>"$expected"
faults 'latency_ms=0'

faults 'refuse_for_ms=1500'
sleep 0.3
curl -s -o /dev/null "$URL/_dev/stats"
rc=$?
[ "$rc" = 7 ] || fail "while refusing, curl exited $rc, want 7 (connection refused)"
ok "refuse_for_ms=1500: connections refused"
back=""
for _ in $(seq 60); do
    sleep 0.1
    if curl -s -o /dev/null "$URL/_dev/stats"; then
        back=yes
        break
    fi
done
[ -n "$back" ] || fail "moesif-dev did not accept connections again"
single '{"user_id":"r-1"}'
stats
expect_json "$tmp/stats.json" 'd["refusals"]' '1' "accepting again on the same port after the period"
user u-1
ok "the store survived the refusal"

# --- faults from the command line, and a real 413 ---------------------------------------
start_server "$tmp/url2" "$tmp/server2.log" --fail-429 1.0 --retry-after 9 \
    --latency-ms 100 --max-body-mb 1 --refuse-user=cli-bad
pid2=$started_pid
URL2=$(cat "$tmp/url2")
code=$(curl -s -o /dev/null -D "$tmp/h2" -w '%{http_code}' -X POST \
    -H "X-Moesif-Application-Id: $APP" --data-binary '{"user_id":"x"}' "$URL2/v1/users")
[ "$code" = 429 ] && grep -qi '^Retry-After: 9' "$tmp/h2" || fail "--fail-429 1.0 --retry-after 9 answered $code"
ok "--fail-429 and --retry-after from the command line"
curl -s -o /dev/null -X POST "$URL2/_dev/faults?fail_429=0"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Moesif-Application-Id: $APP" \
    --data-binary '[{"user_id":"cli-ok"},{"user_id":"cli-bad"}]' "$URL2/v1/users/batch")
[ "$code" = 400 ] || fail "--refuse-user=cli-bad: a batch holding it answered $code, want 400"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Moesif-Application-Id: $APP" \
    --data-binary '[{"user_id":"cli-ok"}]' "$URL2/v1/users/batch")
[ "$code" = 201 ] || fail "--refuse-user=cli-bad: a batch without it answered $code, want 201"
ok "--refuse-user from the command line"
head -c 1200000 /dev/zero | tr '\0' ' ' >"$tmp/big"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Moesif-Application-Id: $APP" \
    --data-binary @"$tmp/big" "$URL2/v1/users/batch")
[ "$code" = 413 ] || fail "a body over --max-body-mb answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Moesif-Application-Id: $APP" \
    -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big" "$URL2/v1/users/batch")
[ "$code" = 413 ] || fail "a chunked body over --max-body-mb answered $code"
head -c 1200000 /dev/zero | tr '\0' ' ' | gzip -c >"$tmp/big.gz"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Moesif-Application-Id: $APP" \
    -H 'Content-Encoding: gzip' --data-binary @"$tmp/big.gz" "$URL2/v1/users/batch")
[ "$code" = 413 ] || fail "a gzip body that inflates over --max-body-mb answered $code"
ok "a body over the cap is a 413 (Content-Length, chunked, and after gunzip)"
kill -TERM "$pid2"
wait "$pid2"
rc=$?
pid2=""
[ "$rc" = 0 ] || fail "moesif-dev exited $rc on SIGTERM"
ok "exits 0 on SIGTERM"

# --- the record file, then reset ---------------------------------------------------------
cmp -s "$tmp/record.ndjson" "$expected" || {
    diff "$expected" "$tmp/record.ndjson" | head -20 >&2
    fail "--record does not hold the accepted users byte for byte"
}
ok "--record holds each accepted user as received, $(wc -l <"$expected") lines"

# the timeline counts every accepted user object once, in 10 ms steps
stats
req GET /_dev/timeline
[ "$code" = 200 ] || fail "GET /_dev/timeline answered $code"
expect_json "$tmp/last_body" '[d["step_ms"],d["late"],sum(d["upserts"])]' \
    "[10,0,$(json "$tmp/stats.json" 'd["upserts"]')]" "the timeline sums to the upserts of /_dev/stats"
expect_json "$tmp/last_body" 'len(d["upserts"]) <= '"$(json "$tmp/stats.json" 'd["uptime_ms"]')"' // 10 + 1' \
    'true' "the timeline ends at the last accepted user"

req POST /_dev/reset
[ "$code" = 200 ] || fail "/_dev/reset answered $code"
req GET /_dev/timeline
expect_json "$tmp/last_body" 'd["upserts"]' '[]' "/_dev/reset empties the timeline"
stats
expect_json "$tmp/stats.json" '[d["requests"],d["users"],d["upserts"],d["conflicts"],d["refused_user"],d["responses"]]' \
    '[0,0,0,0,0,{}]' "/_dev/reset clears stats"
req GET /_dev/users/u-1
[ "$code" = 404 ] || fail "/_dev/reset kept u-1"
single '{"user_id":"t-9","metadata":{"phone":1}}'
user t-9
expect_json "$tmp/user.json" 'd["metadata"]' '{"phone":1}' "/_dev/reset clears the store and the type lock"
req GET /_dev/timeline
expect_json "$tmp/last_body" 'sum(d["upserts"])' '1' "the timeline counts again after /_dev/reset"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
[ "$rc" = 0 ] || fail "moesif-dev exited $rc on SIGTERM"
echo "all $checks checks passed"
