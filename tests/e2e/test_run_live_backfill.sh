#!/usr/bin/env bash
# test_run_live_backfill.sh: --exit-at-end on a topic that producers keep
# writing to ends at the end offsets the partitions had when they were
# assigned: it exits 0, the group's committed offsets are exactly those
# ends (what came later is left for the next run), and every event up to
# them reached moesif-dev.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEV_TOPICS="users:4 users.dlq:1 userpipe-schema:1" dev_start
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20000 5 >"$DEV_TMP/backlog.ndjson"
produce_file users "$DEV_TMP/backlog.ndjson"
# a writer of small events, about 5,000 a second, all through the run
# (kcat, an independent producer, keyed by user_id)
/usr/bin/python3 -u -c '
import json, sys, time
i = 0
while True:
    for _ in range(50):
        uid = "live%04d" % (i % 5000)
        sys.stdout.write(uid + "\t" + json.dumps({"user_id": uid, "metadata": {"n": i}}) + "\n")
        i += 1
    sys.stdout.flush()
    time.sleep(0.01)
' | kcat -P -b "$BOOTSTRAP" -t users -K $'\t' -q 2>/dev/null &
writer=$!
dev_at_exit "pkill -f 'kcat -P -b $BOOTSTRAP -t users' 2>/dev/null || true"
before=$(topic_count users)
writer_started() { [ "$(topic_count users)" -gt "$before" ]; }
wait_for "the writer" 30 writer_started

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-live
start_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end
t0=$(date +%s)
while kill -0 "$UP_PID" 2>/dev/null; do
    [ $(($(date +%s) - t0)) -lt 90 ] || fail "the backfill of a topic still written to did not end in 90 s"
    sleep 0.5
done
wait "$UP_PID" || { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe exited non-zero"; }
pkill -f "kcat -P -b $BOOTSTRAP -t users" 2>/dev/null || true
wait "$writer" 2>/dev/null || true

# the ends logged at assignment, and the group's commits: the same
ends=$(sed -n 's/.*msg="partition assigned" topic=users partition=\([0-9]*\) end_offset=\([-0-9]*\).*/\1 \2/p' "$DEV_TMP/run.log" | sort -n)
[ "$(wc -l <<<"$ends")" = 4 ] || fail "not 4 partitions assigned: $ends"
committed=$(group_offsets e2e-live users | sort -n)
[ "$committed" = "$ends" ] || fail "committed offsets differ from the ends at assignment: committed '$(tr '\n' ' ' <<<"$committed")', ends '$(tr '\n' ' ' <<<"$ends")'"
sum=$(awk '{ s += $2 } END { print s }' <<<"$ends")
[ "$sum" -ge 20000 ] || fail "the ends sum to $sum, under the 20000 events of the backlog"
now=$(topic_count users)
[ "$now" -gt "$sum" ] || fail "the writer added nothing after the assignment ($now <= $sum): the test proves nothing"
# the live users repeat without a session token: their updates merge, so
# moesif-dev stores fewer objects than events (userpipe's summary counts
# both)
upserts=$(moesif_stat upserts)
stopped=$(grep -m1 'msg="stopped"' "$DEV_TMP/run.log")
sent=$(sed -n 's/.* sent=\([0-9]*\) .*/\1/p' <<<"$stopped")
objects=$(sed -n 's/.* objects=\([0-9]*\) .*/\1/p' <<<"$stopped")
[ "$sent" -ge "$sum" ] || fail "userpipe sent $sent events, the ends sum to $sum"
[ "$upserts" -eq "$objects" ] || fail "moesif-dev has $upserts upserts, userpipe sent $objects objects"
echo "ok: exited at the ends of its assignment ($sum events; the topic holds $now now), committed exactly there, $sent events sent as $upserts objects"
