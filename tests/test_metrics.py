import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from emoconf_tf.scores import emoconfidnet_confidence, top2_margin
from emoconf_tf.metrics import selective_scores
from emoconf_tf.thresholds import rejection_threshold

# A tiny worked example, K = 3, 8 test predictions.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 0, 1])
Y_PRED = np.array([0, 1, 1, 1, 2, 0, 0, 2])
CONF = np.array([0.9, 0.2, 0.8, 0.7, 0.6, 0.1, 0.5, 0.3])


def test_no_rejection_by_hand():
    s = selective_scores(Y_TRUE, Y_PRED, CONF, 0.0, 3)
    # class 0: predicted at rows 0,5,6 -> correct 0,6 -> P = 2/3; true rows 0,1,6 -> R = 2/3
    # class 1: predicted at 1,2,3 -> correct 2,3 -> P = 2/3; true rows 2,3,7 -> R = 2/3
    # class 2: predicted at 4,7 -> correct 4 -> P = 1/2; true rows 4,5 -> R = 1/2
    # P = R = (2/3 + 2/3 + 1/2) / 3 = 11/18; F1 = 2PR/(P+R) = 11/18
    assert s.uar == pytest.approx(11 / 18)
    assert s.f1 == pytest.approx(11 / 18)
    assert (s.coverage, s.n_test, s.removed, s.removed_correct) == (1.0, 8, 0, 0)


def test_threshold_removes_low_confidence_and_counts_correct_removals():
    s = selective_scores(Y_TRUE, Y_PRED, CONF, 0.4, 3)
    # kept rows (conf >= 0.4): 0, 2, 3, 4, 6 -> all correct; removed 1, 5, 7 (all wrong)
    # class 0 P = 2/2, R = 2/2; class 1 P = 2/2, R = 2/2; class 2 P = 1/1, R = 1/1 -> F1 = 1
    assert s.f1 == pytest.approx(1.0)
    assert (s.removed, s.removed_correct) == (3, 0)
    assert s.coverage == pytest.approx(5 / 8)
    s = selective_scores(Y_TRUE, Y_PRED, CONF, 0.75, 3)
    # kept: 0 (class 0 correct), 2 (class 1 correct); removed 6 of which 3, 4, 6 correct
    # P: class0 1, class1 1, class2 0 (no prediction) -> 2/3; R: class0 1/1, class1 1/1, class2 0/0 -> 0 => 2/3
    assert (s.removed, s.removed_correct) == (6, 3)
    assert s.f1 == pytest.approx(2 / 3)


def test_per_class_scores_agree_with_scikit_learn():
    kept = CONF >= 0.25
    s = selective_scores(Y_TRUE, Y_PRED, CONF, 0.25, 3)
    by_class = {"labels": [0, 1, 2], "average": None, "zero_division": 0}
    np.testing.assert_allclose(s.precision, precision_score(Y_TRUE[kept], Y_PRED[kept], **by_class))
    np.testing.assert_allclose(s.recall, recall_score(Y_TRUE[kept], Y_PRED[kept], **by_class))


def test_everything_rejected_gives_zero_scores():
    s = selective_scores(Y_TRUE, Y_PRED, CONF, 2.0, 3)
    assert (s.f1, s.uar, s.coverage, s.removed) == (0.0, 0.0, 0.0, 8)


def test_thresholds_from_validation_applied_to_test():
    validation_confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    t = rejection_threshold(validation_confidence, 0.2)  # 4th of 5 descending = 0.6
    assert t == 0.6
    s = selective_scores(Y_TRUE, Y_PRED, CONF, t, 3)
    # test coverage need not be 0.8: 0.9, 0.8, 0.7, 0.6 pass -> 4/8
    assert s.coverage == 0.5


def test_top2_margin_by_hand():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33]])
    np.testing.assert_allclose(top2_margin(probabilities), [0.2, 0.01], atol=1e-7)


def test_emoconfidnet_confidence_reads_p_hat_at_the_classifier_prediction():
    probabilities = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    p_hat = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    # predictions 1 and 0 -> p_hat[0, 1] = 0.3, p_hat[1, 0] = 0.2 (not p_hat's own argmax)
    np.testing.assert_allclose(emoconfidnet_confidence(probabilities, p_hat), [0.3, 0.2])


def test_negative_entropy_by_hand():
    from emoconf_tf.scores import negative_entropy

    # uniform over 4 -> H = log 4 -> 0; one-hot -> 1; (0.5, 0.5, 0, 0) -> H = log 2 -> 1 - log2/log4 = 0.5
    np.testing.assert_allclose(
        negative_entropy(np.array([[0.25] * 4, [1.0, 0, 0, 0], [0.5, 0.5, 0, 0]])), [0.0, 1.0, 0.5], atol=1e-6
    )


def test_selective_scores_with_per_class_thresholds_by_hand():
    # thresholds [0.5, 0.9]: kept = (c 0.6, pred 0) and (c 0.95, pred 1); rejected (0.8, pred 1), (0.4, pred 0)
    # kept: (true 0, pred 0) right, (true 0, pred 1) wrong; kept true labels are 0, 0:
    #   recall class 0 = 1/2, class 1 has no kept true sample -> 0; UAR = 0.25
    #   precision 0 = 1/1, precision 1 = 0/1 -> P = 0.5; F1 = 2 * .5 * .25 / .75 = 1/3
    import numpy as np
    from emoconf_tf.metrics import selective_scores

    s = selective_scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]), np.array([0.6, 0.95, 0.8, 0.4]),
                         np.array([0.5, 0.9]), 2)
    assert (s.removed, s.removed_correct, s.coverage) == (2, 1, 0.5)
    assert s.uar == 0.25 and abs(s.f1 - 1 / 3) < 1e-12


def test_counting_macro_f1_uar_by_hand():
    from emoconf_tf.metrics import macro_f1_uar

    # the worked example: P = R = 11/18, so F1 = 11/18 too
    f1, uar = macro_f1_uar(Y_TRUE, Y_PRED, 3)
    assert (f1, uar) == pytest.approx((11 / 18, 11 / 18), abs=1e-15)


@pytest.mark.parametrize("seed", range(20))
def test_counting_macro_f1_uar_equals_scikit_learn(seed):
    from emoconf_tf.metrics import macro_f1_uar

    # random sizes and class counts, some classes never true or never predicted (zero_division=0 in both)
    rng = np.random.default_rng(seed)
    num_classes, n = int(rng.integers(2, 8)), int(rng.integers(1, 400))
    y_true = rng.integers(0, num_classes - (seed % 2), n)
    y_pred = np.where(rng.random(n) < rng.random(), y_true, rng.integers(0, num_classes, n))
    labels = np.arange(num_classes)
    precision = precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    recall = recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    f1, uar = macro_f1_uar(y_true, y_pred, num_classes)
    assert abs(uar - recall) <= 1e-12
    assert abs(f1 - 2 * precision * recall / (precision + recall)) <= 1e-12
    s = selective_scores(y_true, y_pred, np.ones(n), 0.0, num_classes)
    assert abs(f1 - s.f1) <= 1e-12 and abs(uar - s.uar) <= 1e-12


def test_counting_macro_f1_uar_of_nothing_is_zero():
    from emoconf_tf.metrics import macro_f1_uar

    assert macro_f1_uar(np.array([], int), np.array([], int), 3) == (0.0, 0.0)
