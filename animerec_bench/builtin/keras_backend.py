"""The few backend-specific details the Keras models need, kept out of the model code.

Everything here imports Keras (and TensorFlow, when it is the backend) lazily, so importing
the plugin modules stays instant.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras():
    """Keras, imported on first use (TensorFlow takes seconds and ~0.5 GB to import)."""
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
