#!/usr/bin/env bash
# bench/html.sh BUILD_DIR - HTML mail preparation beside its Node peers, in the same run:
#  1. inline CSS + text part over the corpus (inky/Foundation, MJML, edge cases), per
#     template and in total: pigeon (tool_html) vs juice + html-to-text;
#  2. Markdown to a complete message: pigeon's library (cmark-gfm, inlining) vs marked +
#     juice (rendering and inlining only, no MIME) per message; and `pigeon send --dry-run
#     --markdown-file`, one process per message, start-up included;
#  3. a 50 MB document through the whole pipeline (time and peak memory).
# HTML_BENCH_ROUNDS (default 3) rounds alternate the peers; medians are reported.
# Ratios are peer time / pigeon time (higher is better for pigeon). Needs node and the
# npm peers (scripts/npm-deps.sh); an optimized build (make bench) gives the real figures.
set -eu
build=$(cd "${1:?usage: bench/html.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
tool=$build/tool_html
[[ -x $tool ]] || { echo "html.sh: $tool not built (tests enabled?)" >&2; exit 1; }
command -v node >/dev/null || { echo "html.sh: node not found" >&2; exit 1; }
export NODE_PATH=$(bash "$src/scripts/npm-deps.sh")
peers=$src/tests/integration/html_peers.js
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
node "$peers" corpus "$work/corpus"
n=${HTML_BENCH_RUNS:-50}
rounds=${HTML_BENCH_ROUNDS:-3}
md=$work/mail.md
{
  echo "# Release notes"
  for i in $(seq 1 20); do
    echo
    echo "## Section $i"
    echo
    echo "Some **bold** and _italic_ text with a [link](https://example.com/$i) and \`code\`."
    echo
    echo "- item one"
    echo "- item two with ~~strike~~"
    echo
    echo "| a | b |"
    echo "|---|---|"
    echo "| $i | x |"
  done
} > "$md"

# Rounds alternate the peers (Node, then pigeon, then Node ...) so that both see the same
# machine; each side times its own loop inside its process, after a warm-up, so neither's
# start-up counts. Figures are the medians over the rounds.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  node "$peers" bench "$work/corpus" "$n" > "$work/node.$r"
  for f in "$work"/corpus/*.html; do
    echo "$(basename "$f") $("$tool" --no-images --repeat "$n" "$f" | awk '{print $3, $4}')"
  done > "$work/pigeon.$r"
  node "$peers" mdbench "$md" "$n" | awk '{print "markdown", $2, $3}' >> "$work/node.$r"
  echo "markdown $("$tool" --markdown --repeat "$n" "$md" | awk '{print $3, $4}')" >> "$work/pigeon.$r"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$work" "$rounds" "$n" <<'PY'
import statistics, sys
work, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(side, col):
    runs = []
    for r in range(1, rounds + 1):
        runs.append({l.split()[0]: float(l.split()[col]) for l in open(f"{work}/{side}.{r}")})
    return runs
for col, what in ((1, "wall time"), (2, "CPU time (all threads; the fair figure on a busy machine)")):
    node, pig = load("node", col), load("pigeon", col)
    names = sorted(k for k in pig[0] if k != "markdown")
    for side in (node, pig):
        for run in side:
            run["TOTAL"] = sum(run[k] for k in names)
    print(f"\n== {what}: {n} runs per template, {rounds} alternating rounds, medians")
    print("inline + text part (ms per message; ratio = juice+html-to-text / pigeon)")
    print(f"{'template':28} {'pigeon ms':>10} {'node ms':>10} {'ratio':>7}  per round")
    low = None
    for k in names + ["TOTAL", "markdown"]:
        if k == "markdown":
            print(f"Markdown to a complete message (pigeon: cmark-gfm + inline, the source is "
                  f"the text part; node: marked + juice)")
        p = statistics.median(run[k] for run in pig)
        q = statistics.median(run[k] for run in node)
        per = " ".join(f"{b[k] / a[k]:.1f}x" for a, b in zip(pig, node))
        print(f"{k:28} {p * 1000 / n:10.3f} {q * 1000 / n:10.3f} {q / p:6.1f}x  {per}")
        if k not in ("TOTAL", "markdown"):
            low = min(low or 1e9, q / p)
    print(f"lowest template ratio ({what.split(' (')[0]}): {low:.1f}x")
PY

echo
echo "pigeon send --dry-run --markdown-file, one process per message ($n), start-up included"
t0=$(date +%s.%N)
for i in $(seq 1 "$n"); do
  "$build/pigeon" send --dry-run --from a@example.com --to b@example.com --subject x \
    --markdown-file "$md" > /dev/null
done
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "  %.3f ms per message\n", (b - a) * 1000 / n }'

echo
echo "50 MB document, whole pipeline"
/usr/bin/time -f "  %e s, peak %M KB" "$tool" --gen-big 50 --text-out /dev/null > /dev/null
