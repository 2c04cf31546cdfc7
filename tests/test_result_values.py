"""Result values are validated against the tasks: a hand-edited file can never top a board."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.reports import leaderboard as lb
from animerec_bench.results import store as results
from tests.test_leaderboard import rating, res


def _write(folder, result, name):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(result))
    return path


@pytest.mark.parametrize("value, words", [
    (-5, "metrics.rating.rmse is -5, outside its range [0, 9]"),
    (True, "metrics.rating.rmse is bool True, expected a number"),
    ("0.1", "metrics.rating.rmse is str '0.1', expected a number"),
    (None, "metrics.rating.rmse is null"),
    (float("nan"), "metrics.rating.rmse is nan, expected a finite number"),
])
def test_edited_primary_metric_is_reported_by_name_and_skipped(tmp_path, value, words):
    good = res("bias", "rating", 0, rating(1.20), baseline=True)
    bad = res("cheat", "rating", 0, {"rating": {**rating(1.0)["rating"], "rmse": value}})
    results.write(tmp_path / "r", good)
    bad_path = _write(tmp_path / "r", bad, "edited.json")  # json.dumps writes NaN as a bare NaN

    with pytest.raises(results.ResultFileError, match=words.replace("[", r"\[").replace("]", r"\]")):
        results.load(bad_path)
    problems: list[str] = []
    loaded = results.load_all(tmp_path / "r", problems)
    assert [r["model"]["name"] for r in loaded] == ["bias"]
    assert len(problems) == 1 and str(bad_path) in problems[0] and words in problems[0]

    out = tmp_path / "boards"
    runner = CliRunner()
    made = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert "warning: skipped" in made.output and "edited.json" in made.output
    board = (out / "mal2016-5k-v1.md").read_text()
    assert "cheat" not in board and "| bias" in board
    checked = runner.invoke(cli, ["leaderboard", "--check", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert checked.exit_code == 1 and "invalid" in checked.output


def test_other_metrics_may_be_null_but_not_out_of_range(tmp_path):
    ok = res("m", "interaction", 0, {"interaction": {"auc": 0.7, "log_loss": None, "accuracy": 0.9}})
    results.check(ok, "ok.json")
    bad = res("m", "interaction", 0, {"interaction": {"auc": 1.7}})
    with pytest.raises(results.ResultFileError, match=r"bad.json: metrics.interaction.auc is 1.7, outside"):
        results.check(bad, "bad.json")
    unknown = res("m", "rating", 0, {"ratings": {"rmse": 1.0}})
    with pytest.raises(results.ResultFileError, match="metrics.ratings: unknown task"):
        results.check(unknown, "u.json")


def test_seeds_column_counts_only_the_values_averaged():
    # Rendered straight from dicts (no load-time check): a seed without a primary value is not counted.
    group = [res("m", "rating", 0, rating(1.10)), res("m", "rating", 1, {"rating": {"mae": 0.9}}),
             res("m", "rating", 2, rating(1.30))]
    group += [res("n", "rating", seed, rating(1.25)) for seed in range(3)]
    for r in group:
        r["_file"] = f"{r['model']['name']}{r['split']['seed']}.json"
    table = lb.render_task("rating", group)
    assert "Seeds" in next(line for line in table.splitlines() if line.startswith("| Model"))
    cells = {}
    for name in ("m", "n"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} "))
        cells[name] = [c.strip() for c in row.strip("|").split("|")]
    assert cells["m"][1] == "1.2000\u00a0±\u00a00.1414"  # RMSE over seeds 0 and 2
    assert (cells["m"][-2], cells["n"][-2]) == ("2", "3")  # Seeds


def test_a_seeds_column_that_would_say_the_same_on_every_row_is_a_sentence():
    """At GitHub's width every column costs: when every row averages the same seeds, the sentence
    above the table says how many, and the table has no Seeds column."""
    group = [res(name, "rating", seed, rating(value)) for name, value in (("m", 1.1), ("n", 1.2)) for seed in range(3)]
    for r in group:
        r["_file"] = f"{r['model']['name']}{r['split']['seed']}.json"
    table = lb.render_task("rating", group)
    assert "Every row averages 3 seeds." in table
    header = next(line for line in table.splitlines() if line.startswith("| Model"))
    assert "Seeds" not in header
    row = next(line for line in table.splitlines() if line.startswith("| m "))
    assert len(row.strip("|").split("|")) == len(header.strip("|").split("|"))
