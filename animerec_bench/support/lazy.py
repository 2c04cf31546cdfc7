"""A module imported on first attribute access, for heavy imports at a plugin module's top.

Plugin modules are imported whenever the registry loads (``list``, ``--help`` of a verb that
loads plugins), so a module-level ``import scipy.linalg`` there costs every command its import
time. ``linalg = lazy_module("scipy.linalg")`` keeps the module-level spelling and imports on use.
"""

from __future__ import annotations

import importlib
from typing import Any


class lazy_module:  # noqa: N801 - used like the module it stands for
    """Stands for the module ``name``; imports it on the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
