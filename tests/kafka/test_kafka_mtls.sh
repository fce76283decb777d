#!/usr/bin/env bash
# test_kafka_mtls.sh (issue 19): userpipe on one Apache Kafka 4.1.1 node
# whose clients' listener is TLS requiring a client certificate (mTLS,
# ssl.client.auth=required, MSK's TLS client authentication), the broker's
# and userpipe's certificates from a CA this test makes with openssl.
#  - the pipeline: two instances racing for the shared schema's keys
#    (secure_race): every event settled where the schema says, none lost,
#    the committed offsets equal the end offsets, read by python3-kafka
#    through the same listener with its own client certificate;
#  - the brokers' CA not trusted (kafka.ssl.ca.location another CA): exit
#    2 within 8 s, the sentence names the certificate and
#    kafka.ssl.ca.location;
#  - no client certificate, and one from a CA the brokers do not trust:
#    exit 2 within 8 s, the sentence names kafka.ssl.certificate.location.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
GROUP=kafka-mtls
secure_start ssl
tls_cert "$TLS" other-ca stranger userpipe
tls_cert "$TLS" ca admin admin
cfg=$DEV_TMP/run.properties
secure_config "$cfg" "$GROUP" kafka.security.protocol=SSL \
    "kafka.ssl.certificate.location=$TLS/userpipe.pem" "kafka.ssl.key.location=$TLS/userpipe.key"

refused 2 8 'certificate.*kafka\.ssl\.ca\.location' "$DEV_TMP/bad-ca.log" \
    "$USERPIPE" run -c "$cfg" -X "kafka.ssl.ca.location=$TLS/other-ca.pem" --from-beginning
grep -v -e '^kafka.ssl.certificate.location=' -e '^kafka.ssl.key.location=' "$cfg" >"$DEV_TMP/nocert.properties"
refused 2 8 'kafka\.ssl\.certificate\.location' "$DEV_TMP/no-cert.log" \
    "$USERPIPE" run -c "$DEV_TMP/nocert.properties" --from-beginning
refused 2 8 'kafka\.ssl\.certificate\.location' "$DEV_TMP/stranger.log" \
    "$USERPIPE" run -c "$cfg" -X "kafka.ssl.certificate.location=$TLS/stranger.pem" \
    -X "kafka.ssl.key.location=$TLS/stranger.key" --from-beginning

export KADMIN_BOOTSTRAP=$SECURE KADMIN_SECURITY="SSL $TLS/ca.pem $TLS/admin.pem $TLS/admin.key"
secure_race "$cfg" "$GROUP" 4 100 20
echo "figures: $race_figures"
echo "ok: mTLS"
