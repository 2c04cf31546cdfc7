"""item-knn-cosine: the similarity against a dense formula, the column top-k, the weights' memory
order, conformance."""

from __future__ import annotations

import numpy as np

from animerec_bench.builtin.item_cosine import ItemKNNCosine
from animerec_bench.builtin.positives import keep_top_k_per_column
from animerec_bench.model import Interactions
from animerec_bench.testing import check_model


def _random_train(seed: int = 0, users: int = 40, items: int = 25) -> tuple[Interactions, np.ndarray]:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.3).astype(np.float64)
    u, i = np.nonzero(dense)
    label = np.ones(len(u), np.int8)
    label[::7] = 0  # some negatives: not positives, so not in X
    dense[u[::7], i[::7]] = 0
    train = Interactions(u.astype(np.int32), i.astype(np.int32), np.zeros(len(u), np.float32), label, users, items)
    return train, dense


def test_weights_match_the_dense_formula():
    train, x = _random_train()
    model = ItemKNNCosine(k=1000, shrinkage=2.0).fit(train, None, tasks=("ranking",), seed=0)
    norms = np.sqrt((x * x).sum(axis=0))
    want = (x.T @ x) / (norms[:, None] * norms[None, :] + 2.0)
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(model.weights_, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(5)), x[:5] @ want, rtol=1e-5, atol=1e-5)


def test_top_k_keeps_each_columns_largest(monkeypatch):
    """Blocks of columns on two threads (here 512 columns a block: 3 blocks) keep each column's own."""
    from animerec_bench.support import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    rng = np.random.default_rng(1)
    w = rng.random((30, 1100)).astype(np.float32)
    kept = keep_top_k_per_column(w.copy(), 4)
    assert (np.count_nonzero(kept, axis=0) == 4).all()
    for j in range(1100):
        assert set(np.flatnonzero(kept[:, j])) == set(np.argsort(-w[:, j])[:4])


def test_conforms():
    check_model(ItemKNNCosine)
    check_model(ItemKNNCosine, k=3, shrinkage=0.0)


def test_weights_are_c_ordered_so_scoring_one_user_copies_nothing():
    """The sparse product's dense form is Fortran-ordered; scipy copies a Fortran operand of
    ``x[user] @ W`` into C order on every call (10 s of the one-user latency rounds on mal2016-5k)."""
    train, _ = _random_train()
    model = ItemKNNCosine(k=3).fit(train, None, tasks=("ranking",), seed=0)
    assert model.weights_.flags.c_contiguous
    np.testing.assert_allclose(model.score(np.array([4])), model.x_[[4]].toarray() @ model.weights_, rtol=1e-6)


def test_rows_times_in_blocks_of_users_is_the_product(monkeypatch):
    """Users' sparse rows times the item-item matrix, a few users a block on two threads, and a
    Fortran-ordered matrix (made C-ordered once): the same float32 values as one product."""
    import scipy.sparse

    from animerec_bench.builtin import positives as positives_mod
    from animerec_bench.support import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(positives_mod, "ROW_BLOCK", 3)
    rng = np.random.default_rng(4)
    rows = scipy.sparse.csr_matrix((rng.random((20, 15)) < 0.3).astype(np.float32))
    weights = np.asfortranarray(rng.random((15, 15)).astype(np.float32))
    got = positives_mod.rows_times(rows, weights)
    assert got.dtype == np.float32 and got.shape == (20, 15)
    np.testing.assert_array_equal(got, np.asarray(rows @ np.ascontiguousarray(weights)))
