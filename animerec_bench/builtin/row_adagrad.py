"""Row-wise Adagrad SGD for biased matrix factorisation: a step reads and writes only its rows.

Why not ``keras.Model.fit``: a Keras step is ~100 TensorFlow ops (the tape, deduplicating the
embedding gradients, LazyAdam's gathers and scatters of rows and moments). At the real data's
scale (325k users x 64 factors) on 2 CPU cores that ran ~1M examples/s at any batch size. Here
a step is a gather of the batch's user rows and item rows, the arithmetic of their updates, and
one scatter-add per table; a whole epoch of steps is one XLA program (a ``while`` loop over the
batches) in which the scatter-adds update the tables in place. Measured on the same machine:
~4.5-4.9M examples/s. (The same steps as TensorFlow ops in a graph loop, ``Variable.scatter_add``
and all, ran ~2M.)

Each table row holds all that its updates need, so one gather and one scatter serve a side:
user row ``[p_u (factors) | b_u | a_u | c_u]``, item row ``[q_i | b_i | a_i | c_i]``, where
``a`` and ``c`` are Adagrad accumulators (one scalar per row for the factors, one for the bias).
For each example, with ``e = mean + b_u + b_i + <p_u, q_i> - rating``::

    g_p = e q_i + reg_factors p_u    a_u += mean(g_p ** 2)   p_u -= lr g_p / sqrt(a_u)
    g_b = e + reg_biases b_u         c_u += g_b ** 2         b_u -= lr_bias g_b / sqrt(c_u)

and the same for the item's row. The examples of a batch all read the rows as they were before
the batch; a row that appears in several of them gets the sum of their updates.

Batches come from a fresh permutation every epoch, with each batch sorted by example index:
the examples are sorted by user, so the large user table is then read and written in address
order (its gather and scatter measured 2-2.5x faster). The sum a step applies is the same.

The arithmetic is ``keras.ops`` (one copy for both backends); the loop, the gathers and the
scatters are TensorFlow's or JAX's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from animerec_bench.builtin.keras_backend import backend_name, keras

#: Columns after a row's factors: its bias, its factor accumulator, its bias accumulator.
EXTRA_COLUMNS = 3
#: The examples are padded (weight 0) to a multiple of ``PAD_ROWS`` rows, an epoch's batch order
#: to a multiple of ``PAD_STEPS`` batches (the loop stops at the real count, a run-time input) and
#: the tables to a multiple of ``PAD_TABLE_ROWS`` rows: one data set's splits, whose sizes differ
#: by a few pairs or anime from seed to seed, then give the compiled epoch the same shapes, so
#: XLA's persistent cache serves every seed one program.
PAD_ROWS = 1 << 16
PAD_STEPS = 16
PAD_TABLE_ROWS = 1 << 10


@dataclass(frozen=True)
class StepRule:
    """The hyperparameters of one update step. ``factors`` and ``batch_size`` shape the compiled
    epoch (with the padded sizes, ``PAD_ROWS``); the rest reach it as one runtime vector
    (``scalars``), so fits that differ only in their rates or their seed (``tune``'s trials of one
    size and batch, one data set's seeds) run one compiled program, which XLA's persistent cache
    keeps."""

    factors: int
    mean: float
    learning_rate: float
    bias_learning_rate: float
    reg_factors: float
    reg_biases: float
    batch_size: int

    def scalars(self) -> np.ndarray:
        """``[mean, learning_rate, bias_learning_rate, reg_factors, reg_biases]`` as float32."""
        return np.array([self.mean, self.learning_rate, self.bias_learning_rate, self.reg_factors,
                         self.reg_biases], np.float32)


def init_table(rows: int, factors: int, init_std: float, initial_accumulator: float,
               rng: np.random.Generator) -> np.ndarray:
    """A table of ``rows`` rows: random factors, zero bias, accumulators at their start value."""
    random = rng.standard_normal((rows, factors), dtype=np.float32)  # float32: 4x faster than rng.normal
    random *= init_std
    table = np.empty((rows, factors + EXTRA_COLUMNS), np.float32)
    table[:, :factors] = random
    table[:, factors] = 0.0
    table[:, factors + 1:] = initial_accumulator
    return table


def _permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    """``rng.permutation(n)`` as int32: the same draw, shuffled in place in int32 rather than
    int64 (~30% faster: 45 vs 62 ms for 2.4M)."""
    order = np.arange(n, dtype=np.int32)
    rng.shuffle(order)
    return order


def batch_order(n: int, batch_size: int, rng: np.random.Generator, steps: int | None = None) -> np.ndarray:
    """Example indices for one epoch's batches, each batch sorted: one permutation of
    ``range(n)`` padded with ``n`` (the example of weight 0) to whole batches; or, given
    ``steps``, permutations back to back cut at ``steps`` batches."""
    if steps is None:
        order = np.concatenate([_permutation(n, rng), np.full(-n % batch_size, n, np.int32)])
    else:
        total = steps * batch_size
        order = np.concatenate([_permutation(n, rng) for _ in range(-(-total // n))])[:total]
    return np.sort(order.reshape(-1, batch_size), axis=1).reshape(-1)


def _updates(user_rows, item_rows, rating, weight, scalars, k: int):
    """Each example's additions to its user row and its item row, and its weighted squared error
    (``rating``, ``weight``: columns ``[batch, 1]``; ``scalars``: ``StepRule.scalars()``; ``k``:
    the factors). Rows are split with one op a side and every per-example value stays a column,
    so tracing the epoch (on the clock of a fit's first epoch) builds fewer ops: 0.065 -> 0.054 s."""
    ops = keras().ops
    mean, learning_rate, bias_learning_rate, reg_factors, reg_biases = ops.unstack(scalars)
    p, bu, au, cu = ops.split(user_rows, [k, k + 1, k + 2], axis=1)
    q, bi, ai, ci = ops.split(item_rows, [k, k + 1, k + 2], axis=1)
    e = mean + bu + bi + ops.sum(p * q, axis=1, keepdims=True) - rating
    gp = (e * q + reg_factors * p) * weight
    gq = (e * p + reg_factors * q) * weight
    gbu = (e + reg_biases * bu) * weight
    gbi = (e + reg_biases * bi) * weight

    def side(g, gb, a, c):
        da, dc = ops.mean(g * g, axis=1, keepdims=True), gb * gb
        return ops.concatenate([-learning_rate * g * ops.rsqrt(a + da), -bias_learning_rate * gb * ops.rsqrt(c + dc),
                                da, dc], axis=1)

    return side(gp, gbu, au, cu), side(gq, gbi, ai, ci), ops.sum(weight * e * e)


def _squared_error(user_rows, item_rows, rating, weight, mean, factors: int):
    """Summed squared error of ``mean + b_u + b_i + <p_u, q_i>`` (the model's prediction),
    each weighted (0: padding)."""
    ops = keras().ops
    k = factors
    e = (mean + user_rows[:, k] + item_rows[:, k] + ops.sum(user_rows[:, :k] * item_rows[:, :k], axis=1)
         - rating)
    return ops.sum(weight * e * e)


def _padded_length(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _padded_table(table: np.ndarray) -> np.ndarray:
    """``table`` with zero rows after it, up to a multiple of ``PAD_TABLE_ROWS`` (no example
    reads them)."""
    out = np.zeros((_padded_length(len(table), PAD_TABLE_ROWS), table.shape[1]), table.dtype)
    out[:len(table)] = table
    return out


def _packed(user, item, rating) -> np.ndarray:
    """The examples as one int32 row each, ``[user, item, rating bits, weight bits]``, then rows
    of weight 0 from index ``n`` on (what ``batch_order`` pads with) up to a multiple of
    ``PAD_ROWS``. A step gathers one 16-byte row per example, not four scattered values: epochs
    measured ~20% faster at real scale."""
    n = len(rating)
    packed = np.zeros((_padded_length(n + 1, PAD_ROWS), 4), np.int32)
    packed[:n, 0], packed[:n, 1] = user, item
    packed[:n, 2] = np.asarray(rating, np.float32).view(np.int32)
    packed[:n, 3] = np.float32(1.0).view(np.int32)
    return packed


class _Trainer:
    """The loop's state and what the model asks of it; subclasses compile the epoch and the
    scoring for their framework and say how to make and copy its arrays."""

    def __init__(self, users, items, examples, rule: StepRule, n: int):
        self._rows = (len(users), len(items))
        self._users, self._items = (self._array(_padded_table(t)) for t in (users, items))
        self._data = self._array(examples)
        self._n, self._size = n, rule.batch_size
        self._kept: tuple[Any, Any] | None = None
        self._scalars = self._array(rule.scalars())
        self._epoch, self._squared_error = self._compile(rule.factors, rule.batch_size)

    # What a framework's subclass provides.
    def _array(self, values: np.ndarray) -> Any:
        raise NotImplementedError

    def _copy(self, array: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def _compile(factors: int, size: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The compiled epoch and scoring for tables of ``factors`` and batches of ``size``
        (subclasses cache them per shape: a process traces each once)."""
        raise NotImplementedError

    def epoch(self, order: np.ndarray) -> float:
        steps = len(order) // self._size
        padded = np.full(_padded_length(steps, PAD_STEPS) * self._size, self._n, np.int32)
        padded[:len(order)] = order
        self._users, self._items, total = self._epoch(self._users, self._items, self._data, self._array(padded),
                                                      self._scalars, self._array(np.array(steps, np.int32)))
        return float(total)

    def pairs(self, user: np.ndarray, item: np.ndarray, rating: np.ndarray) -> tuple[Any, ...]:
        """(user, item) pairs and their ratings as ``squared_error`` takes them, made once per set
        of pairs (a fit's validation part): padded like the examples, with weight 0 on the padding,
        so one data set's validation parts share a program."""
        n = len(rating)

        def padded(values, dtype):
            out = np.zeros(_padded_length(n, PAD_ROWS), dtype)
            out[:n] = values
            return self._array(out)

        return padded(user, np.int32), padded(item, np.int32), padded(rating, np.float32), padded(1.0, np.float32)

    def squared_error(self, pairs: tuple[Any, ...]) -> float:
        """The current tables' summed squared error on ``pairs`` (from :meth:`pairs`)."""
        return float(self._squared_error(self._users, self._items, self._scalars, *pairs))

    def keep(self) -> None:
        self._kept = (self._copy(self._users), self._copy(self._items))

    def tables(self, kept: bool = False) -> tuple[np.ndarray, np.ndarray]:
        users, items = self._kept if kept and self._kept else (self._users, self._items)
        return np.asarray(users)[:self._rows[0]], np.asarray(items)[:self._rows[1]]


class _TensorFlowTrainer(_Trainer):
    """One XLA program per epoch whose scatter-adds update the tables in place. (Each op run by
    TensorFlow's own kernels in a graph loop, ``Variable.scatter_add`` and all, measured ~2M
    examples/s; this ~4.5-4.9M.) An epoch returns new tensors, so keeping needs no copy."""

    @staticmethod
    def _array(a):
        import tensorflow as tf

        return tf.constant(a)

    @staticmethod
    def _copy(a):
        return a

    @staticmethod
    @functools.cache
    def _compile(factors: int, size: int):
        import tensorflow as tf

        # autograph=False: the loop is written with tf.while_loop already, and autograph's
        # conversion cost ~0.15 s of the first fit in a process.
        @tf.function(jit_compile=True, autograph=False)
        def epoch(users, items, data, order, scalars, steps):
            def step(s, users, items, total):
                rows = tf.gather(data, tf.slice(order, [s * size], [size]))
                u, i, r, w = tf.split(rows, 4, axis=1)  # columns [size, 1]
                r, w = tf.bitcast(r, tf.float32), tf.bitcast(w, tf.float32)
                du, di, loss = _updates(tf.gather_nd(users, u), tf.gather_nd(items, i), r, w, scalars, factors)
                return (s + 1, tf.tensor_scatter_nd_add(users, u, du), tf.tensor_scatter_nd_add(items, i, di),
                        total + loss)

            _, users, items, total = tf.while_loop(lambda s, *_: s < steps, step,
                                                   (tf.constant(0), users, items, tf.constant(0.0)))
            return users, items, total

        @tf.function(jit_compile=True, autograph=False)
        def squared_error(users, items, scalars, user, item, rating, weight):
            return _squared_error(tf.gather(users, user), tf.gather(items, item), rating, weight, scalars[0],
                                  factors)

        return epoch, squared_error


class _JaxTrainer(_Trainer):
    """The same loop in JAX. The epoch donates the tables (updated in place), so keeping copies."""

    @staticmethod
    def _array(a):
        import jax.numpy as jnp

        return jnp.asarray(a)

    @staticmethod
    def _copy(a):
        import jax.numpy as jnp

        return jnp.copy(a)

    @staticmethod
    @functools.cache
    def _compile(factors: int, size: int):
        import jax
        import jax.numpy as jnp

        def epoch(users, items, data, order, scalars, steps):
            def step(s, carry):
                users, items, total = carry
                rows = data[jax.lax.dynamic_slice_in_dim(order, s * size, size)]
                u, i = rows[:, 0], rows[:, 1]
                r, w = (jax.lax.bitcast_convert_type(rows[:, c:c + 1], jnp.float32) for c in (2, 3))
                du, di, loss = _updates(users[u], items[i], r, w, scalars, factors)
                return users.at[u].add(du), items.at[i].add(di), total + loss

            return jax.lax.fori_loop(0, steps, step, (users, items, jnp.float32(0.0)))

        def squared_error(users, items, scalars, user, item, rating, weight):
            return _squared_error(users[user], items[item], rating, weight, scalars[0], factors)

        return jax.jit(epoch, donate_argnums=(0, 1)), jax.jit(squared_error)


_TRAINERS = {"tensorflow": _TensorFlowTrainer, "jax": _JaxTrainer}


def trainer(users: np.ndarray, items: np.ndarray, user: np.ndarray, item: np.ndarray, rating: np.ndarray,
            rule: StepRule):
    """A trainer on the current Keras backend, starting from tables ``users`` and ``items``:
    ``epoch(order)`` runs the steps of a ``batch_order`` and returns their summed squared error;
    ``squared_error(pairs(user, item, rating))`` scores the current tables; ``keep()`` sets them aside;
    ``tables(kept=False)`` reads them (or the kept ones, if any were) back as numpy."""
    backend = backend_name()
    if backend not in _TRAINERS:
        raise ValueError(f"row-wise Adagrad runs on the tensorflow or jax Keras backend, not {backend!r}")
    return _TRAINERS[backend](users, items, _packed(user, item, rating), rule, len(rating))
