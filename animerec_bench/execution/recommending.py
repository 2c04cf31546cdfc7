"""From a user's list to recommendations: the protocol's label rules, fold-in, a full ranking over
every anime not on the list, and what to show for each pick (title, link, type, genres, why).

``recommend`` (the command and :func:`animerec_bench.api.recommend`) is this over a model from
the fitted-model store (:mod:`animerec_bench.execution.fitting`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animerec_bench.data.mal_list import AnimeList
from animerec_bench.errors import UserError
from animerec_bench.model import History

URL = "https://myanimelist.net/anime/{}"
#: ``--new-only``: the season-v1 rule: of the anime with at least this many example pairs, the
#: newest by MyAnimeList id (ids are given as entries are created, so id order is season order) ...
NEW_MIN_EXAMPLES = 5
#: ... this share of them (season-v1's test cut: the newer half of its 10% held-out anime).
NEW_FRACTION = 0.05


@dataclass(frozen=True)
class ListMatch:
    """A list read against a model's vocabulary."""

    history: History
    #: For each history entry, its position in the list (for titles and the why column).
    list_position: np.ndarray
    #: MyAnimeList ids on the list that the data set does not know (not fatal: counted, reported).
    unknown_ids: np.ndarray
    liked: int
    disliked: int
    unknown_taste: int


def match_list(anime_list: AnimeList, anime_ids: np.ndarray, protocol) -> ListMatch:
    """The list as a :class:`History` by the protocol's rules (as ``ProtocolV1`` labels the data):
    rating = the score (0 unscored); completed with a score above ``positive_above`` is liked (1);
    dropped (any score), or completed with a score of 1 to ``positive_above``, is disliked (0);
    anything else (watching, on hold, plan to watch, completed but unscored) is known but of
    unknown taste (-1). Every entry, of any status, is kept off the ranking."""
    pos = np.searchsorted(anime_ids, anime_list.anime_id)
    pos_clipped = np.minimum(pos, max(len(anime_ids) - 1, 0))
    known = (pos < len(anime_ids)) & (anime_ids[pos_clipped] == anime_list.anime_id) if len(anime_ids) \
        else np.zeros(len(anime_list), bool)
    score = anime_list.score[known].astype(np.float32)
    status = anime_list.status[known]
    label = np.full(len(score), -1, dtype=np.int8)
    completed = status == protocol.completed_status
    label[completed & (score > 0)] = score[completed & (score > 0)] > protocol.positive_above
    label[status == protocol.dropped_status] = 0
    history = History(pos_clipped[known].astype(np.int32), score, label, len(anime_ids))
    return ListMatch(history, np.flatnonzero(known), anime_list.anime_id[~known],
                     liked=int((label == 1).sum()), disliked=int((label == 0).sum()),
                     unknown_taste=int((label == -1).sum()))


def newest_anime(anime_ids: np.ndarray, anime_examples: np.ndarray) -> np.ndarray:
    """Indices of the newest anime by the season-v1 rule (:data:`NEW_FRACTION` of those with
    >= :data:`NEW_MIN_EXAMPLES` example pairs, by MyAnimeList id)."""
    qualifying = np.flatnonzero(anime_examples >= NEW_MIN_EXAMPLES)
    n = max(1, int(round(len(qualifying) * NEW_FRACTION)))
    return qualifying[np.argsort(anime_ids[qualifying], kind="stable")[len(qualifying) - n:]]


@dataclass
class AnimeInfo:
    """What is shown of each anime: title, type, episodes, genres (from the data set's metadata
    file, else only its titles)."""

    title: dict[int, str] = field(default_factory=dict)
    type: dict[int, str] = field(default_factory=dict)
    episodes: dict[int, int] = field(default_factory=dict)
    genres: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, dataset) -> "AnimeInfo":
        path = getattr(dataset, "anime_path", None)
        if path is None or not Path(path).is_file():
            return cls(title=dataset.titles())
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["anime_id", "name", "type", "episodes", "genres"]).to_pydict()
        ids = table["anime_id"]
        return cls(title={a: t for a, t in zip(ids, table["name"]) if t},
                   type={a: t for a, t in zip(ids, table["type"]) if t},
                   episodes={a: e for a, e in zip(ids, table["episodes"]) if e is not None},
                   genres={a: ", ".join(g) for a, g in zip(ids, table["genres"]) if g})


@dataclass
class Recommendations:
    """The top ``k`` picks (one dict a row, best first), what the list held, and the time each step took."""

    rows: list[dict]
    entries: int
    match: ListMatch
    seconds: dict[str, float]
    candidates: int
    #: True when every candidate scored the same: the model learnt nothing from the list (e.g.
    #: EASE and a list with no liked anime it knows), so the order says nothing.
    flat: bool = False


def recommend(model, anime_ids: np.ndarray, anime_examples: np.ndarray, anime_list: AnimeList, protocol, *,
              k: int = 20, new_only: bool = False, info: AnimeInfo | None = None) -> Recommendations:
    """The ``k`` best anime for the list's owner that are not on the list (in any status)."""
    if not callable(getattr(model, "fold_in", None)):
        raise UserError(f"model {getattr(model, 'name', type(model).__name__)!r} has no fold_in")
    info = info or AnimeInfo()
    seconds = {}
    t0 = time.perf_counter()
    match = match_list(anime_list, anime_ids, protocol)
    folded = model.fold_in(match.history)
    seconds["fold_in"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = np.asarray(model.score(folded), dtype=np.float64)[0]
    allowed = np.zeros(len(anime_ids), bool)
    if new_only:
        allowed[newest_anime(anime_ids, anime_examples)] = True
    else:
        allowed[:] = True
    allowed[match.history.item] = False  # nothing on the list comes back, whatever its status
    candidates = np.flatnonzero(allowed)
    top = candidates[_top(scores[candidates], k)]
    seconds["rank"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    why = _why(model, match, top, anime_list, info)
    rows = []
    for rank, (item, reason) in enumerate(zip(top, why), start=1):
        anime = int(anime_ids[item])
        rows.append({"rank": rank, "anime_id": anime, "title": info.title.get(anime, f"anime {anime}"),
                     "url": URL.format(anime), "type": info.type.get(anime), "episodes": info.episodes.get(anime),
                     "genres": info.genres.get(anime), "score": float(scores[item]), "why": reason})
    seconds["explain"] = time.perf_counter() - t0
    flat = bool(len(candidates)) and float(np.ptp(scores[candidates])) == 0.0
    return Recommendations(rows, len(anime_list), match, seconds, len(candidates), flat)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first (ties: lower position first)."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


def _why(model, match: ListMatch, top: np.ndarray, anime_list: AnimeList, info: AnimeInfo) -> list[str | None]:
    """One line per pick where the model can say it (``explain``): the liked anime that added most."""
    explain = getattr(model, "explain", None)
    if not callable(explain) or len(top) == 0:
        return [None] * len(top)
    where = np.asarray(explain(match.history, top))
    out: list[str | None] = []
    for w in where:
        if w < 0:
            out.append(None)
            continue
        at = int(match.list_position[w])
        anime = int(anime_list.anime_id[at])
        out.append(f"you liked {info.title.get(anime) or anime_list.title[at] or f'anime {anime}'}")
    return out
