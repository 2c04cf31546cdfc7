"""#25 item 11: messages that say what happened, naming the file or the limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from animerec_bench.results import store as results

BIN = Path(sys.executable).parent / "animerec-bench"


def cli(*args, env=None, timeout=300, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_a_memory_limit_too_small_to_run_says_so(tmp_path):
    """`--memory-limit 1` ended in an empty "MemoryError:"."""
    proc = cli("run", "-m", "global-mean", "--memory-limit", "1", "--results", tmp_path)
    assert proc.returncode == 1, proc.stderr
    (r,) = results.load_all(tmp_path)
    assert r["status"] == "failed" and r["error_kind"] == "oom"
    assert r["error"].startswith("out of memory: the job needed more address space than --memory-limit 1 MB "
                                 "allows ("), r["error"]  # a MemoryError, or an ImportError of a library's mmap


def _copy_results(dst: Path, models: tuple[str, ...]) -> None:
    import shutil

    repo = Path(__file__).resolve().parent.parent / "results"
    dst.mkdir(exist_ok=True)
    for model in models:
        for src in repo.glob(f"mal2016-5k--v1--{model}--*"):
            shutil.copy(src, dst / src.name)


def test_leaderboard_out_on_a_full_disk_leaves_the_old_board_whole(tmp_path):
    """Each board file was atomic, the set was not: a full disk midway left some files new and
    others old. Now every file is written beside its place first, and renamed only when all are."""
    import resource

    res, out = tmp_path / "results", tmp_path / "boards"
    _copy_results(res, ("global-mean",))
    first = cli("leaderboard", "--results", res, "--out", out)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _copy_results(res, ("bias", "popularity", "user-mean", "most-popular"))
    small = min(len(b) for b in before.values())

    def limit():  # no file larger than the smallest old one: some new files fit, the larger ones do not
        resource.setrlimit(resource.RLIMIT_FSIZE, (small, small))

    proc = subprocess.run([str(BIN), "leaderboard", "--results", str(res), "--out", str(out)], capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    (line,) = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("Error")]
    assert line.startswith(f"Error: {out}/") and "File too large" in line and "board left as it was" in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_data_set_with_no_interaction_examples_says_so(tmp_path):
    """A data set where no pair is completed or dropped has no interaction examples: every
    interaction job failed with "metrics.interaction.auc is null"."""
    import numpy as np

    src, home = tmp_path / "dl", tmp_path / "home"
    src.mkdir()
    rng = np.random.default_rng(0)
    rows = ["user_id,anime_id,rating,watching_status,watched_episodes"]
    for user in range(60):
        for anime in rng.choice(40, 15, replace=False):
            rows.append(f"{user},{anime},{rng.integers(1, 11)},1,3")  # all "watching", rated
    (src / "animelist.csv").write_text("\n".join(rows) + "\n")
    env = {"ANIMEREC_BENCH_HOME": str(home)}
    imported = cli("data", "import", src, "--name", "watching", env=env)
    assert imported.returncode == 0, imported.stderr
    proc = cli("run", "-m", "always-positive", "--dataset", "watching", "--results", tmp_path / "r", env=env)
    assert proc.returncode == 1, proc.stderr
    (r,) = results.load_all(tmp_path / "r")
    assert r["status"] == "failed"
    assert "task interaction has no examples in the test part of data set 'watching'" in r["error"], r["error"]


def test_a_timeout_while_importing_the_framework_names_that_phase(tmp_path):
    """A timeout during TensorFlow's import was reported "during load split"."""
    import textwrap

    plugins, slow = tmp_path / "plugins", tmp_path / "slow"
    plugins.mkdir()
    slow.mkdir()
    (slow / "cornac.py").write_text("import time\ntime.sleep(60)\n")  # a framework that takes long to import
    (plugins / "slow_model.py").write_text(textwrap.dedent('''
        import numpy as np
        import animerec_bench
        from animerec_bench.model import Model

        class Slow(Model):
            name = "slow"
            tasks = ("rating",)
            framework = "cornac"

            def fit(self, train, valid, *, tasks, seed):
                return self

            def predict(self, user, item):
                return {"rating": np.full(len(user), 7.0)}

        @animerec_bench.hookimpl
        def register_models(register):
            register(Slow)
        '''))
    proc = cli("run", "-m", "slow", "--plugins-dir", plugins, "--timeout", "8", "--results", tmp_path / "r",
               env={"PYTHONPATH": str(slow)})
    assert proc.returncode == 1, proc.stderr
    (r,) = results.load_all(tmp_path / "r")
    assert r["error"].startswith("timed out after 8 s (process group killed) during import cornac"), r["error"]
