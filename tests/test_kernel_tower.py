"""kernel-tower: the two models' blend, its weight chosen on the validation ranking ``tune`` uses."""

import dataclasses

import numpy as np
import pytest

from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import Interactions
from animerec_bench.testing import check_model, synthetic_features, synthetic_split

pytestmark = pytest.mark.slow
pytest.importorskip("keras")

from animerec_bench.builtin.kernel_tower import DEFAULT_WEIGHT, WEIGHT_GRID, KernelTower, _standardised  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    train, valid, _ = synthetic_split(0)
    features = synthetic_features(train.n_items)
    model = KernelTower(tower_epochs=1).fit(train, valid, tasks=("ranking",), seed=0, features=features)
    return model, train, valid, features


def test_passes_check_model():
    check_model(KernelTower, tower_epochs=1, weight=0.3)


def test_the_weight_is_the_best_of_the_grid_on_tunes_validation_ranking(fitted):
    model, train, valid, features = fitted
    assert model.history_["weight"] == list(WEIGHT_GRID)
    ndcg = model.history_["val_ndcg@10"]
    assert model.weight_ == WEIGHT_GRID[int(np.argmax(ndcg))]
    data = RankingData.validation(train, valid)
    model.set_item_features(features)
    for i, weight in enumerate(WEIGHT_GRID):  # scored again the way tune scores a trial: the same bits,
        model.weight_ = weight               # though fit scores the two models once for all weights
        assert evaluate(data, model.score, ks=(10,))["ndcg@10"] == ndcg[i]


def test_the_score_is_the_blend_of_the_two_models_standardised_scores(fitted):
    model, _, _, features = fitted
    model.set_item_features(features)
    users = np.arange(20)
    model.weight_ = 0.3
    kernel, tower = _standardised(model.kernel_.score(users)), _standardised(model.tower_.score(users))
    np.testing.assert_allclose(model.score(users), 0.7 * kernel + 0.3 * tower, atol=1e-5)
    np.testing.assert_allclose(tower.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(tower.std(axis=1), 1, atol=1e-4)


def test_without_validation_the_default_weight_and_a_given_weight_is_kept():
    train, valid, _ = synthetic_split(0)
    features = synthetic_features(train.n_items)
    alone = KernelTower(tower_epochs=1).fit(train, None, tasks=("ranking",), seed=0, features=features)
    assert alone.weight_ == DEFAULT_WEIGHT and alone.history_["weight"] == []
    given = KernelTower(weight=0.2)
    assert given._choose_weight(train, valid, features, started=0.0) == 0.2 and given.history_["weight"] == []


def test_on_a_cold_split_the_weight_is_chosen_over_the_validation_anime_only():
    """As the season protocols give it: validation anime without train pairs, and features for the
    anime fit may know only (the test anime's come after fit), fewer than the vocabulary."""
    train, valid, _ = synthetic_split(0)
    n = train.n_items
    lo, hi = n - 20, n - 10  # validation anime lo..hi-1, test anime hi..n-1
    pairs = Interactions(*(np.concatenate([getattr(train, f), getattr(valid, f)])
                           for f in ("user", "item", "rating", "label")), train.n_users, n)
    cold_train, cold_valid = pairs.subset(pairs.item < lo), pairs.subset((pairs.item >= lo) & (pairs.item < hi))
    features = synthetic_features(n)
    model = KernelTower(tower_epochs=1).fit(cold_train, cold_valid, tasks=("ranking",), seed=0,
                                            features=features.head(hi))
    ndcg = model.history_["val_ndcg@10"]
    assert len(ndcg) == len(WEIGHT_GRID) and model.weight_ == WEIGHT_GRID[int(np.argmax(ndcg))]
    data = dataclasses.replace(RankingData.validation(cold_train, cold_valid), candidates=(lo, hi))

    def padded(users):  # score() as tune's trial would use it at fit's features: hi columns
        return np.pad(model.score(users), ((0, 0), (0, n - hi)), constant_values=-np.inf)
    for i, weight in enumerate(WEIGHT_GRID):
        model.weight_ = weight
        assert evaluate(data, padded, ks=(10,))["ndcg@10"] == ndcg[i]
    model.set_item_features(features)
    assert model.score(np.arange(5)).shape == (5, n)
