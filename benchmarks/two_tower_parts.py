"""Where ``two-tower``'s fit time goes on the CPU, set against EASE's fit (issue #26).

The issue asks ``two-tower`` to fit in EASE's time at no loss of NDCG. On mal2016-5k / v1 /
seed 0 this measures, rounds interleaved so that a neighbour's load hits each alike:

- ``ease``: EASE's whole fit (its lambda search included), seconds;
- the steady-state seconds of one ``two-tower`` training epoch (epochs after the first, which
  traces the graph; no validation), for the defaults and with one part taken out: the anime
  features (``features=None``) or the sampled user history (``history_size=0``). The
  differences say what each part costs; 12 epochs is the default budget;
- how much of a step's gathering is repeats: distinct anime among a batch's 1,024 positives and
  among its 8,192 history slots (what gathering each distinct row once could save).

    .venv/bin/python benchmarks/two_tower_parts.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

VARIANTS = {"defaults": ({}, True), "no features": ({}, False), "no history": ({"history_size": 0}, True)}


def epoch_seconds(split, features, params: dict, epochs: int) -> float:
    """Mean seconds of the training epochs after the first (no validation)."""
    from animerec_bench.builtin.two_tower import TwoTower

    ends: list[float] = []
    model = TwoTower(epochs=epochs, patience=epochs, **params)
    model.on_progress = lambda info: ends.append(info["seconds"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(split.train, None, seed=0, features=features)
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def ease_seconds(split) -> float:
    from animerec_bench.builtin.ease import EASE

    started = time.perf_counter()
    EASE().fit(split.train, split.valid, tasks=("ranking",), seed=0)
    return time.perf_counter() - started


def repeats(split) -> dict:
    """Mean distinct anime per batch of the default groups (8 positives + 64 history, 128 groups)."""
    from animerec_bench.builtin import two_tower as tt

    train = split.train.subset(split.train.label == 1)
    starts, items = tt._by_user(train.user, train.item, train.n_users)
    x = tt.make_groups(starts, items, train.n_items, 8, 64, np.random.default_rng(0))
    batches = [x[b:b + 128] for b in range(0, len(x) - 127, 128)]
    return {"positives": int(len(train.item)), "steps_per_epoch": len(batches),
            "distinct_of_1024_positives": round(float(np.mean([len(np.unique(b[:, 1:9])) for b in batches])), 1),
            "distinct_of_8192_history": round(float(np.mean([len(np.unique(b[:, 9:])) for b in batches])), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first traces the graph)")
    args = ap.parse_args()
    from animerec_bench.builtin.datasets import MAL2016_5K
    from animerec_bench.data.features import for_split
    from animerec_bench.data.protocol import get_protocol

    split = get_protocol("v1").split(MAL2016_5K, 0)
    features = for_split(split, MAL2016_5K).head(split.n_fit_items)
    seconds: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        seconds.setdefault("ease fit", []).append(ease_seconds(split))
        for name, (params, with_features) in VARIANTS.items():
            seconds.setdefault(f"two-tower epoch, {name}", []).append(
                epoch_seconds(split, features if with_features else None, params, args.epochs))
        print({k: round(v[-1], 2) for k, v in seconds.items()}, os.getloadavg(), file=sys.stderr)
    median = {k: float(np.median(v)) for k, v in seconds.items()}
    ease = median["ease fit"]
    out = {"command": f"benchmarks/two_tower_parts.py --rounds {args.rounds}", "cpus": os.cpu_count(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "seconds": {k: {"median": round(v, 2), "vs_ease_fit": round(v / ease, 2),
                           "rounds": [round(r, 2) for r in seconds[k]]} for k, v in median.items()},
           "twelve_epochs_vs_ease_fit": round(12 * median["two-tower epoch, defaults"] / ease, 1),
           "batches": repeats(split)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
