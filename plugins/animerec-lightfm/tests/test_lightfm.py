"""lightfm: conformance, LightFM's own predictions, cold anime scored from their features, the plugin loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from animerec_lightfm import LightFMHybrid

from animerec_bench.evaluation.ranking import RankingData, evaluate
from animerec_bench.model import Interactions
from animerec_bench.testing import check_model, synthetic_features, synthetic_split

QUICK = {"no_components": 8, "epochs": 3}


def test_lightfm_conforms():
    check_model(LightFMHybrid, **QUICK)
    check_model(LightFMHybrid, **QUICK, loss="bpr", item_identity=False, normalize=True, name_weight=2.0)


def test_invalid_settings_are_refused():
    defaults = LightFMHybrid.param_defaults()
    for bad in ({"loss": "hinge"}, {"no_components": 0}, {"learning_rate": 0.0}, {"num_threads": -1},
                {"item_alpha": -1.0}):
        with pytest.raises(ValueError):
            LightFMHybrid.validate_params({**defaults, **bad})


def _cold_split(n_cold: int = 40):
    """The synthetic split with its last ``n_cold`` anime taken out of train and valid (they stay
    in the vocabulary): fit knows the first ``n_items - n_cold`` anime; test holds the cold ones' pairs."""
    train, valid, test = synthetic_split(0)
    n_fit = train.n_items - n_cold

    def keep(part, cold):
        mask = (part.item >= n_fit) if cold else (part.item < n_fit)
        return part.subset(mask)

    everything = [train, valid, test]
    cold = Interactions(*(np.concatenate([getattr(p, k) for p in everything]) for k in
                          ("user", "item", "rating", "label")), train.n_users, train.n_items)
    return keep(train, False), keep(valid, False), keep(cold, True), n_fit


def test_scores_are_lightfms_predict_and_cold_anime_come_from_their_features():
    train, valid, cold, n_fit = _cold_split()
    features = synthetic_features(train.n_items)
    model = LightFMHybrid(**QUICK).fit(train, valid, tasks=("ranking",), seed=1, features=features.head(n_fit))
    assert model.items_.max() < n_fit and len(model.items_) == len(np.unique(train.item))
    model.set_item_features(features)
    users = np.arange(train.n_users)
    scores = model.score(users)
    assert scores.shape == (train.n_users, train.n_items) and np.isfinite(scores).all()
    # the fitted anime: LightFM's own predict, with their LightFM feature rows
    fitted = model._features(features.head(n_fit), model.items_)[model.items_]
    for u in (0, 7, 123):
        theirs = model.algo_.predict(u, np.arange(len(model.items_)), item_features=fitted)
        assert np.abs(scores[u, model.items_] - theirs).max() < 1e-4
    # a cold anime's representation is its features' embeddings summed, no id column
    rows = features.matrix[n_fit:].toarray()
    n_id = len(model.items_)
    expected = rows @ model.algo_.item_embeddings[n_id:]
    assert np.abs(model.item_factors_[n_fit:] - expected).max() < 1e-4
    assert np.ptp(scores[:, n_fit:]) > 0  # they are told apart


def test_beats_random_on_warm_and_cold_anime():
    """A real fit on the synthetic split: its test ranking (warm) and a cold ranking (anime fit never
    saw, ranked by features only) are better than a random scorer's."""
    train, valid, test = synthetic_split(0)
    features = synthetic_features(train.n_items)
    model = LightFMHybrid(no_components=16, epochs=15).fit(train, valid, tasks=("ranking",), seed=0,
                                                            features=features)
    model.set_item_features(features)
    data = RankingData.from_parts(train, test, (valid,))
    rng = np.random.default_rng(0)
    ours = evaluate(data, model.score)["ndcg@10"]
    rand = evaluate(data, lambda u: rng.random((len(u), train.n_items)))["ndcg@10"]
    assert ours > 3 * rand, (ours, rand)  # measured: 0.206 vs 0.028

    # cold: synthetic features carry no taste, so give the cold anime features that do (their popularity)
    tr, va, cold, n_fit = _cold_split(60)
    import pyarrow as pa

    from animerec_bench.data.features import build

    likes = np.bincount(np.concatenate([tr.item, va.item, cold.item])[
        np.concatenate([tr.label, va.label, cold.label]) == 1], minlength=tr.n_items)
    tier = np.digitize(likes, np.quantile(likes, [0.25, 0.5, 0.75]))
    table = pa.table({"anime_id": pa.array(np.arange(tr.n_items), pa.int32()),
                      "name": [f"tier{t} show{i}" for i, t in enumerate(tier)],
                      "genres": [[f"G{t}"] for t in tier], "type": ["TV"] * tr.n_items,
                      "episodes": pa.array([12] * tr.n_items, pa.int32())})
    feats = build(table, np.arange(tr.n_items), n_fit)
    model = LightFMHybrid(no_components=16, epochs=15).fit(tr, va, tasks=("ranking",), seed=0,
                                                            features=feats.head(n_fit))
    model.set_item_features(feats)
    data = RankingData.from_parts(tr, cold, (va,))
    import dataclasses

    data = dataclasses.replace(data, candidates=(n_fit, tr.n_items))
    ours = evaluate(data, model.score)["ndcg@10"]
    rand = evaluate(data, lambda u: rng.random((len(u), tr.n_items)))["ndcg@10"]
    assert ours > 2 * rand, (ours, rand)  # measured: 0.285 vs 0.103


def test_entry_point_is_loaded_by_animerec_bench_list():
    exe = Path(sys.executable).with_name("animerec-bench")
    exe = str(exe) if exe.exists() else shutil.which("animerec-bench")
    assert exe, "animerec-bench is not installed beside this Python"
    env = {k: v for k, v in os.environ.items() if k != "ANIMEREC_BENCH_DISABLE_PLUGINS"}
    out = subprocess.run([exe, "list", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    listed = json.loads(out)
    models = {m["name"]: m for m in listed["models"]}
    assert "lightfm" in models, (sorted(models), listed["errors"])
    entry = models["lightfm"]
    assert (entry["plugin"], entry["plugin_version"]) == ("lightfm", "0.1.2")
    assert entry["item_features"] and entry["tasks"] == ["ranking"] and entry["params"]["loss"] == "warp"
