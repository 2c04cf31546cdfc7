"""The usual recommender libraries as animerec-bench model plugins, on the leaderboard's own split.

``surprise-svd`` and ``surprise-knn-baseline`` (Surprise), ``cornac-mf`` and ``cornac-bpr``
(Cornac): each fits the library's own model with the library's defaults, seeded from the job's
seed, and predicts with the fitted model's own arrays, vectorised (the libraries' per-pair Python
``predict`` would take many minutes over the ranking grid of every user x every anime). Each is
marked ``peer`` so the boards say whose model it is. The libraries are imported only when a model
is fitted: ``animerec-bench list`` stays fast.
"""

from __future__ import annotations

import animerec_bench

from .cornac_models import CornacBPR, CornacMF
from .surprise_models import SurpriseKNNBaseline, SurpriseSVD

__version__ = "0.1.5"

MODELS = (SurpriseSVD, SurpriseKNNBaseline, CornacMF, CornacBPR)


@animerec_bench.hookimpl
def register_models(register):
    for model in MODELS:
        register(model)
