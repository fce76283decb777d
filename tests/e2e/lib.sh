# shellcheck shell=bash
# tests/e2e/lib.sh: what the end-to-end tests of `userpipe run` share, on
# top of tests/lib/dev.sh (the dev stack).  Source it from a test.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$E2E_ROOT/tests/lib/dev.sh"
USERPIPE=${USERPIPE:-$E2E_ROOT/build/userpipe}
SAMPLE=$E2E_ROOT/deploy/dev/sample-events.ndjson

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# write_config FILE GROUP [key=value]...: a properties file for the dev
# stack (session.timeout.ms 6000: kafka-dev makes a joining member wait
# session.timeout.ms - 1 s, deploy/dev/README.md).
write_config() {
    local file=$1 group=$2
    shift 2
    {
        echo "kafka.bootstrap.servers=$BOOTSTRAP"
        echo "kafka.group.id=$group"
        echo "kafka.session.timeout.ms=6000"
        echo "source.topics=users"
        echo "moesif.base_url=$MOESIF_URL"
        echo "batch.linger_ms=100"
        echo "sink.retry_backoff_max_ms=2000"
        echo "metrics.listen=127.0.0.1:0"
        for kv in "$@"; do
            echo "$kv"
        done
    } >"$file"
}

# run_userpipe LOG ARGS...: runs the binary in the foreground with the app
# id in its environment (never on the command line), bounded in time.
run_userpipe() {
    local log=$1
    shift
    MOESIF_APPLICATION_ID=$APP_ID timeout "${RUN_TIMEOUT:-180}" \
        "$USERPIPE" run "$@" 2>"$log"
}

# moesif_stat NAME: one counter of moesif-dev's /_dev/stats.
moesif_stat() {
    curl -sf "$MOESIF_URL/_dev/stats" |
        /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"
}

# check_delivery RECORD [ARGS...]: tests/e2e/check_pipeline.py over the
# sample, the record file and the dead-letter topic.
check_delivery() {
    local record=$1
    shift
    consume_all_json users.dlq >"$DEV_TMP/dlq.json" || fail "cannot read users.dlq"
    /usr/bin/python3 "$E2E_ROOT/tests/e2e/check_pipeline.py" \
        --userpipe "$USERPIPE" --input "${INPUT:-$SAMPLE}" --record "$record" \
        --dlq "$DEV_TMP/dlq.json" --moesif "$MOESIF_URL" "$@"
}

# wait_for DESC SECONDS CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
    local desc=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    fail "timed out after ${secs}s waiting for $desc"
}

# upserts_at_least N: moesif-dev has stored at least N user updates.
upserts_at_least() {
    [ "$(moesif_stat upserts)" -ge "$1" ]
}

# sample_stack GROUP: the dev stack with one partition per topic (the
# file order is the consumption order: type claims depend on it),
# moesif-dev recording every request into REC, the sample events in
# `users` (TOTAL of them), and CFG, a configuration for GROUP.
sample_stack() {
    REC=$(mktemp)
    dev_at_exit rm -f "$REC"
    DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $REC" dev_start
    produce_file users "$SAMPLE"
    TOTAL=$(topic_count users)
    [ "$TOTAL" -eq "$(grep -c . "$SAMPLE")" ] || fail "loaded $TOTAL events"
    CFG=$DEV_TMP/run.properties
    write_config "$CFG" "$1"
}

# check_sample_run GROUP LOG: after a --from-beginning --exit-at-end run
# over sample_stack: the delivery (check_delivery), GROUP's committed
# offsets at the end, no application id in LOG, and the requests'
# User-Agent userpipe/<the version of `$USERPIPE --version`>.
check_sample_run() {
    local group=$1 log=$2 version agent
    check_delivery "$REC" || {
        tail -n 20 "$log" >&2
        fail "delivery differs"
    }
    COMMITTED=$(group_committed_total "$group" users)
    [ "$COMMITTED" -eq "$TOTAL" ] || fail "committed offsets sum to $COMMITTED, want $TOTAL"
    ! grep -q "$APP_ID" "$log" || fail "the application id appears in the log"
    version=$("$USERPIPE" --version | sed -n 's/^userpipe \([^ ]*\) (librdkafka .*)$/\1/p')
    [ -n "$version" ] || fail "userpipe --version printed no version"
    agent=$(curl -s "$MOESIF_URL/_dev/stats" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["user_agent"])')
    [ "$agent" = "userpipe/$version" ] || fail "User-Agent '$agent', want 'userpipe/$version'"
}

# start_userpipe LOG ARGS...: `userpipe run` in the background; sets
# UP_PID.  The process is killed when the test exits.
start_userpipe() {
    local log=$1
    shift
    MOESIF_APPLICATION_ID=$APP_ID "$USERPIPE" run "$@" 2>"$log" &
    UP_PID=$!
    dev_at_exit "kill -9 $UP_PID"
}

# rss_kb PID: resident set size in kB (0 once the process is gone).
rss_kb() {
    awk '/^VmRSS:/ { print $2; found = 1 } END { if (!found) print 0 }' \
        "/proc/$1/status" 2>/dev/null || echo 0
}

# metrics_port LOG: the port `userpipe run` logged for its metrics.
metrics_port() {
    sed -n 's/.*msg="metrics listening" port=\([0-9]*\).*/\1/p' "$1" | head -n 1
}

# metric BODY NAME: the value of one series (NAME with its labels, exactly
# as the exposition prints it) in a /metrics body.
metric() {
    awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print "missing" }' <<<"$1"
}

# make_pki DIR: a throwaway PKI made by openssl in DIR (issue 22): ca.pem
# (the CA userpipe is told to trust), rogue.pem (another CA), server.pem/
# server.key (127.0.0.1, signed by ca), client.pem/client.key (signed by
# ca), rogue-client.pem/rogue-client.key (signed by rogue).  Two days of
# validity: a test never outlives them.
make_pki() {
    local d=$1 n
    mkdir -p "$d"
    for n in ca rogue; do
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=userpipe test $n" \
            -keyout "$d/$n.key" -out "$d/$n.pem" 2>/dev/null || fail "openssl: CA $n"
    done
    # _leaf NAME CA SAN
    _leaf() {
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$d/$1.key" \
            -out "$d/$1.csr" 2>/dev/null &&
            printf 'subjectAltName=%s\n' "$3" >"$d/$1.ext" &&
            openssl x509 -req -days 2 -in "$d/$1.csr" -CA "$d/$2.pem" -CAkey "$d/$2.key" \
                -CAcreateserial -extfile "$d/$1.ext" -out "$d/$1.pem" 2>/dev/null ||
            fail "openssl: certificate $1"
    }
    _leaf server ca IP:127.0.0.1
    _leaf client ca DNS:userpipe
    _leaf rogue-client rogue DNS:userpipe
}

# start_moesif_tls VAR DIR [ARG]...: another moesif-dev, serving HTTPS with
# DIR's server certificate (make_pki), the dev stack's application id, and
# the given options (--tls-client-ca, --record); its https:// URL in VAR.
# Killed when the test exits.
start_moesif_tls() {
    local var=$1 d=$2 urlf pid i
    shift 2
    urlf=$(mktemp -u "$DEV_TMP/moesif-tls.XXXXXX")
    "$BUILD/moesif-dev" --listen 127.0.0.1:0 --app-id "$APP_ID" --url-file "$urlf" \
        --tls-cert "$d/server.pem" --tls-key "$d/server.key" "$@" \
        >/dev/null 2>"$urlf.log" &
    pid=$!
    dev_at_exit "kill $pid"
    for ((i = 0; i < 100; i++)); do
        [ -s "$urlf" ] && break
        sleep 0.1
    done
    [ -s "$urlf" ] || fail "moesif-dev (TLS) did not start: $(cat "$urlf.log")"
    printf -v "$var" '%s' "$(cat "$urlf")"
}

# expect_exit WANT LOG DESC CMD...: runs CMD (stderr to LOG), fails unless
# it exits WANT.
expect_exit() {
    local want=$1 log=$2 desc=$3 rc=0
    shift 3
    "$@" 2>"$log" || rc=$?
    [ "$rc" -eq "$want" ] || { tail -5 "$log" >&2; fail "$desc: exit $rc, want $want"; }
}

# tls_stack: the dev stack with one-partition topics and the sample in
# users (total: its events), a PKI in $DEV_TMP/pki (pki, make_pki), and a
# moesif-dev serving HTTPS with it (TLS_URL) that records into rec.
tls_stack() {
    DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" dev_start
    produce_file users "$SAMPLE"
    total=$(topic_count users)
    pki=$DEV_TMP/pki
    make_pki "$pki"
    rec=$DEV_TMP/tls.record
    start_moesif_tls TLS_URL "$pki" --record "$rec"
}
