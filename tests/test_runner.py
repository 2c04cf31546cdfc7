"""The runner: planning, --param parsing, and every failure mode in a real worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from animerec_bench.errors import UserError
from animerec_bench.results import store as results
from animerec_bench.support import timing

BIN = Path(sys.executable).parent / "animerec-bench"

#: Small loose-file plugins: a numpy item-mean model, a seeded noisy one, and one per failure mode.
PLUGINS = {
    "good_models.py": '''
        import random
        import numpy as np
        import animerec_bench
        from animerec_bench.model import Model

        class ItemMean(Model):
            """Per-item mean rating / positive rate, shrunk to the global mean."""
            name = "itemmean"
            tasks = ("rating", "interaction")
            def __init__(self, shrink: float = 5.0, label: str = "x"):
                self.shrink, self.label = shrink, label
            def fit(self, train, valid, *, tasks, seed):
                self.tables_ = {}
                for t in tasks:
                    part, y = train.for_task(t)
                    mu = float(y.mean())
                    s = np.bincount(part.item, weights=y, minlength=train.n_items)
                    n = np.bincount(part.item, minlength=train.n_items)
                    self.tables_[t] = (s + self.shrink * mu) / (n + self.shrink)
                    self.report_progress(epoch=1, loss=0.5)
                self.epochs_ = 1
                return self
            def predict(self, user, item):
                return {t: tab[item] for t, tab in self.tables_.items()}

        class Noisy(ItemMean):
            """Item mean plus noise from Python's and numpy's global generators (the runner seeds them)."""
            name = "noisy"
            tasks = ("rating",)
            def fit(self, train, valid, *, tasks, seed):
                super().fit(train, valid, tasks=tasks, seed=seed)
                noise = np.random.normal(0, 0.3, train.n_items) + random.random()
                self.tables_ = {"rating": self.tables_["rating"] + noise}
                return self

        class Joint(ItemMean):
            name = "jointmean"
            joint = True

        class TopPop(Model):
            """Trains for ranking only: every user gets the most popular anime (train positives)."""
            name = "toppop"
            tasks = ("ranking",)
            def __init__(self, power: float = 1.0):
                self.power = power
            def fit(self, train, valid, *, tasks, seed):
                positives, _ = train.for_task("ranking")
                self.counts_ = np.bincount(positives.item, minlength=train.n_items).astype(float) ** self.power
                return self
            def score(self, user):
                return np.tile(self.counts_, (len(user), 1))

        @animerec_bench.hookimpl
        def register_models(register):
            register(ItemMean); register(Noisy); register(Joint); register(TopPop)
    ''',
    "bad_models.py": '''
        import os, time
        import numpy as np
        import animerec_bench
        from animerec_bench.model import Model

        class Base(Model):
            tasks = ("rating",)
            def __init__(self):
                pass
            def predict(self, user, item):
                return {"rating": np.full(len(user), 7.0)}

        class Crasher(Base):
            name = "crasher"
            def fit(self, train, valid, *, tasks, seed):
                raise RuntimeError("boom in fit")

        class Hanger(Base):
            name = "hanger"
            def fit(self, train, valid, *, tasks, seed):
                self.report_progress(epoch=1, loss=1.0)
                time.sleep(600)

        class NanLoss(Base):
            name = "nanloss"
            def fit(self, train, valid, *, tasks, seed):
                self.report_progress(epoch=1, loss=2.0)
                self.report_progress(epoch=2, loss=float("nan"))
                return self

        class NanPred(Base):
            name = "nanpred"
            def fit(self, train, valid, *, tasks, seed):
                return self
            def predict(self, user, item):
                out = np.full(len(user), 7.0); out[::2] = np.nan
                return {"rating": out}

        class MemHog(Base):
            name = "memhog"
            def __init__(self, gib: float = 4.0):
                self.gib = gib
            def fit(self, train, valid, *, tasks, seed):
                self.blob_ = np.ones(int(self.gib * 2**30) // 8)
                return self

        class Exiter(Base):
            name = "exiter"
            def fit(self, train, valid, *, tasks, seed):
                os._exit(3)

        @animerec_bench.hookimpl
        def register_models(register):
            for cls in (Crasher, Hanger, NanLoss, NanPred, MemHog, Exiter):
                register(cls)
    ''',
}


def write_plugins(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in PLUGINS.items():
        (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    return write_plugins(tmp_path_factory.mktemp("plugins"))


@pytest.fixture(scope="module")
def registry(plugins):
    from animerec_bench.plugins.registry import load_registry

    reg = load_registry(plugins)
    assert not reg.errors, reg.errors
    return reg


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"})


def load_dir(folder: Path) -> list[dict]:
    return results.load_all(folder)


def test_parse_params_literals_strings_and_errors(registry):
    from animerec_bench.execution.runner import parse_params

    got = parse_params(["itemmean.shrink=2.5", "itemmean.label=hello world", "jointmean.label=[1, 2]"],
                       registry, ["itemmean", "jointmean"])
    # a str hyperparameter takes the text as is (tests/test_params.py has every type)
    assert got == {"itemmean": {"shrink": 2.5, "label": "hello world"}, "jointmean": {"label": "[1, 2]"}}
    for bad, words in [("nomodel.x=1", "unknown model 'nomodel'"), ("itemmean.nokey=1", "no hyperparameter 'nokey'"),
                       ("itemmean", "expected MODEL.KEY=VALUE"), ("noisy.shrink=1", "not among the models")]:
        with pytest.raises(UserError, match=words) as info:
            parse_params([bad], registry, ["itemmean", "jointmean"])
        assert "\n" not in str(info.value)


def test_plan_per_task_joint_and_task_filter(registry):
    from animerec_bench.execution.runner import plan

    jobs = plan(registry, ["itemmean", "jointmean", "noisy"], None, [0, 1], {"itemmean": {"shrink": 1.0}})
    assert [(j.model, j.tasks, j.seed) for j in jobs[:4]] == [
        ("itemmean", ("rating",), 0), ("itemmean", ("interaction",), 0),
        ("jointmean", ("rating", "interaction"), 0), ("noisy", ("rating",), 0)]
    assert len(jobs) == 8 and [j.index for j in jobs] == list(range(1, 9))
    assert jobs[0].params == {"shrink": 1.0} and jobs[2].params == {}
    only = plan(registry, ["itemmean", "jointmean", "noisy"], ("interaction",), [3], {})
    # a joint model still trains (and is scored on) all its tasks
    assert [(j.model, j.tasks) for j in only] == [("itemmean", ("interaction",)),
                                                   ("jointmean", ("rating", "interaction"))]
    with pytest.raises(UserError, match="serves"):
        plan(registry, ["noisy"], ("interaction",), [0], {})


def test_plan_ranks_every_model_once_per_seed(registry):
    from animerec_bench.execution.runner import plan

    jobs = plan(registry, ["itemmean", "jointmean", "noisy", "toppop"], None, [0], {})
    # lists come from the model's own score, else its interaction, else its rating predictions
    assert [(j.model, j.tasks, j.rank) for j in jobs] == [
        ("itemmean", ("rating",), None), ("itemmean", ("interaction",), "interaction"),
        ("jointmean", ("rating", "interaction"), "interaction"), ("noisy", ("rating",), "rating"),
        ("toppop", ("ranking",), "score")]
    assert jobs[1].label == "itemmean [interaction → ranking] seed 0"
    assert jobs[4].label == "toppop [ranking] seed 0"
    only = plan(registry, ["itemmean", "jointmean", "noisy", "toppop"], ("ranking",), [0], {})
    assert [(j.model, j.tasks) for j in only] == [("itemmean", ("interaction",)),
                                                   ("jointmean", ("rating", "interaction")),
                                                   ("noisy", ("rating",)), ("toppop", ("ranking",))]
    rating_only = plan(registry, ["itemmean", "toppop"], ("rating",), [0], {})
    assert [(j.model, j.tasks, j.rank) for j in rating_only] == [("itemmean", ("rating",), None)]


def test_failure_modes_each_fail_with_reason_while_others_finish(plugins, tmp_path):
    out = tmp_path / "res"
    proc = cli("run", "-m", "crasher", "-m", "hanger", "-m", "nanloss", "-m", "nanpred", "-m", "exiter",
               "-m", "itemmean", "--task", "rating", "--timeout", "6", "--results", str(out),
               "--plugins-dir", str(plugins))
    assert proc.returncode == 1, proc.stderr
    by_model = {r["model"]["name"]: r for r in load_dir(out)}
    assert set(by_model) == {"crasher", "hanger", "nanloss", "nanpred", "exiter", "itemmean"}
    assert by_model["itemmean"]["status"] == "ok"
    assert by_model["itemmean"]["metrics"]["rating"]["rmse"] < 1.5
    expect = {"crasher": ("crash", "boom in fit"), "hanger": ("timeout", "timed out after 6 s"),
              "nanloss": ("nan", "loss is nan at epoch 2"), "nanpred": ("nan", "NaN"),
              "exiter": ("crash", "exited with status 3")}
    for name, (kind, words) in expect.items():
        r = by_model[name]
        assert r["status"] == "failed" and r["error_kind"] == kind and words in r["error"], (name, r["error"])
        assert r["metrics"] == {}
    assert by_model["hanger"]["duration_seconds"] < 15
    # how far it got: the last progress it reported, in the result and in the error
    assert by_model["hanger"]["last_progress"] == {"epoch": 1, "loss": 1.0}
    assert by_model["hanger"]["error"].endswith("during fit, after epoch 1")
    assert "last_progress" not in by_model["itemmean"]
    assert "boom in fit" in by_model["crasher"]["traceback"]
    assert "5 failed" in proc.stdout and "1 ok" in proc.stdout
    # not a terminal: plain lines, no carriage returns
    assert "\r" not in proc.stderr and "[6/6] itemmean [rating] seed 0: ok" in proc.stderr


def test_out_of_memory_under_a_memory_limit(plugins, tmp_path):
    out = tmp_path / "res"
    proc = cli("run", "-m", "memhog", "-m", "itemmean", "--task", "rating", "--memory-limit", "1500",
               "--results", str(out), "--plugins-dir", str(plugins))
    assert proc.returncode == 1, proc.stderr
    by_model = {r["model"]["name"]: r for r in load_dir(out)}
    assert by_model["memhog"]["status"] == "failed" and by_model["memhog"]["error_kind"] == "oom"
    assert by_model["memhog"]["error"].startswith("out of memory")
    assert by_model["itemmean"]["status"] == "ok"


def test_same_seed_same_metrics_for_every_random_source(plugins, tmp_path):
    for name in ("a", "b"):
        assert cli("run", "-m", "noisy", "-m", "bias", "--seed", "1", "--results", str(tmp_path / name),
                   "--plugins-dir", str(plugins)).returncode == 0
    assert cli("run", "-m", "noisy", "--seed", "2", "--results", str(tmp_path / "c"),
               "--plugins-dir", str(plugins)).returncode == 0
    a, b, c = ({r["model"]["name"]: r for r in load_dir(tmp_path / n)} for n in "abc")
    for model in ("noisy", "bias"):
        assert a[model]["metrics"] == b[model]["metrics"]
        assert a[model]["split"]["fingerprint"] == b[model]["split"]["fingerprint"]
    assert a["noisy"]["split"]["fingerprint"] != c["noisy"]["split"]["fingerprint"]
    assert a["noisy"]["metrics"] != c["noisy"]["metrics"]


def test_mf_same_seed_same_metrics_on_cpu(tmp_path):
    from animerec_bench.plugins.registry import load_registry

    if "mf" not in load_registry().models:
        pytest.skip("the built-in mf model is not registered yet")
    for name in ("a", "b"):
        proc = cli("run", "-m", "mf", "--task", "rating", "--seed", "3", "--param", "mf.epochs=1",
                   "--results", str(tmp_path / name), timeout=300)
        assert proc.returncode == 0, proc.stderr
    (a,), (b,) = load_dir(tmp_path / "a"), load_dir(tmp_path / "b")
    assert a["metrics"] == b["metrics"]
    # the worker seeds Python and numpy; Keras is seeded once, by mf's own fit
    assert a["seeding"] == {"python": 3, "numpy": 3, "framework": "seeded by the model's fit"}
    assert a["model"]["params"]["epochs"] == 1 and a["model"]["params_set"] == {"epochs": 1}
    # TensorFlow is imported before fit is timed, and recorded apart
    t = a["timing"]
    assert t["framework_import_seconds"] > 0.5
    assert a["machine"]["devices"]
    # the harness's share is what the job spent beside the model's own parts
    own = sum(t.get(k, 0.0) for k in timing.MODEL_PARTS) + t["predict"]["median"]
    assert t["harness_seconds"] == pytest.approx(t["job_seconds"] - own)
    assert 0 < t["harness_share"] < 1 and t["worker_seconds"] < t["job_seconds"]


def test_user_errors_are_one_line(plugins, tmp_path):
    for args, words in [(["-m", "nope"], "unknown model 'nope'"), ([], "give --all or -m NAME"),
                        (["-m", "itemmean", "--param", "itemmean.zzz=1"], "no hyperparameter 'zzz'"),
                        (["-m", "itemmean", "--dataset", "nope"], "unknown data set 'nope'"),
                        (["-m", "itemmean", "--seed", "1", "--seeds", "2"], "not both")]:
        proc = cli("run", *args, "--results", str(tmp_path), "--plugins-dir", str(plugins))
        assert proc.returncode == 2, (args, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("loading plugin files from ")]
        assert len(lines) == 1, proc.stderr
    assert not any(tmp_path.iterdir())


def test_worker_records_timing_and_provenance(plugins, tmp_path):
    proc = cli("run", "-m", "jointmean", "--seeds", "1", "--results", str(tmp_path), "--plugins-dir", str(plugins))
    assert proc.returncode == 0, proc.stderr
    (r,) = load_dir(tmp_path)
    assert r["tasks"] == ["rating", "interaction"] and set(r["metrics"]) == {"rating", "interaction", "ranking"}
    t = r["timing"]
    for key in ("process_start_seconds", "import_seconds", "fit_seconds", "train_examples_per_second",
                "predict_per_second", "seconds_per_epoch"):
        assert isinstance(t[key], float) and t[key] > 0, key
    assert t["epochs"] == 1
    assert r["history"] == [{"epoch": 1, "loss": 0.5}] * 2  # what fit reported, once per task: the learning curve
    for key in ("validate_predict_seconds", "test_seconds", "latency_seconds", "worker_seconds", "harness_seconds"):
        assert isinstance(t[key], float) and t[key] >= 0, key
    assert t["predict"]["rounds"] >= 5 and set(t["predict"]) >= {"min", "max", "mean", "median", "stddev"}
    assert t["user_latency"]["p95"] >= t["user_latency"]["p50"] > 0
    assert "framework_import_seconds" not in t  # numpy model: no TensorFlow
    assert r["model"]["plugin"] == "good_models" and r["dataset"]["synthetic"] is False
    assert r["package"]["commit"] is None or len(r["package"]["commit"]) == 40
    assert r["package"]["dirty"] in (None, True, False)
    assert r["started_at"].endswith("Z") and r["machine"]["cores"] >= 1
    assert json.loads(json.dumps(r))  # plain JSON


def test_git_revision_says_whether_the_package_code_differs_from_the_commit(tmp_path):
    from animerec_bench.execution.runner import git_revision

    assert git_revision(tmp_path) == (None, None)  # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "animerec_bench").mkdir()
    (tmp_path / "animerec_bench" / "m.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("hi\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "c"]):
        subprocess.run(git + args, check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert git_revision(tmp_path) == (head, False)
    (tmp_path / "README.md").write_text("edited\n")  # not code: still clean
    assert git_revision(tmp_path) == (head, False)
    (tmp_path / "animerec_bench" / "m.py").write_text("x = 2\n")
    assert git_revision(tmp_path) == (head, True)
    subprocess.run(git + ["checkout", "-q", "--", "animerec_bench"], check=True)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "new.py").write_text("y = 1\n")  # a new plugin file changes results too
    assert git_revision(tmp_path) == (head, True)


def test_an_ok_result_with_an_invalid_metric_is_recorded_as_failed():
    """The parent's last check before a result is written: a metric no board may show (NaN, or out
    of its range) turns an ok result into a failed one, its numbers dropped."""
    from animerec_bench.execution.runner import _fail_on_invalid_metrics

    for value, kind in ((float("nan"), "nan"), (-1.0, "prediction")):
        result = {"status": "ok", "error": None, "error_kind": None, "metrics": {"rating": {"rmse": value}},
                  "val_metrics": {"rating": {"rmse": 1.0}}}
        _fail_on_invalid_metrics(result)
        assert (result["status"], result["error_kind"], result["metrics"], result["val_metrics"]) == \
            ("failed", kind, {}, {}), result
        assert result["error"].startswith("invalid metric: metrics.rating.rmse "), result["error"]
    fine = {"status": "ok", "error": None, "metrics": {"rating": {"rmse": 1.1}}, "val_metrics": {}}
    _fail_on_invalid_metrics(fine)
    assert fine["status"] == "ok" and fine["metrics"] == {"rating": {"rmse": 1.1}}
