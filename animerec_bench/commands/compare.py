"""``animerec-bench compare A B``: paired bootstrap deltas (B − A) between two models' stored results.

No model is re-fitted: the per-user test values each result keeps beside its JSON are resampled
(:mod:`animerec_bench.significance`).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder of result files holding both models (ignored when A and B are result folders).")
@click.option("--dataset", default=None, help="Data set to compare on (needed when the results hold several).")
@click.option("--protocol", default=None, help="Protocol to compare under (needed when the results hold several).")
@click.option("--task", "task_names", multiple=True,
              help="Task(s) to compare (default: every task both have per-user values for).")
@click.option("--draws", type=click.IntRange(min=100), default=None,
              help="Bootstrap draws per seed (default 1000).")
def compare(a: str, b: str, results_dir: str, dataset: str | None, protocol: str | None,
            task_names: tuple[str, ...], draws: int | None) -> None:
    """Compare model B with model A: B − A per seed and over seeds, 95% intervals, p-values.

    A and B are two model names in one --results folder, or two result folders (each holding
    one model's results)."""
    from .. import significance
    from ..errors import UserError
    from ..leaderboard import escape
    from ..results import load_all, load_per_user
    from ..tasks import NAMES, TASKS

    for t in task_names:
        if t not in NAMES:
            raise UserError(f"unknown task {t!r}; known: {', '.join(NAMES)}")
    folders = Path(a).is_dir() and Path(b).is_dir()
    if folders:
        sides = [(_only_model(rs, folder), rs, folder) for folder, rs in ((a, load_all(a)), (b, load_all(b)))]
    else:
        loaded = load_all(results_dir)
        sides = [(a, loaded, results_dir), (b, loaded, results_dir)]
    picked = []
    for name, loaded, where in sides:
        ok = [r for r in loaded if r["status"] == "ok" and r["model"]["name"] == name]
        if not ok:
            known = sorted({r["model"]["name"] for r in loaded if r["status"] == "ok"})
            raise UserError(f"no successful result of model {name!r} in {where}; "
                            f"models there: {', '.join(known) or '(none)'}")
        picked.append(ok)
    key = _dataset_protocol(picked[0] + picked[1], dataset, protocol)
    per_side = []
    for (name, _, _), ok in zip(sides, picked):
        ok = [r for r in ok if (r["dataset"]["name"], r["protocol"]) == key]
        per_side.append(_by_task_and_seed(name, ok, load_per_user))
    tasks = [t for t in (task_names or NAMES) if t in per_side[0] and t in per_side[1]]
    if not tasks:
        wanted = ", ".join(task_names) if task_names else "any task"
        missing = [n for (n, _, _), p in zip(sides, per_side) if not p]
        why = (f"; model(s) {', '.join(repr(m) for m in missing)} have no per-user file (results written before "
               f"per-user values were kept: run them again)") if missing else ""
        raise UserError(f"models {sides[0][0]!r} and {sides[1][0]!r} have no per-user values for {wanted} in "
                        f"common on {key[0]} / {key[1]}{why}")
    from tabulate import tabulate

    out = []
    for t in tasks:
        metric = significance.METRIC[t]
        spec = TASKS[t]
        try:
            per_seed, combined = significance.compare(t, per_side[0][t], per_side[1][t],
                                                      draws or significance.DRAWS)
        except ValueError as exc:
            raise UserError(f"task {t}: {sides[0][0]!r} and {sides[1][0]!r}: {exc}") from None
        better = "higher" if t != "rating" else "lower"
        rows = []
        for seed, iv in per_seed.items():
            rows.append([str(seed), str(iv.users), f"{per_side[0][t][seed].metric(t):.4f}",
                         f"{per_side[1][t][seed].metric(t):.4f}", f"{iv.estimate:+.4f}",
                         f"{iv.low:+.4f} to {iv.high:+.4f}", f"{iv.p:.4f}"])
        rows.append(["combined", str(combined.users), "", "", f"{combined.estimate:+.4f}",
                     f"{combined.low:+.4f} to {combined.high:+.4f}", f"{combined.p:.4f}"])
        headers = ["seed", "users", f"A {metric}", f"B {metric}", "B − A", "95% CI", "p"]
        form = "" if spec.primary == metric else f"; the per-user form of {spec.primary}"
        out += [f"### {t}: {metric} ({better} is better{form})",
                "", f"A = {escape(sides[0][0])}, B = {escape(sides[1][0])}; {escape(key[0])} / protocol "
                f"{escape(key[1])}; paired bootstrap over "
                f"common test users, {draws or significance.DRAWS} draws per seed, seeds averaged draw by draw; "
                f"p two-sided.", "",
                tabulate(rows, headers, tablefmt="github", disable_numparse=True,
                         colalign=["left"] + ["right"] * (len(headers) - 1)), ""]
    click.echo("\n".join(out).rstrip("\n"))


def _only_model(loaded: list[dict], folder: str) -> str:
    from ..errors import UserError

    names = sorted({r["model"]["name"] for r in loaded if r["status"] == "ok"})
    if len(names) != 1:
        raise UserError(f"result folder {folder} holds {len(names)} models with successful results "
                        f"({', '.join(names) or 'none'}); expected one (or give two model names and --results)")
    return names[0]


def _dataset_protocol(rs: list[dict], dataset: str | None, protocol: str | None) -> tuple[str, str]:
    from ..errors import UserError

    found = sorted({(r["dataset"]["name"], r["protocol"]) for r in rs
                    if (dataset is None or r["dataset"]["name"] == dataset)
                    and (protocol is None or r["protocol"] == protocol)})
    if not found:
        raise UserError(f"no results of these models on data set {dataset or '(any)'} / protocol "
                        f"{protocol or '(any)'}")
    if len(found) > 1:
        raise UserError(f"the results span {', '.join(f'{d} / {p}' for d, p in found)}: choose one with "
                        f"--dataset (and --protocol)")
    return found[0]


def _by_task_and_seed(name: str, rs: list[dict], load_per_user) -> dict:
    """``{task: {seed: PerUser}}`` from the latest result per (task, seed) with per-user values."""
    out: dict = {}
    for r in sorted(rs, key=lambda r: (str(r.get("started_at")), r.get("_file", ""))):
        found = load_per_user(r) or {}
        for task, pu in found.items():
            out.setdefault(task, {})[int(r["split"]["seed"])] = pu
    return out
