#!/usr/bin/env bash
# dev-up.sh: starts the dev stack on loopback: kafka-dev (a Kafka broker on
# librdkafka's mock cluster) and moesif-dev (a local Moesif collector API),
# and waits until both answer.  State goes to DEV_DIR:
#
#   bootstrap.servers  kafka-dev's bootstrap servers, one line
#   moesif.url         moesif-dev's base URL, one line (http://127.0.0.1:PORT)
#   app_id             the application id moesif-dev accepts
#   kafka.sock         kafka-dev's control socket (kafka-dev ctl PATH CMD)
#   env                the above as shell assignments: `. build/dev/env`
#   *.pid, *.log       process ids and logs (stdout and stderr)
#
# Start-up cannot race (issue 11: `make demo` failed about one run in five):
# after `&` the child is still this script's forked shell until it has set
# up its redirections and exec'd the server, so its /proc command line is
# not the server's yet.  dev-up therefore waits for the exec itself
# (/proc/PID/exe is the server's binary) before it writes the pid file,
# judges death by its own child's pid (see child_running), removes the
# previous run's logs, ready files and socket before the start, and, when
# it fails or is interrupted, stops the children it started by their pids,
# pid file written or not (deploy/dev/README.md).
#
# Environment (all optional):
#   BUILD          folder of the binaries (default build/release)
#   DEV_DIR        state folder (default build/dev)
#   DEV_TOPICS     topics to create, "name:partitions ..." (default
#                  "users:8 users.dlq:1 userpipe-schema:1"); DEV_EXTRA_TOPICS
#                  adds to them, and a later spec of the same name wins
#   DEV_BROKERS    number of mock brokers (default 3)
#   DEV_APP_ID     application id for moesif-dev (default dev-app-id)
#   MOESIF_DEV_ARGS  extra moesif-dev options (fault injection)
#   DEV_NO_MOESIF=1  start kafka-dev alone when moesif-dev is not built
#   DEV_WAIT_S     seconds to wait for each server (default 20)
#   DEV_KAFKA=apache  a real Apache Kafka instead of kafka-dev
#                  (deploy/dev/kafka/apache-kafka.sh, which reads
#                  DEV_KAFKA_NODES, DEV_KAFKA_PROPS; `make kafka-jars`
#                  first); kafka.sock is then absent and KAFKA_CTL empty:
#                  `kafka-dev remote BOOTSTRAP CMD` answers what it can
#
# Exits 0 once both answer (or when the stack already runs), 1 with a
# sentence on stderr otherwise, having stopped whatever it had started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
DEV_DIR=${DEV_DIR:-$ROOT/build/dev}
DEV_TOPICS=${DEV_TOPICS:-users:8 users.dlq:1 userpipe-schema:1}
DEV_EXTRA_TOPICS=${DEV_EXTRA_TOPICS:-}
DEV_BROKERS=${DEV_BROKERS:-3}
DEV_APP_ID=${DEV_APP_ID:-dev-app-id}
MOESIF_DEV_ARGS=${MOESIF_DEV_ARGS:-}
DEV_NO_MOESIF=${DEV_NO_MOESIF:-0}
DEV_WAIT_S=${DEV_WAIT_S:-20}
DEV_KAFKA=${DEV_KAFKA:-dev}

die() {
    echo "dev-up: $*" >&2
    exit 1
}

mkdir -p "$DEV_DIR" || die "cannot create DEV_DIR \"$DEV_DIR\""
DEV_DIR=$(cd "$DEV_DIR" && pwd)
[ -d "$BUILD" ] || die "no build folder \"$BUILD\"; run make first"
BUILD=$(cd "$BUILD" && pwd -P)
KAFKA_DEV=$BUILD/kafka-dev
MOESIF_DEV=$BUILD/moesif-dev
[ -x "$KAFKA_DEV" ] || die "kafka-dev is not built at $KAFKA_DEV; run make"

# alive PID NAME: the process exists, is not a zombie, and runs NAME (a pid
# file may outlive its process and the pid be reused).
alive() {
    local pid=$1 name=$2 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"
}

pid_of() {
    cat "$DEV_DIR/$1.pid" 2>/dev/null || true
}

summary() {
    echo "dev stack in $DEV_DIR:"
    echo "  kafka   $(cat "$DEV_DIR/bootstrap.servers")  (control: $KAFKA_DEV ctl $DEV_DIR/kafka.sock help)"
    if [ -s "$DEV_DIR/moesif.url" ]; then
        echo "  moesif  $(cat "$DEV_DIR/moesif.url")  (app id in $DEV_DIR/app_id)"
    else
        echo "  moesif  not started"
    fi
    if [ "$DEV_KAFKA" = apache ]; then
        echo "  topics  $("$KAFKA_DEV" remote "$(cat "$DEV_DIR/bootstrap.servers")" topics | sed 's/^ok //')  (Apache Kafka, $(cat "$DEV_DIR/kafka.nodes") node(s))"
    else
        echo "  topics  $("$KAFKA_DEV" ctl "$DEV_DIR/kafka.sock" topics | sed 's/^ok //')"
    fi
    echo "  env     . $DEV_DIR/env"
}

if alive "$(pid_of kafka-dev)" kafka-dev; then
    echo "dev-up: already running (kafka-dev pid $(pid_of kafka-dev)); make dev-down to restart"
    summary
    exit 0
fi

if [ ! -x "$MOESIF_DEV" ] && [ "$DEV_NO_MOESIF" != 1 ]; then
    die "moesif-dev is not built at $MOESIF_DEV; run make, or set DEV_NO_MOESIF=1 to start kafka-dev alone"
fi

# Topic specs: defaults then extras, one per name, the last spec winning.
declare -A parts=()
order=()
for spec in $DEV_TOPICS $DEV_EXTRA_TOPICS; do
    case $spec in
    *:*) ;;
    *) die "topic \"$spec\" in DEV_TOPICS needs a partition count, as name:partitions" ;;
    esac
    name=${spec%:*}
    [ -n "${parts[$name]+x}" ] || order+=("$name")
    parts[$name]=${spec##*:}
done
topic_args=()
for name in "${order[@]}"; do
    topic_args+=(--topic "$name:${parts[$name]}")
done

# Whatever a killed stack or the previous run left behind (its ready
# files, socket, pid files, logs) would mislead the waits below, or be
# shown as this run's log.
rm -f "$DEV_DIR/bootstrap.servers" "$DEV_DIR/moesif.url" "$DEV_DIR/env" \
    "$DEV_DIR/kafka.sock" "$DEV_DIR/kafka-dev.pid" "$DEV_DIR/moesif-dev.pid" \
    "$DEV_DIR/kafka-dev.log" "$DEV_DIR/moesif-dev.log"

children=() # pids of the servers this run started
cleanup_on_failure() {
    local pid deadline
    trap - EXIT INT TERM
    [ ${#children[@]} -gt 0 ] || return 0
    # our own children, by pid: one may not have exec'd, or have no pid
    # file yet, so dev-down alone could miss it
    for pid in "${children[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 5))
    for pid in "${children[@]}"; do
        while child_running "$pid" && [ $SECONDS -lt $deadline ]; do
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    DEV_DIR=$DEV_DIR bash "$ROOT/deploy/dev/dev-down.sh" >/dev/null 2>&1 || true
}
trap cleanup_on_failure EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# child_running PID: PID, a child of this script, has not ended.  No name
# check: until it ends the pid is our child's.  bash reaps an ended child
# itself (keeping its status for wait), after which the pid could be reused
# by another process, but not within one poll (pids are handed out in
# increasing order up to pid_max), and the readiness checks read only this
# run's files: a reused pid could delay a failure to DEV_WAIT_S, never fake
# a start.
child_running() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# died NAME PID: reports that the server ended during start-up, with its
# exit status and the end of this run's log, and exits 1.
died() {
    local name=$1 pid=$2 status=0
    wait "$pid" 2>/dev/null || status=$?
    echo "dev-up: $name exited during startup (exit status $status); the end of $DEV_DIR/$name.log:" >&2
    tail -n 20 "$DEV_DIR/$name.log" >&2 2>/dev/null || echo "  (no log: it ended before writing one)" >&2
    exit 1
}

# launch NAME BINARY ARG...: starts BINARY in the background, stdout and
# stderr to DEV_DIR/NAME.log, waits until the forked shell has exec'd it
# (/proc/PID/exe is BINARY), then writes DEV_DIR/NAME.pid (temp + rename).
# Sets $launched to the pid.
launch() {
    local name=$1 bin=$2 pid exe real deadline=$((SECONDS + DEV_WAIT_S))
    shift 2
    real=$(readlink -f "$bin")
    "$bin" "$@" </dev/null >"$DEV_DIR/$name.log" 2>&1 &
    pid=$!
    children+=("$pid")
    while :; do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || exe=
        [ "$exe" = "$real" ] && break
        child_running "$pid" || died "$name" "$pid"
        if [ $SECONDS -ge $deadline ]; then
            echo "dev-up: $name was not started within $DEV_WAIT_S s (DEV_WAIT_S)" >&2
            exit 1
        fi
        sleep 0.01
    done
    echo "$pid" >"$DEV_DIR/$name.pid.tmp"
    mv "$DEV_DIR/$name.pid.tmp" "$DEV_DIR/$name.pid"
    launched=$pid
}

# wait_for NAME PID CHECK: polls CHECK every 0.1 s until it succeeds, the
# process PID dies, or DEV_WAIT_S pass.
wait_for() {
    local name=$1 pid=$2 check=$3 deadline=$((SECONDS + DEV_WAIT_S))
    while :; do
        child_running "$pid" || died "$name" "$pid"
        if $check; then
            return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "dev-up: $name did not answer within $DEV_WAIT_S s (DEV_WAIT_S); the end of $DEV_DIR/$name.log:" >&2
            tail -n 20 "$DEV_DIR/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}

kafka_ready() {
    [ -s "$DEV_DIR/bootstrap.servers" ] &&
        "$KAFKA_DEV" ctl "$DEV_DIR/kafka.sock" topics >/dev/null 2>&1
}

moesif_ready() {
    local url code
    [ -s "$DEV_DIR/moesif.url" ] || return 1
    url=$(cat "$DEV_DIR/moesif.url")
    # Any HTTP answer (even 404) proves it listens; 000 means no answer.
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url/" 2>/dev/null) || true
    [ -n "$code" ] && [ "$code" != 000 ]
}

if [ "$DEV_KAFKA" = apache ]; then
    specs=()
    for name in "${order[@]}"; do
        specs+=("$name:${parts[$name]}")
    done
    DEV_DIR=$DEV_DIR BUILD=$BUILD bash "$ROOT/deploy/dev/kafka/apache-kafka.sh" up "${specs[@]}" ||
        die "Apache Kafka did not start (see above)"
else
    launch kafka-dev "$KAFKA_DEV" --brokers "$DEV_BROKERS" "${topic_args[@]}" \
        --bootstrap-file "$DEV_DIR/bootstrap.servers" \
        --control "$DEV_DIR/kafka.sock"
    wait_for kafka-dev "$launched" kafka_ready
fi

printf '%s\n' "$DEV_APP_ID" >"$DEV_DIR/app_id"
if [ -x "$MOESIF_DEV" ]; then
    # shellcheck disable=SC2086 # MOESIF_DEV_ARGS is a list of options
    launch moesif-dev "$MOESIF_DEV" --listen 127.0.0.1:0 --app-id "$DEV_APP_ID" \
        --url-file "$DEV_DIR/moesif.url" $MOESIF_DEV_ARGS
    wait_for moesif-dev "$launched" moesif_ready
else
    echo "dev-up: moesif-dev is not built; starting kafka-dev alone (DEV_NO_MOESIF=1)" >&2
fi

{
    echo "DEV_DIR='$DEV_DIR'"
    echo "BOOTSTRAP='$(cat "$DEV_DIR/bootstrap.servers")'"
    if [ "$DEV_KAFKA" = apache ]; then
        echo "DEV_KAFKA='apache'"
        echo "KAFKA_CTL=''"
    else
        echo "DEV_KAFKA='dev'"
        echo "KAFKA_CTL='$DEV_DIR/kafka.sock'"
    fi
    echo "APP_ID='$DEV_APP_ID'"
    if [ -s "$DEV_DIR/moesif.url" ]; then
        echo "MOESIF_URL='$(cat "$DEV_DIR/moesif.url")'"
    fi
} >"$DEV_DIR/env.tmp"
mv "$DEV_DIR/env.tmp" "$DEV_DIR/env"

children=()
trap - EXIT INT TERM
summary
