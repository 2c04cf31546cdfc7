"""LightFM (Kula 2015) with anime features: the hybrid model, fitted by LightFM, scored in numpy.

An anime is the sum of its features' embeddings (and biases). Its features are the standard
LightFM hybrid setup: an identity column of its own for every anime that has training pairs,
plus the framework's anime features (genres, type, episode bucket, title-word tf-idf). Rows are
left unnormalised by default (``normalize=True``: each row scaled to sum 1, as
``lightfm.data.Dataset`` does; on season-v1's validation part, seed 0, 5 epochs: NDCG@10 0.29
normalised against 0.36 not; cold-items-v1: 0.27 against 0.37). An anime without training pairs (a
cold-start protocol's held-out anime, or a validation anime) has no identity column: it is
scored from its features' embeddings alone. Users are LightFM's default identity features.

LightFM is trained on the train positives (interaction label 1) of the anime with training
pairs; anime with none are left out of its item set, so WARP never samples them as negatives.
``score`` reads the fitted model's representations (``get_user_representations``,
``get_item_representations`` of every anime's feature rows) and computes LightFM's ``predict``,
``b_u + b_i + <p_u, q_i>``, for every anime as one matrix product; ``tests/`` checks it against
``LightFM.predict``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench.model import Interactions, Model, check_param

from .library import library_label

if TYPE_CHECKING:
    import scipy.sparse as sp

#: LightFM's losses (``bpr``, ``warp``, ``warp-kos`` rank positives above sampled negatives;
#: ``logistic`` is pointwise, on positives only here).
LOSSES = ("warp", "bpr", "warp-kos", "logistic")


def job_cores() -> int:
    """The cores this process may run on (the job's allotment when the runner pinned it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def item_feature_matrix(features: sp.csr_matrix, items: np.ndarray, *, identity: bool, name_weight: float,
                        name_block: tuple[int, int], normalize: bool) -> sp.csr_matrix:
    """LightFM's item features for every row of ``features``: an identity column per entry of
    ``items`` (``items[j]`` is the row that owns column ``j``; other rows get none), then the
    feature columns (the title-word block scaled by ``name_weight``); each row scaled to sum 1
    when ``normalize`` (a row of zeros stays zeros)."""
    import scipy.sparse as sp

    n = features.shape[0]
    f = sp.csr_matrix(features, dtype=np.float32)
    if name_weight != 1.0:
        scale = np.ones(f.shape[1], np.float32)
        scale[name_block[0]:name_block[1]] = name_weight
        f = sp.csr_matrix(f @ sp.diags(scale), dtype=np.float32)
    blocks = [f]
    if identity:
        own = items < n
        eye = sp.csr_matrix((np.ones(int(own.sum()), np.float32), (items[own], np.flatnonzero(own))),
                            shape=(n, len(items)))
        blocks = [eye, f]
    m = sp.hstack(blocks, format="csr", dtype=np.float32)
    if normalize:
        sums = np.asarray(m.sum(axis=1)).ravel()
        m = sp.csr_matrix(sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ m,
                          dtype=np.float32)
    return m


class LightFMHybrid(Model):
    """LightFM (Kula 2015), the hybrid factorisation model: anime = sum of the embeddings of
    its id and its features (genres, type, episodes, title words), WARP loss on the train likes.
    An anime nobody has rated is scored from its features' embeddings alone."""

    name = "lightfm"
    description = "LightFM hybrid (WARP): anime = its id's + its features' embeddings; cold anime from features"
    tasks = ("ranking",)
    joint = False
    version = "1"
    #: The registry accepts only the frameworks it knows ("keras", "numpy", "surprise", "cornac"):
    #: "numpy" (nothing to import before fit is timed; importing lightfm takes milliseconds).
    framework = "numpy"
    peer = library_label("lightfm", "LightFM")
    item_features = True
    #: For ``tune``: the factors, the step, the regularisation, the title words' weight, whether an
    #: anime's own id column is kept (without it every anime is its features, warm ones too) and
    #: whether rows are normalised. ``epochs`` is the training budget: not searched. The alphas'
    #: defaults are their log range's floor, 1e-8 (LightFM's own are 0, which no log range holds),
    #: so tune's first trial runs the defaults.
    search_space = {"no_components": ("int", 16, 128, "log"), "learning_rate": ("float", 0.01, 0.2, "log"),
                    "item_alpha": ("float", 1e-8, 1e-3, "log"), "user_alpha": ("float", 1e-8, 1e-3, "log"),
                    "name_weight": ("float", 0.1, 10.0, "log"), "item_identity": ("categorical", [True, False]),
                    "normalize": ("categorical", [False, True])}

    #: ``num_threads``: LightFM's threads (0: every core of the job). One by default: LightFM
    #: trains Hogwild-style, so a fit on several threads is not repeatable from its seed, and on the
    #: shared 2-core machine of the boards two threads fitted no faster (v1, 5 epochs: 9.6 s vs 9.7 s).
    def __init__(self, no_components: int = 64, learning_rate: float = 0.05, loss: str = "warp",
                 epochs: int = 8, item_alpha: float = 1e-8, user_alpha: float = 1e-8, max_sampled: int = 10,
                 item_identity: bool = True, name_weight: float = 1.0, normalize: bool = False,
                 num_threads: int = 1) -> None:
        self.no_components = no_components
        self.learning_rate = learning_rate
        self.loss = loss
        self.epochs = epochs
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.item_identity = item_identity
        self.name_weight = name_weight
        self.normalize = normalize
        self.num_threads = num_threads

    @classmethod
    def validate_params(cls, params):
        """no_components, epochs and max_sampled >= 1, a positive rate, alphas and name_weight
        >= 0, a LightFM loss, num_threads >= 0 (0: every core of the job)."""
        check_param(params, "no_components", at_least=1)
        check_param(params, "epochs", at_least=1)
        check_param(params, "max_sampled", at_least=1)
        check_param(params, "learning_rate", above=0)
        check_param(params, "item_alpha", at_least=0)
        check_param(params, "user_alpha", at_least=0)
        check_param(params, "name_weight", at_least=0)
        check_param(params, "num_threads", at_least=0)
        if params["loss"] not in LOSSES:
            raise ValueError(f"loss={params['loss']!r}: expected one of {', '.join(LOSSES)}")

    def _features(self, features, items: np.ndarray) -> sp.csr_matrix:
        return item_feature_matrix(features.matrix, items, identity=bool(self.item_identity),
                                   name_weight=float(self.name_weight), name_block=features.blocks["name"],
                                   normalize=bool(self.normalize))

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        import scipy.sparse as sp
        from lightfm import LightFM

        self.check_tasks(tasks)
        if features is None:
            raise ValueError("lightfm needs anime features (it declares item_features = True)")
        n_fit = features.n_items
        # LightFM's item set: the anime with training pairs (cold anime stay out: never a sampled negative)
        trained = np.zeros(n_fit, dtype=bool)
        trained[train.item[train.item < n_fit]] = True
        self.items_ = np.flatnonzero(trained).astype(np.int64)  # LightFM's item j is our anime items_[j]
        inner = np.full(n_fit, -1, dtype=np.int64)
        inner[self.items_] = np.arange(len(self.items_))
        positives = (train.label == 1) & (train.item < n_fit)
        interactions = sp.coo_matrix(
            (np.ones(int(positives.sum()), np.float32), (train.user[positives], inner[train.item[positives]])),
            shape=(train.n_users, len(self.items_)))
        interactions.sum_duplicates()
        interactions.data[:] = 1.0
        item_features = self._features(features.head(n_fit), self.items_)[self.items_]
        threads = int(self.num_threads) or job_cores()
        self.algo_ = LightFM(no_components=int(self.no_components), learning_rate=float(self.learning_rate),
                             loss=str(self.loss), item_alpha=float(self.item_alpha),
                             user_alpha=float(self.user_alpha), max_sampled=int(self.max_sampled),
                             random_state=np.random.RandomState(seed))
        for epoch in range(int(self.epochs)):
            self.algo_.fit_partial(interactions, item_features=item_features, epochs=1, num_threads=threads)
            self.report_progress(epoch=epoch + 1)
        self.epochs_ = int(self.epochs)
        self.n_items_ = train.n_items
        self.user_bias_, self.user_factors_ = self.algo_.get_user_representations()
        self.set_item_features(features)  # the fit's anime, until the framework gives every anime's
        return self

    def set_item_features(self, features) -> None:
        """Every anime's representation (bias, embedding) from its LightFM feature row."""
        self.features_ = features
        matrix = self._features(features, self.items_)
        bias, factors = self.algo_.get_item_representations(matrix)
        n = max(self.n_items_, features.n_items)  # the catalogue beyond the fit's (hard candidates) too
        self.item_bias_ = np.zeros(n, np.float32)
        self.item_factors_ = np.zeros((n, factors.shape[1]), np.float32)
        m = min(n, len(bias))  # anime beyond the rows given: no features, score b_u alone
        self.item_bias_[:m], self.item_factors_[:m] = bias[:m], factors[:m]

    def score(self, user) -> np.ndarray:
        """LightFM's ``predict`` for every anime: ``b_u + b_i + <p_u, q_i>``, ``[len(user), n_items]``."""
        user = np.asarray(user, dtype=np.int64)
        out = self.user_factors_[user] @ self.item_factors_.T
        out += self.item_bias_
        out += self.user_bias_[user][:, None]
        return out
