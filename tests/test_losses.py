import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from emoconf_tf import PairwiseConfidenceLoss


def pairwise_reference(p, p_hat):
    """The paper's Eq. (1) written literally: ordered pairs i != j, divided by C(K, 2)."""
    k = len(p)
    total = sum(((p_hat[i] - p_hat[j]) - (p[i] - p[j])) ** 2 for i, j in itertools.permutations(range(k), 2))
    return total / math.comb(k, 2)


def test_loss_k4_by_hand():
    p = [0.4, 0.3, 0.2, 0.1]
    p_hat = [0.1, 0.2, 0.3, 0.4]
    # e = p_hat - p = (-0.3, -0.1, 0.1, 0.3); unordered pair differences e_i - e_j:
    # (1,2) -0.2, (1,3) -0.4, (1,4) -0.6, (2,3) -0.2, (2,4) -0.4, (3,4) -0.2
    # squares: .04 + .16 + .36 + .04 + .16 + .04 = 0.80; ordered pairs double it: 1.60; / C(4,2)=6 -> 0.266667
    loss = PairwiseConfidenceLoss()([p], [p_hat])
    assert float(loss) == pytest.approx(1.6 / 6, rel=1e-6)


def test_loss_k5_by_hand():
    p = [0.2, 0.2, 0.2, 0.2, 0.2]
    p_hat = [0.6, 0.1, 0.1, 0.1, 0.1]
    # e = (0.4, -0.1, -0.1, -0.1, -0.1); pairs with class 1: 4 x 0.5^2 = 1.0, others 0
    # ordered: 2.0; / C(5,2)=10 -> 0.2
    assert float(PairwiseConfidenceLoss()([p], [p_hat])) == pytest.approx(0.2, rel=1e-6)


def test_loss_is_the_batch_mean_and_matches_the_literal_formula():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(5), size=8).astype("float32")
    p_hat = rng.dirichlet(np.ones(5), size=8).astype("float32")
    expected = np.mean([pairwise_reference(a, b) for a, b in zip(p, p_hat)])
    assert float(PairwiseConfidenceLoss()(p, p_hat)) == pytest.approx(expected, rel=1e-5)


def test_loss_ignores_a_common_shift_of_all_outputs():
    # only differences between classes matter
    p = np.array([[0.5, 0.3, 0.2]])
    assert float(PairwiseConfidenceLoss()(p, p + 0.1)) == pytest.approx(0.0, abs=1e-7)


def test_gradient_is_zero_when_prediction_equals_target():
    p = tf.constant([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    p_hat = tf.Variable(p)
    with tf.GradientTape() as tape:
        loss = PairwiseConfidenceLoss()(p, p_hat)
    grad = tape.gradient(loss, p_hat)
    assert float(loss) == 0.0
    np.testing.assert_allclose(grad.numpy(), 0.0, atol=1e-8)


def test_loss_serialises_with_every_argument():
    loss = PairwiseConfidenceLoss(name="pc", reduction="sum", dtype="float32")
    config = loss.get_config()
    assert config == {"name": "pc", "reduction": "sum", "dtype": "float32"}
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, PairwiseConfidenceLoss)
    assert restored.get_config() == config
