#!/usr/bin/env bash
# Markdown summary of a results folder: the leaderboards it renders, for a CI job's summary page.
#   scripts/leaderboard-summary.sh RESULTS_DIR [TITLE]
# Prints the Markdown; with $GITHUB_STEP_SUMMARY set (GitHub Actions), appends it there too.
# Renders into a temporary folder: the committed leaderboards/ are never touched.
# $ANIMEREC_BENCH: the command to use (default the checkout's .venv/bin/animerec-bench, else animerec-bench on PATH).
set -euo pipefail

results=${1:?usage: scripts/leaderboard-summary.sh RESULTS_DIR [TITLE]}
title=${2:-Leaderboards}
root=$(cd "$(dirname "$0")/.." && pwd)  # paths given stay relative to the caller
bench=${ANIMEREC_BENCH:-}
if [ -z "$bench" ]; then
  if [ -x "$root/.venv/bin/animerec-bench" ]; then bench=$root/.venv/bin/animerec-bench; else bench=animerec-bench; fi
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bench" leaderboard --results "$results" --out "$out/boards" >&2

{
  echo "## $title"
  echo
  echo "Rendered from \`$results\` ($(find "$results" -name '*.json' ! -name '.*' | wc -l | tr -d ' ') result files)."
  for board in "$out"/boards/*.md; do
    [ "$(basename "$board")" = README.md ] && continue
    echo
    # One level down, so each board's own title nests under this summary's.
    sed 's/^#/##/' "$board"
  done
} > "$out/summary.md"

cat "$out/summary.md"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$out/summary.md" >> "$GITHUB_STEP_SUMMARY"
fi
