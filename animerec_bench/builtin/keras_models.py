"""The study's three Keras models: ``mf``, ``nn``, ``hybrid`` (``mf-biased`` is in ``biased_mf``).

Written with ``keras`` and ``keras.ops`` only, so they run on the TensorFlow, JAX and PyTorch
backends. Keras is imported inside ``fit``/``predict`` (through ``keras_backend``), never at
module import: ``animerec-bench --help`` and ``list`` must not pay for TensorFlow.

Two training setups share one architecture each:

- default: large batches with a tuned Adam learning rate (LazyAdam on the embedding tables),
  early stopping on *validation* loss with the best weights restored, a declared epoch budget;
  on TensorFlow each epoch runs as one XLA program (``_CompiledEpochs``, issue #26: mf 4.5x,
  nn 2x, hybrid 1.4x ``keras.Model.fit``'s examples/s on mal2016-5k), else through
  ``keras.Model.fit``;
- ``seed_compat=True``: the study's setup (eager, batch 64, Adam defaults, "epochs" of 1,000
  steps, early stopping on *training* loss with patience 3, class weights {0: 2.5, 1: 1} for
  interactions, global bias starting at 0), so anyone can see what the setup costs.
  ``epochs`` stays the caller's budget (the study allowed 100).

Predictions are computed in numpy from the trained weights (the same arithmetic as the
model's ``call`` at inference, checked by the tests): no per-call graph overhead, and the
user and item halves of each model are folded once after fit.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from animerec_bench import hookimpl
from animerec_bench import tasks as tasks_mod
from animerec_bench.builtin import keras_backend as kb
from animerec_bench.builtin.keras_backend import gather_rows, keras, seed_everything, to_numpy
from animerec_bench.model import Interactions, Model, check_param

#: Rows per numpy chunk in predict: small enough that the gathered rows stay in cache
#: (measured for mf, 2 cores: 1M-row chunks 3M predictions/s, 16k-row chunks 20M/s).
PREDICT_CHUNK = 1 << 14
#: The study's setup (SEED.md), used when ``seed_compat=True``.
STUDY_SETUP = {"batch_size": 64, "learning_rate": 0.001, "run_eagerly": True, "jit_compile": False,
               "steps_per_epoch": 1000, "monitor": "loss", "patience": 3, "restore_best_weights": False,
               "validation_steps": 10, "class_weight": {0: 2.5, 1: 1.0}, "optimizer": "adam",
               "steps_per_execution": 1}
#: Default setup: steps run per call into the compiled graph (fewer Python round trips).
STEPS_PER_EXECUTION = 16


@functools.cache
def _architectures():
    """The Keras classes, defined on first use so that Keras is imported only when training."""
    return {"MatrixFactorization": _matrix_factorization(), "NeuralNetwork": _neural_network()}


#: Set while the compiled epoch is traced: ``{"key": (seed, step), "calls": n}``; the networks'
#: dropout then draws its mask from :func:`keep_mask` under that key.
_DROPOUT_KEY: dict[str, Any] = {"key": None, "calls": 0}
#: The most bits an element's keep draw may take from a shared 32-bit hash (:func:`keep_mask`).
MASK_BITS = 8


def keep_mask(shape, key, rate: float):
    """Dropout's keep mask of ``shape`` (static) for the int32 ``key`` vector: each element True
    with probability ``1 - rate``, from a counter hash (``keras_backend``'s ``lowbias32``).

    A rate that is a multiple of 1 / 2^b for some b <= ``MASK_BITS`` (the study's 0.5: b = 1)
    takes b bits an element, 32 / b elements a hash, and keeps an element when its b bits, read
    as an integer, are >= rate * 2^b: exactly 1 - rate. Any other rate compares
    ``keras_backend.hashed_uniform`` (one hash an element, 24 bits) with ``rate``. One hash per
    32 elements made ``mf``'s compiled epoch 1.36x faster than one per element (dropout on both
    of its 8,192 x 64 lookups was ~30% of a step; issue #26)."""
    import tensorflow as tf

    bits = next((b for b in range(1, MASK_BITS + 1) if (rate * (1 << b)).is_integer()), None)
    if bits is None:
        return kb.hashed_uniform(shape, key) >= rate
    size = int(np.prod([int(d) for d in shape]))
    per_hash = 32 // bits
    words = _hashed_words(-(-size // per_hash), key)
    shifts = tf.constant(np.arange(per_hash, dtype=np.uint32) * bits)
    draws = tf.bitwise.bitwise_and(tf.bitwise.right_shift(words[:, None], shifts[None, :]),
                                   tf.constant((1 << bits) - 1, tf.uint32))
    keep = draws >= tf.constant(int(rate * (1 << bits)), tf.uint32)
    return tf.reshape(tf.reshape(keep, [-1])[:size], [int(d) for d in shape])


def _hashed_words(n: int, key):
    """``n`` hashed uint32 words for ``key``: ``mix(position + mix(key))``, as
    ``keras_backend.hashed_uniform`` draws them (written out here, so that this file's dropout
    changes no other Keras model's code)."""
    import tensorflow as tf

    key = tf.bitcast(tf.cast(key, tf.int32), tf.uint32)
    base = tf.constant(0, tf.uint32)
    for i in range(int(key.shape[0])):
        base = kb._mix(base + key[i] * tf.constant(0x9E3779B9, tf.uint32))
    return kb._mix(tf.bitcast(tf.range(n, dtype=tf.int32), tf.uint32) + base)


@functools.cache
def _layers():
    """The custom layers the networks share: ``(Embedding, GlobalBias, Dropout)``."""
    k = keras()
    ops = k.ops

    class Embedding(k.layers.Embedding):
        """``keras.layers.Embedding`` (same weights, same lookup) that reads only the looked-up
        rows of its table, so that a sparse optimizer's step costs the batch, not the table
        (see ``keras_backend.gather_rows``)."""

        def call(self, inputs):
            return gather_rows(self.embeddings, ops.cast(inputs, "int32"))

    class GlobalBias(k.layers.Layer):
        """One trainable scalar added to the output (the study's ``tf.Variable``, which Keras 3
        would not track: it stayed 0)."""

        def __init__(self, initial: float = 0.0, **kw):
            super().__init__(**kw)
            self.initial = float(initial)

        def build(self, input_shape):
            self.bias = self.add_weight(shape=(1,), initializer=k.initializers.Constant(self.initial),
                                        name="bias")

        def call(self, x):
            return x + self.bias

    class Dropout(k.layers.Dropout):
        """``keras.layers.Dropout`` (keep with probability ``1 - rate``, scale kept values by
        ``1 / (1 - rate)``); in the compiled epoch (``_DROPOUT_KEY`` set) the mask comes from a
        counter hash keyed by (seed, step, call) instead of XLA's slow CPU Philox (:func:`keep_mask`)."""

        def call(self, inputs, training=False):
            key = _DROPOUT_KEY["key"]
            if not training or key is None or not self.rate:
                return super().call(inputs, training=training)
            _DROPOUT_KEY["calls"] += 1
            keep = keep_mask(inputs.shape, ops.stack([*key, _DROPOUT_KEY["calls"]]), self.rate)
            return ops.where(keep, inputs / (1.0 - self.rate), ops.zeros_like(inputs))

    return Embedding, GlobalBias, Dropout


@functools.cache
def _matrix_factorization():
    """The study's MF network class."""
    k = keras()
    ops = k.ops
    Embedding, GlobalBias, Dropout = _layers()

    class MatrixFactorization(k.Model):
        """The study's MF: the 1-dim "biases" are broadcast-added to every embedding dimension,
        dropout on both sides in training, dot product plus a global bias."""

        def __init__(self, n_users, n_items, dim, dropout, sigmoid, global_bias=0.0, **kw):
            super().__init__(**kw)
            self.user_embeddings = Embedding(n_users, dim)
            self.item_embeddings = Embedding(n_items, dim)
            self.user_biases = Embedding(n_users, 1)
            self.item_biases = Embedding(n_items, 1)
            self.global_bias = GlobalBias(global_bias)
            self.dropout = Dropout(dropout)
            self.sigmoid = sigmoid

        def call(self, inputs, training=False):
            user, item = inputs[:, 0], inputs[:, 1]
            u = self.user_embeddings(user) + self.user_biases(user)
            i = self.item_embeddings(item) + self.item_biases(item)
            u = self.dropout(u, training=training)
            i = self.dropout(i, training=training)
            out = self.global_bias(ops.sum(u * i, axis=-1, keepdims=True))
            return ops.sigmoid(out) if self.sigmoid else out

    return MatrixFactorization


@functools.cache
def _neural_network():
    """The study's NN network class (one head per task; two heads = hybrid)."""
    k = keras()
    Embedding, _, Dropout = _layers()

    class NeuralNetwork(k.Model):
        """The study's NN: Embedding(64) x 2, dropout, concat, Dense(64, relu), then one head
        per task (Dense(1, relu) rating, Dense(1, sigmoid) interaction); two heads = hybrid."""

        def __init__(self, n_users, n_items, dim, dropout, hidden, tasks, rating_bias=0.0, **kw):
            super().__init__(**kw)
            self.user_embeddings = Embedding(n_users, dim)
            self.item_embeddings = Embedding(n_items, dim)
            self.dropout = Dropout(dropout)
            self.concat = k.layers.Concatenate()
            self.dense1 = k.layers.Dense(hidden, activation="relu")
            self.heads = {}
            if "rating" in tasks:
                self.rating_head = k.layers.Dense(1, activation="relu", name="rating_head",
                                                  bias_initializer=k.initializers.Constant(rating_bias))
                self.heads["rating"] = self.rating_head
            if "interaction" in tasks:
                self.interaction_head = k.layers.Dense(1, activation="sigmoid", name="interaction_head")
                self.heads["interaction"] = self.interaction_head
            self.single = len(tasks) == 1

        def call(self, inputs, training=False):
            user, item = inputs[:, 0], inputs[:, 1]
            u = self.dropout(self.user_embeddings(user), training=training)
            i = self.dropout(self.item_embeddings(item), training=training)
            x = self.dense1(self.concat([u, i]))
            out = {task: head(x) for task, head in self.heads.items()}
            return next(iter(out.values())) if self.single else out

    return NeuralNetwork


def _progress_callback(model: Model, started: float):
    callback: Any = keras().callbacks.Callback  # the backend's class, known only at run time

    class Progress(callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            model.report_progress(epoch=epoch + 1, loss=_num(logs.get("loss")),
                                  val_loss=_num(logs.get("val_loss")),
                                  seconds=round(time.perf_counter() - started, 3))

    return Progress()


def _num(value) -> float | None:
    return None if value is None else float(value)


def _pairs(part: Interactions) -> np.ndarray:
    return np.stack([part.user, part.item], axis=1).astype(np.int32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def predict_chunks(user: np.ndarray, item: np.ndarray):
    """``(where, user rows, item rows)`` in ``PREDICT_CHUNK``-row pieces (shared with ``biased_mf``)."""
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    for start in range(0, len(user), PREDICT_CHUNK):
        yield slice(start, start + PREDICT_CHUNK), user[start:start + PREDICT_CHUNK], item[start:start + PREDICT_CHUNK]


#: Keras Adam's constants (beta_1, beta_2, epsilon), which LazyAdam and the compiled epoch share.
ADAM = (0.9, 0.999, 1e-7)
#: The compiled epoch's LazyAdam updates each embedding table whole, masked to the rows the batch
#: touched (XLA's CPU scatters of 8192 x 195 floats cost 10-20 ms a step, a masked pass over a
#: 7k-row table ~1 ms), so its step grows with the table: above this many rows the models train
#: through ``keras.Model.fit`` (whose LazyAdam scatters only the batch's rows).
COMPILED_MAX_ROWS = 50_000


def _adam(var, m, v, grad, alpha, touched=None):
    """Keras Adam's step for one variable; with ``touched`` (a row mask) only those rows move:
    the others keep their value and moments (LazyAdam, ``sparse_optim``)."""
    ops = keras().ops
    b1, b2, eps = ADAM
    m_new = m + (grad - m) * (1 - b1)
    v_new = v + (ops.square(grad) - v) * (1 - b2)
    var_new = var - m_new * alpha / (ops.sqrt(v_new) + eps)
    if touched is None:
        return var_new, m_new, v_new
    return tuple(ops.where(touched, new, old) for new, old in ((var_new, var), (m_new, m), (v_new, v)))


def _row_sums(index, rows, n_rows: int):
    """An embedding gradient's rows summed per table row (a repeated row's gradients added, as
    ``sparse_optim.LazyAdam`` does), and the mask of the rows the batch touched (``[n_rows, 1]``:
    a count of its own, since a touched row's summed gradient may be 0)."""
    ops = keras().ops
    index = ops.expand_dims(ops.cast(index, "int32"), 1)
    counts = ops.scatter(index, ops.ones_like(rows[:, 0]), (n_rows,))
    return ops.scatter(index, rows, (n_rows, int(rows.shape[1]))), ops.expand_dims(counts > 0, 1)


class _CompiledEpochs:
    """``keras.Model.fit``'s training, one XLA program per epoch (issue #26).

    The step is Keras' own: the network's ``call`` (``stateless_call``, so the same layers), the
    compiled losses with their weights and sample weights, Adam on dense weights and LazyAdam on
    the embedding tables (the same rules as ``sparse_optim.LazyAdam``). What differs from ``fit``:
    no Python between steps (a ``while_loop`` over the epoch's batches), dropout masks from a
    counter hash (:func:`keep_mask`), and LazyAdam's row update as a masked pass
    over the table. Data: one float32 row per example, ``[user, item, target per task, sample
    weight per task, 1]``, plus a padding row of weight 0 (``row_adagrad.batch_order``)."""

    def __init__(self, net, tasks, losses, loss_weights, learning_rate: float, batch_size: int, seed: int):
        k = keras()
        self.net, self.tasks, self.learning_rate = net, tasks, float(learning_rate)
        losses = losses if isinstance(losses, dict) else {tasks[0]: losses}
        self.loss_fns = {t: k.losses.get(losses[t]) for t in tasks}
        self.loss_weights = {t: float((loss_weights or {}).get(t, 1.0)) for t in tasks}
        self.seed = int(seed) % (1 << 31)
        self.epoch = kb.compiled_epoch(self._step, batch_size, 1 + len(tasks))
        self.losses = kb.compiled(self._losses)

    @staticmethod
    def pack(x, y, sw, tasks) -> np.ndarray:
        """The examples as ``[user, item, targets..., weights..., 1]`` rows, plus the padding row."""
        y = y if isinstance(y, dict) else {tasks[0]: y}
        out = np.zeros((len(x) + 1, 3 + 2 * len(tasks)), np.float32)
        out[:-1, :2] = x
        for j, t in enumerate(tasks):
            out[:-1, 2 + j] = y[t].reshape(-1)
            out[:-1, 2 + len(tasks) + j] = 1.0 if sw is None else sw[t]
        out[:-1, -1] = 1.0
        return out

    def _batch_losses(self, trainable, non_trainable, rows, key):
        """``(total loss, (non-trainable values, [loss per task]), examples)`` of a batch: Keras'
        "sum over batch size", the batch being its real (not padding) rows."""
        ops = keras().ops
        n_tasks = len(self.tasks)
        x = ops.cast(rows[:, :2], "int32")
        real = ops.maximum(ops.sum(rows[:, -1]), 1.0)
        _DROPOUT_KEY.update(key=key, calls=0)
        try:
            out, non_trainable = self.net.stateless_call(trainable, non_trainable, x, training=key is not None)
        finally:
            _DROPOUT_KEY["key"] = None
        out = out if isinstance(out, dict) else {self.tasks[0]: out}
        parts = [ops.sum(self.loss_fns[t](rows[:, 2 + j:3 + j], out[t]) * rows[:, 2 + n_tasks + j]) / real
                 for j, t in enumerate(self.tasks)]
        total = sum(self.loss_weights[t] * part for t, part in zip(self.tasks, parts))
        return total, (non_trainable, parts), real

    def _step(self, state, rows, step_number):
        ops = keras().ops
        trainable, m, v, non_trainable = state
        key = (ops.convert_to_tensor(self.seed, "int32"), step_number)
        real = []

        def loss_fn():
            total, aux, n = self._batch_losses(trainable, non_trainable, rows, key)
            real.append(n)
            return total, aux

        total, (non_trainable, parts), grads = kb.value_and_gradients(loss_fn, trainable)
        b1, b2, _ = ADAM
        t = ops.cast(step_number + 1, "float32")
        alpha = self.learning_rate * ops.sqrt(1 - ops.power(b2, t)) / (1 - ops.power(b1, t))
        new = []
        for var, var_m, var_v, grad in zip(trainable, m, v, grads):
            touched = None
            if isinstance(grad, tuple):  # an embedding table: its rows, as LazyAdam
                grad, touched = _row_sums(grad[0], grad[1], int(var.shape[0]))
            new.append(_adam(var, var_m, var_v, grad, alpha, touched))
        state = ([n[0] for n in new], [n[1] for n in new], [n[2] for n in new], non_trainable)
        return state, ops.stack([total, *parts]) * real[0]

    def _losses(self, trainable, non_trainable, rows):
        total, (_, parts), real = self._batch_losses(trainable, non_trainable, rows, None)
        return keras().ops.stack([total, *parts]) * real

    def initial_state(self):
        # Tensors copied out of the variables (not the variables themselves: an epoch then takes
        # what the last returned, and is traced and compiled once, not again for epoch 2).
        ops = keras().ops
        trainable = [ops.convert_to_tensor(to_numpy(v)) for v in self.net.trainable_variables]
        return (trainable, [ops.zeros_like(v) for v in trainable], [ops.zeros_like(v) for v in trainable],
                [ops.convert_to_tensor(to_numpy(v)) for v in self.net.non_trainable_variables])

    def evaluate(self, state, data: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """Summed losses ``[total, per task...]`` over ``data``'s real rows, in padded chunks."""
        total = np.zeros(1 + len(self.tasks))
        chunk = min(chunk, len(data))
        for start in range(0, len(data), chunk):
            rows = data[start:start + chunk]
            if len(rows) < chunk:
                rows = np.concatenate([rows, np.zeros((chunk - len(rows), data.shape[1]), np.float32)])
            total += np.asarray(self.losses(state[0], state[3], rows), dtype=np.float64)
        return total

    def assign(self, state) -> None:
        """Write ``state``'s weights into the network's variables."""
        for variable, value in zip(self.net.trainable_variables, state[0]):
            variable.assign(value)
        for variable, value in zip(self.net.non_trainable_variables, state[3]):
            variable.assign(value)


class KerasModel(Model):
    """Shared training loop: data as (user, item) index pairs, one ``model.fit``, early stopping,
    progress, then numpy weights for predict. Subclasses build the network and fold weights."""

    framework = "keras"
    #: Extra Keras callbacks for ``fit`` (not a hyperparameter; benchmarks use it to watch
    #: validation loss against the clock).
    extra_callbacks: tuple = ()
    # Hyperparameters every subclass takes in __init__ (declared here for the shared loop).
    batch_size: int
    learning_rate: float
    jit_compile: bool
    steps_per_epoch: int | None
    patience: int

    @classmethod
    def validate_params(cls, params):
        """Sizes and budgets >= 1, learning rate > 0, dropout in [0, 1), loss weights >= 0."""
        for key in ("embedding_dim", "hidden", "epochs", "batch_size"):
            check_param(params, key, at_least=1)
        check_param(params, "steps_per_epoch", at_least=1, none_ok=True)
        check_param(params, "learning_rate", above=0)
        check_param(params, "dropout", at_least=0, below=1)
        check_param(params, "patience", at_least=0)
        weights = ("rating_loss_weight", "interaction_loss_weight")
        for key in weights:
            check_param(params, key, at_least=0)
        if all(key in params for key in weights) and not any(params[key] for key in weights):
            raise ValueError("rating_loss_weight and interaction_loss_weight are both 0: nothing to train")

    def _setup(self) -> dict[str, Any]:
        """The training setup this fit uses: the declared hyperparameters, or the study's."""
        if getattr(self, "seed_compat", False):
            setup = dict(STUDY_SETUP)
            if self.steps_per_epoch is not None:
                setup["steps_per_epoch"] = self.steps_per_epoch
            return setup
        return {"batch_size": self.batch_size, "learning_rate": self.learning_rate, "run_eagerly": False,
                "jit_compile": self.jit_compile, "steps_per_epoch": self.steps_per_epoch,
                "monitor": "val_loss", "patience": self.patience, "restore_best_weights": True,
                "validation_steps": None, "class_weight": None, "optimizer": "lazy_adam",
                "steps_per_execution": STEPS_PER_EXECUTION}

    def _examples(self, part: Interactions, tasks: tuple[str, ...]):
        """x, y, sample weights for ``tasks``: one task -> its examples only; joint -> every pair of
        either task, with the other task's loss masked by a zero sample weight."""
        if len(tasks) == 1:
            sub, y = part.for_task(tasks[0])
            return _pairs(sub), y.reshape(-1, 1), None
        keep = np.zeros(len(part), dtype=bool)
        for task in tasks:
            keep |= part.task_mask(task)
        sub = part.subset(keep)
        targets = {t: sub.target(t).reshape(-1, 1) for t in tasks}
        weights = {t: sub.task_mask(t).astype(np.float32) for t in tasks}
        return _pairs(sub), targets, weights

    def _optimizer(self, setup):
        """The study's Keras Adam in ``seed_compat``; else Adam that updates only the embedding rows
        a batch touched (``sparse_optim.LazyAdam``): Keras' Adam updates whole tables every
        step, which at the real data's 325k users costs ~10x the batch's own work."""
        if setup["optimizer"] == "adam":
            return keras().optimizers.Adam(learning_rate=setup["learning_rate"])
        from animerec_bench.builtin.sparse_optim import LazyAdam

        return LazyAdam(learning_rate=setup["learning_rate"])

    @staticmethod
    def _compiled_applies(setup, train: Interactions) -> bool:
        """Whether this fit trains in the compiled epoch (``_CompiledEpochs``): the default setup
        (not ``seed_compat``), TensorFlow, and tables of at most ``COMPILED_MAX_ROWS`` rows."""
        return (not setup["run_eagerly"] and setup["optimizer"] == "lazy_adam" and kb.compiled_loop_supported()
                and max(train.n_users, train.n_items) <= COMPILED_MAX_ROWS)

    def _train(self, net, train, valid, tasks, seed, losses, loss_weights=None):
        """Compile and fit ``net``; sets ``epochs_``, ``setup_``, ``history_``, ``fit_seconds_``."""
        k = keras()
        setup = self._setup()
        if k.backend.backend() == "jax" and not setup["run_eagerly"]:
            # Keras' JAX trainer jit-compiles the step only when asked: False there means op by op
            # (on TensorFlow, False still builds a graph).
            setup["jit_compile"] = True
        net.compile(optimizer=self._optimizer(setup), loss=losses, loss_weights=loss_weights,
                    run_eagerly=setup["run_eagerly"], jit_compile=setup["jit_compile"],
                    steps_per_execution=setup["steps_per_execution"])
        x, y, sw = self._examples(train, tasks)
        validation = None
        if valid is not None and len(valid):
            xv, yv, swv = self._examples(valid, tasks)
            if len(xv):
                validation = (xv, yv) if swv is None else (xv, yv, swv)
        monitor = setup["monitor"] if validation is not None else "loss"
        compiled = self._compiled_applies(setup, train)
        started = time.perf_counter()
        callbacks = [_progress_callback(self, started), *self.extra_callbacks]
        if compiled:
            net(x[:1])  # builds the layers: the compiled epoch starts from their variables
            setup = {**setup, "loop": "compiled_epoch", "jit_compile": True, "steps_per_execution": None}
            history = self._fit_compiled(net, (x, y, sw), validation, tasks, seed, (losses, loss_weights),
                                         setup, callbacks, monitor)
        else:
            callbacks.insert(0, k.callbacks.EarlyStopping(monitor=monitor, patience=setup["patience"],
                                                          restore_best_weights=setup["restore_best_weights"]))
            class_weight = setup["class_weight"] if tasks == ("interaction",) else None
            history = net.fit(x, y, sample_weight=sw, batch_size=setup["batch_size"], epochs=self.epochs,
                              steps_per_epoch=setup["steps_per_epoch"], validation_data=validation,
                              validation_steps=setup["validation_steps"] if validation is not None else None,
                              validation_batch_size=(max(setup["batch_size"], 8192) if not setup["run_eagerly"]
                                                     else None),
                              class_weight=class_weight, callbacks=callbacks, shuffle=True, verbose=0).history
        self.fit_seconds_ = time.perf_counter() - started
        self.history_ = {key: [float(v) for v in values] for key, values in history.items()}
        self.epochs_ = len(self.history_["loss"])
        self.setup_ = {**setup, "monitor": monitor, "backend": k.backend.backend(), "examples": int(len(x))}
        self.tasks_ = tasks
        self.seed_ = seed

    def _fit_compiled(self, net, examples, validation, tasks, seed, losses, setup, callbacks, monitor):
        """``fit``'s epochs in ``_CompiledEpochs``: a fresh shuffle each epoch (each batch sorted,
        as ``row_adagrad``), the validation loss after each, early stopping on ``monitor`` with
        ``patience`` and the best weights restored (Keras' ``EarlyStopping``), the callbacks'
        ``on_epoch_end`` (the network holding the epoch's weights when any but progress is given)."""
        from animerec_bench.builtin.row_adagrad import batch_order

        x, y, sw = examples
        by_user = np.argsort(x[:, 0], kind="stable")  # sorted batches then read user rows in order
        ops = keras().ops
        data = ops.convert_to_tensor(_CompiledEpochs.pack(x, y, sw, tasks)[np.append(by_user, len(x))])
        trainer = _CompiledEpochs(net, tasks, losses[0], losses[1], setup["learning_rate"], setup["batch_size"], seed)
        vdata = None if validation is None else _CompiledEpochs.pack(validation[0], validation[1],
                                                                    validation[2] if len(validation) > 2 else None,
                                                                    tasks)
        names = ["loss", *(f"{t}_loss" for t in tasks)] if len(tasks) > 1 else ["loss"]
        history: dict[str, list[float]] = {}
        rng = np.random.default_rng(seed)
        state = best = trainer.initial_state()
        best_loss, waited, steps_done, batch = float("inf"), 0, 0, setup["batch_size"]
        net.stop_training = False
        for cb in callbacks:
            cb.set_model(net)
            cb.on_train_begin()
        for epoch in range(self.epochs):
            order = batch_order(len(x), batch, rng, setup["steps_per_epoch"])
            state, total = trainer.epoch(state, data, order, ops.convert_to_tensor(steps_done, "int32"))
            steps_done += len(order) // batch
            logs = dict(zip(names, np.asarray(total, np.float64) / max(1, min(len(x), len(order)))))
            if vdata is not None:
                logs.update(zip([f"val_{n}" for n in names], trainer.evaluate(state, vdata) / (len(vdata) - 1)))
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            if len(callbacks) > 1:
                trainer.assign(state)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if logs[monitor] < best_loss:
                best_loss, waited, best = float(logs[monitor]), 0, state
            else:
                waited += 1
                if waited >= setup["patience"] and epoch > 0:
                    break
            if net.stop_training:
                break
        trainer.assign(best)
        return history


class MF(KerasModel):
    """The study's matrix factorisation (SEED.md), one task per fit.

    Default setup (batch 8192, Adam lr 0.01) set by hand on mal2016-5k / v1 / seed 0
    validation, not searched. Version 2 trains in the compiled epoch (``_CompiledEpochs``, XLA
    always); ``jit_compile`` applies to ``keras.Model.fit``, which trains tables over
    ``COMPILED_MAX_ROWS`` rows and other backends (there it measured no faster on CPU: XLA's CPU
    Philox made dropout most of a step, see ``keras_backend.hashed_uniform``). The global bias starts
    at the training mean so that large batches (few steps) need not spend
    thousands of steps walking it there (the study's zero start is kept in ``seed_compat``).
    Version 3: the compiled epoch's dropout masks take one bit of a shared hash per element at the
    default rate (:func:`keep_mask`): the same distribution, another random stream, 1.36x the
    epoch's examples/s.
    """

    name = "mf"
    tasks = ("rating", "interaction")
    joint = False
    version = "3"
    #: ``tune``: size, dropout, rate and batch; ``epochs`` and ``patience`` stay the fixed budget.
    search_space = {"embedding_dim": ("int", 8, 128, "log"), "dropout": ("float", 0.0, 0.7),
                    "learning_rate": ("float", 1e-3, 5e-2, "log"),
                    "batch_size": ("categorical", [2048, 4096, 8192, 16384])}

    def __init__(self, embedding_dim: int = 64, dropout: float = 0.5, epochs: int = 30,
                 batch_size: int = 8192, learning_rate: float = 0.01, patience: int = 2,
                 jit_compile: bool = False, steps_per_epoch: int | None = None,
                 seed_compat: bool = False) -> None:
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.jit_compile = jit_compile
        self.steps_per_epoch = steps_per_epoch
        self.seed_compat = seed_compat

    def fit(self, train, valid, *, tasks, seed):
        (task,) = tasks = self.check_tasks(tasks)
        seed_everything(seed)
        start = 0.0
        if not self.seed_compat:
            _, y = train.for_task(task)
            start = float(y.mean()) if task == "rating" and len(y) else 0.0
        net = _architectures()["MatrixFactorization"](train.n_users, train.n_items, self.embedding_dim,
                                                      self.dropout, sigmoid=task == "interaction",
                                                      global_bias=start)
        loss = tasks_mod.get(task).loss
        self._train(net, train, valid, tasks, seed, loss)
        # Fold the broadcast biases into the factors once: predict is one gather + dot per side.
        self.user_ = to_numpy(net.user_embeddings.embeddings) + to_numpy(net.user_biases.embeddings)
        self.item_ = to_numpy(net.item_embeddings.embeddings) + to_numpy(net.item_biases.embeddings)
        self.global_bias_ = float(to_numpy(net.global_bias.bias)[0])
        self.network_ = net
        return self

    def predict(self, user, item):
        out = np.empty(len(user), dtype=np.float32)
        for where, u, i in predict_chunks(user, item):
            out[where] = np.einsum("ij,ij->i", self.user_[u], self.item_[i]) + self.global_bias_
        task = self.tasks_[0]
        return {task: _sigmoid(out) if task == "interaction" else out}


class NN(KerasModel):
    """The study's neural network (SEED.md), one task per fit. Version 3: dropout masks as
    ``mf``'s version 3 (:func:`keep_mask`; no faster here, where the Dense layer dominates a step)."""

    name = "nn"
    tasks = ("rating", "interaction")
    joint = False
    version = "3"
    #: ``tune``: sizes, dropout, rate and batch; ``epochs`` and ``patience`` stay the fixed budget.
    search_space = {"embedding_dim": ("int", 8, 128, "log"), "hidden": ("int", 16, 256, "log"),
                    "dropout": ("float", 0.0, 0.7), "learning_rate": ("float", 3e-4, 3e-2, "log"),
                    "batch_size": ("categorical", [2048, 4096, 8192, 16384])}

    def __init__(self, embedding_dim: int = 64, hidden: int = 64, dropout: float = 0.5, epochs: int = 30,
                 batch_size: int = 8192, learning_rate: float = 0.003, patience: int = 2,
                 jit_compile: bool = False, steps_per_epoch: int | None = None,
                 seed_compat: bool = False) -> None:
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.jit_compile = jit_compile
        self.steps_per_epoch = steps_per_epoch
        self.seed_compat = seed_compat

    def _network(self, train, tasks):
        rating_bias = 0.0
        if not self.seed_compat and "rating" in tasks:
            _, y = train.for_task("rating")
            rating_bias = float(y.mean()) if len(y) else 0.0
        return _architectures()["NeuralNetwork"](train.n_users, train.n_items, self.embedding_dim,
                                                 self.dropout, self.hidden, tasks, rating_bias=rating_bias)

    def fit(self, train, valid, *, tasks, seed):
        (task,) = tasks = self.check_tasks(tasks)
        seed_everything(seed)
        net = self._network(train, tasks)
        self._train(net, train, valid, tasks, seed, tasks_mod.get(task).loss)
        self._fold(net, tasks)
        return self

    def _fold(self, net, tasks):
        """Split Dense(64) over the concat: relu(U W_u + I W_i + b), so each side is projected once."""
        w1 = to_numpy(net.dense1.kernel)
        dim = self.embedding_dim
        self.user_ = to_numpy(net.user_embeddings.embeddings) @ w1[:dim]
        self.item_ = to_numpy(net.item_embeddings.embeddings) @ w1[dim:] + to_numpy(net.dense1.bias)
        self.heads_ = {t: (to_numpy(net.heads[t].kernel)[:, 0], float(to_numpy(net.heads[t].bias)[0]))
                       for t in tasks}
        self.network_ = net

    def predict(self, user, item):
        out = {t: np.empty(len(user), dtype=np.float32) for t in self.heads_}
        for where, u, i in predict_chunks(user, item):
            hidden = _relu(self.user_[u] + self.item_[i])
            for task, (w, b) in self.heads_.items():
                # einsum, not ``hidden @ w``: a BLAS matrix-vector call per 16k-row chunk wakes its
                # threads every time, ~9x slower on a busy 2-core machine (scoring every anime for
                # every test user is ~1,600 chunks); single-threaded einsum does not.
                z = np.einsum("ij,j->i", hidden, w) + b
                out[task][where] = _sigmoid(z) if task == "interaction" else np.maximum(z, 0.0)
        return out


class Hybrid(NN):
    """The study's hybrid NN: the NN trunk with a rating and an interaction head, trained on both
    tasks at once with loss 1.0 * MSE + 5.0 * BCE. A pair that is an example of one task only
    has the other task's loss masked out by a zero sample weight. Version 3: dropout masks as
    ``nn``'s version 3."""

    name = "hybrid"
    tasks = ("rating", "interaction")
    joint = True
    version = "3"
    #: ``tune``: the NN's space plus the interaction loss's weight (the rating loss's stays 1).
    search_space = {**NN.search_space, "interaction_loss_weight": ("float", 0.5, 20.0, "log")}
    #: Its claim is the interaction task (AUC), so its one joint study optimises that.
    tuning_objective = "interaction"

    def __init__(self, embedding_dim: int = 64, hidden: int = 64, dropout: float = 0.5, epochs: int = 30,
                 batch_size: int = 8192, learning_rate: float = 0.003, patience: int = 2,
                 rating_loss_weight: float = 1.0, interaction_loss_weight: float = 5.0,
                 jit_compile: bool = False, steps_per_epoch: int | None = None,
                 seed_compat: bool = False) -> None:
        super().__init__(embedding_dim=embedding_dim, hidden=hidden, dropout=dropout, epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate, patience=patience,
                         jit_compile=jit_compile, steps_per_epoch=steps_per_epoch, seed_compat=seed_compat)
        self.rating_loss_weight = rating_loss_weight
        self.interaction_loss_weight = interaction_loss_weight

    def fit(self, train, valid, *, tasks=("rating", "interaction"), seed):
        self.check_tasks(tasks)
        tasks = self.tasks  # both heads, in the order the losses are declared
        seed_everything(seed)
        net = self._network(train, tasks)
        self._train(net, train, valid, tasks, seed,
                    losses={t: tasks_mod.get(t).loss for t in tasks},
                    loss_weights={"rating": self.rating_loss_weight,
                                  "interaction": self.interaction_loss_weight})
        self._fold(net, tasks)
        return self


KERAS_MODELS = (MF, NN, Hybrid)


@hookimpl
def register_models(register):
    for cls in KERAS_MODELS:
        register(cls)
