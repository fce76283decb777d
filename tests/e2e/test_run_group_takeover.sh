#!/usr/bin/env bash
# test_run_group_takeover.sh: two instances in one consumer group over a
# topic of four partitions; one is stopped (SIGTERM) mid-run and exits 0
# after flushing; the other takes its partitions over and finishes: nothing
# lost, offsets committed to the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

INPUT=$(mktemp)
rec=$(mktemp)
dev_at_exit rm -f "$INPUT" "$rec"
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20000 5 >"$INPUT"
export INPUT
DEV_TOPICS="users:4 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec --latency-ms 20" dev_start
produce_file users "$INPUT"
total=$(topic_count users)
want=$("$USERPIPE" transform <"$INPUT" 2>/dev/null | wc -l)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-group sink.max_in_flight=2 batch.max_events=50
start_userpipe "$DEV_TMP/a.log" -c "$cfg" --from-beginning
a=$UP_PID
start_userpipe "$DEV_TMP/b.log" -c "$cfg" --from-beginning
b=$UP_PID
both_assigned() {
    grep -q 'partition assigned' "$DEV_TMP/a.log" && grep -q 'partition assigned' "$DEV_TMP/b.log"
}
committed_all() {
    [ "$(group_committed_total e2e-group users)" -eq "$total" ]
}
wait_for "both instances to have partitions" 150 both_assigned
wait_for "a quarter of the events" 90 upserts_at_least $((total / 4))
kill -TERM "$a"
wait "$a" || { tail -20 "$DEV_TMP/a.log" >&2; fail "the stopped instance exited non-zero"; }
grep -q 'msg="stopped"' "$DEV_TMP/a.log" || fail "instance A did not stop cleanly"
wait_for "instance B to deliver everything" 150 upserts_at_least "$want"
wait_for "the group's commits to reach the end" 30 committed_all
kill -TERM "$b"
wait "$b" || { tail -20 "$DEV_TMP/b.log" >&2; fail "instance B exited non-zero"; }
check_delivery "$rec" --at-least-once || fail "events lost in the takeover"
echo "ok: A stopped mid-run, B took over; $want events delivered"
