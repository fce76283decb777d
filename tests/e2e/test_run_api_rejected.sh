#!/usr/bin/env bash
# test_run_api_rejected.sh: Moesif answers 400 to every batch that holds
# one particular user's update (moesif-dev --refuse-user): the sink bisects
# the batch, only that user's events go to the dead-letter topic as
# api_rejected (with the status and the response body), every other event
# is delivered.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# the user with the fewest accepted events in the sample, and how many
read -r bad nbad < <("$USERPIPE" transform <"$SAMPLE" 2>/dev/null | /usr/bin/python3 -c '
import collections, json, sys
c = collections.Counter(json.loads(l)["user_id"] for l in sys.stdin)
n = min(c.values())
print(sorted(u for u, k in c.items() if k == n)[0], n)')
[ -n "$bad" ] || fail "no user in the sample"

rec=$(mktemp)
dev_at_exit rm -f "$rec"
DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec --refuse-user $bad" dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-400 batch.linger_ms=500
run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero"; }

check_delivery "$rec" --api-rejected "$bad" || fail "delivery differs"
consume_all_json users.dlq | /usr/bin/python3 -c '
import json, sys
bad = sys.argv[1]
n = 0
for line in sys.stdin:
    m = json.loads(line)
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    if h["userpipe.error.code"] != "api_rejected":
        continue
    n += 1
    assert json.loads(m["payload"])["user_id"] == bad, m["payload"][:100]
    assert m["key"] == bad, m["key"]
    msg = h["userpipe.error.message"]
    assert "400" in msg and "refuse" in msg, msg
assert n == int(sys.argv[2]), "%d api_rejected records" % n
print("api_rejected: %d record(s) for %s" % (n, bad))' "$bad" "$nbad" || fail "api_rejected records wrong"
committed=$(group_committed_total e2e-400 users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"
echo "ok: only the refused event was dead-lettered"
