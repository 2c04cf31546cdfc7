"""animerec-bench: honest, fast, reproducible recommender benchmarks on MyAnimeList data.

Import-light on purpose: TensorFlow/Keras are imported only where a model trains.
"""

import importlib.metadata

import pluggy

from animerec_bench import _moved

try:  # set at install time by setuptools-scm: the release, or 0.1.devN+g<commit>[.d<date>] between them
    __version__ = importlib.metadata.version("animerec-bench")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_moved.install()  # the flat layout's module paths keep working (with a DeprecationWarning)

#: Marker for hook implementations in plugins: ``@animerec_bench.hookimpl``.
hookimpl = pluggy.HookimplMarker("animerec_bench")

#: The Python API (``animerec_bench.api``), imported on first use so ``import animerec_bench``
#: stays light: ``from animerec_bench import load_split, evaluate, results_frame, recommend``.
_API = ("load_split", "evaluate", "results_frame", "fit", "recommend")

__all__ = ["__version__", "hookimpl", *_API]


def __getattr__(name: str):
    if name in _API:
        from animerec_bench import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
