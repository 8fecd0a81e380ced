#!/bin/sh
# bench/spool.sh - durable enqueue rate of the spool (one by one, and batched).
#
#   bench/spool.sh [DIR [SINGLE_COUNT [BATCHED_COUNT [BATCH_SIZE]]]]
#
# Builds an optimized, unsanitized tree in $BUILD (default build-bench) and runs
# bench_spool. DIR should be on the disk the spool will live on (fsync cost is the
# point of the first figure); default: a fresh directory under /tmp.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build-bench}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIGEON_TESTS=OFF >/dev/null
cmake --build "$build" --target bench_spool -j2 >/dev/null
exec "$build/bench_spool" "$@"
