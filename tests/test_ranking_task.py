"""The ranking task end to end: the model contract (``score``), check_model, the runner and the board."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench import tasks
from animerec_bench.builtin.ease import EASE
from animerec_bench.model import Model
from animerec_bench.plugins.registry import validate_model_class
from animerec_bench.reports import leaderboard as lb
from animerec_bench.testing import check_model
from tests.test_runner import cli, load_dir, plugins  # noqa: F401, F811 - plugins is a fixture


class Ranker(Model):
    name = "ranker"
    tasks = ("ranking",)

    def __init__(self, mode: str = "good"):
        self.mode = mode

    def fit(self, train, valid, *, tasks, seed):
        positives, _ = train.for_task("ranking")
        self.counts_ = np.bincount(positives.item, minlength=train.n_items).astype(float)
        self.n_items_ = train.n_items
        return self

    def score(self, user):
        out = np.tile(self.counts_, (len(user), 1))
        if self.mode == "shape":
            return out[:, :-1]
        if self.mode == "nan":
            out[0, 0] = np.nan
        if self.mode == "random":
            out += np.random.default_rng().random(out.shape)  # not seeded from fit's seed
        return out


def test_a_ranking_model_must_have_score_and_needs_no_predict():
    assert validate_model_class(Ranker) is None
    no_score = type("NoScore", (Model,), {"name": "x", "tasks": ("ranking",), "fit": Ranker.fit})
    assert "must implement score" in validate_model_class(no_score)
    pointwise = type("P", (Model,), {"name": "p", "tasks": ("rating", "ranking"), "fit": Ranker.fit,
                                     "score": Ranker.score})
    assert "predict" in validate_model_class(pointwise)


@pytest.mark.parametrize("mode, words", [("shape", "has shape"), ("nan", "NaN/inf score"),
                                         ("random", "determinism")])
def test_check_model_covers_score(mode, words):
    check_model(Ranker)
    with pytest.raises(AssertionError, match=words):
        check_model(Ranker, mode=mode)


def test_ease_passes_check_model():
    check_model(EASE, l2=100.0)


def test_ranking_source_prefers_score_then_interaction_then_rating():
    ranking = tasks.RANKING
    assert ranking.ranking_source(Ranker) == "score"
    assert ranking.ranking_source(type("I", (), {"tasks": ("rating", "interaction")})) == "interaction"
    assert ranking.ranking_source(type("R", (), {"tasks": ("rating",)})) == "rating"
    assert ranking.serves(()) and not tasks.RATING.serves(())


def test_every_model_is_ranked_in_a_real_run_and_the_board_shows_the_source(plugins, tmp_path):
    out = tmp_path / "r"
    done = cli("run", "-m", "itemmean", "noisy", "toppop", "--task", "ranking", "--results", str(out),
               "--plugins-dir", str(plugins))
    assert done.returncode == 0, done.stderr
    loaded = {r["model"]["name"]: r for r in load_dir(out)}
    assert {name: r["ranking"]["source"] for name, r in loaded.items()} == {
        "itemmean": "interaction", "noisy": "rating", "toppop": "score"}
    for r in loaded.values():
        ranked = r["metrics"]["ranking"]
        assert set(ranked) == set(tasks.RANKING.metrics)
        assert 0 <= ranked["ndcg@10"] <= 1 and 0 < ranked["coverage@10"] <= 1
        assert r["ranking"]["users"] > 100 and r["timing"]["ranking_seconds"] > 0
    # an interaction job is scored on its own task too, and its GAUC sits beside its AUC
    assert set(loaded["itemmean"]["metrics"]) == {"interaction", "ranking"}
    assert 0.5 < loaded["itemmean"]["metrics"]["interaction"]["gauc"] < 1
    # toppop lists the most popular anime: better than ranking by an item's mean rating
    assert loaded["toppop"]["metrics"]["ranking"]["ndcg@10"] > loaded["noisy"]["metrics"]["ranking"]["ndcg@10"]

    board = lb.render(load_dir(out))["mal2016-5k-v1.md"]
    table = board[board.index("### ranking"):]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # after the header
    assert [row.split("|")[1].strip() for row in rows][0] == "toppop"  # sorted by NDCG@10
    assert any("from interaction" in row for row in rows if row.startswith("| itemmean"))
    assert any("from rating" in row for row in rows if row.startswith("| noisy"))


def test_list_shows_the_ranking_task(plugins):
    done = cli("list", "--plugins-dir", str(plugins))
    assert done.returncode == 0, done.stderr
    assert "| ranking " in done.stdout and "NDCG@10 (primary)" in done.stdout
