"""``ease``: EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019),
the closed-form item-item baseline of the ranking task.

On the binary matrix X of train positives: ``G = XᵀX + λI``, ``P = G⁻¹``, ``B = -P / diag(P)``
(column j divided by ``P[j, j]``), ``diag(B) = 0``; a user's scores are ``X[user] @ B``. Anime
without a train positive have an all-zero row and column in X, so their part of ``B`` is zero
whatever λ: the algebra is restricted to anime with at least one positive (they score 0).

Choosing λ costs one decomposition: the eigendecomposition of the smaller Gram matrix gives every
λ's inverse (:class:`GramInverses`); each λ then costs one symmetric rank-k product (BLAS syrk).
BLAS runs on the job's allotment of cores (``threadpoolctl``): on a shared machine more threads
than cores lose badly.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.gram_inverse import spd_inverse, symmetrize_upper
from animerec_bench.builtin.positives import positives, rows_times
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import FoldedUsers, History, Interactions, Model, from_saved_params, load_arrays, save_arrays
from animerec_bench.support.threads import blas_limited

if TYPE_CHECKING:
    import scipy.sparse

#: Grids with at least this many λ use one eigendecomposition (see ``EASE._grid_weights``).
EIGEN_GRID_MIN = 6

#: λ when there is no validation part to choose it on: the best on mal2016-5k / v1 (seeds 0, 1).
DEFAULT_L2 = 100.0


class GramInverses:
    """Every λ's ``B`` from one eigendecomposition, for binary ``x`` (users x active anime).

    With n users and m anime, the smaller Gram matrix is decomposed (float32):

    - m <= n: ``XᵀX = V diag(w) Vᵀ``, so ``P(λ) = (XᵀX + λI)⁻¹ = Q Qᵀ`` with ``Q = V diag(w + λ)^-½``;
      ``B = -P / diag(P)``;
    - n < m: ``XXᵀ = U diag(w) Uᵀ``; by Woodbury ``P(λ) = (I - M) / λ`` with ``M = Q Qᵀ``,
      ``Q = XᵀU diag(w + λ)^-½``, so off the diagonal ``B[i, j] = M[i, j] / (1 - M[j, j])``.

    ``extra_diagonal`` (m <= n only) adds a fixed diagonal to ``XᵀX`` before the decomposition
    (EDLAE's dropout term); λ is then searched on top of it.
    """

    def __init__(self, x: scipy.sparse.csr_matrix, extra_diagonal: np.ndarray | None = None) -> None:
        import scipy.linalg

        n, m = x.shape
        self.by_users = n < m and extra_diagonal is None
        if self.by_users:
            gram = (x @ x.T).toarray().astype(np.float32)
        else:
            gram = (x.T @ x).toarray().astype(np.float32)
            if extra_diagonal is not None:
                gram[np.diag_indices(m)] += extra_diagonal.astype(np.float32)
        w, vectors = scipy.linalg.eigh(gram, overwrite_a=True, check_finite=False, driver="evd")
        self.eigenvalues = np.maximum(w, 0.0).astype(np.float32)  # a Gram matrix is PSD; clip rounding
        self.basis = np.asarray(x.T @ vectors, dtype=np.float32) if self.by_users else vectors
        self.m = m

    def weights(self, l2: float) -> np.ndarray:
        """``B`` for ``λ = l2`` (float32 ``[m, m]``, C-ordered, zero diagonal)."""
        import scipy.linalg

        if not l2 > 0:
            raise ValueError(f"ease: l2 must be > 0, got {l2}")
        if self.m == 0:
            return np.zeros((0, 0), np.float32)
        q = np.asfortranarray(self.basis / np.sqrt(self.eigenvalues + np.float32(l2))[None, :])
        syrk = scipy.linalg.get_blas_funcs("syrk", (q,))
        p = syrk(1.0, q, lower=0)  # upper triangle of Q Qᵀ, Fortran-ordered
        symmetrize_upper(p)
        b = p.T  # symmetric: the transpose is the same matrix, C-ordered (what scoring reads)
        diag = b.diagonal().copy()
        if self.by_users:
            b /= (np.float32(1.0) - diag)[None, :]
        else:
            b /= -diag[None, :]
        b[np.diag_indices(self.m)] = 0.0
        return b


class EASE(Model):
    """EASE: a full item-item weight matrix with a zero diagonal, in closed form (float32).

    ``l2`` (λ): None = chosen from ``l2_grid`` by NDCG@10 on the validation ranking ``tune`` uses
    (:meth:`RankingData.validation`: train and the split's neither-task pairs excluded),
    ``DEFAULT_L2`` without a validation part. The chosen value is ``l2_``; every grid point's
    NDCG@10 is in ``history_`` and reported as progress. A given λ costs one Cholesky inverse, and
    so does each point of a small grid; a grid of 6 or more points one eigendecomposition.

    Validation NDCG@10 on mal2016-5k / v1 / seed 0 (tune's ranking): λ 30 / 60 / 100 / 200 / 400
    gave 0.2944 / 0.3009 / 0.3033 / 0.3011 / 0.2929; λ 100 chosen, test NDCG@10 0.3629.
    """

    name = "ease"
    tasks = ("ranking",)
    joint = False
    version = "2"  # 2: λ chosen on tune's validation ranking (neither-task pairs excluded too)
    baseline = True
    framework = "numpy"

    def __init__(self, l2: float | None = None,
                 l2_grid: tuple[float, ...] = (50.0, 100.0, 200.0)) -> None:
        self.l2 = l2
        self.l2_grid = l2_grid

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        started = time.perf_counter()
        self._prepare(train)
        with blas_limited():
            self._choose_weights(train, valid, started)
        self.report_progress(l2=self.l2_, seconds=round(time.perf_counter() - started, 3))
        self.epochs_ = 0
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _prepare(self, train: Interactions) -> None:
        x = positives(train)
        self.n_items_ = train.n_items
        self.active_ = np.flatnonzero(np.bincount(x.indices, minlength=train.n_items) > 0)
        self.x_ = x[:, self.active_].tocsr()

    def _extra_diagonal(self) -> np.ndarray | None:
        """What a subclass adds to XᵀX's diagonal besides λ (EDLAE's dropout term); None for EASE."""
        return None

    def _choose_weights(self, train: Interactions, valid: Interactions | None, started: float) -> None:
        """A given λ: one Cholesky inverse. Else the grid: one eigendecomposition for all of it."""
        self.history_: dict[str, list[float]] = {"l2": [], "val_ndcg@10": []}
        extra = self._extra_diagonal()
        data = RankingData.validation(train, valid) if valid is not None and self.l2 is None else None
        if self.l2 is not None or data is None or data.n_users == 0 or len(self.l2_grid) < 2:
            self.l2_ = float(self.l2 if self.l2 is not None else
                             (self.l2_grid[0] if len(self.l2_grid) == 1 else DEFAULT_L2))
            gram = (self.x_.T @ self.x_).toarray()
            self.weights_ = _weights(gram, self.l2_ if extra is None else extra + self.l2_)
            return
        weights_for = self._grid_weights(extra)
        best = -np.inf
        for l2 in self.l2_grid:
            self.weights_ = weights_for(float(l2))
            ndcg = evaluate(data, self.score, ks=(10,))["ndcg@10"]
            self.history_["l2"].append(float(l2))
            self.history_["val_ndcg@10"].append(ndcg)
            self.report_progress(l2=float(l2), val_ndcg=ndcg, seconds=round(time.perf_counter() - started, 3))
            if ndcg > best:  # ties: the first λ of the grid
                best, best_weights, self.l2_ = ndcg, self.weights_, float(l2)
        self.weights_ = best_weights

    def _grid_weights(self, extra: np.ndarray | None):
        """λ -> B for the grid. One eigendecomposition serves every λ, but on mal2016-5k / v1 /
        seed 0 it took 1.3-2.5x as long as three Cholesky inverses (eigendecomposition + 3 syrk
        against 3 potrf/potri, two interleaved rounds in one process, load average 4): a Cholesky
        inverse per λ for grids of up to ``EIGEN_GRID_MIN - 1`` points, the decomposition above."""
        if len(self.l2_grid) < EIGEN_GRID_MIN:
            gram = (self.x_.T @ self.x_).toarray()
            return lambda l2: _weights(gram, l2 if extra is None else extra + l2)
        return GramInverses(self.x_, extra).weights

    def score(self, user) -> np.ndarray:
        """``X[user] @ B`` for every anime: float32 ``[len(user), n_items]``, higher = better.
        ``user``: indices of training users, or :class:`FoldedUsers` from :meth:`fold_in`."""
        if isinstance(user, FoldedUsers):
            rows = user.rows
        else:
            rows = self.x_[np.asarray(user, dtype=np.int64)]
        out = np.zeros((rows.shape[0], self.n_items_), dtype=np.float32)
        out[:, self.active_] = rows_times(rows, self.weights_)  # blocks of users on the job's cores
        return out

    def fold_in(self, history: History) -> FoldedUsers:
        """The user's row of X (their liked anime: label 1), exactly what a fit on them would
        hold: EASE's B does not depend on any one user's row beyond XᵀX, which stays as fitted."""
        import scipy.sparse

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
        import scipy.sparse

        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.l2_, model.n_items_ = float(z["l2"]), int(z["n_items"])
        model.active_, model.weights_ = z["active"], z["weights"]
        model.x_ = scipy.sparse.csr_matrix((z["x_data"], z["x_indices"], z["x_indptr"]),
                                           shape=tuple(int(n) for n in z["x_shape"]))
        return model


def _weights(gram: np.ndarray, diagonal: float | np.ndarray) -> np.ndarray:
    """``B`` for ``G = gram + diag(diagonal)`` (a scalar λ, or one value per anime) in float32:
    ``P = G⁻¹`` (``spd_inverse``: one Cholesky decomposition), then ``B = -P / diag(P)`` with a
    zero diagonal, in place. The path of a given λ."""
    shift = np.asarray(diagonal, dtype=np.float32)
    if not np.all(shift > 0):
        raise ValueError(f"ease: l2 must be > 0, got {diagonal}")
    b = spd_inverse(gram, shift, np.float32, "ease: XᵀX + diag")
    diag = b.diagonal().copy()
    b /= -diag[None, :]
    b[np.diag_indices(len(b))] = 0.0
    return b


@hookimpl
def register_models(register):
    register(EASE)
