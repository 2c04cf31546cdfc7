"""rp3beta: the weights against a dense formula (and normalised by row), conformance."""

from __future__ import annotations

import numpy as np

from animerec_bench.builtin.rp3beta import RP3beta
from animerec_bench.testing import check_model

from .test_item_cosine import _random_train


def test_weights_match_the_dense_random_walk():
    train, x = _random_train(seed=3)
    alpha, beta = 0.7, 0.4
    model = RP3beta(alpha=alpha, beta=beta, k=1000, normalize=False).fit(train, None, tasks=("ranking",), seed=0)
    du, di = x.sum(axis=1), x.sum(axis=0)
    p_ui = np.where(du[:, None] > 0, x / np.maximum(du, 1)[:, None], 0) ** alpha
    p_iu = np.where(di[:, None] > 0, x.T / np.maximum(di, 1)[:, None], 0) ** alpha
    want = (p_iu @ p_ui) * np.where(di > 0, np.maximum(di, 1) ** -beta, 0)[None, :]
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(model.weights_, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.score(np.arange(6)), x[:6] @ want, rtol=1e-5, atol=1e-6)
    small = RP3beta(alpha=alpha, beta=beta, k=3, normalize=False).fit(train, None, tasks=("ranking",), seed=0)
    assert (np.count_nonzero(small.weights_, axis=0) <= 3).all()
    # normalize: the same top-k weights, each row divided by its sum (an all-zero row stays 0)
    normed = RP3beta(alpha=alpha, beta=beta, k=3).fit(train, None, tasks=("ranking",), seed=0)
    sums = small.weights_.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(normed.weights_, np.where(sums > 0, small.weights_ / np.where(sums > 0, sums, 1), 0),
                               rtol=1e-6)
    assert np.allclose(normed.weights_.sum(axis=1)[sums[:, 0] > 0], 1.0, rtol=1e-5)


def test_conforms():
    check_model(RP3beta)
    check_model(RP3beta, alpha=1.0, beta=0.0, k=5, normalize=False)
