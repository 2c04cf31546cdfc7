"""The Keras models: conformance, numpy predict == the network, the study's setup, LazyAdam.

Real Keras training on small data; the whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin.keras_models import KERAS_MODELS, MF, NN, Hybrid
from animerec_bench.testing import check_model, synthetic_split

from .conftest import FRAMEWORKS, imported_after

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small():
    return synthetic_split(seed=1, n_users=150, n_items=100, pairs_per_user=20)


@pytest.mark.parametrize("cls", KERAS_MODELS, ids=lambda c: c.name)
def test_keras_model_passes_check_model(cls):
    check_model(cls, epochs=2)


@pytest.mark.parametrize("cls,tasks", [(MF, ("rating",)), (MF, ("interaction",)), (NN, ("interaction",)),
                                       (Hybrid, ("rating", "interaction"))],
                         ids=lambda x: getattr(x, "name", "+".join(x) if isinstance(x, tuple) else x))
def test_numpy_predict_matches_the_network(small, cls, tasks):
    train, valid, test = small
    model = cls(epochs=1).fit(train, valid, tasks=tasks, seed=0)
    from animerec_bench.builtin.keras_backend import keras

    ours = model.predict(test.user, test.item)
    theirs = model.network_(np.stack([test.user, test.item], 1), training=False)
    theirs = theirs if isinstance(theirs, dict) else {tasks[0]: theirs}
    assert set(ours) == set(tasks)
    for task in tasks:
        np.testing.assert_allclose(ours[task], keras().ops.convert_to_numpy(theirs[task])[:, 0], atol=2e-5)


def test_hybrid_masks_the_loss_of_the_task_a_pair_is_not_an_example_of(small):
    train, valid, test = small
    assert ((train.label < 0) & (train.rating > 0)).any() and ((train.rating == 0) & (train.label >= 0)).any()
    model = Hybrid(epochs=3).fit(train, valid, tasks=("rating", "interaction"), seed=0)
    predictions = model.predict(test.user, test.item)
    assert set(predictions) == {"rating", "interaction"}
    # An unmasked label of -1 would make the cross-entropy negative; an unmasked rating of 0 would
    # drag ratings down. Neither may happen.
    assert min(model.history_["interaction_loss"]) > 0
    rated = test.rating > 0
    assert abs(predictions["rating"][rated].mean() - train.rating[train.rating > 0].mean()) < 1.0


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_seed_compat_runs_the_studys_setup(small):
    train, valid, _ = small
    study = MF(seed_compat=True, epochs=1, steps_per_epoch=3).fit(train, valid, tasks=("interaction",), seed=0)
    assert study.network_.run_eagerly is True
    assert study.setup_["batch_size"] == 64 and study.setup_["steps_per_epoch"] == 3
    assert study.setup_["monitor"] == "loss" and study.setup_["patience"] == 3
    assert study.setup_["class_weight"] == {0: 2.5, 1: 1.0}
    assert study.network_.optimizer.learning_rate.numpy() == pytest.approx(0.001)
    assert study.global_bias_ == pytest.approx(0.0, abs=0.01)  # the study's zero start, 3 steps in
    assert "loop" not in study.setup_  # keras.Model.fit, eagerly: not the compiled epoch
    ours = MF(epochs=1).fit(train, valid, tasks=("rating",), seed=0)
    assert ours.setup_["loop"] == "compiled_epoch"
    assert ours.setup_["batch_size"] == MF().batch_size > 64 and ours.setup_["monitor"] == "val_loss"
    assert ours.setup_["restore_best_weights"] is True and ours.setup_["class_weight"] is None


def test_each_model_fits_only_the_tasks_it_may(small):
    train, valid, _ = small
    with pytest.raises(ValueError, match="one task at a time"):
        MF().fit(train, valid, tasks=("rating", "interaction"), seed=0)
    with pytest.raises(ValueError, match="jointly"):
        Hybrid().fit(train, valid, tasks=("rating",), seed=0)


def test_listing_models_does_not_import_keras():
    code = ("from animerec_bench.plugins.registry import load_registry; r = load_registry()\n"
            "assert {'mf', 'nn', 'hybrid', 'mf-biased'} <= set(r.models), r.models")
    assert imported_after(code, FRAMEWORKS) == []


def test_lazy_adam_updates_only_the_rows_in_the_batch_and_matches_adam_on_them():
    """On a sparse (embedding) gradient LazyAdam touches only the batch's rows (a repeated row's
    gradients summed first); on those rows a first step equals Keras Adam on the dense gradient.
    (Keras' own Adam fed the sparse gradient squares repeated rows one by one: not Adam.)"""
    import tensorflow as tf

    from animerec_bench.builtin.keras_backend import gather_rows, keras
    from animerec_bench.builtin.sparse_optim import LazyAdam

    k = keras()
    tables = [k.Variable(np.random.default_rng(0).normal(0, 0.05, (50, 4)).astype(np.float32)) for _ in range(2)]
    before = k.ops.convert_to_numpy(tables[0]).copy()
    ids = np.array([3, 7, 7, 20], dtype=np.int32)
    for table, opt, densify in ((tables[0], LazyAdam(learning_rate=0.1), False),
                                (tables[1], k.optimizers.Adam(learning_rate=0.1), True)):
        with tf.GradientTape() as tape:
            loss = k.ops.sum(gather_rows(table, ids) ** 2)
        (grad,) = tape.gradient(loss, [table.value])
        assert isinstance(grad, tf.IndexedSlices)
        opt.apply([tf.convert_to_tensor(grad) if densify else grad], [table])
    after, reference = (k.ops.convert_to_numpy(t) for t in tables)
    touched = np.isin(np.arange(50), ids)
    np.testing.assert_array_equal(after[~touched], before[~touched])
    np.testing.assert_allclose(after[touched], reference[touched], atol=1e-6)
    np.testing.assert_allclose(np.abs(after - before)[touched], 0.1, atol=1e-3)  # Adam's first step: lr


@pytest.mark.parametrize("cls,tasks", [(MF, ("rating",)), (NN, ("interaction",)), (Hybrid, ("rating", "interaction"))],
                         ids=lambda x: getattr(x, "name", "+".join(x) if isinstance(x, tuple) else x))
def test_compiled_epoch_trains_restores_the_best_epoch_and_stops_early(small, cls, tasks):
    train, valid, _ = small
    model = cls(epochs=6, patience=1, learning_rate=0.05).fit(train, valid, tasks=tasks, seed=0)
    assert model.setup_["loop"] == "compiled_epoch"
    history = model.history_
    assert history["loss"][-1] < history["loss"][0]
    assert len(history["val_loss"]) == model.epochs_ <= 6
    if len(tasks) == 2:
        assert {"rating_loss", "interaction_loss", "val_rating_loss", "val_interaction_loss"} <= set(history)
    # The network holds the best epoch's weights: its validation loss is the best one recorded.
    x, y, sw = model._examples(valid, tasks)
    evaluated = model.network_.evaluate(x, y, sample_weight=sw, batch_size=len(x), verbose=0, return_dict=True)
    assert evaluated["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-4)


def test_compiled_epoch_is_deterministic_and_falls_back_to_keras_fit_for_large_tables(small, monkeypatch):
    from animerec_bench.builtin import keras_models

    train, valid, test = small
    a, b = (MF(epochs=2).fit(train, valid, tasks=("rating",), seed=3).predict(test.user, test.item) for _ in range(2))
    np.testing.assert_array_equal(a["rating"], b["rating"])
    monkeypatch.setattr(keras_models, "COMPILED_MAX_ROWS", 10)
    model = MF(epochs=2).fit(train, valid, tasks=("rating",), seed=3)
    assert "loop" not in model.setup_ and model.epochs_ == 2


def test_compiled_lazy_adam_matches_lazy_adam():
    """The compiled epoch's row update (``_row_sums`` + masked ``_adam``) is ``LazyAdam``'s:
    repeated rows summed, only touched rows moved, Adam's rule on them; dense weights: Adam."""
    import tensorflow as tf

    from animerec_bench.builtin import keras_models
    from animerec_bench.builtin.keras_backend import keras
    from animerec_bench.builtin.sparse_optim import LazyAdam

    k = keras()
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.05, (50, 4)).astype(np.float32)
    ids = np.array([3, 7, 7, 20], dtype=np.int32)
    rows = rng.normal(0, 1, (4, 4)).astype(np.float32)
    table, opt = k.Variable(start), LazyAdam(learning_rate=0.1)
    moments = np.zeros_like(start), np.zeros_like(start)
    ours = start
    for step in range(3):  # moments carried over steps, bias correction by step
        opt.apply([tf.IndexedSlices(rows * (step + 1), ids, dense_shape=(50, 4))], [table])
        grad, touched = keras_models._row_sums(ids, rows * (step + 1), 50)
        b1, b2, _ = keras_models.ADAM
        alpha = 0.1 * np.sqrt(1 - b2 ** (step + 1)) / (1 - b1 ** (step + 1))
        ours, *moments = keras_models._adam(ours, *moments, grad, alpha, touched)
    np.testing.assert_allclose(k.ops.convert_to_numpy(ours), k.ops.convert_to_numpy(table), atol=1e-6)
    untouched = ~np.isin(np.arange(50), ids)
    np.testing.assert_array_equal(k.ops.convert_to_numpy(ours)[untouched], start[untouched])


def test_hashed_dropout_noise_is_uniform_keyed_and_repeatable():
    from animerec_bench.builtin.keras_backend import hashed_uniform

    a = np.asarray(hashed_uniform((256, 64), np.array([0, 1, 1], np.int32)))
    again = np.asarray(hashed_uniform((256, 64), np.array([0, 1, 1], np.int32)))
    other = np.asarray(hashed_uniform((256, 64), np.array([0, 2, 1], np.int32)))
    np.testing.assert_array_equal(a, again)
    assert a.min() >= 0 and a.max() < 1 and abs(a.mean() - 0.5) < 0.01
    assert abs((a >= 0.5).mean() - 0.5) < 0.01 and abs((a >= 0.2).mean() - 0.8) < 0.01
    assert abs(np.corrcoef(a.ravel(), other.ravel())[0, 1]) < 0.02
