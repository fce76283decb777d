#!/usr/bin/env bash
# test_run_fetch_backoff.sh: a backfill far larger than librdkafka's
# consumer queue is fetched without one-second stalls: with a 64 KiB queue
# and 64 KiB fetches, 40,000 events of 470 bytes overfill it hundreds of
# times, and after each overfill librdkafka waits fetch.queue.backoff.ms
# before it fetches that partition again (1000 ms by default; ingest sets
# 10).  Measured on the dev machine with librdkafka 2.0.2, which had no
# such setting and waited for its broker thread's 1 s timer: 50 s; with
# the wake-up thread userpipe then carried, 3 s.  The run must deliver
# everything, commit to the end, and take at most 25 s.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=40000
DEV_TOPICS="users:8 users.dlq:1 userpipe-schema:1" dev_start
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" "$N" 11 --bytes 470 >"$DEV_TMP/events.ndjson"
produce_file users "$DEV_TMP/events.ndjson"
[ "$(topic_count users)" -eq "$N" ] || fail "users holds $(topic_count users) messages, not $N"

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-fetch-backoff kafka.queued.max.messages.kbytes=64 kafka.message.max.bytes=65536 \
    kafka.fetch.max.bytes=131072 kafka.max.partition.fetch.bytes=65536
t0=$(date +%s)
RUN_TIMEOUT=120 run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero"; }
secs=$(($(date +%s) - t0))

upserts=$(moesif_stat upserts)
[ "$upserts" -eq "$N" ] || fail "moesif-dev counted $upserts upserts, not $N"
committed=$(group_committed_total e2e-fetch-backoff users)
[ "$committed" -eq "$N" ] || fail "committed $committed of $N"
# 25 s: half of the stalled run, room for a slow shared machine and ASan
[ "$secs" -le 25 ] || fail "the run took ${secs}s: fetches stalled after the queue filled"
echo "ok: $N events through a 64 KiB queue in ${secs}s"
