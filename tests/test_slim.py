"""slim: the ADMM solution meets SLIM's optimality (KKT) conditions, reduces to EASE without the L1
term and the sign constraint, and the model conforms; bad hyperparameters are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin import ease
from animerec_bench.builtin.ease import EASE
from animerec_bench.builtin.slim import SLIM, admm_slim
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.testing import check_model, synthetic_split

from .test_item_cosine import _random_train


@pytest.mark.parametrize("nonnegative", [True, False])
def test_the_admm_solution_meets_slims_kkt_conditions(nonnegative):
    # SLIM: min ½‖X - XW‖² + λ₁‖W‖₁ + ½λ₂‖W‖², diag(W) = 0 (and W >= 0). With g = XᵀX W - XᵀX + λ₂W
    # the gradient of the smooth part, at the optimum, off the diagonal: g + λ₁ sign(W) = 0 where
    # W ≠ 0; where W = 0, g >= -λ₁ (with W >= 0) or |g| <= λ₁ (without).
    rng = np.random.default_rng(0)
    x = (rng.random((120, 40)) < 0.2).astype(np.float64)
    gram = x.T @ x
    l1, l2, rho = 0.5, 3.0, 10.0
    result = admm_slim(gram, l1, l2, rho, 5000, nonnegative=nonnegative, tol=1e-10, dtype=np.float64)
    w = result.weights
    assert result.iterations < 5000 and result.primal <= 1e-10 and result.dual <= 1e-10
    # Tolerance from the residuals: ADMM's B-step makes g(B) + ρΓ = -ρ(C - C_previous) exactly, and
    # ρΓ is λ₁ sign(C) on C's support (within [-λ₁, λ₁], or <= λ₁ with W >= 0, off it); C - B moves
    # g by (XᵀX + λ₂I)(C - B), at most its largest absolute row sum times max |C - B| an entry.
    a = gram + l2 * np.eye(40)
    tol = result.dual + np.abs(a).sum(axis=1).max() * result.primal + 1e-9  # + float64 rounding
    assert tol < 1e-6
    g = gram @ w - gram + l2 * w
    off = ~np.eye(40, dtype=bool)
    support = (w != 0) & off
    assert np.all(np.diag(w) == 0)
    assert 0.1 < support.sum() / off.sum() < 0.9  # both kinds of entry are checked
    np.testing.assert_array_less(np.abs(g + l1 * np.sign(w))[support], tol)
    if nonnegative:
        assert w.min() == 0.0
        np.testing.assert_array_less(-l1 - tol, g[~support & off])
    else:
        assert w.min() < 0
        np.testing.assert_array_less(np.abs(g[~support & off]), l1 + tol)


def test_without_l1_and_the_sign_constraint_it_is_ease():
    rng = np.random.default_rng(1)
    x = (rng.random((200, 60)) < 0.2).astype(np.float64)
    result = admm_slim(x.T @ x, 0.0, 7.0, 7.0, 1000, nonnegative=False, tol=1e-9, dtype=np.float64)
    # EASE's closed form in float32, to the tolerance test_ease.py checks it against float64
    np.testing.assert_allclose(result.weights, ease._weights(x.T @ x, 7.0), rtol=1e-4, atol=1e-5)
    # the model, in float32: as close as float32 ADMM gets (residual ~1e-6 an entry)
    train, valid, _ = synthetic_split(seed=2)
    want = EASE(l2=30.0).fit(train, valid, tasks=("ranking",), seed=0).weights_
    got = SLIM(l1=0.0, l2=30.0, rho=30.0, iterations=50, nonnegative=False).fit(train, valid, seed=0)
    np.testing.assert_allclose(got.weights_, want, rtol=1e-3, atol=1e-4)


def test_sparse_non_negative_weights_rank_better_than_chance():
    train, valid, test = synthetic_split(seed=4)
    seen = []
    model = SLIM(l1=1.0, l2=10.0, rho=100.0, iterations=30)
    model.on_progress = seen.append
    model.fit(train, valid, tasks=("ranking",), seed=0)
    w = model.weights_
    assert w.min() == 0.0 and np.all(np.diag(w) == 0) and 0 < model.density_ < 0.5
    assert model.density_ == np.count_nonzero(w) / w.size
    assert [s["iteration"] for s in seen[:-1]] == list(range(1, 31)) and seen[-1]["density"] > 0
    data = RankingData.from_parts(train, test, (valid,))
    rng = np.random.default_rng(0)
    chance = evaluate(data, lambda u: rng.random((len(u), train.n_items)))["ndcg@10"]
    assert evaluate(data, model.score)["ndcg@10"] > 2 * chance


def test_an_anime_without_positives_scores_zero():
    train, _ = _random_train(seed=3, users=30, items=12)
    keep = train.item != 11  # anime 11: no pair at all
    train = type(train)(train.user[keep], train.item[keep], train.rating[keep], train.label[keep], 30, 12)
    model = SLIM(l1=0.1, l2=1.0, rho=10.0, iterations=10).fit(train, None, seed=0)
    assert 11 not in model.active_ and np.all(model.score(np.arange(30))[:, 11] == 0)


@pytest.mark.parametrize(("params", "message"), [
    ({"l1": -1.0}, "l1 must be >= 0, got -1.0"),
    ({"l2": "big"}, "l2 must be a number >= 0, got 'big'"),
    ({"rho": 0.0}, "rho must be > 0, got 0.0"),
    ({"iterations": 0}, "iterations must be >= 1, got 0"),
    ({"nonnegative": "yes"}, "nonnegative must be true or false, got 'yes'"),
])
def test_bad_hyperparameters_are_one_line_errors(params, message):
    with pytest.raises(ValueError) as info:
        SLIM.validate_params({**SLIM.param_defaults(), **params})
    assert str(info.value) == message


def test_conforms():
    check_model(SLIM, l1=0.5, l2=10.0, rho=100.0, iterations=5)
