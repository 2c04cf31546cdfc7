"""The Python API: a model fitted in-process scores exactly what a real ``run`` of it wrote."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import animerec_bench
from animerec_bench.errors import UserError

from .conftest import imported_after

BIN = Path(sys.executable).parent / "animerec-bench"


@pytest.fixture(scope="module")
def bias_run(tmp_path_factory):
    """A real ``animerec-bench run -m bias --seed 0`` (one job: rating, ranked by its ratings)."""
    res = tmp_path_factory.mktemp("api") / "results"
    proc = subprocess.run([str(BIN), "run", "-m", "bias", "--seed", "0", "--results", str(res),
                           "--plugins-dir", str(res.parent / "no-plugins")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    return res


def test_evaluate_equals_the_run(bias_run):
    from animerec_bench.execution.worker import seed_everything
    from animerec_bench.plugins.registry import load_registry
    from animerec_bench.results import store as results

    (written,) = results.load_all(bias_run)
    split = animerec_bench.load_split("mal2016-5k", seed=0)
    assert split.fingerprint == written["split"]["fingerprint"]
    seed_everything(0)
    model = load_registry(None).model("bias").cls()
    model.fit(split.train, split.valid, tasks=("rating",), seed=0)

    got = animerec_bench.evaluate(model, split)
    assert set(got) == set(written["metrics"]) == {"rating", "ranking"}
    for task, values in written["metrics"].items():
        assert set(got[task]) == set(values), task
        for metric, value in values.items():
            assert math.isclose(got[task][metric], value, rel_tol=0, abs_tol=1e-12), (task, metric)

    valid = animerec_bench.evaluate(model, split, tasks=["rating"], part="valid")
    assert set(valid) == {"rating"}
    assert valid["rating"]["val_loss"] == pytest.approx(written["metrics"]["rating"]["val_loss"], abs=1e-12)
    assert valid["rating"]["rmse"] != got["rating"]["rmse"]  # really the other part

    with pytest.raises(UserError, match="does not serve"):
        animerec_bench.evaluate(model, split, tasks=["interaction"])
    with pytest.raises(UserError, match="part 'train'"):
        animerec_bench.evaluate(model, split, part="train")


def test_results_frame_reads_the_run(bias_run, tmp_path):
    frame = animerec_bench.results_frame(bias_run)
    (written,) = __import__("animerec_bench.results.store", fromlist=["x"]).load_all(bias_run)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["model"], row["tasks"], row["seed"], row["status"]) == ("bias", "rating", 0, "ok")
    assert row["ranking_source"] == "score"  # its own score (since issue 26), not its rating predictions
    assert row["metrics.rating.rmse"] == written["metrics"]["rating"]["rmse"]
    assert row["metrics.ranking.ndcg@10"] == written["metrics"]["ranking"]["ndcg@10"]
    assert row["fit_seconds"] == written["timing"]["fit_seconds"]
    assert "cores" in row["hardware"] and row["file"] == written["_file"]
    assert list(frame.columns[:4]) == ["model", "tasks", "seed", "status"]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text("{")
    with pytest.raises(UserError, match="x.json: not valid JSON"):
        animerec_bench.results_frame(bad)


def test_load_split_errors_name_the_value():
    with pytest.raises(UserError, match="unknown data set 'nope'"):
        animerec_bench.load_split("nope")
    with pytest.raises(UserError, match="unknown protocol 'v9'"):
        animerec_bench.load_split(protocol="v9")
    with pytest.raises(UserError, match="seed -1"):
        animerec_bench.load_split(seed=-1)


def test_import_stays_light():
    """``import animerec_bench`` (the CLI does it) pulls in neither pandas nor TensorFlow; the API
    loads on first use."""
    light = ("pandas", "tensorflow", "keras", "numpy")
    code = ("import sys, animerec_bench\n"
            f"heavy = [m for m in {light!r} if m in sys.modules]; assert not heavy, heavy\n"
            "assert callable(animerec_bench.results_frame)")  # the attribute loads the API, not before
    assert imported_after(code, ("animerec_bench.api",)) == ["animerec_bench.api"]


def test_docs_show_every_function_with_its_signature():
    import inspect

    from animerec_bench import api

    doc = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    for name in api.__all__:
        params = [p for p in inspect.signature(getattr(api, name)).parameters.values() if p.kind != p.KEYWORD_ONLY]
        shown = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}".replace("'", '"')
                          for p in params)
        assert f"`{name}({shown})`" in doc, name
