"""Results: the result store (files, schema) and a job's identity.

The names of :mod:`animerec_bench.results.store` are forwarded here too (``from
animerec_bench.results import load_all``), as they were when this package was one module.
"""


def __getattr__(name: str):
    import importlib

    store = importlib.import_module("animerec_bench.results.store")
    try:
        return getattr(store, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
