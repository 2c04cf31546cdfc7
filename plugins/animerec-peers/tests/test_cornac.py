"""cornac-mf and cornac-bpr: conformance, and the same scores as Cornac's own."""

from __future__ import annotations

import numpy as np
from animerec_peers import CornacBPR, CornacMF

from animerec_bench.model import Interactions
from animerec_bench.testing import check_model


def test_cornac_models_conform():
    check_model(CornacMF)
    check_model(CornacMF, use_bias=False, k=4)
    check_model(CornacBPR)
    check_model(CornacBPR, use_bias=False, k=4)


def test_mf_rates_as_cornac_does_unknown_users_and_anime_included(with_unknowns):
    train, (user, item) = with_unknowns
    model = CornacMF().fit(train, None, tasks=("rating",), seed=3)
    assert not model.known_user_[:5].any() and not model.known_item_[:5].any() and model.known_item_[5:].all()
    algo = model.algo_

    def theirs(u, i):  # Cornac's rate: an unknown user is an index Cornac does not know
        return algo.rate(model.users_.get(int(u), algo.total_users + 1), model.items_.get(int(i), algo.total_items + 1))

    ours = model.predict(user, item)["rating"]
    assert np.abs(ours - np.array([theirs(u, i) for u, i in zip(user, item)])).max() < 1e-5  # Cornac: float32
    known = [u for u in range(40) if u in model.users_]
    scores = model.score(np.array(known))
    order = np.array([i for i, _ in sorted(model.items_.items(), key=lambda kv: kv[1])])
    assert np.abs(scores[:, order] - np.stack([algo.score(model.users_[u]) for u in known])).max() < 1e-5


def test_bpr_scores_as_cornac_does_on_train_positives(with_unknowns):
    train, _ = with_unknowns
    # anime 0-4 without a positive and users 0-2 with none: unknown to Cornac, in our vocabulary
    train = Interactions(train.user, train.item, train.rating,
                         np.where((train.item < 5) | (train.user < 3), 0, train.label).astype(np.int8),
                         train.n_users, train.n_items)
    model = CornacBPR(max_iter=100).fit(train, None, tasks=("ranking",), seed=3)
    positives = train.label == 1
    assert model.known_item_.sum() == len(np.unique(train.item[positives]))  # only positives reach Cornac
    algo = model.algo_
    users = np.arange(train.n_users)
    scores = model.score(users)
    order = np.array([i for i, _ in sorted(model.items_.items(), key=lambda kv: kv[1])])
    known = np.array([u for u in users if u in model.users_])
    assert np.abs(scores[known][:, order] - np.stack([algo.score(model.users_[u]) for u in known])).max() < 1e-5
    unknown = ~model.known_item_
    assert unknown[:5].all() and 0 not in model.users_
    # an unknown anime is never recommended before one Cornac knows; an unknown user gets the item biases
    assert (scores[:, unknown].max(1) < scores[:, ~unknown].min(1)).all()
    assert np.array_equal(scores[0, ~unknown], model.item_bias_[~unknown]) and np.ptp(scores[0, ~unknown]) > 0


def test_bpr_ranks_held_out_positives_above_other_anime_on_mal2016_5k(mal_split):
    """Trained on the positives, its scores must put a user's test positives above the rest."""
    from animerec_bench.metrics import auc

    # Cornac's own defaults: a few seconds (the model's, 500 epochs of 128 factors, take a minute)
    model = CornacBPR(k=10, max_iter=100, learning_rate=0.001, lambda_reg=0.01).fit(
        mal_split.train, mal_split.valid, tasks=("ranking",), seed=0)
    test, y = mal_split.test.for_task("interaction")
    users = np.unique(test.user[y == 1])[:300]
    scores = model.score(users)
    aucs = []
    for row, u in zip(scores, users):
        hits = np.zeros(mal_split.n_items, dtype=bool)
        hits[test.item[(test.user == u) & (y == 1)]] = True
        aucs.append(auc(hits.astype(float), row))
    assert np.mean(aucs) > 0.8, np.mean(aucs)  # measured: 0.925
