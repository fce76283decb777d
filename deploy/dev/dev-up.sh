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
BUILD=$(cd "$BUILD" && pwd)
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

# Whatever a killed stack left behind would mislead the waits below.
rm -f "$DEV_DIR/bootstrap.servers" "$DEV_DIR/moesif.url" "$DEV_DIR/env" \
    "$DEV_DIR/kafka-dev.pid" "$DEV_DIR/moesif-dev.pid"

started=0
cleanup_on_failure() {
    if [ "$started" = 1 ]; then
        DEV_DIR=$DEV_DIR bash "$ROOT/deploy/dev/dev-down.sh" >/dev/null 2>&1 || true
    fi
}
trap cleanup_on_failure EXIT

# wait_for NAME PIDFILE-NAME CHECK...: polls CHECK every 0.1 s until it
# succeeds, the process dies, or DEV_WAIT_S pass.
wait_for() {
    local name=$1 check=$2 deadline=$((SECONDS + DEV_WAIT_S))
    while :; do
        if ! alive "$(pid_of "$name")" "$name"; then
            echo "dev-up: $name exited during startup; the end of $DEV_DIR/$name.log:" >&2
            tail -n 20 "$DEV_DIR/$name.log" >&2 || true
            exit 1
        fi
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

started=1
if [ "$DEV_KAFKA" = apache ]; then
    specs=()
    for name in "${order[@]}"; do
        specs+=("$name:${parts[$name]}")
    done
    DEV_DIR=$DEV_DIR BUILD=$BUILD bash "$ROOT/deploy/dev/kafka/apache-kafka.sh" up "${specs[@]}" ||
        die "Apache Kafka did not start (see above)"
else
"$KAFKA_DEV" --brokers "$DEV_BROKERS" "${topic_args[@]}" \
    --bootstrap-file "$DEV_DIR/bootstrap.servers" \
    --control "$DEV_DIR/kafka.sock" \
    </dev/null >"$DEV_DIR/kafka-dev.log" 2>&1 &
echo $! >"$DEV_DIR/kafka-dev.pid"
wait_for kafka-dev kafka_ready
fi

printf '%s\n' "$DEV_APP_ID" >"$DEV_DIR/app_id"
if [ -x "$MOESIF_DEV" ]; then
    # shellcheck disable=SC2086 # MOESIF_DEV_ARGS is a list of options
    "$MOESIF_DEV" --listen 127.0.0.1:0 --app-id "$DEV_APP_ID" \
        --url-file "$DEV_DIR/moesif.url" $MOESIF_DEV_ARGS \
        </dev/null >"$DEV_DIR/moesif-dev.log" 2>&1 &
    echo $! >"$DEV_DIR/moesif-dev.pid"
    wait_for moesif-dev moesif_ready
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

started=0
trap - EXIT
summary
