"""``data export-split``: one split as plain files with the original ids, plus its provenance.

So anyone can score their usual library (Surprise, scikit-learn, LensKit, ...) on exactly the
pairs a leaderboard was scored on: ``train``, ``validation`` and ``test`` as Parquet or CSV
with ``user_id``, ``anime_id`` (MyAnimeList's ids), ``rating`` (0 = not a rating example) and
``label`` (-1 = not an interaction example), ``other``: the kept users' pairs that are examples
of neither task (they are left out of the ranking candidates, so a ranking cannot be rebuilt
without them: docs/ranking.md), and ``split.json`` with the fingerprints of the split and the
data set, the protocol and its parameters, the seed and the counts. Pairs whose user or anime
never appears in train are not in the split's parts, so not in the files either (``split.json``
counts them). The folder appears whole or not at all.

``--force`` replaces only a folder this command wrote: one with a ``split.json`` that says so
and nothing but the files an export holds (never a checkout, a data home, or a user's files).

When the data set has anime metadata, ``anime.parquet`` / ``anime.csv`` holds the anime features
the framework gives models (issue 23), one row per non-zero value: ``anime_id``, ``feature``
(``genre=Action``, ``type=TV``, ``episodes=14-26``, ``name=gintama``), ``value``. On a
cold-start protocol a model sees the test anime's rows only when it scores. On ``season-v1``,
``hard_anime`` and ``hard_other`` hold its hard candidates beyond the vocabulary (features) and
the kept users' pairs on them, so its second ranking can be rebuilt too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from animerec_bench.errors import UserError
from animerec_bench.support.atomic import atomic_path
from animerec_bench.support.version import __version__

if TYPE_CHECKING:
    import pyarrow as pa

    from animerec_bench.data.protocol import Split

FORMATS = ("parquet", "csv")
#: File name (without suffix) of each part of the split, in the split's own part order.
PART_FILES = {"train": "train", "valid": "validation", "test": "test", "other": "other"}
#: season-v1's hard candidates beyond the vocabulary: their features, and the pairs the ranking leaves out.
HARD_FILES = ("hard_anime", "hard_other")
COLUMNS = {
    "user_id": "MyAnimeList user id (as in the data set)",
    "anime_id": "MyAnimeList anime id (as in the data set)",
    "rating": "1-10 for a rating example, 0 when the pair is not a rating example",
    "label": "1 positive / 0 negative for an interaction example, -1 when the pair is not one",
}


def check_target(out: Path | str, fmt: str, *, force: bool) -> Path:
    """Where the export goes (a symlink's target), refusing a bad format, the current folder, or a
    non-empty folder (with ``force``: one that is not an earlier export) before any work is done."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    given, out = str(out), Path(out).resolve()  # a symlink: write where it points, the link stays
    if out == Path.cwd().resolve() or out in Path.cwd().resolve().parents:
        raise UserError(f"--out {given}: is the current folder (or holds it); give a folder to create, "
                        f"e.g. --out split0")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {given}: is a file, expected a folder to create")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UserError(f"--out {given}: folder exists and is not empty; give --force to replace it")
        _check_replaceable(out, given)
    return out


def _check_replaceable(out: Path, given: str) -> None:
    """Refuse to replace ``out`` unless this command wrote it: its ``split.json`` is an export's and
    every entry is a file an export holds."""
    meta_path = out / "split.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = None
    if not (isinstance(meta, dict) and "split_fingerprint" in meta and "animerec_bench_version" in meta):
        why = "it has no split.json" if not meta_path.exists() else "its split.json is not an export's"
        raise UserError(f"--out {given}: not an export of this command ({why}); --force only replaces an "
                        f"earlier export")
    stems = [*PART_FILES.values(), "anime", *HARD_FILES]  # anime: the features models get (issue 23)
    ours = {"split.json"} | {f"{stem}.{f}" for stem in stems for f in FORMATS}
    for entry in sorted(out.iterdir()):
        if entry.name not in ours or entry.is_symlink() or not entry.is_file():
            raise UserError(f"--out {given}: holds {entry.name}, which this command did not write; --force "
                            f"only replaces an earlier export (move it away first)")


def part_table(split: Split, part: str) -> pa.Table:
    """One part with the original ids: user_id, anime_id (int64), rating, label (int8)."""
    import pyarrow as pa

    p = split.other if part == "other" else split.part(part)
    assert p is not None
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
                 dataset_label: str | None = None, features=None) -> dict:
    """Write ``split`` into the folder ``out`` (atomically); return what ``split.json`` says.
    ``features``: the split's :class:`~animerec_bench.data.features.ItemFeatures`, written as
    ``anime.<fmt>`` (None: no anime file)."""
    out = check_target(out, fmt, force=force)
    meta = _split_meta(split, fmt, dataset_label)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for part, stem in PART_FILES.items():
            if part == "other" and split.other is None:
                continue  # a split from an older cache format: split() rebuilds those, so not from the CLI
            meta["parts"][stem] = _write_part(part_table(split, part), tmp / f"{stem}.{fmt}", fmt)
        if features is not None:
            meta["anime_features"] = _write_features(features, tmp / f"anime.{fmt}", fmt, split.n_fit_items)
        if split.hard is not None and split.hard_other is not None:
            meta["hard_candidates"] = _write_hard(split, tmp, fmt)
        (tmp / "split.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def _split_meta(split: Split, fmt: str, dataset_label: str | None) -> dict[str, Any]:
    """``split.json`` but for its parts' entries (filled in as each part is written)."""
    from animerec_bench.data.protocol import get_protocol

    meta: dict[str, Any] = {
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
        "ranking_note": "test ranking candidates of a user: every anime_id of train, minus the user's pairs in "
                        "train, validation and other; relevant: the user's test pairs with label 1 "
                        "(docs/ranking.md)",
        "stats": split.stats,
        "animerec_bench_version": __version__,
    }
    if get_protocol(split.protocol).refit:  # season-v2: say how its test model is fitted
        meta["fit_note"] = ("the model scored on test is fitted on train and validation together (rolling "
                            "origin); settings are chosen by fits on train scored on validation")
    return meta


def _write_part(table, path: Path, fmt: str) -> dict[str, Any]:
    """One part's table as ``path`` (Parquet or CSV) and its entry in ``split.json``: file, sha256, counts."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    rating = table.column("rating").to_numpy()
    label = table.column("label").to_numpy()
    return {
        "file": path.name,
        "sha256": _sha256(path),
        "pairs": table.num_rows,
        "rating_examples": int((rating > 0).sum()),
        "interaction_examples": int((label >= 0).sum()),
        "users": int(len(np.unique(table.column("user_id").to_numpy()))),
        "anime": int(len(np.unique(table.column("anime_id").to_numpy()))),
    }


def _write_features(features, path: Path, fmt: str, fit_rows: int) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(features.frame(), preserve_index=False)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return {"file": path.name, "sha256": _sha256(path), "rows": table.num_rows, "anime": features.n_items,
            "features": len(features.names), "fingerprint": features.fingerprint(),
            "seen_only_to_score": sorted(int(a) for a in features.anime_ids[fit_rows:]),
            "note": "genre/type/episodes are 0/1, name is tf-idf (unit length per anime); the first "
                    f"{fit_rows} anime of the split's vocabulary are the ones a model sees while it fits, "
                    "the rest (held-out anime) only when it scores; MAL's score and members are never features"}


def _write_table(table, path: Path, fmt: str) -> dict:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return {"file": path.name, "sha256": _sha256(path), "rows": table.num_rows}


def _write_hard(split: Split, tmp: Path, fmt: str) -> dict:
    """season-v1's hard candidates (docs/protocol.md): the features of the catalogue's anime beyond
    the vocabulary (``hard_anime``, as ``anime``) and the kept users' pairs on them (``hard_other``),
    which that ranking leaves out of the candidates."""
    import pyarrow as pa

    pairs = split.hard_other
    assert pairs is not None
    anime = split.hard.anime_ids[np.asarray(pairs.item) - split.n_items]
    excluded = pa.table({"user_id": pa.array(split.user_ids[pairs.user].astype(np.int64)),
                         "anime_id": pa.array(anime.astype(np.int64))})
    return {**{k: v for k, v in split.stats["hard"].items()},
            "features": _write_table(pa.Table.from_pandas(split.hard.frame(), preserve_index=False),
                                     tmp / f"hard_anime.{fmt}", fmt),
            "excluded": _write_table(excluded, tmp / f"hard_other.{fmt}", fmt),
            "note": "hard-candidate ranking: the same relevant test pairs over the test anime and every anime of "
                    "hard_anime (MAL id order, or air date when the split says so, at or after the test cut), "
                    "minus the user's pairs in train, validation, other and hard_other"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
