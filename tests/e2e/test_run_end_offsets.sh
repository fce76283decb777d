#!/usr/bin/env bash
# test_run_end_offsets.sh: --exit-at-end reads the end offset of every
# partition it is assigned with one ListOffsets round (one request per
# leader), counts empty partitions as at their end, and, when that round
# fails (an error pushed to kafka-dev's next ListOffsets requests), asks
# each partition on its own: either way the backfill ends, with every event
# settled and committed, and the end offsets it logged are the broker's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kafka_dev_only "it makes ListOffsets answer TOPIC_AUTHORIZATION_FAILED, which a real broker does only with an authorizer and ACLs"

DEV_TOPICS="users:12 users.dlq:1 userpipe-schema:1" dev_start
# 20 events keyed by user over 12 partitions: some partitions stay empty
head -n 20 "$SAMPLE" >"$DEV_TMP/twenty.ndjson"
produce_file users "$DEV_TMP/twenty.ndjson"
total=$(topic_count users)
marks=$(kafka_ctl watermarks users)
want=$(tr ' ' '\n' <<<"$marks" | sed -n 's/^\([0-9]*\):[0-9]*\.\.\([0-9]*\)$/\1=\2/p' | sort -n | tr '\n' ' ')
empty=$(tr ' ' '\n' <<<"$marks" | awk -F'[:.]+' '/^[0-9]+:[0-9]+\.\.[0-9]+$/ && $2 == $3 { n++ } END { print n + 0 }')
[ "$empty" -gt 0 ] || fail "no empty partition among the 12 ($marks): the test needs one"

# backfill NAME PUSH: one `userpipe run --from-beginning --exit-at-end` in
# its own group; PUSH=1 makes the next two ListOffsets requests fail once
# userpipe has started (its schema reader is done with its own by then),
# which are the two rounds of the assignment, 3 s later (kafka-dev's group
# delay)
backfill() {
    local name=$1 push=$2 cfg=$DEV_TMP/$1.properties log=$DEV_TMP/$1.log got
    write_config "$cfg" "e2e-ends-$name"
    start_userpipe "$log" -c "$cfg" --from-beginning --exit-at-end
    wait_for "userpipe started" 30 grep -q 'msg="started"' "$log"
    if [ "$push" = 1 ]; then
        kafka_ctl push-errors ListOffsets TOPIC_AUTHORIZATION_FAILED 2 >/dev/null
    fi
    wait_for "the $name backfill to end" 60 bash -c "! kill -0 $UP_PID 2>/dev/null"
    wait "$UP_PID" || { tail -20 "$log" >&2; fail "$name: userpipe exited non-zero"; }
    got=$(sed -n 's/.*msg="partition assigned" topic=users partition=\([0-9]*\) end_offset=\([-0-9]*\).*/\1=\2/p' "$log" |
        sort -n | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "$name: end offsets logged '$got', the broker has '$want'"
    ! grep -q 'cannot read end offset' "$log" || fail "$name: $(grep -m1 'cannot read end offset' "$log")"
    if [ "$push" = 1 ]; then
        grep -q 'msg="end offsets: asking partition by partition"' "$log" ||
            fail "$name: the failed ListOffsets round did not fall back to one query per partition"
    else
        ! grep -q 'asking partition by partition' "$log" ||
            fail "$name: fell back to one query per partition without an error"
    fi
    [ "$(group_committed_total "e2e-ends-$name" users)" -eq "$total" ] ||
        fail "$name: committed $(group_committed_total "e2e-ends-$name" users) of $total"
    echo "ok: $name: end offsets $got($empty empty), $total committed"
}
backfill one-round 0
backfill fallback 1
