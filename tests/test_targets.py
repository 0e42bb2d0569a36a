import numpy as np
import pytest

from emoconf_tf import EmoconfError, class_centroids, confidence_targets
from emoconf_tf.targets import manhattan_distances, softmax_of_negative

CLASSES = ["angry", "happy", "sad"]
LABELS = ["angry", "angry", "happy", "sad"]
AVD_TRAIN = np.array([[6.0, 2.0, 5.0], [5.0, 2.0, 4.0], [5.0, 6.0, 4.0], [2.0, 2.0, 2.0]])


def test_centroids_are_class_means():
    centroids = class_centroids(LABELS, AVD_TRAIN, CLASSES)
    # angry: mean of (6,2,5) and (5,2,4) = (5.5, 2, 4.5); happy and sad have one row each
    np.testing.assert_allclose(centroids, [[5.5, 2.0, 4.5], [5.0, 6.0, 4.0], [2.0, 2.0, 2.0]])


def test_centroids_accept_integer_labels():
    np.testing.assert_allclose(class_centroids([0, 0, 1, 2], AVD_TRAIN, CLASSES),
                               class_centroids(LABELS, AVD_TRAIN, CLASSES))


def test_manhattan_distance_by_hand():
    # |4-5.5| + |4-2| + |4-4.5| = 1.5 + 2 + 0.5 = 4; to happy (5,6,4): 1+2+0 = 3; to sad (2,2,2): 2+2+2 = 6
    d = manhattan_distances(np.array([[4.0, 4.0, 4.0]]), class_centroids(LABELS, AVD_TRAIN, CLASSES))
    np.testing.assert_allclose(d, [[4.0, 3.0, 6.0]])


def test_targets_are_softmax_of_negative_distance_by_hand():
    p = confidence_targets(LABELS, AVD_TRAIN, np.array([[4.0, 4.0, 4.0]]), CLASSES)
    # softmax(-(4, 3, 6)) = e^-4, e^-3, e^-6 / sum
    e = np.exp([-4.0, -3.0, -6.0])
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(p[0], [0.2594965, 0.7053845, 0.0351190], atol=1e-6)


def test_target_rows_sum_to_one_and_peak_at_own_centroid():
    rng = np.random.default_rng(0)
    avd = rng.uniform(1, 7, size=(50, 3))
    p = confidence_targets(LABELS, AVD_TRAIN, avd, CLASSES)
    assert p.shape == (50, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    own = confidence_targets(LABELS, AVD_TRAIN, class_centroids(LABELS, AVD_TRAIN, CLASSES), CLASSES)
    np.testing.assert_array_equal(own.argmax(axis=1), [0, 1, 2])


def test_softmax_is_stable_for_large_distances():
    p = softmax_of_negative(np.array([[1000.0, 1001.0]]))
    np.testing.assert_allclose(p, [[1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))]])


def test_a_class_without_training_rows_is_named():
    with pytest.raises(EmoconfError, match="'neutral' has no training rows"):
        class_centroids(LABELS, AVD_TRAIN, CLASSES + ["neutral"])


def test_avd_shape_is_checked():
    with pytest.raises(EmoconfError, match=r"\[N, 3\]"):
        confidence_targets(LABELS, AVD_TRAIN, np.ones((2, 2)), CLASSES)
