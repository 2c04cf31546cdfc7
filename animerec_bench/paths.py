"""Where animerec-bench keeps imported data sets and cached splits."""

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
