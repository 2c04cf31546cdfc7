"""Cornac's ``MF`` (rating) and ``BPR`` (ranking) as model plugins: fitted by Cornac, scored in numpy.

Both are fitted by Cornac itself (our training-vocabulary indices as Cornac's raw ids), ``MF``
with Cornac's defaults and ``BPR`` with settings chosen on validation (see :class:`CornacBPR`),
seeded from the job's seed (with a seed Cornac trains on one thread, so a
seeded fit is repeatable). Scores come from the fitted factors as one matrix product, the same
arithmetic as Cornac's own ``score``; ``tests/test_cornac.py`` checks them against it.
"""

from __future__ import annotations

import numpy as np

from animerec_bench.model import Interactions, Model, check_param

from .library import library_label


def cornac_trainset(user: np.ndarray, item: np.ndarray, value: np.ndarray, seed: int):
    """Cornac's ``Dataset`` of the (user, anime, value) triplets, and our user and anime indices'
    Cornac indices (-1: not in Cornac's data)."""
    from cornac.data import Dataset

    data = list(zip(user.astype(np.int64).tolist(), item.astype(np.int64).tolist(),
                    value.astype(np.float64).tolist()))
    train_set = Dataset.from_uir(data, seed=seed)
    return train_set, _indices(train_set.uid_map), _indices(train_set.iid_map)


def _indices(mapping: dict) -> dict:
    return {int(raw): int(idx) for raw, idx in mapping.items()}


def _by_index(values: np.ndarray, inner: dict, n: int) -> np.ndarray:
    """Rows of ``values`` (Cornac's indices) in our indices ``0..n-1``; zeros where Cornac has none."""
    out = np.zeros((n,) + np.shape(values)[1:], dtype=np.float64)
    if inner:
        ours = np.fromiter(inner.keys(), dtype=np.int64, count=len(inner))
        theirs = np.fromiter(inner.values(), dtype=np.int64, count=len(inner))
        out[ours] = np.asarray(values)[theirs]
    return out


def _known(inner: dict, n: int) -> np.ndarray:
    known = np.zeros(n, dtype=bool)
    known[np.fromiter(inner.keys(), dtype=np.int64, count=len(inner))] = True
    return known


class _CornacSGD(Model):
    """What Cornac's MF and BPR share: their SGD settings and how those are checked."""

    @classmethod
    def validate_params(cls, params):
        """k and max_iter >= 1, a positive rate, reg >= 0."""
        check_param(params, "k", at_least=1)
        check_param(params, "max_iter", at_least=1)
        check_param(params, "learning_rate", above=0)
        check_param(params, "lambda_reg", at_least=0)


class CornacMF(_CornacSGD):
    """Cornac's ``MF``: biased matrix factorisation by SGD on the ratings, its defaults.

    ``score`` is Cornac's ``score``, unclipped: ``mu + b_u + b_i + <u_u, v_i>`` (a user Cornac
    does not know: ``mu + b_i``; an anime it does not know: its default, the global mean);
    ``predict`` clips it to the training ratings' range, as Cornac's ``rate`` does.
    """

    name = "cornac-mf"
    tasks = ("rating",)
    joint = False
    version = "1"
    framework = "cornac"
    peer = library_label("cornac", "Cornac")

    def __init__(self, k: int = 10, max_iter: int = 20, learning_rate: float = 0.01, lambda_reg: float = 0.02,
                 use_bias: bool = True) -> None:
        self.k = k
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.lambda_reg = lambda_reg
        self.use_bias = use_bias

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        from cornac.models import MF

        self.check_tasks(tasks)
        rated, y = train.for_task("rating")
        train_set, users, items = cornac_trainset(rated.user, rated.item, y, seed)
        self.algo_ = MF(k=int(self.k), max_iter=int(self.max_iter), learning_rate=self.learning_rate,
                        lambda_reg=self.lambda_reg, use_bias=bool(self.use_bias), seed=seed,
                        verbose=False).fit(train_set)
        self.users_, self.items_ = users, items  # our index -> Cornac's
        self.mean_ = float(self.algo_.global_mean)  # 0 without biases, as Cornac sets it
        self.range_ = (float(self.algo_.min_rating), float(self.algo_.max_rating))
        self.known_user_ = _known(users, train.n_users)
        self.known_item_ = _known(items, train.n_items)
        self.user_factors_ = _by_index(self.algo_.u_factors, users, train.n_users)
        self.item_factors_ = _by_index(self.algo_.i_factors, items, train.n_items)
        self.user_bias_ = _by_index(self.algo_.u_biases, users, train.n_users)
        self.item_bias_ = _by_index(self.algo_.i_biases, items, train.n_items)
        self.epochs_ = int(self.max_iter)
        return self

    def score(self, user) -> np.ndarray:
        user = np.asarray(user, dtype=np.int64)
        out = self.user_factors_[user] @ self.item_factors_.T  # 0 for a user Cornac does not know
        out += self.mean_ + self.item_bias_
        out += self.user_bias_[user][:, None]
        out[:, ~self.known_item_] = self.mean_  # Cornac's default score
        return out

    def predict(self, user, item):
        user = np.asarray(user, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        est = np.empty(len(user), dtype=np.float64)
        block = 1 << 16
        for a in range(0, len(user), block):
            u, i = user[a:a + block], item[a:a + block]
            est[a:a + block] = (self.mean_ + self.user_bias_[u] + self.item_bias_[i]
                                + np.einsum("nf,nf->n", self.user_factors_[u], self.item_factors_[i]))
        est[~self.known_item_[item]] = self.mean_
        return {"rating": np.clip(est, *self.range_)}


class CornacBPR(_CornacSGD):
    """Cornac's ``BPR`` (Rendle et al. 2009), trained on the train positives (interaction label 1):
    ``score`` is ``<u_u, v_i> + b_i``, Cornac's own.

    Version 2 (issue 22): Cornac's defaults (k 10, rate 0.001, 100 epochs) learn popularity
    (test NDCG@10 0.112, level with most-popular); these (k 128, rate
    0.02, lambda_reg 0.003, 500 epochs) were chosen on mal2016-5k / v1 / seed 0's validation
    ranking from 12 settings: k 64-256, rate 0.01-0.05, lambda_reg 1e-4-0.01, 100-1000 epochs
    (0.2421; 1000 epochs at lambda_reg 0.001 0.2407 in twice the time, 300 epochs 0.2226).

    A user with no train positive has no factors: its scores are the item biases. An anime with
    no train positive is unknown to Cornac: it is scored below every other anime for every user.
    """

    name = "cornac-bpr"
    description = "Cornac's BPR: pairwise ranking MF on the train positives, settings chosen on validation."
    tasks = ("ranking",)
    joint = False
    version = "2"
    framework = "cornac"
    peer = library_label("cornac", "Cornac")
    heavy = True  # 500 epochs of 128 factors on one core (Cornac's seeded BPR): 34-39 s a fit on a quiet
    # 2-core machine, up to 98 s under load
    #: For ``tune``: the factors, the SGD step and the regularisation. ``max_iter`` is the training
    #: budget: not searched.
    search_space = {"k": ("int", 8, 256, "log"), "learning_rate": ("float", 1e-3, 0.2, "log"),
                    "lambda_reg": ("float", 1e-4, 0.1, "log")}

    def __init__(self, k: int = 128, max_iter: int = 500, learning_rate: float = 0.02, lambda_reg: float = 0.003,
                 use_bias: bool = True) -> None:
        self.k = k
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.lambda_reg = lambda_reg
        self.use_bias = use_bias

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        from cornac.models import BPR

        self.check_tasks(tasks)
        positives, _ = train.for_task("ranking")
        train_set, users, items = cornac_trainset(positives.user, positives.item,
                                                  np.ones(len(positives)), seed)
        self.algo_ = BPR(k=int(self.k), max_iter=int(self.max_iter), learning_rate=self.learning_rate,
                         lambda_reg=self.lambda_reg, use_bias=bool(self.use_bias), seed=seed,
                         verbose=False).fit(train_set)
        self.users_, self.items_ = users, items
        self.known_item_ = _known(items, train.n_items)
        self.user_factors_ = _by_index(self.algo_.u_factors, users, train.n_users)
        self.item_factors_ = _by_index(self.algo_.i_factors, items, train.n_items)
        self.item_bias_ = _by_index(self.algo_.i_biases, items, train.n_items)
        self.epochs_ = int(self.max_iter)
        return self

    def score(self, user) -> np.ndarray:
        user = np.asarray(user, dtype=np.int64)
        out = self.user_factors_[user] @ self.item_factors_.T
        out += self.item_bias_
        if not self.known_item_.all():
            known = out[:, self.known_item_]
            floor = known.min(axis=1) - 1.0 if known.size else np.zeros(len(user))
            out[:, ~self.known_item_] = floor[:, None]
        return out
