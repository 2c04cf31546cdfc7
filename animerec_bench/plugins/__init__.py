"""Plugins: loading them (:mod:`.loader`), the model registry (:mod:`.registry`), the probe (:mod:`.probe`).

Their names are forwarded here too (``from animerec_bench.plugins import load_registry``), as
they were when this package was one module.
"""

_MODULES = ("animerec_bench.plugins.registry", "animerec_bench.plugins.loader", "animerec_bench.plugins.probe")


def __getattr__(name: str):
    import importlib

    for module in _MODULES:
        found = getattr(importlib.import_module(module), name, None)
        if found is not None:
            return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
