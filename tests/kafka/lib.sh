# shellcheck shell=bash
# tests/kafka/lib.sh: what the real-cluster tests of tests/kafka/ share
# (issue 13), on top of tests/e2e/lib.sh: every one runs on Apache Kafka
# (DEV_KAFKA=apache), most on three nodes, and asserts nothing was lost.
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
export DEV_KAFKA=apache

# leader_of TOPIC PARTITION: the broker id leading it now.
leader_of() {
    kafka_ctl leaders "$1" | tr ' ' '\n' | sed -n "s/^$2:\([0-9-]*\)\$/\1/p"
}

# dlq_duplicates: dead-letter records beyond one per source offset.  The
# producer is idempotent, so a leader change must not write one twice.
dlq_duplicates() {
    consume_all users.dlq '%h\n' |
        sed -n 's/.*userpipe.source.partition=\([0-9]*\).*userpipe.source.offset=\([0-9]*\).*/\1:\2/p' |
        sort | uniq -d | wc -l
}

# progress_after N SECONDS: seconds until moesif-dev counts more than N
# upserts (the pipeline moves again), at most SECONDS; prints them.
progress_after() {
    local n=$1 secs=$2 start=$SECONDS
    while [ "$(moesif_stat upserts)" -le "$n" ]; do
        [ $((SECONDS - start)) -lt "$secs" ] || fail "no progress within ${secs}s"
        sleep 0.2
    done
    echo $((SECONDS - start))
}

# with_rejects: copies stdin to stdout with an invalid event (no user_id,
# rejected as missing_user_id, each different) after every tenth line, so
# the dead-letter producer works all through a run.
with_rejects() {
    awk '{ print } NR % 10 == 0 { printf "{\"metadata\":{\"seq\":%d}}\n", NR }'
}
