"""LightFM with anime features as an animerec-bench model plugin: ``lightfm``.

LightFM's hybrid model (Kula 2015, WARP loss by default) fitted by LightFM itself on the train
likes, each anime represented by its own id and its features (genres, type, episodes, title
words), so it also scores anime nobody has rated (the cold-start protocols). Marked ``peer``:
the boards say whose model it is. LightFM is imported only when the model is fitted:
``animerec-bench list`` stays fast.

A separate package from ``animerec-peers`` (issue 23): adding a model there would bump that
package's version and so mark every published peer result stale.
"""

from __future__ import annotations

import animerec_bench

from .model import LightFMHybrid

__version__ = "0.1.2"

MODELS = (LightFMHybrid,)


@animerec_bench.hookimpl
def register_models(register):
    for model in MODELS:
        register(model)
