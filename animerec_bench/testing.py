"""Conformance checks for model plugins: the same ones every built-in model passes.

In a plugin's own tests::

    from animerec_bench.testing import check_model

    def test_my_model_conforms():
        check_model(MyModel, epochs=2)   # keyword arguments: hyperparameters for a quick fit

Each failed check raises ``AssertionError`` naming the model and the check. The data are a
small seeded synthetic split with latent structure (a few hundred users and anime, both tasks,
some pairs an example of only one task), built in memory, so the checks take seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from animerec_bench import tasks as tasks_mod
from animerec_bench.execution.tuning import space_problem
from animerec_bench.model import Interactions, PredictionError, param_defaults, validate_params, validate_predictions
from animerec_bench.plugins.registry import validate_model_class


def synthetic_split(seed: int = 0, n_users: int = 300, n_items: int = 200, pairs_per_user: int = 24,
                    ) -> tuple[Interactions, Interactions, Interactions]:
    """Train, valid, test of a small synthetic data set with latent taste (seeded, in memory).

    Ratings follow ``5.5 + user bias + item bias + <taste, traits> + noise`` rounded to 1-10;
    a pair is positive when its rating is above 5. About 10% of pairs are rating-only and 10%
    interaction-only, so joint models meet the masking they must handle. Every user and item
    appears in train, and test pairs never appear in train or valid.
    """
    rng = np.random.default_rng(seed)
    taste = rng.normal(0, 1, (n_users, 3))
    traits = rng.normal(0, 1, (n_items, 3))
    user_bias = rng.normal(0, 1, n_users)
    item_bias = rng.normal(0, 0.8, n_items)
    popularity = rng.pareto(1.5, n_items) + 0.1
    popularity /= popularity.sum()
    users, items = [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=pairs_per_user, replace=False, p=popularity)
        users.append(np.full(pairs_per_user, u))
        items.append(chosen)
    user = np.concatenate(users).astype(np.int32)
    item = np.concatenate(items).astype(np.int32)
    # Make sure every item is seen at least once (first pairs of random users, replaced in place).
    missing = np.setdiff1d(np.arange(n_items), item)
    item[rng.choice(len(item), size=len(missing), replace=False)] = missing
    key = user.astype(np.int64) * n_items + item
    _, first = np.unique(key, return_index=True)
    user, item = user[np.sort(first)], item[np.sort(first)]

    score = (5.5 + user_bias[user] + item_bias[item] + (taste[user] * traits[item]).sum(1)
             + rng.normal(0, 1.0, len(user)))
    rating = np.clip(np.round(score), 1, 10).astype(np.float32)
    label = (rating > 5).astype(np.int8)
    kind = rng.random(len(user))
    label[kind < 0.1] = -1            # rating-only pairs
    rating[kind > 0.9] = 0.0          # interaction-only pairs

    # Split: the first two pairs of each user (in shuffled order) go to train, so all are warm.
    order = rng.permutation(len(user))
    part = np.where(rng.random(len(user)) < 0.7, 0, np.where(rng.random(len(user)) < 0.5, 1, 2))
    seen_u = np.zeros(n_users, bool)
    seen_i = np.zeros(n_items, bool)
    for j in order:
        if not seen_u[user[j]] or not seen_i[item[j]]:
            part[j] = 0
        seen_u[user[j]] = seen_i[item[j]] = True

    def take(p: int) -> Interactions:
        m = part == p
        return Interactions(user[m], item[m], rating[m], label[m], n_users, n_items)

    return take(0), take(1), take(2)


#: Key of the ``score`` matrix among a fit's outputs (not a task name).
SCORE = "score(user)"


def _check_score(name: str, model, users: np.ndarray, n_items: int) -> np.ndarray:
    """``model.score(users)``: one finite float per (user, anime of the training vocabulary)."""
    try:
        raw = model.score(users.astype(np.int32).copy())
    except Exception as exc:
        raise _fail(name, "score", f"score raised {type(exc).__name__}: {exc}") from exc
    try:
        got = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _fail(name, "score", f"score returned {type(raw).__name__}, expected a float array") from exc
    if got.shape != (len(users), n_items):
        raise _fail(name, "score", f"score(user) has shape {got.shape}, expected (len(user), n_items) = "
                                   f"({len(users)}, {n_items})")
    bad = int((~np.isfinite(got)).sum())
    if bad:
        raise _fail(name, "score", f"{bad} NaN/inf score(s) of {got.size}")
    return got.reshape(-1)


def _fail(name: str, check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_model({name}): {check}: {detail}")


def _frozen(part: Interactions) -> Interactions:
    """A copy whose arrays are read-only, so a fit that writes into its inputs fails loudly."""
    def frozen(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a.setflags(write=False)
        return a

    return Interactions(frozen(part.user), frozen(part.item), frozen(part.rating), frozen(part.label),
                        part.n_users, part.n_items)


def _task_runs(cls) -> list[tuple[str, ...]]:
    return [tuple(cls.tasks)] if getattr(cls, "joint", False) else [(t,) for t in cls.tasks]


def check_model(model_cls: type, *, seed: int = 0, data_seed: int = 0, **params: Any) -> dict[str, Any]:
    """Run the conformance checks on ``model_cls`` built with ``params``; return a short summary.

    Checks, in order: a valid declaration and search space (``tuning.space_problem``);
    hyperparameters readable from ``__init__``, accepted by the model's ``validate_params`` and
    round-tripping through ``get_params()``; for each task run (all tasks at once for a joint
    model, else one per task): ``fit`` returns the instance, leaves its inputs unchanged, and
    ``predict`` gives every fitted pointwise task one finite score per pair in range, and
    ``score`` (where the model has it) one finite score per (test user, anime); a second fit with
    the same seed, made after the *test* targets were perturbed, gives the same predictions and scores
    (determinism, and proof that the test labels cannot reach ``fit``); ``fit`` also works
    without a validation split; a model with ``save``/``load`` scores the same after a round trip
    through a folder (to 1e-6).
    """
    name = getattr(model_cls, "name", getattr(model_cls, "__name__", repr(model_cls)))
    _check_declaration(name, model_cls)
    got = _checked_params(name, model_cls, params)
    train, valid, test = synthetic_split(data_seed)
    test_pairs = set(zip(test.user.tolist(), test.item.tolist()))
    fit_pairs = set(zip(train.user.tolist(), train.item.tolist())) | set(zip(valid.user.tolist(), valid.item.tolist()))
    assert not test_pairs & fit_pairs, "check_model's own split leaks test pairs"
    runs = [_check_run(name, model_cls, got, (train, valid, test), tasks, seed) for tasks in _task_runs(model_cls)]
    _check_fit_without_validation(name, model_cls, got, train, seed)
    return {"model": name, "runs": runs}


def _check_declaration(name: str, model_cls: type) -> None:
    """The class attributes the registry needs, and a search space ``tune`` can sample."""
    problem = validate_model_class(model_cls)
    if problem:
        raise _fail(name, "declaration", problem)
    problem = space_problem(model_cls)
    if problem:
        raise _fail(name, "search space", problem)


def _checked_params(name: str, model_cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` are ``__init__`` arguments the model accepts, and the built model's
    ``get_params()`` gives back every argument unchanged, so the runner can rebuild it: returns them."""
    defaults = param_defaults(model_cls)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise _fail(name, "hyperparameters", f"{unknown} are not keyword arguments of __init__ "
                                             f"(known: {sorted(defaults)})")
    try:
        validate_params(model_cls, {**defaults, **params})
    except Exception as exc:  # the runner would refuse to run these settings
        raise _fail(name, "validate_params", f"rejects {params or 'the defaults'}: {type(exc).__name__}: "
                                             f"{exc}") from exc
    try:
        model = model_cls(**params)
    except Exception as exc:
        raise _fail(name, "construction", f"{model_cls.__name__}(**{params!r}) raised "
                                          f"{type(exc).__name__}: {exc}") from exc
    got = _get_params(name, model)
    expected = {**defaults, **params}
    if set(got) != set(expected):
        raise _fail(name, "get_params", f"returned keys {sorted(got)}, expected the __init__ arguments "
                                        f"{sorted(expected)}")
    for key, value in expected.items():
        if not _same(got[key], value):
            raise _fail(name, "get_params", f"{key!r} reads back as {got[key]!r}, was given {value!r} "
                                            f"(store each argument under its own name, unchanged)")
    clone = model_cls(**got)
    if not _same(_get_params(name, clone), got):
        raise _fail(name, "get_params", "building a model from get_params() does not round-trip")
    return got


def _check_run(name: str, model_cls: type, params: dict[str, Any],
               split: tuple[Interactions, Interactions, Interactions], tasks: tuple[str, ...], seed: int) -> dict:
    """Fit and predict ``tasks`` twice with ``seed``, the second time with the test targets
    perturbed: the predictions must agree (determinism, and the test labels never reach ``fit``)."""
    train, valid, test = split
    first = _fit_predict(name, model_cls, params, train, valid, test, tasks, seed)
    perturbed = Interactions(test.user, test.item, np.where(test.rating > 0, 11 - test.rating, 0).astype(np.float32),
                             np.where(test.label >= 0, 1 - test.label, -1).astype(np.int8),
                             test.n_users, test.n_items)
    second = _fit_predict(name, model_cls, params, train, valid, perturbed, tasks, seed)
    for task in first:
        diff = float(np.max(np.abs(first[task] - second[task]))) if len(first[task]) else 0.0
        if diff > 1e-6:
            raise _fail(name, "determinism", f"two fits with seed {seed} on task(s) {tasks} predict "
                                             f"differently for {task!r} (max difference {diff:.3g}); seed "
                                             f"every random source from fit's `seed`, and never read the test split")
    return {"tasks": tasks, "mean": {t: float(first[t].mean()) for t in first}}


def _check_fit_without_validation(name: str, model_cls: type, params: dict[str, Any], train: Interactions,
                                  seed: int) -> None:
    """``fit(train, None, ...)`` works: ``animerec-bench fit`` (for ``recommend``) and ``season-v2``'s
    refit on train and validation hold nothing out."""
    tasks = _task_runs(model_cls)[0]
    try:
        model_cls(**params).fit(_frozen(train), None, tasks=tasks, seed=seed, **_feature_kwargs(model_cls, train))
    except Exception as exc:
        raise _fail(name, "fit without validation", f"fit(train, None, ...) raised {type(exc).__name__}: {exc}") from exc


def _get_params(name: str, model) -> dict[str, Any]:
    getter = getattr(model, "get_params", None)
    if getter is not None:
        try:
            got = getter()
        except Exception as exc:  # Model.get_params reads each __init__ argument's attribute
            raise _fail(name, "get_params", f"raised {type(exc).__name__}: {exc} (store each __init__ argument "
                                            f"as an attribute of the same name)") from exc
    else:  # a plugin need not subclass Model: read the attributes as Model.get_params does
        missing = [k for k in param_defaults(type(model)) if not hasattr(model, k)]
        if missing:
            raise _fail(name, "hyperparameters", f"__init__ arguments {missing} are not stored as attributes "
                                                 f"of the same name")
        got = {k: getattr(model, k) for k in param_defaults(type(model))}
    if not isinstance(got, dict):
        raise _fail(name, "get_params", f"returned {type(got).__name__}, expected a dict")
    return got


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else bool(np.array_equal(a, b))
    except Exception:
        return a is b


def synthetic_features(n_items: int, seed: int = 0):
    """Anime features for ``n_items`` synthetic anime (random genres, types, episode counts and
    titles from a small word list), as the framework builds them from real metadata."""
    import pyarrow as pa

    from animerec_bench.data.features import build

    rng = np.random.default_rng(seed)
    genres = ["Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Slice of Life"]
    words = ["hikari", "no", "sora", "kimi", "2nd", "season", "movie", "tokyo", "hero", "academia"]
    table = pa.table({
        "anime_id": pa.array(np.arange(n_items), pa.int32()),
        "name": [" ".join(rng.choice(words, 2)) for _ in range(n_items)],
        "genres": [sorted(set(rng.choice(genres, 2).tolist())) for _ in range(n_items)],
        "type": rng.choice(["TV", "Movie", "OVA"], n_items).tolist(),
        "episodes": pa.array([None if e == 0 else int(e) for e in rng.integers(0, 30, n_items)], pa.int32())})
    return build(table, np.arange(n_items), n_items)


def _feature_kwargs(model_cls, train: Interactions) -> dict[str, Any]:
    """``fit``'s ``features`` keyword for a model that declares ``item_features``, else none."""
    return {"features": synthetic_features(train.n_items)} if getattr(model_cls, "item_features", False) else {}


def _fit_predict(name, model_cls, params, train, valid, test, tasks, seed) -> dict[str, np.ndarray]:
    model = model_cls(**params)
    frozen_train, frozen_valid = _frozen(train), _frozen(valid)
    features = _feature_kwargs(model_cls, train)
    try:
        returned = model.fit(frozen_train, frozen_valid, tasks=tasks, seed=seed, **features)
        if features:  # as the framework does after fit: every anime's features, to score
            model.set_item_features(features["features"])
    except ValueError as exc:
        if "read-only" in str(exc):
            raise _fail(name, "fit leaves its inputs alone", f"fit wrote into the training/validation "
                                                             f"arrays: {exc}") from exc
        raise _fail(name, "fit", f"fit(tasks={tasks}) raised ValueError: {exc}") from exc
    except Exception as exc:
        raise _fail(name, "fit", f"fit(tasks={tasks}) raised {type(exc).__name__}: {exc}") from exc
    if returned is not model:
        raise _fail(name, "fit returns self", f"fit returned {type(returned).__name__}, expected the model itself")
    for split_name, original, given in (("train", train, frozen_train), ("valid", valid, frozen_valid)):
        for field in ("user", "item", "rating", "label"):
            if not np.array_equal(getattr(original, field), getattr(given, field)):
                raise _fail(name, "fit leaves its inputs alone", f"fit changed {split_name}.{field}")
    pointwise = tuple(t for t in tasks if tasks_mod.get(t).pointwise)
    scores: dict[str, np.ndarray] = {}
    if callable(getattr(model, "score", None)):
        scores[SCORE] = _check_score(name, model, np.unique(test.user), train.n_items)
    if not pointwise:
        _check_round_trip(name, model, test, scores)
        return scores
    try:
        raw = model.predict(test.user.copy(), test.item.copy())
    except Exception as exc:
        raise _fail(name, "predict", f"predict raised {type(exc).__name__}: {exc}") from exc
    try:
        scores.update(validate_predictions(name, raw, len(test), pointwise))
    except PredictionError as exc:
        raise _fail(name, "predictions", str(exc)) from exc
    for task in pointwise:
        plausible = tasks_mod.get(task).plausible_range()
        if plausible is not None and len(scores[task]):
            lo, hi = float(scores[task].min()), float(scores[task].max())
            if lo < plausible[0] or hi > plausible[1]:  # e.g. ratings far outside 1-10: the scale is not learned
                lo_ok, hi_ok = tasks_mod.get(task).prediction_range or plausible
                raise _fail(name, "predictions", f"{task} scores span {lo:.3g}..{hi:.3g}, expected about "
                                                 f"{lo_ok:g}-{hi_ok:g}")
    _check_round_trip(name, model, test, scores)
    return scores


def _check_round_trip(name: str, model, test: Interactions, scores: dict[str, np.ndarray]) -> None:
    """A model with ``save``/``load``: saved into an empty folder and loaded back, it scores and
    predicts the same to 1e-6, its hyperparameters read back the same, and no file is a pickle."""
    import tempfile
    from pathlib import Path

    has = [callable(getattr(model, m, None)) for m in ("save", "load")]
    if not any(has):
        return
    if not all(has):
        raise _fail(name, "save/load", "declares only one of save(folder) and load(folder); a model needs both")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model.save(Path(tmp))
            for file in Path(tmp).rglob("*"):
                if file.suffix in (".pkl", ".pickle"):
                    raise _fail(name, "save/load", f"save wrote {file.name}: no pickle (use .npz or .keras)")
            loaded = type(model).load(Path(tmp))
        except AssertionError:
            raise
        except Exception as exc:
            raise _fail(name, "save/load", f"raised {type(exc).__name__}: {exc}") from exc
    if not _same(_get_params(name, loaded), _get_params(name, model)):
        raise _fail(name, "save/load", f"the loaded model's get_params() {_get_params(name, loaded)} differs from "
                                       f"the saved one's {_get_params(name, model)}")
    pointwise = tuple(t for t in scores if t != SCORE)
    again: dict[str, np.ndarray] = {}
    if SCORE in scores:
        again[SCORE] = _check_score(name, loaded, np.unique(test.user), test.n_items)
    if pointwise:
        again.update(validate_predictions(name, loaded.predict(test.user.copy(), test.item.copy()), len(test), pointwise))
    for key, value in scores.items():
        diff = float(np.max(np.abs(value - again[key]))) if len(value) else 0.0
        if diff > 1e-6:
            raise _fail(name, "save/load", f"the loaded model's {key} differs from the saved one's by {diff:.3g}")
