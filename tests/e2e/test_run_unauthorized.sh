#!/usr/bin/env bash
# test_run_unauthorized.sh: a wrong application id (Moesif answers 401)
# stops the pipeline with a non-zero exit and a sentence naming the
# setting to fix; no offset is committed, nothing reaches Moesif.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" dev_start
produce_file users "$SAMPLE"
cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-401
set +e
MOESIF_APPLICATION_ID=not-the-right-id timeout 120 "$USERPIPE" run -c "$cfg" \
    --from-beginning --exit-at-end 2>"$DEV_TMP/run.log"
rc=$?
set -e
[ $rc -eq 3 ] || { tail "$DEV_TMP/run.log" >&2; fail "exit status $rc, want 3 (Moesif refused the configuration)"; }
grep -q "moesif.application_id" "$DEV_TMP/run.log" ||
    { tail "$DEV_TMP/run.log" >&2; fail "the message does not name moesif.application_id"; }
grep -q "not-the-right-id" "$DEV_TMP/run.log" && fail "the application id appears in the log"
offsets=$(group_offsets e2e-401 users)
echo "$offsets" | grep -qv " none$" && fail "offsets were committed: $offsets"
[ "$(moesif_stat upserts)" -eq 0 ] || fail "moesif-dev stored users"
echo "ok: exit $rc, $(grep -o 'moesif.application_id[^"]*' "$DEV_TMP/run.log" | head -1)"
