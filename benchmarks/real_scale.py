"""Synthetic interactions at the real data's scale, shared by the CPU and GPU benchmarks.

325k users x 17.5k anime (the 2020 file's tables), long-tailed popularity, protocol v1's task
rules, a seeded 80/10/10 split with no user filter (every user keeps a row in the tables).
Imports numpy and ``animerec_bench.{model,synth}`` only, so it runs where pyarrow is missing.
"""

from __future__ import annotations

import numpy as np

from animerec_bench.data.synth import SynthParams, generate
from animerec_bench.model import Interactions

REAL_USERS, REAL_ANIME, REAL_ROWS = 325_000, 17_500, 5_000_000


def real_scale(scale: float = 1.0) -> tuple[Interactions, Interactions, Interactions]:
    """Train / valid / test; ``scale`` shrinks rows, users and anime alike (0.1 for a smoke run)."""
    users, anime = int(REAL_USERS * scale), int(REAL_ANIME * scale)
    c = generate(SynthParams(rows=int(REAL_ROWS * scale), users=users, anime=anime, seed=0))
    user = c["user_id"].astype(np.int32)
    item = np.searchsorted(c["MAL_ID"], c["anime_id"]).astype(np.int32)
    rating = c["rating"].astype(np.float32)
    status = c["watching_status"]
    label = np.full(len(user), -1, np.int8)
    completed = (status == 2) & (rating > 0)
    label[completed] = rating[completed] > 5
    label[status == 4] = 0
    keep = (rating > 0) | (label >= 0)
    user, item, rating, label = user[keep], item[keep], rating[keep], label[keep]
    draw = np.random.default_rng(0).random(len(user))

    def part(mask):
        return Interactions(user[mask], item[mask], rating[mask], label[mask], users, anime)

    return part(draw < 0.8), part((draw >= 0.8) & (draw < 0.9)), part(draw >= 0.9)
