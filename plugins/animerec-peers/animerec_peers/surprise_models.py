"""Surprise's ``SVD`` and ``KNNBaseline`` as model plugins: fitted by Surprise, predicted in numpy.

Both are fitted by Surprise itself on the split's training ratings (our training-vocabulary
indices as Surprise's raw ids, rating scale 1-10). Prediction reads the fitted model's arrays
instead of calling Surprise's per-pair ``predict`` (a Python call per pair: the ranking grid of
every test user x every anime, ~29M pairs on mal2016-5k, would take many minutes), with the
same arithmetic: an unknown user or anime contributes nothing (for ``SVD(biased=False)`` the
prediction is then Surprise's default, the global mean), and estimates are clipped to 1-10 as
Surprise's ``predict`` clips them. ``tests/test_surprise.py`` checks both against ``algo.predict``.
"""

from __future__ import annotations

import numpy as np

from animerec_bench.model import Interactions, Model, check_param

from .library import library_label

#: Rating scale of protocol v1 (Surprise clips its estimates to its Reader's scale).
SCALE = (1.0, 10.0)
#: Pairs per block of a vectorised ``predict`` (bounds the gathered factor rows in memory).
BLOCK = 1 << 16


def surprise_trainset(train: Interactions):
    """Surprise's ``Trainset`` of the training ratings, and our user and anime indices' inner ids
    (-1: not in Surprise's trainset, e.g. an anime seen only in interaction examples)."""
    import pandas as pd
    from surprise import Dataset, Reader

    rated, y = train.for_task("rating")
    frame = pd.DataFrame({"user": rated.user.astype(np.int64), "item": rated.item.astype(np.int64),
                          "rating": y.astype(np.float64)})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=SCALE)).build_full_trainset()
    inner_user = np.full(train.n_users, -1, dtype=np.int64)
    inner_item = np.full(train.n_items, -1, dtype=np.int64)
    for inner in trainset.all_users():
        inner_user[int(trainset.to_raw_uid(inner))] = inner
    for inner in trainset.all_items():
        inner_item[int(trainset.to_raw_iid(inner))] = inner
    return trainset, inner_user, inner_item


def _by_index(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (indexed by Surprise's inner ids) re-indexed by our indices; zeros
    where our index is unknown to Surprise."""
    out = np.zeros((len(inner),) + values.shape[1:], dtype=np.float64)
    known = inner >= 0
    out[known] = values[inner[known]]
    return out


class SurpriseSVD(Model):
    """Surprise's ``SVD`` (Funk's biased MF by SGD, as in the Netflix prize), its defaults.

    ``r_ui = mu + b_u + b_i + <q_i, p_u>``; ``score`` is that estimate for every anime, unclipped.
    """

    name = "surprise-svd"
    tasks = ("rating",)
    joint = False
    version = "1"
    framework = "surprise"
    peer = library_label("scikit-surprise", "Surprise")

    def __init__(self, n_factors: int = 100, n_epochs: int = 20, biased: bool = True, init_mean: float = 0.0,
                 init_std_dev: float = 0.1, lr_all: float = 0.005, reg_all: float = 0.02) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.biased = biased
        self.init_mean = init_mean
        self.init_std_dev = init_std_dev
        self.lr_all = lr_all
        self.reg_all = reg_all

    @classmethod
    def validate_params(cls, params):
        check_param(params, "n_factors", at_least=1)
        check_param(params, "n_epochs", at_least=1)
        check_param(params, "init_std_dev", at_least=0)
        check_param(params, "lr_all", above=0)
        check_param(params, "reg_all", at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        from surprise import SVD

        self.check_tasks(tasks)
        trainset, inner_user, inner_item = surprise_trainset(train)
        self.algo_ = SVD(n_factors=int(self.n_factors), n_epochs=int(self.n_epochs), biased=bool(self.biased),
                         init_mean=self.init_mean, init_std_dev=self.init_std_dev, lr_all=self.lr_all,
                         reg_all=self.reg_all, random_state=seed, verbose=False).fit(trainset)
        self.mean_ = float(trainset.global_mean)
        self.known_user_, self.known_item_ = inner_user >= 0, inner_item >= 0
        self.user_factors_ = _by_index(self.algo_.pu, inner_user)
        self.item_factors_ = _by_index(self.algo_.qi, inner_item)
        if self.biased:
            self.user_bias_ = _by_index(self.algo_.bu, inner_user)
            self.item_bias_ = _by_index(self.algo_.bi, inner_item)
        self.epochs_ = int(self.n_epochs)
        return self

    def predict(self, user, item):
        user = np.asarray(user, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        est = np.empty(len(user), dtype=np.float64)
        for a in range(0, len(user), BLOCK):
            u, i = user[a:a + BLOCK], item[a:a + BLOCK]
            dot = np.einsum("nf,nf->n", self.user_factors_[u], self.item_factors_[i])
            if self.biased:
                est[a:a + BLOCK] = self.mean_ + self.user_bias_[u] + self.item_bias_[i] + dot
            else:
                est[a:a + BLOCK] = np.where(self.known_user_[u] & self.known_item_[i], dot, self.mean_)
        return {"rating": np.clip(est, *SCALE)}

    def score(self, user) -> np.ndarray:
        """The unclipped estimate for every anime, ``[len(user), n_items]``: one matrix product."""
        user = np.asarray(user, dtype=np.int64)
        out = self.user_factors_[user] @ self.item_factors_.T
        if self.biased:
            out += self.item_bias_
            out += self.user_bias_[user][:, None]
            out += self.mean_
        else:
            out[~(self.known_user_[user][:, None] & self.known_item_[None, :])] = self.mean_
        return out


class SurpriseKNNBaseline(Model):
    """Surprise's ``KNNBaseline``, item-based with the ``pearson_baseline`` similarity (the setting
    Surprise recommends for it; issue 12's), its other options at Surprise's defaults.

    Predictions come from Surprise's fitted similarities, baselines and training ratings through
    the vectorised prediction of the built-in ``item-knn-baseline`` (the same arithmetic, a numpy
    port of this very model): ``b_ui + sum_j s_ij (r_uj - b_uj) / sum_j s_ij`` over the user's
    ``k`` most similar rated anime with a positive similarity.
    """

    name = "surprise-knn-baseline"
    tasks = ("rating",)
    joint = False
    version = "1"
    framework = "surprise"
    peer = library_label("scikit-surprise", "Surprise")

    def __init__(self, k: int = 40, min_k: int = 1, shrinkage: float = 100.0, reg_u: float = 15.0,
                 reg_i: float = 10.0, bsl_epochs: int = 10) -> None:
        self.k = k
        self.min_k = min_k
        self.shrinkage = shrinkage
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.bsl_epochs = bsl_epochs

    @classmethod
    def validate_params(cls, params):
        check_param(params, "k", at_least=1)
        check_param(params, "min_k", at_least=0)
        check_param(params, "shrinkage", at_least=0)
        check_param(params, "reg_u", at_least=0)
        check_param(params, "reg_i", at_least=0)
        check_param(params, "bsl_epochs", at_least=1)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        from surprise import KNNBaseline

        from animerec_bench.builtin.knn_baseline import ItemKNNBaseline

        self.check_tasks(tasks)
        trainset, inner_user, inner_item = surprise_trainset(train)
        # Deterministic: ALS baselines and an exact similarity; nothing random to seed.
        self.algo_ = KNNBaseline(k=int(self.k), min_k=int(self.min_k), verbose=False,
                                 sim_options={"name": "pearson_baseline", "user_based": False,
                                              "shrinkage": self.shrinkage},
                                 bsl_options={"method": "als", "reg_u": self.reg_u, "reg_i": self.reg_i,
                                              "n_epochs": int(self.bsl_epochs)}).fit(trainset)
        # The fitted state in the numpy port's layout (see ItemKNNBaseline.fit), in our indices.
        port = ItemKNNBaseline(k=int(self.k), min_k=int(self.min_k))
        port.mean_ = float(trainset.global_mean)
        port.user_bias_ = _by_index(np.asarray(self.algo_.bu), inner_user)
        port.item_bias_ = _by_index(np.asarray(self.algo_.bi), inner_item)
        port.sim_ = _similarities(np.asarray(self.algo_.sim), inner_item)
        rated, y = train.for_task("rating")
        user, item = rated.user.astype(np.int64), rated.item.astype(np.int64)
        resid = y.astype(np.float64) - port.mean_ - port.user_bias_[user] - port.item_bias_[item]
        order = np.lexsort((item, user))
        port.indptr_ = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=train.n_users))])
        port.rated_ = item[order]
        port.resid_ = resid[order].astype(np.float32)
        self.port_ = port
        self.epochs_ = 0
        return self

    def predict(self, user, item):
        return self.port_.predict(user, item)  # clipped to 1-10, as Surprise's predict clips

    def score(self, user) -> np.ndarray:
        """Every anime's ``predict`` rating for each of ``user`` (the port's ``score``: the same
        values without the (user, anime) pairs, so the ranking is the rating predictions' in about
        half the time)."""
        return self.port_.score(user)


def _similarities(sim: np.ndarray, inner_item: np.ndarray) -> np.ndarray:
    """Surprise's item x item similarities (inner ids, float64) in our indices as float32, negative
    ones as 0 (Surprise skips neighbours whose similarity is not positive): block by block, so no
    second float64 copy of the matrix is made."""
    n = len(inner_item)
    out = np.zeros((n, n), dtype=np.float32)
    known = np.flatnonzero(inner_item >= 0)
    inner = inner_item[known]
    step = max(1, (1 << 22) // max(len(known), 1))
    for a in range(0, len(known), step):
        block = sim[inner[a:a + step]][:, inner]
        np.maximum(block, 0.0, out=block)
        out[known[a:a + step, None], known[None, :]] = block
    return out
