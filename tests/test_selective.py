import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from emoconf_tf import EmoconfError
from emoconf_tf.evaluation.selective import aurc, auroc, eaurc, fpr_at_95_tpr, optimal_aurc, risk_coverage_curve

# Six predictions, sorted by confidence: correct, wrong, correct, correct, wrong, correct
CORRECT = np.array([True, False, True, True, False, True])
CONFIDENCE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def test_risk_coverage_by_hand():
    coverage, risk = risk_coverage_curve(CORRECT, CONFIDENCE)
    # errors among the top k: 0, 1, 1, 1, 2, 2 -> risk 0/1, 1/2, 1/3, 1/4, 2/5, 2/6
    np.testing.assert_allclose(coverage, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1])
    np.testing.assert_allclose(risk, [0, 1 / 2, 1 / 3, 1 / 4, 2 / 5, 2 / 6])


def test_aurc_and_eaurc_by_hand():
    # AURC = (0 + .5 + .33333 + .25 + .4 + .33333) / 6 = 1.81667 / 6 = 0.302778
    assert aurc(CORRECT, CONFIDENCE) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 4 + 2 / 5 + 2 / 6) / 6)
    # oracle: 4 correct first, then 2 wrong -> risk 0, 0, 0, 0, 1/5, 2/6 -> (0.2 + 0.33333) / 6 = 0.088889
    assert optimal_aurc(CORRECT) == pytest.approx((1 / 5 + 2 / 6) / 6)
    assert eaurc(CORRECT, CONFIDENCE) == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 2 / 5 + 2 / 6 - 1 / 5 - 2 / 6) / 6)


def test_eaurc_is_zero_for_a_perfect_ranking():
    assert eaurc(CORRECT, CORRECT.astype(float)) == pytest.approx(0.0)


def test_auroc_matches_scikit_learn_and_hand_count():
    # pairs (correct, wrong) ranked right: wrong 0.8 beats correct .7, .6, .4; wrong .5 beats .4
    # correct-above-wrong pairs: 8 total, wrong-above: 0.8>{.7,.6,.4}=3, .5>{.4}=1 -> 4 of 8 right = 0.5
    assert auroc(CORRECT, CONFIDENCE) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.6
    confidence = rng.random(200) + correct * 0.3
    assert auroc(correct, confidence) == pytest.approx(roc_auc_score(correct, confidence))


def test_fpr_at_95_tpr_by_hand():
    # to accept 95 % of the 4 correct ones we must go down to 0.4 (all 4): both wrong accepted -> FPR 1.0
    assert fpr_at_95_tpr(CORRECT, CONFIDENCE) == 1.0
    # a clean separation accepts no wrong prediction
    assert fpr_at_95_tpr(CORRECT, CORRECT.astype(float)) == 0.0


def test_single_kind_gives_nan_auroc():
    assert np.isnan(auroc(np.ones(3, bool), np.array([0.1, 0.2, 0.3])))


def test_bad_inputs_are_refused():
    with pytest.raises(EmoconfError, match="one length"):
        aurc(CORRECT, CONFIDENCE[:3])
    with pytest.raises(EmoconfError, match="NaN"):
        aurc(CORRECT, np.full(6, np.nan))


def test_balanced_aurc_by_hand_and_against_scikit_learn():
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from emoconf_tf.evaluation.selective import balanced_aurc, balanced_risk_coverage_curve

    # sorted by confidence: (true 1, pred 1) (true 0, pred 0) (true 0, pred 1)
    # k=1: class 1 recall 1 -> risk 0; k=2: recalls 1, 1 -> 0; k=3: class 0 1/2, class 1 1 -> risk 0.25
    assert balanced_aurc([0, 0, 1], [0, 1, 1], [0.5, 0.2, 0.9]) == pytest.approx(0.25 / 3)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 120)
    p = np.where(rng.random(120) < 0.5, y, rng.integers(0, 4, 120))
    c = rng.random(120)
    _, risk = balanced_risk_coverage_curve(y, p, c)
    order = np.argsort(-c, kind="stable")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [1 - balanced_accuracy_score(y[order[:k]], p[order[:k]]) for k in range(1, 121)]
    np.testing.assert_allclose(risk, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_scikit_learn_with_ties(seed):
    # confidences on a coarse grid, so many (correct, wrong) pairs tie and count one half in both
    rng = np.random.default_rng(seed)
    correct = rng.random(300) < 0.3 + 0.4 * rng.random()
    confidence = np.round(rng.random(300) + correct * 0.2, 1)
    assert abs(auroc(correct, confidence) - roc_auc_score(correct, confidence)) <= 1e-12
