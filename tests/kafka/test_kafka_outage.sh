#!/usr/bin/env bash
# test_kafka_outage.sh (issue 13): every broker down for 20 s mid-run
# (kill -9), then up again.  userpipe must wait (not exit), hold its
# memory (VmRSS sampled every 0.2 s during the outage stays under
# RSS_CAP_MB, 128 MB, the peak RSS target of make bench, and grows by less
# than RSS_GROWTH_MB, 32 MB, from the outage's start: a reconnect loop
# that leaks, or a read-ahead that the outage unbounds, would fail it),
# and resume: the run ends by itself (--exit-at-end) with nothing lost
# (check_nothing_lost: every valid event in moesif-dev, every reject in
# the dead-letter topic exactly once, offsets committed to the end).
#
# One node: with no broker up, userpipe sees the same outage from one
# node as from three (every connection refused, no coordinator, no
# leader), and one node starts again in ~6 s where three need their
# quorum back; the three-node faults are test_kafka_leader_kill's.
# Prints the figures: events delivered, duplicates, RSS at the outage's
# start and its peak during it, seconds from the broker's answering again
# to the first dead-letter record (LogAppendTime) and to moesif-dev's
# next upsert.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DEV_KAFKA_NODES=1

N=40000
GROUP=kafka-outage
OUTAGE_S=20
RSS_CAP_MB=128
RSS_GROWTH_MB=32
rec=$(mktemp)
dev_at_exit rm -f "$rec"
fault_input "$N" 17
DEV_TOPICS=" " MOESIF_DEV_ARGS="--record $rec --latency-ms 30" dev_start
kadmin create 1 users:3 users.dlq:1:message.timestamp.type=LogAppendTime userpipe-schema:1:retention.ms=-1,retention.bytes=-1 ||
    fail "cannot create the topics"
fault_run "$GROUP"
rss0=$(rss_kb "$pid")
kafka_node kill 1
down_at=$(date +%s)
rss_max=$rss0
while [ $(($(date +%s) - down_at)) -lt "$OUTAGE_S" ]; do
    running "$pid" || fail "userpipe exited during the outage: $(tail -3 "$DEV_TMP/run.log")"
    r=$(rss_kb "$pid")
    [ "$r" -le "$rss_max" ] || rss_max=$r
    sleep 0.2
done
up1=$(moesif_stat upserts)
rss1=$(rss_kb "$pid")
[ "$up1" -lt "$want" ] || fail "every event was delivered during the outage (more events)"
kafka_node start 1
t_broker=$(seconds_until 120 kafka_ctl brokers)
up_at_ms=$(date +%s%3N)
t_moesif=$(seconds_until 120 more_than "$up1" moesif_stat upserts)
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited $rc after the outage"; }
[ "$rss_max" -lt $((RSS_CAP_MB * 1024)) ] ||
    fail "RSS reached $((rss_max / 1024)) MB during the outage (cap $RSS_CAP_MB MB)"
[ $((rss_max - rss0)) -lt $((RSS_GROWTH_MB * 1024)) ] ||
    fail "RSS grew by $(((rss_max - rss0) / 1024)) MB during the outage ($((rss0 / 1024)) -> $((rss_max / 1024)) MB)"

check_nothing_lost "$rec" "$DEV_TMP/run.log" "$GROUP" "$up_at_ms"
[ "$dlq_first_after_ms" -ge 0 ] || fail "no dead-letter record was written after the outage"
echo "figures: $want valid events ($new_keys with a new key), $nrej rejects; all brokers down ${OUTAGE_S}s from $up0 upserts (moesif-dev had $up1 at its end: the sink drained what it held)"
echo "figures: RSS $((rss0 / 1024)) MB at the outage's start, at most $((rss_max / 1024)) MB during it, $((rss1 / 1024)) MB at its end (cap $RSS_CAP_MB MB, growth under $RSS_GROWTH_MB MB)"
echo "figures: the node answered ${t_broker}s after its start; from then: the first dead-letter record written $(awk -v ms="$dlq_first_after_ms" 'BEGIN { printf "%.1f", ms / 1000 }')s after (LogAppendTime), moesif-dev's next upsert after ${t_moesif}s"
echo "figures: moesif-dev received $got for $want ($dup duplicates, at-least-once; no revocation mid-run); dead-letter $dlq"
echo "ok: userpipe waited through a ${OUTAGE_S}s outage of every broker and resumed; nothing lost; $committed"
