"""animerec-bench: honest, fast, reproducible recommender benchmarks on MyAnimeList data.

Import-light on purpose: TensorFlow/Keras are imported only where a model trains. The package
root only re-exports: ``__version__`` (:mod:`animerec_bench.support.version`), ``hookimpl``
(beside the hook specifications, :mod:`animerec_bench.hookspecs`) and the Python API
(:mod:`animerec_bench.api`, imported on first use). docs/architecture.md shows the layers.
"""

from animerec_bench import _moved
from animerec_bench.hookspecs import hookimpl
from animerec_bench.support.version import __version__

_moved.install()  # the flat layout's module paths keep working (with a DeprecationWarning)

#: The Python API (``animerec_bench.api``), imported on first use so ``import animerec_bench``
#: stays light: ``from animerec_bench import load_split, evaluate, results_frame, recommend``.
_API = ("load_split", "evaluate", "results_frame", "fit", "recommend")

__all__ = ["__version__", "hookimpl", *_API]


def __getattr__(name: str):
    if name in _API:
        from animerec_bench import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
