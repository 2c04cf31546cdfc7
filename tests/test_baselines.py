"""Baselines: closed-form behaviour on hand-made data, conformance, and their figures on the real split."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin.baselines import BASELINES, AlwaysPositive, Bias, GlobalMean, Popularity
from animerec_bench.metrics import auc, rmse
from animerec_bench.model import Interactions
from animerec_bench.testing import check_model

from .conftest import FRAMEWORKS, imported_after


def _parts(user, item, rating, label, n_users, n_items) -> Interactions:
    return Interactions(np.asarray(user, np.int32), np.asarray(item, np.int32), np.asarray(rating, np.float32),
                        np.asarray(label, np.int8), n_users, n_items)


@pytest.mark.parametrize("cls", BASELINES, ids=lambda c: c.name)
def test_baseline_passes_check_model(cls):
    assert cls.baseline is True
    check_model(cls)


def test_global_mean_predicts_the_training_mean():
    train = _parts([0, 1, 2, 2], [0, 0, 1, 1], [2, 4, 9, 0], [0, -1, 1, 1], 3, 2)
    model = GlobalMean().fit(train, None, tasks=("rating",), seed=0)
    assert model.predict(np.array([0, 2]), np.array([1, 0]))["rating"] == pytest.approx([5.0, 5.0])


def test_bias_recovers_additive_ratings_without_regularisation():
    rng = np.random.default_rng(0)
    user_effect, item_effect = rng.normal(0, 1, 30), rng.normal(0, 1, 20)
    u, i = (g.ravel() for g in np.meshgrid(np.arange(30), np.arange(20), indexing="ij"))
    rating = 6 + user_effect[u] + item_effect[i]
    train = _parts(u, i, rating, np.full(len(u), -1), 30, 20)
    model = Bias(user_reg=0.0, item_reg=0.0, sweeps=20).fit(train, None, tasks=("rating",), seed=0)
    assert model.predict(u, i)["rating"] == pytest.approx(rating, abs=1e-6)
    assert model.epochs_ == 20


def test_bias_regularisation_shrinks_rarely_seen_items_toward_the_mean():
    # item 0: one rating of 10; item 1: fifty ratings of 10. Same raw average, different evidence.
    user = np.arange(51) % 51
    item = np.array([0] + [1] * 50)
    rating = np.full(51, 10.0)
    others = _parts(np.arange(51), np.full(51, 2), np.full(51, 4.0), np.full(51, -1), 51, 3)
    train = _parts(np.concatenate([user, others.user]), np.concatenate([item, others.item]),
                   np.concatenate([rating, others.rating]), np.full(102, -1), 51, 3)
    model = Bias(user_reg=1000.0, item_reg=5.0).fit(train, None, tasks=("rating",), seed=0)
    scores = model.predict(np.array([0, 0]), np.array([0, 1]))["rating"]
    assert model.mean_ < scores[0] < scores[1]


def test_popularity_shrinks_toward_the_global_rate_and_handles_unseen_items():
    # item 0: 1 of 1 positive; item 1: 9 of 10 positive; item 2: never an interaction example.
    item = np.array([0] + [1] * 10 + [2])
    label = np.array([1] + [1] * 9 + [0] + [-1])
    train = _parts(np.zeros(12), item, np.where(label < 0, 7, 0), label, 1, 3)
    model = Popularity(shrinkage=10.0).fit(train, None, tasks=("interaction",), seed=0)
    rate = 10 / 11
    expected = [(1 + 10 * rate) / 11, (9 + 10 * rate) / 20, rate]
    assert model.predict(np.zeros(3), np.array([0, 1, 2]))["interaction"] == pytest.approx(expected)


def test_always_positive_predicts_the_training_positive_rate():
    train = _parts([0, 0, 0, 0], [0, 1, 2, 3], [0, 0, 0, 0], [1, 1, 1, 0], 1, 4)
    model = AlwaysPositive().fit(train, None, tasks=("interaction",), seed=0)
    assert model.predict(np.zeros(3), np.arange(3))["interaction"] == pytest.approx([0.75] * 3)


def test_baselines_on_the_embedded_split(embedded_split):
    """The floor every learned model must clear (mal2016-5k / v1 / seed 0, test part)."""
    train, valid, test = embedded_split.train, embedded_split.valid, embedded_split.test
    rated, y = test.for_task("rating")
    mean = GlobalMean().fit(train, valid, tasks=("rating",), seed=0).predict(rated.user, rated.item)["rating"]
    bias = Bias().fit(train, valid, tasks=("rating",), seed=0).predict(rated.user, rated.item)["rating"]
    assert rmse(y, mean) == pytest.approx(1.583, abs=0.005)
    assert rmse(y, bias) == pytest.approx(1.215, abs=0.01)  # the reference: biases ~1.21

    labelled, t = test.for_task("interaction")
    pop = Popularity().fit(train, valid, tasks=("interaction",), seed=0).predict(labelled.user, labelled.item)
    always = AlwaysPositive().fit(train, valid, tasks=("interaction",), seed=0).predict(labelled.user, labelled.item)
    assert 0.68 < auc(t, pop["interaction"]) < 0.75
    assert auc(t, always["interaction"]) == pytest.approx(0.5)
    assert np.all(always["interaction"] > 0.5)  # on this data it labels every pair positive


def test_baselines_never_import_keras():
    code = ("from animerec_bench.plugins.registry import load_registry; from animerec_bench.testing import "
            "check_model; from animerec_bench.builtin.baselines import BASELINES\n"
            "[check_model(c) for c in BASELINES]; load_registry()")
    assert imported_after(code, FRAMEWORKS) == []


@pytest.mark.parametrize("cls", [GlobalMean, Bias, Popularity, AlwaysPositive], ids=lambda c: c.name)
def test_score_is_predict_over_every_anime(cls):
    """``score`` is what the harness ranked these by before they had one (``predict`` on every
    (user, anime) pair, :func:`.scores_from_predictions`): equal bit for bit, so the same lists;
    a user never seen in train gets the fallback predict gives."""
    from animerec_bench.evaluation.ranking import scores_from_predictions, top_k
    from animerec_bench.testing import synthetic_split

    train, valid, _ = synthetic_split(seed=4, n_users=40, n_items=30)
    model = cls().fit(train, valid, tasks=cls.tasks, seed=0)
    users = np.array([0, 5, 39, train.n_users + 3])
    want = scores_from_predictions(model, cls.tasks[0], train.n_items)(users)
    got = np.asarray(model.score(users))
    assert got.shape == (len(users), train.n_items)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(top_k(got, 10), top_k(want, 10))
