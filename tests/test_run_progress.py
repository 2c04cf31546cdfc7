"""Progress a person can follow in a CI log: a line per epoch with losses and an ETA, the run's
elapsed / remaining time as each job ends, and a closing summary ranked by each task's primary
metric (issue 21). Runs real jobs (worker processes) on the embedded data set."""

from __future__ import annotations

import re
import textwrap

from tests.test_runner import cli

EPOCHS_PLUGIN = '''
    import time
    import numpy as np
    import animerec_bench
    from animerec_bench.model import Model

    class Epochs(Model):
        """Item means, learned in ``epochs`` passes that each report a loss and a validation loss."""
        name = "epochs"
        tasks = ("rating",)
        def __init__(self, epochs: int = 3):
            self.epochs = epochs
        def fit(self, train, valid, *, tasks, seed):
            part, y = train.for_task("rating")
            s = np.bincount(part.item, weights=y, minlength=train.n_items)
            n = np.bincount(part.item, minlength=train.n_items)
            mu = float(y.mean())
            t0 = time.perf_counter()
            for epoch in range(1, self.epochs + 1):
                shrink = 10.0 / epoch
                self.table_ = (s + shrink * mu) / (n + shrink)
                time.sleep(0.05)
                self.report_progress(epoch=epoch, loss=1.0 / epoch, val_loss=2.0 / epoch,
                                     seconds=time.perf_counter() - t0)
            self.epochs_ = self.epochs
            return self
        def predict(self, user, item):
            return {"rating": self.table_[item]}

    @animerec_bench.hookimpl
    def register_models(register):
        register(Epochs)
'''


def test_plain_progress_has_epoch_lines_run_times_and_a_ranked_summary(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "epoch_model.py").write_text(textwrap.dedent(EPOCHS_PLUGIN))
    done = cli("run", "-m", "epochs", "global-mean", "bias", "--task", "rating", "--param", "epochs.epochs=4",
               "--results", str(tmp_path / "results"), "--plugins-dir", str(folder), timeout=300)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "\r" not in err and "\x1b" not in err  # not a terminal: plain lines for the CI log

    epoch_lines = [ln for ln in err.splitlines() if re.search(r"\] seed 0: epoch \d", ln)]
    assert [re.search(r"epoch (\d+)/4", ln).group(1) for ln in epoch_lines] == ["1", "2", "3", "4"], err
    assert all(ln.startswith("[1/3] epochs [rating → ranking] seed 0: epoch") for ln in epoch_lines)
    assert "loss 1.0000 · val_loss 2.0000" in epoch_lines[0] and "loss 0.2500 · val_loss 0.5000" in epoch_lines[3]
    assert "s left" in epoch_lines[0] and "s left" not in epoch_lines[3]  # an ETA until the budget is spent

    ends = [ln for ln in err.splitlines() if re.search(r"seed \d+: (ok|FAILED) in", ln)]
    assert len(ends) == 3 and all("elapsed" in ln for ln in ends)
    assert all("remaining" in ln for ln in ends[:2]) and "remaining" not in ends[2]

    out = done.stdout.splitlines()
    start = out.index("mean ± std over the seeds just run:")
    rating = out.index("  rating, best first by rmse (lower is better):", start)
    rows = [ln.split() for ln in out[rating + 1:rating + 4]]
    assert sorted(r[0] for r in rows) == ["bias", "epochs", "global-mean"]
    rmses = [float(r[3]) for r in rows]
    assert rmses == sorted(rmses) and rows[-1][0] == "global-mean"  # best (lowest RMSE) first
    ranking = out.index("  ranking, best first by ndcg@10 (higher is better):", start)
    ndcgs = [float(ln.split()[3]) for ln in out[ranking + 1:ranking + 4]]
    assert len(ndcgs) == 3 and ndcgs == sorted(ndcgs, reverse=True)
