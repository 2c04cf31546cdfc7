"""``multvae``: MultVAE (Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018), the ranking task, in Keras.

A user's input is their binary row of train positives (anime with a train positive only, as EASE),
L2-normalised, with input dropout. The encoder maps it through a tanh layer to a Gaussian latent
(mean and log-variance); the decoder maps a sample of it through a tanh layer to one logit per
anime. The loss, per user: the multinomial log-likelihood of the row under the softmax of the
logits (``-Σ_j x_j · log_softmax(logits)_j``) plus β times the KL divergence of the latent from
N(0, I), β annealed linearly from 0 to its cap. Scores: the decoder on the latent's mean.

Two choices for speed, neither changes the model. The input dropout is drawn in numpy on the
sparse rows (only the user's positives can be dropped), once an epoch, and on TensorFlow the batch
goes in as a sparse matrix, so the first layer costs ``nnz · hidden``, not ``users · anime ·
hidden`` (dense on JAX: see ``_train``); and after each epoch the weights are read out as numpy
arrays, so validation, ``score``, ``fold_in`` and a saved model need no Keras. Written with ``keras`` and ``keras.ops`` only (TensorFlow, JAX);
Keras is imported inside ``fit``.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.ease import blas_limited
from animerec_bench.builtin.keras_backend import keras, seed_everything, to_numpy
from animerec_bench.builtin.positives import positives
from animerec_bench.builtin.validated_epochs import run_validated_epochs, validation_ranking
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

if TYPE_CHECKING:
    import scipy.sparse

#: The exported weights, in the order the forward pass reads them (kernel, bias per layer).
LAYERS = ("encoder", "mean", "decoder", "logits")


@functools.cache
def _network_class():
    """The Keras network and its loss, defined on first use (Keras is imported only to train)."""
    k = keras()
    ops = k.ops

    class MultVAENetwork(k.Model):
        """Input: a batch of (dropped-out, normalised) rows ``[users, anime]``; output: the logits.
        In training it adds ``β · KL`` as a layer loss, β = cap · min(1, step / anneal_steps)."""

        def __init__(self, n_items, hidden, latent, beta, anneal_steps, seed, **kw):
            super().__init__(**kw)
            self.beta = float(beta)
            self.anneal_steps = float(max(anneal_steps, 1))
            self.encoder = k.layers.Dense(hidden, activation="tanh", name="encoder")
            self.mean = k.layers.Dense(latent, name="mean")
            self.log_variance = k.layers.Dense(latent, name="log_variance")
            self.decoder = k.layers.Dense(hidden, activation="tanh", name="decoder")
            self.logits = k.layers.Dense(n_items, name="logits")
            self.noise = k.random.SeedGenerator(int(seed))
            self.step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="step")
            self.sizes = (int(hidden), int(latent))

        def build(self, input_shape):
            hidden, latent = self.sizes
            self.encoder.build(input_shape)
            for layer, width in ((self.mean, hidden), (self.log_variance, hidden), (self.decoder, latent),
                                 (self.logits, hidden)):
                layer.build((None, width))

        def call(self, x, training=False):
            h = self.encoder(x)
            mean = self.mean(h)
            if not training:
                return self.logits(self.decoder(mean))
            log_variance = self.log_variance(h)
            z = mean + ops.exp(0.5 * log_variance) * k.random.normal(ops.shape(mean), seed=self.noise)
            kl = 0.5 * ops.sum(ops.exp(log_variance) + ops.square(mean) - 1.0 - log_variance, axis=1)
            beta = self.beta * ops.minimum(1.0, self.step / self.anneal_steps)
            self.step.assign_add(1.0)
            self.add_loss(beta * ops.mean(kl))
            return self.logits(self.decoder(z))

    def multinomial_nll(y_true, logits):
        return -ops.sum(ops.log_softmax(logits, axis=-1) * y_true, axis=-1)

    return MultVAENetwork, multinomial_nll


def _l2_rows(x: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    """``x`` with each row scaled to unit length (an empty row stays empty), float32."""
    import scipy.sparse

    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel())
    return (scipy.sparse.diags(1.0 / np.maximum(norm, 1e-12)) @ x).tocsr().astype(np.float32)


def forward(rows: scipy.sparse.csr_matrix, weights: dict[str, np.ndarray]) -> np.ndarray:
    """The decoder's logits ``[rows, active anime]`` on the latent mean of normalised ``rows``
    (numpy: the scoring path, and validation during fit)."""
    h = np.tanh(rows @ weights["encoder_kernel"] + weights["encoder_bias"])
    mean = h @ weights["mean_kernel"] + weights["mean_bias"]
    h = np.tanh(mean @ weights["decoder_kernel"] + weights["decoder_bias"])
    return (h @ weights["logits_kernel"] + weights["logits_bias"]).astype(np.float32, copy=False)


class MultVAE(Model):
    """MultVAE (Liang et al. 2018): a variational autoencoder of users' liked anime, multinomial
    likelihood, trained in Keras.

    The paper's architecture and training: ``[anime → hidden → latent]`` tanh encoder, Gaussian
    latent, ``[latent → hidden → anime]`` decoder; input dropout ``dropout``; KL weight annealed
    linearly to ``beta`` over the first ``anneal_epochs`` epochs; Adam at ``learning_rate``,
    ``batch_size`` users a step. At most ``epochs`` epochs, stopping after ``patience`` epochs
    without a better validation NDCG@10 (``RankingData.validation``: the ranking ``tune`` uses);
    the best epoch's weights kept, every epoch's loss and NDCG in ``history_``.

    Defaults: the paper's sizes (600, 200), dropout 0.5 and β cap 0.2, but batches of 128 at rate
    3e-3 instead of 500 at 1e-3: on 4k users that is 8 steps an epoch, too few to learn in tens of
    epochs. mal2016-5k / v1 / seed 0, validation NDCG@10 (``tune``'s ranking; EASE 0.3033), best
    epoch of those run in brackets (a prototype of this network, under load): batch 500, rate 1e-3:
    0.111 after 5 epochs (stopped); 128, 1e-3: 0.2058 (34 of 36); 128, 3e-3: 0.2112 (24 of 25); the
    same with dropout 0.2: 0.2042 (11 of 12); batch 64: 0.2043 (12 of 13); with sizes 300, 64: 0.2015
    (14 of 15). These defaults, ``run -m multvae``: validation 0.2130 at epoch 21 of 26, test 0.2356
    (EASE 0.3629). The model is rank-limited by its 200-dimensional latent, as two-tower, and 4k
    users are few for its 8M weights: it stays well below EASE here.
    """

    name = "multvae"
    tasks = ("ranking",)
    joint = False
    version = "1"
    baseline = False
    framework = "keras"
    heavy = True  # minutes a fit on a 2-core CPU: `run --all` runs it only with --heavy
    peer = "Liang et al. 2018 MultVAE, Keras"
    description = "MultVAE: a variational autoencoder of a user's liked anime, multinomial likelihood (Keras)."
    search_space = {"dropout": ("float", 0.2, 0.8), "beta": ("float", 0.05, 1.0, "log"),
                    "latent": ("int", 64, 400, "log"), "hidden": ("int", 200, 1200, "log"),
                    "learning_rate": ("float", 3e-4, 1e-2, "log")}

    def __init__(self, hidden: int = 600, latent: int = 200, dropout: float = 0.5, beta: float = 0.2,
                 anneal_epochs: int = 5, epochs: int = 30, batch_size: int = 128, learning_rate: float = 3e-3,
                 patience: int = 5) -> None:
        self.hidden = hidden
        self.latent = latent
        self.dropout = dropout
        self.beta = beta
        self.anneal_epochs = anneal_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience

    @classmethod
    def validate_params(cls, params):
        """Sizes, epochs, batch size and patience >= 1; 0 <= dropout < 1; β >= 0; anneal epochs
        >= 0 (0: β at its cap from the first step); learning rate > 0."""
        for key in ("hidden", "latent", "epochs", "batch_size", "patience"):
            check_param(params, key, at_least=1)
        check_param(params, "dropout", at_least=0, below=1)
        check_param(params, "beta", at_least=0)
        check_param(params, "anneal_epochs", at_least=0)
        check_param(params, "learning_rate", above=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0):
        self.check_tasks(tasks)
        k = keras()  # (its import is not counted in fit_seconds_, as for dlae and two-tower)
        started = time.perf_counter()
        seed_everything(seed)
        x = positives(train)
        self.n_items_ = train.n_items
        self.active_ = np.flatnonzero(np.bincount(x.indices, minlength=train.n_items) > 0).astype(np.int64)
        self.x_ = x[:, self.active_].tocsr()
        n, m = self.x_.shape
        steps_per_epoch = -(-n // self.batch_size)
        Network, loss = _network_class()
        net = Network(m, int(self.hidden), int(self.latent), self.beta,
                      self.anneal_epochs * steps_per_epoch, seed)
        net.build((None, m))
        net.compile(optimizer=k.optimizers.Adam(learning_rate=self.learning_rate), loss=loss,
                    jit_compile=k.backend.backend() == "jax")
        self.history_: dict[str, list] = {"loss": [], "val_ndcg@10": []}
        self.epochs_ = self.best_epoch_ = 0
        self.weights_ = self._export(net)
        if n and m:
            with blas_limited():
                self._train(net, train, valid, np.random.default_rng(seed), started)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _train(self, net, train, valid, rng, started) -> None:
        """Epochs over the users in a seeded random order, a fresh input dropout each; the best
        validation epoch's weights kept (without validation: the last epoch's)."""
        normalised = _l2_rows(self.x_)
        # Sparse batches on TensorFlow only. On JAX a sparse batch's count of stored entries is part of
        # its shape, so each batch compiles anew: 6 epochs of test_multvae's taste groups took 42.9 CPU s
        # with sparse batches against 3.8 s with dense ones (same validation NDCG).
        sparse_batches = keras().backend.backend() == "tensorflow"
        target = self.x_.toarray()

        def run_epoch(epoch: int) -> float:
            order = rng.permutation(len(target))
            inputs = self._dropped(normalised[order], rng)
            if not sparse_batches:
                inputs = inputs.toarray()
            loss = float(net.fit(inputs, target[order], batch_size=self.batch_size, epochs=1, shuffle=False,
                                 verbose=0).history["loss"][-1])
            self.weights_ = self._export(net)
            return loss

        run_validated_epochs(self, run_epoch, validation_ranking(train, valid), started)

    def _dropped(self, rows: scipy.sparse.csr_matrix, rng: np.random.Generator) -> scipy.sparse.csr_matrix:
        """``rows`` with each stored entry dropped with probability ``dropout`` and the rest scaled
        by ``1 / (1 - dropout)`` (inverted dropout, as the paper's code, after normalising)."""
        p = float(self.dropout)
        out = rows.copy()
        if p > 0:
            keep = rng.random(out.nnz) >= p
            out.data = np.where(keep, out.data / np.float32(1.0 - p), np.float32(0.0)).astype(np.float32)
            out.eliminate_zeros()
        return out

    @staticmethod
    def _export(net) -> dict[str, np.ndarray]:
        """The weights the scores need (the log-variance layer is for training only), as numpy."""
        return {f"{layer}_{part}": to_numpy(getattr(getattr(net, layer), part)).astype(np.float32)
                for layer in LAYERS for part in ("kernel", "bias")}

    def score(self, user) -> np.ndarray:
        """The decoder's logits on the latent mean of the user's normalised row: float32
        ``[len(user), n_items]``, higher = better. Anime without a train positive are not in the
        model: they score below every other anime of the row. ``user``: indices of training
        users, or :class:`FoldedUsers` from :meth:`fold_in`."""
        rows = user.rows if isinstance(user, FoldedUsers) else self.x_[np.asarray(user, dtype=np.int64)]
        logits = forward(_l2_rows(rows), self.weights_)
        floor = (logits.min(axis=1, keepdims=True) if logits.shape[1] else np.zeros((len(logits), 1))) - 1.0
        out = np.repeat(floor.astype(np.float32), self.n_items_, axis=1)
        out[:, self.active_] = logits
        return out

    def fold_in(self, history: History) -> FoldedUsers:
        """The user's row of liked anime (label 1) over the model's anime: the encoder reads it as
        it reads a training user's, so folding in a training user gives their fitted scores."""
        import scipy.sparse

        position = np.full(self.n_items_, -1, dtype=np.int64)
        position[self.active_] = np.arange(len(self.active_))
        liked = position[np.asarray(history.item[history.label == 1], dtype=np.int64)]
        liked = np.unique(liked[liked >= 0])
        row = scipy.sparse.csr_matrix((np.ones(len(liked), np.float32), (np.zeros(len(liked), np.int64), liked)),
                                      shape=(1, len(self.active_)))
        return FoldedUsers(row)

    def save(self, folder) -> None:
        """numpy arrays only: the scoring weights, the anime in the model and the training users'
        rows (CSR), so a loaded model scores training users too and needs no Keras."""
        save_arrays(folder, self.get_params(), n_items=np.int64(self.n_items_), active=self.active_,
                    x_data=self.x_.data, x_indices=self.x_.indices, x_indptr=self.x_.indptr,
                    x_shape=np.asarray(self.x_.shape, dtype=np.int64), **self.weights_)

    @classmethod
    def load(cls, folder) -> "MultVAE":
        import scipy.sparse

        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.n_items_, model.active_ = int(z["n_items"]), z["active"]
        model.x_ = scipy.sparse.csr_matrix((z["x_data"], z["x_indices"], z["x_indptr"]),
                                           shape=tuple(int(n) for n in z["x_shape"]))
        model.weights_ = {f"{layer}_{part}": z[f"{layer}_{part}"] for layer in LAYERS for part in ("kernel", "bias")}
        return model


@hookimpl
def register_models(register):
    register(MultVAE)
