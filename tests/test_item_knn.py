"""itemknn (built in): conformance, quality on the real split's validation part, predictions
against the formula written as a loop, and ``score`` against ``predict``."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin import item_knn
from animerec_bench.builtin.item_knn import ItemKNN
from animerec_bench.testing import check_model, synthetic_split


def test_conforms_with_defaults_and_small_neighbourhoods():
    summary = check_model(ItemKNN)
    assert [r["tasks"] for r in summary["runs"]] == [("rating",), ("interaction",)]
    check_model(ItemKNN, k=2, min_support=1, shrinkage=0.0)


def test_registered_as_a_tunable_builtin():
    registered = []
    item_knn.register_models(registered.append)
    assert registered == [ItemKNN] and ItemKNN.name == "itemknn"
    assert set(ItemKNN.search_space) == {"k", "shrinkage", "reg"}


def test_beats_the_bias_baseline_on_mal2016_5k_validation(embedded_split):
    from animerec_bench.builtin.baselines import Bias
    from animerec_bench.metrics import rmse

    split = embedded_split
    part, y = split.valid.for_task("rating")
    knn = ItemKNN().fit(split.train, split.valid, tasks=("rating",), seed=0)
    bias = Bias().fit(split.train, split.valid, tasks=("rating",), seed=0)
    knn_rmse = rmse(y, knn.predict(part.user, part.item)["rating"])
    bias_rmse = rmse(y, bias.predict(part.user, part.item)["rating"])
    assert knn_rmse < bias_rmse - 0.05, (knn_rmse, bias_rmse)  # measured: 1.100 vs 1.208


def _grid(model, users, n_items):
    """``predict`` on every (user, anime) pair of ``users``, as the harness ranks a model without ``score``."""
    preds = model.predict(np.repeat(users, n_items), np.tile(np.arange(n_items), len(users)))
    return {task: p.reshape(len(users), n_items) for task, p in preds.items()}


@pytest.mark.parametrize("params", [{}, {"k": 2, "min_support": 1, "reg": 0.0}], ids=["defaults", "k2"])
def test_score_is_the_interaction_prediction_of_every_anime_else_the_rating_one(params, monkeypatch):
    """``score`` ranks what the harness ranked before it existed (the interaction predictions, else
    the rating ones): same values, so the same lists (ranking's top_k, ties to the lower anime).
    One user a block, on two threads: each user's row is its own."""
    from animerec_bench.builtin import item_knn
    from animerec_bench.evaluation.ranking import top_k
    from animerec_bench.support import threads

    monkeypatch.setattr(item_knn, "USER_BLOCK", 1)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)

    train, valid, _ = synthetic_split(seed=5, n_users=90, n_items=70, pairs_per_user=20)
    users = np.array([0, 3, 41, 89, train.n_users + 2])  # the last one unknown: the baseline alone
    for tasks, task in ((("interaction",), "interaction"), (("rating",), "rating")):
        model = ItemKNN(**params).fit(train, valid, tasks=tasks, seed=0)
        want = _grid(model, users, train.n_items)[task]
        got = model.score(users)
        assert got.shape == (len(users), train.n_items)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(top_k(got, 10), top_k(want, 10))


def _loop_terms(model, f, user, item):
    """The neighbour term written out per pair: the ``k`` largest s_qj over the user's supported
    items j, ``sum s e / (sum s + reg)``."""
    out = []
    for u, i in zip(user, item):
        lo, hi = f["indptr"][u], f["indptr"][u + 1]
        q = f["col"][i]
        if q < 0 or lo == hi:
            out.append(0.0)
            continue
        s = f["sim"][f["nbr"][lo:hi], q].astype(np.float64)  # stored neighbour-major: row j, column q
        e = f["resid"][lo:hi].astype(np.float64)
        top = np.argsort(-s, kind="stable")[:model.k]
        weight = s[top].sum() + model.reg
        out.append(float((s[top] * e[top]).sum() / weight) if weight > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_predictions_equal_the_neighbour_formula_written_as_a_loop(k):
    train, valid, test = synthetic_split(seed=6, n_users=80, n_items=60, pairs_per_user=20)
    model = ItemKNN(k=k, min_support=2).fit(train, valid, tasks=("rating",), seed=0)
    f = model.fitted_["rating"]
    base = f["mu"] + f["bu"][test.user] + f["bi"][test.item]
    want = np.clip(base + _loop_terms(model, f, test.user, test.item), 1.0, 10.0)
    np.testing.assert_allclose(model.predict(test.user, test.item)["rating"], want, rtol=0, atol=1e-6)
