#!/usr/bin/env bash
# apache-kafka.sh: a real Apache Kafka (KRaft, the version pinned in
# deploy/dev/kafka/pom.xml) on loopback, for the end-to-end tests and
# `make demo DEV_KAFKA=apache` (issue 13).  dev-up.sh calls `up` when
# DEV_KAFKA=apache and dev-down.sh calls `down`; the kill and outage tests
# of tests/kafka/ call the per-node verbs.
#
#   apache-kafka.sh up [NAME:PARTITIONS]...   format and start the nodes,
#                                  wait until every broker answers, create
#                                  the topics, write DEV_DIR/bootstrap.servers
#   apache-kafka.sh down           stop every node (SIGTERM to all at once,
#                                  SIGKILL to those alive 15 s later)
#   apache-kafka.sh stop N | kill N | start N   one node: SIGTERM and wait,
#                                  SIGKILL, or start again on its old data
#   apache-kafka.sh pid N          the pid of node N (empty when stopped)
#
# Environment:
#   DEV_DIR           state folder (required by dev-up.sh's contract)
#   DEV_KAFKA_NODES   1 (default: one node, broker and controller, formatted
#                     --standalone) or 3 (three combined nodes, a static
#                     quorum, replication 3, min.insync.replicas=2)
#   DEV_KAFKA_PROPS   extra server properties, "key=value ...", appended
#                     last (e.g. "auto.create.topics.enable=true
#                     num.partitions=6")
#   DEV_KAFKA_HEAP    -Xmx per node (default 256m; 512m is the cap the
#                     issue sets)
#   DEV_KAFKA_SECURE  a second, secured listener on every node (issue 19):
#                     sasl_ssl (SASL over TLS, mechanisms SCRAM-SHA-512
#                     and PLAIN) or ssl (TLS that requires a client
#                     certificate, mTLS: the principal is the
#                     certificate's CN, User:CN); its addresses go to
#                     DEV_DIR/bootstrap.secure.  The PLAINTEXT listener
#                     stays, for the brokers' own traffic and the tests'
#                     tools (kafka-dev remote, kcat, kafka_admin.py)
#   DEV_KAFKA_TLS_DIR the secured listener's PEM files: ca.pem (the CA
#                     the broker trusts for client certificates) and
#                     broker.pem (its unencrypted PKCS#8 key and
#                     certificate chain, for 127.0.0.1)
#   DEV_KAFKA_USERS   "name:password ...": SCRAM-SHA-512 credentials
#                     written at format time (kafka-storage format
#                     --add-scram) and the PLAIN users of the sasl_ssl
#                     listener
#   DEV_KAFKA_AUTHORIZER=1  StandardAuthorizer with
#                     allow.everyone.if.no.acl.found=false; the super
#                     users are User:admin and User:ANONYMOUS (the
#                     PLAINTEXT and controller listeners: the brokers
#                     themselves and the tests' tools)
#   DEV_WAIT_S        seconds to wait for the brokers (default 60)
#   KAFKA_LIBS        the broker's jars (default build/kafka/libs, made by
#                     `make kafka-jars`)
#
# State in DEV_DIR: kafka-N/ (data), kafka-N.properties, kafka-N.pid,
# kafka-N.log, kafka.nodes (the node count), bootstrap.servers, and with
# DEV_KAFKA_SECURE bootstrap.secure.
#
# Why these settings: the JVM gets a small heap, the serial collector and
# C1 only (-XX:TieredStopAtLevel=1), which took a node's start from ~9 s
# to ~5 s on the 2-core machine; __consumer_offsets gets 4 partitions, not
# 50, since each is a log the controller creates at the first group;
# group.initial.rebalance.delay.ms=0 so a test's first member is assigned
# at once (the broker default, 3 s, is what production keeps); auto topic
# creation is off as on most production clusters, and a test turns it on
# through DEV_KAFKA_PROPS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
DEV_DIR=${DEV_DIR:?apache-kafka.sh needs DEV_DIR}
KAFKA_LIBS=${KAFKA_LIBS:-$ROOT/build/kafka/libs}
DEV_KAFKA_HEAP=${DEV_KAFKA_HEAP:-256m}
DEV_KAFKA_PROPS=${DEV_KAFKA_PROPS:-}
DEV_WAIT_S=${DEV_WAIT_S:-60}
DEV_KAFKA_SECURE=${DEV_KAFKA_SECURE:-}
DEV_KAFKA_TLS_DIR=${DEV_KAFKA_TLS_DIR:-}
DEV_KAFKA_USERS=${DEV_KAFKA_USERS:-}
DEV_KAFKA_AUTHORIZER=${DEV_KAFKA_AUTHORIZER:-0}
BUILD=${BUILD:-$ROOT/build/release}
KAFKA_DEV=$BUILD/kafka-dev

die() {
    echo "apache-kafka: $*" >&2
    exit 1
}

nodes() {
    if [ -s "$DEV_DIR/kafka.nodes" ]; then
        cat "$DEV_DIR/kafka.nodes"
    else
        echo "${DEV_KAFKA_NODES:-1}"
    fi
}

# alive PID: the process exists, is no zombie, and is a JVM running
# kafka.Kafka (pid files outlive processes).
alive() {
    local pid=$1 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "kafka.Kafka"
}

node_pid() {
    local pid
    pid=$(cat "$DEV_DIR/kafka-$1.pid" 2>/dev/null || true)
    if alive "$pid"; then
        echo "$pid"
    fi
}

java_opts() {
    echo "-Xmx$DEV_KAFKA_HEAP -Xms64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1" \
        "-Xss512k -Djava.awt.headless=true" \
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=info" \
        "-Dorg.slf4j.simpleLogger.showDateTime=true" \
        "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn" \
        "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaConfig=warn"
}

start_node() {
    local n=$1 pid
    pid=$(node_pid "$n")
    if [ -n "$pid" ]; then
        return 0
    fi
    # shellcheck disable=SC2046 # java_opts is a list of options
    (
        # exec so the pid written is the JVM's
        exec java $(java_opts) -cp "$KAFKA_LIBS/*" kafka.Kafka \
            "$DEV_DIR/kafka-$n.properties" </dev/null >>"$DEV_DIR/kafka-$n.log" 2>&1
    ) &
    echo $! >"$DEV_DIR/kafka-$n.pid"
}

stop_node() {
    local n=$1 sig=$2 pid deadline
    pid=$(node_pid "$n")
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do
        sleep 0.2
    done
    if alive "$pid"; then
        echo "apache-kafka: node $n (pid $pid) ignored SIG$sig for 30 s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$DEV_DIR/kafka-$n.pid"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# brokers_up N: N brokers are listed in the metadata of node 1..N.
brokers_up() {
    local want=$1 reply
    reply=$("$KAFKA_DEV" remote "$(cat "$DEV_DIR/bootstrap.servers.tmp")" brokers 2>/dev/null) || return 1
    [ "$(wc -w <<<"${reply#ok}")" -ge "$want" ]
}

# secure_props: the secured listener's server properties (the
# listener itself is added to listeners= by the caller).  A JAAS value
# holds spaces, so these never go through DEV_KAFKA_PROPS.
secure_props() {
    local u plain=""
    echo "ssl.keystore.type=PEM"
    echo "ssl.keystore.location=$DEV_KAFKA_TLS_DIR/broker.pem"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=$DEV_KAFKA_TLS_DIR/ca.pem"
    case $DEV_KAFKA_SECURE in
    sasl_ssl)
        for u in $DEV_KAFKA_USERS; do
            plain="$plain user_${u%%:*}=\"${u#*:}\""
        done
        echo "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN"
        echo "listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        echo "listener.name.secure.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain;"
        ;;
    ssl)
        echo "listener.name.secure.ssl.client.auth=required"
        echo "ssl.principal.mapping.rules=RULE:^CN=([^,]+).*\$/\$1/,DEFAULT"
        ;;
    esac
    if [ "$DEV_KAFKA_AUTHORIZER" = 1 ]; then
        echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        echo "allow.everyone.if.no.acl.found=false"
        echo "super.users=User:admin;User:ANONYMOUS"
    fi
}

# scram_args: the --add-scram options of kafka-storage format.
scram_args() {
    local u
    for u in $DEV_KAFKA_USERS; do
        printf '%s\n' --add-scram "SCRAM-SHA-512=[name=${u%%:*},password=${u#*:}]"
    done
}

cmd_up() {
    local n i cluster_id voters="" bootstrap="" secure="" rf isr
    local -a scram
    n=${DEV_KAFKA_NODES:-1}
    case $n in
    1 | 3) ;;
    *) die "DEV_KAFKA_NODES must be 1 or 3, not \"$n\"" ;;
    esac
    case $DEV_KAFKA_SECURE in
    "") ;;
    sasl_ssl | ssl)
        [ -s "$DEV_KAFKA_TLS_DIR/ca.pem" ] && [ -s "$DEV_KAFKA_TLS_DIR/broker.pem" ] ||
            die "DEV_KAFKA_SECURE=$DEV_KAFKA_SECURE needs DEV_KAFKA_TLS_DIR with ca.pem and broker.pem"
        ;;
    *) die "DEV_KAFKA_SECURE must be sasl_ssl or ssl, not \"$DEV_KAFKA_SECURE\"" ;;
    esac
    command -v java >/dev/null || die "java is not installed; make kafka-jars installs it"
    [ -s "$KAFKA_LIBS/.complete" ] || die "no Kafka jars in $KAFKA_LIBS; run make kafka-jars"
    [ -x "$KAFKA_DEV" ] || die "$KAFKA_DEV is not built; run make"
    mkdir -p "$DEV_DIR"
    for i in $(seq 1 "$n"); do
        if [ -n "$(node_pid "$i")" ]; then
            die "node $i already runs (pid $(node_pid "$i")); apache-kafka.sh down first"
        fi
    done
    echo "$n" >"$DEV_DIR/kafka.nodes"
    rf=$((n < 3 ? n : 3))
    isr=$((n < 3 ? 1 : 2))
    declare -a bport cport sport
    mapfile -t scram < <(scram_args)
    for i in $(seq 1 "$n"); do
        bport[i]=$(free_port)
        cport[i]=$(free_port)
        if [ -n "$DEV_KAFKA_SECURE" ]; then
            sport[i]=$(free_port)
            secure="$secure${secure:+,}127.0.0.1:${sport[i]}"
        fi
        voters="$voters${voters:+,}$i@127.0.0.1:${cport[i]}"
        bootstrap="$bootstrap${bootstrap:+,}127.0.0.1:${bport[i]}"
    done
    cluster_id=$(java -Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    [ -n "$cluster_id" ] || die "kafka.tools.StorageTool random-uuid printed nothing"
    for i in $(seq 1 "$n"); do
        rm -rf "$DEV_DIR/kafka-$i"
        : >"$DEV_DIR/kafka-$i.log"
        {
            echo "process.roles=broker,controller"
            echo "node.id=$i"
            if [ "$n" = 1 ]; then
                echo "controller.quorum.bootstrap.servers=127.0.0.1:${cport[i]}"
            else
                echo "controller.quorum.voters=$voters"
            fi
            if [ -n "$DEV_KAFKA_SECURE" ]; then
                echo "listeners=PLAINTEXT://127.0.0.1:${bport[i]},CONTROLLER://127.0.0.1:${cport[i]},SECURE://127.0.0.1:${sport[i]}"
                echo "advertised.listeners=PLAINTEXT://127.0.0.1:${bport[i]},CONTROLLER://127.0.0.1:${cport[i]},SECURE://127.0.0.1:${sport[i]}"
                echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SECURE:${DEV_KAFKA_SECURE^^}"
                secure_props
            else
                echo "listeners=PLAINTEXT://127.0.0.1:${bport[i]},CONTROLLER://127.0.0.1:${cport[i]}"
                echo "advertised.listeners=PLAINTEXT://127.0.0.1:${bport[i]},CONTROLLER://127.0.0.1:${cport[i]}"
                echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
            fi
            echo "controller.listener.names=CONTROLLER"
            echo "inter.broker.listener.name=PLAINTEXT"
            echo "log.dirs=$DEV_DIR/kafka-$i/data"
            echo "num.partitions=1"
            echo "auto.create.topics.enable=false"
            echo "default.replication.factor=$rf"
            echo "min.insync.replicas=$isr"
            echo "offsets.topic.replication.factor=$rf"
            echo "offsets.topic.num.partitions=4"
            echo "transaction.state.log.replication.factor=$rf"
            echo "transaction.state.log.min.isr=$isr"
            echo "share.coordinator.state.topic.replication.factor=$rf"
            echo "share.coordinator.state.topic.min.isr=$isr"
            echo "group.initial.rebalance.delay.ms=0"
            echo "num.network.threads=2"
            echo "num.io.threads=2"
            echo "num.recovery.threads.per.data.dir=1"
            echo "log.segment.bytes=67108864"
            for kv in $DEV_KAFKA_PROPS; do
                echo "$kv"
            done
        } >"$DEV_DIR/kafka-$i.properties"
        if [ "$n" = 1 ]; then
            java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIBS/*" \
                kafka.tools.StorageTool format -t "$cluster_id" \
                -c "$DEV_DIR/kafka-$i.properties" --standalone "${scram[@]}" \
                >>"$DEV_DIR/kafka-$i.log" 2>&1 || die "formatting node $i failed; see $DEV_DIR/kafka-$i.log"
        else
            java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIBS/*" \
                kafka.tools.StorageTool format -t "$cluster_id" \
                -c "$DEV_DIR/kafka-$i.properties" "${scram[@]}" \
                >>"$DEV_DIR/kafka-$i.log" 2>&1 || die "formatting node $i failed; see $DEV_DIR/kafka-$i.log"
        fi
    done
    echo "$bootstrap" >"$DEV_DIR/bootstrap.servers.tmp"
    for i in $(seq 1 "$n"); do
        start_node "$i"
    done
    local deadline=$((SECONDS + DEV_WAIT_S))
    until brokers_up "$n"; do
        for i in $(seq 1 "$n"); do
            if [ -z "$(node_pid "$i")" ]; then
                echo "apache-kafka: node $i exited during startup; the end of $DEV_DIR/kafka-$i.log:" >&2
                tail -n 20 "$DEV_DIR/kafka-$i.log" >&2 || true
                cmd_down >/dev/null
                exit 1
            fi
        done
        if [ $SECONDS -ge $deadline ]; then
            echo "apache-kafka: the brokers did not answer within $DEV_WAIT_S s (DEV_WAIT_S)" >&2
            tail -n 20 "$DEV_DIR/kafka-1.log" >&2 || true
            cmd_down >/dev/null
            exit 1
        fi
        sleep 0.3
    done
    for spec in "$@"; do
        "$KAFKA_DEV" remote "$bootstrap" create-topic "$spec" >/dev/null ||
            { cmd_down >/dev/null; die "cannot create topic $spec"; }
    done
    if [ -n "$DEV_KAFKA_SECURE" ]; then
        echo "$secure" >"$DEV_DIR/bootstrap.secure"
    fi
    mv "$DEV_DIR/bootstrap.servers.tmp" "$DEV_DIR/bootstrap.servers"
}

# every node at once: stopped one by one, the last ones of three lose the
# controller quorum their controlled shutdown waits for, and each took the
# whole 30 s before its SIGKILL
cmd_down() {
    local i pid pids=() deadline
    for i in $(seq 1 "$(nodes)"); do
        pid=$(node_pid "$i")
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + 15))
    for pid in "${pids[@]}"; do
        while alive "$pid" && [ $SECONDS -lt $deadline ]; do
            sleep 0.2
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for i in $(seq 1 "$(nodes)"); do
        rm -f "$DEV_DIR/kafka-$i.pid"
    done
    rm -f "$DEV_DIR/bootstrap.servers" "$DEV_DIR/bootstrap.servers.tmp" "$DEV_DIR/bootstrap.secure"
}

verb=${1:-}
shift || true
case $verb in
up) cmd_up "$@" ;;
down) cmd_down ;;
stop) stop_node "${1:?node}" TERM ;;
kill) stop_node "${1:?node}" KILL ;;
start) start_node "${1:?node}" ;;
pid) node_pid "${1:?node}" ;;
*) die "usage: apache-kafka.sh up [NAME:PARTS]... | down | stop N | kill N | start N | pid N" ;;
esac
