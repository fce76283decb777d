#!/usr/bin/env bash
# demo.sh: what `make demo` runs.  Until `userpipe run` (the Kafka -> Moesif
# pipeline) exists, the demo runs the transform stage alone over the bundled
# sample events and says so.  Env: USERPIPE (the binary), BUILD.
set -euo pipefail
cd "$(dirname "$0")/.."
userpipe=${USERPIPE:-build/userpipe}
sample=deploy/dev/sample-events.ndjson

out=${BUILD:-build/release}/demo
mkdir -p "$out"

echo "userpipe demo: the pipeline (userpipe run) is not built yet;"
echo "running the transform stage alone over $sample"
echo
"$userpipe" transform --schema-out "$out/schema.json" --rejects "$out/rejects.ndjson" \
    <"$sample" >"$out/accepted.ndjson"
total=$(grep -cv '^[[:space:]]*$' "$sample" || true)
accepted=$(wc -l <"$out/accepted.ndjson")
rejected=$(wc -l <"$out/rejects.ndjson")
echo "events read:     $total"
echo "accepted:        $accepted   ($out/accepted.ndjson)"
echo "rejected:        $rejected   ($out/rejects.ndjson)"
echo "rejects by code:"
sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p' "$out/rejects.ndjson" | sort | uniq -c | sed 's/^/  /'
echo "types learned:   $(grep -o '":"' "$out/schema.json" | wc -l)   ($out/schema.json)"
echo
echo "first accepted event:"
head -n 1 "$out/accepted.ndjson" | sed 's/^/  /'
echo "first reject:"
head -n 1 "$out/rejects.ndjson" | cut -c1-300 | sed 's/^/  /'
