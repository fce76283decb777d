#!/usr/bin/env bash
# test_run_observability.sh: /metrics scraped during an end-to-end run has
# counts that match what moesif-dev and the dead-letter topic hold;
# /healthz answers; /readyz fails while moesif-dev refuses connections and
# recovers after; a backfill on a pseudo-terminal (script(1)) shows a live
# progress line and a closing summary; the application id is in no log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEV_TOPICS="users:2 users.dlq:1 userpipe-schema:1" dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)
cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-metrics sink.retry_backoff_max_ms=500

start_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning
wait_for "the metrics port in the log" 30 bash -c "grep -q 'metrics listening' '$DEV_TMP/run.log'"
port=$(metrics_port "$DEV_TMP/run.log")
url=http://127.0.0.1:$port
# settled: every event sent (userpipe's count: a user's updates merged
# into one object are one upsert in moesif-dev) or dead-lettered
settled() {
    local sent
    sent=$(metric "$(curl -sf "$url/metrics")" userpipe_users_sent_total)
    [ "$sent" != missing ] && [ $((sent + $(topic_count users.dlq))) -ge "$total" ]
}
wait_for "every event settled" 90 settled
sleep 1 # one more publish (4 a second)
body=$(curl -sf "$url/metrics") || fail "GET /metrics"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" = 200 ] || fail "/healthz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] || fail "/readyz not ready while running"

[ "$(metric "$body" userpipe_events_consumed_total)" = "$total" ] ||
    fail "consumed $(metric "$body" userpipe_events_consumed_total), topic holds $total"
upserts=$(moesif_stat upserts)
sent=$(metric "$body" userpipe_users_sent_total)
merged=$(metric "$body" userpipe_updates_merged_total)
# the sample repeats users without a session token: some updates merge
[ "$merged" -gt 0 ] || fail "no update merged (userpipe_updates_merged_total $merged)"
[ $((sent - merged)) = "$upserts" ] ||
    fail "users_sent $sent less merged $merged, moesif-dev stored $upserts objects"
[ "$(metric "$body" userpipe_events_accepted_total)" = "$sent" ] ||
    fail "accepted $(metric "$body" userpipe_events_accepted_total), sent $sent"
consume_all_json users.dlq >"$DEV_TMP/dlq.json"
printf '%s\n' "$body" >"$DEV_TMP/metrics.txt"
/usr/bin/python3 - "$DEV_TMP/dlq.json" "$DEV_TMP/metrics.txt" <<'PY' || fail "rejects by code differ from the dead-letter topic"
import collections, json, re, sys
dlq = collections.Counter()
for line in open(sys.argv[1]):
    m = json.loads(line)
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    dlq[h["userpipe.error.code"]] += 1
got = {}
for line in open(sys.argv[2]):
    m = re.match(r'userpipe_events_rejected_total\{code="([a-z_]+)"\} (\d+)', line)
    if m:
        got[m.group(1)] = int(m.group(2))
for code, n in dlq.items():
    assert got.get(code) == n, (code, n, got.get(code))
assert sum(got.values()) == sum(dlq.values()), (got, dlq)
print("rejects by code match the dead-letter topic: %s" % dict(dlq))
PY
grep -q '^userpipe_request_duration_seconds_count ' <<<"$body" || fail "no latency histogram"
grep -q '^userpipe_consumer_lag{topic="users",partition="0"} 0' <<<"$body" || fail "no lag of 0 for users/0"

# Moesif unreachable: /readyz fails once a request fails to connect
curl -sf -X POST "$MOESIF_URL/_dev/faults?refuse_for_ms=6000" >/dev/null
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20 9 >"$DEV_TMP/more.ndjson"
produce_file users "$DEV_TMP/more.ndjson"
not_ready() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 503 ]
}
ready() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]
}
wait_for "/readyz to fail while Moesif refuses connections" 20 not_ready
wait_for "/readyz to recover" 30 ready
kill -TERM "$UP_PID"
wait "$UP_PID" || fail "userpipe exited non-zero on SIGTERM"
grep -q "$APP_ID" "$DEV_TMP/run.log" && fail "the application id appears in the log"

# a backfill on a terminal: the live progress line and the summary
cfg2=$DEV_TMP/run2.properties
write_config "$cfg2" e2e-progress
script -qfec "env MOESIF_APPLICATION_ID=$APP_ID $USERPIPE run -c $cfg2 --from-beginning --exit-at-end -X log.level=warn" \
    "$DEV_TMP/tty.out" >/dev/null </dev/null || fail "the backfill on a terminal failed"
grep -q $'\r' "$DEV_TMP/tty.out" || fail "no line updated in place"
grep -q 'events/s' "$DEV_TMP/tty.out" || fail "no rate in the progress line"
grep -Eq "$((total + 20))/$((total + 20)) events" "$DEV_TMP/tty.out" || fail "the progress never reached the total"
grep -q 'done after' "$DEV_TMP/tty.out" || fail "no closing summary"
echo "ok: metrics match, readyz followed Moesif, progress shown on a terminal"
