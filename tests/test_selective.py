import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from emoconf_tf import EmoconfError
from emoconf_tf.selective import (
    aurc, auroc, balanced_aurc, balanced_risk_coverage_curve, eaurc, fpr_at_95_tpr, optimal_aurc, risk_coverage_curve,
)

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


def test_balanced_aurc_by_hand_with_an_absent_class_and_a_tie():
    # 3 classes, 6 predictions (true, predicted, confidence); c and d tie at 0.6:
    #   a (0, 0, .9) right   b (1, 0, .8) wrong   c (0, 1, .6) wrong   d (2, 2, .6) right
    #   e (1, 1, .3) right   f (2, 0, .1) wrong
    # one point per distinct confidence, per-class error (class 0, 1, 2), a class with nothing kept counting 0:
    #   >= .9 {a}          cov 1/6: (0 + 0 + 0) / 3               = 0     (classes 1 and 2 absent)
    #   >= .8 {a,b}        cov 2/6: (0 + 1 + 0) / 3               = 1/3   (class 2 absent)
    #   >= .6 {a,b,c,d}    cov 4/6: (1/2 + 1 + 0) / 3             = 1/2   (c and d enter together)
    #   >= .3 + e          cov 5/6: (1/2 + 1/2 + 0) / 3           = 1/3
    #   all                cov 1:   (1/2 + 1/2 + 1/2) / 3         = 1/2
    #   and (cov 0, 0), the risk of the smallest kept set
    # trapezoids: [0, 1/6] 0 + [1/6, 2/6] (0 + 1/3) / 2 * 1/6 = 1/36 + [2/6, 4/6] (1/3 + 1/2) / 2 * 2/6 = 5/36
    #   + [4/6, 5/6] (1/2 + 1/3) / 2 * 1/6 = 5/72 + [5/6, 1] (1/3 + 1/2) / 2 * 1/6 = 5/72  ->  11/36 = 0.305556
    # (the old rule, 1 - UAR over the classes present averaged over k = 1..6 with c before d, gave 0.430556)
    y_true = [0, 1, 0, 2, 1, 2]
    y_pred = [0, 0, 1, 2, 1, 0]
    confidence = [0.9, 0.8, 0.6, 0.6, 0.3, 0.1]
    assert balanced_aurc(y_true, y_pred, confidence) == pytest.approx(11 / 36, abs=1e-12)
    # the tie is one point, so swapping c and d changes nothing
    swap = [0, 1, 3, 2, 4, 5]
    assert balanced_aurc(np.take(y_true, swap), np.take(y_pred, swap), np.take(confidence, swap)) == pytest.approx(
        11 / 36, abs=1e-12)


def test_balanced_aurc_reproduces_fd_shifts_toy_case():
    # FD-Shifts' fd_shifts/tests/utils.py "toy-case": confids 0..3, correct 1 0 1 0, labels 0 0 1 1 -> aurc_ba 0.5
    # points (cov, risk), class 0 absent until 3/4 counting 0:
    #   (0, 1/2) (1/4, (0 + 1) / 2) (2/4, (0 + 1/2) / 2) (3/4, (1 + 1/2) / 2) (1, (1/2 + 1/2) / 2)
    # trapezoids of width 1/4: (1/2 + 1/2 + 1/2 + 1/4 + 1/4 + 3/4 + 3/4 + 1/2) / 2 / 4 = 4 / 8 = 0.5
    assert balanced_aurc([0, 0, 1, 1], [0, 1, 1, 0], [0, 1, 2, 3]) == pytest.approx(0.5, abs=1e-12)


def _fd_shifts_aurc_ba(confids, residuals, labels):
    """FD-Shifts' aurc_ba transcribed: `selective_risk_ba_stats` (drop_empty_classes=False), then `evaluate_auc`
    with linear interpolation, `-np.trapz(risks, coverages)`, without the display scale of 1000.
    IML-DKFZ/fd-shifts @ c4467aec, fd_shifts/analysis/rc_stats_utils.py and rc_stats.py."""
    unique_labels, class_coverages = np.unique(labels, return_counts=True)
    label_to_idx = {l: idx for idx, l in enumerate(unique_labels)}
    n = len(confids)
    cov = n
    coverages = [1.0]
    idx_sorted = np.argsort(confids)
    residuals = residuals[idx_sorted]
    confids = confids[idx_sorted]
    labels = labels[idx_sorted]
    error_sum = np.array([sum(residuals[labels == c]) for c in unique_labels])
    risks = [np.mean(error_sum / class_coverages)]
    for i in range(n - 1):
        c = label_to_idx[labels[i]]
        cov -= 1
        class_coverages[c] -= 1
        error_sum[c] -= residuals[i]
        if confids[i] != confids[i + 1]:
            selective_recalls = np.divide(error_sum, class_coverages, out=np.zeros_like(error_sum, dtype=float),
                                          where=class_coverages != 0)
            coverages.append(cov / n)
            risks.append(np.mean(selective_recalls))
    coverages.append(0)
    risks.append(risks[-1])
    coverages, risks = np.array(coverages), np.array(risks)
    return -np.sum(np.diff(coverages) * (risks[1:] + risks[:-1]) / 2)  # -np.trapz(risks, coverages)


@pytest.mark.parametrize("seed", range(6))
def test_balanced_aurc_equals_fd_shifts_transcription(seed):
    # rare classes (so some are absent at low coverage) and confidences on a coarse grid (so many ties)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    y = rng.choice(5, size=n, p=[0.5, 0.25, 0.15, 0.07, 0.03])
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, 5, n))
    c = np.round(rng.random(n), int(rng.integers(1, 4)))
    expected = _fd_shifts_aurc_ba(c, (p != y).astype(int), y)
    assert abs(balanced_aurc(y, p, c) - expected) <= 1e-12


def test_balanced_risk_is_present_share_of_one_minus_uar():
    # FD-Shifts' risk with P of the K classes kept is P / K * (1 - balanced accuracy of the kept predictions)
    rng = np.random.default_rng(0)
    y = rng.choice(4, size=120, p=[0.7, 0.2, 0.07, 0.03])
    p = np.where(rng.random(120) < 0.5, y, rng.integers(0, 4, 120))
    c = rng.random(120)
    _, risk = balanced_risk_coverage_curve(y, p, c)
    order = np.argsort(-c, kind="stable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [len(np.unique(y[order[:k]])) / 4 * (1 - balanced_accuracy_score(y[order[:k]], p[order[:k]]))
                    for k in range(1, 121)]
    np.testing.assert_allclose(risk, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_scikit_learn_with_ties(seed):
    # confidences on a coarse grid, so many (correct, wrong) pairs tie and count one half in both
    rng = np.random.default_rng(seed)
    correct = rng.random(300) < 0.3 + 0.4 * rng.random()
    confidence = np.round(rng.random(300) + correct * 0.2, 1)
    assert abs(auroc(correct, confidence) - roc_auc_score(correct, confidence)) <= 1e-12
