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


def _with(dotted: str, value):
    r = make()
    *path, last = dotted.split(".")
    cur = r
    for key in path:
        cur = cur[key]
    cur[last] = value
    return r


@pytest.mark.parametrize("dotted, value, words", [
    ("split.seed", "0", "split.seed is str, expected a whole number"),
    ("split.seed", {"a": 1}, "split.seed is dict, expected a whole number"),
    ("split.seed", True, "split.seed is bool, expected a whole number"),
    ("split.seed", -1, "split.seed is -1, expected a whole number >= 0"),
    ("tasks", 5, "tasks is int, expected a list of task names"),
    ("tasks", ["rating", 3], "tasks is list, expected a list of task names"),
    ("model.name", ["m"], "model.name is list, expected a string"),
    ("model.name", 7, "model.name is int, expected a string"),
    ("model.params", [], "model.params is list, expected an object"),
    ("machine", "laptop", "machine is str, expected an object"),
    ("timing", 3, "timing is int, expected an object"),
    ("dataset.name", None, "dataset.name is null, expected a string"),
    ("protocol", 1, "protocol is int, expected a string"),
    ("started_at", 5, "started_at is int, expected a string"),
    ("error", 5, "error is int, expected a string or null"),
    ("package.commit", 5, "package.commit is int, expected a string or null"),
])
def test_every_field_has_its_type(tmp_path, dotted, value, words):
    """#25 items 9-10: a field of the wrong type is one line naming the file and the field (a seed
    "0" beside 0 counted as another seed; `tasks: 5` or a list as model.name were tracebacks)."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_with(dotted, value)))
    with pytest.raises(UserError) as info:
        results.load_all(tmp_path)
    assert str(info.value) == f"{bad}: {words}"


def test_deeply_nested_json_is_one_line(tmp_path):
    bad = tmp_path / "deep.json"
    bad.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError) as info:
        results.load_all(tmp_path)
    assert str(info.value) == f"{bad}: not valid JSON (nested too deeply)"


def test_a_board_of_a_folder_with_mistyped_results_skips_them_by_name(tmp_path):
    good = results.write(tmp_path, make())
    bad = tmp_path / "odd.json"
    bad.write_text(json.dumps(_with("split.seed", "0")))
    proc = subprocess.run([str(BIN), "leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "boards")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{bad}: split.seed is str, expected a whole number" in proc.stderr
    assert good.exists()
