"""What the quick commands import: ``list`` and ``--help`` must stay well under half a second, so
nothing they run may import a heavy library (TensorFlow alone takes seconds; scipy.linalg 0.36 s,
pandas, pyarrow, optuna and matplotlib a tenth of a second or more each). Checked in a fresh
interpreter, through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Modules that only training, scoring, tuning, data import or plotting may import.
HEAVY = ("scipy.linalg", "tensorflow", "keras", "jax", "torch", "pandas", "pyarrow", "optuna", "matplotlib")

PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
from animerec_bench.cli import main
sys.argv = ["animerec-bench", *args]
try:
    main()
except SystemExit:
    pass
print("\\nHEAVY=" + json.dumps([m for m in heavy if m in sys.modules]), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["--help"], ["run", "--help"], ["tune", "--help"]],
                         ids=" ".join)
def test_quick_commands_import_nothing_heavy(args):
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=120)
    marker = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker, done.stderr
    assert json.loads(marker[-1][len("HEAVY="):]) == [], f"`animerec-bench {' '.join(args)}` imported them"
    assert "Traceback" not in done.stderr, done.stderr
