"""animerec-bench: honest, fast, reproducible recommender benchmarks on MyAnimeList data.

Import-light on purpose: TensorFlow/Keras are imported only where a model trains.
"""

import importlib.metadata

import pluggy

try:  # set at install time by setuptools-scm: the release, or 0.1.devN+g<commit>[.d<date>] between them
    __version__ = importlib.metadata.version("animerec-bench")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

#: Marker for hook implementations in plugins: ``@animerec_bench.hookimpl``.
hookimpl = pluggy.HookimplMarker("animerec_bench")

__all__ = ["__version__", "hookimpl"]
