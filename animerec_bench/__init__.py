"""animerec-bench: honest, fast, reproducible recommender benchmarks on MyAnimeList data.

Import-light on purpose: TensorFlow/Keras are imported only where a model trains.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations in plugins: ``@animerec_bench.hookimpl``.
hookimpl = pluggy.HookimplMarker("animerec_bench")

__all__ = ["__version__", "hookimpl"]
