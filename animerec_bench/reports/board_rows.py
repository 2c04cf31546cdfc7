"""The one "board rows" model: which results make one row of a task's table, and its label.

The Markdown board, its plots, the README's summary and the terminal's top rows all read
:func:`board_rows`; the regression gate and ``api.results_frame`` name a row with
:func:`variant_label`, so "which results are one row" and "what the row is called" are written
once. A row is one model, version, hand-set parameters, hardware and variant (``default``, or
``tuned`` with its budget): a tuned model's seeds hold different chosen parameters and never
merge with its default row.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from animerec_bench import tasks as tasks_mod
from animerec_bench.results import identity
from animerec_bench.results.store import Result
from animerec_bench.support.machine import short_label


@dataclass(frozen=True, order=True)
class RowKey:
    """What tells two rows of one task apart."""

    model: str
    version: str
    params: str  # the shown parameters as sorted JSON ("{}" for none)
    hardware: str  # the machine's short label
    budget: str  # the tuning budget as JSON; "" for the default variant
    source: str = ""  # the results folder, when several are merged (each stays its own row)

    @property
    def tuned(self) -> bool:
        return bool(self.budget)

    @property
    def variant(self) -> str:
        return "tuned" if self.tuned else "default"


def row_key(r: dict, source: str = "") -> RowKey:
    res = Result(r)
    budget = json.dumps(res.value("tuning.budget"), sort_keys=True, default=str) if res.tuned else ""
    return RowKey(res.model, res.model_version, json.dumps(res.shown_params, sort_keys=True, default=str),
                  short_label(res.machine), budget, source)


def fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v, sort_keys=True, default=str)}" for k, v in sorted(params.items()))


def variant_label(name: str, tuned: bool) -> str:
    """``two-tower (tuned)`` or ``two-tower``: how every view names a model's variant."""
    return f"{name} (tuned)" if tuned else str(name)


def plain_label(key: RowKey, versions: dict[str, set], folders: dict[str, set] | None = None) -> str:
    """The row's label as plain text (the Markdown escapes it): name, version when a board holds
    several, hand-set parameters, the variant, and the source folder when a merged board holds the
    model from several folders (``folders``: model -> its folders)."""
    label = str(key.model)
    if len(versions.get(key.model, ())) > 1:
        label += f" v{key.version}"
    params = json.loads(key.params)
    if params:
        label += f" ({fmt_params(params)})"
    if key.tuned:
        label += " (tuned)"
    if key.source and len((folders or {}).get(key.model, ())) > 1:
        label += f" [{key.source}]"
    return label


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def latest_per_seed(rs: list[dict]) -> list[dict]:
    """Rerunning a seed replaces it: keep the latest result per seed (ties: file name)."""
    best: dict = {}
    for r in sorted(rs, key=lambda r: (str(r.get("started_at")), r.get("_file", ""))):
        best[Result(r).seed] = r
    return [best[s] for s in sorted(best, key=str)]


@dataclass
class BoardRow:
    """One row of one task's table: the latest ok result per seed that has the primary metric."""

    task: str
    key: RowKey
    label: str
    model: dict  # the model record of its results (baseline, joint, peer, description)
    results: list[dict] = field(default_factory=list)
    any_ok: list[dict] = field(default_factory=list)  # ok results of any task: a failed row's budget
    sources: tuple[str, ...] = ()  # where a ranked list came from ("interaction", ...)

    def values(self, metric: str) -> list:
        return [Result(r).metric(self.task, metric) for r in self.results]

    def field_values(self, dotted: str) -> list:
        return [Result(r).value(dotted) for r in self.results]

    @property
    def primary_values(self) -> list[float]:
        return [v for v in self.values(tasks_mod.get(self.task).primary) if finite(v)]

    @property
    def mean(self) -> float | None:
        values = self.primary_values
        return statistics.fmean(values) if values else None

    @property
    def fit_seconds(self) -> list:
        return self.field_values("timing.fit_seconds")

    @property
    def stale(self) -> bool:
        return any(identity.stale(r) for r in self.results)

    def tuning_note(self) -> str:
        """``5 trials, 389 s``: trials and seconds spent per seed (mean over the row's seeds)."""
        rs = latest_per_seed(self.results or self.any_ok)
        trials = [t for t in (Result(r).value("tuning.trials") for r in rs) if finite(t)]
        seconds = [s for s in (Result(r).value("tuning.seconds") for r in rs) if finite(s)]
        if not trials:
            return ""
        n = statistics.fmean(trials)
        n_text = f"{n:.0f}" if n == round(n) else f"{n:.1f}"
        return f"{n_text} trials, {statistics.fmean(seconds) if seconds else 0:.0f} s"


def _source_of(r: dict, sources: dict[str, str]) -> str:
    """The folder a result came from when a board merges several (``_file`` starts with it)."""
    f = str(r.get("_file", ""))
    return next((label for prefix, label in sources.items() if f.startswith(prefix + "/")), "")


def board_rows(task: str, group: list[dict], sources: dict[str, str] | None = None
               ) -> tuple[list[BoardRow], list[str]]:
    """(the rows of ``task``'s table, best first then those without a value; the labels of models
    on the board not trained for the task). ``sources``: ``{folder prefix of _file: label}`` of a
    merged board; their results stay separate rows labelled by their folder."""
    spec = tasks_mod.get(task)
    versions: dict[str, set] = defaultdict(set)
    folders: dict[str, set] = defaultdict(set)
    rows: dict[RowKey, BoardRow] = {}
    not_served: set[RowKey] = set()
    for r in group:
        key = row_key(r, _source_of(r, sources or {}))
        versions[key.model].add(key.version)
        folders[key.model].add(key.source)
        if not spec.serves(Result(r).model_tasks):
            not_served.add(key)
            continue
        row = rows.setdefault(key, BoardRow(task, key, "", Result(r).model_info))
        if r["status"] == "ok":
            row.any_ok.append(r)
            if spec.scored_in(r) and task in (r.get("metrics") or {}):
                row.results.append(r)
                source = spec.list_source(r)
                if source and source not in row.sources:
                    row.sources = tuple(sorted((*row.sources, source)))
    for row in rows.values():
        row.label = plain_label(row.key, versions, folders)
        # Only seeds with a primary value are ranked and counted (the count never includes a value not averaged).
        row.results = [r for r in latest_per_seed(row.results) if finite(Result(r).metric(task, spec.primary))]
    sign = -1 if spec.higher_is_better else 1
    ordered = sorted(rows.values(), key=lambda row: (row.mean is None, sign * (row.mean or 0.0), row.label, row.key))
    hidden = sorted({plain_label(k, versions, folders) for k in not_served if k not in rows})
    return ordered, hidden


def board_tasks(group: list[dict]) -> list[str]:
    """The tasks a board has a table for: those some result is on (:meth:`Task.on_board`)."""
    return [t for t, spec in tasks_mod.TASKS.items() if any(spec.on_board(r) for r in group)]
