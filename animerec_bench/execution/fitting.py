"""Fit a model on every example of a data set (no hold-out: for use, not for scoring) and keep it.

``fit`` and ``recommend`` use this: the protocol's label rules and user filter make the
examples, as for a benchmark run, but nothing is held out, and the fitted model goes to the
store (:mod:`animerec_bench.results.fitted`) under its identity, so the next call loads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from animerec_bench.errors import UserError
from animerec_bench.model import Interactions
from animerec_bench.results import fitted as store

#: The seed of every fit on all data (one model per identity, reproducible).
SEED = 0


@dataclass(frozen=True)
class FitPlan:
    """What ``fit`` fits: the model's entry, its parameters and tasks, the data and the store key."""

    entry: Any  # plugins.registry.ModelEntry
    params: dict
    tasks: tuple[str, ...]
    dataset: Any  # dataset.Dataset
    protocol: Any  # data.protocol.ProtocolV1
    identity: dict


def fit_tasks(entry) -> tuple[str, ...]:
    """The tasks a model is fitted for to recommend: all of a joint model's, else the one closest to
    a ranking (``ranking``, else ``interaction``, else ``rating``)."""
    if entry.joint:
        return tuple(entry.tasks)
    for task in ("ranking", "interaction", "rating"):
        if task in entry.tasks:
            return (task,)
    return (entry.tasks[0],)


def plan(registry, model: str, dataset, protocol, params: Mapping[str, Any] | None = None) -> FitPlan:
    """The fit of ``model`` on ``dataset`` by ``protocol``'s rules; refused for a model without save/load."""
    entry = registry.model(model)
    if not (callable(getattr(entry.cls, "save", None)) and callable(getattr(entry.cls, "load", None))):
        raise UserError(f"model {entry.name!r} cannot be saved (it has no save/load); models that can: "
                        f"{', '.join(models_with(registry, 'save', 'load'))}")
    params = {**entry.params, **dict(params or {})}
    tasks = fit_tasks(entry)
    identity = store.fitted_identity(entry.cls, params, tasks, dataset=dataset.name,
                                     dataset_fingerprint=dataset.fingerprint, protocol=protocol.name,
                                     protocol_params=protocol.params())
    return FitPlan(entry, params, tasks, dataset, protocol, identity)


def models_with(registry, *methods: str) -> list[str]:
    """Names of the registered models whose class has every one of ``methods``."""
    return sorted(name for name, e in registry.models.items()
                  if all(callable(getattr(e.cls, m, None)) for m in methods))


def all_examples(dataset, protocol) -> tuple[Interactions, np.ndarray]:
    """Every example pair of ``dataset`` under ``protocol``'s rules, as one training part, and the
    anime vocabulary (index -> MyAnimeList id). Only v1's rules: a cold-start protocol's held-out
    anime are exactly what a model fitted for use should know."""
    ex = protocol.examples(dataset.table())
    user_ids, user = np.unique(ex["user_id"], return_inverse=True)
    anime_ids, item = np.unique(ex["anime_id"], return_inverse=True)
    part = Interactions(user.astype(np.int32), item.astype(np.int32), ex["rating"], ex["label"],
                        len(user_ids), len(anime_ids))
    return part, anime_ids.astype(np.int64)


def fit_and_save(fit_plan: FitPlan, on_progress: Callable[[Mapping[str, Any]], None] | None = None,
                 root=None) -> store.FittedModel:
    """Fit on all examples (no validation part), save, and read back what was saved (verified)."""
    started = time.perf_counter()
    train, anime_ids = all_examples(fit_plan.dataset, fit_plan.protocol)
    model = fit_plan.entry.cls(**fit_plan.params)
    if on_progress is not None:
        model.on_progress = on_progress
    model.fit(train, None, tasks=fit_plan.tasks, seed=SEED)
    model.on_progress = None
    seconds = time.perf_counter() - started
    examples = np.bincount(train.item, minlength=train.n_items)
    store.save(model, fit_plan.identity, anime_ids, examples, fit_seconds=seconds, root=root)
    loaded = store.load(fit_plan.entry.cls, fit_plan.identity, root=root)
    assert loaded is not None
    return loaded


def fitted(fit_plan: FitPlan, *, refit: bool = False,
           on_progress: Callable[[Mapping[str, Any]], None] | None = None,
           on_fit_start: Callable[[], None] | None = None, root=None) -> tuple[store.FittedModel, bool]:
    """The saved model of ``fit_plan`` (verified), fitting and saving it first when there is none
    (or ``refit``; ``on_fit_start()`` is called then). Returns (model, whether it was fitted now)."""
    if not refit:
        found = store.load(fit_plan.entry.cls, fit_plan.identity, root=root)
        if found is not None:
            return found, False
    if on_fit_start is not None:
        on_fit_start()
    return fit_and_save(fit_plan, on_progress, root), True
