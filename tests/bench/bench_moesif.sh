#!/usr/bin/env bash
# bench_moesif.sh: how much moesif-dev absorbs, so that later benchmarks
# of the pipeline know it is not their bottleneck.  Starts moesif-dev,
# runs moesif-load (N kept-alive connections, gzipped batches of 200
# realistic users) for a fixed time, and prints requests/s, users/s and
# MB/s absorbed, with the CPU seconds moesif-dev spent (from /proc).
#
# The client runs on the same machine and takes CPU from the server, so
# the number that matters for capacity is users per server CPU-second.
#
# Env: BUILD (e.g. build/release), USERPIPE (unused here),
#      MOESIF_BENCH_SECONDS (10), MOESIF_BENCH_CONNECTIONS (8).
set -u

BUILD=${BUILD:-build/release}
SECONDS_RUN=${MOESIF_BENCH_SECONDS:-10}
CONNS=${MOESIF_BENCH_CONNECTIONS:-8}
APP=bench-app-id
tmp=$(mktemp -d)
pid=""

cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "bench_moesif: $*" >&2
    tail -n 20 "$tmp/server.log" >&2 2>/dev/null
    exit 1
}

for b in moesif-dev moesif-load; do
    [ -x "$BUILD/$b" ] || fail "$BUILD/$b is not built (make $BUILD/$b)"
done

"$BUILD/moesif-dev" --listen 127.0.0.1:0 --app-id "$APP" \
    --url-file "$tmp/url" >/dev/null 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 100); do
    [ -s "$tmp/url" ] && break
    sleep 0.05
done
[ -s "$tmp/url" ] || fail "moesif-dev did not start"
URL=$(cat "$tmp/url")

tck=$(getconf CLK_TCK)
# utime + stime of a process, in clock ticks (fields 14 and 15)
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# other work on the machine takes cores from both sides: say how much
load=$(cut -d' ' -f1 /proc/loadavg)
before=$(cpu_ticks "$pid")
"$BUILD/moesif-load" --url "$URL" --app-id "$APP" --connections "$CONNS" \
    --duration-s "$SECONDS_RUN" >"$tmp/load.out" || {
    cat "$tmp/load.out"
    fail "moesif-load failed"
}
after=$(cpu_ticks "$pid")
curl -s "$URL/_dev/stats" >"$tmp/stats.json" || fail "no /_dev/stats"

grep -v '^RESULT' "$tmp/load.out"
result=$(grep '^RESULT' "$tmp/load.out")
get() {
    printf '%s\n' "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
secs=$(get seconds)
users=$(get users)
server_upserts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["upserts"])' "$tmp/stats.json")
[ "$server_upserts" = "$users" ] ||
    fail "the server counted $server_upserts upserts, the client $users users sent"

awk -v ticks=$((after - before)) -v tck="$tck" -v secs="$secs" \
    -v req="$(get req_per_s)" -v ups="$(get users_per_s)" \
    -v wire="$(get wire_mb_per_s)" -v plain="$(get plain_mb_per_s)" \
    -v users="$users" -v ccpu="$(get client_cpu_s)" -v load="$load" \
    -v ncpu="$(nproc)" 'BEGIN {
    cpu = ticks / tck
    printf "moesif-dev absorbed: %.0f requests/s, %.0f users/s, %.2f MB/s gzipped (%.1f MB/s of JSON)\n", req, ups, wire, plain
    printf "moesif-dev CPU: %.2f s over %.2f s (%.2f cores busy), %.0f users per server CPU-second; client CPU %.2f s\n", cpu, secs, cpu / secs, (cpu > 0 ? users / cpu : 0), ccpu
    printf "machine: %d cores, load average %s before the run (other work takes cores from both sides)\n", ncpu, load
}'
