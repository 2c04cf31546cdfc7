#!/usr/bin/env bash
# Run every model (the heavy ones too) that has no result for the current code yet, publish the
# results into the
# repository's results/, and render leaderboards/ from them (.github/workflows/leaderboards.yml).
#   scripts/leaderboard-run.sh [extra `run` options, e.g. --seeds 3]
# Exits non-zero when a job failed (after the boards are rendered, so they can still be looked at).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${ANIMEREC_BENCH:-.venv/bin/animerec-bench}

status=0
echo "+ $bench run --all --missing --publish --heavy $*"
"$bench" run --all --missing --publish --heavy "$@" || status=$?
echo "+ $bench leaderboard --publish"
"$bench" leaderboard --publish
exit "$status"
