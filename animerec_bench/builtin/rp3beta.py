"""``rp3beta``: RP3beta (Paudel et al., "Updatable, accurate, diverse, and scalable recommendations
for interactive applications", TiiS 2016), a three-step random walk user -> anime -> user -> anime
with popularity penalised, in the form Dacrema et al. (RecSys 2019) found a strong baseline.

On the binary train-positives matrix X with user degrees ``d_u`` and anime degrees ``d_i``:
``W[i, j] = sum_u (X[u, i] / d_i)^alpha (X[u, j] / d_u)^alpha / d_j^beta``, diagonal 0, each
column's ``k`` largest kept (anime j is scored from its k nearest: per column, where Dacrema et
al. keep each row's k largest; with version 1's settings, seed 0 test NDCG@10 0.277 per column,
0.234 per row), then, with ``normalize``, each row divided by its sum (each anime a user liked
hands out one unit of score: Dacrema et al.'s ``normalize_similarity``); a user's scores are
``X[user] @ W``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.positives import keep_top_k_per_column, positives, rows_times
from animerec_bench.model import Interactions, Model, check_flag, check_param

if TYPE_CHECKING:
    import scipy.sparse


def rp3beta_weights(x: scipy.sparse.csr_matrix, alpha: float, beta: float) -> np.ndarray:
    """The dense float32 ``W`` above (before the diagonal and top-k): a sparse product
    ``P_iu @ P_ui`` (anime -> user -> anime transition probabilities, each raised to ``alpha``),
    columns divided by ``d_j^beta``. An anime or user with no positive has an all-zero row."""
    import scipy.sparse

    x = x.tocsr().astype(np.float32)
    user_deg = np.asarray(x.sum(axis=1)).ravel()
    item_deg = np.asarray(x.sum(axis=0)).ravel()
    with np.errstate(divide="ignore"):
        inv_user = np.where(user_deg > 0, 1.0 / user_deg, 0.0).astype(np.float32)
        inv_item = np.where(item_deg > 0, 1.0 / item_deg, 0.0).astype(np.float32)
    p_ui = scipy.sparse.diags(inv_user ** alpha) @ x.power(alpha)
    p_iu = scipy.sparse.diags(inv_item ** alpha) @ x.T.power(alpha)
    w = (p_iu @ p_ui).toarray()
    with np.errstate(divide="ignore"):
        penalty = np.where(item_deg > 0, item_deg ** -float(beta), 0.0).astype(np.float32)
    w *= penalty[None, :]
    return w


class RP3beta(Model):
    """RP3beta. State: ``x_`` (CSR positives) and ``weights_`` (dense float32 ``[n_items, n_items]``).

    Version 2: defaults alpha 0.7, beta 0.3, k 50, rows normalised, chosen on mal2016-5k / v1 /
    seed 0's validation ranking (``tune``'s) from 153 settings (alpha 0.3-0.9, beta 0.1-0.9, k
    30-1000, with and without ``normalize``): NDCG@10 0.2656, against 0.2396 for version 1's
    defaults (alpha 0.5, beta 0.6, k 200, not normalised; 0.2297 normalised). Normalising helps
    from alpha 0.5 up and with small k. ``tune`` searches all four."""

    name = "rp3beta"
    description = ("RP3beta: a random walk user -> anime -> user -> anime, popular anime penalised, "
                   "each anime scored from its k nearest (a numpy baseline).")
    tasks = ("ranking",)
    joint = False
    version = "2"
    baseline = True
    framework = "numpy"
    peer = "Paudel et al. 2016 RP3beta, numpy"
    search_space = {"alpha": ("float", 0.2, 1.5), "beta": ("float", 0.0, 1.0),
                    "k": ("int", 10, 2000, "log"), "normalize": ("categorical", [True, False])}

    def __init__(self, alpha: float = 0.7, beta: float = 0.3, k: int = 50, normalize: bool = True) -> None:
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.normalize = normalize

    @classmethod
    def validate_params(cls, params):
        """alpha > 0, beta >= 0, k >= 1, normalize a bool."""
        check_param(params, "alpha", above=0)
        check_param(params, "beta", at_least=0)
        check_param(params, "k", at_least=1)
        check_flag(params, "normalize")

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        started = time.perf_counter()
        self.x_ = positives(train)
        w = rp3beta_weights(self.x_, float(self.alpha), float(self.beta))
        np.fill_diagonal(w, 0.0)
        self.weights_ = keep_top_k_per_column(w, int(self.k))
        if self.normalize:
            sums = self.weights_.sum(axis=1, keepdims=True)
            np.divide(self.weights_, sums, out=self.weights_, where=sums > 0)
        self.epochs_ = 0
        self.report_progress(seconds=round(time.perf_counter() - started, 3))
        return self

    def score(self, user) -> np.ndarray:
        """``X[user] @ W``: float32 ``[len(user), n_items]``, blocks of users on the job's cores."""
        return rows_times(self.x_[np.asarray(user, dtype=np.int64)], self.weights_)


@hookimpl
def register_models(register):
    register(RP3beta)
