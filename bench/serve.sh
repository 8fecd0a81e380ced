#!/usr/bin/env bash
# bench/serve.sh - `pigeon serve`: accepted messages a second over HTTP, durably stored.
#
#   bench/serve.sh [BUILD_DIR [SECONDS]]     (REPEATS=3 alternating runs of each)
#
# wrk (Debian) with 64 keep-alive connections POSTs a 2 KB JSON message to /v1/messages
# with an API key; every 202 is a message on disk (group commit). Then the same server
# answering GET /healthz, which its loop thread answers at once: the HTTP ceiling to
# compare with, alternating, REPEATS times. Reports each run and the medians: requests/s,
# p99 latency, their ratio, messages per server CPU-second and the load average (the
# machine is shared), and checks that the spool holds as many messages as wrk saw 202s.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-}
secs=${2:-10}
if [ -z "$build" ] || [ ! -x "$build/pigeon" ]; then
  build=$here/build-bench
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIGEON_TESTS=OFF >/dev/null
  cmake --build "$build" --target pigeon -j2 >/dev/null
fi
command -v wrk >/dev/null || { echo "serve.sh: wrk is missing (scripts/deps.sh --bench)" >&2; exit 1; }
dir=$(mktemp -d "${SPOOL_DIR:-/tmp}/pigeon-serve-bench.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
export HOME=$dir XDG_STATE_HOME=$dir/state PIGEON_CONFIG=$dir/config
printf '[account main]\nhost = 127.0.0.1\nport = 1\ntls = none\n' > "$PIGEON_CONFIG"
chmod 600 "$PIGEON_CONFIG"
key=$("$build/pigeon" key create --account main)
"$build/pigeon" serve --http-listen 127.0.0.1:0 2> "$dir/serve.err" &
pid=$!
for _ in $(seq 50); do grep -q "port " "$dir/serve.err" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$dir/serve.err")
[ -n "$port" ] || { cat "$dir/serve.err" >&2; exit 1; }
# A 2 KB message: a text body of about 1,800 characters.
text=$(head -c 1800 /dev/zero | tr '\0' 'x' | fold -w 70 | paste -sd'|' | sed 's/|/\\n/g')
cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = [[{"from":"Shop <shop@shop.example>","to":["Ann <ann@example.org>"],"subject":"Your order 42 has shipped","headers":{"X-Order":"42"},"text":"$text"}]]
LUA
echo "body: $(lua_len=$(grep -o "wrk.body = .*" "$dir/post.lua" | wc -c); echo $lua_len) bytes of JSON, 64 connections, ${secs}s"
# CPU seconds the server used (utime + stime), to report messages per CPU-second: a figure
# that depends much less on what else the shared machine runs than messages a second do.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"; }
rate() { awk '/^Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
bad() { awk '/Non-2xx/ {print $NF}' "$1"; }
total() { awk '/requests in/ {print $1}' "$1"; }
median() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# Warm-up: the spool's page cache and the allocator reach their steady state (a server
# that has run for a few seconds), so that the runs below do not measure first touches.
wrk -t2 -c64 -d3s -s "$dir/post.lua" "http://127.0.0.1:$port/v1/messages" > /dev/null
# Alternating runs, the durable POSTs beside the empty handler (GET /healthz, answered by
# the loop thread at once: the HTTP ceiling of the same server), REPEATS of each.
repeats=${REPEATS:-3}
posted=0
: > "$dir/rows"
for i in $(seq "$repeats"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  cpu0=$(cpu)
  wrk -t2 -c64 -d"${secs}s" --latency -s "$dir/post.lua" "http://127.0.0.1:$port/v1/messages" > "$dir/post.out"
  cpu1=$(cpu)
  wrk -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/healthz" > "$dir/empty.out"
  n=$(total "$dir/post.out")
  posted=$((posted + n))
  per_cpu=$(awk -v n="$n" -v c0="$cpu0" -v c1="$cpu1" 'BEGIN { printf "%.0f", n / (c1 - c0) }')
  printf 'run %d: POST %8s msg/s p99 %-9s non-2xx %-4s | empty %8s req/s p99 %-9s | %6s msg per CPU-s | load %s\n' \
    "$i" "$(rate "$dir/post.out")" "$(p99 "$dir/post.out")" "$(bad "$dir/post.out" || true)" \
    "$(rate "$dir/empty.out")" "$(p99 "$dir/empty.out")" "$per_cpu" "$load"
  echo "$(rate "$dir/post.out") $(rate "$dir/empty.out") $per_cpu $load" >> "$dir/rows"
done
post_rate=$(cut -d' ' -f1 "$dir/rows" | median)
empty_rate=$(cut -d' ' -f2 "$dir/rows" | median)
per_cpu=$(cut -d' ' -f3 "$dir/rows" | median)
load=$(cut -d' ' -f4 "$dir/rows" | median)
printf 'median of %d: %-34s %10.0f msg/s\n' "$repeats" "POST /v1/messages (durable, 2 KB)" "$post_rate"
printf 'median of %d: %-34s %10.0f req/s\n' "$repeats" "GET /healthz (empty handler)" "$empty_rate"
awk -v a="$post_rate" -v b="$empty_rate" 'BEGIN { printf "ratio durable/empty: %.2fx\n", a / b }'
echo "messages per server CPU-second (median): $per_cpu; load average during the runs (median): $load"
# What 2 free cores would carry at that cost per message, an upper bound (the target is
# 12,000 msg/s; the server's loop and committer threads would both have to be busy).
awk -v c="$per_cpu" 'BEGIN { printf "at that cost per message, 2 free cores: at most %.0f msg/s\n", c * 2 }'
# 10,000 idle keep-alive connections, each after one request: the server's RSS.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
/usr/bin/python3 - "$port" "$pid" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(10000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
for s in socks:
    s.recv(4096)
time.sleep(0.5)
rss = [l.split()[1] for l in open("/proc/%s/status" % pid) if l.startswith("VmRSS")][0]
print("10000 idle keep-alive connections held: server RSS %.1f MB" % (int(rss) / 1024))
PY
echo "(RSS before them: $((before / 1024)) MB)"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
stored=$("$build/pigeon" queue stats --json | sed -n 's/.*"messages": *\([0-9]*\).*/\1/p' | head -1)
echo "spool holds ${stored:-?} messages; wrk completed $posted POSTs after the warm-up (stored includes the warm-up's)"
