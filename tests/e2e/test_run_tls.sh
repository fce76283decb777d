#!/usr/bin/env bash
# test_run_tls.sh: userpipe delivers to Moesif over HTTPS with a private
# CA and with a client certificate (issue 22), and a TLS failure stops the
# run with exit 3 and a sentence instead of being retried for ever (issue
# 20 item 5).  Through real sockets: moesif-dev serves HTTPS with a
# throwaway CA made by openssl here, then requires a client certificate.
#
#   moesif.ca_file = the CA    every event delivered (check_pipeline.py)
#   no moesif.ca_file          exit 3, names moesif.ca_file, nothing committed
#   moesif.ca_file = other CA  exit 3, the same
#   mTLS, no client cert       exit 3, names moesif.client_cert
#   mTLS, a rogue client cert  exit 3, the same
#   mTLS, the client cert      every event delivered, as many as over TLS
#   moesif.ca_file missing     exit 2 at start, names the key
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tls_stack
rec_m=$DEV_TMP/mtls.record
start_moesif_tls MTLS_URL "$pki" --record "$rec_m" --tls-client-ca "$pki/ca.pem"
cfg=$DEV_TMP/run.properties

# refused RUN GROUP WANT-WORD [key=value]...: a run that must stop at its
# first request with exit 3, a sentence holding WANT-WORD, within 60 s
# (it was retried for ever), and no committed offset.  They run after
# the delivering run's check_delivery: their rejects reach users.dlq too
refused() {
    local name=$1 group=$2 word=$3 log=$DEV_TMP/$1.log start
    shift 3
    write_config "$cfg" "$group" "$@"
    start=$SECONDS
    RUN_TIMEOUT=60 expect_exit 3 "$log" "$name" \
        run_userpipe "$log" -c "$cfg" --from-beginning --exit-at-end
    grep -q 'level=error.*TLS\|level=error.*tls' "$log" ||
        { tail -3 "$log" >&2; fail "$name: no error line about TLS"; }
    grep 'level=error' "$log" | grep -q -- "$word" ||
        { tail -3 "$log" >&2; fail "$name: the error does not name $word"; }
    group_offsets "$group" users | grep -qv " none$" &&
        fail "$name: offsets were committed"
    echo "ok: $name: exit 3 after $((SECONDS - start)) s: $(grep -o 'level=error.*' "$log" | head -1 | cut -c1-400)"
}

write_config "$cfg" e2e-tls-3 "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/ca.pem"
run_userpipe "$DEV_TMP/tls.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/tls.log" >&2; fail "over TLS with moesif.ca_file: exit $?"; }
SSL_CERT_FILE=$pki/ca.pem MOESIF_URL=$TLS_URL check_delivery "$rec" ||
    fail "over TLS: delivery differs"
[ "$(group_committed_total e2e-tls-3 users)" -eq "$total" ] || fail "over TLS: offsets not at the end"
echo "ok: over TLS with moesif.ca_file: $(grep -c . "$rec") users delivered, offsets at $total"

refused tls-no-ca e2e-tls-1 moesif.ca_file "moesif.base_url=$TLS_URL"
refused tls-rogue-ca e2e-tls-2 moesif.ca_file "moesif.base_url=$TLS_URL" \
    "moesif.ca_file=$pki/rogue.pem"

refused mtls-no-cert e2e-tls-4 moesif.client_cert "moesif.base_url=$MTLS_URL" \
    "moesif.ca_file=$pki/ca.pem"
refused mtls-rogue-cert e2e-tls-5 moesif.client_cert "moesif.base_url=$MTLS_URL" \
    "moesif.ca_file=$pki/ca.pem" "moesif.client_cert=$pki/rogue-client.pem" \
    "moesif.client_key=$pki/rogue-client.key"

write_config "$cfg" e2e-tls-6 "moesif.base_url=$MTLS_URL" "moesif.ca_file=$pki/ca.pem" \
    "moesif.client_cert=$pki/client.pem" "moesif.client_key=$pki/client.key"
run_userpipe "$DEV_TMP/mtls.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/mtls.log" >&2; fail "over mTLS: exit $?"; }
# every accepted event sent, and every object sent stored: how many
# objects a run sends depends on how a user's consecutive updates met in
# the batcher (sink/merge.c), so it is compared with this run's own count,
# not with the TLS run's
summary_field() { sed -n "s/.*msg=\"stopped\".* $2=\([0-9]*\).*/\1/p" "$1"; }
accepted=$("$USERPIPE" transform <"${INPUT:-$SAMPLE}" 2>/dev/null | wc -l)
[ "$(summary_field "$DEV_TMP/mtls.log" sent)" = "$accepted" ] ||
    fail "over mTLS: sent $(summary_field "$DEV_TMP/mtls.log" sent), want $accepted"
objects=$(summary_field "$DEV_TMP/mtls.log" objects)
[ "$(grep -c . "$rec_m")" = "$objects" ] ||
    fail "over mTLS: moesif-dev recorded $(grep -c . "$rec_m") objects, userpipe sent $objects"
[ "$(group_committed_total e2e-tls-6 users)" -eq "$total" ] || fail "over mTLS: offsets not at the end"
upserts=$(curl -sf --cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client.key" \
    "$MTLS_URL/_dev/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["upserts"])')
[ "$upserts" = "$objects" ] || fail "over mTLS: moesif-dev stored $upserts, userpipe sent $objects objects"
echo "ok: over mTLS with a client certificate: $accepted events sent as $objects objects, all stored, offsets at $total"

# the files are checked at start, before any connection
write_config "$cfg" e2e-tls-7 "moesif.base_url=$TLS_URL" "moesif.ca_file=$pki/no-such.pem"
expect_exit 2 "$DEV_TMP/start.log" "a missing moesif.ca_file" \
    run_userpipe "$DEV_TMP/start.log" -c "$cfg"
grep -q "moesif.ca_file.*no-such.pem.*No such file" "$DEV_TMP/start.log" ||
    fail "a missing moesif.ca_file: $(cat "$DEV_TMP/start.log")"
echo "ok: a missing moesif.ca_file: exit 2: $(cat "$DEV_TMP/start.log")"
