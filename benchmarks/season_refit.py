"""Why validation and test disagree on ``season-v1`` (issue 23): the test season's predecessors.

``season-v1`` fits every model on the train part only, also for the test ranking, so what users
liked in the validation season (last season) is never seen when the test season (this one) is
ranked, although in use it would be known. Validation's new shows have their franchise
predecessors in train; test's often sit in the validation season. This fits the closed-form
content models once on train (what the board does) and once on train + validation, on one seed,
and prints test NDCG@10 of each, plus validation NDCG@10 of the train fit.

    .venv/bin/python benchmarks/season_refit.py [--protocol season-v1] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

from animerec_bench.api import load_split
from animerec_bench.builtin.content import FeatureKernel, FeatureRidge, GenrePopularity
from animerec_bench.data.features import for_split
from animerec_bench.evaluation import scoring
from animerec_bench.plugins.registry import load_registry

MODELS = ((FeatureKernel, {}), (FeatureKernel, {"popularity_weight": 2.0}), (FeatureRidge, {}), (GenrePopularity, {}))


def ndcg(model, split, part: str) -> float:
    metrics, _ = scoring.evaluate_ranking(model, split, "score", part=part, task="ranking")
    return round(float(metrics["ndcg@10"]), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", default="season-v1")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    split = load_split("mal2016-5k", args.seed, args.protocol)
    features = for_split(split, load_registry(None).dataset("mal2016-5k"))
    fit_parts = {"train": split.train, "train+validation": split.train_with_validation()}  # season-v2's test fit
    rows = []
    for cls, params in MODELS:
        row = {"model": cls.name, "params": params}
        for name, train in fit_parts.items():
            model = cls(**params)
            model.fit(train, None, features=features.head(split.n_fit_items))
            model.set_item_features(features)
            row[f"test, fitted on {name}"] = ndcg(model, split, "test")
            if name == "train":
                row["validation, fitted on train"] = ndcg(model, split, "valid")
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
