"""``kernel-tower``'s weight grid on validation *and* test (issue 23): the numbers in its docstring.

Fits ``kernel-tower`` once (``feature-kernel`` and ``two-tower`` at their defaults, train only, as
the board's ``season-v1`` job does), then for each weight of its grid prints NDCG@10 on the
validation ranking (what ``fit`` chooses the weight by) and on the test ranking (what the board
reports). Weight 0 is ``feature-kernel`` alone, 1 ``two-tower`` alone. A few minutes on 2 cores.

    .venv/bin/python benchmarks/season_blend.py [--protocol season-v1] [--seed 0] [--weights 0,0.2,0.35,0.5,0.65,0.8,1]

(Those weights are the docstring's table; the default is the grid ``fit`` chooses from.)

``--time-choice N`` then times, in N alternating rounds on the fitted model, ``fit``'s choice of
the weight (both models scored once, each weight only blends them) against version 1's loop (both
models scored again for each of the 11 weights), and checks that the two give the same NDCG@10
for every weight, bit for bit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import numpy as np

from animerec_bench.api import load_split
from animerec_bench.builtin.kernel_tower import WEIGHT_GRID, KernelTower
from animerec_bench.data.features import for_split
from animerec_bench.evaluation import scoring
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.plugins.registry import load_registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", default="season-v1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", type=lambda text: [float(w) for w in text.split(",")], default=list(WEIGHT_GRID))
    ap.add_argument("--time-choice", type=int, default=0, metavar="ROUNDS")
    args = ap.parse_args()
    split = load_split("mal2016-5k", args.seed, args.protocol)
    features = for_split(split, load_registry(None).dataset("mal2016-5k"))
    model = KernelTower().fit(split.train, split.valid_for_fit(), seed=args.seed,
                              features=features.head(split.n_fit_items))
    chosen = model.weight_
    model.set_item_features(features)
    for weight in args.weights:
        model.weight_ = weight
        row = {"weight": weight, "chosen": weight == chosen}
        for part in ("valid", "test"):
            metrics, _ = scoring.evaluate_ranking(model, split, "score", part=part, task="ranking")
            row[part] = round(float(metrics["ndcg@10"]), 4)
        print(json.dumps(row), flush=True)
    if args.time_choice:
        time_weight_choice(model, split, features.head(split.n_fit_items), args.time_choice)


def rescored_each_weight(model: KernelTower, split, fit_features) -> list[float]:
    """Version 1's choice: ``evaluate`` over ``model.score`` for each weight of the grid."""
    train, valid = split.train, split.valid_for_fit()
    data = dataclasses.replace(RankingData.validation(train, valid),
                               candidates=(int(train.item.max()) + 1, fit_features.n_items))
    model.set_item_features(fit_features)

    def score(user):
        scores = model.score(user)
        return np.pad(scores, ((0, 0), (0, data.n_items - scores.shape[1])), constant_values=-np.inf)
    ndcg = []
    for weight in WEIGHT_GRID:
        model.weight_ = weight
        ndcg.append(evaluate(data, score, ks=(10,))["ndcg@10"])
    return ndcg


def time_weight_choice(model: KernelTower, split, fit_features, rounds: int) -> None:
    seconds: dict[str, list[float]] = {"scored once": [], "rescored each weight": []}
    for _ in range(rounds):
        started = time.perf_counter()
        model._choose_weight(split.train, split.valid_for_fit(), fit_features, started)
        seconds["scored once"].append(time.perf_counter() - started)
        started = time.perf_counter()
        old = rescored_each_weight(model, split, fit_features)
        seconds["rescored each weight"].append(time.perf_counter() - started)
        if old != model.history_["val_ndcg@10"]:
            raise SystemExit(f"the two choices differ: {old} vs {model.history_['val_ndcg@10']}")
    medians = {name: round(statistics.median(s), 3) for name, s in seconds.items()}
    print(json.dumps({"choice_seconds": seconds, "medians": medians, "same_ndcg_bits": True,
                      "ratio": round(medians["rescored each weight"] / medians["scored once"], 2)}), flush=True)


if __name__ == "__main__":
    main()
