"""``two-tower``: a Keras retrieval model for the ranking task, trained with an in-batch softmax.

A user tower and an anime tower map ids to L2-normalised vectors; ``score`` is their dot
product over the temperature, plus a per-anime bias, for every anime of the training
vocabulary. Trained the TFRS way (Yi et al. 2019, "Sampling-bias-corrected neural modeling
for large corpus item recommendations"): a batch holds positive (user, anime) train pairs,
the other anime of the batch are the negatives, and every logit is corrected by ``-log q``,
q being the anime's share of the positives (its chance to be drawn into a batch), so that
popular anime are not pushed down merely for being drawn as negatives more often. A negative
that is the positive's own anime (an "accidental hit") or another positive of the same user
is left out.

Anime features (issue 23: genres, type, episodes, title words; ``item_features``) enter the
anime tower: an anime's vector is its id embedding plus the sum of its features' embeddings
(weighted by their values), its bias its id bias plus a linear bias of its features. An anime
without train positives has no id part, so a new show, which the cold-start protocols
(``season-v1``, ``cold-items-v1``) hand over only to score, is placed by its features alone;
in training the id part is dropped for a random ``id_dropout`` of the batch's anime, so that
the features learn to stand alone (without it the cold anime's vectors are untrained sums).
On a cold-start split the validation anime have no train pairs either, and early stopping
ranks them, as the protocol does. Without features (``fit(..., features=None)``) the anime
tower is the id embedding alone.

Measured on mal2016-5k, seed 0, on a loaded 2-core machine (issue 23): ``id_dropout`` 0.25
over 0.5 on both validation rankings (season-v1 0.381 against 0.371; v1 0.277 against 0.274,
id-only 0.263); test NDCG@10 season-v1 0.228 (``feature-ridge`` 0.212), v1 0.351 (id-only
0.329). The price is fit time: a step gathers a 256-wide row per non-zero feature of each
anime of the batch, and one v1 epoch took ~2x the id-only one (interleaved, noisy).
``feature_dim`` = 64 (mapped up by a linear layer) cost ~1.1x but lost on both validation
rankings (season-v1 0.354; v1 0.245 at epoch 7, where id-only had 0.257), so it is not
the default.

The user tower is the YouTube-DNN / FISM kind: the mean of the anime tower's *id*
embeddings over the user's train positives, plus a user id embedding
(``user_embedding``). A batch is made of groups: ``group_size`` positives of one user and, as that
user's history, a sample of ``history_size`` of *the user's other* positives, so the tower
never sees the anime it must find (when scoring, the history is all the user's train
positives). The history is gathered once per group, not once per pair: it is most of a
step's work.

Why these choices. A sweep of 54 settings on one H200 GPU (JAX; ``benchmarks/two_tower_sweep.py``,
its rows in ``benchmarks/two_tower_sweep.jsonl``), chosen by NDCG@10 over all validation users
of mal2016-5k / v1 / seed 0 (EASE: 0.295 by the same rule):

- the user id embedding *together with* a history of 64: 0.258 -> 0.284 at 256 dimensions
  (each alone: +0.002 to +0.007; the id embedding learns what the sampled history misses);
- 256 dimensions: 128 loses 0.019 with the rest equal, 512 gains nothing (0.289 both, 24 epochs);
- 12 epochs, learning rate cosine-decayed from 0.01: 16 / 20 / 24 epochs gain 0.001 / 0.004 /
  0.006 on validation for 1.3 / 1.7 / 2x the epochs;
- sharing the anime embeddings between the history and the anime tower, L2-normalised towers
  at temperature 0.1 (0.05 / 0.07: -0.001 to -0.013; no normalisation: -0.007), groups of 8
  (4: +0.000 to +0.003 for ~1.5x the time; 16: -0.004), batches of 1,024 positives;
- logQ correction at full strength (0.5: -0.042; 1.2: -0.006) and the per-anime bias started
  at log q (centred), so training starts from the popularity ranking, which this data rewards;
- ``LazyAdam`` (``sparse_optim``: Keras' Adam on TensorFlow squares an embedding gradient's
  repeated rows one by one; a popular anime repeats in most histories).

Test NDCG@10 of these defaults (the sweep, JAX): 0.334 on seed 0, 92% of EASE's 0.363. What
keeps it below EASE is rank, not the sampled softmax: a full softmax over all anime scored the
same, and EASE's own item-item matrix truncated to rank 64 / 256 scores 0.238 / 0.269 on
validation against its full 0.281 (an earlier measurement, 2,000 users).

Early stopping on validation NDCG@10 (full ranking over the anime not in the user's train
pairs), best weights restored. After fit the towers are numpy arrays, so ``score`` is one
matmul. Written with ``keras`` and ``keras.ops`` only, so it runs on any Keras backend;
Keras is imported inside ``fit`` (``--help`` and ``list`` never import TensorFlow).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.keras_backend import keras, seed_everything, to_numpy
from animerec_bench.builtin.sparse_optim import LazyAdam
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

#: Small constant under L2 normalisation's square root (an all-zero vector stays zero).
NORM_EPSILON = 1e-12
#: Training steps per call into the compiled graph (fewer Python round trips: on 2 cores a
#: 12-epoch fit went from 23 to 17 s with 8; the arithmetic is the same).
STEPS_PER_EXECUTION = 16


@dataclass(frozen=True)
class _FeatureRows:
    """The anime features as the network takes them: each anime's non-zero feature columns
    (``index``, padded with ``n_columns``) and values (padded with 0), one row per anime index
    and a last all-padding row; ``warm``: 1 for an anime with train positives (its id
    embedding is trained), else 0 (its vector comes from its features alone)."""

    index: np.ndarray  # int32 [n_items + 1, most non-zeros of a row]
    value: np.ndarray  # float32, same shape
    warm: np.ndarray  # float32 [n_items + 1]
    n_columns: int


def feature_rows(matrix, n_items: int, warm: np.ndarray) -> _FeatureRows:
    """:class:`_FeatureRows` of a CSR ``matrix`` (``ItemFeatures.matrix``); anime past its rows
    (a cold protocol's test anime while fitting) get padding only."""
    indptr, n_rows = np.asarray(matrix.indptr), min(matrix.shape[0], n_items)
    counts = np.diff(indptr[:n_rows + 1])
    width = max(int(counts.max()) if n_rows else 0, 1)
    index = np.full((n_items + 1, width), matrix.shape[1], dtype=np.int32)
    value = np.zeros((n_items + 1, width), dtype=np.float32)
    rows = np.repeat(np.arange(n_rows), counts)
    at = np.arange(int(indptr[n_rows])) - indptr[rows]
    index[rows, at] = np.asarray(matrix.indices)[:len(rows)]
    value[rows, at] = np.asarray(matrix.data)[:len(rows)]
    return _FeatureRows(index, value, np.append(warm, False).astype(np.float32), int(matrix.shape[1]))


def _l2_normalise(x):
    """``x`` scaled to unit length along its last axis (cosine scores)."""
    ops = keras().ops
    return x / ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + NORM_EPSILON)


@functools.cache
def _feature_tower_class():
    """The anime tower's feature part, a mixin of the network (defined on first use, as the
    network: Keras is imported only to train)."""
    k = keras()
    ops = k.ops

    class FeatureTower:
        """Anime features in the anime tower: the sum of their embeddings and a linear bias."""

        def _add_feature_tower(self, features, dim, feature_dim, init, item_bias, id_dropout, seed):
            """``features``: a :class:`_FeatureRows`. An anime's vector gains the sum of its
            features' embeddings (weighted by their values): ``dim``-dimensional, or, with a
            ``feature_dim``, that many dimensions mapped to ``dim`` by one linear layer (fewer
            rows gathered a step: faster, see the module's docstring); its bias a linear bias."""
            self.id_dropout = float(id_dropout)
            self.seed_generator = k.random.SeedGenerator(int(seed))
            self.feature_embeddings = k.layers.Embedding(features.n_columns + 1, feature_dim or dim,
                                                         embeddings_initializer=init, name="feature_embeddings")
            self.feature_projection = k.layers.Dense(dim, use_bias=False, name="feature_projection") \
                if feature_dim else None
            self.feature_bias = k.layers.Embedding(features.n_columns + 1, 1, embeddings_initializer="zeros",
                                                   name="feature_bias") if item_bias else None
            for name, value, dtype in (("feature_index", features.index, "int32"),
                                       ("feature_value", features.value, "float32"),
                                       ("warm", features.warm, "float32")):
                setattr(self, name, self.add_weight(shape=value.shape, dtype=dtype, trainable=False, name=name,
                                                    initializer=k.initializers.Constant(value)))

        def _with_features(self, item, out, bias, training):
            """The id part (``out``, ``bias``) kept for warm anime only (and in training
            dropped for a random ``id_dropout`` of them), plus the features' vector and bias."""
            keep = ops.take(self.warm, item)
            if training and self.id_dropout > 0:
                drawn = k.random.uniform(ops.shape(item), seed=self.seed_generator)
                keep = keep * ops.cast(drawn >= self.id_dropout, "float32")
            index, value = ops.take(self.feature_index, item, axis=0), ops.take(self.feature_value, item, axis=0)
            summed = ops.sum(self.feature_embeddings(index) * ops.expand_dims(value, -1), axis=1)
            if self.feature_projection is not None:
                summed = self.feature_projection(summed)
            out = out * ops.expand_dims(keep, -1) + summed
            if self.feature_bias is not None:
                bias = bias * keep + ops.sum(ops.squeeze(self.feature_bias(index), -1) * value, axis=1)
            return out, bias

    return FeatureTower


@functools.cache
def _network_class():
    """The Keras network, defined on first use (Keras is imported only to train)."""
    k = keras()
    ops = k.ops

    class TwoTowerNetwork(_feature_tower_class(), k.Model):
        """Input: int32 ``[groups, 1 + group_size + history_size]`` rows ``[user, its positives,
        its history]``, ``n_items`` padding both. Output: ``[groups, groups * group_size]``, the
        logits of each group's user against every positive anime of the batch, logQ-corrected."""

        def __init__(self, n_users, n_items, dim, group_size, log_q, temperature, logq_weight,
                     user_embedding, item_bias, normalize=True, features=None, id_dropout=0.0, seed=0,
                     feature_dim=None, **kw):
            super().__init__(**kw)
            self.normalize = bool(normalize)
            self.n_items = int(n_items)
            self.group_size = int(group_size)
            self.temperature = float(temperature)
            self.logq_weight = float(logq_weight)
            init = k.initializers.RandomNormal(stddev=0.05)
            # Row n_items is padding: never a target, masked as a negative and in histories.
            self.item_embeddings = k.layers.Embedding(n_items + 1, dim, embeddings_initializer=init,
                                                      name="item_embeddings")
            self.user_embeddings = k.layers.Embedding(n_users, dim, embeddings_initializer=init,
                                                      name="user_embeddings") if user_embedding else None
            # The bias starts at log q (centred): training starts from the popularity ranking.
            start = np.append(log_q - log_q.mean(), 0.0).reshape(-1, 1).astype(np.float32)
            self.item_bias = k.layers.Embedding(n_items + 1, 1, name="item_bias",
                                                embeddings_initializer=k.initializers.Constant(start)
                                                ) if item_bias else None
            log_q = np.append(log_q, 0.0).astype(np.float32)
            self.log_q = self.add_weight(shape=log_q.shape, dtype="float32", trainable=False,
                                         initializer=k.initializers.Constant(log_q), name="log_q")
            self.feature_embeddings = self.feature_bias = None
            if features is not None:
                self._add_feature_tower(features, dim, feature_dim, init, item_bias, id_dropout, seed)

        def user_vectors(self, user, history):
            """Mean anime embedding over the history (pads left out) [+ the user's embedding],
            L2-normalised, over the temperature."""
            keep = ops.cast(ops.not_equal(history, self.n_items), "float32")  # [groups, L]
            summed = ops.sum(self.item_embeddings(history) * ops.expand_dims(keep, -1), axis=1)
            out = summed / ops.maximum(ops.sum(keep, axis=1, keepdims=True), 1.0)
            if self.user_embeddings is not None:
                out = out + self.user_embeddings(user)
            return (_l2_normalise(out) if self.normalize else out) / self.temperature

        def item_vectors(self, item, training=False):
            """The anime tower, L2-normalised, and each anime's bias (0 without ``item_bias``).
            With features: the id part (embedding and bias) counts only for anime with train
            positives, and in training is dropped for a random ``id_dropout`` of the anime, so
            that the features alone learn to place an anime (all a new show has)."""
            out = self.item_embeddings(item)
            bias = ops.reshape(self.item_bias(item), (-1,)) if self.item_bias is not None else 0.0
            if self.feature_embeddings is not None:
                out, bias = self._with_features(item, out, bias, training)
            return (_l2_normalise(out) if self.normalize else out), bias

        def call(self, inputs, training=False):
            g = self.group_size
            user, item, history = inputs[:, 0], inputs[:, 1:1 + g], inputs[:, 1 + g:]
            item = ops.reshape(item, (-1,))
            vectors, bias = self.item_vectors(item, training)
            logits = ops.matmul(self.user_vectors(user, history), ops.transpose(vectors))
            correction = bias - self.logq_weight * ops.take(self.log_q, item)
            return logits + ops.expand_dims(correction, 0)

    return TwoTowerNetwork


def _group_softmax_loss(n_items, group_size):
    """The in-batch softmax loss; ``y_true`` is the groups' first columns ``[user, its
    positives]``. Positive j of group r competes with itself and with every anime of the
    batch except the user's positives in the batch (its own group, or another group of the
    same user) and repeats of its own anime (accidental hits). One value per group: the sum
    over its positives / ``group_size`` (a pad adds 0)."""

    ops = keras().ops

    def loss(y_true, logits):
        y_true = ops.cast(y_true, "int32")
        user, items = y_true[:, 0], y_true[:, 1:]  # [P], [P, g]
        flat = ops.reshape(items, (-1,))  # [B]
        own = ops.equal(ops.expand_dims(user, 1), ops.expand_dims(ops.repeat(user, group_size), 0))
        valid_column = ops.expand_dims(ops.not_equal(flat, n_items), 0)
        negative = ops.logical_and(valid_column, ops.logical_not(own))  # [P, B]
        top = ops.stop_gradient(ops.max(ops.where(valid_column, logits, -1e30), axis=1, keepdims=True))
        shifted = logits - top
        negatives = ops.sum(ops.exp(shifted) * ops.cast(negative, logits.dtype), axis=1, keepdims=True)
        groups = ops.shape(items)[0]
        mine = ops.reshape(ops.arange(groups * group_size), (groups, group_size))
        positive = ops.take_along_axis(shifted, mine, axis=1)  # [P, g]
        same = ops.equal(ops.expand_dims(items, 2), ops.reshape(flat, (1, 1, -1)))
        hits = ops.sum(ops.cast(ops.logical_and(same, ops.expand_dims(negative, 1)), logits.dtype), axis=2)
        # `negatives` holds the positive's own anime `hits` times (same user, same anime,
        # same logit); the softmax counts it once.
        denominator = negatives - (hits - 1.0) * ops.exp(positive)
        per_pair = ops.log(ops.maximum(denominator, 1e-30)) - positive
        mask = ops.cast(ops.not_equal(items, n_items), logits.dtype)
        return ops.sum(per_pair * mask, axis=1) / group_size

    return loss


def _architecture():
    """The Keras network class and its loss's factory."""
    return _network_class(), _group_softmax_loss


def _by_user(user: np.ndarray, item: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of (user, item) pairs: ``items[starts[u]:starts[u + 1]]`` are user u's anime."""
    order = np.argsort(user, kind="stable")
    starts = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=starts[1:])
    return starts, item[order].astype(np.int32)


def _shuffle_within_users(starts: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = np.diff(starts)
    return items[np.lexsort((rng.random(len(items)), np.repeat(np.arange(len(n)), n)))]


def make_groups(starts: np.ndarray, items: np.ndarray, n_items: int, group_size: int, history_size: int,
                rng: np.random.Generator) -> np.ndarray:
    """One epoch of training groups, in random order: int32 ``[groups, 1 + group_size + history_size]``.

    Each user's positives are shuffled and cut into groups of ``group_size`` (the last one
    padded with ``n_items``); a group's history is the ``history_size`` positives that follow
    it in the user's shuffled order, wrapping around but never back into the group: a random
    sample of the user's *other* positives (all of them when there are few).
    """
    n = np.diff(starts)
    shuffled = _shuffle_within_users(starts, items, rng)
    per_user = -(-n // group_size)
    group_user = np.repeat(np.arange(len(n)), per_user)
    first = np.repeat(np.cumsum(per_user) - per_user, per_user)
    chunk = (np.arange(len(group_user)) - first) * group_size  # the group's offset in its user's list
    size, begin = n[group_user], starts[group_user]
    out = np.full((len(group_user), 1 + group_size + history_size), n_items, dtype=np.int32)
    out[:, 0] = group_user
    offset = chunk[:, None] + np.arange(group_size)
    inside = offset < size[:, None]
    out[:, 1:1 + group_size] = np.where(inside, shuffled[begin[:, None] + np.minimum(offset, size[:, None] - 1)],
                                        n_items)
    if history_size:
        taken = np.minimum(size - chunk, group_size)
        step = np.arange(history_size)
        where = (chunk[:, None] + taken[:, None] + step) % np.maximum(size[:, None], 1)
        keep = step < (size - taken)[:, None]
        out[:, 1 + group_size:] = np.where(keep, shuffled[begin[:, None] + where], n_items)
    return out[rng.permutation(len(out))]


def ndcg_at(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k (binary relevance, log2 discounts) of score rows; ``relevant`` is a boolean
    ``[rows, n_items]`` matrix with at least one True per row."""
    if not len(scores):
        return 0.0
    n = scores.shape[1]
    top = np.argpartition(scores, n - k, axis=1)[:, n - k:]  # (faster than partitioning -scores at k)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(relevant, top, 1) * discount).sum(1)
    ideal = np.cumsum(discount)[np.minimum(relevant.sum(1), k) - 1]
    return float((dcg / ideal).mean())


class TwoTower(Model):
    """User and anime towers trained with an in-batch, logQ-corrected sampled softmax."""

    name = "two-tower"
    tasks = ("ranking",)
    joint = False
    version = "3"  # 2: anime features (issue 23); 3: a wider catalogue's new anime scored by features
    framework = "keras"
    item_features = True  # takes part in every protocol: features place the anime no train pair has
    heavy = True  # minutes a fit on a 2-core CPU: `run --all` runs it only with --heavy
    #: ``tune``'s space: the sweep's strongest levers (dimensions, history, temperature, rate), and
    #: how often training hides the id part (what cold anime need against what warm ones lose).
    search_space = {"embedding_dim": ("int", 64, 512, "log"), "history_size": ("int", 16, 128, "log"),
                    "temperature": ("float", 0.05, 0.2, "log"), "learning_rate": ("float", 3e-3, 3e-2, "log"),
                    "id_dropout": ("float", 0.0, 0.8)}

    def __init__(self, embedding_dim: int = 256, user_embedding: bool = True, history_size: int = 64,
                 group_size: int = 8, temperature: float = 0.1, logq_weight: float = 1.0, item_bias: bool = True,
                 epochs: int = 12, batch_size: int = 1024, learning_rate: float = 0.01, patience: int = 3,
                 validation_users: int = 2000, normalize: bool = True, id_dropout: float = 0.25,
                 feature_dim: int | None = None) -> None:
        self.normalize = normalize
        self.feature_dim = feature_dim
        self.id_dropout = id_dropout
        self.embedding_dim = embedding_dim
        self.user_embedding = user_embedding
        self.history_size = history_size
        self.group_size = group_size
        self.temperature = temperature
        self.logq_weight = logq_weight
        self.item_bias = item_bias
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_users = validation_users

    @classmethod
    def validate_params(cls, params):
        """Sizes and budgets >= 1 (a history may be 0), temperature and learning rate > 0, logQ >= 0."""
        for key in ("embedding_dim", "group_size", "epochs", "batch_size", "patience"):
            check_param(params, key, at_least=1)
        check_param(params, "feature_dim", at_least=1, none_ok=True)
        check_param(params, "history_size", at_least=0)
        check_param(params, "validation_users", at_least=0)
        for key in ("temperature", "learning_rate"):
            check_param(params, key, above=0)
        check_param(params, "logq_weight", at_least=0)
        check_param(params, "id_dropout", at_least=0, below=1)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        """``features``: the known anime's (``ItemFeatures``, as the framework passes them); without
        them the anime tower is the id embedding alone and unseen anime cannot be placed."""
        self.check_tasks(tasks)
        k = keras()
        seed_everything(seed)
        rng = np.random.default_rng(seed)  # groups, histories, validation sample
        positive = train.label == 1
        user, item = train.user[positive], train.item[positive]
        self.starts_, self.items_ = _by_user(user, item, train.n_users)
        counts = np.bincount(item, minlength=train.n_items).astype(np.float64)
        log_q = np.log(np.maximum(counts, 1.0) / max(len(item), 1))
        self.fit_matrix_ = features.matrix if features is not None else None
        rows = feature_rows(features.matrix, train.n_items, counts > 0) if features is not None else None
        Network, make_loss = _architecture()
        net = Network(train.n_users, train.n_items, self.embedding_dim, self.group_size, log_q, self.temperature,
                      self.logq_weight, self.user_embedding, self.item_bias, self.normalize, features=rows,
                      id_dropout=self.id_dropout, seed=seed, feature_dim=self.feature_dim)
        empty = np.full((1, 1 + self.group_size + self.history_size), train.n_items, dtype=np.int32)
        empty[:, 0] = 0
        net(empty)  # builds the weights, also when there is nothing to train on
        groups_per_batch = max(1, self.batch_size // self.group_size)
        steps = self.epochs * -(-int((-(-np.diff(self.starts_) // self.group_size)).sum()) // groups_per_batch)
        rate = k.optimizers.schedules.CosineDecay(self.learning_rate, decay_steps=max(steps, 1))
        net.compile(optimizer=LazyAdam(learning_rate=rate), loss=make_loss(train.n_items, self.group_size),
                    jit_compile=k.backend.backend() == "jax", steps_per_execution=STEPS_PER_EXECUTION)
        self.history_: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_ndcg10": []}
        self.epochs_ = self.best_epoch_ = 0
        started = time.perf_counter()
        if len(item):
            self._train(net, train, valid, groups_per_batch, rng, started)
        self._export(net)
        self.network_ = net
        self.fit_seconds_ = time.perf_counter() - started
        self.seed_ = seed
        return self

    def _train(self, net, train, valid, groups_per_batch, rng, started):
        """Epochs of fresh groups; early stopping on validation NDCG@10 (on the training loss
        without validation positives), the best epoch's weights restored."""
        g, n_items = self.group_size, train.n_items
        check = val_x = None
        if valid is not None and (valid.label == 1).any():
            vpos = valid.subset(valid.label == 1)
            check = self._validation_ndcg(net, train, valid, vpos, rng)
            val_x = self._validation_groups(vpos, n_items, rng)
        best, best_weights, waited = -np.inf, None, 0
        for epoch in range(self.epochs):
            x = make_groups(self.starts_, self.items_, n_items, g, self.history_size, rng)
            loss = float(net.fit(x, x[:, :1 + g], batch_size=groups_per_batch, epochs=1, shuffle=False,
                                 verbose=0).history["loss"][-1])
            val_loss = val_ndcg = None
            if check is not None:
                val_loss = float(net.evaluate(val_x, val_x[:, :1 + g], batch_size=groups_per_batch, verbose=0))
                val_ndcg = check()
            for key, value in (("loss", loss), ("val_loss", val_loss), ("val_ndcg10", val_ndcg)):
                self.history_[key].append(value)
            self.epochs_ = epoch + 1
            self.report_progress(epoch=epoch + 1, loss=loss, val_loss=val_loss, val_ndcg10=val_ndcg,
                                 seconds=round(time.perf_counter() - started, 3))
            current = val_ndcg if check is not None else -loss
            if current > best:
                best, best_weights, waited, self.best_epoch_ = current, net.get_weights(), 0, epoch + 1
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_weights is not None:
            net.set_weights(best_weights)

    def _validation_groups(self, vpos, n_items, rng):
        """Groups of validation positives; the history: up to ``history_size`` of the user's
        train positives, a random sample."""
        vstarts, vitems = _by_user(vpos.user, vpos.item, vpos.n_users)
        x = make_groups(vstarts, vitems, n_items, self.group_size, 0, rng)
        h, n = self.history_size, np.diff(self.starts_)
        shuffled = _shuffle_within_users(self.starts_, self.items_, rng)
        users = x[:, 0]
        where = np.minimum(self.starts_[users][:, None] + np.arange(h), max(len(shuffled) - 1, 0))
        history = np.where(np.arange(h) < n[users][:, None], shuffled[where] if len(shuffled) else n_items, n_items)
        return np.concatenate([x, history.astype(np.int32)], axis=1)

    def _validation_ndcg(self, net, train, valid, vpos, rng):
        """A function of no arguments: NDCG@10 of the network's current towers for a seeded
        sample of up to ``validation_users`` validation users: full ranking, the anime of their
        train pairs excluded, or, where the validation anime have no train pairs (a cold-start
        protocol), ranking over the validation anime, as the protocol ranks them."""
        users = np.unique(vpos.user)
        if self.validation_users and len(users) > self.validation_users:
            users = np.sort(rng.choice(users, size=self.validation_users, replace=False))
        cold = not np.isin(valid.item, train.item).any()
        candidates = np.unique(valid.item) if cold else np.arange(train.n_items)
        row = np.full(train.n_users, -1, dtype=np.int64)
        row[users] = np.arange(len(users))
        seen = (row[train.user] >= 0) & (not cold)
        seen_rows, seen_items = row[train.user[seen]], train.item[seen]
        relevant = np.zeros((len(users), len(candidates)), dtype=bool)
        inside = row[vpos.user] >= 0
        relevant[row[vpos.user[inside]], np.searchsorted(candidates, vpos.item[inside])] = True
        pool = self._pool_dense(users, train.n_items)

        def check() -> float:
            self._read_tables(net)
            user_vectors, item_vectors = self._towers(users, pool, self.fit_matrix_)
            scores = user_vectors @ item_vectors[candidates].T
            scores[seen_rows, seen_items] = -np.inf
            return ndcg_at(scores, relevant, 10)

        return check

    def _pool_all(self, users: np.ndarray):
        """A function: anime table -> the mean row over each of ``users``' train positives
        (zero for a user without any); one gather and one reduceat."""
        sizes = np.diff(self.starts_)[users]
        has = sizes > 0
        index = np.concatenate([self.items_[self.starts_[u]:self.starts_[u + 1]] for u in users[has]]) \
            if has.any() else np.zeros(0, np.int32)
        firsts = np.concatenate([[0], np.cumsum(sizes[has])[:-1]]).astype(np.int64)

        def pool(table: np.ndarray) -> np.ndarray:
            out = np.zeros((len(users), table.shape[1]), dtype=np.float32)
            if has.any():
                out[has] = np.add.reduceat(table[index], firsts, axis=0) / sizes[has, None]
            return out

        return pool

    def _pool_dense(self, users: np.ndarray, n_items: int):
        """As ``_pool_all``, as one matmul with a dense [users, n_items] matrix of 1 / count: faster
        for the few thousand validation users scored every epoch."""
        weights = np.zeros((len(users), n_items), dtype=np.float32)
        sizes = np.diff(self.starts_)[users]
        rows = np.repeat(np.arange(len(users)), sizes)
        cols = np.concatenate([self.items_[self.starts_[u]:self.starts_[u + 1]] for u in users]) \
            if len(users) else np.zeros(0, np.int32)
        weights[rows, cols] = 1.0 / np.maximum(sizes, 1)[rows]
        return lambda table: weights @ table[:n_items]

    def _read_tables(self, net) -> None:
        """The network's tables as numpy: ``id_table_`` / ``id_bias_`` (zero for an anime without
        train positives when features place it), ``feature_table_`` / ``feature_bias_`` (one row
        per feature column; none without features) and ``user_table_``."""
        d = self.embedding_dim
        with_features = net.feature_embeddings is not None
        table = to_numpy(net.item_embeddings.embeddings)[:-1]
        warm = to_numpy(net.warm)[:-1] if with_features else np.ones(len(table), np.float32)
        bias = to_numpy(net.item_bias.embeddings)[:-1, 0] if net.item_bias is not None \
            else np.zeros(len(table), np.float32)
        self.id_table_ = (table * warm[:, None]).astype(np.float32)
        self.id_bias_ = (bias * warm).astype(np.float32)
        self.feature_table_ = np.zeros((0, d), np.float32)
        if with_features:
            table = to_numpy(net.feature_embeddings.embeddings)[:-1]
            if net.feature_projection is not None:
                table = table @ to_numpy(net.feature_projection.kernel)
            self.feature_table_ = table.astype(np.float32)
        self.feature_bias_ = to_numpy(net.feature_bias.embeddings)[:-1, 0].astype(np.float32) \
            if net.feature_bias is not None else np.zeros(len(self.feature_table_), np.float32)
        self.user_table_ = to_numpy(net.user_embeddings.embeddings).astype(np.float32) \
            if net.user_embeddings is not None else np.zeros((0, d), np.float32)

    def _item_side(self, matrix) -> np.ndarray:
        """Every anime's [n_items, d + 1] scoring vector: its tower (id embedding + its features'
        projection ``matrix @ feature_table_``), normalised, then its bias. ``matrix``: the anime
        features (CSR, a row per anime index from 0; anime past its rows get the id part only),
        or None; rows past the fit's anime (a larger catalogue: season-v1's hard candidates) are
        anime nobody trained on: their features alone."""
        n_fit, width = self.id_table_.shape
        features = matrix is not None and len(self.feature_table_) > 0
        n = max(n_fit, matrix.shape[0]) if features else n_fit
        vectors, bias = np.zeros((n, width), np.float32), np.zeros(n, np.float32)
        vectors[:n_fit], bias[:n_fit] = self.id_table_, self.id_bias_
        if features:
            rows = matrix.shape[0]
            vectors[:rows] += np.asarray(matrix @ self.feature_table_)
            bias[:rows] += np.asarray(matrix @ self.feature_bias_).ravel()
        norm = _normalise if self.normalize else (lambda x: x)
        return np.hstack([norm(vectors), bias[:, None]]).astype(np.float32)

    def _towers(self, users: np.ndarray, pool, matrix) -> tuple[np.ndarray, np.ndarray]:
        """The users' vectors [len(users), d + 1] (normalised, over the temperature, then a 1) and
        every anime's (:meth:`_item_side`): score is their dot product. A user's history is all
        of their train positives, their id embeddings averaged by ``pool``."""
        out = pool(self.id_table_)
        if len(self.user_table_):
            out = out + self.user_table_[users]
        norm = _normalise if self.normalize else (lambda x: x)
        user_vectors = np.hstack([norm(out) / self.temperature, np.ones((len(users), 1), np.float32)])
        return user_vectors.astype(np.float32), self._item_side(matrix)

    def _export(self, net):
        users = np.arange(len(self.starts_) - 1)
        self._read_tables(net)
        self.user_vectors_, self.item_vectors_ = self._towers(users, self._pool_all(users), self.fit_matrix_)
        self.item_table_ = self.id_table_  # the history encoder's (fold_in)

    def set_item_features(self, features) -> None:
        """Every anime's vector from its features (test anime included: they arrive only now)."""
        super().set_item_features(features)
        if len(self.feature_table_):
            self.item_vectors_ = self._item_side(features.matrix)

    def score(self, user) -> np.ndarray:
        """``[len(user), n_items]`` float32 scores, higher = recommend first. ``user``: indices of
        training users, or :class:`FoldedUsers` from :meth:`fold_in`."""
        rows = user.rows if isinstance(user, FoldedUsers) else self.user_vectors_[np.asarray(user, dtype=np.int64)]
        return rows @ self.item_vectors_.T

    def fold_in(self, history: History) -> FoldedUsers:
        """The user tower on the user's liked anime: their mean anime embedding, plus the mean of the
        training users' own embeddings (a new user has none; the mean is the best constant guess),
        normalised and over the temperature as in training."""
        liked = np.unique(np.asarray(history.item[history.label == 1], dtype=np.int64))
        out = self.item_table_[liked].mean(axis=0, keepdims=True) if len(liked) else \
            np.zeros((1, self.item_table_.shape[1]), np.float32)
        if len(self.user_table_):
            out = out + self.user_table_.mean(axis=0, keepdims=True)
        out = _normalise(out) if self.normalize else out
        return FoldedUsers(np.hstack([out / self.temperature, np.ones((1, 1), np.float32)]).astype(np.float32))

    def save(self, folder) -> None:
        """numpy arrays only (``params.json``, ``arrays/*.npy``): scoring and fold-in need no Keras,
        so neither does loading; the trained network itself is not kept."""
        save_arrays(folder, self.get_params(), user_vectors=self.user_vectors_, item_vectors=self.item_vectors_,
                    item_table=self.item_table_, user_table=self.user_table_, item_bias=self.id_bias_,
                    feature_table=self.feature_table_, feature_bias=self.feature_bias_)

    @classmethod
    def load(cls, folder) -> "TwoTower":
        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.user_vectors_, model.item_vectors_ = z["user_vectors"], z["item_vectors"]
        model.item_table_, model.user_table_ = z["item_table"], z["user_table"]
        # set_item_features needs them (a version-1 save has none: id embeddings only)
        model.id_table_ = model.item_table_
        model.id_bias_ = z.get("item_bias", np.zeros(len(model.item_table_), np.float32))
        model.feature_table_ = z.get("feature_table", np.zeros((0, model.item_table_.shape[1]), np.float32))
        model.feature_bias_ = z.get("feature_bias", np.zeros(0, np.float32))
        return model


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).sum(axis=1, keepdims=True) + NORM_EPSILON)


@hookimpl
def register_models(register):
    register(TwoTower)
