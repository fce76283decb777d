#!/usr/bin/env bash
# dev-down.sh: stops the dev stack that dev-up.sh started in DEV_DIR
# (default build/dev): SIGTERM, up to DEV_STOP_WAIT_S seconds (default 5)
# for a clean exit, then SIGKILL.  Idempotent: with nothing running it
# says so and exits 0.  It removes the address files and the control
# socket so nobody connects to a dead port; logs stay for reading.
#
# A pid is signalled only when /proc says that process still runs the
# binary its pid file names: pid files outlive processes, pids get reused.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEV_DIR=${DEV_DIR:-$ROOT/build/dev}
DEV_STOP_WAIT_S=${DEV_STOP_WAIT_S:-5}

if [ ! -d "$DEV_DIR" ]; then
    echo "dev-down: nothing running (no $DEV_DIR)"
    exit 0
fi

alive() {
    local pid=$1 name=$2 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"
}

# stop NAME: stops the process of DEV_DIR/NAME.pid; 0 when it is gone.
stop() {
    local name=$1 pidfile="$DEV_DIR/$1.pid" pid deadline
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    if ! alive "$pid" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    deadline=$((SECONDS + DEV_STOP_WAIT_S))
    while alive "$pid" "$name" && [ $SECONDS -lt $deadline ]; do
        sleep 0.1
    done
    if alive "$pid" "$name"; then
        echo "dev-down: $name (pid $pid) ignored SIGTERM for ${DEV_STOP_WAIT_S}s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
        sleep 0.2
    fi
    if alive "$pid" "$name"; then
        echo "dev-down: $name (pid $pid) is still running" >&2
        return 1
    fi
    echo "dev-down: stopped $name (pid $pid)"
    rm -f "$pidfile"
    stopped=1
    return 0
}

rc=0
stopped=0
stop moesif-dev || rc=1
stop kafka-dev || rc=1
if [ -s "$DEV_DIR/kafka.nodes" ]; then
    # the Apache Kafka nodes of DEV_KAFKA=apache
    DEV_DIR=$DEV_DIR bash "$ROOT/deploy/dev/kafka/apache-kafka.sh" down || rc=1
    echo "dev-down: stopped Apache Kafka ($(cat "$DEV_DIR/kafka.nodes") node(s))"
    rm -f "$DEV_DIR/kafka.nodes"
    stopped=1
fi
if [ $rc -eq 0 ]; then
    rm -f "$DEV_DIR/bootstrap.servers" "$DEV_DIR/moesif.url" \
        "$DEV_DIR/kafka.sock" "$DEV_DIR/env"
fi
if [ $stopped = 0 ] && [ $rc -eq 0 ]; then
    echo "dev-down: nothing running in $DEV_DIR"
fi
exit $rc
