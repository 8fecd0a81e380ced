#!/usr/bin/env bash
# bench/compose.sh BUILD_DIR [N] - composing messages in memory: pigeon beside Python's
# email package (in-process: EmailMessage + set_content + add_alternative + as_bytes) and
# nodemailer's MailComposer (build()), on the same two workloads:
#   sample  the 7.4 KB bilingual text + HTML message of bench/sample.py
#   1mb     a short text with a 1 MiB binary attachment
# Prints msgs/s for each and the ratios pigeon/python and pigeon/nodemailer.
# N (default 20000) is pigeon's iteration count; the peers run N/10 (they are slower,
# and a rate is a rate). BENCH_N_1MB (default 200) for the 1 MiB workload (peers: /4).
# nodemailer is installed with npm into PEERS_CACHE (default /tmp/pigeon-bench-peers),
# as /work/shared/bench/peers.sh does; without node/npm its column is skipped.
set -eu
build=${1:?usage: bench/compose.sh BUILD_DIR [N]}
n=${2:-20000}
n_big=${BENCH_N_1MB:-200}
n_peer=$(( n / 10 > 100 ? n / 10 : 100 ))
n_peer_big=$(( n_big / 4 > 20 ? n_big / 4 : 20 ))
here=$(cd "$(dirname "$0")" && pwd)
cache=${PEERS_CACHE:-/tmp/pigeon-bench-peers}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bench="$build/bench_compose"
if [[ ! -x $bench ]]; then
  echo "compose.sh: $bench not built (cmake --build $build --target bench_compose)" >&2
  exit 1
fi

# The sample bodies, byte for byte what every composer gets.
/usr/bin/python3 - "$here" "$work" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from sample import TEXT, HTML
open(sys.argv[2] + "/text", "w", encoding="utf-8").write(TEXT)
open(sys.argv[2] + "/html", "w", encoding="utf-8").write(HTML)
PY

"$bench" -n "$n" -m "$n_big" --text "$work/text" --html "$work/html" > "$work/pigeon"

/usr/bin/python3 - "$here" "$work" "$n_peer" "$n_peer_big" > "$work/python" <<'PY'
import os, sys, time
sys.path.insert(0, sys.argv[1])
from email.message import EmailMessage
from sample import FROM, TO, SUBJECT, TEXT, HTML
n, n_big = int(sys.argv[3]), int(sys.argv[4])
blob = os.urandom(1024 * 1024)

def sample():
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = FROM, TO, SUBJECT
    m.set_content(TEXT)
    m.add_alternative(HTML, subtype="html")
    return m.as_bytes()

def big():
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = FROM, TO, SUBJECT
    m.set_content("see the attachment\n")
    m.add_attachment(blob, maintype="application", subtype="octet-stream",
                     filename="report.bin")
    return m.as_bytes()

for name, fn, count in (("sample", sample, n), ("1mb", big, n_big)):
    size = len(fn())
    start = time.perf_counter()
    for _ in range(count):
        fn()
    secs = time.perf_counter() - start
    print(name, count, "%.4f" % secs, "%.0f" % (count / secs), size)
PY

have_node=0
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [[ ! -d $cache/node_modules/nodemailer ]]; then
    mkdir -p "$cache" && cp "$here/package.json" "$cache/" &&
      (cd "$cache" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || true
  fi
  [[ -d $cache/node_modules/nodemailer ]] && have_node=1
fi
if ((have_node)); then
  NODE_PATH=$cache/node_modules node - "$work" "$n_peer" "$n_peer_big" > "$work/node" <<'JS'
const fs = require('fs');
const crypto = require('crypto');
const MailComposer = require('nodemailer/lib/mail-composer');
const [work, n, nBig] = process.argv.slice(2).map((v, i) => (i ? Number(v) : v));
const text = fs.readFileSync(work + '/text', 'utf8');
const html = fs.readFileSync(work + '/html', 'utf8');
const blob = crypto.randomBytes(1024 * 1024);
const base = { from: 'sender@example.com', to: 'receiver@example.com',
               subject: '月度报告通知 — monthly report' };
const sample = () => ({ ...base, text, html });
const big = () => ({ ...base, text: 'see the attachment\n',
  attachments: [{ filename: 'report.bin', content: blob, contentType: 'application/octet-stream' }] });
const build = (mail) => new Promise((ok, fail) =>
  new MailComposer(mail).compile().build((err, msg) => (err ? fail(err) : ok(msg))));
(async () => {
  for (const [name, make, count] of [['sample', sample, n], ['1mb', big, nBig]]) {
    const size = (await build(make())).length;
    const start = process.hrtime.bigint();
    for (let i = 0; i < count; i++) await build(make());
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(name, count, secs.toFixed(4), (count / secs).toFixed(0), size);
  }
})().catch((e) => { console.error(e); process.exit(1); });
JS
fi

/usr/bin/python3 - "$work" "$have_node" <<'PY'
import sys
work, have_node = sys.argv[1], sys.argv[2] == "1"
def load(name):
    rows = {}
    for line in open(work + "/" + name):
        w, n, secs, rate, size = line.split()
        rows[w] = (int(n), float(secs), float(rate), int(size))
    return rows
peers = [("pigeon", load("pigeon")), ("python email", load("python"))]
if have_node:
    peers.append(("nodemailer", load("node")))
print("compose in memory (fresh message each time)")
for w, title in (("sample", "7.4 KB text+html sample"), ("1mb", "1 MiB attachment")):
    print("  %s:" % title)
    for name, rows in peers:
        n, secs, rate, size = rows[w]
        print("    %-14s %7d msgs %8.3fs %10.0f msg/s  %8d bytes/msg" % (name, n, secs, rate, size))
    pig = dict(peers)["pigeon"][w][2]
    ratios = ["pigeon/%s %.1fx" % (name.split()[0], pig / rows[w][2])
              for name, rows in peers[1:]]
    print("    ratio: " + ", ".join(ratios))
if not have_node:
    print("  (nodemailer skipped: node/npm or the package is not available)")
PY
