#!/usr/bin/env bash
# bench/startup.sh BUILD_DIR [PROGRAM...] - process start-up: `pigeon --version` beside a
# C hello-world (built here, dynamically and statically linked: the floor exec and the
# dynamic loader set on this machine) and `curl --version`, with hyperfine in one run
# (-N: no shell). Extra PROGRAMs (paths to other pigeon builds) are measured beside.
# Prints each median, minor page faults per run (perf, when allowed: on a VM each fault
# costs several microseconds, which is what a loaded shared library mostly costs), and
# the ratios pigeon/hello-world and curl/pigeon. A report, not a test.
set -eu
build=${1:?usage: bench/startup.sh BUILD_DIR [PROGRAM...]}
build=$(cd "$build" && pwd)
shift
runs=${STARTUP_RUNS:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v hyperfine >/dev/null || {
  echo "startup.sh: hyperfine not installed (scripts/deps.sh --bench)" >&2
  exit 1
}
printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$work/hello.c"
cc -O2 -o "$work/hello" "$work/hello.c"
cc -O2 -static -o "$work/hello-static" "$work/hello.c"

names=("hello-world (dynamic)" "hello-world (static)" "pigeon --version")
cmds=("$work/hello" "$work/hello-static" "$build/pigeon --version")
for p in "$@"; do
  names+=("$p --version")
  cmds+=("$p --version")
done
names+=("curl --version")
cmds+=("curl --version")

hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/out.json" "${cmds[@]}" \
  >/dev/null 2>&1
faults=()
for c in "${cmds[@]}"; do
  f=$(perf stat -x, -e page-faults -r 20 $c 2>&1 >/dev/null | awk -F, '/page-faults/ {print $1}') ||
    f=
  faults+=("${f:-?}")
done
/usr/bin/python3 - "$work/out.json" "${#names[@]}" "${names[@]}" "${faults[@]}" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
names, faults = sys.argv[3:3 + n], sys.argv[3 + n:3 + 2 * n]
med = [statistics.median(r["times"]) * 1000 for r in res]
print(f"process start-up, hyperfine -N, {len(res[0]['times'])} runs each (median; page faults per run)")
width = max(len(n) for n in names)
for name, m, r, f in zip(names, med, res, faults):
    print(f"  {name:<{width}} {m:7.2f} ms  (min {r['min'] * 1000:5.2f})  {f:>5} faults")
hello, pigeon, curl = med[0], med[2], med[-1]
print(f"ratio: pigeon --version / hello-world {pigeon / hello:.2f}x, "
      f"curl --version / pigeon --version {curl / pigeon:.2f}x")
PY
