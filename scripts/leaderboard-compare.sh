#!/usr/bin/env bash
# Compare a PR's results with the base branch's through `animerec-bench compare --base --head`;
# fail on an unintended regression.
#   scripts/leaderboard-compare.sh BASE_RESULTS NEW_RESULTS [MODEL ...]
# MODELs: the models the change means to affect, passed as --expect-change, with every `model:NAME`
# label in $PR_LABELS (space-separated, as the workflow passes a PR's labels); `compare` counts a
# model whose declared version differs between the folders as meant too.
# The threshold is $REGRESSION_THRESHOLD (relative change of a task's primary metric, a fraction of
# the base value; default 0.02); a regression must also be significant where per-user values exist.
# Prints the Markdown table; with $GITHUB_STEP_SUMMARY set, appends it there too (also when it fails).
# $ANIMEREC_BENCH: the command to use (default the checkout's .venv/bin/animerec-bench, else animerec-bench on PATH).
set -euo pipefail

base=${1:?usage: scripts/leaderboard-compare.sh BASE_RESULTS NEW_RESULTS [MODEL ...]}
new=${2:?usage: scripts/leaderboard-compare.sh BASE_RESULTS NEW_RESULTS [MODEL ...]}
shift 2
expect=()
for model in "$@"; do expect+=(--expect-change "$model"); done
for label in ${PR_LABELS:-}; do
  case "$label" in model:?*) expect+=(--expect-change "${label#model:}") ;; esac
done
root=$(cd "$(dirname "$0")/.." && pwd)  # paths given stay relative to the caller
bench=${ANIMEREC_BENCH:-}
if [ -z "$bench" ]; then
  if [ -x "$root/.venv/bin/animerec-bench" ]; then bench=$root/.venv/bin/animerec-bench; else bench=animerec-bench; fi
fi

table=$(mktemp)
trap 'rm -f "$table"' EXIT
status=0
echo "+ $bench compare --base $base --head $new --fail-on-regression ${REGRESSION_THRESHOLD:-0.02} ${expect[*]}" >&2
"$bench" compare --base "$base" --head "$new" --fail-on-regression "${REGRESSION_THRESHOLD:-0.02}" \
  "${expect[@]}" > "$table" || status=$?
cat "$table"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { echo; cat "$table"; } >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
