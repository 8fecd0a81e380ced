#!/usr/bin/env bash
# Installs the npm packages the tests compare pigeon with (tests/npm/package.json) into
# tests/npm/node_modules, once: idempotent, and a no-op when they are already there.
# Prints the node_modules folder. Test and bench only: the product uses no npm package.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../tests/npm" && pwd)"
stamp="$dir/node_modules/.pigeon-stamp"
if [[ -f $stamp && $stamp -nt $dir/package.json ]]; then
  echo "$dir/node_modules"
  exit 0
fi
command -v npm >/dev/null || { echo "npm-deps: npm not found (scripts/deps.sh installs it)" >&2; exit 1; }
exec 9>"$dir/.lock"
flock 9
if ! [[ -f $stamp && $stamp -nt $dir/package.json ]]; then
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi
echo "$dir/node_modules"
