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
from animerec_bench.model import FoldedUsers, History, Interactions, Model, from_saved_params, load_arrays, save_arrays

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
        """``X[user] @ B`` for every anime: float32 ``[len(user), n_items]``, higher = better.
        ``user``: indices of training users, or :class:`FoldedUsers` from :meth:`fold_in`."""
        if isinstance(user, FoldedUsers):
            rows = user.rows
        else:
            rows = self.x_[np.asarray(user, dtype=np.int64)]
        out = np.zeros((rows.shape[0], self.n_items_), dtype=np.float32)
        out[:, self.active_] = rows @ self.weights_
        return out

    def fold_in(self, history: History) -> FoldedUsers:
        """The user's row of X (their liked anime: label 1), exactly what a fit on them would
        hold: EASE's B does not depend on any one user's row beyond XᵀX, which stays as fitted."""
        liked = self._active_positions(history)
        row = scipy.sparse.csr_matrix((np.ones(len(liked), np.float32), (np.zeros(len(liked), np.int64), liked)),
                                      shape=(1, len(self.active_)))
        return FoldedUsers(row)

    def explain(self, history: History, items) -> np.ndarray:
        """For each of ``items``, the position in ``history`` of the liked anime with the largest
        weight ``B[liked, item]`` (its share of the item's score); -1 where none adds to it."""
        items = np.asarray(items, dtype=np.int64)
        where = np.flatnonzero(history.label == 1)
        pos = self._position()
        liked = pos[history.item[where]]
        where, liked = where[liked >= 0], liked[liked >= 0]
        out = np.full(len(items), -1, dtype=np.int64)
        target = pos[items]
        ok = target >= 0
        if len(liked) == 0 or not ok.any():
            return out
        weights = self.weights_[np.ix_(liked, target[ok])]  # [liked, items]
        best = weights.argmax(axis=0)
        out[np.flatnonzero(ok)] = np.where(weights[best, np.arange(weights.shape[1])] > 0, where[best], -1)
        return out

    def _position(self) -> np.ndarray:
        """Anime index -> its column in B (-1: no train positive, not in B)."""
        if getattr(self, "position_", None) is None:
            self.position_ = np.full(self.n_items_, -1, dtype=np.int64)
            self.position_[self.active_] = np.arange(len(self.active_))
        return self.position_

    def _active_positions(self, history: History) -> np.ndarray:
        pos = self._position()[np.asarray(history.item[history.label == 1], dtype=np.int64)]
        return np.unique(pos[pos >= 0])

    def save(self, folder) -> None:
        """``params.json`` and ``weights.npz``: λ, the anime with a train positive, B, and the
        training users' rows of X (CSR arrays), so a loaded model scores training users too."""
        save_arrays(folder, self.get_params(), l2=np.float64(self.l2_), n_items=np.int64(self.n_items_),
                    active=self.active_, weights=self.weights_, x_data=self.x_.data, x_indices=self.x_.indices,
                    x_indptr=self.x_.indptr, x_shape=np.asarray(self.x_.shape, dtype=np.int64))

    @classmethod
    def load(cls, folder) -> "EASE":
        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.l2_, model.n_items_ = float(z["l2"]), int(z["n_items"])
        model.active_, model.weights_ = z["active"], z["weights"]
        model.x_ = scipy.sparse.csr_matrix((z["x_data"], z["x_indices"], z["x_indptr"]),
                                           shape=tuple(int(n) for n in z["x_shape"]))
        return model


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
