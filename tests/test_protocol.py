"""Protocol v1: the example rules, the user filter and the split, on tiny hand-made tables and the real data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from animerec_bench.data.protocol import ProtocolV1, Split, get_protocol
from animerec_bench.dataset import CANONICAL_SCHEMA, Dataset

# Pinned: mal2016-5k / v1 / seed 0. Changes only if the data, the protocol or the split code changes.
MAL2016_5K_V1_SEED0 = "43daa332fb6de0191a75a891b711291cb7ca9f774eec7ed187b0b5a135169c1b"


def _dataset(tmp_path, rows, name="tiny") -> Dataset:
    user, anime, rating, status = (list(c) for c in zip(*rows))
    table = pa.table({"user_id": user, "anime_id": anime, "rating": rating, "status": status}).cast(CANONICAL_SCHEMA)
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    return Dataset(name=name, source="test", licence="test", path=path)


def test_example_rules_follow_v1(tmp_path):
    # user 1: completed 8 (+), completed 3 (-), dropped unscored (-), completed unscored (left out),
    #         watching 9 (rating only), plan-to-watch unscored (left out)
    rows = [(1, 10, 8, 2), (1, 11, 3, 2), (1, 12, 0, 4), (1, 13, 0, 2), (1, 14, 9, 1), (1, 15, 0, 6),
            (1, 16, 6, 4)]
    ex = ProtocolV1(min_user_examples=1).examples(_dataset(tmp_path, rows).table())
    got = {int(a): (float(r), int(lab)) for a, r, lab in zip(ex["anime_id"], ex["rating"], ex["label"])}
    assert got == {10: (8.0, 1), 11: (3.0, 0), 12: (0.0, 0), 14: (9.0, -1), 16: (6.0, 0)}


def test_users_with_fewer_than_five_example_pairs_are_removed(tmp_path):
    rows = [(1, a, 7, 2) for a in range(5)] + [(2, a, 7, 2) for a in range(4)] + [(2, 99, 0, 6)]
    ex = ProtocolV1().examples(_dataset(tmp_path, rows).table())
    assert set(ex["user_id"].tolist()) == {1}


def test_split_is_pair_level_and_vocabulary_comes_from_train(embedded_split: Split):
    s = embedded_split
    assert s.train.n_users == s.n_users and s.test.n_items == s.n_items
    for part in (s.train, s.valid, s.test):
        assert part.user.max() < s.n_users and part.item.max() < s.n_items
    # Every user and anime in the vocabulary has at least one training pair.
    assert len(np.unique(s.train.user)) == s.n_users
    assert len(np.unique(s.train.item)) == s.n_items
    # No pair appears in two parts.
    keys = [set((s.train.user.astype(np.int64) * s.n_items + s.train.item).tolist())]
    for part in (s.valid, s.test):
        keys.append(set((part.user.astype(np.int64) * s.n_items + part.item).tolist()))
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    total = sum(s.stats[p]["pairs"] for p in ("train", "valid", "test"))
    assert abs(s.stats["train"]["pairs"] / total - 0.8) < 0.001
    # Cold pairs are counted, not scored.
    assert s.stats["test"]["cold_pairs"] == s.stats["test"]["pairs"] - len(s.test)
    assert s.stats["test"]["cold_pairs"] > 0


def test_split_fingerprint_is_pinned(embedded_split):
    assert embedded_split.fingerprint == MAL2016_5K_V1_SEED0


def test_split_cache_round_trips_and_seed_changes_the_split(embedded, embedded_split):
    again = get_protocol("v1").split(embedded, 0)  # from the on-disk cache
    assert again.fingerprint == embedded_split.fingerprint
    assert np.array_equal(again.test.user, embedded_split.test.user)
    other = get_protocol("v1").split(embedded, 1, cache=False)
    assert other.fingerprint != embedded_split.fingerprint


def test_damaged_cache_is_rebuilt(fresh_home, embedded):
    split = get_protocol("v1").split(embedded, 3)
    cached = next((fresh_home / "splits").glob("*.npz"))
    cached.write_bytes(cached.read_bytes()[:1000])
    assert get_protocol("v1").split(embedded, 3).fingerprint == split.fingerprint


def test_unknown_protocol_is_a_user_error():
    from animerec_bench.errors import UserError
    with pytest.raises(UserError, match="unknown protocol 'v9'"):
        get_protocol("v9")
