"""surprise-svd and surprise-knn-baseline: conformance, and the same predictions as Surprise's own."""

from __future__ import annotations

import numpy as np
import pytest
from animerec_peers import SurpriseKNNBaseline, SurpriseSVD

from animerec_bench.testing import check_model


def test_surprise_models_conform():
    check_model(SurpriseSVD)
    check_model(SurpriseSVD, biased=False, n_factors=5)
    check_model(SurpriseKNNBaseline)
    check_model(SurpriseKNNBaseline, k=3, min_k=2, shrinkage=0.0)


def _surprise_predictions(model, user, item) -> np.ndarray:
    """Surprise's own ``algo.predict`` (raw ids are our indices), one Python call per pair."""
    return np.array([model.algo_.predict(int(u), int(i)).est for u, i in zip(user, item)])


@pytest.mark.parametrize("biased", [True, False])
def test_svd_predicts_as_surprise_does_unknown_users_and_anime_included(with_unknowns, biased):
    train, (user, item) = with_unknowns
    model = SurpriseSVD(biased=biased).fit(train, None, tasks=("rating",), seed=3)
    assert not model.known_user_[:5].any() and not model.known_item_[:5].any() and model.known_user_[5:].all()
    ours = model.predict(user, item)["rating"]
    theirs = _surprise_predictions(model, user, item)
    assert np.abs(ours - theirs).max() < 1e-9
    # score is the same estimate before clipping, for every anime
    users = np.arange(40)
    assert np.abs(np.clip(model.score(users), 1, 10)[:, :60].ravel() - ours).max() < 1e-9
    # seeded: another seed, another model
    other = SurpriseSVD(biased=biased).fit(train, None, tasks=("rating",), seed=4).predict(user, item)["rating"]
    assert np.abs(other - ours).max() > 1e-3


def test_knn_baseline_predicts_as_surprise_does_unknown_users_and_anime_included(with_unknowns):
    train, (user, item) = with_unknowns
    model = SurpriseKNNBaseline(k=5).fit(train, None, tasks=("rating",), seed=0)
    ours = model.predict(user, item)["rating"]
    assert np.abs(ours - _surprise_predictions(model, user, item)).max() < 1e-6
    # score: every anime's predict for each user, unknown users and anime included (float64, same code path)
    users = np.unique(user)
    grid = model.predict(np.repeat(users, train.n_items), np.tile(np.arange(train.n_items), len(users)))["rating"]
    np.testing.assert_allclose(model.score(users), grid.reshape(len(users), train.n_items), rtol=0, atol=1e-12)


def test_knn_baseline_predicts_as_surprise_does_on_mal2016_5k(mal_split):
    """The real split: 300 random test pairs against Surprise's predict, and the whole test RMSE."""
    test, y = mal_split.test.for_task("rating")
    model = SurpriseKNNBaseline().fit(mal_split.train, mal_split.valid, tasks=("rating",), seed=0)
    pick = np.random.default_rng(0).choice(len(test), 300, replace=False)
    ours = model.predict(test.user[pick], test.item[pick])["rating"]
    assert np.abs(ours - _surprise_predictions(model, test.user[pick], test.item[pick])).max() < 1e-6
    rmse = float(np.sqrt(np.mean((model.predict(test.user, test.item)["rating"] - y) ** 2)))
    assert abs(rmse - 1.1506) < 5e-5, rmse  # the figure of Surprise itself on this split (peers_check.py)
