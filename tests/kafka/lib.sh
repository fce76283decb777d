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
# (create LEADER NAME:PARTS... | committed GROUP TOPIC | records TOPIC |
# grant PRINCIPAL README SECTION ...); KADMIN_BOOTSTRAP and KADMIN_SECURITY
# (kafka_admin.py) point it at a secured listener instead.
kadmin() {
    timeout 120 /usr/bin/python3 "$E2E_ROOT/tests/kafka/kafka_admin.py" \
        "${KADMIN_BOOTSTRAP:-$BOOTSTRAP}" "$@"
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

# fault_input N SEED: INPUT (a temp file, exported for check_delivery)
# gets N generated events with_rejects and, in the last third,
# with_new_keys; sets want (valid events), nrej (rejects) and new_keys.
fault_input() {
    INPUT=$(mktemp)
    dev_at_exit rm -f "$INPUT"
    export INPUT
    /usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" "$1" "$2" | with_rejects |
        with_new_keys $(($1 * 66 / 100)) >"$INPUT"
    "$USERPIPE" transform --rejects "$INPUT.rejects" <"$INPUT" >"$INPUT.accepted" 2>/dev/null
    dev_at_exit rm -f "$INPUT.rejects" "$INPUT.accepted"
    want=$(wc -l <"$INPUT.accepted")
    nrej=$(wc -l <"$INPUT.rejects")
    new_keys=$(grep -c '"new_key_' "$INPUT.accepted")
}

# fault_config FILE GROUP: the configuration of a fault test's run, and
# the generated keys claimed in the schema topic before it.
#  - a small read-ahead (1 MiB in the sink, 256 KiB in librdkafka's
#    queue), so the rejects reach the dead-letter topic at the pace of
#    moesif-dev, most of them after the fault;
#  - the keys claimed beforehand: a run's first events wait for their
#    claims, parked (up to 100,000 events, no byte bound), while the
#    rejects need none and would all reach the dead-letter topic in the
#    first seconds;
#  - the session timeout of production (librdkafka's default, 45 s), not
#    write_config's 6 s: KRaft moves a dead coordinator only after fencing
#    it (broker.session.timeout.ms, 9 s), and a shorter session expires
#    first, revoking the partitions and consuming again from the last
#    commit (at-least-once, but a second dead-letter record of an offset
#    would then be userpipe's, not the producer's: check_nothing_lost
#    asserts no revocation before the end).
fault_config() {
    write_config "$1" "$2" sink.max_in_flight=1 batch.max_events=50 \
        kafka.auto.commit.interval.ms=200 sink.max_pending_bytes=1048576 \
        kafka.queued.max.messages.kbytes=256 kafka.session.timeout.ms=45000
    head -n 200 "$INPUT" | "$USERPIPE" transform --schema-out "$DEV_TMP/seed.json" --rejects /dev/null >/dev/null
    "$USERPIPE" schema import -c "$1" "$DEV_TMP/seed.json" >/dev/null || fail "schema import failed"
}

# fault_run GROUP: loads INPUT into users, starts `userpipe run
# --from-beginning --exit-at-end` in GROUP with fault_config, and returns
# once moesif-dev holds a quarter of the valid events, fewer than three
# quarters of the rejects being in users.dlq; sets cfg, pid, up0 and dlq0
# (the upserts and dead-letter records then).
fault_run() {
    local total
    produce_file users "$INPUT"
    total=$(topic_count users)
    [ "$total" -eq "$(grep -c . "$INPUT")" ] || fail "users holds $total of $(grep -c . "$INPUT") events"
    cfg=$DEV_TMP/run.properties
    fault_config "$cfg" "$1"
    start_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end
    pid=$UP_PID
    wait_for "a quarter of the events" 120 upserts_at_least $((want / 4))
    # Three quarters of the rejects must still be to come when the fault
    # starts, or the fault would test little of the dead-letter path.  The
    # read-ahead's memory is asserted by RSS, not here: the share of
    # rejects written ran from below the share of events delivered (611
    # of 4000 at 10,500 of 40,352) to 0.35 above it (2409 at 10,300) from
    # one run to the next on a loaded machine (1 MiB pending, 1 MiB
    # parked, a 256 KiB queue and a 2 MiB fetch of read-ahead), and
    # "fewer than half" failed once at 2070 of 4000.
    dlq0=$(topic_count users.dlq)
    up0=$(moesif_stat upserts)
    echo "before the fault: $dlq0 of $nrej rejects in users.dlq, $up0 of $want events in moesif-dev"
    [ "$dlq0" -lt $((nrej * 3 / 4)) ] || fail "$dlq0 of $nrej rejects were written before the fault: too little is left for it"
}

# check_nothing_lost RECORD LOG GROUP SINCE_MS: after a fault test's run,
# every valid event reached moesif-dev (at least once), every reject is
# in users.dlq exactly once (by content and by source offset), the log
# shows no revocation before the end, the committed offsets equal the end
# offsets (the Admin API).  Sets got, dup (moesif-dev duplicates), dlq
# (kafka_admin.py's line), dlq_first_after_ms, committed (its summary).
check_nothing_lost() {
    local record=$1 log=$2 group=$3 since=$4 revoked
    check_delivery "$record" --at-least-once || fail "events lost"
    kadmin committed "$group" users >"$DEV_TMP/committed.txt" ||
        { cat "$DEV_TMP/committed.txt" >&2; fail "committed offsets differ from the end offsets"; }
    committed=$(tail -n 1 "$DEV_TMP/committed.txt")
    dlq=$(kadmin records users.dlq "$since") || fail "cannot read users.dlq: $dlq"
    eval "$(tr ' ' '\n' <<<"$dlq" | grep -E '^[a-z_]+=-?[0-9]+$' | sed 's/^/dlq_/')"
    [ "$dlq_same_content" -eq 0 ] && [ "$dlq_same_source" -eq 0 ] ||
        fail "dead-letter records written twice: $dlq"
    [ "$dlq_records" -eq "$nrej" ] || fail "the dead-letter topic holds $dlq_records records, the transform rejects $nrej"
    revoked=$(sed '/msg="every partition reached its end offset"/,$d' "$log" | grep -c 'partitions revoked' || true)
    [ "$revoked" -eq 0 ] || fail "the partitions were revoked $revoked times mid-run: $(grep -m1 'SESSTMOUT\|revok' "$log")"
    got=$(grep -c . "$record")
    dup=$((got - want))
}

# ---- secured brokers (issue 19) ------------------------------------------

# tls_ca DIR NAME: a throwaway CA made by openssl, DIR/NAME.pem (its
# certificate) and DIR/NAME.key; EC P-256 keys (quick to make), valid one day.
tls_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1/$2.key" -out "$1/$2.pem" -days 1 -subj "/CN=userpipe test $2" \
        2>/dev/null || fail "openssl could not make the CA $2"
}

# tls_cert DIR CA NAME CN: a key DIR/NAME.key (PKCS#8, unencrypted) and a
# certificate DIR/NAME.pem for CN signed by the CA DIR/CA, valid for
# 127.0.0.1 (librdkafka verifies the broker's name:
# ssl.endpoint.identification.algorithm=https).
tls_cert() {
    local dir=$1 ca=$2 name=$3 cn=$4
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" 2>/dev/null &&
        openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" \
            -CAcreateserial -days 1 -out "$dir/$name.pem" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n') 2>/dev/null ||
        fail "openssl could not make the certificate $name"
    rm -f "$dir/$name.csr"
}

# secure_start MODE: the dev stack on one Apache Kafka node with a secured
# listener (deploy/dev/kafka/apache-kafka.sh, DEV_KAFKA_SECURE=MODE:
# sasl_ssl or ssl) and its own CA, made here: TLS/ca.pem signs the
# broker's certificate and userpipe's client certificate (TLS/userpipe.pem,
# .key: CN=userpipe); TLS/other-ca.pem is a CA nobody used.  The topics
# users:4 users.dlq:1 userpipe-schema:1; moesif-dev records what it gets
# in REC.  DEV_KAFKA_USERS and DEV_KAFKA_AUTHORIZER pass through.  Exports
# TLS (the folder), SECURE (the secured listener's bootstrap servers) and
# REC; BOOTSTRAP stays the PLAINTEXT listener of the test's own tools.
secure_start() {
    local mode=$1
    export DEV_KAFKA_NODES=1
    REC=$(mktemp)
    dev_at_exit rm -f "$REC"
    TLS=$(mktemp -d)
    dev_at_exit rm -rf "$TLS"
    tls_ca "$TLS" ca
    tls_ca "$TLS" other-ca
    tls_cert "$TLS" ca broker localhost
    tls_cert "$TLS" ca userpipe userpipe
    cat "$TLS/broker.key" "$TLS/broker.pem" >"$TLS/broker-keystore.pem"
    mkdir -p "$TLS/broker" && cp "$TLS/ca.pem" "$TLS/broker/ca.pem" &&
        mv "$TLS/broker-keystore.pem" "$TLS/broker/broker.pem"
    DEV_TOPICS="users:4 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $REC" \
        DEV_KAFKA_SECURE=$mode DEV_KAFKA_TLS_DIR=$TLS/broker dev_start
    SECURE=$(cat "$DEV_DIR/bootstrap.secure")
    export TLS SECURE REC
}

# secure_config FILE GROUP [key=value]...: write_config for the secured
# listener, trusting the test's CA, with the race's short linger and
# commit interval.
secure_config() {
    local file=$1 group=$2
    shift 2
    write_config "$file" "$group" batch.linger_ms=50 kafka.auto.commit.interval.ms=200 \
        "kafka.bootstrap.servers=$SECURE" "kafka.ssl.ca.location=$TLS/ca.pem" "$@"
}

# sasl_config FILE GROUP MECHANISM USER PASSWORD: secure_config for SASL_SSL.
sasl_config() {
    secure_config "$1" "$2" kafka.security.protocol=SASL_SSL "kafka.sasl.mechanism=$3" \
        "kafka.sasl.username=$4" "kafka.sasl.password=$5"
}

# race_input NPARTS PER_PART NKEYS: the shared schema's race (issue 13):
# DEV_TMP/p<P>.ndjson, loaded into partition P of users, holds PER_PART
# events of users p<P>-u<0..10>, each with one key of k0..k<NKEYS-1> typed
# by (P + k) % 3 (string, number, boolean), so every key arrives with
# conflicting types from different partitions, and one key of its own.
# tests/kafka/check_race.py checks the outcome.
race_input() {
    local nparts=$1 per=$2 nkeys=$3 p
    local -a pids=()
    for ((p = 0; p < nparts; p++)); do
        /usr/bin/python3 - "$p" "$per" "$nkeys" >"$DEV_TMP/p$p.ndjson" <<'PY'
import json, sys
p, n, nkeys = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
vals = ["s", 1, True]
for i in range(n):
    k = (i + 7 * p) % nkeys
    print(json.dumps({"user_id": "p%d-u%d" % (p, i % 11),
                      "metadata": {"k%d" % k: vals[(p + k) % 3], "own%d" % p: i}},
                     separators=(",", ":")))
PY
    done
    # every partition at once: partition p meets key (7 p) % NKEYS first,
    # so the instances meet different new keys at the same moment
    for ((p = 0; p < nparts; p++)); do
        kcat -P -b "$BOOTSTRAP" -t users -p "$p" -l "$DEV_TMP/p$p.ndjson" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || fail "kcat could not load the events"
    done
}

# secure_race CFG GROUP NPARTS PER_PART NKEYS: the pipeline on a
# secured broker (issue 19): two instances (a, b) of `userpipe run -c CFG`
# (CFG reaches the secured listener) in GROUP, race_input, stopped by SIGTERM once the group's commits reach the end
# offsets.  Asserts: both exit 0, both were assigned partitions and both
# claimed keys (they raced for the shared schema); the committed offsets
# equal the end offsets (kafka_admin.py); tests/kafka/check_race.py over
# what `userpipe schema show` and `export -c CFG` read back through the
# secured listener, the dead-letter topic and moesif-dev's REC (every
# event where the schema says, none lost).  The events are loaded once
# both instances have partitions, so both meet the new keys at once.
# Sets race_figures.
secure_race() {
    local cfg=$1 group=$2 nparts=$3 per=$4 nkeys=$5 total n c claimed=""
    local -a pids=()
    for n in a b; do
        start_userpipe "$DEV_TMP/$n.log" -c "$cfg" --from-beginning -X schema.instance_id=inst-$n
        pids+=("$UP_PID")
    done
    # the events come once both share the partitions: both race
    assigned_both() {
        grep -q 'partition assigned' "$DEV_TMP/a.log" && grep -q 'partition assigned' "$DEV_TMP/b.log"
    }
    wait_for "both instances to be assigned partitions" 30 assigned_both
    race_input "$nparts" "$per" "$nkeys"
    total=$(topic_count users)
    [ "$total" -eq $((nparts * per)) ] || fail "loaded $total events"
    committed_is() {
        [ "$(group_committed_total "$1" users)" -eq "$2" ]
    }
    wait_for "the group's commits to reach the end" 60 committed_is "$group" "$total"
    sleep 1 # what the last commit acknowledged is settled; commits must not pass the end
    kill -TERM "${pids[@]}"
    for n in 0 1; do
        wait "${pids[n]}" || { tail -20 "$DEV_TMP/$([ $n = 0 ] && echo a || echo b).log" >&2; fail "instance $n exited non-zero"; }
    done
    for n in a b; do
        grep -q 'partition assigned' "$DEV_TMP/$n.log" || fail "instance $n never had a partition"
        c=$(sed -n 's/.*msg="stopped".* claims_made=\([0-9]*\).*/\1/p' "$DEV_TMP/$n.log")
        [ "${c:-0}" -gt 0 ] || fail "instance $n claimed no key: no race"
        claimed="$claimed $n:$c"
        ! grep -q 'level=error' "$DEV_TMP/$n.log" || fail "instance $n logged an error: $(grep -m1 'level=error' "$DEV_TMP/$n.log")"
    done
    kadmin committed "$group" users >"$DEV_TMP/committed.txt" ||
        { cat "$DEV_TMP/committed.txt" >&2; fail "committed offsets differ from the end offsets"; }
    "$USERPIPE" schema show -c "$cfg" >"$DEV_TMP/show-1.txt" 2>"$DEV_TMP/show.log" ||
        { cat "$DEV_TMP/show.log" >&2; fail "schema show failed"; }
    "$USERPIPE" schema export -c "$cfg" >"$DEV_TMP/schema.json" 2>"$DEV_TMP/show.log" ||
        { cat "$DEV_TMP/show.log" >&2; fail "schema export failed"; }
    consume_all_json users.dlq >"$DEV_TMP/dlq.json"
    curl -sf "$MOESIF_URL/_dev/types" >"$DEV_TMP/moesif-types.json"
    "$E2E_ROOT/tests/kafka/check_race.py" "$DEV_TMP" "$REC" "$(moesif_stat conflicts)" \
        "$nparts" "$nkeys" >"$DEV_TMP/race.txt" ||
        fail "the events did not settle as the schema says"
    race_figures="$(sed -n 's/^figures: //p' "$DEV_TMP/race.txt"); claims by instance$claimed; $(tail -n 1 "$DEV_TMP/committed.txt")"
}

# refused WANT_STATUS MAX_S PATTERN LOG CMD...: CMD (a userpipe command, the
# application id in its environment) exits WANT_STATUS within MAX_S
# seconds and its sentence (the last line of stderr that is the command's
# own, "userpipe run: ...", or an error it logged, not librdkafka's)
# matches the extended regular expression PATTERN.  Prints the sentence
# and the seconds it took.
refused() {
    local want=$1 max=$2 pattern=$3 log=$4 rc=0 t0 secs last
    shift 4
    t0=$(date +%s%N)
    MOESIF_APPLICATION_ID=$APP_ID timeout 60 "$@" >/dev/null 2>"$log" || rc=$?
    secs=$(awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", ns / 1e9 }')
    last=$(grep -v 'facility=' "$log" | grep -E '^userpipe|level=error' | tail -n 1)
    [ "$rc" -eq "$want" ] || { tail -5 "$log" >&2; fail "$* exited $rc, want $want"; }
    awk -v s="$secs" -v m="$max" 'BEGIN { exit !(s <= m) }' || fail "$* took ${secs}s to refuse (at most ${max}s)"
    grep -Eq -- "$pattern" <<<"$last" || fail "the sentence does not match /$pattern/: $last"
    echo "refused in ${secs}s, exit $rc: $last"
}
