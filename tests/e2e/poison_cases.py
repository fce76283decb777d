#!/usr/bin/python3
"""poison_cases.py: the adversarial messages of test_run_poison_input.sh
(issue 20) and the check of where each one ended.

  poison_cases.py gen DIR
      writes DIR/group-NNN.tsv files, each "KEY<TAB>VALUE" lines that one
      kcat call produces in order (kind "lines"), or a one-line file of an
      empty value or a tombstone (kinds "empty" and "tomb", named in
      DIR/plan: "NNN KIND"), and DIR/expect.json: for each offset of the
      topic's one partition, "accept" (its user_id must reach moesif-dev)
      or the reject code its dead-letter record must carry
  poison_cases.py check DIR RECORD DLQ_JSON
      checks moesif-dev's --record file and the dead-letter topic (kcat -J)
      against DIR/expect.json; prints a table of case, offset, expected,
      got; exits 1 on any difference

Run with transform.max_event_bytes=4096, transform.max_depth=8 and
schema.max_keys=60 (the sizes and the cap the cases are built around).
"""
import json
import os
import sys

MAX_BYTES = 4096
MAX_DEPTH = 8
MAX_KEYS = 60


def ev(uid, **fields):
    d = {"user_id": uid}
    d.update(fields)
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def sized(uid, n):
    """An event of exactly n bytes (UTF-8)."""
    base = ev(uid, metadata={"pad": ""})
    return base.replace('"pad":""', '"pad":"' + "x" * (n - len(base.encode())) + '"')


def nested(uid, depth):
    """metadata nested so that the event has `depth` levels of containers
    (the event object is level 1, metadata level 2)."""
    inner = "1"
    for i in range(depth - 1):
        inner = '{"d%d":%s}' % (i, inner)
    return '{"user_id":"%s","metadata":%s}' % (uid, inner)


def cases():
    """(name, kind, value, expect) in topic order."""
    c = []

    def add(name, value, expect, kind="line"):
        c.append((name, kind, value, expect))

    # one code each for empty and tombstone, whatever came before
    add("seq valid", ev("seq-1"), "accept")
    add("seq empty after valid", None, "empty_message", "empty")
    add("seq tombstone after empty", None, "tombstone", "tomb")
    add("seq valid again", ev("seq-2"), "accept")
    add("seq tombstone after valid", None, "tombstone", "tomb")
    add("seq empty after tombstone", None, "empty_message", "empty")
    add("seq broken json", '{"user_id":', "invalid_json")
    add("seq empty after broken", None, "empty_message", "empty")
    add("seq tombstone after broken", None, "tombstone", "tomb")
    add("seq whitespace after valid", " \t ", "invalid_json")
    # NUL in a key, at each depth and place
    add("nul key in metadata", '{"user_id":"nul-1","metadata":{"a\\u0000b":5}}',
        "invalid_key")
    add("nul key alone", '{"user_id":"nul-2","metadata":{"\\u0000":"x"}}',
        "invalid_key")
    add("nul key nested", '{"user_id":"nul-3","metadata":{"o":{"p\\u0000":1}}}',
        "invalid_key")
    add("nul key in array object",
        '{"user_id":"nul-4","metadata":{"arr":[1,{"k\\u0000":true}]}}',
        "invalid_key")
    add("nul key at depth 7",
        '{"user_id":"nul-5","metadata":{"a":{"b":{"c":{"d":{"e":{"f\\u0000":1}}}}}}}',
        "invalid_key")
    add("nul key top level", '{"user_id":"nul-6","x\\u0000":1}', "invalid_key")
    add("nul key in campaign",
        '{"user_id":"nul-7","campaign":{"utm\\u0000source":"x"}}', "invalid_key")
    add("nul key dotted", '{"user_id":"nul-8","metadata":{"a.b\\u0000":1}}',
        "invalid_key")
    add("same user after nul key, new key",
        '{"user_id":"nul-1","metadata":{"after_nul":1,"a2":2}}', "accept")
    add("nul in values", '{"user_id":"nulval-1","metadata":{"sv":"a\\u0000b"}}',
        "accept")
    # every kind of value
    add("every value type",
        '{"user_id":"kv-1","metadata":{"s":"x","n":12345678901234567890123,'
        '"f":-1.5e-7,"b":true,"z":null,"o":{},"a":[],'
        '"aa":[[1],["x"],{"k":1},null,[]]}}', "accept")
    add("every key kind",
        '{"user_id":"kv-2","metadata":{"":1,"\u00e9\u2713":"u","x\\u002ey":1,'
        '"a.b.c":2,"q\\"k":3,"b\\\\s":4,"c\\u0001":5,"  ":6,'
        '"%s":7}}' % ("L" * 1000), "accept")
    add("escaped unicode key, same key", '{"user_id":"kv-3","metadata":{"\\u00e9\\u2713":"v"}}',
        "accept")
    add("type conflict", '{"user_id":"kv-4","metadata":{"s":1}}', "type_conflict")
    add("duplicate key", '{"user_id":"kv-5","metadata":{"d":1,"d":2}}',
        "duplicate_key")
    add("duplicate after rewrite", '{"user_id":"kv-6","metadata":{"d.e":1,"d_e":2}}',
        "duplicate_key")
    add("array event", "[1,2]", "not_an_object")
    add("null event", "null", "not_an_object")
    add("no user_id", "{}", "missing_user_id")
    add("user_id number", '{"user_id":5}', "invalid_field_type")
    add("unknown field", '{"user_id":"kv-7","nope":1}', "unknown_field")
    add("not json", "hello", "invalid_json")
    add("two values", '{"user_id":"kv-8"}{"user_id":"kv-9"}', "invalid_json")
    # sizes at and around transform.max_event_bytes, depth around max_depth
    add("size max-1", sized("size-1", MAX_BYTES - 1), "accept")
    add("size max", sized("size-2", MAX_BYTES), "accept")
    add("size max+1", sized("size-3", MAX_BYTES + 1), "too_large")
    add("size 3x max", sized("size-4", 3 * MAX_BYTES), "too_large")
    add("depth max", nested("depth-1", MAX_DEPTH), "accept")
    add("depth max+1", nested("depth-2", MAX_DEPTH + 1), "too_deep")
    add("depth 200", nested("depth-3", 200), "too_deep")
    # schema.max_keys: a flood of new keys is refused, known keys pass
    add("schema full", ev("full-1", metadata={"id%d" % i: i for i in range(MAX_KEYS)}),
        "schema_full")
    add("known keys after full", ev("full-2", metadata={"s": "y", "n": 2}), "accept")
    add("last valid", ev("last-1"), "accept")
    return c


def gen(out):
    os.makedirs(out, exist_ok=True)
    groups = []
    for name, kind, value, expect in cases():
        if kind == "line" and groups and groups[-1][0] == "lines":
            groups[-1][1].append(value)
        else:
            groups.append([kind if kind != "line" else "lines", [value]])
    with open(os.path.join(out, "plan"), "w") as plan:
        for i, (kind, values) in enumerate(groups):
            path = os.path.join(out, "group-%03d.tsv" % i)
            with open(path, "w", encoding="utf-8") as f:
                for v in values:
                    assert "\n" not in (v or "") and "\t" not in (v or "").replace(" \t ", "")
                    f.write("k%d\t%s\n" % (i, v or ""))
            plan.write("%s %s\n" % (path, kind))
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump([[n, k, v, e] for n, k, v, e in cases()], f)


def headers(d):
    h = d.get("headers") or []
    if isinstance(h, dict):
        return h
    return dict(zip(h[0::2], h[1::2]))


def check(out, record, dlq):
    expect = json.load(open(os.path.join(out, "expect.json")))
    got_users = set()
    for line in open(record, encoding="utf-8"):
        if line.strip():
            got_users.add(json.loads(line)["user_id"])
    by_offset = {}
    for line in open(dlq, encoding="utf-8"):
        if line.strip():
            d = json.loads(line)
            h = headers(d)
            by_offset.setdefault(int(h["userpipe.source.offset"]), []).append(
                (h.get("userpipe.error.code"), d.get("payload")))
    bad = 0
    print("%-40s %6s  %-16s %s" % ("case", "offset", "expected", "got"))
    for off, (name, kind, value, want) in enumerate(expect):
        recs = by_offset.get(off, [])
        codes = sorted({c for c, _ in recs})
        if want == "accept":
            uid = json.loads(value)["user_id"]
            got = "accept" if uid in got_users and not recs else \
                ("dlq:" + ",".join(codes) if recs else "missing")
        else:
            got = ",".join(codes) if recs else "missing"
            # the record holds the value byte for byte; a tombstone's is null
            for _, payload in recs:
                if kind == "tomb" and payload is not None:
                    got += " (payload not null)"
                elif kind == "empty" and payload != "":
                    got += " (payload not empty)"
                elif kind == "line" and payload != value and len(value) < 4096:
                    got += " (payload differs)"
        ok = got == want
        bad += not ok
        print("%-40s %6d  %-16s %s%s" % (name[:40], off, want, got, "" if ok else "   <-- WRONG"))
    extra = [o for o in by_offset if o >= len(expect)]
    if extra:
        print("dead-letter records for offsets past the cases: %s" % extra)
        bad += 1
    print("%d cases, %d wrong" % (len(expect), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4]))
