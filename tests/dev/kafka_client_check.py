#!/usr/bin/python3
"""kafka_client_check.py: an independent Kafka client against kafka-dev.

Run with Debian's interpreter (/usr/bin/python3): python3-kafka is installed
there only.  Produces COUNT keyed messages with KafkaProducer (acks=all),
consumes them back with a KafkaConsumer in consumer group GROUP, commits,
and checks that every message came back once with its key, that each key
stayed on one partition, and that the committed offset of every partition
equals its end offset.  Prints one "ok ..." line and exits 0, or prints
"FAIL: <sentence>" and exits 1.

Usage: kafka_client_check.py --bootstrap HOST:PORT[,..] --topic T
                             --group G [--count N] [--timeout S]
"""

import argparse
import sys
import time

try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
except ImportError:
    print("FAIL: the kafka module is missing; run this with /usr/bin/python3 "
          "(Debian's python3-kafka)", file=sys.stderr)
    sys.exit(1)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=40.0)
    args = ap.parse_args()
    servers = args.bootstrap.split(",")

    sent = {}
    producer = KafkaProducer(bootstrap_servers=servers, acks="all",
                             retries=5, linger_ms=5,
                             request_timeout_ms=10000)
    futures = []
    for i in range(args.count):
        key = ("py-user-%d" % (i % 37)).encode()
        value = ('{"user_id":"py-user-%d","seq":%d}' % (i % 37, i)).encode()
        sent[value] = key
        futures.append(producer.send(args.topic, key=key, value=value))
    producer.flush(timeout=args.timeout)
    for f in futures:
        f.get(timeout=args.timeout)  # raises on a failed delivery
    producer.close()

    consumer = KafkaConsumer(args.topic, bootstrap_servers=servers,
                             group_id=args.group,
                             auto_offset_reset="earliest",
                             enable_auto_commit=False,
                             consumer_timeout_ms=1000)
    got = {}
    key_partition = {}
    deadline = time.monotonic() + args.timeout
    while len(got) < len(sent) and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        for records in batch.values():
            for rec in records:
                if rec.value in got:
                    fail("message %r was delivered twice" % rec.value)
                got[rec.value] = rec.key
                prev = key_partition.setdefault(rec.key, rec.partition)
                if prev != rec.partition:
                    fail("key %r was on partitions %d and %d"
                         % (rec.key, prev, rec.partition))
    if len(got) != len(sent):
        fail("consumed %d of %d messages within %.0f s"
             % (len(got), len(sent), args.timeout))
    for value, key in sent.items():
        if got.get(value) != key:
            fail("message %r came back with key %r, not %r"
                 % (value, got.get(value), key))

    consumer.commit()
    parts = [TopicPartition(args.topic, p)
             for p in sorted(consumer.partitions_for_topic(args.topic))]
    ends = consumer.end_offsets(parts)
    total = 0
    for tp in parts:
        committed = consumer.committed(tp)
        if committed != ends[tp]:
            fail("partition %d: committed offset %r, end offset %d"
                 % (tp.partition, committed, ends[tp]))
        total += committed
    consumer.close()
    if total != len(sent):
        fail("committed offsets add up to %d, not %d" % (total, len(sent)))
    print("ok kafka-python produced and consumed %d messages over %d "
          "partitions; group %s committed %d"
          % (len(sent), len(parts), args.group, total))


if __name__ == "__main__":
    main()
