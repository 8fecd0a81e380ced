#!/usr/bin/env bash
# bench/html.sh BUILD_DIR - HTML mail preparation beside its Node peers, in the same run:
#  1. inline CSS + text part over the corpus (inky/Foundation, MJML, edge cases), per
#     template and in total: pigeon (tool_html) vs juice + html-to-text;
#  2. Markdown to a complete message: `pigeon send --dry-run --markdown-file` per message
#     vs marked + juice (rendering and inlining only, no MIME) per message;
#  3. a 50 MB document through the whole pipeline (time and peak memory).
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

echo "inline + text part, $n runs per template (seconds; ratio = juice+html-to-text / pigeon)"
node "$peers" bench "$work/corpus" "$n" > "$work/node.txt"
total_p=0
printf '%-28s %10s %10s %8s\n' template pigeon node ratio
for f in "$work"/corpus/*.html; do
  name=$(basename "$f")
  p=$("$tool" --no-images --repeat "$n" "$f" | awk '{print $3}')
  q=$(awk -v n="$name" '$1 == n {print $2}' "$work/node.txt")
  total_p=$(awk -v a="$total_p" -v b="$p" 'BEGIN {print a + b}')
  awk -v n="$name" -v p="$p" -v q="$q" 'BEGIN {printf "%-28s %10.4f %10.4f %7.1fx\n", n, p, q, q / p}'
done
q=$(awk '$1 == "total" {print $2}' "$work/node.txt")
awk -v p="$total_p" -v q="$q" 'BEGIN {printf "%-28s %10.4f %10.4f %7.1fx\n", "TOTAL", p, q, q / p}'

echo
echo "Markdown to a complete message, $n messages"
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
t0=$(date +%s.%N)
for i in $(seq 1 "$n"); do
  "$build/pigeon" send --dry-run --from a@example.com --to b@example.com --subject x \
    --markdown-file "$md" > /dev/null
done
t1=$(date +%s.%N)
p_proc=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
p_lib=$("$tool" --markdown --repeat "$n" "$md" | awk '{print $3}')
q=$(node "$peers" mdbench "$md" "$n" | awk '{print $2}')
awk -v p="$p_lib" -v c="$p_proc" -v q="$q" 'BEGIN {
  printf "pigeon library (render+inline+text) %.4fs, marked+juice %.4fs: %.1fx\n", p, q, q / p
  printf "pigeon send --dry-run per message, process start included: %.4fs (%.1fx)\n", c, q / c }'

echo
echo "50 MB document, whole pipeline"
/usr/bin/time -f "  %e s, peak %M KB" "$tool" --gen-big 50 --text-out /dev/null > /dev/null
