"""Content-aware baselines (issue 23): models that score anime from their features, so they
can rank shows nobody has rated yet (the ``season-v1`` and ``cold-items-v1`` protocols).

Each declares ``item_features = True``: ``fit`` gets the features of the anime it may know,
``set_item_features`` every anime's before it scores (see :mod:`animerec_bench.model`).

- ``random``: uniform random scores, the floor;
- ``genre-popularity``: not personalised; an anime scores the mean popularity of its genres;
- ``content-knn``: an anime's k nearest known anime by features, weighted by the user's likes;
- ``feature-ridge``: user x feature ridge regression in closed form.

They take part in the cold-start protocols only (``protocols``): on v1 every anime is warm and
the id-based models answer better, so ``run --all`` there spends no time on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.model import Interactions, Model, check_param
from animerec_bench.support.lazy import lazy_module

if TYPE_CHECKING:
    import scipy.linalg as linalg
    import scipy.sparse as sp
else:  # imported on first use: loading the plugins (`list`) must not pay for scipy
    sp = lazy_module("scipy.sparse")
    linalg = lazy_module("scipy.linalg")

#: The protocols these models take part in.
COLD_PROTOCOLS = ("season-v1", "cold-items-v1")


def _liked(train: Interactions, n_items: int) -> sp.csr_matrix:
    """Users x anime, 1 where the user liked the anime in train (interaction label 1)."""
    pos = train.label == 1
    return sp.csr_matrix((np.ones(int(pos.sum()), np.float32), (train.user[pos], train.item[pos])),
                         shape=(train.n_users, n_items))


def weighted_features(features, name_weight: float) -> sp.csr_matrix:
    """The feature matrix with the title-word block scaled by ``name_weight`` (the genre, type
    and episode columns stay 0/1): how much a shared franchise word counts against a genre."""
    start, stop = features.blocks["name"]
    scale = np.ones(len(features.names), np.float32)
    scale[start:stop] = name_weight
    return sp.csr_matrix(features.matrix @ sp.diags(scale), dtype=np.float32)


def _normalised_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ m,
                         dtype=np.float32)


class RandomScores(Model):
    """Ranks every candidate in a random order: the floor of the ranking task. Scores depend
    only on the seed, the user and the anime, so chunking and order change nothing."""

    name = "random"
    tasks = ("ranking",)
    baseline = True
    item_features = True  # it takes part in the cold-start protocols (it ignores the features)
    protocols = COLD_PROTOCOLS
    version = "1"

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        self.check_tasks(tasks)
        self.seed_, self.n_items_ = seed, train.n_items
        self.epochs_ = 0
        return self

    def set_item_features(self, features) -> None:
        self.n_items_ = max(self.n_items_, features.n_items)  # a larger catalogue (hard candidates)

    def score(self, user):
        return np.stack([np.random.default_rng([self.seed_, int(u)]).random(self.n_items_) for u in user]) \
            if len(user) else np.zeros((0, self.n_items_))


class GenrePopularity(Model):
    """Not personalised: an anime scores the mean, over its genres, of how many likes an anime
    of that genre gets in train (``(likes_g + shrinkage * mean) / (anime_g + shrinkage)``).
    An anime without a genre gets the overall mean."""

    name = "genre-popularity"
    tasks = ("ranking",)
    baseline = True
    item_features = True
    protocols = COLD_PROTOCOLS
    version = "1"
    search_space = {"shrinkage": ("float", 0.1, 1000.0, "log")}

    def __init__(self, shrinkage: float = 10.0) -> None:
        self.shrinkage = shrinkage

    @classmethod
    def validate_params(cls, params):
        check_param(params, "shrinkage", at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        self.check_tasks(tasks)
        genres = sp.csr_matrix(features.block("genre"), dtype=np.float64)  # known anime x genres
        trained = np.zeros(features.n_items, bool)
        trained[train.item] = True  # validation anime have no likes in train: left out of the means
        likes = np.bincount(train.item[train.label == 1], minlength=features.n_items).astype(np.float64)
        mean = float(likes[trained].mean()) if trained.any() else 0.0
        per_genre_likes = genres[trained].T @ likes[trained]
        per_genre_anime = np.asarray(genres[trained].sum(axis=0)).ravel()
        self.genre_score_ = (per_genre_likes + self.shrinkage * mean) / (per_genre_anime + self.shrinkage)
        self.mean_ = mean
        self.epochs_ = 0
        return self

    def set_item_features(self, features) -> None:
        genres = sp.csr_matrix(features.block("genre"), dtype=np.float64)
        n = np.asarray(genres.sum(axis=1)).ravel()
        total = genres @ self.genre_score_
        self.item_score_ = np.where(n > 0, total / np.maximum(n, 1), self.mean_)

    def score(self, user):
        return np.broadcast_to(self.item_score_, (len(user), len(self.item_score_)))


class ContentKNN(Model):
    """Item-content kNN: each anime's ``k`` most similar known anime (cosine over features, the
    title words weighted by ``name_weight``), and a user's score for it is the similarity-weighted
    sum of their likes among those neighbours. Known anime are never their own neighbour."""

    name = "content-knn"
    tasks = ("ranking",)
    baseline = True
    item_features = True
    protocols = COLD_PROTOCOLS
    version = "1"
    search_space = {"k": ("int", 5, 200, "log"), "name_weight": ("float", 0.1, 10.0, "log")}

    def __init__(self, k: int = 20, name_weight: float = 1.0) -> None:
        self.k = k
        self.name_weight = name_weight

    @classmethod
    def validate_params(cls, params):
        check_param(params, "k", at_least=1)
        check_param(params, "name_weight", at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        self.check_tasks(tasks)
        self.n_known_ = features.n_items
        self.known_ = _normalised_rows(weighted_features(features, self.name_weight))
        self.liked_ = _liked(train, features.n_items)
        self.epochs_ = 0
        return self

    def set_item_features(self, features) -> None:
        """The k-neighbour matrix (every anime x known anime), built in blocks of anime."""
        every = _normalised_rows(weighted_features(features, self.name_weight))
        blocks = []
        for a in range(0, every.shape[0], 2048):
            sim = (every[a:a + 2048] @ self.known_.T).toarray()
            own = np.arange(a, min(a + 2048, every.shape[0]))
            mine = own < self.n_known_
            sim[np.nonzero(mine)[0], own[mine]] = 0.0  # not its own neighbour
            k = min(self.k, sim.shape[1])
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            rows = np.repeat(np.arange(sim.shape[0]), k)
            vals = sim[rows, top.ravel()]
            blocks.append(sp.csr_matrix((vals, (rows, top.ravel())), shape=sim.shape, dtype=np.float32))
        self.neighbours_ = sp.vstack(blocks, format="csr")  # anime x known anime

    def score(self, user):
        return (self.liked_[user] @ self.neighbours_.T).toarray()


class FeatureRidge(Model):
    """User x feature ridge regression, in closed form: each user's row of likes over the known
    anime (1 liked, else 0) is regressed on the anime's features, all users at once:
    ``W = Y F (F'F + reg I)^-1``; an anime's score for a user is ``W_u . f_anime``.

    For the rating task: the user's and the anime's biases (``bias``-like ALS), the anime's
    bias regressed on its features (ridge, ``reg``), so an unseen anime gets a rating from its
    features alone."""

    name = "feature-ridge"
    tasks = ("rating", "ranking")
    baseline = True
    item_features = True
    protocols = COLD_PROTOCOLS
    version = "1"
    search_space = {"reg": ("float", 0.1, 1000.0, "log"), "name_weight": ("float", 0.1, 10.0, "log")}

    def __init__(self, reg: float = 10.0, name_weight: float = 1.0) -> None:
        self.reg = reg
        self.name_weight = name_weight

    @classmethod
    def validate_params(cls, params):
        check_param(params, "reg", above=0)
        check_param(params, "name_weight", at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        (task,) = self.check_tasks(tasks)
        self.task_ = task
        f = weighted_features(features, self.name_weight)
        self.epochs_ = 0
        if task == "ranking":
            gram = (f.T @ f).toarray().astype(np.float64) + self.reg * np.eye(f.shape[1])
            yf = (_liked(train, features.n_items) @ f).toarray().astype(np.float64)  # users x features
            self.user_weights_ = linalg.cho_solve(linalg.cho_factor(gram), yf.T).T.astype(np.float32)
        else:
            self._fit_rating(train, f)
        return self

    def _fit_rating(self, train: Interactions, f: sp.csr_matrix) -> None:
        """Alternating closed-form sweeps: the anime biases, each shrunk (``n / (n + 3)``) toward
        its features' ridge prediction, then the user biases."""
        part, y = train.for_task("rating")
        y = y.astype(np.float64)
        self.mean_ = float(y.mean()) if len(y) else 5.5
        n_i = np.bincount(part.item, minlength=f.shape[0]).astype(np.float64)
        weight = n_i / (n_i + 3.0)  # an anime's mean residual counts by how many ratings it has
        factor = linalg.cho_factor((f.T @ sp.diags(weight) @ f).toarray() + self.reg * np.eye(f.shape[1]))
        n_u = np.bincount(part.user, minlength=train.n_users)
        bu = np.zeros(train.n_users)
        for _ in range(8):
            resid = np.bincount(part.item, weights=y - self.mean_ - bu[part.user], minlength=f.shape[0])
            beta = linalg.cho_solve(factor, f.T @ (weight * resid / np.maximum(n_i, 1)))
            bi = (resid + 3.0 * (f @ beta)) / (n_i + 3.0)
            bu = np.bincount(part.user, weights=y - self.mean_ - bi[part.item], minlength=train.n_users) / (n_u + 1.0)
        self.beta_, self.user_bias_, self.item_bias_ = beta, bu, bi

    def set_item_features(self, features) -> None:
        f = weighted_features(features, self.name_weight)
        if self.task_ == "ranking":
            self.item_t_ = sp.csr_matrix(f.T)
            return
        known = len(self.item_bias_)  # the anime fit knew keep their fitted bias
        self.item_bias_all_ = np.concatenate([self.item_bias_, (f[known:] @ self.beta_)])

    def score(self, user):
        if self.task_ == "rating":  # the rating fit ranks by its predicted ratings
            return self.mean_ + self.user_bias_[user][:, None] + self.item_bias_all_[None, :]
        return np.asarray((self.item_t_.T @ self.user_weights_[user].T).T)

    def predict(self, user, item):
        return {"rating": self.mean_ + self.user_bias_[user] + self.item_bias_all_[item]}


class FeatureKernel(Model):
    """Kernel ridge over anime features, plus a popularity guess from features.

    Like ``feature-ridge`` a user's likes over the known anime are regressed on the anime's
    features, here in kernel form with the squared cosine similarity of their features
    (``k(a, b) = cos(f_a, f_b) ** power``: two anime must share much, e.g. franchise words *and*
    genres, to count as alike): ``A = Y (K + reg I)^-1`` over the trained anime, and a user's
    score for any anime is ``A_u . k(anime, trained)``. To it is added, in standard deviations
    over every anime, ``popularity_weight`` times how popular the anime's features say it will
    be (ridge of log(1 + likes) on features): new shows have no likes yet, their features do.
    """

    name = "feature-kernel"
    tasks = ("ranking",)
    item_features = True
    protocols = COLD_PROTOCOLS
    version = "1"
    search_space = {"reg": ("float", 0.1, 100.0, "log"), "power": ("int", 1, 4),
                    "popularity_weight": ("float", 0.0, 4.0)}

    def __init__(self, reg: float = 1.0, power: int = 2, popularity_weight: float = 1.0) -> None:
        self.reg = reg
        self.power = power
        self.popularity_weight = popularity_weight

    @classmethod
    def validate_params(cls, params):
        check_param(params, "reg", above=0)
        check_param(params, "power", at_least=1)
        check_param(params, "popularity_weight", at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        self.check_tasks(tasks)
        self.trained_ = np.unique(train.item)  # the anime with training pairs: the kernel's support
        known = _normalised_rows(features.matrix[self.trained_])
        self.known_t_ = sp.csr_matrix(known.T)
        kernel = (known @ self.known_t_).toarray().astype(np.float64) ** self.power
        kernel[np.diag_indices_from(kernel)] += self.reg
        liked = _liked(train, features.n_items)[:, self.trained_].toarray().astype(np.float64)
        self.user_weights_ = linalg.cho_solve(linalg.cho_factor(kernel, overwrite_a=True),
                                                    liked.T, overwrite_b=True).T.astype(np.float32)
        f = features.matrix[self.trained_]
        likes = np.bincount(train.item[train.label == 1], minlength=features.n_items)[self.trained_]
        gram = (f.T @ f).toarray().astype(np.float64) + 10.0 * np.eye(f.shape[1])
        self.popularity_beta_ = linalg.cho_solve(linalg.cho_factor(gram), f.T @ np.log1p(likes))
        self.epochs_ = 0
        return self

    def set_item_features(self, features) -> None:
        every = _normalised_rows(features.matrix)
        self.similarity_ = ((every @ self.known_t_).toarray() ** self.power).astype(np.float32)  # anime x trained
        popularity = features.matrix @ self.popularity_beta_
        self.popularity_ = ((popularity - popularity.mean()) / (popularity.std() or 1.0)).astype(np.float32)

    def score(self, user):
        raw = self.user_weights_[user] @ self.similarity_.T
        raw = (raw - raw.mean(axis=1, keepdims=True)) / (raw.std(axis=1, keepdims=True) + 1e-9)
        return raw + self.popularity_weight * self.popularity_[None, :]


CONTENT_MODELS = (RandomScores, GenrePopularity, ContentKNN, FeatureRidge, FeatureKernel)


@hookimpl
def register_models(register):
    for cls in CONTENT_MODELS:
        register(cls)
