"""Training speed of the built-in Keras models on KERAS_BACKEND=jax at real scale, on one GPU.

Targets (issue #26, ``GOALS``; each row says ``meets_goal``): the study's models (mf, nn, hybrid)
>= 20M training examples/s, ``mf-biased`` >= 50M, on the real data's size
(325k users x 17.5k anime, ~2.3M training ratings; the same synthetic set and protocol v1 task
rules as the CPU benchmarks: ``benchmarks/real_scale.py``). For each of mf, mf-biased, nn,
hybrid: ``epochs`` (3) full passes (``steps_per_epoch=None``), no validation, patience large;
examples/s from the epochs after the first (the first traces and compiles). Each model runs at
``--batch`` (65536) and at its default batch (the Keras models jit-compile their step on JAX:
Keras' JAX trainer would otherwise run it op by op; ``mf-biased`` jits a whole epoch, its
tables donated and updated in place). Then ``mf``'s (numpy) predictions/s on 1M random pairs.
One JSON object on stdout, also ``$OUT/gpu_jax.json``.

Imports only numpy, keras, jax and animerec_bench.{model,synth,builtin.*}
(``animerec_bench/__init__`` imports pluggy; ``without_pluggy.py`` stands in where it is missing).

CPU smoke run here (10x smaller data; no TensorFlow in that venv, jax as on the device)::

    python3.12 -m venv .venv-jax && .venv-jax/bin/pip install jax==0.11.2 jaxlib==0.11.2 keras==3.15.1
    KERAS_BACKEND=jax PYTHONPATH=. .venv-jax/bin/python benchmarks/gpu_jax.py --quick

(``--scale 0.02 --batch 4096`` for a smoke of a minute on a busy 2-core machine; python3.11 and
``pip install 'jax[cpu]' keras==3.15.1 pluggy numpy`` work as well.)

On the nvidia-h200 device (JAX with CUDA is there; keras, namex and optree are not). Once,
here, in the repo root::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \\
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \\
      -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0

then ``run`` with ``carry=[".whl"]``, ``timeout_s=420`` (it should take 1-3 minutes) and::

    set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:. KERAS_BACKEND=jax
      PYTHONUNBUFFERED=1 || exit; nvidia-smi -L; python3 benchmarks/gpu_jax.py 2>&1 | tee $OUT/gpu_jax.log
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root

from without_pluggy import install  # noqa: E402  (benchmarks/, this script's folder)

install()  # animerec_bench/__init__ needs pluggy's markers; a stand-in where pluggy is missing

import jax  # noqa: E402
import keras  # noqa: E402
from real_scale import real_scale  # noqa: E402  (benchmarks/, this script's folder)

from animerec_bench.builtin.biased_mf import BiasedMatrixFactorization  # noqa: E402
from animerec_bench.builtin.keras_models import KERAS_MODELS  # noqa: E402
from animerec_bench.model import Interactions  # noqa: E402

TASKS = {"mf": ("rating",), "mf-biased": ("rating",), "nn": ("rating",), "hybrid": ("rating", "interaction")}
#: Issue #26's goals on one H100/H200, training examples/s: the study's models and mf-biased.
GOALS = {"mf": 20e6, "nn": 20e6, "hybrid": 20e6, "mf-biased": 50e6}


def train_run(cls, train: Interactions, batch: int, epochs: int):
    ends: list[float] = []
    model = cls(batch_size=batch, epochs=epochs, patience=1000, steps_per_epoch=None)
    model.on_progress = lambda info: ends.append(info["seconds"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train, None, tasks=TASKS[cls.name], seed=0)
    examples = model.setup_["examples"]  # one epoch = one full pass
    timed = np.diff(ends).tolist()
    network = getattr(model, "network_", None)  # mf-biased has none: its epoch is one jitted loop
    return {"model": cls.name, "batch_size": batch, "examples_per_epoch": examples,
            "jit_compile": bool(network.jit_compile) if network is not None else True,
            "epochs": len(ends), "steps_per_execution": model.setup_.get("steps_per_execution"),
            "examples_per_s": examples / float(np.mean(timed)) if timed else None,
            "best_examples_per_s": examples / min(timed) if timed else None,
            "first_epoch_s": ends[0], "timed_epochs_s": [round(t, 4) for t in timed],
            "goal_examples_per_s": GOALS[cls.name],
            "meets_goal": bool(timed) and examples / float(np.mean(timed)) >= GOALS[cls.name],
            "fit_wall_s": round(time.perf_counter() - t0, 3),
            "loss": [round(v, 5) for v in model.history_.get("loss", [])]}, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=65536, help="the large batch (default 65536)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", default="mf,mf-biased,nn,hybrid")
    ap.add_argument("--no-default-batch", action="store_true", help="skip each model's default batch")
    ap.add_argument("--quick", action="store_true", help="10x smaller data (a CPU smoke run)")
    ap.add_argument("--scale", type=float, default=None,
                    help="data size as a share of the real tables (overrides --quick; 0.02 for a fast CPU smoke)")
    args = ap.parse_args()
    assert keras.backend.backend() == "jax", f"KERAS_BACKEND is {keras.backend.backend()}, not jax"
    t_start = time.perf_counter()
    scale = args.scale if args.scale is not None else 0.1 if args.quick else 1.0
    train, _, _ = real_scale(scale)
    result = {"keras": keras.__version__, "backend": keras.backend.backend(), "jax": jax.__version__,
              "devices": [str(d) for d in jax.devices()], "quick": args.quick, "scale": scale,
              "users": train.n_users, "anime": train.n_items, "train_pairs": len(train),
              "data_s": round(time.perf_counter() - t_start, 2), "train": [], "predict": None}
    print(f"data: {len(train)} training pairs in {result['data_s']} s; devices {result['devices']}",
          file=sys.stderr)
    classes = {cls.name: cls for cls in (*KERAS_MODELS, BiasedMatrixFactorization)}
    runs = []
    for name in args.models.split(","):
        default = classes[name]().batch_size
        runs += [(name, args.batch)] + ([] if args.no_default_batch or default == args.batch
                                        else [(name, default)])
    fitted_mf = None
    for name, batch in runs:
        try:
            row, model = train_run(classes[name], train, batch, args.epochs)
            if name == "mf" and batch == args.batch:
                fitted_mf = model
        except Exception as exc:  # record and go on: the device run is one shot
            row = {"model": name, "batch_size": batch, "error": repr(exc),
                   "traceback": traceback.format_exc()[-3000:]}
        result["train"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), file=sys.stderr)
    if fitted_mf is not None:
        rng = np.random.default_rng(1)
        n = 1_000_000
        user = rng.integers(0, train.n_users, n).astype(np.int32)
        item = rng.integers(0, train.n_items, n).astype(np.int32)
        fitted_mf.predict(user, item)
        seconds = []
        for _ in range(3):
            t0 = time.perf_counter()
            fitted_mf.predict(user, item)
            seconds.append(time.perf_counter() - t0)
        result["predict"] = {"model": "mf", "pairs": n, "predictions_per_s": n / float(np.median(seconds))}
    result["total_s"] = round(time.perf_counter() - t_start, 2)
    text = json.dumps(result, indent=1)
    print(text)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu_jax.json"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
