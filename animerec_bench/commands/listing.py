"""``animerec-bench list``: the models, data sets and tasks the plugins registered."""

from __future__ import annotations

import json

import click

from animerec_bench.commands.options import load_plugins, plugins_dir_option


def describe(reg) -> dict:
    """Everything ``list`` shows about a registry, as plain data."""
    from animerec_bench.model import describe as describe_model
    from animerec_bench.tasks import TASKS

    models = [{
        "name": name, "description": describe_model(e.cls), "tasks": list(e.tasks), "joint": e.joint,
        "baseline": e.baseline,
        "params": dict(e.params), "plugin": e.plugin, "plugin_version": e.plugin_version,
        "version": e.version, "framework": e.framework, "ranked_by": _ranked_by(e),
        "item_features": e.item_features, "protocols": list(e.protocols) if e.protocols else None,
        "heavy": e.heavy,
    } for name, e in reg.models.items()]
    datasets = [{"name": ds.name, "synthetic": ds.synthetic, "source": ds.source, "licence": ds.licence,
                 "plugin": reg.dataset_plugins[ds.name]} for ds in reg.datasets.values()]
    tasks = [{"name": t.name, "description": t.description} for t in TASKS.values()]
    return {"models": models, "datasets": datasets, "tasks": tasks, "errors": reg.errors,
            "warnings": reg.warnings}


def _ranked_by(entry) -> str:
    """How ``list`` says a model gets its ranking row (the same rule as the runner's plan)."""
    from animerec_bench.tasks import RANKING

    return RANKING.ranking_source(entry.cls) or "-"


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@plugins_dir_option
def list_(as_json: bool, plugins_dir: str | None) -> None:
    """List registered models (tasks, hyperparameters, plugin), data sets and tasks."""
    from tabulate import tabulate

    info = describe(load_plugins(plugins_dir)[0])
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
    else:
        rows = [[m["name"], m["description"], ", ".join(m["tasks"]), ("joint" if m["joint"] else "per task")
                 + (", anime features" if m["item_features"] else "") + (", heavy" if m["heavy"] else ""),
                 f'{m["plugin"]} {m["plugin_version"]}'] for m in info["models"]]
        click.echo(tabulate(rows, ["model", "what it is", "tasks", "training", "plugin"], tablefmt="github"))
        click.echo("Hyperparameters and their defaults: animerec-bench list --json (models[].params).")
        click.echo()
        click.echo(tabulate([[d["name"], "yes" if d["synthetic"] else "no", d["plugin"]] for d in info["datasets"]],
                            ["data set", "synthetic", "plugin"], tablefmt="github"))
        click.echo()
        click.echo(tabulate([[t["name"], t["description"]] for t in info["tasks"]], ["task", "scoring"],
                            tablefmt="github"))
    for warning in info["warnings"]:  # a skipped data set: the rest is listed, the exit status stays 0
        click.echo(f"warning: {warning}", err=True)
    for err in info["errors"]:
        click.echo(f"error: {err}", err=True)
    if info["errors"]:
        raise SystemExit(1)
