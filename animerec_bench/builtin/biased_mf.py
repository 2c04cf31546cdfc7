"""``mf-biased``: textbook biased matrix factorisation, next to the study's three Keras models.

``mean + b_u + b_i + <p_u, q_i>`` with L2, trained by row-wise Adagrad SGD
(``row_adagrad``: each step reads and writes only the rows of its batch), early stopping on
the validation MSE with the best tables restored. Runs on Keras' TensorFlow or JAX backend.
"""

from __future__ import annotations

import time

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin import row_adagrad
from animerec_bench.builtin.baselines import Bias
from animerec_bench.builtin.keras_backend import backend_name
from animerec_bench.builtin.keras_models import predict_chunks
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

#: Rating predicted when there is nothing to learn from.
EMPTY_MEAN = 5.5


class BiasedMatrixFactorization(Model):
    """Textbook biased MF: mean + user bias + item bias + <p_u, q_i>, L2, no dropout.

    Defaults from a search on the validation split of mal2016-5k / v1 / seed 0 (64 factors,
    batch 4096, bias learning rate 0.05, accumulators starting at 0.1), best validation RMSE
    and the epoch it came at:

    - learning rate 0.03, reg 0.05 / 0.07 / 0.1: 1.1390 (21) / 1.1381 (33) / 1.1437 (29+)
    - learning rate 0.04, reg 0.07: 1.1401 (20); batch 8192: 1.1402 (20)
    - learning rate 0.05, reg 0.05 / 0.07: 1.1427 (9) / 1.1422 (13); batch 16384: 1.1422 (11)
    - accumulators starting at 0.01: 1.1519 (lr 0.05), 1.1445 (lr 0.03)

    Chosen: learning rate 0.04, reg 0.07: within 0.002 of the best at 60% of its epochs (1.1394
    with the float32 random start that came after the search). Version 1 (LazyAdam through
    ``keras.Model.fit``) reached 1.1442, at ~1M examples/s at real scale against ~4.7M now.

    Version 3 starts the biases from two sweeps of the ``bias`` baseline's closed form (~0.02 s)
    and the accumulators at 0.03 (was 0.1), so the first epochs move further: validation MSE after
    epochs 1 / 2 went from 1.567 / 1.442 to 1.427 / 1.380 (Cornac MF's best is 1.378), and the
    fit stops after 13 epochs instead of 24 at the same best (1.2983 against 1.2982).
    """

    name = "mf-biased"
    tasks = ("rating",)
    joint = False
    version = "3"
    framework = "keras"
    #: ``tune``: rates, regularisation, size and batch; ``epochs`` and ``patience`` stay the fixed budget.
    search_space = {"factors": ("int", 16, 256, "log"), "reg_factors": ("float", 0.005, 0.5, "log"),
                    "reg_biases": ("float", 1e-4, 0.1, "log"), "learning_rate": ("float", 0.005, 0.2, "log"),
                    "bias_learning_rate": ("float", 0.005, 0.2, "log"),
                    "batch_size": ("categorical", [1024, 2048, 4096, 8192, 16384])}

    def __init__(self, factors: int = 64, reg_factors: float = 0.07, reg_biases: float = 0.005,
                 init_std: float = 0.01, epochs: int = 40, batch_size: int = 4096,
                 learning_rate: float = 0.04, bias_learning_rate: float = 0.05,
                 initial_accumulator: float = 0.03, patience: int = 3,
                 steps_per_epoch: int | None = None, bias_start_sweeps: int = 2) -> None:
        self.factors = factors
        self.reg_factors = reg_factors
        self.reg_biases = reg_biases
        self.init_std = init_std
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.bias_learning_rate = bias_learning_rate
        self.initial_accumulator = initial_accumulator
        self.patience = patience
        self.steps_per_epoch = steps_per_epoch
        self.bias_start_sweeps = bias_start_sweeps

    @classmethod
    def validate_params(cls, params):
        """Sizes and budgets >= 1, learning rates and Adagrad's starting accumulator > 0,
        regularisation and the random start's spread >= 0."""
        for key in ("factors", "epochs", "batch_size"):
            check_param(params, key, at_least=1)
        check_param(params, "steps_per_epoch", at_least=1, none_ok=True)
        for key in ("learning_rate", "initial_accumulator"):
            check_param(params, key, above=0)
        for key in ("bias_learning_rate", "reg_factors", "reg_biases", "init_std", "patience", "bias_start_sweeps"):
            check_param(params, key, at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        self.check_tasks(tasks)
        rng = np.random.default_rng(seed)  # all of the fit's randomness: tables and batch order
        rated, y = train.for_task("rating")
        by_user = np.argsort(rated.user, kind="stable")  # batch_order's sorted batches: user order
        user, item, y = rated.user[by_user], rated.item[by_user], y[by_user]
        self.mean_ = float(y.mean()) if len(y) else EMPTY_MEAN
        users = row_adagrad.init_table(train.n_users, self.factors, self.init_std, self.initial_accumulator, rng)
        items = row_adagrad.init_table(train.n_items, self.factors, self.init_std, self.initial_accumulator, rng)
        self.history_: dict[str, list[float]] = {"loss": [], "train_seconds": []}
        self.epochs_ = 0
        if len(y):
            backend_name()  # imports Keras (seconds) before the training clock starts, as a job does
            started = time.perf_counter()
            self._start_biases(train, users, items)
            self._train(users, items, user, item, y, valid, rng, started)
        else:
            self._fold(users, items)
        self.setup_ = {"optimizer": "row_adagrad", "batch_size": self.batch_size,
                       "learning_rate": self.learning_rate, "steps_per_epoch": self.steps_per_epoch,
                       "monitor": "val_loss" if "val_loss" in self.history_ else "loss",
                       "patience": self.patience, "restore_best_weights": True,
                       "backend": backend_name(), "examples": int(len(y))}
        return self

    def _start_biases(self, train: Interactions, users: np.ndarray, items: np.ndarray) -> None:
        """Biases from ``bias_start_sweeps`` sweeps of the ``bias`` baseline (0: from zero)."""
        if self.bias_start_sweeps:
            start = Bias(sweeps=self.bias_start_sweeps).fit(train, None)
            users[:, self.factors] = start.user_bias_
            items[:, self.factors] = start.item_bias_

    def _train(self, users, items, user, item, y, valid, rng, started: float):
        """Epochs until validation MSE stops improving. ``started``: when the fit began; the
        training clock (``history_["train_seconds"]``) counts from there, less validation."""
        rule = row_adagrad.StepRule(factors=self.factors, mean=self.mean_, learning_rate=self.learning_rate,
                                    bias_learning_rate=self.bias_learning_rate, reg_factors=self.reg_factors,
                                    reg_biases=self.reg_biases, batch_size=self.batch_size)
        trainer = row_adagrad.trainer(users, items, user, item, y, rule)
        vy = np.empty(0)
        if valid is not None:
            vrated, vy = valid.for_task("rating")
        if len(vy):  # as the trainer takes them, once rather than every epoch
            vpairs = trainer.pairs(vrated.user, vrated.item, vy)
            self.history_["val_loss"] = []
        n = len(y)
        training = time.perf_counter() - started  # the bias start and the trainer's set-up
        best_loss, waited = float("inf"), 0
        per_epoch = n if self.steps_per_epoch is None else self.steps_per_epoch * self.batch_size
        # Each epoch's order is drawn here, on the clock (~0.1 s per 2.4M examples). Drawn in a
        # thread during the previous epoch instead, it took a core from XLA's loop and made
        # epochs take 1.2 s instead of 0.6 about half the time (real scale, 2 cores).
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            order = row_adagrad.batch_order(n, self.batch_size, rng, self.steps_per_epoch)
            loss = trainer.epoch(order) / per_epoch
            training += time.perf_counter() - t0
            self.history_["loss"].append(loss)
            self.history_["train_seconds"].append(training)
            val_loss = None
            if len(vy):
                val_loss = trainer.squared_error(vpairs) / len(vy)
                self.history_["val_loss"].append(val_loss)
            self.epochs_ = epoch + 1
            self.report_progress(epoch=epoch + 1, loss=loss, val_loss=val_loss,
                                 seconds=round(time.perf_counter() - started, 3))
            watched = loss if val_loss is None else val_loss
            if watched < best_loss:
                best_loss, waited = watched, 0
                trainer.keep()
            else:
                waited += 1
                if waited >= self.patience:
                    break
        self._fold(*trainer.tables(kept=True))
        self.fit_seconds_ = time.perf_counter() - started

    def _fold(self, users: np.ndarray, items: np.ndarray) -> None:
        """Predict's tables: ``[p_u | b_u] . [q_i | 1] + b_i + mean`` is one gather and dot per side."""
        k = self.factors
        self.user_ = np.ascontiguousarray(users[:, :k + 1])
        self.item_ = np.concatenate([items[:, :k], np.ones((len(items), 1), np.float32)], axis=1)
        self.item_bias_ = np.ascontiguousarray(items[:, k])

    def predict(self, user, item):
        out = np.empty(len(user), dtype=np.float32)
        for where, u, i in predict_chunks(user, item):
            out[where] = np.einsum("ij,ij->i", self.user_[u], self.item_[i]) + self.item_bias_[i] + self.mean_
        return {"rating": out}

    def score(self, user) -> np.ndarray:
        """The predicted rating of each user for every anime, float32 ``[len(user), n_items]``:
        ``mean + b_u + b_i + <p_u, q_i>`` as one matmul of the folded tables (ranking's fast path).
        ``user``: indices of training users, or :class:`FoldedUsers` from :meth:`fold_in`."""
        rows = user.rows if isinstance(user, FoldedUsers) else self.user_[np.asarray(user, dtype=np.int64)]
        out = rows @ self.item_.T
        out += self.item_bias_
        out += np.float32(self.mean_)
        return out


    def fold_in(self, history: History) -> FoldedUsers:
        """``[p_u | b_u]`` of a new user from their rated anime, the item tables fixed: one ridge
        solve (as implicit's ``recalculate_user``). Training's L2 is per example, so a user with
        n ratings is penalised ``n * reg``; the solve uses the same, which makes its answer the
        stationary point training converges to for that user."""
        rated = history.rating > 0
        item = np.asarray(history.item[rated], dtype=np.int64)
        n = len(item)
        k = self.factors
        if n == 0:
            return FoldedUsers(np.zeros((1, k + 1), dtype=np.float32))
        design = self.item_[item].astype(np.float64)  # [q_i | 1]: the last column multiplies b_u
        target = history.rating[rated].astype(np.float64) - self.mean_ - self.item_bias_[item]
        penalty = np.full(k + 1, n * self.reg_factors, dtype=np.float64)
        penalty[k] = n * self.reg_biases
        gram = design.T @ design + np.diag(penalty + 1e-9)
        row = np.linalg.solve(gram, design.T @ target)
        return FoldedUsers(row.astype(np.float32)[None, :])

    def save(self, folder) -> None:
        """``params.json`` and ``weights.npz`` (numpy tables: loading needs no Keras)."""
        save_arrays(folder, self.get_params(), mean=np.float64(self.mean_), user=self.user_, item=self.item_,
                    item_bias=self.item_bias_)

    @classmethod
    def load(cls, folder) -> "BiasedMatrixFactorization":
        params, z = load_arrays(folder)
        model = from_saved_params(cls, params)
        model.mean_ = float(z["mean"])
        model.user_, model.item_, model.item_bias_ = z["user"], z["item"], z["item_bias"]
        return model


@hookimpl
def register_models(register):
    register(BiasedMatrixFactorization)
