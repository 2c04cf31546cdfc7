"""``animerec-bench run``: train and score models, one process per job, one result file per job."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys

import click

from animerec_bench.commands.options import job_options, job_seeds, plan_jobs, results_folder
from animerec_bench.errors import UserError


def _no_early_exit_zero(command):
    """A run exits 0 only after its summary: plugin code that raises ``SystemExit(0)`` (or
    calls ``sys.exit()``) on the way cut the run short, so it is an error, not success."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SystemExit as exc:
            if exc.code in (0, None):
                raise UserError(f"the run was cut short by SystemExit({exc.code!r}) from plugin code; "
                                f"it did not finish its jobs") from None
            raise

    return wrapper

#: The signals that stop a run like Ctrl-C: ``timeout``, CI cancellation and ``docker stop``
#: send SIGTERM, a closed terminal SIGHUP.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where the run is, so it unwinds (and cleans up) like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals_raise():
    """While the block runs, SIGTERM and SIGHUP raise :class:`Stopped` (once: a second one
    arriving during the clean-up is ignored, so the clean-up finishes). Yields the list of the
    signal received, for code that sees the stop as a plain KeyboardInterrupt (Ray turns an
    exception raised by a signal handler during its calls into one)."""
    stopping = []

    def handler(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise Stopped(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        previous = {}
    try:
        yield stopping
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _check_backend(name: str) -> None:
    """``--backend NAME``: a backend this package supports and that is installed, else one line."""
    import importlib.util

    from animerec_bench.execution.runner import KERAS_BACKENDS

    if name not in KERAS_BACKENDS:
        raise UserError(f"--backend {name}: unknown Keras backend; expected one of {', '.join(KERAS_BACKENDS)}")
    if importlib.util.find_spec(name) is None:
        extra = " (pip install 'animerec-bench[jax]')" if name == "jax" else ""
        raise UserError(f"--backend {name}: {name} is not installed{extra}")


class _Cancelled(BaseException):
    """Raised in a job's thread (from ``execute``'s tick) when the run stops: ``execute`` then
    kills the job's processes, as it does for Ctrl-C in the main thread."""


def run_summary(finished: list[tuple], results_dir, publish: bool) -> list[str]:
    """The end of a run a person reads: each model's primary metric(s), mean ± std over the seeds
    just run; where the full error of each failed job is; how to render the board and where it goes."""
    import statistics

    from animerec_bench.support.paths import home
    from animerec_bench.tasks import TASKS

    values: dict[tuple, list[float]] = {}
    for job, result, _ in finished:
        if result.get("status") != "ok":
            continue
        for task, metrics in (result.get("metrics") or {}).items():
            primary = TASKS[task].primary if task in TASKS else None
            if primary and isinstance(metrics.get(primary), (int, float)):
                values.setdefault((job.model, task, primary), []).append(float(metrics[primary]))
    lines = []
    if values:
        lines.append("mean ± std over the seeds just run:")
        for (model, task, metric), vs in sorted(values.items()):
            spread = f" ± {statistics.stdev(vs):.4f}" if len(vs) > 1 else ""
            lines.append(f"  {model} {task} {metric} {statistics.fmean(vs):.4f}{spread} ({len(vs)} seed(s))")
    for job, result, path in finished:
        if result.get("status") != "ok":
            where = f"full error (traceback, log tail) in {path}" if path else "its result could not be written"
            lines.append(f"failed: {job.label}: {where}")
    board = "leaderboards/ of this checkout" if publish else str(home() / "leaderboards")
    lines.append(f"board: `animerec-bench leaderboard{' --publish' if publish else ''}` renders it into {board}")
    return lines


def run_parallel(jobs, ctx, allotments, reporter, record, running: list) -> None:
    """Run ``jobs`` in ``len(allotments)`` threads, each running one job at a time on its own
    cores, and hand each result to ``record`` in this (the main) thread. ``running`` holds the
    jobs under way, for the stop message.

    A stop (Ctrl-C, SIGTERM, SIGHUP) arrives in this thread: it tells every job thread to stop,
    each kills its job (within ``execute``'s tick, ~0.25 s), and waits for them before it goes
    on. Each thread outlives the worker it started, as the worker's parent-death signal needs."""
    import queue
    import threading

    from animerec_bench.execution import runner

    todo: queue.SimpleQueue = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    done: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    lock = threading.Lock()  # the reporter and ``running`` are not thread-safe

    def tick() -> None:
        if stop.is_set():
            raise _Cancelled()

    def event(kind, info) -> None:
        with lock:
            reporter.event(kind, info)

    def slot(cores) -> None:
        while not stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            with lock:
                running.append(job)
                reporter.start(job)
            try:
                result, path = runner.execute(job, ctx, event, tick, cores=cores)
            except _Cancelled:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
                done.put((job, None, exc))
                return
            with lock:
                running.remove(job)
                reporter.finish(job, result)
            done.put((job, (result, path), None))

    threads = [threading.Thread(target=slot, args=(cores,), name=f"animerec-bench-job-slot-{k}")
               for k, cores in enumerate(allotments)]
    for t in threads:
        t.start()
    try:
        for _ in jobs:
            while True:
                try:  # a timeout, so that signals reach this thread's handlers promptly
                    job, result, exc = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and done.empty():
                        raise RuntimeError("every job thread ended before the run's jobs were done") from None
            if exc is not None:
                raise exc
            record(job, *result)
    finally:
        stop.set()
        for t in threads:
            while t.is_alive():
                with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: still wait for the kills
                    t.join()
        while not done.empty():  # jobs that finished while the run stopped: their results were written
            job, result, exc = done.get()
            if exc is None:
                record(job, *result)


def _ray_options(executor: str, n_jobs: int, address, cpus, gpus):
    """``--executor`` and the ``--ray-*`` options as :class:`.ray_executor.RayOptions` (None for a
    local run); options that cannot go together are one-line errors."""
    from_command_line = click.get_current_context().get_parameter_source("ray_address")
    given = [name for name, value in (("--ray-address", from_command_line == click.core.ParameterSource.COMMANDLINE),
                                      ("--ray-cpus-per-job", cpus is not None),
                                      ("--ray-gpus-per-job", gpus is not None)) if value]
    if executor != "ray":
        if given:
            raise UserError(f"{given[0]} works only with --executor ray")
        return None
    if n_jobs != 1:
        raise UserError(f"--jobs {n_jobs} with --executor ray: Ray decides how many jobs run at once; "
                        f"give each job's cores with --ray-cpus-per-job instead")
    from animerec_bench.execution.ray_executor import RayOptions, import_ray

    import_ray()  # not installed: one line now, before any split is made
    return RayOptions(address=address or None, cpus_per_job=cpus or 1, gpus_per_job=gpus or 0.0)


def _connect_ray(options):
    """Connect to (or start) Ray before the run's signal handlers are set: ``ray.init`` sets its
    own SIGTERM handler, which the run's then replace. Ctrl-C meanwhile stops the run cleanly."""
    from animerec_bench.execution.ray_executor import connect

    where = f"the Ray cluster at {options.address}" if options.address else "a local Ray instance (127.0.0.1)"
    click.echo(f"connecting to {where}", err=True)
    try:
        return connect(options)
    except KeyboardInterrupt:
        signum = signal.SIGINT
    except SystemExit as exc:  # ray.init's own SIGTERM handler exits with the signal's number
        if exc.code not in STOP_SIGNALS:
            raise
        signum = exc.code
    click.echo(f"run stopped by {signal.Signals(signum).name} while connecting to {where}; no job ran", err=True)
    raise SystemExit(128 + signum) from None


def _probe_results_folder(folder) -> None:
    """Make ``folder`` and write and remove a file in it, so a folder that cannot take results
    fails the run before any job, not after the first."""
    import os
    import uuid
    from pathlib import Path

    from animerec_bench.errors import UserError

    probe = Path(folder) / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"results folder {folder}: cannot write there ({exc.strerror or exc})") from None


def _missing_jobs(jobs: list, ctx, results_dir) -> tuple[list, int]:
    """The jobs whose identity has no ok result in ``results_dir`` (renumbered), and how many had one."""
    import dataclasses
    from pathlib import Path

    from animerec_bench.execution import runner
    from animerec_bench.results import store as results_mod

    problems: list[str] = []
    existing = results_mod.load_all(results_dir, problems) if Path(results_dir).is_dir() else []
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    current = {results_mod.get(r, "identity.key") for r in existing
               if r["status"] == "ok" and not r.get("validation_only") and not results_mod.get(r, "tuning")
               and results_mod.content_problem(r) is None}  # an edited file is not the job's result
    todo = [job for job in jobs if runner.job_identity(job, ctx, ctx.split(job.seed)[1])["key"] not in current]
    return [dataclasses.replace(job, index=i) for i, job in enumerate(todo, 1)], len(jobs) - len(todo)


@click.command("run")
@job_options(
    all_help="Run every registered model.",
    model_help="Model to run (repeatable; names after it count too: -m mf nn bias).",
    seeds_help="Run seeds 0..N-1.", seed_help="Run this one seed (default 0).",
    param_help="Set a hyperparameter, e.g. mf.epochs=3, read as its default's type (bool: true/false, "
               "yes/no, 1/0); each model checks its values before any job starts. Repeatable.",
    timeout_help="Seconds each job may take before it is killed and recorded as failed.",
    results_help="Folder the result files are written into (default: results/ in the data home, your own runs; "
                 "the published ./results only with --publish or --results results).")
@click.option("--memory-limit", "memory_limit", type=click.IntRange(min=1), default=None, metavar="MB",
              help="Cap each job's address space (RLIMIT_AS); exceeding it fails the job as out of memory.")
@click.option("--jobs", "n_jobs", type=int, default=1, show_default=True, metavar="N",
              help="Run up to N jobs at once, each pinned to its own equal share of the cores (its timings "
                   "are recorded and shown as 'K of M cores'); 1 leaves every core to the one job.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where jobs run: local (this machine) or ray (each job a Ray task on whichever node has "
                   "room; pip install 'animerec-bench[ray]').")
@click.option("--ray-address", "ray_address", default=None, metavar="ADDR", envvar="RAY_ADDRESS",
              help="With --executor ray: the cluster's head, e.g. HEAD:6379 (default: RAY_ADDRESS, else a local "
                   "Ray instance on 127.0.0.1 for this run).")
@click.option("--ray-cpus-per-job", "ray_cpus", type=click.IntRange(min=1), default=None, metavar="K",
              help="With --executor ray: cores each job asks Ray for, and is pinned to on its node [default: 1].")
@click.option("--ray-gpus-per-job", "ray_gpus", type=click.FloatRange(min=0), default=None, metavar="G",
              help="With --executor ray: GPUs each Keras model's job asks Ray for (num_gpus) [default: 0].")
@click.option("--backend", "keras_backend", default=None, metavar="NAME",
              help="Keras backend of the Keras models' jobs: tensorflow or jax (default: KERAS_BACKEND, else "
                   "Keras' own); recorded with the hardware.")
@click.option("--missing", is_flag=True,
              help="Run only the jobs without a current ok result in the results folder (same model code, "
                   "version, parameters, data set, split, protocol and result schema).")
@_no_early_exit_zero
def run(run_all, models, more_models, tasks, dataset, protocol, seeds, seed, params, timeout, memory_limit,
        n_jobs, executor, ray_address, ray_cpus, ray_gpus, keras_backend, results_dir, publish, missing,
        plugins_dir) -> None:
    """Run models on a data set: each job (model x task(s) x seed) in its own process.

    Ends with a summary table; the exit status is 1 when any job failed.
    """
    from pathlib import Path

    from tabulate import tabulate

    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.execution import runner
    from animerec_bench.execution.progress import Reporter, primary_summary, reporter_for
    from animerec_bench.support.machine import machine_info

    seeds_run = job_seeds(seeds, seed, timeout)
    if n_jobs < 1:
        raise UserError(f"--jobs {n_jobs}: expected a whole number of jobs at once, 1 or more")
    if keras_backend is not None:
        _check_backend(keras_backend)
    ray_options = _ray_options(executor, n_jobs, ray_address, ray_cpus, ray_gpus)
    results_dir = results_folder(results_dir, publish)
    registry, plugins_path, _, jobs = plan_jobs(
        run_all=run_all, models=models, more_models=more_models, tasks=tasks, seeds=seeds_run, params=params,
        timeout=timeout, plugins_dir=plugins_dir, protocol=protocol)
    allotments = runner.allot_cores(n_jobs) if n_jobs > 1 else None
    ds = registry.dataset(dataset)
    commit, dirty = runner.git_revision()
    ctx = runner.RunContext(registry=registry, dataset=ds, protocol=get_protocol(protocol),
                            results_dir=Path(results_dir), plugins_dir=plugins_path and str(plugins_path),
                            timeout=timeout, memory_limit_mb=memory_limit, commit=commit, dirty=dirty,
                            parent_machine=machine_info(), keras_backend=keras_backend)
    _probe_results_folder(results_dir)
    click.echo(f"{len(jobs)} job(s) on {ds.label} / protocol {protocol}, seed(s) "
               f"{', '.join(map(str, seeds_run))}; results -> {results_dir}", err=True)
    for stale in runner.sweep_stale_job_dirs():
        click.echo(f"removed {stale}: the job folder of a run that was killed", err=True)
    if missing:
        jobs, done = _missing_jobs(jobs, ctx, results_dir)
        click.echo(f"--missing: {done} job(s) already have a current ok result in {results_dir}; "
                   f"{len(jobs)} to run", err=True)
        if not jobs:
            click.echo(f"nothing to run; results in {results_dir}")
            return
    if allotments:
        click.echo(f"{n_jobs} jobs at once, each on its own {len(allotments[0])} of {len(runner.allot_cores(1)[0])} "
                   f"core(s): " + "; ".join(",".join(map(str, a)) for a in allotments), err=True)
    # Several jobs at once: plain lines (a live line cannot show two jobs), one call at a time.
    def epochs_of(job) -> int | None:
        budget = {**registry.models[job.model].params, **job.params}.get("epochs")
        return budget if isinstance(budget, int) and not isinstance(budget, bool) else None

    plain = allotments or ray_options
    reporter = reporter_for(len(jobs), epochs_of=epochs_of) if not plain else Reporter(len(jobs))
    rows, failed, reported = [], 0, 0
    running: list = []
    finished: list[tuple] = []  # (job, result, path), for the end-of-run summary

    def record(job, result, path=None) -> None:
        nonlocal failed, reported
        finished.append((job, result, path))
        for kept, problem in ctx.unsaved[reported:]:
            click.echo(f"error: {problem}; " + (f"kept it in {kept}" if kept else "could not keep it anywhere"),
                       err=True)
        reported = len(ctx.unsaved)
        failed += result["status"] != "ok"
        t = result.get("timing") or {}
        rows.append((job.index, [job.model, "+".join(job.tasks), job.seed, result["status"], primary_summary(result),
                     f"{t['fit_seconds']:.2f}" if isinstance(t.get("fit_seconds"), float) else "",
                     f"{result['duration_seconds']:.1f}", (result.get("error") or "")[:80]]))

    ray = _connect_ray(ray_options) if ray_options else None
    received: list = []
    try:
        with _stop_signals_raise() as received:
            for s in sorted({job.seed for job in jobs}):
                ctx.split(s)
            if ray_options:
                from animerec_bench.execution.ray_executor import run_jobs

                click.echo(f"{len(jobs)} job(s) submitted to Ray, {ray_options.cpus_per_job} core(s) each"
                           + (f", {ray_options.gpus_per_job:g} GPU(s) per Keras job" if ray_options.gpus_per_job
                              else ""), err=True)
                run_jobs(jobs, ctx, ray_options, reporter, record, running, ray=ray)
            elif allotments:
                run_parallel(jobs, ctx, allotments, reporter, record, running)
            for job in jobs if not plain else ():
                reporter.start(job)
                running.append(job)
                result, path = runner.execute(job, ctx, reporter.event, reporter.tick)
                running.remove(job)
                reporter.finish(job, result)
                record(job, result, path)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the jobs' processes are already gone
        signum = getattr(exc, "signum", None) or (received[0] if received else signal.SIGINT)
        written = len(rows) - len(ctx.unsaved)
        killed = ", ".join(f"{job.index}/{len(jobs)} ({job.label})" for job in sorted(running, key=lambda j: j.index))
        where = (f"during job {killed}, which was killed and has no result" if len(running) == 1 else
                 f"during jobs {killed}, which were killed and have no result" if running else
                 "between jobs" if rows else "before the first job")
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            click.echo(("\n" if sys.stderr.isatty() else "") + f"run stopped by {signal.Signals(signum).name} "
                       f"{where}; {written} result(s) written to {results_dir}", err=True)
        raise SystemExit(128 + signum) from None
    finally:
        if ray is not None:
            with contextlib.suppress(Exception):
                ray.shutdown()
    rows = [row for _, row in sorted(rows, key=lambda pair: pair[0])]  # in job order, however they finished
    if not rows:  # a run that ran nothing never reports success
        raise UserError("no job ran")
    click.echo(tabulate(rows, ["model", "tasks", "seed", "status", "primary metric", "fit s", "job s", "error"],
                        tablefmt="github"))
    click.echo(f"{len(jobs) - failed} ok, {failed} failed; results in {results_dir}")
    for line in run_summary(finished, results_dir, publish):
        click.echo(line)
    if ctx.unsaved:
        kept = sorted({str(p.parent) for p, _ in ctx.unsaved if p is not None})
        click.echo(f"error: {len(ctx.unsaved)} result(s) could not be written to {results_dir}"
                   + (f"; kept in {', '.join(kept)}" if kept else ""), err=True)
    if failed or ctx.unsaved:
        raise SystemExit(1)
