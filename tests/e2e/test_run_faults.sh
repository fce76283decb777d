#!/usr/bin/env bash
# test_run_faults.sh: with 20% of Moesif's answers 429 (with Retry-After)
# or 500, `userpipe run` retries and the outcome is the same as without
# faults: every valid event delivered exactly as transformed, every reject
# in the dead-letter topic, offsets committed to the end, nothing lost.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rec=$(mktemp)
dev_at_exit rm -f "$rec"
DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" \
    MOESIF_DEV_ARGS="--record $rec --fail-429 0.1 --fail-500 0.1 --retry-after 1 --seed 7" \
    dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-faults sink.retry_backoff_ms=50
run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end ||
    { tail -20 "$DEV_TMP/run.log" >&2; fail "userpipe run exited non-zero"; }

check_delivery "$rec" || fail "delivery differs under faults"
stats=$(curl -sf "$MOESIF_URL/_dev/stats")
/usr/bin/python3 - "$stats" <<'PY' || fail "moesif-dev did not inject both faults"
import json, sys
r = json.loads(sys.argv[1])["responses"]
assert r.get("429", 0) > 0 and r.get("500", 0) > 0, r
print("faults injected: %s" % r)
PY
grep -Eq 'retries=[1-9]' "$DEV_TMP/run.log" || fail "the summary counts no retry"
committed=$(group_committed_total e2e-faults users)
[ "$committed" -eq "$total" ] || fail "committed $committed of $total"
echo "ok: faults retried, nothing lost"
