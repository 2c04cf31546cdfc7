"""``animerec-bench compare A B``: paired bootstrap deltas (B − A) between two models' stored results;
``compare --base DIR --head DIR``: every model of two result folders, and the leaderboards
workflow's regression gate (:mod:`animerec_bench.reports.regression_gate`).

No model is re-fitted: the per-user test values each result keeps beside its JSON are resampled
(:mod:`animerec_bench.evaluation.significance`).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compare")
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option("--base", "base_dir", type=click.Path(file_okay=False), default=None,
              help="With --head: compare two whole result folders, every (data set, model, task) either holds, in "
                   "one Markdown table (the leaderboards workflow's regression gate).")
@click.option("--head", "head_dir", type=click.Path(file_okay=False), default=None,
              help="The result folder compared with --base (e.g. a pull request's results).")
@click.option("--fail-on-regression", "threshold", default=None, metavar="FRACTION",
              help="With --base/--head: exit 1 when a model's primary metric got worse by more than FRACTION of "
                   "its base value (relative: 0.02 or 2%) and, where both sides have per-user values, "
                   "significantly (paired bootstrap p < 0.05).")
@click.option("--expect-change", "expect_change", multiple=True, metavar="NAME",
              help="With --fail-on-regression: a model the change means to alter (repeatable); its regression is "
                   "reported, not failed. A model whose version differs between the folders counts too.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of result files holding both models (ignored when A and B are result folders). "
                   "Default: your own results in the data home, the folder run and leaderboard use; the "
                   "published ones: --results results.")
@click.option("--variant", type=click.Choice(["default", "tuned"]), default=None,
              help="Compare each model's default-parameter results or its tuned ones (animerec-bench tune). "
                   "Default: default where a model has them, else tuned; the output says which.")
@click.option("--dataset", default=None, help="Data set to compare on (needed when the results hold several).")
@click.option("--protocol", default=None, help="Protocol to compare under (needed when the results hold several).")
@click.option("--task", "task_names", multiple=True,
              help="Task(s) to compare (default: every task both have per-user values for).")
@click.option("--draws", type=click.IntRange(min=100), default=None,
              help="Bootstrap draws (default 1000; each draw takes each user once for all seeds).")
def compare(a: str | None, b: str | None, base_dir: str | None, head_dir: str | None, threshold: str | None,
            expect_change: tuple[str, ...], results_dir: str | None, variant: str | None, dataset: str | None,
            protocol: str | None, task_names: tuple[str, ...], draws: int | None) -> None:
    """Compare model B with model A: B − A per seed and over seeds, 95% intervals, p-values.

    A and B are two model names in one --results folder, or two result folders (each holding
    one model's results). Or --base DIR --head DIR: every model of two result folders, one
    table, and with --fail-on-regression a gate (exit 1 on an undeclared regression)."""
    from animerec_bench.errors import UserError
    from animerec_bench.evaluation import significance
    from animerec_bench.results.store import load_per_user
    from animerec_bench.tasks import NAMES

    for t in task_names:
        if t not in NAMES:
            raise UserError(f"unknown task {t!r}; known: {', '.join(NAMES)}")
    if base_dir is not None or head_dir is not None:
        if a is not None or b is not None:
            raise UserError("give either two models (A B) or --base DIR --head DIR, not both")
        if base_dir is None or head_dir is None:
            raise UserError(f"--{'head' if head_dir is None else 'base'} DIR is missing: --base and --head go together")
        _compare_folders(base_dir, head_dir, _threshold(threshold), set(expect_change), dataset, protocol,
                         task_names, draws or significance.DRAWS)
        return
    if threshold is not None or expect_change:
        raise UserError("--fail-on-regression and --expect-change go with --base DIR --head DIR")
    if a is None or b is None:
        raise UserError("give two models A B (or two result folders), or --base DIR --head DIR")
    sides = _sides(a, b, results_dir)
    picked = [_pick(name, loaded, where, variant) for name, loaded, where in sides]
    key = _dataset_protocol([r for _, ok in picked for r in ok], dataset, protocol)
    per_side = []
    for (name, _, _), (_, ok) in zip(sides, picked):
        ok = [r for r in ok if (r["dataset"]["name"], r["protocol"]) == key]
        per_side.append(_by_task_and_seed(name, ok, load_per_user))
    labels = [f"{name} ({which})" for (name, _, _), (which, _) in zip(sides, picked)]
    tasks = [t for t in (task_names or NAMES) if t in per_side[0] and t in per_side[1]]
    if not tasks:
        wanted = ", ".join(task_names) if task_names else "any task"
        missing = [n for n, p in zip(labels, per_side) if not p]
        why = (f"; model(s) {', '.join(repr(m) for m in missing)} have no per-user file (results written before "
               f"per-user values were kept: run them again)") if missing else ""
        raise UserError(f"models {labels[0]} and {labels[1]} have no per-user values for {wanted} in "
                        f"common on {key[0]} / {key[1]}{why}")
    out = []
    for t in tasks:
        out += _task_table(t, per_side, labels, key, draws or significance.DRAWS)
    click.echo("\n".join(out).rstrip("\n"))


def _task_table(t: str, per_side: list[dict], labels: list[str], key: tuple[str, str], draws: int) -> list[str]:
    """One task's B − A table: per seed and combined, with the 95% interval and p."""
    from tabulate import tabulate

    from animerec_bench.errors import UserError
    from animerec_bench.evaluation import significance
    from animerec_bench.reports.leaderboard import escape
    from animerec_bench.tasks import TASKS

    metric, spec = significance.METRIC[t], TASKS[t]
    try:
        per_seed, combined = significance.compare(t, per_side[0][t], per_side[1][t], draws)
    except ValueError as exc:
        raise UserError(f"task {t}: {labels[0]} and {labels[1]}: {exc}") from None
    rows = [[str(seed), str(iv.users), f"{per_side[0][t][seed].metric(t):.4f}", f"{per_side[1][t][seed].metric(t):.4f}",
             f"{iv.estimate:+.4f}", f"{iv.low:+.4f} to {iv.high:+.4f}", significance.format_p(iv.p, draws)]
            for seed, iv in per_seed.items()]
    rows.append(["combined", str(combined.users), "", "", f"{combined.estimate:+.4f}",
                 f"{combined.low:+.4f} to {combined.high:+.4f}", significance.format_p(combined.p, draws)])
    headers = ["seed", "users", f"A {metric}", f"B {metric}", "B − A", "95% CI", "p"]
    better = "higher" if spec.higher_is_better else "lower"
    form = "" if spec.primary == metric else f"; the per-user form of {spec.primary}"
    return [f"### {t}: {metric} ({better} is better{form})", "",
            f"A = {escape(labels[0])}, B = {escape(labels[1])}; {escape(key[0])} / protocol {escape(key[1])}; paired "
            f"bootstrap over common test users, each user drawn once for all seeds ({draws} draws), seeds averaged "
            f"draw by draw; p two-sided.", "",
            tabulate(rows, headers, tablefmt="github", disable_numparse=True,
                     colalign=["left"] + ["right"] * (len(headers) - 1)), ""]


def _sides(a: str, b: str, results_dir: str | None) -> list[tuple[str, list[dict], str]]:
    """(model name, the results holding it, where they came from) for A and B."""
    from animerec_bench.results.store import load_all
    from animerec_bench.support import paths

    if Path(a).is_dir() and Path(b).is_dir():
        return [(_only_model(rs, folder), rs, folder) for folder, rs in ((a, load_all(a)), (b, load_all(b)))]
    folder = results_dir or str(paths.results_dir())
    loaded = load_all(folder)
    return [(a, loaded, folder), (b, loaded, folder)]


def _pick(name: str, loaded: list[dict], where: str, variant: str | None) -> tuple[str, list[dict]]:
    """(the variant compared, the ok results of model ``name`` in it): ``variant``, else default
    where the model has default results, else tuned. One line naming the models there otherwise."""
    from animerec_bench.errors import UserError
    from animerec_bench.plugins.registry import did_you_mean
    from animerec_bench.results.store import Result

    ok = [r for r in loaded if r["status"] == "ok" and r["model"]["name"] == name]
    if not ok:
        known = sorted({r["model"]["name"] for r in loaded if r["status"] == "ok"})
        raise UserError(f"no successful result of model {name!r} in {where}{did_you_mean(name, known)}; "
                        f"models there: {', '.join(known) or '(none)'}")
    by_variant = {v: [r for r in ok if Result(r).tuned == (v == "tuned")] for v in ("default", "tuned")}
    which = variant or ("default" if by_variant["default"] else "tuned")
    if not by_variant[which]:
        raise UserError(f"model {name!r} has no {which} results in {where} (it has "
                        f"{' and '.join(v for v in by_variant if by_variant[v])} ones): --variant")
    return which, by_variant[which]


def _only_model(loaded: list[dict], folder: str) -> str:
    from animerec_bench.errors import UserError

    names = sorted({r["model"]["name"] for r in loaded if r["status"] == "ok"})
    if len(names) != 1:
        raise UserError(f"result folder {folder} holds {len(names)} models with successful results "
                        f"({', '.join(names) or 'none'}); expected one (or give two model names and --results)")
    return names[0]


def _dataset_protocol(rs: list[dict], dataset: str | None, protocol: str | None) -> tuple[str, str]:
    from animerec_bench.errors import UserError

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


def _threshold(text: str | None) -> float | None:
    """``--fail-on-regression``: a fraction of the base value, ``0.02`` or ``2%``."""
    from animerec_bench.errors import UserError

    if text is None:
        return None
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:  # also refuses nan
        raise UserError(f"--fail-on-regression {text}: expected a relative change between 0 and 1 "
                        f"(a fraction of the base value, e.g. 0.02 or 2%)")
    return value


def _compare_folders(base_dir: str, head_dir: str, threshold: float | None, expect_change: set[str],
                     dataset: str | None, protocol: str | None, task_names: tuple[str, ...], draws: int) -> None:
    """``compare --base DIR --head DIR``: the table on stdout; exit 1 with one line on a regression."""
    from pathlib import Path

    from animerec_bench.errors import UserError
    from animerec_bench.reports import regression_gate as gate
    from animerec_bench.results.store import forget_missing_per_user, load_all

    found = {}
    for flag, folder in (("--base", base_dir), ("--head", head_dir)):
        if not Path(folder).is_dir():
            raise UserError(f"{flag} {folder}: no such result folder")
        problems: list[str] = []
        loaded = load_all(folder, problems)
        for problem in problems:
            click.echo(f"warning: skipped {problem}", err=True)
        gate.check_content(loaded, require_hash=flag == "--head")
        for warning in forget_missing_per_user(loaded):
            click.echo(f"warning: {warning}", err=True)
        found[flag] = gate.sides(loaded, dataset=dataset, protocol=protocol, tasks=task_names)
    unknown = sorted(expect_change - {s.model for side in found.values() for s in side.values()})
    if unknown:
        click.echo(f"warning: --expect-change {', '.join(unknown)}: no such model in {base_dir} or {head_dir}",
                   err=True)
    rows = gate.compare_folders(found["--base"], found["--head"], threshold=threshold, expect_change=expect_change,
                                draws=draws)
    click.echo(gate.markdown(rows, base_name=base_dir, head_name=head_dir, threshold=threshold, draws=draws))
    reason = gate.failure_line(rows, threshold, draws) if threshold is not None else None
    if reason:
        click.echo(f"Error: {reason}", err=True)
        raise SystemExit(1)
