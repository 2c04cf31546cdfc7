#!/usr/bin/env bash
# The checks after the tests (run by .ci/run and .github/workflows/tests.yml, after
# scripts/ci-tests.sh made .venv): ruff (lint and import order) and mypy (types) on the code,
# actionlint on the GitHub workflows (all three from the test extra), then check that the
# committed leaderboards are what the committed results render.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "+ .venv/bin/ruff check ."
.venv/bin/ruff check .

echo "+ .venv/bin/mypy  (the package, configured in pyproject.toml)"
.venv/bin/mypy

echo "+ .venv/bin/actionlint .github/workflows/tests.yml .github/workflows/leaderboards.yml"
.venv/bin/actionlint .github/workflows/tests.yml .github/workflows/leaderboards.yml

echo "+ .venv/bin/animerec-bench leaderboard --check"
.venv/bin/animerec-bench leaderboard --check

# The README's and the boards' tables fit GitHub's 1,012 px article without a sideways scroll
# (laid out in headless Chromium; prints "skipped" and passes where chromium is not installed:
# apt-get install -y chromium).
echo "+ .venv/bin/python scripts/check_board_width.py"
.venv/bin/python scripts/check_board_width.py
