#!/usr/bin/env bash
# bench/bounce.sh BUILD_DIR [N] - classifying bounces from a local mailbox file (issue 13:
# at least 10,000 a second): tests/corpus/bounce/*.eml (DSNs, ARF, Exim, qmail, Exchange,
# Gmail, QQ, 163, auto-replies...) repeated into one mbox of N messages (default 20000),
# read by `pigeon bounces parse --json` beside a Python classifier on the email package
# doing the same work (mailbox.mbox, the delivery-status and feedback-report parts, the
# text parts for non-standard notices, status codes and keywords, one JSON line per
# recipient), in the same run. Prints msgs/s for each and the ratio pigeon/python.
set -eu
build=${1:?usage: bench/bounce.sh BUILD_DIR [N]}
build=$(cd "$build" && pwd)
n=${2:-20000}
n_peer=$(( n / 5 > 500 ? n / 5 : 500 ))
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/../tests/corpus/bounce"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$corpus" "$work" "$n" "$n_peer" <<'PY'
import glob, mailbox, sys
corpus, work, n, n_peer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
msgs = [open(p, "rb").read() for p in sorted(glob.glob(corpus + "/*.eml"))]
for name, count in (("all.mbox", n), ("peer.mbox", n_peer)):
    box = mailbox.mbox(work + "/" + name)
    box.lock()
    for i in range(count):
        box.add(msgs[i % len(msgs)])
    box.flush(); box.unlock(); box.close()
PY

cat > "$work/classify.py" <<'PY'
import email, json, mailbox, re, sys
KEYWORDS = [("mailbox full", "soft"), ("over quota", "soft"), ("user unknown", "hard"),
            ("no such user", "hard"), ("does not exist", "hard"), ("not found", "hard"),
            ("spam", "block"), ("blocked", "block"), ("blacklist", "block"),
            ("policy", "block"), ("greylist", "soft"), ("用户不存在", "hard"),
            ("垃圾邮件", "block"), ("try again later", "soft")]
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
ADDR = re.compile(r"<?([^\s<>:]+@[^\s<>:]+\.[^\s<>:]+)>?")
def classify(status, text):
    m = STATUS.search(status or "") or STATUS.search(text or "")
    if m and m.group(1) == "4": return "soft"
    if m and (m.group(2), m.group(3)) in (("1", "1"), ("1", "2"), ("1", "10")): return "hard"
    if m and (m.group(2), m.group(3)) == ("2", "2"): return "soft"
    if m and m.group(2) == "7": return "block"
    low = (text or "").lower()
    for k, c in KEYWORDS:
        if k in low: return c
    return "hard" if m else "undetermined"
def untyped(v): return str(v).split(";", 1)[-1].strip()
out = sys.stdout
for msg in mailbox.mbox(sys.argv[1], factory=lambda f: email.message_from_binary_file(f)):
    rows, texts, orig = [], [], {}
    for part in msg.walk():
        ct = part.get_content_type()
        if ct == "message/delivery-status":
            for block in part.get_payload()[1:]:
                fr = block.get("Final-Recipient")
                if fr is None: continue
                diag = untyped(block.get("Diagnostic-Code", ""))
                rows.append({"rcpt": untyped(fr), "status": block.get("Status"),
                             "class": classify(block.get("Status"), diag), "diagnostic": diag})
        elif ct == "message/feedback-report":
            f = part.get_payload()[0]
            for r in f.get_all("Original-Rcpt-To") or [""]:
                rows.append({"rcpt": r.strip("<> "), "class": "complaint"})
        elif ct in ("message/rfc822", "text/rfc822-headers"):
            h = part.get_payload()[0] if ct == "message/rfc822" else email.message_from_string(part.get_payload())
            orig = {"message_id": h.get("Message-ID"), "from": h.get("From"), "to": h.get("To")}
        elif ct.startswith("text/"):
            payload = part.get_payload(decode=True) or b""
            texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    if not rows:
        text = "\n".join(texts)
        auto = msg.get("Auto-Submitted", "").startswith("auto-replied") or msg.get("X-Autoreply")
        if auto and not re.search("delivery|qmail-send|退信", text, re.I):
            rows.append({"rcpt": None, "class": "none"})
        else:
            for m in ADDR.finditer(text[:4000]):
                rows.append({"rcpt": m.group(1), "class": classify(None, text[m.end():m.end() + 400])})
                break
    for r in rows or [{"rcpt": None, "class": "none"}]:
        r.update(orig)
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
PY

# Wall time and CPU time (user + system) of each run: on a shared machine the CPU rate
# is the steadier figure; both are printed.
measure() { # OUT CMD... -> "wall cpu"
  local out=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" > "$out"
  awk '{ printf "%s %s\n", $1, $2 + $3 }' "$work/time"
}
read -r pw pc < <(measure "$work/pigeon.out" "$build/pigeon" bounces parse --json "$work/all.mbox")
read -r yw yc < <(measure "$work/python.out" /usr/bin/python3 "$work/classify.py" "$work/peer.mbox")
/usr/bin/python3 - "$n" "$pw" "$pc" "$n_peer" "$yw" "$yc" "$(ls "$corpus"/*.eml | wc -l)" \
  "$(wc -l < "$work/pigeon.out")" "$(wc -l < "$work/python.out")" <<'PY'
import sys
n, pw, pc, m, yw, yc = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
r = lambda k, t: k / max(t, 1e-3)
print("bounce classification from an mbox (%s corpus messages repeated):" % sys.argv[7])
print("  %-22s %7s msgs  %8.0f msgs/s wall  %8.0f msgs/s cpu  (%s lines)" % ("pigeon bounces parse", n, r(n, pw), r(n, pc), sys.argv[8]))
print("  %-22s %7s msgs  %8.0f msgs/s wall  %8.0f msgs/s cpu  (%s lines)" % ("python email", m, r(m, yw), r(m, yc), sys.argv[9]))
print("  ratio pigeon/python: %.1fx wall, %.1fx cpu (target: >= 10000 msgs/s)" % (r(n, pw) / r(m, yw), r(n, pc) / r(m, yc)))
PY
