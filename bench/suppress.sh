#!/usr/bin/env bash
# bench/suppress.sh BUILD_DIR [N] - what the suppression list costs the sending paths.
# Side by side in one run, on the same rows and messages: a spool with a 100,000-entry
# list (imported from CSV; 1% of the rows below are on it) against a spool with none.
#  - merge: `pigeon send --queue --to-file` of N rows (default 10,000): one check per row
#    on the merge's own spool handle; msgs/s of CPU time (user + system) and the ratio
#    with/without;
#  - send: `pigeon send --queue` of one message to 50 recipients, 100 times: each run opens
#    the spool read-only and checks its 50 recipients in one batch; runs/s and the ratio;
#  - import: entries/s of `pigeon suppress import` (one transaction).
# A report, not a test: the figures are printed, never compared with thresholds.
set -eu
build=${1:?usage: bench/suppress.sh BUILD_DIR [N]}
build=$(cd "$build" && pwd)
n=${2:-10000}
pigeon="$build/pigeon"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$work" "$n" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
with open(work + "/list.csv", "w") as f:
    f.write("email,name\n")
    for i in range(n):
        f.write("user%d@example.com,User %d\n" % (i, i))
with open(work + "/suppress.csv", "w") as f:
    f.write("address,account,reason,status,diagnostic,queue_id,created\n")
    for i in range(100000):
        # 1% of the merge's rows (every 100th), the rest addresses nobody mails here.
        addr = "user%d@example.com" % (i * 100) if i * 100 < n else "gone%d@example.net" % i
        f.write("%s,main,hard-bounce,5.1.1,no such user,,1790000000000\n" % addr)
PY
cat >"$work/config" <<CFG
[account main]
host = 127.0.0.1
port = 25
tls = none
from = Sender <sender@example.com>
CFG
chmod 600 "$work/config"

cpu() { # cpu TIMEFILE -> user+system seconds
  read -r e u s m <"$1"
  /usr/bin/python3 -c "print($u + $s)"
}

# The spool with the list.
mkdir -p "$work/with/pigeon" "$work/none/pigeon"
PIGEON_CONFIG=$work/config XDG_STATE_HOME=$work/with /usr/bin/time -f "%e %U %S %M" \
  -o "$work/time" "$pigeon" suppress import "$work/suppress.csv" >/dev/null
t_import=$(cpu "$work/time")
read -r w_import _ <"$work/time"
# The spool without: created by an empty import.
printf 'address\n' | PIGEON_CONFIG=$work/config XDG_STATE_HOME=$work/none "$pigeon" suppress \
  import - >/dev/null
cp "$work/with/pigeon/spool.db" "$work/with.db"
cp "$work/none/pigeon/spool.db" "$work/none.db"

merge() { # merge STATE -> cpu seconds
  PIGEON_CONFIG=$work/config XDG_STATE_HOME=$1 /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
    "$pigeon" send --queue --to-file "$work/list.csv" --subject "Hi {{name}}" \
    --text "Dear {{name}}\n" >"$work/out" 2>/dev/null || true
  cpu "$work/time"
}
c_with=$(merge "$work/with")
grep -q "suppressed" "$work/out" || { echo "suppress bench: no row was suppressed" >&2; exit 1; }
c_none=$(merge "$work/none")

rcpts=()
for i in $(seq 1 50); do rcpts+=(--to "r$i@example.org"); done
rcpts+=(--to "gone7@example.net")
sends() { # sends STATE -> cpu seconds of 100 runs
  local t0 t1
  : >"$work/cpu"
  for i in $(seq 1 100); do
    PIGEON_CONFIG=$work/config XDG_STATE_HOME=$1 /usr/bin/time -f "%e %U %S %M" \
      -o "$work/time" "$pigeon" send --queue "${rcpts[@]}" --subject s --text t \
      >/dev/null 2>&1 || true
    cpu "$work/time" >>"$work/cpu"
  done
  /usr/bin/python3 -c "import sys; print(sum(float(l) for l in open(sys.argv[1])))" "$work/cpu"
}
s_with=$(sends "$work/with")
s_none=$(sends "$work/none")

/usr/bin/python3 - "$n" "$c_with" "$c_none" "$s_with" "$s_none" "$t_import" "$w_import" <<'PY'
import sys
n = int(sys.argv[1])
c_with, c_none, s_with, s_none, t_imp, w_imp = map(float, sys.argv[2:])
rate = lambda k, t: k / t if t > 0 else float("inf")
print("import: 100000 entries in %.2f s wall, %.0f entries/s of CPU" % (w_imp, rate(100000, t_imp)))
print("merge --queue, %d rows: %.0f msgs/s (CPU) with a 100,000-entry list, %.0f without;"
      " ratio with/without %.2f" % (n, rate(n, c_with), rate(n, c_none), c_none / c_with if c_with else 0))
print("send --queue, 51 recipients x 100 runs: %.1f runs/s (CPU) with the list, %.1f without;"
      " ratio with/without %.2f" % (rate(100, s_with), rate(100, s_none), s_none / s_with if s_with else 0))
PY
