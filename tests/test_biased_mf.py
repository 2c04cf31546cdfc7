"""``mf-biased`` and its trainer: row-wise Adagrad against a numpy transcription of its rule,
the batch order, determinism, and quality on real data."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin import row_adagrad
from animerec_bench.builtin.baselines import Bias
from animerec_bench.builtin.biased_mf import BiasedMatrixFactorization
from animerec_bench.metrics import rmse
from animerec_bench.model import Interactions
from animerec_bench.testing import check_model, synthetic_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small():
    return synthetic_split(seed=1, n_users=150, n_items=100, pairs_per_user=20)


def _numpy_epoch(users, items, user, item, rating, order, rule):
    """The module docstring's rule, one example at a time within a batch, in float64."""
    users, items = users.astype(np.float64), items.astype(np.float64)
    k = rule.factors
    for batch in order.reshape(-1, rule.batch_size):
        batch = batch[batch < len(rating)]  # the padding example has weight 0
        du, di = np.zeros_like(users), np.zeros_like(items)
        for n in batch:
            u, i = user[n], item[n]
            pu, qi = users[u], items[i]
            e = rule.mean + pu[k] + qi[k] + pu[:k] @ qi[:k] - rating[n]
            for row, other, delta in ((pu, qi, du[u]), (qi, pu, di[i])):
                g = e * other[:k] + rule.reg_factors * row[:k]
                gb = e + rule.reg_biases * row[k]
                a, c = np.mean(g * g), gb * gb
                delta[:k] -= rule.learning_rate * g / np.sqrt(row[k + 1] + a)
                delta[k] -= rule.bias_learning_rate * gb / np.sqrt(row[k + 2] + c)
                delta[k + 1] += a
                delta[k + 2] += c
        users, items = users + du, items + di
    return users, items


def test_an_epoch_applies_the_documented_rule_and_touches_only_the_batches_rows():
    rng = np.random.default_rng(0)
    n_users, n_items, factors = 40, 12, 4
    user = np.sort(rng.integers(0, 30, 50)).astype(np.int32)  # users 30-39 have no example
    item = rng.integers(0, 8, 50).astype(np.int32)  # items 8-11 neither; each item repeats
    rating = rng.integers(1, 11, 50).astype(np.float32)
    rule = row_adagrad.StepRule(factors=factors, mean=float(rating.mean()), learning_rate=0.1,
                                bias_learning_rate=0.2, reg_factors=0.05, reg_biases=0.01, batch_size=16)
    users = row_adagrad.init_table(n_users, factors, 0.3, 0.1, rng)
    items = row_adagrad.init_table(n_items, factors, 0.3, 0.1, rng)
    order = row_adagrad.batch_order(len(rating), rule.batch_size, rng)
    trainer = row_adagrad.trainer(users, items, user, item, rating, rule)
    loss = trainer.epoch(order)
    got_users, got_items = trainer.tables()
    want_users, want_items = _numpy_epoch(users, items, user, item, rating, order, rule)
    np.testing.assert_allclose(got_users, want_users, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_items, want_items, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got_users[30:], users[30:])
    np.testing.assert_array_equal(got_items[8:], items[8:])
    assert loss > 0
    # squared_error scores the current tables with the model's prediction
    k = factors
    pred = (rule.mean + want_users[user, k] + want_items[item, k]
            + np.sum(want_users[user, :k] * want_items[item, :k], 1))
    assert trainer.squared_error(trainer.pairs(user, item, rating)) == pytest.approx(np.sum((pred - rating) ** 2),
                                                                            rel=1e-4)


def test_fits_of_one_size_class_share_one_compiled_epoch_whatever_their_rates():
    """The rule's rates reach the compiled epoch at run time, and the examples, the batch order and
    the tables are padded: another rule on a split a few pairs, users and anime larger (another
    seed's), the same program, and each still follows the documented rule."""
    rng = np.random.default_rng(1)
    trainers = []
    for n_users, n_items, n, learning_rate, reg in ((20, 10, 40, 0.1, 0.05), (21, 12, 43, 0.3, 0.0)):
        user = np.sort(rng.integers(0, n_users, n)).astype(np.int32)
        item = rng.integers(0, n_items, n).astype(np.int32)
        rating = rng.integers(1, 11, n).astype(np.float32)
        users = row_adagrad.init_table(n_users, 3, 0.3, 0.1, rng)
        items = row_adagrad.init_table(n_items, 3, 0.3, 0.1, rng)
        order = row_adagrad.batch_order(n, 8, rng)
        rule = row_adagrad.StepRule(factors=3, mean=5.0, learning_rate=learning_rate, bias_learning_rate=0.2,
                                    reg_factors=reg, reg_biases=0.01, batch_size=8)
        trainer = row_adagrad.trainer(users, items, user, item, rating, rule)
        trainer.epoch(order)
        want_users, want_items = _numpy_epoch(users, items, user, item, rating, order, rule)
        got_users, got_items = trainer.tables()
        np.testing.assert_allclose(got_users, want_users, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got_items, want_items, rtol=1e-4, atol=1e-5)
        assert trainer.squared_error(trainer.pairs(user, item, rating)) > 0
        trainers.append(trainer)
    epoch = trainers[0]._epoch
    assert epoch is trainers[1]._epoch
    traced = epoch.experimental_get_tracing_count() if hasattr(epoch, "experimental_get_tracing_count") \
        else epoch._cache_size()  # TensorFlow's tf.function, else JAX's jit
    assert traced == 1


def test_the_biases_start_from_the_bias_baselines_closed_form(small):
    train, valid, _ = small
    start = Bias(sweeps=2).fit(train, None)
    # bias learning rate 0: training leaves the biases where they started
    frozen = dict(epochs=1, bias_learning_rate=0.0, learning_rate=1e-9)
    model = BiasedMatrixFactorization(**frozen).fit(train, valid, tasks=("rating",), seed=0)
    np.testing.assert_allclose(model.item_bias_, start.item_bias_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.user_[:, model.factors], start.user_bias_, rtol=1e-6, atol=1e-6)
    zero = BiasedMatrixFactorization(**frozen, bias_start_sweeps=0).fit(train, valid, tasks=("rating",), seed=0)
    assert not zero.item_bias_.any()


def test_batch_order_covers_every_example_once_in_sorted_batches():
    rng = np.random.default_rng(0)
    order = row_adagrad.batch_order(10, 4, rng)
    assert len(order) == 12
    np.testing.assert_array_equal(np.sort(order), [*range(10), 10, 10])  # padded with n
    batches = order.reshape(3, 4)
    assert (np.diff(batches, axis=1) >= 0).all()
    assert not np.array_equal(order, row_adagrad.batch_order(10, 4, rng))  # a fresh draw each epoch
    longer = row_adagrad.batch_order(10, 4, rng, steps=7)  # permutations back to back, no padding
    assert len(longer) == 28 and longer.max() == 9 and np.bincount(longer).min() >= 2


def test_the_int32_shuffle_draws_the_same_permutation_as_numpy():
    # results made before the faster shuffle stay reproducible
    np.testing.assert_array_equal(row_adagrad._permutation(1001, np.random.default_rng(3)),
                                  np.random.default_rng(3).permutation(1001))


def test_mf_biased_passes_check_model():
    check_model(BiasedMatrixFactorization, epochs=2)


def test_same_seed_same_model_and_numpy_predict_matches_the_tables(small):
    train, valid, test = small
    a, b = (BiasedMatrixFactorization(epochs=3).fit(train, valid, tasks=("rating",), seed=0) for _ in range(2))
    np.testing.assert_array_equal(a.user_, b.user_)
    assert a.history_["val_loss"] == b.history_["val_loss"]
    c = BiasedMatrixFactorization(epochs=3).fit(train, valid, tasks=("rating",), seed=1)
    assert not np.array_equal(a.user_, c.user_)
    k = a.factors
    pred = a.predict(test.user, test.item)["rating"]
    want = a.mean_ + a.user_[test.user, k] + a.item_bias_[test.item] + np.sum(
        a.user_[test.user, :k] * a.item_[test.item, :k], axis=1)
    np.testing.assert_allclose(pred, want, rtol=1e-5)
    # the restored best is the epoch with the lowest validation loss
    rated, y = valid.for_task("rating")
    best = min(a.history_["val_loss"])
    assert np.mean((a.predict(rated.user, rated.item)["rating"] - y) ** 2) == pytest.approx(best, rel=1e-4)


def test_mf_biased_serves_only_ratings(small):
    train, valid, _ = small
    with pytest.raises(ValueError, match="serves"):
        BiasedMatrixFactorization().fit(train, valid, tasks=("interaction",), seed=0)


def _users_below(part: Interactions, n: int) -> Interactions:
    return part.subset(part.user < n)


def test_mf_biased_beats_the_bias_baseline_on_real_data(embedded_split):
    """A real slice: the first 2,000 users of mal2016-5k / v1 / seed 0 (about 160k training ratings)."""
    train, valid, test = (_users_below(p, 2000) for p in (embedded_split.train, embedded_split.valid,
                                                           embedded_split.test))
    rated, y = test.for_task("rating")
    bias = Bias().fit(train, valid, tasks=("rating",), seed=0).predict(rated.user, rated.item)["rating"]
    model = BiasedMatrixFactorization().fit(train, valid, tasks=("rating",), seed=0)
    ours = model.predict(rated.user, rated.item)["rating"]
    assert rmse(y, ours) < rmse(y, bias) - 0.01, (rmse(y, ours), rmse(y, bias))
    assert model.epochs_ < model.epochs  # early stopping on validation loss did stop it
