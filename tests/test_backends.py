"""``run --backend jax``: the Keras models give the same results on JAX as on TensorFlow (issue 14).

Needs ``jax`` (``pip install -e '.[test,jax]'``, or ``tox -e jax``); skipped where it is not
installed, as in the default test environment.
"""

from __future__ import annotations

import subprocess

import pytest

from animerec_bench.results import store as results

from .test_run_signals import BIN

pytest.importorskip("jax", reason="jax is not installed (tox -e jax installs it)")

#: How far the two backends' test metrics may be apart: their random initialisations differ.
TOLERANCE = {"auc": 0.005, "rmse": 0.0015}


def _run_mf(tmp_path, backend: str) -> dict:
    folder = tmp_path / backend
    proc = subprocess.run([str(BIN), "run", "-m", "mf", "--backend", backend, "--results", str(folder)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return {tuple(r["tasks"]): r for r in results.load_all(folder)}


@pytest.mark.slow
def test_mf_on_jax_lands_within_tolerance_of_tensorflow(tmp_path):
    tf_results, jax_results = _run_mf(tmp_path, "tensorflow"), _run_mf(tmp_path, "jax")
    assert set(tf_results) == set(jax_results) == {("rating",), ("interaction",)}
    for tasks, r in jax_results.items():
        machine = r["machine"]
        assert machine["keras_backend"] == "jax" and machine["keras_backend_version"], machine
        assert tf_results[tasks]["machine"]["keras_backend"] == "tensorflow"
        assert tf_results[tasks]["machine"]["keras_backend_version"]
    auc = [x[("interaction",)]["metrics"]["interaction"]["auc"] for x in (tf_results, jax_results)]
    rmse = [x[("rating",)]["metrics"]["rating"]["rmse"] for x in (tf_results, jax_results)]
    assert abs(auc[0] - auc[1]) <= TOLERANCE["auc"], auc
    assert abs(rmse[0] - rmse[1]) <= TOLERANCE["rmse"], rmse
