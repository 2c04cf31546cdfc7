"""Result files: schema check, atomic unique writes, concurrent runs into one folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from animerec_bench.errors import UserError
from animerec_bench.results import store as results

BIN = Path(sys.executable).parent / "animerec-bench"


def make(**over) -> dict:
    r = {"schema": 1, "status": "ok", "error": None,
         "model": {"name": "m", "version": "1", "params": {"k": 1}, "tasks": ["rating"]},
         "tasks": ["rating"], "dataset": {"name": "d", "fingerprint": "f" * 64, "synthetic": False},
         "protocol": "v1", "split": {"seed": 0, "fingerprint": "a" * 64},
         "metrics": {"rating": {"rmse": 1.0, "mae": float("nan")}}, "timing": {"fit_seconds": 0.5},
         "machine": {}, "package": {"version": "0", "commit": None}, "started_at": "2026-01-02T03:04:05.678Z"}
    r.update(over)
    return r


def test_write_load_round_trip_unique_names_and_strict_json(tmp_path):
    paths = [results.write(tmp_path, make()) for _ in range(20)]
    assert len(set(paths)) == 20
    assert paths[0].name.startswith("d--v1--m--rating--seed0--20260102T030405--")
    loaded = results.load(paths[0])
    assert loaded["metrics"]["rating"] == {"rmse": 1.0, "mae": None}  # NaN -> null
    json.loads(paths[0].read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    assert results.get(loaded, "model.params.k") == 1 and results.get(loaded, "a.b", 7) == 7


def test_names_are_safe_for_odd_model_names(tmp_path):
    path = results.write(tmp_path, make(model={"name": "../x|y z", "params": {}}))
    assert path.parent == tmp_path and "/" not in path.name and "|" not in path.name


@pytest.mark.parametrize("content, words", [
    ('{"schema": 2}', "schema 2 is not supported"),
    ("{not json", "not valid JSON (line 1"),
    ("[]", "not a result"),
    (json.dumps({**make(), "status": "meh"}), "status 'meh'"),
    (json.dumps({k: v for k, v in make().items() if k != "split"}), "split.seed, split.fingerprint"),
])
def test_bad_files_give_one_line_naming_the_file(tmp_path, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(UserError) as info:
        results.load_all(tmp_path)
    assert str(bad) in str(info.value) and words in str(info.value) and "\n" not in str(info.value)


def test_missing_results_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        results.load_all(tmp_path / "nope")


def test_two_concurrent_runs_into_one_folder_lose_nothing(tmp_path):
    out = tmp_path / "shared"
    cmd = [str(BIN), "run", "-m", "global-mean", "-m", "always-positive", "-m", "bias", "--results", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    loaded = results.load_all(out)
    assert len(loaded) == 6
    assert len({r["run_id"] for r in loaded}) == 2
    assert sorted(r["model"]["name"] for r in loaded) == sorted(["global-mean", "always-positive", "bias"] * 2)
