"""How fast ``nn``/``hybrid`` can train on this CPU at all, set against Surprise SVD (issue #26).

The issue asks the study's models for >= 1x Surprise SVD's examples/s with the same
architecture. ``nn``'s Dense(64) layer on the two concatenated 64-factor embeddings costs three
matrix products a step (forward ``x @ w``, weight gradient ``xᵀ @ dy``, input gradient ``dy @
wᵀ``): 3 x 2 x 128 x 64 = 49,152 FLOPs an example, where Surprise SVD (100 factors) spends ~1,000
(a dot product and two updates of 100 factors). Measured
in one run, rounds interleaved:

- ``blas``: the three products at batch 8,192 in numpy (OpenBLAS, all cores): the best this
  machine does at these shapes; with the FLOPs above it is a ceiling on ``nn``'s examples/s
  before anything else of the step (gathers, the tables' Adam, dropout, the head, the loss);
- ``xla``: the same products in an XLA ``while_loop``, as the compiled epoch runs them (each
  step's ``dy`` depends on the last step, so XLA cannot hoist a product out of the loop);
- ``surprise-svd``, ``mf``, ``nn``: steady-state training examples/s (``keras_compiled_epoch``).

If ``blas`` is below ``surprise-svd``, no float32 step of ``nn`` (or ``hybrid``: the same layer,
two heads) can reach 1x on this machine: the products alone take longer than Surprise's epoch.

    .venv/bin/python benchmarks/nn_ceiling.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # keras_compiled_epoch, beside this file

import numpy as np  # noqa: E402

BATCH, INPUT, HIDDEN, STEPS = 8192, 128, 64, 100
FLOPS_PER_EXAMPLE = 3 * 2 * INPUT * HIDDEN


def _operands():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((BATCH, INPUT), dtype=np.float32), rng.standard_normal((BATCH, HIDDEN), dtype=np.float32),
            rng.standard_normal((INPUT, HIDDEN), dtype=np.float32) * 0.01)


def blas_rate(repeats: int = 200) -> float:
    """Examples/s of the three products in numpy, best of 3 timings of ``repeats`` steps."""
    x, dy, w = _operands()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            x @ w, x.T @ dy, dy @ w.T
        best = min(best, (time.perf_counter() - started) / repeats)
    return BATCH / best


def xla_program():
    """A compiled function running ``STEPS`` steps of the three products (compiled on first call)."""
    import tensorflow as tf

    x, dy0, w0 = (tf.constant(a) for a in _operands())

    def body(i, w, acc):
        dy = dy0 * (1.0 + 1e-9 * acc)  # depends on the last step: no product is loop-invariant
        y = tf.matmul(x, w)
        dw = tf.matmul(x, dy, transpose_a=True)
        dx = tf.matmul(dy, w, transpose_b=True)
        return i + 1, w - 1e-6 * dw, acc + 1e-6 * (tf.reduce_sum(y) + tf.reduce_sum(dx))

    fn = tf.function(lambda w: tf.while_loop(lambda i, *_: i < STEPS, body, (0, w, 0.0))[1:],
                     jit_compile=True, autograph=False)
    fn(w0)[0].numpy()
    return lambda: fn(w0)[0].numpy()


def xla_rate(program) -> float:
    started = time.perf_counter()
    program()
    return BATCH * STEPS / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per model fit (the first compiles)")
    args = ap.parse_args()
    from keras_compiled_epoch import surprise_rate, train_rate

    from animerec_bench import api

    train = api.load_split(seed=0).train
    program = xla_program()
    rates: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, measure in (("blas", blas_rate), ("xla", lambda: xla_rate(program)),
                              ("surprise-svd", lambda: surprise_rate(train)),
                              ("mf", lambda: train_rate("mf", "compiled", train, args.epochs)),
                              ("nn", lambda: train_rate("nn", "compiled", train, args.epochs))):
            rates.setdefault(name, []).append(measure())
        print({k: f"{v[-1]:,.0f}" for k, v in rates.items()}, os.getloadavg(), file=sys.stderr)
    median = {k: float(np.median(v)) for k, v in rates.items()}
    svd = median["surprise-svd"]
    out = {"command": "benchmarks/nn_ceiling.py --rounds %d" % args.rounds, "cpus": os.cpu_count(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "flops_per_example": FLOPS_PER_EXAMPLE, "blas_gflops": median["blas"] * FLOPS_PER_EXAMPLE / 1e9,
           "rates": {k: {"examples_per_s": round(v), "vs_surprise_svd": round(v / svd, 3),
                         "rounds": [round(r) for r in rates[k]]} for k, v in median.items()}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
