"""Built-in data sets: the embedded ``mal2016-5k`` and every data set imported into the cache."""

from __future__ import annotations

import json
import re
import shlex
import warnings
from pathlib import Path

from animerec_bench import hookimpl
from animerec_bench.dataset import Dataset, DatasetWarning
from animerec_bench.support import paths
from animerec_bench.support.atomic import sweep_stale_temporaries

DATA = Path(__file__).resolve().parent.parent / "data"

MAL2016_5K = Dataset(
    name="mal2016-5k",
    source=("Kaggle 'Anime Recommendations Database' (CooperUnion, 2016, scraped from MyAnimeList), "
            "5,000-user sample by Arthur Fortes (caserec), re-keyed to MyAnimeList anime ids"),
    licence="CC0 Public Domain (as stated on Kaggle); MyAnimeList's terms govern its users' data",
    path=DATA / "mal2016-5k.parquet",
    titles_path=DATA / "mal2016-5k-titles.parquet",
    anime_path=DATA / "mal2016-5k-anime.parquet",  # built by scripts/build_anime_metadata.py
    description="every completed entry of 5,000 users; rating 0 = completed but unscored",
    # Pinned (tests/test_embedded.py checks it against the file and the build script): a changed
    # file is refused, and the cache key needs no read of the file.
    known_fingerprint="6b2a18fb18458500090cdc8794c6152661c96c92eb6820c8fff0504a6cb7fd2b",
    repair="reinstall animerec-bench (its embedded data file was changed)",
)

META_FILE = "meta.json"
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")


class _Unusable(Exception):
    """Why one imported data-set folder cannot be registered."""


def _from_meta(meta_path: Path) -> Dataset:
    """The data set one ``meta.json`` describes, or :class:`_Unusable` saying what is wrong."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Unusable(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _Unusable("not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise _Unusable(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(meta, dict):
        raise _Unusable(f"expected a JSON object, found {type(meta).__name__}")
    for key in ("name", "source", "licence", "fingerprint"):
        if key not in meta:
            raise _Unusable(f"missing '{key}'")
        if not isinstance(meta[key], str) or not meta[key]:
            raise _Unusable(f"'{key}' is {meta[key]!r}, expected a non-empty string")
    if not _FINGERPRINT_RE.fullmatch(meta["fingerprint"]):
        raise _Unusable(f"'fingerprint' is {meta['fingerprint'][:80]!r}, expected 64 hex digits (sha256)")
    folder = meta_path.parent
    interactions = folder / "interactions.parquet"
    if not interactions.is_file():
        raise _Unusable(f"{interactions.name} is missing beside it")
    titles = folder / "titles.parquet"
    anime = folder / "anime.parquet"  # the 2020 anime.csv's metadata (features, air dates), when imported
    origin = meta.get("imported_from")
    part = meta.get("slice_of")
    slice_rows = ((int(meta["rows"]), int(part["rows"])) if isinstance(part, dict) and isinstance(meta.get("rows"), int)
                  and isinstance(part.get("rows"), int) else None)
    return Dataset(
        name=meta["name"], source=meta["source"], licence=meta["licence"], path=interactions,
        titles_path=titles if titles.exists() else None, anime_path=anime if anime.exists() else None,
        synthetic=bool(meta.get("synthetic")), description=str(meta.get("description", "")),
        known_fingerprint=meta["fingerprint"], fingerprint_source=str(meta_path), slice_rows=slice_rows,
        repair=(f"re-import it with `animerec-bench data import "
                f"{shlex.quote(origin) if isinstance(origin, str) else 'DIR'} --name {meta['name']}`"),
    )


def imported_datasets(root: Path | None = None) -> list[Dataset]:
    """Data sets imported with ``animerec-bench data import``, read from their ``meta.json``.

    A folder whose ``meta.json`` is unusable is skipped with one :class:`DatasetWarning` naming
    the file and what is wrong; the other folders still load. Temporaries that a killed import
    left in the data home are swept first.
    """
    if root is None:
        root = paths.datasets_dir()
        sweep_stale_temporaries(paths.splits_dir())
    sweep_stale_temporaries(root)
    found: list[Dataset] = []
    if not root.is_dir():
        return found
    for meta_path in sorted(root.glob(f"*/{META_FILE}")):
        if meta_path.parent.name.startswith("."):  # an import's temporary (a live one is kept): never a data set
            continue
        try:
            found.append(_from_meta(meta_path))
        except _Unusable as exc:
            warnings.warn(DatasetWarning(
                f"{meta_path}: {exc}; data set skipped (re-import it with "
                f"`animerec-bench data import DIR --name {meta_path.parent.name}`)"), stacklevel=2)
    return found


@hookimpl
def register_datasets(register):
    register(MAL2016_5K)
    for ds in imported_datasets():
        register(ds)
