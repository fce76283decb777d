#!/usr/bin/python3
"""kafka_admin.py: what the real-cluster tests of tests/kafka/ read and
create with python3-kafka (the Admin API and a plain consumer), so the
checks of the end do not go through kafka-dev, the code under test's
sibling (issue 13).

  kafka_admin.py BOOTSTRAP create LEADER NAME:PARTITIONS[:KEY=VALUE,...]...
      create each topic with every partition's preferred leader LEADER and
      its replicas on every broker (replication factor = broker count), so
      one kill -9 takes the leadership of all of them at once; topic
      configs may follow (message.timestamp.type=LogAppendTime: the
      broker stamps each record with the time it wrote it)
  kafka_admin.py BOOTSTRAP coordinator GROUP
      the broker id of the group's coordinator (the leader of its
      __consumer_offsets partition, created at the first ask)
  kafka_admin.py BOOTSTRAP committed GROUP TOPIC
      compare the group's committed offsets with the end offsets; prints
      "P committed end" per partition and a summary, exits 1 when any
      partition differs or was never committed
  kafka_admin.py BOOTSTRAP records TOPIC [SINCE_MS]
      every record of TOPIC from the beginning; prints "records=N
      distinct=N same_content=N same_source=N": same_content counts the
      records whose key and value another record already has (the tests
      make every reject different),
      same_source those whose userpipe.source.partition/offset headers
      another already names (a dead-letter record written twice); with
      SINCE_MS (epoch ms) also "first_after_ms=N", how long after it the
      first record is stamped (-1: none)
  kafka_admin.py BOOTSTRAP grant PRINCIPAL README SECTION [NAME=VALUE]...
        [--except TYPE:NAME:OPERATION]...
      creates the ACLs (allow, any host, literal names) that README.md's
      Permissions table under "<!-- acls:SECTION -->" lists as needed
      "always", for PRINCIPAL (User:x), the placeholders `<NAME>` of its
      name column replaced by VALUE (issue 19: the test of the ACLs reads
      the document, so the two cannot drift); --except leaves one out;
      prints each ACL created as TYPE:NAME:OPERATION

The client speaks what KADMIN_SECURITY says (issue 19), empty for
PLAINTEXT: "SASL_SSL MECHANISM USER PASSWORD CAFILE" or "SSL CAFILE
CERTFILE KEYFILE".
"""
import os
import re
import collections
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic


def security():
    """The client options KADMIN_SECURITY asks for."""
    f = os.environ.get("KADMIN_SECURITY", "").split()
    if not f:
        return {}
    if f[0] == "SASL_SSL":
        return dict(security_protocol="SASL_SSL", sasl_mechanism=f[1],
                    sasl_plain_username=f[2], sasl_plain_password=f[3],
                    ssl_cafile=f[4])
    if f[0] == "SSL":
        return dict(security_protocol="SSL", ssl_cafile=f[1],
                    ssl_certfile=f[2], ssl_keyfile=f[3])
    sys.exit("KADMIN_SECURITY: unknown protocol %s" % f[0])


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap,
                            client_id="userpipe-tests",
                            request_timeout_ms=20000, **security())


def create(bootstrap, leader, specs):
    a = admin(bootstrap)
    brokers = sorted(b["node_id"] for b in a.describe_cluster()["brokers"])
    if leader not in brokers:
        sys.exit("broker %d is not among %s" % (leader, brokers))
    replicas = [leader] + [b for b in brokers if b != leader]
    topics = []
    for spec in specs:
        name, parts, *conf = spec.split(":", 2)
        configs = dict(kv.split("=", 1) for kv in conf[0].split(",")) if conf else {}
        topics.append(NewTopic(name, -1, -1, replica_assignments={
            p: replicas for p in range(int(parts))}, topic_configs=configs))
    a.create_topics(topics, timeout_ms=30000)
    a.close()


def coordinator(bootstrap, group):
    a = admin(bootstrap)
    for _ in range(60):
        try:
            print(a._find_coordinator_ids([group])[group])
            a.close()
            return 0
        except Exception:  # not available while __consumer_offsets is made
            time.sleep(0.5)
    sys.exit("no coordinator for group %s within 30 s" % group)


def end_offsets(bootstrap, topic):
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      request_timeout_ms=30000, **security())
    parts = c.partitions_for_topic(topic)
    if not parts:
        sys.exit("topic %s has no partitions" % topic)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    ends = c.end_offsets(tps)
    c.close()
    return {tp.partition: ends[tp] for tp in tps}


def committed(bootstrap, group, topic):
    ends = end_offsets(bootstrap, topic)
    a = admin(bootstrap)
    offs = a.list_consumer_group_offsets(group)
    a.close()
    bad = 0
    for p, end in sorted(ends.items()):
        om = offs.get(TopicPartition(topic, p))
        got = om.offset if om is not None else "none"
        print("%d %s %d" % (p, got, end))
        if got != end:
            bad += 1
    total = sum(o.offset for tp, o in offs.items() if tp.topic == topic)
    print("committed=%d end=%d partitions=%d differing=%d" %
          (total, sum(ends.values()), len(ends), bad))
    return 1 if bad else 0


def records(bootstrap, topic, since_ms=None):
    ends = end_offsets(bootstrap, topic)
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=10000,
                      **security())
    tps = [TopicPartition(topic, p) for p in ends]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    want = sum(ends.values()) - sum(c.beginning_offsets(tps).values())
    content = collections.Counter()
    source = collections.Counter()
    n = 0
    first = None
    while n < want:
        batch = c.poll(timeout_ms=5000)
        if not batch:
            sys.exit("read %d of %d records of %s, then nothing" %
                     (n, want, topic))
        for msgs in batch.values():
            for m in msgs:
                n += 1
                if since_ms is not None and m.timestamp >= since_ms and (
                        first is None or m.timestamp < first):
                    first = m.timestamp
                content[(m.key, m.value)] += 1
                hd = dict(m.headers or ())
                src = (hd.get("userpipe.source.topic"),
                       hd.get("userpipe.source.partition"),
                       hd.get("userpipe.source.offset"))
                if src[1] is not None:
                    source[src] += 1
    c.close()
    print("records=%d distinct=%d same_content=%d same_source=%d" %
          (n, len(content), n - len(content),
           sum(v - 1 for v in source.values())) +
          ("" if since_ms is None else " first_after_ms=%d" %
           (first - since_ms if first is not None else -1)))
    return 0


def readme_acls(readme, section, values):
    """(TYPE, NAME, OPERATION) of every row of the section's table needed
    "always", placeholders replaced."""
    lines = open(readme).read().split("\n")
    try:
        i = lines.index("<!-- acls:%s -->" % section)
    except ValueError:
        sys.exit("%s has no <!-- acls:%s --> table" % (readme, section))
    rows = []
    for line in lines[i + 1:]:
        if not line.startswith("|"):
            if rows or line.strip():
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("resource", "") or set(cells[0]) <= set("-"):
            continue
        if not cells[3].startswith("always"):
            continue
        names = re.findall(r"`<([^>]+)>([^`]*)`", cells[1])
        if not names:
            sys.exit("README row without a `<name>`: %s" % line)
        for key, suffix in names[:1]:
            if key not in values:
                sys.exit("README names <%s>: pass %s=VALUE" % (key, key))
            for value in values[key].split(","):
                for op in cells[2].split(","):
                    rows.append((cells[0], value + suffix, op.strip()))
    if not rows:
        sys.exit("the <!-- acls:%s --> table lists nothing always needed" %
                 section)
    return rows


def grant(bootstrap, principal, readme, section, args):
    from kafka.admin import (ACL, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, ResourcePattern,
                             ResourceType)
    values, skip = {}, set()
    it = iter(args)
    for a in it:
        if a == "--except":
            skip.add(tuple(next(it).split(":")))
        else:
            k, v = a.split("=", 1)
            values[k] = v
    ops = {"Read": ACLOperation.READ, "Write": ACLOperation.WRITE,
           "Describe": ACLOperation.DESCRIBE, "Create": ACLOperation.CREATE,
           "IdempotentWrite": ACLOperation.IDEMPOTENT_WRITE,
           "DescribeConfigs": ACLOperation.DESCRIBE_CONFIGS}
    types = {"Topic": ResourceType.TOPIC, "Group": ResourceType.GROUP,
             "Cluster": ResourceType.CLUSTER}
    acls = []
    for rtype, name, op in readme_acls(readme, section, values):
        if (rtype, name, op) in skip:
            skip.discard((rtype, name, op))
            continue
        acls.append(ACL(principal, "*", ops[op], ACLPermissionType.ALLOW,
                        ResourcePattern(types[rtype], name,
                                        ACLResourcePatternType.LITERAL)))
        print("%s:%s:%s" % (rtype, name, op))
    if skip:
        sys.exit("--except names ACLs the README does not list: %s" % skip)
    a = admin(bootstrap)
    res = a.create_acls(acls)
    a.close()
    if res["failed"]:
        sys.exit("ACLs refused: %s" % res["failed"])
    return 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bootstrap, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "create" and len(args) >= 2:
        create(bootstrap, int(args[0]), args[1:])
        return 0
    if cmd == "coordinator" and len(args) == 1:
        return coordinator(bootstrap, args[0])
    if cmd == "committed" and len(args) == 2:
        return committed(bootstrap, args[0], args[1])
    if cmd == "grant" and len(args) >= 3:
        return grant(bootstrap, args[0], args[1], args[2], args[3:])
    if cmd == "records" and len(args) in (1, 2):
        return records(bootstrap, args[0],
                       int(args[1]) if len(args) == 2 else None)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
