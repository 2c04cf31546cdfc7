"""Plugins: loading the plugin manager (entry points, loose files) and the model registry.

The names of :mod:`animerec_bench.plugins.registry` are forwarded here too (``from
animerec_bench.plugins import load_registry``), as they were when this package was one module.
"""


def __getattr__(name: str):
    import importlib

    registry = importlib.import_module("animerec_bench.plugins.registry")
    try:
        return getattr(registry, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
