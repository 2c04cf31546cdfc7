"""The Python API, for notebooks and scripts: load a split, score a fitted model, read results.

What ``animerec-bench run`` does in its worker, without the process around it: the same
split (the same cache and fingerprint), the same scoring functions
(:mod:`animerec_bench.evaluation.scoring`), so a
model fitted in a notebook gets the numbers a run of it would write. ``docs/api.md`` has a
worked example. Heavy imports (numpy, pandas) happen inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from animerec_bench.errors import UserError

__all__ = ["load_split", "evaluate", "results_frame", "fit", "recommend", "recommendations"]

PARTS = {"test": "test", "valid": "valid", "validation": "valid"}


def load_split(dataset: str = "mal2016-5k", seed: int = 0, protocol: str = "v1", *, plugins_dir: Any = None):
    """The ``protocol`` split of ``dataset`` for ``seed``, as ``run`` uses it (from the same cache).

    Returns a :class:`animerec_bench.data.protocol.Split`: ``train``, ``valid``, ``test``
    (:class:`~animerec_bench.model.Interactions`), ``user_ids``/``anime_ids`` (index -> MyAnimeList
    id), ``stats`` and ``fingerprint``. ``dataset`` is any registered data set (built in, imported
    with ``data import``, or from a plugin; ``plugins_dir`` names a folder of loose plugin files,
    None for none).
    """
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.plugins.registry import load_registry

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UserError(f"seed {seed!r}: expected an integer from 0 to 2**32 - 1")
    rules = get_protocol(protocol)
    ds = load_registry(plugins_dir).dataset(dataset)
    return rules.split(ds, seed)


def evaluate(model, split, tasks=None, part: str = "test") -> dict[str, dict[str, float]]:
    """Score a fitted ``model`` on ``split`` like a run does: ``{task: {metric: value}}``.

    ``tasks``: the pointwise tasks to score (default: the model's own ``tasks``) plus
    ``"ranking"``, which by default is included for every model, as the runner ranks every
    model: by its ``score``, else its interaction, else its rating predictions. ``part``:
    ``"test"`` (what a result's ``metrics`` hold, with ``test_loss`` and ``val_loss``) or
    ``"valid"`` (with ``val_loss``). Uses the worker's own scoring functions, so the numbers equal
    those of a run of the same model, parameters and seed.
    """
    from animerec_bench import tasks as tasks_mod
    from animerec_bench.evaluation import scoring

    if part not in PARTS:
        raise UserError(f"part {part!r}: expected one of test, valid")
    part = PARTS[part]
    declared = tuple(getattr(model, "tasks", ()) or ())
    name = str(getattr(model, "name", type(model).__name__))
    sources = {t: task.ranking_source(model) for t, task in tasks_mod.LISTWISE.items()}  # every model is ranked
    if tasks is None:
        wanted = declared + tuple(t for t, source in sources.items() if source and t not in declared)
    else:
        wanted = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    for t in wanted:
        if t not in tasks_mod.TASKS:
            raise UserError(f"task {t!r}: unknown; known: {', '.join(tasks_mod.NAMES)}")
        if tasks_mod.get(t).pointwise and t not in declared:
            raise UserError(f"task {t!r}: model {name} does not serve it (it serves {', '.join(declared)})")
    if any(t in wanted and not source for t, source in sources.items()):
        raise UserError(f"model {name} cannot be ranked: it has no score() and serves no pointwise task")

    pointwise = tuple(t for t in tasks_mod.NAMES if t in wanted and tasks_mod.get(t).pointwise)
    out: dict[str, dict[str, float]] = {}
    if pointwise:
        val_metrics, val_losses = scoring.evaluate(name, model, split.valid, pointwise)
        if part == "test":
            # As the worker's test phase: predict on the pairs of the scored tasks, then score.
            test = split.test.subset(scoring.union_mask(split.test, pointwise))
            metrics, losses = scoring.evaluate(name, model, test, pointwise)
            out = {t: {**metrics[t], "test_loss": losses[t], "val_loss": val_losses[t]} for t in pointwise}
        else:
            out = {t: {**val_metrics[t], "val_loss": val_losses[t]} for t in pointwise}
    for t, source in sources.items():
        if t in wanted and source:
            out[t], _ = scoring.evaluate_ranking(model, split, source, part=part, task=t)
    return {t: {m: float(v) if v is not None else None for m, v in values.items()} for t, values in out.items()}


def results_frame(folder=None):
    """Every result file under ``folder`` (default: your own results in the data home, where
    ``run`` writes) as a pandas DataFrame, one row per result.

    Columns: ``model``, ``tasks`` (joined by ``+``), ``seed``, ``status``, ``dataset``,
    ``protocol``, ``ranking_source``, ``model_version``, ``variant`` (``default`` or ``tuned``),
    ``label`` (the board's row label, e.g. ``two-tower (tuned)``), one ``metrics.<task>.<metric>``
    column per metric found, ``fit_seconds``, ``hardware`` (the leaderboard's label), ``error``,
    ``started_at`` and ``file`` (relative to ``folder``). A file that is not a valid result stops
    it with one line naming the file.
    """
    import pandas as pd

    from animerec_bench.reports.board_rows import variant_label
    from animerec_bench.results.store import Result, load_all
    from animerec_bench.support import paths
    from animerec_bench.support.machine import short_label

    rows = []
    for r in load_all(Path(folder) if folder is not None else paths.results_dir()):
        res = Result(r)
        row = {"model": res.model, "tasks": "+".join(res.tasks), "seed": res.seed, "status": r.get("status"),
               "dataset": res.dataset, "protocol": r.get("protocol"), "ranking_source": res.value("ranking.source"),
               "model_version": res.value("model.version"), "variant": "tuned" if res.tuned else "default",
               "label": variant_label(res.model, res.tuned)}
        for task, values in sorted((r.get("metrics") or {}).items()):
            for metric, value in sorted(values.items()):
                row[f"metrics.{task}.{metric}"] = value
        row.update({"fit_seconds": res.value("timing.fit_seconds"), "hardware": short_label(res.machine),
                    "error": r.get("error"), "started_at": r.get("started_at"), "file": res.file})
        rows.append(row)
    fixed = ["model", "tasks", "seed", "status", "dataset", "protocol", "ranking_source", "model_version", "variant",
             "label"]
    tail = ["fit_seconds", "hardware", "error", "started_at", "file"]
    metric_cols = sorted({k for row in rows for k in row if k.startswith("metrics.")},
                         key=lambda c: (_task_order(c), c))
    return pd.DataFrame(rows, columns=fixed + metric_cols + tail)


def _task_order(column: str) -> int:
    from animerec_bench.tasks import NAMES

    task = column.split(".")[1]
    return NAMES.index(task) if task in NAMES else len(NAMES)


def fit(model: str = "ease", dataset: str = "mal2016-5k", protocol: str = "v1", *, refit: bool = False,
        plugins_dir: Any = None, on_progress=None):
    """``model`` fitted on every example of ``dataset`` (no hold-out), from the fitted-model store
    under the data home, fitted and saved first when it is not there (or ``refit``).

    Returns :class:`animerec_bench.results.fitted.FittedModel` (``model``, ``anime_ids``,
    ``manifest``, ``folder``) and whether it was fitted now. ``on_progress(dict)`` sees the fit's
    progress reports. A model without ``save``/``load`` is refused with one line naming those that have them.
    """
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.execution import fitting
    from animerec_bench.plugins.registry import load_registry

    registry = load_registry(plugins_dir)
    ds = registry.dataset(dataset)
    fit_plan = fitting.plan(registry, model, ds, get_protocol(protocol))
    return fitting.fitted(fit_plan, refit=refit, on_progress=on_progress)


def recommendations(model: str, list_path, k: int = 20, *, dataset: str = "mal2016-5k", protocol: str = "v1",
                    new_only: bool = False, plugins_dir: Any = None, registry=None, on_progress=None,
                    on_fit_start=None):
    """What :func:`recommend` returns, with the list's counts and timings
    (:class:`animerec_bench.execution.recommending.Recommendations`). ``list_path`` may be an
    :class:`~animerec_bench.data.mal_list.AnimeList` already read; ``registry``: plugins already
    loaded; ``on_fit_start()`` is called before a first fit."""
    import time

    from animerec_bench.data.mal_list import AnimeList, read_list
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.execution import fitting, recommending
    from animerec_bench.plugins.registry import load_registry

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"k {k!r}: expected a whole number >= 1")
    t0 = time.perf_counter()
    # A bad file is refused before anything is loaded or fitted.
    anime_list = list_path if isinstance(list_path, AnimeList) else read_list(list_path)
    parse_seconds = time.perf_counter() - t0
    registry = registry if registry is not None else load_registry(plugins_dir)
    entry = registry.model(model)
    if not callable(getattr(entry.cls, "fold_in", None)):
        raise UserError(f"model {model!r} cannot score a user it never saw (it has no fold_in); models that can: "
                        f"{', '.join(fitting.models_with(registry, 'fold_in', 'save', 'load'))}")
    ds = registry.dataset(dataset)
    rules = get_protocol(protocol)
    fit_plan = fitting.plan(registry, model, ds, rules)
    t0 = time.perf_counter()
    found, fitted_now = fitting.fitted(fit_plan, on_progress=on_progress, on_fit_start=on_fit_start)
    load_seconds = time.perf_counter() - t0
    info = recommending.AnimeInfo.of(ds)
    out = recommending.recommend(found.model, found.anime_ids, found.anime_examples, anime_list, rules, k=k,
                                 new_only=new_only, info=info)
    out.seconds = {"parse": parse_seconds, ("fit" if fitted_now else "load"): load_seconds, **out.seconds}
    return out


def recommend(model: str, list_path, k: int = 20, *, dataset: str = "mal2016-5k", protocol: str = "v1",
              new_only: bool = False, plugins_dir: Any = None):
    """The ``k`` best anime for the owner of the list at ``list_path`` (MyAnimeList's export,
    ``.xml`` or ``.xml.gz``, or a CSV of ``anime_id,score,status``) by ``model``, as a pandas
    DataFrame: ``rank``, ``anime_id``, ``title``, ``url``, ``type``, ``episodes``, ``genres``,
    ``score``, ``why``. Nothing on the list comes back. The model is fitted on all of
    ``dataset`` on first use and saved (:func:`fit`); ``df.attrs`` holds the list's counts
    (``entries``, ``liked``, ``disliked``, ``unknown_taste``, ``unknown_ids``).
    """
    import pandas as pd

    out = recommendations(model, list_path, k, dataset=dataset, protocol=protocol, new_only=new_only,
                          plugins_dir=plugins_dir)
    frame = pd.DataFrame(out.rows, columns=["rank", "anime_id", "title", "url", "type", "episodes", "genres",
                                            "score", "why"])
    frame.attrs.update(entries=out.entries, liked=out.match.liked, disliked=out.match.disliked,
                       unknown_taste=out.match.unknown_taste, unknown_ids=out.match.unknown_ids.tolist())
    return frame
