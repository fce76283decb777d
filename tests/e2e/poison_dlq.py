#!/usr/bin/python3
"""poison_dlq.py: the events and the checks of test_run_poison_dlq.sh
(issue 20): events at and around the size limits, messages with headers,
compressed batches, and what must become of each.

  poison_dlq.py gen DIR LIMIT
      writes DIR/p<N>.ndjson (one message a line, "key<TAB>value", for
      kcat -K'\t' -p N) and DIR/expect.json (what each value must become)
  poison_dlq.py admin BOOTSTRAP LIMIT
      (Apache Kafka only) creates users.dlq with max.message.bytes=LIMIT
      and lets users take 4,000,000-byte messages
  poison_dlq.py compact BOOTSTRAP
      (Apache Kafka only) creates users.dlq.compact, cleanup.policy=compact
  poison_dlq.py shrink BOOTSTRAP LIMIT
      (Apache Kafka only) lowers users.dlq's max.message.bytes to LIMIT
  poison_dlq.py check LIMIT SOURCE.json DLQ.json RECORD
      SOURCE.json and DLQ.json are kcat -J lines of the source and the
      dead-letter topic, RECORD moesif-dev's --record file.  Every source
      message is in Moesif (valid events, by user_id) or in the dead-letter
      topic (by its userpipe.source.partition/offset headers); a record
      whose key, value and headers fit LIMIT holds its value byte for byte,
      else a prefix of it with userpipe.value.truncated=1, .size the
      original's bytes and .sha256 its SHA-256; every record fits LIMIT;
      the source's own headers are on the record beside userpipe's.
"""
import hashlib
import json
import os
import sys

# what the dead-letter producer counts beyond the bytes of key, value and
# headers (sink/dlq.c: batch header, record varints, margin) and per header
FRAMING = 61 + 36 + 64
PER_HEADER = 10
MAX_EVENT = 1048576  # transform.max_event_bytes, the default


def pad_event(uid, size, meta_first=""):
    """A JSON user event of exactly size bytes."""
    head = '{"user_id":"%s","metadata":{%s"pad":"' % (uid, meta_first)
    tail = '"}}'
    return head + "x" * (size - len(head) - len(tail)) + tail


def gen(out, limit):
    # name -> (partition, key, value, fate): fate "moesif", or the reject
    # code; cut: whether the record must be cut at this LIMIT
    msgs = [
        ("too_large_1.1MB", 0, "big", pad_event("big", 1100000), "too_large"),
        ("type_conflict_1.0MB", 1, "conf",
         pad_event("conf", 1000000, '"k":"a string",'), "type_conflict"),
        ("invalid_limit_minus_4096", 2, "m4096", "y" * (limit - 4096),
         "invalid_json"),
        ("invalid_at_limit", 3, "at", "z" * limit, "invalid_json"),
        ("invalid_limit_plus_1", 3, "over", "w" * (limit + 1), "invalid_json"),
        ("valid_at_max_event_bytes", 4, "maxev",
         pad_event("maxev", MAX_EVENT), "moesif"),
        ("too_large_max_event_plus_1", 5, "maxev1",
         pad_event("maxev1", MAX_EVENT + 1), "too_large"),
    ]
    files = {}
    for name, part, key, value, fate in msgs:
        files.setdefault(part, []).append("%s\t%s" % (key, value))
    for part, lines in files.items():
        with open(os.path.join(out, "p%d.ndjson" % part), "w") as f:
            f.write("\n".join(lines) + "\n")
    expect = {v: (name, fate) for name, _, _, v, fate in msgs}
    # the small ones the script produces itself (headers, compression)
    for codec in ("gzip", "zstd", "lz4", "snappy", "hdr"):
        expect['{"user_id":"ok-%s"}' % codec] = ("valid_" + codec, "moesif")
        expect['{"user_id":5,"c":"%s"}' % codec] = ("invalid_" + codec,
                                                    "invalid_field_type")
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump(expect, f)


def admin(bootstrap, limit):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="poison")
    a.create_topics([NewTopic("users.dlq", 1, 1, topic_configs={
        "max.message.bytes": str(limit)})])
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "users",
                                    configs={"max.message.bytes": "4000000"})])
    a.close()


def shrink(bootstrap, limit):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="poison")
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "users.dlq",
                                    configs={"max.message.bytes": str(limit)})])
    a.close()


def compact(bootstrap):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="poison")
    a.create_topics([NewTopic("users.dlq.compact", 1, 1, topic_configs={
        "cleanup.policy": "compact"})])
    a.close()


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def headers(m):
    h = m.get("headers") or []
    return list(zip(h[0::2], h[1::2]))


def check(limit, source_path, dlq_path, record_path, expect_path):
    expect = json.load(open(expect_path))
    source = lines(source_path)
    dlq = lines(dlq_path)
    accepted = {}
    with open(record_path) as f:
        for l in f:
            if l.strip():
                u = json.loads(l)["user_id"]
                accepted[u] = accepted.get(u, 0) + 1
    by_coord = {}
    for r in dlq:
        h = dict(headers(r))
        by_coord[(int(h["userpipe.source.partition"]),
                  int(h["userpipe.source.offset"]))] = r
    bad = []
    rows = []
    for m in source:
        value = m["payload"] or ""
        name, fate = expect.get(value, ("?", "?"))
        if name == "?":
            bad.append("unexpected source message at %d/%d" %
                       (m["partition"], m["offset"]))
            continue
        r = by_coord.get((m["partition"], m["offset"]))
        if fate == "moesif":
            uid = json.loads(value)["user_id"]
            if r is not None or accepted.get(uid, 0) < 1:
                bad.append("%s: not delivered to Moesif" % name)
            rows.append((name, len(value), "moesif", "-"))
            continue
        if r is None:
            bad.append("%s: not in the dead-letter topic" % name)
            continue
        hs = headers(r)
        h = dict(hs)
        out = r["payload"] or ""
        key = r["key"] or ""
        size = (len(key.encode()) + len(out.encode()) +
                sum(len(a.encode()) + len((b or "").encode()) for a, b in hs) +
                FRAMING + PER_HEADER * len(hs))
        if size > limit:
            bad.append("%s: record of %d bytes over the limit %d" %
                       (name, size, limit))
        if h.get("userpipe.error.code") != fate:
            bad.append("%s: code %s, want %s" %
                       (name, h.get("userpipe.error.code"), fate))
        plain = [(a, b) for a, b in hs if not a.startswith("userpipe.value.")]
        whole = (len(key.encode()) + len(value.encode()) +
                 sum(len(a) + len(b or "") for a, b in plain) + FRAMING +
                 PER_HEADER * len(plain))
        cut = h.get("userpipe.value.truncated") == "1"
        if whole <= limit and (cut or out != value):
            bad.append("%s: fits (%d <= %d) but was not kept whole" %
                       (name, whole, limit))
        if whole > limit and not cut:
            bad.append("%s: %d bytes over %d not marked truncated" %
                       (name, whole, limit))
        if cut:
            if not value.startswith(out) or len(out) == 0:
                bad.append("%s: the cut value is not a prefix" % name)
            if h.get("userpipe.value.size") != str(len(value)):
                bad.append("%s: size header %s, want %d" %
                           (name, h.get("userpipe.value.size"), len(value)))
            sha = hashlib.sha256(value.encode()).hexdigest()
            if h.get("userpipe.value.sha256") != sha:
                bad.append("%s: sha256 header differs" % name)
        if name.startswith("invalid_hdr"):
            if ("trace", "abc") not in hs or ("tenant", "t1") not in hs or \
                    ("empty", "") not in [(a, b or "") for a, b in hs]:
                bad.append("%s: the source headers are not on the record: %s"
                           % (name, hs))
        if key != (m["key"] or ""):
            bad.append("%s: key %r, want %r" % (name, key, m["key"]))
        rows.append((name, len(value), fate,
                     "cut to %d" % len(out) if cut else "whole"))
    for row in rows:
        print("  %-28s %8d bytes  %-20s %s" % row)
    if bad:
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)
    print("ok: %d source messages, %d in Moesif or the dead-letter topic "
          "(limit %d)" % (len(source), len(rows), limit))


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "admin":
        admin(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "compact":
        compact(sys.argv[2])
    elif sys.argv[1] == "shrink":
        shrink(sys.argv[2], int(sys.argv[3]))
    else:
        check(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5],
              sys.argv[6])
