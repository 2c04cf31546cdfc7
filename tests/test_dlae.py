"""dlae: gradient descent in Keras reaches EDLAE's closed form (the same objective), the diagonal
stays zero, validation picks the best epoch, and the fit ranks better than popularity."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin.baselines import MostPopular
from animerec_bench.builtin.dlae import DLAE
from animerec_bench.builtin.edlae import EDLAE
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.testing import check_model, synthetic_split

pytest.importorskip("keras")


def _ndcg10(score, train, valid, test) -> float:
    """Test NDCG@10 of ``score`` (train and validation pairs excluded from the candidates)."""
    return evaluate(RankingData.from_parts(train, test, (valid,)), score, ks=(10,))["ndcg@10"]


def _popularity(train):
    return MostPopular().fit(train, None, tasks=("ranking",)).score


def test_full_batch_descent_reaches_the_closed_form():
    # Same objective as EDLAE (p = 0.3, λ = 30); full batches, so plain (deterministic) descent; its
    # Hessian's eigenvalues span 0.20 to 2.84 here. Measured gaps: rate 0.4, momentum 0.5, 80 epochs
    # 7.6e-5; rate 0.7, momentum 0.4, 40 epochs 6.1e-4 in half the time (30 epochs: 3.0e-3).
    train, _, _ = synthetic_split(seed=3)
    closed = EDLAE(dropout=0.3, l2=30.0).fit(train, None, tasks=("ranking",), seed=0)
    model = DLAE(dropout=0.3, l2=30.0, epochs=40, batch_size=10_000, learning_rate=0.7, momentum=0.4,
                 nonnegative=False)  # EDLAE has no sign constraint
    model.fit(train, None, tasks=("ranking",), seed=0)
    np.testing.assert_array_equal(model.active_, closed.active_)
    assert np.all(np.diagonal(model.weights_) == 0.0)
    gap = np.linalg.norm(model.weights_ - closed.weights_) / np.linalg.norm(closed.weights_)
    # The closed forms of nearby objectives are 0.06 (p = 0.2) to 0.28 (λ = 45) away.
    assert gap < 2e-3, gap
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_validation_keeps_the_best_epoch_and_beats_popularity():
    train, valid, test = synthetic_split(seed=4)
    model = DLAE(epochs=8, patience=8, batch_size=64, l2=100.0, nonnegative=False)  # (B >= 0: best at epoch 1)
    seen = []
    model.on_progress = seen.append
    model.fit(train, valid, tasks=("ranking",), seed=0)
    history = model.history_["val_ndcg@10"]
    assert len(history) == 8 and [s["epoch"] for s in seen] == list(range(1, 9))
    assert model.best_epoch_ == int(np.argmax(history)) + 1
    assert max(history) > history[0]  # training improves the ranking
    kept = evaluate(RankingData.validation(train, valid), model.score, ks=(10,))["ndcg@10"]
    assert kept == pytest.approx(max(history), abs=1e-9)
    assert _ndcg10(model.score, train, valid, test) > _ndcg10(_popularity(train), train, valid, test)


def test_nonnegative_default_keeps_every_weight_at_or_above_zero():
    train, valid, test = synthetic_split(seed=4)
    signed = DLAE(epochs=2, nonnegative=False).fit(train, valid, tasks=("ranking",), seed=0)
    model = DLAE(epochs=2).fit(train, valid, tasks=("ranking",), seed=0)
    assert (signed.weights_ < 0).any()  # without the constraint descent makes negative weights
    assert np.all(model.weights_ >= 0) and (model.weights_ > 0).any()
    assert np.all(np.diagonal(model.weights_) == 0)
    assert _ndcg10(model.score, train, valid, test) > _ndcg10(_popularity(train), train, valid, test)


def test_conforms():
    check_model(DLAE, epochs=2)


def test_saved_and_loaded_it_scores_the_same(tmp_path):
    train, _, _ = synthetic_split(seed=1)
    model = DLAE(epochs=2).fit(train, None, tasks=("ranking",), seed=0)
    model.save(tmp_path)
    loaded = DLAE.load(tmp_path)
    assert isinstance(loaded, DLAE) and loaded.get_params() == model.get_params()
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
