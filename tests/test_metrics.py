"""Metrics and timing statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from animerec_bench import metrics, tasks
from animerec_bench.support import timing


def test_rating_metrics_by_hand():
    y = [1, 5, 10, 7]
    p = [2, 5, 8, 7]  # errors 1, 0, 2, 0
    assert metrics.mse(y, p) == pytest.approx(5 / 4)
    assert metrics.rmse(y, p) == pytest.approx(math.sqrt(5 / 4))
    assert metrics.mae(y, p) == pytest.approx(3 / 4)
    # scored ratings are clipped to 1-10: 0 -> 1 and 12 -> 10
    got = tasks.RATING.score([1, 10], [0, 12])
    assert got == {"rmse": 0.0, "mae": 0.0, "mse": 0.0}
    assert tasks.RATING.val_loss([1, 10], [0, 11]) == 0.0


def test_log_loss_by_hand_and_clipped():
    assert metrics.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert math.isfinite(metrics.log_loss([1, 0], [0.0, 1.0]))  # clipped, not inf
    assert tasks.INTERACTION.val_loss([1], [0.5]) == pytest.approx(math.log(2))


def test_auc_by_hand_with_ties():
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # pos {0.5, 0.9} vs neg {0.5, 0.2}: 0.5 (tie) + 1 + 1 + 1 over 4 pairs
    assert metrics.auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert metrics.auc([1, 0, 1, 0], [0.7] * 4) == pytest.approx(0.5)
    assert math.isnan(metrics.auc([1, 1], [0.2, 0.3]))


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = rng.integers(0, 20, 300) / 20  # many ties
    pos, neg = p[y == 1], p[y == 0]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert metrics.auc(y, p) == pytest.approx(brute, abs=1e-12)


def test_threshold_metrics_by_hand():
    y = [1, 1, 1, 0, 0]
    p = [0.9, 0.5, 0.2, 0.6, 0.1]  # 0.5 counts as positive: tp 2, fn 1, fp 1, tn 1
    assert metrics.accuracy(y, p) == pytest.approx(3 / 5)
    assert metrics.precision(y, p) == pytest.approx(2 / 3)
    assert metrics.recall(y, p) == pytest.approx(2 / 3)
    assert metrics.precision([1, 0], [0.1, 0.2]) == 0.0  # nothing predicted positive
    assert set(tasks.INTERACTION.score(y, p, user=[0, 0, 1, 1, 1])) == set(tasks.INTERACTION.metrics)


def test_timing_stats_use_pytest_benchmark_names():
    s = timing.stats([3.0, 1.0, 2.0, 4.0])
    assert s == {"min": 1.0, "max": 4.0, "mean": 2.5, "median": 2.5,
                 "stddev": pytest.approx(np.std([1, 2, 3, 4], ddof=1)), "rounds": 4}
    assert timing.stats([2.0])["stddev"] == 0.0
    assert timing.percentile([1, 2, 3, 4, 5], 50) == 3
    assert timing.percentile(list(range(101)), 95) == pytest.approx(95)
    assert timing.percentile([10, 20], 95) == pytest.approx(np.percentile([10, 20], 95))


def test_bench_excludes_warmup_and_calibrates_rounds():
    calls = []
    samples, first = timing.bench(lambda: calls.append(1) or len(calls), rounds=3, warmup=1, min_time=0.0)
    assert first == 1 and len(samples) == 3 and len(calls) == 4
    samples, _ = timing.bench(lambda: None, rounds=5, min_time=0.01, max_rounds=10**6)
    assert len(samples) > 5  # fast calls get more rounds
