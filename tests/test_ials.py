"""ials: the conjugate-gradient solve against a dense one, training, conformance, and `implicit`."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from animerec_bench.builtin.ials import IALS, solve_side
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.testing import check_model, synthetic_split


def _dense_solve(x: np.ndarray, h: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """Each row's normal equations written out: (HᵀC_uH + reg I) w_u = HᵀC_u x_u, C_u = 1 + alpha x_u."""
    k = h.shape[1]
    out = np.zeros((x.shape[0], k))
    for u in range(x.shape[0]):
        c = 1.0 + alpha * x[u]
        out[u] = np.linalg.solve(h.T @ (c[:, None] * h) + reg * np.eye(k), h.T @ (c * x[u]))
    return out


def test_conjugate_gradient_reaches_the_dense_solution():
    rng = np.random.default_rng(0)
    x = (rng.random((50, 40)) < 0.2).astype(np.float64)
    h = rng.standard_normal((40, 6)).astype(np.float32)
    want = _dense_solve(x, h.astype(np.float64), alpha=4.0, reg=0.5)
    start = np.zeros((50, 6), np.float32)
    got = solve_side(scipy.sparse.csr_matrix(x.astype(np.float32)), start, h, 4.0, 0.5, cg_steps=12)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    few = solve_side(scipy.sparse.csr_matrix(x.astype(np.float32)), start, h, 4.0, 0.5, cg_steps=1)
    assert np.abs(few - want).max() > 1e-2  # one step is not the solution: the test can tell


def test_training_ranks_far_better_than_chance():
    train, valid, test = synthetic_split(seed=1)
    model = IALS(factors=16, iterations=6).fit(train, valid, tasks=("ranking",), seed=0)
    data = RankingData.from_parts(train, test, (valid,))
    got = evaluate(data, model.score)["ndcg@10"]
    rng = np.random.default_rng(0)
    chance = evaluate(data, lambda u: rng.random((len(u), train.n_items)))["ndcg@10"]
    assert got > 2 * chance


def test_conforms():
    check_model(IALS, factors=8, iterations=3)


@pytest.mark.filterwarnings("ignore:OpenBLAS is configured")
def test_scores_agree_with_implicit():
    """`implicit`'s AlternatingLeastSquares minimises the same loss (its confidence on a positive is
    its ``alpha``, ours ``1 + alpha``): one sweep of its exact solver (Cholesky, ``use_cg=False``)
    from the same start gives what enough of our CG steps give."""
    implicit_als = pytest.importorskip("implicit.cpu.als")
    rng = np.random.default_rng(2)
    x = scipy.sparse.csr_matrix((rng.random((60, 30)) < 0.25).astype(np.float32))
    k, alpha, reg = 4, 3.0, 0.3
    users = rng.standard_normal((60, k)).astype(np.float32) * 0.1
    items = rng.standard_normal((30, k)).astype(np.float32) * 0.1
    theirs = implicit_als.AlternatingLeastSquares(factors=k, regularization=reg, alpha=1.0 + alpha,
                                                  iterations=1, calculate_training_loss=False,
                                                  use_native=True, use_cg=False, random_state=0)
    theirs.user_factors, theirs.item_factors = users.copy(), items.copy()
    theirs.fit(x, show_progress=False)
    ours_u = solve_side(x, users, items, alpha, reg, k + 6)
    ours_i = solve_side(x.T.tocsr(), items, ours_u, alpha, reg, k + 6)
    np.testing.assert_allclose(ours_u @ ours_i.T, theirs.user_factors @ theirs.item_factors.T, atol=2e-3)


@pytest.mark.parametrize("block_nnz", [1, 7, 1 << 20])
def test_confidence_products_in_blocks_of_rows_equal_the_formula(monkeypatch, block_nnz):
    """``sum_{i in u} (h_i . v_u) h_i`` for every row, whatever the blocks (one row each, a few
    rows, the whole matrix in one); empty rows give 0."""
    from animerec_bench.builtin import ials

    rng = np.random.default_rng(3)
    dense = (rng.random((23, 17)) < 0.3).astype(np.float32)
    dense[[4, 5, 22]] = 0  # empty rows, one of them last
    x = scipy.sparse.csr_matrix(dense)
    v = rng.standard_normal((23, 5)).astype(np.float32)
    h = rng.standard_normal((17, 5)).astype(np.float32)
    monkeypatch.setattr(ials, "BLOCK_NNZ", block_nnz)
    want = ((dense * (v @ h.T)) @ h)
    np.testing.assert_allclose(ials._confidence_products(x, v, h), want, rtol=1e-5, atol=1e-5)


def test_row_blocks_cut_between_whole_rows():
    from animerec_bench.builtin.ials import row_blocks

    indptr = np.array([0, 2, 2, 12, 13, 15, 16])  # row 2 holds 10 entries, more than a block
    bounds = row_blocks(indptr, 4)
    assert bounds[0] == 0 and bounds[-1] == 6 and np.all(np.diff(bounds) > 0)
    assert list(bounds) == [0, 2, 3, 6]  # rows 3-5: 4 entries, one block
    assert list(row_blocks(np.array([0, 0, 0]), 4)) == [0, 2]  # no entries: one block of empty rows
    assert list(row_blocks(np.array([0]), 4)) == [0]  # no rows: no block
