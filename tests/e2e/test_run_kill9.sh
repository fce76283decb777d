#!/usr/bin/env bash
# test_run_kill9.sh: `userpipe run` killed with SIGKILL in the middle of a
# run, then started again: every event is delivered at least once (offsets
# were committed only behind delivered events), and the group ends at the
# end of the topic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

INPUT=$(mktemp)
rec=$(mktemp)
dev_at_exit rm -f "$INPUT" "$rec"
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20000 4 >"$INPUT"
export INPUT
DEV_TOPICS="users:4 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec --latency-ms 20" dev_start
produce_file users "$INPUT"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-kill sink.max_in_flight=2 batch.max_events=50 \
    kafka.auto.commit.interval.ms=200
start_userpipe "$DEV_TMP/run1.log" -c "$cfg" --from-beginning --exit-at-end
wait_for "a third of the events" 90 upserts_at_least $((total / 3))
kill -9 "$UP_PID"
wait "$UP_PID" 2>/dev/null || true
first=$(moesif_stat upserts)
[ "$first" -lt "$total" ] || fail "the first run had finished before the kill"
committed1=$(group_committed_total e2e-kill users)
[ "$committed1" -le "$first" ] || fail "committed $committed1 offsets but only $first events reached Moesif"

run_userpipe "$DEV_TMP/run2.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run2.log" >&2; fail "the restart exited non-zero"; }
check_delivery "$rec" --at-least-once || fail "events lost across the kill"
committed=$(group_committed_total e2e-kill users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"
echo "ok: killed after $first upserts (committed $committed1), restart delivered the rest"
