#!/usr/bin/env bash
# Set a pull request's own results/ aside (to pr-results/) before the leaderboards job runs, so
# that the regression gate reads only results this workflow itself produced: a result file
# edited in the pull request can then neither stand in for a run nor be compared. The boards of
# the pull request are rendered from the fresh results; pr-results/ is uploaded beside them.
#   scripts/leaderboard-fresh.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -e pr-results ]; then
  echo "error: pr-results/ already exists; refusing to overwrite it" >&2
  exit 1
fi
if [ -d results ]; then
  echo "+ mv results pr-results"
  mv results pr-results
fi
mkdir results
