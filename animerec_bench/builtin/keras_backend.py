"""The few backend-specific details the Keras models need, kept out of the model code.

Everything here imports Keras (and TensorFlow, when it is the backend) lazily, so importing
the plugin modules stays instant.
"""

from __future__ import annotations

import os
import sys

from animerec_bench.support import compile_cache

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras():
    """Keras, imported on first use (TensorFlow takes seconds and ~0.5 GB to import), with
    XLA's persistent compilation cache configured before it (``support.compile_cache``)."""
    if "keras" not in sys.modules:
        compile_cache.configure()
    import keras as _keras

    return _keras


def backend_name() -> str:
    return keras().backend.backend()


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and the backend; on TensorFlow also ask for deterministic kernels.

    Each Keras model calls it at the start of its ``fit`` (the plugin contract: ``fit`` seeds
    its framework; the runner seeds only Python and numpy), so a job seeds Keras once.

    Without op determinism, TF's multithreaded CPU reductions (embedding gradients) sum in a
    varying order and two fits with the same seed drift apart.
    """
    k = keras()
    k.utils.set_random_seed(int(seed))
    if k.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def to_numpy(variable):
    """A Keras variable's current value as a numpy array, on any backend."""
    import numpy as np

    return np.asarray(keras().ops.convert_to_numpy(variable.value))


def sparse_rows(gradient):
    """``(unique row indices, summed gradient rows)`` when ``gradient`` is sparse over rows
    (TensorFlow hands an embedding's gradient over as ``tf.IndexedSlices``, repeated rows and
    all); ``None`` for a dense gradient (every gradient on JAX and PyTorch)."""
    if backend_name() != "tensorflow":
        return None
    import tensorflow as tf

    if not isinstance(gradient, tf.IndexedSlices):
        return None
    index, position = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(index)[0])
    return index, values


def gather_rows(variable, index):
    """Rows ``index`` of a Keras variable (an embedding lookup), read from the variable itself.

    On TensorFlow, ``ops.take(variable, ...)`` (what ``keras.layers.Embedding`` does) first
    reads the whole variable into a tensor that aliases its buffer; while that alias lives, the
    optimizer's row update (``scatter_*``) must copy the whole table first (copy-on-write).
    Measured, 8192-row batches, 64 factors: 1.5 / 11.9 / 72 ms per step for 3k / 325k / 3.25M
    rows through the alias, 1.6 / 2.3 / 2.6 ms with ``tf.gather`` on the variable.
    """
    if backend_name() == "tensorflow":
        import tensorflow as tf

        if not isinstance(variable, tf.Variable):  # a Keras variable: its tf.Variable
            variable = variable.value
        return tf.gather(variable, index)
    return keras().ops.take(variable, index, axis=0)


def row_update(values, index, shape):
    """``values`` for rows ``index`` of a variable of ``shape``, in the form the optimizer's
    ``assign``/``assign_sub`` write row by row (``tf.IndexedSlices`` on TensorFlow)."""
    import tensorflow as tf

    return tf.IndexedSlices(values, index, dense_shape=tf.constant([int(d) for d in shape], dtype=tf.int64))


def compiled_loop_supported() -> bool:
    """Whether :func:`compiled_epoch` runs on this backend (TensorFlow; elsewhere the Keras models
    train through ``keras.Model.fit``)."""
    return backend_name() == "tensorflow"


def compiled(fn):
    """``fn`` as one XLA program (TensorFlow, ``jit_compile=True``)."""
    import tensorflow as tf

    # autograph=False: loops are written with tf.while_loop already; autograph costs trace time.
    return tf.function(fn, jit_compile=True, autograph=False)


def compiled_epoch(step, batch_size: int, n_losses: int):
    """``epoch(state, data, order, first_step) -> (state, summed losses)``: ``step(state, rows,
    step_number) -> (state, losses)`` on each ``batch_size`` slice of ``order`` (rows of
    ``data``), all of them one XLA program (a ``while_loop``), so a step costs no Python dispatch
    and XLA fuses its ops. ``losses``: a vector of ``n_losses``, summed over the steps."""
    import tensorflow as tf

    size = batch_size

    def epoch(state, data, order, first_step):
        def body(s, state, total):
            rows = tf.gather(data, tf.slice(order, [s * size], [size]))
            state, losses = step(state, rows, first_step + s)
            return s + 1, state, total + losses

        steps = tf.shape(order)[0] // size
        _, state, total = tf.while_loop(lambda s, *_: s < steps, body,
                                        (tf.constant(0), state, tf.zeros([n_losses])))
        return state, total

    return compiled(epoch)


def value_and_gradients(fn, variables):
    """``(loss, aux, gradients)`` of ``loss, aux = fn()`` with respect to the tensors
    ``variables``. An embedding table's gradient is ``(row indices, rows)`` (repeated rows and
    all, as the lookup produced them), any other gradient a dense tensor."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(variables)
        loss, aux = fn()
    grads = tape.gradient(loss, variables)
    return loss, aux, [(g.indices, g.values) if isinstance(g, tf.IndexedSlices) else g for g in grads]


def _mix(x):
    """A 32-bit integer hash (``lowbias32``: xor-shift-multiply, full avalanche)."""
    import tensorflow as tf

    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16)) * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15)) * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def hashed_uniform(shape, key):
    """Uniform [0, 1) float32 noise of ``shape`` (static) for the int32 ``key`` (a vector: seed,
    step, call...), from a counter hash: each element ``mix(position + mix(key))``.

    Inside an XLA program this is ~80x cheaper on the CPU than ``tf.random.stateless_uniform``
    (measured, 2 x 8192 x 64 draws in a ``while_loop``: 0.7 ms against 57 ms for Philox, 94 ms
    for the default algorithm), which made dropout most of a compiled step."""
    import tensorflow as tf

    key = tf.bitcast(tf.cast(key, tf.int32), tf.uint32)
    base = tf.constant(0, tf.uint32)
    for i in range(int(key.shape[0])):
        base = _mix(base + key[i] * tf.constant(0x9E3779B9, tf.uint32))
    size = 1
    for d in shape:
        size *= int(d)
    x = _mix(tf.bitcast(tf.range(size, dtype=tf.int32), tf.uint32) + base)
    u = tf.cast(tf.bitwise.right_shift(x, 8), tf.float32) * (1.0 / (1 << 24))
    return tf.reshape(u, [int(d) for d in shape])
