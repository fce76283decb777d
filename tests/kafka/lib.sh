# shellcheck shell=bash
# tests/kafka/lib.sh: what the real-cluster tests of tests/kafka/ share
# (issue 13), on top of tests/e2e/lib.sh: every one runs on Apache Kafka
# (DEV_KAFKA=apache), most on three nodes, and asserts nothing was lost.
# The checks of the end read the broker with python3-kafka
# (tests/kafka/kafka_admin.py), not with kafka-dev.
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
export DEV_KAFKA=apache
# load-topic.sh's refusal guards kafka-dev's 5 MiB per partition; a real
# broker has no such cap
export LOAD_NO_CAP_CHECK=1

# kafka_ctl, bounded (CTL_TIMEOUT seconds, 15 by default): `kafka-dev
# remote` waits as long as a partition it asks about has no live leader,
# and these tests sample the brokers while some are down
kafka_ctl() {
    timeout "${CTL_TIMEOUT:-15}" "$KAFKA_DEV" remote "$BOOTSTRAP" "$@"
}

# kadmin CMD ARG...: tests/kafka/kafka_admin.py against the test's broker
# (create LEADER NAME:PARTS... | committed GROUP TOPIC | records TOPIC).
kadmin() {
    timeout 120 /usr/bin/python3 "$E2E_ROOT/tests/kafka/kafka_admin.py" "$BOOTSTRAP" "$@"
}

# running PID: the process exists and has not exited (kill -0 succeeds on
# a child that exited and was not waited for yet).
running() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $st in
    Z*) return 1 ;;
    esac
}

# leader_of TOPIC PARTITION: the broker id leading it now.
leader_of() {
    kafka_ctl leaders "$1" | tr ' ' '\n' | sed -n "s/^$2:\([0-9-]*\)\$/\1/p"
}

# leaders TOPIC...: "TOPIC:P:LEADER" of every partition, one line.
leaders() {
    local t
    for t in "$@"; do
        kafka_ctl leaders "$t" | tr ' ' '\n' | sed -n "s/^\([0-9]*:[0-9-]*\)\$/$t:\1/p"
    done | xargs
}

# led_by BROKER TOPIC...: every partition of the topics has that leader.
led_by() {
    local b=$1 l
    shift
    for l in $(leaders "$@"); do
        [ "${l##*:}" = "$b" ] || return 1
    done
}

# led_without BROKER TOPIC...: no partition of the topics has that leader
# (nor none: a partition without a leader is -1).
led_without() {
    local b=$1 l
    shift
    for l in $(leaders "$@"); do
        case ${l##*:} in
        "$b" | -1 | "") return 1 ;;
        esac
    done
}

# in_sync BROKER TOPIC...: the broker is back in every partition's ISR.
in_sync() {
    local b=$1 t
    shift
    for t in "$@"; do
        kafka_ctl isr "$t" | tr ' ' '\n' | grep -q '^[0-9]' || return 1
        if kafka_ctl isr "$t" | tr ' ' '\n' | grep '^[0-9]' | grep -vqE "[:,]$b(,|\$)"; then
            return 1
        fi
    done
}

# seconds_until SECS CMD...: polls CMD every 0.2 s until it succeeds and
# prints the seconds it took (to a tenth); fails after SECS.
seconds_until() {
    local secs=$1 t0
    shift
    t0=$(date +%s%N)
    until "$@" >/dev/null 2>&1; do
        [ $((($(date +%s%N) - t0) / 1000000000)) -lt "$secs" ] || fail "timed out after ${secs}s waiting for: $*"
        sleep 0.2
    done
    awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f\n", ns / 1e9 }'
}

# more_than N CMD...: CMD prints a number above N.
more_than() {
    local n=$1 v
    shift
    v=$("$@") || return 1
    [ "$v" -gt "$n" ]
}

# with_rejects: copies stdin to stdout with an invalid event (no user_id,
# rejected as missing_user_id, each different) after every tenth line, so
# the dead-letter producer works all through a run.
with_rejects() {
    awk '{ print } NR % 10 == 0 { printf "{\"metadata\":{\"seq\":%d}}\n", NR }'
}

# with_new_keys FROM: copies stdin to stdout with, after every 50th line
# past line FROM, a valid event carrying a metadata key never seen before,
# so the schema topic is written and read back all through the later part
# of a run.
with_new_keys() {
    awk -v from="$1" '{ print } NR > from && NR % 50 == 0 {
        printf "{\"user_id\":\"nk%d\",\"metadata\":{\"new_key_%d\":%d}}\n", NR, NR, NR }'
}
