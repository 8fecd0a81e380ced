#!/bin/sh
# bench/spool.sh - durable enqueue rate of the spool (one by one, and batched).
#
#   bench/spool.sh [BUILD_DIR [SINGLE_COUNT [BATCHED_COUNT [BATCH_SIZE]]]]
#
# Uses bench_spool from BUILD_DIR (a Release build; default: builds one in build-bench).
# The spool goes in a fresh directory under $SPOOL_DIR (default /tmp), on the disk whose
# fsync cost is the point of the one-by-one figure.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$build" ] || [ ! -x "$build/bench_spool" ]; then
  build=$here/build-bench
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIGEON_TESTS=OFF >/dev/null
  cmake --build "$build" --target bench_spool -j2 >/dev/null
fi
dir=$(mktemp -d "${SPOOL_DIR:-/tmp}/pigeon-spool-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$build/bench_spool" "$dir" "$@"
