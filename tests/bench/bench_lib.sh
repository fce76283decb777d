# shellcheck shell=bash
# tests/bench/bench_lib.sh: the small helpers of the pipeline benchmarks
# (bench_pipeline.sh, bench_apache.sh).  Set BENCH_NAME before sourcing.
say() { printf '%s\n' "$*"; }
die() {
    echo "$BENCH_NAME: FAIL: $*" >&2
    exit 1
}
now_ms() { date +%s%3N; }
# ISO time of a log line ("time=2026-...Z ...") -> epoch ms
log_ms() { date -u -d "$1" +%s%3N; }
