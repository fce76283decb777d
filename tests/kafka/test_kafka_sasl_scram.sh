#!/usr/bin/env bash
# test_kafka_sasl_scram.sh (issue 19): userpipe on one Apache Kafka 4.1.1
# node whose clients' listener is SASL_SSL with SCRAM-SHA-512, its
# certificate from a CA this test makes with openssl, the credentials
# written at format time (kafka-storage format --add-scram).  librdkafka
# 2.0.2 could not log in here (Kafka 4's strict SCRAM nonce check).
#  - the pipeline: two instances racing for the shared schema's keys
#    (secure_race): every event settled where the schema says, in
#    moesif-dev or the dead-letter topic, none lost; the committed offsets
#    equal the end offsets, read by python3-kafka logging in with SCRAM
#    itself (an independent client); `userpipe schema show|export` and
#    `userpipe dlq stats` through the same listener;
#  - a wrong password: `userpipe run` exits 2 within 8 s, its sentence
#    names authentication and kafka.sasl.password (it ended after 10 s on
#    "Broker transport failure", exit 1, before); `userpipe schema show`
#    and `userpipe dlq stats` likewise;
#  - the CA not trusted (kafka.ssl.ca.location another CA): exit 2 within
#    8 s, the sentence names the certificate and kafka.ssl.ca.location.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
GROUP=kafka-scram
DEV_KAFKA_USERS="userpipe:scram-pw-1 admin:admin-pw-1" secure_start sasl_ssl
cfg=$DEV_TMP/run.properties
sasl_config "$cfg" "$GROUP" SCRAM-SHA-512 userpipe scram-pw-1

# refusals first: nothing of them may remain in the group or the topics
refused 2 8 'authentication.*kafka\.sasl\.password' "$DEV_TMP/bad-pw.log" \
    "$USERPIPE" run -c "$cfg" -X kafka.sasl.password=wrong --from-beginning
refused 2 8 'authentication.*kafka\.sasl\.password' "$DEV_TMP/bad-pw-schema.log" \
    "$USERPIPE" schema show -c "$cfg" -X kafka.sasl.password=wrong
refused 2 8 'authentication.*kafka\.sasl\.password' "$DEV_TMP/bad-pw-dlq.log" \
    "$USERPIPE" dlq stats -c "$cfg" -X kafka.sasl.password=wrong
refused 2 8 'certificate.*kafka\.ssl\.ca\.location' "$DEV_TMP/bad-ca.log" \
    "$USERPIPE" run -c "$cfg" -X "kafka.ssl.ca.location=$TLS/other-ca.pem" --from-beginning

export KADMIN_BOOTSTRAP=$SECURE KADMIN_SECURITY="SASL_SSL SCRAM-SHA-512 admin admin-pw-1 $TLS/ca.pem"
secure_race "$cfg" "$GROUP" 4 100 20
"$USERPIPE" dlq stats -c "$cfg" >"$DEV_TMP/stats.txt" 2>"$DEV_TMP/stats.log" ||
    { cat "$DEV_TMP/stats.log" >&2; fail "dlq stats failed"; }
conflicts=$(awk '$1 == "type_conflict" { print $2 }' "$DEV_TMP/stats.txt")
[ "${conflicts:-0}" -eq "$(grep -c . "$DEV_TMP/dlq.json")" ] ||
    fail "dlq stats counts ${conflicts:-0} type_conflict, the topic holds $(grep -c . "$DEV_TMP/dlq.json")"
echo "figures: $race_figures"
echo "ok: SASL_SSL with SCRAM-SHA-512 on Kafka $(basename "$(ls "$E2E_ROOT"/build/kafka/libs/kafka_2.13-*.jar)" .jar | sed 's/kafka_2.13-//')"
