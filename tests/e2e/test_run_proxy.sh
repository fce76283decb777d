#!/usr/bin/env bash
# test_run_proxy.sh: userpipe reaches Moesif through an HTTP CONNECT proxy
# (issue 22), Debian's tinyproxy with Basic credentials, in front of
# moesif-dev serving HTTPS with a throwaway CA:
#
#   moesif.proxy=http://user:password@proxy   every event delivered through a
#     (NO_PROXY=127.0.0.1 in the environment:  CONNECT tunnel; the password is
#     the key is not bypassed)                 in no log line (redacted)
#   no key, HTTPS_PROXY in the environment    delivered through the proxy
#                                             (libcurl's variables, documented)
#   ... and NO_PROXY=127.0.0.1                delivered, no tunnel
#   a wrong proxy password                    exit 3, names moesif.proxy
#   an unreachable proxy, sink.retry_max=2    exit 1, names moesif.proxy
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v tinyproxy >/dev/null || fail "tinyproxy is missing (the Makefile's DEB_PKGS has it: make deps)"
tls_stack
accepted=$("$USERPIPE" transform <"$SAMPLE" 2>/dev/null | wc -l)

# tinyproxy: a free port of the kernel's, Basic credentials, every
# CONNECT logged (in the foreground, -d, to its stdout: it drops to
# nobody, who cannot open a file in the test's folder)
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
tp=$DEV_TMP/tinyproxy
mkdir -p "$tp"
PROXY_PORT=$(free_port)
PROXY_PW="tp-pw-$RANDOM$RANDOM"
cat >"$tp/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $PROXY_PORT
Listen 127.0.0.1
Timeout 60
LogLevel Connect
MaxClients 50
Allow 127.0.0.1
BasicAuth userpipe $PROXY_PW
EOF
tinyproxy -d -c "$tp/tinyproxy.conf" >"$tp/tinyproxy.log" 2>&1 &
dev_at_exit "kill $!"
wait_for "tinyproxy" 10 curl -sf -o /dev/null --cacert "$pki/ca.pem" \
    -x "http://userpipe:$PROXY_PW@127.0.0.1:$PROXY_PORT" "$TLS_URL/_dev/stats"
tls_port=${TLS_URL##*:}
tunnels() { grep -c "CONNECT 127.0.0.1:$tls_port " "$tp/tinyproxy.log" || true; }
upserts() {
    curl -sf --cacert "$pki/ca.pem" "$TLS_URL/_dev/stats" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["upserts"])'
}
cfg=$DEV_TMP/run.properties

# 1. the key, with the password as a reference; NO_PROXY names the host
before=$(tunnels)
write_config "$cfg" e2e-proxy-1 "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/ca.pem" \
    "moesif.proxy=http://userpipe:\${env:TEST_PROXY_PW}@127.0.0.1:$PROXY_PORT"
TEST_PROXY_PW=$PROXY_PW NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 \
    run_userpipe "$DEV_TMP/p1.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/p1.log" >&2; fail "through moesif.proxy: exit $?"; }
# every accepted event sent, and moesif-dev stored each object sent (a
# user's consecutive updates merge into one, sink/merge.c)
summary_field() { sed -n "s/.*msg=\"stopped\".* $2=\([0-9]*\).*/\1/p" "$1"; }
[ "$(summary_field "$DEV_TMP/p1.log" sent)" = "$accepted" ] ||
    fail "through moesif.proxy: sent $(summary_field "$DEV_TMP/p1.log" sent), want $accepted"
[ "$(upserts)" = "$(summary_field "$DEV_TMP/p1.log" objects)" ] ||
    fail "through moesif.proxy: $(upserts) upserts, userpipe sent $(summary_field "$DEV_TMP/p1.log" objects) objects"
[ "$(group_committed_total e2e-proxy-1 users)" -eq "$total" ] || fail "through moesif.proxy: offsets not at the end"
[ "$(tunnels)" -gt "$before" ] || fail "through moesif.proxy: tinyproxy logged no CONNECT to moesif-dev"
grep -q -- "$PROXY_PW" "$DEV_TMP/p1.log" && fail "the proxy password is in the log"
grep -q "proxy=\"http://\*\*\*@127.0.0.1:$PROXY_PORT\"" "$DEV_TMP/p1.log" ||
    fail "the start line does not show the proxy redacted: $(grep 'msg="started"' "$DEV_TMP/p1.log")"
echo "ok: through moesif.proxy (NO_PROXY set): $accepted upserts, $(($(tunnels) - before)) CONNECT tunnels, logged as $(grep -o 'proxy="[^"]*"' "$DEV_TMP/p1.log" | head -1)"

# 2. no key: libcurl's HTTPS_PROXY
before=$(tunnels)
write_config "$cfg" e2e-proxy-2 "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/ca.pem"
NO_PROXY= no_proxy= HTTPS_PROXY="http://userpipe:$PROXY_PW@127.0.0.1:$PROXY_PORT" \
    run_userpipe "$DEV_TMP/p2.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/p2.log" >&2; fail "through HTTPS_PROXY: exit $?"; }
[ "$(group_committed_total e2e-proxy-2 users)" -eq "$total" ] || fail "through HTTPS_PROXY: offsets not at the end"
[ "$(tunnels)" -gt "$before" ] || fail "HTTPS_PROXY: tinyproxy logged no CONNECT: not honoured"
echo "ok: no moesif.proxy, HTTPS_PROXY in the environment: $(($(tunnels) - before)) CONNECT tunnels"

# 2b. no key, HTTPS_PROXY, and NO_PROXY naming the host: straight there
before=$(tunnels)
write_config "$cfg" e2e-proxy-2b "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/ca.pem"
NO_PROXY=127.0.0.1 no_proxy= HTTPS_PROXY="http://userpipe:$PROXY_PW@127.0.0.1:$PROXY_PORT" \
    run_userpipe "$DEV_TMP/p2b.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/p2b.log" >&2; fail "HTTPS_PROXY with NO_PROXY: exit $?"; }
[ "$(group_committed_total e2e-proxy-2b users)" -eq "$total" ] || fail "HTTPS_PROXY with NO_PROXY: offsets not at the end"
[ "$(tunnels)" -eq "$before" ] || fail "NO_PROXY=127.0.0.1 was not honoured: $(($(tunnels) - before)) tunnels"
echo "ok: no moesif.proxy, HTTPS_PROXY and NO_PROXY=127.0.0.1: delivered without the proxy"

# 3. a wrong password: the proxy refuses the tunnel
write_config "$cfg" e2e-proxy-3 "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/ca.pem" \
    "moesif.proxy=http://userpipe:wrong-$PROXY_PW@127.0.0.1:$PROXY_PORT"
RUN_TIMEOUT=60 expect_exit 3 "$DEV_TMP/p3.log" "a wrong proxy password" \
    run_userpipe "$DEV_TMP/p3.log" -c "$cfg" --from-beginning --exit-at-end
grep 'level=error' "$DEV_TMP/p3.log" | grep -q "moesif.proxy" ||
    fail "a wrong proxy password: the error does not name moesif.proxy"
grep -q -- "$PROXY_PW" "$DEV_TMP/p3.log" && fail "the proxy password is in the log"
echo "ok: a wrong proxy password: exit 3: $(grep -o 'level=error.*' "$DEV_TMP/p3.log" | head -1)"

# 4. an unreachable proxy: an outage, retried, then sink.retry_max
dead=$(free_port)
write_config "$cfg" e2e-proxy-4 "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/ca.pem" \
    "moesif.proxy=http://127.0.0.1:$dead" sink.retry_max=2 sink.retry_backoff_ms=50
RUN_TIMEOUT=60 expect_exit 1 "$DEV_TMP/p4.log" "an unreachable proxy" \
    run_userpipe "$DEV_TMP/p4.log" -c "$cfg" --from-beginning --exit-at-end
grep 'level=error' "$DEV_TMP/p4.log" | grep -q "moesif.proxy http://127.0.0.1:$dead" ||
    fail "an unreachable proxy: the error does not name moesif.proxy: $(grep level=error "$DEV_TMP/p4.log" | head -2)"
group_offsets e2e-proxy-4 users | grep -qv " none$" && fail "an unreachable proxy: offsets were committed"
echo "ok: an unreachable proxy: exit 1: $(grep -o 'level=error.*' "$DEV_TMP/p4.log" | head -1)"
