"""``animerec-bench leaderboard``: Markdown tables rendered from result files (or checked against them)."""

from __future__ import annotations

import click

from animerec_bench.commands.options import publish_option


@click.command("leaderboard")
@click.option("--results", "results_dirs", type=click.Path(file_okay=False), multiple=True,
              help="Folder of result files (searched recursively); repeat it to rank several folders together, "
                   "e.g. your runs next to the published ones: --results results --results ~/.cache/animerec-bench/"
                   "results. Default: your own results in the data home (with --publish or --check: ./results).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder the Markdown files are written into. Default: leaderboards/ in the data home "
                   "(with --publish or --check: ./leaderboards).")
@publish_option
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 and print a diff if the Markdown in --out differs from the results. "
                   "Without --results/--out it checks the published pair of this checkout.")
def leaderboard(results_dirs: tuple[str, ...], out_dir: str | None, publish: bool, check: bool) -> None:
    """Render one Markdown leaderboard per data set x protocol, plus an index README.md."""
    from pathlib import Path

    from animerec_bench.errors import UserError
    from animerec_bench.reports import leaderboard as lb
    from animerec_bench.support import paths
    from animerec_bench.support.atomic import write_text

    if publish and (results_dirs or out_dir is not None):
        raise UserError("give either --publish or --results/--out, not both")
    published_pair = publish or (check and not results_dirs and out_dir is None)
    if published_pair:
        published_results, published_out = paths.published("--publish" if publish else "--check")
        results_dirs, out_dir = (str(published_results),), str(published_out)
    results_dirs = results_dirs or (str(paths.results_dir()),)
    out_dir = out_dir if out_dir is not None else str(paths.leaderboards_dir())

    loaded, sources = _load(results_dirs, check)
    rendered = lb.render(loaded, sources)
    readme = _readme(loaded) if publish or (check and published_pair) else None
    if check:
        _check(lb, out_dir, rendered, readme, results_dirs)
        return
    written = lb.write(out_dir, rendered)
    if readme is not None:
        path, text = readme
        if path.read_text(encoding="utf-8") != text:
            write_text(path, text)
            written.append(path)
    for line in lb.top_rows_text(loaded):
        click.echo(line)
    click.echo(f"{len(rendered)} file(s) in {out_dir}, {len(written)} changed "
               f"(index: {Path(out_dir) / lb.INDEX})")


def _load(results_dirs: tuple[str, ...], check: bool) -> tuple[list[dict], dict[str, str]]:
    """Every valid result of the folders (each file's ``_file`` prefixed by its folder when there are
    several), and ``{folder prefix: label}`` so a model found in several stays one row per folder."""
    from pathlib import Path

    from animerec_bench.errors import UserError
    from animerec_bench.results.store import forget_missing_per_user, load_all

    problems: list[str] = []
    loaded = []
    sources: dict[str, str] = {}
    for folder in results_dirs:
        found = load_all(folder, problems)
        if len(results_dirs) > 1:  # several folders: each file keeps its folder in _file
            prefix = Path(folder).as_posix().rstrip("/")
            sources[prefix] = Path(folder).name or prefix
            for r in found:
                r["_file"] = f"{prefix}/{r['_file']}"
        loaded += found
    if problems and not loaded:  # nothing valid: refuse rather than render (and clear) empty boards
        more = f" (and {len(problems) - 1} more invalid file(s))" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    for warning in forget_missing_per_user(loaded):
        click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    if problems and check:  # --check: an invalid file fails it
        click.echo(f"{len(problems)} result file(s) in {' + '.join(results_dirs)} are invalid (see above)", err=True)
        raise SystemExit(1)
    return loaded, sources



def _readme(loaded: list[dict]):
    """(the checkout's README.md, its text with the best-models block rendered from ``loaded``)."""
    from pathlib import Path

    from animerec_bench.model import describe
    from animerec_bench.plugins.registry import load_registry
    from animerec_bench.reports import leaderboard as lb

    path = Path.cwd() / "README.md"
    if not path.is_file():
        return None
    reg = load_registry(None)
    # Built-in models say what they are; any other (a peers package, maybe not installed here) says
    # whose it is, so the block is the same on every machine.
    descriptions = {name: describe(e.cls) for name, e in reg.models.items()
                    if e.cls.__module__.startswith("animerec_bench.")}
    for r in loaded:
        model = r.get("model") or {}
        if model.get("peer") and str(model.get("name")) not in descriptions:
            descriptions[str(model.get("name"))] = f"peer: {model['peer']}"
    text = path.read_text(encoding="utf-8")
    return path, lb.replace_summary(text, lb.summary(loaded, descriptions))


def _check(lb, out_dir: str, rendered: dict[str, str], readme, results_dirs: tuple[str, ...]) -> None:
    results_text = " + ".join(results_dirs)
    delta = lb.diff(out_dir, rendered)
    if readme is not None:
        import difflib

        path, text = readme
        old = path.read_text(encoding="utf-8")
        delta += "".join(difflib.unified_diff(old.splitlines(keepends=True), text.splitlines(keepends=True),
                                              fromfile=f"{path} (in the tree)", tofile=f"{path} (rendered from results)"))
    if delta:
        click.echo(delta, nl=False)
        again = " ".join(f"--results {d}" for d in results_dirs)
        click.echo(f"leaderboards in {out_dir} differ from what {results_text} renders; run "
                   f"`animerec-bench leaderboard {again} --out {out_dir}` (the README's block: --publish)", err=True)
        raise SystemExit(1)
    click.echo(f"leaderboards in {out_dir} match {results_text} ({len(rendered)} file(s))")
