#!/usr/bin/env bash
# test_kafka_dev.sh: kafka-dev (deploy/dev) against independent clients.
#
# Starts the dev stack through tests/lib/dev.sh and checks: the control
# socket; kcat produces N messages and consumes them back; the sample is
# loaded keyed by user_id, one partition per key, librdkafka's partitioner
# as load-topic.sh assumes; a kcat consumer group consumes and commits;
# kafka-python produces, consumes in a group and commits; broker-down makes
# a produce fail or stall and broker-up recovers it; pushed request errors
# and broker RTT; the partition cap: load-topic.sh refuses what a topic
# cannot hold, and data pushed past the cap is reported lost by `check`.
# Exits 0 on success, 1 with "FAIL: ..." otherwise; the EXIT trap of
# dev.sh stops every process either way.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
. tests/lib/dev.sh

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

step() {
    echo "== $* ($((SECONDS - t0)) s)"
}

t0=$SECONDS
[ -x "$KAFKA_DEV" ] || fail "kafka-dev is not built at $KAFKA_DEV; run make"
if [ ! -x "$BUILD/moesif-dev" ]; then
    echo "moesif-dev is not built: testing kafka-dev alone"
    export DEV_NO_MOESIF=1
fi

dev_start t.basic:3 t.group:4 t.py:3 t.fault:1 t.cap:1 t.over:1
work=$DEV_TMP/work
mkdir -p "$work"

step "control socket"
kafka_ctl ping | grep -q "^ok pong $BOOTSTRAP\$" || fail "ping did not answer with the bootstrap servers"
topics=$(kafka_ctl topics)
for t in users:8 users.dlq:1 userpipe-schema:1 t.basic:3 t.group:4 t.py:3; do
    grep -q " $t\\b" <<<"$topics" || fail "topic $t missing from: $topics"
done
kafka_ctl limits | grep -q 'partition_cap_bytes=5242880' || fail "limits does not report the 5 MiB cap"
[ "$("$KAFKA_DEV" --partition-mb-cap)" = 5 ] || fail "--partition-mb-cap is not 5"
if kafka_ctl no-such-command 2>/dev/null; then
    fail "an unknown command was accepted"
fi
reply=$(kafka_ctl broker-down 9 2>&1 || true)
[[ $reply == "error broker must be"* ]] || fail "broker-down 9 answered: $reply"
if kafka_ctl create-topic users:2 2>/dev/null; then
    fail "create-topic of an existing topic succeeded"
fi
if [ -n "$MOESIF_URL" ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$MOESIF_URL/")
    [ "$code" != 000 ] || fail "moesif-dev at $MOESIF_URL does not answer"
fi

step "kcat: produce 500, consume them back"
seq -f 'basic-%g' 1 500 >"$work/basic.txt"
timeout 30 kcat -P -b "$BOOTSTRAP" -t t.basic -l "$work/basic.txt" || fail "kcat could not produce to t.basic"
consume_all t.basic | sort >"$work/basic.got"
sort "$work/basic.txt" >"$work/basic.want"
cmp -s "$work/basic.got" "$work/basic.want" ||
    fail "t.basic gave back $(wc -l <"$work/basic.got") messages, not the 500 produced (or other content)"
[ "$(topic_count t.basic)" = 500 ] || fail "t.basic watermarks count $(topic_count t.basic), not 500"

step "sample loaded keyed by user_id"
sample=deploy/dev/sample-events.ndjson
produce_file users "$sample" || fail "load-topic.sh could not load $sample"
lines=$(grep -c . "$sample")
consume_all users '%k\t%p\t%s\n' >"$work/users.got"
[ "$(wc -l <"$work/users.got")" = "$lines" ] ||
    fail "users holds $(wc -l <"$work/users.got") messages, not the $lines lines of the sample"
cut -f3- "$work/users.got" | sort >"$work/values.got"
grep . "$sample" | sort >"$work/values.want"
cmp -s "$work/values.got" "$work/values.want" || fail "the values in users differ from the sample's lines"
"$KAFKA_DEV" keyed "$sample" | cut -f1 | sort >"$work/keys.want"
cut -f1 "$work/users.got" | sort >"$work/keys.got"
cmp -s "$work/keys.got" "$work/keys.want" || fail "the keys in users are not the user_ids of the sample"
[ "$(cut -f1 "$work/keys.got" | grep -c .)" -gt 400 ] || fail "fewer than 400 keyed messages"
split=$(awk -F'\t' '$1 != "" { print $1 "\t" $2 }' "$work/users.got" | sort -u | cut -f1 | uniq -d)
[ -z "$split" ] || fail "keys on more than one partition: $split"
# kafka-dev plan computes partitions with librdkafka's partitioner, which
# kcat uses: CRC-32 of the key modulo the partition count.
/usr/bin/python3 - "$work/users.got" <<'EOF' || fail "a key is not on partition crc32(key) % 8"
import sys, zlib
for line in open(sys.argv[1], encoding="utf-8"):
    key, part, _ = line.split("\t", 2)
    if key and zlib.crc32(key.encode()) % 8 != int(part):
        sys.exit("key %s on partition %s" % (key, part))
EOF

step "kcat consumer group consumes and commits"
seq -f 'group-%g' 1 300 >"$work/group.txt"
timeout 30 kcat -P -b "$BOOTSTRAP" -t t.group -l "$work/group.txt" || fail "kcat could not produce to t.group"
timeout 40 kcat -b "$BOOTSTRAP" -G kcat-group -X auto.offset.reset=earliest \
    -c 300 -q -f '%s\n' t.group | sort >"$work/group.got" || fail "the kcat group consumer did not get 300 messages within 40 s"
sort "$work/group.txt" | cmp -s - "$work/group.got" || fail "the kcat group consumed other messages than produced"
total=$(group_committed_total kcat-group t.group)
[ "$total" = 300 ] || fail "group kcat-group committed $total, not 300: $(kafka_ctl committed kcat-group t.group)"

step "kafka-python producer and consumer group"
timeout 90 /usr/bin/python3 tests/dev/kafka_client_check.py --bootstrap "$BOOTSTRAP" \
    --topic t.py --group py-group --count 200 || fail "kafka_client_check.py failed"
total=$(group_committed_total py-group t.py)
[ "$total" = 200 ] || fail "kafka-dev sees $total committed for py-group, not 200"

step "broker-down fails or stalls a produce, broker-up recovers it"
kafka_ctl broker-down all >/dev/null
if echo lost | timeout 20 kcat -P -q -b "$BOOTSTRAP" -t t.fault -X message.timeout.ms=2000 2>/dev/null; then
    fail "a produce succeeded while every broker was down"
fi
# -E: kcat keeps going when all brokers are down, as a daemon would.
echo stalled-then-delivered >"$work/stall.txt"
timeout 40 kcat -P -E -q -b "$BOOTSTRAP" -t t.fault -l "$work/stall.txt" \
    -X message.timeout.ms=30000 2>/dev/null &
stall_pid=$!
dev_at_exit "kill $stall_pid"
sleep 2
kill -0 $stall_pid 2>/dev/null || fail "the produce did not stall while the brokers were down"
kafka_ctl broker-up all >/dev/null
wait $stall_pid || fail "the stalled produce did not complete after broker-up"

step "pushed request errors and broker rtt"
kafka_ctl push-errors Produce TOPIC_AUTHORIZATION_FAILED 1 >/dev/null
if echo refused | timeout 20 kcat -P -q -b "$BOOTSTRAP" -t t.fault 2>/dev/null; then
    fail "a produce succeeded despite a pushed TOPIC_AUTHORIZATION_FAILED"
fi
echo accepted | timeout 20 kcat -P -q -b "$BOOTSTRAP" -t t.fault || fail "produce after the pushed error failed"
kafka_ctl push-errors produce NOT_LEADER_FOR_PARTITION 2 >/dev/null
echo retried | timeout 20 kcat -P -q -b "$BOOTSTRAP" -t t.fault 2>/dev/null || fail "a retriable pushed error was not retried"
kafka_ctl clear-errors >/dev/null
kafka_ctl broker-rtt all 400 >/dev/null
start_ms=$(date +%s%3N)
echo slow | timeout 20 kcat -P -q -b "$BOOTSTRAP" -t t.fault || fail "produce with 400 ms rtt failed"
slow_ms=$(($(date +%s%3N) - start_ms))
kafka_ctl broker-rtt all 0 >/dev/null
[ $slow_ms -ge 400 ] || fail "a produce took $slow_ms ms with a 400 ms broker rtt"
got=$(consume_all t.fault | tr '\n' ' ')
[ "$got" = "stalled-then-delivered accepted retried slow " ] || fail "t.fault holds: $got"

step "partition cap: refusal before, loss report after"
awk 'BEGIN { pad = sprintf("%1000s", ""); gsub(/ /, "x", pad);
    for (i = 0; i < 6200; i++) printf "{\"user_id\":\"cap-%d\",\"pad\":\"%s\"}\n", i, pad }' >"$work/big.ndjson"
needed=$("$KAFKA_DEV" plan --bytes "$(wc -c <"$work/big.ndjson")" | sed 's/^needed=\([0-9]*\).*/\1/')
[ "$needed" = 2 ] || fail "plan says $needed partitions for $(wc -c <"$work/big.ndjson") bytes, not 2"
if produce_file t.cap "$work/big.ndjson" 2>"$work/refusal.txt"; then
    fail "load-topic.sh loaded 6 MiB into a 1-partition topic"
fi
grep -q "refusing to load .* at least 2 partitions (it has 1)" "$work/refusal.txt" ||
    fail "the refusal does not say how many partitions: $(cat "$work/refusal.txt")"
[ "$(topic_count t.cap)" = 0 ] || fail "the refused load still produced to t.cap"
timeout 60 kcat -P -b "$BOOTSTRAP" -t t.over -l "$work/big.ndjson" || fail "raw kcat could not produce to t.over"
if kafka_ctl check t.over 2>"$work/check.txt"; then
    fail "check did not report the data the cap dropped from t.over"
fi
grep -q "t.over\\[0\\] lost offsets 0\\.\\." "$work/check.txt" || fail "check said: $(cat "$work/check.txt")"
kept=$(topic_count t.over)
[ "$kept" -lt 6200 ] || fail "t.over kept all 6200 messages: the cap is not where the README says"
echo "t.over kept $kept of 6200 messages of 1 KiB: the cap is real"

step "stop"
kpid=$(cat "$DEV_DIR/kafka-dev.pid")
mpid=$(cat "$DEV_DIR/moesif-dev.pid" 2>/dev/null || true)
sock=$KAFKA_CTL
dev_stop
for pid in $kpid $mpid; do
    if [ -r "/proc/$pid/stat" ] && ! grep -q ') Z ' "/proc/$pid/stat"; then
        fail "process $pid is still running after dev_stop"
    fi
done
[ ! -e "$sock" ] || fail "the control socket outlived kafka-dev"
echo "ok test_kafka_dev ($((SECONDS - t0)) s)"
