#!/usr/bin/env bash
# bench/daemon.sh BUILD_DIR [N] - draining the spool: `pigeon daemon --once --workers 4`
# delivering N (default 20000) copies of the 7.4 KB sample (bench/sample.py, composed by
# `pigeon send --dry-run`) to Postfix smtp-sink on loopback, beside Postfix's own load
# generator `smtp-source -s 4 -d -m N` sending the same message to the same sink (4
# parallel sessions, connections kept: the same shape as 4 workers reusing theirs).
# Then pigeon's own engine without a queue (bench_smtp, 4 connections) on the same sink.
# Prints msgs/s of each and the ratios daemon/smtp-source (target: >= 1.0) and
# daemon/bench_smtp (target: >= 0.7): the three alternated DAEMON_BENCH_ROUNDS times (3),
# each round on a freshly filled spool, and the medians compared (also the median of each
# round's own ratios). The daemon's figure includes everything a durable
# queue does per message: the claim, the lease, the body read back through its SHA-256,
# and the outcome recorded before the next message (journaled at once, applied to the
# spool and fsynced once per batch). Each worker claims a batch of messages in one commit
# (`--batch`, default 64); DAEMON_ARGS adds options (e.g. DAEMON_ARGS="--batch 1").
# The spool lives in BENCH_DIR (default: a fresh directory under /tmp): put it on the disk
# you care about, the fsyncs are part of the cost.
set -eu
build=${1:?usage: bench/daemon.sh BUILD_DIR [N]}
n=${2:-20000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${BENCH_DIR:-/tmp}/pigeon-bench-daemon.XXXXXX")
sink_pid=
cleanup() {
  [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

for tool in "$build/pigeon" "$build/bench_daemon"; do
  if [[ ! -x $tool ]]; then
    echo "daemon.sh: $tool not built (cmake --build $build)" >&2
    exit 1
  fi
done
for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source; do
  if [[ ! -x $tool ]]; then
    echo "daemon.sh: $tool missing (apt-get install postfix)" >&2
    exit 1
  fi
done

now() { date +%s.%N; }

# The sample message, composed by pigeon (CRLF), and an LF copy for smtp-source -F
# (which appends CRLF to every line itself).
/usr/bin/python3 - "$here" "$work" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from sample import TEXT, HTML
open(sys.argv[2] + "/text", "w", encoding="utf-8").write(TEXT)
open(sys.argv[2] + "/html", "w", encoding="utf-8").write(HTML)
PY
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config" <<CONF
[account bench]
host = 127.0.0.1
port = $port
tls = none
from = sender@example.com
timeout = 60
CONF
chmod 600 "$work/config"
export PIGEON_CONFIG="$work/config" XDG_STATE_HOME="$work/state"
"$build/pigeon" send --dry-run --from sender@example.com --to receiver@example.com \
  --subject "$(/usr/bin/python3 -c "import sys; sys.path.insert(0, '$here'); from sample import SUBJECT; print(SUBJECT)")" \
  --text-file "$work/text" --html-file "$work/html" > "$work/sample.eml"
tr -d '\r' < "$work/sample.eml" > "$work/sample.lf"
size=$(wc -c < "$work/sample.eml")

# smtp-sink: -c counts, nothing is stored; it drops to nobody when run as root.
sink_user=()
[[ $(id -u) == 0 ]] && sink_user=(-u nobody)
/usr/sbin/smtp-sink "${sink_user[@]}" -c "127.0.0.1:$port" 1000 > /dev/null &
sink_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

rounds=${DAEMON_BENCH_ROUNDS:-3}
echo "message: $size bytes; $n messages; spool in $work; $rounds alternated rounds"

# CPU seconds (user + system) of each side as well: on a shared machine the wall clock
# says as much about the neighbours as about us. The machine's speed drifts by a third
# within minutes here, so the three run side by side in each round and the medians of the
# rounds are compared (each round's own ratios are printed too).
cpu_of() { [[ -s $1 ]] && awk '{print $1 + $2}' "$1" || echo 0; }
: > "$work/rounds"
for round in $(seq "$rounds"); do
  rm -f "$work"/spool.db*
  "$build/bench_daemon" "$work/spool.db" bench "$n" "$work/sample.eml" > /dev/null
  cpu=()
  [[ -x /usr/bin/time ]] && cpu=(/usr/bin/time -f "%U %S" -o "$work/cpu.daemon")
  t0=$(now)
  # shellcheck disable=SC2086  # DAEMON_ARGS is a list of options
  "${cpu[@]}" "$build/pigeon" daemon --once --workers 4 ${DAEMON_ARGS:-} --spool "$work/spool.db" \
    --log-file /dev/null
  t1=$(now)
  left=$("$build/pigeon" queue stats --json --spool "$work/spool.db")
  case $left in
    *'"messages":0,'*) ;;
    *) echo "daemon.sh: the spool was not drained: $left" >&2; exit 1 ;;
  esac

  [[ -x /usr/bin/time ]] && cpu=(/usr/bin/time -f "%U %S" -o "$work/cpu.source")
  t2=$(now)
  "${cpu[@]}" /usr/sbin/smtp-source -s 4 -d -m "$n" -F "$work/sample.lf" -f sender@example.com \
    -t receiver@example.com "127.0.0.1:$port"
  t3=$(now)

  # pigeon's own engine without a queue: 4 connections, messages composed in memory and
  # pipelined in batches of 32 (bench_smtp), on the same sink.
  engine=0
  if [[ -x $build/bench_smtp ]]; then
    engine=$("$build/bench_smtp" 127.0.0.1 "$port" "$n" 4 32 | awk '{print $(NF-1)}')
  fi
  awk -v n="$n" -v r="$round" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v engine="$engine" \
      -v dcpu="$(cpu_of "$work/cpu.daemon")" -v scpu="$(cpu_of "$work/cpu.source")" \
      -v out="$work/rounds" 'BEGIN {
    daemon = n / (b - a); source = n / (d - c);
    per_engine = engine > 0 ? daemon / engine : 0;
    printf("  round %d: daemon %6.0f msgs/s (cpu %.2f s), smtp-source %6.0f (cpu %.2f s), " \
           "bench_smtp %6.0f; ratios %.2f, %.2f\n", r, daemon, dcpu, source, scpu, engine,
           daemon / source, per_engine);
    print daemon, source, engine, dcpu, scpu, daemon / source, per_engine >> out
  }'
done

# Each round runs the three within seconds of each other, so its own ratios cancel the
# machine's drift between rounds: their median is the steadier figure.
sort_col() { awk -v k="$1" '{print $k}' "$work/rounds" | sort -g; }
median() { sort_col "$1" | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
awk -v n="$n" -v args="${DAEMON_ARGS:-}" -v daemon="$(median 1)" -v source="$(median 2)" \
    -v engine="$(median 3)" -v dcpu="$(median 4)" -v scpu="$(median 5)" -v rounds="$rounds" \
    -v rsource="$(median 6)" -v rengine="$(median 7)" 'BEGIN {
  printf "medians of %d rounds:\n", rounds;
  printf "pigeon daemon --once --workers 4   %8.0f msgs/s  (cpu %.2f s) %s\n", daemon, dcpu, args;
  printf "smtp-source -s 4 -d                %8.0f msgs/s  (cpu %.2f s)\n", source, scpu;
  if (engine > 0)
    printf "bench_smtp 4 conns, no queue       %8.0f msgs/s\n", engine;
  printf "ratio daemon/smtp-source           %8.2f   (target >= 1.0)\n", daemon / source;
  if (engine > 0)
    printf "ratio daemon/bench_smtp            %8.2f   (target >= 0.7)\n", daemon / engine;
  printf "median of the per-round ratios     %8.2f (smtp-source)", rsource;
  if (engine > 0)
    printf ", %.2f (bench_smtp)", rengine;
  printf "\n";
}'
