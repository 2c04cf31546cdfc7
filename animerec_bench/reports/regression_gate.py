"""Two result folders compared model by model: the leaderboards workflow's regression gate.

``animerec-bench compare --base DIR --head DIR`` (what ``scripts/leaderboard-compare.sh`` runs
on a pull request) compares every (data set, protocol, model, task) the folders hold: the
task's primary metric as the mean, over the seeds both folders have, of the latest ``ok`` result
per seed of the model's newest code state (:func:`sides`), and, where
both sides kept per-user values, the paired bootstrap of :mod:`.significance` (head − base over
the test users both scored; interaction's per-user form is GAUC, the global AUC has none).

A row is a regression when the primary metric got worse by more than ``threshold`` *relative*
to the base value (``(head − base) / |base|``, in the metric's own direction) and, where the
paired test exists, the per-user difference is significant (p < :data:`ALPHA`) in the worse
direction. It fails the gate unless the change was meant: the model is named in
``expect_change``, or its declared ``version`` differs between the two folders.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from animerec_bench.evaluation import significance
from animerec_bench.reports.board_rows import variant_label
from animerec_bench.results import store as results_mod
from animerec_bench.tasks import NAMES, TASKS

#: Significance level of the gate's paired test.
ALPHA = 0.05


@dataclass(frozen=True)
class Side:
    """One folder's row: the model, its primary metric per seed, its version(s), and
    ``{seed: PerUser}`` (None when any seed's result has no per-user values)."""

    model: str
    values: dict
    versions: frozenset
    per_user: dict | None

    def mean(self, seeds=None) -> float:
        """The primary metric's mean over ``seeds`` (default: all of this side's)."""
        picked = [self.values[s] for s in (sorted(self.values) if seeds is None else seeds)]
        return sum(picked) / len(picked)


@dataclass(frozen=True)
class Row:
    key: tuple  # (data set, protocol, model label, task)
    base: Side | None
    head: Side | None
    seeds: tuple  # the seeds compared: both sides' common seeds (else each side's own)
    change: float | None  # (head − base) / |base|; head − base when base is 0
    paired: significance.Interval | None  # head − base of the per-user metric, seeds combined
    verdict: str
    failed: bool


def _label(r: dict) -> str:
    """The row's label as every view writes it (``two-tower (tuned)``)."""
    res = results_mod.Result(r)
    return variant_label(res.model, res.tuned)


def _code_state(r: dict) -> str:
    """What a result was computed from, seed aside: its job identity without the seed and the
    seed's split (and, for a tuned result, without the parameters each seed chose), and without
    where a loose plugin file lay (the same file in another checkout is the same code)."""
    import json

    parts = dict(results_mod.get(r, "identity.parts") or {})
    for part in ("seed", "split") + (("params",) if results_mod.get(r, "tuning") else ()):
        parts.pop(part, None)
    if isinstance(parts.get("code"), dict):
        parts["code"] = {k: v for k, v in parts["code"].items() if k != "file"}
    return json.dumps(parts, sort_keys=True, default=str)


def sides(loaded: list[dict], *, dataset: str | None = None, protocol: str | None = None,
          tasks: tuple[str, ...] = ()) -> dict[tuple, Side]:
    """``{(data set, protocol, model label, task): Side}`` from the latest ok result per seed, of
    the newest code state only: a folder where a pull request re-ran seed 0 of a changed model
    still holds that model's seeds 1 and 2 from the old code, which must not dilute the change."""
    latest: dict[tuple, dict[int, dict]] = defaultdict(dict)
    ordered = sorted(loaded, key=lambda r: (str(r.get("started_at")), r.get("_file", "")))
    for r in ordered:
        if r.get("status") != "ok" or r.get("validation_only"):
            continue
        d, p = str(results_mod.get(r, "dataset.name")), str(r.get("protocol"))
        if (dataset and d != dataset) or (protocol and p != protocol):
            continue
        for task, metrics in (r.get("metrics") or {}).items():
            if task not in TASKS or (tasks and task not in tasks):
                continue
            value = (metrics or {}).get(TASKS[task].primary)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                latest[(d, p, _label(r), task)][int(results_mod.get(r, "split.seed"))] = r
    out = {}
    for key, by_seed in latest.items():
        task = key[3]
        newest = _code_state(max(by_seed.values(), key=lambda r: (str(r.get("started_at")), r.get("_file", ""))))
        by_seed = {seed: r for seed, r in by_seed.items() if _code_state(r) == newest}
        values = {seed: float(r["metrics"][task][TASKS[task].primary]) for seed, r in by_seed.items()}
        per_user: dict | None = {}
        for seed, r in by_seed.items():
            found = results_mod.load_per_user(r)
            if per_user is None or not found or task not in found:
                per_user = None
                break
            per_user[seed] = found[task]
        name = str(results_mod.get(next(iter(by_seed.values())), "model.name"))
        out[key] = Side(name, values,
                        frozenset(str(results_mod.get(r, "model.version", "1")) for r in by_seed.values()),
                        per_user or None)
    return out


def check_content(loaded: list[dict], *, require_hash: bool) -> None:
    """Refuse, naming the file, a result edited after its run wrote it (:func:`results_mod.content_problem`);
    with ``require_hash`` (the head: what the change under test produced) also one that records no hash."""
    from animerec_bench.errors import UserError

    for r in loaded:
        if not require_hash and results_mod.CONTENT_KEY not in r:
            continue  # the base: results published before results recorded their hash
        problem = results_mod.content_problem(r)
        if problem:
            raise UserError(f"{r.get('_path') or r.get('_file')}: {problem}")


def compare_folders(base: dict[tuple, Side], head: dict[tuple, Side], *, threshold: float | None,
                    expect_change: set[str], draws: int = significance.DRAWS) -> list[Row]:
    """Every key of either side with its change, paired test and verdict: the failures first, then
    the other rows that say something (not ``ok``), then the rest, each part in model order (so a
    reviewer reads what matters at the top of a long table)."""
    rows = []
    for key in sorted(set(base) | set(head), key=lambda k: (k[0], k[1], k[2], NAMES.index(k[3]))):
        b, h = base.get(key), head.get(key)
        if b is None:
            rows.append(Row(key, b, h, (), None, None, "new", False))
            continue
        if h is None:  # deleted, renamed, failed or NaN in the head: a gate must not pass it silently
            rows.append(_missing_row(key, b, threshold, expect_change))
            continue
        spec = TASKS[key[3]]
        seeds = tuple(sorted(set(b.values) & set(h.values)))
        bm, hm = b.mean(seeds or None), h.mean(seeds or None)
        change = (hm - bm) / abs(bm) if bm else hm - bm
        worse = -change if spec.higher_is_better else change  # > 0: worse
        paired = None
        if b.per_user and h.per_user:
            try:
                paired = significance.compare(key[3], b.per_user, h.per_user, draws)[1]
            except ValueError:  # no seed or user in common: the threshold alone decides
                paired = None
            else:  # the verdict follows the paired test: the change on the users both scored
                worse = _paired_worse(key[3], b, h, paired)
        verdict, failed = _verdict(spec.higher_is_better, worse, paired, threshold,
                                   _expected(b, h, expect_change))
        rows.append(Row(key, b, h, seeds, change, paired, verdict, failed))
    return sorted(rows, key=lambda row: (not row.failed, row.verdict == "ok"))


#: The verdict of a base row the head has no usable result for, when it fails the gate.
MISSING = "**MISSING FROM HEAD**"


def _missing_row(key: tuple, b: Side, threshold: float | None, expect_change: set[str]) -> Row:
    """A base model the head lacks: a failure of the gate unless declared with --expect-change."""
    if b.model in expect_change:
        return Row(key, b, None, (), None, None, "not in head, expected (--expect-change)", False)
    failed = threshold is not None
    return Row(key, b, None, (), None, None, MISSING if failed else "not in head", failed)


def _paired_worse(task: str, b: Side, h: Side, paired: significance.Interval) -> float:
    """The paired difference relative to the base's per-user metric on the seeds and users both
    scored (> 0: worse), so a head that scored other users than the base cannot hide a change."""
    assert b.per_user is not None and h.per_user is not None
    seeds = sorted(set(b.per_user) & set(h.per_user))
    base_metric = sum(b.per_user[s].on(significance.common_users(b.per_user[s], h.per_user[s])).metric(task)
                      for s in seeds) / len(seeds)
    relative = paired.estimate / abs(base_metric) if base_metric else paired.estimate
    return -relative if TASKS[task].higher_is_better else relative


def _expected(b: Side, h: Side, expect_change: set[str]) -> str | None:
    """Why a change of this model was meant, or None."""
    if h.model in expect_change:
        return "--expect-change"
    if b.versions != h.versions:
        return f"version {'/'.join(sorted(b.versions))} → {'/'.join(sorted(h.versions))}"
    return None


def _verdict(higher_better: bool, worse: float, paired, threshold: float | None,
             expected: str | None) -> tuple[str, bool]:
    significant = paired is not None and paired.p is not None and paired.p < ALPHA
    worse_direction = paired is not None and (paired.estimate < 0 if higher_better else paired.estimate > 0)
    if threshold is not None and worse > threshold:
        if paired is not None and not (significant and worse_direction):
            return "worse beyond threshold, not significant", False
        if expected:
            return f"worse, expected ({expected})", False
        return "**REGRESSION**", True
    if significant:
        return ("worse" if worse_direction else "better"), False
    return "ok", False


def _side_cell(side: Side | None, seeds: tuple) -> str:
    if side is None:
        return "–"
    n = len(seeds or side.values)
    return f"{side.mean(seeds or None):.4f} ({n} seed{'s' * (n != 1)})"


def markdown(rows: list[Row], *, base_name: str, head_name: str, threshold: float | None,
             draws: int = significance.DRAWS) -> str:
    """One Markdown table (GitHub style) and the lines that say how to read it."""
    from tabulate import tabulate

    from animerec_bench.reports.leaderboard import escape

    table = []
    for row in rows:
        dataset, protocol, model, task = row.key
        spec = TASKS[task]
        paired = "–"
        if row.paired is not None:
            iv = row.paired
            name = "" if significance.METRIC[task] == spec.primary else f"{significance.METRIC[task]} "
            paired = f"{name}{iv.estimate:+.4f} ({iv.low:+.4f} to {iv.high:+.4f})"
        table.append([f"{escape(dataset)} / {escape(protocol)}", escape(model), task, spec.primary,
                      _side_cell(row.base, row.seeds), _side_cell(row.head, row.seeds),
                      "" if row.change is None else f"{row.change:+.2%}", paired,
                      "–" if row.paired is None else significance.format_p(row.paired.p, draws), row.verdict])
    headers = ["data set", "model", "task", "metric", "base", "head", "change", "paired Δ (95% CI)", "p", "verdict"]
    gate = (f"Regression: the primary metric worse by more than {threshold:.1%} of the base value (relative) and, "
            f"where both sides have per-user values, p < {ALPHA} in the worse direction; a model named with "
            f"--expect-change or whose version changed is reported, not failed."
            if threshold is not None else "No regression threshold given (--fail-on-regression): nothing fails.")
    out = [f"### Primary metrics: {escape(head_name)} against {escape(base_name)}", "",
           "Change: (head − base) / |base| of the task's primary metric, mean over the seeds both sides have "
           f"(the latest ok result per seed, of the model's newest code, version and parameters). Paired Δ: "
           f"head − base over the test users both scored, seeds combined, each user drawn once for all seeds "
           f"({draws} bootstrap draws; interaction: per-user AUC, i.e. GAUC), 95% interval, two-sided p; – where a side "
           f"has no per-user file. {gate}", ""]
    if table:
        out.append(tabulate(table, headers, tablefmt="github", disable_numparse=True,
                            colalign=["left"] * 4 + ["right"] * 5 + ["left"]))
    else:
        out.append("No results to compare.")
    return "\n".join(out)


def failure_line(rows: list[Row], threshold: float, draws: int = significance.DRAWS) -> str | None:
    """The one line that says why the gate fails, or None when it passes."""
    bad = [row for row in rows if row.failed]
    if not bad:
        return None
    parts = []
    for row in bad:
        _, _, model, task = row.key
        if row.head is None:
            parts.append(f"{model} {task}: no usable result in the head (deleted, renamed, failed or not a number)")
            continue
        p = "" if row.paired is None else f", p {significance.format_p(row.paired.p, draws)}"
        seeds = row.seeds or None
        assert row.base is not None and row.head is not None  # a failed row has both sides
        parts.append(f"{model} {task} {TASKS[task].primary} {row.base.mean(seeds):.4f} -> "
                     f"{row.head.mean(seeds):.4f} ({row.change:+.2%}{p})")
    return (f"regression beyond {threshold:.1%} (relative), or a base model missing from the head, on a model "
            f"this change did not declare "
            f"(--expect-change NAME, or bump its version): " + "; ".join(parts))
