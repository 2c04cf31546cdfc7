"""Issue 21: one board-rows model (variant in the label, merged folders kept apart), the README's
generated block, the terminal's top rows, `compare --variant`, `list` descriptions, did-you-mean,
plugin folders that skip test files, and the typed Result with its schema migrations."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.reports import board_rows
from animerec_bench.reports import leaderboard as lb
from animerec_bench.results import store as results

from .test_leaderboard import rating, res


def tuned(r, trials=3):
    r["tuning"] = {"method": results.TUNED, "trials": trials, "seconds": 12.0, "fixed": {}, "budget": {"trials": trials}}
    return r


def board_results():
    rs = [res("mf", "rating", s, rating(1.20 + s / 100)) for s in range(2)]
    rs += [tuned(res("mf", "rating", s, rating(1.10 + s / 100), started="2026-01-02T00:00:00Z")) for s in range(2)]
    rs += [res("bias", "rating", s, rating(1.30), baseline=True) for s in range(2)]
    for i, r in enumerate(rs):
        r["_file"] = f"{i}.json"
    return rs


def test_rows_carry_the_variant_in_their_label_and_feed_the_plots_the_same_rows():
    rows, not_served = board_rows.board_rows("rating", board_results())
    assert [row.label for row in rows] == ["mf (tuned)", "mf", "bias"]
    assert [len(row.results) for row in rows] == [2, 2, 2] and not_served == []
    assert rows[0].tuning_note() == "3 trials, 12 s"
    plotted = lb._plot_rows("rating", board_results())
    assert [label for label, _, _ in plotted] == [row.label for row in rows]  # one model, two views
    md = lb.render(board_results())["mal2016-5k-v1.md"]
    assert "| mf (tuned) " in md and "3 trials, 12 s" in md
    assert md.index("## Legend") > md.index("### rating")  # the legend comes after the tables


def test_merged_folders_keep_a_model_in_each_apart_labelled_by_folder():
    rs = board_results()[:2]
    mine = [dict(r, _file=f"mine/{r['_file']}") for r in rs]
    published = [dict(r, _file=f"published/{r['_file']}", split={**r["split"], "seed": r["split"]["seed"]})
                 for r in rs]
    rows, _ = board_rows.board_rows("rating", mine + published, {"mine": "mine", "published": "published"})
    assert sorted(row.label for row in rows) == ["mf [mine]", "mf [published]"]
    assert all(len(row.results) == 2 for row in rows)  # never one row of four "seeds"


def test_readme_block_is_generated_and_replaced_between_its_markers():
    block = lb.summary(board_results(), {"mf": "matrix factorisation"})
    assert block.startswith(lb.SUMMARY_START) and block.endswith(lb.SUMMARY_END)
    first = next(line for line in block.splitlines() if line.startswith("| rating"))
    assert "mf (tuned)" in first and "1.1050" in first and "matrix factorisation" in first
    assert "2.50\u00a0±\u00a00.71" in first  # fit s of seeds 0 and 1 (2 s and 3 s)
    assert "protocol v1, 2 seeds, test split" in block
    one_seed_tuned = [r for r in board_results() if not (r.get("tuning") and r["split"]["seed"] == 1)]
    assert "1–2 seeds (each row's count on the board)" in lb.summary(one_seed_tuned, {})  # not "2 seeds"
    readme = f"# x\n\nbefore\n{lb.SUMMARY_START}\nold\n{lb.SUMMARY_END}\nafter\n"
    assert lb.replace_summary(readme, block) == f"# x\n\nbefore\n{block}\nafter\n"
    with pytest.raises(lb.UserError, match="README.md has no generated block"):
        lb.replace_summary("# x\n", block)


def test_readme_block_names_the_machine_of_each_shown_rows_fit_times():
    """Fit times compare within one machine: the block names the one most shown rows ran on and,
    in brackets, which models ran on another; a machine that only unshown rows ran on is not named."""
    rs = board_results() + [res("user-mean", "rating", s, rating(1.25)) for s in range(2)]
    plain = {"cpu": "AMD EPYC", "cores": 2, "memory_bytes": 24 << 30, "gpus": []}
    for i, r in enumerate(rs):
        r["machine"], r["_file"] = dict(plain), f"{i}.json"
    for r in rs[2:4]:  # mf (tuned), shown: mf's better row
        r["machine"]["simd"] = ["avx", "avx2"]
    for r in rs[:2]:  # mf with its defaults, not shown
        r["machine"]["cores"] = 4
    block = lb.summary(rs, {}, n=3)
    assert "fit s on AMD EPYC, 2 cores, 24 GiB, no GPU (mf: AMD EPYC (AVX2), 2 cores, 24 GiB, no GPU). Every" in block
    assert "fit s on AMD EPYC (AVX2), 2 cores, 24 GiB, no GPU. Every row" in lb.summary(rs, {}, n=1)


def test_leaderboard_prints_each_tasks_top_rows(tmp_path):
    for r in board_results():
        results.write(tmp_path / "r", {k: v for k, v in r.items() if k != "_file"})
    done = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    start = lines.index("  rating (RMSE, lower is better):")
    assert lines[start + 1].split()[:4] == ["1.", "mf", "(tuned)", "1.1050"]
    assert lines[start + 3].split()[:2] == ["3.", "bias"]


def test_result_reads_named_fields_and_old_schemas_migrate(monkeypatch):
    r = tuned(res("mf", "rating", 1, rating(1.2)))
    typed = results.Result(r)
    assert (typed.model, typed.seed, typed.tuned, typed.metric("rating", "rmse")) == ("mf", 1, True, 1.2)
    assert typed.value("timing.fit_seconds") == 3.0 and typed.metric("ranking", "ndcg@10") is None
    old = {k: v for k, v in r.items() if k != "schema"}
    old["schema"] = 0
    old["model_name_only"] = old.pop("model")  # a made-up older shape, rewritten by its migration
    monkeypatch.setitem(results.MIGRATIONS, 0, lambda d: {**{k: v for k, v in d.items() if k != "model_name_only"},
                                                          "model": d["model_name_only"], "schema": 1})
    assert results.check(old, "old.json")["model"]["name"] == "mf"
    with pytest.raises(results.ResultFileError, match="schema 7 is not supported"):
        results.check({**r, "schema": 7}, "new.json")


def test_compare_says_which_variant_and_offers_the_other(tmp_path):
    from animerec_bench.commands.compare import _pick
    from animerec_bench.errors import UserError

    loaded = [{**r, "status": "ok"} for r in board_results()]
    which, picked = _pick("mf", loaded, "here", None)
    assert which == "default" and len(picked) == 2 and not any(results.Result(r).tuned for r in picked)
    which, picked = _pick("mf", loaded, "here", "tuned")
    assert which == "tuned" and all(results.Result(r).tuned for r in picked)
    with pytest.raises(UserError, match="model 'bias' has no tuned results in here"):
        _pick("bias", loaded, "here", "tuned")
    with pytest.raises(UserError, match=r"did you mean 'bias'\?"):
        _pick("biass", loaded, "here", None)


def test_list_describes_each_model_and_a_typo_gets_a_suggestion(tmp_path):
    from animerec_bench.model import describe
    from animerec_bench.plugins.registry import PluginError, load_registry

    class Doc:
        """Predicts the mean. More text here."""

    class Said(Doc):
        description = "what it says"

    assert describe(Doc) == "Predicts the mean." and describe(Said) == "what it says"
    listed = CliRunner().invoke(cli, ["list"])
    assert listed.exit_code == 0, listed.output
    ease_line = next(line for line in listed.output.splitlines() if line.startswith("| ease "))
    assert "EASE: a full item-item weight matrix" in ease_line
    reg = load_registry(None)
    with pytest.raises(PluginError, match=r"unknown model 'two-towr' \(did you mean 'two-tower'\?\)"):
        reg.model("two-towr")


def test_a_plugins_own_test_file_beside_it_is_not_loaded(tmp_path):
    from animerec_bench.plugins.loader import loose_plugin_files
    from animerec_bench.plugins.registry import load_registry

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "mine.py").write_text("X = 1\n")
    (folder / "test_mine.py").write_text("raise SystemExit('a test file must not be imported as a plugin')\n")
    (folder / "mine_test.py").write_text("raise SystemExit('nor this one')\n")
    assert [p.name for p in loose_plugin_files(folder)] == ["mine.py"]
    assert load_registry(folder).errors == []
