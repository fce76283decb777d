#!/usr/bin/env bash
# test_kafka_leader_kill.sh (issue 13): kill -9, mid-run, the broker that
# leads the source partitions, the dead-letter partition and the schema
# partition of a three-node Apache Kafka (replication 3,
# min.insync.replicas=2) and coordinates the consumer group, and start it
# again once the others took over.  The topics are created (kafka_admin.py)
# with the group's coordinator as every partition's preferred leader, so
# one kill moves all four roles at once; the input has a reject every
# tenth event (the dead-letter producer writes all along) and, in its last
# third, new metadata keys (the schema topic is written and read back after
# the kill).  fault_config (lib.sh) says why the read-ahead is small, the
# schema seeded and the session timeout 45 s.
#
# Nothing may be lost (check_nothing_lost): every valid event in
# moesif-dev (at least once), every reject in the dead-letter topic exactly
# once (the producer is idempotent: a retry across the leader change must
# not write a record twice; counted by content and by source offset with
# python3-kafka), the run ends by itself (--exit-at-end) with the committed
# offsets equal to the end offsets (the Admin API).  Prints the figures:
# events delivered, duplicates in moesif-dev (at-least-once allows some),
# dead-letter duplicates (must be 0), seconds from the kill to new leaders
# (sampled) and to the first dead-letter record written after it (the
# broker's LogAppendTime: the time to recover).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DEV_KAFKA_NODES=3

N=40000
GROUP=kafka-leader-kill
TOPICS="users userpipe-schema users.dlq"
rec=$(mktemp)
dev_at_exit rm -f "$rec"
fault_input "$N" 13
# no topic from dev-up: kafka_admin.py creates them led by VICTIM
DEV_TOPICS=" " MOESIF_DEV_ARGS="--record $rec --latency-ms 30" dev_start
VICTIM=$(kadmin coordinator "$GROUP") || fail "no coordinator for $GROUP"
# (the dead-letter records stamped by the broker: the first one after the
# kill says when the producer recovered, to the millisecond)
kadmin create "$VICTIM" users:3 users.dlq:1:message.timestamp.type=LogAppendTime userpipe-schema:1:retention.ms=-1,retention.bytes=-1 || fail "cannot create the topics"
wait_for "broker $VICTIM to lead every partition" 30 led_by "$VICTIM" $TOPICS
fault_run "$GROUP"
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

check_nothing_lost "$rec" "$DEV_TMP/run.log" "$GROUP" $((killed_at / 1000000))
echo "figures: $want valid events ($new_keys with a new key), $nrej rejects; killed broker $VICTIM (leader of every partition, the group's coordinator) at $up0 upserts, $dlq0 dead-letter records, $com0 committed"
[ "$dlq_first_after_ms" -ge 0 ] || fail "no dead-letter record was written after the kill"
echo "figures: from the kill: new leaders of every partition after ${t_lead}s (sampled), the first dead-letter record written $(awk -v ms="$dlq_first_after_ms" 'BEGIN { printf "%.1f", ms / 1000 }')s after (the broker's LogAppendTime: the time to recover); broker $VICTIM down ${down_s}s, back in every ISR ${t_isr}s after its start"
echo "figures: moesif-dev received $got for $want ($dup duplicates, at-least-once; no revocation mid-run); dead-letter $dlq"
echo "ok: nothing lost across the kill -9 of the leader of users, users.dlq and userpipe-schema; no dead-letter duplicate; $committed"
