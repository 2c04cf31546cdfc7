"""Timing with ``time.perf_counter``: warm-up excluded, several rounds, pytest-benchmark's names."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

clock = time.perf_counter


def stats(samples: list[float]) -> dict[str, float | int]:
    """``min``, ``max``, ``mean``, ``median``, ``stddev`` (sample, 0 for one round), ``rounds``."""
    if not samples:
        raise ValueError("no samples")
    return {
        "min": min(samples), "max": max(samples), "mean": statistics.fmean(samples),
        "median": statistics.median(samples),
        "stddev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
        "rounds": len(samples),
    }


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] (numpy's default method)."""
    s = sorted(samples)
    if not s:
        raise ValueError("no samples")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def bench(fn: Callable[[], Any], *, rounds: int = 5, warmup: int = 1, min_time: float = 0.2,
          max_rounds: int = 1000, max_seconds: float | None = None) -> tuple[list[float], Any]:
    """Call ``fn`` ``warmup`` times untimed, then time at least ``rounds`` calls.

    Fast calls get more rounds, until ``min_time`` seconds of timed calls (at most
    ``max_rounds``), like pytest-benchmark's calibration; a slow call stops once
    ``max_seconds`` are spent (after one round at least). Returns the timings and the
    warm-up's result (the first timed call's when ``warmup`` is 0).
    """
    result = None
    for _ in range(warmup):
        result = fn()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < max_rounds:
        t0 = clock()
        out = fn()
        dt = clock() - t0
        if result is None:
            result = out
        samples.append(dt)
        spent += dt
        if max_seconds is not None and spent >= max_seconds:
            break
        if len(samples) >= rounds and spent >= min_time:
            break
    return samples, result


#: Parts of a job that are not the harness's own cost: starting the process, loading the
#: split, importing the model's framework, fitting, one ``predict`` over validation and test, and
#: ranking every anime for the test users (the model scoring them, as ``predict`` does for pairs).
MODEL_PARTS = ("process_start_seconds", "load_split_seconds", "framework_import_seconds", "fit_seconds",
               "validate_predict_seconds", "ranking_seconds", "hard_ranking_seconds")


def harness_seconds(timing: dict) -> float | None:
    """What a job spent on the harness itself: ``job_seconds`` less :data:`MODEL_PARTS` and one
    test ``predict`` (its median round). The rest is plugin loading, the extra timed predict
    rounds, the latency sample, metrics, and writing the outcome. ``None`` when a part is missing
    (a failed job)."""
    try:
        own = sum(float(timing.get(k) or 0.0) for k in MODEL_PARTS) + float(timing["predict"]["median"])
        return max(float(timing["job_seconds"]) - own, 0.0)
    except (KeyError, TypeError, ValueError):
        return None
