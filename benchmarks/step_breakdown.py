"""Where a training step of the study's Keras models goes (issue #26: profile before rewriting).

For mf, nn and hybrid (default setup, TensorFlow unless KERAS_BACKEND says otherwise) on the
synthetic real-scale data (``--scale``), steady-state examples/s of fits that differ in one thing:

- ``default``: LazyAdam, ``steps_per_execution`` 16 (what ``run`` uses);
- ``spe1`` / ``spe128``: 1 or 128 steps per call into the graph (Python dispatch's share);
- ``sgd``: Keras SGD instead of LazyAdam (the optimizer's gathers and scatters of moments);
- ``forward``: ``evaluate`` over the same batches: the forward pass and loss alone (the gather);

with the variants interleaved over ``--rounds`` rounds, so a neighbour's load hits each alike.
Ratios to ``default`` within one run are the figures to read, not the absolute rates.

    .venv/bin/python benchmarks/step_breakdown.py --scale 0.1 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # real_scale, beside this file

from real_scale import real_scale  # noqa: E402

from animerec_bench.builtin import keras_models  # noqa: E402
from animerec_bench.builtin.keras_backend import keras  # noqa: E402

TASKS = {"mf": ("rating",), "nn": ("rating",), "hybrid": ("rating", "interaction")}
VARIANTS = ("default", "spe1", "spe128", "sgd", "forward")


def _variant_class(cls, variant: str):
    """``cls`` with one thing changed: the optimizer or the steps per graph call."""
    body: dict = {}
    if variant == "sgd":
        body["_optimizer"] = lambda self, setup: keras().optimizers.SGD(learning_rate=setup["learning_rate"])
    if variant in ("spe1", "spe128"):
        spe = 1 if variant == "spe1" else 128
        body["_setup"] = lambda self: {**cls._setup(self), "steps_per_execution": spe}
    return type(f"{cls.__name__}_{variant}", (cls,), body)


def measure(name: str, variant: str, train, steps: int, epochs: int) -> float:
    """Steady-state examples/s: the epochs after the first (which traces and compiles)."""
    cls = {c.name: c for c in keras_models.KERAS_MODELS}[name]
    ends: list[float] = []
    model = _variant_class(cls, "default" if variant == "forward" else variant)(
        steps_per_epoch=steps, epochs=epochs, patience=1000)
    model.on_progress = lambda info: ends.append(info["seconds"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train, None, tasks=TASKS[name], seed=0)
    batch = model.setup_["batch_size"]
    if variant != "forward":
        return batch * steps * (len(ends) - 1) / (ends[-1] - ends[0])
    x, y, sw = model._examples(train, TASKS[name])
    x, y = x[:batch * steps], (y[:batch * steps] if not isinstance(y, dict)
                               else {k: v[:batch * steps] for k, v in y.items()})
    sw = None if sw is None else {k: v[:batch * steps] for k, v in sw.items()}
    model.network_.evaluate(x, y, sample_weight=sw, batch_size=batch, verbose=0)  # trace once
    t0 = time.perf_counter()
    model.network_.evaluate(x, y, sample_weight=sw, batch_size=batch, verbose=0)
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=24, help="steps per epoch (default batch: 8192)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", default="mf,nn,hybrid")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    train, _, _ = real_scale(args.scale)
    rates: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for name in args.models.split(","):
            for variant in args.variants.split(","):
                rate = measure(name, variant, train, args.steps, args.epochs)
                rates.setdefault(name, {}).setdefault(variant, []).append(rate)
                print(f"{name} {variant}: {rate:,.0f} examples/s", file=sys.stderr)
    out = {"backend": keras().backend.backend(), "scale": args.scale, "train_pairs": len(train),
           "load_average": os.getloadavg(), "rounds": args.rounds, "models": {}}
    for name, by_variant in rates.items():
        base = float(np.median(by_variant["default"])) if "default" in by_variant else None
        out["models"][name] = {v: {"examples_per_s": float(np.median(r)),
                                   "vs_default": float(np.median(r)) / base if base else None}
                               for v, r in by_variant.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
