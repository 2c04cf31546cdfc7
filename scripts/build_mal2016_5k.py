#!/usr/bin/env python3
"""Build the embedded ``mal2016-5k`` data set from the caserec 5,000-user sample.

Reads ``anime.zip`` (caserec's re-keyed history and ratings), ``caserec_to_mal_anime_id.csv``
and CooperUnion's ``anime.csv`` from SOURCE (default ``../shared/data/mal2016-5k``), and writes
into OUT (default ``animerec_bench/data``):

- ``mal2016-5k.parquet``: every completed entry of the 5,000 users, anime re-keyed to
  MyAnimeList ids, ``rating`` 1-10 or 0 where unscored, ``status`` 2 (completed) for all;
  sorted by (user_id, anime_id), zstd-compressed.
- ``mal2016-5k-titles.parquet``: anime_id -> title for display.

Deterministic: the same inputs give byte-identical content (checked by a test through the
content fingerprint).  Usage: ``python scripts/build_mal2016_5k.py [--source DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "mal2016-5k"
DEFAULT_OUT = HERE.parent / "animerec_bench" / "data"
NAME = "mal2016-5k"


def _read_dat(zf: zipfile.ZipFile, member: str) -> pd.DataFrame:
    with zf.open(member) as fh:
        return pd.read_csv(io.BytesIO(fh.read()), sep="\t", dtype="int64")


def build(source: Path) -> tuple[pa.Table, pa.Table]:
    """The canonical interactions table and the titles table, built from ``source``."""
    with zipfile.ZipFile(source / "anime.zip") as zf:
        history = _read_dat(zf, "anime/anime_history.dat")
        ratings = _read_dat(zf, "anime/anime_ratings.dat")
    id_map = pd.read_csv(source / "caserec_to_mal_anime_id.csv", dtype="int64")
    mapping = dict(zip(id_map.caserec_anime_id, id_map.mal_anime_id))

    history = history.rename(columns={"User_ID": "user_id", "Anime_ID": "caserec_id"})
    ratings = ratings.rename(columns={"User_ID": "user_id", "Anime_ID": "caserec_id",
                                      "Feedback": "rating"})
    rows = history[["user_id", "caserec_id"]].merge(ratings, on=["user_id", "caserec_id"],
                                                    how="left", validate="one_to_one")
    missing = set(rows.caserec_id.unique()) - set(mapping)
    if missing:
        raise SystemExit(f"{source / 'caserec_to_mal_anime_id.csv'}: no MAL id for caserec anime {sorted(missing)[:5]}")
    rows["anime_id"] = rows.caserec_id.map(mapping)
    rows["rating"] = rows.rating.fillna(0)
    rows = rows.sort_values(["user_id", "anime_id"], kind="stable").reset_index(drop=True)
    interactions = pa.table({
        "user_id": pa.array(rows.user_id.to_numpy(np.int32)),
        "anime_id": pa.array(rows.anime_id.to_numpy(np.int32)),
        "rating": pa.array(rows.rating.to_numpy(np.int8)),
        "status": pa.array(np.full(len(rows), 2, dtype=np.int8)),
    })

    anime = pd.read_csv(source / "anime.csv", usecols=["anime_id", "name"])
    used = np.unique(rows.anime_id.to_numpy())
    anime = anime[anime.anime_id.isin(used)].sort_values("anime_id")
    titles = pa.table({"anime_id": pa.array(anime.anime_id.to_numpy(np.int32)),
                       "title": pa.array(anime.name.astype(str).tolist(), pa.string())})
    return interactions, titles


def write(interactions: pa.Table, titles: pa.Table, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{NAME}.parquet", out / f"{NAME}-titles.parquet"]
    for table, path in zip((interactions, titles), paths):
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd", compression_level=19)
        tmp.replace(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    interactions, titles = build(args.source)
    for path in write(interactions, titles, args.out):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    print(f"{interactions.num_rows} rows, "
          f"{len(np.unique(interactions.column('user_id').to_numpy()))} users, "
          f"{len(np.unique(interactions.column('anime_id').to_numpy()))} anime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
