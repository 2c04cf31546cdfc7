"""SVG plots beside the boards: byte-stable, embedded, checked by --check, cleaned when stale."""

from __future__ import annotations

from click.testing import CliRunner

from animerec_bench.cli import cli
from animerec_bench.reports import plots
from animerec_bench.results import store as results

from .conftest import imported_after
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
    code = ("from click.testing import CliRunner; from animerec_bench.cli import cli\n"
            "for args in (['--help'], ['list']):\n"
            "    out = CliRunner().invoke(cli, args)\n"
            "    assert out.exit_code == 0, out.output")
    assert imported_after(code, ("matplotlib",), timeout=120) == []


def _text_boxes(fig):
    """The window box of every visible, non-empty text the figure draws."""
    from matplotlib.text import Text

    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    ticks, shown = set(), set()  # tick labels exist beyond the view limits too; only those inside are drawn
    for ax in fig.axes:
        for axis, (lo, hi), pos in ((ax.xaxis, sorted(ax.get_xlim()), 0), (ax.yaxis, sorted(ax.get_ylim()), 1)):
            for t in axis.get_ticklabels(which="both"):
                ticks.add(id(t))
                if lo <= t.get_position()[pos] <= hi:
                    shown.add(id(t))
    return [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and (id(t) not in ticks or id(t) in shown)]


def _assert_readable(fig):
    """No two labels overlap and none is clipped by the figure's edge (issue 21)."""
    boxes = _text_boxes(fig)
    edge = fig.bbox
    for text, box in boxes:
        assert edge.x0 <= box.x0 and box.x1 <= edge.x1 and edge.y0 <= box.y0 and box.y1 <= edge.y1, text
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            overlap = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0), min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            assert min(overlap) <= 0.5, (a, b)  # half a pixel: touching edges after rounding


def _crowded_rows(n=24):
    """n models within a few percent of each other and of each other's fit time, plus a trivial baseline."""
    rows = [(f"model-{i:02d} (tuned)" if i % 3 else f"a-much-longer-model-name-{i:02d}",
             [1.0 + (i % 5) * 0.15, 1.1 + (i % 5) * 0.15], [1.15 + i * 0.002, 1.16 + i * 0.002]) for i in range(n)]
    return rows + [("global-mean", [0.0001, 0.0002], [1.57, 1.58])]


def test_no_label_overlaps_or_is_clipped_on_crowded_and_published_plots():
    from animerec_bench.reports import leaderboard as lb

    published = results.load_all("results")
    with plots.style():
        for task, rows in [("rating", _crowded_rows()), *[(t, lb._plot_rows(t, published)) for t in
                                                          ("rating", "interaction", "ranking")]]:
            fig = plots.metric_figure(task, rows, f"a long title for {task}, protocol v1: {task}")
            _assert_readable(fig)
            texts = [t for t, _ in _text_boxes(fig)]
            key = next(t for t in texts if t.startswith("Key"))
            # Every point is named on the plot or listed in the key (numbered), never lost.
            for label, _, _ in rows:
                assert label in texts or f"  {label}: " in key, label
        curves = {f"m{i}: rating+interaction" if i % 2 else f"m{i}: rating":
                  [[{"epoch": e, "loss": 1 / e, "val_loss": 0.9 + e / 100} for e in range(1, 6)]] for i in range(7)}
        curves["one-epoch: rating"] = [[{"epoch": 11, "loss": 0.2}]]  # not trained by epochs: no panel
        fig = plots.curves_figure(curves, "mal2016-5k: loss per epoch", {"rating": "mse", "interaction": "binary_crossentropy"})
        _assert_readable(fig)
        titles = [ax.get_title() for ax in fig.axes]
        assert "one-epoch: rating" not in titles and len(titles) == 7
        assert {ax.get_ylabel() for ax in fig.axes} == {"MSE (rating)", "MSE + log loss (summed)"}


def test_a_trivial_baseline_sits_at_the_edge_and_error_bars_stay_positive():
    rows = [("good", [1.0, 1.2], [1.14, 1.15]), ("ok", [2.0, 2.5], [1.18, 1.19]), ("fine", [0.5, 0.6], [1.20, 1.21]),
            ("global-mean", [0.0001, 0.00001], [1.57, 1.58]),
            ("merged", [0.001, 30.0], [1.16, 1.17])]  # mean - sd of its fit time would be below zero
    with plots.style():
        fig = plots.metric_figure("rating", rows, "t")
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        assert high < 1.3  # the competitive rows are not squeezed into a band by global-mean's 1.575
        key = next(t.get_text() for t in fig.texts if t.get_text().startswith("Key"))
        assert "global-mean: 1.5750 (off scale)" in key
        for line in ax.get_lines() + [seg for c in ax.collections for seg in c.get_segments()]:
            xs = line.get_xdata() if hasattr(line, "get_xdata") else [p[0] for p in line]
            assert all(x > 0 for x in xs)  # a log axis: every drawn x positive
