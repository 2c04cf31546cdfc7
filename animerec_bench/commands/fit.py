"""``animerec-bench fit``: fit a model on every example of a data set and save it for ``recommend``."""

from __future__ import annotations

import time

import click

from animerec_bench.commands.options import load_plugins, plugins_dir_option


def progress_printer(name: str):
    """A fit's progress reports as lines on stderr (``ease: l2 100, seconds 4.2``)."""
    started = time.perf_counter()

    def report(info) -> None:
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()
                 if v is not None and k != "seconds"]
        click.echo(f"  {name}: {', '.join(parts) or 'working'} ({time.perf_counter() - started:.0f} s)", err=True)

    return report


def dataset_options(command):
    command = click.option("--protocol", default="v1", show_default=True,
                           help="Protocol whose label rules make the examples (nothing is held out).")(command)
    return click.option("--dataset", default="mal2016-5k", show_default=True, help="Registered data set.")(command)


@click.command("fit")
@click.option("-m", "--model", required=True, metavar="NAME", help="Model to fit (one with save/load: see `list`).")
@dataset_options
@click.option("--refit", is_flag=True, help="Fit again even when a saved model of the same identity exists.")
@plugins_dir_option
def fit(model: str, dataset: str, protocol: str, refit: bool, plugins_dir: str | None) -> None:
    """Fit MODEL on every example of the data set (no test hold-out: for use, not for scoring)
    and save it under the data home, keyed by its identity; `recommend` reuses it."""
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.execution import fitting

    registry, _ = load_plugins(plugins_dir)
    fit_plan = fitting.plan(registry, model, registry.dataset(dataset), get_protocol(protocol))
    found, fitted_now = fitting.fitted(
        fit_plan, refit=refit, on_progress=progress_printer(model),
        on_fit_start=lambda: click.echo(f"fitting {model} on all of {dataset} ({protocol} rules)...", err=True))
    verb = f"fitted in {found.manifest['fit_seconds']:.1f} s and saved" if fitted_now else "already saved"
    click.echo(f"{model} on {dataset}: {verb}: {found.folder}")
