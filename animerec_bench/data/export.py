"""``data export-split``: one split as plain files with the original ids, plus its provenance.

So anyone can score their usual library (Surprise, scikit-learn, LensKit, ...) on exactly the
pairs a leaderboard was scored on: ``train``, ``validation`` and ``test`` as Parquet or CSV
with ``user_id``, ``anime_id`` (MyAnimeList's ids), ``rating`` (0 = not a rating example) and
``label`` (-1 = not an interaction example), and ``split.json`` with the fingerprints of the
split and the data set, the protocol and its parameters, the seed and the counts. Pairs whose
user or anime never appears in train are not in the split's parts, so not in the files either
(``split.json`` counts them). The folder appears whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench.errors import UserError
from animerec_bench.support.atomic import atomic_path
from animerec_bench.support.version import __version__

if TYPE_CHECKING:
    import pyarrow as pa

    from animerec_bench.data.protocol import Split

FORMATS = ("parquet", "csv")
#: File name (without suffix) of each part of the split, in the split's own part order.
PART_FILES = {"train": "train", "valid": "validation", "test": "test"}
COLUMNS = {
    "user_id": "MyAnimeList user id (as in the data set)",
    "anime_id": "MyAnimeList anime id (as in the data set)",
    "rating": "1-10 for a rating example, 0 when the pair is not a rating example",
    "label": "1 positive / 0 negative for an interaction example, -1 when the pair is not one",
}


def check_target(out: Path | str, fmt: str, *, force: bool) -> Path:
    """Refuse a bad format or an existing non-empty folder before any work is done."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, expected a folder to create")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out}: folder exists and is not empty; give --force to replace it")
    return out


def part_table(split: Split, part: str) -> pa.Table:
    """One part with the original ids: user_id, anime_id (int64), rating, label (int8)."""
    import pyarrow as pa

    p = split.part(part)
    rating = np.asarray(p.rating)
    if not np.array_equal(rating, np.round(rating)):  # protocol v1's ratings are whole numbers
        raise ValueError(f"part {part!r} holds fractional ratings; export expects whole 0-10 ratings")
    return pa.table({
        "user_id": pa.array(split.user_ids[p.user].astype(np.int64)),
        "anime_id": pa.array(split.anime_ids[p.item].astype(np.int64)),
        "rating": pa.array(rating.astype(np.int8)),
        "label": pa.array(np.asarray(p.label).astype(np.int8)),
    })


def export_split(split: Split, out: Path | str, fmt: str = "parquet", *, force: bool = False,
                 dataset_label: str | None = None) -> dict:
    """Write ``split`` into the folder ``out`` (atomically); return what ``split.json`` says."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    out = check_target(out, fmt, force=force)
    meta = {
        "format": fmt,
        "split_fingerprint": split.fingerprint,
        "dataset": split.dataset,
        "dataset_label": dataset_label or split.dataset,
        "dataset_fingerprint": split.dataset_fingerprint,
        "protocol": split.protocol,
        "protocol_params": split.protocol_params,
        "seed": split.seed,
        "columns": COLUMNS,
        "parts": {},
        "cold_pairs_note": "validation/test pairs whose user or anime is not in train are left out of the "
                           "files and of scoring; 'stats' counts them",
        "stats": split.stats,
        "animerec_bench_version": __version__,
    }
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for part, stem in PART_FILES.items():
            table = part_table(split, part)
            path = tmp / f"{stem}.{fmt}"
            if fmt == "parquet":
                pq.write_table(table, path)
            else:
                pa_csv.write_csv(table, path)
            rating = table.column("rating").to_numpy()
            label = table.column("label").to_numpy()
            meta["parts"][stem] = {
                "file": path.name,
                "sha256": _sha256(path),
                "pairs": table.num_rows,
                "rating_examples": int((rating > 0).sum()),
                "interaction_examples": int((label >= 0).sum()),
                "users": int(len(np.unique(table.column("user_id").to_numpy()))),
                "anime": int(len(np.unique(table.column("anime_id").to_numpy()))),
            }
        (tmp / "split.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
