#!/usr/bin/env bash
# bench_pipeline.sh: the pipeline part of `make bench` (issue 4).  One run
# of this script prints every figure, all measured here:
#
#   1. N events (default 1,000,000, about 470 bytes each, keyed by user_id;
#      tests/e2e/gen_events.py) loaded into kafka-dev, in a `users` topic of
#      as many partitions as `kafka-dev plan` says the 5 MiB cap needs;
#   2. the raw consume rate of that topic by kcat (`kcat -C -e -o
#      beginning`), the baseline of the ratio;
#   3. `userpipe run --from-beginning --exit-at-end` against moesif-dev,
#      BENCH_FREE_RUNS times (3): events/s, CPU us per event, peak RSS,
#      ratio to kcat, from the median run (the machine is shared and one
#      run can be 10-15% off the others, as kcat's can);
#   4. the same with moesif-dev answering 429 to every request for 30 s;
#   5. the same with 5% of requests answered 429 and 1% 500, all along;
#   6. the same with sink.gzip_level=6 and sink.gzip=false (the fault-free
#      runs of 3 are the default, level 1);
#   7. "repeating users" (issue 12): N events of N/4 users drawn
#      uniformly, keyed, in a topic of as many partitions as kafka-dev's
#      plan needs and at least 24 (BENCH_REP_PARTITIONS) on the 3 brokers,
#      fault-free and with 5% 429 + 1% 500; then the same topic through
#      moesif-dev with latency_ms=50, and at 0, 20 and 100 ms for
#      deploy/SCALING.md's curve, each with its ratio to lanes x
#      batch.max_events / latency.  (Until this change the fault-free and
#      faulty runs used 200,000 events in 24 partitions: a 1.6 s run whose
#      tail and start weighed five times as much as in today's workload's
#      1M, so its whole-run ratio compared unlike lengths.)
#      Every run prints events per batch (mean and p10 of the batches
#      userpipe sealed, from its summary line, and the mean of those sealed
#      while the backlog lasted, which the fill target is about: a
#      backfill's tail sends what it holds) beside requests, events/s,
#      CPU us per event and peak RSS.
#
# Every run has its own consumer group and starts from a reset moesif-dev,
# and must end with moesif-dev's `upserts` equal to the number of valid
# events (counted once with `userpipe transform`) and the group's committed
# offsets at the end of the topic, or the script fails.
# Targets are printed beside the figures (MISS does not fail the script).
#
# Rates: "events/s" is valid events over the time from the first partition
# assignment to the exit (userpipe's own log), so kafka-dev's fixed 3 s
# wait before a new group's first assignment (deploy/dev/README.md) is left
# out, as kcat (no group) never pays it; the wall time with it is printed
# too.  CPU is user+sys of the whole process (every thread) from
# /usr/bin/time; peak RSS is its maximum resident set (VmHWM).  The
# machine is shared: the load average and the CPU that moesif-dev and
# kafka-dev spent during each run are printed with it.
#
# Env: BUILD (build/release), USERPIPE (build/userpipe; copied once, so a
# rebuild during the bench changes nothing), BENCH_EVENTS (1000000),
# BENCH_SEED (7), BENCH_MAX_PARTITIONS (256: above it, fewer events are
# loaded and the output says so), BENCH_FAULT_SECONDS (30), BENCH_FREE_RUNS (3),
# BENCH_RUN_TIMEOUT (600 s per run), BENCH_PERF=1 (perf record the
# fault-free run and print its top entries), BENCH_KEEP=1 (keep the work
# folder).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ROOT/tests/e2e/lib.sh" # dev.sh (dev_start...), write_config, moesif_stat

N=${BENCH_EVENTS:-1000000}
SEED=${BENCH_SEED:-7}
EVENT_BYTES=470
MAX_PARTITIONS=${BENCH_MAX_PARTITIONS:-256}
FAULT_SECONDS=${BENCH_FAULT_SECONDS:-30}
FREE_RUNS=${BENCH_FREE_RUNS:-3}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-600}
BENCH_PERF=${BENCH_PERF:-0}

REP_PARTITIONS=${BENCH_REP_PARTITIONS:-24}
LAT_CURVE=${BENCH_LATENCIES:-0 20 50 100}

# targets of issue 4
T_CPU_US=5
T_RATIO=0.5
T_RSS_MB=128
T_FAULT_RATIO=0.8
# targets of issue 12
T_FILL=0.9       # events per batch / batch.max_events, every workload
T_LAT_RATIO=0.8  # the 50 ms run / lanes x batch / latency
T_REP_US=4       # CPU us per event, repeating users, fault-free
T_REP_RATE=0.9   # repeating users events/s / today's workload's
T_REP_FAULT=0.9  # repeating users 5% 429 + 1% 500 steady / fault-free

BENCH_NAME=bench_pipeline
. "$ROOT/tests/bench/bench_lib.sh" # say, die, now_ms, log_ms
# utime+stime of a process in clock ticks (0 once gone)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
TCK=$(getconf CLK_TCK)

for tool in kcat curl /usr/bin/time /usr/bin/python3 pgrep; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
[ -x "$USERPIPE" ] || die "USERPIPE=$USERPIPE is not built (make)"
[ -x "$KAFKA_DEV" ] || die "$KAFKA_DEV is not built (make)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-pipeline.XXXXXX")
if [ "${BENCH_KEEP:-0}" = 1 ]; then
    trap 'echo "bench_pipeline: kept $WORK" >&2' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
# one binary for every run, whatever happens to the build meanwhile
cp "$USERPIPE" "$WORK/userpipe"
UP=$WORK/userpipe
bench_t0=$(now_ms)

say "== userpipe pipeline benchmark (issue 4)"
say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start (shared: other work takes cores)"
say "binary: $USERPIPE ($(stat -c %s "$USERPIPE") bytes, built $(date -r "$USERPIPE" '+%F %T'); git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- core cmd ingest sink transform schemas 2>/dev/null || echo ' with uncommitted changes in the pipeline sources'))"

# ---- 1. data, partitions, load ------------------------------------------

t=$(now_ms)
/usr/bin/python3 "$ROOT/tests/e2e/gen_events.py" "$N" "$SEED" --bytes "$EVENT_BYTES" >"$WORK/events.ndjson"
gen_ms=$(($(now_ms) - t))
plan=$("$KAFKA_DEV" plan "$WORK/events.ndjson")
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
needed=$(field needed "$plan")
[ -n "$needed" ] || die "kafka-dev plan said: $plan"
note=""
if [ "$needed" -gt "$MAX_PARTITIONS" ]; then
    # fewer events, the largest count that fits MAX_PARTITIONS
    n2=$((N * MAX_PARTITIONS / needed))
    while :; do
        head -n "$n2" "$WORK/events.ndjson" >"$WORK/events.cut"
        "$KAFKA_DEV" plan --partitions "$MAX_PARTITIONS" "$WORK/events.cut" >/dev/null && break
        n2=$((n2 * 97 / 100))
    done
    mv "$WORK/events.cut" "$WORK/events.ndjson"
    note="NOTE: $N events need $needed partitions, above BENCH_MAX_PARTITIONS=$MAX_PARTITIONS: $n2 events loaded instead"
    N=$n2
    needed=$MAX_PARTITIONS
    plan=$("$KAFKA_DEV" plan --partitions "$needed" "$WORK/events.ndjson" || true)
fi
bytes=$(stat -c %s "$WORK/events.ndjson")

# valid events, counted once by the transform the pipeline runs
"$UP" transform --rejects "$WORK/rejects.ndjson" <"$WORK/events.ndjson" >"$WORK/accepted.ndjson" ||
    die "userpipe transform failed on the generated events"
VALID=$(wc -l <"$WORK/accepted.ndjson")
INVALID=$(wc -l <"$WORK/rejects.ndjson")
rm -f "$WORK/accepted.ndjson"
[ "$VALID" -gt 0 ] || die "no valid event in the generated data"

# the repeating-users data (issue 12), L: N events of N/4 users, for the
# repeating-users runs and the latency runs
N_L=$N
/usr/bin/python3 "$ROOT/tests/e2e/gen_events.py" "$N_L" "$SEED" --bytes "$EVENT_BYTES" --users $((N_L / 4)) >"$WORK/events_l.ndjson"
plan_l=$("$KAFKA_DEV" plan "$WORK/events_l.ndjson")
P_L=$(field needed "$plan_l")
[ "$P_L" -ge "$REP_PARTITIONS" ] || P_L=$REP_PARTITIONS
[ "$P_L" -le "$MAX_PARTITIONS" ] || die "the latency data needs $P_L partitions, above BENCH_MAX_PARTITIONS (fewer BENCH_EVENTS)"
valid_of() {
    "$UP" transform --rejects /dev/null <"$1" | wc -l
}
VALID_L=$(valid_of "$WORK/events_l.ndjson")

dev_start "users:$needed" "users_l:$P_L" || die "the dev stack did not start with users:$needed users_l:$P_L"
[ "${BENCH_KEEP:-0}" = 1 ] || dev_at_exit "rm -rf '$WORK'"
# a run still going when the script fails: stopped by its pid, and only
# if that pid is still our copy of the binary
CURRENT_UPID=""
kill_current() {
    if [ -n "$CURRENT_UPID" ] && tr '\0' ' ' <"/proc/$CURRENT_UPID/cmdline" 2>/dev/null | grep -q "^$UP run"; then
        kill "$CURRENT_UPID"
    fi
}
dev_at_exit kill_current
MOESIF_PID=$(cat "$DEV_DIR/moesif-dev.pid")
KAFKA_PID=$(cat "$DEV_DIR/kafka-dev.pid")

t=$(now_ms)
produce_file users "$WORK/events.ndjson" || die "loading the events failed (see above)"
load_ms=$(($(now_ms) - t))
loaded=$(topic_count users)
[ "$loaded" -eq "$N" ] || die "users holds $loaded messages, not $N"
kafka_ctl check users >/dev/null || die "kafka-dev dropped data: $(kafka_ctl check users 2>&1)"
for t in users_l; do
    produce_file "$t" "$WORK/events_${t#users_}.ndjson" || die "loading $t failed (see above)"
    kafka_ctl check "$t" >/dev/null || die "kafka-dev dropped data: $(kafka_ctl check "$t" 2>&1)"
done
[ "$(topic_count users_l)" -eq "$N_L" ] || die "users_l holds $(topic_count users_l) messages, not $N_L"

say ""
# the defaults, from the key table the binary reads
default_of() {
    "$UP" config-reference | awk -F'|' -v k="\`$1\`" '{ gsub(/ /, "", $2) } $2 == k { gsub(/ /, "", $4); print $4 }'
}
GZ_DEFAULT=$(default_of sink.gzip_level)
LANES_DEFAULT=$(default_of sink.max_in_flight)
if [ "$GZ_DEFAULT" = 6 ]; then GZ_OTHER=1; else GZ_OTHER=6; fi

say "== data"
[ -z "$note" ] || say "$note"
awk -v n="$N" -v b="$bytes" -v v="$VALID" -v i="$INVALID" -v ms="$gen_ms" 'BEGIN {
    printf "events:            %d (%.0f bytes each on average, %.1f MB), generated in %.1f s (gen_events.py)\n", n, (b - n) / n, b / 1e6, ms / 1000
    printf "valid events:      %d (userpipe transform; %d rejected)\n", v, i }'
say "partitions:        $needed (kafka-dev plan: $plan)"
awk -v n="$N" -v ms="$load_ms" -v p="$needed" 'BEGIN {
    printf "load:              %.1f s, %.0f events/s (load-topic.sh: kcat -K, acks=all; no partition dropped data)\n", ms / 1000, n / (ms / 1000) }'

# ---- 2. kcat baseline ------------------------------------------------------

say ""
say "== kcat baseline: kcat -C -b BOOTSTRAP -t users -e -o beginning -q | wc -l (3 runs, median)"
kcat_rates=()
for i in 1 2 3; do
    t=$(now_ms)
    c=$(/usr/bin/time -f '%U %S %M' -o "$WORK/kcat.time" \
        kcat -C -b "$BOOTSTRAP" -t users -e -o beginning -q | wc -l)
    ms=$(($(now_ms) - t))
    [ "$c" -eq "$N" ] || die "kcat read $c messages, not $N"
    read -r ku ks km <"$WORK/kcat.time"
    r=$(awk -v n="$c" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
    kcat_rates+=("$r")
    awk -v i="$i" -v n="$c" -v ms="$ms" -v u="$ku" -v s="$ks" -v m="$km" 'BEGIN {
        printf "kcat run %d:        %d messages in %.2f s = %.0f events/s (kcat CPU %.2f us/event, RSS %.0f MB)\n", i, n, ms / 1000, n / (ms / 1000), (u + s) * 1e6 / n, m / 1024 }'
done
KCAT_RATE=$(printf '%s\n' "${kcat_rates[@]}" | sort -n | sed -n 2p)
say "kcat raw rate:     $KCAT_RATE events/s (median)"

# ---- the pipeline runs -------------------------------------------------------

moesif_post() {
    curl -sf -X POST "$MOESIF_URL$1" >/dev/null || die "moesif-dev refused POST $1"
}

# stat_of FILE PATH: a member of a saved /_dev/stats answer ("upserts",
# "responses.429"); 0 when absent
stat_of() {
    /usr/bin/python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k, 0) if isinstance(v, dict) else 0
print(v)' "$1" "$2"
}

# run_pipeline NAME [key=value]...: one `userpipe run --from-beginning
# --exit-at-end` over the topic, its own group, moesif-dev reset first.
# FAULTS (query string) is set on moesif-dev for the whole run;
# FAULT429_AT (upserts) starts a FAULT_SECONDS window of fail_429=1 once
# moesif-dev has that many upserts.  Sets the R_* figures; fails loudly
# unless it exits 0 with upserts == VALID.
run_pipeline() {
    local name=$1
    shift
    local cfg=$WORK/$name.properties log=$WORK/$name.log tf=$WORK/$name.time
    local group="bench-$name-$$-$RANDOM"
    local tpid upid rc t0 t_end m0 k0 line
    local f_start=0 f_end=0 f_rss0=0 f_rssmax=0 rss_max=0 rss

    write_config "$cfg" "$group" "$@"
    moesif_post "/_dev/faults?fail_429=0&fail_500=0&fail_503=0&latency_ms=0&status=0&seed=1"
    moesif_post "/_dev/reset"
    [ -z "${FAULTS:-}" ] || moesif_post "/_dev/faults?$FAULTS"
    R_LOAD=$(cut -d' ' -f1 /proc/loadavg)
    m0=$(cpu_ticks "$MOESIF_PID")
    k0=$(cpu_ticks "$KAFKA_PID")
    t0=$(now_ms)
    /usr/bin/time -f '%e %U %S %M' -o "$tf" \
        env MOESIF_APPLICATION_ID="$APP_ID" "$UP" run -c "$cfg" \
        --from-beginning --exit-at-end 2>"$log" &
    tpid=$!
    upid=""
    for _ in $(seq 100); do
        upid=$(pgrep -P "$tpid" || true)
        [ -n "$upid" ] && break
        sleep 0.02
    done
    [ -n "$upid" ] || die "$name: userpipe did not start"
    CURRENT_UPID=$upid
    if [ "$BENCH_PERF" = 1 ] && [ "$name" = fault-free-1 ]; then
        perf record -F 499 -o "$WORK/perf.data" -p "$upid" >/dev/null 2>"$WORK/perf.err" &
        PERF_PID=$!
    fi

    while kill -0 "$upid" 2>/dev/null; do
        rss=$(vm_kb "$upid" VmRSS)
        rss=${rss:-0}
        [ "$rss" -gt "$rss_max" ] && rss_max=$rss
        if [ -n "${FAULT429_AT:-}" ]; then
            if [ "$f_start" = 0 ] &&
                [ "$(curl -sf "$MOESIF_URL/_dev/stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["upserts"])')" -ge "$FAULT429_AT" ]; then
                moesif_post "/_dev/faults?fail_429=1"
                f_start=$(now_ms)
                f_rss0=$rss
                F_UPSERTS0=$(moesif_stat upserts)
            elif [ "$f_start" != 0 ] && [ "$f_end" = 0 ]; then
                [ "$rss" -gt "$f_rssmax" ] && f_rssmax=$rss
                if [ $(($(now_ms) - f_start)) -ge $((FAULT_SECONDS * 1000)) ]; then
                    F_UPSERTS1=$(moesif_stat upserts)
                    moesif_post "/_dev/faults?fail_429=0"
                    f_end=$(now_ms)
                fi
            fi
        fi
        if [ $(($(now_ms) - t0)) -gt $((RUN_TIMEOUT * 1000)) ]; then
            kill "$upid" 2>/dev/null || true
            tail -n 20 "$log" >&2
            die "$name: userpipe still ran after ${RUN_TIMEOUT}s (BENCH_RUN_TIMEOUT); moesif-dev has $(moesif_stat upserts) of $VALID upserts"
        fi
        sleep 0.2
    done
    rc=0
    wait "$tpid" || rc=$?
    t_end=$(now_ms)
    R_MCPU=$(awk -v a="$m0" -v b="$(cpu_ticks "$MOESIF_PID")" -v t="$TCK" 'BEGIN { printf "%.2f", (b - a) / t }')
    R_KCPU=$(awk -v a="$k0" -v b="$(cpu_ticks "$KAFKA_PID")" -v t="$TCK" 'BEGIN { printf "%.2f", (b - a) / t }')
    if [ -n "${PERF_PID:-}" ]; then
        wait "$PERF_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 20 "$log" >&2
        die "$name: userpipe exited with status $rc"
    fi
    if [ -n "${FAULT429_AT:-}" ]; then
        [ "$f_start" != 0 ] || die "$name: the run ended before moesif-dev had $FAULT429_AT upserts, so the 429 window never started (more BENCH_EVENTS)"
        [ "$f_end" != 0 ] || die "$name: the run ended inside the 429 window: events were delivered while every request got 429"
        R_F_RSS0=$f_rss0
        R_F_RSSMAX=$f_rssmax
        R_F_AFTER_S=$(awk -v a="$f_end" -v b="$t_end" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    fi
    curl -sf "$MOESIF_URL/_dev/stats" >"$WORK/$name.stats.json" || die "$name: no /_dev/stats"
    curl -sf "$MOESIF_URL/_dev/timeline" >"$WORK/$name.timeline.json" || die "$name: no /_dev/timeline"
    # the steady rate: events counted at moesif-dev between the moments it
    # held 10% and 90% of them, so the start (group join, first fetch) and
    # the end (the last retries) weigh nothing
    line=$(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); v = int(sys.argv[2]); step = d["step_ms"]
cum, t10, t90, last = 0, None, None, 0
for i, n in enumerate(d["upserts"]):
    cum += n
    if n: last = (i + 1) * step
    if t10 is None and cum >= 0.1 * v: t10 = (i + 1) * step
    if t90 is None and cum >= 0.9 * v: t90 = (i + 1) * step
if t10 is None or t90 is None or t90 <= t10:
    print("0 0 0 0")
else:
    print("%.0f %.2f %.2f %.2f" % (0.8 * v * 1000 / (t90 - t10), t10 / 1000, t90 / 1000, last / 1000))
' "$WORK/$name.timeline.json" "$VALID") || die "$name: cannot read /_dev/timeline"
    read -r R_STEADY R_T10 R_T90 R_TLAST <<<"$line"
    [ "${R_STEADY:-0}" != 0 ] || die "$name: the /_dev/timeline of moesif-dev does not reach 90% of $VALID events"
    moesif_post "/_dev/faults?fail_429=0&fail_500=0&fail_503=0"
    R_UPSERTS=$(stat_of "$WORK/$name.stats.json" upserts)
    if [ "$R_UPSERTS" -ne "$VALID" ]; then
        tail -n 5 "$log" >&2
        die "$name: moesif-dev counted $R_UPSERTS upserts, but $VALID events are valid"
    fi
    R_COMMITTED=$(group_committed_total "$group" "${TOPIC:-users}") || die "$name: cannot read the committed offsets of $group"
    [ "$R_COMMITTED" -eq "$N" ] || die "$name: group $group committed $R_COMMITTED of $N offsets after exiting 0"
    R_DUP=$(stat_of "$WORK/$name.stats.json" dup_in_batch)
    [ "$R_DUP" -eq 0 ] || die "$name: moesif-dev saw $R_DUP batches holding one user twice"
    R_REQ=$(stat_of "$WORK/$name.stats.json" requests)
    R_201=$(stat_of "$WORK/$name.stats.json" responses.201)
    R_429=$(stat_of "$WORK/$name.stats.json" responses.429)
    R_500=$(stat_of "$WORK/$name.stats.json" responses.500)
    R_WIRE=$(stat_of "$WORK/$name.stats.json" bytes_in)
    R_PLAIN=$(stat_of "$WORK/$name.stats.json" bytes_plain)

    read -r R_WALL R_USER R_SYS R_RSS_KB <"$tf"
    # processing time: first partition assignment to the exit
    line=$(grep -m1 '^time=.*msg="partition assigned"' "$log" || true)
    local a_ms e_ms
    if [ -n "$line" ]; then
        a_ms=$(log_ms "$(sed 's/^time=\([^ ]*\).*/\1/' <<<"$line")")
        e_ms=$(log_ms "$(grep '^time=' "$log" | tail -n 1 | sed 's/^time=\([^ ]*\).*/\1/')")
        R_ACTIVE=$(awk -v a="$a_ms" -v e="$e_ms" 'BEGIN { printf "%.2f", (e - a) / 1000 }')
        R_JOIN=$(awk -v a="$a_ms" -v s="$t0" 'BEGIN { printf "%.1f", (a - s) / 1000 }')
    else
        R_ACTIVE=$R_WALL
        R_JOIN="?"
    fi
    R_RATE=$(awk -v v="$VALID" -v s="$R_ACTIVE" 'BEGIN { printf "%.0f", v / s }')
    R_CPU_S=$(awk -v u="$R_USER" -v s="$R_SYS" 'BEGIN { printf "%.2f", u + s }')
    R_US=$(awk -v c="$R_CPU_S" -v v="$VALID" 'BEGIN { printf "%.2f", c * 1e6 / v }')
    R_RSS_MB=$(awk -v k="$R_RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')
    R_STOPPED=$(grep -m1 'msg="stopped"' "$log" | sed 's/.*msg="stopped" //' || true)
    R_RETRIES=$(sed -n 's/.*\bretries=\([0-9]*\).*/\1/p' <<<"$R_STOPPED")
    R_BAVG=$(sed -n 's/.*\bbatch_events_avg=\([0-9.]*\).*/\1/p' <<<"$R_STOPPED")
    R_BP10=$(sed -n 's/.*\bbatch_events_p10=\([0-9]*\).*/\1/p' <<<"$R_STOPPED")
    R_BAVG=${R_BAVG:-0}
    R_BP10=${R_BP10:-0}
    # the target's batches (issue 12: "while a backlog lasts"): those sealed
    # while the consumer still handed out full polls or was held back; a
    # backfill's tail sends what it holds, full or not
    R_KAVG=$(sed -n 's/.*\bbacklog_batch_events_avg=\([0-9.]*\).*/\1/p' <<<"$R_STOPPED")
    R_KP10=$(sed -n 's/.*\bbacklog_batch_events_p10=\([0-9]*\).*/\1/p' <<<"$R_STOPPED")
    R_KAVG=${R_KAVG:-0}
    R_KP10=${R_KP10:-0}
}

# batch_line: events per batch of the last run, against batch.max_events
batch_line() {
    say "events per batch:  mean $R_BAVG, p10 $R_BP10 of the batches userpipe sealed (batch.max_events 200; $R_201 batches accepted for $VALID events = $(awk -v v="$VALID" -v b="$R_201" 'BEGIN { printf "%.1f", b ? v / b : 0 }'))"
    say "  while the backlog lasted: mean $R_KAVG, p10 $R_KP10   target mean >= $(awk -v t="$T_FILL" 'BEGIN { print t * 200 }'): $(verdict "$R_KAVG" '>=' "$(awk -v t="$T_FILL" 'BEGIN { print t * 200 }')")"
}

# verdict VALUE OP LIMIT: "ok" or "MISS"
verdict() {
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
        ok = (op == "<=") ? v <= l : (op == "<") ? v < l : v >= l
        print ok ? "ok" : "MISS" }'
}

print_run() {
    say "wall time:         ${R_WALL} s (of which ${R_JOIN} s before the first partition assignment: kafka-dev's 3 s group delay and startup)"
    say "processing time:   ${R_ACTIVE} s (first assignment to exit)"
    say "delivered:         upserts=$R_UPSERTS = valid events $VALID (moesif-dev /_dev/stats), committed offsets $R_COMMITTED = $N; requests=$R_REQ (201: $R_201, 429: $R_429, 500: $R_500), $(awk -v v="$VALID" -v b="$R_201" 'BEGIN { printf "%.1f", b ? v / b : 0 }') events per accepted batch, ${R_RETRIES:-?} retries"
    say "userpipe's summary: ${R_STOPPED:-(no \"stopped\" line)}"
    say "wire:              $(awk -v w="$R_WIRE" -v p="$R_PLAIN" 'BEGIN { printf "%.1f MB sent for %.1f MB of JSON (%.1fx)", w / 1e6, p / 1e6, w ? p / w : 0 }')"
    say "other processes:   moesif-dev ${R_MCPU} s CPU, kafka-dev ${R_KCPU} s CPU during the run; load average ${R_LOAD} at its start"
}

print_core() {
    local ratio
    ratio=$(awk -v r="$R_RATE" -v k="$KCAT_RATE" 'BEGIN { printf "%.3f", r / k }')
    say "events/s:          $R_RATE"
    say "steady events/s:   $R_STEADY (moesif-dev held 10% of the events ${R_T10} s after its reset at the start of the run, 90% at ${R_T90} s, all at ${R_TLAST} s)"
    say "CPU per event:     $R_US us   (${R_CPU_S} s user+sys; userpipe busy $(awk -v c="$R_CPU_S" -v s="$R_ACTIVE" 'BEGIN { printf "%.2f", c / s }') cores on average while processing)   target <= $T_CPU_US us: $(verdict "$R_US" '<=' "$T_CPU_US")"
    say "peak RSS:          $R_RSS_MB MB   target < $T_RSS_MB MB: $(verdict "$R_RSS_MB" '<' "$T_RSS_MB")"
    say "ratio to kcat:     $ratio ($R_RATE / $KCAT_RATE)   target >= $T_RATIO: $(verdict "$ratio" '>=' "$T_RATIO")"
}

# ---- 3. fault-free ---------------------------------------------------------

say ""
say "== userpipe run, fault-free, $FREE_RUNS runs (write_config of tests/e2e/lib.sh: batch.linger_ms=100, sink.retry_backoff_max_ms=2000; other keys default: gzip level $GZ_DEFAULT, $LANES_DEFAULT lanes, 200 events a batch)"
: >"$WORK/fault-free.runs"
for i in $(seq "$FREE_RUNS"); do
    FAULTS="" FAULT429_AT="" run_pipeline "fault-free-$i"
    say "run $i:             $R_RATE events/s, steady $R_STEADY, $R_US us CPU per event, peak RSS $R_RSS_MB MB (load average $R_LOAD at its start; moesif-dev ${R_MCPU} s CPU)"
    (set -o posix && set) | grep '^R_' >"$WORK/fault-free-$i.vars"
    echo "$i $R_RATE $R_STEADY $R_US $R_RSS_MB" >>"$WORK/fault-free.runs"
done
# the median run by events/s, with the median CPU and steady rate and the
# highest peak RSS of the runs
median_col() { sort -n -k "$1" "$WORK/fault-free.runs" | awk -v c="$1" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }
med=$(sort -n -k 2 "$WORK/fault-free.runs" | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] }')
. "$WORK/fault-free-$med.vars"
R_STEADY=$(median_col 3)
R_US=$(median_col 4)
R_CPU_S=$(awk -v u="$R_US" -v v="$VALID" 'BEGIN { printf "%.2f", u * v / 1e6 }')
R_RSS_MB=$(sort -n -k 5 "$WORK/fault-free.runs" | tail -n 1 | awk '{ print $5 }')
say "the median run by events/s (run $med); below, CPU per event and the steady rate are the medians of the $FREE_RUNS runs, peak RSS the highest:"
print_run
print_core
batch_line
FREE_BAVG=$R_BAVG FREE_KAVG=$R_KAVG
FREE_RATE=$R_RATE
FREE_STEADY=$R_STEADY
FREE_US=$R_US
FREE_WIRE=$R_WIRE
FREE_PLAIN=$R_PLAIN
FREE_M=$R_MCPU
FREE_RSS=$R_RSS_MB
FREE_RATIO=$(awk -v r="$R_RATE" -v k="$KCAT_RATE" 'BEGIN { printf "%.3f", r / k }')
# for bench_apache.sh, which prints the real broker's figures beside these
mkdir -p "$ROOT/build/bench"
echo "kafka-dev $N $KCAT_RATE $FREE_RATE $FREE_RATIO $FREE_US $FREE_RSS $(date +%s)" >"$ROOT/build/bench/pipeline-kafka-dev.txt"
if [ "$BENCH_PERF" = 1 ]; then
    if [ -s "$WORK/perf.data" ]; then
        say "perf record -F 499 -p of the first fault-free run (share of userpipe's samples):"
        perf_top() {
            # whole report first: head closing the pipe must not fail it
            perf report -i "$WORK/perf.data" --no-children --sort "$1" --stdio >"$WORK/perf.txt" 2>/dev/null || true
            grep -E '^ +[0-9.]+%' "$WORK/perf.txt" | head -n "$2" | sed 's/  *$//; s/  *-  *-$//; s/^/  /' || true
        }
        say " by thread:"
        perf_top comm 6
        say " by library:"
        perf_top dso 8
        say " top symbols (libdeflate has no symbols: its addresses are the compressor):"
        perf_top dso,symbol 15
    else
        say "perf: no data ($(head -c 200 "$WORK/perf.err" 2>/dev/null))"
    fi
fi

# ---- 4. 429 to everything for FAULT_SECONDS ------------------------------------

say ""
say "== userpipe run, moesif-dev answering 429 (Retry-After: 1) to every request for ${FAULT_SECONDS} s, from the moment it holds 10% of the events"
FAULTS="" FAULT429_AT=$((VALID / 10 > 0 ? VALID / 10 : 1)) run_pipeline fault-429
print_run
say "429 window:        RSS $(awk -v k="$R_F_RSS0" 'BEGIN { printf "%.1f", k / 1024 }') MB when it began, at most $(awk -v k="$R_F_RSSMAX" 'BEGIN { printf "%.1f", k / 1024 }') MB during it (sampled every 0.2 s); upserts $F_UPSERTS0 -> $F_UPSERTS1 during it; the run ended $R_F_AFTER_S s after it"
say "peak RSS:          $R_RSS_MB MB   target < $T_RSS_MB MB: $(verdict "$R_RSS_MB" '<' "$T_RSS_MB")"
say "after the window:  every valid event arrived: upserts=$R_UPSERTS = $VALID"
say "CPU per event:     $R_US us"
F429_RSS=$R_RSS_MB

# ---- 5. 5% 429 and 1% 500 all along -----------------------------------------------

say ""
say "== userpipe run, moesif-dev answering 5% of requests 429 (Retry-After: 1) and 1% 500 for the whole run"
FAULTS="fail_429=0.05&fail_500=0.01&seed=1" FAULT429_AT="" run_pipeline fault-mix
print_run
say "events/s:          $R_RATE"
say "steady events/s:   $R_STEADY (moesif-dev held 10% of the events ${R_T10} s after its reset at the start of the run, 90% at ${R_T90} s, all at ${R_TLAST} s)"
fratio=$(awk -v r="$R_RATE" -v f="$FREE_RATE" 'BEGIN { printf "%.3f", r / f }')
sratio=$(awk -v r="$R_STEADY" -v f="$FREE_STEADY" 'BEGIN { printf "%.3f", r / f }')
say "ratio to fault-free, steady: $sratio ($R_STEADY / $FREE_STEADY, 10% to 90% of the events)   target >= $T_FAULT_RATIO: $(verdict "$sratio" '>=' "$T_FAULT_RATIO")"
say "ratio to fault-free, whole run: $fratio ($R_RATE / $FREE_RATE; includes the end, where the last batches answered 429 wait their Retry-After: 1 s, 2 s for a second 429 in a row)   target >= $T_FAULT_RATIO: $(verdict "$fratio" '>=' "$T_FAULT_RATIO")"
say "CPU per event:     $R_US us; peak RSS $R_RSS_MB MB"
batch_line
MIX_BAVG=$R_BAVG MIX_KAVG=$R_KAVG

# ---- 6. gzip -------------------------------------------------------------------------

say ""
say "== gzip: sink.gzip_level=$GZ_DEFAULT (the default: the fault-free run above), =$GZ_OTHER, sink.gzip=false"
FAULTS="" FAULT429_AT="" run_pipeline gzip-other sink.gzip_level=$GZ_OTHER
G1_RATE=$R_RATE G1_US=$R_US G1_WIRE=$R_WIRE G1_PLAIN=$R_PLAIN G1_RSS=$R_RSS_MB G1_M=$R_MCPU
FAULTS="" FAULT429_AT="" run_pipeline gzip-off sink.gzip=false
G0_RATE=$R_RATE G0_US=$R_US G0_WIRE=$R_WIRE G0_PLAIN=$R_PLAIN G0_RSS=$R_RSS_MB G0_M=$R_MCPU
gz_line() {
    awk -v n="$1" -v r="$2" -v u="$3" -v w="$4" -v p="$5" -v k="$KCAT_RATE" -v m="$6" -v rss="$7" 'BEGIN {
        printf "%-16s %9.0f %7.3f %9.2f %10.1f %6.1fx %9s %8s\n", n, r, r / k, u, w / 1e6, w ? p / w : 0, m, rss }'
}
printf '%-16s %9s %7s %9s %10s %7s %9s %8s\n' setting events/s /kcat "CPU us/ev" "wire MB" ratio "moesif s" "RSS MB"
gz_line "gzip_level=$GZ_DEFAULT *" "$FREE_RATE" "$FREE_US" "$FREE_WIRE" "$FREE_PLAIN" "$FREE_M" "$FREE_RSS"
gz_line "gzip_level=$GZ_OTHER" "$G1_RATE" "$G1_US" "$G1_WIRE" "$G1_PLAIN" "$G1_M" "$G1_RSS"
gz_line "gzip=false" "$G0_RATE" "$G0_US" "$G0_WIRE" "$G0_PLAIN" "$G0_M" "$G0_RSS"
say "(* default; CPU us/event is userpipe's user+sys over the valid events; moesif s is moesif-dev's CPU for the run)"

# ---- 7. repeating users (issue 12) ----------------------------------------------------

say ""
say "== repeating users: $N_L events of $((N_L / 4)) users drawn uniformly ($VALID_L valid), keyed, topic users_l of $P_L partitions on 3 brokers"
VALID_MAIN=$VALID N_MAIN=$N
VALID=$VALID_L N=$N_L
TOPIC=users_l FAULTS="" FAULT429_AT="" run_pipeline rep-free source.topics=users_l
print_run
say "events/s:          $R_RATE (today's workload, above: $FREE_RATE; ratio $(awk -v r="$R_RATE" -v f="$FREE_RATE" 'BEGIN { printf "%.3f", r / f }'))"
say "steady events/s:   $R_STEADY"
say "CPU per event:     $R_US us; peak RSS $R_RSS_MB MB"
batch_line
REP_RATE=$R_RATE REP_STEADY=$R_STEADY REP_US=$R_US REP_RSS=$R_RSS_MB REP_BAVG=$R_BAVG REP_BP10=$R_BP10 REP_KAVG=$R_KAVG REP_REQ=$R_REQ
REP_RATIO=$(awk -v r="$R_RATE" -v f="$FREE_RATE" 'BEGIN { printf "%.3f", r / f }')

say ""
say "== repeating users, moesif-dev answering 5% of requests 429 (Retry-After: 1) and 1% 500"
TOPIC=users_l FAULTS="fail_429=0.05&fail_500=0.01&seed=1" FAULT429_AT="" run_pipeline rep-mix source.topics=users_l
print_run
REPMIX_SRATIO=$(awk -v r="$R_STEADY" -v f="$REP_STEADY" 'BEGIN { printf "%.3f", r / f }')
say "steady events/s:   $R_STEADY; ratio to fault-free steady $REPMIX_SRATIO ($R_STEADY / $REP_STEADY)"
say "CPU per event:     $R_US us; peak RSS $R_RSS_MB MB"
batch_line
REPMIX_BAVG=$R_BAVG REPMIX_KAVG=$R_KAVG REPMIX_RSS=$R_RSS_MB

say ""
say "== remote Moesif: $N_L events of $((N_L / 4)) users ($VALID_L valid), topic users_l of $P_L partitions, moesif-dev latency_ms per request; limit = $LANES_DEFAULT lanes x 200 events / latency"
VALID=$VALID_L N=$N_L
printf '%-8s %9s %9s %7s %9s %9s %9s %8s %9s %8s\n' latency events/s limit ratio "ev/batch" "p10" "backlog" requests "CPU us/ev" "RSS MB" | tee "$WORK/latency.table"
for lat in $LAT_CURVE; do
    TOPIC=users_l FAULTS="latency_ms=$lat" FAULT429_AT="" run_pipeline "lat-$lat" source.topics=users_l
    if [ "$lat" -gt 0 ]; then
        limit=$(awk -v l="$LANES_DEFAULT" -v ms="$lat" 'BEGIN { printf "%.0f", l * 200 * 1000 / ms }')
        ratio=$(awk -v r="$R_RATE" -v m="$limit" 'BEGIN { printf "%.3f", r / m }')
    else
        limit="-"
        ratio="-"
    fi
    printf '%-8s %9s %9s %7s %9s %9s %9s %8s %9s %8s\n' "${lat} ms" "$R_RATE" "$limit" "$ratio" "$R_BAVG" "$R_BP10" "$R_KAVG" "$R_REQ" "$R_US" "$R_RSS_MB" | tee -a "$WORK/latency.table"
    if [ "$lat" = 50 ]; then
        LAT_RATIO=$ratio LAT_RATE=$R_RATE LAT_BAVG=$R_BAVG LAT_KAVG=$R_KAVG LAT_RSS=$R_RSS_MB
    fi
done
say "(events/s over the processing time, first assignment to exit; ev/batch and p10: the batches userpipe sealed; backlog: the mean of those sealed while the backlog lasted)"
VALID=$VALID_MAIN N=$N_MAIN

say ""
say "== targets (issue 4)"
printf '%-52s %10s %12s  %s\n' "figure" value target verdict
tline() { printf '%-52s %10s %12s  %s\n' "$1" "$2" "$3 $4" "$(verdict "$2" "$3" "$4")"; }
tline "CPU us per event, fault-free (gzip level $GZ_DEFAULT)" "$FREE_US" '<=' "$T_CPU_US"
tline "CPU us per event, gzip level $GZ_OTHER" "$G1_US" '<=' "$T_CPU_US"
tline "events/s / kcat events/s, fault-free" "$FREE_RATIO" '>=' "$T_RATIO"
tline "peak RSS MB, fault-free" "$FREE_RSS" '<' "$T_RSS_MB"
tline "peak RSS MB, ${FAULT_SECONDS} s of 429 to everything" "$F429_RSS" '<' "$T_RSS_MB"
tline "steady events/s / fault-free, 5% 429 + 1% 500" "$sratio" '>=' "$T_FAULT_RATIO"
tline "events/s / fault-free, 5% 429 + 1% 500, whole run" "$fratio" '>=' "$T_FAULT_RATIO"
say ""
say "== targets (issue 12)"
FILL_MIN=$(awk -v t="$T_FILL" 'BEGIN { print t * 200 }')
tline "events per batch in a backlog, today's workload, fault-free" "$FREE_KAVG" '>=' "$FILL_MIN"
tline "events per batch in a backlog, today's workload, 5% 429 + 1% 500" "$MIX_KAVG" '>=' "$FILL_MIN"
tline "events per batch in a backlog, repeating users, fault-free" "$REP_KAVG" '>=' "$FILL_MIN"
tline "events per batch in a backlog, repeating users, 5% 429 + 1% 500" "$REPMIX_KAVG" '>=' "$FILL_MIN"
tline "events per batch in a backlog, 50 ms latency" "${LAT_KAVG:-0}" '>=' "$FILL_MIN"
tline "50 ms latency events/s / limit" "${LAT_RATIO:-0}" '>=' "$T_LAT_RATIO"
tline "CPU us per event, repeating users" "$REP_US" '<=' "$T_REP_US"
tline "repeating users events/s / today's workload" "$REP_RATIO" '>=' "$T_REP_RATE"
tline "repeating users steady, 5% 429 + 1% 500 / free" "$REPMIX_SRATIO" '>=' "$T_REP_FAULT"
tline "peak RSS MB, repeating users" "$REP_RSS" '<' "$T_RSS_MB"
tline "peak RSS MB, repeating users, 5% 429 + 1% 500" "$REPMIX_RSS" '<' "$T_RSS_MB"
tline "peak RSS MB, 50 ms latency" "${LAT_RSS:-0}" '<' "$T_RSS_MB"

say ""
say "bench_pipeline: done in $(awk -v ms=$(($(now_ms) - bench_t0)) 'BEGIN { printf "%.0f", ms / 1000 }') s, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
