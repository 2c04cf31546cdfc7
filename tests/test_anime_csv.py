"""The 2020 data set's anime.csv (issue 23): imported with the interactions, features and air dates
read, the leak columns never; season-v1 orders its anime by air date; bad rows are one line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from animerec_bench.data import features as features_mod
from animerec_bench.data.anime_csv import METADATA_SCHEMA
from animerec_bench.data.importer import import_folder
from animerec_bench.data.protocol import get_protocol
from animerec_bench.errors import DataError

from .conftest import FIXTURES

ANIME = FIXTURES / "mal2020-anime" / "anime.csv"
SAMPLES = FIXTURES / "mal2020-samples"
CLI = Path(sys.executable).parent / "animerec-bench"
#: anime.csv's columns measured after a show airs (features.LEAK_COLUMNS, lower-cased).
LEAKS = ["Score", "Ranked", "Popularity", "Members", "Favorites", "Watching", "Completed", "On-Hold", "Dropped",
         "Plan to Watch", *(f"Score-{i}" for i in range(1, 11))]


def _dataset(name: str):
    from animerec_bench.builtin.datasets import imported_datasets

    return next(d for d in imported_datasets() if d.name == name)


def _folder(tmp_path: Path, name: str, anime_text: str, interactions: Path | None = None) -> Path:
    src = tmp_path / name
    src.mkdir()
    shutil.copy(interactions or SAMPLES / "animelist.csv", src / "animelist.csv")
    (src / "anime.csv").write_text(anime_text, encoding="utf-8")
    return src


def _other_leaks(text: str) -> str:
    """The same file with every leak column's value changed (what a later scrape would say)."""
    rows = list(csv.reader(text.splitlines()))
    at = [rows[0].index(c) for c in LEAKS]
    for i, row in enumerate(rows[1:]):
        for j in at:
            row[j] = str(1 + (i * 31 + j * 7) % 997)
    out = []
    for row in rows:
        line = []
        for field in row:
            line.append(f'"{field}"' if "," in field else field)
        out.append(",".join(line))
    return "\n".join(out) + "\n"


def test_data_import_reads_anime_csv_and_never_a_leak_column(fresh_home, tmp_path):
    """A real `data import` of the real interaction samples with a 35-column anime.csv: titles,
    features (genres, type, episodes, title words, studios, source) and air dates arrive; a copy
    whose leak columns all differ imports to the same metadata and the same features."""
    text = ANIME.read_text(encoding="utf-8")
    src = _folder(tmp_path, "with-anime", text)
    done = subprocess.run([str(CLI), "data", "import", str(src), "--name", "a2020"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    folder = fresh_home / "datasets" / "a2020"
    table = pq.read_table(folder / "anime.parquet")
    assert table.schema.names == METADATA_SCHEMA.names
    assert not {n.lower() for n in table.schema.names} & features_mod.LEAK_COLUMNS
    meta = json.loads((folder / "meta.json").read_text())["anime_metadata"]
    assert (meta["anime"], meta["with_air_date"], meta["first_air_date"]) == (26, 25, "1995-10-04")
    rows = {r["anime_id"]: r for r in table.to_pylist()}
    bebop = rows[1]
    assert (bebop["name"], bebop["type"], bebop["episodes"], str(bebop["aired"])) == ("Cowboy Bebop", "TV", 26,
                                                                                       "1998-04-03")
    assert bebop["genres"][:2] == ["Action", "Adventure"] and bebop["studios"] == ["Sunrise"]
    assert rows[21]["episodes"] is None and str(rows[21]["aired"]) == "1999-10-20"  # "Unknown", "... to ?"
    assert str(rows[42938]["aired"]) == "2021-04-01" and rows[199]["source"] == "Original"  # "Apr 2021"
    assert rows[44524]["aired"] is None and rows[44524]["studios"] == [] and rows[44524]["type"] is None
    assert pq.read_table(folder / "titles.parquet").num_rows == 26

    import_folder(_folder(tmp_path, "other-leaks", _other_leaks(text)), "b2020")
    other = pq.read_table(fresh_home / "datasets" / "b2020" / "anime.parquet")
    assert other.equals(table)
    a, b = _dataset("a2020"), _dataset("b2020")
    assert a.anime_path is not None and a.anime_fingerprint == b.anime_fingerprint
    split = get_protocol("v1").split(a, 0)
    built = [features_mod.for_split(split, ds) for ds in (a, b)]
    assert built[0].fingerprint() == built[1].fingerprint()
    kinds = {n.split("=")[0] for n in built[0].names}
    assert kinds <= {"genre", "type", "episodes", "name", "studio", "source"} and "source" in kinds


def _season_ratings(path: Path, anime: list[int]) -> None:
    """30 users who rated every one of ``anime`` (completed): each anime has 30 example pairs."""
    lines = ["user_id,anime_id,rating,watching_status,watched_episodes"]
    lines += [f"{u},{a},{1 + (u * 7 + a) % 10},2,1" for u in range(30) for a in anime]
    path.write_text("\n".join(lines) + "\n")


def test_season_v1_orders_by_air_date_on_2020_data(fresh_home, tmp_path):
    """23 dated anime with ratings and one never dated: the two newest by air date are held out,
    Shingeki no Kyojin S3 (id 35760, Jul 2018) the validation anime, although Boku no Hero
    Academia S3 (id 36456, Apr 2018) has the higher id; the undated one is left out; the hard
    candidates are the catalogue anime aired from Kimetsu no Yaiba (Apr 2019) on."""
    rows = list(csv.reader(ANIME.read_text(encoding="utf-8").splitlines()))[1:]
    rated = [int(r[0]) for r in rows if int(r[0]) <= 38000] + [44524]
    ratings = tmp_path / "ratings.csv"
    _season_ratings(ratings, rated)
    import_folder(_folder(tmp_path, "season", ANIME.read_text(encoding="utf-8"), ratings), "s2020")
    split = get_protocol("season-v1").split(_dataset("s2020"), 0)
    ids = {p: split.anime_ids[slice(*split.item_range(p))].tolist() for p in ("train", "valid", "test")}
    assert ids["valid"] == [35760] and ids["test"] == [38000]
    assert 36456 in ids["train"] and 44524 not in split.anime_ids
    assert split.stats["order"] == {"by": "air_date", "undated_anime": 1}
    assert split.stats["hard"]["anime"] == 3 and split.hard.anime_ids.tolist() == [40748, 42938]
    by_id = replace(split, stats={**split.stats, "order": {"by": "mal_id", "undated_anime": 1}})
    assert by_id.fingerprint != split.fingerprint  # the order is part of the fingerprint
    assert {n.split("=")[0] for n in split.features.names} >= {"studio", "source"}
    assert np.isfinite(split.features.matrix.data).all()


BAD = [
    ("Episodes", "twelve", "column 'Episodes': expected a whole number or 'Unknown', found 'twelve'"),
    ("Aired", "sometime in 1998", "column 'Aired': expected a date like 'Apr 3, 1998'"),
    ("Aired", "Foo 3, 1998", "column 'Aired': expected a date like 'Apr 3, 1998'"),
    ("Premiered", "Autumn 1998", "column 'Premiered': expected a season like 'Spring 1998', or 'Unknown', "
                                 "found 'Autumn 1998'"),
    ("MAL_ID", "x6", "column 'MAL_ID': expected an integer 0-2147483647, found 'x6'"),
]


@pytest.mark.parametrize("column,value,message", BAD, ids=[f"{c}={v}" for c, v, _ in BAD])
def test_a_bad_anime_csv_field_is_one_line_naming_file_row_and_column(fresh_home, tmp_path, column, value, message):
    rows = list(csv.reader(ANIME.read_text(encoding="utf-8").splitlines()))
    rows[3][rows[0].index(column)] = value  # data row 3 (line 4): Trigun's place, One Piece here
    text = "\n".join(",".join(f'"{f}"' if "," in f else f for f in row) for row in rows) + "\n"
    src = _folder(tmp_path, "bad", text)
    with pytest.raises(DataError) as err:
        import_folder(src, "bad2020")
    line = str(err.value)
    assert line.startswith(f"{src / 'anime.csv'}: row 3 (line 4), ") and message in line and "\n" not in line
    assert not (fresh_home / "datasets" / "bad2020").exists()


def test_a_short_anime_csv_row_is_one_line(fresh_home, tmp_path):
    lines = ANIME.read_text(encoding="utf-8").splitlines()
    lines[2] = "20,Naruto,7.91"
    src = _folder(tmp_path, "short", "\n".join(lines) + "\n")
    proc = subprocess.run([str(CLI), "data", "import", str(src), "--name", "short2020"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip() == (f"Error: {src / 'anime.csv'}: row 2 (line 3): expected 35 comma-separated "
                                   f"fields (the header's), found 3")
