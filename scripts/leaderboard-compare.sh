#!/usr/bin/env bash
# Compare a PR's results with the base branch's; fail on an unintended regression.
#   scripts/leaderboard-compare.sh BASE_RESULTS NEW_RESULTS [MODEL ...]
# MODELs: the models the change means to affect (a model whose version changed counts too), and
# every `model:NAME` label in $PR_LABELS (space-separated, as the workflow passes a PR's labels).
# The threshold is $REGRESSION_THRESHOLD (relative change of a task's primary metric; default 0.02).
# Prints the Markdown table; with $GITHUB_STEP_SUMMARY set, appends it there too.
set -euo pipefail

base=${1:?usage: scripts/leaderboard-compare.sh BASE_RESULTS NEW_RESULTS [MODEL ...]}
new=${2:?usage: scripts/leaderboard-compare.sh BASE_RESULTS NEW_RESULTS [MODEL ...]}
shift 2
allow=("$@")
for label in ${PR_LABELS:-}; do
  case "$label" in model:?*) allow+=("${label#model:}") ;; esac
done
root=$(cd "$(dirname "$0")/.." && pwd)  # paths given stay relative to the caller
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python3; fi
fi

table=$(mktemp)
trap 'rm -f "$table"' EXIT
status=0
"$python" "$root/scripts/check_regressions.py" "$base" "$new" --threshold "${REGRESSION_THRESHOLD:-0.02}" \
  --allow "${allow[@]}" > "$table" || status=$?
cat "$table"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { echo; cat "$table"; } >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
