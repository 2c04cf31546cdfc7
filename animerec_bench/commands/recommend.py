"""``animerec-bench recommend``: the best anime for a MyAnimeList list, by a fitted model."""

from __future__ import annotations

import json

import click

from animerec_bench.commands.fit import dataset_options, progress_printer
from animerec_bench.commands.options import plugins_dir_option


@click.command("recommend")
@click.option("-m", "--model", default="ease", show_default=True, metavar="NAME",
              help="Model (one with fold_in: ease, mf-biased, two-tower, most-popular, ...).")
@click.option("--list", "list_path", required=True, type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Your list: MyAnimeList's export (.xml or .xml.gz) or a CSV of anime_id,score,status.")
@click.option("-k", "k", type=click.IntRange(min=1, max=1000), default=20, show_default=True,
              help="How many anime to recommend.")
@click.option("--new-only", is_flag=True,
              help="Only the newest anime (the season-v1 rule: the newest 5%, by MyAnimeList id, of the anime "
                   "with >= 5 example pairs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@dataset_options
@plugins_dir_option
def recommend(model: str, list_path: str, k: int, new_only: bool, as_json: bool, dataset: str, protocol: str,
              plugins_dir: str | None) -> None:
    """Recommend anime for the owner of a MyAnimeList list. Nothing on the list comes back (in any
    status); the model is fitted on all of the data set on first use, then reused."""
    import time

    from animerec_bench import api
    from animerec_bench.commands.options import load_plugins
    from animerec_bench.data.mal_list import read_list

    t0 = time.perf_counter()
    anime_list = read_list(list_path)  # a bad file is refused first, in well under a second
    parse_seconds = time.perf_counter() - t0
    registry, _ = load_plugins(plugins_dir)  # says on stderr which loose plugin files run
    out = api.recommendations(
        model, anime_list, k, dataset=dataset, protocol=protocol, new_only=new_only, registry=registry,
        on_progress=progress_printer(model),
        on_fit_start=lambda: click.echo(f"fitting {model} on all of {dataset} (first use; it is saved for next "
                                        f"time)...", err=True))
    out.seconds["parse"] = parse_seconds
    m = out.match
    summary = {"entries": out.entries, "liked": m.liked, "disliked": m.disliked, "unknown_taste": m.unknown_taste,
               "unknown_ids": m.unknown_ids.tolist(), "candidates": out.candidates}
    if out.flat:
        click.echo(f"warning: {model} scores every candidate the same for this list (it knows none of your liked "
                   f"anime: completed with a score above 5), so the order below means nothing", err=True)
    if as_json:
        click.echo(json.dumps({"model": model, "dataset": dataset, "protocol": protocol, "new_only": new_only,
                               "list": summary, "flat": out.flat, "seconds": {s: round(v, 4) for s, v in out.seconds.items()},
                               "recommendations": out.rows}, indent=1))
        return
    click.echo(_table(out.rows))
    unknown = f"; {len(m.unknown_ids)} not in {dataset} (ignored): {_ids(m.unknown_ids)}" if len(m.unknown_ids) else ""
    click.echo(f"\n{model} on {dataset}; your list: {out.entries} entries ({m.liked} liked, {m.disliked} disliked, "
               f"{m.unknown_taste} of unknown taste){unknown}; {out.candidates} candidates"
               f"{' (newest only)' if new_only else ''}.", err=True)


def _ids(ids) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _table(rows: list[dict]) -> str:
    from tabulate import tabulate

    body = [[r["rank"], _cut(r["title"], 45), r["url"], r["type"] or "", r["episodes"] or "",
             _cut(r["genres"] or "", 40), f"{r['score']:.3f}", _cut(r["why"] or "", 50)] for r in rows]
    return tabulate(body, headers=["#", "title", "MyAnimeList", "type", "eps", "genres", "score", "why"],
                    disable_numparse=True)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
