#!/usr/bin/env python3
"""Build the embedded anime metadata of ``mal2016-5k`` from CooperUnion's ``anime.csv``.

Writes ``mal2016-5k-anime.parquet`` into OUT (default ``animerec_bench/data``): one row per
anime of the catalogue (all 12,294 rows of ``anime.csv``, not only the 7,390 anime the sample's
users watched: ``season-v1``'s hard candidates are every catalogue anime from the test cut on),
sorted by MyAnimeList id, with the columns models may see:

- ``anime_id`` (int32), ``name`` (string), ``genres`` (list of strings, the CSV's
  comma-separated ``genre``; empty when missing), ``type`` (string, null when missing),
  ``episodes`` (int32, null where the CSV says ``Unknown``).

Never ``rating`` (MAL's mean score) nor ``members``: both are measured after a show airs and
would leak the answer of the cold-start protocols; they are not read at all.
Deterministic (a test rebuilds it and compares).  Usage:
``python scripts/build_anime_metadata.py [--source DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "mal2016-5k"
DEFAULT_OUT = HERE.parent / "animerec_bench" / "data"
INTERACTIONS = DEFAULT_OUT / "mal2016-5k.parquet"
NAME = "mal2016-5k-anime.parquet"
#: The only columns read from anime.csv (the leak columns rating and members are not).
COLUMNS = ["anime_id", "name", "genre", "type", "episodes"]


def build(source: Path, interactions: Path = INTERACTIONS) -> pa.Table:
    """The metadata table of every catalogue anime of ``source / 'anime.csv'`` (each anime of
    ``interactions`` must have a row)."""
    csv = pd.read_csv(source / "anime.csv", usecols=COLUMNS, dtype={"anime_id": "int64"},
                      keep_default_na=False)
    used = np.unique(pq.read_table(interactions, columns=["anime_id"]).column("anime_id").to_numpy())
    missing = np.setdiff1d(used, csv.anime_id.to_numpy())
    if len(missing):
        raise SystemExit(f"{source / 'anime.csv'}: no row for anime {missing[:5].tolist()}")
    csv = csv.drop_duplicates("anime_id", keep="last").sort_values("anime_id", kind="stable")
    genres = [sorted({g.strip() for g in text.split(",") if g.strip()}) for text in csv.genre]
    episodes = [int(e) if e.strip().isdigit() else None for e in csv.episodes.astype(str)]
    return pa.table({
        "anime_id": pa.array(csv.anime_id.to_numpy(np.int32)),
        "name": pa.array(csv.name.astype(str).tolist(), pa.string()),
        "genres": pa.array(genres, pa.list_(pa.string())),
        "type": pa.array([t or None for t in csv.type.astype(str)], pa.string()),
        "episodes": pa.array(episodes, pa.int32()),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    table = build(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / NAME
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=19)
    tmp.replace(path)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, {table.num_rows} anime)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
