#!/usr/bin/env bash
# bench/webhook.sh BUILD_DIR [N] - webhook delivery from the spool's outbox: 2N events
# (N messages, default 20000: queued + delivered) posted in signed batches by
# `pigeon daemon` to a local receiver that checks every HMAC, with a kill -9 of the daemon
# in the middle (none may be lost), beside a Python sqlite3 + http.client sender posting
# the same events to the same receiver. See bench/webhook.py.
set -eu
build=${1:?usage: bench/webhook.sh BUILD_DIR [N]}
here=$(cd "$(dirname "$0")" && pwd)
for tool in "$build/pigeon" "$build/tool_enqueue" /usr/sbin/smtp-sink; do
  if [[ ! -x $tool ]]; then
    echo "webhook.sh: $tool missing (cmake --build $build; apt-get install postfix)" >&2
    exit 1
  fi
done
exec /usr/bin/python3 "$here/webhook.py" "$build" "${2:-20000}"
