"""Leaderboards: content, order, N/A, failures, escaping, determinism and --check."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.reports import leaderboard as lb
from animerec_bench.results import store as results

MACHINE = {"cpu": "Acme(R) X1 CPU @ 3.00GHz", "usable_cores": 2, "memory_bytes": 8 * 2**30, "gpus": [], "os": "Linux",
           "python": "3.11", "versions": {"keras": "3.15", "tensorflow-cpu": "2.21"}, "keras_backend": "tensorflow"}


def res(model, task, seed, metric_values, *, tasks_served=None, status="ok", error=None, baseline=False,
        dataset="mal2016-5k", synthetic=False, params_set=None, started="2026-01-01T00:00:00Z", joint=False):
    tasks = [task] if isinstance(task, str) else list(task)
    return {"schema": 1, "status": status, "error": error, "error_kind": "crash" if error else None,
            "model": {"name": model, "version": "1", "params": {}, "params_set": params_set or {},
                      "tasks": tasks_served or tasks, "baseline": baseline, "joint": joint},
            "tasks": tasks, "dataset": {"name": dataset, "fingerprint": "d" * 64, "synthetic": synthetic,
                                         "label": dataset + (" (synthetic)" if synthetic else "")},
            "protocol": "v1", "split": {"seed": seed, "fingerprint": f"{seed:x}" * 64},
            "metrics": metric_values if status == "ok" else {},
            "timing": {"fit_seconds": 2.0 + seed, "train_examples_per_second": 1000.0 * (seed + 1),
                       "predict_per_second": 5e6},
            "machine": MACHINE, "package": {"version": "0.1.0", "commit": "c" * 40}, "started_at": started}


def rating(rmse, val=1.0):
    return {"rating": {"rmse": rmse, "mae": rmse - 0.3, "mse": rmse ** 2, "val_loss": val}}


def inter(auc):
    return {"interaction": {"auc": auc, "log_loss": 0.3, "accuracy": 0.9, "precision": 0.9, "recall": 0.95,
                            "val_loss": 0.31}}


def populate(folder):
    rs = [
        res("bias", "rating", 0, rating(1.20), baseline=True),
        res("bias", "rating", 1, rating(1.22), baseline=True),
        res("mf", "rating", 0, rating(1.10), tasks_served=["rating", "interaction"]),
        res("mf", "rating", 1, rating(1.30), tasks_served=["rating", "interaction"]),
        res("mf", "interaction", 0, inter(0.80), tasks_served=["rating", "interaction"]),
        res("popularity", "interaction", 0, inter(0.70), baseline=True),
        res("evil|`<b>x</b>`\nname", "rating", 0, rating(1.5), params_set={"p": "a|b\n`c`"}),
        res("crashy", "rating", 0, {}, status="failed", error="RuntimeError: boom | bad\nsecond line"),
        res("syn", "rating", 0, rating(1.0), dataset="synth-1k", synthetic=True),
    ]
    for r in rs:
        results.write(folder, r)
    return rs


def test_tables_sorted_with_na_failures_and_spread(tmp_path):
    populate(tmp_path / "r")
    files = lb.render(results.load_all(tmp_path / "r"))
    assert set(files) == {"README.md", "mal2016-5k-v1.md", "synth-1k-v1.md", "mal2016-5k-v1-rating.svg",
                          "mal2016-5k-v1-interaction.svg", "synth-1k-v1-rating.svg"}
    md = files["mal2016-5k-v1.md"]
    rating_table = md.split("### rating")[1].split("### interaction")[0]
    rows = [ln for ln in rating_table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    names = [r.split("|")[1].strip() for r in rows]
    # mean RMSE: mf 1.20 < bias 1.21; then evil, then crashy (no run); popularity is not a row but named below
    assert names[:2] == ["mf", "bias"] and names[-1] == "crashy" and "popularity" not in names
    mf = rows[0]
    cells = [c.strip() for c in mf.split("|")]
    assert cells[2] == "1.2000\u00a0±\u00a00.1414" and cells[-3] == "2"  # RMSE (right after the name) over 2 seeds
    assert "baseline" in rows[1] and "N/A" not in md
    assert "Not trained for this task: popularity." in rating_table
    assert "Failed jobs:" in rating_table and "boom \\| bad second line" in rating_table
    assert "Acme X1, 2 cores, 8 GiB, no GPU" in md
    inter_table = md.split("### interaction")[1]
    inames = [ln.split("|")[1].strip() for ln in inter_table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert inames == ["mf", "popularity"]
    assert "Not trained for this task: bias, crashy, evil" in inter_table
    assert "`4444" not in md and "0: `000000000000`, 1: `111111111111`" in md
    assert "synth-1k (synthetic)" in files["synth-1k-v1.md"] and "(synthetic)" in files["README.md"]


def test_escaping_cannot_break_a_table(tmp_path):
    populate(tmp_path / "r")
    md = lb.render(results.load_all(tmp_path / "r"))["mal2016-5k-v1.md"]
    table = md.split("### rating")[1].split("Failed jobs")[0]
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    pipes = {ln.replace("\\|", "").count("|") for ln in lines}
    assert len(pipes) == 1  # every row has the same number of cells
    assert "<b>" not in md and "&lt;b&gt;" in md and "\\`" in md
    assert "evil\\|\\`&lt;b&gt;x&lt;/b&gt;\\` name (p=\"a\\|b\\\\n\\`c\\`\")" in md


def test_index_links_every_table_and_states_the_protocol():
    from animerec_bench.data.protocol import ProtocolV1

    files = lb.render([{**res("bias", "rating", 0, rating(1.2)), "_file": "a.json",
                        "protocol_params": ProtocolV1().params()}])
    index = files["README.md"]
    assert "(mal2016-5k-v1.md)" in index
    assert ProtocolV1().summary() in index and ProtocolV1().summary() in files["mal2016-5k-v1.md"]


def test_rerun_of_a_seed_replaces_it():
    rs = [res("bias", "rating", 0, rating(2.0), started="2026-01-01T00:00:00Z"),
          res("bias", "rating", 0, rating(1.0), started="2026-02-01T00:00:00Z")]
    md = lb.render([{**r, "_file": f"{i}.json"} for i, r in enumerate(rs)])["mal2016-5k-v1.md"]
    row = next(ln for ln in md.splitlines() if ln.startswith("| bias"))
    assert row.split("|")[2].strip() == "1.0000"  # RMSE of the latest run alone: no spread


def test_results_from_an_edited_tree_are_marked_beside_their_commit():
    clean = res("bias", "rating", 0, rating(1.0))
    edited = res("mf", "rating", 0, rating(1.1))
    edited["package"] = {**edited["package"], "commit": "e" * 40, "dirty": True}
    md = lb.render([{**r, "_file": f"{i}.json"} for i, r in enumerate([clean, edited])])["mal2016-5k-v1.md"]
    assert f"package commit(s) {'c' * 12}, {'e' * 12} (edited tree)." in md


def test_byte_for_byte_deterministic_and_check(tmp_path):
    populate(tmp_path / "r")
    runner = CliRunner()
    out = tmp_path / "lb"
    res1 = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert res1.exit_code == 0, res1.output
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    # same results copied elsewhere (other file order on disk) render the same bytes
    shutil.copytree(tmp_path / "r", tmp_path / "r2")
    out2 = tmp_path / "lb2"
    runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r2"), "--out", str(out2)])
    assert {p.name: p.read_bytes() for p in out2.iterdir()} == first
    ok = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out), "--check"])
    assert ok.exit_code == 0, ok.output
    (out / "mal2016-5k-v1.md").write_text((out / "mal2016-5k-v1.md").read_text().replace("mf", "mX", 1))
    (out / "old-v1.md").write_text(lb.MARKER + "\nstale\n")
    bad = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out), "--check"])
    assert bad.exit_code == 1
    assert "--- " in bad.output and "+++ " in bad.output and "-" in bad.output and "old-v1.md" in bad.output
    runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert not (out / "old-v1.md").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_bad_result_file_is_one_line_error(tmp_path):
    (tmp_path / "x.json").write_text('{"schema": 99}')
    r = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "x.json" in r.output and "schema 99" in r.output


def test_never_overwrites_a_file_it_did_not_write(tmp_path):
    """`leaderboard --out .` in a project used to replace its hand-written README.md."""
    populate(tmp_path / "r")
    out = tmp_path / "project"
    out.mkdir()
    readme = out / "README.md"
    readme.write_text("# My project\n\nHand-written.\n")
    r = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert r.output == (f"Error: {readme} was not written by `animerec-bench leaderboard` (its first line is not the "
                        f"generated marker); not overwriting it: choose another --out or move the file\n")
    assert readme.read_text() == "# My project\n\nHand-written.\n"
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # nothing else was written either
    # A file it wrote itself is replaced as before.
    readme.write_text(lb.MARKER + "\nold\n")
    r = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "mal2016-5k-v1.md" in readme.read_text()


def test_every_rendered_string_is_escaped():
    """Protocol names and parameters, fingerprints, labels, commits and hardware come from result
    files; none may open a code span, inject HTML, or start a line of its own."""
    evil = "x`|<b>y</b>\u2028# injected\x85z"
    r = res("bias", "rating", 0, rating(1.2))
    r.update(protocol=evil, protocol_params={"rule": evil}, _file="a.json")
    r["dataset"] = {**r["dataset"], "label": evil, "fingerprint": "ab`" + evil}
    r["split"] = {**r["split"], "fingerprint": "cd`" + evil}
    r["package"] = {**r["package"], "commit": evil}
    r["machine"] = {**MACHINE, "cpu": evil, "gpus": [{"name": evil, "memory_mib": 1}], "os": evil}
    files = lb.render([r])
    assert len(files) == 3
    svg = files.pop(next(n for n in files if n.endswith(".svg")))
    assert "<b>" not in svg and "x`|&lt;b&gt;y&lt;/b&gt; # injected z" in svg  # the plot's title, as XML text
    for name, md in files.items():
        assert "<b>" not in md and "</b>" not in md, name
        assert not [ln for ln in md.splitlines() if ln.startswith("# injected")], name
        assert "\u2028" not in md and "\x85" not in md, name
        # Every backtick that is left opens or closes a code span of plain characters (or the command's name).
        for span in md.replace("\\`", "").split("`")[1::2]:
            assert lb._CODE_SAFE.fullmatch(span) or span == "animerec-bench leaderboard", (name, span)
    page = files[next(n for n in files if n != "README.md")]
    assert "# x\\`\\|&lt;b&gt;y&lt;/b&gt; # injected z — protocol x\\`\\|&lt;b&gt;y&lt;/b&gt; # injected z" in page
    assert "Protocol x\\`\\|&lt;b&gt;y&lt;/b&gt; # injected z: parameters {\"rule\": " in files["README.md"]


def test_two_data_sets_with_one_file_name_are_both_named():
    a = {**res("bias", "rating", 0, rating(1.2), dataset="my data"), "_file": "a.json"}
    b = {**res("bias", "rating", 0, rating(1.2), dataset="my_data"), "_file": "b.json"}
    with pytest.raises(results.ResultFileError) as info:
        lb.render([a, b])
    assert str(info.value) == ("data set 'my data' / protocol 'v1' and data set 'my_data' / protocol 'v1' map to "
                               "the same leaderboard file my_data-v1.md; rename one")


def _table_rows(md: str, task: str) -> list[list[str]]:
    table = md.split(f"### {task}")[1].split("###")[0]
    return [[c.strip() for c in ln.replace("\\|", "").strip("|").split("|")]
            for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln]


def test_tables_fit_a_github_page():
    """Issue 15: the primary metric first, narrow cells, the hardware named once as a key under the
    table, models not trained for a task named in one line instead of N/A rows."""
    rs = [res("bias", "rating", s, rating(1.2 + s / 100), baseline=True) for s in range(3)]
    rs += [res("mf", ["rating", "interaction"], s, {**rating(1.1), **inter(0.8)}, joint=True) for s in range(3)]
    rs += [res("popularity", "interaction", 0, inter(0.7), baseline=True)]
    for i, r in enumerate(rs):
        r["_file"] = f"{i}.json"
        r["timing"]["train_examples_per_second"] = [4_710_240 - 129_000, 4_710_240, 4_710_240 + 129_000][r["split"]["seed"]]
    md = lb.render(rs)["mal2016-5k-v1.md"]
    for task, primary in (("rating", "RMSE"), ("interaction", "AUC")):
        header, *rows = _table_rows(md, task)
        assert len(header) <= 9  # what fits GitHub's ~1,000 px (checked in a headless Chromium screenshot)
        assert header[:2] == ["Model", primary] and header[-1] == "Notes" and "Hardware" not in header
        for row in rows:
            assert all(len(cell) <= 15 for cell in row[1:-1]), row  # no number wider than "1.1490 ± 0.0070"
            assert all(" " not in cell for cell in row[1:-1]), row  # and none that can wrap
            assert "N/A" not in row and "Acme" not in "|".join(row)
    rating_rows = _table_rows(md, "rating")[1:]
    assert [r[0] for r in rating_rows] == ["mf", "bias"]
    assert "4.71M\u00a0±\u00a00.13M" in rating_rows[1]  # train examples/s: 3 significant digits, the spread in the same unit
    assert "Hardware: H1 = Acme X1, 2 cores, 8 GiB, no GPU (every row)" in md
    assert "- H1 = Acme X1, 2 cores, 8 GiB, no GPU: CPU Acme" in md
    assert "Not trained for this task: bias." in md.split("### interaction")[1]
    assert "N/A" not in md


def test_rows_from_two_machines_carry_a_short_key():
    fast = {**MACHINE, "cpu": "Zen 9", "usable_cores": 64}
    a, b = res("bias", "rating", 0, rating(1.2)), res("mf", "rating", 0, rating(1.1))
    b["machine"] = fast
    md = lb.render([{**r, "_file": f"{i}.json"} for i, r in enumerate([a, b])])["mal2016-5k-v1.md"]
    header, *rows = _table_rows(md, "rating")
    assert header[-2:] == ["HW", "Notes"]
    assert {r[0]: r[-2] for r in rows} == {"mf": "H2", "bias": "H1"}
    assert "Hardware: H1 = Acme X1, 2 cores, 8 GiB, no GPU; H2 = Zen 9, 64 cores, 8 GiB, no GPU" in md


@pytest.mark.parametrize("values, text", [
    ([4_710_240 - 129_000 / 2 ** 0.5, 4_710_240 + 129_000 / 2 ** 0.5], "4.71M ± 0.13M"),
    ([5_948_177_269 - 5_968_842 / 2 ** 0.5, 5_948_177_269 + 5_968_842 / 2 ** 0.5], "5.95G ± 0.01G"),
    ([501_377.0], "501k"), ([42.0, 44.0], "43 ± 1"), ([18_206_755.0, 18_206_755.0], "18.2M ± 0.0M"),
])
def test_throughputs_keep_the_digits_that_matter(values, text):
    assert lb._rate(values) == text.replace(" ", "\u00a0")  # no-break spaces: a cell never wraps


def _ranked(model, seed, ndcg, fit, *, params_set=None):
    r = res(model, "ranking", seed, {"ranking": {"ndcg@10": ndcg, "coverage@10": 0.1}}, params_set=params_set)
    r["timing"]["fit_seconds"] = fit
    return r


def _ranking_rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])} | {
        "_header": header}


def test_the_ranking_board_divides_each_fit_time_by_eases():
    """Issue 22: EASE's fit is the reference; each row shows its mean fit time over EASE's."""
    group = [_ranked("ease", 0, 0.36, 10.0), _ranked("ease", 1, 0.36, 12.0),
             _ranked("two-tower", 0, 0.33, 150.0), _ranked("two-tower", 1, 0.33, 180.0),
             _ranked("rp3beta", 0, 0.28, 2.75), _ranked("rp3beta", 0, 0.28, 5.5, params_set={"k": 1}),
             _ranked("most-popular", 0, 0.11, 0.01)]
    rows = _ranking_rows(lb.render_task("ranking", group))
    header = rows.pop("_header")
    assert header[header.index("fit s") + 1] == "÷ ease"
    at = header.index("÷ ease")
    assert {name: cells[at] for name, cells in rows.items()} == {
        "ease": "1.0×", "two-tower": "15×", "rp3beta": "0.25×", "rp3beta (k=1)": "0.50×",
        "most-popular": "<0.01×"}
    assert "÷ ease: the row's mean fit time over ease's" in lb.render_task("ranking", group)
    without = _ranking_rows(lb.render_task("ranking", group[2:]))
    assert "÷ ease" not in without["_header"]  # no EASE row, no column
