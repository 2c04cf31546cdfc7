"""``kernel-tower``: ``feature-kernel`` and ``two-tower`` fitted side by side, their scores blended.

The two place a new show differently: the kernel by how much its genres and title words overlap
the anime a user liked (a closed form over the features), the towers by where a learned
projection of its features lands next to the user's learned vector. Their errors differ, so a
blend of the two beats either on the season protocols (issue 23): measured on ``season-v1`` /
seed 0, NDCG@10 validation / test, with the weight of the towers' scores (each model's scores
standardised per user over every anime):

    0 (feature-kernel alone)  0.4313 / 0.2438
    0.2                       0.4368 / 0.2547
    0.35                      0.4407 / 0.2623
    0.5                       0.4420 / 0.2675
    0.65                      0.4386 / 0.2681
    0.8                       0.4282 / 0.2661
    1 (two-tower alone)       0.3846 / 0.2275

The weight is chosen inside ``fit`` on the validation ranking ``tune`` uses (as ``ease`` chooses
its λ), so there is nothing left for ``tune`` to search; without a validation part (``season-v2``'s
test fit) it is ``DEFAULT_WEIGHT``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.builtin.content import COLD_PROTOCOLS, FeatureKernel
from animerec_bench.builtin.two_tower import TwoTower
from animerec_bench.evaluation.ranking import RankingData, evaluate, user_chunks
from animerec_bench.model import Interactions, Model, check_param

#: The towers' weight tried on validation, in order (ties: the first).
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
#: The towers' weight without a validation part: the best of the docstring's weights on season-v1's
#: validation, seed 0 (the board's season-v1 fit chose 0.4 from the grid: 0.4422 against 0.4418).
DEFAULT_WEIGHT = 0.5


def _standardised(scores: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and standard deviation 1, so two models' scores add on one scale."""
    return (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-9)


class KernelTower(Model):
    """feature-kernel's and two-tower's scores blended, the towers' weight chosen on validation.

    ``(1 - w) z(feature-kernel) + w z(two-tower)``, both at their defaults (``z``: each user's
    scores standardised over every anime); see the module for the measured weights."""

    name = "kernel-tower"
    tasks = ("ranking",)
    joint = False
    version = f"1 (feature-kernel {FeatureKernel.version}, two-tower {TwoTower.version})"  # either's change reruns it
    framework = "keras"
    item_features = True
    protocols = COLD_PROTOCOLS
    heavy = True  # a two-tower fit: minutes on a 2-core CPU

    def __init__(self, weight: float | None = None, tower_epochs: int = 12) -> None:
        self.weight = weight
        self.tower_epochs = tower_epochs

    @classmethod
    def validate_params(cls, params):
        """``weight`` in [0, 1] or None (chosen on validation); ``tower_epochs`` >= 1."""
        check_param(params, "weight", at_least=0, none_ok=True)
        if (params.get("weight") or 0) > 1:
            raise ValueError(f"weight must be >= 0 and <= 1 (or None), got {params['weight']!r}")
        check_param(params, "tower_epochs", at_least=1)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("ranking",), seed: int = 0,
            features=None):
        self.check_tasks(tasks)
        started = time.perf_counter()
        self.kernel_ = FeatureKernel().fit(train, valid, tasks=tasks, seed=seed, features=features)
        self.report_progress(part="feature-kernel", seconds=round(time.perf_counter() - started, 3))
        tower = TwoTower(epochs=self.tower_epochs)
        tower.on_progress = self.on_progress  # its epochs are this fit's progress lines and curve
        self.tower_ = tower.fit(train, valid, tasks=tasks, seed=seed, features=features)
        self.epochs_ = self.tower_.epochs_
        self.weight_ = self._choose_weight(train, valid, features, started)
        return self

    def _choose_weight(self, train: Interactions, valid: Interactions | None, features, started: float) -> float:
        """The given weight; else the grid's best NDCG@10 on the validation ranking (over the
        validation anime when they have no train pairs, as the cold protocols rank them)."""
        self.history_: dict[str, list[float]] = {"weight": [], "val_ndcg@10": []}
        data = RankingData.validation(train, valid) if valid is not None and self.weight is None else None
        if valid is None or data is None or data.n_users == 0:
            return float(self.weight if self.weight is not None else DEFAULT_WEIGHT)
        if not np.isin(valid.item, train.item).any():  # cold: the validation anime come after train's
            data = dataclasses.replace(data, candidates=(int(train.item.max()) + 1, features.n_items))
        self.set_item_features(features)  # the anime fit may know; scoring gets every anime's later
        lo, hi = data.candidates or (0, data.n_items)
        kernel, tower = self._standardised_parts(data, lo, hi)
        hi = lo + kernel.shape[1]  # the vocabulary's anime fit has no features of: no candidates

        def score(user) -> np.ndarray:  # the parts scored once above; each weight only adds them
            rows = np.searchsorted(data.users, user)
            out = np.full((len(user), data.n_items), -np.inf, dtype=np.float32)
            out[:, lo:hi] = _blend(kernel[rows], tower[rows], np.float32(self.weight_))
            return out

        best, chosen = -np.inf, DEFAULT_WEIGHT
        for weight in WEIGHT_GRID:
            self.weight_ = weight
            ndcg = evaluate(data, score, ks=(10,))["ndcg@10"]
            self.history_["weight"].append(weight)
            self.history_["val_ndcg@10"].append(ndcg)
            self.report_progress(weight=weight, val_ndcg=ndcg, seconds=round(time.perf_counter() - started, 3))
            if ndcg > best:
                best, chosen = ndcg, weight
        return chosen

    def _standardised_parts(self, data: RankingData, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Both models' standardised scores of the evaluated users at anime ``lo:hi`` (cut to the
        anime with features), float32 each: what :meth:`score` blends there. Scored in
        ``evaluate``'s chunks of users, so each row's products are those ``evaluate`` would get."""
        kernel_parts, tower_parts = [], []
        for a, b in user_chunks(data):
            users = data.users[a:b]
            kernel = _standardised(self.kernel_.score(users))
            kernel_parts.append(kernel[:, lo:hi])
            tower_parts.append(_standardised(self.tower_.score(users)[:, :kernel.shape[1]])[:, lo:hi])
        return np.concatenate(kernel_parts), np.concatenate(tower_parts)

    def set_item_features(self, features) -> None:
        super().set_item_features(features)
        self.kernel_.set_item_features(features)
        self.tower_.set_item_features(features)

    def score(self, user) -> np.ndarray:
        """``[len(user), n_items]`` float32: the blend of the two models' standardised scores."""
        kernel = self.kernel_.score(user)  # a column per anime with features
        tower = self.tower_.score(user)[:, :kernel.shape[1]] if self.weight_ else None
        return _blend(_standardised(kernel), tower if tower is None else _standardised(tower),
                      np.float32(self.weight_))


def _blend(kernel: np.ndarray, tower: np.ndarray | None, w: np.float32) -> np.ndarray:
    """``(1 - w) kernel + w tower`` in float32, the same operations (and so the same bits) for a
    whole row as for a slice of it; ``tower`` None: ``w`` is 0."""
    out = kernel * (1 - w)
    if tower is not None and w:  # the towers also score, by id alone, anime fit has no features of
        out += w * tower
    return out.astype(np.float32, copy=False)


@hookimpl
def register_models(register):
    register(KernelTower)
