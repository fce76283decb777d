#!/usr/bin/env bash
# test_schema_shared.sh: three instances in one consumer group over six
# partitions, fed events where the same new keys arrive with different
# types in different partitions at the same moment.  Afterwards every
# instance agrees on every type (they all applied the schema topic's first
# claims), moesif-dev received values of the winning type only, every
# losing event is in the dead-letter topic as type_conflict naming the key
# and both types.  A restart keeps the schema: a new run judges the losing
# types against it again.  `userpipe schema show|export|import` read and
# write the same topic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rec=$(mktemp)
dev_at_exit rm -f "$rec"
DEV_TOPICS="users:6 users.dlq:1 userpipe-schema:1 late:1 late.dlq:1" MOESIF_DEV_ARGS="--record $rec" dev_start

# partition p: 40 events of users p<p>-u<i>, keys k0..k9 typed by p % 3
# (string, number, boolean), and one key of its own (known type); each
# with a session token of its own, so a user's updates are never merged
# (sink/merge.c) and each reaches moesif-dev as its bytes
for p in 0 1 2 3 4 5; do
    /usr/bin/python3 - "$p" >"$DEV_TMP/p$p.ndjson" <<'PY'
import json, sys
p = int(sys.argv[1])
vals = ["s", 1, True]
for i in range(40):
    md = {"k%d" % k: vals[(p + k) % 3] for k in range(10)}
    md["own%d" % p] = i
    print(json.dumps({"user_id": "p%d-u%d" % (p, i % 7),
                      "session_token": "t%d-%d" % (p, i), "metadata": md},
                     separators=(",", ":")))
PY
    kcat -P -b "$BOOTSTRAP" -t users -p "$p" -l "$DEV_TMP/p$p.ndjson"
done
cat "$DEV_TMP"/p?.ndjson >"$DEV_TMP/all.ndjson"
total=$(topic_count users)
[ "$total" -eq 240 ] || fail "loaded $total events"

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-schema batch.linger_ms=50
for n in a b c; do
    start_userpipe "$DEV_TMP/$n.log" -c "$cfg" --from-beginning -X schema.instance_id=inst-$n
    eval "pid_$n=$UP_PID"
done
# settled: every event, by its bytes, in moesif-dev or in the dead-letter
# topic.  (Counting upserts + dead-letter records is not enough: while the
# three members join, a partition can be consumed twice, at least once, and
# the duplicates made the sum reach the total with rejects still missing.)
settled() {
    consume_all_json users.dlq >"$DEV_TMP/dlq-now.json" 2>/dev/null || return 1
    /usr/bin/python3 - "$rec" "$DEV_TMP/dlq-now.json" "$DEV_TMP/all.ndjson" <<'PY'
import json, sys
seen = {json.dumps(json.loads(l), separators=(",", ":")) for l in open(sys.argv[1]) if l.strip()}
seen |= {json.loads(l)["payload"] for l in open(sys.argv[2]) if l.strip()}
sys.exit(0 if all(l.strip() in seen for l in open(sys.argv[3]) if l.strip()) else 1)
PY
}
wait_for "every event to be settled" 120 settled
for n in a b c; do
    eval "kill -TERM \$pid_$n"
done
for n in a b c; do
    eval "wait \$pid_$n" || { tail -20 "$DEV_TMP/$n.log" >&2; fail "instance $n exited non-zero"; }
done
for n in a b c; do
    grep -q 'partition assigned' "$DEV_TMP/$n.log" || fail "instance $n never had a partition"
done

# the schema as the topic holds it
"$USERPIPE" schema export -c "$cfg" >"$DEV_TMP/schema.json" || fail "schema export failed"
"$USERPIPE" schema show -c "$cfg" >"$DEV_TMP/schema.txt" || fail "schema show failed"
grep -q "inst-" "$DEV_TMP/schema.txt" || fail "schema show does not say who claimed"
consume_all_json users.dlq >"$DEV_TMP/dlq.json"
curl -sf "$MOESIF_URL/_dev/types" >"$DEV_TMP/moesif-types.json"
/usr/bin/python3 - "$DEV_TMP/schema.json" "$rec" "$DEV_TMP/dlq.json" \
    "$DEV_TMP/all.ndjson" "$DEV_TMP/moesif-types.json" "$(moesif_stat conflicts)" <<'PY' || fail "instances disagree"
import collections, json, sys
schema = json.load(open(sys.argv[1]))
tname = lambda v: {str: "string", bool: "boolean", int: "number",
                   float: "number", dict: "object", list: "array"}[type(v)]
for k in ["k%d" % i for i in range(10)]:
    assert k in schema, "no type for %s" % k
got = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
for ev in got:
    for k, v in ev["metadata"].items():
        assert tname(v) == schema[k], "moesif-dev got %s=%r, schema says %s" % (k, v, schema[k])
want_accept = collections.Counter()
want_reject = collections.Counter()
for line in open(sys.argv[4]):
    ev = json.loads(line)
    ok = all(tname(v) == schema[k] for k, v in ev["metadata"].items())
    (want_accept if ok else want_reject)[line.strip()] += 1
got_c = collections.Counter(json.dumps(e, separators=(",", ":")) for e in got)
assert sum(got_c.values()) >= sum(want_accept.values()), "accepted %d, want %d" % (sum(got_c.values()), sum(want_accept.values()))
assert set(got_c) == set(want_accept), "accepted set differs"
rejected = collections.Counter()
for line in open(sys.argv[3]):
    m = json.loads(line)
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    assert h["userpipe.error.code"] == "type_conflict", h
    msg = h["userpipe.error.message"]
    key = h["userpipe.error.path"].split(".")[-1]
    assert key in msg and schema[key] in msg, "message %r lacks the key or the winning type" % msg
    rejected[m["payload"]] += 1
assert set(rejected) == set(want_reject), "rejected set differs: %d vs %d" % (len(rejected), len(want_reject))
mt = json.load(open(sys.argv[5]))
mt = mt.get("types", mt)
# moesif-dev locks a key at the first value it gets: every key of an
# accepted event has the schema's type there, and no other.  (When the
# race gives keys of one partition's types to different winners, no event
# is valid whole and moesif-dev gets none: every key then stays unlocked.)
seen = {k for ev in got for k in ev["metadata"]}
for k in seen:
    assert mt.get(k) == schema[k], "moesif-dev locked %s as %s, schema says %s" % (k, mt.get(k), schema[k])
for k, t in mt.items():
    assert k in seen and t == schema[k], "moesif-dev locked %s as %s, which it was never sent" % (k, t)
assert int(sys.argv[6]) == 0, "moesif-dev lost %s values" % sys.argv[6]
print("agreed: %d keys; %d accepted, %d type_conflict" % (len(schema), len(got), sum(rejected.values())))
PY

# a restart keeps the schema: a new instance, new events with the losing
# types, judged against the same types
/usr/bin/python3 -c '
import json, sys
schema = json.load(open(sys.argv[1]))
flip = {"string": 1, "number": True, "boolean": "s"}
for i in range(5):
    print(json.dumps({"user_id": "late-%d" % i, "metadata": {"k0": flip[schema["k0"]]}}))
' "$DEV_TMP/schema.json" >"$DEV_TMP/late.ndjson"
# (a topic of their own, so the restart reads exactly them whatever the
# group committed while three members came and went)
kcat -P -b "$BOOTSTRAP" -t late -p 0 -l "$DEV_TMP/late.ndjson"
run_userpipe "$DEV_TMP/d.log" -c "$cfg" --from-beginning --exit-at-end \
    -X source.topics=late -X kafka.group.id=e2e-schema-late -X schema.instance_id=inst-d ||
    { tail -20 "$DEV_TMP/d.log" >&2; fail "the restarted instance failed"; }
n=$(consume_all_json late.dlq | grep -c '"userpipe.error.code","type_conflict"' || true)
[ "$n" -eq 5 ] || fail "after the restart $n of 5 losing events were rejected as type_conflict"

# schema import: a conflicting key is reported, not overwritten
echo '{"k0":"array","fresh_key":"string"}' >"$DEV_TMP/seed.json"
set +e
"$USERPIPE" schema import -c "$cfg" "$DEV_TMP/seed.json" >"$DEV_TMP/import.out" 2>"$DEV_TMP/import.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "import with a conflict exited $rc, want 1"
grep -q 'k0' "$DEV_TMP/import.err" || fail "the conflict on k0 is not reported"
"$USERPIPE" schema export -c "$cfg" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["fresh_key"] == "string", s
assert s["k0"] != "array", s
' || fail "import overwrote a key or missed a new one"
echo "ok: three instances agreed, the restart kept the schema, import reported the conflict"
