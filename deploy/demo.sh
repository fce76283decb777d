#!/usr/bin/env bash
# demo.sh: what `make demo` runs: the main job on the embedded dev stack.
# Starts kafka-dev and moesif-dev on loopback, loads the bundled sample
# events into the topic `users`, runs
#   userpipe run --from-beginning --exit-at-end
# and prints what a person wants to see: users upserted and batches (as
# moesif-dev counted them), rejects by code (read back from the dead-letter
# topic), one merged profile as moesif-dev holds it.  Then it stops the
# stack.  Env: USERPIPE (the binary), BUILD.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export BUILD=${BUILD:-build/release}
USERPIPE=${USERPIPE:-$ROOT/build/userpipe}
SAMPLE=deploy/dev/sample-events.ndjson
export DEV_DIR=$ROOT/$BUILD/demo-dev
OUT=$ROOT/$BUILD/demo
mkdir -p "$OUT"

stop_stack() {
    bash deploy/dev/dev-down.sh >/dev/null 2>&1 || true
}
trap stop_stack EXIT

if [ "${DEV_KAFKA:-dev}" = apache ]; then
    echo "== starting the dev stack (Apache Kafka, moesif-dev) on loopback"
else
    echo "== starting the dev stack (kafka-dev, moesif-dev) on loopback"
fi
DEV_TOPICS="users:8 users.dlq:1 userpipe-schema:1" bash deploy/dev/dev-up.sh >"$OUT/dev-up.log" ||
    { cat "$OUT/dev-up.log" >&2; exit 1; }
BOOTSTRAP=$(cat "$DEV_DIR/bootstrap.servers")
MOESIF_URL=$(cat "$DEV_DIR/moesif.url")
APP_ID=$(cat "$DEV_DIR/app_id")
echo "   kafka  $BOOTSTRAP"
echo "   moesif $MOESIF_URL"

echo "== loading $SAMPLE into topic users ($(grep -c . "$SAMPLE") events)"
bash deploy/dev/load-topic.sh users "$SAMPLE" >"$OUT/load.log"

cat >"$OUT/userpipe.properties" <<EOF
kafka.bootstrap.servers=$BOOTSTRAP
kafka.group.id=userpipe-demo
source.topics=users
moesif.base_url=$MOESIF_URL
batch.linger_ms=200
metrics.listen=off
EOF
echo "== userpipe run -c $OUT/userpipe.properties --from-beginning --exit-at-end"
echo "   (the application id comes from MOESIF_APPLICATION_ID; the dev group"
echo "   coordinator waits about 3 s before the first assignment)"
start=$(date +%s%N)
MOESIF_APPLICATION_ID=$APP_ID "$USERPIPE" run -c "$OUT/userpipe.properties" \
    --from-beginning --exit-at-end 2>"$OUT/run.log" || {
    echo "userpipe run failed; its log:" >&2
    tail -20 "$OUT/run.log" >&2
    exit 1
}
ms=$((($(date +%s%N) - start) / 1000000))
echo "   done in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s; log in $OUT/run.log"
echo

stats=$(curl -sf "$MOESIF_URL/_dev/stats")
kcat -C -b "$BOOTSTRAP" -t users.dlq -o beginning -e -q -J >"$OUT/dlq.json"
/usr/bin/python3 - "$stats" "$OUT/dlq.json" "$MOESIF_URL" <<'PY'
import collections, json, sys, urllib.request
stats = json.loads(sys.argv[1])
codes = collections.Counter()
for line in open(sys.argv[2]):
    m = json.loads(line)
    h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
    codes[h["userpipe.error.code"]] += 1
print("Moesif (moesif-dev) received:")
print("  user updates upserted  %d" % stats["upserts"])
print("  distinct users         %d" % stats["users"])
print("  batches                %d" % stats["batches"])
print("  type conflicts lost    %d   (userpipe sends none)" % stats["conflicts"])
print("Dead-letter topic users.dlq: %d rejects" % sum(codes.values()))
for code, n in sorted(codes.items(), key=lambda kv: -kv[1]):
    print("  %-20s %d" % (code, n))
uid = "usr_00025"
with urllib.request.urlopen(sys.argv[3] + "/_dev/users/" + uid) as r:
    prof = json.loads(r.read())
print("One merged profile, as moesif-dev holds it (GET /_dev/users/%s):" % uid)
print(json.dumps(prof, indent=2, ensure_ascii=False)[:2000])
PY
echo
echo "userpipe's own summary:"
grep 'msg="stopped"' "$OUT/run.log" | sed 's/^/  /'
echo
echo "== stopping the dev stack"
