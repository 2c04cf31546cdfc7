"""Epoch loops kept at their best validation ranking: what ``dlae`` and ``multvae`` share.

Both train for up to ``epochs`` epochs, read their weights out as numpy after each (so ``score``
needs no Keras), rank the validation users with them, and keep the epoch with the best NDCG@10,
stopping after ``patience`` epochs without a better one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import Interactions


class EpochTrained(Protocol):
    """What the loop reads and sets on the model (``dlae``, ``multvae``)."""

    epochs: int
    patience: int
    weights_: Any
    history_: dict[str, list]
    epochs_: int
    best_epoch_: int

    def score(self, user: Any) -> np.ndarray: ...

    def report_progress(self, **info: Any) -> None: ...


def validation_ranking(train: Interactions, valid: Interactions | None) -> RankingData | None:
    """The ranking ``tune`` scores trials on (:meth:`RankingData.validation`), or None when there
    is no validation part or no user in it has a liked anime."""
    data = RankingData.validation(train, valid) if valid is not None else None
    return data if data is not None and data.n_users else None


def run_validated_epochs(model: EpochTrained, run_epoch: Callable[[int], float], data: RankingData | None,
                         started: float) -> None:
    """``run_epoch(epoch) -> training loss`` for each of ``model.epochs`` epochs (it leaves the
    epoch's weights in ``model.weights_``), then NDCG@10 of ``model.score`` on ``data``. Records
    ``history_`` (``loss``, ``val_ndcg@10``), ``epochs_``, ``best_epoch_`` and the progress lines;
    stops after ``model.patience`` epochs without a better NDCG and keeps the best epoch's
    ``weights_``. Without ``data``: every epoch runs and the last one's weights stay."""
    best, best_weights, waited = -np.inf, model.weights_, 0
    for epoch in range(model.epochs):
        loss = run_epoch(epoch)
        ndcg = evaluate(data, model.score, ks=(10,))["ndcg@10"] if data is not None else None
        model.history_["loss"].append(loss)
        model.history_["val_ndcg@10"].append(ndcg)
        model.epochs_ = epoch + 1
        model.report_progress(epoch=epoch + 1, loss=loss, val_ndcg=ndcg,
                              seconds=round(time.perf_counter() - started, 3))
        if ndcg is None:
            continue
        if ndcg > best:
            best, best_weights, waited, model.best_epoch_ = ndcg, model.weights_, 0, epoch + 1
        else:
            waited += 1
            if waited >= model.patience:
                break
    if data is not None:
        model.weights_ = best_weights
    else:
        model.best_epoch_ = model.epochs_
