#!/usr/bin/env bash
# test_kafka_autocreate.sh (issue 11, item 1; issue 13): the first start of
# `userpipe run` on a real Apache Kafka configured as most production
# clusters' defaults are, auto.create.topics.enable=true with
# num.partitions=6, where only the source topic exists.  userpipe must
# create the schema topic itself with ONE partition (before the fix its
# producer's metadata request auto-created it with six, and the run
# exited 2: "the schema topic 'userpipe-schema' has 6 partitions"), the
# dead-letter topic with one partition at the first reject, and no other
# topic; nothing is lost: every valid event reaches moesif-dev, every
# reject is in the dead-letter topic, the offsets are committed at the end.
set -euo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
export DEV_KAFKA=apache

rec=$(mktemp)
dev_at_exit rm -f "$rec"
# the topics, without Kafka's internal ones (__consumer_offsets)
user_topics() {
    kafka_ctl topics | sed 's/ __[^ ]*//g'
}
DEV_KAFKA_PROPS="auto.create.topics.enable=true num.partitions=6" \
    DEV_TOPICS="users:1" MOESIF_DEV_ARGS="--record $rec" dev_start
[ "$(user_topics)" = "ok users:1" ] || fail "unexpected topics before the run: $(user_topics)"
produce_file users "$SAMPLE"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-autocreate
run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero on its first start"; }

topics=$(user_topics)
[ "$topics" = "ok userpipe-schema:1 users:1 users.dlq:1" ] ||
    fail "topics after the run: $topics (want userpipe-schema:1 users:1 users.dlq:1)"
grep -q 'msg="schema topic created" topic=userpipe-schema partitions=1' "$DEV_TMP/run.log" ||
    fail "userpipe did not say it created the schema topic"
grep -q 'msg="dead-letter topic created" topic=users.dlq partitions=1' "$DEV_TMP/run.log" ||
    fail "userpipe did not say it created the dead-letter topic"
check_delivery "$rec" || fail "delivery differs"
committed=$(group_committed_total e2e-autocreate users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"

# A second start finds both topics and creates nothing.
run_userpipe "$DEV_TMP/run2.log" -c "$cfg" --exit-at-end ||
    { tail -20 "$DEV_TMP/run2.log" >&2; fail "the second start exited non-zero"; }
grep -q 'topic created' "$DEV_TMP/run2.log" && fail "the second start created a topic again"
[ "$(user_topics)" = "$topics" ] || fail "the second start changed the topics: $(user_topics)"
echo "ok: first start on auto.create.topics.enable=true num.partitions=6: $topics; $total events, committed $committed"
