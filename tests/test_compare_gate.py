"""``compare --base DIR --head DIR``: every model of two result folders in one table, and the
regression gate (``--fail-on-regression``, ``--expect-change``) on results whose per-user values
say how large and how certain each change is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from animerec_bench.evaluation import significance
from animerec_bench.evaluation.significance import PerUser
from animerec_bench.results import store as results
from tests.test_leaderboard import res

BIN = Path(sys.executable).parent / "animerec-bench"
USERS = np.arange(200, dtype=np.int64) * 3 + 1
RANKING_METRICS = ("ndcg@10", "recall@10", "hit_rate@10", "mrr@10", "map@10", "ndcg@20", "recall@20",
                   "hit_rate@20", "mrr@20", "map@20", "coverage@10")


def cli(*args):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


def write_ranking(folder: Path, model: str, values: np.ndarray, *, per_user_file: bool = True, seed: int = 0,
                  code: str = "a", started: str = "2026-01-01T00:00:00Z", file: str = "/a/plugins/m.py",
                  users: np.ndarray = USERS, headline: float | None = None) -> None:
    """A ranking result of ``model`` whose NDCG@10 is the mean of ``values``, one per user, from
    model code whose fingerprint is ``code``."""
    m = {"ranking": {k: 0.5 for k in RANKING_METRICS}}
    m["ranking"].update({"ndcg@10": float(values.mean()) if headline is None else headline, "novelty@10": 50.0})
    r = res(model, "ranking", seed, m, started=started)
    r["ranking"] = {"source": "score", "users": len(values)}
    r["identity"] = {"key": f"{model}-{code}-{seed}", "parts": {
        "model": model, "code": {"kind": "source", "module": "m", "sha256": code * 64, "file": file}, "version": "1",
        "params": {}, "seed": seed, "split": f"{seed:x}" * 64}}
    per_user = significance.encode({"ranking": PerUser(users, values, np.ones(len(values)))})
    results.write(folder, r, per_user if per_user_file else None)


def table_rows(markdown: str) -> dict[str, list[str]]:
    """``{model: cells}`` of the comparison table."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| mal2016-5k"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[1]] = cells
    return rows


def test_gate_verdicts_on_every_kind_of_change(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    rng = np.random.default_rng(5)
    v = rng.uniform(0.3, 0.7, len(USERS))
    noise = rng.normal(0, 0.3, len(USERS))
    head_values = {
        "steady": v,
        "noisy": v + noise - noise.mean() - 0.03 * v.mean(),  # 3% lower, but per-user noise far larger: not significant
        "broken": v * 0.8,  # every user 20% lower: a regression
        "better": v * 1.2,
        "meant": v * 0.8,  # as broken, but declared with --expect-change
        "nofile": v * 0.9,  # head has no per-user file: the threshold alone decides
    }
    for model, values in head_values.items():
        write_ranking(base, model, v)
        write_ranking(head, model, values, per_user_file=model != "nofile")
    write_ranking(base, "gone", v)
    write_ranking(head, "added", v)

    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--expect-change", "meant",
               "--expect-change", "gone", "--draws", 300)
    assert proc.returncode == 1, proc.stderr
    assert "seeds combined, each user drawn once for all seeds (300 bootstrap draws;" in proc.stdout
    rows = table_rows(proc.stdout)
    assert list(rows)[:2] == ["broken", "nofile"] and list(rows)[-1] == "steady"  # failures first, ok last
    verdict = {model: cells[-1] for model, cells in rows.items()}
    assert verdict == {"steady": "ok", "noisy": "worse beyond threshold, not significant", "broken": "**REGRESSION**",
                       "better": "better", "meant": "worse, expected (--expect-change)", "nofile": "**REGRESSION**",
                       "gone": "not in head, expected (--expect-change)", "added": "new"}
    assert rows["noisy"][6] == "-3.00%" and float(rows["noisy"][8]) >= 0.05
    assert rows["broken"][6] == "-20.00%" and rows["broken"][8] == "< 0.007"  # the floor of 300 draws
    assert rows["nofile"][7] == "–" and rows["nofile"][8] == "–"
    assert rows["steady"][7] == "+0.0000 (+0.0000 to +0.0000)"
    low, high = (float(x) for x in rows["broken"][7].split("(")[1].rstrip(")").split(" to "))
    assert low <= float(rows["broken"][7].split()[0]) <= high < 0
    # one line says why, naming each failing model and no other
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")] == [proc.stderr.strip()]
    assert "broken ranking ndcg@10" in proc.stderr and "nofile ranking ndcg@10" in proc.stderr
    for passing in ("noisy", "meant", "steady"):
        assert f"{passing} ranking" not in proc.stderr

    # without a threshold it is the same table and nothing fails
    plain = cli("compare", "--base", base, "--head", head, "--draws", 300)
    assert plain.returncode == 0 and table_rows(plain.stdout)["broken"][-1] == "worse"


def test_gate_compares_the_seeds_a_pull_request_reran(tmp_path):
    """A PR re-runs seed 0 of the model it changed; its results folder still holds seeds 1 and 2 of
    the old code. The change is seed 0's, not diluted by the old seeds."""
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.2, 0.8, len(USERS))
    for seed in (0, 1, 2):
        write_ranking(base, "m", v, seed=seed)
        write_ranking(head, "m", v, seed=seed)
    write_ranking(head, "m", v * 0.94, seed=0, code="b", started="2026-02-01T00:00:00Z")
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "0.02", "--draws", 200)
    assert proc.returncode == 1
    cells = table_rows(proc.stdout)["m"]
    assert cells[4:7] == ["0.5000 (1 seed)", "0.4700 (1 seed)", "-6.00%"] and cells[-1] == "**REGRESSION**"

    # the same code re-run from another checkout (a loose plugin file elsewhere) is the same code state
    moved = tmp_path / "moved"
    for seed in (0, 1, 2):
        write_ranking(moved, "m", v, seed=seed)
    write_ranking(moved, "m", v, seed=0, started="2026-02-01T00:00:00Z", file="/ci/checkout/plugins/m.py")
    same = cli("compare", "--base", base, "--head", moved, "--fail-on-regression", "0.02", "--draws", 200)
    assert same.returncode == 0 and table_rows(same.stdout)["m"][4:7] == ["0.5000 (3 seeds)"] * 2 + ["+0.00%"]


def test_gate_warns_on_a_missing_per_user_file(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.2, 0.8, len(USERS))
    write_ranking(base, "m", v)
    write_ranking(head, "m", v)
    (lost,) = head.glob("*.users.npz")
    lost.unlink()
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "0.02")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("warning:") == 1 and f"its per-user file {lost.name} is missing" in proc.stderr
    assert table_rows(proc.stdout)["m"][-3:] == ["–", "–", "ok"]


def test_gate_usage_mistakes_are_one_line(tmp_path):
    base = tmp_path / "base"
    write_ranking(base, "m", np.full(len(USERS), 0.5))
    cases = {
        ("--base", base, "--head", base, "--fail-on-regression", "1.5"):
            "--fail-on-regression 1.5: expected a relative change between 0 and 1",
        ("--base", base, "--head", base, "--fail-on-regression", "two"):
            "--fail-on-regression two: expected a relative change between 0 and 1",
        ("--base", base): "--head DIR is missing: --base and --head go together",
        ("--base", base, "--head", tmp_path / "nowhere"): f"--head {tmp_path / 'nowhere'}: no such result folder",
        ("a", "b", "--base", base, "--head", base): "give either two models (A B) or --base DIR --head DIR, not both",
        ("a", "b", "--expect-change", "m"): "--fail-on-regression and --expect-change go with --base DIR --head DIR",
    }
    for args, message in cases.items():
        proc = cli("compare", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"Error: {message}"), args


# --- hardening round 2 (#25 items 1-3): a gate that an edited result file cannot fool ---

def _edit(path: Path, change, *, reseal: bool = True) -> None:
    """Rewrite result ``path`` with ``change(data)`` applied; ``reseal``: with its content hash made
    to match again (a careful forger), so the other checks are tested on their own."""
    import json

    data = json.loads(path.read_text())
    change(data)
    if reseal:
        data["content_sha256"] = results.content_sha256(data)
    path.write_text(json.dumps(data))


def test_gate_refuses_headline_metrics_that_disagree_with_the_per_user_file(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.3, 0.7, len(USERS))
    write_ranking(base, "m", v)
    write_ranking(head, "m", v * 0.86)  # 14% worse per user ...
    (path,) = head.glob("*.json")
    _edit(path, lambda d: d["metrics"]["ranking"].update({"ndcg@10": float(v.mean())}))  # ... the base's headline
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 200)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"Error: {path}: metrics.ranking.ndcg@10 0.5000 disagrees with its per-user file")
    assert "0.4300" in line


def test_gate_refuses_a_result_edited_after_it_was_written(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.3, 0.7, len(USERS))
    write_ranking(base, "m", v)
    write_ranking(head, "m", v * 0.86)
    (path,) = head.glob("*.json")
    _edit(path, lambda d: d["model"].update({"version": "2"}), reseal=False)  # would make the change "expected"
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 200)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"Error: {path}: edited after it was written (content_sha256 differs)")
    # a head result with no content hash at all is not trusted either
    _edit(path, lambda d: d.pop("content_sha256"), reseal=False)
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 200)
    assert proc.returncode != 0 and f"{path}: has no content_sha256" in proc.stderr


def test_gate_verdict_follows_the_paired_test(tmp_path):
    """The head scored only the base's better half of users, each 14% worse: its headline mean is
    the base's, but on the users both scored it is 14% worse, significantly: a regression."""
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.2, 0.8, len(USERS))
    write_ranking(base, "m", v)
    top = len(USERS) // 2
    head_values = v[top:] * 0.86
    write_ranking(head, "m", head_values, users=USERS[top:])
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert table_rows(proc.stdout)["m"][-1] == "**REGRESSION**"


def test_gate_fails_when_a_base_model_has_no_usable_head_result(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.2, 0.8, len(USERS))
    for model in ("kept", "gone", "broke"):
        write_ranking(base, model, v)
    write_ranking(head, "kept", v)
    r = res("broke", "ranking", 0, {}, status="failed", error="boom")
    results.write(head, r)
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 200)
    assert proc.returncode == 1
    rows = table_rows(proc.stdout)
    assert rows["gone"][-1] == rows["broke"][-1] == "**MISSING FROM HEAD**"
    assert "gone ranking" in proc.stderr and "broke ranking" in proc.stderr and "kept" not in proc.stderr
    declared = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 200,
                   "--expect-change", "gone", "--expect-change", "broke")
    assert declared.returncode == 0, declared.stderr
    assert table_rows(declared.stdout)["gone"][-1] == "not in head, expected (--expect-change)"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("compare", "--base", base, "--head", empty, "--fail-on-regression", "2%")
    assert proc.returncode == 1 and "kept ranking" in proc.stderr
    # without a threshold nothing fails
    assert cli("compare", "--base", base, "--head", empty).returncode == 0


def test_gate_refuses_nan_in_a_per_user_file(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    v = np.linspace(0.2, 0.8, len(USERS))
    write_ranking(base, "m", v)
    bad = v.copy()
    bad[3] = np.nan
    write_ranking(head, "m", bad, headline=0.5)
    proc = cli("compare", "--base", base, "--head", head, "--fail-on-regression", "2%", "--draws", 200)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert "users.npz: task 'ranking' holds a value that is not a finite number (user 10)" in line
