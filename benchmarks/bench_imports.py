"""What a Keras job pays before its fit: importing Keras on TensorFlow in a fresh process, as
the worker does it (``compile_cache.configure()``, then ``import keras`` with matplotlib and
pandas refused: ``execution/worker.py``'s ``UNUSED_EXTRAS``). Every Keras job of ``run --all``
pays it once, outside ``fit_seconds`` (a result's ``timing.framework_import_seconds``).

``ml_dtypes``' own import, timed alone in another fresh process, is recorded beside it: its
0.7.0 took 1.0-1.4 s on this project's AVX2 machines (numpy's ``PyUFunc_AddLoop``, quadratic in
the loops it registers) against 0.01 s for 0.6.0, which is why ``pyproject.toml`` excludes it.

    .venv/bin/pytest benchmarks/bench_imports.py

The timing is pytest-benchmark's (rounds of one process each; read the median).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: The worker's framework import, timed inside the child (Python's own start is not Keras').
_AS_A_JOB = """
import json, os, time
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from animerec_bench.execution.worker import UNUSED_EXTRAS
from animerec_bench.support import compile_cache
from animerec_bench.support.lazy import imports_refused
started = time.perf_counter()
compile_cache.configure()
with imports_refused(*UNUSED_EXTRAS["keras"]):
    import keras
print(json.dumps(time.perf_counter() - started))
"""

_ML_DTYPES = """
import json, time
import numpy
started = time.perf_counter()
import ml_dtypes
print(json.dumps([time.perf_counter() - started, ml_dtypes.__version__]))
"""

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _child(code: str):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_keras_import_as_a_job_does(benchmark):
    inside: list[float] = []
    benchmark.pedantic(lambda: inside.append(_child(_AS_A_JOB)), rounds=5, iterations=1, warmup_rounds=1)
    ml_dtypes = [_child(_ML_DTYPES) for _ in range(3)]
    benchmark.extra_info.update({
        "import_seconds_inside": sorted(inside)[len(inside) // 2],
        "ml_dtypes_version": ml_dtypes[0][1],
        "ml_dtypes_import_seconds": sorted(s for s, _ in ml_dtypes)[1],
    })
