#!/usr/bin/env bash
# test_run_poison_dlq.sh (issue 20): nothing a message holds stops the run.
# Through the real binary, on kafka-dev (the dead-letter topic's limit
# cannot be read there: librdkafka's 1,000,000 applies) and on Apache Kafka
# (users.dlq created with max.message.bytes=300000, users taking 4 MB):
#   - a 1.1 MB event (too_large), a 1.0 MB event with a type conflict
#     (against a seeded type), invalid values of LIMIT-4096, LIMIT and
#     LIMIT+1 bytes, a valid event of exactly transform.max_event_bytes and
#     one byte more (too_large);
#   - a valid and an invalid event in batches compressed with gzip, zstd,
#     lz4 and snappy, and in messages carrying their own headers;
# the run ends by itself (exit 0), every message is in moesif-dev or the
# dead-letter topic, a record that fits holds the value byte for byte, one
# that does not holds a prefix with the original's size and SHA-256, the
# source's headers are on its record, and the committed offsets reach the
# end (tests/e2e/poison_dlq.py checks).  Then `userpipe dlq redrive` leaves
# the records cut to fit, saying so, and redrives the others; and the
# kafka.* settings userpipe owns end a run with exit 2 and a sentence.
# On Apache Kafka last: the topic's limit lowered to 100,000 under a
# running userpipe; a 250,000-byte reject is refused by the broker twice,
# cut harder each time, and lands; SIGTERM then exits 0.  Then a compacted
# dead-letter topic refusing a reject without a key (INVALID_RECORD, at
# every size) stops the run with exit 1 and a sentence.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PY=$E2E_ROOT/tests/e2e/poison_dlq.py

rec=$(mktemp)
dev_at_exit rm -f "$rec"
if [ "$DEV_KAFKA" = apache ]; then
    LIMIT=300000
    DEV_TOPICS="users:6 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec" dev_start
    /usr/bin/python3 "$PY" admin "$BOOTSTRAP" "$LIMIT"
else
    LIMIT=1000000
    # users.dlq of 16 partitions: kafka-dev keeps about 5 MiB a partition
    # (deploy/dev/README.md) and six records here are near 1 MB each
    DEV_TOPICS="users:6 users.dlq:16 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec" dev_start
fi

# the settings userpipe owns: exit 2, the key named, before any network
cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-poison "schema.file=$DEV_TMP/seed.json"
for kv in kafka.enable.auto.commit=false kafka.group.protocol=consumer \
    kafka.enable.auto.offset.store=true kafka.acks=1 kafka.auto.commit.interval.ms=0; do
    rc=0
    run_userpipe "$DEV_TMP/refused.log" -c "$cfg" -X "$kv" --exit-at-end || rc=$?
    [ "$rc" -eq 2 ] || fail "$kv: exit $rc, want 2"
    grep -q "configuration key '${kv%%=*}'" "$DEV_TMP/refused.log" ||
        { cat "$DEV_TMP/refused.log" >&2; fail "$kv: no sentence naming the key"; }
done
echo "refused settings: exit 2 with a sentence naming the key"

echo '{"k":"number"}' >"$DEV_TMP/seed.json"
mkdir -p "$DEV_TMP/gen"
/usr/bin/python3 "$PY" gen "$DEV_TMP/gen" "$LIMIT"
for f in "$DEV_TMP"/gen/p*.ndjson; do
    p=$(basename "$f" .ndjson)
    kcat -P -b "$BOOTSTRAP" -t users -p "${p#p}" -K $'\t' \
        -X message.max.bytes=4000000 -X batch.size=4000000 <"$f"
done
for codec in gzip zstd lz4 snappy; do
    printf '%s\n' "{\"user_id\":\"ok-$codec\"}" "{\"user_id\":5,\"c\":\"$codec\"}" |
        kcat -P -b "$BOOTSTRAP" -t users -p 1 -z "$codec" -X linger.ms=100
done
printf '%s\n' '{"user_id":"ok-hdr"}' '{"user_id":5,"c":"hdr"}' |
    kcat -P -b "$BOOTSTRAP" -t users -p 2 -H trace=abc -H tenant=t1 -H empty=
total=$(topic_count users)
[ "$total" -eq 17 ] || fail "loaded $total messages, want 17"

run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -30 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero"; }
grep -q "msg=\"dead-letter producer sized\" max_message_bytes=$LIMIT" "$DEV_TMP/run.log" ||
    { grep dlq "$DEV_TMP/run.log" >&2; fail "the producer was not sized to $LIMIT"; }

consume_all_json users >"$DEV_TMP/source.json"
timeout 60 kcat -C -b "$BOOTSTRAP" -t users.dlq -o beginning -e -q -J \
    -X fetch.message.max.bytes=4000000 >"$DEV_TMP/dlq.json"
/usr/bin/python3 "$PY" check "$LIMIT" "$DEV_TMP/source.json" "$DEV_TMP/dlq.json" \
    "$rec" "$DEV_TMP/gen/expect.json" || fail "the records differ"
committed=$(group_committed_total e2e-poison users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"

# a record cut to fit is never redriven; the others are
dlq_n=$(topic_count users.dlq)
cut_n=$(grep -c '"userpipe.value.truncated","1"' "$DEV_TMP/dlq.json" || true)
[ "$cut_n" -ge 4 ] || fail "only $cut_n records cut to fit"
grep -q "msg=\"stopped\".* dlq_truncated=$cut_n " "$DEV_TMP/run.log" ||
    fail "the summary line does not count the $cut_n records cut"
MOESIF_APPLICATION_ID=$APP_ID "$USERPIPE" dlq stats -c "$cfg" >"$DEV_TMP/stats.out"
grep -q "cut to fit (not redrivable): $cut_n\$" "$DEV_TMP/stats.out" ||
    { cat "$DEV_TMP/stats.out" >&2; fail "dlq stats does not count the records cut"; }
MOESIF_APPLICATION_ID=$APP_ID "$USERPIPE" dlq redrive -c "$cfg" \
    >"$DEV_TMP/redrive.out" 2>"$DEV_TMP/redrive.err" ||
    { cat "$DEV_TMP/redrive.err" >&2; fail "dlq redrive failed"; }
grep -q "$cut_n chosen records were cut to fit" "$DEV_TMP/redrive.out" ||
    { cat "$DEV_TMP/redrive.out" >&2; fail "redrive did not say what it left"; }
[ "$(grep -c 'left a record cut to fit' "$DEV_TMP/redrive.err")" -eq "$cut_n" ] ||
    fail "redrive did not name each record it left"
after=$(topic_count users)
[ $((after - total)) -eq $((dlq_n - cut_n)) ] ||
    fail "redrove $((after - total)) records, want $((dlq_n - cut_n)) of $dlq_n"
echo "ok: every message in Moesif or the dead-letter topic; $cut_n of $dlq_n records cut to fit $LIMIT bytes and left by the redrive"

# Apache Kafka: the topic's limit lowered while userpipe runs (what it read
# at start is wrong now): a 250,000-byte reject, which fits the 300,000 it
# read, is refused by the broker; the record is cut harder and lands, the
# run goes on and stops cleanly
[ "$DEV_KAFKA" = apache ] || exit 0
start_userpipe "$DEV_TMP/live.log" -c "$cfg"
wait_for "userpipe to start" 60 grep -q 'msg="started"' "$DEV_TMP/live.log"
/usr/bin/python3 "$PY" shrink "$BOOTSTRAP" 100000
sleep 2
head -c 250000 /dev/zero | tr '\0' v | { cat; echo; } |
    sed 's/^/shrunk\t/' | kcat -P -b "$BOOTSTRAP" -t users -p 0 -K $'\t' \
        -X message.max.bytes=4000000
wait_for "the record cut harder" 120 bash -c \
    "[ \$(kcat -C -b $BOOTSTRAP -t users.dlq -o beginning -e -q -f '%k\n' | grep -c '^shrunk\$') -ge 1 ]"
kill -TERM "$UP_PID"
rc=0
wait "$UP_PID" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$DEV_TMP/live.log" >&2; fail "userpipe exited $rc after the limit changed"; }
grep -q 'dead-letter record refused, cutting it harder' "$DEV_TMP/live.log" ||
    fail "the broker's refusal was not met by a harder cut"
kcat -C -b "$BOOTSTRAP" -t users.dlq -o beginning -e -q -J \
    -X fetch.message.max.bytes=4000000 | /usr/bin/python3 -c '
import hashlib, json, sys
v = "v" * 250000
for l in sys.stdin:
    m = json.loads(l)
    if m["key"] != "shrunk":
        continue
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    assert h["userpipe.value.truncated"] == "1", h
    assert h["userpipe.value.size"] == "250000", h
    assert h["userpipe.value.sha256"] == hashlib.sha256(v.encode()).hexdigest()
    assert v.startswith(m["payload"]) and len(m["payload"]) < 100000 - 300
    print("cut harder to %d bytes after the broker refused it" % len(m["payload"]))
    break
else:
    sys.exit("no record")' || fail "the record cut harder is wrong"
committed=$(group_committed_total e2e-poison users)
[ "$committed" -eq $((after + 1)) ] ||
    fail "committed $committed of $((after + 1)) after the live run"
echo "ok: a limit lowered under a running userpipe costs a harder cut, not the run"

# Apache Kafka: a dead-letter topic that refuses a record whatever its size
# (cleanup.policy=compact and a reject without a key: INVALID_RECORD) is
# about the topic: after the harder cuts the run stops with exit 1 and a
# sentence naming the topic's configuration, and commits nothing past it
/usr/bin/python3 "$PY" compact "$BOOTSTRAP"
end_before=$(topic_count users)
printf 'keyless junk\n' | kcat -P -b "$BOOTSTRAP" -t users -p 3
write_config "$DEV_TMP/compact.properties" e2e-poison dlq.topic=users.dlq.compact
rc=0
run_userpipe "$DEV_TMP/compact.log" -c "$DEV_TMP/compact.properties" --exit-at-end || rc=$?
[ "$rc" -eq 1 ] || { tail -5 "$DEV_TMP/compact.log" >&2; fail "compacted topic: exit $rc, want 1"; }
grep 'level=error' "$DEV_TMP/compact.log" | grep -q "users.dlq.compact' refused a record even cut.*cleanup.policy=compact" ||
    { grep level=error "$DEV_TMP/compact.log" >&2; fail "no sentence about the compacted topic"; }
committed=$(group_committed_total e2e-poison users)
[ "$committed" -eq "$end_before" ] || fail "committed $committed, want $end_before (nothing past the refused record)"
echo "ok: a dead-letter topic refusing every record stops the run with exit 1 and a sentence"
