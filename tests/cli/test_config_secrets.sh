#!/usr/bin/env bash
# test_config_secrets.sh: secret references and the egress keys through
# the binary, no broker needed (issue 22): each way a ${env:} or ${file:}
# reference fails, and each egress file missing or of the wrong kind,
# exits 2 with a sentence naming the key; what a reference resolved to,
# and a URL's password, are never in stderr; config-reference marks the
# secret keys; plain http:// to a host that is not loopback warns at
# start (and loopback does not).  Env: USERPIPE.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERPIPE=${USERPIPE:-$ROOT/build/userpipe}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

SECRET="cli-secret-$RANDOM$RANDOM"
printf '%s\n' "$SECRET" >"$T/secret"
export TEST_CLI_SECRET=$SECRET
unset TEST_CLI_UNSET MOESIF_APPLICATION_ID
base=(-X source.topics=t -X kafka.group.id=g -X kafka.bootstrap.servers=127.0.0.1:1
    -X metrics.listen=off -X moesif.application_id=x)
n=0

# expect2 WANT ARGS...: `userpipe run` exits 2, stderr holds WANT and not
# the secret
expect2() {
    local want=$1 rc=0
    shift
    n=$((n + 1))
    "$USERPIPE" run "${base[@]}" "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ $rc -eq 2 ] || fail "case $n ($*): exit $rc, want 2: $(cat "$T/err")"
    grep -qF -- "$want" "$T/err" || fail "case $n ($*): '$(cat "$T/err")' lacks '$want'"
    grep -qF -- "$SECRET" "$T/err" "$T/out" && fail "case $n ($*): the secret is in the output"
    echo "ok: $(cat "$T/err")"
}

expect2 "'kafka.sasl.password': the environment variable 'TEST_CLI_UNSET'" \
    -X 'kafka.sasl.password=${env:TEST_CLI_UNSET}'
expect2 "'moesif.application_id': cannot read the file '$T/none'" \
    -X "moesif.application_id=\${file:$T/none}"
expect2 "it is a directory" -X "kafka.ssl.key.password=\${file:$T}"
expect2 "absolute path" -X 'kafka.sasl.password=${file:secret}'
expect2 "no closing '}'" -X 'kafka.sasl.password=${env:TEST_CLI_SECRET'
expect2 "not the value of '\${file:$T/secret}'" -X "batch.max_events=\${file:$T/secret}"
expect2 "not the value of '\${env:TEST_CLI_SECRET}'" -X 'sink.gzip=${env:TEST_CLI_SECRET}'
expect2 "'moesif.ca_file': cannot read '$T/ca.pem': No such file" -X "moesif.ca_file=$T/ca.pem"
expect2 "'moesif.client_cert': cannot read '$T': it is a directory" -X "moesif.client_cert=$T"
expect2 "'moesif.ca_path': cannot read '$T/secret': not a directory" -X "moesif.ca_path=$T/secret"
expect2 "cannot read the path its reference gave: No such file" -X "moesif.ca_file=\${file:$T/secret}"
expect2 "'moesif.proxy' must start with http://" -X "moesif.proxy=socks5://u:$SECRET@p:1080"
expect2 "'ftp://***@h'" -X "moesif.base_url=ftp://u:\${env:TEST_CLI_SECRET}@h"
expect2 "-X takes key=value" -X "$SECRET"

# config-reference: the secret keys are marked, no value is shown
"$USERPIPE" config-reference >"$T/ref"
for k in moesif.application_id moesif.client_key_password; do
    grep -q "^| \`$k\` | string, secret |" "$T/ref" || fail "config-reference does not mark $k secret"
done
for k in kafka.sasl.password kafka.ssl.key.password kafka.ssl.key.pem kafka.sasl.oauthbearer.client.secret; do
    grep "kafka.<secret property>" "$T/ref" | grep -qF "\`$k\`" || fail "config-reference does not list $k as secret"
done
echo "ok: config-reference marks the secret keys"

# the cleartext warning, logged right after the configuration is loaded
# (the run is then stopped: no broker)
warned() { # BASE-URL
    timeout -s INT 3 "$USERPIPE" run "${base[@]}" -X "moesif.base_url=$1" 2>"$T/warn" >/dev/null || true
    grep -q 'level=warn.*plain http://' "$T/warn"
}
warned "http://u:$SECRET@moesif.example.com" || fail "plain http:// to a remote host: no warning"
grep -qF -- "$SECRET" "$T/warn" && fail "the warning shows the URL's password"
grep -q 'moesif="http://\*\*\*@moesif.example.com"' "$T/warn" || fail "the warning's URL is not redacted: $(grep warn "$T/warn")"
warned "http://127.0.0.1:9" && fail "plain http:// to loopback warns"
echo "ok: plain http:// warns for moesif.example.com (redacted), not for 127.0.0.1; $n exit-2 cases"
