"""The model contract: what a model plugin declares, what ``fit`` gets, what ``predict`` returns.

Modelled on scikit-learn's estimator rules: ``__init__`` only stores hyperparameters (keyword
arguments with defaults: the single source of truth, recorded in every result), ``fit``
returns ``self`` and sets learned state in names ending in ``_``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from animerec_bench import tasks as _tasks
from animerec_bench.errors import PredictionError  # noqa: F401 - re-exported: plugins import it from here

#: Names of the tasks a model can serve (each one's rules are in :mod:`animerec_bench.tasks`).
TASKS: tuple[str, ...] = _tasks.NAMES


@dataclass(frozen=True)
class Interactions:
    """One part of a split (train, validation or test) as dense index arrays.

    ``user``/``item`` are indices into the training vocabulary (0..n_users-1, 0..n_items-1).
    A pair may be an example of one task or both: ``rating`` is 0 where the pair is not a
    rating example (else 1-10); ``label`` is -1 where it is not an interaction example
    (else 1 positive, 0 negative).
    """

    user: np.ndarray  # int32
    item: np.ndarray  # int32
    rating: np.ndarray  # float32, 0 = no rating example
    label: np.ndarray  # int8, -1 = no interaction example
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.user)

    def task_mask(self, task: str) -> np.ndarray:
        """Which pairs are examples of ``task``."""
        return _tasks.get(task).mask(self.rating, self.label)

    def target(self, task: str) -> np.ndarray:
        """The float32 target of ``task`` for every pair (meaningless where task_mask is False)."""
        return _tasks.get(task).target(self.rating, self.label)

    def subset(self, mask: np.ndarray) -> "Interactions":
        return Interactions(self.user[mask], self.item[mask], self.rating[mask],
                            self.label[mask], self.n_users, self.n_items)

    def for_task(self, task: str) -> tuple["Interactions", np.ndarray]:
        """The examples of ``task`` and their float32 targets."""
        part = self.subset(self.task_mask(task))
        return part, part.target(task)


class Model:
    """Base class for model plugins (subclassing is optional; the declarations are what count).

    Declare ``name``, ``tasks`` and ``joint``; take hyperparameters as keyword arguments of
    ``__init__`` with defaults, stored under the same attribute names.
    """

    #: Unique name, used on the command line and in leaderboards.
    name: ClassVar[str]
    #: Tasks the model trains for, a subset of ``TASKS`` (every model is also ranked; see ``score``).
    tasks: ClassVar[tuple[str, ...]]
    #: True when one fit trains all ``tasks`` together (scored on each); False: one fit per task.
    joint: ClassVar[bool] = False
    #: Bump when the model's behaviour changes, so old results are told apart.
    version: ClassVar[str] = "1"
    #: True for trivial/classic reference models; leaderboards mark them.
    baseline: ClassVar[bool] = False
    #: For a model that is someone else's (a library's model, or our port of a published one), who,
    #: e.g. ``"Surprise 1.1.5"``: recorded in every result and shown in the board's Notes as
    #: ``peer: Surprise 1.1.5``, so nobody mistakes it for ours. None: one of ours.
    peer: ClassVar[str | None] = None
    #: One line saying what the model is, for ``list`` and the README's table of the best models;
    #: None: the first sentence of the class docstring.
    description: ClassVar[str | None] = None
    #: "keras" when fit needs Keras: the runner imports it before timing fit (it takes seconds);
    #: "numpy" for anything else. A class that does not subclass Model must declare it.
    framework: ClassVar[str] = "numpy"

    #: Set by the runner: called with a dict such as ``{"epoch": 3, "loss": 1.2, "val_loss": 1.3}``.
    on_progress: Callable[[Mapping[str, Any]], None] | None = None

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        return param_defaults(cls)

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> None:
        """Raise ValueError (one line naming the hyperparameter) when ``params`` (every
        hyperparameter, defaults filled in) makes no sense, e.g. ``epochs=-1``. The runner calls
        it before any job starts; the default accepts anything. See :func:`check_param`."""

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters this instance was built with (read back from attributes)."""
        return {k: getattr(self, k) for k in param_defaults(type(self))}

    def report_progress(self, **info: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(info)

    def check_tasks(self, tasks) -> tuple[str, ...]:
        """``tasks`` as a tuple, or ValueError when one fit of this model cannot train them: they
        must be among ``self.tasks``, all of them for a joint model, else exactly one."""
        tasks = tuple(tasks)
        if not tasks or any(t not in self.tasks for t in tasks):
            raise ValueError(f"model {self.name!r} serves {self.tasks}, asked to fit {tasks}")
        if self.joint and set(tasks) != set(self.tasks):
            raise ValueError(f"model {self.name!r} trains {self.tasks} jointly, asked to fit {tasks}")
        if not self.joint and len(tasks) != 1:
            raise ValueError(f"model {self.name!r} fits one task at a time, asked to fit {tasks}")
        return tasks

    def fit(self, train: Interactions, valid: Interactions | None, *,
            tasks: tuple[str, ...], seed: int) -> "Model":
        """Learn ``tasks`` from ``train``; ``valid`` is for early stopping only. Return ``self``."""
        raise NotImplementedError

    def predict(self, user: np.ndarray, item: np.ndarray) -> dict[str, np.ndarray]:
        """For each fitted task, one float score per (user, item) index pair:
        a 1-10 rating for ``rating``, a probability in [0, 1] for ``interaction``."""
        raise NotImplementedError

    # Optional: ``score(self, user) -> np.ndarray`` of shape [len(user), n_items], one finite float
    # per (user, anime of the training vocabulary), higher = recommend first. Required of a model
    # that lists ``ranking`` in ``tasks`` (such a model needs no ``predict``); any other model is
    # ranked by it when it has it, else from its interaction, else its rating predictions.
    # Not defined here, so that ``hasattr(model, "score")`` says whether a model has one.


def param_defaults(cls: type) -> dict[str, Any]:
    """Hyperparameters with their defaults, read from the signature of ``cls.__init__``."""
    out: dict[str, Any] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is p.empty else p.default
    return out


def validate_params(cls: type, params: Mapping[str, Any]) -> None:
    """Call the model's optional ``validate_params(params)`` classmethod (ValueError: nonsense)."""
    hook = getattr(cls, "validate_params", None)
    if callable(hook):
        hook(dict(params))


def check_param(params: Mapping[str, Any], name: str, *, at_least: float | None = None,
                above: float | None = None, below: float | None = None, none_ok: bool = False) -> None:
    """Raise ValueError unless ``params[name]`` is a number within the bounds (absent: no check).

    For ``validate_params``: ``check_param(params, "epochs", at_least=1)``,
    ``check_param(params, "dropout", at_least=0, below=1)``."""
    if name not in params:
        return
    value = params[name]
    if value is None and none_ok:
        return
    rules = [f"{op} {bound:g}" for op, bound in ((">=", at_least), (">", above), ("<", below)) if bound is not None]
    wanted = " and ".join(rules) + (" (or None)" if none_ok else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value != value:
        raise ValueError(f"{name} must be a number{' ' * bool(wanted)}{wanted}, got {value!r}")
    if ((at_least is not None and value < at_least) or (above is not None and value <= above)
            or (below is not None and value >= below)):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")


def validate_predictions(model_name: str, predictions: object, n: int,
                         tasks: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Check ``predict``'s output for ``tasks`` on ``n`` pairs; return float64 arrays or raise.

    Scores must be finite; each task checks the rest (interaction scores must be probabilities;
    ratings may fall slightly outside 1-10, as a linear model's do, and are clipped when scored).
    """
    if not isinstance(predictions, Mapping):
        raise PredictionError(f"model {model_name!r}: predict returned {type(predictions).__name__}, "
                              f"expected a dict {{task: scores}}")
    out = {}
    for task in tasks:
        if task not in predictions:
            raise PredictionError(f"model {model_name!r}: predict returned no scores for task {task!r} "
                                  f"(got {sorted(map(str, predictions))})")
        scores = np.asarray(predictions[task], dtype=np.float64).reshape(-1) \
            if np.ndim(predictions[task]) == 2 and np.shape(predictions[task])[1] == 1 \
            else np.asarray(predictions[task], dtype=np.float64)
        if scores.shape != (n,):
            raise PredictionError(f"model {model_name!r}: task {task!r} scores have shape {scores.shape}, "
                                  f"expected ({n},)")
        bad = ~np.isfinite(scores)
        if bad.any():
            raise PredictionError(f"model {model_name!r}: task {task!r} has {int(bad.sum())} NaN/inf "
                                  f"score(s) of {n}")
        _tasks.get(task).check_scores(model_name, scores)
        out[task] = scores
    return out


def describe(cls) -> str:
    """One line saying what a model class is: its ``description``, else the first sentence of its
    own docstring (not one it inherits), else ""."""
    import re

    text = getattr(cls, "description", None) or (cls.__dict__.get("__doc__") or "").split("\n\n")[0]
    line = re.sub(r"\s+", " ", str(text).replace("``", "")).strip()
    first = re.match(r"(.+?[.!?])(\s|$)", line)
    return first.group(1) if first else line
