#!/usr/bin/env bash
# test_run_secrets.sh: every secret a run is given stays out of every log
# line, error sentence and /metrics answer (issue 22), and the process is
# not dumpable.
#
# The secrets, each through a reference: the application id and a SASL
# password from files (${file:}), an SSL key password, an OAuth client
# secret and a password in moesif.base_url's userinfo from the
# environment (${env:}), a client key password from a file.  userpipe runs
# as nobody (setpriv), log.level=debug and kafka.debug=conf (librdkafka's
# dump of its configuration); it delivers the sample, /metrics, /healthz
# and /readyz are scraped, then SIGTERM.  Then failing runs: bad values
# that are references, a wrong application id (401), a URL with a
# password and a wrong scheme; and `dlq stats`, `schema show`,
# `config-reference`.  Every byte written is grepped for every secret.
# Dumpable: the files in /proc/PID belong to root for a process that is not
# dumpable (to its own user with debug.core_dumps=true).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || fail "setpriv (util-linux) is missing"
DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)
accepted=$("$USERPIPE" transform <"$SAMPLE" 2>/dev/null | wc -l)

# the secrets and the configuration, readable by nobody (DEV_TMP is not)
S=$(mktemp -d "${TMPDIR:-/tmp}/userpipe-secrets.XXXXXX")
dev_at_exit "rm -rf '$S'"
chmod 0755 "$S"
out=$DEV_TMP/out # every byte userpipe writes lands here
mkdir -p "$out"
SASL_PW="sasl-pw-$RANDOM$RANDOM"
KEY_PW="ssl-key-pw-$RANDOM$RANDOM"
OAUTH="oauth-secret-$RANDOM$RANDOM"
URL_PW="url-pw-$RANDOM$RANDOM"
CLIENT_KEY_PW="client-key-pw-$RANDOM$RANDOM"
WRONG_ID="wrong-app-id-$RANDOM$RANDOM"
printf '%s\n' "$APP_ID" >"$S/app-id"
printf '%s\n' "$SASL_PW" >"$S/sasl-password"
printf '%s' "$CLIENT_KEY_PW" >"$S/client-key-password"
printf '%s\n' "$WRONG_ID" >"$S/wrong-app-id"
chmod 0644 "$S"/*
secrets=("$APP_ID" "$SASL_PW" "$KEY_PW" "$OAUTH" "$URL_PW" "$CLIENT_KEY_PW" "$WRONG_ID")
export TEST_SSL_KEY_PW=$KEY_PW TEST_OAUTH=$OAUTH TEST_URL_PW=$URL_PW

cfg=$S/run.properties
write_config "$cfg" e2e-secrets \
    "moesif.base_url=http://moesif:\${env:TEST_URL_PW}@${MOESIF_URL#http://}" \
    "moesif.application_id=\${file:$S/app-id}" \
    "kafka.sasl.password=\${file:$S/sasl-password}" \
    "kafka.sasl.username=userpipe" \
    "kafka.ssl.key.password=\${env:TEST_SSL_KEY_PW}" \
    "kafka.sasl.oauthbearer.client.secret=\${env:TEST_OAUTH}" \
    "moesif.client_key_password=\${file:$S/client-key-password}" \
    "log.level=debug" "kafka.debug=conf"
chmod 0644 "$cfg"

# "${as_nobody[@]}" CMD...: CMD as user and group nobody, without the app
# id in its environment (the references must give it); env and setpriv
# exec, so CMD & has the PID $! (a function would put a shell there)
as_nobody=(env -u MOESIF_APPLICATION_ID setpriv --reuid=65534 --regid=65534 --clear-groups)

# -- 1. the delivering run, scraped
"${as_nobody[@]}" "$USERPIPE" run -c "$cfg" --from-beginning 2>"$out/run.log" &
pid=$!
dev_at_exit "kill -9 $pid"
# settled is committed: every event in moesif-dev (a user's consecutive
# updates merged into one object, sink/merge.c) or the dead-letter topic
at_end() { [ "$(group_committed_total e2e-secrets users)" -eq "$total" ]; }
wait_for "every event settled and committed" 120 at_end
port=$(metrics_port "$out/run.log")
[ -n "$port" ] || fail "no metrics port in the log"
for p in metrics healthz readyz; do
    curl -s "http://127.0.0.1:$port/$p" >"$out/$p.txt" || fail "GET /$p"
done
grep -q '^userpipe_' "$out/metrics.txt" || fail "/metrics answered no userpipe_ series"
owner=$(stat -c %u "/proc/$pid/status")
[ "$owner" = 0 ] || fail "/proc/$pid/status belongs to uid $owner: the process is dumpable (PR_SET_DUMPABLE not 0)"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ $rc -eq 0 ] || { tail -5 "$out/run.log" >&2; fail "the run exited $rc on SIGTERM"; }
[ "$(group_committed_total e2e-secrets users)" -eq "$total" ] || fail "offsets not at the end"
grep -q 'moesif="http://\*\*\*@' "$out/run.log" || fail "the start line does not show moesif.base_url redacted"
grep -q 'sasl.password' "$out/run.log" ||
    fail "kafka.debug=conf dumped no configuration: the check of librdkafka's dump proves nothing"
echo "ok: delivered $accepted events as nobody from references; /proc/$pid/status owned by uid $owner (not dumpable); $(wc -l <"$out/run.log") log lines"

# -- 2. debug.core_dumps=true: dumpable again, with a warning
"${as_nobody[@]}" "$USERPIPE" run -c "$cfg" -X debug.core_dumps=true -X kafka.group.id=e2e-secrets-2 \
    2>"$out/dumpable.log" &
pid=$!
dev_at_exit "kill -9 $pid"
wait_for "the dumpable run to start" 60 grep -q 'msg="started"' "$out/dumpable.log"
owner=$(stat -c %u "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" || true
[ "$owner" = 65534 ] || fail "with debug.core_dumps=true /proc/PID/status belongs to uid $owner, not the process's 65534"
grep -q 'level=warn.*debug.core_dumps=true' "$out/dumpable.log" || fail "no warning for debug.core_dumps=true"
echo "ok: debug.core_dumps=true: /proc/PID/status owned by uid $owner, warned"

# -- 3. errors: what references resolved to is never echoed
n=0
bad() { # WANT-EXIT -X...
    local want=$1
    shift
    n=$((n + 1))
    expect_exit "$want" "$out/bad$n.log" "bad run $n ($*)" \
        "${as_nobody[@]}" timeout 60 "$USERPIPE" run -c "$cfg" -X kafka.group.id=e2e-secrets-bad "$@"
}
bad 2 -X "batch.max_events=\${file:$S/sasl-password}"
bad 2 -X "sink.gzip=\${env:TEST_SSL_KEY_PW}"
bad 2 -X "log.level=\${env:TEST_OAUTH}"
bad 2 -X "moesif.base_url=ftp://moesif:\${env:TEST_URL_PW}@example.com"
bad 2 -X "moesif.application_id=\${file:$S/app-id}" -X "moesif.ca_file=\${file:$S/sasl-password}"
bad 2 -X "$SASL_PW"
bad 3 -X "moesif.application_id=\${file:$S/wrong-app-id}" --from-beginning
grep -q "ftp://\*\*\*@example.com" "$out/bad4.log" || fail "the bad scheme's URL is not shown redacted: $(cat "$out/bad4.log")"
"${as_nobody[@]}" "$USERPIPE" dlq stats -c "$cfg" >"$out/dlq-stats.txt" 2>&1 || true
"${as_nobody[@]}" "$USERPIPE" schema show -c "$cfg" >"$out/schema-show.txt" 2>&1 || true
"$USERPIPE" config-reference >"$out/config-reference.md" 2>&1
grep -q "moesif.application_id\` | string, secret" "$out/config-reference.md" ||
    fail "config-reference does not mark moesif.application_id secret"
echo "ok: $n failing runs: exit 2 for bad values, 3 for the wrong id; dlq stats, schema show, config-reference"

# -- every byte written, every secret
found=0
for s in "${secrets[@]}"; do
    if hits=$(grep -rlF -- "$s" "$out"); then
        echo "FAIL: a secret ($(printf '%s' "$s" | cut -c1-12)...) appears in: $hits" >&2
        found=1
    fi
done
[ $found -eq 0 ] || fail "secrets leaked"
echo "ok: ${#secrets[@]} secrets in none of $(ls "$out" | wc -l) outputs ($(cat "$out"/* | wc -c) bytes)"
