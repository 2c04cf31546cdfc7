"""Full-ranking evaluation: each user's top-K over every candidate anime, never sampled negatives.

The protocol's rules (issue 11):

- **relevant** items of a user: the target part's pairs with interaction label 1; a user is
  **evaluated** when they have at least one;
- **candidates**: every anime of the training vocabulary minus the user's pairs in the excluded
  parts. On test: train, validation and the split's ``other`` pairs (examples of neither task,
  e.g. unscored plan-to-watch: their relevance is unknown). On validation (``tune``'s trials,
  and a model tuning its hyperparameters inside ``fit``: :meth:`RankingData.validation`): train
  and ``other``. Target pairs with label 0 stay candidates: a
  dropped or disliked show ranked high is a miss.

Users are scored in chunks of at most ``chunk_cells`` (user, anime) scores, so memory is
bounded by the chunk, not by users x anime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from animerec_bench.model import Interactions, PredictionError

if TYPE_CHECKING:
    from animerec_bench.data.protocol import Split

#: Cut-offs of the per-user metrics; coverage and novelty are reported at the smallest.
DEFAULT_KS = (10, 20)
#: Scores per chunk: 4M cells = 16 MB of float32 scores (the chunk's other arrays are smaller).
CHUNK_CELLS = 1 << 22
#: How many column groups' maxima bound the top-K threshold (see :func:`top_k`).
GROUPS = 512
#: A row whose top K all tie at its maximum is looked up in its first ``PREFIX_PER_K * K`` columns.
PREFIX_PER_K = 8

ScoreFn = Callable[[np.ndarray], np.ndarray]


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` by sort and neighbour test (numpy 2's hashing ``unique`` took ~9 s on 6.7M keys here)."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _pair_keys(rows: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    """The distinct ``row * n_cols + col`` keys, ascending (int64), made in place: one int64
    array a pair at a time beside the inputs, where chained operators made four."""
    keys = rows.astype(np.int64)
    keys *= n_cols
    keys += cols
    keys.sort()
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _csr_of_keys(keys: np.ndarray, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, indices)`` of the sorted distinct pair ``keys``; ``keys`` is used up (overwritten)."""
    indptr = np.searchsorted(keys, np.arange(n_rows + 1, dtype=np.int64) * n_cols)
    np.remainder(keys, n_cols, out=keys)
    return indptr.astype(np.int64), keys.astype(np.int32)


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, indices)`` of the distinct (row, col) pairs, columns ascending within a row."""
    return _csr_of_keys(_pair_keys(rows, cols, n_cols), n_rows, n_cols)


def popularity_percentiles(counts: np.ndarray) -> np.ndarray:
    """Each item's popularity percentile among all items, 0-100 (100 = most popular).

    ``100 * (#items with a smaller count + (#items with an equal count - 1) / 2) / (n_items - 1)``:
    the item's mean 0-based rank by count, scaled so the unique most popular item is 100 and
    the unique least popular 0; tied items share their mean rank (50 for a single item).
    """
    counts = np.asarray(counts)
    n = len(counts)
    if n <= 1:
        return np.full(n, 50.0)
    sorted_counts = np.sort(counts)
    below = np.searchsorted(sorted_counts, counts, side="left")
    equal = np.searchsorted(sorted_counts, counts, side="right") - below
    return 100.0 * (below + (equal - 1) / 2.0) / (n - 1)


@dataclass(frozen=True, eq=False)
class RankingData:
    """What the ranking of one split part needs, built once: evaluated users, and for each of
    them the relevant and excluded items (CSR: row ``r`` of ``relevant`` is
    ``relevant[relevant_indptr[r]:relevant_indptr[r + 1]]``, item indices ascending), plus each
    item's popularity percentile in train (:func:`popularity_percentiles` of train pair counts)."""

    users: np.ndarray  # int32, ascending: the evaluated users
    relevant_indptr: np.ndarray  # int64, len(users) + 1
    relevant: np.ndarray  # int32 item indices
    excluded_indptr: np.ndarray  # int64, len(users) + 1
    excluded: np.ndarray  # int32 item indices
    popularity: np.ndarray  # float64 [n_items], 0-100
    n_items: int
    #: Cold-start protocols (issue 23): only anime ``lo <= index < hi`` are candidates (the part's
    #: own held-out anime); None: every anime of the vocabulary.
    candidates: tuple[int, int] | None = None

    @property
    def n_candidates(self) -> int:
        return self.n_items if self.candidates is None else self.candidates[1] - self.candidates[0]

    @property
    def n_users(self) -> int:
        """How many users are evaluated (every metric is a mean over them)."""
        return len(self.users)

    @classmethod
    def from_parts(cls, train: Interactions, target: Interactions,
                   exclude: Sequence[Interactions] = (), n_items: int | None = None) -> "RankingData":
        """Relevant items from ``target`` (label 1); excluded: the pairs of ``train`` and of
        ``exclude``; popularity: how many ``train`` pairs (of any task) each anime has.
        ``n_items``: how many anime are scored (default: ``train``'s vocabulary).

        A model tuning on validation inside ``fit``: ``from_parts(train, valid)``.
        """
        n_items = train.n_items if n_items is None else n_items
        rel = target.label == 1
        users = _sorted_unique(target.user[rel]).astype(np.int32)
        row_of = np.full(max(train.n_users, target.n_users), -1, dtype=np.int32)
        row_of[users] = np.arange(len(users), dtype=np.int32)
        rel_keys = _pair_keys(row_of[target.user[rel]], target.item[rel], n_items)
        # The excluded pairs are most of the data (train and, on test, the unscored pairs): at
        # the full 2020 size ~100M, so each int64 copy of them is 0.8 GB. One at a time here.
        rows = np.concatenate([row_of[p.user] for p in (train, *exclude)])
        cols = np.concatenate([p.item for p in (train, *exclude)])
        evaluated = rows >= 0
        if not evaluated.all():
            rows, cols = rows[evaluated], cols[evaluated]
        del evaluated
        ex_keys = rows.astype(np.int64)
        del rows
        ex_keys *= n_items
        ex_keys += cols
        del cols
        ex_keys.sort()
        ex_keys = ex_keys[np.r_[True, ex_keys[1:] != ex_keys[:-1]]] if len(ex_keys) else ex_keys
        if len(ex_keys) and len(rel_keys):
            pos = np.minimum(np.searchsorted(ex_keys, rel_keys), len(ex_keys) - 1)
            clash = int(np.count_nonzero(ex_keys[pos] == rel_keys))
            if clash:
                raise ValueError(f"{clash} relevant (user, anime) pair(s) are also in an excluded part; "
                                 f"the parts of a split must not share pairs")
        rel_indptr, rel_items = _csr_of_keys(rel_keys, len(users), n_items)
        ex_indptr, ex_items = _csr_of_keys(ex_keys, len(users), n_items)
        return cls(users, rel_indptr, rel_items, ex_indptr, ex_items,
                   popularity_percentiles(np.bincount(train.item, minlength=n_items)), n_items)

    @classmethod
    def validation(cls, train: Interactions, valid: Interactions) -> "RankingData":
        """The validation ranking ``tune`` scores trials by, from what ``fit`` is given: relevant
        items from ``valid``; excluded: ``train`` and ``valid.other`` (the split's pairs of neither
        task, attached by the harness; without them, train only). A model choosing its settings
        inside ``fit`` uses this, so its choice and ``tune``'s agree."""
        return cls.from_parts(train, valid, () if valid.other is None else (valid.other,))

    @classmethod
    def from_split(cls, split: "Split", part: str = "test") -> "RankingData":
        """The test ranking (excluding train, validation and ``split.other``), or with
        ``part="valid"`` the validation ranking the harness scores tuning trials by (excluding train
        and ``split.other``; test pairs stay candidates, as they are unknown at that point)."""
        other = () if split.other is None else (split.other,)
        if part == "test":
            data = cls.from_parts(split.train, split.test, (split.valid, *other))
        elif part == "valid":
            data = cls.validation(split.train, split.valid_for_fit())
        else:
            raise ValueError(f"ranking is evaluated on 'test' or 'valid', not {part!r}")
        span = split.item_range(part)  # a cold-start split: rank the part's own anime only
        return data if span is None else dataclasses.replace(data, candidates=span)

    @classmethod
    def hard(cls, split: "Split") -> "RankingData":
        """``season-v1``'s hard-candidate ranking: the test ranking's relevant items, over every
        catalogue anime from the test cut on: the test anime and ``split.hard`` beyond the
        vocabulary (index ``n_items + j``); excluded as in the test ranking, plus the user's pairs
        on those further anime (``split.hard_other``)."""
        if split.hard is None or split.hard_other is None:
            raise ValueError(f"protocol {split.protocol} has no hard candidates")
        n_items = split.n_items + split.hard.n_items
        other = () if split.other is None else (split.other,)
        data = cls.from_parts(split.train, split.test, (split.valid, *other, split.hard_other), n_items=n_items)
        lo, _ = split.item_range("test") or (0, 0)
        return dataclasses.replace(data, candidates=(lo, n_items))

    def _keys(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(indptr))
        return rows * self.n_items + items


def top_k(scores: np.ndarray, k: int, *, groups: int = GROUPS) -> np.ndarray:
    """Each row's ``k`` highest-scoring columns, best first, as an int64 array ``[rows, k]``.

    Tie rule: among equal scores the lower column (anime index) comes first, so the lists are
    one deterministic function of the scores (a constant scorer lists anime 0, 1, 2, ...).
    A score of -inf is never listed: a row with fewer than ``k`` higher scores is padded with
    -1. NaN raises :class:`PredictionError`.

    How: the columns are dealt into ``groups`` strided groups (column j in group j mod groups,
    plus one group for the last n mod groups columns). The ``k``-th largest group maximum is a
    lower bound of the row's ``k``-th largest score, so only groups whose maximum reaches it can
    hold the top ``k``; their scores at or above the bound are sorted by (score desc, column
    asc). The maxima are a halving tree of ``np.maximum`` (~0.3 ns a score here, against ~2 for
    ``np.argpartition``). Rows where the bound is -inf or reached by many groups (heavy ties,
    e.g. a constant scorer), and arrays too narrow for groups, take an exact path: the ``k``-th
    largest value by ``np.partition``, every higher score, then the lowest columns equal to it;
    a row whose bound is its maximum (a constant scorer's) first looks for its ``k`` lowest
    columns at the maximum in a short prefix of the row (6x faster on such rows).
    """
    c, n = scores.shape
    out = np.full((c, k), -1, dtype=np.int64)
    kk = min(k, n)
    if c == 0 or kk == 0:
        return out
    rows = np.arange(c)
    if groups >= 2 * kk and n // groups >= 2:
        parts = _grouped_candidates(scores, kk, groups)
    else:
        parts = [_exact(scores, rows, kk)]
    _fill(out, parts, rows, kk)
    return out


def _grouped_candidates(scores: np.ndarray, kk: int, groups: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(row, column, score) of every score that may be in its row's top ``kk``, by the strided
    groups of :func:`top_k` (its docstring says how); rows the groups cannot settle take the exact
    paths."""
    c, n = scores.shape
    rows = np.arange(c)
    depth = n // groups  # scores per group
    grid = scores[:, :depth * groups].reshape(c, depth, groups)  # grid[r, t, g] = column t * groups + g
    tail = scores[:, depth * groups:]
    maxima = _max_over_axis1(grid)
    bounds = maxima if tail.shape[1] == 0 else np.concatenate([maxima, tail.max(axis=1)[:, None]], axis=1)
    if np.isnan(bounds).any():
        raise PredictionError(_nan_message(scores))
    t0 = np.partition(bounds, bounds.shape[1] - kk, axis=1)[:, bounds.shape[1] - kk]
    reach = maxima >= t0[:, None]
    exact = (np.count_nonzero(reach, axis=1) > 4 * kk) | (t0 == -np.inf)
    reach &= ~exact[:, None]
    r, g = np.nonzero(reach)
    vals = grid[r, :, g]  # [candidate groups, depth]
    i, t = np.nonzero(vals >= t0[r][:, None])
    parts = [(r[i], t.astype(np.int64) * groups + g[i], vals[i, t])]
    tr, tj = np.nonzero((tail >= t0[:, None]) & ~exact[:, None])
    parts.append((tr, depth * groups + tj, tail[tr, tj]))
    tied = exact & (t0 > -np.inf) & (t0 == bounds.max(axis=1))  # the whole top k ties at the row's max
    if tied.any():
        part, done = _first_at_max(scores, rows[tied], t0[tied], kk)
        parts.append(part)
        exact[rows[tied][done]] = False
    if exact.any():
        parts.append(_exact(scores, rows[exact], kk))
    return parts


def _fill(out: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: np.ndarray, kk: int) -> None:
    """Write each row's best ``kk`` candidates of ``parts`` into ``out``, by (score desc, column
    asc); -inf is never listed (its slots keep -1)."""
    row = np.concatenate([p[0] for p in parts])
    col = np.concatenate([p[1] for p in parts])
    val = np.concatenate([p[2] for p in parts])
    order = np.lexsort((col, -val, row))
    row, col, val = row[order], col[order], val[order]
    start = np.searchsorted(row, rows)
    pos = np.arange(len(row)) - start[row]
    keep = (pos < kk) & (val > -np.inf)
    out[row[keep], pos[keep]] = col[keep]


def _max_over_axis1(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=1)`` of a 3-d array by halving with ``np.maximum`` (contiguous last axis:
    several times faster than numpy's reduction over a middle axis); NaN propagates."""
    while a.shape[1] > 1:
        half = a.shape[1] // 2
        top = np.maximum(a[:, :half], a[:, half:2 * half])
        if a.shape[1] % 2:
            np.maximum(top[:, 0], a[:, -1], out=top[:, 0])
        a = top
    return a[:, 0]


def _exact(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, score) of exactly ``k`` entries per row in ``rows``: the top ``k`` under the
    tie rule (every score above the k-th largest value, then the lowest columns equal to it)."""
    sub = scores[rows]
    n = sub.shape[1]
    if np.isnan(sub).any():
        raise PredictionError(_nan_message(scores))
    kth = np.partition(sub, n - k, axis=1)[:, n - k][:, None]
    above = sub > kth
    equal = sub == kth
    room = k - np.count_nonzero(above, axis=1)
    take = above | (equal & (np.cumsum(equal, axis=1) <= room[:, None]))
    r, j = np.nonzero(take)
    return rows[r], j.astype(np.int64), sub[r, j]


def _first_at_max(scores: np.ndarray, rows: np.ndarray, top: np.ndarray, k: int):
    """The top ``k`` of ``rows`` whose ``k``-th largest score is their maximum ``top`` (a constant
    scorer's rows): by the tie rule, the ``k`` lowest columns scoring ``top``, looked for among the
    first ``PREFIX_PER_K * k`` columns only. Returns ``((row, column, score), found)``: ``found``
    marks the rows whose prefix held ``k`` of them; the others are left to :func:`_exact`."""
    prefix = scores[rows, :min(scores.shape[1], PREFIX_PER_K * k)]
    at_max = prefix == top[:, None]
    found = np.count_nonzero(at_max, axis=1) >= k
    take = at_max & found[:, None] & (np.cumsum(at_max, axis=1) <= k)
    r, j = np.nonzero(take)
    return (rows[r], j.astype(np.int64), prefix[r, j]), found


def _nan_message(scores: np.ndarray) -> str:
    return f"ranking scores contain {int(np.isnan(scores).sum())} NaN value(s) in a chunk of {scores.shape}"


def evaluate(data: RankingData, score_fn: ScoreFn, ks: Sequence[int] = DEFAULT_KS, *,
             chunk_cells: int = CHUNK_CELLS, per_user: dict | None = None) -> dict[str, float]:
    """The ranking metrics of ``score_fn`` on ``data``, means over the ``data.n_users`` evaluated
    users (that count is ``data.n_users``; it is not in the returned dict).

    ``score_fn(users)`` gets an int32 array of user indices and returns a float array
    ``[len(users), data.n_items]``, higher = recommend first; ``evaluate`` writes -inf into it
    at each user's excluded anime (it copies a read-only array first). Lists follow
    :func:`top_k`'s tie rule (equal scores: lower anime index first).

    Keys, for each K in ``ks``, with binary relevance and R = the user's relevant items:

    - ``ndcg@K``: DCG of the top K (gain 1 / log2(rank + 1) per hit, ranks from 1) over the ideal
      DCG of min(|R|, K) hits;
    - ``recall@K``: hits in the top K / |R|, *not* capped at K / |R| (a user with more relevant
      items than K cannot reach 1);
    - ``hit_rate@K``: 1 when the top K holds at least one relevant item;
    - ``mrr@K``: 1 / rank of the first hit within the top K, else 0;
    - ``map@K``: average precision at K: the sum of precision@rank at each hit's rank, over
      min(|R|, K);

    and at k = min(ks): ``coverage@k``, the share of all ``n_items`` anime that appear in at
    least one user's top k; ``novelty@k``, the mean train popularity percentile
    (:func:`popularity_percentiles`: 100 = the most popular anime, 0 the least) over every
    filled top-k slot of every user: lower = more novel. With no evaluated user every value is NaN.

    With a ``per_user`` dict, it also receives ``users`` (``data.users``) and, for each K,
    ``ndcg@K``: each evaluated user's own NDCG (float64, ``ndcg@K`` is their mean), for paired
    significance tests (:mod:`animerec_bench.evaluation.significance`).
    """
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    kc, kmax, n_items = ks[0], ks[-1], data.n_items
    names = [f"{m}@{k}" for k in ks for m in ("ndcg", "recall", "hit_rate", "mrr", "map")]
    names += [f"coverage@{kc}", f"novelty@{kc}"]
    if data.n_users == 0:
        return {name: float("nan") for name in names}
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    ideal = np.concatenate([[1.0], np.cumsum(discount)])  # ideal[m]: DCG of m hits; [0] unused
    sums = dict.fromkeys(names[:-2], 0.0)
    seen = np.zeros(n_items, dtype=bool)
    novelty_sum, slots = 0.0, 0
    user_ndcg = {k: np.zeros(data.n_users) for k in ks} if per_user is not None else None
    for a, b, top in _ranked_chunks(data, score_fn, kmax, chunk_cells):
        hits = _hits(data, a, b, top)
        n_rel = np.diff(data.relevant_indptr[a:b + 1])
        for k in ks:
            per_user_k = _user_metrics(hits[:, :k], n_rel, discount, ideal)
            for metric, values in per_user_k.items():
                sums[f"{metric}@{k}"] += float(np.sum(values))
            if user_ndcg is not None:
                user_ndcg[k][a:b] = per_user_k["ndcg"]
        listed = top[:, :kc][top[:, :kc] >= 0]
        seen[listed] = True
        novelty_sum += float(data.popularity[listed].sum())
        slots += len(listed)
    if per_user is not None and user_ndcg is not None:
        per_user["users"] = data.users
        per_user.update({f"ndcg@{k}": v for k, v in user_ndcg.items()})
    result = {name: total / data.n_users for name, total in sums.items()}
    result[f"coverage@{kc}"] = float(np.count_nonzero(seen)) / data.n_candidates
    result[f"novelty@{kc}"] = novelty_sum / slots if slots else float("nan")
    return {name: float(result[name]) for name in names}


def _user_metrics(hits: np.ndarray, n_rel: np.ndarray, discount: np.ndarray,
                  ideal: np.ndarray) -> dict[str, np.ndarray]:
    """Each user's ``ndcg``, ``recall``, ``hit_rate``, ``mrr`` and ``map`` at K = ``hits.shape[1]``
    (``hits``: 1 where the user's list holds a relevant anime, first K slots; ``n_rel``: their
    relevant count), as :func:`evaluate` defines them; it sums each over the users."""
    k = hits.shape[1]
    found = hits.sum(axis=1)
    m = np.minimum(n_rel, k)
    first = np.argmax(hits, axis=1)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return {"ndcg": (hits @ discount[:k]) / ideal[m],
            "recall": found / n_rel,
            "hit_rate": (found > 0).astype(np.float64),
            "mrr": np.where(found > 0, 1.0 / (first + 1), 0.0),
            "map": (precision * hits).sum(axis=1) / m}


def top_lists(data: RankingData, score_fn: ScoreFn, k: int = 10, *,
              chunk_cells: int = CHUNK_CELLS) -> np.ndarray:
    """Every evaluated user's top ``k`` anime (row r: user ``data.users[r]``), as :func:`evaluate`
    ranks them: int64 ``[data.n_users, k]``, -1 where a user has fewer than ``k`` candidates."""
    out = np.full((data.n_users, k), -1, dtype=np.int64)
    for a, b, top in _ranked_chunks(data, score_fn, k, chunk_cells):
        out[a:b] = top
    return out


def user_chunks(data: RankingData, chunk_cells: int = CHUNK_CELLS) -> Iterator[tuple[int, int]]:
    """``(a, b)`` for each chunk of evaluated users ``data.users[a:b]`` that :func:`evaluate` hands
    the score function at once (at most ``chunk_cells`` scores, at least one user). A model that
    scores ahead what ``evaluate`` will ask for (``kernel-tower``'s weight search) scores these
    chunks too, so that its matrix products are the same bits."""
    per_chunk = max(1, chunk_cells // max(data.n_items, 1))
    for a in range(0, data.n_users, per_chunk):
        yield a, min(a + per_chunk, data.n_users)


def _ranked_chunks(data: RankingData, score_fn: ScoreFn, k: int, chunk_cells: int):
    """``(a, b, top)`` for each chunk of evaluated users ``a:b``: their top ``k`` candidates."""
    for a, b in user_chunks(data, chunk_cells):
        users = data.users[a:b]
        scores = _check_scores(score_fn(users), len(users), data.n_items)
        lo, hi = data.excluded_indptr[a], data.excluded_indptr[b]
        scores[np.repeat(np.arange(b - a), np.diff(data.excluded_indptr[a:b + 1])), data.excluded[lo:hi]] = -np.inf
        if data.candidates is not None:
            scores[:, :data.candidates[0]] = -np.inf
            scores[:, data.candidates[1]:] = -np.inf
        top = top_k(scores, k)
        del scores  # before the next chunk's scores exist: memory holds one chunk
        yield a, b, top


def _check_scores(scores, n_users: int, n_items: int) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.shape != (n_users, n_items):
        raise PredictionError(f"score function returned shape {scores.shape} for {n_users} users, "
                              f"expected ({n_users}, {n_items})")
    if not np.issubdtype(scores.dtype, np.floating):
        return scores.astype(np.float64)
    if not scores.flags.writeable:
        return scores.copy()
    return scores


def _hits(data: RankingData, a: int, b: int, top: np.ndarray) -> np.ndarray:
    """``hits[r, j]``: whether ``top[r, j]`` is a relevant item of evaluated user ``a + r``."""
    lo, hi = data.relevant_indptr[a], data.relevant_indptr[b]
    rows = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(data.relevant_indptr[a:b + 1]))
    keys = rows * data.n_items + data.relevant[lo:hi]  # ascending: rows, then items within a row
    wanted = np.arange(b - a, dtype=np.int64)[:, None] * data.n_items + top
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return (top >= 0) & (keys[pos] == wanted)


def scores_from_predictions(model, task: str, n_items: int, *, chunk_cells: int = CHUNK_CELLS) -> ScoreFn:
    """A score function for a model without ``score``: ``model.predict`` on each user x every
    anime (pieces of at most ``chunk_cells`` pairs, at least one user), ``predictions[task]``
    reshaped to ``[users, n_items]`` (float64)."""
    items = np.arange(n_items, dtype=np.int32)
    per_piece = max(1, chunk_cells // max(n_items, 1))

    def score(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int32)
        out = np.empty((len(users), n_items), dtype=np.float64)
        for a in range(0, len(users), per_piece):
            u = users[a:a + per_piece]
            predictions = model.predict(np.repeat(u, n_items), np.tile(items, len(u)))
            try:
                p = np.asarray(predictions[task], dtype=np.float64)
            except (KeyError, TypeError, IndexError):
                raise PredictionError(f"model {getattr(model, 'name', model)!r}: predict returned no "
                                      f"scores for task {task!r}") from None
            if p.size != len(u) * n_items:
                raise PredictionError(f"model {getattr(model, 'name', model)!r}: task {task!r} scores have "
                                      f"shape {p.shape}, expected ({len(u) * n_items},)")
            out[a:a + len(u)] = p.reshape(len(u), n_items)
        return out

    return score
