"""How fast ``recommend`` answers with a saved model, for a 1,000-entry MyAnimeList export.

Each step timed apart (the median of ``--repeats`` runs in this process): ``parse`` (read the
gzipped export), ``load`` (find the saved model, check its files, memory-map it), ``fold_in``
(the list by the protocol's rules, then the model's fold-in), ``rank`` (score every anime, drop
the list, top k), ``explain`` (the why column); ``total`` is :func:`animerec_bench.api.recommendations`
end to end (plugins and metadata included). ``cli`` is the wall time of the whole command in a
fresh process (Python's start and imports included). Fits the model first if it is not saved.

Usage: ``python benchmarks/bench_recommend.py [--model ease] [--entries 1000] [--repeats 5]``
(set ``ANIMEREC_BENCH_HOME`` to keep the fitted model out of your own data home).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mal_export import write_export  # noqa: E402 - the tests' writer of MAL's real format


def make_list(n: int, seed: int = 0) -> list[tuple[int, str, int, int]]:
    """``n`` entries of the embedded data's most-watched anime, statuses and scores as a real list has them."""
    from animerec_bench.builtin.datasets import MAL2016_5K

    frame = MAL2016_5K.frame()
    titles = MAL2016_5K.titles()
    popular = frame.anime_id.value_counts().index[:n].to_numpy()
    rng = np.random.default_rng(seed)
    status = rng.choice([2, 1, 3, 4, 6], size=n, p=[0.6, 0.1, 0.08, 0.07, 0.15])
    score = np.where(rng.random(n) < 0.8, rng.integers(1, 11, n), 0)
    return [(int(a), titles.get(int(a), ""), int(s) if st != 6 else 0, int(st))
            for a, s, st in zip(popular, score, status)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ease")
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from animerec_bench import api
    from animerec_bench.data.mal_list import read_list
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.execution import recommending

    folder = Path(tempfile.mkdtemp(prefix="bench-recommend-"))
    export = write_export(folder / "animelist.xml.gz", make_list(args.entries))
    fitted, fitted_now = api.fit(args.model)  # fits once if not saved yet
    steps: dict[str, list[float]] = {k: [] for k in ("parse", "load", "fold_in", "rank", "explain", "total", "cli")}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        parsed = read_list(export)
        steps["parse"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        found, _ = api.fit(args.model)
        steps["load"].append(time.perf_counter() - t0)
        out = recommending.recommend(found.model, found.anime_ids, found.anime_examples, parsed, get_protocol("v1"),
                                     k=20)
        for step in ("fold_in", "rank", "explain"):
            steps[step].append(out.seconds[step])
        t0 = time.perf_counter()
        api.recommendations(args.model, export, 20)
        steps["total"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "animerec-bench"), "recommend", "-m", args.model,
                               "--list", str(export), "--json"], capture_output=True, text=True, env=dict(os.environ))
        steps["cli"].append(time.perf_counter() - t0)
        assert done.returncode == 0, done.stderr
    report = {"model": args.model, "entries": len(parsed), "fitted_now": fitted_now,
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "median_seconds": {k: round(statistics.median(v), 4) for k, v in steps.items()},
              "max_seconds": {k: round(max(v), 4) for k, v in steps.items()}}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
