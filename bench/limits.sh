#!/bin/sh
# bench/limits.sh - the cost of a shared-limits take on the SQLite spool (bench_limits.c),
# per take and per message, beside the in-memory pacing it replaces.
#
#   bench/limits.sh [BUILD_DIR [TAKES]]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$build" ] || [ ! -x "$build/bench_limits" ]; then
  build=$here/build-bench
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIGEON_TESTS=OFF >/dev/null
  cmake --build "$build" --target bench_limits -j2 >/dev/null
fi
dir=$(mktemp -d "${SPOOL_DIR:-/tmp}/pigeon-limits-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$build/bench_limits" "$dir" "$@"
