#!/usr/bin/env bash
# test_kafka_group_kill.sh (issue 13): three instances of `userpipe run`
# in one consumer group on Apache Kafka's real group coordinator, over a
# topic of six partitions.  Mid-run one is killed with kill -9 and another
# stopped with SIGTERM; the survivor takes every partition over.  Nothing
# lost (every valid event in moesif-dev, at least once: the killed one's
# uncommitted events come again), every reject in the dead-letter topic,
# and the survivor's commits exact: each partition's committed offset is
# its end offset, no more, no less (kafka-dev's coordinator lost commits
# in three-member rebalances; this one must not).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

INPUT=$(mktemp)
rec=$(mktemp)
dev_at_exit rm -f "$INPUT" "$rec"
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20000 6 >"$INPUT"
export INPUT
DEV_TOPICS="users:6 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec --latency-ms 20" dev_start
produce_file users "$INPUT"
total=$(topic_count users)
want=$("$USERPIPE" transform <"$INPUT" 2>/dev/null | wc -l)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-group-kill sink.max_in_flight=2 batch.max_events=50 \
    kafka.auto.commit.interval.ms=200
pids=()
for n in a b c; do
    start_userpipe "$DEV_TMP/$n.log" -c "$cfg" --from-beginning
    pids+=("$UP_PID")
done
all_assigned() {
    for n in a b c; do
        grep -q 'partition assigned' "$DEV_TMP/$n.log" || return 1
    done
}
wait_for "all three instances to have partitions" 90 all_assigned
wait_for "a quarter of the events" 90 upserts_at_least $((total / 4))
at_kill=$(moesif_stat upserts)
kill -9 "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
t0=$SECONDS
kill -TERM "${pids[1]}"
wait "${pids[1]}" || { tail -20 "$DEV_TMP/b.log" >&2; fail "the stopped instance exited non-zero"; }
grep -q 'msg="stopped"' "$DEV_TMP/b.log" || fail "instance b did not stop cleanly"
committed_all() {
    [ "$(group_committed_total e2e-group-kill users)" -eq "$total" ]
}
wait_for "the survivor's commits to reach the end" 180 committed_all
recover=$((SECONDS - t0))
sleep 2 # commits must not move past the end either
kill -TERM "${pids[2]}"
wait "${pids[2]}" || { tail -20 "$DEV_TMP/c.log" >&2; fail "the survivor exited non-zero"; }

marks=$(kafka_ctl watermarks users | tr ' ' '\n' | sed -n 's/^\([0-9]*\):[0-9]*\.\.\([0-9]*\)$/\1 \2/p' | sort -n)
offs=$(group_offsets e2e-group-kill users | sort -n)
[ "$marks" = "$offs" ] || fail "committed offsets differ from the ends: ends [$marks] committed [$offs]"
check_delivery "$rec" --at-least-once || fail "events lost across the kill and the stop"
got=$(grep -c . "$rec")
echo "ok: a killed at $at_kill upserts, b stopped; c finished in ${recover}s; $want events, moesif-dev got $got ($((got - want)) again after the kill); commits exact"
