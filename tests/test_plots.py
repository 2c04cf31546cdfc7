"""SVG plots beside the boards: byte-stable, embedded, checked by --check, cleaned when stale."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.reports import plots
from animerec_bench.results import store as results

from .test_leaderboard import inter, rating, res


def _results(folder):
    rs = [res("bias", "rating", s, rating(1.2 + s / 100), baseline=True) for s in range(2)]
    rs += [res("mf", ["rating", "interaction"], s, {**rating(1.1 + s / 50), **inter(0.8)}, joint=True)
           for s in range(2)]
    rs += [res("popularity", "interaction", 0, inter(0.7), baseline=True)]
    for r in rs:
        if r["model"]["name"] == "mf":
            r["history"] = [{"epoch": e, "loss": 1.5 / e, "val_loss": 1.4 + 0.01 * e} for e in (1, 2, 3)]
        if r["model"]["name"] == "bias":  # progress without epochs (as EASE reports its l2 search): no panel
            r["history"] = [{"l2": 10.0, "seconds": 0.1}]
        results.write(folder, r)


def test_plots_are_written_embedded_and_byte_stable(tmp_path):
    _results(tmp_path / "r")
    runner = CliRunner()
    out, out2 = tmp_path / "lb", tmp_path / "lb2"
    for o in (out, out2):
        done = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(o)])
        assert done.exit_code == 0, done.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "mal2016-5k-v1-curves.svg", "mal2016-5k-v1-interaction.svg", "mal2016-5k-v1-rating.svg",
                     "mal2016-5k-v1.md"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in out2.iterdir()}
    md = (out / "mal2016-5k-v1.md").read_text()
    for name in names[1:4]:
        assert f"]({name})" in md
        svg = (out / name).read_text()
        assert svg.startswith("<?xml") and svg.splitlines()[1] == plots.SVG_MARKER and "<dc:date>" not in svg
    rating_svg = (out / "mal2016-5k-v1-rating.svg").read_text()
    assert ">bias</text>" in rating_svg and ">mf</text>" in rating_svg  # one labelled point per model, as text
    assert "Pareto front" in rating_svg and "RMSE (lower is better)" in rating_svg
    curves = (out / "mal2016-5k-v1-curves.svg").read_text()
    assert "train loss" in curves and ">mf: rating+interaction</text>" in curves and ">bias: rating</text>" not in curves

    check = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out), "--check"])
    assert check.exit_code == 0, check.output
    svg_path = out / "mal2016-5k-v1-rating.svg"
    svg_path.write_text(svg_path.read_text().replace("Pareto", "Pxreto"))
    (out / "old-v1-rating.svg").write_text(f"<?xml version='1.0'?>\n{plots.SVG_MARKER}\n<svg/>\n")
    check = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out), "--check"])
    assert check.exit_code == 1 and "Pxreto" in check.output and "old-v1-rating.svg" in check.output
    runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert not (out / "old-v1-rating.svg").exists()
    assert svg_path.read_bytes() == (out2 / svg_path.name).read_bytes()


def test_a_plot_the_command_did_not_write_is_never_replaced(tmp_path):
    _results(tmp_path / "r")
    out = tmp_path / "lb"
    out.mkdir()
    mine = out / "mal2016-5k-v1-rating.svg"
    mine.write_text("<?xml version='1.0'?>\n<svg>my own drawing</svg>\n")
    done = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert done.exit_code == 2 and f"{mine} was not written by" in done.output
    assert mine.read_text() == "<?xml version='1.0'?>\n<svg>my own drawing</svg>\n"
    assert sorted(p.name for p in out.iterdir()) == [mine.name]


def test_pareto_front_keeps_what_nothing_faster_beats():
    # (fit seconds, RMSE): c is slower and worse than a; d is slowest but best
    points = [(1.0, 1.2), (10.0, 1.1), (5.0, 1.3), (100.0, 1.0)]
    assert plots.pareto_front(points, higher_is_better=False) == [0, 1, 3]
    assert plots.pareto_front([(1.0, 0.7), (2.0, 0.6), (3.0, 0.9)], higher_is_better=True) == [0, 2]


def test_help_and_list_do_not_import_matplotlib():
    code = ("import sys; from click.testing import CliRunner; from animerec_bench.cli import cli\n"
            "for args in (['--help'], ['list']):\n"
            "    out = CliRunner().invoke(cli, args)\n"
            "    assert out.exit_code == 0, out.output\n"
            "assert 'matplotlib' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
