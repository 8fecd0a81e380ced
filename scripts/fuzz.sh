#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target built in BUILD_DIR for SECONDS each.
# Corpora live in tests/fuzz/corpus-<name>/ (git-ignored, kept between runs);
# a crash stops the run with the fuzzer's exit status and the reproducer path.
set -euo pipefail
build=${1:-build-fuzz}
secs=${2:-60}
src=$(cd "$(dirname "$0")/.." && pwd)
status=0
for f in "$build"/fuzz_*; do
  [[ -x $f ]] || continue
  name=$(basename "$f")
  corpus="$src/tests/fuzz/corpus-${name#fuzz_}"
  mkdir -p "$corpus"
  echo "== $name: ${secs}s, corpus $corpus"
  if ! "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$build/$name-" -print_final_stats=1 "$corpus" 2>"$build/$name.log"; then
    echo "!! $name found a problem; see $build/$name.log and $build/$name-*" >&2
    tail -n 30 "$build/$name.log" >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/$name.log" || true
  fi
done
exit $status
