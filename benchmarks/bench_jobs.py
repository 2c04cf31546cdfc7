"""Wall time of a whole ``animerec-bench run`` at ``--jobs 1`` and ``--jobs N``, and the efficiency.

    .venv/bin/python benchmarks/bench_jobs.py --all --seeds 3 --jobs 2
    .venv/bin/python benchmarks/bench_jobs.py -m bias global-mean popularity always-positive logistic --seeds 3

Each setting is a real ``animerec-bench run`` subprocess (as a user would start it) into its own
temporary results folder and data home; the splits are made once beforehand (a first, untimed
run of one seed per seed list warms the cache), so both settings time the jobs alone.
Efficiency = (wall at --jobs 1) / (wall at --jobs N) / N: 1.0 is a perfect N-fold speed-up.
It also checks that both settings produced the same primary metrics (they must: the allotment
changes timings, never results). Prints one JSON object; ``--json PATH`` writes it too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from animerec_bench.results.store import load_all

BIN = Path(sys.executable).with_name("animerec-bench")


def run_once(selection: list[str], seeds: int, jobs: int, home: Path, timeout: float,
             keep: Path | None = None) -> dict:
    """One ``run`` at ``--jobs jobs``: wall seconds and each job's primary metric and fit time
    (its result files copied to ``keep`` when given)."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        results = Path(tmp) / "results"
        cmd = [str(BIN), "run", *selection, "--seeds", str(seeds), "--jobs", str(jobs), "--results", str(results)]
        env = {**os.environ, "ANIMEREC_BENCH_HOME": str(home)}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        if keep is not None:
            shutil.copytree(results, keep, dirs_exist_ok=True)
        jobs_out = {}
        for r in load_all(results):
            key = f"{r['model']['name']}[{'+'.join(r['tasks'])}] seed {r['split']['seed']}"
            jobs_out[key] = {"metrics": {t: v for t, v in r["metrics"].items()},
                             "fit_seconds": r["timing"].get("fit_seconds"),
                             "job_seconds": r["timing"].get("job_seconds"),
                             "cores": r["machine"].get("allotted_cores")}
    return {"jobs": jobs, "wall_seconds": wall, "n_results": len(jobs_out), "results": jobs_out}


def _largest_difference(a: dict, b: dict | None) -> list | None:
    """``[task.metric, difference]`` of the metric that differs most between two jobs' metrics
    (None when the job is missing from one setting). A Keras model whose layers reduce over
    threads (``nn``, ``hybrid``: TensorFlow's matmul) differs in the last digits between a whole
    machine and a 1-core allotment; the size says whether that is rounding or a bug."""
    if b is None:
        return None
    diffs = [(f"{task}.{name}", b[task][name] - value) for task, values in a.items() for name, value in values.items()
             if isinstance(value, (int, float)) and isinstance(b.get(task, {}).get(name), (int, float))]
    name, diff = max(diffs, key=lambda d: abs(d[1]), default=(None, 0.0))
    return [name, float(f"{diff:.3g}")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", dest="models", nargs="+", default=None, help="models (default: --all)")
    ap.add_argument("--all", action="store_true", help="every registered model (the default without -m)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="the parallel setting compared with --jobs 1")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds each whole run may take")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    ap.add_argument("--keep", type=Path, default=None,
                    help="copy the --jobs 1 run's result files here (e.g. to publish them: they are a real run)")
    args = ap.parse_args(argv)
    selection = ["-m", *args.models] if args.models else ["--all"]
    with tempfile.TemporaryDirectory(prefix="bench-jobs-home-") as home:
        home = Path(home)
        # warm the split cache (untimed), so neither setting pays for making the splits
        subprocess.run([str(BIN), "run", "-m", "global-mean", "--seeds", str(args.seeds), "--results",
                        str(home / "warm")], check=True, capture_output=True, env={**os.environ,
                                                                                   "ANIMEREC_BENCH_HOME": str(home)})
        serial = run_once(selection, args.seeds, 1, home, args.timeout, keep=args.keep)
        parallel = run_once(selection, args.seeds, args.jobs, home, args.timeout)
    same = {k: serial["results"][k]["metrics"] == parallel["results"].get(k, {}).get("metrics")
            for k in serial["results"]}
    largest = {k: _largest_difference(serial["results"][k]["metrics"], parallel["results"].get(k, {}).get("metrics"))
               for k, ok in same.items() if not ok}
    speedup = serial["wall_seconds"] / parallel["wall_seconds"]
    report = {
        "selection": selection, "seeds": args.seeds, "usable_cores": len(os.sched_getaffinity(0)),
        "jobs_1_wall_seconds": round(serial["wall_seconds"], 2),
        f"jobs_{args.jobs}_wall_seconds": round(parallel["wall_seconds"], 2),
        "speedup": round(speedup, 3), "efficiency": round(speedup / args.jobs, 3),
        "n_jobs_run": serial["n_results"], "same_metrics": all(same.values()),
        "different_metrics": sorted(k for k, ok in same.items() if not ok),
        # per job: the metric that moved most between the two settings, and by how much
        "largest_differences": dict(sorted(largest.items())),
        "fit_seconds_sum": {"jobs_1": round(sum(v["fit_seconds"] or 0 for v in serial["results"].values()), 2),
                            f"jobs_{args.jobs}": round(sum(v["fit_seconds"] or 0
                                                           for v in parallel["results"].values()), 2)},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0 if report["same_metrics"] else 1


if __name__ == "__main__":
    sys.exit(main())
