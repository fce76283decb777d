#!/usr/bin/env bash
# test_run_poison_input.sh: messages made to stop or wedge the pipeline
# (issue 20), through the real binary, on kafka-dev and on Apache Kafka.
# Every case ends the same way: the pipeline keeps running (or stops with
# a sentence where the configuration or the environment is wrong), each
# message is in moesif-dev or in the dead-letter topic with its code, and
# the committed offsets reach the end.
#   1. one partition of adversarial messages in order (tests/e2e/
#      poison_cases.py prints the table): valid -> empty -> tombstone ->
#      valid -> tombstone -> empty -> broken -> empty -> tombstone (one code
#      each whatever came before; tombstones produced with kcat -Z), a NUL
#      in a key at every depth and place (invalid_key; the same user's next
#      event passes: no wedge), every kind of key and value, sizes at and
#      around transform.max_event_bytes and transform.max_depth, a flood of
#      new keys past schema.max_keys (schema_full), then known keys
#   2. source.tombstones=skip: a tombstone is committed, not dead-lettered
#   3. a claim that never comes back (kafka-dev: the schema topic's leader
#      is taken down, its other topics' leaders stay): the event waits
#      schema.claim_timeout_ms, its keys are claimed again, and at twice
#      the timeout it is dead-lettered as claim_timeout; /metrics shows the
#      oldest waiting event's age meanwhile; the events behind it follow
#   4. Apache Kafka only: a schema topic compacted, or with a finite
#      retention, is refused at start with the kafka-configs.sh command
#      (kafka-dev's mock cluster answers no DescribeConfigs: userpipe warns
#      and goes on, which is checked there instead); the schema topic
#      deleted mid-run stops userpipe with a sentence, and a restart
#      creates it again and takes every message to its end
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rec=$(mktemp)
dev_at_exit rm -f "$rec"
# five mock brokers (kafka-dev; a real node ignores it): part 3 needs a
# broker that leads neither late nor late.dlq nor coordinates the group,
# and the mock gives each partition a random leader among its brokers, so
# with three the three roles took every broker in about one run of five
DEV_BROKERS=5 DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1 skip:1 skip.dlq:1 late:1 late.dlq:1 live:1 live.dlq:1" \
    MOESIF_DEV_ARGS="--record $rec" dev_start
py=/usr/bin/python3
cases=$E2E_ROOT/tests/e2e/poison_cases.py

# produce_plan TOPIC DIR: produces poison_cases.py's groups in order, each
# with one kcat call (-Z: an empty value is sent as NULL, a tombstone)
produce_plan() {
    local topic=$1 path kind
    while read -r path kind; do
        case $kind in
        lines | empty) kcat -P -b "$BOOTSTRAP" -t "$topic" -p 0 -K $'\t' -l "$path" ;;
        tomb) kcat -P -b "$BOOTSTRAP" -t "$topic" -p 0 -K $'\t' -Z -l "$path" ;;
        esac
    done <"$2/plan"
}

# ---- 1. the adversarial partition -----------------------------------------
$py "$cases" gen "$DEV_TMP/cases"
produce_plan users "$DEV_TMP/cases"
total=$(topic_count users)
want=$($py -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$DEV_TMP/cases/expect.json")
[ "$total" -eq "$want" ] || fail "loaded $total messages, want $want"

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-poison transform.max_event_bytes=4096 transform.max_depth=8 \
    schema.max_keys=60
RUN_TIMEOUT=120 run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero"; }
consume_all_json users.dlq >"$DEV_TMP/dlq.json"
$py "$cases" check "$DEV_TMP/cases" "$rec" "$DEV_TMP/dlq.json" ||
    fail "a poison message did not end where it should"
committed=$(group_committed_total e2e-poison users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"
if [ "$DEV_KAFKA" = apache ]; then
    grep -q 'cannot check the schema topic' "$DEV_TMP/run.log" &&
        fail "Apache Kafka answers DescribeConfigs, yet the check was skipped"
else
    # librdkafka's mock cluster has no DescribeConfigs: a warning, no stop
    grep -q 'cannot check the schema topic.*not supported by broker' "$DEV_TMP/run.log" ||
        fail "kafka-dev: no warning that the schema topic's configuration is unchecked"
fi
echo "ok 1: $total adversarial messages, each in moesif-dev or the dead-letter topic with its code; committed $committed"

# ---- 2. source.tombstones=skip ---------------------------------------------
printf 'a\t{"user_id":"skip-1"}\n' | kcat -P -b "$BOOTSTRAP" -t skip -p 0 -K $'\t'
printf 'a\t\n' | kcat -P -b "$BOOTSTRAP" -t skip -p 0 -K $'\t' -Z
printf 'a\t\n' | kcat -P -b "$BOOTSTRAP" -t skip -p 0 -K $'\t'
printf 'a\t{"user_id":"skip-2"}\n' | kcat -P -b "$BOOTSTRAP" -t skip -p 0 -K $'\t'
RUN_TIMEOUT=60 run_userpipe "$DEV_TMP/skip.log" -c "$cfg" -X source.topics=skip \
    -X kafka.group.id=e2e-skip -X source.tombstones=skip --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/skip.log" >&2; fail "userpipe run (skip) exited non-zero"; }
grep -q 'tombstones_skipped=1' "$DEV_TMP/skip.log" || fail "the tombstone was not skipped"
consume_all skip.dlq '%o %h\n' >"$DEV_TMP/skip-dlq.txt"
[ "$(wc -l <"$DEV_TMP/skip-dlq.txt")" -eq 1 ] && grep -q 'userpipe.error.code=empty_message' "$DEV_TMP/skip-dlq.txt" ||
    { cat "$DEV_TMP/skip-dlq.txt" >&2; fail "skip.dlq should hold the empty message only"; }
[ "$(group_committed_total e2e-skip skip)" -eq 4 ] || fail "skip: not committed to the end"
grep -q '"user_id":"skip-2"' "$rec" || fail "skip: the event after the tombstone did not arrive"
echo "ok 2: source.tombstones=skip committed the tombstone, dead-lettered the empty message only"

# ---- 3. a claim that never comes back ----------------------------------------
if [ "$DEV_KAFKA" = apache ]; then
    echo "skip 3 on Apache Kafka: taking the schema topic's leader away needs kafka-dev's broker-down (a real single node leads every topic); the deleted topic of part 4 is the real-broker case"
else
    # a schema topic led by a broker that leads neither late nor late.dlq
    # and does not coordinate the group (librdkafka's mock picks broker
    # crc32(group) % brokers in its list, rdkafka_mock.c
    # rd_kafka_mock_cluster_get_coord; ids 1..N in order)
    leader_of() { kafka_ctl leaders "$1" | tr ' ' '\n' | sed -n 's/^0:\([0-9]*\).*/\1/p' | head -n 1; }
    nbrokers=$(kafka_ctl limits | sed -n 's/.*brokers=\([0-9]*\).*/\1/p')
    coord=$($py -c 'import sys, zlib; print(zlib.crc32(b"e2e-late") % int(sys.argv[1]) + 1)' "$nbrokers")
    busy="$(leader_of late) $(leader_of late.dlq) $coord"
    stopic=
    for i in $(seq 16); do
        kafka_ctl create-topic "never-$i:1" >/dev/null
        l=$(leader_of "never-$i")
        case " $busy " in *" $l "*) ;; *) stopic=never-$i; sleader=$l; break ;; esac
    done
    [ -n "$stopic" ] || fail "no schema topic with a leader of its own among 16"
    cat >"$DEV_TMP/late.ndjson" <<'EOF'
{"user_id":"late-1","metadata":{"k_never":1}}
{"user_id":"late-2","metadata":{"k_never":2}}
{"user_id":"late-3"}
EOF
    start_userpipe "$DEV_TMP/late.log" -c "$cfg" -X source.topics=late -X kafka.group.id=e2e-late \
        -X schema.topic="$stopic" -X schema.claim_timeout_ms=3000 --from-beginning
    wait_for "the schema read" 30 grep -q 'msg="started"' "$DEV_TMP/late.log"
    kafka_ctl broker-down "$sleader" >/dev/null
    dev_at_exit "$KAFKA_DEV ctl $KAFKA_CTL broker-up all"
    kcat -P -b "$BOOTSTRAP" -t late -p 0 -l "$DEV_TMP/late.ndjson"
    port=""
    wait_for "the metrics port" 10 grep -q 'metrics listening' "$DEV_TMP/late.log"
    port=$(metrics_port "$DEV_TMP/late.log")
    # waiting: the oldest event's age grows on /metrics
    parked() { [ "$(metric "$(curl -sf "http://127.0.0.1:$port/metrics")" userpipe_events_waiting_for_schema)" = 2 ]; }
    wait_for "two events waiting for claims" 30 parked
    sleep 1.5
    body=$(curl -sf "http://127.0.0.1:$port/metrics")
    age=$(metric "$body" userpipe_events_waiting_for_schema_oldest_seconds)
    waiting=$(metric "$body" userpipe_events_waiting_for_schema)
    $py -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 1 else 1)' "$age" ||
        fail "oldest waiting age $age (waiting $waiting)"
    wait_for "claim_timeout records" 30 bash -c "kcat -C -b $BOOTSTRAP -t late.dlq -o beginning -e -q -f '%h\n' | grep -c 'userpipe.error.code=claim_timeout' | grep -qx 2"
    grep -q 'claims not read back in time: claiming again' "$DEV_TMP/late.log" ||
        fail "the keys were not claimed again before the reject"
    wait_for "late-3 in moesif-dev" 20 grep -q '"user_id":"late-3"' "$rec"
    wait_for "the commit of late" 20 bash -c "[ \$($KAFKA_DEV ctl $KAFKA_CTL committed e2e-late late | tr ' ' '\n' | sed -n 's/^0://p') = 3 ]"
    body=$(curl -sf "http://127.0.0.1:$port/metrics")
    [ "$(metric "$body" userpipe_events_waiting_for_schema_oldest_seconds)" = 0 ] ||
        fail "the oldest waiting age did not return to 0"
    kill -TERM "$UP_PID"
    wait "$UP_PID" || fail "userpipe (late) exited non-zero after SIGTERM"
    kafka_ctl broker-up all >/dev/null
    echo "ok 3: a claim that never came back: waited ${age}s and more on /metrics, claimed again, claim_timeout at twice schema.claim_timeout_ms, the events behind it delivered, committed 3"
fi

# ---- 4. the schema topic's configuration, and its deletion (Apache) ---------
if [ "$DEV_KAFKA" != apache ]; then
    echo "skip 4 on kafka-dev: librdkafka's mock cluster answers no DescribeConfigs (checked in 1: a warning) and deletes no topic"
    exit 0
fi
kadmin() { "$py" "$E2E_ROOT/tests/kafka/kafka_admin.py" "$BOOTSTRAP" "$@"; }
kadmin create 1 bad-compact:1:cleanup.policy=compact bad-retention:1:retention.ms=86400000 \
    bad-bytes:1:retention.bytes=1048576,retention.ms=-1 || fail "cannot create the bad schema topics"
for t in bad-compact bad-retention bad-bytes; do
    rc=0
    RUN_TIMEOUT=60 run_userpipe "$DEV_TMP/$t.log" -c "$cfg" -X schema.topic=$t --exit-at-end || rc=$?
    [ $rc -eq 2 ] || fail "schema.topic=$t: exit $rc, want 2"
    grep -q "userpipe run: the schema topic '$t' has .*kafka-configs.sh --bootstrap-server .* --alter --entity-type topics --entity-name $t --add-config cleanup.policy=delete,retention.ms=-1,retention.bytes=-1" "$DEV_TMP/$t.log" ||
        { cat "$DEV_TMP/$t.log" >&2; fail "schema.topic=$t: no sentence with the fix"; }
done
echo "ok 4a: compacted, time- and size-limited schema topics refused with the kafka-configs.sh command"

# deleted mid-run: the next claim stops userpipe with a sentence (exit 1);
# the restart creates the topic again and every message reaches its end
for i in 1 2 3; do echo "{\"user_id\":\"live-$i\",\"metadata\":{\"live$i\":1}}"; done >"$DEV_TMP/live1.ndjson"
for i in 4 5 6; do echo "{\"user_id\":\"live-$i\",\"metadata\":{\"live$i\":1}}"; done >"$DEV_TMP/live2.ndjson"
kcat -P -b "$BOOTSTRAP" -t live -p 0 -l "$DEV_TMP/live1.ndjson"
start_userpipe "$DEV_TMP/live.log" -c "$cfg" -X source.topics=live -X kafka.group.id=e2e-live \
    -X schema.topic=live-schema --from-beginning
wait_for "live-3 in moesif-dev" 30 grep -q '"user_id":"live-3"' "$rec"
$py -c "
from kafka import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers='$BOOTSTRAP'); a.delete_topics(['live-schema']); a.close()" ||
    fail "cannot delete live-schema"
sleep 1
kcat -P -b "$BOOTSTRAP" -t live -p 0 -l "$DEV_TMP/live2.ndjson"
rc=0
for ((i = 0; i < 300; i++)); do
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.2
done
wait "$UP_PID" || rc=$?
[ $rc -eq 1 ] || fail "schema topic deleted: exit $rc, want 1"
grep -q "the schema topic 'live-schema' no longer exists" "$DEV_TMP/live.log" ||
    { tail -5 "$DEV_TMP/live.log" >&2; fail "no sentence about the deleted schema topic"; }
RUN_TIMEOUT=90 run_userpipe "$DEV_TMP/live2.log" -c "$cfg" -X source.topics=live -X kafka.group.id=e2e-live \
    -X schema.topic=live-schema --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/live2.log" >&2; fail "the restart after the deletion exited non-zero"; }
grep -q 'schema topic created" topic=live-schema' "$DEV_TMP/live2.log" || fail "the restart did not create the schema topic"
for i in 1 2 3 4 5 6; do
    grep -q "\"user_id\":\"live-$i\"" "$rec" || fail "live-$i never reached moesif-dev"
done
[ "$(group_committed_total e2e-live live)" -eq 6 ] || fail "live: not committed to the end"
echo "ok 4b: the schema topic deleted mid-run stopped userpipe with a sentence; the restart created it and delivered all 6, committed 6"
