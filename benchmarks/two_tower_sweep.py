"""A hand-picked sweep of ``two-tower`` settings on mal2016-5k / v1 / seed 0.

For each setting: fit on the train part (early stopping on its own validation sample), then
NDCG@10 over *all* validation users (the rule ``tune`` scores trials by: train excluded) and
over all test users (the board's rule). Choose by validation; the test column is for the
report only. Settings are read from a JSON list (default: ``SETTINGS`` below); ``--worker i
--of n`` takes every n-th, so several processes can share one GPU. One JSON line per setting
on stdout and appended to ``--out``.

On a GPU (JAX; see ``benchmarks/gpu_jax.py`` for carrying keras)::

    KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false python3 benchmarks/two_tower_sweep.py \\
        --worker 0 --of 4 --out sweep.jsonl --deadline 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root

BASE = {}
SETTINGS = [
    {},
    {"embedding_dim": 256},
    {"epochs": 24, "patience": 4},
    {"batch_size": 4096},
    {"history_size": 64},
    {"temperature": 0.05},
    {"learning_rate": 0.02},
    {"normalize": False, "temperature": 1.0},
    {"embedding_dim": 512},
    {"logq_weight": 0.5},
    {"user_embedding": True},
    {"group_size": 4},
    {"batch_size": 4096, "learning_rate": 0.02},
    {"embedding_dim": 256, "epochs": 24, "patience": 4},
    {"embedding_dim": 256, "batch_size": 4096, "epochs": 24, "patience": 4},
    {"embedding_dim": 512, "batch_size": 4096, "epochs": 24, "patience": 4, "history_size": 64},
    {"epochs": 40, "patience": 6},
    {"history_size": 128},
    {"temperature": 0.07, "embedding_dim": 256},
    {"normalize": False, "temperature": 1.0, "embedding_dim": 256, "epochs": 24, "patience": 4},
    {"batch_size": 8192, "learning_rate": 0.03, "epochs": 24, "patience": 4},
    {"embedding_dim": 256, "history_size": 64, "epochs": 24, "patience": 4},
    {"learning_rate": 0.005, "epochs": 24, "patience": 4},
    {"group_size": 16, "history_size": 64},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", help="a JSON file holding a list of settings (default: the built-in list)")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--of", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="two_tower_sweep.jsonl")
    parser.add_argument("--deadline", type=float, default=float("inf"),
                        help="start no new setting after this many seconds")
    args = parser.parse_args()
    settings = json.load(open(args.settings)) if args.settings else SETTINGS

    from animerec_bench.builtin.datasets import MAL2016_5K
    from animerec_bench.builtin.two_tower import TwoTower
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.evaluation.ranking import RankingData, evaluate

    started = time.perf_counter()
    split = get_protocol("v1").split(MAL2016_5K, args.seed)
    valid, test = RankingData.from_split(split, "valid"), RankingData.from_split(split, "test")
    for i, setting in enumerate(settings):
        if i % args.of != args.worker:
            continue
        if time.perf_counter() - started > args.deadline:
            break
        row = {"setting": setting, "seed": args.seed}
        try:
            model = TwoTower(**{**BASE, **setting}).fit(split.train, split.valid, seed=args.seed)
            row.update(fit_s=round(model.fit_seconds_, 2), epochs=model.epochs_, best_epoch=model.best_epoch_,
                       valid_ndcg10=round(evaluate(valid, model.score, ks=(10,))["ndcg@10"], 4),
                       test_ndcg10=round(evaluate(test, model.score, ks=(10,))["ndcg@10"], 4))
        except Exception as error:  # a setting that fails is a row, not the end of the sweep
            row["error"] = f"{type(error).__name__}: {error}"[:300]
        line = json.dumps(row)
        print(line, flush=True)
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
