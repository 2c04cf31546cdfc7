"""The ranking evaluation's set-up at scale: bounded memory a pair, the same lists.

A worker ranks every evaluated user over every anime, excluding each user's train, validation
and unscored pairs: at the full 2020 size ~100M excluded pairs, so each int64 copy of them is
0.8 GB. Building :class:`RankingData` took ~49 bytes a pair at its peak (10M rows: +453 MB in a
worker whose split is 130 MB); it now takes ~21 (+164 MB).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from animerec_bench.evaluation.ranking import RankingData
from animerec_bench.model import Interactions

USERS, ITEMS, PER_USER = 20_000, 5_000, 100
#: Peak traced bytes per excluded pair while building RankingData: 48.7 before, 20.6 now.
PEAK_BYTES_PER_PAIR = 28


def _parts(users: int = USERS) -> tuple[Interactions, Interactions, Interactions]:
    """Train (80 pairs a user), test (10, every other one relevant), other (10): distinct pairs."""
    j = np.arange(PER_USER)
    u = np.repeat(np.arange(users, dtype=np.int32), PER_USER)
    item = ((u.astype(np.int64) * 7 + np.tile(j, users) * 13) % ITEMS).astype(np.int32)
    slot = np.tile(j, users)

    def part(mask, label):
        n = int(mask.sum())
        return Interactions(u[mask], item[mask], np.zeros(n, np.float32), label(n), users, ITEMS)

    train = part(slot < 80, lambda n: np.ones(n, np.int8))
    test = part((slot >= 80) & (slot < 90), lambda n: (np.arange(n) % 2).astype(np.int8))
    other = part(slot >= 90, lambda n: np.full(n, -1, np.int8))
    return train, test, other


def test_ranking_data_peaks_under_a_bound_per_excluded_pair():
    train, test, other = _parts()
    tracemalloc.start()
    try:
        data = RankingData.from_parts(train, test, (other,))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    excluded = len(train) + len(other)
    assert data.n_users == USERS and len(data.excluded) == excluded and len(data.relevant) == 5 * USERS
    assert peak / excluded < PEAK_BYTES_PER_PAIR, f"{peak / excluded:.1f} bytes an excluded pair at the peak"


def test_ranking_data_is_what_a_plain_construction_gives():
    """CSR rows by hand (sorted, distinct items per evaluated user) equal the in-place build."""
    train, test, other = _parts(users=300)
    data = RankingData.from_parts(train, test, (other,))
    for r, user in enumerate(data.users):
        rel = np.unique(test.item[(test.user == user) & (test.label == 1)])
        ex = np.unique(np.concatenate([p.item[p.user == user] for p in (train, other)]))
        assert np.array_equal(data.relevant[data.relevant_indptr[r]:data.relevant_indptr[r + 1]], rel)
        assert np.array_equal(data.excluded[data.excluded_indptr[r]:data.excluded_indptr[r + 1]], ex)
    with pytest.raises(ValueError, match="relevant .* also in an excluded part"):
        RankingData.from_parts(train, test, (other, test))
