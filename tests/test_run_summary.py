"""A run a person can follow: the live line's ETA, and the summary at the end of a run."""

from __future__ import annotations

import io

from animerec_bench.execution.progress import TerminalReporter
from animerec_bench.execution.runner import Job
from tests.test_runner import cli, plugins  # noqa: F401 - plugins is a fixture


def test_live_line_shows_epoch_losses_and_an_upper_bound_eta():
    out = io.StringIO()
    job = Job(1, "mf", ("rating",), 0)
    rep = TerminalReporter(2, out, epochs_of=lambda j: 10)
    rep.start(job)
    rep.event("progress", {"epoch": 2, "loss": 1.5, "val_loss": 1.25, "seconds": 4.0})
    line = out.getvalue().split("\r\x1b[K")[-1]
    assert "epoch 2" in line and "loss 1.5000" in line and "val_loss 1.2500" in line
    assert "≤ 16 s left" in line  # 2 s an epoch, 8 epochs of the budget left
    no_budget = TerminalReporter(2, io.StringIO(), epochs_of=lambda j: None)
    no_budget.start(job)
    no_budget.event("progress", {"epoch": 2, "loss": 1.0})
    assert "left" not in no_budget.stream.getvalue()


def test_end_of_run_gives_mean_and_std_per_model_and_where_each_failure_is(plugins, tmp_path):  # noqa: F811
    res = tmp_path / "r"
    done = cli("run", "-m", "itemmean", "crasher", "--task", "rating", "--seeds", "2", "--results", str(res),
               "--plugins-dir", str(plugins))
    assert done.returncode == 1
    out = done.stdout
    assert "mean ± std over the seeds just run:" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("itemmean rating rmse"))
    assert "±" in line and "(2 seed(s))" in line
    failed = [ln for ln in out.splitlines() if ln.startswith("failed: crasher")]
    assert len(failed) == 2 and all(str(res) in ln and ln.endswith(".json") for ln in failed)
    assert "board: `animerec-bench leaderboard` renders it into" in out
