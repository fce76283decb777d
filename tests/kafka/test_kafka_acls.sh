#!/usr/bin/env bash
# test_kafka_acls.sh (issue 19): userpipe on one Apache Kafka 4.1.1 node
# with StandardAuthorizer and allow.everyone.if.no.acl.found=false, its
# clients' listener SASL_SSL with SCRAM-SHA-512 (a CA made here), each
# principal granted exactly the ACLs README.md's Permissions tables list
# as always needed (kafka_admin.py grant parses the tables: the document
# cannot drift from what is tested), by the super user admin over SCRAM.
#  - the pipeline with the `userpipe run` list: two instances racing for
#    the shared schema's keys (secure_race), every event where the schema
#    says, none lost, the committed offsets equal the end offsets, no
#    error logged (the schema reader uses no group), the dead-letter
#    topic's max.message.bytes read and the schema topic's configuration
#    checked (DescribeConfigs on them, none on the cluster);
#  - `userpipe schema show`, `userpipe dlq stats` and `dlq redrive
#    --dry-run` under a principal holding only the schema-show and
#    dlq-stats lists (no error or warning: no Write needed); `userpipe dlq
#    redrive` under one holding only its list: every dead-letter record
#    produced back to users;
#  - the run list less one ACL: without Read on the source topic, without
#    Read on the group, (a seed file to claim) without Write on the schema
#    topic, and (the events consumed again) without Write on the
#    dead-letter topic, `userpipe run` exits 2 within 8 s with a sentence
#    naming the operation and the resource.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
GROUP=kafka-acls
README=$E2E_ROOT/README.md
principals="admin userpipe noread nogroup noschemawrite nodlqwrite operator redriver"
creds=""
for u in $principals; do
    creds="$creds $u:pw-$u"
done
DEV_KAFKA_AUTHORIZER=1 DEV_KAFKA_USERS="$creds" secure_start sasl_ssl
export KADMIN_BOOTSTRAP=$SECURE KADMIN_SECURITY="SASL_SSL SCRAM-SHA-512 admin pw-admin $TLS/ca.pem"

# config_as USER GROUP: the properties of USER on the secured listener.
config_as() {
    sasl_config "$DEV_TMP/$1.properties" "$2" SCRAM-SHA-512 "$1" "pw-$1"
    echo "$DEV_TMP/$1.properties"
}
# grant USER SECTION GROUP [--except TYPE:NAME:OP]: README.md's list.
grant() {
    local user=$1 section=$2 group=$3
    shift 3
    kadmin grant "User:$user" "$README" "$section" source.topics=users "kafka.group.id=$group" \
        dlq.topic=users.dlq schema.topic=userpipe-schema "$@" >"$DEV_TMP/grant-$user-$section.txt" ||
        fail "cannot grant $user the $section list"
}
grant userpipe run "$GROUP"
grant noread run acl-noread --except Topic:users:Read
grant nogroup run acl-nogroup --except Group:acl-nogroup:Read
grant noschemawrite run acl-noschemawrite --except Topic:userpipe-schema:Write
grant nodlqwrite run acl-nodlqwrite --except Topic:users.dlq:Write
grant operator schema-show "$GROUP"
grant operator dlq-stats "$GROUP"
grant redriver dlq-redrive "$GROUP"
echo "granted to userpipe: $(xargs <"$DEV_TMP/grant-userpipe-run.txt")"

# one ACL less: the operation and the resource named, exit 2
refused 2 8 "not allow userpipe Read on the source topic 'users'" "$DEV_TMP/noread.log" \
    "$USERPIPE" run -c "$(config_as noread acl-noread)"
refused 2 8 "not allow userpipe Read on the consumer group 'acl-nogroup'" "$DEV_TMP/nogroup.log" \
    "$USERPIPE" run -c "$(config_as nogroup acl-nogroup)"
echo '{"seeded_key":"string"}' >"$DEV_TMP/seed.json"
refused 2 8 "not allow userpipe Write on the schema topic 'userpipe-schema'" "$DEV_TMP/noschemawrite.log" \
    "$USERPIPE" run -c "$(config_as noschemawrite acl-noschemawrite)" -X "schema.file=$DEV_TMP/seed.json"

# the README's lists suffice
cfg=$(config_as userpipe "$GROUP")
secure_race "$cfg" "$GROUP" 4 100 20
# DescribeConfigs on the topics suffices to size the dead-letter records
# and to check the schema topic's configuration
! grep -h -e "cannot read the dead-letter topic's max.message.bytes" \
    -e "cannot check the schema topic's configuration" "$DEV_TMP/a.log" "$DEV_TMP/b.log" ||
    fail "a topic's configuration was not read with README's ACLs"
nrej=$(grep -c . "$DEV_TMP/dlq.json")
# the events again, in a group of their own: the rejects meet the
# dead-letter topic without Write
refused 2 8 "not allow userpipe Write on the dead-letter topic 'users.dlq'" "$DEV_TMP/nodlqwrite.log" \
    "$USERPIPE" run -c "$(config_as nodlqwrite acl-nodlqwrite)" --from-beginning
[ "$(grep -c . <(consume_all users.dlq))" -eq "$nrej" ] || fail "records reached users.dlq without Write"
ops=$(config_as operator "$GROUP")
"$USERPIPE" schema show -c "$ops" >"$DEV_TMP/show-op.txt" 2>"$DEV_TMP/show-op.log" ||
    { cat "$DEV_TMP/show-op.log" >&2; fail "schema show with the schema-show list failed"; }
cmp -s "$DEV_TMP/show-op.txt" "$DEV_TMP/show-1.txt" || fail "schema show as operator differs"
! grep -E 'level=(error|warn)' "$DEV_TMP/show-op.log" || fail "schema show warned with its list"
"$USERPIPE" dlq stats -c "$ops" >"$DEV_TMP/stats.txt" 2>"$DEV_TMP/op.log" ||
    { cat "$DEV_TMP/op.log" >&2; fail "dlq stats with the dlq-stats list failed"; }
n=$(awk '$1 == "type_conflict" { print $2 }' "$DEV_TMP/stats.txt")
[ "${n:-0}" -eq "$nrej" ] || fail "dlq stats counts ${n:-0} type_conflict, the topic holds $nrej"
"$USERPIPE" dlq redrive --dry-run -c "$ops" >"$DEV_TMP/dry.txt" 2>"$DEV_TMP/dry.log" ||
    { cat "$DEV_TMP/dry.log" >&2; fail "dlq redrive --dry-run with the dlq-stats and schema-show lists failed"; }
! grep -E 'level=(error|warn)' "$DEV_TMP/dry.log" || fail "the dry run warned with its lists"
before=$(topic_count users)
"$USERPIPE" dlq redrive -c "$(config_as redriver "$GROUP")" >"$DEV_TMP/redrive.txt" 2>"$DEV_TMP/redrive.log" ||
    { cat "$DEV_TMP/redrive.log" >&2; fail "dlq redrive with the dlq-redrive list failed"; }
[ $(($(topic_count users) - before)) -eq "$nrej" ] ||
    fail "the redrive produced $(($(topic_count users) - before)) records, want $nrej: $(cat "$DEV_TMP/redrive.txt")"
! grep -h 'level=error' "$DEV_TMP/op.log" "$DEV_TMP/redrive.log" || fail "the tools logged errors"
echo "figures: $race_figures; dlq stats and a redrive of $nrej records under their own lists"
echo "ok: the pipeline and its tools with exactly README.md's ACLs"
