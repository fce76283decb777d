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

sample_stack e2e-basic
run_userpipe "$DEV_TMP/run.log" -c "$CFG" --from-beginning --exit-at-end ||
    { cat "$DEV_TMP/run.log" >&2; fail "userpipe run exited $?"; }
# issue 11: the requests name the build, userpipe/<the version of --version>
check_sample_run e2e-basic "$DEV_TMP/run.log"
grep -q 'msg="stopped"' "$DEV_TMP/run.log" || fail "no closing summary line"
echo "ok: $TOTAL events, committed $COMMITTED"
