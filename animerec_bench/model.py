"""The model contract: what a model plugin declares, what ``fit`` gets, what ``predict`` returns.

Modelled on scikit-learn's estimator rules: ``__init__`` only stores hyperparameters (keyword
arguments with defaults: the single source of truth, recorded in every result), ``fit``
returns ``self`` and sets learned state in names ending in ``_``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

    ``other``: on the validation part the harness hands to ``fit``, the split's pairs that are
    examples of neither task (completed but unscored): the validation ranking ``tune`` scores
    trials by excludes them from the candidates, as well as train. A model that chooses its own
    settings on validation ranks the same candidates through
    ``RankingData.validation(train, valid)``. None elsewhere (and in a subset).
    """

    user: np.ndarray  # int32
    item: np.ndarray  # int32
    rating: np.ndarray  # float32, 0 = no rating example
    label: np.ndarray  # int8, -1 = no interaction example
    n_users: int
    n_items: int
    other: "Interactions | None" = field(default=None, repr=False, compare=False)

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
    #: Hyperparameters that may be given as inf (or NaN) with ``--param``, e.g. a "no limit" value;
    #: any other non-finite number is refused before a job runs.
    accepts_non_finite: ClassVar[tuple[str, ...]] = ()
    #: True when the model uses anime features (genres, type, episodes, title words; see
    #: :mod:`animerec_bench.data.features`) and so can score anime no training pair has. Then
    #: ``fit`` gets a keyword argument ``features`` (the features of the anime it may know: the
    #: first ``features.n_items`` of the vocabulary, train and validation anime), and after ``fit``,
    #: before it scores anything, the framework calls :meth:`set_item_features` with every anime's
    #: features (test anime included: they reach the model only then). Only such models take part
    #: in the cold-start protocols (``season-v1``, ``cold-items-v1``); the others are skipped there.
    #: On ``season-v1`` it is called once more after the test scoring, with the catalogue's other new
    #: anime after the vocabulary (the hard candidates): ``score`` then returns one column per row.
    #: Never among the features: MAL's mean score and members (measured after a show airs).
    item_features: ClassVar[bool] = False
    #: The protocols the model takes part in (None: every one). A model that answers only the
    #: cold-start question (``("season-v1", "cold-items-v1")``) adds no time to ``run --all`` on v1.
    protocols: ClassVar[tuple[str, ...] | None] = None
    #: True when one fit takes minutes on a laptop CPU (a full item-item matrix learnt by SGD, a
    #: sampled-softmax network): ``run --all`` and ``tune --all`` leave the model out unless given
    #: ``--heavy``, so the quick answer stays quick; naming it (``-m NAME``) always runs it.
    heavy: ClassVar[bool] = False

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

    def set_item_features(self, features: Any) -> None:
        """Receive every anime's features (an ``ItemFeatures``: ``features.matrix`` is a scipy CSR
        matrix, one row per anime index) before scoring; kept as ``self.features_``. Called only
        for a model that declares ``item_features = True``."""
        self.features_ = features

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
        """Learn ``tasks`` from ``train``; ``valid`` is for early stopping only. Return ``self``.

        Seed every random source the fit uses from ``seed``, the model's framework included
        (Keras, PyTorch, ...): the runner seeds only Python's ``random`` and numpy's global
        generator, before the constructor."""
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

    # Optional, for ``fit`` / ``recommend`` (docs/plugins.md, "Saving and fold-in"); like ``score``,
    # not defined here, so that ``hasattr`` says whether a model has them:
    # - ``save(self, folder: Path) -> None``: write the fitted state into the (empty, existing)
    #   ``folder``, with no pickle: numpy arrays with :func:`save_arrays`, a Keras model in the
    #   ``.keras`` format plus its config as JSON.
    # - ``load(cls, folder: Path) -> Model`` (classmethod): the fitted model ``save`` wrote, its
    #   scores equal to the saved one's (``check_model`` checks it to 1e-6).
    # - ``fold_in(self, history: History) -> FoldedUsers``: a user the model never saw, from
    #   their list, in the form ``score`` accepts in place of user indices (exact for item-item
    #   models: the user's row; one least-squares solve with the item factors fixed for factor models).
    # - ``explain(self, history: History, items: np.ndarray) -> np.ndarray``: for each of
    #   ``items``, the position in ``history`` of the entry that contributed most to its score
    #   (-1: none did); item-item models can say it, the ``why`` column of ``recommend``.


@dataclass(frozen=True)
class History:
    """One user's list as ``fold_in`` gets it: anime of the training vocabulary (indices), each with
    its rating (0 = not scored, else 1-10) and interaction label (-1 = unknown taste, 1 liked,
    0 disliked), by the protocol's rules (``recommend`` maps a MyAnimeList list this way)."""

    item: np.ndarray  # int32 indices into the training vocabulary, distinct
    rating: np.ndarray  # float32, 0 = not a rating example
    label: np.ndarray  # int8, -1 = not an interaction example
    n_items: int

    def __len__(self) -> int:
        return len(self.item)

    @classmethod
    def of_user(cls, part: Interactions, user: int) -> "History":
        """The pairs of ``user`` in ``part`` (e.g. a split's train part) as a history."""
        mine = part.user == user
        return cls(part.item[mine].astype(np.int32), part.rating[mine].astype(np.float32),
                   part.label[mine].astype(np.int8), part.n_items)


@dataclass(frozen=True)
class FoldedUsers:
    """Users the model never saw, as ``fold_in`` returns them and ``score`` accepts them.

    ``rows``: the model's own representation, one row per user (e.g. a sparse row of liked anime
    for an item-item model, the factor vector for a factor model)."""

    rows: Any

    def __len__(self) -> int:
        return self.rows.shape[0]


#: The files :func:`save_arrays` writes: the hyperparameters, and one ``.npy`` per array in a folder.
PARAMS_FILE = "params.json"
ARRAYS_DIR = "arrays"
#: Arrays larger than this are memory-mapped when loaded (read-only): a saved EASE matrix of
#: 200 MB then costs nothing to load, and scoring a user reads only the rows it needs.
MMAP_BYTES = 1 << 20


def save_arrays(folder, params: Mapping[str, Any], **arrays: Any) -> None:
    """Save a numpy model: ``params.json`` (hyperparameters) and ``arrays/<name>.npy`` for each
    array or scalar (no object arrays: they would need pickle)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    (folder / ARRAYS_DIR).mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype == object or not key.isidentifier():
            raise TypeError(f"save_arrays: {key!r} must be a numeric array with a plain name (no pickle)")
        np.save(folder / ARRAYS_DIR / f"{key}.npy", value, allow_pickle=False)
    (folder / PARAMS_FILE).write_text(json.dumps(_plain(dict(params)), sort_keys=True), encoding="utf-8")


def load_arrays(folder) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What :func:`save_arrays` wrote: (hyperparameters, arrays), read with ``allow_pickle=False``;
    arrays over :data:`MMAP_BYTES` are memory-mapped read-only."""
    import json
    from pathlib import Path

    folder = Path(folder)
    params = json.loads((folder / PARAMS_FILE).read_text(encoding="utf-8"))
    arrays = {}
    for path in sorted((folder / ARRAYS_DIR).glob("*.npy")):
        big = path.stat().st_size > MMAP_BYTES
        arrays[path.stem] = np.load(path, mmap_mode="r" if big else None, allow_pickle=False)
    return params, arrays


def _plain(value: Any) -> Any:
    """Hyperparameters as JSON: tuples become lists (read back as tuples by :func:`from_saved_params`)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_saved_params(cls: type, params: Mapping[str, Any]):
    """An unfitted ``cls`` built from saved hyperparameters, lists turned back into tuples where the
    default is a tuple (JSON has no tuples; ``get_params`` must read back what was saved)."""
    defaults = param_defaults(cls)
    fixed = {k: (tuple(v) if isinstance(defaults.get(k), tuple) and isinstance(v, list) else v)
             for k, v in params.items() if k in defaults}
    return cls(**fixed)


def param_defaults(cls: type) -> dict[str, Any]:
    """Hyperparameters with their defaults, read from the signature of ``cls.__init__``."""
    out: dict[str, Any] = {}
    for p in inspect.signature(cls).parameters.values():
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


def check_flag(params: Mapping[str, Any], name: str) -> None:
    """Raise ValueError unless ``params[name]`` is True or False (absent: no check)."""
    if name in params and not isinstance(params[name], (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {params[name]!r}")


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
