"""``animerec-bench leaderboard``: Markdown tables rendered from result files (or checked against them)."""

from __future__ import annotations

import click


@click.command("leaderboard")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder of result files (searched recursively).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="leaderboards", show_default=True,
              help="Folder the Markdown files are written into.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 and print a diff if the Markdown in --out differs from the results.")
def leaderboard(results_dir: str, out_dir: str, check: bool) -> None:
    """Render one Markdown leaderboard per data set x protocol, plus an index README.md."""
    from .. import leaderboard as lb
    from ..errors import UserError
    from ..results import load_all

    problems: list[str] = []
    loaded = load_all(results_dir, problems)
    if problems and not loaded:  # nothing valid: refuse rather than render (and clear) empty boards
        more = f" (and {len(problems) - 1} more invalid file(s))" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    rendered = lb.render(loaded)
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    if check and problems:
        click.echo(f"{len(problems)} result file(s) in {results_dir} are invalid (see above)", err=True)
        raise SystemExit(1)
    if check:
        delta = lb.diff(out_dir, rendered)
        if delta:
            click.echo(delta, nl=False)
            click.echo(f"leaderboards in {out_dir} differ from what {results_dir} renders; run "
                       f"`animerec-bench leaderboard --results {results_dir} --out {out_dir}`", err=True)
            raise SystemExit(1)
        click.echo(f"leaderboards in {out_dir} match {results_dir} ({len(rendered)} file(s))")
        return
    written = lb.write(out_dir, rendered)
    click.echo(f"{len(rendered)} file(s) in {out_dir}, {len(written)} changed")
