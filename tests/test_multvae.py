"""multvae: real Keras training on a small synthetic split ranks better than popularity, keeps the
best validation epoch, reproduces with its seed, folds in a training user exactly, and refuses
nonsense settings in one line."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin.multvae import MultVAE
from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import History
from animerec_bench.testing import check_model, synthetic_split

pytest.importorskip("keras")

#: A small network: the synthetic split has 300 users and 200 anime, and a 3-dimensional taste.
SMALL = {"hidden": 64, "latent": 16, "batch_size": 64}


def taste_groups(seed: int = 0, n_users: int = 240, n_items: int = 120, groups: int = 4):
    """Train, valid, test of users in ``groups`` taste groups: each likes 12 of their group's anime
    and 2 others; 2 liked anime a user held out for validation, 2 for test. Every anime is about
    as popular as any other, so popularity ranks no better than chance and the groups are the
    whole signal."""
    from animerec_bench.model import Interactions

    rng = np.random.default_rng(seed)
    block = n_items // groups
    parts: list[list[tuple[int, int]]] = [[], [], []]
    for u in range(n_users):
        own = np.arange(block) + (u % groups) * block
        liked = np.concatenate([rng.choice(own, 12, replace=False),
                                rng.choice(np.setdiff1d(np.arange(n_items), own), 2, replace=False)])
        liked = rng.permutation(liked)
        for part, chosen in zip(parts, (liked[4:], liked[:2], liked[2:4])):
            part.extend((u, int(i)) for i in chosen)

    def interactions(pairs):
        user, item = (np.array(c, dtype=np.int32) for c in zip(*pairs))
        return Interactions(user, item, np.zeros(len(user), np.float32), np.ones(len(user), np.int8), n_users, n_items)

    return tuple(interactions(p) for p in parts)


def test_it_learns_the_taste_groups_and_keeps_the_best_validation_epoch():
    train, valid, test = taste_groups()
    model = MultVAE(**SMALL, epochs=10, patience=10, anneal_epochs=3, learning_rate=3e-3)
    seen = []
    model.on_progress = seen.append
    model.fit(train, valid, tasks=("ranking",), seed=0)
    history = model.history_["val_ndcg@10"]
    assert len(history) == 10 and [s["epoch"] for s in seen] == list(range(1, 11))
    assert model.best_epoch_ == int(np.argmax(history)) + 1
    assert max(history) > history[0]  # training improves the ranking
    kept = evaluate(RankingData.validation(train, valid), model.score, ks=(10,))["ndcg@10"]
    assert kept == pytest.approx(max(history), abs=1e-9)
    data = RankingData.from_parts(train, test, (valid,))
    counts = np.bincount(train.item, minlength=train.n_items).astype(np.float32)
    popular = evaluate(data, lambda u: np.tile(counts, (len(u), 1)), ks=(10,))["ndcg@10"]
    ours = evaluate(data, model.score, ks=(10,))["ndcg@10"]
    assert ours > popular + 0.1, (ours, popular)


def test_conforms():
    # Also: two fits with the same seed score the same to 1e-6 (check_model's determinism check).
    check_model(MultVAE, **SMALL, epochs=2)


def test_the_seed_reaches_the_network():
    # (the same seed giving the same scores is check_model's determinism check above)
    train, _, _ = synthetic_split(seed=1)
    users = np.arange(train.n_users)
    first, other = (MultVAE(**SMALL, epochs=1).fit(train, None, tasks=("ranking",), seed=s).score(users)
                    for s in (0, 1))
    assert np.abs(other - first).max() > 1e-3


def test_fold_in_of_a_training_user_gives_the_fitted_scores_and_anime_without_positives_rank_last():
    train, _, _ = synthetic_split(seed=1)
    without = train.item[train.label == 1][0]  # make one anime have no train positive
    keep = ~((train.item == without) & (train.label == 1))
    train = train.subset(keep)
    model = MultVAE(**SMALL, epochs=2).fit(train, None, tasks=("ranking",), seed=0)
    users = np.unique(train.user)[:20]
    own = model.score(users)
    folded = np.vstack([model.score(model.fold_in(History.of_user(train, int(u)))) for u in users])
    # The same float32 products for one row or a block of rows: equal to float32 rounding.
    np.testing.assert_allclose(folded, own, rtol=0, atol=1e-5)
    assert without not in model.active_
    assert np.all(own[:, without] < own[:, model.active_].min(axis=1))


@pytest.mark.parametrize("params, message", [
    ({"dropout": 1.0}, "dropout must be >= 0 and < 1, got 1.0"),
    ({"latent": 0}, "latent must be >= 1, got 0"),
    ({"beta": -0.1}, "beta must be >= 0, got -0.1"),
    ({"learning_rate": 0}, "learning_rate must be > 0, got 0"),
])
def test_nonsense_settings_are_refused_in_one_line(params, message):
    with pytest.raises(ValueError) as caught:
        MultVAE.validate_params({**MultVAE.param_defaults(), **params})
    assert str(caught.value) == message
