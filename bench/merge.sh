#!/usr/bin/env bash
# bench/merge.sh BUILD_DIR [N] - mail merge into the spool: `pigeon send --queue --to-file`
# composes one personalized message per row (the 7.4 KB bilingual sample of sample.py
# with {{name}}, {{city}} and {{code}} in the subject, text and HTML, and a per-row
# List-Unsubscribe) and stores them all in the spool in one durable batch. Beside it,
# in the same run, the same job in Python: chevron-free string templates (str.replace per
# variable), email.message.EmailMessage, and one SQLite transaction (WAL, synchronous=FULL).
# Python runs the first N/5 rows (it is slow; rates are per message). Prints msgs/s of
# wall time and of CPU time (user + system: on a shared machine the fair figure) for N rows
# (default 10,000; target >= 10,000/s), the ratio pigeon/python, and pigeon's max RSS for N
# and 10*N rows (bounded memory: the list is streamed).
set -eu
build=${1:?usage: bench/merge.sh BUILD_DIR [N]}
build=$(cd "$build" && pwd)
n=${2:-10000}
here=$(cd "$(dirname "$0")" && pwd)
pigeon="$build/pigeon"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$here" "$work" "$n" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from sample import TEXT, HTML, SUBJECT
work, n = sys.argv[2], int(sys.argv[3])
open(work + "/subject", "w").write(SUBJECT + " {{name}}")
open(work + "/text.txt", "w").write("Dear {{name}} ({{city}}),\n" + TEXT + "code {{code}}\n")
open(work + "/body.html", "w").write(HTML.replace("<body>", "<body><p>Dear {{name}} ({{city}})</p>")
                                     .replace("</body>", "<p>code {{code}}</p></body>"))
for rows, name in ((n, "list.csv"), (n * 10, "big.csv")):
    with open(work + "/" + name, "w") as f:
        f.write("email,name,city,code\n")
        for i in range(rows):
            f.write('user%d@example.com,"User %d, Jr.",城市%d,C%06d\n' % (i, i, i % 97, i))
PY
cat > "$work/config" <<CFG
[account main]
host = 127.0.0.1
port = 25
tls = none
from = Sender <sender@example.com>
CFG
chmod 600 "$work/config"
subject=$(cat "$work/subject")

# run LIST STATE: one queued merge; prints "seconds cpu_seconds maxrss_kb".
run() {
  PIGEON_CONFIG=$work/config XDG_STATE_HOME=$2 /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
    "$pigeon" send --queue --to-file "$1" --subject "$subject" --text-file "$work/text.txt" \
    --html-file "$work/body.html" --unsubscribe 'https://example.com/u?id={{code}}' \
    >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r e u s m <"$work/time"
  echo "$e $(/usr/bin/python3 -c "print($u + $s)") $m"
}
read -r t_small c_small rss_small < <(run "$work/list.csv" "$work/s1")
queued=$("$pigeon" queue stats --json --spool "$work/s1/pigeon/spool.db" 2>/dev/null |
  /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin).get('messages', '?'))" 2>/dev/null || echo "?")
read -r t_big c_big rss_big < <(run "$work/big.csv" "$work/s2")
# The same rows composed but not stored (--dry-run into /dev/null): what the spool costs.
PIGEON_CONFIG=$work/config /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$pigeon" send \
  --dry-run --mbox /dev/null --to-file "$work/list.csv" --subject "$subject" \
  --text-file "$work/text.txt" --html-file "$work/body.html" \
  --unsubscribe 'https://example.com/u?id={{code}}' >/dev/null 2>&1
read -r t_dry u s rss_dry <"$work/time"
c_dry=$(/usr/bin/python3 -c "print($u + $s)")

py=$(/usr/bin/python3 - "$work" $((n / 5)) <<'PY'
import csv, itertools, sqlite3, sys, time
from email.message import EmailMessage
from email.policy import SMTP
work = sys.argv[1]
subject = open(work + "/subject").read()
text = open(work + "/text.txt").read()
html = open(work + "/body.html").read()
def fill(t, row, esc=False):
    for k, v in row.items():
        if esc:
            v = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        t = t.replace("{{%s}}" % k, v)
    return t
rows = int(sys.argv[2])
start, cpu = time.time(), time.process_time()
db = sqlite3.connect(work + "/py.db")
db.execute("pragma journal_mode=wal"); db.execute("pragma synchronous=full")
db.execute("create table m (id integer primary key, rcpt text, body blob)")
with open(work + "/list.csv", newline="") as f:
    db.execute("begin")
    for row in itertools.islice(csv.DictReader(f), rows):
        m = EmailMessage(policy=SMTP)
        m["From"] = "Sender <sender@example.com>"
        m["To"] = '"%s" <%s>' % (row["name"], row["email"])
        m["Subject"] = fill(subject, row)
        m["List-Unsubscribe"] = "<https://example.com/u?id=%s>" % row["code"]
        m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        m.set_content(fill(text, row))
        m.add_alternative(fill(html, row, True), subtype="html")
        db.execute("insert into m (rcpt, body) values (?, ?)", (row["email"], bytes(m)))
    db.commit()
print(time.time() - start, time.process_time() - cpu)
PY
)
/usr/bin/python3 - "$n" "$t_small" "$c_small" "$t_big" "$c_big" "$rss_small" "$rss_big" $py "$queued" \
  "$t_dry" "$c_dry" "$rss_dry" <<'PY'
import sys
n = int(sys.argv[1])
ts, cs, tb, cb, rs, rb, tp, cp = map(float, sys.argv[2:10])
q, npy = sys.argv[10], n // 5
td, cd, rd = map(float, sys.argv[11:14])
print("mail merge into the spool, one durable batch, 7.4 KB personalized messages")
print(f"{'':32} {'rows':>7} {'wall s':>8} {'msg/s':>8} {'cpu s':>7} {'msg/cpu-s':>10} {'max RSS':>9}")
print(f"{'pigeon send --queue --to-file':32} {n:7d} {ts:8.3f} {n/ts:8.0f} {cs:7.3f} {n/cs:10.0f} {rs/1024:6.1f} MiB")
print(f"{'pigeon send --queue --to-file':32} {n*10:7d} {tb:8.3f} {n*10/tb:8.0f} {cb:7.3f} {n*10/cb:10.0f} {rb/1024:6.1f} MiB")
print(f"{'  (composed only, --dry-run)':32} {n:7d} {td:8.3f} {n/td:8.0f} {cd:7.3f} {n/cd:10.0f} {rd/1024:6.1f} MiB")
print(f"{'python email + sqlite3':32} {npy:7d} {tp:8.3f} {npy/tp:8.0f} {cp:7.3f} {npy/cp:10.0f}")
print(f"spool holds {q} messages after the {n}-row run")
print(f"ratio pigeon/python: {(n/ts)/(npy/tp):.1f}x wall, {(n/cs)/(npy/cp):.1f}x cpu; "
      f"target >= 10,000 msg/s: wall {'met' if n/ts >= 10000 else 'NOT met'}, "
      f"cpu {'met' if n/cs >= 10000 else 'NOT met'}; max RSS for 10x the rows: {rb/rs:.2f}x")
PY
