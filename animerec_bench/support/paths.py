"""Where animerec-bench keeps imported data sets, cached splits, and your own results and boards."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache folder: ``$ANIMEREC_BENCH_HOME``, else ``$XDG_CACHE_HOME/animerec-bench``."""
    explicit = os.environ.get("ANIMEREC_BENCH_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "animerec-bench"


def datasets_dir() -> Path:
    """Imported data sets, one folder each (``<name>/interactions.parquet`` + ``meta.json``)."""
    return home() / "datasets"


def splits_dir() -> Path:
    """Cached splits, one file per (dataset, protocol, seed), named by fingerprint."""
    return home() / "splits"


def models_dir() -> Path:
    """Fitted models (``fit``, ``recommend``), one folder each, named by the model's identity."""
    return home() / "models"


def results_dir() -> Path:
    """Your own runs' result files: where ``run`` and ``tune`` write unless told otherwise."""
    return home() / "results"


def leaderboards_dir() -> Path:
    """Where ``leaderboard`` renders your own runs unless told otherwise."""
    return home() / "leaderboards"


#: The folder this package's source tree sits in (a checkout's root when run from one).
SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent


def source_root() -> Path | None:
    """The checkout this package runs from, or None for an installed copy (no pyproject, no .git)."""
    return SOURCE_ROOT if (SOURCE_ROOT / "pyproject.toml").exists() or (SOURCE_ROOT / ".git").exists() else None


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is a checkout of this project: its ``pyproject.toml`` names
    ``animerec-bench``, or it is the source tree this package runs from."""
    import tomllib

    try:
        if folder.resolve() == source_root():
            return True
        with open(folder / "pyproject.toml", "rb") as fh:
            name = tomllib.load(fh).get("project", {}).get("name", "")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(name, str) and name.lower().replace("_", "-") == "animerec-bench"


#: The published pair, relative to a checkout of this project: written only on request
#: (``--publish``, or naming the folders), so a newcomer's run never rewrites the public board.
PUBLISHED_RESULTS = "results"
PUBLISHED_LEADERBOARDS = "leaderboards"


def published(option: str = "--publish", cwd: Path | None = None) -> tuple[Path, Path]:
    """The current checkout's ``results/`` and ``leaderboards/``; a UserError outside a checkout."""
    from animerec_bench.errors import UserError

    cwd = Path.cwd() if cwd is None else cwd
    if not is_checkout(cwd):
        raise UserError(f"{option}: {cwd} is not an animerec-bench checkout (no pyproject.toml naming "
                        f"animerec-bench); run it from the checkout whose published board you mean, or name "
                        f"the folders with --results/--out")
    return cwd / PUBLISHED_RESULTS, cwd / PUBLISHED_LEADERBOARDS
