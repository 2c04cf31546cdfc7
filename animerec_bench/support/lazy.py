"""Imports put off or refused: a module imported on first attribute access, for heavy imports at
a plugin module's top; optional extras a library need not load (:func:`imports_refused`).

Plugin modules are imported whenever the registry loads (``list``, ``--help`` of a verb that
loads plugins), so a module-level ``import scipy.linalg`` there costs every command its import
time. ``linalg = lazy_module("scipy.linalg")`` keeps the module-level spelling and imports on use.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import sys
from collections.abc import Iterator
from typing import Any


class lazy_module:  # noqa: N801 - used like the module it stands for
    """Stands for the module ``name``; imports it on the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name, path, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {name!r} (refused here: not needed)", name=name)
        return None


@contextlib.contextmanager
def imports_refused(*names: str) -> Iterator[None]:
    """Inside the block, importing ``names`` (or their submodules) fails with ImportError as if
    they were not installed, unless already imported: for a library that loads an optional extra
    at import that the caller never uses. Keras imports ``matplotlib.pyplot`` for its image
    galleries: 0.25-0.4 s of the 3 s of each Keras job's framework import on this project's
    machines; the library then goes without it, as it does where matplotlib is not installed."""
    finder = _Refuse(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
