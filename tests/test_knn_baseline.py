"""``item-knn-baseline``: conformance, Surprise's ``KNNBaseline`` arithmetic written out as plain
loops, Surprise itself where installed, the user-grouped fast paths, ``score`` against ``predict``,
the top-k sums against a sort, and the real split's figure."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from animerec_bench.builtin.knn_baseline import SORT_RUN, ItemKNNBaseline, _weighted_mean, top_k_sums
from animerec_bench.metrics import rmse
from animerec_bench.testing import check_model, synthetic_split


@pytest.fixture(scope="module")
def small():
    return synthetic_split(seed=3, n_users=120, n_items=80, pairs_per_user=18)


def test_item_knn_baseline_passes_check_model():
    assert ItemKNNBaseline.baseline is False and ItemKNNBaseline.tasks == ("rating",)
    check_model(ItemKNNBaseline)
    check_model(ItemKNNBaseline, k=3, min_k=2, shrinkage=0.0)


def _loops(train, pairs, *, k=40, min_k=1, shrinkage=100.0, reg_u=15.0, reg_i=10.0, epochs=10):
    """KNNBaseline (item-based, pearson_baseline) from its definitions, one rating at a time."""
    ur: dict[int, list] = {}
    ir: dict[int, list] = {}
    ratings = [(int(u), int(i), float(r)) for u, i, r in zip(train.user, train.item, train.rating) if r > 0]
    for u, i, r in ratings:
        ur.setdefault(u, []).append((i, r))
        ir.setdefault(i, []).append((u, r))
    mu = sum(r for _, _, r in ratings) / len(ratings)
    bu, bi = dict.fromkeys(ur, 0.0), dict.fromkeys(ir, 0.0)
    for _ in range(epochs):
        for i, rs in ir.items():
            bi[i] = sum(r - mu - bu[u] for u, r in rs) / (reg_i + len(rs))
        for u, rs in ur.items():
            bu[u] = sum(r - mu - bi[i] for i, r in rs) / (reg_u + len(rs))
    prods: dict = {}
    for u, rs in ur.items():
        for i, ri in rs:
            for j, rj in rs:
                di, dj = ri - mu - bu[u] - bi[i], rj - mu - bu[u] - bi[j]
                n, p, si, sj = prods.get((i, j), (0, 0.0, 0.0, 0.0))
                prods[i, j] = (n + 1, p + di * dj, si + di * di, sj + dj * dj)

    def sim(i, j):
        if i == j:
            return 1.0
        n, p, si, sj = prods.get((i, j), (0, 0.0, 0.0, 0.0))
        return 0.0 if n < 2 else p / math.sqrt(si * sj) * (n - 1) / (n - 1 + shrinkage)

    out = []
    for u, i in pairs:
        est = mu + bu.get(u, 0.0) + bi.get(i, 0.0)
        if u in bu and i in bi:
            neighbours = heapq.nlargest(k, [(sim(i, j), r - mu - bu[u] - bi[j]) for j, r in ur[u]],
                                        key=lambda t: t[0])
            used = [(s, d) for s, d in neighbours if s > 0]
            if len(used) >= min_k and used:
                est += sum(s * d for s, d in used) / sum(s for s, _ in used)
        out.append(min(10.0, max(1.0, est)))
    return np.array(out)


@pytest.mark.parametrize("params", [{}, {"k": 3}, {"k": 4, "min_k": 3, "shrinkage": 5.0, "reg_u": 2.0,
                                                   "reg_i": 1.0, "bsl_epochs": 3}], ids=["defaults", "k3", "other"])
def test_predictions_equal_the_definition_written_as_loops(small, params):
    train, valid, test = small
    model = ItemKNNBaseline(**params).fit(train, valid, tasks=("rating",), seed=0)
    rng = np.random.default_rng(0)
    # Test pairs, plus pairs the user rated in train (an item is its own neighbour, similarity 1).
    seen = rng.choice(len(train), 40, replace=False)
    user = np.concatenate([test.user, train.user[seen]])
    item = np.concatenate([test.item, train.item[seen]])
    names = {"k": "k", "min_k": "min_k", "shrinkage": "shrinkage", "reg_u": "reg_u", "reg_i": "reg_i",
             "bsl_epochs": "epochs"}
    expected = _loops(train, list(zip(user.tolist(), item.tolist())), **{names[k]: v for k, v in params.items()})
    got = model.predict(user, item)["rating"]
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_predictions_equal_surprises_own(small):
    surprise = pytest.importorskip("surprise")  # installed by the [bench] extra
    import pandas as pd

    train, valid, test = small
    rated = train.rating > 0
    frame = pd.DataFrame({"u": train.user[rated], "i": train.item[rated], "r": train.rating[rated].astype(float)})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 10))).build_full_trainset()
    algo = surprise.KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False)
    algo.fit(trainset)
    expected = [algo.predict(int(u), int(i)).est for u, i in zip(test.user, test.item)]
    got = ItemKNNBaseline().fit(train, valid, tasks=("rating",), seed=0).predict(test.user, test.item)["rating"]
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_every_anime_for_each_user_equals_the_same_pairs_in_any_order(small):
    """The fast paths (pairs already grouped by user, whole runs of anime read as row slices)
    give what scattered pairs give; unknown indices get the baseline's known parts."""
    train, valid, _ = small
    model = ItemKNNBaseline(k=5).fit(train, valid, tasks=("rating",), seed=0)
    users = np.array([0, 7, 33, 119])
    grid_user = np.repeat(users, train.n_items)
    grid_item = np.tile(np.arange(train.n_items), len(users))
    grid = model.predict(grid_user, grid_item)["rating"]
    order = np.random.default_rng(1).permutation(len(grid_user))
    shuffled = model.predict(grid_user[order], grid_item[order])["rating"]
    np.testing.assert_allclose(shuffled, grid[order], atol=1e-6)
    one = model.predict(np.full(train.n_items, 7), np.arange(train.n_items))["rating"]
    np.testing.assert_allclose(one, grid[train.n_items:2 * train.n_items], atol=1e-6)
    cold = model.predict(np.array([train.n_users, 0, -1]), np.array([0, train.n_items, 3]))["rating"]
    np.testing.assert_allclose(cold, [model.mean_ + model.item_bias_[0], model.mean_ + model.user_bias_[0],
                                      model.mean_ + model.item_bias_[3]])


def test_weighted_mean_keeps_exactly_k_positive_neighbours_even_on_ties():
    # Columns: a three-way tie for the top 2; more positives than k; one positive neighbour.
    sims = np.array([[0.5, 0.9, 0.0],
                     [0.5, 0.8, 0.3],
                     [0.5, 0.1, 0.0],
                     [0.2, 0.7, 0.0]], dtype=np.float32)
    resid = np.array([0.0, 1.0, 5.0, 100.0], dtype=np.float32)
    got = _weighted_mean(sims, resid, k=2, min_k=1)
    # Any two of the tied three (0.5, 2.5 or 3.0), never all three (2.0) nor the fourth.
    assert min(abs(got[0] - v) for v in (0.5, 2.5, 3.0)) < 1e-6
    assert got[1] == pytest.approx((0.9 * 0.0 + 0.8 * 1.0) / 1.7)
    assert got[2] == pytest.approx(1.0)
    assert _weighted_mean(sims, resid, k=2, min_k=2)[2] == 0.0  # 1 neighbour < min_k: baseline alone
    assert _weighted_mean(sims, resid, k=5, min_k=1)[0] == pytest.approx((0 + 0.5 + 2.5 + 20) / 1.7)


def test_on_the_embedded_split_it_scores_what_surprise_scores(embedded_split):
    """mal2016-5k / v1 / seed 0: Surprise's KNNBaseline (item-based, pearson_baseline, defaults,
    rating scale 1-10), run on the same train ratings with raw ids, scores test RMSE 1.150563."""
    model = ItemKNNBaseline().fit(embedded_split.train, embedded_split.valid, tasks=("rating",), seed=0)
    rated, y = embedded_split.test.for_task("rating")
    assert rmse(y, model.predict(rated.user, rated.item)["rating"]) == pytest.approx(1.150563, abs=2e-6)


@pytest.mark.parametrize("params", [{}, {"k": 3, "min_k": 2}, {"k": 1, "min_k": 0}], ids=["defaults", "k3", "k1"])
def test_score_is_the_rating_prediction_of_every_anime(small, params, monkeypatch):
    """``score`` ranks what the harness ranked before it existed (``predict`` over every anime):
    the same values, so the same lists (ranking's top_k: ties to the lower anime). One user a
    block, on two threads: each user's row is its own."""
    from animerec_bench.builtin import knn_baseline
    from animerec_bench.evaluation.ranking import top_k
    from animerec_bench.support import threads

    monkeypatch.setattr(knn_baseline, "USER_BLOCK", 1)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)

    train, valid, _ = small
    model = ItemKNNBaseline(**params).fit(train, valid, tasks=("rating",), seed=0)
    users = np.array([0, 7, 33, 119, train.n_users + 1])  # the last one unknown: the baseline alone
    grid = model.predict(np.repeat(users, train.n_items), np.tile(np.arange(train.n_items), len(users)))
    want = grid["rating"].reshape(len(users), train.n_items)
    got = model.score(users)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(top_k(got, 10), top_k(want, 10))


@pytest.mark.parametrize(("report", "want"), [
    ({"SIMD Extensions": {"found": ["X86_V3", "X86_V4", "AVX512_ICL"]}}, np.uint16),
    ({"SIMD Extensions": {"found": ["X86_V3"], "not found": ["AVX512_ICL"]}}, np.uint32),
    ({"SIMD Extensions": {"baseline": ["AVX512_ICL"], "found": []}}, np.uint16),  # a build that requires it
    ({}, np.uint32),  # a report without the section
    (TypeError("show_config() got an unexpected keyword argument 'mode'"), np.uint32),  # an older numpy
], ids=["avx512-icl", "avx2", "baseline-avx512-icl", "no-simd-section", "no-report"])
def test_level_width_follows_numpys_public_simd_report(report, want, monkeypatch):
    """16-bit levels only where numpy reports its AVX512_ICL sort; 32-bit wherever it does not
    say (never an error at import)."""
    from animerec_bench.builtin import knn_baseline

    def show_config(mode=None):
        if isinstance(report, Exception):
            raise report
        return report

    monkeypatch.setattr(np, "show_config", show_config)
    assert knn_baseline._level_dtype() is want


@pytest.mark.parametrize("level_dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize(("m", "k", "over"), [(30, 6, 0.1), (30, 6, 0.9), (1200, 5, 0.9), (1200, 300, 0.9)],
                         ids=["few-columns-selected", "most-columns-selected", "long-columns", "long-columns-big-k"])
def test_top_k_sums_equal_sorting_each_column(m, k, over, level_dtype, monkeypatch):
    """Both ways of selecting (a gather of the columns with more than k positives; the whole
    transpose when they are most) give each column's sums over its k largest positive entries;
    columns longer than ``SORT_RUN`` are ranked in pieces (with k small enough for pieces to
    shrink them, or not); with the levels of either width, whichever this CPU picks."""
    from animerec_bench.builtin import knn_baseline

    monkeypatch.setattr(knn_baseline, "LEVEL_DTYPE", level_dtype)
    rng = np.random.default_rng(4)
    q = 200 if m < SORT_RUN else 40
    sims = rng.random((m, q)).astype(np.float32)
    dense = rng.random(q) < over  # these columns keep many positives, the others at most k
    sims[:, ~dense] *= rng.random((m, int((~dense).sum()))) < min(0.15, k / m)
    sims[:, dense] *= rng.random((m, int(dense.sum()))) < 0.7
    sims[rng.random((m, q)) < 0.05] = -0.0  # a negative zero is no neighbour either
    sims[SORT_RUN:, ::2] *= 0.5  # in long columns, every one of the k largest in the first piece
    resid = rng.normal(size=m).astype(np.float32)
    total, weight, count = top_k_sums(sims, resid, k)
    for c in range(q):
        col = sims[:, c].astype(np.float64)
        top = np.argsort(-col, kind="stable")[:k]
        top = top[col[top] > 0]
        assert count[c] == len(top)
        assert weight[c] == pytest.approx(col[top].sum(), rel=1e-5)
        assert total[c] == pytest.approx((col[top] * resid[top]).sum(), rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("m", [300, 1200])
def test_keep_top_k_same_entries_with_either_level_width(m, monkeypatch):
    """16-bit and 32-bit levels keep the same entries, bit for bit, ties for the k-th included:
    values closer together than a 16-bit level send rows to the exact path under uint16 only,
    and exact ties at the k-th are settled on the row as given, whatever the levels zeroed."""
    from animerec_bench.builtin import knn_baseline

    rng = np.random.default_rng(11)
    k = 20
    top = rng.random((400, m)).astype(np.float32) * (rng.random((400, m)) < 0.3)
    top[:100, :60] = 0.5 + rng.integers(0, 4, (100, 60)).astype(np.float32) * 1e-6  # within one level
    top[100:200, :40] = 0.9  # 40 exact ties for the 20 kept
    top[0, 0] = 1.0
    count = (top > 0).sum(axis=1)
    kept = {}
    for dtype in (np.uint16, np.uint32):
        monkeypatch.setattr(knn_baseline, "LEVEL_DTYPE", dtype)
        kept[dtype] = knn_baseline._keep_top_k(top.copy(), count, k)
    np.testing.assert_array_equal(kept[np.uint16], kept[np.uint32])
    assert ((kept[np.uint32] > 0).sum(axis=1) == np.minimum(count, k)).all()
    np.testing.assert_array_equal(np.sort(kept[np.uint32], axis=1)[:, -k:], np.sort(top, axis=1)[:, -k:])
