"""What the Dense(64) layer of ``nn``/``hybrid`` costs alone (issue #26): the three matrix products of
a training step at batch 8,192 (forward ``x @ w``, weight gradient ``xᵀ @ dy``, input gradient
``dy @ wᵀ``, x: 128 = two 64-factor embeddings), in an XLA ``while_loop`` (``jit_compile``, as
the compiled epoch runs them) and in TensorFlow's graph without XLA, as examples/s and ms a step.
It bounds from below the step of the models that contain the layer: set against their measured
step (``keras_compiled_epoch.py --mode speed``) it says how much of it the layer is.

    .venv/bin/python benchmarks/dense_products.py
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

BATCH, INPUT, HIDDEN, STEPS = 8192, 128, 64, 100


def main() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((BATCH, INPUT), dtype=np.float32))
    dy = tf.constant(rng.standard_normal((BATCH, HIDDEN), dtype=np.float32))
    w0 = tf.constant(rng.standard_normal((INPUT, HIDDEN), dtype=np.float32) * 0.01)

    def loop(w):
        def body(i, w, acc):  # w changes every step, so no product can be hoisted out of the loop
            y = tf.matmul(x, w)
            dw = tf.matmul(x, dy, transpose_a=True)
            dx = tf.matmul(dy, w, transpose_b=True)
            return i + 1, w - 1e-6 * dw, acc + tf.reduce_sum(y) + tf.reduce_sum(dx)
        return tf.while_loop(lambda i, *_: i < STEPS, body, (0, w, 0.0))[1:]

    out = {"batch": BATCH, "input": INPUT, "hidden": HIDDEN, "load_average": os.getloadavg()}
    for name, jit in (("xla", True), ("graph", False)):
        fn = tf.function(loop, jit_compile=jit, autograph=False)
        fn(w0)[0].numpy()  # compile
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            fn(w0)[0].numpy()
            rounds.append(time.perf_counter() - started)
        seconds = float(np.median(rounds)) / STEPS
        out[name] = {"ms_per_step": round(seconds * 1e3, 3), "examples_per_s": round(BATCH / seconds)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
