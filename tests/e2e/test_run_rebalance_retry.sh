#!/usr/bin/env bash
# test_run_rebalance_retry.sh (issue 11): a rebalance while batches wait
# out a long Retry-After.  Instance A consumes a topic of four partitions
# of few, often repeated users; moesif-dev then answers 429 with
# Retry-After: 30 to everything, and instance B joins the group.  The
# 429s stop as the rebalance begins; A's drain (shutdown.drain_timeout_ms
# =2000) cannot settle the batches that wait out their 30 s, so it gives
# its partitions up with events unsettled, and B (and A, for the
# partitions it gets back) consume them again from the last commit and
# deliver them within seconds.  A must drop what it gave up: retried 30 s
# later (as before the fix), older updates reached Moesif after the new
# owner had delivered the users' newer ones.  Checked: once the group has
# committed the end and moesif-dev holds every event, nothing more reaches
# it (before the fix, A's retries of 6,000+ events did); every user's last
# update recorded is its latest, and its updates go back at most once (the
# new owner's replay from the commit); nothing lost (at least once).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

INPUT=$(mktemp)
rec=$(mktemp)
dev_at_exit rm -f "$INPUT" "$rec"
/usr/bin/python3 "$E2E_ROOT/tests/e2e/gen_events.py" 20000 11 --users 400 >"$INPUT"
export INPUT
DEV_TOPICS="users:4 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec --latency-ms 20" dev_start
produce_file users "$INPUT"
total=$(topic_count users)
want=$("$USERPIPE" transform <"$INPUT" 2>/dev/null | wc -l)

cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-rebalance sink.max_in_flight=2 batch.max_events=50 \
    shutdown.drain_timeout_ms=2000
start_userpipe "$DEV_TMP/a.log" -c "$cfg" --from-beginning
a=$UP_PID
wait_for "A to deliver a tenth of the events" 120 upserts_at_least $((want / 10))
curl -sf -X POST "$MOESIF_URL/_dev/faults?fail_429=1&retry_after=30" >/dev/null ||
    fail "moesif-dev refused the 429 fault"
faulted=$(date +%s)
start_userpipe "$DEV_TMP/b.log" -c "$cfg" --from-beginning
b=$UP_PID
a_revoked() { grep -q 'msg="partitions revoked' "$DEV_TMP/a.log"; }
wait_for "the rebalance to take A's partitions" 120 a_revoked
curl -sf -X POST "$MOESIF_URL/_dev/faults?fail_429=0" >/dev/null || fail "moesif-dev refused to clear the fault"
b_assigned() { grep -q 'partition assigned' "$DEV_TMP/b.log"; }
wait_for "B to get partitions" 60 b_assigned
grep -q 'msg="events of given-up partitions dropped unsent"' "$DEV_TMP/a.log" ||
    fail "A did not drop the events of the partitions it gave up"
committed_all() { [ "$(group_committed_total e2e-rebalance users)" -eq "$total" ]; }
wait_for "the group's commits to reach the end" 120 committed_all
wait_for "every valid event in moesif-dev" 60 upserts_at_least "$want"
delivered=$(wc -l <"$rec")
# past A's Retry-After: a batch A kept would have been sent again by now
left=$((faulted + 36 - $(date +%s)))
[ "$left" -le 0 ] || sleep "$left"
late=$(($(wc -l <"$rec") - delivered))
[ "$late" -eq 0 ] || fail "$late updates reached moesif-dev after the new owners had delivered everything (a given-up partition's events retried)"
kill -TERM "$a" "$b"
wait "$a" || { tail -20 "$DEV_TMP/a.log" >&2; fail "instance A exited non-zero"; }
wait "$b" || { tail -20 "$DEV_TMP/b.log" >&2; fail "instance B exited non-zero"; }
/usr/bin/python3 - "$INPUT" "$rec" <<'PY' || fail "per-user order broken through the rebalance"
import json, sys
latest = {}
for line in open(sys.argv[1]):
    ev = json.loads(line)
    latest[ev["user_id"]] = ev["metadata"]["seq"]
last, jumps = {}, {}
for line in open(sys.argv[2]):
    ev = json.loads(line)
    u, s = ev["user_id"], ev["metadata"]["seq"]
    if u in last and s < last[u]:
        jumps[u] = jumps.get(u, 0) + 1
    last[u] = s
# at least once: the partition's next owner replays from the last commit,
# one step back per user; a second step back is an old owner's late resend
twice = sorted((n, u) for u, n in jumps.items() if n > 1)
if twice:
    print("users whose updates went back more than once (a given-up partition's events resent after its new owner's):", len(twice), twice[-5:], file=sys.stderr)
    sys.exit(1)
stale = [(u, last.get(u), s) for u, s in latest.items() if last.get(u) != s]
if stale:
    print("stale users (user, last recorded seq, latest seq):", stale[:10], len(stale), file=sys.stderr)
    sys.exit(1)
print("every user's last recorded update is its latest (%d users)" % len(latest))
PY
check_delivery "$rec" --at-least-once || fail "events lost in the rebalance"
echo "ok: per-user order through a rebalance during a 30 s Retry-After"
