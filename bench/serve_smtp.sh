#!/usr/bin/env bash
# bench/serve_smtp.sh - `pigeon serve --smtp-listen`: messages accepted a second over SMTP,
# each answered 250 only once it is on disk (group commit), against real Postfix `smtpd`
# accepting into its own queue on the same machine in the same run, and against
# Postfix's `smtp-sink` (accepts and throws away: the SMTP ceiling of the client).
#
#   bench/serve_smtp.sh [BUILD_DIR [MESSAGES [SESSIONS]]]
#
# All three are fed by Postfix's `smtp-source` (-s SESSIONS parallel sessions, default 10,
# MESSAGES messages of 2 KB each, default 5000). Postfix is a private instance set up
# here as root (queue in a temporary folder, every chroot off, every client's mail put on
# hold by an access rule, so that messages stay in its hold queue: its cleanup fsyncs
# each one, as it always does). Reports messages/s for each and the ratio pigeon/Postfix, and checks that
# pigeon's spool holds every message smtp-source sent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-}
msgs=${2:-5000}
sessions=${3:-10}
if [ -z "$build" ] || [ ! -x "$build/pigeon" ]; then
  build=$here/build-bench
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIGEON_TESTS=OFF >/dev/null
  cmake --build "$build" --target pigeon -j2 >/dev/null
fi
for tool in smtp-source smtp-sink postfix; do
  command -v "$tool" >/dev/null || { echo "serve_smtp.sh: $tool is missing (postfix)" >&2; exit 1; }
done
dir=$(mktemp -d "${SPOOL_DIR:-/tmp}/pigeon-smtp-bench.XXXXXX")
chmod 755 "$dir"
pid= sink= pf=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$sink" ] && kill "$sink" 2>/dev/null
  [ -n "$pf" ] && { postfix -c "$dir/pf/etc" stop >/dev/null 2>&1; kill "$pf" 2>/dev/null; }
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# smtp-source -s N -m M -l 2000: the messages/s of one run against 127.0.0.1:$1.
feed() {
  local t0 t1
  t0=$(date +%s.%N)
  smtp-source -s "$sessions" -m "$msgs" -l 2000 -f shop@shop.example -t ann@example.org \
    -M bench.client 127.0.0.1:"$1"
  t1=$(date +%s.%N)
  awk -v n="$msgs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

# ---- pigeon serve ----
export HOME=$dir XDG_STATE_HOME=$dir/state PIGEON_CONFIG=$dir/config
printf '[account main]\nhost = 127.0.0.1\nport = 1\ntls = none\n' > "$PIGEON_CONFIG"
chmod 600 "$PIGEON_CONFIG"
"$build/pigeon" serve --smtp-listen 127.0.0.1:0 --smtp-trust-local --account main \
  --smtp-max-connections 4096 2> "$dir/serve.err" &
pid=$!
for _ in $(seq 50); do grep -q "smtp port " "$dir/serve.err" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*(smtp port \([0-9]*\)).*/\1/p' "$dir/serve.err")
[ -n "$port" ] || { cat "$dir/serve.err" >&2; exit 1; }
echo "smtp-source -s $sessions -m $msgs -l 2000 (2 KB messages)"
pigeon_rate=$(feed "$port")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
stored=$("$build/pigeon" queue stats --json | sed -n 's/.*"messages": *\([0-9]*\).*/\1/p' | head -1)

# ---- Postfix smtpd into its own queue ----
pfport=$(free_port)
mkdir -p "$dir/pf/etc" "$dir/pf/queue" "$dir/pf/data"
chown postfix "$dir/pf/data"
cat > "$dir/pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/pf/queue
data_directory = $dir/pf/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.postfix.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_restrictions = check_client_access static:HOLD
default_process_limit = 200
maillog_file = /dev/stdout
EOF
# Debian's master.cf with every chroot off and smtpd on our port.
awk -v port="$pfport" '
  /^smtp[ \t]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
  /^[a-z0-9]/ && NF >= 8 { $5 = "n" }
  { print }' /etc/postfix/master.cf > "$dir/pf/etc/master.cf"
postfix -c "$dir/pf/etc" start-fg > "$dir/pf/log" 2>&1 &
pf=$!
if wait_port "$pfport"; then
  postfix_rate=$(feed "$pfport")
  held=$(find "$dir/pf/queue/hold" -type f 2>/dev/null | wc -l)
  postfix -c "$dir/pf/etc" stop >/dev/null 2>&1 || true
  wait "$pf" 2>/dev/null || true; pf=
else
  postfix_rate=0 held=0
  echo "serve_smtp.sh: Postfix did not start (needs root); its figure is missing" >&2
fi

# ---- smtp-sink: the ceiling ----
sinkport=$(free_port)
smtp-sink -u nobody -c 127.0.0.1:"$sinkport" 1024 > /dev/null &
sink=$!
wait_port "$sinkport"
sink_rate=$(feed "$sinkport")
kill "$sink"; wait "$sink" 2>/dev/null || true; sink=

printf '%-44s %8s msgs/s  (spool holds %s of %s)\n' "pigeon serve (250 after a durable commit)" \
  "$pigeon_rate" "$stored" "$msgs"
printf '%-44s %8s msgs/s  (%s held in its queue)\n' "Postfix smtpd (into its queue, fsync each)" \
  "$postfix_rate" "$held"
printf '%-44s %8s msgs/s\n' "smtp-sink (accepts, stores nothing)" "$sink_rate"
awk -v a="$pigeon_rate" -v b="$postfix_rate" -v c="$sink_rate" 'BEGIN {
  if (b > 0) printf "ratio pigeon/Postfix smtpd: %.2fx\n", a / b
  printf "ratio pigeon/smtp-sink: %.2fx\n", a / c }'
[ "$stored" = "$msgs" ] || { echo "serve_smtp.sh: the spool holds $stored, not $msgs" >&2; exit 1; }
