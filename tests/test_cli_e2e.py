"""The real pipeline through the CLI: run (with a failing job), leaderboard, leaderboard --check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from animerec_bench.results import store as results
from tests.test_runner import write_plugins

BIN = Path(sys.executable).parent / "animerec-bench"


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=dict(os.environ))


def test_run_leaderboard_check(tmp_path):
    from animerec_bench.plugins.registry import load_registry

    plugins = write_plugins(tmp_path / "plugins")
    models = ["bias", "popularity", "itemmean", "crasher"]
    args = [a for m in models for a in ("-m", m)]
    res, out = tmp_path / "results", tmp_path / "leaderboards"
    proc = cli("run", *args, "--param", "itemmean.shrink=2", "--results", res, "--plugins-dir", plugins,
               "--timeout", 240)
    assert proc.returncode == 1, proc.stderr  # crasher failed
    assert "| crasher" in proc.stdout and "failed" in proc.stdout
    keras_jobs = 0
    if "mf" in load_registry().models:
        # A Keras model into the same results: its interaction job, ranked from its interaction
        # scores (its rating job runs twice in test_runner's same-seed test). A few steps of one
        # epoch: the test is about the run and the board, not about training.
        models.append("mf")
        mf = cli("run", "-m", "mf", "--task", "interaction", "--param", "mf.epochs=1", "--param",
                 "mf.steps_per_epoch=4", "--results", res, "--plugins-dir", plugins, "--timeout", 240)
        assert mf.returncode == 0, mf.stderr
        keras_jobs = 1
    loaded = results.load_all(res)
    assert {r["status"] for r in loaded if r["model"]["name"] != "crasher"} == {"ok"}
    assert len(loaded) == 1 + 1 + 2 + 1 + keras_jobs

    assert cli("leaderboard", "--results", res, "--out", out).returncode == 0
    md = (out / "mal2016-5k-v1.md").read_text()
    for m in models:
        assert f"| {m} " in md
    assert "itemmean (shrink=2.0)" in md and "RuntimeError: boom in fit" in md  # a float default takes 2 as 2.0
    assert "[mal2016-5k — protocol v1](mal2016-5k-v1.md)" in (out / "README.md").read_text()
    check = cli("leaderboard", "--results", res, "--out", out, "--check")
    assert check.returncode == 0, check.stdout + check.stderr

    (out / "mal2016-5k-v1.md").write_text(md.replace("bias", "b1as"))
    check = cli("leaderboard", "--results", res, "--out", out, "--check")
    assert check.returncode == 1 and "+| bias" in check.stdout and "-| b1as" in check.stdout
