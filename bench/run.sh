#!/usr/bin/env bash
# bench/run.sh BUILD_DIR - the `make bench` entry: runs every bench/*.sh (but this one) in
# turn with BUILD_DIR as argument, and reports which failed. A report, not a test: the
# figures are printed, never compared with thresholds.
set -u
build=${1:?usage: bench/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
failed=()
for script in "$here"/*.sh; do
  name=$(basename "$script")
  [[ $name == run.sh ]] && continue
  echo "=== $name"
  if ! bash "$script" "$build"; then
    failed+=("$name")
  fi
  echo
done
if ((${#failed[@]})); then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
