#!/usr/bin/env bash
# test_run_refill.sh: a backfill far larger than librdkafka's consumer
# queue is fetched without the one-second stalls of librdkafka 2.0.2
# (ingest/refill.c): with a 64 KiB queue and 64 KiB fetches, 40,000
# events of 470 bytes overfill it hundreds of times, and an overfill
# waited for the broker thread's 1 s timer.  Measured on the dev machine:
# 50 s without the wake-ups, 3 s with them (the group's 3 s join delay
# included).  The run must wake the brokers (fetch_kicks in its final
# log line), deliver everything, commit to the end, and take at most
# 25 s.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=40000
DEV_TOPICS="users:8 users.dlq:1 userpipe-schema:1" dev_start
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" "$N" 11 --bytes 470 >"$DEV_TMP/events.ndjson"
produce_file users "$DEV_TMP/events.ndjson"
[ "$(topic_count users)" -eq "$N" ] || fail "users holds $(topic_count users) messages, not $N"

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-refill kafka.queued.max.messages.kbytes=64 kafka.message.max.bytes=65536 \
    kafka.fetch.max.bytes=131072 kafka.max.partition.fetch.bytes=65536
t0=$(date +%s)
RUN_TIMEOUT=120 run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero"; }
secs=$(($(date +%s) - t0))

kicks=$(sed -n 's/.*msg="stopped".* fetch_kicks=\([0-9]*\).*/\1/p' "$DEV_TMP/run.log")
[ -n "$kicks" ] || fail "no fetch_kicks in the final log line"
# librdkafka 2.2.0 and later: fetch.queue.backoff.ms instead of the thread
# (ingest_fetch_backoff_supported), so no kick at all; the time bound
# below is what proves the fetches did not stall
rdk=$(pkg-config --modversion rdkafka 2>/dev/null || echo 0)
if printf '2.2.0\n%s\n' "$rdk" | sort -V -C; then
    [ "$kicks" -eq 0 ] || fail "$kicks fetch kicks with librdkafka $rdk, which has fetch.queue.backoff.ms"
else
    [ "$kicks" -ge 5 ] || fail "only $kicks fetch kicks (run took ${secs}s) for a queue overfilled hundreds of times"
fi
upserts=$(moesif_stat upserts)
[ "$upserts" -eq "$N" ] || fail "moesif-dev counted $upserts upserts, not $N"
committed=$(group_committed_total e2e-refill users)
[ "$committed" -eq "$N" ] || fail "committed $committed of $N"
# 25 s: half of the stalled run, room for a slow shared machine and ASan
[ "$secs" -le 25 ] || fail "the run took ${secs}s: fetches stalled after the queue filled"
echo "ok: $N events through a 64 KiB queue in ${secs}s, $kicks fetch kicks"
