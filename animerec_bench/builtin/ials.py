"""``ials``: implicit alternating least squares (Hu, Koren & Volinsky, ICDM 2008), solved by
conjugate gradient as Takács, Pilászy & Tikk (RecSys 2011) and the ``implicit`` library do.

On the binary train-positives matrix X: user factors W and anime factors H minimise
``sum_{u,i} c_ui (x_ui - w_u . h_i)^2 + reg (|W|^2 + |H|^2)`` over *every* (user, anime) cell,
with confidence ``c_ui = 1 + alpha`` on positives and 1 elsewhere. One half-step solves, for each
user u, ``(HᵀH + reg I + alpha sum_{i in u} h_i h_iᵀ) w_u = (1 + alpha) sum_{i in u} h_i`` (and the
same for anime); the all-cells term ``HᵀH`` is shared, so a step costs O(nnz k + n k²), not
O(n_users n_items k). ``cg_steps`` conjugate-gradient steps from the previous factors approximate
the solve (3, ``implicit``'s default, is close to exact after a few sweeps; ``tests/test_ials.py``
checks the solve against a dense one). Rendle et al. ("Revisiting the performance of iALS on
item recommendation benchmarks", RecSys 2022) show that tuned regularisation and enough
factors make iALS competitive; the search space covers those.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.positives import positives
from animerec_bench.model import Interactions, Model, check_param
from animerec_bench.support.threads import run_blocks

if TYPE_CHECKING:
    import scipy.sparse

#: Positives a block of rows holds in :func:`_confidence_products` (a block: at least one whole
#: row). Its gathered ``[nnz, factors]`` floats stay in a core's cache: on mal2016-5k at 128
#: factors, 8,192 a block took a fifth to a third of the time of 64 MB blocks, one thread or two.
BLOCK_NNZ = 1 << 13


def row_blocks(indptr: np.ndarray, nnz_per_block: int) -> np.ndarray:
    """Row bounds ``[0, ..., n_rows]`` cutting a CSR matrix into runs of whole rows of about
    ``nnz_per_block`` stored entries each (a longer row is a block of its own)."""
    n_rows, nnz = len(indptr) - 1, int(indptr[-1])
    cuts = np.searchsorted(indptr, np.arange(0, nnz, max(1, nnz_per_block)), side="right") - 1
    return np.unique(np.concatenate([[0], cuts[cuts < n_rows], [n_rows]]))


def _confidence_products(x: scipy.sparse.csr_matrix, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``sum_{i in row u} (h_i . v_u) h_i`` for every row u of ``x``: ``[n_rows, k]``, float32.
    Blocks of rows (:func:`row_blocks`) on the job's cores (:func:`.run_blocks`)."""
    import scipy.sparse

    out = np.empty((x.shape[0], h.shape[1]), dtype=np.float32)
    bounds = row_blocks(x.indptr, BLOCK_NNZ)

    def products(first: int, last: int) -> None:  # row blocks [first, last): rows bounds[first]..bounds[last]
        r0, r1 = bounds[first], bounds[last]
        indptr = x.indptr[r0:r1 + 1]
        cols = x.indices[indptr[0]:indptr[-1]]
        t = np.einsum("ij,ij->i", h[cols], np.repeat(v[r0:r1], np.diff(indptr), axis=0))
        weighted = scipy.sparse.csr_matrix((t, cols, indptr - indptr[0]), shape=(r1 - r0, x.shape[1]))
        out[r0:r1] = weighted @ h

    run_blocks(products, len(bounds) - 1, 1)
    return out


def solve_side(x: scipy.sparse.csr_matrix, v: np.ndarray, h: np.ndarray, alpha: float, reg: float,
               cg_steps: int) -> np.ndarray:
    """New factors for the rows of ``x`` (users, or anime with ``x`` transposed), given the other
    side's ``h``: ``cg_steps`` conjugate-gradient steps on every row's system at once, starting
    from ``v``. Returns a new float32 array."""
    gram = (h.T.astype(np.float64) @ h).astype(np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(reg)
    a = np.float32(alpha)

    def apply(p: np.ndarray) -> np.ndarray:
        return p @ gram + a * _confidence_products(x, p, h)

    v = v.astype(np.float32, copy=True)
    r = (np.float32(1.0) + a) * np.asarray(x @ h, dtype=np.float32) - apply(v)
    p = r.copy()
    rs_old = np.einsum("ij,ij->i", r, r)
    for _ in range(int(cg_steps)):
        ap = apply(p)
        denom = np.einsum("ij,ij->i", p, ap)
        step = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 0)
        v += step[:, None] * p
        r -= step[:, None] * ap
        rs_new = np.einsum("ij,ij->i", r, r)
        beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 0)
        p = r + beta[:, None] * p
        rs_old = rs_new
    return v


class IALS(Model):
    """iALS with confidence weighting. State: ``user_factors_`` ``[n_users, factors]`` and
    ``item_factors_`` ``[n_items, factors]`` (float32); a user's scores are ``w_u . h_i``.

    ``iterations`` sweeps (users, then anime) of ``cg_steps`` CG steps each; factors start at
    normal(0, 0.1 / sqrt(factors)) from ``seed`` (Rendle et al. 2022's initialisation).

    Defaults from three settings tried on mal2016-5k / v1 / seed 0 (validation NDCG@10, ``tune``'s
    ranking): 128 factors, reg 50, alpha 5: 0.269; 64 factors, reg 50, alpha 5: 0.249; 64
    factors, reg 20, alpha 15: 0.221. ``tune`` searches factors, reg and alpha.
    """

    name = "ials"
    tasks = ("ranking",)
    joint = False
    version = "1"
    baseline = False
    framework = "numpy"
    peer = "Hu et al. 2008 iALS (conjugate gradient), numpy"
    #: ``iterations`` and ``cg_steps`` set the training budget: not searched.
    search_space = {"factors": ("int", 16, 256, "log"), "reg": ("float", 0.01, 1000.0, "log"),
                    "alpha": ("float", 0.1, 100.0, "log")}

    def __init__(self, factors: int = 128, reg: float = 50.0, alpha: float = 5.0, iterations: int = 10,
                 cg_steps: int = 3) -> None:
        self.factors = factors
        self.reg = reg
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps

    @classmethod
    def validate_params(cls, params):
        """factors, iterations, cg_steps >= 1; reg, alpha >= 0."""
        for key in ("factors", "iterations", "cg_steps"):
            check_param(params, key, at_least=1)
        for key in ("reg", "alpha"):
            check_param(params, key, at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        started = time.perf_counter()
        x = positives(train)
        xt = x.T.tocsr()
        k = int(self.factors)
        rng = np.random.default_rng(seed)
        scale = 0.1 / np.sqrt(k)
        users = (rng.standard_normal((train.n_users, k)) * scale).astype(np.float32)
        items = (rng.standard_normal((train.n_items, k)) * scale).astype(np.float32)
        for sweep in range(int(self.iterations)):
            users = solve_side(x, users, items, self.alpha, self.reg, self.cg_steps)
            items = solve_side(xt, items, users, self.alpha, self.reg, self.cg_steps)
            self.report_progress(epoch=sweep + 1, seconds=round(time.perf_counter() - started, 3))
        self.user_factors_, self.item_factors_ = users, items
        self.epochs_ = int(self.iterations)
        return self

    def score(self, user) -> np.ndarray:
        """``W[user] @ Hᵀ``: float32 ``[len(user), n_items]``."""
        return self.user_factors_[np.asarray(user, dtype=np.int64)] @ self.item_factors_.T


@hookimpl
def register_models(register):
    register(IALS)
