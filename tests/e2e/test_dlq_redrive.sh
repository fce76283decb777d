#!/usr/bin/env bash
# test_dlq_redrive.sh: `userpipe dlq stats` counts the dead-letter records
# by code; after a fix (here: unknown top-level fields are moved under
# metadata instead of rejected), `dlq redrive --dry-run` says how many would
# pass, `dlq redrive --code unknown_field` sends exactly those records back
# to their source topic byte for byte, the pipeline then delivers them, and
# a second redrive sends nothing again (its group committed): exactly once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rec=$(mktemp)
dev_at_exit rm -f "$rec"
DEV_TOPICS="users:1 users.dlq:1 userpipe-schema:1" MOESIF_DEV_ARGS="--record $rec" dev_start
produce_file users "$SAMPLE"
total=$(topic_count users)
cfg=$DEV_TMP/run.properties
write_config "$cfg" e2e-redrive
run_userpipe "$DEV_TMP/run1.log" -c "$cfg" --from-beginning --exit-at-end || fail "first run failed"

"$USERPIPE" transform --rejects "$DEV_TMP/rejects.ndjson" <"$SAMPLE" >/dev/null
want=$(grep -c '"code":"unknown_field"' "$DEV_TMP/rejects.ndjson" || true)
[ "$want" -gt 0 ] || fail "the sample has no unknown_field reject"
"$USERPIPE" dlq stats -c "$cfg" >"$DEV_TMP/stats.txt" || fail "dlq stats failed"
grep -Eq "^  unknown_field +$want\$" "$DEV_TMP/stats.txt" || { cat "$DEV_TMP/stats.txt" >&2; fail "stats do not count $want unknown_field"; }
grep -Eq "^  users +$(topic_count users.dlq)\$" "$DEV_TMP/stats.txt" || fail "stats by source topic"
grep -Eq "^  under 1 hour +$(topic_count users.dlq)\$" "$DEV_TMP/stats.txt" || fail "stats by age"

# the fix, then a dry run: nothing produced
echo "transform.unknown_fields=metadata" >>"$cfg"
"$USERPIPE" dlq redrive -c "$cfg" --code unknown_field --dry-run >"$DEV_TMP/dry.txt" || fail "dry run failed"
grep -q "$want of .* chosen; $want would pass now" "$DEV_TMP/dry.txt" || { cat "$DEV_TMP/dry.txt" >&2; fail "dry run figures"; }
[ "$(topic_count users)" -eq "$total" ] || fail "the dry run produced records"

"$USERPIPE" dlq redrive -c "$cfg" --code unknown_field --since 1h >"$DEV_TMP/redrive.txt" || fail "redrive failed"
grep -q "redriven $want of $want" "$DEV_TMP/redrive.txt" || { cat "$DEV_TMP/redrive.txt" >&2; fail "redrive figures"; }
[ "$(topic_count users)" -eq $((total + want)) ] || fail "redrive produced $(( $(topic_count users) - total )) records, want $want"
# byte for byte, with the original key
consume_all_json users | /usr/bin/python3 -c '
import json, sys
msgs = [json.loads(l) for l in sys.stdin]
orig, back = msgs[:-int(sys.argv[1])], msgs[-int(sys.argv[1]):]
for m in back:
    assert any(o["payload"] == m["payload"] and o["key"] == m["key"] for o in orig), m["payload"][:80]
' "$want" || fail "redriven records differ from the originals"

before=$(moesif_stat upserts)
run_userpipe "$DEV_TMP/run2.log" -c "$cfg" --exit-at-end || fail "second run failed"
[ "$(moesif_stat upserts)" -eq $((before + want)) ] || fail "the redriven events were not delivered once each"
"$USERPIPE" dlq redrive -c "$cfg" --code unknown_field >"$DEV_TMP/again.txt" || fail "second redrive failed"
grep -q "redriven 0 of 0" "$DEV_TMP/again.txt" || { cat "$DEV_TMP/again.txt" >&2; fail "a second redrive sent records again"; }
echo "ok: $want unknown_field records redriven once and delivered"
