"""Tasks as objects: what is predicted, which pairs are its examples, how it is scored and shown.

One :class:`Task` per task owns everything task-specific (its examples' mask and target, the
valid range of predictions, its loss, its metrics with the primary one and its direction, and
its leaderboard columns), the way TensorFlow Recommenders' tasks own their loss and metrics.
Every other module asks the task: adding a task means adding one here and the metrics it names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from animerec_bench import metrics
from animerec_bench.errors import PredictionError


@dataclass(frozen=True)
class Task:
    """What every task declares. Subclasses implement how examples are picked and scored."""

    name: str
    #: One line for ``list``: what is predicted and how it is scored.
    description: str
    #: Metric names in the order results and tables use; the first is the primary one.
    metrics: tuple[str, ...]
    #: Whether a higher primary metric is better (the leaderboard's sort order).
    higher_is_better: bool
    #: Leaderboard columns: (header, metric key).
    columns: tuple[tuple[str, str], ...]
    #: The sentence under the table's title after the sort order.
    table_note: str
    #: Keras loss name a model trains this task with; the runner reports it on validation as val_loss.
    loss: str | None
    #: Valid range of a model's scores (inclusive); None: any finite score.
    prediction_range: tuple[float, float] | None
    #: Valid range (inclusive) of each metric a result may hold for this task; result files are
    #: checked against it, so a hand-edited ``rmse: -5`` cannot top a leaderboard.
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: True: scored per (user, anime) pair through ``predict``; False: over whole lists (ranking).
    pointwise: bool = True
    #: Timing columns of the leaderboard: (header, dotted result key, "seconds" or "rate"); fit s
    #: first, on every board (the price of a row's quality).
    timing_columns: tuple[tuple[str, str, str], ...] = (
        ("fit s", "timing.fit_seconds", "seconds"),
        ("train ex/s", "timing.train_examples_per_second", "rate"),
        ("pred/s", "timing.predict_per_second", "rate"))
    #: What the board's 95% interval is computed from (the task's per-user form).
    per_user_form: str = ""

    @property
    def primary(self) -> str:
        return self.metrics[0]

    @property
    def primary_header(self) -> str:
        """The primary metric as the leaderboard's column names it (``RMSE``, ``AUC``)."""
        return next((h for h, m in self.columns if m == self.primary), self.primary)

    def metric_problem(self, metric: str, value: object) -> str | None:
        """Why ``value`` cannot be this task's ``metric`` in a result file, or None when it can.

        Every value is a finite number (not a bool) within the metric's bounds; only the primary
        metric must be present and non-null (others are null where undefined, e.g. an AUC of one class).
        """
        if value is None:
            return "is null (the primary metric must be a number)" if metric == self.primary else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is {type(value).__name__} {value!r}, expected a number"
        if not math.isfinite(value):
            return f"is {value}, expected a finite number"
        lo, hi = self.bounds.get(metric, (-math.inf, math.inf))
        if not lo <= value <= hi:
            return f"is {value!r}, outside its range [{lo:g}, {hi:g}]"
        return None

    @property
    def board_columns(self) -> list[tuple[str, str]]:
        """The metric columns as a board shows them: the primary metric first."""
        first = [c for c in self.columns if c[1] == self.primary]
        return first + [c for c in self.columns if c not in first]

    def serves(self, model_tasks) -> bool:
        """Whether a model declaring ``model_tasks`` gets a row in this task's table."""
        return self.name in (model_tasks or ())

    def scored_in(self, result: dict) -> bool:
        """Whether the job of ``result`` (a result file's dict) was scored on this task: it fitted it."""
        return self.name in (result.get("tasks") or ())

    def on_board(self, result: dict) -> bool:
        """Whether ``result``'s model belongs in this task's table (a row, or "not trained for it")."""
        return self.serves((result.get("model") or {}).get("tasks") or []) or self.scored_in(result)

    def list_source(self, result: dict) -> str | None:
        """Where the job's scores for this task came from when not from the task itself (ranking
        from interaction predictions, say); None for pointwise tasks."""
        return None

    def ranking_source(self, model_cls) -> str | None:
        """Unused by pointwise tasks (see :meth:`RankingTask.ranking_source`)."""
        return None

    def ranked_by(self, model_cls) -> str | None:
        """Unused by pointwise tasks (see :meth:`RankingTask.ranked_by`)."""
        return None

    def required_method(self) -> str:
        """The method a model that declares this task must implement: ``predict`` (scored per pair)."""
        return "predict"

    def method_hint(self) -> str:
        """What to say, after the method's name, to a model that declares this task and lacks it."""
        return ""

    def mask(self, rating: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Which pairs (given their rating and label arrays) are examples of this task."""
        raise NotImplementedError

    def target(self, rating: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The float32 target of every pair (meaningless where :meth:`mask` is False)."""
        raise NotImplementedError

    def check_scores(self, model_name: str, scores: np.ndarray) -> None:
        """Raise :class:`PredictionError` when finite scores break this task's contract."""

    def plausible_range(self) -> tuple[float, float] | None:
        """Scores outside this range mean a model has not learned the task (``check_model``)."""
        return None

    def score(self, y, p, user=None) -> dict[str, float]:
        """Every metric of this task for targets ``y`` and predictions ``p`` (of pairs whose users
        are ``user``, for per-user metrics)."""
        raise NotImplementedError

    def val_loss(self, y, p) -> float:
        """The task's training loss on the validation part, comparable with the study's tables."""
        raise NotImplementedError


class RatingTask(Task):
    """Predict the 1-10 score of rated pairs; predictions are clipped to 1-10 before scoring."""

    def mask(self, rating, label):
        return rating > 0

    def target(self, rating, label):
        return rating

    def plausible_range(self):
        return (-5.0, 20.0)

    def clip(self, p) -> np.ndarray:
        lo, hi = self.prediction_range or (-np.inf, np.inf)
        return np.clip(np.asarray(p, dtype=np.float64), lo, hi)

    def score(self, y, p, user=None):
        p = self.clip(p)
        return {"rmse": metrics.rmse(y, p), "mae": metrics.mae(y, p), "mse": metrics.mse(y, p)}

    def val_loss(self, y, p):
        return metrics.mse(y, self.clip(p))


class InteractionTask(Task):
    """Predict P(positive interaction) of labelled pairs; scores must be probabilities."""

    def mask(self, rating, label):
        return label >= 0

    def target(self, rating, label):
        return label.astype(np.float32)

    def check_scores(self, model_name, scores):
        lo, hi = self.prediction_range
        if len(scores) and (scores.min() < lo or scores.max() > hi):
            raise PredictionError(f"model {model_name!r}: task {self.name!r} scores must be probabilities in "
                                  f"[{lo:g}, {hi:g}], got min {scores.min():.4g}, max {scores.max():.4g}")

    def score(self, y, p, user=None):
        """AUC over all pairs, and (given ``user``) GAUC: the mean of each user's own AUC. The global
        AUC mostly rewards knowing which users rate low; GAUC asks whether a user's own liked
        anime are ranked above their own disliked ones."""
        out = {"auc": metrics.auc(y, p)}
        if user is not None:
            out["gauc"] = metrics.user_auc(y, p, user)
        return {**out, "log_loss": metrics.log_loss(y, p), **metrics.thresholded(y, p, metrics.THRESHOLD)}

    def val_loss(self, y, p):
        return metrics.log_loss(y, p)


class RankingTask(Task):
    """Top-K anime for each test user over every candidate anime (full ranking, never sampled).

    The rules (which users, which items are relevant, which are candidates) are in
    :mod:`animerec_bench.evaluation.ranking`. Every model is ranked: a model that trains for the task (or
    has a ``score`` method) by its own scores, any other from its interaction predictions, else
    its rating predictions; the result records which (``ranking.source``).
    """

    #: Where a model's list comes from, best first.
    SOURCES = ("score", "interaction", "rating")

    def mask(self, rating, label):
        """Training examples of the task: the train pairs with a positive interaction label."""
        return label == 1

    def target(self, rating, label):
        return np.ones(len(label), dtype=np.float32)

    def serves(self, model_tasks) -> bool:
        return True  # every model is ranked, from its own scores or its predictions

    def scored_in(self, result: dict) -> bool:
        """Ranking is scored for every job that ranked its model, whatever tasks it fitted."""
        return self.name in (result.get("tasks") or ()) or bool(result.get("ranking"))

    def on_board(self, result: dict) -> bool:
        return bool(result.get("ranking")) or self.scored_in(result)

    def list_source(self, result: dict) -> str | None:
        """``interaction`` / ``rating`` / ``score`` for a model not trained for ranking itself."""
        model = result.get("model") or {}
        source = (result.get("ranking") or {}).get("source") if isinstance(result.get("ranking"), dict) else None
        return None if "ranking" in (model.get("tasks") or ()) or not source else str(source)

    def ranking_source(self, model_cls) -> str | None:
        """How ``model_cls``'s lists are made: ``score``, else ``interaction``, else ``rating``."""
        if callable(getattr(model_cls, "score", None)):
            return "score"
        served = tuple(getattr(model_cls, "tasks", ()))
        return next((t for t in self.SOURCES[1:] if t in served), None)

    def ranked_by(self, model_cls) -> str | None:
        """Which of the model's declared tasks' fit ranks it: this task's own when it trains for it,
        else the fit of the task its lists come from (a model with ``score`` but no ranking fit:
        its interaction fit, else its rating fit); None: it cannot be ranked."""
        declared = tuple(getattr(model_cls, "tasks", ()))
        if self.name in declared:
            return self.name
        return next((t for t in (self.ranking_source(model_cls),) + self.SOURCES[1:] if t in declared), None)

    def required_method(self) -> str:
        return "score"  # a model that trains for ranking ranks by its own scores

    def method_hint(self) -> str:
        return f" (a model that lists '{self.name}' in its tasks must implement score(user) -> [users, anime])"


_INF = math.inf
_LOSSES = {"val_loss": (0.0, _INF), "test_loss": (0.0, _INF)}
_POINTWISE_NOTE = "mean ± standard deviation over seeds (test split)."

RATING = RatingTask(
    name="rating",
    description="predict the 1-10 score of rated pairs; RMSE (primary), MAE, MSE",
    metrics=("rmse", "mae", "mse"),
    higher_is_better=False,
    columns=(("RMSE", "rmse"), ("MAE", "mae")),
    table_note=_POINTWISE_NOTE,
    loss="mse",
    per_user_form="RMSE from per-user sums of squared errors",
    prediction_range=(1.0, 10.0),
    bounds={"rmse": (0.0, 9.0), "mae": (0.0, 9.0), "mse": (0.0, 81.0), **_LOSSES},
)
INTERACTION = InteractionTask(
    name="interaction",
    description="predict P(positive interaction); AUC (primary), per-user AUC (GAUC), log loss, accuracy, "
                "precision, recall at 0.5",
    metrics=("auc", "gauc", "log_loss", "accuracy", "precision", "recall"),
    higher_is_better=True,
    # Accuracy, precision and recall at 0.5 (and val_loss) stay in the results, off the board: with
    # ~93% positives they are ~0.93, ~0.94 and ~0.99 for every model (always-positive included),
    # noise that pushed the table past a GitHub page's width.
    columns=(("AUC", "auc"), ("GAUC", "gauc")),
    table_note=_POINTWISE_NOTE,
    loss="binary_crossentropy",
    per_user_form="GAUC: mean of per-user AUC; the global AUC has no per-user form",
    prediction_range=(0.0, 1.0),
    bounds={"auc": (0.0, 1.0), "gauc": (0.0, 1.0), "log_loss": (0.0, _INF), "accuracy": (0.0, 1.0), "precision": (0.0, 1.0),
            "recall": (0.0, 1.0), **_LOSSES},
)

#: Cut-offs of the ranking metrics; the first one's NDCG is the primary metric.
KS = (10, 20)
_RANKING_METRICS = tuple(f"{m}@{k}" for k in KS for m in ("ndcg", "recall", "hit_rate", "mrr", "map")) \
    + ("coverage@10", "novelty@10")
RANKING = RankingTask(
    name="ranking",
    description="top-10/20 anime per user over every candidate anime (full ranking, never sampled); "
                "NDCG@10 (primary), Recall, HitRate, MRR, MAP at 10 and 20, coverage@10, novelty@10",
    metrics=_RANKING_METRICS,
    higher_is_better=True,
    # The board shows what fits a GitHub page (1,012 px, checked by scripts/check_board_width.py) with
    # fit s and users/s beside the quality; Recall, HR, MRR, MAP, novelty and the @20 cut-off stay
    # in the results (api.results_frame, docs/ranking.md).
    columns=(("NDCG@10", "ndcg@10"), ("Cov@10", "coverage@10")),
    table_note="mean ± standard deviation over seeds (test split; every candidate anime ranked; Cov@10: share of "
               "the anime that appear in some user's top 10).",
    loss=None,
    prediction_range=None,
    bounds={**{m: (0.0, 1.0) for m in _RANKING_METRICS}, "novelty@10": (0.0, 100.0)},
    pointwise=False,
    per_user_form="mean of per-user NDCG@10",
    timing_columns=(("fit s", "timing.fit_seconds", "seconds"),
                    ("users/s", "timing.ranking_users_per_second", "rate")),
)

#: Every task, in the order tables and listings show them.
TASKS: dict[str, Task] = {t.name: t for t in (RATING, INTERACTION, RANKING)}
#: The tasks scored per (user, anime) pair, whose examples the protocol counts.
POINTWISE: dict[str, Task] = {name: t for name, t in TASKS.items() if t.pointwise}
#: The tasks scored over whole lists, which every model gets (from its own scores or its predictions).
LISTWISE: dict[str, Task] = {name: t for name, t in TASKS.items() if not t.pointwise}
#: Their names, in order.
NAMES: tuple[str, ...] = tuple(TASKS)


def get(name: str) -> Task:
    """The task called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(NAMES)}") from None
