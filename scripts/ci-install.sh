#!/usr/bin/env bash
# Install the package into .venv (what the leaderboards workflow runs the models with).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install .
