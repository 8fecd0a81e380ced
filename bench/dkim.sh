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

"$build/bench_dkim" "$secs" | tee "$work/pigeon"
"$build/bench_dkim" --write "$work/msg.eml" "$work"
rsa_rate=$(awk '$1 == "rsa-2048" {print $2}' "$work/pigeon")
ed_rate=$(awk '$1 == "ed25519" {print $2}' "$work/pigeon")

echo
echo "openssl speed (sign/s, for reference):"
openssl speed -seconds 1 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print "  rsa2048 sign/s", $(NF-1)}'
openssl speed -seconds 1 ed25519 2>/dev/null | awk '/^ *253 bits EdDSA/ {print "  ed25519 sign/s", $(NF-1)}'

echo
printf '%-26s %12s %14s\n' "peer" "msgs/s" "pigeon/peer"
row() { # name rate pigeon_rate
  awk -v n="$1" -v r="$2" -v p="$3" 'BEGIN { printf "%-26s %12.0f %13.1fx\n", n, r, (r > 0 ? p / r : 0) }'
}

/usr/bin/python3 - "$work" "$secs" > "$work/py" <<'PY'
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
row "dkimpy rsa-sha256" "$(awk '$1 == "rsa" {print $2}' "$work/py")" "$rsa_rate"
row "dkimpy ed25519-sha256" "$(awk '$1 == "ed25519" {print $2}' "$work/py")" "$ed_rate"

if command -v node >/dev/null && command -v npm >/dev/null; then
  if [[ ! -d $cache/node_modules/nodemailer ]]; then
    mkdir -p "$cache" && cp "$here/package.json" "$cache/" &&
      (cd "$cache" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || true
  fi
fi
if [[ -d $cache/node_modules/nodemailer ]]; then
  NODE_PATH=$cache/node_modules node - "$work" "$secs" > "$work/node" <<'JS'
const fs = require('fs');
const { Readable } = require('stream');
const DKIM = require('nodemailer/lib/dkim');
const [work, secs] = [process.argv[2], Number(process.argv[3])];
const msg = fs.readFileSync(work + '/msg.eml');
const dkim = new DKIM({ domainName: 'example.com', keySelector: 'bench',
                        privateKey: fs.readFileSync(work + '/rsa.pem', 'utf8') });
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
  let n = 0;
  const start = cpu();
  let t = 0;
  while (t < secs) {
    await once();
    n++;
    t = cpu() - start;
  }
  console.log('rsa', n / t);
  // Its signing step alone: the canonical header data of a signature (about 1 KB) signed
  // as sign.js does it, a new Sign object and the PEM string each time.
  const crypto = require('crypto');
  const pem = fs.readFileSync(work + '/rsa.pem', 'utf8');
  const head = Buffer.alloc(1024, 'a');
  console.log('signstep', rate(() => crypto.createSign('RSA-SHA256').update(head).sign(pem)));
  const key = crypto.createPrivateKey(pem);
  console.log('bare', rate(() => crypto.sign('sha256', head, key)));
})();
JS
  row "nodemailer rsa-sha256" "$(awk '$1 == "rsa" {print $2}' "$work/node")" "$rsa_rate"
  row "  its signing step alone" "$(awk '$1 == "signstep" {print $2}' "$work/node")" "$rsa_rate"
  row "  node: RSA-2048 sig only" "$(awk '$1 == "bare" {print $2}' "$work/node")" "$rsa_rate"
else
  echo "nodemailer: skipped (no node/npm)"
fi
