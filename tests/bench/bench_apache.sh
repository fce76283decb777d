#!/usr/bin/env bash
# bench_apache.sh: the pipeline part of `make bench` on a real Apache Kafka
# (issue 13): one KRaft node (deploy/dev/kafka/apache-kafka.sh), the same
# generated events as bench_pipeline.sh (gen_events.py, seed 7, about 470
# bytes each, keyed, BENCH_EVENTS of them: 1,000,000) in a topic of as many
# partitions as kafka-dev's (`kafka-dev plan`, at most 256), so both
# brokers serve the same topic; about a minute in all:
#
#   1. kcat's raw consume rate of that topic, 3 runs, the median: the
#      baseline of the ratio, measured here on this broker;
#   2. `userpipe run --from-beginning --exit-at-end` to moesif-dev, 3 runs,
#      each its own group, the median by events/s (processing time: first
#      partition assignment to exit, as in bench_pipeline.sh), CPU per
#      event (user+sys), peak RSS; each must deliver every valid event and
#      commit every offset, or the script fails;
#   3. a table of both brokers: this run's figures beside kafka-dev's from
#      bench_pipeline.sh (build/bench/pipeline-kafka-dev.txt, written by
#      that script earlier in the same `make bench`, less than two hours
#      ago); the ratios are what compare, each against its own broker's
#      kcat.
#
#   4. with BENCH_BASELINE=<another userpipe binary> (e.g. one built from
#      an older commit), step 2 runs that binary too, each of its 3 runs
#      right after the new binary's run of the same number so both share
#      the machine's moments, and prints both medians and new/baseline
#      ratios (issue 19: librdkafka 2.8.0 against 2.0.2).
#
# Env: BUILD, USERPIPE, BENCH_EVENTS (1000000), BENCH_SEED (7),
# BENCH_BASELINE (unset: no baseline runs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export DEV_KAFKA=apache
. "$ROOT/tests/e2e/lib.sh"
N=${BENCH_EVENTS:-1000000}
SEED=${BENCH_SEED:-7}
BENCH_NAME=bench_apache
. "$ROOT/tests/bench/bench_lib.sh" # say, die, now_ms, log_ms
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
[ -x "$USERPIPE" ] || die "USERPIPE=$USERPIPE is not built (make)"
[ -s "$ROOT/build/kafka/libs/.complete" ] || die "no Kafka jars: make kafka-jars"
t_start=$(now_ms)

say ""
say "== userpipe pipeline on Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/deploy/dev/kafka/pom.xml" | head -n 1) (one KRaft node; issue 13)"
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-apache.XXXXXX")
trap 'rm -rf "$W"' EXIT
/usr/bin/python3 "$ROOT/tests/e2e/gen_events.py" "$N" "$SEED" --bytes 470 >"$W/events.ndjson"
PARTS=$("$KAFKA_DEV" plan "$W/events.ndjson" | sed -n 's/.*\bneeded=\([0-9]*\).*/\1/p')
[ -n "$PARTS" ] || die "kafka-dev plan failed"
[ "$PARTS" -le 256 ] || PARTS=256
DEV_TOPICS="users:$PARTS users.dlq:1 userpipe-schema:1" dev_start || die "Apache Kafka did not start"
dev_at_exit "rm -rf '$W'"
cp "$USERPIPE" "$W/userpipe"
UP=$W/userpipe
BASE=
if [ -n "${BENCH_BASELINE:-}" ]; then
    [ -x "$BENCH_BASELINE" ] || die "BENCH_BASELINE=$BENCH_BASELINE is not an executable"
    cp "$BENCH_BASELINE" "$W/userpipe-baseline"
    BASE=$W/userpipe-baseline
    say "baseline:          $("$BASE" --version) beside $("$UP" --version)"
fi
VALID=$("$UP" transform --rejects /dev/null <"$W/events.ndjson" | wc -l)
t=$(now_ms)
LOAD_NO_CAP_CHECK=1 produce_file users "$W/events.ndjson" || die "loading the events failed"
load_ms=$(($(now_ms) - t))
[ "$(topic_count users)" -eq "$N" ] || die "users holds $(topic_count users) messages, not $N"
say "events:            $N ($VALID valid), $PARTS partitions, loaded in $(awk -v ms="$load_ms" 'BEGIN { printf "%.1f", ms / 1000 }') s; load average $(cut -d' ' -f1-3 /proc/loadavg)"

rates=""
for i in 1 2 3; do
    t=$(now_ms)
    c=$(kcat -C -b "$BOOTSTRAP" -t users -e -o beginning -q | wc -l)
    ms=$(($(now_ms) - t))
    [ "$c" -eq "$N" ] || die "kcat read $c messages, not $N"
    r=$(awk -v n="$c" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
    rates="$rates $r"
    say "kcat run $i:        $c messages in $(awk -v ms="$ms" 'BEGIN { printf "%.2f", ms / 1000 }') s = $r events/s"
done
KCAT=$(tr ' ' '\n' <<<"$rates" | grep . | median)
say "kcat raw rate:     $KCAT events/s (median)"

# run_one BIN RUNS-FILE LABEL: one backfill by BIN, its figures appended
run_one() {
    local bin=$1 runs=$2 label=$3 group wall user sys rss_kb up com a e secs rate us mb
    group="bench-apache-$label-$i-$$"
    write_config "$W/run.properties" "$group"
    curl -sf -X POST "$MOESIF_URL/_dev/reset" >/dev/null || die "moesif-dev refused the reset"
    /usr/bin/time -f '%e %U %S %M' -o "$W/time" env MOESIF_APPLICATION_ID="$APP_ID" \
        "$bin" run -c "$W/run.properties" --from-beginning --exit-at-end 2>"$W/run.log" ||
        { tail -n 5 "$W/run.log" >&2; die "$label run $i: userpipe exited non-zero"; }
    read -r wall user sys rss_kb <"$W/time"
    up=$(moesif_stat upserts)
    [ "$up" -eq "$VALID" ] || die "$label run $i: moesif-dev counted $up upserts, $VALID events are valid"
    com=$(group_committed_total "$group" users)
    [ "$com" -eq "$N" ] || die "$label run $i: group $group committed $com of $N"
    a=$(grep -m1 'msg="partition assigned"' "$W/run.log" | sed 's/^time=\([^ ]*\).*/\1/')
    e=$(grep '^time=' "$W/run.log" | tail -n 1 | sed 's/^time=\([^ ]*\).*/\1/')
    secs=$(awk -v a="$(log_ms "$a")" -v e="$(log_ms "$e")" 'BEGIN { printf "%.2f", (e - a) / 1000 }')
    rate=$(awk -v v="$VALID" -v s="$secs" 'BEGIN { printf "%.0f", v / s }')
    us=$(awk -v u="$user" -v s="$sys" -v v="$VALID" 'BEGIN { printf "%.2f", (u + s) * 1e6 / v }')
    mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
    echo "$rate $us $mb" >>"$runs"
    say "$(printf '%-18s' "$label run $i:") $rate events/s ($secs s from the first assignment to exit, wall $wall s), $us us CPU per event, peak RSS $mb MB; upserts $up = valid, committed $com = $N"
}

: >"$W/runs"
: >"$W/runs-baseline"
for i in 1 2 3; do
    run_one "$UP" "$W/runs" run
    if [ -n "$BASE" ]; then
        run_one "$BASE" "$W/runs-baseline" baseline
    fi
done
RATE=$(cut -d' ' -f1 "$W/runs" | median)
US=$(cut -d' ' -f2 "$W/runs" | median)
RSS=$(cut -d' ' -f3 "$W/runs" | sort -n | tail -n 1)
RATIO=$(awk -v r="$RATE" -v k="$KCAT" 'BEGIN { printf "%.3f", r / k }')
say "events/s:          $RATE (median of 3); ratio to kcat $RATIO ($RATE / $KCAT)"
if [ -n "$BASE" ]; then
    B_RATE=$(cut -d' ' -f1 "$W/runs-baseline" | median)
    B_US=$(cut -d' ' -f2 "$W/runs-baseline" | median)
    B_RSS=$(cut -d' ' -f3 "$W/runs-baseline" | sort -n | tail -n 1)
    say ""
    say "== this binary against the baseline, same broker, same run (medians of 3, interleaved)"
    printf '%-40s %10s %9s %8s\n' binary "events/s" "CPU us/ev" "RSS MB"
    printf '%-40s %10s %9s %8s\n' "baseline: $("$BASE" --version)" "$B_RATE" "$B_US" "$B_RSS"
    printf '%-40s %10s %9s %8s\n' "$("$UP" --version)" "$RATE" "$US" "$RSS"
    printf '%-40s %10s %9s %8s\n' "new / baseline" \
        "$(awk -v a="$RATE" -v b="$B_RATE" 'BEGIN { printf "%.3f", a / b }')" \
        "$(awk -v a="$US" -v b="$B_US" 'BEGIN { printf "%.3f", a / b }')" \
        "$(awk -v a="$RSS" -v b="$B_RSS" 'BEGIN { printf "%.3f", a / b }')"
fi
say ""
say "== both brokers (ratio: userpipe / kcat on the same broker, same run)"
printf '%-26s %9s %10s %10s %7s %9s %8s\n' broker events "kcat ev/s" "userpipe" ratio "CPU us/ev" "RSS MB"
kd=$ROOT/build/bench/pipeline-kafka-dev.txt
if [ -s "$kd" ] && [ $(($(date +%s) - $(awk '{ print $8 }' "$kd"))) -lt 7200 ]; then
    awk '{ printf "%-26s %9s %10s %10s %7s %9s %8s\n", "kafka-dev (mock, 3 brokers)", $2, $3, $4, $5, $6, $7 }' "$kd"
else
    say "kafka-dev: no figures from bench_pipeline.sh in the last two hours (make bench runs it first)"
fi
printf '%-26s %9s %10s %10s %7s %9s %8s\n' "Apache Kafka (1 node)" "$N" "$KCAT" "$RATE" "$RATIO" "$US" "$RSS"
say "bench_apache: done in $(awk -v ms=$(($(now_ms) - t_start)) 'BEGIN { printf "%.0f", ms / 1000 }') s"
