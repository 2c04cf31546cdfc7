"""XLA's persistent compilation cache, so a job that compiles the same program as an earlier
one (the same model, parameters and data shapes) reads it back instead of compiling again.

A compiled epoch costs 0.2-0.5 s of a fit on this project's 2-core machines (a Keras model's
epoch, ``mf-biased``'s loop); read back, ~0.05 s. TensorFlow reads ``TF_XLA_FLAGS`` and JAX its
``JAX_*`` variables when they first compile, so :func:`configure` sets them before Keras is
imported (``builtin.keras_backend.keras`` calls it). The folder is ``<home>/xla-cache``;
``ANIMEREC_BENCH_COMPILE_CACHE`` names another, or ``off`` turns the cache off. Results record
which (``machine.compile_cache``), since a first run's fit includes compiling and a repeat's not.

TensorFlow names a program after the order in which its process traced functions, so a program
is found again by the same job (a rerun, or a ``tune`` trial's repeat), not by another
job that happens to build the same one. :func:`prune` keeps the folder under a size limit.
The variables are set in this process's environment, so a process it starts uses the same folder
(``run``'s own process never imports Keras: each job sets its own).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from animerec_bench.support import paths

VARIABLE = "ANIMEREC_BENCH_COMPILE_CACHE"
_OFF = {"0", "off", "false", "no", "none"}
_TF_FLAG = "--tf_xla_persistent_cache_directory"
#: What ``prune`` keeps the folder under by default (one compiled epoch is 1-3 MB).
MAX_BYTES = 1 << 30


def folder() -> Path | None:
    """The cache folder this process uses, or None when ``ANIMEREC_BENCH_COMPILE_CACHE`` is off."""
    value = os.environ.get(VARIABLE, "").strip()
    if value.lower() in _OFF:
        return None
    return Path(value).expanduser() if value else paths.home() / "xla-cache"


def configure() -> Path | None:
    """Point TensorFlow's and JAX's persistent caches at :func:`folder` in this process's
    environment (settings the user made stay), and return it. TensorFlow's flag list is split
    at spaces, so a folder whose path has one leaves TensorFlow without a cache."""
    where = folder()
    if where is None:
        return None
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if _TF_FLAG not in flags and " " not in str(where):
        os.environ["TF_XLA_FLAGS"] = f"{flags} {_TF_FLAG}={where}".strip()
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(where / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # JAX's default: 1 s
    return where


def prune(where: Path | None = None, max_bytes: int = MAX_BYTES) -> int:
    """Delete the oldest-written files until the folder holds at most ``max_bytes``; return how
    many went. A file another process deletes first, or an unreadable folder, is skipped."""
    where = where if where is not None else folder()
    if where is None:
        return 0
    files = []
    for path in where.rglob("*"):
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):  # from the one stat, not a second (is_file) per file
            files.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
    return removed


def in_use() -> str | None:
    """What a result records: the folder this process's Keras compiled against, ``"off"``, or
    None when Keras was not imported (a numpy model compiles nothing)."""
    if "keras" not in sys.modules:
        return None
    from animerec_bench.support.machine import keras_backend

    if keras_backend() == "jax":
        return os.environ.get("JAX_COMPILATION_CACHE_DIR") or "off"
    for part in os.environ.get("TF_XLA_FLAGS", "").split():
        if part.startswith(_TF_FLAG + "="):
            return part.split("=", 1)[1]
    return "off"
