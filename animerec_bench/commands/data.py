"""``animerec-bench data``: import the Kaggle 2020 files, generate synthetic data, describe a data set.

Heavy modules (numpy, pyarrow) are imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import sys

import click

from animerec_bench.commands.options import load_plugins, plugins_dir_option


@click.group("data")
def data() -> None:
    """Import, generate and describe data sets."""


@data.command("import")
@click.argument("source", metavar="DIR", type=click.Path(path_type=str))
@click.option("--name", default=None,
              help="Name of the imported data set (a folder in the cache). Default: mal2020 for the "
                   "real files, the folder's own name for a folder written by 'data synth'.")
def import_(source: str, name: str | None) -> None:
    """Import the Kaggle 'Anime Recommendation Database 2020' files from DIR.

    DIR holds animelist.csv (or only rating_complete.csv: status 'completed' for every row)
    and, optionally, anime.csv for titles. A folder written by 'data synth' imports the same
    way, is labelled synthetic and is named after its folder (never mal2020) unless --name
    says otherwise. Re-importing replaces the earlier import atomically.
    """
    from animerec_bench.data.importer import import_folder

    meta = import_folder(source, name, progress=sys.stderr.isatty())
    kind = " (synthetic)" if meta["synthetic"] else ""
    click.echo(f"imported {meta['name']}{kind}: {meta['rows']:,} rows, {meta['users']:,} users, "
               f"{meta['anime']:,} anime; {meta['duplicates_dropped']:,} duplicated (user, anime) rows "
               f"dropped (the last kept)")
    click.echo(f"fingerprint {meta['fingerprint']}")
    click.echo(f"stored in {meta['path']}")


@data.command("synth")
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Number of (user, anime) rows.")
@click.option("--users", type=click.IntRange(min=1), required=True, help="Number of users.")
@click.option("--anime", type=click.IntRange(min=2), required=True, help="Number of anime.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--out", type=click.Path(path_type=str), required=True,
              help="Folder to write (Kaggle format: animelist.csv, anime.csv, SYNTHETIC.json).")
def synth(rows: int, users: int, anime: int, seed: int, out: str) -> None:
    """Write a seeded synthetic data set in the Kaggle 2020 format (then: data import OUT)."""
    from animerec_bench.data.synth import SynthParams, write

    write(SynthParams(rows=rows, users=users, anime=anime, seed=seed), out)
    click.echo(f"wrote {rows:,} synthetic rows to {out} (import it with: animerec-bench data import {out}; "
               f"it is named after the folder unless you give --name NAME)")


def describe_dataset(ds) -> dict:
    """What ``data info`` shows, as plain data."""
    import numpy as np

    from animerec_bench.data.importer import count_distinct
    from animerec_bench.dataset import STATUSES

    table = ds.table()
    user = table.column("user_id").to_numpy()
    anime = table.column("anime_id").to_numpy()
    rating = np.bincount(table.column("rating").to_numpy().astype(np.int64), minlength=11)
    status = np.bincount(table.column("status").to_numpy().astype(np.int64), minlength=7)
    return {
        "name": ds.name, "label": ds.label, "synthetic": ds.synthetic, "source": ds.source,
        "licence": ds.licence, "description": ds.description, "fingerprint": ds.fingerprint,
        "rows": int(table.num_rows), "users": count_distinct(user), "anime": count_distinct(anime),
        "rating_distribution": {str(r): int(rating[r]) for r in range(len(rating)) if rating[r] or r <= 10},
        "status_distribution": {str(s): int(status[s]) for s in STATUSES},
        "status_names": {str(s): n for s, n in STATUSES.items()},
    }


@data.command("info")
@click.option("--dataset", "name", default="mal2016-5k", show_default=True, help="Registered data set name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@plugins_dir_option
def info(name: str, as_json: bool, plugins_dir: str | None) -> None:
    """Rows, users, anime, rating and status distributions, fingerprint and provenance of a data set."""
    registry = load_plugins(plugins_dir)[0]
    for warning in registry.warnings:  # e.g. a broken meta.json: that folder is skipped, the rest load
        click.echo(f"warning: {warning}", err=True)
    d = describe_dataset(registry.dataset(name))
    if as_json:
        click.echo(json.dumps(d, indent=2, sort_keys=True))
        return
    from tabulate import tabulate

    click.echo(f"data set     {d['label']}")
    click.echo(f"source       {d['source']}")
    click.echo(f"licence      {d['licence']}")
    if d["description"]:
        click.echo(f"description  {d['description']}")
    click.echo(f"fingerprint  {d['fingerprint']}")
    click.echo(f"rows         {d['rows']:,}")
    click.echo(f"users        {d['users']:,}")
    click.echo(f"anime        {d['anime']:,}")
    n = max(d["rows"], 1)
    click.echo()
    click.echo(tabulate([[r if r != "0" else "0 (not scored)", c, f"{100 * c / n:.1f}%"]
                         for r, c in d["rating_distribution"].items()],
                        ["rating", "rows", "share"], tablefmt="github"))
    click.echo()
    click.echo(tabulate([[f"{s} {d['status_names'][s]}", c, f"{100 * c / n:.1f}%"]
                         for s, c in d["status_distribution"].items()],
                        ["status", "rows", "share"], tablefmt="github"))


@data.command("export-split")
@click.option("--dataset", "name", default="mal2016-5k", show_default=True, help="Registered data set name.")
@click.option("--protocol", default="v1", show_default=True, help="Protocol (split and label rules).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the split.")
@click.option("--format", "fmt", default="parquet", show_default=True, metavar="parquet|csv",
              help="File format of train, validation and test.")
@click.option("--out", type=click.Path(path_type=str), required=True, help="Folder to create.")
@click.option("--force", is_flag=True, help="Replace --out when it is an earlier export (a folder this command "
              "wrote, with its split.json); any other non-empty folder is refused.")
@plugins_dir_option
def export_split_(name: str, protocol: str, seed: int, fmt: str, out: str, force: bool,
                  plugins_dir: str | None) -> None:
    """Write one split (train, validation, test with the original ids) and split.json to OUT.

    To score any other library on exactly the pairs the leaderboards are scored on; with the
    anime features models get (anime.parquet / anime.csv) when the data set has metadata.
    """
    from pathlib import Path

    from animerec_bench.data.export import check_target, export_split
    from animerec_bench.data.protocol import get_protocol
    check_target(out, fmt, force=force)  # before the split is made: that can take a while
    ds = load_plugins(plugins_dir)[0].dataset(name)
    split = get_protocol(protocol).split(ds, seed)
    features = None
    if split.features is not None or (ds.anime_path is not None and Path(ds.anime_path).exists()):
        from animerec_bench.data.features import for_split

        features = for_split(split, ds)  # the anime features models get (issue 23)
    meta = export_split(split, out, fmt, force=force, dataset_label=ds.label, features=features)
    counts = ", ".join(f"{part} {p['pairs']:,}" for part, p in meta["parts"].items())
    click.echo(f"wrote {ds.label} / {meta['protocol']} / seed {seed} to {out} ({fmt}): {counts} pairs"
               + (f"; anime features of {features.n_items:,} anime in anime.{fmt}" if features is not None else ""))
    click.echo(f"split fingerprint {meta['split_fingerprint']}")
