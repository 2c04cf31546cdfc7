"""Protocols: named, versioned rules that turn a data set into task examples and one split.

One split of *pairs* (user, anime) is shared by every task, so a multi-task model never
trains on a pair whose label is tested in another task. Id vocabularies come from train only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from animerec_bench.dataset import Dataset
from animerec_bench.errors import UserError
from animerec_bench.model import Interactions
from animerec_bench.support import paths
from animerec_bench.support.atomic import atomic_path
from animerec_bench.tasks import POINTWISE

if TYPE_CHECKING:
    import pyarrow as pa

PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class ProtocolV1:
    """Protocol v1 (the README documents each rule and how it differs from the study).

    - rating example: a pair with rating 1-10 (any status);
    - interaction example: status completed (2) or dropped (4); label 1 = completed and
      rating > 5, label 0 = dropped (any rating) or completed with rating 1-5; completed but
      unscored pairs are left out;
    - users with fewer than ``min_user_examples`` example pairs are removed;
    - one seeded pair-level shuffle into train / valid / test by ``fractions``.
    """

    name: str = "v1"
    #: The split cache's format (a new one rebuilds the cached splits of this protocol only).
    cache_format: ClassVar[int] = 2
    #: Whether the vocabulary holds anime no train pair has: only models that can score unseen
    #: anime from their features (``item_features``) take part (class attribute, not a parameter).
    cold_items: ClassVar[bool] = False
    #: Whether a job scored on test fits on train and validation together (``season-v2``: last
    #: season's likes are known when this season is ranked); tuning trials fit on train alone.
    refit: ClassVar[bool] = False
    #: Another protocol whose models take part in this one (a model's ``protocols`` naming that
    #: one names this one too); None: only its own name.
    models_of: ClassVar[str | None] = None
    min_user_examples: int = 5
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    positive_above: int = 5
    interaction_statuses: tuple[int, ...] = (2, 4)
    dropped_status: int = 4
    completed_status: int = 2

    def params(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        """The rules in two lines, for leaderboards."""
        a, b, c = (round(f * 100) for f in self.fractions)
        return (f"Protocol {self.name}: rating = pairs rated 1-10; interaction = completed (1 if rating > "
                f"{self.positive_above}, 0 if 1-{self.positive_above}) or dropped (0); unscored completed left out.\n"
                f"Users with < {self.min_user_examples} example pairs removed; one seeded pair-level split "
                f"{a}/{b}/{c} shared by all tasks; vocabularies from train, cold val/test pairs not scored.")

    def question(self) -> str | None:
        """The question the protocol's board answers, in a sentence for its top (None: v1's
        warm question, which the README asks)."""
        return None

    def examples(self, table: pa.Table) -> dict[str, np.ndarray]:
        """Example pairs of either task, after the user filter: user_id, anime_id, rating, label."""
        return self._examples_and_unknown(table)[0]

    def _examples_and_unknown(self, table: pa.Table) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """:meth:`examples`, and the kept users' pairs that are examples of neither task.

        The latter ("unknown relevance": unscored watching, on-hold, plan-to-watch or completed
        entries) are no task's example, but the ranking task must not offer them as candidates.
        """
        user = table.column("user_id").to_numpy()
        anime = table.column("anime_id").to_numpy()
        rating = table.column("rating").to_numpy()
        status = table.column("status").to_numpy()
        del table  # when the caller keeps none (_make_split), the table is freed before the masks exist
        rated = rating > 0
        label = np.full(len(rating), -1, dtype=np.int8)
        completed = status == self.completed_status
        dropped = status == self.dropped_status
        label[completed & rated] = (rating[completed & rated] > self.positive_above)
        label[dropped] = 0
        keep = rated | (label >= 0)
        unknown_user, unknown_anime = user[~keep], anime[~keep]
        user, anime, rating, label = user[keep], anime[keep], rating[keep], label[keep]
        keep = _has_at_least(user, self.min_user_examples)
        kept_users = np.unique(user[keep])
        _, kept = _lookup(kept_users, unknown_user)
        return ({"user_id": user[keep], "anime_id": anime[keep],
                 "rating": rating[keep].astype(np.float32), "label": label[keep]},
                {"user_id": unknown_user[kept], "anime_id": unknown_anime[kept]})

    def split(self, dataset: Dataset, seed: int = 0, *, cache: bool = True) -> "Split":
        """The split of ``dataset`` for ``seed``: read from the cache, else made and cached.

        A cached file must be the split asked for (seed, data set name and fingerprint, protocol
        name and parameters), not only carry its name: a damaged or mismatched file is rebuilt,
        never trusted. Making a split reads ``dataset.table()``, which verifies the data's content
        against its recorded fingerprint; loading a cached split reads no data file.
        """
        path = self.cache_path(dataset, seed)
        if cache and path.exists():
            expected = {"seed": seed, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
                        "protocol": self.name, "protocol_params": self.params()}
            try:
                return Split.load(path, expected=expected)
            except Exception:  # damaged, or another split under this name: rebuilt, never trusted
                path.unlink(missing_ok=True)
        result = self._make_split(dataset, seed)
        if cache:
            try:
                result.save(path)
            except OSError as exc:  # full, size-limited or read-only data home: jobs read this file
                raise UserError(f"{path}: cannot write the split cache ({exc.strerror or exc}); the data home "
                                f"(ANIMEREC_BENCH_HOME) needs room and write access") from None
        return result

    def cache_path(self, dataset: Dataset, seed: int) -> Path:
        """Where the split of ``dataset`` for ``seed`` is cached (keyed by content, not by name)."""
        key = _cache_key(dataset, self, seed)
        return paths.splits_dir() / f"{dataset.name}--{self.name}--seed{seed}--{key}.npz"

    def _make_split(self, dataset: Dataset, seed: int) -> "Split":
        ex, unknown = self._examples_and_unknown(dataset.table())
        n = len(ex["user_id"])
        if n == 0:
            raise UserError(f"data set {dataset.name!r}: no example pairs left after protocol {self.name}'s "
                            f"filters (users need >= {self.min_user_examples} rated or labelled pairs)")
        order = np.random.default_rng(seed).permutation(n)
        n_train = int(round(n * self.fractions[0]))
        n_valid = int(round(n * self.fractions[1]))
        bounds = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
                  "test": order[n_train + n_valid:]}
        # Keep each part in data order (sorted index): better memory locality, same content.
        bounds = {k: np.sort(v) for k, v in bounds.items()}
        del order
        train_idx = bounds["train"]
        user_ids = np.unique(ex["user_id"][train_idx])
        anime_ids = np.unique(ex["anime_id"][train_idx])
        parts: dict[str, Interactions] = {}
        stats: dict[str, dict] = {}
        del train_idx
        for part in PARTS:
            idx = bounds.pop(part)  # each part's index goes once it is used
            u, u_ok = _lookup(user_ids, ex["user_id"][idx])
            a, a_ok = _lookup(anime_ids, ex["anime_id"][idx])
            warm = u_ok & a_ok
            rating, label = ex["rating"][idx], ex["label"][idx]
            stats[part] = {
                "pairs": int(len(idx)),
                "cold_pairs": int((~warm).sum()),
                **{f"{t}_examples": int(task.mask(rating, label)[warm].sum()) for t, task in POINTWISE.items()},
                **{f"{t}_cold": int(task.mask(rating, label)[~warm].sum()) for t, task in POINTWISE.items()},
            }
            parts[part] = Interactions(u[warm].astype(np.int32, copy=False), a[warm].astype(np.int32, copy=False),
                                       rating[warm], label[warm], len(user_ids), len(anime_ids))
            del idx, u, u_ok, a, a_ok, warm, rating, label
        u, u_ok = _lookup(user_ids, unknown["user_id"])
        a, a_ok = _lookup(anime_ids, unknown["anime_id"])
        warm = u_ok & a_ok
        stats["other"] = {"pairs": int(len(warm)), "cold_pairs": int((~warm).sum())}
        other = Interactions(u[warm].astype(np.int32, copy=False), a[warm].astype(np.int32, copy=False),
                             np.zeros(int(warm.sum()), np.float32), np.full(int(warm.sum()), -1, np.int8),
                             len(user_ids), len(anime_ids))
        return Split(dataset=dataset.name, dataset_fingerprint=dataset.fingerprint, protocol=self.name,
                     protocol_params=self.params(), seed=seed, train=parts["train"],
                     valid=parts["valid"], test=parts["test"], user_ids=user_ids.astype(np.int64),
                     anime_ids=anime_ids.astype(np.int64), stats=stats, other=other)


@dataclass(frozen=True)
class ColdItemsProtocol(ProtocolV1):
    """Anime held out whole (issue 23): can a model recommend shows nobody has rated yet?

    Examples and the user filter are v1's. Qualifying anime have >= ``min_anime_examples``
    example pairs; ``cold_fraction`` of them are cold, every pair on them leaves train: the
    first half of the cold anime is validation, the second half test.

    - ``holdout="season"`` (``season-v1``, deterministic): the cold anime are the newest by
      MyAnimeList id (ids are given when an entry is created, so id order tracks season order);
      validation is the older half (last season), test the newer. Non-qualifying anime above
      the cut are dropped everywhere: they are new too and may not leak into train.
    - ``holdout="random"`` (``cold-items-v1``): a seeded random set of qualifying anime.

    The vocabulary lists the train anime, then the validation anime, then the test anime
    (``stats["items"]`` holds the three index ranges). Models get anime features: those of
    train and validation anime while they fit, the test anime's only to score. Rankings are
    over the part's own anime (candidates: the part's anime minus the user's other pairs).
    """

    name: str = "season-v1"
    holdout: str = "season"
    min_anime_examples: int = 5
    cold_fraction: float = 0.1
    cold_items: ClassVar[bool] = True
    cache_format: ClassVar[int] = 3  # 3: season-v1's hard candidates and order; the metadata in the key

    def params(self) -> dict:
        out = super().params()
        del out["fractions"]  # v1's pair fractions play no part here
        return out

    def summary(self) -> str:
        held = ("the newest by MyAnimeList id (test: the newer half; validation: the season before)"
                if self.holdout == "season" else "a seeded random set")
        return (f"Protocol {self.name}: v1's examples and user filter; of the anime with >= "
                f"{self.min_anime_examples} example pairs, {round(self.cold_fraction * 100)}% are held out "
                f"whole: {held}.\nModels see those anime only through their features (genres, type, "
                f"episodes, title words; never MAL's score or members); rankings are over the held-out "
                f"anime only.")

    def question(self) -> str:
        if self.holdout == "season":
            return ("Which of this season's new shows, which nobody has rated yet, will a user like? The newest "
                    "anime (by MyAnimeList id, which follows season order) are held out whole; models know them only "
                    "by their genres, type, episode count and title words. Only models that can score unseen "
                    "anime take part; for contrast, warm models that saw other users' ratings of the same shows "
                    "reach about twice these scores.")
        return ("Can a model recommend anime nobody in training has rated? A seeded random 10% of anime is held "
                "out whole (known only by genres, type, episodes and title words). Easier than season-v1: a "
                "held-out anime's franchise relatives, earlier and later, sit in train. Read it over seeds: "
                "non-personalised models swing a lot from one seed to the next.")

    def _make_split(self, dataset: Dataset, seed: int) -> "Split":
        from animerec_bench.data import features as features_mod

        ex, unknown = self._examples_and_unknown(dataset.table())
        clock = _Clock.of(dataset) if self.holdout == "season" else None
        anime_parts = self._anime_parts(ex["anime_id"], seed, clock)
        train_users = np.unique(ex["user_id"][np.isin(ex["anime_id"], anime_parts["train"])])
        anime_ids = np.concatenate([anime_parts[p] for p in PARTS]).astype(np.int64)
        bounds = np.cumsum([0] + [len(anime_parts[p]) for p in PARTS])
        all_items = _index_in(anime_ids, ex["anime_id"])
        parts: dict[str, Interactions] = {}
        stats: dict[str, dict] = {}
        for i, part in enumerate(PARTS):
            in_part = (all_items >= bounds[i]) & (all_items < bounds[i + 1])
            u, u_ok = _lookup(train_users, ex["user_id"][in_part])
            rating, label = ex["rating"][in_part][u_ok], ex["label"][in_part][u_ok]
            stats[part] = {"pairs": int(in_part.sum()), "cold_pairs": int((~u_ok).sum()),
                           "anime": int(bounds[i + 1] - bounds[i]),
                           **{f"{t}_examples": int(task.mask(rating, label).sum()) for t, task in POINTWISE.items()}}
            parts[part] = Interactions(u[u_ok].astype(np.int32), all_items[in_part][u_ok].astype(np.int32), rating,
                                       label, len(train_users), len(anime_ids))
        stats["dropped"] = {"pairs": int((all_items < 0).sum()),
                            "anime": int(len(np.setdiff1d(np.unique(ex["anime_id"]), anime_ids)))}
        u, u_ok = _lookup(train_users, unknown["user_id"])
        a = _index_in(anime_ids, unknown["anime_id"])
        ok = u_ok & (a >= 0)
        other = Interactions(u[ok].astype(np.int32), a[ok].astype(np.int32), np.zeros(int(ok.sum()), np.float32),
                             np.full(int(ok.sum()), -1, np.int8), len(train_users), len(anime_ids))
        stats["other"] = {"pairs": int(len(ok)), "cold_pairs": int((~ok).sum())}
        metadata = dataset.anime_metadata(list(features_mod.FEATURE_COLUMNS))
        extra = clock.hard_extra(anime_parts["test"], anime_ids) if clock is not None else np.zeros(0, np.int64)
        everything = features_mod.build(metadata, np.concatenate([anime_ids, extra]), fit_rows=int(bounds[2]))
        features = everything.head(len(anime_ids))
        stats["items"] = {p: [int(bounds[i]), int(bounds[i + 1])] for i, p in enumerate(PARTS)}
        stats["features"] = {"fingerprint": features.fingerprint(), "columns": len(features.names),
                             "fit_rows": int(bounds[2])}
        hard = hard_other = None
        if clock is not None:
            stats["order"] = {"by": clock.by, "undated_anime": clock.undated(ex["anime_id"])}
            hard, hard_other = _hard_part(everything, len(anime_ids), train_users, ex, unknown)
            stats["hard"] = {"cut": int(anime_parts["test"][np.argmin(clock.keys(anime_parts["test"])[0])]),
                             "anime": int(bounds[3] - bounds[2]) + hard.n_items, "beyond_vocabulary": hard.n_items,
                             "excluded_pairs": len(hard_other), "fingerprint": everything.fingerprint()}
        return Split(dataset=dataset.name, dataset_fingerprint=dataset.fingerprint, protocol=self.name,
                     protocol_params=self.params(), seed=seed, user_ids=train_users.astype(np.int64),
                     anime_ids=anime_ids, stats=stats, other=other, features=features, hard=hard,
                     hard_other=hard_other, **parts)

    def _anime_parts(self, anime: np.ndarray, seed: int, clock: "_Clock | None" = None) -> dict[str, np.ndarray]:
        """The raw anime ids of train, validation and test, each ascending. ``clock`` (season):
        the anime's order in time; anime it cannot place (no air date) are dropped everywhere."""
        ids, counts = np.unique(anime, return_counts=True)
        if clock is not None:
            keys, dated = clock.keys(ids)
            ids, counts, keys = ids[dated], counts[dated], keys[dated]
            order = np.argsort(keys, kind="stable")
            ids, counts, keys = ids[order], counts[order], keys[order]  # oldest first
        qualifying = ids[counts >= self.min_anime_examples]
        n_cold = int(round(len(qualifying) * self.cold_fraction))
        if n_cold < 2:
            raise UserError(f"protocol {self.name}: only {len(qualifying)} anime have >= {self.min_anime_examples} "
                            f"example pairs; too few to hold out {self.cold_fraction:.0%} of them")
        if clock is not None:
            cold = qualifying[len(qualifying) - n_cold:]  # oldest first: the older half is validation
            train = np.sort(ids[keys < clock.keys(cold[:1])[0][0]])  # non-qualifying anime above the cut: dropped
        else:
            cold = np.random.default_rng(seed).permutation(qualifying)[:n_cold]
            train = np.setdiff1d(ids, cold)
        half = n_cold // 2
        return {"train": train, "valid": np.sort(cold[:half]), "test": np.sort(cold[half:])}


@dataclass(frozen=True)
class _Clock:
    """Where each anime sits in time, for ``season-v1``: its air date (days) when the data set's
    metadata has an ``aired`` column (the 2020 anime.csv), else its MyAnimeList id (given when an
    entry is created, so id order follows season order). Keys are int64 and order anime by time,
    ties by id; an anime the metadata gives no date has none (``undated``)."""

    by: str  # "air_date" or "mal_id"
    catalogue: np.ndarray  # every anime id of the metadata, ascending
    catalogue_keys: np.ndarray  # their keys
    catalogue_dated: np.ndarray  # bool: whether each has a key

    @classmethod
    def of(cls, dataset: Dataset) -> "_Clock":
        meta = dataset.anime_metadata(["anime_id", "aired"])
        ids = meta.column("anime_id").to_numpy().astype(np.int64)
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if "aired" not in meta.column_names:
            return cls("mal_id", ids, ids.copy(), np.ones(len(ids), bool))
        aired = meta.column("aired").cast("int32").to_numpy(zero_copy_only=False)  # days since 1970, NaN: none
        aired = np.asarray(aired, np.float64)[order]
        dated = ~np.isnan(aired)
        days = np.where(dated, aired, 0).astype(np.int64)
        return cls("air_date", ids, (days << 32) + ids, dated)

    def keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(key, whether it has one) of each of ``ids``."""
        ids = np.asarray(ids, np.int64)
        if self.by == "mal_id":
            return ids.copy(), np.ones(len(ids), bool)
        at = _index_in(self.catalogue, ids)
        found = at >= 0
        dated = found & self.catalogue_dated[np.maximum(at, 0)]
        return np.where(dated, self.catalogue_keys[np.maximum(at, 0)], 0), dated

    def undated(self, anime: np.ndarray) -> int:
        """How many distinct anime of ``anime`` have no place in time (dropped everywhere)."""
        return int((~self.keys(np.unique(anime))[1]).sum())

    def hard_extra(self, test: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
        """``season-v1``'s hard candidates beyond the vocabulary: every catalogue anime (one the
        metadata has, so one with features) at or after the first test anime in time that is not
        in the vocabulary, ascending by id. The test anime are hard candidates too."""
        cut = self.keys(test)[0].min()
        later = self.catalogue[self.catalogue_dated & (self.catalogue_keys >= cut)]
        return np.setdiff1d(later, vocabulary).astype(np.int64)


def _hard_part(everything, n_vocab: int, train_users: np.ndarray, ex: dict, unknown: dict):
    """(features of the hard candidates beyond the vocabulary, the kept users' pairs on them as
    :class:`Interactions` over the longer index): those pairs are no test pair (the protocol
    dropped their anime, or they are examples of neither task), so the hard ranking leaves them
    out of the user's candidates, as it does ``other``."""
    from animerec_bench.data.features import ItemFeatures

    rows = np.arange(n_vocab, everything.n_items)
    hard = ItemFeatures(everything.anime_ids[rows], everything.matrix[rows], everything.names, everything.blocks)
    users = np.concatenate([ex["user_id"], unknown["user_id"]])
    anime = np.concatenate([ex["anime_id"], unknown["anime_id"]])
    u, u_ok = _lookup(train_users, users)
    a = _index_in(hard.anime_ids, anime)
    ok = u_ok & (a >= 0)
    n = int(ok.sum())
    pairs = Interactions(u[ok].astype(np.int32), (a[ok] + n_vocab).astype(np.int32), np.zeros(n, np.float32),
                         np.full(n, -1, np.int8), len(train_users), everything.n_items)
    return hard, pairs


@dataclass(frozen=True)
class RollingSeasonProtocol(ColdItemsProtocol):
    """``season-v2``: ``season-v1``'s split, fitted as it would be used (rolling origin).

    On ``season-v1`` every job fits on train alone, so the test season is ranked without what
    users liked last season (the validation season), where many of its franchise predecessors
    sit: validation and test then disagree on what wins (issue 23). Here settings are still
    chosen on the validation season by fits on train (``tune``'s trials), and the job scored on
    test fits on train and validation together, with no validation part to stop on. The split,
    its counts and its hard candidates are ``season-v1``'s; its fingerprint differs by the name.
    """

    name: str = "season-v2"
    refit: ClassVar[bool] = True
    models_of: ClassVar[str | None] = "season-v1"

    def summary(self) -> str:
        return (super().summary() + "\nThe test ranking's model is fitted on train and validation together "
                "(last season's likes are known when this season is ranked); settings are chosen on validation.")

    def question(self) -> str:
        return ("Which of this season's new shows, which nobody has rated yet, will a user like, when the model "
                "also knows what users liked last season? season-v1's split (the newest anime, by MyAnimeList id, "
                "held out whole; known only by their genres, type, episode count and title words), but the model "
                "that ranks this season is fitted on train and last season's pairs together, as it would be in "
                "use (many of this season's sequels have their predecessors there); settings are still chosen on "
                "last season. Only models that can score unseen anime take part; for contrast, warm EASE, which "
                "saw other users' ratings of the same shows, reaches about 0.40 on these test pairs.")


PROTOCOLS = {p.name: p for p in (ProtocolV1(), ColdItemsProtocol(),
                                 ColdItemsProtocol(name="cold-items-v1", holdout="random"), RollingSeasonProtocol())}


def get_protocol(name: str) -> ProtocolV1:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UserError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


@dataclass
class Split:
    """Train / valid / test as :class:`Interactions`, the vocabularies, counts and a fingerprint.

    ``other``: the kept users' warm pairs that are examples of neither task (rating 0, label
    -1), which the ranking task excludes from candidates. Not in the fingerprint: they are a
    function of the data set and the protocol's parameters, which it already covers.
    """

    dataset: str
    dataset_fingerprint: str
    protocol: str
    protocol_params: dict
    seed: int
    train: Interactions
    valid: Interactions
    test: Interactions
    user_ids: np.ndarray  # index -> raw user_id
    anime_ids: np.ndarray  # index -> raw anime_id
    stats: dict = field(default_factory=dict)
    other: Interactions | None = None
    #: The anime features models get (:class:`animerec_bench.data.features.ItemFeatures`), carried
    #: by the cold-start protocols' splits (issue 23); None for v1 (built from the data set then).
    features: Any = None
    #: ``season-v1``'s hard candidates beyond the vocabulary (``ItemFeatures``, same columns as
    #: ``features``; index ``n_items + j`` is its row ``j``), and the kept users' pairs on them
    #: (:class:`Interactions` over that longer index), which the hard ranking excludes. None elsewhere.
    hard: Any = None
    hard_other: Interactions | None = None

    def item_range(self, part: str) -> tuple[int, int] | None:
        """The anime index range of ``part`` on a cold-start split (its anime are held out
        whole); None when every part shares the vocabulary (v1)."""
        items = self.stats.get("items")
        return tuple(items[part]) if items else None

    @property
    def n_fit_items(self) -> int:
        """How many anime (the first ones of the vocabulary) a model may know while it fits."""
        items = self.stats.get("items")
        return int(items["valid"][1]) if items else self.n_items

    def part(self, name: str) -> Interactions:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def train_with_validation(self) -> Interactions:
        """The train part with the validation pairs after it (``season-v2``'s test fit), same vocabulary."""
        t, v = self.train, self.valid
        return Interactions(np.concatenate([t.user, v.user]), np.concatenate([t.item, v.item]),
                            np.concatenate([t.rating, v.rating]), np.concatenate([t.label, v.label]),
                            t.n_users, t.n_items)

    def valid_for_fit(self) -> Interactions:
        """The validation part as ``fit`` gets it: with ``other`` attached, so a model choosing its
        settings inside ``fit`` ranks the same candidates as ``tune``'s validation ranking."""
        return replace(self.valid, other=self.other)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.anime_ids)

    @property
    def fingerprint(self) -> str:
        """sha256 over the protocol's parameters, the data set's fingerprint and every part's content."""
        cached = self.__dict__.get("_fingerprint")
        if cached:
            return cached
        h = hashlib.sha256(b"animerec-bench/split/v1")
        head = {"protocol": self.protocol, "params": self.protocol_params, "seed": self.seed,
                "dataset": self.dataset_fingerprint}
        order = (self.stats.get("order") or {}).get("by")
        if order not in (None, "mal_id"):  # season-v1 by air date (MAL id order: the fingerprints before it)
            head["order"] = order
        h.update(json.dumps(head, sort_keys=True).encode())
        h.update(np.ascontiguousarray(self.user_ids, "<i8").tobytes())
        h.update(np.ascontiguousarray(self.anime_ids, "<i8").tobytes())
        for part in PARTS:
            p = self.part(part)
            h.update(part.encode())
            for arr, dt in ((p.user, "<i4"), (p.item, "<i4"), (p.rating, "<f4"), (p.label, "i1")):
                h.update(np.ascontiguousarray(arr, dt).tobytes())
        self.__dict__["_fingerprint"] = h.hexdigest()
        return self.__dict__["_fingerprint"]

    def save(self, path: Path) -> None:
        arrays = {"user_ids": self.user_ids, "anime_ids": self.anime_ids}
        for part in PARTS:
            p = self.part(part)
            arrays.update({f"{part}_user": p.user, f"{part}_item": p.item,
                           f"{part}_rating": p.rating, f"{part}_label": p.label})
        if self.other is not None:
            arrays.update({"other_user": self.other.user, "other_item": self.other.item})
        if self.features is not None:
            arrays.update(self.features.arrays())
        if self.hard is not None and self.hard_other is not None:
            arrays.update(self.hard.arrays("hard_"))
            arrays.update({"hard_other_user": self.hard_other.user, "hard_other_item": self.hard_other.item})
        meta = {"dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint,
                "protocol": self.protocol, "protocol_params": self.protocol_params, "seed": self.seed,
                "stats": self.stats, "fingerprint": self.fingerprint}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle

    @classmethod
    def load(cls, path: Path, expected: dict | None = None) -> "Split":
        """The split saved at ``path``; ValueError when its content does not match its stored
        fingerprint, or when a field of its metadata differs from ``expected`` (e.g. ``seed``)."""
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            for key, want in (expected or {}).items():
                if meta.get(key) != want:
                    raise ValueError(f"{path}: a split with {key} {meta.get(key)!r}, expected {want!r}")
            n_users, n_items = len(z["user_ids"]), len(z["anime_ids"])
            parts = {p: Interactions(z[f"{p}_user"], z[f"{p}_item"], z[f"{p}_rating"], z[f"{p}_label"],
                                     n_users, n_items) for p in PARTS}
            n_other = len(z["other_user"])  # no such part: an older format, rebuilt by split()
            parts["other"] = Interactions(z["other_user"], z["other_item"], np.zeros(n_other, np.float32),
                                          np.full(n_other, -1, np.int8), n_users, n_items)
            features = None
            if "features_names" in z.files:
                from animerec_bench.data.features import ItemFeatures

                features = ItemFeatures.from_arrays(z)
            hard = hard_other = None
            if "hard_anime_ids" in z.files:
                from animerec_bench.data.features import ItemFeatures

                hard = ItemFeatures.from_arrays(z, "hard_")
                n_hard = len(z["hard_other_user"])
                hard_other = Interactions(z["hard_other_user"], z["hard_other_item"], np.zeros(n_hard, np.float32),
                                          np.full(n_hard, -1, np.int8), n_users, n_items + hard.n_items)
            split = cls(dataset=meta["dataset"], dataset_fingerprint=meta["dataset_fingerprint"],
                        protocol=meta["protocol"], protocol_params=meta["protocol_params"], seed=meta["seed"],
                        user_ids=z["user_ids"], anime_ids=z["anime_ids"], stats=meta["stats"],
                        features=features, hard=hard, hard_other=hard_other, **parts)
        if split.fingerprint != meta["fingerprint"]:
            raise ValueError(f"{path}: content does not match its fingerprint")
        want = (meta["stats"].get("features") or {}).get("fingerprint")
        if (features is not None or want) and (features is None or features.fingerprint() != want):
            raise ValueError(f"{path}: its anime features do not match their fingerprint")
        want = (meta["stats"].get("hard") or {}).get("fingerprint")
        if (hard is not None or want) and (hard is None or features is None or features.then(hard).fingerprint() != want):
            raise ValueError(f"{path}: its hard candidates' features do not match their fingerprint")
        return split


def _index_in(vocab: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Index of each raw id in the distinct (not necessarily sorted) ``vocab``; -1 where absent."""
    order = np.argsort(vocab, kind="stable")
    pos, found = _lookup(vocab[order], raw)
    return np.where(found, order[pos], -1)


def _has_at_least(ids: np.ndarray, k: int) -> np.ndarray:
    """For each row, whether at least ``k`` rows share its id (one bool a row, no per-row count
    kept: at 109M rows an int64 count per row was 0.5 GB; bincount when ids are dense)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < 4 * len(ids) + 1024:
        return (np.bincount(ids) >= k)[ids]
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return (counts >= k)[inverse.reshape(-1)]


def _lookup(vocab: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each raw id in the sorted, distinct ``vocab``, and whether it is there at all
    (where it is not, the index is 0).

    Ids are MyAnimeList's small non-negative integers, so a position table over 0..max(vocab)
    answers with one int32 gather a row; a binary search (int64 positions, a clipped copy and a
    gather to compare) took 26 bytes a row where this takes 9, on every part of the split.
    Ids too large for a table take the search."""
    top = int(vocab[-1]) + 1 if len(vocab) else 0
    if len(vocab) and int(vocab[0]) >= 0 and top <= 4 * (len(raw) + len(vocab)) + (1 << 20):
        table = np.full(top + 1, -1, dtype=np.int32)  # slot ``top``: every id out of 0..top-1
        table[vocab] = np.arange(len(vocab), dtype=np.int32)
        pos = table[np.clip(raw, -1, top)]  # -1 wraps to slot ``top`` too
        found = pos >= 0
        np.maximum(pos, 0, out=pos)
        return pos, found
    idx = np.searchsorted(vocab, raw)
    idx_clipped = np.minimum(idx, max(len(vocab) - 1, 0))
    found = (idx < len(vocab)) & (vocab[idx_clipped] == raw) if len(vocab) else np.zeros(len(raw), bool)
    return np.where(found, idx_clipped, 0), found


def _cache_key(dataset: Dataset, protocol: ProtocolV1, seed: int) -> str:
    key: dict[str, Any] = {"dataset": dataset.fingerprint, "protocol": protocol.params(), "seed": seed,
                           "format": protocol.cache_format}
    if protocol.cold_items:  # the split carries features (and the order) built from the anime metadata
        key["anime"] = dataset.anime_fingerprint
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
