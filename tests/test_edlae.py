"""edlae: EASE when the dropout is 0, the dropout's per-anime term against a dense inverse."""

from __future__ import annotations

import numpy as np

from animerec_bench.builtin.ease import EASE, GramInverses
from animerec_bench.builtin.edlae import EDLAE
from animerec_bench.testing import check_model, synthetic_split

from .test_item_cosine import _random_train


def test_no_dropout_is_ease():
    train, valid, _ = synthetic_split(seed=2)
    ease = EASE(l2=30.0).fit(train, valid, tasks=("ranking",), seed=0)
    edlae = EDLAE(dropout=0.0, l2=30.0).fit(train, valid, tasks=("ranking",), seed=0)
    np.testing.assert_allclose(edlae.weights_, ease.weights_, rtol=1e-5, atol=1e-6)


def test_dropout_regularises_each_anime_by_its_popularity():
    train, x = _random_train(seed=5)
    p, l2 = 0.3, 4.0
    model = EDLAE(dropout=p, l2=l2).fit(train, None, tasks=("ranking",), seed=0)
    active = model.active_
    xa = x[:, active]
    g = xa.T @ xa
    inv = np.linalg.inv(g + np.diag(l2 + p / (1 - p) * np.diag(g)))
    want = -inv / np.diag(inv)[None, :]
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(model.weights_, want, rtol=1e-4, atol=1e-5)
    # the grid's path (one eigendecomposition of XᵀX + p/(1-p) diag(XᵀX)) gives the same weights
    inverses = GramInverses(model.x_, model._extra_diagonal())
    np.testing.assert_allclose(inverses.weights(l2), want, rtol=1e-3, atol=1e-4)


def test_conforms():
    check_model(EDLAE)
    check_model(EDLAE, dropout=0.5, l2=None, l2_grid=(1.0, 10.0))
