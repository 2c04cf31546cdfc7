"""The built-in peers next to the libraries they reproduce, on the leaderboard's own splits.

    .venv-bench/bin/python benchmarks/peers_check.py [--seeds 3] [--grid]

- ``item-knn-baseline`` against Surprise's ``KNNBaseline`` (item-based, ``pearson_baseline``,
  its defaults, rating scale 1-10), fitted on the split's train ratings with raw ids:
  test RMSE of each, the largest difference between their predictions, fit and predict seconds.
- ``logistic`` against scikit-learn's ``LogisticRegression()`` on one-hot user and anime
  columns, with its defaults and run to convergence (``tol=1e-10``): test AUC and seconds.
  Skipped when scikit-learn is not installed (it is no dependency of the project).
- ``--grid``: seconds for ``item-knn-baseline`` to score every anime for every test user.

Data: mal2016-5k / protocol v1, seeds 0..N-1 (splits cached in ``$ANIMEREC_BENCH_HOME``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from animerec_bench.builtin.datasets import MAL2016_5K
from animerec_bench.builtin.knn_baseline import ItemKNNBaseline
from animerec_bench.builtin.logistic import LogisticRegression
from animerec_bench.data.protocol import get_protocol
from animerec_bench.metrics import auc, rmse


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def knn_row(split) -> dict:
    import pandas as pd
    from surprise import Dataset, KNNBaseline, Reader

    rated, y = split.train.for_task("rating")
    test, yt = split.test.for_task("rating")
    frame = pd.DataFrame({"u": split.user_ids[rated.user], "i": split.anime_ids[rated.item], "r": y.astype(float)})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 10))).build_full_trainset()
    algo = KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False)
    _, their_fit = timed(lambda: algo.fit(trainset))
    theirs, their_predict = timed(lambda: np.array([algo.predict(u, i).est for u, i in
                                                    zip(split.user_ids[test.user], split.anime_ids[test.item])]))
    model, our_fit = timed(lambda: ItemKNNBaseline().fit(split.train, split.valid, tasks=("rating",), seed=split.seed))
    ours, our_predict = timed(lambda: model.predict(test.user, test.item)["rating"])
    return {"ours": rmse(yt, ours), "surprise": rmse(yt, theirs), "max_diff": float(np.abs(ours - theirs).max()),
            "fit": (our_fit, their_fit), "predict": (our_predict, their_predict), "model": model}


def logistic_row(split) -> dict:
    test, yt = split.test.for_task("interaction")
    model, our_fit = timed(lambda: LogisticRegression().fit(split.train, split.valid, tasks=("interaction",),
                                                            seed=split.seed))
    ours, our_predict = timed(lambda: model.predict(test.user, test.item)["interaction"])
    row = {"ours": auc(yt, ours), "fit": our_fit, "predict": our_predict, "iterations": model.epochs_}
    try:
        from sklearn.linear_model import LogisticRegression as SkLogistic
        from sklearn.preprocessing import OneHotEncoder
    except ImportError:
        return row
    labelled, y = split.train.for_task("interaction")
    encoder = OneHotEncoder(handle_unknown="ignore")
    x_train = encoder.fit_transform(np.c_[split.user_ids[labelled.user], split.anime_ids[labelled.item]])
    x_test = encoder.transform(np.c_[split.user_ids[test.user], split.anime_ids[test.item]])
    for key, params in (("sklearn_default", {}), ("sklearn_converged", {"tol": 1e-10, "max_iter": 10000})):
        fitted, seconds = timed(lambda: SkLogistic(**params).fit(x_train, y))  # noqa: B023 - called here
        row[key] = auc(yt, fitted.predict_proba(x_test)[:, 1])
        row[key + "_fit"] = seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--grid", action="store_true", help="also time scoring every anime for every test user")
    args = parser.parse_args()
    protocol = get_protocol("v1")
    for seed in range(args.seeds):
        split = protocol.split(MAL2016_5K, seed)
        k = knn_row(split)
        print(f"seed {seed} item-knn-baseline RMSE {k['ours']:.6f} | Surprise KNNBaseline {k['surprise']:.6f} | "
              f"max |difference| {k['max_diff']:.1e} | fit {k['fit'][0]:.2f} s vs {k['fit'][1]:.2f} s | "
              f"predict {k['predict'][0]:.2f} s vs {k['predict'][1]:.2f} s ({len(split.test)} pairs)", flush=True)
        lr = logistic_row(split)
        sk = (f" | scikit-learn default {lr['sklearn_default']:.5f} ({lr['sklearn_default_fit']:.2f} s), "
              f"converged {lr['sklearn_converged']:.5f} ({lr['sklearn_converged_fit']:.2f} s)"
              if "sklearn_default" in lr else " | scikit-learn not installed")
        print(f"seed {seed} logistic AUC {lr['ours']:.5f} (fit {lr['fit']:.2f} s, {lr['iterations']} Newton "
              f"iterations, predict {lr['predict']:.4f} s){sk}", flush=True)
        if args.grid and seed == 0:
            users = np.unique(split.test.user).astype(np.int32)
            items = np.arange(split.n_items, dtype=np.int32)
            _, seconds = timed(lambda: k["model"].predict(np.repeat(users, len(items)), np.tile(items, len(users))))  # noqa: B023
            print(f"seed 0 item-knn-baseline scores every anime for every test user ({len(users):,} x "
                  f"{len(items):,} = {len(users) * len(items):,} pairs) in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
