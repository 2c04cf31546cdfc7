"""How long the commands that only look take: ``animerec-bench --help`` and ``list``, each a fresh
process (Python's start, imports, the plugin probe), as a user at a terminal waits for them.

Also ``leaderboard --check`` (what CI runs on the published boards).

Issue 26's goal: ``list`` <= 0.5 s on the project's 2-core machine when it is quiet. ``list``
loads every plugin, third-party ones first in a probe process (``plugins/probe.py``); the
built-in plugins are imported while the probe runs. Neither command may import TensorFlow
(``tests/test_import.py`` checks that; this file only times them).

    .venv/bin/pytest benchmarks/bench_cli.py

The timing is pytest-benchmark's (rounds of one process each; read the median).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).with_name("animerec-bench")
#: What a user's shell gives: bytecode written and reused (this sandbox sets PYTHONDONTWRITEBYTECODE).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(*args: str) -> None:
    done = subprocess.run([str(CLI), *args], capture_output=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@pytest.mark.parametrize("args", [("--help",), ("list",)], ids=["help", "list"])
def test_command_wall_time(benchmark, args):
    _run(*args)  # once first, so its bytecode is written
    benchmark.pedantic(_run, args=args, rounds=15, iterations=1, warmup_rounds=1)


def test_leaderboard_check_wall_time(benchmark):
    """``leaderboard --check`` of this checkout's published boards (CI runs it; every result's
    code fingerprint is checked for staleness, every table and plot rendered)."""
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([str(CLI), "leaderboard", "--check"], capture_output=True, env=ENV, cwd=repo, timeout=300)
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")  # 1: boards out of date, still timed
    benchmark.pedantic(subprocess.run, args=([str(CLI), "leaderboard", "--check"],),
                       kwargs={"capture_output": True, "env": ENV, "cwd": repo, "timeout": 300},
                       rounds=3, iterations=1)
