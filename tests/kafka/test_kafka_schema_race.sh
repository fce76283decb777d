#!/usr/bin/env bash
# test_kafka_schema_race.sh (issue 13): the shared schema's race on a
# three-node Apache Kafka (replication 3, min.insync.replicas=2: a claim
# is acknowledged by two replicas) and its real group coordinator.  Three
# instances in one group start at once over six partitions; partition p
# brings keys k0..k29 typed by (p + k) % 3 (string, number, boolean), one
# key an event, so every key arrives with conflicting types from
# different partitions, claimed by different instances at the same time.
#
# The events are loaded once the three hold partitions, so each consumes
# its own share of the race.
#
# tests/e2e/test_schema_shared.sh runs the same race on one node (and on
# kafka-dev), with the restart and `schema import`; this variant adds what
# one node cannot show and checks exactly what it checks loosely:
#  - every broker answers the same schema: `userpipe schema show` with
#    each node alone as bootstrap prints the same lines, one a key;
#  - every instance applied it: moesif-dev counted no type conflict and
#    locked every key with the schema's type (an instance with another
#    view would have sent it a losing type);
#  - each event settled where the schema says, by source partition and
#    offset: the losing ones in the dead-letter topic as type_conflict
#    naming the key and the winning type, the others in moesif-dev; none
#    lost, duplicates counted (at-least-once across the group's
#    rebalances) and printed;
#  - the committed offsets equal the end offsets (the Admin API).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DEV_KAFKA_NODES=3

PER_PART=300
GROUP=kafka-schema-race
rec=$(mktemp)
dev_at_exit rm -f "$rec"
DEV_TOPICS="users:6 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec" dev_start

cfg=$DEV_TMP/run.properties
write_config "$cfg" "$GROUP" batch.linger_ms=50 kafka.auto.commit.interval.ms=200
pids=()
for n in a b c; do
    start_userpipe "$DEV_TMP/$n.log" -c "$cfg" --from-beginning -X schema.instance_id=inst-$n
    pids+=("$UP_PID")
done
# the events are loaded once every instance holds partitions: with
# group.initial.rebalance.delay.ms=0 the first member to join takes all
# six, and the others' rebalance waits for its next heartbeat (3 s), by
# which time it may have consumed everything alone (issue 20: the schema
# topic's DescribeConfigs at start, 70 ms, made that the usual outcome)
all_assigned() {
    for n in a b c; do
        grep -q 'partition assigned' "$DEV_TMP/$n.log" || return 1
    done
}
wait_for "every instance to hold partitions" 60 all_assigned
sleep 1
for p in 0 1 2 3 4 5; do
    /usr/bin/python3 - "$p" "$PER_PART" >"$DEV_TMP/p$p.ndjson" <<'PY'
import json, sys
p, n = int(sys.argv[1]), int(sys.argv[2])
vals = ["s", 1, True]
for i in range(n):
    k = (i + 7 * p) % 30
    print(json.dumps({"user_id": "p%d-u%d" % (p, i % 11),
                      "metadata": {"k%d" % k: vals[(p + k) % 3], "own%d" % p: i}},
                     separators=(",", ":")))
PY
done
# all six at once, so the keys reach the instances at the same moment
loaders=()
for p in 0 1 2 3 4 5; do
    kcat -P -b "$BOOTSTRAP" -t users -p "$p" -l "$DEV_TMP/p$p.ndjson" &
    loaders+=("$!")
done
for pid in "${loaders[@]}"; do
    wait "$pid" || fail "cannot load partition events"
done
total=$(topic_count users)
[ "$total" -eq $((6 * PER_PART)) ] || fail "loaded $total events"
committed_all() {
    [ "$(group_committed_total "$GROUP" users)" -eq "$total" ]
}
wait_for "the group's commits to reach the end" 180 committed_all
sleep 1 # what the last commit acknowledged is settled; commits must not pass the end
for pid in "${pids[@]}"; do
    kill -TERM "$pid"
done
for i in 0 1 2; do
    wait "${pids[i]}" || { tail -20 "$DEV_TMP/$(echo a b c | cut -d' ' -f$((i + 1))).log" >&2; fail "instance $i exited non-zero"; }
done
claimed="" racers=0
for n in a b c; do
    grep -q 'partition assigned' "$DEV_TMP/$n.log" || fail "instance $n never had a partition"
    c=$(sed -n 's/.*msg="stopped".* claims_made=\([0-9]*\).*/\1/p' "$DEV_TMP/$n.log")
    claimed="$claimed $n:${c:-?}"
    [ "${c:-0}" -lt 30 ] || racers=$((racers + 1))
done
# a race: at least two instances claimed the thirty keys themselves
[ "$racers" -ge 2 ] || fail "no race: claims made by instance$claimed"
kadmin committed "$GROUP" users >"$DEV_TMP/committed.txt" ||
    { cat "$DEV_TMP/committed.txt" >&2; fail "committed offsets differ from the end offsets"; }

# the schema as each broker serves it
i=0
for b in $(tr ',' ' ' <<<"$BOOTSTRAP"); do
    i=$((i + 1))
    "$USERPIPE" schema show -c "$cfg" -X "kafka.bootstrap.servers=$b" >"$DEV_TMP/show-$i.txt" ||
        fail "schema show through node $i failed"
done
cmp -s "$DEV_TMP/show-1.txt" "$DEV_TMP/show-2.txt" && cmp -s "$DEV_TMP/show-1.txt" "$DEV_TMP/show-3.txt" ||
    fail "the nodes answer different schemas: $(diff "$DEV_TMP/show-1.txt" "$DEV_TMP/show-2.txt" | head -5)"
dupkeys=$(awk 'NF { print $1 }' "$DEV_TMP/show-1.txt" | sort | uniq -d | xargs)
[ -z "$dupkeys" ] || fail "keys listed twice by schema show: $dupkeys"
"$USERPIPE" schema export -c "$cfg" >"$DEV_TMP/schema.json" || fail "schema export failed"
consume_all_json users.dlq >"$DEV_TMP/dlq.json"
curl -sf "$MOESIF_URL/_dev/types" >"$DEV_TMP/moesif-types.json"
/usr/bin/python3 - "$DEV_TMP" "$rec" "$(moesif_stat conflicts)" <<'PY' || fail "the events did not settle as the schema says"
import collections, json, sys
d, rec, conflicts = sys.argv[1], sys.argv[2], int(sys.argv[3])
schema = json.load(open(d + "/schema.json"))
tname = lambda v: {str: "string", bool: "boolean", int: "number"}[type(v)]
keys = ["k%d" % k for k in range(30)]
missing = [k for k in keys if k not in schema]
assert not missing, "keys without a type: %s" % missing
show = [l.split() for l in open(d + "/show-1.txt") if l.strip()]
shown = {f[0]: f[1] for f in show if len(f) > 1}
for k in keys:
    assert shown.get(k) == schema[k], "schema show says %s=%s, export %s" % (k, shown.get(k), schema[k])
want_ok, want_rej = collections.Counter(), {}
for p in range(6):
    for off, line in enumerate(open("%s/p%d.ndjson" % (d, p))):
        ev = json.loads(line)
        bad = [k for k, v in ev["metadata"].items() if tname(v) != schema[k]]
        if bad:
            want_rej[(str(p), str(off))] = (line.strip(), bad[0])
        else:
            want_ok[line.strip()] += 1
got = collections.Counter(l.strip() for l in open(rec) if l.strip())
lost = want_ok - got
assert not lost, "%d accepted events never reached moesif-dev" % sum(lost.values())
extra = set(got) - set(want_ok)
assert not extra, "moesif-dev got events of a losing type, e.g. %s" % next(iter(extra))
seen = collections.Counter()
for line in open(d + "/dlq.json"):
    m = json.loads(line)
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    src = (h["userpipe.source.partition"], h["userpipe.source.offset"])
    assert src in want_rej, "dead-letter record of %s that the schema accepts: %s" % (src, m["payload"])
    payload, key = want_rej[src]
    assert m["payload"] == payload, "dead-letter payload of %s differs" % (src,)
    assert h["userpipe.error.code"] == "type_conflict", h
    assert h["userpipe.error.path"].split(".")[-1] == key, h
    assert key in h["userpipe.error.message"] and schema[key] in h["userpipe.error.message"], h
    seen[src] += 1
unrej = set(want_rej) - set(seen)
assert not unrej, "%d losing events are not in the dead-letter topic, e.g. %s" % (len(unrej), next(iter(unrej)))
mt = json.load(open(d + "/moesif-types.json"))
mt = mt.get("types", mt)
for k in keys:
    assert mt.get(k) == schema[k], "moesif-dev locked %s as %s, the schema says %s" % (k, mt.get(k), schema[k])
assert conflicts == 0, "moesif-dev counted %d type conflicts" % conflicts
kinds = collections.Counter(schema[k] for k in keys)
print("figures: %d keys raced (%s); %d events accepted (moesif-dev got %d: %d duplicates), "
      "%d type_conflict (dead-letter records %d: %d duplicates)" %
      (len(keys), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
       sum(want_ok.values()), sum(got.values()), sum(got.values()) - sum(want_ok.values()),
       len(want_rej), sum(seen.values()), sum(seen.values()) - len(want_rej)))
PY
echo "figures: claims made by instance$claimed"
echo "ok: three instances on three nodes agree on one type a key; every event settled as the schema says; $(tail -n 1 "$DEV_TMP/committed.txt")"
