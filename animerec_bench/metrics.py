"""Metrics, vectorised numpy: the numbers every leaderboard is sorted by.

Plain functions of targets and predictions; which task uses which (and which is primary) is
the business of :mod:`animerec_bench.tasks`. ``auc`` is rank-based (ties count one half);
``accuracy``/``precision``/``recall`` are taken at a threshold (0.5 by default).
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
#: Probabilities are clipped to [EPS, 1 - EPS] before the log, so one 0 or 1 cannot give inf.
EPS = 1e-7


def _pair(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"targets have shape {y.shape}, predictions {p.shape}")
    return y, p


def mse(y, p) -> float:
    y, p = _pair(y, p)
    return float(np.mean((y - p) ** 2)) if len(y) else float("nan")


def rmse(y, p) -> float:
    return float(np.sqrt(mse(y, p)))


def mae(y, p) -> float:
    y, p = _pair(y, p)
    return float(np.mean(np.abs(y - p))) if len(y) else float("nan")


def log_loss(y, p) -> float:
    """Mean binary cross-entropy, probabilities clipped to [EPS, 1-EPS]."""
    y, p = _pair(y, p)
    if not len(y):
        return float("nan")
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def auc(y, p) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic; tied scores get mean ranks.

    NaN when only one class is present (the AUC is undefined then).
    """
    y, p = _pair(y, p)
    pos = y > 0.5
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    # Mean 1-based rank of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    counts = np.diff(np.r_[starts, len(p)])
    mean_rank = starts + (counts + 1) / 2.0
    ranks = np.empty(len(p), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, counts)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def user_auc(y, p, user) -> float:
    """Per-user AUC ("GAUC"): the mean, over users with both classes among their pairs, of each
    user's AUC (Mann-Whitney, tied scores count one half, as in :func:`auc`). NaN when no user
    has both classes."""
    _, aucs = user_aucs(y, p, user)
    return float(np.mean(aucs)) if len(aucs) else float("nan")


def user_aucs(y, p, user) -> tuple[np.ndarray, np.ndarray]:
    """(users with both classes, ascending; each one's AUC): what :func:`user_auc` averages, kept
    per user for paired significance tests.

    Vectorised: one sort by (user, score); mean ranks of tied runs within each user.
    """
    y, p = _pair(y, p)
    user = np.asarray(user).reshape(-1)
    if user.shape != y.shape:
        raise ValueError(f"targets have shape {y.shape}, users {user.shape}")
    if not len(y):
        return user[:0], np.zeros(0)
    order = np.lexsort((p, user))
    u, s, pos = user[order], p[order], y[order] > 0.5
    new_user = np.r_[True, u[1:] != u[:-1]]
    group = np.cumsum(new_user) - 1
    user_start = np.flatnonzero(new_user)
    run_start = np.flatnonzero(new_user | np.r_[True, s[1:] != s[:-1]])
    run_len = np.diff(np.r_[run_start, len(s)])
    # 1-based mean rank of each run of equal scores within its user.
    mean_rank = run_start - user_start[group[run_start]] + (run_len + 1) / 2.0
    ranks = np.repeat(mean_rank, run_len)
    n_pos = np.bincount(group, weights=pos)
    n_neg = np.bincount(group) - n_pos
    u_stat = np.bincount(group, weights=np.where(pos, ranks, 0.0)) - n_pos * (n_pos + 1) / 2.0
    both = (n_pos > 0) & (n_neg > 0)
    return u[user_start][both], u_stat[both] / (n_pos[both] * n_neg[both])


def _confusion(y, p, threshold: float) -> tuple[int, int, int, int]:
    y, p = _pair(y, p)
    truth = y > 0.5
    guess = p >= threshold
    tp = int((truth & guess).sum())
    fp = int((~truth & guess).sum())
    fn = int((truth & ~guess).sum())
    tn = int((~truth & ~guess).sum())
    return tp, fp, fn, tn


def _thresholded(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Accuracy; precision (0.0 when nothing is predicted positive, scikit-learn's default);
    recall (0.0 when there are no positives)."""
    n = tp + fp + fn + tn
    return {"accuracy": (tp + tn) / n if n else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0}


def thresholded(y, p, threshold: float = THRESHOLD) -> dict[str, float]:
    """``accuracy``, ``precision`` and ``recall`` at ``threshold``, from one confusion count."""
    return _thresholded(*_confusion(y, p, threshold))


def accuracy(y, p, threshold: float = THRESHOLD) -> float:
    return _thresholded(*_confusion(y, p, threshold))["accuracy"]


def precision(y, p, threshold: float = THRESHOLD) -> float:
    """tp / (tp + fp); 0.0 when nothing is predicted positive (scikit-learn's default)."""
    return _thresholded(*_confusion(y, p, threshold))["precision"]


def recall(y, p, threshold: float = THRESHOLD) -> float:
    """tp / (tp + fn); 0.0 when there are no positives."""
    return _thresholded(*_confusion(y, p, threshold))["recall"]
