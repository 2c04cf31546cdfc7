"""The synthetic generator: seeded, the 2020 schema and marginals, long tails, a learnable taste."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.data.synth import MARKER, SCORED_COUNTS, STATUS_SHARES, SynthParams, generate, write
from animerec_bench.errors import UserError


@pytest.fixture(scope="module")
def sample():
    return generate(SynthParams(rows=200_000, users=3_000, anime=1_500, seed=7))


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    p = SynthParams(rows=5_000, users=200, anime=300, seed=1)
    write(p, tmp_path / "a")
    write(p, tmp_path / "b")
    write(SynthParams(rows=5_000, users=200, anime=300, seed=2), tmp_path / "c")
    for name in ("animelist.csv", "anime.csv", MARKER):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "animelist.csv").read_bytes() != (tmp_path / "c" / "animelist.csv").read_bytes()


def test_kaggle_format_and_marker(tmp_path):
    write(SynthParams(rows=2_000, users=50, anime=100, seed=0), tmp_path / "s")
    lines = (tmp_path / "s" / "animelist.csv").read_text().splitlines()
    assert lines[0] == "user_id,anime_id,rating,watching_status,watched_episodes"
    assert len(lines) == 2_001
    assert (tmp_path / "s" / "anime.csv").read_text().splitlines()[0].startswith("MAL_ID,Name,")
    marker = json.loads((tmp_path / "s" / MARKER).read_text())
    assert marker["params"]["rows"] == 2_000 and marker["params"]["seed"] == 0
    t = pacsv.read_csv(tmp_path / "s" / "animelist.csv")
    assert t.num_rows == 2_000


def test_exact_size_unique_pairs_and_ranges(sample):
    n = len(sample["user_id"])
    assert n == 200_000
    key = sample["user_id"].astype(np.int64) * 10**6 + sample["anime_id"]
    assert len(np.unique(key)) == n
    assert sample["user_id"].max() < 3_000 and len(np.unique(sample["anime_id"])) <= 1_500
    assert set(np.unique(sample["watching_status"]).tolist()) == {1, 2, 3, 4, 6}
    assert sample["rating"].min() == 0 and sample["rating"].max() == 10
    assert np.all(np.diff(sample["user_id"]) >= 0)  # grouped by user, as the real file


def test_rating_and_status_marginals(sample):
    rating, status = sample["rating"], sample["watching_status"]
    n = len(rating)
    assert abs((rating == 0).mean() - 0.43) < 0.01
    scored = np.bincount(rating[rating > 0], minlength=11)[1:] / (rating > 0).sum()
    assert np.abs(scored - SCORED_COUNTS / SCORED_COUNTS.sum()).max() < 0.01
    for code, share in STATUS_SHARES.items():
        assert abs((status == code).sum() / n - share) < 0.01, code
    assert (rating[status == 6] == 0).all()  # plan to watch is never scored
    dropped = rating[(status == 4) & (rating > 0)].mean()
    completed = rating[(status == 2) & (rating > 0)].mean()
    assert dropped < completed - 1  # dropped entries are the disliked ones


def test_long_tailed_users_and_anime(sample):
    users = np.sort(np.bincount(sample["user_id"]))[::-1]
    anime = np.sort(np.unique(sample["anime_id"], return_counts=True)[1])[::-1]
    assert users[: len(users) // 10].sum() > 0.3 * users.sum()
    assert anime[: len(anime) // 10].sum() > 0.3 * anime.sum()
    assert users.max() > 10 * np.median(users)


def test_matrix_factorisation_beats_item_means():
    """A small biased ALS must beat per-anime means on held-out ratings: the taste is learnable."""
    c = generate(SynthParams(rows=60_000, users=1_000, anime=400, seed=5))
    u = c["user_id"]
    a = np.searchsorted(c["MAL_ID"], c["anime_id"])
    r = c["rating"].astype(float)
    m = r > 0
    u, a, r = u[m], a[m], r[m]
    rng = np.random.default_rng(0)
    test = rng.random(len(r)) < 0.2
    ut, at, rt = u[~test], a[~test], r[~test]
    mu = rt.mean()
    item = np.bincount(at, rt - mu, 400) / (np.bincount(at, minlength=400) + 5)
    rmse_item = np.sqrt(((mu + item[a[test]] - r[test]) ** 2).mean())
    k, lam = 8, 5.0
    P, Q = rng.normal(0, 0.1, (1_000, k)), rng.normal(0, 0.1, (400, k))
    bu, bi = np.zeros(1_000), item.copy()

    def solve(rows_of, n, X, other_b, other_idx, target):
        out, bias = np.zeros((n, k)), np.zeros(n)
        for x in range(n):
            idx = rows_of[x]
            if len(idx):
                Y = np.hstack([X[other_idx[idx]], np.ones((len(idx), 1))])
                y = target[idx] - mu - other_b[other_idx[idx]]
                sol = np.linalg.solve(Y.T @ Y + lam * np.eye(k + 1), Y.T @ y)
                out[x], bias[x] = sol[:k], sol[k]
        return out, bias

    by_user = np.split(np.argsort(ut, kind="stable"), np.cumsum(np.bincount(ut, minlength=1_000))[:-1])
    by_item = np.split(np.argsort(at, kind="stable"), np.cumsum(np.bincount(at, minlength=400))[:-1])
    for _ in range(6):
        P, bu = solve(by_user, 1_000, Q, bi, at, rt)
        Q, bi = solve(by_item, 400, P, bu, ut, rt)
    pred = mu + bu[u[test]] + bi[a[test]] + (P[u[test]] * Q[a[test]]).sum(1)
    rmse_mf = np.sqrt(((pred - r[test]) ** 2).mean())
    assert rmse_mf < 0.85 * rmse_item, (rmse_mf, rmse_item)


def test_refuses_to_overwrite_other_folders(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an earlier synthetic output"):
        write(SynthParams(rows=10, users=2, anime=10), tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    write(SynthParams(rows=10, users=2, anime=10), tmp_path / "s")
    write(SynthParams(rows=20, users=2, anime=20), tmp_path / "s")  # its own output: replaced
    assert len((tmp_path / "s" / "animelist.csv").read_text().splitlines()) == 21


def test_cli_synth_and_impossible_sizes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "s"
    result = runner.invoke(cli, ["data", "synth", "--rows", "1000", "--users", "20", "--anime", "100",
                                 "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len((out / "animelist.csv").read_text().splitlines()) == 1_001
    result = runner.invoke(cli, ["data", "synth", "--rows", "1000", "--users", "2", "--anime", "100",
                                 "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "too many" in result.output and not (tmp_path / "t").exists()
