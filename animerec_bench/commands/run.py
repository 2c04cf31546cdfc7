"""``animerec-bench run``: train and score models, one process per job, one result file per job."""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys

import click

from ..errors import UserError
from ..tasks import NAMES as TASK_NAMES
from .options import load_plugins, plugins_dir_option, publish_option, results_folder


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

#: numpy's seeds (``np.random.seed``, which Keras' seeding calls) must be below this.
SEED_LIMIT = 2**32
#: ``--seeds`` above this is a typo, not a study (each seed is a full set of jobs).
MAX_SEEDS = 1000
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
    arriving during the clean-up is ignored, so the clean-up finishes)."""
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
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _probe_results_folder(folder) -> None:
    """Make ``folder`` and write and remove a file in it, so a folder that cannot take results
    fails the run before any job, not after the first."""
    import os
    import uuid
    from pathlib import Path

    from ..errors import UserError

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

    from .. import results as results_mod
    from .. import runner

    problems: list[str] = []
    existing = results_mod.load_all(results_dir, problems) if Path(results_dir).is_dir() else []
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    current = {results_mod.get(r, "identity.key") for r in existing
               if r["status"] == "ok" and not r.get("validation_only") and not results_mod.get(r, "tuning")}
    todo = [job for job in jobs if runner.job_identity(job, ctx, ctx.split(job.seed)[1])["key"] not in current]
    return [dataclasses.replace(job, index=i) for i, job in enumerate(todo, 1)], len(jobs) - len(todo)


@click.command("run")
@click.option("--all", "run_all", is_flag=True, help="Run every registered model.")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME",
              help="Model to run (repeatable; names after it count too: -m mf nn bias).")
@click.argument("more_models", nargs=-1, metavar="[NAME]...")
@click.option("--task", "tasks", multiple=True, type=click.Choice(TASK_NAMES),
              help="Only this task (repeatable; default: every task a model serves).")
@click.option("--dataset", default="mal2016-5k", show_default=True, help="Registered data set.")
@click.option("--protocol", default="v1", show_default=True, help="Protocol (split and label rules).")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Run seeds 0..N-1.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Run this one seed (default 0).")
@click.option("--param", "params", multiple=True, metavar="MODEL.KEY=VALUE",
              help="Set a hyperparameter, e.g. mf.epochs=3, read as its default's type (bool: true/false, "
                   "yes/no, 1/0); each model checks its values before any job starts. Repeatable.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=1800.0, show_default=True,
              help="Seconds each job may take before it is killed and recorded as failed.")
@click.option("--memory-limit", "memory_limit", type=click.IntRange(min=1), default=None, metavar="MB",
              help="Cap each job's address space (RLIMIT_AS); exceeding it fails the job as out of memory.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default=None,
              help="Folder the result files are written into "
                   "(default: results/ in the data home, your own runs; the published ./results only with "
                   "--publish or --results results).")
@publish_option
@click.option("--missing", is_flag=True,
              help="Run only the jobs without a current ok result in the results folder (same model code, "
                   "version, parameters, data set, split, protocol and result schema).")
@plugins_dir_option
@_no_early_exit_zero
def run(run_all, models, more_models, tasks, dataset, protocol, seeds, seed, params, timeout, memory_limit,
        results_dir, publish, missing, plugins_dir) -> None:
    """Run models on a data set: each job (model x task(s) x seed) in its own process.

    Ends with a summary table; the exit status is 1 when any job failed.
    """
    from pathlib import Path

    from tabulate import tabulate

    from .. import runner
    from ..machine import machine_info
    from ..progress import primary_summary, reporter_for
    from ..protocol import get_protocol

    if seeds is not None and seed is not None:
        raise UserError("give either --seeds N or --seed S, not both")
    if not math.isfinite(timeout):
        raise UserError(f"--timeout {timeout}: expected a finite number of seconds greater than 0")
    if seed is not None and seed >= SEED_LIMIT:
        raise UserError(f"--seed {seed}: seeds must be below 2**32 = {SEED_LIMIT} (numpy's limit)")
    if seeds is not None and seeds > MAX_SEEDS:
        raise UserError(f"--seeds {seeds}: at most {MAX_SEEDS} seeds (each seed is a full set of jobs)")
    seed_list = list(range(seeds)) if seeds is not None else [seed if seed is not None else 0]
    results_dir = results_folder(results_dir, publish)
    models = tuple(models) + tuple(more_models)
    registry, plugins_path = load_plugins(plugins_dir, deadline=timeout)
    for err in registry.warnings + registry.errors:
        click.echo(f"warning: {err}", err=True)
    names = runner.select_models(registry, models, run_all)
    overrides = runner.parse_params(params, registry, names)
    jobs = runner.plan(registry, names, tuple(tasks) or None, seed_list, overrides)
    ds = registry.dataset(dataset)
    commit, dirty = runner.git_revision()
    ctx = runner.RunContext(registry=registry, dataset=ds, protocol=get_protocol(protocol),
                            results_dir=Path(results_dir), plugins_dir=plugins_path and str(plugins_path),
                            timeout=timeout, memory_limit_mb=memory_limit, commit=commit, dirty=dirty,
                            parent_machine=machine_info())
    _probe_results_folder(results_dir)
    click.echo(f"{len(jobs)} job(s) on {ds.label} / protocol {protocol}, seed(s) "
               f"{', '.join(map(str, seed_list))}; results -> {results_dir}", err=True)
    for stale in runner.sweep_stale_job_dirs():
        click.echo(f"removed {stale}: the job folder of a run that was killed", err=True)
    if missing:
        jobs, done = _missing_jobs(jobs, ctx, results_dir)
        click.echo(f"--missing: {done} job(s) already have a current ok result in {results_dir}; "
                   f"{len(jobs)} to run", err=True)
        if not jobs:
            click.echo(f"nothing to run; results in {results_dir}")
            return
    reporter = reporter_for(len(jobs))
    rows, failed, written = [], 0, 0
    running = None
    try:
        with _stop_signals_raise():
            for s in sorted({job.seed for job in jobs}):
                ctx.split(s)
            for job in jobs:
                reporter.start(job)
                unsaved, running = len(ctx.unsaved), job
                result, path = runner.execute(job, ctx, reporter.event, reporter.tick)
                running = None
                reporter.finish(job, result)
                written += len(ctx.unsaved) == unsaved
                for kept, problem in ctx.unsaved[unsaved:]:
                    click.echo(f"error: {problem}; " + (f"kept it in {kept}" if kept else "could not keep it anywhere"),
                               err=True)
                failed += result["status"] != "ok"
                t = result.get("timing") or {}
                rows.append([job.model, "+".join(job.tasks), job.seed, result["status"], primary_summary(result),
                             f"{t['fit_seconds']:.2f}" if isinstance(t.get("fit_seconds"), float) else "",
                             f"{result['duration_seconds']:.1f}", (result.get("error") or "")[:80]])
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the job's processes are already gone
        signum = getattr(exc, "signum", signal.SIGINT)
        where = (f"during job {running.index}/{len(jobs)} ({running.label}), which was killed and has no result"
                 if running else "between jobs" if rows else "before the first job")
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            click.echo(("\n" if sys.stderr.isatty() else "") + f"run stopped by {signal.Signals(signum).name} "
                       f"{where}; {written} result(s) written to {results_dir}", err=True)
        raise SystemExit(128 + signum) from None
    if not rows:  # a run that ran nothing never reports success
        raise UserError("no job ran")
    click.echo(tabulate(rows, ["model", "tasks", "seed", "status", "primary metric", "fit s", "job s", "error"],
                        tablefmt="github"))
    click.echo(f"{len(jobs) - failed} ok, {failed} failed; results in {results_dir}")
    if ctx.unsaved:
        kept = sorted({str(p.parent) for p, _ in ctx.unsaved if p is not None})
        click.echo(f"error: {len(ctx.unsaved)} result(s) could not be written to {results_dir}"
                   + (f"; kept in {', '.join(kept)}" if kept else ""), err=True)
    if failed or ctx.unsaved:
        raise SystemExit(1)
