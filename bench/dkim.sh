#!/usr/bin/env bash
# bench/dkim.sh BUILD_DIR - the cost of DKIM-signing the shared 7.4 KB sample, side by side:
#   - pigeon's signer against bare OpenSSL signing with the same key (bench_dkim, one
#     process, alternated rounds): the signature of a 32-byte digest alone (`openssl
#     speed`), and SHA-256 of the whole message then that signature (`openssl dgst -sha256
#     -sign`), RSA-2048 and Ed25519, as ratios of costs (target: at most 1.15x);
#   - `openssl speed` for the two key types, for reference;
#   - dkimpy (Debian python3-dkim, RSA and Ed25519) and nodemailer's DKIM signer (its
#     lib/dkim module: body canonicalized and hashed, header parsed, signed; RSA only, the
#     only algorithm it has) signing the same message with the same keys, as messages per
#     second and the ratio pigeon/peer (target: at least 20x). Beside nodemailer, for
#     scale: its signing step alone (crypto.createSign over the canonical header with the
#     PEM string, as its sign.js does), and Node's bare RSA-2048 signature with a parsed
#     key: no RSA signer can be cheaper than that, whatever wraps it.
# Every rate is per CPU second of the process (as `openssl speed` counts), so that other
# load on the machine does not count. A report, not a test: no thresholds here.
set -eu
build=${1:?usage: bench/dkim.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cache=${PEERS_CACHE:-/tmp/pigeon-bench-peers}
secs=${DKIM_BENCH_SECONDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$build/bench_dkim" "$secs"
"$build/bench_dkim" --write "$work/msg.eml" "$work"

echo
echo "openssl speed (sign/s, for reference):"
openssl speed -seconds 1 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print "  rsa2048 sign/s", $(NF-1)}'
openssl speed -seconds 1 ed25519 2>/dev/null | awk '/^ *253 bits EdDSA/ {print "  ed25519 sign/s", $(NF-1)}'

dkimpy() {
  /usr/bin/python3 - "$work" "$secs" <<'PY'
import sys, time, dkim
work, secs = sys.argv[1], float(sys.argv[2])
msg = open(work + "/msg.eml", "rb").read()
for name, key, algo in (("rsa", open(work + "/rsa.pem", "rb").read(), b"rsa-sha256"),
                        ("ed25519", open(work + "/ed25519.seed", "rb").read().strip(),
                         b"ed25519-sha256")):
    n, start = 0, time.process_time()
    while time.process_time() - start < secs:
        dkim.sign(msg, b"bench", b"example.com", key, signature_algorithm=algo,
                  canonicalize=(b"relaxed", b"relaxed"))
        n += 1
    print(name, n / (time.process_time() - start))
PY
}

if command -v node >/dev/null && command -v npm >/dev/null; then
  if [[ ! -d $cache/node_modules/nodemailer ]]; then
    mkdir -p "$cache" && cp "$here/package.json" "$cache/" &&
      (cd "$cache" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || true
  fi
fi
have_node=0
[[ -d $cache/node_modules/nodemailer ]] && have_node=1
# nodemailer MODE: "dkim" its DKIM module per message; "parts" its signing step alone and
# Node's bare RSA signature (for scale, once).
nodemailer() {
  NODE_PATH=$cache/node_modules node - "$work" "$secs" "$1" <<'JS'
const fs = require('fs');
const crypto = require('crypto');
const { Readable } = require('stream');
const DKIM = require('nodemailer/lib/dkim');
const [work, secs, mode] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const msg = fs.readFileSync(work + '/msg.eml');
const pem = fs.readFileSync(work + '/rsa.pem', 'utf8');
const dkim = new DKIM({ domainName: 'example.com', keySelector: 'bench', privateKey: pem });
const once = () => new Promise((resolve, reject) => {
  const out = dkim.sign(Readable.from([msg]));
  out.on('data', () => {});
  out.on('end', resolve);
  out.on('error', reject);
});
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
// Rate of a synchronous step, per CPU second.
const rate = (fn) => {
  let n = 0;
  const start = cpu();
  let t = 0;
  while (t < secs / 2) {
    fn();
    n++;
    t = cpu() - start;
  }
  return n / t;
};
(async () => {
  if (mode === 'dkim') {
    let n = 0;
    const start = cpu();
    let t = 0;
    while (t < secs) {
      await once();
      n++;
      t = cpu() - start;
    }
    console.log('rsa', n / t);
    return;
  }
  // Its signing step alone: canonical header data of a signature (about 1 KB) signed as
  // its sign.js does, a new Sign object and the PEM string each time.
  const head = Buffer.alloc(1024, 'a');
  console.log('signstep', rate(() => crypto.createSign('RSA-SHA256').update(head).sign(pem)));
  const key = crypto.createPrivateKey(pem);
  console.log('bare', rate(() => crypto.sign('sha256', head, key)));
})();
JS
}

# Alternated rounds: pigeon, dkimpy, nodemailer, each round; the ratio of each round's
# pair, then the median (the machine may be shared: a pair shares its moment's load).
rounds=${DKIM_BENCH_ROUNDS:-3}
: > "$work/rounds"
for r in $(seq "$rounds"); do
  "$build/bench_dkim" --pigeon "$secs" | sed "s/^/$r pigeon /" >> "$work/rounds"
  dkimpy | sed "s/^/$r dkimpy /" >> "$work/rounds"
  if ((have_node)); then
    nodemailer dkim | sed "s/^/$r nodemailer /" >> "$work/rounds"
  fi
done
if ((have_node)); then
  nodemailer parts | sed "s/^/0 node /" >> "$work/rounds"
else
  echo "nodemailer: skipped (no node/npm)"
fi

echo
echo "peers, $rounds alternated rounds of ${secs} s per figure (medians); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
  function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  { rate[$1, $2, $3] = $4; if ($1 > last) last = $1 }
  END {
    printf "%-28s %12s %14s\n", "peer", "msgs/s", "pigeon/peer"
    n = split("dkimpy rsa rsa-2048 dkimpy rsa-sha256|dkimpy ed25519 ed25519 dkimpy ed25519-sha256|nodemailer rsa rsa-2048 nodemailer rsa (DKIM module)", rows, "|")
    for (i = 1; i <= n; i++) {
      split(rows[i], f, " ")
      rates = ""; ratios = ""; mine = ""
      for (r = 1; r <= last; r++) {
        if (!((r, f[1], f[2]) in rate)) continue
        rates = rates " " rate[r, f[1], f[2]]
        mine = mine " " rate[r, "pigeon", f[3]]
        ratios = ratios " " (rate[r, f[1], f[2]] > 0 ? rate[r, "pigeon", f[3]] / rate[r, f[1], f[2]] : 0)
      }
      if (rates == "") continue
      label = rows[i]; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", label)
      printf "%-28s %12.0f %13.1fx\n", label, median(rates), median(ratios)
      pig[f[3]] = median(mine)
    }
    printf "%-28s %12.0f\n", "pigeon rsa-sha256", pig["rsa-2048"]
    printf "%-28s %12.0f\n", "pigeon ed25519-sha256", pig["ed25519"]
    if ((0, "node", "signstep") in rate) {
      printf "for scale, nodemailer signs RSA only; its costs against pigeon rsa-sha256:\n"
      printf "%-28s %12.0f %13.1fx\n", "  its signing step alone", rate[0, "node", "signstep"], pig["rsa-2048"] / rate[0, "node", "signstep"]
      printf "%-28s %12.0f %13.1fx\n", "  node: RSA-2048 sig only", rate[0, "node", "bare"], pig["rsa-2048"] / rate[0, "node", "bare"]
    }
  }' "$work/rounds"
