# shellcheck shell=bash
# tests/lib/dev.sh: bash helpers for end-to-end tests against the dev stack
# (kafka-dev and moesif-dev of deploy/dev).  Source it from a test script:
#
#   . "$(dirname "$0")/../lib/dev.sh"
#   dev_start orders:2          # the default topics plus orders:2
#   produce_file users deploy/dev/sample-events.ndjson
#   consume_all users.dlq '%k\t%s\n'
#
# dev_start runs the stack in a private DEV_DIR under a mktemp folder and
# installs EXIT, INT and TERM traps that always stop it, so no process
# outlives the test, even when the test fails or is killed by a timeout.
# Register further cleanup with dev_at_exit (the traps are ours: do not
# replace them).  On a failing exit the ends of the stack's logs are
# printed; DEV_KEEP=1 keeps the temp folder.
#
# Exports after dev_start: BOOTSTRAP, MOESIF_URL (empty without
# moesif-dev), APP_ID, DEV_DIR, KAFKA_CTL, KAFKA_DEV, DEV_KAFKA.
# Needs BUILD (default build/release); honours DEV_NO_MOESIF=1 and the
# other variables of deploy/dev/dev-up.sh.
#
# DEV_KAFKA=apache runs the same tests on a real Apache Kafka
# (deploy/dev/kafka/apache-kafka.sh; DEV_KAFKA_NODES=3 for the cluster).
# kafka_ctl then runs the command here with `kafka-dev remote`, which does
# all a client can (topics, watermarks, committed, create-topic, leaders);
# the fault injections of the mock (broker-down, push-errors, ...) answer
# an error, and a test that needs them calls kafka_dev_only first.

DEV_LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build/release}
case $BUILD in
/*) ;;
*) BUILD=$DEV_LIB_ROOT/$BUILD ;;
esac
export BUILD
KAFKA_DEV=$BUILD/kafka-dev
export KAFKA_DEV
DEV_KAFKA=${DEV_KAFKA:-dev}
export DEV_KAFKA

DEV_TMP=
DEV_AT_EXIT=()

# dev_at_exit CMD...: runs CMD (through eval) when the test exits, before
# the stack stops; later registrations run first.
dev_at_exit() {
    DEV_AT_EXIT=("$*" "${DEV_AT_EXIT[@]}")
}

_dev_on_exit() {
    local rc=$?
    local cmd
    trap - EXIT INT TERM
    for cmd in "${DEV_AT_EXIT[@]}"; do
        eval "$cmd" >/dev/null 2>&1 || true
    done
    if [ $rc -ne 0 ] && [ -n "$DEV_TMP" ] && [ -d "$DEV_TMP" ]; then
        local log
        for log in "$DEV_TMP"/dev/*.log; do
            [ -s "$log" ] || continue
            echo "--- the end of $(basename "$log"):" >&2
            tail -n 15 "$log" >&2
        done
    fi
    dev_stop
    exit $rc
}

_dev_on_signal() {
    echo "dev.sh: stopped by signal $1" >&2
    exit $((128 + $2))
}

# dev_start [NAME:PARTITIONS]...: starts kafka-dev (and moesif-dev unless
# DEV_NO_MOESIF=1) with the default topics (users:8 users.dlq:1
# userpipe-schema:1, or DEV_TOPICS) plus the given ones; a given topic of a
# default's name replaces it.  Returns non-zero with a message on failure.
dev_start() {
    DEV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/userpipe-dev.XXXXXX") || return 1
    export DEV_DIR=$DEV_TMP/dev
    trap _dev_on_exit EXIT
    trap '_dev_on_signal INT 2' INT
    trap '_dev_on_signal TERM 15' TERM
    DEV_EXTRA_TOPICS="$*" BUILD=$BUILD DEV_DIR=$DEV_DIR \
        bash "$DEV_LIB_ROOT/deploy/dev/dev-up.sh" >"$DEV_TMP/dev-up.out" || {
        echo "dev_start: the dev stack did not start (see above)" >&2
        return 1
    }
    BOOTSTRAP=$(cat "$DEV_DIR/bootstrap.servers")
    MOESIF_URL=$(cat "$DEV_DIR/moesif.url" 2>/dev/null || true)
    APP_ID=$(cat "$DEV_DIR/app_id")
    KAFKA_CTL=$DEV_DIR/kafka.sock
    export BOOTSTRAP MOESIF_URL APP_ID KAFKA_CTL
}

# dev_stop: stops the stack and removes the temp folder (unless
# DEV_KEEP=1); safe to call twice.
dev_stop() {
    [ -n "$DEV_TMP" ] || return 0
    DEV_DIR=$DEV_TMP/dev bash "$DEV_LIB_ROOT/deploy/dev/dev-down.sh" >/dev/null ||
        echo "dev_stop: dev-down failed; processes may be left" >&2
    if [ "${DEV_KEEP:-0}" = 1 ]; then
        echo "dev_stop: kept $DEV_TMP" >&2
    else
        rm -rf "$DEV_TMP"
    fi
    DEV_TMP=
}

# kafka_ctl CMD [ARG]...: one kafka-dev control command; prints the "ok"
# reply on stdout, an "error" reply on stderr and returns non-zero.
kafka_ctl() {
    if [ "$DEV_KAFKA" = apache ]; then
        "$KAFKA_DEV" remote "$BOOTSTRAP" "$@"
    else
        "$KAFKA_DEV" ctl "$KAFKA_CTL" "$@"
    fi
}

# kafka_dev_only REASON: a test that needs kafka-dev's fault injection
# passes on a real broker without running, saying why on stdout.
kafka_dev_only() {
    if [ "$DEV_KAFKA" = apache ]; then
        echo "SKIP on Apache Kafka (kafka-dev only): $*"
        exit 0
    fi
}

# kafka_node VERB N: stop, kill (-9), start or pid of Apache Kafka node N
# (DEV_KAFKA=apache only).
kafka_node() {
    DEV_DIR=$DEV_DIR BUILD=$BUILD bash "$DEV_LIB_ROOT/deploy/dev/kafka/apache-kafka.sh" "$@"
}

# produce_file TOPIC FILE: loads an NDJSON file into TOPIC keyed by
# user_id (deploy/dev/load-topic.sh: refuses what the partitions cannot
# hold, and checks every line arrived).
produce_file() {
    BUILD=$BUILD bash "$DEV_LIB_ROOT/deploy/dev/load-topic.sh" "$1" "$2" >/dev/null
}

# consume_all TOPIC [FORMAT]: prints every message of TOPIC from the
# beginning to the current end, one per line by default ('%s\n'; any kcat
# -f format: %k key, %p partition, %o offset, %h headers).
consume_all() {
    timeout 60 kcat -C -b "$BOOTSTRAP" -t "$1" -o beginning -e -q \
        -f "${2:-%s\n}"
}

# consume_all_json TOPIC: as consume_all, one kcat JSON envelope per line
# (topic, partition, offset, key, payload, and headers when present).
consume_all_json() {
    timeout 60 kcat -C -b "$BOOTSTRAP" -t "$1" -o beginning -e -q -J
}

# topic_count TOPIC: how many messages TOPIC holds (sum of high minus low
# watermarks).
topic_count() {
    kafka_ctl watermarks "$1" | tr ' ' '\n' |
        awk -F'[:.]+' '/^[0-9]+:[0-9]+\.\.[0-9]+$/ { s += $3 - $2 } END { print s + 0 }'
}

# group_offsets GROUP TOPIC: the group's committed offsets, one
# "PARTITION OFFSET" line per partition; OFFSET is "none" when the group
# never committed that partition.
group_offsets() {
    local reply
    reply=$(kafka_ctl committed "$1" "$2") || return 1
    tr ' ' '\n' <<<"$reply" | sed -n 's/^\([0-9][0-9]*\):\(.*\)$/\1 \2/p'
}

# group_committed_total GROUP TOPIC: sum of the committed offsets.
group_committed_total() {
    group_offsets "$1" "$2" | awk '$2 != "none" { s += $2 } END { print s + 0 }'
}
