"""``item-knn-baseline``: item-based kNN on baseline residuals, a peer that beat the board.

An independent check on the published split found Surprise's ``KNNBaseline`` (item-based,
``pearson_baseline`` similarity, its defaults) ahead of ``mf-biased``; this is the same
arithmetic (Koren 2010, formula 3), vectorised with numpy and ``scipy.sparse``, so it runs in
the same harness on the same split:

- baselines ``b_ui = mu + b_u + b_i`` by alternating least squares (items, then users, each
  sweep: ``b_i = sum(r - mu - b_u) / (reg_i + n_i)``, ``b_u = sum(r - mu - b_i) / (reg_u + n_u)``);
- similarity of items i, j over the users who rated both, on residuals ``d = r - b_ui``:
  ``sum d_ui d_uj / sqrt(sum d_ui^2 * sum d_uj^2) * (n_ij - 1) / (n_ij - 1 + shrinkage)``,
  0 when fewer than 2 users rated both, 1 on the diagonal;
- ``r_ui = b_ui + sum_j s_ij d_uj / sum_j s_ij`` over the ``k`` items the user rated most
  similar to i, positive similarities only (none, or fewer than ``min_k``: the baseline),
  clipped to 1-10 as Surprise clips to the rating scale.

On mal2016-5k / v1 / seeds 0-2 every test prediction equals Surprise's within 1e-6 (test RMSE
1.1506 / 1.1395 / 1.1402, as Surprise's; ``benchmarks/peers_check.py``). Where they may differ:
similarities are stored as float32, and a tie for the k-th neighbour is broken arbitrarily
(Surprise keeps the first rated). Cost: the similarity matrix is dense float32, n_items^2 x 4
bytes (191 MB on mal2016-5k, 1.2 GB for 17,500 anime); on mal2016-5k fit takes 2-3 s (Surprise
6-14 s) and ``score`` of every anime for every test user (26M pairs) ~7 s of CPU (10 s through
``predict``), on a loaded 2-core machine.
"""

from __future__ import annotations

import numpy as np

from animerec_bench import hookimpl
from animerec_bench.model import Interactions, Model, check_param
from animerec_bench.support.threads import run_blocks

#: Rating predicted when there is nothing to learn from.
EMPTY_MEAN = 5.5
#: Most float entries a dense working block of fit's similarity rows may hold.
BLOCK_ELEMENTS = 1 << 22
#: Most entries a block of a user's rated rows x queried anime may hold when predicting and scoring:
#: 1 MB of float32, so the passes over it stay in a core's L2 cache (on mal2016-5k, 10-20% less
#: CPU time than 16 MB blocks; 256 KB blocks lose it again to per-call overhead).
SCORE_BLOCK = 1 << 18
#: Users a thread takes at a time when scoring every anime (:func:`.run_blocks`): a block is
#: ~10-50 ms of work on mal2016-5k, so handing it out costs nothing, and users balance. On
#: mal2016-5k's test users, 2 cores: 1.4-1.6x as fast as one thread (same scores, bit for bit).
USER_BLOCK = 16
#: Longest row of 16-bit levels sorted in one piece when selecting a column's k largest (see
#: :func:`_largest_levels`); 32-bit rows are sorted whole (on an AVX2 host, 1,500-entry rows:
#: whole 66 ms, pieces of 512 97 ms, for 3,000 rows).
SORT_RUN = 512


def _level_dtype() -> type[np.unsignedinteger]:
    """uint16 where numpy sorts 16-bit integers with SIMD (its ``AVX512_ICL`` path, ~1 ns an
    entry), else uint32: without it numpy sorts 16-bit rows with a scalar sort (measured on an
    AVX2-only host: 29.6 ns an entry, against 3.3 ns for uint32). Either width selects the same
    entries (:func:`_keep_top_k`). Read from numpy's public build report (``show_config``; was its
    private ``__cpu_features__``, whose removal would have broken this module's import)."""
    try:
        simd = np.show_config(mode="dicts")["SIMD Extensions"]
        found = [*simd.get("baseline", ()), *simd["found"]]  # built in, or dispatched to on this CPU
    except (TypeError, KeyError, AttributeError):  # a numpy without the report: the width that is never slow
        found = []
    return np.uint16 if "AVX512_ICL" in found else np.uint32


#: The integer type of the levels :func:`_keep_top_k` sorts, chosen for this CPU.
LEVEL_DTYPE = _level_dtype()


def als_baselines(user: np.ndarray, item: np.ndarray, y: np.ndarray, mean: float, n_users: int,
                  n_items: int, reg_u: float, reg_i: float, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """User and item biases by Surprise's ``baseline_als``: items first, then users, ``epochs`` sweeps."""
    n_u = np.bincount(user, minlength=n_users)
    n_i = np.bincount(item, minlength=n_items)
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    resid = y - mean
    for _ in range(epochs):
        bi = np.bincount(item, weights=resid - bu[user], minlength=n_items) / (reg_i + n_i)
        bu = np.bincount(user, weights=resid - bi[item], minlength=n_users) / (reg_u + n_u)
    return bu, bi


def pearson_baseline(user: np.ndarray, item: np.ndarray, resid: np.ndarray, n_users: int, n_items: int,
                     shrinkage: float) -> np.ndarray:
    """The shrunk pearson-baseline similarity of every pair of items, float32 (n_items, n_items).

    Sums over the users who rated both items come from sparse products of the residual
    matrix, a block of item rows at a time; negative similarities are stored as 0 (only
    positive ones ever enter a prediction).
    """
    import scipy.sparse as sp

    shape = (n_users, n_items)
    ones = np.ones(len(resid))
    R = sp.csr_matrix((resid, (user, item)), shape=shape)
    R2 = sp.csr_matrix((resid * resid, (user, item)), shape=shape)
    B = sp.csr_matrix((ones, (user, item)), shape=shape)
    Rt, R2t, Bt = R.T.tocsr(), R2.T.tocsr(), B.T.tocsr()
    sim = np.zeros((n_items, n_items), dtype=np.float32)
    rows = max(1, BLOCK_ELEMENTS // max(n_items, 1))
    for a in range(0, n_items, rows):
        b = min(a + rows, n_items)
        prods = (Rt[a:b] @ R).toarray()       # sum over common users of d_ui * d_uj
        sq_i = (R2t[a:b] @ B).toarray()       # sum over common users of d_ui^2
        sq_j = (Bt[a:b] @ R2).toarray()       # sum over common users of d_uj^2
        freq = (Bt[a:b] @ B).toarray()        # number of common users
        with np.errstate(divide="ignore", invalid="ignore"):
            block = prods / np.sqrt(sq_i * sq_j) * ((freq - 1) / (freq - 1 + shrinkage))
        block[(freq < 2) | ~np.isfinite(block) | (block < 0)] = 0.0
        sim[a:b] = block
    sim[np.arange(n_items), np.arange(n_items)] = 1.0
    return sim


class ItemKNNBaseline(Model):
    """Item-based kNN with baseline (Surprise's ``KNNBaseline``, item-based, pearson-baseline).

    Defaults are Surprise's: ``k=40, min_k=1``, shrinkage 100, baselines by 10 ALS sweeps
    with ``reg_u=15, reg_i=10``. Learned state: ``mean_``, ``user_bias_``, ``item_bias_``,
    ``sim_`` (float32, n_items x n_items) and each user's rated items and residuals (CSR).
    """

    name = "item-knn-baseline"
    tasks = ("rating",)
    joint = False
    version = "1"
    baseline = False
    peer = "Koren 2010 / Surprise KNNBaseline, numpy port"
    #: For ``tune``: the neighbourhood and the similarity's shrinkage (baselines' ALS left as Surprise has them).
    search_space = {"k": ("int", 5, 200, "log"), "shrinkage": ("float", 1.0, 1000.0, "log")}

    def __init__(self, k: int = 40, min_k: int = 1, shrinkage: float = 100.0, reg_u: float = 15.0,
                 reg_i: float = 10.0, bsl_epochs: int = 10) -> None:
        self.k = k
        self.min_k = min_k
        self.shrinkage = shrinkage
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.bsl_epochs = bsl_epochs

    @classmethod
    def validate_params(cls, params):
        """k >= 1; min_k, shrinkage, the baselines' regularisation and sweeps >= 0."""
        check_param(params, "k", at_least=1)
        for key in ("min_k", "shrinkage", "reg_u", "reg_i", "bsl_epochs"):
            check_param(params, key, at_least=0)

    def fit(self, train: Interactions, valid: Interactions | None, *, tasks=("rating",), seed: int = 0):
        self.check_tasks(tasks)
        rated, y = train.for_task("rating")
        user = rated.user.astype(np.int64)
        item = rated.item.astype(np.int64)
        y = y.astype(np.float64)
        self.mean_ = float(y.mean()) if len(y) else EMPTY_MEAN
        self.user_bias_, self.item_bias_ = als_baselines(user, item, y, self.mean_, train.n_users,
                                                         train.n_items, self.reg_u, self.reg_i,
                                                         int(self.bsl_epochs))
        resid = y - self.mean_ - self.user_bias_[user] - self.item_bias_[item]
        self.sim_ = pearson_baseline(user, item, resid, train.n_users, train.n_items, float(self.shrinkage))
        # Each user's rated items and residuals, in CSR form: row u is rated_[indptr_[u]:indptr_[u + 1]].
        order = np.lexsort((item, user))
        self.indptr_ = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=train.n_users))])
        self.rated_ = item[order]
        self.resid_ = resid[order].astype(np.float32)
        self.epochs_ = 0  # no training epochs: closed-form baselines and one similarity pass
        return self

    def predict(self, user, item):
        user = np.asarray(user, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        n_users, n_items = len(self.user_bias_), len(self.item_bias_)
        known_u = (user >= 0) & (user < n_users)
        known_i = (item >= 0) & (item < n_items)
        est = np.full(len(user), self.mean_, dtype=np.float64)
        est[known_u] += self.user_bias_[user[known_u]]
        est[known_i] += self.item_bias_[item[known_i]]
        both = np.flatnonzero(known_u & known_i)
        if len(both):
            est[both] += self._neighbour_terms(user[both], item[both])
        return {"rating": np.clip(est, 1.0, 10.0)}

    def score(self, user) -> np.ndarray:
        """Every anime's ``predict`` rating for each of ``user``: float64 ``[len(user), n_items]``,
        equal to ``predict`` on each (user, anime) pair (clipped to 1-10, so ranking by it lists what
        ranking by the rating predictions lists), without the pairs: the baseline is one broadcast
        sum, and each user's neighbour terms come from whole rows of ``sim_`` (:meth:`_user_terms`),
        blocks of users on the job's cores (:func:`.run_blocks`)."""
        user = np.asarray(user, dtype=np.int64)
        n_users, n_items = len(self.user_bias_), len(self.item_bias_)
        known = (user >= 0) & (user < n_users)
        first = np.full(len(user), self.mean_, dtype=np.float64)
        first[known] += self.user_bias_[user[known]]
        out = first[:, None] + self.item_bias_[None, :]  # as predict adds them: (mean + b_u) + b_i
        every = np.arange(n_items, dtype=np.int64)
        rows = np.flatnonzero(known)

        def add_terms(a: int, b: int) -> None:
            for row in rows[a:b]:
                out[row] += self._user_terms(int(user[row]), every)

        run_blocks(add_terms, len(rows), USER_BLOCK)  # users on the job's cores
        return np.clip(out, 1.0, 10.0, out=out)

    def _neighbour_terms(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """``sum s d / sum s`` over each pair's top-k positive neighbours, one user at a time (in
        this thread: a test pair's few anime are too little work a user for threads to gain;
        measured slower with them)."""
        out = np.zeros(len(user), dtype=np.float64)
        if len(user) > 1 and np.any(user[1:] < user[:-1]):
            order = np.argsort(user, kind="stable")
        else:  # already grouped (one user's every anime, a ranking grid): skip the sort
            order = None
        sorted_user = user if order is None else user[order]
        starts = np.flatnonzero(np.r_[True, sorted_user[1:] != sorted_user[:-1]])
        ends = np.r_[starts[1:], len(sorted_user)]
        for s, e in zip(starts, ends):
            where = np.arange(s, e) if order is None else order[s:e]
            out[where] = self._user_terms(int(sorted_user[s]), item[where])
        return out

    def _user_terms(self, u: int, queried: np.ndarray) -> np.ndarray:
        """User ``u``'s neighbour term for each of the ``queried`` anime (0 where none applies),
        a block of anime at a time so a working block holds at most ``SCORE_BLOCK`` floats."""
        out = np.zeros(len(queried), dtype=np.float64)
        lo, hi = self.indptr_[u], self.indptr_[u + 1]
        if hi == lo:
            return out
        rated, resid = self.rated_[lo:hi], self.resid_[lo:hi]
        step = max(1, SCORE_BLOCK // len(rated))
        for a in range(0, len(queried), step):
            out[a:a + step] = _weighted_mean(_rows(self.sim_, rated, queried[a:a + step]), resid,
                                             int(self.k), int(self.min_k))
        return out


def _rows(sim: np.ndarray, rated: np.ndarray, queried: np.ndarray) -> np.ndarray:
    """``sim[rated][:, queried]`` (the matrix is symmetric: row j, column q is s_qj): whole row
    slices when the queried items are a run of consecutive anime (all of them), else one flat
    ``take`` (2x faster than ``np.ix_`` indexing, measured on the test pairs of mal2016-5k)."""
    if len(queried) > 1 and queried[-1] - queried[0] == len(queried) - 1 and np.all(np.diff(queried) == 1):
        return sim[rated, queried[0]:queried[-1] + 1]
    return sim.reshape(-1).take(rated[:, None] * sim.shape[1] + queried[None, :])


def _weighted_mean(sims: np.ndarray, resid: np.ndarray, k: int, min_k: int) -> np.ndarray:
    """Per column of ``sims`` (rated item x queried item, negatives already 0): the similarity-
    weighted mean residual over its ``k`` most similar positive neighbours; 0 with fewer than
    ``min_k`` of them (the prediction is then the baseline alone)."""
    total, weight, count = top_k_sums(sims, resid, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((weight > 0) & (count >= min_k), total / weight, 0.0)


def top_k_sums(sims: np.ndarray, resid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``sims`` (float32 ``[rated item, queried item]``, no negative entry), over its
    ``k`` largest positive entries: ``(sum s * resid, sum s, how many)``, float64, float64, int64.
    A tie for the k-th largest keeps exactly k of the tied (which ones is arbitrary). Shared with
    ``itemknn``, whose neighbour terms are the same sums.

    Speed notes, measured on mal2016-5k: einsum rather than ``@`` (a BLAS call per user wakes
    BLAS's threads every time, up to 50x slower on a loaded machine; einsum loops in this thread);
    positives counted as bytes (``np.count_nonzero`` along an axis is 3x slower); only a column
    with more than ``k`` positives needs its k-th largest (:func:`_keep_top_k`), on the transpose,
    all of it at once when most columns need one (one copy instead of a gather).
    """
    m, q = sims.shape
    count = np.add.reduce((sims > 0).view(np.uint8), axis=0, dtype=np.int64)
    over = np.flatnonzero(count > k) if m > k else np.zeros(0, dtype=np.int64)
    if 2 * len(over) > q:
        top = _keep_top_k(np.ascontiguousarray(sims.T), count, k)
        total, weight = np.einsum("qj,j->q", top, resid), top.sum(axis=1)
    else:
        total, weight = np.einsum("j,jq->q", resid, sims), sims.sum(axis=0)
        if len(over):
            top = _keep_top_k(sims.T[over], count[over], k)
            total[over], weight[over] = np.einsum("qj,j->q", top, resid), top.sum(axis=1)
    return total.astype(np.float64), weight.astype(np.float64), np.minimum(count, k)


def _keep_top_k(top: np.ndarray, count: np.ndarray, k: int) -> np.ndarray:
    """``top`` (float32 ``[queried, rated]``, more than k columns, no negative entry; ``count``: each
    row's positives) with every entry of a row holding more than ``k`` positives zeroed outside
    its k largest, in place; rows with at most k are left whole.

    The k-th largest from integer levels (the entries scaled to 0-65535, or 0-2^24 in 32 bits, and
    truncated: an order-keeping map) by :func:`_largest_levels`. Where the entry below the k-th
    shares its level, the level cannot tell them apart: :func:`_exact_top_k` on those rows (~2% on
    mal2016-5k with 16 bits), as they were given. So the entries kept are the same for either
    ``LEVEL_DTYPE``, ties for the k-th included.
    """
    m = top.shape[1]
    highest = 65535.0 if LEVEL_DTYPE == np.uint16 else float(1 << 24)
    scale = np.float32(highest / max(float(top.max(initial=0.0)), 1e-30))
    run = SORT_RUN if LEVEL_DTYPE == np.uint16 else m
    levels = np.zeros((top.shape[0], -(-m // run) * run if m > run else m), dtype=LEVEL_DTYPE)
    np.multiply(top, scale, out=levels[:, :m], casting="unsafe")
    below, level = _largest_levels(levels, k + 1, run)[:, :2].T  # the (k+1)-th and k-th largest
    whole = count <= k
    level[whole] = 0
    fuzzy = np.flatnonzero((below == level) & ~whole)
    exact = _exact_top_k(top[fuzzy], k)  # a copy of the rows, before the levels zero any of them
    top *= levels[:, :m] >= level[:, None]
    top[fuzzy] = exact
    return top


def _largest_levels(levels: np.ndarray, keep: int, run: int) -> np.ndarray:
    """The ``keep`` largest entries of each row of ``levels`` (unsigned, at least ``keep``
    columns), ascending. Rows longer than ``run`` are sorted in pieces of ``run`` whose ``keep``
    largest go on to the next round (zeros pad the last piece: they never outrank a real entry).

    Measured with AVX-512: numpy sorts uint16 rows of up to 512 entries at ~1 ns an entry
    (in-register networks), longer rows at 4-6 (and float32 rows at 2-8; its introselect is
    slower still on rows that are mostly zeros, as these are).
    """
    rows = levels.shape[0]
    while levels.shape[1] > run and 2 * keep <= run:
        pieces = -(-levels.shape[1] // run)
        if levels.shape[1] < pieces * run:
            levels = np.concatenate([levels, np.zeros((rows, pieces * run - levels.shape[1]), levels.dtype)], 1)
        levels = np.sort(levels.reshape(rows, pieces, run), axis=2)[:, :, run - keep:].reshape(rows, -1)
    return np.sort(levels, axis=1)[:, levels.shape[1] - keep:]


def _exact_top_k(top: np.ndarray, k: int) -> np.ndarray:
    """Each row of ``top`` (more than k positives, no negative entry) zeroed outside its ``k``
    largest, in place: the k-th largest by sorting the int32 view (a non-negative float32 orders
    as its bits do); where the entry below it is equal, exactly k of the tied by argpartition."""
    m = top.shape[1]
    keys = np.sort(top.view(np.int32), axis=1)
    threshold = keys[:, m - k]
    top *= top.view(np.int32) >= threshold[:, None]
    tied = np.flatnonzero(keys[:, m - k - 1] == threshold)
    if len(tied):
        keep = np.argpartition(top[tied], m - k, axis=1)[:, m - k:]
        kept = np.zeros((len(tied), m), dtype=top.dtype)
        np.put_along_axis(kept, keep, np.take_along_axis(top[tied], keep, axis=1), axis=1)
        top[tied] = kept
    return top


@hookimpl
def register_models(register):
    register(ItemKNNBaseline)
