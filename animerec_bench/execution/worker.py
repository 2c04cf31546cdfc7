"""One job in its own process: ``python -m animerec_bench.execution.worker SPEC.json``.

The parent (:mod:`animerec_bench.execution.runner`) writes the job spec, starts this module with a
time limit and reads two things back: progress lines (JSON, one per line) on the file
descriptor ``progress_fd``, and the outcome (metrics, timings, machine, or the failure) as a
JSON file at ``outcome_path``. The worker never writes result files: the parent does, so a
job that dies without a word still gets one.

The worker does not outlive its job: :func:`guard_job` ties it to its parent (it stops, with
everything it started, when the parent dies, however it died) and to the job's deadline
(should the parent not stop it in time), and on its way out it kills whatever it started.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # first thing: process start = this minus the parent's spawn time
_STARTED_PERF = time.perf_counter()

import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from animerec_bench.execution.jobs import JobSpec  # noqa: E402

#: Optional extras a framework loads at import that no job uses, refused while it is imported
#: (:func:`.lazy.imports_refused`; one a plugin module imported already stays): Keras loads
#: ``matplotlib.pyplot`` for its image galleries and pandas to accept DataFrames in ``fit``, 0.6 s
#: of its 3.3 s; jobs hand models numpy arrays (docs/plugins.md says so). Only where the
#: framework goes without them: Cornac, for one, needs matplotlib.
UNUSED_EXTRAS: dict[str, tuple[str, ...]] = {"keras": ("matplotlib", "pandas")}

SPAWNED_AT_ENV = "ANIMEREC_BENCH_SPAWNED_AT"
#: How long after the job's deadline the worker stops itself, should its parent not have
#: (a stopped or stuck parent); the parent, which stops it at the deadline, normally wins.
DEADLINE_GRACE_SECONDS = 2.0
#: How often the watchdog looks at the parent and the clock (it also wakes on SIGTERM).
WATCH_SECONDS = 0.5
#: Set once the watchdog has made the worker a subreaper (see :func:`guard_job`); the job's
#: plugin code waits for it.
_guard_ready = None
#: Timed test-split predicts run at least this long (and at least ``predict_rounds`` times):
#: 5+ rounds keep the median steady, and a short floor keeps the harness small next to a
#: ~4 s job (0.05 s made ``mf-biased``'s harness share 5.2%).
PREDICT_MIN_SECONDS = 0.02
#: The timed predicts stop once they have taken this long (after one round at least), before
#: ``predict_rounds``: a kNN model's predict of the test pairs takes ~0.6 s, and five rounds of
#: it were 21-53% of its job (``harness_share``; 3 s of ``run --all`` each). Fast predicts
#: (the Keras models' ~5 ms) still run every round.
PREDICT_MAX_SECONDS = 1.0
#: The most the per-user latency rounds may take.
LATENCY_MAX_SECONDS = 10.0


#: At most this many progress dicts are kept as a result's ``history`` (a model reporting every
#: batch must not bloat its result file).
HISTORY_MAX = 1000


class NonFiniteLoss(FloatingPointError):
    """The model reported a NaN or infinite loss: training diverged."""


class Progress:
    """Sends progress lines to the parent; checks every reported loss is finite."""

    def __init__(self, fd: int | None) -> None:
        self.stream = os.fdopen(fd, "w", buffering=1) if fd is not None else None
        self.last_epoch: int | None = None
        #: Every progress dict the model reported (epoch, loss, val_loss): the result's learning curve.
        self.history: list[dict] = []

    def send(self, event: str, **info: Any) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(json.dumps({"event": event, **_plain(info)}, allow_nan=True) + "\n")
        except (OSError, ValueError):  # the parent went away; the job result still matters
            self.stream = None

    def __call__(self, info) -> None:
        info = dict(info)
        if isinstance(info.get("epoch"), (int, float)):
            self.last_epoch = int(info["epoch"])
        if len(self.history) < HISTORY_MAX:
            self.history.append(_plain(info))
        self.send("progress", **info)
        for key, value in info.items():
            if "loss" in str(key) and isinstance(value, (int, float)) and not math.isfinite(value):
                raise NonFiniteLoss(f"{key} is {value} at epoch {info.get('epoch', '?')}: training diverged")


def _plain(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if hasattr(v, "item") and callable(v.item):
            try:
                v = v.item()
            except (TypeError, ValueError):
                v = repr(v)
        out[str(k)] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
    return out


def classify(exc: BaseException) -> str:
    """A short kind for a failure: ``oom``, ``nan``, ``prediction`` or ``crash``."""
    from animerec_bench.model import PredictionError

    name = type(exc).__name__
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "ResourceExhausted" in name or "out of memory" in text \
            or "failed to map segment" in text or "cannot allocate memory" in text:  # mmap under RLIMIT_AS
        return "oom"
    if isinstance(exc, NonFiniteLoss):
        return "nan"
    if isinstance(exc, PredictionError):
        return "nan" if "NaN" in str(exc) else "prediction"
    return "crash"


def seed_everything(seed: int) -> None:
    """Seed Python's ``random`` and numpy's global generator: all the runner seeds. A model's
    framework (Keras, PyTorch, ...) is seeded by the model's own ``fit(..., seed=...)``, the
    plugin contract (docs/plugins.md): seeding it here as well only did the same work twice."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)


def do_job(spec: JobSpec, progress: Progress, outcome: dict) -> None:
    """Do the job, filling ``outcome`` as it goes (so a failure keeps what was measured):
    load, fit, score, record."""
    spawned = float(os.environ.get(SPAWNED_AT_ENV, "nan"))
    outcome["timing"]["process_start_seconds"] = _STARTED - spawned if math.isfinite(spawned) else None
    entry, split, features = load(spec, progress, outcome["timing"])
    model = make_model(entry, spec, progress, outcome)
    model = fit(model, split, features, spec, progress, outcome)
    if spec.validation_only:  # a tuning trial: scored on validation alone; there is no test part
        outcome["val_metrics"] = score_validation(entry.name, model, split, spec.tasks, progress, outcome["timing"])
        outcome["status"] = "ok"
        return
    per_user: dict = {}  # task -> (user indices, values, weights) on test: see scoring.save_per_user
    score(entry.name, model, split, spec, progress, outcome, per_user)
    record(model, split, features, spec, progress, outcome, per_user)
    outcome["status"] = "ok"


def load(spec: JobSpec, progress: Progress, timing_out: dict):
    """The model's registry entry, the job's split and (for a model that takes them) the anime
    features; its framework imported (outside ``fit_seconds``)."""
    from animerec_bench.support import timing

    t0 = timing.clock()
    from animerec_bench import tasks as tasks_mod
    from animerec_bench.data.protocol import Split
    from animerec_bench.plugins.registry import load_registry
    from animerec_bench.support import compile_cache
    from animerec_bench.support.lazy import imports_refused

    if _guard_ready is not None:  # no plugin code before the worker adopts its orphans
        _guard_ready.wait(5.0)
    registry = load_registry(spec.plugins_dir)
    entry = registry.model(spec.model)
    timing_out["import_seconds"] = timing.clock() - t0
    progress.send("phase", phase="load split")
    t0 = timing.clock()
    split = Split.load(Path(spec.split_path))
    if spec.split_fingerprint and split.fingerprint != spec.split_fingerprint:
        raise RuntimeError(f"split file {spec.split_path} changed since the run planned it")
    if spec.validation_only and len(split.test):
        raise RuntimeError(f"a validation-only job got a split with {len(split.test)} test pairs")
    timing_out["load_split_seconds"] = timing.clock() - t0
    scored_part, part_name = (split.valid, "validation") if spec.validation_only else (split.test, "test")
    for task in spec.tasks:  # else every metric of the task comes out null, which says nothing
        if tasks_mod.get(task).pointwise and not scored_part.task_mask(task).any():
            raise ValueError(f"task {task} has no examples in the {part_name} part of data set "
                             f"{split.dataset!r} (protocol {split.protocol}): nothing to score it on")
    if entry.framework != "numpy" and entry.framework not in sys.modules:
        progress.send("phase", phase=f"import {entry.framework}")  # a timeout here is not the split's
        t0 = timing.clock()
        compile_cache.configure()  # before the framework reads its XLA settings
        with imports_refused(*UNUSED_EXTRAS.get(entry.framework, ())):
            importlib.import_module(entry.framework)  # imported here so fit_seconds does not include it
        timing_out["framework_import_seconds"] = timing.clock() - t0
    features = None  # anime features (issue 23), for a model that declares item_features
    if entry.item_features:
        from animerec_bench.data.features import for_split

        features = for_split(split, registry.dataset(split.dataset))
    # What is loaded by now (the framework's modules, the split) lives to the job's end, and a
    # full collection scanning it took ~0.2 s, which fell in the fit (in its first trace):
    # frozen, collections skip it.
    gc.freeze()
    return entry, split, features


def make_model(entry, spec: JobSpec, progress: Progress, outcome: dict):
    """The model, built with the job's parameters after seeding Python and numpy (a model may draw
    in its constructor). Its framework is left to its ``fit``, which gets the same seed."""
    seed_everything(spec.seed)
    model = entry.cls(**spec.params)
    outcome["seeding"] = {"python": spec.seed, "numpy": spec.seed, "framework": "seeded by the model's fit"}
    try:
        model.on_progress = progress
    except AttributeError:
        pass
    if hasattr(model, "get_params"):
        outcome["params"] = model.get_params()
    return model


def fit(model, split, features, spec: JobSpec, progress: Progress, outcome: dict):
    """Fit and time it: the fitted model. A model that declares ``item_features`` (issue 23) gets
    the features of the anime it may know (train and validation anime) in ``fit``, and every
    anime's after it. On a protocol that refits (:func:`refits`) it gets train and validation
    together as its train part, and no validation part."""
    import numpy as np

    from animerec_bench.evaluation import scoring
    from animerec_bench.support import timing

    fit_kwargs = {"features": features.head(split.n_fit_items)} if features is not None else {}
    train, valid = (split.train_with_validation(), None) if refits(split, spec) else (split.train, split.valid_for_fit())
    progress.send("phase", phase="fit")
    t0 = timing.clock()
    fitted = model.fit(train, valid, tasks=spec.tasks, seed=spec.seed, **fit_kwargs)
    fit_seconds = timing.clock() - t0
    if progress.history:
        outcome["history"] = progress.history
    model = fitted if fitted is not None else model
    if features is not None:  # issue 23: the test anime's features reach the model only now
        model.set_item_features(features)
    epochs = getattr(model, "epochs_", None)
    if not isinstance(epochs, (int, np.integer)):
        epochs = progress.last_epoch
    train_examples = int(scoring.union_mask(train, spec.tasks).sum())
    passes = max(int(epochs), 1) if epochs is not None else 1
    outcome["timing"].update({
        "fit_seconds": fit_seconds,
        "epochs": int(epochs) if epochs is not None else None,
        "seconds_per_epoch": fit_seconds / epochs if epochs else None,
        "train_examples": train_examples,
        "train_examples_per_second": train_examples * passes / fit_seconds if fit_seconds > 0 else None,
    })
    return model


def refits(split, spec: JobSpec) -> bool:
    """Whether this job fits on train and validation together: on a protocol that says so
    (``season-v2``), every job but a tuning trial (which is scored on validation)."""
    from animerec_bench.data.protocol import get_protocol

    return get_protocol(split.protocol).refit and not spec.validation_only


def _validate(name: str, model, split, pointwise: tuple, progress: Progress, timing_out: dict):
    """(metrics, val_loss) per pointwise task on the validation part."""
    from animerec_bench.evaluation import scoring

    progress.send("phase", phase="validate")
    phase: dict = {}
    val_metrics, val_losses = scoring.evaluate(name, model, split.valid, pointwise, timing_out=phase)
    timing_out["validate_predict_seconds"] = phase["predict_seconds"]
    return val_metrics, val_losses


def score_validation(name: str, model, split, tasks: tuple, progress: Progress, timing_out: dict) -> dict:
    """A tuning trial's numbers: each task's metrics on the validation part (a model that trains
    for ranking is tuned on its validation ranking)."""
    from animerec_bench import tasks as tasks_mod
    from animerec_bench.evaluation import scoring

    pointwise = tuple(t for t in tasks if tasks_mod.get(t).pointwise)
    out: dict = {}
    if pointwise:
        val_metrics, val_losses = _validate(name, model, split, pointwise, progress, timing_out)
        out = {t: {**val_metrics[t], "val_loss": val_losses[t]} for t in pointwise}
    for task in tasks:
        if task in tasks_mod.LISTWISE:
            progress.send("phase", phase=task)
            out[task], _ = scoring.evaluate_ranking(model, split, "score", part="valid", task=task)
    return out


def score(name: str, model, split, spec: JobSpec, progress: Progress, outcome: dict, per_user: dict) -> None:
    """The job's test numbers: each pointwise task's metrics (validation and test, with timed
    predicts) and, when this job ranks the model, its ranking metrics."""
    from animerec_bench import tasks as tasks_mod
    from animerec_bench.evaluation import scoring
    from animerec_bench.support import timing

    timing_out = outcome["timing"]
    pointwise = tuple(t for t in spec.tasks if tasks_mod.get(t).pointwise)
    outcome["metrics"], outcome["val_metrics"] = {}, {}
    if pointwise:
        if refits(split, spec):  # the fit saw the validation pairs: they measure nothing now
            val_metrics, val_losses = {}, {t: None for t in pointwise}
        else:
            val_metrics, val_losses = _validate(name, model, split, pointwise, progress, timing_out)
        progress.send("phase", phase="test")
        t0 = timing.clock()
        test = split.test.subset(scoring.union_mask(split.test, pointwise))
        samples, first = timing.bench(lambda: model.predict(test.user, test.item),
                                      rounds=spec.measurement.predict_rounds, warmup=1,
                                      min_time=PREDICT_MIN_SECONDS, max_seconds=PREDICT_MAX_SECONDS)
        test_metrics, test_losses = scoring.evaluate(name, model, test, pointwise, predictions=first,
                                                     per_user_out=per_user)
        pstats = timing.stats(samples)
        timing_out["predict"] = {**pstats, "pairs": len(test)}
        timing_out["predict_per_second"] = len(test) / pstats["median"] if pstats["median"] > 0 else None
        timing_out["test_seconds"] = timing.clock() - t0
        outcome["metrics"] = {t: {**test_metrics[t], "test_loss": test_losses[t], "val_loss": val_losses[t]}
                              for t in pointwise}
        outcome["val_metrics"] = val_metrics
    source = spec.ranking_source  # None: another job of this model ranks it
    for task in tasks_mod.LISTWISE:
        if source is None:
            break
        progress.send("phase", phase=task)
        t0 = timing.clock()
        ranked, info = scoring.evaluate_ranking(model, split, source, per_user=per_user, task=task)
        seconds = timing.clock() - t0
        timing_out["ranking_seconds"] = seconds
        timing_out["ranking_users_per_second"] = info["users"] / seconds if seconds > 0 else None
        outcome["metrics"][task] = ranked
        outcome["ranking"] = info  # the result's ``ranking`` block: where the lists came from


def record(model, split, features, spec: JobSpec, progress: Progress, outcome: dict, per_user: dict) -> None:
    """Leave what the parent keeps beside the outcome: the per-user latency of scoring every
    anime, ``season-v1``'s hard-candidate ranking (last: it gives the model more anime), and the
    per-user test values."""
    from animerec_bench.evaluation import scoring
    from animerec_bench.support import timing

    timing_out = outcome["timing"]
    progress.send("phase", phase="latency")
    t0 = timing.clock()
    timing_out["user_latency"] = user_latency(model, split, spec.seed, spec.measurement.latency_users,
                                              LATENCY_MAX_SECONDS)
    timing_out["latency_seconds"] = timing.clock() - t0
    if split.hard is not None and features is not None and spec.ranking_source is not None:
        progress.send("phase", phase="hard candidates")
        t0 = timing.clock()
        try:
            outcome["ranking_hard"] = scoring.evaluate_hard_ranking(model, split, features.then(split.hard),
                                                                    spec.ranking_source, per_user)
        except Exception as exc:  # the job's own numbers stand; the second table says why this row is empty
            per_user.pop("ranking_hard", None)
            first = (str(exc).splitlines() or [""])[0]
            outcome["ranking_hard"] = {"error": f"{type(exc).__name__}: {first}"}
        timing_out["hard_ranking_seconds"] = timing.clock() - t0
    if spec.per_user_path and per_user:
        scoring.save_per_user(spec.per_user_path, per_user, split.user_ids)


def user_latency(model, split, seed: int, n_users: int, max_seconds: float) -> dict | None:
    """Time scoring every anime for one user, over up to ``n_users`` test users (ms, p50/p95)."""
    import numpy as np

    from animerec_bench.support import timing

    users = np.unique(split.test.user)
    if not len(users) or n_users <= 0:
        return None
    users = np.random.default_rng(seed).choice(users, size=min(n_users, len(users)), replace=False)
    items = np.arange(split.n_items, dtype=np.int32)
    if callable(getattr(model, "score", None)):  # scores every anime of one user at once
        def one(u):
            return model.score(np.array([u], dtype=np.int32))
    else:
        def one(u):
            return model.predict(np.full(len(items), u, dtype=np.int32), items)
    one(users[0])  # warm-up
    samples: list[float] = []
    spent = 0.0
    for u in users:
        t0 = timing.clock()
        one(u)
        dt = timing.clock() - t0
        samples.append(dt * 1000.0)
        spent += dt
        if spent >= max_seconds:
            break
    return {**timing.stats(samples), "unit": "ms", "items": int(len(items)),
            "via": "score" if callable(getattr(model, "score", None)) else "predict",
            "p50": timing.percentile(samples, 50), "p95": timing.percentile(samples, 95)}


def set_memory_limit(megabytes: int | None) -> None:
    """Cap this process's address space, so a runaway allocation raises MemoryError."""
    if not megabytes:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (int(megabytes) * 2**20, hard))


def lift_memory_limit() -> None:
    """Undo :func:`set_memory_limit` so the failure itself can still be written down."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def guard_job(spec: JobSpec) -> None:
    """Tie this worker to its parent and to the job's deadline (first thing in :func:`main`).

    - the worker becomes a child subreaper, so its children's orphans stay below it;
    - the kernel sends it SIGTERM when the parent dies (``PR_SET_PDEATHSIG``, Linux), and a
      watchdog thread, woken by that signal or every :data:`WATCH_SECONDS`, sees the parent
      gone (its parent pid changed: portable) and then kills every process of the job
      (:mod:`.job_processes`), removes the job folder, and kills its own process group;
    - past the spec's ``deadline`` (epoch seconds) plus :data:`DEADLINE_GRACE_SECONDS` it
      writes a ``timeout`` outcome and does the same but leaves the folder to the parent;
    - a SIGTERM from anyone else fails the job as ``killed``, likewise. (So the runner must
      start a worker from a thread that outlives it, as :func:`.executors.ParallelExecutor` does: the
      parent-death signal fires when that thread ends.)

    The watchdog needs the GIL: a plugin stuck in C code that holds it delays it (the
    parent, while it lives, still kills the job at the deadline). As a last resort against a
    worker that spins in such code after its parent died, its CPU time is capped
    (``RLIMIT_CPU``) at what all cores could spend by the deadline, so it cannot run forever.
    """
    import signal
    import threading

    global _guard_ready
    parent = spec.parent_pid
    deadline = spec.deadline
    if not parent and deadline is None:
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    try:  # SIGTERM wakes the watchdog at once, even while the main thread is busy in C code
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: the watchdog polls
        pass
    stop_at = cpu_seconds = None
    if deadline is not None:
        left = float(deadline) - time.time() + DEADLINE_GRACE_SECONDS
        stop_at = time.monotonic() + left
        cpu_seconds = max(left, 0.0) * (os.cpu_count() or 1) + 10
    _guard_ready = threading.Event()
    threading.Thread(target=_watchdog, args=(spec, int(parent or 0), stop_at, cpu_seconds, wake_r, _guard_ready),
                     name="animerec-bench-watchdog", daemon=True).start()


def _cap_cpu_seconds(seconds: float) -> None:
    """Lower ``RLIMIT_CPU`` to ``seconds`` (SIGXCPU, then SIGKILL 5 s later); never raise it."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cap = int(seconds)
        if soft != resource.RLIM_INFINITY:
            cap = min(cap, soft)
        new_hard = cap + 5 if hard == resource.RLIM_INFINITY else min(cap + 5, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (min(cap, new_hard), new_hard))
    except (ImportError, ValueError, OSError):
        pass


def _parent_gone(parent: int) -> bool:
    """Whether the runner died: we were re-parented (it died, maybe before our prctl), or it is
    a zombie. The second matters: the kernel sends the parent-death signal when the thread
    that forked us exits, and hands us to another thread of the dying runner first, so for a
    moment our parent pid has not changed yet."""
    from animerec_bench.execution.job_processes import pid_alive

    return os.getppid() != parent or not pid_alive(parent)


def _watchdog(spec: JobSpec, parent: int, stop_at: float | None, cpu_seconds: float | None, wake_fd: int,
              ready) -> None:
    import select
    import signal

    from animerec_bench.execution.job_processes import become_subreaper, set_parent_death_signal

    # Set up here, beside the job's imports rather than before them: the kernel applies each
    # to the whole process (the parent-death signal while this thread lives: all along).
    try:
        become_subreaper()
        set_parent_death_signal(signal.SIGTERM)
        if cpu_seconds is not None:
            _cap_cpu_seconds(cpu_seconds)
    finally:
        ready.set()
    signals = b""
    while True:
        if parent and _parent_gone(parent):
            _stop_job(spec, None, remove_folder=True)
        if signal.SIGTERM in signals:
            # the parent-death signal while the runner's last threads exit: give them a moment
            for _ in range(20):
                time.sleep(0.01)
                if parent and _parent_gone(parent):
                    _stop_job(spec, None, remove_folder=True)
            _stop_job(spec, ("killed", "worker received SIGTERM from outside the run; the job was stopped"))
        if stop_at is not None and time.monotonic() >= stop_at:
            timeout = spec.timeout_seconds
            _stop_job(spec, ("timeout", f"timed out after {timeout:g} s (the worker stopped itself: "
                                        "its parent did not)" if timeout else "timed out"))
        try:
            ready = select.select([wake_fd], [], [], WATCH_SECONDS)[0]
            signals = os.read(wake_fd, 512) if ready else b""
        except OSError:
            signals = b""
            time.sleep(WATCH_SECONDS)


def _stop_job(spec: JobSpec, failure: tuple[str, str] | None, remove_folder: bool = False) -> None:
    """Kill every process of the job, then this whole process group (this one included)."""
    import shutil
    import signal

    from animerec_bench.execution.job_processes import kill_job

    if failure is not None:
        try:
            from animerec_bench.results.store import dumps
            from animerec_bench.support.atomic import write_text

            kind, error = failure
            write_text(spec.outcome_path, dumps({"status": "failed", "error_kind": kind, "error": error,
                                                    "timing": {}}))
        except BaseException:  # noqa: BLE001 - the parent records a SIGKILL then
            pass
    kill_job(None, root=os.getpid())  # a subreaper: every process of the job is below it
    if remove_folder and spec.job_dir:
        shutil.rmtree(spec.job_dir, ignore_errors=True)
    if os.getpgrp() == os.getpid():  # our own group (the runner starts a new session)
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


#: The thread-count settings the runner gives a job with an allotment (see ``runner.thread_env``).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS", "XLA_FLAGS")


def pin_to_cores(spec: JobSpec) -> dict:
    """Keep this worker on the cores the runner allotted it (``spec.cores``, ``run --jobs N``),
    before numpy, BLAS or a framework start their thread pools; the runner set their thread
    counts in the environment. Returns what the result records in ``machine``: the cores usable
    before pinning, how many were allotted and which (None, None: no allotment, the job may use
    every usable core)."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity to set
        usable = list(range(os.cpu_count() or 1))
    cores = spec.cores
    if not cores:
        return {"usable_cores": len(usable), "cores_allotted": None, "allotted_cores": None}
    os.sched_setaffinity(0, [int(c) for c in cores])
    return {"usable_cores": len(usable), "cores_allotted": len(cores),
            "allotted_cores": sorted(int(c) for c in cores),
            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m animerec_bench.execution.worker SPEC.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        spec = JobSpec.from_json(fh.read())
    cores = pin_to_cores(spec)
    guard_job(spec)
    progress = Progress(spec.progress_fd)
    outcome: dict[str, Any] = {"status": "failed", "error": None, "error_kind": None, "timing": {}}
    code = 0
    try:
        set_memory_limit(spec.memory_limit_mb)
        do_job(spec, progress, outcome)
    except BaseException as exc:  # noqa: BLE001 - every failure must end up in the result
        if spec.memory_limit_mb:
            lift_memory_limit()
        kind = classify(exc)
        message = f"{type(exc).__name__}: {exc}".strip()
        if kind == "oom":
            message = f"out of memory: {message}"
            if spec.memory_limit_mb:  # say which limit (a MemoryError has no message of its own)
                message = (f"out of memory: the job needed more address space than --memory-limit "
                           f"{spec.memory_limit_mb} MB allows ({message.rstrip(':')})")
        outcome.update(status="failed", error=message.splitlines()[0][:500] if message else type(exc).__name__,
                       error_kind=kind, traceback=traceback.format_exc()[-4000:])
        code = 1
    try:
        from animerec_bench.support.machine import machine_info

        outcome["machine"] = {**machine_info(), **cores}
    except BaseException:  # noqa: BLE001 - a memory cap can break even this; the parent fills it in
        pass
    from animerec_bench.results.store import dumps
    from animerec_bench.support.atomic import write_text

    outcome["timing"]["worker_seconds"] = time.perf_counter() - _STARTED_PERF
    write_text(spec.outcome_path, dumps(outcome))
    if spec.parent_pid:  # a plugin's processes end with its job, detached or not
        from animerec_bench.execution.job_processes import has_children, kill_job

        if has_children() is not False:  # a subreaper: every process of the job is below it
            kill_job(None, root=os.getpid())
    return code


if __name__ == "__main__":
    status = main()
    # Leave without the interpreter's teardown: the outcome is written, and tearing down
    # TensorFlow's runtime takes ~0.8 s that would count against the job's time.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
