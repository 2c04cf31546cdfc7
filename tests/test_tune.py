"""``animerec-bench tune``: the search-space contract, nested trials that never see a test pair,
resuming after a kill, and the budget. Real processes, real Optuna (SQLite), small numpy models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from animerec_bench import tasks
from animerec_bench.execution import tuning
from animerec_bench.model import Model
from animerec_bench.results import store as results
from animerec_bench.testing import check_model

from .conftest import imported_after

BIN = Path(sys.executable).parent / "animerec-bench"

#: ``spy``: a per-item mean with a shrinkage to tune that appends every (user, item) pair it is given,
#: in fit (train and validation) and in predict, to one file per process and seed under $SPY_LOG; it
#: ranks by ``score``, which is given users only.
SPY = '''
    import os, time
    import numpy as np
    import animerec_bench
    from animerec_bench.model import Model

    class Spy(Model):
        name = "spy"
        tasks = ("rating",)
        search_space = {"shrink": ("float", 0.1, 100.0, "log")}

        def __init__(self, shrink: float = 5.0, sleep: float = 0.0):
            self.shrink, self.sleep = shrink, sleep

        def _log(self, user, item):
            folder = os.environ.get("SPY_LOG")
            if folder:
                codes = np.asarray(user, np.int64) * 100_000 + np.asarray(item, np.int64)
                with open(os.path.join(folder, f"seed{self.seed_}-pid{os.getpid()}.bin"), "ab") as fh:
                    fh.write(codes.astype("<i8").tobytes())

        def fit(self, train, valid, *, tasks, seed):
            self.seed_ = seed
            folder = os.environ.get("SPY_LOG")
            if folder:
                open(os.path.join(folder, f"running-{os.getpid()}"), "w").close()
            self._log(train.user, train.item)
            if valid is not None:
                self._log(valid.user, valid.item)
            time.sleep(self.sleep)
            part, y = train.for_task("rating")
            mu = float(y.mean())
            s = np.bincount(part.item, weights=y, minlength=train.n_items)
            n = np.bincount(part.item, minlength=train.n_items)
            self.table_ = (s + self.shrink * mu) / (n + self.shrink)
            self.epochs_ = 1
            return self

        def predict(self, user, item):
            self._log(user, item)
            return {"rating": self.table_[item]}

        def score(self, user):
            # Its lists for the ranking its rating job is also scored on. It is given users, not
            # pairs: nothing to log. Ranked through predict instead, every test job would log every
            # anime for every test user (27M pairs, 222 MB a seed), and checking those logs took
            # the nesting test 40 minutes under load.
            return np.tile(self.table_.astype(np.float32), (len(user), 1))

    class BadSpace(Spy):
        name = "bad-space"
        search_space = {"shrinkage": ("float", 0.1, 100.0, "log")}

    @animerec_bench.hookimpl
    def register_models(register):
        register(Spy); register(BadSpace)
'''


@pytest.fixture
def plugins(tmp_path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "spy.py").write_text(textwrap.dedent(SPY), encoding="utf-8")
    return folder


@pytest.fixture
def env(tmp_path, plugins) -> dict:
    """Its own data home (studies, splits) and spy log folder; the repo's plugins/ left out."""
    (tmp_path / "spy").mkdir()
    return {**os.environ, "ANIMEREC_BENCH_HOME": str(tmp_path / "home"), "SPY_LOG": str(tmp_path / "spy"),
            "ANIMEREC_BENCH_PLUGINS_DIR": str(plugins)}


def tune(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # A tune of a few trials on the embedded data runs a process per trial; on a loaded 2-core
    # machine running the suite on both cores, the nesting test's tune took 254 s (limit then 240).
    return subprocess.run([str(BIN), "tune", *args], capture_output=True, text=True, env=env, timeout=timeout)


def study(env: dict, name: str):
    """The study as Optuna stored it (read in this process from the test's data home)."""
    old = os.environ.get("ANIMEREC_BENCH_HOME")
    os.environ["ANIMEREC_BENCH_HOME"] = env["ANIMEREC_BENCH_HOME"]
    try:
        return tuning.load_study(name)
    finally:
        os.environ["ANIMEREC_BENCH_HOME"] = old


def split_of(env: dict, seed: int):
    from animerec_bench.builtin.datasets import MAL2016_5K
    from animerec_bench.data.protocol import get_protocol

    old = os.environ.get("ANIMEREC_BENCH_HOME")
    os.environ["ANIMEREC_BENCH_HOME"] = env["ANIMEREC_BENCH_HOME"]
    try:
        return get_protocol("v1").split(MAL2016_5K, seed)
    finally:
        os.environ["ANIMEREC_BENCH_HOME"] = old


def codes(part) -> np.ndarray:
    return part.user.astype(np.int64) * 100_000 + part.item.astype(np.int64)


# -- the search-space contract ---------------------------------------------------------------


class Shrunk(Model):
    """A numpy per-item mean: what the contract tests hang search spaces on."""

    name = "shrunk"
    tasks = ("rating", "interaction")

    def __init__(self, shrink: float = 5.0, rounds: int = 1, kind: str = "mean"):
        self.shrink, self.rounds, self.kind = shrink, rounds, kind

    def fit(self, train, valid, *, tasks, seed):
        self.tables_ = {}
        for t in tasks:
            part, y = train.for_task(t)
            mu = float(y.mean())
            s = np.bincount(part.item, weights=y, minlength=train.n_items)
            n = np.bincount(part.item, minlength=train.n_items)
            self.tables_[t] = (s + self.shrink * mu) / (n + self.shrink)
        return self

    def predict(self, user, item):
        return {t: tab[item] for t, tab in self.tables_.items()}


def with_space(space=None, **attrs) -> type:
    body = {"search_space": space} if space is not None else {}
    return type("Spaced", (Shrunk,), {**body, **attrs})


@pytest.mark.parametrize("space", [
    None, {},
    {"shrink": ("float", 1e-3, 100.0, "log"), "rounds": ("int", 1, 8), "kind": ("categorical", ["mean", "median"])},
    {"shrink": ("float", 0.0, 10.0), "rounds": ("int", 1, 64, "log"), "kind": ("categorical", ("mean",))},
    {"shrink": ["float", 0, 10, "linear"], "rounds": ("categorical", [1, 2, None])},
])
def test_valid_search_spaces_pass_check_model(space):
    check_model(with_space(space))


@pytest.mark.parametrize("space, expected", [
    ({"shrinkage": ("float", 0.1, 10.0)}, "'shrinkage' is not a keyword argument of __init__"),
    ({"shrink": ("real", 0.1, 10.0)}, "kind 'real' is not one of 'int', 'float', 'categorical'"),
    ({"shrink": ("float", 10.0, 0.1)}, "lo 10.0 must be below hi 0.1"),
    ({"shrink": ("float", 1.0, 1.0)}, "lo 1.0 must be below hi 1.0"),
    ({"shrink": ("float", 0.0, 10.0, "log")}, "a 'log' range needs lo > 0"),
    ({"rounds": ("int", 1.5, 8)}, "lo 1.5 is not an int"),
    ({"rounds": ("int", 1, True)}, "hi True is not an int"),
    ({"shrink": ("float", 0.1, float("inf"))}, "hi inf is not a finite number"),
    ({"shrink": ("float", 0.1, 10.0, "exp")}, "scale 'exp' is not 'log' or 'linear'"),
    ({"shrink": ("float", 0.1)}, "expected ('float', lo, hi) or ('float', lo, hi, 'log')"),
    ({"kind": ("categorical", [])}, "at least one choice"),
    ({"kind": ("categorical", "mean", "median")}, "at least one choice"),
    ({"kind": ("categorical", [{"a": 1}])}, "choice {'a': 1} is a dict, expected None, bool, int, float or str"),
    ({"shrink": 0.5}, "expected a tuple such as"),
    ({"shrink": ("float", 0.1, 0.5)}, "the default 5.0 lies outside [0.1, 0.5] (tune's first trial runs"),
    ({"rounds": ("int", 3, 8)}, "the default 1 lies outside [3, 8]"),
    ({"kind": ("categorical", ["median"])}, "the default 'mean' is not one of the choices"),
    ([("shrink", ("float", 0.1, 1.0))], "search_space is a list, expected a dict"),
])
def test_invalid_search_spaces_fail_check_model_saying_what_is_wrong(space, expected):
    with pytest.raises(AssertionError) as caught:
        check_model(with_space(space))
    message = str(caught.value)
    assert message.startswith("check_model(shrunk): search space: "), message
    assert expected in message, message
    if isinstance(space, dict):
        assert f"search_space[{next(iter(space))!r}]" in message, message


def test_a_tuning_objective_must_be_one_of_the_models_tasks():
    check_model(with_space({"shrink": ("float", 0.1, 10.0)}, joint=True, tuning_objective="interaction"))
    with pytest.raises(AssertionError, match=r"search space: tuning_objective 'ranking' is not one of the "
                                             r"model's tasks \('rating', 'interaction'\)"):
        check_model(with_space({}, tuning_objective="ranking"))


def test_builtin_learned_models_declare_valid_spaces_that_hold_their_defaults():
    """Each built-in learned model is tunable; its defaults lie in its space (trial 0 runs them, so
    tuning never picks worse than the defaults on validation), and the epoch budget is not searched."""
    from animerec_bench.plugins.registry import load_registry

    reg = load_registry("/nonexistent")
    for name in ("mf", "nn", "hybrid", "mf-biased", "bias", "popularity"):
        cls = reg.model(name).cls
        space = tuning.search_space(cls)
        assert space and tuning.space_problem(cls) is None, name
        assert not {"epochs", "patience", "sweeps", "steps_per_epoch"} & set(space), name
    for name, entry in reg.models.items():  # every model with a space: trial 0 is its defaults
        space = tuning.search_space(entry.cls)
        assert tuning.space_problem(entry.cls) is None, name
        defaults = {k: v for k, v in tuning.param_defaults(entry.cls).items() if k in space and v is not None}
        assert set(tuning.defaults_in_space(entry.cls, space)) == set(defaults), name
    for name in ("global-mean", "always-positive"):
        assert tuning.search_space(reg.model(name).cls) == {}


def test_the_objective_is_the_primary_metric_of_the_task_being_fitted():
    from animerec_bench.builtin.keras_models import NN, Hybrid

    assert tuning.objective_for(NN, ("rating",)) == tuning.Objective("rating", "rmse", False)
    assert tuning.objective_for(NN, ("interaction",)) == tuning.Objective("interaction", "auc", True)
    hybrid = tuning.objective_for(Hybrid, ("rating", "interaction"))  # declares tuning_objective
    assert (hybrid.label, hybrid.direction) == ("interaction.auc", "maximize")
    joint = with_space({}, joint=True)  # no tuning_objective: its first task
    assert tuning.objective_for(joint, ("rating", "interaction")).label == "rating.rmse"
    for task in tasks.TASKS.values():  # through the task objects, so a new task plugs in
        got = tuning.objective_for(with_space({}, tasks=(task.name,)), (task.name,))
        assert (got.metric, got.higher_is_better) == (task.primary, task.higher_is_better)


def test_the_documented_search_space_passes_check_model():
    """docs/plugins.md's search space, on its example plugin, conforms; its quoted error is real."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = doc.split("## Making it tunable", 1)[1]
    (line,) = re.findall(r"^\s+(search_space = .*)$", section.split("```bash")[0], re.MULTILINE)
    example = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(example, "docs/plugins.md", "exec"), namespace)
    body: dict = {}
    exec(line, {}, body)
    check_model(type("Tunable", (namespace["ItemAverage"],), body))
    with pytest.raises(AssertionError) as caught:
        check_model(type("Typo", (namespace["ItemAverage"],), {"search_space": {"shrink": ("float", 0.1, 1.0)}}))
    quoted = re.search(r"`(check_model\(item-average\): search space: [^`]*)`", section).group(1)
    assert str(caught.value) == quoted


# -- tuning through the CLI ----------------------------------------------------------------------


def test_trials_never_see_a_test_pair_and_the_choice_is_tested_once(env, tmp_path):
    """Nested per seed: every trial process of seed s got train and validation pairs only and
    scored validation; exactly one process (the final test job) saw s's test pairs, and scored all
    of them. Models without a space run their defaults."""
    res = tmp_path / "results"
    done = tune(env, "-m", "spy", "global-mean", "--task", "rating", "--trials", "2", "--seeds", "2",
                "--results", str(res))
    assert done.returncode == 0, done.stderr + done.stdout

    logs = Path(env["SPY_LOG"])
    for seed in (0, 1):
        split = split_of(env, seed)
        test_pairs = codes(split.test)
        rated_test = codes(split.test.subset(split.test.task_mask("rating")))
        seen = {f.name: np.fromfile(f, "<i8") for f in logs.glob(f"seed{seed}-pid*.bin")}
        leaked = {name for name, c in seen.items() if np.isin(test_pairs, c).any()}
        assert len(leaked) == 1, f"seed {seed}: processes that saw test pairs: {sorted(leaked)}"
        (final,) = leaked
        assert np.isin(rated_test, seen[final]).all()  # the test job scored every test pair
        trials = [c for name, c in seen.items() if name != final]
        assert len(trials) == 2  # one process per trial
        fit_and_valid = np.concatenate([codes(split.train), codes(split.valid)])
        for c in trials:
            assert np.isin(c, fit_and_valid).all() and np.isin(codes(split.valid), c).all()

    found = results.load_all(res)
    assert sorted((r["model"]["name"], r["split"]["seed"]) for r in found) == \
        [("global-mean", 0), ("global-mean", 1), ("spy", 0), ("spy", 1)]  # trials write elsewhere
    for r in found:
        assert r["status"] == "ok" and "validation_only" not in r and r["metrics"]["rating"]["rmse"] > 0
        if r["model"]["name"] == "global-mean":
            assert r["tuning"]["method"] == "default"
            continue
        t = r["tuning"]
        assert (t["method"], t["trials"], t["budget"], t["objective"]) == ("optuna-tpe", 2,
                                                                         {"trials": 2, "seconds": None}, "rating.rmse")
        assert f"seed{r['split']['seed']}" in t["study"] and t["seconds"] > 0
        st = study(env, t["study"])
        assert (st.best_trial.number, st.best_value, st.best_params) == (t["best_trial"], t["best_value"], t["params"])
        assert r["model"]["params"]["shrink"] == t["params"]["shrink"]
        assert len(st.trials) == 2 and st.trials[0].params == {"shrink": 5.0}  # trial 0: the defaults
        for trial in st.trials:  # each trial's own result: validation only, no test metrics
            tr = results.load(trial.user_attrs["result_file"])
            assert tr["validation_only"] is True and tr["metrics"] == {}
            assert tr["val_metrics"]["rating"]["rmse"] == trial.value
    spy0 = next(r for r in found if r["model"]["name"] == "spy" and r["split"]["seed"] == 0)
    assert spy0["tuning"]["study"] != next(r for r in found if r["model"]["name"] == "spy"
                                           and r["split"]["seed"] == 1)["tuning"]["study"]

    # Leaderboard: a default run of the same model is a row of its own, and each row says which.
    ran = subprocess.run([str(BIN), "run", "-m", "spy", "--results", str(res)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "boards"
    lb = subprocess.run([str(BIN), "leaderboard", "--results", str(res), "--out", str(out)], capture_output=True,
                        text=True, env=env, timeout=60)
    assert lb.returncode == 0, lb.stderr
    board = (out / "mal2016-5k-v1.md").read_text(encoding="utf-8")
    rating_table = board[board.index("### rating"):board.index("### ranking")]
    rows = [line for line in rating_table.splitlines() if line.startswith("| spy ")]
    # The variant is in the model cell (issue 21): "spy" is the default row, "spy (tuned)" the tuned one,
    # whose Notes give its budget.
    by_label = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in rows}
    assert sorted(by_label) == ["spy", "spy (tuned)"] and by_label["spy (tuned)"].startswith("2 trials, "), rows
    assert [line.split("|")[-3].strip() for line in rows if "(tuned)" in line] == ["2"]  # both seeds, one row
    assert any(line.startswith("| global-mean ") and "(tuned)" not in line for line in board.splitlines())


def test_an_interrupted_tune_resumes_where_it_stopped(env, tmp_path):
    """SIGTERM mid-study: the running trial's process is killed with it; a rerun carries on, and
    the trials done before count against --trials (the count adds up, it does not restart)."""
    res = tmp_path / "results"
    args = ("-m", "spy", "--trials", "4", "--param", "spy.sleep=0.5", "--results", str(res))
    proc = subprocess.Popen([str(BIN), "tune", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    finished = 0
    deadline = time.monotonic() + 120
    lines = []
    while finished < 2 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        finished += line.lstrip().startswith("trial ")
    assert finished == 2, "".join(lines)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 143, rest  # 128 + SIGTERM, as `run` exits (#25 item 11)
    last = rest.strip().splitlines()[-1]
    assert last.startswith("tune stopped by SIGTERM while tuning spy [") and "Aborted!" not in rest, rest
    assert f"its finished trials are kept in {Path(env['ANIMEREC_BENCH_HOME']) / 'tuning' / 'studies.sqlite3'}" in last
    assert last.endswith(f"a rerun resumes there); 0 test result(s) written to {res}"), last
    assert not res.exists() or not list(res.glob("*.json"))  # no test job ran
    for marker in Path(env["SPY_LOG"]).glob("running-*"):  # no trial's process outlived tune
        pid = int(marker.name.split("-")[1])
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid), f"trial process {pid} still runs"

    name = next(line.split("study ")[1].split(":")[0] for line in lines if "study mal2016-5k" in line)
    before = [t.number for t in tuning.counted(study(env, name).trials)]  # a snapshot: the study reads live
    done_before = len(before)
    assert done_before in (2, 3), before

    again = tune(env, *args)
    assert again.returncode == 0, again.stderr
    assert f"{done_before} trial(s) done" in again.stderr
    new_trials = [line for line in again.stderr.splitlines() if line.lstrip().startswith("trial ")]
    assert len(new_trials) == 4 - done_before
    after = study(env, name)
    assert len(tuning.counted(after.trials)) == 4
    assert [t.number for t in tuning.counted(after.trials)][:done_before] == before
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in after.trials)  # the cut trial is closed
    (r,) = results.load_all(res)
    assert r["tuning"]["trials"] == 4 and r["tuning"]["study"] == name

    # A third run has nothing left to do: no trial, no second test job.
    third = tune(env, *args)
    assert third.returncode == 0 and "already in the results" in third.stderr, third.stderr
    assert len(results.load_all(res)) == 1 and len(study(env, name).trials) == len(after.trials)

    # The interruption changed nothing: an uninterrupted study (in a home of its own) proposes the
    # same parameters in the same order.
    fresh = {**env, "ANIMEREC_BENCH_HOME": str(tmp_path / "home2")}
    whole = tune(fresh, "-m", "spy", "--trials", "4", "--param", "spy.sleep=0", "--results", str(tmp_path / "r2"))
    assert whole.returncode == 0, whole.stderr
    (r2,) = results.load_all(tmp_path / "r2")
    assert [t.params for t in tuning.counted(study(fresh, r2["tuning"]["study"]).trials)] == \
        [t.params for t in tuning.counted(after.trials)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its reaper is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_budget_seconds_stops_new_trials_once_spent_and_trials_caps_the_count(env, tmp_path):
    res = tmp_path / "results"
    # A budget of 8 s, trials of >= 1 s: room for two trials even when a trial's process takes
    # seconds to start (a loaded 2-core machine running the suite on both cores: 2.6 s, which a
    # 2 s budget spent on the first trial alone).
    args = ("-m", "spy", "--param", "spy.sleep=1.0", "--results", str(res))
    done = tune(env, "--budget", "8", *args)
    assert done.returncode == 0, done.stderr
    (r,) = results.load_all(res)
    st = study(env, r["tuning"]["study"])
    seconds = [t.user_attrs["seconds"] for t in tuning.counted(st.trials)]
    assert sum(seconds[:-1]) < 8 <= sum(seconds)  # the last trial started before the budget was spent
    assert r["tuning"]["budget"] == {"trials": None, "seconds": 8.0}
    assert r["tuning"]["seconds"] == pytest.approx(sum(seconds)) and r["tuning"]["trials"] == len(seconds) >= 2

    # --trials caps the count: the same study under a 2-trial budget runs nothing new and is judged
    # on its first 2 trials only, exactly what a fresh 2-trial tune would have run.
    capped = tune(env, "--budget", "1000", "--trials", "2", *args)
    assert capped.returncode == 0, capped.stderr
    assert not [line for line in capped.stderr.splitlines() if line.lstrip().startswith("trial ")]
    (two,) = [x for x in results.load_all(res) if x["tuning"]["budget"]["trials"] == 2]
    first = tuning.counted(st.trials)[:2]
    best = min(first, key=lambda t: t.value)
    assert (two["tuning"]["trials"], two["tuning"]["best_trial"]) == (2, best.number)
    assert two["tuning"]["seconds"] == pytest.approx(sum(seconds[:2]))
    assert len(study(env, r["tuning"]["study"]).trials) == len(st.trials)


def test_user_mistakes_are_one_line_errors(env):
    for args, expected in (
        (["-m", "spy"], "give a budget: --trials N and/or --budget SECONDS"),
        (["-m", "spy", "--trials", "2", "--seeds", "2", "--seed", "1"], "give either --seeds N or --seed S"),
        (["-m", "bad-space", "--trials", "2"], "model 'bad-space' (plugin 'spy'): search_space['shrinkage']: "
                                               "'shrinkage' is not a keyword argument of __init__"),
        (["-m", "spy", "--trials", "2", "--param", "spy.nope=1"], "model 'spy' has no hyperparameter 'nope'"),
        # #25 item 6: a budget that never runs out is not a budget
        (["-m", "spy", "--budget", "nan"], "--budget nan: expected a finite number of seconds greater than 0"),
        (["-m", "spy", "--budget", "inf"], "--budget inf: expected a finite number of seconds greater than 0"),
        (["-m", "spy", "--budget", "1e999"], "--budget inf: expected a finite number of seconds greater than 0"),
    ):
        done = tune(env, *args, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        lines = [ln for ln in done.stderr.strip().splitlines() if not ln.startswith("loading plugin files")]
        assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
        assert expected in done.stderr, done.stderr
    for option, value in (("--budget", "-5"), ("--trials", "-1"), ("--trials", "nan"), ("--trials", "inf")):
        done = tune(env, "-m", "spy", option, value, timeout=60)  # click's range and type checks
        assert done.returncode == 2 and f"Invalid value for '{option}'" in done.stderr, done.stderr


def test_cli_and_tune_help_import_neither_optuna_nor_tensorflow():
    code = ("from click.testing import CliRunner; from animerec_bench.cli import cli\n"
            "out = CliRunner().invoke(cli, ['tune', '--help'])\n"
            "assert out.exit_code == 0 and 'per model, task and seed' in ' '.join(out.output.split()), out.output")
    assert imported_after(code, ("optuna", "tensorflow", "keras")) == []


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "another program's", "a folder"])
def test_a_damaged_studies_file_is_one_line_naming_it(env, tmp_path, damage):
    """#25 item 10: tuning/studies.sqlite3 that is not tune's SQLite file was a traceback (and
    another program's SQLite file would have had Optuna's tables written into it)."""
    import sqlite3

    path = tmp_path / "home" / "tuning" / "studies.sqlite3"
    path.parent.mkdir(parents=True)
    if damage == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "a folder":
        path.mkdir()
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE notes (body TEXT)")
            db.executemany("INSERT INTO notes VALUES (?)", [("x" * 500,)] * 200)
        db.close()
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:3000])
    before = path.read_bytes() if path.is_file() else None
    done = tune(env, "-m", "spy", "--trials", "1", timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.strip().splitlines() if not ln.startswith("loading plugin files")]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: {path}: not the studies database tune keeps"), lines[0]
    assert (path.read_bytes() if path.is_file() else None) == before  # left as it was
