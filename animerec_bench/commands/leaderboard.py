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
    from animerec_bench.results.store import forget_missing_per_user, load_all
    from animerec_bench.support import paths

    if publish and (results_dirs or out_dir is not None):
        raise UserError("give either --publish or --results/--out, not both")
    if publish or (check and not results_dirs and out_dir is None):
        published_results, published_out = paths.published("--publish" if publish else "--check")
        results_dirs, out_dir = (str(published_results),), str(published_out)
    results_dirs = results_dirs or (str(paths.results_dir()),)
    out_dir = out_dir if out_dir is not None else str(paths.leaderboards_dir())
    results_text = " + ".join(results_dirs)

    problems: list[str] = []
    loaded = []
    for folder in results_dirs:
        found = load_all(folder, problems)
        if len(results_dirs) > 1:  # several folders: each file keeps its folder in _file
            for r in found:
                r["_file"] = f"{Path(folder).as_posix().rstrip('/')}/{r['_file']}"
        loaded += found
    if problems and not loaded:  # nothing valid: refuse rather than render (and clear) empty boards
        more = f" (and {len(problems) - 1} more invalid file(s))" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    for warning in forget_missing_per_user(loaded):
        click.echo(f"warning: {warning}", err=True)
    rendered = lb.render(loaded)
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    if check and problems:
        click.echo(f"{len(problems)} result file(s) in {results_text} are invalid (see above)", err=True)
        raise SystemExit(1)
    if check:
        delta = lb.diff(out_dir, rendered)
        if delta:
            click.echo(delta, nl=False)
            again = " ".join(f"--results {d}" for d in results_dirs)
            click.echo(f"leaderboards in {out_dir} differ from what {results_text} renders; run "
                       f"`animerec-bench leaderboard {again} --out {out_dir}`", err=True)
            raise SystemExit(1)
        click.echo(f"leaderboards in {out_dir} match {results_text} ({len(rendered)} file(s))")
        return
    written = lb.write(out_dir, rendered)
    click.echo(f"{len(rendered)} file(s) in {out_dir}, {len(written)} changed "
               f"(index: {Path(out_dir) / lb.INDEX})")
