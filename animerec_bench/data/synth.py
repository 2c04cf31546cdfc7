"""A seeded generator of MyAnimeList-like data in the Kaggle 2020 format, at any size.

Why: the real 2020 file is 1.9 GB and not redistributable in tests; benchmarks and scale
tests need the same schema and marginals, and models need a real signal to learn.

What it reproduces (and the choices made where the sources are silent):

- **Ratings** (``animelist.csv``, full file, ``../shared/data/README.md``): 43 % unscored (0);
  scored ratings follow the real 1-10 shares exactly (quantile mapping of a latent score):
  1: 0.8 %, 2: 0.9 %, 3: 1.4 %, 4: 2.9 %, 5: 6.4 %, 6: 12.1 %, 7: 22.9 %, 8: 24.8 %,
  9: 16.4 %, 10: 11.4 % of the scored entries.
- **Statuses** (chosen, close to the real file): completed 62 %, plan to watch 20 %,
  watching 8 %, dropped 5 %, on hold 5 %. Plan to watch is never scored; watching is unscored
  60 % of the time, on hold and dropped 50 %, completed fills the rest of the 43 % zeros (~21 %).
  Dropped entries are the ones the user likes least (lowest latent score plus noise), so
  "dropped" is a learnable negative, as it is for real users.
- **Long tails**: user activity is lognormal (sigma 1.2), anime popularity is Zipf-like
  (weight ∝ 1 / (rank + 10) ** 1.1, ranks shuffled over anime ids); pairs are unique.
- **Taste**: score = user bias + anime bias (larger for popular anime) + user · anime factors
  (8 dimensions) + noise, so a matrix factorisation beats per-anime means.

Output: ``animelist.csv`` (user_id, anime_id, rating, watching_status, watched_episodes; rows
grouped by user like the real file), ``anime.csv`` (MAL_ID, Name, Episodes, Members) and
``SYNTHETIC.json`` (the generator's parameters), which ``data import`` reads to label the
data set synthetic.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from animerec_bench.errors import UserError

MARKER = "SYNTHETIC.json"
GENERATOR_VERSION = 1

#: Full-file counts of animelist.csv ratings 1..10 (millions), from ../shared/data/README.md.
SCORED_COUNTS = np.array([0.48, 0.55, 0.9, 1.8, 4.0, 7.5, 14.2, 15.4, 10.2, 7.1])
UNSCORED_SHARE = 0.43
#: status code -> share of all rows (chosen; see the module docstring).
STATUS_SHARES = {2: 0.62, 6: 0.20, 1: 0.08, 4: 0.05, 3: 0.05}
#: status code -> probability that an entry with this status is unscored (completed: derived).
UNSCORED_BY_STATUS = {6: 1.0, 1: 0.6, 3: 0.5, 4: 0.5}


@dataclass(frozen=True)
class SynthParams:
    rows: int
    users: int
    anime: int
    seed: int = 0
    factors: int = 8
    user_activity_sigma: float = 1.2
    popularity_exponent: float = 1.1
    noise: float = 0.5

    def check(self) -> None:
        if self.rows < 1 or self.users < 1 or self.anime < 2:
            raise UserError("synth: --rows and --users must be >= 1 and --anime >= 2")
        if self.rows > self.users * (self.anime // 2):
            raise UserError(f"synth: --rows {self.rows} is too many for {self.users} users x {self.anime} anime "
                            f"(at most users * anime / 2 = {self.users * (self.anime // 2)} unique pairs)")


def _user_counts(p: SynthParams, rng: np.random.Generator) -> np.ndarray:
    """Rows per user: lognormal activity, at least one each while rows allow, at most anime / 2."""
    cap = p.anime // 2
    w = rng.lognormal(0.0, p.user_activity_sigma, p.users)
    base = 1 if p.rows >= p.users else 0
    counts = np.full(p.users, base, dtype=np.int64)
    left = p.rows - counts.sum()
    while left > 0:
        room = cap - counts
        ww = np.where(room > 0, w, 0.0)
        add = np.minimum(np.floor(left * ww / ww.sum()).astype(np.int64), room)
        if add.sum() == 0:  # the last few rows: one each to the most active users with room
            order = np.argsort(-ww, kind="stable")[:left]
            add = np.zeros_like(counts)
            add[order[room[order] > 0]] = 1
        counts += add
        left = p.rows - counts.sum()
    return counts


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique for int keys without its hash pass (sort + neighbour test is faster here)."""
    x = np.sort(x)
    if len(x) > 1:
        x = x[np.concatenate(([True], x[1:] != x[:-1]))]
    return x


def _draw_pairs(p: SynthParams, counts: np.ndarray, popularity: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unique (user, anime index) pairs, ``counts[u]`` per user, anime drawn by popularity.

    Draw with replacement, keep the new unique pairs, redraw the shortfall; after a few
    popularity-weighted rounds the rest is drawn uniformly (cap anime / 2 keeps it fast).
    """
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    A = p.anime
    need = counts.copy()
    accepted: list[np.ndarray] = []  # sorted key arrays (user * A + anime), disjoint
    for round_ in range(64):
        users = np.repeat(np.arange(p.users, dtype=np.int64), need)
        if len(users) == 0:
            break
        if round_ < 6:
            anime = np.searchsorted(cdf, rng.random(len(users)), side="right")
            anime = np.minimum(anime, A - 1)
        else:
            anime = rng.integers(0, A, len(users))
        keys = _sorted_unique(users * A + anime)
        for old in accepted:
            if len(old) == 0:
                continue
            pos = np.minimum(np.searchsorted(old, keys), len(old) - 1)
            keys = keys[old[pos] != keys]
        accepted.append(keys)
        need -= np.bincount(keys // A, minlength=p.users)
    else:  # pragma: no cover - the cap makes this unreachable in practice
        raise RuntimeError("synth: could not draw enough unique pairs")
    keys = np.sort(np.concatenate(accepted), kind="stable")  # sorted runs: timsort merges them
    return (keys // A).astype(np.int64), (keys % A).astype(np.int64)


def generate(p: SynthParams) -> dict[str, np.ndarray]:
    """The columns of ``animelist.csv`` and ``anime.csv`` as numpy arrays (deterministic in ``p``)."""
    p.check()
    rng = np.random.default_rng(p.seed)
    A = p.anime
    # Anime: sparse MAL-like ids, Zipf-like popularity over a random ranking.
    anime_ids = np.sort(rng.choice(np.arange(1, 3 * A + 1), size=A, replace=False)).astype(np.int32)
    rank = rng.permutation(A)
    popularity = 1.0 / (rank + 10.0) ** p.popularity_exponent
    episodes = np.clip(rng.lognormal(2.5, 0.9, A).astype(np.int32), 1, 500)

    counts = _user_counts(p, rng)
    u, a = _draw_pairs(p, counts, popularity, rng)
    n = len(u)

    z = _latent_scores(p, u, a, popularity, rng)
    status = _statuses(z, rng)
    rating = _ratings(z, _unscored(status, rng))

    # Episodes watched: all when completed, none when planned, a random share otherwise.
    watched = episodes[a]
    frac = rng.random(n)
    watched = np.where(status == 2, watched,
                       np.where(status == 6, 0, np.floor(frac * watched).astype(np.int32))).astype(np.int32)
    members = np.bincount(a, minlength=A).astype(np.int64)
    return {"user_id": u.astype(np.int32), "anime_id": anime_ids[a], "rating": rating,
            "watching_status": status, "watched_episodes": watched,
            "MAL_ID": anime_ids, "Episodes": episodes, "Members": members}


def _latent_scores(p: SynthParams, u: np.ndarray, a: np.ndarray, popularity: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Each pair's latent taste: user and anime biases, a dot product of ``p.factors`` factors, noise.
    Popular anime are liked a little more (as on MyAnimeList)."""
    k, n = p.factors, len(u)
    user_f = rng.normal(0, k ** -0.25, (p.users, k)).astype(np.float32)
    anime_f = rng.normal(0, k ** -0.25, (p.anime, k)).astype(np.float32)
    user_b = rng.normal(0, 0.5, p.users).astype(np.float32)
    pop_z = (np.log(popularity) - np.log(popularity).mean()) / np.log(popularity).std()
    anime_b = (0.3 * pop_z + rng.normal(0, 0.5, p.anime)).astype(np.float32)
    z = user_b[u] + anime_b[a] + rng.normal(0, p.noise, n).astype(np.float32)
    for start in range(0, n, 1 << 21):  # the dot products in blocks: bounded memory
        sl = slice(start, start + (1 << 21))
        z[sl] += np.einsum("ij,ij->i", user_f[u[sl]], anime_f[a[sl]])
    return z


def _statuses(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Watching status: plan to watch / watching / on hold at random, dropped among the least
    liked (``z``), completed the rest, in ``STATUS_SHARES``."""
    n = len(z)
    draw = rng.random(n)
    status = np.full(n, 2, dtype=np.int8)
    edges = np.cumsum([STATUS_SHARES[6], STATUS_SHARES[1], STATUS_SHARES[3]])
    status[draw < edges[0]] = 6
    status[(draw >= edges[0]) & (draw < edges[1])] = 1
    status[(draw >= edges[1]) & (draw < edges[2])] = 3
    rest = np.flatnonzero(status == 2)
    n_dropped = int(round(STATUS_SHARES[4] * n))
    if n_dropped and len(rest):
        dislike = z[rest] + rng.normal(0, 0.5, len(rest)).astype(np.float32)
        status[rest[np.argpartition(dislike, min(n_dropped, len(rest)) - 1)[:n_dropped]]] = 4
    return status


def _unscored(status: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which entries have no score: fixed shares for the other statuses, completed makes up the
    ``UNSCORED_SHARE`` (43 %)."""
    n = len(status)
    unscored = np.zeros(n, dtype=bool)
    r = rng.random(n)
    for code, share in UNSCORED_BY_STATUS.items():
        unscored |= (status == code) & (r < share)
    completed = status == 2
    target = UNSCORED_SHARE * n - unscored.sum()
    if completed.any() and target > 0:
        unscored |= completed & (r < target / completed.sum())
    return unscored


def _ratings(z: np.ndarray, unscored: np.ndarray) -> np.ndarray:
    """Scored ratings 1-10 with the real marginal (``SCORED_COUNTS``), by quantile mapping of the
    latent score; 0 where unscored."""
    rating = np.zeros(len(z), dtype=np.int8)
    scored = np.flatnonzero(~unscored)
    if len(scored):
        shares = np.cumsum(SCORED_COUNTS / SCORED_COUNTS.sum())[:-1]
        cuts = np.quantile(z[scored], shares)
        rating[scored] = (np.searchsorted(cuts, z[scored], side="right") + 1).astype(np.int8)
    return rating


def write(p: SynthParams, out: Path | str) -> dict:
    """Generate and write a Kaggle-format folder at ``out`` atomically; returns the marker content.

    Refuses to replace an existing non-empty folder unless it is an earlier synthetic output.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from animerec_bench.support.atomic import atomic_path
    from animerec_bench.support.version import __version__

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise UserError(f"synth: {out} exists and is not an earlier synthetic output; choose a new folder")
    cols = generate(p)
    marker = {"generator": "animerec-bench synth", "generator_version": GENERATOR_VERSION,
              "package_version": __version__, "params": asdict(p),
              "status_shares": {str(k): v for k, v in STATUS_SHARES.items()},
              "unscored_share": UNSCORED_SHARE}
    interactions = pa.table({k: cols[k] for k in
                             ("user_id", "anime_id", "rating", "watching_status", "watched_episodes")})
    anime = pa.table({"MAL_ID": cols["MAL_ID"],
                      "Name": pa.array([f"Synthetic Anime {i}" for i in cols["MAL_ID"].tolist()]),
                      "Episodes": cols["Episodes"], "Members": cols["Members"]})
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, table in (("animelist.csv", interactions), ("anime.csv", anime)):
            with open(tmp / name, "wb") as fh:
                fh.write((",".join(table.column_names) + "\n").encode())
                pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, batch_size=1 << 16))
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return marker
