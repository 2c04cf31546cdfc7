"""``animerec-bench run``: train and score models, one process per job, one result file per job."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys

import click

from animerec_bench.commands.options import job_options, job_seeds, plan_run, results_folder
from animerec_bench.errors import UserError
from animerec_bench.support import compile_cache


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


def run_summary(finished: list[tuple], results_dir, publish: bool) -> list[str]:
    """The end of a run a person reads: each task's models ranked by its primary metric (mean ± std
    over the seeds just run, best first, the direction the Task gives); where the full error of each failed job is; how to render the board and where it goes."""
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
    for task in (t for t in TASKS.values() if any(key[1] == t.name for key in values)):
        lines.append(f"  {task.name}, best first by {task.primary} ({'higher' if task.higher_is_better else 'lower'} "
                     f"is better):")
        ranked = sorted(((statistics.fmean(vs), key, vs) for key, vs in values.items() if key[1] == task.name),
                        key=lambda entry: (-entry[0] if task.higher_is_better else entry[0], entry[1]))
        for mean, (model, _, metric), vs in ranked:
            spread = f" ± {statistics.stdev(vs):.4f}" if len(vs) > 1 else ""
            lines.append(f"    {model} {task.name} {metric} {mean:.4f}{spread} ({len(vs)} seed(s))")
    for job, result, path in finished:
        if result.get("status") != "ok":
            where = f"full error (traceback, log tail) in {path}" if path else "its result could not be written"
            lines.append(f"failed: {job.label}: {where}")
    board = "leaderboards/ of this checkout" if publish else str(home() / "leaderboards")
    lines.append(f"board: `animerec-bench leaderboard{' --publish' if publish else ''}` renders it into {board}")
    return lines


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
    """The jobs whose identity has no current ok result in ``results_dir`` (renumbered), and how
    many had one."""
    import dataclasses
    from pathlib import Path

    from animerec_bench.execution import runner
    from animerec_bench.results import identity
    from animerec_bench.results import store as results_mod

    problems: list[str] = []
    existing = results_mod.load_all(results_dir, problems) if Path(results_dir).is_dir() else []
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    current = {results_mod.get(r, "identity.key") for r in existing
               if r["status"] == "ok" and not r.get("validation_only") and not results_mod.get(r, "tuning")
               and results_mod.content_problem(r) is None  # an edited file is not the job's result
               and not identity.stale(r)}  # nor one made before a change to a module its model uses
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
@click.option("--missing", is_flag=True,
              help="Run only the jobs without a current ok result in the results folder (same model code, "
                   "version, parameters, data set, split, protocol and result schema).")
@_no_early_exit_zero
def run(run_all, heavy, models, more_models, tasks, dataset, protocol, seeds, seed, params, timeout, memory_limit,
        keras_backend, n_jobs, executor, ray_address, ray_cpus, ray_gpus, results_dir, publish, missing,
        plugins_dir) -> None:
    """Run models on a data set: each job (model x task(s) x seed) in its own process.

    Ends with a summary table; the exit status is 1 when any job failed.
    """
    from animerec_bench.execution import runner

    seeds_run = job_seeds(seeds, seed, timeout)
    if n_jobs < 1:
        raise UserError(f"--jobs {n_jobs}: expected a whole number of jobs at once, 1 or more")
    ray_options = _ray_options(executor, n_jobs, ray_address, ray_cpus, ray_gpus)
    results_dir = results_folder(results_dir, publish)
    allotments = runner.allot_cores(n_jobs) if n_jobs > 1 else None
    ctx, jobs = plan_run(run_all=run_all, models=models, more_models=more_models, tasks=tasks, dataset=dataset,
                         protocol=protocol, seeds=seeds_run, params=params, timeout=timeout,
                         memory_limit=memory_limit, keras_backend=keras_backend, results_dir=results_dir,
                         plugins_dir=plugins_dir, heavy=heavy)
    _probe_results_folder(results_dir)
    click.echo(f"{len(jobs)} job(s) on {ctx.dataset.label} / protocol {protocol}, seed(s) "
               f"{', '.join(map(str, seeds_run))}; results -> {results_dir}", err=True)
    for stale in runner.sweep_stale_job_dirs():
        click.echo(f"removed {stale}: the job folder of a run that was killed", err=True)
    compile_cache.prune()  # its jobs add compiled programs; the oldest go above 1 GiB
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
    table = _execute(jobs, ctx, allotments, ray_options, results_dir)
    _finish(table, jobs, ctx, results_dir, publish)


class _Table:
    """The results of a run as they come back: the summary table's rows and what the summary needs."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.rows: list[tuple[int, list]] = []
        self.failed = 0
        self.reported = 0
        #: (job, result, path), for the end-of-run summary.
        self.finished: list[tuple] = []

    def record(self, job, result, path=None) -> None:
        from animerec_bench.execution.progress import primary_summary

        self.finished.append((job, result, path))
        for kept, problem in self.ctx.unsaved[self.reported:]:
            click.echo(f"error: {problem}; " + (f"kept it in {kept}" if kept else "could not keep it anywhere"),
                       err=True)
        self.reported = len(self.ctx.unsaved)
        self.failed += result["status"] != "ok"
        t = result.get("timing") or {}
        self.rows.append((job.index, [job.model, "+".join(job.tasks), job.seed, result["status"],
                                      primary_summary(result),
                                      f"{t['fit_seconds']:.2f}" if isinstance(t.get("fit_seconds"), float) else "",
                                      f"{result['duration_seconds']:.1f}", (result.get("error") or "")[:80]]))


def _executor(jobs, ctx, allotments, ray_options, ray):
    """The executor for this run: Ray's, ``--jobs N``'s, or one job at a time (with a live line on a
    terminal; several jobs at once get plain lines, as a live line cannot show two jobs; Ray's
    jobs report only when they end)."""
    from animerec_bench.execution.executors import LocalExecutor, ParallelExecutor
    from animerec_bench.execution.progress import Reporter, reporter_for

    def epochs_of(job) -> int | None:
        budget = job.run_params(ctx.registry).get("epochs")
        return budget if isinstance(budget, int) and not isinstance(budget, bool) else None

    if ray_options:
        from animerec_bench.execution.ray_executor import RayExecutor

        return RayExecutor(ctx, Reporter(len(jobs), epochs_of=epochs_of), ray_options, ray=ray)
    if allotments:
        return ParallelExecutor(ctx, Reporter(len(jobs), epochs_of=epochs_of), allotments)
    return LocalExecutor(ctx, reporter_for(len(jobs), epochs_of=epochs_of))


def _execute(jobs, ctx, allotments, ray_options, results_dir) -> _Table:
    """Run ``jobs`` with the run's executor; a stop signal ends the run with one line saying
    which jobs were killed and how many results were written."""
    table = _Table(ctx)
    ray = _connect_ray(ray_options) if ray_options else None
    executor = _executor(jobs, ctx, allotments, ray_options, ray)
    received: list = []
    try:
        with _stop_signals_raise() as received:
            for s in sorted({job.seed for job in jobs}):
                ctx.split(s)
            if ray_options:
                click.echo(f"{len(jobs)} job(s) submitted to Ray, {ray_options.cpus_per_job} core(s) each"
                           + (f", {ray_options.gpus_per_job:g} GPU(s) per Keras job" if ray_options.gpus_per_job
                              else ""), err=True)
            executor.execute(jobs, table.record)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the jobs' processes are already gone
        signum = getattr(exc, "signum", None) or (received[0] if received else signal.SIGINT)
        _say_stopped(signum, jobs, executor.running, table, results_dir)
        raise SystemExit(128 + signum) from None
    finally:
        if ray is not None:
            with contextlib.suppress(Exception):
                ray.shutdown()
    return table


def _say_stopped(signum, jobs, running, table: _Table, results_dir) -> None:
    written = len(table.rows) - len(table.ctx.unsaved)
    killed = ", ".join(f"{job.index}/{len(jobs)} ({job.label})" for job in sorted(running, key=lambda j: j.index))
    where = (f"during job {killed}, which was killed and has no result" if len(running) == 1 else
             f"during jobs {killed}, which were killed and have no result" if running else
             "between jobs" if table.rows else "before the first job")
    with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
        click.echo(("\n" if sys.stderr.isatty() else "") + f"run stopped by {signal.Signals(signum).name} "
                   f"{where}; {written} result(s) written to {results_dir}", err=True)


def _finish(table: _Table, jobs, ctx, results_dir, publish: bool) -> None:
    """The summary table and the closing lines; exit 1 when a job failed or a result was not written."""
    from tabulate import tabulate

    rows = [row for _, row in sorted(table.rows, key=lambda pair: pair[0])]  # in job order, however they finished
    if not rows:  # a run that ran nothing never reports success
        raise UserError("no job ran")
    click.echo(tabulate(rows, ["model", "tasks", "seed", "status", "primary metric", "fit s", "job s", "error"],
                        tablefmt="github"))
    click.echo(f"{len(jobs) - table.failed} ok, {table.failed} failed; results in {results_dir}")
    for line in run_summary(table.finished, results_dir, publish):
        click.echo(line)
    if ctx.unsaved:
        kept = sorted({str(p.parent) for p, _ in ctx.unsaved if p is not None})
        click.echo(f"error: {len(ctx.unsaved)} result(s) could not be written to {results_dir}"
                   + (f"; kept in {', '.join(kept)}" if kept else ""), err=True)
    if table.failed or ctx.unsaved:
        raise SystemExit(1)
