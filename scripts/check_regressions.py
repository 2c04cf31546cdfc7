"""Compare a PR's results with main's: a Markdown table, and exit 1 on an unintended regression.

    python scripts/check_regressions.py BASE_RESULTS NEW_RESULTS [--threshold 0.02] [--allow MODEL ...]

Per (data set, protocol, model, task): the mean over seeds of the task's primary metric, from
the latest ok result per seed (read with ``animerec_bench.results_frame``). A change worse than
``--threshold`` (relative, in the metric's own direction) is a regression; it fails the check
unless the PR meant to change that model: it is named with ``--allow`` or its ``model.version``
differs between the two folders (a model's version is bumped when its numbers are meant to move).
Used by ``scripts/leaderboard-compare.sh`` in ``.github/workflows/leaderboards.yml``.
"""

from __future__ import annotations

import argparse
import sys

from animerec_bench import results_frame
from animerec_bench.errors import UserError
from animerec_bench.tasks import TASKS

KEYS = ["dataset", "protocol", "model", "task"]


def primary_means(folder: str):
    """(data set, protocol, model, task) -> (mean primary metric, seeds, model versions)."""
    frame = results_frame(folder)
    out = {}
    ok = frame[frame["status"] == "ok"].sort_values("started_at")
    for task in TASKS.values():
        column = f"metrics.{task.name}.{task.primary}"
        if column not in ok.columns:
            continue
        rows = ok[ok[column].notna()]
        latest = rows.drop_duplicates(["dataset", "protocol", "model", "seed"], keep="last")  # whole rows
        for (dataset, protocol, model), group in latest.groupby(["dataset", "protocol", "model"]):
            out[(dataset, protocol, model, task.name)] = (float(group[column].mean()), len(group),
                                                          frozenset(map(str, group["model_version"])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--threshold", type=float, default=0.02,
                        help="relative change of the primary metric that counts as a regression (default 0.02)")
    parser.add_argument("--allow", nargs="*", default=[], metavar="MODEL",
                        help="models the change is meant to affect (their regressions are reported, not failed)")
    args = parser.parse_args(argv)
    if not 0 < args.threshold < 1:
        print(f"error: --threshold {args.threshold}: expected a fraction between 0 and 1", file=sys.stderr)
        return 2
    try:
        base, new = primary_means(args.base), primary_means(args.new)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    allowed = set(args.allow)
    lines = [f"### Primary metrics against the base (regression: worse by more than {args.threshold:.1%})", "",
             "| data set | model | task | metric | base | this PR | change | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    failed = []
    for key in sorted(set(base) | set(new)):
        dataset, protocol, model, task = key
        spec = TASKS[task]
        b, n = base.get(key), new.get(key)
        if b is None or n is None:
            verdict = "new" if b is None else "missing in this PR"
            change = ""
        else:
            delta = (n[0] - b[0]) / abs(b[0]) if b[0] else (n[0] - b[0])
            better = delta if spec.higher_is_better else -delta
            change = f"{delta:+.2%}"
            if better >= -args.threshold:
                verdict = "ok"
            elif model in allowed or b[2] != n[2]:
                verdict = "regression (intended: " + ("--allow" if model in allowed else "version changed") + ")"
            else:
                verdict = "**REGRESSION**"
                failed.append(f"{model} {task} {spec.primary} {b[0]:.4f} -> {n[0]:.4f} ({change})")
        fmt = lambda v: f"{v[0]:.4f} ({v[1]} seed{'s' * (v[1] != 1)})" if v else "–"  # noqa: E731
        lines.append(f"| {dataset}/{protocol} | {model} | {task} | {spec.primary} | {fmt(b)} | {fmt(n)} | "
                     f"{change} | {verdict} |")
    print("\n".join(lines))
    for line in failed:
        print(f"error: regression beyond {args.threshold:.1%} on a model this change did not declare: {line}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
