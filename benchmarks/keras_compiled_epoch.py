"""The study's Keras models: the compiled epoch against ``keras.Model.fit`` and Surprise SVD (issue #26).

On the real ``mal2016-5k`` split (v1), with the default setup of ``mf``, ``nn`` and ``hybrid``:

- ``--mode speed``: steady-state training examples/s (epochs after the first, which compiles;
  validation left out) of ``fit`` (``keras.Model.fit``, the models' loop before issue #26) and
  ``compiled`` (``_CompiledEpochs``: one XLA program per epoch), next to Surprise SVD's
  examples/s on the same ratings, variants interleaved over ``--rounds`` rounds so that a
  neighbour's load hits each alike; also ``compiled-uniform-mask``, the compiled epoch with
  version 2's dropout masks (one hashed 24-bit uniform per element, ``keras_models.MASK_BITS``
  = 0) instead of version 3's shared hash bits. Read the ratios, not the absolute rates.
- ``--mode quality``: whole fits (early stopping on validation loss, best weights restored) of
  both loops for seeds ``--seeds``: validation RMSE (rating) and AUC (interaction), epochs, seconds.

    .venv/bin/python benchmarks/keras_compiled_epoch.py --mode speed --rounds 3
    .venv/bin/python benchmarks/keras_compiled_epoch.py --mode quality --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from animerec_bench import api
from animerec_bench.builtin import keras_models

TASKS = {"mf": ("rating",), "nn": ("rating",), "hybrid": ("rating", "interaction")}
LOOPS = ("fit", "compiled")
SPEED_LOOPS = (*LOOPS, "compiled-uniform-mask")


def _model(name: str, loop: str, **params):
    """``name``'s model class, training through ``loop`` (``fit``: the compiled epoch switched off)."""
    cls = {c.name: c for c in keras_models.KERAS_MODELS}[name]
    body = {} if loop.startswith("compiled") else {"_compiled_applies": staticmethod(lambda setup, train: False)}
    return type(f"{cls.__name__}_{loop}", (cls,), body)(**params)


def train_rate(name: str, loop: str, train, epochs: int) -> float:
    """Examples/s over the epochs after the first (no validation part: training only)."""
    ends: list[float] = []
    model = _model(name, loop, epochs=epochs, patience=1000)
    model.on_progress = lambda info: ends.append(info["seconds"])
    mask_bits = keras_models.MASK_BITS  # read when the epoch is traced, in this fit
    keras_models.MASK_BITS = 0 if loop == "compiled-uniform-mask" else mask_bits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train, None, tasks=TASKS[name], seed=0)
    finally:
        keras_models.MASK_BITS = mask_bits
    return model.setup_["examples"] * (len(ends) - 1) / (ends[-1] - ends[0])


def surprise_rate(train, epochs: int = 5) -> float:
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    rated, y = train.for_task("rating")
    data = Dataset.load_from_df(pd.DataFrame({"u": rated.user, "i": rated.item, "r": y}),
                                Reader(rating_scale=(1, 10))).build_full_trainset()
    started = time.perf_counter()
    SVD(n_epochs=epochs, random_state=0).fit(data)
    return len(y) * epochs / (time.perf_counter() - started)


def speed(args) -> dict:
    train = api.load_split(seed=0).train
    rates: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        rates.setdefault("surprise-svd", []).append(surprise_rate(train))
        for name in args.models.split(","):
            for loop in SPEED_LOOPS:
                rates.setdefault(f"{name}/{loop}", []).append(train_rate(name, loop, train, args.epochs))
        print({k: f"{v[-1]:,.0f}" for k, v in rates.items()}, os.getloadavg(), file=sys.stderr)
    svd = float(np.median(rates["surprise-svd"]))
    out: dict = {"surprise-svd": {"examples_per_s": svd}}
    for key, values in rates.items():
        if key != "surprise-svd":
            name, loop = key.split("/")
            fit = float(np.median(rates[f"{name}/fit"]))
            out[key] = {"examples_per_s": float(np.median(values)), "vs_surprise_svd": float(np.median(values)) / svd,
                        "vs_fit": float(np.median(values)) / fit, "rounds": [round(v) for v in values],
                        "vs_surprise_svd_rounds": [round(v / s, 3) for v, s in zip(values, rates["surprise-svd"])]}
    return out


def quality(args) -> dict:
    out: dict = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        split = api.load_split(seed=seed)
        for name in args.models.split(","):
            for loop in LOOPS:
                model = _model(name, loop)
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(split.train, split.valid, tasks=TASKS[name], seed=seed)
                seconds = time.perf_counter() - started
                scores = api.evaluate(model, split, tasks=list(TASKS[name]), part="valid")
                row = {"epochs": model.epochs_, "fit_seconds": round(seconds, 2), "load_average": os.getloadavg()[0]}
                row.update({"val_rmse": scores["rating"]["rmse"]} if "rating" in TASKS[name] else {})
                row.update({"val_auc": scores["interaction"]["auc"]} if "interaction" in TASKS[name] else {})
                out.setdefault(f"{name}/{loop}", {})[f"seed{seed}"] = row
                print(name, loop, seed, row, file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("speed", "quality"), default="speed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per speed fit (the first compiles)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--models", default="mf,nn,hybrid")
    args = ap.parse_args()
    load_before = os.getloadavg()
    result = speed(args) if args.mode == "speed" else quality(args)
    print(json.dumps({"mode": args.mode, "dataset": "mal2016-5k/v1", "command": " ".join(sys.argv),
                      "load_average_before": load_before, "load_average_after": os.getloadavg(),
                      "cpus": os.cpu_count(), "results": result}, indent=1))


if __name__ == "__main__":
    main()
