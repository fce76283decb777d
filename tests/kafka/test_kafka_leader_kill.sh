#!/usr/bin/env bash
# test_kafka_leader_kill.sh (issue 13): kill -9, mid-run, the broker that
# leads the source partitions, the dead-letter partition and the schema
# partition of a three-node Apache Kafka (replication 3,
# min.insync.replicas=2), and start it again once the others took over.  The
# topics are created with that broker as every partition's preferred
# leader, so one kill moves all three leaderships at once; the input has
# a reject every tenth event (the dead-letter producer writes all along)
# and, in its last 40%, new metadata keys (the schema topic is written and
# read back after the kill).
#
# Nothing may be lost: every valid event in moesif-dev (at least once),
# every reject in the dead-letter topic exactly once (the producer is
# idempotent: a retry across the leader change must not write a record
# twice; counted by content and by source offset with python3-kafka), the
# run ends by itself (--exit-at-end) with the committed offsets equal to
# the end offsets (the Admin API).  Prints the figures: events delivered,
# duplicates in moesif-dev (at-least-once allows some), dead-letter
# duplicates (must be 0), seconds from the kill to new leaders, to the
# next dead-letter record, to the next commit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DEV_KAFKA_NODES=3

N=40000
GROUP=kafka-leader-kill
TOPICS="users userpipe-schema users.dlq"
INPUT=$(mktemp)
rec=$(mktemp)
dev_at_exit rm -f "$INPUT" "$rec"
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" "$N" 13 | with_rejects |
    with_new_keys $((N * 66 / 100)) >"$INPUT"
export INPUT
# no topic from dev-up: kafka_admin.py creates them led by VICTIM
DEV_TOPICS=" " MOESIF_DEV_ARGS="--record $rec --latency-ms 30" dev_start
VICTIM=$(kadmin coordinator "$GROUP") || fail "no coordinator for $GROUP"
# (the dead-letter records stamped by the broker: the first one after the
# kill says when the producer recovered, to the millisecond)
kadmin create "$VICTIM" users:3 users.dlq:1:message.timestamp.type=LogAppendTime userpipe-schema:1 || fail "cannot create the topics"
wait_for "broker $VICTIM to lead every partition" 30 led_by "$VICTIM" $TOPICS
produce_file users "$INPUT"
total=$(topic_count users)
[ "$total" -eq "$(grep -c . "$INPUT")" ] || fail "users holds $total of $(grep -c . "$INPUT") events"
"$USERPIPE" transform --rejects "$DEV_TMP/rejects.ndjson" <"$INPUT" >"$DEV_TMP/accepted.ndjson" 2>/dev/null
want=$(wc -l <"$DEV_TMP/accepted.ndjson")
nrej=$(wc -l <"$DEV_TMP/rejects.ndjson")
new_keys=$(grep -c '"new_key_' "$DEV_TMP/accepted.ndjson")

cfg=$DEV_TMP/run.properties
# a small read-ahead (1 MiB in the sink, 256 KiB in librdkafka's queue),
# so the rejects reach the dead-letter topic at the pace of moesif-dev,
# and most of them after the kill
write_config "$cfg" $GROUP sink.max_in_flight=1 batch.max_events=50 \
    kafka.auto.commit.interval.ms=200 sink.max_pending_bytes=1048576 \
    kafka.queued.max.messages.kbytes=256
# the session timeout of production (librdkafka's default, 45 s), not the
# 6 s of write_config: KRaft moves the coordinator only after fencing the
# dead broker (broker.session.timeout.ms, 9 s), and a shorter session
# expires first, revoking the partitions and consuming again from the
# last commit (at-least-once, but then a second dead-letter record of an
# offset is userpipe's, not the producer's: the test asserts no revocation
# before the end, so that every duplicate would be the producer's)
# the schema of the generated keys claimed before the run: a run's first
# events wait for their claims, parked (up to 100,000 events, no byte
# bound), while the rejects need none and would all go to the dead-letter
# topic in the first seconds, before the kill
head -n 200 "$INPUT" | "$USERPIPE" transform --schema-out "$DEV_TMP/seed.json" --rejects /dev/null >/dev/null
"$USERPIPE" schema import -c "$cfg" "$DEV_TMP/seed.json" >/dev/null || fail "schema import failed"
start_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end \
    -X kafka.session.timeout.ms=45000
pid=$UP_PID
wait_for "a quarter of the events" 120 upserts_at_least $((want / 4))
up0=$(moesif_stat upserts)
dlq0=$(topic_count users.dlq)
[ "$dlq0" -lt $((nrej / 2)) ] || fail "$dlq0 of $nrej rejects were written before the kill: the read-ahead is not bounded"
com0=$(group_committed_total $GROUP users)
kafka_node kill "$VICTIM"
killed_at=$(date +%s%N)
since_kill() { awk -v ns=$(($(date +%s%N) - killed_at)) 'BEGIN { printf "%.1f", ns / 1e9 }'; }
# one loop samples until the run ends: the first moment every partition
# has a new leader, the first moment the dead-letter topic grew; it starts
# the broker again once the others took over (10 s after the kill at the
# earliest), and notes when it is back in every ISR
d="" t_lead="" t_dlq="" t_isr="" started_at="" down_s=""
while running "$pid"; do
    now=$(since_kill)
    if [ -z "$t_lead" ] && led_without "$VICTIM" $TOPICS; then
        t_lead=$now
    fi
    # (the dead-letter partition has no live leader before, where a
    # watermark query waits; CTL_TIMEOUT bounds the sample to 2 s)
    if [ -n "$t_lead" ] && [ -z "$t_dlq" ] && d=$(CTL_TIMEOUT=2 topic_count users.dlq 2>/dev/null) &&
        [ "$d" -gt "$dlq0" ]; then
        t_dlq=$now
    fi
    echo "$now dlq=${d:-?} leaders=$(leaders $TOPICS | tr ' ' ,)" >>"$DEV_TMP/samples.txt"
    if [ -z "$started_at" ] && awk -v a="$now" 'BEGIN { exit !(a >= 10) }'; then
        # back once the survivors took over (KRaft fences a silent broker
        # after broker.session.timeout.ms, 9 s) and wrote a dead-letter
        # record, so the recovery measured is the failover's, not the
        # restart's
        if [ -z "$t_lead" ] || [ -z "$t_dlq" ]; then
            awk -v a="$now" 'BEGIN { exit !(a >= 60) }' &&
                fail "60 s after the kill: new leaders ${t_lead:-no}, a dead-letter record ${t_dlq:-no}"
            sleep 0.3
            continue
        fi
        kafka_node start "$VICTIM"
        started_at=$now down_s=$now
    fi
    if [ -n "$started_at" ] && [ -z "$t_isr" ] && in_sync "$VICTIM" $TOPICS; then
        t_isr=$(awk -v a="$(since_kill)" -v b="$started_at" 'BEGIN { printf "%.1f", a - b }')
    fi
    sleep 0.3
done
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited $rc"; }
[ -n "$started_at" ] || fail "the run ended $(since_kill) s after the kill, before the broker came back (more events)"
[ -n "$t_isr" ] || t_isr=$(seconds_until 120 in_sync "$VICTIM" $TOPICS)+

check_delivery "$rec" --at-least-once || fail "events lost across the leader kill"
kadmin committed $GROUP users >"$DEV_TMP/committed.txt" ||
    { cat "$DEV_TMP/committed.txt" >&2; fail "committed offsets differ from the end offsets"; }
dlq=$(kadmin records users.dlq $((killed_at / 1000000))) || fail "cannot read users.dlq: $dlq"
eval "$(tr ' ' '\n' <<<"$dlq" | grep -E '^[a-z_]+=[0-9]+$' | sed 's/^/dlq_/')"
[ "$dlq_same_content" -eq 0 ] && [ "$dlq_same_source" -eq 0 ] ||
    fail "dead-letter records written twice: $dlq"
[ "$dlq_records" -eq "$nrej" ] || fail "the dead-letter topic holds $dlq_records records, the transform rejects $nrej"
revoked=$(sed '/msg="every partition reached its end offset"/,$d' "$DEV_TMP/run.log" | grep -c 'partitions revoked' || true)
[ "$revoked" -eq 0 ] || fail "the partitions were revoked $revoked times mid-run: $(grep -m1 'SESSTMOUT\|revok' "$DEV_TMP/run.log")"
got=$(grep -c . "$rec")
dup=$((got - want))
echo "figures: $want valid events ($new_keys with a new key), $nrej rejects; killed broker $VICTIM (leader of every partition, the group's coordinator) at $up0 upserts, $dlq0 dead-letter records, $com0 committed"
[ "$dlq_first_after_ms" -ge 0 ] || fail "no dead-letter record was written after the kill"
echo "figures: from the kill: new leaders of every partition after ${t_lead}s (sampled), the first dead-letter record written $(awk -v ms="$dlq_first_after_ms" 'BEGIN { printf "%.1f", ms / 1000 }')s after (the broker's LogAppendTime: the time to recover); broker $VICTIM down ${down_s}s, back in every ISR ${t_isr}s after its start"
echo "figures: moesif-dev received $got for $want ($dup duplicates, at-least-once; no revocation mid-run); dead-letter $dlq"
echo "ok: nothing lost across the kill -9 of the leader of users, users.dlq and userpipe-schema; no dead-letter duplicate; $(tail -n 1 "$DEV_TMP/committed.txt")"
