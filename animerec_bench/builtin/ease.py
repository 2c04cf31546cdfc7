"""``ease``: EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019),
the closed-form item-item baseline of the ranking task.

On the binary matrix X of train positives (train pairs with interaction label 1):
``G = XᵀX + λI``, ``P = G⁻¹``, ``B = -P / diag(P)`` (column j divided by ``P[j, j]``), ``diag(B) = 0``;
a user's scores are ``X[user] @ B``. Anime without a train positive have an all-zero row and
column in X, so their part of ``B`` is zero whatever λ: the inversion is restricted to anime
with at least one positive (they score 0), which gives the same ``B`` for less work.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import scipy.sparse

from animerec_bench import hookimpl
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import Interactions, Model

#: λ when there is no validation part to choose it on: the best on mal2016-5k / v1 (seeds 0, 1).
DEFAULT_L2 = 100.0


class EASE(Model):
    """EASE: a full item-item weight matrix with a zero diagonal, in closed form (float32).

    ``l2`` (λ): None = chosen from ``l2_grid`` by validation NDCG@10 (``ranking.evaluate`` with
    train items excluded), ``DEFAULT_L2`` without a validation part. The chosen value is
    ``l2_``; every grid point's NDCG@10 is in ``history_`` and reported as progress.

    The grid: validation NDCG@10 on mal2016-5k / v1, seed 0: λ 30 / 100 / 300 / 1000 / 3000 gave
    0.2869 / 0.2951 / 0.2890 / 0.2649 / 0.2282; seed 1: λ 50 / 100 / 200 gave 0.2934 / 0.2953 /
    0.2930; seed 2: 0.2904 / 0.2925 / 0.2891. Three points around the best, because each costs
    one inversion of a 6,635² matrix: float32 Cholesky, ~3 s in a quiet moment of the 2 shared
    cores (a float64 LU inverse took ~2.5x as long). The whole fit with the search took 24.6 s
    (17.4 CPU s) at load average 6 (``benchmarks/bench_ranking.py``); test NDCG@10 0.3629.
    """

    name = "ease"
    tasks = ("ranking",)
    joint = False
    version = "1"
    baseline = True
    framework = "numpy"

    def __init__(self, l2: float | None = None, l2_grid: tuple[float, ...] = (50.0, 100.0, 200.0)) -> None:
        self.l2 = l2
        self.l2_grid = l2_grid

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        started = time.perf_counter()
        positive = train.label == 1
        x = scipy.sparse.csr_matrix(
            (np.ones(int(positive.sum()), np.float32), (train.user[positive], train.item[positive])),
            shape=(train.n_users, train.n_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        self.n_items_ = train.n_items
        self.active_ = np.flatnonzero(np.bincount(x.indices, minlength=train.n_items) > 0)
        self.x_ = x[:, self.active_].tocsr()
        gram = (self.x_.T @ self.x_).toarray()
        self.history_ = {"l2": [], "val_ndcg@10": []}
        candidates = [self.l2] if self.l2 is not None else list(self.l2_grid)
        data = RankingData.from_parts(train, valid) if valid is not None and self.l2 is None else None
        if data is None or data.n_users == 0 or len(candidates) == 1:
            self.l2_ = float(candidates[0] if self.l2 is not None else DEFAULT_L2)
            self.weights_ = _weights(gram, self.l2_)
        else:
            best = -np.inf
            for l2 in candidates:
                self.weights_ = _weights(gram, float(l2))
                ndcg = evaluate(data, self.score, ks=(10,))["ndcg@10"]
                self.history_["l2"].append(float(l2))
                self.history_["val_ndcg@10"].append(ndcg)
                self.report_progress(l2=float(l2), val_ndcg=ndcg, seconds=round(time.perf_counter() - started, 3))
                if ndcg > best:  # ties: the first (smallest, in the default grid) λ
                    best, best_weights, self.l2_ = ndcg, self.weights_, float(l2)
            self.weights_ = best_weights
        self.report_progress(l2=self.l2_, seconds=round(time.perf_counter() - started, 3))
        self.epochs_ = 0
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def score(self, user) -> np.ndarray:
        """``X[user] @ B`` for every anime: float32 ``[len(user), n_items]``, higher = better."""
        user = np.asarray(user, dtype=np.int64)
        out = np.zeros((len(user), self.n_items_), dtype=np.float32)
        out[:, self.active_] = self.x_[user] @ self.weights_
        return out


def _weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """``B`` for ``G = gram + l2 I`` in float32: Cholesky inverse (LAPACK potrf + potri, about
    half the work of a general inverse), then ``B = -P / diag(P)`` with a zero diagonal, in place."""
    if not l2 > 0:
        raise ValueError(f"ease: l2 must be > 0, got {l2}")
    m = len(gram)
    g = np.array(gram, dtype=np.float32, order="F")
    g[np.diag_indices(m)] += np.float32(l2)
    if m == 0:
        return g
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (g,))
    c, info = potrf(g, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        p, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: XᵀX + {l2} I is not positive definite (LAPACK info {info})")
    _symmetrize_upper(p)
    b = p.T  # P is symmetric: its transpose is the same matrix, C-ordered (what scoring reads)
    diag = b.diagonal().copy()
    b /= -diag[None, :]
    b[np.diag_indices(m)] = 0.0
    return b


def _symmetrize_upper(a: np.ndarray, block: int = 512) -> None:
    """Copy the upper triangle of square ``a`` onto its lower one, in place, block by block (no
    full-size temporary)."""
    m = len(a)
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        a[j1:, j0:j1] = a[j0:j1, j1:].T
        d = a[j0:j1, j0:j1]
        d[...] = np.triu(d) + np.triu(d, 1).T


@hookimpl
def register_models(register):
    register(EASE)
