"""Equal-budget tuning: a model's search space as plain data, searched by Optuna on validation only.

A model declares ``search_space = {"reg": ("float", 1e-4, 1e-1, "log"), ...}`` (no tuning library
needed to write one). ``animerec-bench tune`` gives every study the same budget (trials and/or
seconds), nested per seed: for split seed ``s`` every trial is a job (own process, time limit)
whose worker gets ``s``'s split *with the test part emptied* and is scored on ``s``'s validation
part; the chosen parameters are then scored once on ``s``'s test part by a normal job, whose
result carries a ``tuning`` object. No pair of a reported test part chooses anything.

Studies live in SQLite under the data home, so an interrupted ``tune`` resumes: the trials
already done count against the budget, and each trial's TPE seed is derived from the split seed
and the number of trials done, so a resumed study proposes what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animerec_bench import tasks as tasks_mod
from animerec_bench.errors import UserError
from animerec_bench.model import param_defaults
from animerec_bench.results import store as results
from animerec_bench.support import paths

KINDS = ("int", "float", "categorical")
SCALES = ("linear", "log")
#: Values a categorical choice may take (what Optuna stores and JSON writes as they are).
PLAIN_CHOICES = (type(None), bool, int, float, str)
#: How the result's ``tuning.method`` names the two ways a model's parameters were set.
TUNED, DEFAULT = "optuna-tpe", "default"


# -- the search-space contract ---------------------------------------------------------------

def search_space(cls: type) -> dict[str, tuple]:
    """The model's declared space (``{}`` when it declares none)."""
    return dict(getattr(cls, "search_space", None) or {})


def space_problem(cls: type) -> str | None:
    """Why ``cls``'s ``search_space`` (or ``tuning_objective``) is invalid, or None when it is fine.

    Each key is an ``__init__`` hyperparameter; each value is ``("int"|"float", lo, hi)``, optionally
    with ``"log"`` (or ``"linear"``) as a fourth item, lo < hi, lo > 0 for ``"log"``; or
    ``("categorical", [choice, ...])`` with at least one choice of None, bool, int, float or str.
    """
    space = getattr(cls, "search_space", None)
    if space is None:
        space = {}
    if not isinstance(space, Mapping):
        return (f"search_space is a {type(space).__name__}, expected a dict {{hyperparameter: "
                f"('float', lo, hi, 'log') | ('int', lo, hi) | ('categorical', [choices])}}")
    known = param_defaults(cls)
    for key, spec in space.items():
        where = f"search_space[{key!r}]"
        if key not in known:
            return (f"{where}: {key!r} is not a keyword argument of __init__ "
                    f"(hyperparameters: {', '.join(known) or '(none)'})")
        problem = _spec_problem(spec) or _default_outside(spec, known[key])
        if problem:
            return f"{where} = {spec!r}: {problem}"
    objective = getattr(cls, "tuning_objective", None)
    if objective is not None and objective not in tuple(getattr(cls, "tasks", ())):
        return f"tuning_objective {objective!r} is not one of the model's tasks {tuple(getattr(cls, 'tasks', ()))}"
    return None


def _spec_problem(spec: object) -> str | None:
    if not isinstance(spec, (tuple, list)) or not spec:
        return "expected a tuple such as ('float', 1e-4, 0.1, 'log'), ('int', 8, 256) or ('categorical', [...])"
    kind = spec[0]
    if kind not in KINDS:
        return f"kind {kind!r} is not one of {', '.join(map(repr, KINDS))}"
    if kind == "categorical":
        if len(spec) != 2 or not isinstance(spec[1], (tuple, list)) or not spec[1]:
            return "expected ('categorical', [choice, ...]) with at least one choice"
        bad = [c for c in spec[1] if not isinstance(c, PLAIN_CHOICES)]
        if bad:
            return f"choice {bad[0]!r} is a {type(bad[0]).__name__}, expected None, bool, int, float or str"
        return None
    if len(spec) not in (3, 4):
        return f"expected ({kind!r}, lo, hi) or ({kind!r}, lo, hi, 'log')"
    lo, hi = spec[1], spec[2]
    number = numbers.Integral if kind == "int" else numbers.Real
    for label, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, number) or not math.isfinite(v):
            return f"{label} {v!r} is not {'an int' if kind == 'int' else 'a finite number'}"
    if not lo < hi:
        return f"lo {lo!r} must be below hi {hi!r}"
    scale = spec[3] if len(spec) == 4 else "linear"
    if scale not in SCALES:
        return f"scale {scale!r} is not 'log' or 'linear'"
    if scale == "log" and lo <= 0:
        return f"a 'log' range needs lo > 0, got lo {lo!r}"
    return None


def _default_outside(spec: tuple, default: Any) -> str | None:
    """Why the default cannot be tune's first trial (it runs the defaults), or None.

    A default outside its range was silently dropped from that trial (``dlae``'s rate 0.03 with a
    range up to 0.01), so the study never scored the defaults it was meant to improve on."""
    if default is None or isinstance(default, bool) and spec[0] != "categorical":
        return None
    if spec[0] == "categorical":
        return None if default in spec[1] else f"the default {default!r} is not one of the choices"
    if isinstance(default, numbers.Real) and spec[1] <= default <= spec[2]:
        return None
    return f"the default {default!r} lies outside [{spec[1]!r}, {spec[2]!r}] (tune's first trial runs the defaults)"


def distributions(space: Mapping[str, tuple]) -> dict:
    """The space as Optuna distributions (``space`` already checked by :func:`space_problem`)."""
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, BaseDistribution] = {}
    for key, spec in space.items():
        if spec[0] == "categorical":
            out[key] = CategoricalDistribution(list(spec[1]))
        else:
            log = len(spec) == 4 and spec[3] == "log"
            if spec[0] == "int":
                out[key] = IntDistribution(int(spec[1]), int(spec[2]), log=log)
            else:
                out[key] = FloatDistribution(float(spec[1]), float(spec[2]), log=log)
    return out


def defaults_in_space(cls: type, space: Mapping[str, tuple]) -> dict[str, Any]:
    """The model's defaults for the searched keys that lie inside the space (trial 0 runs them)."""
    defaults = param_defaults(cls)
    out = {}
    for key, dist in distributions(space).items():
        value = defaults.get(key)
        try:
            inside = value is not None and dist._contains(dist.to_internal_repr(value))
        except (TypeError, ValueError):
            inside = False
        if inside:
            out[key] = value
    return out


# -- what a trial is scored on -----------------------------------------------------------------

@dataclass(frozen=True)
class Objective:
    """The validation metric a study optimises: a task's primary metric, in that task's direction."""

    task: str
    metric: str
    higher_is_better: bool

    @property
    def label(self) -> str:
        return f"{self.task}.{self.metric}"

    @property
    def direction(self) -> str:
        return "maximize" if self.higher_is_better else "minimize"

    def value(self, result: dict) -> tuple[float | None, str | None]:
        """The objective read from a trial's result (its validation metrics), or None and why not."""
        if result.get("status") != "ok":
            return None, result.get("error") or "the trial failed"
        value = results.get(result, f"val_metrics.{self.task}.{self.metric}")
        problem = tasks_mod.get(self.task).metric_problem(self.metric, value)
        if problem:
            return None, f"validation {self.label} {problem}"
        return float(value), None


def objective_for(cls: type, job_tasks: tuple[str, ...]) -> Objective:
    """A per-task model's study optimises the primary metric of the task it fits; a joint model's,
    its ``tuning_objective`` if declared, else its first task's (asked of :mod:`tasks`, so a new
    task plugs in)."""
    if getattr(cls, "joint", False):
        task = getattr(cls, "tuning_objective", None) or tuple(getattr(cls, "tasks"))[0]  # noqa: B009
    else:
        task = job_tasks[0]
    spec = tasks_mod.get(task)
    return Objective(task, spec.primary, spec.higher_is_better)


# -- budget, storage, study identity -------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """What one study may spend: at most ``trials`` trials, no new trial once ``seconds`` are spent."""

    trials: int | None = None
    seconds: float | None = None

    def spent(self, n_trials: int, seconds: float) -> bool:
        return ((self.trials is not None and n_trials >= self.trials)
                or (self.seconds is not None and seconds >= self.seconds))

    def as_dict(self) -> dict:
        return {"trials": self.trials, "seconds": self.seconds}

    def __str__(self) -> str:
        bits = ([f"{self.trials} trial(s)"] if self.trials is not None else []) + \
               ([f"{self.seconds:g} s"] if self.seconds is not None else [])
        return " / ".join(bits) or "none"


def tuning_dir() -> Path:
    """Studies (SQLite), their locks and the trials' own result files, under the data home."""
    return paths.home() / "tuning"


def storage_path() -> Path:
    return tuning_dir() / "studies.sqlite3"


def storage_url() -> str:
    return f"sqlite:///{storage_path().resolve()}"


def study_name(ctx, job, objective: Objective, space: Mapping[str, tuple]) -> str:
    """Readable and unique to what makes trials comparable: data, split, model version, task(s),
    objective, space and fixed parameters (not the budget: a larger one continues the study)."""
    _, split = ctx.split(job.seed)
    cls = ctx.registry.models[job.model].cls
    identity = {"format": 1, "dataset": ctx.dataset.fingerprint, "protocol": ctx.protocol.params(),
                "split": split.fingerprint, "model": job.model, "version": str(getattr(cls, "version", "1")),
                "tasks": list(job.tasks), "objective": objective.label,
                "space": results.json_safe(dict(space)), "fixed": results.json_safe(job.params)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    parts = (ctx.dataset.name, ctx.protocol.name, job.model, "+".join(job.tasks), f"seed{job.seed}", digest)
    return "--".join(results.slug(str(p)) for p in parts)


@contextlib.contextmanager
def study_lock(name: str) -> Iterator[None]:
    """Hold the study: a second ``tune`` of the same study at the same time is refused."""
    import fcntl

    folder = tuning_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"study {name} is being tuned by another process right now (lock file {path}); "
                            f"wait for it to finish or stop it") from None
        yield


def sampler_seed(split_seed: int, trial_index: int) -> int:
    """The TPE seed of the trial after ``trial_index`` counted ones: the same whether or not the
    study was interrupted in between."""
    digest = hashlib.sha256(f"animerec-bench/tpe/{split_seed}/{trial_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def counted(trials) -> list:
    """The trials that count against the budget: finished (complete or failed) by a tune that
    measured them. A trial cut short by an interrupt produced nothing and is not counted."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL) and "seconds" in t.user_attrs]


def spent_seconds(trials) -> float:
    return float(sum(t.user_attrs["seconds"] for t in counted(trials)))


def check_storage() -> None:
    """Refuse, in one line naming it, a studies file that is not an SQLite database Optuna wrote
    (random bytes, a truncated file, another program's database, a folder): never write into it."""
    import sqlite3

    path = storage_path()
    if not path.exists():
        return
    what = "it is a folder" if path.is_dir() else None
    if what is None:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and not {"studies", "trials", "version_info"} <= tables:
                    what = f"another program's SQLite database (tables {', '.join(sorted(tables)[:5])})"
                elif tables:
                    db.execute("PRAGMA quick_check").fetchall()
                    db.execute("SELECT count(*) FROM trials").fetchone()
        except sqlite3.Error as exc:
            what = f"{exc}"
    if what:
        raise UserError(f"{path}: not the studies database tune keeps ({what}); move it away to start the "
                        f"studies afresh")


def open_study(name: str, objective: Objective):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning_dir().mkdir(parents=True, exist_ok=True)
    check_storage()
    direction = optuna.study.StudyDirection.MINIMIZE if objective.direction == "minimize" \
        else optuna.study.StudyDirection.MAXIMIZE
    return optuna.create_study(storage=storage_url(), study_name=name, direction=direction,
                               load_if_exists=True)


def load_study(name: str):
    """An existing study, read from the data home's storage (for inspection and tests)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage_url())


# -- running a study, then the one test job ------------------------------------------------------

@dataclass
class Outcome:
    """What tuning one (model, task(s), seed) came to."""

    job: Any
    method: str  # TUNED, DEFAULT, or "failed" (no trial succeeded)
    result: dict | None = None
    path: Path | None = None
    study: str | None = None
    trials: int = 0
    seconds: float = 0.0
    best_value: float | None = None
    params: dict = dataclasses.field(default_factory=dict)
    error: str | None = None
    reused: bool = False


Say = Callable[[str], None]


def tune_job(job, ctx, budget: Budget, *, existing: list[dict], say: Say) -> Outcome:
    """Tune ``job`` (model, task(s), seed; ``job.params`` fixed) within ``budget``, then score the
    chosen parameters once on the test part. A model without a (remaining) space runs its defaults.

    ``existing``: the results already in the results folder; a test job already written for the
    same study and budget (or a default job for the same split and parameters) is not run again.
    """
    entry = ctx.registry.model(job.model)
    problem = space_problem(entry.cls)
    if problem:
        raise UserError(f"model {job.model!r} (plugin {entry.plugin!r}): {problem}")
    space = {k: v for k, v in search_space(entry.cls).items() if k not in job.params}
    if not space:
        return _run_default(job, ctx, entry.cls, existing, say)

    objective = objective_for(entry.cls, job.tasks)
    name = study_name(ctx, job, objective, space)
    study = open_study(name, objective)
    with study_lock(name):
        _search(study, job, ctx, entry.cls, space, objective, budget, say)
    used = within(budget, counted(study.get_trials(deepcopy=False)))
    seconds = float(sum(t.user_attrs["seconds"] for t in used))
    complete = [t for t in used if t.state.name == "COMPLETE"]
    if not complete:
        error = f"no successful trial of {len(used)}: nothing to choose parameters from"
        say(f"{job.label}: FAILED: {error}")
        return Outcome(job, "failed", study=name, trials=len(used), seconds=seconds, error=error)
    sign = -1.0 if objective.higher_is_better else 1.0
    best = min(complete, key=lambda t: (sign * t.value, t.number))
    outcome = Outcome(job, TUNED, study=name, trials=len(used), seconds=seconds, best_value=best.value,
                      params=dict(best.params))
    reused = _find(existing, lambda r: (results.get(r, "tuning.study") == name
                                        and results.get(r, "tuning.budget") == budget.as_dict()
                                        and results.get(r, "tuning.trials") == len(used)))
    if reused is not None:
        say(f"{job.label}: tuned in {len(used)} trial(s); its test result is already in the results: "
            f"{reused.get('_file')}")
        outcome.result, outcome.reused = reused, True
        return outcome
    info = {"method": TUNED, "study": name, "storage": str(storage_path()), "objective": objective.label,
            "direction": objective.direction, "best_value": best.value, "best_trial": best.number,
            "trials": len(used), "failed_trials": len(used) - len(complete), "seconds": seconds,
            "budget": budget.as_dict(), "trial_timeout": ctx.timeout, "params": dict(best.params),
            "fixed": results.json_safe(job.params), "space": results.json_safe(space),
            "sampler": {"name": "TPESampler", "seed": "per trial: tuning.sampler_seed(split seed, trial index)"}}
    say(f"{job.label}: best of {len(used)} trial(s) is #{best.number} ({objective.label} {best.value:.4f}; "
        f"{params_text(best.params)}); scoring it once on the test part")
    from animerec_bench.execution import runner

    final = dataclasses.replace(job, params={**job.params, **best.params}, extra={"tuning": info})
    outcome.result, outcome.path = runner.execute_job(final, ctx)
    outcome.error = outcome.result.get("error")
    return outcome


def within(budget: Budget, trials: list) -> list:
    """The counted trials (in order) that the budget allowed to start: the same stopping rule as the
    search, so a study that ran longer before is judged on exactly what this budget would have run."""
    used: list = []
    seconds = 0.0
    for t in sorted(trials, key=lambda t: t.number):
        if budget.spent(len(used), seconds):
            break
        used.append(t)
        seconds += t.user_attrs["seconds"]
    return used


def _run_default(job, ctx, cls: type, existing: list[dict], say: Say) -> Outcome:
    """One normal test job with the model's defaults (and ``--param``), marked ``default``."""
    from animerec_bench.execution import runner

    reason = ("every searched hyperparameter is fixed by --param" if search_space(cls)
              else "the model declares no search space")
    _, split = ctx.split(job.seed)
    fixed = results.json_safe(job.params)
    reused = _find(existing, lambda r: (results.get(r, "tuning.method") == DEFAULT
                                        and results.get(r, "model.name") == job.model
                                        and str(results.get(r, "model.version")) == str(getattr(cls, "version", "1"))
                                        and list(r.get("tasks") or []) == list(job.tasks)
                                        and results.get(r, "split.fingerprint") == split.fingerprint
                                        and results.get(r, "model.params_set") == fixed))
    if reused is not None:
        say(f"{job.label}: default ({reason}); its test result is already in the results: {reused.get('_file')}")
        return Outcome(job, DEFAULT, reused, reused=True)
    say(f"{job.label}: default ({reason}): one test job")
    info = {"method": DEFAULT, "reason": reason, "fixed": fixed}
    result, path = runner.execute_job(dataclasses.replace(job, extra={"tuning": info}), ctx)
    return Outcome(job, DEFAULT, result, path, error=result.get("error"))


def _search(study, job, ctx, cls: type, space: dict, objective: Objective, budget: Budget, say: Say) -> None:
    """Run trials until the budget is spent (counting the trials a previous ``tune`` finished)."""
    _fail_interrupted(study)
    trials = study.get_trials(deepcopy=False)
    defaults = defaults_in_space(cls, space)
    if defaults and not any(t.user_attrs.get("defaults") and ("seconds" in t.user_attrs or t.state.name == "WAITING")
                            for t in trials):
        study.enqueue_trial(defaults, user_attrs={"defaults": True})  # the first trial runs the defaults
    done = counted(trials)
    say(f"{job.label}: study {study.study_name}: {objective.label} ({objective.direction}); {len(done)} trial(s) "
        f"done, {spent_seconds(trials):.1f} s spent; budget {budget}")
    trial_ctx = dataclasses.replace(ctx, results_dir=tuning_dir() / "trials" / study.study_name)
    dists = distributions(space)
    while True:
        trials = study.get_trials(deepcopy=False)
        done = counted(trials)
        if budget.spent(len(done), spent_seconds(trials)):
            return
        _run_trial(study, job, trial_ctx, dists, objective, len(done), say)


def _run_trial(study, job, ctx, dists, objective: Objective, index: int, say: Say) -> None:
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    from animerec_bench.execution import runner

    study.sampler = TPESampler(seed=sampler_seed(job.seed, index))
    trial = study.ask(dists)
    trial_job = dataclasses.replace(job, params={**job.params, **trial.params}, validation_only=True,
                                    extra={"trial": {"study": study.study_name, "number": trial.number}})
    try:
        result, path = runner.execute_job(trial_job, ctx)
    except BaseException:  # interrupted: the trial is not counted, a rerun carries on from here
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    value, why = objective.value(result)
    trial.set_user_attr("seconds", float(result["duration_seconds"]))
    trial.set_user_attr("result_file", str(path))
    if why:
        trial.set_user_attr("error", why)
        study.tell(trial, state=TrialState.FAIL)
        say(f"  trial {index + 1} (#{trial.number}): FAILED in {result['duration_seconds']:.1f} s: {why}")
        return
    study.tell(trial, value)
    best = study.best_value
    say(f"  trial {index + 1} (#{trial.number}): {objective.label} {value:.4f} (best {best:.4f}) in "
        f"{result['duration_seconds']:.1f} s; {params_text(trial.params)}")


def _fail_interrupted(study) -> None:
    """Trials left running by a ``tune`` that was killed (its lock is gone, so nobody runs them)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def _find(existing: list[dict], match: Callable[[dict], bool]) -> dict | None:
    found = [r for r in existing if r.get("status") == "ok" and match(r)]
    return max(found, key=lambda r: str(r.get("started_at"))) if found else None


def params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items())
