"""Whose model it is, for a model's ``peer`` declaration: the library's name and installed version."""

from __future__ import annotations

import importlib.metadata


def library_label(distribution: str, name: str) -> str:
    """``"Surprise 1.1.5"``: ``name`` and the installed version of ``distribution`` (read from the
    package metadata, so the library itself is not imported); ``name`` alone if it is not installed."""
    try:
        return f"{name} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return name

