#!/usr/bin/env bash
# test_run_refused_connections.sh: moesif-dev refuses connections for 10 s
# in the middle of a run: the pipeline waits and retries, its memory stays
# flat (consumption is held back, then the partitions are paused, as
# /metrics shows), then it completes with nothing lost.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

INPUT=$(mktemp)
rec=$(mktemp)
dev_at_exit rm -f "$INPUT" "$rec"
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20000 3 >"$INPUT"
export INPUT
DEV_TOPICS="users:4 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec --latency-ms 20" dev_start
produce_file users "$INPUT"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
# two lanes of 50-event batches against 20 ms of latency: a run of
# several seconds, so the refusal lands in its middle; 1 MiB of pending
# events (the topic holds about 5 MB) so that the refusal saturates the sink
write_config "$cfg" e2e-refuse sink.max_in_flight=2 batch.max_events=50 \
    sink.retry_backoff_max_ms=1000 sink.max_pending_bytes=1048576
start_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end
wait_for "the first upserts" 60 upserts_at_least 200
port=$(metrics_port "$DEV_TMP/run.log")
[ -n "$port" ] || fail "no metrics port in the log"
before=$(moesif_stat upserts)
curl -sf -X POST "$MOESIF_URL/_dev/faults?refuse_for_ms=10000" >/dev/null
t0=$(date +%s)
rss_before=$(rss_kb "$UP_PID")
peak=0
held_seen=0 paused_max=0 held_s=0
while kill -0 "$UP_PID" 2>/dev/null; do
    r=$(rss_kb "$UP_PID")
    [ "$r" -gt "$peak" ] && peak=$r
    if body=$(curl -sf "http://127.0.0.1:$port/metrics"); then
        [ "$(metric "$body" userpipe_consumption_held)" = 1 ] && held_seen=1
        p=$(metric "$body" userpipe_partitions_paused)
        [ "$p" -gt "$paused_max" ] && paused_max=$p
        held_s=$(metric "$body" userpipe_consumption_held_seconds_total)
    fi
    [ $(($(date +%s) - t0)) -lt 150 ] || fail "the run did not finish"
    sleep 0.5
done
wait "$UP_PID" || { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe exited non-zero"; }
secs=$(($(date +%s) - t0))
[ "$before" -lt "$total" ] || fail "the run ended before the refusal"
[ "$secs" -ge 9 ] || fail "finished ${secs}s after the refusal started: it did not wait"
# flat: consumption paused while nothing could be sent
[ "$peak" -lt $((rss_before + 65536)) ] ||
    fail "RSS grew from ${rss_before} kB to ${peak} kB during the refusal"
[ "$held_seen" = 1 ] || fail "userpipe_consumption_held was never 1 during the refusal"
[ "$paused_max" -gt 0 ] || fail "no partition was paused during the 10 s refusal"
awk -v h="$held_s" 'BEGIN { exit !(h ~ /^[0-9.]+$/ && h + 0 >= 5) }' ||
    fail "userpipe_consumption_held_seconds_total is $held_s after a 10 s refusal"
check_delivery "$rec" --at-least-once || fail "events lost"
committed=$(group_committed_total e2e-refuse users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"
echo "ok: waited ${secs}s, RSS ${rss_before} kB -> peak ${peak} kB, held ${held_s}s with up to $paused_max partitions paused, nothing lost"
