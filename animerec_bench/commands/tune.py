"""``animerec-bench tune``: equal-budget hyperparameter search per seed, then one test job each."""

from __future__ import annotations

from dataclasses import dataclass

import click

from animerec_bench.commands.options import job_options, job_seeds, plan_run, results_folder
from animerec_bench.errors import UserError
from animerec_bench.support import compile_cache


@click.command("tune")
@job_options(
    all_help="Tune every registered model, each with the same budget.",
    model_help="Model to tune (repeatable; names after it count too: -m mf nn bias).",
    seeds_help="Tune and test seeds 0..N-1.", seed_help="Tune and test this one seed (default 0).",
    param_help="Fix a hyperparameter (it is then not searched), e.g. mf.epochs=3. Repeatable.",
    timeout_help="Seconds each trial (and each final test job) may take before it is killed and recorded as "
                 "failed.",
    results_help="Folder the final test jobs' result files are written into (default: results/ in the data home, "
                 "your own runs; the published ./results only with --publish or --results results).")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Budget: at most N trials per study, i.e. per model, task and seed (per model and seed "
                   "for a joint model). Trials of an interrupted tune count.")
@click.option("--budget", "budget_seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Budget: no new trial once the study's trials took this many seconds in all (per model, "
                   "task and seed, like --trials; a trial's whole job time). With --trials: whichever "
                   "comes first.")
def tune(run_all, heavy, models, more_models, trials, budget_seconds, tasks, dataset, protocol, seeds, seed, params,
         timeout, memory_limit, keras_backend, results_dir, publish, plugins_dir) -> None:
    """Tune models with Optuna (seeded TPE) on each seed's validation part, then test once.

    For each seed, each model's trials run as jobs scored on that seed's validation part only
    (the worker never gets the test part); the best trial's parameters are then scored once
    on the seed's test part, a normal result file with a `tuning` object (trials, seconds,
    budget, chosen parameters). Models without a search space run their defaults, marked
    "default". Studies are kept under the data home: an interrupted tune resumes where it
    stopped. The exit status is 1 when a study or a test job failed.
    """
    from pathlib import Path

    from tabulate import tabulate

    from animerec_bench.execution import tuning
    from animerec_bench.results import store as results_mod

    budget = _budget(trials, budget_seconds)
    seed_list = job_seeds(seeds, seed, timeout)
    results_dir = results_folder(results_dir, publish)

    def check_space(registry, name: str) -> None:  # a broken space stops the tune before any job runs
        problem = tuning.space_problem(registry.models[name].cls)
        if problem:
            raise UserError(f"model {name!r} (plugin {registry.models[name].plugin!r}): {problem}")

    ctx, jobs = plan_run(run_all=run_all, models=models, more_models=more_models, tasks=tasks, dataset=dataset,
                         protocol=protocol, seeds=seed_list, params=params, timeout=timeout,
                         memory_limit=memory_limit, keras_backend=keras_backend, results_dir=results_dir,
                         plugins_dir=plugins_dir, check_model=check_space, heavy=heavy)
    existing = results_mod.load_all(results_dir, problems=[]) if Path(results_dir).is_dir() else []
    click.echo(f"tuning {len(jobs)} study(ies) on {ctx.dataset.label} / protocol {protocol}, seed(s) "
               f"{', '.join(map(str, seed_list))}; budget {budget} each; studies in "
               f"{tuning.storage_path()}; results -> {results_dir}", err=True)
    compile_cache.prune()  # trials add compiled programs; the oldest go above 1 GiB
    rows = _tune_each(jobs, ctx, budget, existing, results_dir)
    click.echo(tabulate([row.cells for row in rows], ["model", "tasks", "seed", "parameters", "best validation",
                                                      "test", "chosen", "error"], tablefmt="github"))
    failed = sum(row.failed for row in rows)
    click.echo(f"{len(jobs) - failed} ok, {failed} failed; results in {results_dir}")
    if failed:
        raise SystemExit(1)


def _budget(trials: int | None, seconds: float | None):
    """The per-study budget from ``--trials`` and ``--budget``; a user error when neither is given
    (or the seconds are NaN) or the studies' storage is damaged (one line, before any job)."""
    import math

    from animerec_bench.execution import tuning

    if seconds is not None and not math.isfinite(seconds):  # nan passes a range check
        raise UserError(f"--budget {seconds}: expected a finite number of seconds greater than 0")
    tuning.check_storage()
    if trials is None and seconds is None:
        raise UserError("give a budget: --trials N and/or --budget SECONDS (each per model, task and seed)")
    return tuning.Budget(trials=trials, seconds=seconds)


@dataclass(frozen=True)
class _Row:
    """One study's line in the closing table, and whether it failed."""

    cells: list
    failed: bool


def _tune_each(jobs, ctx, budget, existing: list[dict], results_dir) -> list[_Row]:
    """Tune and test each job in turn; SIGTERM stops like Ctrl-C (the running trial's processes
    are killed), with a line saying what was kept and exit status 128 + the signal, as ``run``."""
    import signal

    from animerec_bench.execution import tuning

    def on_term(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_term)
    rows: list[_Row] = []
    for job in jobs:
        try:
            out = tuning.tune_job(job, ctx, budget, existing=existing, say=lambda line: click.echo(line, err=True))
        except KeyboardInterrupt as exc:
            signum = signal.SIGTERM if str(exc) == "SIGTERM" else signal.SIGINT
            click.echo(f"tune stopped by {signum.name} while tuning {job.label} (its finished trials are kept "
                       f"in {tuning.storage_path()}: a rerun resumes there); {len(rows)} test result(s) written "
                       f"to {results_dir}", err=True)
            raise SystemExit(128 + signum) from None
        rows.append(_row(job, out))
    return rows


def _row(job, out) -> _Row:
    from animerec_bench.execution import tuning
    from animerec_bench.execution.progress import primary_summary

    r = out.result or {}
    bad = out.method == "failed" or r.get("status") != "ok"
    how = ("FAILED" if out.method == "failed" else
           f"tuned ({out.trials} trials, {out.seconds:.0f} s)" if out.method == tuning.TUNED else "default")
    return _Row([job.model, "+".join(job.tasks), job.seed, how,
                 f"{out.best_value:.4f}" if out.best_value is not None else "",
                 primary_summary(r) if not bad else (r.get("status") or ""),
                 tuning.params_text(out.params), (out.error or r.get("error") or "")[:80]], bad)
