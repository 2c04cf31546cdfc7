"""Options shared by several commands, and loading the plugins they name."""

from __future__ import annotations

import click

# No click ``envvar``: click reads an empty variable as unset, and ``ANIMEREC_BENCH_PLUGINS_DIR=``
# must mean "no loose plugin files" (plugins.resolve_plugins_dir reads it).
plugins_dir_option = click.option(
    "--plugins-dir", type=click.Path(file_okay=False, path_type=str), default=None,
    help="Folder of loose *.py plugin files to import (env: ANIMEREC_BENCH_PLUGINS_DIR; empty: none). "
         "Default: ./plugins, only when the current folder is an animerec-bench checkout.")


#: How long ``list``, ``data info`` and ``data export-split`` give the plugin probe (``run`` and
#: ``tune`` give it ``--timeout``); ANIMEREC_BENCH_PROBE_SECONDS overrides it.
PROBE_SECONDS = 60.0


def probe_seconds() -> float:
    import math
    import os

    try:
        value = float(os.environ.get("ANIMEREC_BENCH_PROBE_SECONDS", PROBE_SECONDS))
    except ValueError:
        value = PROBE_SECONDS
    return value if math.isfinite(value) and value > 0 else PROBE_SECONDS


def load_plugins(plugins_dir: str | None, *, deadline: float | None = None):
    """Resolve the plugins folder, say on stderr which loose files will run, load the registry.

    Third-party plugins are first imported in a short-lived probe process (see ``plugins.probe``),
    killed after ``deadline`` seconds (default :func:`probe_seconds`), so one that exits or hangs
    stops every command with one line naming it instead of ending or hanging it; the built-in
    plugins are imported here while it runs. Returns
    (registry, resolved folder).
    """
    from animerec_bench.plugins.loader import import_builtins, loose_plugin_files, resolve_plugins_dir
    from animerec_bench.plugins.probe import Probe
    from animerec_bench.plugins.registry import load_registry

    folder = resolve_plugins_dir(plugins_dir)
    if folder.warning:
        click.echo(f"warning: {folder.warning}", err=True)
    files = loose_plugin_files(folder.path)
    if files:
        click.echo(f"loading plugin files from {folder.path} ({folder.source}): "
                   f"{', '.join(p.name for p in files)}", err=True)
    with Probe(folder.path, deadline if deadline is not None else probe_seconds()) as probe:
        import_builtins()  # no risk, and the probe process runs meanwhile
        probe.wait()
    return load_registry(folder.path), folder.path


publish_option = click.option(
    "--publish", is_flag=True,
    help="Use the published board of this checkout (./results, ./leaderboards) instead of your own in the "
         "data home; an error outside a checkout.")


def results_folder(results_dir: str | None, publish: bool) -> str:
    """Where ``run``/``tune`` write: ``--results``, else ``--publish``'s ``./results``, else the data home's."""
    from animerec_bench.errors import UserError
    from animerec_bench.support import paths

    if publish and results_dir is not None:
        raise UserError("give either --publish or --results DIR, not both")
    if publish:
        return str(paths.published()[0])
    return results_dir if results_dir is not None else str(paths.results_dir())


#: numpy's seeds (``np.random.seed``, which Keras' seeding calls) must be below this.
SEED_LIMIT = 2**32
#: ``--seeds`` above this is a typo, not a study (each seed is a full set of jobs).
MAX_SEEDS = 1000


def _apply(decorators):
    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def job_options(*, all_help: str, model_help: str, seeds_help: str, seed_help: str, param_help: str,
                timeout_help: str, results_help: str):
    """The options ``run`` and ``tune`` share (which models, tasks, data set, protocol, seeds,
    parameters, time limit, memory limit, Keras backend, results folder, plugins), in one place so
    the two cannot drift; the help texts say what each command does with them. Read them with
    :func:`plan_run`."""
    from animerec_bench.tasks import NAMES as TASK_NAMES

    return _apply([
        click.option("--all", "run_all", is_flag=True, help=all_help),
        click.option("--heavy", is_flag=True,
                     help="With --all: the heavy models too (a fit takes minutes on a CPU; `list` marks them)."),
        click.option("-m", "--model", "models", multiple=True, metavar="NAME", help=model_help),
        click.argument("more_models", nargs=-1, metavar="[NAME]..."),
        click.option("--task", "tasks", multiple=True, type=click.Choice(TASK_NAMES),
                     help="Only this task (repeatable; default: every task a model serves)."),
        click.option("--dataset", default="mal2016-5k", show_default=True, help="Registered data set."),
        click.option("--protocol", default="v1", show_default=True, help="Protocol (split and label rules)."),
        click.option("--seeds", type=click.IntRange(min=1), default=None, help=seeds_help),
        click.option("--seed", type=click.IntRange(min=0), default=None, help=seed_help),
        click.option("--param", "params", multiple=True, metavar="MODEL.KEY=VALUE", help=param_help),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=1800.0, show_default=True,
                     help=timeout_help),
        click.option("--memory-limit", "memory_limit", type=click.IntRange(min=1), default=None, metavar="MB",
                     help="Cap each job's address space (RLIMIT_AS); exceeding it fails the job as out of memory."),
        click.option("--backend", "keras_backend", default=None, metavar="NAME",
                     help="Keras backend of the Keras models' jobs: tensorflow or jax (default: KERAS_BACKEND, "
                          "else Keras' own); recorded with the hardware."),
        click.option("--results", "results_dir", type=click.Path(file_okay=False), default=None, help=results_help),
        publish_option,
        plugins_dir_option,
    ])


def job_seeds(seeds: int | None, seed: int | None, timeout: float) -> list[int]:
    """The seeds ``--seeds N`` (0..N-1) or ``--seed S`` (default 0) name, each within numpy's and a
    sane limit, after checking that ``--timeout`` is finite."""
    import math

    from animerec_bench.errors import UserError

    if seeds is not None and seed is not None:
        raise UserError("give either --seeds N or --seed S, not both")
    if not math.isfinite(timeout):
        raise UserError(f"--timeout {timeout}: expected a finite number of seconds greater than 0")
    if seed is not None and seed >= SEED_LIMIT:
        raise UserError(f"--seed {seed}: seeds must be below 2**32 = {SEED_LIMIT} (numpy's limit)")
    if seeds is not None and seeds > MAX_SEEDS:
        raise UserError(f"--seeds {seeds}: at most {MAX_SEEDS} seeds (each seed is a full set of jobs)")
    return list(range(seeds)) if seeds is not None else [seed if seed is not None else 0]


def plan_jobs(*, run_all: bool, models: tuple, more_models: tuple, tasks: tuple, seeds: list[int], params: tuple,
              timeout: float, plugins_dir: str | None, check_model=None, protocol: str = "v1",
              heavy: bool = False):
    """Load the plugins (their warnings on stderr), pick the models, read ``--param`` and plan the
    jobs: ``(registry, plugins folder, model names, jobs)``. ``check_model(registry, name)``
    (optional) may refuse a model before any parameter is read. On a cold-start ``protocol``,
    models that cannot score unseen anime are skipped, one line each (:func:`cold_start_models`)."""
    from animerec_bench.execution import runner

    registry, plugins_path = load_plugins(plugins_dir, deadline=timeout)
    for err in registry.warnings + registry.errors:
        click.echo(f"warning: {err}", err=True)
    names = runner.select_models(registry, tuple(models) + tuple(more_models), run_all, heavy)
    # Only those that would take part: a heavy model of other protocols is not missed here.
    left_out = [name for name in runner.heavy_left_out(registry, run_all, heavy)
                if _why_not(registry.model(name), protocol) is None]
    if left_out:
        click.echo(f"left out the heavy model(s) {', '.join(left_out)} (a fit takes minutes on a CPU): "
                   f"add --heavy to run them too", err=True)
    names = cold_start_models(registry, names, protocol)
    if check_model is not None:
        for name in names:
            check_model(registry, name)
    overrides = runner.parse_params(params, registry, names)
    return registry, plugins_path, names, runner.plan(registry, names, tuple(tasks) or None, seeds, overrides)


def check_backend(name: str) -> None:
    """``--backend NAME``: a backend this package supports and that is installed, else one line."""
    import importlib.util

    from animerec_bench.errors import UserError
    from animerec_bench.execution.runner import KERAS_BACKENDS

    if name not in KERAS_BACKENDS:
        raise UserError(f"--backend {name}: unknown Keras backend; expected one of {', '.join(KERAS_BACKENDS)}")
    if importlib.util.find_spec(name) is None:
        extra = " (pip install 'animerec-bench[jax]')" if name == "jax" else ""
        raise UserError(f"--backend {name}: {name} is not installed{extra}")


def plan_run(*, run_all: bool, models: tuple, more_models: tuple, tasks: tuple, dataset: str, protocol: str,
             seeds: list[int], params: tuple, timeout: float, memory_limit: int | None, keras_backend: str | None,
             results_dir: str, plugins_dir: str | None, check_model=None, heavy: bool = False):
    """The one place ``run`` and ``tune`` build their :class:`.runner.RunContext`: load the plugins
    (once for the whole run), plan the jobs (:func:`plan_jobs`), and gather what every job shares.
    Returns ``(ctx, jobs)``."""
    from pathlib import Path

    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.execution import runner
    from animerec_bench.support.machine import machine_info

    if keras_backend is not None:
        check_backend(keras_backend)
    registry, plugins_path, _, jobs = plan_jobs(
        run_all=run_all, models=models, more_models=more_models, tasks=tasks, seeds=seeds, params=params,
        timeout=timeout, plugins_dir=plugins_dir, check_model=check_model, protocol=protocol, heavy=heavy)
    commit, dirty = runner.git_revision()
    ctx = runner.RunContext(registry=registry, dataset=registry.dataset(dataset), protocol=get_protocol(protocol),
                            results_dir=Path(results_dir), plugins_dir=plugins_path and str(plugins_path),
                            timeout=timeout, memory_limit_mb=memory_limit, commit=commit, dirty=dirty,
                            parent_machine=machine_info(), keras_backend=keras_backend)
    return ctx, jobs


def _why_not(entry, protocol: str) -> str | None:
    """Why the registered model ``entry`` does not take part in ``protocol``; None when it does."""
    from animerec_bench.data.protocol import get_protocol

    rules = get_protocol(protocol)
    accepted = {protocol, rules.models_of} - {None}  # season-v2 takes season-v1's models
    if entry.protocols is not None and not accepted & set(entry.protocols):
        return f"it takes part in protocol(s) {', '.join(entry.protocols)} only"
    if rules.cold_items and not entry.item_features:
        return (f"protocol {protocol} ranks anime no training pair has, and {entry.name} takes no anime "
                f"features (item_features)")
    return None


def cold_start_models(registry, names: list[str], protocol: str) -> list[str]:
    """``names`` less the models that do not take part in ``protocol``, each skipped with one
    line on stderr, not failed: on a protocol that holds anime out whole (issue 23), those that
    take no anime features and so cannot score them; anywhere, those whose ``protocols`` leave
    it out. UserError when none is left."""
    from animerec_bench.errors import UserError

    kept = []
    for name in names:
        why = _why_not(registry.model(name), protocol)
        if why is not None:
            click.echo(f"skipped {name}: {why}", err=True)
        else:
            kept.append(name)
    if not kept:
        raise UserError(f"protocol {protocol}: none of the models asked for takes part in it (on a cold-start "
                        f"protocol a model must declare item_features = True; `animerec-bench list` shows models)")
    return kept
