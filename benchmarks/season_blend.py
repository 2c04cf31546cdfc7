"""``kernel-tower``'s weight grid on validation *and* test (issue 23): the numbers in its docstring.

Fits ``kernel-tower`` once (``feature-kernel`` and ``two-tower`` at their defaults, train only, as
the board's ``season-v1`` job does), then for each weight of its grid prints NDCG@10 on the
validation ranking (what ``fit`` chooses the weight by) and on the test ranking (what the board
reports). Weight 0 is ``feature-kernel`` alone, 1 ``two-tower`` alone. A few minutes on 2 cores.

    .venv/bin/python benchmarks/season_blend.py [--protocol season-v1] [--seed 0] [--weights 0,0.2,0.35,0.5,0.65,0.8,1]

(Those weights are the docstring's table; the default is the grid ``fit`` chooses from.)
"""

from __future__ import annotations

import argparse
import json

from animerec_bench.api import load_split
from animerec_bench.builtin.kernel_tower import WEIGHT_GRID, KernelTower
from animerec_bench.data.features import for_split
from animerec_bench.evaluation import scoring
from animerec_bench.plugins.registry import load_registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", default="season-v1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", type=lambda text: [float(w) for w in text.split(",")], default=list(WEIGHT_GRID))
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


if __name__ == "__main__":
    main()
