"""Where a run's wall time goes, job by job, from its result files (``timing``): the model's fit,
the ranking of every anime for every test user, the framework's import (TensorFlow), the rest.

    .venv/bin/animerec-bench run --all --results /tmp/runall
    .venv/bin/python benchmarks/run_all_parts.py /tmp/runall

Prints a Markdown table, costliest job first, and the totals (what `run --all`'s ≤ 90 s goal
has to cut: issue 26). Results are read as the boards read them (``results.store.load_all``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from animerec_bench.results.store import load_all

PARTS = ("fit_seconds", "ranking_seconds", "framework_import_seconds")


def job_rows(folder: Path) -> list[dict]:
    """One row per ok result: its label and the seconds of each part (the rest: ``other``)."""
    rows: list[dict] = []
    problems: list[str] = []
    results = load_all(folder, problems)
    for line in problems:  # a bad file is named and skipped, as the boards do
        print(line, file=sys.stderr)
    for result in results:
        timing = result.get("timing") or {}
        if result.get("status") != "ok" or "job_seconds" not in timing:
            continue
        parts = {p: float(timing.get(p) or 0.0) for p in PARTS}
        total = float(timing["job_seconds"])
        label = f"{result['model']['name']} [{'+'.join(result['tasks'])}]"
        rows.append({"job": label, "job_seconds": total, **parts, "other": total - sum(parts.values())})
    return sorted(rows, key=lambda r: -r["job_seconds"])


def table(rows: list[dict]) -> str:
    keys = ("job_seconds", *PARTS, "other")
    head = "| job | job s | fit | ranking | framework import | other |\n|---|---|---|---|---|---|"
    lines = [head] + [f"| {r['job']} | " + " | ".join(f"{r[k]:.1f}" for k in keys) + " |" for r in rows]
    totals = {k: sum(r[k] for r in rows) for k in keys}
    share = {k: totals[k] / totals["job_seconds"] if totals["job_seconds"] else 0.0 for k in keys}
    lines.append(f"| **all {len(rows)} jobs** | " + " | ".join(
        f"**{totals[k]:.1f}**" + ("" if k == "job_seconds" else f" ({share[k]:.0%})") for k in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: run_all_parts.py RESULTS_FOLDER", file=sys.stderr)
        return 2
    rows = job_rows(Path(argv[0]))
    if not rows:
        print(f"{argv[0]}: no ok result files with timings", file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
