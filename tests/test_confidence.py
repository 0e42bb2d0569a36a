import numpy as np
import pytest

from emoconf_tf.scores import emoconfidnet_confidence, macro_gain, top2_margin

# validation: softmax rows predict 0, 0, 1; labels 0, 1, 1
# precision P = (1/2, 1/1), recall R = (1/1, 1/2); predictions per class M + 1 = (3, 2); true N + 1 = (2, 3)
VAL_P = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
VAL_Y = np.array([0, 1, 1])


def test_macro_gain_by_hand():
    # bound B = max(1/3, 1/2) + max(1/2, 1/3) = 1
    # [0.6, 0.4] (predicts 0): (0.6 - 1/2) / 3 + 0.6 / 2 - (0.6 * 1 / 2 + 0.4 * (1/2) / 3) = -1/30
    #   -> (-1/30 + 1) / 2 = 0.483333
    # [0.2, 0.8] (predicts 1): (0.8 - 1) / 2 + 0.8 / 3 - (0.2 * 1 / 2 + 0.8 * (1/2) / 3) = -0.1 + 0.26667 - 0.23333
    #   = -1/15 -> (-1/15 + 1) / 2 = 0.466667
    got = macro_gain(np.array([[0.6, 0.4], [0.2, 0.8]]), VAL_P, VAL_Y)
    np.testing.assert_allclose(got, [(1 - 1 / 30) / 2, (1 - 1 / 15) / 2], rtol=1e-6)
    assert got.dtype == np.float32


def test_macro_gain_lies_in_zero_one_and_grows_with_the_predicted_class_probability():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 5)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    val = probabilities[:300]
    labels = rng.integers(0, 5, 300)
    score = macro_gain(probabilities, val, labels)
    assert score.min() >= 0 and score.max() <= 1
    # two-class rows predicting class 0 with growing probability: the expected gain grows
    rows = np.array([[p, 1 - p] for p in (0.55, 0.7, 0.85, 1.0)])
    assert np.all(np.diff(macro_gain(rows, VAL_P, VAL_Y)) > 0)


def test_macro_gain_refuses_mismatched_validation():
    with pytest.raises(ValueError, match="do not match"):
        macro_gain(np.ones((2, 3)) / 3, VAL_P, VAL_Y)


def test_paper_scores_by_hand():
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    p_hat = np.array([[0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(top2_margin(probabilities), [0.3, 0.4], rtol=1e-6)  # 0.6 - 0.3, 0.6 - 0.2
    np.testing.assert_allclose(emoconfidnet_confidence(probabilities, p_hat), [0.5, 0.8])  # p_hat[argmax]


def test_macro_gain_scores_the_given_prediction_with_other_probabilities():
    # an ensemble says [0.4, 0.6] where the classifier predicted class 0 (validation statistics as above):
    # (0.4 - 1/2) / 3 + 0.4 / 2 - (0.4 * 1 / 2 + 0.6 * (1/2) / 3) = -1/30 - 1/10 = -2/15 -> (1 - 2/15) / 2 = 13/30
    got = macro_gain(np.array([[0.4, 0.6]]), VAL_P, VAL_Y, predicted=np.array([0]))
    np.testing.assert_allclose(got, [13 / 30], rtol=1e-6)
    # the argmax (class 1) would be scored instead without `predicted`
    assert not np.isclose(macro_gain(np.array([[0.4, 0.6]]), VAL_P, VAL_Y)[0], 13 / 30)


def test_macro_gain_counts_validation_statistics_from_the_given_predictions():
    # validation predictions 0, 1, 1 = the labels: P = R = (1, 1), M + 1 = N + 1 = (2, 3), B = 1/2 + 1/2 = 1
    # [0.6, 0.4] predicts 0: (0.6 - 1) / 2 + 0.6 / 2 - (0.6 / 2 + 0.4 / 3) = -1/3 -> (1 - 1/3) / 2 = 1/3
    got = macro_gain(np.array([[0.6, 0.4]]), VAL_P, VAL_Y, validation_predicted=np.array([0, 1, 1]))
    np.testing.assert_allclose(got, [1 / 3], rtol=1e-6)


def test_macro_gain_refuses_predictions_of_another_length():
    with pytest.raises(ValueError, match="2 predicted classes but 1 rows"):
        macro_gain(np.array([[0.6, 0.4]]), VAL_P, VAL_Y, predicted=np.array([0, 1]))
    with pytest.raises(ValueError, match="2 validation predictions but 3 labels"):
        macro_gain(np.array([[0.6, 0.4]]), VAL_P, VAL_Y, validation_predicted=np.array([0, 1]))
