"""Ranking evaluation (issue 11): metrics by hand, the tie rule, the candidate rules, chunking,
the split's ``other`` part that carries the unknown-relevance pairs, and per-user AUC."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from animerec_bench import metrics
from animerec_bench.evaluation.ranking import (
    RankingData,
    evaluate,
    popularity_percentiles,
    scores_from_predictions,
    top_k,
    top_lists,
    user_chunks,
)
from animerec_bench.model import Interactions, PredictionError
from animerec_bench.testing import synthetic_split

from .conftest import FIXTURES

N_ITEMS = 6


def _part(pairs, n_users=3, n_items=N_ITEMS) -> Interactions:
    """Interactions from (user, item, label) triples; rating 7 where labelled, 0 for label -1."""
    user, item, label = (np.array(c) for c in zip(*pairs)) if pairs else (np.zeros(0),) * 3
    label = label.astype(np.int8)
    return Interactions(user.astype(np.int32), item.astype(np.int32),
                        np.where(label >= 0, 7.0, 0.0).astype(np.float32), label, n_users, n_items)


@pytest.fixture
def tiny() -> RankingData:
    # train: user 0 has anime 5; user 1 anime 0; user 2 anime 0, 1 and 5 (counts [2, 1, 0, 0, 0, 2])
    train = _part([(0, 5, 1), (1, 0, 1), (2, 0, 1), (2, 1, 0), (2, 5, 1)])
    # test: user 0 likes 0 and 2, dropped 3 (label 0: stays a candidate); user 1 likes 4;
    # user 2 has only a label-0 pair: not evaluated
    test = _part([(0, 0, 1), (0, 2, 1), (0, 3, 0), (1, 4, 1), (2, 3, 0)])
    # other: user 0's anime 1 is an example of neither task (e.g. plan to watch): never a candidate
    other = _part([(0, 1, -1)])
    return RankingData.from_parts(train, test, (_part([]), other))


#: Scores per user; higher = recommend first. Excluded anime get high scores on purpose.
SCORES = np.array([[0.9, 0.8, 0.1, 0.7, 0.3, 0.95],   # user 0: candidates 0, 3, 4, 2 in this order
                   [0.5, 0.6, 0.2, 0.9, 0.8, 0.1],    # user 1: candidates 3, 4, 1, 2, 5
                   [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])


def _table(users):
    return SCORES[users].copy()


def test_candidates_follow_the_protocol(tiny):
    assert tiny.users.tolist() == [0, 1] and tiny.n_users == 2  # user 2 has no relevant test pair
    lists = top_lists(tiny, _table, k=6)
    # user 0: train anime 5 and the neither-task anime 1 are never listed; the label-0 test anime 3 is
    assert lists[0].tolist() == [0, 3, 4, 2, -1, -1]
    assert lists[1].tolist() == [3, 4, 1, 2, 5, -1]


def test_metrics_by_hand(tiny):
    got = evaluate(tiny, _table, ks=(1, 4))
    # user 0: list 0, 3, 4, 2, relevant {0, 2}: hits at ranks 1 and 4
    #   @1: DCG 1, ideal DCG over min(2, 1) = 1 hit: 1 -> ndcg 1; recall 1/2; hit 1; mrr 1; AP 1/min(2, 1) = 1
    #   @4: DCG 1 + 1/log2(5), ideal 1 + 1/log2(3) -> ndcg 0.877215; recall 2/2; hit 1; mrr 1;
    #       AP (P@1 + P@4) / min(2, 4) = (1 + 2/4) / 2 = 0.75
    # user 1: list 3, 4, 1, 2, relevant {4}: hit at rank 2
    #   @1: all 0. @4: ndcg 1/log2(3) = 0.630930 (ideal 1); recall 1; hit 1; mrr 1/2; AP (1/2) / 1
    ndcg4_user0 = (1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    want = {
        "ndcg@1": (1 + 0) / 2, "recall@1": (0.5 + 0) / 2, "hit_rate@1": 0.5, "mrr@1": 0.5, "map@1": 0.5,
        "ndcg@4": (ndcg4_user0 + 1 / math.log2(3)) / 2, "recall@4": 1.0, "hit_rate@4": 1.0,
        "mrr@4": (1 + 0.5) / 2, "map@4": (0.75 + 0.5) / 2,
        # top-1 lists: anime 0 and 3 of 6
        "coverage@1": 2 / 6,
        # train counts [2, 1, 0, 0, 0, 2]: anime 0 at percentile (4 below + (2 - 1) / 2) / 5 = 90,
        # anime 3 at (0 + (3 - 1) / 2) / 5 = 20
        "novelty@1": (90 + 20) / 2,
    }
    assert list(got) == list(want)
    assert got == pytest.approx(want, rel=1e-12)
    assert ndcg4_user0 == pytest.approx(0.877215, abs=1e-6)


def test_default_cutoffs_and_short_lists(tiny):
    got = evaluate(tiny, _table)
    assert list(got) == [f"{m}@{k}" for k in (10, 20) for m in ("ndcg", "recall", "hit_rate", "mrr", "map")] \
        + ["coverage@10", "novelty@10"]
    # Fewer candidates than 10: the lists are the whole candidate sets, so @10 == @20 == @4 here.
    assert got["ndcg@10"] == got["ndcg@20"] == pytest.approx(((1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
                                                              + 1 / math.log2(3)) / 2)
    assert got["recall@20"] == 1.0
    # Every anime but none is listed by someone: user 0 lists 0, 3, 4, 2; user 1 adds 1, 5.
    assert got["coverage@10"] == 1.0
    # Filled slots only: 4 + 5 of them.
    pop = popularity_percentiles([2, 1, 0, 0, 0, 2])
    assert got["novelty@10"] == pytest.approx((pop[[0, 3, 4, 2]].sum() + pop[[3, 4, 1, 2, 5]].sum()) / 9)


def test_popularity_percentiles():
    assert popularity_percentiles([2, 1, 0, 0, 0, 2]).tolist() == pytest.approx([90, 60, 20, 20, 20, 90])
    assert popularity_percentiles([5, 1, 3]).tolist() == [100, 0, 50]
    assert popularity_percentiles([4]).tolist() == [50]


def test_recall_is_not_capped_at_k():
    train = _part([(0, 5, 1)])
    test = _part([(0, i, 1) for i in range(4)])
    data = RankingData.from_parts(train, test)
    got = evaluate(data, lambda u: np.tile(np.arange(N_ITEMS, 0, -1, dtype=float), (len(u), 1)), ks=(2,))
    assert got["recall@2"] == 2 / 4  # not 2 / min(4, 2)
    assert got["ndcg@2"] == 1.0 and got["map@2"] == 1.0  # ideal DCG and AP over min(|R|, K)


def _reference_top_k(scores, k):
    """Brute force: sort each row by (score desc, column asc), drop -inf, pad with -1."""
    out = np.full((len(scores), k), -1)
    for r, row in enumerate(scores):
        order = np.lexsort((np.arange(len(row)), -row))
        order = order[row[order] > -np.inf][:k]
        out[r, :len(order)] = order
    return out


def test_tie_rule_lower_anime_index_first():
    constant = np.full((3, 50), 0.25)
    assert top_k(constant, 5).tolist() == [[0, 1, 2, 3, 4]] * 3
    constant[1, [0, 2]] = -np.inf  # excluded anime are skipped, the rule still holds
    constant[2, 40] = 1.0
    assert top_k(constant, 5).tolist() == [[0, 1, 2, 3, 4], [1, 3, 4, 5, 6], [40, 0, 1, 2, 3]]
    # Through evaluate: an "always positive" scorer gives the same lists every run, lowest anime first.
    train, _, test = synthetic_split(seed=0)
    data = RankingData.from_parts(train, test)
    lists = [top_lists(data, lambda u: np.full((len(u), train.n_items), 0.9), k=10) for _ in range(2)]
    np.testing.assert_array_equal(lists[0], lists[1])
    for user, row in zip(data.users[:20], lists[0]):
        seen = set(train.item[train.user == user].tolist())
        assert row.tolist() == [i for i in range(train.n_items) if i not in seen][:10]


@pytest.mark.parametrize("kind", ["normal", "few values", "constant", "constant after -inf", "mostly -inf", "float32"])
def test_top_k_matches_brute_force_on_both_paths(kind):
    rng = np.random.default_rng(len(kind))
    for trial in range(40):
        rows, n = int(rng.integers(1, 9)), int(rng.integers(1, 700))
        k, groups = int(rng.integers(1, 25)), int(rng.choice([2, 8, 16, 64, 512]))  # small groups: grouped path
        if kind == "normal":
            s = rng.normal(size=(rows, n))
        elif kind == "few values":
            s = rng.integers(0, 3, size=(rows, n)).astype(float)
        elif kind == "constant":
            s = np.full((rows, n), 1.5)
        elif kind == "constant after -inf":  # ties at the max, some rows' first columns excluded
            s = np.full((rows, n), 1.5)
            s[np.arange(n) < rng.integers(0, n + 1, size=(rows, 1))] = -np.inf
        elif kind == "mostly -inf":
            s = rng.integers(0, 40, size=(rows, n)).astype(float)
            s[rng.random((rows, n)) < 0.9] = -np.inf
        else:
            s = rng.normal(size=(rows, n)).astype(np.float32)
        np.testing.assert_array_equal(top_k(s.copy(), k, groups=groups), _reference_top_k(s, k),
                                      err_msg=f"trial {trial}: rows {rows}, n {n}, k {k}, groups {groups}")


def test_top_k_rejects_nan():
    s = np.random.default_rng(0).normal(size=(3, 3000))
    s[1, 2999] = np.nan  # in the grouped path's tail
    with pytest.raises(PredictionError, match="1 NaN"):
        top_k(s, 10)
    s[0, 5] = np.nan  # in a group of the grouped path
    with pytest.raises(PredictionError, match="2 NaN"):
        top_k(s, 10)
    with pytest.raises(PredictionError, match="1 NaN"):
        top_k(s[:, :30], 10)  # too narrow for groups: the exact path


def test_excluded_anime_are_never_recommended():
    train, valid, test = synthetic_split(seed=2)
    data = RankingData.from_parts(train, test, (valid,))
    excluded = {(u, i) for p in (train, valid) for u, i in zip(p.user.tolist(), p.item.tolist())}
    relevant = {(u, i) for u, i, lab in zip(test.user.tolist(), test.item.tolist(), test.label.tolist()) if lab == 1}

    def excluded_first(users):  # excluded pairs score highest, relevant ones next
        s = np.zeros((len(users), train.n_items))
        for r, u in enumerate(users.tolist()):
            for i in range(train.n_items):
                s[r, i] = 2.0 if (u, i) in excluded else 1.0 if (u, i) in relevant else 0.0
        return s

    lists = top_lists(data, excluded_first, k=20)
    assert not any((u, i) in excluded for u, row in zip(data.users.tolist(), lists.tolist()) for i in row)
    got = evaluate(data, excluded_first)
    assert got["ndcg@10"] == 1.0 and got["map@20"] == 1.0 and got["hit_rate@10"] == 1.0


def test_chunking_gives_the_same_results():
    train, valid, test = synthetic_split(seed=3)
    data = RankingData.from_parts(train, test, (valid,))
    rng = np.random.default_rng(0)
    table = np.round(rng.normal(size=(train.n_users, train.n_items)), 1)  # rounded: many ties

    def score(users):
        return table[users].copy()

    one = evaluate(data, score, chunk_cells=10**9)
    for cells in (1, train.n_items * 7, train.n_items * 64 + 5):
        assert evaluate(data, score, chunk_cells=cells) == pytest.approx(one, rel=1e-12, abs=1e-15)
        np.testing.assert_array_equal(top_lists(data, score, 20, chunk_cells=cells),
                                      top_lists(data, score, 20, chunk_cells=10**9))


def test_user_chunks_are_the_calls_evaluate_makes():
    """What a model scores ahead (kernel-tower's weight search) matches evaluate's calls only
    if both chunk alike: every evaluated user once, in order, the same cuts."""
    train, valid, test = synthetic_split(seed=3)
    data = RankingData.from_parts(train, test, (valid,))
    for cells in (1, train.n_items * 7, 10**9):
        calls = []

        def score(users):
            calls.append(users.copy())
            return np.zeros((len(users), data.n_items))

        evaluate(data, score, chunk_cells=cells)
        chunks = list(user_chunks(data, cells))
        assert [b - a for a, b in chunks] == [len(c) for c in calls]
        for (a, b), users in zip(chunks, calls):
            np.testing.assert_array_equal(data.users[a:b], users)
        assert chunks[0][0] == 0 and chunks[-1][1] == data.n_users


def test_score_function_contract():
    train, valid, test = synthetic_split(seed=0)
    data = RankingData.from_parts(train, test)
    with pytest.raises(PredictionError, match="shape"):
        evaluate(data, lambda u: np.zeros((len(u), train.n_items - 1)))
    ramp = np.arange(train.n_items, dtype=float)
    writable = evaluate(data, lambda u: np.tile(ramp, (len(u), 1)))
    # A read-only array (a broadcast view) is copied before the excluded anime are set to -inf.
    assert evaluate(data, lambda u: np.broadcast_to(ramp, (len(u), train.n_items))) == writable
    assert evaluate(data, lambda u: np.tile(ramp.astype(int), (len(u), 1))) == writable  # ints become floats
    nobody = RankingData.from_parts(train, _part([], train.n_users, train.n_items))
    assert nobody.n_users == 0
    assert all(math.isnan(v) for v in evaluate(nobody, lambda u: np.zeros((len(u), train.n_items))).values())


class _PairModel:
    """predict(user, item) = 10 * user + item: a model without ``score``."""

    name = "pairs"

    def __init__(self):
        self.calls = []

    def predict(self, user, item):
        self.calls.append(len(user))
        return {"interaction": (10.0 * user + item).reshape(-1, 1)}


def test_scores_from_predictions_reshapes_in_bounded_pieces():
    model = _PairModel()
    score = scores_from_predictions(model, "interaction", n_items=7, chunk_cells=15)
    got = score(np.array([3, 0, 5], dtype=np.int32))
    np.testing.assert_array_equal(got, [[30 + i for i in range(7)], [i for i in range(7)], [50 + i for i in range(7)]])
    assert model.calls == [14, 7]  # 15 cells: two users (14 pairs) a piece
    with pytest.raises(PredictionError, match="no scores for task 'rating'"):
        scores_from_predictions(model, "rating", n_items=7)(np.array([1], dtype=np.int32))


def test_relevant_pairs_in_an_excluded_part_are_refused():
    train = _part([(0, 1, 1)])
    with pytest.raises(ValueError, match="1 relevant"):
        RankingData.from_parts(train, _part([(0, 1, 1), (0, 2, 1)]))


# ----------------------------------------------------------------- the split's unknown-relevance pairs

def test_split_other_holds_the_kept_users_warm_neither_task_pairs(fresh_home):
    from animerec_bench.data.importer import import_folder
    from animerec_bench.data.protocol import get_protocol
    from animerec_bench.plugins.registry import load_registry

    import_folder(FIXTURES / "mal2020-samples", "samples")
    dataset = load_registry().dataset("samples")
    split = get_protocol("v1").split(dataset, 0)
    table = dataset.table()
    user, anime = table.column("user_id").to_numpy(), table.column("anime_id").to_numpy()
    rating, status = table.column("rating").to_numpy(), table.column("status").to_numpy()
    # Neither task: unscored, and not dropped (dropped is an interaction example at any rating).
    neither = (rating == 0) & (status != 4)
    kept = set(get_protocol("v1").examples(table)["user_id"].tolist())
    wanted = {(u, a) for u, a in zip(user[neither].tolist(), anime[neither].tolist()) if u in kept}
    warm = {(u, a) for u, a in wanted if u in set(split.user_ids.tolist()) and a in set(split.anime_ids.tolist())}
    got = set(zip(split.user_ids[split.other.user].tolist(), split.anime_ids[split.other.item].tolist()))
    assert got == warm and len(got) == len(split.other) > 0
    assert split.stats["other"] == {"pairs": len(wanted), "cold_pairs": len(wanted) - len(warm)}
    assert (split.other.rating == 0).all() and (split.other.label == -1).all()
    for part in (split.train, split.valid, split.test):
        assert not got & set(zip(split.user_ids[part.user].tolist(), split.anime_ids[part.item].tolist()))
    # Cached with the split, and not part of its fingerprint.
    again = get_protocol("v1").split(dataset, 0)
    np.testing.assert_array_equal(again.other.user, split.other.user)
    np.testing.assert_array_equal(again.other.item, split.other.item)
    assert dataclasses.replace(split, other=None).fingerprint == split.fingerprint
    # The test ranking excludes them; label-0 test pairs stay candidates.
    data = RankingData.from_split(split)
    excluded = set(zip(data.users[np.repeat(np.arange(data.n_users), np.diff(data.excluded_indptr))].tolist(),
                       data.excluded.tolist()))
    evaluated = set(data.users.tolist())
    assert {(u, i) for u, i in zip(split.other.user.tolist(), split.other.item.tolist()) if u in evaluated} <= excluded
    assert not {(u, i) for u, i, lab in zip(split.test.user.tolist(), split.test.item.tolist(),
                                            split.test.label.tolist()) if lab == 0} & excluded


def test_a_cached_split_without_the_other_part_is_rebuilt(fresh_home, embedded):
    from animerec_bench.data.protocol import get_protocol

    protocol = get_protocol("v1")
    split = protocol.split(embedded, 0)
    path = protocol.cache_path(embedded, 0)
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if not k.startswith("other_")}
    np.savez(path, **old)  # a file as format 1 wrote it
    again = protocol.split(embedded, 0)
    assert again.fingerprint == split.fingerprint and len(again.other) == len(split.other) > 0


# ----------------------------------------------------------------- per-user AUC

def test_user_auc_by_hand():
    # user 7: positives 0.9 and 0.3, negatives 0.3 and 0.1: pairs (0.9, 0.3) 1, (0.9, 0.1) 1,
    #         (0.3, 0.3) 1/2, (0.3, 0.1) 1 -> 3.5 / 4 = 0.875
    # user 2: positive 0.2 below negative 0.8 -> 0
    # user 5: positives only -> left out
    user = [7, 2, 7, 5, 7, 2, 5, 7]
    y = [1, 0, 0, 1, 1, 1, 1, 0]
    p = [0.9, 0.8, 0.3, 0.5, 0.3, 0.2, 0.6, 0.1]
    assert metrics.user_auc(y, p, user) == pytest.approx((0.875 + 0.0) / 2)
    assert math.isnan(metrics.user_auc([1, 1], [0.1, 0.2], [0, 0]))  # no user with both classes


def test_user_auc_is_the_mean_of_per_user_auc():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 200, 4000)
    y = rng.integers(0, 2, 4000)
    p = rng.integers(0, 6, 4000) / 5  # many ties
    per_user = [metrics.auc(y[user == u], p[user == u]) for u in np.unique(user)]
    assert metrics.user_auc(y, p, user) == pytest.approx(np.nanmean(per_user), rel=1e-12)


# ----------------------------------------------------------------- mf-biased's fast path

@pytest.mark.slow
def test_mf_biased_score_equals_predict_on_every_anime():
    from animerec_bench.builtin.biased_mf import BiasedMatrixFactorization

    train, valid, test = synthetic_split(seed=1, n_users=120, n_items=90, pairs_per_user=20)
    model = BiasedMatrixFactorization(factors=8, epochs=2).fit(train, valid, tasks=("rating",), seed=0)
    users = np.array([5, 0, 119, 5], dtype=np.int32)
    got = model.score(users)
    want = model.predict(np.repeat(users, train.n_items), np.tile(np.arange(train.n_items), len(users)))["rating"]
    assert got.shape == (4, train.n_items) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.reshape(4, train.n_items), rtol=1e-6, atol=1e-6)
    assert np.ptp(got) > 0.1  # the biases and factors were learned: a constant would prove nothing
    # Ranked either way, the same metrics (up to a swap of two anime within a float32 rounding).
    data = RankingData.from_parts(train, test, (valid,))
    assert evaluate(data, model.score) == pytest.approx(
        evaluate(data, scores_from_predictions(model, "rating", train.n_items)), abs=0.01)
