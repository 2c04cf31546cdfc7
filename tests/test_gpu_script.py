"""``benchmarks/gpu_jax.py`` runs where pluggy may be missing (the device machine's image, the
jax-only venv of its CPU smoke), on ``benchmarks/without_pluggy.py``'s stand-in. A GPU call is
scarce: an import the stand-in cannot serve must fail here, not there (it once did: the stand-in
had ``HookimplMarker`` only, and ``hookspecs.py`` needs ``HookspecMarker`` too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What gpu_jax.py imports from the package and beside it, after ``install()`` (jax and keras aside).
IMPORTS = """
import sys
sys.modules["pluggy"] = None  # hidden: ``import pluggy`` raises ImportError
sys.path.insert(0, "benchmarks")
import without_pluggy
without_pluggy.install()
assert not hasattr(sys.modules["pluggy"], "PluginManager"), "the stand-in is in place"
import real_scale
from animerec_bench.builtin.biased_mf import BiasedMatrixFactorization, register_models
from animerec_bench.builtin.keras_models import KERAS_MODELS
from animerec_bench.model import Interactions
assert callable(register_models) and BiasedMatrixFactorization.name == "mf-biased"
assert {m.name for m in KERAS_MODELS} == {"mf", "nn", "hybrid"}
print("ok")
"""


def test_gpu_script_imports_the_package_with_pluggy_missing():
    proc = subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_the_stand_in_is_left_out_where_pluggy_imports():
    code = "import sys; sys.path.insert(0, 'benchmarks'); import without_pluggy, pluggy; without_pluggy.install(); " \
           "assert sys.modules['pluggy'] is pluggy and hasattr(pluggy, 'PluginManager'); print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
