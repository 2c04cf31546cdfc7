"""The hooks a plugin can implement (pluggy project name ``animerec_bench``).

Implement a hook with ``@animerec_bench.hookimpl``. Implementations may take fewer
arguments than the spec, so new arguments can be added without breaking plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from animerec_bench.dataset import Dataset

hookspec = pluggy.HookspecMarker("animerec_bench")

#: Marker for hook implementations in plugins: ``@animerec_bench.hookimpl`` (re-exported by the
#: package root, where plugin authors find it).
hookimpl = pluggy.HookimplMarker("animerec_bench")


@hookspec
def register_models(register: Callable[[type], None]) -> None:
    """Register model classes.

    Call ``register(ModelClass)`` once per model. The class declares ``name`` (unique across
    plugins), ``tasks`` (a subset of the task names in :mod:`animerec_bench.tasks`), ``joint`` (whether one fit
    trains all its tasks), and takes its hyperparameters as keyword arguments of ``__init__``
    with defaults. It implements ``fit(train, valid, *, tasks, seed) -> self`` (seeding its
    framework from ``seed``: the runner seeds only Python and numpy) and
    ``predict(user, item) -> {task: scores}`` for the pointwise tasks (``rating``,
    ``interaction``), and ``score(user) -> [len(user), n_anime]`` if it lists ``ranking`` (optional
    otherwise: without it a model is ranked from its predictions). Optionally ``save(folder)`` /
    ``load(folder)`` (no pickle) for ``fit``, and ``fold_in(history)`` (plus ``explain``) for
    ``recommend``; see :class:`animerec_bench.model.Model` and ``docs/plugins.md``.

    :param register: callable taking one model class; a duplicate name or an invalid
        declaration is reported as an error naming the plugin, and that model is skipped.
    """


@hookspec
def register_datasets(register: Callable[["Dataset"], None]) -> None:
    """Register data sets.

    Call ``register(dataset)`` with an :class:`animerec_bench.dataset.Dataset` whose ``path``
    is a Parquet file in the canonical schema (``user_id``, ``anime_id``, ``rating``,
    ``status``). Names must be unique across plugins. To skip a data set that cannot be
    used (its files are damaged), warn instead of raising:
    ``warnings.warn(animerec_bench.dataset.DatasetWarning("<file>: <what is wrong>"))`` is shown
    as one warning line and the plugin's other data sets still load.

    :param register: callable taking one :class:`~animerec_bench.dataset.Dataset`.
    """
