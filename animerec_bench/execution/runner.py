"""Plan jobs (model x task(s) x seed) and run each in its own process with a time limit.

The parent prepares each seed's split once (cached on disk; made by a child process and
verified by streaming, so the parent never holds its arrays, see :mod:`.split_file`), starts
``python -m animerec_bench.execution.worker`` per job in a new process group, reads its progress
lines from a pipe, kills the whole job (its group and every process it started, see
:mod:`.job_processes`) when the time limit passes, and writes one result file per job
whatever happened: a crash, a hang, NaN or running out of memory ends that job as
``failed`` with the reason, and the next job starts.

A job's scratch folder is ``<tmp>/animerec-bench-job-<runner pid>-XXXX``: if a run is
killed so hard that neither it nor its worker could remove it, the next run does
(:func:`sweep_stale_job_dirs`).
"""

from __future__ import annotations

import ast
import contextlib
import datetime as _dt
import json
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animerec_bench.data.split_file import cached_or_made, without_test
from animerec_bench.errors import UserError
from animerec_bench.execution.job_processes import JOB_ENV, KernelLog, kernel_pid, kill_job, pid_alive
from animerec_bench.execution.jobs import Job, JobSpec, Measurement, WorkerSettings
from animerec_bench.execution.worker import SPAWNED_AT_ENV
from animerec_bench.model import validate_params
from animerec_bench.plugins.registry import ModelEntry, did_you_mean
from animerec_bench.results import store as results
from animerec_bench.support import paths
from animerec_bench.support.timing import harness_seconds
from animerec_bench.support.version import __version__
from animerec_bench.tasks import LISTWISE
from animerec_bench.tasks import NAMES as TASK_NAMES

DEFAULT_TIMEOUT = 1800.0
#: A job's scratch folder: this, the runner's pid, ``-``, a random part.
JOB_DIR_PREFIX = "animerec-bench-job-"
#: A worker killed by SIGKILL counts as out of memory when its peak RSS reached this share
#: of ``--memory-limit``.
OOM_RSS_SHARE = 0.9


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_NO_DEFAULT: Any = object()


def parse_value(text: str, default: Any = _NO_DEFAULT) -> Any:
    """``--param``'s text as a value of the type of the hyperparameter's ``default``.

    bool: true/false, yes/no, 1/0 (any case); int; float; str: the text as is; None or no
    default: a Python literal (``3``, ``0.1``, ``None``, ``[1, 2]``), else the text. A default
    of another type takes a literal of that type. Raises ValueError saying what was expected.
    """
    word = text.strip()
    if isinstance(default, bool):
        if word.lower() in _TRUE + _FALSE:
            return word.lower() in _TRUE
        raise ValueError("expected true or false (also yes/no, 1/0)")
    if isinstance(default, int):
        try:
            return int(word)
        except ValueError:
            raise ValueError("expected a whole number") from None
    if isinstance(default, float):
        try:
            value = float(word)
        except ValueError:
            raise ValueError("expected a number") from None
        if value != value:
            raise ValueError("expected a number, not NaN")
        return value
    if isinstance(default, str):
        return text
    try:
        value = ast.literal_eval(word)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if default is None or default is _NO_DEFAULT:
            return text
        raise ValueError(f"expected a Python literal like the default {default!r}") from None
    if default is None or default is _NO_DEFAULT or isinstance(value, type(default)):
        return value
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    raise ValueError(f"expected a {type(default).__name__} like the default {default!r}")


def _non_finite(value) -> bool:
    """Whether a parsed ``--param`` value is, or holds, an infinite or NaN number."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def parse_params(values: list[str] | tuple[str, ...], registry, models: list[str]) -> dict[str, dict]:
    """``["mf.epochs=3"]`` -> ``{"mf": {"epochs": 3}}``, checked against the models and their keys.

    Each value is converted to its default's type (:func:`parse_value`), then each model
    being run checks its whole set of hyperparameters (``validate_params``), so nonsense
    such as ``epochs=-1`` stops the run before any job starts.
    """
    out: dict[str, dict] = {}
    for raw in values:
        target, sep, value = raw.partition("=")
        model, dot, key = target.rpartition(".")
        if not sep or not dot or not model or not key:
            raise UserError(f"--param {raw!r}: expected MODEL.KEY=VALUE, e.g. mf.epochs=3")
        if model not in registry.models:
            raise UserError(f"--param {raw!r}: unknown model {model!r}{did_you_mean(model, registry.models)}; "
                            f"registered: {', '.join(sorted(registry.models))}")
        if model not in models:
            raise UserError(f"--param {raw!r}: model {model!r} is not among the models being run "
                            f"({', '.join(models)})")
        known = registry.models[model].params
        if key not in known:
            raise UserError(f"--param {raw!r}: model {model!r} has no hyperparameter {key!r}; "
                            f"known: {', '.join(known) or '(none)'}")
        try:
            out.setdefault(model, {})[key] = parse_value(value, known[key])
        except ValueError as exc:
            raise UserError(f"--param {raw!r}: {exc} (the default is {known[key]!r})") from None
        if _non_finite(out[model][key]) and key not in getattr(registry.models[model].cls, "accepts_non_finite", ()):
            raise UserError(f"--param {raw!r}: expected a finite number ({model!r} does not declare that "
                            f"{key} accepts inf or NaN: Model.accepts_non_finite)")
    for model in models:
        cls = registry.models[model].cls
        params = {**registry.models[model].params, **out.get(model, {})}
        try:
            validate_params(cls, params)
        except ValueError as exc:
            given = ", ".join(f"{model}.{k}={v!r}" for k, v in out.get(model, {}).items())
            raise UserError(f"model {model!r}: {' '.join(str(exc).split())}"
                            + (f" (--param {given})" if given else "")) from None
        except Exception as exc:  # a plugin's validate_params with a bug: still one line, naming it
            raise UserError(f"model {model!r}: validate_params raised {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())}") from None
    return out


def heavy_left_out(registry, run_all: bool, heavy: bool) -> list[str]:
    """The heavy models ``--all`` leaves out without ``--heavy``."""
    if not run_all or heavy:
        return []
    return [name for name, entry in registry.models.items() if entry.heavy]


def select_models(registry, names: tuple[str, ...] | list[str], run_all: bool, heavy: bool = False) -> list[str]:
    """The models to run: ``names``, or with ``run_all`` every registered one (the heavy ones only
    with ``heavy``; :func:`heavy_left_out` names those left out)."""
    if run_all and names:
        raise UserError("give either --all or -m NAME, not both")
    if heavy and not run_all:
        raise UserError("--heavy goes with --all (a model named with -m always runs)")
    if run_all:
        if not registry.models:
            raise UserError("no models are registered (see `animerec-bench list`)")
        left_out = heavy_left_out(registry, run_all, heavy)
        return [name for name in registry.models if name not in left_out]
    if not names:
        raise UserError("nothing to run: give --all or -m NAME (see `animerec-bench list`)")
    for name in names:
        registry.model(name)  # raises a one-line PluginError for an unknown name
    return list(dict.fromkeys(names))


def plan(registry, models: list[str], tasks: tuple[str, ...] | None, seeds: list[int],
         params: dict[str, dict]) -> list[Job]:
    """One job per (model, task, seed) for per-task models; per (model, seed) for joint ones.

    ``tasks`` filters which jobs run; a joint model that serves any of them still trains and
    is scored on all its tasks, since that is what one joint fit does. Every model is ranked
    once per seed, by the fit :meth:`.tasks.RankingTask.ranked_by` names.
    """
    for t in tasks or ():
        if t not in TASK_NAMES:
            raise UserError(f"unknown task {t!r}; known: {', '.join(TASK_NAMES)}")
    units: list[tuple[str, tuple[str, ...], str | None]] = []
    for name in models:
        entry = registry.models[name]
        fits = [entry.tasks] if entry.joint else [(t,) for t in entry.tasks]
        for fit in fits:
            # the list tasks this fit ranks the model on, and where its lists come from
            ranks = {t.name: t.ranking_source(entry.cls) for t in LISTWISE.values() if t.ranked_by(entry.cls) in fit}
            rank = next(iter(ranks.values()), None)
            if not tasks or any(t in tasks for t in fit) or any(t in tasks for t in ranks):
                units.append((name, fit, rank))
    if not units:
        raise UserError(f"none of the models {', '.join(models)} serves task(s) {', '.join(tasks or ())}")
    jobs: list[Job] = []
    for seed in seeds:
        for name, job_tasks, rank in units:
            jobs.append(Job(len(jobs) + 1, name, job_tasks, seed, dict(params.get(name, {})), rank))
    return jobs


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_revision(root: Path | None = None) -> tuple[str | None, bool | None]:
    """The checkout the package runs from: ``git rev-parse HEAD``, and whether the code that
    makes results (``animerec_bench/``, ``plugins/``) differs from it (edited or new files);
    (None, None) outside a checkout. A result from a dirty tree is not reproducible from its
    commit, so its file says so."""
    root = root or paths.SOURCE_ROOT
    if not (root / ".git").exists():
        return None, None
    commit = (_git(root, "rev-parse", "HEAD") or "").strip()
    if len(commit) != 40:
        return None, None
    status = _git(root, "status", "--porcelain", "--", "animerec_bench", "plugins")
    return commit, None if status is None else bool(status.strip())


def job_identity(job: Job, ctx: RunContext, split) -> dict:
    """The job's identity (:mod:`.identity`): what makes a stored result current for it."""
    from animerec_bench.results.identity import job_identity as make

    entry = ctx.registry.models[job.model]
    return make(entry.cls, job.run_params(ctx.registry), dataset_fingerprint=ctx.dataset.fingerprint, split_fingerprint=split.fingerprint,
                seed=job.seed, tasks=job.tasks, ranking=job.rank, protocol=ctx.protocol.name,
                protocol_params=ctx.protocol.params(), schema=results.SCHEMA)


def parent_peak_rss_mib() -> float:
    """This process's own peak resident memory so far (MiB; its children are not counted): every
    result records the run parent's, which must stay small whatever the data's size.

    ``VmHWM`` of ``/proc/self/status``: ``getrusage``'s ``ru_maxrss`` also counts the image this
    process was exec'd from, i.e. the memory of whatever forked it (a test runner, a notebook)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RunContext:
    """What every job of one ``run`` shares."""

    registry: Any
    dataset: Any
    protocol: Any
    results_dir: Path
    #: The loose plugin folder the parent resolved (absolute); None: none. Every worker loads exactly it.
    plugins_dir: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    memory_limit_mb: int | None = None
    #: seed -> (the split's cache file, its :class:`.split_file.SplitInfo`).
    splits: dict[int, tuple[Path, Any]] = field(default_factory=dict)
    #: (where the result was kept, why not in ``results_dir``), one per result that could
    #: not be written there.
    unsaved: list[tuple[Path | None, str]] = field(default_factory=list)
    commit: str | None = None
    #: Whether the package's code differed from ``commit`` (None: not known).
    dirty: bool | None = None
    parent_machine: dict | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    #: ``run --backend``: the Keras backend every job's worker uses (``KERAS_BACKEND``); None:
    #: the environment's or Keras' own default.
    keras_backend: str | None = None
    #: Inference timing budget per job.
    measurement: Measurement = field(default_factory=Measurement)

    def worker_settings(self) -> WorkerSettings:
        """The run's settings every job's worker gets (the same on a Ray node)."""
        return WorkerSettings(plugins_dir=self.plugins_dir, timeout=self.timeout,
                              memory_limit_mb=self.memory_limit_mb, keras_backend=self.keras_backend,
                              run_id=self.run_id, measurement=self.measurement)

    def split(self, seed: int) -> tuple[Path, Any]:
        """The cache file of the split for ``seed``, which the worker reads, and its
        :class:`.split_file.SplitInfo` (fingerprint and counts, no arrays: a run's parent must
        not hold a copy of the data while its workers run; a split not yet cached is made by a
        child process)."""
        if seed not in self.splits:
            info = cached_or_made(self.protocol, self.dataset, seed, self.plugins_dir)
            self.splits[seed] = (info.path, info)
        return self.splits[seed]


Listener = Callable[[str, dict], None]

#: ``run --backend``: the Keras backends a run may ask for.
KERAS_BACKENDS = ("tensorflow", "jax")


def allot_cores(jobs: int, usable: list[int] | None = None) -> list[tuple[int, ...]]:
    """Split this process's usable cores into ``jobs`` fixed, disjoint allotments of equal size
    (``run --jobs N``: slot k's jobs always run on allotment k); cores left over stay idle, so
    every job gets the same number. Raises UserError when there are fewer cores than jobs."""
    cores = sorted(usable if usable is not None else os.sched_getaffinity(0))
    if jobs > len(cores):
        raise UserError(f"--jobs {jobs}: this process may use only {len(cores)} core(s) "
                        f"({', '.join(map(str, cores))}), and each job needs at least one of its own")
    per = len(cores) // jobs
    return [tuple(cores[k * per:(k + 1) * per]) for k in range(jobs)]


def thread_env(n_cores: int, environ: dict | None = None) -> dict[str, str]:
    """The environment that keeps a job's thread pools (OpenMP, BLAS, TensorFlow, XLA) to
    ``n_cores`` threads: without it a pinned job would start a thread per machine core and
    they would fight over its allotment. XLA keeps the user's own ``XLA_FLAGS``; with one
    core its Eigen pool is switched off."""
    n = str(int(n_cores))
    env = {name: n for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    if n_cores == 1:
        flags = (environ if environ is not None else os.environ).get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def sweep_stale_job_dirs(tmp: Path | str | None = None) -> list[Path]:
    """Remove the job folders whose runner is gone (killed before it could); return them.

    Only this user's folders, named ``animerec-bench-job-<pid>-XXXX`` with ``pid`` not alive."""
    root = Path(tmp or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    pattern = re.compile(rf"{re.escape(JOB_DIR_PREFIX)}(\d+)-[^-]+")
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if not pid_alive(int(m.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


@dataclass
class WorkerRun:
    """What one worker process left behind, before it becomes a result (:func:`record_result`):
    its outcome file, per-user file, exit, resources and log tail, and when and how long it ran."""

    outcome: dict | None
    per_user: bytes | None
    code: int | None
    rusage: Any
    timed_out: bool
    phase: str
    log_tail: str
    started_at: str
    duration: float
    kernel_oom: str | None = None
    kernel_log_readable: bool = False
    #: The last progress the model reported (epoch, losses, seconds): how far a job got when it
    #: did not finish.
    last_progress: dict | None = None


def execute_job(job: Job, ctx: RunContext, on_event: Listener | None = None,
            on_tick: Callable[[], None] | None = None,
            cores: tuple[int, ...] | None = None) -> tuple[dict, Path | None]:
    """Run ``job`` in its own process; write and return its result (``ok`` or ``failed``) and
    where it was written (see :func:`save_result`).

    ``cores``: the job's allotment (``run --jobs N``): the worker pins itself to them and its
    thread pools are sized to them (:func:`thread_env`); None: no change, every usable core.

    Interrupted (Ctrl-C, or the run's SIGTERM/SIGHUP handler raising, or ``on_tick`` raising),
    it kills the job's processes and removes its folder before the exception goes on. It
    waits for its worker, so it may run in a thread that does nothing else meanwhile (the
    worker's parent-death signal fires when the thread that started it ends)."""
    split_path, split = ctx.split(job.seed)
    attempt = spawn_worker(job, ctx.worker_settings(), split_path, split.fingerprint, on_event, on_tick,
                         cores=cores)
    return record_result(job, ctx, split, attempt)


def record_result(job: Job, ctx: RunContext, split, attempt: WorkerRun,
                  machine: dict | None = None) -> tuple[dict, Path | None]:
    """Turn a worker's ``attempt`` into the job's result and write it (:func:`save_result`).
    ``machine``: keys added to the result's ``machine`` block (e.g. the executor that ran it)."""
    result = _assemble(job, ctx, split, attempt)
    if machine:
        result["machine"] = {**result["machine"], **machine}
    return result, save_result(ctx, result, attempt.per_user if result["status"] == "ok" else None)


def worker_env(job: Job, settings: WorkerSettings, job_id: str, cores: tuple[int, ...] | None) -> dict[str, str]:
    """The environment of ``job``'s worker: hash seed, job id (:mod:`.job_processes`), thread
    counts sized to its cores, the run's Keras backend."""
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(job.seed)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env[SPAWNED_AT_ENV] = repr(time.time())
    env[JOB_ENV] = job_id
    if cores:
        env.update(thread_env(len(cores)))
    if settings.keras_backend:
        env["KERAS_BACKEND"] = settings.keras_backend
    return env


def spawn_worker(job: Job, settings: WorkerSettings, split_path: Path, split_fingerprint: str,
               on_event: Listener | None = None, on_tick: Callable[[], None] | None = None,
               cores: tuple[int, ...] | None = None) -> WorkerRun:
    """Start ``python -m animerec_bench.execution.worker`` for ``job`` on the split file at ``split_path``,
    relay its progress, kill the whole job at the time limit, and return what it left. The same
    code runs here for a local run and on the node for a Ray one (:mod:`.ray_executor`). A
    validation-only job's worker gets a copy of the split file without its test part."""
    on_event = on_event or (lambda kind, info: None)
    started_at = utc_now()
    t_start = time.perf_counter()
    state: dict[str, Any] = {"phase": "start"}
    job_id = f"{settings.run_id}-{job.index}-{uuid.uuid4().hex[:8]}"

    def on_line(msg: dict) -> None:
        if msg.get("event") == "phase":
            state["phase"] = msg.get("phase")
        elif msg.get("event") == "progress":
            state["progress"] = {k: v for k, v in msg.items() if k != "event"}
        on_event(msg.get("event", "?"), msg)

    with tempfile.TemporaryDirectory(prefix=f"{JOB_DIR_PREFIX}{os.getpid()}-", ignore_cleanup_errors=True) as tmp:
        tmpdir = Path(tmp)
        log_path = tmpdir / "worker.log"
        split_path, split_fingerprint = _worker_split(job, tmpdir, split_path, split_fingerprint)
        read_fd, write_fd = os.pipe()
        deadline = time.monotonic() + settings.timeout
        spec_path, spec = _write_spec(job, settings, tmpdir, split_path, split_fingerprint, write_fd, cores)
        env = worker_env(job, settings, job_id, cores)
        kernel_log = KernelLog()
        try:
            try:
                with open(log_path, "wb") as log:
                    # -P: the current folder is not put on sys.path, so a numpy.py (or any
                    # module) in an untrusted folder cannot shadow the real one in the worker.
                    proc = subprocess.Popen([sys.executable, "-P", "-m", "animerec_bench.execution.worker", str(spec_path)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            pass_fds=(write_fd,), start_new_session=True, env=env)
            finally:
                os.close(write_fd)
            worker_kernel_pid = kernel_pid(proc.pid)
            try:
                code, rusage, timed_out = _watch(proc, read_fd, deadline, job_id, on_line, on_tick)
            except BaseException:  # Ctrl-C, SIGTERM, SIGHUP: nothing of the job may outlive us
                _kill_job(proc, job_id, alive=True)
                with contextlib.suppress(BaseException):
                    proc.wait(timeout=5)
                raise
            finally:
                os.close(read_fd)
            outcome = _read_json(Path(spec.outcome_path))
            per_user = _read_bytes(Path(spec.per_user_path)) if spec.per_user_path else None
            log_tail = _tail(log_path)
            kernel_oom = kernel_log.oom_kill(worker_kernel_pid) if code == -signal.SIGKILL and not timed_out else None
        finally:
            kernel_log.close()

    return WorkerRun(outcome=outcome, per_user=per_user, code=code, rusage=rusage, timed_out=timed_out,
                     phase=state["phase"], log_tail=log_tail, started_at=started_at,
                     duration=time.perf_counter() - t_start, kernel_oom=kernel_oom,
                     kernel_log_readable=kernel_log.readable, last_progress=state.get("progress"))


def _worker_split(job: Job, tmpdir: Path, split_path: Path, split_fingerprint: str) -> tuple[Path, str]:
    """The split file the worker gets, and its fingerprint: for a validation-only job (a ``tune``
    trial) a copy in ``tmpdir`` without the test part, so the trial cannot read it."""
    if not job.validation_only:
        return split_path, split_fingerprint
    copy = tmpdir / "split-without-test.npz"
    return copy, without_test(split_path, copy)


def _write_spec(job: Job, settings: WorkerSettings, tmpdir: Path, split_path: Path, split_fingerprint: str,
                progress_fd: int, cores: tuple[int, ...] | None) -> tuple[Path, JobSpec]:
    """The worker's :class:`JobSpec`, written as ``tmpdir/spec.json``, and where it is; the spec
    names the files the worker leaves (its outcome and per-user values, beside it)."""
    spec = JobSpec(model=job.model, tasks=job.tasks, seed=job.seed, params=job.params,
                   plugins_dir=settings.plugins_dir, split_path=str(split_path),
                   split_fingerprint=split_fingerprint, validation_only=job.validation_only,
                   outcome_path=str(tmpdir / "outcome.json"), ranking_source=job.rank, progress_fd=progress_fd,
                   memory_limit_mb=settings.memory_limit_mb, measurement=settings.measurement,
                   parent_pid=os.getpid(), job_dir=str(tmpdir), timeout_seconds=settings.timeout,
                   per_user_path=str(tmpdir / "users.npz"), deadline=time.time() + settings.timeout,
                   cores=tuple(cores) if cores else None)
    spec_path = tmpdir / "spec.json"
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    return spec_path, spec


def save_result(ctx: RunContext, result: dict, per_user: bytes | None = None) -> Path | None:
    """Write ``result`` into ``ctx.results_dir`` (with its per-user file beside it, see
    :func:`.results.write`); if that fails (a full disk, a folder gone),
    keep it under the data home's ``unsaved-results/`` or the system temp folder instead and
    note where in ``ctx.unsaved``. Returns the path (None if it could not be kept anywhere)."""
    try:
        return results.write(ctx.results_dir, result, per_user)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename and Path(exc.filename) != Path(ctx.results_dir) else ""
        problem = f"cannot write a result into {ctx.results_dir}: {where}{exc.strerror or exc}"
    for folder in (paths.home() / "unsaved-results", Path(tempfile.gettempdir()) / "animerec-bench-unsaved-results"):
        try:
            kept = results.write(folder, result, per_user)
        except OSError:
            continue
        ctx.unsaved.append((kept, problem))
        return kept
    ctx.unsaved.append((None, problem))
    return None


def _watch(proc: subprocess.Popen, fd: int, deadline: float, job_id: str, on_line: Callable[[dict], None],
           on_tick: Callable[[], None] | None) -> tuple[int | None, Any, bool]:
    """Relay progress lines until the worker exits or the deadline passes (then kill the job)."""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf = b""
    eof = False

    def pump(wait: float) -> None:
        nonlocal buf, eof
        while not eof and sel.select(timeout=wait):
            chunk = os.read(fd, 65536)
            if not chunk:
                eof = True
                sel.unregister(fd)
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    on_line(msg)
            wait = 0

    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_job(proc, job_id, alive=True)
                _, status, rusage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode, rusage, True
            if eof:  # the worker closed its end: it is exiting, so look again soon
                time.sleep(min(0.005, remaining))
            else:
                pump(min(0.25, remaining))
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                pump(0)  # whatever it wrote last
                _kill_job(proc, job_id, alive=False)  # stray processes it left
                return proc.returncode, rusage, False
            if on_tick is not None:
                on_tick()
    finally:
        sel.close()


def _kill_job(proc: subprocess.Popen, job_id: str, alive: bool) -> None:
    """SIGKILL the worker's process group and every process of the job (see
    :mod:`.job_processes`); while the worker is ``alive`` (not yet reaped), its descendants
    too, orphans of a detached child included."""
    kill_job(job_id, group=proc.pid, root=proc.pid if alive else None)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _tail(path: Path, lines: int = 20, max_chars: int = 4000) -> str:
    try:
        text = path.read_bytes()[-64_000:].decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-max_chars:]


def _death_reason(code: int | None, log_tail: str, peak_mib: float | None, *,
                  memory_limit_mb: int | None = None, kernel_oom: str | None = None,
                  kernel_log_readable: bool = False) -> tuple[str, str]:
    """(error kind, message) for a worker that died without an outcome, and not by our timeout.

    SIGKILL is called out of memory only on evidence; the rule:

    1. the kernel log records an OOM kill of the worker -> ``oom``, quoting the record;
    2. ``--memory-limit`` was set and the peak RSS reached :data:`OOM_RSS_SHARE` of it ->
       ``oom`` ("likely");
    3. the kernel log is readable and records no OOM kill -> ``killed``: someone outside the
       run sent it;
    4. otherwise (the log is not readable: most containers, unprivileged users) -> ``killed``,
       "possibly out of memory".

    (A SIGKILL the runner sent for the time limit is ``timeout``, decided before this.)
    """
    mem = f"; peak memory {peak_mib:.0f} MiB" if peak_mib else ""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code != signal.SIGKILL:
            return "crash", f"worker died from {name}"
        if kernel_oom:
            return "oom", f"out of memory: worker killed by the kernel's OOM killer ({kernel_oom}){mem}"
        if memory_limit_mb and peak_mib and peak_mib >= OOM_RSS_SHARE * memory_limit_mb:
            return "oom", (f"out of memory (likely): worker killed by SIGKILL at peak memory {peak_mib:.0f} MiB "
                           f"of the {memory_limit_mb} MB memory limit")
        if kernel_log_readable:
            return "killed", (f"worker killed by SIGKILL from outside the run (the kernel log records no "
                              f"out-of-memory kill of it){mem}")
        return "killed", f"worker killed by SIGKILL (possibly out of memory; the kernel log is not readable to tell){mem}"
    last = next((ln.strip() for ln in reversed(log_tail.splitlines()) if ln.strip()), "")
    return "crash", f"worker exited with status {code} without a result" + (f": {last[:300]}" if last else "")


def _how_it_ended(attempt: WorkerRun, timeout: float, memory_limit_mb: int | None,
                  peak_mib: float | None) -> tuple[str, str | None, str | None]:
    """(status, error kind, error) of a worker's ``attempt``: timed out, its own outcome, or a death."""
    outcome = attempt.outcome or {}
    if attempt.timed_out:
        error = f"timed out after {timeout:g} s (process group killed) during {attempt.phase}"
        if attempt.last_progress and attempt.last_progress.get("epoch") is not None:
            error += f", after epoch {attempt.last_progress['epoch']}"
        return "failed", "timeout", error
    if outcome.get("status") in ("ok", "failed"):
        return outcome["status"], outcome.get("error_kind"), outcome.get("error")
    kind, error = _death_reason(attempt.code, attempt.log_tail, peak_mib, memory_limit_mb=memory_limit_mb,
                                kernel_oom=attempt.kernel_oom, kernel_log_readable=attempt.kernel_log_readable)
    return "failed", kind, error


def _assemble(job: Job, ctx: RunContext, split, attempt: WorkerRun) -> dict:
    """The result of ``job`` from what its worker left (``attempt``), ``ok`` or ``failed``."""
    entry = ctx.registry.models[job.model]
    outcome = attempt.outcome or {}
    code, duration, last_progress = attempt.code, attempt.duration, attempt.last_progress
    peak_mib = attempt.rusage.ru_maxrss / 1024.0 if attempt.rusage is not None else None  # KiB on Linux
    status, kind, error = _how_it_ended(attempt, ctx.timeout, ctx.memory_limit_mb, peak_mib)
    identity = job_identity(job, ctx, split)
    params = outcome.get("params", job.run_params(ctx.registry))
    result = {
        "schema": results.SCHEMA,
        "status": status,
        "error": error,
        "error_kind": kind if status == "failed" else None,
        "model": _model_block(job, entry, params),
        "tasks": list(job.tasks),
        **({"ranking": {**(outcome.get("ranking") or {}), "source": job.rank}} if job.rank else {}),
        "dataset": {"name": ctx.dataset.name, "fingerprint": ctx.dataset.fingerprint,
                    "synthetic": bool(ctx.dataset.synthetic), "label": ctx.dataset.label},
        "protocol": ctx.protocol.name,
        "protocol_params": ctx.protocol.params(),
        "split": {"seed": job.seed, "fingerprint": split.fingerprint, "stats": split.stats},
        "seeding": outcome.get("seeding"),
        "metrics": outcome.get("metrics", {}) if status == "ok" else {},
        "val_metrics": outcome.get("val_metrics", {}) if status == "ok" else {},
        # season-v1's second table: the same fitted model ranking every catalogue anime from the test cut on
        **({"ranking_hard": outcome["ranking_hard"]} if status == "ok" and outcome.get("ranking_hard") else {}),
        **({"history": outcome["history"]} if outcome.get("history") else {}),
        "timing": _timing(outcome, duration, ok=status == "ok"),
        "resources": _resources(ctx, peak_mib, code),
        "machine": outcome.get("machine") or ctx.parent_machine or {},
        "package": {"name": "animerec-bench", "version": __version__, "commit": ctx.commit,
                    "dirty": ctx.dirty},
        "identity": identity,
        "run_id": ctx.run_id,
        "started_at": attempt.started_at,
        "duration_seconds": duration,
    }
    if job.validation_only:
        result["validation_only"] = True
    if status == "failed" and last_progress:
        result["last_progress"] = last_progress  # how far it got (an ok result has its history)
    _add_extra(result, job.extra)
    if status == "ok":
        _fail_on_invalid_metrics(result)
    if result["status"] == "failed":
        result["traceback"] = outcome.get("traceback")
        result["log_tail"] = attempt.log_tail
    return result


def _model_block(job: Job, entry: ModelEntry, params: dict) -> dict:
    """The result's ``model``: what ran (name, version, the parameters it ran with and those the
    job set) and where it came from (plugin, peer)."""
    return {
        "name": job.model, "version": entry.version, "params": params,
        "params_set": job.params, "plugin": entry.plugin, "plugin_version": entry.plugin_version,
        "tasks": list(entry.tasks), "joint": entry.joint, "baseline": entry.baseline,
        **({"peer": entry.peer} if entry.peer else {}),  # absent: one of ours
    }


def _resources(ctx: RunContext, peak_mib: float | None, exit_code: int | None) -> dict:
    """The result's ``resources``: the worker's peak memory and exit code, the limits it ran under."""
    return {"peak_rss_mib": peak_mib, "memory_limit_mb": ctx.memory_limit_mb,
            "timeout_seconds": ctx.timeout, "exit_code": exit_code,
            "parent_peak_rss_mib": parent_peak_rss_mib()}


def _add_extra(result: dict, extra: dict) -> None:
    """``Job.extra``'s keys added to ``result``; replacing one of the harness's keys is an error."""
    clash = sorted(set(extra) & set(result))
    if clash:
        raise ValueError(f"Job.extra would replace result key(s) {clash}")
    result.update(extra)


def _timing(outcome: dict, duration: float, ok: bool) -> dict:
    """The worker's timing block, with the job's wall time and, for an ok job, the harness's own
    share of it (:func:`harness_seconds`)."""
    timing = dict(outcome.get("timing") or {})
    timing["job_seconds"] = duration
    harness = harness_seconds(timing) if ok else None
    if harness is not None:
        timing["harness_seconds"] = harness
        timing["harness_share"] = harness / duration if duration > 0 else None
    return timing


def _fail_on_invalid_metrics(result: dict) -> None:
    """An ok result with an invalid metric (a NaN primary metric, say) becomes a failed one, in
    place: its numbers must not reach a board."""
    problem = results.metrics_problem(results.json_safe(result))
    if problem:
        result.update(status="failed", error=f"invalid metric: {problem}", metrics={},
                      error_kind="nan" if ("nan" in problem or "null" in problem) else "prediction",
                      val_metrics={})
