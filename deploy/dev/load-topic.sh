#!/usr/bin/env bash
# load-topic.sh: loads an NDJSON file into a Kafka topic with kcat, one
# message per non-empty line, keyed by the event's top-level user_id (lines
# without one get a null key), so updates of one user share a partition as
# they would in production.
#
# Usage: deploy/dev/load-topic.sh TOPIC FILE
#
# Against kafka-dev it first refuses, with a sentence saying how many
# partitions are needed, a file its topic's partitions cannot hold: the
# mock broker keeps about 5 MiB per partition and silently drops the
# oldest data beyond that.  Afterwards it asks kafka-dev whether any
# partition of the topic dropped data (data loaded before counts too) and
# whether every line arrived.
#
# Environment:
#   BOOTSTRAP   bootstrap servers (default: DEV_DIR/bootstrap.servers)
#   DEV_DIR     dev stack state (default build/dev)
#   KAFKA_CTL   kafka-dev control socket (default DEV_DIR/kafka.sock); the
#               checks after loading are skipped when it does not exist
#   BUILD       folder of kafka-dev (default build/release)
#   LOAD_NO_CAP_CHECK=1  skip the refusal (a real Kafka has no such cap)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
DEV_DIR=${DEV_DIR:-$ROOT/build/dev}
KAFKA_CTL=${KAFKA_CTL:-$DEV_DIR/kafka.sock}
KAFKA_DEV=$BUILD/kafka-dev
LOAD_NO_CAP_CHECK=${LOAD_NO_CAP_CHECK:-0}

die() {
    echo "load-topic: $*" >&2
    exit 1
}

[ $# -eq 2 ] || {
    echo "usage: load-topic.sh TOPIC FILE" >&2
    exit 2
}
topic=$1
file=$2
[ -r "$file" ] || die "cannot read \"$file\""
[ -x "$KAFKA_DEV" ] || die "kafka-dev is not built at $KAFKA_DEV (it extracts the keys); run make"
if [ -z "${BOOTSTRAP:-}" ]; then
    [ -s "$DEV_DIR/bootstrap.servers" ] ||
        die "no BOOTSTRAP and no $DEV_DIR/bootstrap.servers; start the dev stack with make dev-up"
    BOOTSTRAP=$(cat "$DEV_DIR/bootstrap.servers")
fi

# The topic's partition count from a listing of all topics: naming one
# unknown topic would make kafka-dev create it with 4 partitions.
partitions=$(timeout 20 kcat -L -b "$BOOTSTRAP" -m 10 2>/dev/null |
    awk -v t="$topic" '$1 == "topic" && $2 == "\"" t "\"" { print $4; exit }') ||
    die "cannot list the topics of $BOOTSTRAP (is the broker up?)"
[ -n "$partitions" ] ||
    die "topic \"$topic\" does not exist on $BOOTSTRAP; create it first (e.g. kafka-dev ctl $KAFKA_CTL create-topic $topic:N, or DEV_TOPICS) with N from: kafka-dev plan $file"

if [ "$LOAD_NO_CAP_CHECK" != 1 ]; then
    plan_rc=0
    plan=$("$KAFKA_DEV" plan --partitions "$partitions" "$file") || plan_rc=$?
    field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$plan"; }
    case $plan_rc in
    0) ;;
    1)
        die "refusing to load $file ($(field bytes) bytes estimated) into $topic: its partition $(field fullest_partition) would get $(field fullest_bytes) bytes, but kafka-dev keeps only about 5 MiB ($(field cap_bytes) bytes, $(field usable_bytes) usable) per partition and silently drops older data; give $topic at least $(field needed) partitions (it has $partitions)"
        ;;
    *) die "kafka-dev plan failed on $file" ;;
    esac
fi

ctl() {
    "$KAFKA_DEV" ctl "$KAFKA_CTL" "$@"
}

# Sum of the high watermarks of the topic's partitions.
high_sum() {
    ctl watermarks "$topic" | tr ' ' '\n' |
        awk -F'[:.]+' '/^[0-9]+:[0-9]+\.\.[0-9]+$/ { s += $3 } END { print s + 0 }'
}

have_ctl=0
if [ -S "$KAFKA_CTL" ] && ctl ping >/dev/null 2>&1; then
    have_ctl=1
    before=$(high_sum)
fi

lines=$(grep -c . "$file" || true)
# -K '\t': "key<TAB>value" per line; -Z: the empty key of a keyless line
# is sent as a null key.  kcat exits non-zero when a delivery fails.
"$KAFKA_DEV" keyed "$file" |
    timeout 300 kcat -P -b "$BOOTSTRAP" -t "$topic" -K '\t' -Z -q \
        -X acks=all -X message.timeout.ms=60000 ||
    die "kcat failed to deliver $file to $topic"

if [ $have_ctl = 1 ]; then
    after=$(high_sum)
    if [ $((after - before)) -ne "$lines" ]; then
        die "$topic grew by $((after - before)) messages, not the $lines lines of $file"
    fi
    check=$(ctl check "$topic" 2>&1) ||
        die "loaded $file into $topic, but kafka-dev dropped data: $check"
fi
echo "load-topic: loaded $lines messages from $file into $topic ($partitions partitions)"
