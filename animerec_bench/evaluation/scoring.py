"""Scoring a fitted model: the numbers a result holds, for the worker and the Python API alike.

The job's worker (:mod:`animerec_bench.execution.worker`) and :func:`animerec_bench.api.evaluate`
both score through these functions, so a model fitted in a notebook gets the numbers a run of
it would write.
"""

from __future__ import annotations

import numpy as np

from animerec_bench import tasks as tasks_mod
from animerec_bench.model import validate_predictions
from animerec_bench.support import timing


def union_mask(part, tasks) -> np.ndarray:
    """Which pairs of ``part`` are examples of any of ``tasks`` (the pairs a model predicts once for all)."""
    mask = np.zeros(len(part), dtype=bool)
    for task in tasks:
        mask |= part.task_mask(task)
    return mask


def evaluate(model_name: str, model, part, tasks, *, predictions=None,
             timing_out: dict | None = None, per_user_out: dict | None = None) -> tuple[dict, dict]:
    """Score ``model`` on ``part`` for the pointwise ``tasks``: (metrics per task, val_loss per task).

    With ``timing_out``, the seconds its ``predict`` took go to ``timing_out["predict_seconds"]``
    (the model's own work; the rest of a job's time beside fit is the harness's). With
    ``per_user_out``, each task's (user indices, values, weights) for paired significance
    tests go to ``per_user_out[task]`` (:func:`.significance.pointwise_per_user`)."""
    from animerec_bench.evaluation.significance import pointwise_per_user

    scored = part.subset(union_mask(part, tasks))
    t0 = timing.clock()
    raw = predictions if predictions is not None else model.predict(scored.user, scored.item)
    if timing_out is not None:
        timing_out["predict_seconds"] = timing.clock() - t0
    preds = validate_predictions(model_name, raw, len(scored), tuple(tasks))
    out, losses = {}, {}
    for task in tasks:
        task_obj = tasks_mod.get(task)
        m = scored.task_mask(task)
        y = scored.target(task)[m]
        out[task] = task_obj.score(y, preds[task][m], user=scored.user[m])
        losses[task] = task_obj.val_loss(y, preds[task][m])
        if per_user_out is not None:
            per_user_out[task] = pointwise_per_user(task, y, preds[task][m], scored.user[m])
    return out, losses


def evaluate_ranking(model, split, source: str, part: str = "test",
                     per_user: dict | None = None, *, task: str) -> tuple[dict, dict]:
    """The metrics of list task ``task`` for ``model`` on ``split``'s ``part`` (see
    :mod:`animerec_bench.evaluation.ranking` for which anime are candidates), its lists taken
    from ``source``: its own ``score``, or its ``interaction``/``rating`` predictions over every
    anime. With ``per_user``, its ``task`` entry gets each evaluated user's value of the task's
    primary metric (user indices, values, ones)."""
    from animerec_bench.evaluation import ranking

    list_task = tasks_mod.get(task)
    data = ranking.RankingData.from_split(split, part)
    if source == "score":
        score_fn = model.score
    else:
        score_fn = ranking.scores_from_predictions(model, source, split.n_items)
    users_values: dict | None = {} if per_user is not None else None
    metrics = ranking.evaluate(data, score_fn, ks=tasks_mod.KS, per_user=users_values)
    if users_values and per_user is not None:
        values = users_values[list_task.primary]
        per_user[task] = (users_values["users"], values, np.ones(len(values)))
    return metrics, {"source": source, "users": int(data.n_users)}


def evaluate_hard_ranking(model, split, features, source: str, per_user: dict | None = None) -> dict:
    """``season-v1``'s second table, hard candidates (:meth:`.ranking.RankingData.hard`): the
    fitted ``model`` gets ``features`` (the vocabulary's, then the catalogue's other anime from the
    test cut on) by ``set_item_features`` and ranks them all. Returns the result's
    ``ranking_hard`` block; with ``per_user``, its ``ranking_hard`` entry gets each evaluated user's
    NDCG@10. A model whose ``score`` ignores the anime beyond its vocabulary (e.g. one that fixed its
    width in ``fit``) raises :class:`PredictionError` for its shape."""
    from animerec_bench.evaluation import ranking

    data = ranking.RankingData.hard(split)
    model.set_item_features(features)
    score_fn = model.score if source == "score" else ranking.scores_from_predictions(model, source, data.n_items)
    users_values: dict | None = {} if per_user is not None else None
    metrics = ranking.evaluate(data, score_fn, ks=tasks_mod.KS, per_user=users_values)
    for metric, value in metrics.items():
        problem = tasks_mod.RANKING.metric_problem(metric, value)
        if problem:
            raise ValueError(f"hard candidates: {metric} {problem}")
    if users_values and per_user is not None:
        values = users_values[tasks_mod.RANKING.primary]
        per_user["ranking_hard"] = (users_values["users"], values, np.ones(len(values)))
    return {"metrics": metrics, "users": int(data.n_users), "candidates": int(data.n_candidates),
            "cut": (split.stats.get("hard") or {}).get("cut"), "source": source}


def save_per_user(path: str, per_user: dict, user_ids) -> None:
    """Write a job's per-user test values (raw user ids) for the parent to keep beside the result."""
    from animerec_bench.evaluation.significance import PerUser, encode
    from animerec_bench.support.atomic import atomic_path

    data = encode({task: PerUser(user_ids[users].astype("int64"), values, weights)
                   for task, (users, values, weights) in per_user.items()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
