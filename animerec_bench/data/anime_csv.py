"""The 2020 data set's ``anime.csv`` (35 columns, ``"Unknown"`` where MAL has nothing) -> the
titles and the anime metadata models' features are built from.

Read: ``MAL_ID``, ``Name``, ``Genres``, ``Type``, ``Episodes``, ``Studios``, ``Source`` (features)
and ``Aired`` / ``Premiered`` (the air date ``season-v1`` orders anime by: the start of
``Aired``, else the first day of the ``Premiered`` season). Never read: ``Score``, ``Ranked``,
``Popularity``, ``Members``, ``Favorites``, the status counts and ``Score-10`` ... ``Score-1``:
measured after a show airs, they would leak the answer (:data:`.features.LEAK_COLUMNS`). The
file is small (17,562 rows), so it is parsed with the csv module and every bad field is one line
naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import datetime
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from animerec_bench.errors import DataError

INT32_MAX = 2**31 - 1
#: The columns that make an anime.csv a metadata file (a titles-only file has just MAL_ID, Name).
REQUIRED = ("MAL_ID", "Name", "Genres", "Type", "Episodes")
#: Read when present.
OPTIONAL = ("Aired", "Premiered", "Studios", "Source")
#: MyAnimeList's words for "nothing known".
_NONE = {"", "unknown", "not available", "?", "none found, add some", "add some"}
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), 1)}
_SEASONS = {"Winter": 1, "Spring": 4, "Summer": 7, "Fall": 10}
_DAY = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}), *(\d{4})")
_MONTH = re.compile(r"([A-Z][a-z]{2}),? +(\d{4})")
_YEAR = re.compile(r"(\d{4})")
_SEASON = re.compile(r"(Winter|Spring|Summer|Fall) +(\d{4})")
METADATA_SCHEMA = pa.schema([("anime_id", pa.int32()), ("name", pa.string()), ("genres", pa.list_(pa.string())),
                             ("type", pa.string()), ("episodes", pa.int32()), ("studios", pa.list_(pa.string())),
                             ("source", pa.string()), ("aired", pa.date32())])


def is_metadata(names: list[str]) -> bool:
    """Whether an anime.csv header is the 2020 metadata format (else only titles are read)."""
    return all(c in names for c in REQUIRED)


class _Bad(ValueError):
    """One field's problem: (column, expected); the caller adds file, row and what was found."""

    def __init__(self, column: str, expected: str) -> None:
        super().__init__(column)
        self.column, self.expected = column, expected


def _known(text: str) -> str | None:
    text = text.strip()
    return None if text.lower() in _NONE else text


def _list(text: str) -> list[str]:
    value = _known(text)
    return sorted({v.strip() for v in value.split(",") if v.strip()}) if value else []


def _episodes(text: str) -> int | None:
    value = _known(text)
    if value is None:
        return None
    if not value.isdigit() or int(value) > INT32_MAX:
        raise _Bad("Episodes", "a whole number or 'Unknown'")
    return int(value)


def _date(text: str) -> datetime.date | None:
    """The first day ``Aired``'s start names (``Apr 3, 1998``, ``Apr 1998``, ``1998``), or None."""
    start = _known(text.split(" to ")[0])
    if start is None:
        return None
    for pattern in (_DAY, _MONTH, _YEAR):
        m = pattern.fullmatch(start)
        if m is None or (pattern is not _YEAR and m.group(1) not in _MONTHS):
            continue
        year = int(m.groups()[-1])
        month = _MONTHS[m.group(1)] if pattern is not _YEAR else 1
        day = int(m.group(2)) if pattern is _DAY else 1
        try:
            return datetime.date(year, month, day)
        except ValueError:
            break
    raise _Bad("Aired", "a date like 'Apr 3, 1998', 'Apr 1998' or '1998' (optionally followed by ' to ...'), "
                        "or 'Unknown'")


def _season(text: str) -> datetime.date | None:
    value = _known(text)
    if value is None:
        return None
    m = _SEASON.fullmatch(value)
    if m is None:
        raise _Bad("Premiered", "a season like 'Spring 1998', or 'Unknown'")
    return datetime.date(int(m.group(2)), _SEASONS[m.group(1)], 1)


def _row(fields: list[str], at: dict[str, int]) -> tuple:
    """One row's values in :data:`METADATA_SCHEMA` order (``at``: each read column's position)."""

    def get(column: str) -> str:
        return fields[at[column]] if column in at else ""

    raw_id = get("MAL_ID").strip()
    if not (raw_id.isdigit() and int(raw_id) <= INT32_MAX):
        raise _Bad("MAL_ID", f"an integer 0-{INT32_MAX}")
    aired = _date(get("Aired"))
    premiered = _season(get("Premiered"))
    return (int(raw_id), get("Name"), _list(get("Genres")), _known(get("Type")), _episodes(get("Episodes")),
            _list(get("Studios")), _known(get("Source")), aired or premiered)


def read(path: Path, names: list[str]) -> tuple[pa.Table, pa.Table]:
    """(titles: anime_id, title; metadata: :data:`METADATA_SCHEMA`) of the 2020 ``anime.csv`` at
    ``path`` whose header is ``names``; one row per anime (the last wins), sorted by id."""
    at = {c: names.index(c) for c in REQUIRED + OPTIONAL if c in names}
    rows: dict[int, tuple] = {}
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for number, fields in enumerate(reader, 1):
            if not fields:
                continue
            where = f"{path}: row {number} (line {reader.line_num})"
            if len(fields) != len(names):
                raise DataError(f"{where}: expected {len(names)} comma-separated fields (the header's), found "
                                f"{len(fields)}")
            try:
                row = _row(fields, at)
            except _Bad as bad:
                found = fields[at[bad.column]].strip()
                raise DataError(f"{where}, column '{bad.column}': expected {bad.expected}, found "
                                f"{found[:60]!r}" if found else f"{where}, column '{bad.column}': expected "
                                f"{bad.expected}, found an empty field") from None
            rows[row[0]] = row
    ordered = [rows[k] for k in sorted(rows)]
    columns: list[tuple] = list(zip(*ordered)) if ordered else [() for _ in METADATA_SCHEMA]
    metadata = pa.table([pa.array(list(col), type=f.type) for col, f in zip(columns, METADATA_SCHEMA)],
                        schema=METADATA_SCHEMA)
    titles = pa.table({"anime_id": metadata.column("anime_id"), "title": metadata.column("name")})
    return titles, metadata


def summary(metadata: pa.Table) -> dict:
    """What meta.json says of the imported metadata."""
    aired = metadata.column("aired")
    return {"file": "anime.parquet", "anime": metadata.num_rows, "with_air_date": int(len(aired) - aired.null_count),
            "columns": list(metadata.column_names),
            "first_air_date": str(np.min(aired.drop_null().to_numpy())) if len(aired) > aired.null_count else None}
