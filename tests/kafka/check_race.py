#!/usr/bin/python3
"""check_race.py: after a race of instances for the shared schema's keys
(race_input in tests/kafka/lib.sh), checks that every event settled
where the schema says (issue 13; shared by the secured-broker tests of
issue 19).

  check_race.py DIR RECORD CONFLICTS NPARTS NKEYS

DIR holds p<P>.ndjson (partition P's events in offset order),
schema.json (`userpipe schema export`), show-1.txt (`userpipe schema
show`), dlq.json (the dead-letter topic, kcat -J lines) and
moesif-types.json (moesif-dev's /_dev/types); RECORD is moesif-dev's
--record file, CONFLICTS its type-conflict counter.  Asserts: every key
k0..k<NKEYS-1> has one type, shown and exported alike; every event whose
types match the schema reached moesif-dev (at least once, a user's
consecutive updates possibly merged into one object: check_pipeline.py's
model of sink/merge.c) and no other did; every other event is in the dead-letter topic as type_conflict
naming the key and the winning type, by source partition and offset;
moesif-dev locked each key with the schema's type and counted no
conflict.  Prints a "figures:" line; exits non-zero on the first
difference.
"""
import collections, json, os, sys
# moesif-dev records objects: a user's consecutive updates may arrive
# merged (sink/merge.c); check_pipeline.py models that
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from check_pipeline import check_records  # noqa: E402
d, rec, conflicts = sys.argv[1], sys.argv[2], int(sys.argv[3])
nparts, nkeys = int(sys.argv[4]), int(sys.argv[5])
schema = json.load(open(d + "/schema.json"))
tname = lambda v: {str: "string", bool: "boolean", int: "number"}[type(v)]
keys = ["k%d" % k for k in range(nkeys)]
missing = [k for k in keys if k not in schema]
assert not missing, "keys without a type: %s" % missing
show = [l.split() for l in open(d + "/show-1.txt") if l.strip()]
shown = {f[0]: f[1] for f in show if len(f) > 1}
for k in keys:
    assert shown.get(k) == schema[k], "schema show says %s=%s, export %s" % (k, shown.get(k), schema[k])
want_ok, want_rej = [], {}
for p in range(nparts):
    for off, line in enumerate(open("%s/p%d.ndjson" % (d, p))):
        ev = json.loads(line)
        # an own key may be unclaimed: when every event of a partition
        # lost a race, none was valid whole to claim it
        bad = [k for k, v in ev["metadata"].items()
               if k in schema and tname(v) != schema[k]]
        assert bad or all(k in schema for k in ev["metadata"]), \
            "partition %d offset %d is valid but its keys have no type" % (p, off)
        if bad:
            want_rej[(str(p), str(off))] = (line.strip(), bad[0])
        else:
            want_ok.append(line.strip())
# each user's events are one partition's, here in offset order; at least
# once (the group's rebalances replay), and nothing of a losing type: an
# object that is no run of the user's accepted events is reported
got = [l.strip() for l in open(rec) if l.strip()]
problems = []
check_records(want_ok, got, True, problems)
assert not problems, problems[0]
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
print("figures: %d keys raced (%s); %d events accepted (moesif-dev got %d objects, "
      "a user's consecutive updates merged), "
      "%d type_conflict (dead-letter records %d: %d duplicates)" %
      (len(keys), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
       len(want_ok), len(got),
       len(want_rej), sum(seen.values()), sum(seen.values()) - len(want_rej)))
