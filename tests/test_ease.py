"""EASE: the closed form on a case worked by hand, and fit + score on a synthetic split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse

from animerec_bench.builtin import ease
from animerec_bench.builtin.ease import EASE
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import Interactions
from animerec_bench.testing import synthetic_split


def _train() -> Interactions:
    # Positives: user 0 likes anime 0, 1; user 1 likes 1, 2; user 2 likes 0, 1, 2. Not positives:
    # (0, 3) label 0 and (1, 0) rating-only: anime 3 has no positive at all.
    pairs = [(0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 2, 1), (2, 0, 1), (2, 1, 1), (2, 2, 1), (0, 3, 0), (1, 0, -1)]
    user, item, label = (np.array(c) for c in zip(*pairs))
    return Interactions(user.astype(np.int32), item.astype(np.int32), np.full(len(user), 7, np.float32),
                        label.astype(np.int8), 3, 4)


def test_weights_and_scores_by_hand():
    # On anime 0-2: XᵀX = [[2, 2, 1], [2, 3, 2], [1, 2, 2]]; with λ = 2, G = [[4, 2, 1], [2, 5, 2], [1, 2, 4]],
    # det 51, P = G⁻¹ = [[16, -6, -1], [-6, 15, -6], [-1, -6, 16]] / 51, so B[i, j] = -P[i, j] / P[j, j]:
    # B = [[0, 6/15, 1/16], [6/16, 0, 6/16], [1/16, 6/15, 0]].
    model = EASE(l2=2.0).fit(_train(), None, tasks=("ranking",), seed=0)
    assert model.active_.tolist() == [0, 1, 2]  # anime 3 has no positive: left out of the inversion
    want_b = np.array([[0, 0.4, 0.0625], [0.375, 0, 0.375], [0.0625, 0.4, 0]])
    np.testing.assert_allclose(model.weights_, want_b, rtol=1e-6, atol=1e-7)
    # Scores: the sum of B's rows of the user's positives; anime 3 scores 0.
    got = model.score(np.array([0, 1, 2]))
    assert got.shape == (3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, [[0.375, 0.4, 0.4375, 0], [0.4375, 0.4, 0.375, 0], [0.4375, 0.8, 0.4375, 0]],
                               rtol=1e-6)
    assert model.l2_ == 2.0 and model.history_["l2"] == []  # a given λ: no search


def test_weights_match_a_float64_inverse_on_random_data():
    rng = np.random.default_rng(0)
    x = (rng.random((200, 60)) < 0.2).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 7.0 * np.eye(60))
    want = -p / np.diag(p)[None, :]
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(ease._weights(x.T @ x, 7.0), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="l2 must be > 0"):
        ease._weights(x.T @ x, 0.0)


def test_fit_chooses_l2_on_validation_and_ranks_better_than_chance():
    train, valid, test = synthetic_split(seed=4)
    seen = []
    model = EASE(l2_grid=(1.0, 30.0, 1000.0))
    model.on_progress = seen.append
    assert model.fit(train, valid, tasks=("ranking",), seed=0) is model
    history = model.history_
    assert history["l2"] == [1.0, 30.0, 1000.0]
    assert model.l2_ == history["l2"][int(np.argmax(history["val_ndcg@10"]))]
    # the chosen λ's validation NDCG is what evaluate gives for the kept weights
    assert evaluate(RankingData.from_parts(train, valid), model.score, ks=(10,))["ndcg@10"] \
        == pytest.approx(max(history["val_ndcg@10"]))
    assert [s["l2"] for s in seen] == [1.0, 30.0, 1000.0, model.l2_]
    assert len(set(history["val_ndcg@10"])) > 1  # λ matters
    data = RankingData.from_parts(train, test, (valid,))
    got = evaluate(data, model.score)["ndcg@10"]
    rng = np.random.default_rng(0)
    chance = evaluate(data, lambda u: rng.random((len(u), train.n_items)))["ndcg@10"]
    assert got > 2 * chance
    again = EASE(l2_grid=(1.0, 30.0, 1000.0)).fit(train, valid, tasks=("ranking",), seed=1)
    np.testing.assert_array_equal(again.weights_, model.weights_)  # closed form: no randomness


def test_fit_without_validation_uses_the_default_l2():
    train, _, _ = synthetic_split(seed=0)
    model = EASE().fit(train, None, tasks=("ranking",), seed=0)
    assert model.l2_ == ease.DEFAULT_L2
    with pytest.raises(ValueError, match="serves"):
        EASE().fit(train, None, tasks=("rating",), seed=0)


def test_declared_as_a_numpy_baseline_plugin():

    registered = []
    ease.register_models(registered.append)
    assert registered == [EASE]
    assert EASE.tasks == ("ranking",) and EASE.baseline and EASE.framework == "numpy"
    assert EASE().get_params() == {"l2": None, "l2_grid": (50.0, 100.0, 200.0)}
    assert EASE.version == "2"


@pytest.mark.parametrize("users", [30, 200])  # fewer users than anime (Woodbury side), and more
def test_one_eigendecomposition_gives_every_lambdas_weights(users):
    rng = np.random.default_rng(users)
    x = (rng.random((users, 60)) < 0.2).astype(np.float32)
    x[:, 0] = 1.0
    inverses = ease.GramInverses(scipy.sparse.csr_matrix(x))
    assert inverses.by_users == (users < 60)
    for l2 in (3.0, 30.0):
        want = ease._weights(x.T.astype(np.float64) @ x, l2)
        np.testing.assert_allclose(inverses.weights(l2), want, rtol=1e-3, atol=1e-4)


def test_lambda_is_chosen_on_tunes_validation_ranking():
    """fit's validation ranking excludes valid.other (the split's neither-task pairs), as tune's does."""
    train, valid, _ = synthetic_split(seed=4)
    rng = np.random.default_rng(0)
    # neither-task pairs: for each user some anime in none of the parts (rating 0, label -1)
    taken = set(zip(train.user.tolist(), train.item.tolist())) | set(zip(valid.user.tolist(), valid.item.tolist()))
    pairs = [(u, i) for u, i in zip(rng.integers(0, train.n_users, 3000), rng.integers(0, train.n_items, 3000))
             if (u, i) not in taken]
    u, i = (np.array(c, np.int32) for c in zip(*sorted(set(pairs))))
    other = Interactions(u, i, np.zeros(len(u), np.float32), np.full(len(u), -1, np.int8),
                         train.n_users, train.n_items)
    with_other = dataclasses.replace(valid, other=other)
    model = EASE(l2_grid=(1.0, 30.0, 1000.0)).fit(train, with_other, tasks=("ranking",), seed=0)
    tune_ranking = RankingData.from_parts(train, valid, (other,))
    assert RankingData.validation(train, with_other).excluded.tolist() == tune_ranking.excluded.tolist()
    best = evaluate(tune_ranking, model.score, ks=(10,))["ndcg@10"]
    assert best == pytest.approx(max(model.history_["val_ndcg@10"]))
    train_only = evaluate(RankingData.from_parts(train, valid), model.score, ks=(10,))["ndcg@10"]
    assert best != pytest.approx(train_only)  # the neither-task pairs changed the ranking scored


def test_the_worker_hands_fit_the_split_other_pairs(embedded_split):
    valid = embedded_split.valid_for_fit()
    assert valid.other is embedded_split.other and len(valid.other) > 0
    assert valid.user is embedded_split.valid.user


@pytest.mark.parametrize("users", [30, 200])
def test_a_small_grid_and_a_large_one_give_the_same_weights(users):
    """Grids under EIGEN_GRID_MIN take a Cholesky inverse per λ, larger ones one eigendecomposition:
    the same B either way (float32 on both paths, as in the test above)."""
    rng = np.random.default_rng(users)
    x = (rng.random((users, 60)) < 0.2).astype(np.float32)
    x[:, 0] = 1.0
    small, large = ease.EASE(l2_grid=(3.0, 30.0)), ease.EASE(l2_grid=tuple(float(v) for v in range(3, 40, 6)))
    assert len(small.l2_grid) < ease.EIGEN_GRID_MIN <= len(large.l2_grid)
    for model in (small, large):
        model.x_ = scipy.sparse.csr_matrix(x)
    for l2 in (3.0, 30.0):
        np.testing.assert_allclose(small._grid_weights(None)(l2), large._grid_weights(None)(l2), rtol=1e-3, atol=1e-4)
