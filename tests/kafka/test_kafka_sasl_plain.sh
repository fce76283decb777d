#!/usr/bin/env bash
# test_kafka_sasl_plain.sh (issue 19): userpipe on one Apache Kafka 4.1.1
# node whose clients' listener is SASL_SSL with PLAIN (as Confluent Cloud's
# API keys are), its certificate from a CA this test makes with openssl.
#  - the pipeline: two instances racing for the shared schema's keys
#    (secure_race): every event settled where the schema says, none lost,
#    the committed offsets equal the end offsets;
#  - kcat (Debian's librdkafka, an independent client) reads the
#    dead-letter topic through the same SASL_SSL listener with PLAIN and
#    finds every record the plaintext read found;
#  - a wrong password: `userpipe run` exits 2 within 8 s, its sentence
#    names authentication and kafka.sasl.password.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
GROUP=kafka-plain
DEV_KAFKA_USERS="userpipe:plain-pw-1 admin:admin-pw-2" secure_start sasl_ssl
cfg=$DEV_TMP/run.properties
sasl_config "$cfg" "$GROUP" PLAIN userpipe plain-pw-1

refused 2 8 'authentication.*kafka\.sasl\.password' "$DEV_TMP/bad-pw.log" \
    "$USERPIPE" run -c "$cfg" -X kafka.sasl.password=wrong --from-beginning

secure_race "$cfg" "$GROUP" 4 100 20
n=$(timeout 60 kcat -C -b "$SECURE" -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN \
    -X sasl.username=admin -X sasl.password=admin-pw-2 -X "ssl.ca.location=$TLS/ca.pem" \
    -t users.dlq -o beginning -e -q -f '%o\n' | grep -c .) || fail "kcat could not read users.dlq over SASL_SSL"
[ "$n" -eq "$(grep -c . "$DEV_TMP/dlq.json")" ] ||
    fail "kcat read $n dead-letter records over SASL_SSL, $(grep -c . "$DEV_TMP/dlq.json") over PLAINTEXT"
echo "figures: $race_figures; kcat over SASL_SSL/PLAIN read $n dead-letter records"
echo "ok: SASL_SSL with PLAIN"
