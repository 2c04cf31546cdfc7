"""Built-in data sets: the embedded ``mal2016-5k`` and every data set imported into the cache."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .. import hookimpl, paths
from ..dataset import Dataset

DATA = Path(__file__).resolve().parent.parent / "data"

MAL2016_5K = Dataset(
    name="mal2016-5k",
    source=("Kaggle 'Anime Recommendations Database' (CooperUnion, 2016, scraped from MyAnimeList), "
            "5,000-user sample by Arthur Fortes (caserec), re-keyed to MyAnimeList anime ids"),
    licence="CC0 Public Domain (as stated on Kaggle); MyAnimeList's terms govern its users' data",
    path=DATA / "mal2016-5k.parquet",
    titles_path=DATA / "mal2016-5k-titles.parquet",
    description="every completed entry of 5,000 users; rating 0 = completed but unscored",
    # Pinned (tests/test_embedded.py checks it against the file and the build script): a changed
    # file is refused, and the cache key needs no read of the file.
    known_fingerprint="6b2a18fb18458500090cdc8794c6152661c96c92eb6820c8fff0504a6cb7fd2b",
    repair="reinstall animerec-bench (its embedded data file was changed)",
)

META_FILE = "meta.json"


def imported_datasets(root: Path | None = None) -> list[Dataset]:
    """Data sets imported with ``animerec-bench data import``, read from their ``meta.json``."""
    root = root or paths.datasets_dir()
    found = []
    if not root.is_dir():
        return found
    for meta_path in sorted(root.glob(f"*/{META_FILE}")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        folder = meta_path.parent
        titles = folder / "titles.parquet"
        found.append(Dataset(
            name=meta["name"], source=meta["source"], licence=meta["licence"],
            path=folder / "interactions.parquet",
            titles_path=titles if titles.exists() else None,
            synthetic=bool(meta.get("synthetic")), description=meta.get("description", ""),
            known_fingerprint=meta.get("fingerprint"), fingerprint_source=str(meta_path),
            repair=(f"re-import it with `animerec-bench data import "
                    f"{shlex.quote(meta.get('imported_from') or 'DIR')} --name {meta['name']}`"),
        ))
    return found


@hookimpl
def register_datasets(register):
    register(MAL2016_5K)
    for ds in imported_datasets():
        register(ds)
