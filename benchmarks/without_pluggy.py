"""A stand-in for pluggy, for scripts that run where only numpy, keras and jax are installed
(``gpu_jax.py`` on the device machine, its CPU smoke in a jax-only venv).

Importing ``animerec_bench`` applies pluggy's two markers (``hookspecs.py``: ``@hookspec``, and
``@hookimpl`` on every built-in model module); nothing in those scripts calls a hook, so markers
that return the function unchanged are all they need. ``tests/test_gpu_script.py`` imports what
``gpu_jax.py`` imports with pluggy hidden, so a new use of pluggy at import time fails there, not on
the GPU.
"""

from __future__ import annotations

import sys
import types


def _marker(project_name: str):
    """``HookimplMarker(name)`` / ``HookspecMarker(name)``: a decorator used bare or with options."""
    return lambda function=None, **options: function if function is not None else (lambda f: f)


def install() -> None:
    """Put the stand-in in ``sys.modules["pluggy"]`` unless pluggy itself imports."""
    try:
        import pluggy  # noqa: F401
    except ImportError:
        sys.modules["pluggy"] = types.SimpleNamespace(HookimplMarker=_marker, HookspecMarker=_marker)
