"""What a job is, and what its worker process is told.

:class:`Job` is the plan's unit (one model, the task(s) of one fit, one seed, the parameters
set); :class:`JobSpec` is what the runner hands one job's worker process across the process
boundary, as JSON: written once (:meth:`JobSpec.to_json`, by :mod:`.runner`), read once
(:meth:`JobSpec.from_json`, by :mod:`.worker`). :class:`WorkerSettings` is what every job of
one run shares, in plain values a Ray task can carry to another machine.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Job:
    """One model, the task(s) it trains in one fit, one seed, and the hyperparameters set.

    ``rank``: where this job's ranking evaluation takes the model's lists from (``score``,
    ``interaction`` or ``rating``); None when another job of the model ranks it.
    """

    index: int
    model: str
    tasks: tuple[str, ...]
    seed: int
    params: dict = field(default_factory=dict, hash=False)
    rank: str | None = None
    #: A tuning trial: the worker gets the split with its test part emptied and is scored on
    #: validation only (``tuning``), so no test pair can reach the choice of hyperparameters.
    validation_only: bool = False
    #: Top-level keys added to the result as they are (e.g. ``tuning``); never replaces a key.
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        from animerec_bench.tasks import LISTWISE  # not at import: the worker imports this module first thing

        lists = [t for t in LISTWISE if t not in self.tasks] if self.rank else []
        ranked = f" → {'+'.join(lists)}" if lists else ""
        return f"{self.model} [{'+'.join(self.tasks)}{ranked}] seed {self.seed}"

    def run_params(self, registry) -> dict:
        """The hyperparameters this job runs with: the model's defaults, then the ones set.

        The one place this is computed (the job's identity, its result's ``model.params``, the
        epoch budget of its progress line all ask here)."""
        return {**registry.models[self.model].params, **self.params}


@dataclass(frozen=True)
class Measurement:
    """How much inference timing a job does beside scoring (the one place these are declared)."""

    #: Timed test-split predicts: at least this many rounds (5+ keep the median steady).
    predict_rounds: int = 5
    #: Users whose whole-catalogue scoring is timed one at a time (``timing.user_latency``).
    latency_users: int = 50


@dataclass(frozen=True)
class WorkerSettings:
    """What a job's worker process needs from its run: plain values, so that a Ray task can
    carry them to another machine (the run's registry and data set stay with the driver)."""

    plugins_dir: str | None
    timeout: float
    memory_limit_mb: int | None
    keras_backend: str | None
    run_id: str
    measurement: Measurement = Measurement()


@dataclass(frozen=True)
class JobSpec:
    """One job as its worker process gets it (``python -m animerec_bench.execution.worker SPEC.json``)."""

    model: str
    tasks: tuple[str, ...]
    seed: int
    #: The split file the worker loads, and its fingerprint (checked after loading; None: not checked).
    split_path: str
    #: Where the worker writes its outcome (metrics, timings, machine, or the failure), as JSON.
    outcome_path: str
    #: The hyperparameters set for this job; the rest are the model's defaults.
    params: dict = field(default_factory=dict)
    #: The loose plugin folder the parent resolved (None: none): the worker never resolves its own.
    plugins_dir: str | None = None
    split_fingerprint: str | None = None
    #: A tuning trial: scored on validation only; its split has no test part.
    validation_only: bool = False
    #: Where the ranking evaluation takes the model's lists from; None: this job does not rank.
    ranking_source: str | None = None
    measurement: Measurement = Measurement()
    #: The file descriptor progress lines (JSON, one a line) go to; None: nowhere.
    progress_fd: int | None = None
    #: Where the worker writes each task's per-user test values (None: not written).
    per_user_path: str | None = None
    #: The job's scratch folder, removed should the parent die.
    job_dir: str | None = None
    #: The runner's pid: the worker stops when it is gone (None: not guarded).
    parent_pid: int | None = None
    #: Epoch seconds past which the worker stops itself, and the time limit it came from.
    deadline: float | None = None
    timeout_seconds: float | None = None
    memory_limit_mb: int | None = None
    #: The cores the worker pins itself to (``run --jobs N``); None: every usable core.
    cores: tuple[int, ...] | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """The spec ``text`` holds; ValueError naming a missing or unknown key."""
        data: dict[str, Any] = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a job spec is a JSON object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"job spec: unknown key(s) {', '.join(unknown)}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"job spec: missing key(s) {', '.join(missing)}")
        data["tasks"] = tuple(data["tasks"])
        if data.get("cores") is not None:
            data["cores"] = tuple(int(c) for c in data["cores"])
        if "measurement" in data:
            data["measurement"] = Measurement(**data["measurement"])
        return cls(**data)
