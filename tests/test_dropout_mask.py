"""The study's Keras models' dropout mask in the compiled epoch (``keras_models.keep_mask``):
each element kept with probability 1 - rate, independently of its neighbours, the same for the
same key and another for another key. Tolerances: 6 binomial standard deviations of the
524,288 draws (~0.004), so a sound mask fails about once in 10^9 runs."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from animerec_bench.builtin import keras_backend as kb  # noqa: E402
from animerec_bench.builtin.keras_models import keep_mask  # noqa: E402

SHAPE = (8192, 64)
N = SHAPE[0] * SHAPE[1]


def _mask(rate: float, *key: int) -> np.ndarray:
    return np.asarray(keep_mask(SHAPE, tf.constant(key, tf.int32), rate))


def _tolerance(p: float) -> float:
    return 6 * np.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.75, 0.125, 0.3, 0.1])
def test_each_element_is_kept_with_probability_one_minus_rate(rate):
    mask = _mask(rate, 3, 17, 1)
    assert mask.shape == SHAPE and mask.dtype == bool
    assert abs(mask.mean() - (1 - rate)) < _tolerance(1 - rate)


@pytest.mark.parametrize("rate", [0.5, 0.25])
def test_elements_sharing_a_hash_word_are_independent(rate):
    """At rate 0.5 one hash word serves 32 neighbouring elements (16 at 0.25): neighbours, and
    elements a word apart, agree as often as independent draws do."""
    flat = _mask(rate, 3, 17, 1).reshape(-1)
    p = 1 - rate
    agree = p * p + (1 - p) * (1 - p)
    for gap in (1, 2, 31, 32, 33):
        assert abs(np.mean(flat[:-gap] == flat[gap:]) - agree) < _tolerance(agree), gap


def test_the_same_key_gives_the_same_mask_and_another_key_another():
    a = _mask(0.5, 3, 17, 1)
    assert np.array_equal(a, _mask(0.5, 3, 17, 1))
    for other in ((3, 17, 2), (3, 18, 1), (4, 17, 1)):
        assert abs(np.mean(a == _mask(0.5, *other)) - 0.5) < _tolerance(0.5), other


def test_a_rate_without_a_short_binary_form_keeps_the_uniform_draw():
    key = tf.constant((3, 17, 1), tf.int32)
    expected = np.asarray(kb.hashed_uniform(SHAPE, key)) >= 0.3
    assert np.array_equal(_mask(0.3, 3, 17, 1), expected)
