"""Significance: the paired bootstrap on hand-computed cases, per-user files through a real run,
``compare`` through the CLI, and the leaderboard's interval and mark."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from animerec_bench.evaluation import significance
from animerec_bench.evaluation.significance import PerUser
from animerec_bench.reports import leaderboard as lb
from animerec_bench.results import store as results

BIN = Path(sys.executable).parent / "animerec-bench"


def cli(*args, timeout=300):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


def per_user(values, weights=None, users=None):
    values = np.asarray(values, dtype=np.float64)
    users = np.arange(len(values), dtype=np.int64) * 7 + 3 if users is None else np.asarray(users, np.int64)
    return PerUser(users, values, np.ones(len(values)) if weights is None else np.asarray(weights, np.float64))


def test_constant_difference_gives_that_constant_and_a_small_p():
    rng = np.random.default_rng(1)
    a = {s: per_user(rng.uniform(0, 1, 50)) for s in (0, 1, 2)}
    b = {s: PerUser(pu.users, pu.values + 0.125, pu.weights) for s, pu in a.items()}
    per_seed, combined = significance.compare("ranking", a, b, draws=200)
    for iv in [*per_seed.values(), combined]:
        assert iv.estimate == pytest.approx(0.125) and iv.low == pytest.approx(0.125)
        assert iv.high == pytest.approx(0.125) and iv.users == 50
        assert iv.p == pytest.approx(2 / 201)  # no draw at or below 0: the smallest p 200 draws can give


def test_identical_models_have_p_one_and_a_zero_interval():
    a = {0: per_user([0.2, 0.9, 0.4, 0.1]), 3: per_user([0.5, 0.5, 0.7])}
    per_seed, combined = significance.compare("interaction", a, dict(a), draws=300)
    assert sorted(per_seed) == [0, 3]
    for iv in [*per_seed.values(), combined]:
        assert (iv.estimate, iv.low, iv.high, iv.p) == (0.0, 0.0, 0.0, 1.0)


def test_rating_metric_is_rmse_from_per_user_sums_and_draws_are_seeded():
    # user 5: errors 1 and 3 (sse 10, n 2); user 9: error 2 (sse 4, n 1): RMSE = sqrt(14 / 3), not a mean of RMSEs
    users, sse, n = significance.rating_per_user(np.array([5, 9, 5]), [4.0, 6.0, 8.0], [5.0, 4.0, 5.0])
    assert users.tolist() == [5, 9] and sse.tolist() == [10.0, 4.0] and n.tolist() == [2.0, 1.0]
    pu = PerUser(users, sse, n)
    assert pu.metric("rating") == pytest.approx(math.sqrt(14 / 3))
    # one user: every resample is that user, so the interval is the point
    one = significance.interval("rating", {0: PerUser(users[:1], sse[:1], n[:1])}, draws=100)
    assert one.low == one.high == pytest.approx(math.sqrt(10 / 2))
    rng = np.random.default_rng(0)
    a = {0: per_user(rng.uniform(0, 8, 40), rng.integers(1, 5, 40))}
    b = {0: per_user(rng.uniform(0, 8, 40), rng.integers(1, 5, 40))}
    first = significance.compare("rating", a, b, draws=200)
    assert significance.compare("rating", a, b, draws=200) == first  # seeded: the same numbers every time
    assert first[1].low < first[1].estimate < first[1].high


def test_compare_pairs_only_common_users_and_seeds():
    a = {0: per_user([1.0, 0.0, 0.5], users=[1, 2, 3]), 1: per_user([1.0], users=[1])}
    b = {0: per_user([1.0, 0.5, 9.0], users=[1, 3, 4]), 2: per_user([1.0], users=[1])}
    per_seed, combined = significance.compare("ranking", a, b, draws=100)
    assert list(per_seed) == [0] and per_seed[0].users == 2  # users 1 and 3 of seed 0
    assert per_seed[0].estimate == pytest.approx(0.0) and combined.p == 1.0
    with pytest.raises(ValueError, match="no common seed"):
        significance.compare("ranking", {1: a[1]}, {2: b[2]})
    with pytest.raises(ValueError, match="share no user"):
        significance.compare("ranking", {0: per_user([1.0], users=[1])}, {0: per_user([1.0], users=[2])})


def test_per_user_file_round_trip_and_swapped_file_is_noticed(tmp_path):
    from tests.test_leaderboard import rating, res

    data = {"rating": per_user([4.0, 1.0], [2, 1]), "ranking": per_user([0.5, 0.25, 1.0])}
    encoded = significance.encode(data)
    path = results.write(tmp_path, res("m", "rating", 0, rating(math.sqrt(5 / 3))), encoded)  # the file's RMSE
    companion = path.with_name(path.stem + ".users.npz")
    assert companion.read_bytes() == encoded
    (r,) = results.load_all(tmp_path)
    assert r["per_user"] == {"file": companion.name, "sha256": significance.sha256(encoded)}
    back = results.load_per_user(r)
    assert sorted(back) == ["ranking", "rating"]
    for task in data:
        for field in ("users", "values", "weights"):
            assert np.array_equal(getattr(back[task], field), getattr(data[task], field))
    companion.write_bytes(significance.encode({"rating": per_user([0.0, 0.0], [2, 1])}))
    with pytest.raises(results.ResultFileError, match="sha256 differs"):
        results.load_per_user(r)
    companion.unlink()
    with pytest.raises(results.ResultFileError, match="cannot read the per-user file"):
        results.load_per_user(r)


def _board_results(folder, with_file=True):
    """Three ranking models over 200 users and two seeds: best, a near twin of it, a clearly worse one."""
    from tests.test_leaderboard import res

    rng = np.random.default_rng(7)
    base = {s: rng.uniform(0.2, 0.8, 200) for s in (0, 1)}

    def twin(v, s):  # per-user noise far larger than its 0.001 lower mean: not a significant difference
        noise = rng.normal(0, 0.05, len(v))
        return v + noise - noise.mean() - 0.001

    models = {"best": lambda v, s: v, "twin": twin, "worse": lambda v, s: v * 0.5}
    for name, make in models.items():
        for s in (0, 1):
            values = np.clip(make(base[s], s), 0, 1)
            pu = PerUser(np.arange(200, dtype=np.int64), values, np.ones(200))
            m = {"ranking": {k: 0.5 for k in ("ndcg@10", "recall@10", "hit_rate@10", "mrr@10", "map@10",
                                              "ndcg@20", "recall@20", "hit_rate@20", "mrr@20", "map@20",
                                              "coverage@10")}}
            m["ranking"]["ndcg@10"] = float(values.mean())
            m["ranking"]["novelty@10"] = 50.0
            r = res(name, "ranking", s, m)
            r["ranking"] = {"source": "score", "users": 200}
            results.write(folder, r, significance.encode({"ranking": pu}) if with_file or name != "twin" else None)


def test_leaderboard_gives_intervals_and_marks_models_not_different_from_the_best(tmp_path):
    _board_results(tmp_path / "r")
    md = lb.render(results.load_all(tmp_path / "r"))["mal2016-5k-v1.md"]
    table = md.split("### ranking")[1]
    rows = {ln.split("|")[1].strip(): ln for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln}
    header = [c.strip() for c in rows["Model"].split("|")]
    assert "95% CI NDCG@10" in header
    at = header.index("95% CI NDCG@10")
    notes = {name: [c.strip() for c in row.split("|")][-2] for name, row in rows.items()}
    assert notes["best"] == "best" and notes["twin"] == "≈ best"
    assert "best" not in notes["worse"]  # clearly worse: no mark
    ci = [c.strip() for c in rows["worse"].split("|")][at]
    low, high = (float(x) for x in ci.split("–"))
    assert low < 0.25 < high  # the worse model's NDCG@10 is about half the best's (about 0.5)
    assert "95% paired bootstrap interval over test users" in table
    # byte-stable: the same files render the same bytes
    assert lb.render(results.load_all(tmp_path / "r"))["mal2016-5k-v1.md"] == md


def test_leaderboard_says_when_a_result_has_no_per_user_file(tmp_path):
    _board_results(tmp_path / "r", with_file=False)
    md = lb.render(results.load_all(tmp_path / "r"))["mal2016-5k-v1.md"]
    row = next(ln for ln in md.split("### ranking")[1].splitlines() if ln.startswith("| twin"))
    header = next(ln for ln in md.split("### ranking")[1].splitlines() if ln.startswith("| Model"))
    at = [c.strip() for c in header.split("|")].index("95% CI NDCG@10")
    assert [c.strip() for c in row.split("|")][at] == "—" and "≈" not in row
    assert "—: results written before per-user values were kept get no interval" in md


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signif") / "results"
    proc = cli("run", "-m", "bias", "-m", "popularity", "--results", folder, "--timeout", 240)
    assert proc.returncode == 0, proc.stderr
    return folder


def test_run_keeps_per_user_values_that_reproduce_each_metric(baseline_run):
    loaded = results.load_all(baseline_run)
    assert {r["model"]["name"] for r in loaded} == {"bias", "popularity"}
    seen = set()
    for r in loaded:
        assert r["status"] == "ok" and (baseline_run / r["per_user"]["file"]).is_file()
        found = results.load_per_user(r)
        assert set(found) == set(r["metrics"])
        for task, pu in found.items():
            assert pu.users.dtype == np.int64 and np.all(np.diff(pu.users) > 0)
            seen.add(task)
            if task == "rating":
                assert math.sqrt(pu.values.sum() / pu.weights.sum()) == pytest.approx(r["metrics"]["rating"]["rmse"],
                                                                                     rel=1e-12)
            elif task == "interaction":
                assert pu.values.mean() == pytest.approx(r["metrics"]["interaction"]["gauc"], rel=1e-12)
            else:
                assert pu.values.mean() == pytest.approx(r["metrics"]["ranking"]["ndcg@10"], rel=1e-12)
    assert seen == {"rating", "interaction", "ranking"}
    # raw MyAnimeList user ids, not split indices: the split's test users
    from animerec_bench.builtin.datasets import MAL2016_5K
    from animerec_bench.data.protocol import get_protocol

    split = get_protocol("v1").split(MAL2016_5K, 0)
    rating = next(results.load_per_user(r)["rating"] for r in loaded if "rating" in r["metrics"])
    assert np.array_equal(rating.users, split.user_ids[np.unique(split.test.user[split.test.rating > 0])])


def test_compare_through_the_cli(baseline_run, tmp_path):
    proc = cli("compare", "bias", "popularity", "--results", baseline_run, "--draws", 200)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "### ranking: ndcg@10" in out and "### rating" not in out  # the only task both have
    line = next(ln for ln in out.splitlines() if ln.startswith("| combined"))
    cells = [c.strip() for c in line.split("|")]
    loaded = {r["model"]["name"]: r for r in results.load_all(baseline_run) if "ranking" in r["metrics"]}
    delta = loaded["popularity"]["metrics"]["ranking"]["ndcg@10"] - loaded["bias"]["metrics"]["ranking"]["ndcg@10"]
    assert float(cells[5]) == pytest.approx(delta, abs=5e-5)
    low, high = (float(x) for x in cells[6].split(" to "))
    assert low <= float(cells[5]) <= high and 0.0 < float(cells[7]) <= 1.0
    assert cli("compare", "bias", "popularity", "--results", baseline_run, "--draws", 200).stdout == out  # seeded

    bad = cli("compare", "bias", "nosuch", "--results", baseline_run)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"Error: no successful result of model 'nosuch' in {baseline_run}; models there: bias, popularity"]
    none = cli("compare", "bias", "popularity", "--results", baseline_run, "--task", "rating")
    assert none.returncode == 2 and "no per-user values for rating in common" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1

    # two result folders, one model each; then a swapped per-user file is refused in one line
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, name in ((a, "bias"), (b, "popularity")):
        folder.mkdir()
        for r in results.load_all(baseline_run):
            if r["model"]["name"] == name:
                src = Path(r["_path"])
                shutil.copy(src, folder / src.name)
                shutil.copy(baseline_run / r["per_user"]["file"], folder / r["per_user"]["file"])
    assert cli("compare", a, b, "--draws", 200).stdout == out  # same results, same table
    victim = b / results.load_all(b)[0]["per_user"]["file"]
    original = victim.read_bytes()
    victim.write_bytes(significance.encode({"ranking": per_user([0.0])}))
    swapped = cli("compare", a, b)
    assert swapped.returncode == 2 and "sha256 differs" in swapped.stderr
    assert len(swapped.stderr.strip().splitlines()) == 1
    victim.write_bytes(original)
    legacy = json.loads(Path(results.load_all(a)[0]["_path"]).read_text())
    del legacy["per_user"]
    Path(results.load_all(a)[0]["_path"]).write_text(json.dumps(legacy))
    old = cli("compare", a, b)
    assert old.returncode == 2 and "no per-user file" in old.stderr


def test_board_gives_the_same_numbers_as_interval_and_compare():
    rng = np.random.default_rng(3)
    users = np.arange(60, dtype=np.int64) * 5
    rows = {m: {s: PerUser(users, rng.uniform(0, 20, 60), rng.integers(1, 6, 60).astype(float)) for s in (0, 1)}
            for m in ("a", "b", "c")}
    rows["d"] = {1: PerUser(users[:40], rng.uniform(0, 20, 40), np.ones(40))}  # other users: compared on common ones
    found = significance.board("rating", rows, "a", draws=200)

    def same(x, y):  # the board multiplies several models' columns at once: another BLAS path, last-bit differences
        assert (x is None) == (y is None)
        if x is not None:
            assert (x.users, x.p) == (y.users, y.p)
            assert [x.estimate, x.low, x.high] == pytest.approx([y.estimate, y.low, y.high], rel=1e-12)

    for key, by_seed in rows.items():
        same(found[key][0], significance.interval("rating", by_seed, draws=200))
        same(found[key][1], None if key == "a" else significance.compare("rating", rows["a"], by_seed, draws=200)[1])


def test_users_are_resampled_once_across_seeds():
    """#22: the same users are in every seed's test part, so a user is drawn once for all seeds. When
    each user's difference is the same in every seed, three seeds carry no more information than one:
    the combined interval is as wide as one seed's (resampling (user, seed) pairs independently made
    it ~1/sqrt(3) as wide)."""
    rng = np.random.default_rng(7)
    users = np.arange(300, dtype=np.int64) * 2 + 1
    base = rng.uniform(0.2, 0.8, len(users))
    effect = rng.normal(0.01, 0.1, len(users))  # each user's own difference, the same in every seed
    a = {s: PerUser(users, base, np.ones(len(users))) for s in (0, 1, 2)}
    b = {s: PerUser(users, base + effect, np.ones(len(users))) for s in (0, 1, 2)}
    per_seed, combined = significance.compare("ranking", a, b, draws=400)
    one = per_seed[0].high - per_seed[0].low
    assert combined.high - combined.low == pytest.approx(one, rel=1e-9)
    # one model's interval too, and the board's, which must give the same numbers
    by_model = significance.interval("ranking", b, draws=400)
    single = significance.interval("ranking", {0: b[0]}, draws=400)
    assert by_model.high - by_model.low == pytest.approx(single.high - single.low, rel=1e-9)
    found = significance.board("ranking", {"a": a, "b": b}, "a", draws=400)
    assert found["b"][1].p == combined.p
    assert [found["b"][0].low, found["b"][1].low] == pytest.approx([by_model.low, combined.low], rel=1e-12)
    # a user missing from one seed's test part is drawn with the count the others give it
    partial = {**b, 2: b[2].on(users[10:])}
    assert significance.compare("ranking", a, partial, draws=400)[1].users == len(users) - 10


def test_p_values_are_printed_with_their_floor():
    """With 1,000 draws no p-value can be below 2/1001: that floor reads "< 0.002", not "0.0020"."""
    assert significance.format_p(2 / 1001, 1000) == "< 0.002"
    assert significance.format_p(2 / 301, 300) == "< 0.007"
    assert significance.format_p(0.0312, 1000) == "0.0312"
    assert significance.format_p(1.0, 1000) == "1.0000"
