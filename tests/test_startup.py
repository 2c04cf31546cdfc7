"""What the quick commands import: ``list`` and ``--help`` must stay well under half a second, so
nothing they run may import a heavy library (TensorFlow alone takes seconds; scipy.linalg 0.36 s,
pandas, pyarrow, optuna and matplotlib a tenth of a second or more each). Checked in a fresh
interpreter, through the real CLI entry point."""

from __future__ import annotations

import pytest

from .conftest import imported_after

#: Modules that only training, scoring, tuning, data import or plotting may import.
HEAVY = ("scipy.linalg", "tensorflow", "keras", "jax", "torch", "pandas", "pyarrow", "optuna", "matplotlib")


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["--help"], ["run", "--help"], ["tune", "--help"]],
                         ids=" ".join)
def test_quick_commands_import_nothing_heavy(args):
    code = ("import sys; from animerec_bench.cli import main\n"
            f"sys.argv = ['animerec-bench', *{args!r}]\n"
            "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code")
    assert imported_after(code, HEAVY, timeout=120) == [], f"`animerec-bench {' '.join(args)}` imported them"
