"""``animerec-bench tune``: equal-budget hyperparameter search per seed, then one test job each."""

from __future__ import annotations

import click

from ..tasks import NAMES as TASK_NAMES
from .options import load_plugins, plugins_dir_option, publish_option, results_folder


@click.command("tune")
@click.option("--all", "run_all", is_flag=True, help="Tune every registered model, each with the same budget.")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME",
              help="Model to tune (repeatable; names after it count too: -m mf nn bias).")
@click.argument("more_models", nargs=-1, metavar="[NAME]...")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Budget: at most N trials per study, i.e. per model, task and seed (per model and seed "
                   "for a joint model). Trials of an interrupted tune count.")
@click.option("--budget", "budget_seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Budget: no new trial once the study's trials took this many seconds in all (per model, "
                   "task and seed, like --trials; a trial's whole job time). With --trials: whichever "
                   "comes first.")
@click.option("--task", "tasks", multiple=True, type=click.Choice(TASK_NAMES),
              help="Only this task (repeatable; default: every task a model serves).")
@click.option("--dataset", default="mal2016-5k", show_default=True, help="Registered data set.")
@click.option("--protocol", default="v1", show_default=True, help="Protocol (split and label rules).")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="Tune and test seeds 0..N-1.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Tune and test this one seed (default 0).")
@click.option("--param", "params", multiple=True, metavar="MODEL.KEY=VALUE",
              help="Fix a hyperparameter (it is then not searched), e.g. mf.epochs=3. Repeatable.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=1800.0, show_default=True,
              help="Seconds each trial (and each final test job) may take before it is killed and "
                   "recorded as failed.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default=None,
              help="Folder the final test jobs' result files are written into "
                   "(default: results/ in the data home, your own runs; the published ./results only with "
                   "--publish or --results results).")
@publish_option
@plugins_dir_option
def tune(run_all, models, more_models, trials, budget_seconds, tasks, dataset, protocol, seeds, seed, params,
         timeout, results_dir, publish, plugins_dir) -> None:
    """Tune models with Optuna (seeded TPE) on each seed's validation part, then test once.

    For each seed, each model's trials run as jobs scored on that seed's validation part only
    (the worker never gets the test part); the best trial's parameters are then scored once
    on the seed's test part, a normal result file with a `tuning` object (trials, seconds,
    budget, chosen parameters). Models without a search space run their defaults, marked
    "default". Studies are kept under the data home: an interrupted tune resumes where it
    stopped. The exit status is 1 when a study or a test job failed.
    """
    import signal
    from pathlib import Path

    from tabulate import tabulate

    from .. import results as results_mod
    from .. import runner, tuning
    from ..errors import UserError
    from ..machine import machine_info
    from ..progress import primary_summary
    from ..protocol import get_protocol

    if trials is None and budget_seconds is None:
        raise UserError("give a budget: --trials N and/or --budget SECONDS (each per model, task and seed)")
    if seeds is not None and seed is not None:
        raise UserError("give either --seeds N or --seed S, not both")
    seed_list = list(range(seeds)) if seeds is not None else [seed if seed is not None else 0]
    results_dir = results_folder(results_dir, publish)
    models = tuple(models) + tuple(more_models)
    registry, plugins_path = load_plugins(plugins_dir, deadline=timeout)
    for err in registry.warnings + registry.errors:
        click.echo(f"warning: {err}", err=True)
    names = runner.select_models(registry, models, run_all)
    for name in names:  # a broken space stops the tune before any job runs
        problem = tuning.space_problem(registry.models[name].cls)
        if problem:
            raise UserError(f"model {name!r} (plugin {registry.models[name].plugin!r}): {problem}")
    overrides = runner.parse_params(params, registry, names)
    jobs = runner.plan(registry, names, tuple(tasks) or None, seed_list, overrides)
    ds = registry.dataset(dataset)
    commit, dirty = runner.git_revision()
    ctx = runner.RunContext(registry=registry, dataset=ds, protocol=get_protocol(protocol),
                            results_dir=Path(results_dir), plugins_dir=plugins_path and str(plugins_path), timeout=timeout,
                            commit=commit, dirty=dirty, parent_machine=machine_info())
    budget = tuning.Budget(trials=trials, seconds=budget_seconds)
    existing = results_mod.load_all(results_dir, problems=[]) if Path(results_dir).is_dir() else []
    click.echo(f"tuning {len(jobs)} study(ies) on {ds.label} / protocol {protocol}, seed(s) "
               f"{', '.join(map(str, seed_list))}; budget {budget} each; studies in "
               f"{tuning.storage_path()}; results -> {results_dir}", err=True)

    def on_term(signum, frame):  # SIGTERM stops like Ctrl-C: the running trial's processes are killed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    rows, failed = [], 0
    for job in jobs:
        out = tuning.tune_job(job, ctx, budget, existing=existing, say=say)
        r = out.result or {}
        bad = out.method == "failed" or r.get("status") != "ok"
        failed += bad
        how = ("FAILED" if out.method == "failed" else
               f"tuned ({out.trials} trials, {out.seconds:.0f} s)" if out.method == tuning.TUNED else "default")
        rows.append([job.model, "+".join(job.tasks), job.seed, how,
                     f"{out.best_value:.4f}" if out.best_value is not None else "",
                     primary_summary(r) if not bad else (r.get("status") or ""),
                     tuning.params_text(out.params), (out.error or r.get("error") or "")[:80]])
    click.echo(tabulate(rows, ["model", "tasks", "seed", "parameters", "best validation", "test",
                               "chosen", "error"], tablefmt="github"))
    click.echo(f"{len(jobs) - failed} ok, {failed} failed; results in {results_dir}")
    if failed:
        raise SystemExit(1)
