"""The harness's own cost: what a real ``animerec-bench run`` job spends beside the model's work.

    .venv-bench/bin/pytest benchmarks/bench_harness.py --benchmark-json=benchmarks/harness.json

One real run (a subprocess, as a user would start it) of the Keras models on mal2016-5k, seed 0,
into a temporary results folder. Each result's ``timing.harness_share`` is the job's time less
process start, split loading, framework import, fit, one predict over validation and test and
the ranking of every anime for the test users (``animerec_bench.support.timing.harness_seconds``),
over the job's time. Goal (issue 5): <= 5 %.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

KERAS_MODELS = ("mf", "mf-biased", "nn", "hybrid")


def test_harness_share_keras_jobs(benchmark, tmp_path):
    results = tmp_path / "results"
    cmd = [str(Path(sys.executable).with_name("animerec-bench")), "run", "-m", *KERAS_MODELS, "--results", str(results)]

    def run():
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)

    benchmark.pedantic(run, rounds=1, iterations=1)
    jobs = []
    for path in sorted(results.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        assert r["status"] == "ok", (path.name, r.get("error"))
        t = r["timing"]
        jobs.append({"model": r["model"]["name"], "tasks": r["tasks"], "job_seconds": t["job_seconds"],
                     "fit_seconds": t["fit_seconds"], "harness_seconds": t["harness_seconds"],
                     "harness_share": t["harness_share"]})
    shares = [j["harness_share"] for j in jobs]
    benchmark.extra_info.update({
        "kind": "harness", "dataset": "mal2016-5k/v1/seed0", "jobs": jobs,
        "harness_share_median": statistics.median(shares), "harness_share_max": max(shares),
        "harness_seconds_median": statistics.median(j["harness_seconds"] for j in jobs),
    })
