#!/usr/bin/env bash
# bench/dkim_daemon.sh BUILD_DIR [N] [ROUNDS] - the daemon's drain with DKIM signing beside
# the same drain without: `pigeon daemon --once --workers 4` delivering N (default 10000)
# copies of the 7.4 KB sample to one Postfix smtp-sink on loopback, from a fresh spool each
# time, alternating plain, Ed25519-signed and RSA-signed drains ROUNDS times (default 3)
# in the same run. The signing daemon signs at delivery (so a rotated key applies to what
# is still queued): it reads the spooled message twice and makes one signature per message.
# Prints the median msgs/s (wall clock) and the median CPU time per message of each, and
# the ratios signed/plain (target for Ed25519: drain at least 0.9x the plain one). The load
# average is printed too: the machine may be shared.
set -eu
build=${1:?usage: bench/dkim_daemon.sh BUILD_DIR [N] [ROUNDS]}
n=${2:-10000}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${BENCH_DIR:-/tmp}/pigeon-bench-dkimd.XXXXXX")
sink_pid=
cleanup() {
  [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

for tool in "$build/pigeon" "$build/bench_daemon" /usr/sbin/smtp-sink; do
  if [[ ! -x $tool ]]; then
    echo "dkim_daemon.sh: $tool missing (cmake --build $build; apt-get install postfix)" >&2
    exit 1
  fi
done

/usr/bin/python3 - "$here" "$work" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from sample import TEXT, HTML
open(sys.argv[2] + "/text", "w", encoding="utf-8").write(TEXT)
open(sys.argv[2] + "/html", "w", encoding="utf-8").write(HTML)
PY
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/pigeon" dkim keygen --domain example.com --selector ed --type ed25519 \
  --out "$work/ed.pem" > /dev/null 2>&1
"$build/pigeon" dkim keygen --domain example.com --selector rsa --type rsa \
  --out "$work/rsa.pem" > /dev/null 2>&1
# The daemon caches a parsed key only once its file has settled (written over 2 s ago).
touch -d '1 minute ago' "$work/ed.pem" "$work/rsa.pem"
account() { # NAME [DKIM LINES]
  printf '[account %s]\nhost = 127.0.0.1\nport = %s\ntls = none\nfrom = sender@example.com\ntimeout = 60\n%s\n' \
    "$1" "$port" "${2:-}"
}
{
  account plain
  account ed "dkim_key = $work/ed.pem
dkim_selector = ed
dkim_domain = example.com"
  account rsa "dkim_key = $work/rsa.pem
dkim_selector = rsa
dkim_domain = example.com"
} > "$work/config"
chmod 600 "$work/config"
export PIGEON_CONFIG="$work/config" XDG_STATE_HOME="$work/state"
"$build/pigeon" send --dry-run --account plain --from sender@example.com \
  --to receiver@example.com --subject "$(/usr/bin/python3 -c "import sys; sys.path.insert(0, '$here'); from sample import SUBJECT; print(SUBJECT)")" \
  --text-file "$work/text" --html-file "$work/html" > "$work/sample.eml"
size=$(wc -c < "$work/sample.eml")

sink_user=()
[[ $(id -u) == 0 ]] && sink_user=(-u nobody)
/usr/sbin/smtp-sink "${sink_user[@]}" -c "127.0.0.1:$port" 1000 > /dev/null &
sink_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

# One drain of a fresh spool of ACCOUNT's messages: prints "wall_seconds cpu_seconds".
drain() {
  rm -f "$work"/spool.db*
  "$build/bench_daemon" "$work/spool.db" "$1" "$n" "$work/sample.eml" > /dev/null
  /usr/bin/python3 - "$build/pigeon" "$work/spool.db" <<'PY'
import os, sys, time
argv = [sys.argv[1], "daemon", "--once", "--workers", "4", "--spool", sys.argv[2],
        "--log-file", "/dev/null"]
start = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(argv[0], argv)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - start
if status != 0:
    sys.exit("dkim_daemon.sh: the daemon failed (%d)" % status)
print("%.4f %.4f" % (wall, ru.ru_utime + ru.ru_stime))
PY
  left=$("$build/pigeon" queue stats --json --spool "$work/spool.db")
  case $left in
    *'"messages":0,'*) ;;
    *) echo "dkim_daemon.sh: the spool was not drained: $left" >&2; exit 1 ;;
  esac
}

echo "message: $size bytes; $n messages per drain; $rounds rounds; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$work/results"
for r in $(seq "$rounds"); do
  for acct in plain ed rsa; do
    echo "$acct $(drain "$acct")" >> "$work/results"
  done
done
awk -v n="$n" '
  { wall[$1] = wall[$1] " " $2; cpu[$1] = cpu[$1] " " $3 }
  function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    split("plain ed rsa", names, " ")
    label["plain"] = "no DKIM"; label["ed"] = "ed25519-sha256"; label["rsa"] = "rsa-sha256 (2048)"
    for (i = 1; i <= 3; i++) {
      a = names[i]; w[a] = median(wall[a]); c[a] = median(cpu[a])
      printf "daemon drain, %-18s %8.0f msgs/s  %6.1f us CPU/msg\n", label[a], n / w[a], c[a] / n * 1e6
    }
    printf "ratio ed25519/plain drain        %8.2f   (target >= 0.9)\n", w["plain"] / w["ed"]
    printf "ratio rsa/plain drain            %8.2f\n", w["plain"] / w["rsa"]
  }' "$work/results"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
