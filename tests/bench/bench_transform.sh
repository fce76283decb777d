#!/usr/bin/env bash
# bench_transform.sh: the transform part of `make bench`.  Env: BUILD.
set -euo pipefail
"${BUILD:-build/release}/bench_transform" "${BENCH_TRANSFORM_EVENTS:-200000}" "${BENCH_TRANSFORM_ROUNDS:-5}"
