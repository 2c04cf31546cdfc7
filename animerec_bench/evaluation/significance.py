"""Paired bootstrap over test users: intervals and p-values without re-fitting any model.

Every result keeps, beside its JSON, what a paired test needs (``<stem>.users.npz``): for each
task it was scored on, the raw user ids (int64) and one value per user:

- ``rating``: the user's sum of squared errors and their number of rated pairs (RMSE of a set of
  users = sqrt(sum of errors / sum of counts));
- ``interaction``: the user's own AUC (users with both classes; the task's GAUC is their mean);
- ``ranking``: the user's NDCG@10 (the primary metric is their mean).

The method (:func:`compare`): the users both results scored are resampled with replacement
``draws`` times by ``numpy.random.default_rng([SALT, ACROSS_SEEDS])``, each user drawn once for
all seeds (the same users are in every seed's test part, so their seeds are not independent
samples: resampling (user, seed) pairs made the combined interval too narrow), and the same
draws for both models (paired); each draw gives, per seed, B's metric minus A's on the drawn
users of that seed, and the seeds are combined by averaging them draw by draw. The 95% interval
is the 2.5th and 97.5th percentile of the draws; the two-sided p-value is ``min(1, 2 * min(#(d <=
0) + 1, #(d >= 0) + 1) / (draws + 1))``, so never below 2 / (draws + 1): :func:`format_p` prints
that floor as "< 0.002" (1,000 draws). Seeded throughout, so a leaderboard built from it is byte-stable.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np

#: Bootstrap draws per comparison.
DRAWS = 1000
#: Mixed into every seed's generator, so bootstrap draws never coincide with the split's.
SALT = 20261129
#: The key of the one generator the draws come from (users are drawn once across seeds).
ACROSS_SEEDS = 1 << 32
#: Draw counts per block of draws (memory stays bounded with many users).
BLOCK_CELLS = 1 << 22
#: Draw-count matrices up to this many cells are kept for the next model of the same seed.
CACHE_CELLS = 1 << 23
_COUNTS: dict = {}
#: What each task's per-user file holds: the value's name, and the primary metric it gives.
#: ``ranking_hard``: season-v1's second ranking, over the hard candidates (the result's ``ranking_hard``).
VALUE = {"rating": "sse", "interaction": "auc", "ranking": "ndcg@10", "ranking_hard": "ndcg@10"}
#: The metric the bootstrap reproduces for each task (interaction: per-user AUC, i.e. GAUC).
METRIC = {"rating": "rmse", "interaction": "gauc", "ranking": "ndcg@10", "ranking_hard": "ndcg@10"}


@dataclass(frozen=True)
class PerUser:
    """One task's per-user values of one result: raw user ids ascending, a value and a weight
    (rating: SSE and pair count; other tasks: the user's metric and 1) per user."""

    users: np.ndarray
    values: np.ndarray
    weights: np.ndarray

    def metric(self, task: str) -> float:
        """The task's metric over all these users."""
        return float(_statistic(task, self.values[None, :], self.weights[None, :])[0])

    def on(self, users: np.ndarray) -> "PerUser":
        """Restricted to ``users`` (a sorted subset of ``self.users``)."""
        pos = np.searchsorted(self.users, users)
        return PerUser(users, self.values[pos], self.weights[pos])


def _statistic(task: str, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The metric of each row of gathered per-user values."""
    if task == "rating":
        return np.sqrt(values.sum(axis=1) / weights.sum(axis=1))
    return values.mean(axis=1)


def rating_per_user(user: np.ndarray, y, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, sum of squared errors, pair count) of rating pairs (predictions already clipped)."""
    user = np.asarray(user)
    users, inverse = np.unique(user, return_inverse=True)
    err = (np.asarray(y, np.float64) - np.asarray(p, np.float64)) ** 2
    return users, np.bincount(inverse, weights=err), np.bincount(inverse).astype(np.float64)


def pointwise_per_user(task: str, y, p, user) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user indices ascending, values, weights) of a pointwise task's scored pairs, as the task
    scores them (rating predictions clipped to 1-10; interaction: users with both classes)."""
    from animerec_bench import metrics
    from animerec_bench import tasks as tasks_mod

    if task == "rating":
        return rating_per_user(user, y, tasks_mod.RATING.clip(p))
    if task == "interaction":
        users, aucs = metrics.user_aucs(y, p, user)
        return users, aucs, np.ones(len(aucs))
    raise ValueError(f"task {task!r} is not scored per pair")


def encode(per_task: dict[str, PerUser]) -> bytes:
    """The ``.users.npz`` content: ``<task>.users``, ``<task>.values``, ``<task>.weights`` per task."""
    import io

    arrays = {}
    for task in sorted(per_task):
        pu = per_task[task]
        arrays[f"{task}.users"] = np.asarray(pu.users, dtype=np.int64)
        arrays[f"{task}.values"] = np.asarray(pu.values, dtype=np.float64)
        arrays[f"{task}.weights"] = np.asarray(pu.weights, dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return buf.getvalue()


def decode(data: bytes, where: str) -> dict[str, PerUser]:
    """Read :func:`encode`'s bytes; ``ValueError`` naming ``where`` when they are not such a file."""
    import io

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable content is the same user-facing problem
        raise ValueError(f"{where}: not a per-user file ({type(exc).__name__})") from None
    out = {}
    for task in sorted({k.split(".")[0] for k in arrays}):
        try:
            users, values, weights = (arrays[f"{task}.{p}"] for p in ("users", "values", "weights"))
        except KeyError:
            raise ValueError(f"{where}: task {task!r} misses users, values or weights") from None
        if not (users.ndim == values.ndim == weights.ndim == 1 and len(users) == len(values) == len(weights)):
            raise ValueError(f"{where}: task {task!r} arrays differ in length")
        if len(users) > 1 and not np.all(users[1:] > users[:-1]):
            raise ValueError(f"{where}: task {task!r} user ids are not unique and ascending")
        bad = ~(np.isfinite(values) & np.isfinite(weights)) | (weights <= 0)
        if bad.any():  # a NaN would pass every comparison unnoticed and read as "better"
            raise ValueError(f"{where}: task {task!r} holds a value that is not a finite number (user "
                             f"{int(users[np.argmax(bad)])}), or a weight that is not positive")
        out[task] = PerUser(users.astype(np.int64), values.astype(np.float64), weights.astype(np.float64))
    return out


#: How far a result's headline metric may lie from the one its per-user file gives: both are the
#: same float64 sums taken in another order (the published results agree to 3e-16).
HEADLINE_TOLERANCE = 1e-9


def headline_problem(metrics: dict, per_task: dict[str, PerUser]) -> str | None:
    """Why a result's headline ``metrics`` disagree with its per-user values, or None: each task's
    :data:`METRIC` recomputed from the file must equal the one the result states."""
    for task, pu in sorted(per_task.items()):
        stated = (metrics.get(task) or {}).get(METRIC[task]) if isinstance(metrics, dict) else None
        if not isinstance(stated, (int, float)) or isinstance(stated, bool):
            continue  # e.g. GAUC not recorded: the per-user file is the only number
        recomputed = pu.metric(task)
        if not math.isclose(stated, recomputed, rel_tol=HEADLINE_TOLERANCE, abs_tol=HEADLINE_TOLERANCE):
            return (f"metrics.{task}.{METRIC[task]} {stated:.4f} disagrees with its per-user file, which gives "
                    f"{recomputed:.4f} (the result was edited, or its files were mixed up)")
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _count_blocks(seed: int, n: int, draws: int):
    """The bootstrap draws of ``n`` users for ``seed`` as blocks of a ``[draws, n]`` matrix of how
    often each user was drawn: a function of (seed, n, draws) alone, so every model scored on the
    same users gets the same draws (paired). Small matrices are kept for the next model; a large
    one is made a block at a time as it is used, never whole."""
    key = (int(seed), int(n), int(draws))
    if key in _COUNTS:
        return _COUNTS[key]
    if n * draws > CACHE_CELLS:  # e.g. 325k users x 1,000 draws: 2.6 GB as one list; one block at a time
        return _generate_count_blocks(seed, n, draws)
    if len(_COUNTS) >= 8:
        _COUNTS.clear()
    _COUNTS[key] = list(_generate_count_blocks(seed, n, draws))
    return _COUNTS[key]


def _generate_count_blocks(seed: int, n: int, draws: int):
    rng = np.random.default_rng([SALT, int(seed)])
    block = max(1, BLOCK_CELLS // max(n, 1))
    for a in range(0, draws, block):
        rows = min(draws, a + block) - a
        idx = rng.integers(0, n, size=(rows, n)) + (np.arange(rows, dtype=np.int64) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _draws(task: str, by_seed: dict[int, list[PerUser]], draws: int) -> dict[int, list[np.ndarray]]:
    """Each model's metric on ``draws`` resamples of its users, per seed: ``{seed: [one array per model]}``
    for ``by_seed`` = ``{seed: [PerUser of each model]}`` (within a seed, the models' users are identical).

    Users, not (user, seed) pairs, are resampled: one draw says how often each user of the union of
    the seeds' users is taken, and that count applies to the user in every seed (the same users are
    in every seed's test part, so their seeds are not independent samples). A seed's metric is over
    its own users with those counts (a draw that takes none of them gives NaN there)."""
    seeds = sorted(by_seed)
    union = functools.reduce(np.union1d, [by_seed[s][0].users for s in seeds])
    prepared = {}
    for s in seeds:
        per_model = by_seed[s]
        # one product per block for every model (and, for rating, every weight): the counts are read once
        columns = [pu.values for pu in per_model] + ([pu.weights for pu in per_model] if task == "rating" else [])
        prepared[s] = (np.searchsorted(union, per_model[0].users), np.stack(columns, axis=1), len(per_model))
    parts: dict[int, list] = {s: [] for s in seeds}
    whole = {s: len(prepared[s][0]) == len(union) for s in seeds}
    with np.errstate(invalid="ignore", divide="ignore"):
        for counts in _count_blocks(ACROSS_SEEDS, len(union), draws):
            for s in seeds:
                pos, stacked, m = prepared[s]
                picked = counts if whole[s] else counts[:, pos]
                sums = picked @ stacked
                if task == "rating":
                    parts[s].append(np.sqrt(sums[:, :m] / sums[:, m:]))
                else:
                    parts[s].append(sums / (len(pos) if whole[s] else picked.sum(axis=1)[:, None]))
    out = {}
    for s in seeds:
        stacked_draws = np.concatenate(parts[s])
        out[s] = [stacked_draws[:, i] for i in range(prepared[s][2])]
    return out


def common_users(a: PerUser, b: PerUser) -> np.ndarray:
    return np.intersect1d(a.users, b.users, assume_unique=True)


@dataclass(frozen=True)
class Interval:
    """A point estimate, its 95% bootstrap interval and (for a difference) the two-sided p-value."""

    estimate: float
    low: float
    high: float
    p: float | None = None
    users: int = 0


def _summary(point: float, d: np.ndarray, users: int, with_p: bool) -> Interval:
    d = d[np.isfinite(d)]  # a draw that took none of a seed's users has no value there
    low, high = np.percentile(d, [2.5, 97.5])
    p = None
    if with_p:
        below, above = int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0))
        p = min(1.0, 2.0 * min(below + 1, above + 1) / (len(d) + 1))
    return Interval(float(point), float(low), float(high), p, users)


def _over_seeds(per_seed: list[np.ndarray]) -> np.ndarray:
    """Seeds combined draw by draw: the mean of each draw's per-seed values (NaN ones left out)."""
    stacked = np.stack(per_seed)
    if np.isfinite(stacked).all():
        return stacked.mean(axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw NaN in every seed stays NaN
        return np.nanmean(stacked, axis=0)


def format_p(p: float | None, draws: int) -> str:
    """A bootstrap p-value as printed: four decimals, or at the smallest value ``draws`` can give
    (2 / (draws + 1)) that floor rounded up to one significant digit, as "< 0.002" (1,000 draws)."""
    if p is None:
        return "–"
    floor = 2.0 / (draws + 1)
    if p <= floor * (1 + 1e-9):
        digits = -int(math.floor(math.log10(floor)))
        return f"< {math.ceil(floor * 10 ** digits) / 10 ** digits:.{digits}f}"
    return f"{p:.4f}"


def interval(task: str, by_seed: dict[int, PerUser], draws: int = DRAWS) -> Interval:
    """One model's metric, averaged over seeds, with its 95% bootstrap interval."""
    seeds = sorted(by_seed)
    drawn = _draws(task, {s: [by_seed[s]] for s in seeds}, draws)
    point = float(np.mean([by_seed[s].metric(task) for s in seeds]))
    return _summary(point, _over_seeds([drawn[s][0] for s in seeds]), min(len(by_seed[s].users) for s in seeds),
                    False)


def compare(task: str, a: dict[int, PerUser], b: dict[int, PerUser],
            draws: int = DRAWS) -> tuple[dict[int, Interval], Interval]:
    """B − A per common seed and combined (seeds averaged draw by draw), paired over common users,
    each user drawn once for all seeds (:func:`_draws`).

    ``ValueError`` when the two share no seed, or a seed shares no user."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no common seed (A has {sorted(a)}, B has {sorted(b)})")
    pairs = {}
    for s in seeds:
        users = common_users(a[s], b[s])
        if not len(users):
            raise ValueError(f"seed {s}: the two results share no user")
        pairs[s] = [a[s].on(users), b[s].on(users)]
    drawn = _draws(task, pairs, draws)
    per_seed, all_d = {}, []
    for s in seeds:
        (pa, pb), (da, db) = pairs[s], drawn[s]
        all_d.append(db - da)
        per_seed[s] = _summary(pb.metric(task) - pa.metric(task), db - da, len(pa.users), True)
    combined = _summary(float(np.mean([per_seed[s].estimate for s in seeds])), _over_seeds(all_d),
                        min(i.users for i in per_seed.values()), True)
    return per_seed, combined


def board(task: str, rows: dict, best, draws: int = DRAWS) -> dict:
    """For a leaderboard: ``{row: (interval of its metric, B − A against ``best`` or None)}`` for
    ``rows`` = ``{row: {seed: PerUser}}``, the same numbers as :func:`interval` and :func:`compare`
    give, with the draws made once for all rows scored on the same users in the same seeds."""
    groups: dict = {}
    for key, by_seed in rows.items():
        signature = tuple((s, by_seed[s].users.tobytes()) for s in sorted(by_seed))
        groups.setdefault(signature, []).append(key)
    own: dict = {}
    for keys in groups.values():
        seeds = sorted(rows[keys[0]])
        drawn = _draws(task, {s: [rows[k][s] for k in keys] for s in seeds}, draws)
        for i, key in enumerate(keys):
            own[key] = {s: drawn[s][i] for s in seeds}
    out = {}
    for key, by_seed in rows.items():
        seeds = sorted(by_seed)
        point = float(np.mean([by_seed[s].metric(task) for s in seeds]))
        iv = _summary(point, _over_seeds([own[key][s] for s in seeds]),
                      min(len(by_seed[s].users) for s in seeds), False)
        diff = None
        if best is not None and key != best:
            ref = rows[best]
            if any(key in keys and best in keys for keys in groups.values()):  # same users, same draws
                d = _over_seeds([own[key][s] - own[best][s] for s in seeds])
                est = float(np.mean([by_seed[s].metric(task) - ref[s].metric(task) for s in seeds]))
                diff = _summary(est, d, min(len(by_seed[s].users) for s in seeds), True)
            else:
                try:
                    diff = compare(task, ref, by_seed, draws)[1]
                except ValueError:  # no seed or user in common with the best: no mark
                    diff = None
        out[key] = (iv, diff)
    return out
