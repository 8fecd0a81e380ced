#!/usr/bin/env bash
# bench/cli.sh BUILD_DIR [N [PIGEON...]] - one process per message, as cron and scripts use it:
# `pigeon send` in a loop beside msmtp and curl doing the same, against Postfix's
# smtp-sink on loopback, in the same run. Every client sends the same 7.4 KB sample
# (bench/sample.py) N times (default 300) over plaintext SMTP, one process each.
# Prints msgs/s per client and the ratios to curl and msmtp (targets 3x and 10x). msmtp
# writes the message line by line without TCP_NODELAY, so its final ".\r\n" waits for
# smtp-sink's delayed ACK (Nagle): ~40 ms per message on loopback, which sets its rate.
# Extra PIGEON paths (other builds: before/after a change) run `sendmail` beside, in the
# same loop. pigeon runs with a state directory of its own (XDG_STATE_HOME), without a
# spool, as a cron job on a machine without the daemon; one more row runs `sendmail` with
# a spool there, whose (empty) suppression list each message is checked against.
set -eu
build=${1:?usage: bench/cli.sh BUILD_DIR [N]}
build=$(cd "$build" && pwd)
n=${2:-300}
shift $(($# > 1 ? 2 : 1))
here=$(cd "$(dirname "$0")" && pwd)
pigeon="$build/pigeon"
work=$(mktemp -d)
port=${BENCH_PORT:-$(/usr/bin/python3 -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")}
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

mkdir -p "$work/state" "$work/state-spool/pigeon"
"$pigeon" suppress add --spool "$work/state-spool/pigeon/spool.db" x@example.com >/dev/null
"$pigeon" suppress remove --spool "$work/state-spool/pigeon/spool.db" x@example.com >/dev/null
echo "one process per message, $n messages each, 7.4 KB sample, smtp-sink on 127.0.0.1:$port"
# One driver for every client (Python spawning each process directly, no shell), the
# clients interleaved message by message so that a busy machine slows them alike.
PIGEON_CONFIG=/dev/null /usr/bin/python3 - "$n" "$work" "$port" "$pigeon" "$subject" "$@" <<'PY'
import os, subprocess, sys, time
n, work, port, pigeon, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
others = sys.argv[6:]
eml = f"{work}/sample.eml"
clients = [
    ("/bin/true (exec floor)", ["/bin/true"], eml),
    ("msmtp (raw message on stdin)", ["msmtp", "-C", f"{work}/msmtprc", "receiver@example.com"], eml),
    ("curl (raw message file)", ["curl", "-s", f"smtp://127.0.0.1:{port}", "--mail-from",
     "sender@example.com", "--mail-rcpt", "receiver@example.com", "-T", eml], None),
    ("pigeon sendmail (raw message on stdin)", [pigeon, "sendmail", "-i", "--host", "127.0.0.1",
     "--port", port, "--tls", "none", "receiver@example.com"], eml),
    ("pigeon send (composes the message too)", [pigeon, "send", "--host", "127.0.0.1", "--port",
     port, "--tls", "none", "--from", "sender@example.com", "--to", "receiver@example.com",
     "--subject", subject, "--text-file", f"{work}/text.txt", "--html-file", f"{work}/body.html"],
     None),
    ("pigeon sendmail, a spool's suppression list", [pigeon, "sendmail", "-i", "--host",
     "127.0.0.1", "--port", port, "--tls", "none", "receiver@example.com"], eml),
]
env = dict(os.environ, XDG_STATE_HOME=f"{work}/state")
env_spool = dict(os.environ, XDG_STATE_HOME=f"{work}/state-spool")
for other in others:
    clients.append((f"sendmail of {other}"[:44], [other, "sendmail", "-i", "--host", "127.0.0.1",
                    "--port", port, "--tls", "none", "receiver@example.com"], eml))
total = [0.0] * len(clients)
for i in range(n):
    for k, (name, argv, stdin) in enumerate(clients):
        with open(stdin or os.devnull, "rb") as f:
            t = time.perf_counter()
            r = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env_spool if name.endswith("suppression list") else env)
            total[k] += time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f"bench/cli.sh: {name} failed ({r.returncode}): {r.stderr.decode()[:300]}")
rate = {}
for (name, _, _), t in zip(clients, total):
    rate[name] = n / t
    print(f"{name:<44} {n:5d} msgs {t:7.3f}s {n / t:7.0f} msg/s  {t / n * 1000:6.2f} ms/msg")
for (name, _, _) in clients[6:]:
    print(f"  {name}: {rate[name] / rate[clients[2][0]]:.2f}x curl, "
          f"{rate[name] / rate[clients[1][0]]:.2f}x msmtp")
names = [c[0] for c in clients]
sm, send, curl, msmtp = rate[names[3]], rate[names[4]], rate[names[2]], rate[names[1]]
smsp = rate[names[5]]
print(f"ratio: pigeon sendmail {sm / curl:.2f}x curl, {sm / msmtp:.2f}x msmtp; "
      f"pigeon send {send / curl:.2f}x curl, {send / msmtp:.2f}x msmtp "
      f"(targets: 3x curl, 10x msmtp); with a spool to check: sendmail "
      f"{smsp / curl:.2f}x curl, {smsp / msmtp:.2f}x msmtp")
# The same without the cost of spawning a process from this driver (the /bin/true row),
# which every client pays alike.
floor = total[0]
net = [t - floor for t in total]
print(f"net of the exec floor: pigeon sendmail {net[2] / net[3]:.2f}x curl, "
      f"{net[1] / net[3]:.2f}x msmtp; pigeon send {net[2] / net[4]:.2f}x curl, "
      f"{net[1] / net[4]:.2f}x msmtp")
PY
