"""Trivial and classic baselines, numpy only: every leaderboard shows what they score.

The study had none; predicting "positive" for every pair already gave it accuracy 0.86
(SEED.md). These set the floor a learned model has to clear.
"""

from __future__ import annotations

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.model import (
    FoldedUsers,
    History,
    Interactions,
    Model,
    check_param,
    from_saved_params,
    load_arrays,
    save_arrays,
)


def _lookup(table: np.ndarray, index: np.ndarray, default: float) -> np.ndarray:
    """``table[index]``, with ``default`` for indices outside the table (never seen in train)."""
    index = np.asarray(index, dtype=np.int64)
    inside = (index >= 0) & (index < len(table))
    out = np.full(index.shape, default, dtype=np.float64)
    out[inside] = table[index[inside]]
    return out


class GlobalMean(Model):
    """Predicts the mean training rating for every pair: the floor for the rating task."""

    name = "global-mean"
    tasks = ("rating",)
    baseline = True
    version = "1"

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        self.check_tasks(tasks)
        _, y = train.for_task("rating")
        self.mean_ = float(y.mean()) if len(y) else 5.5
        self.n_items_ = train.n_items
        self.epochs_ = 0
        return self

    def predict(self, user, item):
        return {"rating": np.full(len(user), self.mean_, dtype=np.float64)}

    def score(self, user):
        """``predict`` over every anime, without the pairs (the harness ranked it from those: the
        same values, so the same lists)."""
        return np.full((len(user), self.n_items_), self.mean_, dtype=np.float64)


class Bias(Model):
    """Global mean + regularised user and item biases, fitted by alternating least squares.

    Each sweep solves the biases of one side in closed form given the other:
    ``b_i = sum(r - mu - b_u) / (n_i + item_reg)``, then ``b_u`` likewise. Defaults chosen on
    the validation split of mal2016-5k / v1 / seed 0 (user_reg x item_reg over
    {1, 3, 5, 10, 25}^2: 1 / 3 best at RMSE 1.2056, anything <= 5 within 0.001; 8 sweeps
    are converged).
    """

    name = "bias"
    tasks = ("rating",)
    baseline = True
    version = "1"
    #: ``tune``: both regularisers (the sweeps are the fixed budget).
    search_space = {"user_reg": ("float", 0.1, 100.0, "log"), "item_reg": ("float", 0.1, 100.0, "log")}

    def __init__(self, user_reg: float = 1.0, item_reg: float = 3.0, sweeps: int = 8) -> None:
        self.user_reg = user_reg
        self.item_reg = item_reg
        self.sweeps = sweeps

    @classmethod
    def validate_params(cls, params):
        check_param(params, "user_reg", at_least=0)
        check_param(params, "item_reg", at_least=0)
        check_param(params, "sweeps", at_least=1)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        self.check_tasks(tasks)
        part, y = train.for_task("rating")
        u = part.user.astype(np.int64)
        i = part.item.astype(np.int64)
        y = y.astype(np.float64)
        self.mean_ = float(y.mean()) if len(y) else 5.5
        n_u = np.bincount(u, minlength=train.n_users)
        n_i = np.bincount(i, minlength=train.n_items)
        bu = np.zeros(train.n_users)
        bi = np.zeros(train.n_items)
        resid = y - self.mean_
        for _ in range(self.sweeps):
            bi = np.bincount(i, weights=resid - bu[u], minlength=train.n_items) / (n_i + self.item_reg)
            bu = np.bincount(u, weights=resid - bi[i], minlength=train.n_users) / (n_u + self.user_reg)
        self.user_bias_, self.item_bias_ = bu, bi
        self.epochs_ = self.sweeps
        return self

    def predict(self, user, item):
        score = self.mean_ + _lookup(self.user_bias_, user, 0.0) + _lookup(self.item_bias_, item, 0.0)
        return {"rating": score}

    def score(self, user):
        """``predict`` over every anime as one broadcast sum, added in its order (mean + user) + anime:
        the same values, so the same lists, without the pairs."""
        first = self.mean_ + _lookup(self.user_bias_, user, 0.0)
        return first[:, None] + self.item_bias_[None, :]

    def save(self, folder) -> None:
        save_arrays(folder, self.get_params(), mean=np.float64(self.mean_), user_bias=self.user_bias_,
                    item_bias=self.item_bias_)

    @classmethod
    def load(cls, folder) -> "Bias":
        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.mean_, model.user_bias_, model.item_bias_ = float(z["mean"]), z["user_bias"], z["item_bias"]
        return model


class Popularity(Model):
    """P(positive) = the anime's positive rate in train, shrunk toward the global rate.

    ``(positives_i + shrinkage * p) / (n_i + shrinkage)``: an anime with few training examples
    stays near the global rate ``p`` instead of jumping to 0 or 1. Default shrinkage chosen on
    the validation split of mal2016-5k / v1 / seed 0 (log loss over {1, 3, 10, 30, 100}: 10 best, 0.2475).
    """

    name = "popularity"
    tasks = ("interaction",)
    baseline = True
    version = "1"
    search_space = {"shrinkage": ("float", 0.1, 1000.0, "log")}

    def __init__(self, shrinkage: float = 10.0) -> None:
        self.shrinkage = shrinkage

    @classmethod
    def validate_params(cls, params):
        check_param(params, "shrinkage", at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("interaction",), seed: int = 0):
        self.check_tasks(tasks)
        part, y = train.for_task("interaction")
        self.rate_ = float(y.mean()) if len(y) else 0.5
        pos = np.bincount(part.item, weights=y, minlength=train.n_items)
        n = np.bincount(part.item, minlength=train.n_items)
        self.item_rate_ = (pos + self.shrinkage * self.rate_) / (n + self.shrinkage)
        self.epochs_ = 0
        return self

    def predict(self, user, item):
        return {"interaction": _lookup(self.item_rate_, item, self.rate_)}

    def score(self, user):
        """``predict`` over every anime: the same rates for every user."""
        return np.broadcast_to(self.item_rate_, (len(user), len(self.item_rate_)))


class AlwaysPositive(Model):
    """Calls every pair positive, with the training positive rate as its probability.

    A constant of 1.0 would make log loss infinite; the training positive rate is the best
    constant under log loss and, being above 0.5 on MyAnimeList data (~0.92), still labels
    every pair positive at the 0.5 threshold. Its AUC is 0.5 by construction.
    """

    name = "always-positive"
    tasks = ("interaction",)
    baseline = True
    version = "1"

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("interaction",), seed: int = 0):
        self.check_tasks(tasks)
        _, y = train.for_task("interaction")
        self.rate_ = float(y.mean()) if len(y) else 1.0
        self.n_items_ = train.n_items
        self.epochs_ = 0
        return self

    def predict(self, user, item):
        return {"interaction": np.full(len(user), self.rate_, dtype=np.float64)}

    def score(self, user):
        """``predict`` over every anime: one constant (the lists: the lower anime first)."""
        return np.full((len(user), self.n_items_), self.rate_, dtype=np.float64)


class MostPopular(Model):
    """Recommends every user the anime with the most positive interactions in train.

    The classic top-N floor: no personalisation at all. (``popularity`` above ranks by an anime's
    positive *rate* among those who finished or dropped it, which is a different question.)
    """

    name = "most-popular"
    tasks = ("ranking",)
    baseline = True
    version = "1"

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        positives, _ = train.for_task("ranking")
        self.counts_ = np.bincount(positives.item, minlength=train.n_items).astype(np.float32)
        self.epochs_ = 0
        return self

    def score(self, user):
        """The same counts for every user (indices, or :class:`FoldedUsers` from :meth:`fold_in`)."""
        return np.broadcast_to(self.counts_, (len(user), len(self.counts_)))

    def fold_in(self, history: History) -> FoldedUsers:
        """Nothing to learn from a list: one empty row (the counts are everyone's scores)."""
        return FoldedUsers(np.zeros((1, 0), dtype=np.float32))

    def save(self, folder) -> None:
        save_arrays(folder, self.get_params(), counts=self.counts_)

    @classmethod
    def load(cls, folder) -> "MostPopular":
        params, arrays = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.counts_ = arrays["counts"]
        return model


BASELINES = (GlobalMean, Bias, Popularity, AlwaysPositive, MostPopular)


@hookimpl
def register_models(register):
    for cls in BASELINES:
        register(cls)
