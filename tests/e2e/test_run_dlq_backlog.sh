#!/usr/bin/env bash
# test_run_dlq_backlog.sh: a backlog of rejects the dead-letter topic
# cannot take for a while (its produce requests fail, retried by the
# idempotent producer) holds consumption back (userpipe_consumption_held)
# instead of piling every reject into librdkafka's queue; once the topic
# takes them again, every reject is there and every offset is committed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kafka_dev_only "it injects NOT_LEADER_FOR_PARTITION into Produce answers; tests/kafka/test_kafka_leader_kill.sh is the real-cluster equivalent"

# four dead-letter partitions: 30,000 records with their headers stay
# under kafka-dev's 5 MiB a partition (kafka_ctl check says if not)
DEV_TOPICS="users:4 users.dlq:4 userpipe-schema:1" dev_start
# 30,000 events whose metadata is not an object: every one is a reject
/usr/bin/python3 -c '
import json
for i in range(30000):
    print(json.dumps({"user_id": "u%05d" % i, "metadata": ["not", "an", "object"]}))
' >"$DEV_TMP/rejects.ndjson"
produce_file users "$DEV_TMP/rejects.ndjson"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-dlq-backlog
# the next 60 Produce requests fail with a retriable error: the
# dead-letter producer retries each after 100 ms, a stall of some seconds
kafka_ctl push-errors Produce NOT_LEADER_FOR_PARTITION 60 >/dev/null
start_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end
wait_for "the metrics port" 30 grep -q 'metrics listening' "$DEV_TMP/run.log"
port=$(metrics_port "$DEV_TMP/run.log")
[ -n "$port" ] || fail "no metrics port in the log"
held_seen=0 consumed_at_hold=""
t0=$(date +%s)
while kill -0 "$UP_PID" 2>/dev/null; do
    if body=$(curl -sf "http://127.0.0.1:$port/metrics"); then
        if [ "$(metric "$body" userpipe_consumption_held)" = 1 ] && [ "$held_seen" = 0 ]; then
            held_seen=1
            consumed_at_hold=$(metric "$body" userpipe_events_consumed_total)
        fi
    fi
    [ $(($(date +%s) - t0)) -lt 120 ] || fail "the run did not finish in 120 s"
    sleep 0.2
done
wait "$UP_PID" || { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe exited non-zero"; }
[ "$held_seen" = 1 ] || fail "consumption was never held back while the dead-letter topic refused its records"
[ "$consumed_at_hold" -lt "$total" ] ||
    fail "held only after consuming all $total events: the dead-letter backlog was not bounded"
kafka_ctl check users.dlq >/dev/null || fail "kafka-dev dropped dead-letter records: $(kafka_ctl check users.dlq 2>&1)"
in_dlq=$(topic_count users.dlq)
[ "$in_dlq" -ge "$total" ] || fail "the dead-letter topic holds $in_dlq of $total rejects"
committed=$(group_committed_total e2e-dlq-backlog users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"
echo "ok: consumption held after $consumed_at_hold of $total events; $in_dlq rejects in the dead-letter topic, $committed committed"
