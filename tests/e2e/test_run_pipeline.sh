#!/usr/bin/env bash
# test_run_pipeline.sh: `userpipe run --from-beginning --exit-at-end` over
# the sample events, through the real binary, kafka-dev and moesif-dev:
# every valid event reaches moesif-dev exactly as transformed, merged
# profiles equal the expected ones, every invalid event is in the
# dead-letter topic with its code and headers, and the group's committed
# offsets are at the end, and the requests' User-Agent is
# userpipe/<version>.  The source topic has one partition so the file
# order is the consumption order (type claims depend on it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rec=$(mktemp)
dev_at_exit rm -f "$rec"
DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec" dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)
[ "$total" -eq "$(grep -c . "$SAMPLE")" ] || fail "loaded $total events"

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-basic
run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { cat "$DEV_TMP/run.log" >&2; fail "userpipe run exited $?"; }

check_delivery "$rec" || { tail -20 "$DEV_TMP/run.log" >&2; fail "delivery differs"; }

committed=$(group_committed_total e2e-basic users)
[ "$committed" -eq "$total" ] || fail "committed offsets sum to $committed, want $total"
grep -q "$APP_ID" "$DEV_TMP/run.log" && fail "the application id appears in the log"
# issue 11: the requests name the build, userpipe/<the version of --version>
version=$("$USERPIPE" --version | sed -n 's/^userpipe \([^ ]*\) (librdkafka .*)$/\1/p')
[ -n "$version" ] || fail "userpipe --version printed no version"
agent=$(curl -s "$MOESIF_URL/_dev/stats" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["user_agent"])')
[ "$agent" = "userpipe/$version" ] || fail "User-Agent '$agent', want 'userpipe/$version'"
grep -q 'msg="stopped"' "$DEV_TMP/run.log" || fail "no closing summary line"
echo "ok: $total events, committed $committed"
