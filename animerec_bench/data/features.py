"""Anime features for models (issue 23): genres, type, episodes and name tokens, never a leak.

The framework builds them from a data set's metadata and hands them to models that declare
``item_features = True`` (:mod:`animerec_bench.model`). Each row is one anime of a split's
vocabulary, in its order. The encoders (which genres, types and name tokens are columns, and
each token's idf) are fitted on the first ``fit_rows`` anime only: the anime a model may know
while it trains. On a cold-start protocol the test anime come after them, so nothing about the
test anime shapes the columns; their rows reach a model only when it scores.

Columns that are measured after a show airs (MAL's mean score, members, popularity,
favourites, status counts) are :data:`LEAK_COLUMNS`: they are never read, whatever the file holds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: The metadata columns every metadata file has (every column not named here is ignored).
BASE_COLUMNS = ("anime_id", "name", "genres", "type", "episodes")
#: Read when the file has them (the 2020 ``anime.csv``'s studios and source material; the 2016 file
#: has neither, and then their blocks have no columns).
OPTIONAL_COLUMNS = ("studios", "source")
#: The only metadata columns read for features.
FEATURE_COLUMNS = BASE_COLUMNS + OPTIONAL_COLUMNS
#: Measured after airing: they tell how a show was received, so they would leak the answer.
LEAK_COLUMNS = frozenset({"rating", "members", "score", "scored_by", "ranked", "rank", "popularity",
                          "favorites", "watching", "completed", "on-hold", "dropped", "plan to watch",
                          *(f"score-{i}" for i in range(1, 11))})
#: Episode-count buckets (lower bound, label); a missing count is ``unknown``.
EPISODE_BUCKETS = ((1, "1"), (2, "2-6"), (7, "7-13"), (14, "14-26"), (27, "27-52"), (53, "53+"))
#: A name token must occur in at least this many fitted anime to become a column.
MIN_TOKEN_DF = 2
_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """One sparse row of features per anime of a split's vocabulary.

    ``matrix`` (float32 CSR, ``[len(anime_ids), len(names)]``): genre, type and episode columns
    are 0/1; the name columns are tf-idf, each row's name part of unit length. ``blocks`` maps
    ``genre``, ``type``, ``episodes``, ``name``, ``studio`` and ``source`` to their column ranges, so
    a model can weigh them (the last two are empty where the metadata has no such columns).
    """

    anime_ids: np.ndarray  # int64, the split's vocabulary order
    matrix: sp.csr_matrix
    names: tuple[str, ...]  # e.g. "genre=Action", "type=TV", "episodes=14-26", "name=gintama"
    blocks: dict[str, tuple[int, int]]

    @property
    def n_items(self) -> int:
        return len(self.anime_ids)

    def head(self, n: int) -> "ItemFeatures":
        """The first ``n`` anime's rows (what a model sees while it fits)."""
        return ItemFeatures(self.anime_ids[:n], self.matrix[:n], self.names, self.blocks)

    def then(self, other: "ItemFeatures") -> "ItemFeatures":
        """These rows followed by ``other``'s (same columns): e.g. a split's vocabulary and then
        ``season-v1``'s hard candidates beyond it."""
        if other.names != self.names:
            raise ValueError("cannot stack anime features with different columns")
        return ItemFeatures(np.concatenate([self.anime_ids, other.anime_ids]),
                            sp.vstack([self.matrix, other.matrix], format="csr", dtype=np.float32),
                            self.names, self.blocks)

    def block(self, kind: str) -> sp.csr_matrix:
        """The columns of one kind (``genre``, ``type``, ``episodes``, ``name``, ``studio``, ``source``)."""
        start, stop = self.blocks[kind]
        return self.matrix[:, start:stop]

    def fingerprint(self) -> str:
        """sha256 over the ids, the column names and the matrix's content."""
        m = self.matrix.tocsr()
        m.sort_indices()
        h = hashlib.sha256(b"animerec-bench/item-features/v1")
        h.update("\n".join(self.names).encode())
        for arr, dt in ((self.anime_ids, "<i8"), (m.indptr, "<i8"), (m.indices, "<i4"), (m.data, "<f4")):
            h.update(np.ascontiguousarray(arr, dt).tobytes())
        return h.hexdigest()

    def arrays(self, prefix: str = "features_") -> dict[str, np.ndarray]:
        """Plain arrays for an ``.npz`` (see :meth:`from_arrays`)."""
        m = self.matrix.tocsr()
        spans = np.array([self.blocks[k] for k in _KINDS], dtype=np.int64)
        return {f"{prefix}anime_ids": self.anime_ids, f"{prefix}indptr": m.indptr, f"{prefix}indices": m.indices,
                f"{prefix}data": m.data, f"{prefix}names": np.array(self.names, dtype=np.str_),
                f"{prefix}blocks": spans}

    @classmethod
    def from_arrays(cls, z, prefix: str = "features_") -> "ItemFeatures":
        names = tuple(str(n) for n in z[f"{prefix}names"])
        ids = np.asarray(z[f"{prefix}anime_ids"], np.int64)
        matrix = sp.csr_matrix((z[f"{prefix}data"], z[f"{prefix}indices"], z[f"{prefix}indptr"]),
                               shape=(len(ids), len(names)), dtype=np.float32)
        blocks = {k: (int(a), int(b)) for k, (a, b) in zip(_KINDS, z[f"{prefix}blocks"])}
        for kind in _KINDS[len(blocks):]:  # a file from before the studio and source blocks
            blocks[kind] = (len(names), len(names))
        return cls(ids, matrix, names, blocks)

    def frame(self):
        """The features as a long table (anime_id, feature, value): what ``data export-split``
        writes, one row per non-zero value."""
        import pandas as pd

        coo = self.matrix.tocoo()
        order = np.lexsort((coo.col, coo.row))
        return pd.DataFrame({"anime_id": self.anime_ids[coo.row[order]],
                             "feature": np.asarray(self.names, dtype=object)[coo.col[order]],
                             "value": coo.data[order].astype(np.float64)})


_KINDS = ("genre", "type", "episodes", "name", "studio", "source")


def build(metadata, anime_ids: np.ndarray, fit_rows: int) -> ItemFeatures:
    """Features of ``anime_ids`` (a split's vocabulary) from ``metadata`` (an Arrow table with
    :data:`BASE_COLUMNS`, and :data:`OPTIONAL_COLUMNS` where it has them; other columns, leaks
    included, are never read). The encoders are fitted on ``anime_ids[:fit_rows]``. An anime
    missing from the metadata gets only ``type=unknown`` and ``episodes=unknown``. Studios are
    columns when >= MIN_TOKEN_DF fitted anime share them; sources when any fitted anime has them."""
    meta = _rows_for(metadata, np.asarray(anime_ids, np.int64))
    fit = slice(0, int(fit_rows))
    genres = _one_hot_lists(meta["genres"], fit, "genre")
    types = _one_hot_lists([[t or "unknown"] for t in meta["type"]], fit, "type", always=("unknown",))
    episodes = _one_hot_lists([[_episode_bucket(e)] for e in meta["episodes"]], fit, "episodes",
                              fixed=[label for _, label in EPISODE_BUCKETS] + ["unknown"])
    name = _name_tfidf(meta["name"], fit)
    studios = _one_hot_lists(meta["studios"], fit, "studio", min_df=MIN_TOKEN_DF)
    sources = _one_hot_lists([[s] if s else [] for s in meta["source"]], fit, "source")
    parts = (genres, types, episodes, name, studios, sources)
    blocks, names, start = {}, [], 0
    for kind, (_, cols) in zip(_KINDS, parts):
        blocks[kind] = (start, start + len(cols))
        names += cols
        start += len(cols)
    matrix = sp.hstack([m for m, _ in parts], format="csr", dtype=np.float32)
    return ItemFeatures(np.asarray(anime_ids, np.int64), matrix, tuple(names), blocks)


def _rows_for(metadata, anime_ids: np.ndarray) -> dict[str, list]:
    """The feature columns of each of ``anime_ids`` (None / empty where metadata has no row)."""
    n = metadata.num_rows
    cols = {c: metadata.column(c).to_pylist() if c in metadata.column_names else [None] * n for c in FEATURE_COLUMNS}
    at = {int(a): i for i, a in enumerate(cols["anime_id"])}
    rows = [at.get(int(a)) for a in anime_ids]
    return {c: [None if i is None else cols[c][i] for i in rows] for c in FEATURE_COLUMNS[1:]} | \
        {c: [[] if i is None else list(cols[c][i] or []) for i in rows] for c in ("genres", "studios")}


def _one_hot_lists(values: list[list[str]], fit: slice, kind: str, *, always: tuple[str, ...] = (),
                   fixed: list[str] | None = None, min_df: int = 1) -> tuple[sp.csr_matrix, list[str]]:
    """Multi-hot of string lists; columns: ``fixed``, else the values seen in at least ``min_df``
    of the ``fit`` rows (plus ``always``), sorted. Values outside the columns are dropped."""
    df: dict[str, int] = {}
    for vs in values[fit]:
        for v in set(vs):
            df[v] = df.get(v, 0) + 1
    labels = fixed if fixed is not None else sorted({v for v, d in df.items() if d >= min_df} | set(always))
    col = {v: j for j, v in enumerate(labels)}
    rows, cols = [], []
    for i, vs in enumerate(values):
        for v in vs:
            if v in col:
                rows.append(i)
                cols.append(col[v])
            elif kind == "type" and "unknown" in col:  # a type no fitted anime has
                rows.append(i)
                cols.append(col["unknown"])
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(values), len(labels)))
    return m, [f"{kind}={v}" for v in labels]


def _episode_bucket(episodes) -> str:
    if episodes is None or episodes < 1:
        return "unknown"
    return next(label for low, label in reversed(EPISODE_BUCKETS) if episodes >= low)


def tokens(name: str | None) -> list[str]:
    """A title's lower-case word tokens (letters and digits; ``Gintama°`` -> ``gintama``)."""
    return _TOKEN.findall((name or "").lower())


def _name_tfidf(names: list[str | None], fit: slice) -> tuple[sp.csr_matrix, list[str]]:
    """tf-idf of title tokens: columns are the tokens in >= MIN_TOKEN_DF fitted titles; idf
    ``ln((1 + n) / (1 + df)) + 1`` over the n fitted titles; each row scaled to unit length."""
    toks = [tokens(n) for n in names]
    fitted = toks[fit]
    df: dict[str, int] = {}
    for ts in fitted:
        for t in set(ts):
            df[t] = df.get(t, 0) + 1
    vocab = sorted(t for t, d in df.items() if d >= MIN_TOKEN_DF)
    col = {t: j for j, t in enumerate(vocab)}
    idf = np.log((1 + len(fitted)) / (1 + np.array([df[t] for t in vocab], np.float64))) + 1
    rows, cols = [], []
    for i, ts in enumerate(toks):
        for t in ts:
            if t in col:
                rows.append(i)
                cols.append(col[t])
    m = sp.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(len(toks), len(vocab)))
    m.sum_duplicates()  # term counts
    m = m @ sp.diags(idf)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    m = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ m
    return sp.csr_matrix(m, dtype=np.float32), [f"name={t}" for t in vocab]


def for_split(split, dataset) -> ItemFeatures:
    """The features models get on ``split``: the ones it carries (the cold-start protocols'), else
    (v1) built from ``dataset``'s metadata over its vocabulary, every anime known while fitting."""
    if split.features is not None:
        return split.features
    return build(dataset.anime_metadata(list(FEATURE_COLUMNS)), split.anime_ids, split.n_fit_items)


def hard_candidates(split, dataset) -> ItemFeatures | None:
    """The features ``set_item_features`` gets for ``season-v1``'s hard-candidate ranking: the
    split's vocabulary, then the catalogue's other anime from the test cut on (None: the split has
    no hard candidates)."""
    if split.hard is None:
        return None
    return for_split(split, dataset).then(split.hard)
