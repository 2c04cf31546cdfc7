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
