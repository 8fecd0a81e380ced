#!/usr/bin/env bash
# bench/cli.sh BUILD_DIR [N] - one process per message, as cron and scripts use it:
# `pigeon send` in a loop beside msmtp and curl doing the same, against Postfix's
# smtp-sink on loopback, in the same run. Every client sends the same 7.4 KB sample
# (bench/sample.py) N times (default 300) over plaintext SMTP, one process each.
# Prints msgs/s per client and the ratio pigeon/curl (target >= 1.5).
set -eu
build=${1:?usage: bench/cli.sh BUILD_DIR [N]}
build=$(cd "$build" && pwd)
n=${2:-300}
here=$(cd "$(dirname "$0")" && pwd)
pigeon="$build/pigeon"
work=$(mktemp -d)
port=${BENCH_PORT:-25261}
sink_pid=
cleanup() { [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

/usr/bin/python3 - "$here" "$work" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from email.message import EmailMessage
from sample import TEXT, HTML, SUBJECT, FROM, TO
m = EmailMessage(); m["From"], m["To"], m["Subject"] = FROM, TO, SUBJECT
m.set_content(TEXT); m.add_alternative(HTML, subtype="html")
open(sys.argv[2] + "/sample.eml", "wb").write(bytes(m))
open(sys.argv[2] + "/text.txt", "w").write(TEXT)
open(sys.argv[2] + "/body.html", "w").write(HTML)
open(sys.argv[2] + "/subject", "w").write(SUBJECT)
PY
smtp-sink -u nobody 127.0.0.1:$port 1000 & sink_pid=$!
sleep 0.5
eml=$work/sample.eml
printf 'account b\nhost 127.0.0.1\nport %s\nfrom sender@example.com\ntls off\nauth off\naccount default : b\n' \
  "$port" > "$work/msmtprc"
chmod 600 "$work/msmtprc"
subject=$(cat "$work/subject")

# loop NAME SHELL-COMMAND: runs the command n times, prints the rate, sets $secs.
loop() {
  local start end
  start=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    eval "$2" >/dev/null 2>&1 || { echo "bench/cli.sh: $1 failed: $2" >&2; exit 1; }
  done
  end=$(date +%s.%N)
  secs=$(/usr/bin/python3 -c "print($end - $start)")
  /usr/bin/python3 -c "import sys; n,t=int(sys.argv[2]),float(sys.argv[3]); print(f'{sys.argv[1]:<44} {n:5d} msgs {t:7.3f}s {n/t:7.0f} msg/s')" "$1" "$n" "$secs"
}
echo "one process per message, $n messages each, 7.4 KB sample, smtp-sink on 127.0.0.1:$port"
export PIGEON_CONFIG=/dev/null
loop "msmtp (raw message on stdin)" "msmtp -C '$work/msmtprc' receiver@example.com < '$eml'"
loop "curl (raw message file)" \
  "curl -s smtp://127.0.0.1:$port --mail-from sender@example.com --mail-rcpt receiver@example.com -T '$eml'"
t_curl=$secs
loop "pigeon sendmail (raw message on stdin)" \
  "'$pigeon' sendmail -i --host 127.0.0.1 --port $port --tls none receiver@example.com < '$eml'"
t_raw=$secs
loop "pigeon send (composes the message too)" \
  "'$pigeon' send --host 127.0.0.1 --port $port --tls none --from sender@example.com \
   --to receiver@example.com --subject '$subject' --text-file '$work/text.txt' \
   --html-file '$work/body.html'"
t_send=$secs
/usr/bin/python3 -c "import sys; c,r,s=map(float,sys.argv[1:]); print(f'ratio to curl: pigeon sendmail {c/r:.2f}x, pigeon send {c/s:.2f}x (target >= 1.5x)')" \
  "$t_curl" "$t_raw" "$t_send"
