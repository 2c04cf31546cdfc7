"""Bootstrap draws at many users: made a block at a time, never the whole draws x users matrix.

At the full 2020 size a ranking result has ~300k per-user values; the 1,000 bootstrap draws'
count matrix is then 2.6 GB of float64, which ``_count_blocks`` used to build whole (as a list of
blocks) before the first product. Here the blocks are made small (``BLOCK_CELLS``) so a few MB
show it.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from animerec_bench.evaluation import significance
from animerec_bench.evaluation.significance import PerUser, _draws

USERS, DRAWS = 4_000, 1_000  # 4M cells: 32 MB of counts as a whole matrix


def _per_user(seed: int) -> PerUser:
    rng = np.random.default_rng(seed)
    return PerUser(np.arange(USERS, dtype=np.int64), rng.random(USERS), np.ones(USERS))


def test_large_draw_matrices_are_never_held_whole(monkeypatch):
    monkeypatch.setattr(significance, "BLOCK_CELLS", 1 << 16)  # 64k cells a block: 0.5 MB
    monkeypatch.setattr(significance, "CACHE_CELLS", 1 << 20)  # below USERS x DRAWS: not cached
    monkeypatch.setattr(significance, "_COUNTS", {})
    models = [_per_user(1), _per_user(2)]
    tracemalloc.start()
    try:
        streamed = _draws("ranking", {0: models}, draws=DRAWS)[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while drawing"  # the whole matrix: 32 MiB
    assert not significance._COUNTS
    # the same draws as the cached (whole) path: paired comparisons must not depend on the path
    monkeypatch.setattr(significance, "CACHE_CELLS", 1 << 30)
    kept = _draws("ranking", {0: models}, draws=DRAWS)[0]
    assert significance._COUNTS
    for a, b in zip(streamed, kept):
        assert a.shape == (DRAWS,) and np.array_equal(a, b)
