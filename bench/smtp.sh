#!/usr/bin/env bash
# bench/smtp.sh - SMTP messages per second, composing each message (the 7.4 KB sample of
# /work/shared/bench/sample.py), against Postfix smtp-sink on loopback, beside the peers
# (smtp-source, Python smtplib, nodemailer pooled, msmtp, curl, swaks) run by
# /work/shared/bench/peers.sh.
#
#   bench/smtp.sh [BUILD_DIR [N]]     (default: builds build-bench-smtp; 2000 messages)
#
# Runs peers.sh (../shared/bench/peers.sh beside the repository, else PEERS_SH) with our
# 1-connection client (batches of 32, one round trip per message) as its "yours" line,
# then a second smtp-sink: ours (batched and one by one, 1 and 4 connections) beside
# `smtp-source -d` and `smtp-source -s 4 -d` on the same sink, each run $REPS times
# (default 3) because loopback figures on a shared machine are noisy.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-}
N=${2:-2000}
if [[ -z $build || ! -x $build/bench_smtp ]]; then
  build=${BUILD:-$here/build-bench-smtp}
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPIGEON_TESTS=OFF >/dev/null
  cmake --build "$build" --target bench_smtp -j2 >/dev/null
fi
bench=$build/bench_smtp
peers=${PEERS_SH:-$here/../shared/bench/peers.sh}
[[ -x $peers || -f $peers ]] || peers=/work/shared/bench/peers.sh

echo "== one connection (peers.sh; 'yours' is pigeon over 1 connection)"
bash "$peers" "$N" -- "$bench" 127.0.0.1 {PORT} {N} 1

echo "== same sink, $N messages, ${REPS:=3} runs each"
PORT=${PORT4:-25252}
smtp-sink -u nobody 127.0.0.1:$PORT 1000 & SINK=$!
trap 'kill $SINK 2>/dev/null' EXIT
sleep 0.5
M=/tmp/pigeon-sample.eml # written by peers.sh above
source_line() { # label, smtp-source options...
  local label=$1; shift
  local s=$(date +%s.%N); smtp-source "$@" -m "$N" -F "$M" 127.0.0.1:$PORT >/dev/null 2>&1
  local e=$(date +%s.%N)
  /usr/bin/python3 -c "import sys; n,t=$N,$e-$s; print(f'{sys.argv[1]:<34} {n:6d} msgs {t:7.3f}s {n/t:9.0f} msg/s')" "$label"
}
for r in $(seq "$REPS"); do
  source_line "smtp-source (1 conn, reuse)" -d
  "$bench" 127.0.0.1 $PORT "$N" 1 32
  "$bench" 127.0.0.1 $PORT "$N" 1 0
  source_line "smtp-source (4 conns, reuse)" -s 4 -d
  "$bench" 127.0.0.1 $PORT "$N" 4 32
  "$bench" 127.0.0.1 $PORT "$N" 4 0
done
