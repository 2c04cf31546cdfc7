"""Every test session gets its own animerec-bench data home (split caches), never the user's."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ["ANIMEREC_BENCH_HOME"] = tempfile.mkdtemp(prefix="animerec-peers-test-home-")


@pytest.fixture(scope="session")
def mal_split():
    """mal2016-5k / protocol v1 / seed 0: the leaderboard's own split."""
    from animerec_bench.builtin.datasets import MAL2016_5K
    from animerec_bench.data.protocol import get_protocol

    return get_protocol("v1").split(MAL2016_5K, 0)


@pytest.fixture(scope="session")
def with_unknowns():
    """check_model's synthetic split, with every rating of users 0-4 and anime 0-4 taken out of train
    (their pairs stay as interaction examples): in the training vocabulary, unknown to a library fed
    the ratings. Returns (train, pairs): ``pairs`` = every (user, anime) of the vocabulary's first
    40 users x 60 anime, unknown ones included."""
    from animerec_bench.model import Interactions
    from animerec_bench.testing import synthetic_split

    train, _, _ = synthetic_split(0)
    hidden = (train.user < 5) | (train.item < 5)
    train = Interactions(train.user, train.item, np.where(hidden, 0, train.rating).astype(np.float32),
                         np.where(hidden, 1, train.label).astype(np.int8), train.n_users, train.n_items)
    user, item = np.meshgrid(np.arange(40, dtype=np.int32), np.arange(60, dtype=np.int32), indexing="ij")
    return train, (user.ravel(), item.ravel())
