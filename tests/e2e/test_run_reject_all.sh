#!/usr/bin/env bash
# test_run_reject_all.sh (issue 20): moesif-dev answers 400 to every
# request (--status 400, as a WAF or a proxy would).  Bisection finds every
# event of each batch refused singly; after sink.reject_all_batches (3)
# such batches in a row userpipe stops with exit 3 and a sentence naming
# the status and the response body, having dead-lettered as api_rejected
# at most the events of the first two batches (batch.max_events=20: 40),
# and every committed offset is covered: each message below it is in the
# dead-letter topic.  Before issue 20 the whole stream went to the
# dead-letter topic and the run ended 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--status 400" dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-400-all batch.max_events=20
rc=0
run_userpipe "$DEV_TMP/run.log" -c "$cfg" --from-beginning --exit-at-end || rc=$?
[ "$rc" -eq 3 ] || { tail -20 "$DEV_TMP/run.log" >&2; fail "exit $rc, want 3"; }
grep 'level=error' "$DEV_TMP/run.log" | grep -q 'refused every event of 3 batches in a row.*HTTP 400.*injected_fault.*sink.reject_all_batches' ||
    { grep level=error "$DEV_TMP/run.log" >&2; fail "no sentence with the status and the body"; }

consume_all_json users.dlq >"$DEV_TMP/dlq.json"
consume_all_json users >"$DEV_TMP/source.json"
committed=$(group_committed_total e2e-400-all users)
/usr/bin/python3 - "$DEV_TMP/dlq.json" "$committed" "$total" <<'EOF'
import json, sys
dlq_path, committed, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
api, offsets = 0, set()
for l in open(dlq_path):
    m = json.loads(l)
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    offsets.add(int(h["userpipe.source.offset"]))
    if h["userpipe.error.code"] == "api_rejected":
        api += 1
        assert "400" in h["userpipe.error.message"], h
assert api <= 40, "%d api_rejected records, want at most 2 batches (40)" % api
missing = [o for o in range(committed) if o not in offsets]
assert not missing, "committed %d but offsets %s are in no record" % (
    committed, missing[:5])
assert committed < total, "committed everything (%d)" % committed
print("ok: exit 3, %d api_rejected records (at most 40), committed %d of %d,"
      " each below it dead-lettered" % (api, committed, total))
EOF
