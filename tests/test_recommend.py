"""``fit`` and ``recommend`` end to end: a realistic MyAnimeList export through the real command,
the fitted-model store's integrity checks, and the refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from animerec_bench import api
from animerec_bench.builtin.baselines import MostPopular
from animerec_bench.errors import DataError, UserError
from animerec_bench.execution import recommending
from animerec_bench.results import fitted as store
from animerec_bench.testing import check_model

from .conftest import REPO, SHARED
from .mal_export import write_export

BIN = Path(sys.executable).parent / "animerec-bench"

#: NisiOisiN's Monogatari series as the embedded data knows it (MAL ids).
MONOGATARI = {5081, 11597, 15689, 17074, 21855, 28025, 31181, 9260, 31757, 32268, 6948}
#: A fan's list: three seasons liked, one watching, one planned, and unrelated entries of every
#: other status, an unscored completed one, and a show newer than the 2016 data (40028).
FAN_LIST = [(5081, "Bakemonogatari", 9, 2), (11597, "Nisemonogatari", 8, 2),
            (17074, "Monogatari Series: Second Season", 10, 2), (15689, "Nekomonogatari: Kuro", 0, 1),
            (9260, "Kizumonogatari I: Tekketsu-hen", 0, 6), (20, "Naruto", 6, 3), (269, "Bleach", 3, 4),
            (1535, "Death Note", 0, 2), (30276, "One Punch Man", 4, 2),
            (40028, "Shingeki no Kyojin: The Final Season", 0, 6)]


def cli(*args, timeout=600):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ), cwd=REPO)


def test_ease_recommends_the_missing_seasons_and_nothing_on_the_list(tmp_path):
    export = write_export(tmp_path / "animelist_1700000000_-_1234567.xml.gz", FAN_LIST)
    first = cli("recommend", "--model", "ease", "--list", export, "-k", "10", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    picks = [r["anime_id"] for r in out["recommendations"]]
    assert len(picks) == 10 and not set(picks) & {a for a, *_ in FAN_LIST}  # any status, never back
    assert set(picks[:2]) <= MONOGATARI and len(set(picks[:5]) & MONOGATARI) >= 3, out["recommendations"]
    assert out["list"] == {"entries": 10, "liked": 3, "disliked": 2, "unknown_taste": 4, "unknown_ids": [40028],
                           "candidates": out["list"]["candidates"]}
    top = out["recommendations"][0]
    assert top["url"] == f"https://myanimelist.net/anime/{top['anime_id']}"
    assert top["type"] and top["genres"] and top["why"].startswith("you liked ")
    assert top["why"].removeprefix("you liked ") in {t for _, t, s, st in FAN_LIST if st == 2 and s > 5}

    again = cli("recommend", "--list", export, "-k", "5")  # the saved model: no fit, a table
    assert again.returncode == 0, again.stderr
    assert "fitting" not in again.stderr and "1 not in mal2016-5k (ignored): 40028" in again.stderr
    assert again.stdout.splitlines()[0].split()[:4] == ["#", "title", "MyAnimeList", "type"]
    assert f"https://myanimelist.net/anime/{picks[0]}" in again.stdout


def test_new_only_ranks_only_the_newest_anime(tmp_path):
    export = write_export(tmp_path / "list.xml", FAN_LIST)
    frame = api.recommend("ease", export, 10, new_only=True)
    fitted, _ = api.fit("ease")
    newest = set(fitted.anime_ids[recommending.newest_anime(fitted.anime_ids, fitted.anime_examples)].tolist())
    qualifying = int((fitted.anime_examples >= recommending.NEW_MIN_EXAMPLES).sum())
    assert len(newest) == round(qualifying * recommending.NEW_FRACTION)
    assert min(newest) > np.sort(fitted.anime_ids[fitted.anime_examples >= 5])[-len(newest) - 1]
    assert len(frame) == 10 and set(frame.anime_id) <= newest
    assert list(frame.columns) == ["rank", "anime_id", "title", "url", "type", "episodes", "genres", "score", "why"]
    assert frame.attrs["unknown_ids"] == [40028]


def test_a_model_without_fold_in_is_refused_naming_those_with_one(tmp_path):
    export = write_export(tmp_path / "list.xml", FAN_LIST)
    with pytest.raises(UserError) as caught:
        api.recommend("bias", export)
    assert "has no fold_in" in str(caught.value)
    assert all(name in str(caught.value) for name in ("ease", "most-popular", "mf-biased"))


def test_a_changed_file_is_refused_even_with_its_old_times(tmp_path, fresh_home):
    fitted, fitted_now = api.fit("most-popular")
    assert fitted_now and api.fit("most-popular")[1] is False  # the second call loads it
    counts = fitted.folder / "model" / "arrays" / "counts.npy"
    stat = counts.stat()
    original = counts.read_bytes()
    data = bytearray(original)
    data[-1] ^= 1
    counts.write_bytes(bytes(data))
    os.utime(counts, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: still caught
    with pytest.raises(DataError, match="counts.npy: sha256 does not match"):
        api.fit("most-popular")
    counts.write_bytes(original)
    assert api.fit("most-popular")[1] is False  # the same bytes again: accepted
    (fitted.folder / "model" / "extra.npy").write_bytes(b"x")
    with pytest.raises(DataError, match="not in the manifest"):
        api.fit("most-popular")
    assert api.fit("most-popular", refit=True)[1] is True  # --refit replaces it


class _FailingSave(MostPopular):
    name = "failing-save"

    def save(self, folder):
        super().save(folder)
        raise OSError("disk full")


def test_a_failed_save_leaves_no_folder(tmp_path):
    from animerec_bench.testing import synthetic_split

    train, _, _ = synthetic_split()
    model = _FailingSave().fit(train, None, tasks=("ranking",))
    identity = store.fitted_identity(_FailingSave, {}, ("ranking",), dataset="syn", dataset_fingerprint="0" * 64,
                                     protocol="v1", protocol_params={})
    with pytest.raises(OSError, match="disk full"):
        store.save(model, identity, np.arange(train.n_items), np.ones(train.n_items), fit_seconds=0.0,
                   root=tmp_path)
    assert list(tmp_path.iterdir()) == []


class _LossyLoad(MostPopular):
    name = "lossy-load"

    @classmethod
    def load(cls, folder):
        model = super().load(folder)
        model.counts_ = model.counts_ + 1e-3
        return model


def test_check_model_catches_a_load_that_scores_differently():
    check_model(MostPopular)
    with pytest.raises(AssertionError, match="save/load"):
        check_model(_LossyLoad)


def test_fit_command_says_where_it_saved(fresh_home):
    done = cli("fit", "-m", "most-popular")
    assert done.returncode == 0, done.stderr
    assert "fitted in" in done.stdout and str(fresh_home / "models") in done.stdout
    assert "already saved" in cli("fit", "-m", "most-popular").stdout
    refused = cli("fit", "-m", "popularity")
    assert refused.returncode == 2 and "cannot be saved" in refused.stderr and "ease" in refused.stderr


@pytest.mark.skipif(not (SHARED / "data" / "mal2016-5k").is_dir(), reason="needs ../shared/data (the sources)")
def test_anime_metadata_is_what_the_script_makes(tmp_path, embedded):
    import pyarrow.parquet as pq

    subprocess.run([sys.executable, str(REPO / "scripts" / "build_anime_metadata.py"),
                    "--source", str(SHARED / "data" / "mal2016-5k"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    assert pq.read_table(tmp_path / "mal2016-5k-anime.parquet").equals(pq.read_table(embedded.anime_path))


def test_a_list_without_liked_anime_is_flagged_flat_for_ease(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("anime_id,score,status\n5081,0,Plan to Watch\n269,3,Dropped\n")
    out = api.recommendations("ease", path, 5)
    assert out.flat and out.match.liked == 0 and out.match.disliked == 1
    assert not {r["anime_id"] for r in out.rows} & {5081, 269}
    assert not api.recommendations("ease", write_export(tmp_path / "fan.xml", FAN_LIST), 5).flat


def test_a_change_to_a_used_builtin_module_is_another_fitted_model(monkeypatch):
    """A fitted model is found by a key that covers the built-in modules its code imports (which a
    result's key leaves out): after an edit of one of them, ``fit``/``recommend`` fit again rather
    than serve the old model. ``mf-biased`` imports ``row_adagrad``; the edit is simulated by its
    recorded sha256, since the test cannot edit the installed package."""
    from animerec_bench.builtin.biased_mf import BiasedMatrixFactorization as BiasedMF
    from animerec_bench.results import identity

    def fitted_key():
        return store.fitted_identity(BiasedMF, {}, ("rating",), dataset="mal2016-5k", dataset_fingerprint="0" * 64,
                                     protocol="v1", protocol_params={})["key"]

    before = fitted_key()
    real_uses = identity.uses
    assert "animerec_bench.builtin.row_adagrad" in real_uses(BiasedMF.__module__, sys.modules[BiasedMF.__module__].__file__)
    assert fitted_key() == before  # the same code, the same model
    monkeypatch.setattr(store, "code_fingerprint", lambda cls: {
        **identity.code_fingerprint(cls),
        "uses": {**real_uses(cls.__module__, sys.modules[cls.__module__].__file__),
                 "animerec_bench.builtin.row_adagrad": "0" * 64}})
    assert fitted_key() != before
