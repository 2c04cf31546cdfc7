"""``slim``: SLIM (Ning & Karypis, "SLIM: Sparse Linear Methods for Top-N Recommender Systems",
ICDM 2011), the sparse non-negative item-item model, solved by ADMM.

On the binary matrix X of train positives, SLIM's item-item weights W minimise
``½‖X - XW‖²_F + λ₁‖W‖₁ + ½λ₂‖W‖²_F`` subject to ``W >= 0`` and ``diag(W) = 0``; a user's
scores are ``X[user] @ W``. The paper solves one ElasticNet per anime by coordinate descent:
6,600 of them, far too slow in Python and scikit-learn is not in the stack. The same objective is
solved here with ADMM as in Steck, Dimakopoulou, Riabov and Jebara, "ADMM SLIM: Sparse
Recommendations for Many Users" (WSDM 2020): with ``G = XᵀX`` and ``P = (G + (λ₂ + ρ)I)⁻¹``
inverted once (Cholesky), each iteration is one dense product ``P @ (C - Γ)``:

- ``B̃ = P(G + ρ(C - Γ))`` (``PG = I - (λ₂ + ρ)P``), ``B = B̃ - P diag(γ)`` with
  ``γ = diag(B̃) / diag(P)`` (the zero diagonal's multiplier);
- ``C = max(0, soft-threshold(B + Γ, λ₁/ρ))``: non-negative and sparse;
- ``Γ += B - C`` (the scaled dual).

The model scores with C. As EASE, only anime with a train positive take part (the others score 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.ease import EASE, blas_limited
from animerec_bench.builtin.gram_inverse import spd_inverse
from animerec_bench.model import Interactions, check_param, from_saved_params, load_arrays, save_arrays


@dataclass(frozen=True)
class AdmmResult:
    """What :func:`admm_slim` returns: ``weights`` (C, ``[m, m]``, zero diagonal, >= 0 when
    non-negative), the last iteration's residuals (``primal`` = max |B - C|, ``dual`` =
    ρ max |C - C_previous|, both 0 at the optimum) and the number of iterations run."""

    weights: np.ndarray
    primal: float
    dual: float
    iterations: int


def admm_slim(gram: np.ndarray, l1: float, l2: float, rho: float, iterations: int, *, nonnegative: bool = True,
              tol: float = 0.0, dtype=np.float32,
              on_iteration: Callable[[int, float, float, np.ndarray], None] | None = None) -> AdmmResult:
    """SLIM's weights for ``gram = XᵀX`` by ADMM (module docstring), from C = Γ = 0: at most
    ``iterations`` iterations, fewer once both residuals are <= ``tol``. ``nonnegative=False`` drops
    ``W >= 0`` (a plain soft threshold); with ``l1 = 0`` too it converges to EASE with λ = ``l2``.
    ``on_iteration(iteration, primal, dual, C)`` after each one (C is the solver's buffer: copy it
    to keep it). Five ``[m, m]`` buffers in ``dtype``; the products run on BLAS's threads."""
    p = spd_inverse(gram, float(l2) + float(rho), dtype, "slim: XᵀX + (l2 + rho) I")
    return admm_iterations(p, l1, l2, rho, iterations, nonnegative=nonnegative, tol=tol,
                           on_iteration=on_iteration)


def admm_iterations(p: np.ndarray, l1: float, l2: float, rho: float, iterations: int, *, nonnegative: bool = True,
                    tol: float = 0.0,
                    on_iteration: Callable[[int, float, float, np.ndarray], None] | None = None) -> AdmmResult:
    """:func:`admm_slim` given ``p = (XᵀX + (l2 + rho) I)⁻¹`` (one inverse serves every λ₁)."""
    dtype = p.dtype.type
    m = len(p)
    shift = float(l2) + float(rho)
    diag_p = p.diagonal().copy()
    c = np.zeros((m, m), dtype)
    gamma = np.zeros((m, m), dtype)
    b = np.empty((m, m), dtype)
    work = np.empty((m, m), dtype)
    threshold = dtype(float(l1) / float(rho))
    eye = np.diag_indices(m)
    primal = dual = float("inf")
    done = 0
    while done < iterations and not (primal <= tol and dual <= tol):
        np.subtract(c, gamma, out=work)
        np.matmul(p, work, out=b)  # ρP(C - Γ) + I - (λ₂ + ρ)P = P(G + ρ(C - Γ)) = B̃
        b *= dtype(rho)
        np.multiply(p, dtype(shift), out=work)
        b -= work
        b[eye] += dtype(1.0)
        np.multiply(p, (b.diagonal() / diag_p)[None, :], out=work)  # P diag(γ)
        b -= work
        b[eye] = 0.0
        gamma += b  # B + Γ, the soft threshold's argument
        if nonnegative:
            np.subtract(gamma, threshold, out=work)
            np.maximum(work, dtype(0.0), out=work)
        else:  # sign(z) max(|z| - t, 0) = z - clip(z, -t, t)
            np.clip(gamma, -threshold, threshold, out=work)
            np.subtract(gamma, work, out=work)
        work[eye] = 0.0
        gamma -= work  # Γ + B - C
        np.subtract(b, work, out=b)
        primal = float(np.abs(b).max()) if m else 0.0
        np.subtract(work, c, out=b)
        dual = float(rho) * float(np.abs(b).max()) if m else 0.0
        c, work = work, c
        done += 1
        if on_iteration is not None:
            on_iteration(done, primal, dual, c)
    return AdmmResult(c, primal, dual, done)


class SLIM(EASE):
    """SLIM: sparse non-negative item-item weights (L1 + L2), solved by ADMM.

    State as EASE's, with C (dense float32, mostly zeros) in ``weights_``, its share of non-zero
    entries in ``density_``, the last residuals in ``primal_`` and ``dual_``. ``l1`` (λ₁), ``l2``
    (λ₂), ``rho`` (ADMM's penalty: larger makes B = C sooner, each step's move in the objective
    smaller), ``iterations`` (each one dense ``[m, m]`` product, twice the flops of EASE's inverse);
    ``nonnegative=False`` drops ``W >= 0``. ADMM, not the paper's coordinate descent: see the module.

    Defaults from a grid on mal2016-5k / v1 / seed 0 (validation NDCG@10, ``tune``'s ranking; EASE's
    best there is 0.3033, EDLAE's 0.3052), at 10 / 20 iterations: (λ₁, λ₂, ρ) = (1, 100, 1000)
    0.3146 / 0.3195, (1, 100, 300) 0.3149 / 0.3191, (1, 300, 1000) 0.2977 / -, (10, 100, 1000)
    0.2924 at 5 (0.3026 for λ₁ 1), (1, 30, 1000) 0.3207 / 0.3278, (1, 10, 1000) 0.3222 / 0.3299
    (1.7% of C non-zero): test NDCG@10 0.4169 (EASE 0.3629). Still rising at 20 iterations; 20
    keeps the fit to minutes (460 s on 2 cores under load ~9).
    """

    name = "slim"
    tasks = ("ranking",)
    joint = False
    version = "1"
    baseline = False
    framework = "numpy"
    peer = "Ning & Karypis 2011 SLIM (solved by ADMM as Steck et al. 2020), numpy"
    heavy = True  # each ADMM iteration is a dense [m, m] product: minutes a fit on a 2-core CPU
    search_space = {"l1": ("float", 0.1, 100.0, "log"), "l2": ("float", 1.0, 1000.0, "log"),
                    "rho": ("float", 100.0, 100000.0, "log"), "iterations": ("int", 5, 40)}

    def __init__(self, l1: float = 1.0, l2: float = 10.0, rho: float = 1000.0, iterations: int = 20,
                 nonnegative: bool = True) -> None:
        super().__init__(l2=l2)
        self.l1 = l1
        self.rho = rho
        self.iterations = iterations
        self.nonnegative = nonnegative

    @classmethod
    def validate_params(cls, params):
        """l1 >= 0, l2 >= 0, rho > 0, iterations >= 1; nonnegative a bool."""
        check_param(params, "l1", at_least=0)
        check_param(params, "l2", at_least=0)
        check_param(params, "rho", above=0)
        check_param(params, "iterations", at_least=1)
        if "nonnegative" in params and not isinstance(params["nonnegative"], (bool, np.bool_)):
            raise ValueError(f"nonnegative must be true or false, got {params['nonnegative']!r}")

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        started = time.perf_counter()
        self._prepare(train)
        assert self.l2 is not None  # EASE's None (search λ) is not a SLIM value: validate_params refuses it
        self.l2_ = float(self.l2)

        def progress(iteration: int, primal: float, dual: float, _c: np.ndarray) -> None:
            self.report_progress(iteration=iteration, primal=primal, dual=dual,
                                 seconds=round(time.perf_counter() - started, 3))

        gram = (self.x_.T @ self.x_).toarray()
        with blas_limited():
            result = admm_slim(gram, float(self.l1), self.l2_, float(self.rho), int(self.iterations),
                               nonnegative=bool(self.nonnegative), on_iteration=progress)
        self.weights_ = result.weights
        self.primal_, self.dual_, self.epochs_ = result.primal, result.dual, result.iterations
        m = len(self.weights_)
        self.density_ = float(np.count_nonzero(self.weights_)) / (m * m) if m else 0.0
        self.report_progress(density=round(self.density_, 5), seconds=round(time.perf_counter() - started, 3))
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def save(self, folder) -> None:
        """``params.json`` and ``weights.npz``: C as CSR arrays (it is sparse), the anime with a
        train positive, and the training users' rows of X, so a loaded model scores them too."""
        import scipy.sparse

        w = scipy.sparse.csr_matrix(self.weights_)
        save_arrays(folder, self.get_params(), n_items=np.int64(self.n_items_), active=self.active_,
                    w_data=w.data, w_indices=w.indices, w_indptr=w.indptr, x_data=self.x_.data,
                    x_indices=self.x_.indices, x_indptr=self.x_.indptr,
                    x_shape=np.asarray(self.x_.shape, dtype=np.int64))

    @classmethod
    def load(cls, folder) -> "SLIM":
        import scipy.sparse

        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.n_items_, model.active_ = int(z["n_items"]), z["active"]
        model.l2_ = float(model.l2)
        m = len(model.active_)
        model.weights_ = scipy.sparse.csr_matrix((z["w_data"], z["w_indices"], z["w_indptr"]),
                                                 shape=(m, m)).toarray()
        model.x_ = scipy.sparse.csr_matrix((z["x_data"], z["x_indices"], z["x_indptr"]),
                                           shape=tuple(int(n) for n in z["x_shape"]))
        return model


@hookimpl
def register_models(register):
    register(SLIM)
